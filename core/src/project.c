#include "project.h"

#include <stdlib.h>
#include <string.h>

static sg_status parse_list(const sg_rtdef *rt, const char *s, sg_resolved **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!s) return SG_OK;
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    sg_resolved *arr = calloc(cap, sizeof *arr);
    if (!arr) return SG_ENOMEM;
    for (const char *p = s; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *b = p, *e = p + len;
        while (b < e && (*b == ' ' || *b == '\t')) b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t')) e--;
        const char *br = memchr(b, '[', (size_t)(e - b));
        if (br) {
            /* attr[filter].sub: keep attr and .sub */
            const char *close = memchr(br, ']', (size_t)(e - br));
            char tmp[512];
            size_t k = (size_t)(br - b);
            if (close && k < sizeof tmp) {
                memcpy(tmp, b, k);
                size_t rest = (size_t)(e - close - 1);
                if (k + rest < sizeof tmp) {
                    memcpy(tmp + k, close + 1, rest);
                    k += rest;
                }
                if (sg_schema_resolve(rt, tmp, k, &arr[*n])) (*n)++;
            }
        } else if (e > b && sg_schema_resolve(rt, b, (size_t)(e - b), &arr[*n])) {
            (*n)++;
        }
        p += len + (comma ? 1 : 0);
    }
    *out = arr;
    return SG_OK;
}

static bool names_members(const sg_resolved *r)
{
    return r->attr && (r->attr->flags & SG_ATTR_MEMBERS);
}

sg_status sg_projection_parse(const sg_rtdef *rt, const char *attributes, const char *excluded,
                              sg_projection *p)
{
    memset(p, 0, sizeof *p);
    if (parse_list(rt, attributes, &p->inc, &p->ninc) != SG_OK ||
        parse_list(rt, excluded, &p->exc, &p->nexc) != SG_OK) {
        sg_projection_free(p);
        return SG_ENOMEM;
    }
    /* attributes wins over excludedAttributes when both are given (RFC 7644
     * says they are exclusive; a lenient server picks one). */
    p->include_mode = attributes != NULL && *attributes;
    p->members = rt->type == SG_RT_GROUP;
    if (p->include_mode) {
        p->members = false;
        for (size_t i = 0; i < p->ninc; i++) p->members |= names_members(&p->inc[i]);
    } else {
        for (size_t i = 0; i < p->nexc; i++)
            if (names_members(&p->exc[i]) && !p->exc[i].sub) p->members = false;
    }
    return SG_OK;
}

void sg_projection_free(sg_projection *p)
{
    free(p->inc);
    free(p->exc);
    memset(p, 0, sizeof *p);
}

bool sg_projection_trivial(const sg_rtdef *rt, const sg_projection *p)
{
    if (p->include_mode || rt->has_request_attrs) return false;
    for (size_t i = 0; i < p->nexc; i++)
        if (!names_members(&p->exc[i]) || p->exc[i].sub) return false;
    return true;
}

/* Does the list name attribute a (and, when `sub` is set, that sub)? */
static int named(const sg_resolved *list, size_t n, const sg_attr *a, const sg_attr *sub,
                 const sg_schema *schema)
{
    /* 2: the whole attribute is named; 1: only some sub-attributes; 0: no. */
    int best = 0;
    for (size_t i = 0; i < n; i++) {
        const sg_resolved *r = &list[i];
        if (!r->attr) {
            if (r->schema == schema) return 2; /* the whole extension */
            continue;
        }
        if (r->attr != a) continue;
        if (!r->sub || r->sub == sub) return 2;
        if (!sub) best = 1;
    }
    return best;
}

static bool keep_attr(const sg_projection *p, const sg_attr *a, const sg_attr *sub,
                      const sg_schema *schema)
{
    const sg_attr *leaf = sub ? sub : a;
    if (leaf->ret == SG_RET_ALWAYS) return true;
    if (leaf->ret == SG_RET_NEVER) return false;
    if (p->include_mode) return named(p->inc, p->ninc, a, sub, schema) > 0;
    if (leaf->ret == SG_RET_REQUEST) return false;
    return named(p->exc, p->nexc, a, sub, schema) != 2;
}

/* Filter the sub-attributes of one complex value in place. */
static void shape_complex(const sg_projection *p, const sg_attr *a, json_t *obj,
                          const sg_schema *schema)
{
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(obj, tmp, k, v)
    {
        const sg_attr *sub = sg_attr_sub(a, k, strlen(k));
        if (!sub || !keep_attr(p, a, sub, schema)) json_object_del(obj, k);
    }
}

static void shape_object(const sg_projection *p, json_t *obj, const sg_schema *schema,
                         const sg_rtdef *rt)
{
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(obj, tmp, k, v)
    {
        if (!schema && !strcmp(k, "schemas")) continue;
        if (!schema && !strcmp(k, "meta")) {
            /* meta.resourceType always stays (Entra reads it); the rest of
             * meta follows the usual rules. */
            sg_resolved m;
            if (!json_is_object(v) || !sg_schema_resolve(rt, "meta", 4, &m)) continue;
            json_t *rtv = json_incref(json_object_get(v, "resourceType"));
            if (!keep_attr(p, m.attr, NULL, m.schema))
                json_object_clear(v);
            else
                shape_complex(p, m.attr, v, m.schema);
            if (rtv) json_object_set(v, "resourceType", rtv);
            json_decref(rtv);
            continue;
        }
        sg_resolved r;
        char path[512];
        if (schema)
            snprintf(path, sizeof path, "%s:%s", schema->id, k);
        else
            snprintf(path, sizeof path, "%s", k);
        if (!sg_schema_resolve(rt, path, strlen(path), &r)) {
            json_object_del(obj, k);
            continue;
        }
        if (!r.attr) {
            /* An extension object. */
            if (json_is_object(v)) shape_object(p, v, r.schema, rt);
            if (json_object_size(v) == 0) json_object_del(obj, k);
            continue;
        }
        if (!keep_attr(p, r.attr, NULL, r.schema)) {
            json_object_del(obj, k);
            continue;
        }
        if (r.attr->type != SG_AT_COMPLEX) continue;
        if (json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) if (json_is_object(e))
                shape_complex(p, r.attr, e, r.schema);
        } else if (json_is_object(v)) {
            shape_complex(p, r.attr, v, r.schema);
        }
    }
}

void sg_projection_apply(const sg_rtdef *rt, const sg_projection *p, json_t *doc)
{
    shape_object(p, doc, NULL, rt);
    /* Keep "schemas" honest: drop extension URNs whose object went away. */
    json_t *sch = json_object_get(doc, "schemas");
    size_t i = 0;
    while (sch && i < json_array_size(sch)) {
        const char *u = json_string_value(json_array_get(sch, i));
        if (u && strcmp(u, rt->core->id) && !json_object_get(doc, u))
            json_array_remove(sch, i);
        else
            i++;
    }
}
