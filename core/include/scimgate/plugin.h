/*
** scimgate plugin ABI: the one header a plugin includes.
**
** A plugin is a shared object (sg_<kind>_<name>.so) that exports exactly one
** symbol:
**
**     sg_status sg_plugin_init(const sg_host *host, sg_plugin_reg *out);
**
** The gateway opens it with dlopen(RTLD_NOW | RTLD_LOCAL) at start-up, calls
** sg_plugin_init once on the main thread, and refuses the plugin when
** out->abi_major differs from its own (the message names the file and both
** versions). The plugin should itself refuse a host whose abi_major differs
** (return SG_EVERSION). `host` stays valid until the plugin is unloaded.
**
** Start from plugins/template/ to write one.
*/
#ifndef SCIMGATE_PLUGIN_H
#define SCIMGATE_PLUGIN_H

#include "abi.h"
#include "auth.h"
#include "error.h"
#include "filter.h"
#include "host.h"
#include "storage.h"

typedef enum sg_plugin_kind {
    SG_PLUGIN_STORAGE = 1, /* vtab is a const sg_storage_vtab * */
    SG_PLUGIN_AUTH = 2,    /* vtab is a const sg_auth_vtab *    */
} sg_plugin_kind;

typedef struct sg_plugin_reg {
    SG_ABI_HEADER; /* the ABI the plugin was built against */
    sg_plugin_kind kind;
    const char *name; /* "sqlite", "bearer": static storage   */
    const void *vtab; /* static storage                       */
} sg_plugin_reg;

#define SG_PLUGIN_ENTRY "sg_plugin_init"

typedef sg_status (*sg_plugin_init_fn)(const sg_host *host, sg_plugin_reg *out);

#if defined(__GNUC__)
#define SG_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define SG_PLUGIN_EXPORT
#endif

#endif
