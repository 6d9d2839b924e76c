#include "portal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "crypto.h"
#include "events.h"
#include "json.h"
#include "log.h"
#include "tenants.h"
#include "util.h"

#define SESSION_ID_LEN     16 /* hex digits */
#define SESSION_SECRET_LEN 43 /* base64url of 32 bytes */
#define CSRF_LEN           43 /* base64url of an HMAC-SHA-256 */
#define LOGIN_MAX          128
#define PASSWORD_MAX       1024
#define FILE_MAX           (1 << 20)
#define TOUCH_EVERY_MS     60000 /* at most one seen_ms write a minute */

/* ---- answers ------------------------------------------------------------------------ */

static void error_json(sg_response *res, int status, const char *detail)
{
    sg_buf_reset(&res->body);
    res->status = status;
    res->content_type = SG_CT_JSON;
    sg_buf_printf(&res->body, "{\"status\":%d,\"detail\":", status);
    sg_buf_json_str(&res->body, detail, strlen(detail));
    sg_buf_putc(&res->body, '}');
}

static void reply(sg_response *res, int status, json_t *j)
{
    sg_buf_reset(&res->body);
    if (!j || sg_json_dump(j, &res->body) != SG_OK) {
        json_decref(j);
        error_json(res, 500, "out of memory");
        return;
    }
    json_decref(j);
    res->status = status;
    res->content_type = SG_CT_JSON;
}

/* ---- static files ---------------------------------------------------------------------- */

static const struct {
    const char *ext;
    const char *type;
} file_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
};

/* The Content-Type of a servable file name, or NULL: one segment of
 * [a-z0-9_-] and one known extension, nothing else. */
