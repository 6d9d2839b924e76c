/*
** Unit tests of core/runner/lua_json.c: jansson <-> Lua conversion.
**
** Documented choice tested here: a table whose number keys are not a
** sequence 1..n ({[1]=1, [3]=3}) is an ERROR, not an object.
*/
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <lua-cjson.h>

#include "lua_json.h"

static lua_State *L;

static void setup(void)
{
    L = luaL_newstate();
    cr_assert_not_null(L);
    luaL_openlibs(L);
    luaL_requiref(L, "cjson", luaopen_cjson, 1);
    lua_pop(L, 1);
    /* what the runner offers scripts, for building values in Lua */
    sg_lua_array_mt(L);
    lua_setglobal(L, "ARRAY_MT_FOR_TESTS");
    int rc =
        luaL_dostring(L, "function arr(t) return setmetatable(t or {}, ARRAY_MT_FOR_TESTS) end");
    cr_assert_eq(rc, LUA_OK);
}

static void teardown(void)
{
    lua_close(L);
}

TestSuite(lua_json, .init = setup, .fini = teardown);

/* Push the value of a Lua expression. */
static void push_lua(const char *expr)
{
    char code[4096];
    snprintf(code, sizeof code, "return %s", expr);
    int rc = luaL_dostring(L, code);
    cr_assert_eq(rc, LUA_OK, "lua: %s", rc == LUA_OK ? "" : lua_tostring(L, -1));
}

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    cr_assert_not_null(j, "bad test JSON %s: %s", text, e.text);
    return j;
}

/* JSON text -> Lua -> JSON must give an equal document. */
static void assert_round_trip(const char *text)
{
    char err[256];
    json_t *in = parse(text);
    int top = lua_gettop(L);
    cr_assert_eq(sg_lua_push_json(L, in, 64), 0, "push %s", text);
    cr_assert_eq(lua_gettop(L), top + 1);
    json_t *out = sg_lua_to_json(L, -1, 64, err, sizeof err);
    cr_assert_not_null(out, "to_json %s: %s", text, err);
    cr_assert_eq(lua_gettop(L), top + 1, "to_json keeps the stack");
    char *dump = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    cr_assert(json_equal(in, out), "%s came back as %s", text, dump);
    /* integers stay integers and reals stay reals (json_equal says 1 != 1.0) */
    free(dump);
    json_decref(in);
    json_decref(out);
    lua_pop(L, 1);
}

/* Convert the Lua expression; expect failure with `needle` in the message. */
static void assert_to_json_fails(const char *expr, const char *needle)
{
    char err[256];
    push_lua(expr);
    int top = lua_gettop(L);
    json_t *j = sg_lua_to_json(L, -1, 64, err, sizeof err);
    cr_assert_null(j, "%s converted", expr);
    cr_assert_eq(lua_gettop(L), top, "stack unchanged on error");
    cr_assert(strstr(err, needle) != NULL, "%s: message '%s' lacks '%s'", expr, err, needle);
    lua_pop(L, 1);
}

/* Convert the Lua expression and compare with the expected JSON text. */
static void assert_to_json(const char *expr, const char *want_text)
{
    char err[256];
    push_lua(expr);
    json_t *got = sg_lua_to_json(L, -1, 64, err, sizeof err);
    cr_assert_not_null(got, "%s: %s", expr, err);
    json_t *want = parse(want_text);
    char *dump = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    cr_assert(json_equal(got, want), "%s gave %s, want %s", expr, dump, want_text);
    free(dump);
    json_decref(got);
    json_decref(want);
    lua_pop(L, 1);
}

Test(lua_json, round_trips)
{
    assert_round_trip("{}");
    assert_round_trip("[]");
    assert_round_trip("null");
    assert_round_trip("true");
    assert_round_trip("\"text\"");
    assert_round_trip("{\"a\":[],\"b\":{},\"c\":null,\"d\":[1,{\"e\":[]}]}");
    assert_round_trip("{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],"
                      "\"userName\":\"Zo\\u00eb\",\"active\":false,\"emails\":[{\"value\":"
                      "\"z@example.com\",\"primary\":true}],\"x\":[[[]],{}],\"n\":-0.5}");
    assert_round_trip("[9223372036854775807,-9223372036854775808,0,1.5e300]");
    assert_round_trip("\"nul\\u0000inside\"");
}

Test(lua_json, nul_bytes_in_keys_and_strings)
{
    /* jansson's parser refuses NUL in keys, but its *n API and our
     * converters keep them both ways */
    char err[128];
    push_lua("{['a\\0b'] = 'x\\0y'}");
    json_t *j = sg_lua_to_json(L, -1, 4, err, sizeof err);
    cr_assert_not_null(j, "%s", err);
    lua_pop(L, 1);
    cr_assert_eq(sg_lua_push_json(L, j, 4), 0);
    lua_setglobal(L, "v");
    push_lua("v['a\\0b'] == 'x\\0y' and v.a == nil");
    cr_assert(lua_toboolean(L, -1));
    lua_pop(L, 1);
    json_decref(j);
}

