/*
** storage_postgres: the filter AST (filter.h) compiled to parameterised SQL,
** and the search method (sg_query, sg_search_out: storage.h).
**
** The design is storage_sqlite's (sqlite.c, "filter compilation" to
** "search"), kept node for node so that both plugins compile the same
** filters and return the same rows, totals and residuals. What differs is
** how values are read (jsonb operators over resources.doc instead of JSON1
** over the body text), the forms that fix PostgreSQL's plans, the total
** (taken in the same statement as the rows) and the streaming of large
** results. See README.md, "How filters are compiled".
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

/* ---- the statement being built --------------------------------------------------------- */

/*
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
**   - index keys (resource_keys, SG_ATTR_INDEXED attributes): `folded` is
**     the core's compare form, COLLATE "C", so every operator is a byte
**     comparison as in the evaluator;
**   - columns: id, meta.created, meta.lastModified; membership rows;
**   - resources.doc (jsonb, generated from the body) for what compares
**     without folding: case-exact strings, booleans, numbers, and `pr` of
**     anything. A case-insensitive attribute without keys cannot be
**     compared without folding, which only the core does: residual.
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
** In an AND the most selective drivable conjunct drives and the others
** check; an OR drives when all its branches can. When the WHERE clause has
** a driver, the tenant terms are written `r.tid + 0 = $1 AND r.rtype + 0 =
** $2`, which no index matches, so the rows are reached through the driver
** only (the driver's own sub-select is scoped by tid and rtype). rank() and
** comp() must agree: a node with rank > 0 compiled in drive mode always
** yields a drivable expression.
*/

enum pkind { PK_TEXT, PK_F64 };

struct param {
    const char *s; /* NUL-terminated: borrowed from the query, or `heap` */
    char *heap;    /* owned, or NULL                                     */
    enum pkind kind;
    double num; /* PK_F64 */
};

struct qb {
    const sg_host *h;
    sg_buf sql;
    struct param *p;
    size_t np, cap;
    int nomem;
};

#define NOPARAM     ((size_t)-1)
#define FIRST_PARAM 3 /* $1 tid, $2 rtype */

/* Where a node is compiled: at the top (the whole resource), inside a value
 * path as "some element satisfies this" (each leaf may use a different
 * element), or bound to the one element `e.v` of an enumeration of the
 * value path's array (every leaf reads the same element). */
enum cx { CX_TOP, CX_VP, CX_ELEM };

struct scope {
    enum cx cx;
    const sg_attr_ref *vpa; /* the value path's attribute (CX_VP, CX_ELEM) */
};

static const struct scope top_scope = {CX_TOP, NULL};

enum leaf {
    LF_NONE,
    LF_KEY,       /* an index key comparison (any operator, pr)        */
    LF_ID,        /* the id column                                     */
    LF_TIME,      /* meta.created / meta.lastModified columns          */
    LF_FALSE,     /* never true                                        */
    LF_TRUE,      /* always true                                       */
    LF_MEMBER_EQ, /* members.value eq "id"                             */
    LF_MEMBER_NE, /* members.value ne "id"                             */
    LF_MEMBER_PR, /* members.value pr                                  */
    LF_JSON,      /* resources.doc                                     */
};

static void put(struct qb *q, const char *s)
{
    if (!q->nomem && q->h->buf_append(&q->sql, s, strlen(s)) != SG_OK) q->nomem = 1;
}

/* Add a parameter; `heap` (may be NULL) is owned from here on, also on
 * failure. Returns its index or NOPARAM (q->nomem is then set). */
static size_t add_param(struct qb *q, enum pkind kind, const char *s, char *heap, double num)
{
    if (q->nomem || (kind == PK_TEXT && !s)) {
        q->nomem = 1;
        q->h->free(heap);
        return NOPARAM;
    }
    if (q->np == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        struct param *p = q->h->realloc(q->p, cap * sizeof *p);
        if (!p) {
            q->nomem = 1;
            q->h->free(heap);
            return NOPARAM;
        }
        q->p = p;
        q->cap = cap;
    }
    q->p[q->np] = (struct param){.s = s, .heap = heap, .kind = kind, .num = num};
    return q->np++;
}

/* Emit the placeholder of parameter i, with a cast when `cast` is set. */
static void put_ref_as(struct qb *q, size_t i, const char *cast)
{
    char ph[32];
    if (i == NOPARAM) {
        q->nomem = 1;
        return;
    }
    snprintf(ph, sizeof ph, "$%zu%s", i + FIRST_PARAM, cast ? cast : "");
    put(q, ph);
}

/* Text parameters are always written `$n::text`: one type per parameter
 * whatever the context, and an index on a text column stays usable. */
static void put_ref(struct qb *q, size_t i)
{
    put_ref_as(q, i, "::text");
}

/* A text parameter borrowing the NUL-terminated s. */
static size_t param(struct qb *q, const char *s)
{
    return add_param(q, PK_TEXT, s, NULL, 0);
}

/* A text parameter owning `heap` (NUL-terminated; NULL: out of memory). */
static size_t param_heap(struct qb *q, char *heap)
{
    if (!heap) {
        q->nomem = 1;
        return NOPARAM;
    }
    return add_param(q, PK_TEXT, heap, heap, 0);
}

static void free_params(struct qb *q, size_t from)
{
    for (size_t i = from; i < q->np; i++) q->h->free(q->p[i].heap);
    if (from < q->np) q->np = from;
}

struct mark {
    size_t len, np;
};

static struct mark mark(const struct qb *q)
{
    return (struct mark){q->sql.len, q->np};
}

static void restore(struct qb *q, struct mark m)
{
    if (q->sql.data && m.len <= q->sql.len) {
        q->sql.len = m.len;
        q->sql.data[m.len] = '\0';
    }
    free_params(q, m.np);
}

