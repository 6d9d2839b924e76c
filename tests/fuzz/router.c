/*
** The router (core/src/router.c): a percent-decoded request path, as
** CivetWeb hands it over, to an operation.
**
** Input: the path (up to the first NUL byte).
**
** Oracles besides the sanitizers: the normalised path has no double
** slashes and no trailing slash; a SCIM route names a valid tenant id; an
** id, and an admin route's rest, point into the normalised path; routing
** the normalised path again gives the same route.
*/
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "router.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}

static void check_route(const sg_route *r)
{
    size_t n = strnlen(r->norm, sizeof r->norm);
    SG_FUZZ_CHECK(n < sizeof r->norm, "norm not terminated");
    if (r->kind == SG_ROUTE_NOT_FOUND) return;
    SG_FUZZ_CHECK(n > 0 && r->norm[0] == '/', "a route from a path without a leading slash");
    SG_FUZZ_CHECK(!strstr(r->norm, "//"), "double slash in %s", r->norm);
    SG_FUZZ_CHECK(n == 1 || r->norm[n - 1] != '/', "trailing slash in %s", r->norm);
    if (r->kind == SG_ROUTE_SCIM) {
        SG_FUZZ_CHECK(sg_tenant_id_valid(r->tenant, strlen(r->tenant)), "tenant %s", r->tenant);
        SG_FUZZ_CHECK(r->ep != SG_EP_NONE, "SCIM route without an endpoint");
    } else {
        SG_FUZZ_CHECK(r->tenant[0] == '\0' && r->ep == SG_EP_NONE, "tenant outside SCIM");
    }
    if (r->id) {
        SG_FUZZ_CHECK(r->id >= r->norm && r->id + r->id_len <= r->norm + n, "id outside norm");
        SG_FUZZ_CHECK(r->id_len > 0 && !memchr(r->id, '/', r->id_len), "id %.*s", (int)r->id_len,
                      r->id);
    }
    if (r->kind == SG_ROUTE_ADMIN) {
        SG_FUZZ_CHECK(r->rest != NULL, "admin route without rest");
        SG_FUZZ_CHECK(r->rest[0] == '\0' || (r->rest >= r->norm && r->rest < r->norm + n),
                      "rest outside norm");
    }
    SG_FUZZ_CHECK(r->search_of == SG_EP_NONE || r->ep == SG_EP_SEARCH, "search_of");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *path = malloc(size + 1);
    if (!path) return 0;
    memcpy(path, data, size);
    path[size] = '\0';
    sg_route *r = malloc(2 * sizeof *r);
    if (!r) {
        free(path);
        return 0;
    }
    sg_route_path(path, &r[0]);
    check_route(&r[0]);
    if (r[0].kind != SG_ROUTE_NOT_FOUND) {
        sg_route_path(r[0].norm, &r[1]);
        SG_FUZZ_CHECK(r[1].kind == r[0].kind && r[1].ep == r[0].ep &&
                          r[1].search_of == r[0].search_of && !strcmp(r[1].tenant, r[0].tenant) &&
                          !strcmp(r[1].norm, r[0].norm) && r[1].id_len == r[0].id_len,
                      "routing the normalised path again differs: %s", r[0].norm);
    }
    sg_tenant_id_valid(path, strlen(path));
    free(r);
    free(path);
    return 0;
}
