--[[
mapping.lua: how SCIM resources are shaped on their way in and out.

  inbound(resource, ctx)  runs on every POST, PUT and PATCH of a user or a
                          group, after the schema checks and before anything
                          is stored. Return the resource to store, or
                          nil, {status = 400, scimType = "invalidValue", detail = "..."}
                          to refuse the request with that SCIM error.
  outbound(resource, ctx) (optional) runs before a resource is returned.
                          Define it only when you need it: without it the
                          gateway streams stored resources without parsing them.

`resource` is the resource as a Lua table (attribute names in the schema's
spelling; extension attributes under their URN, e.g.
resource["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]).
JSON arrays carry a marker (scimgate.json.array) so that [] stays an array;
JSON null is scimgate.json.null. Group members are never passed in.

`ctx` is read-only: tenant, token_id (or admin), method, resource_type,
request_id, entra_mode ("default" or "aadOptscim062020"), settings.

What comes back from inbound is checked against the schema like a client's
body, so a mistake here is a 500 naming the hook, never a corrupt record.

A tenant can replace this file with <scripts>/tenants/<tenant-id>/mapping.lua.

This default keeps every value as Entra sent it, and gives users without a
displayName one made from their name parts.
]]

local M = {}

local function display_name(name)
  if type(name) ~= "table" then return nil end
  if type(name.formatted) == "string" and name.formatted ~= "" then return name.formatted end
  local parts = {}
  for _, k in ipairs{"honorificPrefix", "givenName", "middleName", "familyName", "honorificSuffix"} do
    if type(name[k]) == "string" and name[k] ~= "" then parts[#parts + 1] = name[k] end
  end
  if #parts == 0 then return nil end
  return table.concat(parts, " ")
end

function M.inbound(resource, ctx)
  if ctx.resource_type == "User" and resource.displayName == nil then
    resource.displayName = display_name(resource.name)
  end
  return resource
end

return M
