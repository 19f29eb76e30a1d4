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

#include "include/riskd/rules.h"
#include "include/riskd/util.h"

static void usage(FILE *f)
{
        fputs("usage: riskctl COMMAND [OPTIONS] ...\n"
              "\n"
              "commands:\n"
              "  check DIR [--format text|json] [--dump]   compile a rules directory, report every problem\n"
              "  disasm DIR [RULE_ID...]                   show the bytecode rules compiled to\n"
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
        if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
                usage(stdout);
                return 0;
        }
        fprintf(stderr, "riskctl: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
}
