#include "events.h"

#include <stdio.h>
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

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *sg_event_json(const sg_event *e)
{
    char cursor[24], time[SG_TIME_MAX];
    snprintf(cursor, sizeof cursor, "%lld", (long long)e->seq);
    sg_format_time(e->time_ms, time);
    json_t *data = e->data ? json_loads(e->data, 0, NULL) : NULL;
    return json_pack("{sssssssosososo}", "cursor", cursor, "time", time, "type", e->type, "subject",
                     str_or_null(e->subject), "actor", str_or_null(e->actor), "requestId",
                     str_or_null(e->request_id), "data", data ? data : json_object());
}
