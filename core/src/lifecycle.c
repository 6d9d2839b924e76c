#include "lifecycle.h"

#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "json.h"
#include "log.h"
#include "resource.h"
#include "schema.h"
#include "util.h"

static json_t *ext_of(const json_t *body)
{
    return json_object_get(body, SG_LIFECYCLE_URN);
}

const char *sg_lc_state(const json_t *body)
{
    const char *s = json_string_value(json_object_get(ext_of(body), "state"));
    return s ? s : SG_STATE_STAGED;
}

bool sg_lc_detached(const json_t *body, const char **reason)
{
    const json_t *e = ext_of(body);
    if (reason) *reason = json_string_value(json_object_get(e, "detachReason"));
    return json_is_true(json_object_get(e, "detached"));
}

static bool is_active(const json_t *body)
{
    const json_t *a = json_object_get(body, "active");
    return !json_is_false(a); /* absent counts as active, as on create */
}

void sg_lc_scim_user(const json_t *before, json_t *now, bool auto_invite, sg_lc_effects *fx)
{
    memset(fx, 0, sizeof *fx);
    json_t *ext = json_object_get(now, SG_LIFECYCLE_URN);
    if (!json_is_object(ext)) {
        ext = json_object();
        json_object_set_new(now, SG_LIFECYCLE_URN, ext);
    }
    const char *from = before ? sg_lc_state(before) : NULL;
    bool was_active = before ? is_active(before) : true, active = is_active(now);
    const char *to = from ? from : SG_STATE_STAGED;
    if (!before && auto_invite && active) {
        to = SG_STATE_PENDING;
        fx->invite = true;
    }
    if (was_active && !active) {
        /* Suspended remembers where to come back to; an invitation that
         * was pending is cancelled, so the user comes back Staged. */
        const char *prior = from ? from : SG_STATE_STAGED;
        if (!strcmp(prior, SG_STATE_PENDING)) {
            prior = SG_STATE_STAGED;
            fx->cancel_jobs = true;
        }
        if (!strcmp(prior, SG_STATE_SUSPENDED)) prior = SG_STATE_STAGED;
        json_object_set_new(ext, "priorState", json_string(prior));
        to = SG_STATE_SUSPENDED;
        fx->suspended = before != NULL;
        fx->invite = false;
    } else if (!was_active && active) {
        const char *prior = json_string_value(json_object_get(ext, "priorState"));
        to = prior ? prior : SG_STATE_STAGED;
        fx->reactivated = true;
    }
    /* The string `to` may live in ext's priorState: copy before deleting. */
    json_t *state = json_string(to);
    if (strcmp(to, SG_STATE_SUSPENDED)) json_object_del(ext, "priorState");
    json_object_set_new(ext, "state", state);
    snprintf(fx->from, sizeof fx->from, "%s", from ? from : "");
    snprintf(fx->to, sizeof fx->to, "%s", json_string_value(state));
}

static bool looks_like_address(const char *s)
{
    const char *at = s ? strchr(s, '@') : NULL;
    return at && at != s && at[1] && !strchr(at + 1, '@') && !strpbrk(s, " <>\r\n");
}

bool sg_lc_address(const json_t *body, char *out, size_t outlen)
{
    const json_t *emails = json_object_get(body, "emails"), *pick = NULL, *e;
    size_t i;
    json_array_foreach(emails, i, e) if (json_is_true(json_object_get(e, "primary"))) pick = e;
    if (!pick) {
        json_array_foreach(emails, i, e)
        {
            const char *t = json_string_value(json_object_get(e, "type"));
            if (t && !strcasecmp(t, "work")) {
                pick = e;
                break;
            }
        }
    }
    if (!pick) pick = json_array_get(emails, 0);
    const char *a = json_string_value(json_object_get(pick, "value"));
    if (!looks_like_address(a)) a = json_string_value(json_object_get(body, "userName"));
    if (!looks_like_address(a)) return false;
    snprintf(out, outlen, "%s", a);
    return true;
}

