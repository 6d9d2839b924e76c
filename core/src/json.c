#include "json.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "buf.h"

int sg_json_depth(const char *text, size_t len)
{
    int depth = 0, max = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"')
            in_str = true;
        else if (c == '{' || c == '[') {
            if (++depth > max) max = depth;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return max;
}

sg_status sg_json_parse(const char *text, size_t len, int max_depth, json_t **out, sg_error *err)
{
    if (sg_json_depth(text, len) > max_depth)
        return sg_error_set(err, SG_EINVALID, "invalidSyntax", "JSON nesting deeper than %d levels",
                            max_depth);
    json_error_t je;
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!v)
        return sg_error_set(err, SG_EINVALID, "invalidSyntax",
                            "request body is not valid JSON: %s (line %d, column %d)", je.text,
                            je.line, je.column);
    *out = v;
    return SG_OK;
}

static int dump_cb(const char *p, size_t n, void *ud)
{
    return sg_buf_append(ud, p, n) == SG_OK ? 0 : -1;
}

sg_status sg_json_dump(const json_t *v, sg_buf *b)
{
    return json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY) == 0 ? SG_OK
                                                                                  : SG_ENOMEM;
}

json_t *sg_json_iget(const json_t *obj, const char *name, const char **key_out)
{
    if (!json_is_object(obj)) return NULL;
    json_t *v = json_object_get(obj, name);
    if (v) {
        if (key_out) *key_out = name;
        return v;
    }
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)obj, k, val)
    {
        if (!strcasecmp(k, name)) {
            if (key_out) *key_out = k;
            return val;
        }
    }
    return NULL;
}
