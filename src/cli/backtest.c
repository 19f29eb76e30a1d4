/*
 * Back-testing (backtest.h): what a replay produced, and the comparison of
 * two replays of the same events under two rule sets.
 *
 * The comparison is exhaustive by construction, so that it can never say
 * "no difference" when there is one: every alert (shadow alerts too) is
 * matched by alert_id, every adjustment by adjustment_id, every dead letter
 * by its source line; a document matched on both sides is compared member
 * by member (rules_version aside: it differs whenever the rules do), an
 * unmatched one is gained or lost; the final grades and scores are compared
 * per enterprise, and the order of the outputs as a whole.  The per
 * enterprise grading histories and the firings per rule are views of the
 * same outputs, for people.  What differs is collected in a Diff
 * (backtest_int.h), which backtest_report.c writes as text, JSON or CSV.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "src/cli/backtest_int.h"
#include "src/util/json.h"

int bt_format_parse(const char *s, unsigned allowed, BtFormat *ret)
{
        static const char *const names[] = {"text", "json", "csv"};
        for (unsigned f = 0; f < 3; f++)
                if ((allowed & (1u << f)) && strcmp(s, names[f]) == 0) {
                        *ret = (BtFormat)f;
                        return 0;
                }
        return -EINVAL;
}

void bt_run_add(BtRun *run, OutKind kind, const char *doc, size_t len)
{
        /* diff compares alerts, adjustments and dead letters; an alert's
         * transitions follow from its rule's alerts (riskctl(1)) */
        if (kind == OUT_ALERT_STATE)
                return;
        if (run->nouts == run->couts) {
                run->couts = run->couts ? 2 * run->couts : 256;
                run->outs = xrealloc(run->outs, run->couts * sizeof(BtOutput));
        }
        run->outs[run->nouts++] = (BtOutput){.kind = kind, .doc = xstrndup(doc, len), .len = len};
}

void bt_run_finish(BtRun *run, Engine *e)
{
        run->grades.len = 0;
        engine_grades_write(e, &run->grades);
        run->end = engine_stats(e)->watermark;
        rules_unref(run->rs);
        run->rs = rules_ref((RuleSet *)engine_rules(e));
}

void bt_run_deinit(BtRun *run)
{
        for (uint32_t i = 0; i < run->nouts; i++)
                free(run->outs[i].doc);
        free(run->outs);
        buf_free(&run->grades);
        rules_unref(run->rs);
        *run = (BtRun){0};
}

/* ---- reading the engine's documents back ----
 *
 * The documents are the engine's own (src/engine/output.c, explain.c): one JSON
 * object, no insignificant whitespace, keys without escapes.  A member's
 * value is kept as its JSON text: two values are equal when their texts
 * are, as the engine writes a value one way only. */

static int str_cmp3(Str a, Str b)
{
        int c = memcmp(a.p, b.p, a.len < b.len ? a.len : b.len);
        return c ? c : (a.len > b.len) - (a.len < b.len);
}

static const char *jskip_str(const char *p, const char *end)
{
        for (p++; p < end && *p != '"'; p++)
                if (*p == '\\')
                        p++;
        return p < end ? p + 1 : end;
}

static const char *jskip(const char *p, const char *end)
{
        if (p < end && *p == '"')
                return jskip_str(p, end);
        if (p < end && (*p == '{' || *p == '[')) {
                int depth = 0;
                while (p < end) {
                        if (*p == '"') {
                                p = jskip_str(p, end);
                                continue;
                        }
                        if (*p == '{' || *p == '[')
                                depth++;
                        else if ((*p == '}' || *p == ']') && --depth == 0)
                                return p + 1;
                        p++;
                }
                return end;
        }
        while (p < end && *p != ',' && *p != '}' && *p != ']')
                p++;
        return p;
}

/* The member after *p (at the object's '{' or at the ',' after a member):
 * its key (unquoted) and value text; false at the end of the object. */
static bool jnext(const char **p, const char *end, Str *key, Str *val)
{
        const char *q = *p;
        if (q + 1 >= end || *q == '}' || q[1] != '"')
                return false;
        const char *k = q + 1;
        q = jskip_str(k, end);
        *key = str_of(k + 1, (size_t)(q - k - 2));
        if (q >= end || *q != ':')
                return false;
        const char *v = q + 1;
        q = jskip(v, end);
        *val = str_of(v, (size_t)(q - v));
        *p = q;
        return true;
}