void sg_lc_to_sign(const char *tenant, const char *job_id, const char *user_id,
                   int64_t user_version, const char *address, int64_t expires_ms, char *out,
                   size_t outlen)
{
    char t[SG_TIME_MAX];
    sg_format_time(expires_ms - expires_ms % 1000, t);
    /* DESIGN §5: "YYYY-MM-DDTHH:MM:SSZ", so drop the milliseconds. */
    char *dot = strchr(t, '.');
    if (dot) {
        dot[0] = 'Z';
        dot[1] = '\0';
    }
    snprintf(out, outlen, "scimgate-approval-v1\n%s\n%s\n%s\n%lld\n%s\n%s", tenant, job_id, user_id,
             (long long)user_version, address, t);
}

sg_status sg_lc_new_job(sg_lc *lc, const char *user_id, int64_t version, const char *address,
                        int64_t ttl_ms, char *job_id)
{
    unsigned char rnd[16];
    char key[33], to_sign[1024];
    sg_new_uuid(job_id);
    sg_random(rnd, sizeof rnd);
    sg_hex(rnd, sizeof rnd, key);
    int64_t now = sg_now_ms(), expires = now + ttl_ms;
    expires -= expires % 1000; /* the signed text carries whole seconds */
    sg_lc_to_sign(lc->tenant, job_id, user_id, version, address, expires, to_sign, sizeof to_sign);
    sg_job j = {.id = job_id,
                .tenant = lc->tenant,
                .user_id = user_id,
                .user_version = version,
                .address = address,
                .status = "AwaitingApproval",
                .key = key,
                .to_sign = to_sign,
                .created_ms = now,
                .expires_ms = expires,
                .next_attempt_ms = now,
                .updated_ms = now};
    sg_status s = lc->st->job_create(lc->conn, &j, lc->err);
    if (s != SG_OK) return s;
    json_t *data =
        json_pack("{sssssI}", "job", job_id, "address", address, "version", (json_int_t)version);
    s = sg_event_add(lc->st, lc->conn, lc->tenant, &lc->actor, "invitation.created", user_id, data,
                     lc->err);
    json_decref(data);
    return s;
}

/* ---- jobs ---------------------------------------------------------------------- */

static const char *keep(sg_lc_jobs *l, const char *s)
{
    if (!s) return NULL;
    char **p = realloc(l->strings, (l->nstr + 1) * sizeof *p);
    if (!p) return NULL;
    l->strings = p;
    return l->strings[l->nstr++] = sg_xstrdup(s);
}

sg_status sg_lc_jobs_collect(void *ud, const sg_job *j)
{
    sg_lc_jobs *l = ud;
    sg_job *p = realloc(l->j, (l->n + 1) * sizeof *p);
    if (!p) return SG_ENOMEM;
    l->j = p;
    sg_job *c = &l->j[l->n++];
    *c = *j;
    c->id = keep(l, j->id);
    c->tenant = keep(l, j->tenant);
    c->user_id = keep(l, j->user_id);
    c->address = keep(l, j->address);
    c->status = keep(l, j->status);
    c->key = keep(l, j->key);
    c->to_sign = keep(l, j->to_sign);
    c->approved_by = keep(l, j->approved_by);
    c->last_error = keep(l, j->last_error);
    c->lease_owner = keep(l, j->lease_owner);
    return SG_OK;
}

void sg_lc_jobs_free(sg_lc_jobs *l)
{
    for (size_t i = 0; i < l->nstr; i++) free(l->strings[i]);
    free(l->strings);
    free(l->j);
    memset(l, 0, sizeof *l);
}

sg_status sg_lc_job_get(sg_lc *lc, const char *job_id, sg_lc_jobs *out)
{
    memset(out, 0, sizeof *out);
    sg_status s = lc->st->job_get(lc->conn, lc->tenant, job_id, sg_lc_jobs_collect, out, lc->err);
    if (s == SG_OK && out->n == 0) s = SG_ENOTFOUND;
    if (s == SG_ENOTFOUND) sg_error_set(lc->err, SG_ENOTFOUND, NULL, "no invitation %.64s", job_id);
    return s;
}

