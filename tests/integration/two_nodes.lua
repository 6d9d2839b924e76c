-- Two gateway nodes sharing one PostgreSQL database (issue 6): a write on one
-- is read on the other; concurrent membership PATCHes through both all land;
-- an invitation is delivered by exactly one node although both run outbox
-- threads; approvals made through one node are seen by the other; killing a
-- node under load loses no acknowledged write. The database is the
-- throw-away cluster the test run starts (SG_PG_DSN).

local DSN = assert(os.getenv("SG_PG_DSN"), "SG_PG_DSN names the test run's PostgreSQL database")
local SINK = assert(os.getenv("SG_SMTP_SINK"), "SG_SMTP_SINK names the smtp_sink test tool")

-- Unique per run: the database outlives one test file.
local run = io.open("/proc/sys/kernel/random/uuid"):read("l"):sub(1, 8)
local scripts = tmpdir()
for _, n in ipairs{"mapping.lua", "groups.lua", "invite.lua", "changes.lua"} do
  local src = assert(io.open(runner.dir .. "/../../scripts/" .. n)):read("a")
  local f = assert(io.open(scripts .. "/" .. n, "w"))
  f:write(src)
  f:close()
end
local config = {storage = "postgres", ["storage.dsn"] = DSN, ["outbox.poll"] = "200ms",
                ["outbox.lease"] = "5s", ["outbox.housekeeping"] = "1s"}
local n1 = gateway.start{config = config, scripts = scripts, tenant = "two-nodes-" .. run,
                         operator = "op-" .. run}
local n2 = gateway.start{config = config, scripts = scripts, join = n1}
local nodes = {n1, n2}

local function admin(gw, method, path, body)
  return http.request{method = method, url = gw.base .. "/admin/v1/" .. gw.tenant .. path,
                      headers = {Authorization = "Bearer " .. gw.admin_token},
                      body = body and json.encode(body), raw = true}
end

local PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

test("a user written through one node is read through the other", function()
  local r = http.post(n1.url .. "/Users", {userName = "ada@two.example", displayName = "Ada"}, n1:auth())
  expect.status(r, 201)
  local got = http.get(n2.url .. "/Users/" .. r.json.id, n2:auth())
  expect.status(got, 200)
  expect.eq(got.json.displayName, "Ada")
  local f = http.get(n2.url .. "/Users?filter=" .. http.escape('userName eq "ADA@two.example"'), n2:auth())
  expect.eq(f.json.totalResults, 1)
  -- A uniqueness clash is seen across nodes too.
  expect.status(http.post(n2.url .. "/Users", {userName = "ada@two.example"}, n2:auth()), 409)
  -- A PATCH through n2 is what n1 reads next, with the new version.
  local p = http.patch(n2.url .. "/Users/" .. r.json.id, {schemas = {PATCH},
    Operations = {{op = "replace", path = "displayName", value = "Ada L."}}}, n2:auth())
  expect.status(p, 200)
  local again = http.get(n1.url .. "/Users/" .. r.json.id, n1:auth())
  expect.eq(again.json.displayName, "Ada L.")
  expect.eq(again.headers.etag, p.headers.etag)
end)

test("a portal session works on both nodes and a sign-out on one ends it on the other", function()
  local r = n1:run("admin", "create", n1.tenant, "portal-" .. run)
  expect.eq(r.status, 0, r.stderr)
  local pw = json.decode(r.stdout:match("([^\n]+)\n?$")).password
  r = http.request{method = "POST", url = n1.base .. "/admin/v1/session",
                   headers = {["Content-Type"] = "application/json"},
                   body = json.encode{login = "portal-" .. run, password = pw, tenant = n1.tenant},
                   raw = true}
  expect.status(r, 201)
  local cookie = r.headers["set-cookie"]:match("^(scimgate_session=[^;]+)")
  local csrf = r.json.csrfToken
  local function users(gw) return http.get(gw.base .. "/admin/v1/" .. gw.tenant .. "/users",
                                            {Cookie = cookie}) end
  expect.status(users(n2), 200, "the session is read from the shared store")
  expect.status(http.request{method = "DELETE", url = n2.base .. "/admin/v1/session",
                             headers = {Cookie = cookie, ["X-CSRF-Token"] = csrf}}, 204)
  expect.status(users(n1), 401, "signed out on n2, gone on n1 at once")
  expect.status(users(n2), 401)
end)

