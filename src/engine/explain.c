/*
 * The enterprise document (riskd.enterprise/1: the explain view and the
 * table topic's value, engine_explain_json, engine_batch_enterprises,
 * engine_enterprises_write), the explain view for people
 * (engine_explain_text) and the grades file (engine_grades_write): what
 * reads an enterprise's whole state, where output.c writes what one
 * change emits (alerts, alert states, adjustments).  Apart from it so that
 * each stays under the size of a file one reads whole; the pieces both
 * write (flags, contributions, the official grade's object) are
 * output.c's, declared in engine.h.  Field order is fixed and nothing
 * depends on hash order, so equal state gives equal bytes.
 */
#include <stdlib.h>

#include "src/engine/engine.h"
#include "src/util/json.h"

/* The open alerts of the enterprise document: its alerts of rules with a
 * lifecycle that are open or escalated (alerts.c), in the order they
 * opened, as the alert-state documents name them (docs/outputs.md §10). */
static void open_alerts_json(Engine *e, Buf *b, const Ent *ent)
{
        buf_putc(b, '[');
        for (uint32_t i = 0; i < ent->r->na; i++) {
                buf_puts(b, i ? ",{" : "{");
                out_open_alert(e, b, &ent->r->a[i]);
                buf_putc(b, '}');
        }
        buf_putc(b, ']');
}

/* The grade history of the enterprise document, oldest first: what each
 * adjustment it keeps made the enterprise (the array EntRare.h). */
static void grade_history_json(Engine *e, Buf *b, const Ent *ent)
{
        const Grading *g = &e->rs->grading;
        buf_putc(b, '[');
        for (uint32_t i = 0; i < ent->r->nh; i++) {
                const GradeChange *c = &ent->r->h[i];
                buf_puts(b, i ? ",{\"ts\":" : "{\"ts\":");
                out_time(b, c->ts);
                buf_puts(b, ",\"adjustment_id\":");
                out_hex_id(b, c->id);
                buf_puts(b, ",\"cause\":\"");
                buf_puts(b, engine_cause_names[c->cause]);
                buf_puts(b, "\",\"grade\":");
                json_put_str_or_null(b, g->bands[c->grade].grade);
                buf_puts(b, ",\"mode\":");
                json_put_str_or_null(b, g->modes[c->mode]);
                buf_puts(b, ",\"inspections_per_year\":");
                out_num(b, c->per_year);
                buf_putc(b, '}');
        }
        buf_putc(b, ']');
}

/* The enterprise document (riskd.enterprise/1): the explain view and the
 * table topic's value alike, so that the two are equal by construction.
 * It is evaluated at the enterprise's latest change (ent_changed), not at
 * the watermark: between two changes of the enterprise nothing in it moves
 * (every expiry and the dwell act by a timer that changes it), so the last
 * document written for an enterprise is the one explain gives, whatever
 * the batches were. */
void out_explain(Engine *e, Ent *ent, Buf *b)
{
        const Grading *g = &e->rs->grading;
        int64_t now = ent_changed(ent);
        if (now == TIME_UNSET) /* no event applied (a restored record of none) */
                now = e->wm == TIME_UNSET ? 0 : e->wm;
        double score = score_of(e, ent, now);
        int32_t band = score_band(g, score);
        buf_puts(b, "{\"schema\":\"riskd.enterprise/1\",\"enterprise_id\":");
        buf_json_str(b, ent_key(ent)->s, ent_key(ent)->len);
        buf_puts(b, ",\"as_of\":");
        out_time(b, now);
        out_score_json(e, b, ent, score, band);
        buf_puts(b, ",\"held_band\":");
        json_put_str_or_null(b, ent->held >= 0 ? g->bands[ent->held].grade : NULL);
        buf_puts(b, ",\"below_since\":");
        if (ent->r->below_since != TIME_UNSET)
                out_time(b, ent->r->below_since);
        else
                buf_puts(b, "null");
        buf_puts(b, ",\"current\":");
        out_grading_json(e, b, ent->grade, ent->mode, ent->per_year);
        if (g->official.declared) {
                buf_putc(b, ',');
                out_official_index(e, b, ent, score);
                buf_putc(b, '}');
        }
        buf_puts(b, ",\"static_rules\":[");
        bool any = false;
        for (uint32_t k = 0; k < e->plan.nstatic; k++)
                if (e->plan.nstatic && (ent_static(e, ent)[k / 64] & (1ull << (k % 64)))) {
                        out_rule_points(e, b, &any, e->plan.static_rules[k], ent_static_points(e, ent, k));
                        out_rule_texts(e, b, e->plan.static_rules[k]);
                        buf_putc(b, '}');
                }
        buf_puts(b, "],\"contributions\":");
        out_contributions_json(e, b, ent, now, true);
        buf_puts(b, ",\"flags\":");
        out_flags_json(e, b, ent, now);
        buf_puts(b, ",\"open_alerts\":");
        open_alerts_json(e, b, ent);
        buf_puts(b, ",\"grade_history\":");
        grade_history_json(e, b, ent);
        buf_puts(b, ",\"last_event\":");
        out_time_or_null(b, ent->last_time);
        buf_puts(b, ",\"rules_version\":\"");
        buf_puts(b, e->rs->version);
        buf_puts(b, "\"}\n");
}

