/*
 * riskctl replay, explain and diff (riskctl_replay.c): each runs the
 * engine over the events (riskctl_run.c) and makes its own of the end:
 * replay the back-test summary (text or JSON), explain one enterprise's
 * explanation, diff the comparison of two runs (backtest.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/engine.h"
#include "include/riskd/rules.h"
#include "src/cli/riskctl.h"
#include "src/util/json.h"

static const char *const rule_status_names[] = {"enabled", "shadow", "disabled"};

/* The regex engine errors of rule id's matches in this run (each made its
 * condition false, docs/rules.md 6.4). */
static uint64_t rule_regex_errors(const RuleSet *rs, const char *id)
{
        uint64_t n = 0;
        for (uint32_t i = 0; i < rs->nregexes; i++)
                if (rs->regex_rule && strcmp(rs->regex_rule[i], id) == 0)
                        n += rules_regex_errors(rs, i);
        return n;
}

/* The rules whose matches had regex engine errors, one line each, after a
 * heading; nothing when there were none. */
static void print_regex_errors(FILE *f, const RuleSet *rs)
{
        bool any = false;
        for (uint32_t i = 0; i <= rs->nrules; i++) {
                const char *id = i < rs->nrules ? rs->rules[i].id : "grading";
                uint64_t n = rule_regex_errors(rs, id);
                if (!n)
                        continue;
                if (!any)
                        fprintf(f, "regex engine errors (each made its matches false):\n");
                any = true;
                fprintf(f, "  %-44s %llu\n", id, (unsigned long long)n);
        }
}

/* The back-test summary of a replay: events, alerts and firings of every
 * rule (also those that never fired), rejects, grades at the end, state. */
