/*
** plugins/common: the dialect-independent half of the storage plugins'
** filter compilers (sqlfilter.h says what is here and what the plugins
** keep). Every rule below decides whether SQL agrees with the core's
** evaluator (core/src/filter.c: eval, any_value, cmp_one, present), for
** both plugins at once; tests/unit/test_pushdown.c checks them against it.
*/
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sqlfilter.h"

static const sf_scope top_scope = {SF_CX_TOP, NULL};

static int comp(sf_qb *q, const sg_filter *f, int drive, const sf_scope *sc, int *exact);

/* ---- the statement being built ------------------------------------------------------------- */

void sf_put(sf_qb *q, const char *s)
{
    if (!q->nomem && q->h->buf_append(&q->sql, s, strlen(s)) != SG_OK) q->nomem = 1;
}

void sf_put_ref(sf_qb *q, size_t i, const char *cast)
{
    char ph[32];
    if (i == SF_NOPARAM) {
        q->nomem = 1;
        return;
    }
    snprintf(ph, sizeof ph, "%c%zu%s", q->d->sigil, i + SF_FIRST_PARAM, cast ? cast : "");
    sf_put(q, ph);
}

/* Add a parameter; `heap` (may be NULL) is owned from here on, also on
 * failure. Bytes that cannot be bound (NULL, longer than INT_MAX) are
 * treated like an allocation failure. */
static size_t add_param(sf_qb *q, sf_pkind kind, const char *s, size_t len, char *heap, double num)
{
    if (q->nomem || (kind != SF_PK_DOUBLE && !s) || len > INT_MAX) {
        q->nomem = 1;
        q->h->free(heap);
        return SF_NOPARAM;
    }
    if (q->np == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        struct sf_param *p = q->h->realloc(q->p, cap * sizeof *p);
        if (!p) {
            q->nomem = 1;
            q->h->free(heap);
            return SF_NOPARAM;
        }
        q->p = p;
        q->cap = cap;
    }
    q->p[q->np] =
        (struct sf_param){.s = s, .heap = heap, .len = (int)len, .kind = kind, .num = num};
    return q->np++;
}

size_t sf_param(sf_qb *q, const char *s)
{
    return add_param(q, SF_PK_TEXT, s, s ? strlen(s) : 0, NULL, 0);
}

size_t sf_param_n(sf_qb *q, const char *s, size_t len)
{
    return add_param(q, SF_PK_TEXT, s, len, NULL, 0);
}

size_t sf_param_blob(sf_qb *q, const char *s, size_t len)
{
    return add_param(q, SF_PK_BLOB, s, len, NULL, 0);
}

size_t sf_param_double(sf_qb *q, double v)
{
    return add_param(q, SF_PK_DOUBLE, NULL, 0, NULL, v);
}

size_t sf_param_heap(sf_qb *q, char *heap)
{
    if (!heap) {
        q->nomem = 1;
        return SF_NOPARAM;
    }
    return add_param(q, SF_PK_TEXT, heap, strlen(heap), heap, 0);
}

size_t sf_param_copy(sf_qb *q, const char *s)
{
    return sf_param_heap(q, sf_dup_n(q->h, s, strlen(s)));
}

/* Free the parameters from index `from` on (and forget them). */
static void free_params(sf_qb *q, size_t from)
{
    for (size_t i = from; i < q->np; i++) q->h->free(q->p[i].heap);
    if (from < q->np) q->np = from;
}

void sf_qb_free(sf_qb *q)
{
    free_params(q, 0);
    q->h->free(q->sql.data);
    q->h->free(q->p);
    q->sql = (sg_buf){0};
    q->p = NULL;
    q->np = q->cap = 0;
}

struct sf_mark sf_mark(const sf_qb *q)
{
    return (struct sf_mark){q->sql.len, q->np};
}

void sf_restore(sf_qb *q, struct sf_mark m)
{
    if (q->sql.data && m.len <= q->sql.len) {
        q->sql.len = m.len;
        q->sql.data[m.len] = '\0';
    }
    free_params(q, m.np);
}

