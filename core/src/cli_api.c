/* The api commands of the command line (DESIGN §1d): a running gateway's
 * /admin/v1 (admin.h) over libcurl, JSON with jansson. */
#include "cli_api.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "admin.h"
#include "buf.h"
#include "config.h"
#include "util.h"

#define PAGE     1000 /* the admin API's largest page and batch */
#define PAGE_TXT "1000"

static int usage_error(const char *msg)
{
    if (msg) fprintf(stderr, "scimgate: %s\n", msg);
    fprintf(stderr, "run 'scimgate help' for usage\n");
    return 2;
}

/* A string member of a JSON object, or `dflt`. */
static const char *jstr(const json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

static void print_json_line(const json_t *j)
{
    char *txt = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (txt) printf("%s\n", txt);
    free(txt);
}

/* ---- flags ------------------------------------------------------------------ */

/* Take "NAME VALUE" or "NAME=VALUE" out of argv (the last one wins).
 * 1 found (*val set), 0 absent, -1 NAME without a value. */
static int take_flag(int *argc, char **argv, const char *name, const char **val)
{
    size_t n = strlen(name);
    int out = 0, found = 0;
    for (int i = 0; i < *argc; i++) {
        if (!strncmp(argv[i], name, n) && argv[i][n] == '=') {
            *val = argv[i] + n + 1;
            found = 1;
        } else if (!strcmp(argv[i], name)) {
            if (i + 1 >= *argc) return -1;
            *val = argv[++i];
            found = 1;
        } else {
            argv[out++] = argv[i];
        }
    }
    *argc = out;
    return found;
}

/* Take the switch NAME out of argv; whether it was there. */
static bool take_switch(int *argc, char **argv, const char *name)
{
    int out = 0;
    bool found = false;
    for (int i = 0; i < *argc; i++) {
        if (!strcmp(argv[i], name))
            found = true;
        else
            argv[out++] = argv[i];
    }
    *argc = out;
    return found;
}

/* A flag left over once the command took its own: an unknown flag. */
static bool stray_flag(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (!strncmp(argv[i], "--", 2)) {
            fprintf(stderr, "scimgate: unknown flag %s\n", argv[i]);
            return true;
        }
    }
    return false;
}

typedef struct api_opts {
    const char *url;   /* the gateway's admin base URL */
    const char *token; /* the bearer token (never printed) */
    bool url_given;    /* --url on the command line */
    char base[300];
} api_opts;

/* --url and --admin-token (or SCIMGATE_ADMIN_TOKEN) out of argv. The default
 * URL is http://<admin_listen>, with an all-interfaces address made local.
 * 0, or a usage error's exit status. */
static int api_flags(const sg_config *cfg, int *argc, char **argv, api_opts *o)
{
    memset(o, 0, sizeof *o);
    o->token = getenv("SCIMGATE_ADMIN_TOKEN");
    if (take_flag(argc, argv, "--url", &o->url) < 0 ||
        take_flag(argc, argv, "--admin-token", &o->token) < 0)
        return usage_error("--url and --admin-token take a value");
    o->url_given = o->url != NULL;
    if (!o->url) {
        const char *listen = cfg->admin_listen;
        if (!strncmp(listen, "0.0.0.0:", 8))
            snprintf(o->base, sizeof o->base, "http://127.0.0.1:%s", listen + 8);
        else
            snprintf(o->base, sizeof o->base, "http://%s", listen);
        o->url = o->base;
    }
    return 0;
}

static int need_token(const api_opts *o)
{
    if (o->token && *o->token) return 0;
    return usage_error("an admin token is needed: --admin-token TOKEN or SCIMGATE_ADMIN_TOKEN "
                       "(scimgate admin create TENANT LOGIN)");
}

/* ---- HTTP ------------------------------------------------------------------- */

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    return sg_buf_append(ud, p, size * n) == SG_OK ? size * n : 0;
}

/* Call the admin API: METHOD url with the bearer token and, when `json` is
 * not NULL, that JSON request body. Returns the HTTP status (0 when no answer;
 * then `body` holds curl's message). Redirects are not followed, so the token
 * goes nowhere else. */
static long api_call(const char *method, const char *url, const char *token, const char *json,
                     sg_buf *body)
{
    CURL *h = curl_easy_init();
    if (!h) {
        sg_buf_puts(body, "cannot start libcurl");
        return 0;
    }
    sg_buf auth = {0};
    struct curl_slist *hdr = NULL;
    sg_buf_printf(&auth, "Authorization: Bearer %s", token ? token : "");
    hdr = curl_slist_append(hdr, auth.data ? auth.data : "");
    hdr = curl_slist_append(hdr, "Accept: application/json");
    if (json) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    } else {
        sg_buf_reset(body);
        sg_buf_puts(body, curl_easy_strerror(rc));
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    if (auth.data) explicit_bzero(auth.data, auth.len);
    sg_buf_free(&auth);
    return status;
}

