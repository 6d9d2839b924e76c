#include <criterion/criterion.h>
#include <string.h>

#include "buf.h"
#include "fold.h"
#include "json.h"
#include "project.h"
#include "resource.h"
#include "schema.h"

static void setup(void)
{
    char err[256];
    cr_assert(sg_fold_init());
    cr_assert(sg_schemas_load(SG_SOURCE_DIR "/schemas", err, sizeof err), "%s", err);
}

TestSuite(resource, .init = setup);

#define ENT "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

static sg_status inbound(sg_rtype type, const char *text, sg_inbound *in, sg_error *err)
{
    json_t *doc = json_loads(text, 0, NULL);
    cr_assert_not_null(doc, "bad test JSON: %s", text);
    sg_error_clear(err);
    sg_status s = sg_resource_inbound(sg_rt(type), doc, in, err);
    json_decref(doc);
    return s;
}

static void assert_json(const json_t *v, const char *expected)
{
    json_t *e = json_loads(expected, JSON_DECODE_ANY, NULL);
    cr_assert_not_null(e);
    char *got = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    cr_assert(json_equal(v, e), "got %s\nwant %s", got, expected);
    free(got);
    json_decref(e);
}

Test(resource, entra_default_user_round_trips_values)
{
    const char *body =
        "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\",\"" ENT "\"],"
        "\"externalId\":\"bjensen\",\"userName\":\"bjensen@contoso.com\",\"active\":true,"
        "\"displayName\":\"Barbara Jensen\",\"title\":\"Tour Guide\","
        "\"emails\":[{\"primary\":true,\"type\":\"work\",\"value\":\"bjensen@contoso.com\"}],"
        "\"preferredLanguage\":\"en-US\","
        "\"name\":{\"formatted\":\"Barbara Jensen\",\"familyName\":\"Jensen\","
        "\"givenName\":\"Barbara\"},"
        "\"phoneNumbers\":[{\"type\":\"work\",\"value\":\"+1 425 555 0100\"}],"
        "\"" ENT "\":{\"employeeNumber\":\"701984\",\"department\":\"Tour Operations\"},"
        "\"meta\":{\"resourceType\":\"User\"},\"roles\":[]}";
    sg_inbound in;
    sg_error err;
    cr_assert_eq(inbound(SG_RT_USER, body, &in, &err), SG_OK, "%s", err.detail);
    json_t *b = in.body;
    assert_json(json_object_get(b, "schemas"),
                "[\"urn:ietf:params:scim:schemas:core:2.0:User\",\"" ENT "\"]");
    cr_assert_null(json_object_get(b, "meta"), "client meta is ignored");
    assert_json(json_object_get(b, "emails"),
                "[{\"primary\":true,\"type\":\"work\",\"value\":\"bjensen@contoso.com\"}]");
    assert_json(json_object_get(b, "phoneNumbers"),
                "[{\"type\":\"work\",\"value\":\"+1 425 555 0100\"}]");
    assert_json(json_object_get(b, "roles"), "[]");
    assert_json(json_object_get(json_object_get(b, ENT), "employeeNumber"), "\"701984\"");
    cr_assert_str_eq(json_string_value(json_object_get(b, "userName")), "bjensen@contoso.com");
    sg_inbound_free(&in);
}

Test(resource, names_are_canonicalised_and_unknown_dropped)
{
    sg_inbound in;
    sg_error err;
    cr_assert_eq(
        inbound(SG_RT_USER,
                "{\"USERNAME\":\"a\",\"Name\":{\"GivenName\":\"A\",\"bogus\":1},"
                "\"misspelled\":\"x\",\"Emails\":[{\"Value\":\"a@x\",\"Type\":\"other\"}]}",
                &in, &err),
        SG_OK, "%s", err.detail);
    cr_assert_not_null(json_object_get(in.body, "userName"));
    assert_json(json_object_get(in.body, "name"), "{\"givenName\":\"A\"}");
    assert_json(json_object_get(in.body, "emails"), "[{\"value\":\"a@x\",\"type\":\"other\"}]");
    cr_assert_null(json_object_get(in.body, "misspelled"));
    sg_inbound_free(&in);
}