bool jnext_elem(const char **p, const char *end, Str *val)
{
        const char *q = *p;
        if (q + 1 >= end || *q == ']' || q[1] == ']')
                return false;
        const char *v = q + 1;
        q = jskip(v, end);
        *val = str_of(v, (size_t)(q - v));
        *p = q;
        return true;
}

static bool jget(Str obj, const char *name, Str *val)
{
        const char *p = obj.p, *end = obj.p + obj.len;
        Str k, v;
        size_t n = strlen(name);
        while (jnext(&p, end, &k, &v))
                if (k.len == n && memcmp(k.p, name, n) == 0) {
                        *val = v;
                        return true;
                }
        return false;
}

Str jget_or_null(Str obj, const char *name)
{
        Str v;
        return jget(obj, name, &v) ? v : str_of("null", 4);
}

void jtext(Buf *b, Str v)
{
        if (v.len < 2 || v.p[0] != '"') {
                buf_put(b, v.p, v.len);
                return;
        }
        json_unescape(b, v.p + 1, v.len - 2);
}

static int64_t jtime(Str v)
{
        int64_t t = 0;
        if (v.len >= 2 && v.p[0] == '"')
                time_parse(v.p + 1, v.len - 2, &t);
        return t;
}

void grading_text(Buf *b, Str g)
{
        if (g.len == 4 && memcmp(g.p, "null", 4) == 0) {
                buf_puts(b, "none");
                return;
        }
        jtext(b, jget_or_null(g, "grade"));
        buf_putc(b, '/');
        jtext(b, jget_or_null(g, "mode"));
        buf_putc(b, '/');
        jtext(b, jget_or_null(g, "inspections_per_year"));
}

static bool grading_eq(Str a, Str b)
{
        static const char *const k[] = {"grade", "mode", "inspections_per_year"};
        for (int i = 0; i < 3; i++)
                if (!str_eq(jget_or_null(a, k[i]), jget_or_null(b, k[i])))
                        return false;
        return true;
}

/* ---- matching documents of the two runs ---- */

const char *const sec_names[NSEC] = {"alert", "adjustment", "dead_letter"};
const char *const sec_plural[NSEC] = {"alerts", "adjustments", "dead letters"};
const char *const sec_key[NSEC] = {"alert_id", "adjustment_id", "source"};
const char *const change_names[3] = {"gained", "lost", "changed"};

static Section section_of(OutKind k)
{
        return k == OUT_ADJUSTMENT ? SEC_ADJUSTMENT : k == OUT_DEADLETTER ? SEC_DEADLETTER : SEC_ALERT;
}

typedef struct Keyed {
        Str key;
        uint32_t i;              /* index in the run's outputs */
} Keyed;

static int keyed_cmp(const void *a, const void *b)
{
        const Keyed *x = a, *y = b;
        int c = str_cmp3(x->key, y->key);
        return c ? c : (x->i > y->i) - (x->i < y->i);
}

static Keyed *keyed(const BtRun *run, Section s, uint32_t *n)
{
        Keyed *k = xcalloc(run->nouts + 1, sizeof(Keyed));
        *n = 0;
        for (uint32_t i = 0; i < run->nouts; i++) {
                const BtOutput *o = &run->outs[i];
                if (section_of(o->kind) != s)
                        continue;
                k[*n].key = jget_or_null(str_of(o->doc, o->len), sec_key[s]);
                k[(*n)++].i = i;
        }
        xsort(k, *n, sizeof(Keyed), keyed_cmp);
        return k;
}

static int item_cmp(const void *a, const void *b)
{
        const Item *x = a, *y = b;
        if (x->sec != y->sec)
                return (int)x->sec - (int)y->sec;
        if (x->ts != y->ts)
                return x->ts < y->ts ? -1 : 1;
        const BtOutput *ox = x->n ? x->n : x->o, *oy = y->n ? y->n : y->o;
        int c = str_cmp3(jget_or_null(str_of(ox->doc, ox->len), "enterprise_id"),
                         jget_or_null(str_of(oy->doc, oy->len), "enterprise_id"));
        return c ? c : (x->at > y->at) - (x->at < y->at);
}

