#include "resource.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "fold.h"
#include "json.h"
#include "log.h"
#include "util.h"

/* ---- inbound: one value against its attribute definition ------------------- */

/* An invalidValue error about one attribute: "attribute \"<path>\" <what>". */
static sg_status bad(sg_error *err, const char *path, const char *what)
{
    return sg_error_set(err, SG_EINVALID, "invalidValue", "attribute \"%s\" %s", path, what);
}

/* Convert a single (non-array) value. *out NULL means "not set". */
sg_status sg_attr_convert_one(const sg_attr *a, const json_t *v, json_t **out, sg_error *err)
{
    *out = NULL;
    if (!v || json_is_null(v)) return SG_OK;
    switch (a->type) {
    case SG_AT_COMPLEX: {
        json_t *wrapped = NULL;
        if (json_is_string(v) && a->value_sub) {
            /* Entra's manager as a bare id, members as bare ids. */
            wrapped = json_pack("{sO}", a->value_sub->name, (json_t *)v);
            if (!wrapped) return sg_error_set(err, SG_ENOMEM, NULL, "out of memory");
            v = wrapped;
        }
        if (!json_is_object(v)) {
            json_decref(wrapped);
            return bad(err, a->path, "must be a complex value");
        }
        json_t *o = json_object();
        if (!o) {
            json_decref(wrapped);
            return sg_error_set(err, SG_ENOMEM, NULL, "out of memory");
        }
        const char *k;
        json_t *sv;
        sg_status s = SG_OK;
        json_object_foreach((json_t *)v, k, sv)
        {
            const sg_attr *sub = sg_attr_sub(a, k, strlen(k));
            if (!sub || sub->mut == SG_MUT_READONLY || sub->mut == SG_MUT_WRITEONLY) continue;
            json_t *c;
            if (json_is_array(sv) && !sub->multi) {
                s = bad(err, sub->path, "is single-valued");
                break;
            }
            if ((s = sg_attr_convert_one(sub, sv, &c, err)) != SG_OK) break;
            if (c)
                json_object_set_new(o, sub->name, c);
            else
                json_object_del(o, sub->name);
        }
        json_decref(wrapped);
        if (s == SG_OK && !strcmp(a->path, SG_ENTERPRISE_MANAGER)) {
            /* DESIGN §6: manager is always {"value": id}; a $ref sent with
             * Entra's old array form would go stale and is not kept. */
            json_t *v2 = json_incref(json_object_get(o, "value"));
            json_object_clear(o);
            if (v2) json_object_set_new(o, "value", v2);
        }
        if (s != SG_OK || json_object_size(o) == 0) {
            json_decref(o);
            return s;
        }
        *out = o;
        return SG_OK;
    }
    case SG_AT_BOOLEAN:
        if (json_is_boolean(v)) {
            *out = json_boolean(json_is_true(v));
        } else if (json_is_string(v) && (!strcasecmp(json_string_value(v), "true") ||
                                         !strcasecmp(json_string_value(v), "false"))) {
            /* Entra's default mode sends "True"/"False" (DESIGN §6). */
            *out = json_boolean(!strcasecmp(json_string_value(v), "true"));
        } else {
            return bad(err, a->path, "must be a boolean");
        }
        return *out ? SG_OK : sg_error_set(err, SG_ENOMEM, NULL, "out of memory");
    case SG_AT_INTEGER:
        if (!json_is_integer(v)) return bad(err, a->path, "must be an integer");
        *out = json_incref((json_t *)v);
        return SG_OK;
    case SG_AT_DECIMAL:
        if (!json_is_number(v)) return bad(err, a->path, "must be a number");
        *out = json_incref((json_t *)v);
        return SG_OK;
    case SG_AT_DATETIME: {
        int64_t ms;
        if (!json_is_string(v)) return bad(err, a->path, "must be a dateTime string");
        if (json_string_length(v) == 0) return SG_OK;
        if (!sg_parse_time(json_string_value(v), &ms))
            return bad(err, a->path, "must be an RFC 3339 dateTime (2025-01-31T12:00:00Z)");
        *out = json_incref((json_t *)v);
        return SG_OK;
    }
    default: /* string, reference, binary */
        if (!json_is_string(v)) return bad(err, a->path, "must be a string");
        if (json_string_length(v) == 0) return SG_OK; /* "" clears, like null */
        *out = json_incref((json_t *)v);
        return SG_OK;
    }
}

