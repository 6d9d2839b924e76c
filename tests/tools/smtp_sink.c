/*
** smtp_sink PORT DIR: a tiny SMTP server for tests (RFC 5321, plain, no TLS,
** no AUTH).
**
** Listens on 127.0.0.1:PORT (0: the kernel picks one) and prints the port
** as the first line of stdout. Serves one connection at a time and stores
** every accepted message as DIR/<n>.eml (n = 1, 2, ...), after two kinds of
** envelope lines:
**     X-Envelope-From: <reverse-path without the brackets>
**     X-Envelope-To: <one line per recipient>
** followed by the DATA exactly as sent, dot-unstuffed, with its CRLFs. The
** file is written under a temporary name and renamed before the 250 reply,
** so a client that got 250 finds it complete.
**
** Commands: EHLO, HELO, MAIL FROM, RCPT TO, DATA, RSET, NOOP, QUIT (VRFY
** answers 252, anything else 502).
**
** SMTP_SINK_FAIL_FIRST=N answers the end of the first N DATA transactions
** with "451 try again later" and stores nothing, to test retries.
** SMTP_SINK_HOLD_FIRST_MS=N stores the first message, then waits N ms
** before its 250 reply: a test can kill the client while it waits for a
** message that did arrive (at-least-once delivery).
**
** Exits with status 0 on SIGTERM.
*/
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>

#define LINE_MAX_LEN (64 * 1024)        /* longer lines are refused */
#define MSG_MAX      (32 * 1024 * 1024) /* bigger messages get 552 */
#define MAX_RCPT     100
#define PATH_LEN     256 /* a reverse- or forward-path */
#define IDLE_S       30  /* a silent client is dropped after this */

static const char *g_dir;
static long g_fail_first;
static long g_hold_first_ms;
static long g_transactions; /* DATA transactions ended so far */
static long g_saved;        /* messages stored so far */

static void on_term(int sig)
{
    (void)sig;
    _exit(0);
}

/* ---- the connection ----------------------------------------------------- */

struct conn {
    int fd;
    char in[8192];
    size_t pos, len;
    char line[LINE_MAX_LEN + 1];
    size_t line_len;
    bool too_long; /* the last line did not fit */
};

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool reply(struct conn *c, const char *text)
{
    return send_all(c->fd, text, strlen(text)) && send_all(c->fd, "\r\n", 2);
}

/* Read one line into c->line without its CRLF (or LF). false at EOF or on
 * an error. A line longer than LINE_MAX_LEN is cut and flagged. */
static bool read_line(struct conn *c)
{
    c->line_len = 0;
    c->too_long = false;
    for (;;) {
        if (c->pos == c->len) {
            ssize_t r = recv(c->fd, c->in, sizeof c->in, 0);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return false;
            c->pos = 0;
            c->len = (size_t)r;
        }
        char ch = c->in[c->pos++];
        if (ch == '\n') break;
        if (c->line_len < LINE_MAX_LEN)
            c->line[c->line_len++] = ch;
        else
            c->too_long = true;
    }
    if (c->line_len > 0 && c->line[c->line_len - 1] == '\r') c->line_len--;
    c->line[c->line_len] = '\0';
    return true;
}

/* ---- one mail transaction ----------------------------------------------- */

struct txn {
    bool have_from;
    char from[PATH_LEN + 1];
    char *rcpt[MAX_RCPT];
    size_t nrcpt;
    char *data;
    size_t len, cap;
    bool too_big;
};

static void txn_reset(struct txn *t)
{
    for (size_t i = 0; i < t->nrcpt; i++) free(t->rcpt[i]);
    free(t->data);
    memset(t, 0, sizeof *t);
}

static bool data_add(struct txn *t, const char *p, size_t n)
{
    if (t->too_big || t->len + n > MSG_MAX) {
        t->too_big = true;
        return true; /* keep reading to the final dot, then refuse */
    }
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n) cap *= 2;
        char *d = realloc(t->data, cap);
        if (d == NULL) return false;
        t->data = d;
        t->cap = cap;
    }
    memcpy(t->data + t->len, p, n);
    t->len += n;
    return true;
}

/* The path in "<path> params" or "path params", after the verb's colon.
 * false when it is malformed or too long. */
static bool parse_path(const char *s, char *out, size_t outlen)
{
    while (*s == ' ') s++;
    size_t n;
    if (*s == '<') {
        const char *end = strchr(++s, '>');
        if (end == NULL) return false;
        n = (size_t)(end - s);
    } else {
        n = strcspn(s, " ");
    }
    if (n >= outlen) return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* Store the transaction as DIR/<n>.eml; false on an I/O error. */
static bool save(const struct txn *t)
{
    char tmp[4096], path[4096];
    long n = g_saved + 1;
    snprintf(tmp, sizeof tmp, "%s/.%ld.eml.tmp", g_dir, n);
    snprintf(path, sizeof path, "%s/%ld.eml", g_dir, n);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) return false;
    fprintf(f, "X-Envelope-From: %s\r\n", t->from);
    for (size_t i = 0; i < t->nrcpt; i++) fprintf(f, "X-Envelope-To: %s\r\n", t->rcpt[i]);
    if (t->len > 0) fwrite(t->data, 1, t->len, f);
    bool ok = !ferror(f);
    if (fclose(f) != 0) ok = false;
    if (ok && rename(tmp, path) != 0) ok = false;
    if (!ok) {
        unlink(tmp);
        return false;
    }
    g_saved = n;
    return true;
}

/* After 354: the message up to the lone ".", dot-unstuffed (RFC 5321
 * 4.5.2). false when the connection ends first. */
