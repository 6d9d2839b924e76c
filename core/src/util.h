/* Small helpers shared by the core: randomness, ids, time, parsing, files. */
#ifndef SG_UTIL_H
#define SG_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scimgate/host.h"

#define SG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Fill `p` with n cryptographically strong random bytes. Aborts the process
 * when the system has no entropy: there is no safe fallback. */
void sg_random(void *p, size_t n);

/* Lower-case hex of n bytes into out[2n+1]. */
void sg_hex(const void *p, size_t n, char *out);
/* Decode 2n hex digits into n bytes; false on a bad digit. */
bool sg_unhex(const char *s, size_t slen, unsigned char *out, size_t n);

/* A new random resource id: a version 4 UUID, out[37]. */
void sg_new_uuid(char out[37]);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t sg_now_ms(void);
/* Monotonic milliseconds, for timeouts and intervals. */
int64_t sg_mono_ms(void);
/* Monotonic microseconds, for latencies and rate limits. */
int64_t sg_mono_us(void);
/* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
void sg_format_time(int64_t ms, char out[SG_TIME_MAX]);
/* Parse an RFC 3339 timestamp to ms since the epoch; false if malformed. */
bool sg_parse_time(const char *s, int64_t *ms);

/* Parse a whole decimal integer (no trailing junk); false otherwise. */
bool sg_parse_i64(const char *s, int64_t *out);
/* Parse a size with an optional unit: "8MiB", "512k", "1024". */
bool sg_parse_size(const char *s, int64_t *out);
/* Parse a duration: "90s", "15m", "12h", "7d", or plain seconds. */
bool sg_parse_duration_ms(const char *s, int64_t *out_ms);

/* A 64-bit hash of a string (FNV-1a) for in-memory tables; not for
 * anything an attacker picks keys for at will. */
uint64_t sg_hash_str(const char *s);

/* ASCII case-insensitive equality of a NUL-terminated and a sized string. */
bool sg_str_ieq(const char *a, const char *b, size_t blen);

/* Read a whole file. OUT: *data (free()), NUL-terminated. false with errno. */
bool sg_read_file(const char *path, char **data, size_t *len);

/* strdup that aborts on out-of-memory (for start-up paths only). */
char *sg_xstrdup(const char *s);

/* Unpadded base64url of n bytes into out[(4n+2)/3+1]. */
void sg_base64url(const void *p, size_t n, char *out);
/* Decode base64 in either alphabet (RFC 4648 §4 or §5), padding optional,
 * into out (at most cap bytes); false on a bad character or overflow. */
bool sg_unbase64(const char *s, unsigned char *out, size_t cap, size_t *outlen);
#endif