static void print_summary(FILE *f, Engine *e, const Replay *rp, double secs, BtFormat format)
{
        const EngineStats *st = engine_stats(e);
        const RuleSet *rs = engine_rules(e);
        const Grading *g = &rs->grading;
        EngineStats compact = *st; /* before the grades expand every enterprise */
        Buf grades = {0};
        engine_grades_write(e, &grades);
        uint64_t *by_grade = xcalloc(g->nbands + 1, sizeof(uint64_t));
        bt_grade_counts(rs, grades.p, grades.len, by_grade);
        buf_free(&grades);
        uint64_t rej = 0;
        for (int i = 1; i < ENGINE_NREJECT; i++)
                rej += st->rejects[i];
        Buf b = {0};
        if (format == BT_JSON) {
                buf_printf(&b, "{\"schema\":\"riskd.replay-summary/1\",\"rules_version\":\"%s\",\"events\":{\"in\":%llu,"
                               "\"applied\":%llu,\"by_type\":{",
                           rs->version, (unsigned long long)st->events_in, (unsigned long long)st->events_applied);
                for (uint32_t t = 0; t < rs->schema.ntypes; t++) {
                        buf_puts(&b, t ? "," : "");
                        buf_json_str(&b, rs->schema.types[t].name, strlen(rs->schema.types[t].name));
                        buf_printf(&b, ":%llu", (unsigned long long)st->by_type[t]);
                }
                buf_printf(&b, "}},\"alerts\":%llu,\"shadow_alerts\":%llu,\"adjustments\":%llu,\"rules\":[",
                           (unsigned long long)st->alerts, (unsigned long long)st->shadow_alerts,
                           (unsigned long long)st->adjustments);
                for (uint32_t i = 0; i < rs->nrules; i++) {
                        buf_puts(&b, i ? ",{\"rule_id\":" : "{\"rule_id\":");
                        buf_json_str(&b, rs->rules[i].id, strlen(rs->rules[i].id));
                        buf_printf(&b, ",\"status\":\"%s\",\"firings\":%llu,\"regex_errors\":%llu}",
                                   rule_status_names[rs->rules[i].status], (unsigned long long)rp->by_rule[i],
                                   (unsigned long long)rule_regex_errors(rs, rs->rules[i].id));
                }
                buf_puts(&b, "],\"reload\":");
                if (rp->reloaded) {
                        const EngineReload *r = &rp->rep;
                        buf_printf(&b, "{\"rules_version_before\":\"%s\",\"after_line\":%llu,\"unchanged\":%u,", r->rules_before,
                                   (unsigned long long)rp->reload_after, r->rules_kept);
                        const Buf *ids[] = {&rp->changed, &rp->added, &rp->removed};
                        const char *names[] = {"changed", "added", "removed"};
                        for (int k = 0; k < 3; k++)
                                buf_printf(&b, "\"%s\":[%.*s],", names[k], ids[k]->len ? (int)ids[k]->len - 1 : 0,
                                           ids[k]->len ? ids[k]->p : "");
                        buf_printf(&b, "\"enterprises\":%llu,\"state_dropped\":%llu,\"rescored\":%llu,\"regraded\":%llu,"
                                       "\"adjustments\":%llu}",
                                   (unsigned long long)r->enterprises, (unsigned long long)r->state_dropped,
                                   (unsigned long long)r->rescored, (unsigned long long)r->regraded,
                                   (unsigned long long)r->adjusted);
                } else {
                        buf_puts(&b, "null");
                }
                buf_printf(&b, ",\"rejects\":{\"total\":%llu,\"by_reason\":{", (unsigned long long)rej);
                for (int i = 1; i < ENGINE_NREJECT; i++)
                        buf_printf(&b, "%s\"%s\":%llu", i > 1 ? "," : "", engine_reject_names[i],
                                   (unsigned long long)st->rejects[i]);
                buf_puts(&b, "}},\"grades\":[");
                for (uint32_t i = 0; i <= g->nbands; i++) {
                        buf_puts(&b, i ? ",{\"grade\":" : "{\"grade\":");
                        json_put_str_or_null(&b, i < g->nbands ? g->bands[i].grade : NULL);
                        buf_printf(&b, ",\"enterprises\":%llu}", (unsigned long long)by_grade[i]);
                }
                buf_printf(&b, "],\"enterprises\":%llu,\"watermark\":", (unsigned long long)st->enterprises);
                if (st->events_applied) {
                        char ts[40];
                        time_format(st->watermark, ts, sizeof(ts));
                        buf_printf(&b, "\"%s\"", ts);
                } else {
                        buf_puts(&b, "null");
                }
                buf_printf(&b, ",\"state\":{\"bytes\":%llu,\"window_bytes\":%llu,\"window_rows\":%llu,"
                               "\"timers_fired\":%llu,\"window_rows_dropped\":%llu,\"held_forced\":%llu}}\n",
                           (unsigned long long)st->state_bytes, (unsigned long long)st->window_bytes,
                           (unsigned long long)st->window_rows, (unsigned long long)st->timers_fired,
                           (unsigned long long)st->window_rows_dropped, (unsigned long long)st->held_forced);
                fputs(b.p, f);
                buf_free(&b);
                free(by_grade);
                return;
        }
        fprintf(f, "events: %llu in, %llu applied, %.0f events/s\n", (unsigned long long)st->events_in,
                (unsigned long long)st->events_applied, secs > 0 ? (double)st->events_in / secs : 0.0);
        for (uint32_t t = 0; t < rs->schema.ntypes; t++)
                if (st->by_type[t])
                        fprintf(f, "  %-24s %llu\n", rs->schema.types[t].name, (unsigned long long)st->by_type[t]);
        fprintf(f, "alerts: %llu (+%llu shadow), adjustments: %llu\n", (unsigned long long)st->alerts,
                (unsigned long long)st->shadow_alerts, (unsigned long long)st->adjustments);
        uint32_t never = 0;
        fprintf(f, "firings by rule (rules version %s, %u rules):\n", rs->version, rs->nrules);
        for (uint32_t i = 0; i < rs->nrules; i++) {
                never += !rp->by_rule[i];
                fprintf(f, "  %-44s %llu%s%s\n", rs->rules[i].id, (unsigned long long)rp->by_rule[i],
                        rs->rules[i].status == RULE_ENABLED ? "" : rs->rules[i].status == RULE_SHADOW ? " (shadow)" : " (disabled)",
                        rp->by_rule[i] ? "" : "  never fired");
        }
        fprintf(f, "  %u of %u rules never fired\n", never, rs->nrules);
        print_regex_errors(f, rs);
        if (rp->reloaded) {
                const EngineReload *r = &rp->rep;
                const Buf *ids[] = {&rp->changed, &rp->added, &rp->removed};
                fprintf(f, "reload after line %llu: rules %s -> %s: %u unchanged", (unsigned long long)rp->reload_after,
                        r->rules_before, rs->version, r->rules_kept);
                const char *names[] = {"changed", "added", "removed"};
                for (int k = 0; k < 3; k++) {
                        uint32_t n = 0;
                        for (size_t j = 0; j < ids[k]->len; j++)
                                n += ids[k]->p[j] == ',';
                        fprintf(f, ", %u %s%s%.*s%s", n, names[k], n ? " (" : "", n ? (int)ids[k]->len - 1 : 0,
                                n ? ids[k]->p : "", n ? ")" : "");
                }
                fprintf(f, "; %llu enterprises, %llu lost the state of changed or removed rules, %llu re-scored, "
                           "%llu re-graded, %llu adjustments with cause reload\n",
                        (unsigned long long)r->enterprises, (unsigned long long)r->state_dropped,
                        (unsigned long long)r->rescored, (unsigned long long)r->regraded,
                        (unsigned long long)r->adjusted);
        }
        fprintf(f, "rejects: %llu\n", (unsigned long long)rej);
        for (int i = 1; i < ENGINE_NREJECT; i++)
                if (st->rejects[i])
                        fprintf(f, "  %-24s %llu\n", engine_reject_names[i], (unsigned long long)st->rejects[i]);
        fprintf(f, "grades at the end:");
        for (uint32_t i = 0; i < g->nbands; i++)
                fprintf(f, " %s %llu%s", g->bands[i].grade, (unsigned long long)by_grade[i], i + 1 < g->nbands ? "," : "");
        if (by_grade[g->nbands])
                fprintf(f, ", not graded %llu", (unsigned long long)by_grade[g->nbands]);
        fprintf(f, " (%llu enterprises)\n", (unsigned long long)st->enterprises);
        fprintf(f, "state: %llu enterprises, %llu bytes (+%llu bytes in %llu window rows); timers fired %llu\n",
                (unsigned long long)st->enterprises, (unsigned long long)st->state_bytes,
                (unsigned long long)st->window_bytes, (unsigned long long)st->window_rows,
                (unsigned long long)st->timers_fired);
        if (st->window_rows_dropped || st->held_forced)
                fprintf(f, "limits: %llu window rows dropped, %llu held events released early\n",
                        (unsigned long long)st->window_rows_dropped, (unsigned long long)st->held_forced);
        if (compact.compactions || compact.state_budget)
                fprintf(f, "compact form: %llu enterprises at the end, %llu compactions, %llu expansions;"
                           " budget %llu bytes, %llu events refused for it\n",
                        (unsigned long long)compact.enterprises_compact, (unsigned long long)compact.compactions,
                        (unsigned long long)compact.expansions, (unsigned long long)compact.state_budget,
                        (unsigned long long)compact.refused_budget);
        free(by_grade);
}

