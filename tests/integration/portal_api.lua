-- The admin API routes the portal's pages read (issue 8): users by a
-- userName prefix (with paging and a state), groups with what the groups
-- script decided, the audit trail with filters, Health, and the tenants a
-- credential may see.

local dir = tmpdir()
local f = assert(io.open(dir .. "/groups.lua", "w"))
f:write([[
return { accept = function(g, ctx)
  if g.displayName:match("^Local ") then return "ignore", "only global groups count" end
  return "accept"
end }
]])
f:close()
local gw = gateway.start{scripts = dir}
local API = gw.base .. "/admin/v1/" .. gw.tenant
local function api(path)
  return http.get(API .. path, {Authorization = "Bearer " .. gw.admin_token})
end

test("users: a userName prefix, case-insensitive, with a state and paging", function()
  for _, n in ipairs{"ann", "anna", "anton", "bert", "ANDY"} do
    expect.status(http.post(gw.url .. "/Users", {userName = n .. "@contoso.example"}, gw:auth()), 201)
  end
  local r = api("/users?q=an")
  expect.status(r, 200)
  expect.eq(r.json.total, 4)
  local names = {}
  for _, u in ipairs(r.json.users) do names[#names + 1] = u.userName end
  expect.eq(names, {"ANDY@contoso.example", "ann@contoso.example", "anna@contoso.example",
                    "anton@contoso.example"})
  r = api("/users?q=an&start=2&count=2")
  expect.eq(r.json.total, 4)
  expect.eq(#r.json.users, 2)
  expect.eq(r.json.users[1].userName, "ann@contoso.example")
  expect.eq(api("/users?q=an&state=Staged").json.total, 4)
  expect.eq(api("/users?q=an&state=Invited").json.total, 0)
  expect.eq(api("/users?q=" .. http.escape('a" or userName pr or "')).json.total, 0,
            "the prefix is a value, never filter text")
  expect.eq(api("/users?q=").json.total, 5)
  expect.status(api("/users?q=" .. string.rep("a", 300)), 400)
end)

test("groups: accepted or ignored, and why", function()
  expect.status(http.post(gw.url .. "/Groups", {displayName = "Local Admins"}, gw:auth()), 201)
  expect.status(http.post(gw.url .. "/Groups", {displayName = "Engineering", externalId = "e1"},
                          gw:auth()), 201)
  local r = api("/groups")
  expect.status(r, 200)
  expect.eq(r.json.total, 2)
  local eng, loc = r.json.groups[1], r.json.groups[2]
  expect.eq(eng.displayName, "Engineering")
  expect.eq(eng.policy, "accepted")
  expect.eq(eng.reason, json.null)
  expect.eq(eng.externalId, "e1")
  expect.eq(loc.policy, "ignored")
  expect.eq(loc.reason, "only global groups count")
  expect.eq(api("/groups?q=loc").json.total, 1)
end)

test("events: the whole audit trail, by type, subject and time, with a cursor", function()
  local all = api("/events?limit=1000")
  expect.status(all, 200)
  expect.truthy(#all.json.events >= 7)
  local created = api("/events?type=user.created")
  expect.eq(#created.json.events, 5)
  local some = api("/events?type=group.created,user.created&limit=3")
  expect.eq(#some.json.events, 3)
  local rest = api("/events?type=group.created,user.created&since=" .. some.json.cursor)
  expect.eq(#rest.json.events, 4)
  local one = created.json.events[1]
  local mine = api("/events?subject=" .. one.subject)
  expect.truthy(#mine.json.events >= 1)
  for _, e in ipairs(mine.json.events) do expect.eq(e.subject, one.subject) end
  expect.eq(#api("/events?from=2999-01-01T00:00:00Z").json.events, 0)
  expect.status(api("/events?from=yesterday"), 400)
  expect.status(api("/events?since=x"), 400)
end)

test("health: the last request from Entra, errors and 401s per minute", function()
  for _ = 1, 3 do
    expect.status(http.get(gw.url .. "/Users", {Authorization = "Bearer sgt_0000000000000000.old"}), 401)
  end
  expect.status(http.post(gw.url .. "/Users", {userName = "ann@contoso.example"}, gw:auth()), 409)
  -- Last use is written off the request path, within a few seconds.
  local r = eventually(function()
    local h = api("/health")
    return h.json.lastRequest ~= json.null and h
  end, "the token's last use", 10)
  expect.match(r.json.lastRequest, "^%d%d%d%d%-")
  expect.eq(r.json.lastAddress, "127.0.0.1")
  expect.eq(r.json.liveTokens, 1)
  expect.eq(r.json.refusedWrites24h, 1)
  expect.truthy(r.json.lastHour.requests >= 11, "requests " .. r.json.lastHour.requests)
  expect.eq(r.json.lastHour.unauthorized, 3)
  expect.eq(r.json.lastHour.errors, 1)
  expect.truthy(r.json.lastHour.unauthorizedPeakPerMinute >= 2, "3 in one minute, or across two")
  expect.truthy(#r.json.lastHour.minutes >= 1)
end)

test("tenants: an operator sees every tenant, a tenant admin its own", function()
  gw:run("tenant", "create", "second")
  local r = http.get(gw.base .. "/admin/v1/tenants", {Authorization = "Bearer " .. gw.admin_token})
  expect.status(r, 200)
  expect.eq(#r.json.tenants, 2)
  local a = json.decode(gw:run("admin", "create", gw.tenant, "amy").stdout:match("([^\n]+)\n?$"))
  r = http.get(gw.base .. "/admin/v1/tenants", {Authorization = "Bearer " .. a.token})
  expect.eq(#r.json.tenants, 1)
  expect.eq(r.json.tenants[1].name, "test")
end)

test("scripts: the tenant's hook scripts with version and error, no server paths", function()
  local r = api("/scripts")
  expect.status(r, 200)
  local names = {}
  for _, s in ipairs(r.json.scripts) do
    names[s.name] = s
    expect.eq(s.path, nil, "a server path shown to a tenant admin")
  end
  expect.truthy(names.groups, r.body)
  expect.eq(names.groups.loaded, true)
end)
