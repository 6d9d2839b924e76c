/* Metrics (metrics.c): operation names, bounded tenant labels, the
 * exposition, and storage failures counted through the forwarding vtable
 * (storage_watch.c) in front of the real SQLite plugin. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"
#include "plugin.h"

static sg_op op_of(const char *method, const char *path)
{
    sg_route r;
    sg_route_path(path, &r);
    return sg_metrics_op(&r, method);
}

Test(metrics, operations_from_method_and_path)
{
    const char *T = "/scim/v2/0123456789abcdef0123456789abcdef";
    char p[200];
#define OP(m, sub, want)                                                                           \
    snprintf(p, sizeof p, "%s%s", T, sub);                                                         \
    cr_assert_str_eq(sg_metrics_op_name(op_of(m, p)), want, "%s %s", m, sub)
    OP("GET", "/Users", "list_users");
    OP("GET", "/Users/abc", "get_user");
    OP("POST", "/Users", "create_user");
    OP("PUT", "/Users/abc", "replace_user");
    OP("PATCH", "/Users/abc", "patch_user");
    OP("DELETE", "/Users/abc", "delete_user");
    OP("DELETE", "/Users", "other");
    OP("PATCH", "/Groups/g", "patch_group");
    OP("GET", "/Groups", "list_groups");
    OP("POST", "/Users/.search", "search");
    OP("POST", "/.search", "search");
    OP("POST", "/Bulk", "bulk");
    OP("GET", "/Schemas", "discovery");
    OP("GET", "/ResourceTypes/User", "discovery");
    OP("GET", "/ServiceProviderConfig", "discovery");
    OP("GET", "", "other");
    OP("GET", "/Me", "other");
    OP("GET", "/Nope", "other");
#undef OP
    cr_assert_eq(op_of("GET", "/admin/v1/x"), SG_OP_OTHER);
}

static char *written(const sg_metrics_jobs *jobs)
{
    sg_buf b = {0};
    sg_metrics_write(&b, jobs);
    return sg_buf_steal(&b);
}

static void has(const char *text, const char *line)
{
    char want[300];
    snprintf(want, sizeof want, "\n%s\n", line);
    cr_assert(strstr(text, want), "missing line: %s\n---\n%s", line, text);
}

static void lacks(const char *text, const char *part)
{
    cr_assert_null(strstr(text, part), "unexpected: %s", part);
}

Test(metrics, tenant_labels_are_capped_and_the_rest_is_other)
{
    sg_metrics_init(2, "sqlite");
    const char *a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", *b = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const char *c = "cccccccccccccccccccccccccccccccc", *d = "dddddddddddddddddddddddddddddddd";
    sg_metrics_scim_request(a, SG_OP_LIST_USERS, 200, 100);
    sg_metrics_scim_request(b, SG_OP_LIST_USERS, 200, 100);
    sg_metrics_scim_request(a, SG_OP_LIST_USERS, 200, 100);
    sg_metrics_scim_request(c, SG_OP_LIST_USERS, 200, 100); /* over the cap */
    sg_metrics_scim_request(d, SG_OP_LIST_USERS, 200, 100);
    sg_metrics_scim_request(d, SG_OP_PATCH_GROUP, 418, 100);
    sg_metrics_scim_request(NULL, SG_OP_GET_USER, 401, 100);
    sg_metrics_rate_limited(d);
    char *t = written(NULL);
    has(t, "scimgate_scim_requests_total{tenant=\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
           "op=\"list_users\",code=\"200\"} 2");
    has(t, "scimgate_scim_requests_total{tenant=\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\","
           "op=\"list_users\",code=\"200\"} 1");
    has(t, "scimgate_scim_requests_total{tenant=\"other\",op=\"list_users\",code=\"200\"} 2");
    has(t, "scimgate_scim_requests_total{tenant=\"other\",op=\"patch_group\",code=\"4xx\"} 1");
    has(t,
        "scimgate_scim_requests_total{tenant=\"unauthenticated\",op=\"get_user\",code=\"401\"} 1");
    has(t, "scimgate_scim_rate_limited_total{tenant=\"other\"} 1");
    lacks(t, c);
    lacks(t, d);
    has(t, "scimgate_metrics_tenants_tracked 2");
    has(t, "scimgate_metrics_tenants_limit 2");
    /* 5 list_users of 100 us, all in the first bucket (500 us). */
    has(t, "scimgate_scim_request_duration_seconds_bucket{op=\"list_users\",le=\"0.0005\"} 5");
    has(t, "scimgate_scim_request_duration_seconds_bucket{op=\"list_users\",le=\"+Inf\"} 5");
    has(t, "scimgate_scim_request_duration_seconds_count{op=\"list_users\"} 5");
    has(t, "scimgate_scim_request_duration_seconds_sum{op=\"list_users\"} 0.000500");
    lacks(t, "op=\"delete_user\""); /* histograms of unused operations are left out */
    free(t);
    sg_metrics_free();
}

Test(metrics, without_init_every_tenant_is_other)
{
    sg_metrics_scim_request("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", SG_OP_BULK, 200, 10);
    char *t = written(NULL);
    has(t, "scimgate_scim_requests_total{tenant=\"other\",op=\"bulk\",code=\"200\"} 1");
    has(t, "scimgate_storage_up 0");
    free(t);
}

