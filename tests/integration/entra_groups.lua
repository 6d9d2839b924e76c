-- Groups as Entra provisions them (ENTRA.md §3.1, §3.2, §3.6): created
-- empty, looked up by displayName with members excluded, replaced, deleted.

local gw = gateway.start{}
local scim = {["Content-Type"] = "application/scim+json; charset=utf-8"}
local function hdrs()
  local h = gw:auth()
  for k, v in pairs(scim) do h[k] = v end
  return h
end

local function fixture(name)
  local f = assert(io.open(runner.dir .. "/fixtures/" .. name))
  local text = f:read("a")
  f:close()
  return text
end

local users = {}
local group

test("users first", function()
  for _, n in ipairs{"u1", "u2"} do
    local r = http.post(gw.url .. "/Users", {userName = n .. "@contoso.com"}, hdrs())
    expect.status(r, 201)
    users[#users + 1] = r.json.id
  end
end)

test("lookup by displayName before create finds nothing", function()
  local r = http.get(gw.url .. "/Groups?excludedAttributes=members&filter=displayName+eq+%22Org+Admin%22",
                     gw:auth())
  expect.status(r, 200)
  expect.eq(r.json.totalResults, 0)
end)

test("POST the Entra group body: 201 with members []", function()
  local r = http.request{method = "POST", url = gw.url .. "/Groups", headers = hdrs(),
                         body = fixture("entra_group_post.json"), raw = true}
  expect.status(r, 201)
  expect.eq(r.json.displayName, "Org Admin")
  expect.eq(r.json.externalId, "0899060-370e-46a-bc5f-3aas207ed41d")
  expect.array(r.json.members)
  expect.eq(#r.json.members, 0)
  expect.eq(r.json.meta.resourceType, "Group")
  expect.eq(r.headers.location, gw.url .. "/Groups/" .. r.json.id)
  group = r.json
end)

test("the Microsoft sample with the ADSCIM schema URI and no members", function()
  local r = http.post(gw.url .. "/Groups", {
    schemas = json.array{"urn:ietf:params:scim:schemas:core:2.0:Group",
                         "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"},
    externalId = "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", displayName = "Group1DisplayName",
    meta = {resourceType = "Group"}}, hdrs())
  expect.status(r, 201)
  expect.eq(r.json.schemas, json.array{"urn:ietf:params:scim:schemas:core:2.0:Group",
                                      "urn:scimgate:schemas:extension:policy:2.0:Group"},
            "unknown schema URIs are dropped; the gateway's group policy is added")
end)

test("a duplicate displayName (any case) is 409 uniqueness", function()
  local r = http.post(gw.url .. "/Groups", {displayName = "org admin"}, hdrs())
  expect.status(r, 409)
  expect.eq(r.json.scimType, "uniqueness")
end)

test("lookup by displayName with members excluded, any case", function()
  local r = http.get(gw.url .. "/Groups?excludedAttributes=members&filter=displayName+eq+%22ORG+ADMIN%22",
                     gw:auth())
  expect.eq(r.json.totalResults, 1)
  local g = r.json.Resources[1]
  expect.eq(g.id, group.id)
  expect.eq(g.members, nil)
  r = http.get(gw.url .. "/Groups/" .. group.id .. "?excludedAttributes=members", gw:auth())
  expect.status(r, 200)
  expect.eq(r.json.members, nil)
  expect.eq(r.json.displayName, "Org Admin")
end)

test("PUT with members stores them; GET lists them; membership filters find them", function()
  local r = http.put(gw.url .. "/Groups/" .. group.id, {
    displayName = "Org Admin", externalId = group.externalId,
    members = json.array{{value = users[1]}, {["$ref"] = json.null, value = users[2]}}}, hdrs())
  expect.status(r, 200)
  expect.eq(#r.json.members, 2)
  r = http.get(gw.url .. "/Groups/" .. group.id, gw:auth())
  expect.eq(#r.json.members, 2)
  expect.eq(r.json.members[1].value, users[1])
  expect.eq(r.json.members[1].type, "User")
  r = http.get(gw.url .. "/Groups?filter=id+eq+%22" .. group.id .. "%22+and+members+eq+%22" .. users[2]
               .. "%22&attributes=id", gw:auth())
  expect.eq(r.json.totalResults, 1)
  expect.eq(r.json.Resources[1].displayName, nil)
  r = http.get(gw.url .. '/Groups?excludedAttributes=members&filter=id eq "' .. group.id
               .. '" and members[value eq "nobody"]', gw:auth())
  expect.eq(r.json.totalResults, 0)
end)

test("a PUT without members keeps them; nested groups are left out; unknown members refused", function()
  local r = http.put(gw.url .. "/Groups/" .. group.id, {displayName = "Org Admins"}, hdrs())
  expect.status(r, 200)
  expect.eq(#r.json.members, 2)
  local sub = http.post(gw.url .. "/Groups", {displayName = "Nested"}, hdrs()).json
  r = http.put(gw.url .. "/Groups/" .. group.id, {displayName = "Org Admins",
    members = json.array{{value = users[1]}, {value = sub.id}}}, hdrs())
  expect.status(r, 200)
  expect.eq(#r.json.members, 1)
  r = http.put(gw.url .. "/Groups/" .. group.id, {displayName = "Org Admins",
    members = json.array{{value = "no-such-user"}}}, hdrs())
  expect.status(r, 400)
  expect.eq(r.json.scimType, "invalidValue")
  r = http.get(gw.url .. "/Groups/" .. group.id, gw:auth())
  expect.eq(#r.json.members, 1, "the refused PUT changed nothing")
end)

test("deleting a user removes it from its groups", function()
  expect.status(http.delete(gw.url .. "/Users/" .. users[1], gw:auth()), 204)
  local r = http.get(gw.url .. "/Groups/" .. group.id, gw:auth())
  expect.eq(#r.json.members, 0)
end)

test("PATCH adds members (Entra's default shape) and answers 204", function()
  local r = http.patch(gw.url .. "/Groups/" .. group.id, {
    schemas = json.array{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
    Operations = json.array{{op = "Add", path = "members", value = json.array{{value = users[2]}}}}},
    hdrs())
  expect.status(r, 204)
  expect.eq(r.body, "")
  r = http.get(gw.url .. "/Groups/" .. group.id, gw:auth())
  expect.eq(#r.json.members, 1)
  expect.eq(r.json.members[1].value, users[2])
  local spc = http.get(gw.url .. "/ServiceProviderConfig", gw:auth())
  expect.eq(spc.json.patch.supported, true)
end)

test("DELETE group is 204, then 404 twice", function()
  expect.status(http.delete(gw.url .. "/Groups/" .. group.id, gw:auth()), 204)
  expect.status(http.get(gw.url .. "/Groups/" .. group.id, gw:auth()), 404)
  expect.status(http.delete(gw.url .. "/Groups/" .. group.id, gw:auth()), 404)
end)

test("a user id is not a group id", function()
  expect.status(http.get(gw.url .. "/Groups/" .. users[2], gw:auth()), 404)
  expect.status(http.delete(gw.url .. "/Groups/" .. users[2], gw:auth()), 404)
end)
