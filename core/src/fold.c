#include "fold.h"

#include <locale.h>
#include <stdint.h>
#include <wctype.h>

#include "buf.h"

static locale_t g_utf8;

bool sg_fold_init(void)
{
    if (!g_utf8) g_utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    return g_utf8 != (locale_t)0;
}

/* Decode one code point at s[*i]; -1 for an invalid sequence (one byte is
 * consumed). */
static int32_t next_cp(const unsigned char *s, size_t n, size_t *i)
{
    unsigned char c = s[*i];
    int32_t cp;
    size_t len;
    if (c < 0x80) {
        (*i)++;
        return c;
    } else if ((c & 0xe0) == 0xc0) {
        cp = c & 0x1f, len = 2;
    } else if ((c & 0xf0) == 0xe0) {
        cp = c & 0x0f, len = 3;
    } else if ((c & 0xf8) == 0xf0) {
        cp = c & 0x07, len = 4;
    } else {
        (*i)++;
        return -1;
    }
    if (*i + len > n) {
        (*i)++;
        return -1;
    }
    for (size_t k = 1; k < len; k++) {
        unsigned char cc = s[*i + k];
        if ((cc & 0xc0) != 0x80) {
            (*i)++;
            return -1;
        }
        cp = (cp << 6) | (cc & 0x3f);
    }
    /* Reject overlong forms, surrogates and values past U+10FFFF. */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
        (*i)++;
        return -1;
    }
    *i += len;
    return cp;
}

static size_t put_cp(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static int32_t lower(int32_t cp)
{
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    return (int32_t)towlower_l((wint_t)cp, g_utf8);
}

sg_status sg_fold(const char *s, size_t n, sg_buf *out)
{
    const unsigned char *u = (const unsigned char *)s;
    if (sg_buf_reserve(out, n) != SG_OK) return SG_ENOMEM;
    for (size_t i = 0; i < n;) {
        size_t start = i;
        int32_t cp = next_cp(u, n, &i);
        if (cp < 0) {
            if (sg_buf_append(out, s + start, 1) != SG_OK) return SG_ENOMEM;
            continue;
        }
        char enc[4];
        size_t len = put_cp((uint32_t)lower(cp), enc);
        if (sg_buf_append(out, enc, len) != SG_OK) return SG_ENOMEM;
    }
    return SG_OK;
}

int sg_fold_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    const unsigned char *ua = (const unsigned char *)a, *ub = (const unsigned char *)b;
    size_t i = 0, j = 0;
    while (i < an && j < bn) {
        size_t si = i, sj = j;
        int32_t ca = next_cp(ua, an, &i), cb = next_cp(ub, bn, &j);
        ca = ca < 0 ? -1 - ua[si] : lower(ca);
        cb = cb < 0 ? -1 - ub[sj] : lower(cb);
        if (ca != cb) return ca < cb ? -1 : 1;
    }
    if (i < an) return 1;
    if (j < bn) return -1;
    return 0;
}

bool sg_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;)
        if (next_cp(u, n, &i) < 0) return false;
    return true;
}
