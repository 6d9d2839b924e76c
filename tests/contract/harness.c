/*
** Storage contract suite: the harness (host table, plugin loading, per-test
** store, fixtures, row collection, filter builders). The tests themselves
** are in contract.c.
*/
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "harness.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the host table --------------------------------------------------------------- */

static void *h_alloc(size_t n)
{
    return malloc(n);
}

static void *h_realloc(void *p, size_t n)
{
    return realloc(p, n);
}

static void h_free(void *p)
{
    free(p);
}

__attribute__((format(printf, 3, 4))) static void h_log(sg_log_level level, const char *plugin,
                                                        const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    const char *v = getenv("SG_CONTRACT_VERBOSE");
    if (level > SG_LOG_WARN && !(v && *v == '1')) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%s] %s: ", level <= SG_LOG_DEBUG ? names[level] : "?", plugin);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static sg_status h_buf_append(sg_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return SG_ENOMEM;
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return SG_OK;
}

static int64_t h_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void h_format_time(int64_t ms, char out[SG_TIME_MAX])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, SG_TIME_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, SG_TIME_MAX - n, ".%03dZ", (int)(ms % 1000));
}

/* Storage never calls the token services; these only fill the table. */
static sg_status h_token_lookup(sg_conn *c, const char *id, sg_token_info *out, sg_error *err)
{
    return sg_error_set(err, SG_ENOTIMPL, NULL, "not in the contract suite");
}

static void h_token_hash(const void *secret, size_t len, unsigned char out[SG_HASH_LEN])
{
    memset(out, 0, SG_HASH_LEN);
}

static int h_ct_equal(const void *a, const void *b, size_t n)
{
    return memcmp(a, b, n) == 0;
}

static void h_token_touch(const char *id, const char *addr)
{
}

const sg_host H = {
    .abi_major = SG_ABI_MAJOR,
    .abi_minor = SG_ABI_MINOR,
    .size = sizeof(sg_host),
    .alloc = h_alloc,
    .realloc = h_realloc,
    .free = h_free,
    .log = h_log,
    .buf_append = h_buf_append,
    .now_ms = h_now_ms,
    .format_time = h_format_time,
    .token_lookup = h_token_lookup,
    .token_hash = h_token_hash,
    .ct_equal = h_ct_equal,
    .token_touch = h_token_touch,
};

/* ---- per-test state --------------------------------------------------------------- */

sg_plugin_reg REG;
sg_plugin_init_fn INIT;
const sg_storage_vtab *V;
char DATA_DIR[256];
sg_storage *S;
sg_conn *C;
sg_error E;
int IS_SQLITE;

static char nonce[32];
static char names[512][160];
static int nnames;

/* Test bodies run in their own process (Criterion forks), so the library
 * stays loaded for the process's life: no dlclose, whose unmapping would
 * only hide leak stacks. */
static void load_plugin(void)
{
    const char *path = getenv("SG_CONTRACT_PLUGIN");
    cr_assert(path && *path, "set SG_CONTRACT_PLUGIN to the storage plugin .so to test");
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    cr_assert(lib, "dlopen %s: %s", path, dlerror());
    *(void **)&INIT = dlsym(lib, SG_PLUGIN_ENTRY);
    cr_assert(INIT, "%s does not export %s", path, SG_PLUGIN_ENTRY);
    memset(&REG, 0, sizeof REG);
    cr_assert_eq(INIT(&H, &REG), SG_OK, "sg_plugin_init failed");
    cr_assert_eq(REG.kind, SG_PLUGIN_STORAGE, "not a storage plugin");
    V = REG.vtab;
    cr_assert(V, "no vtable");
    IS_SQLITE = V->name && !strcmp(V->name, "sqlite");
}

void opts_load(opts *o, const char *extra_key, const char *extra_value)
{
    memset(o, 0, sizeof *o);
    const char *env = getenv("SG_CONTRACT_OPTS");
    o->mem = strdup(env ? env : "");
    cr_assert(o->mem);
    for (char *p = o->mem, *next; p; p = next) {
        next = strchr(p, ';');
        if (next) *next++ = '\0';
        if (!*p) continue;
        char *eq = strchr(p, '=');
        cr_assert(eq, "SG_CONTRACT_OPTS: \"%s\" is not k=v", p);
        *eq = '\0';
        if (extra_key && !strcmp(p, extra_key)) continue;
        cr_assert(o->n < 31, "SG_CONTRACT_OPTS: too many options");
        o->kv[o->n++] = (sg_kv){p, eq + 1};
    }
    if (extra_key) o->kv[o->n++] = (sg_kv){extra_key, extra_value};
}

