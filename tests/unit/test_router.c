#include <criterion/criterion.h>
#include <string.h>

#include "router.h"

static sg_route r;

Test(router, health_endpoints)
{
    sg_route_path("/healthz", &r);
    cr_assert_eq(r.kind, SG_ROUTE_HEALTHZ);
    sg_route_path("/readyz/", &r);
    cr_assert_eq(r.kind, SG_ROUTE_READYZ);
    sg_route_path("/healthzz", &r);
    cr_assert_eq(r.kind, SG_ROUTE_NOT_FOUND);
}

Test(router, users_list_and_item)
{
    sg_route_path("/scim/v2/abc123/Users", &r);
    cr_assert_eq(r.kind, SG_ROUTE_SCIM);
    cr_assert_str_eq(r.tenant, "abc123");
    cr_assert_eq(r.ep, SG_EP_USERS);
    cr_assert_null(r.id);

    sg_route_path("/scim/v2/abc123/Users/5d48a0a8", &r);
    cr_assert_eq(r.ep, SG_EP_USERS);
    cr_assert_eq(r.id_len, 8);
    cr_assert(!strncmp(r.id, "5d48a0a8", r.id_len));
}

Test(router, duplicate_and_trailing_slashes)
{
    sg_route_path("//scim//v2/abc123//Groups/", &r);
    cr_assert_eq(r.kind, SG_ROUTE_SCIM);
    cr_assert_eq(r.ep, SG_EP_GROUPS);
    cr_assert_null(r.id);
    cr_assert_str_eq(r.norm, "/scim/v2/abc123/Groups");
}

Test(router, endpoint_names_are_case_insensitive)
{
    sg_route_path("/scim/v2/t1/users", &r);
    cr_assert_eq(r.ep, SG_EP_USERS);
    sg_route_path("/SCIM/V2/t1/serviceproviderconfig", &r);
    cr_assert_eq(r.ep, SG_EP_SPC);
}

Test(router, discovery_and_search)
{
    sg_route_path("/scim/v2/t1/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", &r);
    cr_assert_eq(r.ep, SG_EP_SCHEMAS);
    cr_assert_eq(r.id_len, strlen("urn:ietf:params:scim:schemas:core:2.0:User"));
    sg_route_path("/scim/v2/t1/ResourceTypes", &r);
    cr_assert_eq(r.ep, SG_EP_RESOURCE_TYPES);
    sg_route_path("/scim/v2/t1/.search", &r);
    cr_assert_eq(r.ep, SG_EP_SEARCH);
    cr_assert_eq(r.search_of, SG_EP_NONE);
    sg_route_path("/scim/v2/t1/Groups/.search", &r);
    cr_assert_eq(r.ep, SG_EP_SEARCH);
    cr_assert_eq(r.search_of, SG_EP_GROUPS);
    sg_route_path("/scim/v2/t1", &r);
    cr_assert_eq(r.ep, SG_EP_ROOT);
}

Test(router, unknown_paths)
{
    sg_route_path("/scim/v2/t1/Widgets", &r);
    cr_assert_eq(r.kind, SG_ROUTE_SCIM);
    cr_assert_eq(r.ep, SG_EP_UNKNOWN);
    sg_route_path("/scim/v2/t1/Bulk/x", &r);
    cr_assert_eq(r.ep, SG_EP_UNKNOWN);
    sg_route_path("/scim/v2/t1/Users/a/b", &r);
    cr_assert_eq(r.ep, SG_EP_UNKNOWN);
    sg_route_path("/scim/v1/t1/Users", &r);
    cr_assert_eq(r.kind, SG_ROUTE_NOT_FOUND);
    sg_route_path("/scim/v2/bad!tenant/Users", &r);
    cr_assert_eq(r.kind, SG_ROUTE_NOT_FOUND);
    sg_route_path("", &r);
    cr_assert_eq(r.kind, SG_ROUTE_NOT_FOUND);
    sg_route_path("relative", &r);
    cr_assert_eq(r.kind, SG_ROUTE_NOT_FOUND);
}

Test(router, overlong_path_is_not_found)
{
    static char path[SG_ROUTE_PATH_MAX + 100];
    memset(path, 'a', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    sg_route_path(path, &r);
    cr_assert_eq(r.kind, SG_ROUTE_NOT_FOUND);
}

Test(router, admin_prefix)
{
    sg_route_path("/admin/v1/tenants", &r);
    cr_assert_eq(r.kind, SG_ROUTE_ADMIN);
    cr_assert_str_eq(r.rest, "/tenants");
}

Test(router, portal_files_are_one_level_below_admin)
{
    sg_route_path("/admin", &r);
    cr_assert_eq(r.kind, SG_ROUTE_PORTAL);
    cr_assert_str_eq(r.rest, "");
    sg_route_path("/admin/", &r);
    cr_assert_eq(r.kind, SG_ROUTE_PORTAL);
    cr_assert_str_eq(r.rest, "");
    sg_route_path("//admin//app.js", &r);
    cr_assert_eq(r.kind, SG_ROUTE_PORTAL);
    cr_assert_str_eq(r.rest, "app.js");
    sg_route_path("/admin/x/../app.js", &r); /* no file: deeper than one level */
    cr_assert_eq(r.kind, SG_ROUTE_PORTAL);
    cr_assert_null(r.rest);
    sg_route_path("/admin/v1", &r); /* the API, not a file called v1 */
    cr_assert_eq(r.kind, SG_ROUTE_ADMIN);
}

Test(router, tenant_id_rules)
{
    cr_assert(sg_tenant_id_valid("0123456789abcdef0123456789abcdef", 32));
    cr_assert_not(sg_tenant_id_valid("", 0));
    cr_assert_not(sg_tenant_id_valid("a b", 3));
    cr_assert_not(sg_tenant_id_valid("a/b", 3));
}
