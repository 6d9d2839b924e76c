#include "config.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paths.h"
#include "util.h"

typedef enum { K_STR, K_INT, K_SIZE, K_DUR } key_type;

typedef struct key_def {
    const char *key;
    key_type type;
    size_t offset;
    const char *def; /* NULL: unset or computed by paths.c */
    const char *help;
} key_def;

#define S(f)  K_STR, offsetof(sg_config, f)
#define I(f)  K_INT, offsetof(sg_config, limits.f)
#define Z(f)  K_SIZE, offsetof(sg_config, limits.f)
#define D(f)  K_DUR, offsetof(sg_config, limits.f)
#define OI(f) K_INT, offsetof(sg_config, outbox.f)
#define OD(f) K_DUR, offsetof(sg_config, outbox.f)
#define PI(f) K_INT, offsetof(sg_config, portal_cfg.f)
#define PD(f) K_DUR, offsetof(sg_config, portal_cfg.f)

static const key_def keys[] = {
    {"data", S(data), "./data", "data directory (SQLite file, server key, spool)"},
    {"server_key", S(server_key), NULL, "HMAC key for token hashes: 64 hex digits or a file path"},
    {"schemas", S(schemas), NULL, "schema documents directory"},
    {"listen", S(listen), "127.0.0.1:8080", "SCIM listener, IPv4 address:port"},
    {"admin_listen", S(admin_listen), NULL, "listener for /admin and /metrics (default: listen)"},
    {"public_url", S(public_url), NULL, "external base URL for tenant URLs and Location headers"},
    {"scripts", S(scripts), NULL, "Lua scripts directory"},
    {"plugins", S(plugins), NULL, "plugin directory"},
    {"storage", S(storage), "sqlite", "storage plugin name (sg_storage_NAME.so)"},
    {"auth", S(auth), "bearer", "auth plugins, comma-separated, tried in order"},
    {"tls_cert", S(tls_cert), NULL, "TLS certificate (native TLS; see README)"},
    {"tls_key", S(tls_key), NULL, "TLS private key"},
    {"trusted_proxies", S(trusted_proxies), NULL,
     "comma-separated addresses whose X-Forwarded-For/Proto/Host are believed"},
    {"log_level", S(log_level), "info", "error, warn, info or debug"},
    {"portal", S(portal), NULL, "the admin portal's static files directory"},
    {"portal.session_idle", PD(session_idle_ms), "30m",
     "a portal session unused this long is signed out"},
    {"portal.session_max", PD(session_max_ms), "12h",
     "a portal session ends this long after sign-in"},
    {"portal.login_attempts", PI(login_attempts), "5",
     "failed portal sign-ins per login before back-off (429)"},
    {"portal.address_attempts", PI(address_attempts), "20",
     "failed portal sign-ins per client address before back-off (429)"},
    {"limits.body_bytes", Z(body_bytes), "8MiB", "request body cap (413 above)"},
    {"limits.json_depth", I(json_depth), "64", "JSON nesting cap"},
    {"limits.filter_length", I(filter_length), "4096", "filter length cap"},
    {"limits.filter_depth", I(filter_depth), "32", "filter nesting cap"},
    {"limits.page_default", I(page_default), "100", "default page size"},
    {"limits.page_max", I(page_max), "1000", "largest page size"},
    {"limits.bulk_operations", I(bulk_operations), "1000", "Bulk operations cap"},
    {"limits.bulk_bytes", Z(bulk_bytes), "8MiB", "Bulk body cap"},
    {"limits.lua_instructions", I(lua_instructions), "1000000", "instructions per hook call"},
    {"limits.lua_memory", Z(lua_memory), "32MiB", "memory per Lua state"},
    {"limits.tenant_rps", I(tenant_rps), "500",
     "SCIM requests per second per tenant and node before 429 (0: no limit)"},
    {"limits.tenant_burst", I(tenant_burst), "0",
     "requests a tenant may send at once after a pause (0: limits.tenant_rps)"},
    {"limits.metrics_tenants", I(metrics_tenants), "100",
     "tenants /metrics names; the others are summed as tenant=\"other\""},
    {"limits.workers", I(workers), "64", "worker threads (concurrent connections)"},
    {"limits.longpoll", I(longpoll), "16", "concurrent long-polls (below workers)"},
    {"limits.request_timeout", D(request_timeout_ms), "30s",
     "time a client has to send a request's headers, and again its body"},
    {"limits.idle_timeout", D(idle_timeout_ms), "5s",
     "how long an idle keep-alive connection may hold a worker"},
    {"outbox.workers", OI(workers), "2",
     "outbox threads delivering invitations and the change webhook"},
    {"outbox.poll", OD(poll_ms), "1s", "how often an idle outbox thread looks for due jobs"},
    {"outbox.lease", OD(lease_ms), "2m",
     "how long a claimed job is held before another thread may retry it"},
    {"outbox.retry_base", OD(retry_base_ms), "1m",
     "first retry delay (doubles per attempt, with jitter)"},
    {"outbox.retry_max", OD(retry_max_ms), "6h", "longest retry delay"},
    {"outbox.attempts", OI(attempts), "12", "delivery attempts before an invitation is Failed"},
    {"outbox.housekeeping", OD(housekeeping_ms), "1m",
     "how often approvals expire and tombstones and old events are purged"},
    {"retention.events", OD(events_ms), "90d",
     "how long audit events are kept (change-feed events too)"},
};

