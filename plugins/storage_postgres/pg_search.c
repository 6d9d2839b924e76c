/*
** storage_postgres: the filter AST (filter.h) compiled to parameterised SQL,
** and the search method (sg_query, sg_search_out: storage.h).
**
** The design is storage_sqlite's, and so is the half of the compiler that
** does not depend on the dialect: plugins/common/sqlfilter.c compiles the
** filters of both plugins, which therefore return the same rows, totals
** and residuals. What differs is here: how values are read (jsonb
** operators over resources.doc instead of JSON1 over the body text), the
** forms that fix PostgreSQL's plans, the total (taken in the same statement
** as the rows) and the streaming of large results. See README.md, "How
** filters are compiled".
**
** Rules followed here:
**   - $1 is always the tenant's tid and $2 the resource type; every other
**     value (literals, attribute names, JSON keys, sort keys, paging) is a
**     parameter numbered from $3 in creation order, so the same filter shape
**     gives the same SQL text (one entry of pg_exec's statement cache);
**   - every statement reads `resources r` scoped by its tid and rtype
**     ($1, $2); sub-selects that find rows on their own (look-ups) are
**     scoped by tid and rtype too, those that read a row's own keys or
**     memberships through its rid;
**   - text is compared byte for byte: the order operators carry COLLATE
**     "C", and co/sw/ew are substring tests, never LIKE;
**   - every PGresult is cleared before the function that got it returns.
*/
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"
#include "sqlfilter.h"

/* ---- the statement being built --------------------------------------------------------- */

/*
** The walk over the AST, its exactness rules and the analysis of leaves are
** plugins/common/sqlfilter.c's, shared with storage_sqlite (see
** sqlfilter.h); this file writes PostgreSQL's SQL for them (`dialect`, at
** the end of this part).
**
** Where a value is read from:
**   - index keys: `folded` is COLLATE "C", so every operator is a byte
**     comparison as in the evaluator;
**   - resources.doc (jsonb, generated from the body) for what compares
**     without folding.
**
** Planning. PostgreSQL orders joins by its statistics, and they are
** poorest exactly when it matters: a tenant that grew since the last
** ANALYZE (a new tenant's first sync) is estimated at a row or two, and the
** planner then scans the tenant's range and probes the keys for each row,
** or rescans a key range per row. So, as storage_sqlite does, each node is
** emitted in one of two forms, and the plan follows from the text:
**   - drive: `r.rid = ANY (ARRAY(SELECT rid FROM resource_keys WHERE tid,
**     rtype, attr, folded ...))`, and the like for id, timestamps and
**     memberships; an OR of look-ups is one ARRAY over their UNION ALL. The
**     sub-select is an InitPlan, run once, first; its rids are then read
**     through the primary key, in rid order;
**   - check: a correlated sub-select that stays a per-row sub-plan (see
**     CHECK_END), or an expression over the row (JSON conditions are always
**     checks).
** When the WHERE clause has a driver, the tenant terms are written `r.tid +
** 0 = $1 AND r.rtype + 0 = $2`, which no index matches, so the rows are
** reached through the driver only (the driver's own sub-select is scoped by
** tid and rtype). sf_rank() and comp_leaf()/comp_or() must agree: a node
** with rank > 0 compiled in drive mode always yields a drivable expression.
*/

/* Text parameters are always written `$n::text`: one type per parameter
 * whatever the context, and an index on a text column stays usable. */
static void put_ref(sf_qb *q, size_t i)
{
    sf_put_ref(q, i, "::text");
}

/* ---- literals ---------------------------------------------------------------------------- */

/* Is s[0..n) well-formed UTF-8 (no surrogates, no overlong forms)? */
static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

/*
** A string literal PostgreSQL can take as text: valid UTF-8 without NUL
** (the parser's quoted literals always are; a bare token need not be).
** Stored text is always valid UTF-8, so no literal of another kind can be
** equal to a stored value.
*/
static int text_ok(const sg_filter *f)
{
    return strlen(f->str) == f->len && utf8_ok((const unsigned char *)f->str, f->len);
}

/* Keys are parameters of `->`, which matches them exactly, so any
 * non-empty name will do. */
static int key_ok(const char *name)
{
    return *name != '\0';
}

