#include "plugin.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "crypto.h"
#include "log.h"
#include "touch.h"
#include "util.h"

static void host_log(sg_log_level level, const char *plugin, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_log(sg_log_level level, const char *plugin, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sg_vlog(level, plugin, fmt, ap);
    va_end(ap);
}

static sg_status host_token_lookup(sg_conn *conn, const char *token_id, sg_token_info *out,
                                   sg_error *err);

static const sg_storage_vtab *g_storage; /* for host_token_lookup */

static const sg_host host = {
    .abi_major = SG_ABI_MAJOR,
    .abi_minor = SG_ABI_MINOR,
    .size = sizeof(sg_host),
    .alloc = malloc,
    .realloc = realloc,
    .free = free,
    .log = host_log,
    .buf_append = sg_buf_append,
    .now_ms = sg_now_ms,
    .format_time = sg_format_time,
    .token_lookup = host_token_lookup,
    .token_hash = sg_crypto_hash,
    .ct_equal = sg_crypto_equal,
    .token_touch = sg_touch_note,
};

const sg_host *sg_host_table(void)
{
    return &host;
}

static sg_status host_token_lookup(sg_conn *conn, const char *token_id, sg_token_info *out,
                                   sg_error *err)
{
    if (!g_storage) return sg_error_set(err, SG_EUNAVAIL, NULL, "no storage loaded");
    return g_storage->token_info(conn, token_id, out, err);
}

/* Every method slot of a vtable from `first` to the end is non-NULL. */
static bool all_set(const void *vt, size_t first, size_t size)
{
    for (size_t off = first; off + sizeof(void (*)(void)) <= size; off += sizeof(void (*)(void))) {
        void (*fn)(void);
        memcpy(&fn, (const char *)vt + off, sizeof fn);
        if (!fn) return false;
    }
    return true;
}

bool sg_plugin_load(const char *path, sg_plugin_kind kind, sg_plugin_reg *reg, void **dl, char *err,
                    size_t errlen)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "cannot load plugin %s: %s", path, dlerror());
        return false;
    }
    sg_plugin_init_fn init;
    void *sym = dlsym(h, SG_PLUGIN_ENTRY);
    memcpy(&init, &sym, sizeof init);
    if (!init) {
        snprintf(err, errlen, "plugin %s does not export %s", path, SG_PLUGIN_ENTRY);
        dlclose(h);
        return false;
    }
    memset(reg, 0, sizeof *reg);
    sg_status s = init(&host, reg);
    if (s == SG_OK && reg->abi_major != SG_ABI_MAJOR) s = SG_EVERSION;
    if (s == SG_EVERSION) {
        snprintf(err, errlen,
                 "plugin %s was built for ABI %u.%u, this gateway has ABI %u.%u: rebuild the "
                 "plugin against this gateway's headers",
                 path, reg->abi_major, reg->abi_minor, SG_ABI_MAJOR, SG_ABI_MINOR);
        dlclose(h);
        return false;
    }
    if (s != SG_OK || !reg->vtab || !reg->name) {
        snprintf(err, errlen, "plugin %s failed to initialise (status %d)", path, (int)s);
        dlclose(h);
        return false;
    }
    if (reg->kind != kind) {
        snprintf(err, errlen, "plugin %s is %s plugin, expected %s plugin", path,
                 reg->kind == SG_PLUGIN_STORAGE ? "a storage" : "an auth",
                 kind == SG_PLUGIN_STORAGE ? "a storage" : "an auth");
        dlclose(h);
        return false;
    }
    /* The vtable must hold every method this core calls (the 1.0 set). A
     * larger vtable (a later minor) is fine; methods beyond what we know are
     * simply not called. */
    size_t need, first;
    const unsigned *vsize;
    if (kind == SG_PLUGIN_STORAGE) {
        const sg_storage_vtab *vt = reg->vtab;
        vsize = &vt->size;
        first = offsetof(sg_storage_vtab, open);
        need = offsetof(sg_storage_vtab, job_expire) + sizeof vt->job_expire;
    } else {
        const sg_auth_vtab *vt = reg->vtab;
        vsize = &vt->size;
        first = offsetof(sg_auth_vtab, open);
        need = offsetof(sg_auth_vtab, authenticate) + sizeof vt->authenticate;
    }
    const unsigned short *vmajor = reg->vtab;
    if (*vmajor != SG_ABI_MAJOR || *vsize < need || !all_set(reg->vtab, first, need)) {
        snprintf(err, errlen,
                 "plugin %s has an incomplete %s vtable (ABI %u, size %u, this gateway needs "
                 "ABI %u with size >= %zu and every method set)",
                 path, kind == SG_PLUGIN_STORAGE ? "storage" : "auth", *vmajor, *vsize,
                 SG_ABI_MAJOR, need);
        dlclose(h);
        return false;
    }
    *dl = h;
    return true;
}

