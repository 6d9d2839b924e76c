#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli_api.h"
#include "config.h"
#include "crypto.h"
#include "fold.h"
#include "http.h"
#include "log.h"
#include "lua_host.h"
#include "metrics.h"
#include "paths.h"
#include "plugin.h"
#include "ratelimit.h"
#include "runner.h"
#include "schema.h"
#include "scim.h"
#include "tenants.h"
#include "outbox.h"
#include "touch.h"
#include "util.h"

static const char usage[] =
    "usage: scimgate [--config FILE] [--KEY VALUE ...] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  serve                                   run the gateway\n"
    "  tenant create NAME                      create a tenant; prints its tenant URL\n"
    "  tenant list                             list tenants\n"
    "  tenant disable TENANT | enable TENANT   refuse or accept a tenant's credentials\n"
    "  token generate TENANT [--expires-old-in DURATION]\n"
    "                                          new SCIM secret token, shown once\n"
    "  token list TENANT                       list a tenant's tokens (never the secret)\n"
    "  token revoke TENANT TOKEN_ID            revoke a token at once\n"
    "  admin create TENANT LOGIN | --operator LOGIN\n"
    "                                          an admin: {\"login\", \"password\", \"token\"}\n"
    "  test FILE.lua...                        run integration test scripts\n"
    "  version                                 print the version\n"
    "\n"
    "api commands: a running gateway's admin API, with [--url URL] (default\n"
    "http://<admin_listen>) and [--admin-token TOKEN] (or SCIMGATE_ADMIN_TOKEN):\n"
    "  users TENANT [--state S]                a table of users\n"
    "  timeline TENANT USER                    a user's events, one JSON per line\n"
    "  settings TENANT [KEY=VALUE ...]         show or change settings (KEY= removes)\n"
    "  invite TENANT USER...                   invite Staged users; prints the job ids\n"
    "  invite resend TENANT USER | invite expire TENANT JOB\n"
    "                                          a new invitation / end an open one\n"
    "  approvals TENANT                        invitations awaiting approval, one JSON per line\n"
    "  user activate|restore|attach TENANT USER | user detach TENANT USER --reason R\n"
    "                                          change a user's state; prints the new state\n"
    "  changes TENANT [--since CURSOR]         change events, one JSON per line, then the cursor\n"
    "  device enroll TENANT NAME --key FILE    enrol an admin device; its key goes to FILE\n"
    "  device approve TENANT --key FILE (--all | JOB...)\n"
    "                                          approve invitations with the device key\n"
    "  device list TENANT | device revoke TENANT ID\n"
    "                                          a tenant's admin devices / revoke one\n"
    "  scripts status | reload                 the hook scripts (operator)\n"
    "\n"
    "TENANT is a tenant id (store commands accept a tenant's unique name too).\n"
    "DURATION is like 90s, 15m, 12h, 7d.\n"
    "\n"
    "configuration keys (file key, environment variable, meaning):\n";

static int usage_error(const char *msg)
{
    if (msg) fprintf(stderr, "scimgate: %s\n", msg);
    fprintf(stderr, "run 'scimgate help' for usage\n");
    return 2;
}

/* ---- store commands: open the data directory without a server ------------- */

typedef struct store {
    sg_plugins p;
    sg_conn *conn;
} store;

static bool store_open(store *s, const sg_config *cfg, bool need_key)
{
    char err[512];
    memset(s, 0, sizeof *s);
    if (!sg_mkdirs(cfg->data)) {
        fprintf(stderr, "scimgate: cannot create data directory %s: %s\n", cfg->data,
                strerror(errno));
        return false;
    }
    if (need_key && !sg_crypto_init(cfg, err, sizeof err)) {
        fprintf(stderr, "scimgate: %s\n", err);
        return false;
    }
    if (!sg_plugins_open(&s->p, cfg, false, err, sizeof err)) {
        fprintf(stderr, "scimgate: %s\n", err);
        return false;
    }
    sg_error e;
    if (s->p.st->connect(s->p.store, &s->conn, &e) != SG_OK) {
        fprintf(stderr, "scimgate: cannot connect to storage: %s\n", e.detail);
        sg_plugins_close(&s->p);
        return false;
    }
    return true;
}

