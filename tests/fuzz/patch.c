/*
** PATCH (core/src/patch.c): the path parser first of all, and what follows
** from a path (value-path filters, element creation, member changes), on a
** stored Entra-shaped user or group.
**
** Input, byte 0: bit 0 picks the resource type; bit 1 says the rest is a
** whole PatchOp body (JSON), as PATCH /Users/{id} receives it. Otherwise
** bits 2-3 pick the op (Add, replace, remove, Remove) and the rest is
** `path` up to the first newline, then the operation's "value" as JSON; when
** that is absent or not JSON, bits 4-6 pick a value Entra might send.
**
** Oracles besides the sanitizers: a refusal is SG_EINVALID with a scimType
** and a detail naming the operation; the stored body is never modified; a
** patched body is canonical, so canonicalising it again as a PUT would
** (sg_resource_inbound) changes nothing.
*/
#include <stdbool.h>
#include <string.h>

#include "buf.h"
#include "common.h"
#include "json.h"
#include "patch.h"
#include "resource.h"

static const sg_filter_limits lim = {.max_length = 4096, .max_depth = 32};
static json_t *pristine[3];
static json_t *values[8];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sg_fuzz_init();
    pristine[SG_RT_USER] = json_deep_copy(sg_fuzz_body(SG_RT_USER));
    pristine[SG_RT_GROUP] = json_deep_copy(sg_fuzz_body(SG_RT_GROUP));
    const char *v[8] = {"\"x@contoso.com\"",
                        "\"False\"",
                        "null",
                        "\"\"",
                        "[{\"$ref\":null,\"value\":\"f648f8d5ea4e4cd38e9c\"}]",
                        "{\"value\":\"26118915-6090-4610-87e4-49d8ca9f808d\"}",
                        "{\"displayName\":\"Foo\",\"name.givenName\":\"Kkom\"}",
                        "[{\"type\":\"work\",\"value\":\"a@b.c\",\"primary\":true}]"};
    for (int i = 0; i < 8; i++) values[i] = json_loads(v[i], JSON_DECODE_ANY, NULL);
    return 0;
}

static void check(sg_rtype type, const json_t *req)
{
    const sg_rtdef *rt = sg_rt(type);
    const json_t *body = sg_fuzz_body(type);
    sg_patch_result pr;
    sg_error err;
    sg_error_clear(&err);
    sg_status s = sg_patch_apply(rt, body, req, &lim, &pr, &err);
    SG_FUZZ_CHECK(json_equal(body, pristine[type]), "PATCH modified the stored body");
    if (s != SG_OK) {
        SG_FUZZ_CHECK(
            s == SG_EINVALID && err.status == SG_EINVALID && err.scim_type && err.detail[0],
            "status %d scimType %s detail %s", s, err.scim_type ? err.scim_type : "-", err.detail);
        sg_patch_result_free(&pr);
        return;
    }
    SG_FUZZ_CHECK(pr.body != NULL, "SG_OK without a body");
    SG_FUZZ_CHECK(type == SG_RT_GROUP || pr.nmembers == 0, "member changes on a user");
    for (size_t i = 0; i < pr.nmembers; i++) {
        const sg_member_change *m = &pr.members[i];
        SG_FUZZ_CHECK(json_is_array(m->ids), "member ids not an array");
        size_t j;
        const json_t *id;
        json_array_foreach(m->ids, j, id) SG_FUZZ_CHECK(json_is_string(id), "member id type");
    }

    /* The result as a PUT would store it: nothing may change. */
    json_t *doc = json_deep_copy(pr.body);
    json_object_del(doc, "id");
    sg_inbound in;
    sg_error_clear(&err);
    s = sg_resource_inbound(rt, doc, &in, &err);
    SG_FUZZ_CHECK(s == SG_OK, "the patched body is not a valid resource: %s", err.detail);
    s = sg_resource_finish(rt, in.body, &err);
    SG_FUZZ_CHECK(s == SG_OK, "the patched body misses a required attribute: %s", err.detail);
    sg_resource_set_id(in.body, json_string_value(json_object_get(pr.body, "id")));
    if (!json_equal(in.body, pr.body)) {
        char *a = json_dumps(pr.body, JSON_COMPACT | JSON_SORT_KEYS);
        char *b = json_dumps(in.body, JSON_COMPACT | JSON_SORT_KEYS);
        SG_FUZZ_CHECK(false, "the patched body is not canonical:\n  %s\n  %s", a, b);
    }
    sg_inbound_free(&in);
    json_decref(doc);

    sg_keyset ks = {0};
    sg_buf text = {0};
    SG_FUZZ_CHECK(sg_resource_keys(rt, pr.body, "x", &ks) == SG_OK, "keys");
    SG_FUZZ_CHECK(sg_json_dump(pr.body, &text) == SG_OK, "dump");
    sg_keyset_free(&ks);
    sg_buf_free(&text);
    sg_patch_result_free(&pr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    sg_rtype type = (data[0] & 1) ? SG_RT_GROUP : SG_RT_USER;
    const char *rest = (const char *)data + 1;
    size_t len = size - 1;
    json_t *req;
    if (data[0] & 2) {
        sg_error err;
        if (sg_json_parse(rest, len, 64, &req, &err) != SG_OK) return 0;
    } else {
        static const char *ops[4] = {"Add", "replace", "remove", "Remove"};
        const char *nl = memchr(rest, '\n', len);
        size_t plen = nl ? (size_t)(nl - rest) : len;
        json_t *value = NULL;
        if (nl) value = json_loadb(nl + 1, len - plen - 1, JSON_DECODE_ANY, NULL);
        if (!value) value = json_incref(values[(data[0] >> 4) & 7]);
        json_t *path = json_stringn(rest, plen); /* NULL when not UTF-8 */
        if (!path) {
            json_decref(value);
            return 0;
        }
        json_t *op = json_object();
        json_object_set_new(op, "op", json_string(ops[(data[0] >> 2) & 3]));
        json_object_set_new(op, "path", path);
        json_object_set_new(op, "value", value);
        req = json_object();
        json_object_set_new(req, "schemas",
                            json_pack("[s]", "urn:ietf:params:scim:api:messages:2.0:PatchOp"));
        json_object_set_new(req, "Operations", json_pack("[o]", op));
    }
    check(type, req);
    json_decref(req);
    return 0;
}
