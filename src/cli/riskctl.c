/*
 * riskctl: the rule author's tool.  Works on a rules directory without
 * Kafka: check compiles and reports every diagnostic, disasm shows what a
 * rule compiled to.
 *
 * Exit status: 0 success, 1 the rules (or the run) failed, 2 unusable
 * arguments.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <time.h>

#include "include/riskd/engine.h"
#include "include/riskd/rules.h"
#include "include/riskd/util.h"
#include "src/cli/ruletest.h"
#include "src/kafka/broker.h"

static void usage(FILE *f)
{
        fputs("usage: riskctl COMMAND [OPTIONS] ...\n"
              "\n"
              "commands:\n"
              "  check DIR [--format text|json] [--dump]   compile a rules directory, report every problem\n"
              "  disasm DIR [RULE_ID...]                   show the bytecode rules compiled to\n"
              "  replay DIR [FILE|-] [OPTIONS]             run the engine over events (JSON lines)\n"
              "         --dead-letters FILE  --grace DUR  --until TIME  --grades FILE  --quiet\n"
              "         --max-enterprises N  --recent-ids N  --max-window-rows N  --max-keys N\n"
              "         --reload DIR --reload-after N   switch to DIR's rules after N lines, as riskd's SIGHUP\n"
              "  explain DIR FILE ENTERPRISE [--json]      why an enterprise has its grade\n"
              "  diff OLD_DIR NEW_DIR FILE                 back-test: what a rule change would change\n"
              "  test DIR [--verbose] [--coverage]         run the rule tests in DIR/tests/*.yaml\n"
              "  broker [--partitions N] [--brokers N] [--config FILE]\n"
              "                                            a local mock Kafka cluster for development and tests\n"
              "\n"
              "exit status: 0 ok, 1 errors in the rules, 2 bad arguments\n",
              f);
}

static void summary(const RuleSet *rs, const DiagList *dl, const char *dir, Buf *text, Buf *json)
{
        uint32_t shadow = 0;
        for (uint32_t i = 0; i < rs->nrules; i++)
                shadow += rs->rules[i].status == RULE_SHADOW;
        buf_printf(text, "%s: %u rules (%u shadow), %u lists, %u macros, %u event types, %u aggregates, %u grades; %u errors, %u warnings; version %s\n",
                   dir, rs->nrules, shadow, rs->nlists, rs->nmacros, rs->schema.ntypes, rs->naggs,
                   rs->grading.nbands, dl->nerrors, dl->nwarnings, rs->version);
        buf_printf(json, "{\"rules\":%u,\"shadow_rules\":%u,\"lists\":%u,\"macros\":%u,\"event_types\":%u,\"aggregates\":%u,\"grades\":%u,\"version\":\"%s\"}",
                   rs->nrules, shadow, rs->nlists, rs->nmacros, rs->schema.ntypes, rs->naggs,
                   rs->grading.nbands, rs->version);
}

static int cmd_check(int argc, char **argv)
{
        static const struct option opts[] = {
                {"format", required_argument, NULL, 'f'},
                {"dump", no_argument, NULL, 'd'},
                {"help", no_argument, NULL, 'h'},
                {0},
        };
        bool json = false, dump = false;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "f:dh", opts, NULL)) != -1) {
                switch (c) {
                case 'f':
                        if (strcmp(optarg, "json") == 0)
                                json = true;
                        else if (strcmp(optarg, "text") != 0) {
                                fprintf(stderr, "riskctl check: --format must be text or json, not '%s'\n", optarg);
                                return 2;
                        }
                        break;
                case 'd':
                        dump = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind != argc - 1) {
                fprintf(stderr, "riskctl check: expected one rules directory\n");
                usage(stderr);
                return 2;
        }
        const char *dir = argv[optind];
        DiagList dl = {0};
        RuleSet *rs = NULL;
        int r = rules_load(dir, &dl, &rs);
        if (r < 0) {
                fprintf(stderr, "riskctl check: cannot open %s: %s\n", dir, strerror(-r));
                diag_list_deinit(&dl);
                return 2;
        }
        Buf text = {0}, sj = {0};
        if (rs)
                summary(rs, &dl, dir, &text, &sj);
        else {
                buf_printf(&text, "%s: %u errors, %u warnings\n", dir, dl.nerrors, dl.nwarnings);
                buf_puts(&sj, "null");
        }
        if (json) {
                diag_print_json(stdout, &dl, sj.p);
        } else {
                diag_print_text(stdout, &dl, isatty(STDOUT_FILENO));
                if (dump && rs)
                        for (uint32_t i = 0; i < rs->nrules; i++) {
                                Buf b = {0};
                                rules_disasm_rule(rs, &rs->rules[i], &b);
                                fputs(b.p ? b.p : "", stdout);
                                fputc('\n', stdout);
                                buf_free(&b);
                        }
                fputs(text.p, stdout);
        }
        buf_free(&text);
        buf_free(&sj);
        int status = dl.nerrors ? 1 : 0;
        diag_list_deinit(&dl);
        rules_unref(rs);
        return status;
}

static int cmd_disasm(int argc, char **argv)
{
        if (argc < 2) {
                fprintf(stderr, "riskctl disasm: expected a rules directory\n");
                return 2;
        }
        DiagList dl = {0};
        RuleSet *rs = NULL;
        int r = rules_load(argv[1], &dl, &rs);
        if (r < 0) {
                fprintf(stderr, "riskctl disasm: cannot open %s: %s\n", argv[1], strerror(-r));
                return 2;
        }
        if (r > 0) {
                diag_print_text(stderr, &dl, false);
                diag_list_deinit(&dl);
                return 1;
        }
        int status = 0;
        for (uint32_t i = 0; i < rs->nrules; i++) {
                const Rule *ru = &rs->rules[i];
                bool want = argc == 2;
                for (int k = 2; k < argc; k++)
                        if (strcmp(argv[k], ru->id) == 0)
                                want = true;
                if (!want)
                        continue;
                Buf b = {0};
                rules_disasm_rule(rs, ru, &b);
                fputs(b.p ? b.p : "", stdout);
                fputc('\n', stdout);
                buf_free(&b);
        }
        for (int k = 2; k < argc; k++)
                if (!rules_find(rs, argv[k])) {
                        fprintf(stderr, "riskctl disasm: no rule '%s'\n", argv[k]);
                        status = 1;
                }
        if (argc == 2)
                for (uint32_t i = 0; i < rs->grading.noverrides; i++) {
                        Buf b = {0};
                        buf_printf(&b, "grading override %u:\n", i + 1);
                        rules_disasm_prog(rs, rs->grading.overrides[i].when, &b);
                        fputs(b.p, stdout);
                        buf_free(&b);
                }
        diag_list_deinit(&dl);
        rules_unref(rs);
        return status;
}

/* ---- replay, explain, diff ---- */