Test(metrics, hooks_http_routes_and_outbox_jobs)
{
    sg_metrics_init(10, "postgres");
    sg_metrics_hook(SG_HOOK_ACCEPT, 300, false);
    sg_metrics_hook(SG_HOOK_ACCEPT, 2000000, true);
    sg_metrics_hook(SG_HOOK_INBOUND, -1, true); /* a script that did not load */
    sg_metrics_http_request(SG_ROUTE_ADMIN, 200);
    sg_metrics_http_request(SG_ROUTE_NOT_FOUND, 404);
    sg_metrics_http_request(SG_ROUTE_NOT_FOUND, 404);
    sg_metrics_jobs jobs = {.storage_up = true, .known = true, .n = 2};
    snprintf(jobs.by_status[0].status, 32, "Approved");
    jobs.by_status[0].n = 7;
    snprintf(jobs.by_status[1].status, 32, "Parked");
    jobs.by_status[1].n = 2;
    char *t = written(&jobs);
    has(t, "scimgate_lua_hook_duration_seconds_bucket{hook=\"groups.accept\",le=\"0.00025\"} 0");
    has(t, "scimgate_lua_hook_duration_seconds_bucket{hook=\"groups.accept\",le=\"0.0005\"} 1");
    has(t, "scimgate_lua_hook_duration_seconds_bucket{hook=\"groups.accept\",le=\"1\"} 1");
    has(t, "scimgate_lua_hook_duration_seconds_bucket{hook=\"groups.accept\",le=\"+Inf\"} 2");
    has(t, "scimgate_lua_hook_duration_seconds_count{hook=\"groups.accept\"} 2");
    has(t, "scimgate_lua_hook_duration_seconds_sum{hook=\"groups.accept\"} 2.000300");
    has(t, "scimgate_lua_hook_errors_total{hook=\"groups.accept\"} 1");
    has(t, "scimgate_lua_hook_duration_seconds_count{hook=\"mapping.inbound\"} 0");
    has(t, "scimgate_lua_hook_errors_total{hook=\"mapping.inbound\"} 1");
    has(t, "scimgate_http_requests_total{route=\"admin\",code=\"200\"} 1");
    has(t, "scimgate_http_requests_total{route=\"not_found\",code=\"404\"} 2");
    has(t, "scimgate_storage_up 1");
    has(t, "scimgate_outbox_jobs{status=\"Approved\"} 7");
    has(t, "scimgate_outbox_jobs{status=\"AwaitingApproval\"} 0");
    has(t, "scimgate_outbox_jobs{status=\"Parked\"} 2");
    cr_assert(strstr(t, "scimgate_build_info{version=\"" SG_VERSION "\",abi=\""), "%s", t);
    cr_assert(strstr(t, "storage=\"postgres\"} 1\n"));
    /* Every family has HELP and TYPE before its samples. */
    cr_assert(strncmp(t, "# HELP scimgate_build_info ", 27) == 0);
    free(t);
    sg_metrics_free();
}

/* ---- failed storage calls, through storage_watch.c --------------------------------- */

static int statuses_seen;
static void on_status(sg_status s)
{
    statuses_seen++;
    sg_metrics_storage_status(s);
}

Test(metrics, failed_storage_calls_are_counted_by_kind)
{
    sg_plugin_reg reg;
    void *dl;
    char err[512], dir[] = "/tmp/sgmetrics.XXXXXX";
    cr_assert(sg_plugin_load(SG_PLUGIN_DIR "/sg_storage_sqlite.so", SG_PLUGIN_STORAGE, &reg, &dl,
                             err, sizeof err),
              "%s", err);
    cr_assert(mkdtemp(dir));
    sg_plugins p = {.st = reg.vtab, .st_dl = dl};
    sg_kv opts[] = {{"busy_timeout_ms", "1"}};
    sg_error e;
    sg_error_clear(&e);
    cr_assert_eq(p.st->open(sg_host_table(), dir, opts, 1, &p.store, &e), SG_OK, "%s", e.detail);
    sg_plugins_watch(&p, on_status);
    cr_assert_neq(p.st, reg.vtab, "the core now calls the forwarding table");
    cr_assert(SG_HAS_MEMBER(p.st, sg_storage_vtab, job_counts) && p.st->job_counts);

    sg_conn *c1, *c2;
    cr_assert_eq(p.st->connect(p.store, &c1, &e), SG_OK, "%s", e.detail);
    cr_assert_eq(p.st->connect(p.store, &c2, &e), SG_OK, "%s", e.detail);
    /* An answer is not a failure... */
    cr_assert_eq(p.st->tenant_get(c1, "nobody", NULL, NULL, &e), SG_ENOTFOUND);
    /* ...a busy store is "unavailable"... */
    cr_assert_eq(p.st->begin(c1, SG_TXN_WRITE, &e), SG_OK, "%s", e.detail);
    cr_assert_eq(p.st->begin(c2, SG_TXN_WRITE, &e), SG_EUNAVAIL);
    /* ...and a misuse is "internal". */
    cr_assert_eq(p.st->begin(c1, SG_TXN_WRITE, &e), SG_EINTERNAL);
    p.st->rollback(c1);
    cr_assert_eq(statuses_seen, 3, "every failed call reported its status");

    char *t = written(NULL);
    has(t, "scimgate_storage_errors_total{kind=\"unavailable\"} 1");
    has(t, "scimgate_storage_errors_total{kind=\"internal\"} 1");
    free(t);

    p.st->disconnect(c1);
    p.st->disconnect(c2);
    sg_plugins_close(&p);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}
