#include "admin.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "crypto.h"
#include "events.h"
#include "health.h"
#include "filter.h"
#include "json.h"
#include "lifecycle.h"
#include "log.h"
#include "lua_host.h"
#include "outbox.h"
#include "portal.h"
#include "query.h"
#include "schema.h"
#include "touch.h"
#include "util.h"

typedef struct admin_principal {
    int kind; /* SG_TOKEN_ADMIN or SG_TOKEN_DEVICE */
    bool operator;
    char tenant[65];   /* "" for an operator */
    char subject[129]; /* the admin's login or the device id */
    char token_id[65];
} admin_principal;

/* One admin request. */
typedef struct actx {
    sg_worker *w;
    sg_request *req;
    sg_response *res;
    admin_principal p;
    const sg_storage_vtab *st;
    sg_conn *conn;
    char tenant[65];
    char actor[160];
    sg_lc lc;
    sg_error err;
    bool in_txn;
    json_t *body; /* the request's JSON object, or NULL */
    const char *seg[6];
    size_t segn[6];
    int nseg;
} actx;

/* ---- responses ------------------------------------------------------------------ */

static void admin_error(sg_response *res, int status, const char *detail)
{
    sg_buf_reset(&res->body);
    res->status = status;
    res->content_type = SG_CT_JSON;
    sg_buf_printf(&res->body, "{\"status\":%d,\"detail\":", status);
    sg_buf_json_str(&res->body, detail, strlen(detail));
    sg_buf_putc(&res->body, '}');
}

static bool fail(actx *c)
{
    if (c->in_txn) {
        c->st->rollback(c->conn);
        c->in_txn = false;
    }
    admin_error(c->res, sg_status_http(c->err.status), c->err.detail);
    return false;
}

static bool refuse(actx *c, sg_status s, const char *detail)
{
    sg_error_set(&c->err, s, NULL, "%s", detail);
    return fail(c);
}

/* Answer `status` with `j` (stolen). */
static void reply(actx *c, int status, json_t *j)
{
    sg_buf_reset(&c->res->body);
    if (!j || sg_json_dump(j, &c->res->body) != SG_OK) {
        json_decref(j);
        admin_error(c->res, 500, "out of memory");
        return;
    }
    json_decref(j);
    c->res->status = status;
    c->res->content_type = SG_CT_JSON;
}

static void no_content(actx *c)
{
    c->res->status = 204;
    c->res->content_type = NULL;
}

