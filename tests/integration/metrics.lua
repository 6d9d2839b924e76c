-- GET /metrics (Prometheus text format 0.0.4) on admin_listen, for an
-- operator's admin token: the format is valid, and the counters move by
-- exactly what the requests made here should make them move.

local prom = dofile(runner.dir .. "/lib/prometheus.lua")

local dir = tmpdir()
do -- a mapping whose inbound hook fails for one userName
  local f = assert(io.open(dir .. "/mapping.lua", "w"))
  f:write([[
local M = {}
function M.inbound(r, ctx)
  if r.userName == "boom@example.com" then error("boom on purpose") end
  return r
end
return M
]])
  f:close()
end

local admin_port = free_port()
local gw = gateway.start{scripts = dir, config = {admin_listen = "127.0.0.1:" .. admin_port}}
local ADMIN = "http://127.0.0.1:" .. admin_port
local T = gw.tenant

local function bearer(t) return {Authorization = "Bearer " .. t} end

local function scrape(base)
  local r = http.get((base or ADMIN) .. "/metrics", bearer(gw.admin_token))
  expect.status(r, 200)
  expect.header(r, "content-type", "^text/plain; version=0%.0%.4; charset=utf%-8$")
  return prom.parse(r.body)
end

local function requests(m, tenant, op, code)
  return prom.value(m, "scimgate_scim_requests_total", {tenant = tenant, op = op, code = code}) or 0
end

test("the exposition is valid and names the build", function()
  local m = scrape()
  local bi
  for _, s in ipairs(m.samples) do if s.name == "scimgate_build_info" then bi = s end end
  expect.truthy(bi, "build_info")
  expect.eq(bi.value, 1)
  expect.match(bi.labels.version, "^%d+%.%d+%.%d+$")
  expect.match(bi.labels.abi, "^1%.%d+$")
  expect.eq(bi.labels.storage, "sqlite")
  local want = {
    scimgate_build_info = "gauge", scimgate_start_time_seconds = "gauge",
    scimgate_scim_requests_total = "counter", scimgate_scim_request_duration_seconds = "histogram",
    scimgate_scim_rate_limited_total = "counter", scimgate_http_requests_total = "counter",
    scimgate_lua_hook_duration_seconds = "histogram", scimgate_lua_hook_errors_total = "counter",
    scimgate_storage_errors_total = "counter", scimgate_storage_up = "gauge",
    scimgate_outbox_jobs = "gauge", scimgate_metrics_tenants_tracked = "gauge",
    scimgate_metrics_tenants_limit = "gauge",
  }
  for name, type in pairs(want) do expect.eq(m.types[name], type, name) end
  expect.eq(prom.value(m, "scimgate_storage_up"), 1)
  for _, kind in ipairs{"unavailable", "internal"} do
    expect.eq(prom.value(m, "scimgate_storage_errors_total", {kind = kind}), 0, kind)
  end
  for _, st in ipairs{"AwaitingApproval", "Approved", "Sending", "Delivered", "Failed", "Expired",
                      "Cancelled"} do
    expect.eq(prom.value(m, "scimgate_outbox_jobs", {status = st}), 0, st)
  end
  expect.eq(prom.value(m, "scimgate_metrics_tenants_limit"), 100)
  local start = prom.value(m, "scimgate_start_time_seconds")
  expect.truthy(math.abs(start - os.time()) < 3600, "start time " .. start)
end)

test("only an operator reads it, only on admin_listen", function()
  expect.status(http.get(ADMIN .. "/metrics"), 401)
  expect.status(http.get(ADMIN .. "/metrics", bearer(gw.token)), 401, "a SCIM token")
  local r = gw:run("admin", "create", T, "alice")
  expect.eq(r.status, 0, r.stderr)
  local tenant_admin = json.decode(r.stdout:match("([^\n]+)\n?$")).token
  r = http.get(ADMIN .. "/metrics", bearer(tenant_admin))
  expect.status(r, 403, "a tenant admin")
  expect.match(r.body, "operator")
  r = http.get(gw.base .. "/metrics", bearer(gw.admin_token))
  expect.status(r, 404, "the SCIM listener")
  r = http.request{method = "POST", url = ADMIN .. "/metrics", headers = bearer(gw.admin_token)}
  expect.status(r, 405)
  expect.header(r, "allow", "^GET$")
end)

