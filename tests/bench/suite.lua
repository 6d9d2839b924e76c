-- Benchmark (not a test): the Entra-shaped scenarios against the ceiling
-- (DESIGN §7), in one run. Seeds SG_BENCH_USERS users (100,000 by default;
-- 1,000,000 for the scale run) plus a pool of 1,000 outside every group, and
-- groups of 10, 10,000 and 100,000 members (as many as there are users);
-- then, for ROUNDS rounds, runs each scenario with wrk and, right after it,
-- the bare CivetWeb handler (tests/bench/bare_http.c) answering a body of the
-- size the scenario's responses have. Prints, per scenario, the medians of
-- requests/s, p50 and p99 and the ratio of requests/s to the ceiling's; and
-- the gateway's peak RssAnon while seeding and while measured (sampled from
-- /proc/PID/status every 0.2 s).
-- The gateway (Release, the default configuration but for the body limit
-- the 100,000-member group's creation needs) is pinned to CPU 0 with the
-- ceiling, wrk to CPU 1. Member PATCHes run on one connection (their latency
-- is the figure), the rest on SG_BENCH_CONNECTIONS (16).
-- Environment: SG_BARE_HTTP (the ceiling's binary; tests/bench/run.sh sets
-- it), SG_BENCH_USERS, SG_BENCH_ROUNDS (3), SG_BENCH_SECONDS (6),
-- SG_BENCH_CONNECTIONS (16), SG_BENCH_ONLY (a Lua pattern on scenario names).
local USERS = tonumber(os.getenv("SG_BENCH_USERS") or "100000")
local POOL = 1000
local ROUNDS = tonumber(os.getenv("SG_BENCH_ROUNDS") or "3")
local SECONDS = os.getenv("SG_BENCH_SECONDS") or "6"
local CONNS = os.getenv("SG_BENCH_CONNECTIONS") or "16"
local ONLY = os.getenv("SG_BENCH_ONLY") or ""
local BARE = assert(os.getenv("SG_BARE_HTTP"), "SG_BARE_HTTP: the bare_http binary (tests/bench/run.sh)")

local gw = gateway.start{config = {log_level = "warn", ["limits.body_bytes"] = "64MiB", ["limits.tenant_rps"] = "0"}}
local dir = tmpdir()

local function sh(cmd)
  local out = io.popen(cmd):read("a")
  return out
end

-- RssAnon sampler: one line (kB) every 0.2 s while the gateway lives.
local rss_file = dir .. "/rss.txt"
os.execute(string.format("sh -c 'while [ -r /proc/%d/status ]; do " ..
                         "sed -n \"s/^RssAnon:[[:space:]]*\\([0-9]*\\) kB/\\1/p\" /proc/%d/status; " ..
                         "sleep 0.2; done' > %s 2>/dev/null &", gw.pid, gw.pid, rss_file))
local function rss_peak(from_line)
  local peak, i = 0, 0
  for line in io.lines(rss_file) do
    i = i + 1
    local kb = tonumber(line)
    if i > from_line and kb and kb > peak then peak = kb end
  end
  return peak / 1024, i
end

-- The ceiling: bare_http on a port of its own, on the gateway's CPU.
local bare_port = free_port()
local bare_pid = tonumber(sh(string.format("sh -c 'taskset -c 0 %s %d >/dev/null 2>&1 & echo $!'",
                                           BARE, bare_port)))
assert(bare_pid, "cannot start bare_http")
eventually(function()
  local ok, r = pcall(http.get, string.format("http://127.0.0.1:%d/bytes/1", bare_port))
  return ok and r.status == 200
end, "bare_http listening")
os.execute("taskset -a -cp 0 " .. gw.pid .. " >/dev/null")

local function seed_users(count, prefix, file)
  local f = assert(io.open(file, "w"))
  local ids = {}
  for first = 1, count, 1000 do
    local ops = {}
    for i = first, math.min(first + 999, count) do
      ops[#ops + 1] = {method = "POST", path = "/Users", bulkId = tostring(i),
                       data = {userName = prefix .. i .. "@bench.example", active = true,
                               externalId = prefix .. i, displayName = "User " .. i,
                               name = {givenName = "User", familyName = tostring(i)},
                               emails = json.array{{value = prefix .. i .. "@bench.example",
                                                    type = "work", primary = true}}}}
    end
    local r = http.post(gw.url .. "/Bulk", {Operations = json.array(ops)}, gw:auth(), {timeout = 600})
    assert(r.status == 200, r.body)
    for _, o in ipairs(r.json.Operations) do
      assert(o.status == "201", json.encode(o))
      local id = o.location:match("([^/]+)$")
      ids[#ids + 1] = id
      f:write(id, " ", prefix, o.bulkId, "@bench.example\n")
    end
  end
  f:close()
  return ids
end

local function make_group(name, ids, size)
  local members = {}
  for i = 1, size do members[i] = {value = ids[i]} end
  local r = http.post(gw.url .. "/Groups", {displayName = name, members = json.array(members)},
                      gw:auth(), {timeout = 600})
  assert(r.status == 201, r.body)
  return r.json.id
end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  return s[(#s + 1) // 2]
end

local function ms(text) -- wrk's "1.23ms" / "850.00us" / "1.02s"
  local v, unit = text:match("([%d%.]+)(%a+)")
  return tonumber(v) * ({us = 0.001, ms = 1, s = 1000})[unit]
end

local function wrk(env, conns, script, url)
  local cmd = string.format("%s taskset -c 1 wrk -t1 -c%d -d%ss --latency %s %s 2>&1", env, conns,
                            SECONDS, script and ("-s " .. runner.dir .. "/wrk/" .. script) or "", url)
  local out = sh(cmd)
  local rps = tonumber(out:match("Requests/sec:%s+([%d%.]+)"))
  local p50, p99 = out:match("\n%s+50%%%s+(%S+)"), out:match("\n%s+99%%%s+(%S+)")
  assert(rps and p50 and p99, out)
  assert(not out:match("unexpected status") and not out:match("Non%-2xx"), out)
  return {rps = rps, p50 = ms(p50), p99 = ms(p99)}
end

local function measure()
  local t0 = os.time()
  local users_file, pool_file = dir .. "/users.txt", dir .. "/pool.txt"
  local ids = seed_users(USERS, "u", users_file)
  local pool = seed_users(POOL, "p", dir .. "/pool_users.txt")
  local f = assert(io.open(pool_file, "w"))
  f:write(table.concat(pool, "\n"), "\n")
  f:close()
  local groups = {}
  for _, size in ipairs{10, 10000, 100000} do
    groups[size] = make_group("g" .. size, ids, math.min(size, USERS))
  end
  local seed_peak, seen = rss_peak(0)
  io.stderr:write(string.format("seeded %d users and 3 groups in %d s\n", USERS + POOL, os.time() - t0))

  local scenarios = {
    {name = "test_connection"}, {name = "get_filter"}, {name = "get_id"}, {name = "page"},
    {name = "post_user"}, {name = "patch_user"},
    {name = "patch_member", label = "patch_member_10", group = groups[10], conns = 1},
    {name = "patch_member", label = "patch_member_10k", group = groups[10000], conns = 1},
    {name = "patch_member", label = "patch_member_100k", group = groups[100000], conns = 1},
    {name = "entra_mix", script = "entra_mix.lua", group = groups[10]},
  }
  local results = {}
  for _, s in ipairs(scenarios) do
    s.label = s.label or s.name
    if s.label:match(ONLY) then
      s.env = string.format("SG_SCENARIO=%s SG_TOKEN=%s SG_BASE_PATH=/scim/v2/%s SG_USERS_FILE=%s " ..
                            "SG_POOL_FILE=%s SG_GROUP_ID=%s", s.name, gw.token, gw.tenant, users_file,
                            pool_file, s.group or "")
      results[#results + 1] = {s = s, gw = {}, bare = {}}
    end
  end
  -- The size of each scenario's responses, from one request of its kind.
  local probe = {
    test_connection = function() return http.get(gw.url .. "/Users?filter=" ..
                                                 http.escape('userName eq "nobody@contoso.com"'), gw:auth()) end,
    get_filter = function() return http.get(gw.url .. "/Users?filter=" ..
                                            http.escape('userName eq "u1@bench.example"'), gw:auth()) end,
    get_id = function() return http.get(gw.url .. "/Users/" .. ids[1], gw:auth()) end,
    page = function() return http.get(gw.url .. "/Users?startIndex=1&count=100", gw:auth()) end,
    post_user = function() return http.post(gw.url .. "/Users", {userName = "probe@bench.example",
      emails = json.array{{value = "probe@bench.example", type = "work", primary = true}},
      name = {givenName = "Probe", familyName = "Probe"}, active = true}, gw:auth()) end,
    patch_user = function() return http.patch(gw.url .. "/Users/" .. ids[2], {
      schemas = {"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
      Operations = {{op = "Replace", path = "displayName", value = "Probe"}}}, gw:auth()) end,
  }
  probe.entra_mix = probe.get_filter -- most of the mix's answers are these
  for _, r in ipairs(results) do
    local p = probe[r.s.name]
    r.bytes = p and #p().body or 0
  end
  for _ = 1, ROUNDS do
    for _, r in ipairs(results) do
      local conns = r.s.conns or tonumber(CONNS)
      table.insert(r.gw, wrk(r.s.env, conns, r.s.script or "scenario.lua", gw.base))
      table.insert(r.bare, wrk("", conns, nil, string.format("http://127.0.0.1:%d/bytes/%d", bare_port, r.bytes)))
    end
  end
  local run_peak = rss_peak(seen)

  local function col(t, k)
    local v = {}
    for i, x in ipairs(t) do v[i] = x[k] end
    return median(v)
  end
  print(string.format("%d users (+%d), %s rounds of %s s, %s connections (member PATCHes: 1); medians",
                      USERS, POOL, ROUNDS, SECONDS, CONNS))
  print(string.format("%-18s %7s %10s %9s %9s %11s %7s", "scenario", "bytes", "req/s", "p50 ms", "p99 ms",
                      "ceiling/s", "ratio"))
  for _, r in ipairs(results) do
    local rps, bare = col(r.gw, "rps"), col(r.bare, "rps")
    print(string.format("%-18s %7d %10.0f %9.3f %9.3f %11.0f %6.0f%%", r.s.label, r.bytes, rps,
                        col(r.gw, "p50"), col(r.gw, "p99"), bare, 100 * rps / bare))
  end
  print(string.format("peak RssAnon: %.1f MiB while seeding, %.1f MiB while measured", seed_peak, run_peak))
end

test("Entra-shaped scenarios against the ceiling", function()
  local ok, err = pcall(measure)
  os.execute("kill " .. bare_pid) -- the runner stops gateways, not this
  if not ok then error(err, 0) end
end)