static json_t *time_or_null(int64_t ms)
{
    if (ms <= 0) return json_null();
    char t[SG_TIME_MAX];
    sg_format_time(ms, t);
    return json_string(t);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* ---- transactions ----------------------------------------------------------------- */

static bool begin(actx *c, sg_txn_mode mode)
{
    if (c->st->begin(c->conn, mode, &c->err) != SG_OK) return fail(c);
    c->in_txn = true;
    sg_lc_done(&c->lc);
    return true;
}

static bool commit(actx *c)
{
    c->in_txn = false;
    if (c->st->commit(c->conn, &c->err) != SG_OK) {
        c->st->rollback(c->conn);
        return fail(c);
    }
    return true;
}

/* A status from storage or the lifecycle: true on SG_OK, else the error
 * answer (and a rollback). */
static bool ok(actx *c, sg_status s)
{
    return s == SG_OK || fail(c);
}

/* ---- authentication --------------------------------------------------------------- */

static void unauthorized(sg_response *res, const char *detail, bool invalid)
{
    admin_error(res, 401, detail);
    sg_respond_header(res, "WWW-Authenticate",
                      invalid ? "Bearer realm=\"scimgate-admin\", error=\"invalid_token\""
                              : "Bearer realm=\"scimgate-admin\"");
}

/* Check an admin or device token. false with the response set when refused. */
static bool authenticate(actx *c)
{
    admin_principal *p = &c->p;
    memset(p, 0, sizeof *p);
    const char *h = c->req->header(c->req, "Authorization");
    if (!h) {
        /* The portal's pages: a session cookie (and, to change anything,
         * its CSRF token) stands for the admin who signed in. */
        sg_session_admin sa;
        switch (sg_portal_authenticate(c->w, c->req, c->res, &sa)) {
        case SG_SESSION_REFUSED:
            return false;
        case SG_SESSION_OK:
            p->kind = SG_TOKEN_ADMIN;
            p->operator= sa.tenant[0] == '\0';
            snprintf(p->tenant, sizeof p->tenant, "%s", sa.tenant);
            snprintf(p->subject, sizeof p->subject, "%s", sa.login);
            snprintf(c->actor, sizeof c->actor, "admin:%s", p->subject);
            return true;
        case SG_SESSION_NONE:
            break;
        }
    }
    if (h && !strncasecmp(h, "Bearer ", 7))
        h += 7;
    else
        h = NULL;
    while (h && *h == ' ') h++;
    int kind = -1;
    if (h && !strncmp(h, SG_ADMIN_TOKEN_PREFIX, 4)) kind = SG_TOKEN_ADMIN;
    if (h && !strncmp(h, SG_DEVICE_TOKEN_PREFIX, 4)) kind = SG_TOKEN_DEVICE;
    if (kind < 0) {
        unauthorized(c->res,
                     "an admin token (Bearer sga_...) or device token (Bearer sgd_...) "
                     "is required",
                     false);
        return false;
    }
    const char *id = h + 4, *dot = strchr(id, '.');
    size_t idlen = dot ? (size_t)(dot - id) : 0;
    sg_token_info info;
    char idbuf[SG_TOKEN_ID_LEN + 1];
    bool good = idlen == SG_TOKEN_ID_LEN && dot[1];
    if (good) {
        memcpy(idbuf, id, idlen);
        idbuf[idlen] = '\0';
        sg_status s = c->st->token_info(c->conn, idbuf, &info, &c->err);
        if (s != SG_OK && s != SG_ENOTFOUND) {
            admin_error(c->res, 503, "the store is unavailable");
            return false;
        }
        good = s == SG_OK && info.kind == kind;
    }
    if (good) {
        unsigned char hash[SG_HASH_LEN];
        const char *secret = dot + 1;
        size_t n = strlen(secret);
        while (n && secret[n - 1] == ' ') n--;
        sg_crypto_hash(secret, n, hash);
        good = sg_crypto_equal(hash, info.hash, SG_HASH_LEN) && !info.revoked &&
               (!info.expires_ms || info.expires_ms > sg_now_ms()) && !info.tenant_disabled;
    }
    if (!good) {
        unauthorized(c->res, "the token is not valid", true);
        return false;
    }
    p->kind = kind;
    p->operator= kind == SG_TOKEN_ADMIN && info.tenant[0] == '\0';
    snprintf(p->tenant, sizeof p->tenant, "%s", info.tenant);
    snprintf(p->subject, sizeof p->subject, "%s", info.subject);
    snprintf(p->token_id, sizeof p->token_id, "%s", idbuf);
    snprintf(c->actor, sizeof c->actor, "%s:%s", kind == SG_TOKEN_DEVICE ? "device" : "admin",
             p->subject);
    sg_touch_note(p->token_id, c->req->peer);
    return true;
}

static bool admin_only(actx *c)
{
    if (c->p.kind == SG_TOKEN_ADMIN) return true;
    admin_error(c->res, 403, "a device may only list and approve invitations");
    return false;
}

static bool device_only(actx *c)
{
    if (c->p.kind == SG_TOKEN_DEVICE) return true;
    admin_error(c->res, 403, "approvals are signed by an enrolled admin device (its sgd_ token)");
    return false;
}

/* ---- request parts ----------------------------------------------------------------- */

static bool seg_is(const actx *c, int i, const char *s)
{
    return i < c->nseg && c->segn[i] == strlen(s) && !memcmp(c->seg[i], s, c->segn[i]);
}

/* Segment i as a string into out; false (404) when too long. */
static bool seg_copy(actx *c, int i, char *out, size_t outlen)
{
    if (i >= c->nseg || c->segn[i] == 0 || c->segn[i] >= outlen) {
        admin_error(c->res, 404, "no such object");
        return false;
    }
    memcpy(out, c->seg[i], c->segn[i]);
    out[c->segn[i]] = '\0';
    return true;
}

static bool method(actx *c, const char *m)
{
    return !strcmp(c->req->method, m);
}

static void not_allowed(actx *c, const char *allow)
{
    admin_error(c->res, 405, "method not allowed here");
    sg_respond_header(c->res, "Allow", allow);
}

/* Is the request's method `m`? Else answer 405 naming it. */
static bool only(actx *c, const char *m)
{
    if (method(c, m)) return true;
    not_allowed(c, m);
    return false;
}

/* The request body as a JSON object (required when `need`). */
static bool read_body(actx *c, bool need)
{
    if (!c->req->body || c->req->body_len == 0) {
        if (!need) return true;
        admin_error(c->res, 400, "a JSON object body is required");
        return false;
    }
    sg_error e;
    if (sg_json_parse(c->req->body, c->req->body_len, (int)c->w->srv->cfg->limits.json_depth,
                      &c->body, &e) != SG_OK) {
        admin_error(c->res, 400, e.detail);
        return false;
    }
    if (!json_is_object(c->body)) {
        admin_error(c->res, 400, "the body is not a JSON object");
        return false;
    }
    return true;
}

/* Integer query parameter in [lo, hi], default def; false (400) when bad. */
static bool int_param(actx *c, const char *name, int64_t def, int64_t lo, int64_t hi, int64_t *out)
{
    char *v = sg_query_param(c->req->query, name);
    *out = def;
    bool good = !v || (sg_parse_i64(v, out) && *out >= lo && *out <= hi);
    free(v);
    if (!good) {
        char detail[160];
        snprintf(detail, sizeof detail, "%s must be an integer from %lld to %lld", name,
                 (long long)lo, (long long)hi);
        admin_error(c->res, 400, detail);
    }
    return good;
}

/* ---- users ---------------------------------------------------------------------------- */

static json_t *user_view(const sg_resource *r, const json_t *body)
{
    char address[SG_ADDRESS_MAX];
    const char *reason = NULL;
    bool detached = sg_lc_detached(body, &reason);
    json_t *a = json_object_get(body, "active");
    return json_pack(
        "{sssosososososIsbso}", "id", r->id, "userName",
        str_or_null(json_string_value(json_object_get(body, "userName"))), "displayName",
        str_or_null(json_string_value(json_object_get(body, "displayName"))), "state",
        json_string(sg_lc_state(body)), "active", json_boolean(!json_is_false(a)), "address",
        sg_lc_address(body, address, sizeof address) ? json_string(address) : json_null(),
        "version", (json_int_t)r->version, "detached", detached, "detachReason",
        str_or_null(reason));
}

typedef struct page_rows {
    json_t *list;
    const sg_filter *residual; /* evaluate in memory (set by storage) */
    const sg_search_out *so;
    int64_t start, count, matched;
} page_rows;

static sg_status user_row(void *ud, const sg_resource *r)
{
    page_rows *u = ud;
    json_t *body = json_loadb(r->json, r->json_len, 0, NULL);
    if (!body) return SG_EINTERNAL;
    bool match = true;
    sg_status s = SG_OK;
    if (u->so->residual) {
        /* Storage could not compile the filter: match and page here. */
        sg_eval_ctx ec = {.rt = sg_rt(SG_RT_USER), .doc = body, .row = r};
        s = sg_filter_eval(u->so->residual, &ec, &match);
        if (match) {
            u->matched++;
            match = u->matched >= u->start && u->matched < u->start + u->count;
        }
    }
    if (s == SG_OK && match) json_array_append_new(u->list, user_view(r, body));
    json_decref(body);
    return s;
}

/* The filter text `base` (may be "") and, with a `q` parameter, `attr sw
 * "q"` (a case-insensitive prefix, an index range in storage). false
 * (400) when q is too long. */
static bool prefix_filter(actx *c, const char *attr, const char *base, sg_buf *out)
{
    char *q = sg_query_param(c->req->query, "q");
    bool good = !q || strlen(q) <= 256;
    if (good) sg_buf_puts(out, base);
    if (good && q && *q) {
        if (base[0]) sg_buf_puts(out, " and ");
        sg_buf_printf(out, "%s sw ", attr);
        sg_buf_json_str(out, q, strlen(q));
    }
    free(q);
    if (!good) {
        sg_buf_free(out);
        admin_error(c->res, 400, "q (a prefix to search for) is at most 256 bytes");
    }
    return good;
}

/*
** Answer a page of `type` in `attr` order, narrowed by the q= prefix of attr
** (prefix_filter) and the filter text `also` (may be ""): {"total", key: [row
** (fn) ...]}.
*/
static void list_sorted(actx *c, sg_rtype type, const char *attr, const char *also, int64_t start,
                        int64_t count, sg_row_fn fn, const char *key)
{
    sg_buf fb = {0};
    if (!prefix_filter(c, attr, also, &fb)) return;
    const sg_rtdef *rt = sg_rt(type);
    sg_filter_tree *tree = NULL;
    sg_resolved by;
    sg_attr_ref sort;
    sg_schema_resolve(rt, attr, strlen(attr), &by);
    sg_attr_ref_fill(&sort, by.attr, NULL);
    if (fb.len && sg_filter_parse(rt, fb.data, fb.len, &c->w->srv->flim, &tree, &c->err) != SG_OK) {
        sg_buf_free(&fb);
        fail(c);
        return;
    }
    sg_buf_free(&fb);
    sg_query q = {.type = type,
                  .filter = tree ? sg_filter_root(tree) : NULL,
                  .sort = &sort,
                  .start_index = start,
                  .count = count};
    sg_search_out so = {0};
    page_rows u = {.list = json_array(), .so = &so, .start = start, .count = count};
    if (begin(c, SG_TXN_READ) &&
        ok(c, c->st->search(c->conn, c->tenant, &q, fn, &u, &so, &c->err)) && commit(c))
        reply(c, 200,
              json_pack("{sIso}", "total", (json_int_t)(so.residual ? u.matched : so.total), key,
                        json_incref(u.list)));
    json_decref(u.list);
    sg_filter_free(tree);
}

static const char *const states[] = {SG_STATE_STAGED, SG_STATE_PENDING, SG_STATE_INVITED,
                                     SG_STATE_ACTIVE, SG_STATE_SUSPENDED};

static void users_list(actx *c)
{
    int64_t start, count;
    if (!int_param(c, "start", 1, 1, INT32_MAX, &start) ||
        !int_param(c, "count", 100, 0, 1000, &count))
        return;
    char *state = sg_query_param(c->req->query, "state");
    char ftext[160] = "";
    if (state) {
        bool known = false;
        for (size_t i = 0; i < SG_ARRAY_LEN(states); i++) known |= !strcmp(state, states[i]);
        if (known) snprintf(ftext, sizeof ftext, "%s:state eq \"%s\"", SG_LIFECYCLE_URN, state);
        free(state);
        if (!known) {
            admin_error(c->res, 400,
                        "state must be Staged, PendingApproval, Invited, Active or Suspended");
            return;
        }
    }
    list_sorted(c, SG_RT_USER, "userName", ftext, start, count, user_row, "users");
}

typedef struct one_user {
    json_t *view, *body;
} one_user;

static sg_status one_user_cb(void *ud, const sg_resource *r)
{
    one_user *o = ud;
    o->body = json_loadb(r->json, r->json_len, 0, NULL);
    if (!o->body) return SG_EINTERNAL;
    o->view = user_view(r, o->body);
    return SG_OK;
}

static json_t *job_view(const sg_job *j)
{
    return json_pack("{sssssssIsssssososososisoso}", "id", j->id, "key", j->key, "user", j->user_id,
                     "version", (json_int_t)j->user_version, "address", j->address, "status",
                     j->status, "created", time_or_null(j->created_ms), "expires",
                     time_or_null(j->expires_ms), "approved", time_or_null(j->approved_ms),
                     "approvedBy", str_or_null(j->approved_by), "attempts", j->attempts,
                     "nextAttempt",
                     sg_lc_job_open(j) ? time_or_null(j->next_attempt_ms) : json_null(),
                     "lastError", str_or_null(j->last_error));
}

static json_t *jobs_view(const sg_lc_jobs *l)
{
    json_t *a = json_array();
    for (size_t i = 0; i < l->n; i++) json_array_append_new(a, job_view(&l->j[i]));
    return a;
}

/* Answer with one user and its invitations (inside a transaction, which
 * this commits). */
static void user_answer(actx *c, const char *id, int status)
{
    one_user o = {0};
    sg_lc_jobs l = {0};
    sg_status s = c->st->get(c->conn, c->tenant, SG_RT_USER, id, one_user_cb, &o, &c->err);
    if (s == SG_OK && !o.view) s = sg_error_set(&c->err, SG_ENOTFOUND, NULL, "no user %s", id);
    if (ok(c, s) && ok(c, sg_lc_job_list(&c->lc, NULL, id, &l)) && commit(c)) {
        json_object_set(o.view, "body", o.body);
        json_object_set_new(o.view, "invitations", jobs_view(&l));
        reply(c, status, json_incref(o.view));
    }
    json_decref(o.view);
    json_decref(o.body);
    sg_lc_jobs_free(&l);
}

/* POST /users/{id}/{action} */
static void user_action(actx *c, const char *id, const char *action)
{
    if (!only(c, "POST")) return;
    bool detach = !strcmp(action, "detach");
    if (!read_body(c, detach) || !begin(c, SG_TXN_WRITE)) return;
    sg_status s;
    char job[37], address[SG_ADDRESS_MAX];
    int64_t expires;
    if (!strcmp(action, "activate"))
        s = sg_lc_activate(&c->lc, id);
    else if (!strcmp(action, "restore"))
        s = sg_lc_restore(&c->lc, id);
    else if (detach)
        s = sg_lc_detach(&c->lc, id, json_string_value(json_object_get(c->body, "reason")));
    else if (!strcmp(action, "attach"))
        s = sg_lc_attach(&c->lc, id);
    else if (!strcmp(action, "resend"))
        s = sg_lc_invite(&c->lc, id, true, job, address, &expires);
    else
        s = sg_error_set(&c->err, SG_ENOTFOUND, NULL, "no such user action \"%s\"", action);
    if (!ok(c, s)) return;
    sg_log(SG_LOG_INFO, "admin", "%s: %s user %s", c->actor, action, id);
    if (!strcmp(action, "resend")) {
        if (commit(c)) {
            sg_outbox_notify();
            reply(c, 200, json_pack("{ss}", "job", job));
        }
        return;
    }
    user_answer(c, id, 200);
}

typedef struct event_rows {
    json_t *list;
    int64_t last;
} event_rows;

static sg_status event_row(void *ud, const sg_event *e)
{
    event_rows *r = ud;
    r->last = e->seq;
    return json_array_append_new(r->list, sg_event_json(e)) ? SG_ENOMEM : SG_OK;
}

static void events(actx *c, const char *subject)
{
    int64_t limit, since = 0;
    if (!int_param(c, "limit", subject ? 1000 : 100, 1, 1000, &limit)) return;
    if (!subject) {
        char *v = sg_query_param(c->req->query, "since");
        bool good = !v || !*v || (sg_parse_i64(v, &since) && since >= 0);
        free(v);
        if (!good) {
            admin_error(c->res, 400, "since must be a cursor this API returned");
            return;
        }
    }
    sg_event_query q = {.after_seq = since,
                        .subject = subject,
                        .flags = subject ? 0 : SG_EVENT_CHANGE,
                        .limit = limit};
    event_rows r = {json_array(), since};
    if (begin(c, SG_TXN_READ) &&
        ok(c, c->st->event_list(c->conn, c->tenant, &q, event_row, &r, &c->err)) && commit(c)) {
        json_t *out = json_pack("{so}", "events", json_incref(r.list));
        if (!subject) {
            char cursor[24];
            snprintf(cursor, sizeof cursor, "%lld", (long long)r.last);
            json_object_set_new(out, "cursor", json_string(cursor));
        }
        reply(c, 200, out);
    }
    json_decref(r.list);
}

/* GET /events: the whole audit trail (the change feed and every other
 * event), after a cursor, optionally only some types, one subject, or
 * events since a time. */
static void audit(actx *c)
{
    if (!only(c, "GET")) return;
    int64_t limit, since = 0, from = 0;
    if (!int_param(c, "limit", 100, 1, 1000, &limit)) return;
    char *v = sg_query_param(c->req->query, "since");
    char *f = sg_query_param(c->req->query, "from");
    char *types = sg_query_param(c->req->query, "type");
    char *subject = sg_query_param(c->req->query, "subject");
    const char *tl[17] = {0};
    size_t nt = 0;
    bool good = !v || !*v || (sg_parse_i64(v, &since) && since >= 0);
    bool from_ok = !f || !*f || sg_parse_time(f, &from);
    char *save = NULL;
    for (char *t = types ? strtok_r(types, ",", &save) : NULL; t && nt < 16;
         t = strtok_r(NULL, ",", &save))
        tl[nt++] = t;
    if (!good || !from_ok) {
        admin_error(c->res, 400,
                    !good ? "since must be a cursor this API returned"
                          : "from must be a time such as 2026-01-31T12:00:00Z");
    } else {
        sg_event_query q = {.after_seq = since,
                            .subject = subject && *subject ? subject : NULL,
                            .limit = limit,
                            .since_ms = from,
                            .types = nt ? tl : NULL};
        event_rows r = {json_array(), since};
        if (begin(c, SG_TXN_READ) &&
            ok(c, c->st->event_list(c->conn, c->tenant, &q, event_row, &r, &c->err)) && commit(c)) {
            char cursor[24];
            snprintf(cursor, sizeof cursor, "%lld", (long long)r.last);
            reply(c, 200, json_pack("{sOss}", "events", r.list, "cursor", cursor));
        }
        json_decref(r.list);
    }
    free(v);
    free(f);
    free(types);
    free(subject);
}

static void users(actx *c)
{
    char id[65];
    if (c->nseg == 2) {
        if (!only(c, "GET")) return;
        users_list(c);
        return;
    }
    if (!seg_copy(c, 2, id, sizeof id)) return;
    if (c->nseg == 3) {
        if (!only(c, "GET")) return;
        if (begin(c, SG_TXN_READ)) user_answer(c, id, 200);
        return;
    }
    char action[32];
    if (c->nseg != 4 || !seg_copy(c, 3, action, sizeof action)) return;
    if (!strcmp(action, "timeline")) {
        if (!only(c, "GET")) return;
        events(c, id);
        return;
    }
    user_action(c, id, action);
}

/* ---- groups ---------------------------------------------------------------------------- */

#define POLICY_URN "urn:scimgate:schemas:extension:policy:2.0:Group"

static sg_status group_row(void *ud, const sg_resource *r)
{
    page_rows *u = ud;
    json_t *body = json_loadb(r->json, r->json_len, 0, NULL);
    if (!body) return SG_EINTERNAL;
    bool match = true;
    sg_status s = SG_OK;
    if (u->so->residual) {
        sg_eval_ctx ec = {.rt = sg_rt(SG_RT_GROUP), .doc = body, .row = r};
        s = sg_filter_eval(u->so->residual, &ec, &match);
        if (match) {
            u->matched++;
            match = u->matched >= u->start && u->matched < u->start + u->count;
        }
    }
    if (s == SG_OK && match) {
        /* What groups.accept decided when the group was last written. */
        json_t *pol = json_object_get(body, POLICY_URN);
        const char *status = json_string_value(json_object_get(pol, "status"));
        json_array_append_new(
            u->list,
            json_pack("{sssosososososo}", "id", r->id, "displayName",
                      str_or_null(json_string_value(json_object_get(body, "displayName"))),
                      "externalId",
                      str_or_null(json_string_value(json_object_get(body, "externalId"))), "policy",
                      json_string(status ? status : "accepted"), "reason",
                      str_or_null(json_string_value(json_object_get(pol, "reason"))), "created",
                      str_or_null(r->created), "modified", str_or_null(r->modified)));
    }
    json_decref(body);
    return s;
}

/* GET /groups[?q=&start=&count=]: displayName order, with what the groups
 * script decided (accepted or ignored, and why). */
static void groups(actx *c)
{
    if (!only(c, "GET")) return;
    int64_t start, count;
    if (!int_param(c, "start", 1, 1, INT32_MAX, &start) ||
        !int_param(c, "count", 100, 0, 1000, &count))
        return;
    list_sorted(c, SG_RT_GROUP, "displayName", "", start, count, group_row, "groups");
}

/* GET /{T}/scripts: the hook scripts that apply to the tenant (the shared
 * ones and its own overrides, "tenants/<T>/..."), without their paths. */
static void tenant_scripts(actx *c)
{
    if (!only(c, "GET")) return;
    sg_buf b = {0};
    sg_scripts_status(&b);
    json_t *all = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    sg_buf_free(&b);
    json_t *list = json_array();
    char own[80];
    snprintf(own, sizeof own, "tenants/%s/", c->tenant);
    size_t i;
    json_t *sc;
    json_array_foreach(json_object_get(all, "scripts"), i, sc)
    {
        const char *name = json_string_value(json_object_get(sc, "name"));
        if (!name || (!strncmp(name, "tenants/", 8) && strncmp(name, own, strlen(own)))) continue;
        json_t *copy = json_deep_copy(sc);
        json_object_del(copy, "path");
        json_array_append_new(list, copy);
    }
    json_t *out = json_pack("{sOso}", "generation",
                            json_object_get(all, "generation") ? json_object_get(all, "generation")
                                                               : json_null(),
                            "scripts", list);
    json_decref(all);
    reply(c, 200, out);
}

/* ---- health ------------------------------------------------------------------------------ */

typedef struct health_scan {
    int64_t last_used;
    char last_addr[64];
    int live;
    int64_t now;
} health_scan;

static int health_token(void *ud, const sg_token *t)
{
    health_scan *h = ud;
    if (t->kind != SG_TOKEN_SCIM) return 0;
    if (!t->revoked_ms && (!t->expires_ms || t->expires_ms > h->now)) h->live++;
    if (t->last_used_ms > h->last_used) {
        h->last_used = t->last_used_ms;
        snprintf(h->last_addr, sizeof h->last_addr, "%s", t->last_addr ? t->last_addr : "");
    }
    return 0;
}

typedef struct refusal_count {
    int64_t n;
} refusal_count;

static sg_status count_event(void *ud, const sg_event *e)
{
    (void)e;
    ((refusal_count *)ud)->n++;
    return SG_OK;
}

/* GET /health: the last SCIM request (from the tokens' last use, every
 * node), refused SCIM writes in the last 24 hours (audit events, every
 * node), and this node's traffic per minute for the last hour (health.h). */
static void health(actx *c)
{
    if (!only(c, "GET")) return;
    int64_t now = sg_now_ms();
    health_scan h = {.now = now};
    refusal_count rc = {0};
    static const char *const refused[] = {"scim.refused", NULL};
    sg_event_query q = {.types = refused, .since_ms = now - 86400000LL, .limit = 10000};
    if (!begin(c, SG_TXN_READ) ||
        !ok(c, c->st->token_list(c->conn, c->tenant, health_token, &h, &c->err)) ||
        !ok(c, c->st->event_list(c->conn, c->tenant, &q, count_event, &rc, &c->err)) || !commit(c))
        return;
    sg_health_minute m[SG_HEALTH_MINUTES];
    sg_health_get(c->tenant, now, m);
    json_t *minutes = json_array();
    int64_t req = 0, errs = 0, unauth = 0, burst = 0;
    for (int i = 0; i < SG_HEALTH_MINUTES; i++) {
        req += m[i].requests;
        errs += m[i].errors;
        unauth += m[i].unauthorized;
        if (m[i].unauthorized > burst) burst = m[i].unauthorized;
        if (!m[i].minute) continue;
        json_array_append_new(minutes,
                              json_pack("{sosisisi}", "time", time_or_null(m[i].minute * 60000),
                                        "requests", (int)m[i].requests, "errors", (int)m[i].errors,
                                        "unauthorized", (int)m[i].unauthorized));
    }
    reply(c, 200,
          json_pack("{sososisIs{sIsIsIsIso}}", "lastRequest", time_or_null(h.last_used),
                    "lastAddress", h.last_addr[0] ? json_string(h.last_addr) : json_null(),
                    "liveTokens", h.live, "refusedWrites24h", (json_int_t)rc.n, "lastHour",
                    "requests", (json_int_t)req, "errors", (json_int_t)errs, "unauthorized",
                    (json_int_t)unauth, "unauthorizedPeakPerMinute", (json_int_t)burst, "minutes",
                    minutes));
}

/* ---- invitations and jobs ------------------------------------------------------------- */

#define INVITE_MAX 1000

static void invitations(actx *c)
{
    if (!only(c, "POST")) return;
    if (!read_body(c, true)) return;
    json_t *ids = json_object_get(c->body, "users");
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > INVITE_MAX) {
        admin_error(c->res, 400, "\"users\" must be an array of 1 to 1000 user ids");
        return;
    }
    if (!begin(c, SG_TXN_WRITE)) return;
    json_t *done = json_array(), *refused = json_array();
    size_t i;
    json_t *v;
    sg_status s = SG_OK;
    json_array_foreach(ids, i, v)
    {
        const char *id = json_string_value(v);
        char job[37], address[SG_ADDRESS_MAX];
        int64_t expires;
        sg_status r = id ? sg_lc_invite(&c->lc, id, false, job, address, &expires)
                         : sg_error_set(&c->err, SG_EINVALID, NULL, "not a user id");
        if (r == SG_OK) {
            json_array_append_new(done, json_pack("{ssssssso}", "user", id, "job", job, "address",
                                                  address, "expires", time_or_null(expires)));
        } else if (r == SG_ECONFLICT || r == SG_EINVALID || r == SG_ENOTFOUND) {
            /* this user only; the others go ahead */
            json_array_append_new(refused, json_pack("{sOss}", "user", v, "detail", c->err.detail));
        } else {
            s = r; /* the store failed: nothing is written */
            break;
        }
    }
    if (ok(c, s) && commit(c)) {
        sg_log(SG_LOG_INFO, "admin", "%s invited %zu users (%zu refused)", c->actor,
               json_array_size(done), json_array_size(refused));
        if (json_array_size(done)) sg_outbox_notify();
        reply(c, 200, json_pack("{sOsO}", "invitations", done, "refused", refused));
    }
    json_decref(done);
    json_decref(refused);
}