typedef struct Replay {
        const RuleSet *rs;
        FILE *out;               /* alerts and adjustments; NULL: not written */
        FILE *dlq;               /* dead letters as JSON lines; NULL: not written */
        const char *file;
        uint64_t *by_rule;       /* alerts per rule index */
        /* diff: alert ids with their rule, collected */
        char **ids;
        uint32_t nids, cids;
} Replay;

static bool utf8_valid(const char *s, size_t n)
{
        for (size_t i = 0; i < n;) {
                unsigned char c = (unsigned char)s[i];
                size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
                if (!k || i + k > n)
                        return false;
                for (size_t j = 1; j < k; j++)
                        if (((unsigned char)s[i + j] & 0xc0) != 0x80)
                                return false;
                i += k;
        }
        return true;
}

static void base64(Buf *b, const unsigned char *s, size_t n)
{
        static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
                             (i + 2 < n ? s[i + 2] : 0);
                char q[4] = {t[v >> 18], t[(v >> 12) & 63], i + 1 < n ? t[(v >> 6) & 63] : '=',
                             i + 2 < n ? t[v & 63] : '='};
                buf_put(b, q, 4);
        }
}

static void replay_emit(void *ud, OutKind kind, const char *data, size_t len, const OutMeta *m)
{
        Replay *r = ud;
        if (kind == OUT_DEADLETTER) {
                if (!r->dlq)
                        return;
                Buf b = {0};
                buf_puts(&b, "{\"schema\":\"riskd.deadletter/1\",\"reason\":");
                buf_json_str(&b, m->reason, strlen(m->reason));
                buf_puts(&b, ",\"detail\":");
                buf_json_str(&b, m->detail ? m->detail : "", m->detail ? strlen(m->detail) : 0);
                buf_puts(&b, ",\"source\":{\"file\":");
                const char *f = m->source && m->source->topic ? m->source->topic : "-";
                buf_json_str(&b, f, strlen(f));
                buf_printf(&b, ",\"line\":%lld},\"original\":", m->source ? (long long)m->source->offset : 0LL);
                if (utf8_valid(data, len)) {
                        buf_json_str(&b, data, len);
                        buf_puts(&b, ",\"original_base64\":null}\n");
                } else {
                        buf_puts(&b, "null,\"original_base64\":\"");
                        base64(&b, (const unsigned char *)data, len);
                        buf_puts(&b, "\"}\n");
                }
                fwrite(b.p, 1, b.len, r->dlq);
                buf_free(&b);
                return;
        }
        if ((kind == OUT_ALERT || kind == OUT_SHADOW) && m->rule_id) {
                const Rule *ru = rules_find(r->rs, m->rule_id);
                if (ru && r->by_rule)
                        r->by_rule[ru->index]++;
                if (r->ids && kind == OUT_ALERT) {
                        /* "alert_id rule_id" for diff: the id is at a fixed place */
                        const char *p = strstr(data, "\"alert_id\":\"");
                        if (p) {
                                if (r->nids == r->cids) {
                                        r->cids *= 2;
                                        r->ids = xrealloc(r->ids, r->cids * sizeof(char *));
                                }
                                r->ids[r->nids++] = xasprintf("%.16s %s", p + 12, m->rule_id);
                        }
                }
        }
        if (r->out) {
                fwrite(data, 1, len, r->out);
                fputc('\n', r->out);
        }
}

