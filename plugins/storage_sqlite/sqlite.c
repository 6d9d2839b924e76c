/*
** storage_sqlite: the default scimgate storage plugin, one SQLite file in WAL mode.
**
** What lives here: the SQL schema and its versioned migrations, per-thread
** connections with cached prepared statements, the tenant/token/admin/
** resource/membership methods of sg_storage_vtab, those of the user
** lifecycle (devices, settings, events, tombstones, the invitation outbox),
** and SQLite's half of the compiler from the core's filter AST (filter.h)
** to parameterised SQL (the other half, shared with storage_postgres, is
** plugins/common/sqlfilter.c). See README.md next to this file for the
** options, the tables and what compiles to SQL.
**
** Rules followed throughout:
**   - every SQL text is a fixed fragment with `?N` placeholders; no value ever
**     becomes SQL text;
**   - every tenant-scoped statement names the tenant's tid, so another
**     tenant's ids miss;
**   - a statement is reset (and its bindings cleared) before the method that
**     used it returns, so no connection keeps a read snapshot open by accident;
**   - a method that writes several rows runs inside BEGIN IMMEDIATE (outside
**     a transaction) or a SAVEPOINT (inside one), so it is whole or nothing.
*/
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#include "scimgate/plugin.h"
#include "sqlfilter.h"

#define PLUGIN "storage_sqlite"

#define DEFAULT_BUSY_TIMEOUT_MS 5000
#define DEFAULT_MMAP_SIZE       268435456LL
#define DEFAULT_CACHE_KIB       2048
#define DEFAULT_KEEP_CACHE_KIB  256
#define DB_FILE                 "scimgate.db"

/* Written into the file header by migration 1, so that opening some other
 * application's SQLite file is refused instead of migrated. */
#define APPLICATION_ID 1397178708 /* 0x53474154, "SGAT" */
#define XSTR(x)        STR(x)
#define STR(x)         #x

/* Filter statements per connection: enough for the handful of shapes a SCIM
 * client sends, small enough that a hostile mix cannot grow memory. */
#define FCACHE_SIZE 32
/* Rows between two page anchors (see st_search): a page skips at most this
 * many index entries; 1,000,000 rows take 2,000 anchors (16 KiB). */
#define DEFAULT_ANCHOR_STRIDE 512
/* Tenant id -> tid slots per connection (direct-mapped). */
#define TCACHE_SIZE 128
/* Longest tenant id: sg_token_info.tenant and sg_principal.tenant are char[65]. */
#define TENANT_ID_MAX 64

/* ---- schema ---------------------------------------------------------------- */

/*
** Migrations, applied in order; PRAGMA user_version holds how many ran. Never
** edit a shipped entry: append a new one. Each runs inside the same
** BEGIN IMMEDIATE transaction as the version check.
*/
static const char *const migrations[] = {
    /* 1: the initial schema. */
    "PRAGMA application_id = " XSTR(
        APPLICATION_ID) ";\n"
                        "CREATE TABLE tenants (\n"
                        "    tid      INTEGER PRIMARY KEY,\n"
                        "    id       TEXT NOT NULL UNIQUE,\n"
                        "    name     TEXT NOT NULL UNIQUE,\n"
                        "    created  TEXT NOT NULL,\n"
                        "    disabled INTEGER NOT NULL DEFAULT 0\n"
                        ") STRICT;\n"
                        "CREATE TABLE tokens (\n"
                        "    id           TEXT PRIMARY KEY,\n"
                        "    tid          INTEGER NOT NULL REFERENCES tenants (tid),\n"
                        "    hash         BLOB NOT NULL,\n"
                        "    created_ms   INTEGER NOT NULL,\n"
                        "    expires_ms   INTEGER NOT NULL DEFAULT 0,\n"
                        "    revoked_ms   INTEGER NOT NULL DEFAULT 0,\n"
                        "    last_used_ms INTEGER NOT NULL DEFAULT 0,\n"
                        "    last_addr    TEXT\n"
                        ") STRICT;\n"
                        "CREATE INDEX tokens_tenant ON tokens (tid, created_ms);\n"
                        "CREATE TABLE resources (\n"
                        "    rid      INTEGER PRIMARY KEY,\n"
                        "    tid      INTEGER NOT NULL REFERENCES tenants (tid),\n"
                        "    rtype    INTEGER NOT NULL,\n"
                        "    id       TEXT NOT NULL,\n"
                        "    version  INTEGER NOT NULL,\n"
                        "    created  TEXT NOT NULL,\n"
                        "    modified TEXT NOT NULL,\n"
                        "    body     TEXT NOT NULL,\n"
                        "    UNIQUE (tid, id)\n"
                        ") STRICT;\n"
                        /* The rowid (rid) is implicitly the last column of every index, so
                         * resources_list also yields creation order without a sort. */
                        "CREATE INDEX resources_list ON resources (tid, rtype);\n"
                        "CREATE INDEX resources_created ON resources (tid, rtype, created);\n"
                        "CREATE INDEX resources_modified ON resources (tid, rtype, modified);\n"
                        /* Clustered on the look-up order, so `attr eq value` reads one b-tree
                         * range and the keys cost one b-tree, not a table plus an index. value
                         * is NULL when it equals folded (case-exact attributes, values already
                         * in lower case): it is kept for diagnostics only. */
                        "CREATE TABLE resource_keys (\n"
                        "    tid    INTEGER NOT NULL,\n"
                        "    rtype  INTEGER NOT NULL,\n"
                        "    attr   TEXT NOT NULL,\n"
                        "    folded TEXT NOT NULL,\n"
                        "    rid    INTEGER NOT NULL REFERENCES resources (rid),\n"
                        "    value  TEXT,\n"
                        "    uniq   INTEGER NOT NULL DEFAULT 0,\n"
                        "    PRIMARY KEY (tid, rtype, attr, folded, rid)\n"
                        ") STRICT, WITHOUT ROWID;\n"
                        "CREATE UNIQUE INDEX resource_keys_unique ON resource_keys (tid, rtype, "
                        "attr, folded)\n"
                        "    WHERE uniq = 1;\n"
                        "CREATE INDEX resource_keys_rid ON resource_keys (rid, attr);\n"
                        "CREATE TABLE members (\n"
                        "    mid        INTEGER PRIMARY KEY,\n"
                        "    group_rid  INTEGER NOT NULL REFERENCES resources (rid),\n"
                        "    member_rid INTEGER NOT NULL REFERENCES resources (rid),\n"
                        "    display    TEXT,\n"
                        "    UNIQUE (group_rid, member_rid)\n"
                        ") STRICT;\n"
                        "CREATE INDEX members_member ON members (member_rid);\n"
                        "CREATE INDEX members_order ON members (group_rid, mid);\n",
    /* 2: token kinds and subjects, operator tokens (no tenant), admins.
     * tokens.tid was NOT NULL, which ALTER TABLE cannot drop: the table is
     * rebuilt (new table, copy, drop, rename, indexes again), which is safe
     * with foreign_keys on because no table references tokens. The rowid is
     * copied so that token_list keeps its order for equal created_ms. An
     * operator admin has tid NULL; ifnull(tid, 0) in the unique index makes
     * operators clash among themselves (tids start at 1). */
    "CREATE TABLE tokens_v2 (\n"
    "    id           TEXT PRIMARY KEY,\n"
    "    tid          INTEGER REFERENCES tenants (tid),\n"
    "    hash         BLOB NOT NULL,\n"
    "    created_ms   INTEGER NOT NULL,\n"
    "    expires_ms   INTEGER NOT NULL DEFAULT 0,\n"
    "    revoked_ms   INTEGER NOT NULL DEFAULT 0,\n"
    "    last_used_ms INTEGER NOT NULL DEFAULT 0,\n"
    "    last_addr    TEXT,\n"
    "    kind         INTEGER NOT NULL DEFAULT 0,\n"
    "    subject      TEXT\n"
    ") STRICT;\n"
    "INSERT INTO tokens_v2 (rowid, id, tid, hash, created_ms, expires_ms, revoked_ms,\n"
    "                       last_used_ms, last_addr)\n"
    "    SELECT rowid, id, tid, hash, created_ms, expires_ms, revoked_ms, last_used_ms,\n"
    "           last_addr FROM tokens;\n"
    "DROP TABLE tokens;\n"
    "ALTER TABLE tokens_v2 RENAME TO tokens;\n"
    "CREATE INDEX tokens_tenant ON tokens (tid, created_ms);\n"
    "CREATE TABLE admins (\n"
    "    aid           INTEGER PRIMARY KEY,\n"
    "    tid           INTEGER REFERENCES tenants (tid),\n"
    "    login         TEXT NOT NULL,\n"
    "    password_hash TEXT,\n"
    "    created_ms    INTEGER NOT NULL,\n"
    "    disabled      INTEGER NOT NULL DEFAULT 0\n"
    ") STRICT;\n"
    "CREATE UNIQUE INDEX admins_login ON admins (ifnull(tid, 0), login);\n",
    /* 3: the user lifecycle: admin devices, tenant settings, events (the
     * audit trail and the change feed), tombstones and the invitation
     * outbox.
     * events.seq is AUTOINCREMENT so that a seq is never handed out twice,
     * even after the newest events were purged (sqlite_sequence keeps the
     * highest one ever used). SQLite serialises writers (one write
     * transaction at a time, on every connection and process), so seq
     * order is commit order. A server store with concurrent writers needs
     * another mechanism.
     * tombstones are keyed like resources (tenant, id) but live apart:
     * they hold no index keys, so they never block a new resource's
     * userName or externalId. */
    "CREATE TABLE devices (\n"
    "    id         TEXT PRIMARY KEY,\n"
    "    tid        INTEGER NOT NULL REFERENCES tenants (tid),\n"
    "    name       TEXT NOT NULL,\n"
    "    public_key BLOB NOT NULL CHECK (length(public_key) = 32),\n"
    "    created_ms INTEGER NOT NULL,\n"
    "    revoked_ms INTEGER NOT NULL DEFAULT 0\n"
    ") STRICT;\n"
    "CREATE INDEX devices_tenant ON devices (tid, created_ms);\n"
    "CREATE TABLE settings (\n"
    "    tid   INTEGER NOT NULL REFERENCES tenants (tid),\n"
    "    key   TEXT NOT NULL,\n"
    "    value TEXT NOT NULL,\n"
    "    PRIMARY KEY (tid, key)\n"
    ") STRICT, WITHOUT ROWID;\n"
    "CREATE TABLE events (\n"
    "    seq        INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    tid        INTEGER NOT NULL REFERENCES tenants (tid),\n"
    "    time_ms    INTEGER NOT NULL,\n"
    "    type       TEXT NOT NULL,\n"
    "    subject    TEXT,\n"
    "    actor      TEXT NOT NULL,\n"
    "    request_id TEXT,\n"
    "    data       TEXT,\n"
    "    flags      INTEGER NOT NULL DEFAULT 0\n"
    ") STRICT;\n"
    "CREATE INDEX events_tenant ON events (tid, seq);\n"
    "CREATE INDEX events_subject ON events (tid, subject, seq);\n"
    "CREATE INDEX events_time ON events (time_ms);\n"
    "CREATE INDEX events_type ON events (tid, type, time_ms);\n"
    "CREATE TABLE tombstones (\n"
    "    tid            INTEGER NOT NULL REFERENCES tenants (tid),\n"
    "    rtype          INTEGER NOT NULL,\n"
    "    id             TEXT NOT NULL,\n"
    "    version        INTEGER NOT NULL,\n"
    "    created        TEXT NOT NULL,\n"
    "    modified       TEXT NOT NULL,\n"
    "    body           TEXT NOT NULL,\n"
    "    deleted_ms     INTEGER NOT NULL,\n"
    "    purge_after_ms INTEGER NOT NULL,\n"
    "    PRIMARY KEY (tid, id)\n"
    ") STRICT;\n"
    "CREATE INDEX tombstones_purge ON tombstones (purge_after_ms);\n"
    "CREATE TABLE jobs (\n"
    "    id              TEXT PRIMARY KEY,\n"
    "    tid             INTEGER NOT NULL REFERENCES tenants (tid),\n"
    "    user_id         TEXT NOT NULL,\n"
    "    user_version    INTEGER NOT NULL,\n"
    "    address         TEXT NOT NULL,\n"
    "    status          TEXT NOT NULL,\n"
    "    idem_key        TEXT NOT NULL,\n"
    "    to_sign         TEXT NOT NULL,\n"
    "    created_ms      INTEGER NOT NULL,\n"
    "    expires_ms      INTEGER NOT NULL,\n"
    "    approved_ms     INTEGER NOT NULL DEFAULT 0,\n"
    "    approved_by     TEXT,\n"
    "    next_attempt_ms INTEGER NOT NULL DEFAULT 0,\n"
    "    attempts        INTEGER NOT NULL DEFAULT 0,\n"
    "    last_error      TEXT,\n"
    "    lease_owner     TEXT,\n"
    "    lease_until_ms  INTEGER NOT NULL DEFAULT 0,\n"
    "    updated_ms      INTEGER NOT NULL\n"
    ") STRICT;\n"
    "CREATE INDEX jobs_tenant ON jobs (tid, status, created_ms);\n"
    "CREATE INDEX jobs_user ON jobs (tid, user_id);\n"
    "CREATE INDEX jobs_due ON jobs (status, next_attempt_ms, created_ms);\n",
    /* 4: portal sessions (ABI 1.1). tid NULL: an operator's session. Only
     * the HMAC of the cookie's secret is kept. */
    "CREATE TABLE sessions (\n"
    "    id         TEXT PRIMARY KEY,\n"
    "    tid        INTEGER REFERENCES tenants (tid),\n"
    "    login      TEXT NOT NULL,\n"
    "    hash       BLOB NOT NULL CHECK (length(hash) = 32),\n"
    "    created_ms INTEGER NOT NULL,\n"
    "    expires_ms INTEGER NOT NULL,\n"
    "    seen_ms    INTEGER NOT NULL\n"
    ") STRICT;\n"
    "CREATE INDEX sessions_expires ON sessions (expires_ms);\n"
    "CREATE INDEX sessions_seen ON sessions (seen_ms);\n",
    /* 5: how many resources each tenant holds per type, so that an
     * unfiltered list's totalResults is one look-up, not a count(*) over
     * the tenant's whole range (7 ms at 100,000 users, most of a page's
     * cost). Triggers keep it in the writing transaction, for every path
     * that inserts or deletes a resource, so it is exactly count(*).
     * layout changes whenever the position of an existing row in rid order
     * may have changed: a delete, a move (resources never change tid or
     * rtype; that trigger is a guard), or an insert that does not land
     * after every row of its tenant and type (a rowid is max + 1, so it
     * almost always does). While it holds, the list in rid order only grew
     * at its end, which is what the page anchors of st_search rely on. */
    "CREATE TABLE resource_counts (\n"
    "    tid    INTEGER NOT NULL,\n"
    "    rtype  INTEGER NOT NULL,\n"
    "    n      INTEGER NOT NULL,\n"
    "    layout INTEGER NOT NULL DEFAULT 0,\n"
    "    PRIMARY KEY (tid, rtype)\n"
    ") STRICT, WITHOUT ROWID;\n"
    "INSERT INTO resource_counts (tid, rtype, n)\n"
    "    SELECT tid, rtype, count(*) FROM resources GROUP BY tid, rtype;\n"
    "CREATE TRIGGER resource_counts_ins AFTER INSERT ON resources BEGIN\n"
    "    INSERT INTO resource_counts (tid, rtype, n) VALUES (NEW.tid, NEW.rtype, 1)\n"
    "        ON CONFLICT (tid, rtype) DO UPDATE SET n = n + 1, layout = layout + EXISTS (\n"
    "            SELECT 1 FROM resources WHERE tid = NEW.tid AND rtype = NEW.rtype\n"
    "            AND rid > NEW.rid);\n"
    "END;\n"
    "CREATE TRIGGER resource_counts_del AFTER DELETE ON resources BEGIN\n"
    "    UPDATE resource_counts SET n = n - 1, layout = layout + 1\n"
    "        WHERE tid = OLD.tid AND rtype = OLD.rtype;\n"
    "END;\n"
    "CREATE TRIGGER resource_counts_move AFTER UPDATE OF tid, rtype ON resources\n"
    "    WHEN NEW.tid IS NOT OLD.tid OR NEW.rtype IS NOT OLD.rtype BEGIN\n"
    "    UPDATE resource_counts SET n = n - 1, layout = layout + 1\n"
    "        WHERE tid = OLD.tid AND rtype = OLD.rtype;\n"
    "    INSERT INTO resource_counts (tid, rtype, n) VALUES (NEW.tid, NEW.rtype, 1)\n"
    "        ON CONFLICT (tid, rtype) DO UPDATE SET n = n + 1, layout = layout + 1;\n"
    "END;\n",
};

#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* ---- fixed statements ---------------------------------------------------------- */

enum {
    ST_BEGIN,
    ST_BEGIN_IMMEDIATE,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_TENANT_TID,
    ST_TENANT_INS,
    ST_TENANT_BY_ID,
    ST_TENANT_BY_NAME,
    ST_TENANT_LIST,
    ST_TENANT_DISABLE,
    ST_TOKEN_EXISTS,
    ST_TOKEN_INS,
    ST_TOKEN_INFO,
    ST_TOKEN_LIST,
    ST_TOKEN_UPDATE,
    ST_TOKEN_TOUCH,
    ST_ADMIN_INS,
    ST_ADMIN_GET,
    ST_RES_LOOKUP,
    ST_RES_GET,
    ST_RES_INS,
    ST_RES_UPD,
    ST_RES_DEL,
    ST_RES_COUNT,
    ST_RES_ANCHOR,
    ST_RES_PAGE_FROM,
    ST_KEY_CLASH,
    ST_KEY_INS,
    ST_KEY_DEL,
    ST_MEM_INS,
    ST_MEM_DEL_ONE,
    ST_MEM_DEL_GROUP,
    ST_MEM_DEL_MEMBER,
    ST_MEM_LIST,
    ST_DEV_INS,
    ST_DEV_GET,
    ST_DEV_LIST,
    ST_DEV_REVOKE,
    ST_SET_PUT,
    ST_SET_DEL,
    ST_SET_LIST,
    ST_EV_INS,
    ST_EV_LIST,
    ST_EV_LIST_SUBJECT,
    ST_EV_LIST_TYPES,
    ST_EV_PURGE,
    ST_TS_PUT,
    ST_TS_GET,
    ST_TS_DEL,
    ST_TS_PURGE,
    ST_JOB_INS,
    ST_JOB_GET,
    ST_JOB_UPD,
    ST_JOB_EXISTS,
    ST_JOB_LIST,
    ST_JOB_LIST_STATUS,
    ST_JOB_LIST_USER,
    ST_JOB_LIST_BOTH,
    ST_JOB_DUE,
    ST_JOB_CLAIM,
    ST_JOB_OVERDUE,
    ST_JOB_EXPIRE,
    ST_JOB_COUNTS,
    ST_JOB_COUNTS_ALL,
    ST_SES_INS,
    ST_SES_GET,
    ST_SES_TOUCH,
    ST_SES_DEL,
    ST_SES_PURGE,
    ST_COUNT
};

