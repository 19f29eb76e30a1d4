/*
 * Unit tests of src/daemon/prom.c: a registry with every kind of family
 * rendered and compared with the exact text (HELP/TYPE lines, label value
 * escaping, cumulative histogram buckets with +Inf, _sum, _count), series
 * lookups returning the same handle, the family limit counted in
 * riskd_metrics_series_dropped_total, clearing a family; and the rendered
 * text through `promtool check metrics` (skipped without promtool).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "src/daemon/prom.h"

static const char *const dropped_head =
        "# HELP riskd_metrics_series_dropped_total Label combinations not recorded because their family was full\n"
        "# TYPE riskd_metrics_series_dropped_total counter\n";

/* One of each kind, labels with every character that needs escaping. */
static Prom *sample(void)
{
        Prom *p = prom_new();
        PromFamily *ev = prom_family(p, PROM_COUNTER, "t_events_total", "Events read, by type", "type", NULL, 0);
        PromFamily *al = prom_family(p, PROM_COUNTER, "t_alerts_total", "Alerts by \"rule\"\nand \\severity",
                                     "rule,severity", NULL, 0);
        PromFamily *lag = prom_family(p, PROM_GAUGE, "t_lag", "Consumer lag", "topic,partition", NULL, 0);
        PromFamily *up = prom_family(p, PROM_GAUGE, "t_up", "Whether it runs", NULL, NULL, 0);
        static const double bounds[] = {0.005, 0.1, 1, 10};
        PromFamily *lat = prom_family(p, PROM_HISTOGRAM, "t_latency_seconds", "Batch latency", NULL, bounds, 4);
        PromFamily *byp = prom_family(p, PROM_HISTOGRAM, "t_restore_seconds", "Restore duration", "partition",
                                      bounds, 2);
        prom_family(p, PROM_GAUGE, "t_empty", "A family without series", "x", NULL, 0);

        prom_add(prom_series1(ev, "alert"), 3);
        prom_add(prom_series1(ev, "filing"), 1);
        prom_add(prom_series1(ev, "alert"), 2);
        prom_add(prom_series2(al, "R-\"01\"", "a\\b\nc"), 1);
        prom_add(prom_series2(al, "风险", "high"), 4);
        prom_set(prom_series2(lag, "events", "0"), 12);
        prom_set(prom_series2(lag, "events", "0"), 7.5);
        prom_set(prom_series(up, NULL), 1);
        PromSeries *s = prom_series(lat, NULL);
        prom_observe(s, 0.001);
        prom_observe(s, 0.005); /* on a bound: counted in that bucket */
        prom_observe(s, 0.5);
        prom_observe(s, 100);
        prom_observe(prom_series1(byp, "3"), 0.25);
        return p;
}

static const char *const expected =
        "# HELP t_events_total Events read, by type\n"
        "# TYPE t_events_total counter\n"
        "t_events_total{type=\"alert\"} 5\n"
        "t_events_total{type=\"filing\"} 1\n"
        "# HELP t_alerts_total Alerts by \"rule\"\\nand \\\\severity\n"
        "# TYPE t_alerts_total counter\n"
        "t_alerts_total{rule=\"R-\\\"01\\\"\",severity=\"a\\\\b\\nc\"} 1\n"
        "t_alerts_total{rule=\"风险\",severity=\"high\"} 4\n"
        "# HELP t_lag Consumer lag\n"
        "# TYPE t_lag gauge\n"
        "t_lag{topic=\"events\",partition=\"0\"} 7.5\n"
        "# HELP t_up Whether it runs\n"
        "# TYPE t_up gauge\n"
        "t_up 1\n"
        "# HELP t_latency_seconds Batch latency\n"
        "# TYPE t_latency_seconds histogram\n"
        "t_latency_seconds_bucket{le=\"0.005\"} 2\n"
        "t_latency_seconds_bucket{le=\"0.1\"} 2\n"
        "t_latency_seconds_bucket{le=\"1\"} 3\n"
        "t_latency_seconds_bucket{le=\"10\"} 3\n"
        "t_latency_seconds_bucket{le=\"+Inf\"} 4\n"
        "t_latency_seconds_sum 100.506\n"
        "t_latency_seconds_count 4\n"
        "# HELP t_restore_seconds Restore duration\n"
        "# TYPE t_restore_seconds histogram\n"
        "t_restore_seconds_bucket{partition=\"3\",le=\"0.005\"} 0\n"
        "t_restore_seconds_bucket{partition=\"3\",le=\"0.1\"} 0\n"
        "t_restore_seconds_bucket{partition=\"3\",le=\"+Inf\"} 1\n"
        "t_restore_seconds_sum{partition=\"3\"} 0.25\n"
        "t_restore_seconds_count{partition=\"3\"} 1\n"
        "# HELP t_empty A family without series\n"
        "# TYPE t_empty gauge\n";

Test(prom, render_every_kind)
{
        Prom *p = sample();
        Buf b = {0};
        prom_render(p, &b);
        Buf want = {0};
        buf_puts(&want, dropped_head);
        buf_puts(&want, expected);
        cr_assert_str_eq(b.p, want.p);
        buf_free(&b);
        buf_free(&want);
        prom_free(p);
}

