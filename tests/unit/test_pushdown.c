/*
** Filter pushdown property test: whatever storage_sqlite (or, with
** SG_PUSHDOWN_DSN, storage_postgres) compiles to SQL must give the same
** answers as the core's in-memory evaluator (core/src/filter.c).
**
** A deterministic generator builds a corpus of users and groups through the
** real core path (JSON document -> sg_resource_inbound -> sg_resource_set_id
** -> sg_resource_keys -> plugin create) and thousands of random filters
** (parsed by sg_filter_parse). For each filter the plugin's search (residual
** evaluated here as the core would, paging done here when the plugin leaves
** it) is compared with brute force: sg_filter_eval over every resource, paged
** the same way. Ids, their order and the totals must be identical; with a
** sort the order must be the core's (folded for case-insensitive strings,
** missing values last ascending and first descending, ties in creation
** order).
**
** SG_PROPERTY_ITERATIONS sets the number of filters (default 3000, 1000
** under AddressSanitizer), SG_PROPERTY_SEED the seed (default below). A
** failure prints both and the filter.
**
** With SG_PUSHDOWN_DSN set, the same corpus and comparisons run against
** storage_postgres instead (option dsn=$SG_PUSHDOWN_DSN), in a tenant of its
** own each run, so that reruns against one database do not clash. The plan
** checks at the end are SQLite's and are skipped there.
*/
#include <criterion/criterion.h>
#include <dirent.h>
#include <dlfcn.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "filter.h"
#include "fold.h"
#include "json.h"
#include "log.h"
#include "plugin.h"
#include "resource.h"
#include "schema.h"
#include "util.h"

#define ENT       "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#define USER_URN  "urn:ietf:params:scim:schemas:core:2.0:User"
#define GROUP_URN "urn:ietf:params:scim:schemas:core:2.0:Group"

#define NUSERS       300
#define NGROUPS      30
#define DEFAULT_SEED 0x5ca1ab1e2024ULL

/* The ASan allocator makes each case about three times dearer (SQLite's
 * JSON parser, jansson and the evaluator allocate a lot): fewer cases there,
 * so both runs stay at a few seconds. */
#if defined(__SANITIZE_ADDRESS__)
#define SG_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SG_UNDER_ASAN 1
#endif
#endif
#ifdef SG_UNDER_ASAN
#define DEFAULT_ITER 1000
#else
#define DEFAULT_ITER 3000
#endif

static const sg_filter_limits lim = {4096, 32};

/* ---- deterministic random numbers (splitmix64) --------------------------------- */

static uint64_t rng;

static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int below(int n)
{
    return (int)(rnd() % (uint64_t)n);
}

static int chance(int pct)
{
    return below(100) < pct;
}

#define PICK(a) ((a)[below((int)SG_ARRAY_LEN(a))])

/* ---- value pools: small, so that filters match some resources and not others - */

static const char *const P_USERNAME[] = {"alice", "Bob",     "ÅSA",   "åsa.berg", "ÖZTÜRK", "zoë",
                                         "a_b%c", "O'Brien", "émile", "Ünal",     "x\"q\\y"};
static const char *const P_EXTID[] = {"E100",  "e100", "E101", "X-200",
                                      "x-200", "Åb-1", "åb-1", "ext_%1"};
static const char *const P_DISPLAY[] = {"Alice Smith", "ALICE SMITH", "alice smith",
                                        "Bob Stone",   "Öztürk Ali",  "ÖZTÜRK ALI",
                                        "Zoë Ng",      "Émile Zola",  "Ünal Çelik"};
static const char *const P_TITLE[] = {"Engineer",   "engineer", "ENGINEER", "Sales Lead",
                                      "sales lead", "Ärztin",   "ärztin",   "Chief %_Officer"};
static const char *const P_GIVEN[] = {"Alice", "alice", "Åsa", "ÅSA", "Bob", "Zoë"};
static const char *const P_FAMILY[] = {"Smith", "SMITH", "Öztürk", "öztürk", "Berg"};
static const char *const P_EMAIL[] = {"alice@example.com", "Alice@Example.com", "bob@EXAMPLE.org",
                                      "åsa@exämple.se",    "ÅSA@EXÄMPLE.SE",    "shared@x.io",
                                      "SHARED@X.IO",       "a_b%c@x.io"};
static const char *const P_ETYPE[] = {"work", "Work", "home", "HOME", "other"};
static const char *const P_PHONE[] = {"+1 555 0100", "+1 555 0101", "+46 8 123"};
static const char *const P_PTYPE[] = {"work", "mobile", "Mobile"};
static const char *const P_URL[] = {"https://x.io/Alice", "https://x.io/alice",
                                    "https://x.io/50%_off", "http://y.org/ÅSA"};
static const char *const P_EMPNO[] = {"701984", "A-17", "a-17", "Ö-1"};
static const char *const P_DEPT[] = {"Sales", "SALES", "R&D", "r&d", "Ärende"};
static const char *const P_MGR[] = {"M-1", "m-1", "M-2", "Mgr_%"};
static const char *const P_CERT[] = {"QUJD", "qujd", "TUlJ"};
static const char *const P_PHOTO[] = {"https://p.io/A.png", "https://p.io/a.png",
                                      "https://p.io/B.jpg"};
static const char *const P_PHTYPE[] = {"photo", "Thumbnail", "thumbnail"};
static const char *const P_ROLE[] = {"Admin", "admin", "Reader"};
static const char *const P_GDISPLAY[] = {"Sales",     "SALES",  "sales team", "Öl-Gruppe",
                                         "ÖL-GRUPPE", "Admins", "admins"};
static const char *const P_GEXT[] = {"G-1", "g-1", "G-2"};
static const char *const P_NOMATCH[] = {"zz-nothing", "", "Q", "ÿÿ"};

/* ---- the corpus ------------------------------------------------------------------ */

typedef struct item {
    char id[40];
    sg_rtype type;
    int seq; /* creation order within its type */
    int64_t created_ms, modified_ms;
    char created[SG_TIME_MAX], modified[SG_TIME_MAX];
    json_t *doc; /* canonical body */
    char *json;  /* as stored */
    size_t json_len;
} item;

static struct world {
    sg_host host;
    const sg_storage_vtab *v;
    sg_storage *st;
    sg_conn *c;
    void *dl;
    char dir[256];
    const char *tenant;
    int postgres; /* storage_postgres (SG_PUSHDOWN_DSN) instead of storage_sqlite */
    item users[NUSERS], groups[NGROUPS];
    const item *by_id[NUSERS + NGROUPS]; /* sorted by id */
    unsigned char member[NGROUPS][NUSERS];
    char *user_names[NUSERS], *group_names[NGROUPS];
    /* SQL texts the plugin prepared (debug log), for EXPLAIN QUERY PLAN. */
    char sql[16][4096];
    int nsql;
} W;

