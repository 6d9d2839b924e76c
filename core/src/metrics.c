#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "prom.h"
#include "util.h"

typedef _Atomic uint64_t counter;

static inline void inc(counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t get(const counter *c)
{
    return atomic_load_explicit((counter *)c, memory_order_relaxed);
}

/* ---- labels ------------------------------------------------------------------------- */

static const char *const op_names[SG_OP_COUNT] = {
    [SG_OP_GET_USER] = "get_user",
    [SG_OP_LIST_USERS] = "list_users",
    [SG_OP_CREATE_USER] = "create_user",
    [SG_OP_REPLACE_USER] = "replace_user",
    [SG_OP_PATCH_USER] = "patch_user",
    [SG_OP_DELETE_USER] = "delete_user",
    [SG_OP_GET_GROUP] = "get_group",
    [SG_OP_LIST_GROUPS] = "list_groups",
    [SG_OP_CREATE_GROUP] = "create_group",
    [SG_OP_REPLACE_GROUP] = "replace_group",
    [SG_OP_PATCH_GROUP] = "patch_group",
    [SG_OP_DELETE_GROUP] = "delete_group",
    [SG_OP_SEARCH] = "search",
    [SG_OP_BULK] = "bulk",
    [SG_OP_DISCOVERY] = "discovery",
    [SG_OP_OTHER] = "other",
};

const char *sg_metrics_op_name(sg_op op)
{
    return (int)op >= 0 && op < SG_OP_COUNT ? op_names[op] : "other";
}

/* By a resource type's first op: get, list, create, replace, patch, delete. */
static sg_op resource_op(sg_op first, bool has_id, const char *m)
{
    if (has_id) {
        if (!strcmp(m, "GET")) return first;
        if (!strcmp(m, "PUT")) return first + 3;
        if (!strcmp(m, "PATCH")) return first + 4;
        if (!strcmp(m, "DELETE")) return first + 5;
        return SG_OP_OTHER;
    }
    if (!strcmp(m, "GET")) return first + 1;
    if (!strcmp(m, "POST")) return first + 2;
    return SG_OP_OTHER;
}

sg_op sg_metrics_op(const sg_route *r, const char *method)
{
    if (!r || r->kind != SG_ROUTE_SCIM || !method) return SG_OP_OTHER;
    switch (r->ep) {
    case SG_EP_USERS:
        return resource_op(SG_OP_GET_USER, r->id != NULL, method);
    case SG_EP_GROUPS:
        return resource_op(SG_OP_GET_GROUP, r->id != NULL, method);
    case SG_EP_SEARCH:
        return !strcmp(method, "POST") ? SG_OP_SEARCH : SG_OP_OTHER;
    case SG_EP_BULK:
        return !strcmp(method, "POST") ? SG_OP_BULK : SG_OP_OTHER;
    case SG_EP_SPC:
    case SG_EP_SCHEMAS:
    case SG_EP_RESOURCE_TYPES:
        return !strcmp(method, "GET") ? SG_OP_DISCOVERY : SG_OP_OTHER;
    default:
        return SG_OP_OTHER;
    }
}

/* Status codes the gateway answers; any other is counted by its class. */
static const int codes[] = {200, 201, 204, 304, 400, 401, 403, 404,
                            405, 409, 412, 413, 429, 500, 501, 503};
#define NCODES_EXACT ((int)SG_ARRAY_LEN(codes))
#define NCODES       (NCODES_EXACT + 5) /* then 1xx .. 5xx */

static int code_index(int status)
{
    for (int i = 0; i < NCODES_EXACT; i++)
        if (codes[i] == status) return i;
    int cls = status / 100;
    if (cls < 1 || cls > 5) cls = 5;
    return NCODES_EXACT + cls - 1;
}

static void code_label(int i, char out[8])
{
    if (i < NCODES_EXACT)
        snprintf(out, 8, "%d", codes[i]);
    else
        snprintf(out, 8, "%dxx", (i - NCODES_EXACT + 1) % 10);
}

/* ---- histograms --------------------------------------------------------------------- */

/* Upper bounds in microseconds, and the same in seconds for le. */
static const int64_t req_bounds_us[] = {500,    1000,   2500,   5000,    10000,   25000,  50000,
                                        100000, 250000, 500000, 1000000, 2500000, 5000000};
static const double req_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,    0.25,  0.5,    1,     2.5,  5};
#define REQ_NB SG_ARRAY_LEN(req_bounds)

