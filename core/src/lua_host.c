#include "lua_host.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua-cjson.h>
#include <lua.h>
#include <lualib.h>

#include "log.h"
#include "lua_deliver.h"
#include "lua_json.h"
#include "lua_module.h"
#include "metrics.h"
#include "util.h"

/* ---- the script set -------------------------------------------------------- */

/* One script file as served: its text is what every thread compiles. */
typedef struct script {
    char *key; /* "mapping", "lib/util", "tenants/<t>/mapping" */
    char *path;
    char *text; /* NULL: never loaded cleanly (then `error` says why) */
    size_t len;
    char *error; /* last load error ("file:line: message"), or NULL */
    int64_t mtime_ns;
    int64_t size;
    uint64_t ino;     /* an editor that saves by rename changes it */
    uint64_t version; /* generation in which `text` was taken */
} script;

typedef struct snapshot {
    uint64_t gen;
    script *s;
    size_t n;
    atomic_int refs;
} snapshot;

static struct {
    sg_lua_config cfg;
    sg_deliver_config deliver;
    pthread_mutex_t mu; /* guards `cur`, serialises reloads */
    snapshot *cur;
    atomic_uint_least64_t gen;
    pthread_t watcher;
    bool running;
    pthread_cond_t cv;
    bool stop;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void snap_release(snapshot *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1) return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->s[i].key);
        free(s->s[i].path);
        free(s->s[i].text);
        free(s->s[i].error);
    }
    free(s->s);
    free(s);
}

static snapshot *snap_acquire(void)
{
    pthread_mutex_lock(&g.mu);
    snapshot *s = g.cur;
    if (s) atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&g.mu);
    return s;
}

static const script *snap_find(const snapshot *s, const char *key)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (!strcmp(s->s[i].key, key)) return &s->s[i];
    return NULL;
}

/* ---- the sandbox ------------------------------------------------------------- */

typedef struct alloc_state {
    size_t used;
    size_t limit;
} alloc_state;

/* The state's allocator: refuses past the memory cap, so a runaway script
 * meets a Lua memory error instead of the process's limits. */
static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    alloc_state *a = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        a->used -= old;
        free(ptr);
        return NULL;
    }
    if (nsize > old && a->used + (nsize - old) > a->limit) return NULL;
    void *p = realloc(ptr, nsize);
    if (p) a->used = a->used - old + nsize;
    return p;
}

typedef struct state_info {
    alloc_state alloc;
    int64_t budget; /* instructions left in the current hook call */
    snapshot *snap; /* the snapshot `require` reads from */
} state_info;

#define HOOK_STEP 1000

static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    state_info *si = *(state_info **)lua_getextraspace(L);
    si->budget -= HOOK_STEP;
    if (si->budget < 0) luaL_error(L, "instruction budget exceeded");
}

static const char *const base_allowed[] = {
    "assert", "error",  "ipairs",   "next",         "pairs",        "pcall",
    "xpcall", "select", "tonumber", "tostring",     "type",         "rawequal",
    "rawget", "rawlen", "rawset",   "setmetatable", "getmetatable", "_VERSION",
};

/* print(...) -> the log, at info. [-n, +0, e] */
static int l_print(lua_State *L)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    sg_log(SG_LOG_INFO, "lua", "%s", lua_tostring(L, -1));
    return 0;
}

static int load_chunk(lua_State *L, const script *sc);

/* require(name): modules from lib/ only, loaded as text in their own
 * environment and cached per state. [-1, +1, e] */
static int l_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.'))
            return luaL_error(L, "require: bad module name \"%s\"", name);
    lua_getfield(L, LUA_REGISTRYINDEX, "scimgate.loaded");
    if (lua_getfield(L, -1, name) != LUA_TNIL) return 1;
    lua_pop(L, 1);
    state_info *si = *(state_info **)lua_getextraspace(L);
    char key[256];
    snprintf(key, sizeof key, "lib/%s", name);
    const script *sc = snap_find(si->snap, key);
    if (!sc || !sc->text) return luaL_error(L, "require: no module \"%s\" in lib/", name);
    if (load_chunk(L, sc) != LUA_OK) return lua_error(L);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name); /* loaded[name] = module */
    return 1;
}

/* Build the shared, read-only base every chunk's environment inherits:
 * registry["scimgate.base"]. [-0, +0, m] */
