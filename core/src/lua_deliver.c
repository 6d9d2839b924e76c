/*
** Delivery functions of the scimgate Lua module. The contract is in
** lua_deliver.h; this file explains how.
**
** Memory and Lua errors. Any Lua API call may raise (longjmp), so no C
** local holds memory across one. Everything smtp and webhook allocate (the
** curl handle, header and recipient lists, the message, the response) hangs
** off a `struct job`, a userdata whose __gc frees it, created before the
** first allocation and released early on every return path. The message
** builder and curl_easy_perform run no Lua. spool holds file descriptors and
** nothing else, and only between reading its last option and pushing its
** result.
**
** What raises and what returns nil, message. Option types and presence are
** the script's business: a mistake there is a bug and raises. Option values
** may come from user data (a display name in the subject, an address from
** SCIM, a URL from tenant settings): anything wrong with them returns
** nil, message, so the script can answer "fail", reason.
**
** The allow flag lives in one userdata per state, kept in the registry under
** a light-userdata key and shared as an upvalue by the functions, so
** sg_lua_deliver_allow finds it without allocating.
*/
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strerror_r returning char *, memmem */
#endif

#include "lua_deliver.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>
#include <sys/types.h>

#include <curl/curl.h>
#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>

#include "buf.h"
#include "log.h"
#include "lua_json.h"
#include "util.h"

#define JOB_MT        "scimgate.deliver.job"
#define LOG_COMPONENT "deliver"
#define NOT_ALLOWED   "delivery is only available in the outbox hooks"

#define DEFAULT_TIMEOUT_MS 10000L
#define MAX_TIMEOUT_MS     60000L
#define JSON_DEPTH         64  /* nesting allowed in a webhook body table */
#define MAX_RCPT           100 /* recipients of one message */
#define MAX_ADDR           254 /* RFC 5321 4.5.3.1.3: 256 octets of path, minus "<>" */
#define MAX_HEADER_NAME    64
#define MAX_KEY            250 /* Message-ID and Idempotency-Key */
#define MAX_WORD_RUN       900 /* longer unbroken runs are encoded: lines stop at 998 */
#define FOLD_AT            78  /* RFC 5322 2.1.1: lines SHOULD stay within 78 */
#define EW_LINE            76  /* RFC 2047 2: a line holding an encoded-word */
#define EW_OVERHEAD        13  /* " =?UTF-8?B?" and "?=" */
#define B64_LINE_IN        57  /* input bytes of one 76-character base64 line */
/* Parts are base64, whose lines never contain '_' nor start with '-', so
 * this boundary cannot occur inside them (RFC 2046 5.1.1). */
#define BOUNDARY "=_scimgate_alt"

#ifdef SG_VERSION
#define USER_AGENT "scimgate/" SG_VERSION
#else
#define USER_AGENT "scimgate"
#endif

/* ---- state ----------------------------------------------------------------- */

struct dstate {
    const sg_deliver_config *cfg;
    int allowed;
};

/* Registry key (an address, never compared by value). */
static const char state_key = 's';

/* A byte buffer whose first allocation failure sticks, so builders can
 * append without checking each call. */
struct out {
    sg_buf b;
    bool oom;
};

static void put(struct out *o, const void *p, size_t n)
{
    if (!o->oom && sg_buf_append(&o->b, p, n) != SG_OK) o->oom = true;
}

static void put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* One smtp or webhook call; a userdata with __gc, so a Lua error anywhere
 * frees it. */
struct job {
    CURL *h;
    struct curl_slist *rcpt; /* smtp: "<addr>" per recipient */
    struct curl_slist *hdrs; /* webhook: request headers */
    struct out msg;          /* smtp: the message; webhook: a JSON-encoded body */
    size_t sent;             /* bytes of msg handed to curl */
    struct out resp;         /* webhook: the response body, capped */
    bool capped;             /* we stopped the transfer at SG_DELIVER_BODY_MAX */
    char errbuf[CURL_ERROR_SIZE];
};

static void job_release(struct job *j)
{
    if (j == NULL) return;
    curl_easy_cleanup(j->h);
    curl_slist_free_all(j->rcpt);
    curl_slist_free_all(j->hdrs);
    sg_buf_free(&j->msg.b);
    sg_buf_free(&j->resp.b);
    memset(j, 0, sizeof *j);
}

/* [-0, +0, -] */
static int job_gc(lua_State *L)
{
    job_release(lua_touserdata(L, 1));
    return 0;
}

/* [-0, +1, m] */
static struct job *job_new(lua_State *L)
{
    struct job *j = lua_newuserdatauv(L, sizeof *j, 0);
    memset(j, 0, sizeof *j);
    luaL_setmetatable(L, JOB_MT);
    return j;
}

/* The module state, raising unless delivery is allowed. [-0, +0, v] */
static struct dstate *check_allowed(lua_State *L)
{
    struct dstate *st = lua_touserdata(L, lua_upvalueindex(1));
    if (st == NULL || !st->allowed) luaL_error(L, "%s", NOT_ALLOWED);
    return st;
}

/* ---- options --------------------------------------------------------------- */

