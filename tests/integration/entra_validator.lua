-- The Microsoft SCIM Validator's sequence (ENTRA.md §6.1, tests 1-25 and
-- the preview tests P1-P7) in its own shapes, which differ from production
-- Entra: lowercase ops and JSON booleans like the flag mode, but
-- roles[].primary sent as the string "True" and expected back as boolean
-- true, manager as an object {"value": ...}, a path-less userName replace,
-- `replace members` on an empty group, a filter in a different case.
--
-- Test names carry the validator's row number; they run in an order in
-- which each has what it needs (groups exist before they are read).
-- Every response with a body must be application/scim+json.

local gw = gateway.start{}

local ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
local LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
local ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
local PATCHOP = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":['

local function fill(text, vars)
  return (text:gsub("{(%u[%w_]*)}", function(k)
    return assert(vars[k], "no value for {" .. k .. "}")
  end))
end

local function call(method, path, body)
  local h = gw:auth()
  if body ~= nil then
    h["Content-Type"] = "application/scim+json"
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

local function get(path)
  local r = call("GET", path)
  expect.status(r, 200)
  return r.json
end

-- The validator writes its filters with raw quotes; the runner percent-
-- encodes the quotes and spaces curl refuses.
local function list(endpoint, filter, extra)
  local r = call("GET", endpoint .. "?" .. (extra or "") .. "filter=" .. filter)
  expect.status(r, 200)
  expect.eq(r.json.schemas, json.array{LIST})
  expect.array(r.json.Resources)
  return r.json
end

local function patch_user(id, body)
  local r = call("PATCH", "/Users/" .. id, body)
  expect.status(r, 200)
  expect.eq(r.json.id, id)
  return r.json
end

local function patch_group(id, body)
  local r = call("PATCH", "/Groups/" .. id, body)
  expect.status(r, 204)
  return r
end

local function member_ids(gid)
  local ids = {}
  for _, m in ipairs(get("/Groups/" .. gid).members or {}) do ids[#ids + 1] = m.value end
  table.sort(ids)
  return ids
end

local ids = {}

-- The body of "Create a new User": every default attribute, the manager as
-- an object, and roles[].primary as the string "True".
local CREATE_USER = [[
{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
              "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "userName": "dale.mohr@romaguera.uk",
  "active": true,
  "displayName": "KMJXQGVEDVHP",
  "title": "QJTBGZUWGRAA",
  "emails": [{"type": "work", "value": "dale.mohr@romaguera.uk", "primary": true}],
  "preferredLanguage": "de-DE",
  "name": {"givenName": "Dale", "familyName": "Mohr", "formatted": "Dale Mohr"},
  "addresses": [{"type": "work", "formatted": "ZVNVXPLHDTUO", "streetAddress": "4493 Brenda Ridge",
                 "locality": "Lake Kraig", "region": "Alaska", "postalCode": "ct89 4pr",
                 "country": "Benin", "primary": true}],
  "phoneNumbers": [{"type": "work", "value": "27-365-6580", "primary": true},
                   {"type": "mobile", "value": "80-441-2395"},
                   {"type": "fax", "value": "06-916-6734"}],
  "externalId": "c5e4f3a1-1b7e-4f0b-a8c1-6b1d2a9e7f30",
  "roles": [{"primary": "True", "display": "RVUKHNLDXBBS", "value": "BPXVWAYRHMJY",
             "type": "WindowsAzureActiveDirectoryRole"}],
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
    "employeeNumber": "MVOLCXBCHJQL",
    "department": "RJYQMFJNJPIK",
    "manager": {"value": "EQUYDVRYSRXW"}
  }
}]]

-- Users -----------------------------------------------------------------------

test("1. Create a new User: 201, and every value round-trips (\"True\" comes back true)", function()
  local r = call("POST", "/Users", CREATE_USER)
  expect.status(r, 201)
  ids.U = r.json.id
  local found = list("/Users", 'userName eq "dale.mohr@romaguera.uk"')
  expect.eq(found.totalResults, 1)
  local got = found.Resources[1]
  local sent = json.decode(CREATE_USER)
  sent.roles[1].primary = true -- the one conversion the validator expects
  for k, v in pairs(sent) do
    if k ~= "schemas" then expect.eq(got[k], v, "attribute " .. k) end
  end
  expect.eq(got.roles[1].primary, true, "a JSON boolean, not \"True\"")
  expect.eq(got.id, ids.U)
end)

