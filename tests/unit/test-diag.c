/*
 * Unit tests of src/util/diag.c: codes and levels, counting and the
 * recording limit, the text form (file:line:col, the source line with a
 * caret under the token, wide characters and tabs, help), the JSON form,
 * sorting and the removal of duplicates, and did-you-mean suggestions.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/diag.h"
#include "include/riskd/util.h"

/* What f(dl) writes, as a string the caller frees. */
static char *render(const DiagList *dl, int how)
{
        char *s = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&s, &n);
        cr_assert_not_null(f);
        if (how == 0)
                diag_print_text(f, dl, false);
        else if (how == 1)
                diag_print_text(f, dl, true);
        else
                diag_print_json(f, dl, how == 3 ? "{\"rules\":2}" : NULL);
        fclose(f);
        return s;
}

/* The line source: one fake file "r.yaml" whose lines are given. */
static const char *const src_lines[] = {
        "rules:",
        "    when: severty > 3",
        "    message: \"样品 {itme} 不合格\"",
        "\twhen:\tx == 1",
};

static const char *line_of(void *ud, const char *file, uint32_t line, uint32_t *len)
{
        (void)ud;
        if (strcmp(file, "r.yaml") != 0 || line == 0 || line > ARRAY_SIZE(src_lines))
                return NULL;
        *len = (uint32_t)strlen(src_lines[line - 1]);
        return src_lines[line - 1];
}

Test(diag, codes_names_and_levels)
{
        cr_assert_str_eq(diag_code_str(DIAG_E031), "E031");
        cr_assert_str_eq(diag_code_name(DIAG_E031), "unknown_field");
        cr_assert_eq(diag_code_level(DIAG_E031), DIAG_LEVEL_ERROR);
        cr_assert_str_eq(diag_code_str(DIAG_W104), "W104");
        cr_assert_str_eq(diag_code_name(DIAG_W104), "always_false");
        cr_assert_eq(diag_code_level(DIAG_W104), DIAG_LEVEL_WARNING);
        /* every code's level is its letter (C: riskd.yaml's, errors but for
         * C020, the file's mode), every name is distinct */
        cr_assert_str_eq(diag_code_str(DIAG_C009), "C009");
        cr_assert_eq(diag_code_level(DIAG_C009), DIAG_LEVEL_ERROR);
        for (int c = 0; c < _DIAG_CODE_MAX; c++) {
                const char *s = diag_code_str((DiagCode)c);
                cr_assert(s[0] == 'E' || s[0] == 'W' || s[0] == 'C');
                cr_assert_eq(diag_code_level((DiagCode)c),
                             s[0] == 'W' || c == DIAG_C020 ? DIAG_LEVEL_WARNING : DIAG_LEVEL_ERROR, "%s", s);
                for (int k = 0; k < c; k++) {
                        cr_assert_str_neq(diag_code_name((DiagCode)k), diag_code_name((DiagCode)c));
                        cr_assert_str_neq(diag_code_str((DiagCode)k), s);
                }
        }
        /* out of range: a placeholder, never a read past the table */
        cr_assert_str_eq(diag_code_str(_DIAG_CODE_MAX), "E000");
        cr_assert_str_eq(diag_code_name(_DIAG_CODE_MAX), "unknown");
        cr_assert_eq(diag_code_level(_DIAG_CODE_MAX), DIAG_LEVEL_ERROR);
}

Test(diag, add_counts_and_the_limit_keeps_counting)
{
        DiagList dl = {.max = 2};
        SrcPos p = {.file = "r.yaml", .line = 2, .col = 11};
        diag_add(&dl, DIAG_E031, p, "did you mean 'severity'?", "unknown field '%s' of %s", "severty", "sampling");
        diag_add(&dl, DIAG_W104, p, NULL, "always false");
        diag_add(&dl, DIAG_E033, p, NULL, "not recorded");
        cr_assert_eq(dl.n, 2);
        cr_assert_eq(dl.nerrors, 2, "an error past the limit still counts");
        cr_assert_eq(dl.nwarnings, 1);
        cr_assert_str_eq(dl.v[0].message, "unknown field 'severty' of sampling");
        cr_assert_str_eq(dl.v[0].hint, "did you mean 'severity'?");
        cr_assert_null(dl.v[1].hint);
        cr_assert_null(dl.v[0].srcline, "no line source: no copy of the line");
        cr_assert_eq(dl.v[0].line, 2);
        cr_assert_eq(dl.v[0].col, 11);
        diag_list_deinit(&dl);
        cr_assert_eq(dl.n, 0);
        cr_assert_eq(dl.nerrors, 0);
        cr_assert_null(dl.v);
}