static void store_close(store *s)
{
    if (s->conn) s->p.st->disconnect(s->conn);
    sg_plugins_close(&s->p);
}

static int report(sg_status st, const sg_error *e)
{
    if (st == SG_OK) return 0;
    fprintf(stderr, "scimgate: %s\n", e->detail[0] ? e->detail : "failed");
    return 1;
}

static void fmt_ms(int64_t ms, char out[SG_TIME_MAX])
{
    if (ms <= 0)
        snprintf(out, SG_TIME_MAX, "-");
    else
        sg_format_time(ms, out);
}

/* ---- tenant ------------------------------------------------------------------ */

static int print_tenant(void *ud, const sg_tenant *t)
{
    (void)ud;
    printf("%-32s  %-24s  %-24s  %s\n", t->id, t->name, t->created,
           t->disabled ? "disabled" : "active");
    return 0;
}

static int cmd_tenant(const sg_config *cfg, int argc, char **argv)
{
    if (argc < 1) return usage_error("tenant: create, list, disable or enable?");
    const char *sub = argv[0];
    store s;
    sg_error e;
    sg_error_clear(&e);
    int rc;
    if (!strcmp(sub, "create")) {
        if (argc != 2) return usage_error("usage: tenant create NAME");
        if (!store_open(&s, cfg, false)) return 1;
        char id[SG_TENANT_ID_LEN + 1];
        rc = report(sg_tenant_create(&s.p, s.conn, argv[1], id, &e), &e);
        store_close(&s);
        if (rc) return rc;
        fprintf(stderr, "Created tenant \"%s\" (id %s).\n", argv[1], id);
        fprintf(stderr,
                "Paste this tenant URL into Entra (Provisioning > Admin Credentials > "
                "Tenant URL), then run 'scimgate token generate %s'.\n",
                id);
        if (!cfg->public_url_set)
            fprintf(stderr, "Note: public_url is not set, so the URL uses the listen address; "
                            "set public_url to the HTTPS address Entra reaches.\n");
        printf("%s/scim/v2/%s\n", cfg->public_url, id);
        return 0;
    }
    if (!strcmp(sub, "list")) {
        if (argc != 1) return usage_error("usage: tenant list");
        if (!store_open(&s, cfg, false)) return 1;
        printf("%-32s  %-24s  %-24s  %s\n", "ID", "NAME", "CREATED", "STATUS");
        rc = report(s.p.st->tenant_list(s.conn, print_tenant, NULL, &e), &e);
        store_close(&s);
        return rc;
    }
    if (!strcmp(sub, "disable") || !strcmp(sub, "enable")) {
        if (argc != 2) return usage_error("usage: tenant disable|enable TENANT");
        if (!store_open(&s, cfg, false)) return 1;
        char id[65];
        sg_status st = sg_tenant_resolve(&s.p, s.conn, argv[1], id, &e);
        if (st == SG_OK) st = s.p.st->tenant_set_disabled(s.conn, id, !strcmp(sub, "disable"), &e);
        rc = report(st, &e);
        store_close(&s);
        if (!rc) fprintf(stderr, "Tenant %s %sd.\n", id, sub);
        return rc;
    }
    return usage_error("tenant: create, list, disable or enable?");
}

/* ---- token --------------------------------------------------------------------- */

