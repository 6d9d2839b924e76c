#include "schema.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define URN_CORE_USER  "urn:ietf:params:scim:schemas:core:2.0:User"
#define URN_CORE_GROUP "urn:ietf:params:scim:schemas:core:2.0:Group"

/* Paths for which the core hands storage index keys (DESIGN §3). */
static const char *const indexed_paths[] = {
    "userName",
    "displayName",
    "externalId",
    "emails.value",
    "urn:scimgate:schemas:extension:lifecycle:2.0:User:state",
};

static struct {
    sg_schema *schemas;
    size_t nschemas;
    sg_rtdef user, group;
    json_t *spc;
    sg_schema common;
    bool loaded;
} g;

/* ---- parsing the documents ------------------------------------------------ */

static bool parse_enum(const json_t *o, const char *key, const char *const *names, size_t n,
                       int def, int *out)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!s) {
        *out = def;
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(s, names[i])) {
            *out = (int)i;
            return true;
        }
    }
    return false;
}

static bool parse_attr(sg_attr *a, const json_t *o, const sg_schema *s, const sg_attr *parent,
                       char *err, size_t errlen)
{
    static const char *const types[] = {"",         "string", "boolean",   "decimal", "integer",
                                        "dateTime", "binary", "reference", "complex"};
    static const char *const muts[] = {"readWrite", "readOnly", "immutable", "writeOnly"};
    static const char *const rets[] = {"default", "always", "never", "request"};
    static const char *const uniqs[] = {"none", "server", "global"};
    const char *name = json_string_value(json_object_get(o, "name"));
    if (!name || !*name) {
        snprintf(err, errlen, "schema %s: an attribute has no name", s->id);
        return false;
    }
    int type, mut, ret, uniq;
    if (!parse_enum(o, "type", types, SG_ARRAY_LEN(types), 1, &type) || type == 0 ||
        !parse_enum(o, "mutability", muts, 4, 0, &mut) ||
        !parse_enum(o, "returned", rets, 4, 0, &ret) ||
        !parse_enum(o, "uniqueness", uniqs, 3, 0, &uniq)) {
        snprintf(err, errlen, "schema %s: attribute %s has an unknown characteristic value", s->id,
                 name);
        return false;
    }
    a->name = sg_xstrdup(name);
    a->type = (sg_atype)type;
    a->mut = (sg_mut)mut;
    a->ret = (sg_ret)ret;
    a->uniq = (sg_uniq)uniq;
    a->multi = json_is_true(json_object_get(o, "multiValued"));
    a->required = json_is_true(json_object_get(o, "required"));
    a->case_exact = json_is_true(json_object_get(o, "caseExact"));
    a->schema = s;
    a->parent = parent;
    /* Canonical path: core attributes by name, extension attributes behind
     * their schema URN, sub-attributes after a dot. */
    char path[512];
    if (parent)
        snprintf(path, sizeof path, "%s.%s", parent->path, name);
    else if (s == &g.common || !strcmp(s->id, URN_CORE_USER) || !strcmp(s->id, URN_CORE_GROUP))
        snprintf(path, sizeof path, "%s", name);
    else
        snprintf(path, sizeof path, "%s:%s", s->id, name);
    a->path = sg_xstrdup(path);
    const json_t *subs = json_object_get(o, "subAttributes");
    if (a->type == SG_AT_COMPLEX) {
        if (parent) {
            snprintf(err, errlen, "schema %s: %s: complex sub-attributes are not allowed", s->id,
                     path);
            return false;
        }
        size_t n = json_array_size(subs);
        a->subs = calloc(n ? n : 1, sizeof *a->subs);
        if (!a->subs) abort();
        for (size_t i = 0; i < n; i++) {
            if (!parse_attr(&a->subs[i], json_array_get(subs, i), s, a, err, errlen)) return false;
            a->nsubs++;
        }
        a->value_sub = sg_attr_sub(a, "value", 5);
    }
    return true;
}

static bool parse_schema(sg_schema *s, json_t *doc, const char *file, char *err, size_t errlen)
{
    const char *id = json_string_value(json_object_get(doc, "id"));
    const json_t *attrs = json_object_get(doc, "attributes");
    if (!id || strncmp(id, "urn:", 4) || !json_is_array(attrs)) {
        snprintf(err, errlen, "%s: a schema needs a URN \"id\" and an \"attributes\" array", file);
        return false;
    }
    s->id = sg_xstrdup(id);
    const char *name = json_string_value(json_object_get(doc, "name"));
    s->name = sg_xstrdup(name ? name : id);
    s->doc = doc;
    size_t n = json_array_size(attrs);
    s->attrs = calloc(n ? n : 1, sizeof *s->attrs);
    if (!s->attrs) abort();
    for (size_t i = 0; i < n; i++) {
        if (!parse_attr(&s->attrs[i], json_array_get(attrs, i), s, NULL, err, errlen)) return false;
        s->nattrs++;
    }
    return true;
}

