#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "crypto.h"
#include "fold.h"
#include "http.h"
#include "util.h"

Test(fold, ascii_and_unicode)
{
    cr_assert(sg_fold_init());
    sg_buf b = {0};
    cr_assert_eq(sg_fold("BJensen@Contoso.COM", 19, &b), SG_OK);
    cr_assert_str_eq(b.data, "bjensen@contoso.com");
    sg_buf_reset(&b);
    const char *s = "\xC3\x85SA \xC3\x96ZT\xC3\x9CRK \xCE\xA3"; /* ÅSA ÖZTÜRK Σ */
    cr_assert_eq(sg_fold(s, strlen(s), &b), SG_OK);
    cr_assert_str_eq(b.data, "\xC3\xA5sa \xC3\xB6zt\xC3\xBCrk \xCF\x83");
    sg_buf_free(&b);
    cr_assert_eq(sg_fold_cmp("ÅSA", strlen("ÅSA"), "åsa", strlen("åsa")), 0);
    cr_assert(sg_fold_cmp("a", 1, "B", 1) < 0);
}

Test(fold, invalid_utf8_is_kept_bytewise)
{
    cr_assert(sg_fold_init());
    sg_buf b = {0};
    cr_assert_eq(sg_fold("A\xFF"
                         "B",
                         3, &b),
                 SG_OK);
    cr_assert_eq(b.len, 3);
    cr_assert(!memcmp(b.data,
                      "a\xFF"
                      "b",
                      3));
    sg_buf_free(&b);
    cr_assert_not(sg_utf8_valid("\xC0\x80", 2), "overlong NUL");
    cr_assert_not(sg_utf8_valid("\xED\xA0\x80", 3), "surrogate");
    cr_assert(sg_utf8_valid("\xF0\x9F\x98\x80", 4));
}

Test(util, time_round_trip)
{
    char t[SG_TIME_MAX];
    sg_format_time(1700000000123, t);
    cr_assert_str_eq(t, "2023-11-14T22:13:20.123Z");
    int64_t ms;
    cr_assert(sg_parse_time(t, &ms));
    cr_assert_eq(ms, 1700000000123);
    cr_assert(sg_parse_time("2023-11-14T23:13:20+01:00", &ms));
    cr_assert_eq(ms, 1700000000000);
    cr_assert_not(sg_parse_time("2023-11-14", &ms));
    cr_assert_not(sg_parse_time("2023-13-14T00:00:00Z", &ms));
    cr_assert_not(sg_parse_time("2023-11-14T00:00:00Zjunk", &ms));
}

Test(util, sizes_and_durations)
{
    int64_t v;
    cr_assert(sg_parse_size("8MiB", &v));
    cr_assert_eq(v, 8 * 1024 * 1024);
    cr_assert(sg_parse_size("512k", &v));
    cr_assert_eq(v, 512 * 1024);
    cr_assert_not(sg_parse_size("lots", &v));
    cr_assert(sg_parse_duration_ms("7d", &v));
    cr_assert_eq(v, 7LL * 86400 * 1000);
    cr_assert(sg_parse_duration_ms("90", &v));
    cr_assert_eq(v, 90000);
    cr_assert_not(sg_parse_duration_ms("1w", &v));
}

Test(util, uuid_and_base64url)
{
    char a[37], b[37];
    sg_new_uuid(a);
    sg_new_uuid(b);
    cr_assert_eq(strlen(a), 36);
    cr_assert_eq(a[14], '4');
    cr_assert_neq(strcmp(a, b), 0);
    char out[16];
    sg_base64url("\xfb\xff", 2, out);
    cr_assert_str_eq(out, "-_8");
    sg_base64url("abc", 3, out);
    cr_assert_str_eq(out, "YWJj");
}

Test(util, json_string_escaping)
{
    sg_buf b = {0};
    sg_buf_json_str(&b, "a\"b\\c\n\x01", 7);
    cr_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
    sg_buf_free(&b);
}

