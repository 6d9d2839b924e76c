#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fold.h"
#include "log.h"
#include "resource.h"
#include "schema.h"

static json_t *bodies[3];

/* ENTRA.md §2.3's POST body plus what later PATCHes add (roles, manager). */
static const char user_doc[] =
    "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\","
    "\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\"],"
    "\"externalId\":\"bjensen\",\"userName\":\"bjensen@contoso.com\",\"active\":true,"
    "\"displayName\":\"Barbara Jensen\",\"title\":\"Tour Guide\","
    "\"emails\":[{\"primary\":true,\"type\":\"work\",\"value\":\"bjensen@contoso.com\"},"
    "{\"type\":\"home\",\"value\":\"babs@example.com\"}],"
    "\"preferredLanguage\":\"en-US\","
    "\"name\":{\"formatted\":\"Barbara "
    "Jensen\",\"familyName\":\"Jensen\",\"givenName\":\"Barbara\"},"
    "\"addresses\":[{\"type\":\"work\",\"formatted\":\"Building 1/1234\",\"streetAddress\":\"1 "
    "Main "
    "St\",\"locality\":\"Redmond\",\"region\":\"WA\",\"postalCode\":\"98052\",\"country\":\"US\","
    "\"primary\":true}],"
    "\"phoneNumbers\":[{\"type\":\"work\",\"value\":\"+1 425 555 0100\"},"
    "{\"type\":\"mobile\",\"value\":\"+1 425 555 0101\"}],"
    "\"roles\":[{\"primary\":\"True\",\"value\":\"admin\",\"display\":\"Admin\",\"type\":\"app\"}],"
    "\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\":{\"employeeNumber\":\"701984\","
    "\"department\":\"Tour Operations\",\"manager\":\"26118915-6090-4610-87e4-49d8ca9f808d\"}}";

static const char group_doc[] =
    "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:Group\"],"
    "\"externalId\":\"0899060-370e-46a-bc5f-3aas207ed41d\",\"displayName\":\"Org Admin\","
    "\"members\":[{\"value\":\"f648f8d5ea4e4cd38e9c\"}]}";

static json_t *build(sg_rtype type, const char *text, const char *id)
{
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je);
    if (!doc) sg_fuzz_fail(__FILE__, __LINE__, "json_loads", "%s", je.text);
    sg_inbound in;
    sg_error err;
    sg_error_clear(&err);
    if (sg_resource_inbound(sg_rt(type), doc, &in, &err) != SG_OK ||
        sg_resource_finish(sg_rt(type), in.body, &err) != SG_OK ||
        sg_resource_set_id(in.body, id) != SG_OK)
        sg_fuzz_fail(__FILE__, __LINE__, "inbound", "%s", err.detail);
    json_decref(doc);
    json_decref(in.members);
    return in.body;
}

void sg_fuzz_init(void)
{
    char err[256];
    const char *dir = getenv("SG_FUZZ_SCHEMAS");
    if (!dir) dir = SG_SOURCE_DIR "/schemas";
    sg_log_set_level(SG_LOG_ERROR);
    if (!sg_fold_init()) sg_fuzz_fail(__FILE__, __LINE__, "sg_fold_init", "no C.UTF-8 locale");
    if (!sg_schemas_load(dir, err, sizeof err))
        sg_fuzz_fail(__FILE__, __LINE__, "sg_schemas_load", "%s: %s", dir, err);
    bodies[SG_RT_USER] = build(SG_RT_USER, user_doc, "2819c223-7f76-453a-919d-413861904646");
    bodies[SG_RT_GROUP] = build(SG_RT_GROUP, group_doc, "40734ae655284ad3abcc");
}

const json_t *sg_fuzz_body(sg_rtype type)
{
    return bodies[type];
}

bool sg_fuzz_json_same(const json_t *a, const json_t *b)
{
    if (json_typeof(a) != json_typeof(b)) return false;
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        const char *k;
        size_t klen;
        json_t *v;
        if (json_object_size(a) != json_object_size(b)) return false;
        json_object_keylen_foreach((json_t *)a, k, klen, v)
        {
            const json_t *w = json_object_getn(b, k, klen);
            if (!w || !sg_fuzz_json_same(v, w)) return false;
        }
        return true;
    }
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b)) return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!sg_fuzz_json_same(json_array_get(a, i), json_array_get(b, i))) return false;
        return true;
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    default:
        return json_equal(a, b);
    }
}

void sg_fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: oracle failed: %s: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}