/* A request URL being built; `oom` once an append failed. */
typedef struct api_url {
    sg_buf b;
    bool oom;
} api_url;

/* Append `sep` and the percent-escaped `s`. */
static void url_part(api_url *u, const char *sep, const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    if (!e || sg_buf_puts(&u->b, sep) != SG_OK || sg_buf_puts(&u->b, e) != SG_OK) u->oom = true;
    curl_free(e);
}

/* <base>/admin/v1/<segment>/...: the segments (NULL-terminated) escaped. */
static api_url url_make(const api_opts *o, ...)
{
    api_url u = {{0}, false};
    size_t n = strlen(o->url);
    while (n && o->url[n - 1] == '/') n--;
    if (sg_buf_append(&u.b, o->url, n) != SG_OK || sg_buf_puts(&u.b, "/admin/v1") != SG_OK)
        u.oom = true;
    va_list ap;
    va_start(ap, o);
    for (const char *s; (s = va_arg(ap, const char *));) url_part(&u, "/", s);
    va_end(ap);
    return u;
}

/* Append "?name=value" (or "&name=value"), the value escaped. */
static void url_query(api_url *u, const char *name, const char *value)
{
    const char *sep = u->b.data && strchr(u->b.data, '?') ? "&" : "?";
    if (sg_buf_printf(&u->b, "%s%s", sep, name) != SG_OK) u->oom = true;
    url_part(u, "=", value);
}

/* Why a call failed: the HTTP status and the API's detail, or why there was
 * no answer. */
static void api_refused(const char *method, const char *url, long status, const json_t *j,
                        const sg_buf *body)
{
    if (!status) {
        fprintf(stderr, "scimgate: %s: %s\n", url, body->data ? body->data : "no answer");
        return;
    }
    const char *detail = jstr(j, "detail", NULL);
    if (detail)
        fprintf(stderr, "scimgate: %s %s: HTTP %ld: %s\n", method, url, status, detail);
    else
        fprintf(stderr, "scimgate: %s %s: HTTP %ld%s%.200s\n", method, url, status,
                body->len ? ": " : "", body->len ? body->data : "");
}

/*
** One admin API call: METHOD u (freed here), with the JSON object `req` as
** the body (POST and PATCH send {} without one). On a 2xx status: 0 and,
** when `out` is not NULL, the answer in *out (json_decref; an empty object
** when the answer has no body). Otherwise 1, with why on stderr.
*/
static int api_json(const api_opts *o, const char *method, api_url *u, const json_t *req,
                    json_t **out)
{
    if (out) *out = NULL;
    bool send = !strcmp(method, "POST") || !strcmp(method, "PATCH");
    char *txt = NULL;
    if (send) txt = req ? json_dumps(req, JSON_COMPACT) : strdup("{}");
    if (u->oom || (send && !txt)) {
        fprintf(stderr, "scimgate: out of memory\n");
        free(txt);
        sg_buf_free(&u->b);
        return 1;
    }
    sg_buf body = {0};
    long status = api_call(method, u->b.data, o->token, txt, &body);
    free(txt);
    json_t *j = body.len ? json_loadb(body.data, body.len, 0, NULL) : NULL;
    int rc = 0;
    if (status < 200 || status > 299) {
        api_refused(method, u->b.data, status, j, &body);
        rc = 1;
    } else if (body.len && !json_is_object(j)) {
        fprintf(stderr, "scimgate: %s %s: HTTP %ld, but the answer is not a JSON object\n", method,
                u->b.data, status);
        rc = 1;
    } else if (out) {
        *out = j ? j : json_object();
        j = NULL;
    }
    json_decref(j);
    sg_buf_free(&body);
    sg_buf_free(&u->b);
    return rc;
}

/* ---- users, timeline, settings -------------------------------------------- */

static void print_user_row(const json_t *u)
{
    printf("%-36s  %-32s  %-15s  %-32s  %s\n", jstr(u, "id", "-"), jstr(u, "userName", "-"),
           jstr(u, "state", "-"), jstr(u, "address", "-"),
           json_is_true(json_object_get(u, "detached")) ? "yes" : "no");
}

/* users TENANT [--state S]: every page, in userName order. */
static int cmd_users(api_opts *o, int argc, char **argv)
{
    const char *state = NULL;
    if (take_flag(&argc, argv, "--state", &state) < 0 || stray_flag(argc, argv) || argc != 1)
        return usage_error("usage: users TENANT [--state S]");
    int rc = need_token(o);
    if (rc) return rc;
    for (json_int_t start = 1;;) {
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)start);
        api_url u = url_make(o, argv[0], "users", NULL);
        if (state) url_query(&u, "state", state);
        url_query(&u, "start", num);
        url_query(&u, "count", PAGE_TXT);
        json_t *j;
        if ((rc = api_json(o, "GET", &u, NULL, &j))) return rc;
        if (start == 1)
            fprintf(stderr, "%-36s  %-32s  %-15s  %-32s  %s\n", "ID", "USERNAME", "STATE",
                    "ADDRESS", "DETACHED");
        json_t *users = json_object_get(j, "users"), *user;
        size_t i, n = json_array_size(users);
        json_array_foreach(users, i, user) print_user_row(user);
        json_int_t total = json_integer_value(json_object_get(j, "total"));
        json_decref(j);
        start += (json_int_t)n;
        if (!n || start > total) return 0;
    }
}

