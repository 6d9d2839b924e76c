-- wrk script: PATCH adding one member to a group, Entra's default shape.
-- Environment: SG_TOKEN (secret token), SG_GROUP_PATH (/scim/v2/<t>/Groups/<id>),
-- SG_MEMBERS_FILE (one user id per line; each request adds the next one).
local ids = {}
local n = 0

function init(args)
  for line in io.lines(os.getenv("SG_MEMBERS_FILE")) do ids[#ids + 1] = line end
end

function request()
  n = n % #ids + 1
  local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":'
    .. '[{"op":"Add","path":"members","value":[{"$ref":null,"value":"' .. ids[n] .. '"}]}]}'
  return wrk.format("PATCH", os.getenv("SG_GROUP_PATH"), {
    ["Authorization"] = "Bearer " .. os.getenv("SG_TOKEN"),
    ["Content-Type"] = "application/scim+json; charset=utf-8",
  }, body)
end

function response(status, headers, body)
  if status ~= 204 then
    io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
  end
end
