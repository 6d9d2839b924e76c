/*
** Writing the Prometheus text exposition format, version 0.0.4: one metric
** family is a "# HELP" and a "# TYPE" line followed by its samples,
**     name{label="value",...} value
** Label values are escaped (backslash, double quote, newline), as is the
** HELP text (backslash, newline). Metric and label names are the caller's
** constants and must match [a-zA-Z_:][a-zA-Z0-9_:]* (metric) and
** [a-zA-Z_][a-zA-Z0-9_]* (label). No allocation failure is reported: a
** buffer that could not grow is short, and the caller sends what it has.
*/
#ifndef SG_PROM_H
#define SG_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SG_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* "# HELP name help" and "# TYPE name type" (counter, gauge, histogram). */
void sg_prom_family(sg_buf *b, const char *name, const char *type, const char *help);

/* One sample. `labels`: NULL, or name, value pairs ending with NULL. */
void sg_prom_u64(sg_buf *b, const char *name, const char *const *labels, uint64_t v);
/* A sample with six decimals (microsecond resolution for seconds). */
void sg_prom_f64(sg_buf *b, const char *name, const char *const *labels, double v);

/*
** A histogram's samples: name_bucket{labels..., le="bound"} for each bound
** and le="+Inf", cumulative; then name_sum and name_count (equal to the
** +Inf bucket). `bounds`: nb ascending upper bounds; `counts`: nb + 1
** observations per bucket, not cumulative, the last one above every bound.
*/
void sg_prom_histogram(sg_buf *b, const char *name, const char *const *labels, const double *bounds,
                       size_t nb, const uint64_t *counts, double sum);

#endif
