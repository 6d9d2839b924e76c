/*
** jansson <-> Lua 5.4 conversion. Contracts are in lua_json.h; this file
** explains the choices that are not visible from there.
*/
#include "lua_json.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

/*
** The registry key of the array metatable is this object's address. A
** light-userdata key never allocates when looked up (a string key would be
** interned first), which keeps sg_lua_to_json free of Lua errors.
*/
static const char array_mt_key = 'a';

/* [-0, +1, m] */
void sg_lua_array_mt(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key) == LUA_TTABLE) return;
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, SG_LUA_ARRAY_MT);
    lua_setfield(L, -2, "__name");
    /* Protects the shared table from scripts and lets them test for it. */
    lua_pushliteral(L, SG_LUA_ARRAY_MT);
    lua_setfield(L, -2, "__metatable");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &array_mt_key);
}

/* The marker's identity, or NULL when this state has not created it yet
 * (then no table can carry it). [-0, +0, -] */
static const void *array_mt_ptr(lua_State *L)
{
    const void *p = NULL;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key) == LUA_TTABLE) p = lua_topointer(L, -1);
    lua_pop(L, 1);
    return p;
}

/* The raw metatable's identity of the table at idx, or NULL. [-0, +0, -] */
static const void *raw_mt_ptr(lua_State *L, int idx)
{
    const void *p = NULL;
    if (lua_getmetatable(L, idx)) {
        p = lua_topointer(L, -1);
        lua_pop(L, 1);
    }
    return p;
}

/* [-0, +0, -] */
int sg_lua_is_array(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE) return 0;
    const void *mt = raw_mt_ptr(L, idx);
    return mt != NULL && mt == array_mt_ptr(L);
}

/* ---- JSON -> Lua ------------------------------------------------------- */

