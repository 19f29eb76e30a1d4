/*
 * bench-restore: the engine's restore path over a changelog partition of
 * N enterprises (default 1,000,000), in one process: no broker, no
 * consumer, the records already in memory as a consumer hands them over.
 *
 *   bench-restore RULES_DIR EVENTS.jsonl [ENTERPRISES [RUNS]]
 *
 * The records are real: the events are replayed in one batch and the
 * changelog it writes (the dictionary, one record per enterprise, the
 * partition record) is the model; the enterprise records are repeated
 * under new keys (the model's key and a copy number) until there are
 * ENTERPRISES of them, in one buffer laid out as a fetch gives them.  Each
 * run restores them all into a fresh Engine (engine_restore_record in log
 * order, then engine_restore_finish) and is timed on the thread's CPU
 * clock; the reference in the same run reads the same records the way a
 * consumer loop at least must (every key and value byte summed), so the
 * ratio says what the restore costs above reading the bytes.  Prints
 * records/s and MB/s (key and value bytes), per run and the median.
 * Nothing is asserted: bench/kafka.md has the figures and the end to end
 * comparison with the bare consumer (bench-kafka).
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

/* The changelog of the model batch, and the partition built from it. */
typedef struct Recs {
        Buf bytes;              /* keys and values, one after the other */
        size_t *koff, *voff;
        uint32_t *klen, *vlen;
        uint32_t n, cap;
} Recs;

static void recs_add(Recs *r, const char *key, size_t klen, const void *val, size_t vlen)
{
        if (r->n == r->cap) {
                r->cap = r->cap ? r->cap * 2 : 1024;
                r->koff = xrealloc(r->koff, r->cap * sizeof(size_t));
                r->voff = xrealloc(r->voff, r->cap * sizeof(size_t));
                r->klen = xrealloc(r->klen, r->cap * sizeof(uint32_t));
                r->vlen = xrealloc(r->vlen, r->cap * sizeof(uint32_t));
        }
        r->koff[r->n] = r->bytes.len;
        buf_put(&r->bytes, key, klen);
        r->voff[r->n] = r->bytes.len;
        buf_put(&r->bytes, val, vlen);
        r->klen[r->n] = (uint32_t)klen;
        r->vlen[r->n] = (uint32_t)vlen;
        r->n++;
}

static void model_record(void *ud, const char *key, size_t klen, const void *val, size_t vlen)
{
        recs_add(ud, key, klen, val, vlen);
}

