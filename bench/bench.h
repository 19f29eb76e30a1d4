/*
 * What the benchmarks share: their inputs (a rules directory and a file
 * of events), the thread's CPU time and the comparison that sorts their
 * figures for medians.
 */
#ifndef RISKD_BENCH_H
#define RISKD_BENCH_H

#include <stdio.h>
#include <time.h>

#include "include/riskd/diag.h"
#include "include/riskd/rules.h"
#include "include/riskd/util.h"

/* The rules of rules_dir and the whole of events_path (the caller frees
 * *text): 0, or 1 (the exit status) after saying why on stderr. */
static inline int bench_inputs(const char *rules_dir, const char *events_path, RuleSet **rs, char **text,
                               size_t *len)
{
        DiagList dl = {0};
        if (rules_load(rules_dir, &dl, rs) != 0) {
                diag_print_text(stderr, &dl, false);
                return 1;
        }
        diag_list_deinit(&dl);
        if (file_read_all(events_path, text, len) < 0) {
                perror(events_path);
                return 1;
        }
        return 0;
}

/* The calling thread's CPU time, in seconds. */
static inline double cpu_now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* qsort's comparison of doubles, ascending. */
static inline int dcmp(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

#endif
