/*
 * riskctl: the rule author's tool.  Works on a rules directory without
 * Kafka: check compiles and reports every diagnostic, disasm shows what a
 * rule compiled to, replay runs the engine over a file of events (with a
 * back-test summary), explain says why an enterprise has its grade, diff
 * compares what two rule sets make of the same events (backtest.c), test
 * runs the rule tests (ruletest.c), broker is a local mock Kafka.  This
 * file has the command table, main, check and disasm; replay, explain and
 * diff are riskctl_replay.c over the engine run of riskctl_run.c.
 *
 * Each command takes only its own options; `riskctl COMMAND --help` prints
 * its usage.  Exit status: 0 success, 1 the rules (or the run) failed,
 * 2 unusable arguments or files (docs/man/riskctl.1).
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "include/riskd/rules.h"
#include "include/riskd/util.h"
#include "src/cli/riskctl.h"
#include "src/cli/ruletest.h"
#include "src/kafka/broker.h"

static int cmd_check(int argc, char **argv);
static int cmd_disasm(int argc, char **argv);

static const Command commands[] = {
        {"check",
         "usage: riskctl check DIR [--format text|json] [--dump]\n"
         "  compile a rules directory and report every problem (file:line:col, the line, a caret, a hint)\n"
         "  --format text|json   diagnostics as text (default) or one JSON document\n"
         "  --dump               also print the bytecode of every rule (text only)\n"
         "exit status: 0 no errors (warnings allowed), 1 errors in the rules, 2 bad arguments or DIR unreadable\n",
         NULL, 0, cmd_check},
        {"disasm",
         "usage: riskctl disasm DIR [RULE_ID...]\n"
         "  the bytecode the rules compiled to (every rule and the grading overrides, or the rules named)\n"
         "exit status: 0 ok, 1 errors in the rules or a RULE_ID that does not exist, 2 bad arguments\n",
         NULL, 0, cmd_disasm},
        {"replay",
         "usage: riskctl replay DIR [FILE|-] [OPTIONS]\n"
         "  run the engine over events (JSON lines; standard input for - or no FILE): alerts and\n"
         "  adjustments as JSON lines on standard output, the summary on standard error\n"
         "  --dead-letters FILE   write the rejected lines there, one JSON object each\n"
         "  --grades FILE         write the final grade of every enterprise there\n"
         "  --enterprises FILE    write the document of every enterprise there (riskd.enterprise/1:\n"
         "                        the last one riskd's enterprises topic holds for each)\n"
         "  --grace DUR           the reordering window (default 0)\n"
         "  --until TIME          event time runs to TIME: lines after the first event later than\n"
         "                        TIME + grace are not read, timers due by TIME fire\n"
         "  --format text|json    the summary as text (default) or one JSON document\n"
         "  --quiet               no summary\n"
         "  --max-enterprises N  --recent-ids N  --max-window-rows N  --max-keys N  --max-held N\n"
         "  --max-state-bytes N   the engine's limits (riskd.yaml(5)); N bytes as limits.max_state_bytes\n"
         "                        (one engine: riskd divides its budget among its partitions)\n"
         "  --compact-every N     compact every idle enterprise after every N lines (tests: the\n"
         "                        outputs are the same)\n"
         "  --reload DIR --reload-after N\n"
         "                        switch to DIR's rules after N lines, as riskd does on SIGHUP\n"
         "exit status: 0 ok, 1 errors in the rules, 2 bad arguments or a file unreadable or unwritable\n",
         "dguGNqfERWKHMCLAh", 1u << BT_TEXT | 1u << BT_JSON, cmd_replay},
        {"explain",
         "usage: riskctl explain DIR FILE ENTERPRISE [OPTIONS]\n"
         "  why an enterprise has its grade: score, contributions with their events and expiry, flags,\n"
         "  overrides, the hysteresis clock, at the end of FILE or as of TIME\n"
         "  --until TIME, --at TIME\n"
         "                        as of event time TIME: lines after the first event later than\n"
         "                        TIME + grace are not read, timers due by TIME fire\n"
         "  --format text|json    text (default) or the JSON document of riskd's /v1/enterprises/ID\n"
         "  --json                the same as --format json\n"
         "  --grace DUR  --max-enterprises N  --recent-ids N  --max-window-rows N  --max-keys N  --max-held N\n"
         "                        as for replay\n"
         "exit status: 0 ok, 1 errors in the rules or no event of ENTERPRISE, 2 bad arguments or FILE unreadable\n",
         "guafjERWKHh", 1u << BT_TEXT | 1u << BT_JSON, cmd_explain},
        {"diff",
         "usage: riskctl diff OLD_DIR NEW_DIR FILE [OPTIONS]\n"
         "  back-test: replay FILE under both rule sets and compare every output: per enterprise the\n"
         "  grading history and where it diverges, final grades and scores; alerts, adjustments and\n"
         "  dead letters gained, lost and changed (with the fields that differ); firings per rule;\n"
         "  grades at the end.  rules_version is left out of the comparison.\n"
         "  --format text|json|csv\n"
         "                        the report as text (default), one JSON document, or CSV rows\n"
         "  --until TIME  --grace DUR  --max-enterprises N  --recent-ids N  --max-window-rows N\n"
         "  --max-keys N  --max-held N\n"
         "                        as for replay, the same for both runs\n"
         "exit status: 0 the report was made (whether or not there are differences), 1 errors in\n"
         "the rules, 2 bad arguments or FILE unreadable\n",
         "gufERWKHh", 1u << BT_TEXT | 1u << BT_JSON | 1u << BT_CSV, cmd_diff},
        /* their own usage: `riskctl test --help`, `riskctl broker --help` */
        {"test", NULL, NULL, 0, ruletest_main},
        {"broker", NULL, NULL, 0, broker_main},
};

