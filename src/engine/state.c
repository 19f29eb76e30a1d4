/*
 * Engine state as records: the changelog value of an enterprise, the
 * partition record (watermark, held events, resume offset), and the undo
 * log that lets a batch be aborted (include/riskd/engine.h).
 *
 * Format (ENGINE_STATE_VERSION 1): a version byte, then fields in a fixed
 * order; integers as LEB128 varints (signed ones zigzag), doubles as 8
 * little-endian bytes, strings as a length and the bytes.  Rules, flags,
 * fields and aggregates are named by id, path or fingerprint, never by an
 * index of one compiled rule set, so a record restores into any rule set
 * that has the same rules; what no longer exists is dropped.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/engine/engine.h"

/* ---- writing ---- */

static void put_u(Buf *b, uint64_t v)
{
        char t[10];
        int n = 0;
        do {
                t[n++] = (char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
                v >>= 7;
        } while (v);
        buf_put(b, t, (size_t)n);
}

static void put_i(Buf *b, int64_t v)
{
        put_u(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static void put_f(Buf *b, double d)
{
        uint64_t u;
        memcpy(&u, &d, 8);
        char t[8];
        for (int i = 0; i < 8; i++)
                t[i] = (char)(u >> (8 * i));
        buf_put(b, t, 8);
}

static void put_s(Buf *b, const char *s, size_t n)
{
        put_u(b, n);
        buf_put(b, s, n);
}

static void put_cs(Buf *b, const char *s)
{
        put_s(b, s ? s : "", s ? strlen(s) : 0);
}

/* A value of slot: enums by name, so that reordered enums restore right. */
static void put_v(Engine *e, Buf *b, const Value *v, uint32_t slot)
{
        buf_putc(b, (char)v->tag);
        switch (v->tag) {
        case VT_BOOL: buf_putc(b, v->b ? 1 : 0); break;
        case VT_NUM: put_f(b, v->n); break;
        case VT_STR: put_s(b, v->s.p, v->s.len); break;
        case VT_ENUM: {
                const EnumDef *en = e->rs->schema.slot_enum[slot];
                put_cs(b, en && v->e >= 0 && (uint32_t)v->e < en->nvalues ? en->values[v->e] : "");
                break;
        }
        case VT_TIME:
        case VT_DUR: put_i(b, v->ms); break;
        default: break;
        }
}

static void put_slot(Engine *e, Buf *b, uint32_t slot)
{
        put_cs(b, e->rs->schema.slot_path[slot]);
        buf_putc(b, (char)e->rs->schema.slot_type[slot]);
}

/* ---- reading ---- */

typedef struct Rd {
        const unsigned char *p, *end;
        bool bad;
} Rd;

static uint64_t get_u(Rd *r)
{
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
                if (r->p >= r->end) {
                        r->bad = true;
                        return 0;
                }
                unsigned char c = *r->p++;
                v |= (uint64_t)(c & 0x7f) << shift;
                if (!(c & 0x80))
                        return v;
        }
        r->bad = true;
        return 0;
}

static int64_t get_i(Rd *r)
{
        uint64_t u = get_u(r);
        return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

static double get_f(Rd *r)
{
        if (r->end - r->p < 8) {
                r->bad = true;
                return 0;
        }
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
                u |= (uint64_t)r->p[i] << (8 * i);
        r->p += 8;
        double d;
        memcpy(&d, &u, 8);
        return d;
}

/* A double that must be a number: NaN or an infinity refuses the record
 * (no state the engine writes holds one: scores, points and event numbers
 * are finite). */
static double get_fin(Rd *r)
{
        double d = get_f(r);
        if (!isfinite(d)) {
                r->bad = true;
                return 0;
        }
        return d;
}

static const char *get_s(Rd *r, uint32_t *len)
{
        uint64_t n = get_u(r);
        if (r->bad || n > (uint64_t)(r->end - r->p)) {
                r->bad = true;
                *len = 0;
                return "";
        }
        const char *s = (const char *)r->p;
        r->p += n;
        *len = (uint32_t)n;
        return s;
}

static uint8_t get_b(Rd *r)
{
        if (r->p >= r->end) {
                r->bad = true;
                return 0;
        }
        return *r->p++;
}

static bool s_eq(const char *s, uint32_t n, const char *z)
{
        return z && strlen(z) == n && memcmp(s, z, n) == 0;
}

/* A slot named in a record (path and type): its index among the slots the
 * caller keeps, cand[0 .. ncand), -1 none.  Not a lookup in the whole
 * schema: fields of one path and type but other enums have slots of their
 * own (schema.c), and the first of them need not be the one kept. */
static int32_t get_slot_in(Engine *e, Rd *r, const uint32_t *cand, uint32_t ncand)
{
        uint32_t n;
        const char *p = get_s(r, &n);
        uint8_t t = get_b(r);
        const Schema *s = &e->rs->schema;
        for (uint32_t i = 0; i < ncand; i++)
                if (s->slot_type[cand[i]] == t && s_eq(p, n, s->slot_path[cand[i]]))
                        return (int32_t)i;
        return -1;
}

/* The value tag of a field type (FieldType and ValueTag list the types in
 * one order, VT_NULL first). */
static uint8_t ft_tag(FieldType t)
{
        return (uint8_t)(t + 1);
}

/* A value into state (strings interned); slot < 0: read and dropped.  A
 * value of another type than its slot's, or a number that is not finite,
 * refuses the record: the rules read a slot's value as of its type. */
static Value get_v(Engine *e, Rd *r, int32_t slot)
{
        Value v = {.tag = get_b(r)};
        uint32_t n;
        const char *s;
        if (slot >= 0 && v.tag != VT_NULL && v.tag != ft_tag(e->rs->schema.slot_type[slot])) {
                r->bad = true;
                return value_null();
        }
        switch (v.tag) {
        case VT_NULL: break;
        case VT_BOOL: v.b = get_b(r) != 0; break;
        case VT_NUM: v.n = get_fin(r); break;
        case VT_STR:
                s = get_s(r, &n);
                v = slot >= 0 && !r->bad ? intern_value(&e->in, value_str(s, n)) : value_null();
                return v;
        case VT_ENUM: {
                s = get_s(r, &n);
                const EnumDef *en = slot >= 0 ? e->rs->schema.slot_enum[slot] : NULL;
                v.e = -1;
                for (uint32_t i = 0; en && i < en->nvalues; i++)
                        if (s_eq(s, n, en->values[i]))
                                v.e = (int32_t)i;
                break;
        }
        case VT_TIME:
        case VT_DUR: v.ms = get_i(r); break;
        default: r->bad = true; v.tag = VT_NULL; break;
        }
        return slot >= 0 ? v : value_null();
}

static int32_t rule_by_id(Engine *e, const char *s, uint32_t n)
{
        for (uint32_t i = 0; i < e->rs->nrules; i++)
                if (s_eq(s, n, e->rs->rules[i].id))
                        return (int32_t)i;
        return -1;
}

static int32_t grade_by_name(const Grading *g, const char *s, uint32_t n)
{
        for (uint32_t i = 0; i < g->nbands; i++)
                if (s_eq(s, n, g->bands[i].grade))
                        return (int32_t)i;
        return -1;
}

static int32_t mode_by_name(const Grading *g, const char *s, uint32_t n)
{
        for (uint32_t i = 0; i < g->nmodes; i++)
                if (s_eq(s, n, g->modes[i]))
                        return (int32_t)i;
        return -1;
}

/* ---- an enterprise ---- */

static void ent_write(Engine *e, const Ent *x, Buf *b)
{
        const RuleSet *rs = e->rs;
        const Grading *g = &rs->grading;
        buf_putc(b, ENGINE_STATE_VERSION);
        put_f(b, ent_static_score(e, x)); /* derived from the bits; kept for the record format */
        uint32_t nst = 0;
        for (uint32_t k = 0; k < e->nstatic; k++)
                nst += e->nstatic && (ent_static(e, x)[k / 64] >> (k % 64) & 1);
        put_u(b, nst);
        for (uint32_t k = 0; k < e->nstatic; k++)
                if (e->nstatic && (ent_static(e, x)[k / 64] >> (k % 64) & 1))
                        put_cs(b, rs->rules[e->static_rules[k]].id);
        put_cs(b, x->held >= 0 ? g->bands[x->held].grade : "");
        put_cs(b, x->grade >= 0 ? g->bands[x->grade].grade : "");
        put_cs(b, x->mode >= 0 ? g->modes[x->mode] : "");
        put_f(b, x->per_year);
        put_i(b, x->r->below_since);
        put_i(b, x->last_time);
        put_u(b, e->nprof);
        for (uint32_t i = 0; i < e->nprof; i++) {
                put_slot(e, b, e->prof_slots[i]);
                Value v = engine_prof_get(e, x, i);
                put_v(e, b, &v, e->prof_slots[i]);
        }
        put_u(b, x->r->nc);
        for (uint32_t i = 0; i < x->r->nc; i++) {
                const Contrib *c = &x->r->c[i];
                put_cs(b, rs->rules[c->rule].id);
                put_f(b, c->points);
                put_i(b, c->since);
                put_i(b, c->expires);
                put_i(b, c->rectify);
                put_s(b, c->event_id->s, c->event_id->len);
        }
        put_u(b, x->r->nf);
        for (uint32_t i = 0; i < x->r->nf; i++) {
                put_cs(b, rs->flags[x->r->f[i].flag]);
                buf_putc(b, (char)x->r->f[i].from_profile);
                put_i(b, x->r->f[i].until);
        }
        put_u(b, x->nks);
        for (uint32_t i = 0; i < x->nks; i++) {
                const KeyState *ks = &x->ks[i];
                const RuleInfo *ri = &e->ri[ks->rule];
                put_cs(b, rs->rules[ks->rule].id);
                buf_putc(b, (char)ks->keyed);
                if (ks->keyed) {
                        Str key = ks_key(ks);
                        put_s(b, key.p, key.len);
                }
                buf_putc(b, (char)ks->fired);
                put_i(b, rs->rules[ks->rule].timer_driven ? TIME_UNSET : ks->at); /* since */
                put_i(b, ks->last_fire);
                put_i(b, ks_due(e, ks));
                put_u(b, ks_has_snap(ks) ? ri->nsnap : 0);
                engine_snap_values(ks, ri, e->snapvals);
                for (uint32_t k = 0; ks_has_snap(ks) && k < ri->nsnap; k++) {
                        put_slot(e, b, ri->snap_slots[k]);
                        put_v(e, b, &e->snapvals[k], ri->snap_slots[k]);
                }
                size_t idlen;
                char idbuf[40];
                const char *id = engine_snap_id(ks, idbuf, &idlen);
                put_s(b, id, (uint32_t)idlen);
        }
        put_u(b, x->nw);
        for (uint32_t i = 0; i < x->nw; i++) {
                const Win *w = &x->w[i];
                const Aggregate *a = &rs->aggs[w->agg];
                put_u(b, e->agg_fp[w->agg]);
                put_u(b, a->nrow_slots);
                for (uint32_t k = 0; k < a->nrow_slots; k++)
                        put_slot(e, b, a->row_slots[k]);
                put_u(b, w->n);
                for (uint32_t r = 0; r < w->n; r++) {
                        uint32_t at = (w->head + r) % w->cap;
                        put_i(b, w->t[at]);
                        for (uint32_t k = 0; k < a->nrow_slots; k++)
                                put_v(e, b, &win_v(w)[(size_t)at * a->nrow_slots + k], a->row_slots[k]);
                }
        }
        put_u(b, x->nrecent);
        for (uint32_t i = 0; i < x->nrecent; i++) {
                /* oldest first */
                uint32_t at = (x->recent_pos + e->cfg.recent_ids - x->nrecent + i) % e->cfg.recent_ids;
                put_u(b, ent_recent(e, x)[at]);
        }
        /* the fingerprint of each contribution's and key state's rule, so
         * that a restore under rules where it changed drops them, as a
         * reload does (docs/rules.md §5.9); a reader that predates it
         * ignores it */
        buf_putc(b, 'F');
        for (uint32_t i = 0; i < x->r->nc; i++)
                put_u(b, rs->rules[x->r->c[i].rule].fingerprint);
        for (uint32_t i = 0; i < x->nks; i++)
                put_u(b, rs->rules[x->ks[i].rule].fingerprint);
        /* the official grade's state (grading.yaml official:), after the
         * fingerprints: a reader that predates it ignores it */
        const OffState *o = x->r->o;
        if (o && g->official.declared) {
                buf_putc(b, 'O');
                put_i(b, o->cycle);
                put_cs(b, o->assessed >= 0 ? g->bands[o->assessed].grade : "");
                put_i(b, o->carry);
                put_i(b, o->raise);
                put_i(b, o->lower);
                put_u(b, (uint64_t)o->provisional | (uint64_t)o->assess_due << 1);
                put_i(b, o->dyn_time);
                put_f(b, o->dyn);
                put_cs(b, o->dyn_rule >= 0 ? rs->rules[o->dyn_rule].id : "");
                put_cs(b, o->basis >= 0 ? rs->rules[o->basis].id : "");
                put_i(b, o->basis_time);
        }
}

/* The official state after the fingerprints, if the record has one and the
 * rules declare the official model; a rule named that no longer exists
 * leaves its reference empty (the evaluation and the steps stay: they are
 * facts of the cycle, not a rule's state). */
static void off_read(Engine *e, Ent *x, Rd *r)
{
        const RuleSet *rs = e->rs;
        const Grading *g = &rs->grading;
        if (r->bad || r->p >= r->end || *r->p != 'O')
                return;
        r->p++;
        OffState o = {.assessed = -1, .basis = -1, .dyn_rule = -1, .cycle_end = TIME_UNSET};
        uint32_t n;
        const char *s;
        o.cycle = get_i(r);
        s = get_s(r, &n);
        o.assessed = (int16_t)grade_by_name(g, s, n);
        /* steps are counts within a cycle (8 bits): outside, the record
         * is refused; a band they reach is clamped to the grading's */
        int64_t carry = get_i(r), raise = get_i(r), lower = get_i(r);
        if (carry < INT8_MIN || carry > INT8_MAX || raise < 0 || raise > INT8_MAX || lower < 0 || lower > INT8_MAX)
                r->bad = true;
        o.carry = (int8_t)(r->bad ? 0 : carry);
        o.raise = (int8_t)(r->bad ? 0 : raise);
        o.lower = (int8_t)(r->bad ? 0 : lower);
        uint64_t bits = get_u(r);
        if (bits > 3)
                r->bad = true;
        o.provisional = bits & 1;
        o.assess_due = (bits >> 1) & 1;
        o.dyn_time = get_i(r);
        o.dyn = get_fin(r);
        s = get_s(r, &n);
        o.dyn_rule = (int16_t)(n ? rule_by_id(e, s, n) : -1);
        s = get_s(r, &n);
        o.basis = (int16_t)(n ? rule_by_id(e, s, n) : -1);
        o.basis_time = get_i(r);
        if (r->bad || !g->official.declared)
                return;
        /* a grade the bands no longer have: assess again */
        if (o.assessed < 0)
                o.assess_due = 1;
        *ent_off(e, x) = o;
}

/* The state of rules whose fingerprint in the record (fp, by index in the
 * record; at[i]: the record index of the i-th kept item) differs from the
 * rule's now: dropped, as a reload drops a changed rule's. */
static bool drop_changed(Engine *e, Ent *x, Rd *r, uint64_t nc, const uint32_t *cat, uint64_t nks,
                         const uint32_t *kat)
{
        bool points = false;
        if (r->bad || r->p >= r->end || *r->p != 'F')
                return false; /* written before fingerprints were: kept by id */
        r->p++;
        uint64_t *fp = xmalloc((nc + nks + 1) * sizeof(uint64_t));
        for (uint64_t i = 0; i < nc + nks; i++)
                fp[i] = get_u(r);
        if (r->bad) {
                free(fp);
                return false;
        }
        const RuleSet *rs = e->rs;
        if (x->r != &rare_none) {
                EntRare *rr = ent_rare(e, x);
                uint32_t k = 0;
                for (uint32_t i = 0; i < rr->nc; i++) {
                        if (fp[cat[i]] != rs->rules[rr->c[i].rule].fingerprint) {
                                intern_put(&e->in, rr->c[i].event_id);
                                e->reload_dropped++;
                                /* a record holds no expired contribution
                                 * (each is pruned when the watermark
                                 * passes its expiry): these points counted */
                                points |= rr->c[i].points != 0;
                                continue;
                        }
                        rr->c[k++] = rr->c[i];
                }
                rr->nc = (uint16_t)k;
        }
        uint32_t k = 0;
        for (uint32_t i = 0; i < x->nks; i++) {
                if (fp[nc + kat[i]] != rs->rules[x->ks[i].rule].fingerprint) {
                        engine_ks_free(e, &x->ks[i]);
                        e->reload_dropped++;
                        continue;
                }
                x->ks[k++] = x->ks[i];
        }
        x->nks = (uint16_t)k;
        free(fp);
        return points;
}

static void ent_read(Engine *e, Ent *x, Rd *r)
{
        const RuleSet *rs = e->rs;
        const Grading *g = &rs->grading;
        uint32_t n;
        const char *s;
        if (get_b(r) != ENGINE_STATE_VERSION) {
                r->bad = true;
                return;
        }
        uint32_t dropped = e->reload_dropped;
        /* the static score (ent_static_score, derived from the bits): under
         * other rules, a static rule's new score shows against it */
        double static_before = get_fin(r);
        x->grade_clean = 0;
        /* a static rule's decision is kept under its id even when the rule
         * changed (it is decided again at the next profile update: the
         * fields it read are not all kept) */
        uint64_t nst = get_u(r);
        for (uint64_t i = 0; i < nst && !r->bad; i++) {
                s = get_s(r, &n);
                bool found = false;
                for (uint32_t k = 0; k < e->nstatic; k++)
                        if (s_eq(s, n, rs->rules[e->static_rules[k]].id)) {
                                ent_static(e, x)[k / 64] |= 1ull << (k % 64);
                                found = true;
                        }
                e->reload_dropped += !found;
        }
        /* the grading: a grade, held grade or mode the grading does not
         * have (a band or mode renamed or removed since the record was
         * written) restores the enterprise ungraded, to be graded again
         * (Ent.grade_lost): never a grade without its mode */
        uint32_t hn, gn, mn;
        const char *hs = get_s(r, &hn), *gs = get_s(r, &gn), *ms = get_s(r, &mn);
        int32_t held = grade_by_name(g, hs, hn), grade = grade_by_name(g, gs, gn), mode = mode_by_name(g, ms, mn);
        double per_year = get_fin(r);
        if (r->bad)
                return;
        if (grade >= 0 && mode >= 0 && (held >= 0 || !hn) && per_year >= 0) {
                x->held = (int16_t)held;
                x->grade = (int16_t)grade;
                x->mode = (int16_t)mode;
                x->per_year = per_year;
        } else if (gn || mn || hn) {
                x->grade_lost = 1;
                x->reload_dirty = 1;
        }
        ent_below_set(e, x, get_i(r));
        x->last_time = get_i(r);
        uint64_t np = get_u(r);
        for (uint64_t i = 0; i < np && !r->bad; i++) {
                int32_t at = get_slot_in(e, r, e->prof_slots, e->nprof);
                Value v = get_v(e, r, at >= 0 ? (int32_t)e->prof_slots[at] : -1);
                if (at >= 0) {
                        engine_prof_set(e, x, (uint32_t)at, v);
                        intern_value_put(&e->in, v);
                }
        }
        /* counts past what an enterprise can hold (16 bits) refuse the
         * record: no engine wrote it */
        uint64_t nc = get_u(r);
        if (nc > UINT16_MAX)
                r->bad = true;
        /* the record index of each one kept (at most 65535 are) */
        uint32_t *cat = xmalloc(((nc < 65536 ? nc : 65536) + 1) * sizeof(uint32_t));
        for (uint64_t i = 0; i < nc && !r->bad; i++) {
                s = get_s(r, &n);
                int32_t rule = rule_by_id(e, s, n);
                Contrib c = {.points = get_fin(r)};
                c.since = get_i(r);
                c.expires = get_i(r);
                c.rectify = get_i(r);
                s = get_s(r, &n);
                if (rule < 0 || r->bad) {
                        e->reload_dropped += !r->bad;
                        continue;
                }
                c.rule = (uint16_t)rule;
                c.event_id = intern_get(&e->in, s, n);
                EntRare *rr = ent_rare(e, x);
                if (rr->nc == rr->cc) {
                        rr->c = ent_grow(e, rr->c, &rr->cc, sizeof(Contrib));
                }
                cat[rr->nc] = (uint32_t)i;
                rr->c[rr->nc++] = c;
        }
        uint64_t nf = get_u(r);
        if (nf > UINT16_MAX)
                r->bad = true;
        for (uint64_t i = 0; i < nf && !r->bad; i++) {
                s = get_s(r, &n);
                int32_t flag = -1;
                for (uint32_t k = 0; k < rs->nflags && k < 64; k++) /* a flag is a bit of a uint64_t */
                        if (s_eq(s, n, rs->flags[k]))
                                flag = (int32_t)k;
                uint8_t fp = get_b(r);
                int64_t until = get_i(r);
                if (fp > 1)
                        r->bad = true;
                for (uint32_t k = 0; flag >= 0 && x->r != &rare_none && k < x->r->nf; k++)
                        if (x->r->f[k].flag == flag)
                                r->bad = true; /* a flag twice */
                if (r->bad)
                        break;
                if (flag < 0) {
                        e->reload_dropped++;
                        continue;
                }
                EntRare *rr = ent_rare(e, x);
                if (rr->nf == rr->cf) {
                        rr->f = ent_grow(e, rr->f, &rr->cf, sizeof(FlagState));
                }
                rr->f[rr->nf++] = (FlagState){.flag = (uint16_t)flag, .from_profile = fp, .until = until};
        }
        uint64_t nks = get_u(r);
        if (nks > UINT16_MAX)
                r->bad = true;
        uint32_t *kat = xmalloc(((nks < 65536 ? nks : 65536) + 1) * sizeof(uint32_t));
        /* key states kept per rule: no more than cfg.max_keys, as an event makes */
        uint32_t *nkeys = xcalloc(rs->nrules + 1, sizeof(uint32_t));
        for (uint64_t i = 0; i < nks && !r->bad; i++) {
                s = get_s(r, &n);
                int32_t rule = rule_by_id(e, s, n);
                KeyState ks = {.rule = (uint16_t)(rule < 0 ? 0 : rule)};
                uint8_t keyed = get_b(r);
                if (keyed > 1)
                        r->bad = true;
                /* a keyed state of a rule without per: (or the reverse) is
                 * one no event can reach: dropped, as is a key the record
                 * has twice or one past max_keys */
                if (rule >= 0 && keyed != (e->rs->rules[rule].per_slot >= 0))
                        rule = -1;
                if (keyed && !r->bad) {
                        s = get_s(r, &n);
                        if (rule >= 0 && !r->bad) {
                                for (uint32_t k = 0; k < x->nks; k++)
                                        if (x->ks[k].rule == rule && x->ks[k].keyed &&
                                            str_order(ks_key(&x->ks[k]), (Str){s, n}) == 0)
                                                rule = -1;
                                if (rule >= 0)
                                        engine_ks_key(e, &ks, s, n);
                        }
                } else if (rule >= 0) {
                        for (uint32_t k = 0; k < x->nks; k++)
                                if (x->ks[k].rule == rule)
                                        rule = -1;
                }
                if (rule >= 0 && nkeys[rule] >= e->cfg.max_keys)
                        rule = -1;
                ks.fired = get_b(r);
                if (ks.fired > 1)
                        r->bad = true;
                int64_t since = get_i(r);
                ks.last_fire = get_i(r);
                int64_t due = get_i(r);
                /* a for: key's timer is due for_ms after since, by construction */
                ks.at = rule >= 0 && e->rs->rules[rule].timer_driven ? due : since;
                ks.armed = due != TIME_UNSET;
                uint64_t nsnap = get_u(r);
                const RuleInfo *ri = rule >= 0 ? &e->ri[rule] : NULL;
                /* by snapshot index; slots the record lacks stay null */
                Value *vals = e->snapvals;
                for (uint32_t q = 0; ri && q < ri->nsnap; q++)
                        vals[q] = value_null();
                for (uint64_t k = 0; k < nsnap && !r->bad; k++) {
                        int32_t at = ri ? get_slot_in(e, r, ri->snap_slots, ri->nsnap) : get_slot_in(e, r, NULL, 0);
                        Value v = get_v(e, r, at >= 0 ? (int32_t)ri->snap_slots[at] : -1);
                        if (at >= 0) {
                                intern_value_put(&e->in, vals[at]);
                                vals[at] = v;
                        }
                }
                s = get_s(r, &n);
                if (ri && rule >= 0 && !r->bad && (nsnap || n))
                        engine_snap_set(e, &ks, ri, vals, false, s, n);
                for (uint32_t q = 0; ri && q < ri->nsnap; q++) {
                        intern_value_put(&e->in, vals[q]);
                        vals[q] = value_null();
                }
                if (rule < 0 || r->bad) {
                        e->reload_dropped += !r->bad;
                        engine_ks_free(e, &ks);
                        continue;
                }
                if (x->nks == x->cks) {
                        x->ks = ent_grow(e, x->ks, &x->cks, sizeof(KeyState));
                }
                kat[x->nks] = (uint32_t)i;
                x->ks[x->nks++] = ks;
                nkeys[rule]++;
        }
        uint64_t nw = get_u(r);
        for (uint64_t i = 0; i < nw && !r->bad; i++) {
                uint64_t fp = get_u(r);
                int32_t agg = -1;
                for (uint32_t k = 0; k < rs->naggs; k++)
                        if (e->agg_fp[k] == fp)
                                agg = (int32_t)k;
                uint64_t nrow = get_u(r);
                const Aggregate *a = agg >= 0 ? &rs->aggs[agg] : NULL;
                if (a && (nrow != a->nrow_slots || nrow > 64))
                        a = NULL;
                for (uint32_t k = 0; a && k < x->nw; k++)
                        if (x->w[k].agg == agg)
                                a = NULL; /* a window twice: the first kept */
                for (uint64_t k = 0; k < nrow && !r->bad; k++)
                        if (get_slot_in(e, r, a ? &a->row_slots[k] : NULL, a ? 1 : 0) < 0)
                                a = NULL;
                uint64_t rows = get_u(r);
                e->reload_dropped += !a && rows;
                Win *w = NULL;
                if (a && rows && !e->agg_keyed[agg]) {
                        if (x->nw == x->cw) {
                                x->w = ent_grow(e, x->w, &x->cw, sizeof(Win));
                        }
                        w = &x->w[x->nw++];
                        memset(w, 0, sizeof(*w));
                        w->agg = (uint16_t)agg;
                        w->cap = (uint32_t)(rows < e->cfg.max_window_rows ? rows : e->cfg.max_window_rows);
                        w->t = window_alloc(e, a, w->cap); /* running aggregates: rebuilt from the rows */
                }
                for (uint64_t q = 0; q < rows && !r->bad; q++) {
                        /* rows in arrival order, not necessarily in time
                         * order (held events released early): any time but
                         * none */
                        int64_t t = get_i(r);
                        if (t == TIME_UNSET)
                                r->bad = true;
                        Value tmp[64];
                        for (uint64_t k = 0; k < nrow; k++)
                                tmp[k < 64 ? k : 63] = get_v(e, r, w ? (int32_t)a->row_slots[k] : -1);
                        if (w && r->bad) { /* a row cut short: not kept */
                                for (uint64_t k = 0; k < nrow; k++)
                                        intern_value_put(&e->in, tmp[k]);
                                break;
                        }
                        if (!w)
                                continue;
                        if (w->n == w->cap) { /* more rows than the limit: keep the newest */
                                for (uint64_t k = 0; k < nrow; k++)
                                        intern_value_put(&e->in, win_v(w)[(size_t)w->head * nrow + k]);
                                w->head = (w->head + 1) % w->cap;
                                w->n--;
                        }
                        uint32_t at = (w->head + w->n) % w->cap;
                        w->t[at] = t;
                        memcpy(&win_v(w)[(size_t)at * nrow], tmp, nrow * sizeof(Value));
                        w->n++;
                }
        }
        uint64_t nr = get_u(r);
        for (uint64_t i = 0; i < nr && !r->bad; i++) {
                uint64_t h = get_u(r);
                if (!e->cfg.recent_ids)
                        continue;
                ent_recent(e, x)[x->recent_pos] = h;
                x->recent_pos = (uint16_t)((x->recent_pos + 1) % e->cfg.recent_ids);
                if (x->nrecent < e->cfg.recent_ids)
                        x->nrecent++;
        }
        bool points = nc < 65536 && nks < 65536 && drop_changed(e, x, r, nc, cat, nks, kat);
        off_read(e, x, r);
        free(cat);
        free(kat);
        free(nkeys);
        if (e->reload_dropped != dropped)
                x->reload_dirty = 1;
        if (!r->bad && (points || ent_static_score(e, x) != static_before)) {
                x->reload_dirty = 1;
                x->reload_rescored = 1;
        }
}

/* ---- the partition record ---- */

static int held_qcmp(const void *a, const void *b)
{
        return held_cmp(a, b);
}

/* The held events go in the order they will be applied: a restore (or an
 * abort) pushes them again in record order, which gives events of the same
 * time their arrival order back.  Sorted in place: a sorted array is a
 * heap. */
static void meta_write(Engine *e, int64_t next, Buf *b)
{
        xsort(e->held, e->nheld, sizeof(Held), held_qcmp);
        buf_putc(b, ENGINE_STATE_VERSION);
        put_i(b, e->max_time);
        put_i(b, e->wm);
        put_i(b, next);
        put_u(b, e->nheld);
        for (uint32_t i = 0; i < e->nheld; i++) {
                const Held *h = &e->held[i];
                put_cs(b, h->src.topic);
                put_i(b, h->src.partition);
                put_i(b, h->src.offset);
                put_s(b, h->bytes, h->len);
        }
        /* the rules the state is of: a restore under others grades again */
        buf_putc(b, 'V');
        put_cs(b, e->rs->version);
}

static int64_t meta_read(Engine *e, Rd *r)
{
        if (get_b(r) != ENGINE_STATE_VERSION) {
                r->bad = true;
                return -1;
        }
        e->max_time = get_i(r);
        e->wm = get_i(r);
        int64_t next = get_i(r); /* -1 or below: none (a reload's copy of a restore without one) */
        uint64_t n = get_u(r);
        for (uint32_t i = 0; i < e->nheld; i++) {
                free(e->held[i].bytes);
                free(e->held[i].topic);
        }
        e->nheld = 0;
        for (uint64_t i = 0; i < n && !r->bad; i++) {
                uint32_t tl, bl;
                const char *t = get_s(r, &tl);
                char *topic = xstrndup(t, tl);
                SourcePos src = {.topic = topic};
                int64_t part = get_i(r);
                if (part < INT32_MIN || part > INT32_MAX)
                        r->bad = true;
                src.partition = (int32_t)part;
                src.offset = get_i(r);
                const char *bytes = get_s(r, &bl);
                if (!r->bad)
                        engine_held_push(e, bytes, bl, &src);
                free(topic);
        }
        e->state_rules[0] = 0;
        if (!r->bad && r->p < r->end && *r->p == 'V') {
                r->p++;
                uint32_t vl;
                const char *v = get_s(r, &vl);
                if (!r->bad)
                        snprintf(e->state_rules, sizeof(e->state_rules), "%.*s", (int)vl, v);
        }
        return r->bad ? -1 : next;
}

/* ---- batches ---- */

/*
 * Two batches may be uncommitted at once (engine_batch_seal): the sealed
 * one, whose transaction the daemon commits while the next is processed,
 * and the open one.  The undo log holds a segment per batch: the sealed
 * batch's (each enterprise as that batch found it) then the open batch's
 * (each as the sealed batch left it: seal clears the touched marks, so
 * the open batch logs an enterprise again even if the sealed one did).
 * Committing the sealed batch drops its segment; an abort rolls back the
 * open segment, then the sealed one, newest first, and puts back the
 * partition state (watermark, held events) of the oldest batch's start.
 */

void state_untouch(Engine *e, Ent *ent)
{
        if (!ent->touched || e->ntouched <= e->nsealed || e->touched[e->ntouched - 1] != ent)
                return;
        e->ntouched--;
        if (e->undo_off[e->ntouched] != UINT64_MAX)
                e->undo.len = e->undo_off[e->ntouched];
        ent->touched = 0;
}

void state_touch(Engine *e, Ent *ent)
{
        if (!e->in_batch || ent->touched)
                return;
        ent->touched = 1;
        if (e->ntouched == e->ctouched) {
                e->ctouched = e->ctouched ? e->ctouched * 2 : 64;
                e->touched = xrealloc(e->touched, e->ctouched * sizeof(Ent *));
                e->undo_off = xrealloc(e->undo_off, e->ctouched * sizeof(uint64_t));
        }
        /* a new enterprise (never graded, nothing held) is removed on abort;
         * one the sealed batch logged is put back as that batch left it
         * (its own segment removes it, if it was new there) */
        bool fresh = !ent->sealed && ent->last_time == TIME_UNSET && ent->r->nc == 0 && ent->nw == 0 &&
                     ent->grade < 0;
        e->touched[e->ntouched] = ent;
        e->undo_off[e->ntouched] = fresh ? UINT64_MAX : e->undo.len;
        e->ntouched++;
        if (!fresh)
                ent_write(e, ent, &e->undo);
}

void engine_batch_begin(Engine *e)
{
        e->in_batch = true;
        e->ntouched = e->nsealed;
        e->undo.len = e->undo_sealed;
        e->meta_undo.len = 0;
        meta_write(e, 0, &e->meta_undo);
}

void engine_batch_changes(Engine *e, int64_t next_offset, EngineRecordFn fn, void *ud)
{
        Buf b = {0};
        for (uint32_t i = e->nsealed; i < e->ntouched; i++) {
                Ent *x = e->touched[i];
                b.len = 0;
                ent_write(e, x, &b);
                fn(ud, ent_key(x)->s, ent_key(x)->len, b.p, b.len);
        }
        b.len = 0;
        meta_write(e, next_offset, &b);
        fn(ud, ENGINE_META_KEY, sizeof(ENGINE_META_KEY) - 1, b.p, b.len);
        buf_free(&b);
}

void engine_batch_seal(Engine *e)
{
        if (!e->in_batch)
                return;
        for (uint32_t i = e->nsealed; i < e->ntouched; i++) {
                Ent *x = e->touched[i];
                x->touched = 0;
                x->sealed = 1;
                x->reload_dirty = 0; /* its record is written */
                x->reload_rescored = 0;
                x->grade_lost = 0;
        }
        if (!e->sealed) { /* else the two merge: the older start stays */
                Buf t = e->meta_sealed;
                e->meta_sealed = e->meta_undo;
                e->meta_undo = t;
                e->sealed_regrade = false;
        }
        e->sealed_regrade |= e->regrade_open;
        e->regrade_open = false;
        e->sealed = true;
        e->nsealed = e->ntouched;
        e->undo_sealed = e->undo.len;
        e->in_batch = false;
        e->meta_undo.len = 0;
}

bool engine_batch_sealed(const Engine *e)
{
        return e->sealed;
}

/* The sealed batch committed: its segment goes, the open batch's stays. */
static void sealed_commit(Engine *e)
{
        for (uint32_t i = 0; i < e->nsealed; i++)
                e->touched[i]->sealed = 0;
        uint32_t n = e->ntouched - e->nsealed;
        memmove(e->touched, e->touched + e->nsealed, n * sizeof(Ent *));
        for (uint32_t i = 0; i < n; i++) {
                uint64_t off = e->undo_off[e->nsealed + i];
                e->undo_off[i] = off == UINT64_MAX ? off : off - e->undo_sealed;
        }
        memmove(e->undo.p, e->undo.p + e->undo_sealed, e->undo.len - e->undo_sealed);
        e->undo.len -= e->undo_sealed;
        e->ntouched = n;
        e->nsealed = 0;
        e->undo_sealed = 0;
        e->sealed = false;
        e->sealed_regrade = false;
        e->meta_sealed.len = 0;
}

void engine_batch_commit(Engine *e)
{
        if (e->sealed) {
                sealed_commit(e);
                return;
        }
        for (uint32_t i = 0; i < e->ntouched; i++) {
                e->touched[i]->touched = 0;
                e->touched[i]->reload_dirty = 0; /* its record is written */
                e->touched[i]->reload_rescored = 0;
                e->touched[i]->grade_lost = 0;
        }
        e->regrade_open = false;
        e->in_batch = false;
        e->ntouched = 0;
        e->undo.len = 0;
        e->meta_undo.len = 0;
}

void engine_batch_abort(Engine *e)
{
        if (!e->in_batch && !e->sealed)
                return;
        if (e->regrade_open || e->sealed_regrade)
                e->regrade_due = true;
        /* newest first: the open segment, then the sealed one */
        for (uint32_t i = e->ntouched; i-- > 0;) {
                Ent *x = e->touched[i];
                if (e->undo_off[i] == UINT64_MAX) {
                        engine_ent_remove(e, x);
                        continue;
                }
                engine_ent_clear(e, x);
                Rd r = {(const unsigned char *)e->undo.p + e->undo_off[i],
                        (const unsigned char *)e->undo.p + e->undo.len, false};
                ent_read(e, x, &r);
                x->touched = 0;
                x->sealed = 0;
        }
        e->ntouched = e->nsealed = 0; /* some were freed: nothing left for commit to clear */
        const Buf *m = e->sealed ? &e->meta_sealed : &e->meta_undo;
        Rd r = {(const unsigned char *)m->p, (const unsigned char *)m->p + m->len, false};
        meta_read(e, &r);
        engine_timers_rebuild(e);
        e->sealed = false;
        e->sealed_regrade = false;
        e->undo_sealed = 0;
        e->meta_sealed.len = 0;
        engine_batch_commit(e);
}

/* ---- restore ---- */

int engine_restore_record(Engine *e, const char *key, size_t klen, const void *val, size_t vlen)
{
        Rd r = {val, (const unsigned char *)val + vlen, false};
        if (klen == sizeof(ENGINE_META_KEY) - 1 && memcmp(key, ENGINE_META_KEY, klen) == 0) {
                e->restore_next = meta_read(e, &r);
                return r.bad ? -EINVAL : 0;
        }
        Ent *x = engine_ent_get(e, key, (uint32_t)klen);
        if (!x)
                return -ENOSPC;
        engine_ent_clear(e, x);
        x->reload_dirty = 0; /* of an earlier record of the key, now replaced */
        x->reload_rescored = 0;
        x->grade_lost = 0;
        if (vlen == 0) { /* tombstone */
                engine_ent_remove(e, x);
                return 0;
        }
        ent_read(e, x, &r);
        return r.bad ? -EINVAL : 0;
}

int64_t engine_restore_finish(Engine *e)
{
        engine_timers_rebuild(e);
        if (e->state_rules[0] && strcmp(e->state_rules, e->rs->version) != 0) {
                /* the state is of other rules: grade everyone again (engine_regrade) */
                snprintf(e->reload_from, sizeof(e->reload_from), "%s", e->state_rules);
                e->regrade_due = true;
        }
        return e->restore_next;
}
