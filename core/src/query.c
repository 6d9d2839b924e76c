#include "query.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int hexv(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

char *sg_form_decode(const char *s, size_t n, size_t *outlen)
{
    char *d = malloc(n + 1);
    if (!d) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            d[o++] = ' ';
        } else if (c == '%') {
            int hi = i + 2 < n ? hexv(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexv(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi | lo) == 0) { /* %00 is never legitimate */
                free(d);
                return NULL;
            }
            d[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            d[o++] = c;
        }
    }
    d[o] = '\0';
    if (outlen) *outlen = o;
    return d;
}

sg_status sg_params_parse(const char *qs, sg_params *out, sg_error *err)
{
    memset(out, 0, sizeof *out);
    if (!qs) return SG_OK;
    static const struct {
        const char *name;
        size_t off;
    } names[] = {
        {"filter", offsetof(sg_params, filter)},
        {"attributes", offsetof(sg_params, attributes)},
        {"excludedAttributes", offsetof(sg_params, excluded)},
        {"sortBy", offsetof(sg_params, sort_by)},
        {"sortOrder", offsetof(sg_params, sort_order)},
        {"startIndex", offsetof(sg_params, start_index)},
        {"count", offsetof(sg_params, count)},
        {"cursor", offsetof(sg_params, cursor)},
    };
    for (const char *p = qs; *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        size_t klen = eq ? (size_t)(eq - p) : n;
        size_t kdec;
        char *key = sg_form_decode(p, klen, &kdec);
        if (!key) {
            sg_params_free(out);
            return sg_error_set(err, SG_EINVALID, "invalidSyntax",
                                "the query string has a malformed %%-escape");
        }
        if (sg_str_ieq("aadOptscim062020", key, kdec)) out->aad_opt = true;
        if (!eq && sg_str_ieq("cursor", key, kdec) && !out->cursor) {
            out->cursor = strdup(""); /* ?cursor: the first page */
            if (!out->cursor) {
                free(key);
                sg_params_free(out);
                return sg_error_set(err, SG_ENOMEM, NULL, "out of memory");
            }
        }
        for (size_t i = 0; eq && i < SG_ARRAY_LEN(names); i++) {
            if (!sg_str_ieq(names[i].name, key, kdec)) continue;
            char *v = sg_form_decode(eq + 1, n - klen - 1, NULL);
            if (!v) {
                free(key);
                sg_params_free(out);
                return sg_error_set(err, SG_EINVALID, "invalidSyntax",
                                    "query parameter %s has a malformed %%-escape", names[i].name);
            }
            char **slot = (char **)((char *)out + names[i].off);
            free(*slot);
            *slot = v;
        }
        free(key);
        p += n + (amp ? 1 : 0);
    }
    return SG_OK;
}

void sg_params_free(sg_params *p)
{
    free(p->filter);
    free(p->attributes);
    free(p->excluded);
    free(p->sort_by);
    free(p->sort_order);
    free(p->start_index);
    free(p->count);
    free(p->cursor);
    memset(p, 0, sizeof *p);
}

char *sg_query_param(const char *qs, const char *name)
{
    char *found = NULL;
    size_t nlen = strlen(name);
    for (const char *p = qs; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (eq && (size_t)(eq - p) == nlen && !memcmp(p, name, nlen)) {
            free(found);
            found = sg_form_decode(eq + 1, n - nlen - 1, NULL);
        }
        p += n + (amp ? 1 : 0);
    }
    return found;
}
