/*
** Response shaping (RFC 7644 §3.4.2.5): `attributes` and
** `excludedAttributes`, with the schema's `returned` rules: "always" is
** always sent (id), "never" never, "request" only when asked for. schemas
** and meta.resourceType are always kept, as Entra expects.
*/
#ifndef SG_PROJECT_H
#define SG_PROJECT_H

#include <jansson.h>
#include <stdbool.h>

#include "schema.h"

typedef struct sg_projection {
    sg_resolved *inc; /* attributes=, or none */
    size_t ninc;
    sg_resolved *exc; /* excludedAttributes= */
    size_t nexc;
    bool include_mode;
    bool members; /* groups: whether members are returned */
} sg_projection;

/* Parse the two parameters (either may be NULL). Unknown names are ignored,
 * as is a value filter in brackets (`emails[type eq "work"]` names emails).
 * SG_ENOMEM only. */
sg_status sg_projection_parse(const sg_rtdef *rt, const char *attributes, const char *excluded,
                              sg_projection *p);
void sg_projection_free(sg_projection *p);
/* True when the stored body can be sent as it is (members aside). */
bool sg_projection_trivial(const sg_rtdef *rt, const sg_projection *p);
/* Shape a full resource document (body + members + meta) in place. */
void sg_projection_apply(const sg_rtdef *rt, const sg_projection *p, json_t *doc);

#endif
