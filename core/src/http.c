#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif

#include "http.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <civetweb.h>

#include "admin.h"
#include "buf.h"
#include "health.h"
#include "log.h"
#include "lua_host.h"
#include "metrics.h"
#include "portal.h"
#include "util.h"

/* CivetWeb's buffer for a request line and its headers. */
#define SG_HEADER_BYTES 16384

/* ---- worker stacks ------------------------------------------------------------ */

/*
** Debian's CivetWeb 1.15 is built with USE_STACK_SIZE=102400: every thread it
** starts, each request's worker included, gets a 100 KiB stack, and it has
** no option to change that. A request runs jansson, SQLite or libpq, and
** Lua on that stack; 100 KiB is too little to be sure of (a filter nested
** a few hundred levels overflowed it and killed the process). The
** executable's own definition comes first in symbol lookup, so CivetWeb's
** call lands here, and any thread asking for less than SG_THREAD_STACK
** gets that much. Only address space is reserved; RssAnon counts the pages
** a thread touches.
*/
#define SG_THREAD_STACK (1024 * 1024)

int pthread_attr_setstacksize(pthread_attr_t *attr, size_t size)
{
    typedef int (*setstacksize_fn)(pthread_attr_t *, size_t);
    static _Atomic(setstacksize_fn) real;
    setstacksize_fn fn = real;
    if (!fn) {
        /* Copied, not cast: ISO C converts no void * to a function pointer. */
        void *sym = dlsym(RTLD_NEXT, "pthread_attr_setstacksize");
        if (!sym) return ENOSYS;
        memcpy(&fn, &sym, sizeof fn);
        real = fn;
    }
    return fn(attr, size < SG_THREAD_STACK ? SG_THREAD_STACK : size);
}

struct sg_http {
    struct mg_context *ctx;
    sg_server *srv;
    int scim_port;
    int admin_port;
    bool split; /* admin_listen differs from listen */
};

/* ---- trusted proxies ----------------------------------------------------- */

static bool addr_match(const char *entry, size_t n, const char *addr)
{
    char e[64];
    if (n >= sizeof e) return false;
    memcpy(e, entry, n);
    e[n] = '\0';
    char *slash = strchr(e, '/');
    int bits = 32;
    if (slash) {
        *slash = '\0';
        int64_t b;
        if (!sg_parse_i64(slash + 1, &b) || b < 0 || b > 32) return false;
        bits = (int)b;
    }
    struct in_addr a, net;
    if (inet_pton(AF_INET, e, &net) != 1 || inet_pton(AF_INET, addr, &a) != 1) return false;
    uint32_t mask = bits == 0 ? 0 : htonl(~0u << (32 - bits));
    return (a.s_addr & mask) == (net.s_addr & mask);
}

bool sg_addr_in_list(const char *list, const char *addr)
{
    if (!list || !addr) return false;
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ') e++;
        if (e > p && addr_match(p, (size_t)(e - p), addr)) return true;
        p = e;
    }
    return false;
}

/* ---- worker threads --------------------------------------------------------- */

static void *init_thread(const struct mg_context *ctx, int thread_type)
{
    if (thread_type != 1) return NULL;
    sg_http *h = mg_get_user_data(ctx);
    sg_worker *w = calloc(1, sizeof *w);
    if (w) {
        w->srv = h->srv;
        w->lua = sg_lua_new();
    }
    return w;
}

static void exit_thread(const struct mg_context *ctx, int thread_type, void *p)
{
    (void)ctx;
    (void)thread_type;
    sg_worker *w = p;
    if (!w) return;
    if (w->conn) w->srv->plugins->st->disconnect(w->conn);
    sg_lua_free(w->lua);
    free(w);
}

/* ---- writing responses -------------------------------------------------------- */

/*
** The Date header (RFC 9110 §5.6.7, IMF-fixdate). CivetWeb 1.15 writes one
** itself only when the handler has not, and formats it with gmtime(),
** whose static buffer two worker threads then share (ThreadSanitizer
** reports the race; a response could carry another's garbled date). So we
** always send our own, from gmtime_r and fixed English names (no locale).
*/
static void http_date(char out[64])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm)) memset(&tm, 0, sizeof tm);
    /* The remainders only tell the compiler the ranges gmtime_r keeps. */
    snprintf(out, 64, "%.3s, %02u %.3s %04u %02u:%02u:%02u GMT", days[(unsigned)tm.tm_wday % 7],
             (unsigned)tm.tm_mday % 32, months[(unsigned)tm.tm_mon % 12],
             (unsigned)(tm.tm_year + 1900) % 10000, (unsigned)tm.tm_hour % 24,
             (unsigned)tm.tm_min % 60, (unsigned)tm.tm_sec % 61);
}

