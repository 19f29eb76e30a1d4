/*
 * The timer heap (Timers): one entry per enterprise with something due,
 * over the shared heap of heap.h.  What an entry is and why timers are
 * derived from the state alone: Timer in timer.h.  This file keeps the
 * heap and says when an enterprise's next entry is due (timer_next);
 * acting on an entry that came up (firing rules, regrading) is the event
 * flow's (engine.c).
 *
 * Invariants: tm[0..ntm) is a heap in timer_less order except while bulk
 * (timer_rebuild appends, then heapifies); an Ent's live entry is the one
 * at (Ent.tm_at, Ent.tm_absent), any other naming it is stale and skipped
 * when it comes up.
 */
#include <stdlib.h>

#include "src/engine/engine.h"
#include "src/engine/heap.h"

/* The order (time, class, key): a total order, so the pops do not depend
 * on how the heap was built. */
static inline bool timer_less(const Timer *a, const Timer *b)
{
        if (a->time != b->time)
                return a->time < b->time;
        /* at one time, absent() checks come last: they wait for the events
         * of that time (the window (T - D, T] includes T) */
        if ((a->ent & 1) != (b->ent & 1))
                return b->ent & 1;
        return ent_key_cmp(ent_key(timer_ent(a)), ent_key(timer_ent(b))) < 0;
}

HEAP_DEFINE(timer_heap, Timer, timer_less)

void timer_want(Engine *e, Ent *x, int64_t time, bool absent)
{
        if (x->tm_at != TIME_UNSET && (x->tm_at < time || (x->tm_at == time && x->tm_absent <= absent)))
                return;
        assert(time != TIME_UNSET);
        x->tm_at = time;
        x->tm_absent = absent;
        Timers *ts = &e->timers;
        if (ts->ntm == ts->ctm) {
                ts->ctm = ts->ctm ? ts->ctm + ts->ctm / 2 : 1024;
                ts->tm = xrealloc(ts->tm, ts->ctm * sizeof(Timer));
                util_advise_huge(ts->tm, ts->ctm * sizeof(Timer));
        }
        Timer t = {.time = time, .ent = (uintptr_t)x | (uintptr_t)absent};
        uint32_t i = ts->ntm++;
        if (ts->bulk) { /* ordered once at the end (timer_rebuild) */
                ts->tm[i] = t;
                return;
        }
        timer_heap_up(ts->tm, i, t);
        assert(i == 0 || !timer_less(&ts->tm[i], &ts->tm[(i - 1) / 2]));
}

Timer timer_pop(Timers *ts)
{
        assert(!ts->bulk);
        Timer t = timer_heap_pop(ts->tm, &ts->ntm);
        assert(ts->ntm == 0 || !timer_less(&ts->tm[0], &t));
        return t;
}

void timer_filter(Timers *ts, bool (*keep)(Timer *t))
{
        uint32_t k = 0;
        for (uint32_t i = 0; i < ts->ntm; i++) {
                Timer t = ts->tm[i];
                if (keep(&t))
                        ts->tm[k++] = t;
        }
        if (k != ts->ntm) { /* entries dropped: heapify again (a total order: the same pops) */
                ts->ntm = k;
                timer_heap_heapify(ts->tm, k);
        }
        assert(ts->ntm < 2 || !timer_less(&ts->tm[1], &ts->tm[0]));
}

void timer_free(Timers *ts)
{
        free(ts->tm);
        *ts = (Timers){0};
}

/* The timer entry of x: its earliest item due after (done, done_absent),
 * what the entry that just acted covered (TIME_UNSET: nothing yet); an
 * item left due by then (a contribution that no regrade prunes, without
 * grade bands) is not come back to. */
int64_t timer_next(Engine *e, const Ent *x, int64_t done, bool done_absent, bool *ret_absent)
{
        int64_t at = TIME_FOREVER;
        bool absent = false;
        int64_t after = done; /* the plain class's items due by done: done either way */
        for (uint32_t k = 0; k < x->r->nc; k++)
                if (x->r->c[k].expires < at && x->r->c[k].expires > after)
                        at = x->r->c[k].expires;
        for (uint32_t k = 0; k < x->r->nf; k++)
                if (x->r->f[k].until < at && x->r->f[k].until > after)
                        at = x->r->f[k].until;
        if (x->r->na) {
                int64_t an = alerts_next(x, after);
                if (an < at)
                        at = an;
        }
        int64_t dw = time_add_sat(x->r->below_since, e->rs->grading.dwell_ms);
        if (x->r->below_since != TIME_UNSET && dw < at && dw > after)
                at = dw;
        if (x->r->o && x->r->o->cycle != TIME_UNSET && e->rs->grading.official.declared) {
                /* the next cycle's assessment, with or without events */
                int64_t nc = score_cycle_next(&e->rs->grading.official, x->r->o->cycle);
                if (nc < at && nc > after)
                        at = nc;
        }
        for (uint32_t k = 0; k < x->nks; k++) {
                int64_t due = ks_due(e, &x->ks[k]);
                if (due == TIME_UNSET)
                        continue;
                bool ab = e->rs->rules[x->ks[k].rule].timer_driven;
                if (done != TIME_UNSET && (due < done || (due == done && (done_absent || !ab))))
                        continue;
                if (due < at || (due == at && absent && !ab)) {
                        at = due;
                        absent = ab;
                }
        }
        assert(at == TIME_FOREVER || done == TIME_UNSET || at >= done); /* never behind what acted */
        *ret_absent = absent;
        return at == TIME_FOREVER ? TIME_UNSET : at;
}

void timer_schedule(Engine *e, Ent *x, int64_t done, bool done_absent)
{
        bool absent;
        int64_t at = timer_next(e, x, done, done_absent, &absent);
        if (at != TIME_UNSET)
                timer_want(e, x, at, absent);
}

/* Timers are derived state: after a restore or an abort, make them again
 * from the enterprises. */
void timer_rebuild(Engine *e)
{
        e->timers.ntm = 0;
        e->timers.bulk = true;
        for (uint32_t i = 0; i < e->ents.tabcap; i++) {
                Ent *x = tab_ent(e, i);
                if (!x)
                        continue;
                x->tm_at = TIME_UNSET;
                if (x->compact) {
                        /* the entry its full form would get, kept when it was compacted */
                        const StubRec *sr = (const StubRec *)(const void *)((const char *)ent_key(x) +
                                                                            ent_key_size(ent_key(x)->len));
                        if (sr->rebuild_at != TIME_UNSET)
                                timer_want(e, x, sr->rebuild_at, sr->rebuild_absent);
                        continue;
                }
                timer_schedule(e, x, TIME_UNSET, false);
        }
        e->timers.bulk = false;
        /* O(n) comparisons where a push each is O(n log n), over a million
         * enterprises after a restore */
        timer_heap_heapify(e->timers.tm, e->timers.ntm);
        compact_gone_free(e); /* no entry names them now */
}