static const int64_t hook_bounds_us[] = {50,    100,   250,   500,    1000,   2500,   5000,
                                         10000, 25000, 50000, 100000, 250000, 1000000};
static const double hook_bounds[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                     0.01,    0.025,  0.05,    0.1,    0.25,  1};
#define HOOK_NB SG_ARRAY_LEN(hook_bounds)

_Static_assert(SG_ARRAY_LEN(req_bounds_us) == REQ_NB, "request bounds");
_Static_assert(SG_ARRAY_LEN(hook_bounds_us) == HOOK_NB, "hook bounds");

#define MAX_NB 16

typedef struct histogram {
    counter n[MAX_NB + 1]; /* per bucket, not cumulative; the last above every bound */
    counter sum_us;
} histogram;

static void observe(histogram *h, const int64_t *bounds_us, size_t nb, int64_t us)
{
    if (us < 0) us = 0;
    size_t i = 0;
    while (i < nb && us > bounds_us[i]) i++;
    inc(&h->n[i], 1);
    inc(&h->sum_us, (uint64_t)us);
}

static void write_histogram(sg_buf *b, const char *name, const char *const *labels,
                            const histogram *h, const double *bounds, size_t nb)
{
    uint64_t n[MAX_NB + 1];
    for (size_t i = 0; i <= nb; i++) n[i] = get(&h->n[i]);
    sg_prom_histogram(b, name, labels, bounds, nb, n, (double)get(&h->sum_us) / 1e6);
}

static uint64_t histogram_count(const histogram *h, size_t nb)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= nb; i++) n += get(&h->n[i]);
    return n;
}

/* ---- tenants ------------------------------------------------------------------------- */

typedef struct tenant_m {
    char id[SG_TENANT_ID_MAX + 1];
    counter req[SG_OP_COUNT][NCODES];
    counter limited;
} tenant_m;

/*
** Open addressing with at least twice as many slots as tenants, so a probe
** ends soon at an empty slot. Readers load slots without a lock; a new
** tenant is inserted under `ins_mu` and published with a release store;
** entries are never moved or freed while requests run.
*/
static struct {
    _Atomic(tenant_m *) *slots;
    size_t mask;
    size_t max;
    atomic_size_t tracked;
    pthread_mutex_t ins_mu;
    tenant_m other, unauth;
    histogram req[SG_OP_COUNT];
    histogram hook[SG_HOOK_CHANGES + 1];
    counter hook_errors[SG_HOOK_CHANGES + 1];
    counter http[6][NCODES];
    counter storage_unavail, storage_internal;
    const char *storage;
    int64_t started_ms;
} g = {.ins_mu = PTHREAD_MUTEX_INITIALIZER,
       .other = {.id = "other"},
       .unauth = {.id = "unauthenticated"}};

void sg_metrics_init(size_t max_tenants, const char *storage)
{
    if (max_tenants > 100000) max_tenants = 100000; /* as config.c allows */
    size_t n = 16;
    while (n < max_tenants * 2) n *= 2;
    g.slots = calloc(n, sizeof *g.slots);
    g.mask = g.slots ? n - 1 : 0;
    g.max = g.slots ? max_tenants : 0;
    atomic_store(&g.tracked, 0);
    g.storage = storage;
    g.started_ms = sg_now_ms();
}

void sg_metrics_free(void)
{
    if (!g.slots) return;
    for (size_t i = 0; i <= g.mask; i++) free(atomic_load(&g.slots[i]));
    free(g.slots);
    g.slots = NULL;
    g.mask = 0;
    g.max = 0;
    atomic_store(&g.tracked, 0);
}

/* Probe for `id`: its entry, or NULL with *empty the free slot it would
 * take (NULL when the table is full). */
static tenant_m *probe(const char *id, size_t *empty, bool *has_empty)
{
    *has_empty = false;
    size_t i = sg_hash_str(id) & g.mask;
    for (size_t n = 0; n <= g.mask; n++, i = (i + 1) & g.mask) {
        tenant_m *e = atomic_load_explicit(&g.slots[i], memory_order_acquire);
        if (!e) {
            *empty = i;
            *has_empty = true;
            return NULL;
        }
        if (!strcmp(e->id, id)) return e;
    }
    return NULL;
}

