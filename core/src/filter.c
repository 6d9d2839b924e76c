#include "filter.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "fold.h"
#include "util.h"

/* ---- arena: every node and string of a tree lives in one list of blocks --- */

typedef struct block {
    struct block *next;
    size_t used, cap;
    max_align_t data[];
} block;

struct sg_filter_tree {
    block *blocks;
    const sg_filter *root;
};

static void *arena_alloc(sg_filter_tree *t, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    block *b = t->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 4096 ? n : 4096;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = t->blocks;
        b->used = 0;
        b->cap = cap;
        t->blocks = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

void sg_filter_free(sg_filter_tree *t)
{
    if (!t) return;
    for (block *b = t->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(t);
}

const sg_filter *sg_filter_root(const sg_filter_tree *t)
{
    return t->root;
}

/* ---- the parser ------------------------------------------------------------ */

typedef struct parser {
    const sg_rtdef *rt;
    const char *s;
    size_t len, pos;
    int depth, max_depth;
    sg_filter_tree *t;
    sg_error *err;
    bool failed;
    bool lenient; /* unknown attributes are absent, not an error */
} parser;

/* Internal constant nodes for lenient parsing; simplified away before a
 * tree leaves this file (storage never sees them). */
#define FOP_CONST ((sg_fop)100)

static sg_filter *fail(parser *p, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static sg_filter *fail(parser *p, size_t pos, const char *fmt, ...)
{
    if (!p->failed) {
        char msg[160];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        sg_error_set(p->err, SG_EINVALID, "invalidFilter", "%s at position %zu of the filter", msg,
                     pos + 1);
        p->failed = true;
    }
    return NULL;
}

static sg_filter *oom(parser *p)
{
    if (!p->failed) {
        sg_error_set(p->err, SG_ENOMEM, NULL, "out of memory");
        p->failed = true;
    }
    return NULL;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len && isspace((unsigned char)p->s[p->pos])) p->pos++;
}

static bool is_path_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '$' || c == ':' || c == '.';
}

/* Is the word at the position `w` (case-insensitive), followed by a
 * non-word character? */
static bool at_word(parser *p, const char *w)
{
    size_t n = strlen(w);
    if (p->len - p->pos < n || strncasecmp(p->s + p->pos, w, n)) return false;
    return p->pos + n == p->len || !is_path_char(p->s[p->pos + n]);
}

static char *arena_strndup(parser *p, const char *s, size_t n)
{
    char *d = arena_alloc(p->t, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static sg_filter *new_node(parser *p, sg_fop op, size_t pos)
{
    sg_filter *f = arena_alloc(p->t, sizeof *f);
    if (!f) return oom(p);
    f->op = op;
    f->pos = (unsigned)pos;
    return f;
}

static const struct {
    const char *name;
    sg_fop op;
} ops[] = {{"eq", SG_FOP_EQ}, {"ne", SG_FOP_NE}, {"co", SG_FOP_CO}, {"sw", SG_FOP_SW},
           {"ew", SG_FOP_EW}, {"gt", SG_FOP_GT}, {"ge", SG_FOP_GE}, {"lt", SG_FOP_LT},
           {"le", SG_FOP_LE}, {"pr", SG_FOP_PR}};

/* Read an attribute path token. */
static bool read_path(parser *p, const char **start, size_t *n)
{
    size_t b = p->pos;
    while (p->pos < p->len && is_path_char(p->s[p->pos])) p->pos++;
    *start = p->s + b;
    *n = p->pos - b;
    return *n > 0;
}

/* Decode a JSON string literal at the position into the arena. */
static bool read_string(parser *p, char **out, size_t *outlen)
{
    size_t b = p->pos; /* at the opening quote */
    size_t i = b + 1;
    bool escaped = false;
    for (; i < p->len; i++) {
        if (escaped)
            escaped = false;
        else if (p->s[i] == '\\')
            escaped = true;
        else if (p->s[i] == '"')
            break;
    }
    if (i >= p->len) {
        fail(p, b, "%s", "unterminated string");
        return false;
    }
    /* Let jansson decode the escapes: wrap the literal in an array. */
    size_t n = i - b + 1;
    char *tmp = malloc(n + 3);
    if (!tmp) {
        oom(p);
        return false;
    }
    tmp[0] = '[';
    memcpy(tmp + 1, p->s + b, n);
    tmp[n + 1] = ']';
    tmp[n + 2] = '\0';
    json_t *v = json_loads(tmp, JSON_DISABLE_EOF_CHECK, NULL);
    free(tmp);
    const char *str = json_string_value(json_array_get(v, 0));
    if (!str) {
        json_decref(v);
        fail(p, b, "%s", "invalid string literal");
        return false;
    }
    *outlen = json_string_length(json_array_get(v, 0));
    *out = arena_strndup(p, str, *outlen);
    json_decref(v);
    p->pos = i + 1;
    if (!*out) {
        oom(p);
        return false;
    }
    return true;
}

/* Read the comparison value and fit it to the attribute's type. */
static bool read_value(parser *p, sg_filter *f)
{
    skip_ws(p);
    size_t b = p->pos;
    char *raw = NULL;
    size_t rawlen = 0;
    bool quoted = false;
    if (p->pos < p->len && p->s[p->pos] == '"') {
        if (!read_string(p, &raw, &rawlen)) return false;
        quoted = true;
    } else {
        while (p->pos < p->len && !isspace((unsigned char)p->s[p->pos]) && p->s[p->pos] != ')' &&
               p->s[p->pos] != ']')
            p->pos++;
        if (p->pos == b) {
            fail(p, b, "%s", "a comparison value is expected");
            return false;
        }
        rawlen = p->pos - b;
        /* A quoted literal is checked by jansson; an unquoted one must be
         * text too, or storage would be handed bytes no client can send. */
        if (!sg_utf8_valid(p->s + b, rawlen) || memchr(p->s + b, '\0', rawlen)) {
            fail(p, b, "%s", "a comparison value must be UTF-8 text");
            return false;
        }
        raw = arena_strndup(p, p->s + b, rawlen);
        if (!raw) {
            oom(p);
            return false;
        }
    }
    sg_atype at = f->attr.type;
    if (!quoted && !strcasecmp(raw, "null")) {
        f->vtype = SG_VT_NULL;
        return true;
    }
    if (at == SG_AT_BOOLEAN) {
        /* "True" as a string occurs in Entra's roles[primary eq "True"]. */
        if (!strcasecmp(raw, "true") || !strcasecmp(raw, "false")) {
            f->vtype = SG_VT_BOOL;
            f->boolean = !strcasecmp(raw, "true");
            return true;
        }
        fail(p, b, "%s", "a boolean attribute compares with true or false");
        return false;
    }
    if (at == SG_AT_INTEGER || at == SG_AT_DECIMAL) {
        char *end;
        double d = strtod(raw, &end);
        if (quoted || *end || end == raw || !isfinite(d)) {
            fail(p, b, "%s", "a numeric attribute compares with a number");
            return false;
        }
        f->vtype = SG_VT_NUMBER;
        f->num = d;
        return true;
    }
    /* String-like attributes: an unquoted token is taken as text (Entra's
     * old `externalId eq jyoung`). */
    if (at == SG_AT_DATETIME) {
        int64_t ms;
        if (!sg_parse_time(raw, &ms)) {
            fail(p, b, "%s", "a dateTime attribute compares with an RFC 3339 timestamp");
            return false;
        }
        /* Normalise so that stores can compare text: the core writes
         * meta times in this same form. */
        raw = arena_alloc(p->t, SG_TIME_MAX);
        if (!raw) {
            oom(p);
            return false;
        }
        sg_format_time(ms, raw);
        rawlen = strlen(raw);
    }
    f->vtype = SG_VT_STRING;
    if (!(f->attr.flags & SG_ATTR_CASE_EXACT) && at != SG_AT_DATETIME) {
        sg_buf fb = {0};
        if (sg_fold(raw, rawlen, &fb) != SG_OK) {
            sg_buf_free(&fb);
            oom(p);
            return false;
        }
        raw = arena_strndup(p, fb.data ? fb.data : "", fb.len);
        rawlen = fb.len;
        sg_buf_free(&fb);
        if (!raw) {
            oom(p);
            return false;
        }
    }
    f->str = raw;
    f->len = rawlen;
    return true;
}

/* Resolve a path; inside a value path `ctx` is the multi-valued attribute. */
static bool resolve(parser *p, const sg_attr *ctx, const char *path, size_t n, size_t pos,
                    const sg_attr **attr, const sg_attr **sub)
{
    sg_resolved r;
    if (ctx) {
        const sg_attr *s = sg_attr_sub(ctx, path, n);
        if (s) {
            *attr = ctx;
            *sub = s;
            return true;
        }
    }
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(n < 200 ? n : 200), path);
    if (!sg_schema_resolve(p->rt, path, n, &r) || !r.attr) {
        fail(p, pos, "unknown attribute \"%s\"", name);
        return false;
    }
    if (ctx && r.attr != ctx) {
        fail(p, pos, "\"%s\" is not a sub-attribute of the value path", name);
        return false;
    }
    *attr = r.attr;
    *sub = r.sub;
    return true;
}

static bool fill_attr(parser *p, sg_filter *f, const sg_attr *attr, const sg_attr *sub, size_t pos)
{
    if (!sub && attr->type == SG_AT_COMPLEX) {
        /* `members eq X`, `emails co "@x"`: the value sub-attribute. */
        sub = attr->value_sub;
        if (!sub) {
            fail(p, pos, "complex attribute \"%s\" needs a sub-attribute", attr->name);
            return false;
        }
    }
    sg_attr_ref_fill(&f->attr, attr, sub);
    return true;
}

static sg_filter *parse_or(parser *p, const sg_attr *ctx);

static sg_filter *parse_comparison(parser *p, sg_filter *f, size_t pos)
{
    skip_ws(p);
    size_t opos = p->pos;
    for (size_t i = 0; i < SG_ARRAY_LEN(ops); i++) {
        if (!at_word(p, ops[i].name)) continue;
        p->pos += 2;
        f->op = ops[i].op;
        sg_atype t = f->attr.type;
        if (f->op == SG_FOP_PR) return f;
        if ((t == SG_AT_BOOLEAN || t == SG_AT_BINARY) && f->op != SG_FOP_EQ && f->op != SG_FOP_NE)
            return fail(p, opos, "operator \"%s\" does not apply to boolean or binary values",
                        ops[i].name);
        if (!(p->pos < p->len && isspace((unsigned char)p->s[p->pos])))
            return fail(p, p->pos, "%s", "a space is expected after the operator");
        if (!read_value(p, f)) return NULL;
        if (f->vtype == SG_VT_NULL && f->op != SG_FOP_EQ && f->op != SG_FOP_NE)
            return fail(p, opos, "%s", "null compares only with eq or ne");
        (void)pos;
        return f;
    }
    return fail(p, opos, "%s", "an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) is expected");
}

/* An attribute the resource type does not have, in lenient mode: read the
 * rest of the expression (a value filter, a sub-attribute, the comparison)
 * and stand for "false": the attribute is absent. */
static sg_filter *parse_unknown(parser *p, size_t pos)
{
    if (p->pos < p->len && p->s[p->pos] == '[') {
        bool in_str = false;
        size_t i = p->pos + 1;
        for (; i < p->len; i++) {
            if (in_str) {
                if (p->s[i] == '\\')
                    i++;
                else if (p->s[i] == '"')
                    in_str = false;
            } else if (p->s[i] == '"') {
                in_str = true;
            } else if (p->s[i] == ']') {
                break;
            }
        }
        if (i >= p->len) return fail(p, p->pos, "%s", "\"]\" is expected");
        p->pos = i + 1;
        const char *sp;
        size_t sn;
        if (p->pos < p->len && p->s[p->pos] == '.') {
            p->pos++;
            if (!read_path(p, &sp, &sn))
                return fail(p, p->pos, "%s", "a sub-attribute is expected");
        } else {
            sg_filter *f = new_node(p, FOP_CONST, pos);
            return f; /* attr[filter] alone */
        }
    }
    sg_filter *f = new_node(p, SG_FOP_EQ, pos);
    if (!f) return NULL;
    f->attr.type = SG_AT_STRING;
    f->attr.flags = SG_ATTR_CASE_EXACT;
    f->attr.path = f->attr.name = "";
    if (!parse_comparison(p, f, pos)) return NULL;
    sg_filter *c = new_node(p, FOP_CONST, pos);
    if (c) c->boolean = f->op == SG_FOP_NE; /* absent ne x is true, like the evaluator */
    return c;
}

static sg_filter *parse_attr_expr(parser *p, const sg_attr *ctx)
{
    size_t pos = p->pos;
    const char *path;
    size_t n;
    if (!read_path(p, &path, &n)) return fail(p, pos, "%s", "an attribute name is expected");
    const sg_attr *attr, *sub;
    if (p->lenient) {
        sg_resolved r;
        bool known = (ctx && sg_attr_sub(ctx, path, n)) ||
                     (sg_schema_resolve(p->rt, path, n, &r) && r.attr && (!ctx || r.attr == ctx));
        if (!known) return parse_unknown(p, pos);
    }
    if (!resolve(p, ctx, path, n, pos, &attr, &sub)) return NULL;

    if (p->pos < p->len && p->s[p->pos] == '[') {
        /* A value path: attr[filter] optionally followed by .sub op value. */
        if (ctx) return fail(p, p->pos, "%s", "value paths cannot nest");
        /* Single-valued complex attributes are allowed too: Entra removes a
         * manager with manager[value eq "id"]. */
        if (sub || attr->type != SG_AT_COMPLEX)
            return fail(p, pos, "\"%s\" is not a complex attribute", attr->name);
        size_t bpos = p->pos++;
        if (++p->depth > p->max_depth) return fail(p, bpos, "%s", "the filter nests too deeply");
        sg_filter *vp = new_node(p, SG_FOP_VALUEPATH, pos);
        if (!vp) return NULL;
        sg_attr_ref_fill(&vp->attr, attr, NULL);
        skip_ws(p);
        vp->a = parse_or(p, attr);
        if (!vp->a) return NULL;
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ']')
            return fail(p, p->pos, "%s", "\"]\" is expected");
        p->pos++;
        p->depth--;
        if (p->pos < p->len && p->s[p->pos] == '.') {
            size_t spos = ++p->pos;
            const char *sp;
            size_t sn;
            if (!read_path(p, &sp, &sn)) return fail(p, spos, "%s", "a sub-attribute is expected");
            const sg_attr *s2 = sg_attr_sub(attr, sp, sn);
            if (!s2) return fail(p, spos, "%s", "unknown sub-attribute after the value path");
            sg_filter *cmp = new_node(p, SG_FOP_EQ, spos);
            if (!cmp) return NULL;
            sg_attr_ref_fill(&cmp->attr, attr, s2);
            if (!parse_comparison(p, cmp, spos)) return NULL;
            vp->b = cmp;
        }
        return vp;
    }
    sg_filter *f = new_node(p, SG_FOP_EQ, pos);
    if (!f || !fill_attr(p, f, attr, sub, pos)) return NULL;
    return parse_comparison(p, f, pos);
}

static sg_filter *parse_unary(parser *p, const sg_attr *ctx)
{
    skip_ws(p);
    size_t pos = p->pos;
    bool negate = false;
    if (at_word(p, "not")) {
        size_t save = p->pos;
        p->pos += 3;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == '(')
            negate = true;
        else
            p->pos = save; /* an attribute called "not..." */
    }
    if (p->pos < p->len && p->s[p->pos] == '(') {
        size_t ppos = p->pos++;
        if (++p->depth > p->max_depth) return fail(p, ppos, "%s", "the filter nests too deeply");
        sg_filter *inner = parse_or(p, ctx);
        if (!inner) return NULL;
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ')')
            return fail(p, p->pos, "%s", "\")\" is expected");
        p->pos++;
        p->depth--;
        if (!negate) return inner;
        sg_filter *f = new_node(p, SG_FOP_NOT, pos);
        if (!f) return NULL;
        f->a = inner;
        return f;
    }
    if (negate) return fail(p, pos, "%s", "\"(\" is expected after not");
    return parse_attr_expr(p, ctx);
}

