--[[
invite.lua: how an approved invitation reaches the user.

  on_invite(user, invitation, ctx) runs on the gateway's outbox threads (never
  while a SCIM request waits) once an admin device has approved the
  invitation. Return:
    "ok"              delivered;
    "retry", reason   try again later (with back-off);
    "fail", reason    give up: the invitation ends Failed, the user goes back
                      to Staged, and the reason is on the user's timeline.
  An error in the script counts as "retry".

Delivery is at least once: a retry may repeat a delivery that in fact
arrived. invitation.key is the job's idempotency key; every delivery
function sends it (as the mail's Message-ID, the webhook's Idempotency-Key,
the spool file's name) so the receiver can drop a repeat.

`invitation` has: id, key, email (the address approved on the device),
expires, tenant, attempt (1 for the first try).

The delivery method comes from the tenant's settings (`scimgate settings`):
  invite_webhook_url               POST the invitation as JSON to this URL;
  invite_smtp_url, invite_from     send an email (smtp:// or smtps://);
  neither                          write it to the spool directory
                                   (<data>/spool), for another process to send.
]]

local M = {}

local function render(template, values)
  return (template:gsub("{{(%w+)}}", function(k) return tostring(values[k] or "") end))
end

local SUBJECT = "You are invited to {{product}}"
local TEXT = [[
Hello {{name}},

Your administrator has invited you to {{product}}.
Open the app and sign in with {{email}} to activate your account.
This invitation expires on {{expires}}.
]]

function M.on_invite(user, invitation, ctx)
  local s = ctx.settings or {}
  local values = {
    name = user.displayName or user.userName,
    email = invitation.email,
    expires = invitation.expires,
    product = s.product_name or "the product",
  }
  if s.invite_webhook_url then
    local status, body = scimgate.deliver.webhook{
      url = s.invite_webhook_url,
      idempotency_key = invitation.key,
      body = {type = "invitation", invitation = invitation, user = {id = user.id,
              userName = user.userName, displayName = user.displayName}},
    }
    if not status then return "retry", body end
    if status >= 200 and status < 300 then return "ok" end
    if status == 429 or status >= 500 then return "retry", "webhook answered " .. status end
    return "fail", "webhook answered " .. status
  end
  if s.invite_smtp_url then
    local ok, err = scimgate.deliver.smtp{
      url = s.invite_smtp_url,
      from = s.invite_from or "no-reply@localhost",
      to = invitation.email,
      subject = render(SUBJECT, values),
      text = render(TEXT, values),
      message_id = "<" .. invitation.key .. "@scimgate>",
    }
    if ok then return "ok" end
    return "retry", err
  end
  local ok, err = scimgate.deliver.spool{
    name = invitation.key .. ".json",
    content = scimgate.json.encode{subject = render(SUBJECT, values), text = render(TEXT, values),
                                   to = invitation.email, invitation = invitation},
  }
  if ok then return "ok" end
  return "retry", err
end

return M
