/*
** The filter parser (core/src/filter.c): the text of `?filter=` as the
** gateway gets it after URL decoding, for users or groups, strict or lenient
** (a search at the root).
**
** Input: byte 0 picks the resource type (bit 0) and lenient parsing
** (bit 1); the rest is the filter text.
**
** Oracles besides the sanitizers: a refusal is always 400 invalidFilter;
** evaluating a tree on a stored body succeeds; a tree renders
** (sg_filter_format, the form tests and logs show) and, when it has no value
** path (rendered as `emails[emails.type eq "work"]:...`, which is not filter
** syntax), the rendering is itself a filter that parses to the same
** rendering and matches the same.
*/
#include <stdbool.h>
#include <string.h>

#include "buf.h"
#include "common.h"
#include "filter.h"

static const sg_filter_limits lim = {.max_length = 4096, .max_depth = 32};
/* The rendering parenthesises every and/or and escapes what the text may
 * have left raw, so it may exceed the request limits: reparse it without. */
static const sg_filter_limits wide = {.max_length = 1 << 20, .max_depth = 4096};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sg_fuzz_init();
    return 0;
}

/* Membership oracle for `members` conditions: one fixed member. */
static sg_status has_member(void *ud, const char *group_id, const char *member_id, bool *has)
{
    *has = !member_id || strcmp(member_id, "f648f8d5ea4e4cd38e9c") == 0;
    return SG_OK;
}

/* Does the tree hold a node whose rendering is not filter syntax? A value
 * path, or (lenient parsing of `addresses[unknown ne "x"]`) presence of a
 * complex attribute without a value sub-attribute, which `addresses pr`
 * does not parse to. */
static bool has_valuepath(const sg_filter *f)
{
    if (!f) return false;
    if (f->op == SG_FOP_VALUEPATH) return true;
    if (f->op == SG_FOP_PR && f->attr.type == SG_AT_COMPLEX && !f->attr.sub) return true;
    return (f->op == SG_FOP_AND || f->op == SG_FOP_OR || f->op == SG_FOP_NOT) &&
           (has_valuepath(f->a) || has_valuepath(f->b));
}

static sg_filter_tree *parse(sg_rtype type, bool lenient, const char *text, size_t len,
                             const sg_filter_limits *l)
{
    sg_filter_tree *t = NULL;
    sg_error err;
    sg_error_clear(&err);
    if (sg_filter_parse_ex(sg_rt(type), text, len, l, lenient, &t, &err) != SG_OK) {
        SG_FUZZ_CHECK(err.status == SG_EINVALID && err.scim_type &&
                          strcmp(err.scim_type, "invalidFilter") == 0 && err.detail[0],
                      "status %d scimType %s", err.status, err.scim_type ? err.scim_type : "-");
        return NULL;
    }
    SG_FUZZ_CHECK(t != NULL, "SG_OK without a tree");
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    sg_rtype type = (data[0] & 1) ? SG_RT_GROUP : SG_RT_USER;
    bool lenient = (data[0] & 2) != 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    sg_filter_tree *t = parse(type, lenient, text, len, &lim);
    if (!t) return 0;
    int k = sg_filter_constant(t);
    SG_FUZZ_CHECK(k >= -1 && k <= 1, "constant %d", k);
    SG_FUZZ_CHECK(lenient || k == -1, "strict parse gave a constant");
    if (k == -1) {
        const sg_filter *root = sg_filter_root(t);
        const json_t *doc = sg_fuzz_body(type);
        sg_resource row = {.type = type,
                           .id = json_string_value(json_object_get(doc, "id")),
                           .version = 3,
                           .created = "2024-01-02T03:04:05.000Z",
                           .modified = "2024-02-03T04:05:06.000Z"};
        sg_eval_ctx ctx = {.rt = sg_rt(type), .doc = doc, .row = &row, .has_member = has_member};
        bool m1 = false;
        SG_FUZZ_CHECK(sg_filter_eval(root, &ctx, &m1) == SG_OK, "eval");
        sg_buf a = {0};
        SG_FUZZ_CHECK(sg_filter_format(root, &a) == SG_OK, "format");
        if (!has_valuepath(root)) {
            sg_buf b = {0};
            sg_filter_tree *t2 = parse(type, lenient, a.data, a.len, &wide);
            SG_FUZZ_CHECK(t2 != NULL, "the rendering does not parse: %s", a.data);
            SG_FUZZ_CHECK(sg_filter_constant(t2) == -1, "reparse is constant: %s", a.data);
            SG_FUZZ_CHECK(sg_filter_format(sg_filter_root(t2), &b) == SG_OK, "format");
            SG_FUZZ_CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
                          "the rendering is not a fixed point:\n  %s\n  %s", a.data, b.data);
            bool m2 = false;
            SG_FUZZ_CHECK(sg_filter_eval(sg_filter_root(t2), &ctx, &m2) == SG_OK, "eval");
            SG_FUZZ_CHECK(m1 == m2, "the rendering matches differently: %s", a.data);
            sg_filter_free(t2);
            sg_buf_free(&b);
        }
        sg_buf_free(&a);
    }
    sg_filter_free(t);
    return 0;
}
