/*
 * The expression lexer (src/rules/lexer.c): every token kind with its byte
 * range, number, duration and string values (escapes, \u, Chinese text),
 * `not in` merging, every lexer error with its code, column and width, and
 * exprsrc_pos with and without a position map.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "src/rules/ast.h"

static Arena ar;
static DiagList dl;
static ExprSrc src;
static Token *toks;
static uint32_t ntoks;

static void setup(void)
{
        arena_init(&ar);
        memset(&dl, 0, sizeof(dl));
}

static void teardown(void)
{
        diag_list_deinit(&dl);
        arena_deinit(&ar);
}

TestSuite(lexer, .init = setup, .fini = teardown);

static void lex(const char *text)
{
        src = (ExprSrc){.id = 3, .file = "rules.yaml", .text = text, .len = strlen(text)};
        ntoks = lex_all(&ar, &src, &dl, &toks);
}

/* Asserts the token kinds, ending with T_EOF. */
static void assert_kinds(const char *text, const TokKind *want, uint32_t n)
{
        lex(text);
        cr_assert_eq(dl.n, 0, "%s: unexpected diagnostic: %s", text, dl.n ? dl.v[0].message : "");
        cr_assert_eq(ntoks, n + 1, "%s: %u tokens, want %u", text, ntoks, n + 1);
        for (uint32_t i = 0; i < n; i++)
                cr_assert_eq(toks[i].kind, want[i], "%s: token %u is %s, want %s", text, i,
                             tok_kind_str(toks[i].kind), tok_kind_str(want[i]));
        cr_assert_eq(toks[n].kind, T_EOF);
        cr_assert_eq(toks[n].off, strlen(text));
        cr_assert_eq(toks[n].len, 0);
}

static void assert_no_tokens(const char *text)
{
        assert_kinds(text, NULL, 0);
}

#define KINDS(text, ...)                                                     \
        do {                                                                 \
                static const TokKind w_[] = {__VA_ARGS__};                   \
                assert_kinds(text, w_, ARRAY_SIZE(w_));                      \
        } while (0)

static void assert_tok(uint32_t i, TokKind k, uint32_t off, uint32_t len)
{
        cr_assert_lt(i, ntoks);
        cr_assert_eq(toks[i].kind, k, "token %u is %s, want %s", i, tok_kind_str(toks[i].kind), tok_kind_str(k));
        cr_assert_eq(toks[i].off, off, "token %u at %u, want %u", i, toks[i].off, off);
        cr_assert_eq(toks[i].len, len, "token %u has length %u, want %u", i, toks[i].len, len);
}

static const Diag *assert_diag(uint32_t i, DiagCode code, uint32_t col, uint32_t len)
{
        cr_assert_gt(dl.n, i, "expected a diagnostic #%u, have %u", i, dl.n);
        const Diag *d = &dl.v[i];
        cr_assert_eq(d->code, code, "diag %u is %s (%s), want %s", i, diag_code_str(d->code), d->message,
                     diag_code_str(code));
        cr_assert_eq(d->line, 1);
        cr_assert_eq(d->col, col, "diag %u (%s) at column %u, want %u", i, d->message, d->col, col);
        cr_assert_eq(d->len, len, "diag %u (%s) has width %u, want %u", i, d->message, d->len, len);
        cr_assert_str_eq(d->file, "rules.yaml");
        return d;
}

/* ---- token kinds ---- */

Test(lexer, every_punctuation_and_operator)
{
        KINDS("$ . , ( ) [ ] == != < <= > >= + - * / %",
              T_DOLLAR, T_DOT, T_COMMA, T_LPAREN, T_RPAREN, T_LBRACK, T_RBRACK, T_EQ, T_NE, T_LT, T_LE,
              T_GT, T_GE, T_PLUS, T_MINUS, T_STAR, T_SLASH, T_PERCENT);
        assert_tok(7, T_EQ, 14, 2);
        assert_tok(10, T_LE, 22, 2);
        assert_tok(12, T_GE, 27, 2);
}