static void send_response(struct mg_connection *conn, const sg_response *res,
                          const char *request_id, bool close, bool head)
{
    char len[32], date[64];
    mg_response_header_start(conn, res->status);
    http_date(date);
    mg_response_header_add(conn, "Date", date, -1);
    if (res->content_type && res->status != 204 && res->status != 304) {
        mg_response_header_add(conn, "Content-Type", res->content_type, -1);
        snprintf(len, sizeof len, "%zu", res->body.len);
    } else {
        snprintf(len, sizeof len, "0");
    }
    if (res->status != 204 && res->status != 304)
        mg_response_header_add(conn, "Content-Length", len, -1);
    mg_response_header_add(conn, "X-Request-Id", request_id, -1);
    mg_response_header_add(conn, "Cache-Control",
                           res->cache_control ? res->cache_control : "no-store", -1);
    if (close) mg_response_header_add(conn, "Connection", "close", -1);
    if (res->headers.len) mg_response_header_add_lines(conn, res->headers.data);
    mg_response_header_send(conn);
    if (!head && res->status != 204 && res->status != 304 && res->body.len)
        mg_write(conn, res->body.data, res->body.len);
}

static void plain_json(sg_response *res, int status, const char *body)
{
    res->status = status;
    res->content_type = SG_CT_JSON;
    sg_buf_puts(&res->body, body);
}

/* CivetWeb's own errors (bad request line, headers too large or too slow,
 * ...) in SCIM form instead of its HTML/text pages. Its message alone
 * ("Malformed message") does not say what to fix. */
static int http_error(struct mg_connection *conn, int status, const char *msg)
{
    const sg_http *h = mg_get_user_data(mg_get_context(conn));
    sg_response res = {0};
    char id[17], detail[300];
    unsigned char rnd[8];
    sg_random(rnd, sizeof rnd);
    sg_hex(rnd, sizeof rnd, id);
    if (!msg || !*msg) msg = "the request could not be read";
    if (status == 400 || status == 408 || status == 413 || status == 431)
        snprintf(detail, sizeof detail,
                 "%s: a request line and its headers must be well-formed HTTP/1.1, fit in %d "
                 "bytes and arrive within %lld ms",
                 msg, SG_HEADER_BYTES, (long long)h->srv->cfg->limits.request_timeout_ms);
    else
        snprintf(detail, sizeof detail, "%s", msg);
    sg_respond_error(&res, status, status == 400 ? "invalidSyntax" : NULL, detail);
    mg_disable_connection_keep_alive(conn);
    send_response(conn, &res, id, true, false);
    sg_response_free(&res);
    sg_log(SG_LOG_INFO, "http", "rejected a malformed request with %d", status);
    return 0;
}

/* ---- the request handler ------------------------------------------------------- */

typedef struct req_impl {
    struct mg_connection *conn;
} req_impl;

static const char *get_header(const sg_request *r, const char *name)
{
    const req_impl *ri = r->impl;
    return mg_get_header(ri->conn, name);
}

/*
** Read the body up to `limit` bytes, within about `timeout_ms` of the start.
** 0 on success, 413 when larger, 408 when it does not arrive in time, 400 on
** a read error.
**
** mg_read returns once it has all it asked for, or when the client has sent
** nothing for request_timeout_ms: a client that sends a byte now and then
** keeps one call, and the worker, for as long as it likes. So the first call
** asks for one byte and each call that gets all it asked for doubles the
** next: a call never waits for much more than what came before it, and the
** deadline, checked between calls, holds to about twice timeout_ms. Bodies
** usually arrive with their headers and are copied from CivetWeb's buffer,
** so the small first calls cost no system calls.
*/
static int read_body(struct mg_connection *conn, long long declared, int64_t limit,
                     int64_t timeout_ms, sg_buf *b)
{
    if (declared > limit) return 413;
    if (declared > 0 && sg_buf_reserve(b, (size_t)declared) != SG_OK) return 500;
    int64_t deadline = sg_mono_ms() + timeout_ms;
    char chunk[16384];
    size_t want = 1;
    for (;;) {
        int n = mg_read(conn, chunk, want);
        /* 0 before the declared length: mg_read timed out with nothing
         * read (a client that went quiet), not the end of the body. */
        if (n == 0) return declared > 0 && (long long)b->len < declared ? 408 : 0;
        if (n < 0) return 400;
        if ((int64_t)(b->len + (size_t)n) > limit) return 413;
        if (sg_buf_append(b, chunk, (size_t)n) != SG_OK) return 500;
        if (sg_mono_ms() > deadline) return 408;
        if ((size_t)n == want && want < sizeof chunk) want *= 2;
    }
}

