/*
** A request body to a stored resource, the way POST /Users and POST /Groups
** do it: bounded JSON parsing (core/src/json.c), schema checks and
** canonicalisation (core/src/resource.c, core/src/schema.c), the lifecycle
** extension of a new user, required attributes, index keys, the stored text,
** and the response body (meta, projection).
**
** Input: byte 0 picks the resource type (bit 0); the rest is the body.
**
** Oracles besides the sanitizers: a refusal is SG_EINVALID with
** invalidSyntax or invalidValue; a stored body is canonical, so
** canonicalising it again (a PUT of what a GET returned) changes nothing.
*/
#include <stdbool.h>
#include <string.h>

#include "buf.h"
#include "common.h"
#include "json.h"
#include "lifecycle.h"
#include "project.h"
#include "resource.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sg_fuzz_init();
    return 0;
}

static void refused(sg_status s, const sg_error *err)
{
    SG_FUZZ_CHECK(
        s == SG_EINVALID && err->scim_type &&
            (!strcmp(err->scim_type, "invalidSyntax") || !strcmp(err->scim_type, "invalidValue")) &&
            err->detail[0],
        "status %d scimType %s detail %s", s, err->scim_type ? err->scim_type : "-", err->detail);
}

static char *dump_sorted(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    sg_rtype type = (data[0] & 1) ? SG_RT_GROUP : SG_RT_USER;
    const sg_rtdef *rt = sg_rt(type);
    sg_error err;
    sg_error_clear(&err);
    json_t *doc;
    sg_status s = sg_json_parse((const char *)data + 1, size - 1, 64, &doc, &err);
    if (s != SG_OK) {
        refused(s, &err);
        return 0;
    }
    sg_inbound in;
    s = sg_resource_inbound(rt, doc, &in, &err);
    json_decref(doc);
    if (s != SG_OK) {
        refused(s, &err);
        return 0;
    }
    SG_FUZZ_CHECK(json_is_object(in.body), "no body");
    SG_FUZZ_CHECK(!in.members || json_is_array(in.members), "members not an array");
    if (type == SG_RT_USER) {
        if (!json_object_get(in.body, "active"))
            json_object_set_new(in.body, "active", json_true());
        char address[320];
        sg_lc_effects fx;
        bool invite = sg_lc_address(in.body, address, sizeof address);
        sg_lc_scim_user(NULL, in.body, invite, &fx);
    }
    s = sg_resource_finish(rt, in.body, &err);
    if (s != SG_OK) {
        refused(s, &err);
        sg_inbound_free(&in);
        return 0;
    }
    SG_FUZZ_CHECK(sg_resource_set_id(in.body, "2819c223-7f76-453a-919d-413861904646") == SG_OK,
                  "set id");
    sg_keyset ks = {0};
    sg_buf text = {0}, meta = {0};
    SG_FUZZ_CHECK(sg_resource_keys(rt, in.body, "2819c223-7f76-453a-919d-413861904646", &ks) ==
                      SG_OK,
                  "keys");
    SG_FUZZ_CHECK(sg_json_dump(in.body, &text) == SG_OK, "dump");

    /* What a GET returns, sent back as a PUT body: the same canonical body. */
    json_t *again = json_loadb(text.data, text.len, 0, NULL);
    SG_FUZZ_CHECK(again != NULL, "the stored text does not parse: %.*s", (int)text.len, text.data);
    sg_inbound in2;
    s = sg_resource_inbound(rt, again, &in2, &err);
    SG_FUZZ_CHECK(s == SG_OK, "the stored body is refused: %s", err.detail);
    SG_FUZZ_CHECK(sg_resource_finish(rt, in2.body, &err) == SG_OK, "finish: %s", err.detail);
    sg_resource_set_id(in2.body, "2819c223-7f76-453a-919d-413861904646");
    /* Server-owned extensions (lifecycle) are carried over, not accepted. */
    const char *key;
    json_t *v;
    json_object_foreach(in.body, key, v) if (strncmp(key, "urn:scimgate:", 13) == 0)
        json_object_set(in2.body, key, v);
    sg_resource_finish(rt, in2.body, &err);
    if (!json_equal(in.body, in2.body)) {
        char *a = dump_sorted(in.body), *b = dump_sorted(in2.body);
        SG_FUZZ_CHECK(false, "the stored body is not canonical:\n  %s\n  %s", a, b);
    }

    /* The response: meta and a projection. */
    sg_resource row = {.type = type,
                       .id = "2819c223-7f76-453a-919d-413861904646",
                       .version = 1,
                       .created = "2024-01-02T03:04:05.000Z",
                       .modified = "2024-01-02T03:04:05.000Z",
                       .json = text.data,
                       .json_len = text.len};
    SG_FUZZ_CHECK(sg_resource_meta_json(rt, &row, "http://127.0.0.1/scim/v2/t", &meta) == SG_OK,
                  "meta");
    sg_projection proj = {0};
    if (sg_projection_parse(rt, "userName,emails.value,members,displayName", NULL, &proj) ==
        SG_OK) {
        json_t *copy = json_deep_copy(in.body);
        sg_projection_apply(rt, &proj, copy);
        json_decref(copy);
    }
    sg_projection_free(&proj);
    sg_inbound_free(&in2);
    json_decref(again);
    sg_keyset_free(&ks);
    sg_buf_free(&text);
    sg_buf_free(&meta);
    sg_inbound_free(&in);
    return 0;
}
