-- /Bulk (RFC 7644 §3.7): bulkId references (forward ones too), cycles
-- refused, failOnErrors, limits advertised and enforced.

local gw = gateway.start{config = {["limits.bulk_operations"] = "5"}}
local BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"

local function bulk(ops, extra)
  local body = {schemas = json.array{BULK}, Operations = json.array(ops)}
  for k, v in pairs(extra or {}) do body[k] = v end
  return http.post(gw.url .. "/Bulk", body, gw:auth())
end

test("ServiceProviderConfig advertises Bulk with the configured limits", function()
  local r = http.get(gw.url .. "/ServiceProviderConfig", gw:auth())
  expect.eq(r.json.bulk.supported, true)
  expect.eq(r.json.bulk.maxOperations, 5)
  expect.eq(r.json.bulk.maxPayloadSize, 8 * 1024 * 1024)
end)

test("a group referring to users created later in the same request (forward references)", function()
  local r = bulk{
    {method = "POST", path = "/Groups", bulkId = "g1",
     data = {displayName = "Bulk Group", members = json.array{{value = "bulkId:u1"}, {value = "bulkId:u2"}}}},
    {method = "POST", path = "/Users", bulkId = "u1", data = {userName = "bulk1@x.com"}},
    {method = "POST", path = "/Users", bulkId = "u2", data = {userName = "bulk2@x.com"}},
    {method = "PATCH", path = "/Users/bulkId:u1", data = {Operations = json.array{
      {op = "replace", path = "title", value = "Patched"}}}},
  }
  expect.status(r, 200)
  expect.eq(r.json.schemas, json.array{"urn:ietf:params:scim:api:messages:2.0:BulkResponse"})
  local ops = r.json.Operations
  expect.eq(#ops, 4)
  expect.eq(ops[1].bulkId, "g1")
  expect.eq(ops[1].status, "201")
  expect.eq(ops[2].status, "201")
  expect.eq(ops[4].status, "200")
  expect.match(ops[1].location, "/Groups/")
  expect.match(ops[1].version, '^W/"%d+"$')
  local g = http.get(ops[1].location, gw:auth())
  expect.eq(#g.json.members, 2)
  local u1 = http.get(ops[2].location, gw:auth())
  expect.eq(u1.json.title, "Patched")
  expect.eq(g.json.members[1].value, u1.json.id)
end)

test("a cycle of references is refused, the rest runs", function()
  local r = bulk{
    {method = "POST", path = "/Groups", bulkId = "a", data = {displayName = "A",
      members = json.array{{value = "bulkId:b"}}}},
    {method = "POST", path = "/Groups", bulkId = "b", data = {displayName = "B",
      members = json.array{{value = "bulkId:a"}}}},
    {method = "POST", path = "/Users", bulkId = "c", data = {userName = "free@x.com"}},
  }
  expect.status(r, 200)
  local st = {}
  for _, o in ipairs(r.json.Operations) do st[o.bulkId] = o.status end
  expect.eq(st.a, "409")
  expect.eq(st.b, "409")
  expect.eq(st.c, "201")
end)

test("errors per operation, and failOnErrors stops the job", function()
  local r = bulk({
    {method = "POST", path = "/Users", bulkId = "x1", data = {userName = "bulk1@x.com"}},
    {method = "DELETE", path = "/Users/nosuch"},
    {method = "POST", path = "/Users", bulkId = "x3", data = {userName = "never@x.com"}},
  }, {failOnErrors = 2})
  expect.status(r, 200)
  local ops = r.json.Operations
  expect.eq(#ops, 2, "stopped after two errors")
  expect.eq(ops[1].status, "409")
  expect.eq(ops[1].response.scimType, "uniqueness")
  expect.eq(ops[2].status, "404")
  local found = http.get(gw.url .. "/Users?filter=userName+eq+%22never%40x.com%22", gw:auth())
  expect.eq(found.json.totalResults, 0)
end)

test("unknown bulkIds, bad paths and versions", function()
  local r = bulk{
    {method = "PATCH", path = "/Users/bulkId:nope", data = {Operations = json.array{
      {op = "replace", path = "title", value = "x"}}}},
    {method = "POST", path = "/Widgets", bulkId = "w", data = {}},
    {method = "DELETE", path = "/Users/bulkId:nope2"},
  }
  local ops = r.json.Operations
  expect.eq(ops[1].status, "409")
  expect.eq(ops[2].status, "400")
  expect.eq(ops[3].status, "409")
  local u = http.post(gw.url .. "/Users", {userName = "ver@x.com"}, gw:auth()).json
  r = bulk{{method = "DELETE", path = "/Users/" .. u.id, version = 'W/"99"'}}
  expect.eq(r.json.Operations[1].status, "412")
  r = bulk{{method = "DELETE", path = "/Users/" .. u.id, version = u.meta.version}}
  expect.eq(r.json.Operations[1].status, "204")
end)

test("limits and malformed requests", function()
  local many = {}
  for i = 1, 6 do many[i] = {method = "DELETE", path = "/Users/x" .. i} end
  expect.status(bulk(many), 413)
  expect.status(bulk{}, 400)
  expect.status(bulk{{method = "GET", path = "/Users"}}, 400)
  expect.status(bulk{{method = "POST", path = "/Users", data = {userName = "nobulkid"}}}, 400)
  expect.status(bulk{{method = "POST", path = "/Users", bulkId = "d", data = {userName = "d1"}},
                     {method = "POST", path = "/Users", bulkId = "d", data = {userName = "d2"}}}, 400)
  expect.status(http.get(gw.url .. "/Bulk", gw:auth()), 405)
end)