static void build_base(lua_State *L)
{
    int top = lua_gettop(L);
    luaL_requiref(L, "_G", luaopen_base, 1);       /* top+1 */
    luaL_requiref(L, "string", luaopen_string, 0); /* top+2 */
    luaL_requiref(L, "table", luaopen_table, 0);   /* top+3 */
    luaL_requiref(L, "math", luaopen_math, 0);     /* top+4 */
    luaL_requiref(L, "utf8", luaopen_utf8, 0);     /* top+5 */
    luaL_requiref(L, "cjson", luaopen_cjson, 0);   /* top+6 */
    int G = top + 1, str = top + 2;
    /* string.dump would hand out bytecode; strings' metatable reaches the
     * library table itself, so remove it there, and lock that metatable. */
    lua_pushnil(L);
    lua_setfield(L, str, "dump");
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    lua_newtable(L); /* the base */
    for (size_t i = 0; i < SG_ARRAY_LEN(base_allowed); i++) {
        lua_getfield(L, G, base_allowed[i]);
        lua_setfield(L, -2, base_allowed[i]);
    }
    static const char *const libs[] = {"string", "table", "math", "utf8", "cjson"};
    for (int i = 0; i < 5; i++) {
        lua_pushvalue(L, str + i);
        lua_setfield(L, -2, libs[i]);
    }
    lua_pushcfunction(L, l_print);
    lua_setfield(L, -2, "print");
    lua_pushcfunction(L, l_require);
    lua_setfield(L, -2, "require");
    sg_lua_push_module(L, &g.deliver);
    lua_setfield(L, -2, "scimgate");
    lua_setfield(L, LUA_REGISTRYINDEX, "scimgate.base");
    /* Empty the real globals table: chunks only see their environments. */
    lua_pushnil(L);
    while (lua_next(L, G)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, G);
    }
    lua_settop(L, top);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "scimgate.loaded");
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "scimgate.modules");
}

/* Compile a script as text in a fresh environment whose reads fall back to
 * the base. [-0, +1, -]: the function, or the error message. */
static int load_chunk(lua_State *L, const script *sc)
{
    char name[300];
    snprintf(name, sizeof name, "@%s", sc->path);
    int rc = luaL_loadbufferx(L, sc->text, sc->len, name, "t");
    if (rc != LUA_OK) return rc;
    lua_newtable(L); /* env */
    lua_newtable(L); /* its metatable */
    lua_getfield(L, LUA_REGISTRYINDEX, "scimgate.base");
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setupvalue(L, -2, 1); /* _ENV */
    return LUA_OK;
}

static lua_State *new_state(state_info *si)
{
    lua_State *L = lua_newstate(capped_alloc, &si->alloc);
    if (!L) return NULL;
    *(state_info **)lua_getextraspace(L) = si;
    return L;
}

static int build_base_protected(lua_State *L)
{
    build_base(L);
    return 0;
}

/* Message handler: the error with a traceback. [-1, +1, m] */
static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = luaL_tolstring(L, 1, NULL);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Call the function below `nargs` arguments with the budget, in protected
 * mode. [-(nargs+1), +nres or +1 (error message), -] */
static int call(lua_State *L, state_info *si, int nargs, int nres, int64_t budget)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    si->budget = budget;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_STEP);
    int rc = lua_pcall(L, nargs, nres, base);
    lua_sethook(L, NULL, 0, 0);
    lua_remove(L, base);
    if (rc != LUA_OK) lua_gc(L, LUA_GCCOLLECT); /* after a memory error, make room */
    return rc;
}

/* ---- validating a script (in a scratch state) ------------------------------------- */

static const char *const hooks_of[][2] = {
    {"mapping", "inbound"},  {"mapping", "outbound"},   {"groups", "accept"},
    {"invite", "on_invite"}, {"changes", "on_changes"},
};

/* The base name of a key: "tenants/t/mapping" -> "mapping". */
static const char *base_name(const char *key)
{
    const char *slash = strrchr(key, '/');
    return slash ? slash + 1 : key;
}

/* Load `text` as `key` in a fresh sandbox and check what it returns.
 * Returns a malloc'd error message, or NULL when it loads cleanly. */
static char *validate(const script *candidate, snapshot *snap)
{
    state_info si = {.alloc = {0, (size_t)g.cfg.memory}, .snap = snap};
    lua_State *L = new_state(&si);
    if (!L) return strdup("cannot create a Lua state");
    char *err = NULL;
    lua_pushcfunction(L, build_base_protected);
    if (call(L, &si, 0, 0, g.cfg.instructions * 10) != LUA_OK) {
        err = strdup(lua_tostring(L, -1));
        goto out;
    }
    if (!strncmp(candidate->key, "lib/", 4)) {
        if (load_chunk(L, candidate) != LUA_OK) err = strdup(lua_tostring(L, -1));
        goto out; /* modules run when required */
    }
    if (load_chunk(L, candidate) != LUA_OK || call(L, &si, 0, 1, g.cfg.instructions) != LUA_OK) {
        err = strdup(lua_tostring(L, -1));
        goto out;
    }
    if (!lua_istable(L, -1)) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s: the script must return a table of functions",
                 candidate->path);
        err = strdup(msg);
        goto out;
    }
    const char *bn = base_name(candidate->key);
    for (size_t i = 0; i < SG_ARRAY_LEN(hooks_of); i++) {
        if (strcmp(hooks_of[i][0], bn)) continue;
        int t = lua_getfield(L, -1, hooks_of[i][1]);
        lua_pop(L, 1);
        if (t != LUA_TNIL && t != LUA_TFUNCTION) {
            char msg[300];
            snprintf(msg, sizeof msg, "%s: %s must be a function", candidate->path, hooks_of[i][1]);
            err = strdup(msg);
            goto out;
        }
    }