/* Convert a value for attribute `a`, single- or multi-valued. */
sg_status sg_attr_convert(const sg_attr *a, const json_t *v, json_t **out, sg_error *err)
{
    *out = NULL;
    if (!v || json_is_null(v)) return SG_OK;
    if (!a->multi) {
        if (json_is_array(v)) {
            /* Entra's old manager form: a one-element array. */
            if (json_array_size(v) == 0) return SG_OK;
            if (json_array_size(v) > 1) return bad(err, a->path, "is single-valued");
            v = json_array_get(v, 0);
        }
        return sg_attr_convert_one(a, v, out, err);
    }
    json_t *arr = json_array();
    if (!arr) return sg_error_set(err, SG_ENOMEM, NULL, "out of memory");
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < n; i++) {
        json_t *c;
        sg_status s = sg_attr_convert_one(a, json_is_array(v) ? json_array_get(v, i) : v, &c, err);
        if (s != SG_OK) {
            json_decref(arr);
            return s;
        }
        if (c) json_array_append_new(arr, c);
    }
    if (json_array_size(arr) == 0 && n > 0) {
        /* Every element was empty: the attribute is not set. */
        json_decref(arr);
        return SG_OK;
    }
    *out = arr;
    return SG_OK;
}

/* ---- inbound: the whole document -------------------------------------------- */

typedef struct build {
    const sg_rtdef *rt;
    json_t *core; /* top-level attributes in arrival order */
    json_t **ext; /* per extension of rt */
    json_t *members;
    sg_error *err;
} build;

static sg_status set_attr(build *b, const sg_resolved *r, const json_t *v)
{
    const sg_attr *a = r->attr;
    if (a->mut == SG_MUT_READONLY) return SG_OK; /* id, meta, groups: server-owned */
    if (a->mut == SG_MUT_WRITEONLY) {
        /* Passwords are never stored: the product onboards users itself. */
        sg_log(SG_LOG_DEBUG, "scim", "dropped write-only attribute %s", a->path);
        return SG_OK;
    }
    json_t *target = b->core;
    if (r->schema != b->rt->core && !r->common) {
        for (size_t i = 0; i < b->rt->nexts; i++) {
            if (b->rt->exts[i] != r->schema) continue;
            if (!b->ext[i] && !(b->ext[i] = json_object()))
                return sg_error_set(b->err, SG_ENOMEM, NULL, "out of memory");
            target = b->ext[i];
        }
    }
    if ((a->flags & SG_ATTR_MEMBERS) && b->rt->type == SG_RT_GROUP && !r->sub) {
        /* Every member must name its id: one without would vanish silently. */
        size_t n = json_is_array(v) ? json_array_size(v) : json_is_null(v) ? 0 : 1;
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
            const json_t *val = json_is_string(e) ? e : sg_json_iget(e, "value", NULL);
            if (!json_is_string(val) || json_string_length(val) == 0)
                return sg_error_set(b->err, SG_EINVALID, "invalidValue",
                                    "every member needs a \"value\" (the member's id)");
        }
    }
    if ((a->flags & SG_ATTR_MEMBERS) && b->rt->type == SG_RT_GROUP && !r->sub && a->multi) {
        /* One member at a time, keeping a copy of its id: converting the
         * whole array first put a second tree of 100,000 objects beside the
         * parsed body, half of such a request's peak memory. Copied, so
         * that no id keeps a page of the parsed body from being given back
         * once it is freed (http.c trims after a large request). */
        json_t *ids = json_array();
        if (!ids) return sg_error_set(b->err, SG_ENOMEM, NULL, "out of memory");
        size_t n = json_is_array(v) ? json_array_size(v) : json_is_null(v) ? 0 : 1;
        for (size_t i = 0; i < n; i++) {
            json_t *e;
            sg_status s =
                sg_attr_convert_one(a, json_is_array(v) ? json_array_get(v, i) : v, &e, b->err);
            if (s != SG_OK) {
                json_decref(ids);
                return s;
            }
            const json_t *id = e ? json_object_get(e, "value") : NULL;
            if (id && json_array_append_new(
                          ids, json_stringn(json_string_value(id), json_string_length(id)))) {
                json_decref(e);
                json_decref(ids);
                return sg_error_set(b->err, SG_ENOMEM, NULL, "out of memory");
            }
            json_decref(e);
        }
        json_decref(b->members);
        b->members = ids;
        return SG_OK;
    }
    json_t *c;
    sg_status s;
    if (r->sub) {
        /* "name.givenName": merge into the complex value. */
        json_t *wrapper = json_object();
        if (!wrapper) return sg_error_set(b->err, SG_ENOMEM, NULL, "out of memory");
        json_object_set(wrapper, r->sub->name, (json_t *)v);
        json_t *old = json_object_get(target, a->name);
        if (json_is_object(old) && !a->multi) json_object_update_missing(wrapper, old);
        s = sg_attr_convert(a, wrapper, &c, b->err);
        json_decref(wrapper);
    } else {
        s = sg_attr_convert(a, v, &c, b->err);
    }
    if (s != SG_OK) return s;
    if ((a->flags & SG_ATTR_MEMBERS) && b->rt->type == SG_RT_GROUP) {
        json_decref(b->members);
        b->members = json_array();
        size_t i;
        json_t *e;
        if (c)
            json_array_foreach(c, i, e) json_array_append(b->members, json_object_get(e, "value"));
        json_decref(c);
        return b->members ? SG_OK : sg_error_set(b->err, SG_ENOMEM, NULL, "out of memory");
    }
    if (c)
        json_object_set_new(target, a->name, c);
    else
        json_object_del(target, a->name);
    return SG_OK;
}