/* GET u (freed), then each element of the answer's array `key` as one JSON
 * line. */
static int print_list(const api_opts *o, api_url *u, const char *key)
{
    json_t *j, *e;
    int rc = api_json(o, "GET", u, NULL, &j);
    if (rc) return rc;
    size_t i;
    json_array_foreach(json_object_get(j, key), i, e) print_json_line(e);
    if (!json_array_size(json_object_get(j, key))) fprintf(stderr, "(none)\n");
    json_decref(j);
    return 0;
}

/* timeline TENANT USER: the user's events, oldest first. */
static int cmd_timeline(api_opts *o, int argc, char **argv)
{
    if (stray_flag(argc, argv) || argc != 2) return usage_error("usage: timeline TENANT USER");
    int rc = need_token(o);
    if (rc) return rc;
    api_url u = url_make(o, argv[0], "users", argv[1], "timeline", NULL);
    return print_list(o, &u, "events");
}

json_t *sg_cli_settings_patch(int n, char *const *pairs, char *err, size_t errlen)
{
    json_t *patch = json_object();
    for (int i = 0; patch && i < n; i++) {
        const char *eq = strchr(pairs[i], '=');
        if (!eq || eq == pairs[i]) {
            snprintf(err, errlen, "%s: expected KEY=VALUE (KEY= removes the key)", pairs[i]);
            goto bad;
        }
        char *key = strndup(pairs[i], (size_t)(eq - pairs[i]));
        json_t *v = eq[1] ? json_string(eq + 1) : json_null();
        bool twice = key && json_object_get(patch, key);
        int set = key && v && !twice ? json_object_set_new(patch, key, v) : -1;
        if (set) json_decref(v);
        free(key);
        if (twice || set) {
            snprintf(err, errlen, "%s: %s", pairs[i],
                     twice ? "the key is given twice" : "not UTF-8 text");
            goto bad;
        }
    }
    if (!patch) snprintf(err, errlen, "out of memory");
    return patch;
bad:
    json_decref(patch);
    return NULL;
}

static void print_settings(json_t *answer)
{
    json_t *s = json_object_get(answer, "settings"), *v;
    if (!json_is_object(s)) s = answer; /* a bare {key: value} answer */
    const char *key;
    json_object_foreach(s, key, v)
    {
        if (json_is_string(v)) {
            printf("%s = %s\n", key, json_string_value(v));
        } else {
            char *txt = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            printf("%s = %s\n", key, txt ? txt : "?");
            free(txt);
        }
    }
    if (!json_object_size(s)) fprintf(stderr, "(no settings)\n");
}

/* settings TENANT [KEY=VALUE ...]: show, or change then show. */
static int cmd_settings(api_opts *o, int argc, char **argv)
{
    if (stray_flag(argc, argv) || argc < 1)
        return usage_error("usage: settings TENANT [KEY=VALUE ...]");
    char err[300];
    json_t *patch = NULL, *j;
    if (argc > 1 && !(patch = sg_cli_settings_patch(argc - 1, argv + 1, err, sizeof err)))
        return usage_error(err);
    int rc = need_token(o);
    if (!rc) {
        api_url u = url_make(o, argv[0], "settings", NULL);
        rc = api_json(o, patch ? "PATCH" : "GET", &u, patch, &j);
    }
    json_decref(patch);
    if (rc) return rc;
    print_settings(j);
    json_decref(j);
    return 0;
}

/* ---- invitations and approvals -------------------------------------------- */

/* invite TENANT USER...: one job id per invited user; refused ones on stderr. */
static int invite_users(api_opts *o, int argc, char **argv)
{
    if (argc - 1 > PAGE) return usage_error("at most " PAGE_TXT " users per invite");
    json_t *users = json_array(), *req = json_pack("{so}", "users", users), *j, *e;
    if (!req) {
        fprintf(stderr, "scimgate: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (json_array_append_new(users, json_string(argv[i]))) {
            json_decref(req);
            return usage_error("a USER is not UTF-8 text");
        }
    }
    api_url u = url_make(o, argv[0], "invitations", NULL);
    int rc = api_json(o, "POST", &u, req, &j);
    json_decref(req);
    if (rc) return rc;
    size_t i;
    json_array_foreach(json_object_get(j, "invitations"), i, e)
    {
        fprintf(stderr, "Invitation %s for user %s to %s, expires %s; it awaits approval.\n",
                jstr(e, "job", "?"), jstr(e, "user", "?"), jstr(e, "address", "?"),
                jstr(e, "expires", "?"));
        printf("%s\n", jstr(e, "job", "?"));
    }
    json_array_foreach(json_object_get(j, "refused"), i, e)
    {
        fprintf(stderr, "scimgate: user %s refused: %s\n", jstr(e, "user", "?"),
                jstr(e, "detail", "no detail"));
        rc = 1;
    }
    json_decref(j);
    return rc;
}