/*
** "a and b and c ..." and "a or b or ...": a chain of n terms becomes a
** balanced tree, log2(n) deep rather than n. Everything that walks a filter
** recurses on it (the evaluator, both storage compilers, and SQLite's own
** parser on the SQL they write, whose stack holds about a hundred levels),
** and a 4 KiB filter holds hundreds of terms. The terms keep their order,
** so evaluation stops at the same one as it would on the left-leaning tree.
*/
typedef struct chain {
    sg_filter **term;
    size_t *at; /* at[i]: the position of the operator before term[i] */
    size_t n, cap;
} chain;

static sg_filter *balance(parser *p, const chain *c, sg_fop op, size_t lo, size_t hi)
{
    if (lo == hi) return c->term[lo];
    size_t mid = lo + (hi - lo) / 2;
    sg_filter *f = new_node(p, op, c->at[mid + 1]);
    if (!f || !(f->a = balance(p, c, op, lo, mid)) || !(f->b = balance(p, c, op, mid + 1, hi)))
        return NULL;
    return f;
}

static sg_filter *parse_chain(parser *p, const sg_attr *ctx, bool and)
{
    const char *word = and? "and" : "or";
    chain c = {0};
    sg_filter *out = NULL, *t = and? parse_unary(p, ctx) : parse_chain(p, ctx, true);
    size_t at = 0;
    while (t) {
        if (c.n == c.cap) {
            size_t cap = c.cap ? c.cap * 2 : 8;
            sg_filter **nt = realloc(c.term, cap * sizeof *nt);
            if (nt) c.term = nt;
            size_t *na = nt ? realloc(c.at, cap * sizeof *na) : NULL;
            if (!na) {
                oom(p);
                break;
            }
            c.at = na;
            c.cap = cap;
        }
        c.term[c.n] = t;
        c.at[c.n++] = at;
        size_t save = p->pos;
        skip_ws(p);
        if (p->pos == save || !at_word(p, word)) {
            p->pos = save;
            out = balance(p, &c, and? SG_FOP_AND : SG_FOP_OR, 0, c.n - 1);
            break;
        }
        at = p->pos;
        p->pos += strlen(word);
        if (p->pos >= p->len || !isspace((unsigned char)p->s[p->pos])) {
            fail(p, p->pos, "a space is expected after \"%s\"", word);
            break;
        }
        t = and? parse_unary(p, ctx) : parse_chain(p, ctx, true);
    }
    free(c.term);
    free(c.at);
    return out;
}

