/*
** /Bulk (RFC 7644 §3.7). Each operation runs as its own request through the
** same handlers as a single call (so the same rules and the same atomicity
** per operation). "bulkId:<id>" in an operation's path or data refers to
** the resource another operation of the request creates; operations run in
** an order that resolves such references, forward ones included, and a
** circular set of references is refused (409). failOnErrors stops the job
** after that many errors.
*/
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "json.h"
#include "log.h"
#include "resource.h"
#include "scim.h"
#include "util.h"

#define BULK_PREFIX "bulkId:"

typedef struct bulk_op {
    const json_t *src;  /* the operation as sent */
    const char *method; /* POST, PUT, PATCH, DELETE */
    const char *path;
    const char *bulk_id; /* POST only */
    const char *version; /* If-Match */
    json_t *data;        /* a copy: references are substituted in place */
    bool done;
    json_t *result;   /* the response operation */
    char *created_id; /* POST that succeeded */
    bool failed;
} bulk_op;

typedef struct bulk {
    bulk_op *ops;
    size_t n;
} bulk;

static bulk_op *by_bulk_id(bulk *b, const char *id)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->ops[i].bulk_id && !strcmp(b->ops[i].bulk_id, id)) return &b->ops[i];
    return NULL;
}

/* The first unresolved reference in a string: NULL when none; sets *blocked
 * when it names an operation that has not run yet. */
static const char *ref_in(const char *s)
{
    const char *p = strstr(s, BULK_PREFIX);
    return p ? p + strlen(BULK_PREFIX) : NULL;
}

typedef enum { REF_OK, REF_WAIT, REF_FAILED, REF_UNKNOWN } ref_state;

/* Check (and with `apply`, substitute) every reference in v. */
static ref_state refs_json(bulk *b, json_t *v, bool apply, const char **bad)
{
    ref_state worst = REF_OK;
    if (json_is_string(v)) {
        const char *s = json_string_value(v), *r = ref_in(s);
        if (!r || strncmp(s, BULK_PREFIX, strlen(BULK_PREFIX))) return REF_OK;
        bulk_op *o = by_bulk_id(b, r);
        *bad = r;
        if (!o) return REF_UNKNOWN;
        if (o->failed) return REF_FAILED;
        if (!o->created_id) return REF_WAIT;
        if (apply) json_string_set(v, o->created_id);
        return REF_OK;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            ref_state r = refs_json(b, e, apply, bad);
            if (r > worst) worst = r;
            if (worst >= REF_FAILED) return worst;
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e)
        {
            ref_state r = refs_json(b, e, apply, bad);
            if (r > worst) worst = r;
            if (worst >= REF_FAILED) return worst;
        }
    }
    return worst;
}

/* The path with a reference substituted ("/Groups/bulkId:g1"). */
static ref_state refs_path(bulk *b, const char *path, sg_buf *out, const char **bad)
{
    sg_buf_reset(out);
    const char *r = strstr(path, BULK_PREFIX);
    if (!r) return sg_buf_puts(out, path) == SG_OK ? REF_OK : REF_FAILED;
    const char *id = r + strlen(BULK_PREFIX);
    size_t idlen = strcspn(id, "/?");
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(idlen < 127 ? idlen : 127), id);
    bulk_op *o = by_bulk_id(b, name);
    *bad = id;
    if (!o) return REF_UNKNOWN;
    if (o->failed) return REF_FAILED;
    if (!o->created_id) return REF_WAIT;
    sg_buf_append(out, path, (size_t)(r - path));
    sg_buf_puts(out, o->created_id);
    sg_buf_puts(out, id + idlen);
    return REF_OK;
}

static json_t *op_result(const bulk_op *o, int status, json_t *response, const char *location,
                         const char *version)
{
    json_t *r = json_pack("{ss}", "method", o->method);
    char st[8];
    snprintf(st, sizeof st, "%d", status);
    if (o->bulk_id) json_object_set_new(r, "bulkId", json_string(o->bulk_id));
    if (version) json_object_set_new(r, "version", json_string(version));
    if (location) json_object_set_new(r, "location", json_string(location));
    json_object_set_new(r, "status", json_string(st));
    if (response) json_object_set_new(r, "response", response);
    return r;
}

static json_t *error_json(int status, const char *scim_type, const char *detail)
{
    sg_response res = {0};
    sg_respond_error(&res, status, scim_type, detail);
    json_t *j = json_loadb(res.body.data, res.body.len, 0, NULL);
    sg_response_free(&res);
    return j;
}

/* The sub-request's only header: its version as If-Match. */
static const char *sub_header(const sg_request *r, const char *name)
{
    const bulk_op *o = r->impl;
    if (!strcasecmp(name, "If-Match")) return o->version;
    return NULL;
}

/* A response header's value from "Name: value\r\n" lines. */
static char *header_value(const sg_buf *h, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = h->data; p && *p;) {
        const char *e = strstr(p, "\r\n");
        if (!e) break;
        if (!strncasecmp(p, name, n) && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ') v++;
            return strndup(v, (size_t)(e - v));
        }
        p = e + 2;
    }
    return NULL;
}