static sg_status check_required(const sg_attr *attrs, size_t n, const json_t *obj, sg_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const sg_attr *a = &attrs[i];
        if (a->mut == SG_MUT_READONLY || (a->flags & SG_ATTR_MEMBERS)) continue;
        json_t *v = json_object_get(obj, a->name);
        if (a->required && !v)
            return sg_error_set(err, SG_EINVALID, "invalidValue", "attribute \"%s\" is required",
                                a->path);
        if (!v || a->type != SG_AT_COMPLEX) continue;
        size_t m = json_is_array(v) ? json_array_size(v) : 1;
        for (size_t k = 0; k < m; k++) {
            const json_t *e = json_is_array(v) ? json_array_get(v, k) : v;
            for (size_t j = 0; j < a->nsubs; j++)
                if (a->subs[j].required && !json_object_get(e, a->subs[j].name))
                    return sg_error_set(err, SG_EINVALID, "invalidValue",
                                        "attribute \"%s\" is required in every %s value",
                                        a->subs[j].path, a->path);
        }
    }
    return SG_OK;
}

static sg_status walk_object(build *b, const sg_schema *only, const json_t *obj);

static sg_status take(build *b, const sg_schema *only, const char *k, const json_t *v)
{
    sg_resolved r;
    size_t klen = strlen(k);
    if (only) {
        /* Inside an extension object: names are relative to it. */
        char path[512];
        snprintf(path, sizeof path, "%s:%s", only->id, k);
        if (!sg_schema_resolve(b->rt, path, strlen(path), &r) || !r.attr) return SG_OK;
        return set_attr(b, &r, v);
    }
    if (!sg_schema_resolve(b->rt, k, klen, &r)) {
        sg_log(SG_LOG_DEBUG, "scim", "ignored unknown attribute %.100s", k);
        return SG_OK;
    }
    if (!r.attr) {
        /* A schema URN: its object holds that schema's attributes. */
        if (!json_is_object(v)) {
            if (json_is_null(v)) return SG_OK;
            return sg_error_set(b->err, SG_EINVALID, "invalidSyntax",
                                "\"%s\" must be an object of that schema's attributes",
                                r.schema->id);
        }
        return walk_object(b, r.schema == b->rt->core ? NULL : r.schema, v);
    }
    return set_attr(b, &r, v);
}

static sg_status walk_object(build *b, const sg_schema *only, const json_t *obj)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (!only && !strcasecmp(k, "schemas")) continue; /* rebuilt from content */
        sg_status s = take(b, only, k, v);
        if (s != SG_OK) return s;
    }
    return SG_OK;
}

