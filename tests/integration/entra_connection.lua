-- Entra's "Test connection" and authentication (ENTRA.md §1): the probe is a
-- GET with a filter for a user that cannot exist, with no Content-Type and no
-- Accept header; it must get 200 and an empty ListResponse. Wrong tokens get
-- 401 with a SCIM body, never HTML.

local gw = gateway.start{}

local LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
local ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"

test("test connection probe answers 200 with an empty list", function()
  local r = http.get(gw.url .. "/Users?filter=userName+eq+%227d420df3-9995-4831-a406-ecf8166f5f6a%22",
                     gw:auth())
  expect.status(r, 200)
  expect.header(r, "content-type", "^application/scim%+json")
  expect.eq(r.json.schemas, json.array{LIST})
  expect.eq(r.json.totalResults, 0)
  expect.array(r.json.Resources)
  expect.eq(#r.json.Resources, 0)
  expect.eq(r.json.startIndex, 1)
end)

test("the group probe with excludedAttributes answers the same way", function()
  local r = http.get(gw.url .. "/Groups?excludedAttributes=members&filter=displayName+eq+%22"
                     .. "1f1b7c3e-0000-4000-8000-000000000000%22", gw:auth())
  expect.status(r, 200)
  expect.eq(r.json.totalResults, 0)
  expect.array(r.json.Resources)
end)

test("the flag pasted into the tenant URL and a trailing slash are ignored", function()
  local r = http.get(gw.url .. "/Users/?aadOptscim062020&filter=userName+eq+%22x%22", gw:auth())
  expect.status(r, 200)
  r = http.get(gw.base .. "/scim/v2//" .. gw.tenant .. "//Users?filter=userName+eq+%22x%22",
               gw:auth())
  expect.status(r, 200)
end)

test("a missing token is 401 with WWW-Authenticate and a SCIM body", function()
  local r = http.get(gw.url .. "/Users")
  expect.status(r, 401)
  expect.header(r, "content-type", "^application/scim%+json")
  expect.header(r, "www-authenticate", "^Bearer")
  expect.eq(r.json.schemas, json.array{ERROR})
  expect.eq(r.json.status, "401")
end)

test("a wrong secret for a real token id is 401", function()
  local id = gw.token:match("^sgt_(%x+)%.")
  local r = http.get(gw.url .. "/Users", {Authorization = "Bearer sgt_" .. id .. ".wrongsecret"})
  expect.status(r, 401)
  expect.eq(r.json.status, "401")
  expect.eq(r.body:find(gw.token, 1, true), nil, "the secret is never echoed")
end)

test("malformed and foreign credentials are 401", function()
  for _, h in ipairs{"Bearer", "Bearer sgt_", "Bearer sgt_zz.x", "Basic dXNlcjpwYXNz",
                     "Bearer " .. gw.token .. "x", "bearer " .. gw.token:sub(1, -2)} do
    local r = http.get(gw.url .. "/Users", {Authorization = h})
    expect.status(r, 401, h)
    expect.eq(r.json.schemas, json.array{ERROR}, h)
  end
end)

test("the scheme name is case-insensitive", function()
  local r = http.get(gw.url .. "/Users", {Authorization = "bearer " .. gw.token})
  expect.status(r, 200)
end)

test("a token works only on its own tenant's URL", function()
  local other = gw:run("tenant", "create", "other-tenant")
  expect.eq(other.status, 0, other.stderr)
  local other_url = other.stdout:match("([^\n]+)\n?$")
  local r = http.get(other_url .. "/Users", gw:auth())
  expect.status(r, 401)
  local made = gw:run("token", "generate", "other-tenant")
  expect.eq(made.status, 0, made.stderr)
  local other_token = made.stdout:match("(sgt_[^\n]+)")
  r = http.get(gw.url .. "/Users", {Authorization = "Bearer " .. other_token})
  expect.status(r, 401)
  r = http.get(other_url .. "/Users", {Authorization = "Bearer " .. other_token})
  expect.status(r, 200)
end)

test("unknown tenant ids and paths answer 401 or 404 in SCIM JSON", function()
  local r = http.get(gw.base .. "/scim/v2/00000000000000000000000000000000/Users", gw:auth())
  expect.status(r, 401)
  r = http.get(gw.url .. "/Widgets", gw:auth())
  expect.status(r, 404)
  expect.eq(r.json.schemas, json.array{ERROR})
  r = http.get(gw.base .. "/index.html")
  expect.status(r, 404)
  expect.header(r, "content-type", "^application/scim%+json")
end)

test("health and readiness", function()
  local r = http.get(gw.base .. "/healthz")
  expect.status(r, 200)
  r = http.get(gw.base .. "/readyz")
  expect.status(r, 200)
  expect.eq(r.json.status, "ready")
end)

test("token use is recorded without the secret", function()
  http.get(gw.url .. "/Users", gw:auth())
  local deadline = os.time() + 10
  local out
  repeat
    sleep(0.5)
    out = gw:run("token", "list", gw.tenant)
  until out.stdout:find("127.0.0.1", 1, true) or os.time() > deadline
  expect.match(out.stdout, "127%.0%.0%.1", "last address recorded")
  expect.eq(out.stdout:find(gw.token:match("%.(.+)$"), 1, true), nil, "no secret in token list")
end)

test("the log never holds the secret", function()
  http.get(gw.url .. "/Users", gw:auth())
  local f = assert(io.open(gw.log))
  local text = f:read("a")
  f:close()
  expect.eq(text:find(gw.token:match("%.(.+)$"), 1, true), nil)
  expect.match(text, '"request_id"')
end)
