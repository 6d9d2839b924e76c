/*
** The outbox (DESIGN §5): threads that are not request threads deliver the
** approved invitations through invite.on_invite, and do the housekeeping:
** approvals expire, tombstones and old events are purged, and the change
** feed goes to each tenant's webhook.
**
** Jobs are durable rows in storage. A thread claims one (a lease, so one
** job is held by one thread on any node), re-checks the user in a
** transaction (deleted, suspended: cancelled; changed since approval: sent
** back for approval), runs the hook outside any transaction, and records
** the outcome if it still holds the lease. Delivery is at least once: a
** crash between the hook and that record leaves the lease to expire and
** the job to be tried again, with the same idempotency key. Retries back
** off exponentially with jitter up to outbox.retry_max, and a job ends
** Failed after outbox.attempts.
*/
#ifndef SG_OUTBOX_H
#define SG_OUTBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "scim.h"

bool sg_outbox_start(sg_server *srv);
void sg_outbox_stop(void);

/* Something the outbox or a long-poll waits for happened in this process
 * (an invitation was created or approved): wake them now rather than at
 * their next poll. */
void sg_outbox_notify(void);
/* Long-polls: the number of notifications so far, and a wait of at most
 * `ms` until it passes `seen`. */
uint64_t sg_outbox_generation(void);
void sg_outbox_wait(uint64_t seen, int64_t ms);

/* The delay before attempt `attempt` + 1 (attempt ≥ 1): base · 2^(attempt-1)
 * capped at max, then a random part of it between a half and the whole
 * (jitter), so that retries of many jobs spread out. */
int64_t sg_outbox_backoff(int attempt, int64_t base_ms, int64_t max_ms);

#endif