/* The columns job_row() reads, in its order; statements that span tenants
 * add the tenant's id as one more column. */
#define JOB_COLS                                                                                   \
    "id, user_id, user_version, address, status, idem_key, to_sign, created_ms, expires_ms,"       \
    " approved_ms, approved_by, next_attempt_ms, attempts, last_error, lease_owner,"               \
    " lease_until_ms, updated_ms"
#define JOB_TENANT_COL " (SELECT t.id FROM tenants t WHERE t.tid = jobs.tid)"
#define JOB_LIST_SQL   "SELECT " JOB_COLS " FROM jobs WHERE tid = ?1"
/* A job a worker may claim at `now`: approved and due with its lease free,
 * or held by a worker whose lease ran out (it died while sending). */
#define JOB_DUE_SQL(now)                                                                           \
    "((status = 'Approved' AND next_attempt_ms <= " now " AND (lease_owner IS NULL OR"             \
    " lease_until_ms <= " now ")) OR (status = 'Sending' AND lease_until_ms <= " now "))"
/* Newest first; rowid breaks ties in creation order (newest first too). */
#define JOB_LIST_ORDER " ORDER BY created_ms DESC, rowid DESC"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN",
    [ST_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT sg_op",
    [ST_RELEASE] = "RELEASE sg_op",
    [ST_ROLLBACK_TO] = "ROLLBACK TO sg_op",
    [ST_TENANT_TID] = "SELECT tid FROM tenants WHERE id = ?1",
    [ST_TENANT_INS] = "INSERT INTO tenants (id, name, created, disabled) VALUES (?1, ?2, ?3, ?4)",
    [ST_TENANT_BY_ID] = "SELECT id, name, created, disabled FROM tenants WHERE id = ?1",
    [ST_TENANT_BY_NAME] = "SELECT id, name, created, disabled FROM tenants WHERE name = ?1",
    [ST_TENANT_LIST] = "SELECT id, name, created, disabled FROM tenants ORDER BY tid",
    [ST_TENANT_DISABLE] = "UPDATE tenants SET disabled = ?2 WHERE id = ?1",
    [ST_TOKEN_EXISTS] = "SELECT 1 FROM tokens WHERE id = ?1",
    /* Operator tokens have tid NULL: `tid IS ?1` with ?1 NULL selects them
     * (IS is an equality the planner drives tokens_tenant with). */
    [ST_TOKEN_INS] = "INSERT INTO tokens (id, tid, hash, created_ms, expires_ms, revoked_ms,"
                     " last_used_ms, last_addr, kind, subject)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [ST_TOKEN_INFO] = "SELECT t.id, k.hash, k.expires_ms, k.revoked_ms, t.disabled, k.kind,"
                      " k.subject, k.tid IS NULL"
                      " FROM tokens k LEFT JOIN tenants t ON t.tid = k.tid WHERE k.id = ?1",
    [ST_TOKEN_LIST] =
        "SELECT id, hash, created_ms, expires_ms, revoked_ms, last_used_ms, last_addr,"
        " kind, subject FROM tokens WHERE tid IS ?1 ORDER BY created_ms, rowid",
    [ST_TOKEN_UPDATE] = "UPDATE tokens SET"
                        " expires_ms = CASE WHEN ?3 >= 0 THEN ?3 ELSE expires_ms END,"
                        " revoked_ms = CASE WHEN ?4 >= 0 THEN ?4 ELSE revoked_ms END"
                        " WHERE tid IS ?1 AND id = ?2",
    [ST_TOKEN_TOUCH] = "UPDATE tokens SET last_used_ms = ?2, last_addr = ?3 WHERE id = ?1",
    /* ?1 is the tid, 0 for operators: the expression of admins_login. */
    [ST_ADMIN_INS] = "INSERT INTO admins (tid, login, password_hash, created_ms, disabled)"
                     " VALUES (nullif(?1, 0), ?2, ?3, ?4, ?5)",
    [ST_ADMIN_GET] = "SELECT login, password_hash, created_ms, disabled FROM admins"
                     " WHERE ifnull(tid, 0) = ?1 AND login = ?2",
    [ST_RES_LOOKUP] = "SELECT rid, rtype, version FROM resources WHERE tid = ?1 AND id = ?2",
    [ST_RES_GET] = "SELECT id, version, created, modified, body FROM resources"
                   " WHERE tid = ?1 AND id = ?2 AND rtype = ?3",
    [ST_RES_INS] = "INSERT INTO resources (tid, rtype, id, version, created, modified, body)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_RES_UPD] = "UPDATE resources SET version = ?2, modified = ?3, body = ?4 WHERE rid = ?1",
    [ST_RES_DEL] = "DELETE FROM resources WHERE rid = ?1",
    /* count(*) of the tenant's resources of a type, kept by triggers. */
    [ST_RES_COUNT] = "SELECT n, layout FROM resource_counts WHERE tid = ?1 AND rtype = ?2",
    /* Page anchors (see st_search): the rid `?4` rows after rid ?3, and a
     * page from rid ?3 on. INDEXED BY: the rid range must be read in
     * resources_list's (tid, rtype) range, never as a rowid range over
     * every tenant's rows. */
    [ST_RES_ANCHOR] = "SELECT rid FROM resources INDEXED BY resources_list"
                      " WHERE tid = ?1 AND rtype = ?2 AND rid >= ?3 ORDER BY rid LIMIT 1 OFFSET ?4",
    [ST_RES_PAGE_FROM] = "SELECT id, version, created, modified, body FROM resources"
                         " INDEXED BY resources_list WHERE tid = ?1 AND rtype = ?2 AND rid >= ?3"
                         " ORDER BY rid LIMIT ?4 OFFSET ?5",
    /* `uniq = 1` spelled literally so the planner may use the partial index. */
    [ST_KEY_CLASH] = "SELECT 1 FROM resource_keys WHERE tid = ?1 AND rtype = ?2 AND attr = ?3"
                     " AND folded = ?4 AND uniq = 1 AND rid <> ?5",
    [ST_KEY_INS] = "INSERT INTO resource_keys (rid, tid, rtype, attr, folded, value, uniq)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_KEY_DEL] = "DELETE FROM resource_keys WHERE rid = ?1",
    [ST_MEM_INS] = "INSERT OR IGNORE INTO members (group_rid, member_rid, display)"
                   " VALUES (?1, ?2, ?3)",
    [ST_MEM_DEL_ONE] = "DELETE FROM members WHERE group_rid = ?1"
                       " AND member_rid = (SELECT rid FROM resources WHERE tid = ?2 AND id = ?3)",
    [ST_MEM_DEL_GROUP] = "DELETE FROM members WHERE group_rid = ?1",
    [ST_MEM_DEL_MEMBER] = "DELETE FROM members WHERE member_rid = ?1",
    [ST_MEM_LIST] = "SELECT u.id, m.display, u.rtype FROM members m"
                    " JOIN resources u ON u.rid = m.member_rid"
                    " WHERE m.group_rid = ?1 ORDER BY m.mid",
    [ST_DEV_INS] = "INSERT INTO devices (id, tid, name, public_key, created_ms, revoked_ms)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_DEV_GET] = "SELECT id, name, public_key, created_ms, revoked_ms FROM devices"
                   " WHERE tid = ?1 AND id = ?2",
    [ST_DEV_LIST] = "SELECT id, name, public_key, created_ms, revoked_ms FROM devices"
                    " WHERE tid = ?1 ORDER BY created_ms, rowid",
    [ST_DEV_REVOKE] = "UPDATE devices SET revoked_ms = ?3 WHERE tid = ?1 AND id = ?2",
    [ST_SET_PUT] = "INSERT INTO settings (tid, key, value) VALUES (?1, ?2, ?3)"
                   " ON CONFLICT (tid, key) DO UPDATE SET value = excluded.value",
    [ST_SET_DEL] = "DELETE FROM settings WHERE tid = ?1 AND key = ?2",
    [ST_SET_LIST] = "SELECT key, value FROM settings WHERE tid = ?1 ORDER BY key",
    [ST_EV_INS] = "INSERT INTO events (tid, time_ms, type, subject, actor, request_id, data, flags)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    /* ?3: every one of these flags; 0 selects every event. A limit of -1
     * is no limit. */
    /* ?1 tid, ?2 after_seq, ?3 flags, ?4 limit, ?5 subject, ?6 since_ms,
     * ?7 the types as a JSON array. */
    [ST_EV_LIST] = "SELECT seq, time_ms, type, subject, actor, request_id, data, flags FROM events"
                   " WHERE tid = ?1 AND seq > ?2 AND (flags & ?3) = ?3 AND time_ms >= ?6"
                   " ORDER BY seq LIMIT ?4",
    [ST_EV_LIST_SUBJECT] =
        "SELECT seq, time_ms, type, subject, actor, request_id, data, flags FROM events"
        " WHERE tid = ?1 AND subject = ?5 AND seq > ?2 AND (flags & ?3) = ?3 AND time_ms >= ?6"
        " ORDER BY seq LIMIT ?4",
    [ST_EV_LIST_TYPES] =
        "SELECT seq, time_ms, type, subject, actor, request_id, data, flags FROM events"
        " WHERE tid = ?1 AND type IN (SELECT value FROM json_each(?7)) AND time_ms >= ?6"
        " AND seq > ?2 AND (flags & ?3) = ?3 AND (?5 IS NULL OR subject = ?5)"
        " ORDER BY seq LIMIT ?4",
    /* ?3 is SG_EVENT_CHANGE. */
    [ST_EV_PURGE] = "DELETE FROM events WHERE time_ms < ?1"
                    " AND NOT ((flags & ?3) <> 0 AND time_ms >= ?2)",
    [ST_TS_PUT] = "INSERT INTO tombstones (tid, rtype, id, version, created, modified, body,"
                  " deleted_ms, purge_after_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                  " ON CONFLICT (tid, id) DO UPDATE SET rtype = excluded.rtype,"
                  " version = excluded.version, created = excluded.created,"
                  " modified = excluded.modified, body = excluded.body,"
                  " deleted_ms = excluded.deleted_ms, purge_after_ms = excluded.purge_after_ms",
    [ST_TS_GET] = "SELECT id, version, created, modified, body FROM tombstones"
                  " WHERE tid = ?1 AND id = ?2 AND rtype = ?3",
    [ST_TS_DEL] = "DELETE FROM tombstones WHERE tid = ?1 AND id = ?2",
    [ST_TS_PURGE] = "DELETE FROM tombstones WHERE purge_after_ms <= ?1 AND (?2 = 0 OR tid = ?2)",
    /* ?1 id, ?2 tid, ?3.. the fields in JOB_COLS order (see bind_job). */
    [ST_JOB_INS] = "INSERT INTO jobs (id, tid, user_id, user_version, address, status, idem_key,"
                   " to_sign, created_ms, expires_ms, approved_ms, approved_by, next_attempt_ms,"
                   " attempts, last_error, lease_owner, lease_until_ms, updated_ms)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
                   " ?16, ?17, ?18)",
    [ST_JOB_GET] = JOB_LIST_SQL " AND id = ?2",
    /* A compare-and-set on updated_ms (?19). */
    [ST_JOB_UPD] = "UPDATE jobs SET user_id = ?3, user_version = ?4, address = ?5, status = ?6,"
                   " idem_key = ?7, to_sign = ?8, created_ms = ?9, expires_ms = ?10,"
                   " approved_ms = ?11, approved_by = ?12, next_attempt_ms = ?13, attempts = ?14,"
                   " last_error = ?15, lease_owner = ?16, lease_until_ms = ?17, updated_ms = ?18"
                   " WHERE id = ?1 AND tid = ?2 AND updated_ms = ?19",
    [ST_JOB_EXISTS] = "SELECT 1 FROM jobs WHERE id = ?1 AND tid = ?2",
    [ST_JOB_LIST] = JOB_LIST_SQL JOB_LIST_ORDER,
    [ST_JOB_LIST_STATUS] = JOB_LIST_SQL " AND status = ?2" JOB_LIST_ORDER,
    [ST_JOB_LIST_USER] = JOB_LIST_SQL " AND user_id = ?3" JOB_LIST_ORDER,
    [ST_JOB_LIST_BOTH] = JOB_LIST_SQL " AND status = ?2 AND user_id = ?3" JOB_LIST_ORDER,
    /* Read-only probes, so that idle pollers do not take the write lock. */
    [ST_JOB_DUE] = "SELECT 1 FROM jobs WHERE " JOB_DUE_SQL("?1") " LIMIT 1",
    [ST_JOB_OVERDUE] = "SELECT 1 FROM jobs WHERE status = 'AwaitingApproval' AND expires_ms <= ?1"
                       " LIMIT 1",
    /* One statement picks and leases the job. It writes, so it runs under
     * the write lock with the newest snapshot: two connections (threads or
     * processes) cannot pick the same job. ?1 owner, ?2 now, ?3 lease end. */
    [ST_JOB_CLAIM] = "UPDATE jobs SET lease_owner = ?1, lease_until_ms = ?3, status = 'Sending',"
                     " updated_ms = ?2"
                     " WHERE id = (SELECT id FROM jobs WHERE " JOB_DUE_SQL(
                         "?2") " ORDER BY next_attempt_ms, created_ms, rowid LIMIT 1)"
                               " RETURNING " JOB_COLS "," JOB_TENANT_COL,
    [ST_JOB_EXPIRE] = "UPDATE jobs SET status = 'Expired', updated_ms = ?1"
                      " WHERE status = 'AwaitingApproval' AND expires_ms <= ?1"
                      " RETURNING " JOB_COLS "," JOB_TENANT_COL,
    /* Index-only: jobs_tenant (tid, status, ...) and jobs_due (status, ...). */
    [ST_JOB_COUNTS] = "SELECT status, count(*) FROM jobs WHERE tid = ?1 GROUP BY status"
                      " ORDER BY status",
    [ST_JOB_COUNTS_ALL] = "SELECT status, count(*) FROM jobs GROUP BY status ORDER BY status",
    [ST_SES_INS] = "INSERT INTO sessions (id, tid, login, hash, created_ms, expires_ms, seen_ms)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_SES_GET] = "SELECT t.id, s.login, s.hash, s.created_ms, s.expires_ms, s.seen_ms,"
                   " t.disabled, s.tid IS NULL"
                   " FROM sessions s LEFT JOIN tenants t ON t.tid = s.tid WHERE s.id = ?1",
    [ST_SES_TOUCH] = "UPDATE sessions SET seen_ms = ?2 WHERE id = ?1",
    [ST_SES_DEL] = "DELETE FROM sessions WHERE id = ?1",
    [ST_SES_PURGE] = "DELETE FROM sessions WHERE expires_ms <= ?1 OR seen_ms < ?2",
};

/* ---- instance and connection ------------------------------------------------- */

struct sg_storage {
    const sg_host *host;
    char *path;
    int busy_timeout_ms;
    long long mmap_size;
    long long cache_kib;
    long long keep_cache_kib;
    int sync_full;     /* synchronous=FULL (default) or NORMAL */
    int anchor_stride; /* page anchors every this many rows; 0: none */
};

/* A cached statement for one dynamically built filter SQL text. */
struct fentry {
    char *sql; /* host-allocated copy of the text, the cache key */
    size_t len;
    uint64_t hash;
    uint64_t used; /* LRU clock */
    sqlite3_stmt *st;
};

struct tentry {
    int64_t tid; /* 0: empty slot (rowids start at 1) */
    char id[TENANT_ID_MAX + 1];
};

/* Page anchors of one tenant's list of one type in rid order (the order of
 * an unfiltered list): rid[j] is the rid at position j * anchor_stride, for
 * the state whose resource_counts.layout was `layout` (see migration 5). */
struct anchors {
    int64_t tid; /* 0: none */
    int rtype;
    int64_t layout;
    int64_t *rid;
    size_t len, cap;
};

struct sg_conn {
    sg_storage *st;
    const sg_host *host;
    sqlite3 *db;
    sqlite3_stmt *stmts[ST_COUNT];
    struct fentry fcache[FCACHE_SIZE];
    uint64_t fclock;
    struct tentry tcache[TCACHE_SIZE];
    struct anchors anchors;
};

/* ---- small helpers --------------------------------------------------------------- */

static uint64_t fnv1a(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static char *xstrdup(const sg_host *h, const char *s)
{
    size_t n = strlen(s);
    char *d = h->alloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

static const char *rtype_name(sg_rtype t)
{
    return t == SG_RT_GROUP ? "Group" : "User";
}

static int valid_rtype(sg_rtype t)
{
    return t == SG_RT_USER || t == SG_RT_GROUP;
}

/*
** Map an SQLite failure to a status. The SQLite message goes to the log only:
** it may name tables or columns, which a client must not see.
*/
static sg_status db_fail(const sg_host *h, sqlite3 *db, int rc, sg_error *err)
{
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        h->log(SG_LOG_WARN, PLUGIN, "database busy: %s", msg);
        return sg_error_set(err, SG_EUNAVAIL, NULL, "the store is busy, retry later");
    case SQLITE_NOMEM:
        return sg_error_set(err, SG_ENOMEM, NULL, "out of memory");
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
    case SQLITE_PERM:
        h->log(SG_LOG_ERROR, PLUGIN, "database unavailable: %s", msg);
        return sg_error_set(err, SG_EUNAVAIL, NULL, "the store is unavailable");
    default:
        h->log(SG_LOG_ERROR, PLUGIN, "database error %d: %s", rc, msg);
        return sg_error_set(err, SG_EINTERNAL, NULL, "storage error");
    }
}

static sg_status fail(sg_conn *c, int rc, sg_error *err)
{
    return db_fail(c->host, c->db, rc, err);
}

static sg_status oom(sg_error *err)
{
    return sg_error_set(err, SG_ENOMEM, NULL, "out of memory");
}

/*
** Fixed statements are prepared once per connection. When the cached one is
** already stepping (a callback re-entered the plugin with the same kind of
** call), a private copy is prepared and finalized by done().
*/
static sg_status use(sg_conn *c, int id, sqlite3_stmt **out, sg_error *err)
{
    sqlite3_stmt *s = c->stmts[id];
    int rc;
    if (s && !sqlite3_stmt_busy(s)) {
        *out = s;
        return SG_OK;
    }
    rc = sqlite3_prepare_v3(c->db, stmt_sql[id], -1, s ? 0 : SQLITE_PREPARE_PERSISTENT, out, NULL);
    if (rc != SQLITE_OK) return fail(c, rc, err);
    if (!s) c->stmts[id] = *out;
    return SG_OK;
}

static void done(sg_conn *c, int id, sqlite3_stmt *s)
{
    if (!s) return;
    if (s == c->stmts[id]) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    } else {
        sqlite3_finalize(s);
    }
}

