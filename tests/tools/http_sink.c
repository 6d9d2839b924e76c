/*
** http_sink PORT DIR: a tiny HTTP/1.1 receiver for webhook tests.
**
** Listens on 127.0.0.1:PORT (0: the kernel picks one) and prints the port
** as the first line of stdout. Serves one connection at a time, one request
** per connection: reads the head and a Content-Length body (at most 8 MiB),
** stores the request exactly as received as DIR/<n>.req (n = 1, 2, ...;
** written under a temporary name and renamed before the reply) and answers
** 200 with an empty body and Connection: close.
**
** HTTP_SINK_FAIL_FIRST=N answers the first N requests 503 and stores
** nothing, to test retries.
**
** Exits with status 0 on SIGTERM.
*/
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#define HEAD_MAX (64 * 1024)
#define BODY_MAX (8 * 1024 * 1024)
#define IDLE_S   30

static void on_term(int sig)
{
    (void)sig;
    _exit(0);
}

static bool send_all(int fd, const char *p, size_t n)
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

/* Content-Length from the head, or 0. */
static long content_length(const char *head)
{
    for (const char *p = head; (p = strstr(p, "\r\n")) != NULL; p += 2) {
        if (strncasecmp(p + 2, "Content-Length:", 15) == 0) return strtol(p + 17, NULL, 10);
    }
    return 0;
}

static bool save(const char *dir, long n, const char *data, size_t len)
{
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof tmp, "%s/.%ld.tmp", dir, n);
    snprintf(path, sizeof path, "%s/%ld.req", dir, n);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) return false;
    bool ok = fwrite(data, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
    return ok && rename(tmp, path) == 0;
}

/* Read one request; its bytes in *buf (malloc'd), length *len. */
static bool read_request(int fd, char **buf, size_t *len)
{
    size_t cap = HEAD_MAX, n = 0;
    char *b = malloc(cap + 1);
    if (b == NULL) return false;
    long want = -1; /* total bytes, once the head is read */
    for (;;) {
        if (want >= 0 && (long)n >= want) break;
        if (n == cap) {
            if (want < 0 || cap >= (size_t)want) break;
            size_t ncap = (size_t)want;
            char *nb = realloc(b, ncap + 1);
            if (nb == NULL) break;
            b = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
        b[n] = '\0';
        if (want < 0) {
            char *end = strstr(b, "\r\n\r\n");
            if (end != NULL) {
                long body = content_length(b);
                if (body < 0 || body > BODY_MAX) break;
                want = (long)(end + 4 - b) + body;
            }
        }
    }
    if (want < 0 || (long)n < want) {
        free(b);
        return false;
    }
    *buf = b;
    *len = n;
    return true;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: http_sink PORT DIR\n");
        return 2;
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*end != '\0' || end == argv[1] || port < 0 || port > 65535) {
        fprintf(stderr, "http_sink: bad port %s\n", argv[1]);
        return 2;
    }
    long fail_first = 0;
    const char *ff = getenv("HTTP_SINK_FAIL_FIRST");
    if (ff != NULL && ff[0] != '\0') {
        fail_first = strtol(ff, &end, 10);
        if (*end != '\0' || fail_first < 0) {
            fprintf(stderr, "http_sink: bad HTTP_SINK_FAIL_FIRST %s\n", ff);
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
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 16) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &alen) != 0) {
        perror("http_sink");
        return 1;
    }
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);

    long requests = 0, saved = 0;
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) continue;
        struct timeval tv = {IDLE_S, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char *req;
        size_t len;
        if (read_request(fd, &req, &len)) {
            requests++;
            const char *reply;
            if (requests <= fail_first)
                reply = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                        "Connection: close\r\n\r\n";
            else if (save(argv[2], saved + 1, req, len) && ++saved)
                reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            else
                reply = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                        "Connection: close\r\n\r\n";
            send_all(fd, reply, strlen(reply));
            free(req);
        }
        close(fd);
    }
}