/* invite resend TENANT USER | invite expire TENANT JOB: prints the job id
 * (resend) or the job's status (expire). */
static int invite_job(api_opts *o, bool resend, int argc, char **argv)
{
    if (argc != 2)
        return usage_error(resend ? "usage: invite resend TENANT USER"
                                  : "usage: invite expire TENANT JOB");
    int rc = need_token(o);
    if (rc) return rc;
    api_url u = resend ? url_make(o, argv[0], "users", argv[1], "resend", NULL)
                       : url_make(o, argv[0], "jobs", argv[1], "expire", NULL);
    json_t *j;
    if ((rc = api_json(o, "POST", &u, NULL, &j))) return rc;
    if (resend) {
        fprintf(stderr, "New invitation for user %s; it awaits approval.\n", argv[1]);
        printf("%s\n", jstr(j, "job", "?"));
    } else {
        fprintf(stderr, "Invitation %s expired; the user is Staged again.\n", argv[1]);
        printf("%s\n", jstr(j, "status", "?"));
    }
    json_decref(j);
    return 0;
}

static int cmd_invite(api_opts *o, int argc, char **argv)
{
    if (stray_flag(argc, argv)) return usage_error(NULL);
    bool resend = argc > 0 && !strcmp(argv[0], "resend");
    if (resend || (argc > 0 && !strcmp(argv[0], "expire")))
        return invite_job(o, resend, argc - 1, argv + 1);
    if (argc < 2) return usage_error("usage: invite TENANT USER... | invite resend|expire ...");
    int rc = need_token(o);
    return rc ? rc : invite_users(o, argc, argv);
}

/* approvals TENANT: the invitations awaiting approval, one JSON per line. */
static int cmd_approvals(api_opts *o, int argc, char **argv)
{
    if (stray_flag(argc, argv) || argc != 1) return usage_error("usage: approvals TENANT");
    int rc = need_token(o);
    if (rc) return rc;
    api_url u = url_make(o, argv[0], "approvals", NULL);
    return print_list(o, &u, "approvals");
}

/* ---- user, changes ---------------------------------------------------------- */

/* user activate|restore|attach TENANT USER, user detach TENANT USER --reason R:
 * prints the user's new state. */
static int cmd_user(api_opts *o, int argc, char **argv)
{
    static const char *const actions[] = {"activate", "restore", "attach", "detach"};
    const char *reason = NULL;
    int has_reason = take_flag(&argc, argv, "--reason", &reason);
    bool known = false;
    for (size_t i = 0; argc > 0 && i < SG_ARRAY_LEN(actions); i++)
        known |= !strcmp(argv[0], actions[i]);
    bool detach = known && !strcmp(argv[0], "detach");
    if (has_reason < 0 || stray_flag(argc, argv) || !known || argc != 3 ||
        detach != (has_reason > 0))
        return usage_error("usage: user activate|restore|attach TENANT USER, "
                           "user detach TENANT USER --reason R");
    int rc = need_token(o);
    if (rc) return rc;
    json_t *req = detach ? json_pack("{ss}", "reason", reason) : NULL, *j;
    if (detach && !req) return usage_error("the reason is not UTF-8 text");
    api_url u = url_make(o, argv[1], "users", argv[2], argv[0], NULL);
    rc = api_json(o, "POST", &u, req, &j);
    json_decref(req);
    if (rc) return rc;
    fprintf(stderr, "User %s (%s) is %s%s.\n", jstr(j, "id", argv[2]), jstr(j, "userName", "?"),
            jstr(j, "state", "?"), detach ? ", detached from SCIM" : "");
    printf("%s\n", jstr(j, "state", "?"));
    json_decref(j);
    return 0;
}

/* One page of the change feed after *cursor (a string, or NULL for the
 * start): prints its events and moves *cursor. 1 on failure; *n the number of
 * events, *moved whether the cursor changed. */
static int changes_page(const api_opts *o, const char *tenant, json_t **cursor, size_t *n,
                        bool *moved)
{
    api_url u = url_make(o, tenant, "changes", NULL);
    if (*cursor) url_query(&u, "since", json_string_value(*cursor));
    url_query(&u, "limit", PAGE_TXT);
    json_t *j, *e;
    int rc = api_json(o, "GET", &u, NULL, &j);
    if (rc) return rc;
    size_t i;
    json_t *events = json_object_get(j, "events"), *next = json_object_get(j, "cursor");
    json_array_foreach(events, i, e) print_json_line(e);
    *n = json_array_size(events);
    *moved = json_is_string(next) && !(*cursor && json_equal(next, *cursor));
    if (*moved) {
        json_decref(*cursor);
        *cursor = json_incref(next);
    }
    json_decref(j);
    return 0;
}

