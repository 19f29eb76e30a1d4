/*
 * The compact form of idle enterprises, and the state budget
 * (include/riskd/engine.h, "Memory").
 *
 * An idle enterprise (ent_idle: nothing that acts with time but, under
 * the official model, its cycle timer) is kept as its changelog record
 * behind a header: an Ent struct (the grading fields, the key, the timer
 * entry's time) followed by a StubRec and the record's coded bytes (in
 * the same pool object, or in one of their own when that rounds up to
 * less).  Why the record and not a trimmed Ent:
 *  - one codec: the record is what the changelog holds, written by
 *    state.c's encoder and read back by the restore path, which the
 *    restore, abort and reload tests already hold to "the same state";
 *    nothing of the enterprise is dropped (its recent event ids, inert
 *    key states, official state, profile all stay), so no output changes;
 *  - it gets smaller with the record format, and costs nothing to write
 *    again: a compact enterprise's changelog record is the bytes it holds
 *    (a reload, state.c's ent_write);
 *  - a trimmed Ent would keep the recent-id ring (a duplicate of any of
 *    its events is a dead letter whenever it comes: event ids are not
 *    bounded by the watermark) and its pointers, and would need a second
 *    description of what may be dropped.
 * Records name fields, rules, flags and grades by their text, the same
 * few hundred bytes of names in every record, so the bytes kept are the
 * record through a small LZ77 coder (lz_pack, lz_unpack) whose window
 * starts with a dictionary of those names as a record writes them
 * (lz_dict): a byte-level layer, lossless whatever the record format is.
 * A compact form no smaller than the full form's objects is not used
 * (nothing is compacted to grow); bench/README.md has the figures.
 *
 * Pointers to an Ent live in three places, each handled:
 *  - the enterprise table: the slot is rewritten in place (the key, so its
 *    hash and its slot, are the same);
 *  - the undo log (Engine.touched: the open batch's segment and the
 *    sealed one whose transaction is in flight): an Ent in either is not
 *    idle (Ent.touched, Ent.sealed), and an expansion happens before the
 *    event touches the enterprise, so the log only ever names full Ents;
 *  - the timer heap (struct Timer): engine_compact forwards the entries of
 *    the Ents it replaced to their compact form in one pass over the heap
 *    (time and key are unchanged, so the heap order is too); an expansion
 *    pushes the full form's entry at the same time and leaves the compact
 *    object (Ent.gone, its entry skipped as stale) to be freed by the next
 *    heap pass or rebuild.
 * A compact enterprise's timer entry is the one its full form had; when it
 * comes up, the enterprise is expanded and acts as it would have.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "src/engine/engine.h"
#include "src/util/varint.h"

/* ---- LZ77 over [dictionary, record] ----
 *
 * Tokens: a byte c < 0x80 then c + 1 literal bytes; a byte 0x80 | (n - 4)
 * then the distance back (a varint, 1 or more) of a match of n bytes (4 to
 * 131) in the dictionary followed by the output so far. */

#define LZ_MIN 4
#define LZ_MAX 131
#define LZ_HBITS 14

static uint32_t lz_hash(const uint8_t *p)
{
        uint32_t v;
        memcpy(&v, p, 4);
        return (v * 2654435761u) >> (32 - LZ_HBITS);
}

static void dict_put(Buf *d, const char *s)
{
        size_t n = s ? strlen(s) : 0;
        if (n > 127 || d->len + n + 2 > 65536)
                return;
        buf_putc(d, (char)n);
        buf_put(d, s, n);
}

/* A fingerprint as a record writes it (a varint). */
static void dict_varint(Buf *d, uint64_t v)
{
        uint8_t b[VARINT_MAX];
        buf_put(d, b, (size_t)(varint_put(b, v) - b));
}

/* The names a record holds, each as the record writes a string (its length
 * in one byte, the bytes), and the rules' and aggregates' fingerprints:
 * what most of an idle enterprise's record is. */