/* The answer for a body read_body refused. */
static void body_error(const sg_config *cfg, int rc, bool scim, sg_response *res)
{
    char msg[160];
    if (rc == 413)
        snprintf(msg, sizeof msg, "the request body is larger than %lld bytes",
                 (long long)cfg->limits.body_bytes);
    else if (rc == 408)
        snprintf(msg, sizeof msg, "the request body did not arrive within %lld ms",
                 (long long)cfg->limits.request_timeout_ms);
    else
        snprintf(msg, sizeof msg, "the request body could not be read");
    if (scim) {
        sg_respond_error(res, rc, NULL, msg);
        return;
    }
    res->status = rc;
    res->content_type = SG_CT_JSON;
    sg_buf_printf(&res->body, "{\"status\":%d,\"detail\":", rc);
    sg_buf_json_str(&res->body, msg, strlen(msg));
    sg_buf_putc(&res->body, '}');
}

static void readiness(sg_worker *w, sg_response *res)
{
    sg_error err;
    sg_conn *c;
    const sg_storage_vtab *st = w->srv->plugins->st;
    bool store = sg_worker_conn(w, &c, &err) == SG_OK && st->begin(c, SG_TXN_READ, &err) == SG_OK &&
                 st->commit(c, &err) == SG_OK;
    if (!store && w->conn) st->rollback(w->conn);
    bool scripts = sg_scripts_ready();
    res->status = store && scripts ? 200 : 503;
    res->content_type = SG_CT_JSON;
    sg_buf_printf(&res->body,
                  "{\"status\":\"%s\",\"storage\":", store && scripts ? "ready" : "not ready");
    if (store)
        sg_buf_puts(&res->body, "\"ok\"");
    else
        sg_buf_json_str(&res->body, err.detail, strlen(err.detail));
    sg_buf_puts(&res->body, ",\"scripts\":");
    sg_scripts_status(&res->body);
    sg_buf_putc(&res->body, '}');
}

