/*
 * bench-window: what an aggregate costs against the rows its window holds.
 *
 *   bench-window [RUNS]
 *
 * One enterprise, readings one second apart, and rules on a tick (one
 * after each reading) that read count, sum, avg, min, max and distinct of
 * the readings over `within N s` (a where decided at arrival, as the
 * shipped pack's), so in the steady state each window holds N rows and
 * every reading adds one row to each and retracts one.  The windows are
 * filled with readings alone (no rule runs on them), then reading + tick
 * pairs are timed.  For N = 10, 1,000, 100,000 (the default max_window_rows) it
 * prints events/s on one core, the median of RUNS (default 5) fresh
 * engines, with the running aggregates and with every aggregate
 * rescanning its rows (EngineConfig.agg_rescan, the code before running
 * aggregates), and a sixth rule with a $ where (per-row by necessity) on
 * its own.  Flat in N is the point; nothing is asserted (bench/README.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "include/riskd/engine.h"
#include "include/riskd/util.h"
#include "bench/bench.h"

static void sink(void *ud, OutKind kind, const char *data, size_t len, const OutMeta *m)
{
        (void)ud;
        (void)kind;
        (void)data;
        (void)len;
        (void)m;
}

static const char schema[] =
        "envelope: { id: event_id, type: event_type, enterprise: enterprise_id, time: occurred_at }\n"
        "profile: enterprise\n"
        "types:\n"
        "  enterprise: { fields: { name: string } }\n"
        "  reading: { fields: { v: number, k: string, ok: bool } }\n"
        "  tick: { fields: { k: string } }\n";
static const char grading[] =
        "dwell: 30d\n"
        "grades:\n"
        "  - { grade: A, max: 30, mode: double_random, inspections_per_year: 1 }\n"
        "  - { grade: B, mode: key_inspection, inspections_per_year: 2 }\n";

static RuleSet *load(uint32_t rows, bool dollar)
{
        Buf r = {0};
        buf_puts(&r, "rules:\n");
        if (dollar) {
                buf_printf(&r, "  - id: w.dollar\n    on: tick\n"
                               "    when: sum(reading.v where ok and k == $k within %us) < -1\n", rows);
        } else {
                static const char *const aggs[] = {"count(reading", "sum(reading.v", "avg(reading.v",
                                                   "min(reading.v", "max(reading.v", "distinct(reading.k"};
                for (uint32_t i = 0; i < 6; i++)
                        buf_printf(&r, "  - id: w.a%u\n    on: tick\n    when: %s where ok within %us) < -1\n", i,
                                   aggs[i], rows);
        }
        const char *names[] = {"schema.yaml", "grading.yaml", "rules.yaml"};
        const char *texts[] = {schema, grading, r.p};
        size_t lens[] = {strlen(schema), strlen(grading), r.len};
        DiagList dl = {0};
        RuleSet *rs = NULL;
        if (rules_load_mem("bench", names, texts, lens, 3, &dl, &rs) != 0) {
                diag_print_text(stderr, &dl, false);
                exit(1);
        }
        diag_list_deinit(&dl);
        buf_free(&r);
        return rs;
}

/* Reading i, one second after reading i - 1; tick: the tick after it. */
static void event(Buf *b, uint64_t i, bool tick)
{
        char t[40];
        time_format(1735689600000LL + (int64_t)i * 1000, t, sizeof(t));
        b->len = 0;
        if (tick)
                buf_printf(b, "{\"event_id\":\"t%llu\",\"event_type\":\"tick\",\"enterprise_id\":\"E1\",\"occurred_at\":\"%s\","
                              "\"k\":\"dev%llu\"}",
                           (unsigned long long)i, t, (unsigned long long)(i % 1000));
        else
                buf_printf(b, "{\"event_id\":\"r%llu\",\"event_type\":\"reading\",\"enterprise_id\":\"E1\",\"occurred_at\":\"%s\","
                              "\"v\":%.1f,\"k\":\"dev%llu\",\"ok\":true}",
                           (unsigned long long)i, t, (double)(i * 7919 % 1000) / 10, (unsigned long long)(i % 1000));
}

/* events/s (a reading and its tick are two) once the windows hold `rows`
 * rows: fill them, then time `timed` pairs */
static double measure(RuleSet *rs, uint32_t rows, uint32_t timed, bool rescan)
{
        EngineConfig cfg;
        engine_config_default(&cfg);
        cfg.agg_rescan = rescan;
        Engine *e = NULL;
        if (engine_new(&e, rs, &cfg, sink, NULL) != 0)
                exit(1);
        Buf b = {0};
        for (uint64_t i = 0; i < rows; i++) {
                event(&b, i, false);
                engine_push(e, b.p, b.len, NULL);
        }
        /* the events are made before the clock starts */
        uint32_t nev = 2 * timed;
        char **ev = xmalloc(nev * sizeof(char *));
        size_t *len = xmalloc(nev * sizeof(size_t));
        for (uint32_t i = 0; i < nev; i++) {
                event(&b, rows + i / 2, i % 2);
                ev[i] = xstrdup(b.p);
                len[i] = b.len;
        }
        double t0 = cpu_now();
        for (uint32_t i = 0; i < nev; i++)
                engine_push(e, ev[i], len[i], NULL);
        double dt = cpu_now() - t0;
        for (uint32_t i = 0; i < nev; i++)
                free(ev[i]);
        free(ev);
        free(len);
        buf_free(&b);
        engine_free(e);
        return (double)nev / dt;
}

static double median(RuleSet *rs, uint32_t rows, uint32_t timed, bool rescan, int runs)
{
        double v[16];
        for (int r = 0; r < runs; r++)
                v[r] = measure(rs, rows, timed, rescan);
        qsort(v, (size_t)runs, sizeof(double), dcmp);
        return v[runs / 2];
}

int main(int argc, char **argv)
{
        int runs = argc > 1 ? atoi(argv[1]) : 5;
        if (runs < 1 || runs > 16)
                runs = 5;
        static const uint32_t sizes[] = {10, 1000, 100000};
        printf("events/s (readings and ticks), median of %d, one core; windows hold N rows, each reading adds one and retracts one\n", runs);
        printf("%-10s %22s %22s %22s\n", "N rows", "running (6 aggregates)", "rescan (6 aggregates)", "$ where (1, per row)");
        for (uint32_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                uint32_t n = sizes[i];
                RuleSet *rs = load(n, false), *rd = load(n, true);
                /* the rescan reads every row of six windows per event: fewer events */
                uint32_t slow = n >= 100000 ? 100 : n >= 1000 ? 5000 : 50000;
                double run = median(rs, n, 50000, false, runs);
                double scan = median(rs, n, slow, true, runs);
                double dol = median(rd, n, slow, false, runs);
                printf("%-10u %22.0f %22.0f %22.0f\n", n, run, scan, dol);
                fflush(stdout);
                rules_unref(rs);
                rules_unref(rd);
        }
        return 0;
}
