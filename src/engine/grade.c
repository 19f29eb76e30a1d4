/*
 * Grading: score → band → hysteresis → overrides → (grade, mode,
 * inspections a year), and the adjustment when that triple changes.
 *
 * The score is the static part (profile rules, replaced at each profile
 * update) plus the points of every live contribution.  A band rises at once;
 * it falls only after the score has stayed below the band in force for the
 * dwell (a timer at below_since + dwell re-grades even without events).
 * Overrides apply in order to the band in force; a grade change by an
 * override resets mode and frequency to that grade's band, so later
 * overrides see and adjust the new grade's values.
 */
#include <math.h>
#include <string.h>

#include "src/engine/engine.h"

/* Drop contributions and flags that expired by now.  Each has a timer at
 * its expiry that regrades, so between regrades nothing expires unseen:
 * grade_clean stays true only while score and flags are what the last
 * regrade saw. */
static void prune(Engine *e, Ent *ent, int64_t now)
{
        if (ent->r == &rare_none)
                return;
        EntRare *r = ent_rare(e, ent);
        uint32_t k = 0;
        for (uint32_t i = 0; i < r->nc; i++) {
                if (r->c[i].expires <= now) {
                        intern_put(&e->in, r->c[i].event_id);
                        continue;
                }
                r->c[k++] = r->c[i];
        }
        if (k != r->nc)
                ent->grade_clean = 0;
        r->nc = (uint16_t)k;
        k = 0;
        for (uint32_t i = 0; i < r->nf; i++)
                if (r->f[i].until > now)
                        r->f[k++] = r->f[i];
        if (k != r->nf)
                ent->grade_clean = 0;
        r->nf = (uint16_t)k;
}

void grade_cycle_roll(Engine *e, Ent *x, int64_t now)
{
        const Official *of = &e->rs->grading.official;
        OffState *o = ent_off(e, x);
        /* most regrades fall in the cycle last found: no calendar */
        if (o->cycle_end != TIME_UNSET && now >= o->cycle && now < o->cycle_end)
                return;
        int64_t c = score_cycle_start(of, now);
        if (o->cycle == c) {
                o->cycle_end = score_cycle_next(of, c);
                return;
        }
        /* the steps of the cycle just ended carry into the next one's
         * assessment (M2016: 下一年度调高); after a cycle without a regrade,
         * or under a changed cycle, nothing carries */
        bool next = o->cycle != TIME_UNSET && c > o->cycle && score_cycle_next(of, o->cycle) == c;
        o->carry = next ? (int8_t)(o->raise - o->lower) : 0;
        o->raise = o->lower = 0;
        o->cycle = c;
        o->cycle_end = score_cycle_next(of, c);
        o->assess_due = 1;
        /* the next cycle's assessment comes by timer, with or without events */
        timer_want(e, x, o->cycle_end, false);
}

static int32_t clamp_band(const Grading *g, int32_t b)
{
        return b < 0 ? 0 : b >= (int32_t)g->nbands ? (int32_t)g->nbands - 1 : b;
}

/* The official grade before the overrides: the cycle's assessment (made
 * at the first regrade of a cycle; while provisional, without an
 * evaluation, at every regrade, so that it follows the static part until
 * the first evaluation) moved by the steps within the cycle; lo and hi
 * bound what relative overrides may do. */
static int32_t official_grade(Engine *e, Ent *ent, int64_t now, int32_t *lo, int32_t *hi)
{
        const Grading *g = &e->rs->grading;
        const Official *of = &g->official;
        grade_cycle_roll(e, ent, now);
        OffState *o = ent->r->o;
        if (o->assess_due || o->assessed < 0 || o->provisional) {
                o->assessed = (int16_t)clamp_band(g, score_band(g, score_official(e, ent)) + o->carry);
                o->provisional = o->dyn_time == TIME_UNSET;
                o->assess_due = 0;
        }
        *lo = clamp_band(g, o->assessed - of->max_lower);
        *hi = clamp_band(g, o->assessed + of->max_raise);
        int32_t grade = o->assessed + o->raise - o->lower;
        return grade < *lo ? *lo : grade > *hi ? *hi : grade;
}

void grade_history_add(Engine *e, Ent *x, int64_t t, GradeCause cause, uint64_t id)
{
        EntRare *r = ent_rare(e, x);
        if (r->nh == GRADE_HISTORY_MAX) {
                memmove(r->h, r->h + 1, (GRADE_HISTORY_MAX - 1) * sizeof(GradeChange));
                r->nh--;
        } else if (r->nh == r->ch) {
                r->h = ent_grow(e, r->h, &r->ch, sizeof(GradeChange));
        }
        r->h[r->nh++] = (GradeChange){.ts = t, .id = id, .per_year = x->per_year, .grade = x->grade,
                                      .mode = x->mode, .cause = (uint8_t)cause};
}

