/*
** /Users and /Groups: create, read, list with filter and paging, replace,
** delete. Each request runs in one storage transaction, so it commits whole
** or changes nothing.
**
** Reads stream the stored canonical JSON into the response when nothing
** needs reshaping (DESIGN §7); only projections parse it.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cursor.h"
#include "fold.h"
#include "json.h"
#include "lifecycle.h"
#include "log.h"
#include "lua_host.h"
#include "patch.h"
#include "project.h"
#include "query.h"
#include "resource.h"
#include "scim.h"
#include "util.h"

#define ID_MAX 64

typedef struct rctx {
    sg_worker *w;
    sg_request *req;
    sg_response *res;
    const sg_rtdef *rt;
    const sg_storage_vtab *st;
    sg_conn *conn;
    const char *tenant;
    sg_error err;
    bool in_txn;
    sg_hook_ctx hctx;   /* what hook scripts see as ctx */
    char actor_who[96]; /* who is writing, for events: "token:<id>" */
    sg_lc lc;           /* lifecycle, events and settings in this transaction */
    sg_lc_effects fx;   /* a user write's lifecycle consequences */
} rctx;

/* A row copied out of a storage callback. */
typedef struct rowcopy {
    char id[ID_MAX + 1];
    int64_t version;
    char created[SG_TIME_MAX];
    char modified[SG_TIME_MAX];
    char *json;
    size_t len;
} rowcopy;

static sg_status copy_row(rowcopy *rc, const sg_resource *row)
{
    snprintf(rc->id, sizeof rc->id, "%s", row->id);
    snprintf(rc->created, sizeof rc->created, "%s", row->created);
    snprintf(rc->modified, sizeof rc->modified, "%s", row->modified);
    rc->version = row->version;
    rc->json = malloc(row->json_len + 1);
    if (!rc->json) return SG_ENOMEM;
    memcpy(rc->json, row->json, row->json_len);
    rc->json[row->json_len] = '\0';
    rc->len = row->json_len;
    return SG_OK;
}

static sg_resource as_resource(const rowcopy *rc, sg_rtype type)
{
    return (sg_resource){.type = type,
                         .id = rc->id,
                         .version = rc->version,
                         .created = rc->created,
                         .modified = rc->modified,
                         .json = rc->json,
                         .json_len = rc->len};
}

/* ---- transactions and errors ------------------------------------------- */

static bool fail(rctx *c)
{
    if (c->in_txn) {
        c->st->rollback(c->conn);
        c->in_txn = false;
    }
    sg_respond_sg_error(c->res, &c->err);
    return false;
}

static bool begin(rctx *c, sg_txn_mode mode)
{
    if (sg_worker_conn(c->w, &c->conn, &c->err) != SG_OK) return fail(c);
    if (c->st->begin(c->conn, mode, &c->err) != SG_OK) return fail(c);
    c->in_txn = true;
    sg_lc_done(&c->lc); /* settings are read again in each transaction */
    c->lc.conn = c->conn;
    return true;
}

static bool commit(rctx *c)
{
    c->in_txn = false;
    if (c->st->commit(c->conn, &c->err) != SG_OK) {
        c->st->rollback(c->conn);
        return fail(c);
    }
    return true;
}

/* ---- rendering ------------------------------------------------------------ */

typedef struct members_out {
    sg_buf *b;
    const char *tenant_url;
    size_t n;
} members_out;

static sg_status member_json(void *ud, const sg_member *m)
{
    members_out *mo = ud;
    const char *type = m->type == SG_RT_GROUP ? "Group" : "User";
    sg_status s = sg_buf_puts(mo->b, mo->n++ ? ",{\"value\":" : "{\"value\":");
    s |= sg_buf_json_str(mo->b, m->value, strlen(m->value));
    sg_buf ref = {0};
    s |= sg_buf_printf(&ref, "%s/%ss/%s", mo->tenant_url, type, m->value);
    s |= sg_buf_puts(mo->b, ",\"$ref\":");
    s |= sg_buf_json_str(mo->b, ref.data ? ref.data : "", ref.len);
    sg_buf_free(&ref);
    if (m->display) {
        s |= sg_buf_puts(mo->b, ",\"display\":");
        s |= sg_buf_json_str(mo->b, m->display, strlen(m->display));
    }
    s |= sg_buf_printf(mo->b, ",\"type\":\"%s\"}", type);
    return s ? SG_ENOMEM : SG_OK;
}

/* Append a group's members as a JSON array. */
static bool members_array(rctx *c, const char *group_id, sg_buf *out)
{
    members_out mo = {out, c->req->tenant_url, 0};
    if (sg_buf_putc(out, '[') != SG_OK) goto oom;
    if (c->st->members_list(c->conn, c->tenant, group_id, member_json, &mo, &c->err) != SG_OK)
        return fail(c);
    if (sg_buf_putc(out, ']') != SG_OK) goto oom;
    return true;
oom:
    sg_error_set(&c->err, SG_ENOMEM, NULL, "out of memory");
    return fail(c);
}

/* Append one resource as the client sees it. Must run inside the request's
 * transaction when members are returned. */
static bool render(rctx *c, const sg_resource *row, const sg_projection *proj, sg_buf *out)
{
    bool members = c->rt->type == SG_RT_GROUP && proj->members;
    bool outbound = sg_lua_has_hook(c->w->lua, c->tenant, SG_HOOK_OUTBOUND);
    sg_buf meta = {0};
    sg_status s = sg_resource_meta_json(c->rt, row, c->req->tenant_url, &meta);
    if (s == SG_OK && !outbound && sg_projection_trivial(c->rt, proj) && row->json_len >= 2 &&
        row->json[row->json_len - 1] == '}') {
        /* Splice: stored body without its closing brace, then members and
         * meta. The stored body always holds at least schemas and id. */
        s = sg_buf_append(out, row->json, row->json_len - 1);
        if (s == SG_OK && members) {
            s = sg_buf_puts(out, ",\"members\":");
            if (s == SG_OK && !members_array(c, row->id, out)) {
                sg_buf_free(&meta);
                return false;
            }
        }
        if (s == SG_OK) s = sg_buf_puts(out, ",\"meta\":");
        if (s == SG_OK) s = sg_buf_append(out, meta.data, meta.len);
        if (s == SG_OK) s = sg_buf_putc(out, '}');
        sg_buf_free(&meta);
        if (s != SG_OK) {
            sg_error_set(&c->err, SG_ENOMEM, NULL, "out of memory");
            return fail(c);
        }
        return true;
    }
    json_t *doc = json_loadb(row->json, row->json_len, 0, NULL);
    json_t *m = meta.data ? json_loads(meta.data, 0, NULL) : NULL;
    sg_buf_free(&meta);
    if (!doc || !m) {
        json_decref(doc);
        json_decref(m);
        sg_error_set(&c->err, SG_EINTERNAL, NULL, "stored resource %s is not valid JSON", row->id);
        return fail(c);
    }
    if (members) {
        sg_buf mb = {0};
        if (!members_array(c, row->id, &mb)) {
            json_decref(doc);
            json_decref(m);
            sg_buf_free(&mb);
            return false;
        }
        json_object_set_new(doc, "members", json_loadb(mb.data, mb.len, 0, NULL));
        sg_buf_free(&mb);
    }
    json_object_set_new(doc, "meta", m);
    if (outbound && sg_lua_map(c->w->lua, SG_HOOK_OUTBOUND, &c->hctx, &doc, &c->err) != SG_OK) {
        json_decref(doc);
        return fail(c);
    }
    sg_projection_apply(c->rt, proj, doc);
    s = sg_json_dump(doc, out);
    json_decref(doc);
    if (s != SG_OK) {
        sg_error_set(&c->err, SG_ENOMEM, NULL, "out of memory");
        return fail(c);
    }
    return true;
}

static void set_etag(sg_response *res, int64_t version)
{
    char etag[48];
    sg_resource_etag(version, etag);
    sg_respond_header(res, "ETag", etag);
}

/* Does an If-Match / If-None-Match header list name this version? Weak
 * comparison (RFC 7232 §2.3.2): W/ prefixes are ignored; "*" matches any. */