Test(lexer, every_keyword)
{
        KINDS("and or in not contains startswith endswith matches where within for true false null",
              T_AND, T_OR, T_IN, T_NOT, T_CONTAINS, T_STARTSWITH, T_ENDSWITH, T_MATCHES, T_WHERE, T_WITHIN,
              T_FOR, T_TRUE, T_FALSE, T_NULL);
        assert_tok(0, T_AND, 0, 3);
        assert_tok(5, T_STARTSWITH, 23, 10);
}

Test(lexer, literals_and_names)
{
        KINDS("name 12 30m \"s\" 's'", T_IDENT, T_NUMBER, T_DURATION, T_STRING, T_STRING);
        assert_tok(0, T_IDENT, 0, 4);
        assert_tok(1, T_NUMBER, 5, 2);
        assert_tok(2, T_DURATION, 8, 3);
        assert_tok(3, T_STRING, 12, 3);
        assert_tok(4, T_STRING, 16, 3);
}

Test(lexer, operators_without_spaces)
{
        KINDS("a<=b>=c<d>e==f!=g", T_IDENT, T_LE, T_IDENT, T_GE, T_IDENT, T_LT, T_IDENT, T_GT, T_IDENT, T_EQ,
              T_IDENT, T_NE, T_IDENT);
        KINDS("(a+b)*-c%2/d", T_LPAREN, T_IDENT, T_PLUS, T_IDENT, T_RPAREN, T_STAR, T_MINUS, T_IDENT, T_PERCENT,
              T_NUMBER, T_SLASH, T_IDENT);
        KINDS("f(x,[1,2])", T_IDENT, T_LPAREN, T_IDENT, T_COMMA, T_LBRACK, T_NUMBER, T_COMMA, T_NUMBER, T_RBRACK,
              T_RPAREN);
}

Test(lexer, identifiers)
{
        KINDS("_a1 b_2 Z9_ x", T_IDENT, T_IDENT, T_IDENT, T_IDENT);
        assert_tok(0, T_IDENT, 0, 3);
        assert_tok(1, T_IDENT, 4, 3);
        assert_tok(2, T_IDENT, 8, 3);
}

Test(lexer, dotted_names_are_separate_tokens)
{
        KINDS("state.flags.problem_lead", T_IDENT, T_DOT, T_IDENT, T_DOT, T_IDENT);
        assert_tok(2, T_IDENT, 6, 5);
        assert_tok(4, T_IDENT, 12, 12);
        KINDS("$device_id", T_DOLLAR, T_IDENT);
        assert_tok(1, T_IDENT, 1, 9);
}

Test(lexer, keywords_are_case_sensitive_and_whole_words)
{
        KINDS("AND Or NOT True NULL", T_IDENT, T_IDENT, T_IDENT, T_IDENT, T_IDENT);
        KINDS("android order note index format nullable forx", T_IDENT, T_IDENT, T_IDENT, T_IDENT, T_IDENT,
              T_IDENT, T_IDENT);
}

Test(lexer, not_in_is_one_token)
{
        KINDS("x not in y", T_IDENT, T_NOT_IN, T_IDENT);
        assert_tok(1, T_NOT_IN, 2, 6);
        KINDS("x not \t\n  in y", T_IDENT, T_NOT_IN, T_IDENT);
        assert_tok(1, T_NOT_IN, 2, 10);
        KINDS("x not in[1]", T_IDENT, T_NOT_IN, T_LBRACK, T_NUMBER, T_RBRACK);
}

Test(lexer, not_followed_by_other_words)
{
        KINDS("not in_stock", T_NOT, T_IDENT);
        KINDS("not inx", T_NOT, T_IDENT);
        KINDS("notin", T_IDENT);
        KINDS("not (a in b)", T_NOT, T_LPAREN, T_IDENT, T_IN, T_IDENT, T_RPAREN);
        KINDS("not", T_NOT);
}

