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
 *
 * Without $, every row in the ring matches, and the aggregate is kept
 * running as rows arrive and leave, so an evaluation costs O(1) whatever
 * the window holds: count is the number of rows; sum and avg an exact
 * fixed-point accumulator (a double is m * 2^e: added and retracted as an
 * integer, rounded once when read, so no drift and no dependence on the
 * order); min and max a monotonic deque of row ids (rows leave from the
 * front in time order, O(1) amortised); distinct a count per value in a
 * hash table of the window's own.  The running aggregate is derived
 * state: it lives after the rows in the ring's pool object, is never
 * written to a record, and is built from the rows on first use after a
 * restore or an undo (Win.run).  With $ the per-row path stays: a where
 * that reads the current event cannot be decided before it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/engine/engine.h"

_Static_assert(sizeof(void *) != 8 || sizeof(Win) == 24, "Win grew: every window of every enterprise pays for it");

/* ---- the exact sum ----
 * A two's complement fixed-point number of 4 limbs in units of 2^-128:
 * every double from 2^-76 (with a full mantissa; fewer bits lower) to
 * 2^95 in magnitude is held exactly, with 32 bits of headroom for 2^32
 * rows.  A value outside (none in any real stream: 1e-23 or 4e28) is
 * "wild": while a window holds one, the sum is the rows' plain sum in
 * row order, as before. */
#define ACC_FRAC 128
#define ACC_TOP 223     /* a value's top bit is below this */

typedef struct Acc {
        uint64_t l[4];
} Acc;

/* d as m * 2^sh units, false: wild */
static bool acc_split(double d, uint64_t *m, int *sh)
{
        if (!isfinite(d))
                return false;
        if (d == 0) {
                *m = 0;
                *sh = 0;
                return true;
        }
        int ex;
        double f = frexp(fabs(d), &ex);
        uint64_t mm = (uint64_t)ldexp(f, 53); /* exact: 53 bits */
        int s = ex - 53 + ACC_FRAC;
        if (s < 0) {
                if (s <= -64 || __builtin_ctzll(mm) < -s)
                        return false;
                mm >>= -s;
                s = 0;
        }
        if (s + 64 - __builtin_clzll(mm) > ACC_TOP)
                return false;
        *m = mm;
        *sh = s;
        return true;
}

/* l = -l, in 256-bit two's complement. */
static void acc_neg(uint64_t l[4])
{
        uint64_t c = 1;
        for (int i = 0; i < 4; i++) {
                l[i] = ~l[i] + c;
                c = c && l[i] == 0;
        }
}

static void acc_add(Acc *a, uint64_t m, int sh, bool neg)
{
        uint64_t part[4] = {0, 0, 0, 0};
        int li = sh / 64, off = sh % 64;
        part[li] = m << off;
        if (off && li + 1 < 4)
                part[li + 1] = m >> (64 - off);
        if (neg)
                acc_neg(part);
        uint64_t carry = 0;
        for (int i = 0; i < 4; i++) {
                uint64_t x = a->l[i] + part[i];
                uint64_t c1 = x < part[i];
                uint64_t y = x + carry;
                carry = c1 | (y < x);
                a->l[i] = y;
        }
}

/* Add (sign 1) or retract (-1) a number or a duration; false: wild. */
static bool acc_value(Acc *a, const Value *v, int sign)
{
        uint64_t m;
        int sh;
        bool neg;
        if (v->tag == VT_DUR) {
                neg = v->ms < 0;
                m = neg ? (uint64_t)0 - (uint64_t)v->ms : (uint64_t)v->ms;
                sh = ACC_FRAC;
        } else {
                if (!acc_split(v->n, &m, &sh))
                        return false;
                neg = v->n < 0;
        }
        if (m)
                acc_add(a, m, sh, sign < 0 ? !neg : neg);
        return true;
}