out:
    lua_close(L);
    return err;
}

/* ---- scanning and publishing ---------------------------------------------------- */

typedef struct found {
    char *key, *path;
    int64_t mtime_ns, size;
    uint64_t ino;
} found;

typedef struct found_list {
    found *f;
    size_t n, cap;
} found_list;

static void add_found(found_list *l, const char *key, const char *path, const struct stat *st)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        found *p = realloc(l->f, cap * sizeof *p);
        if (!p) return;
        l->f = p;
        l->cap = cap;
    }
    l->f[l->n++] = (found){sg_xstrdup(key), sg_xstrdup(path),
                           (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec,
                           (int64_t)st->st_size, (uint64_t)st->st_ino};
}

/* Every *.lua of `dir` as "<prefix><name>". */
static void scan_dir(found_list *l, const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".lua") || e->d_name[0] == '.') continue;
        char path[1024], key[512];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        snprintf(key, sizeof key, "%s%.*s", prefix, (int)(n - 4), e->d_name);
        add_found(l, key, path, &st);
    }
    closedir(d);
}

static void scan(found_list *l)
{
    char dir[1024], prefix[300];
    scan_dir(l, g.cfg.dir, "");
    snprintf(dir, sizeof dir, "%s/lib", g.cfg.dir);
    scan_dir(l, dir, "lib/");
    snprintf(dir, sizeof dir, "%s/tenants", g.cfg.dir);
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char sub[1300];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        snprintf(prefix, sizeof prefix, "tenants/%.200s/", e->d_name);
        scan_dir(l, sub, prefix);
    }
    closedir(d);
}

static void found_free(found_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->f[i].key);
        free(l->f[i].path);
    }
    free(l->f);
}

/*
** Is the file on disk still the text being served? Size, mtime and inode
** decide, except for a file written in the last two seconds: timestamps
** can be coarser than two quick saves, and inode numbers are reused, so
** its content is compared too.
*/
static bool same_file(const script *o, const found *f)
{
    if (o->mtime_ns != f->mtime_ns || o->size != f->size || o->ino != f->ino) return false;
    if (sg_now_ms() * 1000000 - f->mtime_ns > 2000000000LL) return true;
    char *text;
    size_t len;
    if (!sg_read_file(f->path, &text, &len)) return false;
    bool same = o->text && len == o->len && !memcmp(text, o->text, len);
    free(text);
    return same;
}

/* Build the next snapshot from what is on disk: unchanged files keep their
 * text; changed ones are validated first and keep the old text on failure.
 * Returns true when anything changed. Called with g.mu held. */
static bool refresh_locked(void)
{
    found_list l = {0};
    scan(&l);
    snapshot *old = g.cur;
    bool changed = !old || old->n != l.n;
    for (size_t i = 0; !changed && i < l.n; i++) {
        const script *o = snap_find(old, l.f[i].key);
        changed = !o || !same_file(o, &l.f[i]) || strcmp(o->path, l.f[i].path);
    }
    if (!changed) {
        found_free(&l);
        return false;
    }
    snapshot *next = calloc(1, sizeof *next);
    if (!next) {
        found_free(&l);
        return false;
    }
    next->gen = (old ? old->gen : 0) + 1;
    next->s = calloc(l.n ? l.n : 1, sizeof *next->s);
    atomic_init(&next->refs, 1);
    /* First take the texts, so that validation's `require` sees the new
     * lib/ modules, then validate the files that changed. */
    for (size_t i = 0; i < l.n; i++) {
        script *sc = &next->s[next->n++];
        const script *o = snap_find(old, l.f[i].key);
        sc->key = sg_xstrdup(l.f[i].key);
        sc->path = sg_xstrdup(l.f[i].path);
        sc->mtime_ns = l.f[i].mtime_ns;
        sc->size = l.f[i].size;
        sc->ino = l.f[i].ino;
        bool same = o && same_file(o, &l.f[i]);
        if (same) {
            sc->text = o->text ? sg_xstrdup(o->text) : NULL;
            sc->len = o->len;
            sc->error = o->error ? sg_xstrdup(o->error) : NULL;
            sc->version = o->version;
            continue;
        }
        char *text;
        size_t len;
        if (!sg_read_file(sc->path, &text, &len)) {
            char msg[1200];
            snprintf(msg, sizeof msg, "%s: cannot read: %s", sc->path, strerror(errno));
            sc->error = sg_xstrdup(msg);
        } else {
            sc->text = text;
            sc->len = len;
            sc->version = next->gen;
            sc->error = NULL;
            /* Mark for validation by keeping the old text aside. */
        }
    }
    for (size_t i = 0; i < next->n; i++) {
        script *sc = &next->s[i];
        if (sc->version != next->gen || !sc->text) continue;
        char *err = validate(sc, next);
        if (!err) {
            sg_log(SG_LOG_INFO, "lua", "loaded %s (generation %llu)", sc->path,
                   (unsigned long long)next->gen);
            continue;
        }
        /* Keep serving the previous version, if there is one. */
        sg_log(SG_LOG_ERROR, "lua", "script %s failed to load, %s: %s", sc->path,
               snap_find(old, sc->key) && snap_find(old, sc->key)->text
                   ? "the previous version keeps serving"
                   : "its hooks fail until it is fixed",
               err);
        const script *o = snap_find(old, sc->key);
        free(sc->text);
        sc->text = o && o->text ? sg_xstrdup(o->text) : NULL;
        sc->len = o ? o->len : 0;
        sc->version = o ? o->version : 0;
        sc->error = err;
    }
    g.cur = next;
    atomic_store(&g.gen, next->gen);
    snap_release(old);
    found_free(&l);
    return true;
}

