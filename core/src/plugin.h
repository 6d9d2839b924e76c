/*
** The plugin loader: every plugin, storage_sqlite included, is a shared
** object opened with dlopen(RTLD_NOW | RTLD_LOCAL) and entered through its
** one exported symbol, sg_plugin_init. The loader refuses a different ABI
** major and checks vtable sizes (DESIGN §3).
*/
#ifndef SG_PLUGIN_LOADER_H
#define SG_PLUGIN_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include "scimgate/plugin.h"

struct sg_config;

typedef struct sg_auth_inst {
    const sg_auth_vtab *vt;
    sg_auth *inst;
    void *dl;
    char *name;
} sg_auth_inst;

typedef struct sg_plugins {
    const sg_storage_vtab *st; /* storage vtable                         */
    sg_storage *store;         /* its open instance                      */
    void *st_dl;
    sg_auth_inst *auth; /* auth plugins in configured order       */
    size_t nauth;
} sg_plugins;

/* The host table handed to every plugin. */
const sg_host *sg_host_table(void);

/*
** Load a plugin of `kind` from `path` and return its registration (the
** vtable is checked: ABI major, size, no NULL methods). OUT: *dl for
** dlclose. On failure writes a message naming the file to `err`.
*/
bool sg_plugin_load(const char *path, sg_plugin_kind kind, sg_plugin_reg *reg, void **dl, char *err,
                    size_t errlen);

/* Load and open the configured storage and auth plugins. With
 * `with_auth` false only storage is loaded (CLI store commands). */
bool sg_plugins_open(sg_plugins *p, const struct sg_config *cfg, bool with_auth, char *err,
                     size_t errlen);
void sg_plugins_close(sg_plugins *p);

/* Put `vt`, a wrapper of the loaded storage vtable, in front of it: p->st
 * and the host's token_lookup call it from now on. Start-up only. */
void sg_plugins_set_storage(sg_plugins *p, const sg_storage_vtab *vt);

/* storage_watch.c: hand the status of every storage call that fails to
 * `on_status` (called on the calling thread; it must be thread-safe), by
 * putting a forwarding vtable in front of p->st. Once per process, at
 * start-up, before any thread uses the store. */
void sg_plugins_watch(sg_plugins *p, void (*on_status)(sg_status s));

#endif
