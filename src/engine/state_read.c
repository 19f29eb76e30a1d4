/*
 * The engine's state read back from records, formats 1 and 2, into a rule
 * set that may not be the one they were written under: a rule, flag,
 * grade, mode, field or aggregate that no longer exists is dropped (and
 * counted in reload_dropped), a rule whose fingerprint changed loses its
 * state, as a reload drops a changed rule's; the enterprise is marked to
 * be graded again.  A record that does not decode, or holds what no engine
 * writes (a count past 16 bits, a value of another type than its slot's, a
 * number that is not finite) is refused.
 *
 * Records of version 1 name everything in the record itself (the same
 * fields, in the same order); they are read as they always were.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/engine/state_int.h"

static int32_t get_slot_in(Engine *e, Rd *r, const uint32_t *cand, uint32_t ncand)
{
        uint32_t n;
        const char *p = get_s(r, &n);
        uint8_t t = get_b(r);
        return state_slot_in(e, p, n, t, cand, ncand);
}

/* A dictionary slot (format 2), its index checked; -1 out of range. */
static int32_t get_dslot(Rd *r)
{
        uint64_t i = get_u(r);
        if (i >= r->d->nslots) {
                r->bad = true;
                return -1;
        }
        return (int32_t)i;
}

/* The value tag of a field type (FieldType and ValueTag list the types in
 * one order, VT_NULL first). */
static uint8_t ft_tag(FieldType t)
{
        return (uint8_t)(t + 1);
}

/* A value into state (strings interned, or pointing into the record if
 * !intern); slot < 0: read and dropped.  A
 * value of another type than its slot's, or a number that is not finite,
 * refuses the record: the rules read a slot's value as of its type.
 * dslot: the dictionary's slot the value is of (format 2). */
static Value get_v_as(Engine *e, Rd *r, int32_t dslot, int32_t slot, bool intern)
{
        Value v = {.tag = get_b(r)};
        uint32_t n = 0;
        const char *s = "";
        if (v.tag == SNAP_IS_KEY && r->d && r->key.p) {
                s = r->key.p;
                n = r->key.len;
                v.tag = VT_STR;
        } else if (v.tag == VT_STR) {
                s = get_s(r, &n);
        }
        if (slot >= 0 && v.tag != VT_NULL && v.tag != ft_tag(e->rs->schema.slot_type[slot])) {
                r->bad = true;
                return value_null();
        }
        switch (v.tag) {
        case VT_NULL: break;
        case VT_BOOL: v.b = get_b(r) != 0; break;
        case VT_NUM: v.n = get_fin(r); break;
        case VT_STR:
                if (slot < 0 || r->bad)
                        return value_null();
                return intern ? intern_value(&e->in, value_str(s, n)) : value_str(s, n);
        case VT_ENUM: {
                const EnumDef *en = slot >= 0 ? e->rs->schema.slot_enum[slot] : NULL;
                if (r->d) {
                        uint64_t k = get_u(r);
                        DSlot *ds = dslot >= 0 ? &r->d->slots[dslot] : NULL;
                        if (!ds || k > ds->nenum) {
                                r->bad = true;
                                break;
                        }
                        v.e = -1;
                        if (!k || !en)
                                break;
                        if (ds->en_for != en) {
                                ds->en_map = xrealloc(ds->en_map, (ds->nenum + 1) * sizeof(int32_t));
                                for (uint32_t q = 0; q < ds->nenum; q++) {
                                        ds->en_map[q] = -1;
                                        for (uint32_t i = 0; i < en->nvalues; i++)
                                                if (s_eq(ds->enums[q].p, ds->enums[q].n, en->values[i]))
                                                        ds->en_map[q] = (int32_t)i;
                                }
                                ds->en_for = en;
                        }
                        v.e = ds->en_map[k - 1];
                        break;
                }
                s = get_s(r, &n);
                v.e = -1;
                for (uint32_t i = 0; en && n && i < en->nvalues; i++)
                        if (s_eq(s, n, en->values[i]))
                                v.e = (int32_t)i;
                break;
        }
        case VT_TIME: v.ms = get_t(r); break;
        case VT_DUR: v.ms = get_i(r); break;
        default: r->bad = true; v.tag = VT_NULL; break;
        }
        return slot >= 0 ? v : value_null();
}