static void run_op(sg_worker *w, const sg_request *parent, bulk *b, bulk_op *o)
{
    sg_buf path = {0}, body = {0}, full = {0};
    const char *bad = NULL;
    ref_state rs = refs_path(b, o->path, &path, &bad);
    if (rs == REF_OK && o->data) rs = refs_json(b, o->data, true, &bad);
    if (rs != REF_OK) {
        char msg[200];
        snprintf(msg, sizeof msg, "bulkId %.100s %s", bad ? bad : "?",
                 rs == REF_UNKNOWN ? "is not created by any operation of this request"
                                   : "refers to an operation that failed");
        o->result = op_result(o, 409, error_json(409, "invalidValue", msg), NULL, NULL);
        o->failed = true;
        goto out;
    }
    sg_buf_printf(&full, "/scim/v2/%s%s", parent->route.tenant, path.data ? path.data : "");
    sg_request sub = *parent;
    sg_route_path(full.data, &sub.route);
    if (sub.route.kind != SG_ROUTE_SCIM || strcmp(sub.route.tenant, parent->route.tenant) ||
        (sub.route.ep != SG_EP_USERS && sub.route.ep != SG_EP_GROUPS) ||
        (strcmp(o->method, "POST") && !sub.route.id) ||
        (!strcmp(o->method, "POST") && sub.route.id)) {
        o->result = op_result(
            o, 400, error_json(400, "invalidPath", "a Bulk path is /Users, /Groups or /Users/<id>"),
            NULL, NULL);
        o->failed = true;
        goto out;
    }
    if (o->data) sg_json_dump(o->data, &body);
    sub.method = o->method;
    sub.query = NULL;
    sub.body = body.data;
    sub.body_len = body.len;
    sub.header = sub_header;
    sub.impl = o;
    sg_response res = {0};
    sg_scim_resources(w, &sub, &res);
    char *loc = header_value(&res.headers, "Location");
    char *etag = header_value(&res.headers, "ETag");
    json_t *response = NULL;
    if (res.status >= 400) {
        response = json_loadb(res.body.data, res.body.len, 0, NULL);
        o->failed = true;
    }
    if (!strcmp(o->method, "POST") && res.status == 201) {
        json_t *doc = json_loadb(res.body.data, res.body.len, 0, NULL);
        const char *id = json_string_value(json_object_get(doc, "id"));
        if (id) o->created_id = strdup(id);
        json_decref(doc);
    }
    if (!loc && res.status < 400 && sub.route.id) {
        sg_buf l = {0};
        sg_buf_printf(&l, "%s%s", parent->tenant_url, path.data);
        loc = sg_buf_steal(&l);
    }
    o->result = op_result(o, res.status, response, loc, etag);
    free(loc);
    free(etag);
    sg_response_free(&res);
out:
    o->done = true;
    sg_buf_free(&path);
    sg_buf_free(&body);
    sg_buf_free(&full);
}

static bool bad_request(sg_response *res, int status, const char *scim_type, const char *detail)
{
    sg_respond_error(res, status, scim_type, detail);
    return false;
}

/* Read the BulkRequest into b. */
static bool read_ops(sg_worker *w, const json_t *req, bulk *b, sg_response *res)
{
    const json_t *ops = sg_json_iget(req, "Operations", NULL);
    if (!json_is_array(ops) || json_array_size(ops) == 0)
        return bad_request(res, 400, "invalidSyntax", "\"Operations\" must be a non-empty array");
    const sg_limits *l = &w->srv->cfg->limits;
    if ((int64_t)json_array_size(ops) > l->bulk_operations) {
        char msg[128];
        snprintf(msg, sizeof msg, "a Bulk request holds at most %lld operations",
                 (long long)l->bulk_operations);
        return bad_request(res, 413, NULL, msg);
    }
    b->n = json_array_size(ops);
    b->ops = calloc(b->n, sizeof *b->ops);
    if (!b->ops) return bad_request(res, 500, NULL, "out of memory");
    for (size_t i = 0; i < b->n; i++) {
        bulk_op *o = &b->ops[i];
        const json_t *j = json_array_get(ops, i);
        o->src = j;
        o->method = json_string_value(sg_json_iget(j, "method", NULL));
        o->path = json_string_value(sg_json_iget(j, "path", NULL));
        o->bulk_id = json_string_value(sg_json_iget(j, "bulkId", NULL));
        o->version = json_string_value(sg_json_iget(j, "version", NULL));
        const json_t *data = sg_json_iget(j, "data", NULL);
        char msg[160];
        if (!json_is_object(j) || !o->method || !o->path) {
            snprintf(msg, sizeof msg, "operation %zu needs \"method\" and \"path\"", i + 1);
            return bad_request(res, 400, "invalidSyntax", msg);
        }
        if (strcasecmp(o->method, "POST") && strcasecmp(o->method, "PUT") &&
            strcasecmp(o->method, "PATCH") && strcasecmp(o->method, "DELETE")) {
            snprintf(msg, sizeof msg, "operation %zu: method must be POST, PUT, PATCH or DELETE",
                     i + 1);
            return bad_request(res, 400, "invalidSyntax", msg);
        }
        o->method = !strcasecmp(o->method, "POST")    ? "POST"
                    : !strcasecmp(o->method, "PUT")   ? "PUT"
                    : !strcasecmp(o->method, "PATCH") ? "PATCH"
                                                      : "DELETE";
        if (!strcmp(o->method, "POST") && (!o->bulk_id || !*o->bulk_id)) {
            snprintf(msg, sizeof msg, "operation %zu: a POST needs a \"bulkId\"", i + 1);
            return bad_request(res, 400, "invalidSyntax", msg);
        }
        if (o->bulk_id && strcmp(o->method, "POST")) o->bulk_id = NULL;
        for (size_t k = 0; o->bulk_id && k < i; k++) {
            if (b->ops[k].bulk_id && !strcmp(b->ops[k].bulk_id, o->bulk_id)) {
                snprintf(msg, sizeof msg, "operation %zu: bulkId \"%.60s\" is used twice", i + 1,
                         o->bulk_id);
                return bad_request(res, 400, "invalidValue", msg);
            }
        }
        if (strcmp(o->method, "DELETE") && !json_is_object(data)) {
            snprintf(msg, sizeof msg, "operation %zu: %s needs \"data\"", i + 1, o->method);
            return bad_request(res, 400, "invalidSyntax", msg);
        }
        if (data && !(o->data = json_deep_copy(data)))
            return bad_request(res, 500, NULL, "out of memory");
    }
    return true;
}

