/*
** Configuration (DESIGN §1c): one file of `key = value` lines (`--config` or
** SCIMGATE_CONFIG), environment variables and flags, with the precedence
** flag > environment > file > default. Every key has all three forms by one
** rule: file `a.b_c`, flag `--a.b_c`, environment `SCIMGATE_A_B_C`.
**
** Plugin options are the keys under `storage.` and `auth.<name>.`; they are
** handed to the plugin without the prefix. In the environment they are
** SCIMGATE_STORAGE_<KEY> (the rest lower-cased).
*/
#ifndef SG_CONFIG_H
#define SG_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "scimgate/host.h"

typedef struct sg_limits {
    int64_t body_bytes;
    int64_t json_depth;
    int64_t filter_length;
    int64_t filter_depth;
    int64_t page_default;
    int64_t page_max;
    int64_t bulk_operations;
    int64_t bulk_bytes;
    int64_t lua_instructions;
    int64_t lua_memory;
    int64_t tenant_rps;
    int64_t tenant_burst; /* 0: the same as tenant_rps */
    int64_t metrics_tenants;
    int64_t workers;
    int64_t longpoll;
    int64_t request_timeout_ms; /* to receive a request's headers; again its body */
    int64_t idle_timeout_ms;    /* an idle keep-alive connection holds a worker */
} sg_limits;

/* The outbox and housekeeping threads (outbox.c); durations in ms. */
typedef struct sg_outbox_config {
    int64_t workers;
    int64_t poll_ms;
    int64_t lease_ms;
    int64_t retry_base_ms;
    int64_t retry_max_ms;
    int64_t attempts;
    int64_t housekeeping_ms;
    int64_t events_ms; /* retention.events */
} sg_outbox_config;

/* The admin portal (portal.c); durations in ms. */
typedef struct sg_portal_config {
    int64_t session_idle_ms;  /* a session unused this long ends */
    int64_t session_max_ms;   /* a session ends this long after sign-in */
    int64_t login_attempts;   /* failed sign-ins per login before back-off */
    int64_t address_attempts; /* failed sign-ins per client address before back-off */
} sg_portal_config;

typedef struct sg_config {
    char *data;
    char *server_key;
    char *schemas;
    char *listen;
    char *admin_listen;
    char *public_url;
    char *scripts;
    char *plugins;
    char *storage;
    char *auth;
    char *tls_cert;
    char *tls_key;
    char *trusted_proxies;
    char *log_level;
    char *portal; /* the portal's static files */
    sg_limits limits;
    sg_outbox_config outbox;
    sg_portal_config portal_cfg;
    bool public_url_set; /* public_url was configured (not derived) */
    /* storage.* and auth.* options, in the order read (later wins). */
    sg_kv *opts;
    size_t nopts;
} sg_config;

/*
** Load the configuration. Recognised `--key value` / `--key=value` flags
** (and --config) are removed from argv; *argc is updated; what is left is
** the command and its own arguments. On error writes a message to `err`
** (size errlen) and returns false.
*/
bool sg_config_load(sg_config *cfg, int *argc, char **argv, char *err, size_t errlen);
void sg_config_free(sg_config *cfg);

/* Options for the plugin `prefix` ("storage." or "auth.bearer."): a new
 * array (free() it, not its strings) of the keys with the prefix removed. */
sg_kv *sg_config_plugin_opts(const sg_config *cfg, const char *prefix, size_t *n);

/* Print every key with its default to `f` (for --help). */
void sg_config_print_keys(void *file);

#endif
