/*
 * riskctl test: running one test (ruletest_run.c).  A fresh engine over
 * the shared rules, the test's events in order, then every expectation
 * matched against what came out, read back through the JSON reader; what
 * is missing is reported with the closest outputs, so that a failing test
 * says what the engine did instead.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/engine.h"
#include "src/cli/ruletest_int.h"
#include "src/util/json.h"

typedef struct Output {
        OutKind kind;
        JVal *j;
} Output;

typedef struct Run {
        Arena ar;
        Output *v;
        uint32_t n, cap;
        bool bad_json;
} Run;

static void run_emit(void *ud, OutKind kind, const char *data, size_t len, const OutMeta *m)
{
        Run *r = ud;
        JVal *j;
        if (kind == OUT_DEADLETTER) {
                /* a synthetic document: the reason, the detail and where from */
                Buf b = {0};
                buf_puts(&b, "{\"reason\":");
                buf_json_str(&b, m->reason ? m->reason : "", m->reason ? strlen(m->reason) : 0);
                buf_puts(&b, ",\"detail\":");
                buf_json_str(&b, m->detail ? m->detail : "", m->detail ? strlen(m->detail) : 0);
                buf_puts(&b, ",\"enterprise_id\":");
                if (m->enterprise)
                        buf_json_str(&b, m->enterprise, m->enterprise_len);
                else
                        buf_puts(&b, "null");
                buf_printf(&b, ",\"event\":%lld}", m->source ? (long long)m->source->offset : 0LL);
                j = json_parse(&r->ar, b.p, b.len);
                buf_free(&b);
        } else {
                j = json_parse(&r->ar, data, len);
        }
        if (!j) {
                r->bad_json = true;
                return;
        }
        Output *o = &VEC_PUSH(r->v, r->n, r->cap);
        o->kind = kind == OUT_SHADOW ? OUT_ALERT : kind;
        o->j = j;
}

static Sect sect_of(OutKind k)
{
        return k == OUT_ALERT ? S_ALERTS : k == OUT_ADJUSTMENT ? S_ADJ : k == OUT_ALERT_STATE ? S_STATES : S_DL;
}

static bool is_shadow(const JVal *j)
{
        const char *s = json_str(j, "status");
        return s && strcmp(s, "shadow") == 0;
}

/* One line describing an output. */
static void out_line(Buf *b, const Output *o)
{
        const JVal *j = o->j;
        switch (sect_of(o->kind)) {
        case S_ALERTS:
                buf_puts(b, "alert  ");
                json_show(b, json_get(j, "ts"));
                buf_printf(b, " %s %s", json_str(j, "enterprise_id"), json_str(j, "rule_id"));
                buf_printf(b, " trigger=%s key=", json_str(j, "trigger"));
                json_show(b, json_get(j, "key"));
                buf_puts(b, " score_delta=");
                json_show(b, json_get(j, "score_delta"));
                buf_printf(b, " severity=%s", json_str(j, "severity"));
                if (is_shadow(j))
                        buf_puts(b, " status=shadow");
                break;
        case S_ADJ:
                buf_puts(b, "adjust ");
                json_show(b, json_get(j, "ts"));
                buf_printf(b, " %s ", json_str(j, "enterprise_id"));
                if (json_get(j, "previous") && json_get(j, "previous")->kind == J_OBJ) {
                        json_show(b, json_get(j, "previous.grade"));
                        buf_putc(b, '/');
                        json_show(b, json_get(j, "previous.mode"));
                        buf_putc(b, '/');
                        json_show(b, json_get(j, "previous.inspections_per_year"));
                } else {
                        buf_puts(b, "(first)");
                }
                buf_puts(b, " -> ");
                json_show(b, json_get(j, "current.grade"));
                buf_putc(b, '/');
                json_show(b, json_get(j, "current.mode"));
                buf_putc(b, '/');
                json_show(b, json_get(j, "current.inspections_per_year"));
                buf_puts(b, " score=");
                json_show(b, json_get(j, "score"));
                buf_printf(b, " band=%s cause=%s", json_str(j, "band"), json_str(j, "cause"));
                break;
        case S_STATES:
                buf_puts(b, "state  ");
                json_show(b, json_get(j, "time"));
                buf_printf(b, " %s %s key=", json_str(j, "enterprise_id"), json_str(j, "rule_id"));
                json_show(b, json_get(j, "key"));
                buf_printf(b, " %s -> %s cause=%s", json_str(j, "from"), json_str(j, "to"), json_str(j, "cause"));
                break;
        default:
                buf_puts(b, "dead   event #");
                json_show(b, json_get(j, "event"));
                buf_printf(b, " %s: %s", json_str(j, "reason"), json_str(j, "detail"));
                break;
        }
}

