/*
 * The daemon's log: one line per event of note on stderr, each prefixed
 * with its syslog priority ("<5>...") so that journald keeps the level.
 * Lines are written with one write(2), so that lines from librdkafka's
 * threads and the main loop never interleave.
 *
 * Per-message problems (dead letters, undecodable changelog records) go
 * through a LogLimit so that a flood of bad input costs a bounded number of
 * lines: at most `burst` lines per `interval_ms`, then one line with the
 * number suppressed.
 */
#ifndef RISKD_DAEMON_LOG_H
#define RISKD_DAEMON_LOG_H

#include <stdbool.h>
#include <stdint.h>

/* syslog priorities */
enum { LOG_PRIO_ERR = 3, LOG_PRIO_WARNING = 4, LOG_PRIO_NOTICE = 5, LOG_PRIO_INFO = 6, LOG_PRIO_DEBUG = 7 };

/* "err", "warning", "notice", "info", "debug" by priority; NULL otherwise. */
const char *log_prio_name(int prio);
void log_set_max_prio(int prio);
int log_get_max_prio(void);
bool log_enabled(int prio);

void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_PRIO_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_PRIO_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_PRIO_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_PRIO_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_PRIO_DEBUG, __VA_ARGS__)

typedef struct LogLimit {
        int64_t interval_ms;
        uint32_t burst;
        int64_t begin;          /* start of the current interval (monotonic ms) */
        uint32_t n;             /* lines let through in it */
        uint64_t suppressed;    /* lines held back in it */
} LogLimit;

#define LOG_LIMIT_INIT(ms, burst) {(ms), (burst), 0, 0, 0}

/* Whether one more line may be written now.  When an interval with
 * suppressed lines ends, writes "<what>: N more suppressed in the last Xs"
 * at prio first. */
bool log_limit_pass(LogLimit *ll, int prio, const char *what);
/* Report what was suppressed once the interval is over, even when no more
 * lines come (call it from time to time). */
void log_limit_flush(LogLimit *ll, int prio, const char *what);

struct DiagList;
/* A rule set's diagnostics, one line each: "file:line:col: error[E012]: ..." */
void log_diags(const struct DiagList *dl);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t log_now_ms(void);

#endif