/* A rule's line of the explain text: "  +points  id  description". */
static void rule_line(Buf *b, const Rule *r, double points)
{
        buf_puts(b, "  +");
        out_num(b, points);
        buf_printf(b, "  %s  %s", r->id, r->desc ? r->desc : "");
}

static void basis_line(Buf *b, const Rule *r)
{
        if (r->basis)
                buf_printf(b, "        basis: %s\n", r->basis);
}

/* An expiry in the explain text: forever, or at, then the time. */
static void time_or(Buf *b, int64_t ms, const char *forever, const char *at)
{
        if (ms == TIME_FOREVER) {
                buf_puts(b, forever);
                return;
        }
        char t[48];
        time_format(ms, t, sizeof(t));
        buf_puts(b, at);
        buf_puts(b, t);
}

/* A section of the explain text that listed nothing says so. */
static void none_unless(Buf *b, bool any)
{
        if (!any)
                buf_puts(b, "  none\n");
}

/* The end of a section (any: it listed something) and the title of the
 * next; false: the new one lists nothing yet. */
static bool section_next(Buf *b, bool any, const char *title)
{
        none_unless(b, any);
        buf_puts(b, title);
        return false;
}

/* The official grade for people: its score, the cycle and its steps (the
 * "score" line above it is the risk index). */
static void official_text(Engine *e, Ent *ent, Buf *b)
{
        const Grading *g = &e->rs->grading;
        const OffState *o = ent->r->o;
        char t[48];
        buf_puts(b, " (the risk index, advisory)\nofficial grade ");
        buf_puts(b, ent->grade >= 0 ? g->bands[ent->grade].grade : "-");
        buf_puts(b, ": score ");
        out_num(b, score_official(e, ent));
        buf_puts(b, " = static ");
        out_num(b, score_static_capped(e, ent));
        buf_puts(b, " (max ");
        out_num(b, g->official.static_max);
        buf_puts(b, ")");
        if (o && o->dyn_time != TIME_UNSET) {
                buf_puts(b, " + dynamic ");
                out_num(b, o->dyn);
                time_format(o->dyn_time, t, sizeof(t));
                buf_printf(b, " (max ");
                out_num(b, g->official.dynamic_max);
                buf_printf(b, ", the latest evaluation: %s at %s)", o->dyn_rule >= 0 ? e->rs->rules[o->dyn_rule].id : "-", t);
        } else {
                buf_puts(b, g->official.scale_static ? ", no dynamic evaluation yet: static scaled to the whole scale"
                                                     : ", no dynamic evaluation yet: static alone");
        }
        if (!o || o->cycle == TIME_UNSET)
                return;
        time_format(o->cycle, t, sizeof(t));
        buf_printf(b, "\ncycle from %s", t);
        time_format(score_cycle_next(&g->official, o->cycle), t, sizeof(t));
        buf_printf(b, " to %s: assessed %s%s", t, o->assessed >= 0 ? g->bands[o->assessed].grade : "-",
                   o->provisional ? " (provisional: no evaluation)" : "");
        if (o->carry)
                buf_printf(b, " (%+d carried from the last cycle)", o->carry);
        buf_printf(b, ", raised %d, lowered %d within the cycle", o->raise, o->lower);
        if (o->basis >= 0) {
                time_format(o->basis_time, t, sizeof(t));
                buf_printf(b, "; the latest step: %s at %s", e->rs->rules[o->basis].id, t);
        }
}

