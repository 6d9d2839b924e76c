#include <criterion/criterion.h>
#include <string.h>

#include "query.h"

Test(query, entra_filter_is_form_decoded)
{
    sg_params p;
    sg_error err;
    cr_assert_eq(sg_params_parse("filter=userName+eq+%22bjensen%40contoso.com%22", &p, &err),
                 SG_OK);
    cr_assert_str_eq(p.filter, "userName eq \"bjensen@contoso.com\"");
    sg_params_free(&p);
}

Test(query, names_case_insensitive_unknown_ignored)
{
    sg_params p;
    sg_error err;
    cr_assert_eq(sg_params_parse("aadOptscim062020&EXCLUDEDATTRIBUTES=members&Count=5&"
                                 "startindex=2&foo=bar",
                                 &p, &err),
                 SG_OK);
    cr_assert(p.aad_opt);
    cr_assert_str_eq(p.excluded, "members");
    cr_assert_str_eq(p.count, "5");
    cr_assert_str_eq(p.start_index, "2");
    cr_assert_null(p.filter);
    sg_params_free(&p);
}

Test(query, raw_quotes_and_spaces)
{
    sg_params p;
    sg_error err;
    cr_assert_eq(sg_params_parse("filter=displayName eq \"Sales Team\"", &p, &err), SG_OK);
    cr_assert_str_eq(p.filter, "displayName eq \"Sales Team\"");
    sg_params_free(&p);
}

Test(query, bad_escapes_are_errors)
{
    sg_params p;
    sg_error err;
    cr_assert_eq(sg_params_parse("filter=%2", &p, &err), SG_EINVALID);
    cr_assert_eq(sg_params_parse("filter=%zz", &p, &err), SG_EINVALID);
    cr_assert_eq(sg_params_parse("filter=a%00b", &p, &err), SG_EINVALID);
    cr_assert(strstr(err.detail, "filter"));
}

Test(query, null_query)
{
    sg_params p;
    sg_error err;
    cr_assert_eq(sg_params_parse(NULL, &p, &err), SG_OK);
    cr_assert_null(p.filter);
    sg_params_free(&p);
}
