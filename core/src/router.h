/*
** The router: method and path to an operation, with no CivetWeb types so it
** can be unit-tested and fuzzed without sockets. Paths are normalised first:
** duplicate slashes collapse and a trailing slash is ignored, as Entra may
** send either (ENTRA.md §1.1).
*/
#ifndef SG_ROUTER_H
#define SG_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

typedef enum sg_route_kind {
    SG_ROUTE_NOT_FOUND = 0,
    SG_ROUTE_HEALTHZ,
    SG_ROUTE_READYZ,
    SG_ROUTE_METRICS,
    SG_ROUTE_SCIM,   /* /scim/v2/{tenant}/...  */
    SG_ROUTE_ADMIN,  /* /admin/v1/...           */
    SG_ROUTE_PORTAL, /* /admin, /admin/<file>   */
} sg_route_kind;

typedef enum sg_endpoint {
    SG_EP_NONE = 0,
    SG_EP_ROOT,           /* /scim/v2/{tenant}                    */
    SG_EP_USERS,          /* /Users[/{id}]                        */
    SG_EP_GROUPS,         /* /Groups[/{id}]                       */
    SG_EP_SEARCH,         /* /.search, /Users/.search, ...        */
    SG_EP_BULK,           /* /Bulk                                */
    SG_EP_SPC,            /* /ServiceProviderConfig               */
    SG_EP_SCHEMAS,        /* /Schemas[/{id}]                      */
    SG_EP_RESOURCE_TYPES, /* /ResourceTypes[/{id}]                */
    SG_EP_ME,             /* /Me                                  */
    SG_EP_UNKNOWN,        /* anything else below a tenant URL     */
} sg_endpoint;

#define SG_TENANT_ID_MAX  64
#define SG_ROUTE_PATH_MAX 2048

typedef struct sg_route {
    sg_route_kind kind;
    sg_endpoint ep;
    char tenant[SG_TENANT_ID_MAX + 1];
    /* For SG_EP_SEARCH below /Users or /Groups: which one (else SG_EP_NONE). */
    sg_endpoint search_of;
    const char *id; /* resource or schema id (into `norm`), or NULL    */
    size_t id_len;
    char norm[SG_ROUTE_PATH_MAX]; /* the normalised path              */
    /* SG_ROUTE_ADMIN: the path after /admin/v1; SG_ROUTE_PORTAL: the file
     * name ("" for /admin itself, NULL for a deeper path). */
    const char *rest;
} sg_route;

/* Route `path` (already percent-decoded). Never fails: unknown paths give
 * SG_ROUTE_NOT_FOUND; a path longer than SG_ROUTE_PATH_MAX too. */
void sg_route_path(const char *path, sg_route *out);

/* Is `s` a syntactically valid tenant id (letters, digits, '-', '_')? */
bool sg_tenant_id_valid(const char *s, size_t n);

#endif
