/* The `scimgate` Lua module that hook scripts see (DESIGN §4). */
#ifndef SG_LUA_MODULE_H
#define SG_LUA_MODULE_H

#include <lua.h>

#include "lua_deliver.h"

/*
** Push the module table. cfg must outlive L. [-0, +1, m]
**
**   scimgate.log(level, ...)        level: "error", "warn", "info", "debug"
**   scimgate.json.encode(v)         JSON text; arrays stay arrays (see json.array)
**   scimgate.json.decode(s)         a value; arrays carry the array marker
**   scimgate.json.null              JSON null (the same value as cjson.null)
**   scimgate.json.array([t])        mark t (or a new table) as a JSON array
**   scimgate.primary_email(user)    the primary email, else the work one, else the first
**   scimgate.get(resource, path)    a value by SCIM path: "name.givenName",
**                                   'emails[type eq "work"].value',
**                                   "urn:...:enterprise:2.0:User:department"
**   scimgate.deliver.smtp/webhook/spool   (only while invite.on_invite runs)
*/
void sg_lua_push_module(lua_State *L, const sg_deliver_config *cfg);

#endif