/* Bindings borrow the caller's memory: done() runs before the call returns. */
static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

/* Run a statement that returns no rows (BEGIN, COMMIT, ...). */
static sg_status exec1(sg_conn *c, int id, sg_error *err)
{
    sqlite3_stmt *s;
    sg_status st = use(c, id, &s, err);
    if (st != SG_OK) return st;
    int rc = sqlite3_step(s);
    done(c, id, s);
    if (rc != SQLITE_DONE) return fail(c, rc, err);
    return SG_OK;
}

static const char *col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? (const char *)t : "";
}

/*
** Begin a write unit. Outside a transaction take the write lock at once: a
** deferred transaction that reads first and writes later can fail with
** SQLITE_BUSY_SNAPSHOT without waiting. Inside the caller's transaction a
** savepoint makes this one method atomic on its own.
*/
static sg_status wbegin(sg_conn *c, int *implicit, sg_error *err)
{
    *implicit = sqlite3_get_autocommit(c->db);
    return exec1(c, *implicit ? ST_BEGIN_IMMEDIATE : ST_SAVEPOINT, err);
}

static void tcache_clear(sg_conn *c)
{
    memset(c->tcache, 0, sizeof c->tcache);
}

/* End a write unit begun by wbegin: keep it when `s` is SG_OK, else undo it. */
static sg_status wend(sg_conn *c, int implicit, sg_status s, sg_error *err)
{
    if (s == SG_OK) {
        s = exec1(c, implicit ? ST_COMMIT : ST_RELEASE, err);
        if (s == SG_OK || !implicit) return s;
        /* A failed COMMIT leaves the transaction open: close it so the
         * connection stays usable; the caller retries the whole call. */
        if (!sqlite3_get_autocommit(c->db)) exec1(c, ST_ROLLBACK, NULL);
        tcache_clear(c);
        return s;
    }
    /* Some errors (I/O, full disk) roll the whole transaction back by
     * themselves; only undo what is still there. */
    if (sqlite3_get_autocommit(c->db)) return s;
    if (implicit) {
        exec1(c, ST_ROLLBACK, NULL);
    } else if (exec1(c, ST_ROLLBACK_TO, NULL) == SG_OK) {
        exec1(c, ST_RELEASE, NULL);
    }
    return s;
}

/*
** Tenant id -> tid, cached per connection: tenants are never deleted, so a
** hit stays valid. Only committed or own-transaction lookups are cached, and
** rollback clears the cache (a tenant created in a rolled-back transaction
** may have been cached, and its tid may be reused).
*/
static sg_status tid_of(sg_conn *c, const char *tenant, int64_t *tid, sg_error *err)
{
    if (!tenant || !*tenant) return sg_error_set(err, SG_EINVALID, NULL, "no tenant given");
    size_t n = strlen(tenant);
    struct tentry *e = NULL;
    if (n <= TENANT_ID_MAX) {
        e = &c->tcache[fnv1a(tenant, n) % TCACHE_SIZE];
        if (e->tid && !strcmp(e->id, tenant)) {
            *tid = e->tid;
            return SG_OK;
        }
    }
    sqlite3_stmt *s;
    sg_status st = use(c, ST_TENANT_TID, &s, err);
    if (st != SG_OK) return st;
    bind_text(s, 1, tenant);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *tid = sqlite3_column_int64(s, 0);
        if (e) {
            e->tid = *tid;
            memcpy(e->id, tenant, n + 1);
        }
        st = SG_OK;
    } else if (rc == SQLITE_DONE) {
        st = sg_error_set(err, SG_ENOTFOUND, NULL, "no such tenant");
    } else {
        st = fail(c, rc, err);
    }
    done(c, ST_TENANT_TID, s);
    return st;
}

/* A resource's rid, type and version by id within one tenant. SG_ENOTFOUND
 * (no detail) when absent; *found tells a miss from an error. */
static sg_status lookup(sg_conn *c, int64_t tid, const char *id, int64_t *rid, sg_rtype *type,
                        int64_t *version, int *found, sg_error *err)
{
    sqlite3_stmt *s;
    sg_status st = use(c, ST_RES_LOOKUP, &s, err);
    if (st != SG_OK) return st;
    sqlite3_bind_int64(s, 1, tid);
    bind_text(s, 2, id);
    int rc = sqlite3_step(s);
    *found = 0;
    if (rc == SQLITE_ROW) {
        *found = 1;
        if (rid) *rid = sqlite3_column_int64(s, 0);
        if (type) *type = (sg_rtype)sqlite3_column_int(s, 1);
        if (version) *version = sqlite3_column_int64(s, 2);
    } else if (rc != SQLITE_DONE) {
        st = fail(c, rc, err);
    }
    done(c, ST_RES_LOOKUP, s);
    return st;
}

/* ---- options and open ---------------------------------------------------------- */

static int parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    if (!s || !*s) return 0;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static sg_status parse_opts(sg_storage *st, const char *data_dir, const sg_kv *opts, size_t nopts,
                            sg_error *err)
{
    const char *path = NULL;
    long long v;
    for (size_t i = 0; i < nopts; i++) {
        const char *k = opts[i].key, *val = opts[i].value;
        if (!k) return sg_error_set(err, SG_EINVALID, NULL, "option without a name");
        if (!strcmp(k, "path")) {
            if (!val || !*val)
                return sg_error_set(err, SG_EINVALID, NULL, "option \"path\" is empty");
            path = val;
        } else if (!strcmp(k, "busy_timeout_ms")) {
            if (!parse_ll(val, 0, INT_MAX, &v))
                return sg_error_set(err, SG_EINVALID, NULL,
                                    "option \"busy_timeout_ms\" needs milliseconds");
            st->busy_timeout_ms = (int)v;
        } else if (!strcmp(k, "mmap_size")) {
            if (!parse_ll(val, 0, LLONG_MAX, &v))
                return sg_error_set(err, SG_EINVALID, NULL, "option \"mmap_size\" needs bytes");
            st->mmap_size = v;
        } else if (!strcmp(k, "cache_kib")) {
            if (!parse_ll(val, 0, INT_MAX, &v))
                return sg_error_set(err, SG_EINVALID, NULL, "option \"cache_kib\" needs KiB");
            st->cache_kib = v;
        } else if (!strcmp(k, "page_anchor_stride")) {
            if (!parse_ll(val, 0, 1 << 20, &v))
                return sg_error_set(err, SG_EINVALID, NULL,
                                    "option \"page_anchor_stride\" needs a row count");
            st->anchor_stride = (int)v;
        } else if (!strcmp(k, "keep_cache_kib")) {
            if (!parse_ll(val, 0, INT_MAX / 1024, &v))
                return sg_error_set(err, SG_EINVALID, NULL, "option \"keep_cache_kib\" needs KiB");
            st->keep_cache_kib = v;
        } else if (!strcmp(k, "synchronous")) {
            if (val && !strcasecmp(val, "full"))
                st->sync_full = 1;
            else if (val && !strcasecmp(val, "normal"))
                st->sync_full = 0;
            else
                return sg_error_set(err, SG_EINVALID, NULL,
                                    "option \"synchronous\" is \"full\" or \"normal\"");
        } else {
            return sg_error_set(err, SG_EINVALID, NULL, "unknown option \"%.64s\"", k);
        }
    }
    const sg_host *h = st->host;
    if (path) {
        st->path = xstrdup(h, path);
    } else {
        if (!data_dir || !*data_dir)
            return sg_error_set(err, SG_EINVALID, NULL, "no data directory and no \"path\"");
        size_t n = strlen(data_dir) + sizeof "/" DB_FILE;
        st->path = h->alloc(n);
        if (st->path) snprintf(st->path, n, "%s/%s", data_dir, DB_FILE);
    }
    return st->path ? SG_OK : oom(err);
}

/* Per-connection settings; the values are integers checked by parse_opts. */
static int apply_pragmas(sg_storage *st, sqlite3 *db)
{
    char sql[256];
    sqlite3_busy_timeout(db, st->busy_timeout_ms);
    snprintf(sql, sizeof sql,
             "PRAGMA foreign_keys = ON; PRAGMA synchronous = %s;"
             " PRAGMA mmap_size = %lld; PRAGMA cache_size = -%lld;"
             " PRAGMA journal_size_limit = 67108864;"
             /* Savepoint journals in memory: every create inside the
              * caller's transaction opens one. */
             " PRAGMA temp_store = MEMORY;",
             st->sync_full ? "FULL" : "NORMAL", st->mmap_size, st->cache_kib);
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int open_db(sg_storage *st, sqlite3 **out)
{
    int rc = sqlite3_open_v2(st->path, out,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                 SQLITE_OPEN_PRIVATECACHE,
                             NULL);
    if (rc == SQLITE_OK) rc = sqlite3_extended_result_codes(*out, 1);
    if (rc == SQLITE_OK) rc = apply_pragmas(st, *out);
    return rc;
}

static int pragma_int(sqlite3 *db, const char *sql, long long *v)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_int64(s, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc;
}

/*
** Switch the file to WAL. The journal mode lives in the file, so this is a
** no-op after the first open; on a fresh file another process may hold a
** lock, and the busy handler does not cover this pragma, hence the loop.
*/
static int set_wal(sg_storage *st, sqlite3 *db)
{
    int waited = 0;
    for (;;) {
        sqlite3_stmt *s;
        int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
        if (rc != SQLITE_OK) return rc;
        rc = sqlite3_step(s);
        int wal = rc == SQLITE_ROW && !strcasecmp(col_text(s, 0), "wal");
        sqlite3_finalize(s);
        if (wal) return SQLITE_OK;
        if (rc == SQLITE_ROW) { /* e.g. an in-memory database */
            st->host->log(SG_LOG_ERROR, PLUGIN, "%s cannot use WAL", st->path);
            return SQLITE_CANTOPEN;
        }
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) return rc;
        if (waited >= st->busy_timeout_ms) return SQLITE_BUSY;
        sqlite3_sleep(10);
        waited += 10;
    }
}

/*
** Bring the schema up to date. The write lock is taken before user_version is
** read, so when the CLI and the server open a new file at the same moment one
** migrates and the other then sees the new version and does nothing.
*/
static sg_status migrate(sg_storage *st, sqlite3 *db, sg_error *err)
{
    const sg_host *h = st->host;
    long long ver = 0, app = 0;
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) return db_fail(h, db, rc, err);
    rc = pragma_int(db, "PRAGMA application_id", &app);
    if (rc == SQLITE_OK) rc = pragma_int(db, "PRAGMA user_version", &ver);
    if (rc != SQLITE_OK) goto dbfail;
    if (app != 0 && app != APPLICATION_ID) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        h->log(SG_LOG_ERROR, PLUGIN, "%s is not a scimgate database", st->path);
        return sg_error_set(err, SG_EINVALID, NULL, "the database file belongs to another program");
    }
    if (ver > NMIGRATIONS) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        h->log(SG_LOG_ERROR, PLUGIN, "schema version %lld is newer than this plugin's (%d)", ver,
               NMIGRATIONS);
        return sg_error_set(err, SG_EVERSION, NULL, "the database was written by a newer scimgate");
    }
    for (long long i = ver; i < NMIGRATIONS; i++) {
        char sql[64];
        rc = sqlite3_exec(db, migrations[i], NULL, NULL, NULL);
        if (rc != SQLITE_OK) goto dbfail;
        snprintf(sql, sizeof sql, "PRAGMA user_version = %lld", i + 1);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK) goto dbfail;
        h->log(SG_LOG_INFO, PLUGIN, "applied schema migration %lld", i + 1);
    }
    rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) goto dbfail;
    return SG_OK;
dbfail : {
    sg_status s = db_fail(h, db, rc, err);
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return s;
}
}

static void st_close(sg_storage *st)
{
    if (!st) return;
    const sg_host *h = st->host;
    h->free(st->path);
    h->free(st);
}

static sg_status st_open(const sg_host *host, const char *data_dir, const sg_kv *opts, size_t nopts,
                         sg_storage **out, sg_error *err)
{
    *out = NULL;
    sg_storage *st = host->alloc(sizeof *st);
    if (!st) return oom(err);
    *st = (sg_storage){.host = host,
                       .busy_timeout_ms = DEFAULT_BUSY_TIMEOUT_MS,
                       .mmap_size = DEFAULT_MMAP_SIZE,
                       .cache_kib = DEFAULT_CACHE_KIB,
                       .keep_cache_kib = DEFAULT_KEEP_CACHE_KIB,
                       .sync_full = 1,
                       .anchor_stride = DEFAULT_ANCHOR_STRIDE};
    sg_status s = parse_opts(st, data_dir, opts, nopts, err);
    if (s != SG_OK) {
        st_close(st);
        return s;
    }
    sqlite3 *db = NULL;
    int rc = open_db(st, &db);
    if (rc == SQLITE_OK) rc = set_wal(st, db);
    if (rc != SQLITE_OK) {
        host->log(SG_LOG_ERROR, PLUGIN, "cannot open %s: %s", st->path,
                  db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        s = db_fail(host, NULL, rc, err);
    } else {
        s = migrate(st, db, err);
    }
    sqlite3_close_v2(db);
    if (s != SG_OK) {
        st_close(st);
        return s;
    }
    *out = st;
    return SG_OK;
}

/* ---- connections --------------------------------------------------------------- */

static void st_disconnect(sg_conn *c)
{
    if (!c) return;
    const sg_host *h = c->host;
    for (int i = 0; i < ST_COUNT; i++) sqlite3_finalize(c->stmts[i]);
    h->free(c->anchors.rid);
    for (int i = 0; i < FCACHE_SIZE; i++) {
        sqlite3_finalize(c->fcache[i].st);
        h->free(c->fcache[i].sql);
    }
    /* Closing rolls back an open transaction. */
    sqlite3_close_v2(c->db);
    h->free(c);
}

static sg_status st_connect(sg_storage *st, sg_conn **out, sg_error *err)
{
    *out = NULL;
    sg_conn *c = st->host->alloc(sizeof *c);
    if (!c) return oom(err);
    memset(c, 0, sizeof *c);
    c->st = st;
    c->host = st->host;
    int rc = open_db(st, &c->db);
    if (rc != SQLITE_OK) {
        sg_status s = db_fail(st->host, c->db, rc, err);
        st_disconnect(c);
        return s;
    }
    *out = c;
    return SG_OK;
}

/* ---- transactions --------------------------------------------------------------- */

static sg_status st_begin(sg_conn *c, sg_txn_mode mode, sg_error *err)
{
    if (!sqlite3_get_autocommit(c->db))
        return sg_error_set(err, SG_EINTERNAL, NULL, "a transaction is already open");
    return exec1(c, mode == SG_TXN_WRITE ? ST_BEGIN_IMMEDIATE : ST_BEGIN, err);
}

/*
** Give back the page cache beyond keep_cache_kib once a transaction is over.
** Every request thread has its own connection, and a write transaction reads
** its pages through the cache (mmap serves only reads outside one), so each
** connection that ever ran a Bulk request or a large group kept cache_kib
** of pages, most of them made stale by another connection's commit since:
** after seeding 100,000 users malloc held 151 MiB in use, 31 MiB with this. A
** request's small working set stays cached (reads of the file go through
** the mapping anyway); what a large transaction pulled in goes back to
** malloc when it ends.
*/
static void shrink_cache(sg_conn *c)
{
    int used = 0, hi = 0;
    if (sqlite3_db_status(c->db, SQLITE_DBSTATUS_CACHE_USED, &used, &hi, 0) == SQLITE_OK &&
        used > c->st->keep_cache_kib * 1024)
        sqlite3_db_release_memory(c->db);
}

static sg_status st_commit(sg_conn *c, sg_error *err)
{
    if (sqlite3_get_autocommit(c->db)) return SG_OK;
    sg_status s = exec1(c, ST_COMMIT, err);
    if (s != SG_OK && !sqlite3_get_autocommit(c->db)) {
        /* Leave the connection clean: the request failed as a whole. */
        exec1(c, ST_ROLLBACK, NULL);
        tcache_clear(c);
    }
    shrink_cache(c);
    return s;
}

static void st_rollback(sg_conn *c)
{
    if (!sqlite3_get_autocommit(c->db)) exec1(c, ST_ROLLBACK, NULL);
    tcache_clear(c);
    shrink_cache(c);
}

/* ---- tenants ------------------------------------------------------------------------ */

/* Does statement `id` (one text parameter) return a row? */
static sg_status exists1(sg_conn *c, int id, const char *v, int *found, sg_error *err)
{
    sqlite3_stmt *s;
    sg_status st = use(c, id, &s, err);
    if (st != SG_OK) return st;
    bind_text(s, 1, v);
    int rc = sqlite3_step(s);
    *found = rc == SQLITE_ROW;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) st = fail(c, rc, err);
    done(c, id, s);
    return st;
}

static sg_status st_tenant_create(sg_conn *c, const sg_tenant *t, sg_error *err)
{
    if (!t || !t->id || !*t->id || !t->name || !*t->name)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "a tenant needs an id and a name");
    if (strlen(t->id) > TENANT_ID_MAX)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "tenant id longer than %d bytes",
                            TENANT_ID_MAX);
    int found;
    sg_status s = exists1(c, ST_TENANT_BY_ID, t->id, &found, err);
    if (s != SG_OK) return s;
    if (found)
        return sg_error_set(err, SG_ECONFLICT, "uniqueness", "tenant id \"%.64s\" is already taken",
                            t->id);
    s = exists1(c, ST_TENANT_BY_NAME, t->name, &found, err);
    if (s != SG_OK) return s;
    if (found)
        return sg_error_set(err, SG_ECONFLICT, "uniqueness",
                            "tenant name \"%.128s\" is already taken", t->name);

    char now[SG_TIME_MAX];
    if (!t->created) c->host->format_time(c->host->now_ms(), now);
    sqlite3_stmt *st;
    s = use(c, ST_TENANT_INS, &st, err);
    if (s != SG_OK) return s;
    bind_text(st, 1, t->id);
    bind_text(st, 2, t->name);
    bind_text(st, 3, t->created ? t->created : now);
    sqlite3_bind_int(st, 4, t->disabled ? 1 : 0);
    int rc = sqlite3_step(st);
    done(c, ST_TENANT_INS, st);
    if (rc == SQLITE_DONE) return SG_OK;
    if ((rc & 0xff) == SQLITE_CONSTRAINT) /* a concurrent create won the race */
        return sg_error_set(err, SG_ECONFLICT, "uniqueness", "the tenant already exists");
    return fail(c, rc, err);
}

static void tenant_row(sqlite3_stmt *s, sg_tenant *t)
{
    t->id = col_text(s, 0);
    t->name = col_text(s, 1);
    t->created = col_text(s, 2);
    t->disabled = sqlite3_column_int(s, 3) != 0;
}

