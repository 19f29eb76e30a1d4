/*
 * Unit tests of src/rules/grading.c (grading.yaml) and of what the engine
 * does with it: bands (order, inclusive upper bounds, modes and
 * frequencies), overrides in order (absolute and relative grades, modes,
 * frequencies), the hysteresis dwell, and the diagnostics of a broken
 * grading.yaml with their codes and positions.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/engine.h"
#include "include/riskd/rules.h"
#include "include/riskd/util.h"

static const char schema[] =
        "envelope: { id: event_id, type: event_type, enterprise: enterprise_id, time: occurred_at }\n"
        "profile: enterprise\n"
        "types:\n"
        "  enterprise: { fields: { name: string } }\n"
        "  hit: { fields: { kind: [ten, one, lead, black] } }\n";

/* Every flag a rule sets is read by an override, and every rule's points
 * expire: nothing here is a warning. */
static const char rules[] =
        "rules:\n"
        "  - { id: r.ten, on: hit, when: kind == \"ten\", score: 10, expires: 10d }\n"
        "  - { id: r.one, on: hit, when: kind == \"one\", score: 1, expires: 10d }\n"
        "  - { id: r.lead, on: hit, when: kind == \"lead\", flags: { lead: 3d } }\n"
        "  - { id: r.black, on: hit, when: kind == \"black\", flags: { blacklisted: forever } }\n";

static const char grading[] =
        "dwell: 5d\n"
        "grades:\n"
        "  - { grade: A, max: 10, mode: m_a, inspections_per_year: 1 }\n"
        "  - { grade: B, max: 20, mode: m_b, inspections_per_year: 2 }\n"
        "  - { grade: C, max: 30, mode: m_c, inspections_per_year: 3.5 }\n"
        "  - { grade: D, mode: m_d, inspections_per_year: 4 }\n"
        "overrides:\n"
        "  - { when: state.flags.blacklisted, grade: D }\n"
        "  - { when: state.flags.lead, grade: \"+1\" }\n"
        "  - { when: state.flags.lead, inspections_per_year: \"+1\", mode: flying }\n"
        "  - { when: state.grade == \"A\" and state.score > 5, inspections_per_year: 1.5 }\n";

static int load3(const char *g, const char *r, DiagList *dl, RuleSet **rs)
{
        const char *names[] = {"schema.yaml", "grading.yaml", "rules.yaml"};
        const char *texts[] = {schema, g, r};
        size_t lens[] = {strlen(schema), strlen(g), strlen(r)};
        return rules_load_mem("t", names, texts, lens, 3, dl, rs);
}

static RuleSet *load_ok(const char *g)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        int r = load3(g, rules, &dl, &rs);
        if (r)
                diag_print_text(stderr, &dl, false);
        cr_assert_eq(r, 0);
        diag_list_deinit(&dl);
        return rs;
}

/* Load a broken grading.yaml; the diagnostics as "CODE line:col" lines. */
static char *load_bad(const char *g, DiagList *dl)
{
        RuleSet *rs = NULL;
        int r = load3(g, rules, dl, &rs);
        cr_assert_eq(r, 1, "a broken grading.yaml is refused");
        diag_list_sort(dl);
        Buf b = {0};
        for (uint32_t i = 0; i < dl->n; i++)
                if (strcmp(dl->v[i].file, "t/grading.yaml") == 0)
                        buf_printf(&b, "%s %u:%u\n", diag_code_str(dl->v[i].code), dl->v[i].line, dl->v[i].col);
        return b.p ? b.p : xstrdup("");
}

static const Diag *find(const DiagList *dl, DiagCode code)
{
        for (uint32_t i = 0; i < dl->n; i++)
                if (dl->v[i].code == code)
                        return &dl->v[i];
        return NULL;
}

