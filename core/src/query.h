/*
** Query strings: split on '&', form-decode each part ('+' is a space, then
** %XX), match the SCIM parameter names case-insensitively and ignore the rest
** (Entra may append aadOptscim062020). ENTRA.md §8.
*/
#ifndef SG_QUERY_H
#define SG_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "scimgate/error.h"

typedef struct sg_params {
    char *filter;
    char *attributes;
    char *excluded;
    char *sort_by;
    char *sort_order;
    char *start_index;
    char *count;
    char *cursor; /* RFC 9865: "" when given without a value (first page) */
    bool aad_opt; /* aadOptscim062020 was present */
} sg_params;

/* Parse `qs` (may be NULL). SG_EINVALID on malformed %-escapes, with a
 * detail. Strings are owned by the struct: sg_params_free. */
sg_status sg_params_parse(const char *qs, sg_params *out, sg_error *err);
void sg_params_free(sg_params *p);

/* Decode application/x-www-form-urlencoded text into a new string; NULL on
 * a bad escape (%00 included: a NUL byte never belongs in a parameter) or
 * out of memory. */
char *sg_form_decode(const char *s, size_t n, size_t *outlen);

/* The decoded value of parameter `name` (exact name; the last one wins) in
 * `qs` (may be NULL), a new string; NULL when absent or malformed. */
char *sg_query_param(const char *qs, const char *name);

#endif