static void lz_dict(Engine *e)
{
        const RuleSet *rs = e->rs;
        Buf d = {0};
        /* the time "none" (INT64_MIN) as a zigzag varint, twice */
        for (int k = 0; k < 2; k++) {
                buf_put(&d, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10);
        }
        for (uint32_t i = 0; i < rs->schema.nslots; i++) {
                dict_put(&d, rs->schema.slot_path[i]);
                buf_putc(&d, (char)rs->schema.slot_type[i]);
        }
        for (uint32_t i = 0; i < rs->nrules; i++) {
                dict_put(&d, rs->rules[i].id);
                dict_varint(&d, rs->rules[i].fingerprint);
        }
        for (uint32_t i = 0; i < rs->naggs; i++) /* an empty window is its fingerprint and slots */
                dict_varint(&d, e->plan.agg_fp[i]);
        for (uint32_t i = 0; i < rs->nflags; i++)
                dict_put(&d, rs->flags[i]);
        for (uint32_t i = 0; i < rs->grading.nbands; i++)
                dict_put(&d, rs->grading.bands[i].grade);
        for (uint32_t i = 0; i < rs->grading.nmodes; i++)
                dict_put(&d, rs->grading.modes[i]);
        for (uint32_t i = 0; i < rs->schema.nslots; i++) {
                const EnumDef *en = rs->schema.slot_enum[i];
                for (uint32_t k = 0; en && k < en->nvalues; k++)
                        dict_put(&d, en->values[k]);
        }
        e->cp.lz_dict = (uint8_t *)d.p;
        e->cp.lz_dlen = (uint32_t)d.len;
        e->cp.lz_dhash = xmalloc(sizeof(int32_t) << LZ_HBITS);
        e->cp.lz_h = xcalloc(1u << LZ_HBITS, sizeof(uint64_t));
        for (uint32_t i = 0; i < 1u << LZ_HBITS; i++)
                e->cp.lz_dhash[i] = -1;
        for (uint32_t i = 0; i + LZ_MIN <= e->cp.lz_dlen; i++)
                e->cp.lz_dhash[lz_hash(e->cp.lz_dict + i)] = (int32_t)i;
}

static void lz_lits(Buf *out, const uint8_t *p, size_t n)
{
        while (n) {
                size_t k = n < 128 ? n : 128;
                buf_putc(out, (char)(k - 1));
                buf_put(out, p, k);
                p += k;
                n -= k;
        }
}

/* in[0 .. n) coded into out (appended). */
static void lz_pack(Engine *e, const uint8_t *in, size_t n, Buf *out)
{
        if (!e->cp.lz_dhash)
                lz_dict(e);
        /* positions in this input: the epoch of the call in the high
         * half, so that no call clears the table (a stale entry falls
         * back to the dictionary's) */
        uint64_t *h = e->cp.lz_h;
        uint64_t ep = ++e->cp.lz_epoch;
        if (ep >> 32) {
                memset(h, 0, sizeof(uint64_t) << LZ_HBITS);
                ep = e->cp.lz_epoch = 1;
        }
        const uint8_t *d = e->cp.lz_dict;
        uint32_t dl = e->cp.lz_dlen;
        size_t lit = 0, i = 0;
        while (i + LZ_MIN <= n) {
                uint32_t hv = lz_hash(in + i);
                int64_t c = h[hv] >> 32 == ep ? (int64_t)(dl + (uint32_t)h[hv]) : e->cp.lz_dhash[hv];
                h[hv] = ep << 32 | (uint32_t)i;
                size_t m = 0;
                if (c >= 0) {
                        /* compare along the virtual [dictionary, in] */
                        size_t cp = (size_t)c;
                        while (m < LZ_MAX && i + m < n) {
                                size_t v = cp + m;
                                uint8_t b = v < dl ? d[v] : in[v - dl];
                                if (b != in[i + m])
                                        break;
                                m++;
                        }
                }
                if (m < LZ_MIN) {
                        i++;
                        continue;
                }
                lz_lits(out, in + lit, i - lit);
                buf_putc(out, (char)(0x80 | (m - LZ_MIN)));
                uint64_t dist = dl + i - (size_t)c;
                do {
                        buf_putc(out, (char)((dist & 0x7f) | (dist > 0x7f ? 0x80 : 0)));
                        dist >>= 7;
                } while (dist);
                for (size_t k = 1; k < m && i + k + LZ_MIN <= n; k++)
                        h[lz_hash(in + i + k)] = ep << 32 | (uint32_t)(i + k);
                i += m;
                lit = i;
        }
        lz_lits(out, in + lit, n - lit);
}

