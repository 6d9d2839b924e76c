/*
** SCIM requests below a tenant URL: authentication, then dispatch to the
** discovery and resource handlers. Every answer, errors included, is a SCIM
** JSON body (ENTRA.md §0 rule 16).
*/
#include "scim.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "util.h"

sg_status sg_worker_conn(sg_worker *w, sg_conn **out, sg_error *err)
{
    if (!w->conn) {
        const sg_plugins *p = w->srv->plugins;
        sg_status s = p->st->connect(p->store, &w->conn, err);
        if (s != SG_OK) {
            w->conn = NULL;
            return s;
        }
    }
    *out = w->conn;
    return SG_OK;
}

static const char *ri_header(const sg_request_info *ri, const char *name)
{
    const sg_request *req = ri->impl;
    return req->header(req, name);
}

static void unauthorized(sg_response *res, const char *detail, bool presented)
{
    sg_respond_error(res, 401, NULL, detail);
    sg_respond_header(res, "WWW-Authenticate",
                      presented ? "Bearer realm=\"scimgate\", error=\"invalid_token\""
                                : "Bearer realm=\"scimgate\"");
}

static bool authenticate(sg_worker *w, sg_request *req, sg_response *res)
{
    sg_error err;
    sg_error_clear(&err);
    sg_conn *conn;
    if (sg_worker_conn(w, &conn, &err) != SG_OK) {
        sg_log(SG_LOG_ERROR, "auth", "storage unavailable: %s", err.detail);
        sg_respond_error(res, 503, NULL, "the gateway's store is unavailable; retry later");
        sg_respond_header(res, "Retry-After", "5");
        return false;
    }
    sg_request_info ri = {
        .method = req->method,
        .path = req->route.norm,
        .tenant = req->route.tenant,
        .peer_addr = req->peer,
        .header = ri_header,
        .impl = req,
    };
    const sg_plugins *p = w->srv->plugins;
    bool presented = req->header(req, "Authorization") != NULL;
    for (size_t i = 0; i < p->nauth; i++) {
        const sg_auth_inst *a = &p->auth[i];
        memset(&req->principal, 0, sizeof req->principal);
        sg_error_clear(&err);
        sg_auth_result r = a->vt->authenticate(a->inst, &ri, conn, &req->principal, &err);
        switch (r) {
        case SG_AUTH_GRANTED:
            if (strcmp(req->principal.tenant, req->route.tenant) ||
                !(req->principal.scopes & SG_SCOPE_SCIM)) {
                /* Same answer as a wrong token: no hint that the tenant
                 * exists. */
                sg_log(SG_LOG_INFO, "auth", "token %s used on another tenant's URL",
                       req->principal.token_id);
                unauthorized(res, "the token is not valid for this tenant URL", true);
                return false;
            }
            req->authenticated = true;
            return true;
        case SG_AUTH_DENIED:
            unauthorized(res, err.detail[0] ? err.detail : "the token is not valid", true);
            return false;
        case SG_AUTH_ERROR:
            sg_log(SG_LOG_ERROR, "auth", "%s: %s", a->name, err.detail);
            sg_respond_error(res, 503, NULL, "the gateway cannot check credentials; retry later");
            sg_respond_header(res, "Retry-After", "5");
            return false;
        case SG_AUTH_DECLINED:
        default:
            break;
        }
    }
    unauthorized(res,
                 presented ? "unsupported credential: send Authorization: Bearer <secret token>"
                           : "a bearer token is required (Authorization: Bearer <secret token>)",
                 presented);
    return false;
}

/*
** The tenant's rate limit (ratelimit.h), counted after authentication: only
** a holder of the tenant's token spends its budget. Over it: 429 with
** Retry-After, and one log line when a burst of refusals starts and one
** when the tenant is served again.
*/
static bool within_limit(sg_worker *w, sg_request *req, sg_response *res)
{
    sg_ratelimit *rl = w->srv->ratelimit;
    if (!rl) return true;
    const char *tenant = req->route.tenant;
    sg_rl_verdict v = sg_ratelimit_take(rl, tenant, sg_mono_us());
    const sg_limits *l = &w->srv->cfg->limits;
    if (v.allowed) {
        if (v.burst_refused)
            sg_log(SG_LOG_INFO, "ratelimit",
                   "tenant %s is served again after %llu requests refused over its rate limit",
                   tenant, (unsigned long long)v.burst_refused);
        return true;
    }
    sg_metrics_rate_limited(tenant);
    if (v.burst_started)
        sg_log(SG_LOG_WARN, "ratelimit",
               "tenant %s is over its rate limit (%lld requests/s, burst %lld): answering 429 "
               "until it slows down",
               tenant, (long long)l->tenant_rps,
               (long long)(l->tenant_burst > 0 ? l->tenant_burst : l->tenant_rps));
    char detail[200], secs[16];
    snprintf(detail, sizeof detail,
             "too many requests for this tenant (more than %lld a second); slow down and retry "
             "after %d second%s",
             (long long)l->tenant_rps, v.retry_after, v.retry_after == 1 ? "" : "s");
    snprintf(secs, sizeof secs, "%d", v.retry_after);
    sg_respond_error(res, 429, NULL, detail);
    sg_respond_header(res, "Retry-After", secs);
    return false;
}

void sg_scim_handle(sg_worker *w, sg_request *req, sg_response *res)
{
    if (!authenticate(w, req, res)) return;
    if (!within_limit(w, req, res)) return;
    snprintf(req->tenant_url, sizeof req->tenant_url, "%s/scim/v2/%s", req->base_url,
             req->route.tenant);
    switch (req->route.ep) {
    case SG_EP_ROOT:
        sg_respond_error(res, 404, NULL,
                         "this is the tenant URL; SCIM resources are below it, at /Users, /Groups, "
                         "/Schemas, /ResourceTypes and /ServiceProviderConfig");
        return;
    case SG_EP_SPC:
    case SG_EP_SCHEMAS:
    case SG_EP_RESOURCE_TYPES:
        sg_scim_discovery(w, req, res);
        return;
    case SG_EP_USERS:
    case SG_EP_GROUPS:
        sg_scim_resources(w, req, res);
        return;
    case SG_EP_SEARCH:
        sg_scim_search(w, req, res);
        return;
    case SG_EP_BULK:
        sg_scim_bulk(w, req, res);
        return;
    case SG_EP_ME:
        sg_respond_error(res, 501, NULL,
                         "/Me is not supported: a SCIM token belongs to the tenant, not to a user");
        return;
    default:
        sg_respond_error(res, 404, NULL, "no such SCIM endpoint");
        return;
    }
}
