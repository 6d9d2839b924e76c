/* Per-tenant token buckets (ratelimit.c), on a clock the tests move. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "ratelimit.h"

#define SEC 1000000LL

Test(ratelimit, no_limiter_without_a_rate)
{
    cr_assert_null(sg_ratelimit_new(0, 10));
    cr_assert_null(sg_ratelimit_new(-1, 10));
    sg_rl_verdict v = sg_ratelimit_take(NULL, "t", 0);
    cr_assert(v.allowed, "no limiter: everything passes");
}

Test(ratelimit, a_burst_then_429_with_retry_after_from_the_bucket)
{
    sg_ratelimit *rl = sg_ratelimit_new(2, 4); /* 2/s, bursts of 4 */
    int64_t t = 1000 * SEC;
    for (int i = 0; i < 4; i++) cr_assert(sg_ratelimit_take(rl, "a", t).allowed, "request %d", i);
    sg_rl_verdict v = sg_ratelimit_take(rl, "a", t);
    cr_assert_not(v.allowed);
    cr_assert_eq(v.retry_after, 1, "half a second to a token rounds up to 1");
    cr_assert(v.burst_started);
    v = sg_ratelimit_take(rl, "a", t + SEC / 4);
    cr_assert_not(v.allowed, "half a token after 250 ms");
    cr_assert_not(v.burst_started, "the same burst");
    /* 500 ms after the bucket emptied: one token. */
    v = sg_ratelimit_take(rl, "a", t + SEC / 2);
    cr_assert(v.allowed);
    cr_assert_eq(v.burst_refused, 2, "the end of a burst says how many were refused");
    v = sg_ratelimit_take(rl, "a", t + SEC / 2);
    cr_assert_not(v.allowed);
    cr_assert(v.burst_started, "a new burst of refusals");
    /* Idle for a long time: the bucket holds `burst`, not more. */
    t += 3600 * SEC;
    for (int i = 0; i < 4; i++) cr_assert(sg_ratelimit_take(rl, "a", t).allowed);
    cr_assert_not(sg_ratelimit_take(rl, "a", t).allowed);
    sg_ratelimit_free(rl);
}

Test(ratelimit, retry_after_grows_when_the_rate_is_below_one_token_a_second)
{
    sg_ratelimit *rl = sg_ratelimit_new(0.25, 1); /* a token every 4 s */
    cr_assert(sg_ratelimit_take(rl, "a", 0).allowed);
    sg_rl_verdict v = sg_ratelimit_take(rl, "a", SEC);
    cr_assert_not(v.allowed);
    cr_assert_eq(v.retry_after, 3, "3 s left of 4");
    cr_assert_not(sg_ratelimit_take(rl, "a", 4 * SEC - 1).allowed);
    cr_assert(sg_ratelimit_take(rl, "a", 4 * SEC).allowed);
    sg_ratelimit_free(rl);
}

Test(ratelimit, tenants_have_their_own_buckets)
{
    sg_ratelimit *rl = sg_ratelimit_new(1, 2);
    cr_assert(sg_ratelimit_take(rl, "a", 0).allowed);
    cr_assert(sg_ratelimit_take(rl, "a", 0).allowed);
    cr_assert_not(sg_ratelimit_take(rl, "a", 0).allowed);
    cr_assert(sg_ratelimit_take(rl, "b", 0).allowed, "b is not a");
    cr_assert(sg_ratelimit_take(rl, "b", 0).allowed);
    cr_assert_not(sg_ratelimit_take(rl, "b", 0).allowed);
    cr_assert_eq(sg_ratelimit_tracked(rl), 2);
    sg_ratelimit_free(rl);
}

Test(ratelimit, memory_stays_bounded_however_many_tenants_come)
{
    sg_ratelimit *rl = sg_ratelimit_new(1, 1);
    char t[40];
    for (int i = 0; i < 100000; i++) {
        snprintf(t, sizeof t, "tenant-%d", i);
        cr_assert(sg_ratelimit_take(rl, t, i).allowed, "a new tenant starts with a full bucket");
    }
    size_t n = sg_ratelimit_tracked(rl);
    cr_assert(n <= SG_RL_SETS * SG_RL_WAYS, "%zu tenants tracked", n);
    cr_assert(n > SG_RL_SETS * SG_RL_WAYS / 2, "the table is used: %zu", n);
    /* A busy tenant keeps its state while strangers come and go. */
    cr_assert(sg_ratelimit_take(rl, "busy", 200000).allowed);
    for (int i = 0; i < 5; i++) {
        snprintf(t, sizeof t, "passer-%d", i);
        sg_ratelimit_take(rl, t, 200000);
    }
    cr_assert_not(sg_ratelimit_take(rl, "busy", 200000).allowed,
                  "evicting the least recently seen spared the busy tenant");
    sg_ratelimit_free(rl);
}

typedef struct {
    sg_ratelimit *rl;
    atomic_int allowed;
} shared;

static void *hammer(void *p)
{
    shared *s = p;
    for (int i = 0; i < 10000; i++)
        if (sg_ratelimit_take(s->rl, "hot", 5 * SEC).allowed) atomic_fetch_add(&s->allowed, 1);
    return NULL;
}

Test(ratelimit, threads_share_one_bucket_exactly)
{
    shared s = {.rl = sg_ratelimit_new(1000, 250)};
    pthread_t th[8];
    for (int i = 0; i < 8; i++) pthread_create(&th[i], NULL, hammer, &s);
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    /* The clock stands still: exactly the burst gets through. */
    cr_assert_eq(atomic_load(&s.allowed), 250);
    sg_ratelimit_free(s.rl);
}