/* The record of len bytes coded in in[0 .. n) into out (appended);
 * -EINVAL if it does not decode to len bytes (never, for what lz_pack
 * wrote). */
static int lz_unpack(const Engine *e, const uint8_t *in, size_t n, size_t len, Buf *out)
{
        size_t base = out->len, i = 0;
        const uint8_t *d = e->cp.lz_dict;
        uint32_t dl = e->cp.lz_dlen;
        while (i < n) {
                uint8_t c = in[i++];
                if (c < 0x80) {
                        size_t k = (size_t)c + 1;
                        if (k > n - i || out->len - base + k > len)
                                return -EINVAL;
                        buf_put(out, in + i, k);
                        i += k;
                        continue;
                }
                size_t m = (size_t)(c & 0x7f) + LZ_MIN;
                uint64_t dist = 0;
                for (int shift = 0;; shift += 7) {
                        if (i >= n || shift > 56)
                                return -EINVAL;
                        uint8_t b = in[i++];
                        dist |= (uint64_t)(b & 0x7f) << shift;
                        if (!(b & 0x80))
                                break;
                }
                size_t pos = dl + (out->len - base); /* virtual position of the next byte */
                if (dist == 0 || dist > pos || out->len - base + m > len)
                        return -EINVAL;
                for (size_t k = 0; k < m; k++) {
                        size_t v = pos - dist + k;
                        char b = v < dl ? (char)d[v] : out->p[base + v - dl];
                        buf_putc(out, b);
                }
        }
        return out->len - base == len ? 0 : -EINVAL;
}

static StubRec *stub_rec(const Ent *x)
{
        return (StubRec *)(void *)((char *)ent_key(x) + ent_key_size(ent_key(x)->len));
}

/* The pool object of a compact Ent: len coded bytes after it, or none */
static size_t stub_size(uint32_t klen, uint32_t len)
{
        return sizeof(Ent) + ent_key_size(klen) + sizeof(StubRec) + len;
}

static const uint8_t *stub_data(const StubRec *sr)
{
        return sr->ext ? sr->ext : sr->data;
}

static size_t psize(size_t n)
{
        return n ? pool_size(n) : 0;
}

uint64_t engine_state_bytes(const Engine *e)
{
        return e->pool.bytes + (uint64_t)e->ents.tabcap * sizeof(uintptr_t) + (uint64_t)e->timers.ctm * sizeof(Timer) +
               (uint64_t)e->in.cap * sizeof(uintptr_t);
}

void engine_budget_set(Engine *e, uint64_t bytes)
{
        e->cp.budget = bytes;
}

/* Nothing that acts with time but the cycle timer, nothing an open batch,
 * a sealed batch whose transaction is in flight (an abort rolls it back
 * through the Ent's undo record) or a reload still has to write (their
 * flags are cleared at commit), and not a fresh enterprise (an abort
 * removes it: state_touch). */
static bool ent_idle(const Ent *x)
{
        if (x->compact || x->gone || x->touched || x->sealed || x->reload_dirty || x->reload_rescored ||
            x->grade_lost)
                return false;
        if (x->last_time == TIME_UNSET && x->grade < 0)
                return false;
        if (x->r->nc || x->r->nf || x->r->below_since != TIME_UNSET || x->r->na)
                return false; /* open alerts: the query API reads them in place */
        for (uint32_t k = 0; k < x->nks; k++)
                if (x->ks[k].armed)
                        return false;
        for (uint32_t k = 0; k < x->nw; k++)
                if (x->w[k].n)
                        return false;
        return true;
}

/* What x's full form holds in the pool, at class sizes. */
static size_t ent_bytes(const Engine *e, const Ent *x)
{
        size_t n = psize(ent_size(e, ent_key(x)->len));
        for (uint32_t i = 0; i < e->plan.nprof; i++) {
                Value v = ent_prof_get(e, x, i);
                if (v.tag == VT_STR)
                        n += psize(sizeof(PStr) + v.s.len);
        }
        if (x->r != &rare_none) {
                n += psize(sizeof(EntRare)) + psize(ENT_ARR(Contrib, x->r->cc)) + psize(ENT_ARR(FlagState, x->r->cf));
                n += x->r->o ? psize(sizeof(OffState)) : 0;
                n += psize(ENT_ARR(OpenAlert, x->r->ca)) + psize(ENT_ARR(GradeChange, x->r->ch));
        }
        n += psize(ENT_ARR(KeyState, x->cks)) + psize(ENT_ARR(Win, x->cw));
        for (uint32_t k = 0; k < x->nks; k++)
                n += x->ks[k].snap ? psize(x->ks[k].snap->size) : 0;
        for (uint32_t k = 0; k < x->nw; k++)
                n += window_bytes(e, &x->w[k]);
        return n;
}