static sg_filter *parse_or(parser *p, const sg_attr *ctx)
{
    return parse_chain(p, ctx, false);
}

static bool is_const(const sg_filter *f, int value)
{
    return f->op == FOP_CONST && (value < 0 || f->boolean == value);
}

/* Fold the constants of lenient parsing away: the result is either free of
 * them or a single constant node. */
static sg_filter *simplify(parser *p, sg_filter *f)
{
    sg_filter *a, *b;
    switch ((int)f->op) {
    case SG_FOP_AND:
    case SG_FOP_OR: {
        bool and = f->op == SG_FOP_AND;
        a = simplify(p, (sg_filter *)f->a);
        b = a ? simplify(p, (sg_filter *)f->b) : NULL;
        if (!a || !b) return NULL;
        int absorbing = and? 0 : 1, identity = and? 1 : 0;
        if (is_const(a, absorbing)) return a;
        if (is_const(b, absorbing)) return b;
        if (is_const(a, identity)) return b;
        if (is_const(b, identity)) return a;
        f->a = a;
        f->b = b;
        return f;
    }
    case SG_FOP_NOT:
        a = simplify(p, (sg_filter *)f->a);
        if (!a) return NULL;
        if (is_const(a, -1)) {
            a->boolean = !a->boolean;
            return a;
        }
        f->a = a;
        return f;
    case SG_FOP_VALUEPATH:
        a = simplify(p, (sg_filter *)f->a);
        if (!a) return NULL;
        if (is_const(a, 0)) return a;
        if (is_const(a, 1)) {
            /* attr[true] is "attr has a value": the node `attr pr` parses
             * to, so stores see no shape the parser never makes (for
             * emails, emails.value pr). */
            sg_resolved r;
            f->op = SG_FOP_PR;
            f->a = f->b = NULL;
            if (sg_schema_resolve(p->rt, f->attr.path, strlen(f->attr.path), &r) && r.attr &&
                r.attr->value_sub)
                sg_attr_ref_fill(&f->attr, r.attr, r.attr->value_sub);
            return f;
        }
        f->a = a;
        return f;
    default:
        return f;
    }
}