Test(diag, text_form_without_source)
{
        DiagList dl = {0};
        diag_add(&dl, DIAG_E031, (SrcPos){.file = "r.yaml", .line = 2, .col = 11}, "did you mean 'severity'?",
                 "unknown field 'severty' of sampling");
        diag_add(&dl, DIAG_E002, (SrcPos){.file = "rules/"}, NULL, "cannot open: No such file or directory");
        diag_add(&dl, DIAG_W102, (SrcPos){.file = "r.yaml", .line = 9, .col = 3}, NULL, "list 'x' is never used");
        char *s = render(&dl, 0);
        cr_assert_str_eq(s, "r.yaml:2:11: error[E031]: unknown field 'severty' of sampling\n"
                            "        = help: did you mean 'severity'?\n"
                            "rules/: error[E002]: cannot open: No such file or directory\n"
                            "r.yaml:9:3: warning[W102]: list 'x' is never used\n");
        free(s);
        diag_list_deinit(&dl);
}

Test(diag, caret_under_the_token)
{
        diag_set_line_source(line_of, NULL);
        DiagList dl = {0};
        /* "severty": col 11, 7 code points */
        diag_add(&dl, DIAG_E031, (SrcPos){.file = "r.yaml", .line = 2, .col = 11, .len = 7}, "did you mean 'severity'?",
                 "unknown field 'severty' of sampling");
        /* "itme" after two CJK characters (two columns each on a terminal):
         * col counts code points, the caret counts columns */
        diag_add(&dl, DIAG_E043, (SrcPos){.file = "r.yaml", .line = 3, .col = 19, .len = 4}, NULL,
                 "unknown field 'itme' in the message");
        /* tabs stay tabs so that the caret lines up in a terminal */
        diag_add(&dl, DIAG_E031, (SrcPos){.file = "r.yaml", .line = 4, .col = 8}, NULL, "unknown field 'x'");
        /* a line the source does not know: no source line */
        diag_add(&dl, DIAG_E033, (SrcPos){.file = "r.yaml", .line = 99, .col = 1}, NULL, "past the end");
        diag_set_line_source(NULL, NULL);
        cr_assert_str_eq(dl.v[0].srcline, "    when: severty > 3");
        cr_assert_null(dl.v[3].srcline);
        char *s = render(&dl, 0);
        cr_assert_str_eq(s, "r.yaml:2:11: error[E031]: unknown field 'severty' of sampling\n"
                            "      2 |     when: severty > 3\n"
                            "        |           ^~~~~~~\n"
                            "        = help: did you mean 'severity'?\n"
                            "r.yaml:3:19: error[E043]: unknown field 'itme' in the message\n"
                            "      3 |     message: \"样品 {itme} 不合格\"\n"
                            "        |                     ^~~~\n"
                            "r.yaml:4:8: error[E031]: unknown field 'x'\n"
                            "      4 | \twhen:\tx == 1\n"
                            "        | \t     \t^\n"
                            "r.yaml:99:1: error[E033]: past the end\n");
        free(s);
        /* with colour: the same text, with escapes around the level and caret */
        s = render(&dl, 1);
        cr_assert_not_null(strstr(s, "\033[1mr.yaml:2:11: \033[1;31merror[E031]\033[0m\033[1m: unknown field 'severty' of sampling\033[0m\n"));
        cr_assert_not_null(strstr(s, "\033[1;31m^~~~~~~\033[0m\n"));
        free(s);
        diag_list_deinit(&dl);
}

/* A note (diag_note) belongs to the diagnostic added last: printed after
 * it (and its help) as "file:line:col: note:" with its own source line and
 * caret, in JSON as its "notes"; it goes with a diagnostic over the limit,
 * and with it through sorting. */
