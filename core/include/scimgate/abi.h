/*
** scimgate plugin ABI: version numbers.
**
** A plugin is built against these headers and loaded with dlopen at start-up.
** The major number changes when an existing declaration changes meaning or
** layout; the loader refuses a plugin whose major differs from the gateway's.
** The minor number grows when a method is appended to the end of a vtable or
** a member to the end of the host table; before calling such a method the
** core checks the vtable's `size`, and a plugin checks `host->size` before
** using a host service added after the minor it was built for.
**
** Change log
**   1.0  first release: host services, storage (tenants, tokens of every
**        kind, admins, resources, memberships, filter search) and auth vtables.
**   1.1  storage: job_counts (jobs per status, for /metrics); portal
**        sessions (session_create, session_get, session_touch,
**        session_delete, session_purge). All optional: the core checks the
**        vtable's size before it calls them.
*/
#ifndef SCIMGATE_ABI_H
#define SCIMGATE_ABI_H

#define SG_ABI_MAJOR 1
#define SG_ABI_MINOR 1

/* Every vtable and the host table begin with this header. */
#define SG_ABI_HEADER                                                                              \
    unsigned short abi_major;                                                                      \
    unsigned short abi_minor;                                                                      \
    unsigned int size /* sizeof the struct as its builder compiled it */

/* True when a struct `t` (pointer) was built large enough to hold `member`. */
#define SG_HAS_MEMBER(t, type, member)                                                             \
    ((t)->size >= offsetof(type, member) + sizeof(((type *)0)->member))

#endif
