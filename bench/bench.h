/*
 * What the benchmarks share: the thread's CPU time and the comparison
 * that sorts their figures for medians.
 */
#ifndef RISKD_BENCH_H
#define RISKD_BENCH_H

#include <time.h>

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