sg_status sg_filter_parse(const sg_rtdef *rt, const char *text, size_t len,
                          const sg_filter_limits *lim, sg_filter_tree **out, sg_error *err)
{
    return sg_filter_parse_ex(rt, text, len, lim, false, out, err);
}

int sg_filter_constant(const sg_filter_tree *t)
{
    return t->root->op == FOP_CONST ? t->root->boolean : -1;
}

sg_status sg_filter_parse_ex(const sg_rtdef *rt, const char *text, size_t len,
                             const sg_filter_limits *lim, bool lenient, sg_filter_tree **out,
                             sg_error *err)
{
    *out = NULL;
    if (len > lim->max_length)
        return sg_error_set(err, SG_EINVALID, "invalidFilter",
                            "the filter is longer than %zu bytes", lim->max_length);
    if (memchr(text, '\0', len))
        return sg_error_set(err, SG_EINVALID, "invalidFilter", "the filter contains a NUL byte");
    sg_filter_tree *t = calloc(1, sizeof *t);
    if (!t) return sg_error_set(err, SG_ENOMEM, NULL, "out of memory");
    parser p = {.rt = rt,
                .s = text,
                .len = len,
                .max_depth = lim->max_depth,
                .t = t,
                .err = err,
                .lenient = lenient};
    skip_ws(&p);
    if (p.pos == len) {
        sg_filter_free(t);
        return sg_error_set(err, SG_EINVALID, "invalidFilter", "the filter is empty");
    }
    sg_filter *root = parse_or(&p, NULL);
    if (root) {
        skip_ws(&p);
        if (p.pos < len) root = fail(&p, p.pos, "%s", "unexpected text");
    }
    if (!root) {
        sg_filter_free(t);
        return err ? err->status : SG_EINVALID;
    }
    t->root = simplify(&p, root);
    if (!t->root) {
        sg_filter_free(t);
        return err ? err->status : SG_ENOMEM;
    }
    *out = t;
    return SG_OK;
}

