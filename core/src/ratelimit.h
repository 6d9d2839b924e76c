/*
** Per-tenant rate limits (DESIGN §8): a token bucket per tenant, holding at
** most `burst` tokens and refilled at `rps` tokens a second. Each SCIM
** request takes one token; a request that finds less than one is refused
** (429) with the number of seconds after which a token will be there.
**
** Requests are counted after authentication, against the tenant the token
** belongs to (scim.c). So a stranger without a token can neither spend a
** tenant's budget (starving its IdP) nor create a bucket for a made-up
** tenant id; unauthenticated floods are met by the connection cap and the
** timeouts instead.
**
** Memory is bounded whatever the traffic: the buckets live in a fixed
** table of SG_RL_SETS sets of SG_RL_WAYS entries (a set-associative cache),
** allocated once. A tenant hashes to one set; when the set is full, the
** entry seen least recently is reused. A bucket idle for burst / rps seconds
** is full again, which is what a new entry starts with, so forgetting an
** idle tenant changes nothing; only more than SG_RL_WAYS tenants of one set
** all busy at once would lose state (the forgotten one restarts full).
**
** Thread-safe: each set has its own mutex (no lock is shared by all
** requests). The limit is per process: with several nodes behind a load
** balancer, each node allows rps on its own.
*/
#ifndef SG_RATELIMIT_H
#define SG_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SG_RL_SETS 512
#define SG_RL_WAYS 8

typedef struct sg_ratelimit sg_ratelimit;

typedef struct sg_rl_verdict {
    bool allowed;
    /* Refused: whole seconds (>= 1) until the bucket holds a token again. */
    int retry_after;
    /* Refused, and the tenant was served before: the start of a burst of
     * refusals (log it once). */
    bool burst_started;
    /* Allowed after refusals: how many requests the burst refused (log it
     * once); 0 otherwise. */
    uint64_t burst_refused;
} sg_rl_verdict;

/* A limiter of `rps` requests a second with bursts of up to `burst`
 * (burst < 1 counts as 1). NULL when rps <= 0: no limit. */
sg_ratelimit *sg_ratelimit_new(double rps, double burst);
void sg_ratelimit_free(sg_ratelimit *rl);

/* Take one token for `tenant` at monotonic time `now_us` (microseconds;
 * never going back). Thread-safe. */
sg_rl_verdict sg_ratelimit_take(sg_ratelimit *rl, const char *tenant, int64_t now_us);

/* How many tenants the table holds now (tests). */
size_t sg_ratelimit_tracked(sg_ratelimit *rl);

#endif
