#include "touch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "plugin.h"
#include "util.h"

#define TOUCH_INTERVAL_MS 60000 /* at most one write per token per minute */
#define FLUSH_EVERY_MS    2000

typedef struct entry {
    char id[65];
    char addr[48];
    int64_t recorded_ms; /* when the last write was queued             */
    int64_t when_ms;     /* pending use time, 0 when nothing is pending */
} entry;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static entry *table; /* open addressing, linear probing */
static size_t cap, used;
static bool running, stopping;
static pthread_t thread;
static struct sg_plugins *plugins;

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static entry *slot(entry *t, size_t c, const char *id)
{
    for (size_t i = hash(id) & (c - 1);; i = (i + 1) & (c - 1))
        if (!t[i].id[0] || !strcmp(t[i].id, id)) return &t[i];
}

static bool grow(void)
{
    size_t ncap = cap ? cap * 2 : 256;
    entry *nt = calloc(ncap, sizeof *nt);
    if (!nt) return false;
    for (size_t i = 0; i < cap; i++)
        if (table[i].id[0]) *slot(nt, ncap, table[i].id) = table[i];
    free(table);
    table = nt;
    cap = ncap;
    return true;
}

void sg_touch_note(const char *token_id, const char *addr)
{
    if (!token_id || strlen(token_id) >= sizeof table->id) return;
    int64_t now = sg_now_ms();
    pthread_mutex_lock(&mu);
    if (running && (used * 2 < cap || grow())) {
        entry *e = slot(table, cap, token_id);
        if (!e->id[0]) {
            snprintf(e->id, sizeof e->id, "%s", token_id);
            used++;
        }
        if (e->recorded_ms == 0 || now - e->recorded_ms >= TOUCH_INTERVAL_MS) {
            e->recorded_ms = now;
            e->when_ms = now;
            snprintf(e->addr, sizeof e->addr, "%s", addr ? addr : "");
        }
    }
    pthread_mutex_unlock(&mu);
}

/* Write every pending entry; called on the writer thread. */
static void flush(sg_conn *conn)
{
    for (;;) {
        entry e = {0};
        pthread_mutex_lock(&mu);
        for (size_t i = 0; i < cap; i++) {
            if (table[i].id[0] && table[i].when_ms) {
                e = table[i];
                table[i].when_ms = 0;
                break;
            }
        }
        pthread_mutex_unlock(&mu);
        if (!e.id[0]) return;
        sg_error err;
        sg_status s = plugins->st->token_touch(conn, e.id, e.when_ms, e.addr, &err);
        if (s != SG_OK && s != SG_ENOTFOUND)
            sg_log(SG_LOG_WARN, "touch", "recording token use failed: %s", err.detail);
    }
}

static void *writer(void *arg)
{
    sg_conn *conn = arg;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += FLUSH_EVERY_MS / 1000;
        pthread_cond_timedwait(&cv, &mu, &ts);
        pthread_mutex_unlock(&mu);
        flush(conn);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    flush(conn);
    plugins->st->disconnect(conn);
    return NULL;
}

bool sg_touch_start(struct sg_plugins *p)
{
    sg_conn *conn;
    sg_error err;
    if (p->st->connect(p->store, &conn, &err) != SG_OK) {
        sg_log(SG_LOG_ERROR, "touch", "cannot connect to storage: %s", err.detail);
        return false;
    }
    plugins = p;
    pthread_mutex_lock(&mu);
    running = true;
    stopping = false;
    bool ok = grow();
    pthread_mutex_unlock(&mu);
    if (!ok || pthread_create(&thread, NULL, writer, conn) != 0) {
        p->st->disconnect(conn);
        running = false;
        return false;
    }
    return true;
}

void sg_touch_stop(void)
{
    pthread_mutex_lock(&mu);
    if (!running) {
        pthread_mutex_unlock(&mu);
        return;
    }
    stopping = true;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(thread, NULL);
    pthread_mutex_lock(&mu);
    running = false;
    free(table);
    table = NULL;
    cap = used = 0;
    pthread_mutex_unlock(&mu);
}
