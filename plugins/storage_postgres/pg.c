/*
** storage_postgres: the scimgate storage plugin on PostgreSQL 15 (libpq), for
** several gateway nodes sharing one database.
**
** What lives here: the options and open/close, the versioned schema
** migrations, per-thread connections with their statement caches, the
** transactions and the helpers every file of the plugin uses (pg.h), the
** tenant/token/admin/resource/membership methods of sg_storage_vtab, and the
** registration. pg_search.c compiles filters; pg_lifecycle.c holds devices,
** settings, events, tombstones and the outbox. README.md next to this file
** describes the options, the tables and the isolation choices.
**
** Rules followed throughout:
**   - every SQL text is fixed, with $N placeholders; no value ever becomes
**     SQL text (arrays travel as one text[] parameter, see text_array);
**   - every tenant-scoped statement names the tenant's tid;
**   - the core's write transactions run at READ COMMITTED: a replace is one
**     UPDATE ... WHERE version = expected (a compare-and-set that PostgreSQL
**     re-checks on the newest row version), and uniqueness is the partial
**     unique index on resource_keys, so neither depends on the snapshot;
**   - inside the core's transaction, a call that may fail runs in a
**     SAVEPOINT (pg_wbegin), so that it changes nothing and the transaction
**     goes on (PostgreSQL aborts the whole transaction on any error);
**   - PostgreSQL's messages go to the log only; details name no SQL.
*/
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

/* Connection defaults, overridden by the DSN (see dial). */
#define DEFAULT_CONNECT_TIMEOUT "10"
#define APPLICATION_NAME        "scimgate"

/* Held (per transaction) while migrations run: "SGAT". */
#define MIGRATION_LOCK "1397178708"

/* Prepared fixed statements per connection (open addressing), and dynamic
 * statements (the filter compiler's) in a small LRU: enough for the shapes a
 * SCIM client sends, small enough that a hostile mix cannot grow memory. */
#define NAMED_SLOTS 256
#define NAME_MAX_   64
#define DYN_SLOTS   32
/* Tenant id -> tid slots per connection (direct-mapped). */
#define TCACHE_SIZE 128

/* Longest subject (admin login or device id): sg_token_info.subject is
 * char[129]. */
#define SUBJECT_MAX 128

/* ---- schema ---------------------------------------------------------------- */

/*
** Migrations, applied in order inside one transaction that holds
** pg_advisory_xact_lock(MIGRATION_LOCK); scimgate_schema.version says how
** many ran. Never edit a shipped entry: append a new one.
**
** Text that is compared or ordered is COLLATE "C" (byte order, the order of
** the core's folded forms, whatever the database's locale). Identity columns
** (tok, dno, jno, mid) break ties in insertion order, as SQLite's rowid does.
** Events: see pg_lifecycle.c for how seq keeps the feed in commit order.
*/
static const char *const migrations[] = {
    /* 1: the whole schema of storage_sqlite's migration 3. */
    "CREATE TABLE tenants (\n"
    "    tid      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "    id       text COLLATE \"C\" NOT NULL CONSTRAINT tenants_id UNIQUE,\n"
    "    name     text COLLATE \"C\" NOT NULL CONSTRAINT tenants_name UNIQUE,\n"
    "    created  text COLLATE \"C\" NOT NULL,\n"
    "    disabled int NOT NULL DEFAULT 0\n"
    ");\n"
    /* tid NULL: an operator's admin token; coalesce(tid, 0) is the owner
     * (tids start at 1), one index for tenants and operators alike. */
    "CREATE TABLE tokens (\n"
    "    id           text COLLATE \"C\" PRIMARY KEY,\n"
    "    tid          bigint REFERENCES tenants (tid),\n"
    "    hash         bytea NOT NULL,\n"
    "    created_ms   bigint NOT NULL,\n"
    "    expires_ms   bigint NOT NULL DEFAULT 0,\n"
    "    revoked_ms   bigint NOT NULL DEFAULT 0,\n"
    "    last_used_ms bigint NOT NULL DEFAULT 0,\n"
    "    last_addr    text,\n"
    "    kind         int NOT NULL DEFAULT 0,\n"
    "    subject      text,\n"
    "    tok          bigint GENERATED ALWAYS AS IDENTITY\n"
    ");\n"
    "CREATE INDEX tokens_owner ON tokens ((coalesce(tid, 0)), created_ms, tok);\n"
    "CREATE TABLE admins (\n"
    "    aid           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "    tid           bigint REFERENCES tenants (tid),\n"
    "    login         text COLLATE \"C\" NOT NULL,\n"
    "    password_hash text,\n"
    "    created_ms    bigint NOT NULL,\n"
    "    disabled      int NOT NULL DEFAULT 0\n"
    ");\n"
    "CREATE UNIQUE INDEX admins_login ON admins ((coalesce(tid, 0)), login);\n"
    /* body is the core's canonical JSON, streamed back byte for byte; doc
     * is what filters read. */
    "CREATE TABLE resources (\n"
    "    rid      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "    tid      bigint NOT NULL REFERENCES tenants (tid),\n"
    "    rtype    int NOT NULL,\n"
    "    id       text COLLATE \"C\" NOT NULL,\n"
    "    version  bigint NOT NULL,\n"
    "    created  text COLLATE \"C\" NOT NULL,\n"
    "    modified text COLLATE \"C\" NOT NULL,\n"
    "    body     text NOT NULL,\n"
    "    doc      jsonb GENERATED ALWAYS AS (body::jsonb) STORED,\n"
    "    CONSTRAINT resources_id UNIQUE (tid, id)\n"
    ");\n"
    "CREATE INDEX resources_list ON resources (tid, rtype, rid);\n"
    "CREATE INDEX resources_created ON resources (tid, rtype, created, rid);\n"
    "CREATE INDEX resources_modified ON resources (tid, rtype, modified, rid);\n"
    /* value is NULL when it equals folded (kept for diagnostics). Keys and
     * memberships go with their resource (ON DELETE CASCADE): a membership
     * added concurrently with the member's removal cannot outlive it. */
    "CREATE TABLE resource_keys (\n"
    "    tid    bigint NOT NULL,\n"
    "    rtype  int NOT NULL,\n"
    "    attr   text COLLATE \"C\" NOT NULL,\n"
    "    folded text COLLATE \"C\" NOT NULL,\n"
    "    rid    bigint NOT NULL REFERENCES resources (rid) ON DELETE CASCADE,\n"
    "    value  text,\n"
    "    uniq   int NOT NULL DEFAULT 0,\n"
    "    PRIMARY KEY (tid, rtype, attr, folded, rid)\n"
    ");\n"
    "CREATE UNIQUE INDEX resource_keys_unique ON resource_keys (tid, rtype, attr, folded)\n"
    "    WHERE uniq = 1;\n"
    "CREATE INDEX resource_keys_rid ON resource_keys (rid, attr);\n"
    "CREATE TABLE members (\n"
    "    mid        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "    group_rid  bigint NOT NULL REFERENCES resources (rid) ON DELETE CASCADE,\n"
    "    member_rid bigint NOT NULL REFERENCES resources (rid) ON DELETE CASCADE,\n"
    "    display    text,\n"
    "    CONSTRAINT members_pair UNIQUE (group_rid, member_rid)\n"
    ");\n"
    "CREATE INDEX members_member ON members (member_rid);\n"
    "CREATE INDEX members_order ON members (group_rid, mid);\n"
    "CREATE TABLE devices (\n"
    "    id         text COLLATE \"C\" PRIMARY KEY,\n"
    "    tid        bigint NOT NULL REFERENCES tenants (tid),\n"
    "    name       text NOT NULL,\n"
    "    public_key bytea NOT NULL CHECK (length(public_key) = 32),\n"
    "    created_ms bigint NOT NULL,\n"
    "    revoked_ms bigint NOT NULL DEFAULT 0,\n"
    "    dno        bigint GENERATED ALWAYS AS IDENTITY\n"
    ");\n"
    "CREATE INDEX devices_tenant ON devices (tid, created_ms, dno);\n"
    "CREATE TABLE settings (\n"
    "    tid   bigint NOT NULL REFERENCES tenants (tid),\n"
    "    key   text COLLATE \"C\" NOT NULL,\n"
    "    value text NOT NULL,\n"
    "    PRIMARY KEY (tid, key)\n"
    ");\n"
    /* seq = the writing transaction's id (xid) * 2^20 + its events so far:
     * see pg_lifecycle.c. The CHECK keeps the two together. */
    "CREATE TABLE events (\n"
    "    seq        bigint PRIMARY KEY,\n"
    "    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),\n"
    "    tid        bigint NOT NULL REFERENCES tenants (tid),\n"
    "    time_ms    bigint NOT NULL,\n"
    "    type       text COLLATE \"C\" NOT NULL,\n"
    "    subject    text COLLATE \"C\",\n"
    "    actor      text NOT NULL,\n"
    "    request_id text,\n"
    "    data       text,\n"
    "    flags      bigint NOT NULL DEFAULT 0,\n"
    "    CONSTRAINT events_seq_xid CHECK (seq / 1048576 = xid::text::bigint)\n"
    ");\n"
    "CREATE INDEX events_tenant ON events (tid, seq);\n"
    "CREATE INDEX events_subject ON events (tid, subject, seq);\n"
    "CREATE INDEX events_time ON events (time_ms);\n"
    "CREATE INDEX events_type ON events (tid, type, time_ms);\n"
    "CREATE TABLE tombstones (\n"
    "    tid            bigint NOT NULL REFERENCES tenants (tid),\n"
    "    rtype          int NOT NULL,\n"
    "    id             text COLLATE \"C\" NOT NULL,\n"
    "    version        bigint NOT NULL,\n"
    "    created        text COLLATE \"C\" NOT NULL,\n"
    "    modified       text COLLATE \"C\" NOT NULL,\n"
    "    body           text NOT NULL,\n"
    "    deleted_ms     bigint NOT NULL,\n"
    "    purge_after_ms bigint NOT NULL,\n"
    "    PRIMARY KEY (tid, id)\n"
    ");\n"
    "CREATE INDEX tombstones_purge ON tombstones (purge_after_ms);\n"
    "CREATE TABLE jobs (\n"
    "    id              text COLLATE \"C\" PRIMARY KEY,\n"
    "    tid             bigint NOT NULL REFERENCES tenants (tid),\n"
    "    user_id         text COLLATE \"C\" NOT NULL,\n"
    "    user_version    bigint NOT NULL,\n"
    "    address         text NOT NULL,\n"
    "    status          text COLLATE \"C\" NOT NULL,\n"
    "    idem_key        text NOT NULL,\n"
    "    to_sign         text NOT NULL,\n"
    "    created_ms      bigint NOT NULL,\n"
    "    expires_ms      bigint NOT NULL,\n"
    "    approved_ms     bigint NOT NULL DEFAULT 0,\n"
    "    approved_by     text,\n"
    "    next_attempt_ms bigint NOT NULL DEFAULT 0,\n"
    "    attempts        int NOT NULL DEFAULT 0,\n"
    "    last_error      text,\n"
    "    lease_owner     text,\n"
    "    lease_until_ms  bigint NOT NULL DEFAULT 0,\n"
    "    updated_ms      bigint NOT NULL,\n"
    "    jno             bigint GENERATED ALWAYS AS IDENTITY\n"
    ");\n"
    "CREATE INDEX jobs_tenant ON jobs (tid, status, created_ms);\n"
    "CREATE INDEX jobs_user ON jobs (tid, user_id);\n"
    "CREATE INDEX jobs_due ON jobs (status, next_attempt_ms, created_ms);\n"
    /* The other branches of job_claim and job_expire: a worker's lease
     * running out, an approval's deadline passing. */
    "CREATE INDEX jobs_lease ON jobs (lease_until_ms) WHERE status = 'Sending';\n"
    "CREATE INDEX jobs_expiry ON jobs (expires_ms) WHERE status = 'AwaitingApproval';\n",
    /* 2: portal sessions (ABI 1.1), as storage_sqlite's migration 4. */
    "CREATE TABLE sessions (\n"
    "    id         text COLLATE \"C\" PRIMARY KEY,\n"
    "    tid        bigint REFERENCES tenants (tid),\n"
    "    login      text NOT NULL,\n"
    "    hash       bytea NOT NULL CHECK (length(hash) = 32),\n"
    "    created_ms bigint NOT NULL,\n"
    "    expires_ms bigint NOT NULL,\n"
    "    seen_ms    bigint NOT NULL\n"
    ");\n"
    "CREATE INDEX sessions_expires ON sessions (expires_ms);\n"
    "CREATE INDEX sessions_seen ON sessions (seen_ms);\n",
    /* 3: how many resources a tenant holds per type, as storage_sqlite's
     * migration 5: an unfiltered list's totalResults is a sum over a few
     * rows, not a count(*) over the tenant's range (20 ms at 100,000
     * users). A trigger keeps it in the writing transaction, so it is
     * exactly count(*) in every snapshot. The count is split into slots by
     * backend, so that writers on different connections rarely wait for
     * each other's counter row (a single row would serialise a tenant's
     * creates on every node until each commits); rows of one slot may go
     * negative, their sum may not. The trigger is created before the
     * initial count: its lock on resources holds writers back until this
     * transaction commits. Resources never change tid or rtype (the UPDATE
     * trigger is a guard). */
    "CREATE TABLE resource_counts (\n"
    "    tid   bigint NOT NULL,\n"
    "    rtype int NOT NULL,\n"
    "    slot  int NOT NULL,\n"
    "    n     bigint NOT NULL,\n"
    "    PRIMARY KEY (tid, rtype, slot)\n"
    ");\n"
    "CREATE FUNCTION resource_counts_keep() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "    IF TG_OP IN ('DELETE', 'UPDATE') THEN\n"
    "        INSERT INTO resource_counts AS c (tid, rtype, slot, n)\n"
    "            VALUES (OLD.tid, OLD.rtype, pg_backend_pid() % 64, -1)\n"
    "            ON CONFLICT (tid, rtype, slot) DO UPDATE SET n = c.n - 1;\n"
    "    END IF;\n"
    "    IF TG_OP IN ('INSERT', 'UPDATE') THEN\n"
    "        INSERT INTO resource_counts AS c (tid, rtype, slot, n)\n"
    "            VALUES (NEW.tid, NEW.rtype, pg_backend_pid() % 64, 1)\n"
    "            ON CONFLICT (tid, rtype, slot) DO UPDATE SET n = c.n + 1;\n"
    "    END IF;\n"
    "    RETURN NULL;\n"
    "END\n"
    "$$;\n"
    "CREATE TRIGGER resource_counts_keep AFTER INSERT OR DELETE ON resources\n"
    "    FOR EACH ROW EXECUTE FUNCTION resource_counts_keep();\n"
    "CREATE TRIGGER resource_counts_move AFTER UPDATE OF tid, rtype ON resources FOR EACH ROW\n"
    "    WHEN (NEW.tid IS DISTINCT FROM OLD.tid OR NEW.rtype IS DISTINCT FROM OLD.rtype)\n"
    "    EXECUTE FUNCTION resource_counts_keep();\n"
    "INSERT INTO resource_counts (tid, rtype, slot, n)\n"
    "    SELECT tid, rtype, 0, count(*) FROM resources GROUP BY tid, rtype;\n",
};

