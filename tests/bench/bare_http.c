/*
** bare_http: the ceiling the benchmarks compare the gateway with (DESIGN §7).
**
**     bare_http PORT [THREADS]
**
** A CivetWeb server started with the gateway's options (core/src/http.c:
** keep-alive, TCP_NODELAY, the same timeouts, THREADS workers, 64 by default)
** whose one handler answers any request for /bytes/N with 200 and N bytes of
** application/scim+json, its headers written the way the gateway writes them
** (status, Content-Type, Content-Length, X-Request-Id, Cache-Control, then the
** body in a second write). A request body is read and dropped. No storage, no
** parsing, no Lua: what remains is CivetWeb and the kernel. Runs until SIGINT
** or SIGTERM.
*/
#include <civetweb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BODY (16u << 20)

static char *body;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int handler(struct mg_connection *conn, void *data)
{
    (void)data;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char drain[4096];
    while (mg_read(conn, drain, sizeof drain) > 0) {
    }
    const char *p = ri->local_uri ? ri->local_uri : "";
    unsigned long n = 0;
    if (strncmp(p, "/bytes/", 7) == 0) n = strtoul(p + 7, NULL, 10);
    if (n > MAX_BODY) n = MAX_BODY;
    char len[32];
    snprintf(len, sizeof len, "%lu", n);
    mg_response_header_start(conn, 200);
    mg_response_header_add(conn, "Content-Type", "application/scim+json", -1);
    mg_response_header_add(conn, "Content-Length", len, -1);
    mg_response_header_add(conn, "X-Request-Id", "0123456789abcdef0123456789abcdef", -1);
    mg_response_header_add(conn, "Cache-Control", "no-store", -1);
    mg_response_header_send(conn);
    if (n) mg_write(conn, body, n);
    return 200;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: bare_http PORT [THREADS]\n");
        return 2;
    }
    body = malloc(MAX_BODY);
    if (!body) return 1;
    memset(body, 'x', MAX_BODY);
    char ports[64];
    snprintf(ports, sizeof ports, "127.0.0.1:%s", argv[1]);
    const char *options[] = {
        "listening_ports",
        ports,
        "num_threads",
        argc == 3 ? argv[2] : "64",
        "enable_keep_alive",
        "yes",
        "keep_alive_timeout_ms",
        "5000",
        "request_timeout_ms",
        "30000",
        "linger_timeout_ms",
        "1000",
        "max_request_size",
        "16384",
        "enable_directory_listing",
        "no",
        "decode_url",
        "yes",
        "tcp_nodelay",
        "1",
        NULL,
    };
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    mg_init_library(0);
    struct mg_callbacks cb = {0};
    struct mg_context *ctx = mg_start(&cb, NULL, options);
    if (!ctx) {
        fprintf(stderr, "bare_http: cannot listen on %s\n", ports);
        return 1;
    }
    mg_set_request_handler(ctx, "**", handler, NULL);
    printf("listening on %s\n", ports);
    fflush(stdout);
    while (!stop) sleep(1);
    mg_stop(ctx);
    mg_exit_library();
    free(body);
    return 0;
}