static void jobs(actx *c)
{
    if (c->nseg == 2) {
        if (!only(c, "GET")) return;
        char *status = sg_query_param(c->req->query, "status");
        char *user = sg_query_param(c->req->query, "user");
        sg_lc_jobs l = {0};
        if (begin(c, SG_TXN_READ) && ok(c, sg_lc_job_list(&c->lc, status, user, &l)) && commit(c))
            reply(c, 200, json_pack("{so}", "jobs", jobs_view(&l)));
        sg_lc_jobs_free(&l);
        free(status);
        free(user);
        return;
    }
    char id[65];
    if (c->nseg != 4 || !seg_is(c, 3, "expire") || !seg_copy(c, 2, id, sizeof id)) {
        admin_error(c->res, 404, "no such admin endpoint");
        return;
    }
    if (!only(c, "POST")) return;
    sg_lc_jobs l = {0};
    if (begin(c, SG_TXN_WRITE) && ok(c, sg_lc_job_get(&c->lc, id, &l)) &&
        ok(c, sg_lc_job_end(&c->lc, &l.j[0], "Expired", "expired by an admin")) && commit(c))
        reply(c, 200, json_pack("{ssss}", "job", id, "status", "Expired"));
    sg_lc_jobs_free(&l);
}

/* ---- approvals ------------------------------------------------------------------------- */

