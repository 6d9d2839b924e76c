/* Growable byte buffers (sg_buf from the ABI) for the core. */
#ifndef SG_BUF_H
#define SG_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "scimgate/host.h"

/* Append n bytes; keeps data NUL-terminated. SG_ENOMEM on failure. */
sg_status sg_buf_append(sg_buf *b, const void *p, size_t n);
sg_status sg_buf_puts(sg_buf *b, const char *s);
sg_status sg_buf_putc(sg_buf *b, char c);
sg_status sg_buf_printf(sg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
sg_status sg_buf_vprintf(sg_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Append `s` as a JSON string literal, quotes included. */
sg_status sg_buf_json_str(sg_buf *b, const char *s, size_t n);
/* Make room for n more bytes. */
sg_status sg_buf_reserve(sg_buf *b, size_t n);
/* Forget the contents, keep the memory. */
void sg_buf_reset(sg_buf *b);
/* Release the memory; the buffer is empty afterwards. */
void sg_buf_free(sg_buf *b);
/* Hand the NUL-terminated contents to the caller (free with free()); the
 * buffer is empty afterwards. Never NULL unless out of memory. */
char *sg_buf_steal(sg_buf *b);

#endif