#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* ---- instance and connection state ------------------------------------------ */

/* The instance: sg_storage (pg.h) first, so an sg_storage * points here. */
struct pg_instance {
    struct sg_storage base;
    char timeout[16]; /* connect_timeout option, "" when not given */
};

struct named {
    char name[NAME_MAX_]; /* "" : empty slot */
};

/* A prepared dynamic statement, keyed by its SQL text. */
struct dyn {
    char *sql; /* host-allocated copy, NULL: empty slot */
    uint64_t hash;
    uint64_t used; /* LRU clock */
    unsigned id;   /* prepared as "sg_dyn<id>" */
};

struct tentry {
    int64_t tid; /* 0: empty slot (identities start at 1) */
    char id[PG_TENANT_ID_MAX + 1];
};

/* sg_conn.priv */
struct pg_priv {
    struct named named[NAMED_SLOTS];
    struct dyn dyn[DYN_SLOTS];
    uint64_t clock;
    unsigned next_dyn;
    struct tentry tcache[TCACHE_SIZE];
    char constraint[NAME_MAX_]; /* constraint named by the last error */
};

static struct pg_priv *priv(sg_conn *c)
{
    return c->priv;
}

/* ---- small helpers ------------------------------------------------------------ */

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

sg_status pg_oom(sg_error *err)
{
    return sg_error_set(err, SG_ENOMEM, NULL, "out of memory");
}

static const char *rtype_name(sg_rtype t)
{
    return t == SG_RT_GROUP ? "Group" : "User";
}

int pg_valid_rtype(sg_rtype t)
{
    return t == SG_RT_USER || t == SG_RT_GROUP;
}

/* ---- parameters ---------------------------------------------------------------- */

void pg_params_init(pg_params *p)
{
    p->n = 0;
    p->nowned = 0;
    p->overflow = 0;
}

void pg_params_free(pg_params *p)
{
    for (int i = 0; i < p->nowned; i++) free(p->owned[i]);
    p->nowned = 0;
    p->n = 0;
}

/* Append one parameter; `own` (may be NULL) is freed by pg_params_free. */
static int param_add(pg_params *p, const char *v, int len, int fmt, char *own)
{
    if (p->n >= PG_MAX_PARAMS) {
        free(own);
        p->overflow = 1;
        return 0;
    }
    if (own) p->owned[p->nowned++] = own;
    p->v[p->n] = v;
    p->len[p->n] = len;
    p->fmt[p->n] = fmt;
    return ++p->n;
}

/* Take ownership of a malloc'd text (NULL: out of memory). */
static int param_own(pg_params *p, char *s)
{
    if (!s) {
        p->overflow = 1;
        return 0;
    }
    return param_add(p, s, 0, 0, s);
}

int pg_param_text(pg_params *p, const char *s)
{
    return param_add(p, s, 0, 0, NULL);
}

int pg_param_textn(pg_params *p, const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) {
        p->overflow = 1;
        return 0;
    }
    if (n) memcpy(d, s, n);
    d[n] = '\0';
    return param_add(p, d, 0, 0, d);
}

int pg_param_i64(pg_params *p, int64_t v)
{
    char *d = malloc(24);
    if (!d) {
        p->overflow = 1;
        return 0;
    }
    snprintf(d, 24, "%lld", (long long)v);
    return param_add(p, d, 0, 0, d);
}

int pg_param_f64(pg_params *p, double v)
{
    char *d = malloc(32);
    if (!d) {
        p->overflow = 1;
        return 0;
    }
    if (v != v)
        snprintf(d, 32, "NaN");
    else if (v > 0 && v * 0.5 == v)
        snprintf(d, 32, "Infinity");
    else if (v < 0 && v * 0.5 == v)
        snprintf(d, 32, "-Infinity");
    else
        snprintf(d, 32, "%.17g", v);
    return param_add(p, d, 0, 0, d);
}

int pg_param_bytea(pg_params *p, const void *b, size_t n)
{
    if (n > INT_MAX) {
        p->overflow = 1;
        return 0;
    }
    return param_add(p, b, (int)n, 1, NULL);
}

/*
** A text[] literal holding v[0..n-1] ({"a","b\"c",NULL}); NULL elements are
** SQL NULL. Every element is quoted, with '"' and '\' escaped, so any text
** round-trips. OUT: malloc'd (free), NULL when out of memory.
*/
char *pg_text_array(const char *const *v, size_t n)
{
    size_t len = 3;
    for (size_t i = 0; i < n; i++) len += v[i] ? 2 * strlen(v[i]) + 3 : 5;
    char *out = malloc(len), *o = out;
    if (!out) return NULL;
    *o++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i) *o++ = ',';
        if (!v[i]) {
            memcpy(o, "NULL", 4);
            o += 4;
            continue;
        }
        *o++ = '"';
        for (const char *s = v[i]; *s; s++) {
            if (*s == '"' || *s == '\\') *o++ = '\\';
            *o++ = *s;
        }
        *o++ = '"';
    }
    *o++ = '}';
    *o = '\0';
    return out;
}

/* An int[]/bigint[] literal of n values. OUT: malloc'd (free), or NULL. */
static char *int_array(const int64_t *v, size_t n)
{
    size_t len = 3 + n * 21;
    char *out = malloc(len), *o = out;
    if (!out) return NULL;
    *o++ = '{';
    for (size_t i = 0; i < n; i++)
        o += snprintf(o, len - (size_t)(o - out), "%s%lld", i ? "," : "", (long long)v[i]);
    *o++ = '}';
    *o = '\0';
    return out;
}

/* ---- errors ------------------------------------------------------------------- */

static int state_is(const char *state, const char *want)
{
    return state && !strncmp(state, want, strlen(want));
}

/* Failures that a retry may cure: the connection, the server's resources,
 * a lock or statement timeout, a shutting-down server. */
static int transient(const char *state)
{
    return state_is(state, "08") || state_is(state, "53") || state_is(state, "57P") ||
           state_is(state, "58") || state_is(state, "55P03") || state_is(state, "57014");
}

sg_status pg_error(sg_conn *c, const PGresult *r, sg_error *err)
{
    const sg_host *h = c->host;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *cons = r ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME) : NULL;
    struct pg_priv *pv = priv(c);
    if (pv) snprintf(pv->constraint, sizeof pv->constraint, "%s", cons ? cons : "");
    if (!msg) msg = PQerrorMessage(c->pg);
    int len = (int)strcspn(msg, "\n"); /* one log line */
    if (!state && PQstatus(c->pg) == CONNECTION_BAD) state = "08006";
    if (state_is(state, "23505")) {
        h->log(SG_LOG_DEBUG, PLUGIN, "unique violation on %s", cons ? cons : "?");
        return sg_error_set(err, SG_ECONFLICT, "uniqueness", "the value is already taken");
    }
    /* A serialization failure or a deadlock: the transaction was rolled
     * back whole and the same request will succeed when sent again, so it is
     * the retryable "unavailable" (503 with Retry-After), not a version
     * mismatch (412, which a client must not simply resend). */
    if (state_is(state, "40001") || state_is(state, "40P01")) {
        h->log(SG_LOG_INFO, PLUGIN, "postgres %s: %.*s", state, len, msg);
        return sg_error_set(err, SG_EUNAVAIL, NULL, "a concurrent change conflicted, retry");
    }
    if (transient(state)) {
        h->log(SG_LOG_WARN, PLUGIN, "postgres %s: %.*s", state, len, msg);
        return sg_error_set(err, SG_EUNAVAIL, NULL, "the store is unavailable, retry later");
    }
    if (state_is(state, "22") || state_is(state, "54")) {
        h->log(SG_LOG_WARN, PLUGIN, "postgres %s: %.*s", state, len, msg);
        return sg_error_set(err, SG_EINVALID, "invalidValue",
                            "a value cannot be stored (too long or not valid text)");
    }
    h->log(SG_LOG_ERROR, PLUGIN, "postgres %s: %.*s", state ? state : "(no state)", len, msg);
    return sg_error_set(err, SG_EINTERNAL, NULL, "storage error");
}

/* Notices (e.g. "relation already exists, skipping") go to the debug log. */
static void on_notice(void *arg, const char *msg)
{
    const sg_host *h = arg;
    h->log(SG_LOG_DEBUG, PLUGIN, "postgres notice: %.*s", (int)strcspn(msg, "\n"), msg);
}

/* ---- statements ------------------------------------------------------------------- */

/* The slot for fixed statement `name`; *found says whether it is prepared.
 * NULL when the table is full (the statement then runs unnamed). */