/* The sum rounded once to the nearest double (ties to even). */
static double acc_double(const Acc *a)
{
        uint64_t m[4];
        memcpy(m, a->l, sizeof(m));
        bool neg = m[3] >> 63;
        if (neg)
                acc_neg(m);
        int top = 3;
        while (top >= 0 && !m[top])
                top--;
        if (top < 0)
                return 0;
        int bit = top * 64 + 63 - __builtin_clzll(m[top]);
        int lo = bit - 63;
        uint64_t hi;
        if (lo <= 0) {
                hi = m[0];
                lo = 0;
        } else {
                int li = lo / 64, off = lo % 64;
                hi = m[li] >> off;
                bool sticky = off && (m[li] & ((1ULL << off) - 1));
                if (off)
                        hi |= m[li + 1] << (64 - off);
                for (int i = 0; i < li; i++)
                        sticky |= m[i] != 0;
                /* bit 0 is 10 places below the rounding bit: it only breaks ties */
                hi |= sticky;
        }
        double d = ldexp((double)hi, lo - ACC_FRAC);
        return neg ? -d : d;
}

/* The integer part (a sum of durations has no other), saturated. */
static int64_t acc_int(const Acc *a)
{
        __int128 v = (__int128)((unsigned __int128)a->l[3] << 64 | a->l[2]);
        return v > INT64_MAX ? INT64_MAX : v < INT64_MIN ? INT64_MIN : (int64_t)v;
}

/* ---- running aggregates, after the rows ---- */

typedef struct RunSum {
        Acc acc;
        uint32_t nn;            /* non-null values */
        uint32_t wild;          /* values acc cannot hold (acc_split) */
} RunSum;

/* Row i of the ring has id base + i; the deque holds ids, values
 * strictly increasing (min) or decreasing (max) from the front. */
typedef struct RunMM {
        uint32_t base;
        uint32_t dh, dn, pad;
        uint32_t dq[];          /* cap ids, a ring from dh */
} RunMM;

/* A value as distinct() tells values apart: its tag and 8 bytes (a
 * string's interned copy, one per text, so its address; a number's bits
 * with -0 as 0; the integer of the others). */
typedef struct DEnt {
        uint64_t key;
        uint32_t count;         /* rows holding it; 0: empty slot */
        uint32_t tag;
} DEnt;

typedef struct RunDist {
        DEnt *tab;              /* open addressing, linear probing, at most half full */
        uint32_t cap, n;
} RunDist;

/* The aggregate is kept running (no $ in where, a kind that needs it). */
static bool run_kept(const Aggregate *a)
{
        return !a->uses_cur && a->kind != AGG_COUNT && a->kind != AGG_ABSENT;
}

static size_t run_size(const Aggregate *a, uint32_t cap)
{
        if (!run_kept(a))
                return 0;
        switch (a->kind) {
        case AGG_SUM:
        case AGG_AVG: return sizeof(RunSum);
        case AGG_MIN:
        case AGG_MAX: return (sizeof(RunMM) + (size_t)cap * sizeof(uint32_t) + 7) & ~(size_t)7;
        case AGG_DISTINCT: return sizeof(RunDist);
        default: return 0;
        }
}

static size_t win_alloc_size(const Aggregate *a, uint32_t cap)
{
        return win_size(cap, a->nrow_slots) + run_size(a, cap);
}

int64_t *window_alloc(Engine *e, const Aggregate *a, uint32_t cap)
{
        return pool_calloc(&e->pool, win_alloc_size(a, cap));
}

static void *run_of(const Win *w, const Aggregate *a)
{
        return (char *)w->t + win_size(w->cap, a->nrow_slots);
}

static Value *row(const Win *w, uint32_t nrow, uint32_t i)
{
        return &win_v(w)[(size_t)ring_at(w, i) * nrow];
}

static int64_t row_time(const Win *w, uint32_t i)
{
        return w->t[ring_at(w, i)];
}

/* The position of the aggregated field in a row, -1 none. */
static int value_pos(const Aggregate *a)
{
        if (a->value_slot >= 0)
                for (uint32_t i = 0; i < a->nrow_slots; i++)
                        if (a->row_slots[i] == (uint32_t)a->value_slot)
                                return (int)i;
        return -1;
}