__attribute__((format(printf, 3, 4))) static void test_log(sg_log_level level, const char *plugin,
                                                           const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (level == SG_LOG_DEBUG && !strncmp(msg, "prepared: ", 10)) {
        if (W.nsql < 16) snprintf(W.sql[W.nsql++], sizeof W.sql[0], "%s", msg + 10);
    } else if (level <= SG_LOG_WARN) {
        fprintf(stderr, "%s: %s\n", plugin, msg);
    }
}

static int cmp_item_id(const void *a, const void *b)
{
    return strcmp((*(const item *const *)a)->id, (*(const item *const *)b)->id);
}

static const item *find(const char *id)
{
    item key;
    snprintf(key.id, sizeof key.id, "%s", id);
    const item *kp = &key;
    const item *const *r = bsearch(&kp, W.by_id, NUSERS + NGROUPS, sizeof *W.by_id, cmp_item_id);
    return r ? *r : NULL;
}

static void open_store(void)
{
    char err[256];
    cr_assert(sg_fold_init());
    cr_assert(sg_schemas_load(SG_SOURCE_DIR "/schemas", err, sizeof err), "%s", err);
    W.host = *sg_host_table();
    W.host.log = test_log;
    const char *dsn = getenv("SG_PUSHDOWN_DSN");
    W.postgres = dsn && *dsn;
    W.dl = dlopen(W.postgres ? SG_PLUGIN_DIR "/sg_storage_postgres.so"
                             : SG_PLUGIN_DIR "/sg_storage_sqlite.so",
                  RTLD_NOW | RTLD_LOCAL);
    cr_assert(W.dl, "%s", dlerror());
    sg_plugin_init_fn init;
    void *entry = dlsym(W.dl, SG_PLUGIN_ENTRY);
    cr_assert(entry);
    memcpy(&init, &entry, sizeof init);
    sg_plugin_reg reg;
    cr_assert_eq(init(&W.host, &reg), SG_OK);
    W.v = reg.vtab;
    snprintf(W.dir, sizeof W.dir, "%s/sgpushdown.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert(mkdtemp(W.dir));
    sg_kv opts[] = {{"synchronous", "normal"}};
    if (W.postgres) opts[0] = (sg_kv){"dsn", dsn};
    sg_error e;
    sg_error_clear(&e);
    cr_assert_eq(W.v->open(&W.host, W.dir, opts, 1, &W.st, &e), SG_OK, "%s", e.detail);
    cr_assert_eq(W.v->connect(W.st, &W.c, &e), SG_OK, "%s", e.detail);
    /* A shared database keeps the tenants of earlier runs: a fresh one. */
    static char tenant[64], name[64];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(tenant, sizeof tenant, "t-pushdown-%ld-%lld-%09ld", (long)getpid(),
             (long long)now.tv_sec, now.tv_nsec);
    snprintf(name, sizeof name, "pushdown%s", tenant + 10);
    W.tenant = W.postgres ? tenant : "t-pushdown";
    sg_tenant t = {.id = W.tenant,
                   .name = W.postgres ? name : "pushdown",
                   .created = "2024-01-01T00:00:00.000Z"};
    cr_assert_eq(W.v->tenant_create(W.c, &t, &e), SG_OK, "%s", e.detail);
}

static void close_store(void)
{
    if (W.c) W.v->disconnect(W.c);
    if (W.st) W.v->close(W.st);
    W.c = NULL;
    W.st = NULL;
    if (W.dl) dlclose(W.dl);
    W.dl = NULL;
    for (int i = 0; i < NUSERS; i++) {
        json_decref(W.users[i].doc);
        free(W.users[i].json);
        free(W.user_names[i]);
    }
    for (int i = 0; i < NGROUPS; i++) {
        json_decref(W.groups[i].doc);
        free(W.groups[i].json);
        free(W.group_names[i]);
    }
    DIR *d = opendir(W.dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            char p[512];
            if (de->d_name[0] == '.') continue;
            snprintf(p, sizeof p, "%s/%s", W.dir, de->d_name);
            unlink(p);
        }
        closedir(d);
        rmdir(W.dir);
    }
    /* The library stays loaded: Criterion ends the process right after. */
}

/* Store a client document the way the core does on POST. */
static void create(item *it, sg_rtype type, json_t *doc)
{
    sg_inbound in;
    sg_error e;
    sg_error_clear(&e);
    const sg_rtdef *rt = sg_rt(type);
    char *text = json_dumps(doc, JSON_COMPACT);
    cr_assert_eq(sg_resource_inbound(rt, doc, &in, &e), SG_OK, "%s: %s", e.detail, text);
    free(text);
    json_decref(doc);
    cr_assert_eq(sg_resource_set_id(in.body, it->id), SG_OK);
    sg_keyset ks;
    cr_assert_eq(sg_resource_keys(rt, in.body, it->id, &ks), SG_OK);
    sg_buf b = {0};
    cr_assert_eq(sg_json_dump(in.body, &b), SG_OK);
    sg_format_time(it->created_ms, it->created);
    sg_format_time(it->modified_ms, it->modified);
    it->type = type;
    it->doc = json_incref(in.body);
    it->json_len = b.len;
    it->json = sg_buf_steal(&b);
    sg_resource r = {.type = type,
                     .id = it->id,
                     .version = 1,
                     .created = it->created,
                     .modified = it->modified,
                     .json = it->json,
                     .json_len = it->json_len,
                     .keys = ks.keys,
                     .nkeys = ks.n};
    sg_error_clear(&e);
    cr_assert_eq(W.v->create(W.c, W.tenant, &r, &e), SG_OK, "%s", e.detail);
    sg_keyset_free(&ks);
    sg_inbound_free(&in);
}

/* Change the case of ASCII letters and of Latin-1 letters (U+00C0..U+00FE,
 * two UTF-8 bytes C3 80..BE: upper and lower differ by 0x20). mode 0: as
 * is, 1: lower, 2: upper, 3: each letter at random. */
static void recase(const char *s, int mode, sg_buf *out)
{
    for (size_t i = 0; s[i]; i++) {
        unsigned char ch = (unsigned char)s[i];
        int up = mode == 2 || (mode == 3 && chance(50));
        if (mode == 0) {
            sg_buf_putc(out, (char)ch);
        } else if (ch >= 'a' && ch <= 'z') {
            sg_buf_putc(out, up ? (char)(ch - 32) : (char)ch);
        } else if (ch >= 'A' && ch <= 'Z') {
            sg_buf_putc(out, up ? (char)ch : (char)(ch + 32));
        } else if (ch == 0xc3 && s[i + 1]) {
            unsigned char n = (unsigned char)s[++i];
            int is_up = n >= 0x80 && n <= 0x9e && n != 0x97,
                is_low = n >= 0xa0 && n <= 0xbe && n != 0xb7;
            if (is_up && !up) n = (unsigned char)(n + 0x20);
            if (is_low && up) n = (unsigned char)(n - 0x20);
            sg_buf_putc(out, (char)ch);
            sg_buf_putc(out, (char)n);
        } else {
            sg_buf_putc(out, (char)ch);
        }
    }
}