/* Push opts[key] (opts at index 1); raise unless it is nil or of `type`.
 * [-0, +1, e] */
static int get_field(lua_State *L, const char *fn, const char *key, int type)
{
    int t = lua_getfield(L, 1, key);
    if (t != LUA_TNIL && t != type)
        luaL_error(L, "%s: %s must be a %s, not a %s", fn, key, lua_typename(L, type),
                   lua_typename(L, t));
    return t;
}

/* Push opts[key] and return it as a string (NULL when absent and optional).
 * The pointer lives as long as the pushed value. [-0, +1, e] */
static const char *get_string(lua_State *L, const char *fn, const char *key, bool required,
                              size_t *len)
{
    if (get_field(L, fn, key, LUA_TSTRING) == LUA_TNIL) {
        if (required) luaL_error(L, "%s: %s is required", fn, key);
        *len = 0;
        return NULL;
    }
    return lua_tolstring(L, -1, len);
}

/* Push opts[key]; true when it is true. [-0, +1, e] */
static bool get_bool(lua_State *L, const char *fn, const char *key)
{
    return get_field(L, fn, key, LUA_TBOOLEAN) == LUA_TBOOLEAN && lua_toboolean(L, -1);
}

/* Push opts.timeout and return it in milliseconds: cfg's default when
 * absent, never above cfg's maximum. [-0, +1, e] */
static long get_timeout(lua_State *L, const char *fn, const sg_deliver_config *cfg)
{
    long max = cfg->max_timeout_ms > 0 ? cfg->max_timeout_ms : MAX_TIMEOUT_MS;
    long def = cfg->default_timeout_ms > 0 ? cfg->default_timeout_ms : DEFAULT_TIMEOUT_MS;
    if (def > max) def = max;
    if (get_field(L, fn, "timeout", LUA_TNUMBER) == LUA_TNIL) return def;
    double s = lua_tonumber(L, -1);
    if (!(s > 0)) luaL_error(L, "%s: timeout must be a positive number of seconds", fn);
    double ms = s * 1000.0;
    if (ms >= (double)max) return max; /* before the cast: inf and huge values */
    return ms < 1.0 ? 1L : (long)ms;
}

/* ---- checks (no Lua) ---------------------------------------------------------- */

/* CR, LF or NUL: what would end a header line or a C string early. */
static bool has_line_break(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return true;
    return false;
}

/* Strict UTF-8: no overlong forms, surrogates or values above U+10FFFF. */
static bool utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += len;
    }
    return true;
}

/* NULL when s is a bare mailbox (local@domain) we can put in an envelope
 * and a header as it is; otherwise what is wrong with it. Quoted local
 * parts, domain literals and non-ASCII (SMTPUTF8) addresses are refused. */
static const char *mailbox_problem(const char *s, size_t n)
{
    if (has_line_break(s, n)) return "contains a line break";
    if (n == 0) return "is empty";
    if (n > MAX_ADDR) return "is too long";
    const char *at = NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f) return "must be printable ASCII without spaces";
        if (strchr("<>()[]\\,;:\"", c) != NULL) return "must be a bare address (local@domain)";
        if (c == '@') {
            if (at != NULL) return "must contain exactly one @";
            at = s + i;
        }
    }
    if (at == NULL) return "must contain exactly one @";
    size_t dlen = n - (size_t)(at - s) - 1;
    if (at == s || dlen == 0) return "needs a local part and a domain";
    if (at[1] == '.' || s[n - 1] == '.' || memmem(at, dlen + 1, "..", 2) != NULL)
        return "has a malformed domain";
    return NULL;
}

/* NULL when s is "<left@right>" in printable ASCII (RFC 5322 3.6.4). */
static const char *msgid_problem(const char *s, size_t n)
{
    if (has_line_break(s, n)) return "contains a line break";
    if (n < 5 || n > MAX_KEY || s[0] != '<' || s[n - 1] != '>' ||
        mailbox_problem(s + 1, n - 2) != NULL)
        return "must look like <left@right> in printable ASCII";
    return NULL;
}

/* RFC 5322 3.6.8 field name: printable ASCII except ':'. */
static bool mail_header_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > MAX_HEADER_NAME) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 33 || s[i] > 126 || s[i] == ':') return false;
    return true;
}

/* RFC 9110 5.1 field name: a token. */
static bool http_header_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > MAX_HEADER_NAME) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
        if (!ok) return false;
    }
    return true;
}

/* A header the gateway writes itself, so a script cannot set or repeat it. */
static bool mail_header_reserved(const char *name)
{
    static const char *const names[] = {"From",    "To",   "Cc",         "Bcc",
                                        "Subject", "Date", "Message-ID", "MIME-Version"};
    for (size_t i = 0; i < SG_ARRAY_LEN(names); i++)
        if (strcasecmp(name, names[i]) == 0) return true;
    return strncasecmp(name, "Content-", 8) == 0;
}

static bool http_header_reserved(const char *name)
{
    static const char *const names[] = {"Idempotency-Key",   "Content-Length", "Host",
                                        "Transfer-Encoding", "Connection",     "Expect"};
    for (size_t i = 0; i < SG_ARRAY_LEN(names); i++)
        if (strcasecmp(name, names[i]) == 0) return true;
    return false;
}

/* ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$: a file name that cannot climb out. */
static bool spool_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 128) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alnum = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) return false;
    }
    return true;
}

static bool has_scheme(const char *url, const char *scheme)
{
    return strncasecmp(url, scheme, strlen(scheme)) == 0;
}

/* scheme://host[:port] of url: no user info, path, query or fragment, since
 * any of them may hold a secret. This is all a log line shows of a URL. */
static void url_origin(const char *url, char *out, size_t outlen)
{
    const char *sep = strstr(url, "://");
    if (sep == NULL) {
        snprintf(out, outlen, "(not a URL)");
        return;
    }
    const char *auth = sep + 3, *host = auth;
    size_t alen = strcspn(auth, "/?#");
    for (const char *q = auth; q < auth + alen; q++)
        if (*q == '@') host = q + 1;
    size_t slen = (size_t)(sep - url), hlen = (size_t)(auth + alen - host);
    snprintf(out, outlen, "%.*s://%.*s", (int)(slen < 32 ? slen : 32), url,
             (int)(hlen < 200 ? hlen : 200), host);
}

/* ---- failures ------------------------------------------------------------------ */

/* What a log line says about one delivery. */
struct target {
    const char *fn;  /* "smtp", "webhook", "spool" */
    char where[256]; /* url_origin, or the spool name */
    const char *key; /* idempotency key, message id or NULL */
};

static void log_failure(const struct target *t, long code, const char *msg)
{
    if (!sg_log_enabled(SG_LOG_WARN)) return;
    sg_buf f = {0};
    sg_buf_puts(&f, "\"fn\":");
    sg_buf_json_str(&f, t->fn, strlen(t->fn));
    sg_buf_puts(&f, ",\"target\":");
    sg_buf_json_str(&f, t->where, strlen(t->where));
    if (t->key != NULL) {
        sg_buf_puts(&f, ",\"key\":");
        sg_buf_json_str(&f, t->key, strlen(t->key));
    }
    if (code > 0) sg_buf_printf(&f, ",\"code\":%ld", code);
    sg_log_fields(SG_LOG_WARN, LOG_COMPONENT, msg, f.data);
    sg_buf_free(&f);
}

/* Log a failed delivery, release the job (may be NULL) and push nil, the
 * message and, when code > 0, the server's reply code. The format arguments
 * may point into the job: they are read before it is released.
 * [-0, +(2|3), m] */
static int fail(lua_State *L, struct job *j, const struct target *t, long code, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));
static int fail(lua_State *L, struct job *j, const struct target *t, long code, const char *fmt,
                ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_failure(t, code, msg);
    job_release(j);
    lua_pushnil(L);
    lua_pushstring(L, msg);
    if (code <= 0) return 2;
    lua_pushinteger(L, code);
    return 3;
}

/* ---- message building (no Lua) ------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Padded base64 of n bytes, no line breaks. */
static void put_base64(struct out *o, const unsigned char *p, size_t n)
{
    char q[4];
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        q[0] = b64[v >> 18], q[1] = b64[v >> 12 & 63], q[2] = b64[v >> 6 & 63], q[3] = b64[v & 63];
        put(o, q, 4);
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        q[0] = b64[v >> 18], q[1] = b64[v >> 12 & 63];
        q[2] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        q[3] = '=';
        put(o, q, 4);
    }
}

/* RFC 2045 6.8 body: lines of 76 characters, each ended by CRLF. */
static void put_base64_lines(struct out *o, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i += B64_LINE_IN) {
        put_base64(o, p + i, n - i < B64_LINE_IN ? n - i : B64_LINE_IN);
        put_str(o, "\r\n");
    }
}

/* A text part in base64. RFC 2046 4.1.1 wants text in canonical form
 * before it is encoded, so each CRLF, lone LF or lone CR becomes CRLF. */
static void put_text_base64(struct out *o, const char *s, size_t n)
{
    struct out t = {0};
    size_t i = 0;
    while (i < n) {
        size_t run = 0;
        while (i + run < n && s[i + run] != '\r' && s[i + run] != '\n') run++;
        put(&t, s + i, run);
        i += run;
        if (i < n) {
            put(&t, "\r\n", 2);
            i += (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') ? 2 : 1;
        }
    }
    if (t.oom)
        o->oom = true;
    else
        put_base64_lines(o, (const unsigned char *)t.b.data, t.b.len);
    sg_buf_free(&t.b);
}

/* Plain ASCII sent as it is? Not when it holds a control character other
 * than HTAB, a byte above 0x7e, "=?" (a reader would take it for an
 * encoded-word), or a run too long to fold. */
static bool needs_encoding(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t run = 0; /* the current fold segment: white space and the word after it */
    bool prev_word = false;
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        if (c >= 0x7f || (c < 0x20 && c != '\t')) return true;
        if (c == '=' && i + 1 < n && s[i + 1] == '?') return true;
        bool blank = c == ' ' || c == '\t';
        run = (blank && prev_word) ? 1 : run + 1;
        prev_word = !blank;
        if (run > MAX_WORD_RUN) return true;
    }
    return false;
}

