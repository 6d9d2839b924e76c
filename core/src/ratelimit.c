#include "ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "util.h"

typedef struct bucket {
    char tenant[SG_TENANT_ID_MAX + 1]; /* "" when the entry is free */
    double tokens;
    int64_t last_us;  /* when tokens was last brought up to date */
    uint64_t refused; /* refusals since the tenant was last served */
} bucket;

typedef struct rl_set {
    pthread_mutex_t mu;
    bucket ways[SG_RL_WAYS];
} rl_set;

struct sg_ratelimit {
    double rps, burst;
    rl_set sets[SG_RL_SETS];
};

sg_ratelimit *sg_ratelimit_new(double rps, double burst)
{
    if (!(rps > 0)) return NULL;
    /* calloc: the table's pages become resident only as sets are used. */
    sg_ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl) return NULL;
    rl->rps = rps;
    rl->burst = burst < 1 ? 1 : burst;
    for (size_t i = 0; i < SG_RL_SETS; i++) pthread_mutex_init(&rl->sets[i].mu, NULL);
    return rl;
}

void sg_ratelimit_free(sg_ratelimit *rl)
{
    if (!rl) return;
    for (size_t i = 0; i < SG_RL_SETS; i++) pthread_mutex_destroy(&rl->sets[i].mu);
    free(rl);
}

/* The tenant's entry in `set`, or a new one in a free or the least
 * recently seen way (starting full). */
static bucket *find(sg_ratelimit *rl, rl_set *set, const char *tenant, int64_t now_us)
{
    bucket *victim = &set->ways[0];
    for (size_t i = 0; i < SG_RL_WAYS; i++) {
        bucket *b = &set->ways[i];
        if (b->tenant[0] && !strcmp(b->tenant, tenant)) return b;
        if (victim->tenant[0] && (!b->tenant[0] || b->last_us < victim->last_us)) victim = b;
    }
    snprintf(victim->tenant, sizeof victim->tenant, "%s", tenant);
    victim->tokens = rl->burst;
    victim->last_us = now_us;
    victim->refused = 0;
    return victim;
}

sg_rl_verdict sg_ratelimit_take(sg_ratelimit *rl, const char *tenant, int64_t now_us)
{
    sg_rl_verdict v = {.allowed = true};
    if (!rl || !tenant || !*tenant) return v;
    /* Tenants are real (counted after authentication): a plain hash. */
    rl_set *set = &rl->sets[sg_hash_str(tenant) % SG_RL_SETS];
    pthread_mutex_lock(&set->mu);
    bucket *b = find(rl, set, tenant, now_us);
    if (now_us > b->last_us) {
        b->tokens += (double)(now_us - b->last_us) / 1e6 * rl->rps;
        if (b->tokens > rl->burst) b->tokens = rl->burst;
        b->last_us = now_us;
    }
    if (b->tokens >= 1) {
        b->tokens -= 1;
        v.burst_refused = b->refused;
        b->refused = 0;
    } else {
        v.allowed = false;
        v.burst_started = b->refused == 0;
        b->refused++;
        /* The time until the missing part of a token has trickled in. */
        double secs = ceil((1 - b->tokens) / rl->rps);
        v.retry_after = secs < 1 ? 1 : secs > 86400 ? 86400 : (int)secs;
    }
    pthread_mutex_unlock(&set->mu);
    return v;
}

size_t sg_ratelimit_tracked(sg_ratelimit *rl)
{
    size_t n = 0;
    if (!rl) return 0;
    for (size_t i = 0; i < SG_RL_SETS; i++) {
        pthread_mutex_lock(&rl->sets[i].mu);
        for (size_t j = 0; j < SG_RL_WAYS; j++) n += rl->sets[i].ways[j].tenant[0] != '\0';
        pthread_mutex_unlock(&rl->sets[i].mu);
    }
    return n;
}