static struct named *named_slot(struct pg_priv *pv, const char *name, int *found)
{
    size_t n = strlen(name);
    *found = 0;
    if (n >= NAME_MAX_) return NULL;
    size_t i = fnv1a(name, n) % NAMED_SLOTS;
    for (size_t k = 0; k < NAMED_SLOTS; k++, i = (i + 1) % NAMED_SLOTS) {
        struct named *s = &pv->named[i];
        if (!s->name[0]) return s;
        if (!strcmp(s->name, name)) {
            *found = 1;
            return s;
        }
    }
    return NULL;
}

/* Prepare `sql` as `name` on the connection. */
static sg_status prepare(sg_conn *c, const char *name, const char *sql, sg_error *err)
{
    PGresult *r = PQprepare(c->pg, name, sql, 0, NULL);
    sg_status st = SG_OK;
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) st = pg_error(c, r, err);
    PQclear(r);
    return st;
}

/* Forget every prepared statement (the connection was reset). */
static void forget_statements(sg_conn *c)
{
    struct pg_priv *pv = priv(c);
    memset(pv->named, 0, sizeof pv->named);
    for (int i = 0; i < DYN_SLOTS; i++) {
        c->host->free(pv->dyn[i].sql);
        pv->dyn[i].sql = NULL;
    }
}

/* The name of fixed statement `name`, prepared if needed; NULL: run unnamed. */
static sg_status use_named(sg_conn *c, const char *name, const char *sql, const char **stmt,
                           sg_error *err)
{
    int found;
    struct named *s = named_slot(priv(c), name, &found);
    *stmt = NULL;
    if (!s) return SG_OK;
    if (!found) {
        sg_status st = prepare(c, name, sql, err);
        if (st != SG_OK) return st;
        snprintf(s->name, sizeof s->name, "%s", name);
    }
    *stmt = s->name;
    return SG_OK;
}

/* Drop the least recently used dynamic statement, server side too. */
static struct dyn *dyn_evict(sg_conn *c)
{
    struct pg_priv *pv = priv(c);
    struct dyn *lru = &pv->dyn[0];
    for (int i = 0; i < DYN_SLOTS; i++) {
        if (!pv->dyn[i].sql) return &pv->dyn[i];
        if (pv->dyn[i].used < lru->used) lru = &pv->dyn[i];
    }
    char sql[48];
    snprintf(sql, sizeof sql, "DEALLOCATE sg_dyn%u", lru->id);
    PQclear(PQexec(c->pg, sql));
    c->host->free(lru->sql);
    lru->sql = NULL;
    return lru;
}

/* The name of dynamic statement `sql`, prepared (and cached) if needed. The
 * name is written into buf. */
static sg_status use_dynamic(sg_conn *c, const char *sql, char buf[32], sg_error *err)
{
    struct pg_priv *pv = priv(c);
    size_t n = strlen(sql);
    uint64_t h = fnv1a(sql, n);
    for (int i = 0; i < DYN_SLOTS; i++) {
        struct dyn *d = &pv->dyn[i];
        if (d->sql && d->hash == h && !strcmp(d->sql, sql)) {
            d->used = ++pv->clock;
            snprintf(buf, 32, "sg_dyn%u", d->id);
            return SG_OK;
        }
    }
    struct dyn *d = dyn_evict(c);
    unsigned id = ++pv->next_dyn;
    snprintf(buf, 32, "sg_dyn%u", id);
    sg_status st = prepare(c, buf, sql, err);
    if (st != SG_OK) return st;
    d->sql = xstrdup(c->host, sql);
    if (!d->sql) {
        char dealloc[48];
        snprintf(dealloc, sizeof dealloc, "DEALLOCATE %s", buf);
        PQclear(PQexec(c->pg, dealloc));
        return pg_oom(err);
    }
    d->hash = h;
    d->id = id;
    d->used = ++pv->clock;
    return SG_OK;
}

/* Per-session settings, after connecting and after a reset: autocommit
 * statements run at READ COMMITTED too, whatever the server's
 * default_transaction_isolation. */
static int setup(PGconn *pg)
{
    PGresult *r = PQexec(pg, "SET default_transaction_isolation TO 'read committed'");
    int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
}

/* Outside a transaction a broken connection is re-opened before use; inside
 * one the transaction is lost and the call fails (SG_EUNAVAIL). */
static sg_status ensure_conn(sg_conn *c, sg_error *err)
{
    if (PQstatus(c->pg) == CONNECTION_OK) return SG_OK;
    if (c->in_txn || c->savepoint)
        return sg_error_set(err, SG_EUNAVAIL, NULL, "the store is unavailable, retry later");
    forget_statements(c);
    PQreset(c->pg);
    if (PQstatus(c->pg) != CONNECTION_OK || !setup(c->pg)) {
        const char *m = PQerrorMessage(c->pg);
        c->host->log(SG_LOG_WARN, PLUGIN, "reconnect failed: %.*s", (int)strcspn(m, "\n"), m);
        return sg_error_set(err, SG_EUNAVAIL, NULL, "the store is unavailable, retry later");
    }
    c->host->log(SG_LOG_INFO, PLUGIN, "reconnected to the database");
    return SG_OK;
}

sg_status pg_exec(sg_conn *c, const char *name, const char *sql, const pg_params *p, PGresult **out,
                  sg_error *err)
{
    if (out) *out = NULL;
    if (p && p->overflow)
        return p->n >= PG_MAX_PARAMS
                   ? sg_error_set(err, SG_ETOOMANY, NULL, "too many values in one statement")
                   : pg_oom(err);
    sg_status st = ensure_conn(c, err);
    if (st != SG_OK) return st;
    char buf[32];
    const char *stmt = NULL;
    if (name)
        st = use_named(c, name, sql, &stmt, err);
    else if ((st = use_dynamic(c, sql, buf, err)) == SG_OK)
        stmt = buf;
    if (st != SG_OK) return st;
    int n = p ? p->n : 0;
    const char *const *v = p ? p->v : NULL;
    const int *len = p ? p->len : NULL, *fmt = p ? p->fmt : NULL;
    PGresult *r = stmt ? PQexecPrepared(c->pg, stmt, n, v, len, fmt, 0)
                       : PQexecParams(c->pg, sql, n, NULL, v, len, fmt, 0);
    ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK) {
        st = pg_error(c, r, err);
        PQclear(r);
        return st;
    }
    if (out)
        *out = r;
    else
        PQclear(r);
    return SG_OK;
}

sg_status pg_run(sg_conn *c, const pg_stmt *s, const pg_params *p, PGresult **out, sg_error *err)
{
    return pg_exec(c, s->name, s->sql, p, out, err);
}

sg_status pg_run_changed(sg_conn *c, const pg_stmt *s, pg_params *p, int64_t *n, sg_error *err)
{
    PGresult *r;
    sg_status st = pg_run(c, s, p, &r, err);
    pg_params_free(p);
    *n = 0;
    if (st != SG_OK) return st;
    const char *tag = PQcmdTuples(r);
    *n = tag && *tag ? strtoll(tag, NULL, 10) : 0;
    PQclear(r);
    return SG_OK;
}

/* Run transaction control (no parameters) through the simple protocol.
 * *tag, when given, receives the command tag's first letters. */
static sg_status simple(sg_conn *c, const char *sql, char tag[16], sg_error *err)
{
    PGresult *r = PQexec(c->pg, sql);
    sg_status st = SG_OK;
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK)
        st = pg_error(c, r, err);
    else if (tag)
        snprintf(tag, 16, "%s", PQcmdStatus(r));
    PQclear(r);
    return st;
}

int64_t pg_i64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col)) return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

const char *pg_text(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

const char *pg_str(const PGresult *r, int row, int col)
{
    return PQgetvalue(r, row, col);
}

sg_resource pg_resource_row(const PGresult *r, int row, sg_rtype type)
{
    return (sg_resource){
        .type = type,
        .id = pg_str(r, row, 0),
        .version = pg_i64(r, row, 1),
        .created = pg_str(r, row, 2),
        .modified = pg_str(r, row, 3),
        .json = pg_str(r, row, 4),
        .json_len = (size_t)PQgetlength(r, row, 4),
    };
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Decode a column written as encode(x, 'hex') of exactly n bytes. */
static int hex_col(const PGresult *r, int row, int col, unsigned char *out, size_t n)
{
    const char *s = PQgetvalue(r, row, col);
    if (PQgetisnull(r, row, col) || strlen(s) != 2 * n) return 0;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return 0;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 1;
}

/* ---- transactions ------------------------------------------------------------------ */

static void tcache_clear(sg_conn *c)
{
    memset(priv(c)->tcache, 0, sizeof priv(c)->tcache);
}

/*
** The core's transactions. SG_TXN_WRITE is READ COMMITTED: every write is a
** compare-and-set or guarded by a unique index (see the top of this file),
** get() locks the resource it reads (RES_GET_LOCK) and job_claim the row it
** takes. SG_TXN_READ is REPEATABLE READ, so
** that a list's count and rows (two statements) see one snapshot, as a
** SQLite read transaction does; it is not READ ONLY, so a stray write still
** works (and a conflicting one fails as SG_EPRECOND).
*/
static sg_status st_begin(sg_conn *c, sg_txn_mode mode, sg_error *err)
{
    if (c->in_txn) return sg_error_set(err, SG_EINTERNAL, NULL, "a transaction is already open");
    sg_status st = ensure_conn(c, err);
    if (st != SG_OK) return st;
    st = simple(c,
                mode == SG_TXN_WRITE ? "BEGIN ISOLATION LEVEL READ COMMITTED"
                                     : "BEGIN ISOLATION LEVEL REPEATABLE READ",
                NULL, err);
    if (st == SG_OK) {
        c->in_txn = 1;
        c->writing = mode == SG_TXN_WRITE;
    }
    return st;
}

/* COMMIT of a transaction that failed earlier answers "ROLLBACK", no error. */
static sg_status commit_now(sg_conn *c, sg_error *err)
{
    char tag[16] = "";
    sg_status st = simple(c, "COMMIT", tag, err);
    if (st == SG_OK && strcmp(tag, "COMMIT"))
        st = sg_error_set(err, SG_EINTERNAL, NULL, "the transaction failed and was rolled back");
    return st;
}

static sg_status st_commit(sg_conn *c, sg_error *err)
{
    if (!c->in_txn) return SG_OK;
    c->in_txn = 0;
    sg_status st = commit_now(c, err);
    if (st != SG_OK) {
        /* Leave the connection clean: the request failed as a whole. */
        if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) simple(c, "ROLLBACK", NULL, NULL);
        tcache_clear(c);
    }
    return st;
}

static void st_rollback(sg_conn *c)
{
    if (c->in_txn && PQstatus(c->pg) == CONNECTION_OK) simple(c, "ROLLBACK", NULL, NULL);
    c->in_txn = 0;
    tcache_clear(c);
}

sg_status pg_wbegin(sg_conn *c, int *implicit, sg_error *err)
{
    *implicit = !c->in_txn && !c->savepoint;
    sg_status st = ensure_conn(c, err);
    if (st != SG_OK) return st;
    st =
        simple(c, *implicit ? "BEGIN ISOLATION LEVEL READ COMMITTED" : "SAVEPOINT sg_w", NULL, err);
    if (st == SG_OK) c->savepoint++;
    return st;
}

/* Undo a write unit: the implicit transaction, or back to its savepoint. */
static void wundo(sg_conn *c, int implicit)
{
    if (PQstatus(c->pg) != CONNECTION_OK) return;
    if (implicit) {
        if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) simple(c, "ROLLBACK", NULL, NULL);
        tcache_clear(c);
    } else {
        simple(c, "ROLLBACK TO SAVEPOINT sg_w; RELEASE SAVEPOINT sg_w", NULL, NULL);
    }
}

sg_status pg_wend(sg_conn *c, int implicit, sg_status st, sg_error *err)
{
    if (c->savepoint > 0) c->savepoint--;
    if (st == SG_OK) {
        st = implicit ? commit_now(c, err) : simple(c, "RELEASE SAVEPOINT sg_w", NULL, err);
        if (st == SG_OK) return SG_OK;
    }
    wundo(c, implicit);
    return st;
}