typedef struct ReplayOpts {
        EngineConfig cfg;
        const char *dlq;
        const char *grades;
        int64_t until;
        bool has_until, quiet, json;
        const char *reload;      /* --reload DIR: switch to these rules ... */
        uint64_t reload_after;   /* ... after this many lines (--reload-after N) */
} ReplayOpts;

static int parse_u32(const char *s, uint32_t *v)
{
        char *end;
        unsigned long x = strtoul(s, &end, 10);
        if (!*s || *end || x > UINT32_MAX)
                return -1;
        *v = (uint32_t)x;
        return 0;
}

/* Options shared by replay, explain, diff; returns the index of the first
 * positional argument left in argv (compacted), or -1. */
static int replay_opts(int argc, char **argv, ReplayOpts *o, const char *cmd)
{
        static const struct option opts[] = {
                {"dead-letters", required_argument, NULL, 'd'}, {"grace", required_argument, NULL, 'g'},
                {"until", required_argument, NULL, 'u'},        {"grades", required_argument, NULL, 'G'},
                {"quiet", no_argument, NULL, 'q'},              {"json", no_argument, NULL, 'j'},
                {"max-enterprises", required_argument, NULL, 'E'},
                {"recent-ids", required_argument, NULL, 'R'},
                {"max-window-rows", required_argument, NULL, 'W'},
                {"max-keys", required_argument, NULL, 'K'},
                {"max-held", required_argument, NULL, 'H'},
                {"reload", required_argument, NULL, 'L'},
                {"reload-after", required_argument, NULL, 'A'},
                {0},
        };
        engine_config_default(&o->cfg);
        optind = 1;
        int c;
        while ((c = getopt_long(argc, argv, "qj", opts, NULL)) != -1) {
                int bad = 0;
                switch (c) {
                case 'd': o->dlq = optarg; break;
                case 'G': o->grades = optarg; break;
                case 'q': o->quiet = true; break;
                case 'j': o->json = true; break;
                case 'g':
                        if (strcmp(optarg, "0") == 0)
                                o->cfg.grace_ms = 0;
                        else
                                bad = duration_parse(optarg, strlen(optarg), &o->cfg.grace_ms) < 0;
                        break;
                case 'u':
                        bad = time_parse(optarg, strlen(optarg), &o->until) < 0;
                        o->has_until = true;
                        break;
                case 'E': bad = parse_u32(optarg, &o->cfg.max_enterprises) < 0; break;
                case 'R': bad = parse_u32(optarg, &o->cfg.recent_ids) < 0; break;
                case 'W': bad = parse_u32(optarg, &o->cfg.max_window_rows) < 0 || !o->cfg.max_window_rows; break;
                case 'K': bad = parse_u32(optarg, &o->cfg.max_keys) < 0; break;
                case 'H': bad = parse_u32(optarg, &o->cfg.max_held) < 0 || !o->cfg.max_held; break;
                case 'L': o->reload = optarg; break;
                case 'A': {
                        char *end;
                        o->reload_after = strtoull(optarg, &end, 10);
                        bad = !*optarg || *end;
                        break;
                }
                default:
                        usage(stderr);
                        return -1;
                }
                if (bad) {
                        fprintf(stderr, "riskctl %s: bad value '%s' for --%s\n", cmd, optarg,
                                c == 'g' ? "grace" : c == 'u' ? "until" : "a limit");
                        return -1;
                }
        }
        return optind;
}

