/*
** The user lifecycle (DESIGN §5): Staged, PendingApproval, Invited, Active,
** Suspended (remembering the state before), and Deleted as a tombstone.
**
** The state lives in the user's body, in the server-owned extension
** urn:scimgate:schemas:extension:lifecycle:2.0:User (state, priorState,
** detached, detachReason), so SCIM returns and filters it and every change
** to it is a new version of the user, written in the same transaction as
** whatever caused it, with its audit and change events.
*/
#ifndef SG_LIFECYCLE_H
#define SG_LIFECYCLE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "events.h"
#include "scimgate/plugin.h"

#define SG_LIFECYCLE_URN "urn:scimgate:schemas:extension:lifecycle:2.0:User"

#define SG_STATE_STAGED    "Staged"
#define SG_STATE_PENDING   "PendingApproval"
#define SG_STATE_INVITED   "Invited"
#define SG_STATE_ACTIVE    "Active"
#define SG_STATE_SUSPENDED "Suspended"

/* Defaults of the tenant settings approval_ttl and tombstone_grace. */
#define SG_APPROVAL_TTL_MS    (7 * 24 * 3600 * 1000LL)
#define SG_TOMBSTONE_GRACE_MS (30 * 24 * 3600 * 1000LL)

/* The user's state ("Staged" when the body has none yet). */
const char *sg_lc_state(const json_t *body);
bool sg_lc_detached(const json_t *body, const char **reason);

/* What a SCIM write of a user means for its lifecycle. */
typedef struct sg_lc_effects {
    char from[24], to[24]; /* state before ("" on create) and after      */
    bool suspended;        /* active went false                         */
    bool reactivated;      /* active went true                          */
    bool cancel_jobs;      /* a pending invitation must be cancelled    */
    bool invite;           /* auto-invite: create an invitation         */
} sg_lc_effects;

/*
** Set the lifecycle extension of `now` (the body about to be written) from
** `before` (the stored body, NULL on create) and `now`'s active flag, and
** say what else must happen. `auto_invite` is the tenant's setting.
*/
void sg_lc_scim_user(const json_t *before, json_t *now, bool auto_invite, sg_lc_effects *fx);

/* Where an invitation for this user goes: the primary email, else the work
 * one, else the first, else a userName that looks like an address. */
bool sg_lc_address(const json_t *body, char *out, size_t outlen);

/* Everything a lifecycle operation needs; sg_lc_done releases it. */
typedef struct sg_lc {
    const sg_storage_vtab *st;
    sg_conn *conn;
    const char *tenant;
    sg_actor actor;
    sg_error *err;
    json_t *settings; /* the tenant's settings, read on first use */
} sg_lc;

void sg_lc_done(sg_lc *lc);

/* The approval text a device signs for a job (DESIGN §5), into out. */
void sg_lc_to_sign(const char *tenant, const char *job_id, const char *user_id,
                   int64_t user_version, const char *address, int64_t expires_ms, char *out,
                   size_t outlen);

/* Create an invitation job (AwaitingApproval) for a user at `version`,
 * expiring after `ttl_ms`. OUT: job_id[37]. */
sg_status sg_lc_new_job(sg_lc *lc, const char *user_id, int64_t version, const char *address,
                        int64_t ttl_ms, char *job_id);

/* Cancel the user's open invitations (AwaitingApproval, Approved,
 * Sending), with a reason. */
sg_status sg_lc_cancel_jobs(sg_lc *lc, const char *user_id, const char *reason);

/*
** Change a user's lifecycle outside a SCIM write (an admin action, the
** outbox): read the user, let `edit` change its body (normally only the
** lifecycle extension `ext`), and write the next version (keys included)
** with a user.state_changed event when the state changed. `edit` returns
** SG_OK, or an error (then nothing is written). OUT: the new version in
** *version when not NULL.
*/
typedef sg_status (*sg_lc_edit_fn)(void *ud, json_t *body, json_t *ext, sg_error *err);
sg_status sg_lc_edit(sg_lc *lc, const char *user_id, sg_lc_edit_fn edit, void *ud,
                     int64_t *version);

/* Jobs copied out of storage (sg_lc_jobs_free releases them). */
typedef struct sg_lc_jobs {
    sg_job *j;
    char **strings; /* owned copies */
    size_t n, nstr;
} sg_lc_jobs;

