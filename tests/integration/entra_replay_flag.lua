-- Replay of Entra's traffic with the aadOptscim062020 flag, ENTRA.md §9 steps
-- 1-13 in the flag's shapes (§2.6.2, §5): lowercase ops, JSON booleans,
-- path-less grouped value objects with dotted and URN keys, the manager
-- still linked with a bare string, members removed with
-- `remove members[value eq "..."]`. Request bodies are ENTRA.md's, with real
-- ids put in for {NAME}. The last section sends legacy-shaped requests to the
-- same tenant: both dialects work side by side with no configuration
-- (DESIGN §6).
--
-- Every step checks the status, the Content-Type of every response that has
-- a body, and the resulting state with a follow-up GET; never how many reads
-- Entra would make (§2.8). Users answer PATCH with 200 and the resource,
-- groups with 204 (§0 rule 14). Steps build on each other, in file order.

local gw = gateway.start{}

local ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
local LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
local ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
local PATCHOP = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":['

local function fixture(name)
  local f = assert(io.open(runner.dir .. "/fixtures/" .. name))
  local text = f:read("a")
  f:close()
  return text
end

-- Put ids into a request body: {M} becomes vars.M.
local function fill(text, vars)
  return (text:gsub("{(%u[%w_]*)}", function(k)
    return assert(vars[k], "no value for {" .. k .. "}")
  end))
end

-- One request as Entra sends it; every answer with a body must be SCIM
-- JSON (ENTRA.md §0 rule 16).
local function call(method, path, body, headers)
  local h = headers or gw:auth()
  if body ~= nil then
    h["Content-Type"] = "application/scim+json; charset=utf-8"
    if type(body) == "table" then body = json.encode(body) end
  end
  local r = http.request{method = method, url = gw.url .. path, headers = h, body = body, raw = true}
  if r.body ~= "" then
    expect.header(r, "content-type", "^application/scim%+json")
    expect.truthy(r.json, method .. " " .. path .. ": the body is not JSON: " .. r.body:sub(1, 200))
  end
  return r
end

local function ops(text) return PATCHOP .. text .. "]}" end

local function patch_user(id, body)
  local r = call("PATCH", "/Users/" .. id, body)
  expect.status(r, 200)
  expect.eq(r.json.id, id)
  expect.eq(r.json.meta.resourceType, "User")
  expect.truthy(r.json.userName, "the PATCH answer is the full resource")
  return r.json
end

local function patch_group(id, body)
  local r = call("PATCH", "/Groups/" .. id, body)
  expect.status(r, 204)
  expect.eq(r.body, "")
  return r
end

local function get(path)
  local r = call("GET", path)
  expect.status(r, 200)
  return r.json
end

local function count(endpoint, filter, extra)
  local r = call("GET", endpoint .. "?filter=" .. http.escape(filter) .. (extra or ""))
  expect.status(r, 200)
  expect.eq(r.json.schemas, json.array{LIST})
  expect.array(r.json.Resources)
  return r.json.totalResults, r.json
end