/* changes TENANT [--since CURSOR]: every event after CURSOR, one JSON per
 * line, then {"cursor": ...} to pass as --since next time. */
static int cmd_changes(api_opts *o, int argc, char **argv)
{
    const char *since = NULL;
    if (take_flag(&argc, argv, "--since", &since) < 0 || stray_flag(argc, argv) || argc != 1)
        return usage_error("usage: changes TENANT [--since CURSOR]");
    int rc = need_token(o);
    if (rc) return rc;
    json_t *cursor = since ? json_string(since) : NULL;
    if (since && !cursor) return usage_error("the cursor is not UTF-8 text");
    size_t n = 0;
    bool moved = false;
    int pages = 0;
    for (;;) {
        if ((rc = changes_page(o, argv[0], &cursor, &n, &moved))) break;
        pages++;
        if (!n || !moved) break;
    }
    /* Even after a failed page: the cursor of the events printed so far. */
    if (pages) {
        json_t *last = json_pack("{sO}", "cursor", cursor ? cursor : json_null());
        print_json_line(last);
        json_decref(last);
    }
    json_decref(cursor);
    return rc;
}

/* ---- device key files ------------------------------------------------------- */

int sg_device_key_create(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

bool sg_device_key_write(int fd, const sg_device_key *k)
{
    char seed[(4 * SG_ED25519_KEY_LEN + 2) / 3 + 1];
    sg_base64url(k->seed, SG_ED25519_KEY_LEN, seed);
    json_t *j = json_pack("{ss ss ss ss}", "tenant", k->tenant, "device", k->device, "token",
                          k->token, "privateKey", seed);
    if (j && k->url[0] && json_object_set_new(j, "url", json_string(k->url))) {
        json_decref(j);
        j = NULL;
    }
    char *txt = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    int err = ENOMEM;
    bool ok = txt && write_all(fd, txt, strlen(txt)) && write_all(fd, "\n", 1) && !fsync(fd);
    if (txt) {
        if (!ok) err = errno;
        explicit_bzero(txt, strlen(txt));
    }
    if (close(fd) && ok) {
        ok = false;
        err = errno;
    }
    explicit_bzero(seed, sizeof seed);
    free(txt);
    json_decref(j);
    if (!ok) errno = err;
    return ok;
}

/* Copy the string member `key` into out[cap]; false when it is missing (and
 * required), not a string, or too long. */
static bool key_field(const json_t *j, const char *key, char *out, size_t cap, bool required,
                      char *err, size_t errlen)
{
    const json_t *v = json_object_get(j, key);
    if (!v && !required) return true;
    const char *s = json_string_value(v);
    if (s && !*s && !required) return true;
    if (!s || !*s || strlen(s) >= cap) {
        snprintf(err, errlen, "\"%s\" is missing, not text or too long", key);
        return false;
    }
    memcpy(out, s, strlen(s) + 1);
    return true;
}

/* Check the parsed key file j into k. */
static bool key_parse(const json_t *j, sg_device_key *k, char *err, size_t errlen)
{
    if (!key_field(j, "tenant", k->tenant, sizeof k->tenant, true, err, errlen) ||
        !key_field(j, "device", k->device, sizeof k->device, true, err, errlen) ||
        !key_field(j, "token", k->token, sizeof k->token, true, err, errlen) ||
        !key_field(j, "url", k->url, sizeof k->url, false, err, errlen))
        return false;
    const char *seed = jstr(j, "privateKey", "");
    size_t len = 0;
    if (!sg_unbase64(seed, k->seed, sizeof k->seed, &len) || len != SG_ED25519_KEY_LEN) {
        snprintf(err, errlen, "\"privateKey\" is not a base64url Ed25519 key");
        return false;
    }
    return true;
}

bool sg_device_key_read(const char *path, sg_device_key *k, char *err, size_t errlen)
{
    memset(k, 0, sizeof *k);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return false;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & (S_IRWXG | S_IRWXO))) {
        snprintf(err, errlen, "%s: %s", path,
                 S_ISREG(st.st_mode) ? "others may read this key file (chmod 600 it)"
                                     : "not a regular file");
        close(fd);
        return false;
    }
    json_error_t je;
    json_t *j = json_loadfd(fd, 0, &je);
    close(fd);
    char why[200] = "";
    bool ok = json_is_object(j) && key_parse(j, k, why, sizeof why);
    if (!ok)
        snprintf(err, errlen, "%s: not a device key file: %s", path,
                 !j       ? je.text
                 : why[0] ? why
                          : "not a JSON object");
    json_decref(j);
    if (!ok) sg_device_key_wipe(k);
    return ok;
}

