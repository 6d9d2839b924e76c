-- The change feed's webhook (DESIGN §2): every user and group change of a
-- tenant with changes_webhook_url goes out through changes.lua, in commit
-- order, at least once, with a key per batch; a failing receiver is retried.

local SINK = assert(os.getenv("SG_HTTP_SINK"), "SG_HTTP_SINK names the http_sink test tool")

local dir = tmpdir()
local p = assert(io.popen(string.format("HTTP_SINK_FAIL_FIRST=1 sh -c 'echo $$; exec %s 0 %s' &",
                                        SINK, dir)))
local sink_pid, port = tonumber(p:read("l")), tonumber(p:read("l"))
assert(sink_pid and port, "http_sink did not start")

local gw = gateway.start{config = {["outbox.poll"] = "200ms", ["outbox.housekeeping"] = "300ms",
                                   ["outbox.retry_base"] = "500ms", ["outbox.retry_max"] = "1s"}}
local API = gw.base .. "/admin/v1/" .. gw.tenant
local function api(method, path, body)
  return http.request{method = method, url = API .. path, headers = {Authorization = "Bearer " .. gw.admin_token},
                      body = body and json.encode(body), raw = true}
end


-- The requests the sink stored: {head = "...", body = decoded JSON}, in order.
local function received()
  local out = {}
  for i = 1, 1000 do
    local f = io.open(dir .. "/" .. i .. ".req")
    if not f then break end
    local raw = f:read("a")
    f:close()
    local head, body = raw:match("^(.-)\r\n\r\n(.*)$")
    out[i] = {head = head, body = json.decode(body)}
  end
  return out
end

local function types(reqs)
  local t = {}
  for _, r in ipairs(reqs) do
    for _, e in ipairs(r.body.events) do t[#t + 1] = e.type .. ":" .. e.subject end
  end
  return t
end

local a, b

test("changes go to the webhook in commit order, after a failed first attempt", function()
  expect.status(api("PATCH", "/settings", {changes_webhook_url = "http://127.0.0.1:" .. port .. "/hook"}), 200)
  sleep(0.5) -- housekeeping picks the webhook up
  a = http.post(gw.url .. "/Users", {userName = "a@x.example"}, gw:auth()).json.id
  b = http.post(gw.url .. "/Users", {userName = "b@x.example"}, gw:auth()).json.id
  expect.status(http.delete(gw.url .. "/Users/" .. a, gw:auth()), 204)
  eventually(function() return #types(received()) >= 3 end, "three events at the receiver")
  local reqs = received()
  expect.eq(types(reqs), {"user.created:" .. a, "user.created:" .. b, "user.deleted:" .. a})
  local r = reqs[1]
  expect.match(r.head, "^POST /hook HTTP/1%.1")
  local key = r.head:match("\r\n[Ii]dempotency%-[Kk]ey: ([^\r\n]+)")
  expect.truthy(key and key:find("changes-" .. gw.tenant, 1, true), "a batch key: " .. tostring(key))
  expect.eq(r.body.tenant, gw.tenant)
  local last = r.body.events[#r.body.events].cursor
  expect.eq(r.body.cursor, last)
end)

test("the cursor moves on: nothing is sent twice, new changes follow", function()
  local before = #received()
  sleep(1)
  expect.eq(#received(), before, "no repeat after a success")
  local s = api("GET", "/settings").json.settings
  expect.truthy(tonumber(s.changes_webhook_cursor) > 0, "the cursor is kept in the settings")
  local g = http.post(gw.url .. "/Groups", {displayName = "Sales", members = {{value = b}}}, gw:auth())
  expect.status(g, 201)
  eventually(function() return #received() > before end, "the next batch")
  local t = types(received())
  expect.eq(t[#t - 1], "group.created:" .. g.json.id)
  expect.eq(t[#t], "group.members_added:" .. g.json.id)
  local first = received()[before + 1].body.events[1]
  expect.truthy(tonumber(first.cursor) > tonumber(s.changes_webhook_cursor), "the batch starts after the cursor")
  local added
  for _, r in ipairs(received()) do
    for _, e in ipairs(r.body.events) do
      if e.type == "group.members_added" then added = e end
    end
  end
  expect.eq(added.data, {members = {b}, count = 1}, json.encode(added))
end)

test("cleanup: stop the receiver", function()
  os.execute("kill " .. sink_pid)
end)
