/*
** scimgate plugin ABI: the auth vtable.
**
** The core runs the configured auth plugins in order for every SCIM request.
** A plugin either recognises the credential (GRANTED or DENIED), declines it
** (DECLINED: not its kind, try the next plugin), or fails (ERROR: the store is
** unreachable; the client gets a 503).
**
** Threading: `authenticate` runs concurrently on every worker thread; `conn`
** is the calling thread's storage connection.
*/
#ifndef SCIMGATE_AUTH_H
#define SCIMGATE_AUTH_H

#include <stdint.h>

#include "abi.h"
#include "error.h"
#include "host.h"

typedef struct sg_auth sg_auth; /* a plugin instance (opaque) */

typedef enum sg_auth_result {
    SG_AUTH_GRANTED = 0,
    SG_AUTH_DENIED = 1,
    SG_AUTH_DECLINED = 2,
    SG_AUTH_ERROR = 3,
} sg_auth_result;

/* What a plugin may look at. All pointers borrowed for the call. */
typedef struct sg_request_info {
    const char *method;    /* "GET", ...                                   */
    const char *path;      /* decoded path, e.g. "/scim/v2/<tenant>/Users" */
    const char *tenant;    /* tenant id named by the URL, or NULL          */
    const char *peer_addr; /* client address (after trusted_proxies)       */
    /* Value of a request header (case-insensitive name), or NULL. */
    const char *(*header)(const struct sg_request_info *ri, const char *name);
    void *impl; /* for `header`; opaque to plugins */
} sg_request_info;

/* sg_principal.scopes */
#define SG_SCOPE_SCIM 0x01u /* the tenant's SCIM endpoint */

typedef struct sg_principal {
    char tenant[65];   /* the tenant the credential belongs to             */
    char token_id[65]; /* the credential's public id (never a secret)      */
    uint32_t scopes;
} sg_principal;

typedef struct sg_auth_vtab {
    SG_ABI_HEADER;
    const char *name;

    /* OUT: *out, released with close. Options are `auth.NAME.KEY = value`
     * without the prefix. */
    sg_status (*open)(const sg_host *host, const sg_kv *opts, size_t nopts, sg_auth **out,
                      sg_error *err);
    void (*close)(sg_auth *a);

    /* Decide on one request. On GRANTED fill `out`. On DENIED or ERROR a
     * client-safe reason may go to `err` (never the presented secret). */
    sg_auth_result (*authenticate)(sg_auth *a, const sg_request_info *ri, sg_conn *conn,
                                   sg_principal *out, sg_error *err);

    /* ABI 1.x: append new methods BELOW this line only. */
} sg_auth_vtab;

#endif
