/*
 * riskctl test DIR: rule unit tests, like `promtool test rules`.
 *
 * Each YAML file of DIR/tests (*.yaml, *.yml) is a list of tests.  Each
 * test runs on a fresh engine over the rules of DIR (compiled once, shared),
 * feeds its events in order, optionally advances event time, and checks
 * what came out: alerts (active and shadow), adjustments, dead letters and
 * the final state of each enterprise.
 *
 *   tests:
 *     - name: confirmed toxic failure raises the grade to D   # required
 *       grace: 0s                # optional engine grace (reorder window)
 *       xfail: "why"             # optional: a known bug; the test
 *                                # is reported, not counted as failed, and
 *                                # fails once it passes (remove the mark)
 *       events:                  # in order
 *         - { at: "2025-03-02T10:00:00+08:00", type: enterprise, enterprise: E1,
 *             id: p1, category: dairy, scale: large }
 *         - { at: "2025-03-02T11:00:00+08:00", type: sampling, enterprise: E1,
 *             sample_code: S1, conclusion: fail, product.name: 奶粉 }
 *         - { raw: '{"event_id": ...}' }   # a JSON line sent as is
 *       until: "2026-04-01T00:00:00+08:00" # optional: advance event time
 *       expect:                  # each item must match at least one output
 *         alerts:       [ { rule: sampling.toxic_fail, enterprise: E1 } ]
 *         adjustments:  [ { enterprise: E1, grade: D, mode: flying_inspection } ]
 *         grades:       { E1: { grade: D, mode: flying_inspection, inspections_per_year: 5 } }
 *         dead_letters: [ { reason: duplicate } ]
 *       absent:                  # none of these may match any output
 *         alerts:       [ { rule: coldchain.over_temp } ]
 *         adjustments:  [ { enterprise: E1, grade: A } ]
 *         dead_letters: [ { reason: too_late } ]
 *       exact_alerts: 2          # optional: number of (non-shadow) alerts
 *
 * Events.  The compact form builds the JSON envelope from schema.yaml's
 * envelope paths: `at` is the time path, `type` the type path, `enterprise`
 * the enterprise path (nested paths such as enterprise.uscc become nested
 * objects), `id` the id path (default "<test>-<event>", both 1-based within
 * the file).  Every other key is a field of the event type, dotted
 * (product.name) or nested ({product: {name: x}}); it is checked against
 * the schema (name, enum value, kind) so that a typo fails loudly instead
 * of being ignored by the engine.  Values: plain JSON-syntax numbers are
 * numbers, plain true/false booleans, plain null/~ null, anything else a
 * string (quote a string field that looks like a number).  `raw:` sends a
 * line untouched (dead-letter tests, undeclared fields).
 *
 * Matching is a subset match on the keys given:
 *   alerts:       rule, enterprise, at, trigger, key, severity, status,
 *                 score_delta, message, message_contains, evidence, flags,
 *                 action, rectify_deadline
 *   adjustments:  enterprise, at, cause, cause_event, grade, mode,
 *                 inspections_per_year, previous_grade, previous_mode,
 *                 previous_inspections_per_year, score, static_score, band,
 *                 flags, rectify_deadline
 *   dead_letters: reason, enterprise, event (1-based index in events:),
 *                 detail, detail_contains
 *   alert_states: rule, enterprise, at, key, from, to, cause, evidence,
 *                 opened_at (riskd.alert_state/1)
 *   grades:       grade, mode, inspections_per_year, score, static_score,
 *                 band, static_rules, contributions, flags (read from the
 *                 enterprise's explain document at the end)
 * Times compare as instants (write them with any offset); numbers as
 * numbers; null matches a JSON null; a list key holds the names given, and
 * [] means none at all.  Alerts match shadow alerts too (status: shadow);
 * exact_alerts counts active ones.  Rule ids, grades, modes, reasons and
 * the fixed vocabularies are checked when the file is read, so that an
 * absent: item with a typo cannot pass by matching nothing.
 *
 * --coverage also fails when a rule is named by no expect.alerts item of a
 * test not marked xfail (a static rule that never alerts: by an
 * expect.grades static_rules list).
 *
 * A malformed file or test is reported with file:line:col and counts as a
 * failure.  Exit status: 0 all passed, 1 any failure, 2 unusable arguments.
 *
 * Test files named after DIR (or a test file given instead of DIR) run
 * alone; --run PATTERN runs only the tests whose name matches (POSIX ERE);
 * --junit FILE also writes the results as JUnit XML for CI systems.
 */
