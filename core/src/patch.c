#include "patch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "log.h"
#include "resource.h"
#include "util.h"

typedef enum { OP_ADD, OP_REPLACE, OP_REMOVE } op_kind;

typedef struct pctx {
    const sg_rtdef *rt;
    json_t *body; /* the working copy */
    sg_patch_result *out;
    const sg_filter_limits *lim;
    sg_error *err;
    size_t opn; /* 1-based index of the operation being applied */
} pctx;

/* A parsed path. */
typedef struct target {
    sg_resolved r;        /* attribute (and sub-attribute) named          */
    bool unknown;         /* names nothing we store: the op is ignored    */
    sg_filter_tree *tree; /* value path filter, or NULL                   */
    const sg_filter *vp;  /* its SG_FOP_VALUEPATH node                    */
    const sg_attr *vsub;  /* sub-attribute after "].", or NULL            */
} target;

static sg_status fail(pctx *c, const char *scim_type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static sg_status fail(pctx *c, const char *scim_type, const char *fmt, ...)
{
    char msg[SG_DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sg_error_set(c->err, SG_EINVALID, scim_type, "operation %zu: %s", c->opn, msg);
}

/* Prefix an error set by a helper with the operation's index. */
static sg_status prefixed(pctx *c, sg_status s)
{
    if (s == SG_OK || !c->err) return s;
    if (s == SG_ENOMEM) return s;
    char msg[SG_DETAIL_MAX];
    snprintf(msg, sizeof msg, "%s", c->err->detail);
    sg_error_set(c->err, s, c->err->scim_type, "operation %zu: %s", c->opn, msg);
    return s;
}

static sg_status oom(pctx *c)
{
    return sg_error_set(c->err, SG_ENOMEM, NULL, "out of memory");
}

/* ---- membership changes --------------------------------------------------- */

static sg_status member_change(pctx *c, sg_member_op op, json_t *ids)
{
    sg_patch_result *r = c->out;
    sg_member_change *p = realloc(r->members, (r->nmembers + 1) * sizeof *p);
    if (!p) {
        json_decref(ids);
        return oom(c);
    }
    r->members = p;
    r->members[r->nmembers].op = op;
    r->members[r->nmembers].ids = ids ? ids : json_array();
    r->members[r->nmembers].op_index = c->opn;
    r->nmembers++;
    return r->members[r->nmembers - 1].ids ? SG_OK : oom(c);
}

/* Member ids from a value: [{"value": id}, ...], a single object, or bare
 * ids. */
static sg_status member_ids(pctx *c, const sg_attr *members, const json_t *value, json_t **ids)
{
    json_t *conv;
    *ids = NULL;
    sg_status s = sg_attr_convert(members, value, &conv, c->err);
    if (s != SG_OK) return prefixed(c, s);
    json_t *out = json_array();
    if (!out) {
        json_decref(conv);
        return oom(c);
    }
    size_t i;
    json_t *e;
    json_array_foreach(conv, i, e)
    {
        json_t *v = json_object_get(e, "value");
        if (!json_is_string(v)) {
            json_decref(conv);
            json_decref(out);
            return fail(c, "invalidValue", "every member needs a \"value\" (the member's id)");
        }
        json_array_append(out, v);
    }
    json_decref(conv);
    *ids = out;
    return SG_OK;
}

/* ---- paths -------------------------------------------------------------------- */

static void target_free(target *t)
{
    sg_filter_free(t->tree);
    t->tree = NULL;
}

/* Where the bracket that closes `[` at s[open] is, skipping quoted text. */
static size_t closing_bracket(const char *s, size_t n, size_t open)
{
    bool in_str = false;
    for (size_t i = open + 1; i < n; i++) {
        if (in_str) {
            if (s[i] == '\\')
                i++;
            else if (s[i] == '"')
                in_str = false;
        } else if (s[i] == '"') {
            in_str = true;
        } else if (s[i] == ']') {
            return i;
        }
    }
    return n;
}

static bool name_char(char ch, bool first)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '$' ||
           (!first && ((ch >= '0' && ch <= '9') || ch == '_' || ch == '-'));
}

/* attrPath syntax (RFC 7644 §3.10): [URN ":"] ATTRNAME ["." ATTRNAME]. An
 * unknown but well-formed path is ignored; a malformed one is an error. */
static bool path_syntax_ok(const char *p, size_t n)
{
    if (n > 4 && !strncasecmp(p, "urn:", 4)) {
        const char *colon = p + n;
        while (colon > p && colon[-1] != ':') colon--;
        n -= (size_t)(colon - p);
        p = colon;
    }
    int parts = 0;
    for (size_t i = 0; i <= n; parts++) {
        size_t b = i;
        while (i < n && p[i] != '.') {
            if (!name_char(p[i], i == b)) return false;
            i++;
        }
        if (i == b) return false; /* empty name */
        i++;
    }
    return parts <= 2;
}

static sg_status parse_path(pctx *c, const char *path, target *t)
{
    memset(t, 0, sizeof *t);
    size_t n = strlen(path);
    while (n && (path[n - 1] == ' ' || path[n - 1] == '\t')) n--;
    while (n && (*path == ' ' || *path == '\t')) path++, n--;
    if (n == 0) return fail(c, "invalidPath", "the path is empty");
    const char *br = memchr(path, '[', n);
    size_t attr_len = br ? (size_t)(br - path) : n;
    if (!path_syntax_ok(path, attr_len))
        return fail(c, "invalidPath", "\"%.*s\" is not an attribute path", (int)attr_len, path);
    if (!br) {
        if (!sg_schema_resolve(c->rt, path, n, &t->r)) t->unknown = true;
        return SG_OK;
    }
    size_t open = attr_len, close = closing_bracket(path, n, open);
    if (close >= n) return fail(c, "invalidPath", "\"]\" is missing in the path");
    if (!sg_schema_resolve(c->rt, path, open, &t->r) || !t->r.attr) {
        t->unknown = true;
        return SG_OK;
    }
    if (t->r.sub || t->r.attr->type != SG_AT_COMPLEX)
        return fail(c, "invalidPath", "a value filter needs a complex attribute");
    if (close + 1 < n) {
        if (path[close + 1] != '.' || close + 2 >= n)
            return fail(c, "invalidPath", "only \".sub-attribute\" may follow \"]\" in a path");
        t->vsub = sg_attr_sub(t->r.attr, path + close + 2, n - close - 2);
        if (!t->vsub) {
            t->unknown = true;
            return SG_OK;
        }
    }
    sg_status s = sg_filter_parse(c->rt, path, close + 1, c->lim, &t->tree, c->err);
    if (s != SG_OK) return prefixed(c, s);
    t->vp = sg_filter_root(t->tree);
    if (t->vp->op != SG_FOP_VALUEPATH) {
        target_free(t);
        return fail(c, "invalidPath", "the path is not a value path");
    }
    return SG_OK;
}

/* ---- where attributes live -------------------------------------------------------- */

/* The object holding `r`'s attribute: the body, or the extension object
 * (created when `create`). NULL when absent and not created. */
static json_t *container(pctx *c, const sg_resolved *r, bool create)
{
    if (r->common || r->schema == c->rt->core) return c->body;
    json_t *e = json_object_get(c->body, r->schema->id);
    if (!e && create) {
        e = json_object();
        if (!e) return NULL;
        json_object_set_new(c->body, r->schema->id, e);
    }
    return e;
}

static bool is_members(pctx *c, const sg_attr *a)
{
    return c->rt->type == SG_RT_GROUP && a && (a->flags & SG_ATTR_MEMBERS) && !a->parent;
}

/* Keep `primary` unique: when any element in `touched` says primary true,
 * every other element that says so is set to false (RFC 7643 §2.4). */
static void unique_primary(json_t *arr, const json_t *keep)
{
    if (!json_is_array(arr) || !json_is_true(json_object_get(keep, "primary"))) return;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (e != keep && json_is_true(json_object_get(e, "primary")))
            json_object_set_new(e, "primary", json_false());
    }
}

