/*
** The admin API, /admin/v1 (JSON, on admin_listen; DESIGN §2, §5).
**
** Principals, checked by the core: an operator (every tenant) and a tenant
** admin, by an admin token "Authorization: Bearer sga_<id>.<secret>" or, for
** the portal's pages, by the session cookie of a password sign-in (below;
** every call but GET and HEAD then also needs the header X-CSRF-Token with
** the session's token, else 403); an admin device, by its device token
** "sgd_<id>.<secret>", which may only list and approve its tenant's
** invitations. Every call names its tenant ({T}: the tenant id) and the
** principal must be allowed on it (else 403); an unknown object is 404.
** Errors are {"status": N, "detail": "..."}. Request bodies are JSON
** objects.
**
** Portal sessions (portal.h), no credential needed to sign in:
**   POST /admin/v1/session   {"login", "password", "tenant"} (tenant: its
**        id or unique name; absent or null: an operator). 201 and the
**        cookie scimgate_session (HttpOnly, SameSite=Strict, Path=/admin,
**        Secure over HTTPS) with the session, as GET answers it; 401 when
**        the login, password or tenant is wrong; 415 without Content-Type
**        application/json; 429 with Retry-After after too many failures.
**   GET  /admin/v1/session   {"login", "tenant" (null for an operator),
**        "tenantName", "tenantUrl", "operator", "csrfToken", "expires",
**        "idleTimeout" (seconds)}; 401 when not signed in
**   DELETE /admin/v1/session sign out (the session ends on every node): 204
**        and the cookie cleared
**
** Any admin (an operator every tenant, a tenant admin its own):
**   GET  /admin/v1/tenants                  {"tenants": [{"id", "name",
**        "created", "disabled", "url" (the tenant URL)}]}
**
** Operator only:
**   GET  /admin/v1/scripts                  hook scripts: version, last error
**   POST /admin/v1/scripts/reload           look for changed scripts now
**
** Tenant admin (or operator):
**   GET  /admin/v1/{T}/users[?state=S&q=PREFIX&start=N&count=N]
**        {"total", "users": [{"id", "userName", "displayName", "state",
**        "active", "address", "version", "detached", "detachReason"}]}
**        in userName order; q keeps the userNames that start with PREFIX
**        (case-insensitive, ≤ 256 bytes; an index range in storage); start
**        is 1-based (default 1), count ≤ 1000.
**   GET  /admin/v1/{T}/groups[?q=PREFIX&start=N&count=N]
**        {"total", "groups": [{"id", "displayName", "externalId", "policy"
**        ("accepted" or "ignored": what groups.accept decided at the last
**        write), "reason" (or null), "created", "modified"}]} in
**        displayName order; q as for users, on displayName.
**   GET  /admin/v1/{T}/users/{id}          one user, as above, with "body"
**        (the SCIM resource) and "invitations" (its jobs, newest first)
**   POST /admin/v1/{T}/invitations         {"users": [id, ...]} (≤ 1000)
**        Each Staged user gets an invitation awaiting approval and becomes
**        PendingApproval; one transaction. 200 {"invitations": [{"user",
**        "job", "address", "expires"}], "refused": [{"user", "detail"}]}
**        (a user not Staged, without an address, detached, or unknown).
**   POST /admin/v1/{T}/users/{id}/resend   a new invitation for an Invited
**        or PendingApproval user (open ones are cancelled): 200 {"job"}
**   POST /admin/v1/{T}/jobs/{job}/expire   an open invitation ends Expired;
**        the user goes back to Staged: 200 {"job", "status"}
**   GET  /admin/v1/{T}/jobs[?status=S&user=U]  {"jobs": [job...]} newest
**        first; a job is {"id", "key" (the idempotency key every delivery
**        attempt carries), "user", "version", "address", "status",
**        "created", "expires", "approved", "approvedBy", "attempts",
**        "nextAttempt", "lastError"} (times as RFC 3339 text, or null)
**   POST /admin/v1/{T}/users/{id}/activate     Invited -> Active
**   POST /admin/v1/{T}/users/{id}/restore      a deleted user back within
**        the grace period (409 when its userName is taken by then)
**   POST /admin/v1/{T}/users/{id}/detach       {"reason": "..."} (required)
**   POST /admin/v1/{T}/users/{id}/attach
**        each answers 200 with the user as in /users/{id}.
**   GET  /admin/v1/{T}/users/{id}/timeline[?limit=N]
**        {"events": [event...]} oldest first; an event is {"cursor",
**        "time", "type", "subject", "actor", "requestId", "data"}
**   GET  /admin/v1/{T}/changes[?since=CURSOR&limit=N]
**        the change feed (DESIGN §2): {"events": [event...], "cursor"}
**        in commit order; "cursor" is the last event's (or `since` when
**        there is none), to pass as `since` next time. limit ≤ 1000.
**   GET  /admin/v1/{T}/events[?since=CURSOR&type=T1,T2&subject=ID&from=TIME&limit=N]
**        the whole audit trail (change feed, invitations, settings, sign-ins,
**        refused SCIM writes...): {"events": [event...], "cursor"} in commit
**        order, as /changes; type: at most 16 exact types; from: RFC 3339.
**   GET  /admin/v1/{T}/scripts              the hook scripts that apply to
**        the tenant (shared ones and its own tenants/<T>/ overrides):
**        {"generation", "scripts": [{"name", "version", "loaded",
**        "error"?}]} (no file paths)
**   GET  /admin/v1/{T}/health
**        {"lastRequest", "lastAddress" (the SCIM tokens' last use, every
**        node), "liveTokens", "refusedWrites24h" (scim.refused events),
**        "lastHour": {"requests", "errors", "unauthorized",
**        "unauthorizedPeakPerMinute", "minutes": [{"time", "requests",
**        "errors", "unauthorized"}]}}: lastHour counts the SCIM requests
**        this node answered (health.h); errors are 5xx and 4xx but 401/404.
**   GET  /admin/v1/{T}/settings             {"settings": {key: value}}
**   PATCH /admin/v1/{T}/settings            {key: "value" | null, ...}
**        (null removes), 200 with the settings
**   GET  /admin/v1/{T}/alerts               {"alerts": [{"type", "detail"}]}
**   DELETE /admin/v1/{T}/alerts/deletion_spike   resume tombstone purges
**   GET  /admin/v1/{T}/tokens               SCIM tokens: {"tokens": [{"id",
**        "created", "expires", "revoked", "lastUsed", "lastAddress"}]}
**   POST /admin/v1/{T}/tokens               {"expiresOldIn": "1h"} optional:
**        201 {"id", "token"} (the secret, shown once)
**   DELETE /admin/v1/{T}/tokens/{id}        revoke at once (204)
**   POST /admin/v1/{T}/devices              {"name", "publicKey"} (the raw
**        32-byte Ed25519 key, base64): 201 {"id", "token"} (the device
**        token "sgd_...", shown once)
**   GET  /admin/v1/{T}/devices              {"devices": [{"id", "name",
**        "created", "revoked"}]}
**   DELETE /admin/v1/{T}/devices/{id}       revoke the device (204)
**
** Admin device (a tenant admin may list too):
**   GET  /admin/v1/{T}/approvals[?wait=SECONDS]
**        {"approvals": [{"job", "user", "version", "address", "expires",
**        "status", "toSign"}]}: the invitations awaiting approval. With wait (≤ 60)
**        and nothing pending, the answer waits until one arrives or the
**        time is up (long-poll; at most limits.longpoll at once).
**   POST /admin/v1/{T}/approvals  (device only)
**        {"approvals": [{"job", "signature"}]}: signature is the device's
**        Ed25519 signature over the job's toSign text, base64 (either
**        alphabet, padding optional; the same for publicKey). 200
**        {"approved": [job id...], "refused": [{"job", "detail"}]}.
*/
#ifndef SG_ADMIN_H
#define SG_ADMIN_H

#include "scim.h"
#include "tenants.h" /* the token prefixes */

void sg_admin_handle(sg_worker *w, sg_request *req, sg_response *res);

/* Does the request carry an operator's admin token? Else false with the
 * 401/403 (or 503) answer in `res` (for /metrics). */
bool sg_admin_operator(sg_worker *w, sg_request *req, sg_response *res);

#endif
