/*
 * Exact aggregate windows.  For each enterprise and each aggregate over an
 * event type it has seen, a ring of rows (event time + the row slots the
 * aggregate reads).  An aggregate covers (now - D, now]; because event time
 * only moves forward through the engine, rows leave from the front.
 *
 * A `where` that does not read the current event ($field) is decided when
 * the row arrives, and only matching rows are kept; otherwise it runs per
 * row at evaluation, with the row as the event and the current event as $.
 * A ring is bounded by max_window_rows: beyond it the oldest row is dropped
 * and counted (window_rows_dropped), the one place exactness yields to
 * memory.
 */
#include <stdlib.h>
#include <string.h>

#include "src/engine/engine.h"

static Value *row(const Win *w, uint32_t nrow, uint32_t i)
{
        return &win_v(w)[(size_t)ring_at(w, i) * nrow];
}

static int64_t row_time(const Win *w, uint32_t i)
{
        return w->t[ring_at(w, i)];
}

static void drop_front(Engine *e, Win *w, uint32_t nrow)
{
        Value *v = row(w, nrow, 0);
        for (uint32_t k = 0; k < nrow; k++)
                intern_value_put(&e->in, v[k]);
        w->head = ring_at(w, 1);
        w->n--;
}

static void evict(Engine *e, Win *w, const Aggregate *a, int64_t now)
{
        while (w->n && row_time(w, 0) <= time_sub_sat(now, a->window_ms))
                drop_front(e, w, a->nrow_slots);
}

/* The ring's arrays (its rows already released). */
static void window_free_rows(Engine *e, Win *w, uint32_t nrow)
{
        pool_free(&e->pool, w->t, win_size(w->cap, nrow));
}

static Win *win_get(Engine *e, Ent *ent, uint32_t agg, bool create)
{
        for (uint32_t i = 0; i < ent->nw; i++)
                if (ent->w[i].agg == agg)
                        return &ent->w[i];
        if (!create)
                return NULL;
        if (ent->nw == ent->cw) {
                ent->w = ent_grow(e, ent->w, &ent->cw, sizeof(Win));
        }
        Win *w = &ent->w[ent->nw++];
        memset(w, 0, sizeof(*w));
        w->agg = (uint16_t)agg;
        return w;
}

static bool value_same(const Value *a, const Value *b)
{
        if (a->tag != b->tag)
                return false;
        switch (a->tag) {
        case VT_NULL: return true;
        case VT_BOOL: return a->b == b->b;
        case VT_NUM: return a->n == b->n;
        case VT_STR: return a->s.len == b->s.len && memcmp(a->s.p, b->s.p, a->s.len) == 0;
        case VT_ENUM: return a->e == b->e;
        default: return a->ms == b->ms;
        }
}

/*
 * absent, min, max and distinct depend only on which row tuples are in the
 * window, not on how many times: an older copy of the tuple about to be
 * appended is redundant (the new one stays in the window longer).  Looking
 * a few rows back keeps one row per device for telemetry instead of one per
 * reading.
 */
static bool dedupe_recent(Engine *e, Win *w, const Aggregate *a, const Value *cand, int64_t t)
{
        uint32_t nrow = a->nrow_slots;
        for (uint32_t back = 1; back <= 8 && back <= w->n; back++) {
                uint32_t k = w->n - back;
                const Value *r = row(w, nrow, k);
                bool same = true;
                for (uint32_t i = 0; i < nrow && same; i++)
                        same = value_same(&r[i], &cand[i]);
                if (!same)
                        continue;
                if (back == 1) { /* already the newest: only its time moves */
                        w->t[ring_at(w, k)] = t;
                        return true;
                }
                /* move that row to the end with the new time; it keeps its
                 * interned values */
                Value keep[64];
                uint32_t m = nrow < 64 ? nrow : 64;
                memcpy(keep, r, m * sizeof(Value));
                for (uint32_t j = k; j + 1 < w->n; j++) {
                        w->t[ring_at(w, j)] = row_time(w, j + 1);
                        Value *to = row(w, nrow, j);
                        const Value *from = row(w, nrow, j + 1);
                        if (nrow == 1) /* one value (a device id): no memcpy call */
                                *to = *from;
                        else
                                memcpy(to, from, nrow * sizeof(Value));
                }
                w->t[ring_at(w, w->n - 1)] = t;
                memcpy(row(w, nrow, w->n - 1), keep, m * sizeof(Value));
                (void)e;
                return nrow <= 64;
        }
        return false;
}

