#include "log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "util.h"

static sg_log_level g_level = SG_LOG_INFO;
static _Thread_local char t_request_id[40];

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void sg_log_set_level(sg_log_level level)
{
    g_level = level;
}

bool sg_log_parse_level(const char *s, sg_log_level *out)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(level_names); i++) {
        if (!strcmp(s, level_names[i])) {
            *out = (sg_log_level)i;
            return true;
        }
    }
    if (!strcmp(s, "warning")) {
        *out = SG_LOG_WARN;
        return true;
    }
    return false;
}

bool sg_log_enabled(sg_log_level level)
{
    return level <= g_level;
}

void sg_log_set_request_id(const char *id)
{
    snprintf(t_request_id, sizeof t_request_id, "%s", id ? id : "");
}

const char *sg_log_request_id(void)
{
    return t_request_id;
}

void sg_log_fields(sg_log_level level, const char *component, const char *msg, const char *fields)
{
    if (!sg_log_enabled(level)) return;
    char ts[SG_TIME_MAX];
    sg_buf b = {0};
    sg_format_time(sg_now_ms(), ts);
    sg_buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\"", ts, level_names[level]);
    if (component) sg_buf_printf(&b, ",\"component\":\"%s\"", component);
    if (t_request_id[0]) sg_buf_printf(&b, ",\"request_id\":\"%s\"", t_request_id);
    sg_buf_puts(&b, ",\"msg\":");
    sg_buf_json_str(&b, msg, strlen(msg));
    if (fields && *fields) {
        sg_buf_putc(&b, ',');
        sg_buf_puts(&b, fields);
    }
    sg_buf_puts(&b, "}\n");
    if (b.data) {
        /* One write per line keeps lines whole between threads. */
        ssize_t r = write(STDERR_FILENO, b.data, b.len);
        (void)r;
    }
    sg_buf_free(&b);
}

void sg_vlog(sg_log_level level, const char *component, const char *fmt, va_list ap)
{
    if (!sg_log_enabled(level)) return;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    sg_log_fields(level, component, msg, NULL);
}

void sg_log(sg_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sg_vlog(level, component, fmt, ap);
    va_end(ap);
}
