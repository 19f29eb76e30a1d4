/*
 * The engine's event flow: decode → hold for the grace → apply in
 * event-time order (windows, rules, for/cooldown/absent, score
 * contributions, flags) → regrade; timers fire as the watermark passes
 * them.  See include/riskd/engine.h for the contract.
 *
 * Invariants:
 *  - event time only moves forward through the engine: held events are
 *    released in order (time, then arrival: the order grace 0 applies
 *    them in), too_late rejects anything behind the watermark, and a timer
 *    at T fires before any event at T (an absent() check after them);
 *  - every timer is derivable from enterprise state and is revalidated when
 *    it fires (a stale timer does nothing), so state alone is the truth;
 *  - each KeyState has at most one pending timer (re-arming moves its due
 *    time; the pending timer reschedules itself), so the heap stays bounded
 *    by state, not by the event rate.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "src/engine/engine.h"

const char *const engine_reject_names[ENGINE_NREJECT] = {
#define X(e, name) name,
        DECODE_REASON_LIST(X) ENGINE_REJECT_LIST(X)
#undef X
};

void engine_config_default(EngineConfig *c)
{
        *c = (EngineConfig){
                .grace_ms = 0,
                .max_enterprises = 4000000,
                .recent_ids = 8,
                .max_window_rows = 100000,
                .max_keys = 4096,
                .max_held = 1000000,
                .max_event_bytes = 1 << 20,
        };
}

const EntRare rare_none = {.below_since = TIME_UNSET};

/* Every enterprise has an Ent, most a few key states: a field added to
 * either costs it on each (the bench's state bytes per enterprise). */
_Static_assert(sizeof(void *) != 8 || sizeof(Ent) == 72, "Ent grew: every enterprise pays for it");
_Static_assert(sizeof(void *) != 8 || sizeof(KeyState) == 32, "KeyState grew: every key of every enterprise pays for it");

/* ---- enterprise table ---- */

static inline bool ent_is(const Ent *x, const char *k, uint32_t len)
{
        return ent_key(x)->len == len && memcmp(ent_key(x)->s, k, len) == 0;
}

static uint32_t ent_slot(Engine *e, const char *k, uint32_t len, uint64_t h)
{
        uint32_t mask = e->tabcap - 1, i = (uint32_t)h & mask;
        if (e->tab_untagged) {
                for (Ent *x; (x = tab_ent(e, i)); i = (i + 1) & mask)
                        if (ent_is(x, k, len))
                                return i;
                return i;
        }
        for (uintptr_t v; (v = e->tab[i]); i = (i + 1) & mask)
                if (tag_match(v, h) && ent_is(tag_ptr(v, false), k, len))
                        return i;
        return i;
}

/* An enterprise in state (in full form), NULL none. */
static Ent *ent_find(Engine *e, const char *k, uint32_t len)
{
        uint64_t h = hash_fast(k, len);
        uint32_t i = ent_slot(e, k, len, h);
        Ent *x = tab_ent(e, i);
        return x && x->compact ? compact_expand(e, i, x, true) : x;
}

static uint64_t ent_hash(const void *x)
{
        return hash_fast(ent_key(x)->s, ent_key(x)->len);
}

/* The pool object of an enterprise with a key of len bytes (see Ent). */
static size_t ent_size(const Engine *e, uint32_t len)
{
        return sizeof(Ent) + ent_key_size(len) + e->prof_bytes +
               e->cfg.recent_ids * sizeof(uint64_t) + ent_static_words(e) * sizeof(uint64_t);
}

size_t engine_ent_size(const Engine *e, uint32_t len)
{
        return ent_size(e, len);
}

uint32_t engine_ent_slot(Engine *e, const Ent *x)
{
        return ent_slot(e, ent_key(x)->s, ent_key(x)->len, ent_hash(x));
}

/* h: hash_fast(k, len).  A compact enterprise comes back in full form;
 * NULL: none made, e->refused says why. */
static Ent *ent_get_h(Engine *e, const char *k, uint32_t len, uint64_t h)
{
        uint32_t i = ent_slot(e, k, len, h);
        if (e->tab[i]) {
                Ent *x = tab_ent(e, i);
                return x->compact ? compact_expand(e, i, x, true) : x;
        }
        if (e->nents >= e->cfg.max_enterprises) {
                e->refused = 1;
                return NULL;
        }
        if (e->budget && !compact_room(e)) {
                e->refused = 2;
                return NULL;
        }
        i = ent_slot(e, k, len, h); /* compact_room may have untagged the table */
        Ent *x = pool_calloc(&e->pool, ent_size(e, len));
        ent_key(x)->len = len;
        memcpy(ent_key(x)->s, k, len);
        x->held = x->grade = x->mode = -1;
        x->r = &rare_none;
        x->last_time = TIME_UNSET;
        x->tm_at = TIME_UNSET;
        if (!e->tab_untagged && !tag_fits(x)) {
                tagtab_untag(e->tab, e->tabcap);
                e->tab_untagged = true;
        }
        e->tab[i] = tag_make(x, h, e->tab_untagged);
        e->nents++;
        if (e->nents * 2 > e->tabcap) {
                e->tab = tagtab_grow(e->tab, e->tabcap, e->tabcap * 2, e->tab_untagged, ent_hash);
                e->tabcap *= 2;
        }
        return x;
}

void engine_ks_free(Engine *e, KeyState *ks)
{
        if (ks->snap)
                pool_free(&e->pool, ks->snap, ks->snap->size);
        ks->snap = NULL;
        ks->keyed = 0;
}

static uint8_t prof_tag(const Engine *e, uint32_t i)
{
        switch (e->rs->schema.slot_type[e->prof_slots[i]]) {
        case FT_BOOL: return VT_BOOL;
        case FT_NUM: return VT_NUM;
        case FT_STR: return VT_STR;
        case FT_ENUM: return VT_ENUM;
        case FT_TIME: return VT_TIME;
        default: return VT_DUR;
        }
}

static size_t prof_width(uint8_t tag)
{
        switch (tag) {
        case VT_STR: return 8;
        case VT_ENUM: return 2;
        case VT_BOOL: return 1;
        default: return 8;
        }
}

/* Offsets by width, widest first, so each is aligned. */
static void prof_layout(Engine *e)
{
        e->prof_off = xcalloc(e->nprof + 1, sizeof(uint16_t));
        e->prof_tags = xcalloc(e->nprof + 1, 1);
        for (uint32_t i = 0; i < e->nprof; i++)
                e->prof_tags[i] = prof_tag(e, i);
        size_t off = 0;
        static const size_t widths[] = {8, 2, 1};
        for (size_t w = 0; w < 3; w++)
                for (uint32_t i = 0; i < e->nprof; i++)
                        if (prof_width(e->prof_tags[i]) == widths[w]) {
                                e->prof_off[i] = (uint16_t)off;
                                off += widths[w];
                        }
        e->prof_present = (uint16_t)off;
        off += (e->nprof + 7) / 8;
        e->prof_bytes = (uint16_t)((off + 7) & ~(size_t)7);
}

/* Profile value i of x into *v, field by field (a Value returned and
 * copied whole stalls store forwarding; engine_profile_fill runs on most
 * events). */
static inline void prof_load(const Engine *e, const Ent *x, uint32_t i, Value *v)
{
        const uint8_t *p = ent_prof(e, x);
        if (!(p[e->prof_present + i / 8] >> (i % 8) & 1)) {
                v->tag = VT_NULL;
                return;
        }
        const uint8_t *at = p + e->prof_off[i];
        v->tag = e->prof_tags[i];
        switch (v->tag) {
        case VT_STR: {
                const PStr *ps;
                memcpy(&ps, at, sizeof(ps));
                v->s.p = ps->s;
                v->s.len = ps->len;
                break;
        }
        case VT_ENUM: {
                int16_t en;
                memcpy(&en, at, 2);
                v->e = en;
                break;
        }
        case VT_BOOL: v->b = *at != 0; break;
        case VT_NUM: memcpy(&v->n, at, 8); break;
        default: memcpy(&v->ms, at, 8); break;
        }
}

Value engine_prof_get(const Engine *e, const Ent *x, uint32_t i)
{
        Value v = value_null();
        prof_load(e, x, i, &v);
        return v;
}

static void pstr_free(Engine *e, PStr *ps)
{
        if (ps)
                pool_free(&e->pool, ps, sizeof(PStr) + ps->len);
}

void engine_prof_set(Engine *e, Ent *x, uint32_t i, Value v)
{
        uint8_t *p = ent_prof(e, x);
        uint8_t *bits = p + e->prof_present + i / 8, bit = (uint8_t)(1u << (i % 8));
        uint8_t *at = p + e->prof_off[i];
        /* the string it held, freed last: v may be its bytes (read field by
         * field, not as a returned Value: that stalls store forwarding) */
        PStr *old = NULL;
        if (e->prof_tags[i] == VT_STR && (*bits & bit))
                memcpy(&old, at, sizeof(old));
        if (v.tag != e->prof_tags[i] || (v.tag == VT_ENUM && (v.e < INT16_MIN || v.e > INT16_MAX))) {
                *bits &= (uint8_t)~bit;
                pstr_free(e, old);
                return;
        }
        *bits |= bit;
        switch (v.tag) {
        case VT_STR: {
                PStr *ps = pool_alloc(&e->pool, sizeof(PStr) + v.s.len);
                ps->len = v.s.len;
                if (v.s.len)
                        memcpy(ps->s, v.s.p, v.s.len);
                memcpy(at, &ps, sizeof(ps));
                break;
        }
        case VT_ENUM: {
                int16_t en = (int16_t)v.e;
                memcpy(at, &en, 2);
                break;
        }
        case VT_BOOL: *at = v.b; break;
        case VT_NUM: memcpy(at, &v.n, 8); break;
        default: memcpy(at, &v.ms, 8); break;
        }
        pstr_free(e, old);
}

