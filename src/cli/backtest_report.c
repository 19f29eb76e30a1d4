/*
 * riskctl diff's report (backtest_report.c): a Diff (backtest_int.h) as
 * text for people, one JSON document (riskd.diff/1) or CSV rows.  Apart
 * from the comparison so that a format is changed without touching what
 * is compared; every format says the same differences.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/cli/backtest_int.h"
#include "src/util/json.h"

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

/* A final grade and score ("none": the run never graded the enterprise). */
static void text_final(Buf *b, const Final *f)
{
        if (f) {
                grading_text(b, f->line);
                buf_puts(b, " score ");
                jtext(b, f->score);
        } else {
                buf_puts(b, "none");
        }
}

void report_text(Buf *b, const Diff *d)
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
                        text_final(b, e->fo);
                        buf_puts(b, ", new ");
                        text_final(b, e->fn);
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

void report_json(Buf *b, const Diff *d)
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
                json_put_str_or_null(b, d->grades[j]);
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

void report_csv(Buf *b, const Diff *d)
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