static const Value *row_value(const Win *w, const Aggregate *a, uint32_t i)
{
        return &row(w, a->nrow_slots, i)[value_pos(a)];
}

static uint64_t dist_key(const Value *v)
{
        uint64_t x;
        switch (v->tag) {
        case VT_STR: x = (uint64_t)(uintptr_t)v->s.p; break; /* a row's: interned */
        case VT_NUM: {
                double d = v->n == 0 ? 0 : v->n;
                memcpy(&x, &d, sizeof(x));
                break;
        }
        case VT_BOOL: x = v->b; break;
        case VT_ENUM: x = (uint64_t)(uint32_t)v->e; break;
        default: x = (uint64_t)v->ms; break;
        }
        return x;
}

static uint32_t dist_hash(uint64_t key, uint32_t tag)
{
        uint64_t x = (key ^ (uint64_t)tag << 56) * 0x9e3779b97f4a7c15ULL;
        return (uint32_t)(x ^ x >> 29);
}

static void dist_grow(Engine *e, RunDist *d)
{
        uint32_t oc = d->cap, nc = oc ? oc * 2 : 4;
        DEnt *old = d->tab;
        d->tab = pool_calloc(&e->pool, nc * sizeof(DEnt));
        d->cap = nc;
        for (uint32_t i = 0; i < oc; i++) {
                if (!old[i].count)
                        continue;
                uint32_t j = dist_hash(old[i].key, old[i].tag) & (nc - 1);
                while (d->tab[j].count)
                        j = (j + 1) & (nc - 1);
                d->tab[j] = old[i];
        }
        pool_free(&e->pool, old, oc * sizeof(DEnt));
}

static void dist_add(Engine *e, RunDist *d, const Value *v)
{
        if ((d->n + 1) * 2 > d->cap)
                dist_grow(e, d);
        uint64_t key = dist_key(v);
        uint32_t mask = d->cap - 1, j = dist_hash(key, v->tag) & mask;
        for (; d->tab[j].count; j = (j + 1) & mask)
                if (d->tab[j].key == key && d->tab[j].tag == v->tag) {
                        d->tab[j].count++;
                        return;
                }
        d->tab[j] = (DEnt){.key = key, .count = 1, .tag = v->tag};
        d->n++;
}

static void dist_del(RunDist *d, const Value *v)
{
        uint64_t key = dist_key(v);
        uint32_t mask = d->cap - 1, j = dist_hash(key, v->tag) & mask;
        while (d->tab[j].count && !(d->tab[j].key == key && d->tab[j].tag == v->tag))
                j = (j + 1) & mask;
        if (!d->tab[j].count || --d->tab[j].count)
                return;
        /* backward-shift deletion: no tombstones */
        d->n--;
        uint32_t hole = j;
        for (uint32_t k = (j + 1) & mask; d->tab[k].count; k = (k + 1) & mask) {
                uint32_t home = dist_hash(d->tab[k].key, d->tab[k].tag) & mask;
                /* k may move into the hole unless its home lies in (hole, k] */
                if (((k - home) & mask) >= ((k - hole) & mask)) {
                        d->tab[hole] = d->tab[k];
                        hole = k;
                }
        }
        d->tab[hole].count = 0;
}

/* Row id's value should leave the deque before v (min: not below it). */
static bool mm_beaten(const Win *w, const Aggregate *a, const RunMM *r, uint32_t id, const Value *v)
{
        int c = 0;
        value_cmp(row_value(w, a, id - r->base), v, &c);
        return a->kind == AGG_MIN ? c >= 0 : c <= 0;
}

/* Row i (the newest) joins the deque. */
static void mm_push(const Win *w, const Aggregate *a, RunMM *r, uint32_t i)
{
        const Value *v = row_value(w, a, i);
        if (v->tag == VT_NULL)
                return;
        while (r->dn && mm_beaten(w, a, r, r->dq[(r->dh + r->dn - 1) % w->cap], v))
                r->dn--;
        r->dq[(r->dh + r->dn) % w->cap] = r->base + i;
        r->dn++;
}

