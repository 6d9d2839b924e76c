/*
** Events: the audit trail and the change feed (DESIGN §2, §5). Every SCIM
** write and every state change appends one, in the same transaction as the
** change itself. Change-feed events (user.*, group.*) carry
** SG_EVENT_CHANGE; the cursor clients see is the event's seq, as text.
*/
#ifndef SG_EVENTS_H
#define SG_EVENTS_H

#include <jansson.h>

#include "scimgate/plugin.h"

typedef struct sg_actor {
    const char *who;        /* "token:<id>", "admin:<login>", "device:<id>", "system" */
    const char *request_id; /* or NULL */
} sg_actor;

/* Append an event; `data` (may be NULL) is borrowed and encoded. */
sg_status sg_event_add(const sg_storage_vtab *st, sg_conn *c, const char *tenant,
                       const sg_actor *actor, const char *type, const char *subject,
                       const json_t *data, sg_error *err);

/* An event as the admin API and the change webhook show it: {"cursor",
 * "time", "type", "subject", "actor", "requestId", "data"}. */
json_t *sg_event_json(const sg_event *e);

/* At most this many ids are listed in one membership event; the count is
 * always given. */
#define SG_EVENT_MAX_IDS 100

#endif