/*
** Is the node's set of rids (put_set) exactly the rows it matches? True for
** leaves that drive, an OR of such, and a value path over such without a
** comparison after it (attr[x] with `x` a key look-up is "has key x": keys
** exist per element value).
*/
static int set_exact(const sf_qb *q, const sg_filter *f, const sf_scope *sc)
{
    char tbuf[SG_TIME_MAX];
    if (!f) return 0;
    switch (f->op) {
    case SG_FOP_OR:
        return set_exact(q, f->a, sc) && set_exact(q, f->b, sc);
    case SG_FOP_AND:
    case SG_FOP_NOT:
        return 0;
    case SG_FOP_VALUEPATH: {
        sf_scope vs = {SF_CX_VP, &f->attr};
        return sc->cx == SF_CX_TOP && !f->b && !sf_vp_whole(q, f) && set_exact(q, f->a, &vs);
    }
    default:
        return sf_leaf_rank(sf_leaf_kind(q, f, sc, tbuf), f) > 0;
    }
}

static const char *time_column(const sg_filter *f)
{
    return sf_is_path(f, "meta.created") ? "r.created" : "r.modified";
}

/*
** A string comparison of `val` (an SQL expression known to be text and not
** NULL) with the node's literal, byte for byte as the evaluator does: the
** order operators under COLLATE "C" (memcmp, then length); eq and ne are
** byte equality under any deterministic collation; co/sw/ew are substring
** tests, which on valid UTF-8 agree with the evaluator's byte tests (a
** character boundary cannot fall inside a character). Emits a non-NULL
** boolean.
*/
static void put_str_cmp(sf_qb *q, sg_fop op, const char *val, const sg_filter *f)
{
    size_t i = sf_param(q, f->str);
    switch (op) {
    case SG_FOP_CO:
        sf_put(q, "strpos(");
        sf_put(q, val);
        sf_put(q, ", ");
        put_ref(q, i);
        sf_put(q, ") > 0");
        return;
    case SG_FOP_SW:
        sf_put(q, "starts_with(");
        sf_put(q, val);
        sf_put(q, ", ");
        put_ref(q, i);
        sf_put(q, ")");
        return;
    case SG_FOP_EW:
        sf_put(q, "right(");
        sf_put(q, val);
        sf_put(q, ", char_length(");
        put_ref(q, i);
        sf_put(q, ")) = ");
        put_ref(q, i);
        return;
    default:
        sf_put(q, val);
        if (sf_is_order_op(op)) sf_put(q, " COLLATE \"C\"");
        sf_put(q, sf_cmp_op(op));
        put_ref(q, i);
        return;
    }
}

/* ---- index keys ---- */

