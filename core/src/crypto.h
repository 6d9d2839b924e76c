/*
** Token hashing: HMAC-SHA-256 under the server key (DESIGN §3). The key is
** `server_key` from the configuration (64 hex digits, or a file holding
** them), else data/server.key, created once with mode 0600. Several nodes
** must share one key.
*/
#ifndef SG_CRYPTO_H
#define SG_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#include "scimgate/host.h"

struct sg_config;

/* Load (or create) the server key. Call once before any hashing. */
bool sg_crypto_init(const struct sg_config *cfg, char *err, size_t errlen);
void sg_crypto_hash(const void *secret, size_t len, unsigned char out[SG_HASH_LEN]);
int sg_crypto_equal(const void *a, const void *b, size_t n);

/* Passwords: PBKDF2-HMAC-SHA-256 with a random salt, as
 * "pbkdf2-sha256$<iterations>$<salt>$<hash>" (base64url). */
#define SG_PASSWORD_HASH_MAX 160
bool sg_password_hash(const char *password, char out[SG_PASSWORD_HASH_MAX]);
/* Constant-time check of a password against a stored string. */
bool sg_password_verify(const char *password, const char *stored);

/* Ed25519 (admin device approvals, DESIGN §5), raw keys: the 32-byte
 * private seed and the 32-byte public key; 64-byte signatures. */
#define SG_ED25519_KEY_LEN 32
#define SG_ED25519_SIG_LEN 64
bool sg_ed25519_keygen(unsigned char priv[SG_ED25519_KEY_LEN],
                       unsigned char pub[SG_ED25519_KEY_LEN]);
bool sg_ed25519_public(const unsigned char priv[SG_ED25519_KEY_LEN],
                       unsigned char pub[SG_ED25519_KEY_LEN]);
bool sg_ed25519_sign(const unsigned char priv[SG_ED25519_KEY_LEN], const void *msg, size_t len,
                     unsigned char sig[SG_ED25519_SIG_LEN]);
bool sg_ed25519_verify(const unsigned char pub[SG_ED25519_KEY_LEN], const void *msg, size_t len,
                       const unsigned char sig[SG_ED25519_SIG_LEN]);

/* Create `path` and missing parents with mode 0700; false with errno. */
bool sg_mkdirs(const char *path);

#endif
