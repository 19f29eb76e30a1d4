/* sd_notify for riskd (notify.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "src/daemon/log.h"
#include "src/daemon/notify.h"

static bool ready;
static int64_t watchdog_ms;     /* half the interval; 0: no watchdog */
static uint64_t watchdog_usec;  /* the interval */
static int64_t last_ping;    /* 0: none yet */
static PromSeries *gap_ratio;  /* riskd_watchdog_gap_ratio; NULL: no watchdog */
static char last_status[256];

void notify_init(void)
{
        uint64_t usec = 0;
        if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
                watchdog_usec = usec;
                watchdog_ms = (int64_t)(usec / 2000);
                if (watchdog_ms < 1)
                        watchdog_ms = 1;
                log_info("systemd watchdog: pinging every %lld ms", (long long)watchdog_ms);
        }
}

/* STATUS= when it changed; with READY=1 the first time if make_ready
 * (notify_ready). */
__attribute__((format(printf, 2, 0))) static void vstatus(bool make_ready, const char *fmt, va_list ap)
{
        char st[sizeof(last_status)];
        vsnprintf(st, sizeof(st), fmt, ap);
        /* one line: sd_notify's fields are newline-separated */
        for (char *p = st; *p; p++)
                if (*p == '\n')
                        *p = ' ';
        if (make_ready && !ready) {
                sd_notifyf(0, "READY=1\nSTATUS=%s", st);
                ready = true;
        } else if (strcmp(st, last_status) != 0) {
                sd_notifyf(0, "STATUS=%s", st);
        }
        snprintf(last_status, sizeof(last_status), "%s", st);
}

void notify_ready(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vstatus(true, fmt, ap);
        va_end(ap);
}

bool notify_is_ready(void)
{
        return ready;
}

void notify_status(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vstatus(false, fmt, ap);
        va_end(ap);
}

void notify_reloading(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        /* MONOTONIC_USEC: systemd >= 253 matches it to the reload request */
        sd_notifyf(0, "RELOADING=1\nSTATUS=reloading the rules\nMONOTONIC_USEC=%llu",
                   (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
        snprintf(last_status, sizeof(last_status), "reloading the rules");
        ready = false;
}

void notify_stopping(void)
{
        sd_notify(0, "STOPPING=1\nSTATUS=stopping: committing the open batch, leaving the group");
}

void notify_register(Prom *p)
{
        /* from half the interval, where a ping is due, to the interval */
        static const double ratio_b[] = {0.55, 0.6, 0.75, 0.9, 1};
        if (!p) {
                gap_ratio = NULL;
                return;
        }
        PromFamily *f = prom_family(p, PROM_GAUGE, "riskd_watchdog_interval_seconds",
                                    "The systemd watchdog interval (WatchdogSec; 0: no watchdog)", NULL, NULL, 0);
        prom_set(prom_series(f, NULL), (double)watchdog_usec / 1e6);
        f = prom_family(p, PROM_HISTOGRAM, "riskd_watchdog_gap_ratio",
                        "Time between two WATCHDOG=1 pings over the watchdog interval: riskd pings from 0.5, "
                        "a main loop held longer pings later, at 1 systemd restarts riskd",
                        NULL, ratio_b, sizeof(ratio_b) / sizeof(ratio_b[0]));
        gap_ratio = watchdog_ms ? prom_series(f, NULL) : NULL;
}

void notify_watchdog(int64_t now)
{
        if (!watchdog_ms || now - last_ping < watchdog_ms)
                return;
        sd_notify(0, "WATCHDOG=1");
        if (last_ping)
                prom_observe(gap_ratio, (double)(now - last_ping) * 1000 / (double)watchdog_usec);
        last_ping = now;
}
