/*
 * Unit tests of src/daemon/notify.c's watchdog figures: the interval from
 * WATCHDOG_USEC in riskd_watchdog_interval_seconds, and each ping's gap
 * since the one before over that interval in riskd_watchdog_gap_ratio (what
 * contrib/prometheus/riskd-alerts.yml's RiskdWatchdogNear reads).  Without
 * NOTIFY_SOCKET sd_notify sends nothing; the times are given, not waited
 * for.  Criterion runs each test in a process of its own: notify.c's state
 * starts afresh.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "src/daemon/notify.h"

static char *render(Prom *p)
{
        Buf b = {0};
        prom_render(p, &b);
        char *s = xstrndup(b.p, b.len);
        buf_free(&b);
        return s;
}

Test(notify, gaps_over_the_interval)
{
        unsetenv("NOTIFY_SOCKET");
        unsetenv("WATCHDOG_PID");
        setenv("WATCHDOG_USEC", "4000000", 1);
        notify_init();
        Prom *p = prom_new();
        notify_register(p);
        notify_watchdog(10000); /* the first ping: no gap yet */
        notify_watchdog(11000); /* before half the interval: no ping */
        notify_watchdog(12010); /* 2.01 s of 4: 0.5025 */
        notify_watchdog(15010); /* 3 s: 0.75, in le="0.75" */
        notify_watchdog(18900); /* 3.89 s: 0.9725 */
        char *s = render(p);
        const char *want[] = {
                "riskd_watchdog_interval_seconds 4\n",
                "riskd_watchdog_gap_ratio_bucket{le=\"0.55\"} 1\n",
                "riskd_watchdog_gap_ratio_bucket{le=\"0.6\"} 1\n",
                "riskd_watchdog_gap_ratio_bucket{le=\"0.75\"} 2\n",
                "riskd_watchdog_gap_ratio_bucket{le=\"0.9\"} 2\n",
                "riskd_watchdog_gap_ratio_bucket{le=\"1\"} 3\n",
                "riskd_watchdog_gap_ratio_bucket{le=\"+Inf\"} 3\n",
                "riskd_watchdog_gap_ratio_count 3\n",
        };
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
                cr_expect_not_null(strstr(s, want[i]), "no %s in:\n%s", want[i], s);
        /* the registry about to be freed: no series kept */
        notify_register(NULL);
        prom_free(p);
        notify_watchdog(30000);
        free(s);
}

Test(notify, no_watchdog_no_gaps)
{
        unsetenv("NOTIFY_SOCKET");
        unsetenv("WATCHDOG_USEC");
        notify_init();
        Prom *p = prom_new();
        notify_register(p);
        for (int64_t t = 1000; t < 100000; t += 7000)
                notify_watchdog(t);
        char *s = render(p);
        cr_expect_not_null(strstr(s, "riskd_watchdog_interval_seconds 0\n"), "%s", s);
        /* the family is described, with no series: no gap of a ping never sent */
        cr_expect_not_null(strstr(s, "# TYPE riskd_watchdog_gap_ratio histogram\n"), "%s", s);
        cr_expect_null(strstr(s, "riskd_watchdog_gap_ratio_count"), "%s", s);
        prom_free(p);
        free(s);
}
