-- wrk script: an Entra-shaped mix of requests, in the proportions of a
-- provisioning cycle: of every 20 requests, 8 matching GETs (userName eq,
-- half for users that exist), 5 user creations, 5 user PATCHes (Entra's
-- Replace of displayName), 2 group PATCHes adding a member.
-- Environment: SG_TOKEN, SG_BASE_PATH (/scim/v2/<tenant>), SG_USERS_FILE
-- (lines "<id> <userName>"), SG_GROUP_ID.
local users = {}
local n, created = 0, 0
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1000000))
local PLAN = {"get", "post", "patch", "get", "post", "get", "patch", "group", "get", "post",
              "get", "patch", "get", "post", "patch", "get", "group", "post", "patch", "get"}

function init(args)
  for line in io.lines(os.getenv("SG_USERS_FILE")) do
    local id, name = line:match("^(%S+) (%S+)$")
    users[#users + 1] = {id = id, name = name}
  end
end

local function headers(body)
  local h = {["Authorization"] = "Bearer " .. os.getenv("SG_TOKEN")}
  if body then h["Content-Type"] = "application/scim+json; charset=utf-8" end
  return h
end

local base = os.getenv("SG_BASE_PATH")

function request()
  n = n + 1
  local kind = PLAN[(n - 1) % #PLAN + 1]
  local u = users[(n * 7919) % #users + 1]
  if kind == "get" then
    local name = (n % 2 == 0) and u.name or ("nobody-" .. n .. "@contoso.com")
    return wrk.format("GET", base .. "/Users?filter=userName+eq+%22" .. name:gsub("@", "%%40") .. "%22",
                      headers())
  elseif kind == "post" then
    created = created + 1
    local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"externalId":"x' .. created ..
      '","userName":"mix' .. prefix .. '-' .. created .. '@contoso.com","active":true,' ..
      '"emails":[{"primary":true,"type":"work","value":"mix' .. created .. '@contoso.com"}],' ..
      '"name":{"familyName":"Jensen","givenName":"Barbara"}}'
    return wrk.format("POST", base .. "/Users", headers(true), body)
  elseif kind == "patch" then
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":' ..
      '[{"op":"Replace","path":"displayName","value":"Name ' .. n .. '"}]}'
    return wrk.format("PATCH", base .. "/Users/" .. u.id, headers(true), body)
  end
  local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":' ..
    '[{"op":"Add","path":"members","value":[{"value":"' .. u.id .. '"}]}]}'
  return wrk.format("PATCH", base .. "/Groups/" .. os.getenv("SG_GROUP_ID"), headers(true), body)
end

function response(status, headers, body)
  if status >= 300 then io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n") end
end
