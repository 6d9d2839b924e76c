-- wrk script: POST a new user per request (Entra's default body, unique userName).
-- Environment: SG_TOKEN, SG_USERS_PATH (/scim/v2/<tenant>/Users).
local n = 0
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1000000))

function request()
  n = n + 1
  local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User",' ..
    '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"externalId":"e' .. n ..
    '","userName":"u' .. prefix .. '-' .. n .. '@contoso.com","active":true,' ..
    '"emails":[{"primary":true,"type":"work","value":"u' .. n .. '@contoso.com"}],' ..
    '"name":{"familyName":"Jensen","givenName":"Barbara"},' ..
    '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Tour Operations"}}'
  return wrk.format("POST", os.getenv("SG_USERS_PATH"), {
    ["Authorization"] = "Bearer " .. os.getenv("SG_TOKEN"),
    ["Content-Type"] = "application/scim+json; charset=utf-8",
  }, body)
end

function response(status, headers, body)
  if status ~= 201 then io.stderr:write("unexpected status " .. status .. "\n") end
end