void opts_free(opts *o)
{
    free(o->mem);
    o->mem = NULL;
}

static void rm_rf(const char *path);

/* Criterion skips .fini when .init fails: remove the directory first. */
static void open_store(void)
{
    opts o;
    opts_load(&o, NULL, NULL);
    sg_error_clear(&E);
    sg_status st = V->open(&H, DATA_DIR, o.kv, o.n, &S, &E);
    opts_free(&o);
    if (st != SG_OK) rm_rf(DATA_DIR);
    cr_assert_eq(st, SG_OK, "open: %d (%s)", (int)st, E.detail);
    st = V->connect(S, &C, &E);
    if (st != SG_OK) {
        V->close(S);
        S = NULL;
        rm_rf(DATA_DIR);
    }
    cr_assert_eq(st, SG_OK, "connect: %d (%s)", (int)st, E.detail);
}

void store_close(void)
{
    if (C) V->disconnect(C);
    if (S) V->close(S);
    C = NULL;
    S = NULL;
}

void store_reopen(void)
{
    store_close();
    open_store();
}

static void lock_store(int how);

void setup(void)
{
    load_plugin();
    snprintf(DATA_DIR, sizeof DATA_DIR, "%s/sgcontract.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert(mkdtemp(DATA_DIR), "mkdtemp failed");
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    snprintf(nonce, sizeof nonce, "t%x%lx", (unsigned)getpid(), (unsigned long)t.tv_nsec);
    nnames = 0;
    open_store();
    lock_store(LOCK_SH);
}

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[512];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

void teardown(void)
{
    store_close();
    if (DATA_DIR[0]) rm_rf(DATA_DIR);
}

static pthread_mutex_t names_mu = PTHREAD_MUTEX_INITIALIZER;

const char *nm(const char *base)
{
    pthread_mutex_lock(&names_mu);
    int i = nnames < 512 ? nnames++ : -1;
    pthread_mutex_unlock(&names_mu);
    cr_assert(i >= 0, "too many names in one test");
    char *s = names[i];
    snprintf(s, sizeof names[0], "%s-%s", nonce, base);
    return s;
}

int is_mine(const char *name)
{
    size_t n = strlen(nonce);
    return name && !strncmp(name, nonce, n) && name[n] == '-';
}

/* ---- fixtures ------------------------------------------------------------------------ */

const char *mk_tenant(const char *base)
{
    char name[128];
    snprintf(name, sizeof name, "name-%s", base);
    sg_tenant t = {.id = nm(base), .name = nm(name), .created = "2024-01-01T00:00:00.000Z"};
    OK(V->tenant_create(C, &t, &E));
    return t.id;
}

void ts(int sec, char out[SG_TIME_MAX])
{
    h_format_time(1704067200000LL + (int64_t)sec * 1000, out);
}

void res_init(res *x, sg_rtype type, const char *id_base, int created_sec)
{
    memset(x, 0, sizeof *x);
    snprintf(x->id, sizeof x->id, "%s", nm(id_base));
    snprintf(x->json, sizeof x->json, "{\"id\":\"%s\",\"n\":%d}", x->id, created_sec);
    ts(created_sec, x->created);
    ts(created_sec, x->modified);
    x->r = (sg_resource){
        .type = type,
        .id = x->id,
        .version = 1,
        .created = x->created,
        .modified = x->modified,
        .json = x->json,
        .json_len = strlen(x->json),
        .keys = x->keys,
    };
}

void res_body(res *x, const char *json)
{
    cr_assert(strlen(json) < sizeof x->json, "body too long for the fixture");
    snprintf(x->json, sizeof x->json, "%s", json);
    x->r.json_len = strlen(x->json);
}

void res_key(res *x, const char *attr, const char *value, int unique, int case_exact)
{
    size_t i = x->r.nkeys++;
    cr_assert(i < 8);
    snprintf(x->attr[i], sizeof x->attr[i], "%s", attr);
    snprintf(x->value[i], sizeof x->value[i], "%s", value);
    snprintf(x->folded[i], sizeof x->folded[i], "%s", value);
    if (!case_exact)
        for (char *p = x->folded[i]; *p; p++)
            if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    x->keys[i] = (sg_key){x->attr[i], x->value[i], x->folded[i], unique ? SG_KEY_UNIQUE : 0};
}

void res_user(res *x, const char *id_base, const char *user_name, int created_sec)
{
    res_init(x, SG_RT_USER, id_base, created_sec);
    if (user_name) res_key(x, "userName", user_name, 1, 0);
}

void res_group(res *x, const char *id_base, const char *display, int created_sec)
{
    res_init(x, SG_RT_GROUP, id_base, created_sec);
    if (display) res_key(x, "displayName", display, 0, 0);
}

const char *mk_user(const char *t, const char *id_base, const char *user_name, int sec)
{
    res x;
    res_user(&x, id_base, user_name, sec);
    OK(V->create(C, t, &x.r, &E));
    return nm(id_base); /* same text as x.id, kept alive in the name arena */
}

const char *mk_group(const char *t, const char *id_base, const char *display, int sec)
{
    res x;
    res_group(&x, id_base, display, sec);
    OK(V->create(C, t, &x.r, &E));
    return nm(id_base);
}

/* ---- rows --------------------------------------------------------------------------- */

void rows_reset(rows *r)
{
    memset(r, 0, sizeof *r);
}

sg_status rows_fn(void *ud, const sg_resource *row)
{
    rows *r = ud;
    r->calls++;
    cr_assert(row->id && row->json && row->created && row->modified, "row with NULL fields");
    cr_assert_eq(row->json_len, strlen(row->json), "json_len does not match the text");
    if (r->n < ROWS_MAX) {
        int i = r->n++;
        snprintf(r->id[i], sizeof r->id[i], "%s", row->id);
        r->type[i] = row->type;
        r->version[i] = row->version;
        snprintf(r->created[i], sizeof r->created[i], "%s", row->created);
        snprintf(r->modified[i], sizeof r->modified[i], "%s", row->modified);
        snprintf(r->json[i], sizeof r->json[i], "%.*s", (int)row->json_len, row->json);
    }
    if (r->stop_after && r->calls >= r->stop_after) return r->stop_status;
    return SG_OK;
}

int rows_has(const rows *r, const char *id)
{
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->id[i], id)) return 1;
    return 0;
}

