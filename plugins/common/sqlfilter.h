/*
** plugins/common: the half of a SQL storage plugin's filter compiler that
** does not depend on the SQL dialect, shared by storage_sqlite and
** storage_postgres. Not an ABI: a static library (position-independent,
** hidden symbols) linked into each plugin's shared object, which still
** exports only sg_plugin_init. Like the plugins it sees only the headers of
** core/include/scimgate/ and calls the core only through sg_host.
**
** A filter (filter.h) becomes the WHERE clause of one parameterised
** statement over `resources r`. Parameters 1 and 2 are always the tenant's
** tid and the resource type; every other value (literals, attribute names,
** JSON keys or paths, sort keys) is a parameter numbered from
** SF_FIRST_PARAM in the order the compiler creates them, so one filter
** shape is one SQL text (one entry of a statement cache).
**
** Each node compiles to one of:
**   - exact SQL: true exactly for the rows the core's evaluator
**     (core/src/filter.c) matches;
**   - necessary SQL: true for every matching row, maybe for others too (the
**     node is then part of the residual, which the core evaluates);
**   - nothing (as if "true").
** Every emitted condition is two-valued (never SQL NULL), so NOT of an exact
** condition is exact.
**
** Where a value is read from:
**   - index keys (resource_keys, SG_ATTR_INDEXED attributes): `folded` holds
**     the core's compare form, compared byte for byte as in the evaluator;
**   - columns: id, meta.created, meta.lastModified; membership rows;
**   - the stored JSON, for what compares without folding: case-exact
**     strings, booleans, numbers, and `pr` of anything. A case-insensitive
**     attribute without keys cannot be compared without folding, which only
**     the core does: residual.
**
** Planning. Each node is emitted in one of two forms, so that the SQL text
** fixes the plan: drive (a look-up that yields the matching rids, read
** through the primary key) or check (a per-row test). In an AND the most
** selective drivable conjunct drives and the others check; an OR drives
** when all its branches can. sf_rank() says how well a node drives; a node
** with rank > 0 compiled in drive mode must yield a drivable expression.
**
** What lives here: the statement builder (sf_qb), the literal rules, the
** analysis of the AST (what a leaf compiles to, how selective it is, how a
** sort attribute can be ordered) and the walk over AND, OR, NOT and value
** paths with its exactness rules. What each plugin keeps (sf_dialect):
** placeholders, every SQL text of a leaf (string comparisons, key look-ups,
** JSON access, the drive forms its planner needs), the enumeration of a
** multi-valued attribute's elements, how an OR drives, and the statement
** around the WHERE clause.
**
** Memory comes from the builder's host (sg_host alloc/realloc/free). No
** function here fails loudly: an allocation failure sets q->nomem, after
** which the builder appends nothing, and the caller reports SG_ENOMEM.
*/
#ifndef SG_PLUGINS_SQLFILTER_H
#define SG_PLUGINS_SQLFILTER_H

#include <stddef.h>
#include <stdint.h>

#include "scimgate/plugin.h"

/* ---- the statement being built ------------------------------------------------------------- */

#define SF_NOPARAM     ((size_t)-1)
#define SF_FIRST_PARAM 3 /* 1: the tenant's tid, 2: the resource type */

typedef enum sf_pkind {
    SF_PK_TEXT,   /* text: s[0..len), NUL-terminated at s[len]         */
    SF_PK_BLOB,   /* bytes s[0..len) (SQLite's byte-wise co/sw/ew)     */
    SF_PK_DOUBLE, /* num                                               */
} sf_pkind;

struct sf_param {
    const char *s; /* borrowed from the query, or `heap`                */
    char *heap;    /* owned (freed with the builder), or NULL          */
    int len;       /* bytes of s                                        */
    sf_pkind kind;
    double num;
};

typedef struct sf_qb sf_qb;
typedef struct sf_scope sf_scope;