static atomic_int g_longpolls;

typedef struct pending {
    actx *c;
    json_t *list;
    int64_t now;
} pending;

static sg_status pending_row(void *ud, const sg_job *j)
{
    pending *p = ud;
    if (j->expires_ms <= p->now) return SG_OK; /* about to be Expired */
    char expires[SG_TIME_MAX];
    sg_format_time(j->expires_ms, expires);
    json_array_append_new(p->list,
                          json_pack("{sssssssssssIss}", "job", j->id, "user", j->user_id, "address",
                                    j->address, "expires", expires, "toSign", j->to_sign, "version",
                                    (json_int_t)j->user_version, "status", j->status));
    return SG_OK;
}

static bool list_pending(actx *c, json_t **out)
{
    pending p = {c, json_array(), sg_now_ms()};
    *out = p.list;
    return begin(c, SG_TXN_READ) &&
           ok(c, c->st->job_list(c->conn, c->tenant, "AwaitingApproval", NULL, pending_row, &p,
                                 &c->err)) &&
           commit(c);
}

static void approvals_get(actx *c)
{
    int64_t wait;
    if (!int_param(c, "wait", 0, 0, 60, &wait)) return;
    int64_t deadline = sg_now_ms() + wait * 1000;
    bool counted = false;
    if (wait > 0) {
        /* Long-polls hold a worker thread: at most limits.longpoll at once,
         * the others are answered at once. */
        int n = atomic_fetch_add(&g_longpolls, 1);
        counted = true;
        if (n >= c->w->srv->cfg->limits.longpoll) deadline = 0;
    }
    json_t *list = NULL;
    for (;;) {
        uint64_t gen = sg_outbox_generation();
        if (!list_pending(c, &list)) break;
        int64_t left = deadline - sg_now_ms();
        if (json_array_size(list) || left <= 0) {
            reply(c, 200, json_pack("{sO}", "approvals", list));
            break;
        }
        json_decref(list);
        list = NULL;
        /* Woken by an invitation made on this node; another node's shows up
         * at the next look. */
        sg_outbox_wait(gen, left < 1000 ? left : 1000);
    }
    json_decref(list);
    if (counted) atomic_fetch_sub(&g_longpolls, 1);
}