test("SCIM requests, hooks and scrapes move their counters by exactly what happened", function()
  local m0 = scrape()
  local a = gw:auth()
  expect.status(http.get(gw.url .. "/Users", a), 200)
  expect.status(http.get(gw.url .. "/Users?filter=userName+eq+%22x%22", a), 200)
  expect.status(http.get(gw.url .. "/Users/2819c223-7f76-453a-919d-413861904646", a), 404)
  expect.status(http.get(gw.url .. "/Users", bearer("sgt_nope.nope")), 401)
  expect.status(http.post(gw.url .. "/Users", {userName = "ok@example.com"}, a), 201)
  local r = http.post(gw.url .. "/Users", {userName = "boom@example.com"}, a)
  expect.status(r, 500)
  expect.match(r.json.detail, "mapping.inbound")
  expect.status(http.get(gw.url .. "/ServiceProviderConfig", a), 200)
  local m1 = scrape()

  local function delta(tenant, op, code)
    return requests(m1, tenant, op, code) - requests(m0, tenant, op, code)
  end
  expect.eq(delta(T, "list_users", "200"), 2)
  expect.eq(delta(T, "get_user", "404"), 1)
  expect.eq(delta("unauthenticated", "list_users", "401"), 1)
  expect.eq(delta(T, "create_user", "201"), 1)
  expect.eq(delta(T, "create_user", "500"), 1)
  expect.eq(delta(T, "discovery", "200"), 1)
  local all = prom.sum(m1, "scimgate_scim_requests_total") -
              prom.sum(m0, "scimgate_scim_requests_total")
  expect.eq(all, 7, "no other request was counted")

  -- Latency: each request is in its operation's histogram exactly once,
  -- whatever its tenant or status (the 401 too).
  local function count(m, op)
    return prom.value(m, "scimgate_scim_request_duration_seconds_count", {op = op}) or 0
  end
  expect.eq(count(m1, "list_users") - count(m0, "list_users"), 3)
  expect.eq(count(m1, "create_user") - count(m0, "create_user"), 2)
  expect.eq(count(m1, "get_user") - count(m0, "get_user"), 1)
  local sum = prom.value(m1, "scimgate_scim_request_duration_seconds_sum", {op = "create_user"})
  expect.truthy(sum > 0, "time was measured")

  -- The inbound hook ran twice and failed once.
  local hook = {hook = "mapping.inbound"}
  local calls = prom.value(m1, "scimgate_lua_hook_duration_seconds_count", hook) -
                prom.value(m0, "scimgate_lua_hook_duration_seconds_count", hook)
  expect.eq(calls, 2)
  expect.eq(prom.value(m1, "scimgate_lua_hook_errors_total", hook) -
            prom.value(m0, "scimgate_lua_hook_errors_total", hook), 1)
  expect.eq(prom.value(m1, "scimgate_lua_hook_errors_total", {hook = "groups.accept"}), 0)

  -- The first scrape was counted once it had answered.
  local function scrapes(m)
    return prom.value(m, "scimgate_http_requests_total", {route = "metrics", code = "200"}) or 0
  end
  expect.eq(scrapes(m1) - scrapes(m0), 1)
  expect.eq(prom.value(m1, "scimgate_metrics_tenants_tracked"), 1)
  expect.eq(prom.sum(m1, "scimgate_scim_rate_limited_total"), 0)
end)

test("the outbox depth comes from the store", function()
  local m0 = scrape()
  local r = http.post(gw.url .. "/Users", {userName = "inv@example.com",
    emails = {{value = "inv@example.com", type = "work", primary = true}}}, gw:auth())
  expect.status(r, 201)
  local inv = http.request{method = "POST", url = ADMIN .. "/admin/v1/" .. T .. "/invitations",
                           headers = bearer(gw.admin_token), raw = true,
                           body = json.encode{users = {r.json.id}}}
  expect.status(inv, 200)
  expect.eq(#inv.json.invitations, 1, inv.body)
  local m1 = scrape()
  local function jobs(m) return prom.value(m, "scimgate_outbox_jobs", {status = "AwaitingApproval"}) end
  expect.eq(jobs(m1) - jobs(m0), 1)
end)

test("tenants beyond limits.metrics_tenants are summed as other", function()
  local gw2 = gateway.start{config = {["limits.metrics_tenants"] = "1"}}
  local r = gw2:run("tenant", "create", "second")
  expect.eq(r.status, 0, r.stderr)
  local t2 = r.stdout:match("/scim/v2/(%x+)%s*$")
  r = gw2:run("token", "generate", t2)
  expect.eq(r.status, 0, r.stderr)
  local auth2 = bearer(r.stdout:match("([^\n]+)\n?$"))
  expect.status(http.get(gw2.url .. "/Users", gw2:auth()), 200)  -- the first tenant is named
  for _ = 1, 3 do expect.status(http.get(gw2.base .. "/scim/v2/" .. t2 .. "/Users", auth2), 200) end
  local m = prom.parse(http.get(gw2.base .. "/metrics", bearer(gw2.admin_token)).body)
  expect.eq(requests(m, gw2.tenant, "list_users", "200"), 1)
  expect.eq(requests(m, "other", "list_users", "200"), 3)
  for _, s in ipairs(m.samples) do
    expect.ne(s.labels.tenant, t2, "the second tenant is not named")
  end
  expect.eq(prom.value(m, "scimgate_metrics_tenants_tracked"), 1)
  expect.eq(prom.value(m, "scimgate_metrics_tenants_limit"), 1)
end)
