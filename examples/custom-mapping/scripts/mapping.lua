--[[
A custom mapping for one company (see README.md next to this folder):

  1. userName is the user's work email address, lower-cased, whatever
     Entra sent as userName (its UPN);
  2. the Entra "department" (mapped by default to the enterprise extension's
     department) decides the product role: IT is "admin", everyone else
     "member";
  3. only people with an address in the company's domain are accepted;
     anyone else is refused with a clear 400.
]]

local ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
local DOMAIN = "contoso.com"
local ADMIN_DEPARTMENTS = {IT = true, ["Information Technology"] = true}

local M = {}

local function refuse(detail)
  return nil, {status = 400, scimType = "invalidValue", detail = detail}
end

function M.inbound(user, ctx)
  if ctx.resource_type ~= "User" then return user end

  local email = scimgate.get(user, 'emails[type eq "work"].value') or scimgate.primary_email(user)
  if email then user.userName = email:lower() end

  local domain = user.userName:match("@([^@]+)$")
  if not domain or domain:lower() ~= DOMAIN then
    return refuse(("only @%s addresses can be provisioned; %s is not one"):format(DOMAIN,
                  user.userName))
  end

  local ent = user[ENTERPRISE]
  local department = ent and ent.department
  user.roles = scimgate.json.array{
    {value = ADMIN_DEPARTMENTS[department] and "admin" or "member", primary = true},
  }
  return user
end

return M