static sg_status check_immutable(pctx *c, const sg_attr *a, const json_t *old, const json_t *now)
{
    if (a->mut == SG_MUT_IMMUTABLE && old && !json_equal(old, now))
        return fail(c, "mutability", "attribute \"%s\" is immutable", a->path);
    return SG_OK;
}

/* ---- add and replace --------------------------------------------------------------- */

/* Set attribute r (whole, or one sub-attribute) from `value`. `explicit`
 * says the client named it in a path (then read-only is an error; in a
 * path-less value object it is ignored, as in a POST). */
static sg_status put_attr(pctx *c, op_kind op, const sg_resolved *r, const json_t *value,
                          bool explicit)
{
    const sg_attr *a = r->attr;
    if (a->mut == SG_MUT_READONLY) {
        if (explicit) return fail(c, "mutability", "attribute \"%s\" is read-only", a->path);
        return SG_OK;
    }
    if (a->mut == SG_MUT_WRITEONLY) return SG_OK; /* never stored (resource.c) */
    if (is_members(c, a)) {
        if (r->sub)
            return fail(c, "invalidPath", "members are changed as a whole: use \"members\"");
        json_t *ids;
        sg_status s = member_ids(c, a, value, &ids);
        if (s != SG_OK) return s;
        if (op == OP_REPLACE && (s = member_change(c, SG_MEMBERS_CLEAR, NULL)) != SG_OK) {
            json_decref(ids);
            return s;
        }
        if (json_array_size(ids) == 0) {
            json_decref(ids);
            return SG_OK;
        }
        return member_change(c, SG_MEMBERS_ADD, ids);
    }
    json_t *cont = container(c, r, true);
    if (!cont) return oom(c);
    json_t *old = json_object_get(cont, a->name), *conv;
    sg_status s;
    if (r->sub) {
        if (a->multi)
            return fail(c, "invalidPath",
                        "a sub-attribute of multi-valued \"%s\" needs a value filter, such as "
                        "%s[type eq \"work\"].%s",
                        a->path, a->name, r->sub->name);
        if (r->sub->mut == SG_MUT_READONLY)
            return explicit ? fail(c, "mutability", "attribute \"%s\" is read-only", r->sub->path)
                            : SG_OK;
        if ((s = sg_attr_convert(r->sub, value, &conv, c->err)) != SG_OK) return prefixed(c, s);
        json_t *obj = json_is_object(old) ? old : NULL;
        if (!obj) {
            if (!conv) return SG_OK;
            obj = json_object();
            if (!obj) {
                json_decref(conv);
                return oom(c);
            }
            json_object_set_new(cont, a->name, obj);
        }
        if (conv)
            json_object_set_new(obj, r->sub->name, conv);
        else
            json_object_del(obj, r->sub->name);
        if (json_object_size(obj) == 0) json_object_del(cont, a->name);
        return SG_OK;
    }
    if ((s = sg_attr_convert(a, value, &conv, c->err)) != SG_OK) return prefixed(c, s);
    if (!conv) {
        /* "", null, {"value": ""}: the attribute is cleared (Entra's manager
         * removal and the null-update test). */
        json_object_del(cont, a->name);
        return SG_OK;
    }
    if (a->multi) {
        if (op == OP_ADD && json_is_array(old)) {
            /* Add appends what is not there yet (RFC 7644 §3.5.2.1). */
            size_t i, k;
            json_t *e, *o;
            json_array_foreach(conv, i, e)
            {
                bool present = false;
                json_array_foreach(old, k, o) present |= json_equal(o, e);
                if (present) continue;
                json_array_append(old, e);
                unique_primary(old, e);
            }
            json_decref(conv);
            return SG_OK;
        }
        json_object_set_new(cont, a->name, conv);
        return SG_OK;
    }
    if (a->type == SG_AT_COMPLEX && json_is_object(old) &&
        !(a->value_sub && json_object_get(conv, a->value_sub->name))) {
        /* Replacing some sub-attributes keeps the others (§3.5.2.3); a new
         * "value" (a new manager) replaces the whole object, so that no
         * stale $ref survives. */
        json_object_update(old, conv);
        json_decref(conv);
        return SG_OK;
    }
    if ((s = check_immutable(c, a, old, conv)) != SG_OK) {
        json_decref(conv);
        return s;
    }
    json_object_set_new(cont, a->name, conv);
    return SG_OK;
}