sg_status sg_lc_job_list(sg_lc *lc, const char *status, const char *user_id, sg_lc_jobs *out)
{
    memset(out, 0, sizeof *out);
    return lc->st->job_list(lc->conn, lc->tenant, status, user_id, sg_lc_jobs_collect, out,
                            lc->err);
}

bool sg_lc_job_open(const sg_job *j)
{
    return !strcmp(j->status, "AwaitingApproval") || !strcmp(j->status, "Approved") ||
           !strcmp(j->status, "Sending");
}

/* Write a job's new status (and reason) if nobody changed it since it was
 * read, with an invitation.<status> event. */
static sg_status job_set(sg_lc *lc, const sg_job *job, const char *status, const char *reason)
{
    sg_job j = *job;
    int64_t now = sg_now_ms(), expected = j.updated_ms;
    j.status = status;
    if (reason) j.last_error = reason;
    j.updated_ms = now > expected ? now : expected + 1;
    j.lease_owner = NULL;
    j.lease_until_ms = 0;
    sg_status s = lc->st->job_update(lc->conn, &j, expected, lc->err);
    if (s == SG_EPRECOND)
        sg_error_set(lc->err, SG_ECONFLICT, NULL, "invitation %s changed meanwhile; read it again",
                     j.id);
    if (s != SG_OK) return s;
    char type[48];
    snprintf(type, sizeof type, "invitation.%s", status);
    for (char *p = type + 11; *p; p++) *p = (char)tolower((unsigned char)*p);
    json_t *data = json_pack("{ss}", "job", j.id);
    if (reason) json_object_set_new(data, "reason", json_string(reason));
    s = sg_event_add(lc->st, lc->conn, lc->tenant, &lc->actor, type, j.user_id, data, lc->err);
    json_decref(data);
    return s;
}

sg_status sg_lc_cancel_jobs(sg_lc *lc, const char *user_id, const char *reason)
{
    sg_lc_jobs l;
    sg_status s = sg_lc_job_list(lc, NULL, user_id, &l);
    for (size_t i = 0; s == SG_OK && i < l.n; i++)
        if (sg_lc_job_open(&l.j[i])) s = job_set(lc, &l.j[i], "Cancelled", reason);
    sg_lc_jobs_free(&l);
    return s;
}

typedef struct fetched {
    json_t *body;
    int64_t version;
    char created[SG_TIME_MAX];
    char id[65];
} fetched;

static sg_status fetch_cb(void *ud, const sg_resource *r)
{
    fetched *f = ud;
    f->body = json_loadb(r->json, r->json_len, 0, NULL);
    f->version = r->version;
    snprintf(f->created, sizeof f->created, "%s", r->created);
    snprintf(f->id, sizeof f->id, "%s", r->id);
    return f->body ? SG_OK : SG_EINTERNAL;
}

/* Write `body` as version `version` of user `id` (created at `created`):
 * a new row when `expected` is 0, else in place of version `expected`. */
static sg_status store_user(sg_lc *lc, json_t *body, const char *id, int64_t version,
                            const char *created, int64_t expected)
{
    const sg_rtdef *rt = sg_rt(SG_RT_USER);
    sg_keyset ks = {0};
    sg_buf text = {0};
    sg_status s = sg_resource_finish(rt, body, lc->err);
    if (s == SG_OK &&
        (sg_resource_keys(rt, body, id, &ks) != SG_OK || sg_json_dump(body, &text) != SG_OK))
        s = sg_error_set(lc->err, SG_ENOMEM, NULL, "out of memory");
    if (s == SG_OK) {
        char now[SG_TIME_MAX];
        sg_format_time(sg_now_ms(), now);
        sg_resource r = {.type = SG_RT_USER,
                         .id = id,
                         .version = version,
                         .created = created,
                         .modified = now,
                         .json = text.data,
                         .json_len = text.len,
                         .keys = ks.keys,
                         .nkeys = ks.n};
        s = expected ? lc->st->replace(lc->conn, lc->tenant, &r, expected, lc->err)
                     : lc->st->create(lc->conn, lc->tenant, &r, lc->err);
    }
    sg_keyset_free(&ks);
    sg_buf_free(&text);
    return s;
}