/* id, externalId and meta belong to every resource (RFC 7643 §3.1) and are
 * not in the schema documents. */
static void build_common(void)
{
    static const char *const text =
        "{\"id\":\"urn:scimgate:common\",\"name\":\"Common\",\"attributes\":["
        "{\"name\":\"id\",\"type\":\"string\",\"caseExact\":true,\"mutability\":\"readOnly\","
        "\"returned\":\"always\",\"uniqueness\":\"server\"},"
        "{\"name\":\"externalId\",\"type\":\"string\",\"caseExact\":true},"
        "{\"name\":\"meta\",\"type\":\"complex\",\"mutability\":\"readOnly\",\"subAttributes\":["
        "{\"name\":\"resourceType\",\"type\":\"string\",\"caseExact\":true,"
        "\"mutability\":\"readOnly\"},"
        "{\"name\":\"created\",\"type\":\"dateTime\",\"mutability\":\"readOnly\"},"
        "{\"name\":\"lastModified\",\"type\":\"dateTime\",\"mutability\":\"readOnly\"},"
        "{\"name\":\"location\",\"type\":\"reference\",\"caseExact\":true,"
        "\"mutability\":\"readOnly\"},"
        "{\"name\":\"version\",\"type\":\"string\",\"caseExact\":true,"
        "\"mutability\":\"readOnly\"}]}]}";
    char err[256];
    json_t *doc = json_loads(text, 0, NULL);
    if (!doc || !parse_schema(&g.common, doc, "common", err, sizeof err)) abort();
}

static void set_flags(sg_attr *a)
{
    if (a->case_exact) a->flags |= SG_ATTR_CASE_EXACT;
    if (a->parent && a->parent->multi) a->flags |= SG_ATTR_MULTI;
    if (!a->parent && a->multi) a->flags |= SG_ATTR_MULTI;
    for (size_t i = 0; i < SG_ARRAY_LEN(indexed_paths); i++)
        if (!strcmp(a->path, indexed_paths[i])) a->flags |= SG_ATTR_INDEXED;
    if (a->schema == &g.common && (!strcmp(a->path, "id") || !strncmp(a->path, "meta.", 5)))
        a->flags |= SG_ATTR_META;
    if (a->schema->id && !strcmp(a->schema->id, URN_CORE_GROUP) &&
        (!strcmp(a->path, "members") || !strcmp(a->path, "members.value")))
        a->flags |= SG_ATTR_MEMBERS;
    for (size_t i = 0; i < a->nsubs; i++) set_flags(&a->subs[i]);
}

/* Could a stored body hold an attribute that is not returned by default?
 * writeOnly attributes are never stored (resource.c), so they do not count. */
static bool has_request(const sg_attr *a)
{
    if (a->mut == SG_MUT_WRITEONLY) return false;
    if (a->ret == SG_RET_REQUEST || a->ret == SG_RET_NEVER) return true;
    for (size_t i = 0; i < a->nsubs; i++)
        if (has_request(&a->subs[i])) return true;
    return false;
}

static const sg_schema *find_schema(const char *id)
{
    for (size_t i = 0; i < g.nschemas; i++)
        if (!strcmp(g.schemas[i].id, id)) return &g.schemas[i];
    return NULL;
}

