/*
 * What an enterprise stands at, read without changing it: the score (the
 * static part plus the live contributions), the band a score falls in,
 * the live flags, the official model's cycles and score, and the VM's
 * view of them (score_vmstate).  Apart from grade.c, which decides and
 * reports a grade change, so that what reads a score (the outputs, the
 * rules, the timers) does not depend on grading, nor grading on the
 * outputs through it: grade.c -> output.c -> score.c, no way back.
 */
#include <string.h>

#include "src/engine/engine.h"

int32_t score_band(const Grading *g, double score)
{
        for (uint32_t i = 0; i < g->nbands; i++)
                if (!g->bands[i].has_max || score <= g->bands[i].max)
                        return (int32_t)i;
        return g->nbands ? (int32_t)g->nbands - 1 : -1;
}

double score_of(Engine *e, Ent *ent, int64_t now)
{
        double s;
        if (ent_static_words(e) == 1 && !(ent_static(e, ent)[0] & e->plan.static_expr_mask)) {
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

uint64_t score_flags(Ent *ent, int64_t now)
{
        uint64_t bits = 0;
        for (uint32_t i = 0; i < ent->r->nf; i++)
                if (ent->r->f[i].until > now)
                        bits |= 1ull << ent->r->f[i].flag;
        return bits;
}

/* ---- the official model's cycle ---- */

#define DAY_MS 86400000LL

static int64_t floor_div(int64_t a, int64_t b)
{
        int64_t q = a / b;
        return q - ((a % b) != 0 && ((a < 0) != (b < 0)));
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil) and back. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
        y -= m <= 2;
        int64_t era = floor_div(y, 400);
        int64_t yoe = y - era * 400;
        int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m)
{
        z += 719468;
        int64_t era = floor_div(z, 146097);
        int64_t doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int64_t mp = (5 * doy + 2) / 153;
        *m = mp < 10 ? mp + 3 : mp - 9;
        *y = yoe + era * 400 + (*m <= 2);
}

/* The start of the cycle beginning in month mi (months since year 0). */
static int64_t month_start(const Official *of, int64_t mi)
{
        int64_t y = floor_div(mi, 12), m = mi - y * 12 + 1;
        return days_from_civil(y, m, of->start_day) * DAY_MS - of->offset_ms;
}

static int64_t local_month(const Official *of, int64_t t)
{
        int64_t y, m;
        civil_from_days(floor_div(t + of->offset_ms, DAY_MS), &y, &m);
        return y * 12 + (m - 1);
}

int64_t score_cycle_start(const Official *of, int64_t t)
{
        int64_t len = of->cycle_months, base = (int64_t)of->start_month - 1;
        int64_t mi = base + floor_div(local_month(of, t) - base, len) * len;
        int64_t c = month_start(of, mi);
        return c > t ? month_start(of, mi - len) : c;
}

int64_t score_cycle_next(const Official *of, int64_t c)
{
        return month_start(of, local_month(of, c) + of->cycle_months);
}

double score_static_capped(Engine *e, const Ent *x)
{
        double s = ent_static_score(e, x), max = e->rs->grading.official.static_max;
        return s > max ? max : s;
}

double score_official(Engine *e, const Ent *x)
{
        const Official *of = &e->rs->grading.official;
        double s = score_static_capped(e, x);
        const OffState *o = x->r->o;
        if (o && o->dyn_time != TIME_UNSET)
                return s + o->dyn;
        return of->scale_static ? s * (of->static_max + of->dynamic_max) / of->static_max : s;
}

/* Into *s field by field: a struct returned and copied whole was reloaded
 * as wide words right after narrow stores (a store-forwarding stall on
 * every rule evaluation). */
void score_vmstate(Engine *e, Ent *ent, int64_t now, VmState *s)
{
        s->score = score_of(e, ent, now);
        s->grade = ent->grade;
        s->mode = ent->mode;
        s->per_year = ent->per_year;
        s->flags = score_flags(ent, now);
}