static json_t *str_recased(const char *s, int mode)
{
    sg_buf b = {0};
    recase(s, mode, &b);
    json_t *v = json_string(b.data ? b.data : "");
    sg_buf_free(&b);
    return v;
}

static void make_users(void)
{
    for (int i = 0; i < NUSERS; i++) {
        item *it = &W.users[i];
        it->seq = i;
        /* Ids are case-exact: "aB-0001" and "Ab-0002" differ. */
        snprintf(it->id, sizeof it->id, "%c%c-%04d", "aAbBcC"[below(6)], "xXyY"[below(4)], i);
        it->created_ms = 1704067200000LL + (int64_t)i * 1000;
        it->modified_ms = it->created_ms + below(400) * 1000 + (chance(20) ? 0 : below(1000));
        json_t *d = json_object();
        json_object_set_new(d, "schemas", json_pack("[ss]", USER_URN, ENT));
        /* userName is unique (folded): a pool base, re-cased, plus the index. */
        sg_buf un = {0};
        recase(PICK(P_USERNAME), below(4), &un);
        sg_buf_printf(&un, "-%d", i);
        W.user_names[i] = strdup(un.data);
        json_object_set_new(d, "userName", json_string(un.data));
        sg_buf_free(&un);
        if (chance(80)) json_object_set_new(d, "externalId", json_string(PICK(P_EXTID)));
        if (chance(85)) json_object_set_new(d, "displayName", json_string(PICK(P_DISPLAY)));
        if (chance(60)) json_object_set_new(d, "title", json_string(PICK(P_TITLE)));
        int a = below(5);
        if (a < 2) json_object_set_new(d, "active", json_boolean(a));
        if (a == 2) json_object_set_new(d, "active", json_string(chance(50) ? "True" : "False"));
        if (chance(80)) {
            json_t *n = json_object();
            if (chance(85)) json_object_set_new(n, "givenName", json_string(PICK(P_GIVEN)));
            if (chance(85)) json_object_set_new(n, "familyName", json_string(PICK(P_FAMILY)));
            json_object_set_new(d, "name", n);
        }
        int ne = below(4), primary = chance(60) ? below(3) : -1;
        if (ne || chance(10)) {
            json_t *arr = json_array();
            for (int k = 0; k < ne; k++) {
                json_t *e = json_object();
                json_object_set_new(e, "value", str_recased(PICK(P_EMAIL), below(4) ? 0 : 3));
                if (chance(80)) json_object_set_new(e, "type", json_string(PICK(P_ETYPE)));
                if (k == primary)
                    json_object_set_new(e, "primary", json_true());
                else if (chance(30))
                    json_object_set_new(e, "primary", json_false());
                json_array_append_new(arr, e);
            }
            json_object_set_new(d, "emails", arr);
        }
        int np = below(3);
        if (np) {
            json_t *arr = json_array();
            for (int k = 0; k < np; k++) {
                json_t *e = json_object();
                json_object_set_new(e, "value", json_string(PICK(P_PHONE)));
                if (chance(70)) json_object_set_new(e, "type", json_string(PICK(P_PTYPE)));
                json_array_append_new(arr, e);
            }
            json_object_set_new(d, "phoneNumbers", arr);
        }
        if (chance(50)) json_object_set_new(d, "profileUrl", json_string(PICK(P_URL)));
        if (chance(30))
            json_object_set_new(d, "x509Certificates", json_pack("[{ss}]", "value", PICK(P_CERT)));
        int nph = below(3);
        if (nph) {
            json_t *arr = json_array();
            for (int k = 0; k < nph; k++) {
                json_t *e = json_pack("{ss}", "value", PICK(P_PHOTO));
                if (chance(70)) json_object_set_new(e, "type", json_string(PICK(P_PHTYPE)));
                json_array_append_new(arr, e);
            }
            json_object_set_new(d, "photos", arr);
        }
        if (chance(40)) {
            json_t *e = json_pack("{ss}", "value", PICK(P_ROLE));
            /* Entra's default mode sends "True"/"False". */
            if (chance(70))
                json_object_set_new(e, "primary",
                                    chance(50) ? json_string(chance(50) ? "True" : "False")
                                               : json_boolean(chance(50)));
            json_object_set_new(d, "roles", json_pack("[o]", e));
        }
        if (chance(70)) {
            json_t *x = json_object();
            if (chance(70)) json_object_set_new(x, "employeeNumber", json_string(PICK(P_EMPNO)));
            if (chance(70)) json_object_set_new(x, "department", json_string(PICK(P_DEPT)));
            if (chance(50))
                json_object_set_new(x, "manager",
                                    chance(70) ? json_pack("{ss}", "value", PICK(P_MGR))
                                               : json_string(PICK(P_MGR)));
            json_object_set_new(d, ENT, x);
        }
        create(it, SG_RT_USER, d);
    }
}

static void make_groups(void)
{
    for (int g = 0; g < NGROUPS; g++) {
        item *it = &W.groups[g];
        it->seq = g;
        snprintf(it->id, sizeof it->id, "%c-%04d", "gG"[below(2)], 1000 + g);
        it->created_ms = 1704067200000LL + (int64_t)(NUSERS + g) * 1000;
        it->modified_ms = it->created_ms + below(400) * 1000;
        /* displayName is unique for groups (folded): base, re-cased, index. */
        sg_buf dn = {0};
        recase(PICK(P_GDISPLAY), below(4), &dn);
        sg_buf_printf(&dn, " %d", g);
        W.group_names[g] = strdup(dn.data);
        json_t *d = json_pack("{s[s]ss}", "schemas", GROUP_URN, "displayName", dn.data);
        sg_buf_free(&dn);
        if (chance(60)) json_object_set_new(d, "externalId", json_string(PICK(P_GEXT)));
        create(it, SG_RT_GROUP, d);
        int n = below(21);
        sg_member m[20];
        for (int k = 0; k < n; k++) {
            int u = below(NUSERS);
            m[k] = (sg_member){.value = W.users[u].id, .display = chance(50) ? "x" : NULL};
            W.member[g][u] = 1;
        }
        sg_error e;
        sg_error_clear(&e);
        if (n) cr_assert_eq(W.v->members_add(W.c, W.tenant, it->id, m, (size_t)n, &e), SG_OK);
    }
}