static char *dup_n(const sg_host *h, const char *s, size_t n)
{
    char *d = h->alloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* ---- literals ---------------------------------------------------------------------------- */

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/*
** Rewrite an RFC 3339 literal in the stored form "YYYY-MM-DDTHH:MM:SS.mmmZ"
** (UTC), whose text order is time order. 0 when that cannot be done without
** changing the comparison's meaning (sub-millisecond digits, leap second,
** no zone, out of range): the node then stays with the core.
*/
static int norm_time(const sg_host *h, const char *s, size_t n, char out[SG_TIME_MAX])
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, hh, mi, ss, frac = 0, off = 0;
    if (n < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &hh) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &ss))
        return 0;
    size_t i = 19;
    if (s[i] == '.') {
        size_t nd = 0;
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, nd++) {
            if (nd < 3)
                frac = frac * 10 + (s[i] - '0');
            else if (s[i] != '0')
                return 0;
        }
        if (nd == 0) return 0;
        for (; nd < 3; nd++) frac *= 10;
    }
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (!digits(s + i + 1, 2, &oh) || s[i + 3] != ':' || !digits(s + i + 4, 2, &om) ||
            oh > 23 || om > 59)
            return 0;
        off = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return 0;
    }
    if (i != n || mo < 1 || mo > 12 || d < 1 || hh > 23 || mi > 59 || ss > 59) return 0;
    if (d > mdays[mo - 1] + (mo == 2 && is_leap(y))) return 0;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss - off * 60;
    if (secs < 0 || secs > 253402300799LL) return 0; /* 1970 .. 9999 */
    h->format_time(secs * 1000 + frac, out);
    return 1;
}

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

static int is_path(const sg_filter *f, const char *path)
{
    return f->attr.path && !strcmp(f->attr.path, path);
}

static int str_literal(const sg_filter *f)
{
    return f->vtype == SG_VT_STRING && f->str;
}

/*
** A string literal PostgreSQL can take as text: valid UTF-8 without NUL
** (the parser's quoted literals always are; a bare token need not be).
** Stored text is always valid UTF-8, so no literal of another kind can be
** equal to a stored value.
*/
static int text_literal(const sg_filter *f)
{
    return str_literal(f) && strlen(f->str) == f->len &&
           utf8_ok((const unsigned char *)f->str, f->len);
}

/* eq ne co sw ew gt ge lt le: the operators that take a literal. */
static int cmp_op_with_literal(sg_fop op)
{
    return op >= SG_FOP_EQ && op <= SG_FOP_LE;
}

static int is_order_op(sg_fop op)
{
    return op >= SG_FOP_GT && op <= SG_FOP_LE;
}

static int string_like(sg_atype t)
{
    return t == SG_AT_STRING || t == SG_AT_REFERENCE || t == SG_AT_BINARY;
}

/* ---- JSON addressing ---- */

/* Does the attribute live inside an extension object? Its canonical path is
 * then "<URN>:name[.sub]" (filter.h), while core and common attributes have
 * plain paths. */
static int in_extension(const sg_attr_ref *a)
{
    size_t n = a->schema ? strlen(a->schema) : 0;
    return n && a->path && !strncmp(a->path, a->schema, n) && a->path[n] == ':';
}

/* Can the document be addressed for this attribute? Keys are parameters of
 * `->`, which matches them exactly, so any name will do. */
static int json_addressable(const sg_attr_ref *a)
{
    if (!a->path || !a->name || !*a->name || (a->sub && !*a->sub)) return 0;
    return !(a->flags & (SG_ATTR_META | SG_ATTR_MEMBERS));
}

/*
** Can this comparison or pr be evaluated on a JSON value exactly as the
** core's evaluator (cmp_one, present) does? pr never depends on case;
** comparisons need a value that compares without folding.
*/
static int json_leaf_ok(const sg_filter *f)
{
    const sg_attr_ref *a = &f->attr;
    if (!json_addressable(a)) return 0;
    if (f->op == SG_FOP_PR) return 1;
    switch (a->type) {
    case SG_AT_STRING:
    case SG_AT_REFERENCE:
    case SG_AT_BINARY:
        return (a->flags & SG_ATTR_CASE_EXACT) && text_literal(f) && cmp_op_with_literal(f->op);
    case SG_AT_BOOLEAN:
        return f->vtype == SG_VT_BOOL && (f->op == SG_FOP_EQ || f->op == SG_FOP_NE);
    case SG_AT_INTEGER:
    case SG_AT_DECIMAL:
        return f->vtype == SG_VT_NUMBER &&
               (f->op == SG_FOP_EQ || f->op == SG_FOP_NE || is_order_op(f->op));
    default: /* dateTime: stored as sent, any offset; complex */
        return 0;
    }
}

static int same_attr(const sg_attr_ref *a, const sg_attr_ref *b)
{
    return a->name && b->name && !strcmp(a->name, b->name) &&
           ((!a->schema && !b->schema) ||
            (a->schema && b->schema && !strcmp(a->schema, b->schema)));
}

/* Can a value path's elements be enumerated from the document? */
static int vp_json_ok(const sg_attr_ref *vpa)
{
    return (vpa->flags & SG_ATTR_MULTI) && json_addressable(vpa);
}

/* Can `g` be evaluated on one element `e.v` of the value path's array? */
static int elem_ok(const sg_filter *g, const sg_attr_ref *vpa)
{
    if (!g) return 0;
    switch (g->op) {
    case SG_FOP_AND:
    case SG_FOP_OR:
        return elem_ok(g->a, vpa) && elem_ok(g->b, vpa);
    case SG_FOP_NOT:
        return elem_ok(g->a, vpa);
    case SG_FOP_VALUEPATH:
        return 0;
    default:
        return same_attr(&g->attr, vpa) && (g->attr.flags & SG_ATTR_MULTI) && json_leaf_ok(g);
    }
}

/* Is the whole element filter (and the comparison after it) element-bound? */
static int vp_whole(const sg_filter *f)
{
    return vp_json_ok(&f->attr) && elem_ok(f->a, &f->attr) && (!f->b || elem_ok(f->b, &f->attr));
}

