/* scimgate: a multi-tenant SCIM 2.0 provisioning gateway. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/*
** glibc gives threads up to 8 malloc arenas per core, and memory freed in an
** arena serves only the threads that use that arena: with 64 request threads
** each arena ended up holding the leftovers of the large requests that ran
** in it (16 arenas on 2 cores; 20,000 users seeded by Bulk left 24 MiB of
** RssAnon with 2 arenas, 34 MiB with 16, malloc_trim after each included).
** No more threads run at once than there are cores, and small blocks come
** from each thread's cache without the arena's lock, so one arena per core
** (at least two) is enough. MALLOC_ARENA_MAX or GLIBC_TUNABLES in the
** environment win.
*/
static void limit_arenas(void)
{
    const char *tun = getenv("GLIBC_TUNABLES");
    if (getenv("MALLOC_ARENA_MAX") || (tun && strstr(tun, "arena_max"))) return;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    mallopt(M_ARENA_MAX, cores < 2 ? 2 : (int)cores);
}

int main(int argc, char **argv)
{
    limit_arenas();
    return sg_cli_main(argc, argv);
}