/* Members that differ, rules_version aside. */
static bool docs_differ(const BtOutput *a, const BtOutput *b)
{
        Str da = str_of(a->doc, a->len), db = str_of(b->doc, b->len), k, v, w;
        const char *p = da.p;
        uint32_t na = 0, nb = 0;
        while (jnext(&p, da.p + da.len, &k, &v)) {
                if (k.len == 13 && memcmp(k.p, "rules_version", 13) == 0)
                        continue;
                na++;
                char *name = xstrndup(k.p, k.len);
                bool same = jget(db, name, &w) && str_eq(v, w);
                free(name);
                if (!same)
                        return true;
        }
        p = db.p;
        while (jnext(&p, db.p + db.len, &k, &v))
                nb += !(k.len == 13 && memcmp(k.p, "rules_version", 13) == 0);
        return na != nb;
}

uint32_t field_diffs(const BtOutput *a, const BtOutput *b, FieldDiff *out, uint32_t max)
{
        Str da = str_of(a->doc, a->len), db = str_of(b->doc, b->len), k, v, w;
        uint32_t n = 0;
        const char *p = da.p;
        while (jnext(&p, da.p + da.len, &k, &v) && n < max) {
                if (k.len == 13 && memcmp(k.p, "rules_version", 13) == 0)
                        continue;
                char *name = xstrndup(k.p, k.len);
                bool has = jget(db, name, &w);
                free(name);
                if (!has || !str_eq(v, w))
                        out[n++] = (FieldDiff){k, v, has ? w : NONE, true, has};
        }
        p = db.p;
        while (jnext(&p, db.p + db.len, &k, &v) && n < max) {
                char *name = xstrndup(k.p, k.len);
                bool has = jget(da, name, &w);
                free(name);
                if (!has)
                        out[n++] = (FieldDiff){k, NONE, v, false, true};
        }
        return n;
}

/* ---- grading histories ---- */

static int step_cmp(const void *a, const void *b)
{
        const Step *x = a, *y = b;
        int c = str_cmp3(x->ent, y->ent);
        return c ? c : (x->i > y->i) - (x->i < y->i);
}

static Step *steps(const BtRun *run, uint32_t *n)
{
        Step *s = xcalloc(run->nouts + 1, sizeof(Step));
        *n = 0;
        for (uint32_t i = 0; i < run->nouts; i++) {
                if (run->outs[i].kind != OUT_ADJUSTMENT)
                        continue;
                Str d = str_of(run->outs[i].doc, run->outs[i].len);
                Step *x = &s[(*n)++];
                x->ent = jget_or_null(d, "enterprise_id");
                x->current = jget_or_null(d, "current");
                x->score = jget_or_null(d, "score");
                x->cause = jget_or_null(d, "cause");
                x->ts_text = jget_or_null(d, "ts");
                x->ts = jtime(x->ts_text);
                x->i = i;
        }
        xsort(s, *n, sizeof(Step), step_cmp);
        return s;
}

static int final_cmp(const void *a, const void *b)
{
        return str_cmp3(((const Final *)a)->ent, ((const Final *)b)->ent);
}

static Final *finals(const BtRun *run, uint32_t *n)
{
        uint32_t cap = 16;
        Final *f = xmalloc(cap * sizeof(Final));
        *n = 0;
        const char *p = run->grades.p ? run->grades.p : "", *end = p + run->grades.len;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
                if (len) {
                        if (*n == cap)
                                f = xrealloc(f, (cap *= 2) * sizeof(Final));
                        Str line = str_of(p, len);
                        f[(*n)++] = (Final){jget_or_null(line, "enterprise_id"), line, jget_or_null(line, "score")};
                }
                p += len + 1;
        }
        xsort(f, *n, sizeof(Final), final_cmp);
        return f;
}

static Str grading_at(const Step *s, uint32_t n, int64_t t)
{
        Str g = str_of("null", 4);
        for (uint32_t k = 0; k < n && s[k].ts <= t; k++)
                g = s[k].current;
        return g;
}

static bool grading_null(Str g)
{
        return g.len == 4 && memcmp(g.p, "null", 4) == 0;
}

static bool gradings_eq(Str a, Str b)
{
        if (grading_null(a) || grading_null(b))
                return grading_null(a) && grading_null(b);
        return grading_eq(a, b);
}

/* The first time the two gradings differ: at each time either run changed
 * it, compare what each run has then. */