/* Run one statement so that, inside the core's transaction, its failure
 * leaves the transaction usable (a savepoint); alone it is atomic anyway. */
static sg_status run_atomic(sg_conn *c, const pg_stmt *s, const pg_params *p, PGresult **out,
                            sg_error *err)
{
    if (!c->in_txn && !c->savepoint) return pg_run(c, s, p, out, err);
    int implicit;
    sg_status st = pg_wbegin(c, &implicit, err);
    if (st != SG_OK) return st;
    st = pg_wend(c, implicit, pg_run(c, s, p, out, err), err);
    if (st != SG_OK && out && *out) { /* the release failed after a result */
        PQclear(*out);
        *out = NULL;
    }
    return st;
}

/* ---- tenants' tids ------------------------------------------------------------------ */

static const pg_stmt TENANT_TID = {"tenant_tid", "SELECT tid FROM tenants WHERE id = $1"};

/*
** Tenant id -> tid, cached per connection: tenants are never deleted, so a
** hit stays valid. A tenant created inside a transaction that rolls back may
** have been cached: rollback clears the cache.
*/
sg_status pg_tid(sg_conn *c, const char *tenant, int64_t *tid, sg_error *err)
{
    if (!tenant || !*tenant) return sg_error_set(err, SG_EINVALID, NULL, "no tenant given");
    size_t n = strlen(tenant);
    struct tentry *e = NULL;
    if (n <= PG_TENANT_ID_MAX) {
        e = &priv(c)->tcache[fnv1a(tenant, n) % TCACHE_SIZE];
        if (e->tid && !strcmp(e->id, tenant)) {
            *tid = e->tid;
            return SG_OK;
        }
    }
    pg_params p;
    PGresult *r;
    pg_params_init(&p);
    pg_param_text(&p, tenant);
    sg_status st = pg_run(c, &TENANT_TID, &p, &r, err);
    pg_params_free(&p);
    if (st != SG_OK) return st;
    if (PQntuples(r) == 1) {
        *tid = pg_i64(r, 0, 0);
        if (e) {
            e->tid = *tid;
            memcpy(e->id, tenant, n + 1);
        }
    } else {
        st = sg_error_set(err, SG_ENOTFOUND, NULL, "no such tenant");
    }
    PQclear(r);
    return st;
}

/* NULL or "" names the operators (owner 0: tids start at 1); any other text
 * must be a known tenant (SG_ENOTFOUND). */
static sg_status owner_of(sg_conn *c, const char *tenant, int64_t *tid, sg_error *err)
{
    if (!tenant || !*tenant) {
        *tid = 0;
        return SG_OK;
    }
    return pg_tid(c, tenant, tid, err);
}

/* ---- options, migrations, open ---------------------------------------------------- */

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

static sg_status parse_opts(struct pg_instance *in, const sg_kv *opts, size_t nopts, sg_error *err)
{
    const char *dsn = NULL;
    long long v;
    for (size_t i = 0; i < nopts; i++) {
        const char *k = opts[i].key, *val = opts[i].value;
        if (!k) return sg_error_set(err, SG_EINVALID, NULL, "option without a name");
        if (!strcmp(k, "dsn")) {
            if (!val || !*val)
                return sg_error_set(err, SG_EINVALID, NULL, "option \"dsn\" is empty");
            dsn = val;
        } else if (!strcmp(k, "connect_timeout")) {
            if (!parse_ll(val, 1, 3600, &v))
                return sg_error_set(err, SG_EINVALID, NULL,
                                    "option \"connect_timeout\" needs seconds (1 to 3600)");
            snprintf(in->timeout, sizeof in->timeout, "%lld", v);
        } else {
            return sg_error_set(err, SG_EINVALID, NULL, "unknown option \"%.64s\"", k);
        }
    }
    if (!dsn)
        return sg_error_set(err, SG_EINVALID, NULL,
                            "option \"dsn\" (storage.dsn) is required: a libpq connection string");
    in->base.dsn = xstrdup(in->base.host, dsn);
    return in->base.dsn ? SG_OK : pg_oom(err);
}

/*
** Open a libpq connection. Keywords before "dbname" are defaults that the
** DSN (expanded in place) may override; those after it win over the DSN.
** The DSN may hold a password: it is never logged.
*/
static PGconn *dial(const struct pg_instance *in)
{
    const char *keys[6], *vals[6];
    int n = 0;
    keys[n] = "application_name", vals[n++] = APPLICATION_NAME;
    keys[n] = "connect_timeout", vals[n++] = DEFAULT_CONNECT_TIMEOUT;
    keys[n] = "dbname", vals[n++] = in->base.dsn;
    if (in->timeout[0]) keys[n] = "connect_timeout", vals[n++] = in->timeout;
    keys[n] = "client_encoding", vals[n++] = "UTF8";
    keys[n] = NULL, vals[n] = NULL;
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (!pg) return NULL;
    PQsetNoticeProcessor(pg, on_notice, (void *)in->base.host);
    if (PQstatus(pg) != CONNECTION_OK) {
        in->base.host->log(SG_LOG_ERROR, PLUGIN, "cannot connect to the database: %.300s",
                           PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    if (!setup(pg)) {
        in->base.host->log(SG_LOG_ERROR, PLUGIN, "cannot set up the connection: %.300s",
                           PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

/* Run SQL (no parameters) on a bare connection during open; log failures. */
static PGresult *open_exec(const sg_host *h, PGconn *pg, const char *sql, ExecStatusType want)
{
    PGresult *r = PQexec(pg, sql);
    if (r && PQresultStatus(r) == want) return r;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    h->log(SG_LOG_ERROR, PLUGIN, "schema: postgres %s: %.300s", state ? state : "?",
           r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
    PQclear(r);
    return NULL;
}

/* The schema version recorded in the database (0: a new database). */
static int read_version(const sg_host *h, PGconn *pg, long long *ver)
{
    PGresult *r = open_exec(h, pg, "SELECT max(version) FROM scimgate_schema", PGRES_TUPLES_OK);
    if (!r) return 0;
    *ver = PQntuples(r) && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return 1;
}

/* Apply migrations[from..] and record the new version; 0 on failure. */
static int apply(const sg_host *h, PGconn *pg, long long from)
{
    for (long long i = from; i < NMIGRATIONS; i++) {
        PGresult *r = open_exec(h, pg, migrations[i], PGRES_COMMAND_OK);
        if (!r) return 0;
        PQclear(r);
        h->log(SG_LOG_INFO, PLUGIN, "applied schema migration %lld", i + 1);
    }
    char sql[96];
    snprintf(sql, sizeof sql,
             "DELETE FROM scimgate_schema; INSERT INTO scimgate_schema VALUES (%d)", NMIGRATIONS);
    PGresult *r = open_exec(h, pg, sql, PGRES_COMMAND_OK);
    PQclear(r);
    return r != NULL;
}

/*
** Bring the schema up to date in one transaction that first takes an
** advisory lock: when several nodes start on a new database at once, one
** migrates and the others then find the new version and do nothing.
*/
static sg_status migrate(const sg_host *h, PGconn *pg, sg_error *err)
{
    long long ver = 0;
    PGresult *r = open_exec(h, pg,
                            "BEGIN ISOLATION LEVEL READ COMMITTED;"
                            " SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ");"
                            " CREATE TABLE IF NOT EXISTS scimgate_schema (version int NOT NULL)",
                            PGRES_COMMAND_OK);
    int ok = r != NULL;
    PQclear(r);
    if (ok) ok = read_version(h, pg, &ver);
    if (ok && ver > NMIGRATIONS) {
        PQclear(PQexec(pg, "ROLLBACK"));
        h->log(SG_LOG_ERROR, PLUGIN, "schema version %lld is newer than this plugin's (%d)", ver,
               NMIGRATIONS);
        return sg_error_set(err, SG_EVERSION, NULL, "the database was written by a newer scimgate");
    }
    if (ok && ver < NMIGRATIONS) ok = apply(h, pg, ver);
    if (ok) {
        r = open_exec(h, pg, "COMMIT", PGRES_COMMAND_OK);
        ok = r && !strcmp(PQcmdStatus(r), "COMMIT");
        PQclear(r);
    }
    if (ok) return SG_OK;
    if (PQtransactionStatus(pg) != PQTRANS_IDLE) PQclear(PQexec(pg, "ROLLBACK"));
    if (PQstatus(pg) != CONNECTION_OK)
        return sg_error_set(err, SG_EUNAVAIL, NULL, "the database is unavailable");
    return sg_error_set(err, SG_EINTERNAL, NULL, "the database schema could not be set up");
}

static void st_close(sg_storage *st)
{
    if (!st) return;
    const sg_host *h = st->host;
    h->free(st->dsn);
    h->free(st);
}

static sg_status st_open(const sg_host *host, const char *data_dir, const sg_kv *opts, size_t nopts,
                         sg_storage **out, sg_error *err)
{
    *out = NULL;
    struct pg_instance *in = host->alloc(sizeof *in);
    if (!in) return pg_oom(err);
    memset(in, 0, sizeof *in);
    in->base.host = host;
    sg_status s = parse_opts(in, opts, nopts, err);
    if (s != SG_OK) {
        st_close(&in->base);
        return s;
    }
    PGconn *pg = dial(in);
    if (!pg)
        s = sg_error_set(err, SG_EUNAVAIL, NULL, "cannot connect to the database");
    else
        s = migrate(host, pg, err);
    PQfinish(pg);
    if (s != SG_OK) {
        st_close(&in->base);
        return s;
    }
    *out = &in->base;
    return SG_OK;
}

/* ---- connections ------------------------------------------------------------------ */

static void st_disconnect(sg_conn *c)
{
    if (!c) return;
    const sg_host *h = c->host;
    if (c->priv) {
        for (int i = 0; i < DYN_SLOTS; i++) h->free(priv(c)->dyn[i].sql);
        h->free(c->priv);
    }
    /* Closing rolls back an open transaction. */
    if (c->pg) PQfinish(c->pg);
    h->free(c);
}

static sg_status st_connect(sg_storage *st, sg_conn **out, sg_error *err)
{
    const sg_host *h = st->host;
    *out = NULL;
    sg_conn *c = h->alloc(sizeof *c);
    if (!c) return pg_oom(err);
    memset(c, 0, sizeof *c);
    c->st = st;
    c->host = h;
    c->priv = h->alloc(sizeof(struct pg_priv));
    if (!c->priv) {
        st_disconnect(c);
        return pg_oom(err);
    }
    memset(c->priv, 0, sizeof(struct pg_priv));
    c->pg = dial((const struct pg_instance *)st);
    if (!c->pg) {
        st_disconnect(c);
        return sg_error_set(err, SG_EUNAVAIL, NULL, "cannot connect to the database");
    }
    *out = c;
    return SG_OK;
}

/* ---- tenants ------------------------------------------------------------------------ */

#define TENANT_COLS "id, name, created, disabled"

static const pg_stmt TENANT_INS = {
    "tenant_ins", "INSERT INTO tenants (id, name, created, disabled) VALUES ($1, $2, $3, $4::int)"
                  " ON CONFLICT DO NOTHING"};
/* By id first, else by unique name. */
static const pg_stmt TENANT_GET = {"tenant_get",
                                   "SELECT " TENANT_COLS " FROM tenants WHERE id = $1 OR name = $1"
                                   " ORDER BY (id = $1) DESC LIMIT 1"};
static const pg_stmt TENANT_LIST = {"tenant_list",
                                    "SELECT " TENANT_COLS " FROM tenants ORDER BY tid"};
static const pg_stmt TENANT_DISABLE = {"tenant_disable",
                                       "UPDATE tenants SET disabled = $2::int WHERE id = $1"};
/* Which of id ($1) and name ($2) is taken: 1 for the id. */
static const pg_stmt TENANT_TAKEN = {"tenant_taken",
                                     "SELECT (id = $1)::int FROM tenants WHERE id = $1 OR name = $2"
                                     " ORDER BY 1 DESC LIMIT 1"};

/* After an insert that hit an existing tenant: say which value clashed. */
static sg_status tenant_clash(sg_conn *c, const sg_tenant *t, sg_error *err)
{
    pg_params p;
    PGresult *r;
    pg_params_init(&p);
    pg_param_text(&p, t->id);
    pg_param_text(&p, t->name);
    sg_status st = pg_run(c, &TENANT_TAKEN, &p, &r, err);
    pg_params_free(&p);
    if (st != SG_OK) return st;
    int by_id = PQntuples(r) == 1 && pg_i64(r, 0, 0) == 1;
    PQclear(r);
    if (by_id)
        return sg_error_set(err, SG_ECONFLICT, "uniqueness", "tenant id \"%.64s\" is already taken",
                            t->id);
    return sg_error_set(err, SG_ECONFLICT, "uniqueness", "tenant name \"%.128s\" is already taken",
                        t->name);
}

/* ON CONFLICT DO NOTHING: a clash is no error, so a transaction goes on. */
static sg_status st_tenant_create(sg_conn *c, const sg_tenant *t, sg_error *err)
{
    if (!t || !t->id || !*t->id || !t->name || !*t->name)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "a tenant needs an id and a name");
    if (strlen(t->id) > PG_TENANT_ID_MAX)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "tenant id longer than %d bytes",
                            PG_TENANT_ID_MAX);
    char now[SG_TIME_MAX];
    if (!t->created) c->host->format_time(c->host->now_ms(), now);
    pg_params p;
    int64_t n;
    pg_params_init(&p);
    pg_param_text(&p, t->id);
    pg_param_text(&p, t->name);
    pg_param_text(&p, t->created ? t->created : now);
    pg_param_i64(&p, t->disabled ? 1 : 0);
    sg_status st = pg_run_changed(c, &TENANT_INS, &p, &n, err);
    if (st != SG_OK) return st;
    return n == 1 ? SG_OK : tenant_clash(c, t, err);
}

/* Hand each row (TENANT_COLS) to fn until it asks to stop. */
static void tenant_rows(const PGresult *r, sg_tenant_fn fn, void *ud)
{
    for (int i = 0; i < PQntuples(r); i++) {
        sg_tenant t = {
            .id = pg_str(r, i, 0),
            .name = pg_str(r, i, 1),
            .created = pg_str(r, i, 2),
            .disabled = pg_i64(r, i, 3) != 0,
        };
        if (fn(ud, &t)) break;
    }
}

static sg_status st_tenant_get(sg_conn *c, const char *id_or_name, sg_tenant_fn fn, void *ud,
                               sg_error *err)
{
    if (!id_or_name) return sg_error_set(err, SG_EINVALID, NULL, "no tenant given");
    pg_params p;
    PGresult *r;
    pg_params_init(&p);
    pg_param_text(&p, id_or_name);
    sg_status st = pg_run(c, &TENANT_GET, &p, &r, err);
    pg_params_free(&p);
    if (st != SG_OK) return st;
    if (PQntuples(r) == 0)
        st = sg_error_set(err, SG_ENOTFOUND, NULL, "no such tenant");
    else if (fn)
        tenant_rows(r, fn, ud);
    PQclear(r);
    return st;
}

static sg_status st_tenant_list(sg_conn *c, sg_tenant_fn fn, void *ud, sg_error *err)
{
    if (!fn) return sg_error_set(err, SG_EINVALID, NULL, "no callback");
    PGresult *r;
    sg_status st = pg_run(c, &TENANT_LIST, NULL, &r, err);
    if (st != SG_OK) return st;
    tenant_rows(r, fn, ud);
    PQclear(r);
    return SG_OK;
}

static sg_status st_tenant_set_disabled(sg_conn *c, const char *id, int disabled, sg_error *err)
{
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no tenant given");
    pg_params p;
    int64_t n;
    pg_params_init(&p);
    pg_param_text(&p, id);
    pg_param_i64(&p, disabled ? 1 : 0);
    sg_status st = pg_run_changed(c, &TENANT_DISABLE, &p, &n, err);
    if (st != SG_OK) return st;
    return n ? SG_OK : sg_error_set(err, SG_ENOTFOUND, NULL, "no such tenant");
}

/* ---- tokens ---------------------------------------------------------------------------- */

/* $2 is the owner: 0 for the operators (stored as NULL). */
static const pg_stmt TOKEN_INS = {
    "token_ins", "INSERT INTO tokens (id, tid, hash, created_ms, expires_ms, revoked_ms,"
                 " last_used_ms, last_addr, kind, subject)"
                 " VALUES ($1, nullif($2::bigint, 0), $3::bytea, $4::bigint, $5::bigint,"
                 " $6::bigint, $7::bigint, $8, $9::int, $10)"
                 " ON CONFLICT DO NOTHING"};
static const pg_stmt TOKEN_INFO = {
    "token_info", "SELECT t.id, encode(k.hash, 'hex'), k.expires_ms, k.revoked_ms, t.disabled,"
                  " k.kind, k.subject, (k.tid IS NULL)::int"
                  " FROM tokens k LEFT JOIN tenants t ON t.tid = k.tid WHERE k.id = $1"};
static const pg_stmt TOKEN_LIST = {
    "token_list", "SELECT id, encode(hash, 'hex'), created_ms, expires_ms, revoked_ms,"
                  " last_used_ms, last_addr, kind, subject FROM tokens"
                  " WHERE coalesce(tid, 0) = $1::bigint ORDER BY created_ms, tok"};
static const pg_stmt TOKEN_UPDATE = {
    "token_update", "UPDATE tokens SET"
                    " expires_ms = CASE WHEN $3::bigint >= 0 THEN $3::bigint ELSE expires_ms END,"
                    " revoked_ms = CASE WHEN $4::bigint >= 0 THEN $4::bigint ELSE revoked_ms END"
                    " WHERE coalesce(tid, 0) = $1::bigint AND id = $2"};
static const pg_stmt TOKEN_TOUCH = {"token_touch",
                                    "UPDATE tokens SET last_used_ms = $2::bigint, last_addr = $3"
                                    " WHERE id = $1"};

static sg_status check_token(const sg_token *t, sg_error *err)
{
    if (!t || !t->id || !*t->id || !t->hash)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "a token needs an id and a hash");
    if (t->kind != SG_TOKEN_SCIM && t->kind != SG_TOKEN_ADMIN && t->kind != SG_TOKEN_DEVICE)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "unknown token kind %d",
                            (int)t->kind);
    if (t->subject && strlen(t->subject) > SUBJECT_MAX)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "token subject longer than %d bytes",
                            SUBJECT_MAX);
    if ((!t->tenant || !*t->tenant) && t->kind != SG_TOKEN_ADMIN)
        return sg_error_set(err, SG_EINVALID, "invalidValue",
                            "only an admin token may belong to no tenant");
    return SG_OK;
}