/* --enterprises FILE: the enterprise document of every enterprise at the
 * end (engine_enterprises_write); 0, or 2 when FILE cannot be written. */
static int write_enterprises(Engine *e, const char *path)
{
        FILE *f = fopen(path, "we");
        if (!f) {
                fprintf(stderr, "riskctl replay: cannot write %s: %s\n", path, strerror(errno));
                return 2;
        }
        Buf b = {0};
        engine_enterprises_write(e, &b);
        bool ok = fwrite(b.p ? b.p : "", 1, b.len, f) == b.len;
        buf_free(&b);
        if (fclose(f) != 0 || !ok) {
                fprintf(stderr, "riskctl replay: cannot write %s\n", path);
                return 2;
        }
        return 0;
}

int cmd_replay(int argc, char **argv)
{
        ReplayOpts o = {0};
        int i = replay_opts(argc, argv, &o, command_find("replay"), 1, 2, "expected DIR [FILE|-]");
        if (i <= 0)
                return i < 0 ? 2 : 0;
        const char *file = argc - i == 2 ? argv[i + 1] : "-";
        int status = 0;
        RuleSet *rs = load_or_report(argv[i], "replay", &status);
        if (!rs)
                return status;
        Replay rp = {.out = stdout, .file = file};
        if (o.dlq && !(rp.dlq = fopen(o.dlq, "we"))) {
                fprintf(stderr, "riskctl replay: cannot write %s: %s\n", o.dlq, strerror(errno));
                replay_deinit(&rp);
                rules_unref(rs);
                return 2;
        }
        double t0 = now_sec();
        Engine *e = NULL;
        status = run_engine(rs, &o, file, &rp, &e);
        double secs = now_sec() - t0;
        if (e) {
                fflush(stdout);
                if (!o.quiet)
                        print_summary(stderr, e, &rp, secs, o.format);
                if (o.grades) {
                        FILE *g = fopen(o.grades, "we");
                        if (g) {
                                Buf b = {0};
                                engine_grades_write(e, &b);
                                fwrite(b.p ? b.p : "", 1, b.len, g);
                                buf_free(&b);
                                fclose(g);
                        } else {
                                fprintf(stderr, "riskctl replay: cannot write %s\n", o.grades);
                                status = 2;
                        }
                }
                if (o.enterprises && write_enterprises(e, o.enterprises))
                        status = 2;
                engine_free(e);
        }
        if (rp.dlq)
                fclose(rp.dlq);
        fflush(stdout);
        replay_deinit(&rp);
        rules_unref(rs);
        return status;
}