test("concurrent membership PATCHes through both nodes all land", function()
  local g = http.post(n1.url .. "/Groups", {displayName = "Everyone " .. run}, n1:auth())
  expect.status(g, 201)
  local ids = {}
  for i = 1, 40 do
    local r = http.post(nodes[i % 2 + 1].url .. "/Users", {userName = "m" .. i .. "@two.example"},
                        nodes[i % 2 + 1]:auth())
    expect.status(r, 201)
    ids[i] = r.json.id
  end
  -- 40 PATCHes at once, half through each node, each adding one member.
  local work = tmpdir()
  local list = assert(io.open(work .. "/jobs", "w"))
  for i, id in ipairs(ids) do
    local gw = nodes[i % 2 + 1]
    local body = assert(io.open(work .. "/b" .. i, "w"))
    body:write(json.encode{schemas = {PATCH}, Operations = {{op = "Add", path = "members",
                                                             value = {{value = id}}}}})
    body:close()
    list:write(string.format("%s/Groups/%s %s %s/b%d\n", gw.url, g.json.id, gw.token, work, i))
  end
  list:close()
  os.execute(string.format("xargs -P 20 -L 1 sh -c 'curl -s -o /dev/null -w \"%%{http_code}\\n\" " ..
    "-X PATCH -H \"Authorization: Bearer $1\" -H \"Content-Type: application/scim+json\" " ..
    "--data @\"$2\" \"$0\"' < %s/jobs > %s/codes", work, work))
  local codes = {}
  for line in io.lines(work .. "/codes") do codes[line] = (codes[line] or 0) + 1 end
  expect.eq(codes, {["204"] = 40})
  local members = http.get(n2.url .. "/Groups/" .. g.json.id, n2:auth()).json.members
  expect.eq(#members, 40, "every member landed")
end)

test("an invitation is delivered by exactly one node; approvals are seen by both", function()
  local dir = tmpdir()
  local p = assert(io.popen(string.format("sh -c 'echo $$; exec %s 0 %s' 2>/dev/null &", SINK, dir)))
  local sink_pid, port = tonumber(p:read("l")), tonumber(p:read("l"))
  expect.status(admin(n1, "PATCH", "/settings", {invite_smtp_url = "smtp://127.0.0.1:" .. port}), 200)
  local ids = {}
  for i = 1, 20 do
    ids[i] = http.post(n1.url .. "/Users", {userName = "inv" .. i .. "@two.example"}, n1:auth()).json.id
  end
  local r = admin(n2, "POST", "/invitations", {users = ids})
  expect.status(r, 200)
  expect.eq(#r.json.invitations, 20)
  -- The device, enrolled through n2, sees them through n1.
  local key = tmpdir() .. "/device.json"
  local e = n2:run("device", "enroll", n2.tenant, "phone", "--key", key, "--admin-token", n2.admin_token)
  expect.eq(e.status, 0, e.stderr)
  expect.eq(#admin(n1, "GET", "/approvals").json.approvals, 20)
  local a = n1:run("device", "approve", n1.tenant, "--key", key, "--all",
                   "--url", n1.base)
  expect.eq(a.status, 0, a.stderr)
  eventually(function()
    return admin(n1, "GET", "/users?state=Invited&count=0").json.total == 20
  end, "20 users Invited", 30)
  sleep(1)
  local keys, n = {}, 0
  for name in io.popen("ls " .. dir):lines() do
    local text = io.open(dir .. "/" .. name):read("a")
    keys[text:match("Message%-ID: <([^>]+)>")] = true
    n = n + 1
  end
  local distinct = 0
  for _ in pairs(keys) do distinct = distinct + 1 end
  expect.eq(n, 20, "exactly one message per invitation")
  expect.eq(distinct, 20)
  os.execute("kill " .. sink_pid)
end)

test("killing one node under load loses no acknowledged write", function()
  local work = tmpdir()
  -- Two writers, one per node: each records every answer; a 201's body names the user.
  local writer = work .. "/writer.sh"
  local f = assert(io.open(writer, "w"))
  f:write([[
n=0
while [ ! -f "$4/stop" ]; do
  n=$((n+1))
  curl -s -m 5 -X POST -H "Authorization: Bearer $2" -H "Content-Type: application/scim+json" \
    --data "{\"userName\":\"load$3-$n@two.example\"}" -w "\n%{http_code}\n" "$1/Users" >> "$4/out$3"
done
]])
  f:close()
  local loops = {}
  for i, gw in ipairs(nodes) do
    loops[i] = io.popen(string.format("sh %s %s %s %d %s &", writer, gw.url, gw.token, i, work))
  end
  sleep(1.5)
  n1:kill()
  sleep(1)
  f = io.open(work .. "/stop", "w")
  f:close()
  for _, l in ipairs(loops) do l:close() end
  sleep(1)
  local acked = {}
  for i = 1, 2 do
    local text = io.open(work .. "/out" .. i):read("a")
    for body in text:gmatch("(%b{})\n201") do acked[#acked + 1] = json.decode(body).id end
  end
  expect.truthy(#acked > 20, "writes flowed (" .. #acked .. " acknowledged)")
  for _, id in ipairs(acked) do
    expect.status(http.get(n2.url .. "/Users/" .. id, n2:auth()), 200, "acknowledged user " .. id)
  end
  -- n1 comes back and serves the same data.
  n1:restart()
  expect.status(http.get(n1.url .. "/Users/" .. acked[#acked], n1:auth()), 200)
end)
