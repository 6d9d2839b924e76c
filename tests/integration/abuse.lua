-- Abuse (issue 7): oversized, deeply nested, malformed and slow requests, header
-- floods and connection floods. Each gets a clear answer (a SCIM error where the
-- gateway answers; a closed connection where CivetWeb cuts it off) and the gateway
-- keeps serving. What curl will not send goes through tcp.connect (runner.h).

local gw = gateway.start{config = {
  ["limits.workers"] = "8", ["limits.longpoll"] = "2",
  ["limits.body_bytes"] = "16384", ["limits.json_depth"] = "16",
  ["limits.request_timeout"] = "1500ms", ["limits.idle_timeout"] = "1s",
  ["trusted_proxies"] = "127.0.0.1",
}}
local ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
local PATCHOP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
local PATH = "/scim/v2/" .. gw.tenant
local AUTH = "Authorization: Bearer " .. gw.token
local ADMIN = {Authorization = "Bearer " .. gw.admin_token}
local ADMIN_AUTH = "Authorization: Bearer " .. gw.admin_token
local FFFD = "\xef\xbf\xbd"

local function is_scim_error(r, status, scim_type)
  expect.status(r, status)
  expect.header(r, "content-type", "^application/scim%+json")
  expect.truthy(r.json, "the body is JSON (UTF-8): " .. r.body:sub(1, 200))
  expect.eq(r.json.schemas, json.array{ERROR})
  expect.eq(r.json.status, tostring(status))
  if scim_type then expect.eq(r.json.scimType, scim_type) end
  expect.truthy(r.json.detail and #r.json.detail > 0, "detail is set")
end

-- A request as bytes: the request line, Host, the given header lines, a body.
local function request_text(method, path, headers, body)
  local t = {method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1"}
  for _, h in ipairs(headers or {}) do t[#t + 1] = h end
  return table.concat(t, "\r\n") .. "\r\n\r\n" .. (body or "")
end

local function raw(text, timeout)
  local c = tcp.connect(gw.url)
  expect.truthy(c:send(text), "the request went out")
  return c:response(timeout), c
end

local function count_users()
  local r = http.get(gw.url .. "/Users?count=0", gw:auth())
  expect.status(r, 200)
  return r.json.totalResults
end

local function serves()
  expect.truthy(gw:running(), "the gateway is still running")
  expect.status(http.get(gw.url .. "/Users?count=0", gw:auth()), 200)
end

local function closed(c, what)
  local _, how = c:recv(10)
  expect.eq(how, "closed", what or "the gateway closed the connection")
end

test("a body over limits.body_bytes is 413, declared or chunked, and is not read", function()
  local before = count_users()
  -- Declared: refused before any of it is read, and not drained afterwards
  -- (CivetWeb would read all 100 MB to keep the connection).
  local r, c = raw(request_text("POST", PATH .. "/Users",
                                {AUTH, "Content-Type: application/scim+json",
                                 "Content-Length: 100000000"}))
  is_scim_error(r, 413)
  expect.header(r, "connection", "close")
  local block, sent, ok, why = string.rep("x", 65536), 0, true, nil
  while ok and sent < 64 * 1024 * 1024 do
    ok, why = c:send(block, 5)
    if ok then sent = sent + #block end
  end
  expect.eq(why, "closed", "the connection was closed, not drained (" .. sent .. " bytes taken)")
  -- Chunked: no length to refuse up front; cut off at the limit.
  local chunk, body = string.rep("y", 8000), ""
  for _ = 1, 3 do body = body .. string.format("%x\r\n%s\r\n", #chunk, chunk) end
  r, c = raw(request_text("POST", PATH .. "/Users",
                          {AUTH, "Content-Type: application/scim+json", "Transfer-Encoding: chunked"},
                          body .. "0\r\n\r\n"))
  is_scim_error(r, 413)
  closed(c)
  -- Neither: a body with no length and no chunks is no body (RFC 9112 §6.3).
  r, c = raw(request_text("POST", PATH .. "/Users",
                          {AUTH, "Content-Type: application/scim+json", "Connection: close"},
                          '{"userName":"no-length@example.com"}'))
  is_scim_error(r, 400, "invalidSyntax")
  closed(c)
  -- The admin API and a path that reads no body at all.
  r, c = raw(request_text("PATCH", "/admin/v1/" .. gw.tenant .. "/settings",
                          {ADMIN_AUTH, "Content-Length: 20000"}))
  expect.status(r, 413)
  expect.header(r, "content-type", "^application/json")
  closed(c)
  r, c = raw(request_text("POST", "/healthz", {"Content-Length: 50000000"}))
  expect.status(r, 200)
  closed(c, "an unread body closes the connection instead of being drained")
  expect.eq(count_users(), before)
  serves()
end)

test("JSON nested deeper than limits.json_depth is 400 wherever a body is parsed", function()
  local before = count_users()
  local function arrays(n) return string.rep("[", n) .. string.rep("]", n) end
  local function post(url, text, headers)
    return http.request{method = "POST", url = url, headers = headers or gw:auth(), body = text, raw = true}
  end
  -- 16 levels (the limit) pass; 17 do not. Unknown attributes are ignored.
  expect.status(post(gw.url .. "/Users", '{"userName":"deep@example.com","x":' .. arrays(15) .. "}"), 201)
  is_scim_error(post(gw.url .. "/Users", '{"userName":"deeper@example.com","x":' .. arrays(16) .. "}"),
                400, "invalidSyntax")
  local objects = string.rep('{"a":', 20) .. "1" .. string.rep("}", 20)
  is_scim_error(post(gw.url .. "/Users", '{"userName":"o@example.com","x":' .. objects .. "}"), 400,
                "invalidSyntax")
  is_scim_error(post(gw.url .. "/Users", string.rep("[", 16000)), 400, "invalidSyntax")
  local id = http.get(gw.url .. "/Users?filter=userName+eq+%22deep@example.com%22", gw:auth())
    .json.Resources[1].id
  is_scim_error(http.request{method = "PATCH", url = gw.url .. "/Users/" .. id, headers = gw:auth(),
                             raw = true, body = '{"schemas":["' .. PATCHOP .. '"],"Operations":' ..
                               '[{"op":"add","path":"title","value":' .. arrays(20) .. "}]}"},
                400, "invalidSyntax")
  is_scim_error(http.request{method = "PUT", url = gw.url .. "/Users/" .. id, headers = gw:auth(),
                             raw = true, body = '{"userName":"deep@example.com","x":' .. arrays(20) .. "}"},
                400, "invalidSyntax")
  is_scim_error(post(gw.url .. "/Bulk", '{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],' ..
                     '"Operations":[{"method":"POST","path":"/Users","bulkId":"b","data":' ..
                     '{"userName":"bulk@example.com","x":' .. arrays(20) .. "}}]}"),
                400, "invalidSyntax")
  is_scim_error(post(gw.url .. "/.search", '{"filter":"userName pr","x":' .. arrays(20) .. "}"), 400,
                "invalidSyntax")
  local a = http.request{method = "PATCH", url = gw.base .. "/admin/v1/" .. gw.tenant .. "/settings",
                         headers = ADMIN, raw = true, body = '{"product_name":' .. arrays(20) .. "}"}
  expect.status(a, 400)
  expect.match(a.json.detail, "nesting deeper than 16")
  expect.eq(count_users(), before + 1, "only the user within the limit")
  serves()
end)

test("filters over limits.filter_length or filter_depth are 400; long and deep ones within answer", function()
  local names, ids = {}, {}
  for i = 1, 3 do
    names[i] = "chain" .. i .. "@example.com"
    local r = http.post(gw.url .. "/Users", {userName = names[i]}, gw:auth())
    expect.status(r, 201)
    ids[i] = r.json.id
  end
  local function search(filter)
    return http.post(gw.url .. "/Users/.search", {filter = filter, count = 10}, gw:auth())
  end
  -- Over the limits.
  local long = string.rep('id eq "x" or ', 320) .. 'id eq "x"'
  expect.truthy(#long > 4096)
  is_scim_error(search(long), 400, "invalidFilter")
  is_scim_error(http.get(gw.url .. "/Users?filter=" .. http.escape(long), gw:auth()), 400, "invalidFilter")
  local deep = string.rep("(", 33) .. 'userName eq "a"' .. string.rep(")", 33)
  local r = search(deep)
  is_scim_error(r, 400, "invalidFilter")
  expect.match(r.json.detail, "nests too deeply")
  is_scim_error(search(string.rep("not (", 33) .. "userName pr" .. string.rep(")", 33)), 400, "invalidFilter")
  -- Within them: ~300 terms (once a stack overflow that killed the process,
  -- then a 500 from SQLite's parser) and parentheses 31 deep (a 500).
  local terms = {}
  for i = 1, 296 do terms[i] = 'id eq "a"' end
  for i = 1, 3 do terms[#terms + 1] = 'id eq "' .. ids[i] .. '"' end
  local chain = table.concat(terms, " or ")
  expect.truthy(#chain <= 4096 and #terms > 250, #chain)
  r = search(chain)
  expect.status(r, 200)
  expect.eq(r.json.totalResults, 3)
  r = search(table.concat(terms, " and ", 1, 250))
  expect.status(r, 200)
  expect.eq(r.json.totalResults, 0)
  local nested = ""
  for i = 1, 31 do nested = nested .. 'userName eq "' .. (names[i] or ("n" .. i)) .. '" or (' end
  nested = nested .. "userName eq \"x\"" .. string.rep(")", 31)
  r = search(nested)
  expect.status(r, 200)
  expect.eq(r.json.totalResults, 3)
  nested = ""
  for i = 1, 15 do nested = nested .. 'not (userName eq "n' .. i .. '") and (id eq "x" or (' end
  r = search(nested .. "userName pr" .. string.rep("))", 15))
  expect.status(r, 200)
  serves()
end)

test("invalid UTF-8 in bodies, filters, paths and headers: clear errors, valid JSON, nothing written", function()
  local before = count_users()
  local function body(method, url, text, headers)
    return http.request{method = method, url = url, headers = headers or gw:auth(), body = text, raw = true}
  end
  local bad = '{"userName":"\xff\xfe@example.com"}'
  is_scim_error(body("POST", gw.url .. "/Users", bad), 400, "invalidSyntax")
  local r, c = raw(request_text("POST", PATH .. "/Users",
                                {AUTH, "Content-Type: application/scim+json", "Content-Length: " .. #bad},
                                bad))
  is_scim_error(r, 400, "invalidSyntax")
  c:close()
  local id = http.get(gw.url .. "/Users?count=1", gw:auth()).json.Resources[1].id
  is_scim_error(body("PATCH", gw.url .. "/Users/" .. id, '{"schemas":["' .. PATCHOP ..
                     '"],"Operations":[{"op":"replace","path":"title","value":"\xc3"}]}'), 400, "invalidSyntax")
  is_scim_error(body("POST", gw.url .. "/.search", '{"filter":"userName eq \\"\xe2\x82\\""}'), 400,
                "invalidSyntax")
  is_scim_error(body("POST", gw.url .. "/Bulk", '{"Operations":[{"method":"DELETE","path":"/Users/\xff"}]}'),
                400, "invalidSyntax")
  expect.status(body("PATCH", gw.base .. "/admin/v1/" .. gw.tenant .. "/settings",
                     '{"product_name":"\xed\xa0\x80"}', ADMIN), 400)
  -- Filters in the query string (percent-encoded by the client).
  for _, f in ipairs{'userName eq "\xff"', 'userName eq "a\xc0\xafb"', 'user\xffName eq "a"',
                     'emails[value eq "\xf4\x90\x80\x80"]'} do
    is_scim_error(http.get(gw.url .. "/Users?filter=" .. http.escape(f), gw:auth()), 400, "invalidFilter")
  end
  expect.status(http.get(gw.url .. "/Users?filter=" .. http.escape('userName eq "zoë"'), gw:auth()), 200)
  -- Paths: the id is echoed in the detail, as valid UTF-8 (U+FFFD).
  r = http.get(gw.url .. "/Users/\xff\xfe", gw:auth())
  is_scim_error(r, 404)
  expect.truthy(r.json.detail:find(FFFD, 1, true), r.json.detail)
  -- A detail cut short mid-character (ids are shown up to 64 bytes).
  local cut = "a" .. string.rep("é", 40)
  is_scim_error(http.get(gw.url .. "/Groups/" .. cut, gw:auth()), 404)
  is_scim_error(http.delete(gw.url .. "/Users/" .. cut, gw:auth()), 404)
  r = http.post(gw.url .. "/Bulk", {Operations = {{method = "DELETE", path = "/Users/" .. cut}}}, gw:auth())
  expect.status(r, 200)
  expect.eq(r.json.Operations[1].status, "404")
  expect.truthy(r.json.Operations[1].response and r.json.Operations[1].response.detail,
                "the operation's error response is kept")
  r = http.get(gw.base .. "/admin/v1/" .. gw.tenant .. "/users/\xff", ADMIN)
  expect.status(r, 404)
  expect.truthy(r.json, "admin errors are JSON too")
  -- Raw bytes in the request line and a header name: CivetWeb refuses them.
  r, c = raw("GET " .. PATH .. "/Users/\xff HTTP/1.1\r\nHost: x\r\n" .. AUTH .. "\r\n\r\n")
  is_scim_error(r, 400)
  closed(c)
  r, c = raw("GET " .. PATH .. "/Users HTTP/1.1\r\nHost: x\r\nX-\xff: 1\r\n" .. AUTH .. "\r\n\r\n")
  is_scim_error(r, 400)
  closed(c)
  -- Header values: a token, a precondition, a forwarded address.
  r, c = raw(request_text("GET", PATH .. "/Users", {"Authorization: Bearer \xff\xfe", "Connection: close"}))
  is_scim_error(r, 401)
  r = http.patch(gw.url .. "/Users/" .. id, {schemas = {PATCHOP},
                 Operations = {{op = "replace", path = "title", value = "x"}}},
                 {Authorization = "Bearer " .. gw.token, ["If-Match"] = 'W/"\xff"'})
  is_scim_error(r, 412)
  expect.eq(count_users(), before)
  serves()
end)

test("a forwarded address is believed only when it is one", function()
  -- trusted_proxies = 127.0.0.1: the first X-Forwarded-For entry becomes
  -- the peer, which the access log and the token's last use record.
  local function peer_of(xff)
    local r = http.get(gw.url .. "/Users?count=0", {Authorization = "Bearer " .. gw.token,
                                                     ["X-Forwarded-For"] = xff})
    expect.status(r, 200)
    local id = r.headers["x-request-id"]
    local found
    eventually(function()
      for line in io.lines(gw.log) do
        local ok, j = pcall(json.decode, line)
        if ok and j.request_id == id and j.msg == "request" then found = j.peer end
      end
      return found
    end, "the access log line of " .. id)
    return found
  end
  expect.eq(peer_of("10.9.8.7, 127.0.0.1"), "10.9.8.7")
  expect.eq(peer_of('1.2.3.4","peer":"5.6.7.8'), "127.0.0.1")
  expect.eq(peer_of("\xff\xfe"), "127.0.0.1")
end)

test("header floods: too many fields is 431, an oversized header block 4xx; both close", function()
  local fields = {AUTH, "Connection: close"}
  for i = 1, 58 do fields[#fields + 1] = "X-Filler-" .. i .. ": v" end
  local r = raw(request_text("GET", PATH .. "/Users?count=0", fields))
  expect.status(r, 200, "61 fields are fine")
  -- Past 64 CivetWeb drops fields without a word (here the Authorization
  -- at the end): the gateway refuses rather than answer without them.
  fields = {"Connection: close"}
  for i = 1, 70 do fields[#fields + 1] = "X-Filler-" .. i .. ": v" end
  fields[#fields + 1] = AUTH
  local c
  r, c = raw(request_text("GET", PATH .. "/Users?count=0", fields))
  is_scim_error(r, 431)
  closed(c)
  r, c = raw(request_text("GET", PATH .. "/Users", {AUTH, "X-Big: " .. string.rep("b", 20000)}))
  expect.truthy(r and r.status >= 400 and r.status < 500, "a 4xx for 20 KB of headers")
  is_scim_error(r, r.status)
  closed(c)
  serves()
end)

test("slow clients are cut off at limits.request_timeout", function()
  local before = count_users()
  -- Headers a byte at a time, then nothing.
  local c = tcp.connect(gw.url)
  local head = "GET " .. PATH .. "/Users HTTP/1.1\r\nHost: 127.0.0.1\r\n"
  for i = 1, 12 do
    c:send(head:sub(i, i))
    sleep(0.05)
  end
  local bytes, how = c:recv(15)
  expect.eq(how, "closed", "a request that never completes is dropped")
  if #bytes > 0 then expect.truthy(bytes:find(ERROR, 1, true), bytes) end
  -- A body that trickles in, a byte at a time.
  c = tcp.connect(gw.url)
  c:send(request_text("POST", PATH .. "/Users", {AUTH, "Content-Type: application/scim+json",
                                                  "Content-Length: 200"}, '{"userName":'))
  local r
  for _ = 1, 150 do
    if not c:send(" ") then break end
    r = c:response(0.1)
    if r then break end
  end
  expect.truthy(r, "an answer before the body was complete")
  is_scim_error(r, 408)
  closed(c)
  -- A body that stops short: not taken for the whole body, even when what
  -- came is valid JSON on its own.
  r, c = raw(request_text("POST", PATH .. "/Users", {AUTH, "Content-Type: application/scim+json",
                                                      "Content-Length: 200"},
                          '{"userName":"short@example.com"}'), 15)
  is_scim_error(r, 408)
  closed(c)
  r, c = raw(request_text("POST", PATH .. "/Users", {AUTH, "Content-Type: application/scim+json",
                                                      "Content-Length: 200"}), 15)
  is_scim_error(r, 408)
  closed(c)
  expect.eq(count_users(), before)
  serves()
end)

test("a connection flood past limits.workers waits; service returns as soon as it stops", function()
  local flood = {}
  for i = 1, 24 do flood[i] = tcp.connect(gw.url) end
  -- A request during the flood waits for a worker; the process stays up.
  local out = tmpdir() .. "/code"
  local p = io.popen(string.format("curl -s -m 60 -o /dev/null -w '%%{http_code}' " ..
                                   "-H 'Authorization: Bearer %s' '%s/Users?count=0' > %s 2>/dev/null &",
                                   gw.token, gw.url, out))
  p:close()
  sleep(0.3)
  expect.truthy(gw:running())
  for _, c in ipairs(flood) do c:close() end
  eventually(function()
    local f = io.open(out)
    local code = f and f:read("a")
    if f then f:close() end
    return code == "200"
  end, "the waiting request to be served", 20)
  serves()
end)

test("idle connections that never let go are cut at the timeouts, freeing the workers", function()
  local flood = {}
  for i = 1, 24 do flood[i] = tcp.connect(gw.url) end
  -- Three times the workers, held open: each is dropped at request_timeout,
  -- so this request is served while the flood still holds its sockets.
  expect.status(http.get(gw.url .. "/Users?count=0", gw:auth(), {timeout = 45}), 200)
  for i, c in ipairs(flood) do closed(c, "flood connection " .. i .. " was dropped") end
  -- A keep-alive connection left idle is closed at limits.idle_timeout.
  local r, c = raw(request_text("GET", "/healthz"))
  expect.status(r, 200)
  closed(c, "an idle keep-alive connection is closed")
end)

test("long-polls are capped at limits.longpoll and cannot starve SCIM", function()
  local function poll()
    local c = tcp.connect(gw.url)
    c:send(request_text("GET", "/admin/v1/" .. gw.tenant .. "/approvals?wait=30",
                        {ADMIN_AUTH}))
    return c
  end
  local held = {poll(), poll()}
  sleep(0.5)
  -- Past the cap a long-poll is answered at once, empty.
  for i = 1, 6 do
    local r = poll():response(15)
    expect.truthy(r, "long-poll " .. (i + 2) .. " was answered at once")
    expect.status(r, 200)
    expect.eq(#r.json.approvals, 0)
  end
  serves()
  -- The two held ones wake when an invitation arrives.
  local u = http.post(gw.url .. "/Users", {userName = "invitee@example.com",
                      emails = {{value = "invitee@example.com", type = "work", primary = true}}}, gw:auth())
  expect.status(u, 201)
  local inv = http.post(gw.base .. "/admin/v1/" .. gw.tenant .. "/invitations",
                        {users = {u.json.id}}, ADMIN)
  expect.status(inv, 200)
  for _, c in ipairs(held) do
    local r = c:response(15)
    expect.truthy(r, "the held long-poll answered")
    expect.eq(r.json.approvals[1].user, u.json.id)
  end
end)

test("the gateway still serves, and its log is JSON lines", function()
  local r = http.post(gw.url .. "/Users", {userName = "after@example.com"}, gw:auth())
  expect.status(r, 201)
  local n = 0
  for line in io.lines(gw.log) do
    n = n + 1
    local ok, err = pcall(json.decode, line)
    expect.truthy(ok, "log line " .. n .. " is JSON: " .. tostring(err))
  end
  expect.truthy(n > 50, n .. " lines")
end)
