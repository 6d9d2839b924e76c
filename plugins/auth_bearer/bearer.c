/*
** auth_bearer: the gateway's per-tenant SCIM tokens.
**
** A token is "sgt_<token-id>.<secret>". The plugin looks the id up through
** the host (host->token_lookup, on the calling thread's storage
** connection), hashes the presented secret with host->token_hash (HMAC-SHA-256
** under the server key) and compares it with the stored hash in constant
** time. It never logs or returns the secret. Any other credential, or none,
** is declined so that another auth plugin may take it.
*/
#include <string.h>
#include <strings.h>

#include "scimgate/plugin.h"

#define PREFIX     "sgt_"
#define ID_LEN     16
#define SECRET_MAX 128

struct sg_auth {
    const sg_host *host;
};

static struct sg_auth instance;

static sg_status bearer_open(const sg_host *host, const sg_kv *opts, size_t nopts, sg_auth **out,
                             sg_error *err)
{
    if (nopts > 0)
        return sg_error_set(err, SG_EINVALID, NULL, "auth.bearer has no options (got %s)",
                            opts[0].key);
    instance.host = host;
    *out = &instance;
    return SG_OK;
}

static void bearer_close(sg_auth *a)
{
    (void)a;
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static sg_auth_result bearer_authenticate(sg_auth *a, const sg_request_info *ri, sg_conn *conn,
                                          sg_principal *out, sg_error *err)
{
    const char *h = ri->header(ri, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7)) return SG_AUTH_DECLINED;
    const char *tok = h + 7;
    while (*tok == ' ') tok++;
    size_t len = strlen(tok);
    while (len > 0 && tok[len - 1] == ' ') len--;
    size_t pl = strlen(PREFIX);
    if (len < pl || memcmp(tok, PREFIX, pl)) return SG_AUTH_DECLINED; /* not our kind */

    char id[ID_LEN + 1];
    const char *p = tok + pl;
    size_t i = 0;
    for (; i < ID_LEN && pl + i < len && is_hex(p[i]); i++) id[i] = p[i];
    id[i] = '\0';
    const char *secret = p + ID_LEN + 1;
    size_t secret_len = len - pl - ID_LEN - 1;
    if (i != ID_LEN || len <= pl + ID_LEN + 1 || p[ID_LEN] != '.' || secret_len > SECRET_MAX) {
        sg_error_set(err, SG_EUNAUTH, NULL, "malformed token");
        return SG_AUTH_DENIED;
    }
    sg_token_info info;
    sg_status s = a->host->token_lookup(conn, id, &info, err);
    if (s == SG_ENOTFOUND) {
        sg_error_set(err, SG_EUNAUTH, NULL, "the token is not valid");
        return SG_AUTH_DENIED;
    }
    if (s != SG_OK) return SG_AUTH_ERROR;
    if (info.kind != SG_TOKEN_SCIM) {
        /* An admin or device token's id presented as a SCIM token. */
        sg_error_set(err, SG_EUNAUTH, NULL, "the token is not valid");
        return SG_AUTH_DENIED;
    }
    unsigned char hash[SG_HASH_LEN];
    a->host->token_hash(secret, secret_len, hash);
    if (!a->host->ct_equal(hash, info.hash, SG_HASH_LEN)) {
        sg_error_set(err, SG_EUNAUTH, NULL, "the token is not valid");
        return SG_AUTH_DENIED;
    }
    if (info.revoked) {
        sg_error_set(err, SG_EUNAUTH, NULL, "the token was revoked");
        return SG_AUTH_DENIED;
    }
    if (info.expires_ms && info.expires_ms <= a->host->now_ms()) {
        sg_error_set(err, SG_EUNAUTH, NULL, "the token has expired");
        return SG_AUTH_DENIED;
    }
    if (info.tenant_disabled) {
        sg_error_set(err, SG_EUNAUTH, NULL, "the tenant is disabled");
        return SG_AUTH_DENIED;
    }
    memcpy(out->tenant, info.tenant, sizeof out->tenant);
    out->tenant[sizeof out->tenant - 1] = '\0';
    memcpy(out->token_id, id, sizeof id);
    out->scopes = SG_SCOPE_SCIM;
    a->host->token_touch(id, ri->peer_addr);
    return SG_AUTH_GRANTED;
}

static const sg_auth_vtab vtab = {
    .abi_major = SG_ABI_MAJOR,
    .abi_minor = SG_ABI_MINOR,
    .size = sizeof(sg_auth_vtab),
    .name = "bearer",
    .open = bearer_open,
    .close = bearer_close,
    .authenticate = bearer_authenticate,
};

SG_PLUGIN_EXPORT sg_status sg_plugin_init(const sg_host *host, sg_plugin_reg *out)
{
    if (host->abi_major != SG_ABI_MAJOR) return SG_EVERSION;
    out->abi_major = SG_ABI_MAJOR;
    out->abi_minor = SG_ABI_MINOR;
    out->size = sizeof *out;
    out->kind = SG_PLUGIN_AUTH;
    out->name = "bearer";
    out->vtab = &vtab;
    return SG_OK;
}
