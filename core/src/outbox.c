#include "outbox.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "lifecycle.h"
#include "log.h"
#include "lua_host.h"
#include "portal.h"
#include "util.h"

#define MAX_THREADS 32

/* A tenant whose change feed goes to a webhook (thread 0 only). */
typedef struct feed {
    char tenant[65];
    int failures;
    int64_t next_try_ms;
} feed;

typedef struct ob_thread {
    sg_worker w; /* its own storage connection and Lua states */
    pthread_t t;
    int index;
    char owner[96]; /* the lease holder's name: node and thread */
    feed *feeds;    /* refreshed by housekeeping */
    size_t nfeeds;
} ob_thread;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t gen;
    bool stopping;
    sg_server *srv;
    ob_thread *threads;
    size_t n;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

void sg_outbox_notify(void)
{
    pthread_mutex_lock(&g.mu);
    g.gen++;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
}

uint64_t sg_outbox_generation(void)
{
    pthread_mutex_lock(&g.mu);
    uint64_t gen = g.gen;
    pthread_mutex_unlock(&g.mu);
    return gen;
}

static void deadline_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

void sg_outbox_wait(uint64_t seen, int64_t ms)
{
    struct timespec ts;
    deadline_in(&ts, ms);
    pthread_mutex_lock(&g.mu);
    while (g.gen == seen && !g.stopping)
        if (pthread_cond_timedwait(&g.cv, &g.mu, &ts) != 0) break;
    pthread_mutex_unlock(&g.mu);
}

int64_t sg_outbox_backoff(int attempt, int64_t base_ms, int64_t max_ms)
{
    int64_t d = base_ms;
    for (int i = 1; i < attempt && d < max_ms; i++) d *= 2;
    if (d > max_ms) d = max_ms;
    uint32_t r;
    sg_random(&r, sizeof r);
    /* between d/2 and d */
    return d / 2 + (int64_t)((double)r / 4294967296.0 * (double)(d - d / 2));
}

/* ---- delivering one job -------------------------------------------------------------- */

/* A lifecycle context for `tenant` on this thread, acting as the system. */
static sg_lc lc_for(ob_thread *t, const char *tenant, sg_error *err)
{
    return (sg_lc){.st = t->w.srv->plugins->st,
                   .conn = t->w.conn,
                   .tenant = tenant,
                   .actor = {"system:outbox", NULL},
                   .err = err};
}

/* Run `fn` in a write transaction; commit on SG_OK, else roll back and
 * log. */
typedef sg_status (*txn_fn)(ob_thread *t, void *ud, sg_error *err);
static sg_status in_txn(ob_thread *t, const char *what, txn_fn fn, void *ud)
{
    const sg_storage_vtab *st = t->w.srv->plugins->st;
    sg_error err;
    sg_error_clear(&err);
    sg_status s = sg_worker_conn(&t->w, &t->w.conn, &err);
    if (s == SG_OK) s = st->begin(t->w.conn, SG_TXN_WRITE, &err);
    if (s != SG_OK) {
        sg_log(SG_LOG_WARN, "outbox", "%s: storage unavailable: %s", what, err.detail);
        return s;
    }
    s = fn(t, ud, &err);
    if (s == SG_OK) s = st->commit(t->w.conn, &err);
    if (s != SG_OK) {
        st->rollback(t->w.conn);
        if (s != SG_ENOTFOUND) sg_log(SG_LOG_WARN, "outbox", "%s: %s", what, err.detail);
    }
    return s;
}

typedef struct check {
    const sg_job *job;
    bool deliver;
    json_t *user, *settings;
} check;

static sg_status check_fn(ob_thread *t, void *ud, sg_error *err)
{
    check *k = ud;
    sg_lc lc = lc_for(t, k->job->tenant, err);
    sg_status s = sg_lc_dispatch_check(&lc, k->job, &k->deliver, &k->user);
    if (s == SG_OK && k->deliver) k->settings = json_deep_copy(sg_lc_settings(&lc));
    sg_lc_done(&lc);
    return s;
}

typedef struct outcome {
    const sg_job *job;
    const char *owner;
    int result;
    const char *reason;
} outcome;

