/*
** storage_postgres: the user lifecycle's storage (DESIGN §5): admin devices,
** tenant settings, events (the audit trail and the change feed), tombstones
** and the invitation outbox. The tables are created by pg.c's migrations;
** the helpers (pg_exec, pg_tid, pg_wbegin/pg_wend, ...) are pg.h's.
**
** Events in commit order. storage.h promises that a reader that has seen seq
** N never later meets a new event with a seq of N or less, on any node. With
** concurrent writers a number drawn at insert time (a sequence) is not
** enough: a transaction that drew seq 10 may commit after one that drew 11,
** and a reader that saw 11 would skip 10. So:
**
**   - seq is the writing transaction's id (xid8, cluster-wide, never reused)
**     times 2^20, plus the number of events that transaction appended
**     before: seq order is xid order, then append order within a
**     transaction. events.xid keeps the xid itself (a CHECK ties the two);
**   - event_list returns only events whose transaction is older than every
**     transaction still in progress: seq < pg_snapshot_xmin(snapshot) * 2^20.
**     A transaction older than the snapshot's xmin has ended, so its events
**     are all visible (or gone with a rollback); any transaction that may
**     still commit an event has an xid >= xmin, hence a seq above every seq
**     returned. A reader therefore never skips an event.
**
** Ordering by a sequence drawn at insert and filtering by xmin would not do:
** a transaction may take its xid long before it appends its event (it wrote
** a user first), so sequence order and xid order differ.
**
** The price: the feed shows an event only once every transaction that took
** an xid before it has ended (on the whole PostgreSQL cluster). A
** transaction that stays open holds the feed back until it ends. Inside the
** caller's own transaction its own events are listed too (read your
** writes, as storage_sqlite does: the deletion-spike count runs in the
** deleting transaction); a cursor taken there may run ahead of other
** transactions still open, so the change feed is read outside write
** transactions, as the core does.
**
** The outbox. job_claim is one UPDATE of the job chosen by a sub-select with
** FOR UPDATE SKIP LOCKED: two nodes claiming at once lock different rows,
** and PostgreSQL re-checks the due condition on the newest row version
** before locking it, so a job is leased to one owner. job_claim and
** job_expire run in a write unit (pg_wbegin) and hand the changed jobs to
** the callback before it ends: when the callback fails, nothing changed.
*/
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg.h"

/* Ed25519 public keys. */
#define DEVICE_KEY_LEN 32
/* A device id is the subject of the device's token (sg_token_info). */
#define SUBJECT_MAX 128

/* Run a statement whose only parameters are a tid and then `v` (may be
 * NULL); *out as pg_exec. */
static sg_status run_tid(sg_conn *c, const pg_stmt *s, int64_t tid, const char *v, PGresult **out,
                         sg_error *err)
{
    pg_params p;
    pg_params_init(&p);
    pg_param_i64(&p, tid);
    if (v) pg_param_text(&p, v);
    sg_status st = pg_run(c, s, &p, out, err);
    pg_params_free(&p);
    return st;
}

/* ---- devices ----------------------------------------------------------------------------- */

#define DEV_COLS "id, name, public_key, created_ms, revoked_ms"

static const pg_stmt DEV_INS = {
    "dev_ins", "INSERT INTO devices (id, tid, name, public_key, created_ms, revoked_ms)"
               " VALUES ($1, $2::bigint, $3, $4::bytea, $5::bigint, $6::bigint)"
               " ON CONFLICT DO NOTHING"};
static const pg_stmt DEV_GET = {"dev_get", "SELECT " DEV_COLS " FROM devices"
                                           " WHERE tid = $1::bigint AND id = $2"};
static const pg_stmt DEV_LIST = {"dev_list", "SELECT " DEV_COLS " FROM devices"
                                             " WHERE tid = $1::bigint ORDER BY created_ms, dno"};
static const pg_stmt DEV_REVOKE = {"dev_revoke", "UPDATE devices SET revoked_ms = $3::bigint"
                                                 " WHERE tid = $1::bigint AND id = $2"};

/* An existing id is ON CONFLICT DO NOTHING: no error, a transaction goes on. */
sg_status pg_device_create(sg_conn *c, const sg_device *d, sg_error *err)
{
    if (!d || !d->id || !*d->id || !d->name || !d->public_key)
        return sg_error_set(err, SG_EINVALID, "invalidValue",
                            "a device needs an id, a name and a public key");
    if (strlen(d->id) > SUBJECT_MAX)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "device id longer than %d bytes",
                            SUBJECT_MAX);
    int64_t tid;
    sg_status st = pg_tid(c, d->tenant, &tid, err);
    if (st != SG_OK) return st;
    pg_params p;
    int64_t n;
    pg_params_init(&p);
    pg_param_text(&p, d->id);
    pg_param_i64(&p, tid);
    pg_param_text(&p, d->name);
    pg_param_bytea(&p, d->public_key, DEVICE_KEY_LEN);
    pg_param_i64(&p, d->created_ms);
    pg_param_i64(&p, d->revoked_ms);
    st = pg_run_changed(c, &DEV_INS, &p, &n, err);
    if (st != SG_OK) return st;
    return n == 1 ? SG_OK
                  : sg_error_set(err, SG_ECONFLICT, "uniqueness", "device id already exists");
}

