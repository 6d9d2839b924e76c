/*
** storage_postgres: what the plugin's files share (not an ABI: plugins see
** only core/include/scimgate/). The plugin keeps the behaviour of
** storage_sqlite (the storage contract suite in tests/contract/ is the
** judge) on PostgreSQL 15 through libpq, so that several gateway nodes can
** share one database.
**
** Files:
**   pg.c            open/close, options, schema migrations, connections,
**                   transactions, statement helpers, tenants, tokens,
**                   admins, resources (create/get/replace/remove, keys),
**                   memberships, resolve, registration (the vtab)
**   pg_search.c     the filter AST compiled to SQL (PostgreSQL's half; the
**                   other half, shared with storage_sqlite, is
**                   plugins/common/sqlfilter.c), and search
**   pg_lifecycle.c  devices, settings, events, tombstones, the outbox
**
** Schema (migrations 1 and 2, pg.c; every table carries the tenant's tid):
**   tenants   (tid bigint identity PK, id text UNIQUE, name text UNIQUE,
**              created text, disabled int)
**   tokens    (id text PK, tid bigint NULL (operators), hash bytea,
**              created_ms, expires_ms, revoked_ms, last_used_ms bigint,
**              last_addr text, kind int, subject text)
**   admins    (aid bigint identity PK, tid bigint NULL, login text,
**              password_hash text, created_ms bigint, disabled int;
**              UNIQUE (coalesce(tid, 0), login))
**   resources (rid bigint identity PK, tid, rtype int, id text, version
**              bigint, created text, modified text, body text (the core's
**              canonical JSON, streamed back byte for byte), doc jsonb
**              GENERATED ALWAYS AS (body::jsonb) STORED (what filters
**              read); UNIQUE (tid, id))
**   resource_keys (tid, rtype, attr text, folded text COLLATE "C", rid,
**              value text, uniq int; PK (tid, rtype, attr, folded, rid);
**              a partial UNIQUE index (tid, rtype, attr, folded) WHERE
**              uniq = 1; an index (rid))
**   members   (mid bigint identity PK, group_rid, member_rid, display text,
**              UNIQUE (group_rid, member_rid); index (member_rid))
**   sessions  (migration 2: id text PK, tid bigint NULL (operators), login,
**              hash bytea (32 bytes), created_ms, expires_ms, seen_ms;
**              indexes (expires_ms), (seen_ms)): the portal's sign-ins
**   devices, settings, events, tombstones, jobs: as storage_sqlite's
**              migration 3, with bigint/bytea/text types; events also keep
**              the writing transaction's id (xid8) for the feed (see
**              pg_lifecycle.c).
** Text compares byte-wise: every text column that is compared or ordered
** is COLLATE "C" (the core's folded forms are compared like memcmp).
*/
#ifndef SG_STORAGE_POSTGRES_H
#define SG_STORAGE_POSTGRES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "scimgate/plugin.h"

#define PLUGIN "storage_postgres"

/* Longest tenant id: sg_token_info.tenant and sg_principal.tenant are char[65]. */
#define PG_TENANT_ID_MAX 64
#define PG_MAX_PARAMS    1024 /* a statement's parameters ($1..$N) at most */

/* The instance (sg_storage): options, shared by every connection. */
struct sg_storage {
    const sg_host *host;
    char *dsn;
};

/* One connection per gateway worker thread (never shared between threads). */
struct sg_conn {
    struct sg_storage *st;
    const sg_host *host;
    PGconn *pg;
    int in_txn;    /* the core's begin() ran and no commit/rollback yet */
    int writing;   /* ... with SG_TXN_WRITE: get() locks the row it reads */
    int savepoint; /* nesting counter for pg_wbegin inside a transaction */
    void *priv;    /* pg.c's caches (prepared statements, tenant ids) */
};

/* Parameters of one statement, all sent as text (format 0) except bytea
 * (format 1). Values are borrowed unless added with pg_param_own. */