/* Inside a value path, is this compound node element-bound as a whole? */
static int vp_compound_whole(const sg_filter *g, const struct scope *sc)
{
    return sc->cx == CX_VP && vp_json_ok(sc->vpa) && elem_ok(g, sc->vpa);
}

/* ---- leaves ---- */

/* What a comparison or PR node compiles to, if anything. */
static enum leaf leaf_kind(const struct qb *q, const sg_filter *f, const struct scope *sc,
                           char tbuf[SG_TIME_MAX])
{
    uint32_t fl = f->attr.flags;
    if (!f->attr.path) return LF_NONE;
    /* Inside a value path the evaluator reads the current element only for
     * the path's own attribute (the parser allows no other). */
    if (sc->cx != CX_TOP && !same_attr(&f->attr, sc->vpa)) return LF_NONE;
    if (fl & SG_ATTR_MEMBERS) {
        /* Members are rows, not part of the body. */
        if (sc->cx == CX_ELEM || !f->attr.sub || strcmp(f->attr.sub, "value")) return LF_NONE;
        if (f->op == SG_FOP_PR) return LF_MEMBER_PR;
        if (!str_literal(f)) return LF_NONE;
        /* An id that is not valid text names no resource. */
        if (f->op == SG_FOP_EQ) return text_literal(f) ? LF_MEMBER_EQ : LF_FALSE;
        if (f->op == SG_FOP_NE && sc->cx == CX_TOP) return text_literal(f) ? LF_MEMBER_NE : LF_TRUE;
        return LF_NONE;
    }
    if (fl & SG_ATTR_META) {
        if (sc->cx != CX_TOP) return LF_NONE;
        if (is_path(f, "id")) {
            if (f->op == SG_FOP_PR || (text_literal(f) && cmp_op_with_literal(f->op))) return LF_ID;
            return LF_NONE;
        }
        if (is_path(f, "meta.created") || is_path(f, "meta.lastModified")) {
            if (f->op == SG_FOP_PR) return LF_TIME;
            if (!str_literal(f)) return LF_NONE;
            /* The evaluator answers false for co/sw/ew on a dateTime. */
            if (f->op == SG_FOP_CO || f->op == SG_FOP_SW || f->op == SG_FOP_EW) return LF_FALSE;
            if ((f->op == SG_FOP_EQ || f->op == SG_FOP_NE || is_order_op(f->op)) &&
                norm_time(q->h, f->str, f->len, tbuf))
                return LF_TIME;
        }
        return LF_NONE;
    }
    if (sc->cx == CX_ELEM) return json_leaf_ok(f) ? LF_JSON : LF_NONE;
    /* Keys exist per element value, so "some element's value op x" is "some
     * key op x" for every operator but ne, whose "no element equals x" holds
     * only at the top (inside a value path it is about one element). Keys of
     * other types have no agreed text form to compare with. */
    if ((fl & SG_ATTR_INDEXED) && string_like(f->attr.type) &&
        (f->op == SG_FOP_PR || (text_literal(f) && cmp_op_with_literal(f->op))) &&
        !(f->op == SG_FOP_NE && sc->cx != CX_TOP))
        return LF_KEY;
    if (json_leaf_ok(f) && (sc->cx == CX_TOP || vp_json_ok(sc->vpa))) return LF_JSON;
    return LF_NONE;
}

/* How selective a leaf is as a driver: 0 when it cannot drive. */
static int leaf_rank(enum leaf k, const sg_filter *f)
{
    switch (k) {
    case LF_ID:
        return f->op == SG_FOP_EQ ? 6 : 0;
    case LF_KEY:
        if (f->op == SG_FOP_EQ) return 5;
        if (f->op == SG_FOP_SW || is_order_op(f->op)) return 2; /* a range of the key index */
        return f->op == SG_FOP_NE ? 0 : 1;                      /* co ew pr: the attr's keys */
    case LF_MEMBER_EQ:
        return 5;
    case LF_TIME:
        return f->op == SG_FOP_EQ ? 5 : is_order_op(f->op) ? 2 : 0;
    default:
        return 0;
    }
}

/*
** How well a node can drive the query: 0 not at all, higher is more
** selective. Consistent with comp() and put_set(): a node with rank > 0 has
** a set of rids (put_set) holding every row it matches.
*/
static int rank(const struct qb *q, const sg_filter *f, const struct scope *sc)
{
    char tbuf[SG_TIME_MAX];
    int a, b;
    if (!f) return 0;
    switch (f->op) {
    case SG_FOP_AND:
        if (vp_compound_whole(f, sc)) return 0;
        a = rank(q, f->a, sc);
        b = rank(q, f->b, sc);
        return a > b ? a : b;
    case SG_FOP_OR:
        a = rank(q, f->a, sc);
        b = rank(q, f->b, sc);
        return a < b ? a : b;
    case SG_FOP_NOT:
        return 0;
    case SG_FOP_VALUEPATH: {
        if (sc->cx != CX_TOP || vp_whole(f)) return 0;
        struct scope vs = {CX_VP, &f->attr};
        a = rank(q, f->a, &vs);
        b = rank(q, f->b, &vs);
        return a > b ? a : b;
    }
    default:
        return leaf_rank(leaf_kind(q, f, sc, tbuf), f);
    }
}

/*
** Is the node's set of rids (put_set) exactly the rows it matches? True for
** leaves that drive, an OR of such, and a value path over such without a
** comparison after it (attr[x] with `x` a key look-up is "has key x": keys
** exist per element value).
*/
static int set_exact(const struct qb *q, const sg_filter *f, const struct scope *sc)
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
        struct scope vs = {CX_VP, &f->attr};
        return sc->cx == CX_TOP && !f->b && !vp_whole(f) && set_exact(q, f->a, &vs);
    }
    default:
        return leaf_rank(leaf_kind(q, f, sc, tbuf), f) > 0;
    }
}

static const char *time_column(const sg_filter *f)
{
    return is_path(f, "meta.created") ? "r.created" : "r.modified";
}