static bool parse_rt(json_t *doc, const char *file, char *err, size_t errlen)
{
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *ep = json_string_value(json_object_get(doc, "endpoint"));
    const char *core = json_string_value(json_object_get(doc, "schema"));
    sg_rtdef *rt;
    if (id && !strcmp(id, "User"))
        rt = &g.user;
    else if (id && !strcmp(id, "Group"))
        rt = &g.group;
    else {
        snprintf(err, errlen, "%s: only the User and Group resource types are supported", file);
        return false;
    }
    if (!ep || ep[0] != '/' || !core || !(rt->core = find_schema(core))) {
        snprintf(err, errlen, "%s: needs an \"endpoint\" and a \"schema\" that is loaded", file);
        return false;
    }
    rt->type = rt == &g.user ? SG_RT_USER : SG_RT_GROUP;
    rt->id = sg_xstrdup(id);
    rt->endpoint = sg_xstrdup(ep);
    rt->doc = doc;
    const json_t *exts = json_object_get(doc, "schemaExtensions");
    size_t n = json_array_size(exts);
    rt->exts = calloc(n ? n : 1, sizeof *rt->exts);
    rt->ext_required = calloc(n ? n : 1, sizeof *rt->ext_required);
    if (!rt->exts || !rt->ext_required) abort();
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(exts, i);
        const char *urn = json_string_value(json_object_get(e, "schema"));
        const sg_schema *s = urn ? find_schema(urn) : NULL;
        if (!s) {
            snprintf(err, errlen, "%s: extension %s is not a loaded schema", file,
                     urn ? urn : "(none)");
            return false;
        }
        rt->exts[rt->nexts] = s;
        rt->ext_required[rt->nexts] = json_is_true(json_object_get(e, "required"));
        rt->nexts++;
    }
    for (size_t i = 0; i < rt->core->nattrs; i++)
        rt->has_request_attrs |= has_request(&rt->core->attrs[i]);
    for (size_t k = 0; k < rt->nexts; k++)
        for (size_t i = 0; i < rt->exts[k]->nattrs; i++)
            rt->has_request_attrs |= has_request(&rt->exts[k]->attrs[i]);
    return true;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && !strcmp(s + n - m, suffix);
}

bool sg_schemas_load(const char *dir, char *err, size_t errlen)
{
    if (g.loaded) return true;
    build_common();
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot open schemas directory %s", dir);
        return false;
    }
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!ends_with(e->d_name, ".json")) continue;
        char **p = realloc(names, (n + 1) * sizeof *names);
        if (!p) abort();
        names = p;
        names[n++] = sg_xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    g.schemas = calloc(n ? n : 1, sizeof *g.schemas);
    if (!g.schemas) abort();
    json_t **rts = calloc(n ? n : 1, sizeof *rts);
    char **rtnames = calloc(n ? n : 1, sizeof *rtnames);
    size_t nrts = 0;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        json_error_t je;
        json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
        if (!doc) {
            snprintf(err, errlen, "%s: line %d: %s", path, je.line, je.text);
            ok = false;
        } else if (ends_with(names[i], ".schema.json")) {
            ok = parse_schema(&g.schemas[g.nschemas], doc, path, err, errlen);
            g.nschemas++;
            if (!ok) g.schemas[g.nschemas - 1].doc = NULL, json_decref(doc);
        } else if (ends_with(names[i], ".resourcetype.json")) {
            rts[nrts] = doc;
            rtnames[nrts++] = names[i];
        } else if (!strcmp(names[i], "ServiceProviderConfig.json")) {
            g.spc = doc;
        } else {
            json_decref(doc);
        }
    }
    for (size_t i = 0; i < nrts; i++) {
        if (ok) ok = parse_rt(rts[i], rtnames[i], err, errlen);
        if (!ok && rts[i] != g.user.doc && rts[i] != g.group.doc) json_decref(rts[i]);
    }
    free(rts);
    free(rtnames);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    if (ok && (!g.user.core || !g.group.core || !g.spc)) {
        snprintf(err, errlen,
                 "%s must hold User.resourcetype.json, Group.resourcetype.json, their schemas "
                 "and ServiceProviderConfig.json",
                 dir);
        ok = false;
    }
    if (ok) {
        for (size_t i = 0; i < g.common.nattrs; i++) set_flags(&g.common.attrs[i]);
        for (size_t k = 0; k < g.nschemas; k++)
            for (size_t i = 0; i < g.schemas[k].nattrs; i++) set_flags(&g.schemas[k].attrs[i]);
        g.loaded = true;
    } else {
        sg_schemas_free();
    }
    return ok;
}

static void free_attr(sg_attr *a)
{
    for (size_t i = 0; i < a->nsubs; i++) free_attr(&a->subs[i]);
    free(a->subs);
    free(a->name);
    free(a->path);
}

static void free_schema(sg_schema *s)
{
    for (size_t i = 0; i < s->nattrs; i++) free_attr(&s->attrs[i]);
    free(s->attrs);
    free(s->id);
    free(s->name);
    json_decref(s->doc);
    memset(s, 0, sizeof *s);
}

static void free_rt(sg_rtdef *rt)
{
    free(rt->id);
    free(rt->endpoint);
    free(rt->exts);
    free(rt->ext_required);
    json_decref(rt->doc);
    memset(rt, 0, sizeof *rt);
}