static void build_world(void)
{
    open_store();
    sg_error e;
    sg_error_clear(&e);
    cr_assert_eq(W.v->begin(W.c, SG_TXN_WRITE, &e), SG_OK);
    make_users();
    make_groups();
    cr_assert_eq(W.v->commit(W.c, &e), SG_OK, "%s", e.detail);
    for (int i = 0; i < NUSERS; i++) W.by_id[i] = &W.users[i];
    for (int i = 0; i < NGROUPS; i++) W.by_id[NUSERS + i] = &W.groups[i];
    qsort(W.by_id, NUSERS + NGROUPS, sizeof *W.by_id, cmp_item_id);
}

/* ---- the evaluator's side ------------------------------------------------------------ */

static sg_status has_member(void *ud, const char *group_id, const char *member_id, bool *has)
{
    (void)ud;
    const item *g = find(group_id);
    *has = false;
    if (!g || g->type != SG_RT_GROUP) return SG_OK;
    if (!member_id) { /* "any member": members pr */
        for (size_t u = 0; u < NUSERS && !*has; u++) *has = W.member[g->seq][u];
        return SG_OK;
    }
    const item *u = find(member_id);
    *has = u && u->type == SG_RT_USER && W.member[g->seq][u->seq];
    return SG_OK;
}

static bool eval_on(const sg_filter *f, const item *it)
{
    sg_resource row = {.type = it->type,
                       .id = it->id,
                       .version = 1,
                       .created = it->created,
                       .modified = it->modified,
                       .json = it->json,
                       .json_len = it->json_len};
    sg_eval_ctx ctx = {sg_rt(it->type), it->doc, &row, has_member, NULL};
    bool m = false;
    cr_assert_eq(sg_filter_eval(f, &ctx, &m), SG_OK);
    return m;
}

/* ---- filter generation ----------------------------------------------------------------- */

/* K_CISTR: a case-insensitive string without index keys (stays residual). */
enum kind { K_STR, K_CISTR, K_BIN, K_BOOL, K_TIME, K_ID, K_USERNAME, K_GROUPNAME, K_MEMBER };

typedef struct spec {
    const char *path; /* as written at the top level */
    const char *sub;  /* the name inside its value path, or NULL */
    enum kind kind;
    const char *const *pool;
    size_t npool;
} spec;

#define POOL(p) p, SG_ARRAY_LEN(p)

static const spec USER_SPECS[] = {
    {"userName", NULL, K_USERNAME, NULL, 0},
    {"externalId", NULL, K_STR, POOL(P_EXTID)},
    {"displayName", NULL, K_STR, POOL(P_DISPLAY)},
    {"title", NULL, K_CISTR, POOL(P_TITLE)},
    {"active", NULL, K_BOOL, NULL, 0},
    {"name.givenName", NULL, K_CISTR, POOL(P_GIVEN)},
    {"name.familyName", NULL, K_CISTR, POOL(P_FAMILY)},
    {"emails.value", "value", K_STR, POOL(P_EMAIL)},
    {"emails", NULL, K_STR, POOL(P_EMAIL)}, /* the value sub-attribute */
    {"emails.type", "type", K_CISTR, POOL(P_ETYPE)},
    {"emails.primary", "primary", K_BOOL, NULL, 0},
    {"phoneNumbers.value", "value", K_CISTR, POOL(P_PHONE)},
    {"phoneNumbers.type", "type", K_CISTR, POOL(P_PTYPE)},
    {"profileUrl", NULL, K_STR, POOL(P_URL)},
    {ENT ":employeeNumber", NULL, K_CISTR, POOL(P_EMPNO)},
    {ENT ":department", NULL, K_CISTR, POOL(P_DEPT)},
    {ENT ":manager.value", NULL, K_STR, POOL(P_MGR)},
    {ENT ":manager", NULL, K_STR, POOL(P_MGR)},
    {"x509Certificates.value", "value", K_BIN, POOL(P_CERT)},
    {"photos.value", "value", K_STR, POOL(P_PHOTO)},
    {"photos.type", "type", K_CISTR, POOL(P_PHTYPE)},
    {"roles.value", "value", K_CISTR, POOL(P_ROLE)},
    {"roles.primary", "primary", K_BOOL, NULL, 0},
    {"id", NULL, K_ID, NULL, 0},
    {"meta.lastModified", NULL, K_TIME, NULL, 0},
    {"meta.created", NULL, K_TIME, NULL, 0},
};

static const spec GROUP_SPECS[] = {
    {"displayName", NULL, K_GROUPNAME, NULL, 0},
    {"externalId", NULL, K_STR, POOL(P_GEXT)},
    {"id", NULL, K_ID, NULL, 0},
    {"meta.lastModified", NULL, K_TIME, NULL, 0},
    {"members", NULL, K_MEMBER, NULL, 0},
    {"members.value", NULL, K_MEMBER, NULL, 0},
    {"members.display", NULL, K_STR, POOL(P_NOMATCH)},
};

/* Multi-valued attributes for value paths, with their sub-attributes (as
 * indexes into USER_SPECS). */
static const struct vpdef {
    const char *name;
    int subs[3];
    int nsubs;
} VPS[] = {
    {"emails", {7, 9, 10}, 3}, {"phoneNumbers", {11, 12, 0}, 2},    {"photos", {19, 20, 0}, 2},
    {"roles", {21, 22, 0}, 2}, {"x509Certificates", {18, 0, 0}, 1},
};

static const char *const OPS[] = {"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"};

/* A random operator allowed for the kind. */
static const char *pick_op(enum kind k)
{
    switch (k) {
    case K_BIN:
    case K_BOOL:
        return (const char *[]){"eq", "ne", "pr"}[below(3)];
    case K_MEMBER:
        return (const char *[]){"eq", "eq", "ne", "pr"}[below(4)];
    case K_TIME:
        /* co/sw/ew need a whole timestamp and are false: rare. */
        return chance(5) ? (const char *[]){"co", "sw", "ew"}[below(3)]
                         : (const char *[]){"eq", "ne", "gt", "ge", "lt", "le", "pr"}[below(7)];
    default:
        return PICK(OPS);
    }
}

/* Byte offsets of UTF-8 character starts in s, and the end. */
static int char_starts(const char *s, int *pos, int max)
{
    int n = 0, i = 0;
    for (; s[i] && n < max - 1; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80) pos[n++] = i;
    pos[n++] = (int)strlen(s);
    return n;
}

/* A literal for `op` drawn from a corpus value: a slice for co/sw/ew, re-cased
 * at random, sometimes one that matches nothing. */
