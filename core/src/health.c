#include "health.h"

#include <pthread.h>
#include <string.h>

#include "util.h"

typedef struct slot {
    char tenant[65];
    int64_t seen_minute;
    sg_health_minute m[SG_HEALTH_MINUTES]; /* by minute % SG_HEALTH_MINUTES */
} slot;

#define PROBE   8 /* slots a tenant may take: one group */
#define NGROUPS (SG_HEALTH_TENANTS / PROBE)

/* Every SCIM request notes itself here: a lock per group of slots, not one
 * for the whole table, so that requests of different tenants rarely wait. */
static slot g_slots[SG_HEALTH_TENANTS];
static pthread_mutex_t g_locks[NGROUPS] = {[0 ... NGROUPS - 1] = PTHREAD_MUTEX_INITIALIZER};

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The tenant's group of slots, locked. */
static size_t lock_group(const char *tenant)
{
    size_t g = hash(tenant) % NGROUPS;
    pthread_mutex_lock(&g_locks[g]);
    return g;
}

/* The tenant's slot in group g (its lock held); with `create`, a free or the
 * stalest one. */
static slot *find(size_t g, const char *tenant, bool create)
{
    slot *stalest = NULL;
    for (size_t i = 0; i < PROBE; i++) {
        slot *s = &g_slots[g * PROBE + i];
        if (!strcmp(s->tenant, tenant)) return s;
        if (!stalest || s->seen_minute < stalest->seen_minute) stalest = s;
    }
    if (!create) return NULL;
    memset(stalest, 0, sizeof *stalest);
    snprintf(stalest->tenant, sizeof stalest->tenant, "%s", tenant);
    return stalest;
}

void sg_health_note(const char *tenant, int status)
{
    if (!tenant || !*tenant || strlen(tenant) >= 65) return;
    int64_t minute = sg_now_ms() / 60000;
    size_t g = lock_group(tenant);
    slot *s = find(g, tenant, true);
    s->seen_minute = minute;
    sg_health_minute *m = &s->m[minute % SG_HEALTH_MINUTES];
    if (m->minute != minute) *m = (sg_health_minute){.minute = minute};
    m->requests++;
    if (status == 401)
        m->unauthorized++;
    else if (status >= 500 || (status >= 400 && status != 404))
        m->errors++;
    pthread_mutex_unlock(&g_locks[g]);
}

void sg_health_get(const char *tenant, int64_t now_ms, sg_health_minute out[SG_HEALTH_MINUTES])
{
    int64_t now = now_ms / 60000;
    memset(out, 0, SG_HEALTH_MINUTES * sizeof *out);
    size_t g = lock_group(tenant);
    slot *s = find(g, tenant, false);
    for (int i = 0; s && i < SG_HEALTH_MINUTES; i++) {
        int64_t minute = now - (SG_HEALTH_MINUTES - 1) + i;
        const sg_health_minute *m = &s->m[minute % SG_HEALTH_MINUTES];
        if (m->minute == minute) out[i] = *m;
    }
    pthread_mutex_unlock(&g_locks[g]);
}