sg_status sg_lc_edit(sg_lc *lc, const char *user_id, sg_lc_edit_fn edit, void *ud, int64_t *version)
{
    fetched f = {0};
    sg_status s = lc->st->get(lc->conn, lc->tenant, SG_RT_USER, user_id, fetch_cb, &f, lc->err);
    if (s == SG_OK && !f.body) s = SG_ENOTFOUND;
    if (s == SG_ENOTFOUND) sg_error_set(lc->err, SG_ENOTFOUND, NULL, "no user %.64s", user_id);
    if (s != SG_OK) return s;
    json_t *ext = json_object_get(f.body, SG_LIFECYCLE_URN);
    if (!json_is_object(ext)) {
        ext = json_object();
        json_object_set_new(f.body, SG_LIFECYCLE_URN, ext);
    }
    json_t *before = json_deep_copy(f.body);
    char from[32];
    snprintf(from, sizeof from, "%s", sg_lc_state(f.body));
    s = edit(ud, f.body, ext, lc->err);
    int64_t v = f.version;
    if (s == SG_OK && !json_equal(before, f.body)) {
        /* a change is a new version; an edit that changed nothing writes nothing */
        v = f.version + 1;
        s = store_user(lc, f.body, f.id, v, f.created, f.version);
    }
    if (s == SG_OK && version) *version = v;
    if (s == SG_OK && strcmp(from, sg_lc_state(f.body))) {
        json_t *data = json_pack("{ssss}", "from", from, "to", sg_lc_state(f.body));
        s = sg_event_add(lc->st, lc->conn, lc->tenant, &lc->actor, "user.state_changed", user_id,
                         data, lc->err);
        json_decref(data);
    }
    json_decref(before);
    json_decref(f.body);
    return s;
}

/* ---- admin actions ---------------------------------------------------------------- */

static sg_status set_state(json_t *ext, const char *state)
{
    json_object_set_new(ext, "state", json_string(state));
    return SG_OK;
}

typedef struct invite_edit {
    bool resend;
    char address[SG_ADDRESS_MAX];
} invite_edit;

static sg_status invite_cb(void *ud, json_t *body, json_t *ext, sg_error *err)
{
    invite_edit *ie = ud;
    const char *st = sg_lc_state(body), *why;
    bool ok = ie->resend ? !strcmp(st, SG_STATE_INVITED) || !strcmp(st, SG_STATE_PENDING)
                         : !strcmp(st, SG_STATE_STAGED);
    if (!ok)
        return sg_error_set(err, SG_ECONFLICT, NULL,
                            ie->resend ? "the user is %s; only an Invited or PendingApproval "
                                         "user can be sent a new invitation"
                                       : "the user is %s; only a Staged user can be invited",
                            st);
    if (sg_lc_detached(body, &why))
        return sg_error_set(err, SG_ECONFLICT, NULL, "the user is detached from SCIM");
    if (!sg_lc_address(body, ie->address, sizeof ie->address))
        return sg_error_set(err, SG_EINVALID, NULL,
                            "the user has no email address (emails or an address-like userName)");
    return set_state(ext, SG_STATE_PENDING);
}

sg_status sg_lc_invite(sg_lc *lc, const char *user_id, bool resend, char *job_id, char *address,
                       int64_t *expires_ms)
{
    invite_edit ie = {.resend = resend};
    int64_t version;
    sg_status s = sg_lc_edit(lc, user_id, invite_cb, &ie, &version);
    if (s == SG_OK && resend) s = sg_lc_cancel_jobs(lc, user_id, "a new invitation was sent");
    if (s == SG_OK)
        s = sg_lc_new_job(lc, user_id, version, ie.address,
                          sg_lc_setting_ms(lc, "approval_ttl", SG_APPROVAL_TTL_MS), job_id);
    if (s == SG_OK) {
        snprintf(address, SG_ADDRESS_MAX, "%s", ie.address);
        sg_lc_jobs l;
        s = sg_lc_job_get(lc, job_id, &l);
        if (s == SG_OK) *expires_ms = l.j[0].expires_ms;
        sg_lc_jobs_free(&l);
    }
    return s;
}

