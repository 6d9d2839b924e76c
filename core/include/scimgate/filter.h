/*
** scimgate plugin ABI: the SCIM filter AST (RFC 7644 §3.4.2.2).
**
** The core parses every filter (query parameter, value paths) into this tree
** before storage sees it. Attribute names are already resolved against the
** schema (canonical spelling, type, case sensitivity) and string literals of
** case-insensitive attributes are already folded (see DESIGN §3: plugins
** compare folded forms and never fold by themselves).
**
** The tree is owned by the core and is read-only for plugins; it stays valid
** for the duration of the storage call that receives it.
*/
#ifndef SCIMGATE_FILTER_H
#define SCIMGATE_FILTER_H

#include <stddef.h>
#include <stdint.h>

typedef enum sg_fop {
    SG_FOP_AND = 1,
    SG_FOP_OR = 2,
    SG_FOP_NOT = 3,
    SG_FOP_EQ = 4,
    SG_FOP_NE = 5,
    SG_FOP_CO = 6,
    SG_FOP_SW = 7,
    SG_FOP_EW = 8,
    SG_FOP_GT = 9,
    SG_FOP_GE = 10,
    SG_FOP_LT = 11,
    SG_FOP_LE = 12,
    SG_FOP_PR = 13,
    /* attr[filter] or attr[filter].sub op value: one element of the
     * multi-valued attribute must satisfy `a` (and `b`, when set). */
    SG_FOP_VALUEPATH = 14,
} sg_fop;

/* Type of an attribute, from its schema. */
typedef enum sg_atype {
    SG_AT_STRING = 1,
    SG_AT_BOOLEAN = 2,
    SG_AT_DECIMAL = 3,
    SG_AT_INTEGER = 4,
    SG_AT_DATETIME = 5,
    SG_AT_BINARY = 6,
    SG_AT_REFERENCE = 7,
    SG_AT_COMPLEX = 8,
} sg_atype;

/* Type of a literal in the filter text. */
typedef enum sg_vtype {
    SG_VT_NONE = 0, /* pr has no literal */
    SG_VT_STRING = 1,
    SG_VT_NUMBER = 2,
    SG_VT_BOOL = 3,
    SG_VT_NULL = 4,
} sg_vtype;

/* sg_attr_ref.flags */
#define SG_ATTR_CASE_EXACT 0x01u /* compare values byte for byte            */
#define SG_ATTR_MULTI      0x02u /* `name` is multi-valued                   */
#define SG_ATTR_INDEXED    0x04u /* the core hands storage a key for `path`  */
#define SG_ATTR_META       0x08u /* id, meta.created, meta.lastModified, ... */
#define SG_ATTR_MEMBERS    0x10u /* group membership (members.value): rows   */

/* An attribute named in a filter, resolved against the schema. */
typedef struct sg_attr_ref {
    const char *schema; /* URN of the schema defining `name`              */
    const char *name;   /* canonical top-level attribute, e.g. "emails"    */
    const char *sub;    /* canonical sub-attribute, e.g. "value", or NULL  */
    /* Canonical path, the same string the core uses for index keys:
     * "userName", "emails.value", "name.givenName", "meta.lastModified",
     * or "<extension URN>:employeeNumber". */
    const char *path;
    sg_atype type; /* type of the compared value (the sub-attribute's)   */
    uint32_t flags;
} sg_attr_ref;

typedef struct sg_filter sg_filter;
struct sg_filter {
    sg_fop op;
    /* AND, OR: both operands. NOT: `a`. VALUEPATH: `a` is the element
     * filter, `b` an optional comparison on a sub-attribute of the same
     * element (Entra's `emails[type eq "work"].value eq "x"`). Comparisons
     * inside a value path carry the full path ("emails.type"). */
    const sg_filter *a;
    const sg_filter *b;
    sg_attr_ref attr; /* comparisons, PR and VALUEPATH (attr.sub == NULL)  */
    sg_vtype vtype;   /* literal type                                      */
    const char *str;  /* SG_VT_STRING: NUL-terminated, folded when the
                         attribute is not SG_ATTR_CASE_EXACT               */
    size_t len;       /* byte length of `str`                              */
    double num;       /* SG_VT_NUMBER                                      */
    int boolean;      /* SG_VT_BOOL: 0 or 1                                */
    unsigned pos;     /* byte offset in the filter text (for messages)     */
};

#endif
