-- Benchmark (not a test): what the default hook scripts cost. Two gateways
-- side by side in one run, one with the shipped scripts/ and one with an
-- empty scripts directory, each pinned to CPU 0 while wrk runs on CPU 1,
-- alternating, for POST /Users (mapping.inbound runs) and GET by userName
-- (no hook runs; the outbound check is one table look-up).
local ROUNDS = tonumber(os.getenv("SG_BENCH_ROUNDS") or "3")
local SECONDS = os.getenv("SG_BENCH_SECONDS") or "6"
local CONNS = os.getenv("SG_BENCH_CONNECTIONS") or "16"

local empty = tmpdir()
local gws = {
  scripts = gateway.start{config = {log_level = "warn", ["limits.tenant_rps"] = "0"}},
  none = gateway.start{scripts = empty, config = {log_level = "warn", ["limits.tenant_rps"] = "0"}},
}

local function wrk(gw, scenario, users_file)
  os.execute("taskset -a -cp 0 " .. gw.pid .. " >/dev/null")
  local cmd = string.format("SG_SCENARIO=%s SG_USERS_FILE=%s SG_TOKEN=%s SG_BASE_PATH=/scim/v2/%s " ..
                            "taskset -c 1 wrk -t1 -c%s -d%ss -s %s/wrk/scenario.lua %s 2>&1", scenario,
                            users_file, gw.token, gw.tenant, CONNS, SECONDS, runner.dir, gw.base)
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

test("default scripts against no scripts", function()
  -- Seed the same users in both for the GET scenario ("<id> <userName>" per line).
  local files = {}
  for name, gw in pairs(gws) do
    local ops = {}
    for i = 1, 1000 do
      ops[i] = {method = "POST", path = "/Users", bulkId = tostring(i),
                data = {userName = "seed" .. i .. "@contoso.com"}}
    end
    local r = http.post(gw.url .. "/Bulk", {Operations = json.array(ops)}, gw:auth(), {timeout = 120})
    assert(r.status == 200, r.body)
    files[name] = tmpdir() .. "/users.txt"
    local f = assert(io.open(files[name], "w"))
    for _, o in ipairs(r.json.Operations) do
      f:write(o.location:match("([^/]+)$"), " seed", o.bulkId, "@contoso.com\n")
    end
    f:close()
  end
  local res = {}
  for _, scenario in ipairs{"post_user", "get_filter"} do
    res[scenario] = {scripts = {}, none = {}}
    for _ = 1, ROUNDS do
      for _, name in ipairs{"none", "scripts"} do
        local t = res[scenario][name]
        t[#t + 1] = wrk(gws[name], scenario, files[name])
      end
    end
  end
  for _, scenario in ipairs{"post_user", "get_filter"} do
    local s, n = median(res[scenario].scripts), median(res[scenario].none)
    print(string.format("%-16s default scripts %8.0f req/s, no scripts %8.0f req/s, ratio %.2f",
                        scenario, s, n, s / n))
  end
end)