void sg_device_key_wipe(sg_device_key *k)
{
    explicit_bzero(k, sizeof *k);
}

/* ---- device ------------------------------------------------------------------ */

/* Fill k from the enrolment answer {"id", "token"}; false if it is not one. */
static bool enrolled(const json_t *ans, const char *tenant, const api_opts *o, sg_device_key *k)
{
    const char *id = jstr(ans, "id", ""), *tok = jstr(ans, "token", "");
    size_t pre = strlen(SG_DEVICE_TOKEN_PREFIX);
    if (!*id || strlen(id) >= sizeof k->device || strncmp(tok, SG_DEVICE_TOKEN_PREFIX, pre) ||
        strlen(tok) >= sizeof k->token || strlen(tenant) >= sizeof k->tenant ||
        strlen(o->url) >= sizeof k->url)
        return false;
    snprintf(k->device, sizeof k->device, "%s", id);
    snprintf(k->token, sizeof k->token, "%s", tok);
    snprintf(k->tenant, sizeof k->tenant, "%s", tenant);
    snprintf(k->url, sizeof k->url, "%s", o->url);
    return true;
}

/* POST devices {"name", "publicKey"} with a new key pair; on success k holds
 * the device. */
static int enroll_call(const api_opts *o, const char *tenant, const char *name, sg_device_key *k)
{
    unsigned char pub[SG_ED25519_KEY_LEN];
    char pub64[(4 * SG_ED25519_KEY_LEN + 2) / 3 + 1];
    if (!sg_ed25519_keygen(k->seed, pub)) {
        fprintf(stderr, "scimgate: cannot generate an Ed25519 key pair\n");
        return 1;
    }
    sg_base64url(pub, sizeof pub, pub64);
    json_t *req = json_pack("{ssss}", "name", name, "publicKey", pub64), *ans;
    if (!req) return usage_error("the NAME is not UTF-8 text");
    api_url u = url_make(o, tenant, "devices", NULL);
    int rc = api_json(o, "POST", &u, req, &ans);
    json_decref(req);
    if (rc) return rc;
    if (!enrolled(ans, tenant, o, k)) {
        fprintf(stderr, "scimgate: the gateway's answer has no device id and device token "
                        "(or they are too long)\n");
        rc = 1;
    }
    json_decref(ans);
    return rc;
}

/* device enroll TENANT NAME --key FILE: prints the device id; the key and
 * the device token go only into FILE, which must not exist yet. */
static int device_enroll(api_opts *o, int argc, char **argv)
{
    const char *file = NULL;
    if (take_flag(&argc, argv, "--key", &file) <= 0 || stray_flag(argc, argv) || argc != 2)
        return usage_error("usage: device enroll TENANT NAME --key FILE");
    int rc = need_token(o);
    if (rc) return rc;
    /* Create FILE first: a device whose key cannot be kept is no use. */
    int fd = sg_device_key_create(file);
    if (fd < 0) {
        fprintf(stderr, "scimgate: %s: %s%s\n", file, strerror(errno),
                errno == EEXIST ? " (a key file is never overwritten)" : "");
        return 1;
    }
    sg_device_key k;
    memset(&k, 0, sizeof k);
    rc = enroll_call(o, argv[0], argv[1], &k);
    if (!rc && !sg_device_key_write(fd, &k)) {
        fprintf(stderr, "scimgate: %s: %s; revoke the device with 'scimgate device revoke %s %s'\n",
                file, strerror(errno), argv[0], k.device);
        rc = 1;
    } else if (rc) {
        close(fd);
    }
    if (rc) {
        unlink(file);
    } else {
        fprintf(stderr,
                "Device %s enrolled for tenant %s; its key and token are in %s (mode 0600): "
                "keep that file private.\n",
                k.device, argv[0], file);
        printf("%s\n", k.device);
    }
    sg_device_key_wipe(&k);
    return rc;
}

/* Sign one pending approval p ({"job", "toSign", ...}) into out as
 * {"job", "signature"}. */
static int sign_one(const sg_device_key *k, const json_t *p, json_t *out)
{
    const char *job = jstr(p, "job", NULL);
    const json_t *ts = json_object_get(p, "toSign");
    unsigned char sig[SG_ED25519_SIG_LEN];
    char sig64[(4 * SG_ED25519_SIG_LEN + 2) / 3 + 1];
    if (!job || !json_is_string(ts)) {
        fprintf(stderr, "scimgate: a pending approval without \"job\" or \"toSign\"\n");
        return 1;
    }
    if (!sg_ed25519_sign(k->seed, json_string_value(ts), json_string_length(ts), sig)) {
        fprintf(stderr, "scimgate: cannot sign job %s\n", job);
        return 1;
    }
    sg_base64url(sig, sizeof sig, sig64);
    if (json_array_append_new(out, json_pack("{ssss}", "job", job, "signature", sig64))) {
        fprintf(stderr, "scimgate: out of memory\n");
        return 1;
    }
    const char *name = jstr(p, "userName", NULL);
    fprintf(stderr, "Approving %s: user %s%s%s%s to %s, expires %s.\n", job, jstr(p, "user", "?"),
            name ? " (" : "", name ? name : "", name ? ")" : "", jstr(p, "address", "?"),
            jstr(p, "expires", "?"));
    return 0;
}