#include <dirent.h>
#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "include/riskd/diag.h"
#include "include/riskd/rules.h"
#include "include/riskd/util.h"
#include "src/cli/ruletest.h"
#include "src/cli/ruletest_int.h"
#include "src/util/yaml.h"

static const char *line_of(void *ud, const char *file, uint32_t line, uint32_t *len)
{
        const Ctx *c = ud;
        if (!c->file || strcmp(file, c->file->path) != 0)
                return NULL;
        return srcfile_line(c->file, line, len);
}

static double now_secs(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The text diag_print_text writes, as a string (for the report and for
 * the JUnit file). */
static char *diag_text(const DiagList *dl)
{
        char *s = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&s, &n);
        if (!f)
                return xstrdup("");
        diag_print_text(f, dl, false);
        fclose(f);
        return s;
}

/* ---- files ---- */

static void cover_one(Ctx *c, const YNode *r, bool static_only)
{
        if (!r || r->kind != Y_SCALAR)
                return;
        const Rule *ru = rules_find(c->rs, r->str);
        if (!ru || (static_only && !ru->is_static))
                return;
        for (uint32_t k = 0; k < c->ncovered; k++)
                if (strcmp(c->covered[k], r->str) == 0)
                        return;
        VEC_PUSH(c->covered, c->ncovered, c->ccovered) = xstrdup(r->str);
}

/* A rule is covered when an expect.alerts item names it; a static rule
 * (on: the profile type) that asks for no action or flag never alerts, so
 * naming it in an expect.grades static_rules list covers it too. */
static void cover(Ctx *c, const Test *t)
{
        for (uint32_t i = 0; i < t->nwant[S_ALERTS]; i++)
                cover_one(c, ynode_get(t->want[S_ALERTS][i], "rule"), false);
        for (uint32_t i = 0; t->grades && i < t->grades->n; i++) {
                const YNode *l = ynode_get(t->grades->items[i], "static_rules");
                if (l && l->kind == Y_SEQ)
                        for (uint32_t k = 0; k < l->n; k++)
                                cover_one(c, l->items[k], true);
                else
                        cover_one(c, l, true);
        }
}

static void file_failed(Ctx *c, const char *path, const DiagList *dl, JSuite *js)
{
        char *text = diag_text(dl);
        fprintf(c->out, "FAIL %s (broken test file)\n%s", path, text);
        if (js)
                junit_case(js, path, "(broken test file)", 0, 0, JO_ERROR, "broken test file", text);
        free(text);
        c->tests++;
        c->failed++;
}

/* --run: a test without a name (itself an error) is always run, so that
 * the error is seen. */
static bool selected(const Ctx *c, const char *name)
{
        return !c->run_re || !name || regexec(c->run_re, name, 0, NULL, 0) == 0;
}

