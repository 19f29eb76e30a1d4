/*
 * bench-replay: the engine's throughput on a file of events, with the
 * shipped rules, as riskctl replay runs it but without I/O in the timing.
 *
 *   bench-replay RULES_DIR EVENTS.jsonl [RUNS [COMMIT_EVERY]]
 *
 * Prints, per run and as the median of RUNS (default 5) fresh engines:
 * events/s on one core; allocations per event in the steady state (the
 * second half of the first run, when the enterprises exist); enterprise
 * state bytes per enterprise, without and with window rows.  The runs
 * push as riskd does, with ENGINE_AHEAD - 1 events hinted ahead
 * (engine_prefetch); RUNS more, alternating with them, push without hints,
 * and RUNS more with hints compact every idle enterprise every
 * COMPACT_EVERY events (environment, default 10000; 0: no such runs), and
 * decoding alone is the reference.  With COMMIT_EVERY > 0, RUNS more
 * push in batches of that many events as riskd does (engine_batch_begin,
 * the events, engine_batch_changes, engine_batch_commit): their rate, and
 * what the changelog of those batches holds (records and bytes, keys and
 * values, per event), alternating with RUNS more that also build the
 * batch's enterprise documents (engine_batch_enterprises, riskd's
 * topics.enterprises): their rate, the ratio to the batches without them
 * and the documents' bytes per event.  After the first run, time is advanced two years
 * (every point, flag and window row expires) and the bytes per enterprise
 * are printed before and after compacting the idle ones.  Nothing is
 * asserted: see bench/README.md and bench/kafka.md for how the figures are
 * used.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "include/riskd/decode.h"
#include "include/riskd/engine.h"
#include "include/riskd/util.h"
#include "bench/bench.h"

static uint64_t outputs;

static void sink(void *ud, OutKind kind, const char *data, size_t len, const OutMeta *m)
{
        (void)ud;
        (void)kind;
        (void)data;
        (void)m;
        outputs += len;
}

/* What engine_batch_changes gives, counted. */
typedef struct Changes {
        uint64_t records, bytes;
} Changes;

static void count_record(void *ud, const char *key, size_t klen, const void *val, size_t vlen)
{
        Changes *c = ud;
        (void)key;
        (void)val;
        c->records++;
        c->bytes += klen + vlen;
}