static int print_token(void *ud, const sg_token *t)
{
    int64_t now = *(int64_t *)ud;
    if (t->kind != SG_TOKEN_SCIM) return 0; /* admin and device tokens are listed elsewhere */
    char created[SG_TIME_MAX], expires[SG_TIME_MAX], revoked[SG_TIME_MAX], used[SG_TIME_MAX];
    fmt_ms(t->created_ms, created);
    fmt_ms(t->expires_ms, expires);
    fmt_ms(t->revoked_ms, revoked);
    fmt_ms(t->last_used_ms, used);
    const char *state = t->revoked_ms                             ? "revoked"
                        : (t->expires_ms && t->expires_ms <= now) ? "expired"
                        : t->expires_ms                           ? "expiring"
                                                                  : "live";
    printf("%-16s  %-24s  %-24s  %-24s  %-24s  %-15s  %s\n", t->id, created, expires, revoked, used,
           t->last_addr && *t->last_addr ? t->last_addr : "-", state);
    return 0;
}

static int cmd_token(const sg_config *cfg, int argc, char **argv)
{
    if (argc < 2) return usage_error("token: generate, list or revoke, and a TENANT");
    const char *sub = argv[0];
    int64_t expires_old = -1;
    const char *expires_txt = NULL;
    int nargs = 0;
    char *args[4];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--expires-old-in") || !strncmp(argv[i], "--expires-old-in=", 17)) {
            const char *v = argv[i][16] == '=' ? argv[i] + 17 : (i + 1 < argc ? argv[++i] : NULL);
            expires_txt = v;
            if (!v || !sg_parse_duration_ms(v, &expires_old))
                return usage_error("--expires-old-in takes a duration such as 90s, 15m, 12h, 7d");
        } else if (!strncmp(argv[i], "--", 2)) {
            return usage_error("unknown flag for token");
        } else if (nargs < 4) {
            args[nargs++] = argv[i];
        }
    }
    store s;
    sg_error e;
    sg_error_clear(&e);
    char tenant[65];
    bool gen = !strcmp(sub, "generate"), list = !strcmp(sub, "list"),
         revoke = !strcmp(sub, "revoke");
    if ((gen || list) && nargs != 1) return usage_error("usage: token generate|list TENANT");
    if (revoke && nargs != 2) return usage_error("usage: token revoke TENANT TOKEN_ID");
    if (!gen && !list && !revoke) return usage_error("token: generate, list or revoke?");
    if (expires_old >= 0 && !gen) return usage_error("--expires-old-in goes with token generate");
    if (!store_open(&s, cfg, gen)) return 1;
    sg_status st = sg_tenant_resolve(&s.p, s.conn, args[0], tenant, &e);
    int rc = 0;
    if (st == SG_OK && gen) {
        char token[SG_TOKEN_MAX], id[SG_TOKEN_ID_LEN + 1];
        st = sg_token_generate(&s.p, s.conn, tenant, expires_old, token, id, &e);
        if (st == SG_OK) {
            fprintf(stderr,
                    "Token %s for tenant %s. It is shown only this once: paste it into "
                    "Entra's Secret Token field now.\n",
                    id, tenant);
            if (expires_old >= 0)
                fprintf(stderr, "The tenant's older tokens stop working in %s.\n", expires_txt);
            printf("%s\n", token);
        }
    } else if (st == SG_OK && list) {
        int64_t now = sg_now_ms();
        printf("%-16s  %-24s  %-24s  %-24s  %-24s  %-15s  %s\n", "ID", "CREATED", "EXPIRES",
               "REVOKED", "LAST_USED", "LAST_ADDRESS", "STATE");
        st = s.p.st->token_list(s.conn, tenant, print_token, &now, &e);
    } else if (st == SG_OK && revoke) {
        st = sg_token_revoke(&s.p, s.conn, tenant, args[1], &e);
        if (st == SG_OK) fprintf(stderr, "Token %s revoked; it stops working at once.\n", args[1]);
    }
    rc = report(st, &e);
    store_close(&s);
    return rc;
}

/* ---- admin ----------------------------------------------------------------------- */