static void *watcher(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g.mu);
    while (!g.stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&g.cv, &g.mu, &ts);
        if (!g.stop) refresh_locked();
    }
    pthread_mutex_unlock(&g.mu);
    return NULL;
}

bool sg_scripts_start(const sg_lua_config *cfg, char *err, size_t errlen)
{
    g.cfg = *cfg;
    g.cfg.dir = sg_xstrdup(cfg->dir);
    g.deliver = (sg_deliver_config){cfg->spool_dir, 10000, 60000};
    struct stat st;
    if (stat(cfg->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "scripts directory %s does not exist", cfg->dir);
        return false;
    }
    pthread_mutex_lock(&g.mu);
    refresh_locked();
    if (!g.cur) {
        /* An empty directory still gets a (empty) generation 1. */
        g.cur = calloc(1, sizeof *g.cur);
        if (g.cur) {
            g.cur->gen = 1;
            atomic_init(&g.cur->refs, 1);
            atomic_store(&g.gen, 1);
        }
    }
    g.stop = false;
    g.running = pthread_create(&g.watcher, NULL, watcher, NULL) == 0;
    pthread_mutex_unlock(&g.mu);
    if (!g.running) {
        snprintf(err, errlen, "cannot start the script watcher");
        return false;
    }
    return true;
}

void sg_scripts_stop(void)
{
    pthread_mutex_lock(&g.mu);
    g.stop = true;
    pthread_cond_signal(&g.cv);
    pthread_mutex_unlock(&g.mu);
    if (g.running) pthread_join(g.watcher, NULL);
    g.running = false;
    pthread_mutex_lock(&g.mu);
    snap_release(g.cur);
    g.cur = NULL;
    pthread_mutex_unlock(&g.mu);
    free((char *)g.cfg.dir);
    g.cfg.dir = NULL;
}

uint64_t sg_scripts_reload(void)
{
    pthread_mutex_lock(&g.mu);
    refresh_locked();
    uint64_t gen = g.cur ? g.cur->gen : 0;
    pthread_mutex_unlock(&g.mu);
    return gen;
}

void sg_scripts_status(sg_buf *out)
{
    snapshot *s = snap_acquire();
    sg_buf_printf(out, "{\"generation\":%llu,\"scripts\":[", s ? (unsigned long long)s->gen : 0ULL);
    for (size_t i = 0; s && i < s->n; i++) {
        const script *sc = &s->s[i];
        if (i) sg_buf_putc(out, ',');
        sg_buf_puts(out, "{\"name\":");
        sg_buf_json_str(out, sc->key, strlen(sc->key));
        sg_buf_puts(out, ",\"path\":");
        sg_buf_json_str(out, sc->path, strlen(sc->path));
        sg_buf_printf(out, ",\"version\":%llu,\"loaded\":%s", (unsigned long long)sc->version,
                      sc->text ? "true" : "false");
        if (sc->error) {
            sg_buf_puts(out, ",\"error\":");
            sg_buf_json_str(out, sc->error, strlen(sc->error));
        }
        sg_buf_putc(out, '}');
    }
    sg_buf_puts(out, "]}");
    snap_release(s);
}

bool sg_scripts_ready(void)
{
    snapshot *s = snap_acquire();
    bool ok = s != NULL;
    for (size_t i = 0; s && i < s->n; i++) ok &= s->s[i].text != NULL;
    snap_release(s);
    return ok;
}

/* ---- per-thread runtime ------------------------------------------------------------ */

struct sg_lua {
    lua_State *L;
    state_info si;
    uint64_t gen; /* generation the state was built from */
    bool checked; /* generation checked for the current request */
    bool broken;  /* the state could not be built */
};

