/*
 * grading.yaml: score bands (grade, upper bound, mode, inspections a year),
 * overrides applied in order after the bands, the hysteresis dwell, and
 * official: the 2016 model's cycle, maxima and steps (docs/rules.md §7.5).
 *
 * Bands are read before the rule files so that state.grade and state.mode
 * are typed enums in rule conditions; override conditions are compiled last,
 * once every flag a rule sets is known.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/rules/load.h"

static int32_t mode_add(Loader *L, const char *m)
{
        Grading *g = &L->rs->grading;
        for (uint32_t i = 0; i < g->nmodes; i++)
                if (strcmp(g->modes[i], m) == 0)
                        return (int32_t)i;
        uint32_t cap = g->nmodes;
        VEC_PUSH(g->modes, g->nmodes, cap) = arena_strdup(L->ar, m);
        return (int32_t)g->nmodes - 1;
}

static bool step_parse(const char *s, double *step)
{
        if (s[0] != '+' && s[0] != '-')
                return false;
        char *end = NULL;
        double d = strtod(s, &end);
        if (!end || *end || d == 0)
                return false;
        *step = d;
        return true;
}

/* cycle: "1y" or "Nmo" with N dividing 12, so that every cycle starts on
 * the same dates each year. */
static bool cycle_parse(const char *s, uint32_t *months)
{
        char *end = NULL;
        long n = strtol(s, &end, 10);
        if (!end || end == s || n <= 0)
                return false;
        if (strcmp(end, "y") == 0 && n == 1)
                *months = 12;
        else if (strcmp(end, "mo") == 0 && n <= 12 && 12 % n == 0)
                *months = (uint32_t)n;
        else
                return false;
        return true;
}

/* official: the 2016 model's cycle, maxima and steps. */
static void official_load(Loader *L, const YNode *o)
{
        Official *of = &L->rs->grading.official;
        *of = (Official){.declared = true, .cycle_months = 12, .start_month = 1, .start_day = 1,
                         .static_max = 40, .dynamic_max = 60, .max_raise = 2, .max_lower = 1,
                         .scale_static = true};
        if (ynode_is_null(o) || (o->kind == Y_SCALAR && strcmp(o->str, "true") == 0))
                return; /* every default */
        if (!loader_expect(L, o, Y_MAP, "a mapping such as { cycle: 1y, cycle_start: \"01-01\", offset: \"+08:00\" }")) {
                of->declared = false;
                return;
        }
        static const char *const known[] = {"cycle", "cycle_start", "offset", "static_max", "dynamic_max",
                                            "max_raise", "max_lower", "unassessed", "desc"};
        loader_unknown_keys(L, o, known, ARRAY_SIZE(known), "official:");
        const YNode *v;
        if ((v = ynode_get(o, "cycle")) && loader_expect(L, v, Y_SCALAR, "a cycle such as 1y or 6mo") &&
            !cycle_parse(v->str, &of->cycle_months))
                diag_add(L->dl, DIAG_E053, ynode_pos(v), "1y, or 1mo, 2mo, 3mo, 4mo or 6mo (a cycle divides the year)",
                         "'%s' is not an assessment cycle", v->str);
        if ((v = ynode_get(o, "cycle_start")) && loader_expect(L, v, Y_SCALAR, "a date \"MM-DD\"")) {
                unsigned m = 0, d = 0;
                char tail;
                if (sscanf(v->str, "%2u-%2u%c", &m, &d, &tail) != 2 || v->len != 5 || m < 1 || m > 12 || d < 1 || d > 28)
                        diag_add(L->dl, DIAG_E053, ynode_pos(v), "\"MM-DD\" with a day from 01 to 28, e.g. \"01-01\"",
                                 "'%s' is not a cycle start date", v->str);
                else
                        of->start_month = m, of->start_day = d;
        }
        if ((v = ynode_get(o, "offset")) && loader_expect(L, v, Y_SCALAR, "an offset \"+08:00\"")) {
                unsigned hh = 0, mm = 0;
                char tail;
                if ((v->str[0] != '+' && v->str[0] != '-') || v->len != 6 ||
                    sscanf(v->str + 1, "%2u:%2u%c", &hh, &mm, &tail) != 2 || hh > 14 || mm > 59)
                        diag_add(L->dl, DIAG_E053, ynode_pos(v), "\"+HH:MM\" or \"-HH:MM\", e.g. \"+08:00\" for China time",
                                 "'%s' is not a UTC offset", v->str);
                else
                        of->offset_ms = (v->str[0] == '-' ? -1 : 1) * ((int64_t)hh * 60 + mm) * 60000;
        }
        const char *const maxk[] = {"static_max", "dynamic_max"};
        double *maxv[] = {&of->static_max, &of->dynamic_max};
        for (int i = 0; i < 2; i++)
                if ((v = ynode_get(o, maxk[i])) && loader_number(L, v, maxv[i]) && *maxv[i] <= 0)
                        diag_add(L->dl, DIAG_E053, ynode_pos(v), NULL, "%s must be positive", maxk[i]);
        const char *const stepk[] = {"max_raise", "max_lower"};
        int32_t *stepv[] = {&of->max_raise, &of->max_lower};
        for (int i = 0; i < 2; i++) {
                double d;
                if ((v = ynode_get(o, stepk[i])) && loader_number(L, v, &d)) {
                        if (d < 0 || d > 9 || d != (double)(int32_t)d)
                                diag_add(L->dl, DIAG_E053, ynode_pos(v), "a whole number of grade steps, e.g. 2",
                                         "%s must be a whole number from 0 to 9", stepk[i]);
                        else
                                *stepv[i] = (int32_t)d;
                }
        }
        if ((v = ynode_get(o, "unassessed")) && loader_expect(L, v, Y_SCALAR, "scaled or static")) {
                if (strcmp(v->str, "scaled") == 0)
                        of->scale_static = true;
                else if (strcmp(v->str, "static") == 0)
                        of->scale_static = false;
                else
                        diag_add(L->dl, DIAG_E053, ynode_pos(v),
                                 "scaled: static x (static_max + dynamic_max) / static_max; static: the static part alone",
                                 "unassessed: '%s' is neither scaled nor static", v->str);
        }
}