Test(lua_json, empty_array_and_empty_object_stay_apart)
{
    json_t *in = parse("{\"arr\":[],\"obj\":{}}");
    cr_assert_eq(sg_lua_push_json(L, in, 8), 0);
    lua_setglobal(L, "v");
    push_lua("getmetatable(v.arr) == 'scimgate.array' and getmetatable(v.obj) == nil "
             "and next(v.arr) == nil and next(v.obj) == nil");
    cr_assert(lua_toboolean(L, -1), "arr is marked, obj is not");
    lua_pop(L, 1);

    lua_getglobal(L, "v");
    lua_getfield(L, -1, "arr");
    cr_assert(sg_lua_is_array(L, -1));
    lua_getfield(L, -2, "obj");
    cr_assert(!sg_lua_is_array(L, -1));
    lua_pop(L, 3);

    json_decref(in);
    assert_to_json("{}", "{}");
    assert_to_json("arr()", "[]");
    assert_to_json("arr({})", "[]");
    assert_to_json("{a = arr(), b = {}}", "{\"a\":[],\"b\":{}}");
}

Test(lua_json, marker_is_shared_and_protected)
{
    push_lua("getmetatable(cjson and arr())");
    cr_assert_str_eq(lua_tostring(L, -1), "scimgate.array");
    lua_pop(L, 1);
    /* scripts cannot strip the marker from an array */
    cr_assert_neq(luaL_dostring(L, "setmetatable(arr(), nil)"), LUA_OK);
    lua_pop(L, 1);
    /* one table for every array */
    json_t *a = parse("[[],[]]");
    cr_assert_eq(sg_lua_push_json(L, a, 4), 0);
    lua_rawgeti(L, -1, 1);
    lua_getmetatable(L, -1);
    lua_rawgeti(L, -3, 2);
    lua_getmetatable(L, -1);
    cr_assert(lua_rawequal(L, -1, -3));
    sg_lua_array_mt(L);
    cr_assert(lua_rawequal(L, -1, -2));
    lua_pop(L, 6);
    json_decref(a);
}

Test(lua_json, null_is_cjson_null)
{
    json_t *in = parse("{\"x\":null}");
    cr_assert_eq(sg_lua_push_json(L, in, 4), 0);
    lua_setglobal(L, "v");
    push_lua("v.x == cjson.null and type(v.x) == 'userdata'");
    cr_assert(lua_toboolean(L, -1));
    lua_pop(L, 1);
    json_decref(in);
    assert_to_json("{x = cjson.null}", "{\"x\":null}");
    assert_to_json("cjson.null", "null");
    assert_to_json("arr({cjson.null, cjson.null})", "[null,null]");
}

Test(lua_json, integers_and_floats)
{
    json_t *in = parse("[3,3.0,-7,2.5]");
    cr_assert_eq(sg_lua_push_json(L, in, 4), 0);
    lua_setglobal(L, "v");
    push_lua("math.type(v[1]) == 'integer' and math.type(v[2]) == 'float' and "
             "math.type(v[3]) == 'integer' and v[4] == 2.5");
    cr_assert(lua_toboolean(L, -1));
    lua_pop(L, 1);
    json_decref(in);

    char err[128];
    push_lua("{3, 3.0, math.maxinteger}");
    json_t *out = sg_lua_to_json(L, -1, 4, err, sizeof err);
    cr_assert_not_null(out, "%s", err);
    cr_assert(json_is_integer(json_array_get(out, 0)));
    cr_assert(json_is_real(json_array_get(out, 1)));
    cr_assert_eq(json_integer_value(json_array_get(out, 2)), INT64_MAX);
    json_decref(out);
    lua_pop(L, 1);

    assert_to_json_fails("{n = 0/0}", "not finite");
    assert_to_json_fails("{n = math.huge}", "not finite");
    assert_to_json_fails("-math.huge", "not finite");
}