static RuleSet *load_or_report(const char *dir, const char *cmd, int *status)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        int r = rules_load(dir, &dl, &rs);
        if (r < 0) {
                fprintf(stderr, "riskctl %s: cannot open %s: %s\n", cmd, dir, strerror(-r));
                *status = 2;
        } else if (r > 0) {
                diag_print_text(stderr, &dl, false);
                fprintf(stderr, "riskctl %s: %s has %u errors\n", cmd, dir, dl.nerrors);
                *status = 1;
        }
        diag_list_deinit(&dl);
        return r == 0 ? rs : NULL;
}

/* What a live reload does in the daemon (SIGHUP), at line o->reload_after:
 * the engine's state moves to the rules of o->reload (engine_reload). */
static int replay_reload(Engine **e, const ReplayOpts *o, Replay *rp)
{
        int status = 0;
        RuleSet *rs = load_or_report(o->reload, "replay --reload", &status);
        if (!rs)
                return -EINVAL;
        Engine *n = NULL;
        int r = engine_reload(*e, rs, &n, NULL);
        if (r < 0) {
                fprintf(stderr, "riskctl replay: reload: %s\n", strerror(-r));
                rules_unref(rs);
                return r;
        }
        engine_batch_commit(n); /* no changelog here: the reload's batch ends at once */
        /* alerts by rule go on under the new rules' indexes */
        uint64_t *by_rule = xcalloc(rs->nrules + 1, sizeof(uint64_t));
        for (uint32_t i = 0; i < rs->nrules; i++) {
                const Rule *old = rules_find(rp->rs, rs->rules[i].id);
                if (old)
                        by_rule[i] = rp->by_rule[old->index];
        }
        free(rp->by_rule);
        rp->by_rule = by_rule;
        rp->rs = rs;
        engine_free(*e);
        *e = n;
        rules_unref(rs); /* the engine holds it */
        return 0;
}

/* Feed every line of path (or stdin for "-") to the engine.  From a
 * regular file it keeps ENGINE_AHEAD - 1 lines read and hinted
 * (engine_prefetch) beyond the one pushed, as riskd does with the messages
 * of a fetch; from a pipe or a terminal it reads no further than the line
 * it pushes, so a live stream's last events are not kept waiting. */
typedef struct Line {
        char *p;
        size_t cap;
        ssize_t n;
        int64_t offset;
} Line;