/*
** `depth` counts the containers around v. On failure the caller's top-level
** frame drops whatever was pushed, so the recursion need not unwind it.
** [-0, +1, m] on 0; unspecified pushes on -1.
*/
static int push_rec(lua_State *L, const json_t *v, int depth, int limit)
{
    /* jansson's iteration API takes non-const pointers but does not write. */
    json_t *jv = (json_t *)v;

    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        size_t klen;
        json_t *member;
        size_t n = json_object_size(v);
        /* table, key and the member being built */
        if (depth >= limit || !lua_checkstack(L, 3)) return -1;
        lua_createtable(L, 0, n > INT_MAX ? INT_MAX : (int)n);
        json_object_keylen_foreach(jv, key, klen, member)
        {
            lua_pushlstring(L, key, klen);
            if (push_rec(L, member, depth + 1, limit) != 0) return -1;
            lua_rawset(L, -3);
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (depth >= limit || !lua_checkstack(L, 3)) return -1;
        if (n > (size_t)LUA_MAXINTEGER) return -1;
        lua_createtable(L, n > INT_MAX ? INT_MAX : (int)n, 0);
        sg_lua_array_mt(L);
        lua_setmetatable(L, -2);
        for (size_t i = 0; i < n; i++) {
            if (push_rec(L, json_array_get(v, i), depth + 1, limit) != 0) return -1;
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        return 0;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER:
        /* json_int_t is long long, as is lua_Integer in a default build. */
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        return 0;
    case JSON_REAL:
        lua_pushnumber(L, (lua_Number)json_real_value(v));
        return 0;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        return 0;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        return 0;
    case JSON_NULL:
        /* cjson.null is this very value, so scripts can compare with it. */
        lua_pushlightuserdata(L, NULL);
        return 0;
    }
    return -1;
}

/* [-0, +(0|1), m] */
int sg_lua_push_json(lua_State *L, const json_t *v, int depth_limit)
{
    int top = lua_gettop(L);
    if (v == NULL || depth_limit < 0 || !lua_checkstack(L, 2)) return -1;
    if (push_rec(L, v, 0, depth_limit) != 0) {
        lua_settop(L, top);
        return -1;
    }
    return 0;
}

/* ---- Lua -> JSON ------------------------------------------------------- */

/* State of one sg_lua_to_json call. `path` is the location of the value
 * being converted, for error messages only ("$" is printed in front). */
struct conv {
    lua_State *L;
    int limit;
    const void *array_mt;
    char *err;
    size_t errlen;
    char path[192];
    size_t plen;
};

static json_t *fail(struct conv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static json_t *fail(struct conv *c, const char *fmt, ...)
{
    if (c->errlen == 0) return NULL;
    int n = snprintf(c->err, c->errlen, "$%s: ", c->path);
    if (n >= 0 && (size_t)n < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

/* Append ".key" (bytes outside printable ASCII shown as '?', so the message
 * itself stays valid UTF-8) or "[i]" to the path; returns the old length to
 * restore. A path that no longer fits is cut, never overflowed. */
static size_t path_key(struct conv *c, const char *k, size_t klen)
{
    size_t old = c->plen;
    size_t room = sizeof c->path - 1;
    if (c->plen < room) c->path[c->plen++] = '.';
    for (size_t i = 0; i < klen && i < 48 && c->plen < room; i++) {
        unsigned char ch = (unsigned char)k[i];
        c->path[c->plen++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    c->path[c->plen] = '\0';
    return old;
}

static size_t path_index(struct conv *c, lua_Integer i)
{
    size_t old = c->plen;
    int n = snprintf(c->path + c->plen, sizeof c->path - c->plen, "[%lld]", (long long)i);
    if (n > 0) c->plen += (size_t)n;
    if (c->plen >= sizeof c->path) c->plen = sizeof c->path - 1;
    return old;
}

static void path_restore(struct conv *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

static json_t *value_to_json(struct conv *c, int idx, int depth);

/* How the keys of a table look, from one raw traversal. */
struct keyshape {
    lua_Integer count; /* all keys */
    lua_Integer max;   /* largest positive integer key */
    lua_Integer ints;  /* positive integer keys */
    lua_Integer strs;  /* string keys */
    bool odd_number;   /* an integer key < 1 or a non-integral float key */
    int odd_type;      /* the type of a key that is neither, or LUA_TNONE */
};

/* [-0, +0, -] (needs 2 free stack slots) */
static void scan_keys(lua_State *L, int idx, struct keyshape *ks)
{
    memset(ks, 0, sizeof *ks);
    ks->odd_type = LUA_TNONE;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        ks->count++;
        switch (lua_type(L, -2)) {
        case LUA_TNUMBER:
            /* Lua stores integral float keys as integers, so this is enough. */
            if (lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1) {
                lua_Integer k = lua_tointeger(L, -2);
                ks->ints++;
                if (k > ks->max) ks->max = k;
            } else {
                ks->odd_number = true;
            }
            break;
        case LUA_TSTRING:
            ks->strs++;
            break;
        default:
            ks->odd_type = lua_type(L, -2);
            break;
        }
        lua_pop(L, 1);
    }
}

/* [-0, +0, -] */
static json_t *array_to_json(struct conv *c, int idx, int depth, lua_Integer n)
{
    lua_State *L = c->L;
    json_t *arr = json_array();
    if (arr == NULL) return fail(c, "out of memory");
    for (lua_Integer i = 1; i <= n; i++) {
        size_t old = path_index(c, i);
        lua_rawgeti(L, idx, i);
        json_t *item = value_to_json(c, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
        if (item == NULL || json_array_append_new(arr, item) != 0) {
            if (item != NULL) fail(c, "out of memory");
            json_decref(arr);
            return NULL;
        }
        path_restore(c, old);
    }
    return arr;
}

/* [-0, +0, -] */
static json_t *object_to_json(struct conv *c, int idx, int depth)
{
    lua_State *L = c->L;
    json_t *obj = json_object();
    if (obj == NULL) return fail(c, "out of memory");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t klen;
        /* scan_keys proved every key is a string: lua_tolstring will not
         * convert in place, which would break lua_next. */
        const char *k = lua_tolstring(L, -2, &klen);
        size_t old = path_key(c, k, klen);
        json_t *member = value_to_json(c, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
        if (member == NULL) {
            lua_pop(L, 1);
            json_decref(obj);
            return NULL;
        }
        /* jansson validates the key's UTF-8 here (and takes `member`). */
        if (json_object_setn_new(obj, k, klen, member) != 0) {
            fail(c, "object key is not valid UTF-8");
            lua_pop(L, 1);
            json_decref(obj);
            return NULL;
        }
        path_restore(c, old);
    }
    return obj;
}

/* [-0, +0, -] */
static json_t *table_to_json(struct conv *c, int idx, int depth)
{
    lua_State *L = c->L;
    struct keyshape ks;

    /* The depth limit is also what stops a table that contains itself. */
    if (depth >= c->limit) return fail(c, "nested deeper than %d (a cycle?)", c->limit);
    /* lua_next's key and value plus the metatable or an element */
    if (!lua_checkstack(L, 4)) return fail(c, "Lua stack exhausted");

    const void *mt = raw_mt_ptr(L, idx);
    bool marked = mt != NULL && mt == c->array_mt;
    scan_keys(L, idx, &ks);
    bool sequence = ks.ints == ks.count && ks.max == ks.count;

    if (marked) {
        if (!sequence) return fail(c, "array has holes or keys other than 1..n");
        return array_to_json(c, idx, depth, ks.count);
    }
    if (mt == NULL && ks.count > 0 && sequence) return array_to_json(c, idx, depth, ks.count);
    if (ks.odd_type != LUA_TNONE)
        return fail(c, "table key of type %s", lua_typename(L, ks.odd_type));
    if (ks.ints > 0 || ks.odd_number) {
        if (ks.strs > 0) return fail(c, "table mixes number and string keys");
        if (mt != NULL) return fail(c, "number keys in a table with a metatable");
        return fail(c, "number keys are not a sequence 1..n (sparse array?)");
    }
    return object_to_json(c, idx, depth);
}

/* [-0, +0, -] */
static json_t *value_to_json(struct conv *c, int idx, int depth)
{
    lua_State *L = c->L;
    json_t *v;

    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        v = json_boolean(lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            v = json_integer((json_int_t)lua_tointeger(L, idx));
        } else {
            double d = (double)lua_tonumber(L, idx);
            if (!isfinite(d)) return fail(c, "number is not finite (%g)", d);
            v = json_real(d);
        }
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        /* NULL means invalid UTF-8 (or, far less likely, no memory). */
        v = json_stringn(s, n);
        if (v == NULL) return fail(c, "string is not valid UTF-8");
        break;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) != NULL) return fail(c, "lightuserdata other than cjson.null");
        v = json_null();
        break;
    case LUA_TTABLE:
        return table_to_json(c, idx, depth);
    case LUA_TNIL:
        return fail(c, "nil is not a JSON value (use cjson.null)");
    default:
        return fail(c, "cannot convert a %s to JSON", luaL_typename(L, idx));
    }
    if (v == NULL) return fail(c, "out of memory");
    return v;
}

/* [-0, +0, -] */
json_t *sg_lua_to_json(lua_State *L, int idx, int depth_limit, char *err, size_t errlen)
{
    struct conv c = {.L = L, .limit = depth_limit, .err = err, .errlen = err ? errlen : 0};
    if (c.errlen > 0) err[0] = '\0';
    idx = lua_absindex(L, idx);
    if (depth_limit < 0) return fail(&c, "negative depth limit");
    if (!lua_checkstack(L, 2)) return fail(&c, "Lua stack exhausted");
    c.array_mt = array_mt_ptr(L);
    return value_to_json(&c, idx, 0);
}