static tenant_m *tenant_entry(const char *id)
{
    if (!id) return &g.unauth;
    if (!g.slots || strlen(id) > SG_TENANT_ID_MAX) return &g.other;
    size_t slot;
    bool has_empty;
    tenant_m *e = probe(id, &slot, &has_empty);
    if (e) return e;
    /* Full: no lock, no allocation, for every tenant beyond the cap. */
    if (atomic_load_explicit(&g.tracked, memory_order_relaxed) >= g.max) return &g.other;
    pthread_mutex_lock(&g.ins_mu);
    e = probe(id, &slot, &has_empty); /* another thread may have added it */
    if (!e && has_empty && atomic_load(&g.tracked) < g.max && (e = calloc(1, sizeof *e))) {
        snprintf(e->id, sizeof e->id, "%s", id);
        atomic_store_explicit(&g.slots[slot], e, memory_order_release);
        atomic_fetch_add(&g.tracked, 1);
    }
    pthread_mutex_unlock(&g.ins_mu);
    return e ? e : &g.other;
}

/* ---- recording ---------------------------------------------------------------------- */

void sg_metrics_scim_request(const char *tenant, sg_op op, int status, int64_t micros)
{
    if ((int)op < 0 || op >= SG_OP_COUNT) op = SG_OP_OTHER;
    inc(&tenant_entry(tenant)->req[op][code_index(status)], 1);
    observe(&g.req[op], req_bounds_us, REQ_NB, micros);
}

static int route_index(sg_route_kind kind)
{
    switch (kind) {
    case SG_ROUTE_ADMIN:
        return 0;
    case SG_ROUTE_METRICS:
        return 1;
    case SG_ROUTE_HEALTHZ:
        return 2;
    case SG_ROUTE_READYZ:
        return 3;
    case SG_ROUTE_PORTAL:
        return 5;
    default:
        return 4;
    }
}
static const char *const route_names[6] = {"admin",  "metrics",   "healthz",
                                           "readyz", "not_found", "portal"};

void sg_metrics_http_request(sg_route_kind kind, int status)
{
    inc(&g.http[route_index(kind)][code_index(status)], 1);
}

void sg_metrics_rate_limited(const char *tenant)
{
    inc(&tenant_entry(tenant)->limited, 1);
}

static const char *const hook_names[SG_HOOK_CHANGES + 1] = {
    [SG_HOOK_INBOUND] = "mapping.inbound",    [SG_HOOK_OUTBOUND] = "mapping.outbound",
    [SG_HOOK_ACCEPT] = "groups.accept",       [SG_HOOK_INVITE] = "invite.on_invite",
    [SG_HOOK_CHANGES] = "changes.on_changes",
};

void sg_metrics_hook(sg_hook hook, int64_t micros, bool failed)
{
    if ((int)hook < 0 || hook > SG_HOOK_CHANGES) return;
    if (micros >= 0) observe(&g.hook[hook], hook_bounds_us, HOOK_NB, micros);
    if (failed) inc(&g.hook_errors[hook], 1);
}

void sg_metrics_storage_status(sg_status s)
{
    switch (s) {
    case SG_EUNAVAIL:
        inc(&g.storage_unavail, 1);
        break;
    case SG_EINTERNAL:
    case SG_ENOMEM:
    case SG_EVERSION:
    case SG_ENOTIMPL:
        inc(&g.storage_internal, 1);
        break;
    default:
        break;
    }
}

/* ---- the exposition ----------------------------------------------------------------- */

static void write_tenant_requests(sg_buf *b, const tenant_m *t)
{
    char code[8];
    for (int op = 0; op < SG_OP_COUNT; op++) {
        for (int c = 0; c < NCODES; c++) {
            uint64_t v = get(&t->req[op][c]);
            if (!v) continue;
            code_label(c, code);
            const char *labels[] = {"tenant", t->id, "op", op_names[op], "code", code, NULL};
            sg_prom_u64(b, "scimgate_scim_requests_total", labels, v);
        }
    }
}