static void string_literal(const char *v, const char *op, sg_buf *out)
{
    if (chance(6)) v = PICK(P_NOMATCH);
    int pos[128], n = char_starts(v, pos, 128);
    int from = 0, to = n - 1; /* indexes into pos */
    if (n > 1 && !strcmp(op, "co")) {
        from = below(n - 1);
        to = from + 1 + below(n - 1 - from);
    } else if (n > 1 && !strcmp(op, "sw")) {
        to = 1 + below(n - 1);
    } else if (n > 1 && !strcmp(op, "ew")) {
        from = below(n - 1);
    }
    char slice[256];
    snprintf(slice, sizeof slice, "%.*s", pos[to] - pos[from], v + pos[from]);
    sg_buf b = {0};
    int r = below(10);
    recase(slice, r < 5 ? 0 : r < 7 ? 1 : r < 9 ? 2 : 3, &b);
    sg_buf_json_str(out, b.data ? b.data : "", b.len);
    sg_buf_free(&b);
}

static void time_literal(sg_buf *out, sg_rtype type)
{
    const item *it = type == SG_RT_USER ? &W.users[below(NUSERS)] : &W.groups[below(NGROUPS)];
    int64_t ms = (chance(50) ? it->modified_ms : it->created_ms) + (chance(70) ? 0 : below(3) - 1);
    char t[SG_TIME_MAX];
    if (chance(70)) {
        sg_format_time(ms, t);
        sg_buf_printf(out, "\"%s\"", t);
    } else {
        /* The same instant at +02:00. */
        time_t secs = (time_t)(ms / 1000) + 7200;
        struct tm tm;
        gmtime_r(&secs, &tm);
        strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
        sg_buf_printf(out, "\"%s.%03d+02:00\"", t, (int)(ms % 1000));
    }
}

/* `attr op literal` for one spec; `name` is how the attribute is written. */
static void gen_cmp(sg_buf *b, const spec *s, const char *name, sg_rtype type)
{
    const char *op = pick_op(s->kind);
    sg_buf_printf(b, "%s %s", name, op);
    if (!strcmp(op, "pr")) return;
    sg_buf_putc(b, ' ');
    switch (s->kind) {
    case K_BOOL:
        sg_buf_puts(b, (const char *[]){"true", "false", "True", "FALSE"}[below(4)]);
        return;
    case K_TIME:
        time_literal(b, type);
        return;
    case K_ID: {
        const item *it = type == SG_RT_USER ? &W.users[below(NUSERS)] : &W.groups[below(NGROUPS)];
        string_literal(it->id, op, b);
        return;
    }
    case K_USERNAME:
        string_literal(W.user_names[below(NUSERS)], op, b);
        return;
    case K_GROUPNAME:
        string_literal(chance(50) ? W.group_names[below(NGROUPS)] : PICK(P_GDISPLAY), op, b);
        return;
    case K_MEMBER:
        if (chance(10))
            sg_buf_puts(b, "\"nobody\"");
        else
            sg_buf_printf(b, "\"%s\"", W.users[below(NUSERS)].id);
        return;
    default:
        string_literal(s->pool[below((int)s->npool)], op, b);
        return;
    }
}

static void gen_inner(sg_buf *b, const struct vpdef *vp, int depth)
{
    int r = below(100);
    if (depth <= 0 || r < 55) {
        const spec *s = &USER_SPECS[vp->subs[below(vp->nsubs)]];
        char full[96];
        snprintf(full, sizeof full, "%s.%s", vp->name, s->sub);
        gen_cmp(b, s, chance(80) ? s->sub : full, SG_RT_USER);
    } else if (r < 75) {
        gen_inner(b, vp, depth - 1);
        sg_buf_puts(b, " and ");
        gen_inner(b, vp, depth - 1);
    } else if (r < 90) {
        gen_inner(b, vp, depth - 1);
        sg_buf_puts(b, " or ");
        gen_inner(b, vp, depth - 1);
    } else {
        sg_buf_puts(b, "not (");
        gen_inner(b, vp, depth - 1);
        sg_buf_puts(b, ")");
    }
}

static void gen_valuepath(sg_buf *b, sg_rtype type)
{
    if (type == SG_RT_GROUP) {
        const char *u = W.users[below(NUSERS)].id;
        if (chance(70))
            sg_buf_printf(b, "members[value eq \"%s\"]", u);
        else
            sg_buf_printf(b, "members[value eq \"%s\" or value eq \"%s\"]", u,
                          W.users[below(NUSERS)].id);
        return;
    }
    const struct vpdef *vp = &VPS[below((int)SG_ARRAY_LEN(VPS))];
    sg_buf_printf(b, "%s[", vp->name);
    gen_inner(b, vp, 2);
    sg_buf_putc(b, ']');
    if (chance(35)) {
        const spec *s = &USER_SPECS[vp->subs[below(vp->nsubs)]];
        sg_buf_putc(b, '.');
        gen_cmp(b, s, s->sub, SG_RT_USER);
    }
}

static void gen_leaf(sg_buf *b, sg_rtype type)
{
    if (chance(15)) {
        gen_valuepath(b, type);
        return;
    }
    const spec *s;
    if (type == SG_RT_USER) {
        s = &USER_SPECS[below((int)SG_ARRAY_LEN(USER_SPECS))];
        /* Fewer conditions that can only be residual: most should compile. */
        if (s->kind == K_CISTR && chance(60)) s = &USER_SPECS[below((int)SG_ARRAY_LEN(USER_SPECS))];
    } else
        s = &GROUP_SPECS[below((int)SG_ARRAY_LEN(GROUP_SPECS))];
    /* members pr is left out: the evaluator cannot tell it (no has_member
     * question asks "any member?") and storage always compiles it. */
    if (s->kind == K_MEMBER) {
        sg_buf_printf(b, "%s %s ", s->path, chance(70) ? "eq" : "ne");
        if (chance(10))
            sg_buf_puts(b, "\"nobody\"");
        else
            sg_buf_printf(b, "\"%s\"", W.users[below(NUSERS)].id);
        return;
    }
    gen_cmp(b, s, s->path, type);
}

static void gen_expr(sg_buf *b, sg_rtype type, int depth)
{
    int r = below(100);
    if (depth <= 0 || r < 40) {
        gen_leaf(b, type);
    } else if (r < 60) {
        gen_expr(b, type, depth - 1);
        sg_buf_puts(b, " and ");
        gen_expr(b, type, depth - 1);
    } else if (r < 78) {
        gen_expr(b, type, depth - 1);
        sg_buf_puts(b, " or ");
        gen_expr(b, type, depth - 1);
    } else if (r < 90) {
        sg_buf_puts(b, "not (");
        gen_expr(b, type, depth - 1);
        sg_buf_puts(b, ")");
    } else {
        sg_buf_puts(b, "(");
        gen_expr(b, type, depth - 1);
        sg_buf_puts(b, ")");
    }
}

/* ---- sorting as the core does it -------------------------------------------------------- */

typedef struct sortdef {
    const char *path;
    int sorted; /* what storage_sqlite (and storage_postgres) reports */
} sortdef;

