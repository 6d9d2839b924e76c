-- Lists (RFC 7644 §3.4.2-3.4.3): sorting, paging across sorted results, and
-- POST .search at the root and per resource type.

local gw = gateway.start{}
local ids = {}

local function names(r)
  local out = {}
  for _, u in ipairs(r.json.Resources) do out[#out + 1] = u.userName or u.displayName end
  return out
end

test("seed users and groups", function()
  local people = {
    {userName = "carol@x.com", title = "b-title", emails = json.array{{value = "z@x.com"}}},
    {userName = "Alice@x.com", title = "C-title",
     emails = json.array{{value = "y@x.com"}, {value = "a@x.com", primary = true}}},
    {userName = "bob@x.com"},
    {userName = "Dave@x.com", title = "a-title", active = false},
  }
  for _, p in ipairs(people) do
    local r = http.post(gw.url .. "/Users", p, gw:auth())
    expect.status(r, 201)
    ids[p.userName] = r.json.id
  end
  for _, g in ipairs{"Sales", "engineering"} do
    expect.status(http.post(gw.url .. "/Groups", {displayName = g}, gw:auth()), 201)
  end
end)

test("sortBy an indexed attribute, case-insensitively, both orders", function()
  local r = http.get(gw.url .. "/Users?sortBy=userName", gw:auth())
  expect.status(r, 200)
  expect.eq(names(r), {"Alice@x.com", "bob@x.com", "carol@x.com", "Dave@x.com"})
  r = http.get(gw.url .. "/Users?sortBy=userName&sortOrder=descending", gw:auth())
  expect.eq(names(r), {"Dave@x.com", "carol@x.com", "bob@x.com", "Alice@x.com"})
end)

test("sortBy a non-indexed attribute: missing values last ascending, first descending", function()
  local r = http.get(gw.url .. "/Users?sortBy=title", gw:auth())
  expect.eq(names(r), {"Dave@x.com", "carol@x.com", "Alice@x.com", "bob@x.com"})
  r = http.get(gw.url .. "/Users?sortBy=title&sortOrder=DESCENDING", gw:auth())
  expect.eq(names(r), {"bob@x.com", "Alice@x.com", "carol@x.com", "Dave@x.com"})
end)

test("sortBy a multi-valued attribute uses the primary value, else the first", function()
  local r = http.get(gw.url .. "/Users?sortBy=emails.value&filter=emails+pr", gw:auth())
  expect.eq(names(r), {"Alice@x.com", "carol@x.com"})
  r = http.get(gw.url .. "/Users?sortBy=emails", gw:auth())
  expect.status(r, 200)
  expect.eq(names(r)[1], "Alice@x.com")
end)

test("paging follows the sort order, with a filter evaluated in memory", function()
  local r = http.get(gw.url .. "/Users?sortBy=userName&startIndex=2&count=2", gw:auth())
  expect.eq(names(r), {"bob@x.com", "carol@x.com"})
  expect.eq(r.json.totalResults, 4)
  expect.eq(r.json.startIndex, 2)
  r = http.get(gw.url .. '/Users?sortBy=title&filter=title co "title"&startIndex=2&count=1', gw:auth())
  expect.eq(names(r), {"carol@x.com"})
  expect.eq(r.json.totalResults, 3)
end)

test("sortBy and sortOrder errors", function()
  local r = http.get(gw.url .. "/Users?sortBy=nosuch", gw:auth())
  expect.status(r, 400)
  expect.eq(r.json.scimType, "invalidValue")
  r = http.get(gw.url .. "/Users?sortBy=name", gw:auth())
  expect.status(r, 400)
  r = http.get(gw.url .. "/Users?sortBy=userName&sortOrder=sideways", gw:auth())
  expect.status(r, 400)
end)

test("POST /Users/.search takes the query in a SearchRequest", function()
  local r = http.post(gw.url .. "/Users/.search", {
    schemas = json.array{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"},
    filter = 'userName sw "b" or userName sw "c"', sortBy = "userName",
    sortOrder = "descending", attributes = json.array{"userName"}, startIndex = 1, count = 10},
    gw:auth())
  expect.status(r, 200)
  expect.eq(names(r), {"carol@x.com", "bob@x.com"})
  expect.eq(r.json.Resources[1].title, nil, "attributes=userName")
  expect.eq(r.json.Resources[1].id, ids["carol@x.com"])
end)

test("POST /.search at the root finds users and groups", function()
  local r = http.post(gw.url .. "/.search", {
    schemas = json.array{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"},
    filter = 'displayName pr or userName pr', count = 100}, gw:auth())
  expect.status(r, 200)
  expect.eq(r.json.totalResults, 6)
  r = http.post(gw.url .. "/.search", {filter = 'displayName eq "sales"'}, gw:auth())
  expect.eq(r.json.totalResults, 1)
  expect.eq(r.json.Resources[1].displayName, "Sales")
  r = http.post(gw.url .. "/.search", {filter = 'userName eq "bob@x.com"'}, gw:auth())
  expect.eq(r.json.totalResults, 1, "groups have no userName: they simply do not match")
  r = http.post(gw.url .. "/.search", {filter = 'nosuch eq "x"'}, gw:auth())
  expect.status(r, 400)
  expect.eq(r.json.scimType, "invalidFilter")
end)

test("paging across types at the root", function()
  local r = http.post(gw.url .. "/.search", {startIndex = 4, count = 2}, gw:auth())
  expect.eq(r.json.totalResults, 6)
  expect.eq(#r.json.Resources, 2)
  expect.eq(r.json.Resources[1].userName ~= nil, true, "the 4th is the last user")
  expect.eq(r.json.Resources[2].displayName, "Sales", "the 5th is the first group")
end)

test(".search answers only POST, and bad bodies are 400", function()
  expect.status(http.get(gw.url .. "/Users/.search", gw:auth()), 405)
  local r = http.request{method = "POST", url = gw.url .. "/.search", headers = gw:auth(),
                         body = "[1]", raw = true}
  expect.status(r, 400)
  r = http.post(gw.url .. "/.search", {filter = 5}, gw:auth())
  expect.status(r, 400)
end)

test("ETags: If-None-Match gives 304, If-Match must name the current version", function()
  local id = ids["bob@x.com"]
  local r = http.get(gw.url .. "/Users/" .. id, gw:auth())
  local etag = r.headers.etag
  expect.match(etag, '^W/"%d+"$')
  local h = gw:auth()
  h["If-None-Match"] = etag
  r = http.get(gw.url .. "/Users/" .. id, h)
  expect.status(r, 304)
  h = gw:auth()
  h["If-Match"] = 'W/"999"'
  r = http.patch(gw.url .. "/Users/" .. id, {Operations = json.array{{op = "replace",
    path = "title", value = "x"}}}, h)
  expect.status(r, 412)
  expect.eq(http.get(gw.url .. "/Users/" .. id, gw:auth()).json.title, nil, "412 changed nothing")
  h["If-Match"] = etag
  r = http.patch(gw.url .. "/Users/" .. id, {Operations = json.array{{op = "replace",
    path = "title", value = "x"}}}, h)
  expect.status(r, 200)
  expect.ne(r.headers.etag, etag)
  h["If-Match"] = etag
  expect.status(http.delete(gw.url .. "/Users/" .. id, h), 412)
  h["If-Match"] = r.headers.etag
  expect.status(http.delete(gw.url .. "/Users/" .. id, h), 204)
end)

test("cursor paging (RFC 9865) walks every resource once", function()
  local seen, cursor, pages = {}, "", 0
  repeat
    local r = http.get(gw.url .. "/Users?count=2&sortBy=userName&cursor=" .. cursor, gw:auth())
    expect.status(r, 200)
    expect.eq(r.json.startIndex, nil, "cursor pages have no startIndex")
    for _, u in ipairs(r.json.Resources) do
      expect.eq(seen[u.id], nil, "seen twice")
      seen[u.id] = u.userName
    end
    pages = pages + 1
    if pages > 1 then expect.truthy(r.json.previousCursor, "previousCursor after page 1") end
    cursor = r.json.nextCursor
  until not cursor or pages > 10
  local n = 0
  for _ in pairs(seen) do n = n + 1 end
  expect.eq(n, 3, "the three users left after the ETag test")
  expect.eq(pages, 2)
end)

test("cursors are bound to their query and checked", function()
  local r = http.get(gw.url .. "/Users?count=1&cursor", gw:auth())
  local next = r.json.nextCursor
  expect.truthy(next)
  r = http.get(gw.url .. "/Users?count=1&cursor=" .. next, gw:auth())
  expect.status(r, 200)
  r = http.get(gw.url .. "/Users?count=1&filter=userName+pr&cursor=" .. next, gw:auth())
  expect.status(r, 400)
  expect.eq(r.json.scimType, "invalidCursor")
  r = http.get(gw.url .. "/Users?count=1&cursor=" .. next:sub(1, -2) .. "x", gw:auth())
  expect.eq(r.json.scimType, "invalidCursor")
  r = http.get(gw.url .. "/Users?count=1&startIndex=2&cursor=" .. next, gw:auth())
  expect.status(r, 400)
  r = http.post(gw.url .. "/Users/.search", {count = 1, cursor = ""}, gw:auth())
  expect.truthy(r.json.nextCursor)
  local spc = http.get(gw.url .. "/ServiceProviderConfig", gw:auth()).json
  expect.eq(spc.pagination.cursor, true)
  expect.eq(spc.pagination.maxPageSize, 1000)
end)