static Value get_v(Engine *e, Rd *r, int32_t dslot, int32_t slot)
{
        return get_v_as(e, r, dslot, slot, true);
}

/* A rule: its index in the engine's rules, -1 none (removed); fp, if not
 * NULL, its fingerprint as the dictionary has it (format 2). */
static int32_t get_rule(Engine *e, Rd *r, uint64_t *fp)
{
        if (!r->d) {
                uint32_t n;
                const char *s = get_s(r, &n);
                return state_rule_by_id(e, s, n);
        }
        uint64_t i = get_u(r);
        if (i >= r->d->nrules) {
                r->bad = true;
                return -1;
        }
        if (fp)
                *fp = r->d->rules[i].fp;
        return r->d->rules[i].to;
}

/* A rule, a grade, a mode or a flag that may be none: *present whether the
 * record names one (format 1: a name not empty; 2: an index plus one). */
static int32_t get_opt(Engine *e, Rd *r, const int32_t *to, uint32_t nto, int32_t (*by_name)(Engine *, const char *, uint32_t),
                       bool *present)
{
        if (!r->d) {
                uint32_t n;
                const char *s = get_s(r, &n);
                *present = n != 0;
                return n ? by_name(e, s, n) : -1;
        }
        uint64_t i = get_u(r);
        *present = i != 0;
        if (i > nto) {
                r->bad = true;
                return -1;
        }
        return i ? to[i - 1] : -1;
}

static int32_t get_grade(Engine *e, Rd *r, bool *present)
{
        return get_opt(e, r, r->d ? r->d->band_to : NULL, r->d ? r->d->nbands : 0, state_grade_by_name, present);
}

static int32_t get_mode(Engine *e, Rd *r, bool *present)
{
        return get_opt(e, r, r->d ? r->d->mode_to : NULL, r->d ? r->d->nmodes : 0, state_mode_by_name, present);
}

static int32_t get_flag(Engine *e, Rd *r)
{
        bool present;
        if (!r->d)
                return get_opt(e, r, NULL, 0, state_flag_by_name, &present);
        uint64_t i = get_u(r); /* format 2: an index, never none */
        if (i >= r->d->nflags) {
                r->bad = true;
                return -1;
        }
        return r->d->flag_to[i];
}

/* A rule that may be none (the official state's references). */
static int32_t get_rule_opt(Engine *e, Rd *r)
{
        if (!r->d) {
                uint32_t n;
                const char *s = get_s(r, &n);
                return n ? state_rule_by_id(e, s, n) : -1;
        }
        uint64_t i = get_u(r);
        if (i > r->d->nrules) {
                r->bad = true;
                return -1;
        }
        return i ? r->d->rules[i - 1].to : -1;
}

/* The official state at the end of the record, if it has one and the
 * rules declare the official model; a rule named that no longer exists
 * leaves its reference empty (the evaluation and the steps stay: they are
 * facts of the cycle, not a rule's state). */
static void off_read(Engine *e, Ent *x, Rd *r)
{
        const Grading *g = &e->rs->grading;
        if (r->bad || r->p >= r->end || *r->p != 'O')
                return;
        r->p++;
        OffState o = {.assessed = -1, .basis = -1, .dyn_rule = -1, .cycle_end = TIME_UNSET};
        bool present;
        o.cycle = get_t(r);
        o.assessed = (int16_t)get_grade(e, r, &present);
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
        o.dyn_time = get_t(r);
        o.dyn = get_fin(r);
        o.dyn_rule = (int16_t)get_rule_opt(e, r);
        o.basis = (int16_t)get_rule_opt(e, r);
        o.basis_time = get_t(r);
        if (r->bad || !g->official.declared)
                return;
        /* a grade the bands no longer have: assess again */
        if (o.assessed < 0)
                o.assess_due = 1;
        *ent_off(e, x) = o;
}

/* The open alerts at the end of the record ('A'), if it has them (a
 * format 2 record written before them has none).  An alert of a rule that
 * is gone, or no longer has a lifecycle, is dropped (a reload reports it
 * closed, superseded: alerts_superseded_by_reload); one of a rule that
 * changed keeps its times: it opened under the rule as it was. */