/* The value as RFC 2047 encoded-words (B encoding, UTF-8), each preceded
 * by a space and folded so no line passes 76 characters. col is the width
 * already on the current line. A word never splits a UTF-8 character
 * (RFC 2047 5). s is valid UTF-8. */
static void put_encoded_words(struct out *o, size_t col, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        size_t room = col + EW_OVERHEAD < EW_LINE ? EW_LINE - col - EW_OVERHEAD : 0;
        if (room < 8) { /* not even one 4-byte character: go on below */
            put_str(o, "\r\n");
            col = 0;
            continue;
        }
        size_t take = room / 4 * 3;
        if (take >= n - i) {
            take = n - i;
        } else {
            while (take > 1 && (s[i + take] & 0xc0) == 0x80) take--;
        }
        put_str(o, " =?UTF-8?B?");
        put_base64(o, s + i, take);
        put_str(o, "?=");
        col += EW_OVERHEAD + (take + 2) / 3 * 4;
        i += take;
    }
}

/* "Name: value" CRLF for an unstructured field (RFC 5322 3.2.5, 3.6.5).
 * Plain ASCII is folded at white space before column 78; anything else is
 * encoded. value has no CR, LF or NUL and is valid UTF-8. */
static void put_unstructured(struct out *o, const char *name, const char *v, size_t n)
{
    size_t col = strlen(name) + 1;
    put_str(o, name);
    put_str(o, ":");
    if (needs_encoding(v, n)) {
        put_encoded_words(o, col, v, n);
        put_str(o, "\r\n");
        return;
    }
    put_str(o, " ");
    col++;
    size_t i = 0;
    while (i < n) {
        /* a segment: white space, then the word after it */
        size_t ws = 0, len;
        while (i + ws < n && (v[i + ws] == ' ' || v[i + ws] == '\t')) ws++;
        len = ws;
        while (i + len < n && v[i + len] != ' ' && v[i + len] != '\t') len++;
        /* Fold before the white space; never make a line of white space
         * only (RFC 5322 3.2.2), so trailing blanks stay where they are. */
        if (ws > 0 && len > ws && col + len > FOLD_AT) {
            put_str(o, "\r\n");
            col = 0;
        }
        put(o, v + i, len);
        col += len;
        i += len;
    }
    put_str(o, "\r\n");
}

/* RFC 5322 3.3 date-time in UTC. */
static void put_date(struct out *o)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    char line[160];
    if (gmtime_r(&now, &tm) == NULL) memset(&tm, 0, sizeof tm);
    /* The modulos bound every field, so the compiler can see the line fits. */
    snprintf(line, sizeof line, "Date: %s, %u %s %u %02u:%02u:%02u +0000\r\n",
             days[(unsigned)tm.tm_wday % 7], (unsigned)tm.tm_mday % 100u,
             months[(unsigned)tm.tm_mon % 12], (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u);
    put_str(o, line);
}

/* "To: a@b, c@d" folded between addresses; the list holds "<addr>". */
static void put_to(struct out *o, const struct curl_slist *l)
{
    size_t col = 3;
    put_str(o, "To:");
    for (; l != NULL; l = l->next) {
        size_t n = strlen(l->data) - 2, need = n + 1 + (l->next ? 1 : 0);
        if (col > 3 && col + need > FOLD_AT) {
            put_str(o, "\r\n");
            col = 0;
        }
        put_str(o, " ");
        put(o, l->data + 1, n);
        if (l->next) put_str(o, ",");
        col += need;
    }
    put_str(o, "\r\n");
}

/* Content-Type, Content-Transfer-Encoding, a blank line and the body. */
static void put_part(struct out *o, const char *type, const char *s, size_t n)
{
    put_str(o, "Content-Type: ");
    put_str(o, type);
    put_str(o, "; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    put_text_base64(o, s, n);
}

/* ---- curl ------------------------------------------------------------------ */

static size_t on_read(char *dst, size_t size, size_t n, void *ud)
{
    struct job *j = ud;
    size_t want = size * n, left = j->msg.b.len - j->sent;
    if (want > left) want = left;
    if (want > 0) memcpy(dst, j->msg.b.data + j->sent, want);
    j->sent += want;
    return want;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct job *j = ud;
    size_t got = size * n, room = SG_DELIVER_BODY_MAX - j->resp.b.len;
    if (got > room) {
        /* enough: keep what fits and stop the transfer (CURLE_WRITE_ERROR) */
        put(&j->resp, p, room);
        j->capped = true;
        return 0;
    }
    put(&j->resp, p, got);
    return j->resp.oom ? 0 : got;
}

/* Options every handle gets; false when curl refuses the protocol limit,
 * which we never run without. */
static bool curl_common(struct job *j, const char *url, long ms, const char *protocols)
{
    CURL *h = j->h;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, j->errbuf);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    return curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protocols) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, protocols) == CURLE_OK;
}

