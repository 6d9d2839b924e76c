-- The admin side of the lifecycle (DESIGN §2, §5): who may call what, the
-- user actions (activate, resend, expire, detach, restore), approvals that
-- expire, long-polls, auto-invite, tombstone purges and the deletion-spike
-- brake. Delivery goes to the spool (no mail settings).

local LC = "urn:scimgate:schemas:extension:lifecycle:2.0:User"
local gw = gateway.start{config = {["outbox.poll"] = "200ms", ["outbox.housekeeping"] = "300ms"}}
local API = gw.base .. "/admin/v1/" .. gw.tenant
local keyfile = tmpdir() .. "/device.json"

local function bearer(t) return {Authorization = "Bearer " .. t} end
local function call(token, method, path, body, base)
  return http.request{method = method, url = (base or API) .. path, headers = bearer(token),
                      body = body and json.encode(body), raw = true}
end
local function api(method, path, body) return call(gw.admin_token, method, path, body) end


local n = 0
local function new_user(extra)
  n = n + 1
  local body = {userName = "p" .. n .. "@fabrikam.example", active = true,
                emails = {{value = "p" .. n .. "@fabrikam.example", type = "work", primary = true}}}
  for k, v in pairs(extra or {}) do body[k] = v end
  local r = http.post(gw.url .. "/Users", body, gw:auth())
  expect.status(r, 201)
  return r.json.id, r.json
end

local function state(id) return api("GET", "/users/" .. id).json.state end

