/*
** storage_template: a storage plugin that does nothing yet, to copy.
**
** It compiles, loads, registers itself and answers SG_ENOTIMPL to every
** call, with a detail naming the method. Turn it into a real store:
**
**  1. Copy this folder to plugins/storage_NAME (NAME: lower case, e.g.
**     "mysql"); rename template.c to NAME.c.
**  2. Rename: PLUGIN_NAME below to "NAME", the log tag to "storage_NAME",
**     and the `tpl_` prefix if you like. The shared object must be called
**     sg_storage_NAME.so: the gateway loads it for `storage = NAME`, and
**     hands it the `storage.KEY = value` options without the prefix.
**  3. Add a line to the top-level CMakeLists.txt, next to the others:
**         sg_plugin(storage_NAME storage NAME plugins/storage_NAME/NAME.c)
**     plus target_link_libraries(storage_NAME PRIVATE ...) for your client
**     library. Plugins are built with hidden visibility: only
**     sg_plugin_init (marked SG_PLUGIN_EXPORT) is exported.
**  4. Implement, in this order, running the contract suite as you go:
**       open/close       options (refuse unknown ones with SG_EINVALID),
**                        versioned schema migrations, safe when two
**                        processes open the store at once;
**       connect/disconnect  one connection per worker thread;
**       begin/commit/rollback  SG_TXN_WRITE takes the write lock at once;
**                        rollback is a no-op outside a transaction;
**       tenants, tokens  tokens of every kind; an operator's admin
**                        token and an operator admin have no tenant;
**       admins           login unique per tenant and among operators;
**       resources        create/get/replace/remove, keys, uniqueness
**                        (SG_ECONFLICT, scim_type "uniqueness");
**       search           compile what you can of the filter AST, return
**                        the rest as `residual` exactly as storage.h says
**                        (an SQL store: plugins/common/sqlfilter.h);
**       memberships      rows, O(k) in the ids given, never a group scan;
**       lifecycle        devices, settings, events (seq grows in commit
**                        order across the store), tombstones, the outbox
**                        (job_claim: one owner per job, on any node);
**       sessions         the portal's sign-ins (ABI 1.1): stored hashed,
**                        read by id in any tenant, purged when expired.
**  5. Run the contract suite against it:
**         SG_CONTRACT_PLUGIN=build/plugins/sg_storage_NAME.so build/tests/contract_tests
**     (options for the store, if it needs any: SG_CONTRACT_OPTS="k=v;k=v").
**     plugins/storage_sqlite/sqlite.c is a complete example.
**
** Rules from storage.h and host.h that every method follows:
**   - Threading: open/close run once on the main thread. connect and
**     disconnect may be called from any thread, concurrently: an instance
**     must be safe for that (keep it read-only after open). A connection is
**     used by one thread at a time and released on the thread that made it.
**   - Ownership: every input is borrowed for the duration of the call; copy
**     what you keep. Pointers handed to callbacks (rows, tenants, tokens,
**     members) are valid only inside the callback. Text for the caller goes
**     into its sg_buf through host->buf_append. Allocate with host->alloc /
**     host->free, so the gateway can account for memory.
**   - Errors: return an sg_status and fill the caller's sg_error with
**     sg_error_set; the detail is shown to clients, so never put SQL, file
**     paths or secrets in it (log those with host->log instead, never a
**     token).
**   - Tenancy: every tenant-scoped call names the tenant; an id of another
**     tenant must miss (SG_ENOTFOUND / no row). The contract suite checks.
**   - Values: compare the folded forms the core hands over (sg_key.folded,
**     filter literals); never fold by yourself.
*/
#include <stddef.h>
#include <stdint.h>

#include "scimgate/plugin.h"

#define PLUGIN_NAME "template"
#define LOG_TAG     "storage_template"

/* The instance: options and whatever the store needs (a pool, a path). */
struct sg_storage {
    const sg_host *host;
};

/* One worker thread's connection. */
struct sg_conn {
    sg_storage *st;
};

static sg_status notyet(sg_error *err, const char *method)
{
    return sg_error_set(err, SG_ENOTIMPL, NULL, "storage plugin \"%s\": %s is not implemented",
                        PLUGIN_NAME, method);
}

/* ---- step 4a: instance ----------------------------------------------------------- */

static sg_status tpl_open(const sg_host *host, const char *data_dir, const sg_kv *opts,
                          size_t nopts, sg_storage **out, sg_error *err)
{
    *out = NULL;
    host->log(SG_LOG_ERROR, LOG_TAG, "this is the template plugin: it stores nothing");
    return notyet(err, "open");
}

