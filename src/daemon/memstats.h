/*
 * The allocator's own figures in /metrics: with jemalloc (meson option
 * jemalloc, riskd's default) the riskd_jemalloc_* gauges read through
 * mallctl, refreshed ("epoch") at every scrape; built without it, the
 * gauges are absent, not zero, and both calls do nothing.
 *
 * One registry per process (riskd's): memstats_register keeps the families
 * of the Prom it is given until the next call.
 */
#ifndef RISKD_DAEMON_MEMSTATS_H
#define RISKD_DAEMON_MEMSTATS_H

#include "src/daemon/prom.h"

/* The gauges' families in p (nothing without jemalloc). */
void memstats_register(Prom *p);
/* Reads the allocator's figures into the gauges (before a render). */
void memstats_refresh(void);
/* "jemalloc 5.3.0-0-g...", or NULL when built without it. */
const char *memstats_allocator(void);

#endif