Test(lexer, whitespace)
{
        KINDS(" \t\r\n a \r\n\t", T_IDENT);
        assert_tok(0, T_IDENT, 5, 1);
        assert_no_tokens("");
        assert_no_tokens("   ");
}

/* ---- numbers and durations ---- */

Test(lexer, numbers)
{
        lex("12 3.5 1e3 2.5E-2 0 007 1e+2 123456789012");
        cr_assert_eq(dl.n, 0);
        cr_assert_eq(ntoks, 9);
        static const double want[] = {12, 3.5, 1000, 0.025, 0, 7, 100, 123456789012.0};
        for (uint32_t i = 0; i < ARRAY_SIZE(want); i++) {
                cr_assert_eq(toks[i].kind, T_NUMBER, "token %u", i);
                cr_assert_float_eq(toks[i].num, want[i], 1e-12, "token %u: %g, want %g", i, toks[i].num, want[i]);
        }
        assert_tok(3, T_NUMBER, 11, 6);
}

Test(lexer, number_then_operator)
{
        KINDS("3+4", T_NUMBER, T_PLUS, T_NUMBER);
        KINDS("1e3-2", T_NUMBER, T_MINUS, T_NUMBER);
        cr_assert_float_eq(toks[0].num, 1000, 0);
        KINDS("2-3", T_NUMBER, T_MINUS, T_NUMBER);
        KINDS("12)", T_NUMBER, T_RPAREN);
        KINDS("12,", T_NUMBER, T_COMMA);
        KINDS("12 s", T_NUMBER, T_IDENT);
}

Test(lexer, durations)
{
        lex("500ms 45s 30m 12h 180d 2w 0s");
        cr_assert_eq(dl.n, 0);
        static const int64_t want[] = {500, 45000, 1800000, 43200000, 180LL * 86400000, 14LL * 86400000, 0};
        cr_assert_eq(ntoks, ARRAY_SIZE(want) + 1);
        for (uint32_t i = 0; i < ARRAY_SIZE(want); i++) {
                cr_assert_eq(toks[i].kind, T_DURATION, "token %u", i);
                cr_assert_eq(toks[i].ms, want[i], "token %u: %lld ms, want %lld", i, (long long)toks[i].ms,
                             (long long)want[i]);
        }
        assert_tok(0, T_DURATION, 0, 5);
        assert_tok(4, T_DURATION, 18, 4);
}

Test(lexer, duration_in_expression)
{
        KINDS("now - t > 72h", T_IDENT, T_MINUS, T_IDENT, T_GT, T_DURATION);
        cr_assert_eq(toks[4].ms, 72LL * 3600000);
        KINDS("within 30d)", T_WITHIN, T_DURATION, T_RPAREN);
        cr_assert_eq(toks[1].ms, 30LL * 86400000);
}

/* ---- strings ---- */

static void assert_str(uint32_t i, const char *want, uint32_t wlen)
{
        cr_assert_eq(toks[i].kind, T_STRING, "token %u is %s", i, tok_kind_str(toks[i].kind));
        cr_assert_eq(toks[i].slen, wlen, "string %u has %u bytes, want %u", i, toks[i].slen, wlen);
        cr_assert_eq(memcmp(toks[i].str, want, wlen), 0, "string %u is '%.*s', want '%s'", i, (int)toks[i].slen,
                     toks[i].str, want);
        cr_assert_eq(toks[i].str[wlen], 0, "decoded strings are NUL terminated");
}