void sg_scim_bulk(sg_worker *w, sg_request *req, sg_response *res)
{
    if (strcmp(req->method, "POST")) {
        sg_respond_error(res, 405, NULL, "Bulk takes POST");
        sg_respond_header(res, "Allow", "POST");
        return;
    }
    const sg_limits *l = &w->srv->cfg->limits;
    if ((int64_t)req->body_len > l->bulk_bytes) {
        char msg[128];
        snprintf(msg, sizeof msg, "a Bulk request is at most %lld bytes", (long long)l->bulk_bytes);
        sg_respond_error(res, 413, NULL, msg);
        return;
    }
    json_t *doc = NULL;
    sg_error err;
    if (!req->body || !req->body_len) {
        sg_respond_error(res, 400, "invalidSyntax", "a BulkRequest body is required");
        return;
    }
    if (sg_json_parse(req->body, req->body_len, (int)l->json_depth, &doc, &err) != SG_OK) {
        sg_respond_sg_error(res, &err);
        return;
    }
    bulk b = {0};
    if (!json_is_object(doc)) {
        sg_respond_error(res, 400, "invalidSyntax", "the body must be a BulkRequest object");
    } else if (read_ops(w, doc, &b, res)) {
        const json_t *foe = sg_json_iget(doc, "failOnErrors", NULL);
        int64_t fail_on = json_is_integer(foe) && json_integer_value(foe) > 0
                              ? json_integer_value(foe)
                              : INT64_MAX;
        int64_t errors = 0;
        bool progress = true;
        /* Run what can run, in request order, until nothing more can: an
         * operation waits while it refers to a bulkId not yet created. */
        while (progress && errors < fail_on) {
            progress = false;
            for (size_t i = 0; i < b.n && errors < fail_on; i++) {
                bulk_op *o = &b.ops[i];
                if (o->done) continue;
                const char *bad = NULL;
                sg_buf tmp = {0};
                ref_state rs = refs_path(&b, o->path, &tmp, &bad);
                sg_buf_free(&tmp);
                if (rs == REF_OK && o->data) rs = refs_json(&b, o->data, false, &bad);
                if (rs == REF_WAIT) continue;
                run_op(w, req, &b, o);
                progress = true;
                if (o->failed) errors++;
            }
        }
        /* What is left waits on itself: a cycle of references. */
        for (size_t i = 0; i < b.n && errors < fail_on; i++) {
            bulk_op *o = &b.ops[i];
            if (o->done) continue;
            o->result = op_result(
                o, 409,
                error_json(409, "invalidValue", "circular bulkId references cannot be resolved"),
                NULL, NULL);
            o->done = o->failed = true;
            errors++;
        }
        json_t *out =
            json_pack("{s[s]so}", "schemas", "urn:ietf:params:scim:api:messages:2.0:BulkResponse",
                      "Operations", json_array());
        json_t *arr = json_object_get(out, "Operations");
        for (size_t i = 0; i < b.n; i++)
            if (b.ops[i].result) json_array_append(arr, b.ops[i].result);
        res->status = 200;
        res->content_type = SG_CT_SCIM;
        sg_buf_reset(&res->body);
        sg_buf_reset(&res->headers);
        sg_json_dump(out, &res->body);
        json_decref(out);
        sg_log(SG_LOG_INFO, "scim", "bulk: %zu operations, %lld errors", b.n, (long long)errors);
    }
    for (size_t i = 0; i < b.n; i++) {
        json_decref(b.ops[i].data);
        json_decref(b.ops[i].result);
        free(b.ops[i].created_id);
    }
    free(b.ops);
    json_decref(doc);
}