local function invite(id)
  local r = api("POST", "/invitations", {users = {id}})
  expect.status(r, 200)
  expect.eq(#r.json.refused, 0, r.body)
  return r.json.invitations[1].job
end

local function approve_all()
  local r = gw:run("device", "approve", gw.tenant, "--key", keyfile, "--all")
  expect.eq(r.status, 0, r.stderr)
end

local tenant_admin, device_token, other

test("setup: a tenant admin, a device and another tenant", function()
  local r = gw:run("admin", "create", gw.tenant, "alice")
  expect.eq(r.status, 0, r.stderr)
  tenant_admin = json.decode(r.stdout:match("([^\n]+)\n?$")).token
  r = gw:run("device", "enroll", gw.tenant, "tablet", "--key", keyfile, "--admin-token", tenant_admin)
  expect.eq(r.status, 0, r.stderr)
  device_token = json.decode(io.open(keyfile):read("a")).token
  expect.match(device_token, "^sgd_")
  r = gw:run("tenant", "create", "other")
  expect.eq(r.status, 0, r.stderr)
  other = r.stdout:match("/scim/v2/(%x+)%s*$")
  expect.truthy(other, r.stdout)
end)

test("principals: a tenant admin stays in its tenant; a device only approves", function()
  expect.status(call(tenant_admin, "GET", "/users"), 200)
  expect.status(call(tenant_admin, "GET", "/admin/v1/" .. other .. "/users", nil, gw.base), 403)
  expect.status(call(gw.admin_token, "GET", "/admin/v1/" .. other .. "/users", nil, gw.base), 200,
                "an operator may")
  expect.status(call(device_token, "GET", "/approvals"), 200)
  expect.status(call(device_token, "GET", "/users"), 403)
  expect.status(call(device_token, "PATCH", "/settings", {auto_invite = "true"}), 403)
  expect.status(call(device_token, "GET", "/admin/v1/" .. other .. "/approvals", nil, gw.base), 403)
  expect.status(call(gw.token, "GET", "/users"), 401, "a SCIM token is no admin credential")
  expect.status(api("GET", "/nothing"), 404)
  expect.status(api("DELETE", "/users"), 405)
end)

test("users by state, and a bad state is a 400", function()
  local a = new_user()
  local r = api("GET", "/users?state=Staged")
  expect.status(r, 200)
  expect.eq(r.json.total, 1)
  expect.eq(r.json.users[1].id, a)
  expect.eq(r.json.users[1].address, "p1@fabrikam.example")
  expect.eq(api("GET", "/users?state=Invited").json.total, 0)
  expect.status(api("GET", "/users?state=Bogus"), 400)
  expect.status(api("GET", "/users?count=5000"), 400)
  expect.status(api("GET", "/users/nobody"), 404)
end)

test("a long-poll for approvals returns when an invitation arrives", function()
  local out = tmpdir() .. "/poll"
  local p = io.popen(string.format(
    "curl -s -o %s -w '%%{time_total}' -H 'Authorization: Bearer %s' '%s/approvals?wait=20'",
    out, device_token, API))
  sleep(0.5)
  local id = new_user()
  local job = invite(id)
  local secs = tonumber(p:read("a"))
  p:close()
  local body = json.decode(io.open(out):read("a"))
  expect.eq(body.approvals[1].job, job)
  expect.truthy(secs < 10, "answered in " .. secs .. " s, well before the wait ran out")
  approve_all()
  eventually(function() return state(id) == "Invited" end, "delivered to the spool")
  local key = api("GET", "/jobs?user=" .. id).json.jobs[1].key
  local f = assert(io.open(gw.data .. "/spool/" .. key .. ".json"), "spooled under its idempotency key")
  local mail = json.decode(f:read("a"))
  f:close()
  expect.eq(mail.to, "p2@fabrikam.example")
end)

test("activate: Invited to Active; a Staged user cannot be activated", function()
  local id = api("GET", "/users?state=Invited").json.users[1].id
  local r = api("POST", "/users/" .. id .. "/activate")
  expect.status(r, 200)
  expect.eq(r.json.state, "Active")
  local staged = api("GET", "/users?state=Staged").json.users[1].id
  r = api("POST", "/users/" .. staged .. "/activate")
  expect.status(r, 409)
  expect.match(r.json.detail, "Staged")
end)

test("resend cancels the open invitation and asks for a new approval; expire stages the user", function()
  local id = new_user()
  local first = invite(id)
  local r = api("POST", "/users/" .. id .. "/resend")
  expect.status(r, 200)
  local second = r.json.job
  expect.ne(second, first)
  local byid = {}
  for _, j in ipairs(api("GET", "/jobs?user=" .. id).json.jobs) do byid[j.id] = j end
  expect.eq(byid[first].status, "Cancelled")
  expect.eq(byid[second].status, "AwaitingApproval")
  r = api("POST", "/jobs/" .. second .. "/expire")
  expect.status(r, 200)
  expect.eq(state(id), "Staged")
  expect.status(api("POST", "/jobs/" .. second .. "/expire"), 409, "already Expired")
  local tl = api("GET", "/users/" .. id .. "/timeline").json.events
  expect.eq(tl[#tl].type, "user.state_changed")
  expect.eq(tl[#tl].data.to, "Staged")
end)

test("approvals expire on their own: the user goes back to Staged", function()
  expect.status(api("PATCH", "/settings", {approval_ttl = "1s"}), 200)
  local id = new_user()
  local job = invite(id)
  eventually(function() return state(id) == "Staged" end, "the approval to expire", 15)
  local j = api("GET", "/jobs?user=" .. id).json.jobs[1]
  expect.eq(j.id, job)
  expect.eq(j.status, "Expired")
  expect.status(api("PATCH", "/settings", {approval_ttl = json.null}), 200)
end)

test("detach: SCIM writes answer 409 until the user is attached again", function()
  local id = new_user()
  expect.status(api("POST", "/users/" .. id .. "/detach", {}), 400, "a reason is required")
  local r = api("POST", "/users/" .. id .. "/detach", {reason = "managed by hand for the audit"})
  expect.status(r, 200)
  expect.eq(r.json.detached, true)
  local p = http.patch(gw.url .. "/Users/" .. id, {schemas = {"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
    Operations = {{op = "replace", path = "displayName", value = "X"}}}, gw:auth())
  expect.status(p, 409)
  expect.match(p.json.detail, "managed by hand for the audit")
  expect.status(http.delete(gw.url .. "/Users/" .. id, gw:auth()), 409)
  expect.status(http.get(gw.url .. "/Users/" .. id, gw:auth()), 200, "reads still work")
  -- The timeline says why Entra's change did not apply.
  local tl = api("GET", "/users/" .. id .. "/timeline").json.events
  local last = tl[#tl]
  expect.eq(last.type, "scim.refused")
  expect.eq(last.data.status, 409)
  expect.eq(last.data.method, "DELETE")
  expect.match(last.actor, "^token:")
  expect.match(tl[#tl - 1].data.detail, "detached")
  expect.status(api("POST", "/users/" .. id .. "/attach"), 200)
  expect.status(http.delete(gw.url .. "/Users/" .. id, gw:auth()), 204)
end)

test("restore brings a deleted user back, unless its userName was taken meanwhile", function()
  local id, body = new_user({displayName = "Comes Back"})
  expect.status(http.delete(gw.url .. "/Users/" .. id, gw:auth()), 204)
  expect.status(http.get(gw.url .. "/Users/" .. id, gw:auth()), 404)
  local r = api("POST", "/users/" .. id .. "/restore")
  expect.status(r, 200)
  expect.eq(r.json.state, "Staged")
  local back = http.get(gw.url .. "/Users/" .. id, gw:auth())
  expect.status(back, 200)
  expect.eq(back.json.displayName, "Comes Back")
  expect.eq(back.json.userName, body.userName)
  -- Deleted again, and a new user takes the userName: no restore.
  expect.status(http.delete(gw.url .. "/Users/" .. id, gw:auth()), 204)
  local r2 = http.post(gw.url .. "/Users", {userName = body.userName}, gw:auth())
  expect.status(r2, 201, "a tombstone never blocks a new user")
  r = api("POST", "/users/" .. id .. "/restore")
  expect.status(r, 409)
  expect.status(http.get(gw.url .. "/Users/" .. id, gw:auth()), 404, "nothing half-restored")
  local feed = api("GET", "/changes?limit=1000").json.events
  local seen = {}
  for _, e in ipairs(feed) do seen[e.type .. ":" .. (e.subject or "")] = true end
  expect.truthy(seen["user.deleted:" .. id] and seen["user.undeleted:" .. id], "in the change feed")
end)

test("tombstones are purged after the grace period", function()
  expect.status(api("PATCH", "/settings", {tombstone_grace = "1s"}), 200)
  local id = new_user()
  expect.status(http.delete(gw.url .. "/Users/" .. id, gw:auth()), 204)
  eventually(function() return api("POST", "/users/" .. id .. "/restore").status == 404 end,
             "the purge")
end)

test("a deletion spike pauses purges and raises an alert; suspensions still apply", function()
  expect.status(api("PATCH", "/settings", {spike_threshold = "2", spike_window = "1h"}), 200)
  local ids = {new_user(), new_user(), new_user()}
  http.patch(gw.url .. "/Users/" .. ids[1], {schemas = {"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
    Operations = {{op = "Replace", path = "active", value = "False"}}}, gw:auth())
  expect.eq(state(ids[1]), "Suspended", "the suspension applied")
  expect.status(http.delete(gw.url .. "/Users/" .. ids[2], gw:auth()), 204)
  -- Earlier tests deleted users within the hour too: the brake is on by now.
  expect.status(http.delete(gw.url .. "/Users/" .. ids[3], gw:auth()), 204)
  local a = api("GET", "/alerts").json.alerts
  expect.eq(#a, 1)
  expect.eq(a[1].type, "deletion_spike")
  sleep(1.5) -- past the 1 s grace and several housekeeping runs
  expect.status(api("POST", "/users/" .. ids[3] .. "/restore"), 200, "the tombstone was kept")
  expect.status(api("DELETE", "/alerts/deletion_spike"), 204)
  expect.eq(#api("GET", "/alerts").json.alerts, 0)
  eventually(function() return api("POST", "/users/" .. ids[2] .. "/restore").status == 404 end,
             "the purge to resume")
end)

test("auto-invite: a new user starts PendingApproval with an invitation", function()
  expect.status(api("PATCH", "/settings", {auto_invite = "true", spike_threshold = "0"}), 200)
  local id, body = new_user()
  expect.eq(body[LC].state, "PendingApproval")
  local jobs = api("GET", "/jobs?user=" .. id).json.jobs
  expect.eq(#jobs, 1)
  expect.eq(jobs[1].status, "AwaitingApproval")
  local id2, body2 = new_user({emails = json.null, userName = "no-address"})
  expect.eq(body2[LC].state, "Staged", "no address: nobody to invite")
  expect.eq(#api("GET", "/jobs?user=" .. id2).json.jobs, 0)
end)

test("settings: bad keys and values are refused, null removes", function()
  expect.status(api("PATCH", "/settings", {["Bad Key"] = "x"}), 400)
  expect.status(api("PATCH", "/settings", {auto_invite = 1}), 400)
  for k, v in pairs{auto_invite = "maybe", approval_ttl = "soon", tombstone_grace = "0s",
                    spike_threshold = "-1", changes_webhook_url = "ftp://x", invite_smtp_url = "http://x"} do
    local r = api("PATCH", "/settings", {[k] = v})
    expect.status(r, 400, k)
    expect.match(r.json.detail, k)
  end
  expect.status(api("PATCH", "/settings", {approval_ttl = "12h", product_name = "anything at all"}), 200)
  local r = api("PATCH", "/settings", {auto_invite = json.null})
  expect.status(r, 200)
  expect.eq(r.json.settings.auto_invite, nil)
end)