Test(resource, boolean_strings_become_booleans)
{
    sg_inbound in;
    sg_error err;
    cr_assert_eq(inbound(SG_RT_USER,
                         "{\"userName\":\"a\",\"active\":\"False\","
                         "\"roles\":[{\"value\":\"r\",\"primary\":\"True\"}]}",
                         &in, &err),
                 SG_OK, "%s", err.detail);
    assert_json(json_object_get(in.body, "active"), "false");
    assert_json(json_object_get(in.body, "roles"), "[{\"value\":\"r\",\"primary\":true}]");
    sg_inbound_free(&in);
    cr_assert_eq(inbound(SG_RT_USER, "{\"userName\":\"a\",\"active\":\"maybe\"}", &in, &err),
                 SG_EINVALID);
    cr_assert(strstr(err.detail, "active"));
}

Test(resource, manager_shapes_become_an_object)
{
    const char *forms[] = {
        "{\"userName\":\"a\",\"" ENT "\":{\"manager\":\"m-1\"}}",
        "{\"userName\":\"a\",\"" ENT "\":{\"manager\":{\"value\":\"m-1\"}}}",
        "{\"userName\":\"a\",\"" ENT "\":{\"Manager\":{\"Value\":\"m-1\"}}}",
        "{\"userName\":\"a\",\"" ENT "\":{\"manager\":[{\"$ref\":\"http://x/Users/m-1\","
        "\"value\":\"m-1\"}]}}",
    };
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        sg_inbound in;
        sg_error err;
        cr_assert_eq(inbound(SG_RT_USER, forms[i], &in, &err), SG_OK, "%s", err.detail);
        json_t *m = json_object_get(json_object_get(in.body, ENT), "manager");
        assert_json(m, "{\"value\":\"m-1\"}");
        sg_inbound_free(&in);
    }
}

Test(resource, empty_values_mean_not_set)
{
    sg_inbound in;
    sg_error err;
    cr_assert_eq(inbound(SG_RT_USER,
                         "{\"userName\":\"a\",\"title\":null,\"nickName\":\"\",\"addresses\":null,"
                         "\"" ENT "\":{\"manager\":{\"value\":\"\"}}}",
                         &in, &err),
                 SG_OK, "%s", err.detail);
    cr_assert_null(json_object_get(in.body, "title"));
    cr_assert_null(json_object_get(in.body, "nickName"));
    cr_assert_null(json_object_get(in.body, "addresses"));
    cr_assert_null(json_object_get(in.body, ENT), "an extension left empty is dropped");
    sg_inbound_free(&in);
}

Test(resource, required_and_types)
{
    sg_inbound in;
    sg_error err;
    cr_assert_eq(inbound(SG_RT_USER, "{\"displayName\":\"x\"}", &in, &err), SG_EINVALID);
    cr_assert_str_eq(err.scim_type, "invalidValue");
    cr_assert(strstr(err.detail, "userName"));
    cr_assert_eq(inbound(SG_RT_USER, "{\"userName\":5}", &in, &err), SG_EINVALID);
    cr_assert(strstr(err.detail, "must be a string"));
    cr_assert_eq(inbound(SG_RT_USER, "[1,2]", &in, &err), SG_EINVALID);
    cr_assert_str_eq(err.scim_type, "invalidSyntax");
    cr_assert_eq(inbound(SG_RT_GROUP, "{\"members\":[]}", &in, &err), SG_EINVALID);
    cr_assert(strstr(err.detail, "displayName"));
    cr_assert_eq(inbound(SG_RT_USER, "{\"userName\":\"a\",\"title\":[\"x\",\"y\"]}", &in, &err),
                 SG_EINVALID);
    cr_assert(strstr(err.detail, "single-valued"));
}