Test(grading, bands_modes_and_overrides_load)
{
        RuleSet *rs = load_ok(grading);
        const Grading *g = &rs->grading;
        cr_assert_eq(g->dwell_ms, 5LL * 86400000);
        cr_assert_eq(g->nbands, 4);
        const char *names[] = {"A", "B", "C", "D"};
        const char *modes[] = {"m_a", "m_b", "m_c", "m_d"};
        const double maxes[] = {10, 20, 30}, per_year[] = {1, 2, 3.5, 4};
        for (uint32_t i = 0; i < 4; i++) {
                cr_assert_str_eq(g->bands[i].grade, names[i]);
                cr_assert_eq(g->bands[i].has_max, i < 3, "only the last band has no max");
                if (i < 3)
                        cr_assert_float_eq(g->bands[i].max, maxes[i], 1e-9);
                cr_assert_float_eq(g->bands[i].per_year, per_year[i], 1e-9);
                cr_assert_str_eq(g->modes[g->bands[i].mode], modes[i]);
        }
        /* a mode named only by an override joins the modes, after the bands' */
        cr_assert_eq(g->nmodes, 5);
        cr_assert_str_eq(g->modes[4], "flying");

        cr_assert_eq(g->noverrides, 4);
        const Override *o = g->overrides;
        cr_assert_eq(o[0].grade, 3, "grade: D is band 3");
        cr_assert_eq(o[0].grade_step, 0);
        cr_assert_eq(o[0].mode, -1);
        cr_assert(!o[0].has_per_year);
        cr_assert_eq(o[1].grade, -1);
        cr_assert_eq(o[1].grade_step, 1);
        cr_assert_eq(o[2].mode, 4);
        cr_assert_float_eq(o[2].per_year_step, 1, 1e-9);
        cr_assert(!o[2].has_per_year);
        cr_assert(o[3].has_per_year);
        cr_assert_float_eq(o[3].per_year, 1.5, 1e-9);
        cr_assert_eq(o[3].pos.line, 11);

        /* override conditions read the state: flags by id, the grade so far */
        VmState st = {.grade = 0, .mode = 0, .score = 6};
        VmFrame f = {.state = &st};
        int32_t lead = rules_flag_id(rs, "lead"), black = rules_flag_id(rs, "blacklisted");
        cr_assert(lead >= 0 && black >= 0);
        cr_assert(!vm_test(rs, o[0].when, &f));
        cr_assert(!vm_test(rs, o[1].when, &f));
        cr_assert(vm_test(rs, o[3].when, &f));
        st.flags = 1ull << lead;
        cr_assert(vm_test(rs, o[1].when, &f));
        cr_assert(!vm_test(rs, o[0].when, &f));
        st.flags = 1ull << black;
        cr_assert(vm_test(rs, o[0].when, &f));
        st.grade = 1;
        cr_assert(!vm_test(rs, o[3].when, &f), "state.grade == \"A\" is by band");
        rules_unref(rs);
}

Test(grading, dwell_defaults_to_30_days)
{
        RuleSet *rs = load_ok("grades:\n  - { grade: A, max: 10, mode: m, inspections_per_year: 1 }\n"
                              "  - { grade: B, mode: m, inspections_per_year: 2 }\n"
                              "overrides:\n  - { when: state.flags.lead or state.flags.blacklisted, mode: n }\n");
        cr_assert_eq(rs->grading.dwell_ms, 30LL * 86400000);
        cr_assert_eq(rs->grading.nmodes, 2, "one mode named twice is one mode");
        rules_unref(rs);
        rs = load_ok("dwell: 2w\ngrades:\n  - { grade: A, mode: m, inspections_per_year: 0 }\n"
                     "overrides:\n  - { when: state.flags.lead or state.flags.blacklisted, mode: n }\n");
        cr_assert_eq(rs->grading.dwell_ms, 14LL * 86400000);
        cr_assert_eq(rs->grading.nbands, 1, "a single band takes every score");
        cr_assert(!rs->grading.bands[0].has_max);
        rules_unref(rs);
}

Test(grading, broken_bands)
{
        DiagList dl = {0};
        /* line 2: B's max below A's; line 3: C without max but not last;
         * line 4: D (last) with a max, no mode, negative frequency */
        char *s = load_bad("grades:\n"
                           "  - { grade: A, max: 30, mode: m, inspections_per_year: 1 }\n"
                           "  - { grade: B, max: 20, mode: m, inspections_per_year: 2 }\n"
                           "  - { grade: C, mode: m, inspections_per_year: 3 }\n"
                           "  - { grade: D, max: 99, inspections_per_year: -1 }\n",
                           &dl);
        cr_assert_str_eq(s, "E050 3:22\n"  /* B's max is not above 30 */
                            "E050 4:5\n"   /* C has no max but is not last */
                            "E004 5:5\n"   /* D has no mode */
                            "E050 5:22\n"  /* the last band has a max */
                            "E008 5:48\n", /* negative frequency */
                     "%s", s);
        const Diag *d = find(&dl, DIAG_E050);
        cr_assert_str_eq(d->message, "band B (max 20) is not above the previous band's max 30");
        cr_assert_not_null(d->hint);
        free(s);
        diag_list_deinit(&dl);

        s = load_bad("grades:\n"
                     "  - { grade: A, max: 10, mode: m }\n"
                     "  - { grade: A, mode: m, inspections_per_year: 2 }\n"
                     "  - { max: 40, mode: m, inspections_per_year: 2 }\n",
                     &dl);
        cr_assert_str_eq(s, "E004 2:5\n"   /* A has no inspections_per_year */
                            "E050 3:5\n"   /* the second A has no max but is not last */
                            "E011 3:14\n"  /* grade A twice */
                            "E004 4:5\n",  /* a band without grade */
                     "%s", s);
        free(s);
        diag_list_deinit(&dl);

        s = load_bad("grades: []\n", &dl);
        cr_assert_str_eq(s, "E052 1:9\n", "%s", s);
        free(s);
        diag_list_deinit(&dl);
        s = load_bad("dwell: soon\n", &dl);
        cr_assert_str_eq(s, "E004 1:1\nE007 1:8\n", "%s", s);
        cr_assert_str_eq(find(&dl, DIAG_E007)->message, "'soon' is not a duration");
        free(s);
        diag_list_deinit(&dl);
}