/* A sum's or an average's running part: v added (sign 1) or retracted (-1). */
static void run_sum(RunSum *r, const Value *v, int sign)
{
        if (v->tag == VT_NULL)
                return;
        r->nn += (uint32_t)sign;
        if (!acc_value(&r->acc, v, sign))
                r->wild += (uint32_t)sign;
}

/* Row i joins the running aggregate. */
static void run_add(Engine *e, Win *w, const Aggregate *a, uint32_t i)
{
        void *run = run_of(w, a);
        const Value *v = row_value(w, a, i);
        switch (a->kind) {
        case AGG_SUM:
        case AGG_AVG: {
                run_sum(run, v, 1);
                break;
        }
        case AGG_MIN:
        case AGG_MAX:
                mm_push(w, a, run, i);
                break;
        case AGG_DISTINCT:
                if (v->tag != VT_NULL)
                        dist_add(e, run, v);
                break;
        default:
                break;
        }
}

/* The front row leaves the running aggregate (before its values go). */
static void run_drop_front(Win *w, const Aggregate *a)
{
        void *run = run_of(w, a);
        const Value *v = row_value(w, a, 0);
        switch (a->kind) {
        case AGG_SUM:
        case AGG_AVG: {
                run_sum(run, v, -1);
                break;
        }
        case AGG_MIN:
        case AGG_MAX: {
                RunMM *r = run;
                if (r->dn && r->dq[r->dh] == r->base) {
                        r->dh = (r->dh + 1) % w->cap;
                        r->dn--;
                }
                r->base++;
                break;
        }
        case AGG_DISTINCT:
                if (v->tag != VT_NULL)
                        dist_del(run, v);
                break;
        default:
                break;
        }
}

/* Build the running aggregate from the rows. */
static void run_build(Engine *e, Win *w, const Aggregate *a)
{
        void *run = run_of(w, a);
        if (a->kind == AGG_DISTINCT) {
                RunDist *d = run;
                for (uint32_t i = 0; i < d->cap; i++)
                        d->tab[i].count = 0;
                d->n = 0;
        } else {
                memset(run, 0, run_size(a, 0));
        }
        w->run = 1;
        for (uint32_t i = 0; i < w->n; i++)
                run_add(e, w, a, i);
}

static void drop_front(Engine *e, Win *w, const Aggregate *a)
{
        uint32_t nrow = a->nrow_slots;
        if (w->run)
                run_drop_front(w, a);
        Value *v = row(w, nrow, 0);
        for (uint32_t k = 0; k < nrow; k++)
                intern_value_put(&e->in, v[k]);
        w->head = ring_at(w, 1);
        w->n--;
}

static void evict(Engine *e, Win *w, const Aggregate *a, int64_t now)
{
        int64_t edge = time_sub_sat(now, a->window_ms);
        while (w->n && row_time(w, 0) <= edge)
                drop_front(e, w, a);
}

/* The ring's arrays (its rows already released) and what the running
 * aggregate holds apart. */
static void window_free_rows(Engine *e, Win *w, const Aggregate *a)
{
        if (run_kept(a) && a->kind == AGG_DISTINCT) {
                RunDist *d = run_of(w, a);
                pool_free(&e->pool, d->tab, d->cap * sizeof(DEnt));
        }
        pool_free(&e->pool, w->t, win_alloc_size(a, w->cap));
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

/* Rows k+1 .. n-1 move down one place and row k goes to the end
 * (dedupe_recent): the deque's ids follow them, row k's old id leaves,
 * and it joins again as the newest.  Only ids of the last 8 rows move. */
static void mm_moved(Win *w, const Aggregate *a, uint32_t k)
{
        RunMM *r = run_of(w, a);
        uint32_t kid = r->base + k, keep = 0;
        uint32_t back[8];
        while (r->dn) {
                uint32_t id = r->dq[(r->dh + r->dn - 1) % w->cap];
                if ((int32_t)(id - kid) < 0)
                        break;
                r->dn--;
                if (id != kid)
                        back[keep++] = id - 1;
        }
        while (keep)
                r->dq[(r->dh + r->dn++) % w->cap] = back[--keep];
        mm_push(w, a, r, w->n - 1);
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
                        same = value_equal(&r[i], &cand[i]);
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
                /* distinct counts the same values; min and max follow the ids */
                if (w->run && (a->kind == AGG_MIN || a->kind == AGG_MAX))
                        mm_moved(w, a, k);
                (void)e;
                return nrow <= 64;
        }
        return false;
}