/* The explain view for people: why the enterprise has its grade. */
void out_explain_text(Engine *e, Ent *ent, Buf *b)
{
        const Grading *g = &e->rs->grading;
        int64_t now = e->wm == TIME_UNSET ? 0 : e->wm;
        double score = score_of(e, ent, now);
        int32_t band = score_band(g, score);
        buf_printf(b, "enterprise %s, as of ", ent_key(ent)->s);
        char t[48];
        time_format(now, t, sizeof(t));
        buf_printf(b, "%s (the watermark)\n", t);
        if (ent->grade >= 0)
                buf_printf(b, "grade %s, mode %s, ", g->bands[ent->grade].grade, g->modes[ent->mode]);
        out_num(b, ent->per_year);
        buf_puts(b, " inspections a year\n");
        buf_puts(b, "score ");
        out_num(b, score);
        buf_puts(b, " = static ");
        out_num(b, ent_static_score(e, ent));
        buf_puts(b, " + live ");
        out_num(b, score - ent_static_score(e, ent));
        buf_printf(b, "; the score alone gives band %s", band >= 0 ? g->bands[band].grade : "-");
        if (ent->held >= 0 && ent->held != band) {
                buf_printf(b, ", band %s is held", g->bands[ent->held].grade);
                if (ent->r->below_since != TIME_UNSET) {
                        time_format(time_add_sat(ent->r->below_since, g->dwell_ms), t, sizeof(t));
                        buf_printf(b, " until %s unless the score rises (hysteresis)", t);
                }
        }
        if (g->official.declared)
                official_text(e, ent, b);
        buf_puts(b, "\n\nstatic part (profile rules that match):\n");
        bool any = false;
        for (uint32_t k = 0; k < e->plan.nstatic; k++)
                if (e->plan.nstatic && (ent_static(e, ent)[k / 64] & (1ull << (k % 64)))) {
                        const Rule *r = &e->rs->rules[e->plan.static_rules[k]];
                        rule_line(b, r, ent_static_points(e, ent, k));
                        buf_putc(b, '\n');
                        basis_line(b, r);
                        any = true;
                }
        any = section_next(b, any, "\nlive contributions:\n");
        for (uint32_t i = 0; i < ent->r->nc; i++) {
                const Contrib *c = &ent->r->c[i];
                if (c->expires <= now)
                        continue;
                const Rule *r = &e->rs->rules[c->rule];
                rule_line(b, r, c->points);
                buf_printf(b, "\n        caused by event %s at ", c->event_id->s);
                time_format(c->since, t, sizeof(t));
                buf_puts(b, t);
                time_or(b, c->expires, ", never expires", ", expires ");
                if (c->rectify != TIME_UNSET) {
                        time_format(c->rectify, t, sizeof(t));
                        buf_printf(b, ", rectify by %s", t);
                }
                buf_putc(b, '\n');
                basis_line(b, r);
                any = true;
        }
        any = section_next(b, any, "\nflags:\n");
        for (uint32_t i = 0; i < ent->r->nf; i++) {
                if (ent->r->f[i].until <= now)
                        continue;
                buf_printf(b, "  %s", e->rs->flags[ent->r->f[i].flag]);
                time_or(b, ent->r->f[i].until, ", no expiry", " until ");
                buf_putc(b, '\n');
                any = true;
        }
        any = section_next(b, any, "\ngrade changes (the latest, oldest first):\n");
        for (uint32_t i = 0; i < ent->r->nh; i++) {
                const GradeChange *c = &ent->r->h[i];
                time_format(c->ts, t, sizeof(t));
                buf_printf(b, "  %s  grade %s, mode %s, ", t, g->bands[c->grade].grade, g->modes[c->mode]);
                out_num(b, c->per_year);
                buf_printf(b, " inspections a year  (%s, adjustment ", engine_cause_names[c->cause]);
                buf_put_hex64(b, c->id);
                buf_puts(b, ")\n");
                any = true;
        }
        none_unless(b, any);
        /* which overrides hold now */
        VmState st;
        score_vmstate(e, ent, now, &st);
        /* the grade the overrides start from: the official one (after its
         * steps) under the official model, else the held band */
        st.grade = g->official.declared ? ent->grade : ent->held;
        ent_profile_fill(e, ent);
        VmFrame f = {.event = e->profbuf, .cur = e->profbuf, .profile = e->profbuf, .state = &st,
                     .now = now, .scratch = e->vmscratch, .scratch_size = sizeof(e->vmscratch)};
        buf_puts(b, "\ngrading overrides that apply:\n");
        any = false;
        for (uint32_t i = 0; i < g->noverrides; i++)
                if (vm_test(e->rs, g->overrides[i].when, &f)) {
                        const Override *o = &g->overrides[i];
                        buf_printf(b, "  %s:%u:", o->pos.file, o->pos.line);
                        if (o->grade >= 0)
                                buf_printf(b, " grade %s", g->bands[o->grade].grade);
                        if (o->grade_step)
                                buf_printf(b, " grade %+d", o->grade_step);
                        if (o->mode >= 0)
                                buf_printf(b, " mode %s", g->modes[o->mode]);
                        if (o->has_per_year) {
                                buf_puts(b, " inspections_per_year ");
                                out_num(b, o->per_year);
                        }
                        if (o->per_year_step) {
                                buf_puts(b, " inspections_per_year +");
                                out_num(b, o->per_year_step);
                        }
                        buf_putc(b, '\n');
                        any = true;
                }
        ent_profile_clear(e);
        none_unless(b, any);
}