/* ---- evaluation -------------------------------------------------------------- */

typedef struct scope {
    const char *name; /* value-path attribute, or NULL */
    const char *schema;
    const json_t *element;
} scope;

/* The JSON container of a top-level attribute: the body, or the extension
 * object for attributes of an extension schema. */
static const json_t *container(const sg_eval_ctx *c, const sg_attr_ref *a)
{
    if (!a->schema || c->rt->core->id == a->schema || !strcmp(c->rt->core->id, a->schema) ||
        !strncmp(a->schema, "urn:scimgate:common", 19))
        return c->doc;
    return json_object_get(c->doc, a->schema);
}

static int cmp_num(double a, double b)
{
    return a < b ? -1 : a > b;
}

/* Compare one JSON value with the node's literal. */
static bool cmp_one(const sg_filter *f, const json_t *v)
{
    if (f->vtype == SG_VT_NULL) return json_is_null(v);
    switch (f->attr.type) {
    case SG_AT_BOOLEAN:
        if (!json_is_boolean(v) || f->vtype != SG_VT_BOOL) return false;
        return (json_is_true(v) == (f->boolean != 0)) == (f->op == SG_FOP_EQ);
    case SG_AT_INTEGER:
    case SG_AT_DECIMAL: {
        if (!json_is_number(v) || f->vtype != SG_VT_NUMBER) return false;
        int c = cmp_num(json_number_value(v), f->num);
        switch (f->op) {
        case SG_FOP_EQ:
            return c == 0;
        case SG_FOP_NE:
            return c != 0;
        case SG_FOP_GT:
            return c > 0;
        case SG_FOP_GE:
            return c >= 0;
        case SG_FOP_LT:
            return c < 0;
        case SG_FOP_LE:
            return c <= 0;
        default:
            return false;
        }
    }
    default:
        break;
    }
    if (!json_is_string(v) || f->vtype != SG_VT_STRING) return false;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    sg_buf folded = {0};
    int c = 0;
    if (f->attr.type == SG_AT_DATETIME) {
        int64_t a, b;
        if (!sg_parse_time(s, &a) || !sg_parse_time(f->str, &b)) return false;
        c = a < b ? -1 : a > b;
        if (f->op == SG_FOP_CO || f->op == SG_FOP_SW || f->op == SG_FOP_EW) return false;
    } else {
        if (!(f->attr.flags & SG_ATTR_CASE_EXACT)) {
            if (sg_fold(s, n, &folded) != SG_OK) {
                sg_buf_free(&folded);
                return false;
            }
            s = folded.data ? folded.data : "";
            n = folded.len;
        }
        size_t m = n < f->len ? n : f->len;
        c = memcmp(s, f->str, m);
        if (c == 0) c = n < f->len ? -1 : n > f->len;
    }
    bool r;
    switch (f->op) {
    case SG_FOP_EQ:
        r = c == 0;
        break;
    case SG_FOP_NE:
        r = c != 0;
        break;
    case SG_FOP_GT:
        r = c > 0;
        break;
    case SG_FOP_GE:
        r = c >= 0;
        break;
    case SG_FOP_LT:
        r = c < 0;
        break;
    case SG_FOP_LE:
        r = c <= 0;
        break;
    case SG_FOP_CO:
        r = f->len == 0 || (n >= f->len && memmem(s, n, f->str, f->len));
        break;
    case SG_FOP_SW:
        r = n >= f->len && !memcmp(s, f->str, f->len);
        break;
    case SG_FOP_EW:
        r = n >= f->len && !memcmp(s + n - f->len, f->str, f->len);
        break;
    default:
        r = false;
    }
    sg_buf_free(&folded);
    return r;
}

