/*
** The integration test runner: `scimgate test FILE.lua...` (DESIGN §1b).
**
** Each FILE is a trusted Lua 5.4 script (full standard library, io and os
** included; not the gateway's sandbox) run in a fresh lua_State of its own.
** The script registers tests with test(name, fn); after the file has run,
** its tests run in order, each under pcall with a traceback. Gateways the
** file started and directories it asked for are cleaned up when its tests
** are done, before the next file loads.
**
** Output on stdout, one line per test and a summary:
**     ok   <file>: <name>
**     FAIL <file>: <name>: <message on one line>
**     N passed, N failed
** Tracebacks and the tail of each gateway's log go to stderr. A file that
** fails to load counts as one failure, named "(load)"; its tests do not run.
**
** The API a script sees (globals):
**   test(name, fn)
**   expect.eq(a, b [, msg])   deep, as JSON: arrays (marked, or plain 1..n
**                             tables) never equal objects; [] ~= {}
**   expect.ne(a, b [, msg])   expect.truthy(v [, msg])
**   expect.match(s, pattern [, msg])       a Lua pattern
**   expect.status(resp, code [, msg])      shows up to 500 bytes of body
**   expect.header(resp, name [, pattern])  expect.array(v)  expect.object(v)
**   expect.error(fn [, pattern])  -> the error message fn raised
**   http.request{method=, url=, headers=, body=string|table, timeout=s,
**                insecure=bool, raw=bool}
**        -> {status=, headers={lower-case name = value}, body=, json=,
**            method=, url=}; raises when no response arrives. Bytes curl
**            refuses in a URL (space, '"', '<', '>', '\\', '^', '`', '{',
**            '|', '}', controls, non-ASCII) are percent-encoded; the rest of
**            the URL is sent as written. Only the headers given are sent
**            (a header set to false removes one curl would add), plus
**            Content-Type: application/scim+json for a body unless raw.
**   http.get(url [, headers [, opts]])  http.delete(url [, headers [, opts]])
**   http.post/put/patch(url, body [, headers [, opts]])
**   http.escape(s)            percent-encode a query value
**   tcp.connect(addr [, timeout]) -> conn    a raw TCP connection, for
**        what curl will not send (a request byte by byte, bytes curl would
**        escape, a connection held open with no request); addr is a port,
**        "host:port" or a URL such as gw.url (its IPv4 host and port).
**        Raises when it cannot connect within timeout s (5).
**        conn:send(bytes [, timeout]) -> true, or nil, "closed"|"timeout",
**             bytes sent (the peer closed or reset; it stopped reading)
**        conn:recv([timeout]) -> bytes, "closed"|"timeout": everything that
**             arrives until the peer closes or timeout s (5) pass
**        conn:response([timeout]) -> one response as http.request gives
**             it (status, headers, body, json; a body without
**             Content-Length runs to the close), or nil, "closed"|"timeout",
**             the bytes received; bytes after the response stay for the next
**        conn:close()              (collected connections close too)
**   gateway.start{env=, scripts=, config=, tenant=, operator=, join=} -> gw
**        tenant= and operator= name the tenant and the operator admin it
**        creates ("test", "test-operator"); join = gw starts another node
**        of gw's deployment (give it the same storage config): it uses
**        gw's server key, tenant and tokens and creates nothing.
**        gw.url gw.base gw.tenant gw.token gw.admin_token gw.data gw.pid
**        gw.port gw.log; gw:stop() gw:kill() gw:restart() gw:run(...)
**        gw:auth() gw:logtail([n]) gw:running()
**        Every command the gateway object runs (tenant create, token
**        generate, serve, gw:run) gets `--data DIR --listen 127.0.0.1:PORT`,
**        `--scripts DIR` when given, `--KEY VALUE` per config entry (sorted)
**        and the caller's environment with `env` applied (false unsets).
**        gw:stop() keeps DIR, so gw:restart() finds its data; DIR goes
**        when the file's tests are done. gw:stop/kill return the exit code
**        (128 + signal when killed) and a description.
**   sleep(seconds)  tmpdir()  free_port()
**   eventually(fn, what [, seconds]) -> fn's first truthy result, polling
**                             every 0.1 s for at most `seconds` (15);
**                             raises "timed out waiting for <what>"
**   json.encode(v [, {indent=n, sort=bool}])  json.decode(s)  json.null
**   json.array([t])  json.is_array(v)
**   runner.dir runner.file runner.exe      cjson (also via require)
**
** Environment: SCIMGATE_TEST_FILTER (a Lua pattern on test names),
** SCIMGATE_KEEP_DATA (non-empty, not "0": keep data and temp directories).
**
** Not thread-safe: it installs SIGINT/SIGTERM handlers and an atexit hook,
** and keeps its state in statics. Call it once per process.
*/
#ifndef SG_RUNNER_H
#define SG_RUNNER_H

/*
** Run the test files argv[0..argc-1] (the words after `test`). self_exe is
** the absolute path of the scimgate binary that gateway.start runs; when
** NULL, gateway.start raises.
** Returns the process exit status: 0 when every file loaded and no test
** failed, 1 otherwise, 2 on a usage error (no files, bad filter pattern),
** 128 + signal number when interrupted by SIGINT or SIGTERM.
*/
int sg_runner_main(int argc, char **argv, const char *self_exe);

#endif