static bool etag_listed(const char *header, int64_t version)
{
    char want[48];
    snprintf(want, sizeof want, "\"%lld\"", (long long)version);
    for (const char *p = header; *p;) {
        while (*p == ' ' || *p == ',') p++;
        if (*p == '*') return true;
        if (!strncmp(p, "W/", 2)) p += 2;
        const char *e = p;
        if (*e == '"') {
            e = strchr(e + 1, '"');
            e = e ? e + 1 : p + strlen(p);
        } else {
            while (*e && *e != ',' && *e != ' ') e++;
        }
        if ((size_t)(e - p) == strlen(want) && !strncmp(p, want, (size_t)(e - p))) return true;
        if (e == p) break;
        p = e;
    }
    return false;
}

/* RFC 7644 §3.14: If-Match must name the current version (else 412);
 * If-None-Match on a read that names it gives 304. false when the answer
 * is already decided. */
static bool preconditions(rctx *c, int64_t version, bool read)
{
    const char *im = c->req->header(c->req, "If-Match");
    if (im && !etag_listed(im, version)) {
        sg_error_set(&c->err, SG_EPRECOND, NULL,
                     "If-Match does not name the current version W/\"%lld\"", (long long)version);
        return fail(c);
    }
    const char *inm = c->req->header(c->req, "If-None-Match");
    if (inm && etag_listed(inm, version)) {
        if (c->in_txn) {
            c->st->rollback(c->conn);
            c->in_txn = false;
        }
        if (read) {
            c->res->status = 304;
            c->res->content_type = NULL;
            set_etag(c->res, version);
            return false;
        }
        sg_error_set(&c->err, SG_EPRECOND, NULL, "If-None-Match names the current version");
        return fail(c);
    }
    return true;
}

/* ---- request bodies --------------------------------------------------------- */

static bool parse_body(rctx *c, json_t **doc)
{
    if (!c->req->body || c->req->body_len == 0) {
        sg_error_set(&c->err, SG_EINVALID, "invalidSyntax", "a JSON body is required");
        return fail(c);
    }
    if (sg_json_parse(c->req->body, c->req->body_len, (int)c->w->srv->cfg->limits.json_depth, doc,
                      &c->err) != SG_OK)
        return fail(c);
    return true;
}

static bool read_body(rctx *c, sg_inbound *in)
{
    json_t *doc;
    if (!parse_body(c, &doc)) return false;
    sg_status s = sg_resource_inbound(c->rt, doc, in, &c->err);
    json_decref(doc);
    if (s != SG_OK) return fail(c);
    return true;
}

/* Apply membership changes in order. Users are added; groups are dropped
 * (nested groups are not expanded) and logged; unknown ids are refused. */
static bool apply_member_changes(rctx *c, const char *group_id, const sg_member_change *mc,
                                 size_t nmc)
{
    for (size_t k = 0; k < nmc; k++) {
        const json_t *ids_json = mc[k].ids;
        size_t n = json_array_size(ids_json);
        if (mc[k].op == SG_MEMBERS_CLEAR) {
            if (c->st->members_clear(c->conn, c->tenant, group_id, &c->err) != SG_OK)
                return fail(c);
            continue;
        }
        if (n == 0) continue;
        const char **ids = calloc(n, sizeof *ids);
        sg_rtype *types = calloc(n, sizeof *types);
        sg_member *add = calloc(n, sizeof *add);
        size_t nadd = 0;
        bool ok = ids && types && add;
        if (!ok) sg_error_set(&c->err, SG_ENOMEM, NULL, "out of memory");
        for (size_t i = 0; ok && i < n; i++)
            ids[i] = json_string_value(json_array_get(ids_json, i));
        if (ok && mc[k].op == SG_MEMBERS_REMOVE) {
            ok = c->st->members_remove(c->conn, c->tenant, group_id, ids, n, &c->err) == SG_OK;
        } else if (ok) {
            ok = c->st->resolve(c->conn, c->tenant, ids, n, types, &c->err) == SG_OK;
            for (size_t i = 0; ok && i < n; i++) {
                if (types[i] == SG_RT_USER) {
                    add[nadd++] = (sg_member){ids[i], NULL, SG_RT_USER};
                } else if (types[i] == SG_RT_GROUP) {
                    sg_log(SG_LOG_INFO, "scim",
                           "group %s: member %s is a group; nested groups are not expanded, so "
                           "it was left out",
                           group_id, ids[i]);
                } else if (mc[k].op_index) {
                    sg_error_set(&c->err, SG_EINVALID, "invalidValue",
                                 "operation %zu: member \"%.80s\" is not a user of this tenant",
                                 mc[k].op_index, ids[i]);
                    ok = false;
                } else {
                    sg_error_set(&c->err, SG_EINVALID, "invalidValue",
                                 "member \"%.80s\" is not a user of this tenant", ids[i]);
                    ok = false;
                }
            }
            if (ok && nadd)
                ok = c->st->members_add(c->conn, c->tenant, group_id, add, nadd, &c->err) == SG_OK;
        }
        free(ids);
        free(types);
        free(add);
        if (!ok) return fail(c);
    }
    return true;
}

static bool dump_body(rctx *c, const json_t *body, sg_buf *out)
{
    if (sg_json_dump(body, out) == SG_OK) return true;
    sg_error_set(&c->err, SG_ENOMEM, NULL, "out of memory");
    return fail(c);
}

/* ---- reads ---------------------------------------------------------------------- */

typedef struct get_state {
    rowcopy row;
    bool found;
} get_state;

static sg_status get_cb(void *ud, const sg_resource *row)
{
    get_state *g = ud;
    g->found = true;
    return copy_row(&g->row, row);
}

/* Fetch one resource into *g inside the current transaction. */
static bool fetch(rctx *c, const char *id, get_state *g)
{
    memset(g, 0, sizeof *g);
    sg_status s = c->st->get(c->conn, c->tenant, c->rt->type, id, get_cb, g, &c->err);
    if (s == SG_OK && !g->found) s = SG_ENOTFOUND;
    if (s == SG_ENOTFOUND)
        sg_error_set(&c->err, SG_ENOTFOUND, NULL, "%s %.64s not found", c->rt->id, id);
    if (s != SG_OK) return fail(c);
    return true;
}

/* Answer with one resource (status 200 or 201), shaped by `proj`. */
static bool respond_resource(rctx *c, int status, const sg_resource *r, const sg_projection *proj)
{
    sg_buf out = {0};
    bool ok = render(c, r, proj, &out) && commit(c);
    if (ok) {
        c->res->status = status;
        c->res->content_type = SG_CT_SCIM;
        set_etag(c->res, r->version);
        sg_buf_append(&c->res->body, out.data, out.len);
    }
    sg_buf_free(&out);
    return ok;
}

static bool projection_from_query(rctx *c, sg_projection *proj)
{
    sg_params params;
    if (sg_params_parse(c->req->query, &params, &c->err) != SG_OK) return fail(c);
    sg_status s = sg_projection_parse(c->rt, params.attributes, params.excluded, proj);
    sg_params_free(&params);
    if (s != SG_OK) {
        sg_error_set(&c->err, SG_ENOMEM, NULL, "out of memory");
        return fail(c);
    }
    return true;
}

static void handle_get(rctx *c, const char *id)
{
    sg_projection proj;
    if (!projection_from_query(c, &proj)) return;
    get_state g = {0};
    if (begin(c, SG_TXN_READ) && fetch(c, id, &g) && preconditions(c, g.row.version, true)) {
        sg_resource r = as_resource(&g.row, c->rt->type);
        respond_resource(c, 200, &r, &proj);
    }
    free(g.row.json);
    sg_projection_free(&proj);
}

/* ---- writes ---------------------------------------------------------------------- */

static bool after_write(rctx *c, const char *id, int64_t version, const json_t *body, bool created,
                        bool body_changed, const sg_member_change *mc, size_t nmc);

/* Store `body` as the next version of the fetched resource `g`, apply the
 * membership changes and answer with `status` (204: no body). Runs inside
 * the request's write transaction and commits it. */