static bool present(const json_t *v)
{
    if (!v || json_is_null(v)) return false;
    if (json_is_string(v)) return json_string_length(v) > 0;
    if (json_is_array(v)) return json_array_size(v) > 0;
    if (json_is_object(v)) return json_object_size(v) > 0;
    return true;
}

/* Values of the meta pseudo-attributes. */
static json_t *meta_value(const sg_eval_ctx *c, const char *path)
{
    const sg_resource *r = c->row;
    if (!strcmp(path, "id")) return json_string(r->id);
    if (!strcmp(path, "meta.created")) return json_string(r->created);
    if (!strcmp(path, "meta.lastModified")) return json_string(r->modified);
    if (!strcmp(path, "meta.resourceType")) return json_string(c->rt->id);
    if (!strcmp(path, "meta.version")) {
        char v[48];
        snprintf(v, sizeof v, "W/\"%lld\"", (long long)r->version);
        return json_string(v);
    }
    return NULL;
}

/* Does any value of the node's attribute satisfy `test`? */
static bool any_value(const sg_filter *f, const sg_eval_ctx *c, const scope *sc,
                      bool (*test)(const sg_filter *, const json_t *))
{
    const sg_attr_ref *a = &f->attr;
    if (a->flags & SG_ATTR_META) {
        json_t *v = meta_value(c, a->path);
        bool r = v && test(f, v);
        json_decref(v);
        return r;
    }
    const json_t *top;
    if (sc->name && !strcmp(sc->name, a->name) && !strcmp(sc->schema, a->schema)) {
        /* Inside a value path: the current element only. */
        return a->sub ? test(f, json_object_get(sc->element, a->sub)) : test(f, sc->element);
    }
    const json_t *cont = container(c, a);
    top = cont ? json_object_get(cont, a->name) : NULL;
    if (!top) return test(f, NULL);
    if (!a->sub) {
        if (!json_is_array(top)) return test(f, top);
        size_t i;
        const json_t *e;
        json_array_foreach(top, i, e) if (test(f, e)) return true;
        return false;
    }
    if (json_is_array(top)) {
        size_t i;
        const json_t *e;
        json_array_foreach(top, i, e) if (test(f, json_object_get(e, a->sub))) return true;
        return false;
    }
    return test(f, json_object_get(top, a->sub));
}