static int cmd_admin(const sg_config *cfg, int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "create"))
        return usage_error("usage: admin create TENANT LOGIN | admin create --operator LOGIN");
    const char *tenant_arg = NULL, *login = NULL;
    bool operator= false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--operator"))
            operator= true;
        else if (!strncmp(argv[i], "--", 2))
            return usage_error("unknown flag for admin create");
        else if (!operator&& !tenant_arg)
            tenant_arg = argv[i];
        else if (!login)
            login = argv[i];
        else
            return usage_error("usage: admin create TENANT LOGIN | --operator LOGIN");
    }
    if (operator&& tenant_arg && !login) login = tenant_arg, tenant_arg = NULL;
    if (!login || (operator&& tenant_arg) || (!operator&& !tenant_arg))
        return usage_error("usage: admin create TENANT LOGIN | admin create --operator LOGIN");
    store s;
    if (!store_open(&s, cfg, true)) return 1;
    sg_error e;
    sg_error_clear(&e);
    char tenant[65] = "", password[48], token[SG_TOKEN_MAX];
    sg_status st = operator? SG_OK : sg_tenant_resolve(&s.p, s.conn, tenant_arg, tenant, &e);
    if (st == SG_OK)
        st = sg_admin_create(&s.p, s.conn, operator? NULL : tenant, login, password, token, &e);
    int rc = report(st, &e);
    store_close(&s);
    if (rc) return rc;
    fprintf(stderr,
            "Admin \"%s\" created for %s. The password (portal) and token (API) are "
            "shown only this once.\n",
            login, operator? "every tenant (operator)" : tenant);
    json_t *j = json_pack("{ssssss}", "login", login, "password", password, "token", token);
    char *txt = json_dumps(j, JSON_COMPACT);
    printf("%s\n", txt);
    free(txt);
    json_decref(j);
    return 0;
}

/* ---- serve ----------------------------------------------------------------------- */

static int cmd_serve(sg_config *cfg)
{
    char err[512];
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    /* Block before any thread starts so that every thread inherits the mask
     * and only sigwait below sees these signals. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (!sg_mkdirs(cfg->data)) {
        fprintf(stderr, "scimgate: cannot create data directory %s: %s\n", cfg->data,
                strerror(errno));
        return 1;
    }
    if (!sg_crypto_init(cfg, err, sizeof err) || !sg_schemas_load(cfg->schemas, err, sizeof err)) {
        sg_log(SG_LOG_ERROR, "main", "%s", err);
        return 1;
    }
    sg_plugins plugins;
    if (!sg_plugins_open(&plugins, cfg, true, err, sizeof err)) {
        sg_log(SG_LOG_ERROR, "main", "%s", err);
        sg_schemas_free();
        return 1;
    }
    /* Before any thread uses the store: count its failures for /metrics. */
    sg_plugins_watch(&plugins, sg_metrics_storage_status);
    sg_metrics_init((size_t)cfg->limits.metrics_tenants, cfg->storage);
    const sg_limits *lim = &cfg->limits;
    sg_server srv = {.cfg = cfg,
                     .plugins = &plugins,
                     .flim = {(size_t)lim->filter_length, (int)lim->filter_depth},
                     .ratelimit = sg_ratelimit_new(
                         (double)lim->tenant_rps,
                         (double)(lim->tenant_burst > 0 ? lim->tenant_burst : lim->tenant_rps))};
    if (lim->tenant_rps > 0 && !srv.ratelimit) {
        sg_log(SG_LOG_ERROR, "main", "out of memory for the rate limits");
        sg_metrics_free();
        sg_plugins_close(&plugins);
        sg_schemas_free();
        return 1;
    }
    sg_http *http = NULL;
    int rc = 1;
    char spool[1024];
    snprintf(spool, sizeof spool, "%s/spool", cfg->data);
    sg_lua_config lcfg = {.dir = cfg->scripts,
                          .spool_dir = spool,
                          .instructions = cfg->limits.lua_instructions,
                          .memory = cfg->limits.lua_memory,
                          .json_depth = (int)cfg->limits.json_depth};
    curl_global_init(CURL_GLOBAL_DEFAULT); /* delivery from invite scripts */
    if (!sg_scripts_start(&lcfg, err, sizeof err)) {
        sg_log(SG_LOG_ERROR, "main", "%s", err);
        goto out;
    }
    if (!sg_touch_start(&plugins) || !sg_outbox_start(&srv)) goto out;
    if (!sg_http_start(&srv, &http, err, sizeof err)) {
        sg_log(SG_LOG_ERROR, "main", "%s", err);
        goto out;
    }
    if (!strncmp(cfg->listen, "0.0.0.0", 7) && !cfg->public_url_set)
        sg_log(SG_LOG_WARN, "main",
               "listening on all interfaces without public_url: tenant URLs "
               "and Location headers will name %s",
               cfg->public_url);
    sg_log(SG_LOG_INFO, "main", "scimgate %s serving SCIM on %s (public URL %s), storage %s",
           SG_VERSION, cfg->listen, cfg->public_url, cfg->storage);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0) continue;
        if (sig == SIGHUP) {
            uint64_t gen = sg_scripts_reload();
            sg_log(SG_LOG_INFO, "main", "SIGHUP: scripts checked, generation %llu serving",
                   (unsigned long long)gen);
            continue;
        }
        sg_log(SG_LOG_INFO, "main", "%s received: finishing in-flight requests",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    }
    sg_http_stop(http);
    rc = 0;
    sg_log(SG_LOG_INFO, "main", "stopped");