static const key_def *find_key(const char *k, size_t n)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(keys); i++)
        if (strlen(keys[i].key) == n && !memcmp(keys[i].key, k, n)) return &keys[i];
    return NULL;
}

static bool is_plugin_key(const char *k)
{
    return (!strncmp(k, "storage.", 8) && k[8]) || (!strncmp(k, "auth.", 5) && k[5]);
}

static void add_opt(sg_config *cfg, const char *k, const char *v)
{
    for (size_t i = 0; i < cfg->nopts; i++) {
        if (!strcmp(cfg->opts[i].key, k)) {
            free((char *)cfg->opts[i].value);
            cfg->opts[i].value = sg_xstrdup(v);
            return;
        }
    }
    sg_kv *p = realloc(cfg->opts, (cfg->nopts + 1) * sizeof *p);
    if (!p) abort();
    cfg->opts = p;
    cfg->opts[cfg->nopts].key = sg_xstrdup(k);
    cfg->opts[cfg->nopts].value = sg_xstrdup(v);
    cfg->nopts++;
}

static bool set_value(sg_config *cfg, const key_def *d, const char *v, const char *origin,
                      char *err, size_t errlen)
{
    char *base = (char *)cfg;
    if (d->type == K_STR) {
        char **slot = (char **)(base + d->offset);
        free(*slot);
        *slot = *v ? sg_xstrdup(v) : NULL;
        return true;
    }
    int64_t n;
    bool ok = d->type == K_SIZE  ? sg_parse_size(v, &n)
              : d->type == K_DUR ? sg_parse_duration_ms(v, &n)
                                 : sg_parse_i64(v, &n);
    if (!ok || n < 0) {
        snprintf(err, errlen, "%s: %s: not a %s: \"%s\"", origin, d->key,
                 d->type == K_SIZE  ? "size"
                 : d->type == K_DUR ? "duration (such as 500ms, 90s, 15m, 12h, 7d)"
                                    : "non-negative integer",
                 v);
        return false;
    }
    *(int64_t *)(base + d->offset) = n;
    return true;
}

