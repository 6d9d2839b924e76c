-- Per-tenant rate limits (DESIGN §8): a tenant over limits.tenant_rps gets
-- 429 with Retry-After and a SCIM error while another tenant of the same
-- gateway is served, and is served again once it waits. The limit here is
-- tiny (1 request a second, bursts of 5); the assertions are on statuses
-- and counts, never on how long anything took.

local prom = dofile(runner.dir .. "/lib/prometheus.lua")
local gw = gateway.start{config = {["limits.tenant_rps"] = "1", ["limits.tenant_burst"] = "5"}}

local b_url, b_auth
local refused_a = 0 -- every 429 tenant A was answered

local function a_get()
  local r = http.get(gw.url .. "/Users?count=1", gw:auth())
  if r.status == 429 then refused_a = refused_a + 1 end
  return r
end

-- Requests to tenant A until one is refused (a burst holds 5 tokens).
local function until_refused()
  for _ = 1, 50 do
    local r = a_get()
    if r.status == 429 then return r end
    expect.status(r, 200)
  end
  error("tenant A was never refused")
end

local function log_lines(pattern)
  local f = assert(io.open(gw.log))
  local n = 0
  for line in f:lines() do
    if line:find(pattern, 1, true) then n = n + 1 end
  end
  f:close()
  return n
end

test("setup: a second tenant with its own token", function()
  local r = gw:run("tenant", "create", "tenant-b")
  expect.eq(r.status, 0, r.stderr)
  local id = r.stdout:match("/scim/v2/(%x+)%s*$")
  expect.truthy(id, r.stdout)
  r = gw:run("token", "generate", id)
  expect.eq(r.status, 0, r.stderr)
  b_url = gw.base .. "/scim/v2/" .. id
  b_auth = {Authorization = "Bearer " .. r.stdout:match("([^\n]+)\n?$")}
  expect.status(http.get(b_url .. "/Users", b_auth), 200)
end)

test("a hammered tenant gets 429 with Retry-After while another is served", function()
  -- Tenant A from 6 concurrent clients (curl through xargs), in the background.
  local dir = tmpdir()
  local out, done = dir .. "/statuses", dir .. "/done"
  local cfg = io.open(dir .. "/curl.cfg", "w") -- keeps the token off the command line
  cfg:write('header = "Authorization: Bearer ' .. gw.token .. '"\n')
  cfg:close()
  os.execute(string.format(
    "(seq 60 | xargs -P 6 -I{} curl -s -o /dev/null -w '%%{http_code}\\n' -K '%s' '%s' > '%s'; " ..
    "touch '%s') >/dev/null 2>&1 &",
    dir .. "/curl.cfg", gw.url .. "/Users?count=1", out, done))

  -- A is refused now...
  local r = until_refused()
  expect.header(r, "content-type", "^application/scim%+json")
  local ra = tonumber(r.headers["retry-after"])
  expect.truthy(ra and ra >= 1 and ra == math.floor(ra), "Retry-After: whole seconds >= 1")
  expect.eq(r.json.schemas, {"urn:ietf:params:scim:api:messages:2.0:Error"})
  expect.eq(r.json.status, "429")
  expect.match(r.json.detail, "slow down")
  -- ...and B, in the same gateway at the same moment, is served.
  for _ = 1, 3 do expect.status(http.get(b_url .. "/Users?count=1", b_auth), 200) end

  eventually(function() return io.open(done) end, "the concurrent clients to finish", 60)
  local counts, total = {}, 0
  for line in io.lines(out) do
    counts[line] = (counts[line] or 0) + 1
    total = total + 1
  end
  expect.eq(total, 60, "every concurrent request was answered")
  refused_a = refused_a + (counts["429"] or 0)
  expect.truthy((counts["429"] or 0) > 0, "some concurrent requests were refused")
  for code in pairs(counts) do
    expect.truthy(code == "200" or code == "429", "unexpected status " .. code)
  end

  -- One log line per burst of refusals, not one per refused request: a
  -- burst only starts after a request was served.
  local served = (counts["200"] or 0)
  local bursts = log_lines("is over its rate limit")
  expect.truthy(bursts >= 1, "the refusals were logged")
  expect.truthy(bursts <= served + 2, bursts .. " log lines for " .. served .. " served")
  expect.truthy(bursts < counts["429"], bursts .. " log lines for " .. counts["429"] .. " refusals")
end)

test("after waiting Retry-After seconds the tenant is served again", function()
  local r = until_refused()
  sleep(tonumber(r.headers["retry-after"]) + 0.1)
  expect.status(a_get(), 200)
  expect.truthy(log_lines("is served again after") >= 1, "the end of the burst was logged")
end)

test("authentication comes first: strangers' 401s spend none of the tenant's budget", function()
  sleep(5.2) -- 5 tokens at 1 a second: tenant B's bucket is full now
  for _ = 1, 30 do
    expect.status(http.get(b_url .. "/Users", {Authorization = "Bearer sgt_nope.nope"}), 401)
  end
  local served = 0
  for _ = 1, 50 do
    local r = http.get(b_url .. "/Users?count=1", b_auth)
    if r.status == 429 then break end
    expect.status(r, 200)
    served = served + 1
  end
  expect.truthy(served >= 5, "only " .. served .. " of B's burst of 5 were left")
  expect.truthy(served < 50, "B was never refused")
end)

test("a made-up tenant id is 401, not 429, however often it is tried", function()
  for i = 1, 20 do
    local r = http.get(gw.base .. "/scim/v2/" .. string.format("%032x", i) .. "/Users", gw:auth())
    expect.status(r, 401)
  end
end)

test("/metrics counts every refusal, by tenant", function()
  local m = prom.parse(http.get(gw.base .. "/metrics",
                                {Authorization = "Bearer " .. gw.admin_token}).body)
  expect.truthy(refused_a > 0)
  expect.eq(prom.value(m, "scimgate_scim_rate_limited_total", {tenant = gw.tenant}), refused_a)
  expect.eq(prom.value(m, "scimgate_scim_requests_total",
                       {tenant = gw.tenant, op = "list_users", code = "429"}), refused_a)
  local b = b_url:match("([^/]+)$")
  expect.eq(prom.value(m, "scimgate_scim_rate_limited_total", {tenant = b}), 1)
end)

test("the default limit is far above Entra's 25 requests a second", function()
  local p = assert(io.popen("'" .. runner.exe .. "' help"))
  local text = p:read("a")
  p:close()
  local rps = text:match("limits%.tenant_rps%s+SCIMGATE_LIMITS_TENANT_RPS[^\n]-default: (%d+)%)")
  expect.truthy(tonumber(rps) and tonumber(rps) >= 10 * 25, "default limits.tenant_rps: " ..
                tostring(rps))
end)
