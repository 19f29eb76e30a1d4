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

int32_t grade_band(const Grading *g, double score)
{
        for (uint32_t i = 0; i < g->nbands; i++)
                if (!g->bands[i].has_max || score <= g->bands[i].max)
                        return (int32_t)i;
        return g->nbands ? (int32_t)g->nbands - 1 : -1;
}

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

double grade_score(Engine *e, Ent *ent, int64_t now)
{
        double s;
        if (ent_static_words(e) == 1) {
                uint64_t bits = ent_static(e, ent)[0];
                uint32_t i = (uint32_t)((bits * 0x9e3779b97f4a7c15ULL) >> 58);
                if (e->sscache[i].bits != bits) {
                        e->sscache[i].bits = bits;
                        e->sscache[i].score = ent_static_score(e, ent);
                }
                s = e->sscache[i].score;
        } else {
                s = ent_static_score(e, ent);
        }
        for (uint32_t i = 0; i < ent->r->nc; i++)
                if (ent->r->c[i].expires > now)
                        s += ent->r->c[i].points;
        return s;
}

uint64_t grade_live_flags(Ent *ent, int64_t now)
{
        uint64_t bits = 0;
        for (uint32_t i = 0; i < ent->r->nf; i++)
                if (ent->r->f[i].until > now)
                        bits |= 1ull << ent->r->f[i].flag;
        return bits;
}

void grade_update(Engine *e, Ent *ent, int64_t now, GradeCause cause, const char *cause_id, size_t cause_len)
{
        const Grading *g = &e->rs->grading;
        if (!g->nbands)
                return;
        prune(e, ent, now);
        double score = grade_score(e, ent, now);
        int32_t band = grade_band(g, score);
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
        int32_t grade = ent->held;
        int32_t mode = (int32_t)g->bands[grade].mode;
        double per_year = g->bands[grade].per_year;
        VmState st = {.score = score, .grade = grade, .mode = mode, .per_year = per_year,
                      .flags = grade_live_flags(ent, now)};
        VmFrame f = {.event = e->profbuf, .cur = e->profbuf, .profile = e->profbuf, .state = &st,
                     .now = now, .scratch = e->vmscratch, .scratch_size = sizeof(e->vmscratch)};
        /* An override that does not read the clock, seeing the inputs it saw
         * at the last regrade (grade_clean, the same band in force, every
         * override before it deciding the same), decides the same: its
         * result is reused.  The first one that decides differently ends
         * the reuse for the rest of the chain. */
        bool reuse = e->ov_reuse && ent->grade_clean && ent->held == held_before;
        uint16_t bits = 0;
        for (uint32_t i = 0; i < g->noverrides; i++) {
                const Override *o = &g->overrides[i];
                bool was = i < 16 && ((ent->ov_bits >> i) & 1), hit;
                if (reuse && !((e->ov_volatile >> i) & 1)) {
                        hit = was;
                } else {
                        if (i < 16)
                                engine_profile_need_some(e, ent, e->ov_prof[i]);
                        else
                                engine_profile_need(e, ent);
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
                else if (o->grade_step)
                        ng = grade + o->grade_step;
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
        ent->grade_clean = e->ov_reuse;
        bool first = ent->grade < 0;
        if (!first && grade == ent->grade && mode == ent->mode && per_year == ent->per_year)
                return;
        int16_t pg = ent->grade, pm = ent->mode;
        double pf = ent->per_year;
        ent->grade = (int16_t)grade;
        ent->mode = (int16_t)mode;
        ent->per_year = per_year;
        out_adjustment(e, ent, now, cause, cause_id, cause_len, pg, pm, pf, first, band, score);
}
