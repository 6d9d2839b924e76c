#include "crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "config.h"
#include "util.h"

#define KEY_LEN 32

static unsigned char g_key[KEY_LEN];

bool sg_mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return false;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return false;
        *p = '/';
    }
    return mkdir(tmp, 0700) == 0 || errno == EEXIST;
}

static bool key_from_text(const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) n--;
    return sg_unhex(s, n, g_key, KEY_LEN);
}

static bool key_from_file(const char *path, char *err, size_t errlen)
{
    char *text;
    size_t n;
    if (!sg_read_file(path, &text, &n)) {
        snprintf(err, errlen, "cannot read server key %s: %s", path, strerror(errno));
        return false;
    }
    bool ok = key_from_text(text, n);
    OPENSSL_cleanse(text, n);
    free(text);
    if (!ok) snprintf(err, errlen, "server key %s must hold 64 hex digits", path);
    return ok;
}

bool sg_crypto_init(const sg_config *cfg, char *err, size_t errlen)
{
    if (cfg->server_key) {
        const char *k = cfg->server_key;
        if (strlen(k) == 2 * KEY_LEN && key_from_text(k, strlen(k))) return true;
        return key_from_file(k, err, errlen);
    }
    if (!sg_mkdirs(cfg->data)) {
        snprintf(err, errlen, "cannot create data directory %s: %s", cfg->data, strerror(errno));
        return false;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/server.key", cfg->data);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        /* First start: make a key. O_EXCL makes concurrent first starts
         * agree on one file; the loser reads the winner's key below. */
        unsigned char key[KEY_LEN];
        char hex[2 * KEY_LEN + 2];
        sg_random(key, sizeof key);
        sg_hex(key, sizeof key, hex);
        hex[2 * KEY_LEN] = '\n';
        hex[2 * KEY_LEN + 1] = '\0';
        bool ok = write(fd, hex, strlen(hex)) == (ssize_t)strlen(hex) && fsync(fd) == 0;
        close(fd);
        OPENSSL_cleanse(key, sizeof key);
        OPENSSL_cleanse(hex, sizeof hex);
        if (!ok) {
            unlink(path);
            snprintf(err, errlen, "cannot write server key %s", path);
            return false;
        }
    } else if (errno != EEXIST) {
        snprintf(err, errlen, "cannot create server key %s: %s", path, strerror(errno));
        return false;
    }
    return key_from_file(path, err, errlen);
}

void sg_crypto_hash(const void *secret, size_t len, unsigned char out[SG_HASH_LEN])
{
    unsigned int outlen = SG_HASH_LEN;
    HMAC(EVP_sha256(), g_key, KEY_LEN, secret, len, out, &outlen);
}

int sg_crypto_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

#define PBKDF2_ITERATIONS 600000 /* OWASP's figure for PBKDF2-HMAC-SHA-256 */

static bool pbkdf2(const char *password, const unsigned char *salt, size_t saltlen, int iterations,
                   unsigned char out[32])
{
    return PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)saltlen, iterations,
                             EVP_sha256(), 32, out) == 1;
}

bool sg_password_hash(const char *password, char out[SG_PASSWORD_HASH_MAX])
{
    unsigned char salt[16], dk[32];
    char salt_txt[32], dk_txt[48];
    sg_random(salt, sizeof salt);
    if (!pbkdf2(password, salt, sizeof salt, PBKDF2_ITERATIONS, dk)) return false;
    sg_base64url(salt, sizeof salt, salt_txt);
    sg_base64url(dk, sizeof dk, dk_txt);
    snprintf(out, SG_PASSWORD_HASH_MAX, "pbkdf2-sha256$%d$%s$%s", PBKDF2_ITERATIONS, salt_txt,
             dk_txt);
    OPENSSL_cleanse(dk, sizeof dk);
    return true;
}

bool sg_password_verify(const char *password, const char *stored)
{
    int iterations;
    char salt_txt[64], dk_txt[64];
    if (sscanf(stored, "pbkdf2-sha256$%d$%63[^$]$%63s", &iterations, salt_txt, dk_txt) != 3 ||
        iterations < 1 || iterations > 10000000)
        return false;
    unsigned char salt[48], dk[32];
    size_t saltlen;
    if (!sg_unbase64(salt_txt, salt, sizeof salt, &saltlen)) return false;
    if (!pbkdf2(password, salt, saltlen, iterations, dk)) return false;
    char dk_now[48];
    sg_base64url(dk, sizeof dk, dk_now);
    OPENSSL_cleanse(dk, sizeof dk);
    return strlen(dk_now) == strlen(dk_txt) && sg_crypto_equal(dk_now, dk_txt, strlen(dk_txt));
}

/* ---- Ed25519 ---------------------------------------------------------------- */

bool sg_ed25519_public(const unsigned char priv[SG_ED25519_KEY_LEN],
                       unsigned char pub[SG_ED25519_KEY_LEN])
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, SG_ED25519_KEY_LEN);
    size_t n = SG_ED25519_KEY_LEN;
    bool ok = k && EVP_PKEY_get_raw_public_key(k, pub, &n) == 1 && n == SG_ED25519_KEY_LEN;
    EVP_PKEY_free(k);
    return ok;
}

bool sg_ed25519_keygen(unsigned char priv[SG_ED25519_KEY_LEN],
                       unsigned char pub[SG_ED25519_KEY_LEN])
{
    sg_random(priv, SG_ED25519_KEY_LEN);
    return sg_ed25519_public(priv, pub);
}

bool sg_ed25519_sign(const unsigned char priv[SG_ED25519_KEY_LEN], const void *msg, size_t len,
                     unsigned char sig[SG_ED25519_SIG_LEN])
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, SG_ED25519_KEY_LEN);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t n = SG_ED25519_SIG_LEN;
    bool ok = k && md && EVP_DigestSignInit(md, NULL, NULL, NULL, k) == 1 &&
              EVP_DigestSign(md, sig, &n, msg, len) == 1 && n == SG_ED25519_SIG_LEN;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    return ok;
}

bool sg_ed25519_verify(const unsigned char pub[SG_ED25519_KEY_LEN], const void *msg, size_t len,
                       const unsigned char sig[SG_ED25519_SIG_LEN])
{
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, SG_ED25519_KEY_LEN);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = k && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, k) == 1 &&
              EVP_DigestVerify(md, sig, SG_ED25519_SIG_LEN, msg, len) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    return ok;
}