int main(int argc, char **argv)
{
        if (argc < 3) {
                fprintf(stderr, "usage: bench-replay RULES_DIR EVENTS.jsonl [RUNS]\n");
                return 2;
        }
        int runs = argc > 3 ? atoi(argv[3]) : 5;
        if (runs < 1)
                runs = 1;
        long commit_every = argc > 4 ? atol(argv[4]) : 0;
        RuleSet *rs = NULL;
        char *text;
        size_t len;
        if (bench_inputs(argv[1], argv[2], &rs, &text, &len))
                return 1;
        /* split into lines once */
        uint32_t n = 0, cap = 0;
        const char **line = NULL;
        uint32_t *llen = NULL, lcap = 0;
        for (char *p = text, *end = text + len; p < end;) {
                char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
                if (l) {
                        VEC_PUSH(line, n, cap) = p;
                        uint32_t k = n - 1;
                        llen = xgrow(llen, &lcap, n, sizeof(uint32_t));
                        llen[k] = (uint32_t)l;
                }
                p += l + 1;
        }
        printf("bench-replay: %u events, %u rules, %s\n", n, rs->nrules, argv[2]);
        double *rate = xcalloc((size_t)runs, sizeof(double));
        /* the second half alone: every enterprise exists, the state has
         * reached its size; what a long-running daemon sees */
        double *half = xcalloc((size_t)runs, sizeof(double));
        double *plain = xcalloc((size_t)runs, sizeof(double));        /* without hints */
        double *compacting = xcalloc((size_t)runs, sizeof(double));   /* with hints, compacting */
        const char *ce = getenv("COMPACT_EVERY");
        uint32_t compact_every = ce ? (uint32_t)strtoul(ce, NULL, 10) : 10000;
        int kinds = compact_every ? 3 : 2;
        for (int rr = 0; rr < kinds * runs; rr++) {
                int r = rr / kinds;
                bool ahead = rr % kinds != 1, compact = rr % kinds == 2;
                EngineConfig cfg;
                engine_config_default(&cfg);
                if (compact)
                        cfg.compact_every = compact_every;
                Engine *e = NULL;
                if (engine_new(&e, rs, &cfg, sink, NULL) < 0)
                        return 1;
                double t0 = cpu_now();
                uint64_t a_half = 0, a_known = 0, n_known = 0;
                double t_half = t0;
                for (uint32_t i = 0; i < n; i++) {
                        if (i == n / 2) {
                                a_half = util_allocs;
                                t_half = cpu_now();
                        }
                        uint32_t ents = engine_enterprises(e);
                        uint64_t a0 = util_allocs;
                        /* as riskd does: ENGINE_AHEAD - 1 events hinted beyond the one pushed */
                        if (ahead) {
                                for (uint32_t k = i ? i + ENGINE_AHEAD - 1 : 0; k < i + ENGINE_AHEAD && k < n; k++)
                                        engine_prefetch(e, line[k], llen[k]);
                                /* and the bytes of the event hinted ENGINE_AHEAD pushes later */
                                if (i + 2 * ENGINE_AHEAD - 1 < n)
                                        engine_prefetch_bytes(line[i + 2 * ENGINE_AHEAD - 1],
                                                              llen[i + 2 * ENGINE_AHEAD - 1]);
                        }
                        engine_push(e, line[i], llen[i], NULL);
                        if (i >= n / 2 && engine_enterprises(e) == ents) {
                                /* an event of an enterprise already in state */
                                a_known += util_allocs - a0;
                                n_known++;
                        }
                }
                uint64_t a_end = util_allocs;
                engine_flush(e);
                double t_end = cpu_now(), secs = t_end - t0;
                if (!ahead) {
                        plain[r] = secs > 0 ? n / secs : 0;
                        printf("run %d without hints: %.0f events/s\n", r + 1, plain[r]);
                        engine_free(e);
                        continue;
                }
                if (compact) {
                        compacting[r] = secs > 0 ? n / secs : 0;
                        const EngineStats *cs = engine_counters(e);
                        printf("run %d compacting every %u events: %.0f events/s (%llu compactions, %llu expansions,"
                               " %llu compact at the end)\n",
                               r + 1, compact_every, compacting[r], (unsigned long long)cs->compactions,
                               (unsigned long long)cs->expansions, (unsigned long long)cs->enterprises_compact);
                        engine_free(e);
                        continue;
                }
                rate[r] = secs > 0 ? n / secs : 0;
                half[r] = t_end > t_half ? (n - n / 2) / (t_end - t_half) : 0;
                const EngineStats *st = engine_stats(e);
                uint64_t rej = 0;
                for (int k = 1; k < ENGINE_NREJECT; k++)
                        rej += st->rejects[k];
                printf("run %d: %.0f events/s (%.3f s cpu; second half %.0f events/s)", r + 1, rate[r], secs, half[r]);
                if (r == 0) {
                        double ent = st->enterprises ? (double)st->enterprises : 1;
                        printf("; allocations/event in the second half %.4f (%.4f for the %llu events of enterprises already in state);"
                               " %llu enterprises, %.0f state bytes/enterprise"
                               " (+%.0f window bytes/enterprise, %llu rows); %llu alerts, %llu adjustments, %llu rejects",
                               n > 1 ? (double)(a_end - a_half) / (n - n / 2) : 0.0,
                               n_known ? (double)a_known / (double)n_known : 0.0, (unsigned long long)n_known,
                               (unsigned long long)st->enterprises, (double)st->state_bytes / ent,
                               (double)st->window_bytes / ent, (unsigned long long)st->window_rows,
                               (unsigned long long)st->alerts, (unsigned long long)st->adjustments,
                               (unsigned long long)rej);
                        printf("\n");
                        /* idle enterprises: two years later everything that expires has */
                        engine_advance(e, st->watermark + 730LL * 86400000LL);
                        st = engine_stats(e);
                        uint64_t full = engine_state_bytes(e);
                        double ents = st->enterprises ? (double)st->enterprises : 1;
                        int nc = engine_compact(e, 0, 0);
                        uint64_t small = engine_state_bytes(e);
                        st = engine_stats(e);
                        printf("two years later: %.0f bytes/enterprise (state and windows: engine_state_bytes);"
                               " %d of %llu enterprises compacted: %.0f bytes/enterprise (%.0f bytes less per"
                               " compacted one)",
                               (double)full / ents, nc, (unsigned long long)st->enterprises, (double)small / ents,
                               nc ? (double)(full - small) / nc : 0.0);
                }
                printf("\n");
                engine_free(e);
        }
        /* in batches, as riskd commits them: the changelog they write;
         * every other run with the enterprise documents too */
        double *crate = xcalloc((size_t)runs, sizeof(double));
        double *drate_docs = xcalloc((size_t)runs, sizeof(double));
        double *dratio = xcalloc((size_t)runs, sizeof(double));
        Changes ch = {0}, docs = {0};
        for (int rr = 0; commit_every > 0 && rr < 2 * runs; rr++) {
                int r = rr / 2;
                bool with_docs = rr % 2;
                EngineConfig cfg;
                engine_config_default(&cfg);
                Engine *e = NULL;
                if (engine_new(&e, rs, &cfg, sink, NULL) < 0)
                        return 1;
                Changes c = {0}, d = {0};
                uint64_t batches = 0;
                double t0 = cpu_now();
                engine_batch_begin(e);
                for (uint32_t i = 0; i < n; i++) {
                        for (uint32_t k = i ? i + ENGINE_AHEAD - 1 : 0; k < i + ENGINE_AHEAD && k < n; k++)
                                engine_prefetch(e, line[k], llen[k]);
                        if (i + 2 * ENGINE_AHEAD - 1 < n)
                                engine_prefetch_bytes(line[i + 2 * ENGINE_AHEAD - 1], llen[i + 2 * ENGINE_AHEAD - 1]);
                        engine_push(e, line[i], llen[i], NULL);
                        if ((i + 1) % (uint64_t)commit_every == 0 || i + 1 == n) {
                                if (with_docs)
                                        engine_batch_enterprises(e, count_record, &d);
                                engine_batch_changes(e, (int64_t)i + 1, count_record, &c);
                                engine_batch_commit(e);
                                batches++;
                                if (i + 1 < n)
                                        engine_batch_begin(e);
                        }
                }
                double secs = cpu_now() - t0;
                if (with_docs) {
                        drate_docs[r] = secs > 0 ? n / secs : 0;
                        dratio[r] = crate[r] > 0 ? drate_docs[r] / crate[r] : 0;
                        printf("run %d committing every %ld events with the enterprise documents: %.0f events/s "
                               "(%.3fx the run before); %llu documents (%.3f per event), %llu bytes (%.1f per "
                               "event, %.1f per document)\n",
                               r + 1, commit_every, drate_docs[r], dratio[r], (unsigned long long)d.records,
                               n ? (double)d.records / n : 0.0, (unsigned long long)d.bytes,
                               n ? (double)d.bytes / n : 0.0, d.records ? (double)d.bytes / (double)d.records : 0.0);
                        docs = d;
                        engine_free(e);
                        continue;
                }
                crate[r] = secs > 0 ? n / secs : 0;
                printf("run %d committing every %ld events: %.0f events/s; %llu batches, %llu changelog records"
                       " (%.3f per event), %llu bytes (%.1f per event, %.1f per record)\n",
                       r + 1, commit_every, crate[r], (unsigned long long)batches, (unsigned long long)c.records,
                       n ? (double)c.records / n : 0.0, (unsigned long long)c.bytes, n ? (double)c.bytes / n : 0.0,
                       c.records ? (double)c.bytes / (double)c.records : 0.0);
                ch = c;
                engine_free(e);
        }
        qsort(crate, (size_t)runs, sizeof(double), dcmp);
        qsort(drate_docs, (size_t)runs, sizeof(double), dcmp);
        qsort(dratio, (size_t)runs, sizeof(double), dcmp);
        qsort(rate, (size_t)runs, sizeof(double), dcmp);
        qsort(half, (size_t)runs, sizeof(double), dcmp);
        qsort(plain, (size_t)runs, sizeof(double), dcmp);
        qsort(compacting, (size_t)runs, sizeof(double), dcmp);
        /* the reference in the same run: decoding alone, same lines */
        double *drate = xcalloc((size_t)runs, sizeof(double));
        {
                Decoder *d = NULL;
                if (decoder_new(&d, &rs->schema, NULL) < 0)
                        return 1;
                Value *slots = xcalloc(rs->schema.nslots + 1, sizeof(Value));
                char *scratch = xmalloc(1 << 20);
                for (int r = 0; r < runs; r++) {
                        double t0 = cpu_now();
                        for (uint32_t i = 0; i < n; i++) {
                                DecodedEvent ev = {.slots = slots, .scratch = scratch, .scratch_size = 1 << 20};
                                decoder_decode(d, line[i], llen[i], &ev);
                        }
                        double secs = cpu_now() - t0;
                        drate[r] = secs > 0 ? n / secs : 0;
                }
                free(slots);
                free(scratch);
                decoder_free(d);
        }
        qsort(drate, (size_t)runs, sizeof(double), dcmp);
        printf("median: %.0f events/s over %d runs (second half alone %.0f events/s); without hints %.0f events/s (%.2fx);"
               " decoding alone %.0f events/s (replay = %.0f%% of decode)\n",
               rate[runs / 2], runs, half[runs / 2], plain[runs / 2],
               plain[runs / 2] > 0 ? rate[runs / 2] / plain[runs / 2] : 0.0, drate[runs / 2],
               100.0 * rate[runs / 2] / drate[runs / 2]);
        if (compact_every)
                printf("median compacting every %u events: %.0f events/s (%.2fx the median with hints)\n", compact_every,
                       compacting[runs / 2], rate[runs / 2] > 0 ? compacting[runs / 2] / rate[runs / 2] : 0.0);
        free(compacting);
        if (commit_every > 0)
                printf("committing every %ld events: %.0f events/s (%.2fx the run without commits);"
                       " changelog %.1f bytes/event, %.3f records/event, %.1f bytes/record\n",
                       commit_every, crate[runs / 2], rate[runs / 2] > 0 ? crate[runs / 2] / rate[runs / 2] : 0.0,
                       n ? (double)ch.bytes / n : 0.0, n ? (double)ch.records / n : 0.0,
                       ch.records ? (double)ch.bytes / (double)ch.records : 0.0);
        if (commit_every > 0)
                printf("committing every %ld events with the enterprise documents: %.0f events/s (median of the "
                       "per-run ratios to the run before without them: %.3fx); documents %.1f bytes/event, %.3f "
                       "per event, %.1f bytes each\n",
                       commit_every, drate_docs[runs / 2], dratio[runs / 2], n ? (double)docs.bytes / n : 0.0,
                       n ? (double)docs.records / n : 0.0, docs.records ? (double)docs.bytes / (double)docs.records : 0.0);
        free(drate_docs);
        free(dratio);
        free(crate);
        free(plain);
        free(drate);
        free(half);
        free(rate);
        free(line);
        free(llen);
        free(text);
        rules_unref(rs);
        return 0;
}