typedef struct device_key {
    bool found, revoked;
    unsigned char key[SG_ED25519_KEY_LEN];
} device_key;

static int device_key_cb(void *ud, const sg_device *d)
{
    device_key *k = ud;
    k->found = true;
    k->revoked = d->revoked_ms != 0;
    memcpy(k->key, d->public_key, SG_ED25519_KEY_LEN);
    return 0;
}

/* Approve one job with the device's signature; a refusal is its detail. */
static sg_status approve_one(actx *c, const device_key *dk, const json_t *item, json_t *approved,
                             json_t *refused)
{
    const char *id = json_string_value(json_object_get(item, "job"));
    const char *sig_text = json_string_value(json_object_get(item, "signature"));
    unsigned char sig[SG_ED25519_SIG_LEN + 4];
    size_t siglen = 0;
    const char *why = NULL;
    sg_lc_jobs l = {0};
    sg_status s = SG_OK;
    if (!id || !sig_text) {
        why = "each approval needs \"job\" and \"signature\"";
    } else if (!sg_unbase64(sig_text, sig, sizeof sig, &siglen) || siglen != SG_ED25519_SIG_LEN) {
        why = "the signature is not 64 bytes of base64";
    } else if ((s = sg_lc_job_get(&c->lc, id, &l)) == SG_ENOTFOUND) {
        why = "no such invitation";
        s = SG_OK;
    } else if (s == SG_OK) {
        sg_job j = l.j[0];
        int64_t now = sg_now_ms();
        if (strcmp(j.status, "AwaitingApproval"))
            why = "the invitation is not awaiting approval";
        else if (j.expires_ms <= now)
            why = "the approval request has expired";
        else if (!sg_ed25519_verify(dk->key, j.to_sign, strlen(j.to_sign), sig))
            why = "the signature does not verify with this device's key over the job's toSign";
        else {
            int64_t expected = j.updated_ms;
            j.status = "Approved";
            j.approved_ms = now;
            j.approved_by = c->p.subject;
            j.next_attempt_ms = now;
            j.updated_ms = now > expected ? now : expected + 1;
            s = c->st->job_update(c->conn, &j, expected, &c->err);
            if (s == SG_EPRECOND) {
                why = "the invitation changed meanwhile; list the approvals again";
                s = SG_OK;
            } else if (s == SG_OK) {
                json_t *data = json_pack("{ss}", "job", j.id);
                s = sg_event_add(c->st, c->conn, c->tenant, &c->lc.actor, "invitation.approved",
                                 j.user_id, data, &c->err);
                json_decref(data);
                if (s == SG_OK) json_array_append_new(approved, json_string(j.id));
            }
        }
    }
    if (why && s == SG_OK)
        json_array_append_new(refused, json_pack("{ss?ss}", "job", id, "detail", why));
    sg_lc_jobs_free(&l);
    return s;
}

