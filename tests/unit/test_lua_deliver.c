/*
** Unit tests of core/src/lua_deliver.c: smtp against tests/tools/smtp_sink
** (SG_SMTP_SINK names the built binary), webhook against a one-shot HTTP
** responder forked here, spool in a temporary directory.
**
** Every test gets a fresh lua_State with the standard libraries and the
** module as the global `deliver`, and a temporary directory holding mail/
** (the sink's output) and spool/ (not created: spool must create it).
*/
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <curl/curl.h>
#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "log.h"
#include "lua_deliver.h"
#include "util.h"

#ifndef SG_SMTP_SINK
#error "SG_SMTP_SINK must name the smtp_sink binary (tests/CMakeLists.txt)"
#endif

static lua_State *L;
static char tmpdir[64];
static char maildir[128];
static char spooldir[128];
static sg_deliver_config cfg;
static pid_t sink_pid;
static int sink_port;

/* Lua helpers shared by the tests. */
static const char prelude[] =
    "function mail(t)\n"
    "  local m = {url = URL, from = 'noreply@example.com', to = 'zoe@example.org',\n"
    "             subject = 'Hi', text = 'Hello', message_id = '<job-1@scimgate.test>'}\n"
    "  for k, v in pairs(t or {}) do m[k] = v end\n"
    "  return m\n"
    "end\n"
    "function expect_nil(pat, ok, err, ...)\n"
    "  assert(ok == nil, 'expected nil, got ' .. tostring(ok) .. ' ' .. tostring(err))\n"
    "  assert(type(err) == 'string' and err:find(pat, 1, true), 'message: ' .. tostring(err))\n"
    "  return err, ...\n"
    "end\n"
    "function expect_raise(pat, f, ...)\n"
    "  local ok, err = pcall(f, ...)\n"
    "  assert(not ok, 'expected an error')\n"
    "  assert(tostring(err):find(pat, 1, true), 'error: ' .. tostring(err))\n"
    "end\n";

/* ---- helpers ------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run Lua code; a failing assert fails the test with its message. */
static void run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void run(const char *fmt, ...)
{
    char code[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(code, sizeof code, fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < sizeof code, "test code too long");
    int rc = luaL_dostring(L, code);
    cr_assert_eq(rc, LUA_OK, "lua: %s", rc == LUA_OK ? "" : lua_tostring(L, -1));
    lua_settop(L, 0);
}

static void set_url(const char *scheme, int port)
{
    run("URL = '%s://127.0.0.1:%d'", scheme, port);
}

static void setup_state(int allow)
{
    cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    /* loopback traffic must not go through a proxy from the environment */
    static const char *const proxies[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                          "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
    for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++) unsetenv(proxies[i]);
    sg_log_set_level(SG_LOG_ERROR);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sg_deliver_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    snprintf(maildir, sizeof maildir, "%s/mail", tmpdir);
    snprintf(spooldir, sizeof spooldir, "%s/spool", tmpdir);
    cr_assert_eq(mkdir(maildir, 0700), 0);
    cfg = (sg_deliver_config){
        .spool_dir = spooldir, .default_timeout_ms = 10000, .max_timeout_ms = 60000};
    L = luaL_newstate();
    cr_assert_not_null(L);
    luaL_openlibs(L);
    sg_lua_push_deliver(L, &cfg);
    lua_setglobal(L, "deliver");
    sg_lua_deliver_allow(L, allow);
    run("%s", prelude);
    run("URL = 'smtp://127.0.0.1:1'");
}

static void setup(void)
{
    setup_state(1);
}

static void setup_forbidden(void)
{
    setup_state(0);
}

static int stop_sink(void)
{
    int status = -1;
    if (sink_pid > 0) {
        kill(sink_pid, SIGTERM);
        waitpid(sink_pid, &status, 0);
        sink_pid = 0;
    }
    return status;
}

static void teardown(void)
{
    if (L != NULL) lua_close(L);
    L = NULL;
    stop_sink();
    if (tmpdir[0]) nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    curl_global_cleanup();
}

/* No .timeout: Criterion 2.4.1 then leaks in its runner under LeakSanitizer
 * (with --jobs 2 or more). Every wait here is bounded instead: curl's
 * timeouts, the responder's alarm(10), a 5 s poll for the sink's port. */
TestSuite(deliver, .init = setup, .fini = teardown);
TestSuite(deliver_forbidden, .init = setup_forbidden, .fini = teardown);

/* Start the sink on a port it picks; its first line of output is the port. */
static void start_sink(int fail_first)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        char n[16];
        snprintf(n, sizeof n, "%d", fail_first);
        setenv("SMTP_SINK_FAIL_FIRST", n, 1);
        execl(SG_SMTP_SINK, "smtp_sink", "0", maildir, (char *)NULL);
        _exit(127);
    }
    sink_pid = pid;
    close(p[1]);
    char line[32];
    size_t len = 0;
    while (len < sizeof line - 1) {
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        cr_assert_gt(poll(&pfd, 1, 5000), 0, "the sink did not print its port");
        ssize_t r = read(p[0], line + len, 1);
        cr_assert_gt(r, 0, "the sink exited (%s)", SG_SMTP_SINK);
        if (line[len] == '\n') break;
        len++;
    }
    line[len] = '\0';
    close(p[0]);
    sink_port = (int)strtol(line, NULL, 10);
    cr_assert_gt(sink_port, 0, "sink port '%s'", line);
    set_url("smtp", sink_port);
}