/*
** Hand row i (DEV_COLS) to fn; *stop is fn's answer. 0 when the stored key is
** not 32 bytes (the CHECK constraint makes that a bug).
*/
static int device_row(const PGresult *r, int i, const char *tenant, sg_device_fn fn, void *ud,
                      int *stop)
{
    size_t len = 0;
    unsigned char *key = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 2), &len);
    if (!key || len != DEVICE_KEY_LEN) {
        PQfreemem(key);
        return 0;
    }
    sg_device d = {
        .id = pg_str(r, i, 0),
        .tenant = tenant,
        .name = pg_str(r, i, 1),
        .public_key = key,
        .created_ms = pg_i64(r, i, 3),
        .revoked_ms = pg_i64(r, i, 4),
    };
    *stop = fn ? fn(ud, &d) : 0;
    PQfreemem(key);
    return 1;
}

static sg_status bad_device_row(sg_conn *c, sg_error *err)
{
    c->host->log(SG_LOG_ERROR, PLUGIN, "device row with a bad public key");
    return sg_error_set(err, SG_EINTERNAL, NULL, "storage error");
}

sg_status pg_device_get(sg_conn *c, const char *tenant, const char *id, sg_device_fn fn, void *ud,
                        sg_error *err)
{
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no device id given");
    int64_t tid;
    PGresult *r;
    int stop;
    sg_status st = pg_tid(c, tenant, &tid, err);
    if (st != SG_OK || (st = run_tid(c, &DEV_GET, tid, id, &r, err)) != SG_OK) return st;
    if (PQntuples(r) == 0)
        st = sg_error_set(err, SG_ENOTFOUND, NULL, "no such device");
    else if (!device_row(r, 0, tenant, fn, ud, &stop))
        st = bad_device_row(c, err);
    PQclear(r);
    return st;
}

sg_status pg_device_list(sg_conn *c, const char *tenant, sg_device_fn fn, void *ud, sg_error *err)
{
    if (!fn) return sg_error_set(err, SG_EINVALID, NULL, "no callback");
    int64_t tid;
    PGresult *r;
    int stop = 0;
    sg_status st = pg_tid(c, tenant, &tid, err);
    if (st != SG_OK || (st = run_tid(c, &DEV_LIST, tid, NULL, &r, err)) != SG_OK) return st;
    for (int i = 0; !stop && i < PQntuples(r); i++) {
        if (!device_row(r, i, tenant, fn, ud, &stop)) {
            st = bad_device_row(c, err);
            break;
        }
    }
    PQclear(r);
    return st;
}