static int handler(struct mg_connection *conn, void *cbdata)
{
    sg_http *h = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    sg_worker *w = mg_get_thread_pointer(conn);
    int64_t t0 = sg_mono_us();
    char id[17];
    unsigned char rnd[8];
    sg_random(rnd, sizeof rnd);
    sg_hex(rnd, sizeof rnd, id);
    sg_log_set_request_id(id);
    sg_lua_request_start(w->lua);

    const sg_config *cfg = h->srv->cfg;
    sg_request req = {.method = ri->request_method,
                      .query = ri->query_string,
                      .request_id = id,
                      .peer = ri->remote_addr,
                      .header = get_header};
    req_impl impl = {conn};
    req.impl = &impl;
    char peer[48], base[300];
    snprintf(base, sizeof base, "%s", cfg->public_url);
    if (cfg->trusted_proxies && sg_addr_in_list(cfg->trusted_proxies, ri->remote_addr)) {
        /* The client is the first X-Forwarded-For entry; the proxy's scheme
         * and host make the base URL unless public_url is configured. */
        const char *xff = mg_get_header(conn, "X-Forwarded-For");
        if (xff) {
            /* Only an address: a proxy that appends passes on what the
             * client wrote there, and the peer goes into logs and the
             * token's last-use record. */
            size_t n = strcspn(xff, ", ");
            unsigned char a[sizeof(struct in6_addr)];
            if (n > 0 && n < sizeof peer) {
                memcpy(peer, xff, n);
                peer[n] = '\0';
                if (inet_pton(AF_INET, peer, a) == 1 || inet_pton(AF_INET6, peer, a) == 1)
                    req.peer = peer;
            }
        }
        const char *proto = mg_get_header(conn, "X-Forwarded-Proto");
        const char *host = mg_get_header(conn, "X-Forwarded-Host");
        if (!host) host = mg_get_header(conn, "Host");
        if (!cfg->public_url_set && proto && host &&
            (!strcasecmp(proto, "https") || !strcasecmp(proto, "http")) && strlen(host) < 200 &&
            !strpbrk(host, "/\\\"<> "))
            snprintf(base, sizeof base, "%s://%s", !strcasecmp(proto, "https") ? "https" : "http",
                     host);
    }
    req.base_url = base;
    sg_route_path(ri->local_uri ? ri->local_uri : "/", &req.route);

    sg_response res = {0};
    sg_buf body = {0};
    bool close = false, body_read = false;
    bool on_admin = !h->split || ri->server_port == h->admin_port;
    bool on_scim = !h->split || ri->server_port == h->scim_port;
    /* CivetWeb keeps MG_MAX_HEADERS header fields and drops the rest without
     * a word: an If-Match or Authorization past them would go unseen. */
    if (ri->num_headers >= MG_MAX_HEADERS) {
        char msg[96];
        snprintf(msg, sizeof msg, "a request may carry at most %d header fields",
                 MG_MAX_HEADERS - 1);
        sg_respond_error(&res, 431, NULL, msg);
        req.route.kind = SG_ROUTE_NOT_FOUND;
        close = true;
        goto respond;
    }
    switch (req.route.kind) {
    case SG_ROUTE_HEALTHZ:
        plain_json(&res, 200, "{\"status\":\"ok\"}");
        break;
    case SG_ROUTE_READYZ:
        readiness(w, &res);
        break;
    case SG_ROUTE_SCIM: {
        if (!on_scim) {
            sg_respond_error(&res, 404, NULL, "SCIM is served on the listen address");
            break;
        }
        int rc = read_body(conn, ri->content_length, cfg->limits.body_bytes,
                           cfg->limits.request_timeout_ms, &body);
        body_read = true;
        if (rc) {
            body_error(cfg, rc, true, &res);
            close = true; /* the rest of the body is not read */
        } else {
            req.body = body.data;
            req.body_len = body.len;
            sg_scim_handle(w, &req, &res);
        }
        break;
    }
    case SG_ROUTE_ADMIN: {
        if (!on_admin) {
            sg_respond_error(&res, 404, NULL, "not found");
            break;
        }
        int rc = read_body(conn, ri->content_length, cfg->limits.body_bytes,
                           cfg->limits.request_timeout_ms, &body);
        body_read = true;
        if (rc) {
            body_error(cfg, rc, false, &res);
            close = true;
        } else {
            req.body = body.data;
            req.body_len = body.len;
            sg_admin_handle(w, &req, &res);
        }
        break;
    }
    case SG_ROUTE_PORTAL:
        if (!on_admin) {
            sg_respond_error(&res, 404, NULL, "not found");
            break;
        }
        sg_portal_file(w, &req, &res);
        break;
    case SG_ROUTE_METRICS:
        /* An operator's admin token, on admin_listen: tenant ids are the
         * secret half of tenant URLs, and admin_listen is the SCIM
         * listener unless configured apart. */
        if (!on_admin) {
            sg_respond_error(&res, 404, NULL, "not found");
            break;
        }
        if (!sg_admin_operator(w, &req, &res)) break;
        if (strcmp(req.method, "GET")) {
            plain_json(&res, 405, "{\"status\":405,\"detail\":\"use GET\"}");
            sg_respond_header(&res, "Allow", "GET");
            break;
        }
        sg_metrics_scrape(w, &res);
        break;
    default:
        sg_respond_error(&res, 404, NULL,
                         "not found: the SCIM endpoint is /scim/v2/<tenant-id> (the tenant URL)");
        break;
    }
respond:
    /* A body nobody read is not drained (CivetWeb would read all of it,
     * however large it says it is, to keep the connection): close instead. */
    if (!body_read && (ri->content_length > 0 || mg_get_header(conn, "Transfer-Encoding")))
        close = true;
    if (close) mg_disable_connection_keep_alive(conn);
    /* Counted before the answer leaves: a client that reads /metrics right
     * after its answer must find its request counted. */
    int64_t us = sg_mono_us() - t0;
    if (req.route.kind == SG_ROUTE_SCIM)
        sg_metrics_scim_request(req.authenticated ? req.route.tenant : NULL,
                                sg_metrics_op(&req.route, req.method), res.status, us);
    else
        sg_metrics_http_request(req.route.kind, res.status);
    if (req.route.kind == SG_ROUTE_SCIM && on_scim) sg_health_note(req.route.tenant, res.status);
    if (on_admin && (req.route.kind == SG_ROUTE_ADMIN || req.route.kind == SG_ROUTE_PORTAL)) {
        /* The portal's pages and the API they call: nothing runs but our
         * own files, nothing frames them, nothing guesses types. */
        sg_respond_header(&res, "Content-Security-Policy",
                          "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                          "form-action 'self'; frame-ancestors 'none'");
        sg_respond_header(&res, "X-Frame-Options", "DENY");
        sg_respond_header(&res, "X-Content-Type-Options", "nosniff");
        sg_respond_header(&res, "Referrer-Policy", "no-referrer");
    }
    send_response(conn, &res, id, close, !strcmp(ri->request_method, "HEAD"));

    if (sg_log_enabled(SG_LOG_INFO)) {
        sg_buf f = {0};
        sg_buf_printf(&f, "\"method\":\"%s\",\"path\":", req.method);
        sg_buf_json_str(&f, req.route.norm, strlen(req.route.norm));
        sg_buf_printf(&f, ",\"status\":%d,\"ms\":%lld,\"peer\":\"%s\"", res.status,
                      (long long)(us / 1000), req.peer);
        if (req.route.kind == SG_ROUTE_SCIM)
            sg_buf_printf(&f, ",\"tenant\":\"%s\"", req.route.tenant);
        if (req.principal.token_id[0])
            sg_buf_printf(&f, ",\"token_id\":\"%s\"", req.principal.token_id);
        sg_log_fields(SG_LOG_INFO, "http", "request", f.data);
        sg_buf_free(&f);
    }
    int status = res.status;
    bool large = body.len >= SG_TRIM_BYTES || res.body.len >= SG_TRIM_BYTES;
    sg_response_free(&res);
    sg_buf_free(&body);
    if (large) malloc_trim(0);
    sg_log_set_request_id(NULL);
    return status;
}

static int log_message(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    sg_log(SG_LOG_WARN, "civetweb", "%s", message);
    return 1;
}

static int port_of(const char *listen)
{
    const char *colon = strrchr(listen, ':');
    int64_t p;
    if (!sg_parse_i64(colon ? colon + 1 : listen, &p)) return -1;
    return (int)p;
}

bool sg_http_start(sg_server *srv, sg_http **out, char *err, size_t errlen)
{
    const sg_config *cfg = srv->cfg;
    sg_http *h = calloc(1, sizeof *h);
    if (!h) abort();
    h->srv = srv;
    h->scim_port = port_of(cfg->listen);
    h->admin_port = port_of(cfg->admin_listen);
    h->split = strcmp(cfg->listen, cfg->admin_listen) != 0;
    if (h->split && h->scim_port == h->admin_port) {
        snprintf(err, errlen, "listen and admin_listen must use different ports");
        free(h);
        return false;
    }
    char ports[256], threads[32];
    if (h->split)
        snprintf(ports, sizeof ports, "%s,%s", cfg->listen, cfg->admin_listen);
    else
        snprintf(ports, sizeof ports, "%s", cfg->listen);
    snprintf(threads, sizeof threads, "%lld", (long long)cfg->limits.workers);
    char request_ms[32], idle_ms[32], header_bytes[16];
    snprintf(header_bytes, sizeof header_bytes, "%d", SG_HEADER_BYTES);
    snprintf(request_ms, sizeof request_ms, "%lld", (long long)cfg->limits.request_timeout_ms);
    snprintf(idle_ms, sizeof idle_ms, "%lld", (long long)cfg->limits.idle_timeout_ms);
    const char *options[] = {
        "listening_ports",
        ports,
        "num_threads",
        threads,
        "enable_keep_alive",
        "yes",
        /* A connection that sends nothing, or its headers a byte at a
         * time, holds a worker for at most request_timeout_ms (its body
         * as long again, read_body); an idle keep-alive one idle_timeout. */
        "keep_alive_timeout_ms",
        idle_ms,
        "request_timeout_ms",
        request_ms,
        "linger_timeout_ms",
        "1000",
        "max_request_size",
        header_bytes,
        "enable_directory_listing",
        "no",
        "decode_url",
        "yes",
        /* Headers and body leave in two writes; without TCP_NODELAY, Nagle
         * and delayed ACKs add ~40 ms to every keep-alive response. */
        "tcp_nodelay",
        "1",
        NULL,
    };
    struct mg_callbacks cb = {0};
    cb.init_thread = init_thread;
    cb.exit_thread = exit_thread;
    cb.log_message = log_message;
    cb.http_error = http_error;
    char mgerr[256] = "";
    unsigned code = 0;
    struct mg_error_data ed = {&code, mgerr, sizeof mgerr};
    struct mg_init_data init = {&cb, h, options};
    h->ctx = mg_start2(&init, &ed);
    if (!h->ctx) {
        snprintf(err, errlen, "cannot listen on %s: %s", ports, mgerr[0] ? mgerr : "start failed");
        free(h);
        return false;
    }
    /* One handler for every path, so that even unknown paths answer in
     * SCIM JSON rather than CivetWeb's HTML. */
    mg_set_request_handler(h->ctx, "**", handler, h);
    *out = h;
    return true;
}

void sg_http_stop(sg_http *h)
{
    if (!h) return;
    mg_stop(h->ctx);
    free(h);
}
