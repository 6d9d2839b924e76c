/*
** Conversion between jansson's JSON tree and Lua 5.4 values, without a text
** round trip (DESIGN §4: records cross C <-> Lua as tables).
**
** The mapping, both ways:
**
**   JSON                    Lua
**   object                  table without a metatable (string keys)
**   array                   table 1..n carrying the shared array metatable
**   string                  string (UTF-8; may contain NUL bytes)
**   integer                 integer
**   real                    float
**   true / false            boolean
**   null                    lightuserdata NULL, which is exactly cjson.null
**
** lua-cjson 2.1.0 (Debian's) cannot tell `[]` from `{}`; here every array
** carries one marker metatable, so an empty SCIM `"emails": []` or
** `"Resources": []` survives a trip through Lua (STYLE §2, point 3). The
** marker lives in the registry under a fixed light-userdata key (the
** address of a static in lua_json.c: looking it up never allocates, so
** sg_lua_to_json cannot raise) and is created on first use. It has two
** fields:
**   __name      = "scimgate.array"  (shown by luaL_tolstring and tracebacks)
**   __metatable = "scimgate.array"  so scripts can test arrayness with
**                 getmetatable(v) == "scimgate.array", yet can neither edit
**                 the shared table nor strip it from an array.
** Scripts that build new arrays need a helper from the host that calls
** sg_lua_array_mt (the test runner's json.array, for example).
**
** Depth: a scalar has depth 0 and a container 1 + the depth of its deepest
** member; a conversion fails when the value is deeper than depth_limit
** (so depth_limit 0 admits scalars only). In the Lua -> JSON direction the
** same limit turns a cycle into an error.
**
** Neither function keeps a pointer to the lua_State or to the JSON value, so
** they are safe to use from any thread that owns its state. Stack effects
** are written [-o, +p, x] as in the Lua manual.
*/
#ifndef SG_LUA_JSON_H
#define SG_LUA_JSON_H

#include <stddef.h>

#include <jansson.h>
#include <lua.h>

/* The array metatable's __name and __metatable value. */
#define SG_LUA_ARRAY_MT "scimgate.array"

/*
** Push the shared array metatable, creating it in the registry on the first
** call in this state.
** [-0, +1, m]
*/
void sg_lua_array_mt(lua_State *L);

/*
** True (1) when the value at idx is a table carrying the array metatable.
** Looks at the raw metatable, so __metatable does not hide it.
** [-0, +0, -]
*/
int sg_lua_is_array(lua_State *L, int idx);

/*
** Push the Lua form of `v` (borrowed; not kept). Objects keep jansson's
** insertion order only as far as Lua tables do (they do not).
** Returns 0 with one value pushed, or -1 with nothing pushed when `v` is
** NULL, deeper than depth_limit, or the Lua stack cannot grow.
** Raises only on memory errors (then nothing is pushed either).
** [-0, +(0|1), m]
*/
int sg_lua_push_json(lua_State *L, const json_t *v, int depth_limit);

/*
** Build the JSON form of the Lua value at idx. Tables are classified by
** their raw contents (metamethods are not called):
**   - the array metatable: an array; its keys must be exactly 1..n (n >= 0);
**   - no metatable, keys exactly 1..n with n >= 1: an array;
**   - no metatable and no keys: an (empty) object;
**   - anything else: an object, whose keys must all be strings. A table
**     with number keys that are not a sequence ({[1]=1, [3]=3}, {1, x=2},
**     {[1.5]=0}) is an ERROR, not an object: guessing there loses data.
**     A table with some other metatable is an object too.
** Strings must be valid UTF-8 (object keys as well); floats must be finite;
** the only lightuserdata allowed is NULL (cjson.null). Functions, threads
** and full userdata are errors.
** OUT: a new reference the caller owns (json_decref), or NULL with a
** NUL-terminated message in err ("$.a.b[2]: invalid UTF-8 in string") when
** errlen > 0. Never raises a Lua error, so the caller may hold C
** resources across the call.
** [-0, +0, -]
*/
json_t *sg_lua_to_json(lua_State *L, int idx, int depth_limit, char *err, size_t errlen);

#endif
