-- Audit retention (retention.events): events older than the retention go
-- at the next housekeeping run; newer ones stay.

local gw = gateway.start{config = {["retention.events"] = "3s", ["outbox.housekeeping"] = "300ms"}}
local API = gw.base .. "/admin/v1/" .. gw.tenant
local admin = {Authorization = "Bearer " .. gw.admin_token}

local function timeline(id)
  local r = http.get(API .. "/users/" .. id .. "/timeline", admin)
  expect.status(r, 200)
  return r.json.events
end

test("events past the retention are purged, newer ones kept", function()
  local old = http.post(gw.url .. "/Users", {userName = "old@x.example"}, gw:auth()).json.id
  expect.eq(#timeline(old), 1)
  sleep(2)
  local new = http.post(gw.url .. "/Users", {userName = "new@x.example"}, gw:auth()).json.id
  eventually(function() return #timeline(old) == 0 end, "the old event to be purged")
  expect.eq(#timeline(new), 1, "the newer event is kept")
  local feed = http.get(API .. "/changes", admin).json
  expect.eq(#feed.events, 1)
  expect.eq(feed.events[1].subject, new)
end)