static sg_status st_tenant_get(sg_conn *c, const char *id_or_name, sg_tenant_fn fn, void *ud,
                               sg_error *err)
{
    static const int order[2] = {ST_TENANT_BY_ID, ST_TENANT_BY_NAME};
    if (!id_or_name) return sg_error_set(err, SG_EINVALID, NULL, "no tenant given");
    for (int i = 0; i < 2; i++) {
        sqlite3_stmt *s;
        sg_status st = use(c, order[i], &s, err);
        if (st != SG_OK) return st;
        bind_text(s, 1, id_or_name);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            sg_tenant t;
            tenant_row(s, &t);
            if (fn) fn(ud, &t);
        } else if (rc != SQLITE_DONE) {
            st = fail(c, rc, err);
        }
        done(c, order[i], s);
        if (rc != SQLITE_DONE) return st;
    }
    return sg_error_set(err, SG_ENOTFOUND, NULL, "no such tenant");
}

static sg_status st_tenant_list(sg_conn *c, sg_tenant_fn fn, void *ud, sg_error *err)
{
    if (!fn) return sg_error_set(err, SG_EINVALID, NULL, "no callback");
    sqlite3_stmt *s;
    sg_status st = use(c, ST_TENANT_LIST, &s, err);
    if (st != SG_OK) return st;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        sg_tenant t;
        tenant_row(s, &t);
        if (fn(ud, &t)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) st = fail(c, rc, err);
    done(c, ST_TENANT_LIST, s);
    return st;
}

static sg_status st_tenant_set_disabled(sg_conn *c, const char *id, int disabled, sg_error *err)
{
    sqlite3_stmt *s;
    sg_status st = use(c, ST_TENANT_DISABLE, &s, err);
    if (st != SG_OK) return st;
    bind_text(s, 1, id);
    sqlite3_bind_int(s, 2, disabled ? 1 : 0);
    int rc = sqlite3_step(s);
    done(c, ST_TENANT_DISABLE, s);
    if (rc != SQLITE_DONE) return fail(c, rc, err);
    if (sqlite3_changes(c->db) == 0) return sg_error_set(err, SG_ENOTFOUND, NULL, "no such tenant");
    return SG_OK;
}

/* ---- tokens ---------------------------------------------------------------------------- */

/* Longest subject (admin login or device id): sg_token_info.subject is
 * char[129]. Admin logins are subjects of their tokens, so the same bound. */
#define SUBJECT_MAX 128

/* An operator (no tenant) is tid 0 here: rowids start at 1. NULL or "" names
 * the operators; any other text must be a known tenant (SG_ENOTFOUND). */
static sg_status tid_or_operator(sg_conn *c, const char *tenant, int64_t *tid, sg_error *err)
{
    if (!tenant || !*tenant) {
        *tid = 0;
        return SG_OK;
    }
    return tid_of(c, tenant, tid, err);
}

/* Bind a tid, NULL for the operators. */
static void bind_tid(sqlite3_stmt *s, int i, int64_t tid)
{
    if (tid)
        sqlite3_bind_int64(s, i, tid);
    else
        sqlite3_bind_null(s, i);
}

static sg_status st_token_create(sg_conn *c, const sg_token *t, sg_error *err)
{
    if (!t || !t->id || !*t->id || !t->hash)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "a token needs an id and a hash");
    if (t->kind != SG_TOKEN_SCIM && t->kind != SG_TOKEN_ADMIN && t->kind != SG_TOKEN_DEVICE)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "unknown token kind %d",
                            (int)t->kind);
    if (t->subject && strlen(t->subject) > SUBJECT_MAX)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "token subject longer than %d bytes",
                            SUBJECT_MAX);
    int is_op = !t->tenant || !*t->tenant;
    if (is_op && t->kind != SG_TOKEN_ADMIN)
        return sg_error_set(err, SG_EINVALID, "invalidValue",
                            "only an admin token may belong to no tenant");
    int64_t tid;
    sg_status s = tid_or_operator(c, t->tenant, &tid, err);
    if (s != SG_OK) return s;
    int found;
    s = exists1(c, ST_TOKEN_EXISTS, t->id, &found, err);
    if (s != SG_OK) return s;
    if (found) return sg_error_set(err, SG_ECONFLICT, "uniqueness", "token id already exists");

    sqlite3_stmt *st;
    s = use(c, ST_TOKEN_INS, &st, err);
    if (s != SG_OK) return s;
    bind_text(st, 1, t->id);
    bind_tid(st, 2, tid);
    sqlite3_bind_blob(st, 3, t->hash, SG_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, t->created_ms ? t->created_ms : c->host->now_ms());
    sqlite3_bind_int64(st, 5, t->expires_ms);
    sqlite3_bind_int64(st, 6, t->revoked_ms);
    sqlite3_bind_int64(st, 7, t->last_used_ms);
    bind_text(st, 8, t->last_addr);
    sqlite3_bind_int(st, 9, (int)t->kind);
    bind_text(st, 10, t->subject);
    int rc = sqlite3_step(st);
    done(c, ST_TOKEN_INS, st);
    if (rc == SQLITE_DONE) return SG_OK;
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return sg_error_set(err, SG_ECONFLICT, "uniqueness", "token id already exists");
    return fail(c, rc, err);
}

static sg_status st_token_info(sg_conn *c, const char *id, sg_token_info *out, sg_error *err)
{
    sqlite3_stmt *s;
    sg_status st = use(c, ST_TOKEN_INFO, &s, err);
    if (st != SG_OK) return st;
    bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        /* An operator's token has no tenant row: tenant "", never disabled. */
        int is_op = sqlite3_column_int(s, 7) != 0;
        const char *tenant = is_op ? "" : col_text(s, 0);
        const char *subject = col_text(s, 6);
        size_t tn = strlen(tenant), sn = strlen(subject);
        const void *hash = sqlite3_column_blob(s, 1);
        int hn = sqlite3_column_bytes(s, 1);
        if (tn >= sizeof out->tenant || (!is_op && !tn) || sn >= sizeof out->subject ||
            hn != SG_HASH_LEN || !hash) {
            c->host->log(SG_LOG_ERROR, PLUGIN, "token row with a bad tenant id, subject or hash");
            st = sg_error_set(err, SG_EINTERNAL, NULL, "storage error");
        } else {
            memset(out, 0, sizeof *out);
            memcpy(out->tenant, tenant, tn + 1);
            memcpy(out->hash, hash, SG_HASH_LEN);
            out->expires_ms = sqlite3_column_int64(s, 2);
            out->revoked = sqlite3_column_int64(s, 3) != 0;
            out->tenant_disabled = is_op ? 0 : sqlite3_column_int(s, 4) != 0;
            out->kind = sqlite3_column_int(s, 5);
            memcpy(out->subject, subject, sn + 1);
        }
    } else if (rc == SQLITE_DONE) {
        st = sg_error_set(err, SG_ENOTFOUND, NULL, "no such token");
    } else {
        st = fail(c, rc, err);
    }
    done(c, ST_TOKEN_INFO, s);
    return st;
}

static sg_status st_token_list(sg_conn *c, const char *tenant, sg_token_fn fn, void *ud,
                               sg_error *err)
{
    int64_t tid;
    if (!fn) return sg_error_set(err, SG_EINVALID, NULL, "no callback");
    sg_status st = tid_or_operator(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    sqlite3_stmt *s;
    st = use(c, ST_TOKEN_LIST, &s, err);
    if (st != SG_OK) return st;
    bind_tid(s, 1, tid);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        sg_token t = {
            .id = col_text(s, 0),
            .tenant = tid ? tenant : "",
            .hash = sqlite3_column_blob(s, 1),
            .created_ms = sqlite3_column_int64(s, 2),
            .expires_ms = sqlite3_column_int64(s, 3),
            .revoked_ms = sqlite3_column_int64(s, 4),
            .last_used_ms = sqlite3_column_int64(s, 5),
            .last_addr = (const char *)sqlite3_column_text(s, 6),
            .kind = (sg_token_kind)sqlite3_column_int(s, 7),
            .subject = (const char *)sqlite3_column_text(s, 8),
        };
        if (fn(ud, &t)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) st = fail(c, rc, err);
    done(c, ST_TOKEN_LIST, s);
    return st;
}

static sg_status st_token_update(sg_conn *c, const char *tenant, const char *id, int64_t expires_ms,
                                 int64_t revoked_ms, sg_error *err)
{
    int64_t tid;
    sg_status st = tid_or_operator(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    sqlite3_stmt *s;
    st = use(c, ST_TOKEN_UPDATE, &s, err);
    if (st != SG_OK) return st;
    bind_tid(s, 1, tid);
    bind_text(s, 2, id);
    sqlite3_bind_int64(s, 3, expires_ms);
    sqlite3_bind_int64(s, 4, revoked_ms);
    int rc = sqlite3_step(s);
    done(c, ST_TOKEN_UPDATE, s);
    if (rc != SQLITE_DONE) return fail(c, rc, err);
    if (sqlite3_changes(c->db) == 0) return sg_error_set(err, SG_ENOTFOUND, NULL, "no such token");
    return SG_OK;
}

static sg_status st_token_touch(sg_conn *c, const char *id, int64_t when_ms, const char *addr,
                                sg_error *err)
{
    sqlite3_stmt *s;
    sg_status st = use(c, ST_TOKEN_TOUCH, &s, err);
    if (st != SG_OK) return st;
    bind_text(s, 1, id);
    sqlite3_bind_int64(s, 2, when_ms);
    bind_text(s, 3, addr);
    int rc = sqlite3_step(s);
    done(c, ST_TOKEN_TOUCH, s);
    if (rc != SQLITE_DONE) return fail(c, rc, err);
    if (sqlite3_changes(c->db) == 0) return sg_error_set(err, SG_ENOTFOUND, NULL, "no such token");
    return SG_OK;
}

/* ---- admins ---------------------------------------------------------------------------- */

static sg_status st_admin_create(sg_conn *c, const sg_admin *a, sg_error *err)
{
    if (!a || !a->login || !*a->login)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "an admin needs a login");
    if (strlen(a->login) > SUBJECT_MAX)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "admin login longer than %d bytes",
                            SUBJECT_MAX);
    int64_t tid;
    sg_status s = tid_or_operator(c, a->tenant, &tid, err);
    if (s != SG_OK) return s;
    sqlite3_stmt *st;
    s = use(c, ST_ADMIN_INS, &st, err);
    if (s != SG_OK) return s;
    sqlite3_bind_int64(st, 1, tid);
    bind_text(st, 2, a->login);
    bind_text(st, 3, a->password_hash);
    sqlite3_bind_int64(st, 4, a->created_ms ? a->created_ms : c->host->now_ms());
    sqlite3_bind_int(st, 5, a->disabled ? 1 : 0);
    int rc = sqlite3_step(st);
    done(c, ST_ADMIN_INS, st);
    if (rc == SQLITE_DONE) return SG_OK;
    /* admins_login: the login is taken in that tenant (or among operators).
     * A failed statement undoes only itself; a transaction goes on. */
    if (rc == SQLITE_CONSTRAINT_UNIQUE)
        return sg_error_set(err, SG_ECONFLICT, "uniqueness",
                            "admin login \"%.128s\" is already taken", a->login);
    return fail(c, rc, err);
}

static sg_status st_admin_get(sg_conn *c, const char *tenant, const char *login, sg_admin_fn fn,
                              void *ud, sg_error *err)
{
    if (!login) return sg_error_set(err, SG_EINVALID, NULL, "no login given");
    int64_t tid;
    sg_status st = tid_or_operator(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    sqlite3_stmt *s;
    st = use(c, ST_ADMIN_GET, &s, err);
    if (st != SG_OK) return st;
    sqlite3_bind_int64(s, 1, tid);
    bind_text(s, 2, login);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        sg_admin a = {
            .tenant = tid ? tenant : "",
            .login = col_text(s, 0),
            .password_hash = (const char *)sqlite3_column_text(s, 1),
            .created_ms = sqlite3_column_int64(s, 2),
            .disabled = sqlite3_column_int(s, 3) != 0,
        };
        if (fn) fn(ud, &a);
    } else if (rc == SQLITE_DONE) {
        st = sg_error_set(err, SG_ENOTFOUND, NULL, "no such admin");
    } else {
        st = fail(c, rc, err);
    }
    done(c, ST_ADMIN_GET, s);
    return st;
}

/* ---- portal sessions (ABI 1.1) ------------------------------------------------------- */

static sg_status st_session_create(sg_conn *c, const sg_session *x, sg_error *err)
{
    if (!x || !x->id || !*x->id || !x->hash || !x->login || !*x->login)
        return sg_error_set(err, SG_EINVALID, "invalidValue",
                            "a session needs an id, a login and a hash");
    if (strlen(x->login) > SUBJECT_MAX)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "admin login longer than %d bytes",
                            SUBJECT_MAX);
    int64_t tid;
    sg_status s = tid_or_operator(c, x->tenant, &tid, err);
    if (s != SG_OK) return s;
    sqlite3_stmt *st;
    s = use(c, ST_SES_INS, &st, err);
    if (s != SG_OK) return s;
    bind_text(st, 1, x->id);
    bind_tid(st, 2, tid);
    bind_text(st, 3, x->login);
    sqlite3_bind_blob(st, 4, x->hash, SG_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, x->created_ms);
    sqlite3_bind_int64(st, 6, x->expires_ms);
    sqlite3_bind_int64(st, 7, x->seen_ms);
    int rc = sqlite3_step(st);
    done(c, ST_SES_INS, st);
    if (rc == SQLITE_DONE) return SG_OK;
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return sg_error_set(err, SG_ECONFLICT, "uniqueness", "session id already exists");
    return fail(c, rc, err);
}

static sg_status st_session_get(sg_conn *c, const char *id, sg_session_fn fn, void *ud,
                                sg_error *err)
{
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no session id given");
    sqlite3_stmt *s;
    sg_status st = use(c, ST_SES_GET, &s, err);
    if (st != SG_OK) return st;
    bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        int is_op = sqlite3_column_int(s, 7) != 0;
        const void *hash = sqlite3_column_blob(s, 2);
        if (!hash || sqlite3_column_bytes(s, 2) != SG_HASH_LEN) {
            c->host->log(SG_LOG_ERROR, PLUGIN, "session row with a bad hash");
            st = sg_error_set(err, SG_EINTERNAL, NULL, "storage error");
        } else {
            sg_session x = {
                .id = id,
                .tenant = is_op ? "" : col_text(s, 0),
                .login = col_text(s, 1),
                .hash = hash,
                .created_ms = sqlite3_column_int64(s, 3),
                .expires_ms = sqlite3_column_int64(s, 4),
                .seen_ms = sqlite3_column_int64(s, 5),
                .tenant_disabled = is_op ? 0 : sqlite3_column_int(s, 6) != 0,
            };
            if (fn) fn(ud, &x);
        }
    } else if (rc == SQLITE_DONE) {
        st = sg_error_set(err, SG_ENOTFOUND, NULL, "no such session");
    } else {
        st = fail(c, rc, err);
    }
    done(c, ST_SES_GET, s);
    return st;
}

static sg_status st_session_touch(sg_conn *c, const char *id, int64_t seen_ms, sg_error *err)
{
    sqlite3_stmt *s;
    sg_status st = use(c, ST_SES_TOUCH, &s, err);
    if (st != SG_OK) return st;
    bind_text(s, 1, id);
    sqlite3_bind_int64(s, 2, seen_ms);
    int rc = sqlite3_step(s);
    done(c, ST_SES_TOUCH, s);
    if (rc != SQLITE_DONE) return fail(c, rc, err);
    if (sqlite3_changes(c->db) == 0)
        return sg_error_set(err, SG_ENOTFOUND, NULL, "no such session");
    return SG_OK;
}

static sg_status st_session_delete(sg_conn *c, const char *id, sg_error *err)
{
    sqlite3_stmt *s;
    sg_status st = use(c, ST_SES_DEL, &s, err);
    if (st != SG_OK) return st;
    bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    done(c, ST_SES_DEL, s);
    if (rc != SQLITE_DONE) return fail(c, rc, err);
    if (sqlite3_changes(c->db) == 0)
        return sg_error_set(err, SG_ENOTFOUND, NULL, "no such session");
    return SG_OK;
}

static sg_status st_session_purge(sg_conn *c, int64_t now_ms, int64_t seen_before_ms,
                                  int64_t *removed, sg_error *err)
{
    sqlite3_stmt *s;
    sg_status st = use(c, ST_SES_PURGE, &s, err);
    if (st != SG_OK) return st;
    sqlite3_bind_int64(s, 1, now_ms);
    sqlite3_bind_int64(s, 2, seen_before_ms);
    int rc = sqlite3_step(s);
    done(c, ST_SES_PURGE, s);
    if (rc != SQLITE_DONE) return fail(c, rc, err);
    if (removed) *removed = sqlite3_changes(c->db);
    return SG_OK;
}

/* ---- resources ----------------------------------------------------------------------- */

static sg_status clash(const sg_key *k, sg_error *err)
{
    return sg_error_set(err, SG_ECONFLICT, "uniqueness", "%.64s \"%.128s\" is already taken",
                        k->attr, k->value ? k->value : k->folded);
}

/*
** Look for SG_KEY_UNIQUE clashes before writing, so that the client learns
** which attribute clashed; the partial unique index stays as the backstop.
** `self` is the resource's own rid on replace (it may keep its values), 0 on
** create.
*/
static sg_status check_unique(sg_conn *c, int64_t tid, sg_rtype type, const sg_resource *r,
                              int64_t self, sg_error *err)
{
    for (size_t i = 0; i < r->nkeys; i++) {
        const sg_key *k = &r->keys[i];
        if (!(k->flags & SG_KEY_UNIQUE)) continue;
        sqlite3_stmt *s;
        sg_status st = use(c, ST_KEY_CLASH, &s, err);
        if (st != SG_OK) return st;
        sqlite3_bind_int64(s, 1, tid);
        sqlite3_bind_int(s, 2, type);
        bind_text(s, 3, k->attr);
        bind_text(s, 4, k->folded);
        sqlite3_bind_int64(s, 5, self);
        int rc = sqlite3_step(s);
        done(c, ST_KEY_CLASH, s);
        if (rc == SQLITE_ROW) return clash(k, err);
        if (rc != SQLITE_DONE) return fail(c, rc, err);
    }
    return SG_OK;
}

/* Is unique key i a repeat of an earlier unique key of the same resource? */
static int repeated_unique(const sg_resource *r, size_t i)
{
    const sg_key *k = &r->keys[i];
    for (size_t j = 0; j < i; j++) {
        const sg_key *p = &r->keys[j];
        if ((p->flags & SG_KEY_UNIQUE) && !strcmp(p->attr, k->attr) &&
            !strcmp(p->folded, k->folded))
            return 1;
    }
    return 0;
}