static void write_limited(sg_buf *b, const tenant_m *t)
{
    uint64_t v = get(&t->limited);
    if (!v) return;
    const char *labels[] = {"tenant", t->id, NULL};
    sg_prom_u64(b, "scimgate_scim_rate_limited_total", labels, v);
}

/* Every tenant entry: the named ones, then "other" and "unauthenticated". */
static void each_tenant(sg_buf *b, void (*fn)(sg_buf *b, const tenant_m *t))
{
    for (size_t i = 0; g.slots && i <= g.mask; i++) {
        const tenant_m *e = atomic_load_explicit(&g.slots[i], memory_order_acquire);
        if (e) fn(b, e);
    }
    fn(b, &g.other);
    fn(b, &g.unauth);
}

static const char *const job_statuses[] = {"AwaitingApproval", "Approved", "Sending",  "Delivered",
                                           "Failed",           "Expired",  "Cancelled"};

void sg_metrics_write(sg_buf *b, const sg_metrics_jobs *jobs)
{
    char abi[16];
    snprintf(abi, sizeof abi, "%d.%d", SG_ABI_MAJOR, SG_ABI_MINOR);
    sg_prom_family(b, "scimgate_build_info", "gauge",
                   "The gateway's version, plugin ABI and storage plugin (always 1).");
    const char *bl[] = {"version", SG_VERSION, "abi", abi, "storage", g.storage ? g.storage : "",
                        NULL};
    sg_prom_u64(b, "scimgate_build_info", bl, 1);
    sg_prom_family(b, "scimgate_start_time_seconds", "gauge",
                   "When the gateway started, in seconds since the Unix epoch.");
    sg_prom_u64(b, "scimgate_start_time_seconds", NULL, (uint64_t)(g.started_ms / 1000));

    sg_prom_family(b, "scimgate_scim_requests_total", "counter",
                   "SCIM requests answered, by tenant (\"other\" beyond "
                   "limits.metrics_tenants, \"unauthenticated\" without a valid token), "
                   "operation and status code.");
    each_tenant(b, write_tenant_requests);

    sg_prom_family(
        b, "scimgate_scim_request_duration_seconds", "histogram",
        "Time from reading a SCIM request to having its answer ready to send, by operation.");
    for (int op = 0; op < SG_OP_COUNT; op++) {
        if (!histogram_count(&g.req[op], REQ_NB)) continue;
        const char *labels[] = {"op", op_names[op], NULL};
        write_histogram(b, "scimgate_scim_request_duration_seconds", labels, &g.req[op], req_bounds,
                        REQ_NB);
    }

    sg_prom_family(b, "scimgate_scim_rate_limited_total", "counter",
                   "SCIM requests refused with 429 by the tenant's rate limit "
                   "(limits.tenant_rps, per node).");
    each_tenant(b, write_limited);

    sg_prom_family(b, "scimgate_http_requests_total", "counter",
                   "Requests outside SCIM (admin API, health, metrics, unknown paths), by route "
                   "and status code.");
    char code[8];
    for (int r = 0; r < 6; r++) {
        for (int c = 0; c < NCODES; c++) {
            uint64_t v = get(&g.http[r][c]);
            if (!v) continue;
            code_label(c, code);
            const char *labels[] = {"route", route_names[r], "code", code, NULL};
            sg_prom_u64(b, "scimgate_http_requests_total", labels, v);
        }
    }

    sg_prom_family(b, "scimgate_lua_hook_duration_seconds", "histogram",
                   "Lua hook calls and their duration, by hook (_count is the number of calls).");
    for (int h = 0; h <= SG_HOOK_CHANGES; h++) {
        const char *labels[] = {"hook", hook_names[h], NULL};
        write_histogram(b, "scimgate_lua_hook_duration_seconds", labels, &g.hook[h], hook_bounds,
                        HOOK_NB);
    }
    sg_prom_family(b, "scimgate_lua_hook_errors_total", "counter",
                   "Lua hook calls that failed: an error, an answer outside the hook's contract, "
                   "or a script that does not load.");
    for (int h = 0; h <= SG_HOOK_CHANGES; h++) {
        const char *labels[] = {"hook", hook_names[h], NULL};
        sg_prom_u64(b, "scimgate_lua_hook_errors_total", labels, get(&g.hook_errors[h]));
    }

    sg_prom_family(b, "scimgate_storage_errors_total", "counter",
                   "Storage calls that failed: \"unavailable\" (the store is down or busy) or "
                   "\"internal\".");
    const char *su[] = {"kind", "unavailable", NULL}, *si[] = {"kind", "internal", NULL};
    sg_prom_u64(b, "scimgate_storage_errors_total", su, get(&g.storage_unavail));
    sg_prom_u64(b, "scimgate_storage_errors_total", si, get(&g.storage_internal));
    sg_prom_family(b, "scimgate_storage_up", "gauge",
                   "1 when the store answered this scrape's query, else 0.");
    sg_prom_u64(b, "scimgate_storage_up", NULL, jobs && jobs->storage_up);

    sg_prom_family(b, "scimgate_outbox_jobs", "gauge",
                   "Invitation jobs in the store by status (the whole store: every node "
                   "reports the same).");
    if (jobs && jobs->known) {
        for (size_t i = 0; i < SG_ARRAY_LEN(job_statuses); i++) {
            int64_t n = 0;
            for (size_t j = 0; j < jobs->n; j++)
                if (!strcmp(jobs->by_status[j].status, job_statuses[i])) n = jobs->by_status[j].n;
            const char *labels[] = {"status", job_statuses[i], NULL};
            sg_prom_u64(b, "scimgate_outbox_jobs", labels, (uint64_t)(n > 0 ? n : 0));
        }
        for (size_t j = 0; j < jobs->n; j++) { /* a status this gateway does not know */
            bool known = false;
            for (size_t i = 0; i < SG_ARRAY_LEN(job_statuses); i++)
                known |= !strcmp(jobs->by_status[j].status, job_statuses[i]);
            if (known) continue;
            const char *labels[] = {"status", jobs->by_status[j].status, NULL};
            int64_t n = jobs->by_status[j].n;
            sg_prom_u64(b, "scimgate_outbox_jobs", labels, (uint64_t)(n > 0 ? n : 0));
        }
    }

    sg_prom_family(b, "scimgate_metrics_tenants_tracked", "gauge",
                   "Tenants named in tenant labels; the rest are summed as \"other\".");
    sg_prom_u64(b, "scimgate_metrics_tenants_tracked", NULL, atomic_load(&g.tracked));
    sg_prom_family(b, "scimgate_metrics_tenants_limit", "gauge",
                   "At most this many tenants are named (limits.metrics_tenants).");
    sg_prom_u64(b, "scimgate_metrics_tenants_limit", NULL, g.max);
}

