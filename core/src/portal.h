/*
** The admin portal (DESIGN §1c, §2): its static files under /admin/ on
** admin_listen, and the sign-in that gives a tenant admin or an operator a
** session for the /admin/v1 API.
**
** Files: /admin and /admin/<name> serve <portal>/index.html and
** <portal>/<name>, where <name> is one path segment of [a-z0-9_-] with one
** known extension (.html .js .css .svg .png .ico .json .txt): nothing else
** is ever opened, so no path leaves the directory. Answers carry an ETag,
** "Cache-Control: no-cache" (revalidate, 304 when unchanged) and, like every
** /admin answer, a strict Content-Security-Policy, X-Frame-Options DENY and
** nosniff (http.c).
**
** Sessions: POST /admin/v1/session {"login", "password", "tenant"?} checks
** the password (PBKDF2, crypto.h) of the tenant's admin (no tenant: an
** operator) and sets the cookie scimgate_session=<id>.<secret> (HttpOnly;
** SameSite=Strict; Path=/admin; Secure when the client reached us over
** HTTPS: public_url https, or X-Forwarded-Proto https from a trusted proxy).
** Storage keeps the session's id and the HMAC of its secret (ABI 1.1), so a
** signed-out session is gone for every node at once. A session ends
** portal.session_max after sign-in, or after portal.session_idle unused.
** Its CSRF token is HMAC(server key, "scimgate-csrf-v1" id secret): the
** pages read it from the sign-in answer or GET /admin/v1/session and send
** it as X-CSRF-Token on every call but GET and HEAD, compared in constant
** time; without it the call is refused (403).
**
** Sign-in failures are counted per login and per client address in this
** node's memory: past portal.login_attempts (per login) or
** portal.address_attempts (per address) failures each further try waits
** 5 s, doubling, at most 15 minutes (429 with Retry-After); counts are
** forgotten after 15 minutes without a failure. Failures are logged with
** the login and address, never the password.
*/
#ifndef SG_PORTAL_H
#define SG_PORTAL_H

#include <stdbool.h>

#include "scim.h"

#define SG_SESSION_COOKIE "scimgate_session"
#define SG_CSRF_HEADER    "X-CSRF-Token"

/* GET or HEAD /admin and /admin/<name> (SG_ROUTE_PORTAL). */
void sg_portal_file(sg_worker *w, sg_request *req, sg_response *res);

/* /admin/v1/session: POST signs in, GET describes the session, DELETE
 * signs out. */
void sg_portal_session(sg_worker *w, sg_request *req, sg_response *res);

/* The admin behind a valid session. */
typedef struct sg_session_admin {
    char tenant[65]; /* "" for an operator */
    char login[129];
} sg_session_admin;

typedef enum sg_session_check {
    SG_SESSION_NONE = 0, /* no session cookie: try other credentials */
    SG_SESSION_OK,       /* *out is filled in                        */
    SG_SESSION_REFUSED,  /* res holds the answer (401, 403, 503)     */
} sg_session_check;

/* Authenticate an /admin/v1 request by its session cookie; a request other
 * than GET or HEAD must carry the session's CSRF token. */
sg_session_check sg_portal_authenticate(sg_worker *w, sg_request *req, sg_response *res,
                                        sg_session_admin *out);

/* Does this store keep portal sessions (ABI 1.1, every method set)? */
bool sg_portal_sessions_supported(const sg_storage_vtab *st);

#endif
