/*
** Case folding for case-insensitive SCIM values (DESIGN §3): lower-case each
** code point with towlower under the C.UTF-8 locale, named explicitly so the
** process locale never matters. Plugins compare the folded form and never
** fold by themselves, so every store and the in-memory path agree.
*/
#ifndef SG_FOLD_H
#define SG_FOLD_H

#include <stdbool.h>
#include <stddef.h>

#include "scimgate/host.h"

/* Call once at start-up (before threads). false if C.UTF-8 is missing. */
bool sg_fold_init(void);
/* Append the folded form of s[0..n) to `out`. Invalid UTF-8 bytes are kept
 * as they are. SG_ENOMEM on allocation failure. */
sg_status sg_fold(const char *s, size_t n, sg_buf *out);
/* Compare two strings case-insensitively (folded), like strcmp's sign. */
int sg_fold_cmp(const char *a, size_t an, const char *b, size_t bn);
/* True when s is valid UTF-8. */
bool sg_utf8_valid(const char *s, size_t n);

#endif