static void tpl_close(sg_storage *st)
{
}

/* ---- step 4b: connections ---------------------------------------------------------- */

static sg_status tpl_connect(sg_storage *st, sg_conn **out, sg_error *err)
{
    *out = NULL;
    return notyet(err, "connect");
}

static void tpl_disconnect(sg_conn *c)
{
}

/* ---- step 4c: transactions --------------------------------------------------------- */

static sg_status tpl_begin(sg_conn *c, sg_txn_mode mode, sg_error *err)
{
    return notyet(err, "begin");
}

static sg_status tpl_commit(sg_conn *c, sg_error *err)
{
    return notyet(err, "commit");
}

static void tpl_rollback(sg_conn *c)
{
}

/* ---- step 4d: tenants ---------------------------------------------------------------- */

static sg_status tpl_tenant_create(sg_conn *c, const sg_tenant *t, sg_error *err)
{
    return notyet(err, "tenant_create");
}

static sg_status tpl_tenant_get(sg_conn *c, const char *id_or_name, sg_tenant_fn fn, void *ud,
                                sg_error *err)
{
    return notyet(err, "tenant_get");
}

static sg_status tpl_tenant_list(sg_conn *c, sg_tenant_fn fn, void *ud, sg_error *err)
{
    return notyet(err, "tenant_list");
}

static sg_status tpl_tenant_set_disabled(sg_conn *c, const char *id, int disabled, sg_error *err)
{
    return notyet(err, "tenant_set_disabled");
}

/* ---- step 4e: tokens ------------------------------------------------------------------ */

static sg_status tpl_token_create(sg_conn *c, const sg_token *t, sg_error *err)
{
    return notyet(err, "token_create");
}

static sg_status tpl_token_info(sg_conn *c, const char *id, sg_token_info *out, sg_error *err)
{
    return notyet(err, "token_info");
}

static sg_status tpl_token_list(sg_conn *c, const char *tenant, sg_token_fn fn, void *ud,
                                sg_error *err)
{
    return notyet(err, "token_list");
}

static sg_status tpl_token_update(sg_conn *c, const char *tenant, const char *id,
                                  int64_t expires_ms, int64_t revoked_ms, sg_error *err)
{
    return notyet(err, "token_update");
}

static sg_status tpl_token_touch(sg_conn *c, const char *id, int64_t when_ms, const char *addr,
                                 sg_error *err)
{
    return notyet(err, "token_touch");
}

/* ---- step 4f: resources ---------------------------------------------------------------- */

static sg_status tpl_create(sg_conn *c, const char *tenant, const sg_resource *r, sg_error *err)
{
    return notyet(err, "create");
}

static sg_status tpl_get(sg_conn *c, const char *tenant, sg_rtype type, const char *id,
                         sg_row_fn fn, void *ud, sg_error *err)
{
    return notyet(err, "get");
}

static sg_status tpl_replace(sg_conn *c, const char *tenant, const sg_resource *r,
                             int64_t expected_version, sg_error *err)
{
    return notyet(err, "replace");
}

static sg_status tpl_remove(sg_conn *c, const char *tenant, sg_rtype type, const char *id,
                            sg_error *err)
{
    return notyet(err, "remove");
}

/* ---- step 4g: search ---------------------------------------------------------------- */

static sg_status tpl_search(sg_conn *c, const char *tenant, const sg_query *q, sg_row_fn fn,
                            void *ud, sg_search_out *out, sg_error *err)
{
    return notyet(err, "search");
}

/* ---- step 4h: memberships ------------------------------------------------------------ */

static sg_status tpl_members_add(sg_conn *c, const char *tenant, const char *group_id,
                                 const sg_member *m, size_t n, sg_error *err)
{
    return notyet(err, "members_add");
}

static sg_status tpl_members_remove(sg_conn *c, const char *tenant, const char *group_id,
                                    const char *const *ids, size_t n, sg_error *err)
{
    return notyet(err, "members_remove");
}

static sg_status tpl_members_clear(sg_conn *c, const char *tenant, const char *group_id,
                                   sg_error *err)
{
    return notyet(err, "members_clear");
}

static sg_status tpl_members_list(sg_conn *c, const char *tenant, const char *group_id,
                                  sg_member_fn fn, void *ud, sg_error *err)
{
    return notyet(err, "members_list");
}

