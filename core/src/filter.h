/*
** SCIM filters (RFC 7644 §3.4.2.2): parsing into the ABI's AST (resolved
** against the schema, literals folded), and evaluation in memory on a
** canonical resource for whatever a storage plugin did not compile.
**
** Beyond the RFC grammar it accepts what Entra sends: unquoted values
** (`externalId eq jyoung`), `members eq X` (the value sub-attribute of a
** multi-valued complex attribute), and a comparison after a value path
** (`emails[type eq "work"].value eq "x"`).
*/
#ifndef SG_FILTER_H
#define SG_FILTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "schema.h"
#include "scimgate/plugin.h"

typedef struct sg_filter_tree sg_filter_tree;

typedef struct sg_filter_limits {
    size_t max_length;
    int max_depth;
} sg_filter_limits;

/*
** Parse `text` for resources of `rt`. On error SG_EINVALID with scimType
** "invalidFilter" and a detail naming the position. OUT: *out, released with
** sg_filter_free; the root is sg_filter_root(*out).
*/
sg_status sg_filter_parse(const sg_rtdef *rt, const char *text, size_t len,
                          const sg_filter_limits *lim, sg_filter_tree **out, sg_error *err);
/* Like sg_filter_parse; with `lenient`, an attribute the resource type does
** not have is absent rather than an error (a search at the root spans
** types). The tree may then reduce to a constant: see sg_filter_constant. */
sg_status sg_filter_parse_ex(const sg_rtdef *rt, const char *text, size_t len,
                             const sg_filter_limits *lim, bool lenient, sg_filter_tree **out,
                             sg_error *err);
/* -1 when the tree is a real filter; 0 when it matches nothing, 1 when it
 * matches everything (lenient parsing only). Such a tree's root must not be
 * handed to storage or the evaluator. */
int sg_filter_constant(const sg_filter_tree *t);
const sg_filter *sg_filter_root(const sg_filter_tree *t);
void sg_filter_free(sg_filter_tree *t);

/* What the evaluator needs besides the stored body. */
typedef struct sg_eval_ctx {
    const sg_rtdef *rt;
    const json_t *doc;      /* canonical body (no meta, no members)     */
    const sg_resource *row; /* id, version, created, modified            */
    /* Group membership test for members conditions: set *has when
     * `member_id` is a member of `group_id`, or, with member_id NULL, when
     * the group has any member. */
    sg_status (*has_member)(void *ud, const char *group_id, const char *member_id, bool *has);
    void *ud;
} sg_eval_ctx;

/* Evaluate `f` on one resource. SG_OK with *match set, or the status of a
 * failed membership look-up. */
sg_status sg_filter_eval(const sg_filter *f, const sg_eval_ctx *ctx, bool *match);

/* Does `element` (one value of the complex attribute named by the value
 * path `vp`, a SG_FOP_VALUEPATH node) satisfy the path's element filter?
 * Used by PATCH to pick the elements a path such as
 * emails[type eq "work"] addresses. */
sg_status sg_filter_eval_element(const sg_filter *vp, const sg_eval_ctx *ctx, const json_t *element,
                                 bool *match);

/* Render a tree as canonical filter text (tests and logs). */
sg_status sg_filter_format(const sg_filter *f, sg_buf *out);

#endif