Test(prom, same_handle)
{
        Prom *p = prom_new();
        PromFamily *f = prom_family(p, PROM_COUNTER, "t_total", "h", "a,b", NULL, 0);
        PromSeries *s = prom_series2(f, "x", "y");
        cr_assert_not_null(s);
        /* ("x","y") and ("xy","") hash differently and stay apart */
        cr_assert_eq(prom_series2(f, "x", "y"), s);
        cr_assert_neq(prom_series2(f, "xy", ""), s);
        for (int i = 0; i < 1000; i++) { /* through several index growths */
                char v[16];
                snprintf(v, sizeof(v), "%d", i);
                prom_add(prom_series2(f, v, "z"), i);
        }
        cr_assert_eq(prom_series2(f, "x", "y"), s);
        cr_assert_eq(prom_value(prom_series2(f, "999", "z")), 999);
        prom_add(s, 2);
        prom_add(s, 0.5);
        cr_assert_eq(prom_value(s), 2.5);
        prom_free(p);
}

Test(prom, full_family_counts_drops)
{
        Prom *p = prom_new();
        PromFamily *f = prom_family(p, PROM_COUNTER, "t_total", "h", "id", NULL, 0);
        char v[16];
        for (int i = 0; i < PROM_MAX_SERIES; i++) {
                snprintf(v, sizeof(v), "%d", i);
                cr_assert_not_null(prom_series1(f, v));
        }
        /* known combinations still work; a new one is NULL and counted */
        cr_assert_not_null(prom_series1(f, "0"));
        cr_assert_null(prom_series1(f, "new"));
        cr_assert_null(prom_series1(f, "other"));
        prom_add(NULL, 1); /* ignored */
        prom_observe(NULL, 1);
        Buf b = {0};
        prom_render(p, &b);
        cr_assert_not_null(strstr(b.p, "riskd_metrics_series_dropped_total{family=\"t_total\"} 2\n"));
        buf_free(&b);
        prom_free(p);
}

Test(prom, clear)
{
        Prom *p = prom_new();
        PromFamily *f = prom_family(p, PROM_GAUGE, "t_g", "h", "k", NULL, 0);
        prom_set(prom_series1(f, "a"), 1);
        prom_set(prom_series1(f, "b"), 2);
        prom_family_clear(f);
        prom_set(prom_series1(f, "b"), 3);
        Buf b = {0};
        prom_render(p, &b);
        cr_assert_not_null(strstr(b.p, "# TYPE t_g gauge\nt_g{k=\"b\"} 3\n"));
        cr_assert_null(strstr(b.p, "k=\"a\""));
        buf_free(&b);
        prom_free(p);
}

Test(prom, special_values)
{
        Prom *p = prom_new();
        PromFamily *f = prom_family(p, PROM_GAUGE, "t_g", "h", "k", NULL, 0);
        prom_set(prom_series1(f, "nan"), NAN);
        prom_set(prom_series1(f, "inf"), INFINITY);
        prom_set(prom_series1(f, "ninf"), -INFINITY);
        prom_set(prom_series1(f, "big"), 1e300);
        prom_set(prom_series1(f, "neg"), -3);
        prom_set(prom_series1(f, "small"), 1.5e-7);
        Buf b = {0};
        prom_render(p, &b);
        cr_assert_not_null(strstr(b.p, "t_g{k=\"nan\"} NaN\n"
                                       "t_g{k=\"inf\"} +Inf\n"
                                       "t_g{k=\"ninf\"} -Inf\n"
                                       "t_g{k=\"big\"} 1e+300\n"
                                       "t_g{k=\"neg\"} -3\n"
                                       "t_g{k=\"small\"} 1.5e-07\n"), "%s", b.p);
        buf_free(&b);
        prom_free(p);
}

/* The sample registry (with the drop counter moved) through promtool. */
Test(prom, promtool)
{
        if (system("command -v promtool >/dev/null 2>&1") != 0)
                cr_skip_test("promtool not installed (Debian package prometheus)");
        Prom *p = sample();
        PromFamily *f = prom_family(p, PROM_COUNTER, "t_ids_total", "h", "id", NULL, 0);
        char v[16];
        for (int i = 0; i <= PROM_MAX_SERIES; i++) {
                snprintf(v, sizeof(v), "%d", i);
                prom_add(prom_series1(f, v), 1);
        }
        prom_family_clear(f); /* 10,000 lines: promtool is fine, the log is not */
        prom_add(prom_series1(f, "x"), 1);
        Buf b = {0};
        prom_render(p, &b);
        cr_assert_not_null(strstr(b.p, "riskd_metrics_series_dropped_total{family=\"t_ids_total\"} 1\n"));
        char path[] = "/tmp/test-prom-XXXXXX";
        int fd = mkstemp(path);
        cr_assert_geq(fd, 0);
        FILE *fp = fdopen(fd, "w");
        fwrite(b.p, 1, b.len, fp);
        fclose(fp);
        char *cmd = xasprintf("promtool check metrics < %s 2>&1", path);
        FILE *out = popen(cmd, "r");
        char msg[4096] = "";
        size_t n = fread(msg, 1, sizeof(msg) - 1, out);
        msg[n] = 0;
        int st = pclose(out);
        unlink(path);
        free(cmd);
        /* promtool exits 0 with lint remarks only on stdout, 1 on problems,
         * 3 on a parse error; "no help text" and the like are remarks too */
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "promtool: exit %d: %s", WEXITSTATUS(st), msg);
        cr_assert_eq(n, 0, "promtool remarks: %s", msg);
        buf_free(&b);
        prom_free(p);
}
