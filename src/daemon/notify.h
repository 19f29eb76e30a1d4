/*
 * The daemon's conversation with its service manager (sd_notify(3)):
 * READY=1 once its partitions are assigned and restored, STATUS= lines an
 * operator reads in `systemctl status`, WATCHDOG=1 pings from the main loop
 * (a stuck loop stops pinging and systemd restarts it), RELOADING=1 and
 * READY=1 around a rule reload, STOPPING=1 on shutdown.  Without
 * NOTIFY_SOCKET (not under systemd) every call does nothing.
 */
#ifndef RISKD_DAEMON_NOTIFY_H
#define RISKD_DAEMON_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "src/daemon/prom.h"

/* Reads WATCHDOG_USEC (and unsets the environment, as sd_notify does not
 * need it again). */
void notify_init(void);
/* READY=1 with a STATUS= line; only the first call after start or after
 * notify_reloading() sends READY=1. */
void notify_ready(const char *status_fmt, ...) __attribute__((format(printf, 1, 2)));
bool notify_is_ready(void);
/* STATUS= when the text changed. */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void notify_reloading(void);
void notify_stopping(void);
/* WATCHDOG=1 when half the watchdog interval has passed since the last
 * ping; now in monotonic ms.  On the main loop (the thread that renders
 * /metrics): it observes each ping's gap in notify_register's histogram. */
void notify_watchdog(int64_t now);
/* riskd_watchdog_interval_seconds (WatchdogSec, 0 without a watchdog) and,
 * with a watchdog, riskd_watchdog_gap_ratio: the time between two pings
 * over the interval (riskd pings at 0.5; at 1 systemd has killed it), so
 * that an alert sees a loop that came close whatever WatchdogSec is.
 * After notify_init; NULL before the registry is freed. */
void notify_register(Prom *p);

#endif
