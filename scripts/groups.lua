--[[
groups.lua: which groups take effect in the product.

  accept(group, ctx) runs on every create, replace and PATCH of a group and
  returns one of:
    "accept"             the group takes effect;
    "ignore", reason     the group is stored and answered like any other (so
                         Entra is satisfied and never retries), but it has no
                         effect; it is shown as ignored, with the reason, in
                         urn:scimgate:schemas:extension:policy:2.0:Group;
    "reject", reason     the request fails with 400. Entra escrows and retries
                         every non-2xx answer and may quarantine the job, so
                         prefer "ignore".

`group` has no members (they are never passed to scripts); on a PATCH,
ctx.members_added and ctx.members_removed list the member ids the request
changes (read-only), and ctx.members_cleared is true when it removes them all.

Why this default accepts every group: what Entra sends about a group (its
displayName, externalId = the Entra object id, and members) cannot tell a
"global" group from any other. A tenant narrows it in
<scripts>/tenants/<tenant-id>/groups.lua, for example:

  -- Only groups whose name follows the company's convention:
  function M.accept(group, ctx)
    if not group.displayName:match("^GG%-") then
      return "ignore", "only global groups (GG-...) are used"
    end
    return "accept"
  end

  -- Or by an attribute the admin maps in Entra into an extension, e.g. a
  -- custom "scope" attribute under urn:ietf:params:scim:schemas:extension:
  -- (the attribute must exist in the gateway's schemas/ to be kept).
]]

local M = {}

function M.accept(group, ctx)
  return "accept"
end

return M