static const char *cmp_op(sg_fop op)
{
    switch (op) {
    case SG_FOP_GT:
        return " > ";
    case SG_FOP_GE:
        return " >= ";
    case SG_FOP_LT:
        return " < ";
    case SG_FOP_LE:
        return " <= ";
    case SG_FOP_NE:
        return " <> ";
    default:
        return " = ";
    }
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
static void put_str_cmp(struct qb *q, sg_fop op, const char *val, const sg_filter *f)
{
    size_t i = param(q, f->str);
    switch (op) {
    case SG_FOP_CO:
        put(q, "strpos(");
        put(q, val);
        put(q, ", ");
        put_ref(q, i);
        put(q, ") > 0");
        return;
    case SG_FOP_SW:
        put(q, "starts_with(");
        put(q, val);
        put(q, ", ");
        put_ref(q, i);
        put(q, ")");
        return;
    case SG_FOP_EW:
        put(q, "right(");
        put(q, val);
        put(q, ", char_length(");
        put_ref(q, i);
        put(q, ")) = ");
        put_ref(q, i);
        return;
    default:
        put(q, val);
        if (is_order_op(op)) put(q, " COLLATE \"C\"");
        put(q, cmp_op(op));
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
static void put_key_cond(struct qb *q, const sg_filter *f)
{
    if (f->op == SG_FOP_PR) {
        put(q, "k.folded <> ''"); /* an empty string is not "present" */
    } else if (f->op == SG_FOP_SW) {
        /* A range of the key index: folded >= s AND folded < successor(s),
         * with bounds the planner sees in a generic plan too. */
        int none;
        char *succ = prefix_successor(q->h, f->str, f->len, &none);
        if (!succ && !none) q->nomem = 1;
        put(q, "k.folded >= ");
        put_ref(q, param(q, f->str));
        if (!none) {
            put(q, " AND k.folded < ");
            put_ref(q, param_heap(q, succ));
        }
    } else {
        put_str_cmp(q, f->op, "k.folded", f);
    }
}

/* "FROM resource_keys k WHERE <tenant, type, attribute>" */
static void put_key_from(struct qb *q, const sg_filter *f)
{
    put(q, "FROM resource_keys k WHERE k.tid = $1 AND k.rtype = $2 AND k.attr = ");
    put_ref(q, param(q, f->attr.path));
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
static void put_key(struct qb *q, const sg_filter *f)
{
    if (f->op == SG_FOP_NE) {
        /* ne is not (eq): an absent attribute matches, as in the evaluator. */
        put(q, "NOT EXISTS (SELECT 1 ");
        put_key_from(q, f);
        put(q, " AND k.folded = ");
        put_ref(q, param(q, f->str));
        put(q, " AND k.rid = r.rid" CHECK_END);
        return;
    }
    if (f->op == SG_FOP_EQ) {
        /* A point look-up in the primary key. */
        put(q, "EXISTS (SELECT 1 ");
        put_key_from(q, f);
        put(q, " AND k.folded = ");
        put_ref(q, param(q, f->str));
        put(q, " AND k.rid = r.rid" CHECK_END);
        return;
    }
    /* The row's few keys, through the rid index: without tid and rtype no
     * prefix of the primary key matches, which would be a range of every
     * key of the attribute, per row (r, whose keys these are, is scoped). */
    put(q, "EXISTS (SELECT 1 FROM resource_keys k WHERE k.rid = r.rid AND k.attr = ");
    put_ref(q, param(q, f->attr.path));
    put(q, " AND ");
    put_key_cond(q, f);
    put(q, CHECK_END);
}

/* "(SELECT u.rid FROM resources u WHERE u.tid = $1 AND u.id = <literal>)":
 * the member named by the literal, any type (NULL when absent). */
static void put_member_rid(struct qb *q, const sg_filter *f)
{
    put(q, "(SELECT u.rid FROM resources u WHERE u.tid = $1 AND u.id = ");
    put_ref(q, param(q, f->str));
    put(q, ")");
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

static void put_jval(struct qb *q, const struct acc *a)
{
    if (!a->n) {
        put(q, a->base);
        return;
    }
    put(q, "(");
    put(q, a->base);
    for (int i = 0; i < a->n; i++) {
        put(q, " -> ");
        put_ref(q, a->key[i]);
    }
    put(q, ")");
}

static void acc_key(struct qb *q, struct acc *a, const char *label)
{
    if (label) a->key[a->n++] = param(q, label);
}

/* The value of a single-valued attribute (sub-attribute included). */
static struct acc root_acc(struct qb *q, const sg_attr_ref *at)
{
    struct acc a = {.base = "r.doc"};
    acc_key(q, &a, in_extension(at) ? at->schema : NULL);
    acc_key(q, &a, at->name);
    acc_key(q, &a, at->sub);
    return a;
}

/* The accessor of a leaf evaluated on the element `e.v`. */
static struct acc elem_acc(struct qb *q, const sg_filter *f)
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
static void put_jcond(struct qb *q, const sg_filter *f, sg_fop op, const struct acc *a)
{
    if (op == SG_FOP_PR) {
        /* present(): not absent, not null, not "", not [] and not {}. */
        put(q, "(");
        put_jval(q, a);
        put(q, " NOT IN ('null'::jsonb, '\"\"'::jsonb, '[]'::jsonb, '{}'::jsonb)) IS TRUE");
        return;
    }
    switch (f->attr.type) {
    case SG_AT_BOOLEAN:
        put(q, "(");
        put_jval(q, a);
        put(q, " = ");
        put_ref_as(q, param(q, f->boolean ? "true" : "false"), "::jsonb");
        put(q, ") IS TRUE");
        return;
    case SG_AT_INTEGER:
    case SG_AT_DECIMAL:
        /* As doubles, like json_number_value() in the evaluator. */
        put(q, "(CASE WHEN jsonb_typeof(");
        put_jval(q, a);
        put(q, ") = 'number' THEN ");
        put_jval(q, a);
        put(q, "::float8");
        put(q, cmp_op(op));
        put_ref_as(q, add_param(q, PK_F64, NULL, NULL, f->num), "::float8");
        put(q, " ELSE false END)");
        return;
    default: {
        /* The text of the string, rendered once for put_str_cmp. */
        struct qb v = {.h = q->h};
        put(&v, "(");
        put_jval(&v, a);
        put(&v, " #>> '{}')");
        if (v.nomem) {
            q->nomem = 1;
            q->h->free(v.sql.data);
            return;
        }
        put(q, "(CASE WHEN jsonb_typeof(");
        put_jval(q, a);
        put(q, ") = 'string' THEN ");
        put_str_cmp(q, op, v.sql.data, f);
        put(q, " ELSE false END)");
        q->h->free(v.sql.data);
        return;
    }
    }
}

/* As put_jcond, ne being not (eq) on the same value(s). */
static void put_jcond_ne(struct qb *q, const sg_filter *f, const struct acc *a)
{
    if (f->op == SG_FOP_NE) {
        put(q, "(NOT ");
        put_jcond(q, f, SG_FOP_EQ, a);
        put(q, ")");
    } else {
        put_jcond(q, f, f->op, a);
    }
}

/*
** "EXISTS (SELECT 1 FROM jsonb_path_query(<a's value>, 'lax $[*]') e(v)
** WHERE ": the values of a multi-valued attribute as the evaluator walks
** them: an array's elements, any other value as itself, nothing when
** absent.
*/
static void put_each(struct qb *q, const char *head, const sg_attr_ref *at)
{
    struct acc a = {.base = "r.doc"};
    acc_key(q, &a, in_extension(at) ? at->schema : NULL);
    acc_key(q, &a, at->name);
    put(q, head);
    put(q, " (SELECT 1 FROM jsonb_path_query(");
    put_jval(q, &a);
    put(q, ", 'lax $[*]') e(v) WHERE ");
}

/* A JSON leaf. At the top it follows any_value(): a single-valued attribute
 * is read directly, a multi-valued one matches when some element does (ne:
 * when none equals). Inside a value path it is about one element. */
static void put_json_leaf(struct qb *q, const sg_filter *f, const struct scope *sc)
{
    struct acc a;
    if (sc->cx == CX_ELEM) {
        a = elem_acc(q, f);
        put_jcond_ne(q, f, &a);
    } else if (sc->cx == CX_VP) {
        /* Some element satisfies this one leaf. */
        put_each(q, "EXISTS", sc->vpa);
        a = elem_acc(q, f);
        put_jcond_ne(q, f, &a);
        put(q, ")");
    } else if (!(f->attr.flags & SG_ATTR_MULTI)) {
        a = root_acc(q, &f->attr);
        put_jcond_ne(q, f, &a);
    } else {
        put_each(q, f->op == SG_FOP_NE ? "NOT EXISTS" : "EXISTS", &f->attr);
        a = elem_acc(q, f);
        put_jcond(q, f, f->op == SG_FOP_NE ? SG_FOP_EQ : f->op, &a);
        put(q, ")");
    }
}

/* ---- look-ups as sets of rids ---- */

/* A SELECT of the rids a look-up leaf (leaf_lookup) matches. */
static void put_leaf_set(struct qb *q, const sg_filter *f, enum leaf k, const char *tbuf)
{
    switch (k) {
    case LF_KEY:
        put(q, "SELECT k.rid ");
        put_key_from(q, f);
        put(q, " AND ");
        put_key_cond(q, f);
        return;
    case LF_ID:
        put(q, "SELECT u.rid FROM resources u WHERE u.tid = $1 AND u.rtype = $2 AND u.id = ");
        put_ref(q, param(q, f->str));
        return;
    case LF_TIME:
        put(q, "SELECT u.rid FROM resources u WHERE u.tid = $1 AND u.rtype = $2 AND ");
        put(q, is_path(f, "meta.created") ? "u.created" : "u.modified");
        put(q, is_order_op(f->op) ? " COLLATE \"C\"" : "");
        put(q, cmp_op(f->op));
        put_ref(q, param_heap(q, dup_n(q->h, tbuf, strlen(tbuf))));
        return;
    default: /* LF_MEMBER_EQ */
        put(q, "SELECT m.group_rid FROM members m WHERE m.member_rid = ");
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
static void put_set(struct qb *q, const sg_filter *f, const struct scope *sc)
{
    char tbuf[SG_TIME_MAX];
    switch (f->op) {
    case SG_FOP_OR:
        put_set(q, f->a, sc);
        put(q, " UNION ALL ");
        put_set(q, f->b, sc);
        return;
    case SG_FOP_AND:
        put_set(q, rank(q, f->a, sc) >= rank(q, f->b, sc) ? f->a : f->b, sc);
        return;
    case SG_FOP_VALUEPATH: {
        struct scope vs = {CX_VP, &f->attr};
        put_set(q, rank(q, f->a, &vs) >= rank(q, f->b, &vs) ? f->a : f->b, &vs);
        return;
    }
    default:
        put_leaf_set(q, f, leaf_kind(q, f, sc, tbuf), tbuf);
        return;
    }
}

/* ---- conditions on the row ---- */

/* The drive form: the set's rids, computed once, read by primary key. */
static void put_in_set(struct qb *q, const sg_filter *f, const struct scope *sc)
{
    put(q, "r.rid = ANY (ARRAY(");
    put_set(q, f, sc);
    put(q, "))");
}

/* Emit a comparison or PR node, in drive form when `drive` is set and the
 * leaf can drive. Returns 1 when something was emitted (leaves are always
 * exact). */
static int comp_leaf(struct qb *q, const sg_filter *f, int drive, const struct scope *sc)
{
    char tbuf[SG_TIME_MAX];
    enum leaf k = leaf_kind(q, f, sc, tbuf);
    drive = drive && leaf_rank(k, f) > 0;
    switch (k) {
    case LF_KEY:
        if (drive)
            put_in_set(q, f, sc);
        else
            put_key(q, f);
        return 1;
    case LF_ID:
        /* Driving, the unique index (tid, id). */
        put(q, drive ? "(r.tid = $1 AND " : "(");
        if (f->op == SG_FOP_PR)
            put(q, "r.id <> ''");
        else
            put_str_cmp(q, f->op, "r.id", f);
        put(q, ")");
        return 1;
    case LF_TIME:
        put(q, drive ? "(r.tid = $1 AND r.rtype = $2 AND " : "(");
        put(q, time_column(f));
        if (f->op == SG_FOP_PR) {
            put(q, " <> '')");
            return 1;
        }
        if (is_order_op(f->op)) put(q, " COLLATE \"C\"");
        put(q, cmp_op(f->op));
        put_ref(q, param_heap(q, dup_n(q->h, tbuf, strlen(tbuf))));
        put(q, ")");
        return 1;
    case LF_FALSE:
        put(q, "false");
        return 1;
    case LF_TRUE:
        put(q, "true");
        return 1;
    case LF_MEMBER_EQ:
        if (drive) {
            put_in_set(q, f, sc);
            return 1;
        }
        /* fall through */
    case LF_MEMBER_NE:
        put(q, k == LF_MEMBER_NE ? "NOT EXISTS" : "EXISTS");
        put(q, " (SELECT 1 FROM members m WHERE m.group_rid = r.rid AND m.member_rid = ");
        put_member_rid(q, f);
        put(q, CHECK_END);
        return 1;
    case LF_MEMBER_PR:
        put(q, "EXISTS (SELECT 1 FROM members m WHERE m.group_rid = r.rid" CHECK_END);
        return 1;
    case LF_JSON:
        put_json_leaf(q, f, sc);
        return 1;
    default:
        return 0;
    }
}

/* A node on the element `e.v` (elem_ok() holds): always exact. */
static void comp_elem(struct qb *q, const sg_filter *g, const sg_attr_ref *vpa)
{
    const struct scope es = {CX_ELEM, vpa};
    switch (g->op) {
    case SG_FOP_AND:
    case SG_FOP_OR:
        put(q, "(");
        comp_elem(q, g->a, vpa);
        put(q, g->op == SG_FOP_AND ? " AND " : " OR ");
        comp_elem(q, g->b, vpa);
        put(q, ")");
        return;
    case SG_FOP_NOT:
        put(q, "(NOT ");
        comp_elem(q, g->a, vpa);
        put(q, ")");
        return;
    default:
        comp_leaf(q, g, 0, &es);
        return;
    }
}

/* "Some element of vpa's array satisfies a (and b)", in one enumeration. */
static void put_vp_each(struct qb *q, const sg_attr_ref *vpa, const sg_filter *a,
                        const sg_filter *b)
{
    put_each(q, "EXISTS", vpa);
    comp_elem(q, a, vpa);
    if (b) {
        put(q, " AND ");
        comp_elem(q, b, vpa);
    }
    put(q, ")");
}

static int comp(struct qb *q, const sg_filter *f, int drive, const struct scope *sc, int *exact);

/*
** AND of a and b (also the two halves of a value path): the more selective
** side drives. *ea / *eb tell whether each side compiled exactly.
*/
static int comp_and(struct qb *q, const sg_filter *a, const sg_filter *b, const struct scope *sc,
                    int drive, int *ea, int *eb)
{
    int ra = drive ? rank(q, a, sc) : 0, rb = drive ? rank(q, b, sc) : 0;
    int da = ra > 0 && ra >= rb, db = rb > 0 && !da;
    struct mark m = mark(q);
    *ea = *eb = 0;
    put(q, "(");
    int na = a ? comp(q, a, da, sc, ea) : 0;
    struct mark mb = mark(q);
    if (na) put(q, " AND ");
    int nb = b ? comp(q, b, db, sc, eb) : 0;
    if (!nb) restore(q, mb);
    if (!na && !nb) {
        restore(q, m);
        return 0;
    }
    put(q, ")");
    return 1;
}

static int comp(struct qb *q, const sg_filter *f, int drive, const struct scope *sc, int *exact)
{
    int ea, eb;
    struct mark m;
    *exact = 0;
    if (!f) return 0;
    switch (f->op) {
    case SG_FOP_AND:
        if (vp_compound_whole(f, sc)) {
            /* Both sides on the same element: one enumeration. */
            put_vp_each(q, sc->vpa, f, NULL);
            *exact = 1;
            return 1;
        }
        if (!comp_and(q, f->a, f->b, sc, drive, &ea, &eb)) return 0;
        /* Inside a value path both sides must hold for the same element,
         * which separate look-ups cannot tell. */
        *exact = ea && eb && sc->cx == CX_TOP;
        return 1;
    case SG_FOP_OR: {
        int d = drive && rank(q, f, sc) > 0;
        if (d && set_exact(q, f, sc)) {
            /* The look-ups are the condition. */
            put_in_set(q, f, sc);
            *exact = 1;
            return 1;
        }
        m = mark(q);
        put(q, "(");
        if (d) {
            /* The look-ups narrow, the branches decide. */
            put_in_set(q, f, sc);
            put(q, " AND (");
        }
        if (comp(q, f->a, 0, sc, &ea) && (put(q, " OR "), comp(q, f->b, 0, sc, &eb))) {
            put(q, d ? "))" : ")");
            /* "some element matches x or y" is "some matches x or some
             * matches y", so OR stays exact inside a value path. */
            *exact = ea && eb;
            return 1;
        }
        if (!d) break;
        /* A branch compiles to nothing: the look-ups alone still hold
         * every matching row. */
        restore(q, m);
        put_in_set(q, f, sc);
        return 1;
    }
    case SG_FOP_NOT:
        if (sc->cx == CX_VP) {
            if (!vp_compound_whole(f, sc)) return 0;
            put_vp_each(q, sc->vpa, f, NULL);
            *exact = 1;
            return 1;
        }
        m = mark(q);
        put(q, "NOT ");
        if (!comp(q, f->a, 0, sc, &ea) || !ea) break;
        *exact = 1;
        return 1;
    case SG_FOP_VALUEPATH: {
        if (sc->cx != CX_TOP) return 0;
        if (vp_whole(f)) {
            /* Every condition reads the document: evaluate them on each
             * element, as the evaluator does. */
            put_vp_each(q, &f->attr, f->a, f->b);
            *exact = 1;
            return 1;
        }
        /* attr[a] alone is exact when `a` is: a key per element value makes
         * "some element has value x" the same as "has key x". With `.sub op
         * v` the two halves may hold on different elements: necessary. */
        struct scope vs = {CX_VP, &f->attr};
        if (!comp_and(q, f->a, f->b, &vs, drive, &ea, &eb)) return 0;
        *exact = !f->b && ea;
        return 1;
    }
    default:
        *exact = comp_leaf(q, f, drive, sc);
        return *exact;
    }
    /* An OR branch or a NOT operand compiled to nothing (or, for NOT, not
     * exactly): the node stays with the core. */
    restore(q, m);
    return 0;
}

/*
** Compile the query's filter into q->sql; returns the residual node: NULL, a
** child of a top-level AND (the only one not compiled exactly), or the root.
*/
static const sg_filter *compile_filter(struct qb *q, const sg_filter *f, int *emitted)
{
    int ea, eb, exact;
    *emitted = 0;
    if (!f) return NULL;
    if (f->op == SG_FOP_AND) {
        *emitted = comp_and(q, f->a, f->b, &top_scope, 1, &ea, &eb);
        if (ea && eb) return NULL;
        if (ea) return f->b;
        if (eb) return f->a;
        return f;
    }
    *emitted = comp(q, f, 1, &top_scope, &exact);
    return exact ? NULL : f;
}

/* ---- search ------------------------------------------------------------------------------ */

/* How rows can be ordered by the query's sort attribute in SQL. */
enum sortkind {
    SK_NONE,  /* not here: sorted = 0, the core sorts              */
    SK_META,  /* id, meta.created, meta.lastModified columns       */
    SK_KEY,   /* the folded index key of a single-valued attribute */
    SK_JTEXT, /* a case-exact string in the document               */
    SK_JNUM,  /* an integer or decimal in the document             */
    SK_JBOOL, /* a boolean in the document (false before true)     */
};

static enum sortkind sort_kind(const sg_attr_ref *a)
{
    if (!a || !a->path) return SK_NONE;
    if (a->flags & SG_ATTR_META)
        return !strcmp(a->path, "id") || !strcmp(a->path, "meta.created") ||
                       !strcmp(a->path, "meta.lastModified")
                   ? SK_META
                   : SK_NONE;
    /* Only single values have one place in an order. */
    if (a->flags & (SG_ATTR_MULTI | SG_ATTR_MEMBERS)) return SK_NONE;
    /* Keys hold the folded text: that order is the core's for strings. */
    if ((a->flags & SG_ATTR_INDEXED) && (a->type == SG_AT_STRING || a->type == SG_AT_REFERENCE))
        return SK_KEY;
    if (!json_addressable(a)) return SK_NONE;
    switch (a->type) {
    case SG_AT_STRING:
    case SG_AT_REFERENCE:
    case SG_AT_BINARY:
        /* Case-insensitive strings sort by their folded form, which only
         * the core computes. */
        return (a->flags & SG_ATTR_CASE_EXACT) ? SK_JTEXT : SK_NONE;
    case SG_AT_INTEGER:
    case SG_AT_DECIMAL:
        return SK_JNUM;
    case SG_AT_BOOLEAN:
        return SK_JBOOL;
    default: /* dateTime (stored as sent, any offset), complex */
        return SK_NONE;
    }
}

struct search {
    sg_conn *c;
    const sg_query *q;
    int64_t tid;
    struct qb b;     /* the WHERE clause, then the sort key; all parameters */
    size_t where_np; /* parameters of the WHERE clause: b.p[0 .. where_np) */
    char *where;     /* the WHERE clause (owned)                          */
    char *order;     /* the ORDER BY list (owned)                         */
};

static sg_status oom(sg_error *err)
{
    return sg_error_set(err, SG_ENOMEM, NULL, "out of memory");
}

/*
** The ORDER BY list into s->order (its parameters follow the WHERE
** clause's). A sort value is NULL when missing (absent, or not of the
** attribute's type): missing values go last when ascending and first when
** descending (RFC 7644 §3.4.2.3); ties, in both directions, keep creation
** order (rid).
*/
static void build_order(struct search *s, enum sortkind sk)
{
    struct qb *q = &s->b;
    const sg_query *qq = s->q;
    const sg_attr_ref *a = qq->sort;
    struct acc v;
    switch (sk) {
    case SK_META:
        put(q, !strcmp(a->path, "id")             ? "r.id"
               : !strcmp(a->path, "meta.created") ? "r.created"
                                                  : "r.modified");
        put(q, qq->sort_descending ? " COLLATE \"C\" DESC, " : " COLLATE \"C\", ");
        break;
    case SK_KEY:
        /* The row's key by rid (see put_key). */
        put(q, "(SELECT min(k.folded) FROM resource_keys k WHERE k.rid = r.rid AND k.attr = ");
        put_ref(q, param(q, a->path));
        put(q, ")");
        break;
    case SK_JTEXT:
        v = root_acc(q, a);
        put(q, "(CASE WHEN jsonb_typeof(");
        put_jval(q, &v);
        put(q, ") = 'string' THEN ");
        put_jval(q, &v);
        put(q, " #>> '{}' END) COLLATE \"C\"");
        break;
    case SK_JNUM:
        v = root_acc(q, a);
        put(q, "(CASE WHEN jsonb_typeof(");
        put_jval(q, &v);
        put(q, ") = 'number' THEN ");
        put_jval(q, &v);
        put(q, "::float8 END)");
        break;
    case SK_JBOOL:
        v = root_acc(q, a);
        put(q, "(CASE WHEN jsonb_typeof(");
        put_jval(q, &v);
        put(q, ") = 'boolean' THEN ");
        put_jval(q, &v);
        put(q, "::boolean END)");
        break;
    default:
        break;
    }
    if (sk != SK_NONE && sk != SK_META)
        put(q, qq->sort_descending ? " DESC NULLS FIRST, " : " ASC NULLS LAST, ");
    put(q, "r.rid");
}

/* Parameters $1.. of a statement: tid, rtype, the first n of s->b, then
 * `extra` (paging), each NULL-terminated text or SQL NULL. */
static sg_status bind(struct search *s, size_t n, const char *const *extra, int nextra,
                      pg_params *p, sg_error *err)
{
    pg_params_init(p);
    int ok = pg_param_i64(p, s->tid) == 1 && pg_param_i64(p, s->q->type) == 2;
    for (size_t i = 0; ok && i < n; i++) {
        const struct param *x = &s->b.p[i];
        int want = (int)(i + FIRST_PARAM);
        ok = (x->kind == PK_F64 ? pg_param_f64(p, x->num) : pg_param_text(p, x->s)) == want;
    }
    for (int i = 0; ok && i < nextra; i++) ok = pg_param_text(p, extra[i]) != 0;
    if (ok && !p->overflow) return SG_OK;
    /* pg.c flags both a full list and a failed allocation as overflow. */
    int overflow = p->n >= PG_MAX_PARAMS;
    pg_params_free(p);
    if (overflow)
        return sg_error_set(err, SG_ETOOMANY, "tooMany",
                            "the filter has too many conditions to run");
    return oom(err);
}

/* "SELECT count(*) FROM resources r WHERE ..." on its own. */
static sg_status run_count(struct search *s, int64_t *total, sg_error *err)
{
    sg_conn *c = s->c;
    sg_buf sql = {0};
    sg_status st = SG_OK;
    const char *parts[] = {"SELECT count(*) FROM resources r WHERE ", s->where};
    for (size_t i = 0; st == SG_OK && i < 2; i++)
        st = c->host->buf_append(&sql, parts[i], strlen(parts[i]));
    if (st != SG_OK) {
        c->host->free(sql.data);
        return oom(err);
    }
    pg_params *p = c->host->alloc(sizeof *p);
    if (!p) {
        c->host->free(sql.data);
        return oom(err);
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
    const char *body = pg_text(res, i, 4);
    sg_resource row = {.type = qq->type,
                       .id = pg_text(res, i, 0),
                       .version = pg_i64(res, i, 1),
                       .created = pg_text(res, i, 2),
                       .modified = pg_text(res, i, 3),
                       .json = body ? body : "",
                       .json_len = (size_t)PQgetlength(res, i, 4)};
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
    size_t next = s->b.np + FIRST_PARAM;
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
    const char *parts[] = {"SELECT r.id, r.version, r.created, r.modified, r.body",
                           with_count ? ", (SELECT count(*) FROM resources r WHERE " : "",
                           with_count ? s->where : "",
                           with_count ? ")" : "",
                           " FROM resources r WHERE ",
                           s->where,
                           " ORDER BY ",
                           s->order,
                           paged ? tail : ""};
    sg_status st = SG_OK;
    for (size_t i = 0; st == SG_OK && i < sizeof parts / sizeof parts[0]; i++)
        st = h->buf_append(&sql, parts[i], strlen(parts[i]));
    if (st != SG_OK) {
        h->free(sql.data);
        return oom(err);
    }
    pg_params *p = h->alloc(sizeof *p);
    if (!p) {
        h->free(sql.data);
        return oom(err);
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
    if (!q || (q->type != SG_RT_USER && q->type != SG_RT_GROUP))
        return sg_error_set(err, SG_EINVALID, NULL, "bad query: resource type");
    struct search s = {.c = c, .q = q, .b = {.h = c->host}};
    sg_status st = pg_tid(c, tenant, &s.tid, err);
    if (st != SG_OK) return st;

    /* The WHERE clause, then the ORDER BY list in the same builder, so that
     * the sort key's parameters follow the filter's. With a driver the
     * tenant terms take no index (see above). */
    int emitted, drivable = q->filter && rank(&s.b, q->filter, &top_scope) > 0;
    put(&s.b, drivable ? "r.tid + 0 = $1 AND r.rtype + 0 = $2" : "r.tid = $1 AND r.rtype = $2");
    struct mark m = mark(&s.b);
    put(&s.b, " AND ");
    const sg_filter *residual = compile_filter(&s.b, q->filter, &emitted);
    if (!emitted) restore(&s.b, m);
    enum sortkind sk = q->sort ? sort_kind(q->sort) : SK_NONE;
    if (!s.b.nomem) {
        s.where = s.b.sql.data; /* taken over; the builder starts anew */
        s.where_np = s.b.np;
        s.b.sql = (sg_buf){0};
        build_order(&s, sk);
        s.order = s.b.sql.data;
        s.b.sql = (sg_buf){0};
    }
    if (s.b.nomem || !s.where || !s.order) {
        st = oom(err);
        goto out;
    }
    int sort_ok = !q->sort || sk != SK_NONE;
    out->residual = residual;
    out->sorted = sort_ok;

    /* A residual or a sort we cannot follow leaves paging to the core.
     * Without either, a page that is not full (and not empty past an
     * offset) tells the total by itself; the count taken in the same
     * statement covers the other pages. */
    int exact = !residual, paged = exact && sort_ok;
    int need_rows = !paged || q->count != 0;
    int64_t offset = paged && q->start_index > 1 ? q->start_index - 1 : 0;
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
        int unlimited = !paged || q->count < 0;
        if (total >= 0)
            out->total = total;
        else if (need_rows && (unlimited || nrows < q->count) && (nrows > 0 || offset == 0))
            out->total = offset + nrows;
        else
            st = run_count(&s, &out->total, err);
    }
out:
    free_params(&s.b, 0);
    c->host->free(s.b.sql.data);
    c->host->free(s.b.p);
    c->host->free(s.where);
    c->host->free(s.order);
    return st;
}
