/*
** scimgate plugin ABI: status codes and the error object.
**
** Every ABI method returns an sg_status. Values are never renumbered; new
** ones are only appended. Details travel in a caller-owned sg_error so that
** the error path never allocates.
*/
#ifndef SCIMGATE_ERROR_H
#define SCIMGATE_ERROR_H

#include <stdarg.h>
#include <stdio.h>

typedef enum sg_status {
    SG_OK = 0,
    SG_ENOTFOUND = 1,  /* 404: no such resource, tenant or token           */
    SG_ECONFLICT = 2,  /* 409: uniqueness clash                             */
    SG_EINVALID = 3,   /* 400: invalidValue, invalidSyntax, invalidFilter   */
    SG_EPRECOND = 4,   /* 412: version (ETag) mismatch                      */
    SG_EUNAUTH = 5,    /* 401: missing or bad credential                    */
    SG_EDENIED = 6,    /* 403: credential valid but not for this            */
    SG_ETOOMANY = 7,   /* 400 tooMany / 413: a limit was exceeded           */
    SG_EUNAVAIL = 8,   /* 503: the store is down or busy; retryable         */
    SG_ENOMEM = 9,     /* 500: out of memory                                */
    SG_EVERSION = 10,  /* ABI version mismatch (loader)                     */
    SG_EINTERNAL = 11, /* 500: a bug or an unexpected failure               */
    SG_ENOTIMPL = 12,  /* 501: not implemented                              */
    SG_ESCRIPT = 13,   /* 500: a hook script failed; detail is client-safe  */
} sg_status;

/* Size of sg_error.detail, including the terminating NUL. */
#define SG_DETAIL_MAX 256

typedef struct sg_error {
    sg_status status;
    /* RFC 7644 §3.12 scimType ("uniqueness", "invalidFilter", ...): a string
     * with static storage duration, or NULL. */
    const char *scim_type;
    /* Safe to show a client: no SQL, no tokens, no file paths. Always
     * NUL-terminated when status != SG_OK. */
    char detail[SG_DETAIL_MAX];
} sg_error;

/*
** Fill `e` and return `s`, so that callers can write
**     return sg_error_set(err, SG_EINVALID, "invalidValue", "bad %s", x);
** `e` may be NULL (the details are dropped). Thread-safe; never allocates.
*/
static inline sg_status
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    sg_error_set(sg_error *e, sg_status s, const char *scim_type, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        e->status = s;
        e->scim_type = scim_type;
        va_start(ap, fmt);
        vsnprintf(e->detail, sizeof e->detail, fmt, ap);
        va_end(ap);
    }
    return s;
}

/* Reset `e` to "no error". */
static inline void sg_error_clear(sg_error *e)
{
    if (e) {
        e->status = SG_OK;
        e->scim_type = NULL;
        e->detail[0] = '\0';
    }
}

#endif