static int feed(Engine **ep, const char *path, const ReplayOpts *o, Replay *rp)
{
        Engine *e = *ep;
        FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
        if (!f)
                return -errno;
        Line q[ENGINE_AHEAD] = {{0}};
        uint32_t first = 0, nq = 0;
        struct stat sb;
        uint32_t ahead = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) ? ENGINE_AHEAD : 1;
        int64_t lines = 0;
        bool eof = false;
        int r = 0;
        SourcePos src = {.topic = strcmp(path, "-") == 0 ? "-" : path, .partition = -1};
        for (;;) {
                while (!eof && nq < ahead) {
                        Line *l = &q[(first + nq) % ENGINE_AHEAD];
                        l->n = getline(&l->p, &l->cap, f);
                        if (l->n < 0) {
                                eof = true;
                                break;
                        }
                        l->offset = ++lines;
                        while (l->n > 0 && (l->p[l->n - 1] == '\n' || l->p[l->n - 1] == '\r'))
                                l->n--;
                        nq++;
                        if (l->n > 0 && ahead > 1)
                                engine_prefetch(e, l->p, (size_t)l->n);
                }
                if (!nq)
                        break;
                Line *l = &q[first];
                if (o->reload && (uint64_t)l->offset - 1 == o->reload_after) {
                        r = replay_reload(ep, o, rp);
                        if (r < 0)
                                break;
                        e = *ep;
                }
                src.offset = l->offset;
                if (l->n > 0)
                        engine_push(e, l->p, (size_t)l->n, &src);
                first = (first + 1) % ENGINE_AHEAD;
                nq--;
        }
        engine_prefetch_reset(e);
        for (uint32_t k = 0; k < ENGINE_AHEAD; k++)
                free(q[k].p);
        if (f != stdin)
                fclose(f);
        return r;
}

static double now_sec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int run_engine(RuleSet *rs, const ReplayOpts *o, const char *file, Replay *rp, Engine **ret)
{
        Engine *e = NULL;
        int r = engine_new(&e, rs, &o->cfg, replay_emit, rp);
        if (r < 0) {
                fprintf(stderr, "riskctl: cannot start the engine: %s\n", strerror(-r));
                return 1;
        }
        r = feed(&e, file, o, rp);
        if (r == -EINVAL) { /* the reload's rules, reported */
                engine_free(e);
                return 1;
        }
        if (r < 0) {
                fprintf(stderr, "riskctl: cannot read %s: %s\n", file, strerror(-r));
                engine_free(e);
                return 2;
        }
        engine_flush(e);
        if (o->has_until)
                engine_advance(e, o->until);
        *ret = e;
        return 0;
}

static void print_summary(FILE *f, Engine *e, const Replay *rp, double secs)
{
        const EngineStats *st = engine_stats(e);
        const RuleSet *rs = engine_rules(e);
        fprintf(f, "events: %llu in, %llu applied, %.0f events/s\n", (unsigned long long)st->events_in,
                (unsigned long long)st->events_applied, secs > 0 ? (double)st->events_in / secs : 0.0);
        for (uint32_t t = 0; t < rs->schema.ntypes; t++)
                if (st->by_type[t])
                        fprintf(f, "  %-24s %llu\n", rs->schema.types[t].name, (unsigned long long)st->by_type[t]);
        fprintf(f, "alerts: %llu (+%llu shadow), adjustments: %llu\n", (unsigned long long)st->alerts,
                (unsigned long long)st->shadow_alerts, (unsigned long long)st->adjustments);
        for (uint32_t i = 0; i < rs->nrules; i++)
                if (rp->by_rule[i])
                        fprintf(f, "  %-40s %llu%s\n", rs->rules[i].id, (unsigned long long)rp->by_rule[i],
                                rs->rules[i].status == RULE_SHADOW ? " (shadow)" : "");
        uint64_t rej = 0;
        for (int i = 1; i < ENGINE_NREJECT; i++)
                rej += st->rejects[i];
        fprintf(f, "rejects: %llu\n", (unsigned long long)rej);
        for (int i = 1; i < ENGINE_NREJECT; i++)
                if (st->rejects[i])
                        fprintf(f, "  %-24s %llu\n", engine_reject_names[i], (unsigned long long)st->rejects[i]);
        fprintf(f, "state: %llu enterprises, %llu bytes (+%llu bytes in %llu window rows); timers fired %llu\n",
                (unsigned long long)st->enterprises, (unsigned long long)st->state_bytes,
                (unsigned long long)st->window_bytes, (unsigned long long)st->window_rows,
                (unsigned long long)st->timers_fired);
        if (st->window_rows_dropped || st->held_forced)
                fprintf(f, "limits: %llu window rows dropped, %llu held events released early\n",
                        (unsigned long long)st->window_rows_dropped, (unsigned long long)st->held_forced);
}

