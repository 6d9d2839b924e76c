/*
** scimgate plugin ABI: the storage vtable.
**
** Storage holds everything gateway nodes must share: tenants, token hashes,
** SCIM resources (users and groups) with their index keys, and group
** memberships as rows. It never interprets SCIM: the core validates and
** canonicalises resources, computes index keys and folded values, applies
** PATCH, and hands storage finished JSON text.
**
** Threading: `open`/`close` run once, on the main thread. `connect` is called
** once per worker thread; a connection (sg_conn) is used by one thread at a
** time and every other method takes one. An instance (sg_storage) must allow
** `connect` and `disconnect` from any thread.
**
** Transactions: the core wraps one SCIM request in begin/commit (or
** rollback), so a request is atomic. Methods called outside begin/commit run
** in their own implicit transaction. A method that fails changes nothing,
** even inside a transaction (the transaction goes on); a failed commit
** leaves nothing. begin inside a transaction is an error (SG_EINTERNAL).
**
** Tenancy: every tenant-scoped call names the tenant (an id of at most 64
** bytes); an id that belongs to another tenant is treated as absent
** (SG_ENOTFOUND / no row). A tenant-scoped call naming an unknown tenant
** returns SG_ENOTFOUND.
**
** Memory: inputs are borrowed for the duration of the call (copy what you
** keep). Row pointers handed to callbacks are valid only inside the callback.
** A callback never calls the plugin again on the same connection (a plugin
** may stream rows from a cursor while it calls back).
** Text output goes to caller-owned sg_buf through host->buf_append.
*/
#ifndef SCIMGATE_STORAGE_H
#define SCIMGATE_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "abi.h"
#include "error.h"
#include "filter.h"
#include "host.h"

typedef struct sg_storage sg_storage; /* a plugin instance (opaque)        */
/* sg_conn, a per-thread connection, is declared in host.h. */

typedef enum sg_rtype {
    SG_RT_USER = 1,
    SG_RT_GROUP = 2,
} sg_rtype;

typedef enum sg_txn_mode {
    SG_TXN_READ = 0,  /* only reads follow                                  */
    SG_TXN_WRITE = 1, /* writes follow: take the write lock now            */
} sg_txn_mode;

/* ---- tenants ----------------------------------------------------------- */

typedef struct sg_tenant {
    const char *id;      /* random, unguessable; the URL segment            */
    const char *name;    /* unique, chosen by the operator                  */
    const char *created; /* RFC 3339 UTC                                    */
    int disabled;        /* 1: every credential of the tenant is refused   */
} sg_tenant;

/* Called once per tenant. Return nonzero to stop the iteration. */
typedef int (*sg_tenant_fn)(void *ud, const sg_tenant *t);

/* ---- tokens ------------------------------------------------------------ */

/* Who a token belongs to. Values are never renumbered. */
typedef enum sg_token_kind {
    SG_TOKEN_SCIM = 0,   /* a tenant's SCIM endpoint ("sgt_...")                  */
    SG_TOKEN_ADMIN = 1,  /* an admin ("sga_..."): of one tenant, or an operator
                            (every tenant) when the tenant is empty               */
    SG_TOKEN_DEVICE = 2, /* an admin device ("sgd_...") of one tenant             */
} sg_token_kind;

/* What an auth check needs about a presented token (fixed size, so the
 * lookup never allocates). */
struct sg_token_info {
    char tenant[65];                 /* owning tenant id; "" for operators */
    unsigned char hash[SG_HASH_LEN]; /* host->token_hash of the secret     */
    int64_t expires_ms;              /* 0: never                           */
    int revoked;                     /* 1: revoked                         */
    int tenant_disabled;             /* 1: the tenant is disabled          */
    int kind;                        /* sg_token_kind                      */
    char subject[129];               /* admin login or device id; "" for
                                        SCIM tokens                        */
};