Test(lua_json, depth_limit_on_push)
{
    /* 10 nested arrays: [[[[[[[[[[]]]]]]]]]] */
    json_t *in = parse("[[[[[[[[[[]]]]]]]]]]");
    int top = lua_gettop(L);
    cr_assert_eq(sg_lua_push_json(L, in, 9), -1);
    cr_assert_eq(lua_gettop(L), top, "nothing pushed on failure");
    cr_assert_eq(sg_lua_push_json(L, in, 10), 0);
    cr_assert_eq(lua_gettop(L), top + 1);
    lua_pop(L, 1);
    json_decref(in);

    json_t *scalar = json_integer(1);
    cr_assert_eq(sg_lua_push_json(L, scalar, 0), 0, "scalars need no depth");
    lua_pop(L, 1);
    cr_assert_eq(sg_lua_push_json(L, NULL, 4), -1);
    json_decref(scalar);

    /* far deeper than any limit we use: fails cleanly, no C stack blow-up */
    json_t *deep = json_array(), *cur = deep;
    for (int i = 0; i < 5000; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    cr_assert_eq(sg_lua_push_json(L, deep, 64), -1);
    cr_assert_eq(lua_gettop(L), top);
    json_decref(deep);
}

Test(lua_json, depth_limit_on_to_json)
{
    char err[128];
    push_lua("{a = {b = {c = {}}}}"); /* depth 4 */
    json_t *j = sg_lua_to_json(L, -1, 3, err, sizeof err);
    cr_assert_null(j);
    cr_assert(strstr(err, "$.a.b.c: nested deeper than 3") != NULL, "%s", err);
    j = sg_lua_to_json(L, -1, 4, err, sizeof err);
    cr_assert_not_null(j, "%s", err);
    json_decref(j);
    lua_pop(L, 1);
}

Test(lua_json, cycle_is_an_error)
{
    assert_to_json_fails("(function() local t = {} t.self = t return t end)()", "deeper");
    assert_to_json_fails("(function() local t = arr() t[1] = t return t end)()", "deeper");
}

Test(lua_json, invalid_utf8_is_an_error)
{
    assert_to_json_fails("'\\xff\\xfe'", "$: string is not valid UTF-8");
    assert_to_json_fails("{name = {givenName = 'a\\xc3'}}", "$.name.givenName: string is not");
    assert_to_json_fails("{1, 2, '\\xed\\xa0\\x80'}", "$[3]: string is not valid UTF-8");
    assert_to_json_fails("{['k\\xff'] = 1}", "object key is not valid UTF-8");
    /* valid multibyte text passes */
    assert_to_json("'Zo\\u{eb} \\u{1F600}'", "\"Zo\\u00eb \\ud83d\\ude00\"");
}

Test(lua_json, sparse_and_mixed_tables_are_errors)
{
    /* documented: not silently an object, since that would turn a list
     * with a hole into {"1":..., "3":...} */
    assert_to_json_fails("{[1] = 1, [3] = 3}", "not a sequence");
    assert_to_json_fails("{[2] = 'x'}", "not a sequence");
    assert_to_json_fails("{[0] = 'x'}", "not a sequence");
    assert_to_json_fails("{[1.5] = 'x'}", "not a sequence");
    assert_to_json_fails("{1, 2, x = 3}", "mixes number and string keys");
    assert_to_json_fails("{[true] = 1}", "table key of type boolean");
    assert_to_json_fails("arr({1, x = 2})", "array has holes");
    assert_to_json_fails("arr({[2] = 1})", "array has holes");
    /* a foreign metatable makes an object: string keys only */
    assert_to_json("setmetatable({a = 1}, {})", "{\"a\":1}");
    assert_to_json_fails("setmetatable({1, 2}, {})", "metatable");
    /* plain sequences are arrays */
    assert_to_json("{'a', 'b', {x = true}}", "[\"a\",\"b\",{\"x\":true}]");
    assert_to_json("{[1.0] = 'a', [2] = 'b'}", "[\"a\",\"b\"]");
}

Test(lua_json, values_without_json_form)
{
    assert_to_json_fails("print", "cannot convert a function");
    assert_to_json_fails("{f = print}", "$.f: cannot convert a function");
    assert_to_json_fails("coroutine.create(print)", "cannot convert a thread");
    assert_to_json_fails("io.stdout", "cannot convert a userdata");
    assert_to_json_fails("nil", "nil is not a JSON value");

    char err[64];
    lua_pushlightuserdata(L, &err);
    cr_assert_null(sg_lua_to_json(L, -1, 4, err, sizeof err));
    cr_assert(strstr(err, "lightuserdata") != NULL, "%s", err);
    /* no error buffer at all is allowed */
    cr_assert_null(sg_lua_to_json(L, -1, 4, NULL, 0));
    lua_pop(L, 1);
}

Test(lua_json, negative_index_and_error_truncation)
{
    char err[8];
    push_lua("{a = print}");
    lua_pushinteger(L, 1);
    cr_assert_null(sg_lua_to_json(L, -2, 4, err, sizeof err));
    cr_assert_eq(strlen(err), sizeof err - 1, "message cut to the buffer");
    json_t *j = sg_lua_to_json(L, -1, 4, err, sizeof err);
    cr_assert(json_is_integer(j));
    json_decref(j);
    lua_pop(L, 2);
}

Test(lua_json, is_array_before_any_marker_exists)
{
    lua_State *fresh = luaL_newstate();
    lua_newtable(fresh);
    cr_assert(!sg_lua_is_array(fresh, -1));
    char err[64];
    json_t *j = sg_lua_to_json(fresh, -1, 4, err, sizeof err);
    cr_assert(json_is_object(j), "an empty table is an object");
    json_decref(j);
    lua_close(fresh);
}