static sg_status st_token_create(sg_conn *c, const sg_token *t, sg_error *err)
{
    int64_t tid;
    sg_status st = check_token(t, err);
    if (st != SG_OK || (st = owner_of(c, t->tenant, &tid, err)) != SG_OK) return st;
    pg_params p;
    int64_t n;
    pg_params_init(&p);
    pg_param_text(&p, t->id);
    pg_param_i64(&p, tid);
    pg_param_bytea(&p, t->hash, SG_HASH_LEN);
    pg_param_i64(&p, t->created_ms ? t->created_ms : c->host->now_ms());
    pg_param_i64(&p, t->expires_ms);
    pg_param_i64(&p, t->revoked_ms);
    pg_param_i64(&p, t->last_used_ms);
    pg_param_text(&p, t->last_addr);
    pg_param_i64(&p, (int64_t)t->kind);
    pg_param_text(&p, t->subject);
    st = pg_run_changed(c, &TOKEN_INS, &p, &n, err);
    if (st != SG_OK) return st;
    return n == 1 ? SG_OK
                  : sg_error_set(err, SG_ECONFLICT, "uniqueness", "token id already exists");
}

/* Fill the fixed-size record from a TOKEN_INFO row; 0 when it does not fit
 * (a bug: lengths are checked when tokens and tenants are created). */
static int token_info_row(const PGresult *r, sg_token_info *out)
{
    int is_op = pg_i64(r, 0, 7) != 0;
    const char *tenant = is_op ? "" : pg_str(r, 0, 0);
    const char *subject = pg_str(r, 0, 6);
    size_t tn = strlen(tenant), sn = strlen(subject);
    if (tn >= sizeof out->tenant || (!is_op && !tn) || sn >= sizeof out->subject) return 0;
    memset(out, 0, sizeof *out);
    if (!hex_col(r, 0, 1, out->hash, SG_HASH_LEN)) return 0;
    memcpy(out->tenant, tenant, tn + 1);
    out->expires_ms = pg_i64(r, 0, 2);
    out->revoked = pg_i64(r, 0, 3) != 0;
    out->tenant_disabled = is_op ? 0 : pg_i64(r, 0, 4) != 0;
    out->kind = (int)pg_i64(r, 0, 5);
    memcpy(out->subject, subject, sn + 1);
    return 1;
}

static sg_status st_token_info(sg_conn *c, const char *id, sg_token_info *out, sg_error *err)
{
    if (!id || !out) return sg_error_set(err, SG_EINVALID, NULL, "no token id given");
    pg_params p;
    PGresult *r;
    pg_params_init(&p);
    pg_param_text(&p, id);
    sg_status st = pg_run(c, &TOKEN_INFO, &p, &r, err);
    pg_params_free(&p);
    if (st != SG_OK) return st;
    if (PQntuples(r) == 0) {
        st = sg_error_set(err, SG_ENOTFOUND, NULL, "no such token");
    } else if (!token_info_row(r, out)) {
        c->host->log(SG_LOG_ERROR, PLUGIN, "token row with a bad tenant id, subject or hash");
        st = sg_error_set(err, SG_EINTERNAL, NULL, "storage error");
    }
    PQclear(r);
    return st;
}