Test(lexer, strings_both_quotes)
{
        lex("\"abc\" 'def' \"\" '' \"it's\" 'say \"hi\"'");
        cr_assert_eq(dl.n, 0);
        cr_assert_eq(ntoks, 7);
        assert_str(0, "abc", 3);
        assert_str(1, "def", 3);
        assert_str(2, "", 0);
        assert_str(3, "", 0);
        assert_str(4, "it's", 4);
        assert_str(5, "say \"hi\"", 8);
        assert_tok(0, T_STRING, 0, 5);
        assert_tok(5, T_STRING, 25, 10);
}

Test(lexer, string_escapes)
{
        lex("\"a\\\"b\\'c\\\\d\\ne\\tf\" 'x\\'y\\\"z'");
        cr_assert_eq(dl.n, 0, "%s", dl.n ? dl.v[0].message : "");
        assert_str(0, "a\"b'c\\d\ne\tf", 11);
        assert_str(1, "x'y\"z", 5);
        assert_tok(0, T_STRING, 0, 18);
}

Test(lexer, unicode_escapes)
{
        lex("\"\\u0041\\u00e9\\u4e2d\\ud83d\\ude00\" \"\\u98DF\\u54c1\"");
        cr_assert_eq(dl.n, 0, "%s", dl.n ? dl.v[0].message : "");
        assert_str(0, "A\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80", 10);
        assert_str(1, "食品", 6);
}

Test(lexer, chinese_text_in_strings)
{
        lex("product.name contains \"婴幼儿配方奶粉\" and item == '铅(以Pb计)'");
        cr_assert_eq(dl.n, 0);
        assert_str(4, "婴幼儿配方奶粉", strlen("婴幼儿配方奶粉"));
        assert_tok(4, T_STRING, 22, 2 + 21);
        assert_str(8, "铅(以Pb计)", strlen("铅(以Pb计)"));
        cr_assert_eq(toks[9].kind, T_EOF);
}

Test(lexer, strings_may_span_lines)
{
        lex("\"a\nb\"");
        cr_assert_eq(dl.n, 0);
        assert_str(0, "a\nb", 3);
}

/* ---- errors ---- */

Test(lexer, unterminated_string)
{
        lex("a == \"abc");
        cr_assert_eq(dl.n, 1);
        const Diag *d = assert_diag(0, DIAG_E021, 6, 1);
        cr_assert_str_eq(d->message, "unterminated string: expected a closing \", found end of expression");
        cr_assert_not_null(d->hint);
        assert_tok(2, T_ERROR, 5, 4);
        cr_assert_eq(toks[3].kind, T_EOF);
}

Test(lexer, unterminated_string_column_counts_code_points)
{
        lex("x == \"食品\" and y == \"abc");
        cr_assert_eq(dl.n, 1);
        assert_diag(0, DIAG_E021, 20, 1);
}

Test(lexer, unterminated_single_quote_and_trailing_backslash)
{
        lex("'abc");
        cr_assert_eq(dl.n, 1);
        const Diag *d = assert_diag(0, DIAG_E021, 1, 1);
        cr_assert_str_eq(d->message, "unterminated string: expected a closing ', found end of expression");
        teardown();
        setup();
        lex("\"abc\\");
        cr_assert_eq(dl.n, 1);
        assert_diag(0, DIAG_E021, 1, 1);
        teardown();
        setup();
        lex("\"abc\\\"");
        cr_assert_eq(dl.n, 1, "an escaped quote does not close the string");
        assert_diag(0, DIAG_E021, 1, 1);
}

Test(lexer, unknown_escape)
{
        lex("x matches \"\\d+\"");
        cr_assert_eq(dl.n, 1);
        const Diag *d = assert_diag(0, DIAG_E023, 12, 2);
        cr_assert_str_eq(d->message, "expected an escape, found '\\d'");
        cr_assert_not_null(strstr(d->hint, "\\\\"));
        assert_tok(2, T_ERROR, 10, 5);
}