sg_lua *sg_lua_new(void)
{
    return calloc(1, sizeof(sg_lua));
}

static void drop_state(sg_lua *l)
{
    if (l->L) lua_close(l->L);
    l->L = NULL;
    snap_release(l->si.snap);
    l->si.snap = NULL;
}

void sg_lua_free(sg_lua *l)
{
    if (!l) return;
    drop_state(l);
    free(l);
}

void sg_lua_request_start(sg_lua *l)
{
    if (l) l->checked = false;
}

/* Make sure the state matches the current generation (once per request). */
static bool ensure_state(sg_lua *l)
{
    if (l->checked && l->L) return true;
    uint64_t gen = atomic_load(&g.gen);
    if (l->L && l->gen == gen) {
        l->checked = true;
        return true;
    }
    drop_state(l);
    l->si = (state_info){.alloc = {0, (size_t)g.cfg.memory}};
    l->si.snap = snap_acquire();
    l->gen = l->si.snap ? l->si.snap->gen : 0;
    l->L = new_state(&l->si);
    if (!l->L) return false;
    lua_pushcfunction(l->L, build_base_protected);
    if (call(l->L, &l->si, 0, 0, g.cfg.instructions * 10) != LUA_OK) {
        sg_log(SG_LOG_ERROR, "lua", "cannot build a Lua state: %s", lua_tostring(l->L, -1));
        drop_state(l);
        return false;
    }
    l->checked = true;
    return true;
}

/* Push the module table of script `name` for `tenant` (its override, else
 * the default), loading it on first use. [-0, +1, -]: the table, or nil
 * when there is no such script; *sc says which file. Returns false when
 * the script exists but cannot be run (then an error message is pushed). */
static bool push_module(sg_lua *l, const char *tenant, const char *name, const script **scp)
{
    lua_State *L = l->L;
    char key[300];
    snprintf(key, sizeof key, "tenants/%s/%s", tenant ? tenant : "", name);
    const script *sc = tenant ? snap_find(l->si.snap, key) : NULL;
    if (!sc) {
        snprintf(key, sizeof key, "%s", name);
        sc = snap_find(l->si.snap, key);
    }
    *scp = sc;
    if (!sc) {
        lua_pushnil(L);
        return true;
    }
    if (!sc->text) {
        lua_pushfstring(L, "%s failed to load: %s", sc->path, sc->error ? sc->error : "?");
        return false;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, "scimgate.modules");
    if (lua_getfield(L, -1, key) == LUA_TTABLE) {
        lua_remove(L, -2);
        return true;
    }
    lua_pop(L, 1);
    if (load_chunk(L, sc) != LUA_OK || call(L, &l->si, 0, 1, g.cfg.instructions) != LUA_OK) {
        lua_remove(L, -2);
        return false;
    }
    if (!lua_istable(L, -1)) {
        lua_pop(L, 2);
        lua_pushfstring(L, "%s: the script must return a table of functions", sc->path);
        return false;
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, key);
    lua_remove(L, -2);
    return true;
}

static const char *const hook_names[][2] = {
    [SG_HOOK_INBOUND] = {"mapping", "inbound"},    [SG_HOOK_OUTBOUND] = {"mapping", "outbound"},
    [SG_HOOK_ACCEPT] = {"groups", "accept"},       [SG_HOOK_INVITE] = {"invite", "on_invite"},
    [SG_HOOK_CHANGES] = {"changes", "on_changes"},
};

/* Push the hook function (or nil). false with an error message pushed
 * when its script cannot run. [-0, +1, -] */
static bool push_hook(sg_lua *l, const char *tenant, sg_hook hook, const script **sc)
{
    if (!push_module(l, tenant, hook_names[hook][0], sc)) return false;
    if (lua_isnil(l->L, -1)) return true;
    lua_getfield(l->L, -1, hook_names[hook][1]);
    lua_remove(l->L, -2);
    if (!lua_isnil(l->L, -1) && !lua_isfunction(l->L, -1)) {
        lua_pop(l->L, 1);
        lua_pushfstring(l->L, "%s.%s is not a function", hook_names[hook][0], hook_names[hook][1]);
        return false;
    }
    return true;
}

/* push_hook through a per-state cache, registry["scimgate.hooks"], keyed by
 * hook and tenant: the function, or false when there is none. Hot paths
 * (the outbound check runs for every rendered resource) then cost one table
 * look-up. Failures are not cached, so they are reported every time. */
