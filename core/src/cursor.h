/*
** Page cursors (RFC 9865). A cursor is opaque to clients but stateless
** here: it carries the offset of the next page, an expiry, and a
** fingerprint of the query (resource types, filter, sort), all under an
** HMAC with the server key, so a cursor cannot be forged, moved to another
** query, or used after it expires. Every node that shares the server key
** accepts every node's cursors.
*/
#ifndef SG_CURSOR_H
#define SG_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#define SG_CURSOR_MAX       128
#define SG_CURSOR_TIMEOUT_S 3600 /* advertised as pagination.cursorTimeout */

typedef enum sg_cursor_state {
    SG_CURSOR_OK = 0,
    SG_CURSOR_INVALID = 1, /* malformed, forged, or from another query */
    SG_CURSOR_EXPIRED = 2,
} sg_cursor_state;

/* Fingerprint of a query: n strings (NULL allowed), into out[17]. */
void sg_cursor_fingerprint(const char *const *parts, size_t n, char out[17]);
/* A cursor for the page starting at `offset` (0-based). */
void sg_cursor_make(int64_t offset, int64_t now_s, const char *fp, char out[SG_CURSOR_MAX]);
/* Read a cursor of the query `fp`; *offset is 0-based. */
sg_cursor_state sg_cursor_read(const char *cursor, const char *fp, int64_t now_s, int64_t *offset);

#endif