/*
** A resource may carry the same (attr, folded) twice (two e-mails differing
** in case); the key table is a set. A repeated non-unique key trips the
** primary key and is skipped there. A repeated unique key would trip the
** unique index first and look like a clash with another resource, so those
** few are compared here.
*/
static sg_status insert_keys(sg_conn *c, int64_t rid, int64_t tid, sg_rtype type,
                             const sg_resource *r, sg_error *err)
{
    for (size_t i = 0; i < r->nkeys; i++) {
        const sg_key *k = &r->keys[i];
        if ((k->flags & SG_KEY_UNIQUE) && repeated_unique(r, i)) continue;
        sqlite3_stmt *s;
        sg_status st = use(c, ST_KEY_INS, &s, err);
        if (st != SG_OK) return st;
        sqlite3_bind_int64(s, 1, rid);
        sqlite3_bind_int64(s, 2, tid);
        sqlite3_bind_int(s, 3, type);
        bind_text(s, 4, k->attr);
        bind_text(s, 5, k->folded);
        bind_text(s, 6, k->value && strcmp(k->value, k->folded) ? k->value : NULL);
        sqlite3_bind_int(s, 7, (k->flags & SG_KEY_UNIQUE) ? 1 : 0);
        int rc = sqlite3_step(s);
        done(c, ST_KEY_INS, s);
        if (rc == SQLITE_DONE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) continue;
        if (rc == SQLITE_CONSTRAINT_UNIQUE) return clash(k, err);
        return fail(c, rc, err);
    }
    return SG_OK;
}

static sg_status check_resource(const sg_resource *r, sg_error *err)
{
    if (!r || !r->id || !*r->id || !r->json || !valid_rtype(r->type))
        return sg_error_set(err, SG_EINVALID, "invalidValue", "incomplete resource");
    if (r->json_len > INT_MAX) return sg_error_set(err, SG_ETOOMANY, NULL, "resource too large");
    for (size_t i = 0; i < r->nkeys; i++)
        if (!r->keys[i].attr || !r->keys[i].folded)
            return sg_error_set(err, SG_EINVALID, "invalidValue", "incomplete index key");
    return SG_OK;
}

/* An existing id is found by UNIQUE (tid, id) on insert, not looked up. */
static sg_status create_body(sg_conn *c, int64_t tid, const sg_resource *r, sg_error *err)
{
    sg_status st = check_unique(c, tid, r->type, r, 0, err);
    if (st != SG_OK) return st;

    char now[SG_TIME_MAX];
    if (!r->created || !r->modified) c->host->format_time(c->host->now_ms(), now);
    sqlite3_stmt *s;
    st = use(c, ST_RES_INS, &s, err);
    if (st != SG_OK) return st;
    sqlite3_bind_int64(s, 1, tid);
    sqlite3_bind_int(s, 2, r->type);
    bind_text(s, 3, r->id);
    sqlite3_bind_int64(s, 4, r->version);
    bind_text(s, 5, r->created ? r->created : now);
    bind_text(s, 6, r->modified ? r->modified : now);
    sqlite3_bind_text(s, 7, r->json, (int)r->json_len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    done(c, ST_RES_INS, s);
    if (rc == SQLITE_CONSTRAINT_UNIQUE)
        return sg_error_set(err, SG_ECONFLICT, "uniqueness", "id \"%.128s\" already exists", r->id);
    if (rc != SQLITE_DONE) return fail(c, rc, err);
    return insert_keys(c, sqlite3_last_insert_rowid(c->db), tid, r->type, r, err);
}

static sg_status st_create(sg_conn *c, const char *tenant, const sg_resource *r, sg_error *err)
{
    sg_status st = check_resource(r, err);
    if (st != SG_OK) return st;
    int64_t tid;
    int implicit;
    if ((st = tid_of(c, tenant, &tid, err)) != SG_OK) return st;
    if ((st = wbegin(c, &implicit, err)) != SG_OK) return st;
    return wend(c, implicit, create_body(c, tid, r, err), err);
}

static sg_status not_found(sg_rtype type, const char *id, sg_error *err)
{
    return sg_error_set(err, SG_ENOTFOUND, NULL, "%s \"%.128s\" not found", rtype_name(type),
                        id ? id : "");
}

static sg_status replace_body(sg_conn *c, int64_t tid, const sg_resource *r, int64_t expected,
                              sg_error *err)
{
    int64_t rid, version;
    sg_rtype type;
    int found;
    sg_status st = lookup(c, tid, r->id, &rid, &type, &version, &found, err);
    if (st != SG_OK) return st;
    if (!found || type != r->type) return not_found(r->type, r->id, err);
    if (version != expected) return sg_error_set(err, SG_EPRECOND, NULL, "version mismatch");
    if ((st = check_unique(c, tid, r->type, r, rid, err)) != SG_OK) return st;

    sqlite3_stmt *s;
    if ((st = use(c, ST_KEY_DEL, &s, err)) != SG_OK) return st;
    sqlite3_bind_int64(s, 1, rid);
    int rc = sqlite3_step(s);
    done(c, ST_KEY_DEL, s);
    if (rc != SQLITE_DONE) return fail(c, rc, err);

    char now[SG_TIME_MAX];
    if (!r->modified) c->host->format_time(c->host->now_ms(), now);
    if ((st = use(c, ST_RES_UPD, &s, err)) != SG_OK) return st;
    sqlite3_bind_int64(s, 1, rid);
    sqlite3_bind_int64(s, 2, r->version);
    bind_text(s, 3, r->modified ? r->modified : now);
    sqlite3_bind_text(s, 4, r->json, (int)r->json_len, SQLITE_STATIC);
    rc = sqlite3_step(s);
    done(c, ST_RES_UPD, s);
    if (rc != SQLITE_DONE) return fail(c, rc, err);
    return insert_keys(c, rid, tid, r->type, r, err);
}

static sg_status st_replace(sg_conn *c, const char *tenant, const sg_resource *r,
                            int64_t expected_version, sg_error *err)
{
    sg_status st = check_resource(r, err);
    if (st != SG_OK) return st;
    int64_t tid;
    int implicit;
    if ((st = tid_of(c, tenant, &tid, err)) != SG_OK) return st;
    if ((st = wbegin(c, &implicit, err)) != SG_OK) return st;
    return wend(c, implicit, replace_body(c, tid, r, expected_version, err), err);
}

static sg_status exec_rid(sg_conn *c, int id, int64_t rid, sg_error *err)
{
    sqlite3_stmt *s;
    sg_status st = use(c, id, &s, err);
    if (st != SG_OK) return st;
    sqlite3_bind_int64(s, 1, rid);
    int rc = sqlite3_step(s);
    done(c, id, s);
    return rc == SQLITE_DONE ? SG_OK : fail(c, rc, err);
}

static sg_status remove_body(sg_conn *c, int64_t tid, sg_rtype type, const char *id, sg_error *err)
{
    static const int order[] = {ST_KEY_DEL, ST_MEM_DEL_GROUP, ST_MEM_DEL_MEMBER, ST_RES_DEL};
    int64_t rid;
    sg_rtype have;
    int found;
    sg_status st = lookup(c, tid, id, &rid, &have, NULL, &found, err);
    if (st != SG_OK) return st;
    if (!found || have != type) return not_found(type, id, err);
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if ((st = exec_rid(c, order[i], rid, err)) != SG_OK) return st;
    return SG_OK;
}

static sg_status st_remove(sg_conn *c, const char *tenant, sg_rtype type, const char *id,
                           sg_error *err)
{
    int64_t tid;
    int implicit;
    sg_status st;
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no id given");
    if ((st = tid_of(c, tenant, &tid, err)) != SG_OK) return st;
    if ((st = wbegin(c, &implicit, err)) != SG_OK) return st;
    return wend(c, implicit, remove_body(c, tid, type, id, err), err);
}

/* Hand one row (id, version, created, modified, body) to the caller. */
static sg_status emit_row(sqlite3_stmt *s, sg_rtype type, sg_row_fn fn, void *ud)
{
    sg_resource r = {
        .type = type,
        .id = col_text(s, 0),
        .version = sqlite3_column_int64(s, 1),
        .created = col_text(s, 2),
        .modified = col_text(s, 3),
        .json = col_text(s, 4),
        .json_len = (size_t)sqlite3_column_bytes(s, 4),
    };
    return fn(ud, &r);
}

static sg_status st_get(sg_conn *c, const char *tenant, sg_rtype type, const char *id, sg_row_fn fn,
                        void *ud, sg_error *err)
{
    int64_t tid;
    sg_status st;
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no id given");
    if ((st = tid_of(c, tenant, &tid, err)) != SG_OK) return st;
    sqlite3_stmt *s;
    if ((st = use(c, ST_RES_GET, &s, err)) != SG_OK) return st;
    sqlite3_bind_int64(s, 1, tid);
    bind_text(s, 2, id);
    sqlite3_bind_int(s, 3, type);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        st = fn ? emit_row(s, type, fn, ud) : SG_OK;
    else if (rc == SQLITE_DONE)
        st = not_found(type, id, err);
    else
        st = fail(c, rc, err);
    done(c, ST_RES_GET, s);
    return st;
}

/* ---- filter compilation ---------------------------------------------------------------- */

/*
** The filter AST becomes a WHERE clause over `resources r`, placeholders
** ?1, ?2 (the tenant's tid and the resource type), then ?3... The walk over
** the AST, its exactness rules and the analysis of leaves are
** plugins/common/sqlfilter.c's, shared with storage_postgres (see
** sqlfilter.h); this file writes SQLite's SQL for them (`dialect`, after
** comp_leaf).
**
** Where a value is read from:
**   - index keys: `folded` is compared byte for byte (SQLite's BINARY
**     collation, memcmp order, like the evaluator);
**   - the stored body through JSON1. The body is the core's canonical
**     JSON: extension attributes inside the object named by the extension
**     URN, multi-valued attributes as arrays.
**
** Planning. SQLite cannot turn a correlated EXISTS into an index-driven
** semi-join, and without statistics it prefers scanning the (tid, rtype)
** index over rowid IN-lists. So each node is emitted in one of two forms:
**   - drive: `r.rid IN (SELECT rid FROM resource_keys WHERE tid, rtype,
**     attr, folded ...)` and similar, which the planner runs as index
**     look-ups (or ranges) that feed rowids; an OR drives with every
**     branch in drive form;
**   - check: a correlated EXISTS doing a point look-up per candidate row,
**     or an expression over the row (JSON conditions are always checks).
** When the whole WHERE is drivable the outer tenant/type terms are written
** `+r.tid` / `+r.rtype`, which takes them out of index selection, so the
** planner must start from the driver instead of scanning the tenant.
** sf_rank() and comp_leaf() must agree: a node with rank > 0 compiled in
** drive mode always yields a drivable expression.
*/

static void put_ref(sf_qb *q, size_t i)
{
    sf_put_ref(q, i, NULL);
}

/* A text parameter borrowing s[0..len), its placeholder emitted at once. */
static void put_param(sf_qb *q, const char *s, size_t len)
{
    put_ref(q, sf_param_n(q, s, len));
}

static void put_param_str(sf_qb *q, const char *s)
{
    put_param(q, s, strlen(s));
}

/* SQLite binds any string literal as text of its length (NUL bytes and
 * invalid UTF-8 included) and compares bytes. */
static int text_ok(const sg_filter *f)
{
    return 1;
}

/* ---- JSON paths ---- */

/* A name usable inside a `$."name"` path label (the dialect's key_ok):
 * SQLite 3.40 ends a quoted label at the next '"' with no escapes, and
 * compares it with the key as written in the JSON text, so only characters
 * the core's JSON writer never escapes are allowed. Schema names and URNs
 * are of this kind. */
static int label_ok(const char *s)
{
    if (!s || !*s) return 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '$' || ch == ':' || ch == '.'))
            return 0;
    }
    return 1;
}

/* `$."l1"."l2"...` of up to three labels (NULL ones skipped), host-allocated;
 * NULL when out of memory. */
static char *jpath3(const sg_host *h, const char *l1, const char *l2, const char *l3)
{
    const char *l[3] = {l1, l2, l3};
    size_t need = 2;
    for (int i = 0; i < 3; i++)
        if (l[i]) need += strlen(l[i]) + 3;
    char *s = h->alloc(need);
    if (!s) return NULL;
    size_t o = 0;
    s[o++] = '$';
    for (int i = 0; i < 3; i++) {
        if (!l[i]) continue;
        size_t n = strlen(l[i]);
        s[o++] = '.';
        s[o++] = '"';
        memcpy(s + o, l[i], n);
        o += n;
        s[o++] = '"';
    }
    s[o] = '\0';
    return s;
}

/* Path of the top-level attribute (the array of a multi-valued one). */
static char *jpath_top(const sg_host *h, const sg_attr_ref *a)
{
    return jpath3(h, sf_in_extension(a) ? a->schema : NULL, a->name, NULL);
}

/* Path of a single-valued attribute's value (sub-attribute included). */
static char *jpath_full(const sg_host *h, const sg_attr_ref *a)
{
    return jpath3(h, sf_in_extension(a) ? a->schema : NULL, a->name, a->sub);
}

static const char *time_column(const sg_filter *f)
{
    return sf_is_path(f, "meta.created") ? "r.created" : "r.modified";
}

/*
** The smallest byte string greater than every string that starts with
** s[0..n): s without its trailing 0xff bytes, last byte plus one. NULL
** (and *none set) when there is none (empty, or all 0xff bytes).
*/
static char *prefix_successor(const sg_host *h, const char *s, size_t n, int *none)
{
    *none = 0;
    while (n && (unsigned char)s[n - 1] == 0xff) n--;
    if (!n) {
        *none = 1;
        return NULL;
    }
    char *d = sf_dup_n(h, s, n);
    if (d) d[n - 1] = (char)((unsigned char)d[n - 1] + 1);
    return d;
}

/*
** A string comparison of `val` (an SQL expression known to be TEXT and not
** NULL) with the node's literal, byte for byte as the evaluator does:
** BINARY collation (memcmp, then length) for eq and the order operators;
** co/sw/ew on the UTF-8 bytes (as BLOBs: no LIKE, no character semantics).
** Emits a non-NULL boolean.
*/
static void put_str_cmp(sf_qb *q, sg_fop op, const char *val, const sg_filter *f)
{
    size_t b;
    switch (op) {
    case SG_FOP_CO:
    case SG_FOP_SW:
    case SG_FOP_EW:
        if (f->len == 0) { /* every string contains, starts and ends with "" */
            sf_put(q, "1");
            return;
        }
        b = sf_param_blob(q, f->str, f->len);
        if (op == SG_FOP_CO) {
            sf_put(q, "instr(CAST(");
            sf_put(q, val);
            sf_put(q, " AS BLOB), ");
            put_ref(q, b);
            sf_put(q, ") > 0");
        } else {
            sf_put(q, "substr(CAST(");
            sf_put(q, val);
            sf_put(q, op == SG_FOP_SW ? " AS BLOB), 1, length(" : " AS BLOB), -length(");
            put_ref(q, b);
            sf_put(q, ")) = ");
            put_ref(q, b);
        }
        return;
    default:
        sf_put(q, val);
        sf_put(q, sf_cmp_op(op));
        put_param(q, f->str, f->len);
        return;
    }
}

/* ---- index keys ---- */

/* The condition on `k.folded` for a key comparison (not ne). */
static void put_key_cond(sf_qb *q, const sg_filter *f)
{
    if (f->op == SG_FOP_PR) {
        sf_put(q, "k.folded <> ''"); /* an empty string is not "present" */
    } else if (f->op == SG_FOP_SW) {
        /* A range of the key index: folded >= s AND folded < successor(s). */
        int none;
        char *succ = prefix_successor(q->h, f->str, f->len, &none);
        sf_put(q, "k.folded >= ");
        put_param(q, f->str, f->len);
        if (!none) {
            sf_put(q, " AND k.folded < ");
            put_ref(q, sf_param_heap(q, succ));
        }
    } else {
        put_str_cmp(q, f->op, "k.folded", f);
    }
}

static void put_key(sf_qb *q, const sg_filter *f, int drive)
{
    if (f->op == SG_FOP_NE || (f->op == SG_FOP_EQ && !drive)) {
        /* A point look-up in the primary key; ne is not (eq): an absent
         * attribute matches, as in the evaluator. */
        if (f->op == SG_FOP_NE) sf_put(q, "NOT ");
        sf_put(q, "EXISTS (SELECT 1 FROM resource_keys k WHERE k.tid = ?1 AND k.rtype = ?2"
                  " AND k.attr = ");
        put_param_str(q, f->attr.path);
        sf_put(q, " AND k.folded = ");
        put_param(q, f->str, f->len);
        sf_put(q, " AND k.rid = r.rid)");
    } else if (drive) {
        sf_put(q, "r.rid IN (SELECT k.rid FROM resource_keys k WHERE k.tid = ?1"
                  " AND k.rtype = ?2 AND k.attr = ");
        put_param_str(q, f->attr.path);
        sf_put(q, " AND ");
        put_key_cond(q, f);
        sf_put(q, ")");
    } else {
        /* The row's few keys, through resource_keys_rid. */
        sf_put(q, "EXISTS (SELECT 1 FROM resource_keys k WHERE k.rid = r.rid AND k.attr = ");
        put_param_str(q, f->attr.path);
        sf_put(q, " AND ");
        put_key_cond(q, f);
        sf_put(q, ")");
    }
}

/* ---- JSON values ---- */

/* Where a JSON leaf reads its value. */
enum ackind {
    AC_ROOT, /* json_*(r.body, path): a single-valued attribute        */
    AC_ESUB, /* sub-attribute of the json_each element `e`             */
    AC_ESELF /* the json_each element `e` itself                       */
};

struct acc {
    enum ackind k;
    size_t p; /* ROOT: the full path; ESUB: `$."sub"`              */
};

/* Emit fn(<the value's JSON>, path) for fn json_type or json_extract, or
 * `self` (e.type, e.value) for the json_each element itself. */
static void put_jfn(sf_qb *q, const struct acc *a, const char *fn, const char *self)
{
    switch (a->k) {
    case AC_ROOT:
        sf_put(q, fn);
        sf_put(q, "(r.body, ");
        put_ref(q, a->p);
        sf_put(q, ")");
        return;
    case AC_ESUB:
        /* CASE keeps fn from parsing a scalar element as JSON text. */
        sf_put(q, "(CASE WHEN e.type = 'object' THEN ");
        sf_put(q, fn);
        sf_put(q, "(e.value, ");
        put_ref(q, a->p);
        sf_put(q, ") END)");
        return;
    case AC_ESELF:
        sf_put(q, self);
        return;
    }
}

/* Emit the JSON type of the value ('text', 'true', ... ; NULL if absent). */
static void put_jtype(sf_qb *q, const struct acc *a)
{
    put_jfn(q, a, "json_type", "e.type");
}

/* Emit the SQL value (text for strings, minified JSON for containers). */
static void put_jval(sf_qb *q, const struct acc *a)
{
    put_jfn(q, a, "json_extract", "e.value");
}

