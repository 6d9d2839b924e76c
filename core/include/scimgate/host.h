/*
** scimgate plugin ABI: the host services table.
**
** The gateway hands every plugin one `const sg_host *` at sg_plugin_init. It
** stays valid until the plugin is unloaded. Plugins never link the core: every
** service they need (memory, logging, output buffers, time, token hashing)
** comes through this table. All members are thread-safe unless noted.
*/
#ifndef SCIMGATE_HOST_H
#define SCIMGATE_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "abi.h"
#include "error.h"

/* A borrowed string slice: not necessarily NUL-terminated. */
typedef struct sg_str {
    const char *ptr;
    size_t len;
} sg_str;

/*
** A growable output buffer. The caller owns it; plugins only append with
** host->buf_append, which keeps `data` NUL-terminated (data[len] == 0) and
** allocates with the host allocator. The caller releases it with
** host->free(buf->data) (or the core's sg_buf_free).
*/
typedef struct sg_buf {
    char *data;
    size_t len;
    size_t cap;
} sg_buf;

/* One configuration option, `key = value`, both NUL-terminated. */
typedef struct sg_kv {
    const char *key;
    const char *value;
} sg_kv;

typedef enum sg_log_level {
    SG_LOG_ERROR = 0,
    SG_LOG_WARN = 1,
    SG_LOG_INFO = 2,
    SG_LOG_DEBUG = 3,
} sg_log_level;

/* Length of a token hash (HMAC-SHA-256). */
#define SG_HASH_LEN 32
/* Buffer size for a timestamp "YYYY-MM-DDTHH:MM:SS.mmmZ" plus NUL. */
#define SG_TIME_MAX 32

/* Declared in storage.h. */
typedef struct sg_conn sg_conn;
typedef struct sg_token_info sg_token_info;

typedef struct sg_host {
    SG_ABI_HEADER;

    /* Memory. Same contract as malloc/realloc/free. Buffers that cross the
     * ABI (sg_buf) are always allocated with these. */
    void *(*alloc)(size_t n);
    void *(*realloc)(void *p, size_t n);
    void (*free)(void *p);

    /* Write one log line (JSON, with the current request id when there is
     * one). `plugin` names the caller. Never pass secrets. */
    void (*log)(sg_log_level level, const char *plugin, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;

    /* Append n bytes to `b`, keeping it NUL-terminated. SG_ENOMEM on
     * allocation failure (then `b` is unchanged). */
    sg_status (*buf_append)(sg_buf *b, const void *p, size_t n);

    /* Wall-clock time in milliseconds since the Unix epoch. */
    int64_t (*now_ms)(void);

    /* Format `ms` as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out[SG_TIME_MAX]. */
    void (*format_time)(int64_t ms, char out[SG_TIME_MAX]);

    /* Auth plugins: look a token id up in the loaded storage through the
     * calling thread's connection `conn`. SG_ENOTFOUND when unknown. */
    sg_status (*token_lookup)(sg_conn *conn, const char *token_id, sg_token_info *out,
                              sg_error *err);

    /* HMAC-SHA-256 of a presented secret under the server key. The one
     * hashing used for every token kind, by the CLI and by plugins alike. */
    void (*token_hash)(const void *secret, size_t len, unsigned char out[SG_HASH_LEN]);

    /* Constant-time comparison: 1 when the n bytes are equal, else 0. */
    int (*ct_equal)(const void *a, const void *b, size_t n);

    /* Report that `token_id` was used from `addr`. Cheap and non-blocking:
     * the core records it at most once per token per minute, off the
     * request path. */
    void (*token_touch)(const char *token_id, const char *addr);

    /* ABI 1.x: append new members BELOW this line only. */
} sg_host;

#endif
