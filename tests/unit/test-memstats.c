/*
 * Unit tests of src/daemon/memstats.c: built with jemalloc, the
 * riskd_jemalloc_* gauges hold plausible figures (allocated > 0, resident
 * >= active >= allocated, fragmentation = active / allocated - 1) and a
 * refresh reads new ones (the epoch moves); built without it, the gauges
 * are absent from the exposition, not zero.  Each test is skipped, with
 * its reason, in the build it does not apply to (the sanitizer build has
 * no jemalloc: meson.build).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/daemon/memstats.h"

/* The value of the sample NAME (a family without labels) in text; -1 none. */
static double sample(const char *text, const char *name)
{
        size_t n = strlen(name);
        for (const char *s = text; (s = strstr(s, name)); s += n)
                if ((s == text || s[-1] == '\n') && s[n] == ' ')
                        return strtod(s + n + 1, NULL);
        return -1;
}

static char *render(Prom *p)
{
        Buf b = {0};
        prom_render(p, &b);
        return b.p;
}

Test(memstats, figures_with_jemalloc)
{
        if (!memstats_allocator())
                cr_skip_test("built without jemalloc (meson -Djemalloc=disabled, or a sanitizer build)");
        cr_assert_eq(strncmp(memstats_allocator(), "jemalloc ", 9), 0, "%s", memstats_allocator());
        Prom *p = prom_new();
        memstats_register(p);
        memstats_refresh();
        char *t = render(p);
        double alloc = sample(t, "riskd_jemalloc_allocated_bytes"), active = sample(t, "riskd_jemalloc_active_bytes"),
               resident = sample(t, "riskd_jemalloc_resident_bytes"),
               retained = sample(t, "riskd_jemalloc_retained_bytes"), mapped = sample(t, "riskd_jemalloc_mapped_bytes"),
               frag = sample(t, "riskd_jemalloc_fragmentation_ratio");
        cr_assert_gt(alloc, 0, "%s", t);
        cr_assert_geq(active, alloc, "%s", t);
        cr_assert_geq(resident, active, "%s", t);
        cr_assert_geq(mapped, active, "%s", t);
        cr_assert_geq(retained, 0, "%s", t);
        cr_assert_lt(fabs(frag - (active / alloc - 1)), 1e-6, "%s", t);
        cr_assert_not_null(strstr(t, "# TYPE riskd_jemalloc_allocated_bytes gauge\n"), "%s", t);

        /* 64 MiB more, touched: the next refresh sees them, the one
         * before it did not (the figures are those of the last epoch) */
        size_t big = 64u << 20;
        char *mem = malloc(big);
        cr_assert_not_null(mem);
        memset(mem, 1, big);
        free(t);
        t = render(p);
        cr_assert_eq(sample(t, "riskd_jemalloc_allocated_bytes"), alloc, "no refresh, no new figures: %s", t);
        memstats_refresh();
        free(t);
        t = render(p);
        double alloc2 = sample(t, "riskd_jemalloc_allocated_bytes");
        cr_assert_geq(alloc2, alloc + (double)big, "%f then %f", alloc, alloc2);
        cr_assert_geq(sample(t, "riskd_jemalloc_resident_bytes"), alloc2, "%s", t);
        free(mem);
        free(t);
        prom_free(p);
}

Test(memstats, absent_without_jemalloc)
{
        if (memstats_allocator())
                cr_skip_test("built with %s: figures_with_jemalloc applies", memstats_allocator());
        Prom *p = prom_new();
        memstats_register(p);
        memstats_refresh();
        char *t = render(p);
        cr_assert_null(strstr(t, "riskd_jemalloc_"), "%s", t);
        free(t);
        prom_free(p);
}