static int cmd_replay(int argc, char **argv)
{
        ReplayOpts o = {0};
        int i = replay_opts(argc, argv, &o, "replay");
        if (i < 0)
                return 2;
        if (argc - i < 1 || argc - i > 2) {
                fprintf(stderr, "riskctl replay: expected DIR [FILE|-]\n");
                return 2;
        }
        const char *file = argc - i == 2 ? argv[i + 1] : "-";
        int status = 0;
        RuleSet *rs = load_or_report(argv[i], "replay", &status);
        if (!rs)
                return status;
        Replay rp = {.rs = rs, .out = stdout, .file = file};
        rp.by_rule = xcalloc(rs->nrules + 1, sizeof(uint64_t));
        if (o.dlq && !(rp.dlq = fopen(o.dlq, "we"))) {
                fprintf(stderr, "riskctl replay: cannot write %s: %s\n", o.dlq, strerror(errno));
                free(rp.by_rule);
                rules_unref(rs);
                return 2;
        }
        double t0 = now_sec();
        Engine *e = NULL;
        status = run_engine(rs, &o, file, &rp, &e);
        double secs = now_sec() - t0;
        if (e) {
                if (!o.quiet)
                        print_summary(stderr, e, &rp, secs);
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
                engine_free(e);
        }
        if (rp.dlq)
                fclose(rp.dlq);
        fflush(stdout);
        free(rp.by_rule);
        rules_unref(rs);
        return status;
}

static int cmd_explain(int argc, char **argv)
{
        ReplayOpts o = {0};
        int i = replay_opts(argc, argv, &o, "explain");
        if (i < 0)
                return 2;
        if (argc - i != 3) {
                fprintf(stderr, "riskctl explain: expected DIR FILE ENTERPRISE\n");
                return 2;
        }
        int status = 0;
        RuleSet *rs = load_or_report(argv[i], "explain", &status);
        if (!rs)
                return status;
        Replay rp = {.rs = rs};
        rp.by_rule = xcalloc(rs->nrules + 1, sizeof(uint64_t));
        Engine *e = NULL;
        status = run_engine(rs, &o, argv[i + 1], &rp, &e);
        if (e) {
                const char *id = argv[i + 2];
                char *j = o.json ? engine_explain_json(e, id, strlen(id)) : engine_explain_text(e, id, strlen(id));
                if (!j) {
                        fprintf(stderr, "riskctl explain: no events for enterprise '%s'\n", id);
                        status = 1;
                } else {
                        fputs(j, stdout);
                        free(j);
                }
                engine_free(e);
        }
        free(rp.by_rule);
        rules_unref(rs);
        return status;
}

