-- Discovery endpoints (RFC 7644 §4), served from schemas/.

local gw = gateway.start{}
local LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

test("ServiceProviderConfig says what is supported", function()
  local r = http.get(gw.url .. "/ServiceProviderConfig", gw:auth())
  expect.status(r, 200)
  expect.eq(r.json.schemas, json.array{"urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"})
  expect.eq(r.json.filter.supported, true)
  expect.eq(r.json.filter.maxResults, 1000)
  expect.eq(r.json.patch.supported, true)
  expect.eq(r.json.etag.supported, true)
  expect.eq(r.json.authenticationSchemes[1].type, "oauthbearertoken")
  expect.eq(r.json.meta.location, gw.url .. "/ServiceProviderConfig")
end)

test("responses carry an HTTP Date of now (RFC 9110 IMF-fixdate, written by the gateway)", function()
  local r = http.get(gw.url .. "/ServiceProviderConfig", gw:auth())
  expect.status(r, 200)
  local d = r.headers.date
  expect.match(d, "^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$")
  local now = os.time() -- the day of now or of a moment ago (a request across midnight)
  local today, before = os.date("!%a, %d %b %Y", now), os.date("!%a, %d %b %Y", now - 10)
  expect.eq(d:sub(1, 16) == today or d:sub(1, 16) == before, true, d)
end)

test("Schemas lists User, Group, the enterprise and lifecycle extensions", function()
  local r = http.get(gw.url .. "/Schemas", gw:auth())
  expect.status(r, 200)
  expect.eq(r.json.schemas, json.array{LIST})
  local ids = {}
  for _, s in ipairs(r.json.Resources) do ids[s.id] = s end
  for _, id in ipairs{"urn:ietf:params:scim:schemas:core:2.0:User",
                      "urn:ietf:params:scim:schemas:core:2.0:Group",
                      "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                      "urn:scimgate:schemas:extension:lifecycle:2.0:User"} do
    expect.truthy(ids[id], id)
    expect.eq(ids[id].meta.location, gw.url .. "/Schemas/" .. id)
  end
  expect.eq(r.json.totalResults, #r.json.Resources)
end)

test("one schema by id, and 404 for an unknown one", function()
  local r = http.get(gw.url .. "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", gw:auth())
  expect.status(r, 200)
  local found
  for _, a in ipairs(r.json.attributes) do if a.name == "userName" then found = a end end
  expect.eq(found.uniqueness, "server")
  expect.eq(found.caseExact, false)
  expect.status(http.get(gw.url .. "/Schemas/urn:nope", gw:auth()), 404)
end)

test("ResourceTypes", function()
  local r = http.get(gw.url .. "/ResourceTypes", gw:auth())
  expect.status(r, 200)
  expect.eq(r.json.totalResults, 2)
  expect.eq(r.json.Resources[1].endpoint, "/Users")
  r = http.get(gw.url .. "/ResourceTypes/Group", gw:auth())
  expect.eq(r.json.schema, "urn:ietf:params:scim:schemas:core:2.0:Group")
  expect.status(http.get(gw.url .. "/ResourceTypes/Widget", gw:auth()), 404)
end)