/* A user waiting for its invitation (PendingApproval) moves on to ud's
 * state: back to Staged, or Invited; a user in another state stays. */
static sg_status from_pending_cb(void *ud, json_t *body, json_t *ext, sg_error *err)
{
    (void)err;
    if (!strcmp(sg_lc_state(body), SG_STATE_PENDING)) set_state(ext, ud);
    return SG_OK;
}

static sg_status unstage(sg_lc *lc, const char *user_id)
{
    return sg_lc_edit(lc, user_id, from_pending_cb, (void *)SG_STATE_STAGED, NULL);
}

/* Does the user have another open job than `except`? */
static sg_status other_open_job(sg_lc *lc, const char *user_id, const char *except, bool *has)
{
    sg_lc_jobs l;
    sg_status s = sg_lc_job_list(lc, NULL, user_id, &l);
    *has = false;
    for (size_t i = 0; s == SG_OK && i < l.n; i++)
        if (sg_lc_job_open(&l.j[i]) && strcmp(l.j[i].id, except)) *has = true;
    sg_lc_jobs_free(&l);
    return s;
}

sg_status sg_lc_job_end(sg_lc *lc, const sg_job *job, const char *status, const char *reason)
{
    if (!sg_lc_job_open(job))
        return sg_error_set(lc->err, SG_ECONFLICT, NULL, "invitation %s is already %s", job->id,
                            job->status);
    sg_status s = job_set(lc, job, status, reason);
    bool other = false;
    if (s == SG_OK) s = other_open_job(lc, job->user_id, job->id, &other);
    if (s == SG_OK && !other) {
        s = unstage(lc, job->user_id);
        if (s == SG_ENOTFOUND) s = SG_OK; /* deleted meanwhile: nothing to stage */
    }
    return s;
}

static sg_status activate_cb(void *ud, json_t *body, json_t *ext, sg_error *err)
{
    (void)ud;
    const char *st = sg_lc_state(body);
    if (!strcmp(st, SG_STATE_ACTIVE)) return SG_OK;
    if (strcmp(st, SG_STATE_INVITED))
        return sg_error_set(err, SG_ECONFLICT, NULL,
                            "the user is %s; only an Invited user can be reported activated", st);
    return set_state(ext, SG_STATE_ACTIVE);
}

sg_status sg_lc_activate(sg_lc *lc, const char *user_id)
{
    return sg_lc_edit(lc, user_id, activate_cb, NULL, NULL);
}

static sg_status detach_cb(void *ud, json_t *body, json_t *ext, sg_error *err)
{
    (void)body;
    (void)err;
    const char *reason = ud;
    if (reason) {
        json_object_set_new(ext, "detached", json_true());
        json_object_set_new(ext, "detachReason", json_string(reason));
    } else {
        json_object_del(ext, "detached");
        json_object_del(ext, "detachReason");
    }
    return SG_OK;
}

static sg_status detach_event(sg_lc *lc, const char *user_id, const char *reason)
{
    json_t *data = reason ? json_pack("{ss}", "reason", reason) : NULL;
    sg_status s = sg_event_add(lc->st, lc->conn, lc->tenant, &lc->actor,
                               reason ? "user.detached" : "user.attached", user_id, data, lc->err);
    json_decref(data);
    return s;
}

sg_status sg_lc_detach(sg_lc *lc, const char *user_id, const char *reason)
{
    if (!reason || !*reason || strlen(reason) > 500)
        return sg_error_set(lc->err, SG_EINVALID, NULL,
                            "a detach needs a reason (1 to 500 characters) for the timeline");
    sg_status s = sg_lc_edit(lc, user_id, detach_cb, (void *)reason, NULL);
    return s == SG_OK ? detach_event(lc, user_id, reason) : s;
}

sg_status sg_lc_attach(sg_lc *lc, const char *user_id)
{
    sg_status s = sg_lc_edit(lc, user_id, detach_cb, NULL, NULL);
    return s == SG_OK ? detach_event(lc, user_id, NULL) : s;
}

typedef struct tomb {
    json_t *body;
    int64_t version;
    char created[SG_TIME_MAX];
} tomb;