void grading_load_bands(Loader *L, const YNode *root)
{
        Grading *g = &L->rs->grading;
        g->dwell_ms = 30LL * 86400000LL;
        if (!root || !loader_expect(L, root, Y_MAP, "a mapping with grades: and overrides:"))
                return;
        L->grading_root = root;
        static const char *const known[] = {"grades", "overrides", "dwell", "modes", "desc", "official"};
        loader_unknown_keys(L, root, known, ARRAY_SIZE(known), "grading.yaml");
        const YNode *v;
        if ((v = ynode_get(root, "dwell")))
                loader_duration(L, v, &g->dwell_ms, NULL); /* 0: no hysteresis */
        if ((v = ynode_get(root, "official")) && !(v->kind == Y_SCALAR && strcmp(v->str, "false") == 0))
                official_load(L, v);
        if ((v = ynode_get(root, "modes")) && loader_expect(L, v, Y_SEQ, "a list of supervision modes"))
                for (uint32_t i = 0; i < v->n; i++)
                        if (loader_expect(L, v->items[i], Y_SCALAR, "a mode name"))
                                mode_add(L, v->items[i]->str);
        const YNode *grades = ynode_get(root, "grades");
        if (!grades) {
                diag_add(L->dl, DIAG_E004, ynode_pos(root), "grades: [{ grade: A, max: 30, mode: double_random, inspections_per_year: 1 }, ...]",
                         "grading.yaml has no grades:");
                return;
        }
        if (!loader_expect(L, grades, Y_SEQ, "a list of grade bands"))
                return;
        if (grades->n == 0) {
                diag_add(L->dl, DIAG_E052, ynode_pos(grades), NULL, "grades: lists no band");
                return;
        }
        g->bands = xcalloc(grades->n, sizeof(GradeBand));
        const YNode *prev_max = NULL;
        for (uint32_t i = 0; i < grades->n; i++) {
                const YNode *b = grades->items[i];
                if (!loader_expect(L, b, Y_MAP, "a band { grade:, max:, mode:, inspections_per_year: }"))
                        continue;
                static const char *const bk[] = {"grade", "max", "mode", "inspections_per_year", "desc"};
                loader_unknown_keys(L, b, bk, ARRAY_SIZE(bk), "a grade band");
                GradeBand *gb = &g->bands[g->nbands];
                const YNode *name = ynode_get(b, "grade"), *max = ynode_get(b, "max"),
                            *mode = ynode_get(b, "mode"), *py = ynode_get(b, "inspections_per_year");
                if (!name || !loader_expect(L, name, Y_SCALAR, "a grade name")) {
                        if (!name)
                                diag_add(L->dl, DIAG_E004, ynode_pos(b), NULL, "band without grade:");
                        continue;
                }
                for (uint32_t k = 0; k < g->nbands; k++)
                        if (strcmp(g->bands[k].grade, name->str) == 0)
                                diag_add(L->dl, DIAG_E011, ynode_pos(name), NULL, "grade '%s' is defined twice", name->str);
                gb->grade = arena_strdup(L->ar, name->str);
                if (max) {
                        if (loader_number(L, max, &gb->max)) {
                                gb->has_max = true;
                                if (prev_max && i > 0 && g->nbands > 0 && g->bands[g->nbands - 1].has_max &&
                                    gb->max <= g->bands[g->nbands - 1].max)
                                        diag_add(L->dl, DIAG_E050, ynode_pos(max),
                                                 "list bands from the lowest score to the highest, each max above the previous",
                                                 "band %s (max %g) is not above the previous band's max %g", gb->grade,
                                                 gb->max, g->bands[g->nbands - 1].max);
                                prev_max = max;
                        }
                } else if (i + 1 < grades->n) {
                        diag_add(L->dl, DIAG_E050, ynode_pos(b), "only the last (highest) band has no max:",
                                 "band %s has no max: but is not the last band", gb->grade);
                }
                if (i + 1 == grades->n && max)
                        diag_add(L->dl, DIAG_E050, ynode_pos(max), "leave max: out of the last band: it takes every higher score",
                                 "the last band %s has a max:, so higher scores would have no grade", gb->grade);
                if (!mode)
                        diag_add(L->dl, DIAG_E004, ynode_pos(b), "e.g. mode: double_random", "band %s has no mode:",
                                 gb->grade);
                else if (loader_expect(L, mode, Y_SCALAR, "a mode name"))
                        gb->mode = (uint32_t)mode_add(L, mode->str);
                if (!py)
                        diag_add(L->dl, DIAG_E004, ynode_pos(b), "e.g. inspections_per_year: 1",
                                 "band %s has no inspections_per_year:", gb->grade);
                else if (loader_number(L, py, &gb->per_year) && gb->per_year < 0)
                        diag_add(L->dl, DIAG_E008, ynode_pos(py), NULL, "inspections_per_year cannot be negative");
                g->nbands++;
        }
        /* state.grade and state.mode are enums over these names */
        L->grade_enum.name = "state.grade";
        L->grade_enum.values = xcalloc(g->nbands + 1, sizeof(char *));
        for (uint32_t i = 0; i < g->nbands; i++)
                L->grade_enum.values[i] = g->bands[i].grade;
        L->grade_enum.nvalues = g->nbands;
        /* modes named only by overrides join the enum too */
        const YNode *ovs = ynode_get(root, "overrides");
        if (ovs && ovs->kind == Y_SEQ)
                for (uint32_t i = 0; i < ovs->n; i++) {
                        const YNode *m = ynode_get(ovs->items[i], "mode");
                        if (m && m->kind == Y_SCALAR)
                                mode_add(L, m->str);
                }
        L->mode_enum.name = "state.mode";
        L->mode_enum.values = xcalloc(g->nmodes + 1, sizeof(char *));
        for (uint32_t i = 0; i < g->nmodes; i++)
                L->mode_enum.values[i] = g->modes[i];
        L->mode_enum.nvalues = g->nmodes;
}

