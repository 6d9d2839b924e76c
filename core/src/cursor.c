#include "cursor.h"

#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "util.h"

#define MAC_BYTES 12

void sg_cursor_fingerprint(const char *const *parts, size_t n, char out[17])
{
    unsigned char h[SG_HASH_LEN];
    char buf[8192];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        /* Length-prefixed, so that ("ab","c") and ("a","bc") differ. */
        const char *p = parts[i] ? parts[i] : "";
        int w = snprintf(buf + o, sizeof buf - o, "%zu:%s|", strlen(p), p);
        if (w < 0 || (size_t)w >= sizeof buf - o) break;
        o += (size_t)w;
    }
    sg_crypto_hash(buf, o, h);
    sg_hex(h, 8, out);
}

static void mac(const char *payload, char out[24])
{
    unsigned char h[SG_HASH_LEN];
    sg_crypto_hash(payload, strlen(payload), h);
    sg_base64url(h, MAC_BYTES, out);
}

void sg_cursor_make(int64_t offset, int64_t now_s, const char *fp, char out[SG_CURSOR_MAX])
{
    char payload[96], m[24];
    snprintf(payload, sizeof payload, "%lld.%lld.%s", (long long)offset,
             (long long)(now_s + SG_CURSOR_TIMEOUT_S), fp);
    mac(payload, m);
    snprintf(out, SG_CURSOR_MAX, "%s.%s", payload, m);
}

sg_cursor_state sg_cursor_read(const char *cursor, const char *fp, int64_t now_s, int64_t *offset)
{
    const char *last = strrchr(cursor, '.');
    if (!last || (size_t)(last - cursor) >= 96) return SG_CURSOR_INVALID;
    char payload[96], m[24];
    memcpy(payload, cursor, (size_t)(last - cursor));
    payload[last - cursor] = '\0';
    mac(payload, m);
    if (strlen(last + 1) != strlen(m) || !sg_crypto_equal(last + 1, m, strlen(m)))
        return SG_CURSOR_INVALID;
    long long off, exp;
    char cfp[24];
    if (sscanf(payload, "%lld.%lld.%23s", &off, &exp, cfp) != 3 || off < 0 || strcmp(cfp, fp))
        return SG_CURSOR_INVALID;
    if (exp < now_s) return SG_CURSOR_EXPIRED;
    *offset = off;
    return SG_CURSOR_OK;
}