static sg_status tomb_cb(void *ud, const sg_resource *r)
{
    tomb *t = ud;
    t->body = json_loadb(r->json, r->json_len, 0, NULL);
    t->version = r->version;
    snprintf(t->created, sizeof t->created, "%s", r->created);
    return t->body ? SG_OK : SG_EINTERNAL;
}

sg_status sg_lc_restore(sg_lc *lc, const char *user_id)
{
    tomb t = {0};
    sg_status s =
        lc->st->tombstone_get(lc->conn, lc->tenant, SG_RT_USER, user_id, tomb_cb, &t, lc->err);
    if (s == SG_OK && !t.body) s = SG_ENOTFOUND;
    if (s == SG_ENOTFOUND)
        return sg_error_set(lc->err, SG_ENOTFOUND, NULL,
                            "no deleted user %.64s within the grace period", user_id);
    if (s != SG_OK) return s;
    /* Its invitations were cancelled with the deletion. */
    json_t *ext = json_object_get(t.body, SG_LIFECYCLE_URN);
    if (json_is_object(ext)) {
        const char *st = sg_lc_state(t.body);
        if (!strcmp(st, SG_STATE_PENDING)) set_state(ext, SG_STATE_STAGED);
        const char *prior = json_string_value(json_object_get(ext, "priorState"));
        if (prior && !strcmp(prior, SG_STATE_PENDING))
            json_object_set_new(ext, "priorState", json_string(SG_STATE_STAGED));
    }
    s = store_user(lc, t.body, user_id, t.version + 1, t.created, 0);
    if (s == SG_ECONFLICT) {
        char detail[SG_DETAIL_MAX];
        snprintf(detail, sizeof detail, "%s", lc->err->detail);
        sg_error_set(lc->err, SG_ECONFLICT, NULL,
                     "cannot restore: another user holds its unique values now (%s)", detail);
    }
    if (s == SG_OK) s = lc->st->tombstone_remove(lc->conn, lc->tenant, user_id, lc->err);
    if (s == SG_OK) {
        json_t *data = json_pack("{sIss}", "version", (json_int_t)(t.version + 1), "state",
                                 sg_lc_state(t.body));
        s = sg_event_add(lc->st, lc->conn, lc->tenant, &lc->actor, "user.undeleted", user_id, data,
                         lc->err);
        json_decref(data);
    }
    json_decref(t.body);
    return s;
}

/* ---- the outbox's part ----------------------------------------------------------------- */

sg_status sg_lc_dispatch_check(sg_lc *lc, const sg_job *job, bool *deliver, json_t **user)
{
    *deliver = false;
    *user = NULL;
    fetched f = {0};
    sg_status s =
        lc->st->get(lc->conn, lc->tenant, SG_RT_USER, job->user_id, fetch_cb, &f, lc->err);
    if (s == SG_ENOTFOUND || (s == SG_OK && !f.body))
        return job_set(lc, job, "Cancelled", "the user was deleted");
    if (s != SG_OK) return s;
    const char *st = sg_lc_state(f.body);
    char reason[SG_ADDRESS_MAX + 200], address[SG_ADDRESS_MAX];
    if (strcmp(st, SG_STATE_PENDING)) {
        snprintf(reason, sizeof reason, "the user is %s, no longer waiting for an invitation", st);
        s = job_set(lc, job, "Cancelled", reason);
    } else if (f.version != job->user_version) {
        /* The approval covered another version: ask again for this one. */
        bool has = sg_lc_address(f.body, address, sizeof address);
        snprintf(reason, sizeof reason,
                 "the user changed after approval (version %lld, now %lld)%s%s",
                 (long long)job->user_version, (long long)f.version,
                 has && strcmp(address, job->address) ? "; new address " : "",
                 has && strcmp(address, job->address) ? address : "");
        s = job_set(lc, job, "Cancelled", reason);
        char job_id[37];
        if (s == SG_OK && has)
            s = sg_lc_new_job(lc, job->user_id, f.version, address,
                              sg_lc_setting_ms(lc, "approval_ttl", SG_APPROVAL_TTL_MS), job_id);
        else if (s == SG_OK)
            s = unstage(lc, job->user_id);
    } else {
        *deliver = true;
        *user = f.body;
        return SG_OK;
    }
    json_decref(f.body);
    return s;
}

