/* The Prometheus text format writer (prom.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "prom.h"

Test(prom, family_lines_escape_the_help_text)
{
    sg_buf b = {0};
    sg_prom_family(&b, "x_total", "counter", "a \\ b\nc \"d\"");
    cr_assert_str_eq(b.data, "# HELP x_total a \\\\ b\\nc \"d\"\n# TYPE x_total counter\n");
    sg_buf_free(&b);
}

Test(prom, samples_with_and_without_labels)
{
    sg_buf b = {0};
    sg_prom_u64(&b, "up", NULL, 1);
    const char *none[] = {NULL};
    sg_prom_u64(&b, "up", none, 2);
    const char *l[] = {"tenant", "a\"b\\c\nd", "op", "get_user", NULL};
    sg_prom_u64(&b, "req_total", l, 18446744073709551615ull);
    const char *one[] = {"kind", "x", NULL};
    sg_prom_f64(&b, "secs", one, 0.0015);
    cr_assert_str_eq(b.data, "up 1\n"
                             "up 2\n"
                             "req_total{tenant=\"a\\\"b\\\\c\\nd\",op=\"get_user\"} "
                             "18446744073709551615\n"
                             "secs{kind=\"x\"} 0.001500\n");
    sg_buf_free(&b);
}

Test(prom, histograms_are_cumulative_with_count_equal_to_the_inf_bucket)
{
    sg_buf b = {0};
    const double bounds[] = {0.00005, 0.001, 2.5, 10};
    const uint64_t counts[] = {1, 0, 3, 2, 4}; /* the last: above 10 */
    const char *l[] = {"op", "x", NULL};
    sg_prom_histogram(&b, "d_seconds", l, bounds, 4, counts, 12.25);
    cr_assert_str_eq(b.data, "d_seconds_bucket{op=\"x\",le=\"0.00005\"} 1\n"
                             "d_seconds_bucket{op=\"x\",le=\"0.001\"} 1\n"
                             "d_seconds_bucket{op=\"x\",le=\"2.5\"} 4\n"
                             "d_seconds_bucket{op=\"x\",le=\"10\"} 6\n"
                             "d_seconds_bucket{op=\"x\",le=\"+Inf\"} 10\n"
                             "d_seconds_sum{op=\"x\"} 12.250000\n"
                             "d_seconds_count{op=\"x\"} 10\n");
    sg_buf_reset(&b);
    sg_prom_histogram(&b, "h", NULL, bounds, 1, counts, 0);
    cr_assert_str_eq(b.data, "h_bucket{le=\"0.00005\"} 1\n"
                             "h_bucket{le=\"+Inf\"} 1\n"
                             "h_sum 0.000000\n"
                             "h_count 1\n");
    sg_buf_free(&b);
}