static bool write_version(rctx *c, const get_state *g, json_t *body, bool body_changed,
                          const sg_member_change *mc, size_t nmc, int status,
                          const sg_projection *proj)
{
    sg_keyset ks = {0};
    sg_buf text = {0};
    char now[SG_TIME_MAX];
    sg_format_time(sg_now_ms(), now);
    bool ok = false;
    if (sg_resource_set_id(body, g->row.id) != SG_OK ||
        sg_resource_keys(c->rt, body, g->row.id, &ks) != SG_OK) {
        sg_error_set(&c->err, SG_ENOMEM, NULL, "out of memory");
        fail(c);
        goto out;
    }
    if (!dump_body(c, body, &text)) goto out;
    sg_resource r = {.type = c->rt->type,
                     .id = g->row.id,
                     .version = g->row.version + 1,
                     .created = g->row.created,
                     .modified = now,
                     .json = text.data,
                     .json_len = text.len,
                     .keys = ks.keys,
                     .nkeys = ks.n};
    if (c->st->replace(c->conn, c->tenant, &r, g->row.version, &c->err) != SG_OK) {
        fail(c);
        goto out;
    }
    if (!apply_member_changes(c, g->row.id, mc, nmc)) goto out;
    if (!after_write(c, g->row.id, r.version, body, false, body_changed, mc, nmc)) goto out;
    if (status == 204) {
        if (!commit(c)) goto out;
        c->res->status = 204;
        c->res->content_type = NULL;
        set_etag(c->res, r.version);
        ok = true;
    } else {
        ok = respond_resource(c, status, &r, proj);
    }
out:
    sg_keyset_free(&ks);
    sg_buf_free(&text);
    return ok;
}

/* ---- what a write causes: lifecycle, invitations, events --------------------- */

/* Member ids of one change as event data: the first SG_EVENT_MAX_IDS and
 * the count. */
static json_t *member_data(const json_t *ids)
{
    json_t *list = json_array();
    for (size_t i = 0; i < json_array_size(ids) && i < SG_EVENT_MAX_IDS; i++)
        json_array_append(list, json_array_get(ids, i));
    return json_pack("{sosI}", "members", list, "count", (json_int_t)json_array_size(ids));
}

/*
** Everything a SCIM write causes besides the resource itself, in the same
** transaction: the events of the change feed and the audit trail, the
** lifecycle's cancelled or new invitations.
*/
static bool after_write(rctx *c, const char *id, int64_t version, const json_t *body, bool created,
                        bool body_changed, const sg_member_change *mc, size_t nmc)
{
    const sg_storage_vtab *st = c->st;
    sg_status s = SG_OK;
    bool user = c->rt->type == SG_RT_USER;
    const char *prefix = user ? "user." : "group.";
    char type[48];
    if (created || body_changed) {
        snprintf(type, sizeof type, "%s%s", prefix, created ? "created" : "updated");
        json_t *data = json_pack("{sI}", "version", (json_int_t)version);
        if (user) json_object_set_new(data, "state", json_string(c->fx.to));
        s = sg_event_add(st, c->conn, c->tenant, &c->lc.actor, type, id, data, &c->err);
        json_decref(data);
    }
    for (size_t i = 0; s == SG_OK && i < nmc; i++) {
        if (!created && mc[i].op != SG_MEMBERS_CLEAR && json_array_size(mc[i].ids) == 0) continue;
        json_t *data =
            mc[i].op == SG_MEMBERS_CLEAR ? json_pack("{sb}", "all", 1) : member_data(mc[i].ids);
        s = sg_event_add(st, c->conn, c->tenant, &c->lc.actor,
                         mc[i].op == SG_MEMBERS_ADD ? "group.members_added"
                                                    : "group.members_removed",
                         id, data, &c->err);
        json_decref(data);
    }
    if (user && s == SG_OK) {
        const sg_lc_effects *fx = &c->fx;
        if (fx->suspended) {
            s = sg_event_add(st, c->conn, c->tenant, &c->lc.actor, "user.suspended", id, NULL,
                             &c->err);
            if (s == SG_OK) s = sg_lc_spike_check(&c->lc);
        } else if (fx->reactivated)
            s = sg_event_add(st, c->conn, c->tenant, &c->lc.actor, "user.reactivated", id, NULL,
                             &c->err);
        if (s == SG_OK && fx->from[0] && strcmp(fx->from, fx->to)) {
            json_t *data = json_pack("{ssss}", "from", fx->from, "to", fx->to);
            s = sg_event_add(st, c->conn, c->tenant, &c->lc.actor, "user.state_changed", id, data,
                             &c->err);
            json_decref(data);
        }
        if (s == SG_OK && fx->cancel_jobs)
            s = sg_lc_cancel_jobs(&c->lc, id, "the user was suspended (active=false)");
        char address[SG_ADDRESS_MAX], job[37];
        if (s == SG_OK && fx->invite && sg_lc_address(body, address, sizeof address))
            s = sg_lc_new_job(&c->lc, id, version, address,
                              sg_lc_setting_ms(&c->lc, "approval_ttl", SG_APPROVAL_TTL_MS), job);
    }
    if (s != SG_OK) return fail(c);
    return true;
}

/* ---- hook scripts ------------------------------------------------------------- */

#define POLICY_URN "urn:scimgate:schemas:extension:policy:2.0:Group"

/* Server-owned extensions ("urn:scimgate:...") come from the stored
 * resource, never from client or script input. */
static void carry_server_owned(json_t *dst, const json_t *src)
{
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(dst, tmp, k, v)
    {
        if (!strncmp(k, "urn:scimgate:", 13)) json_object_del(dst, k);
    }
    if (!src) return;
    json_object_foreach((json_t *)src, k, v)
    {
        /* a copy: the lifecycle edits dst's and must not change src's */
        if (!strncmp(k, "urn:scimgate:", 13)) json_object_set_new(dst, k, json_deep_copy(v));
    }
}

/* Membership changes as ctx.members_added / members_removed. */
static void ctx_members(sg_hook_ctx *h, const sg_member_change *mc, size_t nmc, json_t *added,
                        json_t *removed)
{
    for (size_t i = 0; i < nmc; i++) {
        if (mc[i].op == SG_MEMBERS_CLEAR) {
            h->members_cleared = true;
            json_array_clear(added);
        } else {
            json_array_extend(mc[i].op == SG_MEMBERS_ADD ? added : removed, mc[i].ids);
        }
    }
    h->members_added = added;
    h->members_removed = removed;
}

/*
** Run mapping.inbound and, for groups, groups.accept on a body about to be
** written (DESIGN §4). The script's result is checked against the schema
** like a client's body; server-owned extensions are carried over from
** `stored`. A refusal is the client's 4xx; a script failure is a 500 naming
** the hook. Nothing has been written yet either way.
*/
static bool inbound_hooks(rctx *c, json_t **body, const json_t *stored, const sg_member_change *mc,
                          size_t nmc)
{
    sg_lua *lua = c->w->lua;
    sg_status s;
    if (sg_lua_has_hook(lua, c->tenant, SG_HOOK_INBOUND)) {
        json_t *r = json_incref(*body);
        if ((s = sg_lua_map(lua, SG_HOOK_INBOUND, &c->hctx, &r, &c->err)) != SG_OK) {
            json_decref(r);
            return fail(c);
        }
        sg_inbound in2;
        s = sg_resource_inbound(c->rt, r, &in2, &c->err);
        json_decref(r);
        if (s != SG_OK) {
            char detail[SG_DETAIL_MAX];
            snprintf(detail, sizeof detail, "%s", c->err.detail);
            sg_log(SG_LOG_ERROR, "lua", "mapping.inbound returned an invalid resource: %s", detail);
            sg_error_set(&c->err, SG_ESCRIPT, NULL,
                         "the mapping.inbound hook returned an invalid resource: %s", detail);
            return fail(c);
        }
        json_t *id = json_object_get(*body, "id");
        if (id) sg_resource_set_id(in2.body, json_string_value(id));
        json_decref(in2.members); /* hooks never change members */
        json_decref(*body);
        *body = in2.body;
    }
    carry_server_owned(*body, stored);
    if (c->rt->type == SG_RT_GROUP) {
        json_t *added = json_array(), *removed = json_array();
        ctx_members(&c->hctx, mc, nmc, added, removed);
        sg_verdict v;
        char reason[256];
        s = sg_lua_accept(lua, &c->hctx, *body, &v, reason, &c->err);
        c->hctx.members_added = c->hctx.members_removed = NULL;
        c->hctx.members_cleared = false;
        json_decref(added);
        json_decref(removed);
        if (s != SG_OK) return fail(c);
        if (v == SG_REJECT) {
            sg_error_set(&c->err, SG_EINVALID, "invalidValue",
                         "the tenant does not accept this group%s%s", reason[0] ? ": " : "",
                         reason);
            return fail(c);
        }
        json_t *pol = json_pack("{ss}", "status", v == SG_IGNORE ? "ignored" : "accepted");
        if (v == SG_IGNORE && reason[0]) json_object_set_new(pol, "reason", json_string(reason));
        json_object_set_new(*body, POLICY_URN, pol);
    }
    if (c->rt->type == SG_RT_USER) {
        /* Auto-invite needs an address; without one the user stays Staged. */
        bool auto_invite = !stored && sg_lc_setting_bool(&c->lc, "auto_invite", false);
        char address[SG_ADDRESS_MAX];
        if (auto_invite && !sg_lc_address(*body, address, sizeof address)) auto_invite = false;
        sg_lc_scim_user(stored, *body, auto_invite, &c->fx);
    }
    if ((s = sg_resource_finish(c->rt, *body, &c->err)) != SG_OK) return fail(c);
    return true;
}