static const char *curl_message(const struct job *j, CURLcode rc)
{
    return j->errbuf[0] ? j->errbuf : curl_easy_strerror(rc);
}

/* ---- smtp ------------------------------------------------------------------ */

/* Stack slots of l_smtp. */
enum { S_OPTS = 1, S_JOB, S_URL, S_FROM, S_TO, S_SUBJECT, S_TEXT, S_HTML, S_ID, S_USER, S_PASS };

/* Add one recipient, checked, to j->rcpt. NULL or what is wrong.
 * [-0, +0, v] */
static const char *add_rcpt(lua_State *L, struct job *j, const char *a, size_t n)
{
    const char *why = mailbox_problem(a, n);
    if (why != NULL) return why;
    char path[MAX_ADDR + 3];
    snprintf(path, sizeof path, "<%s>", a);
    struct curl_slist *l = curl_slist_append(j->rcpt, path);
    if (l == NULL) luaL_error(L, "smtp: out of memory");
    j->rcpt = l;
    return NULL;
}

/* Append the script's headers (opts.headers at idx) to the message.
 * Returns NULL, or a message for a value that cannot be sent; raises for a
 * bad name or type. [-0, +0, e] */
static const char *put_custom_headers(lua_State *L, struct job *j, int idx, char *why, size_t wlen)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "smtp: header names must be strings");
        size_t nlen, vlen;
        const char *name = lua_tolstring(L, -2, &nlen);
        if (!mail_header_name_ok(name, nlen)) luaL_error(L, "smtp: bad header name '%s'", name);
        if (mail_header_reserved(name))
            luaL_error(L, "smtp: header %s is set by the gateway", name);
        int vt = lua_type(L, -1);
        if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
            luaL_error(L, "smtp: header %s must be a string", name);
        const char *value = luaL_tolstring(L, -1, &vlen);
        if (has_line_break(value, vlen) || !utf8_valid(value, vlen)) {
            snprintf(why, wlen, "smtp: header %s %s", name,
                     has_line_break(value, vlen) ? "contains a line break" : "is not valid UTF-8");
            lua_pop(L, 3);
            return why;
        }
        put_unstructured(&j->msg, name, value, vlen);
        lua_pop(L, 2);
    }
    return NULL;
}