Test(resource, read_only_and_write_only_are_not_stored)
{
    sg_inbound in;
    sg_error err;
    cr_assert_eq(inbound(SG_RT_USER,
                         "{\"userName\":\"a\",\"id\":\"mine\",\"password\":\"secret\","
                         "\"groups\":[{\"value\":\"g\"}]}",
                         &in, &err),
                 SG_OK, "%s", err.detail);
    cr_assert_null(json_object_get(in.body, "id"));
    cr_assert_null(json_object_get(in.body, "password"));
    cr_assert_null(json_object_get(in.body, "groups"));
    sg_inbound_free(&in);
}

Test(resource, group_members_are_split_off)
{
    sg_inbound in;
    sg_error err;
    cr_assert_eq(inbound(SG_RT_GROUP,
                         "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:Group\","
                         "\"http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/"
                         "Group\"],\"externalId\":\"e\",\"displayName\":\"Org Admin\","
                         "\"members\":[{\"$ref\":null,\"value\":\"u1\"},\"u2\"]}",
                         &in, &err),
                 SG_OK, "%s", err.detail);
    cr_assert_null(json_object_get(in.body, "members"));
    assert_json(in.members, "[\"u1\",\"u2\"]");
    assert_json(json_object_get(in.body, "schemas"),
                "[\"urn:ietf:params:scim:schemas:core:2.0:Group\"]");
    sg_inbound_free(&in);
    cr_assert_eq(inbound(SG_RT_GROUP, "{\"displayName\":\"x\",\"members\":[{\"display\":\"u\"}]}",
                         &in, &err),
                 SG_EINVALID);
}

Test(resource, set_id_follows_schemas)
{
    sg_inbound in;
    sg_error err;
    cr_assert_eq(inbound(SG_RT_USER, "{\"userName\":\"a\"}", &in, &err), SG_OK);
    cr_assert_eq(sg_resource_set_id(in.body, "abc"), SG_OK);
    char *s = json_dumps(in.body, JSON_COMPACT);
    cr_assert_str_eq(s, "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],"
                        "\"id\":\"abc\",\"userName\":\"a\"}");
    free(s);
    sg_inbound_free(&in);
}

Test(resource, index_keys)
{
    sg_inbound in;
    sg_error err;
    cr_assert_eq(inbound(SG_RT_USER,
                         "{\"userName\":\"BJensen\",\"externalId\":\"EX\",\"displayName\":\"B J\","
                         "\"emails\":[{\"value\":\"A@X.com\"},{\"value\":\"b@y\"}]}",
                         &in, &err),
                 SG_OK);
    sg_keyset ks;
    cr_assert_eq(sg_resource_keys(sg_rt(SG_RT_USER), in.body, "id", &ks), SG_OK);
    int seen = 0;
    for (size_t i = 0; i < ks.n; i++) {
        const sg_key *k = &ks.keys[i];
        if (!strcmp(k->attr, "userName")) {
            cr_assert_str_eq(k->value, "BJensen");
            cr_assert_str_eq(k->folded, "bjensen");
            cr_assert(k->flags & SG_KEY_UNIQUE);
            seen |= 1;
        } else if (!strcmp(k->attr, "externalId")) {
            cr_assert_str_eq(k->folded, "EX", "externalId is case-exact");
            cr_assert_not(k->flags & SG_KEY_UNIQUE);
            seen |= 2;
        } else if (!strcmp(k->attr, "emails.value")) {
            seen |= !strcmp(k->folded, "a@x.com") ? 4 : 8;
        } else if (!strcmp(k->attr, "displayName")) {
            seen |= 16;
        }
    }
    cr_assert_eq(seen, 31, "keys seen: %d", seen);
    sg_keyset_free(&ks);
    sg_inbound_free(&in);
}

Test(resource, group_display_name_is_unique_key)
{
    sg_inbound in;
    sg_error err;
    cr_assert_eq(inbound(SG_RT_GROUP, "{\"displayName\":\"Sales\"}", &in, &err), SG_OK);
    sg_keyset ks;
    cr_assert_eq(sg_resource_keys(sg_rt(SG_RT_GROUP), in.body, "g", &ks), SG_OK);
    cr_assert_eq(ks.n, 1);
    cr_assert_str_eq(ks.keys[0].attr, "displayName");
    cr_assert_str_eq(ks.keys[0].folded, "sales");
    cr_assert(ks.keys[0].flags & SG_KEY_UNIQUE);
    sg_keyset_free(&ks);
    sg_inbound_free(&in);
}