static sg_status st_token_list(sg_conn *c, const char *tenant, sg_token_fn fn, void *ud,
                               sg_error *err)
{
    int64_t tid;
    if (!fn) return sg_error_set(err, SG_EINVALID, NULL, "no callback");
    sg_status st = owner_of(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    pg_params p;
    PGresult *r;
    pg_params_init(&p);
    pg_param_i64(&p, tid);
    st = pg_run(c, &TOKEN_LIST, &p, &r, err);
    pg_params_free(&p);
    if (st != SG_OK) return st;
    for (int i = 0; i < PQntuples(r); i++) {
        unsigned char hash[SG_HASH_LEN];
        if (!hex_col(r, i, 1, hash, SG_HASH_LEN)) {
            c->host->log(SG_LOG_ERROR, PLUGIN, "token row with a bad hash");
            memset(hash, 0, sizeof hash);
        }
        sg_token t = {
            .id = pg_str(r, i, 0),
            .tenant = tid ? tenant : "",
            .hash = hash,
            .created_ms = pg_i64(r, i, 2),
            .expires_ms = pg_i64(r, i, 3),
            .revoked_ms = pg_i64(r, i, 4),
            .last_used_ms = pg_i64(r, i, 5),
            .last_addr = pg_text(r, i, 6),
            .kind = (sg_token_kind)pg_i64(r, i, 7),
            .subject = pg_text(r, i, 8),
        };
        if (fn(ud, &t)) break;
    }
    PQclear(r);
    return SG_OK;
}

static sg_status st_token_update(sg_conn *c, const char *tenant, const char *id, int64_t expires_ms,
                                 int64_t revoked_ms, sg_error *err)
{
    int64_t tid;
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no token id given");
    sg_status st = owner_of(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    pg_params p;
    int64_t n;
    pg_params_init(&p);
    pg_param_i64(&p, tid);
    pg_param_text(&p, id);
    pg_param_i64(&p, expires_ms);
    pg_param_i64(&p, revoked_ms);
    st = pg_run_changed(c, &TOKEN_UPDATE, &p, &n, err);
    if (st != SG_OK) return st;
    return n ? SG_OK : sg_error_set(err, SG_ENOTFOUND, NULL, "no such token");
}

static sg_status st_token_touch(sg_conn *c, const char *id, int64_t when_ms, const char *addr,
                                sg_error *err)
{
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no token id given");
    pg_params p;
    int64_t n;
    pg_params_init(&p);
    pg_param_text(&p, id);
    pg_param_i64(&p, when_ms);
    pg_param_text(&p, addr);
    sg_status st = pg_run_changed(c, &TOKEN_TOUCH, &p, &n, err);
    if (st != SG_OK) return st;
    return n ? SG_OK : sg_error_set(err, SG_ENOTFOUND, NULL, "no such token");
}

/* ---- portal sessions (ABI 1.1) ------------------------------------------------------- */

/* $2 is the owner: 0 for the operators (stored as NULL). */
static const pg_stmt SES_INS = {
    "ses_ins", "INSERT INTO sessions (id, tid, login, hash, created_ms, expires_ms, seen_ms)"
               " VALUES ($1, nullif($2::bigint, 0), $3, $4::bytea, $5::bigint, $6::bigint,"
               " $7::bigint) ON CONFLICT DO NOTHING"};
static const pg_stmt SES_GET = {
    "ses_get", "SELECT t.id, s.login, encode(s.hash, 'hex'), s.created_ms, s.expires_ms,"
               " s.seen_ms, t.disabled, (s.tid IS NULL)::int"
               " FROM sessions s LEFT JOIN tenants t ON t.tid = s.tid WHERE s.id = $1"};
static const pg_stmt SES_TOUCH = {"ses_touch",
                                  "UPDATE sessions SET seen_ms = $2::bigint WHERE id = $1"};
static const pg_stmt SES_DEL = {"ses_del", "DELETE FROM sessions WHERE id = $1"};
static const pg_stmt SES_PURGE = {
    "ses_purge", "DELETE FROM sessions WHERE expires_ms <= $1::bigint OR seen_ms < $2::bigint"};

static sg_status st_session_create(sg_conn *c, const sg_session *x, sg_error *err)
{
    if (!x || !x->id || !*x->id || !x->hash || !x->login || !*x->login)
        return sg_error_set(err, SG_EINVALID, "invalidValue",
                            "a session needs an id, a login and a hash");
    if (strlen(x->login) > SUBJECT_MAX)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "admin login longer than %d bytes",
                            SUBJECT_MAX);
    int64_t tid;
    sg_status st = owner_of(c, x->tenant, &tid, err);
    if (st != SG_OK) return st;
    pg_params p;
    pg_params_init(&p);
    pg_param_text(&p, x->id);
    pg_param_i64(&p, tid);
    pg_param_text(&p, x->login);
    pg_param_bytea(&p, x->hash, SG_HASH_LEN);
    pg_param_i64(&p, x->created_ms);
    pg_param_i64(&p, x->expires_ms);
    pg_param_i64(&p, x->seen_ms);
    int64_t n;
    st = pg_run_changed(c, &SES_INS, &p, &n, err);
    if (st != SG_OK) return st;
    return n == 1 ? SG_OK
                  : sg_error_set(err, SG_ECONFLICT, "uniqueness", "session id already exists");
}

static sg_status st_session_get(sg_conn *c, const char *id, sg_session_fn fn, void *ud,
                                sg_error *err)
{
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no session id given");
    pg_params p;
    PGresult *r;
    pg_params_init(&p);
    pg_param_text(&p, id);
    sg_status st = pg_run(c, &SES_GET, &p, &r, err);
    pg_params_free(&p);
    if (st != SG_OK) return st;
    unsigned char hash[SG_HASH_LEN];
    if (PQntuples(r) == 0) {
        st = sg_error_set(err, SG_ENOTFOUND, NULL, "no such session");
    } else if (!hex_col(r, 0, 2, hash, SG_HASH_LEN)) {
        c->host->log(SG_LOG_ERROR, PLUGIN, "session row with a bad hash");
        st = sg_error_set(err, SG_EINTERNAL, NULL, "storage error");
    } else {
        int is_op = pg_i64(r, 0, 7) != 0;
        sg_session x = {
            .id = id,
            .tenant = is_op ? "" : pg_str(r, 0, 0),
            .login = pg_str(r, 0, 1),
            .hash = hash,
            .created_ms = pg_i64(r, 0, 3),
            .expires_ms = pg_i64(r, 0, 4),
            .seen_ms = pg_i64(r, 0, 5),
            .tenant_disabled = is_op ? 0 : pg_i64(r, 0, 6) != 0,
        };
        if (fn) fn(ud, &x);
    }
    PQclear(r);
    return st;
}

/* One session by id through `s` (touch or delete); SG_ENOTFOUND when no row
 * changed. */
static sg_status session_change(sg_conn *c, const pg_stmt *s, const char *id, int64_t seen_ms,
                                sg_error *err)
{
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no session id given");
    pg_params p;
    pg_params_init(&p);
    pg_param_text(&p, id);
    if (s == &SES_TOUCH) pg_param_i64(&p, seen_ms);
    int64_t n;
    sg_status st = pg_run_changed(c, s, &p, &n, err);
    if (st != SG_OK) return st;
    return n ? SG_OK : sg_error_set(err, SG_ENOTFOUND, NULL, "no such session");
}

static sg_status st_session_touch(sg_conn *c, const char *id, int64_t seen_ms, sg_error *err)
{
    return session_change(c, &SES_TOUCH, id, seen_ms, err);
}

static sg_status st_session_delete(sg_conn *c, const char *id, sg_error *err)
{
    return session_change(c, &SES_DEL, id, 0, err);
}

static sg_status st_session_purge(sg_conn *c, int64_t now_ms, int64_t seen_before_ms,
                                  int64_t *removed, sg_error *err)
{
    pg_params p;
    pg_params_init(&p);
    pg_param_i64(&p, now_ms);
    pg_param_i64(&p, seen_before_ms);
    int64_t n;
    sg_status st = pg_run_changed(c, &SES_PURGE, &p, &n, err);
    if (st == SG_OK && removed) *removed = n;
    return st;
}

/* ---- admins ---------------------------------------------------------------------------- */

/* $1 is the owner, 0 for operators: the expression of admins_login. */
static const pg_stmt ADMIN_INS = {
    "admin_ins", "INSERT INTO admins (tid, login, password_hash, created_ms, disabled)"
                 " VALUES (nullif($1::bigint, 0), $2, $3, $4::bigint, $5::int)"
                 " ON CONFLICT DO NOTHING"};
static const pg_stmt ADMIN_GET = {"admin_get",
                                  "SELECT login, password_hash, created_ms, disabled FROM admins"
                                  " WHERE coalesce(tid, 0) = $1::bigint AND login = $2"};

/* A clash is ON CONFLICT DO NOTHING, not an error: a transaction goes on. */
static sg_status st_admin_create(sg_conn *c, const sg_admin *a, sg_error *err)
{
    if (!a || !a->login || !*a->login)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "an admin needs a login");
    if (strlen(a->login) > SUBJECT_MAX)
        return sg_error_set(err, SG_EINVALID, "invalidValue", "admin login longer than %d bytes",
                            SUBJECT_MAX);
    int64_t tid;
    sg_status st = owner_of(c, a->tenant, &tid, err);
    if (st != SG_OK) return st;
    pg_params p;
    int64_t n;
    pg_params_init(&p);
    pg_param_i64(&p, tid);
    pg_param_text(&p, a->login);
    pg_param_text(&p, a->password_hash);
    pg_param_i64(&p, a->created_ms ? a->created_ms : c->host->now_ms());
    pg_param_i64(&p, a->disabled ? 1 : 0);
    st = pg_run_changed(c, &ADMIN_INS, &p, &n, err);
    if (st != SG_OK) return st;
    if (n == 1) return SG_OK;
    return sg_error_set(err, SG_ECONFLICT, "uniqueness", "admin login \"%.128s\" is already taken",
                        a->login);
}