static void gone_add(Engine *e, Ent *x, Ent *to)
{
        x->gone = 1;
        x->to = to;
        if (e->cp.ngone == e->cp.cgone) {
                e->cp.cgone = e->cp.cgone ? 2 * e->cp.cgone : 64;
                e->cp.gone = xrealloc(e->cp.gone, e->cp.cgone * sizeof(Ent *));
        }
        e->cp.gone[e->cp.ngone++] = x;
}

void compact_gone_free(Engine *e)
{
        for (uint32_t i = 0; i < e->cp.ngone; i++)
                compact_ent_free(e, e->cp.gone[i]);
        e->cp.ngone = 0;
}

void compact_ent_free(Engine *e, Ent *x)
{
        uint32_t klen = ent_key(x)->len;
        if (x->compact) {
                StubRec *sr = stub_rec(x);
                pool_free(&e->pool, sr->ext, sr->len);
                pool_free(&e->pool, x, stub_size(klen, sr->ext ? 0 : sr->len));
                return;
        }
        /* a full Ent: gone ones were cleared when replaced */
        if (!x->gone)
                ent_clear(e, x);
        pool_free(&e->pool, x, ent_size(e, klen));
}

static void tab_set(Engine *e, uint32_t i, Ent *x)
{
        if (!e->ents.tab_untagged && !tag_fits(x)) {
                tagtab_untag(e->ents.tab, e->ents.tabcap);
                e->ents.tab_untagged = true;
        }
        e->ents.tab[i] = tag_make(x, hash_fast(ent_key(x)->s, ent_key(x)->len), e->ents.tab_untagged);
}

void compact_record(Engine *e, const Ent *x, Buf *b)
{
        assert(x->compact);
        const StubRec *sr = stub_rec(x);
        lz_unpack(e, stub_data(sr), sr->len, sr->raw, b);
}

/* x's compact form, NULL when it would not be smaller; b: scratch. */
static Ent *ent_stub(Engine *e, Ent *x, Buf *b)
{
        b->len = 0;
        state_ent_write(e, x, b);
        size_t raw = b->len;
        e->cp.lz_buf.len = 0;
        lz_pack(e, (const uint8_t *)b->p, raw, &e->cp.lz_buf);
        size_t packed = e->cp.lz_buf.len;
        uint32_t klen = ent_key(x)->len;
        if (raw >= 1u << 31 || packed > UINT32_MAX)
                return NULL;
        size_t one = pool_size(stub_size(klen, (uint32_t)packed));
        size_t two = pool_size(stub_size(klen, 0)) + pool_size(packed);
        bool ext = two < one;
        if ((ext ? two : one) >= ent_bytes(e, x))
                return NULL;
        Ent *s = pool_alloc(&e->pool, stub_size(klen, ext ? 0 : (uint32_t)packed));
        memset(s, 0, sizeof(Ent));
        s->r = &rare_none;
        s->held = x->held;
        s->grade = x->grade;
        s->mode = x->mode;
        s->per_year = x->per_year;
        s->last_time = x->last_time;
        s->tm_at = x->tm_at;
        s->tm_absent = x->tm_absent;
        s->compact = 1;
        memcpy(ent_key(s), ent_key(x), sizeof(EntKey) + klen + 1);
        StubRec *sr = stub_rec(s);
        bool absent = false;
        sr->rebuild_at = timer_next(e, x, TIME_UNSET, false, &absent);
        sr->rebuild_absent = absent;
        sr->len = (uint32_t)packed;
        sr->raw = (uint32_t)raw & 0x7fffffff;
        sr->ext = ext ? pool_alloc(&e->pool, packed) : NULL;
        memcpy(ext ? sr->ext : sr->data, e->cp.lz_buf.p, packed);
        return s;
}

/* An entry of a replaced Ent names what replaced it (the same key: the
 * heap's order holds), or goes when that is not its live entry. */