static bool push_hook_cached(sg_lua *l, const char *tenant, sg_hook hook, const script **sc)
{
    lua_State *L = l->L;
    *sc = NULL;
    lua_getfield(L, LUA_REGISTRYINDEX, "scimgate.hooks");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "scimgate.hooks");
    }
    lua_pushfstring(L, "%d|%s", (int)hook, tenant ? tenant : "");
    lua_pushvalue(L, -1);
    int t = lua_rawget(L, -3);
    if (t == LUA_TFUNCTION || t == LUA_TBOOLEAN) {
        if (t == LUA_TBOOLEAN) {
            lua_pop(L, 1);
            lua_pushnil(L);
        }
        lua_replace(L, -3); /* cache, key, fn -> fn, key */
        lua_pop(L, 1);
        return true;
    }
    lua_pop(L, 1);
    if (!push_hook(l, tenant, hook, sc)) {
        lua_replace(L, -3); /* cache, key, msg -> msg, key */
        lua_pop(L, 1);
        return false;
    }
    lua_pushvalue(L, -2); /* key */
    if (lua_isnil(L, -2))
        lua_pushboolean(L, 0);
    else
        lua_pushvalue(L, -2);
    lua_rawset(L, -5);  /* cache[key] = fn or false */
    lua_replace(L, -3); /* cache, key, fn -> fn, key */
    lua_pop(L, 1);
    return true;
}

/* The script that defines a hook for a tenant (for messages). */
static const script *hook_script(sg_lua *l, const char *tenant, sg_hook hook)
{
    char key[300];
    snprintf(key, sizeof key, "tenants/%s/%s", tenant ? tenant : "", hook_names[hook][0]);
    const script *sc = tenant ? snap_find(l->si.snap, key) : NULL;
    return sc ? sc : snap_find(l->si.snap, hook_names[hook][0]);
}

static const char *script_path(sg_lua *l, const char *tenant, sg_hook hook)
{
    const script *sc = hook_script(l, tenant, hook);
    return sc ? sc->path : "?";
}

bool sg_lua_has_hook(sg_lua *l, const char *tenant, sg_hook hook)
{
    if (!ensure_state(l)) return true; /* fail closed: the call will report it */
    int top = lua_gettop(l->L);
    const script *sc;
    bool ok = push_hook_cached(l, tenant, hook, &sc);
    bool has = !ok || !lua_isnil(l->L, -1);
    lua_settop(l->L, top);
    return has;
}

/* ---- ctx ------------------------------------------------------------------------------- */

static int ro_newindex(lua_State *L)
{
    return luaL_error(L, "ctx is read-only");
}

static void push_string_or_nil(lua_State *L, const char *s)
{
    if (s)
        lua_pushstring(L, s);
    else
        lua_pushnil(L);
}

/* Push a read-only view of ctx. [-0, +1, m] */
static void push_ctx(lua_State *L, const sg_hook_ctx *c, int depth)
{
    lua_newtable(L);           /* proxy */
    lua_createtable(L, 0, 2);  /* its metatable */
    lua_createtable(L, 0, 10); /* the data */
    push_string_or_nil(L, c->tenant), lua_setfield(L, -2, "tenant");
    if (c->token_id)
        lua_pushstring(L, c->token_id), lua_setfield(L, -2, "token_id");
    else
        lua_pushboolean(L, 1), lua_setfield(L, -2, "admin");
    push_string_or_nil(L, c->method), lua_setfield(L, -2, "method");
    push_string_or_nil(L, c->resource_type), lua_setfield(L, -2, "resource_type");
    push_string_or_nil(L, c->request_id), lua_setfield(L, -2, "request_id");
    push_string_or_nil(L, c->entra_mode ? c->entra_mode : "default");
    lua_setfield(L, -2, "entra_mode");
    if (c->members_added)
        sg_lua_push_json(L, c->members_added, depth), lua_setfield(L, -2, "members_added");
    if (c->members_removed)
        sg_lua_push_json(L, c->members_removed, depth), lua_setfield(L, -2, "members_removed");
    if (c->members_cleared) lua_pushboolean(L, 1), lua_setfield(L, -2, "members_cleared");
    if (c->settings)
        sg_lua_push_json(L, c->settings, depth);
    else
        lua_newtable(L);
    lua_setfield(L, -2, "settings");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ro_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "read-only");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
}

/* ---- hook calls ----------------------------------------------------------------------- */

/* Report a failed hook: the full message and traceback to the log, a
 * client-safe detail naming the hook. */
static sg_status script_failed(sg_lua *l, sg_hook hook, const script *sc, sg_error *err)
{
    const char *msg = lua_tostring(l->L, -1);
    sg_log(SG_LOG_ERROR, "lua", "%s.%s (%s) failed: %s", hook_names[hook][0], hook_names[hook][1],
           sc ? sc->path : "?", msg ? msg : "(no message)");
    lua_pop(l->L, 1);
    return sg_error_set(err, SG_ESCRIPT, NULL,
                        "the %s.%s hook script failed; the gateway log has the details",
                        hook_names[hook][0], hook_names[hook][1]);
}

/* Prepare a call: state, hook function. Returns SG_OK with the function
 * pushed, SG_ENOTFOUND (nothing pushed) when there is no hook, or an
 * error. */
