-- Benchmark (not a test): an Entra-shaped mix of requests (wrk/entra_mix.lua:
-- matching GETs, user creations, user PATCHes, group member PATCHes) on the
-- embedded SQLite store against PostgreSQL, side by side in one run. Each
-- gateway is pinned to CPU 0 while wrk runs on CPU 1; PostgreSQL runs where
-- the kernel puts it (it is another process on the same machine, as a
-- database server would be). Needs SG_PG_DSN (tests/bench/run.sh starts a
-- throw-away cluster for it).
local ROUNDS = tonumber(os.getenv("SG_BENCH_ROUNDS") or "3")
local SECONDS = os.getenv("SG_BENCH_SECONDS") or "8"
local CONNS = os.getenv("SG_BENCH_CONNECTIONS") or "16"
local SEED = tonumber(os.getenv("SG_BENCH_USERS") or "2000")
local DSN = assert(os.getenv("SG_PG_DSN"), "SG_PG_DSN: a PostgreSQL database for the benchmark")

local run = io.open("/proc/sys/kernel/random/uuid"):read("l"):sub(1, 8)
local gws = {
  sqlite = gateway.start{config = {log_level = "warn", ["limits.tenant_rps"] = "0"}},
  postgres = gateway.start{config = {log_level = "warn", ["limits.tenant_rps"] = "0", storage = "postgres", ["storage.dsn"] = DSN},
                           tenant = "bench-" .. run, operator = "bench-" .. run},
}

local function seed(gw)
  local file = tmpdir() .. "/users.txt"
  local f = assert(io.open(file, "w"))
  for batch = 0, SEED // 500 - 1 do
    local ops = {}
    for i = 1, 500 do
      local k = batch * 500 + i
      ops[i] = {method = "POST", path = "/Users", bulkId = "b" .. k,
                data = {userName = "seed" .. k .. "@contoso.com", active = true}}
    end
    local r = http.post(gw.url .. "/Bulk", {Operations = json.array(ops)}, gw:auth(), {timeout = 300})
    assert(r.status == 200, r.body)
    for _, op in ipairs(r.json.Operations) do
      local id = op.location:match("/Users/(.+)$")
      f:write(id, " seed", op.bulkId:sub(2), "@contoso.com\n")
    end
  end
  f:close()
  local g = http.post(gw.url .. "/Groups", {displayName = "Mix"}, gw:auth())
  assert(g.status == 201, g.body)
  return file, g.json.id
end

local function wrk(gw, users, group)
  os.execute("taskset -a -cp 0 " .. gw.pid .. " >/dev/null")
  local cmd = string.format("SG_TOKEN=%s SG_BASE_PATH=/scim/v2/%s SG_USERS_FILE=%s SG_GROUP_ID=%s " ..
                            "taskset -c 1 wrk -t1 -c%s -d%ss -s %s/wrk/entra_mix.lua %s 2>&1",
                            gw.token, gw.tenant, users, group, CONNS, SECONDS, runner.dir, gw.base)
  local out = io.popen(cmd):read("a")
  local rps = tonumber(out:match("Requests/sec:%s+([%d%.]+)"))
  assert(rps, out)
  assert(not out:match("unexpected status"), out)
  return rps
end

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

test("Entra-shaped mix: SQLite against PostgreSQL", function()
  local setup = {}
  for name, gw in pairs(gws) do setup[name] = {seed(gw)} end
  local res = {sqlite = {}, postgres = {}}
  for _ = 1, ROUNDS do
    for _, name in ipairs{"sqlite", "postgres"} do
      table.insert(res[name], wrk(gws[name], setup[name][1], setup[name][2]))
    end
  end
  local s, p = median(res.sqlite), median(res.postgres)
  print(string.format("entra_mix (%s connections, %d seeded users): SQLite %.0f req/s, PostgreSQL %.0f req/s, " ..
                      "ratio PostgreSQL/SQLite %.2f", CONNS, SEED, s, p, p / s))
end)