static int str_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_diff(int argc, char **argv)
{
        ReplayOpts o = {0};
        int i = replay_opts(argc, argv, &o, "diff");
        if (i < 0)
                return 2;
        if (argc - i != 3) {
                fprintf(stderr, "riskctl diff: expected OLD_DIR NEW_DIR FILE\n");
                return 2;
        }
        int status = 0;
        RuleSet *rs[2] = {NULL, NULL};
        Replay rp[2];
        Buf grades[2] = {{0}, {0}};
        for (int k = 0; k < 2; k++) {
                rs[k] = load_or_report(argv[i + k], "diff", &status);
                if (!rs[k])
                        goto out;
                rp[k] = (Replay){.rs = rs[k], .cids = 1024};
                rp[k].ids = xmalloc(rp[k].cids * sizeof(char *));
                rp[k].by_rule = xcalloc(rs[k]->nrules + 1, sizeof(uint64_t));
                Engine *e = NULL;
                status = run_engine(rs[k], &o, argv[i + 2], &rp[k], &e);
                if (!e)
                        goto out;
                engine_grades_write(e, &grades[k]);
                engine_free(e);
                qsort(rp[k].ids, rp[k].nids, sizeof(char *), str_cmp);
        }
        /* grades: both lists are sorted by enterprise id */
        uint32_t changed = 0;
        {
                char *a = grades[0].p ? grades[0].p : "", *b = grades[1].p ? grades[1].p : "";
                while (*a || *b) {
                        char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
                        size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
                        /* compare the enterprise ids (first field) */
                        int c;
                        if (!*a)
                                c = 1;
                        else if (!*b)
                                c = -1;
                        else {
                                const char *ia = strchr(a, ','), *ib = strchr(b, ',');
                                size_t ka = (size_t)(ia - a), kb = (size_t)(ib - b);
                                c = memcmp(a, b, ka < kb ? ka : kb);
                                if (!c)
                                        c = ka < kb ? -1 : ka > kb;
                        }
                        if (c == 0) {
                                /* the score may differ without a change that matters */
                                const char *sa = strstr(a, ",\"score\":"), *sb = strstr(b, ",\"score\":");
                                if ((size_t)(sa - a) != (size_t)(sb - b) || memcmp(a, b, (size_t)(sa - a)) != 0) {
                                        printf("changed  old %.*s\n         new %.*s\n", (int)la, a, (int)lb, b);
                                        changed++;
                                }
                                a += la + (ea != NULL);
                                b += lb + (eb != NULL);
                        } else if (c < 0) {
                                printf("only-old %.*s\n", (int)la, a);
                                changed++;
                                a += la + (ea != NULL);
                        } else {
                                printf("only-new %.*s\n", (int)lb, b);
                                changed++;
                                b += lb + (eb != NULL);
                        }
                }
        }
        uint32_t gained = 0, lost = 0, x = 0, y = 0;
        while (x < rp[0].nids || y < rp[1].nids) {
                int c = x >= rp[0].nids ? 1 : y >= rp[1].nids ? -1 : strncmp(rp[0].ids[x], rp[1].ids[y], 16);
                if (c == 0) {
                        x++;
                        y++;
                } else if (c < 0) {
                        printf("lost     alert %s\n", rp[0].ids[x++]);
                        lost++;
                } else {
                        printf("gained   alert %s\n", rp[1].ids[y++]);
                        gained++;
                }
        }
        printf("%u enterprises with a different grade, mode or frequency; %u alerts gained, %u lost\n",
               changed, gained, lost);
out:
        for (int k = 0; k < 2; k++) {
                if (!rs[k])
                        continue;
                for (uint32_t j = 0; j < rp[k].nids; j++)
                        free(rp[k].ids[j]);
                free(rp[k].ids);
                free(rp[k].by_rule);
                buf_free(&grades[k]);
                rules_unref(rs[k]);
        }
        return status;
}

int main(int argc, char **argv)
{
        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        const char *cmd = argv[1];
        if (strcmp(cmd, "check") == 0)
                return cmd_check(argc - 1, argv + 1);
        if (strcmp(cmd, "disasm") == 0)
                return cmd_disasm(argc - 1, argv + 1);
        if (strcmp(cmd, "replay") == 0)
                return cmd_replay(argc - 1, argv + 1);
        if (strcmp(cmd, "explain") == 0)
                return cmd_explain(argc - 1, argv + 1);
        if (strcmp(cmd, "diff") == 0)
                return cmd_diff(argc - 1, argv + 1);
        if (strcmp(cmd, "test") == 0)
                return ruletest_main(argc - 1, argv + 1);
        if (strcmp(cmd, "broker") == 0)
                return broker_main(argc - 1, argv + 1);
        if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
                usage(stdout);
                return 0;
        }
        fprintf(stderr, "riskctl: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
}