sg_status sg_lc_dispatch_done(sg_lc *lc, const sg_job *job, int result, const char *reason,
                              int64_t retry_ms, int max_attempts)
{
    if (result == 0) {
        sg_status s = job_set(lc, job, "Delivered", NULL);
        if (s == SG_OK)
            s = sg_lc_edit(lc, job->user_id, from_pending_cb, (void *)SG_STATE_INVITED, NULL);
        return s == SG_ENOTFOUND ? SG_OK : s;
    }
    char why[400];
    int attempts = job->attempts + 1;
    if (result == 1 && attempts < max_attempts) {
        sg_job j = *job;
        int64_t now = sg_now_ms(), expected = j.updated_ms;
        j.status = "Approved";
        j.attempts = attempts;
        j.last_error = reason && *reason ? reason : "the invite hook asked to retry";
        j.next_attempt_ms = now + retry_ms;
        j.updated_ms = now > expected ? now : expected + 1;
        j.lease_owner = NULL;
        j.lease_until_ms = 0;
        sg_status s = lc->st->job_update(lc->conn, &j, expected, lc->err);
        if (s != SG_OK) return s;
        json_t *data = json_pack("{sssisssI}", "job", j.id, "attempt", attempts, "reason",
                                 j.last_error, "retryInSeconds", (json_int_t)(retry_ms / 1000));
        s = sg_event_add(lc->st, lc->conn, lc->tenant, &lc->actor, "invitation.retry", j.user_id,
                         data, lc->err);
        json_decref(data);
        return s;
    }
    if (result == 1)
        snprintf(why, sizeof why, "gave up after %d attempts: %s", attempts,
                 reason && *reason ? reason : "the invite hook asked to retry");
    else
        snprintf(why, sizeof why, "%s", reason && *reason ? reason : "the invite hook failed it");
    sg_job j = *job;
    j.attempts = attempts;
    return sg_lc_job_end(lc, &j, "Failed", why);
}

sg_status sg_lc_job_expired(sg_lc *lc, const sg_job *job)
{
    json_t *data = json_pack("{ss}", "job", job->id);
    sg_status s = sg_event_add(lc->st, lc->conn, lc->tenant, &lc->actor, "invitation.expired",
                               job->user_id, data, lc->err);
    json_decref(data);
    bool other = false;
    if (s == SG_OK) s = other_open_job(lc, job->user_id, job->id, &other);
    if (s == SG_OK && !other) {
        s = unstage(lc, job->user_id);
        if (s == SG_ENOTFOUND) s = SG_OK;
    }
    return s;
}

/* ---- settings ----------------------------------------------------------------------- */

static int setting_cb(void *ud, const char *key, const char *value)
{
    json_object_set_new(ud, key, json_string(value));
    return 0;
}

void sg_lc_done(sg_lc *lc)
{
    json_decref(lc->settings);
    lc->settings = NULL;
}

const json_t *sg_lc_settings(sg_lc *lc)
{
    if (lc->settings) return lc->settings;
    lc->settings = json_object();
    sg_error e;
    if (lc->st->settings_list(lc->conn, lc->tenant, setting_cb, lc->settings, &e) != SG_OK) {
        sg_log(SG_LOG_WARN, "lifecycle", "tenant %s: settings unreadable, using defaults: %s",
               lc->tenant, e.detail);
        json_object_clear(lc->settings);
    }
    return lc->settings;
}

/* "true", "1", "yes", "on" and their opposites, in any case. */
static bool bool_word(const char *v, bool *out)
{
    static const char *const words[][2] = {
        {"true", "false"}, {"1", "0"}, {"yes", "no"}, {"on", "off"}};
    for (size_t i = 0; i < SG_ARRAY_LEN(words); i++) {
        for (int no = 0; no < 2; no++) {
            if (!strcasecmp(v, words[i][no])) {
                *out = !no;
                return true;
            }
        }
    }
    return false;
}