/* Put into `into` the element a value path creates when nothing matches:
 * the equality conditions of its filter (emails[type eq "work"] gives
 * {"type": "work"}). false when the filter is not a conjunction of
 * equalities (or on allocation failure); the caller owns `into` either way. */
static bool element_from_filter(const sg_filter *f, json_t *into)
{
    if (f->op == SG_FOP_AND)
        return element_from_filter(f->a, into) && element_from_filter(f->b, into);
    if (f->op != SG_FOP_EQ || !f->attr.sub) return false;
    json_t *v = f->vtype == SG_VT_STRING   ? json_stringn(f->str, f->len)
                : f->vtype == SG_VT_BOOL   ? json_boolean(f->boolean)
                : f->vtype == SG_VT_NUMBER ? json_real(f->num)
                                           : NULL;
    return v && json_object_set_new(into, f->attr.sub, v) == 0;
}

static sg_status match_elements(pctx *c, const target *t, json_t *arr, bool *matches, size_t n)
{
    sg_resource row = {.type = c->rt->type,
                       .id = json_string_value(json_object_get(c->body, "id"))};
    if (!row.id) row.id = "";
    row.created = row.modified = "";
    sg_eval_ctx ec = {c->rt, c->body, &row, NULL, NULL};
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_is_array(arr) ? json_array_get(arr, i) : arr;
        sg_status s = sg_filter_eval_element(t->vp, &ec, e, &matches[i]);
        if (s != SG_OK) return prefixed(c, s);
    }
    return SG_OK;
}