Test(grading, broken_overrides)
{
        static const char bands[] = "grades:\n"
                                    "  - { grade: A, max: 10, mode: m, inspections_per_year: 1 }\n"
                                    "  - { grade: B, mode: m, inspections_per_year: 2 }\n"
                                    "overrides:\n";
        DiagList dl = {0};
        char *g = xasprintf("%s"
                            "  - { when: state.flags.lead, grade: b }\n"             /* 5 */
                            "  - { when: state.flags.lead, grade: \"+1.5\" }\n"      /* 6 */
                            "  - { grade: B }\n"                                     /* 7 */
                            "  - { when: state.flags.blacklisted }\n"                /* 8 */
                            "  - { when: severity > 2, grade: B }\n"                 /* 9 */
                            "  - { when: state.flags.nosuch, mode: x }\n",           /* 10 */
                            bands);
        char *s = load_bad(g, &dl);
        cr_assert_str_eq(s, "E051 5:38\n"  /* unknown grade b */
                            "E051 6:38\n"  /* a step of 1.5 grades */
                            "E004 7:5\n"   /* no when: */
                            "E052 8:5\n"   /* changes nothing */
                            "E031 9:13\n"  /* event fields are not grading's */
                            "E041 10:13\n", /* a flag no rule sets */
                     "%s", s);
        const Diag *d = find(&dl, DIAG_E051);
        cr_assert_str_eq(d->message, "unknown grade 'b'");
        cr_assert_str_eq(d->hint, "did you mean 'B'? grades: A B; or a step such as \"+1\"");
        free(s);
        free(g);
        diag_list_deinit(&dl);
}

/* ---- the engine grading with these bands ---- */

typedef struct Out {
        Buf adj;   /* adjustment lines */
} Out;

static void sink(void *ud, OutKind kind, const char *data, size_t len, const OutMeta *m)
{
        (void)m;
        Out *o = ud;
        if (kind != OUT_ADJUSTMENT)
                return;
        buf_put(&o->adj, data, len);
        buf_putc(&o->adj, '\n');
}

#define DAY (86400000LL)
#define T0 1735689600000LL /* 2025-01-01T00:00:00Z */

typedef struct Run {
        RuleSet *rs;
        Engine *e;
        Out out;
        uint32_t n;
} Run;

static void run_start(Run *r)
{
        r->rs = load_ok(grading);
        EngineConfig cfg;
        engine_config_default(&cfg);
        cr_assert_eq(engine_new(&r->e, r->rs, &cfg, sink, &r->out), 0);
}

static void hit(Run *r, int64_t at, const char *kind)
{
        char t[40], line[256];
        time_format(at, t, sizeof t);
        int n = snprintf(line, sizeof line,
                         "{\"event_id\":\"h%u\",\"event_type\":\"hit\",\"enterprise_id\":\"E1\",\"occurred_at\":\"%s\",\"kind\":\"%s\"}",
                         ++r->n, t, kind);
        SourcePos src = {.topic = "t", .partition = 0, .offset = r->n};
        engine_push(r->e, line, (size_t)n, &src);
        engine_flush(r->e);
}

/* The enterprise's explain document's "current" object and score, e.g.
 * "B m_b 2 score=11". */
static char *state_of(Run *r)
{
        char *x = engine_explain_json(r->e, "E1", 2);
        cr_assert_not_null(x);
        char g[8] = "", m[32] = "";
        double py = -1, score = -1;
        const char *c = strstr(x, "\"current\":{\"grade\":\"");
        cr_assert_not_null(c, "%s", x);
        cr_assert_eq(sscanf(c, "\"current\":{\"grade\":\"%7[^\"]\",\"mode\":\"%31[^\"]\",\"inspections_per_year\":%lf",
                            g, m, &py), 3, "%s", x);
        cr_assert_eq(sscanf(x, "{\"schema\":\"riskd.enterprise/1\",\"enterprise_id\":\"E1\",\"as_of\":\"%*[^\"]\",\"score\":%lf", &score), 1, "%s", x);
        free(x);
        return xasprintf("%s %s %g score=%g", g, m, py, score);
}

