/*
 * The enterprises' state (ent.h): the table that finds an enterprise by
 * key, the pool object each one is (struct, key, recent ids, static bits,
 * packed profile), its profile packed and laid out for the VM, key states
 * and the snapshots a timer firing reads (with their varints and UUIDs
 * packed to 16 bytes).  No event flow: what the engine does with an
 * enterprise is engine.c's, what it writes to the changelog state.c's.
 *
 * Invariants: the table is a power of two at most half full; a slot's
 * tag is the key's hash unless tab_untagged; an Ent's pool object is
 * ent_size(its key's length) bytes; a snapshot's size is what
 * ent_snap_set counted for it.
 */
#include <stdlib.h>
#include <string.h>

#include "src/engine/engine.h"
#include "src/util/varint.h"

const EntRare rare_none = {.below_since = TIME_UNSET, .changed = TIME_UNSET};

/* Every enterprise has an Ent, most a few key states: a field added to
 * either costs it on each (the bench's state bytes per enterprise). */
_Static_assert(sizeof(void *) != 8 || sizeof(Ent) == 72, "Ent grew: every enterprise pays for it");
_Static_assert(sizeof(void *) != 8 || sizeof(KeyState) == 32, "KeyState grew: every key of every enterprise pays for it");


static inline bool ent_is(const Ent *x, const char *k, uint32_t len)
{
        return ent_key(x)->len == len && memcmp(ent_key(x)->s, k, len) == 0;
}

static uint32_t ent_slot(Engine *e, const char *k, uint32_t len, uint64_t h)
{
        uint32_t mask = e->ents.tabcap - 1, i = (uint32_t)h & mask;
        assert(e->ents.tabcap && !(e->ents.tabcap & mask)); /* a power of two */
        if (e->ents.tab_untagged) {
                for (Ent *x; (x = tab_ent(e, i)); i = (i + 1) & mask)
                        if (ent_is(x, k, len))
                                return i;
                return i;
        }
        for (uintptr_t v; (v = e->ents.tab[i]); i = (i + 1) & mask)
                if (tag_match(v, h) && ent_is(tag_ptr(v, false), k, len))
                        return i;
        return i;
}

/* An enterprise in state (in full form), NULL none. */
Ent *ent_find(Engine *e, const char *k, uint32_t len)
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
size_t ent_size(const Engine *e, uint32_t len)
{
        return sizeof(Ent) + ent_key_size(len) + e->ents.prof_bytes +
               e->cfg.recent_ids * sizeof(uint64_t) + ent_static_words(e) * sizeof(uint64_t);
}

uint32_t ent_slot_of(Engine *e, const Ent *x)
{
        return ent_slot(e, ent_key(x)->s, ent_key(x)->len, ent_hash(x));
}

/* h: hash_fast(k, len).  A compact enterprise comes back in full form;
 * NULL: none made, e->ents.refused says why. */