/*
** deliver.smtp{...}: see lua_deliver.h.
** [-1, +(1|2|3), e]
*/
static int l_smtp(lua_State *L)
{
    struct dstate *st = check_allowed(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 30, "smtp");
    struct job *j = job_new(L); /* S_JOB */
    size_t url_n, from_n, subject_n, text_n, html_n, id_n, user_n, pass_n;
    const char *url = get_string(L, "smtp", "url", true, &url_n);
    const char *from = get_string(L, "smtp", "from", true, &from_n);
    int to_type = lua_getfield(L, 1, "to");
    if (to_type != LUA_TSTRING && to_type != LUA_TTABLE)
        return luaL_error(L, "smtp: to must be a string or a list of strings");
    const char *subject = get_string(L, "smtp", "subject", true, &subject_n);
    const char *text = get_string(L, "smtp", "text", true, &text_n);
    const char *html = get_string(L, "smtp", "html", false, &html_n);
    const char *id = get_string(L, "smtp", "message_id", true, &id_n);
    const char *user = get_string(L, "smtp", "username", false, &user_n);
    const char *pass = get_string(L, "smtp", "password", false, &pass_n);
    bool starttls = get_bool(L, "smtp", "starttls");
    long ms = get_timeout(L, "smtp", st->cfg);
    int headers_idx = lua_gettop(L) + 1;
    bool have_headers = get_field(L, "smtp", "headers", LUA_TTABLE) == LUA_TTABLE;

    struct target t = {.fn = "smtp", .key = NULL};
    url_origin(url, t.where, sizeof t.where);
    const char *why;
    if ((why = msgid_problem(id, id_n)) != NULL)
        return fail(L, j, &t, 0, "smtp: message_id %s", why);
    t.key = id;
    if (has_line_break(url, url_n) || !(has_scheme(url, "smtp://") || has_scheme(url, "smtps://")))
        return fail(L, j, &t, 0, "smtp: url must be smtp://host[:port] or smtps://host[:port]");
    if ((why = mailbox_problem(from, from_n)) != NULL)
        return fail(L, j, &t, 0, "smtp: from %s", why);
    if (has_line_break(subject, subject_n))
        return fail(L, j, &t, 0, "smtp: subject contains a line break");
    if (!utf8_valid(subject, subject_n) || !utf8_valid(text, text_n) ||
        (html != NULL && !utf8_valid(html, html_n)))
        return fail(L, j, &t, 0, "smtp: subject, text and html must be valid UTF-8");
    if ((user != NULL && has_line_break(user, user_n)) ||
        (pass != NULL && has_line_break(pass, pass_n)))
        return fail(L, j, &t, 0, "smtp: username and password must be single lines");

    if (to_type == LUA_TSTRING) {
        size_t n;
        const char *a = lua_tolstring(L, S_TO, &n);
        if ((why = add_rcpt(L, j, a, n)) != NULL) return fail(L, j, &t, 0, "smtp: to %s", why);
    } else {
        lua_Unsigned n = lua_rawlen(L, S_TO);
        if (n == 0) return fail(L, j, &t, 0, "smtp: no recipients");
        if (n > MAX_RCPT) return fail(L, j, &t, 0, "smtp: more than %d recipients", MAX_RCPT);
        for (lua_Integer k = 1; k <= (lua_Integer)n; k++) {
            if (lua_rawgeti(L, S_TO, k) != LUA_TSTRING)
                return luaL_error(L, "smtp: to[%d] must be a string", (int)k);
            size_t len;
            const char *a = lua_tolstring(L, -1, &len);
            if ((why = add_rcpt(L, j, a, len)) != NULL)
                return fail(L, j, &t, 0, "smtp: to[%d] %s", (int)k, why);
            lua_pop(L, 1);
        }
    }

    /* the message (RFC 5322 3.6 fields, RFC 2045 MIME) */
    struct out *o = &j->msg;
    put_date(o);
    put_str(o, "From: ");
    put(o, from, from_n);
    put_str(o, "\r\n");
    put_to(o, j->rcpt);
    put_unstructured(o, "Subject", subject, subject_n);
    put_str(o, "Message-ID: ");
    put(o, id, id_n);
    put_str(o, "\r\n");
    if (have_headers) {
        char buf[256];
        if ((why = put_custom_headers(L, j, headers_idx, buf, sizeof buf)) != NULL)
            return fail(L, j, &t, 0, "%s", why);
    }
    put_str(o, "MIME-Version: 1.0\r\n");
    if (html == NULL) {
        put_part(o, "text/plain", text, text_n);
    } else {
        put_str(o, "Content-Type: multipart/alternative; boundary=\"" BOUNDARY "\"\r\n\r\n");
        put_str(o, "--" BOUNDARY "\r\n");
        put_part(o, "text/plain", text, text_n);
        put_str(o, "--" BOUNDARY "\r\n");
        put_part(o, "text/html", html, html_n);
        put_str(o, "--" BOUNDARY "--\r\n");
    }
    if (o->oom) return luaL_error(L, "smtp: out of memory");

    j->h = curl_easy_init();
    if (j->h == NULL) return luaL_error(L, "smtp: curl_easy_init failed");
    CURL *h = j->h;
    if (!curl_common(j, url, ms, "smtp,smtps"))
        return fail(L, j, &t, 0, "smtp: this libcurl cannot restrict protocols");
    char mail_from[MAX_ADDR + 3];
    snprintf(mail_from, sizeof mail_from, "<%s>", from);
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, mail_from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, j->rcpt);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, j);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)o->b.len);
    curl_easy_setopt(h, CURLOPT_USE_SSL, starttls ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_NONE);
    if (user != NULL) curl_easy_setopt(h, CURLOPT_USERNAME, user);
    if (pass != NULL) curl_easy_setopt(h, CURLOPT_PASSWORD, pass);

    /* No Lua runs from here until the result is pushed: url, from, user and
     * pass stay on the stack, the message and lists in the job. */
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        /* The last reply's code, when it was the error: 4xx says try
         * later, 5xx give up. A failure after a 2xx/3xx (TLS, a timeout)
         * has no code of its own. */
        long code = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 400 && code <= 599)
            return fail(L, j, &t, code, "smtp: %s: the server replied %ld (%s)", t.where, code,
                        curl_message(j, rc));
        return fail(L, j, &t, 0, "smtp: %s: %s", t.where, curl_message(j, rc));
    }
    job_release(j);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- webhook --------------------------------------------------------------- */

enum { W_OPTS = 1, W_JOB, W_URL, W_BODY, W_KEY };

/* The script's headers (opts.headers at idx) into j->hdrs. Returns NULL or
 * a message for a value that cannot be sent; raises for a bad name or type.
 * *have_ct tells whether one was Content-Type. [-0, +0, e] */
static const char *add_http_headers(lua_State *L, struct job *j, int idx, bool *have_ct, char *why,
                                    size_t wlen)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "webhook: header names must be strings");
        size_t nlen, vlen;
        const char *name = lua_tolstring(L, -2, &nlen);
        if (!http_header_name_ok(name, nlen)) luaL_error(L, "webhook: bad header name '%s'", name);
        if (http_header_reserved(name))
            luaL_error(L, "webhook: header %s is set by the gateway", name);
        int vt = lua_type(L, -1);
        if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
            luaL_error(L, "webhook: header %s must be a string", name);
        const char *value = luaL_tolstring(L, -1, &vlen);
        bool ctl = false;
        for (size_t i = 0; i < vlen; i++) {
            unsigned char c = (unsigned char)value[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) ctl = true;
        }
        if (ctl) {
            snprintf(why, wlen, "webhook: header %s %s", name,
                     has_line_break(value, vlen) ? "contains a line break"
                                                 : "contains a control character");
            lua_pop(L, 3);
            return why;
        }
        *have_ct = *have_ct || strcasecmp(name, "Content-Type") == 0;
        /* "Name;" is curl's spelling of a header with an empty value */
        lua_pushfstring(L, vlen ? "%s: %s" : "%s;", name, value);
        struct curl_slist *l = curl_slist_append(j->hdrs, lua_tostring(L, -1));
        if (l == NULL) luaL_error(L, "webhook: out of memory");
        j->hdrs = l;
        lua_pop(L, 3);
    }
    return NULL;
}

