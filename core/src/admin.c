#include "admin.h"

#include <string.h>
#include <strings.h>

#include "buf.h"
#include "crypto.h"
#include "log.h"
#include "lua_host.h"
#include "tenants.h"
#include "touch.h"
#include "util.h"

typedef struct admin_principal {
    bool operator;
    char tenant[65]; /* "" for an operator */
    char login[129];
    char token_id[65];
} admin_principal;

static void admin_error(sg_response *res, int status, const char *detail)
{
    sg_buf_reset(&res->body);
    res->status = status;
    res->content_type = SG_CT_JSON;
    sg_buf_printf(&res->body, "{\"status\":%d,\"detail\":", status);
    sg_buf_json_str(&res->body, detail, strlen(detail));
    sg_buf_putc(&res->body, '}');
}

/* Check an admin token. false with the response set when refused. */
static bool authenticate(sg_worker *w, const sg_request *req, sg_response *res, admin_principal *p)
{
    memset(p, 0, sizeof *p);
    const char *h = req->header(req, "Authorization");
    size_t pl = strlen(SG_ADMIN_TOKEN_PREFIX);
    if (h && !strncasecmp(h, "Bearer ", 7))
        h += 7;
    else
        h = NULL;
    while (h && *h == ' ') h++;
    if (!h || strncmp(h, SG_ADMIN_TOKEN_PREFIX, pl)) {
        admin_error(res, 401, "an admin token is required (Authorization: Bearer sga_...)");
        sg_respond_header(res, "WWW-Authenticate", "Bearer realm=\"scimgate-admin\"");
        return false;
    }
    const char *id = h + pl, *dot = strchr(id, '.');
    size_t idlen = dot ? (size_t)(dot - id) : 0;
    sg_token_info info;
    sg_error err;
    sg_conn *conn;
    char idbuf[SG_TOKEN_ID_LEN + 1];
    bool ok = idlen == SG_TOKEN_ID_LEN && dot[1];
    if (ok) {
        memcpy(idbuf, id, idlen);
        idbuf[idlen] = '\0';
        if (sg_worker_conn(w, &conn, &err) != SG_OK) {
            admin_error(res, 503, "the store is unavailable");
            return false;
        }
        sg_status s = w->srv->plugins->st->token_info(conn, idbuf, &info, &err);
        if (s != SG_OK && s != SG_ENOTFOUND) {
            admin_error(res, 503, "the store is unavailable");
            return false;
        }
        ok = s == SG_OK && info.kind == SG_TOKEN_ADMIN;
    }
    if (ok) {
        unsigned char hash[SG_HASH_LEN];
        const char *secret = dot + 1;
        size_t n = strlen(secret);
        while (n && secret[n - 1] == ' ') n--;
        sg_crypto_hash(secret, n, hash);
        ok = sg_crypto_equal(hash, info.hash, SG_HASH_LEN) && !info.revoked &&
             (!info.expires_ms || info.expires_ms > sg_now_ms()) && !info.tenant_disabled;
    }
    if (!ok) {
        admin_error(res, 401, "the admin token is not valid");
        sg_respond_header(res, "WWW-Authenticate",
                          "Bearer realm=\"scimgate-admin\", error=\"invalid_token\"");
        return false;
    }
    p->operator= info.tenant[0] == '\0';
    snprintf(p->tenant, sizeof p->tenant, "%s", info.tenant);
    snprintf(p->login, sizeof p->login, "%s", info.subject);
    snprintf(p->token_id, sizeof p->token_id, "%s", idbuf);
    sg_touch_note(p->token_id, req->peer);
    return true;
}

static bool operator_only(const admin_principal *p, sg_response *res)
{
    if (p->operator) return true;
    admin_error(res, 403, "only an operator may do this");
    return false;
}

static void scripts_status(sg_response *res, int status)
{
    res->status = status;
    res->content_type = SG_CT_JSON;
    sg_scripts_status(&res->body);
}

void sg_admin_handle(sg_worker *w, sg_request *req, sg_response *res)
{
    admin_principal p;
    if (!authenticate(w, req, res, &p)) return;
    const char *rest = req->route.rest;
    const char *m = req->method;
    if (!strcmp(rest, "/scripts")) {
        if (strcmp(m, "GET")) {
            admin_error(res, 405, "GET only");
            sg_respond_header(res, "Allow", "GET");
        } else if (operator_only(&p, res)) {
            scripts_status(res, 200);
        }
        return;
    }
    if (!strcmp(rest, "/scripts/reload")) {
        if (strcmp(m, "POST")) {
            admin_error(res, 405, "POST only");
            sg_respond_header(res, "Allow", "POST");
        } else if (operator_only(&p, res)) {
            uint64_t gen = sg_scripts_reload();
            sg_log(SG_LOG_INFO, "admin", "%s reloaded the scripts: generation %llu", p.login,
                   (unsigned long long)gen);
            scripts_status(res, 200);
        }
        return;
    }
    admin_error(res, 404, "no such admin endpoint");
}
