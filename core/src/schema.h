/*
** The schema model: the SCIM schema and resource type documents of
** schemas/ loaded once at start-up (read-only afterwards, shared by every
** thread), attribute resolution by name, and the rules the engine enforces
** from them: mutability, returned, uniqueness, caseExact, required and type.
*/
#ifndef SG_SCHEMA_H
#define SG_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "scimgate/plugin.h"

typedef enum { SG_MUT_READWRITE, SG_MUT_READONLY, SG_MUT_IMMUTABLE, SG_MUT_WRITEONLY } sg_mut;
typedef enum { SG_RET_DEFAULT, SG_RET_ALWAYS, SG_RET_NEVER, SG_RET_REQUEST } sg_ret;
typedef enum { SG_UNIQ_NONE, SG_UNIQ_SERVER, SG_UNIQ_GLOBAL } sg_uniq;

typedef struct sg_schema sg_schema;
typedef struct sg_attr sg_attr;

struct sg_attr {
    char *name; /* canonical spelling */
    sg_atype type;
    bool multi, required, case_exact;
    sg_mut mut;
    sg_ret ret;
    sg_uniq uniq;
    sg_attr *subs;
    size_t nsubs;
    const sg_attr *parent;    /* for sub-attributes */
    const sg_schema *schema;  /* defining schema */
    char *path;               /* canonical path (sg_attr_ref.path) */
    uint32_t flags;           /* SG_ATTR_* for filters */
    const sg_attr *value_sub; /* the "value" sub-attribute, if any */
};

struct sg_schema {
    char *id; /* URN */
    char *name;
    sg_attr *attrs;
    size_t nattrs;
    json_t *doc; /* the document as served at /Schemas (without meta.location) */
};

typedef struct sg_rtdef {
    sg_rtype type;
    char *id;       /* "User" */
    char *endpoint; /* "/Users" */
    const sg_schema *core;
    const sg_schema **exts;
    bool *ext_required;
    size_t nexts;
    json_t *doc;
    bool has_request_attrs; /* some attribute is returned only on request */
} sg_rtdef;

/* Load every *.schema.json and *.resourcetype.json and the
 * ServiceProviderConfig.json of `dir`. Call once before serving. */
bool sg_schemas_load(const char *dir, char *err, size_t errlen);
void sg_schemas_free(void);

const sg_rtdef *sg_rt(sg_rtype type);
const sg_rtdef *sg_rt_by_endpoint(const char *seg, size_t len); /* "Users" */
/* All loaded schemas (for /Schemas), in file name order. */
const sg_schema *sg_schema_list(size_t *n);
const sg_schema *sg_schema_by_id(const char *urn, size_t len);
const json_t *sg_spc_doc(void);
/* The common attributes (id, externalId, meta) as a pseudo-schema. */
const sg_schema *sg_common_schema(void);

/* The result of resolving an attribute path against a resource type. */
typedef struct sg_resolved {
    const sg_schema *schema; /* schema holding `attr` (or named alone)    */
    const sg_attr *attr;     /* top-level attribute, NULL when only the
                                schema URN was named                      */
    const sg_attr *sub;      /* sub-attribute, or NULL                    */
    bool common;             /* id, externalId or meta                    */
} sg_resolved;

/*
** Resolve "userName", "name.givenName", "emails.value", "meta.created",
** "urn:...:enterprise:2.0:User:manager.value", "urn:...:enterprise:2.0:User"
** (the whole extension), Entra's old "urn:...:User.department" form, and a
** bare extension attribute ("manager") when the core schema has no such
** name. Names are case-insensitive. false when unknown.
*/
bool sg_schema_resolve(const sg_rtdef *rt, const char *path, size_t len, sg_resolved *out);
/* A sub-attribute of `a` by case-insensitive name, or NULL. */
const sg_attr *sg_attr_sub(const sg_attr *a, const char *name, size_t len);
/* Whether the schema is the resource type's core schema or one of its extensions. */
bool sg_rt_has_schema(const sg_rtdef *rt, const sg_schema *s);
/* Fill an ABI attribute reference for attr (and sub). */
void sg_attr_ref_fill(sg_attr_ref *ref, const sg_attr *attr, const sg_attr *sub);

#endif