/* Append a fixed header line to j->hdrs. [-0, +0, v] */
static void add_header_line(lua_State *L, struct job *j, const char *line)
{
    struct curl_slist *l = curl_slist_append(j->hdrs, line);
    if (l == NULL) luaL_error(L, "webhook: out of memory");
    j->hdrs = l;
}

/*
** deliver.webhook{...}: see lua_deliver.h.
** [-1, +2, e]
*/
static int l_webhook(lua_State *L)
{
    struct dstate *st = check_allowed(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 30, "webhook");
    struct job *j = job_new(L); /* W_JOB */
    size_t url_n, key_n, body_n = 0;
    const char *url = get_string(L, "webhook", "url", true, &url_n);
    int body_type = lua_getfield(L, 1, "body");
    if (body_type == LUA_TNIL) return luaL_error(L, "webhook: body is required");
    if (body_type != LUA_TSTRING && body_type != LUA_TTABLE)
        return luaL_error(L, "webhook: body must be a string or a table");
    const char *key = get_string(L, "webhook", "idempotency_key", true, &key_n);
    long ms = get_timeout(L, "webhook", st->cfg);
    int headers_idx = lua_gettop(L) + 1;
    bool have_headers = get_field(L, "webhook", "headers", LUA_TTABLE) == LUA_TTABLE;

    struct target t = {.fn = "webhook", .key = NULL};
    url_origin(url, t.where, sizeof t.where);
    if (has_line_break(key, key_n))
        return fail(L, j, &t, 0, "webhook: idempotency_key %s", "contains a line break");
    bool key_ok = key_n > 0 && key_n <= MAX_KEY;
    for (size_t i = 0; i < key_n; i++)
        if (key[i] < 0x21 || key[i] > 0x7e) key_ok = false;
    if (!key_ok)
        return fail(L, j, &t, 0,
                    "webhook: idempotency_key must be 1 to %d printable ASCII "
                    "characters",
                    MAX_KEY);
    t.key = key;
    if (has_line_break(url, url_n) || !(has_scheme(url, "http://") || has_scheme(url, "https://")))
        return fail(L, j, &t, 0, "webhook: url must be http:// or https://");

    const char *body;
    if (body_type == LUA_TSTRING) {
        body = lua_tolstring(L, W_BODY, &body_n);
    } else {
        char err[256];
        json_t *v = sg_lua_to_json(L, W_BODY, JSON_DEPTH, err, sizeof err);
        if (v == NULL) return fail(L, j, &t, 0, "webhook: body: %s", err);
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(v);
        if (text != NULL) put_str(&j->msg, text);
        free(text);
        if (text == NULL || j->msg.oom) return luaL_error(L, "webhook: out of memory");
        body = j->msg.b.data;
        body_n = j->msg.b.len;
    }

    bool have_ct = false;
    if (have_headers) {
        char buf[256];
        const char *why = add_http_headers(L, j, headers_idx, &have_ct, buf, sizeof buf);
        if (why != NULL) return fail(L, j, &t, 0, "%s", why);
    }
    if (!have_ct) add_header_line(L, j, "Content-Type: application/json");
    lua_pushfstring(L, "Idempotency-Key: %s", key);
    add_header_line(L, j, lua_tostring(L, -1));
    lua_pop(L, 1);
    add_header_line(L, j, "Expect:"); /* no 100-continue round trip */

    j->h = curl_easy_init();
    if (j->h == NULL) return luaL_error(L, "webhook: curl_easy_init failed");
    CURL *h = j->h;
    if (!curl_common(j, url, ms, "http,https"))
        return fail(L, j, &t, 0, "webhook: this libcurl cannot restrict protocols");
    curl_easy_setopt(h, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, j->hdrs);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_n);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, j);

    /* No Lua runs until the result is pushed; url, key and a string body
     * stay on the stack, the rest in the job. */
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (j->resp.oom) return fail(L, j, &t, 0, "webhook: out of memory");
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && j->capped))
        return fail(L, j, &t, 0, "webhook: %s: %s", t.where, curl_message(j, rc));
    if (status < 100) return fail(L, j, &t, 0, "webhook: %s: no HTTP status", t.where);
    if (status < 200 || status > 299) {
        char msg[64];
        snprintf(msg, sizeof msg, "webhook answered %ld", status);
        log_failure(&t, status, msg);
    }
    lua_pushinteger(L, status);
    lua_pushlstring(L, j->resp.b.data ? j->resp.b.data : "", j->resp.b.len);
    job_release(j);
    return 2;
}

/* ---- spool ----------------------------------------------------------------- */

static void set_errno_message(char *err, size_t errlen, const char *what, int e)
{
    char buf[128];
    snprintf(err, errlen, "%s: %s", what, strerror_r(e, buf, sizeof buf));
}