local function member_ids(gid)
  local g = get("/Groups/" .. gid)
  local ids = {}
  for _, m in ipairs(g.members or {}) do ids[#ids + 1] = m.value end
  table.sort(ids)
  return ids
end

local function sorted(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  return c
end

local ids = {} -- M (manager), U (user), F (user created bare), U2; G (group), G2

-- Step 1 ----------------------------------------------------------------------

test("1. the Test-connection probes answer 200 with empty lists", function()
  local r = call("GET", "/Users?filter=userName+eq+%22b8c2f0d4-6a1e-4f3b-9c7d-2e5a8f1b3c6d%22")
  expect.status(r, 200)
  expect.eq(r.json.schemas, json.array{LIST})
  expect.eq(r.json.totalResults, 0)
  expect.array(r.json.Resources)
  r = call("GET", "/Groups?excludedAttributes=members&filter=displayName+eq+%22"
           .. "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a%22")
  expect.status(r, 200)
  expect.eq(r.json.totalResults, 0)
  expect.array(r.json.Resources)
end)

-- Step 2 ----------------------------------------------------------------------

test("2. create manager M (full default body) and user U; a second POST of U is 409", function()
  local m = json.decode(fixture("entra_user_post.json"))
  m.userName, m.externalId, m.displayName = "mgr@contoso.com", "mgr", "Manager Person"
  m.emails = json.array{{primary = true, type = "work", value = "mgr@contoso.com"}}
  local r = call("POST", "/Users", m)
  expect.status(r, 201)
  ids.M = r.json.id

  local u = json.decode(fixture("entra_user_post.json"))
  u.addresses, u.phoneNumbers = nil, nil
  local body = json.encode(u)
  r = call("POST", "/Users", body)
  expect.status(r, 201)
  ids.U = r.json.id
  expect.eq(get("/Users/" .. ids.U).userName, "bjensen@contoso.com")

  r = call("POST", "/Users", body)
  expect.status(r, 409)
  expect.eq(r.json.schemas, json.array{ERROR})
  expect.eq(r.json.scimType, "uniqueness")
  expect.eq(count("/Users", 'userName eq "bjensen@contoso.com"'), 1)
end)

-- Step 3 ----------------------------------------------------------------------

local function assert_manager(user, mid)
  expect.eq(user.manager, nil, "manager lives inside the enterprise extension")
  expect.eq(user[ENT] and user[ENT].manager, {value = mid})
end

local function manager_check(uid, mid)
  return count("/Users", "id eq " .. uid .. " and manager eq " .. mid, "&attributes=id")
end

local LINK = ops('{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"{M}"}')

test("3. link the manager with add and a bare string: {\"value\": M} in the extension", function()
  local u = patch_user(ids.U, fill(LINK, ids))
  assert_manager(u, ids.M)
  expect.eq(u[ENT].employeeNumber, "701984", "other extension attributes stay")
  assert_manager(get("/Users/" .. ids.U), ids.M)
  expect.eq(manager_check(ids.U, ids.M), 1)
end)

-- Step 4 ----------------------------------------------------------------------

test("4a. Microsoft's documented flag sample: a value path and a grouped replace", function()
  local u = patch_user(ids.U, [[
{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
  {"op":"replace","path":"emails[type eq \"work\"].value","value":"TestMhvaes@test.microsoft.com"},
  {"op":"replace","value":{
     "displayName":"Bjfe",
     "name.givenName":"Kkom",
     "name.familyName":"Unua",
     "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}]}]])
  expect.eq(u.displayName, "Bjfe")
  local got = get("/Users/" .. ids.U)
  expect.eq(got.displayName, "Bjfe")
  expect.eq(got.emails, json.array{{primary = true, type = "work", value = "TestMhvaes@test.microsoft.com"}})
  expect.eq(got.name, {formatted = "Barbara Jensen", givenName = "Kkom", familyName = "Unua"},
            "dotted keys merge into name, formatted stays")
  expect.eq(got[ENT].employeeNumber, "Aklq")
  expect.eq(got[ENT].department, "Tour Operations")
  assert_manager(got, ids.M)
  expect.eq(got["name.givenName"], nil, "no literal dotted key")
  expect.eq(got[ENT .. ":employeeNumber"], nil, "no literal URN key")
end)

test("4b. a path-less add of newly set attributes (scimitar sample)", function()
  -- A user whose display name, title and name were empty at creation.
  local r = call("POST", "/Users", {userName = "foo.bar@contoso.com", active = true})
  expect.status(r, 201)
  ids.F = r.json.id
  local u = patch_user(ids.F, [[
{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
  {"op":"add","value":{"displayName":"Foo Bar","title":"Bar Foo",
                       "name.givenName":"Foo","name.familyName":"Bar","name.formatted":"Foo Bar"}}]}]])
  expect.eq(u.title, "Bar Foo")
  local got = get("/Users/" .. ids.F)
  expect.eq(got.displayName, "Foo Bar")
  expect.eq(got.title, "Bar Foo")
  expect.eq(got.name, {givenName = "Foo", familyName = "Bar", formatted = "Foo Bar"})
end)

test("4c. an incremental change: value-path email and a grouped title (§2.8 C)", function()
  patch_user(ids.U, ops([[
{"op":"replace","path":"emails[type eq \"work\"].value","value":"new@contoso.com"},
{"op":"replace","value":{"title":"Lead"}}]]))
  local got = get("/Users/" .. ids.U)
  expect.eq(got.title, "Lead")
  expect.eq(got.emails, json.array{{primary = true, type = "work", value = "new@contoso.com"}})
  expect.eq(count("/Users", 'emails[type eq "work"].value eq "new@contoso.com"'), 1)
end)

test("4d. value-path adds create the work address and the phones", function()
  patch_user(ids.U, ops([[
  {"op":"add","path":"addresses[type eq \"work\"].formatted","value":"Building 1/1234"},
  {"op":"add","path":"addresses[type eq \"work\"].streetAddress","value":"1 Main St"},
  {"op":"add","path":"addresses[type eq \"work\"].locality","value":"Redmond"},
  {"op":"add","path":"addresses[type eq \"work\"].region","value":"WA"},
  {"op":"add","path":"addresses[type eq \"work\"].postalCode","value":"98052"},
  {"op":"add","path":"addresses[type eq \"work\"].country","value":"US"},
  {"op":"add","path":"phoneNumbers[type eq \"work\"].value","value":"+1 425 555 0100"},
  {"op":"add","path":"phoneNumbers[type eq \"fax\"].value","value":"+1 425 555 0102"},
  {"op":"add","value":{"nickName":"Babs",
     "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter":"4130"}}]]))
  local got = get("/Users/" .. ids.U)
  expect.eq(got.addresses, json.array{{type = "work", formatted = "Building 1/1234", streetAddress = "1 Main St",
                                       locality = "Redmond", region = "WA", postalCode = "98052",
                                       country = "US"}}, "one work address, not one per sub-attribute")
  expect.eq(got.phoneNumbers, json.array{{type = "work", value = "+1 425 555 0100"},
                                         {type = "fax", value = "+1 425 555 0102"}})
  expect.eq(got.nickName, "Babs")
  expect.eq(got[ENT].costCenter, "4130")
  expect.eq(got[ENT].employeeNumber, "Aklq")
end)

-- Step 5 ----------------------------------------------------------------------

test("5. a path-less userName rename: the old name finds 0, the new one 1 in any case", function()
  local u = patch_user(ids.U, ops('{"op":"replace","value":{"userName":"barbara.jensen@contoso.com"}}'))
  expect.eq(u.userName, "barbara.jensen@contoso.com")
  expect.eq(get("/Users/" .. ids.U).userName, "barbara.jensen@contoso.com")
  expect.eq(count("/Users", 'userName eq "bjensen@contoso.com"'), 0)
  expect.eq(count("/Users", 'userName eq "barbara.jensen@contoso.com"'), 1)
  local n, list = count("/Users", 'userName eq "Barbara.Jensen@CONTOSO.com"')
  expect.eq(n, 1)
  expect.eq(list.Resources[1].id, ids.U)
end)

-- Step 6 ----------------------------------------------------------------------

local function assert_active(want)
  expect.eq(get("/Users/" .. ids.U).active, want)
  local n, list = count("/Users", 'userName eq "barbara.jensen@contoso.com"')
  expect.eq(n, 1, "a disabled user is still found by the matching filter")
  expect.eq(list.Resources[1].active, want)
end

test("6a. disable with replace active false: active false, still found", function()
  local u = patch_user(ids.U, [[
{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
 "Operations":[{"op":"replace","path":"active","value":false}]}]])
  expect.eq(u.active, false)
  assert_active(false)
end)

test("6b. enable with replace active true", function()
  local u = patch_user(ids.U, ops('{"op":"replace","path":"active","value":true}'))
  expect.eq(u.active, true)
  assert_active(true)
end)

test("6c. active inside a path-less object, as a boolean and as \"false\"", function()
  patch_user(ids.U, ops('{"op":"replace","value":{"active":false}}'))
  assert_active(false)
  patch_user(ids.U, ops('{"op":"replace","value":{"active":true}}'))
  assert_active(true)
  patch_user(ids.U, ops('{"op":"replace","path":"active","value":"false"}'))
  assert_active(false)
  patch_user(ids.U, ops('{"op":"replace","path":"active","value":true}'))
  assert_active(true)
end)

-- Step 7 ----------------------------------------------------------------------

local function removal(body)
  assert_manager(patch_user(ids.U, fill(LINK, ids)), ids.M)
  local u = patch_user(ids.U, fill(body, ids))
  expect.eq(u[ENT] and u[ENT].manager, nil)
  local got = get("/Users/" .. ids.U)
  expect.eq(got[ENT] and got[ENT].manager, nil, "the manager is gone")
  expect.eq(got.manager, nil)
  expect.eq(got[ENT].employeeNumber, "Aklq")
  expect.eq(manager_check(ids.U, ids.M), 0)
end

test("7a. remove manager[value eq \"M\"]", function()
  removal(ops('{"op":"remove","path":"manager[value eq \\"{M}\\"]"}'))
end)

test("7b. replace the manager with {\"value\":\"\"}", function()
  removal(ops('{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":{"value":""}}'))
end)

test("7c. remove the manager by path, without a value", function()
  removal(ops('{"op":"remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}'))
end)

test("7d. remove the manager by path, with the id as value", function()
  removal(ops('{"op":"remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"{M}"}'))
end)

test("7e. removing a manager that is already gone succeeds", function()
  patch_user(ids.U, fill(ops('{"op":"remove","path":"manager[value eq \\"{M}\\"]"}'), ids))
  expect.eq(get("/Users/" .. ids.U)[ENT].manager, nil)
end)

-- Step 8 ----------------------------------------------------------------------

test("8a. group lookup finds nothing, then POST with members [] is 201", function()
  local r = call("POST", "/Users", {userName = "u2@contoso.com", active = true})
  expect.status(r, 201)
  ids.U2 = r.json.id
  expect.eq(count("/Groups", 'displayName eq "Org Admin"', "&excludedAttributes=members"), 0)
  r = call("POST", "/Groups", fixture("entra_group_post.json"))
  expect.status(r, 201)
  expect.array(r.json.members)
  expect.eq(#r.json.members, 0)
  ids.G = r.json.id
  expect.eq(count("/Groups", 'displayName eq "org admin"', "&excludedAttributes=members"), 1)
end)

test("8b. the variant with the ADSCIM schema URI and no members is 201", function()
  local r = call("POST", "/Groups", [[
{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group",
            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
 "externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159","displayName":"Group1DisplayName",
 "meta":{"resourceType":"Group"}}]])
  expect.status(r, 201)
  ids.G2 = r.json.id
end)

test("8c. GET with excludedAttributes=members has no members", function()
  local g = get("/Groups/" .. ids.G .. "?excludedAttributes=members")
  expect.eq(g.displayName, "Org Admin")
  expect.eq(g.members, nil)
end)

-- Step 9 ----------------------------------------------------------------------

test("9a. add members: one with \"$ref\": null, then two in one op without $ref", function()
  patch_group(ids.G, fill([[
{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
 "Operations":[{"op":"add","path":"members","value":[{"$ref":null,"value":"{U}"}]}]}]], ids))
  expect.eq(member_ids(ids.G), {ids.U})
  patch_group(ids.G, fill(ops('{"op":"add","path":"members","value":[{"value":"{F}"},{"value":"{U2}"}]}'), ids))
  expect.eq(member_ids(ids.G), sorted{ids.U, ids.F, ids.U2})
end)

test("9b. re-adding an existing member is a 2xx no-op", function()
  patch_group(ids.G, fill(ops('{"op":"add","path":"members","value":[{"value":"{U}"},{"value":"{F}"}]}'), ids))
  expect.eq(member_ids(ids.G), sorted{ids.U, ids.F, ids.U2})
end)

test("9c. remove members[value eq \"...\"] removes that member only", function()
  patch_group(ids.G, fill([[
{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
 "Operations":[{"op":"remove","path":"members[value eq \"{U2}\"]"}]}]], ids))
  expect.eq(member_ids(ids.G), sorted{ids.U, ids.F}, "never the whole group")
end)

test("9d. removing a non-member is 2xx and changes nothing", function()
  patch_group(ids.G, fill(ops('{"op":"remove","path":"members[value eq \\"{U2}\\"]"}'), ids))
  expect.eq(member_ids(ids.G), sorted{ids.U, ids.F})
end)

-- Step 10 ---------------------------------------------------------------------

test("10. membership checks: 1 for a member, 0 otherwise", function()
  local function check(uid)
    local r1 = call("GET", "/Groups?filter=id eq " .. ids.G .. " and members eq " .. uid .. "&attributes=id")
    expect.status(r1, 200)
    local r2 = call("GET", '/Groups?excludedAttributes=members&filter=id eq "' .. ids.G
                    .. '" and members[value eq "' .. uid .. '"]')
    expect.status(r2, 200)
    expect.eq(r1.json.totalResults, r2.json.totalResults, "both forms agree")
    if r1.json.totalResults == 1 then
      expect.eq(r1.json.Resources[1].id, ids.G)
      expect.eq(r2.json.Resources[1].members, nil, "excludedAttributes=members")
    end
    return r1.json.totalResults
  end
  expect.eq(check(ids.U), 1)
  expect.eq(check(ids.F), 1)
  expect.eq(check(ids.U2), 0)
end)

-- Step 11 ---------------------------------------------------------------------

test("11a. path-less rename (validator shape): members unchanged", function()
  patch_group(ids.G, ops('{"op":"replace","value":{"displayName":"WUZPWMBDDCGI"}}'))
  expect.eq(get("/Groups/" .. ids.G).displayName, "WUZPWMBDDCGI")
  expect.eq(member_ids(ids.G), sorted{ids.U, ids.F})
  expect.eq(count("/Groups", 'displayName eq "wuzpwmbddcgi"'), 1)
end)

test("11b. rename with a path, and a path-less externalId: members unchanged", function()
  patch_group(ids.G, ops('{"op":"replace","path":"displayName","value":"Sales EMEA"}'))
  patch_group(ids.G, ops('{"op":"replace","value":{"externalId":"663fa3a8-e2b6-4ac0-96c8-363432cdc01d"}}'))
  local g = get("/Groups/" .. ids.G)
  expect.eq(g.displayName, "Sales EMEA")
  expect.eq(g.externalId, "663fa3a8-e2b6-4ac0-96c8-363432cdc01d")
  expect.eq(member_ids(ids.G), sorted{ids.U, ids.F})
end)

test("11c. renaming onto another group's name (any case) is 409 and changes nothing", function()
  local r = call("PATCH", "/Groups/" .. ids.G, ops('{"op":"replace","value":{"displayName":"group1displayname"}}'))
  expect.status(r, 409)
  expect.eq(r.json.schemas, json.array{ERROR})
  expect.eq(r.json.scimType, "uniqueness")
  expect.eq(get("/Groups/" .. ids.G).displayName, "Sales EMEA")
  expect.eq(member_ids(ids.G), sorted{ids.U, ids.F})
end)

-- Concurrency (§0 rule 19, §3.3) -----------------------------------------------

-- Send PATCH bodies to one URL all at once: one shell starts a background
-- curl per body and waits for all. Returns each HTTP status, in order.
local function concurrent_patches(path, bodies)
  local dir = tmpdir()
  local lines = {}
  for i, body in ipairs(bodies) do
    local f = assert(io.open(dir .. "/body" .. i .. ".json", "w"))
    f:write(body)
    f:close()
    lines[#lines + 1] = string.format(
      "curl -s --max-time 60 -o /dev/null -w '%%{http_code}' -X PATCH "
      .. "-H 'Authorization: Bearer %s' -H 'Content-Type: application/scim+json; charset=utf-8' "
      .. "--data-binary '@%s/body%d.json' '%s' > '%s/status%d' 2>/dev/null &",
      gw.token, dir, i, gw.url .. path, dir, i)
  end
  lines[#lines + 1] = "wait"
  os.execute(table.concat(lines, "\n"))
  local statuses = {}
  for i = 1, #bodies do
    local f = assert(io.open(dir .. "/status" .. i))
    statuses[i] = f:read("a")
    f:close()
  end
  return statuses
end

test("30 concurrent add PATCHes to one group, then 15 concurrent removes", function()
  local users, adds, removes = {}, {}, {}
  for i = 1, 30 do
    local r = call("POST", "/Users", {userName = string.format("par%02d@contoso.com", i)})
    expect.status(r, 201)
    users[i] = r.json.id
    adds[i] = ops('{"op":"add","path":"members","value":[{"value":"' .. r.json.id .. '"}]}')
    if i % 2 == 0 then
      removes[#removes + 1] = ops('{"op":"remove","path":"members[value eq \\"' .. r.json.id .. '\\"]"}')
    end
  end
  local r = call("POST", "/Groups", {displayName = "Parallel", externalId = "parallel", members = json.array()})
  expect.status(r, 201)
  local gid = r.json.id
  for i, s in ipairs(concurrent_patches("/Groups/" .. gid, adds)) do expect.eq(s, "204", "add " .. i) end
  expect.eq(member_ids(gid), sorted(users))
  for i, s in ipairs(concurrent_patches("/Groups/" .. gid, removes)) do expect.eq(s, "204", "remove " .. i) end
  local odd = {}
  for i = 1, 30, 2 do odd[#odd + 1] = users[i] end
  expect.eq(member_ids(gid), sorted(odd))
end)

-- Both dialects on one tenant (ENTRA.md §5: implement the union) --------------

test("legacy-shaped requests work on the same tenant, between flag requests", function()
  -- Legacy disable, flag enable.
  local u = patch_user(ids.U, ops('{"op":"Replace","path":"active","value":"False"}'))
  expect.eq(u.active, false)
  u = patch_user(ids.U, ops('{"op":"replace","path":"active","value":true}'))
  expect.eq(u.active, true)
  -- Legacy manager link, flag removal.
  assert_manager(patch_user(ids.U, fill(ops(
    '{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"{M}"}'), ids)), ids.M)
  patch_user(ids.U, fill(ops('{"op":"remove","path":"manager[value eq \\"{M}\\"]"}'), ids))
  expect.eq(get("/Users/" .. ids.U)[ENT].manager, nil)
  -- Legacy one-op-per-attribute update next to a flag grouped one.
  patch_user(ids.U, [[
{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
  {"op":"Replace","path":"displayName","value":"Pvlo"},
  {"op":"Replace","path":"name.givenName","value":"Gtfd"}]}]])
  patch_user(ids.U, ops('{"op":"replace","value":{"name.familyName":"Pkqf","title":"Guide"}}'))
  local got = get("/Users/" .. ids.U)
  expect.eq(got.displayName, "Pvlo")
  expect.eq(got.name, {formatted = "Barbara Jensen", givenName = "Gtfd", familyName = "Pkqf"})
  expect.eq(got.title, "Guide")
  -- Legacy member Add and value-list Remove, flag filter remove.
  patch_group(ids.G, fill(ops('{"op":"Add","path":"members","value":[{"value":"{U2}"},{"value":"{M}"}]}'), ids))
  expect.eq(member_ids(ids.G), sorted{ids.U, ids.F, ids.U2, ids.M})
  patch_group(ids.G, fill([[
{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
 "Operations":[{"op":"Remove","path":"members","value":[{"value":"{U2}"}]}]}]], ids))
  expect.eq(member_ids(ids.G), sorted{ids.U, ids.F, ids.M}, "only the listed member")
  patch_group(ids.G, fill(ops('{"op":"remove","path":"members[value eq \\"{M}\\"]"}'), ids))
  expect.eq(member_ids(ids.G), sorted{ids.U, ids.F})
end)

-- Step 12 ---------------------------------------------------------------------

test("12a. DELETE a group: 204, then GET 404, then DELETE 404", function()
  local r = call("DELETE", "/Groups/" .. ids.G)
  expect.status(r, 204)
  expect.eq(r.body, "")
  r = call("GET", "/Groups/" .. ids.G)
  expect.status(r, 404)
  expect.eq(r.json.schemas, json.array{ERROR})
  expect.status(call("DELETE", "/Groups/" .. ids.G), 404)
end)

test("12b. DELETE a user: 204, then GET 404, then DELETE 404", function()
  local r = call("DELETE", "/Users/" .. ids.U)
  expect.status(r, 204)
  expect.eq(r.body, "")
  r = call("GET", "/Users/" .. ids.U)
  expect.status(r, 404)
  expect.eq(r.json.status, "404")
  expect.status(call("DELETE", "/Users/" .. ids.U), 404)
  expect.eq(count("/Users", 'userName eq "barbara.jensen@contoso.com"'), 0)
end)

-- Step 13 ---------------------------------------------------------------------

test("13a. a bad token gets 401 with a SCIM body", function()
  local bad = {Authorization = "Bearer not-a-token"}
  local r = call("PATCH", "/Users/" .. ids.M, ops('{"op":"replace","path":"active","value":false}'), bad)
  expect.status(r, 401)
  expect.eq(r.json.schemas, json.array{ERROR})
  expect.eq(r.json.status, "401")
  r = call("PATCH", "/Groups/" .. ids.G2, fill(ops('{"op":"add","path":"members","value":[{"value":"{M}"}]}'), ids), bad)
  expect.status(r, 401)
  expect.eq(r.json.schemas, json.array{ERROR})
  expect.eq(get("/Users/" .. ids.M).active, true, "the refused PATCH changed nothing")
  expect.eq(member_ids(ids.G2), {})
end)

test("13b. PATCH of an unknown id is 404 with a SCIM body", function()
  local r = call("PATCH", "/Users/5171a35d82074e068ce2", ops('{"op":"replace","path":"active","value":false}'))
  expect.status(r, 404)
  expect.eq(r.json.schemas, json.array{ERROR})
  expect.eq(r.json.status, "404")
  r = call("PATCH", "/Groups/cdb1ce18f65944079d37", fill(ops('{"op":"add","path":"members","value":[{"value":"{M}"}]}'), ids))
  expect.status(r, 404)
  expect.eq(r.json.schemas, json.array{ERROR})
end)
