/*
** Resources between the wire and storage.
**
** Inbound, a client document is checked against the schema and turned into
** the canonical body that storage keeps: attribute names in the schema's
** spelling, unknown and read-only attributes dropped, values kept in the
** shape they were sent, except what DESIGN §6 requires (booleans sent as
** "True"/"False" become JSON booleans; a manager sent as a string or a
** one-element array becomes {"value": id}). Empty strings and nulls mean
** "not set". Group members are split off: storage keeps them as rows.
**
** Outbound, the stored body gets members and meta (with the location for
** this request's base URL) appended.
*/
#ifndef SG_RESOURCE_H
#define SG_RESOURCE_H

#include <jansson.h>
#include <stdbool.h>

#include "schema.h"
#include "scimgate/plugin.h"

#define SG_ENTERPRISE_MANAGER "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"

/* A canonical body and, for groups, the member ids it carried. */
typedef struct sg_inbound {
    json_t *body;    /* canonical body; "id" not yet set                   */
    json_t *members; /* groups: array of member ids, or NULL when "members"
                        was absent                                         */
} sg_inbound;

/*
** Canonicalise a client document. SG_EINVALID with scimType invalidValue or
** invalidSyntax and a detail naming the attribute. OUT: in->body and
** in->members (json_decref both).
*/
sg_status sg_resource_inbound(const sg_rtdef *rt, const json_t *doc, sg_inbound *in, sg_error *err);
void sg_inbound_free(sg_inbound *in);

/*
** Convert one client value for attribute `a` as a POST body would be
** converted (types checked, names canonical, "True"/"False" to booleans,
** "" and null to "not set"). sg_attr_convert takes the attribute's whole
** value (an array for multi-valued attributes; a lone value is wrapped);
** sg_attr_convert_one takes a single element. OUT: *out, a new reference, or
** NULL for "not set".
*/
sg_status sg_attr_convert(const sg_attr *a, const json_t *v, json_t **out, sg_error *err);
sg_status sg_attr_convert_one(const sg_attr *a, const json_t *v, json_t **out, sg_error *err);

/* Rebuild "schemas" from the extensions present and drop empty extension
 * objects; check required attributes. SG_EINVALID when one is missing. */
sg_status sg_resource_finish(const sg_rtdef *rt, json_t *body, sg_error *err);

/* Put "id" right after "schemas" in a canonical body. */
sg_status sg_resource_set_id(json_t *body, const char *id);

/* Index keys of a canonical body (DESIGN §3), their strings owned by `ks`. */
typedef struct sg_keyset {
    sg_key *keys;
    size_t n, cap;
    char **strings;
    size_t nstr, capstr;
} sg_keyset;

sg_status sg_resource_keys(const sg_rtdef *rt, const json_t *body, const char *id, sg_keyset *ks);
void sg_keyset_free(sg_keyset *ks);

/* The meta object of a resource, its location built from `base_url`
 * (the tenant URL, e.g. https://host/scim/v2/<tenant>). */
sg_status sg_resource_meta_json(const sg_rtdef *rt, const sg_resource *row, const char *base_url,
                                sg_buf *out);
/* "W/\"<version>\"" into out[48]. */
void sg_resource_etag(int64_t version, char out[48]);

#endif
