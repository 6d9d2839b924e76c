#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_api.h"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/sg_cli_api_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(cli_api, .init = make_dir, .fini = remove_dir);

static void sample_key(sg_device_key *k)
{
    memset(k, 0, sizeof *k);
    snprintf(k->tenant, sizeof k->tenant, "0123456789abcdef0123456789abcdef");
    snprintf(k->device, sizeof k->device, "4b9e2a52-7c3f-4c1e-9f0a-1d2b3c4d5e6f");
    snprintf(k->token, sizeof k->token, "sgd_0011223344556677.secret");
    snprintf(k->url, sizeof k->url, "http://127.0.0.1:8081");
    unsigned char pub[SG_ED25519_KEY_LEN];
    cr_assert(sg_ed25519_keygen(k->seed, pub));
}

Test(cli_api, key_file_round_trip_and_mode)
{
    char path[128];
    snprintf(path, sizeof path, "%s/device.key", dir);
    sg_device_key k, back;
    sample_key(&k);
    int fd = sg_device_key_create(path);
    cr_assert_geq(fd, 0);
    cr_assert(sg_device_key_write(fd, &k));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    char err[256];
    cr_assert(sg_device_key_read(path, &back, err, sizeof err), "%s", err);
    cr_assert_str_eq(back.tenant, k.tenant);
    cr_assert_str_eq(back.device, k.device);
    cr_assert_str_eq(back.token, k.token);
    cr_assert_str_eq(back.url, k.url);
    cr_assert_arr_eq(back.seed, k.seed, sizeof k.seed);
    sg_device_key_wipe(&back);
    cr_assert_eq(back.token[0], 0);

    /* a signature made with the seed read back checks with the public key */
    unsigned char pub[SG_ED25519_KEY_LEN], sig[SG_ED25519_SIG_LEN];
    cr_assert(sg_ed25519_public(k.seed, pub));
    cr_assert(sg_ed25519_sign(k.seed, "to sign", 7, sig));
    cr_assert(sg_ed25519_verify(pub, "to sign", 7, sig));
}

Test(cli_api, key_file_is_never_overwritten)
{
    char path[128];
    snprintf(path, sizeof path, "%s/device.key", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("keep me\n", f);
    fclose(f);
    errno = 0;
    cr_assert_eq(sg_device_key_create(path), -1);
    cr_assert_eq(errno, EEXIST);
    char buf[16] = "";
    f = fopen(path, "r");
    cr_assert_not_null(fgets(buf, sizeof buf, f));
    fclose(f);
    cr_assert_str_eq(buf, "keep me\n");
}

Test(cli_api, key_file_refused_when_others_may_read_or_broken)
{
    char path[128], err[256];
    sg_device_key k;
    snprintf(path, sizeof path, "%s/device.key", dir);
    sample_key(&k);
    cr_assert(sg_device_key_write(sg_device_key_create(path), &k));
    cr_assert_eq(chmod(path, 0644), 0);
    cr_assert_not(sg_device_key_read(path, &k, err, sizeof err));
    cr_assert_not_null(strstr(err, "chmod 600"));

    snprintf(path, sizeof path, "%s/broken.key", dir);
    int fd = sg_device_key_create(path);
    cr_assert_eq(write(fd, "{\"tenant\": \"t\"}", 15), 15);
    close(fd);
    cr_assert_not(sg_device_key_read(path, &k, err, sizeof err));
    cr_assert_not_null(strstr(err, "\"device\""), "%s", err);
    cr_assert_not(sg_device_key_read("/nonexistent/key", &k, err, sizeof err));
}

Test(cli_api, settings_pairs)
{
    char *pairs[] = {"auto_invite=on", "greeting=a=b", "old="};
    char err[128];
    json_t *p = sg_cli_settings_patch(3, pairs, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    char *txt = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
    cr_assert_str_eq(txt, "{\"auto_invite\":\"on\",\"greeting\":\"a=b\",\"old\":null}");
    free(txt);
    json_decref(p);

    char *bad[][2] = {{"novalue", "x=1"}, {"=v", "x=1"}, {"x=1", "x=2"}, {"x=\xff", "y=1"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        cr_assert_null(sg_cli_settings_patch(2, bad[i], err, sizeof err), "%s", bad[i][0]);
        cr_assert_neq(err[0], 0);
    }
}