int main(int argc, char **argv)
{
        if (argc < 3) {
                fprintf(stderr, "usage: bench-restore RULES_DIR EVENTS.jsonl [ENTERPRISES [RUNS]]\n");
                return 2;
        }
        uint32_t want = argc > 3 ? (uint32_t)atol(argv[3]) : 1000000;
        int runs = argc > 4 ? atoi(argv[4]) : 5;
        if (runs < 1)
                runs = 1;
        RuleSet *rs = NULL;
        char *text;
        size_t len;
        if (bench_inputs(argv[1], argv[2], &rs, &text, &len))
                return 1;
        EngineConfig cfg;
        engine_config_default(&cfg);
        if (cfg.max_enterprises < want + 1)
                cfg.max_enterprises = want + 1;
        /* the model: every event in one batch, its changelog */
        Engine *e = NULL;
        if (engine_new(&e, rs, &cfg, sink, NULL) < 0)
                return 1;
        uint32_t nev = 0;
        engine_batch_begin(e);
        for (char *p = text, *end = text + len; p < end;) {
                char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
                if (l) {
                        engine_push(e, p, l, NULL);
                        nev++;
                }
                p += l + 1;
        }
        Recs model = {0};
        engine_batch_changes(e, nev, model_record, &model);
        engine_batch_commit(e);
        engine_free(e);
        free(text);
        /* the partition: the dictionary first, the enterprises' records
         * repeated under new keys, the partition record last */
        Recs part = {0};
        uint32_t first = 0, last = model.n;
        const char *dk = ENGINE_DICT_KEY, *mk = ENGINE_META_KEY;
        while (first < model.n && model.klen[first] >= strlen(dk) &&
               memcmp(model.bytes.p + model.koff[first], dk, strlen(dk)) == 0) {
                recs_add(&part, model.bytes.p + model.koff[first], model.klen[first],
                         model.bytes.p + model.voff[first], model.vlen[first]);
                first++;
        }
        if (last > first && model.klen[last - 1] == strlen(mk) &&
            memcmp(model.bytes.p + model.koff[last - 1], mk, strlen(mk)) == 0)
                last--;
        if (last == first) {
                fprintf(stderr, "bench-restore: the model batch wrote no enterprise record\n");
                return 1;
        }
        char key[256];
        for (uint32_t i = 0; i < want; i++) {
                uint32_t m = first + i % (last - first);
                int kl = snprintf(key, sizeof(key), "%.*s#%u", (int)model.klen[m], model.bytes.p + model.koff[m],
                                  i / (last - first));
                recs_add(&part, key, (size_t)kl, model.bytes.p + model.voff[m], model.vlen[m]);
        }
        if (last < model.n)
                recs_add(&part, model.bytes.p + model.koff[last], model.klen[last], model.bytes.p + model.voff[last],
                         model.vlen[last]);
        double mb = (double)part.bytes.len / 1e6;
#ifdef RISKD_JEMALLOC
        const char *allocator = "jemalloc";
#else
        const char *allocator = "glibc malloc";
#endif
        printf("bench-restore (%s): %u events replayed into %u enterprise records (%.0f bytes each on average); a partition"
               " of %u records, %.1f MB (keys and values)\n",
               allocator, nev, last - first, (double)(model.voff[last - 1] + model.vlen[last - 1] - model.koff[first]) / (last - first),
               part.n, mb);
        double *rate = xcalloc((size_t)runs, sizeof(double)), *ref = xcalloc((size_t)runs, sizeof(double));
        for (int r = 0; r < runs; r++) {
                /* the reference: every byte read */
                double t0 = cpu_now();
                uint64_t sum = 0;
                for (uint32_t i = 0; i < part.n; i++) {
                        const unsigned char *k = (const unsigned char *)part.bytes.p + part.koff[i];
                        const unsigned char *v = (const unsigned char *)part.bytes.p + part.voff[i];
                        for (uint32_t j = 0; j < part.klen[i]; j++)
                                sum += k[j];
                        for (uint32_t j = 0; j < part.vlen[i]; j++)
                                sum += v[j];
                }
                double tr = cpu_now() - t0;
                ref[r] = tr > 0 ? part.n / tr : 0;
                if (engine_new(&e, rs, &cfg, sink, NULL) < 0)
                        return 1;
                uint64_t a0 = util_allocs;
                uint32_t bad = 0;
                t0 = cpu_now();
                for (uint32_t i = 0; i < part.n; i++)
                        bad += engine_restore_record(e, part.bytes.p + part.koff[i], part.klen[i],
                                                     part.bytes.p + part.voff[i], part.vlen[i]) != 0;
                engine_restore_finish(e);
                double t = cpu_now() - t0;
                rate[r] = t > 0 ? part.n / t : 0;
                const EngineStats *st = engine_stats(e);
                printf("run %d: %.0f records/s, %.1f MB/s (%.3f s cpu; %u refused; %llu enterprises, %.2f allocations"
                       " per record); reading the bytes %.0f records/s, %.0f MB/s (sum %llu)\n",
                       r + 1, rate[r], mb / t, t, bad, (unsigned long long)st->enterprises,
                       (double)(util_allocs - a0) / part.n, ref[r], mb / tr, (unsigned long long)(sum & 0xff));
                engine_free(e);
        }
        qsort(rate, (size_t)runs, sizeof(double), dcmp);
        qsort(ref, (size_t)runs, sizeof(double), dcmp);
        printf("median: restore %.0f records/s, %.1f MB/s over %d runs; reading the bytes %.0f records/s (restore = %.3fx)\n",
               rate[runs / 2], rate[runs / 2] * mb / part.n, runs, ref[runs / 2], rate[runs / 2] / ref[runs / 2]);
        free(rate);
        free(ref);
        buf_free(&model.bytes);
        buf_free(&part.bytes);
        free(model.koff);
        free(model.voff);
        free(model.klen);
        free(model.vlen);
        free(part.koff);
        free(part.voff);
        free(part.klen);
        free(part.vlen);
        rules_unref(rs);
        return 0;
}