/* SCIM writes to a user the admin detached answer 409 (DESIGN §5). */
static bool not_detached(rctx *c, const char *stored_json, size_t len)
{
    if (c->rt->type != SG_RT_USER) return true;
    json_t *b = json_loadb(stored_json, len, 0, NULL);
    const char *reason;
    bool detached = sg_lc_detached(b, &reason);
    if (detached)
        sg_error_set(&c->err, SG_ECONFLICT, NULL,
                     "this user is managed by the admin (detached from SCIM%s%s); SCIM writes "
                     "apply again once it is attached",
                     reason ? ": " : "", reason ? reason : "");
    json_decref(b);
    return detached ? fail(c) : true;
}

static void handle_create(rctx *c)
{
    sg_inbound in;
    if (!read_body(c, &in)) return;
    if (c->rt->type == SG_RT_USER && !json_object_get(in.body, "active"))
        json_object_set_new(in.body, "active", json_true()); /* provisioned users are active */
    /* The hooks read the tenant's settings, so the transaction comes first. */
    sg_member_change added = {SG_MEMBERS_ADD, in.members, 0};
    if (!begin(c, SG_TXN_WRITE) || !inbound_hooks(c, &in.body, NULL, &added, in.members ? 1 : 0)) {
        sg_inbound_free(&in);
        return;
    }
    char id[37], now[SG_TIME_MAX];
    sg_new_uuid(id);
    sg_format_time(sg_now_ms(), now);
    sg_keyset ks = {0};
    sg_buf text = {0};
    sg_projection proj = {0};
    if (sg_resource_set_id(in.body, id) != SG_OK ||
        sg_resource_keys(c->rt, in.body, id, &ks) != SG_OK ||
        sg_projection_parse(c->rt, NULL, NULL, &proj) != SG_OK) {
        sg_error_set(&c->err, SG_ENOMEM, NULL, "out of memory");
        fail(c);
        goto done;
    }
    if (!dump_body(c, in.body, &text)) goto done;
    sg_resource r = {.type = c->rt->type,
                     .id = id,
                     .version = 1,
                     .created = now,
                     .modified = now,
                     .json = text.data,
                     .json_len = text.len,
                     .keys = ks.keys,
                     .nkeys = ks.n};
    sg_member_change add = {SG_MEMBERS_ADD, in.members, 0};
    if ((c->st->create(c->conn, c->tenant, &r, &c->err) == SG_OK || fail(c)) &&
        (!in.members || apply_member_changes(c, id, &add, 1)) &&
        after_write(c, id, 1, in.body, true, true, &add, in.members ? 1 : 0) &&
        respond_resource(c, 201, &r, &proj)) {
        char loc[700];
        snprintf(loc, sizeof loc, "%s%s/%s", c->req->tenant_url, c->rt->endpoint, id);
        sg_respond_header(c->res, "Location", loc);
        sg_log(SG_LOG_INFO, "scim", "created %s %s", c->rt->id, id);
    }
done:
    sg_keyset_free(&ks);
    sg_buf_free(&text);
    sg_projection_free(&proj);
    sg_inbound_free(&in);
}

static void handle_replace(rctx *c, const char *id)
{
    sg_inbound in;
    if (!read_body(c, &in)) return;
    get_state g = {0};
    sg_projection proj = {0};
    json_t *old = NULL;
    if (sg_projection_parse(c->rt, NULL, NULL, &proj) != SG_OK) {
        sg_error_set(&c->err, SG_ENOMEM, NULL, "out of memory");
        fail(c);
        goto done;
    }
    if (!begin(c, SG_TXN_WRITE) || !fetch(c, id, &g) || !preconditions(c, g.row.version, false) ||
        !not_detached(c, g.row.json, g.row.len))
        goto done;
    old = json_loadb(g.row.json, g.row.len, 0, NULL);
    if (c->rt->type == SG_RT_USER && !json_object_get(in.body, "active")) {
        /* PUT without active keeps the user's state: Entra never PUTs, and
         * a careless replace must not switch a user on or off. */
        json_t *a = json_object_get(old, "active");
        json_object_set_new(in.body, "active", a ? json_incref(a) : json_true());
    }
    /* Immutable attributes, once set, keep their value. */
    for (size_t i = 0; i < c->rt->core->nattrs; i++) {
        const sg_attr *a = &c->rt->core->attrs[i];
        json_t *was = json_object_get(old, a->name), *now_v = json_object_get(in.body, a->name);
        if (a->mut == SG_MUT_IMMUTABLE && was && !json_equal(was, now_v)) {
            sg_error_set(&c->err, SG_EINVALID, "mutability",
                         "attribute \"%s\" is immutable and cannot be changed", a->path);
            fail(c);
            goto done;
        }
    }
    /* members are replaced only when the body carries them: a replace that
     * leaves them out must not empty the group. */
    sg_member_change mc[2] = {{SG_MEMBERS_CLEAR, NULL, 0}, {SG_MEMBERS_ADD, in.members, 0}};
    if (!inbound_hooks(c, &in.body, old, mc, in.members ? 2 : 0)) goto done;
    if (write_version(c, &g, in.body, !json_equal(old, in.body), mc, in.members ? 2 : 0, 200,
                      &proj))
        sg_log(SG_LOG_INFO, "scim", "replaced %s %s", c->rt->id, g.row.id);
done:
    json_decref(old);
    free(g.row.json);
    sg_projection_free(&proj);
    sg_inbound_free(&in);
}

/* How many times a PATCH is retried when another node changed the resource
 * between its read and its write (a version mismatch in storage). */
#define PATCH_ATTEMPTS 5