/* ---- projection ---- */

static char *project(sg_rtype type, const char *attrs, const char *excl, const char *doc_text)
{
    json_t *doc = json_loads(doc_text, 0, NULL);
    cr_assert_not_null(doc);
    sg_projection p;
    cr_assert_eq(sg_projection_parse(sg_rt(type), attrs, excl, &p), SG_OK);
    sg_projection_apply(sg_rt(type), &p, doc);
    sg_projection_free(&p);
    char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return s;
}

static const char *full_user =
    "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\",\"" ENT "\"],\"id\":\"1\","
    "\"userName\":\"a\",\"name\":{\"givenName\":\"A\",\"familyName\":\"B\"},"
    "\"emails\":[{\"value\":\"a@x\",\"type\":\"work\"}],\"" ENT "\":{\"department\":\"D\"},"
    "\"meta\":{\"resourceType\":\"User\",\"created\":\"2025-01-01T00:00:00.000Z\"}}";

Test(resource, projection_attributes)
{
    char *s = project(SG_RT_USER, "userName,name.givenName", NULL, full_user);
    cr_assert_str_eq(s,
                     "{\"id\":\"1\",\"meta\":{\"resourceType\":\"User\"},\"name\":{\"givenName\":"
                     "\"A\"},\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],"
                     "\"userName\":\"a\"}");
    free(s);
    s = project(SG_RT_USER, "emails.value," ENT ":department", NULL, full_user);
    cr_assert(strstr(s, "\"emails\":[{\"value\":\"a@x\"}]"), "%s", s);
    cr_assert(strstr(s, "\"department\":\"D\""), "%s", s);
    cr_assert_null(strstr(s, "userName"), "%s", s);
    free(s);
}

Test(resource, projection_excluded)
{
    char *s = project(SG_RT_USER, NULL, "name,emails.type," ENT, full_user);
    cr_assert_null(strstr(s, "givenName"), "%s", s);
    cr_assert_null(strstr(s, "department"), "%s", s);
    cr_assert_null(strstr(s, ENT), "schemas lists only what is present: %s", s);
    cr_assert(strstr(s, "\"emails\":[{\"value\":\"a@x\"}]"), "%s", s);
    cr_assert(strstr(s, "\"id\":\"1\""), "%s", s);
    free(s);
    s = project(SG_RT_USER, NULL, "id,meta", full_user);
    cr_assert(strstr(s, "\"id\":\"1\""), "id is always returned: %s", s);
    cr_assert(strstr(s, "\"meta\":{\"resourceType\":\"User\"}"), "%s", s);
    free(s);
}

Test(resource, projection_members)
{
    sg_projection p;
    cr_assert_eq(sg_projection_parse(sg_rt(SG_RT_GROUP), NULL, "members", &p), SG_OK);
    cr_assert_not(p.members);
    cr_assert(sg_projection_trivial(sg_rt(SG_RT_GROUP), &p));
    sg_projection_free(&p);
    cr_assert_eq(sg_projection_parse(sg_rt(SG_RT_GROUP), NULL, "Members", &p), SG_OK);
    cr_assert_not(p.members, "names are case-insensitive");
    sg_projection_free(&p);
    cr_assert_eq(sg_projection_parse(sg_rt(SG_RT_GROUP), NULL, NULL, &p), SG_OK);
    cr_assert(p.members);
    cr_assert(sg_projection_trivial(sg_rt(SG_RT_GROUP), &p));
    sg_projection_free(&p);
    cr_assert_eq(sg_projection_parse(sg_rt(SG_RT_GROUP), "displayName", NULL, &p), SG_OK);
    cr_assert_not(p.members);
    cr_assert_not(sg_projection_trivial(sg_rt(SG_RT_GROUP), &p));
    sg_projection_free(&p);
}