static bool set_key(sg_config *cfg, const char *k, size_t klen, const char *v, const char *origin,
                    char *err, size_t errlen)
{
    const key_def *d = find_key(k, klen);
    if (d) return set_value(cfg, d, v, origin, err, errlen);
    char key[256];
    if (klen >= sizeof key) klen = sizeof key - 1;
    memcpy(key, k, klen);
    key[klen] = '\0';
    if (is_plugin_key(key)) {
        add_opt(cfg, key, v);
        return true;
    }
    snprintf(err, errlen, "%s: unknown configuration key \"%s\"", origin, key);
    return false;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

static bool load_file(sg_config *cfg, const char *path, char *err, size_t errlen)
{
    char *text;
    if (!sg_read_file(path, &text, NULL)) {
        snprintf(err, errlen, "cannot read configuration file %s", path);
        return false;
    }
    bool ok = true;
    int lineno = 0;
    for (char *line = text, *next; line && ok; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        char origin[300];
        snprintf(origin, sizeof origin, "%s:%d", path, lineno);
        if (!eq) {
            snprintf(err, errlen, "%s: expected key = value", origin);
            ok = false;
            break;
        }
        *eq = '\0';
        char *k = trim(s), *v = trim(eq + 1);
        /* Allow "quoted values" so that values may end in spaces. */
        size_t vl = strlen(v);
        if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
            v[vl - 1] = '\0';
            v++;
        }
        ok = set_key(cfg, k, strlen(k), v, origin, err, errlen);
    }
    free(text);
    return ok;
}

static void env_name(const char *key, char *out, size_t outlen)
{
    size_t o = (size_t)snprintf(out, outlen, "SCIMGATE_");
    for (const char *p = key; *p && o + 1 < outlen; p++)
        out[o++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
    out[o] = '\0';
}

static bool load_env(sg_config *cfg, char *err, size_t errlen)
{
    char name[128];
    for (size_t i = 0; i < SG_ARRAY_LEN(keys); i++) {
        env_name(keys[i].key, name, sizeof name);
        const char *v = getenv(name);
        if (v && !set_value(cfg, &keys[i], v, name, err, errlen)) return false;
    }
    extern char **environ;
    for (char **e = environ; *e; e++) {
        static const char pre[] = "SCIMGATE_STORAGE_";
        if (strncmp(*e, pre, sizeof pre - 1)) continue;
        const char *eq = strchr(*e, '=');
        if (!eq || eq == *e + sizeof pre - 1) continue;
        char key[256] = "storage.";
        size_t o = strlen(key);
        for (const char *p = *e + sizeof pre - 1; p < eq && o + 1 < sizeof key; p++)
            key[o++] = (char)tolower((unsigned char)*p);
        key[o] = '\0';
        add_opt(cfg, key, eq + 1);
    }
    return true;
}

static void set_defaults(sg_config *cfg)
{
    char err[16];
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < SG_ARRAY_LEN(keys); i++)
        if (keys[i].def) set_value(cfg, &keys[i], keys[i].def, "default", err, sizeof err);
}

static bool validate(sg_config *cfg, char *err, size_t errlen)
{
    sg_limits *l = &cfg->limits;
    if (l->workers < 2) {
        snprintf(err, errlen, "limits.workers must be at least 2");
        return false;
    }
    if (l->longpoll >= l->workers) {
        snprintf(err, errlen, "limits.longpoll (%lld) must be below limits.workers (%lld)",
                 (long long)l->longpoll, (long long)l->workers);
        return false;
    }
    if (l->request_timeout_ms < 100 || l->idle_timeout_ms < 100) {
        snprintf(err, errlen,
                 "limits.request_timeout and limits.idle_timeout must be at least 100ms");
        return false;
    }
    if (l->page_max < 1 || l->page_default < 1 || l->page_default > l->page_max) {
        snprintf(err, errlen, "limits.page_default must be between 1 and limits.page_max");
        return false;
    }
    if (l->body_bytes < 1024 || l->json_depth < 4 || l->filter_length < 16 || l->filter_depth < 2) {
        snprintf(err, errlen,
                 "a limit is too small to serve SCIM (body_bytes >= 1024, "
                 "json_depth >= 4, filter_length >= 16, filter_depth >= 2)");
        return false;
    }
    if (l->metrics_tenants > 100000) {
        snprintf(err, errlen,
                 "limits.metrics_tenants must be at most 100000 (one series set each)");
        return false;
    }
    const sg_portal_config *pc = &cfg->portal_cfg;
    if (pc->session_idle_ms < 1000 || pc->session_max_ms < 1000 || pc->login_attempts < 1 ||
        pc->address_attempts < 1) {
        snprintf(err, errlen,
                 "portal.session_idle and portal.session_max must be at least 1s, "
                 "portal.login_attempts and portal.address_attempts at least 1");
        return false;
    }
    if (!cfg->data || !cfg->listen || !cfg->storage) {
        snprintf(err, errlen, "data, listen and storage must not be empty");
        return false;
    }
    return true;
}

