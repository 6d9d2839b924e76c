-- Replay of Entra's default ("legacy", no aadOptscim062020) traffic, ENTRA.md
-- §9 steps 1-13: capitalised ops, "True"/"False" strings, the manager linked
-- with a bare-string Add, members removed with a value list. Request bodies
-- are ENTRA.md's (§2.6, §3.3, §3.5), with real ids put in for {NAME}.
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

-- Put ids into a request body: {M} becomes vars.M. A name without a value
-- is an error in the test, not a silent "{M}" on the wire.
local function fill(text, vars)
  return (text:gsub("{(%u[%w_]*)}", function(k)
    return assert(vars[k], "no value for {" .. k .. "}")
  end))
end

-- One request as Entra sends it: bearer token, and for a body
-- application/scim+json; charset=utf-8. Every answer with a body must be
-- SCIM JSON (ENTRA.md §0 rule 16).
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

-- PATCH a user: 200 with the whole resource.
local function patch_user(id, body)
  local r = call("PATCH", "/Users/" .. id, body)
  expect.status(r, 200)
  expect.eq(r.json.id, id)
  expect.eq(r.json.meta.resourceType, "User")
  expect.truthy(r.json.userName, "the PATCH answer is the full resource")
  return r.json
end

-- PATCH a group: 204 and no body.
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

-- totalResults of a filter on /Users or /Groups.
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

local ids = {} -- M (manager), U (user), U2, U3; G (group), G2

-- Step 1 ----------------------------------------------------------------------