/*
** The evaluator's test of one value (cmp_one, present) with operator `op`
** (never ne: the callers negate eq). A non-NULL boolean.
*/
static void put_jcond(sf_qb *q, const sg_filter *f, sg_fop op, const struct acc *a)
{
    if (op == SG_FOP_PR) {
        /* present(): not absent, not null, not "", not [] and not {}. */
        sf_put(q, "(CASE ");
        put_jtype(q, a);
        sf_put(q, " WHEN 'text' THEN ");
        put_jval(q, a);
        sf_put(q, " <> '' WHEN 'array' THEN ");
        put_jval(q, a);
        sf_put(q, " <> '[]' WHEN 'object' THEN ");
        put_jval(q, a);
        sf_put(q, " <> '{}' WHEN 'null' THEN 0 ELSE ");
        put_jtype(q, a);
        sf_put(q, " IS NOT NULL END)");
        return;
    }
    switch (f->attr.type) {
    case SG_AT_BOOLEAN:
        sf_put(q, "(");
        put_jtype(q, a);
        sf_put(q, f->boolean ? " IS 'true')" : " IS 'false')");
        return;
    case SG_AT_INTEGER:
    case SG_AT_DECIMAL:
        /* As doubles, like json_number_value() in the evaluator. */
        sf_put(q, "(CASE WHEN ");
        put_jtype(q, a);
        sf_put(q, " IN ('integer', 'real') THEN CAST(");
        put_jval(q, a);
        sf_put(q, " AS REAL)");
        sf_put(q, sf_cmp_op(op));
        put_ref(q, sf_param_double(q, f->num));
        sf_put(q, " ELSE 0 END)");
        return;
    default: {
        /* The value expression is repeated: render it once. */
        sf_qb v = {.h = q->h, .d = q->d};
        put_jval(&v, a);
        if (v.nomem) {
            q->nomem = 1;
            q->h->free(v.sql.data);
            return;
        }
        sf_put(q, "(CASE WHEN ");
        put_jtype(q, a);
        sf_put(q, " = 'text' THEN ");
        put_str_cmp(q, op, v.sql.data, f);
        sf_put(q, " ELSE 0 END)");
        q->h->free(v.sql.data);
        return;
    }
    }
}

/* The accessor of a leaf evaluated on the element `e`. */
static struct acc elem_acc(sf_qb *q, const sg_filter *f)
{
    if (!f->attr.sub) return (struct acc){AC_ESELF, SF_NOPARAM};
    return (struct acc){AC_ESUB, sf_param_heap(q, jpath3(q->h, f->attr.sub, NULL, NULL))};
}

/* "EXISTS (SELECT 1 FROM json_each(r.body, <array of a>) e WHERE " */
static void put_each(sf_qb *q, const char *head, const sg_attr_ref *a)
{
    sf_put(q, head);
    sf_put(q, " (SELECT 1 FROM json_each(r.body, ");
    put_ref(q, sf_param_heap(q, jpath_top(q->h, a)));
    sf_put(q, ") e WHERE ");
}

/* The dialect's jcond: put_jcond on the row's value or the element's. */
static void jcond(sf_qb *q, const sg_filter *f, sg_fop op, int elem)
{
    struct acc a =
        elem ? elem_acc(q, f) : (struct acc){AC_ROOT, sf_param_heap(q, jpath_full(q->h, &f->attr))};
    put_jcond(q, f, op, &a);
}

/* Emit a comparison or PR node. Returns 1 when something was emitted (leaves
 * are always exact). */
static int comp_leaf(sf_qb *q, const sg_filter *f, int drive, const sf_scope *sc)
{
    char tbuf[SG_TIME_MAX];
    sf_leaf k = sf_leaf_kind(q, f, sc, tbuf);
    drive = drive && sf_leaf_rank(k, f) > 0;
    switch (k) {
    case SF_LF_KEY:
        put_key(q, f, drive);
        return 1;
    case SF_LF_ID:
        if (f->op == SG_FOP_EQ) {
            sf_put(q, drive ? "(r.tid = ?1 AND r.id = " : "(r.id = ");
            put_param(q, f->str, f->len);
            sf_put(q, ")");
        } else if (f->op == SG_FOP_NE) {
            sf_put(q, "(r.id <> ");
            put_param(q, f->str, f->len);
            sf_put(q, ")");
        } else if (f->op == SG_FOP_PR) {
            sf_put(q, "(r.id <> '')");
        } else {
            sf_put(q, "(");
            put_str_cmp(q, f->op, "r.id", f);
            sf_put(q, ")");
        }
        return 1;
    case SF_LF_TIME:
        sf_put(q, drive ? "(r.tid = ?1 AND r.rtype = ?2 AND " : "(");
        sf_put(q, time_column(f));
        if (f->op == SG_FOP_PR) {
            sf_put(q, " <> '')");
            return 1;
        }
        sf_put(q, sf_cmp_op(f->op));
        put_ref(q, sf_param_copy(q, tbuf));
        sf_put(q, ")");
        return 1;
    case SF_LF_FALSE:
        sf_put(q, "0");
        return 1;
    case SF_LF_TRUE:
        sf_put(q, "1");
        return 1;
    case SF_LF_MEMBER_EQ:
    case SF_LF_MEMBER_NE:
        if (k == SF_LF_MEMBER_NE) sf_put(q, "NOT ");
        sf_put(q, drive ? "r.rid IN (SELECT m.group_rid FROM members m WHERE m.member_rid = "
                        : "EXISTS (SELECT 1 FROM members m WHERE m.group_rid = r.rid"
                          " AND m.member_rid = ");
        sf_put(q, "(SELECT u.rid FROM resources u WHERE u.tid = ?1 AND u.id = ");
        put_param(q, f->str, f->len);
        sf_put(q, "))");
        return 1;
    case SF_LF_MEMBER_PR:
        sf_put(q, "EXISTS (SELECT 1 FROM members m WHERE m.group_rid = r.rid)");
        return 1;
    case SF_LF_JSON:
        sf_json_leaf(q, f, sc);
        return 1;
    default:
        return 0;
    }
}

/* An OR drives with every branch in drive form when all of them can. */
static int comp_or(sf_qb *q, const sg_filter *f, int drive, const sf_scope *sc, int *exact)
{
    return sf_comp_or(q, f, drive && sf_rank(q, f, sc) > 0, sc, exact);
}

/* SQLite's parser keeps about a hundred entries of nesting (3.40: "parser
 * stack overflow" past them), which some 25 nested AND/OR nodes of our SQL
 * use up: nodes nested deeper than 12 levels (6 inside one json_each) stay
 * with the core. The core's parser balances long and/or chains, so only
 * filters that nest parentheses deeply get there. */
static const sf_dialect dialect = {
    .sigil = '?',
    .text_ok = text_ok,
    .key_ok = label_ok,
    .leaf = comp_leaf,
    .each = put_each,
    .jcond = jcond,
    .comp_or = comp_or,
    .max_nest = 12,
    .max_elem_nest = 6,
};

/* ---- search ------------------------------------------------------------------------------ */

/* A statement for dynamic SQL from the per-connection LRU cache. *owned is
 * set when the caller must finalize it (the cached one was busy). */
static int fcache_get(sg_conn *c, const char *sql, size_t len, sqlite3_stmt **out, int *owned)
{
    uint64_t h = fnv1a(sql, len);
    struct fentry *victim = NULL;
    *owned = 0;
    for (int i = 0; i < FCACHE_SIZE; i++) {
        struct fentry *e = &c->fcache[i];
        if (e->st && e->hash == h && e->len == len && !memcmp(e->sql, sql, len)) {
            if (sqlite3_stmt_busy(e->st)) { /* re-entered: use a private copy */
                victim = NULL;
                break;
            }
            e->used = ++c->fclock;
            *out = e->st;
            return SQLITE_OK;
        }
        if (e->st && sqlite3_stmt_busy(e->st)) continue;
        /* Prefer an empty slot, else the least recently used one. */
        if (!victim || (victim->st && (!e->st || e->used < victim->used))) victim = e;
    }
    int rc =
        sqlite3_prepare_v3(c->db, sql, (int)len, victim ? SQLITE_PREPARE_PERSISTENT : 0, out, NULL);
    if (rc != SQLITE_OK) return rc;
    /* The text holds placeholders only, never a value: safe to log. */
    c->host->log(SG_LOG_DEBUG, PLUGIN, "prepared: %s", sql);
    char *copy = victim ? c->host->alloc(len + 1) : NULL;
    if (!copy) {
        *owned = 1;
        return SQLITE_OK;
    }
    memcpy(copy, sql, len + 1);
    sqlite3_finalize(victim->st);
    c->host->free(victim->sql);
    *victim = (struct fentry){.sql = copy, .len = len, .hash = h, .used = ++c->fclock, .st = *out};
    return SQLITE_OK;
}

static void fcache_put(sqlite3_stmt *s, int owned)
{
    if (!s) return;
    if (owned) {
        sqlite3_finalize(s);
    } else {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
}

static void bind_params(sqlite3_stmt *s, int64_t tid, sg_rtype type, const sf_qb *q)
{
    sqlite3_bind_int64(s, 1, tid);
    sqlite3_bind_int(s, 2, type);
    for (size_t i = 0; i < q->np; i++) {
        const struct sf_param *p = &q->p[i];
        int n = (int)(i + SF_FIRST_PARAM);
        switch (p->kind) {
        case SF_PK_DOUBLE:
            sqlite3_bind_double(s, n, p->num);
            break;
        case SF_PK_BLOB:
            /* Never a NULL pointer: that would bind SQL NULL. */
            sqlite3_bind_blob(s, n, p->s ? p->s : "", p->len, SQLITE_STATIC);
            break;
        default:
            sqlite3_bind_text(s, n, p->s ? p->s : "", p->len, SQLITE_STATIC);
            break;
        }
    }
}

struct search {
    sg_conn *c;
    const sg_query *q;
    int64_t tid;
    sf_qb where; /* the WHERE clause and its parameters */
    const sg_filter *residual;
    sf_sortkind sk;
    char *sort_path; /* SF_SK_J*: the JSON path of the sort attribute */
};

/* Build "SELECT ... FROM resources r WHERE ..." (count or rows). */
static sg_status build_sql(struct search *s, int count, int paged, sg_buf *sql)
{
    const sg_host *h = s->c->host;
    const sg_query *q = s->q;
    const sf_qb *w = &s->where;
    char ph[64];
    size_t next = w->np + SF_FIRST_PARAM;
    sg_status st = SG_OK;
#define ADD(str) (st == SG_OK ? (st = h->buf_append(sql, (str), strlen(str))) : st)
    ADD(count ? "SELECT count(*) FROM resources r WHERE "
              : "SELECT r.id, r.version, r.created, r.modified, r.body FROM resources r WHERE ");
    ADD(w->sql.data ? w->sql.data : "");
    if (!count) {
        const sg_attr_ref *a = q->sort;
        ADD(" ORDER BY ");
        if (s->sk == SF_SK_META) {
            ADD(!strcmp(a->path, "id")             ? "r.id"
                : !strcmp(a->path, "meta.created") ? "r.created"
                                                   : "r.modified");
            ADD(q->sort_descending ? " DESC, " : ", ");
        } else if (s->sk != SF_SK_NONE) {
            /* The sort value, NULL when missing (absent, or not of the
             * attribute's type). Missing values go last when ascending and
             * first when descending (RFC 7644 §3.4.2.3); ties in creation
             * order. */
            snprintf(ph, sizeof ph, "?%zu", next++);
            switch (s->sk) {
            case SF_SK_KEY:
                ADD("(SELECT k.folded FROM resource_keys k WHERE k.rid = r.rid AND k.attr = ");
                ADD(ph);
                ADD(" LIMIT 1)");
                break;
            case SF_SK_JTEXT:
                ADD("(CASE WHEN json_type(r.body, ");
                ADD(ph);
                ADD(") = 'text' THEN json_extract(r.body, ");
                ADD(ph);
                ADD(") END)");
                break;
            case SF_SK_JNUM:
                ADD("(CASE WHEN json_type(r.body, ");
                ADD(ph);
                ADD(") IN ('integer', 'real') THEN CAST(json_extract(r.body, ");
                ADD(ph);
                ADD(") AS REAL) END)");
                break;
            default: /* SF_SK_JBOOL */
                ADD("(CASE json_type(r.body, ");
                ADD(ph);
                ADD(") WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)");
                break;
            }
            ADD(q->sort_descending ? " DESC NULLS FIRST, " : " NULLS LAST, ");
        }
        ADD("r.rid");
        if (paged) {
            snprintf(ph, sizeof ph, " LIMIT ?%zu OFFSET ?%zu", next, next + 1);
            ADD(ph);
        }
    }
#undef ADD
    return st;
}

/* totalResults without a filter: the count the triggers keep (no row: 0). */
static sg_status run_count_all(struct search *s, int64_t *total, sg_error *err)
{
    sqlite3_stmt *q;
    sg_status st = use(s->c, ST_RES_COUNT, &q, err);
    if (st != SG_OK) return st;
    sqlite3_bind_int64(q, 1, s->tid);
    sqlite3_bind_int(q, 2, s->q->type);
    int rc = sqlite3_step(q);
    *total = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    st = rc == SQLITE_ROW || rc == SQLITE_DONE ? SG_OK : fail(s->c, rc, err);
    done(s->c, ST_RES_COUNT, q);
    return st;
}

static sg_status run_count(struct search *s, int64_t *total, sg_error *err)
{
    sg_conn *c = s->c;
    if (!s->q->filter) return run_count_all(s, total, err);
    sg_buf sql = {0};
    sg_status st = build_sql(s, 1, 0, &sql);
    if (st != SG_OK) {
        c->host->free(sql.data);
        return oom(err);
    }
    sqlite3_stmt *q;
    int owned;
    int rc = fcache_get(c, sql.data, sql.len, &q, &owned);
    c->host->free(sql.data);
    if (rc != SQLITE_OK) return fail(c, rc, err);
    bind_params(q, s->tid, s->q->type, &s->where);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) *total = sqlite3_column_int64(q, 0);
    fcache_put(q, owned);
    return rc == SQLITE_ROW ? SG_OK : fail(c, rc, err);
}

/* Stream the rows to fn; *n counts them. */
static sg_status run_rows(struct search *s, int paged, sg_row_fn fn, void *ud, int64_t *n,
                          sg_error *err)
{
    sg_conn *c = s->c;
    const sg_query *qq = s->q;
    sg_buf sql = {0};
    sg_status st = build_sql(s, 0, paged, &sql);
    if (st != SG_OK) {
        c->host->free(sql.data);
        return oom(err);
    }
    sqlite3_stmt *q;
    int owned;
    int rc = fcache_get(c, sql.data, sql.len, &q, &owned);
    c->host->free(sql.data);
    if (rc != SQLITE_OK) return fail(c, rc, err);
    bind_params(q, s->tid, qq->type, &s->where);
    int next = (int)(s->where.np + SF_FIRST_PARAM);
    if (s->sk == SF_SK_KEY)
        sqlite3_bind_text(q, next++, qq->sort->path, -1, SQLITE_STATIC);
    else if (s->sk != SF_SK_NONE && s->sk != SF_SK_META)
        sqlite3_bind_text(q, next++, s->sort_path, -1, SQLITE_STATIC);
    if (paged) {
        sqlite3_bind_int64(q, next, qq->count > 0 ? qq->count : -1);
        sqlite3_bind_int64(q, next + 1, qq->start_index > 1 ? qq->start_index - 1 : 0);
    }
    *n = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        ++*n;
        st = emit_row(q, qq->type, fn, ud);
        if (st != SG_OK) break;
    }
    if (st == SG_OK && rc != SQLITE_DONE) st = fail(c, rc, err);
    fcache_put(q, owned);
    return st;
}

/*
** Page anchors. SQLite's b-trees do not know positions, so OFFSET o walks o
** entries of resources_list (about 60 ns each: 30 ms at the middle of
** 1,000,000 users). An unfiltered list in rid order keeps, per connection,
** the rid at every stride-th position, and a page starts at the anchor
** before it: at most `stride` entries walked. The anchors stay right while
** resource_counts.layout is unchanged: the list then only grew at its end
** (migration 5), so every position that existed still holds the same rid,
** in any later snapshot. Anchors are only taken and used in a transaction
** that has not written (sqlite3_txn_state), which sees committed rows only:
** a write transaction's rows may roll back, and later rows reuse their rids.
*/
static sg_status anchor_at(sg_conn *c, int64_t tid, sg_rtype type, size_t k, int64_t *rid,
                           int *found, sg_error *err)
{
    struct anchors *a = &c->anchors;
    int64_t stride = c->st->anchor_stride;
    *found = 0;
    while (a->len <= k) {
        if (a->len == a->cap) {
            size_t cap = a->cap ? a->cap * 2 : 64;
            int64_t *p = c->host->realloc(a->rid, cap * sizeof *p);
            if (!p) return oom(err);
            a->rid = p;
            a->cap = cap;
        }
        sqlite3_stmt *q;
        sg_status st = use(c, ST_RES_ANCHOR, &q, err);
        if (st != SG_OK) return st;
        sqlite3_bind_int64(q, 1, tid);
        sqlite3_bind_int(q, 2, type);
        sqlite3_bind_int64(q, 3, a->len ? a->rid[a->len - 1] : INT64_MIN);
        sqlite3_bind_int64(q, 4, a->len ? stride : 0);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) a->rid[a->len++] = sqlite3_column_int64(q, 0);
        st = rc == SQLITE_ROW || rc == SQLITE_DONE ? SG_OK : fail(c, rc, err);
        done(c, ST_RES_ANCHOR, q);
        if (st != SG_OK || rc == SQLITE_DONE) return st; /* past the end: no anchor */
    }
    *rid = a->rid[k];
    *found = 1;
    return SG_OK;
}

/* An unfiltered page in rid order from its anchor, inside the caller's read
 * transaction; *handled = 0 leaves it to the general path. Sets *total. */
static sg_status anchored_page(struct search *s, sg_row_fn fn, void *ud, int64_t *total,
                               int *handled, sg_error *err)
{
    sg_conn *c = s->c;
    const sg_query *qq = s->q;
    int64_t stride = c->st->anchor_stride;
    int64_t offset = qq->start_index - 1;
    *handled = 0;
    sqlite3_stmt *q;
    sg_status st = use(c, ST_RES_COUNT, &q, err);
    if (st != SG_OK) return st;
    sqlite3_bind_int64(q, 1, s->tid);
    sqlite3_bind_int(q, 2, qq->type);
    int rc = sqlite3_step(q);
    int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    int64_t layout = rc == SQLITE_ROW ? sqlite3_column_int64(q, 1) : 0;
    st = rc == SQLITE_ROW || rc == SQLITE_DONE ? SG_OK : fail(c, rc, err);
    done(c, ST_RES_COUNT, q);
    if (st != SG_OK || offset >= n) return st;

    struct anchors *a = &c->anchors;
    if (a->tid != s->tid || a->rtype != (int)qq->type || a->layout != layout) {
        *a = (struct anchors){
            .tid = s->tid, .rtype = (int)qq->type, .layout = layout, .rid = a->rid, .cap = a->cap};
    }
    int64_t from;
    int found;
    st = anchor_at(c, s->tid, qq->type, (size_t)(offset / stride), &from, &found, err);
    if (st != SG_OK || !found) return st;

    if ((st = use(c, ST_RES_PAGE_FROM, &q, err)) != SG_OK) return st;
    sqlite3_bind_int64(q, 1, s->tid);
    sqlite3_bind_int(q, 2, qq->type);
    sqlite3_bind_int64(q, 3, from);
    sqlite3_bind_int64(q, 4, qq->count);
    sqlite3_bind_int64(q, 5, offset % stride);
    while (st == SG_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) st = emit_row(q, qq->type, fn, ud);
    if (st == SG_OK && rc != SQLITE_DONE) st = fail(c, rc, err);
    done(c, ST_RES_PAGE_FROM, q);
    *total = n;
    *handled = 1;
    return st;
}