static void handle_patch(rctx *c, const char *id)
{
    json_t *req;
    if (!parse_body(c, &req)) return;
    sg_projection proj;
    if (!projection_from_query(c, &proj)) {
        json_decref(req);
        return;
    }
    /* Users answer 200 with the resource; groups 204, unless the request
     * asks for attributes (ENTRA.md §0 rule 14; RFC 7644 §3.5.2). */
    sg_params params = {0};
    sg_params_parse(c->req->query, &params, NULL);
    int status = c->rt->type == SG_RT_GROUP && !params.attributes && !params.excluded ? 204 : 200;
    sg_params_free(&params);
    for (int attempt = 1; attempt <= PATCH_ATTEMPTS; attempt++) {
        get_state g = {0};
        sg_patch_result pr = {0};
        json_t *body = NULL;
        bool done = true;
        if (!begin(c, SG_TXN_WRITE) || !fetch(c, id, &g) ||
            !preconditions(c, g.row.version, false) || !not_detached(c, g.row.json, g.row.len))
            goto next;
        body = json_loadb(g.row.json, g.row.len, 0, NULL);
        if (!body) {
            sg_error_set(&c->err, SG_EINTERNAL, NULL, "stored resource %s is not valid JSON", id);
            fail(c);
            goto next;
        }
        if (sg_patch_apply(c->rt, body, req, &c->w->srv->flim, &pr, &c->err) != SG_OK) {
            fail(c);
            goto next;
        }
        if ((pr.changed || pr.nmembers) &&
            !inbound_hooks(c, &pr.body, body, pr.members, pr.nmembers))
            goto next;
        pr.changed = !json_equal(body, pr.body);
        if (!pr.changed && pr.nmembers == 0) {
            /* Nothing to write (Entra re-sends values it already set). */
            sg_resource r = as_resource(&g.row, c->rt->type);
            if (status == 204) {
                if (commit(c)) {
                    c->res->status = 204;
                    c->res->content_type = NULL;
                    set_etag(c->res, r.version);
                }
            } else {
                respond_resource(c, status, &r, &proj);
            }
            goto next;
        }
        if (!write_version(c, &g, pr.body, pr.changed, pr.members, pr.nmembers, status, &proj)) {
            if (c->err.status == SG_EPRECOND && attempt < PATCH_ATTEMPTS &&
                !c->req->header(c->req, "If-Match")) {
                /* Lost a race with another writer: read again and re-apply. */
                sg_buf_reset(&c->res->body);
                sg_buf_reset(&c->res->headers);
                done = false;
            }
        } else {
            sg_log(SG_LOG_INFO, "scim", "patched %s %s (%zu operations)", c->rt->id, g.row.id,
                   json_array_size(sg_json_iget(req, "Operations", NULL)));
        }
    next:
        free(g.row.json);
        json_decref(body);
        sg_patch_result_free(&pr);
        if (done) break;
    }
    sg_projection_free(&proj);
    json_decref(req);
}

/*
** A deleted user is gone from SCIM at once (404) and leaves a tombstone for
** the tenant's grace period, from which an admin may restore it (DESIGN §5);
** its open invitations are cancelled in the same transaction.
*/
static bool tombstone(rctx *c, const get_state *g)
{
    int64_t now = sg_now_ms();
    int64_t grace = sg_lc_setting_ms(&c->lc, "tombstone_grace", SG_TOMBSTONE_GRACE_MS);
    sg_resource r = as_resource(&g->row, SG_RT_USER);
    if (c->st->tombstone_put(c->conn, c->tenant, &r, now, now + grace, &c->err) != SG_OK ||
        sg_lc_cancel_jobs(&c->lc, g->row.id, "the user was deleted") != SG_OK)
        return fail(c);
    return true;
}

static void handle_delete(rctx *c, const char *id)
{
    get_state g = {0};
    bool user = c->rt->type == SG_RT_USER;
    if (!begin(c, SG_TXN_WRITE) || !fetch(c, id, &g) || !preconditions(c, g.row.version, false) ||
        !not_detached(c, g.row.json, g.row.len) || (user && !tombstone(c, &g)))
        goto out;
    sg_status s = c->st->remove(c->conn, c->tenant, c->rt->type, g.row.id, &c->err);
    json_t *data = json_pack("{sI}", "version", (json_int_t)g.row.version);
    if (s == SG_OK)
        s = sg_event_add(c->st, c->conn, c->tenant, &c->lc.actor,
                         user ? "user.deleted" : "group.deleted", g.row.id, data, &c->err);
    json_decref(data);
    if (s == SG_OK && user) s = sg_lc_spike_check(&c->lc);
    if (s != SG_OK) {
        fail(c);
        goto out;
    }
    if (!commit(c)) goto out;
    c->res->status = 204;
    c->res->content_type = NULL;
    sg_log(SG_LOG_INFO, "scim", "deleted %s %s", c->rt->id, g.row.id);
out:
    free(g.row.json);
}

/* ---- lists ---------------------------------------------------------------------- */

/*
** Membership conditions for the in-memory evaluator. A filter such as
** `members.value eq "u1" or displayName co "x"` may come back from storage
** as residual; rather than a storage call per row from inside the row
** callback, the groups holding each member named in the filter are fetched
** once beforehand (one indexed search per distinct member id).
*/
typedef struct member_groups {
    const char *member;
    char **groups; /* sorted */
    size_t n, cap;
} member_groups;

/* A sort key (RFC 7644 §3.4.2.3) for sorting in memory, when storage cannot
 * follow the requested order. */
typedef struct sortkey {
    int kind;   /* 0 missing, 1 text, 2 number */
    char *text; /* folded when the attribute is not case-exact */
    double num;
} sortkey;

typedef struct sortspec {
    bool on;
    bool desc;
    sg_attr_ref ref;
    const sg_attr *attr, *sub;
} sortspec;

typedef struct keyed_row {
    rowcopy row;
    sortkey key;
    size_t seq; /* arrival order, the tie-breaker */
} keyed_row;

typedef struct list_state {
    rctx *c;
    const sg_search_out *so; /* storage sets residual and sorted before the first row */
    const sortspec *sort;
    int64_t start, count; /* 1-based window */
    int64_t matched;
    keyed_row *rows;
    size_t nrows, cap;
    member_groups *mg;
    size_t nmg;
} list_state;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool same_member(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

static sg_status has_member(void *ud, const char *group_id, const char *member_id, bool *has)
{
    list_state *ls = ud;
    *has = false;
    for (size_t i = 0; i < ls->nmg; i++) {
        if (!same_member(ls->mg[i].member, member_id)) continue;
        *has = ls->mg[i].n &&
               bsearch(&group_id, ls->mg[i].groups, ls->mg[i].n, sizeof(char *), cmp_str);
        return SG_OK;
    }
    return SG_OK;
}

static sg_status collect_group(void *ud, const sg_resource *row)
{
    member_groups *m = ud;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        char **p = realloc(m->groups, cap * sizeof *p);
        if (!p) return SG_ENOMEM;
        m->groups = p;
        m->cap = cap;
    }
    if (!(m->groups[m->n] = strdup(row->id))) return SG_ENOMEM;
    m->n++;
    return SG_OK;
}

/* Fetch, once per request, the groups that hold each member named in the
 * filter (value paths included), and with `members pr` the groups that have
 * any member (member NULL). */
static bool prefetch_members(rctx *c, list_state *ls, const sg_filter *f)
{
    if (!f) return true;
    if (f->op == SG_FOP_AND || f->op == SG_FOP_OR || f->op == SG_FOP_NOT ||
        f->op == SG_FOP_VALUEPATH)
        return prefetch_members(c, ls, f->a) && prefetch_members(c, ls, f->b);
    if (!(f->attr.flags & SG_ATTR_MEMBERS)) return true;
    const char *member;
    if (f->op == SG_FOP_PR)
        member = NULL;
    else if (f->vtype == SG_VT_STRING && (f->op == SG_FOP_EQ || f->op == SG_FOP_NE))
        member = f->str;
    else
        return true;
    for (size_t i = 0; i < ls->nmg; i++)
        if (same_member(ls->mg[i].member, member)) return true;
    member_groups *p = realloc(ls->mg, (ls->nmg + 1) * sizeof *p);
    if (!p) {
        sg_error_set(&c->err, SG_ENOMEM, NULL, "out of memory");
        return fail(c);
    }
    ls->mg = p;
    member_groups *m = &ls->mg[ls->nmg++];
    memset(m, 0, sizeof *m);
    m->member = member;
    sg_filter q1 = *f;
    if (q1.op == SG_FOP_NE) q1.op = SG_FOP_EQ;
    sg_query q = {.type = SG_RT_GROUP, .filter = &q1, .start_index = 1, .count = INT64_MAX};
    sg_search_out so = {0};
    if (c->st->search(c->conn, c->tenant, &q, collect_group, m, &so, &c->err) != SG_OK)
        return fail(c);
    if (so.residual) {
        sg_error_set(&c->err, SG_EINTERNAL, NULL,
                     "storage did not compile a membership condition (plugin contract)");
        return fail(c);
    }
    if (m->n) qsort(m->groups, m->n, sizeof *m->groups, cmp_str);
    return true;
}