sg_status sg_lc_job_get(sg_lc *lc, const char *job_id, sg_lc_jobs *out);
sg_status sg_lc_job_list(sg_lc *lc, const char *status, const char *user_id, sg_lc_jobs *out);
void sg_lc_jobs_free(sg_lc_jobs *l);
/* A storage callback (sg_job_fn) that appends a copy to the sg_lc_jobs ud. */
sg_status sg_lc_jobs_collect(void *ud, const sg_job *j);
/* An open job is one still heading for delivery. */
bool sg_lc_job_open(const sg_job *j);

/*
** Admin actions (DESIGN §5), each inside the caller's transaction; a
** refusal is SG_ECONFLICT (or SG_EINVALID, SG_ENOTFOUND) with a detail.
**   invite:   Staged -> PendingApproval with a new job (resend: from
**             Invited or PendingApproval, its open jobs cancelled).
**             OUT: job_id[37], address (SG_ADDRESS_MAX), *expires_ms.
**   job_end:  an open job ends `status` (Expired, Failed, Cancelled) with
**             `reason`; its PendingApproval user goes back to Staged.
**   activate: Invited -> Active.   detach / attach: see DESIGN §5.
**   restore:  a deleted user back from its tombstone.
*/
#define SG_ADDRESS_MAX 320
sg_status sg_lc_invite(sg_lc *lc, const char *user_id, bool resend, char *job_id, char *address,
                       int64_t *expires_ms);
sg_status sg_lc_job_end(sg_lc *lc, const sg_job *job, const char *status, const char *reason);
sg_status sg_lc_activate(sg_lc *lc, const char *user_id);
sg_status sg_lc_detach(sg_lc *lc, const char *user_id, const char *reason);
sg_status sg_lc_attach(sg_lc *lc, const char *user_id);
sg_status sg_lc_restore(sg_lc *lc, const char *user_id);

/*
** The outbox's part (outbox.c), each inside the caller's transaction.
**   dispatch_check: before delivering `job` (claimed, "Sending"): is the
**     user still waiting for exactly what was approved? A deleted,
**     suspended or no longer PendingApproval user cancels the job; a user
**     changed since approval (another version) cancels it and asks for a
**     new approval of the current version. *deliver says whether to go on;
**     then *user is the user's body (the caller releases it).
**   dispatch_done: record the hook's outcome: ok -> Delivered and the user
**     Invited; retry -> back to Approved after `retry_ms`, or Failed once
**     `max_attempts` are used; fail -> Failed. Failed sends the user back
**     to Staged, with the reason on the timeline.
**   job_expired: after storage expired a job (job_expire), the user goes
**     back to Staged and the timeline says why.
*/
sg_status sg_lc_dispatch_check(sg_lc *lc, const sg_job *job, bool *deliver, json_t **user);
sg_status sg_lc_dispatch_done(sg_lc *lc, const sg_job *job, int result, const char *reason,
                              int64_t retry_ms, int max_attempts);
sg_status sg_lc_job_expired(sg_lc *lc, const sg_job *job);

/*
** The tenant's settings (key = value text; DESIGN §5, README): auto_invite,
** approval_ttl, tombstone_grace, spike_threshold, spike_window,
** purge_paused, and whatever the hook scripts read as ctx.settings. Read
** once per sg_lc; a setting that does not parse counts as its default.
*/
const json_t *sg_lc_settings(sg_lc *lc);
/* Is `value` acceptable for `key`? The gateway's own keys are checked
 * (a duration, a number, a boolean word, a URL scheme); others (read by
 * scripts) are free text. false with the reason in why[whylen]. */
bool sg_lc_setting_valid(const char *key, const char *value, char *why, size_t whylen);
bool sg_lc_setting_bool(sg_lc *lc, const char *key, bool def);
int64_t sg_lc_setting_ms(sg_lc *lc, const char *key, int64_t def);
int64_t sg_lc_setting_int(sg_lc *lc, const char *key, int64_t def);

/*
** The deletion-spike brake: when user deletions and suspensions within the
** tenant's spike_window pass spike_threshold (0 turns the brake off), the
** purge of its tombstones pauses (purge_paused says why, until an admin
** clears it) and an alert.deletion_spike event is appended. Suspensions and
** deletions themselves still apply. Called after each one, in its
** transaction.
*/
sg_status sg_lc_spike_check(sg_lc *lc);

#define SG_SPIKE_THRESHOLD 100
#define SG_SPIKE_WINDOW_MS (3600 * 1000LL)

#endif