static sg_status st_search(sg_conn *c, const char *tenant, const sg_query *q, sg_row_fn fn,
                           void *ud, sg_search_out *out, sg_error *err)
{
    sg_search_out dummy;
    if (!out) out = &dummy;
    *out = (sg_search_out){.residual = NULL, .total = -1, .sorted = 0};
    if (!q || !valid_rtype(q->type))
        return sg_error_set(err, SG_EINVALID, NULL, "bad query: resource type");
    struct search s = {.c = c, .q = q, .where = {.h = c->host, .d = &dialect}};
    sg_status st = tid_of(c, tenant, &s.tid, err);
    if (st != SG_OK) return st;

    /* The unary + keeps the planner from starting at the tenant's whole
     * (tid, rtype) range when the filter can drive (see above). */
    s.residual = sf_compile_where(&s.where, q->filter, "r.tid = ?1 AND r.rtype = ?2",
                                  "+r.tid = ?1 AND +r.rtype = ?2");
    s.sk = sf_sort_kind(&s.where, q->sort);
    if (s.sk == SF_SK_JTEXT || s.sk == SF_SK_JNUM || s.sk == SF_SK_JBOOL) {
        s.sort_path = jpath_full(c->host, q->sort);
        if (!s.sort_path) s.where.nomem = 1;
    }
    if (s.where.nomem) {
        st = oom(err);
        goto out;
    }
    int sort_ok = !q->sort || s.sk != SF_SK_NONE;
    out->residual = s.residual;
    out->sorted = sort_ok;

    /* Rows and count from one snapshot, so total agrees with the page. A
     * residual or a sort we cannot follow leaves paging to the core. */
    int exact = !s.residual;
    int paged = exact && sort_ok;
    int need_count = exact, need_rows = !paged || q->count != 0;
    if (need_rows && !fn) {
        st = sg_error_set(err, SG_EINVALID, NULL, "bad query: no row callback");
        goto out;
    }
    int implicit = need_count && need_rows && sqlite3_get_autocommit(c->db);
    if (implicit && (st = exec1(c, ST_BEGIN, err)) != SG_OK) goto out;
    int64_t nrows = 0;
    int handled = 0;
    if (need_count && paged && !q->filter && s.sk == SF_SK_NONE && q->count > 0 &&
        sqlite3_txn_state(c->db, NULL) != SQLITE_TXN_WRITE && c->st->anchor_stride > 0 &&
        q->start_index - 1 >= c->st->anchor_stride) {
        st = anchored_page(&s, fn, ud, &out->total, &handled, err);
        if (st != SG_OK || handled) goto end;
    }
    if (need_rows) st = run_rows(&s, paged, fn, ud, &nrows, err);
    if (st == SG_OK && need_count && (!need_rows || !sf_page_total(q, paged, nrows, &out->total)))
        st = run_count(&s, &out->total, err);
end:
    if (implicit && !sqlite3_get_autocommit(c->db)) exec1(c, ST_COMMIT, NULL);
out:
    sf_qb_free(&s.where);
    c->host->free(s.sort_path);
    return st;
}

/* ---- memberships ------------------------------------------------------------------------ */

static sg_status group_rid(sg_conn *c, int64_t tid, const char *id, int64_t *rid, sg_error *err)
{
    sg_rtype type = 0;
    int found;
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no group id given");
    sg_status st = lookup(c, tid, id, rid, &type, NULL, &found, err);
    if (st != SG_OK) return st;
    if (!found || type != SG_RT_GROUP) return not_found(SG_RT_GROUP, id, err);
    return SG_OK;
}

static sg_status add_body(sg_conn *c, int64_t tid, const char *group_id, const sg_member *m,
                          size_t n, sg_error *err)
{
    int64_t grid;
    sg_status st = group_rid(c, tid, group_id, &grid, err);
    if (st != SG_OK) return st;
    for (size_t i = 0; i < n; i++) {
        int64_t mrid;
        int found;
        if (!m[i].value)
            return sg_error_set(err, SG_EINVALID, "invalidValue", "member without a value");
        if ((st = lookup(c, tid, m[i].value, &mrid, NULL, NULL, &found, err)) != SG_OK) return st;
        if (!found)
            return sg_error_set(err, SG_EINVALID, "invalidValue",
                                "member \"%.128s\" does not exist", m[i].value);
        sqlite3_stmt *s;
        if ((st = use(c, ST_MEM_INS, &s, err)) != SG_OK) return st;
        sqlite3_bind_int64(s, 1, grid);
        sqlite3_bind_int64(s, 2, mrid);
        bind_text(s, 3, m[i].display);
        int rc = sqlite3_step(s);
        done(c, ST_MEM_INS, s);
        if (rc != SQLITE_DONE) return fail(c, rc, err);
    }
    return SG_OK;
}

static sg_status st_members_add(sg_conn *c, const char *tenant, const char *group_id,
                                const sg_member *m, size_t n, sg_error *err)
{
    int64_t tid;
    int implicit;
    sg_status st;
    if ((st = tid_of(c, tenant, &tid, err)) != SG_OK) return st;
    if ((st = wbegin(c, &implicit, err)) != SG_OK) return st;
    return wend(c, implicit, add_body(c, tid, group_id, m, n, err), err);
}

static sg_status remove_members_body(sg_conn *c, int64_t tid, const char *group_id,
                                     const char *const *ids, size_t n, sg_error *err)
{
    int64_t grid;
    sg_status st = group_rid(c, tid, group_id, &grid, err);
    if (st != SG_OK) return st;
    for (size_t i = 0; i < n; i++) {
        if (!ids[i]) continue;
        sqlite3_stmt *s;
        if ((st = use(c, ST_MEM_DEL_ONE, &s, err)) != SG_OK) return st;
        sqlite3_bind_int64(s, 1, grid);
        sqlite3_bind_int64(s, 2, tid);
        bind_text(s, 3, ids[i]);
        int rc = sqlite3_step(s);
        done(c, ST_MEM_DEL_ONE, s);
        if (rc != SQLITE_DONE) return fail(c, rc, err);
    }
    return SG_OK;
}

static sg_status st_members_remove(sg_conn *c, const char *tenant, const char *group_id,
                                   const char *const *ids, size_t n, sg_error *err)
{
    int64_t tid;
    int implicit;
    sg_status st;
    if ((st = tid_of(c, tenant, &tid, err)) != SG_OK) return st;
    if ((st = wbegin(c, &implicit, err)) != SG_OK) return st;
    return wend(c, implicit, remove_members_body(c, tid, group_id, ids, n, err), err);
}

static sg_status st_members_clear(sg_conn *c, const char *tenant, const char *group_id,
                                  sg_error *err)
{
    int64_t tid, grid;
    sg_status st;
    if ((st = tid_of(c, tenant, &tid, err)) != SG_OK) return st;
    if ((st = group_rid(c, tid, group_id, &grid, err)) != SG_OK) return st;
    return exec_rid(c, ST_MEM_DEL_GROUP, grid, err);
}

static sg_status st_members_list(sg_conn *c, const char *tenant, const char *group_id,
                                 sg_member_fn fn, void *ud, sg_error *err)
{
    int64_t tid, grid;
    sg_status st;
    if (!fn) return sg_error_set(err, SG_EINVALID, NULL, "no callback");
    if ((st = tid_of(c, tenant, &tid, err)) != SG_OK) return st;
    if ((st = group_rid(c, tid, group_id, &grid, err)) != SG_OK) return st;
    sqlite3_stmt *s;
    if ((st = use(c, ST_MEM_LIST, &s, err)) != SG_OK) return st;
    sqlite3_bind_int64(s, 1, grid);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        sg_member m = {
            .value = col_text(s, 0),
            .display = (const char *)sqlite3_column_text(s, 1),
            .type = (sg_rtype)sqlite3_column_int(s, 2),
        };
        if ((st = fn(ud, &m)) != SG_OK) break;
    }
    if (st == SG_OK && rc != SQLITE_DONE) st = fail(c, rc, err);
    done(c, ST_MEM_LIST, s);
    return st;
}

static sg_status st_resolve(sg_conn *c, const char *tenant, const char *const *ids, size_t n,
                            sg_rtype *types, sg_error *err)
{
    int64_t tid;
    sg_status st;
    if ((st = tid_of(c, tenant, &tid, err)) != SG_OK) return st;
    for (size_t i = 0; i < n; i++) {
        sg_rtype t = 0;
        int found = 0;
        if (ids[i] && (st = lookup(c, tid, ids[i], NULL, &t, NULL, &found, err)) != SG_OK)
            return st;
        types[i] = found ? t : 0;
    }
    return SG_OK;
}

/* ---- devices ----------------------------------------------------------------------------- */

/* Ed25519 public keys. */
#define DEVICE_KEY_LEN 32

static sg_status st_device_create(sg_conn *c, const sg_device *d, sg_error *err)
{
    if (!d || !d->id || !*d->id || !d->name || !d->public_key)
        return sg_error_set(err, SG_EINVALID, "invalidValue",
                            "a device needs an id, a name and a public key");
    /* A device id is the subject of the device's token. */
    if (strlen(d->id) > SUBJECT_MAX)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "device id longer than %d bytes",
                            SUBJECT_MAX);
    int64_t tid;
    sg_status st = tid_of(c, d->tenant, &tid, err);
    if (st != SG_OK) return st;
    sqlite3_stmt *s;
    if ((st = use(c, ST_DEV_INS, &s, err)) != SG_OK) return st;
    bind_text(s, 1, d->id);
    sqlite3_bind_int64(s, 2, tid);
    bind_text(s, 3, d->name);
    sqlite3_bind_blob(s, 4, d->public_key, DEVICE_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, d->created_ms);
    sqlite3_bind_int64(s, 6, d->revoked_ms);
    int rc = sqlite3_step(s);
    done(c, ST_DEV_INS, s);
    if (rc == SQLITE_DONE) return SG_OK;
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
        return sg_error_set(err, SG_ECONFLICT, "uniqueness", "device id already exists");
    return fail(c, rc, err);
}

/* Fill d from a row (id, name, public_key, created_ms, revoked_ms); 0 when the
 * stored key is not 32 bytes (the CHECK constraint makes that a bug). */
static int device_row(sqlite3_stmt *s, const char *tenant, sg_device *d)
{
    const void *key = sqlite3_column_blob(s, 2);
    if (!key || sqlite3_column_bytes(s, 2) != DEVICE_KEY_LEN) return 0;
    *d = (sg_device){
        .id = col_text(s, 0),
        .tenant = tenant,
        .name = col_text(s, 1),
        .public_key = key,
        .created_ms = sqlite3_column_int64(s, 3),
        .revoked_ms = sqlite3_column_int64(s, 4),
    };
    return 1;
}

static sg_status bad_device_row(sg_conn *c, sg_error *err)
{
    c->host->log(SG_LOG_ERROR, PLUGIN, "device row with a bad public key");
    return sg_error_set(err, SG_EINTERNAL, NULL, "storage error");
}