static char *plugin_path(const sg_config *cfg, const char *kind, const char *name)
{
    size_t n = strlen(cfg->plugins) + strlen(kind) + strlen(name) + 16;
    char *p = malloc(n);
    if (!p) abort();
    snprintf(p, n, "%s/sg_%s_%s.so", cfg->plugins, kind, name);
    return p;
}

static bool valid_name(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

bool sg_plugins_open(sg_plugins *p, const sg_config *cfg, bool with_auth, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (!valid_name(cfg->storage, strlen(cfg->storage))) {
        snprintf(err, errlen, "storage \"%s\": plugin names are lower-case letters, digits, _",
                 cfg->storage);
        return false;
    }
    char *path = plugin_path(cfg, "storage", cfg->storage);
    sg_plugin_reg reg;
    bool ok = sg_plugin_load(path, SG_PLUGIN_STORAGE, &reg, &p->st_dl, err, errlen);
    free(path);
    if (!ok) return false;
    p->st = reg.vtab;
    size_t nopts;
    sg_kv *opts = sg_config_plugin_opts(cfg, "storage.", &nopts);
    sg_error e;
    sg_error_clear(&e);
    sg_status s = p->st->open(&host, cfg->data, opts, nopts, &p->store, &e);
    free(opts);
    if (s != SG_OK) {
        snprintf(err, errlen, "storage %s: %s", cfg->storage,
                 e.detail[0] ? e.detail : "open failed");
        dlclose(p->st_dl);
        memset(p, 0, sizeof *p);
        return false;
    }
    g_storage = p->st;
    if (!with_auth) return true;

    for (const char *a = cfg->auth; a && *a;) {
        const char *comma = strchr(a, ',');
        size_t n = comma ? (size_t)(comma - a) : strlen(a);
        while (n && a[n - 1] == ' ') n--;
        if (!valid_name(a, n)) {
            snprintf(err, errlen, "auth \"%.*s\": plugin names are lower-case letters, digits, _",
                     (int)n, a);
            sg_plugins_close(p);
            return false;
        }
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)n, a);
        path = plugin_path(cfg, "auth", name);
        void *dl;
        ok = sg_plugin_load(path, SG_PLUGIN_AUTH, &reg, &dl, err, errlen);
        free(path);
        if (!ok) {
            sg_plugins_close(p);
            return false;
        }
        sg_auth_inst *na = realloc(p->auth, (p->nauth + 1) * sizeof *na);
        if (!na) abort();
        p->auth = na;
        sg_auth_inst *ai = &p->auth[p->nauth];
        ai->vt = reg.vtab;
        ai->dl = dl;
        ai->inst = NULL;
        ai->name = sg_xstrdup(name);
        p->nauth++;
        char prefix[80];
        snprintf(prefix, sizeof prefix, "auth.%s.", name);
        opts = sg_config_plugin_opts(cfg, prefix, &nopts);
        s = ai->vt->open(&host, opts, nopts, &ai->inst, &e);
        free(opts);
        if (s != SG_OK) {
            snprintf(err, errlen, "auth %s: %s", name, e.detail[0] ? e.detail : "open failed");
            sg_plugins_close(p);
            return false;
        }
        a = comma ? comma + 1 : a + strlen(a);
        while (*a == ' ') a++;
    }
    if (p->nauth == 0) {
        snprintf(err, errlen, "no auth plugin configured (auth = bearer)");
        sg_plugins_close(p);
        return false;
    }
    return true;
}

void sg_plugins_set_storage(sg_plugins *p, const sg_storage_vtab *vt)
{
    p->st = vt;
    g_storage = vt;
}

void sg_plugins_close(sg_plugins *p)
{
    for (size_t i = 0; i < p->nauth; i++) {
        if (p->auth[i].inst) p->auth[i].vt->close(p->auth[i].inst);
        dlclose(p->auth[i].dl);
        free(p->auth[i].name);
    }
    free(p->auth);
    if (p->store) p->st->close(p->store);
    if (p->st_dl) dlclose(p->st_dl);
    g_storage = NULL;
    memset(p, 0, sizeof *p);
}
