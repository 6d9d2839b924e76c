#include "events.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

sg_status sg_event_add(const sg_storage_vtab *st, sg_conn *c, const char *tenant,
                       const sg_actor *actor, const char *type, const char *subject,
                       const json_t *data, sg_error *err)
{
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    sg_event e = {
        .time_ms = sg_now_ms(),
        .type = type,
        .subject = subject,
        .actor = actor && actor->who ? actor->who : "system",
        .request_id = actor ? actor->request_id : NULL,
        .data = text,
        /* user.* and group.* are the change feed; the rest is audit */
        .flags = (!strncmp(type, "user.", 5) || !strncmp(type, "group.", 6)) ? SG_EVENT_CHANGE : 0};
    int64_t seq;
    sg_status s = st->event_append(c, tenant, &e, &seq, err);
    free(text);
    return s;
}