static sg_status st_admin_get(sg_conn *c, const char *tenant, const char *login, sg_admin_fn fn,
                              void *ud, sg_error *err)
{
    if (!login) return sg_error_set(err, SG_EINVALID, NULL, "no login given");
    int64_t tid;
    sg_status st = owner_of(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    pg_params p;
    PGresult *r;
    pg_params_init(&p);
    pg_param_i64(&p, tid);
    pg_param_text(&p, login);
    st = pg_run(c, &ADMIN_GET, &p, &r, err);
    pg_params_free(&p);
    if (st != SG_OK) return st;
    if (PQntuples(r) == 1) {
        sg_admin a = {
            .tenant = tid ? tenant : "",
            .login = pg_str(r, 0, 0),
            .password_hash = pg_text(r, 0, 1),
            .created_ms = pg_i64(r, 0, 2),
            .disabled = pg_i64(r, 0, 3) != 0,
        };
        if (fn) fn(ud, &a);
    } else {
        st = sg_error_set(err, SG_ENOTFOUND, NULL, "no such admin");
    }
    PQclear(r);
    return st;
}

/* ---- resources ----------------------------------------------------------------------- */

#define RES_COLS "id, version, created, modified, body"

static const pg_stmt RES_LOOKUP = {
    "res_lookup", "SELECT rid, rtype, version FROM resources WHERE tid = $1::bigint AND id = $2"};
static const pg_stmt RES_GET = {"res_get",
                                "SELECT " RES_COLS " FROM resources"
                                " WHERE tid = $1::bigint AND id = $2 AND rtype = $3::int"};
/* In a write transaction the core reads a resource in order to write its
 * next version: the row is locked until the transaction ends, so a second
 * writer (on any node) waits and then reads the new version, as SQLite's
 * single writer does, instead of losing the compare-and-set and retrying. */
static const pg_stmt RES_GET_LOCK = {"res_get_lock",
                                     "SELECT " RES_COLS " FROM resources"
                                     " WHERE tid = $1::bigint AND id = $2 AND rtype = $3::int"
                                     " FOR UPDATE"};
/* The resource and its keys in one statement: whole or nothing. Keys come
 * as parallel arrays; a repeated (attr, folded) of the resource is one row
 * (the primary key's ON CONFLICT), while a clash with another resource
 * trips resource_keys_unique (an error). */
static const pg_stmt RES_INS = {
    "res_ins", "WITH r AS (INSERT INTO resources (tid, rtype, id, version, created, modified, body)"
               " VALUES ($1::bigint, $2::int, $3, $4::bigint, $5, $6, $7) RETURNING rid)"
               " INSERT INTO resource_keys (tid, rtype, attr, folded, rid, value, uniq)"
               " SELECT $1::bigint, $2::int, k.attr, k.folded, r.rid, k.value, k.uniq"
               " FROM r, unnest($8::text[], $9::text[], $10::text[], $11::int[])"
               " AS k(attr, folded, value, uniq)"
               " ON CONFLICT (tid, rtype, attr, folded, rid) DO NOTHING"};
/* Compare-and-set on the version, and the old keys go: the rid when the
 * stored version was `expected` ($7). */
static const pg_stmt RES_CAS = {
    "res_cas", "WITH u AS (UPDATE resources SET version = $4::bigint, modified = $5, body = $6"
               " WHERE tid = $1::bigint AND id = $2 AND rtype = $3::int AND version = $7::bigint"
               " RETURNING rid),"
               " d AS (DELETE FROM resource_keys k USING u WHERE k.rid = u.rid)"
               " SELECT rid FROM u"};
static const pg_stmt KEYS_INS = {
    "keys_ins", "INSERT INTO resource_keys (tid, rtype, attr, folded, rid, value, uniq)"
                " SELECT $1::bigint, $2::int, k.attr, k.folded, $3::bigint, k.value, k.uniq"
                " FROM unnest($4::text[], $5::text[], $6::text[], $7::int[])"
                " AS k(attr, folded, value, uniq)"
                " ON CONFLICT (tid, rtype, attr, folded, rid) DO NOTHING"};
/* Keys and memberships go by ON DELETE CASCADE. */
static const pg_stmt RES_DEL = {"res_del",
                                "DELETE FROM resources"
                                " WHERE tid = $1::bigint AND id = $2 AND rtype = $3::int"};
/* The first of the given unique keys (by position) that another resource
 * ($5: the resource's own rid, or 0) holds. */
static const pg_stmt KEY_CLASH = {
    "key_clash", "SELECT u.ord FROM unnest($3::text[], $4::text[]) WITH ORDINALITY"
                 " AS u(attr, folded, ord) WHERE EXISTS (SELECT 1 FROM resource_keys k"
                 " WHERE k.tid = $1::bigint AND k.rtype = $2::int AND k.attr = u.attr"
                 " AND k.folded = u.folded AND k.uniq = 1 AND k.rid <> $5::bigint)"
                 " ORDER BY u.ord LIMIT 1"};

/* The key arrays of a resource: attr, folded, value (NULL when equal to
 * folded), uniq; each added as one parameter. 0 when out of memory. */
static int param_keys(pg_params *p, const sg_resource *r)
{
    size_t n = r->nkeys;
    const char **col = malloc((n ? n : 1) * 3 * sizeof *col);
    int64_t *uniq = malloc((n ? n : 1) * sizeof *uniq);
    int ok = col && uniq;
    for (size_t i = 0; ok && i < n; i++) {
        const sg_key *k = &r->keys[i];
        col[i] = k->attr;
        col[n + i] = k->folded;
        col[2 * n + i] = k->value && strcmp(k->value, k->folded) ? k->value : NULL;
        uniq[i] = (k->flags & SG_KEY_UNIQUE) ? 1 : 0;
    }
    if (ok) {
        ok = param_own(p, pg_text_array(col, n)) && param_own(p, pg_text_array(col + n, n)) &&
             param_own(p, pg_text_array(col + 2 * n, n)) && param_own(p, int_array(uniq, n));
    } else {
        p->overflow = 1;
    }
    free(col);
    free(uniq);
    return ok;
}

static sg_status clash(const sg_key *k, sg_error *err)
{
    return sg_error_set(err, SG_ECONFLICT, "uniqueness", "%.64s \"%.128s\" is already taken",
                        k->attr, k->value ? k->value : k->folded);
}

/*
** After resource_keys_unique refused a write (and the write was undone):
** name the attribute and value that another resource holds. `self` is the
** resource's own rid (replace) or 0. When the clash is gone by now (the
** other resource was removed meanwhile) the answer stays a conflict.
*/
static sg_status explain_clash(sg_conn *c, int64_t tid, const sg_resource *r, int64_t self,
                               sg_error *err)
{
    size_t n = 0, *at = malloc((r->nkeys ? r->nkeys : 1) * sizeof *at);
    const char **col = malloc((r->nkeys ? r->nkeys : 1) * 2 * sizeof *col);
    if (!at || !col) {
        free(at);
        free(col);
        return pg_oom(err);
    }
    for (size_t i = 0; i < r->nkeys; i++)
        if (r->keys[i].flags & SG_KEY_UNIQUE) at[n++] = i;
    for (size_t i = 0; i < n; i++) {
        col[i] = r->keys[at[i]].attr;
        col[n + i] = r->keys[at[i]].folded;
    }
    pg_params p;
    PGresult *res;
    pg_params_init(&p);
    pg_param_i64(&p, tid);
    pg_param_i64(&p, r->type);
    param_own(&p, pg_text_array(col, n));
    param_own(&p, pg_text_array(col + n, n));
    pg_param_i64(&p, self);
    sg_status st = pg_run(c, &KEY_CLASH, &p, &res, err);
    pg_params_free(&p);
    free(col);
    if (st == SG_OK) {
        int64_t ord = PQntuples(res) ? pg_i64(res, 0, 0) : 0;
        PQclear(res);
        st = ord >= 1 && (size_t)ord <= n
                 ? clash(&r->keys[at[ord - 1]], err)
                 : sg_error_set(err, SG_ECONFLICT, "uniqueness", "a unique value is already taken");
    }
    free(at);
    return st;
}

static sg_status check_resource(const sg_resource *r, sg_error *err)
{
    if (!r || !r->id || !*r->id || !r->json || !pg_valid_rtype(r->type))
        return sg_error_set(err, SG_EINVALID, "invalidValue", "incomplete resource");
    if (r->json_len > INT_MAX) return sg_error_set(err, SG_ETOOMANY, NULL, "resource too large");
    for (size_t i = 0; i < r->nkeys; i++)
        if (!r->keys[i].attr || !r->keys[i].folded)
            return sg_error_set(err, SG_EINVALID, "invalidValue", "incomplete index key");
    return SG_OK;
}

/* A conflict from a write of r: the id (resources_id) or a unique key. */
static sg_status conflict(sg_conn *c, int64_t tid, const sg_resource *r, int64_t self,
                          sg_error *err)
{
    if (!strcmp(priv(c)->constraint, "resources_id"))
        return sg_error_set(err, SG_ECONFLICT, "uniqueness", "id \"%.128s\" already exists", r->id);
    return explain_clash(c, tid, r, self, err);
}

static sg_status st_create(sg_conn *c, const char *tenant, const sg_resource *r, sg_error *err)
{
    int64_t tid;
    sg_status st = check_resource(r, err);
    if (st != SG_OK || (st = pg_tid(c, tenant, &tid, err)) != SG_OK) return st;
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
    param_keys(&p, r);
    st = run_atomic(c, &RES_INS, &p, NULL, err);
    pg_params_free(&p);
    /* The failed statement is undone (or its savepoint): look now. */
    if (st == SG_ECONFLICT) st = conflict(c, tid, r, 0, err);
    return st;
}

static sg_status not_found(sg_rtype type, const char *id, sg_error *err)
{
    return sg_error_set(err, SG_ENOTFOUND, NULL, "%s \"%.128s\" not found", rtype_name(type),
                        id ? id : "");
}

/* A resource's rid and type by id within one tenant; *found tells a miss. */
static sg_status lookup(sg_conn *c, int64_t tid, const char *id, int64_t *rid, sg_rtype *type,
                        int *found, sg_error *err)
{
    pg_params p;
    PGresult *r;
    pg_params_init(&p);
    pg_param_i64(&p, tid);
    pg_param_text(&p, id);
    sg_status st = pg_run(c, &RES_LOOKUP, &p, &r, err);
    pg_params_free(&p);
    if (st != SG_OK) return st;
    *found = PQntuples(r) == 1;
    if (*found) {
        if (rid) *rid = pg_i64(r, 0, 0);
        if (type) *type = (sg_rtype)pg_i64(r, 0, 1);
    }
    PQclear(r);
    return SG_OK;
}

/* The compare-and-set missed: the resource is absent (or of the other
 * type), or its version moved on. */
static sg_status cas_missed(sg_conn *c, int64_t tid, const sg_resource *r, sg_error *err)
{
    sg_rtype type = 0;
    int found;
    sg_status st = lookup(c, tid, r->id, NULL, &type, &found, err);
    if (st != SG_OK) return st;
    if (!found || type != r->type) return not_found(r->type, r->id, err);
    return sg_error_set(err, SG_EPRECOND, NULL, "version mismatch");
}

/* Step 1 of replace: the compare-and-set; *rid is 0 when it missed. */
static sg_status replace_cas(sg_conn *c, int64_t tid, const sg_resource *r, int64_t expected,
                             int64_t *rid, sg_error *err)
{
    char now[SG_TIME_MAX];
    if (!r->modified) c->host->format_time(c->host->now_ms(), now);
    pg_params p;
    PGresult *res;
    pg_params_init(&p);
    pg_param_i64(&p, tid);
    pg_param_text(&p, r->id);
    pg_param_i64(&p, r->type);
    pg_param_i64(&p, r->version);
    pg_param_text(&p, r->modified ? r->modified : now);
    pg_param_textn(&p, r->json, r->json_len);
    pg_param_i64(&p, expected);
    sg_status st = pg_run(c, &RES_CAS, &p, &res, err);
    pg_params_free(&p);
    if (st != SG_OK) return st;
    *rid = PQntuples(res) == 1 ? pg_i64(res, 0, 0) : 0;
    PQclear(res);
    return SG_OK;
}

/* Step 2 of replace: the new keys. */
static sg_status replace_keys(sg_conn *c, int64_t tid, const sg_resource *r, int64_t rid,
                              sg_error *err)
{
    if (r->nkeys == 0) return SG_OK;
    pg_params p;
    pg_params_init(&p);
    pg_param_i64(&p, tid);
    pg_param_i64(&p, r->type);
    pg_param_i64(&p, rid);
    param_keys(&p, r);
    sg_status st = pg_run(c, &KEYS_INS, &p, NULL, err);
    pg_params_free(&p);
    return st;
}

/*
** Replace: body, version, modified and keys, whole or nothing (a write
** unit). The UPDATE's `version = expected` is re-checked by PostgreSQL on
** the newest row version when a concurrent replace committed first, so two
** writers holding the same version cannot both win.
*/
static sg_status st_replace(sg_conn *c, const char *tenant, const sg_resource *r,
                            int64_t expected_version, sg_error *err)
{
    int64_t tid, rid = 0;
    int implicit;
    sg_status st = check_resource(r, err);
    if (st != SG_OK || (st = pg_tid(c, tenant, &tid, err)) != SG_OK) return st;
    if ((st = pg_wbegin(c, &implicit, err)) != SG_OK) return st;
    st = replace_cas(c, tid, r, expected_version, &rid, err);
    if (st == SG_OK && !rid) st = cas_missed(c, tid, r, err);
    if (st == SG_OK) st = replace_keys(c, tid, r, rid, err);
    st = pg_wend(c, implicit, st, err);
    if (st == SG_ECONFLICT && rid) st = conflict(c, tid, r, rid, err);
    return st;
}

static sg_status st_remove(sg_conn *c, const char *tenant, sg_rtype type, const char *id,
                           sg_error *err)
{
    int64_t tid;
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no id given");
    sg_status st = pg_tid(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    pg_params p;
    int64_t n;
    pg_params_init(&p);
    pg_param_i64(&p, tid);
    pg_param_text(&p, id);
    pg_param_i64(&p, type);
    st = pg_run_changed(c, &RES_DEL, &p, &n, err);
    if (st != SG_OK) return st;
    return n ? SG_OK : not_found(type, id, err);
}

sg_status pg_get_resource(sg_conn *c, const pg_stmt *s, int64_t tid, sg_rtype type, const char *id,
                          sg_row_fn fn, void *ud, int *found, sg_error *err)
{
    pg_params p;
    PGresult *r;
    *found = 0;
    pg_params_init(&p);
    pg_param_i64(&p, tid);
    pg_param_text(&p, id);
    pg_param_i64(&p, type);
    sg_status st = pg_run(c, s, &p, &r, err);
    pg_params_free(&p);
    if (st != SG_OK) return st;
    if (PQntuples(r) == 1) {
        sg_resource row = pg_resource_row(r, 0, type);
        *found = 1;
        st = fn ? fn(ud, &row) : SG_OK;
    }
    PQclear(r);
    return st;
}

static sg_status st_get(sg_conn *c, const char *tenant, sg_rtype type, const char *id, sg_row_fn fn,
                        void *ud, sg_error *err)
{
    int64_t tid;
    int found;
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no id given");
    sg_status st = pg_tid(c, tenant, &tid, err);
    if (st != SG_OK) return st;
    st = pg_get_resource(c, c->in_txn && c->writing ? &RES_GET_LOCK : &RES_GET, tid, type, id, fn,
                         ud, &found, err);
    return st != SG_OK || found ? st : not_found(type, id, err);
}

/* ---- memberships ------------------------------------------------------------------------ */

/* The rid and type of each id ($2, in order; NULL or unknown: NULL rid). */
static const pg_stmt RESOLVE = {
    "resolve", "SELECT v.ord, r.rid, r.rtype FROM unnest($2::text[]) WITH ORDINALITY AS v(id, ord)"
               " LEFT JOIN resources r ON r.tid = $1::bigint AND r.id = v.id ORDER BY v.ord"};
/* Added in the order given; one already there is kept as it is. */
static const pg_stmt MEM_INS = {
    "mem_ins", "INSERT INTO members (group_rid, member_rid, display)"
               " SELECT $1::bigint, v.rid, v.display"
               " FROM unnest($2::bigint[], $3::text[]) WITH ORDINALITY AS v(rid, display, ord)"
               " ORDER BY v.ord ON CONFLICT (group_rid, member_rid) DO NOTHING"};
static const pg_stmt MEM_DEL = {
    "mem_del",
    "DELETE FROM members WHERE group_rid = $1::bigint AND member_rid IN"
    " (SELECT r.rid FROM resources r WHERE r.tid = $2::bigint AND r.id = ANY($3::text[]))"};
static const pg_stmt MEM_CLEAR = {"mem_clear", "DELETE FROM members WHERE group_rid = $1::bigint"};
static const pg_stmt MEM_LIST = {"mem_list", "SELECT u.id, m.display, u.rtype FROM members m"
                                             " JOIN resources u ON u.rid = m.member_rid"
                                             " WHERE m.group_rid = $1::bigint ORDER BY m.mid"};

/* RESOLVE for ids[0..n-1]; the result has one row per id, in order. */
static sg_status resolve_ids(sg_conn *c, int64_t tid, const char *const *ids, size_t n,
                             PGresult **out, sg_error *err)
{
    pg_params p;
    pg_params_init(&p);
    pg_param_i64(&p, tid);
    param_own(&p, pg_text_array(ids, n));
    sg_status st = pg_run(c, &RESOLVE, &p, out, err);
    pg_params_free(&p);
    if (st == SG_OK && (size_t)PQntuples(*out) != n) {
        PQclear(*out);
        *out = NULL;
        st = sg_error_set(err, SG_EINTERNAL, NULL, "storage error");
    }
    return st;
}

static sg_status group_rid(sg_conn *c, int64_t tid, const char *id, int64_t *rid, sg_error *err)
{
    sg_rtype type = 0;
    int found;
    if (!id) return sg_error_set(err, SG_EINVALID, NULL, "no group id given");
    sg_status st = lookup(c, tid, id, rid, &type, &found, err);
    if (st != SG_OK) return st;
    if (!found || type != SG_RT_GROUP) return not_found(SG_RT_GROUP, id, err);
    return SG_OK;
}

/* The group (ids[0]) and the members (ids[1..n]) resolved in one statement:
 * rids[0] the group, rids[1..n] the members; a missing member is invalid. */
static sg_status add_resolve(sg_conn *c, int64_t tid, const char *const *ids, size_t n,
                             int64_t *rids, sg_error *err)
{
    PGresult *r;
    sg_status st = resolve_ids(c, tid, ids, n + 1, &r, err);
    if (st != SG_OK) return st;
    if (PQgetisnull(r, 0, 1) || pg_i64(r, 0, 2) != SG_RT_GROUP)
        st = not_found(SG_RT_GROUP, ids[0], err);
    for (size_t i = 0; st == SG_OK && i <= n; i++) {
        rids[i] = pg_i64(r, (int)i, 1);
        if (i && PQgetisnull(r, (int)i, 1))
            st = sg_error_set(err, SG_EINVALID, "invalidValue", "member \"%.128s\" does not exist",
                              ids[i]);
    }
    PQclear(r);
    return st;
}

/* Insert the members (rids[1..n]) into the group (rids[0]). */
static sg_status add_rows(sg_conn *c, const int64_t *rids, const sg_member *m, size_t n,
                          sg_error *err)
{
    const char **display = malloc((n ? n : 1) * sizeof *display);
    if (!display) return pg_oom(err);
    for (size_t i = 0; i < n; i++) display[i] = m[i].display;
    pg_params p;
    pg_params_init(&p);
    pg_param_i64(&p, rids[0]);
    param_own(&p, int_array(rids + 1, n));
    param_own(&p, pg_text_array(display, n));
    free(display);
    sg_status st = pg_run(c, &MEM_INS, &p, NULL, err);
    pg_params_free(&p);
    /* members' foreign keys: a member removed since it was resolved. */
    if (st == SG_EINTERNAL && !strncmp(priv(c)->constraint, "members_", 8))
        st = sg_error_set(err, SG_EINVALID, "invalidValue", "a member no longer exists");
    return st;
}

/*
** Two statements whatever the number of ids (one to resolve them, one to
** insert), in a write unit: an unknown member leaves nothing behind.
** Concurrent adds to one group from several connections never conflict:
** each pair is its own row (ON CONFLICT DO NOTHING for a repeat), and the
** foreign key checks share-lock the group row only.
*/
static sg_status add_body(sg_conn *c, int64_t tid, const char *group_id, const sg_member *m,
                          size_t n, sg_error *err)
{
    const char **ids = malloc((n + 1) * sizeof *ids);
    int64_t *rids = malloc((n + 1) * sizeof *rids);
    sg_status st = ids && rids ? SG_OK : pg_oom(err);
    for (size_t i = 0; st == SG_OK && i < n; i++) {
        if (!m[i].value)
            st = sg_error_set(err, SG_EINVALID, "invalidValue", "member without a value");
        else
            ids[i + 1] = m[i].value;
    }
    if (st == SG_OK) {
        ids[0] = group_id;
        st = add_resolve(c, tid, ids, n, rids, err);
    }
    if (st == SG_OK && n) st = add_rows(c, rids, m, n, err);
    free(ids);
    free(rids);
    return st;
}

static sg_status st_members_add(sg_conn *c, const char *tenant, const char *group_id,
                                const sg_member *m, size_t n, sg_error *err)
{
    int64_t tid;
    int implicit;
    sg_status st;
    if (!group_id) return sg_error_set(err, SG_EINVALID, NULL, "no group id given");
    if (n && !m) return sg_error_set(err, SG_EINVALID, NULL, "no members given");
    if ((st = pg_tid(c, tenant, &tid, err)) != SG_OK) return st;
    if ((st = pg_wbegin(c, &implicit, err)) != SG_OK) return st;
    return pg_wend(c, implicit, add_body(c, tid, group_id, m, n, err), err);
}

/* One DELETE for all the ids; an id that is no member is no error. */
static sg_status st_members_remove(sg_conn *c, const char *tenant, const char *group_id,
                                   const char *const *ids, size_t n, sg_error *err)
{
    int64_t tid, grid;
    sg_status st;
    if (n && !ids) return sg_error_set(err, SG_EINVALID, NULL, "no ids given");
    if ((st = pg_tid(c, tenant, &tid, err)) != SG_OK) return st;
    if ((st = group_rid(c, tid, group_id, &grid, err)) != SG_OK || n == 0) return st;
    pg_params p;
    pg_params_init(&p);
    pg_param_i64(&p, grid);
    pg_param_i64(&p, tid);
    param_own(&p, pg_text_array(ids, n));
    st = pg_run(c, &MEM_DEL, &p, NULL, err);
    pg_params_free(&p);
    return st;
}

static sg_status st_members_clear(sg_conn *c, const char *tenant, const char *group_id,
                                  sg_error *err)
{
    int64_t tid, grid;
    sg_status st;
    if ((st = pg_tid(c, tenant, &tid, err)) != SG_OK) return st;
    if ((st = group_rid(c, tid, group_id, &grid, err)) != SG_OK) return st;
    pg_params p;
    pg_params_init(&p);
    pg_param_i64(&p, grid);
    st = pg_run(c, &MEM_CLEAR, &p, NULL, err);
    pg_params_free(&p);
    return st;
}

static sg_status st_members_list(sg_conn *c, const char *tenant, const char *group_id,
                                 sg_member_fn fn, void *ud, sg_error *err)
{
    int64_t tid, grid;
    sg_status st;
    if (!fn) return sg_error_set(err, SG_EINVALID, NULL, "no callback");
    if ((st = pg_tid(c, tenant, &tid, err)) != SG_OK) return st;
    if ((st = group_rid(c, tid, group_id, &grid, err)) != SG_OK) return st;
    pg_params p;
    PGresult *r;
    pg_params_init(&p);
    pg_param_i64(&p, grid);
    st = pg_run(c, &MEM_LIST, &p, &r, err);
    pg_params_free(&p);
    if (st != SG_OK) return st;
    for (int i = 0; st == SG_OK && i < PQntuples(r); i++) {
        sg_member m = {
            .value = pg_str(r, i, 0),
            .display = pg_text(r, i, 1),
            .type = (sg_rtype)pg_i64(r, i, 2),
        };
        st = fn(ud, &m);
    }
    PQclear(r);
    return st;
}

/* One statement whatever n (an index look-up per id). */
static sg_status st_resolve(sg_conn *c, const char *tenant, const char *const *ids, size_t n,
                            sg_rtype *types, sg_error *err)
{
    int64_t tid;
    PGresult *r;
    sg_status st;
    if (n && (!ids || !types)) return sg_error_set(err, SG_EINVALID, NULL, "no ids given");
    if ((st = pg_tid(c, tenant, &tid, err)) != SG_OK || n == 0) return st;
    if ((st = resolve_ids(c, tid, ids, n, &r, err)) != SG_OK) return st;
    for (size_t i = 0; i < n; i++)
        types[i] = PQgetisnull(r, (int)i, 1) ? 0 : (sg_rtype)pg_i64(r, (int)i, 2);
    PQclear(r);
    return SG_OK;
}

/* ---- registration --------------------------------------------------------------------- */

static const sg_storage_vtab vtab = {
    .abi_major = SG_ABI_MAJOR,
    .abi_minor = SG_ABI_MINOR,
    .size = sizeof(sg_storage_vtab),
    .name = "postgres",
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
    .search = pg_search,
    .members_add = st_members_add,
    .members_remove = st_members_remove,
    .members_clear = st_members_clear,
    .members_list = st_members_list,
    .resolve = st_resolve,
    .admin_create = st_admin_create,
    .admin_get = st_admin_get,
    .device_create = pg_device_create,
    .device_get = pg_device_get,
    .device_list = pg_device_list,
    .device_revoke = pg_device_revoke,
    .setting_set = pg_setting_set,
    .settings_list = pg_settings_list,
    .event_append = pg_event_append,
    .event_list = pg_event_list,
    .event_purge = pg_event_purge,
    .tombstone_put = pg_tombstone_put,
    .tombstone_get = pg_tombstone_get,
    .tombstone_remove = pg_tombstone_remove,
    .tombstone_purge = pg_tombstone_purge,
    .job_create = pg_job_create,
    .job_get = pg_job_get,
    .job_update = pg_job_update,
    .job_list = pg_job_list,
    .job_claim = pg_job_claim,
    .job_expire = pg_job_expire,
    .session_create = st_session_create,
    .session_get = st_session_get,
    .session_touch = st_session_touch,
    .session_delete = st_session_delete,
    .session_purge = st_session_purge,
    .job_counts = pg_job_counts,
};

SG_PLUGIN_EXPORT sg_status sg_plugin_init(const sg_host *host, sg_plugin_reg *out)
{
    if (!host || !out) return SG_EINVALID;
    out->abi_major = SG_ABI_MAJOR;
    out->abi_minor = SG_ABI_MINOR;
    out->size = sizeof *out;
    out->kind = SG_PLUGIN_STORAGE;
    out->name = "postgres";
    out->vtab = &vtab;
    if (host->abi_major != SG_ABI_MAJOR || !SG_HAS_MEMBER(host, sg_host, format_time))
        return SG_EVERSION;
    /* One PGconn per worker thread needs a thread-safe libpq. */
    if (!PQisthreadsafe()) {
        host->log(SG_LOG_ERROR, PLUGIN, "libpq was built without thread support");
        return SG_EINTERNAL;
    }
    return SG_OK;
}
