-- Hook scripts (DESIGN §4): the default scripts, editing a script under a
-- running gateway, a broken script, runaway scripts, the sandbox, refusals,
-- the group filter, per-tenant overrides, outbound mapping and lib modules.

local dir = tmpdir()
local function write(rel, text)
  os.execute("mkdir -p '" .. (dir .. "/" .. rel):match("(.*)/") .. "'")
  local f = assert(io.open(dir .. "/" .. rel, "w"))
  f:write(text)
  f:close()
end
local function copy_default(name)
  local f = assert(io.open(runner.dir .. "/../../scripts/" .. name))
  write(name, f:read("a"))
  f:close()
end
for _, n in ipairs{"mapping.lua", "groups.lua", "invite.lua"} do copy_default(n) end

local gw = gateway.start{scripts = dir,
                         config = {["limits.lua_instructions"] = "200000",
                                   ["limits.lua_memory"] = "8MiB"}}

local n = 0
local function new_user(extra)
  n = n + 1
  local body = {userName = "u" .. n .. "@x.com", name = {givenName = "Ada", familyName = "Lovelace"}}
  for k, v in pairs(extra or {}) do body[k] = v end
  return http.post(gw.url .. "/Users", body, gw:auth())
end

test("the default mapping derives displayName from the name parts", function()
  local r = new_user()
  expect.status(r, 201)
  expect.eq(r.json.displayName, "Ada Lovelace")
  r = new_user{displayName = "Countess"}
  expect.eq(r.json.displayName, "Countess", "a displayName that was sent is kept")
end)

test("readyz reports the scripts", function()
  local r = http.get(gw.base .. "/readyz")
  expect.status(r, 200)
  local names = {}
  for _, s in ipairs(r.json.scripts.scripts) do names[s.name] = s.loaded end
  expect.eq(names.mapping, true)
  expect.eq(names.groups, true)
end)

test("editing mapping.lua changes the next response, without a restart", function()
  write("mapping.lua", [[
    local M = {}
    function M.inbound(r, ctx) r.title = "mapped by v2"; return r end
    return M]])
  eventually(function() return new_user().json.title == "mapped by v2" end, "the new mapping")
end)

test("a broken script leaves the previous version serving and is reported", function()
  write("mapping.lua", "local M = {}\nfunction M.inbound(r, ctx)\n  return r\n-- no end\nreturn M\n")
  eventually(function()
    local r = http.get(gw.base .. "/readyz")
    for _, s in ipairs(r.json.scripts.scripts) do
      if s.name == "mapping" and s.error then return true end
    end
  end, "the error report")
  local r = http.get(gw.base .. "/readyz")
  local err
  for _, s in ipairs(r.json.scripts.scripts) do if s.name == "mapping" then err = s.error end end
  expect.match(err, "mapping%.lua:%d+:")
  expect.eq(r.status, 200, "a previous version serves, so the gateway stays ready")
  expect.eq(new_user().json.title, "mapped by v2", "the old version keeps serving")
end)

test("a runaway loop stops at the budget with a 500 naming the hook", function()
  write("mapping.lua", [[
    local M = {}
    function M.inbound(r, ctx) while true do end end
    return M]])
  eventually(function() return new_user().status == 500 end, "the looping script")
  local before = http.get(gw.url .. "/Users?count=0", gw:auth()).json.totalResults
  local r = new_user()
  expect.status(r, 500)
  expect.match(r.json.detail, "mapping%.inbound")
  expect.eq(r.json.detail:find("while", 1, true), nil, "no script internals in the answer")
  expect.eq(http.get(gw.url .. "/Users?count=0", gw:auth()).json.totalResults, before,
            "nothing written")
  expect.status(http.get(gw.url .. "/Users?count=1", gw:auth()), 200, "other requests are served")
end)

test("the memory cap holds", function()
  write("mapping.lua", [[
    local M = {}
    function M.inbound(r, ctx)
      local t, s = {}, "x"
      for i = 1, 100 do s = s .. s; t[i] = s end
      return r
    end
    return M]])
  eventually(function() return new_user().status == 500 end, "the memory bomb")
  expect.status(http.get(gw.url .. "/Users?count=1", gw:auth()), 200)
end)