typedef struct sg_token {
    const char *id;            /* public part of the token                      */
    const char *tenant;        /* NULL or "" for an operator's admin token       */
    const unsigned char *hash; /* SG_HASH_LEN bytes (input only)           */
    int64_t created_ms;
    int64_t expires_ms;    /* 0: never                                      */
    int64_t revoked_ms;    /* 0: live                                       */
    int64_t last_used_ms;  /* 0: never used                                 */
    const char *last_addr; /* NULL when never used                          */
    sg_token_kind kind;
    const char *subject; /* admin login or device id; NULL for SCIM tokens */
} sg_token;

typedef int (*sg_token_fn)(void *ud, const sg_token *t);

/* ---- admins ------------------------------------------------------------ */

/* An admin account (the portal's sign-in; API access is by admin token). */
typedef struct sg_admin {
    const char *tenant;        /* NULL or "" for an operator (every tenant)   */
    const char *login;         /* unique per tenant (and among operators)     */
    const char *password_hash; /* the core's KDF string; never the password   */
    int64_t created_ms;
    int disabled;
} sg_admin;

typedef int (*sg_admin_fn)(void *ud, const sg_admin *a);

/* ---- devices ----------------------------------------------------------- */

/* An admin device: it approves invitations with an Ed25519 signature
 * (DESIGN §5). Its API token is a token of kind SG_TOKEN_DEVICE whose
 * subject is the device id. */
typedef struct sg_device {
    const char *id;
    const char *tenant;
    const char *name;
    const unsigned char *public_key; /* 32 bytes (Ed25519)                     */
    int64_t created_ms;
    int64_t revoked_ms; /* 0: live                                             */
} sg_device;

typedef int (*sg_device_fn)(void *ud, const sg_device *d);

/* ---- settings ---------------------------------------------------------- */

/* Called once per setting. Return nonzero to stop. */
typedef int (*sg_setting_fn)(void *ud, const char *key, const char *value);

/* ---- events: the audit trail and the change feed ------------------------ */

/* sg_event.flags */
#define SG_EVENT_CHANGE 0x01u /* part of the change feed (DESIGN §2)        */

typedef struct sg_event {
    int64_t seq; /* output: the cursor; see event_append          */
    int64_t time_ms;
    const char *type;       /* "user.created", "audit.token_used", ...        */
    const char *subject;    /* the user or group id, or NULL                  */
    const char *actor;      /* "token:<id>", "admin:<login>", "device:<id>",
                               "system"                                       */
    const char *request_id; /* or NULL                                        */
    const char *data;       /* small JSON object of details, or NULL: never a
                               secret or a full payload                       */
    uint32_t flags;
} sg_event;

typedef struct sg_event_query {
    int64_t after_seq;        /* only events with seq > after_seq                  */
    const char *subject;      /* only this subject, or NULL                        */
    uint32_t flags;           /* only events with all these flags (0: every one)   */
    int64_t limit;            /* at most this many, in seq order                   */
    int64_t since_ms;         /* only events with time_ms >= since_ms (0: any)     */
    const char *const *types; /* only these types (NULL-terminated), or NULL */
} sg_event_query;

typedef sg_status (*sg_event_fn)(void *ud, const sg_event *e);

/* ---- the outbox --------------------------------------------------------- */

/* An invitation job (DESIGN §5). Statuses are the strings "AwaitingApproval",
 * "Approved", "Sending", "Delivered", "Failed", "Expired", "Cancelled". */
typedef struct sg_job {
    const char *id;
    const char *tenant;
    const char *user_id;
    int64_t user_version; /* the user's meta.version the approval covers    */
    const char *address;  /* where the invitation goes                      */
    const char *status;
    const char *key;     /* idempotency key, carried by every attempt      */
    const char *to_sign; /* the exact text the device signs                */
    int64_t created_ms;
    int64_t expires_ms;      /* the approval must come before this             */
    int64_t approved_ms;     /* 0 until approved                               */
    const char *approved_by; /* device id, or NULL                          */
    int64_t next_attempt_ms;
    int attempts;
    const char *last_error;  /* or NULL                                      */
    const char *lease_owner; /* a node's worker holding the job, or NULL    */
    int64_t lease_until_ms;
    int64_t updated_ms;
} sg_job;