/* Release everything an enterprise holds but its key: back to "never seen". */
void engine_ent_clear(Engine *e, Ent *x)
{
        for (uint32_t i = 0; i < e->nprof; i++) {
                engine_prof_set(e, x, i, value_null());
        }
        memset(ent_static(e, x), 0, ent_static_words(e) * sizeof(uint64_t));
        for (uint32_t i = 0; i < x->r->nc; i++)
                intern_put(&e->in, x->r->c[i].event_id);
        pool_free(&e->pool, x->r->c, ENT_ARR(Contrib, x->r->cc));
        pool_free(&e->pool, x->r->f, ENT_ARR(FlagState, x->r->cf));
        pool_free(&e->pool, x->r->o, sizeof(OffState));
        if (x->r != &rare_none)
                pool_free(&e->pool, ent_rare(e, x), sizeof(EntRare));
        x->r = &rare_none;
        for (uint32_t i = 0; i < x->nks; i++)
                engine_ks_free(e, &x->ks[i]);
        pool_free(&e->pool, x->ks, ENT_ARR(KeyState, x->cks));
        for (uint32_t i = 0; i < x->nw; i++)
                window_free(e, &x->w[i]);
        pool_free(&e->pool, x->w, ENT_ARR(Win, x->cw));
        x->ks = NULL;
        x->w = NULL;
        x->nks = x->cks = x->nw = x->cw = 0;
        x->nrecent = x->recent_pos = 0;
        x->grade_clean = 0;
        x->held = x->grade = x->mode = -1;
        x->per_year = 0;
        x->last_time = TIME_UNSET;
        x->tm_at = TIME_UNSET; /* a live entry is skipped when it comes up */
}

static void ent_free(Engine *e, Ent *x)
{
        if (x->compact) {
                compact_ent_free(e, x);
                return;
        }
        engine_ent_clear(e, x);
        pool_free(&e->pool, x, ent_size(e, ent_key(x)->len));
}

/* Remove from the table (backward-shift deletion) and free. */
void engine_ent_remove(Engine *e, Ent *x)
{
        tagtab_remove(e->tab, e->tabcap, x, ent_hash(x), e->tab_untagged, ent_hash);
        e->nents--;
        ent_free(e, x);
}

static Ent *ent_get(Engine *e, const char *k, uint32_t len)
{
        return ent_get_h(e, k, len, hash_fast(k, len));
}

Ent *engine_ent_get(Engine *e, const char *k, uint32_t len)
{
        return ent_get(e, k, len);
}

/* ---- timers: a min-heap ordered by (time, enterprise, kind, rule, key) ---- */

/* Keys in order, the enterprise as a whole (no key) first. */
static int ks_key_cmp(const KeyState *p, const KeyState *q)
{
        if (!p->keyed || !q->keyed)
                return p->keyed - q->keyed;
        return str_order(ks_key(p), ks_key(q));
}

static inline Ent *timer_ent(const Timer *t)
{
        return (Ent *)(t->ent & ~(uintptr_t)1);
}

bool engine_timer_less(const Timer *a, const Timer *b)
{
        if (a->time != b->time)
                return a->time < b->time;
        /* at one time, absent() checks come last: they wait for the events
         * of that time (the window (T - D, T] includes T) */
        if ((a->ent & 1) != (b->ent & 1))
                return b->ent & 1;
        return ent_key_cmp(ent_key(timer_ent(a)), ent_key(timer_ent(b))) < 0;
}

void timer_want(Engine *e, Ent *x, int64_t time, bool absent)
{
        if (x->tm_at != TIME_UNSET && (x->tm_at < time || (x->tm_at == time && x->tm_absent <= absent)))
                return;
        x->tm_at = time;
        x->tm_absent = absent;
        if (e->ntm == e->ctm) {
                e->ctm = e->ctm ? e->ctm + e->ctm / 2 : 1024;
                e->tm = xrealloc(e->tm, e->ctm * sizeof(Timer));
                util_advise_huge(e->tm, e->ctm * sizeof(Timer));
        }
        Timer t = {.time = time, .ent = (uintptr_t)x | (uintptr_t)absent};
        uint32_t i = e->ntm++;
        if (e->tm_bulk) { /* ordered once at the end (timers_heapify) */
                e->tm[i] = t;
                return;
        }
        while (i > 0) {
                uint32_t p = (i - 1) / 2;
                if (!engine_timer_less(&t, &e->tm[p]))
                        break;
                e->tm[i] = e->tm[p];
                i = p;
        }
        e->tm[i] = t;
}

/* t into the hole at i, moved down below its smaller children. */
static void timer_sift_down(Engine *e, uint32_t i, Timer t)
{
        for (;;) {
                uint32_t l = 2 * i + 1, r = l + 1, m = i;
                const Timer *mt = &t;
                if (l < e->ntm && engine_timer_less(&e->tm[l], mt)) {
                        m = l;
                        mt = &e->tm[l];
                }
                if (r < e->ntm && engine_timer_less(&e->tm[r], mt))
                        m = r;
                if (m == i)
                        break;
                e->tm[i] = e->tm[m];
                i = m;
        }
        e->tm[i] = t;
}

static Timer timer_pop(Engine *e)
{
        Timer top = e->tm[0];
        Timer last = e->tm[--e->ntm];
        if (e->ntm)
                timer_sift_down(e, 0, last);
        return top;
}

/* The entries appended in any order made a heap, bottom up: O(n)
 * comparisons where a push each is O(n log n), over a million
 * enterprises after a restore. */
static void timers_heapify(Engine *e)
{
        for (uint32_t i = e->ntm / 2; i-- > 0;)
                timer_sift_down(e, i, e->tm[i]);
}

/* ---- state helpers ---- */

/* Into *s field by field: a struct returned and copied whole was reloaded
 * as wide words right after narrow stores (a store-forwarding stall on
 * every rule evaluation). */
void engine_vmstate(Engine *e, Ent *ent, int64_t now, VmState *s)
{
        s->score = grade_score(e, ent, now);
        s->grade = ent->grade;
        s->mode = ent->mode;
        s->per_year = ent->per_year;
        s->flags = grade_live_flags(ent, now);
}

void engine_profile_fill(Engine *e, Ent *ent)
{
        for (uint32_t i = 0; i < e->nprof; i++)
                prof_load(e, ent, i, &e->profbuf[e->prof_slots[i]]);
        e->prof_ent = ent;
        e->prof_have = e->prof_all;
}

void engine_profile_need_some(Engine *e, Ent *ent, uint64_t mask)
{
        if (e->prof_ent != ent) {
                engine_profile_clear(e);
                e->prof_ent = ent;
        }
        for (uint64_t m = mask & ~e->prof_have; m; m &= m - 1) {
                uint32_t i = (uint32_t)__builtin_ctzll(m);
                prof_load(e, ent, i, &e->profbuf[e->prof_slots[i]]);
        }
        e->prof_have |= mask;
}

void engine_profile_clear(Engine *e)
{
        if (!e->prof_ent)
                return;
        e->prof_ent = NULL;
        if (e->prof_have == e->prof_all) {
                for (uint32_t i = 0; i < e->nprof; i++)
                        e->profbuf[e->prof_slots[i]] = value_null();
        } else {
                for (uint64_t m = e->prof_have; m; m &= m - 1)
                        e->profbuf[e->prof_slots[__builtin_ctzll(m)]] = value_null();
        }
        e->prof_have = 0;
}

static Snap *snap_key_only(Engine *e, const char *k, uint32_t len)
{
        Snap *s = pool_alloc(&e->pool, sizeof(Snap) + len);
        s->size = (uint32_t)(sizeof(Snap) + len);
        s->klen = len;
        s->idlen = SNAP_NONE;
        if (len)
                memcpy(s->data, k, len);
        return s;
}

void engine_ks_key(Engine *e, KeyState *ks, const char *k, uint32_t len)
{
        ks->keyed = 1;
        ks->khash = (uint32_t)hash_fast(k, len);
        ks->snap = snap_key_only(e, k, len);
}

void engine_snap_drop(Engine *e, KeyState *ks)
{
        Snap *s = ks->snap;
        if (!s)
                return;
        if (!ks->keyed) {
                pool_free(&e->pool, s, s->size);
                ks->snap = NULL;
                return;
        }
        if (s->idlen == SNAP_NONE)
                return;
        size_t n = sizeof(Snap) + s->klen;
        if (pool_size(n) != pool_size(s->size)) {
                ks->snap = snap_key_only(e, (const char *)s->data, s->klen);
                pool_free(&e->pool, s, s->size);
                return;
        }
        s->size = (uint32_t)n;
        s->idlen = SNAP_NONE;
}

/* hex digit values, 0xff for anything else (lowercase only: an id in
 * another form keeps its text) */
static const uint8_t hexdig[256] = {
        ['0'] = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
        [':' ... '`'] = 0xff,
        ['a'] = 10, 11, 12, 13, 14, 15,
        [0 ... '/'] = 0xff,
        ['g' ... 255] = 0xff,
};