test("the sandbox has no io, os, debug, load or string.dump", function()
  write("mapping.lua", [[
    local M = {}
    function M.inbound(r, ctx)
      local seen = {}
      for _, name in ipairs{"io", "os", "debug", "load", "loadfile", "dofile", "package",
                            "collectgarbage", "loadstring"} do
        if _ENV[name] ~= nil then seen[#seen + 1] = name end
      end
      if string.dump ~= nil or ("").dump ~= nil then seen[#seen + 1] = "dump" end
      r.nickName = "sandbox:" .. table.concat(seen, ",")
      r.title = cjson and scimgate and "libs ok" or "libs missing"
      return r
    end
    return M]])
  eventually(function() return (new_user().json.nickName or ""):match("^sandbox:") end, "v3")
  local r = new_user()
  expect.eq(r.json.nickName, "sandbox:")
  expect.eq(r.json.title, "libs ok")
end)

test("ctx is read-only and carries the request", function()
  write("mapping.lua", [[
    local M = {}
    function M.inbound(r, ctx)
      local ok = pcall(function() ctx.tenant = "other" end)
      r.nickName = (ok and "writable" or "read-only") .. "|" .. ctx.method .. "|" ..
                   ctx.resource_type .. "|" .. ctx.entra_mode .. "|" .. tostring(ctx.token_id ~= nil)
      return r
    end
    return M]])
  eventually(function() return (new_user().json.nickName or ""):match("|") end, "ctx script")
  expect.eq(new_user().json.nickName, "read-only|POST|User|default|true")
end)

test("a script can refuse with a SCIM error, and nothing is written", function()
  write("mapping.lua", [[
    local M = {}
    function M.inbound(r, ctx)
      if not r.userName:match("@allowed%.example$") then
        return nil, {status = 400, scimType = "invalidValue", detail = "only allowed.example users"}
      end
      return r
    end
    return M]])
  eventually(function() return new_user().status == 400 end, "the refusing script")
  local r = new_user()
  expect.eq(r.json.detail, "only allowed.example users")
  expect.eq(r.json.scimType, "invalidValue")
  r = http.post(gw.url .. "/Users", {userName = "a@allowed.example"}, gw:auth())
  expect.status(r, 201)
end)

test("the script's result is checked against the schema", function()
  write("mapping.lua", [[
    local M = {}
    function M.inbound(r, ctx) r.active = "perhaps"; return r end
    return M]])
  eventually(function() return new_user().status == 500 end, "the bad script")
  local r = new_user()
  expect.match(r.json.detail, "mapping%.inbound")
end)

test("groups.accept: ignore keeps the group inert; reject is a 400", function()
  write("mapping.lua", "return {}\n")
  write("groups.lua", [[
    local M = {}
    function M.accept(g, ctx)
      if g.displayName:match("^GG%-") then return "accept" end
      if g.displayName:match("^Bad") then return "reject", "bad names are refused" end
      return "ignore", "only global groups (GG-...)"
    end
    return M]])
  local POLICY = "urn:scimgate:schemas:extension:policy:2.0:Group"
  eventually(function()
    local r = http.post(gw.url .. "/Groups", {displayName = "Local " .. os.time() .. math.random()},
                        gw:auth())
    return r.status == 201 and r.json[POLICY] and r.json[POLICY].status == "ignored"
  end, "the group filter")
  local r = http.post(gw.url .. "/Groups", {displayName = "GG-Sales"}, gw:auth())
  expect.eq(r.json[POLICY], {status = "accepted"})
  r = http.post(gw.url .. "/Groups", {displayName = "Sales"}, gw:auth())
  expect.status(r, 201)
  expect.eq(r.json[POLICY], {status = "ignored", reason = "only global groups (GG-...)"})
  local id = r.json.id
  r = http.post(gw.url .. "/Groups", {displayName = "Bad group"}, gw:auth())
  expect.status(r, 400)
  expect.match(r.json.detail, "bad names are refused")
  -- a rename into the convention is re-evaluated
  r = http.patch(gw.url .. "/Groups/" .. id .. "?attributes=" .. POLICY, {Operations = json.array{
    {op = "Replace", path = "displayName", value = "GG-Sales-2"}}}, gw:auth())
  expect.status(r, 200)
  expect.eq(r.json[POLICY].status, "accepted")
  -- clients cannot set the policy themselves
  r = http.post(gw.url .. "/Groups", {displayName = "Forged", [POLICY] = {status = "accepted"}},
                gw:auth())
  expect.eq(r.json[POLICY].status, "ignored")
end)

test("groups.accept sees the membership change of a PATCH", function()
  write("groups.lua", [[
    local M = {}
    function M.accept(g, ctx)
      if ctx.members_added and #ctx.members_added > 1 then
        return "reject", "one member at a time"
      end
      return "accept"
    end
    return M]])
  local u1 = new_user().json.id
  local u2 = new_user().json.id
  local probe = http.post(gw.url .. "/Groups", {displayName = "P" .. os.time()}, gw:auth()).json
  eventually(function()
    local r = http.patch(gw.url .. "/Groups/" .. probe.id, {Operations = json.array{
      {op = "Add", path = "members", value = json.array{{value = u1}, {value = u2}}}}}, gw:auth())
    return r.status == 400
  end, "the membership-aware filter")
  local g = http.post(gw.url .. "/Groups", {displayName = "M" .. os.time()}, gw:auth()).json
  local r = http.patch(gw.url .. "/Groups/" .. g.id, {Operations = json.array{
    {op = "Add", path = "members", value = json.array{{value = u1}, {value = u2}}}}}, gw:auth())
  expect.status(r, 400)
  expect.match(r.json.detail, "one member at a time")
  expect.eq(http.get(gw.url .. "/Groups/" .. g.id, gw:auth()).json.members, json.array{},
            "a refused PATCH adds nobody")
  r = http.patch(gw.url .. "/Groups/" .. g.id, {Operations = json.array{
    {op = "Add", path = "members", value = json.array{{value = u1}}}}}, gw:auth())
  expect.status(r, 204)
  expect.eq(#http.get(gw.url .. "/Groups/" .. g.id, gw:auth()).json.members, 1)
end)

test("a tenant's own script replaces the default for that tenant only", function()
  local other = gw:run("tenant", "create", "tenant-two")
  local other_url = other.stdout:match("([^\n]+)\n?$")
  local other_id = other_url:match("([^/]+)$")
  local tok = gw:run("token", "generate", other_id).stdout:match("(sgt_[^\n]+)")
  write("mapping.lua", "local M = {}\nfunction M.inbound(r, c) r.title = 'default'; return r end\nreturn M\n")
  write("tenants/" .. other_id .. "/mapping.lua",
        "local M = {}\nfunction M.inbound(r, c) r.title = 'override'; return r end\nreturn M\n")
  eventually(function()
    local r = http.post(other_url .. "/Users", {userName = "o" .. os.clock() .. "@x.com"},
                        {Authorization = "Bearer " .. tok})
    return r.json.title == "override"
  end, "the override")
  eventually(function() return new_user().json.title == "default" end, "the default")
end)

test("outbound shapes what is returned; lib modules load with require", function()
  write("lib/shout.lua", "local M = {}\nfunction M.up(s) return s:upper() end\nreturn M\n")
  write("mapping.lua", [[
    local shout = require("shout")
    local M = {}
    function M.outbound(r, ctx)
      if r.userName then r.nickName = shout.up(r.userName) end
      return r
    end
    return M]])
  local id = new_user().json.id
  eventually(function()
    return (http.get(gw.url .. "/Users/" .. id, gw:auth()).json.nickName or ""):match("@X%.COM")
  end, "the outbound mapping")
  local r = http.get(gw.url .. "/Users?filter=id+eq+%22" .. id .. "%22", gw:auth())
  expect.match(r.json.Resources[1].nickName, "@X%.COM")
end)