static sg_status outcome_fn(ob_thread *t, void *ud, sg_error *err)
{
    outcome *o = ud;
    const sg_outbox_config *oc = &t->w.srv->cfg->outbox;
    sg_lc lc = lc_for(t, o->job->tenant, err);
    sg_lc_jobs now;
    sg_status s = sg_lc_job_get(&lc, o->job->id, &now);
    if (s == SG_OK) {
        const sg_job *j = &now.j[0];
        if (strcmp(j->status, "Sending") || !j->lease_owner || strcmp(j->lease_owner, o->owner)) {
            /* Cancelled, or our lease ran out and another thread took it:
             * what we delivered (if anything) stays at least once. */
            sg_log(SG_LOG_WARN, "outbox",
                   "invitation %s changed while it was being delivered (now %s); outcome %d "
                   "not recorded",
                   j->id, j->status, o->result);
        } else {
            s = sg_lc_dispatch_done(
                &lc, j, o->result, o->reason,
                sg_outbox_backoff(j->attempts + 1, oc->retry_base_ms, oc->retry_max_ms),
                (int)oc->attempts);
        }
    }
    sg_lc_jobs_free(&now);
    sg_lc_done(&lc);
    return s;
}

/* Call invite.on_invite for a job whose user still waits for it. */
static sg_delivery run_hook(ob_thread *t, const sg_job *j, const json_t *user,
                            const json_t *settings, char *reason)
{
    char expires[SG_TIME_MAX];
    sg_format_time(j->expires_ms, expires);
    json_t *inv = json_pack("{sssssssssssi}", "id", j->id, "key", j->key, "email", j->address,
                            "expires", expires, "tenant", j->tenant, "attempt", j->attempts + 1);
    sg_hook_ctx ctx = {.tenant = j->tenant,
                       .method = "INVITE",
                       .resource_type = "User",
                       .request_id = j->id,
                       .entra_mode = "default",
                       .settings = settings};
    sg_delivery r = SG_DELIVERY_RETRY;
    sg_error err;
    const json_t *args[2] = {user, inv};
    sg_lua_request_start(t->w.lua);
    if (!inv) {
        snprintf(reason, 256, "out of memory");
    } else if (sg_lua_outbox_hook(t->w.lua, SG_HOOK_INVITE, &ctx, args, 2, &r, reason, &err) !=
               SG_OK) {
        r = SG_DELIVERY_RETRY;
        snprintf(reason, 256, "%s", err.detail);
    }
    json_decref(inv);
    return r;
}

static const char *delivery_word(sg_delivery r)
{
    return r == SG_DELIVERY_OK ? "delivered" : r == SG_DELIVERY_RETRY ? "retry" : "failed";
}

/* Deliver one due job, if there is one. false when none was due. */
static bool deliver_one(ob_thread *t)
{
    /* The claim is its own write (no transaction around it): an idle poll
     * does not take the store's write lock. */
    const sg_storage_vtab *st = t->w.srv->plugins->st;
    sg_lc_jobs claimed = {0};
    sg_error err;
    sg_status s = sg_worker_conn(&t->w, &t->w.conn, &err);
    if (s == SG_OK)
        s = st->job_claim(t->w.conn, t->owner, sg_now_ms(), t->w.srv->cfg->outbox.lease_ms,
                          sg_lc_jobs_collect, &claimed, &err);
    if (s != SG_OK || claimed.n == 0) {
        if (s != SG_OK && s != SG_ENOTFOUND)
            sg_log(SG_LOG_WARN, "outbox", "claiming a job: %s", err.detail);
        sg_lc_jobs_free(&claimed);
        return false;
    }
    const sg_job *j = &claimed.j[0];
    check k = {.job = j};
    if (in_txn(t, "checking a job", check_fn, &k) == SG_OK && k.deliver) {
        char reason[256] = "";
        sg_delivery r = run_hook(t, j, k.user, k.settings, reason);
        sg_log(r == SG_DELIVERY_OK ? SG_LOG_INFO : SG_LOG_WARN, "outbox",
               "invitation %s (tenant %s, attempt %d): %s%s%s", j->id, j->tenant, j->attempts + 1,
               delivery_word(r), reason[0] ? ": " : "", reason);
        outcome o = {j, t->owner, (int)r, reason};
        in_txn(t, "recording a delivery", outcome_fn, &o);
    }
    json_decref(k.user);
    json_decref(k.settings);
    sg_lc_jobs_free(&claimed);
    return true;
}

