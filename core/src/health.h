/*
** Per-tenant SCIM traffic of this node for the portal's Health page: for
** each of the last 60 minutes, how many SCIM requests a tenant URL had, how
** many failed (5xx, and 4xx other than 401 and 404) and how many were
** refused as unauthorized (401: a burst usually means Entra still sends an
** old token). Kept in memory, best effort: at most SG_HEALTH_TENANTS
** tenants at once (the least recently seen is forgotten first), and each
** node counts only what it served.
*/
#ifndef SG_HEALTH_H
#define SG_HEALTH_H

#include <stdint.h>

#define SG_HEALTH_TENANTS 512
#define SG_HEALTH_MINUTES 60

typedef struct sg_health_minute {
    int64_t minute; /* minutes since the epoch; 0: nothing counted */
    uint32_t requests, errors, unauthorized;
} sg_health_minute;

/* Count one answered SCIM request below `tenant`'s URL. Thread-safe. */
void sg_health_note(const char *tenant, int status);
/* The tenant's last SG_HEALTH_MINUTES minutes, oldest first (minutes with
 * nothing counted have minute 0). */
void sg_health_get(const char *tenant, int64_t now_ms, sg_health_minute out[SG_HEALTH_MINUTES]);

#endif