int cmd_explain(int argc, char **argv)
{
        ReplayOpts o = {0};
        int i = replay_opts(argc, argv, &o, command_find("explain"), 3, 3, "expected DIR FILE ENTERPRISE");
        if (i <= 0)
                return i < 0 ? 2 : 0;
        int status = 0;
        RuleSet *rs = load_or_report(argv[i], "explain", &status);
        if (!rs)
                return status;
        Replay rp = {0};
        Engine *e = NULL;
        status = run_engine(rs, &o, argv[i + 1], &rp, &e);
        if (e) {
                const char *id = argv[i + 2];
                char *j = o.format == BT_JSON ? engine_explain_json(e, id, strlen(id))
                                              : engine_explain_text(e, id, strlen(id));
                if (!j) {
                        fprintf(stderr, "riskctl explain: no events for enterprise '%s'%s\n", id,
                                o.has_until ? " by then" : "");
                        status = 1;
                } else {
                        fputs(j, stdout);
                        free(j);
                        /* what the explanation may miss: a condition an
                         * engine error made false (on standard error with
                         * --format json, which stays one document) */
                        print_regex_errors(o.format == BT_JSON ? stderr : stdout, engine_rules(e));
                }
                engine_free(e);
        }
        replay_deinit(&rp);
        rules_unref(rs);
        return status;
}

int cmd_diff(int argc, char **argv)
{
        ReplayOpts o = {0};
        int i = replay_opts(argc, argv, &o, command_find("diff"), 3, 3, "expected OLD_DIR NEW_DIR FILE");
        if (i <= 0)
                return i < 0 ? 2 : 0;
        int status = 0;
        BtRun run[2] = {{0}, {0}};
        for (int k = 0; k < 2 && !status; k++) {
                RuleSet *rs = load_or_report(argv[i + k], "diff", &status);
                if (!rs)
                        break;
                run[k].dir = argv[i + k];
                Replay rp = {.bt = &run[k]};
                Engine *e = NULL;
                status = run_engine(rs, &o, argv[i + 2], &rp, &e);
                if (e) {
                        bt_run_finish(&run[k], e);
                        engine_free(e);
                }
                replay_deinit(&rp);
                rules_unref(rs);
        }
        if (!status)
                bt_diff(&run[0], &run[1], argv[i + 2], o.format, stdout);
        bt_run_deinit(&run[0]);
        bt_run_deinit(&run[1]);
        return status;
}