sg_status sg_resource_inbound(const sg_rtdef *rt, const json_t *doc, sg_inbound *in, sg_error *err)
{
    memset(in, 0, sizeof *in);
    if (!json_is_object(doc))
        return sg_error_set(err, SG_EINVALID, "invalidSyntax", "the body must be a JSON object");
    const json_t *schemas = sg_json_iget(doc, "schemas", NULL);
    if (schemas && !json_is_array(schemas))
        return sg_error_set(err, SG_EINVALID, "invalidSyntax", "\"schemas\" must be an array");
    json_t *ext[16] = {0};
    if (rt->nexts > SG_ARRAY_LEN(ext))
        return sg_error_set(err, SG_EINTERNAL, NULL, "too many schema extensions");
    build b = {.rt = rt, .core = json_object(), .ext = ext, .err = err};
    if (!b.core) return sg_error_set(err, SG_ENOMEM, NULL, "out of memory");
    sg_status s = walk_object(&b, NULL, doc);
    json_t *body = NULL;
    if (s == SG_OK) {
        /* schemas first (sg_resource_finish fills it), then the attributes
         * in arrival order, then the extension objects. */
        body = json_pack("{s[]}", "schemas");
        if (!body) s = sg_error_set(err, SG_ENOMEM, NULL, "out of memory");
    }
    if (s == SG_OK) {
        json_object_update(body, b.core);
        for (size_t i = 0; i < rt->nexts; i++)
            if (ext[i]) json_object_set(body, rt->exts[i]->id, ext[i]);
        s = sg_resource_finish(rt, body, err);
    }
    if (s == SG_OK) {
        in->body = body;
        in->members = b.members;
        b.members = NULL;
        body = NULL;
    }
    json_decref(body);
    json_decref(b.core);
    json_decref(b.members);
    for (size_t i = 0; i < rt->nexts; i++) json_decref(ext[i]);
    return s;
}

sg_status sg_resource_finish(const sg_rtdef *rt, json_t *body, sg_error *err)
{
    json_t *sch = json_array();
    if (!sch) return sg_error_set(err, SG_ENOMEM, NULL, "out of memory");
    json_array_append_new(sch, json_string(rt->core->id));
    sg_status s = check_required(rt->core->attrs, rt->core->nattrs, body, err);
    for (size_t i = 0; s == SG_OK && i < rt->nexts; i++) {
        json_t *e = json_object_get(body, rt->exts[i]->id);
        if (e && (!json_is_object(e) || json_object_size(e) == 0)) {
            json_object_del(body, rt->exts[i]->id);
            e = NULL;
        }
        if (!e && rt->ext_required[i])
            s = sg_error_set(err, SG_EINVALID, "invalidValue", "schema extension %s is required",
                             rt->exts[i]->id);
        else if (e) {
            s = check_required(rt->exts[i]->attrs, rt->exts[i]->nattrs, e, err);
            json_array_append_new(sch, json_string(rt->exts[i]->id));
        }
    }
    if (s == SG_OK) json_object_set(body, "schemas", sch);
    json_decref(sch);
    return s;
}

void sg_inbound_free(sg_inbound *in)
{
    json_decref(in->body);
    json_decref(in->members);
    in->body = in->members = NULL;
}

sg_status sg_resource_set_id(json_t *body, const char *id)
{
    /* Rebuild so that "id" follows "schemas": readers expect it near the top. */
    json_t *copy = json_copy(body);
    if (!copy) return SG_ENOMEM;
    json_object_clear(body);
    json_t *sch = json_object_get(copy, "schemas");
    if (sch) json_object_set(body, "schemas", sch);
    json_object_set_new(body, "id", json_string(id));
    const char *k;
    json_t *v;
    json_object_foreach(copy, k, v)
    {
        if (strcmp(k, "schemas") && strcmp(k, "id")) json_object_set(body, k, v);
    }
    json_decref(copy);
    return SG_OK;
}

/* ---- index keys ------------------------------------------------------------------ */

static char *ks_str(sg_keyset *ks, const char *s, size_t n)
{
    if (ks->nstr == ks->capstr) {
        size_t cap = ks->capstr ? ks->capstr * 2 : 8;
        char **p = realloc(ks->strings, cap * sizeof *p);
        if (!p) return NULL;
        ks->strings = p;
        ks->capstr = cap;
    }
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    ks->strings[ks->nstr++] = d;
    return d;
}