/* A port nobody listens on (bound, then closed). */
static int closed_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sin;
    cr_assert_eq(bind(s, (struct sockaddr *)&sin, sizeof sin), 0);
    cr_assert_eq(getsockname(s, (struct sockaddr *)&sin, &sl), 0);
    close(s);
    return ntohs(sin.sin_port);
}

/* A loopback listener; *port gets its port. */
static int listener(int *port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sin;
    cr_assert_eq(bind(s, (struct sockaddr *)&sin, sizeof sin), 0);
    cr_assert_eq(listen(s, 4), 0);
    cr_assert_eq(getsockname(s, (struct sockaddr *)&sin, &sl), 0);
    *port = ntohs(sin.sin_port);
    return s;
}

static char *read_mail(int n, size_t *len)
{
    char path[256];
    char *data;
    snprintf(path, sizeof path, "%s/%d.eml", maildir, n);
    cr_assert(sg_read_file(path, &data, len), "no %s", path);
    return data;
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

/* The unfolded value of header `name` (first match) in the header section
 * of msg, without the one space after the colon; NULL when absent. */
static char *header(const char *msg, const char *name)
{
    static char out[8192];
    size_t nl = strlen(name);
    const char *p = msg;
    while (*p && !(p[0] == '\r' && p[1] == '\n')) {
        const char *eol = strstr(p, "\r\n");
        cr_assert_not_null(eol);
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            size_t o = 0;
            const char *v = p + nl + 1;
            if (*v == ' ') v++;
            for (;;) {
                eol = strstr(v, "\r\n");
                size_t n = (size_t)(eol - v);
                cr_assert_lt(o + n, sizeof out);
                memcpy(out + o, v, n);
                o += n;
                if (eol[2] != ' ' && eol[2] != '\t') break;
                v = eol + 2; /* a folded line: drop the CRLF only */
            }
            out[o] = '\0';
            return out;
        }
        p = eol + 2;
    }
    return NULL;
}

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decode base64, skipping CR and LF; returns the length. */
static size_t unbase64(const char *in, size_t n, char *out)
{
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '\r' || in[i] == '\n') continue;
        if (in[i] == '=') break;
        int v = b64val((unsigned char)in[i]);
        cr_assert_geq(v, 0, "bad base64 byte 0x%02x", (unsigned char)in[i]);
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)(acc >> bits & 0xff);
        }
    }
    out[o] = '\0';
    return o;
}

/* A header value made only of =?UTF-8?B?...?= words, decoded. */
static char *decode_words(const char *v)
{
    static char out[8192];
    size_t o = 0;
    const char *p = v;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\0') break;
        cr_assert(strncasecmp(p, "=?UTF-8?B?", 10) == 0, "not an encoded-word: %s", p);
        p += 10;
        const char *end = strstr(p, "?=");
        cr_assert_not_null(end);
        o += unbase64(p, (size_t)(end - p), out + o);
        p = end + 2;
    }
    out[o] = '\0';
    return out;
}

/* Every line ends in CRLF and is at most `max` characters long. */
static void assert_lines(const char *msg, size_t len, size_t max)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (msg[i] != '\n') continue;
        cr_assert(i > 0 && msg[i - 1] == '\r', "bare LF at %zu", i);
        cr_assert_leq(i - 1 - start, max, "line of %zu characters: %.*s", i - 1 - start,
                      (int)(i - 1 - start), msg + start);
        start = i + 1;
    }
    cr_assert_eq(start, len, "the message does not end with CRLF");
}