void rows_expect(const rows *r, const char *const *ids)
{
    int n = 0;
    for (; ids[n]; n++) {
        cr_assert(n < r->n, "row %d missing: want %s, got only %d rows", n, ids[n], r->n);
        cr_assert_str_eq(r->id[n], ids[n], "row %d: got %s, want %s", n, r->id[n], ids[n]);
    }
    cr_assert_eq(r->n, n, "got %d rows, want %d", r->n, n);
}

void rows_expect_set(const rows *r, const char *const *ids)
{
    int n = 0;
    for (; ids[n]; n++) cr_assert(rows_has(r, ids[n]), "row %s missing", ids[n]);
    cr_assert_eq(r->n, n, "got %d rows, want %d", r->n, n);
}

/* ---- filters -------------------------------------------------------------------------- */

#define USER_URN  "urn:ietf:params:scim:schemas:core:2.0:User"
#define GROUP_URN "urn:ietf:params:scim:schemas:core:2.0:Group"

const sg_attr_ref A_USERNAME = {USER_URN,   "userName",   NULL,
                                "userName", SG_AT_STRING, SG_ATTR_INDEXED};
const sg_attr_ref A_EXTERNALID = {USER_URN,     "externalId", NULL,
                                  "externalId", SG_AT_STRING, SG_ATTR_INDEXED | SG_ATTR_CASE_EXACT};
const sg_attr_ref A_EMAILS_VALUE = {USER_URN,       "emails",     "value",
                                    "emails.value", SG_AT_STRING, SG_ATTR_INDEXED | SG_ATTR_MULTI};
const sg_attr_ref A_EMAILS_TYPE = {USER_URN,      "emails",     "type",
                                   "emails.type", SG_AT_STRING, SG_ATTR_MULTI};
const sg_attr_ref A_EMAILS = {USER_URN, "emails", NULL, "emails", SG_AT_COMPLEX, SG_ATTR_MULTI};
const sg_attr_ref A_ID = {USER_URN, "id",         NULL,
                          "id",     SG_AT_STRING, SG_ATTR_META | SG_ATTR_CASE_EXACT};
const sg_attr_ref A_LASTMOD = {USER_URN,       "meta",      "lastModified", "meta.lastModified",
                               SG_AT_DATETIME, SG_ATTR_META};
const sg_attr_ref A_CREATED = {USER_URN,       "meta",         "created",
                               "meta.created", SG_AT_DATETIME, SG_ATTR_META};
