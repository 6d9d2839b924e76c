-- Users as Entra provisions them (ENTRA.md §2.2-2.4, §2.7): the default
-- mapping's POST body, read back by filter and by id in the shape it was
-- sent, duplicates refused, replaced and deleted.

local gw = gateway.start{}

local function fixture(name)
  local f = assert(io.open(runner.dir .. "/fixtures/" .. name))
  local text = f:read("a")
  f:close()
  return text
end

local ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
local USER_BODY = fixture("entra_user_post.json")
local sent = json.decode(USER_BODY)
local scim = {["Content-Type"] = "application/scim+json; charset=utf-8"}
local function hdrs(extra)
  local h = gw:auth()
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

local created

-- Every attribute Entra sent must come back with the same value and shape
-- (DESIGN §6): client meta aside.
local function assert_round_trip(got)
  for k, v in pairs(sent) do
    if k ~= "meta" and k ~= "schemas" then expect.eq(got[k], v, "attribute " .. k) end
  end
  -- The server-owned lifecycle extension (DESIGN §5) comes on top: a provisioned user is Staged.
  local want = {}
  for i, urn in ipairs(sent.schemas) do want[i] = urn end
  want[#want + 1] = "urn:scimgate:schemas:extension:lifecycle:2.0:User"
  expect.eq(got.schemas, want)
  expect.eq(got["urn:scimgate:schemas:extension:lifecycle:2.0:User"], {state = "Staged"})
  expect.eq(got.meta.resourceType, "User")
  expect.match(got.meta.created, "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d")
  expect.eq(got.meta.location, gw.url .. "/Users/" .. got.id)
end

test("POST the default Entra body: 201, Location, every value as sent", function()
  local r = http.request{method = "POST", url = gw.url .. "/Users", headers = hdrs(scim),
                         body = USER_BODY, raw = true}
  expect.status(r, 201)
  expect.header(r, "content-type", "^application/scim%+json")
  expect.eq(r.headers.location, gw.url .. "/Users/" .. r.json.id)
  expect.match(r.json.id, "^%x+%-%x+%-%x+%-%x+%-%x+$")
  assert_round_trip(r.json)
  expect.array(r.json.roles)
  created = r.json
end)

test("the matching filter finds the user case-insensitively", function()
  local r = http.get(gw.url .. "/Users?filter=userName+eq+%22BJensen%40Contoso.com%22", gw:auth())
  expect.status(r, 200)
  expect.eq(r.json.totalResults, 1)
  expect.eq(r.json.Resources[1].id, created.id)
  assert_round_trip(r.json.Resources[1])
end)

test("externalId and the work email also match (other matching attributes)", function()
  local r = http.get(gw.url .. "/Users?filter=externalId+eq+%22bjensen%22", gw:auth())
  expect.eq(r.json.totalResults, 1)
  r = http.get(gw.url .. "/Users?filter=externalId+eq+%22BJENSEN%22", gw:auth())
  expect.eq(r.json.totalResults, 0, "externalId is case-exact")
  r = http.get(gw.url .. '/Users?filter=emails%5Btype+eq+%22work%22%5D.value+eq+%22bjensen%40contoso.com%22',
               gw:auth())
  expect.status(r, 200)
  expect.eq(r.json.totalResults, 1)
  r = http.get(gw.url .. '/Users?filter=emails[type eq "home"].value eq "bjensen@contoso.com"',
               gw:auth())
  expect.eq(r.json.totalResults, 0, "a work address is not a home address")
  r = http.get(gw.url .. "/Users?filter=id+eq+%22" .. created.id .. "%22+and+userName+eq+%22bjensen%40contoso.com%22",
               gw:auth())
  expect.eq(r.json.totalResults, 1)
end)

test("GET by id returns the same document and an ETag", function()
  local r = http.get(gw.url .. "/Users/" .. created.id, gw:auth())
  expect.status(r, 200)
  expect.header(r, "etag", '^W/"1"$')
  assert_round_trip(r.json)
  expect.eq(r.json.meta.version, 'W/"1"')
end)

test("attributes and excludedAttributes shape the answer", function()
  local r = http.get(gw.url .. "/Users/" .. created.id .. "?attributes=userName,name.givenName", gw:auth())
  expect.status(r, 200)
  expect.eq(r.json.userName, "bjensen@contoso.com")
  expect.eq(r.json.name, {givenName = "Barbara"})
  expect.eq(r.json.id, created.id)
  expect.eq(r.json.emails, nil)
  r = http.get(gw.url .. "/Users/" .. created.id .. "?excludedAttributes=emails," .. ENT, gw:auth())
  expect.eq(r.json.emails, nil)
  expect.eq(r.json[ENT], nil)
  expect.eq(r.json.title, "Tour Guide")
end)

test("a second POST with the same userName (any case) is 409 uniqueness", function()
  local again = json.decode(USER_BODY)
  again.userName = "BJENSEN@contoso.com"
  local r = http.post(gw.url .. "/Users", again, hdrs(scim))
  expect.status(r, 409)
  expect.eq(r.json.scimType, "uniqueness")
  expect.eq(r.json.status, "409")
  expect.match(r.json.detail, "userName")
end)

test("boolean strings and manager shapes are normalised (DESIGN §6)", function()
  local r = http.post(gw.url .. "/Users", {
    schemas = json.array{"urn:ietf:params:scim:schemas:core:2.0:User", ENT},
    userName = "emp1@contoso.com", active = "True",
    roles = json.array{{value = "admin", primary = "True"}},
    [ENT] = {manager = created.id},
  }, hdrs(scim))
  expect.status(r, 201)
  expect.eq(r.json.active, true)
  expect.eq(r.json.roles[1].primary, true)
  expect.eq(r.json[ENT].manager, {value = created.id})
  r = http.get(gw.url .. "/Users?filter=active+eq+true", gw:auth())
  expect.eq(r.json.totalResults, 2)
end)

test("a user without active is created active; disabled users stay visible", function()
  local r = http.post(gw.url .. "/Users", {userName = "noactive@contoso.com"}, hdrs(scim))
  expect.status(r, 201)
  expect.eq(r.json.active, true)
  r = http.post(gw.url .. "/Users", {userName = "off@contoso.com", active = false}, hdrs(scim))
  expect.eq(r.json.active, false)
  r = http.get(gw.url .. "/Users?filter=userName+eq+%22off%40contoso.com%22", gw:auth())
  expect.eq(r.json.totalResults, 1)
  expect.eq(r.json.Resources[1].active, false)
end)

test("PUT replaces the user; unknown attributes are dropped", function()
  local body = json.decode(USER_BODY)
  body.title = "Lead Guide"
  body.preferredLanguage = nil
  body.misspelledAttribute = "x"
  local r = http.put(gw.url .. "/Users/" .. created.id, body, hdrs(scim))
  expect.status(r, 200)
  expect.eq(r.json.title, "Lead Guide")
  expect.eq(r.json.preferredLanguage, nil, "what the PUT leaves out is gone")
  expect.eq(r.json.misspelledAttribute, nil)
  expect.eq(r.json.meta.version, 'W/"2"')
  expect.eq(r.json.meta.created, created.meta.created)
  r = http.get(gw.url .. "/Users/" .. created.id, gw:auth())
  expect.eq(r.json.title, "Lead Guide")
end)

test("a PUT that takes another user's userName is 409 and changes nothing", function()
  local body = json.decode(USER_BODY)
  body.userName = "emp1@contoso.com"
  local r = http.put(gw.url .. "/Users/" .. created.id, body, hdrs(scim))
  expect.status(r, 409)
  r = http.get(gw.url .. "/Users/" .. created.id, gw:auth())
  expect.eq(r.json.userName, "bjensen@contoso.com")
  expect.eq(r.json.meta.version, 'W/"2"')
end)

test("paging with startIndex and count", function()
  local r = http.get(gw.url .. "/Users?startIndex=1&count=2", gw:auth())
  expect.status(r, 200)
  expect.eq(r.json.totalResults, 4)
  expect.eq(r.json.itemsPerPage, 2)
  expect.eq(#r.json.Resources, 2)
  local first = r.json.Resources[1].id
  r = http.get(gw.url .. "/Users?startIndex=4&count=2", gw:auth())
  expect.eq(r.json.itemsPerPage, 1)
  expect.eq(r.json.startIndex, 4)
  r = http.get(gw.url .. "/Users?startIndex=9&count=2", gw:auth())
  expect.eq(#r.json.Resources, 0)
  expect.array(r.json.Resources)
  r = http.get(gw.url .. "/Users?count=0", gw:auth())
  expect.eq(r.json.totalResults, 4)
  expect.eq(#r.json.Resources, 0)
  r = http.get(gw.url .. "/Users?startIndex=0&count=1", gw:auth())
  expect.eq(r.json.Resources[1].id, first, "startIndex below 1 means 1")
  r = http.get(gw.url .. "/Users?count=abc", gw:auth())
  expect.status(r, 400)
end)

test("DELETE is 204, then GET and DELETE are 404", function()
  local r = http.delete(gw.url .. "/Users/" .. created.id, gw:auth())
  expect.status(r, 204)
  expect.eq(r.body, "")
  r = http.get(gw.url .. "/Users/" .. created.id, gw:auth())
  expect.status(r, 404)
  expect.eq(r.json.status, "404")
  r = http.delete(gw.url .. "/Users/" .. created.id, gw:auth())
  expect.status(r, 404)
  r = http.get(gw.url .. "/Users?filter=userName+eq+%22bjensen%40contoso.com%22", gw:auth())
  expect.eq(r.json.totalResults, 0)
end)

test("the userName of a deleted user can be used again", function()
  local r = http.request{method = "POST", url = gw.url .. "/Users", headers = hdrs(scim),
                         body = USER_BODY, raw = true}
  expect.status(r, 201)
  expect.ne(r.json.id, created.id)
end)

test("data survives a restart", function()
  gw:restart()
  local r = http.get(gw.url .. "/Users?filter=userName+eq+%22bjensen%40contoso.com%22", gw:auth())
  expect.eq(r.json.totalResults, 1)
end)