out:
    sg_outbox_stop();
    sg_touch_stop();
    sg_scripts_stop();
    sg_ratelimit_free(srv.ratelimit);
    sg_metrics_free();
    sg_plugins_close(&plugins);
    sg_schemas_free();
    curl_global_cleanup();
    return rc;
}

/* ---- main ------------------------------------------------------------------------- */

int sg_cli_main(int argc, char **argv)
{
    if (argc >= 2 &&
        (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(usage, stdout);
        sg_config_print_keys(stdout);
        return 0;
    }
    if (argc >= 2 && (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version"))) {
        printf("scimgate %s\n", SG_VERSION);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "test")) {
        /* Test scripts start their own gateways; no configuration here. */
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int rc = sg_runner_main(argc - 2, argv + 2, sg_paths_self());
        curl_global_cleanup();
        return rc;
    }
    sg_config cfg;
    char err[512];
    if (!sg_config_load(&cfg, &argc, argv, err, sizeof err)) {
        fprintf(stderr, "scimgate: %s\n", err);
        sg_config_free(&cfg);
        return 2;
    }
    sg_log_level level;
    if (!sg_log_parse_level(cfg.log_level, &level)) {
        fprintf(stderr, "scimgate: log_level must be error, warn, info or debug\n");
        sg_config_free(&cfg);
        return 2;
    }
    sg_log_set_level(level);
    if (!sg_fold_init()) {
        fprintf(stderr, "scimgate: the C.UTF-8 locale is missing\n");
        sg_config_free(&cfg);
        return 1;
    }
    int rc;
    if (argc < 2)
        rc = usage_error("a command is required");
    else if (!strcmp(argv[1], "serve"))
        rc = argc == 2 ? cmd_serve(&cfg) : usage_error("serve takes no arguments");
    else if (!strcmp(argv[1], "tenant"))
        rc = cmd_tenant(&cfg, argc - 2, argv + 2);
    else if (!strcmp(argv[1], "token"))
        rc = cmd_token(&cfg, argc - 2, argv + 2);
    else if (!strcmp(argv[1], "admin"))
        rc = cmd_admin(&cfg, argc - 2, argv + 2);
    else if (sg_cli_api_is(argv[1]))
        rc = sg_cli_api_main(&cfg, argc - 1, argv + 1);
    else
        rc = usage_error("unknown command");
    sg_config_free(&cfg);
    return rc;
}