/*
** The smallest text greater than every text that starts with s[0..n)
** (valid UTF-8): s without its trailing U+10FFFF characters, its last
** character replaced by the next code point (past the surrogates). Byte
** order is code point order, so [s, successor) is exactly the texts with
** prefix s. NULL (and *none set) when there is none (empty, or only
** U+10FFFF); NULL alone when out of memory.
*/
static char *prefix_successor(const sg_host *h, const char *s, size_t n, int *none)
{
    const unsigned char *u = (const unsigned char *)s;
    uint32_t cp = 0;
    size_t start = n;
    *none = 0;
    while (n) {
        start = n - 1;
        while (start && (u[start] & 0xc0) == 0x80) start--;
        size_t k = n - start;
        cp = k == 1 ? u[start] : u[start] & (0xff >> (k + 1));
        for (size_t j = 1; j < k; j++) cp = (cp << 6) | (u[start + j] & 0x3f);
        if (cp != 0x10ffff) break;
        n = start;
    }
    if (!n) {
        *none = 1;
        return NULL;
    }
    cp = cp + 1 == 0xd800 ? 0xe000 : cp + 1;
    char *d = h->alloc(start + 5);
    if (!d) return NULL;
    memcpy(d, s, start);
    unsigned char *o = (unsigned char *)d + start;
    if (cp < 0x80) {
        *o++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *o++ = (unsigned char)(0xc0 | cp >> 6);
        *o++ = (unsigned char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (unsigned char)(0xe0 | cp >> 12);
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (unsigned char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (unsigned char)(0xf0 | cp >> 18);
        *o++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (unsigned char)(0x80 | (cp & 0x3f));
    }
    *o = '\0';
    return d;
}

/* The condition on `k.folded` for a key comparison (not ne). */
static void put_key_cond(sf_qb *q, const sg_filter *f)
{
    if (f->op == SG_FOP_PR) {
        sf_put(q, "k.folded <> ''"); /* an empty string is not "present" */
    } else if (f->op == SG_FOP_SW) {
        /* A range of the key index: folded >= s AND folded < successor(s),
         * with bounds the planner sees in a generic plan too. */
        int none;
        char *succ = prefix_successor(q->h, f->str, f->len, &none);
        if (!succ && !none) q->nomem = 1;
        sf_put(q, "k.folded >= ");
        put_ref(q, sf_param(q, f->str));
        if (!none) {
            sf_put(q, " AND k.folded < ");
            put_ref(q, sf_param_heap(q, succ));
        }
    } else {
        put_str_cmp(q, f->op, "k.folded", f);
    }
}

/* "FROM resource_keys k WHERE <tenant, type, attribute>" */
static void put_key_from(sf_qb *q, const sg_filter *f)
{
    sf_put(q, "FROM resource_keys k WHERE k.tid = $1 AND k.rtype = $2 AND k.attr = ");
    put_ref(q, sf_param(q, f->attr.path));
}

/*
** The end of a check's correlated sub-select. OFFSET 0 keeps PostgreSQL
** from pulling it up into a join, whose plan (from estimates that are worst
** for a tenant that just grew) may rescan a whole key range per row; as a
** sub-plan it is one look-up per candidate row, through the key index
** (eq) or the rows' own keys (by rid).
*/
#define CHECK_END " OFFSET 0)"

/* A key condition on the row r. */
static void put_key(sf_qb *q, const sg_filter *f)
{
    if (f->op == SG_FOP_EQ || f->op == SG_FOP_NE) {
        /* A point look-up in the primary key; ne is not (eq): an absent
         * attribute matches, as in the evaluator. */
        sf_put(q, f->op == SG_FOP_NE ? "NOT EXISTS (SELECT 1 " : "EXISTS (SELECT 1 ");
        put_key_from(q, f);
        sf_put(q, " AND k.folded = ");
        put_ref(q, sf_param(q, f->str));
        sf_put(q, " AND k.rid = r.rid" CHECK_END);
        return;
    }
    /* The row's few keys, through the rid index: without tid and rtype no
     * prefix of the primary key matches, which would be a range of every
     * key of the attribute, per row (r, whose keys these are, is scoped). */
    sf_put(q, "EXISTS (SELECT 1 FROM resource_keys k WHERE k.rid = r.rid AND k.attr = ");
    put_ref(q, sf_param(q, f->attr.path));
    sf_put(q, " AND ");
    put_key_cond(q, f);
    sf_put(q, CHECK_END);
}

/* "(SELECT u.rid FROM resources u WHERE u.tid = $1 AND u.id = <literal>)":
 * the member named by the literal, any type (NULL when absent). */
static void put_member_rid(sf_qb *q, const sg_filter *f)
{
    sf_put(q, "(SELECT u.rid FROM resources u WHERE u.tid = $1 AND u.id = ");
    put_ref(q, sf_param(q, f->str));
    sf_put(q, ")");
}

/* ---- JSON values ---- */

/*
** Where a JSON leaf reads its value: `base` followed by up to three keys
** (`->` on a non-object gives NULL, as json_object_get does). base is
** "r.doc" (a single-valued attribute) or "e.v" (an element of a
** multi-valued one, enumerated by put_each).
*/
struct acc {
    const char *base;
    size_t key[3];
    int n;
};

static void put_jval(sf_qb *q, const struct acc *a)
{
    if (!a->n) {
        sf_put(q, a->base);
        return;
    }
    sf_put(q, "(");
    sf_put(q, a->base);
    for (int i = 0; i < a->n; i++) {
        sf_put(q, " -> ");
        put_ref(q, a->key[i]);
    }
    sf_put(q, ")");
}

static void acc_key(sf_qb *q, struct acc *a, const char *label)
{
    if (label) a->key[a->n++] = sf_param(q, label);
}

/* The value of a single-valued attribute (sub-attribute included). */
static struct acc root_acc(sf_qb *q, const sg_attr_ref *at)
{
    struct acc a = {.base = "r.doc"};
    acc_key(q, &a, sf_in_extension(at) ? at->schema : NULL);
    acc_key(q, &a, at->name);
    acc_key(q, &a, at->sub);
    return a;
}

/* The accessor of a leaf evaluated on the element `e.v`. */
static struct acc elem_acc(sf_qb *q, const sg_filter *f)
{
    struct acc a = {.base = "e.v"};
    acc_key(q, &a, f->attr.sub);
    return a;
}

/*
** The evaluator's test of one value (cmp_one, present) with operator `op`
** (never ne: the callers negate eq). A non-NULL boolean. CASE keeps the
** casts from seeing a value of another JSON type.
*/
static void put_jcond(sf_qb *q, const sg_filter *f, sg_fop op, const struct acc *a)
{
    if (op == SG_FOP_PR) {
        /* present(): not absent, not null, not "", not [] and not {}. */
        sf_put(q, "(");
        put_jval(q, a);
        sf_put(q, " NOT IN ('null'::jsonb, '\"\"'::jsonb, '[]'::jsonb, '{}'::jsonb)) IS TRUE");
        return;
    }
    switch (f->attr.type) {
    case SG_AT_BOOLEAN:
        sf_put(q, "(");
        put_jval(q, a);
        sf_put(q, " = ");
        sf_put_ref(q, sf_param(q, f->boolean ? "true" : "false"), "::jsonb");
        sf_put(q, ") IS TRUE");
        return;
    case SG_AT_INTEGER:
    case SG_AT_DECIMAL:
        /* As doubles, like json_number_value() in the evaluator. */
        sf_put(q, "(CASE WHEN jsonb_typeof(");
        put_jval(q, a);
        sf_put(q, ") = 'number' THEN ");
        put_jval(q, a);
        sf_put(q, "::float8");
        sf_put(q, sf_cmp_op(op));
        sf_put_ref(q, sf_param_double(q, f->num), "::float8");
        sf_put(q, " ELSE false END)");
        return;
    default: {
        /* The text of the string, rendered once for put_str_cmp. */
        sf_qb v = {.h = q->h, .d = q->d};
        sf_put(&v, "(");
        put_jval(&v, a);
        sf_put(&v, " #>> '{}')");
        if (v.nomem) {
            q->nomem = 1;
            q->h->free(v.sql.data);
            return;
        }
        sf_put(q, "(CASE WHEN jsonb_typeof(");
        put_jval(q, a);
        sf_put(q, ") = 'string' THEN ");
        put_str_cmp(q, op, v.sql.data, f);
        sf_put(q, " ELSE false END)");
        q->h->free(v.sql.data);
        return;
    }
    }
}

/* The dialect's jcond: put_jcond on the row's value or the element's. */
static void jcond(sf_qb *q, const sg_filter *f, sg_fop op, int elem)
{
    struct acc a = elem ? elem_acc(q, f) : root_acc(q, &f->attr);
    put_jcond(q, f, op, &a);
}

/*
** "EXISTS (SELECT 1 FROM jsonb_path_query(<a's value>, 'lax $[*]') e(v)
** WHERE ": the values of a multi-valued attribute as the evaluator walks
** them: an array's elements, any other value as itself, nothing when
** absent.
*/
static void put_each(sf_qb *q, const char *head, const sg_attr_ref *at)
{
    struct acc a = {.base = "r.doc"};
    acc_key(q, &a, sf_in_extension(at) ? at->schema : NULL);
    acc_key(q, &a, at->name);
    sf_put(q, head);
    sf_put(q, " (SELECT 1 FROM jsonb_path_query(");
    put_jval(q, &a);
    sf_put(q, ", 'lax $[*]') e(v) WHERE ");
}

/* ---- look-ups as sets of rids ---- */

/* A SELECT of the rids a leaf that drives (sf_leaf_rank > 0) matches. */
static void put_leaf_set(sf_qb *q, const sg_filter *f, sf_leaf k, const char *tbuf)
{
    switch (k) {
    case SF_LF_KEY:
        sf_put(q, "SELECT k.rid ");
        put_key_from(q, f);
        sf_put(q, " AND ");
        put_key_cond(q, f);
        return;
    case SF_LF_ID:
        sf_put(q, "SELECT u.rid FROM resources u WHERE u.tid = $1 AND u.rtype = $2 AND u.id = ");
        put_ref(q, sf_param(q, f->str));
        return;
    case SF_LF_TIME:
        sf_put(q, "SELECT u.rid FROM resources u WHERE u.tid = $1 AND u.rtype = $2 AND ");
        sf_put(q, sf_is_path(f, "meta.created") ? "u.created" : "u.modified");
        sf_put(q, sf_is_order_op(f->op) ? " COLLATE \"C\"" : "");
        sf_put(q, sf_cmp_op(f->op));
        put_ref(q, sf_param_copy(q, tbuf));
        return;
    default: /* SF_LF_MEMBER_EQ */
        sf_put(q, "SELECT m.group_rid FROM members m WHERE m.member_rid = ");
        put_member_rid(q, f);
        return;
    }
}

/*
** A set of rids holding every row a node with rank > 0 matches (exactly
** those when set_exact): a look-up for a leaf, the look-ups of an OR's
** branches UNION ALL, the set of the more selective side of an AND (or of a
** value path's two halves).
*/
static void put_set(sf_qb *q, const sg_filter *f, const sf_scope *sc)
{
    char tbuf[SG_TIME_MAX];
    switch (f->op) {
    case SG_FOP_OR:
        put_set(q, f->a, sc);
        sf_put(q, " UNION ALL ");
        put_set(q, f->b, sc);
        return;
    case SG_FOP_AND:
        put_set(q, sf_rank(q, f->a, sc) >= sf_rank(q, f->b, sc) ? f->a : f->b, sc);
        return;
    case SG_FOP_VALUEPATH: {
        sf_scope vs = {SF_CX_VP, &f->attr};
        put_set(q, sf_rank(q, f->a, &vs) >= sf_rank(q, f->b, &vs) ? f->a : f->b, &vs);
        return;
    }
    default:
        put_leaf_set(q, f, sf_leaf_kind(q, f, sc, tbuf), tbuf);
        return;
    }
}

/* ---- conditions on the row ---- */

/* The drive form: the set's rids, computed once, read by primary key. */
static void put_in_set(sf_qb *q, const sg_filter *f, const sf_scope *sc)
{
    sf_put(q, "r.rid = ANY (ARRAY(");
    put_set(q, f, sc);
    sf_put(q, "))");
}

/* Emit a comparison or PR node, in drive form when `drive` is set and the
 * leaf can drive. Returns 1 when something was emitted (leaves are always
 * exact). */
static int comp_leaf(sf_qb *q, const sg_filter *f, int drive, const sf_scope *sc)
{
    char tbuf[SG_TIME_MAX];
    sf_leaf k = sf_leaf_kind(q, f, sc, tbuf);
    drive = drive && sf_leaf_rank(k, f) > 0;
    switch (k) {
    case SF_LF_KEY:
        if (drive)
            put_in_set(q, f, sc);
        else
            put_key(q, f);
        return 1;
    case SF_LF_ID:
        /* Driving, the unique index (tid, id). */
        sf_put(q, drive ? "(r.tid = $1 AND " : "(");
        if (f->op == SG_FOP_PR)
            sf_put(q, "r.id <> ''");
        else
            put_str_cmp(q, f->op, "r.id", f);
        sf_put(q, ")");
        return 1;
    case SF_LF_TIME:
        sf_put(q, drive ? "(r.tid = $1 AND r.rtype = $2 AND " : "(");
        sf_put(q, time_column(f));
        if (f->op == SG_FOP_PR) {
            sf_put(q, " <> '')");
            return 1;
        }
        if (sf_is_order_op(f->op)) sf_put(q, " COLLATE \"C\"");
        sf_put(q, sf_cmp_op(f->op));
        put_ref(q, sf_param_copy(q, tbuf));
        sf_put(q, ")");
        return 1;
    case SF_LF_FALSE:
        sf_put(q, "false");
        return 1;
    case SF_LF_TRUE:
        sf_put(q, "true");
        return 1;
    case SF_LF_MEMBER_EQ:
        if (drive) {
            put_in_set(q, f, sc);
            return 1;
        }
        /* fall through */
    case SF_LF_MEMBER_NE:
        sf_put(q, k == SF_LF_MEMBER_NE ? "NOT EXISTS" : "EXISTS");
        sf_put(q, " (SELECT 1 FROM members m WHERE m.group_rid = r.rid AND m.member_rid = ");
        put_member_rid(q, f);
        sf_put(q, CHECK_END);
        return 1;
    case SF_LF_MEMBER_PR:
        sf_put(q, "EXISTS (SELECT 1 FROM members m WHERE m.group_rid = r.rid" CHECK_END);
        return 1;
    case SF_LF_JSON:
        sf_json_leaf(q, f, sc);
        return 1;
    default:
        return 0;
    }
}

/*
** An OR. When it drives: a set_exact OR is its look-ups alone; otherwise
** the look-ups narrow and the branches decide, and when a branch compiles
** to nothing the look-ups alone still hold every matching row (necessary).
*/
static int comp_or(sf_qb *q, const sg_filter *f, int drive, const sf_scope *sc, int *exact)
{
    *exact = 0;
    if (!drive || sf_rank(q, f, sc) == 0) return sf_comp_or(q, f, 0, sc, exact);
    if (set_exact(q, f, sc)) {
        put_in_set(q, f, sc);
        *exact = 1;
        return 1;
    }
    struct sf_mark m = sf_mark(q);
    sf_put(q, "(");
    put_in_set(q, f, sc);
    sf_put(q, " AND ");
    if (sf_comp_or(q, f, 0, sc, exact)) {
        sf_put(q, ")");
        return 1;
    }
    sf_restore(q, m);
    put_in_set(q, f, sc);
    return 1;
}

static const sf_dialect dialect = {
    .sigil = '$',
    .text_ok = text_ok,
    .key_ok = key_ok,
    .leaf = comp_leaf,
    .each = put_each,
    .jcond = jcond,
    .comp_or = comp_or,
};

/* ---- search ------------------------------------------------------------------------------ */

struct search {
    sg_conn *c;
    const sg_query *q;
    int64_t tid;
    sf_qb b;         /* the WHERE clause, then the sort key; all parameters */
    size_t where_np; /* parameters of the WHERE clause: b.p[0 .. where_np) */
    char *where;     /* the WHERE clause (owned)                          */
    char *order;     /* the ORDER BY list (owned)                         */
};

/* "(CASE WHEN jsonb_typeof(v) = '<type>' THEN v<conv> END)": v as the
 * attribute's type, NULL when it holds another. */
static void put_typed(sf_qb *q, const struct acc *v, const char *type, const char *conv)
{
    sf_put(q, "(CASE WHEN jsonb_typeof(");
    put_jval(q, v);
    sf_put(q, ") = '");
    sf_put(q, type);
    sf_put(q, "' THEN ");
    put_jval(q, v);
    sf_put(q, conv);
    sf_put(q, " END)");
}

/*
** The ORDER BY list into s->order (its parameters follow the WHERE
** clause's). A sort value is NULL when missing (absent, or not of the
** attribute's type): missing values go last when ascending and first when
** descending (RFC 7644 §3.4.2.3); ties, in both directions, keep creation
** order (rid).
*/
static void build_order(struct search *s, sf_sortkind sk)
{
    sf_qb *q = &s->b;
    const sg_query *qq = s->q;
    const sg_attr_ref *a = qq->sort;
    struct acc v;
    switch (sk) {
    case SF_SK_META:
        sf_put(q, !strcmp(a->path, "id")             ? "r.id"
                  : !strcmp(a->path, "meta.created") ? "r.created"
                                                     : "r.modified");
        sf_put(q, qq->sort_descending ? " COLLATE \"C\" DESC, " : " COLLATE \"C\", ");
        break;
    case SF_SK_KEY:
        /* The row's key by rid (see put_key). */
        sf_put(q, "(SELECT min(k.folded) FROM resource_keys k WHERE k.rid = r.rid AND k.attr = ");
        put_ref(q, sf_param(q, a->path));
        sf_put(q, ")");
        break;
    case SF_SK_JTEXT:
        v = root_acc(q, a);
        put_typed(q, &v, "string", " #>> '{}'");
        sf_put(q, " COLLATE \"C\"");
        break;
    case SF_SK_JNUM:
        v = root_acc(q, a);
        put_typed(q, &v, "number", "::float8");
        break;
    case SF_SK_JBOOL:
        v = root_acc(q, a);
        put_typed(q, &v, "boolean", "::boolean");
        break;
    default:
        break;
    }
    if (sk != SF_SK_NONE && sk != SF_SK_META)
        sf_put(q, qq->sort_descending ? " DESC NULLS FIRST, " : " ASC NULLS LAST, ");
    sf_put(q, "r.rid");
}

/* Parameters $1.. of a statement: tid, rtype, the first n of s->b, then
 * `extra` (paging), each NULL-terminated text or SQL NULL. */
static sg_status bind(struct search *s, size_t n, const char *const *extra, int nextra,
                      pg_params *p, sg_error *err)
{
    pg_params_init(p);
    int ok = pg_param_i64(p, s->tid) == 1 && pg_param_i64(p, s->q->type) == 2;
    for (size_t i = 0; ok && i < n; i++) {
        const struct sf_param *x = &s->b.p[i];
        int want = (int)(i + SF_FIRST_PARAM);
        ok = (x->kind == SF_PK_DOUBLE ? pg_param_f64(p, x->num) : pg_param_text(p, x->s)) == want;
    }
    for (int i = 0; ok && i < nextra; i++) ok = pg_param_text(p, extra[i]) != 0;
    if (ok && !p->overflow) return SG_OK;
    /* pg.c flags both a full list and a failed allocation as overflow. */
    int overflow = p->n >= PG_MAX_PARAMS;
    pg_params_free(p);
    if (overflow)
        return sg_error_set(err, SG_ETOOMANY, "tooMany",
                            "the filter has too many conditions to run");
    return pg_oom(err);
}

/* count(*) of the tenant's resources of the type: the slots that
 * migration 3's trigger keeps (no row: 0). */
#define COUNT_ALL                                                                                  \
    "SELECT coalesce(sum(n), 0)::bigint FROM resource_counts WHERE tid = $1::bigint"               \
    " AND rtype = $2::int"

/* "SELECT count(*) FROM resources r WHERE ..." on its own (without a
 * filter, COUNT_ALL). */
static sg_status run_count(struct search *s, int64_t *total, sg_error *err)
{
    sg_conn *c = s->c;
    sg_buf sql = {0};
    sg_status st = SG_OK;
    int all = !s->q->filter;
    const char *parts[] = {all ? COUNT_ALL : "SELECT count(*) FROM resources r WHERE ",
                           all ? "" : s->where};
    for (size_t i = 0; st == SG_OK && i < 2; i++)
        st = c->host->buf_append(&sql, parts[i], strlen(parts[i]));
    if (st != SG_OK) {
        c->host->free(sql.data);
        return pg_oom(err);
    }
    pg_params *p = c->host->alloc(sizeof *p);
    if (!p) {
        c->host->free(sql.data);
        return pg_oom(err);
    }
    st = bind(s, s->where_np, NULL, 0, p, err);
    PGresult *res = NULL;
    if (st == SG_OK) {
        st = pg_exec(c, NULL, sql.data, p, &res, err);
        pg_params_free(p);
    }
    if (st == SG_OK) *total = PQntuples(res) == 1 ? pg_i64(res, 0, 0) : 0;
    PQclear(res);
    c->host->free(p);
    c->host->free(sql.data);
    return st;
}

/* Hand result row i to fn. */
static sg_status emit(const sg_query *qq, const PGresult *res, int i, sg_row_fn fn, void *ud)
{
    sg_resource row = pg_resource_row(res, i, qq->type);
    return fn(ud, &row);
}

/*
** Run an unpaged statement (every candidate, maybe the whole tenant) in
** libpq's single-row mode, so that rows reach fn as they arrive instead of
** all bodies being held at once. Unnamed: planned for these values each
** time, which costs little beside reading a tenant. After fn stops the
** iteration the remaining rows are read and dropped (cancelling would
** abort the caller's transaction). *n counts the rows handed over.
*/
static sg_status stream(struct search *s, const char *sql, const pg_params *p, sg_row_fn fn,
                        void *ud, int64_t *n, sg_error *err)
{
    sg_conn *c = s->c;
    if (!PQsendQueryParams(c->pg, sql, p->n, NULL, p->v, p->len, p->fmt, 0))
        return pg_error(c, NULL, err);
    sg_status st = SG_OK;
    PQsetSingleRowMode(c->pg); /* else every row comes in one result */
    PGresult *res;
    while ((res = PQgetResult(c->pg))) {
        ExecStatusType es = PQresultStatus(res);
        if (es == PGRES_SINGLE_TUPLE) {
            if (st == SG_OK) {
                ++*n;
                st = emit(s->q, res, 0, fn, ud);
            }
        } else if (es == PGRES_TUPLES_OK) {
            /* The end (or, without single-row mode, every row at once). */
            for (int i = 0; i < PQntuples(res) && st == SG_OK; i++, ++*n)
                st = emit(s->q, res, i, fn, ud);
        } else if (st == SG_OK) {
            st = pg_error(c, res, err);
        }
        PQclear(res);
    }
    if (st == SG_OK && PQstatus(c->pg) != CONNECTION_OK) st = pg_error(c, NULL, err);
    return st;
}

/*
** The rows, in order, to fn; *n counts them. paged: LIMIT/OFFSET from the
** query. with_count: each row also carries the count of every match, taken
** in the same statement (one snapshot, whatever the transaction), set in
** *total when a row came back.
*/
static sg_status run_rows(struct search *s, int paged, int with_count, sg_row_fn fn, void *ud,
                          int64_t *n, int64_t *total, sg_error *err)
{
    sg_conn *c = s->c;
    const sg_host *h = c->host;
    const sg_query *qq = s->q;
    sg_buf sql = {0};
    char lim[32], off[32], tail[64];
    const char *extra[2] = {NULL, NULL};
    int nextra = 0;
    size_t next = s->b.np + SF_FIRST_PARAM;
    if (paged) {
        /* LIMIT NULL is no limit. */
        if (qq->count > 0) snprintf(lim, sizeof lim, "%lld", (long long)qq->count);
        snprintf(off, sizeof off, "%lld",
                 (long long)(qq->start_index > 1 ? qq->start_index - 1 : 0));
        extra[0] = qq->count > 0 ? lim : NULL;
        extra[1] = off;
        nextra = 2;
        snprintf(tail, sizeof tail, " LIMIT $%zu::bigint OFFSET $%zu::bigint", next, next + 1);
    }
    /* A page (a LIMIT) picks its rids first, then reads only their rows
     * (late row lookup): the OFFSET then walks an index-only scan of
     * resources_list (tid, rtype, rid) when nothing else is asked, not the
     * table's rows with their bodies and jsonb (at 100,000 users, offset
     * 90,000: 20 ms instead of 90-240 ms). The outer ORDER BY repeats the
     * inner one, which ends with the unique rid: the same rows in the same
     * order. */
    int late = paged && qq->count > 0;
    int all = with_count && !qq->filter;
    const char *parts[] = {"SELECT r.id, r.version, r.created, r.modified, r.body",
                           all          ? ", (" COUNT_ALL ")"
                           : with_count ? ", (SELECT count(*) FROM resources r WHERE "
                                        : "",
                           with_count && !all ? s->where : "",
                           with_count && !all ? ")" : "",
                           " FROM resources r WHERE ",
                           late ? "r.rid IN (SELECT r.rid FROM resources r WHERE " : "",
                           s->where,
                           late ? " ORDER BY " : "",
                           late ? s->order : "",
                           late ? tail : "",
                           late ? ")" : "",
                           " ORDER BY ",
                           s->order,
                           paged && !late ? tail : ""};
    sg_status st = SG_OK;
    for (size_t i = 0; st == SG_OK && i < sizeof parts / sizeof parts[0]; i++)
        st = h->buf_append(&sql, parts[i], strlen(parts[i]));
    if (st != SG_OK) {
        h->free(sql.data);
        return pg_oom(err);
    }
    pg_params *p = h->alloc(sizeof *p);
    if (!p) {
        h->free(sql.data);
        return pg_oom(err);
    }
    *n = 0;
    st = bind(s, s->b.np, extra, nextra, p, err);
    if (st != SG_OK) {
        h->free(p);
        h->free(sql.data);
        return st;
    }
    /* A page is at most `count` rows: buffered, through the statement cache.
     * Anything larger streams (on a live connection; pg_exec reconnects a
     * broken one, so that case goes there). */
    if ((!paged || qq->count < 0) && PQstatus(c->pg) == CONNECTION_OK) {
        st = stream(s, sql.data, p, fn, ud, n, err);
    } else {
        PGresult *res = NULL;
        st = pg_exec(c, NULL, sql.data, p, &res, err);
        int rows = st == SG_OK ? PQntuples(res) : 0;
        if (with_count && rows > 0) *total = pg_i64(res, 0, 5);
        for (int i = 0; i < rows && st == SG_OK; i++, ++*n) st = emit(qq, res, i, fn, ud);
        PQclear(res);
    }
    pg_params_free(p);
    h->free(p);
    h->free(sql.data);
    return st;
}

sg_status pg_search(sg_conn *c, const char *tenant, const sg_query *q, sg_row_fn fn, void *ud,
                    sg_search_out *out, sg_error *err)
{
    sg_search_out dummy;
    if (!out) out = &dummy;
    *out = (sg_search_out){.residual = NULL, .total = -1, .sorted = 0};
    if (!q || !pg_valid_rtype(q->type))
        return sg_error_set(err, SG_EINVALID, NULL, "bad query: resource type");
    struct search s = {.c = c, .q = q, .b = {.h = c->host, .d = &dialect}};
    sg_status st = pg_tid(c, tenant, &s.tid, err);
    if (st != SG_OK) return st;

    /* The WHERE clause, then the ORDER BY list in the same builder, so that
     * the sort key's parameters follow the filter's. With a driver the
     * tenant terms take no index (see above). */
    const sg_filter *residual = sf_compile_where(&s.b, q->filter, "r.tid = $1 AND r.rtype = $2",
                                                 "r.tid + 0 = $1 AND r.rtype + 0 = $2");
    sf_sortkind sk = sf_sort_kind(&s.b, q->sort);
    if (!s.b.nomem) {
        s.where = s.b.sql.data; /* taken over; the builder starts anew */
        s.where_np = s.b.np;
        s.b.sql = (sg_buf){0};
        build_order(&s, sk);
        s.order = s.b.sql.data;
        s.b.sql = (sg_buf){0};
    }
    if (s.b.nomem || !s.where || !s.order) {
        st = pg_oom(err);
        goto out;
    }
    int sort_ok = !q->sort || sk != SF_SK_NONE;
    out->residual = residual;
    out->sorted = sort_ok;

    /* A residual or a sort we cannot follow leaves paging to the core.
     * Without either, a page that is not full (and not empty past an
     * offset) tells the total by itself; the count taken in the same
     * statement covers the other pages. */
    int exact = !residual, paged = exact && sort_ok;
    int need_rows = !paged || q->count != 0;
    if (need_rows && !fn) {
        st = sg_error_set(err, SG_EINVALID, NULL, "bad query: no row callback");
        goto out;
    }
    int64_t nrows = 0, total = -1;
    if (need_rows) {
        st = run_rows(&s, paged, paged && q->count > 0, fn, ud, &nrows, &total, err);
        if (st != SG_OK) goto out;
    }
    if (exact) {
        if (total >= 0)
            out->total = total;
        else if (!need_rows || !sf_page_total(q, paged, nrows, &out->total))
            st = run_count(&s, &out->total, err);
    }
out:
    sf_qb_free(&s.b);
    c->host->free(s.where);
    c->host->free(s.order);
    return st;
}