static sg_status put_valuepath(pctx *c, op_kind op, const target *t, const json_t *value)
{
    const sg_attr *a = t->r.attr;
    if (a->mut == SG_MUT_READONLY)
        return fail(c, "mutability", "attribute \"%s\" is read-only", a->path);
    if (is_members(c, a)) return fail(c, "invalidPath", "members are added with path \"members\"");
    json_t *cont = container(c, &t->r, true);
    if (!cont) return oom(c);
    json_t *cur = json_object_get(cont, a->name), *conv = NULL;
    const sg_attr *leaf = t->vsub ? t->vsub : a;
    if (leaf->mut == SG_MUT_READONLY)
        return fail(c, "mutability", "attribute \"%s\" is read-only", leaf->path);
    sg_status s = sg_attr_convert_one(leaf, value, &conv, c->err);
    if (s != SG_OK) return prefixed(c, s);
    size_t n = json_is_array(cur) ? json_array_size(cur) : cur ? 1 : 0;
    bool *m = calloc(n ? n : 1, sizeof *m);
    if (!m) {
        json_decref(conv);
        return oom(c);
    }
    if ((s = match_elements(c, t, cur, m, n)) != SG_OK) goto out;
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        if (!m[i]) continue;
        hits++;
        json_t *e = json_is_array(cur) ? json_array_get(cur, i) : cur;
        if (t->vsub) {
            if (conv)
                json_object_set(e, t->vsub->name, conv);
            else
                json_object_del(e, t->vsub->name);
        } else if (conv) {
            if (op == OP_REPLACE) json_object_clear(e);
            json_object_update(e, conv);
        }
        if (json_is_array(cur)) unique_primary(cur, e);
    }
    if (hits == 0 && conv) {
        /* Entra expects add and replace to create the element (ENTRA.md
         * §2.6.3): the filter's equalities plus the value. */
        json_t *e = json_object();
        if (!e) {
            s = oom(c);
            goto out;
        }
        if (!element_from_filter(t->vp->a, e)) {
            json_decref(e);
            s = fail(c, "noTarget",
                     "no value matches the path's filter, and the filter does "
                     "not say how to create one");
            goto out;
        }
        if (t->vsub)
            json_object_set(e, t->vsub->name, conv);
        else
            json_object_update(e, conv);
        if (a->multi) {
            if (!json_is_array(cur)) {
                cur = json_array();
                json_object_set_new(cont, a->name, cur);
            }
            json_array_append_new(cur, e);
            unique_primary(cur, e);
        } else {
            /* This frees the old value `cur` pointed at. */
            json_object_set_new(cont, a->name, e);
            cur = e;
        }
    }
    /* Elements left empty by clearing a sub-attribute go away. */
    if (json_is_array(cur)) {
        for (size_t i = json_array_size(cur); i-- > 0;)
            if (json_object_size(json_array_get(cur, i)) == 0) json_array_remove(cur, i);
    } else if (cur && json_object_size(cur) == 0) {
        json_object_del(cont, a->name);
    }
out:
    free(m);
    json_decref(conv);
    return s;
}

/* ---- remove ----------------------------------------------------------------------- */

/* Ids named by a members filter: value eq "x", joined with or. */
static bool filter_ids(const sg_filter *f, json_t *ids)
{
    if (f->op == SG_FOP_OR) return filter_ids(f->a, ids) && filter_ids(f->b, ids);
    if (f->op != SG_FOP_EQ || f->vtype != SG_VT_STRING || !f->attr.sub ||
        strcmp(f->attr.sub, "value"))
        return false;
    json_array_append_new(ids, json_stringn(f->str, f->len));
    return true;
}

/* Does element `e` of a multi-valued attribute equal one of the `given`
 * values? Compared by "value" when the attribute has one. */
static bool listed(const sg_attr *a, const json_t *e, const json_t *given)
{
    size_t i;
    json_t *g;
    json_array_foreach(given, i, g)
    {
        if (a->value_sub) {
            json_t *ev = json_object_get(e, a->value_sub->name);
            json_t *gv = json_object_get(g, a->value_sub->name);
            if (ev && gv && json_equal(ev, gv)) return true;
        } else if (json_equal(e, g)) {
            return true;
        }
    }
    return false;
}