typedef sg_status (*sg_job_fn)(void *ud, const sg_job *j);
/* job_counts: `n` jobs have `status` (borrowed for the call). */
typedef sg_status (*sg_job_count_fn)(void *ud, const char *status, int64_t n);

/* ---- portal sessions (ABI 1.1) --------------------------------------------- */

/* A signed-in admin's portal session. The cookie holds "<id>.<secret>";
 * storage keeps only the HMAC of the secret (host->token_hash), like a
 * token's. Every node of a deployment reads the same rows, so a session
 * that was signed out (deleted) stops working on all of them at once. */
typedef struct sg_session {
    const char *id;            /* public part of the cookie                  */
    const char *tenant;        /* NULL or "" for an operator                 */
    const char *login;         /* the admin's login                          */
    const unsigned char *hash; /* SG_HASH_LEN bytes                          */
    int64_t created_ms;
    int64_t expires_ms;  /* absolute end of the session                */
    int64_t seen_ms;     /* last use, for the idle timeout             */
    int tenant_disabled; /* output of session_get: the tenant is disabled */
} sg_session;

typedef int (*sg_session_fn)(void *ud, const sg_session *s);

/* ---- resources --------------------------------------------------------- */

/* sg_key.flags */
/* At most one resource of the type per tenant may hold this (attr, folded)
 * pair. */
#define SG_KEY_UNIQUE 0x01u

/* An index key the core extracted from a resource. A resource may have
 * several keys with the same `attr` (multi-valued attributes). */
typedef struct sg_key {
    const char *attr;   /* canonical path, as sg_attr_ref.path             */
    const char *value;  /* the value as sent                               */
    const char *folded; /* the compare form (== value when case-exact)     */
    uint32_t flags;
} sg_key;

/* A resource as written by the core, and as read back (keys unset). */
typedef struct sg_resource {
    sg_rtype type;
    const char *id;
    int64_t version;      /* meta.version, kept by the core, grows by one  */
    const char *created;  /* meta.created, RFC 3339                        */
    const char *modified; /* meta.lastModified                             */
    const char *json;     /* canonical body without "meta" and "members"   */
    size_t json_len;
    const sg_key *keys; /* input only */
    size_t nkeys;
} sg_resource;

/* Called once per row. Return SG_OK to continue; any other status stops the
 * iteration and is returned by the method that called it. */
typedef sg_status (*sg_row_fn)(void *ud, const sg_resource *row);

/* A search. Rows come back in `sort` order, else in creation order. */
typedef struct sg_query {
    sg_rtype type;
    const sg_filter *filter; /* NULL: every resource of the type           */
    const sg_attr_ref *sort; /* NULL: creation order                       */
    int sort_descending;
    int64_t start_index; /* 1-based offset into the matching rows      */
    int64_t count;       /* at most this many rows; 0: count only       */
} sg_query;

typedef struct sg_search_out {
    /* The part of the filter the plugin did not compile: NULL when every
     * returned row satisfies the whole filter, else a node of the query's
     * tree (the root, or a child of a top-level AND) that the core must
     * still evaluate on each row. Rows always satisfy what was compiled.
     * Conditions on group membership (SG_ATTR_MEMBERS: members.value eq,
     * members pr) must always compile: members are rows the core cannot
     * see in the body.
     * When non-NULL the plugin returns every candidate row in order,
     * ignoring start_index and count, and `total` is not set. The plugin
     * sets `residual` before its first call of the row callback, so the
     * core can filter rows as they arrive. */
    const sg_filter *residual;
    int64_t total; /* matching rows when residual == NULL, else -1        */
    /* 1 when the rows follow query.sort (or no sort was asked for). When a
     * sort was asked for and the plugin cannot follow it, it sets 0 and
     * returns every matching row in creation order, ignoring start_index and
     * count (total still set), so that the core sorts and pages. */
    int sorted;
} sg_search_out;

/* ---- memberships ------------------------------------------------------- */