void grading_compile_overrides(Loader *L)
{
        Grading *g = &L->rs->grading;
        const YNode *root = L->grading_root;
        if (!root)
                return;
        const YNode *ovs = ynode_get(root, "overrides");
        if (!ovs || ynode_is_null(ovs) || !loader_expect(L, ovs, Y_SEQ, "a list of overrides"))
                return;
        g->overrides = xcalloc(ovs->n + 1, sizeof(Override));
        for (uint32_t i = 0; i < ovs->n; i++) {
                const YNode *o = ovs->items[i];
                if (!loader_expect(L, o, Y_MAP, "an override { when:, grade: | mode: | inspections_per_year: }"))
                        continue;
                static const char *const ok[] = {"when", "grade", "mode", "inspections_per_year", "desc", "basis"};
                loader_unknown_keys(L, o, ok, ARRAY_SIZE(ok), "an override");
                Override ov = {.grade = -1, .mode = -1, .pos = ynode_pos(o)};
                const YNode *when = ynode_get(o, "when"), *grade = ynode_get(o, "grade"),
                            *mode = ynode_get(o, "mode"), *py = ynode_get(o, "inspections_per_year");
                if (!when) {
                        diag_add(L->dl, DIAG_E004, ynode_pos(o), "e.g. when: state.flags.problem_lead", "override without when:");
                        continue;
                }
                if (!grade && !mode && !py)
                        diag_add(L->dl, DIAG_E052, ynode_pos(o), "set grade:, mode: or inspections_per_year:",
                                 "override changes nothing");
                if (grade && loader_expect(L, grade, Y_SCALAR, "a grade or a step like \"+1\"")) {
                        double step;
                        if (step_parse(grade->str, &step)) {
                                ov.grade_step = (int32_t)step;
                                if ((double)ov.grade_step != step)
                                        diag_add(L->dl, DIAG_E051, ynode_pos(grade), NULL, "a grade step is a whole number");
                        } else {
                                for (uint32_t k = 0; k < g->nbands; k++)
                                        if (strcmp(g->bands[k].grade, grade->str) == 0)
                                                ov.grade = (int32_t)k;
                                if (ov.grade < 0) {
                                        Buf h = {0};
                                        const char *sug = diag_suggest(grade->str, (const char *const *)L->grade_enum.values,
                                                                       L->grade_enum.nvalues);
                                        if (sug)
                                                buf_printf(&h, "did you mean '%s'? ", sug);
                                        buf_puts(&h, "grades:");
                                        for (uint32_t k = 0; k < g->nbands; k++)
                                                buf_printf(&h, " %s", g->bands[k].grade);
                                        buf_puts(&h, "; or a step such as \"+1\"");
                                        diag_add(L->dl, DIAG_E051, ynode_pos(grade), h.p, "unknown grade '%s'", grade->str);
                                        buf_free(&h);
                                }
                        }
                }
                if (mode && mode->kind == Y_SCALAR)
                        ov.mode = mode_add(L, mode->str);
                if (py && loader_expect(L, py, Y_SCALAR, "a number or a step like \"+1\"")) {
                        if (step_parse(py->str, &ov.per_year_step)) {
                        } else if (loader_number(L, py, &ov.per_year)) {
                                ov.has_per_year = true;
                        }
                }
                Node *c = loader_parse(L, when);
                if (!c)
                        continue;
                CheckCtx cx = {.on = 0, .grading = true, .what = "a grading override"};
                uint32_t nerr = L->dl->nerrors;
                Node *checked = check_condition(L, c, &cx);
                if (!checked || L->dl->nerrors != nerr)
                        continue;
                ov.when = compile_program(L, checked, false);
                g->overrides[g->noverrides++] = ov;
        }
}