test("1. the Test-connection probes answer 200 with empty lists", function()
  local r = call("GET", "/Users?filter=userName+eq+%227d420df3-9995-4831-a406-ecf8166f5f6a%22")
  expect.status(r, 200)
  expect.eq(r.json.schemas, json.array{LIST})
  expect.eq(r.json.totalResults, 0)
  expect.array(r.json.Resources)
  expect.eq(#r.json.Resources, 0)
  r = call("GET", "/Groups?excludedAttributes=members&filter=displayName+eq+%22"
           .. "3e4f6a51-2c1b-4f7e-9a0d-5b8c7d6e1f20%22")
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
  expect.eq(r.json.userName, "mgr@contoso.com")
  ids.M = r.json.id

  -- U as Entra creates a user whose office, phones and manager are not set
  -- yet: those attributes are simply absent (§2.1, §2.3).
  local u = json.decode(fixture("entra_user_post.json"))
  u.addresses, u.phoneNumbers = nil, nil
  local body = json.encode(u)
  r = call("POST", "/Users", body)
  expect.status(r, 201)
  expect.eq(r.json.userName, "bjensen@contoso.com")
  expect.eq(r.json.addresses, nil)
  ids.U = r.json.id
  expect.eq(get("/Users/" .. ids.U).externalId, "bjensen")

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

local LINK = ops('{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"{M}"}')

test("3. link the manager with Add and a bare string: {\"value\": M} in the extension", function()
  local u = patch_user(ids.U, fill(LINK, ids))
  assert_manager(u, ids.M)
  expect.eq(u[ENT].department, "Tour Operations", "other extension attributes stay")
  assert_manager(get("/Users/" .. ids.U), ids.M)
  expect.eq(manager_check(ids.U, ids.M), 1)
end)

-- Step 4 ----------------------------------------------------------------------

test("4a. Microsoft's documented legacy multi-op sample", function()
  local u = patch_user(ids.U, [[
{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
  {"op":"Replace","path":"displayName","value":"Pvlo"},
  {"op":"Replace","path":"emails[type eq \"work\"].value","value":"TestBcwqnm@test.microsoft.com"},
  {"op":"Replace","path":"name.givenName","value":"Gtfd"},
  {"op":"Replace","path":"name.familyName","value":"Pkqf"},
  {"op":"Replace","path":"externalId","value":"Eqpj"},
  {"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"Eqpj"}]}]])
  expect.eq(u.displayName, "Pvlo")
  local got = get("/Users/" .. ids.U)
  expect.eq(got.displayName, "Pvlo")
  expect.eq(got.emails, json.array{{primary = true, type = "work", value = "TestBcwqnm@test.microsoft.com"}})
  expect.eq(got.name, {formatted = "Barbara Jensen", givenName = "Gtfd", familyName = "Pkqf"})
  expect.eq(got.externalId, "Eqpj")
  expect.eq(got[ENT].employeeNumber, "Eqpj")
  expect.eq(got[ENT].department, "Tour Operations")
  assert_manager(got, ids.M)
  expect.eq(count("/Users", 'externalId eq "Eqpj"'), 1, "the new externalId matches")
  expect.eq(count("/Users", 'externalId eq "bjensen"'), 0, "the old one no longer does")
end)

test("4b. the laravel sample: Replace the work email and a work address, Add department", function()
  patch_user(ids.U, [[
{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
  {"op":"Replace","path":"emails[type eq \"work\"].value","value":"AdeleV2@contoso.onmicrosoft.com"},
  {"op":"Replace","path":"addresses[type eq \"work\"].formatted","value":"18/2111"},
  {"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Retail"}]}]])
  local got = get("/Users/" .. ids.U)
  expect.eq(got.emails, json.array{{primary = true, type = "work", value = "AdeleV2@contoso.onmicrosoft.com"}})
  expect.eq(got.addresses, json.array{{type = "work", formatted = "18/2111"}},
            "Replace on a missing work address creates it")
  expect.eq(got[ENT].department, "Retail")
  expect.eq(got[ENT].employeeNumber, "Eqpj")
  assert_manager(got, ids.M)
  expect.eq(count("/Users", 'emails[type eq "work"].value eq "AdeleV2@contoso.onmicrosoft.com"'), 1)
end)

test("4c. single-value Add of nickName", function()
  local u = patch_user(ids.U, [[{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"nickName","value":"Babs"}]}]])
  expect.eq(u.nickName, "Babs")
  expect.eq(get("/Users/" .. ids.U).nickName, "Babs")
end)

test("4d. value-path Adds fill the work address and create the phones", function()
  patch_user(ids.U, ops([[
  {"op":"Add","path":"addresses[type eq \"work\"].streetAddress","value":"1 Main St"},
  {"op":"Add","path":"addresses[type eq \"work\"].locality","value":"Redmond"},
  {"op":"Add","path":"addresses[type eq \"work\"].region","value":"WA"},
  {"op":"Add","path":"addresses[type eq \"work\"].postalCode","value":"98052"},
  {"op":"Add","path":"addresses[type eq \"work\"].country","value":"US"},
  {"op":"Add","path":"phoneNumbers[type eq \"work\"].value","value":"+1 425 555 0100"},
  {"op":"Add","path":"phoneNumbers[type eq \"mobile\"].value","value":"+1 425 555 0101"}]]))
  local got = get("/Users/" .. ids.U)
  expect.eq(got.addresses, json.array{{type = "work", formatted = "18/2111", streetAddress = "1 Main St",
                                       locality = "Redmond", region = "WA", postalCode = "98052",
                                       country = "US"}}, "one work address, not one per sub-attribute")
  expect.eq(got.phoneNumbers, json.array{{type = "work", value = "+1 425 555 0100"},
                                         {type = "mobile", value = "+1 425 555 0101"}})
end)

-- Step 5 ----------------------------------------------------------------------

test("5a. rename with the ssoready sample: the old userName finds 0, the new one 1 in any case", function()
  local u = patch_user(ids.U, [[
{
  "Operations": [
    {"op": "Replace", "path": "displayName", "value": "Test 01"},
    {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "test01@example.com"},
    {"op": "Replace", "path": "userName", "value": "test01@example.com"},
    {"op": "Replace", "path": "name.familyName", "value": "Tesst 01"},
    {"op": "Replace", "path": "name.formatted", "value": "Test 01"}
  ],
  "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]
}]])
  expect.eq(u.userName, "test01@example.com")
  local got = get("/Users/" .. ids.U)
  expect.eq(got.userName, "test01@example.com")
  expect.eq(got.displayName, "Test 01")
  expect.eq(got.name, {formatted = "Test 01", givenName = "Gtfd", familyName = "Tesst 01"})
  expect.eq(got.emails[1].value, "test01@example.com")
  expect.eq(count("/Users", 'userName eq "bjensen@contoso.com"'), 0)
  expect.eq(count("/Users", 'userName eq "test01@example.com"'), 1)
  local n, list = count("/Users", 'userName eq "TEST01@Example.COM"')
  expect.eq(n, 1)
  expect.eq(list.Resources[1].id, ids.U)
end)

test("5b. the documented rename form", function()
  patch_user(ids.U, [[{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"userName","value":"5b50642d-...@testuser.com"}]}]])
  expect.eq(get("/Users/" .. ids.U).userName, "5b50642d-...@testuser.com")
  expect.eq(count("/Users", 'userName eq "test01@example.com"'), 0)
  expect.eq(count("/Users", 'userName eq "5B50642D-...@TestUser.com"'), 1)
end)

-- Step 6 ----------------------------------------------------------------------

local function assert_active(want)
  expect.eq(get("/Users/" .. ids.U).active, want)
  local n, list = count("/Users", 'userName eq "5b50642d-...@testuser.com"')
  expect.eq(n, 1, "a disabled user is still found by the matching filter")
  expect.eq(list.Resources[1].active, want)
end

test("6a. disable with Replace active \"False\": active false, still found", function()
  local u = patch_user(ids.U, [[
{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
 "Operations":[{"op":"Replace","path":"active","value":"False"}]}]])
  expect.eq(u.active, false, "a JSON boolean, not the string")
  assert_active(false)
end)

test("6b. enable with Replace active \"True\"", function()
  local u = patch_user(ids.U, ops('{"op":"Replace","path":"active","value":"True"}'))
  expect.eq(u.active, true)
  assert_active(true)
end)

test("6c. lowercase \"false\" and a Replace with a JSON boolean work too", function()
  patch_user(ids.U, ops('{"op":"Replace","path":"active","value":"false"}'))
  assert_active(false)
  patch_user(ids.U, ops('{"op":"Replace","path":"active","value":true}'))
  assert_active(true)
  patch_user(ids.U, ops('{"op":"Replace","path":"active","value":false}'))
  assert_active(false)
  patch_user(ids.U, ops('{"op":"Replace","path":"active","value":"True"}'))
  assert_active(true)
end)

-- Step 7 ----------------------------------------------------------------------

-- Each removal starts from a linked manager, and must leave the other
-- extension attributes alone.
local function removal(body)
  assert_manager(patch_user(ids.U, fill(LINK, ids)), ids.M)
  local u = patch_user(ids.U, fill(body, ids))
  expect.eq(u[ENT] and u[ENT].manager, nil)
  local got = get("/Users/" .. ids.U)
  expect.eq(got[ENT] and got[ENT].manager, nil, "the manager is gone")
  expect.eq(got.manager, nil)
  expect.eq(got[ENT].department, "Retail")
  expect.eq(manager_check(ids.U, ids.M), 0)
end

test("7a. Remove the manager by path, without a value", function()
  removal(ops('{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}'))
end)

test("7b. Remove the manager by path, with the id as value", function()
  removal(ops('{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"{M}"}'))
end)

test("7c. Remove manager[value eq \"M\"]", function()
  removal(ops('{"op":"Remove","path":"manager[value eq \\"{M}\\"]"}'))
end)

test("7d. Replace the manager with {\"value\":\"\"}", function()
  removal(ops('{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":{"value":""}}'))
end)

test("7e. removing a manager that is already gone succeeds", function()
  patch_user(ids.U, ops('{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}'))
  expect.eq(get("/Users/" .. ids.U)[ENT].manager, nil)
end)

-- Step 8 ----------------------------------------------------------------------

test("8a. group lookup finds nothing, then POST with members [] is 201", function()
  for _, n in ipairs{"u2", "u3"} do
    local r = call("POST", "/Users", {userName = n .. "@contoso.com", active = true})
    expect.status(r, 201)
    ids[n:upper()] = r.json.id
  end
  local n = count("/Groups", 'displayName eq "Org Admin"', "&excludedAttributes=members")
  expect.eq(n, 0)
  local r = call("POST", "/Groups", fixture("entra_group_post.json"))
  expect.status(r, 201)
  expect.eq(r.json.displayName, "Org Admin")
  expect.array(r.json.members)
  expect.eq(#r.json.members, 0)
  ids.G = r.json.id
  n = count("/Groups", 'displayName eq "Org Admin"', "&excludedAttributes=members")
  expect.eq(n, 1)
end)

test("8b. the variant with the ADSCIM schema URI and no members is 201", function()
  local r = call("POST", "/Groups", [[
{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group",
            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
 "externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159","displayName":"Group1DisplayName",
 "meta":{"resourceType":"Group"}}]])
  expect.status(r, 201)
  ids.G2 = r.json.id
  expect.eq(get("/Groups/" .. ids.G2).displayName, "Group1DisplayName")
end)

test("8c. GET with excludedAttributes=members has no members", function()
  local g = get("/Groups/" .. ids.G .. "?excludedAttributes=members")
  expect.eq(g.id, ids.G)
  expect.eq(g.members, nil)
end)

-- Step 9 ----------------------------------------------------------------------

test("9a. Add members: one with \"$ref\": null, then two in one op without $ref", function()
  patch_group(ids.G, fill([[
{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
 "Operations":[{"op":"Add","path":"members","value":[{"$ref":null,"value":"{U}"}]}]}]], ids))
  expect.eq(member_ids(ids.G), {ids.U})
  patch_group(ids.G, fill(ops('{"op":"Add","path":"members","value":[{"value":"{U2}"},{"value":"{U3}"}]}'), ids))
  expect.eq(member_ids(ids.G), sorted{ids.U, ids.U2, ids.U3})
end)

test("9b. re-adding an existing member is a 2xx no-op", function()
  patch_group(ids.G, fill(ops('{"op":"Add","path":"members","value":[{"value":"{U}"}]}'), ids))
  expect.eq(member_ids(ids.G), sorted{ids.U, ids.U2, ids.U3})
end)

test("9c. legacy Remove with a value list removes only the listed member", function()
  patch_group(ids.G, fill([[
{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
 "Operations":[{"op":"Remove","path":"members","value":[{"value":"{U2}"}]}]}]], ids))
  expect.eq(member_ids(ids.G), sorted{ids.U, ids.U3}, "never read as \"remove all members\"")
end)

test("9d. removing a non-member is 2xx and changes nothing", function()
  patch_group(ids.G, fill(ops('{"op":"Remove","path":"members","value":[{"$ref":null,"value":"{U2}"}]}'), ids))
  expect.eq(member_ids(ids.G), sorted{ids.U, ids.U3})
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
      expect.eq(r1.json.Resources[1].displayName, nil, "attributes=id")
      expect.eq(r2.json.Resources[1].members, nil, "excludedAttributes=members")
    end
    return r1.json.totalResults
  end
  expect.eq(check(ids.U), 1)
  expect.eq(check(ids.U3), 1)
  expect.eq(check(ids.U2), 0)
  expect.eq(check(ids.M), 0)
end)

-- Step 11 ---------------------------------------------------------------------

test("11a. rename with a path: members unchanged", function()
  patch_group(ids.G, [[{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"displayName","value":"1879db59-...updatedDisplayName"}]}]])
  local g = get("/Groups/" .. ids.G)
  expect.eq(g.displayName, "1879db59-...updatedDisplayName")
  expect.eq(member_ids(ids.G), sorted{ids.U, ids.U3})
  expect.eq(count("/Groups", 'displayName eq "1879DB59-...UPDATEDDISPLAYNAME"'), 1)
  expect.eq(count("/Groups", 'displayName eq "Org Admin"'), 0)
end)

test("11b. path-less rename and externalId: members unchanged", function()
  patch_group(ids.G, ops('{"op":"Replace","value":{"displayName":"Sales EMEA"}}'))
  patch_group(ids.G, ops('{"op":"Replace","value":{"externalId":"663fa3a8-e2b6-4ac0-96c8-363432cdc01d"}}'))
  local g = get("/Groups/" .. ids.G)
  expect.eq(g.displayName, "Sales EMEA")
  expect.eq(g.externalId, "663fa3a8-e2b6-4ac0-96c8-363432cdc01d")
  expect.eq(member_ids(ids.G), sorted{ids.U, ids.U3})
end)

test("11c. renaming onto another group's name (any case) is 409 and changes nothing", function()
  local r = call("PATCH", "/Groups/" .. ids.G,
                 ops('{"op":"Replace","path":"displayName","value":"GROUP1DISPLAYNAME"}'))
  expect.status(r, 409)
  expect.eq(r.json.schemas, json.array{ERROR})
  expect.eq(r.json.scimType, "uniqueness")
  expect.eq(get("/Groups/" .. ids.G).displayName, "Sales EMEA")
  expect.eq(member_ids(ids.G), sorted{ids.U, ids.U3})
end)

-- Concurrency (§0 rule 19, §3.3) -----------------------------------------------

-- Send PATCH bodies to one URL all at once: the runner has no threads, so
-- one shell starts a background curl per body and waits for all of them.
-- Returns the HTTP status of each, in order.
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

test("30 concurrent Add PATCHes to one group: every member ends up in it", function()
  local users, bodies = {}, {}
  for i = 1, 30 do
    local r = call("POST", "/Users", {userName = string.format("par%02d@contoso.com", i)})
    expect.status(r, 201)
    users[i] = r.json.id
    bodies[i] = ops('{"op":"Add","path":"members","value":[{"value":"' .. r.json.id .. '"}]}')
  end
  local r = call("POST", "/Groups", {displayName = "Parallel", externalId = "parallel", members = json.array()})
  expect.status(r, 201)
  local gid = r.json.id
  local statuses = concurrent_patches("/Groups/" .. gid, bodies)
  for i, s in ipairs(statuses) do expect.eq(s, "204", "PATCH " .. i) end
  expect.eq(member_ids(gid), sorted(users))
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
  expect.eq(count("/Groups", 'displayName eq "Sales EMEA"'), 0)
end)

test("12b. DELETE a user: 204, then GET 404, then DELETE 404", function()
  local r = call("DELETE", "/Users/" .. ids.U)
  expect.status(r, 204)
  expect.eq(r.body, "")
  r = call("GET", "/Users/" .. ids.U)
  expect.status(r, 404)
  expect.eq(r.json.status, "404")
  expect.status(call("DELETE", "/Users/" .. ids.U), 404)
  expect.eq(count("/Users", 'userName eq "5b50642d-...@testuser.com"'), 0)
end)

-- Step 13 ---------------------------------------------------------------------

test("13a. a bad token gets 401 with a SCIM body, on PATCH as on GET", function()
  local bad = {Authorization = "Bearer not-a-token"}
  local r = call("PATCH", "/Users/" .. ids.M, ops('{"op":"Replace","path":"active","value":"False"}'), bad)
  expect.status(r, 401)
  expect.eq(r.json.schemas, json.array{ERROR})
  expect.eq(r.json.status, "401")
  r = call("GET", "/Users?filter=userName+eq+%22mgr%40contoso.com%22", nil, bad)
  expect.status(r, 401)
  expect.eq(r.json.schemas, json.array{ERROR})
  expect.eq(get("/Users/" .. ids.M).active, true, "the refused PATCH changed nothing")
end)

test("13b. PATCH of an unknown id is 404 with a SCIM body", function()
  local r = call("PATCH", "/Users/5171a35d82074e068ce2", ops('{"op":"Replace","path":"active","value":"False"}'))
  expect.status(r, 404)
  expect.eq(r.json.schemas, json.array{ERROR})
  expect.eq(r.json.status, "404")
  r = call("PATCH", "/Groups/cdb1ce18f65944079d37",
           fill(ops('{"op":"Add","path":"members","value":[{"value":"{M}"}]}'), ids))
  expect.status(r, 404)
  expect.eq(r.json.schemas, json.array{ERROR})
  r = call("PATCH", "/Groups/" .. ids.G, fill(ops('{"op":"Add","path":"members","value":[{"value":"{M}"}]}'), ids))
  expect.status(r, 404, "a deleted group")
end)