static bool scalar_eq_str(const YNode *w, const JVal *g)
{
        if (ynode_is_null(w))
                return g && g->kind == J_NULL;
        if (!g)
                return false;
        switch (g->kind) {
        case J_STR:
                return g->len == w->len && memcmp(g->s, w->str, w->len) == 0;
        case J_NUM: {
                double d;
                return case_plain_number(w, &d) && d == g->num;
        }
        case J_BOOL: {
                bool b;
                return case_plain_bool(w, &b) && b == g->b;
        }
        default:
                return false;
        }
}

/* arr holds w: as a string (member NULL) or as the member of an object */
static bool has_name(const JVal *arr, const YNode *w, const char *member)
{
        if (!arr || arr->kind != J_ARR)
                return false;
        for (uint32_t i = 0; i < arr->n; i++) {
                const JVal *x = member ? json_get(arr->items[i], member) : arr->items[i];
                if (x && x->kind == J_STR && x->len == w->len && memcmp(x->s, w->str, w->len) == 0)
                        return true;
        }
        return false;
}

static bool key_match(const MKey *k, const YNode *w, const JVal *g)
{
        int64_t a, b;
        double d;
        switch (k->type) {
        case MT_STR:
                return scalar_eq_str(w, g);
        case MT_NUM:
                if (ynode_is_null(w))
                        return g && g->kind == J_NULL;
                return g && g->kind == J_NUM && case_plain_number(w, &d) && fabs(d - g->num) <= 1e-9 * (1 + fabs(d));
        case MT_TIME:
                if (ynode_is_null(w))
                        return g && g->kind == J_NULL;
                return g && g->kind == J_STR && time_parse(w->str, w->len, &a) == 0 &&
                       time_parse(g->s, g->len, &b) == 0 && a == b;
        case MT_CONTAINS:
                return g && g->kind == J_STR && strstr(g->s, w->str) != NULL;
        case MT_HAS:
        case MT_FLAGS:
        case MT_RULES: {
                const char *m = k->type == MT_FLAGS ? "name" : k->type == MT_RULES ? "rule_id" : NULL;
                if (w->kind == Y_SEQ) {
                        if (w->n == 0) /* [] : none at all */
                                return g && g->kind == J_ARR && g->n == 0;
                        for (uint32_t i = 0; i < w->n; i++)
                                if (!has_name(g, w->items[i], m))
                                        return false;
                        return true;
                }
                return has_name(g, w, m);
        }
        }
        return false;
}

static void ynode_show(Buf *b, const YNode *n)
{
        if (n->kind == Y_SCALAR) {
                if (n->style == YS_PLAIN)
                        buf_put(b, n->str, n->len);
                else
                        buf_json_str(b, n->str, n->len);
                return;
        }
        buf_putc(b, n->kind == Y_SEQ ? '[' : '{');
        for (uint32_t i = 0; i < n->n; i++) {
                if (i)
                        buf_puts(b, ", ");
                if (n->kind == Y_MAP) {
                        buf_puts(b, n->keys[i]->str);
                        buf_puts(b, ": ");
                }
                ynode_show(b, n->items[i]);
        }
        buf_putc(b, n->kind == Y_SEQ ? ']' : '}');
}

/* The number of keys of want that o does not match; their diffs to diff. */
static uint32_t mismatches(const MKey *keys, const YNode *want, const JVal *o, Buf *diff)
{
        uint32_t n = 0;
        for (uint32_t i = 0; i < want->n; i++) {
                const MKey *k = mkey_find(keys, want->keys[i]->str);
                assert(k); /* item_read let no other key through */
                const JVal *g = json_get(o, k->path);
                if (key_match(k, want->items[i], g))
                        continue;
                n++;
                if (diff) {
                        buf_printf(diff, "%s%s: want ", n > 1 ? ", " : "", k->name);
                        ynode_show(diff, want->items[i]);
                        buf_puts(diff, ", got ");
                        if ((k->type == MT_FLAGS || k->type == MT_RULES) && g && g->kind == J_ARR) {
                                buf_putc(diff, '[');
                                for (uint32_t x = 0; x < g->n; x++) {
                                        if (x)
                                                buf_puts(diff, ", ");
                                        json_show(diff, json_get(g->items[x], k->type == MT_FLAGS ? "name" : "rule_id"));
                                }
                                buf_putc(diff, ']');
                        } else {
                                json_show(diff, g);
                        }
                }
        }
        return n;
}

static void pos_prefix(Buf *b, const YNode *n)
{
        buf_printf(b, "  %s:%u:%u: ", n->src->path, n->line, n->col);
}

/* Report a missing expected item with the closest outputs of its rule or
 * enterprise. */