Test(diag, notes)
{
        diag_set_line_source(line_of, NULL);
        DiagList dl = {.max = 2};
        diag_note(&dl, (SrcPos){.file = "r.yaml", .line = 1, .col = 1}, "before any diagnostic: dropped");
        diag_add(&dl, DIAG_E001, (SrcPos){.file = "r.yaml", .line = 3, .col = 14, .len = 1}, "close it",
                 "YAML syntax error");
        diag_note(&dl, (SrcPos){.file = "r.yaml", .line = 2, .col = 11, .len = 7}, "the %s opened here", "thing");
        diag_add(&dl, DIAG_E031, (SrcPos){.file = "r.yaml", .line = 2, .col = 5}, NULL, "earlier");
        diag_add(&dl, DIAG_E033, (SrcPos){.file = "r.yaml", .line = 1, .col = 1}, NULL, "over the limit");
        diag_note(&dl, (SrcPos){.file = "r.yaml", .line = 1, .col = 1}, "of the dropped one");
        diag_set_line_source(NULL, NULL);
        diag_list_sort(&dl);
        cr_assert_eq(dl.n, 2);
        cr_assert_eq(dl.v[0].nnotes, 0); /* E031 sorted first, without a note */
        cr_assert_eq(dl.v[1].nnotes, 1);
        char *s = render(&dl, 0);
        cr_assert_str_eq(s, "r.yaml:2:5: error[E031]: earlier\n"
                            "      2 |     when: severty > 3\n"
                            "        |     ^\n"
                            "r.yaml:3:14: error[E001]: YAML syntax error\n"
                            "      3 |     message: \"样品 {itme} 不合格\"\n"
                            "        |              ^\n"
                            "        = help: close it\n"
                            "r.yaml:2:11: note: the thing opened here\n"
                            "      2 |     when: severty > 3\n"
                            "        |           ^~~~~~~\n");
        free(s);
        s = render(&dl, 2);
        cr_assert(strstr(s, "\"notes\":[{\"file\":\"r.yaml\",\"line\":2,\"column\":11,\"length\":7,"
                            "\"message\":\"the thing opened here\",\"source\":\"    when: severty > 3\"}]}"),
                  "%s", s);
        free(s);
        diag_list_deinit(&dl);
}

Test(diag, json_form)
{
        diag_set_line_source(line_of, NULL);
        DiagList dl = {0};
        diag_add(&dl, DIAG_E031, (SrcPos){.file = "r.yaml", .line = 2, .col = 11, .len = 7}, "did you mean \"severity\"?",
                 "unknown field 'severty'\tof sampling");
        diag_add(&dl, DIAG_W107, (SrcPos){.file = "g.yaml", .line = 0}, NULL, "flag x set but never read");
        diag_set_line_source(NULL, NULL);
        char *s = render(&dl, 2);
        cr_assert_str_eq(s, "{\"diagnostics\":["
                            "{\"code\":\"E031\",\"name\":\"unknown_field\",\"severity\":\"error\",\"file\":\"r.yaml\","
                            "\"line\":2,\"column\":11,\"length\":7,\"message\":\"unknown field 'severty'\\tof sampling\","
                            "\"hint\":\"did you mean \\\"severity\\\"?\",\"source\":\"    when: severty > 3\",\"notes\":[]},"
                            "{\"code\":\"W107\",\"name\":\"unused_flag\",\"severity\":\"warning\",\"file\":\"g.yaml\","
                            "\"line\":0,\"column\":0,\"length\":0,\"message\":\"flag x set but never read\","
                            "\"hint\":null,\"source\":null,\"notes\":[]}"
                            "],\"errors\":1,\"warnings\":1}\n");
        free(s);
        s = render(&dl, 3);
        cr_assert(strstr(s, "],\"errors\":1,\"warnings\":1,\"summary\":{\"rules\":2}}\n"), "%s", s);
        free(s);
        diag_list_deinit(&dl);
        /* no diagnostics at all is still one document */
        s = render(&dl, 2);
        cr_assert_str_eq(s, "{\"diagnostics\":[],\"errors\":0,\"warnings\":0}\n");
        free(s);
}

