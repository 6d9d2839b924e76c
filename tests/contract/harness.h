/*
** Storage contract suite: the shared harness.
**
** Every test receives, from setup(): the plugin loaded from $SG_CONTRACT_PLUGIN,
** an instance opened on a fresh mkdtemp directory with the options in
** $SG_CONTRACT_OPTS ("k=v;k=v"), one connection, and a per-test nonce that
** every tenant, token and resource id carries, so the suite also runs
** against a shared server database (PostgreSQL) without tests seeing each
** other's rows.
*/
#ifndef SG_CONTRACT_HARNESS_H
#define SG_CONTRACT_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "scimgate/plugin.h"

/* ---- the loaded plugin and the test's store --------------------------------- */

extern const sg_host H;          /* the host table the tests hand over   */
extern sg_plugin_reg REG;        /* what sg_plugin_init registered       */
extern sg_plugin_init_fn INIT;   /* the plugin's entry point             */
extern const sg_storage_vtab *V; /* REG.vtab                             */
extern char DATA_DIR[];          /* the test's data directory            */
extern sg_storage *S;            /* instance opened on DATA_DIR              */
extern sg_conn *C;               /* connection of the test's main thread */
extern sg_error E;               /* error of the last call               */
extern int IS_SQLITE;            /* plugin-specific checks               */

void setup(void);
void teardown(void);

/* Test declaration with the harness around it. */
#define CT(suite, name) Test(suite, name, .init = setup, .fini = teardown)

/* Call and check the status; on failure show the plugin's detail. */
#define ST(want, call)                                                                             \
    do {                                                                                           \
        sg_error_clear(&E);                                                                        \
        sg_status st_ = (call);                                                                    \
        cr_assert_eq(st_, (want), "%s: status %d, want %d (%s)", #call, (int)st_, (int)(want),     \
                     E.detail);                                                                    \
    } while (0)
#define OK(call) ST(SG_OK, call)

/* Options: $SG_CONTRACT_OPTS plus overrides; free with opts_free. */
typedef struct opts {
    sg_kv kv[32];
    size_t n;
    char *mem;
} opts;
void opts_load(opts *o, const char *extra_key, const char *extra_value);
void opts_free(opts *o);

/* Close the test's store (before fork) and reopen it. */
void store_close(void);
void store_reopen(void);

/* ---- names ------------------------------------------------------------------------------ */

/* "<nonce>-<base>", unique to this test; valid until the test ends.
 * Thread-safe. */
const char *nm(const char *base);
/* Whether a name was made by nm() in this test. */
int is_mine(const char *name);

/* For a test whose calls span every tenant (job_claim, job_expire, the
 * purges) and would take another test's rows: on a shared database, wait
 * until no other test runs beside it (every test holds a shared file lock,
 * this one takes it exclusively, until its process ends). Nothing on a
 * private store. */
void alone_with_the_store(void);

/* ---- fixtures ----------------------------------------------------------------------- */

/* Creates tenant nm(base) named nm("name-" base); returns its id. */
const char *mk_tenant(const char *base);

/* A resource being built: up to 8 keys, folded for the caller. */
typedef struct res {
    sg_resource r;
    sg_key keys[8];
    char id[128];
    char json[1024];
    char created[SG_TIME_MAX];
    char modified[SG_TIME_MAX];
    char attr[8][64];
    char value[8][128];
    char folded[8][128];
} res;

/* Fixed timestamps: 2024-01-01T00:00:00.000Z + sec seconds. */
void ts(int sec, char out[SG_TIME_MAX]);

void res_init(res *x, sg_rtype type, const char *id_base, int created_sec);
/* Adds a key; folds ASCII upper case unless case_exact. */
void res_key(res *x, const char *attr, const char *value, int unique, int case_exact);
/* A user with userName (unique, case-insensitive). */
void res_user(res *x, const char *id_base, const char *user_name, int created_sec);
/* A group with displayName (not unique, case-insensitive). */
void res_group(res *x, const char *id_base, const char *display, int created_sec);

/* Replace the body (canonical JSON as the core would store it). */
void res_body(res *x, const char *json);

/* Create a user / group in tenant t; returns the id. */
const char *mk_user(const char *t, const char *id_base, const char *user_name, int sec);
const char *mk_group(const char *t, const char *id_base, const char *display, int sec);

/* ---- rows ------------------------------------------------------------------------------- */

#define ROWS_MAX 512
typedef struct rows {
    int n;
    int calls;
    int stop_after; /* >0: return stop_status after this many rows */
    sg_status stop_status;
    char id[ROWS_MAX][128];
    sg_rtype type[ROWS_MAX];
    int64_t version[ROWS_MAX];
    char created[ROWS_MAX][SG_TIME_MAX];
    char modified[ROWS_MAX][SG_TIME_MAX];
    char json[ROWS_MAX][256];
} rows;

sg_status rows_fn(void *ud, const sg_resource *r);
void rows_reset(rows *r);
int rows_has(const rows *r, const char *id);
/* Exactly these ids, in this order (NULL-terminated list). */
void rows_expect(const rows *r, const char *const *ids);
/* Exactly these ids, in any order. */
void rows_expect_set(const rows *r, const char *const *ids);

/* ---- filters ---------------------------------------------------------------------------- */

extern const sg_attr_ref A_USERNAME, A_EXTERNALID, A_EMAILS_VALUE, A_EMAILS_TYPE, A_ID, A_LASTMOD,
    A_CREATED, A_MEMBERS, A_DISPLAYNAME, A_TITLE, A_EMAILS;

/* Filter nodes come from a per-test arena of 256; a test that builds many
 * resets it between searches. */
void harness_reset_filters(void);

const sg_filter *f_cmp(sg_fop op, const sg_attr_ref *a, const char *literal);
const sg_filter *f_eq(const sg_attr_ref *a, const char *literal);
const sg_filter *f_pr(const sg_attr_ref *a);
const sg_filter *f_and(const sg_filter *a, const sg_filter *b);
const sg_filter *f_or(const sg_filter *a, const sg_filter *b);
const sg_filter *f_not(const sg_filter *a);
const sg_filter *f_vp(const sg_attr_ref *a, const sg_filter *elem, const sg_filter *sub);
/* Comparisons with a number or a boolean literal. */
const sg_filter *f_num(sg_fop op, const sg_attr_ref *a, double v);
const sg_filter *f_bool(sg_fop op, const sg_attr_ref *a, int v);

/* A search with the defaults the core uses (start 1, count 100). */
sg_query q_of(sg_rtype type, const sg_filter *f);

/* Run a search into `r` and check the residual rule of storage.h: residual
 * is NULL, the root, or a child of a top-level AND. */
sg_status search(const char *tenant, const sg_query *q, rows *r, sg_search_out *out);

#endif
