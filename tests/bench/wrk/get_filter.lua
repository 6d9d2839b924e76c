-- wrk script: Entra's matching GET (userName eq) for users that exist.
-- Environment: SG_TOKEN, SG_USERS_PATH, SG_NAMES_FILE (one userName per line).
local names = {}
local n = 0

function init(args)
  for line in io.lines(os.getenv("SG_NAMES_FILE")) do names[#names + 1] = line end
end

function request()
  n = n % #names + 1
  local q = "?filter=userName+eq+%22" .. names[n]:gsub("@", "%%40") .. "%22"
  return wrk.format("GET", os.getenv("SG_USERS_PATH") .. q, {
    ["Authorization"] = "Bearer " .. os.getenv("SG_TOKEN"),
  })
end

function response(status, headers, body)
  if status ~= 200 then io.stderr:write("unexpected status " .. status .. "\n") end
end
