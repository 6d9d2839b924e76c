#include "lua_module.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <lauxlib.h>

#include "buf.h"
#include "json.h"
#include "log.h"
#include "lua_json.h"

#define DEPTH 64

/* scimgate.log(level, ...) [-n, +0, e] */
static int l_log(lua_State *L)
{
    const char *level = luaL_checkstring(L, 1);
    sg_log_level lv;
    if (!sg_log_parse_level(level, &lv)) return luaL_error(L, "log: unknown level \"%s\"", level);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int n = lua_gettop(L);
    for (int i = 2; i <= n; i++) {
        if (i > 2) luaL_addchar(&b, ' ');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    sg_log(lv, "lua", "%s", lua_tostring(L, -1));
    return 0;
}

/* json.encode(v) [-1, +1, e] */
static int l_encode(lua_State *L)
{
    char err[200];
    luaL_checkany(L, 1);
    json_t *v = sg_lua_to_json(L, 1, DEPTH, err, sizeof err);
    if (!v) return luaL_error(L, "json.encode: %s", err);
    sg_buf b = {0};
    sg_status s = sg_json_dump(v, &b);
    json_decref(v);
    if (s != SG_OK) {
        sg_buf_free(&b);
        return luaL_error(L, "json.encode: out of memory");
    }
    lua_pushlstring(L, b.data ? b.data : "", b.len);
    sg_buf_free(&b);
    return 1;
}

/* json.decode(s) [-1, +1, e] */
static int l_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    json_error_t je;
    json_t *v = json_loadb(s, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!v) return luaL_error(L, "json.decode: %s (line %d)", je.text, je.line);
    int rc = sg_lua_push_json(L, v, DEPTH);
    json_decref(v);
    if (rc != 0) return luaL_error(L, "json.decode: nested too deeply");
    return 1;
}

/* json.array([t]) -> t with the array marker [-0|1, +1, e] */
static int l_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    else
        luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    sg_lua_array_mt(L);
    lua_setmetatable(L, 1);
    return 1;
}

/* Case-insensitive t[name]. [-0, +1, -] */
static int iget(lua_State *L, int t, const char *name, size_t len)
{
    t = lua_absindex(L, t);
    if (!lua_istable(L, t)) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    lua_pushlstring(L, name, len);
    if (lua_rawget(L, t) != LUA_TNIL) return lua_type(L, -1);
    lua_pop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        size_t kl;
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *k = lua_tolstring(L, -2, &kl);
            if (kl == len && !strncasecmp(k, name, len)) {
                lua_remove(L, -2);
                return lua_type(L, -1);
            }
        }
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    return LUA_TNIL;
}

/* scimgate.primary_email(user) [-1, +1, -] */
static int l_primary_email(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    iget(L, 1, "emails", 6);
    int emails = lua_gettop(L);
    if (!lua_istable(L, emails)) {
        lua_pushnil(L);
        return 1;
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, emails), pick = 0, work = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, emails, i);
        iget(L, -1, "primary", 7);
        if (lua_toboolean(L, -1) && !pick) pick = i;
        lua_pop(L, 1);
        iget(L, -1, "type", 4);
        if (!work && lua_type(L, -1) == LUA_TSTRING && !strcasecmp(lua_tostring(L, -1), "work"))
            work = i;
        lua_pop(L, 2);
    }
    if (!pick) pick = work ? work : (n ? 1 : 0);
    if (!pick) {
        lua_pushnil(L);
        return 1;
    }
    lua_rawgeti(L, emails, pick);
    iget(L, -1, "value", 5);
    return 1;
}

/* scimgate.get(resource, path) [-2, +1, e]: a small path walker for
 * scripts; "a.b", "a[sub eq \"v\"].c" (string or boolean literals), and a
 * leading schema URN ("urn:...:User:attr"). */
static int l_get(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *path = luaL_checkstring(L, 2);
    lua_settop(L, 2);
    lua_pushvalue(L, 1); /* current value at top */
    const char *p = path;
    if (!strncasecmp(p, "urn:", 4)) {
        /* The extension object is keyed by its URN: split at the last ':'. */
        const char *colon = strrchr(p, ':');
        iget(L, -1, p, (size_t)(colon - p));
        lua_remove(L, -2);
        p = colon + 1;
    }
    while (*p) {
        size_t n = strcspn(p, ".[");
        iget(L, -1, p, n);
        lua_remove(L, -2);
        p += n;
        if (*p == '[') {
            /* [sub eq "value"] picks the first element that matches. */
            const char *close = strchr(p, ']');
            if (!close) return luaL_error(L, "get: \"]\" is missing in %s", path);
            char sub[64], op[4], val[256];
            int m = sscanf(p + 1, "%63[^ ] %3s %255[^]]", sub, op, val);
            if (m != 3 || strcasecmp(op, "eq"))
                return luaL_error(L, "get: only [attr eq value] filters: %s", path);
            size_t vl = strlen(val);
            bool quoted = vl >= 2 && val[0] == '"' && val[vl - 1] == '"';
            if (quoted) {
                memmove(val, val + 1, vl - 2);
                val[vl - 2] = '\0';
            }
            int arr = lua_gettop(L), found = 0;
            lua_Integer len = lua_istable(L, arr) ? (lua_Integer)lua_rawlen(L, arr) : 0;
            for (lua_Integer i = 1; i <= len && !found; i++) {
                lua_rawgeti(L, arr, i);
                int t = iget(L, -1, sub, strlen(sub));
                if ((t == LUA_TSTRING && !strcasecmp(lua_tostring(L, -1), val)) ||
                    (t == LUA_TBOOLEAN && lua_toboolean(L, -1) == !strcasecmp(val, "true")))
                    found = 1;
                lua_pop(L, 1);
                if (!found) lua_pop(L, 1);
            }
            if (!found) lua_pushnil(L);
            lua_remove(L, arr);
            p = close + 1;
        }
        if (*p == '.') p++;
        if (lua_isnil(L, -1)) break;
    }
    return 1;
}

void sg_lua_push_module(lua_State *L, const sg_deliver_config *cfg)
{
    lua_createtable(L, 0, 6);
    lua_pushcfunction(L, l_log);
    lua_setfield(L, -2, "log");
    lua_createtable(L, 0, 4);
    lua_pushcfunction(L, l_encode);
    lua_setfield(L, -2, "encode");
    lua_pushcfunction(L, l_decode);
    lua_setfield(L, -2, "decode");
    lua_pushcfunction(L, l_array);
    lua_setfield(L, -2, "array");
    lua_pushlightuserdata(L, NULL); /* what lua-cjson uses for null */
    lua_setfield(L, -2, "null");
    lua_setfield(L, -2, "json");
    lua_pushcfunction(L, l_primary_email);
    lua_setfield(L, -2, "primary_email");
    lua_pushcfunction(L, l_get);
    lua_setfield(L, -2, "get");
    sg_lua_push_deliver(L, cfg);
    lua_setfield(L, -2, "deliver");
}