/*
** What a dialect supplies. A plugin defines one, static and const, and
** points every builder at it. The hooks emit into q with sf_put and the
** sf_param_* functions; the library calls them while it compiles a WHERE
** clause (sf_compile_where).
*/
typedef struct sf_dialect {
    /* Placeholder prefix: '?' (?3) or '$' ($3). */
    char sigil;
    /* Can this node's literal be bound as text? Called for string literals
     * (SG_VT_STRING, str set). A node whose literal is refused compiles to
     * nothing, except members.value: eq is then false, ne true. */
    int (*text_ok)(const sg_filter *f);
    /* Can the stored JSON be addressed by an object key of this name
     * (never NULL)? Decides which attributes are read from the JSON. */
    int (*key_ok)(const char *name);
    /* Emit a comparison or PR node (sf_leaf_kind says what it is), in drive
     * form when `drive` is set and sf_leaf_rank > 0. Returns 1 when
     * something was emitted (leaves are always exact), 0 for nothing. */
    int (*leaf)(sf_qb *q, const sg_filter *f, int drive, const sf_scope *sc);
    /* Emit "<head> (SELECT 1 FROM <the values of a's array, each bound to
     * the element that SF_CX_ELEM leaves read> WHERE " (head: "EXISTS" or
     * "NOT EXISTS"); the caller closes it with ")". */
    void (*each)(sf_qb *q, const char *head, const sg_attr_ref *a);
    /* Emit the evaluator's test (cmp_one, present) of one JSON value with
     * operator `op` (never ne: sf_json_leaf negates eq) as a non-NULL
     * boolean. The value is the row's single-valued attribute f->attr
     * (elem 0), or f->attr.sub of the element `each` bound, or that element
     * itself without a sub-attribute (elem 1). */
    void (*jcond)(sf_qb *q, const sg_filter *f, sg_fop op, int elem);
    /* Emit an OR node: 1 when something was emitted, *exact when it is
     * exact. sf_comp_or is the plain form, which a dialect may wrap in a
     * driver of its own. */
    int (*comp_or)(sf_qb *q, const sg_filter *f, int drive, const sf_scope *sc, int *exact);
    /* How many and/or/not/value-path levels deep nodes are compiled (0: no
     * limit), and how many inside one `each`; deeper nodes stay with the
     * core (the residual). For an SQL parser with a bounded stack. */
    int max_nest, max_elem_nest;
} sf_dialect;

/* A statement being built: zero it, then set h and d. Release with
 * sf_qb_free. */
struct sf_qb {
    const sg_host *h;
    const sf_dialect *d;
    sg_buf sql;         /* the text so far (NUL-terminated)           */
    struct sf_param *p; /* p[0 .. np): parameters SF_FIRST_PARAM, ... */
    size_t np, cap;
    int nomem; /* an allocation failed: the text is partial  */
    int nest;  /* compound nodes being compiled: max_nest     */
};

/* Free the parameters, the text and the parameter array; q can be reused. */
void sf_qb_free(sf_qb *q);

/* Append s to the text (nothing once q->nomem is set). */
void sf_put(sf_qb *q, const char *s);

/* Emit the placeholder of parameter i ("?5", "$5"), followed by `cast`
 * (NULL: none); i == SF_NOPARAM (a failed parameter) sets q->nomem. */
void sf_put_ref(sf_qb *q, size_t i, const char *cast);

/*
** Parameters. Each returns the parameter's index (its placeholder is
** SF_FIRST_PARAM + index), or SF_NOPARAM with q->nomem set when it could not
** be added (out of memory, NULL bytes, or longer than INT_MAX). Borrowed
** bytes must outlive the builder's use of the parameters.
*/
size_t sf_param(sf_qb *q, const char *s);                  /* text, NUL-terminated, borrowed */
size_t sf_param_n(sf_qb *q, const char *s, size_t len);    /* text s[0..len), borrowed */
size_t sf_param_blob(sf_qb *q, const char *s, size_t len); /* bytes s[0..len), borrowed */
size_t sf_param_double(sf_qb *q, double v);
/* Text owned from here on, also on failure (NUL-terminated; NULL: out of
 * memory, q->nomem set). */
size_t sf_param_heap(sf_qb *q, char *heap);
/* Text holding a copy of the NUL-terminated s. */
size_t sf_param_copy(sf_qb *q, const char *s);

/* A point of the builder, to undo what was emitted after it. */
struct sf_mark {
    size_t len, np;
};
struct sf_mark sf_mark(const sf_qb *q);
void sf_restore(sf_qb *q, struct sf_mark m);

/* A host-allocated copy of s[0..n), NUL-terminated; NULL when out of memory. */
char *sf_dup_n(const sg_host *h, const char *s, size_t n);

/* ---- literals and operators ---------------------------------------------------------------- */

/* Is the node's attribute path exactly `path`? */
int sf_is_path(const sg_filter *f, const char *path);

/* gt ge lt le. */
int sf_is_order_op(sg_fop op);

/* " = ", " <> ", " > ", " >= ", " < ", " <= " for eq ne gt ge lt le (" = "
 * for the others). */
const char *sf_cmp_op(sg_fop op);

/*
** Rewrite an RFC 3339 literal in the stored form "YYYY-MM-DDTHH:MM:SS.mmmZ"
** (UTC), whose text order is time order. 0 when that cannot be done without
** changing the comparison's meaning (sub-millisecond digits, leap second,
** no zone, out of range): the node then stays with the core.
*/
int sf_norm_time(const sg_host *h, const char *s, size_t n, char out[SG_TIME_MAX]);

/* Does the attribute live inside an extension object? Its canonical path is
 * then "<URN>:name[.sub]" (filter.h), and its value is under the key URN
 * of the stored JSON, while core and common attributes have plain paths. */