/* The value a resource sorts by: a multi-valued attribute sorts by its
 * primary value, else its first (RFC 7644 §3.4.2.3). */
static sg_status sort_key_of(const sortspec *sp, const rctx *c, const sg_resource *row, sortkey *k)
{
    memset(k, 0, sizeof *k);
    const json_t *v = NULL;
    json_t *tmp = NULL, *doc = NULL;
    if (sp->ref.flags & SG_ATTR_META) {
        const char *s = !strcmp(sp->ref.path, "id")                  ? row->id
                        : !strcmp(sp->ref.path, "meta.created")      ? row->created
                        : !strcmp(sp->ref.path, "meta.lastModified") ? row->modified
                                                                     : NULL;
        if (s) v = tmp = json_string(s);
    } else {
        doc = json_loadb(row->json, row->json_len, 0, NULL);
        if (!doc) return SG_EINTERNAL;
        const json_t *cont = doc;
        if (sp->attr->schema != c->rt->core &&
            strncmp(sp->attr->schema->id, "urn:scimgate:common", 19))
            cont = json_object_get(doc, sp->attr->schema->id);
        v = cont ? json_object_get(cont, sp->attr->name) : NULL;
        if (json_is_array(v)) {
            const json_t *pick = json_array_get(v, 0), *e;
            size_t i;
            json_array_foreach(v, i, e) if (json_is_true(json_object_get(e, "primary"))) pick = e;
            v = pick;
        }
        const sg_attr *sub = sp->sub                           ? sp->sub
                             : sp->attr->type == SG_AT_COMPLEX ? sp->attr->value_sub
                                                               : NULL;
        if (sub) v = json_object_get(v, sub->name);
    }
    sg_status s = SG_OK;
    if (json_is_string(v)) {
        sg_buf b = {0};
        const char *str = json_string_value(v);
        size_t n = json_string_length(v);
        if (!(sp->ref.flags & SG_ATTR_CASE_EXACT) && sp->ref.type != SG_AT_DATETIME)
            s = sg_fold(str, n, &b);
        else
            s = sg_buf_append(&b, str, n);
        k->kind = 1;
        k->text = b.data ? sg_buf_steal(&b) : strdup("");
        if (!k->text) s = SG_ENOMEM;
    } else if (json_is_number(v)) {
        k->kind = 2;
        k->num = json_number_value(v);
    } else if (json_is_boolean(v)) {
        k->kind = 2;
        k->num = json_is_true(v);
    }
    json_decref(tmp);
    json_decref(doc);
    return s;
}

static int g_sort_desc; /* qsort has no context argument; set by the caller */