typedef struct pg_params {
    const char *v[PG_MAX_PARAMS];
    int len[PG_MAX_PARAMS];
    int fmt[PG_MAX_PARAMS];
    int n;
    char *owned[PG_MAX_PARAMS]; /* freed by pg_params_free */
    int nowned;
    int overflow; /* more than PG_MAX_PARAMS were added */
} pg_params;

void pg_params_init(pg_params *p);
void pg_params_free(pg_params *p);
/* Append a parameter; returns its number ($n), or 0 on overflow/oom. */
int pg_param_text(pg_params *p, const char *s);            /* NULL: SQL NULL */
int pg_param_textn(pg_params *p, const char *s, size_t n); /* copied */
int pg_param_i64(pg_params *p, int64_t v);
int pg_param_f64(pg_params *p, double v);
int pg_param_bytea(pg_params *p, const void *b, size_t n); /* binary */

/* A fixed statement: its name (prepared once per connection) and text. */
typedef struct pg_stmt {
    const char *name;
    const char *sql;
} pg_stmt;

/*
** Run `sql` with `p` (may be NULL). With a non-NULL `name` the statement is
** prepared once per connection under that name and reused (fixed SQL only);
** with name NULL, dynamic SQL is prepared through a small per-connection
** cache keyed by its text (the filter compiler's statements: same filter
** shape, same text). On success *out holds the result (PQclear it; NULL
** out: cleared here). Errors are mapped by pg_error.
*/
sg_status pg_exec(sg_conn *c, const char *name, const char *sql, const pg_params *p, PGresult **out,
                  sg_error *err);

/* pg_exec of a fixed statement (prepared under its name). */
sg_status pg_run(sg_conn *c, const pg_stmt *s, const pg_params *p, PGresult **out, sg_error *err);

/* Run a fixed statement that writes (INSERT ... ON CONFLICT DO NOTHING,
 * UPDATE, DELETE) and release `p` (pg_params_free), whatever the outcome;
 * *n is the number of rows it changed (0 on error). The callers decide what
 * 0 means: not found, a clash, a lost compare-and-set. */
sg_status pg_run_changed(sg_conn *c, const pg_stmt *s, pg_params *p, int64_t *n, sg_error *err);

/* Map a failed result (or a broken connection when r is NULL) to an
 * sg_status with a detail: unique_violation 23505 -> SG_ECONFLICT;
 * serialization_failure 40001 and deadlock_detected 40P01 -> SG_EPRECOND
 * (the core retries); connection failures -> SG_EUNAVAIL; the rest
 * SG_EINTERNAL. Never puts a parameter value in the detail. */
sg_status pg_error(sg_conn *c, const PGresult *r, sg_error *err);

/* The tenant's tid (cached per connection); SG_ENOTFOUND when absent. */
sg_status pg_tid(sg_conn *c, const char *tenant, int64_t *tid, sg_error *err);

/*
** A write of several statements that must be whole: outside the core's
** transaction it is its own transaction; inside it, a SAVEPOINT. pg_wend
** commits/releases on SG_OK, else rolls back to the savepoint (or the
** transaction); it returns `st` (or the commit's error).
*/
sg_status pg_wbegin(sg_conn *c, int *implicit, sg_error *err);
sg_status pg_wend(sg_conn *c, int implicit, sg_status st, sg_error *err);

/* A PostgreSQL text[] literal of n strings ('{"a","b"}', quoted and
 * escaped) for a single array parameter; malloc'd (free it). */
char *pg_text_array(const char *const *v, size_t n);

/* Column helpers on a result row. */
int64_t pg_i64(const PGresult *r, int row, int col);
const char *pg_text(const PGresult *r, int row, int col); /* NULL when SQL NULL */
const char *pg_str(const PGresult *r, int row, int col);  /* "" when SQL NULL   */
/* Row `row` of a result whose columns 0..4 are id, version, created,
 * modified and body (resources, tombstones) as an sg_resource of `type`; its
 * strings are the result's. */