/* Room for one more row: the oldest dropped at max_window_rows, else the
 * ring grows (unrolled, the running aggregate moved along). */
static void make_room(Engine *e, Win *w, const Aggregate *a)
{
        uint32_t nrow = a->nrow_slots;
        if (w->cap >= e->cfg.max_window_rows) {
                drop_front(e, w, a);
                e->st.window_rows_dropped++;
                return;
        }
        uint32_t nc = w->cap ? w->cap * 2 : 4;
        if (nc > e->cfg.max_window_rows)
                nc = e->cfg.max_window_rows;
        int64_t *nt = pool_alloc(&e->pool, win_alloc_size(a, nc));
        Value *nv = (Value *)(void *)(nt + nc);
        for (uint32_t i = 0; i < w->n; i++) {
                nt[i] = row_time(w, i);
                if (nrow)
                        memcpy(&nv[(size_t)i * nrow], row(w, nrow, i), nrow * sizeof(Value));
        }
        void *nrun = (char *)nt + win_size(nc, nrow);
        size_t rs = run_size(a, 0);
        if (rs && w->t) {
                const void *orun = run_of(w, a);
                memcpy(nrun, orun, rs);
                if (a->kind == AGG_MIN || a->kind == AGG_MAX) {
                        const RunMM *o = orun;
                        RunMM *r = nrun;
                        for (uint32_t i = 0; i < o->dn; i++)
                                r->dq[i] = o->dq[(o->dh + i) % w->cap];
                        r->dh = 0;
                }
        } else if (rs) {
                memset(nrun, 0, rs);
        }
        pool_free(&e->pool, w->t, win_alloc_size(a, w->cap));
        w->t = nt;
        w->cap = nc;
        w->head = 0;
}

