/*
** What every fuzz target shares: the process-wide set-up the gateway does
** at start-up (case folding, the schema documents), test data built once,
** and the oracle check. Targets free everything they allocate per input
** (LeakSanitizer runs after each one); what this file builds once lives
** for the whole process.
*/
#ifndef SG_FUZZ_COMMON_H
#define SG_FUZZ_COMMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scimgate/plugin.h"

/* Fold tables and schemas (from $SG_FUZZ_SCHEMAS, else the source tree's
 * schemas/); logs only errors. Aborts when anything is missing. */
void sg_fuzz_init(void);

/* A canonical stored body of `type`, with "id" (an Entra-shaped user with
 * emails, addresses, roles and a manager, or a group), built through
 * sg_resource_inbound once. Borrowed: never modify it. */
const json_t *sg_fuzz_body(sg_rtype type);

/* json_equal that also tells object keys with NUL bytes apart (jansson
 * 2.14's json_equal looks keys up as C strings: {"a\u0000b": 1} and
 * {"a\u0000b": 1} compare unequal). */
bool sg_fuzz_json_same(const json_t *a, const json_t *b);

/* An oracle failure: print what broke, and the input, then abort so that
 * libFuzzer records the input as a crash. */
#define SG_FUZZ_CHECK(cond, ...)                                                                   \
    do {                                                                                           \
        if (!(cond)) sg_fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                         \
    } while (0)
_Noreturn void sg_fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
