-- The admin API's credentials and the script endpoints (DESIGN §1d, §2):
-- operators and tenant admins by admin token, checked by the core; SCIM and
-- admin tokens never stand in for each other.

local dir = tmpdir()
local function write(name, text)
  local f = assert(io.open(dir .. "/" .. name, "w"))
  f:write(text)
  f:close()
end
write("mapping.lua", "return { inbound = function(r) return r end }\n")
local gw = gateway.start{scripts = dir}
local function admin(token) return {Authorization = "Bearer " .. token} end

local tenant_admin
test("admin create prints login, password and token as one JSON line", function()
  local r = gw:run("admin", "create", gw.tenant, "alice")
  expect.eq(r.status, 0, r.stderr)
  local j = json.decode(r.stdout:match("([^\n]+)\n?$"))
  expect.eq(j.login, "alice")
  expect.match(j.token, "^sga_%x+%.[%w_%-]+$")
  expect.truthy(#j.password >= 20, "a long generated password")
  tenant_admin = j.token
  r = gw:run("admin", "create", gw.tenant, "alice")
  expect.ne(r.status, 0, "the same login twice")
  expect.eq(gw:run("admin", "create", "--operator", "test-operator").status ~= 0, true,
            "operators' logins are unique too")
end)

test("an operator reads the scripts; a tenant admin may not", function()
  local r = http.get(gw.base .. "/admin/v1/scripts", admin(gw.admin_token))
  expect.status(r, 200)
  expect.header(r, "content-type", "^application/json")
  expect.eq(r.json.scripts[1].name, "mapping")
  r = http.get(gw.base .. "/admin/v1/scripts", admin(tenant_admin))
  expect.status(r, 403)
end)

test("missing, wrong and foreign credentials are refused", function()
  expect.status(http.get(gw.base .. "/admin/v1/scripts"), 401)
  expect.status(http.get(gw.base .. "/admin/v1/scripts", admin("sga_0000000000000000.x")), 401)
  local id, secret = gw.token:match("^sgt_(%x+)%.(.+)$")
  expect.status(http.get(gw.base .. "/admin/v1/scripts", admin("sga_" .. id .. "." .. secret)), 401,
                "a SCIM token is not an admin token")
  expect.status(http.get(gw.url .. "/Users", admin(gw.admin_token)), 401,
                "an admin token is not a SCIM token")
  local aid, asecret = gw.admin_token:match("^sga_(%x+)%.(.+)$")
  expect.status(http.get(gw.url .. "/Users", admin("sgt_" .. aid .. "." .. asecret)), 401,
                "nor is an admin token's id under the SCIM prefix")
  expect.status(http.get(gw.base .. "/admin/v1/nothing", admin(gw.admin_token)), 404)
end)

test("reload through the API and the CLI's scripts status", function()
  write("mapping.lua", "return { inbound = function(r) return r end\n") -- broken
  local r = http.post(gw.base .. "/admin/v1/scripts/reload", "", admin(gw.admin_token))
  expect.status(r, 200)
  expect.match(r.json.scripts[1].error, "mapping%.lua:")
  local out = gw:run("scripts", "status", "--url", gw.base, "--admin-token", gw.admin_token)
  expect.eq(out.status, 1, "a script with an error makes status exit 1")
  expect.match(out.stdout, "mapping%s+%d+%s+yes%s+.*mapping%.lua:")
  write("mapping.lua", "return { inbound = function(r) return r end }\n")
  out = gw:run("scripts", "reload", "--url", gw.base, "--admin-token", gw.admin_token)
  expect.eq(out.status, 0, out.stderr)
  expect.match(out.stdout, "mapping%s+%d+%s+yes%s+%-")
  out = gw:run("scripts", "status", "--url", gw.base)
  expect.eq(out.status, 2, "no token: a usage error")
end)