static const json_t *find_job(const json_t *pending, const char *job)
{
    size_t i;
    json_t *p;
    json_array_foreach(pending, i, p)
    {
        if (!strcmp(jstr(p, "job", ""), job)) return p;
    }
    return NULL;
}

/* Sign every pending approval (all) or the named jobs into out. 1 when a
 * named job is not pending or one could not be signed. */
static int sign_chosen(const sg_device_key *k, const json_t *pending, bool all, int n, char **jobs,
                       json_t *out)
{
    int rc = 0;
    size_t i;
    json_t *p;
    if (all) {
        json_array_foreach(pending, i, p) rc |= sign_one(k, p, out);
        return rc;
    }
    for (int j = 0; j < n; j++) {
        bool dup = false;
        for (int d = 0; d < j; d++) dup |= !strcmp(jobs[d], jobs[j]);
        const json_t *found = dup ? NULL : find_job(pending, jobs[j]);
        if (!dup && !found) {
            fprintf(stderr, "scimgate: job %s is not awaiting approval\n", jobs[j]);
            rc = 1;
        } else if (found) {
            rc |= sign_one(k, found, out);
        }
    }
    return rc;
}

/* POST the signed approvals in one request: prints each approved job id. */
static int post_approvals(const api_opts *o, const char *tenant, json_t *signed_)
{
    json_t *req = json_pack("{sO}", "approvals", signed_), *ans, *e;
    api_url u = url_make(o, tenant, "approvals", NULL);
    if (!req) {
        sg_buf_free(&u.b);
        fprintf(stderr, "scimgate: out of memory\n");
        return 1;
    }
    int rc = api_json(o, "POST", &u, req, &ans);
    json_decref(req);
    if (rc) return rc;
    size_t i;
    json_array_foreach(json_object_get(ans, "approved"), i, e)
    {
        /* a job id, or a job object */
        const char *id =
            json_is_string(e) ? json_string_value(e) : jstr(e, "id", jstr(e, "job", "?"));
        printf("%s\n", id);
    }
    json_array_foreach(json_object_get(ans, "refused"), i, e)
    {
        fprintf(stderr, "scimgate: job %s refused: %s\n", jstr(e, "job", "?"),
                jstr(e, "detail", "no detail"));
        rc = 1;
    }
    json_decref(ans);
    return rc;
}

/* The approvals with the device key k: GET the pending ones with the device
 * token, sign the chosen ones, POST them. */
static int approve_with(api_opts *o, const sg_device_key *k, const char *tenant, bool all, int n,
                        char **jobs)
{
    if (strcmp(k->tenant, tenant)) {
        fprintf(stderr, "scimgate: the key file is for tenant %s, not %s\n", k->tenant, tenant);
        return 1;
    }
    o->token = k->token;
    if (!o->url_given && k->url[0]) o->url = k->url;
    json_t *pending, *signed_;
    api_url u = url_make(o, tenant, "approvals", NULL);
    int rc = api_json(o, "GET", &u, NULL, &pending);
    if (rc) return rc;
    if (!(signed_ = json_array())) {
        json_decref(pending);
        return 1;
    }
    rc = sign_chosen(k, json_object_get(pending, "approvals"), all, n, jobs, signed_);
    json_decref(pending);
    if (json_array_size(signed_))
        rc |= post_approvals(o, tenant, signed_);
    else if (all)
        fprintf(stderr, "Nothing awaits approval.\n");
    json_decref(signed_);
    return rc;
}

/* device approve TENANT --key FILE (--all | JOB...): the device token from
 * FILE, not the admin token. */
static int device_approve(api_opts *o, int argc, char **argv)
{
    const char *file = NULL;
    bool all = take_switch(&argc, argv, "--all");
    if (take_flag(&argc, argv, "--key", &file) <= 0 || stray_flag(argc, argv) || argc < 1 ||
        all == (argc > 1))
        return usage_error("usage: device approve TENANT --key FILE (--all | JOB...)");
    sg_device_key k;
    char err[600];
    if (!sg_device_key_read(file, &k, err, sizeof err)) {
        fprintf(stderr, "scimgate: %s\n", err);
        return 1;
    }
    int rc = approve_with(o, &k, argv[0], all, argc - 1, argv + 1);
    sg_device_key_wipe(&k);
    return rc;
}