bool sg_config_load(sg_config *cfg, int *argc, char **argv, char *err, size_t errlen)
{
    set_defaults(cfg);
    /* Pass 1: find --config, and collect flags (they are applied last). */
    const char *file = getenv("SCIMGATE_CONFIG");
    int out = 1;
    typedef struct {
        const char *k;
        size_t klen;
        const char *v;
    } flag;
    flag *flags = calloc((size_t)*argc + 1, sizeof *flags);
    size_t nflags = 0;
    if (!flags) abort();
    bool after_dashdash = false;
    for (int i = 1; i < *argc; i++) {
        char *a = argv[i];
        if (after_dashdash || strncmp(a, "--", 2) || !a[2]) {
            if (!strcmp(a, "--")) after_dashdash = true;
            argv[out++] = a;
            continue;
        }
        const char *k = a + 2, *eq = strchr(k, '=');
        size_t klen = eq ? (size_t)(eq - k) : strlen(k);
        bool known = (klen == 6 && !strncmp(k, "config", 6)) || find_key(k, klen);
        if (!known) {
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)klen, k);
            known = is_plugin_key(key);
        }
        if (!known) { /* a command's own flag */
            argv[out++] = a;
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= *argc) {
                snprintf(err, errlen, "flag --%.*s needs a value", (int)klen, k);
                free(flags);
                return false;
            }
            v = argv[++i];
        }
        if (klen == 6 && !strncmp(k, "config", 6))
            file = v;
        else
            flags[nflags++] = (flag){k, klen, v};
    }
    argv[out] = NULL;
    *argc = out;
    bool ok = (!file || load_file(cfg, file, err, errlen)) && load_env(cfg, err, errlen);
    for (size_t i = 0; ok && i < nflags; i++)
        ok = set_key(cfg, flags[i].k, flags[i].klen, flags[i].v, "flag", err, errlen);
    free(flags);
    if (ok) ok = validate(cfg, err, errlen);
    if (ok) ok = sg_paths_resolve(cfg, err, errlen);
    return ok;
}

void sg_config_free(sg_config *cfg)
{
    char *base = (char *)cfg;
    for (size_t i = 0; i < SG_ARRAY_LEN(keys); i++) {
        if (keys[i].type == K_STR) {
            char **slot = (char **)(base + keys[i].offset);
            free(*slot);
            *slot = NULL;
        }
    }
    for (size_t i = 0; i < cfg->nopts; i++) {
        free((char *)cfg->opts[i].key);
        free((char *)cfg->opts[i].value);
    }
    free(cfg->opts);
    cfg->opts = NULL;
    cfg->nopts = 0;
}

sg_kv *sg_config_plugin_opts(const sg_config *cfg, const char *prefix, size_t *n)
{
    size_t plen = strlen(prefix), k = 0;
    sg_kv *out = calloc(cfg->nopts + 1, sizeof *out);
    if (!out) abort();
    for (size_t i = 0; i < cfg->nopts; i++) {
        if (!strncmp(cfg->opts[i].key, prefix, plen) && cfg->opts[i].key[plen]) {
            out[k].key = cfg->opts[i].key + plen;
            out[k].value = cfg->opts[i].value;
            k++;
        }
    }
    *n = k;
    return out;
}

void sg_config_print_keys(void *file)
{
    FILE *f = file;
    char name[128];
    for (size_t i = 0; i < SG_ARRAY_LEN(keys); i++) {
        env_name(keys[i].key, name, sizeof name);
        fprintf(f, "  %-24s %-28s %s (default: %s)\n", keys[i].key, name, keys[i].help,
                keys[i].def ? keys[i].def : "see README");
    }
}