static const sortdef USER_SORTS[] = {
    {"userName", 1},           {"displayName", 1},
    {"externalId", 1},         {"id", 1},
    {"meta.created", 1},       {"meta.lastModified", 1},
    {"profileUrl", 1},         {"active", 1},
    {ENT ":manager.value", 1}, {"title", 0},
    {"name.givenName", 0},     {"emails", 0},
    {ENT ":department", 0},
};
static const sortdef GROUP_SORTS[] = {
    {"displayName", 1}, {"externalId", 1}, {"id", 1}, {"meta.lastModified", 1}};

typedef struct skey {
    int kind; /* 0 missing, 1 text, 2 number */
    char *text;
    double num;
    int seq;
} skey;

/* The value a resource sorts by: the text (folded unless case-exact) or a
 * boolean as 0/1; multi-valued attributes are left to the core. */
static skey key_of(const item *it, const sg_attr_ref *a)
{
    skey k = {.seq = it->seq};
    const json_t *v = NULL;
    json_t *tmp = NULL;
    if (a->flags & SG_ATTR_META) {
        v = tmp = json_string(!strcmp(a->path, "id")             ? it->id
                              : !strcmp(a->path, "meta.created") ? it->created
                                                                 : it->modified);
    } else {
        const json_t *cont = it->doc;
        if (!strncmp(a->path, ENT, strlen(ENT))) cont = json_object_get(it->doc, ENT);
        v = json_object_get(cont, a->name);
        if (a->sub) v = json_object_get(v, a->sub);
    }
    if (json_is_string(v)) {
        sg_buf b = {0};
        const char *s = json_string_value(v);
        if (a->flags & SG_ATTR_CASE_EXACT)
            sg_buf_puts(&b, s);
        else
            sg_fold(s, strlen(s), &b);
        k.kind = 1;
        k.text = b.data ? sg_buf_steal(&b) : strdup("");
    } else if (json_is_boolean(v)) {
        k.kind = 2;
        k.num = json_is_true(v);
    }
    json_decref(tmp);
    return k;
}

static int g_desc;

static int cmp_skey(const void *pa, const void *pb)
{
    const skey *a = pa, *b = pb;
    int r;
    if (a->kind == 0 || b->kind == 0)
        r = (a->kind == 0) - (b->kind == 0);
    else if (a->kind == 1)
        r = strcmp(a->text, b->text);
    else
        r = a->num < b->num ? -1 : a->num > b->num;
    if (g_desc) r = -r;
    return r ? r : a->seq - b->seq;
}

/* ---- one check -------------------------------------------------------------------------- */

#define MAXROWS (NUSERS + NGROUPS)

typedef struct got {
    const sg_search_out *out;
    const item *rows[MAXROWS];
    int n, candidates;
    char why[256]; /* first inconsistency in the rows themselves */
} got;

static sg_status collect(void *ud, const sg_resource *row)
{
    got *g = ud;
    const item *it = find(row->id);
    g->candidates++;
    if (!it || it->json_len != row->json_len || memcmp(it->json, row->json, row->json_len) ||
        strcmp(it->created, row->created) || strcmp(it->modified, row->modified) ||
        row->version != 1) {
        if (!g->why[0])
            snprintf(g->why, sizeof g->why, "row %s differs from what was stored", row->id);
        return SG_OK;
    }
    if (g->out->residual && !eval_on(g->out->residual, it)) return SG_OK;
    if (g->n < MAXROWS) g->rows[g->n++] = it;
    return SG_OK;
}

static char *ids_of(const item *const *v, int n)
{
    sg_buf b = {0};
    for (int i = 0; i < n && i < 40; i++) sg_buf_printf(&b, "%s%s", i ? " " : "", v[i]->id);
    if (n > 40) sg_buf_printf(&b, " ... (%d)", n);
    return b.data ? sg_buf_steal(&b) : strdup("(none)");
}

static uint64_t g_seed;
static long g_iter;

static int run_one(sg_rtype type, const char *text)
{
    sg_filter_tree *t;
    sg_error e;
    sg_error_clear(&e);
    cr_assert_eq(sg_filter_parse(sg_rt(type), text, strlen(text), &lim, &t, &e), SG_OK,
                 "seed %#llx iteration %ld: generated an invalid filter: %s\n  %s",
                 (unsigned long long)g_seed, g_iter, e.detail, text);
    const sg_filter *root = sg_filter_root(t);
    const item *all = type == SG_RT_USER ? W.users : W.groups;
    int nall = type == SG_RT_USER ? NUSERS : NGROUPS;

    /* Paging and sorting as a client might ask. */
    sg_query q = {.type = type, .filter = root, .start_index = 1, .count = 1000};
    int p = below(10);
    if (p < 3) {
        q.start_index = 1 + below(20);
        q.count = below(12);
    } else if (p < 4) {
        q.count = 0;
    } else if (p < 5) {
        q.start_index = 1 + below(nall + 5);
    }
    sg_attr_ref sref;
    const sortdef *sd = NULL;
    if (chance(35)) {
        sd = type == SG_RT_USER ? &USER_SORTS[below((int)SG_ARRAY_LEN(USER_SORTS))]
                                : &GROUP_SORTS[below((int)SG_ARRAY_LEN(GROUP_SORTS))];
        sg_resolved r;
        cr_assert(sg_schema_resolve(sg_rt(type), sd->path, strlen(sd->path), &r));
        const sg_attr *sub = r.sub                           ? r.sub
                             : r.attr->type == SG_AT_COMPLEX ? r.attr->value_sub
                                                             : NULL;
        sg_attr_ref_fill(&sref, r.attr, sub);
        q.sort = &sref;
        q.sort_descending = chance(50);
    }

    /* (a) the plugin, with the residual evaluated here. */
    sg_search_out out = {0};
    static got g;
    memset(&g, 0, sizeof g);
    g.out = &out;
    sg_error_clear(&e);
    sg_status st = W.v->search(W.c, W.tenant, &q, collect, &g, &out, &e);
    cr_assert_eq(st, SG_OK, "seed %#llx iteration %ld: search failed: %s\n  %s",
                 (unsigned long long)g_seed, g_iter, e.detail, text);
    cr_assert(!g.why[0], "seed %#llx iteration %ld: %s\n  %s", (unsigned long long)g_seed, g_iter,
              g.why, text);
    int residual_ok =
        !out.residual || out.residual == root ||
        (root->op == SG_FOP_AND && (out.residual == root->a || out.residual == root->b));
    cr_assert(residual_ok,
              "seed %#llx iteration %ld: residual is not the root or a child of a "
              "top-level AND\n  %s",
              (unsigned long long)g_seed, g_iter, text);
    if (sd)
        cr_assert_eq(out.sorted, sd->sorted, "sorted by %s: %d", sd->path, out.sorted);
    else
        cr_assert_eq(out.sorted, 1);

    /* (b) brute force. */
    static const item *want[MAXROWS];
    static skey keys[MAXROWS];
    int nw = 0;
    for (int i = 0; i < nall; i++)
        if (eval_on(root, &all[i])) want[nw++] = &all[i];
    int64_t total = out.residual ? g.n : out.total;
    cr_assert_eq(total, nw,
                 "seed %#llx iteration %ld: total %lld, want %d\n  %s\n  got  %s\n  want %s",
                 (unsigned long long)g_seed, g_iter, (long long)total, nw, text,
                 ids_of(g.rows, g.n), ids_of(want, nw));

    const item *const *gv = g.rows;
    int ng = g.n, from = 0, to = nw;
    if (q.sort && out.sorted) {
        for (int i = 0; i < nw; i++) keys[i] = key_of(want[i], q.sort);
        g_desc = q.sort_descending;
        qsort(keys, (size_t)nw, sizeof *keys, cmp_skey);
        for (int i = 0; i < nw; i++) {
            want[i] = &all[keys[i].seq];
            free(keys[i].text);
        }
    }
    if (!q.sort || out.sorted) {
        /* The page: the plugin's when it paged, else cut here. */
        from = q.start_index - 1 < nw ? (int)q.start_index - 1 : nw;
        to = q.count < nw - from ? from + (int)q.count : nw;
        if (out.residual) {
            int gf = q.start_index - 1 < ng ? (int)q.start_index - 1 : ng;
            int gt = q.count < ng - gf ? gf + (int)q.count : ng;
            gv += gf;
            ng = gt - gf;
        }
    }
    /* Else every match comes back in creation order and the core sorts. */
    int same = ng == to - from;
    for (int i = 0; same && i < ng; i++) same = gv[i] == want[from + i];
    if (!same) {
        char *a = ids_of(gv, ng), *b = ids_of(want + from, to - from);
        sg_buf f = {0};
        sg_filter_format(root, &f);
        cr_assert_fail("seed %#llx iteration %ld: rows differ (start %lld count %lld sort %s%s, "
                       "residual %s)\n  %s\n  parsed %s\n  got  %s\n  want %s",
                       (unsigned long long)g_seed, g_iter, (long long)q.start_index,
                       (long long)q.count, sd ? sd->path : "-", q.sort_descending ? " desc" : "",
                       out.residual ? (out.residual == root ? "root" : "child") : "none", text,
                       f.data, a, b);
    }
    sg_filter_free(t);
    return !out.residual ? 0 : out.residual == root ? 2 : 1;
}

