-- wrk script (wrk runs LuaJIT: Lua 5.1, no // operator): one Entra-shaped
-- request kind per run, chosen by SG_SCENARIO:
--   test_connection  GET /Users?filter=userName eq "<nobody>" (Entra's Test
--                    connection: a random userName that does not exist)
--   get_filter       GET /Users?filter=userName eq "<a user that exists>"
--   get_id           GET /Users/<id>
--   post_user        POST /Users, Entra's default body, a new userName each time
--   patch_user       PATCH /Users/<id>, Entra's default-mode Replace ops
--   patch_member     PATCH /Groups/<SG_GROUP_ID>: Add one member, then Remove
--                    it, alternating, so that the group keeps its size
--   page             GET /Users?startIndex=<anywhere>&count=100
-- Environment: SG_TOKEN, SG_BASE_PATH (/scim/v2/<tenant>), SG_USERS_FILE
-- (lines "<id> <userName>"), SG_POOL_FILE (patch_member: user ids outside the
-- group), SG_GROUP_ID. Any unexpected status is written to stderr as
-- "unexpected status", which the benchmark treats as a failure.
local scenario = os.getenv("SG_SCENARIO")
local base = os.getenv("SG_BASE_PATH")
local users, pool = {}, {}
local n = 0
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1000000))
local expected = {post_user = 201, patch_member = 204}

function init(args)
  for line in io.lines(os.getenv("SG_USERS_FILE")) do
    local id, name = line:match("^(%S+) (%S+)$")
    users[#users + 1] = {id = id, name = name}
  end
  if scenario == "patch_member" then
    for line in io.lines(os.getenv("SG_POOL_FILE")) do pool[#pool + 1] = line end
  end
end

local function headers(body)
  local h = {["Authorization"] = "Bearer " .. os.getenv("SG_TOKEN")}
  if body then h["Content-Type"] = "application/scim+json; charset=utf-8" end
  return h
end

local function filter(name)
  return base .. "/Users?filter=userName+eq+%22" .. name:gsub("@", "%%40") .. "%22"
end

local PATCH = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":'

function request()
  n = n + 1
  -- A stride through the users that visits them all, in no index's order.
  local u = users[(n * 7919) % #users + 1]
  if scenario == "test_connection" then
    return wrk.format("GET", filter("nobody-" .. prefix .. "-" .. n .. "@contoso.com"), headers())
  elseif scenario == "get_filter" then
    return wrk.format("GET", filter(u.name), headers())
  elseif scenario == "get_id" then
    return wrk.format("GET", base .. "/Users/" .. u.id, headers())
  elseif scenario == "post_user" then
    local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User",' ..
      '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"externalId":"e' .. n ..
      '","userName":"new' .. prefix .. '-' .. n .. '@contoso.com","active":true,' ..
      '"emails":[{"primary":true,"type":"work","value":"new' .. prefix .. '-' .. n .. '@contoso.com"}],' ..
      '"name":{"familyName":"Jensen","givenName":"Barbara"},' ..
      '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Tour Operations"}}'
    return wrk.format("POST", base .. "/Users", headers(true), body)
  elseif scenario == "patch_user" then
    local body = PATCH .. '[{"op":"Replace","path":"displayName","value":"Name ' .. n .. '"},' ..
      '{"op":"Replace","path":"name.familyName","value":"Jensen ' .. n .. '"}]}'
    return wrk.format("PATCH", base .. "/Users/" .. u.id, headers(true), body)
  elseif scenario == "patch_member" then
    local k = math.floor((n - 1) / 2) % #pool + 1
    local body
    if n % 2 == 1 then
      body = PATCH .. '[{"op":"Add","path":"members","value":[{"value":"' .. pool[k] .. '"}]}]}'
    else
      body = PATCH .. '[{"op":"Remove","path":"members[value eq \\"' .. pool[k] .. '\\"]"}]}'
    end
    return wrk.format("PATCH", base .. "/Groups/" .. os.getenv("SG_GROUP_ID"), headers(true), body)
  elseif scenario == "page" then
    local start = (n * 7919) % math.max(#users - 100, 1) + 1
    return wrk.format("GET", base .. "/Users?startIndex=" .. start .. "&count=100", headers())
  end
  error("unknown SG_SCENARIO " .. tostring(scenario))
end

function response(status, headers, body)
  if status ~= (expected[scenario] or 200) then
    io.stderr:write("unexpected status " .. status .. ": " .. body:sub(1, 300) .. "\n")
  end
end