sg_resource pg_resource_row(const PGresult *r, int row, sg_rtype type);

/* Run s, a look-up of one resource row ($1 tid, $2 id, $3 type; columns as
 * pg_resource_row), and hand the row to fn (when not NULL): its status is
 * returned. *found is 0 when no row came back (the caller says what is
 * missing). */
sg_status pg_get_resource(sg_conn *c, const pg_stmt *s, int64_t tid, sg_rtype type, const char *id,
                          sg_row_fn fn, void *ud, int *found, sg_error *err);

/* SG_ENOMEM with the detail "out of memory"; returns SG_ENOMEM. */
sg_status pg_oom(sg_error *err);

/* SG_RT_USER or SG_RT_GROUP. */
int pg_valid_rtype(sg_rtype t);

/* pg_search.c */
sg_status pg_search(sg_conn *c, const char *tenant, const sg_query *q, sg_row_fn fn, void *ud,
                    sg_search_out *out, sg_error *err);

/* pg_lifecycle.c: the vtab methods of the lifecycle, defined there. */
sg_status pg_device_create(sg_conn *c, const sg_device *d, sg_error *err);
sg_status pg_device_get(sg_conn *c, const char *tenant, const char *id, sg_device_fn fn, void *ud,
                        sg_error *err);
sg_status pg_device_list(sg_conn *c, const char *tenant, sg_device_fn fn, void *ud, sg_error *err);
sg_status pg_device_revoke(sg_conn *c, const char *tenant, const char *id, int64_t when_ms,
                           sg_error *err);
sg_status pg_setting_set(sg_conn *c, const char *tenant, const char *key, const char *value,
                         sg_error *err);
sg_status pg_settings_list(sg_conn *c, const char *tenant, sg_setting_fn fn, void *ud,
                           sg_error *err);
sg_status pg_event_append(sg_conn *c, const char *tenant, const sg_event *e, int64_t *seq,
                          sg_error *err);
sg_status pg_event_list(sg_conn *c, const char *tenant, const sg_event_query *q, sg_event_fn fn,
                        void *ud, sg_error *err);
sg_status pg_event_purge(sg_conn *c, int64_t before_ms, int64_t keep_changes_ms, int64_t *removed,
                         sg_error *err);
sg_status pg_tombstone_put(sg_conn *c, const char *tenant, const sg_resource *r, int64_t deleted_ms,
                           int64_t purge_after_ms, sg_error *err);
sg_status pg_tombstone_get(sg_conn *c, const char *tenant, sg_rtype type, const char *id,
                           sg_row_fn fn, void *ud, sg_error *err);
sg_status pg_tombstone_remove(sg_conn *c, const char *tenant, const char *id, sg_error *err);
sg_status pg_tombstone_purge(sg_conn *c, const char *tenant, int64_t now_ms, int64_t *removed,
                             sg_error *err);
sg_status pg_job_create(sg_conn *c, const sg_job *j, sg_error *err);
sg_status pg_job_get(sg_conn *c, const char *tenant, const char *id, sg_job_fn fn, void *ud,
                     sg_error *err);
sg_status pg_job_update(sg_conn *c, const sg_job *j, int64_t expected_updated_ms, sg_error *err);
sg_status pg_job_list(sg_conn *c, const char *tenant, const char *status, const char *user_id,
                      sg_job_fn fn, void *ud, sg_error *err);
sg_status pg_job_claim(sg_conn *c, const char *owner, int64_t now_ms, int64_t lease_ms,
                       sg_job_fn fn, void *ud, sg_error *err);
sg_status pg_job_expire(sg_conn *c, int64_t now_ms, sg_job_fn fn, void *ud, sg_error *err);
sg_status pg_job_counts(sg_conn *c, const char *tenant, sg_job_count_fn fn, void *ud,
                        sg_error *err);

#endif