static bool heap_keep(Timer *t)
{
        Ent *x = timer_ent(t);
        if (x->gone) {
                Ent *to = x->to;
                if (!to || to->tm_at != t->time || to->tm_absent != (t->ent & 1))
                        return false;
                t->ent = (uintptr_t)to | (t->ent & 1);
        }
        return true;
}

/* The heap after a compaction: entries of replaced Ents renamed or
 * dropped; then the replaced are freed. */
static void heap_pass(Engine *e)
{
        timer_filter(&e->timers, heap_keep);
        compact_gone_free(e);
}

int engine_compact(Engine *e, uint64_t target, uint32_t max)
{
        if (e->in_batch)
                return -EBUSY;
        ent_profile_clear(e);
        Buf b = {0};
        int n = 0;
        /* one walk round the table, from where the last one stopped */
        uint32_t start = e->cp.compact_pos < e->ents.tabcap ? e->cp.compact_pos : 0;
        for (uint32_t k = 0; k < e->ents.tabcap && (!target || engine_state_bytes(e) > target); k++) {
                uint32_t i = start + k < e->ents.tabcap ? start + k : start + k - e->ents.tabcap;
                if (max && (uint32_t)n == max) {
                        e->cp.compact_pos = i;
                        break;
                }
                Ent *x = tab_ent(e, i);
                if (!x || !ent_idle(x))
                        continue;
                Ent *s = ent_stub(e, x, &b);
                if (!s)
                        continue;
                tab_set(e, i, s);
                ent_clear(e, x);
                gone_add(e, x, s);
                e->cp.ncompact++;
                e->st.compactions++;
                n++;
        }
        buf_free(&b);
        if (n || e->cp.ngone)
                heap_pass(e);
        return n;
}

Ent *compact_decode(Engine *e, const Ent *x)
{
        assert(x->compact);
        uint32_t klen = ent_key(x)->len;
        Ent *n = pool_calloc(&e->pool, ent_size(e, klen));
        memcpy(ent_key(n), ent_key(x), sizeof(EntKey) + klen + 1);
        n->held = n->grade = n->mode = -1;
        n->r = &rare_none;
        n->last_time = TIME_UNSET;
        n->tm_at = TIME_UNSET;
        /* written by this Engine under its rules: it decodes (if it did
         * not, n would hold what did, as a restore keeps) */
        e->cp.lz_buf.len = 0;
        compact_record(e, x, &e->cp.lz_buf);
        state_ent_read(e, n, e->cp.lz_buf.p, e->cp.lz_buf.len);
        return n;
}

Ent *compact_expand(Engine *e, uint32_t i, Ent *x, bool push)
{
        assert(x->compact && tab_ent(e, i) == x);
        Ent *n = compact_decode(e, x);
        tab_set(e, i, n);
        e->cp.ncompact--;
        e->st.expansions++;
        if (push && x->tm_at != TIME_UNSET) {
                /* its entry is in the heap: the full form's replaces it */
                timer_want(e, n, x->tm_at, x->tm_absent);
                x->tm_at = TIME_UNSET;
                gone_add(e, x, NULL);
        } else {
                compact_ent_free(e, x);
        }
        return n;
}

void compact_expand_all(Engine *e)
{
        for (uint32_t i = 0; e->cp.ncompact && i < e->ents.tabcap; i++) {
                Ent *x = tab_ent(e, i);
                if (x && x->compact)
                        compact_expand(e, i, x, true);
        }
}

bool compact_room(Engine *e)
{
        if (engine_state_bytes(e) < e->cp.budget)
                return true;
        /* every idle enterprise, at most once per quarter of the
         * enterprises' count in events: a full table costs no scan per event */
        if (!e->in_batch && e->applying >= e->cp.compact_after) {
                engine_compact(e, 0, 0);
                e->cp.compact_after = e->applying + (e->ents.nents / 4 > 1024 ? e->ents.nents / 4 : 1024);
        }
        return engine_state_bytes(e) < e->cp.budget;
}

void compact_deinit(Engine *e)
{
        assert(e->timers.ntm == 0);
        compact_gone_free(e);
        free(e->cp.gone);
        free(e->cp.lz_dict);
        free(e->cp.lz_dhash);
        free(e->cp.lz_h);
        buf_free(&e->cp.lz_buf);
}
