--[[
changes.lua: how the change feed reaches the product behind the gateway.

  on_changes(batch, ctx) runs on the gateway's outbox threads for each tenant
  whose settings name a `changes_webhook_url`, with the next events of the
  tenant's change feed (DESIGN §2: user.created, user.updated,
  user.suspended, user.reactivated, user.deleted, user.undeleted,
  user.state_changed, group.created, group.updated, group.deleted,
  group.members_added, group.members_removed), in commit order, at most 100
  at a time. Return:
    "ok"              delivered: the tenant's cursor moves past the batch;
    "retry", reason   try the same batch again later (with back-off).
  "fail" is retried too (a change feed must not lose events), and so is an
  error in the script.

`batch` has: tenant, key (made of the batch's bounds: the same events give
the same key), cursor (the last event's), and events, each {cursor, time,
type, subject, actor, requestId, data}. Delivery is at least once: a
receiver drops an event whose cursor it has seen, or a batch whose key it
has seen.

The default below POSTs the batch as JSON to changes_webhook_url with the
key as Idempotency-Key; any 2xx is "ok".
]]

local M = {}

function M.on_changes(batch, ctx)
  local url = ctx.settings.changes_webhook_url
  if not url then return "retry", "no changes_webhook_url" end
  local status, body = scimgate.deliver.webhook{
    url = url,
    idempotency_key = batch.key,
    body = {type = "changes", tenant = batch.tenant, cursor = batch.cursor, events = batch.events},
  }
  if not status then return "retry", body end
  if status >= 200 and status < 300 then return "ok" end
  return "retry", "webhook answered " .. status
end

return M