const Command *command_find(const char *name)
{
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

int usage_error(const Command *cmd, const char *fmt, ...)
{
        if (fmt) {
                va_list ap;
                va_start(ap, fmt);
                fprintf(stderr, "riskctl %s: ", cmd->name);
                vfprintf(stderr, fmt, ap);
                fputc('\n', stderr);
                va_end(ap);
        }
        fputs(cmd->usage, stderr);
        return 2;
}

int option_error(const Command *cmd, int c, char **argv)
{
        const char *opt = argv[optind - 1];
        if (c == ':')
                return usage_error(cmd, "option '%s' needs a value", opt);
        if (optopt && opt[0] == '-' && opt[1] != '-')
                return usage_error(cmd, "unknown option '-%c'", optopt);
        return usage_error(cmd, "unknown option '%s'", opt);
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
        const Command *cmd = command_find("check");
        static const struct option opts[] = {
                {"format", required_argument, NULL, 'f'},
                {"dump", no_argument, NULL, 'd'},
                {"help", no_argument, NULL, 'h'},
                {0},
        };
        bool json = false, dump = false;
        int c;
        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":f:dh", opts, NULL)) != -1) {
                switch (c) {
                case 'f':
                        if (strcmp(optarg, "json") == 0)
                                json = true;
                        else if (strcmp(optarg, "text") != 0)
                                return usage_error(cmd, "--format must be text or json, not '%s'", optarg);
                        break;
                case 'd':
                        dump = true;
                        break;
                case 'h':
                        fputs(cmd->usage, stdout);
                        return 0;
                default:
                        return option_error(cmd, c, argv);
                }
        }
        if (optind != argc - 1)
                return usage_error(cmd, "expected one rules directory");
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
        static const struct option opts[] = {
                {"help", no_argument, NULL, 'h'},
                {0},
        };
        const Command *cmd = command_find("disasm");
        int c;
        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
                if (c != 'h')
                        return option_error(cmd, c, argv);
                fputs(cmd->usage, stdout);
                return 0;
        }
        /* the arguments left, in order: DIR [RULE_ID...] */
        argv += optind - 1;
        argc -= optind - 1;
        if (argc < 2)
                return usage_error(cmd, "expected a rules directory");
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

static void usage(FILE *f)
{
        fputs("usage: riskctl COMMAND [OPTIONS] ...\n"
              "\n"
              "commands (riskctl COMMAND --help for each one's options):\n"
              "  check DIR [--format text|json] [--dump]   compile a rules directory, report every problem\n"
              "  disasm DIR [RULE_ID...]                   show the bytecode rules compiled to\n"
              "  replay DIR [FILE|-] [OPTIONS]             run the engine over events (JSON lines): a back-test\n"
              "  explain DIR FILE ENTERPRISE [OPTIONS]     why an enterprise has its grade, now or --at TIME\n"
              "  diff OLD_DIR NEW_DIR FILE [OPTIONS]       back-test: everything a rule change would change\n"
              "  test DIR [FILE...] [--run PATTERN] [--junit FILE] [--verbose] [--coverage]\n"
              "                                            run the rule tests in DIR/tests/*.yaml\n"
              "  broker [--partitions N] [--brokers N] [--config FILE]\n"
              "                                            a local mock Kafka cluster for development and tests\n"
              "  riskctl --version                         print the version\n"
              "\n"
              "exit status: 0 ok, 1 errors in the rules (or failed tests, or nothing to explain),\n"
              "2 bad arguments or an unusable file\n",
              f);
}

int main(int argc, char **argv)
{
        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        const char *cmd = argv[1];
        const Command *c = command_find(cmd);
        if (c)
                return c->run(argc - 1, argv + 1);
        if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
                printf("riskctl %s\n", RISKD_VERSION);
                return 0;
        }
        if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
                if (argc > 2) { /* riskctl help COMMAND */
                        c = command_find(argv[2]);
                        if (c && c->usage) {
                                fputs(c->usage, stdout);
                                return 0;
                        }
                        if (c) {
                                char *a[] = {argv[2], "--help", NULL};
                                return c->run(2, a);
                        }
                        fprintf(stderr, "riskctl: unknown command '%s'\n", argv[2]);
                        usage(stderr);
                        return 2;
                }
                usage(stdout);
                return 0;
        }
        fprintf(stderr, "riskctl: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
}
