#include "tenants.h"

#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "util.h"

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

sg_status sg_tenant_create(const sg_plugins *p, sg_conn *c, const char *name, char *id,
                           sg_error *err)
{
    if (!valid_name(name))
        return sg_error_set(err, SG_EINVALID, NULL,
                            "a tenant name is 1 to 128 printable characters");
    unsigned char rnd[SG_TENANT_ID_LEN / 2];
    sg_random(rnd, sizeof rnd);
    sg_hex(rnd, sizeof rnd, id);
    char now[SG_TIME_MAX];
    sg_format_time(sg_now_ms(), now);
    sg_tenant t = {.id = id, .name = name, .created = now, .disabled = 0};
    return p->st->tenant_create(c, &t, err);
}

static int first_tenant(void *ud, const sg_tenant *t)
{
    snprintf(ud, 65, "%s", t->id);
    return 1;
}

sg_status sg_tenant_resolve(const sg_plugins *p, sg_conn *c, const char *id_or_name, char id[65],
                            sg_error *err)
{
    id[0] = '\0';
    sg_status s = p->st->tenant_get(c, id_or_name, first_tenant, id, err);
    if (s == SG_OK && !id[0]) s = SG_ENOTFOUND;
    if (s == SG_ENOTFOUND)
        sg_error_set(err, SG_ENOTFOUND, NULL, "no tenant with id or name \"%s\"", id_or_name);
    return s;
}

typedef struct live_scan {
    int64_t now;
    char ids[16][65];
    int64_t expires[16];
    size_t n; /* live tokens */
} live_scan;

static int count_live(void *ud, const sg_token *t)
{
    live_scan *ls = ud;
    bool live = t->kind == SG_TOKEN_SCIM && t->revoked_ms == 0 &&
                (t->expires_ms == 0 || t->expires_ms > ls->now);
    if (live && ls->n < 16) {
        snprintf(ls->ids[ls->n], 65, "%s", t->id);
        ls->expires[ls->n] = t->expires_ms;
        ls->n++;
    }
    return 0;
}

/* Make and store a token "<prefix><id>.<secret>"; only the HMAC of the
 * secret is stored. */
static sg_status new_token(const sg_plugins *p, sg_conn *c, const char *tenant, sg_token_kind kind,
                           const char *subject, const char *prefix, int64_t now, char *token,
                           char *token_id, sg_error *err)
{
    unsigned char idb[SG_TOKEN_ID_LEN / 2], secret[32];
    char secret_txt[48];
    sg_random(idb, sizeof idb);
    sg_random(secret, sizeof secret);
    sg_hex(idb, sizeof idb, token_id);
    sg_base64url(secret, sizeof secret, secret_txt);
    unsigned char hash[SG_HASH_LEN];
    sg_crypto_hash(secret_txt, strlen(secret_txt), hash);
    sg_token t = {.id = token_id,
                  .tenant = tenant,
                  .hash = hash,
                  .created_ms = now,
                  .kind = kind,
                  .subject = subject};
    sg_status s = p->st->token_create(c, &t, err);
    if (s == SG_OK) snprintf(token, SG_TOKEN_MAX, "%s%s.%s", prefix, token_id, secret_txt);
    return s;
}

sg_status sg_token_generate(const sg_plugins *p, sg_conn *c, const char *tenant,
                            int64_t expires_old_ms, char *token, char *token_id, sg_error *err)
{
    const sg_storage_vtab *st = p->st;
    sg_status s = st->begin(c, SG_TXN_WRITE, err);
    if (s != SG_OK) return s;
    live_scan ls = {.now = sg_now_ms()};
    s = st->token_list(c, tenant, count_live, &ls, err);
    size_t live = ls.n;
    if (s == SG_OK && expires_old_ms >= 0) {
        /* Give the old tokens their deadline; one that ends now no longer
         * counts against the limit. */
        int64_t deadline = ls.now + expires_old_ms;
        for (size_t i = 0; i < ls.n && s == SG_OK; i++) {
            if (ls.expires[i] == 0 || ls.expires[i] > deadline) {
                s = st->token_update(c, tenant, ls.ids[i], deadline, -1, err);
                ls.expires[i] = deadline;
            }
            if (ls.expires[i] <= ls.now) live--;
        }
    }
    if (s == SG_OK && live >= SG_MAX_LIVE_TOKENS)
        s = sg_error_set(err, SG_ECONFLICT, NULL,
                         "tenant already holds %d live tokens; revoke one first (token revoke) or "
                         "wait until its overlap deadline passes",
                         SG_MAX_LIVE_TOKENS);
    if (s != SG_OK) {
        st->rollback(c);
        return s;
    }
    s = new_token(p, c, tenant, SG_TOKEN_SCIM, NULL, SG_TOKEN_PREFIX, ls.now, token, token_id, err);
    if (s == SG_OK) s = st->commit(c, err);
    if (s != SG_OK) {
        st->rollback(c);
        token[0] = '\0';
        return s;
    }
    return SG_OK;
}