static void approvals_post(actx *c)
{
    if (!device_only(c) || !read_body(c, true)) return;
    json_t *items = json_object_get(c->body, "approvals");
    if (!json_is_array(items) || json_array_size(items) == 0 ||
        json_array_size(items) > INVITE_MAX) {
        admin_error(c->res, 400, "\"approvals\" must be an array of 1 to 1000 {job, signature}");
        return;
    }
    if (!begin(c, SG_TXN_WRITE)) return;
    device_key dk = {0};
    sg_status s = c->st->device_get(c->conn, c->tenant, c->p.subject, device_key_cb, &dk, &c->err);
    if (s == SG_ENOTFOUND || (s == SG_OK && (!dk.found || dk.revoked))) {
        refuse(c, SG_EDENIED, "this device is not enrolled (or was revoked)");
        return;
    }
    if (!ok(c, s)) return;
    json_t *approved = json_array(), *refused = json_array();
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        if ((s = approve_one(c, &dk, item, approved, refused)) != SG_OK) break;
    }
    if (ok(c, s) && commit(c)) {
        sg_log(SG_LOG_INFO, "admin", "%s approved %zu invitations (%zu refused)", c->actor,
               json_array_size(approved), json_array_size(refused));
        if (json_array_size(approved)) sg_outbox_notify();
        reply(c, 200, json_pack("{sOsO}", "approved", approved, "refused", refused));
    }
    json_decref(approved);
    json_decref(refused);
}

/* ---- devices and tokens ----------------------------------------------------------------- */

static int device_row(void *ud, const sg_device *d)
{
    json_array_append_new(ud, json_pack("{sssssoso}", "id", d->id, "name", d->name, "created",
                                        time_or_null(d->created_ms), "revoked",
                                        time_or_null(d->revoked_ms)));
    return 0;
}