static sg_status tpl_resolve(sg_conn *c, const char *tenant, const char *const *ids, size_t n,
                             sg_rtype *types, sg_error *err)
{
    return notyet(err, "resolve");
}

/* ---- step 4i: admins ------------------------------------------------------------------ */

static sg_status tpl_admin_create(sg_conn *c, const sg_admin *a, sg_error *err)
{
    return notyet(err, "admin_create");
}

static sg_status tpl_admin_get(sg_conn *c, const char *tenant, const char *login, sg_admin_fn fn,
                               void *ud, sg_error *err)
{
    return notyet(err, "admin_get");
}

/* ---- step 4j: the user lifecycle ------------------------------------------------------- */

static sg_status tpl_device_create(sg_conn *c, const sg_device *d, sg_error *err)
{
    return notyet(err, "device_create");
}

static sg_status tpl_device_get(sg_conn *c, const char *tenant, const char *id, sg_device_fn fn,
                                void *ud, sg_error *err)
{
    return notyet(err, "device_get");
}

static sg_status tpl_device_list(sg_conn *c, const char *tenant, sg_device_fn fn, void *ud,
                                 sg_error *err)
{
    return notyet(err, "device_list");
}

static sg_status tpl_device_revoke(sg_conn *c, const char *tenant, const char *id, int64_t when_ms,
                                   sg_error *err)
{
    return notyet(err, "device_revoke");
}

static sg_status tpl_setting_set(sg_conn *c, const char *tenant, const char *key, const char *value,
                                 sg_error *err)
{
    return notyet(err, "setting_set");
}

static sg_status tpl_settings_list(sg_conn *c, const char *tenant, sg_setting_fn fn, void *ud,
                                   sg_error *err)
{
    return notyet(err, "settings_list");
}

static sg_status tpl_event_append(sg_conn *c, const char *tenant, const sg_event *e, int64_t *seq,
                                  sg_error *err)
{
    return notyet(err, "event_append");
}

static sg_status tpl_event_list(sg_conn *c, const char *tenant, const sg_event_query *q,
                                sg_event_fn fn, void *ud, sg_error *err)
{
    return notyet(err, "event_list");
}

static sg_status tpl_event_purge(sg_conn *c, int64_t before_ms, int64_t keep_changes_ms,
                                 int64_t *removed, sg_error *err)
{
    return notyet(err, "event_purge");
}

static sg_status tpl_tombstone_put(sg_conn *c, const char *tenant, const sg_resource *r,
                                   int64_t deleted_ms, int64_t purge_after_ms, sg_error *err)
{
    return notyet(err, "tombstone_put");
}

static sg_status tpl_tombstone_get(sg_conn *c, const char *tenant, sg_rtype type, const char *id,
                                   sg_row_fn fn, void *ud, sg_error *err)
{
    return notyet(err, "tombstone_get");
}

static sg_status tpl_tombstone_remove(sg_conn *c, const char *tenant, const char *id, sg_error *err)
{
    return notyet(err, "tombstone_remove");
}

static sg_status tpl_tombstone_purge(sg_conn *c, const char *tenant, int64_t now_ms,
                                     int64_t *removed, sg_error *err)
{
    return notyet(err, "tombstone_purge");
}

static sg_status tpl_job_create(sg_conn *c, const sg_job *j, sg_error *err)
{
    return notyet(err, "job_create");
}

static sg_status tpl_job_get(sg_conn *c, const char *tenant, const char *id, sg_job_fn fn, void *ud,
                             sg_error *err)
{
    return notyet(err, "job_get");
}

static sg_status tpl_job_update(sg_conn *c, const sg_job *j, int64_t expected_updated_ms,
                                sg_error *err)
{
    return notyet(err, "job_update");
}

static sg_status tpl_job_list(sg_conn *c, const char *tenant, const char *status,
                              const char *user_id, sg_job_fn fn, void *ud, sg_error *err)
{
    return notyet(err, "job_list");
}

static sg_status tpl_job_claim(sg_conn *c, const char *owner, int64_t now_ms, int64_t lease_ms,
                               sg_job_fn fn, void *ud, sg_error *err)
{
    return notyet(err, "job_claim");
}

static sg_status tpl_job_expire(sg_conn *c, int64_t now_ms, sg_job_fn fn, void *ud, sg_error *err)
{
    return notyet(err, "job_expire");
}

