#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "crypto.h"
#include "cursor.h"

static void setup(void)
{
    sg_config cfg = {0};
    cfg.server_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    char err[128];
    cr_assert(sg_crypto_init(&cfg, err, sizeof err), "%s", err);
}

TestSuite(cursor, .init = setup);

Test(cursor, round_trip)
{
    const char *parts[] = {"User", "userName pr", NULL};
    char fp[17], c[SG_CURSOR_MAX];
    sg_cursor_fingerprint(parts, 3, fp);
    sg_cursor_make(40, 1000, fp, c);
    int64_t off = -1;
    cr_assert_eq(sg_cursor_read(c, fp, 1000, &off), SG_CURSOR_OK);
    cr_assert_eq(off, 40);
}

Test(cursor, other_query_tampering_and_expiry)
{
    const char *a[] = {"User", "x"}, *b[] = {"User", "y"}, *split1[] = {"ab", "c"},
               *split2[] = {"a", "bc"};
    char fa[17], fb[17], f1[17], f2[17], c[SG_CURSOR_MAX];
    sg_cursor_fingerprint(a, 2, fa);
    sg_cursor_fingerprint(b, 2, fb);
    sg_cursor_fingerprint(split1, 2, f1);
    sg_cursor_fingerprint(split2, 2, f2);
    cr_assert_str_neq(fa, fb);
    cr_assert_str_neq(f1, f2);
    sg_cursor_make(5, 1000, fa, c);
    int64_t off;
    cr_assert_eq(sg_cursor_read(c, fb, 1000, &off), SG_CURSOR_INVALID);
    char forged[SG_CURSOR_MAX];
    snprintf(forged, sizeof forged, "%s", c);
    forged[0] = '9'; /* another offset, same MAC */
    cr_assert_eq(sg_cursor_read(forged, fa, 1000, &off), SG_CURSOR_INVALID);
    cr_assert_eq(sg_cursor_read("garbage", fa, 1000, &off), SG_CURSOR_INVALID);
    cr_assert_eq(sg_cursor_read("", fa, 1000, &off), SG_CURSOR_INVALID);
    cr_assert_eq(sg_cursor_read(c, fa, 1000 + SG_CURSOR_TIMEOUT_S + 1, &off), SG_CURSOR_EXPIRED);
}