static bool read_data(struct conn *c, struct txn *t)
{
    for (;;) {
        if (!read_line(c)) return false;
        const char *p = c->line;
        size_t n = c->line_len;
        if (n == 1 && p[0] == '.') return true;
        if (n > 0 && p[0] == '.') { /* a stuffed dot */
            p++;
            n--;
        }
        if (c->too_long) t->too_big = true;
        if (!data_add(t, p, n) || !data_add(t, "\r\n", 2)) t->too_big = true;
    }
}

static void session(int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    struct txn t;
    memset(&t, 0, sizeof t);
    if (c == NULL) return;
    c->fd = fd;
    struct timeval tv = {.tv_sec = IDLE_S, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (!reply(c, "220 smtp_sink ESMTP ready")) goto out;
    while (read_line(c)) {
        const char *l = c->line;
        bool ok;
        if (c->too_long) {
            ok = reply(c, "500 line too long");
        } else if (has_prefix(l, "EHLO")) {
            txn_reset(&t);
            ok = reply(c, "250-smtp_sink\r\n250-8BITMIME\r\n250 SIZE 33554432");
        } else if (has_prefix(l, "HELO")) {
            txn_reset(&t);
            ok = reply(c, "250 smtp_sink");
        } else if (has_prefix(l, "MAIL FROM:")) {
            if (t.have_from) {
                ok = reply(c, "503 nested MAIL command");
            } else if (!parse_path(l + 10, t.from, sizeof t.from)) {
                ok = reply(c, "501 bad reverse-path");
            } else {
                t.have_from = true;
                ok = reply(c, "250 OK");
            }
        } else if (has_prefix(l, "RCPT TO:")) {
            char to[PATH_LEN + 1];
            if (!t.have_from) {
                ok = reply(c, "503 need MAIL first");
            } else if (!parse_path(l + 8, to, sizeof to) || to[0] == '\0') {
                ok = reply(c, "501 bad forward-path");
            } else if (t.nrcpt == MAX_RCPT) {
                ok = reply(c, "452 too many recipients");
            } else if ((t.rcpt[t.nrcpt] = strdup(to)) == NULL) {
                ok = reply(c, "451 out of memory");
            } else {
                t.nrcpt++;
                ok = reply(c, "250 OK");
            }
        } else if (strcasecmp(l, "DATA") == 0) {
            if (!t.have_from) {
                ok = reply(c, "503 need MAIL first");
            } else if (t.nrcpt == 0) {
                ok = reply(c, "554 no valid recipients");
            } else if (!reply(c, "354 end data with <CR><LF>.<CR><LF>") || !read_data(c, &t)) {
                ok = false;
            } else {
                g_transactions++;
                if (g_transactions <= g_fail_first)
                    ok = reply(c, "451 try again later");
                else if (t.too_big)
                    ok = reply(c, "552 message too big");
                else if (!save(&t))
                    ok = reply(c, "452 cannot store the message");
                else {
                    if (g_saved == 1 && g_hold_first_ms > 0) {
                        struct timespec ts = {g_hold_first_ms / 1000,
                                              (g_hold_first_ms % 1000) * 1000000L};
                        nanosleep(&ts, NULL);
                    }
                    ok = reply(c, "250 OK queued");
                }
                txn_reset(&t);
            }
        } else if (strcasecmp(l, "RSET") == 0) {
            txn_reset(&t);
            ok = reply(c, "250 OK");
        } else if (has_prefix(l, "NOOP")) {
            ok = reply(c, "250 OK");
        } else if (has_prefix(l, "VRFY")) {
            ok = reply(c, "252 cannot verify");
        } else if (strcasecmp(l, "QUIT") == 0) {
            reply(c, "221 bye");
            break;
        } else {
            ok = reply(c, "502 command not implemented");
        }
        if (!ok) break;
    }
out:
    txn_reset(&t);
    free(c);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: smtp_sink PORT DIR\n");
        return 2;
    }
    char *end;
    errno = 0;
    long port = strtol(argv[1], &end, 10);
    if (errno != 0 || *end != '\0' || end == argv[1] || port < 0 || port > 65535) {
        fprintf(stderr, "smtp_sink: bad port %s\n", argv[1]);
        return 2;
    }
    g_dir = argv[2];
    const char *ff = getenv("SMTP_SINK_FAIL_FIRST");
    if (ff != NULL && ff[0] != '\0') {
        errno = 0;
        g_fail_first = strtol(ff, &end, 10);
        if (errno != 0 || *end != '\0' || g_fail_first < 0) {
            fprintf(stderr, "smtp_sink: bad SMTP_SINK_FAIL_FIRST %s\n", ff);
            return 2;
        }
    }

    const char *hold = getenv("SMTP_SINK_HOLD_FIRST_MS");
    if (hold != NULL && hold[0] != '\0') {
        errno = 0;
        g_hold_first_ms = strtol(hold, &end, 10);
        if (errno != 0 || *end != '\0' || g_hold_first_ms < 0) {
            fprintf(stderr, "smtp_sink: bad SMTP_SINK_HOLD_FIRST_MS %s\n", hold);
            return 2;
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    int ls = socket(AF_INET, SOCK_STREAM, 0);
    if (ls < 0) {
        perror("smtp_sink: socket");
        return 1;
    }
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(ls, 16) != 0) {
        perror("smtp_sink: bind");
        return 1;
    }
    socklen_t slen = sizeof sin;
    if (getsockname(ls, (struct sockaddr *)&sin, &slen) != 0) {
        perror("smtp_sink: getsockname");
        return 1;
    }
    printf("%d\n", ntohs(sin.sin_port));
    fflush(stdout);

    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            perror("smtp_sink: accept");
            return 1;
        }
        session(fd);
        close(fd);
    }
}