typedef struct sg_member {
    const char *value;   /* member id                                      */
    const char *display; /* as sent, or NULL                               */
    sg_rtype type;       /* output: the member's type; input: ignored       */
} sg_member;

typedef sg_status (*sg_member_fn)(void *ud, const sg_member *m);

/* ---- the vtable -------------------------------------------------------- */

typedef struct sg_storage_vtab {
    SG_ABI_HEADER;
    const char *name;

    /* Open an instance with the plugin's options (`storage.KEY = value` in
     * the gateway's configuration, handed over without the prefix) and run
     * schema migrations. `data_dir` is the gateway's data directory.
     * OUT: *out, released with close. */
    sg_status (*open)(const sg_host *host, const char *data_dir, const sg_kv *opts, size_t nopts,
                      sg_storage **out, sg_error *err);
    void (*close)(sg_storage *st);

    /* A connection for the calling thread. OUT: *out, released with
     * disconnect on the same thread. */
    sg_status (*connect)(sg_storage *st, sg_conn **out, sg_error *err);
    void (*disconnect)(sg_conn *c);

    sg_status (*begin)(sg_conn *c, sg_txn_mode mode, sg_error *err);
    sg_status (*commit)(sg_conn *c, sg_error *err);
    void (*rollback)(sg_conn *c); /* no-op outside a transaction */

    /* Tenants. tenant_create: SG_ECONFLICT when the id or name exists.
     * tenant_get: by id, or by unique name; SG_ENOTFOUND. */
    sg_status (*tenant_create)(sg_conn *c, const sg_tenant *t, sg_error *err);
    sg_status (*tenant_get)(sg_conn *c, const char *id_or_name, sg_tenant_fn fn, void *ud,
                            sg_error *err);
    sg_status (*tenant_list)(sg_conn *c, sg_tenant_fn fn, void *ud, sg_error *err);
    sg_status (*tenant_set_disabled)(sg_conn *c, const char *id, int disabled, sg_error *err);

    /* Tokens of every kind. token_info fills a fixed-size record for auth
     * (any tenant, operators included). token_list: the tenant's tokens of
     * every kind, oldest first (tenant NULL or "": the operators' tokens).
     * token_update sets expires_ms and/or revoked_ms of one of the tenant's
     * tokens (a value < 0 leaves that field unchanged); SG_ENOTFOUND.
     * token_touch records last use. */
    sg_status (*token_create)(sg_conn *c, const sg_token *t, sg_error *err);
    sg_status (*token_info)(sg_conn *c, const char *id, sg_token_info *out, sg_error *err);
    sg_status (*token_list)(sg_conn *c, const char *tenant, sg_token_fn fn, void *ud,
                            sg_error *err);
    sg_status (*token_update)(sg_conn *c, const char *tenant, const char *id, int64_t expires_ms,
                              int64_t revoked_ms, sg_error *err);
    sg_status (*token_touch)(sg_conn *c, const char *id, int64_t when_ms, const char *addr,
                             sg_error *err);

    /* Resources. create: SG_ECONFLICT (detail names the attribute) when a
     * SG_KEY_UNIQUE key clashes. replace: the stored version must equal
     * `expected_version` (SG_EPRECOND otherwise; SG_ENOTFOUND when absent);
     * body, version, modified and keys are replaced. remove: also removes
     * the resource's memberships, as a group and as a member. */
    sg_status (*create)(sg_conn *c, const char *tenant, const sg_resource *r, sg_error *err);
    sg_status (*get)(sg_conn *c, const char *tenant, sg_rtype type, const char *id, sg_row_fn fn,
                     void *ud, sg_error *err);
    sg_status (*replace)(sg_conn *c, const char *tenant, const sg_resource *r,
                         int64_t expected_version, sg_error *err);
    sg_status (*remove)(sg_conn *c, const char *tenant, sg_rtype type, const char *id,
                        sg_error *err);
    sg_status (*search)(sg_conn *c, const char *tenant, const sg_query *q, sg_row_fn fn, void *ud,
                        sg_search_out *out, sg_error *err);

    /* Memberships, O(k) in the number of ids given, whatever the group's
     * size. members_add and members_remove are idempotent. members_list
     * reports members in insertion order with their type. resolve sets
     * types[i] to the type of ids[i] in the tenant, or 0 when unknown. */
    sg_status (*members_add)(sg_conn *c, const char *tenant, const char *group_id,
                             const sg_member *m, size_t n, sg_error *err);
    sg_status (*members_remove)(sg_conn *c, const char *tenant, const char *group_id,
                                const char *const *ids, size_t n, sg_error *err);
    sg_status (*members_clear)(sg_conn *c, const char *tenant, const char *group_id, sg_error *err);
    sg_status (*members_list)(sg_conn *c, const char *tenant, const char *group_id, sg_member_fn fn,
                              void *ud, sg_error *err);
    sg_status (*resolve)(sg_conn *c, const char *tenant, const char *const *ids, size_t n,
                         sg_rtype *types, sg_error *err);

    /* Admins. admin_create: SG_ECONFLICT when the login exists for that
     * tenant (or among operators). admin_get: SG_ENOTFOUND when absent. */
    sg_status (*admin_create)(sg_conn *c, const sg_admin *a, sg_error *err);
    sg_status (*admin_get)(sg_conn *c, const char *tenant, const char *login, sg_admin_fn fn,
                           void *ud, sg_error *err);

    /* Devices. device_get/device_list: the tenant's devices (revoked ones
     * included); SG_ENOTFOUND. device_revoke sets revoked_ms. */
    sg_status (*device_create)(sg_conn *c, const sg_device *d, sg_error *err);
    sg_status (*device_get)(sg_conn *c, const char *tenant, const char *id, sg_device_fn fn,
                            void *ud, sg_error *err);
    sg_status (*device_list)(sg_conn *c, const char *tenant, sg_device_fn fn, void *ud,
                             sg_error *err);
    sg_status (*device_revoke)(sg_conn *c, const char *tenant, const char *id, int64_t when_ms,
                               sg_error *err);

    /* A tenant's settings: key = value text. setting_set with value NULL
     * removes the key. settings_list: in key order. */
    sg_status (*setting_set)(sg_conn *c, const char *tenant, const char *key, const char *value,
                             sg_error *err);
    sg_status (*settings_list)(sg_conn *c, const char *tenant, sg_setting_fn fn, void *ud,
                               sg_error *err);

    /* Events. event_append assigns e->seq (written back through *seq): a
     * number that grows in commit order across the whole store, so a
     * reader that has seen seq N never later meets a new event with a seq
     * of N or less, on any node. event_list: the tenant's events matching
     * the query, in seq order. event_purge: removes events with time_ms <
     * before_ms in every tenant, except change-feed events with time_ms >=
     * keep_changes_ms; *removed says how many. */
    sg_status (*event_append)(sg_conn *c, const char *tenant, const sg_event *e, int64_t *seq,
                              sg_error *err);
    sg_status (*event_list)(sg_conn *c, const char *tenant, const sg_event_query *q, sg_event_fn fn,
                            void *ud, sg_error *err);
    sg_status (*event_purge)(sg_conn *c, int64_t before_ms, int64_t keep_changes_ms,
                             int64_t *removed, sg_error *err);

    /* Tombstones: a deleted resource's last body, kept for a grace period
     * (DESIGN §5) outside the resources, so that it never blocks a new
     * resource with the same userName. tombstone_put stores r (keys
     * ignored); tombstone_get: SG_ENOTFOUND; tombstone_remove: idempotent;
     * tombstone_purge removes those with purge_after_ms <= now_ms, of one
     * tenant (NULL: of every tenant). */
    sg_status (*tombstone_put)(sg_conn *c, const char *tenant, const sg_resource *r,
                               int64_t deleted_ms, int64_t purge_after_ms, sg_error *err);
    sg_status (*tombstone_get)(sg_conn *c, const char *tenant, sg_rtype type, const char *id,
                               sg_row_fn fn, void *ud, sg_error *err);
    sg_status (*tombstone_remove)(sg_conn *c, const char *tenant, const char *id, sg_error *err);
    sg_status (*tombstone_purge)(sg_conn *c, const char *tenant, int64_t now_ms, int64_t *removed,
                                 sg_error *err);

    /* The outbox. job_create: SG_ECONFLICT on a duplicate id. job_get:
     * SG_ENOTFOUND. job_update writes every field of j (the job named by
     * j->id in j->tenant) if its stored updated_ms equals
     * expected_updated_ms, else SG_EPRECOND (someone else changed it).
     * job_list: the tenant's jobs, newest first, optionally only of one
     * status and/or one user (NULL: any). job_claim: in any tenant, the
     * due job with the smallest next_attempt_ms (then the oldest) is
     * leased to `owner` until now_ms + lease_ms, set to "Sending", and
     * passed to fn; SG_ENOTFOUND when none is due. Due: "Approved" with
     * next_attempt_ms <= now_ms and no lease or lease_until_ms <= now_ms,
     * or "Sending" with lease_until_ms <= now_ms (its worker died). Exactly
     * one owner holds a job at a time, whatever the number of nodes; it
     * needs no transaction around it. job_expire sets "Expired" on the
     * jobs still "AwaitingApproval" with expires_ms <= now_ms, in every
     * tenant, and passes each to fn. When fn fails, claim and expire
     * change nothing. */
    sg_status (*job_create)(sg_conn *c, const sg_job *j, sg_error *err);
    sg_status (*job_get)(sg_conn *c, const char *tenant, const char *id, sg_job_fn fn, void *ud,
                         sg_error *err);
    sg_status (*job_update)(sg_conn *c, const sg_job *j, int64_t expected_updated_ms,
                            sg_error *err);
    sg_status (*job_list)(sg_conn *c, const char *tenant, const char *status, const char *user_id,
                          sg_job_fn fn, void *ud, sg_error *err);
    sg_status (*job_claim)(sg_conn *c, const char *owner, int64_t now_ms, int64_t lease_ms,
                           sg_job_fn fn, void *ud, sg_error *err);
    sg_status (*job_expire)(sg_conn *c, int64_t now_ms, sg_job_fn fn, void *ud, sg_error *err);

    /* ---- ABI 1.1 (optional: the core checks SG_HAS_MEMBER and NULL) ----
     * Portal sessions.
     * session_create: SG_ECONFLICT on a duplicate id, SG_ENOTFOUND for an
     * unknown tenant. session_get: by id in any tenant (operators'
     * included), tenant_disabled filled in; SG_ENOTFOUND. session_touch sets
     * seen_ms; SG_ENOTFOUND. session_delete: SG_ENOTFOUND when absent.
     * session_purge removes, in every tenant, the sessions with expires_ms
     * <= now_ms or seen_ms < seen_before_ms; *removed says how many. */
    sg_status (*session_create)(sg_conn *c, const sg_session *s, sg_error *err);
    sg_status (*session_get)(sg_conn *c, const char *id, sg_session_fn fn, void *ud, sg_error *err);
    sg_status (*session_touch)(sg_conn *c, const char *id, int64_t seen_ms, sg_error *err);
    sg_status (*session_delete)(sg_conn *c, const char *id, sg_error *err);
    sg_status (*session_purge)(sg_conn *c, int64_t now_ms, int64_t seen_before_ms, int64_t *removed,
                               sg_error *err);

    /* How many jobs each status has, in one tenant (NULL: in every tenant):
     * fn once per status that has at least one job, in status order.
     * SG_ENOTFOUND for an unknown tenant. For /metrics: it must not read the
     * jobs themselves (an index on status serves it). */
    sg_status (*job_counts)(sg_conn *c, const char *tenant, sg_job_count_fn fn, void *ud,
                            sg_error *err);

    /* ABI 1.x: append new methods BELOW this line only. */
} sg_storage_vtab;

#endif
