/*
** The command line's api commands (DESIGN §1d): they call a running
** gateway's admin API (/admin/v1, admin.h) over HTTP with --url (default
** http://<admin_listen>) and an admin token (--admin-token or the
** environment variable SCIMGATE_ADMIN_TOKEN); `device approve` uses the
** device token kept in its key file instead. The last line of stdout is the
** machine-readable result; explanations go to stderr. Exit status: 0 done,
** 1 the API refused (or could not be reached), 2 a usage error.
*/
#ifndef SG_CLI_API_H
#define SG_CLI_API_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "crypto.h"

struct sg_config;

/* Whether `cmd` (argv[1]) is one of the api commands. */
bool sg_cli_api_is(const char *cmd);
/* Run api command argv[0] with its arguments argv[1..argc-1]; the exit
** status. Calls curl_global_init/cleanup itself. */
int sg_cli_api_main(const struct sg_config *cfg, int argc, char **argv);

/*
** `settings` arguments: KEY=VALUE pairs into a JSON object for PATCH
** settings; an empty VALUE ("KEY=") is null, which removes the key. NULL
** with a message in err when a pair has no '=' or an empty KEY, or a KEY is
** given twice. OUT: a new object (json_decref).
*/
json_t *sg_cli_settings_patch(int n, char *const *pairs, char *err, size_t errlen);

/*
** An admin device's key file, written by `device enroll` and read by
** `device approve`: one JSON object {"tenant", "device", "token" (the
** device token "sgd_..."), "privateKey" (base64url of the 32-byte Ed25519
** seed), "url" (the admin API base URL)}. It holds secrets: the file is
** mode 0600 and the struct should be wiped (sg_device_key_wipe) after use.
*/
typedef struct sg_device_key {
    char tenant[128];
    char device[128];
    char token[256];
    char url[512]; /* "" when the file has none */
    unsigned char seed[SG_ED25519_KEY_LEN];
} sg_device_key;

/* Create `path` for writing with mode 0600; never an existing file
** (O_CREAT|O_EXCL). The file descriptor, or -1 with errno (EEXIST). */
int sg_device_key_create(const char *path);
/* Write k to fd (from sg_device_key_create), sync and close it in every
** case. false with errno. */
bool sg_device_key_write(int fd, const sg_device_key *k);
/* Read and check a key file: every field but "url" is required; refused when
** others may read the file. false with a message in err. */
bool sg_device_key_read(const char *path, sg_device_key *k, char *err, size_t errlen);
/* Erase the secrets in k. */
void sg_device_key_wipe(sg_device_key *k);

#endif