bool sg_lc_setting_valid(const char *key, const char *v, char *why, size_t whylen)
{
    int64_t n;
    bool b;
    const char *want = NULL;
    if (!strcmp(key, "auto_invite")) {
        if (!bool_word(v, &b)) want = "true or false";
    } else if (!strcmp(key, "approval_ttl") || !strcmp(key, "tombstone_grace") ||
               !strcmp(key, "spike_window")) {
        if (!sg_parse_duration_ms(v, &n) || n <= 0)
            want = "a positive duration such as 90s, 15m, 12h, 7d";
    } else if (!strcmp(key, "spike_threshold") || !strcmp(key, "changes_webhook_cursor")) {
        if (!sg_parse_i64(v, &n) || n < 0) want = "a whole number, 0 or more";
    } else if (!strcmp(key, "changes_webhook_url") || !strcmp(key, "invite_webhook_url")) {
        if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
            want = "an http:// or https:// URL";
    } else if (!strcmp(key, "invite_smtp_url")) {
        if (strncmp(v, "smtp://", 7) && strncmp(v, "smtps://", 8))
            want = "an smtp:// or smtps:// URL";
    }
    if (want) snprintf(why, whylen, "setting %s must be %s", key, want);
    return want == NULL;
}

static const char *setting(sg_lc *lc, const char *key)
{
    return json_string_value(json_object_get(sg_lc_settings(lc), key));
}

bool sg_lc_setting_bool(sg_lc *lc, const char *key, bool def)
{
    const char *v = setting(lc, key);
    bool b;
    return v && bool_word(v, &b) ? b : def;
}

int64_t sg_lc_setting_ms(sg_lc *lc, const char *key, int64_t def)
{
    const char *v = setting(lc, key);
    int64_t ms;
    return v && sg_parse_duration_ms(v, &ms) ? ms : def;
}

int64_t sg_lc_setting_int(sg_lc *lc, const char *key, int64_t def)
{
    const char *v = setting(lc, key);
    char *end;
    long long n = v ? strtoll(v, &end, 10) : 0;
    return v && *v && !*end && n >= 0 ? (int64_t)n : def;
}

/* ---- the deletion-spike brake ----------------------------------------------------------- */

static sg_status count_event(void *ud, const sg_event *e)
{
    (void)e;
    ++*(int64_t *)ud;
    return SG_OK;
}

sg_status sg_lc_spike_check(sg_lc *lc)
{
    int64_t threshold = sg_lc_setting_int(lc, "spike_threshold", SG_SPIKE_THRESHOLD);
    int64_t window = sg_lc_setting_ms(lc, "spike_window", SG_SPIKE_WINDOW_MS);
    if (threshold == 0 || setting(lc, "purge_paused")) return SG_OK;
    static const char *const types[] = {"user.deleted", "user.suspended", NULL};
    int64_t now = sg_now_ms(), n = 0;
    sg_event_query q = {.since_ms = now - window, .types = types, .limit = threshold + 1};
    sg_status s = lc->st->event_list(lc->conn, lc->tenant, &q, count_event, &n, lc->err);
    if (s != SG_OK || n <= threshold) return s;
    char why[160], when[SG_TIME_MAX];
    sg_format_time(now, when);
    snprintf(why, sizeof why, "more than %lld deletions or suspensions within %lld s (at %s)",
             (long long)threshold, (long long)(window / 1000), when);
    sg_log(SG_LOG_WARN, "lifecycle", "tenant %s: deletion spike, tombstone purges paused: %s",
           lc->tenant, why);
    s = lc->st->setting_set(lc->conn, lc->tenant, "purge_paused", why, lc->err);
    if (s != SG_OK) return s;
    json_object_set_new(lc->settings, "purge_paused", json_string(why));
    json_t *data = json_pack("{sIsIsI}", "count", (json_int_t)n, "threshold", (json_int_t)threshold,
                             "window_s", (json_int_t)(window / 1000));
    s = sg_event_add(lc->st, lc->conn, lc->tenant, &lc->actor, "alert.deletion_spike", NULL, data,
                     lc->err);
    json_decref(data);
    return s;
}