/* One connection answered with a canned response; the request comes back
 * through a pipe once the child has answered. */
struct responder {
    pid_t pid;
    int port;
    int fd;
};

static char req_buf[1 << 20];

static struct responder start_responder(const char *response, size_t rlen)
{
    struct responder r;
    int ls = listener(&r.port);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    r.pid = fork();
    cr_assert_neq(r.pid, -1);
    if (r.pid == 0) {
        close(p[0]);
        alarm(10);
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) _exit(1);
        size_t n = 0, need = 0;
        while (n < sizeof req_buf) {
            ssize_t got = recv(fd, req_buf + n, sizeof req_buf - n, 0);
            if (got <= 0) break;
            n += (size_t)got;
            char *end = need ? NULL : memmem(req_buf, n, "\r\n\r\n", 4);
            if (end != NULL) {
                size_t clen = 0;
                for (char *h = req_buf; h < end; h = strstr(h, "\r\n") + 2)
                    if (strncasecmp(h, "Content-Length:", 15) == 0)
                        clen = (size_t)strtoul(h + 15, NULL, 10);
                need = (size_t)(end + 4 - req_buf) + clen;
            }
            if (need && n >= need) break;
        }
        for (size_t off = 0; off < rlen;) {
            ssize_t w = send(fd, response + off, rlen - off, MSG_NOSIGNAL);
            if (w <= 0) break;
            off += (size_t)w;
        }
        close(fd);
        for (size_t off = 0; off < n;) {
            ssize_t w = write(p[1], req_buf + off, n - off);
            if (w <= 0) break;
            off += (size_t)w;
        }
        _exit(0);
    }
    close(ls);
    close(p[1]);
    r.fd = p[0];
    run("URL = 'http://127.0.0.1:%d/hooks/invite'", r.port);
    return r;
}

/* The request the responder received (NUL-terminated, static). */
static const char *finish_responder(struct responder *r)
{
    size_t n = 0;
    ssize_t got;
    while (n < sizeof req_buf - 1 && (got = read(r->fd, req_buf + n, sizeof req_buf - 1 - n)) > 0)
        n += (size_t)got;
    req_buf[n] = '\0';
    close(r->fd);
    int status;
    waitpid(r->pid, &status, 0);
    return req_buf;
}

/* ---- smtp ------------------------------------------------------------------- */

