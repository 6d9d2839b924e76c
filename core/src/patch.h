/*
** PATCH (RFC 7644 §3.5.2) on a canonical resource, in both of Entra's
** dialects at once (ENTRA.md §2.6, §3.3, §5):
**
**   - `op` is case-insensitive (Add/Replace/Remove and add/replace/remove);
**   - `path` may be absent (the value is an object of attributes whose keys
**     may be dotted, "name.givenName", or URN-qualified,
**     "urn:...:enterprise:2.0:User:employeeNumber"), an attribute, a
**     sub-attribute, an extension attribute, or a value path
**     (`emails[type eq "work"].value`); add/replace on a value path create the
**     element when none matches;
**   - values are converted exactly as a POST body would be (resource.c):
**     "True"/"False" become booleans, a manager given as an id, an object or
**     a one-element array becomes {"value": id}, "" and null clear;
**   - manager removal in every observed form (remove with or without value,
**     `manager[value eq "x"]`, replace with {"value": ""});
**   - group members never live in the body: member operations come out as an
**     ordered list of membership changes (add ids, remove ids, clear), so a
**     change to a group of any size costs O(ids in the request). Legacy
**     `{"op":"Remove","path":"members","value":[{"value":"x"}]}` removes only
**     the listed members; `remove members[value eq "x"]` removes x; `remove
**     members` without a value clears; `replace members` sets the whole list.
**
** The operations apply in order to a copy; any failure leaves the input
** untouched and reports the failing operation by index.
*/
#ifndef SG_PATCH_H
#define SG_PATCH_H

#include <jansson.h>
#include <stdbool.h>

#include "filter.h"
#include "schema.h"

typedef enum sg_member_op {
    SG_MEMBERS_ADD = 1,    /* add `ids`                              */
    SG_MEMBERS_REMOVE = 2, /* remove `ids` (absent ones are fine)    */
    SG_MEMBERS_CLEAR = 3,  /* remove every member                    */
} sg_member_op;

typedef struct sg_member_change {
    sg_member_op op;
    json_t *ids;     /* array of member id strings (empty for CLEAR)  */
    size_t op_index; /* 1-based operation it came from (for errors)   */
} sg_member_change;

typedef struct sg_patch_result {
    json_t *body;              /* the patched canonical body (owned)     */
    bool changed;              /* body differs from the input            */
    sg_member_change *members; /* in request order (groups only)         */
    size_t nmembers;
} sg_patch_result;

/*
** Apply the PatchOp request `req` (a parsed JSON object) to `body` (a
** canonical body of type `rt`, with "id"). `lim` bounds value-path filters.
** On error: SG_EINVALID with scimType invalidSyntax, invalidPath, noTarget,
** invalidValue, invalidFilter or mutability, and a detail that starts with
** "operation N: " (N counted from 1). OUT: *out, released with
** sg_patch_result_free (also after an error).
*/
sg_status sg_patch_apply(const sg_rtdef *rt, const json_t *body, const json_t *req,
                         const sg_filter_limits *lim, sg_patch_result *out, sg_error *err);
void sg_patch_result_free(sg_patch_result *r);

#endif