static void devices(actx *c)
{
    const sg_plugins *pl = c->w->srv->plugins;
    if (c->nseg == 3) {
        char id[65];
        if (!seg_copy(c, 2, id, sizeof id)) return;
        if (!only(c, "DELETE")) return;
        if (!ok(c, sg_device_revoke(pl, c->conn, c->tenant, id, &c->err))) return;
        sg_log(SG_LOG_INFO, "admin", "%s revoked device %s", c->actor, id);
        no_content(c);
        return;
    }
    if (method(c, "GET")) {
        json_t *list = json_array();
        if (begin(c, SG_TXN_READ) &&
            ok(c, c->st->device_list(c->conn, c->tenant, device_row, list, &c->err)) && commit(c))
            reply(c, 200, json_pack("{sO}", "devices", list));
        json_decref(list);
        return;
    }
    if (!method(c, "POST")) {
        not_allowed(c, "GET, POST");
        return;
    }
    if (!read_body(c, true)) return;
    const char *name = json_string_value(json_object_get(c->body, "name"));
    const char *key = json_string_value(json_object_get(c->body, "publicKey"));
    unsigned char pub[SG_ED25519_KEY_LEN + 4];
    size_t n = 0;
    if (!name || !key || !sg_unbase64(key, pub, sizeof pub, &n) || n != SG_ED25519_KEY_LEN) {
        admin_error(c->res, 400,
                    "a device needs \"name\" and \"publicKey\" (its 32-byte Ed25519 public key, "
                    "base64)");
        return;
    }
    char id[37], token[SG_TOKEN_MAX];
    if (!ok(c, sg_device_enroll(pl, c->conn, c->tenant, name, pub, id, token, &c->err))) return;
    sg_log(SG_LOG_INFO, "admin", "%s enrolled device %s", c->actor, id);
    reply(c, 201, json_pack("{ssss}", "id", id, "token", token));
    explicit_bzero(token, sizeof token);
}

static int token_row(void *ud, const sg_token *t)
{
    if (t->kind != SG_TOKEN_SCIM) return 0;
    json_array_append_new(
        ud,
        json_pack("{sssososososo}", "id", t->id, "created", time_or_null(t->created_ms), "expires",
                  time_or_null(t->expires_ms), "revoked", time_or_null(t->revoked_ms), "lastUsed",
                  time_or_null(t->last_used_ms), "lastAddress", str_or_null(t->last_addr)));
    return 0;
}

static void tokens(actx *c)
{
    const sg_plugins *pl = c->w->srv->plugins;
    if (c->nseg == 3) {
        char id[65];
        if (!seg_copy(c, 2, id, sizeof id)) return;
        if (!only(c, "DELETE")) return;
        sg_token_info info;
        sg_status s = c->st->token_info(c->conn, id, &info, &c->err);
        if (s == SG_OK && (info.kind != SG_TOKEN_SCIM || strcmp(info.tenant, c->tenant)))
            s = SG_ENOTFOUND;
        if (s == SG_OK) s = sg_token_revoke(pl, c->conn, c->tenant, id, &c->err);
        if (s == SG_ENOTFOUND)
            sg_error_set(&c->err, s, NULL, "the tenant has no SCIM token %s", id);
        if (!ok(c, s)) return;
        sg_log(SG_LOG_INFO, "admin", "%s revoked token %s", c->actor, id);
        no_content(c);
        return;
    }
    if (method(c, "GET")) {
        json_t *list = json_array();
        if (begin(c, SG_TXN_READ) &&
            ok(c, c->st->token_list(c->conn, c->tenant, token_row, list, &c->err)) && commit(c))
            reply(c, 200, json_pack("{sO}", "tokens", list));
        json_decref(list);
        return;
    }
    if (!method(c, "POST")) {
        not_allowed(c, "GET, POST");
        return;
    }
    if (!read_body(c, false)) return;
    const char *overlap = json_string_value(json_object_get(c->body, "expiresOldIn"));
    int64_t expires_old = -1;
    if (overlap && !sg_parse_duration_ms(overlap, &expires_old)) {
        admin_error(c->res, 400, "expiresOldIn is a duration such as 90s, 15m, 12h, 7d");
        return;
    }
    char token[SG_TOKEN_MAX], id[SG_TOKEN_ID_LEN + 1];
    if (!ok(c, sg_token_generate(pl, c->conn, c->tenant, expires_old, token, id, &c->err))) return;
    sg_log(SG_LOG_INFO, "admin", "%s generated SCIM token %s", c->actor, id);
    reply(c, 201, json_pack("{ssss}", "id", id, "token", token));
    explicit_bzero(token, sizeof token);
}

/* ---- settings and alerts --------------------------------------------------------------- */

static bool setting_key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!(k[i] == '_' || k[i] == '.' || (k[i] >= 'a' && k[i] <= 'z') ||
              (k[i] >= '0' && k[i] <= '9')))
            return false;
    return true;
}

static void settings(actx *c)
{
    if (method(c, "PATCH")) {
        if (!read_body(c, true) || !begin(c, SG_TXN_WRITE)) return;
        const char *k;
        json_t *v;
        json_object_foreach(c->body, k, v)
        {
            if (!setting_key_ok(k) || !(json_is_string(v) || json_is_null(v)) ||
                (json_is_string(v) && json_string_length(v) > 4096)) {
                char detail[200];
                snprintf(detail, sizeof detail,
                         "setting \"%.64s\": keys are 1 to 64 of a-z 0-9 _ . and values strings "
                         "(at most 4096 bytes) or null",
                         k);
                refuse(c, SG_EINVALID, detail);
                return;
            }
            char why[200];
            if (json_is_string(v) &&
                !sg_lc_setting_valid(k, json_string_value(v), why, sizeof why)) {
                refuse(c, SG_EINVALID, why);
                return;
            }
            if (!ok(c, c->st->setting_set(c->conn, c->tenant, k, json_string_value(v), &c->err)))
                return;
        }
        json_t *data = json_pack("{so}", "keys", json_object());
        json_object_foreach(c->body, k, v)
            json_object_set_new(json_object_get(data, "keys"), k, json_boolean(!json_is_null(v)));
        sg_status s = sg_event_add(c->st, c->conn, c->tenant, &c->lc.actor, "settings.changed",
                                   NULL, data, &c->err);
        json_decref(data);
        if (!ok(c, s) || !commit(c)) return;
    } else if (!method(c, "GET")) {
        not_allowed(c, "GET, PATCH");
        return;
    }
    if (begin(c, SG_TXN_READ)) {
        json_t *all = json_deep_copy(sg_lc_settings(&c->lc));
        if (commit(c)) reply(c, 200, json_pack("{so}", "settings", all));
    }
}

static void alerts(actx *c)
{
    if (c->nseg == 3) {
        if (!seg_is(c, 2, "deletion_spike")) {
            admin_error(c->res, 404, "no such alert");
            return;
        }
        if (!only(c, "DELETE")) return;
        if (begin(c, SG_TXN_WRITE) &&
            ok(c, c->st->setting_set(c->conn, c->tenant, "purge_paused", NULL, &c->err)) &&
            ok(c, sg_event_add(c->st, c->conn, c->tenant, &c->lc.actor, "alert.cleared", NULL, NULL,
                               &c->err)) &&
            commit(c))
            no_content(c);
        return;
    }
    if (!only(c, "GET")) return;
    if (!begin(c, SG_TXN_READ)) return;
    const char *paused = json_string_value(json_object_get(sg_lc_settings(&c->lc), "purge_paused"));
    json_t *list = json_array();
    if (paused)
        json_array_append_new(list,
                              json_pack("{ssss}", "type", "deletion_spike", "detail", paused));
    if (commit(c))
        reply(c, 200, json_pack("{so}", "alerts", list));
    else
        json_decref(list);
}

