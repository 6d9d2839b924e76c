/*
** Metrics for GET /metrics (Prometheus text format 0.0.4, prom.h).
**
** Counting is cheap and lock-free: relaxed C11 atomic counters in fixed
** arrays, so a request never takes a lock to be counted. Every label has a
** bounded set of values:
**   tenant  the first limits.metrics_tenants tenants that authenticated
**           since start-up are named; any later one is summed as "other";
**           SCIM requests that did not authenticate (no or a bad token,
**           refused before authentication) are "unauthenticated". Tenant
**           ids are 32 hex digits, so neither word can be a tenant's id.
**           Only authenticated requests add a tenant, so made-up tenant
**           ids in URLs never grow the table. A tenant's slot is kept
**           until the process ends.
**   op      a fixed set of operation names (sg_metrics_op).
**   code    the HTTP status, one of a fixed list, else its class ("4xx").
**   hook    the five hook names; route, kind, status: fixed lists.
**
** Families (the README lists them too):
**   scimgate_build_info{version,abi,storage}            gauge, always 1
**   scimgate_start_time_seconds                         gauge
**   scimgate_scim_requests_total{tenant,op,code}        counter
**   scimgate_scim_request_duration_seconds{op}          histogram
**   scimgate_scim_rate_limited_total{tenant}            counter (429s)
**   scimgate_http_requests_total{route,code}            counter, non-SCIM
**   scimgate_lua_hook_duration_seconds{hook}            histogram (calls)
**   scimgate_lua_hook_errors_total{hook}                counter
**   scimgate_storage_errors_total{kind}                 counter
**   scimgate_storage_up                                 gauge, this scrape
**   scimgate_outbox_jobs{status}                        gauge, from storage
**   scimgate_metrics_tenants_tracked, _limit            gauges
** Counters start at zero when the process starts. With several nodes each
** counts its own traffic (sum them); the outbox is the shared store's, the
** same on every node (take one, not the sum).
*/
#ifndef SG_METRICS_H
#define SG_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lua_host.h"
#include "scim.h"

/* SCIM operations (the op label). */
typedef enum sg_op {
    SG_OP_GET_USER = 0,
    SG_OP_LIST_USERS,
    SG_OP_CREATE_USER,
    SG_OP_REPLACE_USER,
    SG_OP_PATCH_USER,
    SG_OP_DELETE_USER,
    SG_OP_GET_GROUP,
    SG_OP_LIST_GROUPS,
    SG_OP_CREATE_GROUP,
    SG_OP_REPLACE_GROUP,
    SG_OP_PATCH_GROUP,
    SG_OP_DELETE_GROUP,
    SG_OP_SEARCH,    /* POST .search, at the root or below a type */
    SG_OP_BULK,      /* POST /Bulk                                */
    SG_OP_DISCOVERY, /* GET /ServiceProviderConfig, /Schemas, /ResourceTypes */
    SG_OP_OTHER,     /* anything else: the root, /Me, a wrong method, ... */
    SG_OP_COUNT
} sg_op;

/* The operation of a SCIM request. */
sg_op sg_metrics_op(const sg_route *r, const char *method);
const char *sg_metrics_op_name(sg_op op);

/* Name up to `max_tenants` tenants; `storage` (the plugin's name, kept as
 * a pointer) goes into build_info. Call once before requests are served;
 * without it every tenant counts as "other". */
void sg_metrics_init(size_t max_tenants, const char *storage);
/* Release the tenant table (after the last request). */
void sg_metrics_free(void);

/* A SCIM request answered `status` after `micros`; `tenant` is the tenant
 * it authenticated for, or NULL. */
void sg_metrics_scim_request(const char *tenant, sg_op op, int status, int64_t micros);
/* Any other request (admin, health, metrics, unknown paths). */
void sg_metrics_http_request(sg_route_kind kind, int status);
/* A SCIM request of `tenant` refused by its rate limit. */
void sg_metrics_rate_limited(const char *tenant);
/* A hook ran for `micros` (< 0: it could not run at all); `failed`: it
 * raised, gave an answer that is not one of its contract's, or its script
 * did not load. */
void sg_metrics_hook(sg_hook hook, int64_t micros, bool failed);
/* A storage call returned `s`: SG_EUNAVAIL counts as "unavailable", and
 * SG_EINTERNAL, SG_ENOMEM, SG_EVERSION, SG_ENOTIMPL as "internal"; other
 * statuses are answers (not found, conflict, ...) and are not counted. */
void sg_metrics_storage_status(sg_status s);

/* Jobs per status, read at scrape time. */
typedef struct sg_metrics_jobs {
    bool storage_up; /* the store answered this scrape */
    bool known;      /* the counts below were read (the plugin has job_counts) */
    struct {
        char status[32];
        int64_t n;
    } by_status[16];
    size_t n;
} sg_metrics_jobs;

/* Every family in the text format into `out`. */
void sg_metrics_write(sg_buf *out, const sg_metrics_jobs *jobs);

/* GET /metrics: read the outbox from storage through the worker's
 * connection, then write everything. The caller has checked access. */
void sg_metrics_scrape(sg_worker *w, sg_response *res);

#endif