static bool test_cmp(const sg_filter *f, const json_t *v)
{
    if (!v) return f->vtype == SG_VT_NULL && f->op == SG_FOP_EQ;
    return cmp_one(f, v);
}

static bool test_pr(const sg_filter *f, const json_t *v)
{
    (void)f;
    return present(v);
}

static sg_status eval(const sg_filter *f, const sg_eval_ctx *c, const scope *sc, bool *m);

/*
** members[...]: members are rows, not part of the body, so the element
** filter is answered through has_member where a membership test can answer
** it: `value eq "id"`, and `or` of such (what storage compiles). Anything
** else about one member cannot be told here and is false.
*/
static sg_status eval_members_vp(const sg_filter *f, const sg_eval_ctx *c, bool *m)
{
    *m = false;
    if (f->op == SG_FOP_OR) {
        sg_status s = eval_members_vp(f->a, c, m);
        if (s != SG_OK || *m) return s;
        return eval_members_vp(f->b, c, m);
    }
    if (f->op == SG_FOP_EQ && (f->attr.flags & SG_ATTR_MEMBERS) && f->attr.sub &&
        !strcmp(f->attr.sub, "value") && f->vtype == SG_VT_STRING && c->has_member)
        return c->has_member(c->ud, c->row->id, f->str, m);
    return SG_OK;
}

static sg_status eval_valuepath(const sg_filter *f, const sg_eval_ctx *c, bool *m)
{
    *m = false;
    if ((f->attr.flags & SG_ATTR_MEMBERS) && !f->b) return eval_members_vp(f->a, c, m);
    const json_t *cont = container(c, &f->attr);
    const json_t *arr = cont ? json_object_get(cont, f->attr.name) : NULL;
    if (!arr) return SG_OK;
    size_t i, n = json_is_array(arr) ? json_array_size(arr) : 1;
    for (i = 0; i < n && !*m; i++) {
        const json_t *e = json_is_array(arr) ? json_array_get(arr, i) : arr;
        scope sc = {f->attr.name, f->attr.schema, e};
        bool ok;
        sg_status s = eval(f->a, c, &sc, &ok);
        if (s != SG_OK) return s;
        if (ok && f->b) {
            s = eval(f->b, c, &sc, &ok);
            if (s != SG_OK) return s;
        }
        *m = ok;
    }
    return SG_OK;
}