Test(util, json_string_is_always_utf8)
{
    /* well-formed sequences pass through as they are */
    sg_buf b = {0};
    const char *ok = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f";
    sg_buf_json_str(&b, ok, strlen(ok));
    cr_assert_str_eq(b.data, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f\"");
    sg_buf_free(&b);
    /* everything else is U+FFFD, a byte at a time: stray, truncated (a
     * detail cut mid-character), overlong, surrogate, past U+10FFFF */
    const struct {
        const char *in, *out;
    } bad[] = {
        {"\xff", "\"\\ufffd\""},
        {"a\x80z", "\"a\\ufffdz\""},
        {"x\xc3", "\"x\\ufffd\""},
        {"\xe2\x82", "\"\\ufffd\\ufffd\""},
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},
        {"\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""},
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
        {"\xe2\x28\xa1", "\"\\ufffd(\\ufffd\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sg_buf_json_str(&b, bad[i].in, strlen(bad[i].in));
        cr_assert_str_eq(b.data, bad[i].out, "case %zu", i);
        sg_buf_free(&b);
    }
}

Test(crypto, hmac_is_keyed_and_stable)
{
    char dir[] = "/tmp/sgkeyXXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    sg_config cfg = {0};
    cfg.data = dir;
    char err[256];
    cr_assert(sg_crypto_init(&cfg, err, sizeof err), "%s", err);
    unsigned char h1[SG_HASH_LEN], h2[SG_HASH_LEN], h3[SG_HASH_LEN];
    sg_crypto_hash("secret", 6, h1);
    sg_crypto_hash("secret", 6, h2);
    sg_crypto_hash("secreT", 6, h3);
    cr_assert(sg_crypto_equal(h1, h2, SG_HASH_LEN));
    cr_assert_not(sg_crypto_equal(h1, h3, SG_HASH_LEN));
    /* A second init reads the same key file. */
    cr_assert(sg_crypto_init(&cfg, err, sizeof err));
    sg_crypto_hash("secret", 6, h2);
    cr_assert(sg_crypto_equal(h1, h2, SG_HASH_LEN));
    /* Another key gives another hash. */
    cfg.server_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    cr_assert(sg_crypto_init(&cfg, err, sizeof err), "%s", err);
    sg_crypto_hash("secret", 6, h2);
    cr_assert_not(sg_crypto_equal(h1, h2, SG_HASH_LEN));
    cfg.server_key = "not-a-key-file";
    cr_assert_not(sg_crypto_init(&cfg, err, sizeof err));
}

Test(http, trusted_proxy_lists)
{
    cr_assert(sg_addr_in_list("127.0.0.1", "127.0.0.1"));
    cr_assert(sg_addr_in_list("10.0.0.0/8, 192.168.1.5", "10.2.3.4"));
    cr_assert(sg_addr_in_list("10.0.0.0/8,192.168.1.5", "192.168.1.5"));
    cr_assert_not(sg_addr_in_list("10.0.0.0/8", "11.0.0.1"));
    cr_assert_not(sg_addr_in_list("", "127.0.0.1"));
    cr_assert_not(sg_addr_in_list("garbage/99", "127.0.0.1"));
}

Test(config, precedence_flag_env_file)
{
    char path[] = "/tmp/sgconfXXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char *text = "# comment\nlisten = 127.0.0.1:9000\nlimits.page_max = 500\n"
                       "storage.busy_timeout_ms = 100\ndata = /tmp/from-file\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    setenv("SCIMGATE_LISTEN", "127.0.0.1:9001", 1);
    setenv("SCIMGATE_STORAGE_PATH", "/tmp/x.db", 1);
    char *argv[] = {"scimgate", "--config", path, "--data=/tmp/from-flag", "serve", NULL};
    int argc = 5;
    sg_config cfg;
    char err[256];
    cr_assert(sg_config_load(&cfg, &argc, argv, err, sizeof err), "%s", err);
    cr_assert_eq(argc, 2);
    cr_assert_str_eq(argv[1], "serve");
    cr_assert_str_eq(cfg.data, "/tmp/from-flag");
    cr_assert_str_eq(cfg.listen, "127.0.0.1:9001");
    cr_assert_eq(cfg.limits.page_max, 500);
    cr_assert_eq(cfg.limits.page_default, 100);
    size_t n;
    sg_kv *opts = sg_config_plugin_opts(&cfg, "storage.", &n);
    cr_assert_eq(n, 2);
    free(opts);
    sg_config_free(&cfg);
    unlink(path);
}

Test(config, bad_values_are_reported)
{
    char *argv[] = {"scimgate", "--limits.workers", "lots", "serve", NULL};
    int argc = 4;
    sg_config cfg;
    char err[256];
    cr_assert_not(sg_config_load(&cfg, &argc, argv, err, sizeof err));
    cr_assert(strstr(err, "limits.workers"), "%s", err);
    sg_config_free(&cfg);
    char *argv2[] = {"scimgate", "--limits.longpoll", "64", "serve", NULL};
    argc = 4;
    cr_assert_not(sg_config_load(&cfg, &argc, argv2, err, sizeof err));
    cr_assert(strstr(err, "below limits.workers"), "%s", err);
    sg_config_free(&cfg);
}
