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
 * same outputs, for people.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/value.h"
#include "src/cli/backtest.h"

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
 * The documents are the engine's own (src/engine/output.c): one JSON
 * object, no insignificant whitespace, keys without escapes.  A member's
 * value is kept as its JSON text: two values are equal when their texts
 * are, as the engine writes a value one way only. */

static Str str_of(const char *p, size_t n)
{
        return (Str){p, (uint32_t)n};
}

static bool str_eq(Str a, Str b)
{
        return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

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

/* The element after *p (at the array's '[' or at the ',' after an element). */
static bool jnext_elem(const char **p, const char *end, Str *val)
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

static Str jget_or_null(Str obj, const char *name)
{
        Str v;
        return jget(obj, name, &v) ? v : str_of("null", 4);
}

/* A string value's text (the engine escapes only '"', '\\' and control
 * characters), or the value's JSON text when it is not a string. */
static void jtext(Buf *b, Str v)
{
        if (v.len < 2 || v.p[0] != '"') {
                buf_put(b, v.p, v.len);
                return;
        }
        static const char esc[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
        for (uint32_t i = 1; i + 1 < v.len; i++) {
                char c = v.p[i];
                if (c != '\\' || i + 2 >= v.len) {
                        buf_putc(b, c);
                        continue;
                }
                c = v.p[++i];
                const char *e = strchr(esc, c);
                if (c == 'u' && i + 5 < v.len) {
                        char hex[5] = {v.p[i + 1], v.p[i + 2], v.p[i + 3], v.p[i + 4], 0};
                        unsigned long x = strtoul(hex, NULL, 16);
                        /* the engine escapes control characters only */
                        buf_putc(b, x < 0x80 ? (char)x : '?');
                        i += 4;
                } else if (e && (e - esc) % 2 == 0) {
                        buf_putc(b, e[1]);
                } else {
                        buf_putc(b, c);
                }
        }
}

static int64_t jtime(Str v)
{
        int64_t t = 0;
        if (v.len >= 2 && v.p[0] == '"')
                time_parse(v.p + 1, v.len - 2, &t);
        return t;
}

/* "B/double_random/2" from {"grade":"B","mode":...,"inspections_per_year":2}
 * (an adjustment's current, or a line of the final grades). */
static void grading_text(Buf *b, Str g)
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

/* A duration for people: "210d", "26d 5h 50m", "5m", "0s". */
static void duration_text(Buf *b, int64_t ms)
{
        static const struct {
                int64_t ms;
                char unit;
        } parts[] = {{86400000, 'd'}, {3600000, 'h'}, {60000, 'm'}, {1000, 's'}};
        size_t start = b->len;
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
                if (ms >= parts[i].ms) {
                        buf_printf(b, "%s%lld%c", b->len > start ? " " : "", (long long)(ms / parts[i].ms),
                                   parts[i].unit);
                        ms %= parts[i].ms;
                }
        if (ms || b->len == start)
                buf_printf(b, "%s%lldms", b->len > start ? " " : "", (long long)ms);
}

static void csv_field(Buf *b, Str s)
{
        if (!memchr(s.p, ',', s.len) && !memchr(s.p, '"', s.len) && !memchr(s.p, '\n', s.len)) {
                buf_put(b, s.p, s.len);
                return;
        }
        buf_putc(b, '"');
        for (uint32_t i = 0; i < s.len; i++) {
                if (s.p[i] == '"')
                        buf_putc(b, '"');
                buf_putc(b, s.p[i]);
        }
        buf_putc(b, '"');
}

static void csv_text(Buf *b, Str v)
{
        Buf t = {0};
        jtext(&t, v);
        csv_field(b, str_of(t.p ? t.p : "", t.len));
        buf_free(&t);
}

static void csv_row(Buf *b, const char *what, const char *change, Str id, Str ent, Str ts, const char *field,
                    Str old, Str new)
{
        buf_printf(b, "%s,%s,", what, change);
        csv_text(b, id);
        buf_putc(b, ',');
        csv_text(b, ent);
        buf_putc(b, ',');
        csv_text(b, ts);
        buf_printf(b, ",%s,", field);
        csv_text(b, old);
        buf_putc(b, ',');
        csv_text(b, new);
        buf_putc(b, '\n');
}

static const Str NONE = {"", 0};

/* ---- matching documents of the two runs ---- */

typedef enum Section { SEC_ALERT, SEC_ADJUSTMENT, SEC_DEADLETTER, NSEC } Section;

static const char *const sec_names[NSEC] = {"alert", "adjustment", "dead_letter"};
static const char *const sec_plural[NSEC] = {"alerts", "adjustments", "dead letters"};
static const char *const sec_key[NSEC] = {"alert_id", "adjustment_id", "source"};

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

typedef enum Change { CH_GAINED, CH_LOST, CH_CHANGED } Change;
static const char *const change_names[] = {"gained", "lost", "changed"};

typedef struct Item {
        Section sec;
        Change ch;
        const BtOutput *o, *n;   /* old and new document; NULL when gained / lost */
        int64_t ts;              /* for the order of the report */
        uint32_t at;             /* index in the run it comes from (new, or old when lost) */
} Item;

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

typedef struct FieldDiff {
        Str name, old, new;
        bool has_old, has_new;
} FieldDiff;

static uint32_t field_diffs(const BtOutput *a, const BtOutput *b, FieldDiff *out, uint32_t max)
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

typedef struct Step {
        Str ent, current, score, cause, ts_text;
        int64_t ts;
        uint32_t i;
} Step;

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

/* The final grades: one line per enterprise. */
typedef struct Final {
        Str ent, line, score;
} Final;

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

/* One enterprise of either run. */
typedef struct EntDiff {
        Str id;
        const Step *o, *n;       /* its adjustments in each run */
        uint32_t no, nn;
        const Final *fo, *fn;    /* its final grade in each run, NULL: none */
        bool history, final, score;
        int64_t at;              /* the first time its grading differs */
        Str at_o, at_n;          /* what each run had then ("null": not graded yet) */
} EntDiff;

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

/* Time spent at each grade, up to end, in grades[] (names) / ms[]. */
typedef struct GradeTime {
        Str grade;
        int64_t ms;
} GradeTime;

static uint32_t grade_times(const Step *s, uint32_t n, int64_t end, GradeTime *gt, uint32_t max)
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

typedef struct RuleRow {
        const char *id;
        const Rule *o, *n;
        uint64_t fo, fn;
} RuleRow;

static const char *rule_change(const RuleRow *r)
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

typedef struct Diff {
        const BtRun *run[2];
        const char *events;
        Item *items;
        uint32_t nitems, citems;
        uint32_t count[NSEC][3];        /* by section and change */
        uint32_t nouts[2][NSEC];
        EntDiff *ents;
        uint32_t nents, cents;
        uint32_t nhistory, nfinal, nscore;
        RuleRow *rules;
        uint32_t nrules, nrules_differ;
        const char **grades;            /* grade names of both runs; NULL: not graded */
        uint64_t *gcount[2];
        uint32_t ngrades;
        bool order;                     /* the same outputs, in another order */
} Diff;

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

static bool diff_identical(const Diff *d)
{
        for (int s = 0; s < NSEC; s++)
                for (int c = 0; c < 3; c++)
                        if (d->count[s][c])
                                return false;
        return !d->nents && !d->order;
}

/* A member of the item's document (the new one, or the old one when lost). */
static Str item_get(const Item *it, const char *name)
{
        const BtOutput *o = it->n ? it->n : it->o;
        return jget_or_null(str_of(o->doc, o->len), name);
}

/* ---- text ---- */

static void text_summary(Buf *b, const Diff *d)
{
        if (diff_identical(d)) {
                buf_printf(b, "no difference: the same %u alerts, %u adjustments and %u dead letters "
                              "(rules_version aside), the same final grades and scores\n",
                           d->nouts[0][SEC_ALERT], d->nouts[0][SEC_ADJUSTMENT], d->nouts[0][SEC_DEADLETTER]);
                return;
        }
        buf_printf(b, "differences: %u enterprises with a different grading history, %u with a different final "
                      "grade, mode or frequency, %u with a different final score",
                   d->nhistory, d->nfinal, d->nscore);
        for (int s = 0; s < NSEC; s++)
                buf_printf(b, "; %s %u gained, %u lost, %u changed", sec_plural[s], d->count[s][CH_GAINED],
                           d->count[s][CH_LOST], d->count[s][CH_CHANGED]);
        if (d->order)
                buf_puts(b, "; the same outputs in another order");
        buf_putc(b, '\n');
}

static void text_history(Buf *b, const char *label, const Step *s, uint32_t n, int64_t end)
{
        buf_printf(b, "  %s:", label);
        if (!n)
                buf_puts(b, " never graded");
        for (uint32_t i = 0; i < n; i++) {
                buf_puts(b, i ? ", " : " ");
                jtext(b, s[i].ts_text);
                buf_putc(b, ' ');
                grading_text(b, s[i].current);
                buf_puts(b, " (");
                jtext(b, s[i].cause);
                buf_puts(b, ", score ");
                jtext(b, s[i].score);
                buf_putc(b, ')');
        }
        buf_putc(b, '\n');
        GradeTime gt[32];
        uint32_t ng = grade_times(s, n, end, gt, 32);
        if (ng) {
                buf_printf(b, "    time at each grade until the end:");
                for (uint32_t i = 0; i < ng; i++) {
                        buf_puts(b, i ? ", " : " ");
                        jtext(b, gt[i].grade);
                        buf_putc(b, ' ');
                        duration_text(b, gt[i].ms);
                }
                buf_putc(b, '\n');
        }
}

static void text_value(Buf *b, Str v, bool has)
{
        if (has)
                buf_put(b, v.p, v.len);
        else
                buf_puts(b, "(absent)");
}

/* One member that differs; of two arrays (contributions, flags, actions),
 * only the elements that differ. */
static void text_field_diff(Buf *b, const FieldDiff *fd)
{
        if (fd->has_old && fd->has_new && fd->old.len && fd->new.len && fd->old.p[0] == '[' && fd->new.p[0] == '[') {
                const char *p = fd->old.p, *q = fd->new.p;
                for (uint32_t i = 0;; i++) {
                        Str x, y;
                        bool hx = jnext_elem(&p, fd->old.p + fd->old.len, &x);
                        bool hy = jnext_elem(&q, fd->new.p + fd->new.len, &y);
                        if (!hx && !hy)
                                break;
                        if (hx && hy && str_eq(x, y))
                                continue;
                        buf_puts(b, "            ");
                        buf_put(b, fd->name.p, fd->name.len);
                        buf_printf(b, "[%u]: ", i);
                        text_value(b, x, hx);
                        buf_puts(b, " -> ");
                        text_value(b, y, hy);
                        buf_putc(b, '\n');
                }
                return;
        }
        buf_puts(b, "            ");
        buf_put(b, fd->name.p, fd->name.len);
        buf_puts(b, ": ");
        text_value(b, fd->old, fd->has_old);
        buf_puts(b, " -> ");
        text_value(b, fd->new, fd->has_new);
        buf_putc(b, '\n');
}

static void text_report(Buf *b, const Diff *d)
{
        for (int k = 0; k < 2; k++) {
                const BtRun *r = d->run[k];
                char end[40];
                time_format(r->end, end, sizeof(end));
                buf_printf(b, "%s: %s, rules version %s, %u rules: alerts %u, adjustments %u, dead letters %u; "
                              "event time up to %s\n",
                           k ? "new" : "old", r->dir, r->rs->version, r->rs->nrules, d->nouts[k][SEC_ALERT],
                           d->nouts[k][SEC_ADJUSTMENT], d->nouts[k][SEC_DEADLETTER], end);
        }
        buf_printf(b, "events %s\n", d->events);
        buf_puts(b, "\nrules (firings old -> new):\n");
        uint64_t same = 0, same_fired = 0;
        for (uint32_t i = 0; i < d->nrules; i++) {
                const RuleRow *r = &d->rules[i];
                const char *ch = rule_change(r);
                if (r->fo == r->fn && strcmp(ch, "same") == 0) {
                        same++;
                        same_fired += r->fo;
                        continue;
                }
                buf_printf(b, "  %-44s %llu -> %llu", r->id, (unsigned long long)r->fo, (unsigned long long)r->fn);
                if (strcmp(ch, "same") != 0)
                        buf_printf(b, "  (rule %s)", ch);
                buf_putc(b, '\n');
        }
        if (same)
                buf_printf(b, "  %llu %srules unchanged, with the same firings (%llu)\n", (unsigned long long)same,
                           same == d->nrules ? "" : "other ", (unsigned long long)same_fired);

        buf_puts(b, "\ngrades at the end (enterprises, old -> new):\n");
        for (uint32_t j = 0; j < d->ngrades; j++) {
                if (!d->grades[j] && !d->gcount[0][j] && !d->gcount[1][j])
                        continue;
                buf_printf(b, "  %-8s %llu -> %llu%s\n", d->grades[j] ? d->grades[j] : "(none)",
                           (unsigned long long)d->gcount[0][j], (unsigned long long)d->gcount[1][j],
                           d->gcount[0][j] != d->gcount[1][j] ? "  *" : "");
        }

        for (uint32_t i = 0; i < d->nents; i++) {
                const EntDiff *e = &d->ents[i];
                buf_puts(b, "\nenterprise ");
                buf_put(b, e->id.p + 1, e->id.len - 2);
                if (e->history) {
                        buf_puts(b, ": grading first differs at ");
                        char ts[40];
                        time_format(e->at, ts, sizeof(ts));
                        buf_printf(b, "%s: old ", ts);
                        grading_text(b, e->at_o);
                        buf_puts(b, ", new ");
                        grading_text(b, e->at_n);
                } else {
                        buf_puts(b, ": the same grading history");
                }
                buf_putc(b, '\n');
                if (e->history) {
                        text_history(b, "old", e->o, e->no, d->run[0]->end);
                        text_history(b, "new", e->n, e->nn, d->run[1]->end);
                }
                if (e->final || e->score) {
                        buf_puts(b, "  at the end: old ");
                        if (e->fo) {
                                grading_text(b, e->fo->line);
                                buf_puts(b, " score ");
                                jtext(b, e->fo->score);
                        } else {
                                buf_puts(b, "none");
                        }
                        buf_puts(b, ", new ");
                        if (e->fn) {
                                grading_text(b, e->fn->line);
                                buf_puts(b, " score ");
                                jtext(b, e->fn->score);
                        } else {
                                buf_puts(b, "none");
                        }
                        buf_putc(b, '\n');
                }
        }

        for (int s = 0; s < NSEC; s++) {
                bool head = false;
                for (uint32_t i = 0; i < d->nitems; i++) {
                        const Item *it = &d->items[i];
                        if (it->sec != (Section)s)
                                continue;
                        if (!head)
                                buf_printf(b, "\n%s:\n", sec_plural[s]);
                        head = true;
                        buf_printf(b, "  %-8s", change_names[it->ch]);
                        if (s == SEC_DEADLETTER) {
                                buf_puts(b, "line ");
                                jtext(b, jget_or_null(item_get(it, "source"), "line"));
                                buf_puts(b, ": ");
                                if (it->ch != CH_GAINED) {
                                        jtext(b, jget_or_null(str_of(it->o->doc, it->o->len), "reason"));
                                        buf_puts(b, it->ch == CH_LOST ? "" : " -> ");
                                }
                                if (it->ch != CH_LOST)
                                        jtext(b, jget_or_null(str_of(it->n->doc, it->n->len), "reason"));
                        } else {
                                jtext(b, item_get(it, sec_key[s]));
                                buf_putc(b, ' ');
                                jtext(b, item_get(it, "ts"));
                                buf_putc(b, ' ');
                                jtext(b, item_get(it, "enterprise_id"));
                                buf_putc(b, ' ');
                                if (s == SEC_ALERT) {
                                        jtext(b, item_get(it, "rule_id"));
                                } else {
                                        grading_text(b, item_get(it, "previous"));
                                        buf_puts(b, " -> ");
                                        grading_text(b, item_get(it, "current"));
                                }
                        }
                        buf_putc(b, '\n');
                        if (it->ch != CH_CHANGED)
                                continue;
                        FieldDiff fd[64];
                        uint32_t nf = field_diffs(it->o, it->n, fd, 64);
                        for (uint32_t f = 0; f < nf; f++)
                                text_field_diff(b, &fd[f]);
                }
        }
        if (d->order)
                buf_puts(b, "\nthe same outputs, in another order\n");
        buf_putc(b, '\n');
        text_summary(b, d);
}

/* ---- json ---- */

static void json_history(Buf *b, const Step *s, uint32_t n)
{
        buf_putc(b, '[');
        for (uint32_t i = 0; i < n; i++) {
                buf_puts(b, i ? ",{\"ts\":" : "{\"ts\":");
                buf_put(b, s[i].ts_text.p, s[i].ts_text.len);
                buf_puts(b, ",\"cause\":");
                buf_put(b, s[i].cause.p, s[i].cause.len);
                buf_puts(b, ",\"current\":");
                buf_put(b, s[i].current.p, s[i].current.len);
                buf_puts(b, ",\"score\":");
                buf_put(b, s[i].score.p, s[i].score.len);
                buf_putc(b, '}');
        }
        buf_putc(b, ']');
}

static void json_days(Buf *b, const Step *s, uint32_t n, int64_t end)
{
        GradeTime gt[32];
        uint32_t ng = grade_times(s, n, end, gt, 32);
        buf_putc(b, '{');
        for (uint32_t i = 0; i < ng; i++) {
                if (i)
                        buf_putc(b, ',');
                buf_put(b, gt[i].grade.p, gt[i].grade.len);
                buf_printf(b, ":%.17g", (double)gt[i].ms / 86400000.0);
        }
        buf_putc(b, '}');
}

static void json_final(Buf *b, const Final *f)
{
        if (!f) {
                buf_puts(b, "null");
                return;
        }
        buf_put(b, f->line.p, f->line.len);
}

static void json_report(Buf *b, const Diff *d)
{
        buf_puts(b, "{\"schema\":\"riskd.diff/1\",\"identical\":");
        buf_puts(b, diff_identical(d) ? "true" : "false");
        buf_puts(b, ",\"events\":");
        buf_json_str(b, d->events, strlen(d->events));
        for (int k = 0; k < 2; k++) {
                const BtRun *r = d->run[k];
                buf_printf(b, ",\"%s\":{\"rules\":", k ? "new" : "old");
                buf_json_str(b, r->dir, strlen(r->dir));
                buf_printf(b, ",\"rules_version\":\"%s\",\"alerts\":%u,\"adjustments\":%u,\"dead_letters\":%u}",
                           r->rs->version, d->nouts[k][SEC_ALERT], d->nouts[k][SEC_ADJUSTMENT],
                           d->nouts[k][SEC_DEADLETTER]);
        }
        buf_printf(b, ",\"summary\":{\"enterprises_history\":%u,\"enterprises_final\":%u,\"enterprises_score\":%u,"
                      "\"rules\":%u",
                   d->nhistory, d->nfinal, d->nscore, d->nrules_differ);
        for (int s = 0; s < NSEC; s++)
                buf_printf(b, ",\"%ss\":{\"gained\":%u,\"lost\":%u,\"changed\":%u}", sec_names[s],
                           d->count[s][CH_GAINED], d->count[s][CH_LOST], d->count[s][CH_CHANGED]);
        buf_printf(b, ",\"order\":%s}", d->order ? "true" : "false");

        buf_puts(b, ",\"rules\":[");
        for (uint32_t i = 0; i < d->nrules; i++) {
                const RuleRow *r = &d->rules[i];
                buf_puts(b, i ? ",{\"rule_id\":" : "{\"rule_id\":");
                buf_json_str(b, r->id, strlen(r->id));
                buf_printf(b, ",\"definition\":\"%s\",\"old\":", rule_change(r));
                if (r->o)
                        buf_printf(b, "%llu", (unsigned long long)r->fo);
                else
                        buf_puts(b, "null");
                buf_puts(b, ",\"new\":");
                if (r->n)
                        buf_printf(b, "%llu", (unsigned long long)r->fn);
                else
                        buf_puts(b, "null");
                buf_putc(b, '}');
        }
        buf_puts(b, "],\"grades\":[");
        for (uint32_t j = 0; j < d->ngrades; j++) {
                buf_puts(b, j ? ",{\"grade\":" : "{\"grade\":");
                if (d->grades[j])
                        buf_json_str(b, d->grades[j], strlen(d->grades[j]));
                else
                        buf_puts(b, "null");
                buf_printf(b, ",\"old\":%llu,\"new\":%llu}", (unsigned long long)d->gcount[0][j],
                           (unsigned long long)d->gcount[1][j]);
        }
        buf_puts(b, "],\"enterprises\":[");
        for (uint32_t i = 0; i < d->nents; i++) {
                const EntDiff *e = &d->ents[i];
                buf_puts(b, i ? ",{\"enterprise_id\":" : "{\"enterprise_id\":");
                buf_put(b, e->id.p, e->id.len);
                buf_puts(b, ",\"diverges_at\":");
                if (e->history) {
                        char ts[40];
                        time_format(e->at, ts, sizeof(ts));
                        buf_printf(b, "\"%s\",\"old_at\":", ts);
                        buf_put(b, e->at_o.p, e->at_o.len);
                        buf_puts(b, ",\"new_at\":");
                        buf_put(b, e->at_n.p, e->at_n.len);
                } else {
                        buf_puts(b, "null,\"old_at\":null,\"new_at\":null");
                }
                buf_puts(b, ",\"old_history\":");
                json_history(b, e->o, e->no);
                buf_puts(b, ",\"new_history\":");
                json_history(b, e->n, e->nn);
                buf_puts(b, ",\"old_days_at_grade\":");
                json_days(b, e->o, e->no, d->run[0]->end);
                buf_puts(b, ",\"new_days_at_grade\":");
                json_days(b, e->n, e->nn, d->run[1]->end);
                buf_puts(b, ",\"old_final\":");
                json_final(b, e->fo);
                buf_puts(b, ",\"new_final\":");
                json_final(b, e->fn);
                buf_putc(b, '}');
        }
        buf_putc(b, ']');
        for (int s = 0; s < NSEC; s++) {
                buf_printf(b, ",\"%ss\":[", sec_names[s]);
                bool first = true;
                for (uint32_t i = 0; i < d->nitems; i++) {
                        const Item *it = &d->items[i];
                        if (it->sec != (Section)s)
                                continue;
                        buf_printf(b, "%s{\"change\":\"%s\"", first ? "" : ",", change_names[it->ch]);
                        first = false;
                        buf_printf(b, ",\"%s\":", sec_key[s]);
                        Str v = item_get(it, sec_key[s]);
                        buf_put(b, v.p, v.len);
                        buf_puts(b, ",\"old\":");
                        if (it->o)
                                buf_put(b, it->o->doc, it->o->len);
                        else
                                buf_puts(b, "null");
                        buf_puts(b, ",\"new\":");
                        if (it->n)
                                buf_put(b, it->n->doc, it->n->len);
                        else
                                buf_puts(b, "null");
                        buf_puts(b, ",\"fields\":[");
                        if (it->ch == CH_CHANGED) {
                                FieldDiff fd[64];
                                uint32_t nf = field_diffs(it->o, it->n, fd, 64);
                                for (uint32_t f = 0; f < nf; f++) {
                                        buf_puts(b, f ? ",\"" : "\"");
                                        buf_put(b, fd[f].name.p, fd[f].name.len);
                                        buf_putc(b, '"');
                                }
                        }
                        buf_puts(b, "]}");
                }
                buf_putc(b, ']');
        }
        buf_puts(b, "}\n");
}

/* ---- csv ---- */

static void csv_report(Buf *b, const Diff *d)
{
        buf_puts(b, "what,change,id,enterprise_id,ts,field,old,new\n");
        for (uint32_t i = 0; i < d->nrules; i++) {
                const RuleRow *r = &d->rules[i];
                char o[24] = "", n[24] = "";
                if (r->o)
                        snprintf(o, sizeof(o), "%llu", (unsigned long long)r->fo);
                if (r->n)
                        snprintf(n, sizeof(n), "%llu", (unsigned long long)r->fn);
                csv_row(b, "rule", rule_change(r), str_of(r->id, strlen(r->id)), NONE, NONE, "firings",
                        str_of(o, strlen(o)), str_of(n, strlen(n)));
        }
        for (uint32_t j = 0; j < d->ngrades; j++) {
                char o[24], n[24];
                snprintf(o, sizeof(o), "%llu", (unsigned long long)d->gcount[0][j]);
                snprintf(n, sizeof(n), "%llu", (unsigned long long)d->gcount[1][j]);
                const char *g = d->grades[j] ? d->grades[j] : "";
                csv_row(b, "grade", d->gcount[0][j] == d->gcount[1][j] ? "same" : "changed", str_of(g, strlen(g)),
                        NONE, NONE, "enterprises", str_of(o, strlen(o)), str_of(n, strlen(n)));
        }
        for (uint32_t i = 0; i < d->nents; i++) {
                const EntDiff *e = &d->ents[i];
                if (e->history) {
                        char ts[40];
                        time_format(e->at, ts, sizeof(ts));
                        Buf o = {0}, n = {0};
                        grading_text(&o, e->at_o);
                        grading_text(&n, e->at_n);
                        csv_row(b, "enterprise", "changed", NONE, e->id, str_of(ts, strlen(ts)), "grading",
                                str_of(o.p, o.len), str_of(n.p, n.len));
                        buf_free(&o);
                        buf_free(&n);
                }
                if (e->final || e->score) {
                        Buf o = {0}, n = {0};
                        if (e->fo)
                                grading_text(&o, e->fo->line);
                        if (e->fn)
                                grading_text(&n, e->fn->line);
                        if (e->final)
                                csv_row(b, "enterprise", "changed", NONE, e->id, NONE, "final_grading",
                                        str_of(o.p ? o.p : "", o.len), str_of(n.p ? n.p : "", n.len));
                        if (e->score)
                                csv_row(b, "enterprise", "changed", NONE, e->id, NONE, "final_score",
                                        e->fo ? e->fo->score : NONE, e->fn ? e->fn->score : NONE);
                        buf_free(&o);
                        buf_free(&n);
                }
        }
        for (uint32_t i = 0; i < d->nitems; i++) {
                const Item *it = &d->items[i];
                Str id = item_get(it, sec_key[it->sec]), ent = NONE, ts = NONE;
                if (it->sec == SEC_DEADLETTER) {
                        id = jget_or_null(id, "line");
                } else {
                        ent = item_get(it, "enterprise_id");
                        ts = item_get(it, "ts");
                }
                const char *what = sec_names[it->sec];
                if (it->ch == CH_GAINED) {
                        csv_row(b, what, "gained", id, ent, ts, "", NONE, str_of(it->n->doc, it->n->len));
                } else if (it->ch == CH_LOST) {
                        csv_row(b, what, "lost", id, ent, ts, "", str_of(it->o->doc, it->o->len), NONE);
                } else {
                        FieldDiff fd[64];
                        uint32_t nf = field_diffs(it->o, it->n, fd, 64);
                        for (uint32_t f = 0; f < nf; f++) {
                                char *name = xstrndup(fd[f].name.p, fd[f].name.len);
                                csv_row(b, what, "changed", id, ent, ts, name, fd[f].old, fd[f].new);
                                free(name);
                        }
                }
        }
        if (d->order)
                csv_row(b, "outputs", "changed", NONE, NONE, NONE, "order", NONE, NONE);
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
                json_report(&b, &d);
        else if (fmt == BT_CSV)
                csv_report(&b, &d);
        else
                text_report(&b, &d);
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
