-- Durability (DESIGN §8: every request commits whole or changes nothing, and
-- acknowledged writes survive kill -9). Several clients write at once (POST a
-- user, PATCH it, add it to a group), each recording every answer; the
-- gateway is killed with SIGKILL mid-load and started again on the same data;
-- a checker then compares: every acknowledged write is there with at least
-- the acknowledged version and content, and nothing is half-written (every
-- user is found by its unique keys, every member is a user, every user has
-- its change-feed event). On SQLite, and on PostgreSQL when SG_PG_DSN is set.

local WRITERS = 4
local GROUPS = 3
local ACKED = 30 -- acknowledged memberships before the kill
local PATCHOP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

-- One writer: POST, PATCH the user, add it to a group, until $4/stop exists
-- (or $4 is gone: the runner removes it when the file's tests are done, so a
-- failed test leaves no writer behind). Each answer is a line:
-- KIND CODE ETAG rest (a 201's body; the ids).
local WRITER = [[
url=$1; tok=$2; w=$3; dir=$4; groups=$5
log="$dir/log$w"; n=0
call() { curl -s -m 5 -H "Authorization: Bearer $tok" -H "Content-Type: application/scim+json" "$@"; }
while [ -d "$dir" ] && [ ! -f "$dir/stop" ] && [ $n -lt 5000 ]; do
  n=$((n+1))
  out=$(call -X POST -w '\n%{http_code} %header{etag}' "$url/Users" \
    --data "{\"userName\":\"w$w-$n@durable.example\",\"externalId\":\"x$w-$n\",\"displayName\":\"v1\"}")
  status=$(printf '%s\n' "$out" | tail -n 1)
  body=$(printf '%s\n' "$out" | head -n 1)
  echo "POST $status $body" >> "$log"
  case "$status" in 201*) ;; *) continue ;; esac
  id=$(printf '%s' "$body" | sed -n 's/.*"id":"\([0-9a-f-]*\)".*/\1/p')
  out=$(call -o /dev/null -X PATCH -w '%{http_code} %header{etag}' "$url/Users/$id" \
    --data '{"schemas":["PATCHOP"],"Operations":[{"op":"replace","path":"displayName","value":"v2"}]}')
  echo "USER $out $id" >> "$log"
  set -- $groups; shift $((n % $#)); g=$1
  add="{\"op\":\"add\",\"path\":\"members\",\"value\":[{\"value\":\"$id\"}]}"
  out=$(call -o /dev/null -X PATCH -w '%{http_code} %header{etag}' "$url/Groups/$g" \
    --data "{\"schemas\":[\"PATCHOP\"],\"Operations\":[$add]}")
  echo "GROUP $out $g $id" >> "$log"
done
[ -d "$dir" ] && touch "$dir/done$w"
]]

local function version(etag) return tonumber((etag or ""):match('"(%d+)"')) end

local function durability(gw)
  local work = tmpdir()
  local admin = {Authorization = "Bearer " .. gw.admin_token}
  local groups = {}
  for i = 1, GROUPS do
    local r = http.post(gw.url .. "/Groups", {displayName = "durable " .. i}, gw:auth())
    expect.status(r, 201)
    groups[i] = r.json.id
  end
  local f = assert(io.open(work .. "/writer.sh", "w"))
  f:write((WRITER:gsub("PATCHOP", PATCHOP)))
  f:close()
  for w = 1, WRITERS do
    local p = io.popen(string.format("sh %s/writer.sh '%s' '%s' %d '%s' '%s' >/dev/null 2>&1 &", work,
                                     gw.url, gw.token, w, work, table.concat(groups, " ")))
    p:close()
  end
  -- Kill once enough has been acknowledged (however fast this machine is),
  -- with the writers still going.
  eventually(function()
    local n = 0
    for w = 1, WRITERS do
      local lf = io.open(work .. "/log" .. w)
      if lf then
        for line in lf:lines() do
          if line:match("^GROUP 204 ") then n = n + 1 end
        end
        lf:close()
      end
    end
    return n >= ACKED
  end, ACKED .. " acknowledged memberships", 60)
  gw:kill()
  sleep(0.3) -- every writer meets the dead gateway at least once
  assert(io.open(work .. "/stop", "w")):close()
  eventually(function()
    for w = 1, WRITERS do
      if not io.open(work .. "/done" .. w) then return false end
    end
    return true
  end, "the writers to stop", 30)

  -- What the clients were told.
  local users, patched, members, group_version = {}, {}, {}, {}
  local cut = {} -- userNames whose 201 arrived without its whole body
  local nusers, nmembers, lost = 0, 0, 0
  for w = 1, WRITERS do
    local n = 0 -- each loop of the writer logs one POST line
    for line in io.lines(work .. "/log" .. w) do
      local kind, code, etag, rest = line:match("^(%u+) (%d+) ?(%S*) ?(.*)$")
      if kind == "POST" then n = n + 1 end
      local ok, u = pcall(json.decode, rest)
      if kind == "POST" and code == "201" and not ok then
        -- The kill fell between the status line and the end of the body:
        -- the commit came first, so the user must be there.
        cut[#cut + 1] = "w" .. w .. "-" .. n .. "@durable.example"
      elseif kind == "POST" and code == "201" then
        users[u.id] = {userName = u.userName, externalId = u.externalId, version = version(etag)}
        nusers = nusers + 1
      elseif kind == "USER" and code == "200" then
        patched[rest] = version(etag)
      elseif kind == "GROUP" and code == "204" then
        local g, id = rest:match("^(%S+) (%S+)$")
        members[g] = members[g] or {}
        members[g][id] = true
        group_version[g] = math.max(group_version[g] or 0, version(etag))
        nmembers = nmembers + 1
      elseif code == "000" then
        lost = lost + 1
      end
    end
  end
  expect.truthy(nusers >= ACKED and nmembers >= ACKED,
                string.format("writes were acknowledged (%d users, %d memberships)", nusers, nmembers))
  expect.truthy(lost > 0, "the gateway died under load (no answer to some requests)")

  gw:restart()

  -- Every acknowledged write is there, at least at its version.
  for id, u in pairs(users) do
    local r = http.get(gw.url .. "/Users/" .. id, gw:auth())
    expect.status(r, 200, "acknowledged user " .. id)
    expect.eq(r.json.userName, u.userName)
    expect.eq(r.json.externalId, u.externalId)
    local v = version(r.headers.etag)
    expect.truthy(v >= u.version, "version " .. v .. " >= " .. u.version)
    if patched[id] then
      expect.eq(r.json.displayName, "v2", "the acknowledged PATCH of " .. id)
      expect.truthy(v >= patched[id])
    else
      expect.truthy(r.json.displayName == "v1" or r.json.displayName == "v2", r.json.displayName)
    end
  end
  for _, name in ipairs(cut) do
    local r = http.get(gw.url .. "/Users?filter=" .. http.escape('userName eq "' .. name .. '"'), gw:auth())
    expect.status(r, 200)
    expect.eq(r.json.totalResults, 1, "the user whose 201 was cut short: " .. name)
  end
  local in_group = {}
  for i, g in ipairs(groups) do
    local r = http.get(gw.url .. "/Groups/" .. g, gw:auth())
    expect.status(r, 200)
    expect.truthy(version(r.headers.etag) >= (group_version[g] or 1), "group " .. i .. "'s version")
    in_group[g] = {}
    for _, m in ipairs(r.json.members or {}) do in_group[g][m.value] = true end
    for id in pairs(members[g] or {}) do
      expect.truthy(in_group[g][id], "acknowledged member " .. id .. " of group " .. i)
    end
  end

  -- Nothing half-written: every user in the store (acknowledged or not) is
  -- whole: found by its unique keys, with its change-feed event; every
  -- member of a group is one of them.
  local all, start = {}, 1
  repeat
    local r = http.get(gw.url .. "/Users?count=1000&startIndex=" .. start, gw:auth())
    expect.status(r, 200)
    for _, u in ipairs(r.json.Resources) do all[u.id] = u end
    start = start + #r.json.Resources
  until #r.json.Resources == 0 or start > r.json.totalResults
  local created, since = {}, "0"
  repeat
    local r = http.get(gw.base .. "/admin/v1/" .. gw.tenant .. "/changes?limit=1000&since=" .. since, admin)
    expect.status(r, 200)
    for _, e in ipairs(r.json.events) do
      if e.type == "user.created" then created[e.subject] = true end
    end
    local more = #r.json.events == 1000
    since = r.json.cursor
  until not more
  local n = 0
  for id, u in pairs(all) do
    n = n + 1
    for _, key in ipairs{"userName", "externalId"} do
      local r = http.get(gw.url .. "/Users?filter=" .. http.escape(key .. ' eq "' .. u[key] .. '"'),
                         gw:auth())
      expect.status(r, 200)
      expect.eq(r.json.totalResults, 1, key .. " " .. u[key])
      expect.eq(r.json.Resources[1].id, id)
    end
    expect.truthy(created[id], "user.created event of " .. id)
  end
  expect.truthy(n >= nusers, n .. " users stored, " .. nusers .. " acknowledged")
  for _, g in ipairs(groups) do
    for id in pairs(in_group[g]) do expect.truthy(all[id], "member " .. id .. " is a user") end
    local one = next(in_group[g])
    if one then
      local r = http.get(gw.url .. "/Groups?filter=" .. http.escape('members[value eq "' .. one .. '"]'),
                         gw:auth())
      local found = false
      for _, x in ipairs(r.json.Resources) do found = found or x.id == g end
      expect.truthy(found, "the membership index finds " .. one .. " in its group")
    end
  end

  -- And the store takes writes again.
  local r = http.patch(gw.url .. "/Groups/" .. groups[1], {schemas = {PATCHOP},
                       Operations = {{op = "remove", path = 'members[value eq "' .. (next(all)) .. '"]'}}},
                       gw:auth())
  expect.status(r, 204)
  expect.status(http.post(gw.url .. "/Users", {userName = "after-restart@durable.example"}, gw:auth()), 201)
end

test("SQLite: acknowledged writes survive kill -9 under load, nothing half-written", function()
  durability(gateway.start{})
end)

local DSN = os.getenv("SG_PG_DSN")
if DSN and DSN ~= "" then
  local run = io.open("/proc/sys/kernel/random/uuid"):read("l"):sub(1, 8)
  test("PostgreSQL: acknowledged writes survive kill -9 under load, nothing half-written", function()
    durability(gateway.start{config = {storage = "postgres", ["storage.dsn"] = DSN},
                             tenant = "durability-" .. run, operator = "op-durability-" .. run})
  end)
end