void grade_update(Engine *e, Ent *ent, int64_t now, GradeCause cause, const char *cause_id, size_t cause_len)
{
        const Grading *g = &e->rs->grading;
        if (!g->nbands)
                return;
        prune(e, ent, now);
        double score = score_of(e, ent, now);
        int32_t band = score_band(g, score);
        int16_t held_before = ent->held;
        if (ent->held < 0 || band > ent->held) {
                ent->held = (int16_t)band;
                ent_below_set(e, ent, TIME_UNSET);
        } else if (band < ent->held) {
                /* dwell 0: no hysteresis, the band falls at once */
                if (ent->r->below_since == TIME_UNSET && g->dwell_ms) {
                        ent_below_set(e, ent, now);
                        timer_want(e, ent, time_add_sat(now, g->dwell_ms), false);
                }
                if (!g->dwell_ms || time_sub_sat(now, ent->r->below_since) >= g->dwell_ms) {
                        ent->held = (int16_t)band;
                        ent_below_set(e, ent, TIME_UNSET);
                }
        } else {
                ent_below_set(e, ent, TIME_UNSET);
        }
        assert(ent->held >= 0 && ent->held < (int32_t)g->nbands); /* a band is in force once graded */
        int32_t grade = ent->held, lo = 0, hi = (int32_t)g->nbands - 1;
        bool base_same = ent->held == held_before;
        if (g->official.declared) {
                /* the grade is the official one; the held band is the
                 * index's.  The overrides' results are reused while the
                 * official grade they start from holds. */
                const OffState *o = ent->r->o;
                int32_t before = o && o->assessed >= 0 ? o->assessed + o->raise - o->lower : -1;
                int16_t assessed_before = o ? o->assessed : -1;
                grade = official_grade(e, ent, now, &lo, &hi);
                o = ent->r->o;
                base_same = before == o->assessed + o->raise - o->lower && assessed_before == o->assessed;
        }
        int32_t mode = (int32_t)g->bands[grade].mode;
        double per_year = g->bands[grade].per_year;
        VmState st = {.score = score, .grade = grade, .mode = mode, .per_year = per_year,
                      .flags = score_flags(ent, now)};
        VmFrame f = {.event = e->profbuf, .cur = e->profbuf, .profile = e->profbuf, .state = &st,
                     .now = now, .scratch = e->vmscratch, .scratch_size = sizeof(e->vmscratch)};
        /* An override that does not read the clock, seeing the inputs it saw
         * at the last regrade (grade_clean, the same band in force, every
         * override before it deciding the same), decides the same: its
         * result is reused.  The first one that decides differently ends
         * the reuse for the rest of the chain. */
        bool reuse = e->plan.ov_reuse && ent->grade_clean && base_same;
        uint16_t bits = 0;
        for (uint32_t i = 0; i < g->noverrides; i++) {
                const Override *o = &g->overrides[i];
                bool was = i < 16 && ((ent->ov_bits >> i) & 1), hit;
                if (reuse && !((e->plan.ov_volatile >> i) & 1)) {
                        hit = was;
                } else {
                        if (i < 16)
                                ent_profile_need_some(e, ent, e->plan.ov_prof[i]);
                        else
                                ent_profile_need(e, ent);
                        hit = vm_test(e->rs, o->when, &f);
                        reuse = reuse && hit == was;
                }
                if (i < 16)
                        bits |= (uint16_t)((unsigned)hit << i);
                if (!hit)
                        continue;
                int32_t ng = grade;
                if (o->grade >= 0)
                        ng = o->grade;
                else if (o->grade_step) {
                        ng = grade + o->grade_step;
                        /* under the official model a step stays within
                         * the cycle's bounds (max_raise, max_lower) */
                        if (ng > hi && o->grade_step > 0)
                                ng = grade > hi ? grade : hi;
                        if (ng < lo && o->grade_step < 0)
                                ng = grade < lo ? grade : lo;
                }
                if (ng < 0)
                        ng = 0;
                if (ng >= (int32_t)g->nbands)
                        ng = (int32_t)g->nbands - 1;
                if (ng != grade) {
                        grade = ng;
                        mode = (int32_t)g->bands[grade].mode;
                        per_year = g->bands[grade].per_year;
                }
                if (o->mode >= 0)
                        mode = o->mode;
                if (o->has_per_year)
                        per_year = o->per_year;
                per_year += o->per_year_step;
                st.grade = grade;
                st.mode = mode;
                st.per_year = per_year;
        }
        ent->ov_bits = bits;
        ent->grade_clean = e->plan.ov_reuse;
        bool first = ent->grade < 0;
        bool index_moved = g->official.declared && ent->held != held_before && held_before >= 0;
        if (!first && grade == ent->grade && mode == ent->mode && per_year == ent->per_year && !index_moved)
                return;
        int16_t pg = ent->grade, pm = ent->mode;
        double pf = ent->per_year;
        ent->grade = (int16_t)grade;
        ent->mode = (int16_t)mode;
        ent->per_year = per_year;
        out_adjustment(e, ent, now, cause, cause_id, cause_len, pg, pm, pf, first, band, score, held_before);
}
