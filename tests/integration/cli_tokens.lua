-- The tenant and token commands (DESIGN §1d): machine-readable last line on
-- stdout, at most two live tokens, revocation and rotation with overlap.

local gw = gateway.start{tenant = "acme"}

local function last_line(s)
  return s:match("([^\n]+)\n?$")
end

test("tenant list shows the tenant by id and name", function()
  local r = gw:run("tenant", "list")
  expect.eq(r.status, 0, r.stderr)
  expect.match(r.stdout, gw.tenant .. "%s+acme")
end)

test("the tenant name works wherever a TENANT is asked for", function()
  local r = gw:run("token", "list", "acme")
  expect.eq(r.status, 0, r.stderr)
  expect.match(r.stdout, "live")
end)

test("a duplicate tenant name is refused", function()
  local r = gw:run("tenant", "create", "acme")
  expect.ne(r.status, 0)
  expect.eq(r.stdout, "")
end)

local second, third
test("a second token works at once, alongside the first", function()
  local r = gw:run("token", "generate", gw.tenant)
  expect.eq(r.status, 0, r.stderr)
  second = last_line(r.stdout)
  expect.match(second, "^sgt_%x+%.[%w_%-]+$")
  expect.status(http.get(gw.url .. "/Users", {Authorization = "Bearer " .. second}), 200)
  expect.status(http.get(gw.url .. "/Users", gw:auth()), 200)
end)

test("a third live token is refused", function()
  local r = gw:run("token", "generate", gw.tenant)
  expect.ne(r.status, 0)
  expect.match(r.stderr, "2 live tokens")
end)

test("revoke stops a token at once", function()
  local id = gw.token:match("^sgt_(%x+)%.")
  local r = gw:run("token", "revoke", gw.tenant, id)
  expect.eq(r.status, 0, r.stderr)
  local resp = http.get(gw.url .. "/Users", gw:auth())
  expect.status(resp, 401)
  expect.match(resp.json.detail, "revoked")
  r = gw:run("token", "list", gw.tenant)
  expect.match(r.stdout, id .. ".-revoked")
end)

test("rotation with overlap: the old token keeps working until its deadline", function()
  local r = gw:run("token", "generate", gw.tenant, "--expires-old-in", "2s")
  expect.eq(r.status, 0, r.stderr)
  third = last_line(r.stdout)
  expect.status(http.get(gw.url .. "/Users", {Authorization = "Bearer " .. second}), 200)
  expect.status(http.get(gw.url .. "/Users", {Authorization = "Bearer " .. third}), 200)
  sleep(2.5)
  local old = http.get(gw.url .. "/Users", {Authorization = "Bearer " .. second})
  expect.status(old, 401)
  expect.match(old.json.detail, "expired")
  expect.status(http.get(gw.url .. "/Users", {Authorization = "Bearer " .. third}), 200)
  -- the expired token no longer counts against the two
  r = gw:run("token", "generate", gw.tenant)
  expect.eq(r.status, 0, r.stderr)
end)

test("a disabled tenant's tokens are refused", function()
  local auth = {Authorization = "Bearer " .. third}
  expect.status(http.get(gw.url .. "/Users", auth), 200)
  local r = gw:run("tenant", "disable", gw.tenant)
  expect.eq(r.status, 0, r.stderr)
  local resp = http.get(gw.url .. "/Users", auth)
  expect.status(resp, 401)
  expect.match(resp.json.detail, "disabled")
  r = gw:run("tenant", "enable", gw.tenant)
  expect.eq(r.status, 0, r.stderr)
  expect.status(http.get(gw.url .. "/Users", auth), 200)
end)

test("usage errors exit 2 and print nothing on stdout", function()
  local r = gw:run("token", "generate")
  expect.eq(r.status, 2)
  expect.eq(r.stdout, "")
  r = gw:run("frobnicate")
  expect.eq(r.status, 2)
  r = gw:run("token", "revoke", gw.tenant, "0000000000000000")
  expect.eq(r.status, 1)
  expect.match(r.stderr, "no token")
end)