static sg_status st_device_get(sg_conn *c, const char *tenant, const char *id, sg_device_fn fn,
                               void *ud, sg_error *err)
{
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no device id given");
    int64_t tid;
    sg_status st = tid_of(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    sqlite3_stmt *s;
    if ((st = use(c, ST_DEV_GET, &s, err)) != SG_OK) return st;
    sqlite3_bind_int64(s, 1, tid);
    bind_text(s, 2, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        sg_device d;
        if (!device_row(s, tenant, &d))
            st = bad_device_row(c, err);
        else if (fn)
            fn(ud, &d);
    } else if (rc == SQLITE_DONE) {
        st = sg_error_set(err, SG_ENOTFOUND, NULL, "no such device");
    } else {
        st = fail(c, rc, err);
    }
    done(c, ST_DEV_GET, s);
    return st;
}

static sg_status st_device_list(sg_conn *c, const char *tenant, sg_device_fn fn, void *ud,
                                sg_error *err)
{
    if (!fn) return sg_error_set(err, SG_EINVALID, NULL, "no callback");
    int64_t tid;
    sg_status st = tid_of(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    sqlite3_stmt *s;
    if ((st = use(c, ST_DEV_LIST, &s, err)) != SG_OK) return st;
    sqlite3_bind_int64(s, 1, tid);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        sg_device d;
        if (!device_row(s, tenant, &d)) {
            st = bad_device_row(c, err);
            break;
        }
        if (fn(ud, &d)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (st == SG_OK && rc != SQLITE_DONE) st = fail(c, rc, err);
    done(c, ST_DEV_LIST, s);
    return st;
}

static sg_status st_device_revoke(sg_conn *c, const char *tenant, const char *id, int64_t when_ms,
                                  sg_error *err)
{
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no device id given");
    int64_t tid;
    sg_status st = tid_of(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    sqlite3_stmt *s;
    if ((st = use(c, ST_DEV_REVOKE, &s, err)) != SG_OK) return st;
    sqlite3_bind_int64(s, 1, tid);
    bind_text(s, 2, id);
    sqlite3_bind_int64(s, 3, when_ms);
    int rc = sqlite3_step(s);
    done(c, ST_DEV_REVOKE, s);
    if (rc != SQLITE_DONE) return fail(c, rc, err);
    if (sqlite3_changes(c->db) == 0) return sg_error_set(err, SG_ENOTFOUND, NULL, "no such device");
    return SG_OK;
}

/* ---- settings ---------------------------------------------------------------------------- */

static sg_status st_setting_set(sg_conn *c, const char *tenant, const char *key, const char *value,
                                sg_error *err)
{
    if (!key || !*key) return sg_error_set(err, SG_EINVALID, "invalidValue", "no setting name");
    int64_t tid;
    sg_status st = tid_of(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    int id = value ? ST_SET_PUT : ST_SET_DEL;
    sqlite3_stmt *s;
    if ((st = use(c, id, &s, err)) != SG_OK) return st;
    sqlite3_bind_int64(s, 1, tid);
    bind_text(s, 2, key);
    if (value) bind_text(s, 3, value);
    int rc = sqlite3_step(s);
    done(c, id, s);
    return rc == SQLITE_DONE ? SG_OK : fail(c, rc, err);
}

static sg_status st_settings_list(sg_conn *c, const char *tenant, sg_setting_fn fn, void *ud,
                                  sg_error *err)
{
    if (!fn) return sg_error_set(err, SG_EINVALID, NULL, "no callback");
    int64_t tid;
    sg_status st = tid_of(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    sqlite3_stmt *s;
    if ((st = use(c, ST_SET_LIST, &s, err)) != SG_OK) return st;
    sqlite3_bind_int64(s, 1, tid);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (fn(ud, col_text(s, 0), col_text(s, 1))) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) st = fail(c, rc, err);
    done(c, ST_SET_LIST, s);
    return st;
}

/* ---- events ----------------------------------------------------------------------------- */

static sg_status st_event_append(sg_conn *c, const char *tenant, const sg_event *e, int64_t *seq,
                                 sg_error *err)
{
    if (!e || !e->type || !*e->type || !e->actor)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "an event needs a type and an actor");
    int64_t tid;
    sg_status st = tid_of(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    sqlite3_stmt *s;
    if ((st = use(c, ST_EV_INS, &s, err)) != SG_OK) return st;
    sqlite3_bind_int64(s, 1, tid);
    sqlite3_bind_int64(s, 2, e->time_ms);
    bind_text(s, 3, e->type);
    bind_text(s, 4, e->subject);
    bind_text(s, 5, e->actor);
    bind_text(s, 6, e->request_id);
    bind_text(s, 7, e->data);
    sqlite3_bind_int64(s, 8, (int64_t)e->flags);
    int rc = sqlite3_step(s);
    done(c, ST_EV_INS, s);
    if (rc != SQLITE_DONE) return fail(c, rc, err);
    /* The connection's own insert: other connections cannot change it. */
    if (seq) *seq = sqlite3_last_insert_rowid(c->db);
    return SG_OK;
}

/* The NULL-terminated list as a JSON array of strings (for json_each). */
static char *types_json(const char *const *types)
{
    size_t n = 3;
    for (const char *const *t = types; *t; t++) n += 2 * strlen(*t) + 3;
    char *out = malloc(n), *o = out;
    if (!out) return NULL;
    *o++ = '[';
    for (const char *const *t = types; *t; t++) {
        if (t != types) *o++ = ',';
        *o++ = '"';
        for (const char *p = *t; *p; p++) {
            if (*p == '"' || *p == '\\') *o++ = '\\';
            *o++ = *p;
        }
        *o++ = '"';
    }
    *o++ = ']';
    *o = '\0';
    return out;
}

static sg_status st_event_list(sg_conn *c, const char *tenant, const sg_event_query *q,
                               sg_event_fn fn, void *ud, sg_error *err)
{
    static const sg_event_query every = {0};
    if (!fn) return sg_error_set(err, SG_EINVALID, NULL, "no callback");
    if (!q) q = &every;
    int64_t tid;
    sg_status st = tid_of(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    int id = q->types ? ST_EV_LIST_TYPES : q->subject ? ST_EV_LIST_SUBJECT : ST_EV_LIST;
    char *types = NULL;
    if (q->types && !(types = types_json(q->types)))
        return sg_error_set(err, SG_ENOMEM, NULL, "out of memory");
    sqlite3_stmt *s;
    if ((st = use(c, id, &s, err)) != SG_OK) {
        free(types);
        return st;
    }
    sqlite3_bind_int64(s, 1, tid);
    sqlite3_bind_int64(s, 2, q->after_seq);
    sqlite3_bind_int64(s, 3, (int64_t)q->flags);
    sqlite3_bind_int64(s, 4, q->limit > 0 ? q->limit : -1);
    bind_text(s, 5, q->subject);
    sqlite3_bind_int64(s, 6, q->since_ms);
    if (types) sqlite3_bind_text(s, 7, types, -1, free);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        sg_event e = {
            .seq = sqlite3_column_int64(s, 0),
            .time_ms = sqlite3_column_int64(s, 1),
            .type = col_text(s, 2),
            .subject = (const char *)sqlite3_column_text(s, 3),
            .actor = col_text(s, 4),
            .request_id = (const char *)sqlite3_column_text(s, 5),
            .data = (const char *)sqlite3_column_text(s, 6),
            .flags = (uint32_t)sqlite3_column_int64(s, 7),
        };
        if ((st = fn(ud, &e)) != SG_OK) break;
    }
    if (st == SG_OK && rc != SQLITE_DONE) st = fail(c, rc, err);
    done(c, id, s);
    return st;
}

/* Run a one-statement DELETE with int64 parameters; *removed: rows deleted. */
static sg_status delete_count(sg_conn *c, int id, const int64_t *args, int nargs, int64_t *removed,
                              sg_error *err)
{
    sqlite3_stmt *s;
    sg_status st = use(c, id, &s, err);
    if (st != SG_OK) return st;
    for (int i = 0; i < nargs; i++) sqlite3_bind_int64(s, i + 1, args[i]);
    int rc = sqlite3_step(s);
    done(c, id, s);
    if (rc != SQLITE_DONE) return fail(c, rc, err);
    if (removed) *removed = (int64_t)sqlite3_changes64(c->db);
    return SG_OK;
}

static sg_status st_event_purge(sg_conn *c, int64_t before_ms, int64_t keep_changes_ms,
                                int64_t *removed, sg_error *err)
{
    const int64_t args[3] = {before_ms, keep_changes_ms, (int64_t)SG_EVENT_CHANGE};
    if (removed) *removed = 0;
    return delete_count(c, ST_EV_PURGE, args, 3, removed, err);
}

/* ---- tombstones ------------------------------------------------------------------------ */

static sg_status st_tombstone_put(sg_conn *c, const char *tenant, const sg_resource *r,
                                  int64_t deleted_ms, int64_t purge_after_ms, sg_error *err)
{
    if (!r || !r->id || !*r->id || !r->json || !valid_rtype(r->type))
        return sg_error_set(err, SG_EINVALID, "invalidValue", "incomplete resource");
    if (r->json_len > INT_MAX) return sg_error_set(err, SG_ETOOMANY, NULL, "resource too large");
    int64_t tid;
    sg_status st = tid_of(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    char now[SG_TIME_MAX];
    if (!r->created || !r->modified) c->host->format_time(c->host->now_ms(), now);
    sqlite3_stmt *s;
    if ((st = use(c, ST_TS_PUT, &s, err)) != SG_OK) return st;
    sqlite3_bind_int64(s, 1, tid);
    sqlite3_bind_int(s, 2, r->type);
    bind_text(s, 3, r->id);
    sqlite3_bind_int64(s, 4, r->version);
    bind_text(s, 5, r->created ? r->created : now);
    bind_text(s, 6, r->modified ? r->modified : now);
    sqlite3_bind_text(s, 7, r->json, (int)r->json_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 8, deleted_ms);
    sqlite3_bind_int64(s, 9, purge_after_ms);
    int rc = sqlite3_step(s);
    done(c, ST_TS_PUT, s);
    return rc == SQLITE_DONE ? SG_OK : fail(c, rc, err);
}

static sg_status st_tombstone_get(sg_conn *c, const char *tenant, sg_rtype type, const char *id,
                                  sg_row_fn fn, void *ud, sg_error *err)
{
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no id given");
    int64_t tid;
    sg_status st = tid_of(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    sqlite3_stmt *s;
    if ((st = use(c, ST_TS_GET, &s, err)) != SG_OK) return st;
    sqlite3_bind_int64(s, 1, tid);
    bind_text(s, 2, id);
    sqlite3_bind_int(s, 3, type);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        st = fn ? emit_row(s, type, fn, ud) : SG_OK;
    else if (rc == SQLITE_DONE)
        st =
            sg_error_set(err, SG_ENOTFOUND, NULL, "no deleted %s \"%.128s\"", rtype_name(type), id);
    else
        st = fail(c, rc, err);
    done(c, ST_TS_GET, s);
    return st;
}

static sg_status st_tombstone_remove(sg_conn *c, const char *tenant, const char *id, sg_error *err)
{
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no id given");
    int64_t tid;
    sg_status st = tid_of(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    sqlite3_stmt *s;
    if ((st = use(c, ST_TS_DEL, &s, err)) != SG_OK) return st;
    sqlite3_bind_int64(s, 1, tid);
    bind_text(s, 2, id);
    int rc = sqlite3_step(s);
    done(c, ST_TS_DEL, s);
    return rc == SQLITE_DONE ? SG_OK : fail(c, rc, err);
}

static sg_status st_tombstone_purge(sg_conn *c, const char *tenant, int64_t now_ms,
                                    int64_t *removed, sg_error *err)
{
    int64_t args[2] = {now_ms, 0};
    if (removed) *removed = 0;
    if (tenant) {
        sg_status st = tid_of(c, tenant, &args[1], err);
        if (st != SG_OK) return st;
    }
    return delete_count(c, ST_TS_PURGE, args, 2, removed, err);
}

/* ---- the outbox ------------------------------------------------------------------------- */

static sg_status check_job(const sg_job *j, sg_error *err)
{
    if (!j || !j->id || !*j->id || !j->user_id || !*j->user_id || !j->status || !*j->status ||
        !j->address || !j->key || !j->to_sign)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "incomplete job");
    return SG_OK;
}

/* Bind ?1 id, ?2 tid and ?3..?18 in JOB_COLS order after the id. */
static void bind_job(sqlite3_stmt *s, int64_t tid, const sg_job *j)
{
    bind_text(s, 1, j->id);
    sqlite3_bind_int64(s, 2, tid);
    bind_text(s, 3, j->user_id);
    sqlite3_bind_int64(s, 4, j->user_version);
    bind_text(s, 5, j->address);
    bind_text(s, 6, j->status);
    bind_text(s, 7, j->key);
    bind_text(s, 8, j->to_sign);
    sqlite3_bind_int64(s, 9, j->created_ms);
    sqlite3_bind_int64(s, 10, j->expires_ms);
    sqlite3_bind_int64(s, 11, j->approved_ms);
    bind_text(s, 12, j->approved_by);
    sqlite3_bind_int64(s, 13, j->next_attempt_ms);
    sqlite3_bind_int(s, 14, j->attempts);
    bind_text(s, 15, j->last_error);
    bind_text(s, 16, j->lease_owner);
    sqlite3_bind_int64(s, 17, j->lease_until_ms);
    sqlite3_bind_int64(s, 18, j->updated_ms);
}

/* A job from a row in JOB_COLS order; `tenant` NULL: read from column 17. */
static void job_row(sqlite3_stmt *s, const char *tenant, sg_job *j)
{
    *j = (sg_job){
        .id = col_text(s, 0),
        .tenant = tenant ? tenant : col_text(s, 17),
        .user_id = col_text(s, 1),
        .user_version = sqlite3_column_int64(s, 2),
        .address = col_text(s, 3),
        .status = col_text(s, 4),
        .key = col_text(s, 5),
        .to_sign = col_text(s, 6),
        .created_ms = sqlite3_column_int64(s, 7),
        .expires_ms = sqlite3_column_int64(s, 8),
        .approved_ms = sqlite3_column_int64(s, 9),
        .approved_by = (const char *)sqlite3_column_text(s, 10),
        .next_attempt_ms = sqlite3_column_int64(s, 11),
        .attempts = sqlite3_column_int(s, 12),
        .last_error = (const char *)sqlite3_column_text(s, 13),
        .lease_owner = (const char *)sqlite3_column_text(s, 14),
        .lease_until_ms = sqlite3_column_int64(s, 15),
        .updated_ms = sqlite3_column_int64(s, 16),
    };
}

static sg_status st_job_create(sg_conn *c, const sg_job *j, sg_error *err)
{
    sg_status st = check_job(j, err);
    if (st != SG_OK) return st;
    int64_t tid;
    if ((st = tid_of(c, j->tenant, &tid, err)) != SG_OK) return st;
    sqlite3_stmt *s;
    if ((st = use(c, ST_JOB_INS, &s, err)) != SG_OK) return st;
    bind_job(s, tid, j);
    int rc = sqlite3_step(s);
    done(c, ST_JOB_INS, s);
    if (rc == SQLITE_DONE) return SG_OK;
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
        return sg_error_set(err, SG_ECONFLICT, "uniqueness", "job id already exists");
    return fail(c, rc, err);
}

static sg_status st_job_get(sg_conn *c, const char *tenant, const char *id, sg_job_fn fn, void *ud,
                            sg_error *err)
{
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no job id given");
    int64_t tid;
    sg_status st = tid_of(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    sqlite3_stmt *s;
    if ((st = use(c, ST_JOB_GET, &s, err)) != SG_OK) return st;
    sqlite3_bind_int64(s, 1, tid);
    bind_text(s, 2, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        sg_job j;
        job_row(s, tenant, &j);
        if (fn) st = fn(ud, &j);
    } else if (rc == SQLITE_DONE) {
        st = sg_error_set(err, SG_ENOTFOUND, NULL, "no such job");
    } else {
        st = fail(c, rc, err);
    }
    done(c, ST_JOB_GET, s);
    return st;
}

static sg_status st_job_update(sg_conn *c, const sg_job *j, int64_t expected_updated_ms,
                               sg_error *err)
{
    sg_status st = check_job(j, err);
    if (st != SG_OK) return st;
    int64_t tid;
    if ((st = tid_of(c, j->tenant, &tid, err)) != SG_OK) return st;
    sqlite3_stmt *s;
    if ((st = use(c, ST_JOB_UPD, &s, err)) != SG_OK) return st;
    bind_job(s, tid, j);
    sqlite3_bind_int64(s, 19, expected_updated_ms);
    int rc = sqlite3_step(s);
    done(c, ST_JOB_UPD, s);
    if (rc != SQLITE_DONE) return fail(c, rc, err);
    if (sqlite3_changes(c->db) == 1) return SG_OK;
    /* Nothing written: tell a missing job from a changed one. */
    if ((st = use(c, ST_JOB_EXISTS, &s, err)) != SG_OK) return st;
    bind_text(s, 1, j->id);
    sqlite3_bind_int64(s, 2, tid);
    rc = sqlite3_step(s);
    done(c, ST_JOB_EXISTS, s);
    if (rc == SQLITE_ROW)
        return sg_error_set(err, SG_EPRECOND, NULL, "the job was changed by someone else");
    if (rc == SQLITE_DONE) return sg_error_set(err, SG_ENOTFOUND, NULL, "no such job");
    return fail(c, rc, err);
}

static sg_status st_job_list(sg_conn *c, const char *tenant, const char *status,
                             const char *user_id, sg_job_fn fn, void *ud, sg_error *err)
{
    if (!fn) return sg_error_set(err, SG_EINVALID, NULL, "no callback");
    int64_t tid;
    sg_status st = tid_of(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    int id = status ? (user_id ? ST_JOB_LIST_BOTH : ST_JOB_LIST_STATUS)
                    : (user_id ? ST_JOB_LIST_USER : ST_JOB_LIST);
    sqlite3_stmt *s;
    if ((st = use(c, id, &s, err)) != SG_OK) return st;
    sqlite3_bind_int64(s, 1, tid);
    if (status) bind_text(s, 2, status);
    if (user_id) bind_text(s, 3, user_id);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        sg_job j;
        job_row(s, tenant, &j);
        if ((st = fn(ud, &j)) != SG_OK) break;
    }
    if (st == SG_OK && rc != SQLITE_DONE) st = fail(c, rc, err);
    done(c, id, s);
    return st;
}

static sg_status st_job_counts(sg_conn *c, const char *tenant, sg_job_count_fn fn, void *ud,
                               sg_error *err)
{
    if (!fn) return sg_error_set(err, SG_EINVALID, NULL, "no callback");
    int64_t tid = 0;
    sg_status st = tenant ? tid_of(c, tenant, &tid, err) : SG_OK;
    if (st != SG_OK) return st;
    int id = tenant ? ST_JOB_COUNTS : ST_JOB_COUNTS_ALL;
    sqlite3_stmt *s;
    if ((st = use(c, id, &s, err)) != SG_OK) return st;
    if (tenant) sqlite3_bind_int64(s, 1, tid);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *status = (const char *)sqlite3_column_text(s, 0);
        if ((st = fn(ud, status ? status : "", sqlite3_column_int64(s, 1))) != SG_OK) break;
    }
    if (st == SG_OK && rc != SQLITE_DONE) st = fail(c, rc, err);
    done(c, id, s);
    return st;
}

/*
** Run ST_JOB_CLAIM or ST_JOB_EXPIRE (an UPDATE ... RETURNING) and hand each
** changed job to fn. The rows come back after the UPDATE is done; they are
** handed over before the write unit ends, so a callback that fails (or an
** error while stepping) undoes every change: the jobs reported are exactly
** the jobs changed. *n: how many were changed.
*/
static sg_status update_returning(sg_conn *c, int id, sqlite3_stmt *s, sg_job_fn fn, void *ud,
                                  int64_t *n, sg_error *err)
{
    sg_status st = SG_OK;
    int rc;
    *n = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        sg_job j;
        job_row(s, NULL, &j);
        ++*n;
        if (fn && (st = fn(ud, &j)) != SG_OK) break;
    }
    if (st == SG_OK && rc != SQLITE_DONE) st = fail(c, rc, err);
    done(c, id, s);
    return st;
}

/* Does statement `id` (one int64 parameter) return a row? */
static sg_status probe(sg_conn *c, int id, int64_t v, int *found, sg_error *err)
{
    sqlite3_stmt *s;
    sg_status st = use(c, id, &s, err);
    if (st != SG_OK) return st;
    sqlite3_bind_int64(s, 1, v);
    int rc = sqlite3_step(s);
    *found = rc == SQLITE_ROW;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) st = fail(c, rc, err);
    done(c, id, s);
    return st;
}

static sg_status st_job_claim(sg_conn *c, const char *owner, int64_t now_ms, int64_t lease_ms,
                              sg_job_fn fn, void *ud, sg_error *err)
{
    if (!owner || !*owner) return sg_error_set(err, SG_EINVALID, NULL, "no lease owner given");
    if (lease_ms <= 0) return sg_error_set(err, SG_EINVALID, NULL, "the lease must be positive");
    int64_t until = now_ms > INT64_MAX - lease_ms ? INT64_MAX : now_ms + lease_ms;
    int implicit, found;
    int64_t n = 0;
    sqlite3_stmt *s;
    /* A hint only (the UPDATE decides), read without the write lock. */
    sg_status st = probe(c, ST_JOB_DUE, now_ms, &found, err);
    if (st != SG_OK) return st;
    if (!found) return sg_error_set(err, SG_ENOTFOUND, NULL, "no job is due");
    /* Inside the caller's transaction this is a savepoint: the claim then
     * commits or rolls back with that transaction. */
    st = wbegin(c, &implicit, err);
    if (st != SG_OK) return st;
    if ((st = use(c, ST_JOB_CLAIM, &s, err)) == SG_OK) {
        bind_text(s, 1, owner);
        sqlite3_bind_int64(s, 2, now_ms);
        sqlite3_bind_int64(s, 3, until);
        st = update_returning(c, ST_JOB_CLAIM, s, fn, ud, &n, err);
    }
    if (st == SG_OK && n == 0) {
        wend(c, implicit, SG_OK, NULL);
        return sg_error_set(err, SG_ENOTFOUND, NULL, "no job is due");
    }
    return wend(c, implicit, st, err);
}

static sg_status st_job_expire(sg_conn *c, int64_t now_ms, sg_job_fn fn, void *ud, sg_error *err)
{
    int implicit, found;
    int64_t n;
    sqlite3_stmt *s;
    sg_status st = probe(c, ST_JOB_OVERDUE, now_ms, &found, err);
    if (st != SG_OK || !found) return st;
    if ((st = wbegin(c, &implicit, err)) != SG_OK) return st;
    if ((st = use(c, ST_JOB_EXPIRE, &s, err)) == SG_OK) {
        sqlite3_bind_int64(s, 1, now_ms);
        st = update_returning(c, ST_JOB_EXPIRE, s, fn, ud, &n, err);
    }
    return wend(c, implicit, st, err);
}

/* ---- registration --------------------------------------------------------------------- */

static const sg_storage_vtab vtab = {
    .abi_major = SG_ABI_MAJOR,
    .abi_minor = SG_ABI_MINOR,
    .size = sizeof(sg_storage_vtab),
    .name = "sqlite",
    .open = st_open,
    .close = st_close,
    .connect = st_connect,
    .disconnect = st_disconnect,
    .begin = st_begin,
    .commit = st_commit,
    .rollback = st_rollback,
    .tenant_create = st_tenant_create,
    .tenant_get = st_tenant_get,
    .tenant_list = st_tenant_list,
    .tenant_set_disabled = st_tenant_set_disabled,
    .token_create = st_token_create,
    .token_info = st_token_info,
    .token_list = st_token_list,
    .token_update = st_token_update,
    .token_touch = st_token_touch,
    .create = st_create,
    .get = st_get,
    .replace = st_replace,
    .remove = st_remove,
    .search = st_search,
    .members_add = st_members_add,
    .members_remove = st_members_remove,
    .members_clear = st_members_clear,
    .members_list = st_members_list,
    .resolve = st_resolve,
    .admin_create = st_admin_create,
    .admin_get = st_admin_get,
    .device_create = st_device_create,
    .device_get = st_device_get,
    .device_list = st_device_list,
    .device_revoke = st_device_revoke,
    .setting_set = st_setting_set,
    .settings_list = st_settings_list,
    .event_append = st_event_append,
    .event_list = st_event_list,
    .event_purge = st_event_purge,
    .tombstone_put = st_tombstone_put,
    .tombstone_get = st_tombstone_get,
    .tombstone_remove = st_tombstone_remove,
    .tombstone_purge = st_tombstone_purge,
    .job_create = st_job_create,
    .job_get = st_job_get,
    .job_update = st_job_update,
    .job_list = st_job_list,
    .job_claim = st_job_claim,
    .job_expire = st_job_expire,
    .session_create = st_session_create,
    .session_get = st_session_get,
    .session_touch = st_session_touch,
    .session_delete = st_session_delete,
    .session_purge = st_session_purge,
    .job_counts = st_job_counts,
};

SG_PLUGIN_EXPORT sg_status sg_plugin_init(const sg_host *host, sg_plugin_reg *out)
{
    if (!host || !out) return SG_EINVALID;
    out->abi_major = SG_ABI_MAJOR;
    out->abi_minor = SG_ABI_MINOR;
    out->size = sizeof *out;
    out->kind = SG_PLUGIN_STORAGE;
    out->name = "sqlite";
    out->vtab = &vtab;
    if (host->abi_major != SG_ABI_MAJOR || !SG_HAS_MEMBER(host, sg_host, format_time))
        return SG_EVERSION;
    /* The plugin is the process's SQLite user. Memory statistics take a
     * global mutex on every allocation, which serialises worker threads;
     * turn them off. This only works before SQLite initialises, and is
     * refused harmlessly after. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    if (!sqlite3_threadsafe()) {
        host->log(SG_LOG_ERROR, PLUGIN, "libsqlite3 was built without thread support");
        return SG_EINTERNAL;
    }
    return SG_OK;
}