static sg_status remove_target(pctx *c, const target *t, const json_t *value)
{
    const sg_resolved *r = &t->r;
    const sg_attr *a = r->attr;
    if (!a) {
        if (r->schema == c->rt->core || r->common)
            return fail(c, "invalidPath", "the core schema cannot be removed");
        json_object_del(c->body, r->schema->id); /* the whole extension */
        return SG_OK;
    }
    const sg_attr *leaf = t->vsub ? t->vsub : r->sub ? r->sub : a;
    if (a->mut == SG_MUT_READONLY || leaf->mut == SG_MUT_READONLY)
        return fail(c, "mutability", "attribute \"%s\" is read-only", leaf->path);
    if (is_members(c, a)) {
        json_t *ids;
        sg_status s;
        if (t->vp) {
            if (t->vsub) return fail(c, "invalidPath", "members are removed whole");
            ids = json_array();
            if (!ids) return oom(c);
            if (!filter_ids(t->vp->a, ids)) {
                json_decref(ids);
                return fail(c, "invalidFilter",
                            "members are removed by id: members[value eq \"<id>\"]");
            }
            return member_change(c, SG_MEMBERS_REMOVE, ids);
        }
        if (!value || json_is_null(value)) return member_change(c, SG_MEMBERS_CLEAR, NULL);
        /* Entra's default mode: remove only the listed members, never all
         * (ENTRA.md §3.3). */
        if ((s = member_ids(c, a, value, &ids)) != SG_OK) return s;
        return member_change(c, SG_MEMBERS_REMOVE, ids);
    }
    json_t *cont = container(c, r, false);
    json_t *cur = cont ? json_object_get(cont, a->name) : NULL;
    if (!cur) return SG_OK; /* removing what is not there changes nothing */
    if (t->vp) {
        size_t n = json_is_array(cur) ? json_array_size(cur) : 1;
        bool *m = calloc(n, sizeof *m);
        if (!m) return oom(c);
        sg_status s = match_elements(c, t, cur, m, n);
        for (size_t i = n; s == SG_OK && i-- > 0;) {
            if (!m[i]) continue;
            json_t *e = json_is_array(cur) ? json_array_get(cur, i) : cur;
            if (t->vsub) json_object_del(e, t->vsub->name);
            bool drop = !t->vsub || json_object_size(e) == 0;
            if (drop && json_is_array(cur)) {
                json_array_remove(cur, i);
            } else if (drop) {
                json_object_del(cont, a->name); /* frees cur */
                cur = NULL;
            }
        }
        free(m);
        if (s != SG_OK) return s;
    } else if (r->sub) {
        size_t n = json_is_array(cur) ? json_array_size(cur) : 1;
        for (size_t i = 0; i < n; i++)
            json_object_del(json_is_array(cur) ? json_array_get(cur, i) : cur, r->sub->name);
    } else if (a->multi && value && !json_is_null(value)) {
        /* Remove the listed values only. */
        json_t *given;
        sg_status s = sg_attr_convert(a, value, &given, c->err);
        if (s != SG_OK) return prefixed(c, s);
        for (size_t i = json_array_size(cur); given && i-- > 0;)
            if (listed(a, json_array_get(cur, i), given)) json_array_remove(cur, i);
        json_decref(given);
    } else {
        json_object_del(cont, a->name);
        cur = NULL;
    }
    if (cur && ((json_is_array(cur) && json_array_size(cur) == 0) ||
                (json_is_object(cur) && json_object_size(cur) == 0)))
        json_object_del(cont, a->name);
    return SG_OK;
}

/* ---- path-less values ---------------------------------------------------------------- */

static sg_status put_object(pctx *c, op_kind op, const sg_schema *only, const json_t *obj)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        sg_resolved r;
        bool ok;
        if (!only && !strcasecmp(k, "schemas")) continue;
        if (only) {
            char path[512];
            snprintf(path, sizeof path, "%s:%s", only->id, k);
            ok = sg_schema_resolve(c->rt, path, strlen(path), &r);
        } else {
            ok = sg_schema_resolve(c->rt, k, strlen(k), &r);
        }
        if (!ok) {
            sg_log(SG_LOG_DEBUG, "scim", "PATCH ignored unknown attribute %.100s", k);
            continue;
        }
        sg_status s;
        if (!r.attr) {
            /* {"urn:...:enterprise:2.0:User": {...}}: that schema's attributes. */
            if (!json_is_object(v))
                return fail(c, "invalidValue", "\"%s\" must be an object of its attributes",
                            r.schema->id);
            s = put_object(c, op, r.schema == c->rt->core ? NULL : r.schema, v);
        } else {
            s = put_attr(c, op, &r, v, false);
        }
        if (s != SG_OK) return s;
    }
    return SG_OK;
}