/* ---- the scrape ------------------------------------------------------------------------- */

static sg_status job_count(void *ud, const char *status, int64_t n)
{
    sg_metrics_jobs *j = ud;
    if (j->n == SG_ARRAY_LEN(j->by_status)) return SG_OK; /* the rest is ignored */
    snprintf(j->by_status[j->n].status, sizeof j->by_status[j->n].status, "%s", status);
    j->by_status[j->n++].n = n;
    return SG_OK;
}

void sg_metrics_scrape(sg_worker *w, sg_response *res)
{
    sg_metrics_jobs jobs = {0};
    const sg_storage_vtab *st = w->srv->plugins->st;
    sg_conn *c = NULL;
    sg_error err;
    sg_error_clear(&err);
    bool counts = SG_HAS_MEMBER(st, sg_storage_vtab, job_counts) && st->job_counts;
    jobs.storage_up =
        sg_worker_conn(w, &c, &err) == SG_OK && st->begin(c, SG_TXN_READ, &err) == SG_OK;
    if (jobs.storage_up && counts) {
        jobs.known = st->job_counts(c, NULL, job_count, &jobs, &err) == SG_OK;
        jobs.storage_up = jobs.known;
        if (!jobs.known) jobs.n = 0;
    }
    if (jobs.storage_up) jobs.storage_up = st->commit(c, &err) == SG_OK;
    if (!jobs.storage_up && c) st->rollback(c); /* a no-op outside a transaction */
    res->status = 200;
    res->content_type = SG_PROM_CONTENT_TYPE;
    sg_metrics_write(&res->body, &jobs);
}