static void ent_history(EntDiff *d)
{
        uint32_t x = 0, y = 0;
        while (x < d->no || y < d->nn) {
                int64_t t = y >= d->nn || (x < d->no && d->o[x].ts <= d->n[y].ts) ? d->o[x].ts : d->n[y].ts;
                while (x < d->no && d->o[x].ts <= t)
                        x++;
                while (y < d->nn && d->n[y].ts <= t)
                        y++;
                Str go = grading_at(d->o, d->no, t), gn = grading_at(d->n, d->nn, t);
                if (!gradings_eq(go, gn)) {
                        d->history = true;
                        d->at = t;
                        d->at_o = go;
                        d->at_n = gn;
                        return;
                }
        }
}

static void ent_final(EntDiff *d)
{
        if (!d->fo || !d->fn) {
                d->final = d->fo || d->fn;
                d->score = d->final;
                return;
        }
        d->final = !grading_eq(d->fo->line, d->fn->line);
        d->score = !str_eq(d->fo->score, d->fn->score);
}

uint32_t grade_times(const Step *s, uint32_t n, int64_t end, GradeTime *gt, uint32_t max)
{
        uint32_t k = 0;
        for (uint32_t i = 0; i < n; i++) {
                int64_t until = i + 1 < n ? s[i + 1].ts : end;
                if (until < s[i].ts)
                        until = s[i].ts;
                Str g = jget_or_null(s[i].current, "grade");
                uint32_t j = 0;
                while (j < k && !str_eq(gt[j].grade, g))
                        j++;
                if (j == k) {
                        if (k == max)
                                continue;
                        gt[k++] = (GradeTime){g, 0};
                }
                gt[j].ms += until - s[i].ts;
        }
        return k;
}

/* ---- rules and grades ---- */

static int str_cmp_qsort(const void *a, const void *b)
{
        return str_cmp3(*(const Str *)a, *(const Str *)b);
}

/* Firings of each rule id: the sorted rule ids of every alert. */
static Str *fired_ids(const BtRun *run, uint32_t *n)
{
        Str *ids = xcalloc(run->nouts + 1, sizeof(Str));
        *n = 0;
        for (uint32_t i = 0; i < run->nouts; i++)
                if (section_of(run->outs[i].kind) == SEC_ALERT) {
                        Str v = jget_or_null(str_of(run->outs[i].doc, run->outs[i].len), "rule_id");
                        if (v.len >= 2)
                                ids[(*n)++] = str_of(v.p + 1, v.len - 2);
                }
        xsort(ids, *n, sizeof(Str), str_cmp_qsort);
        return ids;
}