/* ---- housekeeping ------------------------------------------------------------------------ */

static sg_status expire_fn(ob_thread *t, void *ud, sg_error *err)
{
    (void)ud;
    sg_lc_jobs l = {0};
    sg_status s =
        t->w.srv->plugins->st->job_expire(t->w.conn, sg_now_ms(), sg_lc_jobs_collect, &l, err);
    for (size_t i = 0; s == SG_OK && i < l.n; i++) {
        sg_lc lc = lc_for(t, l.j[i].tenant, err);
        s = sg_lc_job_expired(&lc, &l.j[i]);
        sg_lc_done(&lc);
    }
    if (s == SG_OK && l.n) sg_log(SG_LOG_INFO, "outbox", "%zu approval requests expired", l.n);
    sg_lc_jobs_free(&l);
    return s;
}

typedef struct tenant_ids {
    char (*ids)[65];
    size_t n, cap;
} tenant_ids;

static int tenant_cb(void *ud, const sg_tenant *tn)
{
    tenant_ids *ti = ud;
    if (ti->n == ti->cap) {
        size_t cap = ti->cap ? ti->cap * 2 : 16;
        char(*p)[65] = realloc(ti->ids, cap * sizeof *p);
        if (!p) return 1;
        ti->ids = p;
        ti->cap = cap;
    }
    snprintf(ti->ids[ti->n++], 65, "%s", tn->id);
    return 0;
}

typedef struct purge {
    tenant_ids tenants;
    int64_t tombstones, events, sessions;
} purge;

/* Keep the feed state of a tenant that has a webhook (its back-off
 * survives the refresh). */
static void feed_keep(ob_thread *t, feed *next, size_t *n, const char *tenant)
{
    feed f = {.failures = 0};
    snprintf(f.tenant, sizeof f.tenant, "%s", tenant);
    for (size_t i = 0; i < t->nfeeds; i++)
        if (!strcmp(t->feeds[i].tenant, tenant)) f = t->feeds[i];
    next[(*n)++] = f;
}

/* Tombstones past their grace period go, except in a tenant whose purges
 * the deletion-spike brake paused; then events past retention. */
static sg_status purge_fn(ob_thread *t, void *ud, sg_error *err)
{
    purge *pu = ud;
    const sg_storage_vtab *st = t->w.srv->plugins->st;
    int64_t now = sg_now_ms(), n;
    sg_status s = st->tenant_list(t->w.conn, tenant_cb, &pu->tenants, err);
    feed *feeds = calloc(pu->tenants.n ? pu->tenants.n : 1, sizeof *feeds);
    size_t nfeeds = 0;
    if (!feeds) s = sg_error_set(err, SG_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; s == SG_OK && i < pu->tenants.n; i++) {
        sg_lc lc = lc_for(t, pu->tenants.ids[i], err);
        const json_t *set = sg_lc_settings(&lc);
        bool paused = json_object_get(set, "purge_paused") != NULL;
        if (json_object_get(set, "changes_webhook_url"))
            feed_keep(t, feeds, &nfeeds, pu->tenants.ids[i]);
        sg_lc_done(&lc);
        if (paused) continue;
        s = st->tombstone_purge(t->w.conn, pu->tenants.ids[i], now, &n, err);
        pu->tombstones += n;
    }
    int64_t before = now - t->w.srv->cfg->outbox.events_ms;
    if (s == SG_OK) s = st->event_purge(t->w.conn, before, before, &pu->events, err);
    /* Portal sessions past their end or idle too long (signed out by then
     * anyway: this only frees the rows). */
    if (s == SG_OK && sg_portal_sessions_supported(st))
        s = st->session_purge(t->w.conn, now, now - t->w.srv->cfg->portal_cfg.session_idle_ms,
                              &pu->sessions, err);
    if (s == SG_OK) {
        free(t->feeds);
        t->feeds = feeds;
        t->nfeeds = nfeeds;
    } else {
        free(feeds);
    }
    return s;
}