char *sf_dup_n(const sg_host *h, const char *s, size_t n)
{
    char *d = h->alloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* ---- literals and operators ---------------------------------------------------------------- */

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

int sf_norm_time(const sg_host *h, const char *s, size_t n, char out[SG_TIME_MAX])
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

int sf_is_path(const sg_filter *f, const char *path)
{
    return f->attr.path && !strcmp(f->attr.path, path);
}

/* Is the node's literal a string? */
static int str_literal(const sg_filter *f)
{
    return f->vtype == SG_VT_STRING && f->str;
}

/* eq ne co sw ew gt ge lt le: the operators that take a literal. */
static int cmp_op_with_literal(sg_fop op)
{
    return op >= SG_FOP_EQ && op <= SG_FOP_LE;
}

int sf_is_order_op(sg_fop op)
{
    return op >= SG_FOP_GT && op <= SG_FOP_LE;
}

const char *sf_cmp_op(sg_fop op)
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

static int string_like(sg_atype t)
{
    return t == SG_AT_STRING || t == SG_AT_REFERENCE || t == SG_AT_BINARY;
}

/* ---- JSON addressing ---- */

int sf_in_extension(const sg_attr_ref *a)
{
    size_t n = a->schema ? strlen(a->schema) : 0;
    return n && a->path && !strncmp(a->path, a->schema, n) && a->path[n] == ':';
}

/* Can the stored JSON be addressed for this attribute (the dialect decides
 * which key names it can reach)? */
static int json_addressable(const sf_dialect *d, const sg_attr_ref *a)
{
    if (!a->path || !a->name || !d->key_ok(a->name) || (a->sub && !d->key_ok(a->sub))) return 0;
    if (a->flags & (SG_ATTR_META | SG_ATTR_MEMBERS)) return 0;
    return !sf_in_extension(a) || d->key_ok(a->schema);
}

/*
** Can this comparison or pr be evaluated on a JSON value exactly as the
** core's evaluator (cmp_one, present) does? pr never depends on case;
** comparisons need a value that compares without folding.
*/
static int json_leaf_ok(const sf_dialect *d, const sg_filter *f)
{
    const sg_attr_ref *a = &f->attr;
    if (!json_addressable(d, a)) return 0;
    if (f->op == SG_FOP_PR) return 1;
    switch (a->type) {
    case SG_AT_STRING:
    case SG_AT_REFERENCE:
    case SG_AT_BINARY:
        return (a->flags & SG_ATTR_CASE_EXACT) && str_literal(f) && d->text_ok(f) &&
               cmp_op_with_literal(f->op);
    case SG_AT_BOOLEAN:
        return f->vtype == SG_VT_BOOL && (f->op == SG_FOP_EQ || f->op == SG_FOP_NE);
    case SG_AT_INTEGER:
    case SG_AT_DECIMAL:
        return f->vtype == SG_VT_NUMBER &&
               (f->op == SG_FOP_EQ || f->op == SG_FOP_NE || sf_is_order_op(f->op));
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

/* Can a value path's elements be enumerated from the stored JSON? */
static int vp_json_ok(const sf_dialect *d, const sg_attr_ref *vpa)
{
    return (vpa->flags & SG_ATTR_MULTI) && json_addressable(d, vpa);
}

/* Can `g` be evaluated on one element of the value path's array, within
 * `budget` levels of nesting? */
static int elem_ok_in(const sf_dialect *d, const sg_filter *g, const sg_attr_ref *vpa, int budget)
{
    if (!g || budget <= 0) return 0;
    switch (g->op) {
    case SG_FOP_AND:
    case SG_FOP_OR:
        return elem_ok_in(d, g->a, vpa, budget - 1) && elem_ok_in(d, g->b, vpa, budget - 1);
    case SG_FOP_NOT:
        return elem_ok_in(d, g->a, vpa, budget - 1);
    case SG_FOP_VALUEPATH:
        return 0;
    default:
        return same_attr(&g->attr, vpa) && (g->attr.flags & SG_ATTR_MULTI) && json_leaf_ok(d, g);
    }
}

static int elem_ok(const sf_dialect *d, const sg_filter *g, const sg_attr_ref *vpa)
{
    return elem_ok_in(d, g, vpa, d->max_elem_nest ? d->max_elem_nest : INT_MAX);
}

int sf_vp_whole(const sf_qb *q, const sg_filter *f)
{
    return vp_json_ok(q->d, &f->attr) && elem_ok(q->d, f->a, &f->attr) &&
           (!f->b || elem_ok(q->d, f->b, &f->attr));
}

/* Inside a value path, is this compound node element-bound as a whole? */
static int vp_compound_whole(const sf_qb *q, const sg_filter *g, const sf_scope *sc)
{
    return sc->cx == SF_CX_VP && vp_json_ok(q->d, sc->vpa) && elem_ok(q->d, g, sc->vpa);
}

/* ---- what the nodes compile to --------------------------------------------------------------- */

/* A string literal the dialect takes as text. */
static int text_literal(const sf_qb *q, const sg_filter *f)
{
    return str_literal(f) && q->d->text_ok(f);
}

sf_leaf sf_leaf_kind(const sf_qb *q, const sg_filter *f, const sf_scope *sc, char tbuf[SG_TIME_MAX])
{
    uint32_t fl = f->attr.flags;
    if (!f->attr.path) return SF_LF_NONE;
    /* Inside a value path the evaluator reads the current element only for
     * the path's own attribute (the parser allows no other). */
    if (sc->cx != SF_CX_TOP && !same_attr(&f->attr, sc->vpa)) return SF_LF_NONE;
    if (fl & SG_ATTR_MEMBERS) {
        /* Members are rows, not part of the stored JSON. */
        if (sc->cx == SF_CX_ELEM || !f->attr.sub || strcmp(f->attr.sub, "value")) return SF_LF_NONE;
        if (f->op == SG_FOP_PR) return SF_LF_MEMBER_PR;
        if (!str_literal(f)) return SF_LF_NONE;
        /* An id the dialect cannot take as text names no resource. */
        if (f->op == SG_FOP_EQ) return text_literal(q, f) ? SF_LF_MEMBER_EQ : SF_LF_FALSE;
        if (f->op == SG_FOP_NE && sc->cx == SF_CX_TOP)
            return text_literal(q, f) ? SF_LF_MEMBER_NE : SF_LF_TRUE;
        return SF_LF_NONE;
    }
    if (fl & SG_ATTR_META) {
        if (sc->cx != SF_CX_TOP) return SF_LF_NONE;
        if (sf_is_path(f, "id")) {
            if (f->op == SG_FOP_PR || (text_literal(q, f) && cmp_op_with_literal(f->op)))
                return SF_LF_ID;
            return SF_LF_NONE;
        }
        if (sf_is_path(f, "meta.created") || sf_is_path(f, "meta.lastModified")) {
            if (f->op == SG_FOP_PR) return SF_LF_TIME;
            if (!str_literal(f)) return SF_LF_NONE;
            /* The evaluator answers false for co/sw/ew on a dateTime. */
            if (f->op == SG_FOP_CO || f->op == SG_FOP_SW || f->op == SG_FOP_EW) return SF_LF_FALSE;
            if ((f->op == SG_FOP_EQ || f->op == SG_FOP_NE || sf_is_order_op(f->op)) &&
                sf_norm_time(q->h, f->str, f->len, tbuf))
                return SF_LF_TIME;
        }
        return SF_LF_NONE;
    }
    if (sc->cx == SF_CX_ELEM) return json_leaf_ok(q->d, f) ? SF_LF_JSON : SF_LF_NONE;
    /* Keys exist per element value, so "some element's value op x" is "some
     * key op x" for every operator but ne, whose "no element equals x" holds
     * only at the top (inside a value path it is about one element). Keys of
     * other types have no agreed text form to compare with. */
    if ((fl & SG_ATTR_INDEXED) && string_like(f->attr.type) &&
        (f->op == SG_FOP_PR || (text_literal(q, f) && cmp_op_with_literal(f->op))) &&
        !(f->op == SG_FOP_NE && sc->cx != SF_CX_TOP))
        return SF_LF_KEY;
    if (json_leaf_ok(q->d, f) && (sc->cx == SF_CX_TOP || vp_json_ok(q->d, sc->vpa)))
        return SF_LF_JSON;
    return SF_LF_NONE;
}

int sf_leaf_rank(sf_leaf k, const sg_filter *f)
{
    switch (k) {
    case SF_LF_ID:
        return f->op == SG_FOP_EQ ? 6 : 0;
    case SF_LF_KEY:
        if (f->op == SG_FOP_EQ) return 5;
        if (f->op == SG_FOP_SW || sf_is_order_op(f->op)) return 2; /* a range of the key index */
        return f->op == SG_FOP_NE ? 0 : 1;                         /* co ew pr: the attr's keys */
    case SF_LF_MEMBER_EQ:
        return 5;
    case SF_LF_TIME:
        return f->op == SG_FOP_EQ ? 5 : sf_is_order_op(f->op) ? 2 : 0;
    default:
        return 0;
    }
}

/* sf_rank of a node compiled `nest` levels deep: 0 where comp() would not
 * compile it. */
static int rank_at(const sf_qb *q, const sg_filter *f, const sf_scope *sc, int nest)
{
    char tbuf[SG_TIME_MAX];
    int a, b;
    if (!f || (q->d->max_nest && nest >= q->d->max_nest)) return 0;
    switch (f->op) {
    case SG_FOP_AND:
        if (vp_compound_whole(q, f, sc)) return 0;
        a = rank_at(q, f->a, sc, nest + 1);
        b = rank_at(q, f->b, sc, nest + 1);
        return a > b ? a : b;
    case SG_FOP_OR:
        a = rank_at(q, f->a, sc, nest + 1);
        b = rank_at(q, f->b, sc, nest + 1);
        return a < b ? a : b;
    case SG_FOP_NOT:
        return 0;
    case SG_FOP_VALUEPATH: {
        if (sc->cx != SF_CX_TOP || sf_vp_whole(q, f)) return 0;
        sf_scope vs = {SF_CX_VP, &f->attr};
        a = rank_at(q, f->a, &vs, nest + 1);
        b = rank_at(q, f->b, &vs, nest + 1);
        return a > b ? a : b;
    }
    default:
        return sf_leaf_rank(sf_leaf_kind(q, f, sc, tbuf), f);
    }
}

int sf_rank(const sf_qb *q, const sg_filter *f, const sf_scope *sc)
{
    return rank_at(q, f, sc, q->nest);
}

/* As the dialect's jcond, ne being not (eq) on the same value(s). */
static void jcond_ne(sf_qb *q, const sg_filter *f, int elem)
{
    if (f->op == SG_FOP_NE) {
        sf_put(q, "(NOT ");
        q->d->jcond(q, f, SG_FOP_EQ, elem);
        sf_put(q, ")");
    } else {
        q->d->jcond(q, f, f->op, elem);
    }
}

void sf_json_leaf(sf_qb *q, const sg_filter *f, const sf_scope *sc)
{
    if (sc->cx == SF_CX_ELEM) {
        jcond_ne(q, f, 1);
    } else if (sc->cx == SF_CX_VP) {
        /* Some element satisfies this one leaf. */
        q->d->each(q, "EXISTS", sc->vpa);
        jcond_ne(q, f, 1);
        sf_put(q, ")");
    } else if (!(f->attr.flags & SG_ATTR_MULTI)) {
        jcond_ne(q, f, 0);
    } else {
        q->d->each(q, f->op == SG_FOP_NE ? "NOT EXISTS" : "EXISTS", &f->attr);
        q->d->jcond(q, f, f->op == SG_FOP_NE ? SG_FOP_EQ : f->op, 1);
        sf_put(q, ")");
    }
}

/* ---- the walk -------------------------------------------------------------------------------- */

/* A node on the element the dialect's `each` binds (elem_ok() holds):
 * always exact. */
static void comp_elem(sf_qb *q, const sg_filter *g, const sg_attr_ref *vpa)
{
    const sf_scope es = {SF_CX_ELEM, vpa};
    switch (g->op) {
    case SG_FOP_AND:
    case SG_FOP_OR:
        sf_put(q, "(");
        comp_elem(q, g->a, vpa);
        sf_put(q, g->op == SG_FOP_AND ? " AND " : " OR ");
        comp_elem(q, g->b, vpa);
        sf_put(q, ")");
        return;
    case SG_FOP_NOT:
        sf_put(q, "(NOT ");
        comp_elem(q, g->a, vpa);
        sf_put(q, ")");
        return;
    default:
        q->d->leaf(q, g, 0, &es);
        return;
    }
}

/* "Some element of vpa's array satisfies a (and b)", in one enumeration. */
static void vp_each(sf_qb *q, const sg_attr_ref *vpa, const sg_filter *a, const sg_filter *b)
{
    q->d->each(q, "EXISTS", vpa);
    comp_elem(q, a, vpa);
    if (b) {
        sf_put(q, " AND ");
        comp_elem(q, b, vpa);
    }
    sf_put(q, ")");
}

/*
** AND of a and b (also the two halves of a value path): the more selective
** side drives. *ea / *eb tell whether each side compiled exactly.
*/
static int comp_and(sf_qb *q, const sg_filter *a, const sg_filter *b, const sf_scope *sc, int drive,
                    int *ea, int *eb)
{
    int ra = drive ? sf_rank(q, a, sc) : 0, rb = drive ? sf_rank(q, b, sc) : 0;
    int da = ra > 0 && ra >= rb, db = rb > 0 && !da;
    struct sf_mark m = sf_mark(q);
    *ea = *eb = 0;
    sf_put(q, "(");
    int na = a ? comp(q, a, da, sc, ea) : 0;
    struct sf_mark mb = sf_mark(q);
    if (na) sf_put(q, " AND ");
    int nb = b ? comp(q, b, db, sc, eb) : 0;
    if (!nb) sf_restore(q, mb);
    if (!na && !nb) {
        sf_restore(q, m);
        return 0;
    }
    sf_put(q, ")");
    return 1;
}

int sf_comp_or(sf_qb *q, const sg_filter *f, int drive, const sf_scope *sc, int *exact)
{
    int ea, eb;
    struct sf_mark m = sf_mark(q);
    *exact = 0;
    sf_put(q, "(");
    if (comp(q, f->a, drive, sc, &ea) && (sf_put(q, " OR "), comp(q, f->b, drive, sc, &eb))) {
        sf_put(q, ")");
        *exact = ea && eb;
        return 1;
    }
    sf_restore(q, m);
    return 0;
}

static int comp_node(sf_qb *q, const sg_filter *f, int drive, const sf_scope *sc, int *exact);

/* Compile a node into q; returns 1 when something was emitted, *exact when
 * it is exact. Deeper than the dialect's max_nest: nothing. */
static int comp(sf_qb *q, const sg_filter *f, int drive, const sf_scope *sc, int *exact)
{
    *exact = 0;
    if (q->d->max_nest && q->nest >= q->d->max_nest) return 0;
    q->nest++;
    int r = comp_node(q, f, drive, sc, exact);
    q->nest--;
    return r;
}

static int comp_node(sf_qb *q, const sg_filter *f, int drive, const sf_scope *sc, int *exact)
{
    int ea, eb;
    struct sf_mark m;
    *exact = 0;
    if (!f) return 0;
    switch (f->op) {
    case SG_FOP_AND:
        if (vp_compound_whole(q, f, sc)) {
            /* Both sides on the same element: one enumeration. */
            vp_each(q, sc->vpa, f, NULL);
            *exact = 1;
            return 1;
        }
        if (!comp_and(q, f->a, f->b, sc, drive, &ea, &eb)) return 0;
        /* Inside a value path both sides must hold for the same element,
         * which separate look-ups cannot tell. */
        *exact = ea && eb && sc->cx == SF_CX_TOP;
        return 1;
    case SG_FOP_OR:
        return q->d->comp_or(q, f, drive, sc, exact);
    case SG_FOP_NOT:
        if (sc->cx == SF_CX_VP) {
            if (!vp_compound_whole(q, f, sc)) return 0;
            vp_each(q, sc->vpa, f, NULL);
            *exact = 1;
            return 1;
        }
        /* An operand compiled to nothing, or not exactly: the node stays
         * with the core. */
        m = sf_mark(q);
        sf_put(q, "NOT ");
        if (!comp(q, f->a, 0, sc, &ea) || !ea) {
            sf_restore(q, m);
            return 0;
        }
        *exact = 1;
        return 1;
    case SG_FOP_VALUEPATH: {
        if (sc->cx != SF_CX_TOP) return 0;
        if (sf_vp_whole(q, f)) {
            /* Every condition reads the stored JSON: evaluate them on each
             * element, as the evaluator does. */
            vp_each(q, &f->attr, f->a, f->b);
            *exact = 1;
            return 1;
        }
        /* attr[a] alone is exact when `a` is: a key per element value makes
         * "some element has value x" the same as "has key x". With `.sub op
         * v` the two halves may hold on different elements: necessary. */
        sf_scope vs = {SF_CX_VP, &f->attr};
        if (!comp_and(q, f->a, f->b, &vs, drive, &ea, &eb)) return 0;
        *exact = !f->b && ea;
        return 1;
    }
    default:
        *exact = q->d->leaf(q, f, drive, sc);
        return *exact;
    }
}

/* Compile the filter (drive mode at the top); returns the residual. */
static const sg_filter *compile_filter(sf_qb *q, const sg_filter *f, int *emitted)
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

const sg_filter *sf_compile_where(sf_qb *q, const sg_filter *f, const char *tenant,
                                  const char *tenant_driven)
{
    int emitted, drivable = f && sf_rank(q, f, &top_scope) > 0;
    sf_put(q, drivable ? tenant_driven : tenant);
    struct sf_mark m = sf_mark(q);
    sf_put(q, " AND ");
    const sg_filter *residual = compile_filter(q, f, &emitted);
    if (!emitted) sf_restore(q, m);
    return residual;
}

/* ---- sorting --------------------------------------------------------------------------------- */

sf_sortkind sf_sort_kind(const sf_qb *q, const sg_attr_ref *a)
{
    if (!a || !a->path) return SF_SK_NONE;
    if (a->flags & SG_ATTR_META)
        return !strcmp(a->path, "id") || !strcmp(a->path, "meta.created") ||
                       !strcmp(a->path, "meta.lastModified")
                   ? SF_SK_META
                   : SF_SK_NONE;
    /* Only single values have one place in an order. */
    if (a->flags & (SG_ATTR_MULTI | SG_ATTR_MEMBERS)) return SF_SK_NONE;
    /* Keys hold the folded text: that order is the core's for strings. */
    if ((a->flags & SG_ATTR_INDEXED) && (a->type == SG_AT_STRING || a->type == SG_AT_REFERENCE))
        return SF_SK_KEY;
    if (!json_addressable(q->d, a)) return SF_SK_NONE;
    switch (a->type) {
    case SG_AT_STRING:
    case SG_AT_REFERENCE:
    case SG_AT_BINARY:
        /* Case-insensitive strings sort by their folded form, which only
         * the core computes. */
        return (a->flags & SG_ATTR_CASE_EXACT) ? SF_SK_JTEXT : SF_SK_NONE;
    case SG_AT_INTEGER:
    case SG_AT_DECIMAL:
        return SF_SK_JNUM;
    case SG_AT_BOOLEAN:
        return SF_SK_JBOOL;
    default: /* dateTime (stored as sent, any offset), complex */
        return SF_SK_NONE;
    }
}

int sf_page_total(const sg_query *q, int paged, int64_t nrows, int64_t *total)
{
    int64_t offset = paged && q->start_index > 1 ? q->start_index - 1 : 0;
    int unlimited = !paged || q->count < 0;
    if ((unlimited || nrows < q->count) && (nrows > 0 || offset == 0)) {
        *total = offset + nrows;
        return 1;
    }
    return 0;
}