static void file_run(Ctx *c, const char *path)
{
        char *text = NULL;
        size_t len = 0;
        DiagList dl = {0};
        JSuite *js = c->junit ? junit_suite(c->junit, path) : NULL;
        int r = file_read_all(path, &text, &len);
        if (r < 0) {
                SrcPos pos = {.file = path};
                diag_add(&dl, DIAG_E002, pos, NULL, "cannot read: %s", strerror(-r));
                file_failed(c, path, &dl, js);
                diag_list_deinit(&dl);
                return;
        }
        SrcFile *f = srcfile_new(path, text, len);
        c->file = f;
        srcfile_parse(f, &dl);
        const YNode *tests = dl.nerrors ? NULL : case_file_tests(&dl, f);
        if (dl.nerrors) {
                file_failed(c, path, &dl, js);
                goto out;
        }
        for (uint32_t i = 0; i < tests->n; i++) {
                Test t = {0};
                case_read(c, &t, tests->items[i], i + 1);
                const char *name = t.name ? t.name : "(unnamed)";
                if (!selected(c, t.name)) {
                        c->deselected++;
                        case_free(&t);
                        continue;
                }
                c->tests++;
                if (t.dl.nerrors) {
                        diag_list_sort(&t.dl);
                        char *dt = diag_text(&t.dl);
                        fprintf(c->out, "FAIL %s:%u %s (malformed test)\n%s", path, t.line, name, dt);
                        if (js)
                                junit_case(js, path, name, t.line, 0, JO_ERROR, "malformed test", dt);
                        free(dt);
                        c->failed++;
                        case_free(&t);
                        continue;
                }
                if (!t.xfail)
                        cover(c, &t);
                Buf rep = {0}, vb = {0};
                double t0 = now_secs();
                bool ok = run_test(c, &t, path, &rep, c->verbose ? &vb : NULL);
                double secs = now_secs() - t0;
                if (t.xfail && !ok) {
                        fprintf(c->out, "xfail %s:%u %s (known: %s)\n", path, t.line, name, t.xfail);
                        if (c->verbose)
                                fputs(rep.p ? rep.p : "", c->out);
                        if (js) {
                                char *m = xasprintf("xfail: %s", t.xfail);
                                junit_case(js, path, name, t.line, secs, JO_SKIP, m, rep.p);
                                free(m);
                        }
                        c->xfailed++;
                } else if (t.xfail) {
                        char *m = xasprintf("passes but is marked xfail (%s): remove the mark", t.xfail);
                        fprintf(c->out, "FAIL %s:%u %s\n  %s\n", path, t.line, name, m);
                        if (js)
                                junit_case(js, path, name, t.line, secs, JO_FAIL, m, m);
                        free(m);
                        c->failed++;
                } else if (ok) {
                        fprintf(c->out, "ok   %s %s\n", path, name);
                        if (js)
                                junit_case(js, path, name, t.line, secs, JO_PASS, NULL, NULL);
                        c->passed++;
                } else {
                        fprintf(c->out, "FAIL %s:%u %s\n", path, t.line, name);
                        fputs(rep.p ? rep.p : "", c->out);
                        if (js)
                                junit_case(js, path, name, t.line, secs, JO_FAIL, NULL, rep.p);
                        c->failed++;
                }
                if (c->verbose)
                        fputs(vb.p ? vb.p : "", c->out);
                buf_free(&rep);
                buf_free(&vb);
                case_free(&t);
        }
out:
        diag_list_deinit(&dl);
        c->file = NULL;
        srcfile_free(f);
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What a run is asked to do (ruletest_main's options). */
typedef struct Opts {
        const char *dir;
        char **files;             /* the test files to run; none: every YAML file of DIR/tests */
        uint32_t nfiles;
        bool verbose, coverage;
        const char *run;          /* --run PATTERN (POSIX extended regex) */
        const char *junit;        /* --junit FILE */
} Opts;

/* A problem outside any test file (the rules do not compile, no test
 * file, coverage) as one case of its own suite in the JUnit report. */
static void junit_problem(Junit *ju, const char *suite, const char *path, const char *name, JOutcome o,
                          const char *message, const char *text)
{
        if (ju)
                junit_case(junit_suite(ju, suite), path, name, 0, 0, o, message, text);
}

static int run_tests(const Opts *o, Ctx *c, FILE *out)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        int r = rules_load(o->dir, &dl, &rs);
        if (r < 0) {
                fprintf(out, "riskctl test: cannot open %s: %s\n", o->dir, strerror(-r));
                diag_list_deinit(&dl);
                return 2;
        }
        if (r > 0) {
                char *dt = diag_text(&dl);
                char *m = xasprintf("%s has %u errors; no test run", o->dir, dl.nerrors);
                fprintf(out, "%sriskctl test: %s\n", dt, m);
                junit_problem(c->junit, o->dir, o->dir, "(rules)", JO_ERROR, m, dt);
                free(m);
                free(dt);
                diag_list_deinit(&dl);
                return 1;
        }
        diag_list_deinit(&dl);

        char *tdir = xasprintf("%s/tests", o->dir);
        char **names = NULL;
        uint32_t n = 0, cap = 0;
        if (o->nfiles) {
                /* a test file named on the command line that is not there
                 * is a wrong argument, not a failing test */
                for (uint32_t i = 0; i < o->nfiles; i++)
                        if (access(o->files[i], R_OK) < 0) {
                                fprintf(out, "riskctl test: cannot open %s: %s\n", o->files[i], strerror(errno));
                                free(tdir);
                                rules_unref(rs);
                                return 2;
                        }
                for (uint32_t i = 0; i < o->nfiles; i++)
                        VEC_PUSH(names, n, cap) = xstrdup(o->files[i]);
        } else {
                DIR *d = opendir(tdir);
                if (!d) {
                        fprintf(out, "riskctl test: cannot open %s: %s\n", tdir, strerror(errno));
                        free(tdir);
                        rules_unref(rs);
                        return 2;
                }
                struct dirent *de;
                while ((de = readdir(d))) {
                        size_t l = strlen(de->d_name);
                        if (de->d_name[0] != '.' && ((l > 5 && strcmp(de->d_name + l - 5, ".yaml") == 0) ||
                                                     (l > 4 && strcmp(de->d_name + l - 4, ".yml") == 0)))
                                VEC_PUSH(names, n, cap) = xasprintf("%s/%s", tdir, de->d_name);
                }
                closedir(d);
                if (n > 1)
                        xsort(names, n, sizeof(char *), name_cmp);
        }

        c->rs = rs;
        c->out = out;
        c->verbose = o->verbose;
        diag_set_line_source(line_of, c);
        for (uint32_t i = 0; i < n; i++) {
                file_run(c, names[i]);
                free(names[i]);
        }
        diag_set_line_source(NULL, NULL);
        free(names);
        int status = c->failed ? 1 : 0;
        if (n == 0) {
                char *m = xasprintf("no *.yaml test file in %s", tdir);
                fprintf(out, "riskctl test: %s\n", m);
                junit_problem(c->junit, tdir, tdir, "(no test file)", JO_ERROR, m, m);
                free(m);
                status = 1;
        } else if (o->run && c->tests == 0) {
                /* a pattern that selects nothing is a typo more often
                 * than an intention: CI must not pass on zero tests */
                char *m = xasprintf("no test name matches --run '%s'", o->run);
                fprintf(out, "riskctl test: %s\n", m);
                junit_problem(c->junit, tdir, tdir, "(--run)", JO_ERROR, m, m);
                free(m);
                status = 1;
        }
        if (o->coverage) {
                uint32_t miss = 0, total = 0;
                Buf cb = {0};
                for (uint32_t i = 0; i < rs->nrules; i++) {
                        if (rs->rules[i].status == RULE_DISABLED)
                                continue;
                        total++;
                        bool have = false;
                        for (uint32_t k = 0; k < c->ncovered && !have; k++)
                                have = strcmp(c->covered[k], rs->rules[i].id) == 0;
                        if (!have) {
                                buf_printf(&cb, "uncovered %s: no expect.alerts item (or expect.grades static_rules for a static rule) names it (%s:%u)\n",
                                           rs->rules[i].id, rs->rules[i].pos.file ? rs->rules[i].pos.file : "?",
                                           rs->rules[i].pos.line);
                                miss++;
                        }
                }
                char *m = xasprintf("coverage: %u of %u rules fire in a test", total - miss, total);
                fprintf(out, "%s%s\n", cb.p ? cb.p : "", m);
                junit_problem(c->junit, "coverage", o->dir, "coverage", miss ? JO_FAIL : JO_PASS, m, cb.p);
                free(m);
                buf_free(&cb);
                if (miss)
                        status = 1;
        }
        fprintf(out, "%u tests, %u passed, %u failed", c->tests, c->passed, c->failed);
        if (c->xfailed)
                fprintf(out, ", %u expected failures (xfail)", c->xfailed);
        if (c->deselected)
                fprintf(out, ", %u not run (--run)", c->deselected);
        fputc('\n', out);
        free(tdir);
        rules_unref(rs);
        return status;
}

static int run(const Opts *o, FILE *out)
{
        regex_t re;
        Junit ju = {0};
        Ctx c = {.junit = o->junit ? &ju : NULL};
        if (o->run) {
                int rc = regcomp(&re, o->run, REG_EXTENDED | REG_NOSUB);
                if (rc != 0) {
                        char msg[256];
                        regerror(rc, &re, msg, sizeof msg);
                        fprintf(stderr, "riskctl test: --run '%s': %s\n", o->run, msg);
                        return 2;
                }
                c.run_re = &re;
        }
        int status = run_tests(o, &c, out);
        if (o->junit && status != 2) {
                int rc = junit_write(&ju, o->junit);
                if (rc < 0) {
                        fprintf(stderr, "riskctl test: cannot write %s: %s\n", o->junit, strerror(-rc));
                        status = 2;
                }
        }
        for (uint32_t k = 0; k < c.ncovered; k++)
                free(c.covered[k]);
        free(c.covered);
        junit_free(&ju);
        if (o->run)
                regfree(&re);
        return status;
}

int ruletest_run(const char *dir, bool verbose, FILE *out)
{
        Opts o = {.dir = dir, .verbose = verbose};
        return run(&o, out);
}

int ruletest_run_coverage(const char *dir, bool verbose, FILE *out)
{
        Opts o = {.dir = dir, .verbose = verbose, .coverage = true};
        return run(&o, out);
}

static const char usage_text[] =
        "usage: riskctl test [OPTIONS] DIR [TEST_FILE...]\n"
        "       riskctl test [OPTIONS] DIR/tests/FILE.yaml...\n"
        "  run the rule tests in DIR/tests/*.yaml (docs/testing-rules.md), or only the\n"
        "  files named (a name without '/' is looked up in DIR/tests)\n"
        "  --run PATTERN  only the tests whose name matches PATTERN (POSIX extended regex)\n"
        "  --junit FILE   also write a JUnit XML report to FILE for a CI system\n"
        "  --verbose      list every output of every test\n"
        "  --coverage     also fail when a rule fires in no test's expect.alerts\n";

/* DIR of a test file DIR/tests/FILE: the parent of the file's directory. */
static char *dir_of_test_file(const char *path)
{
        char *d = xstrdup(path);
        char *s = strrchr(d, '/');
        if (!s) {
                free(d);
                return xstrdup("..");
        }
        *s = 0;
        if (s == d) {
                free(d);
                return xstrdup("/..");
        }
        s = strrchr(d, '/');
        const char *last = s ? s + 1 : d;
        char *r;
        if (strcmp(last, ".") == 0 || strcmp(last, "..") == 0)
                r = xasprintf("%s/..", d);
        else if (!s)
                r = xstrdup(".");
        else if (s == d)
                r = xstrdup("/");
        else
                r = xstrndup(d, (size_t)(s - d));
        free(d);
        return r;
}

int ruletest_main(int argc, char **argv)
{
        Opts o = {0};
        char **pos = xcalloc((size_t)argc + 1, sizeof(char *));
        uint32_t npos = 0;
        int status = 2;
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0)
                        o.verbose = true;
                else if (strcmp(a, "--coverage") == 0)
                        o.coverage = true;
                else if (strcmp(a, "--run") == 0 || strcmp(a, "--junit") == 0) {
                        if (i + 1 == argc) {
                                fprintf(stderr, "riskctl test: %s needs a value\n%s", a, usage_text);
                                goto out;
                        }
                        if (strcmp(a, "--run") == 0)
                                o.run = argv[++i];
                        else
                                o.junit = argv[++i];
                } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
                        fputs(usage_text, stdout);
                        status = 0;
                        goto out;
                } else if (a[0] == '-' && a[1]) {
                        fprintf(stderr, "riskctl test: unknown option '%s'\n%s", a, usage_text);
                        goto out;
                } else
                        pos[npos++] = argv[i];
        }
        if (!npos) {
                fprintf(stderr, "riskctl test: expected a rules directory\n%s", usage_text);
                goto out;
        }
        /* DIR [FILE...], or test files only (DIR is where they live) */
        struct stat st;
        char *dir = NULL;
        uint32_t first = 1;
        if (stat(pos[0], &st) == 0 && !S_ISDIR(st.st_mode)) {
                dir = dir_of_test_file(pos[0]);
                first = 0;
        } else {
                dir = xstrdup(pos[0]);
        }
        o.dir = dir;
        o.files = xcalloc(npos + 1, sizeof(char *));
        for (uint32_t i = first; i < npos; i++)
                o.files[o.nfiles++] = strchr(pos[i], '/') ? xstrdup(pos[i])
                                                          : xasprintf("%s/tests/%s", dir, pos[i]);
        status = run(&o, stdout);
        fflush(stdout);
        for (uint32_t i = 0; i < o.nfiles; i++)
                free(o.files[i]);
        free(o.files);
        free(dir);
out:
        free(pos);
        return status;
}
