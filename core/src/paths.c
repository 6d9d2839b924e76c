#include "paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "util.h"

#ifndef SG_INSTALL_LIBDIR
#define SG_INSTALL_LIBDIR "lib"
#endif

static char self_path[PATH_MAX];

const char *sg_paths_self(void)
{
    if (!self_path[0]) {
        ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
        if (n <= 0)
            snprintf(self_path, sizeof self_path, "scimgate");
        else
            self_path[n] = '\0';
    }
    return self_path;
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (!p) abort();
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

bool sg_paths_resolve(sg_config *cfg, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", sg_paths_self());
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");

    char *share = join(dir, "../share/scimgate");
    bool installed = is_dir(share);
    if (!cfg->schemas)
        cfg->schemas = installed ? join(share, "schemas") : sg_xstrdup(SG_SOURCE_DIR "/schemas");
    if (!cfg->scripts)
        cfg->scripts = installed ? join(share, "scripts") : sg_xstrdup(SG_SOURCE_DIR "/scripts");
    if (!cfg->portal)
        cfg->portal = installed ? join(share, "portal") : sg_xstrdup(SG_SOURCE_DIR "/core/portal");
    if (!cfg->plugins)
        cfg->plugins = installed ? join(dir, "../" SG_INSTALL_LIBDIR "/scimgate/plugins")
                                 : join(dir, "plugins");
    free(share);

    if (!cfg->admin_listen) cfg->admin_listen = sg_xstrdup(cfg->listen);
    cfg->public_url_set = cfg->public_url != NULL;
    if (!cfg->public_url) {
        bool tls = cfg->tls_cert != NULL;
        size_t n = strlen(cfg->listen) + 16;
        cfg->public_url = malloc(n);
        if (!cfg->public_url) abort();
        snprintf(cfg->public_url, n, "%s://%s", tls ? "https" : "http", cfg->listen);
    } else {
        size_t n = strlen(cfg->public_url);
        while (n > 0 && cfg->public_url[n - 1] == '/') cfg->public_url[--n] = '\0';
        if (strncmp(cfg->public_url, "http://", 7) && strncmp(cfg->public_url, "https://", 8)) {
            snprintf(err, errlen, "public_url must start with http:// or https://");
            return false;
        }
    }
    return true;
}