sg_status sg_token_revoke(const sg_plugins *p, sg_conn *c, const char *tenant, const char *id,
                          sg_error *err)
{
    sg_status s = p->st->token_update(c, tenant, id, -1, sg_now_ms(), err);
    if (s == SG_ENOTFOUND)
        sg_error_set(err, SG_ENOTFOUND, NULL, "tenant has no token with id %s", id);
    return s;
}

sg_status sg_admin_create(const sg_plugins *p, sg_conn *c, const char *tenant, const char *login,
                          char *password, char *token, sg_error *err)
{
    if (!valid_name(login))
        return sg_error_set(err, SG_EINVALID, NULL, "a login is 1 to 128 printable characters");
    /* A generated password: 24 random bytes, shown once. */
    unsigned char rnd[18];
    sg_random(rnd, sizeof rnd);
    sg_base64url(rnd, sizeof rnd, password);
    char hash[SG_PASSWORD_HASH_MAX];
    if (!sg_password_hash(password, hash))
        return sg_error_set(err, SG_EINTERNAL, NULL, "password hashing failed");
    const sg_storage_vtab *st = p->st;
    sg_status s = st->begin(c, SG_TXN_WRITE, err);
    if (s != SG_OK) return s;
    int64_t now = sg_now_ms();
    sg_admin a = {.tenant = tenant, .login = login, .password_hash = hash, .created_ms = now};
    char id[SG_TOKEN_ID_LEN + 1];
    s = st->admin_create(c, &a, err);
    if (s == SG_ECONFLICT)
        sg_error_set(err, SG_ECONFLICT, NULL, "%s already has an admin called \"%s\"",
                     tenant ? "the tenant" : "the operators", login);
    if (s == SG_OK)
        s = new_token(p, c, tenant, SG_TOKEN_ADMIN, login, SG_ADMIN_TOKEN_PREFIX, now, token, id,
                      err);
    if (s == SG_OK) s = st->commit(c, err);
    if (s != SG_OK) {
        st->rollback(c);
        password[0] = token[0] = '\0';
    }
    return s;
}

sg_status sg_device_enroll(const sg_plugins *p, sg_conn *c, const char *tenant, const char *name,
                           const unsigned char *public_key, char *device_id, char *token,
                           sg_error *err)
{
    if (!valid_name(name))
        return sg_error_set(err, SG_EINVALID, NULL,
                            "a device name is 1 to 128 printable characters");
    const sg_storage_vtab *st = p->st;
    int64_t now = sg_now_ms();
    sg_new_uuid(device_id);
    sg_device d = {.id = device_id,
                   .tenant = tenant,
                   .name = name,
                   .public_key = public_key,
                   .created_ms = now};
    char token_id[SG_TOKEN_ID_LEN + 1];
    sg_status s = st->begin(c, SG_TXN_WRITE, err);
    if (s == SG_OK) s = st->device_create(c, &d, err);
    if (s == SG_OK)
        s = new_token(p, c, tenant, SG_TOKEN_DEVICE, device_id, SG_DEVICE_TOKEN_PREFIX, now, token,
                      token_id, err);
    if (s == SG_OK) s = st->commit(c, err);
    if (s != SG_OK) {
        st->rollback(c);
        token[0] = '\0';
    }
    return s;
}

typedef struct device_tokens {
    const char *device;
    char ids[8][65];
    size_t n;
} device_tokens;

static int device_token(void *ud, const sg_token *t)
{
    device_tokens *dt = ud;
    if (t->kind == SG_TOKEN_DEVICE && t->subject && !strcmp(t->subject, dt->device) &&
        !t->revoked_ms && dt->n < SG_ARRAY_LEN(dt->ids))
        snprintf(dt->ids[dt->n++], sizeof dt->ids[0], "%s", t->id);
    return 0;
}

sg_status sg_device_revoke(const sg_plugins *p, sg_conn *c, const char *tenant, const char *id,
                           sg_error *err)
{
    const sg_storage_vtab *st = p->st;
    int64_t now = sg_now_ms();
    device_tokens dt = {.device = id};
    sg_status s = st->begin(c, SG_TXN_WRITE, err);
    if (s == SG_OK) s = st->device_revoke(c, tenant, id, now, err);
    if (s == SG_ENOTFOUND) sg_error_set(err, SG_ENOTFOUND, NULL, "no device %.64s", id);
    if (s == SG_OK) s = st->token_list(c, tenant, device_token, &dt, err);
    for (size_t i = 0; s == SG_OK && i < dt.n; i++)
        s = st->token_update(c, tenant, dt.ids[i], -1, now, err);
    if (s == SG_OK) s = st->commit(c, err);
    if (s != SG_OK) st->rollback(c);
    return s;
}