Test(lexer, bad_unicode_escapes)
{
        lex("\"\\u12\" \"\\uZZZZ\" \"\\ud83d\" \"ok\"");
        cr_assert_eq(dl.n, 3);
        const Diag *d = assert_diag(0, DIAG_E023, 2, 4);
        cr_assert_str_eq(d->message, "expected four hex digits after '\\u', found '\\u12'");
        assert_diag(1, DIAG_E023, 9, 2);
        d = assert_diag(2, DIAG_E023, 18, 6);
        cr_assert_str_eq(d->message, "expected a code point, found a lone surrogate '\\ud83d'");
        cr_assert_eq(toks[0].kind, T_ERROR);
        cr_assert_eq(toks[1].kind, T_ERROR);
        cr_assert_eq(toks[2].kind, T_ERROR);
        assert_str(3, "ok", 2);
}

Test(lexer, bad_number_or_duration)
{
        static const struct {
                const char *text;
                uint32_t len;
        } cases[] = {
                {"12x", 3}, {"3.4.5", 5}, {"1.5h", 4}, {"12.", 3}, {"5mm", 3}, {"30M", 3}, {"2d5", 3},
                {"1e3s", 4}, {"0x1f", 4}, {"7_d", 3},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                teardown();
                setup();
                lex(cases[i].text);
                cr_assert_eq(dl.n, 1, "%s: %u diagnostics", cases[i].text, dl.n);
                const Diag *d = assert_diag(0, DIAG_E023, 1, cases[i].len);
                char want[64];
                snprintf(want, sizeof(want), "expected a number or a duration, found '%s'", cases[i].text);
                cr_assert_str_eq(d->message, want);
                cr_assert_str_eq(d->hint, "durations are a number followed by ms, s, m, h, d or w");
                cr_assert_eq(ntoks, 2, "%s: one bad token and EOF", cases[i].text);
                assert_tok(0, T_ERROR, 0, cases[i].len);
        }
}

Test(lexer, number_out_of_range)
{
        lex("x > 1e999");
        cr_assert_eq(dl.n, 1);
        const Diag *d = assert_diag(0, DIAG_E023, 5, 5);
        cr_assert_str_eq(d->message, "expected a finite number, found '1e999' (out of range)");
}

Test(lexer, bad_literal_column_after_chinese)
{
        lex("\"中文\" == 12x");
        cr_assert_eq(dl.n, 1);
        assert_diag(0, DIAG_E023, 9, 3);
}

Test(lexer, unexpected_characters)
{
        lex("a = b");
        cr_assert_eq(dl.n, 1);
        const Diag *d = assert_diag(0, DIAG_E020, 3, 1);
        cr_assert_str_eq(d->message, "expected an operator, found '='");
        cr_assert_str_eq(d->hint, "compare with ==");
        assert_tok(1, T_ERROR, 2, 1);
        assert_tok(2, T_IDENT, 4, 1);

        teardown();
        setup();
        lex("!a && b || c # d");
        cr_assert_eq(dl.n, 4);
        d = assert_diag(0, DIAG_E020, 1, 1);
        cr_assert_str_eq(d->hint, "negate a condition with not");
        d = assert_diag(1, DIAG_E020, 4, 2);
        cr_assert_str_eq(d->message, "expected an operator, found '&&'");
        cr_assert_str_eq(d->hint, "join conditions with and");
        d = assert_diag(2, DIAG_E020, 9, 2);
        cr_assert_str_eq(d->hint, "join conditions with or");
        d = assert_diag(3, DIAG_E020, 14, 1);
        cr_assert_str_eq(d->message, "unexpected character: expected an operator or an operand, found '#'");
}

Test(lexer, non_ascii_name_is_one_error)
{
        lex("产品名称 == \"x\"");
        cr_assert_eq(dl.n, 1);
        const Diag *d = assert_diag(0, DIAG_E020, 1, 4);
        cr_assert_str_eq(d->message, "unexpected character: expected an operator or an operand, found '产品名称'");
        cr_assert_not_null(strstr(d->hint, "quotes"));
        assert_tok(0, T_ERROR, 0, 12);
        cr_assert_eq(toks[1].kind, T_EQ);
}