sg_status pg_device_revoke(sg_conn *c, const char *tenant, const char *id, int64_t when_ms,
                           sg_error *err)
{
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no device id given");
    int64_t tid;
    sg_status st = pg_tid(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    pg_params p;
    int64_t n;
    pg_params_init(&p);
    pg_param_i64(&p, tid);
    pg_param_text(&p, id);
    pg_param_i64(&p, when_ms);
    st = pg_run_changed(c, &DEV_REVOKE, &p, &n, err);
    if (st != SG_OK) return st;
    return n ? SG_OK : sg_error_set(err, SG_ENOTFOUND, NULL, "no such device");
}

/* ---- settings ---------------------------------------------------------------------------- */

static const pg_stmt SET_PUT = {"set_put",
                                "INSERT INTO settings (tid, key, value)"
                                " VALUES ($1::bigint, $2, $3)"
                                " ON CONFLICT (tid, key) DO UPDATE SET value = excluded.value"};
static const pg_stmt SET_DEL = {"set_del",
                                "DELETE FROM settings WHERE tid = $1::bigint AND key = $2"};
/* key is COLLATE "C": byte order. */
static const pg_stmt SET_LIST = {"set_list", "SELECT key, value FROM settings"
                                             " WHERE tid = $1::bigint ORDER BY key"};

sg_status pg_setting_set(sg_conn *c, const char *tenant, const char *key, const char *value,
                         sg_error *err)
{
    if (!key || !*key) return sg_error_set(err, SG_EINVALID, "invalidValue", "no setting name");
    int64_t tid;
    sg_status st = pg_tid(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    pg_params p;
    pg_params_init(&p);
    pg_param_i64(&p, tid);
    pg_param_text(&p, key);
    if (value) pg_param_text(&p, value);
    st = pg_run(c, value ? &SET_PUT : &SET_DEL, &p, NULL, err);
    pg_params_free(&p);
    return st;
}

sg_status pg_settings_list(sg_conn *c, const char *tenant, sg_setting_fn fn, void *ud,
                           sg_error *err)
{
    if (!fn) return sg_error_set(err, SG_EINVALID, NULL, "no callback");
    int64_t tid;
    PGresult *r;
    sg_status st = pg_tid(c, tenant, &tid, err);
    if (st != SG_OK || (st = run_tid(c, &SET_LIST, tid, NULL, &r, err)) != SG_OK) return st;
    for (int i = 0; i < PQntuples(r); i++)
        if (fn(ud, pg_str(r, i, 0), pg_str(r, i, 1))) break;
    PQclear(r);
    return SG_OK;
}

/* ---- events ----------------------------------------------------------------------------- */

/* 2^20: events one transaction may append (seq = xid * EV_SPAN + n). */
#define EV_SPAN "1048576"
/* How long event_list outside a transaction waits for older transactions
 * to end before it lists (see wait_for_lag). */
#define LAG_WAIT_MS 500

/* seq for the next event of this transaction: its xid's range, after the
 * events it appended already (read through the primary key). */
static const pg_stmt EV_INS = {
    "ev_ins",
    "INSERT INTO events (seq, tid, time_ms, type, subject, actor, request_id, data, flags)"
    " SELECT coalesce((SELECT max(e.seq) + 1 FROM events e WHERE e.seq >= b.base"
    " AND e.seq < b.base + " EV_SPAN "), b.base),"
    " $1::bigint, $2::bigint, $3, $4, $5, $6, $7, $8::bigint"
    " FROM (SELECT pg_current_xact_id()::text::bigint * " EV_SPAN " AS base) AS b"
    " RETURNING seq"};

/* What a reader may see: events of transactions older than every one still
 * in progress, and the reader's own transaction's (see the top). */
#define EV_VISIBLE                                                                                 \
    " AND (seq < (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint * " EV_SPAN ")"     \
    " OR seq / " EV_SPAN " = (SELECT pg_current_xact_id_if_assigned()::text::bigint))"
#define EV_COLS "seq, time_ms, type, subject, actor, request_id, data, flags"
/* $1 tid, $2 after_seq, $3 flags (every one of them; 0: any event), $4 the
 * limit (NULL: none), $5 since_ms; then $6 subject, $7 types. */
#define EV_WHERE                                                                                   \
    " FROM events WHERE tid = $1::bigint AND seq > $2::bigint"                                     \
    " AND (flags & $3::bigint) = $3::bigint AND time_ms >= $5::bigint"
#define EV_ORDER " ORDER BY seq LIMIT $4::bigint"

static const pg_stmt EV_LIST = {"ev_list", "SELECT " EV_COLS EV_WHERE EV_VISIBLE EV_ORDER};
static const pg_stmt EV_LIST_SUBJECT = {"ev_list_subject", "SELECT " EV_COLS EV_WHERE
                                                           " AND subject = $6" EV_VISIBLE EV_ORDER};
static const pg_stmt EV_LIST_TYPES = {
    "ev_list_types", "SELECT " EV_COLS EV_WHERE " AND ($6::text IS NULL OR subject = $6)"
                     " AND type = ANY ($7::text[])" EV_VISIBLE EV_ORDER};
/* Is the tenant's newest committed event still hidden by a transaction that
 * took its xid earlier and is still open? */
static const pg_stmt EV_LAG = {
    "ev_lag", "SELECT (SELECT max(seq) FROM events WHERE tid = $1::bigint)"
              " >= pg_snapshot_xmin(pg_current_snapshot())::text::bigint * " EV_SPAN};
/* $3 is SG_EVENT_CHANGE. */
static const pg_stmt EV_PURGE = {"ev_purge",
                                 "DELETE FROM events WHERE time_ms < $1::bigint"
                                 " AND NOT ((flags & $3::bigint) <> 0 AND time_ms >= $2::bigint)"};

sg_status pg_event_append(sg_conn *c, const char *tenant, const sg_event *e, int64_t *seq,
                          sg_error *err)
{
    if (!e || !e->type || !*e->type || !e->actor)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "an event needs a type and an actor");
    int64_t tid;
    sg_status st = pg_tid(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    pg_params p;
    PGresult *r;
    pg_params_init(&p);
    pg_param_i64(&p, tid);
    pg_param_i64(&p, e->time_ms);
    pg_param_text(&p, e->type);
    pg_param_text(&p, e->subject);
    pg_param_text(&p, e->actor);
    pg_param_text(&p, e->request_id);
    pg_param_text(&p, e->data);
    pg_param_i64(&p, (int64_t)e->flags);
    st = pg_run(c, &EV_INS, &p, &r, err);
    pg_params_free(&p);
    if (st != SG_OK) return st;
    if (seq) *seq = PQntuples(r) == 1 ? pg_i64(r, 0, 0) : 0;
    PQclear(r);
    return SG_OK;
}

/* The query's parameters, in EV_WHERE's order. */
static int event_params(pg_params *p, int64_t tid, const sg_event_query *q)
{
    pg_params_init(p);
    pg_param_i64(p, tid);
    pg_param_i64(p, q->after_seq);
    pg_param_i64(p, (int64_t)q->flags);
    if (q->limit > 0)
        pg_param_i64(p, q->limit);
    else
        pg_param_text(p, NULL);
    pg_param_i64(p, q->since_ms);
    if (q->subject || q->types) pg_param_text(p, q->subject);
    if (!q->types) return 1;
    size_t n = 0;
    while (q->types[n]) n++;
    char *types = pg_text_array(q->types, n);
    if (!types) {
        p->overflow = 1;
        return 0;
    }
    /* freed by pg_params_free */
    p->owned[p->nowned++] = types;
    return pg_param_text(p, types);
}

/*
** Freshness, not correctness: outside a transaction, wait a little (at most
** LAG_WAIT_MS) until the tenant's events committed before this call are
** visible, i.e. until the transactions that took their xid before them
** have ended (usually a few milliseconds: other requests in flight). Then
** a caller sees what it (or anyone) committed before it asked. After the
** wait, or inside a transaction (whose snapshot may be fixed), the list
** holds what is safe to show at that moment.
*/
static sg_status wait_for_lag(sg_conn *c, int64_t tid, sg_error *err)
{
    int64_t waited = 0, pause = 1;
    for (;;) {
        PGresult *r;
        sg_status st = run_tid(c, &EV_LAG, tid, NULL, &r, err);
        if (st != SG_OK) return st;
        const char *hidden = pg_text(r, 0, 0);
        int lagging = hidden && *hidden == 't';
        PQclear(r);
        if (!lagging || waited >= LAG_WAIT_MS) return SG_OK;
        struct timespec ts = {0, (long)pause * 1000000L};
        nanosleep(&ts, NULL);
        waited += pause;
        pause = pause < 16 ? pause * 2 : 16;
    }
}

sg_status pg_event_list(sg_conn *c, const char *tenant, const sg_event_query *q, sg_event_fn fn,
                        void *ud, sg_error *err)
{
    static const sg_event_query every = {0};
    if (!fn) return sg_error_set(err, SG_EINVALID, NULL, "no callback");
    if (!q) q = &every;
    int64_t tid;
    sg_status st = pg_tid(c, tenant, &tid, err);
    if (st == SG_OK && !c->in_txn && !c->savepoint) st = wait_for_lag(c, tid, err);
    if (st != SG_OK) return st;
    const pg_stmt *s = q->types ? &EV_LIST_TYPES : q->subject ? &EV_LIST_SUBJECT : &EV_LIST;
    pg_params p;
    PGresult *r;
    event_params(&p, tid, q);
    st = pg_run(c, s, &p, &r, err);
    pg_params_free(&p);
    if (st != SG_OK) return st;
    for (int i = 0; st == SG_OK && i < PQntuples(r); i++) {
        sg_event e = {
            .seq = pg_i64(r, i, 0),
            .time_ms = pg_i64(r, i, 1),
            .type = pg_str(r, i, 2),
            .subject = pg_text(r, i, 3),
            .actor = pg_str(r, i, 4),
            .request_id = pg_text(r, i, 5),
            .data = pg_text(r, i, 6),
            .flags = (uint32_t)pg_i64(r, i, 7),
        };
        st = fn(ud, &e);
    }
    PQclear(r);
    return st;
}

/* Run a DELETE whose parameters are int64 values; *removed: rows deleted. */
static sg_status delete_count(sg_conn *c, const pg_stmt *s, const int64_t *args, int nargs,
                              int64_t *removed, sg_error *err)
{
    pg_params p;
    int64_t n;
    pg_params_init(&p);
    for (int i = 0; i < nargs; i++) pg_param_i64(&p, args[i]);
    sg_status st = pg_run_changed(c, s, &p, &n, err);
    if (st == SG_OK && removed) *removed = n;
    return st;
}

/* seq is never reused after a purge: it is made of transaction ids. */
sg_status pg_event_purge(sg_conn *c, int64_t before_ms, int64_t keep_changes_ms, int64_t *removed,
                         sg_error *err)
{
    const int64_t args[3] = {before_ms, keep_changes_ms, (int64_t)SG_EVENT_CHANGE};
    if (removed) *removed = 0;
    return delete_count(c, &EV_PURGE, args, 3, removed, err);
}

/* ---- tombstones ------------------------------------------------------------------------ */

static const pg_stmt TS_PUT = {
    "ts_put", "INSERT INTO tombstones (tid, rtype, id, version, created, modified, body,"
              " deleted_ms, purge_after_ms)"
              " VALUES ($1::bigint, $2::int, $3, $4::bigint, $5, $6, $7, $8::bigint, $9::bigint)"
              " ON CONFLICT (tid, id) DO UPDATE SET rtype = excluded.rtype,"
              " version = excluded.version, created = excluded.created,"
              " modified = excluded.modified, body = excluded.body,"
              " deleted_ms = excluded.deleted_ms, purge_after_ms = excluded.purge_after_ms"};
static const pg_stmt TS_GET = {"ts_get",
                               "SELECT id, version, created, modified, body FROM tombstones"
                               " WHERE tid = $1::bigint AND id = $2 AND rtype = $3::int"};
static const pg_stmt TS_DEL = {"ts_del",
                               "DELETE FROM tombstones WHERE tid = $1::bigint AND id = $2"};
static const pg_stmt TS_PURGE_ALL = {"ts_purge_all",
                                     "DELETE FROM tombstones WHERE purge_after_ms <= $1::bigint"};
static const pg_stmt TS_PURGE_ONE = {"ts_purge_one",
                                     "DELETE FROM tombstones WHERE purge_after_ms <= $1::bigint"
                                     " AND tid = $2::bigint"};

sg_status pg_tombstone_put(sg_conn *c, const char *tenant, const sg_resource *r, int64_t deleted_ms,
                           int64_t purge_after_ms, sg_error *err)
{
    if (!r || !r->id || !*r->id || !r->json || !pg_valid_rtype(r->type))
        return sg_error_set(err, SG_EINVALID, "invalidValue", "incomplete resource");
    if (r->json_len > INT_MAX) return sg_error_set(err, SG_ETOOMANY, NULL, "resource too large");
    int64_t tid;
    sg_status st = pg_tid(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    char now[SG_TIME_MAX];
    if (!r->created || !r->modified) c->host->format_time(c->host->now_ms(), now);
    pg_params p;
    pg_params_init(&p);
    pg_param_i64(&p, tid);
    pg_param_i64(&p, r->type);
    pg_param_text(&p, r->id);
    pg_param_i64(&p, r->version);
    pg_param_text(&p, r->created ? r->created : now);
    pg_param_text(&p, r->modified ? r->modified : now);
    pg_param_textn(&p, r->json, r->json_len);
    pg_param_i64(&p, deleted_ms);
    pg_param_i64(&p, purge_after_ms);
    st = pg_run(c, &TS_PUT, &p, NULL, err);
    pg_params_free(&p);
    return st;
}

sg_status pg_tombstone_get(sg_conn *c, const char *tenant, sg_rtype type, const char *id,
                           sg_row_fn fn, void *ud, sg_error *err)
{
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no id given");
    int64_t tid;
    int found;
    sg_status st = pg_tid(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    st = pg_get_resource(c, &TS_GET, tid, type, id, fn, ud, &found, err);
    if (st != SG_OK || found) return st;
    return sg_error_set(err, SG_ENOTFOUND, NULL, "no deleted %s \"%.128s\"",
                        type == SG_RT_GROUP ? "Group" : "User", id);
}

sg_status pg_tombstone_remove(sg_conn *c, const char *tenant, const char *id, sg_error *err)
{
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no id given");
    int64_t tid;
    sg_status st = pg_tid(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    return run_tid(c, &TS_DEL, tid, id, NULL, err);
}

sg_status pg_tombstone_purge(sg_conn *c, const char *tenant, int64_t now_ms, int64_t *removed,
                             sg_error *err)
{
    int64_t args[2] = {now_ms, 0};
    if (removed) *removed = 0;
    if (!tenant) return delete_count(c, &TS_PURGE_ALL, args, 1, removed, err);
    sg_status st = pg_tid(c, tenant, &args[1], err);
    if (st != SG_OK) return st;
    return delete_count(c, &TS_PURGE_ONE, args, 2, removed, err);
}

/* ---- the outbox ------------------------------------------------------------------------- */

/* The columns job_row() reads, in its order; statements that span tenants
 * add the tenant's id as one more column. */
#define JOB_COLS                                                                                   \
    "id, user_id, user_version, address, status, idem_key, to_sign, created_ms, expires_ms,"       \
    " approved_ms, approved_by, next_attempt_ms, attempts, last_error, lease_owner,"               \
    " lease_until_ms, updated_ms"
#define JOB_TENANT_COL " (SELECT t.id FROM tenants t WHERE t.tid = jobs.tid)"
#define JOB_LIST_SQL   "SELECT " JOB_COLS " FROM jobs WHERE tid = $1::bigint"
/* Newest first; jno breaks ties in creation order (newest first too). */
#define JOB_LIST_ORDER " ORDER BY created_ms DESC, jno DESC"
/* A job a worker may claim at `now`: approved and due with its lease free,
 * or held by a worker whose lease ran out (it died while sending). */
#define JOB_DUE_SQL(now)                                                                           \
    "((status = 'Approved' AND next_attempt_ms <= " now " AND (lease_owner IS NULL OR"             \
    " lease_until_ms <= " now ")) OR (status = 'Sending' AND lease_until_ms <= " now "))"
/* $3..$18: the fields in JOB_COLS order after the id ($1; $2 is the tid). */
#define JOB_FIELDS                                                                                 \
    "$3, $4::bigint, $5, $6, $7, $8, $9::bigint, $10::bigint, $11::bigint, $12, $13::bigint,"      \
    " $14::int, $15, $16, $17::bigint, $18::bigint"

static const pg_stmt JOB_INS = {
    "job_ins", "INSERT INTO jobs (id, tid, user_id, user_version, address, status, idem_key,"
               " to_sign, created_ms, expires_ms, approved_ms, approved_by, next_attempt_ms,"
               " attempts, last_error, lease_owner, lease_until_ms, updated_ms)"
               " VALUES ($1, $2::bigint, " JOB_FIELDS ") ON CONFLICT DO NOTHING"};
static const pg_stmt JOB_GET = {"job_get", JOB_LIST_SQL " AND id = $2"};
/* A compare-and-set on updated_ms ($19). */
static const pg_stmt JOB_UPD = {
    "job_upd", "UPDATE jobs SET (user_id, user_version, address, status, idem_key, to_sign,"
               " created_ms, expires_ms, approved_ms, approved_by, next_attempt_ms, attempts,"
               " last_error, lease_owner, lease_until_ms, updated_ms) = (" JOB_FIELDS ")"
               " WHERE id = $1 AND tid = $2::bigint AND updated_ms = $19::bigint"};
static const pg_stmt JOB_EXISTS = {"job_exists",
                                   "SELECT 1 FROM jobs WHERE tid = $1::bigint AND id = $2"};
static const pg_stmt JOB_LIST = {"job_list", JOB_LIST_SQL JOB_LIST_ORDER};
static const pg_stmt JOB_LIST_STATUS = {"job_list_status",
                                        JOB_LIST_SQL " AND status = $2" JOB_LIST_ORDER};
static const pg_stmt JOB_LIST_USER = {"job_list_user",
                                      JOB_LIST_SQL " AND user_id = $2" JOB_LIST_ORDER};
static const pg_stmt JOB_LIST_BOTH = {"job_list_both", JOB_LIST_SQL
                                      " AND status = $2 AND user_id = $3" JOB_LIST_ORDER};
/* Read-only probes, so that idle pollers open no write transaction. */
static const pg_stmt JOB_DUE = {"job_due",
                                "SELECT 1 FROM jobs WHERE " JOB_DUE_SQL("$1::bigint") " LIMIT 1"};
static const pg_stmt JOB_OVERDUE = {"job_overdue",
                                    "SELECT 1 FROM jobs WHERE status = 'AwaitingApproval'"
                                    " AND expires_ms <= $1::bigint LIMIT 1"};
/* The sub-select locks the job it picks, skipping jobs that another claimer
 * holds; the row lock re-checks the due condition on the newest version.
 * $1 owner, $2 now, $3 the lease's end. */
static const pg_stmt JOB_CLAIM = {
    "job_claim",
    "UPDATE jobs SET lease_owner = $1, lease_until_ms = $3::bigint, status = 'Sending',"
    " updated_ms = $2::bigint"
    " WHERE id = (SELECT id FROM jobs WHERE " JOB_DUE_SQL("$2::bigint") " ORDER BY next_attempt_ms,"
                                                                        " created_ms, jno LIMIT 1"
                                                                        " FOR UPDATE SKIP LOCKED)"
                                                                        " RETURNING " JOB_COLS
                                                                        "," JOB_TENANT_COL};
static const pg_stmt JOB_EXPIRE = {"job_expire",
                                   "UPDATE jobs SET status = 'Expired', updated_ms = $1::bigint"
                                   " WHERE status = 'AwaitingApproval' AND expires_ms <= $1::bigint"
                                   " RETURNING " JOB_COLS "," JOB_TENANT_COL};

/* Index-only: jobs_tenant (tid, status, ...) and jobs_due (status, ...). */
static const pg_stmt JOB_COUNTS = {"job_counts",
                                   "SELECT status, count(*) FROM jobs WHERE tid = $1::bigint"
                                   " GROUP BY status ORDER BY status COLLATE \"C\""};
static const pg_stmt JOB_COUNTS_ALL = {"job_counts_all",
                                       "SELECT status, count(*) FROM jobs GROUP BY status"
                                       " ORDER BY status COLLATE \"C\""};

static sg_status check_job(const sg_job *j, sg_error *err)
{
    if (!j || !j->id || !*j->id || !j->user_id || !*j->user_id || !j->status || !*j->status ||
        !j->address || !j->key || !j->to_sign)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "incomplete job");
    return SG_OK;
}

/* Parameters $1 id, $2 tid and $3..$18 in JOB_COLS order after the id. */
static void job_params(pg_params *p, int64_t tid, const sg_job *j)
{
    pg_params_init(p);
    pg_param_text(p, j->id);
    pg_param_i64(p, tid);
    pg_param_text(p, j->user_id);
    pg_param_i64(p, j->user_version);
    pg_param_text(p, j->address);
    pg_param_text(p, j->status);
    pg_param_text(p, j->key);
    pg_param_text(p, j->to_sign);
    pg_param_i64(p, j->created_ms);
    pg_param_i64(p, j->expires_ms);
    pg_param_i64(p, j->approved_ms);
    pg_param_text(p, j->approved_by);
    pg_param_i64(p, j->next_attempt_ms);
    pg_param_i64(p, j->attempts);
    pg_param_text(p, j->last_error);
    pg_param_text(p, j->lease_owner);
    pg_param_i64(p, j->lease_until_ms);
    pg_param_i64(p, j->updated_ms);
}

/* Job i of a result in JOB_COLS order; `tenant` NULL: read from column 17. */
static void job_row(const PGresult *r, int i, const char *tenant, sg_job *j)
{
    *j = (sg_job){
        .id = pg_str(r, i, 0),
        .tenant = tenant ? tenant : pg_str(r, i, 17),
        .user_id = pg_str(r, i, 1),
        .user_version = pg_i64(r, i, 2),
        .address = pg_str(r, i, 3),
        .status = pg_str(r, i, 4),
        .key = pg_str(r, i, 5),
        .to_sign = pg_str(r, i, 6),
        .created_ms = pg_i64(r, i, 7),
        .expires_ms = pg_i64(r, i, 8),
        .approved_ms = pg_i64(r, i, 9),
        .approved_by = pg_text(r, i, 10),
        .next_attempt_ms = pg_i64(r, i, 11),
        .attempts = (int)pg_i64(r, i, 12),
        .last_error = pg_text(r, i, 13),
        .lease_owner = pg_text(r, i, 14),
        .lease_until_ms = pg_i64(r, i, 15),
        .updated_ms = pg_i64(r, i, 16),
    };
}

/* Hand every job of r to fn until it fails; that status is returned. */
static sg_status job_rows(const PGresult *r, const char *tenant, sg_job_fn fn, void *ud)
{
    sg_status st = SG_OK;
    for (int i = 0; st == SG_OK && i < PQntuples(r); i++) {
        sg_job j;
        job_row(r, i, tenant, &j);
        if (fn) st = fn(ud, &j);
    }
    return st;
}

/* An existing id is ON CONFLICT DO NOTHING: no error, a transaction goes on. */
sg_status pg_job_create(sg_conn *c, const sg_job *j, sg_error *err)
{
    sg_status st = check_job(j, err);
    if (st != SG_OK) return st;
    int64_t tid;
    if ((st = pg_tid(c, j->tenant, &tid, err)) != SG_OK) return st;
    pg_params p;
    int64_t n;
    job_params(&p, tid, j);
    st = pg_run_changed(c, &JOB_INS, &p, &n, err);
    if (st != SG_OK) return st;
    return n == 1 ? SG_OK : sg_error_set(err, SG_ECONFLICT, "uniqueness", "job id already exists");
}

sg_status pg_job_get(sg_conn *c, const char *tenant, const char *id, sg_job_fn fn, void *ud,
                     sg_error *err)
{
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no job id given");
    int64_t tid;
    PGresult *r;
    sg_status st = pg_tid(c, tenant, &tid, err);
    if (st != SG_OK || (st = run_tid(c, &JOB_GET, tid, id, &r, err)) != SG_OK) return st;
    if (PQntuples(r) == 1)
        st = job_rows(r, tenant, fn, ud);
    else
        st = sg_error_set(err, SG_ENOTFOUND, NULL, "no such job");
    PQclear(r);
    return st;
}

/* job_update wrote nothing: tell a missing job from a changed one. */
static sg_status job_missed(sg_conn *c, int64_t tid, const char *id, sg_error *err)
{
    PGresult *r;
    sg_status st = run_tid(c, &JOB_EXISTS, tid, id, &r, err);
    if (st != SG_OK) return st;
    int found = PQntuples(r) == 1;
    PQclear(r);
    if (found) return sg_error_set(err, SG_EPRECOND, NULL, "the job was changed by someone else");
    return sg_error_set(err, SG_ENOTFOUND, NULL, "no such job");
}

/* One UPDATE ... WHERE updated_ms = expected: re-checked by PostgreSQL on
 * the newest row version when a concurrent writer committed first. */
sg_status pg_job_update(sg_conn *c, const sg_job *j, int64_t expected_updated_ms, sg_error *err)
{
    sg_status st = check_job(j, err);
    if (st != SG_OK) return st;
    int64_t tid;
    if ((st = pg_tid(c, j->tenant, &tid, err)) != SG_OK) return st;
    pg_params p;
    int64_t n;
    job_params(&p, tid, j);
    pg_param_i64(&p, expected_updated_ms);
    st = pg_run_changed(c, &JOB_UPD, &p, &n, err);
    if (st != SG_OK) return st;
    return n == 1 ? SG_OK : job_missed(c, tid, j->id, err);
}

sg_status pg_job_list(sg_conn *c, const char *tenant, const char *status, const char *user_id,
                      sg_job_fn fn, void *ud, sg_error *err)
{
    if (!fn) return sg_error_set(err, SG_EINVALID, NULL, "no callback");
    int64_t tid;
    sg_status st = pg_tid(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    const pg_stmt *s = status ? (user_id ? &JOB_LIST_BOTH : &JOB_LIST_STATUS)
                              : (user_id ? &JOB_LIST_USER : &JOB_LIST);
    pg_params p;
    PGresult *r;
    pg_params_init(&p);
    pg_param_i64(&p, tid);
    if (status) pg_param_text(&p, status);
    if (user_id) pg_param_text(&p, user_id);
    st = pg_run(c, s, &p, &r, err);
    pg_params_free(&p);
    if (st != SG_OK) return st;
    st = job_rows(r, tenant, fn, ud);
    PQclear(r);
    return st;
}

sg_status pg_job_counts(sg_conn *c, const char *tenant, sg_job_count_fn fn, void *ud, sg_error *err)
{
    if (!fn) return sg_error_set(err, SG_EINVALID, NULL, "no callback");
    pg_params p;
    PGresult *r;
    pg_params_init(&p);
    sg_status st = SG_OK;
    if (tenant) {
        int64_t tid;
        st = pg_tid(c, tenant, &tid, err);
        if (st != SG_OK) return st;
        pg_param_i64(&p, tid);
    }
    st = pg_run(c, tenant ? &JOB_COUNTS : &JOB_COUNTS_ALL, &p, &r, err);
    pg_params_free(&p);
    if (st != SG_OK) return st;
    for (int i = 0; st == SG_OK && i < PQntuples(r); i++)
        st = fn(ud, pg_str(r, i, 0), strtoll(pg_str(r, i, 1), NULL, 10));
    PQclear(r);
    return st;
}

/* Does probe `s` (one int64 parameter) find a row? */
static sg_status probe(sg_conn *c, const pg_stmt *s, int64_t v, int *found, sg_error *err)
{
    pg_params p;
    PGresult *r;
    pg_params_init(&p);
    pg_param_i64(&p, v);
    sg_status st = pg_run(c, s, &p, &r, err);
    pg_params_free(&p);
    *found = st == SG_OK && PQntuples(r) > 0;
    if (st == SG_OK) PQclear(r);
    return st;
}

/* Run JOB_CLAIM or JOB_EXPIRE and hand each changed job to fn, inside the
 * caller's write unit; *n: how many changed. */
static sg_status update_jobs(sg_conn *c, const pg_stmt *s, const pg_params *p, sg_job_fn fn,
                             void *ud, int *n, sg_error *err)
{
    PGresult *r;
    sg_status st = pg_run(c, s, p, &r, err);
    *n = 0;
    if (st != SG_OK) return st;
    *n = PQntuples(r);
    st = job_rows(r, NULL, fn, ud);
    PQclear(r);
    return st;
}

sg_status pg_job_claim(sg_conn *c, const char *owner, int64_t now_ms, int64_t lease_ms,
                       sg_job_fn fn, void *ud, sg_error *err)
{
    if (!owner || !*owner) return sg_error_set(err, SG_EINVALID, NULL, "no lease owner given");
    if (lease_ms <= 0) return sg_error_set(err, SG_EINVALID, NULL, "the lease must be positive");
    int64_t until = now_ms > INT64_MAX - lease_ms ? INT64_MAX : now_ms + lease_ms;
    int implicit, found, n = 0;
    /* A hint only (the UPDATE decides), read without locking anything. */
    sg_status st = probe(c, &JOB_DUE, now_ms, &found, err);
    if (st != SG_OK) return st;
    if (!found) return sg_error_set(err, SG_ENOTFOUND, NULL, "no job is due");
    /* Inside the caller's transaction this is a savepoint: the claim then
     * commits or rolls back with that transaction. */
    if ((st = pg_wbegin(c, &implicit, err)) != SG_OK) return st;
    pg_params p;
    pg_params_init(&p);
    pg_param_text(&p, owner);
    pg_param_i64(&p, now_ms);
    pg_param_i64(&p, until);
    st = update_jobs(c, &JOB_CLAIM, &p, fn, ud, &n, err);
    pg_params_free(&p);
    st = pg_wend(c, implicit, st, err);
    if (st == SG_OK && n == 0) return sg_error_set(err, SG_ENOTFOUND, NULL, "no job is due");
    return st;
}

/* A second node expiring at once waits for the first's row locks, then
 * finds the jobs no longer awaiting approval: each is reported once. */
sg_status pg_job_expire(sg_conn *c, int64_t now_ms, sg_job_fn fn, void *ud, sg_error *err)
{
    int implicit, found, n;
    sg_status st = probe(c, &JOB_OVERDUE, now_ms, &found, err);
    if (st != SG_OK || !found) return st;
    if ((st = pg_wbegin(c, &implicit, err)) != SG_OK) return st;
    pg_params p;
    pg_params_init(&p);
    pg_param_i64(&p, now_ms);
    st = update_jobs(c, &JOB_EXPIRE, &p, fn, ud, &n, err);
    pg_params_free(&p);
    return pg_wend(c, implicit, st, err);
}
