/*
** Where the gateway finds its files. A binary in the build tree uses the
** source tree's schemas/, scripts/ and core/portal/ and the plugins built
** next to it (<build>/plugins); an installed binary (<prefix>/bin) uses
** <prefix>/share/scimgate/{schemas,scripts,portal} and
** <prefix>/<libdir>/scimgate/plugins.
*/
#ifndef SG_PATHS_H
#define SG_PATHS_H

#include <stdbool.h>
#include <stddef.h>

struct sg_config;

/* Fill the unset path defaults of `cfg` (schemas, scripts, portal,
 * plugins, admin_listen, public_url). */
bool sg_paths_resolve(struct sg_config *cfg, char *err, size_t errlen);

/* Absolute path of the running binary (static storage). */
const char *sg_paths_self(void);

#endif