int sf_in_extension(const sg_attr_ref *a);

/* ---- what the nodes compile to --------------------------------------------------------------- */

/* Where a node is compiled: at the top (the whole resource), inside a value
 * path as "some element satisfies this" (each leaf may use a different
 * element), or bound to the one element of an enumeration of the value
 * path's array (the dialect's `each`; every leaf reads the same element). */
typedef enum sf_cx { SF_CX_TOP, SF_CX_VP, SF_CX_ELEM } sf_cx;

struct sf_scope {
    sf_cx cx;
    const sg_attr_ref *vpa; /* the value path's attribute (SF_CX_VP, SF_CX_ELEM) */
};

typedef enum sf_leaf {
    SF_LF_NONE,
    SF_LF_KEY,       /* an index key comparison (any operator, pr)        */
    SF_LF_ID,        /* the id column                                     */
    SF_LF_TIME,      /* meta.created / meta.lastModified columns          */
    SF_LF_FALSE,     /* never true                                        */
    SF_LF_TRUE,      /* always true                                       */
    SF_LF_MEMBER_EQ, /* members.value eq "id"                             */
    SF_LF_MEMBER_NE, /* members.value ne "id"                             */
    SF_LF_MEMBER_PR, /* members.value pr                                  */
    SF_LF_JSON,      /* the stored JSON                                   */
} sf_leaf;

/* What a comparison or PR node compiles to, if anything. For SF_LF_TIME
 * tbuf receives the rewritten literal (sf_norm_time). */
sf_leaf sf_leaf_kind(const sf_qb *q, const sg_filter *f, const sf_scope *sc,
                     char tbuf[SG_TIME_MAX]);

/* How selective a leaf is as a driver: 0 when it cannot drive. */
int sf_leaf_rank(sf_leaf k, const sg_filter *f);

/*
** How well a node can drive the query: 0 not at all, higher is more
** selective (id eq 6; key eq, members.value eq, meta eq 5; key sw and
** ranges, meta ranges 2; key co ew pr 1). An AND ranks as its better side,
** an OR as its worse branch.
*/
int sf_rank(const sf_qb *q, const sg_filter *f, const sf_scope *sc);

/* Is the value path compiled as one enumeration of its elements: does every
 * condition in it (and in the comparison after it) read the JSON of the
 * same element? */
int sf_vp_whole(const sf_qb *q, const sg_filter *f);

/* Emit an SF_LF_JSON leaf (for the dialect's `leaf`). At the top it
 * follows the evaluator's any_value(): a single-valued attribute is read
 * directly, a multi-valued one matches when some element does (ne: when
 * none equals). Inside a value path it is about one element. */
void sf_json_leaf(sf_qb *q, const sg_filter *f, const sf_scope *sc);

/* ---- the walk -------------------------------------------------------------------------------- */

/* "(a OR b)" of the OR node f, both branches compiled with `drive`; 0 and
 * nothing emitted when either branch compiles to nothing. Exact when both
 * are ("some element matches x or y" is "some matches x or some matches
 * y", so this holds inside a value path too). */
int sf_comp_or(sf_qb *q, const sg_filter *f, int drive, const sf_scope *sc, int *exact);

/*
** The WHERE clause of a search into q: the tenant terms, `tenant` or, when
** the filter has a driver, `tenant_driven` (terms no index matches, so that
** the rows are reached through the driver only), then " AND " and the
** filter compiled in drive mode, unless it compiles to nothing. Returns the
** residual node (storage.h): NULL, a child of a top-level AND (the only one
** not compiled exactly), or the root.
*/
const sg_filter *sf_compile_where(sf_qb *q, const sg_filter *f, const char *tenant,
                                  const char *tenant_driven);

/* ---- sorting --------------------------------------------------------------------------------- */

/* How rows can be ordered by the query's sort attribute in SQL. */
typedef enum sf_sortkind {
    SF_SK_NONE,  /* not here: sorted = 0, the core sorts              */
    SF_SK_META,  /* id, meta.created, meta.lastModified columns       */
    SF_SK_KEY,   /* the folded index key of a single-valued attribute */
    SF_SK_JTEXT, /* a case-exact string in the stored JSON            */
    SF_SK_JNUM,  /* an integer or decimal in the stored JSON          */
    SF_SK_JBOOL, /* a boolean in the stored JSON (false before true)  */
} sf_sortkind;

sf_sortkind sf_sort_kind(const sf_qb *q, const sg_attr_ref *a);

/*
** Does a search's row count tell its total by itself? nrows rows came from
** a statement paged by the query's start_index and count (`paged`), or
** from every match. A page that is not full, and not empty past an offset,
** does: *total is set and 1 returned (most look-ups then cost one
** statement); otherwise 0, and the total takes a count.
*/
int sf_page_total(const sg_query *q, int paged, int64_t nrows, int64_t *total);

#endif