Test(deliver, smtp_message_is_well_formed)
{
    start_sink(0);
    run("SUBJECT = 'Willkommen, Zoë — Ihr Zugang 🎉'\n"
        "ok, err = deliver.smtp(mail{subject = SUBJECT,\n"
        "  text = 'Hallo Zoë,\\nbitte klicken Sie hier.\\n.dot line\\r\\nEnde',\n"
        "  message_id = '<job-42@scimgate.test>',\n"
        "  headers = {['X-Tenant'] = 'acme', ['X-Count'] = 3}})\n"
        "assert(ok == true and err == nil, tostring(err))");
    size_t len;
    char *m = read_mail(1, &len);
    assert_lines(m, len, 78);
    cr_assert_str_eq(header(m, "X-Envelope-From"), "noreply@example.com");
    cr_assert_str_eq(header(m, "X-Envelope-To"), "zoe@example.org");
    cr_assert_str_eq(header(m, "Message-ID"), "<job-42@scimgate.test>");
    cr_assert_str_eq(header(m, "From"), "noreply@example.com");
    cr_assert_str_eq(header(m, "To"), "zoe@example.org");
    cr_assert_str_eq(header(m, "MIME-Version"), "1.0");
    cr_assert_str_eq(header(m, "Content-Type"), "text/plain; charset=utf-8");
    cr_assert_str_eq(header(m, "Content-Transfer-Encoding"), "base64");
    cr_assert_str_eq(header(m, "X-Tenant"), "acme");
    cr_assert_str_eq(header(m, "X-Count"), "3");
    const char *subject = header(m, "Subject");
    cr_assert(strncmp(subject, "=?UTF-8?B?", 10) == 0, "subject %s", subject);
    cr_assert_str_eq(decode_words(subject), "Willkommen, Zoë — Ihr Zugang 🎉");

    /* Date: RFC 5322, UTC, about now */
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *date = header(m, "Date");
    const char *end = strptime(date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    cr_assert(end != NULL && *end == '\0', "date %s", date);
    time_t t = timegm(&tm), now = time(NULL);
    cr_assert(t <= now + 1 && t >= now - 300, "date %s", date);

    /* the body: UTF-8 with every line break made CRLF */
    const char *body = strstr(m, "\r\n\r\n");
    cr_assert_not_null(body);
    body += 4;
    static char text[4096];
    unbase64(body, strlen(body), text);
    cr_assert_str_eq(text, "Hallo Zoë,\r\nbitte klicken Sie hier.\r\n.dot line\r\nEnde");
    free(m);
}

Test(deliver, smtp_multipart_and_recipient_list)
{
    start_sink(0);
    run("ok, err = deliver.smtp(mail{to = {'a@x.test', 'b@y.test'},\n"
        "  text = 'plain', html = '<p>Grüße</p>'})\n"
        "assert(ok == true, tostring(err))");
    size_t len;
    char *m = read_mail(1, &len);
    assert_lines(m, len, 78);
    cr_assert_not_null(strstr(m, "X-Envelope-To: a@x.test\r\nX-Envelope-To: b@y.test\r\n"));
    cr_assert_str_eq(header(m, "To"), "a@x.test, b@y.test");
    const char *ct = header(m, "Content-Type");
    cr_assert_str_eq(ct, "multipart/alternative; boundary=\"=_scimgate_alt\"");
    const char *p1 = strstr(m, "\r\n--=_scimgate_alt\r\n");
    cr_assert_not_null(p1);
    const char *p2 = strstr(p1 + 4, "\r\n--=_scimgate_alt\r\n");
    cr_assert_not_null(p2);
    const char *p3 = strstr(p2 + 4, "\r\n--=_scimgate_alt--\r\n");
    cr_assert_not_null(p3);
    cr_assert_not_null(strstr(p1, "Content-Type: text/plain; charset=utf-8\r\n"));
    cr_assert_not_null(strstr(p2, "Content-Type: text/html; charset=utf-8\r\n"));
    static char part[256];
    const char *b = strstr(p2 + 2, "\r\n\r\n") + 4;
    unbase64(b, (size_t)(p3 - b), part);
    cr_assert_str_eq(part, "<p>Grüße</p>");
    free(m);
}

Test(deliver, smtp_long_subjects_are_folded)
{
    start_sink(0);
    run("ASCII = string.rep('Please activate your account ', 8) .. 'now'\n"
        "UTF = string.rep('Grüße aus Zürich ', 12) .. '🎉'\n"
        "TRAP = 'looks =?like?= an encoded word'\n"
        "assert(deliver.smtp(mail{subject = ASCII}))\n"
        "assert(deliver.smtp(mail{subject = UTF}))\n"
        "assert(deliver.smtp(mail{subject = TRAP}))\n"
        "WORD = string.rep('x', 2000)\n"
        "GAP = 'a' .. string.rep(' ', 2000) .. 'b'\n"
        "assert(deliver.smtp(mail{subject = WORD}))\n"
        "assert(deliver.smtp(mail{subject = GAP}))");
    size_t len;
    char *m = read_mail(1, &len);
    assert_lines(m, len, 78);
    const char *subj = strstr(m, "\r\nSubject: "), *next = strstr(subj + 2, "\r\nMessage-ID:");
    const char *fold = strstr(subj + 2, "\r\n ");
    cr_assert(fold != NULL && fold < next, "the subject is folded");
    lua_getglobal(L, "ASCII");
    cr_assert_str_eq(header(m, "Subject"), lua_tostring(L, -1));
    free(m);

    m = read_mail(2, &len);
    assert_lines(m, len, 76); /* RFC 2047: lines with encoded-words */
    lua_getglobal(L, "UTF");
    cr_assert_str_eq(decode_words(header(m, "Subject")), lua_tostring(L, -1));
    free(m);

    /* "=?" in plain text, and runs too long to fold, are encoded too */
    static const char *const encoded[] = {"TRAP", "WORD", "GAP"};
    for (int i = 0; i < 3; i++) {
        m = read_mail(3 + i, &len);
        assert_lines(m, len, 78);
        lua_getglobal(L, encoded[i]);
        cr_assert_str_eq(decode_words(header(m, "Subject")), lua_tostring(L, -1));
        free(m);
    }
    lua_settop(L, 0);
}

Test(deliver, smtp_refuses_injection_and_bad_addresses)
{
    start_sink(0);
    run("expect_nil('subject contains a line break',\n"
        "  deliver.smtp(mail{subject = 'Hi\\r\\nBcc: evil@x.test'}))\n"
        "expect_nil('subject contains a line break', deliver.smtp(mail{subject = 'Hi\\nThere'}))\n"
        "expect_nil('from contains a line break',\n"
        "  deliver.smtp(mail{from = 'a@b.test\\r\\nBcc: evil@x.test'}))\n"
        "expect_nil('to contains a line break', deliver.smtp(mail{to = 'c@d.test\\nBcc: e@f'}))\n"
        "expect_nil('to[2] contains a line break',\n"
        "  deliver.smtp(mail{to = {'c@d.test', 'e@f.test\\r'}}))\n"
        "expect_nil('header X-A contains a line break',\n"
        "  deliver.smtp(mail{headers = {['X-A'] = 'v\\r\\nBcc: x@y.test'}}))\n"
        "expect_nil('message_id contains a line break',\n"
        "  deliver.smtp(mail{message_id = '<a@b>\\r\\nBcc: x@y.test'}))\n"
        "expect_nil('message_id must look like', deliver.smtp(mail{message_id = 'job-1'}))\n"
        "for _, a in ipairs{'a b@c.test', '<a@c.test>', 'a@@c.test', 'ac.test', 'a@c.test,d@e',\n"
        "                   '', '\"q\"@c.test', 'a@.c', 'a@c..test', 'zoë@c.test'} do\n"
        "  expect_nil('smtp: to ', deliver.smtp(mail{to = a}))\n"
        "end\n"
        "expect_nil('no recipients', deliver.smtp(mail{to = {}}))\n"
        "expect_nil('valid UTF-8', deliver.smtp(mail{text = 'bad \\xff byte'}))\n"
        "expect_nil('url must be smtp', deliver.smtp(mail{url = 'http://127.0.0.1:1'}))");
    cr_assert_eq(count_files(maildir), 0, "nothing may be sent");
}

Test(deliver, smtp_programming_errors_raise)
{
    run("local m = mail{}; m.message_id = nil\n"
        "expect_raise('message_id is required', deliver.smtp, m)\n"
        "expect_raise('smtp: message_id must be a string', deliver.smtp, mail{message_id = 1})\n"
        "m = mail{}; m.url = nil\n"
        "expect_raise('url is required', deliver.smtp, m)\n"
        "expect_raise('to must be a string or a list', deliver.smtp, mail{to = 42})\n"
        "expect_raise('to[1] must be a string', deliver.smtp, mail{to = {42}})\n"
        "expect_raise('timeout must be a number', deliver.smtp, mail{timeout = '5'})\n"
        "expect_raise('timeout must be a positive', deliver.smtp, mail{timeout = -1})\n"
        "expect_raise('timeout must be a positive', deliver.smtp, mail{timeout = 0/0})\n"
        "expect_raise('header Bcc is set by the gateway', deliver.smtp,\n"
        "  mail{headers = {Bcc = 'x@y.test'}})\n"
        "expect_raise('header content-type is set', deliver.smtp,\n"
        "  mail{headers = {['content-type'] = 'text/html'}})\n"
        "expect_raise('bad header name', deliver.smtp, mail{headers = {['X A'] = 'v'}})\n"
        "expect_raise('bad argument #1', deliver.smtp, 'x')");
}

Test(deliver, smtp_451_gives_nil_then_retry_succeeds)
{
    start_sink(1);
    run("local ok, err, code = deliver.smtp(mail{})\n"
        "expect_nil('the server replied 451', ok, err)\n"
        "assert(code == 451, 'code ' .. tostring(code))\n"
        "assert(deliver.smtp(mail{}) == true)");
    cr_assert_eq(count_files(maildir), 1);
}

Test(deliver, smtp_unreachable_fails_fast)
{
    set_url("smtp", closed_port());
    double t0 = now_s();
    run("local ok, err, code = deliver.smtp(mail{})\n"
        "expect_nil('smtp: smtp://127.0.0.1:', ok, err)\n"
        "assert(code == nil)");
    cr_assert_lt(now_s() - t0, 2.0);
}

Test(deliver, smtp_timeout_is_honoured)
{
    int port;
    int s = listener(&port); /* accepts in the kernel, never greets */
    set_url("smtp", port);
    double t0 = now_s();
    run("expect_nil('smtp: ', deliver.smtp(mail{timeout = 0.5}))");
    double dt = now_s() - t0;
    cr_assert(dt >= 0.4 && dt < 3.0, "took %.2f s", dt);
    close(s);
}

Test(deliver, log_hides_credentials_and_content)
{
    int port = closed_port();
    char logpath[192];
    snprintf(logpath, sizeof logpath, "%s/log", tmpdir);
    sg_log_set_level(SG_LOG_WARN);
    int saved = dup(STDERR_FILENO);
    int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, STDERR_FILENO);
    close(fd);
    run("expect_nil('smtp: ', deliver.smtp(mail{\n"
        "  url = 'smtp://mailuser:s3cret@127.0.0.1:%d/relay?token=abc',\n"
        "  username = 'bob', password = 'hunter2', text = 'TOP SECRET BODY'}))\n"
        "expect_nil('webhook: ', deliver.webhook{url = 'https://u:pw@127.0.0.1:%d/h/SLUG?k=v',\n"
        "  body = 'BODYTEXT', idempotency_key = 'job-9'})",
        port, port);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char *log;
    size_t len;
    cr_assert(sg_read_file(logpath, &log, &len));
    char origin[64];
    snprintf(origin, sizeof origin, "\"target\":\"smtp://127.0.0.1:%d\"", port);
    cr_assert_not_null(strstr(log, origin), "log: %s", log);
    cr_assert_not_null(strstr(log, "\"level\":\"warn\""), "log: %s", log);
    cr_assert_not_null(strstr(log, "\"key\":\"<job-1@scimgate.test>\""), "log: %s", log);
    cr_assert_not_null(strstr(log, "\"key\":\"job-9\""), "log: %s", log);
    static const char *const secrets[] = {"s3cret", "hunter2",    "mailuser",
                                          "token",  "TOP SECRET", "pw@",
                                          "SLUG",   "BODYTEXT",   "zoe@example.org"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        cr_assert_null(strstr(log, secrets[i]), "%s in the log: %s", secrets[i], log);
    free(log);
}

/* The sink itself: curl's dot-stuffing undone, envelope lines, SIGTERM. */
Test(deliver, sink_unstuffs_dots_and_stops_on_sigterm)
{
    start_sink(0);
    static const char raw[] =
        ".first\r\nSubject: dots\r\n\r\n.\r\n..two\r\nmiddle\r\n.\r\nlast\r\n";
    CURL *h = curl_easy_init();
    struct curl_slist *rcpt = curl_slist_append(NULL, "<rcpt@example.org>");
    char url[64];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%d", sink_port);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, "<from@example.org>");
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    /* curl's default read callback is fread: give it a memory FILE */
    FILE *f = fmemopen((void *)raw, sizeof raw - 1, "r");
    curl_easy_setopt(h, CURLOPT_READDATA, f);
    CURLcode rc = curl_easy_perform(h);
    fclose(f);
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(h);
    cr_assert_eq(rc, CURLE_OK, "%s", curl_easy_strerror(rc));
    size_t len;
    char *m = read_mail(1, &len);
    static const char want[] = "X-Envelope-From: from@example.org\r\n"
                               "X-Envelope-To: rcpt@example.org\r\n";
    cr_assert_eq(len, strlen(want) + sizeof raw - 1);
    cr_assert(memcmp(m, want, strlen(want)) == 0);
    cr_assert(memcmp(m + strlen(want), raw, sizeof raw - 1) == 0, "got %s", m);
    free(m);
    int status = stop_sink();
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
}

/* ---- webhook ------------------------------------------------------------------ */

static const char accepted[] = "HTTP/1.1 202 Accepted\r\nContent-Length: 8\r\n"
                               "Connection: close\r\n\r\naccepted";

Test(deliver, webhook_posts_json_with_idempotency_key)
{
    struct responder r = start_responder(accepted, sizeof accepted - 1);
    run("local status, body = deliver.webhook{url = URL, idempotency_key = 'job-42',\n"
        "  headers = {['X-Tenant'] = 'acme', Authorization = 'Bearer t0k'},\n"
        "  body = {event = 'invite', user = {id = 'u1', name = 'Zoë'}, n = 3}}\n"
        "assert(status == 202, tostring(status))\n"
        "assert(body == 'accepted', body)");
    const char *req = finish_responder(&r);
    cr_assert(strncmp(req, "POST /hooks/invite HTTP/1.1\r\n", 29) == 0, "%s", req);
    cr_assert_not_null(strstr(req, "\r\nIdempotency-Key: job-42\r\n"), "%s", req);
    cr_assert_not_null(strstr(req, "\r\nContent-Type: application/json\r\n"), "%s", req);
    cr_assert_not_null(strstr(req, "\r\nX-Tenant: acme\r\n"), "%s", req);
    cr_assert_not_null(strstr(req, "\r\nAuthorization: Bearer t0k\r\n"), "%s", req);
    cr_assert_null(strstr(req, "Expect:"), "%s", req);
    const char *body = strstr(req, "\r\n\r\n");
    cr_assert_not_null(body);
    json_error_t e;
    json_t *got = json_loads(body + 4, 0, &e);
    cr_assert_not_null(got, "body %s: %s", body + 4, e.text);
    json_t *want = json_loads(
        "{\"event\":\"invite\",\"user\":{\"id\":\"u1\",\"name\":\"Zoë\"},\"n\":3}", 0, &e);
    cr_assert(json_equal(got, want), "body %s", body + 4);
    json_decref(got);
    json_decref(want);
}

Test(deliver, webhook_string_body_and_content_type)
{
    struct responder r = start_responder(accepted, sizeof accepted - 1);
    run("assert(deliver.webhook{url = URL, idempotency_key = 'k', body = 'a=b',\n"
        "  headers = {['Content-Type'] = 'text/plain', ['X-Empty'] = ''}} == 202)");
    const char *req = finish_responder(&r);
    cr_assert_not_null(strstr(req, "\r\nContent-Type: text/plain\r\n"), "%s", req);
    cr_assert_null(strstr(req, "application/json"), "%s", req);
    cr_assert_not_null(strstr(req, "\r\nX-Empty:"), "%s", req);
    cr_assert_not_null(strstr(req, "\r\n\r\na=b"), "%s", req);
}

Test(deliver, webhook_returns_any_status)
{
    static const char *const responses[] = {
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
        "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno",
        "HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n",
    };
    static const int want[] = {503, 429, 404, 302};
    for (size_t i = 0; i < 4; i++) {
        struct responder r = start_responder(responses[i], strlen(responses[i]));
        run("local status, body = deliver.webhook{url = URL, idempotency_key = 'k', body = 'x'}\n"
            "assert(status == %d, tostring(status) .. ' ' .. tostring(body))",
            want[i]);
        finish_responder(&r);
    }
}

Test(deliver, webhook_response_body_is_capped)
{
    size_t n = 100000;
    char *resp = malloc(n + 128);
    int h = snprintf(resp, 128, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
    memset(resp + h, 'x', n);
    struct responder r = start_responder(resp, (size_t)h + n);
    run("local status, body = deliver.webhook{url = URL, idempotency_key = 'k', body = 'x'}\n"
        "assert(status == 200, tostring(status) .. ' ' .. tostring(body))\n"
        "assert(#body == %d, #body)",
        SG_DELIVER_BODY_MAX);
    finish_responder(&r);
    free(resp);
}

Test(deliver, webhook_refusals)
{
    int port = closed_port();
    run("for _, u in ipairs{'file:///etc/passwd', 'ftp://127.0.0.1/x', 'gopher://127.0.0.1/',\n"
        "                   'smtp://127.0.0.1', '/relative', 'http://a\\r\\nb'} do\n"
        "  expect_nil('url must be http', deliver.webhook{url = u, idempotency_key = 'k',\n"
        "                                                 body = 'x'})\n"
        "end\n"
        "expect_nil('webhook: http://127.0.0.1:%d:',\n"
        "  deliver.webhook{url = 'http://127.0.0.1:%d/', idempotency_key = 'k', body = 'x'})\n"
        "expect_nil('header X-A contains a line break', deliver.webhook{url = "
        "'http://127.0.0.1:1',\n"
        "  idempotency_key = 'k', body = 'x', headers = {['X-A'] = 'v\\r\\nX-B: 1'}})\n"
        "expect_nil('idempotency_key contains a line break', deliver.webhook{\n"
        "  url = 'http://127.0.0.1:1', idempotency_key = 'k\\r\\nX: 1', body = 'x'})\n"
        "expect_nil('idempotency_key must be', deliver.webhook{\n"
        "  url = 'http://127.0.0.1:1', idempotency_key = 'a b', body = 'x'})\n"
        "expect_nil('webhook: body: ', deliver.webhook{url = 'http://127.0.0.1:1',\n"
        "  idempotency_key = 'k', body = {name = 'bad \\xff'}})\n"
        "expect_raise('idempotency_key is required', deliver.webhook,\n"
        "  {url = 'http://127.0.0.1:1', body = 'x'})\n"
        "expect_raise('body is required', deliver.webhook,\n"
        "  {url = 'http://127.0.0.1:1', idempotency_key = 'k'})\n"
        "expect_raise('body must be a string or a table', deliver.webhook,\n"
        "  {url = 'http://127.0.0.1:1', idempotency_key = 'k', body = 1})\n"
        "expect_raise('header idempotency-key is set by the gateway', deliver.webhook,\n"
        "  {url = 'http://127.0.0.1:1', idempotency_key = 'k', body = 'x',\n"
        "   headers = {['idempotency-key'] = 'other'}})",
        port, port);
}

/* ---- spool -------------------------------------------------------------------- */

Test(deliver, spool_writes_atomically_with_mode_0600)
{
    run("assert(deliver.spool{name = 'invite-job-42.eml', content = 'first\\0binary'} == true)\n"
        "assert(deliver.spool{name = 'invite-job-42.eml', content = 'second'} == true)\n"
        "assert(deliver.spool{name = string.rep('a', 128), content = ''} == true)");
    struct stat st;
    cr_assert_eq(stat(spooldir, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(st.st_mode & 07777, 0700, "spool dir mode %o", st.st_mode & 07777);
    char path[256];
    snprintf(path, sizeof path, "%s/invite-job-42.eml", spooldir);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600, "file mode %o", st.st_mode & 07777);
    char *data;
    size_t len;
    cr_assert(sg_read_file(path, &data, &len));
    cr_assert_eq(len, 6);
    cr_assert_str_eq(data, "second");
    free(data);
    cr_assert_eq(count_files(spooldir), 2, "no temporary files are left");
}

Test(deliver, spool_refuses_bad_names)
{
    run("for _, n in ipairs{'../x', 'a/b', '/etc/passwd', '', '.hidden', '..', '-x',\n"
        "                   'a b', 'a\\0b', 'ä', string.rep('a', 129)} do\n"
        "  expect_nil('spool: name must match', deliver.spool{name = n, content = 'x'})\n"
        "end\n"
        "expect_raise('spool: content is required', deliver.spool, {name = 'x'})\n"
        "expect_raise('spool: name must be a string', deliver.spool, {name = 1, content = 'x'})");
    struct stat st;
    cr_assert_neq(stat(spooldir, &st), 0, "nothing was created");
    char path[192];
    snprintf(path, sizeof path, "%s/x", tmpdir);
    cr_assert_neq(stat(path, &st), 0);
}

Test(deliver, spool_reports_io_errors)
{
    /* the spool path is a file: neither opened nor created */
    int fd = open(spooldir, O_WRONLY | O_CREAT, 0600);
    close(fd);
    run("expect_nil('spool: job.eml: cannot open the spool directory',\n"
        "  deliver.spool{name = 'job.eml', content = 'x'})");
}

/* ---- the allow flag ------------------------------------------------------------ */

Test(deliver_forbidden, delivery_raises_unless_allowed)
{
    run("for _, f in ipairs{deliver.smtp, deliver.webhook, deliver.spool} do\n"
        "  expect_raise('delivery is only available in the outbox hooks', f, {})\n"
        "end");
    sg_lua_deliver_allow(L, 1);
    run("assert(deliver.spool{name = 'ok', content = 'x'})");
    sg_lua_deliver_allow(L, 0);
    run("expect_raise('delivery is only available in the outbox hooks', deliver.spool,\n"
        "  {name = 'ok', content = 'x'})");
    /* a second table shares the flag */
    sg_lua_push_deliver(L, &cfg);
    lua_setglobal(L, "deliver2");
    sg_lua_deliver_allow(L, 1);
    run("assert(deliver2.spool{name = 'ok2', content = 'x'})\n"
        "assert(deliver.spool{name = 'ok3', content = 'x'})");
    cr_assert_eq(lua_gettop(L), 0);
}