Test(lexer, control_character)
{
        lex("a \x01 b");
        cr_assert_eq(dl.n, 1);
        const Diag *d = assert_diag(0, DIAG_E020, 3, 1);
        cr_assert_str_eq(d->message, "unexpected character: expected an operator or an operand, found byte 0x01");
}

Test(lexer, every_lexer_error_is_reported)
{
        lex("12x == \"\\q\" and @ or 'open");
        cr_assert_eq(dl.n, 4);
        assert_diag(0, DIAG_E023, 1, 3);
        assert_diag(1, DIAG_E023, 9, 2);
        assert_diag(2, DIAG_E020, 17, 1);
        assert_diag(3, DIAG_E021, 22, 1);
}

/* ---- tok_kind_str and exprsrc_pos ---- */

Test(lexer, tok_kind_str)
{
        cr_assert_str_eq(tok_kind_str(T_EOF), "end of expression");
        cr_assert_str_eq(tok_kind_str(T_AND), "'and'");
        cr_assert_str_eq(tok_kind_str(T_NOT_IN), "'not in'");
        cr_assert_str_eq(tok_kind_str(T_STRING), "string");
        cr_assert_str_eq(tok_kind_str(T_IDENT), "name");
        cr_assert_str_eq(tok_kind_str(T_LE), "'<='");
        cr_assert_str_eq(tok_kind_str(T_RPAREN), "')'");
        for (int k = T_EOF; k <= T_ERROR; k++) {
                const char *s = tok_kind_str((TokKind)k);
                cr_assert(s && *s && strcmp(s, "token") != 0, "kind %d has no name", k);
        }
}

Test(lexer, exprsrc_pos_without_map)
{
        const char *t = "x == \"食品安全\" and y";
        ExprSrc s = {.file = "a.yaml", .text = t, .len = strlen(t)};
        SrcPos p = exprsrc_pos(&s, 0, 1);
        cr_assert_str_eq(p.file, "a.yaml");
        cr_assert_eq(p.line, 1);
        cr_assert_eq(p.col, 1);
        cr_assert_eq(p.len, 1);
        p = exprsrc_pos(&s, 5, 14); /* the string literal */
        cr_assert_eq(p.col, 6);
        cr_assert_eq(p.len, 6);
        p = exprsrc_pos(&s, 20, 3); /* and */
        cr_assert_eq(p.col, 13);
        cr_assert_eq(p.len, 3);
        p = exprsrc_pos(&s, (uint32_t)s.len, 0);
        cr_assert_eq(p.col, 18);
        cr_assert_eq(p.len, 0);
        p = exprsrc_pos(&s, 1000, 5); /* clamped, never reads past the text */
        cr_assert_eq(p.col, 18);
        cr_assert_eq(p.len, 0);
}

static uint32_t map_calls;

static SrcPos test_map(const ExprSrc *s, uint32_t off, uint32_t len)
{
        map_calls++;
        return (SrcPos){.file = s->ud, .line = 7, .col = 10 + off, .len = len * 2};
}

Test(lexer, exprsrc_pos_with_map)
{
        const char *t = "a == 'x";
        src = (ExprSrc){.id = 1, .file = "ignored", .text = t, .len = strlen(t), .ud = "mapped.yaml", .map = test_map};
        map_calls = 0;
        ntoks = lex_all(&ar, &src, &dl, &toks);
        cr_assert_eq(map_calls, 1);
        cr_assert_eq(dl.n, 1);
        cr_assert_eq(dl.v[0].code, DIAG_E021);
        cr_assert_str_eq(dl.v[0].file, "mapped.yaml");
        cr_assert_eq(dl.v[0].line, 7);
        cr_assert_eq(dl.v[0].col, 15);
        cr_assert_eq(dl.v[0].len, 2);
}