/* A canonical lowercase UUID (8-4-4-4-12) into 16 bytes. */
bool uuid_pack(const char *s, uint32_t n, uint8_t out[16])
{
        if (n != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
                return false;
        static const uint8_t at[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
        uint8_t bad = 0;
        for (uint32_t k = 0; k < 16; k++) {
                uint8_t hi = hexdig[(uint8_t)s[at[k]]], lo = hexdig[(uint8_t)s[at[k] + 1]];
                bad |= (uint8_t)(hi | lo);
                out[k] = (uint8_t)(hi << 4 | lo);
        }
        return !(bad & 0xf0);
}

void uuid_text(const uint8_t in[16], char out[37])
{
        static const char hex[] = "0123456789abcdef";
        char *p = out;
        for (uint32_t k = 0; k < 16; k++) {
                if (k == 4 || k == 6 || k == 8 || k == 10)
                        *p++ = '-';
                *p++ = hex[in[k] >> 4];
                *p++ = hex[in[k] & 15];
        }
        *p = 0;
}

static size_t varint_len(uint32_t v)
{
        size_t n = 1;
        while (v >= 0x80) {
                v >>= 7;
                n++;
        }
        return n;
}

static uint8_t *varint_put(uint8_t *p, uint32_t v)
{
        while (v >= 0x80) {
                *p++ = (uint8_t)(v | 0x80);
                v >>= 7;
        }
        *p++ = (uint8_t)v;
        return p;
}

static const uint8_t *varint_get(const uint8_t *p, uint32_t *v)
{
        uint32_t x = 0;
        for (uint32_t sh = 0;; sh += 7) {
                uint8_t b = *p++;
                x |= (uint32_t)(b & 0x7f) << sh;
                if (!(b & 0x80))
                        break;
        }
        *v = x;
        return p;
}

static bool is_key(const KeyState *ks, const Value *v)
{
        if (v->tag != VT_STR || !ks->keyed)
                return false;
        Str k = ks_key(ks);
        return k.len == v->s.len && (v->s.p == k.p || memcmp(v->s.p, k.p, k.len) == 0);
}

void engine_snap_set(Engine *e, KeyState *ks, const RuleInfo *ri, const Value *ev, bool by_slot, const char *id,
                     uint32_t idlen)
{
        uint8_t uuid[16];
        bool bin = uuid_pack(id, idlen, uuid);
        uint32_t klen = ks->keyed ? ks->snap->klen : 0;
        size_t n = sizeof(Snap) + klen + (bin ? 16 : idlen);
        uint64_t keyed = 0;     /* bit i: value i is the key (the first 64) */
        for (uint32_t i = 0; i < ri->nsnap; i++) {
                const Value *v = &ev[by_slot ? ri->snap_slots[i] : i];
                n += 1;
                switch (v->tag) {
                case VT_NULL: break;
                case VT_BOOL: n += 1; break;
                case VT_ENUM: n += 4; break;
                case VT_STR:
                        if (i < 64 && is_key(ks, v))
                                keyed |= 1ull << i;
                        else
                                n += varint_len(v->s.len) + v->s.len;
                        break;
                default: n += 8; break;
                }
        }
        Snap *s = ks->snap, *old = NULL;
        if (!s || pool_size(s->size) != pool_size(n)) {
                old = s;
                s = pool_alloc(&e->pool, n);
                if (klen)
                        memcpy(s->data, old->data, klen);
                s->klen = klen;
        }
        s->size = (uint32_t)n;
        s->idlen = bin ? SNAP_UUID : idlen;
        uint8_t *p = s->data + klen;
        for (uint32_t i = 0; i < ri->nsnap; i++) {
                const Value *v = &ev[by_slot ? ri->snap_slots[i] : i];
                if (i < 64 && (keyed >> i & 1)) {
                        *p++ = SNAP_KEY;
                        continue;
                }
                *p++ = v->tag;
                switch (v->tag) {
                case VT_NULL: break;
                case VT_BOOL: *p++ = v->b; break;
                case VT_ENUM: memcpy(p, &v->e, 4); p += 4; break;
                case VT_NUM: memcpy(p, &v->n, 8); p += 8; break;
                case VT_STR:
                        p = varint_put(p, v->s.len);
                        if (v->s.len)
                                memcpy(p, v->s.p, v->s.len);
                        p += v->s.len;
                        break;
                default: memcpy(p, &v->ms, 8); p += 8; break;
                }
        }
        if (bin)
                memcpy(p, uuid, 16);
        else if (idlen)
                memcpy(p, id, idlen);
        if (old)
                pool_free(&e->pool, old, old->size);
        ks->snap = s;
}

/* The values, decoded; returns where the id starts. */
static const uint8_t *snap_decode(const KeyState *ks, const RuleInfo *ri, Value *out)
{
        const Snap *s = ks->snap;
        const uint8_t *p = s->data + s->klen;
        for (uint32_t i = 0; i < ri->nsnap; i++) {
                uint8_t tag = *p++;
                Value v = {.tag = tag};
                switch (tag) {
                case SNAP_KEY: v = value_str((const char *)s->data, s->klen); break;
                case VT_NULL: break;
                case VT_BOOL: v.b = *p++ != 0; break;
                case VT_ENUM: memcpy(&v.e, p, 4); p += 4; break;
                case VT_NUM: memcpy(&v.n, p, 8); p += 8; break;
                case VT_STR: {
                        uint32_t len;
                        p = varint_get(p, &len);
                        v.s = (Str){(const char *)p, len};
                        p += len;
                        break;
                }
                default: memcpy(&v.ms, p, 8); p += 8; break;
                }
                out[i] = v;
        }
        return p;
}

void engine_snap_values(const KeyState *ks, const RuleInfo *ri, Value *out)
{
        if (ks_has_snap(ks)) {
                snap_decode(ks, ri, out);
                return;
        }
        for (uint32_t i = 0; i < ri->nsnap; i++)
                out[i] = value_null();
}

const char *engine_snap_id(const KeyState *ks, char buf[40], size_t *len)
{
        const Snap *s = ks->snap;
        if (!ks_has_snap(ks)) {
                *len = 0;
                return "";
        }
        if (s->idlen == SNAP_UUID) {
                uuid_text(s->data + s->size - sizeof(Snap) - 16, buf);
                *len = 36;
                return buf;
        }
        *len = s->idlen;
        return (const char *)s->data + s->size - sizeof(Snap) - s->idlen;
}

static void snapshot(Engine *e, KeyState *ks, const RuleInfo *ri, const Value *ev, const Str *id)
{
        engine_snap_set(e, ks, ri, ev, true, id->p, id->len);
}

/* The snapshot laid out by slot in e->snapbuf, for a timer's evaluation. */
static const Value *snapshot_lay(Engine *e, const KeyState *ks, const RuleInfo *ri)
{
        engine_snap_values(ks, ri, e->snapvals);
        for (uint32_t i = 0; i < ri->nsnap; i++)
                e->snapbuf[ri->snap_slots[i]] = e->snapvals[i];
        return e->snapbuf;
}

static void flag_set(Engine *e, Ent *ent, uint32_t flag, int64_t until, bool from_profile)
{
        ent->grade_clean = 0;
        for (uint32_t i = 0; i < ent->r->nf; i++)
                if (ent->r->f[i].flag == flag) {
                        if (until > ent->r->f[i].until) {
                                ent->r->f[i].until = until;
                                ent->r->f[i].from_profile = from_profile && until == TIME_FOREVER;
                        }
                        goto timer;
                }
        EntRare *rr = ent_rare(e, ent);
        if (rr->nf == rr->cf) {
                rr->f = ent_grow(e, rr->f, &rr->cf, sizeof(FlagState));
        }
        rr->f[rr->nf++] = (FlagState){.flag = (uint16_t)flag, .until = until,
                                      .from_profile = from_profile && until == TIME_FOREVER};
timer:
        if (until != TIME_FOREVER)
                timer_want(e, ent, until, false);
}

/* The points of a rule whose score: is an expression, on the event (or
 * snapshot) ev; false: null, no contribution. */
static bool score_value(Engine *e, Ent *ent, const Rule *r, const Value *ev, int64_t t, double *out)
{
        AggCtx ac = {e, ent};
        VmState st;
        engine_profile_need(e, ent);
        engine_vmstate(e, ent, t, &st);
        VmFrame f = {.event = ev, .cur = ev, .profile = e->profbuf, .state = &st, .now = t, .agg = window_agg,
                     .agg_ud = &ac, .scratch = e->vmscratch, .scratch_size = sizeof(e->vmscratch)};
        Value v;
        if (vm_run(e->rs, r->score_prog, &f, &v) != VM_OK || v.tag != VT_NUM || v.n != v.n)
                return false;
        *out = v.n;
        return true;
}

/* The official model's part of a firing: the dynamic evaluation (the
 * latest replaces the last, capped) and the grade steps within the cycle
 * (capped); fire() does the rest (points, clears:, flags). */
static void fire_official(Engine *e, Ent *ent, const Rule *r, const Value *ev, int64_t t)
{
        const Official *of = &e->rs->grading.official;
        if (r->part == PART_DYNAMIC) {
                double v = r->score;
                if (r->score_expr && !score_value(e, ent, r, ev, t, &v))
                        return;
                if (r->max_score > 0 && v > r->max_score)
                        v = r->max_score;
                if (v > of->dynamic_max)
                        v = of->dynamic_max;
                OffState *o = ent_off(e, ent);
                o->dyn = v < 0 ? 0 : v;
                o->dyn_time = t;
                o->dyn_rule = (int16_t)r->index;
        }
        if (r->raise || r->lower) {
                grade_cycle_roll(e, ent, t);
                OffState *o = ent_off(e, ent);
                int8_t before = (int8_t)(o->raise - o->lower);
                if (r->raise)
                        o->raise = (int8_t)(o->raise + r->raise > of->max_raise ? of->max_raise : o->raise + r->raise);
                else
                        o->lower = (int8_t)(o->lower + r->lower > of->max_lower ? of->max_lower : o->lower + r->lower);
                /* the basis is of the latest step taken: one the cap
                 * swallowed moves nothing */
                if (o->raise - o->lower != before) {
                        o->basis = (int16_t)r->index;
                        o->basis_time = t;
                }
        }
}

/* A rule fires: cooldown, points (capped), flags, the alert. */
static void fire(Engine *e, Ent *ent, const Rule *r, KeyState *ks, int64_t t, bool timer,
                 const Value *ev, const char *evid, size_t evlen)
{
        ent->grade_clean = 0;
        if (r->cooldown_ms && ks) {
                if (ks->last_fire != TIME_UNSET && t < time_add_sat(ks->last_fire, r->cooldown_ms))
                        return;
                ks->last_fire = t;
        }
        double delta = 0;
        bool shadow = r->status == RULE_SHADOW;
        double points = r->score;
        bool scores = r->score != 0;
        if (__builtin_expect(r->part == PART_DYNAMIC || r->raise || r->lower || r->score_expr, 0)) {
                if (!shadow)
                        fire_official(e, ent, r, ev, t);
                if (r->part == PART_DYNAMIC)
                        scores = false; /* the evaluation is not index points */
                else if (r->score_expr)
                        scores = !shadow && score_value(e, ent, r, ev, t, &points) && points != 0;
        }
        if (!shadow && scores && r->replaces && ent->r->nc) {
                /* the latest of its kind: the rule's earlier contributions go */
                EntRare *rr = ent_rare(e, ent);
                uint32_t k = 0;
                for (uint32_t i = 0; i < rr->nc; i++) {
                        if (rr->c[i].rule == r->index) {
                                intern_put(&e->in, rr->c[i].event_id);
                                continue;
                        }
                        rr->c[k++] = rr->c[i];
                }
                rr->nc = (uint16_t)k;
        }
        if (!shadow && scores) {
                delta = points;
                if (r->max_score > 0) {
                        double live = 0;
                        for (uint32_t i = 0; i < ent->r->nc; i++)
                                if (ent->r->c[i].rule == r->index && ent->r->c[i].expires > t)
                                        live += ent->r->c[i].points;
                        if (live + delta > r->max_score)
                                delta = r->max_score - live > 0 ? r->max_score - live : 0;
                }
                if (delta != 0) {
                        EntRare *rr = ent_rare(e, ent);
                        if (rr->nc == rr->cc) {
                                rr->c = ent_grow(e, rr->c, &rr->cc, sizeof(Contrib));
                        }
                        Contrib *c = &rr->c[rr->nc++];
                        c->rule = (uint16_t)r->index;
                        c->points = delta;
                        c->since = t;
                        c->expires = r->expires_ms ? time_add_sat(t, r->expires_ms) : TIME_FOREVER;
                        c->rectify = r->rectify_ms ? time_add_sat(t, r->rectify_ms) : TIME_UNSET;
                        c->event_id = intern_get(&e->in, evid, (uint32_t)evlen);
                        if (c->expires != TIME_FOREVER)
                                timer_want(e, ent, c->expires, false);
                }
        }
        if (!shadow && r->nclears && ent->r->nf) {
                /* an answered lead: its flags go before this rule sets any */
                EntRare *rr = ent_rare(e, ent);
                uint32_t k = 0;
                for (uint32_t i = 0; i < rr->nf; i++) {
                        bool drop = false;
                        for (uint32_t c = 0; c < r->nclears; c++)
                                drop |= rr->f[i].flag == r->clears[c];
                        if (!drop)
                                rr->f[k++] = rr->f[i];
                }
                rr->nf = (uint16_t)k;
        }
        if (!shadow)
                for (uint32_t i = 0; i < r->nflags; i++)
                        flag_set(e, ent, r->flags[i].flag,
                                 r->flags[i].lifetime_ms ? time_add_sat(t, r->flags[i].lifetime_ms) : TIME_FOREVER, false);
        Str key = ks ? ks_key(ks) : (Str){NULL, 0};
        out_alert(e, ent, r, t, timer, ks && ks->keyed ? &key : NULL, ev, evid, evlen, delta);
}

static VmFrame frame_for(Engine *e, Ent *ent, const Value *ev, int64_t now, VmState *st, void *aggud)
{
        engine_vmstate(e, ent, now, st);
        VmFrame f = {.event = ev, .cur = ev, .profile = e->profbuf, .state = st, .now = now,
                     .agg = window_agg, .agg_ud = aggud, .scratch = e->vmscratch,
                     .scratch_size = sizeof(e->vmscratch)};
        return f;
}

/* The per: value of ev as bytes (in e->keybuf for non-strings). */
static Str key_bytes(Engine *e, const Rule *r, const Value *ev)
{
        const Value *v = &ev[r->per_slot];
        if (v->tag == VT_STR)
                return v->s;
        if (v->tag == VT_NULL)
                return (Str){"", 0};
        e->keybuf.len = 0;
        out_value(e, &e->keybuf, v, (uint32_t)r->per_slot, false);
        return (Str){e->keybuf.p ? e->keybuf.p : "", (uint32_t)e->keybuf.len};
}

/* The low bits of the hash of key k, the per: value of ev (the applied
 * event's is worked out once for all its rules). */
static uint32_t key_hash(Engine *e, const Rule *r, const Value *ev, Str k)
{
        if (ev == e->slots && e->kh_event == e->applying && e->kh_slot == r->per_slot)
                return e->kh_hash;
        uint32_t h = (uint32_t)hash_fast(k.p, k.len);
        if (ev == e->slots) {
                e->kh_event = e->applying;
                e->kh_slot = r->per_slot;
                e->kh_hash = h;
        }
        return h;
}

/* The rule's state for the event's key, without allocating. */
static KeyState *keystate_lookup(Engine *e, Ent *ent, const Rule *r, const Value *ev)
{
        if (r->per_slot < 0) {
                for (uint32_t i = 0; i < ent->nks; i++)
                        if (ent->ks[i].rule == r->index && !ent->ks[i].keyed)
                                return &ent->ks[i];
                return NULL;
        }
        Str k = key_bytes(e, r, ev);
        uint32_t h = key_hash(e, r, ev, k);
        for (uint32_t i = 0; i < ent->nks; i++) {
                KeyState *ks = &ent->ks[i];
                if (ks->rule == r->index && ks->khash == h && ks->keyed && ks->snap->klen == k.len &&
                    memcmp(ks->snap->data, k.p, k.len) == 0)
                        return ks;
        }
        return NULL;
}

/* A new state for the event's key (which keystate_lookup did not find),
 * NULL past cfg.max_keys for the rule. */
static KeyState *keystate_make(Engine *e, Ent *ent, const Rule *r, const Value *ev)
{
        uint32_t nrule = 0;
        for (uint32_t i = 0; i < ent->nks; i++)
                nrule += ent->ks[i].rule == r->index;
        if (nrule >= e->cfg.max_keys)
                return NULL;
        if (ent->nks == ent->cks) {
                /* pending timers hold hints into the old array: they revalidate by (rule, key) */
                ent->ks = ent_grow(e, ent->ks, &ent->cks, sizeof(KeyState));
        }
        KeyState *ks = &ent->ks[ent->nks++];
        *ks = (KeyState){.rule = (uint16_t)r->index, .at = TIME_UNSET, .last_fire = TIME_UNSET};
        if (r->per_slot >= 0) {
                Str k = key_bytes(e, r, ev);
                engine_ks_key(e, ks, k.p, k.len);
        }
        return ks;
}

/* A key with nothing left to remember goes: state stays proportional to
 * what is in progress, not to every key ever seen. */
static void keystate_drop(Engine *e, Ent *ent, KeyState *ks)
{
        engine_ks_free(e, ks);
        *ks = ent->ks[--ent->nks];
}

/* A condition that reads only the event (no state, profile or aggregate) on ev at t. */
static bool event_test(Engine *e, uint32_t prog, const Value *ev, int64_t t)
{
        VmFrame f = {.event = ev, .cur = ev, .now = t, .scratch = e->vmscratch, .scratch_size = sizeof(e->vmscratch)};
        return vm_test(e->rs, prog, &f);
}

/* The key's cooldown still runs at t: its state must stay. */
static bool cooldown_running(const Rule *r, const KeyState *ks, int64_t t)
{
        return r->cooldown_ms && ks->last_fire != TIME_UNSET && t < time_add_sat(ks->last_fire, r->cooldown_ms);
}

static void rule_on_event(Engine *e, Ent *ent, const Rule *r, const Value *ev, int64_t t,
                          const Str *id, AggCtx *ac)
{
        RuleInfo *ri = &e->ri[r->index];
        KeyState *ks = NULL;
        if (r->timer_driven) {
                if (r->arm_when != PROG_NONE) {
                        /* the parts of when that read only the event: false,
                         * the timer would find when false on this event */
                        if (!event_test(e, r->arm_when, ev, t)) {
                                if (!(ks = keystate_lookup(e, ent, r, ev)))
                                        return;
                                if (!cooldown_running(r, ks, t)) {
                                        keystate_drop(e, ent, ks);
                                } else {
                                        ks->armed = 0;
                                        ks->at = TIME_UNSET;
                                        engine_snap_drop(e, ks);
                                }
                                return;
                        }
                }
                /* absent(): act D after the last event of the key */
                if (!(ks = keystate_lookup(e, ent, r, ev)) && !(ks = keystate_make(e, ent, r, ev))) {
                        e->st.rejects[RJ_OVER_LIMIT]++;
                        return;
                }
                snapshot(e, ks, ri, ev, id);
                ks->at = time_add_sat(t, ri->absent_ms);
                ks->armed = 1;
                timer_want(e, ent, ks->at, true);
                return;
        }
        bool cond;
        if (ri->reads_profile) /* the condition, or the message when it fires */
                engine_profile_need(e, ent);
        if (ri->event_only && ev == e->slots) {
                /* read only the event: the same code as an earlier rule of this
                 * event answers the same (over_limit of two cold-chain rules) */
                uint32_t k = ri->same_when;
                if (e->when_epoch[k] == e->applying) {
                        cond = e->when_val[k];
                } else {
                        cond = event_test(e, r->when, ev, t);
                        e->when_epoch[k] = e->applying;
                        e->when_val[k] = cond;
                }
        } else {
                VmState st;
                VmFrame f = frame_for(e, ent, ev, t, &st, ac);
                cond = vm_test(e->rs, r->when, &f);
        }
        if (r->for_ms) {
                ks = keystate_lookup(e, ent, r, ev);
                if (!cond) {
                        if (ks && !cooldown_running(r, ks, t))
                                keystate_drop(e, ent, ks);
                        else if (ks) {
                                ks->at = TIME_UNSET;
                                ks->armed = 0;
                                ks->fired = 0;
                        }
                        return;
                }
                if (!ks && !(ks = keystate_make(e, ent, r, ev))) {
                        e->st.rejects[RJ_OVER_LIMIT]++;
                        return;
                }
                snapshot(e, ks, ri, ev, id);
                if (ks->at == TIME_UNSET) {
                        ks->at = t;
                        ks->fired = 0;
                        ks->armed = 1;
                        timer_want(e, ent, time_add_sat(t, r->for_ms), false);
                }
                if (!ks->fired && time_sub_sat(t, ks->at) >= r->for_ms) {
                        ks->fired = 1;
                        fire(e, ent, r, ks, t, false, ev, id->p, id->len);
                }
                return;
        }
        if (!cond)
                return;
        if (r->cooldown_ms && !(ks = keystate_lookup(e, ent, r, ev)) && !(ks = keystate_make(e, ent, r, ev))) {
                e->st.rejects[RJ_OVER_LIMIT]++;
                return;
        }
        fire(e, ent, r, ks, t, false, ev, id->p, id->len);
}

/* The points of static rule k (score: an expression) for x: its value
 * over x's kept profile, which the profile update that set the rule's bit
 * wrote, so the value is the update's and travels with the profile
 * (record, undo log, restore).  The expression reads only the profile
 * event's fields (the loader refuses state, clock and aggregates); null
 * contributes nothing; max_score caps it.  Its own buffer: the evaluation
 * leaves profbuf (and whose profile it holds) alone. */
double engine_static_expr(const Engine *ce, const Ent *x, uint32_t k)
{
        Engine *e = (Engine *)(uintptr_t)ce;    /* only the scratch buffers are written */
        const Rule *r = &e->rs->rules[e->static_rules[k]];
        for (uint32_t j = 0; j < e->static_npi[k]; j++) {
                uint32_t pi = e->static_pi[k][j];
                prof_load(e, x, pi, &e->sexprbuf[e->prof_slots[pi]]);
        }
        VmState st = {0};
        char scratch[512];      /* not vmscratch: a caller's evaluation may hold strings there */
        VmFrame f = {.event = e->sexprbuf, .cur = e->sexprbuf, .profile = e->sexprbuf, .state = &st,
                     .now = TIME_UNSET, .scratch = scratch, .scratch_size = sizeof(scratch)};
        Value v;
        double out = 0;
        if (vm_run(e->rs, r->score_prog, &f, &v) == VM_OK && v.tag == VT_NUM && v.n == v.n)
                out = r->max_score > 0 && v.n > r->max_score ? r->max_score : v.n;
        for (uint32_t j = 0; j < e->static_npi[k]; j++)
                e->sexprbuf[e->prof_slots[e->static_pi[k][j]]] = value_null();
        return out;
}

static void profile_update(Engine *e, Ent *ent, const Value *ev, int64_t t, const Str *id, AggCtx *ac)
{
        ent->grade_clean = 0;
        const Schema *s = &e->rs->schema;
        const EventType *pt = &s->types[s->profile_type];
        (void)pt;
        for (uint32_t i = 0; i < e->nprof; i++)
                engine_prof_set(e, ent, i, ev[e->prof_slots[i]]);
        engine_profile_fill(e, ent);
        /* flags a profile rule set without a lifetime hold while it matches:
         * drop them, the rules below set them again if they still match */
        if (ent->r->nf) {
                EntRare *rr = ent_rare(e, ent);
                uint32_t kept = 0;
                for (uint32_t i = 0; i < rr->nf; i++)
                        if (!rr->f[i].from_profile)
                                rr->f[kept++] = rr->f[i];
                rr->nf = (uint16_t)kept;
        }
        for (uint32_t k = 0; k < e->nstatic; k++) {
                const Rule *r = &e->rs->rules[e->static_rules[k]];
                VmState st;
                VmFrame f = frame_for(e, ent, ev, t, &st, ac);
                bool cond = vm_test(e->rs, r->when, &f);
                bool was = ent_static(e, ent)[k / 64] & (1ull << (k % 64));
                if (cond) {
                        ent_static(e, ent)[k / 64] |= 1ull << (k % 64);
                        if (r->status != RULE_SHADOW) {
                                for (uint32_t i = 0; i < r->nflags; i++)
                                        flag_set(e, ent, r->flags[i].flag,
                                                 r->flags[i].lifetime_ms ? time_add_sat(t, r->flags[i].lifetime_ms) : TIME_FOREVER,
                                                 true);
                        }
                        /* a profile rule's points show in the adjustment; it
                         * alerts (once, when it starts to match) only when it
                         * asks for something: actions or flags */
                        if (!was && (r->nactions || r->nflags))
                                out_alert(e, ent, r, t, false, NULL, ev, id->p, id->len,
                                          ent_static_points(e, ent, k));
                } else {
                        ent_static(e, ent)[k / 64] &= ~(1ull << (k % 64));
                }
        }
}

static bool duplicate(Engine *e, Ent *ent, const Str *id)
{
        if (!e->cfg.recent_ids)
                return false;
        uint64_t h = hash64(id->p, id->len, HASH64_INIT);
        for (uint32_t i = 0; i < ent->nrecent; i++)
                if (ent_recent(e, ent)[i] == h)
                        return true;
        ent_recent(e, ent)[ent->recent_pos] = h;
        ent->recent_pos = (uint16_t)((ent->recent_pos + 1) % e->cfg.recent_ids);
        if (ent->nrecent < e->cfg.recent_ids)
                ent->nrecent++;
        return false;
}

static void dead_letter(Engine *e, const char *bytes, size_t len, const SourcePos *src, int reason,
                        const char *detail, const Str *ent)
{
        e->st.rejects[reason]++;
        OutMeta m = {.reason = engine_reject_names[reason], .detail = detail, .source = src};
        if (ent) {
                m.enterprise = ent->p;
                m.enterprise_len = ent->len;
        }
        if (e->emit)
                e->emit(e->ud, OUT_DEADLETTER, bytes, len, &m);
}

static void fire_timers(Engine *e, int64_t upto, bool final);

/* Apply one decoded event (its time is not behind anything applied). */
/* ent_hash: the enterprise key's hash when already taken (a hinted
 * event), else NULL */
static void apply(Engine *e, const DecodedEvent *ev, const uint64_t *ent_hash, const char *bytes, size_t len,
                  const SourcePos *src)
{
        int64_t t = ev->time_ms;
        fire_timers(e, t, false);
        /* a hinted event's hash was taken when it was decoded ahead */
        Ent *ent = ent_hash ? ent_get_h(e, ev->enterprise.p, ev->enterprise.len, *ent_hash)
                            : ent_get(e, ev->enterprise.p, ev->enterprise.len);
        if (!ent) {
                char d[160];
                if (e->refused == 2) {
                        e->st.refused_budget++;
                        snprintf(d, sizeof(d), "the state budget (limits.max_state_bytes, %llu bytes) is reached",
                                 (unsigned long long)e->budget);
                } else {
                        snprintf(d, sizeof(d), "the enterprise limit (max_enterprises) is reached");
                }
                dead_letter(e, bytes, len, src, RJ_OVER_LIMIT, d, &ev->enterprise);
                return;
        }
        state_touch(e, ent);
        if (duplicate(e, ent, &ev->id)) {
                if (src && src->replay) {
                        /* the restored state holds it already: nothing to do */
                        e->st.replayed++;
                        return;
                }
                char d[160];
                snprintf(d, sizeof(d), "event id %.*s was already applied", ev->id.len > 100 ? 100 : (int)ev->id.len, ev->id.p);
                dead_letter(e, bytes, len, src, RJ_DUPLICATE, d, &ev->enterprise);
                return;
        }
        e->st.events_applied++;
        e->applying++;
        e->st.by_type[ev->type]++;
        ent->last_time = t;
        AggCtx ac = {e, ent};
        const Schema *s = &e->rs->schema;
        if ((int32_t)ev->type == s->profile_type) {
                profile_update(e, ent, e->slots, t, &ev->id, &ac);
                grade_update(e, ent, t, CAUSE_PROFILE, ev->id.p, ev->id.len);
                engine_profile_clear(e);
                return;
        }
        if (e->naggs_by_type[ev->type]) {
                VmState st;
                VmFrame f = frame_for(e, ent, e->slots, t, &st, &ac);
                window_insert(e, ent, ev->type, e->slots, t, &f);
        }
        for (uint32_t i = 0; i < e->nby_type[ev->type]; i++)
                rule_on_event(e, ent, &e->rs->rules[e->by_type[ev->type][i]], e->slots, t, &ev->id, &ac);
        grade_update(e, ent, t, CAUSE_EVENT, ev->id.p, ev->id.len);
        engine_profile_clear(e);
}

/* The timer entry of x: its earliest item due after (done, done_absent),
 * what the entry that just acted covered (TIME_UNSET: nothing yet); an
 * item left due by then (a contribution that no regrade prunes, without
 * grade bands) is not come back to. */
int64_t engine_timer_next(Engine *e, const Ent *x, int64_t done, bool done_absent, bool *ret_absent)
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
        int64_t dw = time_add_sat(x->r->below_since, e->rs->grading.dwell_ms);
        if (x->r->below_since != TIME_UNSET && dw < at && dw > after)
                at = dw;
        if (x->r->o && x->r->o->cycle != TIME_UNSET && e->rs->grading.official.declared) {
                /* the next cycle's assessment, with or without events */
                int64_t nc = grade_cycle_next(&e->rs->grading.official, x->r->o->cycle);
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
        *ret_absent = absent;
        return at == TIME_FOREVER ? TIME_UNSET : at;
}

static void timer_schedule(Engine *e, Ent *x, int64_t done, bool done_absent)
{
        bool absent;
        int64_t at = engine_timer_next(e, x, done, done_absent, &absent);
        if (at != TIME_UNSET)
                timer_want(e, x, at, absent);
}

static int due_cmp(const void *a, const void *b, void *ud)
{
        const Ent *x = ud;
        const KeyState *p = &x->ks[*(const uint32_t *)a], *q = &x->ks[*(const uint32_t *)b];
        if (p->rule != q->rule)
                return p->rule < q->rule ? -1 : 1;
        return ks_key_cmp(p, q);
}

/* A for: or absent() key due by now acts: the for: rule fires unless it
 * did in this episode; the absent() rule fires if its condition holds on
 * the key's last event. */
static void key_act(Engine *e, Ent *ent, KeyState *ks, int64_t now)
{
        AggCtx ac = {e, ent};
        const Rule *r = &e->rs->rules[ks->rule];
        const RuleInfo *ri = &e->ri[ks->rule];
        const Value *snap = snapshot_lay(e, ks, ri);
        size_t idlen;
        char idbuf[40];
        const char *id = engine_snap_id(ks, idbuf, &idlen);
        engine_profile_fill(e, ent);
        ks->armed = 0;
        if (!r->timer_driven) {
                if (ks->at != TIME_UNSET && !ks->fired) {
                        ks->fired = 1;
                        fire(e, ent, r, ks, now, true, snap, id, idlen);
                        grade_update(e, ent, now, CAUSE_TIMER, id, idlen);
                }
        } else {
                VmState st;
                VmFrame f = frame_for(e, ent, snap, now, &st, &ac);
                if (vm_test(e->rs, r->when, &f)) {
                        fire(e, ent, r, ks, now, true, snap, id, idlen);
                        grade_update(e, ent, now, CAUSE_TIMER, id, idlen);
                }
        }
        engine_profile_clear(e);
}

/* x's timer entry at (now, absent) came up: what is due by now acts, in
 * the order expiries, dwell, then the for: (or absent()) keys by rule and
 * key; then the entry moves to the next earliest item. */
static void timer_act(Engine *e, Ent *x, int64_t now, bool absent)
{
        x->tm_at = TIME_UNSET;
        state_touch(e, x);
        e->st.timers_fired++;
        if (!absent) {
                const OffState *o = x->r->o;
                if (o && o->cycle != TIME_UNSET && e->rs->grading.official.declared &&
                    grade_cycle_next(&e->rs->grading.official, o->cycle) <= now && x->grade >= 0) {
                        engine_profile_fill(e, x);
                        grade_update(e, x, now, CAUSE_CYCLE, NULL, 0);
                        engine_profile_clear(e);
                }
                bool expired = false;
                for (uint32_t k = 0; k < x->r->nc && !expired; k++)
                        expired = x->r->c[k].expires <= now;
                for (uint32_t k = 0; k < x->r->nf && !expired; k++)
                        expired = x->r->f[k].until <= now;
                if (expired) {
                        engine_profile_fill(e, x);
                        grade_update(e, x, now, CAUSE_EXPIRY, NULL, 0);
                        engine_profile_clear(e);
                }
                if (x->r->below_since != TIME_UNSET && time_add_sat(x->r->below_since, e->rs->grading.dwell_ms) <= now) {
                        engine_profile_fill(e, x);
                        grade_update(e, x, now, CAUSE_DWELL, NULL, 0);
                        engine_profile_clear(e);
                }
        }
        uint32_t n = 0;
        for (uint32_t k = 0; k < x->nks; k++) {
                const KeyState *ks = &x->ks[k];
                int64_t due = ks_due(e, ks);
                if (due == TIME_UNSET || due > now || e->rs->rules[ks->rule].timer_driven != absent)
                        continue;
                if (n == e->cdue) {
                        e->cdue = e->cdue ? 2 * e->cdue : 16;
                        e->due = xrealloc(e->due, e->cdue * sizeof(uint32_t));
                }
                e->due[n++] = k;
        }
        if (n > 1)
                qsort_r(e->due, n, sizeof(uint32_t), due_cmp, x);
        /* acting fires rules and regrades: the key states stay where they are */
        for (uint32_t i = 0; i < n; i++)
                key_act(e, x, &x->ks[e->due[i]], now);
        timer_schedule(e, x, now, absent);
}

/* Fire the timers due by upto.  An absent() check at exactly upto waits
 * unless final: an event at upto may still come and be in its window. */
static void fire_timers(Engine *e, int64_t upto, bool final)
{
        while (e->ntm && (e->tm[0].time < upto || (e->tm[0].time == upto && (final || !(e->tm[0].ent & 1))))) {
                Timer tm = timer_pop(e);
                Ent *x = timer_ent(&tm);
                bool absent = tm.ent & 1;
                if (x->tm_at != tm.time || x->tm_absent != absent)
                        continue;
                if (x->compact) /* its entry came up: acted on at once, no entry pushed */
                        x = compact_expand(e, engine_ent_slot(e, x), x, false);
                timer_act(e, x, tm.time, absent);
        }
}

/* ---- holding events for the grace ---- */

static void held_push(Engine *e, const DecodedEvent *ev, const char *bytes, size_t len, const SourcePos *src)
{
        if (e->nheld == e->cheld) {
                e->cheld = e->cheld ? e->cheld * 2 : 256;
                e->held = xrealloc(e->held, e->cheld * sizeof(Held));
        }
        Held h = {.time = ev->time_ms, .seq = e->seq++, .len = (uint32_t)len};
        h.bytes = xmalloc(len + 1);
        memcpy(h.bytes, bytes, len);
        if (src) {
                h.src = *src;
                h.topic = src->topic ? xstrdup(src->topic) : NULL;
                h.src.topic = h.topic;
                h.src.key = NULL; /* the message goes: a dead letter of it keys by enterprise */
                h.src.key_len = 0;
        }
        uint32_t i = e->nheld++;
        while (i > 0) {
                uint32_t p = (i - 1) / 2;
                if (held_cmp(&h, &e->held[p]) >= 0)
                        break;
                e->held[i] = e->held[p];
                i = p;
        }
        e->held[i] = h;
}

static Held held_pop(Engine *e)
{
        Held top = e->held[0];
        Held last = e->held[--e->nheld];
        uint32_t i = 0;
        for (;;) {
                uint32_t l = 2 * i + 1, r = l + 1, m = i;
                const Held *mh = &last;
                if (l < e->nheld && held_cmp(&e->held[l], mh) < 0) {
                        m = l;
                        mh = &e->held[l];
                }
                if (r < e->nheld && held_cmp(&e->held[r], mh) < 0)
                        m = r;
                if (m == i)
                        break;
                e->held[i] = e->held[m];
                i = m;
        }
        if (e->nheld)
                e->held[i] = last;
        return top;
}

static DecodeReason decode(Engine *e, const char *bytes, size_t len, DecodedEvent *ev)
{
        ev->slots = e->slots;
        ev->scratch = e->scratch;
        ev->scratch_size = e->cfg.max_event_bytes;
        return decoder_decode(e->dec, bytes, len, ev);
}

void engine_held_push(Engine *e, const char *bytes, size_t len, const SourcePos *src)
{
        DecodedEvent ev;
        if (decode(e, bytes, len, &ev) == DECODE_OK)
                held_push(e, &ev, bytes, len, src);
}

/* Timers are derived state: after a restore or an abort, make them again
 * from the enterprises. */
void engine_timers_rebuild(Engine *e)
{
        e->ntm = 0;
        e->tm_bulk = true;
        for (uint32_t i = 0; i < e->tabcap; i++) {
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
        e->tm_bulk = false;
        timers_heapify(e);
        compact_gone_free(e); /* no entry names them now */
}

static void release_upto(Engine *e, int64_t upto, bool final)
{
        while (e->nheld && e->held[0].time <= upto) {
                Held h = held_pop(e);
                DecodedEvent ev;
                if (decode(e, h.bytes, h.len, &ev) == DECODE_OK)
                        apply(e, &ev, NULL, h.bytes, h.len, &h.src);
                free(h.bytes);
                free(h.topic);
        }
        fire_timers(e, upto, final);
}

/* ---- decoding ahead (engine_prefetch) ---- */

/* The enterprise of a key hash, without comparing keys: for a prefetch,
 * where a match of the 16 tag bits that is not the key only loads lines
 * that are not needed. */
static Ent *ent_peek(const Engine *e, uint64_t h)
{
        if (e->tab_untagged)
                return NULL;
        uint32_t mask = e->tabcap - 1;
        for (uint32_t i = (uint32_t)h & mask; e->tab[i]; i = (i + 1) & mask)
                if (tag_match(e->tab[i], h))
                        return tag_ptr(e->tab[i], false);
        return NULL;
}

static void prefetch_lines(const void *p, size_t n)
{
        const char *c = (const char *)((uintptr_t)p & ~(uintptr_t)63), *end = (const char *)p + n;
        for (; c < end; c += 64)
                __builtin_prefetch(c);
}

void engine_prefetch(Engine *e, const char *bytes, size_t len)
{
        if (e->cfg.grace_ms)
                return;
        if (e->nahead == ENGINE_AHEAD) { /* the oldest hint was never pushed */
                e->ahead_first = (e->ahead_first + 1) % ENGINE_AHEAD;
                e->nahead--;
        }
        Ahead *a = &e->ahead[(e->ahead_first + e->nahead) % ENGINE_AHEAD];
        if (!a->dec) {
                DecoderLimits lim = {.max_bytes = e->cfg.max_event_bytes};
                if (decoder_new(&a->dec, &e->rs->schema, &lim) < 0)
                        return;
                a->slots = xcalloc(e->rs->schema.nslots ? e->rs->schema.nslots : 1, sizeof(Value));
                a->scratch = xmalloc(e->cfg.max_event_bytes);
        }
        a->bytes = bytes;
        a->len = len;
        a->ev.slots = a->slots;
        a->ev.scratch = a->scratch;
        a->ev.scratch_size = e->cfg.max_event_bytes;
        a->rc = decoder_decode(a->dec, bytes, len, &a->ev);
        if (a->rc == DECODE_OK) {
                a->h = hash_fast(a->ev.enterprise.p, a->ev.enterprise.len);
                __builtin_prefetch(&e->tab[(uint32_t)a->h & (e->tabcap - 1)]);
        }
        e->nahead++;
}

void engine_prefetch_reset(Engine *e)
{
        e->nahead = 0;
        e->ahead_first = 0;
}

/* The hinted entry for bytes, dropping the hints before it; NULL if none. */
static Ahead *ahead_take(Engine *e, const char *bytes, size_t len)
{
        for (uint32_t k = 0; k < e->nahead; k++) {
                uint32_t at = (e->ahead_first + k) % ENGINE_AHEAD;
                if (e->ahead[at].bytes == bytes && e->ahead[at].len == len) {
                        e->ahead_first = (at + 1) % ENGINE_AHEAD;
                        e->nahead -= k + 1;
                        return &e->ahead[at];
                }
        }
        return NULL;
}

/* One step for each hinted event still to come, deeper the closer it is.
 * Pushed 4 or more pushes from now: its table slot is loading (since
 * engine_prefetch).  3: the enterprise (struct, key, recent ids, static
 * bits, profile: a span that does not depend on the key's length, which
 * is not loaded yet).  2:
 * its arrays.  1: their key states' keys and snapshots, its windows'
 * ends.  Each level reads only what the level before loaded, one push
 * earlier, and only live state (the table as it is now). */
static void ahead_stage(Engine *e)
{
        size_t span = ent_size(e, 40); /* keys of up to 40 bytes (a USCC is 18) */
        for (uint32_t k = 0; k < e->nahead && k < 3; k++) {
                const Ahead *a = &e->ahead[(e->ahead_first + k) % ENGINE_AHEAD];
                if (a->rc != DECODE_OK)
                        continue;
                Ent *x = ent_peek(e, a->h);
                if (!x) /* a new enterprise: nothing to load */
                        continue;
                if (k == 2) {
                        prefetch_lines(x, span);
                } else if (k == 1) {
                        prefetch_lines(x->ks, x->nks * sizeof(KeyState));
                        prefetch_lines(x->w, x->nw * sizeof(Win));
                        prefetch_lines(x->r->c, x->r->nc * sizeof(Contrib));
                } else {
                        for (uint32_t i = 0; i < x->nks; i++) {
                                if (x->ks[i].snap)
                                        __builtin_prefetch(x->ks[i].snap);
                        }
                        for (uint32_t i = 0; i < x->nw; i++) {
                                const Win *w = &x->w[i];
                                if (!w->n)
                                        continue;
                                uint32_t nrow = e->rs->aggs[w->agg].nrow_slots;
                                __builtin_prefetch(&w->t[w->head]);
                                __builtin_prefetch(&w->t[ring_at(w, w->n - 1)]);
                                __builtin_prefetch(&win_v(w)[(size_t)ring_at(w, w->n - 1) * nrow]);
                        }
                }
        }
}

static void push_decoded(Engine *e, const char *bytes, size_t len, const SourcePos *src, DecodeReason rc,
                         const DecodedEvent *ev, const uint64_t *ent_hash);

/* EngineConfig.compact_every: tests and bench/ compact every idle
 * enterprise after every n pushes (outside batches), to show the compact
 * form changes no output. */
static void compact_every(Engine *e)
{
        if (e->cfg.compact_every && !e->in_batch && ++e->compact_count >= e->cfg.compact_every) {
                e->compact_count = 0;
                engine_compact(e, 0, 0);
        }
}

int engine_push(Engine *e, const char *bytes, size_t len, const SourcePos *src)
{
        e->st.events_in++;
        e->push_ts = src ? src->timestamp : 0;
        Ahead *a = e->nahead ? ahead_take(e, bytes, len) : NULL;
        if (!a) {
                DecodedEvent ev;
                DecodeReason rc = decode(e, bytes, len, &ev);
                push_decoded(e, bytes, len, src, rc, &ev, NULL);
                e->push_ts = 0;
                compact_every(e);
                return 0;
        }
        /* the hinted event's slots stand in for e->slots while it applies */
        Value *own = e->slots;
        e->slots = a->slots;
        ahead_stage(e);
        push_decoded(e, bytes, len, src, a->rc, &a->ev, &a->h);
        e->slots = own;
        e->push_ts = 0;
        compact_every(e);
        return 0;
}

static void push_decoded(Engine *e, const char *bytes, size_t len, const SourcePos *src, DecodeReason rc,
                         const DecodedEvent *ev, const uint64_t *ent_hash)
{
        if (rc != DECODE_OK) {
                dead_letter(e, bytes, len, src, (int)rc, ev->detail, NULL);
                return;
        }
        int64_t t = ev->time_ms;
        /* at the watermark is in time: the events of t released so far
         * arrived before it, so applying it after them keeps the order */
        if (e->max_time != TIME_UNSET && t < e->wm) {
                char d[160];
                char a[40], b[40];
                time_format(t, a, sizeof(a));
                time_format(e->wm, b, sizeof(b));
                snprintf(d, sizeof(d), "event time %s is behind the watermark %s", a, b);
                dead_letter(e, bytes, len, src, RJ_TOO_LATE, d, &ev->enterprise);
                return;
        }
        if (e->max_time == TIME_UNSET || t > e->max_time) {
                e->max_time = t;
                e->wm = time_sub_sat(t, e->cfg.grace_ms);
        }
        if (e->cfg.grace_ms == 0) {
                apply(e, ev, ent_hash, bytes, len, src);
                return;
        }
        held_push(e, ev, bytes, len, src);
        if (e->nheld > e->cfg.max_held) {
                /* bounded memory: release the oldest early, and never accept
                 * anything older than it afterwards */
                int64_t t0 = e->held[0].time;
                e->st.held_forced++;
                if (t0 > e->wm)
                        e->wm = t0;
        }
        release_upto(e, e->wm, false);
        return;
}

void engine_advance(Engine *e, int64_t t)
{
        if (e->max_time == TIME_UNSET || t > e->max_time)
                e->max_time = t;
        if (t > e->wm)
                e->wm = t;
        release_upto(e, t, true);
}

void engine_flush(Engine *e)
{
        if (e->max_time == TIME_UNSET)
                return;
        e->wm = e->max_time;
        release_upto(e, e->max_time, true);
}

/* ---- setup ---- */

static void add_slot(uint32_t **v, uint32_t *n, uint32_t *cap, uint32_t s)
{
        for (uint32_t k = 0; k < *n; k++)
                if ((*v)[k] == s)
                        return;
        VEC_PUSH(*v, *n, *cap) = s;
}

/* A condition that reads only the event answers the same for every rule
 * with the same code on the same event (rules_prog_event_only,
 * rules_prog_same): RuleInfo.event_only and same_when, found here. */
static void when_sharing(Engine *e)
{
        const RuleSet *rs = e->rs;
        e->when_epoch = xcalloc(rs->nrules + 1, sizeof(uint64_t));
        e->when_val = xcalloc(rs->nrules + 1, 1);
        for (uint32_t i = 0; i < rs->nrules; i++) {
                const Rule *r = &rs->rules[i];
                RuleInfo *ri = &e->ri[i];
                ri->same_when = i;
                ri->event_only = r->status != RULE_DISABLED && !r->is_static && !r->timer_driven &&
                                 rules_prog_event_only(rs, r->when);
                if (!ri->event_only)
                        continue;
                for (uint32_t j = 0; j < i; j++) {
                        if (!e->ri[j].event_only || e->ri[j].same_when != j)
                                continue;
                        bool same = rules_prog_same(rs, r->when, rs->rules[j].when);
                        if (same) {
                                ri->same_when = j;
                                break;
                        }
                }
        }
}

/* absent(T where F == $F for D) of rules on T alone, keyed per: F, is true
 * whenever their timer acts: the timer of a key stands at D (or a longer
 * absent()) after the key's last event, and any later event of the key
 * would have moved it (or, failing arm_when, stopped it); an event at the
 * very time waits for the absent() class.  Such an aggregate keeps no
 * rows.  Any other user (a rule of another shape, an override) keeps them. */
static void agg_keyed_find(Engine *e)
{
        const RuleSet *rs = e->rs;
        e->agg_keyed = xcalloc(rs->naggs + 1, 1);
        for (uint32_t a = 0; a < rs->naggs; a++)
                e->agg_keyed[a] = rs->aggs[a].kind == AGG_ABSENT && rs->aggs[a].key_slot >= 0;
        for (uint32_t i = 0; i < rs->nrules; i++) {
                const Rule *r = &rs->rules[i];
                for (uint32_t k = 0; k < r->naggs; k++) {
                        const Aggregate *ag = &rs->aggs[r->aggs[k]];
                        if (!r->timer_driven || r->per_slot != ag->key_slot || r->on != 1ull << ag->type)
                                e->agg_keyed[r->aggs[k]] = 0;
                }
        }
        const Grading *g = &rs->grading;
        uint32_t *used = NULL, nused = 0, cap = 0;
        for (uint32_t i = 0; i < g->noverrides; i++)
                rules_prog_reads(rs, g->overrides[i].when, READ_AGG, &used, &nused, &cap);
        for (uint32_t k = 0; k < nused; k++)
                if (used[k] < rs->naggs)
                        e->agg_keyed[used[k]] = 0;
        free(used);
}

int engine_new(Engine **ret, RuleSet *rs, const EngineConfig *cfg, EngineEmitFn emit, void *ud)
{
        Engine *e = xcalloc(1, sizeof(*e));
        if (cfg)
                e->cfg = *cfg;
        else
                engine_config_default(&e->cfg);
        if (!e->cfg.max_event_bytes)
                e->cfg.max_event_bytes = 1 << 20;
        e->budget = e->cfg.max_state_bytes;
        if (e->cfg.grace_ms < 0 || !e->cfg.max_held || !e->cfg.max_window_rows) {
                free(e);
                return -EINVAL;
        }
        DecoderLimits lim = {.max_bytes = e->cfg.max_event_bytes};
        int r = decoder_new(&e->dec, &rs->schema, &lim);
        if (r < 0) {
                free(e);
                return r;
        }
        e->rs = rules_ref(rs);
        e->emit = emit;
        e->ud = ud;
        pool_init(&e->pool);
        intern_init(&e->in, &e->pool);
        uint32_t ns = rs->schema.nslots ? rs->schema.nslots : 1;
        e->slots = xcalloc(ns, sizeof(Value));
        e->rowbuf = xcalloc(ns, sizeof(Value));
        e->snapbuf = xcalloc(ns, sizeof(Value));
        e->snapvals = xcalloc(ns, sizeof(Value));
        e->profbuf = xcalloc(ns, sizeof(Value));
        e->scratch = xmalloc(e->cfg.max_event_bytes);
        e->max_time = TIME_UNSET;
        e->wm = TIME_UNSET;
        e->restore_next = -1;
        e->tabcap = 1024;
        e->tab = xcalloc(e->tabcap, sizeof(uintptr_t));
        e->tab_untagged = sizeof(uintptr_t) < 8;

        /* which profile slots anything reads */
        uint32_t pcap = 0;
        for (uint32_t i = 0; i < rs->nprogs; i++)
                rules_prog_reads(rs, i, READ_PROFILE, &e->prof_slots, &e->nprof, &pcap);
        for (uint32_t i = 0; i < rs->nrules; i++)
                for (uint32_t k = 0; k < rs->rules[i].message.nparts; k++)
                        if (rs->rules[i].message.parts[k].kind == TPL_PROFILE)
                                add_slot(&e->prof_slots, &e->nprof, &pcap, rs->rules[i].message.parts[k].slot);
        /* a static rule's score expression is evaluated from the kept
         * profile (engine_static_expr): keep the fields it reads */
        for (uint32_t i = 0; i < rs->nrules; i++)
                if (rs->rules[i].is_static && rs->rules[i].score_expr) {
                        rules_prog_reads(rs, rs->rules[i].score_prog, READ_FIELD, &e->prof_slots, &e->nprof, &pcap);
                        rules_prog_reads(rs, rs->rules[i].score_prog, READ_CUR, &e->prof_slots, &e->nprof, &pcap);
                }
        prof_layout(e);

        uint32_t nt = rs->schema.ntypes ? rs->schema.ntypes : 1;
        e->by_type = xcalloc(nt, sizeof(uint32_t *));
        e->nby_type = xcalloc(nt, sizeof(uint32_t));
        e->aggs_by_type = xcalloc(nt, sizeof(uint32_t *));
        e->naggs_by_type = xcalloc(nt, sizeof(uint32_t));
        uint32_t *caps = xcalloc(nt, sizeof(uint32_t)), scap = 0;
        e->ri = xcalloc(rs->nrules + 1, sizeof(RuleInfo));
        for (uint32_t i = 0; i < rs->nrules; i++) {
                const Rule *ru = &rs->rules[i];
                RuleInfo *ri = &e->ri[i];
                if (ru->status == RULE_DISABLED)
                        continue;
                if (ru->is_static) {
                        VEC_PUSH(e->static_rules, e->nstatic, scap) = i;
                        continue;
                }
                for (uint32_t t = 0; t < rs->schema.ntypes; t++)
                        if (ru->on & (1ull << t))
                                VEC_PUSH(e->by_type[t], e->nby_type[t], caps[t]) = i;
                /* what a timer firing needs from the event: $fields, the
                 * fields of the condition and of the message, the key */
                uint32_t cap = 0;
                if (ru->timer_driven || ru->for_ms) {
                        rules_prog_reads(rs, ru->when, READ_CUR, &ri->snap_slots, &ri->nsnap, &cap);
                        rules_prog_reads(rs, ru->when, READ_FIELD, &ri->snap_slots, &ri->nsnap, &cap);
                        for (uint32_t k = 0; k < ru->message.nparts; k++)
                                if (ru->message.parts[k].kind == TPL_FIELD)
                                        add_slot(&ri->snap_slots, &ri->nsnap, &cap, ru->message.parts[k].slot);
                        if (ru->per_slot >= 0)
                                add_slot(&ri->snap_slots, &ri->nsnap, &cap, (uint32_t)ru->per_slot);
                }
                if ((ru->timer_driven || ru->for_ms) && ru->score_expr) {
                        rules_prog_reads(rs, ru->score_prog, READ_CUR, &ri->snap_slots, &ri->nsnap, &cap);
                        rules_prog_reads(rs, ru->score_prog, READ_FIELD, &ri->snap_slots, &ri->nsnap, &cap);
                }
                uint32_t *pv = NULL, np = 0, pvcap = 0;
                rules_prog_reads(rs, ru->when, READ_PROFILE, &pv, &np, &pvcap);
                if (ru->score_expr)
                        rules_prog_reads(rs, ru->score_prog, READ_PROFILE, &pv, &np, &pvcap);
                free(pv);
                ri->reads_profile = np > 0;
                for (uint32_t k = 0; k < ru->message.nparts; k++)
                        ri->reads_profile |= ru->message.parts[k].kind == TPL_PROFILE;
                for (uint32_t k = 0; k < ru->naggs; k++) {
                        const Aggregate *a = &rs->aggs[ru->aggs[k]];
                        if (a->kind == AGG_ABSENT && a->window_ms > ri->absent_ms)
                                ri->absent_ms = a->window_ms;
                }
                ri->due_after = ru->timer_driven ? 0 : ru->for_ms;
        }
        when_sharing(e);
        e->static_points = xcalloc(e->nstatic + 1, sizeof(double));
        for (uint32_t k = 0; k < e->nstatic; k++) {
                const Rule *sr = &rs->rules[e->static_rules[k]];
                e->static_points[k] = sr->status == RULE_SHADOW ? 0 : sr->score;
        }
        e->static_expr = xcalloc(e->nstatic + 1, 1);
        e->static_pi = xcalloc(e->nstatic + 1, sizeof(uint32_t *));
        e->static_npi = xcalloc(e->nstatic + 1, sizeof(uint32_t));
        e->sexprbuf = xcalloc(ns, sizeof(Value));
        for (uint32_t k = 0; k < e->nstatic; k++) {
                const Rule *sr = &rs->rules[e->static_rules[k]];
                if (!sr->score_expr || sr->status == RULE_SHADOW)
                        continue;
                e->static_expr[k] = 1;
                if (k < 64)
                        e->static_expr_mask |= 1ull << k;
                uint32_t *sv = NULL, nsv = 0, scap2 = 0;
                rules_prog_reads(rs, sr->score_prog, READ_FIELD, &sv, &nsv, &scap2);
                rules_prog_reads(rs, sr->score_prog, READ_CUR, &sv, &nsv, &scap2);
                rules_prog_reads(rs, sr->score_prog, READ_PROFILE, &sv, &nsv, &scap2);
                /* slots to profile indexes */
                for (uint32_t j = 0; j < nsv; j++)
                        for (uint32_t pi = 0; pi < e->nprof; pi++)
                                if (e->prof_slots[pi] == sv[j])
                                        sv[j] = pi, pi = e->nprof;
                e->static_pi[k] = sv;
                e->static_npi[k] = nsv;
        }
        e->agg_fp = xcalloc(rs->naggs + 1, sizeof(uint64_t));
        e->agg_profile = xcalloc(rs->naggs + 1, 1);
        for (uint32_t a = 0; a < rs->naggs; a++) {
                uint32_t *pv = NULL, np = 0, pvcap = 0;
                rules_prog_reads(rs, rs->aggs[a].where, READ_PROFILE, &pv, &np, &pvcap);
                free(pv);
                e->agg_profile[a] = np > 0;
        }
        for (uint32_t a = 0; a < rs->naggs; a++)
                e->agg_fp[a] = rules_agg_fingerprint(rs, a);
        agg_keyed_find(e);
        memset(caps, 0, nt * sizeof(uint32_t));
        for (uint32_t a = 0; a < rs->naggs; a++) {
                uint32_t t = rs->aggs[a].type;
                if (!e->agg_keyed[a])
                        VEC_PUSH(e->aggs_by_type[t], e->naggs_by_type[t], caps[t]) = a;
        }
        free(caps);
        const Grading *g = &rs->grading;
        e->ov_reuse = g->noverrides <= 16;
        for (uint32_t i = 0; e->ov_reuse && i < g->noverrides; i++) {
                if (rules_prog_volatile(rs, g->overrides[i].when))
                        e->ov_volatile |= (uint16_t)(1u << i);
        }
        e->prof_all = e->nprof >= 64 ? ~0ull : (1ull << e->nprof) - 1;
        for (uint32_t i = 0; i < g->noverrides && i < 16; i++) {
                uint32_t *pv = NULL, np = 0, pvcap = 0;
                rules_prog_reads(rs, g->overrides[i].when, READ_PROFILE, &pv, &np, &pvcap);
                for (uint32_t k = 0; k < np; k++) {
                        uint32_t pi = 0;
                        while (pi < e->nprof && e->prof_slots[pi] != pv[k])
                                pi++;
                        e->ov_prof[i] |= pi < 64 && e->nprof <= 64 ? 1ull << pi : ~0ull;
                }
                free(pv);
                e->ov_prof[i] &= e->prof_all;
        }
        *ret = e;
        return 0;
}

Engine *engine_free(Engine *e)
{
        if (!e)
                return NULL;
        state_dicts_free(e);
        free(e->tm);
        free(e->due);
        for (uint32_t i = 0; i < e->nheld; i++) {
                free(e->held[i].bytes);
                free(e->held[i].topic);
        }
        free(e->held);
        e->ntm = 0;
        compact_gone_free(e);
        free(e->gone);
        free(e->lz_dict);
        free(e->lz_dhash);
        free(e->lz_h);
        buf_free(&e->lz_buf);
        for (uint32_t i = 0; i < e->tabcap; i++)
                if (tab_ent(e, i))
                        ent_free(e, tab_ent(e, i));
        free(e->tab);
        for (uint32_t t = 0; t < e->rs->schema.ntypes; t++) {
                free(e->by_type[t]);
                free(e->aggs_by_type[t]);
        }
        free(e->by_type);
        free(e->nby_type);
        free(e->aggs_by_type);
        free(e->naggs_by_type);
        free(e->static_rules);
        free(e->static_points);
        for (uint32_t k = 0; k < e->nstatic; k++)
                free(e->static_pi[k]);
        free(e->static_pi);
        free(e->static_npi);
        free(e->static_expr);
        free(e->sexprbuf);
        free(e->when_epoch);
        free(e->when_val);
        for (uint32_t i = 0; i < e->rs->nrules; i++) {
                free(e->ri[i].snap_slots);
        }
        free(e->ri);
        free(e->prof_slots);
        free(e->prof_off);
        free(e->prof_tags);
        free(e->slots);
        free(e->rowbuf);
        free(e->snapbuf);
        free(e->snapvals);
        free(e->profbuf);
        free(e->agg_profile);
        free(e->agg_keyed);
        free(e->scratch);
        free(e->aggbuf);
        buf_free(&e->keybuf);
        free(e->agg_fp);
        free(e->touched);
        free(e->undo_off);
        buf_free(&e->undo);
        buf_free(&e->meta_undo);
        buf_free(&e->meta_sealed);
        buf_free(&e->out);
        buf_free(&e->msg);
        decoder_free(e->dec);
        for (uint32_t i = 0; i < ENGINE_AHEAD; i++) {
                decoder_free(e->ahead[i].dec);
                free(e->ahead[i].slots);
                free(e->ahead[i].scratch);
        }
        intern_deinit(&e->in);
        pool_deinit(&e->pool);
        rules_unref(e->rs);
        free(e);
        return NULL;
}

uint32_t engine_enterprises(const Engine *e)
{
        return e->nents;
}

const RuleSet *engine_rules(const Engine *e)
{
        return e->rs;
}

const EngineStats *engine_counters(Engine *e)
{
        e->st.enterprises = e->nents;
        e->st.watermark = e->wm;
        e->st.enterprises_compact = e->ncompact;
        e->st.state_budget = e->budget;
        return &e->st;
}

const EngineStats *engine_stats(Engine *e)
{
        e->st.enterprises = e->nents;
        e->st.watermark = e->wm;
        /* everything enterprises hold is in the pool (sizes as rounded up to
         * their class), plus what grows with them: the table, the timer
         * heap, the intern table */
        uint64_t sb = (uint64_t)e->tabcap * sizeof(uintptr_t) + (uint64_t)e->ctm * sizeof(Timer) +
                      (uint64_t)e->in.cap * sizeof(uintptr_t),
                 wb = 0, rows = 0;
        for (uint32_t i = 0; i < e->tabcap; i++) {
                const Ent *x = tab_ent(e, i);
                if (!x)
                        continue;
                for (uint32_t k = 0; k < x->nw; k++) {
                        wb += window_bytes(e, &x->w[k]);
                        rows += x->w[k].n;
                }
        }
        e->st.state_bytes = sb + e->pool.bytes - wb;
        e->st.window_bytes = wb;
        e->st.window_rows = rows;
        e->st.enterprises_compact = e->ncompact;
        e->st.state_budget = e->budget;
        return &e->st;
}

char *engine_explain_json(Engine *e, const char *enterprise, size_t len)
{
        Ent *x = ent_find(e, enterprise, (uint32_t)len);
        if (!x)
                return NULL;
        Buf b = {0};
        out_explain(e, x, &b);
        return b.p;
}

char *engine_explain_text(Engine *e, const char *enterprise, size_t len)
{
        Ent *x = ent_find(e, enterprise, (uint32_t)len);
        if (!x)
                return NULL;
        Buf b = {0};
        out_explain_text(e, x, &b);
        return b.p;
}

static int ent_cmp(const void *a, const void *b)
{
        return ent_key_cmp(ent_key(*(Ent *const *)a), ent_key(*(Ent *const *)b));
}

void engine_grades_write(Engine *e, Buf *out)
{
        compact_expand_all(e); /* the score and the official state are in the records */
        Ent **v = xmalloc((e->nents + 1) * sizeof(Ent *));
        uint32_t n = 0;
        for (uint32_t i = 0; i < e->tabcap; i++)
                if (tab_ent(e, i))
                        v[n++] = tab_ent(e, i);
        xsort(v, n, sizeof(Ent *), ent_cmp);
        const Grading *g = &e->rs->grading;
        int64_t now = e->wm == TIME_UNSET ? 0 : e->wm;
        for (uint32_t i = 0; i < n; i++) {
                Ent *x = v[i];
                buf_puts(out, "{\"enterprise_id\":");
                buf_json_str(out, ent_key(x)->s, ent_key(x)->len);
                buf_puts(out, ",\"grade\":");
                if (x->grade >= 0)
                        buf_json_str(out, g->bands[x->grade].grade, strlen(g->bands[x->grade].grade));
                else
                        buf_puts(out, "null");
                buf_puts(out, ",\"mode\":");
                if (x->mode >= 0)
                        buf_json_str(out, g->modes[x->mode], strlen(g->modes[x->mode]));
                else
                        buf_puts(out, "null");
                buf_puts(out, ",\"inspections_per_year\":");
                out_num(out, x->per_year);
                buf_puts(out, ",\"score\":");
                out_num(out, grade_score(e, x, now));
                if (g->official.declared) {
                        buf_puts(out, ",\"official\":");
                        out_official(e, out, x);
                        buf_puts(out, ",\"index\":{\"score\":");
                        out_num(out, grade_score(e, x, now));
                        buf_puts(out, ",\"band\":");
                        if (x->held >= 0)
                                buf_json_str(out, g->bands[x->held].grade, strlen(g->bands[x->held].grade));
                        else
                                buf_puts(out, "null");
                        buf_putc(out, '}');
                }
                buf_puts(out, "}\n");
        }
        free(v);
}