static uint64_t firings(const Str *ids, uint32_t n, const char *id)
{
        Str key = str_of(id, strlen(id));
        uint32_t lo = 0, hi = n;
        while (lo < hi) {
                uint32_t mid = (lo + hi) / 2;
                if (str_cmp3(ids[mid], key) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        uint64_t c = 0;
        for (; lo < n && str_eq(ids[lo], key); lo++)
                c++;
        return c;
}

const char *rule_change(const RuleRow *r)
{
        if (!r->o)
                return "added";
        if (!r->n)
                return "removed";
        return r->o->fingerprint != r->n->fingerprint || r->o->status != r->n->status ? "changed" : "same";
}

void bt_grade_counts(const RuleSet *rs, const char *grades, size_t len, uint64_t *counts)
{
        const Grading *g = &rs->grading;
        memset(counts, 0, (g->nbands + 1) * sizeof(uint64_t));
        const char *p = grades ? grades : "", *end = p + len;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
                if (n) {
                        Str v = jget_or_null(str_of(p, n), "grade");
                        uint32_t b = 0;
                        while (b < g->nbands && !(v.len == strlen(g->bands[b].grade) + 2 &&
                                                  memcmp(v.p + 1, g->bands[b].grade, v.len - 2) == 0))
                                b++;
                        counts[b]++;
                }
                p += n + 1;
        }
}

/* ---- the report ---- */

static void diff_match(Diff *d, Section s)
{
        uint32_t n[2];
        Keyed *k[2] = {keyed(d->run[0], s, &n[0]), keyed(d->run[1], s, &n[1])};
        d->nouts[0][s] = n[0];
        d->nouts[1][s] = n[1];
        uint32_t x = 0, y = 0;
        while (x < n[0] || y < n[1]) {
                int c = x >= n[0] ? 1 : y >= n[1] ? -1 : str_cmp3(k[0][x].key, k[1][y].key);
                Item it = {.sec = s};
                if (c == 0) {
                        it.o = &d->run[0]->outs[k[0][x++].i];
                        it.at = k[1][y].i;
                        it.n = &d->run[1]->outs[k[1][y++].i];
                        if (!docs_differ(it.o, it.n))
                                continue;
                        it.ch = CH_CHANGED;
                } else if (c < 0) {
                        it.at = k[0][x].i;
                        it.o = &d->run[0]->outs[k[0][x++].i];
                        it.ch = CH_LOST;
                } else {
                        it.at = k[1][y].i;
                        it.n = &d->run[1]->outs[k[1][y++].i];
                        it.ch = CH_GAINED;
                }
                const BtOutput *o = it.n ? it.n : it.o;
                it.ts = s == SEC_DEADLETTER ? 0 : jtime(jget_or_null(str_of(o->doc, o->len), "ts"));
                if (s == SEC_DEADLETTER) /* in line order */
                        it.ts = strtoll(jget_or_null(jget_or_null(str_of(o->doc, o->len), "source"), "line").p, NULL, 10);
                if (d->nitems == d->citems) {
                        d->citems = d->citems ? 2 * d->citems : 64;
                        d->items = xrealloc(d->items, d->citems * sizeof(Item));
                }
                d->items[d->nitems++] = it;
                d->count[s][it.ch]++;
        }
        /* exhaustive: an output of either run is matched, gained or lost */
        assert(n[0] - d->count[s][CH_LOST] == n[1] - d->count[s][CH_GAINED]);
        free(k[0]);
        free(k[1]);
}

static void diff_ents(Diff *d, Step *st[2], uint32_t nst[2], Final *fi[2], uint32_t nfi[2])
{
        uint32_t x = 0, y = 0, fx = 0, fy = 0;
        for (;;) {
                /* the next enterprise id of any of the four sorted lists */
                Str id = {0};
                bool any = false;
                const Str cand[4] = {x < nst[0] ? st[0][x].ent : NONE, y < nst[1] ? st[1][y].ent : NONE,
                                     fx < nfi[0] ? fi[0][fx].ent : NONE, fy < nfi[1] ? fi[1][fy].ent : NONE};
                const bool have[4] = {x < nst[0], y < nst[1], fx < nfi[0], fy < nfi[1]};
                for (int k = 0; k < 4; k++)
                        if (have[k] && (!any || str_cmp3(cand[k], id) < 0)) {
                                id = cand[k];
                                any = true;
                        }
                if (!any)
                        break;
                EntDiff e = {.id = id};
                e.o = st[0] + x;
                while (x < nst[0] && str_eq(st[0][x].ent, id))
                        x++, e.no++;
                e.n = st[1] + y;
                while (y < nst[1] && str_eq(st[1][y].ent, id))
                        y++, e.nn++;
                if (fx < nfi[0] && str_eq(fi[0][fx].ent, id))
                        e.fo = &fi[0][fx++];
                if (fy < nfi[1] && str_eq(fi[1][fy].ent, id))
                        e.fn = &fi[1][fy++];
                ent_history(&e);
                ent_final(&e);
                if (!e.history && !e.final && !e.score)
                        continue;
                d->nhistory += e.history;
                d->nfinal += e.final;
                d->nscore += e.score;
                if (d->nents == d->cents) {
                        d->cents = d->cents ? 2 * d->cents : 16;
                        d->ents = xrealloc(d->ents, d->cents * sizeof(EntDiff));
                }
                d->ents[d->nents++] = e;
        }
}

static void diff_rules(Diff *d)
{
        const RuleSet *rs[2] = {d->run[0]->rs, d->run[1]->rs};
        uint32_t nids[2];
        Str *ids[2] = {fired_ids(d->run[0], &nids[0]), fired_ids(d->run[1], &nids[1])};
        d->rules = xcalloc(rs[0]->nrules + rs[1]->nrules + 1, sizeof(RuleRow));
        for (int k = 0; k < 2; k++)
                for (uint32_t i = 0; i < rs[k]->nrules; i++) {
                        const Rule *r = &rs[k]->rules[i];
                        if (k == 1 && rules_find(rs[0], r->id))
                                continue;
                        RuleRow *row = &d->rules[d->nrules++];
                        row->id = r->id;
                        row->o = rules_find(rs[0], r->id);
                        row->n = rules_find(rs[1], r->id);
                        row->fo = firings(ids[0], nids[0], r->id);
                        row->fn = firings(ids[1], nids[1], r->id);
                        d->nrules_differ += row->fo != row->fn || strcmp(rule_change(row), "same") != 0;
                }
        free(ids[0]);
        free(ids[1]);
}

static void diff_grades(Diff *d)
{
        const RuleSet *rs[2] = {d->run[0]->rs, d->run[1]->rs};
        d->grades = xcalloc(rs[0]->grading.nbands + rs[1]->grading.nbands + 1, sizeof(char *));
        for (int k = 0; k < 2; k++)
                for (uint32_t b = 0; b < rs[k]->grading.nbands; b++) {
                        uint32_t j = 0;
                        while (j < d->ngrades && strcmp(d->grades[j], rs[k]->grading.bands[b].grade) != 0)
                                j++;
                        if (j == d->ngrades)
                                d->grades[d->ngrades++] = rs[k]->grading.bands[b].grade;
                }
        d->grades[d->ngrades++] = NULL;
        for (int k = 0; k < 2; k++) {
                uint64_t *c = xcalloc(rs[k]->grading.nbands + 1, sizeof(uint64_t));
                bt_grade_counts(rs[k], d->run[k]->grades.p, d->run[k]->grades.len, c);
                d->gcount[k] = xcalloc(d->ngrades, sizeof(uint64_t));
                for (uint32_t b = 0; b <= rs[k]->grading.nbands; b++) {
                        const char *name = b < rs[k]->grading.nbands ? rs[k]->grading.bands[b].grade : NULL;
                        for (uint32_t j = 0; j < d->ngrades; j++)
                                if (name ? d->grades[j] && strcmp(d->grades[j], name) == 0 : !d->grades[j])
                                        d->gcount[k][j] += c[b];
                }
                free(c);
        }
}

/* Same documents but another order: compare the sequences of keys. */
static bool diff_order(const Diff *d)
{
        const BtRun *a = d->run[0], *b = d->run[1];
        if (a->nouts != b->nouts)
                return false;
        for (uint32_t i = 0; i < a->nouts; i++) {
                Section s = section_of(a->outs[i].kind);
                if (s != section_of(b->outs[i].kind) ||
                    !str_eq(jget_or_null(str_of(a->outs[i].doc, a->outs[i].len), sec_key[s]),
                            jget_or_null(str_of(b->outs[i].doc, b->outs[i].len), sec_key[s])))
                        return true;
        }
        return false;
}

bool diff_identical(const Diff *d)
{
        for (int s = 0; s < NSEC; s++)
                for (int c = 0; c < 3; c++)
                        if (d->count[s][c])
                                return false;
        return !d->nents && !d->order;
}

Str item_get(const Item *it, const char *name)
{
        const BtOutput *o = it->n ? it->n : it->o;
        return jget_or_null(str_of(o->doc, o->len), name);
}

bool bt_diff(const BtRun *old, const BtRun *new, const char *events, BtFormat fmt, FILE *f)
{
        Diff d = {.run = {old, new}, .events = events};
        for (int s = 0; s < NSEC; s++)
                diff_match(&d, (Section)s);
        xsort(d.items, d.nitems, sizeof(Item), item_cmp);
        uint32_t nst[2], nfi[2];
        Step *st[2] = {steps(old, &nst[0]), steps(new, &nst[1])};
        Final *fi[2] = {finals(old, &nfi[0]), finals(new, &nfi[1])};
        diff_ents(&d, st, nst, fi, nfi);
        diff_rules(&d);
        diff_grades(&d);
        d.order = !d.nitems && diff_order(&d);

        Buf b = {0};
        if (fmt == BT_JSON)
                report_json(&b, &d);
        else if (fmt == BT_CSV)
                report_csv(&b, &d);
        else
                report_text(&b, &d);
        fwrite(b.p ? b.p : "", 1, b.len, f);
        buf_free(&b);
        bool same = diff_identical(&d);

        for (int k = 0; k < 2; k++) {
                free(st[k]);
                free(fi[k]);
                free(d.gcount[k]);
        }
        free(d.items);
        free(d.ents);
        free(d.rules);
        free(d.grades);
        return same;
}