static void housekeeping(ob_thread *t)
{
    in_txn(t, "expiring approvals", expire_fn, NULL);
    purge pu = {0};
    if (in_txn(t, "purging", purge_fn, &pu) == SG_OK && (pu.tombstones || pu.events || pu.sessions))
        sg_log(SG_LOG_INFO, "outbox", "purged %lld tombstones, %lld events and %lld sessions",
               (long long)pu.tombstones, (long long)pu.events, (long long)pu.sessions);
    free(pu.tenants.ids);
}

/* ---- the change webhook ----------------------------------------------------------------- */

#define FEED_BATCH 100

typedef struct feed_batch {
    const char *tenant;
    json_t *settings, *events;
    int64_t from, last; /* the cursor before the batch, the last event's */
} feed_batch;

static sg_status feed_event(void *ud, const sg_event *e)
{
    feed_batch *b = ud;
    b->last = e->seq;
    return json_array_append_new(b->events, sg_event_json(e)) ? SG_ENOMEM : SG_OK;
}

static int64_t feed_cursor(const json_t *settings)
{
    const char *v = json_string_value(json_object_get(settings, "changes_webhook_cursor"));
    int64_t n;
    return v && sg_parse_i64(v, &n) && n >= 0 ? n : 0;
}

/* Read the next batch of the tenant's change feed past its webhook cursor. */
static sg_status feed_read(ob_thread *t, void *ud, sg_error *err)
{
    feed_batch *b = ud;
    sg_lc lc = lc_for(t, b->tenant, err);
    b->settings = json_deep_copy(sg_lc_settings(&lc));
    sg_lc_done(&lc);
    b->from = b->last = feed_cursor(b->settings);
    if (!json_object_get(b->settings, "changes_webhook_url")) return SG_OK;
    sg_event_query q = {.after_seq = b->from, .flags = SG_EVENT_CHANGE, .limit = FEED_BATCH};
    return t->w.srv->plugins->st->event_list(t->w.conn, b->tenant, &q, feed_event, b, err);
}

/* Move the cursor past the delivered batch, unless another node did. */
static sg_status feed_advance(ob_thread *t, void *ud, sg_error *err)
{
    feed_batch *b = ud;
    sg_lc lc = lc_for(t, b->tenant, err);
    int64_t now = feed_cursor(sg_lc_settings(&lc));
    sg_lc_done(&lc);
    if (now != b->from) return SG_OK;
    char text[24];
    snprintf(text, sizeof text, "%lld", (long long)b->last);
    return t->w.srv->plugins->st->setting_set(t->w.conn, b->tenant, "changes_webhook_cursor", text,
                                              err);
}

/*
** Deliver the next batch of one tenant's change feed through
** changes.on_changes. At least once: the cursor moves only after "ok", and
** a batch carries a key made of its bounds. true when a full batch went
** out (there may be more).
*/
static bool feed_one(ob_thread *t, feed *f)
{
    feed_batch b = {.tenant = f->tenant, .events = json_array()};
    bool more = false;
    if (in_txn(t, "reading the change feed", feed_read, &b) == SG_OK &&
        json_array_size(b.events) > 0) {
        char key[128];
        snprintf(key, sizeof key, "changes-%s-%lld-%lld", f->tenant, (long long)b.from + 1,
                 (long long)b.last);
        char cursor[24];
        snprintf(cursor, sizeof cursor, "%lld", (long long)b.last);
        json_t *batch = json_pack("{sssssOss}", "tenant", f->tenant, "key", key, "events", b.events,
                                  "cursor", cursor);
        sg_hook_ctx ctx = {.tenant = f->tenant,
                           .method = "CHANGES",
                           .request_id = key,
                           .entra_mode = "default",
                           .settings = b.settings};
        const json_t *args[1] = {batch};
        sg_delivery r = SG_DELIVERY_RETRY;
        char reason[256] = "";
        sg_error err;
        sg_lua_request_start(t->w.lua);
        if (!batch ||
            sg_lua_outbox_hook(t->w.lua, SG_HOOK_CHANGES, &ctx, args, 1, &r, reason, &err) != SG_OK)
            r = SG_DELIVERY_RETRY;
        json_decref(batch);
        if (r == SG_DELIVERY_OK &&
            in_txn(t, "advancing the change feed", feed_advance, &b) == SG_OK) {
            f->failures = 0;
            f->next_try_ms = 0;
            more = json_array_size(b.events) == FEED_BATCH;
        } else {
            /* "fail" is retried too: a change feed must not lose events. */
            const sg_outbox_config *oc = &t->w.srv->cfg->outbox;
            f->failures++;
            f->next_try_ms =
                sg_now_ms() + sg_outbox_backoff(f->failures, oc->retry_base_ms, oc->retry_max_ms);
            sg_log(SG_LOG_WARN, "outbox", "change feed of tenant %s (%s): %s%s%s", f->tenant, key,
                   delivery_word(r), reason[0] ? ": " : "", reason);
        }
    }
    json_decref(b.events);
    json_decref(b.settings);
    return more;
}

