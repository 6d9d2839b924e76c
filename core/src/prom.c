#include "prom.h"

#include <stdio.h>
#include <string.h>

static void escaped(sg_buf *b, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            sg_buf_puts(b, "\\\\");
        else if (*s == '\n')
            sg_buf_puts(b, "\\n");
        else if (*s == '"' && quote)
            sg_buf_puts(b, "\\\"");
        else
            sg_buf_putc(b, *s);
    }
}

void sg_prom_family(sg_buf *b, const char *name, const char *type, const char *help)
{
    sg_buf_printf(b, "# HELP %s ", name);
    escaped(b, help, 0);
    sg_buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

/* name{labels[,le="..."]} with the value still to come. */
static void head(sg_buf *b, const char *name, const char *suffix, const char *const *labels,
                 const char *le)
{
    sg_buf_puts(b, name);
    if (suffix) sg_buf_puts(b, suffix);
    if ((!labels || !labels[0]) && !le) {
        sg_buf_putc(b, ' ');
        return;
    }
    sg_buf_putc(b, '{');
    int n = 0;
    for (size_t i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
        sg_buf_printf(b, "%s%s=\"", n++ ? "," : "", labels[i]);
        escaped(b, labels[i + 1], 1);
        sg_buf_putc(b, '"');
    }
    if (le) sg_buf_printf(b, "%sle=\"%s\"", n ? "," : "", le);
    sg_buf_puts(b, "} ");
}

void sg_prom_u64(sg_buf *b, const char *name, const char *const *labels, uint64_t v)
{
    head(b, name, NULL, labels, NULL);
    sg_buf_printf(b, "%llu\n", (unsigned long long)v);
}

void sg_prom_f64(sg_buf *b, const char *name, const char *const *labels, double v)
{
    head(b, name, NULL, labels, NULL);
    sg_buf_printf(b, "%.6f\n", v);
}

/* A bound as plain decimal text without an exponent or trailing zeros
 * ("0.00005", "2.5", "10"); bounds finer than a microsecond are rounded. */
static void decimal(double v, char *out, size_t n)
{
    snprintf(out, n, "%.6f", v);
    char *dot = strchr(out, '.');
    if (!dot) return;
    char *e = out + strlen(out);
    while (e > dot + 1 && e[-1] == '0') *--e = '\0';
    if (e == dot + 1) *dot = '\0';
}

void sg_prom_histogram(sg_buf *b, const char *name, const char *const *labels, const double *bounds,
                       size_t nb, const uint64_t *counts, double sum)
{
    uint64_t cum = 0;
    char le[32];
    for (size_t i = 0; i <= nb; i++) {
        cum += counts[i];
        if (i < nb)
            decimal(bounds[i], le, sizeof le);
        else
            snprintf(le, sizeof le, "+Inf");
        head(b, name, "_bucket", labels, le);
        sg_buf_printf(b, "%llu\n", (unsigned long long)cum);
    }
    head(b, name, "_sum", labels, NULL);
    sg_buf_printf(b, "%.6f\n", sum);
    head(b, name, "_count", labels, NULL);
    sg_buf_printf(b, "%llu\n", (unsigned long long)cum);
}