static const char *file_type(const char *name)
{
    size_t n = strlen(name);
    const char *dot = strchr(name, '.');
    if (n == 0 || n > 64 || !dot || dot == name || strchr(dot + 1, '.')) return NULL;
    for (const char *p = name; p < dot; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            return NULL;
    for (size_t i = 0; i < SG_ARRAY_LEN(file_types); i++)
        if (!strcmp(dot, file_types[i].ext)) return file_types[i].type;
    return NULL;
}

void sg_portal_file(sg_worker *w, sg_request *req, sg_response *res)
{
    if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
        error_json(res, 405, "the portal's files are read with GET");
        sg_respond_header(res, "Allow", "GET, HEAD");
        return;
    }
    const char *name = req->route.rest;
    if (name && !*name) name = "index.html";
    const char *type = name ? file_type(name) : NULL;
    if (!type) {
        error_json(res, 404, "no such portal file");
        return;
    }
    const char *dir = w->srv->cfg->portal;
    size_t plen = strlen(dir) + strlen(name) + 2;
    char *path = malloc(plen);
    if (!path) abort();
    snprintf(path, plen, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    free(path);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
        if (fd >= 0) close(fd);
        error_json(res, 404, "no such portal file");
        return;
    }
    char etag[80];
    snprintf(etag, sizeof etag, "\"%llx-%llx-%lx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec, (unsigned long)st.st_mtim.tv_nsec);
    res->cache_control = "no-cache";
    sg_respond_header(res, "ETag", etag);
    const char *inm = req->header(req, "If-None-Match");
    if (inm && strstr(inm, etag)) {
        close(fd);
        res->status = 304;
        res->content_type = NULL;
        return;
    }
    bool good = sg_buf_reserve(&res->body, (size_t)st.st_size + 1) == SG_OK;
    while (good && res->body.len < (size_t)st.st_size) {
        ssize_t n = read(fd, res->body.data + res->body.len, (size_t)st.st_size - res->body.len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        res->body.len += (size_t)n;
    }
    close(fd);
    if (!good || res->body.len != (size_t)st.st_size) {
        sg_log(SG_LOG_ERROR, "portal", "cannot read the portal file %s", name);
        error_json(res, 500, "the portal file could not be read");
        return;
    }
    res->body.data[res->body.len] = '\0';
    res->status = 200;
    res->content_type = type;
}

/* ---- the sign-in rate limit ----------------------------------------------------------- */

#define RL_SLOTS     2048
#define RL_PROBE     8
#define RL_FORGET_MS (15 * 60 * 1000LL)
#define RL_BASE_MS   5000LL
#define RL_MAX_MS    (15 * 60 * 1000LL)

typedef struct rl_slot {
    unsigned char key[16]; /* HMAC of what is counted; all zero: free */
    int64_t last_ms;       /* the last failure */
    int64_t until_ms;      /* no try before this */
    int64_t failures;
} rl_slot;

static rl_slot g_rl[RL_SLOTS];
static pthread_mutex_t g_rl_lock = PTHREAD_MUTEX_INITIALIZER;

/* Keys are keyed hashes, so nobody can aim a name at a chosen slot. */
static void rl_key(const char *kind, const char *a, const char *b, unsigned char out[16])
{
    sg_buf t = {0};
    sg_buf_puts(&t, kind);
    sg_buf_putc(&t, '\n');
    sg_buf_puts(&t, a ? a : "");
    sg_buf_putc(&t, '\n');
    sg_buf_puts(&t, b ? b : "");
    unsigned char h[SG_HASH_LEN];
    sg_crypto_hash(t.data ? t.data : "", t.len, h);
    sg_buf_free(&t);
    memcpy(out, h, 16);
    if (!memcmp(out, (unsigned char[16]){0}, 16)) out[0] = 1;
}

/* The slot of `key` (lock held); with `create`, a free or the stalest one. */
static rl_slot *rl_find(const unsigned char key[16], bool create)
{
    size_t start;
    memcpy(&start, key, sizeof start);
    rl_slot *stalest = NULL;
    for (size_t i = 0; i < RL_PROBE; i++) {
        rl_slot *s = &g_rl[(start + i) % RL_SLOTS];
        if (!memcmp(s->key, key, 16)) return s;
        if (!stalest || s->last_ms < stalest->last_ms) stalest = s;
    }
    if (!create) return NULL;
    memset(stalest, 0, sizeof *stalest);
    memcpy(stalest->key, key, 16);
    return stalest;
}

/* How long `key` must wait before its next try (0: it may try now). */
static int64_t rl_wait(const unsigned char key[16], int64_t now)
{
    pthread_mutex_lock(&g_rl_lock);
    rl_slot *s = rl_find(key, false);
    int64_t wait = s && s->until_ms > now ? s->until_ms - now : 0;
    pthread_mutex_unlock(&g_rl_lock);
    return wait;
}

static void rl_fail(const unsigned char key[16], int64_t free_tries, int64_t now)
{
    pthread_mutex_lock(&g_rl_lock);
    rl_slot *s = rl_find(key, true);
    if (now - s->last_ms > RL_FORGET_MS) s->failures = 0;
    s->failures++;
    s->last_ms = now;
    if (s->failures >= free_tries) {
        int64_t over = s->failures - free_tries, wait = RL_BASE_MS;
        while (over-- > 0 && wait < RL_MAX_MS) wait *= 2;
        s->until_ms = now + (wait < RL_MAX_MS ? wait : RL_MAX_MS);
    }
    pthread_mutex_unlock(&g_rl_lock);
}

static void rl_clear(const unsigned char key[16])
{
    pthread_mutex_lock(&g_rl_lock);
    rl_slot *s = rl_find(key, false);
    if (s) memset(s, 0, sizeof *s);
    pthread_mutex_unlock(&g_rl_lock);
}

/* ---- sessions ---------------------------------------------------------------------------- */

bool sg_portal_sessions_supported(const sg_storage_vtab *st)
{
    return SG_HAS_MEMBER(st, sg_storage_vtab, session_purge) && st->session_create &&
           st->session_get && st->session_touch && st->session_delete && st->session_purge;
}

typedef struct cookie {
    char id[SESSION_ID_LEN + 1];
    char secret[SESSION_SECRET_LEN + 1];
} cookie;

/* The session cookie of the request; false when there is none (or it is
 * not of our shape). */
static bool read_cookie(const sg_request *req, cookie *out)
{
    const char *h = req->header(req, "Cookie");
    static const char name[] = SG_SESSION_COOKIE "=";
    for (const char *p = h; p && *p;) {
        while (*p == ' ' || *p == ';') p++;
        size_t n = strcspn(p, ";");
        if (n > sizeof name - 1 && !strncmp(p, name, sizeof name - 1)) {
            const char *v = p + sizeof name - 1;
            size_t vn = n - (sizeof name - 1);
            while (vn && v[vn - 1] == ' ') vn--;
            if (vn != SESSION_ID_LEN + 1 + SESSION_SECRET_LEN || v[SESSION_ID_LEN] != '.')
                return false;
            memcpy(out->id, v, SESSION_ID_LEN);
            out->id[SESSION_ID_LEN] = '\0';
            memcpy(out->secret, v + SESSION_ID_LEN + 1, SESSION_SECRET_LEN);
            out->secret[SESSION_SECRET_LEN] = '\0';
            for (size_t i = 0; i < SESSION_ID_LEN; i++)
                if (!strchr("0123456789abcdef", out->id[i])) return false;
            return true;
        }
        p += n;
    }
    return false;
}

static void csrf_token(const cookie *k, char out[CSRF_LEN + 1])
{
    char text[128];
    int n = snprintf(text, sizeof text, "scimgate-csrf-v1\n%s\n%s", k->id, k->secret);
    unsigned char h[SG_HASH_LEN];
    sg_crypto_hash(text, (size_t)n, h);
    sg_base64url(h, sizeof h, out);
    explicit_bzero(text, sizeof text);
}

static bool csrf_ok(const sg_request *req, const cookie *k)
{
    const char *sent = req->header(req, SG_CSRF_HEADER);
    char want[CSRF_LEN + 1];
    csrf_token(k, want);
    return sent && strlen(sent) == CSRF_LEN && sg_crypto_equal(sent, want, CSRF_LEN);
}

static void set_cookie(const sg_request *req, sg_response *res, const cookie *k, int64_t max_ms)
{
    bool secure = !strncmp(req->base_url, "https://", 8);
    char v[256];
    if (k)
        snprintf(v, sizeof v,
                 SG_SESSION_COOKIE "=%s.%s; Path=/admin; Max-Age=%lld; HttpOnly; "
                                   "SameSite=Strict%s",
                 k->id, k->secret, (long long)(max_ms / 1000), secure ? "; Secure" : "");
    else
        snprintf(v, sizeof v,
                 SG_SESSION_COOKIE "=; Path=/admin; Max-Age=0; HttpOnly; SameSite=Strict%s",
                 secure ? "; Secure" : "");
    sg_respond_header(res, "Set-Cookie", v);
    explicit_bzero(v, sizeof v);
}

typedef struct session_row {
    bool found;
    char tenant[65];
    char login[LOGIN_MAX + 1];
    unsigned char hash[SG_HASH_LEN];
    int64_t expires_ms, seen_ms;
    int tenant_disabled;
} session_row;

static int session_cb(void *ud, const sg_session *s)
{
    session_row *r = ud;
    r->found = true;
    snprintf(r->tenant, sizeof r->tenant, "%s", s->tenant ? s->tenant : "");
    snprintf(r->login, sizeof r->login, "%s", s->login);
    memcpy(r->hash, s->hash, SG_HASH_LEN);
    r->expires_ms = s->expires_ms;
    r->seen_ms = s->seen_ms;
    r->tenant_disabled = s->tenant_disabled;
    return 0;
}

typedef enum { S_NONE, S_VALID, S_INVALID, S_ERROR } s_state;

/* Load and check the request's session; a live one's last use is
 * recorded now and then. */
static s_state session_load(sg_worker *w, const sg_request *req, cookie *k, session_row *row)
{
    memset(row, 0, sizeof *row);
    if (!read_cookie(req, k)) return S_NONE;
    const sg_storage_vtab *st = w->srv->plugins->st;
    if (!sg_portal_sessions_supported(st)) return S_INVALID;
    sg_error err;
    sg_error_clear(&err);
    sg_conn *conn;
    if (sg_worker_conn(w, &conn, &err) != SG_OK) return S_ERROR;
    sg_status s = st->session_get(conn, k->id, session_cb, row, &err);
    if (s == SG_ENOTFOUND || (s == SG_OK && !row->found)) return S_INVALID;
    if (s != SG_OK) return S_ERROR;
    unsigned char hash[SG_HASH_LEN];
    sg_crypto_hash(k->secret, strlen(k->secret), hash);
    const sg_portal_config *pc = &w->srv->cfg->portal_cfg;
    int64_t now = sg_now_ms();
    if (!sg_crypto_equal(hash, row->hash, SG_HASH_LEN) || now >= row->expires_ms ||
        now - row->seen_ms > pc->session_idle_ms || row->tenant_disabled)
        return S_INVALID;
    int64_t every =
        pc->session_idle_ms / 4 < TOUCH_EVERY_MS ? pc->session_idle_ms / 4 : TOUCH_EVERY_MS;
    if (now - row->seen_ms >= every && st->session_touch(conn, k->id, now, &err) != SG_OK)
        sg_log(SG_LOG_WARN, "portal", "could not record a session's use: %s", err.detail);
    return S_VALID;
}

static bool safe_method(const sg_request *req)
{
    return !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
}

sg_session_check sg_portal_authenticate(sg_worker *w, sg_request *req, sg_response *res,
                                        sg_session_admin *out)
{
    cookie k;
    session_row row;
    switch (session_load(w, req, &k, &row)) {
    case S_NONE:
        return SG_SESSION_NONE;
    case S_ERROR:
        error_json(res, 503, "the store is unavailable");
        return SG_SESSION_REFUSED;
    case S_INVALID:
        error_json(res, 401, "the session has ended: sign in again");
        return SG_SESSION_REFUSED;
    case S_VALID:
        break;
    }
    if (!safe_method(req) && !csrf_ok(req, &k)) {
        sg_log(SG_LOG_WARN, "portal", "a %s without the session's CSRF token was refused",
               req->method);
        error_json(res, 403, "the X-CSRF-Token header is missing or wrong (reload the page)");
        return SG_SESSION_REFUSED;
    }
    snprintf(out->tenant, sizeof out->tenant, "%s", row.tenant);
    snprintf(out->login, sizeof out->login, "%s", row.login);
    return SG_SESSION_OK;
}

/* ---- /admin/v1/session ------------------------------------------------------------------ */

typedef struct tenant_row {
    bool found;
    char id[65];
    char name[129];
    int disabled;
} tenant_row;

static int tenant_cb(void *ud, const sg_tenant *t)
{
    tenant_row *r = ud;
    r->found = true;
    snprintf(r->id, sizeof r->id, "%s", t->id);
    snprintf(r->name, sizeof r->name, "%s", t->name);
    r->disabled = t->disabled;
    return 1;
}

typedef struct admin_row {
    bool found;
    int disabled;
    char hash[SG_PASSWORD_HASH_MAX];
} admin_row;

static int admin_cb(void *ud, const sg_admin *a)
{
    admin_row *r = ud;
    r->found = true;
    r->disabled = a->disabled;
    snprintf(r->hash, sizeof r->hash, "%s", a->password_hash ? a->password_hash : "");
    return 0;
}

/* A hash of a random password, so that an unknown login costs the same
 * PBKDF2 time as a known one. */
static char g_dummy_hash[SG_PASSWORD_HASH_MAX];
static pthread_once_t g_dummy_once = PTHREAD_ONCE_INIT;

static void make_dummy(void)
{
    unsigned char r[18];
    char pw[32];
    sg_random(r, sizeof r);
    sg_base64url(r, sizeof r, pw);
    if (!sg_password_hash(pw, g_dummy_hash)) g_dummy_hash[0] = '\0';
}

/* What the pages need to know about the signed-in admin. */
static json_t *session_view(sg_worker *w, sg_request *req, const cookie *k, const char *tenant,
                            const char *login, int64_t expires_ms)
{
    char csrf[CSRF_LEN + 1], expires[SG_TIME_MAX];
    csrf_token(k, csrf);
    sg_format_time(expires_ms, expires);
    json_t *j = json_pack("{sssbsssssI}", "login", login, "operator", tenant[0] == '\0',
                          "csrfToken", csrf, "expires", expires, "idleTimeout",
                          (json_int_t)(w->srv->cfg->portal_cfg.session_idle_ms / 1000));
    if (tenant[0]) {
        tenant_row t = {0};
        sg_error err;
        sg_conn *conn;
        if (sg_worker_conn(w, &conn, &err) == SG_OK)
            w->srv->plugins->st->tenant_get(conn, tenant, tenant_cb, &t, &err);
        char url[512];
        snprintf(url, sizeof url, "%s/scim/v2/%s", req->base_url, tenant);
        json_object_set_new(j, "tenant", json_string(tenant));
        json_object_set_new(j, "tenantName", t.found ? json_string(t.name) : json_null());
        json_object_set_new(j, "tenantUrl", json_string(url));
    } else {
        json_object_set_new(j, "tenant", json_null());
    }
    explicit_bzero(csrf, sizeof csrf);
    return j;
}

static const char *json_str(const json_t *o, const char *key, size_t max)
{
    const json_t *v = json_object_get(o, key);
    const char *s = json_string_value(v);
    if (!s || !*s || strlen(s) != json_string_length(v) || strlen(s) > max) return NULL;
    return s;
}

static void sign_in(sg_worker *w, sg_request *req, sg_response *res)
{
    const char *ct = req->header(req, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16)) {
        /* A form another site posts cannot set this type without CORS. */
        error_json(res, 415, "sign in with a JSON body (Content-Type: application/json)");
        return;
    }
    json_t *body = req->body ? json_loadb(req->body, req->body_len, 0, NULL) : NULL;
    const char *login_in = json_str(body, "login", LOGIN_MAX);
    const char *password = json_str(body, "password", PASSWORD_MAX);
    const json_t *tv = json_object_get(body, "tenant");
    const char *tenant_json = json_str(body, "tenant", 128);
    /* Copies: the body (and the password in it) goes before we answer. */
    char login[LOGIN_MAX + 1], tenant_buf[129];
    snprintf(login, sizeof login, "%s", login_in ? login_in : "");
    snprintf(tenant_buf, sizeof tenant_buf, "%s", tenant_json ? tenant_json : "");
    const char *tenant_in = tenant_json ? tenant_buf : NULL;
    if (!login_in || !password ||
        (tv && !json_is_null(tv) && !tenant_in &&
         !(json_is_string(tv) && !*json_string_value(tv)))) {
        json_decref(body);
        error_json(res, 400,
                   "sign in with {\"login\", \"password\", \"tenant\"} (tenant: its id or name; "
                   "none for an operator)");
        return;
    }
    const sg_config *cfg = w->srv->cfg;
    const sg_storage_vtab *st = w->srv->plugins->st;
    int64_t now = sg_now_ms();
    if (!sg_portal_sessions_supported(st)) {
        json_decref(body);
        error_json(res, 501, "the storage plugin keeps no portal sessions (it needs ABI 1.1)");
        return;
    }
    sg_error err;
    sg_error_clear(&err);
    sg_conn *conn;
    if (sg_worker_conn(w, &conn, &err) != SG_OK) {
        json_decref(body);
        error_json(res, 503, "the store is unavailable");
        return;
    }
    tenant_row t = {0};
    admin_row a = {0};
    sg_status s = SG_OK;
    if (tenant_in) {
        s = st->tenant_get(conn, tenant_in, tenant_cb, &t, &err);
        if (s == SG_ENOTFOUND) s = SG_OK;
    }
    /* Counted per login in its tenant (by id, however it was named) and
     * per client address. */
    unsigned char lkey[16], akey[16];
    rl_key("login", t.found ? t.id : tenant_in, login, lkey);
    rl_key("address", req->peer, NULL, akey);
    int64_t wl = rl_wait(lkey, now), wa = rl_wait(akey, now);
    int64_t wait = wl > wa ? wl : wa;
    if (s == SG_OK && wait > 0) {
        char secs[24];
        snprintf(secs, sizeof secs, "%lld", (long long)((wait + 999) / 1000));
        sg_log(SG_LOG_WARN, "portal", "sign-in of \"%s\" from %s refused: too many failures", login,
               req->peer);
        error_json(res, 429, "too many failed sign-ins: wait and try again");
        sg_respond_header(res, "Retry-After", secs);
        json_decref(body);
        return;
    }
    if (s == SG_OK && (!tenant_in || (t.found && !t.disabled))) {
        s = st->admin_get(conn, tenant_in ? t.id : NULL, login, admin_cb, &a, &err);
        if (s == SG_ENOTFOUND) s = SG_OK;
    }
    if (s != SG_OK) {
        json_decref(body);
        error_json(res, 503, "the store is unavailable");
        return;
    }
    bool good;
    if (a.found && a.hash[0]) {
        good = sg_password_verify(password, a.hash) && !a.disabled;
    } else {
        pthread_once(&g_dummy_once, make_dummy);
        sg_password_verify(password, g_dummy_hash);
        good = false;
    }
    json_decref(body); /* the password goes with it */
    if (!good) {
        rl_fail(lkey, cfg->portal_cfg.login_attempts, now);
        rl_fail(akey, cfg->portal_cfg.address_attempts, now);
        sg_log(SG_LOG_WARN, "portal", "failed sign-in of \"%s\"%s%s from %s", login,
               tenant_in ? " in tenant " : " as an operator", tenant_in ? tenant_in : "",
               req->peer);
        error_json(res, 401, "the login, password or tenant is not right");
        return;
    }
    rl_clear(lkey);

    cookie k;
    unsigned char idb[SESSION_ID_LEN / 2], secret[32], hash[SG_HASH_LEN];
    sg_random(idb, sizeof idb);
    sg_random(secret, sizeof secret);
    sg_hex(idb, sizeof idb, k.id);
    sg_base64url(secret, sizeof secret, k.secret);
    explicit_bzero(secret, sizeof secret);
    sg_crypto_hash(k.secret, strlen(k.secret), hash);
    const char *tenant = tenant_in ? t.id : "";
    sg_session x = {.id = k.id,
                    .tenant = tenant,
                    .login = login,
                    .hash = hash,
                    .created_ms = now,
                    .expires_ms = now + cfg->portal_cfg.session_max_ms,
                    .seen_ms = now};
    char who[160];
    snprintf(who, sizeof who, "admin:%s", login);
    sg_actor actor = {who, req->request_id};
    json_t *data = json_pack("{ss}", "address", req->peer);
    s = st->begin(conn, SG_TXN_WRITE, &err);
    if (s == SG_OK) s = st->session_create(conn, &x, &err);
    if (s == SG_OK && tenant[0])
        s = sg_event_add(st, conn, tenant, &actor, "admin.signed_in", NULL, data, &err);
    if (s == SG_OK) s = st->commit(conn, &err);
    json_decref(data);
    if (s != SG_OK) {
        st->rollback(conn);
        sg_log(SG_LOG_ERROR, "portal", "could not store a session: %s", err.detail);
        error_json(res, sg_status_http(s), "the session could not be stored");
        return;
    }
    sg_log(SG_LOG_INFO, "portal", "\"%s\" signed in%s%s from %s", login,
           tenant[0] ? " to tenant " : " as an operator", tenant, req->peer);
    set_cookie(req, res, &k, cfg->portal_cfg.session_max_ms);
    reply(res, 201, session_view(w, req, &k, tenant, login, x.expires_ms));
    explicit_bzero(&k, sizeof k);
}

static void sign_out(sg_worker *w, sg_request *req, sg_response *res)
{
    cookie k;
    session_row row;
    s_state state = session_load(w, req, &k, &row);
    if (state == S_ERROR) {
        error_json(res, 503, "the store is unavailable");
        return;
    }
    if (state == S_VALID) {
        if (!csrf_ok(req, &k)) {
            error_json(res, 403, "the X-CSRF-Token header is missing or wrong (reload the page)");
            return;
        }
        const sg_storage_vtab *st = w->srv->plugins->st;
        sg_error err;
        sg_conn *conn = NULL;
        char who[160];
        snprintf(who, sizeof who, "admin:%s", row.login);
        sg_actor actor = {who, req->request_id};
        sg_status s = sg_worker_conn(w, &conn, &err);
        if (s == SG_OK) s = st->begin(conn, SG_TXN_WRITE, &err);
        if (s == SG_OK) s = st->session_delete(conn, k.id, &err);
        if (s == SG_OK && row.tenant[0])
            s = sg_event_add(st, conn, row.tenant, &actor, "admin.signed_out", NULL, NULL, &err);
        if (s == SG_OK) s = st->commit(conn, &err);
        if (s != SG_OK) {
            if (conn) st->rollback(conn);
            error_json(res, sg_status_http(s), "the session could not be ended; try again");
            return;
        }
        sg_log(SG_LOG_INFO, "portal", "\"%s\" signed out", row.login);
    }
    /* Whatever was left of the cookie goes too. */
    set_cookie(req, res, NULL, 0);
    res->status = 204;
    res->content_type = NULL;
}

void sg_portal_session(sg_worker *w, sg_request *req, sg_response *res)
{
    if (!strcmp(req->method, "POST")) {
        sign_in(w, req, res);
    } else if (!strcmp(req->method, "DELETE")) {
        sign_out(w, req, res);
    } else if (safe_method(req)) {
        cookie k;
        session_row row;
        s_state state = session_load(w, req, &k, &row);
        if (state == S_ERROR)
            error_json(res, 503, "the store is unavailable");
        else if (state != S_VALID)
            error_json(res, 401, "not signed in");
        else
            reply(res, 200, session_view(w, req, &k, row.tenant, row.login, row.expires_ms));
        explicit_bzero(&k, sizeof k);
    } else {
        error_json(res, 405, "method not allowed here");
        sg_respond_header(res, "Allow", "GET, POST, DELETE");
    }
}