void window_insert(Engine *e, Ent *ent, uint32_t type, const Value *ev, int64_t t, const VmFrame *f)
{
        const RuleSet *rs = e->rs;
        for (uint32_t k = 0; k < e->plan.naggs_by_type[type]; k++) {
                uint32_t ai = e->plan.aggs_by_type[type][k];
                const Aggregate *a = &rs->aggs[ai];
                Win *w = win_get(e, ent, ai, false);
                if (w)
                        evict(e, w, a, t);
                if (a->where != PROG_NONE && !a->uses_cur) {
                        if (e->plan.agg_profile[ai])
                                ent_profile_need(e, ent);
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
                if (w->n == w->cap)
                        make_room(e, w, a);
                assert(w->n < w->cap); /* make_room made room */
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
                if (w->run)
                        run_add(e, w, a, w->n - 1);
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

/* sum and avg from the exact sum of count values (or the plain sum when
 * one was wild); tag: of the values, VT_NULL none */
static Value sum_result(const RuleSet *rs, const Aggregate *a, const Acc *acc, double plain, bool wild,
                        uint64_t count, ValueTag tag)
{
        bool dur = tag == VT_DUR || (tag == VT_NULL && rs->schema.slot_type[a->value_slot] == FT_DUR);
        if (a->kind == AGG_SUM) {
                if (!count)
                        return dur ? value_dur(0) : value_num(0);
                if (dur)
                        return value_dur(acc_int(acc));
                return value_num(wild ? plain : acc_double(acc));
        }
        if (!count)
                return value_null();
        if (dur) /* as before: the quotient of the sum as a double, cut to the ms */
                return value_dur((int64_t)((double)acc_int(acc) / (double)count));
        return value_num((wild ? plain : acc_double(acc)) / (double)count);
}

/* The running aggregate's answer: the rows in the ring are the window's
 * (evicted to now), every one matching. */
static Value run_result(Engine *e, Win *w, const RuleSet *rs, const Aggregate *a)
{
        if (!w->run)
                run_build(e, w, a);
        void *run = run_of(w, a);
        switch (a->kind) {
        case AGG_SUM:
        case AGG_AVG: {
                RunSum *r = run;
                double plain = 0;
                ValueTag tag = rs->schema.slot_type[a->value_slot] == FT_DUR ? VT_DUR : VT_NUM;
                if (r->wild) /* the rows' plain sum in order, as the rescan has it */
                        for (uint32_t i = 0; i < w->n; i++) {
                                const Value *v = row_value(w, a, i);
                                if (v->tag != VT_NULL)
                                        plain += v->tag == VT_DUR ? (double)v->ms : v->n;
                        }
                return sum_result(rs, a, &r->acc, plain, r->wild, r->nn, tag);
        }
        case AGG_MIN:
        case AGG_MAX: {
                RunMM *r = run;
                if (!r->dn)
                        return value_null();
                return *row_value(w, a, r->dq[r->dh] - r->base);
        }
        case AGG_DISTINCT:
                return value_num((double)((RunDist *)run)->n);
        default:
                return value_null();
        }
}

int window_agg(void *ud, const RuleSet *rs, uint32_t agg, const VmFrame *f, Value *ret)
{
        AggCtx *ac = ud;
        Engine *e = ac->e;
        const Aggregate *a = &rs->aggs[agg];
        if (e->plan.agg_keyed[agg]) { /* only its rules' timers ask, and then it holds (agg_keyed_find) */
                *ret = value_bool(true);
                return 0;
        }
        Win *w = win_get(e, ac->ent, agg, false);
        if (w)
                evict(e, w, a, f->now);
        uint32_t n = w ? w->n : 0;
        /* every row kept matches, none is later than now (event time only
         * moves forward): the answer without reading the rows */
        if (!a->uses_cur && !e->cfg.agg_rescan && (!n || row_time(w, n - 1) <= f->now)) {
                if (a->kind == AGG_COUNT)
                        *ret = value_num((double)n);
                else if (a->kind == AGG_ABSENT)
                        *ret = value_bool(n == 0);
                else if (n)
                        *ret = run_result(e, w, rs, a);
                else if (a->kind == AGG_DISTINCT)
                        *ret = value_num(0);
                else /* sum 0, avg, min and max null */
                        *ret = sum_result(rs, a, &(Acc){{0, 0, 0, 0}}, 0, false, 0, VT_NULL);
                return 0;
        }
        uint32_t nrow = a->nrow_slots;
        bool scan_where = a->where != PROG_NONE && a->uses_cur;
        VmFrame rf = *f;
        rf.event = e->rowbuf;
        rf.cur = f->cur;
        rf.agg = NULL;
        Acc acc = {{0, 0, 0, 0}};
        double plain = 0;
        bool wild = false;
        uint64_t count = 0;
        Value best = value_null();
        Value *vals = NULL;
        int vpos = value_pos(a);
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
                        if (!acc_value(&acc, v, 1))
                                wild = true;
                        plain += v->tag == VT_DUR ? (double)v->ms : v->n;
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
        case AGG_AVG:
                *ret = sum_result(rs, a, &acc, plain, wild, count, best.tag);
                break;
        case AGG_MIN:
        case AGG_MAX:
                *ret = best;
                break;
        case AGG_DISTINCT: {
                if (nvals > 1)
                        xsort(vals, nvals, sizeof(Value), value_order);
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
        w->run = 0; /* the rows leave without retracting one by one */
        while (w->n)
                drop_front(e, w, a);
        if (w->t)
                window_free_rows(e, w, a);
}

size_t window_bytes(const Engine *e, const Win *w)
{
        const Aggregate *a = &e->rs->aggs[w->agg];
        size_t b = pool_size(win_alloc_size(a, w->cap));
        if (w->t && run_kept(a) && a->kind == AGG_DISTINCT)
                b += pool_size(((const RunDist *)run_of(w, a))->cap * sizeof(DEnt));
        return b;
}
