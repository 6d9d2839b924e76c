-- examples/custom-mapping against a real gateway: userName from the work
-- email, a role from the department, and a clear 400 for other domains.

local gw = gateway.start{scripts = runner.dir .. "/../../examples/custom-mapping/scripts"}
local ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

test("userName becomes the work email, the department gives the role", function()
  local r = http.post(gw.url .. "/Users", {
    schemas = json.array{"urn:ietf:params:scim:schemas:core:2.0:User", ENT},
    userName = "bjensen@contoso.onmicrosoft.com",
    emails = json.array{{type = "home", value = "b@home.example"},
                        {type = "work", value = "Barbara.Jensen@Contoso.com", primary = true}},
    [ENT] = {department = "IT"}}, gw:auth())
  expect.status(r, 201)
  expect.eq(r.json.userName, "barbara.jensen@contoso.com")
  expect.eq(r.json.roles, json.array{{value = "admin", primary = true}})
  r = http.post(gw.url .. "/Users", {
    userName = "x@contoso.onmicrosoft.com",
    emails = json.array{{type = "work", value = "sam@contoso.com"}},
    [ENT] = {department = "Sales"}}, gw:auth())
  expect.status(r, 201)
  expect.eq(r.json.roles[1].value, "member")
end)

test("the matching filter Entra should use then finds the user", function()
  local r = http.get(gw.url .. '/Users?filter=emails[type eq "work"].value eq "barbara.jensen@contoso.com"',
                     gw:auth())
  expect.eq(r.json.totalResults, 1)
end)

test("users outside the domain are refused with a clear 400, nothing stored", function()
  local r = http.post(gw.url .. "/Users", {
    userName = "guest@fabrikam.com", emails = json.array{{type = "work", value = "guest@fabrikam.com"}}},
    gw:auth())
  expect.status(r, 400)
  expect.eq(r.json.scimType, "invalidValue")
  expect.match(r.json.detail, "only @contoso%.com addresses")
  expect.eq(http.get(gw.url .. "/Users?count=0", gw:auth()).json.totalResults, 2)
end)

test("groups are not touched by the user mapping", function()
  expect.status(http.post(gw.url .. "/Groups", {displayName = "Sales"}, gw:auth()), 201)
end)
