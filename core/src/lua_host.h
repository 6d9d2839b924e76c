/*
** Lua hook scripts (DESIGN §4): the sandbox, the per-thread states, the
** script set and its reloads, and the hook calls.
**
** Scripts live in the `scripts` directory: mapping.lua, groups.lua,
** invite.lua, modules under lib/ (for `require`), and per-tenant overrides
** in tenants/<tenant-id>/<name>.lua, which replace the default file of the
** same name for that tenant.
**
** The script set is an immutable snapshot with a generation number. A
** watcher thread looks for changed files once a second (and SIGHUP or an
** admin call forces a look); a changed file is compiled and run in a
** scratch sandbox first, and only a file that loads cleanly replaces the
** version being served; a broken one is reported (file, line, message) and
** the previous version keeps serving. Each thread keeps its own lua_State
** and rebuilds it when it sees a new generation, at the start of a request,
** so a request never mixes two versions.
**
** Sandbox: only string (without dump), table, math, utf8, cjson and the
** `scimgate` module, the allow-listed base functions, `print` to the log,
** and `require` for modules in lib/; chunks load as text only; every hook
** call has an instruction budget and every state a memory cap.
*/
#ifndef SG_LUA_HOST_H
#define SG_LUA_HOST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "scimgate/error.h"

typedef struct sg_lua sg_lua; /* one thread's runtime */

typedef struct sg_lua_config {
    const char *dir;       /* scripts directory                         */
    const char *spool_dir; /* for scimgate.deliver.spool                */
    int64_t instructions;  /* per hook call (limits.lua_instructions)   */
    int64_t memory;        /* per state, bytes (limits.lua_memory)      */
    int json_depth;        /* limits.json_depth                         */
} sg_lua_config;

/* Load the script set and start the watcher. A script that fails to load
 * is reported (and makes /readyz say so); its hooks fail closed. */
bool sg_scripts_start(const sg_lua_config *cfg, char *err, size_t errlen);
void sg_scripts_stop(void);
/* Look for changed files now (SIGHUP, admin call). Returns the generation
 * now serving. */
uint64_t sg_scripts_reload(void);
/* JSON object describing every script: path, version, loaded, error. */
void sg_scripts_status(sg_buf *out);
/* True when every script present loaded at least once (readiness). */
bool sg_scripts_ready(void);

/* Per-thread runtime; the state is built on first use. */
sg_lua *sg_lua_new(void);
void sg_lua_free(sg_lua *L);
/* Call at the start of each request: the next hook call picks up a new
 * generation if there is one, and the request keeps it to the end. */
void sg_lua_request_start(sg_lua *L);

/* What hooks see as `ctx` (read-only). */
typedef struct sg_hook_ctx {
    const char *tenant;
    const char *token_id; /* NULL for an admin action */
    const char *method;
    const char *resource_type;
    const char *request_id;
    const char *entra_mode;        /* "default" or "aadOptscim062020" */
    const json_t *members_added;   /* groups.accept on PATCH: ids, or NULL */
    const json_t *members_removed; /* ids, or NULL */
    bool members_cleared;
    const json_t *settings; /* the tenant's settings, or NULL */
} sg_hook_ctx;

typedef enum sg_hook {
    SG_HOOK_INBOUND = 0,  /* mapping.inbound  */
    SG_HOOK_OUTBOUND = 1, /* mapping.outbound */
    SG_HOOK_ACCEPT = 2,   /* groups.accept    */
    SG_HOOK_INVITE = 3,   /* invite.on_invite */
    SG_HOOK_CHANGES = 4,  /* changes.on_changes */
} sg_hook;

/* Does the tenant's script set define this hook? (For skipping work.) */
bool sg_lua_has_hook(sg_lua *L, const char *tenant, sg_hook hook);

/*
** mapping.inbound / mapping.outbound: replace *resource with the hook's
** result (a new reference; the old one is released). Without the hook,
** *resource is unchanged. A hook that answers `nil, {status, scimType,
** detail}` gives SG_EINVALID (or the status it names) with that detail; a
** failing script gives SG_ESCRIPT with a detail naming the hook.
*/
sg_status sg_lua_map(sg_lua *L, sg_hook hook, const sg_hook_ctx *ctx, json_t **resource,
                     sg_error *err);

typedef enum sg_verdict { SG_ACCEPT = 0, SG_IGNORE = 1, SG_REJECT = 2 } sg_verdict;

/* groups.accept: the verdict and its reason (reason[256], "" when none).
 * Without the hook: SG_ACCEPT. */
sg_status sg_lua_accept(sg_lua *L, const sg_hook_ctx *ctx, const json_t *group, sg_verdict *verdict,
                        char *reason, sg_error *err);

typedef enum sg_delivery {
    SG_DELIVERY_OK = 0,
    SG_DELIVERY_RETRY = 1,
    SG_DELIVERY_FAIL = 2
} sg_delivery;

/*
** The outbox's hooks (outbox threads only: delivery is allowed during
** them), called with `nargs` JSON arguments and then ctx:
**   invite.on_invite(user, invitation, ctx)
**   changes.on_changes(batch, ctx)
** Each answers "ok", "retry", reason or "fail", reason: *result, and the
** reason in reason[256]. A missing hook, a script error or another answer
** counts as a retry (DESIGN §4), with the reason saying why.
*/
sg_status sg_lua_outbox_hook(sg_lua *L, sg_hook hook, const sg_hook_ctx *ctx,
                             const json_t *const *args, int nargs, sg_delivery *result,
                             char *reason, sg_error *err);

#endif