/* ABI 1.1 (optional: the core checks `size` and NULL before calling). */
static sg_status tpl_job_counts(sg_conn *c, const char *tenant, sg_job_count_fn fn, void *ud,
                                sg_error *err)
{
    return notyet(err, "job_counts");
}

/* ABI 1.1: portal sessions (optional, as job_counts). */
static sg_status tpl_session_create(sg_conn *c, const sg_session *s, sg_error *err)
{
    return notyet(err, "session_create");
}

static sg_status tpl_session_get(sg_conn *c, const char *id, sg_session_fn fn, void *ud,
                                 sg_error *err)
{
    return notyet(err, "session_get");
}

static sg_status tpl_session_touch(sg_conn *c, const char *id, int64_t seen_ms, sg_error *err)
{
    return notyet(err, "session_touch");
}

static sg_status tpl_session_delete(sg_conn *c, const char *id, sg_error *err)
{
    return notyet(err, "session_delete");
}

static sg_status tpl_session_purge(sg_conn *c, int64_t now_ms, int64_t seen_before_ms,
                                   int64_t *removed, sg_error *err)
{
    return notyet(err, "session_purge");
}

/* ---- registration ------------------------------------------------------------------- */

/* Designated initialisers: a method appended to the ABI later stays NULL
 * here, and the core checks `size` before calling it. */
static const sg_storage_vtab vtab = {
    .abi_major = SG_ABI_MAJOR,
    .abi_minor = SG_ABI_MINOR,
    .size = sizeof(sg_storage_vtab),
    .name = PLUGIN_NAME,
    .open = tpl_open,
    .close = tpl_close,
    .connect = tpl_connect,
    .disconnect = tpl_disconnect,
    .begin = tpl_begin,
    .commit = tpl_commit,
    .rollback = tpl_rollback,
    .tenant_create = tpl_tenant_create,
    .tenant_get = tpl_tenant_get,
    .tenant_list = tpl_tenant_list,
    .tenant_set_disabled = tpl_tenant_set_disabled,
    .token_create = tpl_token_create,
    .token_info = tpl_token_info,
    .token_list = tpl_token_list,
    .token_update = tpl_token_update,
    .token_touch = tpl_token_touch,
    .create = tpl_create,
    .get = tpl_get,
    .replace = tpl_replace,
    .remove = tpl_remove,
    .search = tpl_search,
    .members_add = tpl_members_add,
    .members_remove = tpl_members_remove,
    .members_clear = tpl_members_clear,
    .members_list = tpl_members_list,
    .resolve = tpl_resolve,
    .admin_create = tpl_admin_create,
    .admin_get = tpl_admin_get,
    .device_create = tpl_device_create,
    .device_get = tpl_device_get,
    .device_list = tpl_device_list,
    .device_revoke = tpl_device_revoke,
    .setting_set = tpl_setting_set,
    .settings_list = tpl_settings_list,
    .event_append = tpl_event_append,
    .event_list = tpl_event_list,
    .event_purge = tpl_event_purge,
    .tombstone_put = tpl_tombstone_put,
    .tombstone_get = tpl_tombstone_get,
    .tombstone_remove = tpl_tombstone_remove,
    .tombstone_purge = tpl_tombstone_purge,
    .job_create = tpl_job_create,
    .job_get = tpl_job_get,
    .job_update = tpl_job_update,
    .job_list = tpl_job_list,
    .job_claim = tpl_job_claim,
    .job_expire = tpl_job_expire,
    .session_create = tpl_session_create,
    .session_get = tpl_session_get,
    .session_touch = tpl_session_touch,
    .session_delete = tpl_session_delete,
    .session_purge = tpl_session_purge,
    .job_counts = tpl_job_counts,
};

/*
** The one exported symbol. Called once, on the main thread, before any
** other call. Refuse a gateway built for another ABI major, and one whose
** host table lacks a service you use (check with SG_HAS_MEMBER).
*/
SG_PLUGIN_EXPORT sg_status sg_plugin_init(const sg_host *host, sg_plugin_reg *out)
{
    if (!host || !out) return SG_EINVALID;
    out->abi_major = SG_ABI_MAJOR;
    out->abi_minor = SG_ABI_MINOR;
    out->size = sizeof *out;
    out->kind = SG_PLUGIN_STORAGE;
    out->name = PLUGIN_NAME;
    out->vtab = &vtab;
    if (host->abi_major != SG_ABI_MAJOR || !SG_HAS_MEMBER(host, sg_host, log)) return SG_EVERSION;
    return SG_OK;
}
