/*
 * The daemon's log (log.h): syslog priority prefixes on stderr, a level
 * filter, and rate limits for per-message problems.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "include/riskd/diag.h"
#include "src/daemon/log.h"

static int max_prio = LOG_PRIO_INFO;

const char *log_prio_name(int prio)
{
        static const char *const names[] = {[LOG_PRIO_ERR] = "err", [LOG_PRIO_WARNING] = "warning",
                                            [LOG_PRIO_NOTICE] = "notice", [LOG_PRIO_INFO] = "info",
                                            [LOG_PRIO_DEBUG] = "debug"};
        return prio >= LOG_PRIO_ERR && prio <= LOG_PRIO_DEBUG ? names[prio] : NULL;
}

void log_set_max_prio(int prio)
{
        max_prio = prio;
}

int log_get_max_prio(void)
{
        return max_prio;
}

bool log_enabled(int prio)
{
        return prio <= max_prio;
}

void log_msg(int prio, const char *fmt, ...)
{
        if (prio > max_prio)
                return;
        int saved = errno;
        char line[2048];
        int n = snprintf(line, sizeof(line), "<%d>", prio);
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
        va_end(ap);
        size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
        if (len > sizeof(line) - 2) { /* truncated: say so */
                len = sizeof(line) - 2;
                memcpy(line + len - 3, "...", 3);
        }
        /* one line per event: a message never spans lines */
        for (size_t i = (size_t)n; i < len; i++)
                if (line[i] == '\n' || line[i] == '\r')
                        line[i] = ' ';
        line[len++] = '\n';
        /* one write, so that lines of several threads do not interleave */
        for (size_t off = 0; off < len;) {
                ssize_t w = write(STDERR_FILENO, line + off, len - off);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        break;
                off += (size_t)w;
        }
        errno = saved;
}

int64_t log_now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool log_limit_pass(LogLimit *ll, int prio, const char *what)
{
        int64_t now = log_now_ms();
        if (ll->begin == 0 || now - ll->begin >= ll->interval_ms) {
                if (ll->suppressed)
                        log_msg(prio, "%s: %llu more suppressed in the last %llds", what,
                                (unsigned long long)ll->suppressed, (long long)(now - ll->begin) / 1000);
                ll->begin = now;
                ll->n = 0;
                ll->suppressed = 0;
        }
        if (ll->n < ll->burst) {
                ll->n++;
                return true;
        }
        ll->suppressed++;
        return false;
}

void log_limit_flush(LogLimit *ll, int prio, const char *what)
{
        int64_t now = log_now_ms();
        if (!ll->suppressed || now - ll->begin < ll->interval_ms)
                return;
        log_msg(prio, "%s: %llu more suppressed in the last %llds", what, (unsigned long long)ll->suppressed,
                (long long)(now - ll->begin) / 1000);
        ll->begin = now;
        ll->n = 0;
        ll->suppressed = 0;
}

void log_diags(const DiagList *dl)
{
        for (uint32_t i = 0; i < dl->n; i++) {
                const Diag *d = &dl->v[i];
                log_msg(d->level == DIAG_LEVEL_ERROR ? LOG_PRIO_ERR : LOG_PRIO_WARNING, "%s:%u:%u: %s[%s]: %s%s%s%s",
                        d->file, d->line, d->col, d->level == DIAG_LEVEL_ERROR ? "error" : "warning",
                        diag_code_str(d->code), d->message, d->hint ? " (" : "", d->hint ? d->hint : "",
                        d->hint ? ")" : "");
                for (uint32_t k = 0; k < d->nnotes; k++)
                        log_msg(d->level == DIAG_LEVEL_ERROR ? LOG_PRIO_ERR : LOG_PRIO_WARNING, "%s:%u:%u: note: %s",
                                d->notes[k].file, d->notes[k].line, d->notes[k].col, d->notes[k].message);
        }
}