test("2. Create a duplicate User: 409", function()
  local r = call("POST", "/Users", CREATE_USER)
  expect.status(r, 409)
  expect.eq(r.json.schemas, json.array{ERROR})
  expect.eq(r.json.scimType, "uniqueness")
  expect.truthy(r.json.detail, "a detail")
end)

test("3. Filter for an existing user: 1", function()
  expect.eq(list("/Users", 'userName eq "dale.mohr@romaguera.uk"').totalResults, 1)
  -- The validator's report shows the address as dale.mohr%40romaguera.uk.
  expect.eq(list("/Users", 'userName+eq+"dale.mohr%40romaguera.uk"').totalResults, 1)
end)

test("4. Filter for a non-existing user: 0", function()
  local l = list("/Users", 'userName eq "lyla.koss@hilll.us"')
  expect.eq(l.totalResults, 0)
  expect.eq(#l.Resources, 0)
end)

test("5. Filter for an existing user with a different case: 1", function()
  local l = list("/Users", 'userName eq "DALE.MOHR@ROMAGUERA.UK"')
  expect.eq(l.totalResults, 1)
  expect.eq(l.Resources[1].id, ids.U)
end)

test("6. Patch User - Replace Attributes: values change in place", function()
  local u = patch_user(ids.U, ops([[
{"op":"replace","path":"emails[type eq \"work\"].value","value":"bettye@schmitt.info"},
{"op":"replace","path":"phoneNumbers[type eq \"work\"].value","value":"18-713-3071"},
{"op":"replace","path":"phoneNumbers[type eq \"mobile\"].value","value":"93-457-4813"},
{"op":"replace","path":"phoneNumbers[type eq \"fax\"].value","value":"44-166-6424"},
{"op":"replace","path":"addresses[type eq \"work\"].formatted","value":"OGKTZXTVPXHY"},
{"op":"replace","path":"addresses[type eq \"work\"].streetAddress","value":"47931 Enrico Harbors"},
{"op":"replace","path":"addresses[type eq \"work\"].locality","value":"Schulistland"},
{"op":"replace","path":"addresses[type eq \"work\"].region","value":"Nevada"},
{"op":"replace","path":"addresses[type eq \"work\"].postalCode","value":"hl9 1ti"},
{"op":"replace","path":"addresses[type eq \"work\"].country","value":"Malta"},
{"op":"replace","path":"displayName","value":"JCLXHNMDVZSN"},
{"op":"replace","path":"title","value":"WVQHWRRCBCLM"},
{"op":"replace","path":"preferredLanguage","value":"fr-FR"},
{"op":"replace","path":"name.givenName","value":"Bettye"},
{"op":"replace","path":"name.familyName","value":"Schmitt"},
{"op":"replace","path":"name.formatted","value":"Bettye Schmitt"},
{"op":"replace","path":"roles[primary eq \"True\"].display","value":"VXCKNZYBDXQK"},
{"op":"replace","path":"roles[primary eq \"True\"].value","value":"YRPQOQJLZMPW"},
{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"GDRGBXWXOUQP"},
{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"KBTZRTCVPXNJ"}]]))
  expect.eq(u.title, "WVQHWRRCBCLM")
  local got = get("/Users/" .. ids.U)
  expect.eq(got.userName, "dale.mohr@romaguera.uk")
  expect.eq(got.emails, json.array{{type = "work", value = "bettye@schmitt.info", primary = true}})
  expect.eq(got.phoneNumbers, json.array{{type = "work", value = "18-713-3071", primary = true},
                                         {type = "mobile", value = "93-457-4813"},
                                         {type = "fax", value = "44-166-6424"}})
  expect.eq(got.addresses, json.array{{type = "work", formatted = "OGKTZXTVPXHY",
                                       streetAddress = "47931 Enrico Harbors", locality = "Schulistland",
                                       region = "Nevada", postalCode = "hl9 1ti", country = "Malta",
                                       primary = true}})
  expect.eq(got.displayName, "JCLXHNMDVZSN")
  expect.eq(got.preferredLanguage, "fr-FR")
  expect.eq(got.name, {givenName = "Bettye", familyName = "Schmitt", formatted = "Bettye Schmitt"})
  expect.eq(got.roles, json.array{{primary = true, display = "VXCKNZYBDXQK", value = "YRPQOQJLZMPW",
                                   type = "WindowsAzureActiveDirectoryRole"}})
  expect.eq(got[ENT], {employeeNumber = "GDRGBXWXOUQP", department = "KBTZRTCVPXNJ",
                       manager = {value = "EQUYDVRYSRXW"}})
end)

test("7. Patch User - Add Attributes: a bare user gets them, elements created", function()
  local r = call("POST", "/Users", {
    schemas = json.array{"urn:ietf:params:scim:schemas:core:2.0:User", ENT},
    userName = "cleve.hane@rutherford.name", active = true})
  expect.status(r, 201)
  ids.U2 = r.json.id
  patch_user(ids.U2, ops([[
{"op":"add","path":"name.givenName","value":"Cleve"},
{"op":"add","path":"name.familyName","value":"Hane"},
{"op":"add","path":"emails[type eq \"work\"].value","value":"cleve.hane@rutherford.name"},
{"op":"add","path":"phoneNumbers[type eq \"work\"].value","value":"53-226-2181"},
{"op":"add","path":"phoneNumbers[type eq \"mobile\"].value","value":"36-818-9466"},
{"op":"add","path":"addresses[type eq \"work\"].streetAddress","value":"0 Reichel Fork"},
{"op":"add","path":"addresses[type eq \"work\"].locality","value":"Port Aliya"},
{"op":"add","path":"addresses[type eq \"work\"].country","value":"Chad"},
{"op":"add","path":"displayName","value":"MBVNXOIWQRXK"},
{"op":"add","path":"title","value":"OQLCTVXRNDKQ"},
{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"KQIVTXJHNCBR"}]]))
  local got = get("/Users/" .. ids.U2)
  expect.eq(got.name, {givenName = "Cleve", familyName = "Hane"})
  expect.eq(got.emails, json.array{{type = "work", value = "cleve.hane@rutherford.name"}})
  expect.eq(got.phoneNumbers, json.array{{type = "work", value = "53-226-2181"},
                                         {type = "mobile", value = "36-818-9466"}})
  expect.eq(got.addresses, json.array{{type = "work", streetAddress = "0 Reichel Fork",
                                       locality = "Port Aliya", country = "Chad"}})
  expect.eq(got.displayName, "MBVNXOIWQRXK")
  expect.eq(got.title, "OQLCTVXRNDKQ")
  expect.eq(got[ENT], {employeeNumber = "KQIVTXJHNCBR"})
end)

test("8. Update User userName with a path-less replace", function()
  local u = patch_user(ids.U2, ops('{"op":"replace","value":{"userName":"chelsie.nikolaus@oconner.uk"}}'))
  expect.eq(u.userName, "chelsie.nikolaus@oconner.uk")
  expect.eq(get("/Users/" .. ids.U2).userName, "chelsie.nikolaus@oconner.uk")
  expect.eq(list("/Users", 'userName eq "cleve.hane@rutherford.name"').totalResults, 0)
  expect.eq(list("/Users", 'userName eq "chelsie.nikolaus@oconner.uk"').totalResults, 1)
end)

test("9. Patch User - Disable User: GET and filter show active false", function()
  local u = patch_user(ids.U2, ops('{"op":"replace","path":"active","value":false}'))
  expect.eq(u.active, false)
  expect.eq(get("/Users/" .. ids.U2).active, false)
  local l = list("/Users", 'userName eq "chelsie.nikolaus@oconner.uk"')
  expect.eq(l.totalResults, 1)
  expect.eq(l.Resources[1].active, false, "should have attribute active")
end)

test("10. Patch User - Add Manager: manager.value = X", function()
  local u = patch_user(ids.U2, ops(
    '{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":{"value":"TCUGFQNIXBWJ"}}'))
  expect.eq(u[ENT].manager, {value = "TCUGFQNIXBWJ"})
  expect.eq(get("/Users/" .. ids.U2)[ENT].manager, {value = "TCUGFQNIXBWJ"})
end)

test("11. Patch User - Replace Manager", function()
  local u = patch_user(ids.U2, ops(
    '{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":{"value":"CBEQXYNPNAZS"}}'))
  expect.eq(u[ENT].manager, {value = "CBEQXYNPNAZS"})
  expect.eq(get("/Users/" .. ids.U2)[ENT].manager, {value = "CBEQXYNPNAZS"})
end)

test("12. Patch User - Remove Manager with {\"value\":\"\"}", function()
  local u = patch_user(ids.U2, ops(
    '{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":{"value":""}}'))
  expect.eq(u[ENT] and u[ENT].manager, nil)
  local got = get("/Users/" .. ids.U2)
  expect.eq(got[ENT] and got[ENT].manager, nil)
  expect.eq(got[ENT].employeeNumber, "KQIVTXJHNCBR")
end)

test("P1. Patch User - Multiple Ops on different attributes: all applied", function()
  patch_user(ids.U2, ops([[
{"op":"replace","path":"displayName","value":"YHNDBWOPCQKA"},
{"op":"add","path":"nickName","value":"ZPWKTSVJRPLQ"},
{"op":"replace","path":"active","value":true},
{"op":"remove","path":"title"}]]))
  local got = get("/Users/" .. ids.U2)
  expect.eq(got.displayName, "YHNDBWOPCQKA")
  expect.eq(got.nickName, "ZPWKTSVJRPLQ")
  expect.eq(got.active, true)
  expect.eq(got.title, nil)
end)

test("P2. Patch User - Multiple Ops on the same attribute: applied in order", function()
  patch_user(ids.U2, ops([[
{"op":"replace","path":"title","value":"FIRST"},
{"op":"replace","path":"title","value":"SECOND"},
{"op":"add","path":"emails[type eq \"other\"].value","value":"a@other.example"},
{"op":"replace","path":"emails[type eq \"other\"].value","value":"b@other.example"}]]))
  local got = get("/Users/" .. ids.U2)
  expect.eq(got.title, "SECOND")
  expect.eq(got.emails, json.array{{type = "work", value = "cleve.hane@rutherford.name"},
                                   {type = "other", value = "b@other.example"}})
end)

test("13. Delete a User: 204, then GET 404", function()
  local r = call("DELETE", "/Users/" .. ids.U)
  expect.status(r, 204)
  expect.eq(r.body, "")
  r = call("GET", "/Users/" .. ids.U)
  expect.status(r, 404)
  expect.eq(r.json.schemas, json.array{ERROR})
  expect.eq(list("/Users", 'userName eq "dale.mohr@romaguera.uk"').totalResults, 0)
end)

test("P3. Delete a non-existent User: 404", function()
  local r = call("DELETE", "/Users/0b2fc1a6-8d87-4d0e-a0c7-51c3a55b1e6f")
  expect.status(r, 404)
  expect.eq(r.json.schemas, json.array{ERROR})
end)

test("P4. Delete the same User twice: 201, 204, then 404", function()
  local r = call("POST", "/Users", {schemas = json.array{"urn:ietf:params:scim:schemas:core:2.0:User"},
                                    userName = "twice@romaguera.uk", active = true})
  expect.status(r, 201)
  local id = r.json.id
  expect.status(call("DELETE", "/Users/" .. id), 204)
  expect.status(call("DELETE", "/Users/" .. id), 404)
end)

-- Groups ----------------------------------------------------------------------

test("19. Create a new Group: 201", function()
  local r = call("POST", "/Groups", [[
{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
 "displayName":"QOMJOCQUSWXS","externalId":"f1d3a7b2-4c5e-4e8f-9a0b-2c3d4e5f6a7b"}]])
  expect.status(r, 201)
  expect.eq(r.json.displayName, "QOMJOCQUSWXS")
  ids.G = r.json.id
  r = call("POST", "/Users", {userName = "member@romaguera.uk", active = true})
  expect.status(r, 201)
  ids.MEMBER = r.json.id
end)

test("20. Create a duplicate Group: 409", function()
  local r = call("POST", "/Groups", [[
{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
 "displayName":"QOMJOCQUSWXS","externalId":"f1d3a7b2-4c5e-4e8f-9a0b-2c3d4e5f6a7b"}]])
  expect.status(r, 409)
  expect.eq(r.json.schemas, json.array{ERROR})
  expect.eq(r.json.scimType, "uniqueness")
end)

test("14. Get group by id excluding members: no members key", function()
  local g = get("/Groups/" .. ids.G .. "?excludedAttributes=members")
  expect.eq(g.id, ids.G)
  expect.eq(g.displayName, "QOMJOCQUSWXS")
  expect.eq(g.members, nil)
end)

test("15. Filter for an existing group excluding members: no members", function()
  local l = list("/Groups", 'displayName+eq+"QOMJOCQUSWXS"', "excludedAttributes=members&")
  expect.eq(l.totalResults, 1)
  expect.eq(l.Resources[1].members, nil)
end)

test("16. Filter for an existing group: 1", function()
  local l = list("/Groups", 'displayName eq "QOMJOCQUSWXS"')
  expect.eq(l.totalResults, 1)
  expect.eq(l.Resources[1].id, ids.G)
end)

test("17. Filter for a non-existing group: 0", function()
  expect.eq(list("/Groups", 'displayName eq "NXWZPQKRVTLM"').totalResults, 0)
end)

test("18. Filter for an existing group with a different case: 1", function()
  expect.eq(list("/Groups", 'displayName eq "qomjocquswxs"').totalResults, 1)
end)

test("21. Patch Group - Replace Attributes: path-less externalId", function()
  patch_group(ids.G, ops('{"op":"replace","value":{"externalId":"663fa3a8-e2b6-4ac0-96c8-363432cdc01d"}}'))
  expect.eq(get("/Groups/" .. ids.G).externalId, "663fa3a8-e2b6-4ac0-96c8-363432cdc01d")
end)

test("22. Update Group displayName: path-less", function()
  patch_group(ids.G, ops('{"op":"replace","value":{"displayName":"WUZPWMBDDCGI"}}'))
  expect.eq(get("/Groups/" .. ids.G).displayName, "WUZPWMBDDCGI")
  expect.eq(list("/Groups", 'displayName eq "QOMJOCQUSWXS"').totalResults, 0)
  expect.eq(list("/Groups", 'displayName eq "WUZPWMBDDCGI"').totalResults, 1)
end)

test("23. Patch Group - Add Member: replace members on an empty group", function()
  expect.eq(member_ids(ids.G), {})
  patch_group(ids.G, fill(ops('{"op":"replace","path":"members","value":[{"value":"{MEMBER}"}]}'), ids))
  expect.eq(member_ids(ids.G), {ids.MEMBER})
end)

test("P5. Patch Group - Multiple Ops on the same attribute: add then remove nets to nothing", function()
  patch_group(ids.G, fill(ops([[
{"op":"add","path":"members","value":[{"value":"{U2}"}]},
{"op":"remove","path":"members[value eq \"{U2}\"]"}]]), ids))
  expect.eq(member_ids(ids.G), {ids.MEMBER})
end)

test("24. Patch Group - Remove Member: remove members[value eq \"U\"]", function()
  patch_group(ids.G, fill(ops('{"op":"remove","path":"members[value eq \\"{MEMBER}\\"]"}'), ids))
  expect.eq(member_ids(ids.G), {})
  local g = get("/Groups/" .. ids.G)
  expect.eq(g.displayName, "WUZPWMBDDCGI", "the group itself stays")
end)

test("25. Delete a Group: 204, then GET 404", function()
  local r = call("DELETE", "/Groups/" .. ids.G)
  expect.status(r, 204)
  expect.eq(r.body, "")
  r = call("GET", "/Groups/" .. ids.G)
  expect.status(r, 404)
  expect.eq(r.json.schemas, json.array{ERROR})
end)

test("P6. Delete a non-existent Group: 404", function()
  local r = call("DELETE", "/Groups/5e7a9c1b-3d2f-4a6b-8c0d-e1f2a3b4c5d6")
  expect.status(r, 404)
  expect.eq(r.json.schemas, json.array{ERROR})
end)

test("P7. Delete the same Group twice: 204, then 404", function()
  local r = call("POST", "/Groups", {schemas = json.array{"urn:ietf:params:scim:schemas:core:2.0:Group"},
                                     displayName = "TWICEGROUP", externalId = "twice"})
  expect.status(r, 201)
  expect.status(call("DELETE", "/Groups/" .. r.json.id), 204)
  expect.status(call("DELETE", "/Groups/" .. r.json.id), 404)
end)