static void feeds(ob_thread *t)
{
    int64_t now = sg_now_ms();
    for (size_t i = 0; i < t->nfeeds; i++) {
        if (t->feeds[i].next_try_ms > now) continue;
        for (int rounds = 0; rounds < 10 && feed_one(t, &t->feeds[i]); rounds++) {
        }
    }
}

/* ---- threads ------------------------------------------------------------------------------- */

static void *run(void *arg)
{
    ob_thread *t = arg;
    const sg_outbox_config *oc = &t->w.srv->cfg->outbox;
    int64_t next_house = 0;
    for (;;) {
        uint64_t gen = sg_outbox_generation();
        pthread_mutex_lock(&g.mu);
        bool stop = g.stopping;
        pthread_mutex_unlock(&g.mu);
        if (stop) break;
        if (t->index == 0) {
            if (sg_now_ms() >= next_house) {
                housekeeping(t);
                next_house = sg_now_ms() + oc->housekeeping_ms;
            }
            feeds(t);
        }
        if (deliver_one(t)) continue; /* there may be more */
        sg_outbox_wait(gen, oc->poll_ms);
    }
    return NULL;
}

bool sg_outbox_start(sg_server *srv)
{
    size_t n = (size_t)srv->cfg->outbox.workers;
    if (n > MAX_THREADS) n = MAX_THREADS;
    g.srv = srv;
    g.stopping = false;
    g.threads = calloc(n ? n : 1, sizeof *g.threads);
    if (!g.threads) return false;
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    unsigned char rnd[4];
    char tag[9];
    sg_random(rnd, sizeof rnd);
    sg_hex(rnd, sizeof rnd, tag);
    for (size_t i = 0; i < n; i++) {
        ob_thread *t = &g.threads[i];
        t->w.srv = srv;
        t->w.lua = sg_lua_new();
        t->index = (int)i;
        snprintf(t->owner, sizeof t->owner, "%.40s:%ld:%s:%zu", host, (long)getpid(), tag, i);
        if (!t->w.lua || pthread_create(&t->t, NULL, run, t) != 0) {
            sg_log(SG_LOG_ERROR, "outbox", "cannot start outbox thread %zu", i);
            sg_lua_free(t->w.lua);
            t->w.lua = NULL;
            g.n = i;
            sg_outbox_stop();
            return false;
        }
        g.n = i + 1;
    }
    if (n == 0) sg_log(SG_LOG_WARN, "outbox", "outbox.workers = 0: invitations are not delivered");
    return true;
}

void sg_outbox_stop(void)
{
    pthread_mutex_lock(&g.mu);
    g.stopping = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    for (size_t i = 0; i < g.n; i++) {
        ob_thread *t = &g.threads[i];
        pthread_join(t->t, NULL);
        sg_lua_free(t->w.lua);
        free(t->feeds);
        if (t->w.conn) g.srv->plugins->st->disconnect(t->w.conn);
    }
    free(g.threads);
    g.threads = NULL;
    g.n = 0;
}
