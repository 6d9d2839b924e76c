#include "router.h"

#include <string.h>
#include <strings.h>

#include "util.h"

bool sg_tenant_id_valid(const char *s, size_t n)
{
    if (n == 0 || n > SG_TENANT_ID_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

#define MAX_SEGS 8

typedef struct seg {
    const char *p;
    size_t n;
} seg;

static bool is(const seg *s, const char *lit)
{
    return strlen(lit) == s->n && !memcmp(s->p, lit, s->n);
}

static bool ieq(const seg *s, const char *lit)
{
    return sg_str_ieq(lit, s->p, s->n);
}

void sg_route_path(const char *path, sg_route *r)
{
    memset(r, 0, sizeof *r);
    /* Normalise: collapse slashes, drop the trailing one. */
    size_t o = 0;
    for (const char *p = path; *p; p++) {
        if (*p == '/' && o > 0 && r->norm[o - 1] == '/') continue;
        if (o + 1 >= sizeof r->norm) return; /* too long: not found */
        r->norm[o++] = *p;
    }
    while (o > 1 && r->norm[o - 1] == '/') o--;
    r->norm[o] = '\0';
    if (o == 0 || r->norm[0] != '/') return;

    seg segs[MAX_SEGS + 1];
    size_t n = 0;
    for (char *p = r->norm + 1; *p;) {
        char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (n == MAX_SEGS) {
            n++;
            break;
        }
        segs[n++] = (seg){p, len};
        p += len + (e ? 1 : 0);
    }
    if (n == 1 && is(&segs[0], "healthz"))
        r->kind = SG_ROUTE_HEALTHZ;
    else if (n == 1 && is(&segs[0], "readyz"))
        r->kind = SG_ROUTE_READYZ;
    else if (n == 1 && is(&segs[0], "metrics"))
        r->kind = SG_ROUTE_METRICS;
    if (r->kind != SG_ROUTE_NOT_FOUND) return;

    if (n >= 2 && is(&segs[0], "admin") && is(&segs[1], "v1")) {
        r->kind = SG_ROUTE_ADMIN;
        r->rest = n > 2 ? segs[2].p - 1 : "";
        return;
    }
    if (n >= 1 && is(&segs[0], "admin")) {
        /* The portal's files: /admin (index.html) and /admin/<name>, one
         * level only; deeper paths have no file (rest NULL). */
        r->kind = SG_ROUTE_PORTAL;
        r->rest = n == 1 ? "" : n == 2 ? segs[1].p : NULL;
        return;
    }
    if (n < 3 || !ieq(&segs[0], "scim") || !ieq(&segs[1], "v2") ||
        !sg_tenant_id_valid(segs[2].p, segs[2].n))
        return;
    r->kind = SG_ROUTE_SCIM;
    memcpy(r->tenant, segs[2].p, segs[2].n);
    r->tenant[segs[2].n] = '\0';
    if (n == 3) {
        r->ep = SG_EP_ROOT;
        return;
    }
    r->ep = SG_EP_UNKNOWN;
    if (n > 5) return;
    const seg *e = &segs[3];
    const seg *id = n >= 5 ? &segs[4] : NULL;
    if (n == 4 && is(e, ".search")) {
        r->ep = SG_EP_SEARCH;
        return;
    }
    struct {
        const char *name;
        sg_endpoint ep;
        bool has_id;
    } eps[] = {
        {"Users", SG_EP_USERS, true},     {"Groups", SG_EP_GROUPS, true},
        {"Bulk", SG_EP_BULK, false},      {"ServiceProviderConfig", SG_EP_SPC, false},
        {"Schemas", SG_EP_SCHEMAS, true}, {"ResourceTypes", SG_EP_RESOURCE_TYPES, true},
        {"Me", SG_EP_ME, false},
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(eps); i++) {
        if (!ieq(e, eps[i].name)) continue;
        if (id && !eps[i].has_id) return; /* SG_EP_UNKNOWN */
        r->ep = eps[i].ep;
        if (id && (r->ep == SG_EP_USERS || r->ep == SG_EP_GROUPS) && is(id, ".search")) {
            r->search_of = r->ep;
            r->ep = SG_EP_SEARCH;
        } else if (id) {
            r->id = id->p;
            r->id_len = id->n;
        }
        return;
    }
}
