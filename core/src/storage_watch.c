/*
** A storage vtable in front of the loaded one that reports every failed
** call's status (for the storage-error metric) and passes the call on
** unchanged. The core calls it as it calls the plugin: one more indirect
** call per storage call. A method not listed here (one appended to the ABI
** later) keeps the plugin's own pointer, so it works, uncounted.
*/
#include "plugin.h"

#include <string.h>

static const sg_storage_vtab *g_real;
static sg_storage_vtab g_proxy;
static void (*g_on_status)(sg_status s);

static sg_status seen(sg_status s)
{
    if (s != SG_OK && g_on_status) g_on_status(s);
    return s;
}

/* X(name, (parameters), (arguments)) for every method returning a status. */
#define SG_STORAGE_STATUS_METHODS(X)                                                               \
    X(connect, (sg_storage * st, sg_conn * *out, sg_error * err), (st, out, err))                  \
    X(begin, (sg_conn * c, sg_txn_mode mode, sg_error * err), (c, mode, err))                      \
    X(commit, (sg_conn * c, sg_error * err), (c, err))                                             \
    X(tenant_create, (sg_conn * c, const sg_tenant *t, sg_error *err), (c, t, err))                \
    X(tenant_get, (sg_conn * c, const char *id, sg_tenant_fn fn, void *ud, sg_error *err),         \
      (c, id, fn, ud, err))                                                                        \
    X(tenant_list, (sg_conn * c, sg_tenant_fn fn, void *ud, sg_error *err), (c, fn, ud, err))      \
    X(tenant_set_disabled, (sg_conn * c, const char *id, int disabled, sg_error *err),             \
      (c, id, disabled, err))                                                                      \
    X(token_create, (sg_conn * c, const sg_token *t, sg_error *err), (c, t, err))                  \
    X(token_info, (sg_conn * c, const char *id, sg_token_info *out, sg_error *err),                \
      (c, id, out, err))                                                                           \
    X(token_list, (sg_conn * c, const char *t, sg_token_fn fn, void *ud, sg_error *err),           \
      (c, t, fn, ud, err))                                                                         \
    X(token_update,                                                                                \
      (sg_conn * c, const char *t, const char *id, int64_t exp, int64_t rev, sg_error *err),       \
      (c, t, id, exp, rev, err))                                                                   \
    X(token_touch, (sg_conn * c, const char *id, int64_t when, const char *addr, sg_error *err),   \
      (c, id, when, addr, err))                                                                    \
    X(create, (sg_conn * c, const char *t, const sg_resource *r, sg_error *err), (c, t, r, err))   \
    X(get,                                                                                         \
      (sg_conn * c, const char *t, sg_rtype ty, const char *id, sg_row_fn fn, void *ud,            \
       sg_error *err),                                                                             \
      (c, t, ty, id, fn, ud, err))                                                                 \
    X(replace, (sg_conn * c, const char *t, const sg_resource *r, int64_t v, sg_error *err),       \
      (c, t, r, v, err))                                                                           \
    X(remove, (sg_conn * c, const char *t, sg_rtype ty, const char *id, sg_error *err),            \
      (c, t, ty, id, err))                                                                         \
    X(search,                                                                                      \
      (sg_conn * c, const char *t, const sg_query *q, sg_row_fn fn, void *ud, sg_search_out *out,  \
       sg_error *err),                                                                             \
      (c, t, q, fn, ud, out, err))                                                                 \
    X(members_add,                                                                                 \
      (sg_conn * c, const char *t, const char *g, const sg_member *m, size_t n, sg_error *err),    \
      (c, t, g, m, n, err))                                                                        \
    X(members_remove,                                                                              \
      (sg_conn * c, const char *t, const char *g, const char *const *ids, size_t n,                \
       sg_error *err),                                                                             \
      (c, t, g, ids, n, err))                                                                      \
    X(members_clear, (sg_conn * c, const char *t, const char *g, sg_error *err), (c, t, g, err))   \
    X(members_list,                                                                                \
      (sg_conn * c, const char *t, const char *g, sg_member_fn fn, void *ud, sg_error *err),       \
      (c, t, g, fn, ud, err))                                                                      \
    X(resolve,                                                                                     \
      (sg_conn * c, const char *t, const char *const *ids, size_t n, sg_rtype *types,              \
       sg_error *err),                                                                             \
      (c, t, ids, n, types, err))                                                                  \
    X(admin_create, (sg_conn * c, const sg_admin *a, sg_error *err), (c, a, err))                  \
    X(admin_get,                                                                                   \
      (sg_conn * c, const char *t, const char *login, sg_admin_fn fn, void *ud, sg_error *err),    \
      (c, t, login, fn, ud, err))                                                                  \
    X(device_create, (sg_conn * c, const sg_device *d, sg_error *err), (c, d, err))                \
    X(device_get,                                                                                  \
      (sg_conn * c, const char *t, const char *id, sg_device_fn fn, void *ud, sg_error *err),      \
      (c, t, id, fn, ud, err))                                                                     \
    X(device_list, (sg_conn * c, const char *t, sg_device_fn fn, void *ud, sg_error *err),         \
      (c, t, fn, ud, err))                                                                         \
    X(device_revoke, (sg_conn * c, const char *t, const char *id, int64_t when, sg_error *err),    \
      (c, t, id, when, err))                                                                       \
    X(setting_set, (sg_conn * c, const char *t, const char *k, const char *v, sg_error *err),      \
      (c, t, k, v, err))                                                                           \
    X(settings_list, (sg_conn * c, const char *t, sg_setting_fn fn, void *ud, sg_error *err),      \
      (c, t, fn, ud, err))                                                                         \
    X(event_append, (sg_conn * c, const char *t, const sg_event *e, int64_t *seq, sg_error *err),  \
      (c, t, e, seq, err))                                                                         \
    X(event_list,                                                                                  \
      (sg_conn * c, const char *t, const sg_event_query *q, sg_event_fn fn, void *ud,              \
       sg_error *err),                                                                             \
      (c, t, q, fn, ud, err))                                                                      \
    X(event_purge, (sg_conn * c, int64_t before, int64_t keep, int64_t * removed, sg_error * err), \
      (c, before, keep, removed, err))                                                             \
    X(tombstone_put,                                                                               \
      (sg_conn * c, const char *t, const sg_resource *r, int64_t del, int64_t purge,               \
       sg_error *err),                                                                             \
      (c, t, r, del, purge, err))                                                                  \
    X(tombstone_get,                                                                               \
      (sg_conn * c, const char *t, sg_rtype ty, const char *id, sg_row_fn fn, void *ud,            \
       sg_error *err),                                                                             \
      (c, t, ty, id, fn, ud, err))                                                                 \
    X(tombstone_remove, (sg_conn * c, const char *t, const char *id, sg_error *err),               \
      (c, t, id, err))                                                                             \
    X(tombstone_purge, (sg_conn * c, const char *t, int64_t now, int64_t *removed, sg_error *err), \
      (c, t, now, removed, err))                                                                   \
    X(job_create, (sg_conn * c, const sg_job *j, sg_error *err), (c, j, err))                      \
    X(job_get,                                                                                     \
      (sg_conn * c, const char *t, const char *id, sg_job_fn fn, void *ud, sg_error *err),         \
      (c, t, id, fn, ud, err))                                                                     \
    X(job_update, (sg_conn * c, const sg_job *j, int64_t expected, sg_error *err),                 \
      (c, j, expected, err))                                                                       \
    X(job_list,                                                                                    \
      (sg_conn * c, const char *t, const char *status, const char *user, sg_job_fn fn, void *ud,   \
       sg_error *err),                                                                             \
      (c, t, status, user, fn, ud, err))                                                           \
    X(job_claim,                                                                                   \
      (sg_conn * c, const char *owner, int64_t now, int64_t lease, sg_job_fn fn, void *ud,         \
       sg_error *err),                                                                             \
      (c, owner, now, lease, fn, ud, err))                                                         \
    X(job_expire, (sg_conn * c, int64_t now, sg_job_fn fn, void *ud, sg_error *err),               \
      (c, now, fn, ud, err))                                                                       \
    X(job_counts, (sg_conn * c, const char *t, sg_job_count_fn fn, void *ud, sg_error *err),       \
      (c, t, fn, ud, err))                                                                         \
    X(session_create, (sg_conn * c, const sg_session *s, sg_error *err), (c, s, err))              \
    X(session_get, (sg_conn * c, const char *id, sg_session_fn fn, void *ud, sg_error *err),       \
      (c, id, fn, ud, err))                                                                        \
    X(session_touch, (sg_conn * c, const char *id, int64_t at, sg_error *err), (c, id, at, err))   \
    X(session_delete, (sg_conn * c, const char *id, sg_error *err), (c, id, err))                  \
    X(session_purge,                                                                               \
      (sg_conn * c, int64_t now, int64_t seen_before, int64_t * removed, sg_error * err),          \
      (c, now, seen_before, removed, err))

#define WRAP(name, params, args)                                                                   \
    static sg_status w_##name params                                                               \
    {                                                                                              \
        return seen(g_real->name args);                                                            \
    }
SG_STORAGE_STATUS_METHODS(WRAP)
#undef WRAP

void sg_plugins_watch(sg_plugins *p, void (*on_status)(sg_status s))
{
    const sg_storage_vtab *real = p->st;
    /* The plugin's table may be smaller (an older minor): copy what it has. */
    size_t n = real->size < sizeof g_proxy ? real->size : sizeof g_proxy;
    memset(&g_proxy, 0, sizeof g_proxy);
    memcpy(&g_proxy, real, n);
    g_proxy.size = (unsigned)n;
    g_real = real;
    g_on_status = on_status;
#define SET(name, params, args)                                                                    \
    if (SG_HAS_MEMBER(&g_proxy, sg_storage_vtab, name) && g_proxy.name) g_proxy.name = w_##name;
    SG_STORAGE_STATUS_METHODS(SET)
#undef SET
    sg_plugins_set_storage(p, &g_proxy);
}