static int cmp_keyed(const void *pa, const void *pb)
{
    const keyed_row *a = pa, *b = pb;
    int r;
    if (a->key.kind == 0 || b->key.kind == 0) {
        /* Missing values sort last ascending, first descending. */
        r = (a->key.kind == 0) - (b->key.kind == 0);
        if (g_sort_desc) r = -r;
    } else if (a->key.kind == 1 && b->key.kind == 1) {
        r = strcmp(a->key.text, b->key.text);
        if (g_sort_desc) r = -r;
    } else {
        r = a->key.num < b->key.num ? -1 : a->key.num > b->key.num;
        if (g_sort_desc) r = -r;
    }
    if (r) return r;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static sg_status keep_row(list_state *ls, const sg_resource *row, bool keyed)
{
    if (ls->nrows == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 16;
        keyed_row *p = realloc(ls->rows, cap * sizeof *p);
        if (!p) return SG_ENOMEM;
        ls->rows = p;
        ls->cap = cap;
    }
    keyed_row *k = &ls->rows[ls->nrows];
    memset(k, 0, sizeof *k);
    k->seq = ls->nrows;
    sg_status s = copy_row(&k->row, row);
    if (s == SG_OK && keyed) s = sort_key_of(ls->sort, ls->c, row, &k->key);
    if (s == SG_OK)
        ls->nrows++;
    else {
        free(k->row.json);
        free(k->key.text);
    }
    return s;
}

/* The core sorts (and so pages) in memory when a sort was asked for that
 * storage could not follow. */
static bool core_sorts(const list_state *ls)
{
    return ls->sort->on && !ls->so->sorted;
}

static sg_status list_cb(void *ud, const sg_resource *row)
{
    list_state *ls = ud;
    if (!ls->so->residual && !core_sorts(ls)) return keep_row(ls, row, false); /* paged */
    if (ls->so->residual) {
        json_t *doc = json_loadb(row->json, row->json_len, 0, NULL);
        if (!doc) return SG_EINTERNAL;
        sg_eval_ctx ec = {ls->c->rt, doc, row, has_member, ls};
        bool match;
        sg_status s = sg_filter_eval(ls->so->residual, &ec, &match);
        json_decref(doc);
        if (s != SG_OK || !match) return s;
    }
    ls->matched++;
    if (core_sorts(ls)) return keep_row(ls, row, true);
    if (ls->matched >= ls->start && ls->matched < ls->start + ls->count)
        return keep_row(ls, row, false);
    return SG_OK;
}

static void free_rows(list_state *ls)
{
    for (size_t i = 0; i < ls->nrows; i++) {
        free(ls->rows[i].row.json);
        free(ls->rows[i].key.text);
    }
    free(ls->rows);
    ls->rows = NULL;
    ls->nrows = ls->cap = 0;
}

/* What a list request asks for, from the query string or a .search body. */
typedef struct list_args {
    const char *filter;
    const char *attributes, *excluded;
    const char *sort_by, *sort_order;
    const char *start_index, *count; /* text, as in the query string */
    const char *cursor;              /* RFC 9865: NULL, "" (first page) or a cursor */
} list_args;

/* startIndex and count (RFC 7644 §3.4.2.4): below 1 means 1; a negative
 * count means 0; count is capped at limits.page_max. */
static bool page_params(rctx *c, const list_args *a, int64_t *start, int64_t *count)
{
    const sg_limits *l = &c->w->srv->cfg->limits;
    *start = 1;
    *count = l->page_default;
    if (a->start_index && !sg_parse_i64(a->start_index, start)) {
        sg_error_set(&c->err, SG_EINVALID, "invalidValue", "startIndex must be an integer");
        return fail(c);
    }
    if (a->count && !sg_parse_i64(a->count, count)) {
        sg_error_set(&c->err, SG_EINVALID, "invalidValue", "count must be an integer");
        return fail(c);
    }
    if (*start < 1) *start = 1;
    if (*count < 0) *count = 0;
    if (*count > l->page_max) *count = l->page_max;
    return true;
}

static bool sort_params(rctx *c, const list_args *a, sortspec *sp)
{
    memset(sp, 0, sizeof *sp);
    if (a->sort_order && *a->sort_order) {
        if (!strcasecmp(a->sort_order, "descending"))
            sp->desc = true;
        else if (strcasecmp(a->sort_order, "ascending")) {
            sg_error_set(&c->err, SG_EINVALID, "invalidValue",
                         "sortOrder must be ascending or descending");
            return fail(c);
        }
    }
    if (!a->sort_by || !*a->sort_by) return true;
    sg_resolved r;
    if (!sg_schema_resolve(c->rt, a->sort_by, strlen(a->sort_by), &r) || !r.attr ||
        (r.attr->type == SG_AT_COMPLEX && !r.sub && !r.attr->value_sub) ||
        (r.sub && r.attr->multi && r.sub != r.attr->value_sub)) {
        sg_error_set(&c->err, SG_EINVALID, "invalidValue",
                     "sortBy must name an attribute with a single value to sort by: %.100s",
                     a->sort_by);
        return fail(c);
    }
    sp->on = true;
    sp->attr = r.attr;
    sp->sub = r.sub;
    sg_attr_ref_fill(&sp->ref, r.attr,
                     r.sub                           ? r.sub
                     : r.attr->type == SG_AT_COMPLEX ? r.attr->value_sub
                                                     : NULL);
    return true;
}

/*
** Run one list query inside the current read transaction: append the
** rendered resources (comma-separated) to `out` and report how many
** matched and how many were rendered.
*/
static bool run_list(rctx *c, const sg_filter *filter, const list_args *a, int64_t start,
                     int64_t count, sg_buf *out, int64_t *total, size_t *items)
{
    list_state ls = {.c = c, .start = start, .count = count};
    sortspec sp;
    sg_projection proj = {0};
    bool ok = false;
    if (!sort_params(c, a, &sp)) return false;
    ls.sort = &sp;
    if (sg_projection_parse(c->rt, a->attributes, a->excluded, &proj) != SG_OK) {
        sg_error_set(&c->err, SG_ENOMEM, NULL, "out of memory");
        fail(c);
        goto done;
    }
    if (!prefetch_members(c, &ls, filter)) goto done;
    sg_query q = {.type = c->rt->type,
                  .filter = filter,
                  .sort = sp.on ? &sp.ref : NULL,
                  .sort_descending = sp.desc,
                  .start_index = start,
                  .count = count};
    sg_search_out so = {0};
    ls.so = &so;
    sg_status s = c->st->search(c->conn, c->tenant, &q, list_cb, &ls, &so, &c->err);
    if (s != SG_OK) {
        if (s != c->err.status || !c->err.detail[0])
            sg_error_set(&c->err, s, NULL, "search failed");
        fail(c);
        goto done;
    }
    *total = so.residual ? ls.matched : so.total;
    size_t from = 0, to = ls.nrows;
    if (core_sorts(&ls)) {
        g_sort_desc = sp.desc;
        qsort(ls.rows, ls.nrows, sizeof *ls.rows, cmp_keyed);
        from = (size_t)(start - 1) < ls.nrows ? (size_t)(start - 1) : ls.nrows;
        to = from + (size_t)count < ls.nrows ? from + (size_t)count : ls.nrows;
    }
    for (size_t i = from; i < to; i++) {
        if ((*items)++ && sg_buf_putc(out, ',') != SG_OK) {
            sg_error_set(&c->err, SG_ENOMEM, NULL, "out of memory");
            fail(c);
            goto done;
        }
        sg_resource r = as_resource(&ls.rows[i].row, c->rt->type);
        if (!render(c, &r, &proj, out)) goto done;
    }
    ok = true;
done:
    free_rows(&ls);
    for (size_t i = 0; i < ls.nmg; i++) {
        for (size_t k = 0; k < ls.mg[i].n; k++) free(ls.mg[i].groups[k]);
        free(ls.mg[i].groups);
    }
    free(ls.mg);
    sg_projection_free(&proj);
    return ok;
}

static void respond_list(rctx *c, int64_t total, size_t items, int64_t start, const sg_buf *res,
                         const char *fp, int64_t count)
{
    sg_buf *b = &c->res->body;
    c->res->status = 200;
    c->res->content_type = SG_CT_SCIM;
    sg_buf_printf(b,
                  "{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:ListResponse\"],"
                  "\"totalResults\":%lld,\"itemsPerPage\":%zu,",
                  (long long)total, items);
    if (!fp) {
        sg_buf_printf(b, "\"startIndex\":%lld,", (long long)start);
    } else {
        /* Cursor paging (RFC 9865): where the next and previous pages start. */
        char cur[SG_CURSOR_MAX];
        int64_t now = sg_now_ms() / 1000, offset = start - 1;
        if (offset + (int64_t)items < total && items > 0) {
            sg_cursor_make(offset + (int64_t)items, now, fp, cur);
            sg_buf_printf(b, "\"nextCursor\":\"%s\",", cur);
        }
        if (offset > 0) {
            sg_cursor_make(offset > count ? offset - count : 0, now, fp, cur);
            sg_buf_printf(b, "\"previousCursor\":\"%s\",", cur);
        }
    }
    sg_buf_puts(b, "\"Resources\":[");
    sg_buf_append(b, res->data, res->len);
    sg_buf_puts(b, "]}");
}

/* Cursor mode: the page a cursor names, or an error. */
static bool cursor_start(rctx *c, const list_args *a, const sg_rtype *types, size_t ntypes,
                         char fp[17], int64_t *start)
{
    if (a->start_index) {
        sg_error_set(&c->err, SG_EINVALID, "invalidValue",
                     "use either startIndex or cursor, not both");
        return fail(c);
    }
    /* The tenant too: a cursor another tenant was given names no page here. */
    const char *parts[7] = {c->tenant,  ntypes > 1 ? "*" : sg_rt(types[0])->id, a->filter,
                            a->sort_by, a->sort_order ? a->sort_order : "",     a->attributes,
                            a->excluded};
    sg_cursor_fingerprint(parts, 7, fp);
    int64_t offset = 0;
    if (*a->cursor) {
        sg_cursor_state st = sg_cursor_read(a->cursor, fp, sg_now_ms() / 1000, &offset);
        if (st != SG_CURSOR_OK) {
            sg_error_set(
                &c->err, SG_EINVALID, st == SG_CURSOR_EXPIRED ? "expiredCursor" : "invalidCursor",
                st == SG_CURSOR_EXPIRED ? "the cursor has expired; start again with cursor="
                                        : "the cursor is not valid for this query");
            return fail(c);
        }
    }
    *start = offset + 1;
    return true;
}

/*
** List resources of `types` (one type, or both for a search at the root).
** A filter that names an attribute one type lacks selects nothing of that
** type; it is an error only when no type knows it.
*/
static void list(rctx *c, const list_args *a, const sg_rtype *types, size_t ntypes)
{
    int64_t start, count;
    char fp[17];
    if (!page_params(c, a, &start, &count)) return;
    if (a->cursor && !cursor_start(c, a, types, ntypes, fp, &start)) return;
    sg_filter_tree *trees[2] = {NULL, NULL};
    bool usable[2] = {true, true};
    size_t nusable = ntypes;
    sg_error first_err;
    sg_error_clear(&first_err);
    /* At the root, a filter that fits some type is read leniently for the
     * others (an attribute a type lacks is absent for it); one that fits no
     * type is an error. */
    for (size_t t = 0; a->filter && t < ntypes; t++) {
        if (sg_filter_parse(sg_rt(types[t]), a->filter, strlen(a->filter), &c->w->srv->flim,
                            &trees[t], &c->err) != SG_OK) {
            if (!first_err.status) first_err = c->err;
            usable[t] = false;
            nusable--;
        }
    }
    for (size_t t = 0; nusable && t < ntypes; t++) {
        if (usable[t]) continue;
        if (sg_filter_parse_ex(sg_rt(types[t]), a->filter, strlen(a->filter), &c->w->srv->flim,
                               true, &trees[t], &c->err) != SG_OK)
            continue;
        if (sg_filter_constant(trees[t]) == 1) {
            sg_filter_free(trees[t]); /* matches everything of this type */
            trees[t] = NULL;
            usable[t] = true;
        } else if (sg_filter_constant(trees[t]) == -1) {
            usable[t] = true;
        }
    }
    if (nusable == 0) {
        c->err = first_err;
        fail(c);
        return;
    }
    sg_buf out = {0};
    int64_t total = 0;
    size_t items = 0;
    const sg_rtdef *home = c->rt;
    bool ok = begin(c, SG_TXN_READ);
    for (size_t t = 0; ok && t < ntypes; t++) {
        if (!usable[t]) continue;
        /* Across types the window continues where the previous type ended. */
        int64_t t_total = 0;
        int64_t t_start = start > total ? start - total : 1;
        int64_t t_count = count - (int64_t)items;
        c->rt = sg_rt(types[t]);
        ok = run_list(c, trees[t] ? sg_filter_root(trees[t]) : NULL, a, t_start, t_count, &out,
                      &t_total, &items);
        total += t_total;
    }
    c->rt = home;
    if (ok && commit(c)) respond_list(c, total, items, start, &out, a->cursor ? fp : NULL, count);
    sg_buf_free(&out);
    for (size_t t = 0; t < 2; t++) sg_filter_free(trees[t]);
}

static void handle_list(rctx *c)
{
    sg_params p;
    if (sg_params_parse(c->req->query, &p, &c->err) != SG_OK) {
        fail(c);
        return;
    }
    list_args a = {.filter = p.filter,
                   .attributes = p.attributes,
                   .excluded = p.excluded,
                   .sort_by = p.sort_by,
                   .sort_order = p.sort_order,
                   .start_index = p.start_index,
                   .count = p.count,
                   .cursor = p.cursor};
    sg_rtype type = c->rt->type;
    list(c, &a, &type, 1);
    sg_params_free(&p);
}

/* A string member of a .search body, or an array of strings joined with
 * commas (attributes, excludedAttributes). NULL when absent. */
static bool search_field(rctx *c, const json_t *body, const char *name, bool list_ok, char **out)
{
    *out = NULL;
    const json_t *v = sg_json_iget(body, name, NULL);
    if (!v || json_is_null(v)) return true;
    sg_buf b = {0};
    if (json_is_string(v)) {
        sg_buf_append(&b, json_string_value(v), json_string_length(v));
    } else if (json_is_integer(v)) {
        sg_buf_printf(&b, "%lld", (long long)json_integer_value(v));
    } else if (list_ok && json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e)) goto bad;
            if (i) sg_buf_putc(&b, ',');
            sg_buf_puts(&b, json_string_value(e));
        }
    } else {
        goto bad;
    }
    *out = b.data ? sg_buf_steal(&b) : strdup("");
    return true;
