/*
** The JSON <-> Lua converter (core/src/lua_json.c) that carries every
** resource into and out of the hook scripts.
**
** Input, byte 0: bit 0 picks the direction.
**   0: the rest is JSON (jansson, NULs allowed in strings); it goes to Lua
**      with the depth limit byte0 >> 1 and back. It must convert exactly
**      when its depth is within the limit, and come back equal.
**   1: the rest is a Lua chunk (text only) run in a fresh state with the
**      base, string, table and math libraries, `array(t)` (gives t the
**      array metatable), `null` (cjson.null) and an instruction and memory
**      budget, as a hook script's result would be; each value it returns
**      goes to JSON (depth 16). What converts must come back from a
**      second trip unchanged.
** Either way the Lua stack must be as it was after each call.
*/
#include <lauxlib.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "lua_json.h"

#define MEMORY_CAP   (16u << 20)
#define INSTRUCTIONS 200000 /* in steps of 1000 */

typedef struct budget {
    size_t used, cap;
    int steps;
} budget;

static void *alloc(void *ud, void *p, size_t osize, size_t nsize)
{
    budget *b = ud;
    size_t old = p ? osize : 0;
    if (nsize == 0) {
        free(p);
        b->used -= old;
        return NULL;
    }
    if (nsize > old && b->used - old + nsize > b->cap) return NULL;
    void *q = realloc(p, nsize);
    if (q) b->used = b->used - old + nsize;
    return q;
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    budget *b;
    lua_getallocf(L, (void **)&b);
    if (++b->steps > INSTRUCTIONS / 1000) luaL_error(L, "instruction budget exceeded");
}

static int l_array(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    sg_lua_array_mt(L);
    lua_setmetatable(L, 1);
    return 1;
}

static lua_State *new_state(budget *b)
{
    *b = (budget){.cap = MEMORY_CAP};
    lua_State *L = lua_newstate(alloc, b);
    SG_FUZZ_CHECK(L != NULL, "lua_newstate");
    static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
                                    {LUA_STRLIBNAME, luaopen_string},
                                    {LUA_TABLIBNAME, luaopen_table},
                                    {LUA_MATHLIBNAME, luaopen_math}};
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        luaL_requiref(L, libs[i].name, libs[i].func, 1);
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    lua_setglobal(L, "load"); /* no way around the text-only rule below */
    lua_pushnil(L);
    lua_setglobal(L, "collectgarbage");
    lua_pushcfunction(L, l_array);
    lua_setglobal(L, "array");
    lua_pushlightuserdata(L, NULL);
    lua_setglobal(L, "null");
    return L;
}

static int depth_of(const json_t *v)
{
    int d = 0;
    size_t i;
    const char *k;
    json_t *e;
    if (json_is_array(v)) {
        json_array_foreach(v, i, e)
        {
            int x = depth_of(e);
            if (x > d) d = x;
        }
        return d + 1;
    }
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, e)
        {
            int x = depth_of(e);
            if (x > d) d = x;
        }
        return d + 1;
    }
    return 0;
}

/* To JSON and, when that works, back to Lua and to JSON again. */
static void round_trip(lua_State *L, int idx, int limit)
{
    char err[256];
    int top = lua_gettop(L);
    json_t *a = sg_lua_to_json(L, idx, limit, err, sizeof err);
    SG_FUZZ_CHECK(lua_gettop(L) == top, "sg_lua_to_json moved the stack");
    if (!a) {
        SG_FUZZ_CHECK(err[0] == '$', "error without a location: %s", err);
        return;
    }
    SG_FUZZ_CHECK(depth_of(a) <= limit, "converted beyond the depth limit");
    SG_FUZZ_CHECK(sg_lua_push_json(L, a, limit) == 0, "a converted value does not go back");
    json_t *b = sg_lua_to_json(L, -1, limit, err, sizeof err);
    SG_FUZZ_CHECK(b != NULL, "second trip failed: %s", err);
    SG_FUZZ_CHECK(sg_fuzz_json_same(a, b), "second trip changed the value");
    lua_pop(L, 1);
    SG_FUZZ_CHECK(lua_gettop(L) == top, "stack");
    json_decref(a);
    json_decref(b);
}

static void from_json(const char *text, size_t len, int limit)
{
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!v) return;
    budget b;
    lua_State *L = new_state(&b);
    int top = lua_gettop(L);
    int r = sg_lua_push_json(L, v, limit);
    SG_FUZZ_CHECK(lua_gettop(L) == top + (r == 0), "sg_lua_push_json stack");
    SG_FUZZ_CHECK((r == 0) == (depth_of(v) <= limit), "depth %d limit %d result %d", depth_of(v),
                  limit, r);
    if (r == 0) {
        char err[256];
        json_t *back = sg_lua_to_json(L, -1, limit, err, sizeof err);
        SG_FUZZ_CHECK(back != NULL, "JSON from JSON refused: %s", err);
        SG_FUZZ_CHECK(sg_fuzz_json_same(v, back), "JSON -> Lua -> JSON changed the value");
        json_decref(back);
    }
    lua_close(L);
    json_decref(v);
}

static void from_lua(const char *text, size_t len)
{
    budget b;
    lua_State *L = new_state(&b);
    if (luaL_loadbufferx(L, text, len, "=fuzz", "t") == LUA_OK) {
        lua_sethook(L, count_hook, LUA_MASKCOUNT, 1000);
        int base = lua_gettop(L) - 1;
        if (lua_pcall(L, 0, LUA_MULTRET, 0) == LUA_OK) {
            lua_sethook(L, NULL, 0, 0);
            b.cap = SIZE_MAX; /* conversions may raise only on memory errors */
            for (int i = base + 1; i <= lua_gettop(L); i++) round_trip(L, i, 16);
        }
    }
    lua_close(L);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sg_fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (data[0] & 1)
        from_lua((const char *)data + 1, size - 1);
    else
        from_json((const char *)data + 1, size - 1, (data[0] >> 1) % 70);
    return 0;
}