static void expect_state(Run *r, const char *want)
{
        char *s = state_of(r);
        cr_assert_str_eq(s, want);
        free(s);
}

static void run_end(Run *r)
{
        engine_free(r->e);
        rules_unref(r->rs);
        buf_free(&r->out.adj);
}

Test(grading, band_bounds_are_inclusive)
{
        Run r = {0};
        run_start(&r);
        hit(&r, T0, "ten");
        expect_state(&r, "A m_a 1.5 score=10"); /* max 10 is A's; A with score > 5: 1.5 a year */
        hit(&r, T0 + 1000, "one");
        expect_state(&r, "B m_b 2 score=11");
        for (int i = 0; i < 9; i++)
                hit(&r, T0 + 2000 + i, "one");
        expect_state(&r, "B m_b 2 score=20");
        hit(&r, T0 + 3000, "one");
        expect_state(&r, "C m_c 3.5 score=21");
        hit(&r, T0 + 4000, "ten");
        expect_state(&r, "D m_d 4 score=31");
        run_end(&r);
}

Test(grading, overrides_apply_in_order)
{
        Run r = {0};
        run_start(&r);
        hit(&r, T0, "ten");
        hit(&r, T0 + 1000, "one");
        expect_state(&r, "B m_b 2 score=11");
        /* lead: one grade up (C, with C's mode and frequency), then +1 a
         * year and the mode flying */
        hit(&r, T0 + 2000, "lead");
        expect_state(&r, "C flying 4.5 score=11");
        /* blacklisted: D first; the step then cannot go past D */
        hit(&r, T0 + 3000, "black");
        expect_state(&r, "D flying 5 score=11");
        /* the lead flag expires after 3 days: D from the blacklist alone */
        engine_advance(r.e, T0 + 4 * DAY);
        expect_state(&r, "D m_d 4 score=11");
        run_end(&r);
}

Test(grading, a_grade_rises_at_once_and_falls_after_the_dwell)
{
        Run r = {0};
        run_start(&r);
        hit(&r, T0, "ten");
        hit(&r, T0, "one");
        expect_state(&r, "B m_b 2 score=11");
        hit(&r, T0 + 3 * DAY, "ten");
        expect_state(&r, "C m_c 3.5 score=21"); /* up at once */
        /* day 10: the first two firings expire, the score (10) is A's;
         * C stays for the dwell (5d) */
        engine_advance(r.e, T0 + 10 * DAY);
        expect_state(&r, "C m_c 3.5 score=10");
        /* day 13: the last points expire; still C, the clock runs from day 10 */
        engine_advance(r.e, T0 + 15 * DAY - 1);
        expect_state(&r, "C m_c 3.5 score=0");
        /* day 15: straight down to the band of the score, A, not one step */
        engine_advance(r.e, T0 + 15 * DAY);
        expect_state(&r, "A m_a 1 score=0");
        const char *d = strstr(r.out.adj.p, "\"cause\":\"dwell\"");
        cr_assert_not_null(d, "%s", r.out.adj.p);
        cr_assert_not_null(strstr(r.out.adj.p, "\"ts\":\"2025-01-16T00:00:00Z\",\"cause\":\"dwell\""), "%s", r.out.adj.p);
        cr_assert_null(strstr(d + 1, "\"cause\":\"dwell\""), "one fall, not one per band");
        run_end(&r);
}

Test(grading, coming_back_up_restarts_the_dwell)
{
        Run r = {0};
        run_start(&r);
        hit(&r, T0, "ten");
        hit(&r, T0, "one");
        expect_state(&r, "B m_b 2 score=11");
        engine_advance(r.e, T0 + 10 * DAY); /* below B from day 10 */
        expect_state(&r, "B m_b 2 score=0");
        hit(&r, T0 + 12 * DAY, "ten");
        hit(&r, T0 + 12 * DAY, "one"); /* back in B on day 12 */
        expect_state(&r, "B m_b 2 score=11");
        /* day 15 would have ended the first wait: it no longer counts */
        engine_advance(r.e, T0 + 16 * DAY);
        expect_state(&r, "B m_b 2 score=11");
        /* below again from day 22 (expiry): B until day 27 */
        engine_advance(r.e, T0 + 27 * DAY - 1);
        expect_state(&r, "B m_b 2 score=0");
        engine_advance(r.e, T0 + 27 * DAY);
        expect_state(&r, "A m_a 1 score=0");
        run_end(&r);
}