static sg_status eval(const sg_filter *f, const sg_eval_ctx *c, const scope *sc, bool *m)
{
    sg_status s;
    bool x;
    switch (f->op) {
    case SG_FOP_AND:
        if ((s = eval(f->a, c, sc, &x)) != SG_OK) return s;
        if (!x) return *m = false, SG_OK;
        return eval(f->b, c, sc, m);
    case SG_FOP_OR:
        if ((s = eval(f->a, c, sc, &x)) != SG_OK) return s;
        if (x) return *m = true, SG_OK;
        return eval(f->b, c, sc, m);
    case SG_FOP_NOT:
        if ((s = eval(f->a, c, sc, &x)) != SG_OK) return s;
        *m = !x;
        return SG_OK;
    case SG_FOP_VALUEPATH:
        return eval_valuepath(f, c, m);
    case SG_FOP_PR:
        if (f->attr.flags & SG_ATTR_MEMBERS) {
            /* Members are rows: ask whether the group has any. */
            *m = false;
            return c->has_member ? c->has_member(c->ud, c->row->id, NULL, m) : SG_OK;
        }
        *m = any_value(f, c, sc, test_pr);
        return SG_OK;
    default:
        break;
    }
    if ((f->attr.flags & SG_ATTR_MEMBERS) && f->vtype == SG_VT_STRING &&
        (f->op == SG_FOP_EQ || f->op == SG_FOP_NE) && c->has_member) {
        bool has;
        s = c->has_member(c->ud, c->row->id, f->str, &has);
        if (s != SG_OK) return s;
        *m = f->op == SG_FOP_EQ ? has : !has;
        return SG_OK;
    }
    if (f->op == SG_FOP_NE) {
        /* ne is the negation of eq, so that absent attributes match and
         * stores can compile it as NOT (...). */
        sg_filter eq = *f;
        eq.op = SG_FOP_EQ;
        *m = !any_value(&eq, c, sc, test_cmp);
        return SG_OK;
    }
    *m = any_value(f, c, sc, test_cmp);
    return SG_OK;
}

sg_status sg_filter_eval(const sg_filter *f, const sg_eval_ctx *ctx, bool *match)
{
    scope sc = {0};
    return eval(f, ctx, &sc, match);
}

sg_status sg_filter_eval_element(const sg_filter *vp, const sg_eval_ctx *ctx, const json_t *element,
                                 bool *match)
{
    scope sc = {vp->attr.name, vp->attr.schema, element};
    return eval(vp->a, ctx, &sc, match);
}

/* ---- formatting ---------------------------------------------------------------- */

static const char *op_name(sg_fop op)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(ops); i++)
        if (ops[i].op == op) return ops[i].name;
    return "?";
}

static sg_status fmt(const sg_filter *f, sg_buf *o)
{
    sg_status s = SG_OK;
    switch (f->op) {
    case SG_FOP_AND:
    case SG_FOP_OR:
        s |= sg_buf_putc(o, '(');
        s |= fmt(f->a, o);
        s |= sg_buf_puts(o, f->op == SG_FOP_AND ? " and " : " or ");
        s |= fmt(f->b, o);
        s |= sg_buf_putc(o, ')');
        return s ? SG_ENOMEM : SG_OK;
    case SG_FOP_NOT:
        s |= sg_buf_puts(o, "not (");
        s |= fmt(f->a, o);
        s |= sg_buf_putc(o, ')');
        return s ? SG_ENOMEM : SG_OK;
    case SG_FOP_VALUEPATH:
        s |= sg_buf_printf(o, "%s[", f->attr.path);
        s |= fmt(f->a, o);
        s |= sg_buf_putc(o, ']');
        if (f->b) {
            s |= sg_buf_putc(o, ':');
            s |= fmt(f->b, o);
        }
        return s ? SG_ENOMEM : SG_OK;
    default:
        break;
    }
    s |= sg_buf_printf(o, "%s %s", f->attr.path, op_name(f->op));
    switch (f->vtype) {
    case SG_VT_STRING:
        s |= sg_buf_putc(o, ' ');
        s |= sg_buf_json_str(o, f->str, f->len);
        break;
    case SG_VT_NUMBER:
        s |= sg_buf_printf(o, " %g", f->num);
        break;
    case SG_VT_BOOL:
        s |= sg_buf_puts(o, f->boolean ? " true" : " false");
        break;
    case SG_VT_NULL:
        s |= sg_buf_puts(o, " null");
        break;
    default:
        break;
    }
    return s ? SG_ENOMEM : SG_OK;
}

sg_status sg_filter_format(const sg_filter *f, sg_buf *out)
{
    return fmt(f, out);
}
