/*
 * libFuzzer target for the engine: the input is split into lines and each
 * line is pushed as an event through an engine running the shipped national
 * rule pack, with a small grace so that events are held and reordered too;
 * then the engine is flushed, advanced a year (timers), explained and freed.
 * Bad input must become dead letters, never a crash, a leak or UB.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/engine.h"

#ifndef RULES_DIR
#define RULES_DIR "rules"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static RuleSet *rs;

static void sink(void *ud, OutKind kind, const char *d, size_t l, const OutMeta *m)
{
        (void)ud;
        (void)kind;
        (void)d;
        (void)l;
        (void)m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (!rs) {
                DiagList dl = {0};
                if (rules_load(RULES_DIR, &dl, &rs) != 0)
                        abort();
                diag_list_deinit(&dl);
        }
        EngineConfig cfg;
        engine_config_default(&cfg);
        cfg.grace_ms = 60000;
        cfg.max_enterprises = 64;
        cfg.max_window_rows = 64;
        Engine *e = NULL;
        if (engine_new(&e, rs, &cfg, sink, NULL) < 0)
                abort();
        const char *p = (const char *)data, *end = p + size;
        const char *first = NULL;
        size_t firstlen = 0;
        engine_batch_begin(e);
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
                engine_push(e, p, l, NULL);
                if (!first) {
                        first = p;
                        firstlen = l;
                }
                p += l + 1;
        }
        /* undo, then apply for real: the abort path under fuzzing too */
        engine_batch_abort(e);
        for (p = (const char *)data; p < end;) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
                engine_push(e, p, l, NULL);
                p += l + 1;
        }
        engine_flush(e);
        engine_advance(e, engine_stats(e)->watermark + 400LL * 86400000);
        if (first) {
                /* explain whatever the first line named as its enterprise */
                char *x = engine_explain_text(e, first, firstlen < 40 ? firstlen : 40);
                free(x);
        }
        engine_free(e);
        return 0;
}