bad:
    sg_buf_free(&b);
    sg_error_set(&c->err, SG_EINVALID, "invalidSyntax", "\"%s\" has the wrong type", name);
    return fail(c);
}

/* POST .search (RFC 7644 §3.4.3): the query in a SearchRequest body. */
static void handle_search(rctx *c, const sg_rtype *types, size_t ntypes)
{
    json_t *body;
    if (!parse_body(c, &body)) return;
    char *f[8] = {0};
    static const char *const names[8] = {"filter", "attributes", "excludedAttributes",
                                         "sortBy", "sortOrder",  "startIndex",
                                         "count",  "cursor"};
    bool ok = json_is_object(body);
    if (!ok) {
        sg_error_set(&c->err, SG_EINVALID, "invalidSyntax", "the body must be a SearchRequest");
        fail(c);
    }
    for (size_t i = 0; ok && i < 8; i++)
        ok = search_field(c, body, names[i], i == 1 || i == 2, &f[i]);
    if (ok) {
        list_args a = {f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]};
        list(c, &a, types, ntypes);
    }
    for (size_t i = 0; i < 8; i++) free(f[i]);
    json_decref(body);
}

/* Entra's dialect, guessed from the request: the flag in the URL, or a
 * PATCH's operation names (Entra's default mode capitalises them). */
static const char *entra_mode(const sg_request *req)
{
    if (req->query && strcasestr(req->query, "aadOptscim062020")) return "aadOptscim062020";
    if (strcmp(req->method, "PATCH") || !req->body) return "default";
    const char *op = strstr(req->body, "\"op\"");
    if (!op) op = strstr(req->body, "\"Op\"");
    if (!op) return "default";
    op = strchr(op + 4, '"');
    return op && op[1] >= 'a' && op[1] <= 'z' ? "aadOptscim062020" : "default";
}

static void hook_ctx_init(rctx *c)
{
    c->hctx = (sg_hook_ctx){.tenant = c->tenant,
                            .token_id = c->req->principal.token_id,
                            .method = c->req->method,
                            .resource_type = c->rt->id,
                            .request_id = c->req->request_id,
                            .entra_mode = entra_mode(c->req)};
    snprintf(c->actor_who, sizeof c->actor_who, "token:%s", c->req->principal.token_id);
    c->lc = (sg_lc){.st = c->st,
                    .tenant = c->tenant,
                    .actor = {c->actor_who, c->req->request_id},
                    .err = &c->err};
}

/*
** A refused SCIM write leaves an audit event (not part of the change feed)
** in a transaction of its own, so the user's timeline explains why Entra's
** change did not apply: the method, the status, the SCIM error's scimType
** and detail (never the request body).
*/
static void audit_refusal(rctx *c, const char *id)
{
    if (c->in_txn) {
        c->st->rollback(c->conn);
        c->in_txn = false;
    }
    json_t *body =
        json_loadb(c->res->body.data ? c->res->body.data : "", c->res->body.len, 0, NULL);
    json_t *data = json_pack("{sssssi}", "method", c->req->method, "resourceType", c->rt->id,
                             "status", c->res->status);
    const char *type = json_string_value(json_object_get(body, "scimType"));
    const char *detail = json_string_value(json_object_get(body, "detail"));
    if (type) json_object_set_new(data, "scimType", json_string(type));
    if (detail) json_object_set_new(data, "detail", json_stringn(detail, strnlen(detail, 300)));
    sg_error err;
    if (sg_worker_conn(c->w, &c->conn, &err) != SG_OK ||
        c->st->begin(c->conn, SG_TXN_WRITE, &err) != SG_OK ||
        sg_event_add(c->st, c->conn, c->tenant, &c->lc.actor, "scim.refused", id[0] ? id : NULL,
                     data, &err) != SG_OK ||
        c->st->commit(c->conn, &err) != SG_OK) {
        if (c->conn) c->st->rollback(c->conn);
        sg_log(SG_LOG_WARN, "scim", "could not record a refused write: %s", err.detail);
    }
    json_decref(data);
    json_decref(body);
}

/* ---- dispatch ------------------------------------------------------------------- */

static void not_allowed(sg_response *res, const char *allow)
{
    sg_respond_error(res, 405, NULL, "method not allowed here");
    sg_respond_header(res, "Allow", allow);
}

void sg_scim_resources(sg_worker *w, sg_request *req, sg_response *res)
{
    rctx c = {.w = w,
              .req = req,
              .res = res,
              .st = w->srv->plugins->st,
              .tenant = req->route.tenant,
              .rt = sg_rt(req->route.ep == SG_EP_USERS ? SG_RT_USER : SG_RT_GROUP)};
    sg_error_clear(&c.err);
    hook_ctx_init(&c);
    char id[ID_MAX + 1] = "";
    const sg_route *r = &req->route;
    if (r->id) {
        if (r->id_len > ID_MAX) {
            sg_respond_error(res, 404, NULL, "no such resource");
            return;
        }
        memcpy(id, r->id, r->id_len);
        id[r->id_len] = '\0';
    }
    const char *m = req->method;
    if (!strcmp(m, "GET")) {
        if (r->id)
            handle_get(&c, id);
        else
            handle_list(&c);
    } else if (!strcmp(m, "POST")) {
        if (r->id)
            not_allowed(res, "GET, PUT, PATCH, DELETE");
        else
            handle_create(&c);
    } else if (!strcmp(m, "PUT")) {
        if (r->id)
            handle_replace(&c, id);
        else
            not_allowed(res, "GET, POST");
    } else if (!strcmp(m, "PATCH")) {
        if (r->id)
            handle_patch(&c, id);
        else
            not_allowed(res, "GET, POST");
    } else if (!strcmp(m, "DELETE")) {
        if (r->id)
            handle_delete(&c, id);
        else
            not_allowed(res, "GET, POST");
    } else {
        not_allowed(res, r->id ? "GET, PUT, PATCH, DELETE" : "GET, POST");
    }
    if (strcmp(m, "GET") && res->status >= 400) audit_refusal(&c, id);
    sg_lc_done(&c.lc);
}

void sg_scim_search(sg_worker *w, sg_request *req, sg_response *res)
{
    if (strcmp(req->method, "POST")) {
        not_allowed(res, "POST");
        return;
    }
    sg_rtype types[2] = {SG_RT_USER, SG_RT_GROUP};
    size_t n = 2;
    if (req->route.search_of == SG_EP_GROUPS)
        types[0] = SG_RT_GROUP, n = 1;
    else if (req->route.search_of == SG_EP_USERS)
        n = 1;
    rctx c = {.w = w,
              .req = req,
              .res = res,
              .st = w->srv->plugins->st,
              .tenant = req->route.tenant,
              .rt = sg_rt(types[0])};
    sg_error_clear(&c.err);
    hook_ctx_init(&c);
    handle_search(&c, types, n);
    sg_lc_done(&c.lc);
}