Ent *ent_get_h(Engine *e, const char *k, uint32_t len, uint64_t h)
{
        uint32_t i = ent_slot(e, k, len, h);
        if (e->ents.tab[i]) {
                Ent *x = tab_ent(e, i);
                return x->compact ? compact_expand(e, i, x, true) : x;
        }
        if (e->ents.nents >= e->cfg.max_enterprises) {
                e->ents.refused = 1;
                return NULL;
        }
        if (e->cp.budget && !compact_room(e)) {
                e->ents.refused = 2;
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
        if (!e->ents.tab_untagged && !tag_fits(x)) {
                tagtab_untag(e->ents.tab, e->ents.tabcap);
                e->ents.tab_untagged = true;
        }
        e->ents.tab[i] = tag_make(x, h, e->ents.tab_untagged);
        e->ents.nents++;
        if (e->ents.nents * 2 > e->ents.tabcap) {
                e->ents.tab = tagtab_grow(e->ents.tab, e->ents.tabcap, e->ents.tabcap * 2, e->ents.tab_untagged, ent_hash);
                e->ents.tabcap *= 2;
        }
        assert(e->ents.nents * 2 <= e->ents.tabcap); /* at most half full: probes end */
        return x;
}

void ent_ks_free(Engine *e, KeyState *ks)
{
        if (ks->snap)
                pool_free(&e->pool, ks->snap, ks->snap->size);
        ks->snap = NULL;
        ks->keyed = 0;
}

static uint8_t prof_tag(const Engine *e, uint32_t i)
{
        switch (e->rs->schema.slot_type[e->plan.prof_slots[i]]) {
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
void ent_layout(Engine *e)
{
        e->ents.prof_off = xcalloc(e->plan.nprof + 1, sizeof(uint16_t));
        e->ents.prof_tags = xcalloc(e->plan.nprof + 1, 1);
        for (uint32_t i = 0; i < e->plan.nprof; i++)
                e->ents.prof_tags[i] = prof_tag(e, i);
        size_t off = 0;
        static const size_t widths[] = {8, 2, 1};
        for (size_t w = 0; w < 3; w++)
                for (uint32_t i = 0; i < e->plan.nprof; i++)
                        if (prof_width(e->ents.prof_tags[i]) == widths[w]) {
                                e->ents.prof_off[i] = (uint16_t)off;
                                off += widths[w];
                        }
        e->ents.prof_present = (uint16_t)off;
        off += (e->plan.nprof + 7) / 8;
        e->ents.prof_bytes = (uint16_t)((off + 7) & ~(size_t)7);
}

/* Profile value i of x into *v, field by field (a Value returned and
 * copied whole stalls store forwarding; ent_profile_fill runs on most
 * events). */
static inline void prof_load(const Engine *e, const Ent *x, uint32_t i, Value *v)
{
        const uint8_t *p = ent_prof(e, x);
        if (!(p[e->ents.prof_present + i / 8] >> (i % 8) & 1)) {
                v->tag = VT_NULL;
                return;
        }
        const uint8_t *at = p + e->ents.prof_off[i];
        v->tag = e->ents.prof_tags[i];
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

Value ent_prof_get(const Engine *e, const Ent *x, uint32_t i)
{
        assert(i < e->plan.nprof);
        Value v = value_null();
        prof_load(e, x, i, &v);
        return v;
}

static void pstr_free(Engine *e, PStr *ps)
{
        if (ps)
                pool_free(&e->pool, ps, sizeof(PStr) + ps->len);
}

void ent_prof_set(Engine *e, Ent *x, uint32_t i, Value v)
{
        assert(i < e->plan.nprof);
        uint8_t *p = ent_prof(e, x);
        uint8_t *bits = p + e->ents.prof_present + i / 8, bit = (uint8_t)(1u << (i % 8));
        uint8_t *at = p + e->ents.prof_off[i];
        /* the string it held, freed last: v may be its bytes (read field by
         * field, not as a returned Value: that stalls store forwarding) */
        PStr *old = NULL;
        if (e->ents.prof_tags[i] == VT_STR && (*bits & bit))
                memcpy(&old, at, sizeof(old));
        if (v.tag != e->ents.prof_tags[i] || (v.tag == VT_ENUM && (v.e < INT16_MIN || v.e > INT16_MAX))) {
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
void ent_clear(Engine *e, Ent *x)
{
        for (uint32_t i = 0; i < e->plan.nprof; i++) {
                ent_prof_set(e, x, i, value_null());
        }
        memset(ent_static(e, x), 0, ent_static_words(e) * sizeof(uint64_t));
        for (uint32_t i = 0; i < x->r->nc; i++)
                intern_put(&e->in, x->r->c[i].event_id);
        pool_free(&e->pool, x->r->c, ENT_ARR(Contrib, x->r->cc));
        pool_free(&e->pool, x->r->f, ENT_ARR(FlagState, x->r->cf));
        pool_free(&e->pool, x->r->o, sizeof(OffState));
        pool_free(&e->pool, x->r->h, ENT_ARR(GradeChange, x->r->ch));
        if (x->r != &rare_none) {
                alerts_clear(e, ent_rare(e, x));
                pool_free(&e->pool, ent_rare(e, x), sizeof(EntRare));
        }
        x->r = &rare_none;
        for (uint32_t i = 0; i < x->nks; i++)
                ent_ks_free(e, &x->ks[i]);
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
        ent_clear(e, x);
        pool_free(&e->pool, x, ent_size(e, ent_key(x)->len));
}

/* Remove from the table (backward-shift deletion) and free. */
void ent_remove(Engine *e, Ent *x)
{
        assert(e->ents.nents > 0);
        tagtab_remove(e->ents.tab, e->ents.tabcap, x, ent_hash(x), e->ents.tab_untagged, ent_hash);
        e->ents.nents--;
        ent_free(e, x);
}

Ent *ent_get(Engine *e, const char *k, uint32_t len)
{
        return ent_get_h(e, k, len, hash_fast(k, len));
}

void ent_profile_fill(Engine *e, Ent *ent)
{
        for (uint32_t i = 0; i < e->plan.nprof; i++)
                prof_load(e, ent, i, &e->profbuf[e->plan.prof_slots[i]]);
        e->prof_ent = ent;
        e->prof_have = e->plan.prof_all;
}

void ent_profile_need_some(Engine *e, Ent *ent, uint64_t mask)
{
        if (e->prof_ent != ent) {
                ent_profile_clear(e);
                e->prof_ent = ent;
        }
        for (uint64_t m = mask & ~e->prof_have; m; m &= m - 1) {
                uint32_t i = (uint32_t)__builtin_ctzll(m);
                prof_load(e, ent, i, &e->profbuf[e->plan.prof_slots[i]]);
        }
        e->prof_have |= mask;
}

void ent_profile_clear(Engine *e)
{
        if (!e->prof_ent)
                return;
        e->prof_ent = NULL;
        if (e->prof_have == e->plan.prof_all) {
                for (uint32_t i = 0; i < e->plan.nprof; i++)
                        e->profbuf[e->plan.prof_slots[i]] = value_null();
        } else {
                for (uint64_t m = e->prof_have; m; m &= m - 1)
                        e->profbuf[e->plan.prof_slots[__builtin_ctzll(m)]] = value_null();
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

void ent_ks_key(Engine *e, KeyState *ks, const char *k, uint32_t len)
{
        assert(!ks->snap); /* fresh: no key, no snapshot */
        ks->keyed = 1;
        ks->khash = (uint32_t)hash_fast(k, len);
        ks->snap = snap_key_only(e, k, len);
}

void ent_snap_drop(Engine *e, KeyState *ks)
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

static bool is_key(const KeyState *ks, const Value *v)
{
        if (v->tag != VT_STR || !ks->keyed)
                return false;
        Str k = ks_key(ks);
        return k.len == v->s.len && (v->s.p == k.p || memcmp(v->s.p, k.p, k.len) == 0);
}

void ent_snap_set(Engine *e, KeyState *ks, const RuleInfo *ri, const Value *ev, bool by_slot, const char *id,
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
        assert((size_t)(p - (uint8_t *)s) + (bin ? 16 : idlen) == n); /* written as counted */
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
                        uint64_t len;
                        bool ok = varint_get(&p, (const uint8_t *)s + s->size, &len);
                        assert(ok); /* written by ent_snap_set, within the snapshot */
                        (void)ok;
                        v.s = (Str){(const char *)p, (uint32_t)len};
                        p += len;
                        break;
                }
                default: memcpy(&v.ms, p, 8); p += 8; break;
                }
                out[i] = v;
        }
        return p;
}

void ent_snap_values(const KeyState *ks, const RuleInfo *ri, Value *out)
{
        if (ks_has_snap(ks)) {
                const uint8_t *id = snap_decode(ks, ri, out);
                /* the values end where the id starts (ent_snap_id reads it from the end) */
                assert(id + (ks->snap->idlen == SNAP_UUID ? 16 : ks->snap->idlen) ==
                       (const uint8_t *)ks->snap + ks->snap->size);
                (void)id;
                return;
        }
        for (uint32_t i = 0; i < ri->nsnap; i++)
                out[i] = value_null();
}

const char *ent_snap_id(const KeyState *ks, char buf[40], size_t *len)
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

/* The points of static rule k (score: an expression) for x: its value
 * over x's kept profile, which the profile update that set the rule's bit
 * wrote, so the value is the update's and travels with the profile
 * (record, undo log, restore).  The expression reads only the profile
 * event's fields (the loader refuses state, clock and aggregates); null
 * contributes nothing; max_score caps it.  Its own buffer: the evaluation
 * leaves profbuf (and whose profile it holds) alone. */
double ent_static_expr(const Engine *ce, const Ent *x, uint32_t k)
{
        Engine *e = (Engine *)(uintptr_t)ce;    /* only the scratch buffers are written */
        const Rule *r = &e->rs->rules[e->plan.static_rules[k]];
        for (uint32_t j = 0; j < e->plan.static_npi[k]; j++) {
                uint32_t pi = e->plan.static_pi[k][j];
                prof_load(e, x, pi, &e->sexprbuf[e->plan.prof_slots[pi]]);
        }
        VmState st = {0};
        char scratch[512];      /* not vmscratch: a caller's evaluation may hold strings there */
        VmFrame f = {.event = e->sexprbuf, .cur = e->sexprbuf, .profile = e->sexprbuf, .state = &st,
                     .now = TIME_UNSET, .scratch = scratch, .scratch_size = sizeof(scratch)};
        Value v;
        double out = 0;
        if (vm_run(e->rs, r->score_prog, &f, &v) == VM_OK && v.tag == VT_NUM && v.n == v.n)
                out = r->max_score > 0 && v.n > r->max_score ? r->max_score : v.n;
        for (uint32_t j = 0; j < e->plan.static_npi[k]; j++)
                e->sexprbuf[e->plan.prof_slots[e->plan.static_pi[k][j]]] = value_null();
        return out;
}

/* The enterprise of a key hash, without comparing keys: for a prefetch,
 * where a match of the 16 tag bits that is not the key only loads lines
 * that are not needed. */
Ent *ent_peek(const Engine *e, uint64_t h)
{
        if (e->ents.tab_untagged)
                return NULL;
        uint32_t mask = e->ents.tabcap - 1;
        for (uint32_t i = (uint32_t)h & mask; e->ents.tab[i]; i = (i + 1) & mask)
                if (tag_match(e->ents.tab[i], h))
                        return tag_ptr(e->ents.tab[i], false);
        return NULL;
}

void ent_table_free(Engine *e)
{
        for (uint32_t i = 0; i < e->ents.tabcap; i++)
                if (tab_ent(e, i))
                        ent_free(e, tab_ent(e, i));
        free(e->ents.tab);
        e->ents.tab = NULL;
        free(e->ents.prof_off);
        free(e->ents.prof_tags);
}

static int ent_cmp(const void *a, const void *b)
{
        return ent_key_cmp(ent_key(*(Ent *const *)a), ent_key(*(Ent *const *)b));
}

Ent **ent_sorted(Engine *e, uint32_t *ret_n)
{
        compact_expand_all(e);
        Ent **v = xmalloc((e->ents.nents + 1) * sizeof(Ent *));
        uint32_t n = 0;
        for (uint32_t i = 0; i < e->ents.tabcap; i++)
                if (tab_ent(e, i))
                        v[n++] = tab_ent(e, i);
        assert(n == e->ents.nents);
        xsort(v, n, sizeof(Ent *), ent_cmp);
        *ret_n = n;
        return v;
}
