/* The allocator's figures for /metrics (memstats.h). */
#include <stdint.h>
#include <stdio.h>

#include "src/daemon/memstats.h"

#ifdef RISKD_JEMALLOC
#include <jemalloc/jemalloc.h>

/* jemalloc's statistics, as jemalloc(3) defines them: allocated <= active
 * <= resident (resident is an upper bound: metadata and dirty unused pages
 * included); mapped covers the active extents; retained is address space
 * kept instead of unmapped, with no physical memory behind it. */
static const struct {
        const char *ctl, *name, *help;
} gauges[] = {
        {"stats.allocated", "riskd_jemalloc_allocated_bytes", "Bytes the program holds in allocations (jemalloc)"},
        {"stats.active", "riskd_jemalloc_active_bytes",
         "Bytes of the pages holding allocations (jemalloc; allocated plus what rounds them)"},
        {"stats.resident", "riskd_jemalloc_resident_bytes",
         "Bytes of the allocator's pages resident in memory at most: allocations, metadata, dirty unused pages (jemalloc)"},
        {"stats.retained", "riskd_jemalloc_retained_bytes",
         "Bytes of address space the allocator kept rather than unmapped, with no physical memory behind them (jemalloc)"},
        {"stats.mapped", "riskd_jemalloc_mapped_bytes", "Bytes of the allocator's active extents (jemalloc)"},
};
#define NGAUGES (sizeof(gauges) / sizeof(gauges[0]))

static PromSeries *series[NGAUGES];
static PromSeries *fragmentation;

void memstats_register(Prom *p)
{
        for (size_t i = 0; i < NGAUGES; i++)
                series[i] = prom_series(prom_family(p, PROM_GAUGE, gauges[i].name, gauges[i].help, NULL, NULL, 0),
                                        NULL);
        fragmentation = prom_series(prom_family(p, PROM_GAUGE, "riskd_jemalloc_fragmentation_ratio",
                                                "active / allocated - 1: what the allocator's rounding and free "
                                                "space inside its pages cost, as a share of the allocations",
                                                NULL, NULL, 0),
                                    NULL);
}

void memstats_refresh(void)
{
        /* the statistics are a snapshot taken at the last epoch */
        uint64_t epoch = 1;
        size_t sz = sizeof(epoch);
        if (mallctl("epoch", &epoch, &sz, &epoch, sz) != 0)
                return;
        size_t v[NGAUGES] = {0};
        for (size_t i = 0; i < NGAUGES; i++) {
                sz = sizeof(v[i]);
                if (mallctl(gauges[i].ctl, &v[i], &sz, NULL, 0) == 0)
                        prom_set(series[i], (double)v[i]);
        }
        if (v[0] > 0) /* [0] allocated, [1] active */
                prom_set(fragmentation, (double)v[1] / (double)v[0] - 1);
}

const char *memstats_allocator(void)
{
        static char name[96];
        const char *v = NULL;
        size_t sz = sizeof(v);
        if (!name[0])
                snprintf(name, sizeof(name), "jemalloc %s",
                         mallctl("version", &v, &sz, NULL, 0) == 0 && v ? v : "(version unknown)");
        return name;
}

#else

void memstats_register(Prom *p)
{
        (void)p;
}

void memstats_refresh(void)
{
}

const char *memstats_allocator(void)
{
        return NULL;
}

#endif