/* ---- one operation ------------------------------------------------------------------- */

static sg_status apply_op(pctx *c, const json_t *o)
{
    if (!json_is_object(o)) return fail(c, "invalidSyntax", "an operation must be an object");
    const char *opname = json_string_value(sg_json_iget(o, "op", NULL));
    const json_t *pathv = sg_json_iget(o, "path", NULL);
    const json_t *value = sg_json_iget(o, "value", NULL);
    op_kind op;
    if (opname && !strcasecmp(opname, "add"))
        op = OP_ADD;
    else if (opname && !strcasecmp(opname, "replace"))
        op = OP_REPLACE;
    else if (opname && !strcasecmp(opname, "remove"))
        op = OP_REMOVE;
    else
        return fail(c, "invalidSyntax", "\"op\" must be add, replace or remove");
    if (pathv && !json_is_null(pathv) && !json_is_string(pathv))
        return fail(c, "invalidPath", "\"path\" must be a string");
    const char *path = json_string_value(pathv);
    if (path && !*path) path = NULL;

    if (!path) {
        if (op == OP_REMOVE) return fail(c, "noTarget", "remove needs a path");
        if (!json_is_object(value))
            return fail(c, "invalidSyntax",
                        "without a path, \"value\" must be an object of attributes");
        return put_object(c, op, NULL, value);
    }
    if (op != OP_REMOVE && !value)
        return fail(c, "invalidSyntax", "%s needs a \"value\"", op == OP_ADD ? "add" : "replace");
    target t;
    sg_status s = parse_path(c, path, &t);
    if (s != SG_OK) return s;
    if (t.unknown) {
        /* An attribute this gateway does not keep: ignore it, as a POST
         * would, so that an unusual mapping cannot fail every cycle. */
        sg_log(SG_LOG_DEBUG, "scim", "PATCH ignored unknown path %.200s", path);
        return SG_OK;
    }
    if (op == OP_REMOVE)
        s = remove_target(c, &t, value);
    else if (t.vp)
        s = put_valuepath(c, op, &t, value);
    else if (!t.r.attr) {
        if (!json_is_object(value))
            s = fail(c, "invalidValue", "\"%s\" takes an object of its attributes", t.r.schema->id);
        else
            s = put_object(c, op, t.r.schema == c->rt->core ? NULL : t.r.schema, value);
    } else {
        s = put_attr(c, op, &t.r, value, true);
    }
    target_free(&t);
    return s;
}

sg_status sg_patch_apply(const sg_rtdef *rt, const json_t *body, const json_t *req,
                         const sg_filter_limits *lim, sg_patch_result *out, sg_error *err)
{
    memset(out, 0, sizeof *out);
    pctx c = {.rt = rt, .out = out, .lim = lim, .err = err, .opn = 0};
    if (!json_is_object(req))
        return sg_error_set(err, SG_EINVALID, "invalidSyntax", "the body must be a PatchOp object");
    const json_t *ops = sg_json_iget(req, "Operations", NULL);
    if (!json_is_array(ops) || json_array_size(ops) == 0)
        return sg_error_set(err, SG_EINVALID, "invalidSyntax",
                            "\"Operations\" must be a non-empty array");
    c.body = json_deep_copy(body);
    if (!c.body) return sg_error_set(err, SG_ENOMEM, NULL, "out of memory");
    out->body = c.body;
    size_t i;
    const json_t *o;
    json_array_foreach(ops, i, o)
    {
        c.opn = i + 1;
        sg_status s = apply_op(&c, o);
        /* Check after every operation, so that the error names it. */
        if (s == SG_OK) s = prefixed(&c, sg_resource_finish(rt, c.body, err));
        if (s != SG_OK) return s;
    }
    out->changed = !json_equal(body, c.body);
    return SG_OK;
}

void sg_patch_result_free(sg_patch_result *r)
{
    json_decref(r->body);
    for (size_t i = 0; i < r->nmembers; i++) json_decref(r->members[i].ids);
    free(r->members);
    memset(r, 0, sizeof *r);
}