static void pushdown_setup(void)
{
    memset(&W, 0, sizeof W);
    const char *s = getenv("SG_PROPERTY_SEED");
    g_seed = s && *s ? strtoull(s, NULL, 0) : DEFAULT_SEED;
    rng = g_seed;
    build_world();
}

TestSuite(pushdown, .init = pushdown_setup, .fini = close_store);

Test(pushdown, sql_agrees_with_the_evaluator)
{
    const char *it = getenv("SG_PROPERTY_ITERATIONS");
    long n = it && *it ? strtol(it, NULL, 10) : DEFAULT_ITER;
    long kinds[3] = {0}, users = 0;
    sg_error e;
    sg_error_clear(&e);
    cr_assert_eq(W.v->begin(W.c, SG_TXN_READ, &e), SG_OK);
    for (g_iter = 0; g_iter < n; g_iter++) {
        sg_rtype type = chance(85) ? SG_RT_USER : SG_RT_GROUP;
        sg_buf b = {0};
        gen_expr(&b, type, 3);
        users += type == SG_RT_USER;
        kinds[run_one(type, b.data)]++;
        sg_buf_free(&b);
    }
    W.v->rollback(W.c);
    cr_log_info("seed %#llx: %ld filters (%ld on users): %ld compiled, %ld with an AND child "
                "residual, %ld with the root residual",
                (unsigned long long)g_seed, n, users, kinds[0], kinds[1], kinds[2]);
    /* Most filters must compile: a plugin that compiles nothing passes the
     * comparison trivially. */
    cr_assert(kinds[0] * 2 > n, "only %ld of %ld filters compiled", kinds[0], n);
}

/* A leaf the plugin always compiles (an index key), or any leaf. */
static void gen_keyed_leaf(sg_buf *b, sg_rtype type)
{
    if (chance(50)) {
        gen_leaf(b, type);
        return;
    }
    sg_buf_puts(b, type == SG_RT_USER ? "userName eq " : "displayName eq ");
    const char *v =
        type == SG_RT_USER ? W.user_names[below(NUSERS)] : W.group_names[below(NGROUPS)];
    sg_buf_json_str(b, v, strlen(v));
}

/* `leaf and|or (…)` nested `depth` deep, a `not` now and then. */
static void gen_nested(sg_buf *b, sg_rtype type, int depth)
{
    if (depth <= 0) {
        gen_keyed_leaf(b, type);
        return;
    }
    bool negate = chance(20);
    gen_keyed_leaf(b, type);
    sg_buf_puts(b, chance(50) ? " and " : " or ");
    sg_buf_puts(b, negate ? "not (" : "(");
    gen_nested(b, type, depth - 1);
    sg_buf_putc(b, ')');
}

/* Deep nesting (up to the parser's limit) and long and/or chains: the SQL
 * for them must neither fail (SQLite's parser stack holds about a hundred
 * levels) nor disagree with the evaluator; what the plugin leaves out is
 * the residual. */
Test(pushdown, deep_and_long_filters_agree_and_never_fail)
{
    sg_error e;
    sg_error_clear(&e);
    cr_assert_eq(W.v->begin(W.c, SG_TXN_READ, &e), SG_OK);
    for (g_iter = 0; g_iter < 120; g_iter++) {
        sg_rtype type = chance(85) ? SG_RT_USER : SG_RT_GROUP;
        sg_buf b = {0};
        if (g_iter % 2) {
            gen_nested(&b, type, 8 + (int)(g_iter % 22)); /* 8..29 levels, + a value path */
        } else {
            int n = 20 + below(120);
            for (int i = 0; i < n; i++) {
                if (i) sg_buf_puts(&b, chance(50) ? " and " : " or ");
                gen_keyed_leaf(&b, type);
            }
        }
        if (b.len <= lim.max_length) run_one(type, b.data);
        sg_buf_free(&b);
    }
    W.v->rollback(W.c);
}

/* Filters known to compile completely, so the comparison above really
 * exercises the SQL. */
