-- Tenant isolation (issue 7): two tenants, A and B, each with users, groups,
-- an invitation, an admin device, tokens and an admin. Every SCIM endpoint
-- with A's token and B's ids answers as for ids that do not exist (404, or an
-- empty list) and leaks nothing; B's token on A's tenant URL is a 401 that
-- says no more than on a tenant URL that does not exist; memberships never
-- cross; every admin route with A's admin and B's ids or tenant is 404/403.
-- The SCIM endpoints and admin routes are read from the router and admin.c,
-- so a route added there without a case here fails this file.

local gw = gateway.start{tenant = "tenant-a"}
local PATCHOP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
local LC = "urn:scimgate:schemas:extension:lifecycle:2.0:User"
local SRC = runner.dir .. "/../../core/src/"
local A = {tenant = gw.tenant, url = gw.url, token = gw.token}
local B = {}
local NOBODY = "00000000-0000-4000-8000-000000000000"
local ZERO_SIG = string.rep("A", 86) .. "=="

local function bearer(t) return {Authorization = "Bearer " .. t} end
local function last_line(s) return s:match("([^\n]+)\n?$") end

local function run(...)
  local r = gw:run(...)
  expect.eq(r.status, 0, r.stderr)
  return last_line(r.stdout)
end

-- Everything B owns that A must never see.
local secrets = {}
local function secret(v) secrets[#secrets + 1] = v; return v end
-- An answer holds none of them, except what the request itself named.
local function clean(r, sent, what)
  for _, s in ipairs(secrets) do
    if not sent:find(s, 1, true) then
      expect.truthy(not r.body:find(s, 1, true), what .. " leaks " .. s .. ": " .. r.body:sub(1, 300))
    end
  end
  return r
end

local function req(method, url, token, body)
  local text = body and json.encode(body)
  local r = http.request{method = method, url = url, headers = bearer(token), body = text, raw = body ~= nil}
  return clean(r, url .. (text or ""), method .. " " .. url)
end

-- s with every `a` replaced by `b` (no patterns).
local function swap(s, a, b)
  local out, i = {}, 1
  while true do
    local j, k = s:find(a, i, true)
    if not j then break end
    out[#out + 1] = s:sub(i, j - 1) .. b
    i = k + 1
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

local function scim(method, path, body, token) return req(method, A.url .. path, token or A.token, body) end

-- 404 for B's id, and the same answer as for an id that exists nowhere.
local function same_404(method, path_of, body_of)
  local function call(id)
    local r = scim(method, path_of(id), body_of and body_of(id))
    expect.status(r, 404, method .. " " .. path_of(id))
    return swap(r.json.detail or "", id, "<id>")
  end
  for _, id in ipairs{B.user, B.group, B.other_user} do
    expect.eq(call(id), call(NOBODY), "no difference between elsewhere and nowhere")
  end
end

test("setup: tenants A and B, with users, groups, an invitation, devices, tokens and admins", function()
  local url = run("tenant", "create", "tenant-b")
  B.tenant = secret(url:match("/scim/v2/(%x+)$"))
  B.url = gw.base .. "/scim/v2/" .. B.tenant
  B.token = run("token", "generate", B.tenant)
  B.token_id = secret(B.token:match("^sgt_(%x+)%."))
  A.token_id = A.token:match("^sgt_(%x+)%.")
  A.admin = json.decode(run("admin", "create", A.tenant, "alice")).token
  B.admin = json.decode(run("admin", "create", B.tenant, "bob")).token
  A.key, B.key = tmpdir() .. "/a.json", tmpdir() .. "/b.json"
  A.device = run("device", "enroll", A.tenant, "phone-a", "--key", A.key, "--admin-token", A.admin)
  B.device = secret(run("device", "enroll", B.tenant, "phone-b", "--key", B.key, "--admin-token", B.admin))
  A.device_token = json.decode(io.open(A.key):read("a")).token
  B.device_token = json.decode(io.open(B.key):read("a")).token
  local function user(t, name, ext)
    local r = http.post(t.url .. "/Users", {userName = name, externalId = ext, displayName = name,
      emails = {{value = name, type = "work", primary = true}}}, bearer(t.token))
    expect.status(r, 201)
    return r.json.id
  end
  B.user = secret(user(B, secret("secret-user@b.example"), secret("ext-b-secret")))
  B.other_user = secret(user(B, secret("second-user@b.example"), "ext-b-2"))
  local g = http.post(B.url .. "/Groups", {displayName = secret("B Secret Group"), externalId = "gext-b",
                      members = {{value = B.user}}}, bearer(B.token))
  expect.status(g, 201)
  B.group = secret(g.json.id)
  local inv = http.post(gw.base .. "/admin/v1/" .. B.tenant .. "/invitations", {users = {B.other_user}},
                        bearer(B.admin))
  expect.status(inv, 200)
  B.job = secret(inv.json.invitations[1].job)
  B.deleted = secret(user(B, "gone@b.example", "ext-b-gone"))
  expect.status(http.delete(B.url .. "/Users/" .. B.deleted, bearer(B.token)), 204)
  A.user = user(A, "alice@a.example", "ext-a")
  g = http.post(A.url .. "/Groups", {displayName = "A Group"}, bearer(A.token))
  expect.status(g, 201)
  A.group = g.json.id
end)

test("the SCIM endpoints covered here are the router's", function()
  local text = assert(io.open(SRC .. "router.c")):read("a")
  local names = {}
  for name in text:match("eps%[%] = (%b{})"):gmatch('{"([%w]+)", SG_EP_') do names[#names + 1] = name end
  table.sort(names)
  expect.eq(names, {"Bulk", "Groups", "Me", "ResourceTypes", "Schemas", "ServiceProviderConfig", "Users"},
            "a new SCIM endpoint needs its isolation cases in this file")
end)

test("A's token with B's ids: GET, PUT, PATCH and DELETE are 404, as for ids that exist nowhere", function()
  for _, rt in ipairs{"/Users/", "/Groups/"} do
    same_404("GET", function(id) return rt .. id end)
    same_404("GET", function(id) return rt .. id .. "?attributes=userName" end)
    same_404("DELETE", function(id) return rt .. id end)
    same_404("PUT", function(id) return rt .. id end,
             function() return rt == "/Users/" and {userName = "x@a.example"} or {displayName = "x"} end)
    same_404("PATCH", function(id) return rt .. id end, function()
      return {schemas = {PATCHOP}, Operations = {{op = "replace", path = "displayName", value = "taken"}}}
    end)
  end
  -- B's resources did not change.
  local r = http.get(B.url .. "/Users/" .. B.user, bearer(B.token))
  expect.status(r, 200)
  expect.eq(r.json.displayName, "secret-user@b.example")
  expect.eq(r.json.meta.version, 'W/"1"')
  r = http.get(B.url .. "/Groups/" .. B.group, bearer(B.token))
  expect.eq(r.json.displayName, "B Secret Group")
  expect.eq(#r.json.members, 1)
end)

test("A's filters, lists and searches find none of B's resources", function()
  local function none(path, body)
    local r = body and scim("POST", path, body) or scim("GET", path)
    expect.status(r, 200, path)
    expect.eq(r.json.totalResults, 0, path .. " " .. (body and body.filter or ""))
  end
  local function f(s) return "?filter=" .. http.escape(s) end
  for _, q in ipairs{'id eq "' .. B.user .. '"', 'userName eq "secret-user@b.example"',
                     'externalId eq "ext-b-secret"', 'emails[value eq "secret-user@b.example"]',
                     'emails.value co "b.example"', 'userName sw "secret"',
                     'displayName eq "secret-user@b.example"',
                     LC .. ':state eq "PendingApproval"'} do
    none("/Users" .. f(q))
    none("/Users/.search", {filter = q})
  end
  for _, q in ipairs{'id eq "' .. B.group .. '"', 'displayName eq "B Secret Group"', 'externalId eq "gext-b"',
                     'members[value eq "' .. B.user .. '"]', 'members.value eq "' .. B.user .. '"'} do
    none("/Groups" .. f(q))
    none("/Groups/.search", {filter = q})
  end
  none("/.search", {filter = 'id eq "' .. B.user .. '" or id eq "' .. B.group .. '"'})
  -- A cursor B was given is not valid in A, even for the same query.
  local page = http.get(B.url .. "/Users?count=1&cursor=", bearer(B.token))
  expect.status(page, 200)
  expect.truthy(page.json.nextCursor, "B has a second page")
  local r = scim("GET", "/Users?count=1&cursor=" .. http.escape(page.json.nextCursor))
  expect.status(r, 400)
  expect.eq(r.json.scimType, "invalidCursor")
  -- Whole lists, sorted and paged, hold only A's.
  r = scim("GET", "/Users?count=1000&sortBy=userName")
  expect.eq(r.json.totalResults, 1)
  r = scim("POST", "/.search", {count = 1000})
  expect.eq(r.json.totalResults, 2)
  r = scim("GET", "/Groups?count=1000&attributes=members")
  expect.eq(r.json.totalResults, 1)
end)

test("memberships never cross tenants", function()
  local function members(t, g)
    local r = http.get(t.url .. "/Groups/" .. g, bearer(t.token))
    expect.status(r, 200)
    local m = {}
    for _, x in ipairs(r.json.members or {}) do m[#m + 1] = x.value end
    return m
  end
  local add = {schemas = {PATCHOP}, Operations = {{op = "add", path = "members", value = {{value = B.user}}}}}
  local r = scim("PATCH", "/Groups/" .. A.group, add)
  expect.status(r, 400)
  local nowhere = scim("PATCH", "/Groups/" .. A.group, {schemas = {PATCHOP},
    Operations = {{op = "add", path = "members", value = {{value = NOBODY}}}}})
  expect.eq(r.json.detail, swap(nowhere.json.detail, NOBODY, B.user),
            "the same refusal as for a user that exists nowhere")
  -- Mixed with a user of A's own: refused whole, nothing linked.
  add.Operations[1].value = {{value = A.user}, {value = B.user}}
  expect.status(scim("PATCH", "/Groups/" .. A.group, add), 400)
  expect.status(scim("PATCH", "/Groups/" .. A.group, {schemas = {PATCHOP},
    Operations = {{op = "replace", path = "members", value = {{value = B.user}}}}}), 400)
  expect.status(scim("PUT", "/Groups/" .. A.group, {displayName = "A Group", members = {{value = B.user}}}), 400)
  expect.status(scim("POST", "/Groups", {displayName = "Cross", members = {{value = B.group}}}), 400)
  expect.status(scim("POST", "/Groups", {displayName = "Cross", members = {{value = B.user}}}), 400)
  expect.eq(#members(A, A.group), 0)
  -- Removing B's user through A's group is a no-op, for A and for B.
  expect.status(scim("PATCH", "/Groups/" .. A.group, {schemas = {PATCHOP},
    Operations = {{op = "remove", path = 'members[value eq "' .. B.user .. '"]'}}}), 204)
  expect.eq(members(B, B.group), {B.user})
  -- A user's groups show A's only; a manager naming B's user links nothing.
  expect.status(scim("PATCH", "/Groups/" .. A.group, {schemas = {PATCHOP},
    Operations = {{op = "add", path = "members", value = {{value = A.user}}}}}), 204)
  local u = http.get(B.url .. "/Users/" .. B.user, bearer(B.token))
  for _, g in ipairs(u.json.groups or {}) do expect.ne(g.value, A.group) end
  expect.eq(scim("GET", "/Groups?filter=" .. http.escape('members[value eq "' .. B.user .. '"]')).json
    .totalResults, 0)
end)

test("Bulk with A's token: B's ids are 404 per operation; bulkId references stay in A", function()
  local r = scim("POST", "/Bulk", {schemas = {"urn:ietf:params:scim:api:messages:2.0:BulkRequest"},
    Operations = {
      {method = "PATCH", path = "/Users/" .. B.user, data = {schemas = {PATCHOP},
        Operations = {{op = "replace", path = "displayName", value = "bulk"}}}},
      {method = "PUT", path = "/Groups/" .. B.group, data = {displayName = "bulk"}},
      {method = "DELETE", path = "/Users/" .. B.other_user},
      {method = "POST", path = "/Users", bulkId = "u1", data = {userName = "bulk-user@a.example"}},
      {method = "POST", path = "/Groups", bulkId = "g1", data = {displayName = "Bulk group",
        members = {{value = "bulkId:u1"}, {value = B.user}}}},
      {method = "POST", path = "/Groups", bulkId = "g2", data = {displayName = "Bulk group 2",
        members = {{value = "bulkId:u1"}}}},
      {method = "DELETE", path = "/../" .. B.tenant .. "/Users/" .. B.user},
      {method = "DELETE", path = "//scim/v2/" .. B.tenant .. "/Users/" .. B.user},
    }})
  expect.status(r, 200)
  local st = {}
  for i, op in ipairs(r.json.Operations) do st[i] = op.status end
  expect.eq(st, {"404", "404", "404", "201", "400", "201", "400", "400"})
  local g2 = r.json.Operations[6].location:match("([^/]+)$")
  local m = scim("GET", "/Groups/" .. g2).json.members
  expect.eq(#m, 1)
  expect.eq(m[1].value, r.json.Operations[4].location:match("([^/]+)$"))
  expect.status(http.get(B.url .. "/Users/" .. B.other_user, bearer(B.token)), 200)
  expect.eq(scim("GET", "/Groups?filter=" .. http.escape('displayName eq "Bulk group"')).json.totalResults, 0,
            "the refused group was not created")
end)

test("uniqueness is per tenant: A may take B's userName, externalId and displayName", function()
  expect.status(scim("POST", "/Users", {userName = "secret-user@b.example", externalId = "ext-b-secret"}), 201)
  expect.status(scim("POST", "/Groups", {displayName = "B Secret Group"}), 201)
  expect.eq(http.get(B.url .. "/Users?filter=" .. http.escape('userName eq "secret-user@b.example"'),
                     bearer(B.token)).json.Resources[1].id, B.user)
  -- (B's values are A's now too; later checks look for B's ids only.)
  local keep = {}
  for _, s in ipairs(secrets) do
    if s ~= "secret-user@b.example" and s ~= "ext-b-secret" and s ~= "B Secret Group" then keep[#keep + 1] = s end
  end
  secrets = keep
end)

test("discovery and /Me with A's token say nothing about B", function()
  for _, p in ipairs{"/ServiceProviderConfig", "/Schemas", "/ResourceTypes", "/ResourceTypes/User",
                     "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"} do
    local r = scim("GET", p)
    expect.status(r, 200, p)
    expect.truthy(not r.body:find(B.tenant, 1, true))
  end
  expect.status(scim("GET", "/Me"), 501)
end)

test("B's token on A's tenant URL is a 401 that says no more than on a tenant that does not exist", function()
  local ghost = gw.base .. "/scim/v2/" .. string.rep("f", 32)
  local calls = {
    {"GET", "/Users"}, {"GET", "/Users/" .. A.user}, {"GET", "/Groups/" .. A.group},
    {"POST", "/Users", {userName = "intruder@b.example"}},
    {"PUT", "/Users/" .. A.user, {userName = "intruder@b.example"}},
    {"PATCH", "/Groups/" .. A.group, {schemas = {PATCHOP},
      Operations = {{op = "add", path = "members", value = {{value = B.user}}}}}},
    {"DELETE", "/Users/" .. A.user}, {"POST", "/.search", {filter = "userName pr"}},
    {"POST", "/Users/.search", {}}, {"POST", "/Bulk", {Operations = {}}},
    {"GET", "/ServiceProviderConfig"}, {"GET", "/Schemas"}, {"GET", "/ResourceTypes"}, {"GET", "/Me"}, {"GET", ""},
  }
  for _, c in ipairs(calls) do
    local here = http.request{method = c[1], url = A.url .. c[2], headers = bearer(B.token),
                              body = c[3] and json.encode(c[3]), raw = c[3] ~= nil}
    local there = http.request{method = c[1], url = ghost .. c[2], headers = bearer(B.token),
                               body = c[3] and json.encode(c[3]), raw = c[3] ~= nil}
    expect.status(here, 401, c[1] .. " " .. c[2])
    expect.eq(here.body, there.body, c[1] .. " " .. c[2])
    expect.eq(here.headers["www-authenticate"], there.headers["www-authenticate"])
    -- and A's token on B's URL alike
    expect.status(req(c[1], B.url .. c[2], A.token, c[3]), 401, "A's token on B's URL")
  end
  local r = http.get(A.url .. "/Users/" .. A.user, bearer(A.token))
  expect.eq(r.json.meta.version, 'W/"1"', "A's user untouched")
  expect.eq(#scim("GET", "/Groups/" .. A.group).json.members, 1, "A's group untouched")
end)

-- ---- the admin API ------------------------------------------------------------

local function admin(method, tenant, path, body, token)
  return req(method, gw.base .. "/admin/v1/" .. tenant .. path, token or A.admin, body)
end

-- Every route of admin.c's table and every user action, with the requests
-- below. Keys are route names; a route in admin.c missing here fails.
local ROUTES = {
  approvals = {{"GET", "/approvals"}, {"POST", "/approvals", {approvals = {{job = "J", signature = ZERO_SIG}}}}},
  users = {{"GET", "/users"}, {"GET", "/users/U"}, {"GET", "/users/U/timeline"},
           {"POST", "/users/U/activate"}, {"POST", "/users/U/restore"},
           {"POST", "/users/U/detach", {reason = "r"}}, {"POST", "/users/U/attach"}, {"POST", "/users/U/resend"}},
  invitations = {{"POST", "/invitations", {users = {"U"}}}},
  jobs = {{"GET", "/jobs?user=U"}, {"POST", "/jobs/J/expire"}},
  changes = {{"GET", "/changes"}},
  settings = {{"GET", "/settings"}, {"PATCH", "/settings", {product_name = "A's"}}},
  alerts = {{"GET", "/alerts"}, {"DELETE", "/alerts/deletion_spike"}},
  devices = {{"GET", "/devices"}, {"POST", "/devices", {name = "x", publicKey = string.rep("A", 43) .. "="}},
             {"DELETE", "/devices/D"}},
  tokens = {{"GET", "/tokens"}, {"POST", "/tokens", {}}, {"DELETE", "/tokens/T"}},
  groups = {{"GET", "/groups"}, {"GET", "/groups?q=B"}},
  events = {{"GET", "/events?subject=U"}}, -- the whole trail: below, with the change feed
  health = {{"GET", "/health"}},
  scripts = {{"GET", "/scripts"}},
}
local ACTIONS = {"activate", "attach", "detach", "resend", "restore", "timeline"}

local function fill(s, ids)
  return (s:gsub("/U/", "/" .. ids.U .. "/"):gsub("/U$", "/" .. ids.U):gsub("=U$", "=" .. ids.U)
           :gsub("/J/", "/" .. ids.J .. "/"):gsub("/D$", "/" .. ids.D):gsub("/T$", "/" .. ids.T))
end
local function fill_body(b, ids)
  if not b then return nil end
  local t = json.decode(json.encode(b))
  if t.users then t.users = {ids.U} end
  if t.approvals then t.approvals[1].job = ids.J end
  return t
end

test("the admin routes covered here are admin.c's", function()
  local text = assert(io.open(SRC .. "admin.c")):read("a")
  local names, want = {}, {}
  for name in text:match("tenant_routes%[%] = (%b{})"):gmatch('{"([%w_]+)",') do names[#names + 1] = name end
  for name in pairs(ROUTES) do want[#want + 1] = name end
  table.sort(names)
  table.sort(want)
  expect.eq(names, want, "a new admin route needs its isolation cases in ROUTES")
  local actions, seen = {}, {}
  for a in text:gmatch('strcmp%(action, "([%w_]+)"%)') do
    if not seen[a] then actions[#actions + 1] = a; seen[a] = true end
  end
  table.sort(actions)
  expect.eq(actions, ACTIONS, "a new user action needs its case in ROUTES.users")
end)

test("A's admin on B's tenant: 403 on every route, as for a tenant that does not exist", function()
  local ids = {U = B.user, J = B.job, D = B.device, T = B.token_id}
  for name, calls in pairs(ROUTES) do
    for _, c in ipairs(calls) do
      local path, body = fill(c[2], ids), fill_body(c[3], ids)
      local r = admin(c[1], B.tenant, path, body)
      expect.status(r, 403, name .. ": " .. c[1] .. " " .. path)
      expect.eq(r.body, admin(c[1], string.rep("f", 32), path, body).body)
      expect.status(admin(c[1], B.tenant, path, body, A.device_token), 403, "A's device")
    end
  end
  expect.status(req("GET", gw.base .. "/admin/v1/scripts", A.admin), 403, "operator only")
end)

test("A's admin on A's tenant with B's ids: 404, refused or empty; B's objects unchanged", function()
  local ghost = {U = NOBODY, J = NOBODY, D = NOBODY, T = "0000000000000000"}
  local theirs = {U = B.other_user, J = B.job, D = B.device, T = B.token_id}
  -- A detail with its ids (hex and dashes) masked.
  local function masked(s) return (tostring(s or ""):gsub("[%x%-]+", "<id>")) end
  local function has_id(c)
    return c[2]:find("/[UJDT]/") or c[2]:find("/[UJDT]$") or c[2]:find("=U$") or
           (c[3] and (c[3].users or c[3].approvals))
  end
  for name, calls in pairs(ROUTES) do
    for _, c in ipairs(calls) do
      if has_id(c) then
        local r1 = admin(c[1], A.tenant, fill(c[2], theirs), fill_body(c[3], theirs),
                         name == "approvals" and c[1] == "POST" and A.device_token or nil)
        local r2 = admin(c[1], A.tenant, fill(c[2], ghost), fill_body(c[3], ghost),
                         name == "approvals" and c[1] == "POST" and A.device_token or nil)
        expect.eq(r1.status, r2.status, name .. ": " .. c[1] .. " " .. c[2])
        expect.truthy(r1.status == 404 or r1.status == 200,
                      name .. ": " .. c[1] .. " " .. c[2] .. " " .. r1.status)
        if r1.status == 404 then
          expect.eq(masked(r1.json.detail), masked(r2.json.detail))
        elseif r1.json.refused then
          expect.eq(#r1.json.refused, 1, name .. " refuses B's id")
          expect.eq(masked(r1.json.refused[1].detail), masked(r2.json.refused[1].detail))
        elseif r1.json.events then
          -- A's own refused attempts on that id (earlier tests) are A's
          -- audit trail; nothing of B's user's history.
          for _, e in ipairs(r1.json.events) do
            expect.eq(e.type, "scim.refused", r1.body:sub(1, 300))
            expect.eq(e.actor, "token:" .. A.token_id)
          end
        elseif r1.json.jobs then
          expect.eq(#r1.json.jobs, 0, "no jobs of B's user")
        end
      end
    end
  end
  -- A's lists hold nothing of B's.
  for _, p in ipairs{"/users?count=1000", "/users?q=secret", "/jobs", "/devices", "/tokens", "/approvals",
                     "/alerts", "/settings", "/groups", "/groups?q=B", "/health"} do
    expect.status(admin("GET", A.tenant, p, nil, p == "/approvals" and A.device_token or nil), 200, p)
  end
  -- A's change feed and audit trail name B's ids only where A's own
  -- requests did (its refused attempts, the no-op removal of B's user from
  -- A's group); nothing B did, and no B resource as a subject of a change.
  local feed = http.get(gw.base .. "/admin/v1/" .. A.tenant .. "/changes?limit=1000", bearer(A.admin))
  expect.status(feed, 200)
  local bid = {[B.user] = true, [B.other_user] = true, [B.group] = true}
  for _, e in ipairs(feed.json.events) do
    expect.truthy(e.actor == "token:" .. A.token_id or e.actor == "admin:alice", e.actor)
    expect.truthy(not bid[e.subject or ""], e.type .. " of " .. tostring(e.subject))
  end
  -- The audit trail (every event, not only changes) likewise: B's ids only
  -- in A's own refused requests.
  local audit = http.get(gw.base .. "/admin/v1/" .. A.tenant .. "/events?limit=1000", bearer(A.admin))
  expect.status(audit, 200)
  expect.truthy(#audit.json.events > 0, "A's audit trail")
  for _, e in ipairs(audit.json.events) do
    if bid[e.subject or ""] then
      expect.truthy(e.type == "scim.refused" or e.type == "group.members_removed", e.type)
      expect.eq(e.actor, "token:" .. A.token_id)
    end
    expect.truthy(not json.encode(e.data or {}):find(B.tenant, 1, true), "B's tenant in " .. e.type)
  end
  local bs = http.get(gw.base .. "/admin/v1/" .. B.tenant .. "/settings", bearer(B.admin))
  expect.eq(bs.json.settings.product_name, nil, "A's settings are A's")
  -- B's invitation, device and token still stand.
  local jobs = http.get(gw.base .. "/admin/v1/" .. B.tenant .. "/jobs?user=" .. B.other_user, bearer(B.admin))
  expect.eq(jobs.json.jobs[1].status, "AwaitingApproval")
  local u = http.get(gw.base .. "/admin/v1/" .. B.tenant .. "/users/" .. B.other_user, bearer(B.admin))
  expect.eq(u.json.state, "PendingApproval")
  expect.eq(u.json.detached, false)
  expect.status(http.get(gw.base .. "/admin/v1/" .. B.tenant .. "/approvals", bearer(B.device_token)), 200)
  expect.status(http.get(B.url .. "/Users/" .. B.user, bearer(B.token)), 200)
  -- B's deleted user: A cannot restore it; B still can.
  local r = admin("POST", A.tenant, "/users/" .. B.deleted .. "/restore")
  expect.status(r, 404)
  expect.eq(swap(r.json.detail, B.deleted, "<id>"),
            swap(admin("POST", A.tenant, "/users/" .. NOBODY .. "/restore").json.detail, NOBODY, "<id>"))
  expect.status(http.post(gw.base .. "/admin/v1/" .. B.tenant .. "/users/" .. B.deleted .. "/restore", {},
                          bearer(B.admin)), 200)
  -- And B's admin on A's tenant is refused the same way.
  expect.status(http.get(gw.base .. "/admin/v1/" .. A.tenant .. "/users", bearer(B.admin)), 403)
  expect.status(http.get(gw.base .. "/admin/v1/" .. A.tenant .. "/approvals", bearer(B.device_token)), 403)
end)
