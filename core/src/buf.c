#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sg_status sg_buf_reserve(sg_buf *b, size_t n)
{
    if (b->cap - b->len > n) return SG_OK;
    size_t need = b->len + n + 1;
    if (need < b->len) return SG_ENOMEM; /* overflow */
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) return SG_ENOMEM;
    b->data = p;
    b->cap = cap;
    return SG_OK;
}

sg_status sg_buf_append(sg_buf *b, const void *p, size_t n)
{
    if (sg_buf_reserve(b, n) != SG_OK) return SG_ENOMEM;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return SG_OK;
}

sg_status sg_buf_puts(sg_buf *b, const char *s)
{
    return sg_buf_append(b, s, strlen(s));
}

sg_status sg_buf_putc(sg_buf *b, char c)
{
    return sg_buf_append(b, &c, 1);
}

sg_status sg_buf_vprintf(sg_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return SG_EINTERNAL;
    if (sg_buf_reserve(b, (size_t)n) != SG_OK) return SG_ENOMEM;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return SG_OK;
}

sg_status sg_buf_printf(sg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sg_status s = sg_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return s;
}

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0 when it is
 * not one (a stray continuation byte, a truncated or overlong form, a
 * surrogate, past U+10FFFF). s[0] >= 0x80. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] >= 0xc2 && s[0] <= 0xdf   ? 2
                 : s[0] >= 0xe0 && s[0] <= 0xef ? 3
                 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
                                                : 0;
    if (len == 0 || len > n) return 0;
    for (size_t k = 1; k < len; k++)
        if ((s[k] & 0xc0) != 0x80) return 0;
    /* the second byte's range rules out overlong forms, surrogates and
     * code points past U+10FFFF */
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
        return 0;
    return len;
}

sg_status sg_buf_json_str(sg_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case: every byte becomes \u00XX (or \ufffd). */
    if (n > (SIZE_MAX - 2) / 6 || sg_buf_reserve(b, n * 6 + 2) != SG_OK) return SG_ENOMEM;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            *o++ = '\\';
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            *o++ = '\\';
            break;
        case '\n':
            *o++ = '\\';
            *o++ = 'n';
            break;
        case '\r':
            *o++ = '\\';
            *o++ = 'r';
            break;
        case '\t':
            *o++ = '\\';
            *o++ = 't';
            break;
        default:
            if (c < 0x20) {
                *o++ = '\\';
                *o++ = 'u';
                *o++ = '0';
                *o++ = '0';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            } else if (c < 0x80) {
                *o++ = (char)c;
            } else {
                /* JSON text is UTF-8 (RFC 8259 §8.1): bytes that are not,
                 * from a client's path or a detail cut short, become
                 * U+FFFD one byte at a time. */
                size_t len = utf8_len((const unsigned char *)s + i, n - i);
                if (len == 0) {
                    memcpy(o, "\\ufffd", 6);
                    o += 6;
                } else {
                    memcpy(o, s + i, len);
                    o += len;
                    i += len - 1;
                }
            }
        }
    }
    *o++ = '"';
    *o = '\0';
    b->len = (size_t)(o - b->data);
    return SG_OK;
}

void sg_buf_reset(sg_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void sg_buf_free(sg_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *sg_buf_steal(sg_buf *b)
{
    if (!b->data && sg_buf_reserve(b, 0) != SG_OK) return NULL;
    char *p = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