Test(pushdown, these_compile_without_residual)
{
    static const char *const users[] = {
        "userName eq \"alice-1\"",
        "userName sw \"ali\" and not (userName ew \"7\")",
        "userName co \"%\" or userName co \"_\"",
        "userName gt \"m\" and userName le \"özz\"",
        "displayName ne \"alice smith\"",
        "externalId sw \"E1\"",
        "externalId ge \"X\"",
        "emails.value co \"EXAMPLE\"",
        "emails[value ew \".se\"]",
        "emails[primary eq true]",
        "emails[primary eq false or primary eq true]",
        "active eq true or active ne false",
        "title pr and not (name.givenName pr)",
        "profileUrl co \"%_\"",
        "profileUrl sw \"https://x.io/A\"",
        "photos[value ew \".png\" and not (value co \"/a\")]",
        ENT ":manager.value eq \"M-1\"",
        ENT ":manager lt \"M\"",
        ENT ":department pr",
        "x509Certificates.value eq \"QUJD\"",
        "roles[primary eq true]",
        "id sw \"a\" or id gt \"c\"",
        "meta.lastModified gt \"2024-01-01T00:02:00Z\"",
        "meta.created ne \"2024-01-01T00:00:05.000Z\"",
        "emails pr",
        "phoneNumbers.type pr",
    };
    static const char *const groups[] = {
        "displayName sw \"s\"",
        "members eq \"nobody\" or externalId eq \"G-1\"",
        "not (members.value ne \"nobody\")",
    };
    sg_error e;
    sg_error_clear(&e);
    cr_assert_eq(W.v->begin(W.c, SG_TXN_READ, &e), SG_OK);
    for (size_t i = 0; i < SG_ARRAY_LEN(users) + SG_ARRAY_LEN(groups); i++) {
        int u = i < SG_ARRAY_LEN(users);
        const char *text = u ? users[i] : groups[i - SG_ARRAY_LEN(users)];
        cr_assert_not(run_one(u ? SG_RT_USER : SG_RT_GROUP, text), "residual for %s", text);
    }
    W.v->rollback(W.c);
}

/* ---- plans: index-driven filters stay index look-ups ------------------------------------- */

/* libsqlite3 is already mapped (the plugin needs it); reach it by name. */
typedef struct sqlite_api {
    __typeof__(sqlite3_open_v2) *open_v2;
    __typeof__(sqlite3_prepare_v2) *prepare_v2;
    __typeof__(sqlite3_step) *step;
    __typeof__(sqlite3_column_text) *column_text;
    __typeof__(sqlite3_finalize) *finalize;
    __typeof__(sqlite3_close) *close;
} sqlite_api;

static void *sym(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    cr_assert(p, "%s: %s", name, dlerror());
    return p;
}

static void plan_of(const sqlite_api *api, sqlite3 *db, const char *sql, sg_buf *out)
{
    char eqp[4200];
    snprintf(eqp, sizeof eqp, "EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *s;
    cr_assert_eq(api->prepare_v2(db, eqp, -1, &s, NULL), SQLITE_OK, "%s", sql);
    while (api->step(s) == SQLITE_ROW)
        sg_buf_printf(out, "%s\n", (const char *)api->column_text(s, 3));
    api->finalize(s);
}

Test(pushdown, index_driven_filters_are_index_lookups)
{
    if (W.postgres) cr_skip_test("SQLite's query plans only");
    void *lib = dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_NOLOAD);
    cr_assert(lib, "libsqlite3 is not loaded: %s", dlerror());
    sqlite_api api;
    *(void **)&api.open_v2 = sym(lib, "sqlite3_open_v2");
    *(void **)&api.prepare_v2 = sym(lib, "sqlite3_prepare_v2");
    *(void **)&api.step = sym(lib, "sqlite3_step");
    *(void **)&api.column_text = sym(lib, "sqlite3_column_text");
    *(void **)&api.finalize = sym(lib, "sqlite3_finalize");
    *(void **)&api.close = sym(lib, "sqlite3_close");
    char path[300];
    snprintf(path, sizeof path, "%s/scimgate.db", W.dir);
    sqlite3 *db;
    cr_assert_eq(api.open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    char f[8][160];
    int u = 0;
    while (strpbrk(W.user_names[u], "\"\\")) u++;
    snprintf(f[0], sizeof f[0], "userName eq \"%s\"", W.user_names[u]);
    snprintf(f[1], sizeof f[1], "externalId eq \"E100\"");
    snprintf(f[2], sizeof f[2], "emails.value eq \"shared@x.io\"");
    snprintf(f[3], sizeof f[3], "id eq \"%s\"", W.users[7].id);
    snprintf(f[4], sizeof f[4], "members.value eq \"%s\"", W.users[7].id);
    snprintf(f[5], sizeof f[5], "userName eq \"%s\" and active eq true", W.user_names[u]);
    snprintf(f[6], sizeof f[6], "userName sw \"al\" and " ENT ":manager.value eq \"M-1\"");
    snprintf(f[7], sizeof f[7], "emails[value eq \"shared@x.io\"] or externalId eq \"E100\"");
    for (int i = 0; i < 8; i++) {
        sg_rtype type = i == 4 ? SG_RT_GROUP : SG_RT_USER;
        sg_filter_tree *t;
        sg_error e;
        sg_error_clear(&e);
        cr_assert_eq(sg_filter_parse(sg_rt(type), f[i], strlen(f[i]), &lim, &t, &e), SG_OK,
                     "%s: %s", f[i], e.detail);
        sg_query q = {.type = type, .filter = sg_filter_root(t), .start_index = 1, .count = 0};
        static got g;
        sg_search_out out;
        W.nsql = 0;
        /* count = 0 runs the count statement, a short page only the rows. */
        for (int run = 0; run < 2; run++, q.count = 10) {
            memset(&g, 0, sizeof g);
            g.out = &out;
            cr_assert_eq(W.v->search(W.c, W.tenant, &q, collect, &g, &out, &e), SG_OK);
            cr_assert_null(out.residual, "%s", f[i]);
        }
        /* Shapes seen before (the attribute is a parameter) come from the
         * statement cache: their plans were checked already. */
        cr_assert(W.nsql == 2 || W.nsql == 0, "%s: %d statements prepared", f[i], W.nsql);
        for (int k = 0; k < W.nsql; k++) {
            sg_buf plan = {0};
            plan_of(&api, db, W.sql[k], &plan);
            cr_log_info("%s\n%s\n%s", f[i], W.sql[k], plan.data);
            /* The resources table is reached by rowid or by (tid, id), never
             * scanned; no index range covers a whole tenant. */
            cr_assert(!strstr(plan.data, "SCAN r") && !strstr(plan.data, "resources_list") &&
                          (strstr(plan.data, "SEARCH r USING INTEGER PRIMARY KEY") ||
                           strstr(plan.data, "SEARCH r USING INDEX sqlite_autoindex_resources_1")),
                      "%s\n%s\n%s", f[i], W.sql[k], plan.data);
            sg_buf_free(&plan);
        }
        sg_filter_free(t);
    }
    api.close(db);
    dlclose(lib);
}