static void alerts_read(Engine *e, Ent *x, Rd *r)
{
        if (r->bad || !r->d || r->p >= r->end || *r->p != 'A')
                return;
        r->p++;
        uint64_t n = get_u(r);
        if (n > ALERTS_MAX) /* never written: the record is refused */
                r->bad = true;
        for (uint64_t i = 0; i < n && !r->bad; i++) {
                int32_t rule = get_rule(e, r, NULL);
                OpenAlert a = {.id = get_8(r)};
                uint8_t st = get_b(r);
                a.opened = get_t(r);
                a.expires = get_t(r);
                a.deadline = get_t(r);
                uint8_t keyed = get_b(r);
                uint32_t klen = 0;
                const char *k = keyed ? get_s(r, &klen) : NULL;
                if (st > ALERT_ESCALATED || keyed > 1 || a.opened == TIME_UNSET)
                        r->bad = true;
                if (r->bad)
                        break;
                if (rule < 0 || !e->rs->rules[rule].lifecycle) {
                        e->reload_dropped++;
                        continue;
                }
                a.rule = (uint16_t)rule;
                a.state = st;
                if (a.expires == TIME_UNSET)
                        a.expires = TIME_FOREVER;
                a.key = keyed ? intern_get(&e->in, k, klen) : NULL;
                EntRare *rr = ent_rare(e, x);
                if (rr->na == rr->ca)
                        rr->a = ent_grow(e, rr->a, &rr->ca, sizeof(OpenAlert));
                rr->a[rr->na++] = a;
        }
}

/* The time of the latest change, at the very end of the record when a
 * timer acted after the last event (ent_changed); a record without it
 * (written before it was kept) takes the last event's time. */
static void changed_read(Engine *e, Ent *x, Rd *r)
{
        if (r->bad || r->p >= r->end || *r->p != 'C')
                return;
        r->p++;
        int64_t t = get_t(r);
        if (!r->bad && t != TIME_UNSET)
                ent_changed_set(e, x, t);
}

/* The grade history at the end of the record ('H'), if it has one (a
 * record written before it was kept has none).  A change to a grade or
 * mode the grading no longer has (renamed or removed by a reload) is
 * dropped: the history names grades as the rules in force do. */
static void history_read(Engine *e, Ent *x, Rd *r)
{
        bool here = !r->bad && r->d && r->p < r->end && *r->p == 'H';
        r->p += here;
        uint64_t n = here ? get_u(r) : 0;
        /* more than are kept was never written: the record is refused */
        r->bad |= n > GRADE_HISTORY_MAX;
        for (uint64_t i = 0; i < n && !r->bad; i++) {
                GradeChange c = {.ts = get_t(r), .id = get_8(r)};
                bool gn, mn;
                int32_t grade = get_grade(e, r, &gn), mode = get_mode(e, r, &mn);
                c.per_year = get_fin(r);
                uint64_t cause = get_u(r);
                if (c.ts == TIME_UNSET || !gn || !mn || cause >= CAUSE_COUNT || c.per_year < 0)
                        r->bad = true;
                if (r->bad)
                        break;
                if (grade < 0 || mode < 0) {
                        e->reload_dropped++;
                        continue;
                }
                c.grade = (int16_t)grade;
                c.mode = (int16_t)mode;
                c.cause = (uint8_t)cause;
                EntRare *rr = ent_rare(e, x);
                if (rr->nh == rr->ch)
                        rr->h = ent_grow(e, rr->h, &rr->ch, sizeof(GradeChange));
                rr->h[rr->nh++] = c;
        }
}

/* The state of rules whose fingerprint as written (cfp of the
 * contributions, kfp of the key states, by index in the record; cat[i],
 * kat[i]: the record index of the i-th kept) differs from the rule's now: dropped, as a reload
 * drops a changed rule's.  Returns whether points were dropped. */