static void report_missing(Buf *b, Sect s, const YNode *want, const Run *r)
{
        const MKey *keys = sect_keys[s];
        pos_prefix(b, want);
        buf_printf(b, "expected %s not found: ", sect_item[s]);
        ynode_show(b, want);
        buf_putc(b, '\n');
        /* candidates: same rule (alerts) and same enterprise, if given */
        const YNode *rule = ynode_get(want, "rule"), *ent = ynode_get(want, "enterprise");
        uint32_t *idx = xmalloc((r->n + 1) * sizeof(uint32_t)), *miss = xmalloc((r->n + 1) * sizeof(uint32_t));
        uint32_t nc = 0;
        for (int pass = 0; pass < 2 && nc == 0; pass++)
                for (uint32_t i = 0; i < r->n; i++) {
                        const Output *o = &r->v[i];
                        if (sect_of(o->kind) != s)
                                continue;
                        if (rule && pass == 0 && !scalar_eq_str(rule, json_get(o->j, "rule_id")))
                                continue;
                        if (ent && !scalar_eq_str(ent, json_get(o->j, "enterprise_id")))
                                continue;
                        idx[nc] = i;
                        miss[nc++] = mismatches(keys, want, o->j, NULL);
                }
        if (nc == 0) {
                buf_printf(b, "      no %s at all%s%s\n", s == S_ALERTS ? "alert" : sect_names[s],
                           ent ? " for enterprise " : "", ent ? ent->str : "");
        } else {
                if (rule && nc && !scalar_eq_str(rule, json_get(r->v[idx[0]].j, "rule_id")))
                        buf_printf(b, "      no alert of %s%s%s; other %s:\n", rule->str,
                                   ent ? " for " : "", ent ? ent->str : "", sect_names[s]);
                else
                        buf_puts(b, "      closest:\n");
                /* the fewest mismatches first, then output order; at most 5 */
                for (uint32_t shown = 0; shown < 5 && shown < nc; shown++) {
                        uint32_t best = shown;
                        for (uint32_t k = shown + 1; k < nc; k++)
                                if (miss[k] < miss[best])
                                        best = k;
                        uint32_t ti = idx[shown], tm = miss[shown];
                        idx[shown] = idx[best];
                        miss[shown] = miss[best];
                        idx[best] = ti;
                        miss[best] = tm;
                        const Output *o = &r->v[idx[shown]];
                        buf_puts(b, "        ");
                        out_line(b, o);
                        buf_puts(b, "\n          (");
                        mismatches(keys, want, o->j, b);
                        buf_puts(b, ")\n");
                }
                if (nc > 5)
                        buf_printf(b, "        ... and %u more\n", nc - 5);
        }
        free(idx);
        free(miss);
}

typedef struct GradeRow {
        const char *ent;
        JVal *j;
} GradeRow;

static void grades_table(Buf *b, const GradeRow *g, uint32_t n)
{
        buf_puts(b, "      final grades:\n");
        if (!n)
                buf_puts(b, "        (no enterprise)\n");
        for (uint32_t i = 0; i < n; i++) {
                buf_printf(b, "        %-20s ", g[i].ent);
                json_show(b, json_get(g[i].j, "grade"));
                buf_putc(b, ' ');
                json_show(b, json_get(g[i].j, "mode"));
                buf_puts(b, " inspections_per_year=");
                json_show(b, json_get(g[i].j, "inspections_per_year"));
                buf_puts(b, " score=");
                json_show(b, json_get(g[i].j, "score"));
                buf_putc(b, '\n');
        }
}