static sg_status ks_add(sg_keyset *ks, const sg_attr *a, const json_t *v, bool unique)
{
    if (!json_is_string(v)) return SG_OK;
    if (ks->n == ks->cap) {
        size_t cap = ks->cap ? ks->cap * 2 : 8;
        sg_key *p = realloc(ks->keys, cap * sizeof *p);
        if (!p) return SG_ENOMEM;
        ks->keys = p;
        ks->cap = cap;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    const char *value = ks_str(ks, s, n), *folded = value;
    if (!value) return SG_ENOMEM;
    if (!a->case_exact) {
        sg_buf fb = {0};
        if (sg_fold(s, n, &fb) != SG_OK || !(folded = ks_str(ks, fb.data ? fb.data : "", fb.len))) {
            sg_buf_free(&fb);
            return SG_ENOMEM;
        }
        sg_buf_free(&fb);
    }
    ks->keys[ks->n++] = (sg_key){a->path, value, folded, unique ? SG_KEY_UNIQUE : 0};
    return SG_OK;
}

static sg_status keys_of(const sg_attr *attrs, size_t n, const json_t *obj, sg_keyset *ks)
{
    for (size_t i = 0; i < n; i++) {
        const sg_attr *a = &attrs[i];
        const json_t *v = json_object_get(obj, a->name);
        if (!v) continue;
        bool unique = a->uniq != SG_UNIQ_NONE;
        if ((a->flags & SG_ATTR_INDEXED) && !(a->flags & SG_ATTR_META)) {
            sg_status s;
            if (json_is_array(v)) {
                size_t k;
                const json_t *e;
                json_array_foreach(v, k, e) if ((s = ks_add(ks, a, e, unique)) != SG_OK) return s;
            } else if ((s = ks_add(ks, a, v, unique)) != SG_OK) {
                return s;
            }
        }
        for (size_t j = 0; j < a->nsubs; j++) {
            const sg_attr *sub = &a->subs[j];
            if (!(sub->flags & SG_ATTR_INDEXED)) continue;
            size_t m = json_is_array(v) ? json_array_size(v) : 1;
            for (size_t k = 0; k < m; k++) {
                const json_t *e = json_is_array(v) ? json_array_get(v, k) : v;
                sg_status s = ks_add(ks, sub, json_object_get(e, sub->name), false);
                if (s != SG_OK) return s;
            }
        }
    }
    return SG_OK;
}

sg_status sg_resource_keys(const sg_rtdef *rt, const json_t *body, const char *id, sg_keyset *ks)
{
    (void)id;
    memset(ks, 0, sizeof *ks);
    const sg_schema *common = sg_common_schema();
    sg_status s = keys_of(common->attrs, common->nattrs, body, ks);
    if (s == SG_OK) s = keys_of(rt->core->attrs, rt->core->nattrs, body, ks);
    for (size_t i = 0; s == SG_OK && i < rt->nexts; i++) {
        const json_t *e = json_object_get(body, rt->exts[i]->id);
        if (e) s = keys_of(rt->exts[i]->attrs, rt->exts[i]->nattrs, e, ks);
    }
    if (s != SG_OK) sg_keyset_free(ks);
    return s;
}

void sg_keyset_free(sg_keyset *ks)
{
    for (size_t i = 0; i < ks->nstr; i++) free(ks->strings[i]);
    free(ks->strings);
    free(ks->keys);
    memset(ks, 0, sizeof *ks);
}

/* ---- outbound ---------------------------------------------------------------------- */

void sg_resource_etag(int64_t version, char out[48])
{
    snprintf(out, 48, "W/\"%lld\"", (long long)version);
}

sg_status sg_resource_meta_json(const sg_rtdef *rt, const sg_resource *row, const char *base_url,
                                sg_buf *out)
{
    char etag[48];
    sg_resource_etag(row->version, etag);
    sg_status s = sg_buf_printf(out,
                                "{\"resourceType\":\"%s\",\"created\":\"%s\","
                                "\"lastModified\":\"%s\",\"version\":",
                                rt->id, row->created, row->modified);
    s |= sg_buf_json_str(out, etag, strlen(etag));
    s |= sg_buf_puts(out, ",\"location\":");
    sg_buf loc = {0};
    s |= sg_buf_printf(&loc, "%s%s/%s", base_url, rt->endpoint, row->id);
    s |= sg_buf_json_str(out, loc.data ? loc.data : "", loc.len);
    sg_buf_free(&loc);
    s |= sg_buf_putc(out, '}');
    return s ? SG_ENOMEM : SG_OK;
}