Test(diag, sort_orders_and_drops_duplicates)
{
        DiagList dl = {0};
        SrcPos b5 = {.file = "b.yaml", .line = 5, .col = 3}, a9 = {.file = "a.yaml", .line = 9, .col = 1},
               a2c7 = {.file = "a.yaml", .line = 2, .col = 7}, a2c3 = {.file = "a.yaml", .line = 2, .col = 3};
        diag_add(&dl, DIAG_E031, b5, NULL, "m");
        diag_add(&dl, DIAG_W104, a9, NULL, "always false");
        diag_add(&dl, DIAG_E033, a2c7, NULL, "second");
        diag_add(&dl, DIAG_E031, a2c7, NULL, "first code");
        diag_add(&dl, DIAG_E033, a2c7, NULL, "first");
        diag_add(&dl, DIAG_E031, a2c3, NULL, "x");
        /* the same problem found twice (a macro used by two rules) */
        diag_add(&dl, DIAG_W104, a9, "a hint", "always false");
        diag_add(&dl, DIAG_E031, b5, NULL, "m");
        cr_assert_eq(dl.n, 8);
        cr_assert_eq(dl.nerrors, 6);
        cr_assert_eq(dl.nwarnings, 2);
        diag_list_sort(&dl);
        cr_assert_eq(dl.n, 6, "the duplicates are gone");
        cr_assert_eq(dl.nerrors, 5, "and no longer counted");
        cr_assert_eq(dl.nwarnings, 1);
        const char *want[][2] = {{"a.yaml:2:3", "x"}, {"a.yaml:2:7", "first code"}, {"a.yaml:2:7", "first"},
                                 {"a.yaml:2:7", "second"}, {"a.yaml:9:1", "always false"}, {"b.yaml:5:3", "m"}};
        for (uint32_t i = 0; i < dl.n; i++) {
                char *at = xasprintf("%s:%u:%u", dl.v[i].file, dl.v[i].line, dl.v[i].col);
                cr_assert_str_eq(at, want[i][0], "diag %u", i);
                cr_assert_str_eq(dl.v[i].message, want[i][1], "diag %u", i);
                free(at);
        }
        cr_assert_eq(dl.v[1].code, DIAG_E031, "same place: by code");
        /* sorting again changes nothing */
        diag_list_sort(&dl);
        cr_assert_eq(dl.n, 6);
        cr_assert_str_eq(dl.v[5].file, "b.yaml");
        diag_list_deinit(&dl);
}

Test(diag, suggestions)
{
        const char *const fields[] = {"severity", "confirmed", "measured", NULL, "limit", "item"};
        uint32_t n = ARRAY_SIZE(fields);
        cr_assert_str_eq(diag_suggest("severty", fields, n), "severity");
        cr_assert_str_eq(diag_suggest("confimred", fields, n), "confirmed");
        cr_assert_str_eq(diag_suggest("SEVERITY", fields, n), "severity", "case alone differs");
        cr_assert_str_eq(diag_suggest("limt", fields, n), "limit");
        cr_assert_null(diag_suggest("temperature", fields, n), "nothing close");
        /* short words: one edit at most */
        cr_assert_str_eq(diag_suggest("itm", fields, n), "item");
        cr_assert_null(diag_suggest("it", fields, n));
        /* the closest wins, whatever the order */
        const char *const c2[] = {"abcdef", "abcdex"};
        cr_assert_str_eq(diag_suggest("abcdxx", c2, 2), "abcdex");
        cr_assert_null(diag_suggest("x", NULL, 0));
}

/* The hint that names every candidate: the closest first when one is
 * close, the words for none only when there are none. */
Test(diag, hint_names)
{
        const char *const lists[] = {"labs", "devices"};
        Buf h = {0};
        diag_hint_names(&h, "lab", lists, 2, "lists:", " none defined");
        cr_assert_str_eq(h.p, "did you mean 'labs'? lists: labs devices");
        buf_free(&h);
        h = (Buf){0};
        diag_hint_names(&h, "temperature", lists, 2, "lists:", " none defined");
        cr_assert_str_eq(h.p, "lists: labs devices");
        buf_free(&h);
        h = (Buf){0};
        diag_hint_names(&h, "lab", NULL, 0, "lists:", " none defined");
        cr_assert_str_eq(h.p, "lists: none defined");
        buf_free(&h);
        h = (Buf){0};
        diag_hint_names(&h, "x", NULL, 0, "known keys:", NULL);
        cr_assert_str_eq(h.p, "known keys:");
        buf_free(&h);
}
