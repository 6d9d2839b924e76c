/*
** Discovery endpoints (RFC 7644 §4): ServiceProviderConfig, Schemas and
** ResourceTypes, served from the documents in schemas/ with meta.location
** set for the tenant URL the client used.
*/
#include <string.h>

#include "buf.h"
#include "cursor.h"
#include "json.h"
#include "scim.h"
#include "schema.h"

static void set_location(json_t *doc, const char *tenant_url, const char *rest)
{
    json_t *meta = json_object_get(doc, "meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(doc, "meta", meta);
    }
    sg_buf loc = {0};
    sg_buf_printf(&loc, "%s%s", tenant_url, rest);
    json_object_set_new(meta, "location", json_string(loc.data ? loc.data : ""));
    sg_buf_free(&loc);
}

static void respond_json(sg_response *res, int status, json_t *doc)
{
    res->status = status;
    res->content_type = SG_CT_SCIM;
    if (sg_json_dump(doc, &res->body) != SG_OK) sg_respond_error(res, 500, NULL, "out of memory");
    json_decref(doc);
}

static json_t *list_response(json_t *resources)
{
    size_t n = json_array_size(resources);
    return json_pack("{s[s]sIsIsIso}", "schemas",
                     "urn:ietf:params:scim:api:messages:2.0:ListResponse", "totalResults",
                     (json_int_t)n, "itemsPerPage", (json_int_t)n, "startIndex", (json_int_t)1,
                     "Resources", resources);
}

static json_t *schema_doc(const sg_schema *s, const char *tenant_url)
{
    json_t *d = json_deep_copy(s->doc);
    char rest[600];
    snprintf(rest, sizeof rest, "/Schemas/%s", s->id);
    set_location(d, tenant_url, rest);
    return d;
}

static json_t *rt_doc(const sg_rtdef *rt, const char *tenant_url)
{
    json_t *d = json_deep_copy(rt->doc);
    char rest[300];
    snprintf(rest, sizeof rest, "/ResourceTypes/%s", rt->id);
    set_location(d, tenant_url, rest);
    return d;
}

void sg_scim_discovery(sg_worker *w, sg_request *req, sg_response *res)
{
    if (strcmp(req->method, "GET")) {
        sg_respond_error(res, 405, NULL, "discovery endpoints are read-only: use GET");
        sg_respond_header(res, "Allow", "GET");
        return;
    }
    const sg_route *r = &req->route;
    if (r->ep == SG_EP_SPC) {
        json_t *d = json_deep_copy(sg_spc_doc());
        const sg_limits *l = &w->srv->cfg->limits;
        json_t *f = json_object_get(d, "filter");
        if (json_is_object(f)) json_object_set_new(f, "maxResults", json_integer(l->page_max));
        json_t *pg = json_object_get(d, "pagination");
        if (json_is_object(pg)) {
            json_object_set_new(pg, "defaultPageSize", json_integer(l->page_default));
            json_object_set_new(pg, "maxPageSize", json_integer(l->page_max));
            json_object_set_new(pg, "cursorTimeout", json_integer(SG_CURSOR_TIMEOUT_S));
        }
        json_t *bulk = json_object_get(d, "bulk");
        if (json_is_object(bulk) && json_is_true(json_object_get(bulk, "supported"))) {
            json_object_set_new(bulk, "maxOperations", json_integer(l->bulk_operations));
            json_object_set_new(bulk, "maxPayloadSize", json_integer(l->bulk_bytes));
        }
        set_location(d, req->tenant_url, "/ServiceProviderConfig");
        respond_json(res, 200, d);
        return;
    }
    if (r->ep == SG_EP_SCHEMAS) {
        size_t n;
        const sg_schema *list = sg_schema_list(&n);
        if (r->id) {
            const sg_schema *s = sg_schema_by_id(r->id, r->id_len);
            if (!s) {
                sg_respond_error(res, 404, NULL, "no such schema");
                return;
            }
            respond_json(res, 200, schema_doc(s, req->tenant_url));
            return;
        }
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, schema_doc(&list[i], req->tenant_url));
        respond_json(res, 200, list_response(arr));
        return;
    }
    /* ResourceTypes */
    const sg_rtdef *rts[] = {sg_rt(SG_RT_USER), sg_rt(SG_RT_GROUP)};
    if (r->id) {
        for (size_t i = 0; i < 2; i++) {
            if (strlen(rts[i]->id) == r->id_len && !strncmp(rts[i]->id, r->id, r->id_len)) {
                respond_json(res, 200, rt_doc(rts[i], req->tenant_url));
                return;
            }
        }
        sg_respond_error(res, 404, NULL, "no such resource type");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < 2; i++) json_array_append_new(arr, rt_doc(rts[i], req->tenant_url));
    respond_json(res, 200, list_response(arr));
}
