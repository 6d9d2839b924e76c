-- Benchmark (not a test): PATCH adding one member to a group of 100,000
-- members against the same PATCH on a 10-member group, measured side by side
-- in one run with wrk (one connection, so latency is per request). Run with
-- tests/bench/run.sh patch_members (a Release build; the gateway pinned to
-- CPU 0 and wrk to CPU 1).
local BIG = tonumber(os.getenv("SG_BENCH_BIG") or "100000")
local SMALL = 10
local POOL = 2000
local ROUNDS = tonumber(os.getenv("SG_BENCH_ROUNDS") or "3")
local SECONDS = os.getenv("SG_BENCH_SECONDS") or "8"

local gw = gateway.start{config = {log_level = "warn", ["limits.tenant_rps"] = "0", ["limits.body_bytes"] = "64MiB"}}
os.execute("taskset -a -cp 0 " .. gw.pid .. " >/dev/null")

local function seed_users(count, prefix)
  local ids = {}
  local chunk = 1000
  for base = 0, count - 1, chunk do
    local ops = {}
    for i = base, math.min(base + chunk, count) - 1 do
      ops[#ops + 1] = {method = "POST", path = "/Users", bulkId = "u" .. i,
                       data = {userName = prefix .. i .. "@bench.example"}}
    end
    local r = http.post(gw.url .. "/Bulk", {Operations = json.array(ops)}, gw:auth(),
                        {timeout = 600})
    assert(r.status == 200, r.body)
    for _, o in ipairs(r.json.Operations) do
      assert(o.status == "201", json.encode(o))
      ids[#ids + 1] = o.location:match("([^/]+)$")
    end
  end
  return ids
end

local function make_group(name, ids)
  local members = {}
  for i, id in ipairs(ids) do members[i] = {value = id} end
  local r = http.post(gw.url .. "/Groups", {displayName = name, members = json.array(members)},
                      gw:auth(), {timeout = 600})
  assert(r.status == 201, r.body)
  return r.json.id
end

local function wrk(group, members_file)
  local cmd = string.format(
    "SG_TOKEN=%s SG_GROUP_PATH=/scim/v2/%s/Groups/%s SG_MEMBERS_FILE=%s " ..
    "taskset -c 1 wrk -t1 -c1 -d%ss --latency -s %s/wrk/patch_member.lua %s 2>&1",
    gw.token, gw.tenant, group, members_file, SECONDS, runner.dir, gw.base)
  local out = io.popen(cmd):read("a")
  local p50 = out:match("\n%s+50%%%s+([%d%.]+%a+)")
  local rps = out:match("Requests/sec:%s+([%d%.]+)")
  assert(p50 and rps, out)
  local v, unit = p50:match("([%d%.]+)(%a+)")
  local ms = tonumber(v) * ({us = 0.001, ms = 1, s = 1000})[unit]
  return ms, tonumber(rps)
end

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

test("PATCH add one member: 100,000-member group vs 10-member group", function()
  local t0 = os.time()
  local members = seed_users(BIG, "m")
  local pool = seed_users(POOL, "p")
  local big = make_group("big", members)
  local small_ids = {}
  for i = 1, SMALL do small_ids[i] = members[i] end
  local small = make_group("small", small_ids)
  io.stderr:write(string.format("seeded %d users and two groups in %ds\n", BIG + POOL,
                                os.time() - t0))
  local file = tmpdir() .. "/pool.txt"
  local f = assert(io.open(file, "w"))
  f:write(table.concat(pool, "\n"), "\n")
  f:close()
  local res = {big = {}, small = {}, big_rps = {}, small_rps = {}}
  for _ = 1, ROUNDS do
    local ms, rps = wrk(small, file)
    res.small[#res.small + 1], res.small_rps[#res.small_rps + 1] = ms, rps
    ms, rps = wrk(big, file)
    res.big[#res.big + 1], res.big_rps[#res.big_rps + 1] = ms, rps
  end
  local b, s = median(res.big), median(res.small)
  print(string.format("group of %6d members: median p50 %.3f ms, %.0f requests/s", SMALL, s,
                      median(res.small_rps)))
  print(string.format("group of %6d members: median p50 %.3f ms, %.0f requests/s", BIG, b,
                      median(res.big_rps)))
  print(string.format("ratio (big/small) of median latencies: %.2f", b / s))
  local g = http.get(gw.url .. "/Groups/" .. big .. "?attributes=id", gw:auth())
  expect.status(g, 200)
end)
