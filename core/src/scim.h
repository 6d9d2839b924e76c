/*
** The SCIM engine's view of a request and its response, independent of
** CivetWeb (http.c fills these in and writes the result), and the
** per-server and per-worker-thread state the handlers use.
*/
#ifndef SG_SCIM_H
#define SG_SCIM_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "filter.h"
#include "plugin.h"
#include "router.h"
#include "scimgate/plugin.h"

#define SG_CT_SCIM "application/scim+json"
#define SG_CT_JSON "application/json"

struct sg_ratelimit;

typedef struct sg_server {
    const sg_config *cfg;
    sg_plugins *plugins;
    sg_filter_limits flim;
    struct sg_ratelimit *ratelimit; /* per-tenant limits (ratelimit.h), or NULL */
} sg_server;

/* Per worker thread (CivetWeb's init_thread), never shared. */
typedef struct sg_worker {
    sg_server *srv;
    sg_conn *conn;      /* storage connection, opened on first use */
    struct sg_lua *lua; /* this thread's hook scripts (lua_host.h) */
} sg_worker;

typedef struct sg_request {
    const char *method;
    const char *query; /* raw query string, or NULL */
    const char *body;  /* NULL when none */
    size_t body_len;
    const char *peer;     /* client address after trusted_proxies */
    const char *base_url; /* scheme://host[:port] the client sees */
    const char *request_id;
    sg_route route;
    sg_principal principal;
    bool authenticated;   /* a SCIM token of route.tenant was accepted */
    char tenant_url[512]; /* base_url + /scim/v2/<tenant> */
    /* A request header by case-insensitive name, or NULL. */
    const char *(*header)(const struct sg_request *r, const char *name);
    void *impl;
} sg_request;

typedef struct sg_response {
    int status;
    const char *content_type;  /* static string; NULL for no body */
    const char *cache_control; /* static string; NULL: "no-store" */
    sg_buf body;
    sg_buf headers; /* extra "Name: value\r\n" lines */
} sg_response;

/* Handle a request routed to SG_ROUTE_SCIM (auth included). */
void sg_scim_handle(sg_worker *w, sg_request *req, sg_response *res);

/* The calling worker's storage connection (connects on first use). */
sg_status sg_worker_conn(sg_worker *w, sg_conn **out, sg_error *err);

/* ---- responses (scim_error.c) ---- */

/* A SCIM error body (RFC 7644 §3.12) with `http_status`. */
void sg_respond_error(sg_response *res, int http_status, const char *scim_type, const char *detail);
/* Map an sg_error to its HTTP status and SCIM error body. */
void sg_respond_sg_error(sg_response *res, const sg_error *e);
int sg_status_http(sg_status s);
/* Add a response header line. */
void sg_respond_header(sg_response *res, const char *name, const char *value);
void sg_response_free(sg_response *res);

/* ---- handlers ---- */
void sg_scim_discovery(sg_worker *w, sg_request *req, sg_response *res);
void sg_scim_resources(sg_worker *w, sg_request *req, sg_response *res);
/* POST /Bulk (scim_bulk.c). */
void sg_scim_bulk(sg_worker *w, sg_request *req, sg_response *res);
/* POST .search at the root (users and groups) or below /Users or /Groups. */
void sg_scim_search(sg_worker *w, sg_request *req, sg_response *res);

/*
** glibc keeps in its arenas what threads free: a Bulk request or a group
** with 100,000 members builds a JSON tree of many megabytes in small blocks,
** and once freed those pages stay resident, in every arena such a request
** ever ran in (main.c limits the arenas). Measured with 20,000 users seeded
** by Bulk: 155 MiB of arenas, 107 MiB of it free blocks; RssAnon 72 MiB
** after malloc_trim (DESIGN §7 allows 100). malloc_trim hands the free pages of
** every arena back to the kernel (madvise); it costs a few milliseconds, so
** it runs once, in http.c after the answer has left, and only after a
** request whose body or answer reached SG_TRIM_BYTES. Small requests free
** little and reuse it.
*/
#define SG_TRIM_BYTES (256 * 1024)

#endif
