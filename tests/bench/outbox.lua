-- Benchmark (not a test): how fast approved invitations leave through the
-- outbox. Two gateways side by side in one run, one outbox thread against
-- two, each pinned to CPU 0; per round each gets N new users, invites them
-- in one request, a device approves them all in one request, and the clock
-- runs from the approval until every user is Invited (delivered to the
-- spool by the default invite.lua: a file written and fsync'ed per
-- invitation).
local ROUNDS = tonumber(os.getenv("SG_BENCH_ROUNDS") or "3")
local N = tonumber(os.getenv("SG_BENCH_INVITES") or "500")

local function start(workers)
  local gw = gateway.start{config = {log_level = "warn", ["limits.tenant_rps"] = "0", ["outbox.workers"] = tostring(workers),
                                     ["outbox.poll"] = "100ms"}}
  os.execute("taskset -a -cp 0 " .. gw.pid .. " >/dev/null")
  gw.keyfile = tmpdir() .. "/device.json"
  local r = gw:run("device", "enroll", gw.tenant, "bench", "--key", gw.keyfile,
                   "--admin-token", gw.admin_token)
  assert(r.status == 0, r.stderr)
  return gw
end

local gws = {one = start(1), two = start(2)}

local function now()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("a"))
  p:close()
  return t
end

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

local round = 0
local function run_round(gw)
  round = round + 1
  gw.rounds = (gw.rounds or 0) + 1
  local ops = {}
  for i = 1, N do
    ops[i] = {method = "POST", path = "/Users", bulkId = "b" .. i,
              data = {userName = "r" .. round .. "u" .. i .. "@contoso.com"}}
  end
  local r = http.post(gw.url .. "/Bulk", {Operations = json.array(ops)}, gw:auth(), {timeout = 300})
  assert(r.status == 200, r.body)
  local ids = {}
  for i, op in ipairs(r.json.Operations) do ids[i] = op.location:match("/Users/(.+)$") end
  local admin = {Authorization = "Bearer " .. gw.admin_token}
  local api = gw.base .. "/admin/v1/" .. gw.tenant
  r = http.request{method = "POST", url = api .. "/invitations", headers = admin,
                   body = json.encode{users = ids}, raw = true, timeout = 300}
  assert(r.status == 200 and #r.json.invitations == N, r.body)
  local t0 = now()
  r = gw:run{"device", "approve", gw.tenant, "--key", gw.keyfile, "--all", timeout = 300}
  assert(r.status == 0, r.stderr)
  local approved = now()
  repeat
    sleep(0.05)
    r = http.get(api .. "/users?state=Invited&count=0", admin)
  until r.json.total >= N * gw.rounds
  return now() - t0, approved - t0
end

test("approved invitations delivered per second: one outbox thread against two", function()
  local res = {one = {}, two = {}}
  local appr = {one = {}, two = {}}
  for _ = 1, ROUNDS do
    for _, name in ipairs{"one", "two"} do
      local total, approval = run_round(gws[name])
      table.insert(res[name], N / total)
      table.insert(appr[name], approval)
    end
  end
  for _, name in ipairs{"one", "two"} do
    print(string.format("outbox.workers=%d: %d invitations, approval request %.2f s, %.0f delivered/s",
                        name == "one" and 1 or 2, N, median(appr[name]), median(res[name])))
  end
  print(string.format("ratio two/one %.2f", median(res.two) / median(res.one)))
end)