void sg_schemas_free(void)
{
    for (size_t i = 0; i < g.nschemas; i++) free_schema(&g.schemas[i]);
    free(g.schemas);
    free_schema(&g.common);
    free_rt(&g.user);
    free_rt(&g.group);
    json_decref(g.spc);
    memset(&g, 0, sizeof g);
}

/* ---- look-ups -------------------------------------------------------------- */

const sg_rtdef *sg_rt(sg_rtype type)
{
    return type == SG_RT_USER ? &g.user : &g.group;
}

const sg_rtdef *sg_rt_by_endpoint(const char *seg, size_t len)
{
    if (g.user.endpoint && sg_str_ieq(g.user.endpoint + 1, seg, len)) return &g.user;
    if (g.group.endpoint && sg_str_ieq(g.group.endpoint + 1, seg, len)) return &g.group;
    return NULL;
}

const sg_schema *sg_schema_list(size_t *n)
{
    *n = g.nschemas;
    return g.schemas;
}

const sg_schema *sg_schema_by_id(const char *urn, size_t len)
{
    for (size_t i = 0; i < g.nschemas; i++)
        if (sg_str_ieq(g.schemas[i].id, urn, len)) return &g.schemas[i];
    return NULL;
}

const json_t *sg_spc_doc(void)
{
    return g.spc;
}

const sg_schema *sg_common_schema(void)
{
    return &g.common;
}

const sg_attr *sg_attr_sub(const sg_attr *a, const char *name, size_t len)
{
    for (size_t i = 0; i < a->nsubs; i++)
        if (sg_str_ieq(a->subs[i].name, name, len)) return &a->subs[i];
    return NULL;
}

static const sg_attr *schema_attr(const sg_schema *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->nattrs; i++)
        if (sg_str_ieq(s->attrs[i].name, name, len)) return &s->attrs[i];
    return NULL;
}

bool sg_rt_has_schema(const sg_rtdef *rt, const sg_schema *s)
{
    if (rt->core == s) return true;
    for (size_t i = 0; i < rt->nexts; i++)
        if (rt->exts[i] == s) return true;
    return false;
}

/* Resolve "attr" or "attr.sub" inside one schema. */
static bool resolve_in(const sg_schema *s, const char *p, size_t len, sg_resolved *out)
{
    const char *dot = memchr(p, '.', len);
    size_t alen = dot ? (size_t)(dot - p) : len;
    const sg_attr *a = schema_attr(s, p, alen);
    if (!a) return false;
    out->schema = s;
    out->attr = a;
    out->sub = NULL;
    if (dot) {
        out->sub = sg_attr_sub(a, dot + 1, len - alen - 1);
        if (!out->sub) return false;
    }
    return true;
}

bool sg_schema_resolve(const sg_rtdef *rt, const char *path, size_t len, sg_resolved *out)
{
    memset(out, 0, sizeof *out);
    if (len >= 4 && !strncasecmp(path, "urn:", 4)) {
        /* The longest schema id that prefixes the path wins. */
        const sg_schema *best = NULL;
        size_t n = 1 + rt->nexts;
        for (size_t i = 0; i < n; i++) {
            const sg_schema *s = i == 0 ? rt->core : rt->exts[i - 1];
            size_t idl = strlen(s->id);
            if (idl > len || strncasecmp(path, s->id, idl)) continue;
            if (idl < len && path[idl] != ':' && path[idl] != '.') continue;
            if (!best || idl > strlen(best->id)) best = s;
        }
        if (!best) return false;
        size_t idl = strlen(best->id);
        if (idl == len) {
            out->schema = best;
            return true;
        }
        return resolve_in(best, path + idl + 1, len - idl - 1, out);
    }
    if (resolve_in(&g.common, path, len, out)) {
        out->common = true;
        return true;
    }
    if (resolve_in(rt->core, path, len, out)) return true;
    /* A bare extension attribute: Entra's old samples say "manager" for the
     * enterprise extension's manager. The first extension that has it. */
    for (size_t i = 0; i < rt->nexts; i++)
        if (resolve_in(rt->exts[i], path, len, out)) return true;
    return false;
}

void sg_attr_ref_fill(sg_attr_ref *ref, const sg_attr *attr, const sg_attr *sub)
{
    const sg_attr *leaf = sub ? sub : attr;
    ref->schema = attr->schema->id;
    ref->name = attr->name;
    ref->sub = sub ? sub->name : NULL;
    ref->path = leaf->path;
    ref->type = leaf->type;
    ref->flags = leaf->flags | (attr->multi ? SG_ATTR_MULTI : 0);
}