/* The view write makes of an enterprise in state, NULL none. */
static char *explain(Engine *e, const char *enterprise, size_t len, void (*write)(Engine *, Ent *, Buf *))
{
        Ent *x = ent_find(e, enterprise, (uint32_t)len);
        if (!x)
                return NULL;
        Buf b = {0};
        write(e, x, &b);
        return b.p;
}

char *engine_explain_json(Engine *e, const char *enterprise, size_t len)
{
        return explain(e, enterprise, len, out_explain);
}

char *engine_explain_text(Engine *e, const char *enterprise, size_t len)
{
        return explain(e, enterprise, len, out_explain_text);
}

void engine_batch_enterprises(Engine *e, EngineRecordFn fn, void *ud)
{
        Buf *b = &e->out; /* free between pushes */
        for (uint32_t i = e->nsealed; i < e->ntouched; i++) {
                Ent *x = e->touched[i];
                b->len = 0;
                out_explain(e, x, b);
                fn(ud, ent_key(x)->s, ent_key(x)->len, b->p, b->len - 1); /* without the newline */
        }
}

void engine_enterprises_write(Engine *e, Buf *out)
{
        uint32_t n;
        Ent **v = ent_sorted(e, &n); /* full form */
        for (uint32_t i = 0; i < n; i++)
                out_explain(e, v[i], out);
        free(v);
}

void engine_grades_write(Engine *e, Buf *out)
{
        uint32_t n;
        Ent **v = ent_sorted(e, &n); /* full form: the score and the official state are in the records */
        const Grading *g = &e->rs->grading;
        int64_t now = e->wm == TIME_UNSET ? 0 : e->wm;
        for (uint32_t i = 0; i < n; i++) {
                Ent *x = v[i];
                buf_puts(out, "{\"enterprise_id\":");
                buf_json_str(out, ent_key(x)->s, ent_key(x)->len);
                buf_puts(out, ",\"grade\":");
                json_put_str_or_null(out, x->grade >= 0 ? g->bands[x->grade].grade : NULL);
                buf_puts(out, ",\"mode\":");
                json_put_str_or_null(out, x->mode >= 0 ? g->modes[x->mode] : NULL);
                buf_puts(out, ",\"inspections_per_year\":");
                out_num(out, x->per_year);
                buf_puts(out, ",\"score\":");
                out_num(out, score_of(e, x, now));
                if (g->official.declared) {
                        buf_puts(out, ",\"official\":");
                        out_official(e, out, x);
                        buf_puts(out, ",\"index\":{\"score\":");
                        out_num(out, score_of(e, x, now));
                        buf_puts(out, ",\"band\":");
                        json_put_str_or_null(out, x->held >= 0 ? g->bands[x->held].grade : NULL);
                        buf_putc(out, '}');
                }
                buf_puts(out, "}\n");
        }
        free(v);
}