bool run_test(Ctx *c, Test *t, const char *path, Buf *b, Buf *verbose)
{
        Run r = {0};
        arena_init(&r.ar);
        EngineConfig cfg;
        engine_config_default(&cfg);
        cfg.grace_ms = t->grace;
        Engine *e = NULL;
        int rc = engine_new(&e, c->rs, &cfg, run_emit, &r);
        if (rc < 0) {
                buf_printf(b, "  cannot start the engine: %s\n", strerror(-rc));
                arena_deinit(&r.ar);
                return false;
        }
        for (uint32_t i = 0; i < t->nev; i++) {
                SourcePos src = {.topic = path, .partition = -1, .offset = (int64_t)i + 1};
                engine_push(e, t->ev[i].json, t->ev[i].len, &src);
        }
        engine_flush(e);
        if (t->has_until)
                engine_advance(e, t->until);
        Buf gb = {0};
        engine_grades_write(e, &gb);
        /* the explain document of each enterprise expect.grades names */
        JVal **xj = xcalloc(t->grades ? t->grades->n + 1 : 1, sizeof(JVal *));
        for (uint32_t i = 0; t->grades && i < t->grades->n; i++) {
                const YNode *en = t->grades->keys[i];
                char *x = engine_explain_json(e, en->str, en->len);
                if (x)
                        xj[i] = json_parse(&r.ar, x, strlen(x));
                free(x);
        }
        engine_free(e);

        GradeRow *g = NULL;
        uint32_t ng = 0, cg = 0;
        for (const char *p = gb.p; p && *p;) {
                const char *nl = strchr(p, '\n');
                size_t n = nl ? (size_t)(nl - p) : strlen(p);
                JVal *j = json_parse(&r.ar, p, n);
                if (j && json_str(j, "enterprise_id"))
                        VEC_PUSH(g, ng, cg) = (GradeRow){.ent = json_str(j, "enterprise_id"), .j = j};
                p += n + (nl != NULL);
        }
        buf_free(&gb);

        bool ok = true;
        if (r.bad_json) {
                buf_puts(b, "  the engine wrote a document this runner cannot read (not JSON)\n");
                ok = false;
        }
        for (int s = 0; s < NSECT; s++)
                for (uint32_t i = 0; i < t->nwant[s]; i++) {
                        bool found = false;
                        for (uint32_t k = 0; k < r.n && !found; k++)
                                found = sect_of(r.v[k].kind) == (Sect)s &&
                                        mismatches(sect_keys[s], t->want[s][i], r.v[k].j, NULL) == 0;
                        if (!found) {
                                ok = false;
                                report_missing(b, (Sect)s, t->want[s][i], &r);
                        }
                }
        for (int s = 0; s < NSECT; s++)
                for (uint32_t i = 0; i < t->nforbid[s]; i++) {
                        bool head = false;
                        for (uint32_t k = 0; k < r.n; k++) {
                                if (sect_of(r.v[k].kind) != (Sect)s ||
                                    mismatches(sect_keys[s], t->forbid[s][i], r.v[k].j, NULL) != 0)
                                        continue;
                                if (!head) {
                                        pos_prefix(b, t->forbid[s][i]);
                                        buf_printf(b, "forbidden %s appeared: ", sect_item[s]);
                                        ynode_show(b, t->forbid[s][i]);
                                        buf_putc(b, '\n');
                                        head = true;
                                }
                                buf_puts(b, "        ");
                                out_line(b, &r.v[k]);
                                buf_putc(b, '\n');
                        }
                        if (head)
                                ok = false;
                }
        if (t->grades) {
                bool bad = false;
                for (uint32_t i = 0; i < t->grades->n; i++) {
                        const YNode *en = t->grades->keys[i], *want = t->grades->items[i];
                        pos_prefix(b, en);
                        if (!xj[i]) {
                                buf_printf(b, "grades: the engine never saw enterprise %s\n", en->str);
                                bad = true;
                                continue;
                        }
                        Buf d = {0};
                        if (mismatches(grade_keys, want, xj[i], &d)) {
                                buf_printf(b, "grades: %s: %s\n", en->str, d.p);
                                bad = true;
                        } else {
                                /* take the prefix back: nothing to say */
                                char *last = b->p + b->len;
                                while (last > b->p && last[-1] != '\n')
                                        last--;
                                b->len = (size_t)(last - b->p);
                                b->p[b->len] = 0;
                        }
                        buf_free(&d);
                }
                if (bad) {
                        grades_table(b, g, ng);
                        ok = false;
                }
        }
        if (t->exact_alerts >= 0) {
                int64_t n = 0;
                for (uint32_t k = 0; k < r.n; k++)
                        n += r.v[k].kind == OUT_ALERT && !is_shadow(r.v[k].j);
                if (n != t->exact_alerts) {
                        const YNode *v = ynode_get(t->node, "exact_alerts");
                        pos_prefix(b, v);
                        buf_printf(b, "exact_alerts: want %lld, got %lld\n", (long long)t->exact_alerts, (long long)n);
                        for (uint32_t k = 0; k < r.n; k++)
                                if (r.v[k].kind == OUT_ALERT && !is_shadow(r.v[k].j)) {
                                        buf_puts(b, "        ");
                                        out_line(b, &r.v[k]);
                                        buf_putc(b, '\n');
                                }
                        ok = false;
                }
        }
        if (verbose) {
                buf_printf(verbose, "       outputs (%u):\n", r.n);
                for (uint32_t k = 0; k < r.n; k++) {
                        buf_puts(verbose, "         ");
                        out_line(verbose, &r.v[k]);
                        buf_putc(verbose, '\n');
                }
                grades_table(verbose, g, ng);
        }
        free(g);
        free(xj);
        free(r.v);
        arena_deinit(&r.ar);
        return ok;
}