/* ---- dispatch -------------------------------------------------------------------------- */

static void scripts(actx *c, bool reload)
{
    if (!c->p.operator) {
        admin_error(c->res, 403, "only an operator may do this");
        return;
    }
    if (!only(c, reload ? "POST" : "GET")) return;
    if (reload) {
        uint64_t gen = sg_scripts_reload();
        sg_log(SG_LOG_INFO, "admin", "%s reloaded the scripts: generation %llu", c->actor,
               (unsigned long long)gen);
    }
    c->res->status = 200;
    c->res->content_type = SG_CT_JSON;
    sg_scripts_status(&c->res->body);
}

typedef struct tenant_rows {
    json_t *list;
    const char *base; /* the request's base URL */
} tenant_rows;

static int tenant_row(void *ud, const sg_tenant *t)
{
    tenant_rows *r = ud;
    char url[512];
    snprintf(url, sizeof url, "%s/scim/v2/%s", r->base, t->id);
    json_array_append_new(r->list,
                          json_pack("{sssssssbss}", "id", t->id, "name", t->name, "created",
                                    t->created, "disabled", t->disabled != 0, "url", url));
    return 0;
}

/* GET /admin/v1/tenants: every tenant for an operator; a tenant admin
 * sees only its own. */
static void tenants_list(actx *c)
{
    if (!only(c, "GET")) return;
    if (c->p.kind != SG_TOKEN_ADMIN) {
        admin_error(c->res, 403, "a device may only list and approve invitations");
        return;
    }
    tenant_rows rows = {json_array(), c->req->base_url};
    sg_status s = c->p.operator
                      ? c->st->tenant_list(c->conn, tenant_row, &rows, &c->err)
                      : c->st->tenant_get(c->conn, c->p.tenant, tenant_row, &rows, &c->err);
    if (ok(c, s)) reply(c, 200, json_pack("{sO}", "tenants", rows.list));
    json_decref(rows.list);
}

static void split(actx *c, const char *rest)
{
    c->nseg = 0;
    for (const char *p = rest; *p;) {
        while (*p == '/') p++;
        if (!*p) break;
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (c->nseg == (int)SG_ARRAY_LEN(c->seg)) {
            c->nseg++; /* too deep: no endpoint */
            break;
        }
        c->seg[c->nseg] = p;
        c->segn[c->nseg++] = n;
        p += n;
    }
}

/* The tenant the path names, which the principal must be allowed on. */
static bool tenant_allowed(actx *c)
{
    char named[65];
    if (!seg_copy(c, 0, named, sizeof named)) return false;
    sg_status s = sg_tenant_resolve(c->w->srv->plugins, c->conn, named, c->tenant, &c->err);
    if (s == SG_ENOTFOUND || (s == SG_OK && !c->p.operator&& strcmp(c->tenant, c->p.tenant))) {
        /* the same answer for another tenant's and a missing one */
        admin_error(c->res, 403, "this credential may not act on that tenant");
        return false;
    }
    return ok(c, s);
}

static void approvals(actx *c)
{
    if (method(c, "GET"))
        approvals_get(c);
    else if (method(c, "POST"))
        approvals_post(c);
    else
        not_allowed(c, "GET, POST");
}

static void changes(actx *c)
{
    if (only(c, "GET")) events(c, NULL);
}

/* /admin/v1/{T}/<name>...: the handler and how many segments it takes. */
static const struct {
    const char *name;
    int max_segments;
    bool device; /* an admin device may call it */
    void (*fn)(actx *c);
} tenant_routes[] = {
    {"approvals", 2, true, approvals},      {"users", 4, false, users},
    {"invitations", 2, false, invitations}, {"jobs", 4, false, jobs},
    {"changes", 2, false, changes},         {"settings", 2, false, settings},
    {"alerts", 3, false, alerts},           {"devices", 3, false, devices},
    {"tokens", 3, false, tokens},           {"groups", 2, false, groups},
    {"health", 2, false, health},           {"events", 2, false, audit},
    {"scripts", 2, false, tenant_scripts},
};

static void tenant_endpoint(actx *c)
{
    if (!tenant_allowed(c)) return;
    c->lc = (sg_lc){.st = c->st,
                    .conn = c->conn,
                    .tenant = c->tenant,
                    .actor = {c->actor, c->req->request_id},
                    .err = &c->err};
    for (size_t i = 0; i < SG_ARRAY_LEN(tenant_routes); i++) {
        if (!seg_is(c, 1, tenant_routes[i].name) || c->nseg > tenant_routes[i].max_segments)
            continue;
        if (tenant_routes[i].device || admin_only(c)) tenant_routes[i].fn(c);
        return;
    }
    admin_error(c->res, 404, "no such admin endpoint");
}

bool sg_admin_operator(sg_worker *w, sg_request *req, sg_response *res)
{
    actx c = {.w = w, .req = req, .res = res, .st = w->srv->plugins->st};
    sg_error_clear(&c.err);
    if (sg_worker_conn(w, &c.conn, &c.err) != SG_OK) {
        admin_error(res, 503, "the store is unavailable");
        return false;
    }
    if (!authenticate(&c)) return false;
    if (!c.p.operator) {
        admin_error(res, 403, "only an operator's admin token may read the metrics");
        return false;
    }
    return true;
}

void sg_admin_handle(sg_worker *w, sg_request *req, sg_response *res)
{
    actx c = {.w = w, .req = req, .res = res, .st = w->srv->plugins->st};
    sg_error_clear(&c.err);
    if (sg_worker_conn(w, &c.conn, &c.err) != SG_OK) {
        admin_error(res, 503, "the store is unavailable");
        return;
    }
    split(&c, req->route.rest);
    if (c.nseg == 1 && seg_is(&c, 0, "session")) {
        sg_portal_session(w, req, res); /* signs in: no credential yet */
        return;
    }
    if (!authenticate(&c)) return;
    if (c.nseg == 1 && seg_is(&c, 0, "tenants"))
        tenants_list(&c);
    else if (c.nseg == 1 && seg_is(&c, 0, "scripts"))
        scripts(&c, false);
    else if (c.nseg == 2 && seg_is(&c, 0, "scripts") && seg_is(&c, 1, "reload"))
        scripts(&c, true);
    else if (c.nseg >= 2)
        tenant_endpoint(&c);
    else
        admin_error(res, 404, "no such admin endpoint");
    if (c.in_txn) c.st->rollback(c.conn);
    sg_lc_done(&c.lc);
    json_decref(c.body);
}
