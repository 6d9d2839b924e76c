/*
** Logging: one JSON object per line on stderr, with the time, level,
** component, message and the current request id (per thread). Never log a
** secret: tokens are referred to by their public id only.
*/
#ifndef SG_LOG_H
#define SG_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "scimgate/host.h"

void sg_log_set_level(sg_log_level level);
/* Parse "error", "warn", "info", "debug"; false when unknown. */
bool sg_log_parse_level(const char *s, sg_log_level *out);
bool sg_log_enabled(sg_log_level level);

/* The request id of the calling thread's current request ("" for none). */
void sg_log_set_request_id(const char *id);
const char *sg_log_request_id(void);

void sg_log(sg_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sg_vlog(sg_log_level level, const char *component, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* Like sg_log with a preformatted message and extra members: `fields` is a
 * JSON fragment such as "\"status\":200,\"ms\":3" (or NULL). */
void sg_log_fields(sg_log_level level, const char *component, const char *msg, const char *fields);

#endif