static sg_status begin_hook(sg_lua *l, const char *tenant, sg_hook hook, const script **sc,
                            sg_error *err)
{
    if (!l || !ensure_state(l))
        return sg_error_set(err, SG_ESCRIPT, NULL, "the %s hook cannot run: no Lua state",
                            hook_names[hook][1]);
    if (!push_hook_cached(l, tenant, hook, sc)) {
        *sc = hook_script(l, tenant, hook);
        return script_failed(l, hook, *sc, err);
    }
    if (lua_isnil(l->L, -1)) {
        lua_pop(l->L, 1);
        return SG_ENOTFOUND;
    }
    return SG_OK;
}

sg_status sg_lua_map(sg_lua *l, sg_hook hook, const sg_hook_ctx *ctx, json_t **resource,
                     sg_error *err)
{
    const script *sc = NULL;
    sg_status s = begin_hook(l, ctx->tenant, hook, &sc, err);
    if (s == SG_ENOTFOUND) return SG_OK;
    if (s != SG_OK) {
        sg_metrics_hook(hook, -1, true);
        return s;
    }
    lua_State *L = l->L;
    int top = lua_gettop(L) - 1;
    if (!lua_checkstack(L, 8) || sg_lua_push_json(L, *resource, g.cfg.json_depth) != 0) {
        lua_settop(L, top);
        return sg_error_set(err, SG_EINVALID, "invalidSyntax", "the resource nests too deeply");
    }
    push_ctx(L, ctx, g.cfg.json_depth);
    int64_t t0 = sg_mono_us();
    int rc = call(L, &l->si, 2, 2, g.cfg.instructions);
    int64_t us = sg_mono_us() - t0;
    if (rc != LUA_OK) {
        sg_metrics_hook(hook, us, true);
        s = script_failed(l, hook, hook_script(l, ctx->tenant, hook), err);
        lua_settop(L, top);
        return s;
    }
    if (lua_isnil(L, -2)) {
        sg_metrics_hook(hook, us, false); /* a refusal is an answer */
        /* nil, {status =, scimType =, detail =}: the script refuses. */
        int status = 400;
        const char *type = "invalidValue", *detail = "refused by the mapping script";
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "status");
            if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 400 && lua_tointeger(L, -1) < 500)
                status = (int)lua_tointeger(L, -1);
            lua_getfield(L, -2, "scimType");
            if (lua_type(L, -1) == LUA_TSTRING) type = lua_tostring(L, -1);
            lua_getfield(L, -3, "detail");
            if (lua_type(L, -1) == LUA_TSTRING) detail = lua_tostring(L, -1);
        } else if (lua_type(L, -1) == LUA_TSTRING) {
            detail = lua_tostring(L, -1);
        }
        sg_status code = status == 409   ? SG_ECONFLICT
                         : status == 404 ? SG_ENOTFOUND
                         : status == 403 ? SG_EDENIED
                                         : SG_EINVALID;
        /* scimType is client text: keep only a known word. */
        static const char *const types[] = {"invalidValue", "invalidSyntax", "uniqueness",
                                            "mutability",   "invalidPath",   "noTarget",
                                            "tooMany",      "sensitive",     "invalidFilter"};
        const char *t = NULL;
        for (size_t i = 0; i < SG_ARRAY_LEN(types); i++)
            if (!strcmp(type, types[i])) t = types[i];
        sg_error_set(err, code, t, "%s", detail);
        lua_settop(L, top);
        return code;
    }
    char msg[256];
    json_t *out = sg_lua_to_json(L, -2, g.cfg.json_depth, msg, sizeof msg);
    lua_settop(L, top);
    sg_metrics_hook(hook, us, !out || !json_is_object(out));
    if (!out || !json_is_object(out)) {
        json_decref(out);
        sg_log(SG_LOG_ERROR, "lua", "%s.%s (%s) returned no resource: %s", hook_names[hook][0],
               hook_names[hook][1], script_path(l, ctx->tenant, hook), out ? "not an object" : msg);
        return sg_error_set(err, SG_ESCRIPT, NULL,
                            "the %s.%s hook returned no resource; the gateway log has the details",
                            hook_names[hook][0], hook_names[hook][1]);
    }
    json_decref(*resource);
    *resource = out;
    return SG_OK;
}

/* A verdict word and its optional reason from results at -2, -1. */
static int read_verdict(lua_State *L, const char *const *words, size_t nwords, char *reason)
{
    reason[0] = '\0';
    if (lua_type(L, -2) != LUA_TSTRING) return -1;
    const char *w = lua_tostring(L, -2);
    for (size_t i = 0; i < nwords; i++) {
        if (strcmp(w, words[i])) continue;
        if (lua_type(L, -1) == LUA_TSTRING) snprintf(reason, 256, "%s", lua_tostring(L, -1));
        return (int)i;
    }
    return -1;
}