static void print_device_row(const json_t *d)
{
    printf("%-36s  %-24s  %-24s  %s\n", jstr(d, "id", "-"), jstr(d, "name", "-"),
           jstr(d, "created", "-"), jstr(d, "revoked", "-"));
}

/* device list TENANT | device revoke TENANT ID */
static int device_list_revoke(api_opts *o, bool revoke, int argc, char **argv)
{
    if (stray_flag(argc, argv) || argc != (revoke ? 2 : 1))
        return usage_error(revoke ? "usage: device revoke TENANT ID" : "usage: device list TENANT");
    int rc = need_token(o);
    if (rc) return rc;
    json_t *j, *d;
    api_url u = url_make(o, argv[0], "devices", revoke ? argv[1] : NULL, NULL);
    if ((rc = api_json(o, revoke ? "DELETE" : "GET", &u, NULL, &j))) return rc;
    if (revoke) {
        fprintf(stderr, "Device %s revoked; its token stops working at once.\n", argv[1]);
    } else {
        size_t i;
        fprintf(stderr, "%-36s  %-24s  %-24s  %s\n", "ID", "NAME", "CREATED", "REVOKED");
        json_array_foreach(json_object_get(j, "devices"), i, d) print_device_row(d);
    }
    json_decref(j);
    return 0;
}

static int cmd_device(api_opts *o, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    if (!strcmp(sub, "enroll")) return device_enroll(o, argc - 1, argv + 1);
    if (!strcmp(sub, "approve")) return device_approve(o, argc - 1, argv + 1);
    if (!strcmp(sub, "list") || !strcmp(sub, "revoke"))
        return device_list_revoke(o, !strcmp(sub, "revoke"), argc - 1, argv + 1);
    return usage_error("device: enroll, approve, list or revoke?");
}

/* ---- scripts ------------------------------------------------------------------ */

static int cmd_scripts(api_opts *o, int argc, char **argv)
{
    if (stray_flag(argc, argv) || argc != 1 ||
        (strcmp(argv[0], "status") && strcmp(argv[0], "reload")))
        return usage_error("usage: scripts status|reload [--url URL] [--admin-token TOKEN]");
    if (!o->token || !*o->token)
        return usage_error("an operator's admin token is needed: --admin-token or "
                           "SCIMGATE_ADMIN_TOKEN (scimgate admin create --operator LOGIN)");
    bool reload = !strcmp(argv[0], "reload");
    api_url u = reload ? url_make(o, "scripts", "reload", NULL) : url_make(o, "scripts", NULL);
    json_t *j, *sc;
    int rc = api_json(o, reload ? "POST" : "GET", &u, NULL, &j);
    if (rc) return rc;
    fprintf(stderr, "%-32s  %-8s  %-7s  %s\n", "SCRIPT", "VERSION", "LOADED", "ERROR");
    size_t i;
    json_array_foreach(json_object_get(j, "scripts"), i, sc)
    {
        const char *error = jstr(sc, "error", NULL);
        printf("%-32s  %-8lld  %-7s  %s\n", jstr(sc, "name", "?"),
               (long long)json_integer_value(json_object_get(sc, "version")),
               json_is_true(json_object_get(sc, "loaded")) ? "yes" : "no", error ? error : "-");
        if (error) rc = 1; /* a script needs attention */
    }
    fprintf(stderr, "generation %lld\n",
            (long long)json_integer_value(json_object_get(j, "generation")));
    json_decref(j);
    return rc;
}

/* ---- dispatch ------------------------------------------------------------------ */

typedef int (*api_cmd_fn)(api_opts *o, int argc, char **argv);

static const struct api_cmd {
    const char *name;
    api_cmd_fn fn;
} api_cmds[] = {
    {"users", cmd_users},     {"timeline", cmd_timeline},   {"settings", cmd_settings},
    {"invite", cmd_invite},   {"approvals", cmd_approvals}, {"user", cmd_user},
    {"changes", cmd_changes}, {"device", cmd_device},       {"scripts", cmd_scripts},
};

static const struct api_cmd *api_cmd_find(const char *name)
{
    for (size_t i = 0; name && i < SG_ARRAY_LEN(api_cmds); i++)
        if (!strcmp(api_cmds[i].name, name)) return &api_cmds[i];
    return NULL;
}

bool sg_cli_api_is(const char *cmd)
{
    return api_cmd_find(cmd) != NULL;
}

int sg_cli_api_main(const sg_config *cfg, int argc, char **argv)
{
    const struct api_cmd *c = argc > 0 ? api_cmd_find(argv[0]) : NULL;
    if (!c) return usage_error("unknown command");
    api_opts o;
    int n = argc - 1;
    int rc = api_flags(cfg, &n, argv + 1, &o);
    if (rc) return rc;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = c->fn(&o, n, argv + 1);
    curl_global_cleanup();
    return rc;
}
