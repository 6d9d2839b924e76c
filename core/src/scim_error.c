#include <string.h>

#include "buf.h"
#include "log.h"
#include "scim.h"

int sg_status_http(sg_status s)
{
    switch (s) {
    case SG_OK:
        return 200;
    case SG_ENOTFOUND:
        return 404;
    case SG_ECONFLICT:
        return 409;
    case SG_EINVALID:
        return 400;
    case SG_EPRECOND:
        return 412;
    case SG_EUNAUTH:
        return 401;
    case SG_EDENIED:
        return 403;
    case SG_ETOOMANY:
        return 400;
    case SG_EUNAVAIL:
        return 503;
    case SG_ENOTIMPL:
        return 501;
    case SG_ENOMEM:
    case SG_EVERSION:
    case SG_EINTERNAL:
    default:
        return 500;
    }
}

void sg_respond_header(sg_response *res, const char *name, const char *value)
{
    sg_buf_printf(&res->headers, "%s: %s\r\n", name, value);
}

void sg_respond_error(sg_response *res, int http_status, const char *scim_type, const char *detail)
{
    sg_buf_reset(&res->body);
    res->status = http_status;
    res->content_type = SG_CT_SCIM;
    sg_buf *b = &res->body;
    sg_buf_printf(b,
                  "{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:Error\"],"
                  "\"status\":\"%d\"",
                  http_status);
    if (scim_type) sg_buf_printf(b, ",\"scimType\":\"%s\"", scim_type);
    if (detail && *detail) {
        sg_buf_puts(b, ",\"detail\":");
        sg_buf_json_str(b, detail, strlen(detail));
    }
    sg_buf_putc(b, '}');
}

void sg_respond_sg_error(sg_response *res, const sg_error *e)
{
    int http = sg_status_http(e->status);
    const char *detail = e->detail;
    if (http == 500 && e->status != SG_ESCRIPT) {
        /* Internal details go to the log, never to the client. */
        sg_log(SG_LOG_ERROR, "scim", "internal error (status %d): %s", (int)e->status, e->detail);
        detail = "internal error; the gateway log has the details for this request id";
    }
    const char *scim_type = e->scim_type;
    if (!scim_type && e->status == SG_ETOOMANY) scim_type = "tooMany";
    if (!scim_type && e->status == SG_EINVALID) scim_type = "invalidValue";
    sg_respond_error(res, http, scim_type, detail);
    if (e->status == SG_EUNAVAIL) sg_respond_header(res, "Retry-After", "1");
}

void sg_response_free(sg_response *res)
{
    sg_buf_free(&res->body);
    sg_buf_free(&res->headers);
}