const sg_attr_ref A_MEMBERS = {GROUP_URN,    "members",
                               "value",      "members.value",
                               SG_AT_STRING, SG_ATTR_MEMBERS | SG_ATTR_MULTI | SG_ATTR_CASE_EXACT};
const sg_attr_ref A_DISPLAYNAME = {GROUP_URN,     "displayName", NULL,
                                   "displayName", SG_AT_STRING,  SG_ATTR_INDEXED};
const sg_attr_ref A_TITLE = {USER_URN, "title", NULL, "title", SG_AT_STRING, 0};

static sg_filter fnodes[256];
static int nfnodes;

/* Filter nodes live in a per-test arena; a test building many may reset it
 * between searches. */
void harness_reset_filters(void)
{
    nfnodes = 0;
}

static sg_filter *node(sg_fop op)
{
    cr_assert(nfnodes < 256, "too many filter nodes");
    sg_filter *f = &fnodes[nfnodes++];
    memset(f, 0, sizeof *f);
    f->op = op;
    return f;
}

const sg_filter *f_cmp(sg_fop op, const sg_attr_ref *a, const char *literal)
{
    sg_filter *f = node(op);
    f->attr = *a;
    if (literal) {
        f->vtype = SG_VT_STRING;
        f->str = literal;
        f->len = strlen(literal);
    }
    return f;
}

const sg_filter *f_eq(const sg_attr_ref *a, const char *literal)
{
    return f_cmp(SG_FOP_EQ, a, literal);
}

const sg_filter *f_pr(const sg_attr_ref *a)
{
    return f_cmp(SG_FOP_PR, a, NULL);
}

const sg_filter *f_and(const sg_filter *a, const sg_filter *b)
{
    sg_filter *f = node(SG_FOP_AND);
    f->a = a;
    f->b = b;
    return f;
}

const sg_filter *f_or(const sg_filter *a, const sg_filter *b)
{
    sg_filter *f = node(SG_FOP_OR);
    f->a = a;
    f->b = b;
    return f;
}

const sg_filter *f_not(const sg_filter *a)
{
    sg_filter *f = node(SG_FOP_NOT);
    f->a = a;
    return f;
}

const sg_filter *f_vp(const sg_attr_ref *a, const sg_filter *elem, const sg_filter *sub)
{
    sg_filter *f = node(SG_FOP_VALUEPATH);
    f->attr = *a;
    f->a = elem;
    f->b = sub;
    return f;
}

const sg_filter *f_num(sg_fop op, const sg_attr_ref *a, double v)
{
    sg_filter *f = node(op);
    f->attr = *a;
    f->vtype = SG_VT_NUMBER;
    f->num = v;
    return f;
}

const sg_filter *f_bool(sg_fop op, const sg_attr_ref *a, int v)
{
    sg_filter *f = node(op);
    f->attr = *a;
    f->vtype = SG_VT_BOOL;
    f->boolean = v != 0;
    return f;
}

sg_query q_of(sg_rtype type, const sg_filter *f)
{
    return (sg_query){.type = type, .filter = f, .start_index = 1, .count = 100};
}

sg_status search(const char *tenant, const sg_query *q, rows *r, sg_search_out *out)
{
    rows_reset(r);
    memset(out, 0, sizeof *out);
    out->total = -12345;
    sg_error_clear(&E);
    sg_status st = V->search(C, tenant, q, rows_fn, r, out, &E);
    if (st == SG_OK && out->residual) {
        const sg_filter *f = q->filter;
        int ok = out->residual == f ||
                 (f && f->op == SG_FOP_AND && (out->residual == f->a || out->residual == f->b));
        cr_assert(ok, "residual is neither the root nor a child of a top-level AND");
    }
    return st;
}

/*
** On a shared database every test holds a shared lock on one file for its
** whole process; a test whose calls span every tenant turns it into an
** exclusive one (alone_with_the_store), so no other test runs beside it.
** The lock goes with the test's process.
*/
static int store_lock_fd = -1;

static void lock_store(int how)
{
    if (IS_SQLITE) return;
    if (store_lock_fd < 0) {
        char path[128];
        snprintf(path, sizeof path, "/tmp/scimgate-contract-%u.lock", (unsigned)getuid());
        store_lock_fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
        cr_assert(store_lock_fd >= 0, "%s: %s", path, strerror(errno));
    }
    cr_assert_eq(flock(store_lock_fd, how), 0, "flock: %s", strerror(errno));
}

void alone_with_the_store(void)
{
    lock_store(LOCK_EX);
}