/* A descriptor of the spool directory, created (0700) when missing. */
static int open_spool_dir(const char *dir, char *err, size_t errlen)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0 || errno != ENOENT) {
        if (dfd < 0) set_errno_message(err, errlen, "cannot open the spool directory", errno);
        return dfd;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        set_errno_message(err, errlen, "cannot create the spool directory", errno);
        return -1;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        set_errno_message(err, errlen, "cannot open the spool directory", errno);
        return -1;
    }
    /* the umask may have taken bits we need; never more than 0700 */
    if (fchmod(dfd, 0700) != 0) {
        set_errno_message(err, errlen, "cannot set the spool directory's mode", errno);
        close(dfd);
        return -1;
    }
    /* make the new directory's entry durable too (best effort) */
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", dir);
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/') parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    if (slash == NULL)
        snprintf(parent, sizeof parent, ".");
    else
        slash[slash == parent ? 1 : 0] = '\0';
    int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pfd >= 0) {
        (void)fsync(pfd);
        close(pfd);
    }
    return dfd;
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Write <dir>/<name> atomically: a temporary file in dir (its name starts
 * with '.', which no valid name does), fsync, rename over name, fsync of
 * dir. 0, or -1 with a message in err. name is checked. */
static int spool_write(const char *dir, const char *name, const char *data, size_t n, char *err,
                       size_t errlen)
{
    int dfd = open_spool_dir(dir, err, errlen);
    if (dfd < 0) return -1;
    char tmp[192];
    int fd = -1;
    for (int tries = 0; tries < 8 && fd < 0; tries++) {
        unsigned char rnd[8];
        char hex[2 * sizeof rnd + 1];
        sg_random(rnd, sizeof rnd);
        sg_hex(rnd, sizeof rnd, hex);
        snprintf(tmp, sizeof tmp, ".%s.%s.tmp", name, hex);
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        set_errno_message(err, errlen, "cannot create a temporary file", errno);
        close(dfd);
        return -1;
    }
    const char *step = NULL;
    if (fchmod(fd, 0600) != 0)
        step = "cannot set the mode";
    else if (!write_all(fd, data, n))
        step = "cannot write";
    else if (fsync(fd) != 0)
        step = "cannot sync";
    int e = errno;
    if (close(fd) != 0 && step == NULL) {
        step = "cannot write";
        e = errno;
    }
    if (step == NULL && renameat(dfd, tmp, dfd, name) != 0) {
        step = "cannot rename";
        e = errno;
    }
    if (step != NULL) {
        unlinkat(dfd, tmp, 0);
        close(dfd);
        set_errno_message(err, errlen, step, e);
        return -1;
    }
    if (fsync(dfd) != 0) {
        e = errno;
        close(dfd);
        set_errno_message(err, errlen, "cannot sync the spool directory", e);
        return -1;
    }
    close(dfd);
    return 0;
}

/*
** deliver.spool{name = ..., content = ...}: see lua_deliver.h.
** [-1, +(1|2), e]
*/
static int l_spool(lua_State *L)
{
    struct dstate *st = check_allowed(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    size_t name_n, content_n;
    const char *name = get_string(L, "spool", "name", true, &name_n);
    const char *content = get_string(L, "spool", "content", true, &content_n);

    struct target t = {.fn = "spool", .key = NULL};
    if (!spool_name_ok(name, name_n)) {
        snprintf(t.where, sizeof t.where, "(bad name)");
        return fail(L, NULL, &t, 0, "spool: name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$");
    }
    snprintf(t.where, sizeof t.where, "%s", name);
    const char *dir = st->cfg->spool_dir;
    if (dir == NULL || dir[0] == '\0')
        return fail(L, NULL, &t, 0, "spool: no spool directory is configured");
    char err[256];
    if (spool_write(dir, name, content, content_n, err, sizeof err) != 0)
        return fail(L, NULL, &t, 0, "spool: %s: %s", name, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- registration ---------------------------------------------------------- */

void sg_lua_push_deliver(lua_State *L, const sg_deliver_config *cfg)
{
    static const luaL_Reg fns[] = {
        {"smtp", l_smtp}, {"webhook", l_webhook}, {"spool", l_spool}, {NULL, NULL}};
    struct dstate *st;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &state_key) == LUA_TUSERDATA) {
        st = lua_touserdata(L, -1);
    } else {
        lua_pop(L, 1);
        st = lua_newuserdatauv(L, sizeof *st, 0);
        st->allowed = 0;
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &state_key);
    }
    st->cfg = cfg; /* stack: st */
    if (luaL_newmetatable(L, JOB_MT)) {
        lua_pushcfunction(L, job_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_createtable(L, 0, 3); /* stack: st, module */
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, fns, 1); /* each function gets st as its upvalue */
    lua_remove(L, -2);        /* stack: module */
}

void sg_lua_deliver_allow(lua_State *L, int allowed)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &state_key) == LUA_TUSERDATA) {
        struct dstate *st = lua_touserdata(L, -1);
        st->allowed = allowed != 0;
    }
    lua_pop(L, 1);
}
