/* JSON helpers on top of jansson: bounded parsing and dumping into sg_buf. */
#ifndef SG_JSON_H
#define SG_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "scimgate/error.h"
#include "scimgate/host.h"

/*
** Parse a request body. Nesting deeper than `max_depth` and any syntax
** error (duplicate keys included) are SG_EINVALID / "invalidSyntax" with the
** position in the detail. OUT: *out (json_decref).
*/
sg_status sg_json_parse(const char *text, size_t len, int max_depth, json_t **out, sg_error *err);
/* Append the compact encoding of `v` to `b`. */
sg_status sg_json_dump(const json_t *v, sg_buf *b);
/* Nesting depth of a JSON text (strings are skipped). */
int sg_json_depth(const char *text, size_t len);

/* Case-insensitive member lookup (SCIM attribute names are
 * case-insensitive). Returns the value and, when key_out is set, the key
 * as stored. */
json_t *sg_json_iget(const json_t *obj, const char *name, const char **key_out);

#endif