static bool drop_changed(Engine *e, Ent *x, const uint64_t *cfp, const uint32_t *cat, const uint64_t *kfp,
                         const uint32_t *kat)
{
        bool points = false;
        const RuleSet *rs = e->rs;
        if (x->r != &rare_none) {
                EntRare *rr = ent_rare(e, x);
                uint32_t k = 0;
                for (uint32_t i = 0; i < rr->nc; i++) {
                        if (cfp[cat[i]] != rs->rules[rr->c[i].rule].fingerprint) {
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
                if (kfp[kat[i]] != rs->rules[x->ks[i].rule].fingerprint) {
                        ent_ks_free(e, &x->ks[i]);
                        e->reload_dropped++;
                        continue;
                }
                x->ks[k++] = x->ks[i];
        }
        x->nks = (uint16_t)k;
        return points;
}

/* Format 1: the fingerprints after the recent ids ('F'), if the record has
 * them (one written before they were keeps its state by id). */
static bool fp_read(Rd *r, uint64_t *cfp, uint64_t nc, uint64_t *kfp, uint64_t nks)
{
        if (r->bad || r->p >= r->end || *r->p != 'F')
                return false;
        r->p++;
        for (uint64_t i = 0; i < nc; i++)
                cfp[i] = get_u(r);
        for (uint64_t i = 0; i < nks; i++)
                kfp[i] = get_u(r);
        return !r->bad;
}

/* The header: format 1 its version byte; format 2 the version, the
 * dictionary (known, else the record is refused) and the base time. */
static void ent_head(Engine *e, Rd *r)
{
        uint8_t v = get_b(r);
        if (v == ENGINE_STATE_VERSION_1)
                return;
        if (v != ENGINE_STATE_VERSION) {
                r->bad = true;
                return;
        }
        uint64_t id = get_8(r);
        r->d = r->bad ? NULL : state_dict_find(e, id);
        if (!r->d) {
                r->bad = true;
                return;
        }
        r->base = get_i(r);
}

/* Room in ent_read's arrays of fingerprints (*fp) and record indexes
 * (*at) for the n contributions or key states of a record (a count past
 * 65535 refuses it: no more are read). */
static void fp_room(uint64_t **fp, uint32_t **at, size_t *cap, uint64_t n)
{
        size_t want = (n < 65536 ? n : 65536) + 1;
        if (want > *cap) {
                *cap = want;
                *fp = xrealloc(*fp, want * sizeof(uint64_t));
                *at = xrealloc(*at, want * sizeof(uint32_t));
        }
}

static void ent_read(Engine *e, Ent *x, Rd *r)
{
        const RuleSet *rs = e->rs;
        uint32_t n;
        const char *s;
        char idbuf[40];
        ent_head(e, r);
        if (r->bad)
                return;
        const StateDict *d = r->d;
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
                int32_t rule = get_rule(e, r, NULL);
                bool found = false;
                for (uint32_t k = 0; rule >= 0 && k < e->plan.nstatic; k++)
                        if (e->plan.static_rules[k] == (uint32_t)rule) {
                                ent_static(e, x)[k / 64] |= 1ull << (k % 64);
                                found = true;
                        }
                e->reload_dropped += !found && !r->bad;
        }
        /* the grading: a grade, held grade or mode the grading does not
         * have (a band or mode renamed or removed since the record was
         * written) restores the enterprise ungraded, to be graded again
         * (Ent.grade_lost): never a grade without its mode */
        bool hn, gn, mn;
        int32_t held = get_grade(e, r, &hn), grade = get_grade(e, r, &gn), mode = get_mode(e, r, &mn);
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
        ent_below_set(e, x, get_t(r));
        x->last_time = get_t(r);
        uint64_t np = get_u(r);
        for (uint64_t i = 0; i < np && !r->bad; i++) {
                int32_t ds = -1, at;
                if (d) {
                        ds = get_dslot(r);
                        at = ds >= 0 ? d->slots[ds].prof : -1;
                } else {
                        at = get_slot_in(e, r, e->plan.prof_slots, e->plan.nprof);
                }
                /* a string as the record has it: the profile keeps a copy */
                Value v = get_v_as(e, r, ds, at >= 0 ? (int32_t)e->plan.prof_slots[at] : -1, false);
                if (at >= 0)
                        ent_prof_set(e, x, (uint32_t)at, v);
        }
        /* counts past what an enterprise can hold (16 bits) refuse the
         * record: no engine wrote it */
        uint64_t nc = get_u(r);
        if (nc > UINT16_MAX)
                r->bad = true;
        /* each one's fingerprint as written, contributions then key states
         * (format 2: the dictionary's; 1: read at the end) */
        StateDicts *sd = state_dicts(e);
        fp_room(&sd->cfp, &sd->cat, &sd->ccap, nc);
        uint64_t *cfp = sd->cfp;
        /* the record index of each one kept (at most 65535 are) */
        uint32_t *cat = sd->cat;
        for (uint64_t i = 0; i < nc && !r->bad; i++) {
                uint64_t rfp = 0;
                int32_t rule = get_rule(e, r, &rfp);
                cfp[i] = rfp;
                Contrib c = {.points = get_fin(r)};
                c.since = get_t(r);
                c.expires = get_t(r);
                c.rectify = get_t(r);
                s = get_id(r, &n, idbuf);
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
                int32_t flag = get_flag(e, r);
                uint8_t fpr = get_b(r);
                int64_t until = get_t(r);
                if (fpr > 1)
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
                rr->f[rr->nf++] = (FlagState){.flag = (uint16_t)flag, .from_profile = fpr, .until = until};
        }
        uint64_t nks = get_u(r);
        if (nks > UINT16_MAX)
                r->bad = true;
        fp_room(&sd->kfp, &sd->kat, &sd->kcap, nks);
        uint32_t *kat = sd->kat;
        uint64_t *kfp = sd->kfp;
        /* key states kept per rule: no more than cfg.max_keys, as an event makes */
        if (rs->nrules + 1 > sd->nkcap) {
                sd->nkcap = rs->nrules + 1;
                sd->nkeys = xrealloc(sd->nkeys, sd->nkcap * sizeof(uint32_t));
        }
        uint32_t *nkeys = sd->nkeys;
        memset(nkeys, 0, (rs->nrules + 1) * sizeof(uint32_t));
        for (uint64_t i = 0; i < nks && !r->bad; i++) {
                /* format 2: the rule's snapshot slots are the dictionary's */
                const DRule *dr = NULL;
                int32_t rule;
                if (d) {
                        uint64_t di = get_u(r);
                        dr = di < d->nrules ? &d->rules[di] : NULL;
                        r->bad |= !dr;
                        rule = dr ? dr->to : -1;
                        kfp[i] = dr ? dr->fp : 0;
                } else {
                        rule = get_rule(e, r, NULL);
                }
                KeyState ks = {.rule = (uint16_t)(rule < 0 ? 0 : rule)};
                uint8_t keyed = get_b(r);
                if (keyed > 1)
                        r->bad = true;
                /* a keyed state of a rule without per: (or the reverse) is
                 * one no event can reach: dropped, as is a key the record
                 * has twice or one past max_keys */
                if (rule >= 0 && keyed != (e->rs->rules[rule].per_slot >= 0))
                        rule = -1;
                r->key = (Str){NULL, 0};
                if (keyed && !r->bad) {
                        s = get_s(r, &n);
                        r->key = (Str){s, n};
                        if (rule >= 0 && !r->bad) {
                                for (uint32_t k = 0; k < x->nks; k++)
                                        if (x->ks[k].rule == rule && x->ks[k].keyed &&
                                            str_order(ks_key(&x->ks[k]), (Str){s, n}) == 0)
                                                rule = -1;
                                if (rule >= 0)
                                        ent_ks_key(e, &ks, s, n);
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
                int64_t since = get_t(r);
                ks.last_fire = get_t(r);
                int64_t due = get_t(r);
                /* a for: key's timer is due for_ms after since, by construction */
                ks.at = rule >= 0 && e->rs->rules[rule].timer_driven ? due : since;
                ks.armed = due != TIME_UNSET;
                uint64_t nsnap = get_u(r);
                if (d && (!dr || (nsnap && nsnap != dr->nsnap)))
                        r->bad = true; /* format 2: all of the rule's slots, or none */
                const RuleInfo *ri = rule >= 0 ? &e->plan.ri[rule] : NULL;
                /* by snapshot index; slots the record lacks stay null */
                Value *vals = e->snapvals;
                for (uint32_t q = 0; ri && q < ri->nsnap; q++)
                        vals[q] = value_null();
                for (uint64_t k = 0; k < nsnap && !r->bad; k++) {
                        int32_t ds = -1, at;
                        if (d) {
                                ds = (int32_t)dr->snap[k];
                                at = ri ? dr->snap_at[k] : -1;
                        } else {
                                at = ri ? get_slot_in(e, r, ri->snap_slots, ri->nsnap) : get_slot_in(e, r, NULL, 0);
                        }
                        Value v = get_v(e, r, ds, at >= 0 ? (int32_t)ri->snap_slots[at] : -1);
                        if (at >= 0) {
                                intern_value_put(&e->in, vals[at]);
                                vals[at] = v;
                        }
                }
                r->key = (Str){NULL, 0};
                s = get_id(r, &n, idbuf);
                if (ri && rule >= 0 && !r->bad && (nsnap || n))
                        ent_snap_set(e, &ks, ri, vals, false, s, n);
                for (uint32_t q = 0; ri && q < ri->nsnap; q++) {
                        intern_value_put(&e->in, vals[q]);
                        vals[q] = value_null();
                }
                if (rule < 0 || r->bad) {
                        e->reload_dropped += !r->bad;
                        ent_ks_free(e, &ks);
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
                int32_t agg = -1;
                uint64_t nrow;
                const DAgg *da = NULL;
                const Aggregate *a = NULL;
                if (d) {
                        uint64_t di = get_u(r);
                        if (di >= d->naggs) {
                                r->bad = true;
                                break;
                        }
                        da = &d->aggs[di];
                        agg = da->to;
                        nrow = da->nrow;
                        a = agg >= 0 ? &rs->aggs[agg] : NULL;
                } else {
                        uint64_t afp = get_u(r);
                        for (uint32_t k = 0; k < rs->naggs; k++)
                                if (e->plan.agg_fp[k] == afp)
                                        agg = (int32_t)k;
                        nrow = get_u(r);
                        a = agg >= 0 ? &rs->aggs[agg] : NULL;
                        if (a && (nrow != a->nrow_slots || nrow > 64))
                                a = NULL;
                        for (uint64_t k = 0; k < nrow && !r->bad; k++)
                                if (get_slot_in(e, r, a ? &a->row_slots[k] : NULL, a ? 1 : 0) < 0)
                                        a = NULL;
                }
                for (uint32_t k = 0; a && k < x->nw; k++)
                        if (x->w[k].agg == agg)
                                a = NULL; /* a window twice: the first kept */
                uint64_t rows = get_u(r);
                e->reload_dropped += !a && rows;
                Win *w = NULL;
                if (a && rows && !e->plan.agg_keyed[agg]) {
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
                        int64_t t = get_t(r);
                        if (t == TIME_UNSET)
                                r->bad = true;
                        Value tmp[64];
                        for (uint64_t k = 0; k < nrow; k++)
                                tmp[k < 64 ? k : 63] = get_v(e, r, da ? (int32_t)da->rows[k] : -1,
                                                             w ? (int32_t)a->row_slots[k] : -1);
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
                uint64_t h = d ? get_8(r) : get_u(r);
                if (!e->cfg.recent_ids)
                        continue;
                ent_recent(e, x)[x->recent_pos] = h;
                x->recent_pos = (uint16_t)((x->recent_pos + 1) % e->cfg.recent_ids);
                if (x->nrecent < e->cfg.recent_ids)
                        x->nrecent++;
        }
        bool points = false;
        if (!r->bad && (d || fp_read(r, cfp, nc, kfp, nks)))
                points = drop_changed(e, x, cfp, cat, kfp, kat);
        off_read(e, x, r);
        alerts_read(e, x, r);
        changed_read(e, x, r);
        history_read(e, x, r);
        if (e->reload_dropped != dropped)
                x->reload_dirty = 1;
        if (!r->bad && (points || ent_static_score(e, x) != static_before)) {
                x->reload_dirty = 1;
                x->reload_rescored = 1;
        }
}

int state_ent_read(Engine *e, Ent *x, const void *val, size_t len)
{
        Rd r = {val, (const unsigned char *)val + len, false};
        ent_read(e, x, &r);
        assert(r.p <= r.end); /* the readers stop at the record's end */
        return r.bad ? -EINVAL : 0;
}

int64_t state_meta_read(Engine *e, Rd *r)
{
        if (get_b(r) != ENGINE_META_VERSION) {
                r->bad = true;
                return -1;
        }
        e->max_time = get_i(r);
        e->wm = get_i(r);
        int64_t next = get_i(r); /* -1 or below: none (a reload's copy of a restore without one) */
        uint64_t n = get_u(r);
        for (uint32_t i = 0; i < e->hold.nheld; i++) {
                free(e->hold.held[i].bytes);
                free(e->hold.held[i].topic);
        }
        e->hold.nheld = 0;
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