void window_insert(Engine *e, Ent *ent, uint32_t type, const Value *ev, int64_t t, const VmFrame *f)
{
        const RuleSet *rs = e->rs;
        for (uint32_t k = 0; k < e->naggs_by_type[type]; k++) {
                uint32_t ai = e->aggs_by_type[type][k];
                const Aggregate *a = &rs->aggs[ai];
                Win *w = win_get(e, ent, ai, false);
                if (w)
                        evict(e, w, a, t);
                if (a->where != PROG_NONE && !a->uses_cur) {
                        if (e->agg_profile[ai])
                                engine_profile_need(e, ent);
                        if (!vm_test(rs, a->where, f))
                                continue;
                }
                if (!w)
                        w = win_get(e, ent, ai, true);
                uint32_t nrow = a->nrow_slots;
                /* the row as it would be stored */
                Value cand[64];
                Value *big = NULL; /* over 64 row values: a copy by position */
                if (nrow > 64)
                        big = xmalloc(nrow * sizeof(Value));
                Value *cv = big ? big : cand;
                for (uint32_t i = 0; i < nrow; i++)
                        cv[i] = ev[a->row_slots[i]];
                if ((a->kind == AGG_ABSENT || a->kind == AGG_MIN || a->kind == AGG_MAX || a->kind == AGG_DISTINCT) &&
                    dedupe_recent(e, w, a, cv, t)) {
                        free(big);
                        continue;
                }
                if (w->n == w->cap) {
                        if (w->cap >= e->cfg.max_window_rows) {
                                drop_front(e, w, nrow);
                                e->st.window_rows_dropped++;
                        } else {
                                /* grow, unrolling the ring */
                                uint32_t nc = w->cap ? w->cap * 2 : 4;
                                if (nc > e->cfg.max_window_rows)
                                        nc = e->cfg.max_window_rows;
                                int64_t *nt = pool_alloc(&e->pool, win_size(nc, nrow));
                                Value *nv = (Value *)(void *)(nt + nc);
                                for (uint32_t i = 0; i < w->n; i++) {
                                        nt[i] = row_time(w, i);
                                        if (nrow)
                                                memcpy(&nv[(size_t)i * nrow], row(w, nrow, i), nrow * sizeof(Value));
                                }
                                window_free_rows(e, w, nrow);
                                w->t = nt;
                                w->cap = nc;
                                w->head = 0;
                        }
                }
                uint32_t at = ring_at(w, w->n);
                w->t[at] = t;
                Value *dst = &win_v(w)[(size_t)at * nrow];
                const Value *prev = w->n ? row(w, nrow, w->n - 1) : NULL;
                for (uint32_t i = 0; i < nrow; i++) {
                        const Value *v = &cv[i];
                        /* telemetry repeats its strings (device ids): share the
                         * previous row's interned copy without a lookup */
                        if (prev && v->tag == VT_STR && prev[i].tag == VT_STR && prev[i].s.len == v->s.len &&
                            memcmp(prev[i].s.p, v->s.p, v->s.len) == 0) {
                                intern_ref(istr_of(prev[i].s.p));
                                dst[i] = prev[i];
                        } else {
                                dst[i] = intern_value(&e->in, *v);
                        }
                }
                w->n++;
                free(big);
        }
}

static int value_order(const void *x, const void *y)
{
        int c = 0;
        const Value *a = x, *b = y;
        if (a->tag != b->tag)
                return a->tag < b->tag ? -1 : 1;
        value_cmp(a, b, &c);
        return c;
}