sg_status sg_lua_accept(sg_lua *l, const sg_hook_ctx *ctx, const json_t *group, sg_verdict *verdict,
                        char *reason, sg_error *err)
{
    *verdict = SG_ACCEPT;
    reason[0] = '\0';
    const script *sc = NULL;
    sg_status s = begin_hook(l, ctx->tenant, SG_HOOK_ACCEPT, &sc, err);
    if (s == SG_ENOTFOUND) return SG_OK;
    if (s != SG_OK) {
        sg_metrics_hook(SG_HOOK_ACCEPT, -1, true);
        return s;
    }
    lua_State *L = l->L;
    int top = lua_gettop(L) - 1;
    if (!lua_checkstack(L, 8) || sg_lua_push_json(L, group, g.cfg.json_depth) != 0) {
        lua_settop(L, top);
        return sg_error_set(err, SG_EINVALID, "invalidSyntax", "the group nests too deeply");
    }
    push_ctx(L, ctx, g.cfg.json_depth);
    int64_t t0 = sg_mono_us();
    int rc = call(L, &l->si, 2, 2, g.cfg.instructions);
    int64_t us = sg_mono_us() - t0;
    if (rc != LUA_OK) {
        sg_metrics_hook(SG_HOOK_ACCEPT, us, true);
        s = script_failed(l, SG_HOOK_ACCEPT, hook_script(l, ctx->tenant, SG_HOOK_ACCEPT), err);
        lua_settop(L, top);
        return s;
    }
    static const char *const words[] = {"accept", "ignore", "reject"};
    int v = read_verdict(L, words, 3, reason);
    lua_settop(L, top);
    sg_metrics_hook(SG_HOOK_ACCEPT, us, v < 0);
    if (v < 0) {
        sg_log(SG_LOG_ERROR, "lua",
               "groups.accept (%s) must return \"accept\", \"ignore\" or "
               "\"reject\"",
               script_path(l, ctx->tenant, SG_HOOK_ACCEPT));
        return sg_error_set(err, SG_ESCRIPT, NULL,
                            "the groups.accept hook gave no verdict; the gateway log has the "
                            "details");
    }
    *verdict = (sg_verdict)v;
    return SG_OK;
}

sg_status sg_lua_outbox_hook(sg_lua *l, sg_hook hook, const sg_hook_ctx *ctx,
                             const json_t *const *args, int nargs, sg_delivery *result,
                             char *reason, sg_error *err)
{
    *result = SG_DELIVERY_RETRY;
    reason[0] = '\0';
    const script *sc = NULL;
    sg_status s = begin_hook(l, ctx->tenant, hook, &sc, err);
    if (s == SG_ENOTFOUND) {
        snprintf(reason, 256, "no %s.%s hook", hook_names[hook][0], hook_names[hook][1]);
        return SG_OK; /* retried: an admin may add the script */
    }
    if (s != SG_OK) {
        sg_metrics_hook(hook, -1, true);
        return SG_OK; /* counted as a retry; logged */
    }
    lua_State *L = l->L;
    int top = lua_gettop(L) - 1;
    if (!lua_checkstack(L, nargs + 6)) {
        lua_settop(L, top);
        snprintf(reason, 256, "out of Lua stack");
        return SG_OK;
    }
    for (int i = 0; i < nargs; i++) {
        if (sg_lua_push_json(L, args[i], g.cfg.json_depth) != 0) {
            lua_settop(L, top);
            snprintf(reason, 256, "the hook's arguments nest too deeply");
            *result = SG_DELIVERY_FAIL;
            return SG_OK;
        }
    }
    push_ctx(L, ctx, g.cfg.json_depth);
    sg_lua_deliver_allow(L, 1);
    int64_t t0 = sg_mono_us();
    int rc = call(L, &l->si, nargs + 1, 2, g.cfg.instructions);
    int64_t us = sg_mono_us() - t0;
    sg_lua_deliver_allow(L, 0);
    if (rc != LUA_OK) {
        sg_metrics_hook(hook, us, true);
        sg_error e;
        script_failed(l, hook, hook_script(l, ctx->tenant, hook), &e);
        snprintf(reason, 256, "the %s script failed (see the log)", hook_names[hook][0]);
        lua_settop(L, top);
        return SG_OK;
    }
    static const char *const words[] = {"ok", "retry", "fail"};
    int v = read_verdict(L, words, 3, reason);
    lua_settop(L, top);
    sg_metrics_hook(hook, us, v < 0); /* "retry" and "fail" are answers */
    if (v < 0) {
        snprintf(reason, 256, "%s.%s must return \"ok\", \"retry\" or \"fail\"",
                 hook_names[hook][0], hook_names[hook][1]);
        return SG_OK;
    }
    *result = (sg_delivery)v;
    return SG_OK;
}
