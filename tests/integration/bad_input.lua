-- Bad input gets a clear SCIM error (RFC 7644 §3.12) and changes nothing;
-- the gateway keeps serving afterwards.

local gw = gateway.start{config = {["limits.body_bytes"] = "4096", ["limits.json_depth"] = "16",
                                   ["limits.filter_length"] = "200"}}
local ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"

local function is_scim_error(r, status, scim_type)
  expect.status(r, status)
  expect.header(r, "content-type", "^application/scim%+json")
  expect.eq(r.json.schemas, json.array{ERROR})
  expect.eq(r.json.status, tostring(status))
  if scim_type then expect.eq(r.json.scimType, scim_type) end
  expect.truthy(r.json.detail and #r.json.detail > 0, "detail is set")
end

local function count_users()
  return http.get(gw.url .. "/Users?count=0", gw:auth()).json.totalResults
end

test("invalid JSON is 400 invalidSyntax", function()
  for _, body in ipairs{"{bad", "", "[1,2,3]", '"text"', '{"userName":"a",}',
                        '{"userName":"a","userName":"b"}'} do
    local r = http.request{method = "POST", url = gw.url .. "/Users", headers = gw:auth(),
                           body = body, raw = true}
    expect.status(r, 400, body)
    expect.eq(r.json.schemas, json.array{ERROR})
  end
  expect.eq(count_users(), 0)
end)

test("a body over limits.body_bytes is 413", function()
  local r = http.post(gw.url .. "/Users", {userName = "big", title = string.rep("x", 5000)},
                      gw:auth())
  is_scim_error(r, 413)
  expect.eq(count_users(), 0)
end)

test("nesting deeper than limits.json_depth is 400", function()
  local body = string.rep("[", 40) .. string.rep("]", 40)
  local r = http.request{method = "POST", url = gw.url .. "/Users", headers = gw:auth(),
                         body = '{"userName":"d","x":' .. body .. "}", raw = true}
  is_scim_error(r, 400, "invalidSyntax")
end)

test("missing required attributes and wrong types are 400 invalidValue", function()
  is_scim_error(http.post(gw.url .. "/Users", {displayName = "no user name"}, gw:auth()), 400,
                "invalidValue")
  is_scim_error(http.post(gw.url .. "/Users", {userName = 42}, gw:auth()), 400, "invalidValue")
  is_scim_error(http.post(gw.url .. "/Users", {userName = "a", active = "perhaps"}, gw:auth()), 400,
                "invalidValue")
  is_scim_error(http.post(gw.url .. "/Users", {userName = "a", name = "not an object"}, gw:auth()),
                400, "invalidValue")
  is_scim_error(http.post(gw.url .. "/Groups", {members = json.array{}}, gw:auth()), 400,
                "invalidValue")
  expect.eq(count_users(), 0)
end)

test("invalid filters are 400 invalidFilter with the position", function()
  for _, f in ipairs{"userName+zz+%22a%22", "userName+eq", "%28userName+eq+%22a%22",
                     "nosuchattr+eq+%22a%22", "active+gt+true", "userName+eq+%22a%22+junk"} do
    local r = http.get(gw.url .. "/Users?filter=" .. f, gw:auth())
    is_scim_error(r, 400, "invalidFilter")
    expect.match(r.json.detail, "position %d+", f)
  end
  local long = string.rep("userName eq \"a\" or ", 20) .. "userName eq \"b\""
  is_scim_error(http.get(gw.url .. "/Users?filter=" .. long:gsub(" ", "+"), gw:auth()), 400,
                "invalidFilter")
  is_scim_error(http.get(gw.url .. "/Users?filter=%zz", gw:auth()), 400)
end)

test("methods that do not apply are 405 with Allow", function()
  local r = http.request{method = "DELETE", url = gw.url .. "/Users", headers = gw:auth()}
  is_scim_error(r, 405)
  expect.header(r, "allow", "GET")
  r = http.request{method = "POST", url = gw.url .. "/ServiceProviderConfig", headers = gw:auth(),
                   body = {}}
  is_scim_error(r, 405)
  r = http.request{method = "PUT", url = gw.url .. "/Users", headers = gw:auth(), body = {}}
  is_scim_error(r, 405)
end)

test("unsupported endpoints say so", function()
  is_scim_error(http.post(gw.url .. "/Bulk", {}, gw:auth()), 400, "invalidSyntax")
  is_scim_error(http.get(gw.url .. "/Me", gw:auth()), 501)
  is_scim_error(http.get(gw.url, gw:auth()), 404)
end)

test("unknown ids and overlong ids are 404", function()
  is_scim_error(http.get(gw.url .. "/Users/5171a35d82074e068ce2", gw:auth()), 404)
  is_scim_error(http.get(gw.url .. "/Users/" .. string.rep("a", 300), gw:auth()), 404)
  is_scim_error(http.put(gw.url .. "/Users/nope", {userName = "x"}, gw:auth()), 404)
end)

test("the gateway still serves after all of that", function()
  local r = http.post(gw.url .. "/Users", {userName = "after@contoso.com"}, gw:auth())
  expect.status(r, 201)
  expect.eq(count_users(), 1)
end)