int window_agg(void *ud, const RuleSet *rs, uint32_t agg, const VmFrame *f, Value *ret)
{
        AggCtx *ac = ud;
        Engine *e = ac->e;
        const Aggregate *a = &rs->aggs[agg];
        if (e->agg_keyed[agg]) { /* only its rules' timers ask, and then it holds (agg_keyed_find) */
                *ret = value_bool(true);
                return 0;
        }
        Win *w = win_get(e, ac->ent, agg, false);
        if (w)
                evict(e, w, a, f->now);
        uint32_t nrow = a->nrow_slots;
        bool scan_where = a->where != PROG_NONE && a->uses_cur;
        VmFrame rf = *f;
        rf.event = e->rowbuf;
        rf.cur = f->cur;
        rf.agg = NULL;
        double sum = 0;
        uint64_t count = 0;
        Value best = value_null();
        Value *vals = NULL;
        uint32_t n = w ? w->n : 0;
        int vpos = -1;
        if (a->value_slot >= 0)
                for (uint32_t i = 0; i < nrow; i++)
                        if (a->row_slots[i] == (uint32_t)a->value_slot)
                                vpos = (int)i;
        if (a->kind == AGG_DISTINCT && n) {
                if (e->aggcap < n) { /* grows to the largest window, then reused */
                        e->aggcap = n;
                        e->aggbuf = xrealloc(e->aggbuf, n * sizeof(Value));
                }
                vals = e->aggbuf;
        }
        uint32_t nvals = 0;
        for (uint32_t i = 0; i < n; i++) {
                const Value *r = row(w, nrow, i);
                if (row_time(w, i) > f->now)
                        continue; /* not yet: never happens with in-order time */
                if (scan_where) {
                        for (uint32_t k = 0; k < nrow; k++)
                                e->rowbuf[a->row_slots[k]] = r[k];
                        if (!vm_test(rs, a->where, &rf))
                                continue;
                }
                if (a->kind == AGG_COUNT || a->kind == AGG_ABSENT) {
                        count++;
                        if (a->kind == AGG_ABSENT)
                                break;
                        continue;
                }
                const Value *v = &r[vpos];
                if (v->tag == VT_NULL)
                        continue;
                switch (a->kind) {
                case AGG_SUM:
                case AGG_AVG:
                        sum += v->tag == VT_DUR ? (double)v->ms : v->n;
                        count++;
                        best.tag = v->tag;
                        break;
                case AGG_MIN:
                case AGG_MAX: {
                        int c = 0;
                        if (best.tag == VT_NULL || (value_cmp(v, &best, &c) &&
                                                    (a->kind == AGG_MIN ? c < 0 : c > 0)))
                                best = *v;
                        break;
                }
                case AGG_DISTINCT:
                        vals[nvals++] = *v;
                        break;
                default:
                        break;
                }
        }
        switch (a->kind) {
        case AGG_COUNT:
                *ret = value_num((double)count);
                break;
        case AGG_ABSENT:
                *ret = value_bool(count == 0);
                break;
        case AGG_SUM:
                *ret = best.tag == VT_DUR ? value_dur((int64_t)sum) : value_num(sum);
                if (!count)
                        *ret = rs->schema.slot_type[a->value_slot] == FT_DUR ? value_dur(0) : value_num(0);
                break;
        case AGG_AVG:
                if (!count)
                        *ret = value_null();
                else if (best.tag == VT_DUR)
                        *ret = value_dur((int64_t)(sum / (double)count));
                else
                        *ret = value_num(sum / (double)count);
                break;
        case AGG_MIN:
        case AGG_MAX:
                *ret = best;
                break;
        case AGG_DISTINCT: {
                if (nvals > 1)
                        qsort(vals, nvals, sizeof(Value), value_order);
                uint32_t d = 0;
                for (uint32_t i = 0; i < nvals; i++)
                        if (i == 0 || value_order(&vals[i - 1], &vals[i]) != 0)
                                d++;
                *ret = value_num((double)d);
                break;
        }
        }
        return 0;
}

void window_free(Engine *e, Win *w)
{
        const Aggregate *a = &e->rs->aggs[w->agg];
        while (w->n)
                drop_front(e, w, a->nrow_slots);
        window_free_rows(e, w, a->nrow_slots);
}

size_t window_bytes(const Engine *e, const Win *w)
{
        const Aggregate *a = &e->rs->aggs[w->agg];
        uint32_t nrow = a->nrow_slots;
        return pool_size(win_size(w->cap, nrow));
}
