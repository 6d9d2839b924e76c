/*
** Tenants and their SCIM tokens: the operations behind the CLI (and later
** the admin API). Tokens look like sgt_<id>.<secret>; only the HMAC of the
** secret is stored, and the secret is shown once. A tenant holds at most two
** live tokens, so a rotation overlaps without ever breaking Entra.
*/
#ifndef SG_TENANTS_H
#define SG_TENANTS_H

#include <stdbool.h>
#include <stdint.h>

#include "plugin.h"

#define SG_TENANT_ID_LEN       32     /* hex digits of a tenant id */
#define SG_TOKEN_PREFIX        "sgt_" /* a tenant's SCIM token */
#define SG_ADMIN_TOKEN_PREFIX  "sga_" /* an admin's API token */
#define SG_DEVICE_TOKEN_PREFIX "sgd_" /* an admin device's API token */
#define SG_TOKEN_ID_LEN        16     /* hex digits of a token id */
#define SG_TOKEN_MAX           96
#define SG_MAX_LIVE_TOKENS     2

/* Create a tenant named `name`. OUT: id[SG_TENANT_ID_LEN + 1]. */
sg_status sg_tenant_create(const sg_plugins *p, sg_conn *c, const char *name, char *id,
                           sg_error *err);
/* Resolve a tenant id or unique name to its id. */
sg_status sg_tenant_resolve(const sg_plugins *p, sg_conn *c, const char *id_or_name, char id[65],
                            sg_error *err);

/*
** Generate a token for `tenant`. With `expires_old_ms` >= 0 the tenant's
** live tokens are given that much time before they stop working (the
** rotation overlap). Refused (SG_ECONFLICT) when the tenant already holds
** two live tokens. OUT: token[SG_TOKEN_MAX] (the secret: show once).
*/
sg_status sg_token_generate(const sg_plugins *p, sg_conn *c, const char *tenant,
                            int64_t expires_old_ms, char *token, char *token_id, sg_error *err);
/*
** Create an admin of `tenant` (NULL: an operator, over every tenant) with a
** generated password (for the portal; stored only as a slow hash) and an API
** token. OUT: password[32], token[SG_TOKEN_MAX]: show once.
*/
sg_status sg_admin_create(const sg_plugins *p, sg_conn *c, const char *tenant, const char *login,
                          char *password, char *token, sg_error *err);

/*
** Enrol an admin device of `tenant` with its Ed25519 public key (32 bytes)
** and give it a device token (DESIGN §2), in one transaction. OUT:
** device_id[37], token[SG_TOKEN_MAX] (the secret: show once).
*/
sg_status sg_device_enroll(const sg_plugins *p, sg_conn *c, const char *tenant, const char *name,
                           const unsigned char *public_key, char *device_id, char *token,
                           sg_error *err);
/* Revoke a device and its tokens at once. */
sg_status sg_device_revoke(const sg_plugins *p, sg_conn *c, const char *tenant, const char *id,
                           sg_error *err);

sg_status sg_token_revoke(const sg_plugins *p, sg_conn *c, const char *tenant, const char *id,
                          sg_error *err);

#endif
