/*
 * The expression parser (src/rules/parser.c): trees are compared through
 * node_print, level by level of the precedence table; aggregates, calls,
 * lists and $fields; byte ranges of nodes; node_clone; and every class of
 * syntax error with its code, column, width and message.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "src/rules/ast.h"

static Arena ar;
static DiagList dl;
static ExprSrc src;
static Buf out;

static void setup(void)
{
        arena_init(&ar);
        memset(&dl, 0, sizeof(dl));
        memset(&out, 0, sizeof(out));
}

static void teardown(void)
{
        buf_free(&out);
        diag_list_deinit(&dl);
        arena_deinit(&ar);
}

TestSuite(parser, .init = setup, .fini = teardown);

static Node *parse(const char *text)
{
        src = (ExprSrc){.id = 42, .file = "rules.yaml", .text = text, .len = strlen(text)};
        return expr_parse(&ar, &src, &dl);
}

static const char *show(const Node *n)
{
        buf_free(&out);
        node_print(n, &out);
        return out.p;
}

/* Parses text, which must parse without any diagnostic, and compares its
 * printed tree. */
static Node *assert_tree(const char *text, const char *want)
{
        uint32_t before = dl.n;
        Node *n = parse(text);
        cr_assert_not_null(n, "`%s` did not parse: %s", text, dl.n ? dl.v[dl.n - 1].message : "(no diagnostic)");
        cr_assert_eq(dl.n, before, "`%s`: unexpected diagnostic: %s", text, dl.v[dl.n - 1].message);
        const char *got = show(n);
        cr_assert_str_eq(got, want, "`%s`\n   got: %s\n  want: %s", text, got, want);
        return n;
}

/* Parses text, which must fail with exactly ndiags diagnostics, the first
 * of them code at col (width len) with message msg (NULL: not checked). */
static const Diag *assert_error_n(const char *text, uint32_t ndiags, DiagCode code, uint32_t col, uint32_t len,
                                  const char *msg)
{
        diag_list_deinit(&dl);
        Node *n = parse(text);
        cr_assert_null(n, "`%s` parsed as %s", text, n ? show(n) : "");
        cr_assert_eq(dl.n, ndiags, "`%s`: %u diagnostics, want %u (first: %s)", text, dl.n, ndiags,
                     dl.n ? dl.v[0].message : "none");
        const Diag *d = &dl.v[0];
        cr_assert_eq(d->code, code, "`%s`: %s (%s), want %s", text, diag_code_str(d->code), d->message,
                     diag_code_str(code));
        cr_assert_str_eq(d->file, "rules.yaml");
        cr_assert_eq(d->line, 1);
        cr_assert_eq(d->col, col, "`%s`: %s at column %u, want %u", text, d->message, d->col, col);
        cr_assert_eq(d->len, len, "`%s`: width %u, want %u", text, d->len, len);
        if (msg)
                cr_assert_str_eq(d->message, msg, "`%s`", text);
        return d;
}

static const Diag *assert_error(const char *text, uint32_t col, uint32_t len, const char *msg)
{
        return assert_error_n(text, 1, DIAG_E020, col, len, msg);
}

/* Every node of the tree carries the source id and a range inside the
 * text. */
static void assert_ranges(const Node *n)
{
        if (!n)
                return;
        cr_assert_eq(n->src_id, 42, "node %s has src_id %u", show(n), n->src_id);
        cr_assert_leq(n->off + n->len, src.len, "node out of the text");
        cr_assert_gt(n->len, 0);
        assert_ranges(n->a);
        assert_ranges(n->b);
        assert_ranges(n->where);
        assert_ranges(n->window);
        for (uint32_t i = 0; i < n->nargs; i++)
                assert_ranges(n->args[i]);
}

static void assert_text(const Node *n, const char *want)
{
        cr_assert_eq(n->len, strlen(want), "node text '%.*s', want '%s'", (int)n->len, src.text + n->off, want);
        cr_assert_eq(memcmp(src.text + n->off, want, n->len), 0, "node text '%.*s', want '%s'", (int)n->len,
                     src.text + n->off, want);
}

/* ---- precedence: each level against the next ---- */

Test(parser, or_below_and)
{
        assert_tree("a or b and c", "(or a (and b c))");
        assert_tree("a and b or c", "(or (and a b) c)");
        assert_tree("a and b or c and d", "(or (and a b) (and c d))");
}

Test(parser, and_below_not)
{
        assert_tree("not a and b", "(and (not a) b)");
        assert_tree("a and not b", "(and a (not b))");
        assert_tree("not a or not b", "(or (not a) (not b))");
}

Test(parser, not_below_comparison)
{
        assert_tree("not a == b", "(not (== a b))");
        assert_tree("not x in y", "(not (in x y))");
        assert_tree("not x not in y", "(not (not in x y))");
}

Test(parser, comparison_below_additive)
{
        assert_tree("a + b == c - d", "(== (+ a b) (- c d))");
        assert_tree("a < b + 1", "(< a (+ b 1))");
        assert_tree("now - t > 5h", "(> (- now t) 5h)");
}

Test(parser, additive_below_multiplicative)
{
        assert_tree("a + b * c", "(+ a (* b c))");
        assert_tree("a * b + c", "(+ (* a b) c)");
        assert_tree("a - b % c", "(- a (% b c))");
        assert_tree("a / b - c", "(- (/ a b) c)");
}

Test(parser, multiplicative_below_unary_minus)
{
        assert_tree("-a * b", "(* (- a) b)");
        assert_tree("a * -b", "(* a (- b))");
        assert_tree("a - -b", "(- a (- b))");
}

Test(parser, unary_minus_below_primary)
{
        assert_tree("-f(x)", "(- (f x))");
        assert_tree("-(a + b)", "(- (+ a b))");
        assert_tree("-a.b", "(- a.b)");
        assert_tree("-30m", "(- 30m)");
}

Test(parser, whole_table_in_one_expression)
{
        assert_tree("a or b and not c == -d + e * f",
                    "(or a (and b (not (== c (+ (- d) (* e f))))))");
        assert_tree("f * -e + d == c and not b or a",
                    "(or (and (== (+ (* f (- e)) d) c) (not b)) a)");
}

Test(parser, parentheses_override)
{
        assert_tree("(a or b) and c", "(and (or a b) c)");
        assert_tree("a * (b + c)", "(* a (+ b c))");
        assert_tree("((a))", "a");
        assert_tree("((a or (b and (c))))", "(or a (and b c))");
        assert_tree("not (a and b)", "(not (and a b))");
        assert_tree("(a == b) == c", "(== (== a b) c)");
}

/* ---- associativity ---- */

Test(parser, left_associative)
{
        assert_tree("a - b - c", "(- (- a b) c)");
        assert_tree("a / b / c", "(/ (/ a b) c)");
        assert_tree("a + b - c + d", "(+ (- (+ a b) c) d)");
        assert_tree("a * b % c", "(% (* a b) c)");
        assert_tree("a or b or c", "(or (or a b) c)");
        assert_tree("a and b and c", "(and (and a b) c)");
}

Test(parser, prefix_operators_nest)
{
        assert_tree("not not a", "(not (not a))");
        assert_tree("- - a", "(- (- a))");
        assert_tree("not -a < 0", "(not (< (- a) 0))");
}

Test(parser, every_comparison_operator)
{
        static const struct {
                const char *text, *want;
        } cases[] = {
                {"a == b", "(== a b)"},         {"a != b", "(!= a b)"},
                {"a < b", "(< a b)"},           {"a <= b", "(<= a b)"},
                {"a > b", "(> a b)"},           {"a >= b", "(>= a b)"},
                {"a in b", "(in a b)"},         {"a not in b", "(not in a b)"},
                {"a contains \"x\"", "(contains a \"x\")"},
                {"a startswith \"x\"", "(startswith a \"x\")"},
                {"a endswith \"x\"", "(endswith a \"x\")"},
                {"a matches \"^SC[0-9]{14}$\"", "(matches a \"^SC[0-9]{14}$\")"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                Node *n = assert_tree(cases[i].text, cases[i].want);
                cr_assert_eq(n->kind, N_BINARY);
        }
        Node *n = assert_tree("x not in y", "(not in x y)");
        cr_assert_eq(n->op, T_NOT_IN);
        n = assert_tree("x in y", "(in x y)");
        cr_assert_eq(n->op, T_IN);
}

Test(parser, comparisons_do_not_chain)
{
        const Diag *d = assert_error("a == b == c", 8, 2, "expected 'and' or 'or' between two comparisons, found '=='");
        cr_assert_str_eq(d->hint, "comparisons do not chain: write a < b and b < c");
        assert_error("a < b in c", 7, 2, "expected 'and' or 'or' between two comparisons, found 'in'");
        assert_error("x in a not in b", 8, 6, "expected 'and' or 'or' between two comparisons, found 'not in'");
        assert_error("a < b + 1 < c", 11, 1, NULL);
}

Test(parser, not_in)
{
        assert_tree("x not in list", "(not in x list)");
        assert_tree("x not in [1, 2]", "(not in x [1, 2])");
        assert_tree("hazard not in toxic_hazards and a", "(and (not in hazard toxic_hazards) a)");
        assert_tree("x not\n  in y", "(not in x y)");
}

/* ---- literals, names, lists ---- */

Test(parser, number_literals)
{
        Node *n = assert_tree("12", "12");
        cr_assert_eq(n->kind, N_LIT);
        cr_assert_eq(n->lit.tag, VT_NUM);
        cr_assert_float_eq(n->lit.n, 12, 0);
        assert_tree("3.5", "3.5");
        assert_tree("1e3", "1000");
        assert_tree("0.1", "0.1");
        assert_tree("1234567.5", "1234567.5");
        assert_tree("1e20", "1e+20");
}

Test(parser, duration_literals)
{
        static const struct {
                const char *text;
                int64_t ms;
        } cases[] = {
                {"500ms", 500}, {"45s", 45000}, {"30m", 1800000}, {"12h", 43200000}, {"180d", 180LL * 86400000},
                {"2w", 14LL * 86400000},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                Node *n = parse(cases[i].text);
                cr_assert_not_null(n, "%s", cases[i].text);
                cr_assert_eq(n->kind, N_LIT);
                cr_assert_eq(n->lit.tag, VT_DUR, "%s", cases[i].text);
                cr_assert_eq(n->lit.ms, cases[i].ms, "%s", cases[i].text);
        }
        assert_tree("30m", "30m");
        assert_tree("180d", "180d");
        assert_tree("45s", "45s");
        assert_tree("500ms", "500ms");
}

Test(parser, string_literals)
{
        Node *n = assert_tree("\"fail\"", "\"fail\"");
        cr_assert_eq(n->lit.tag, VT_STR);
        cr_assert_eq(n->lit.s.len, 4);
        cr_assert_eq(memcmp(n->lit.s.p, "fail", 4), 0);
        assert_tree("'a\\'b\\n'", "\"a'b\\n\"");
        n = assert_tree("product.name contains \"婴幼儿配方奶粉\"", "(contains product.name \"婴幼儿配方奶粉\")");
        cr_assert_eq(n->b->lit.s.len, strlen("婴幼儿配方奶粉"));
        assert_tree("item == \"\\u94c5\"", "(== item \"铅\")");
}

Test(parser, string_literal_outlives_parse)
{
        /* tokens live in a scratch arena: the literal must be copied */
        char *text = strdup("x == \"abc\"");
        Node *n = parse(text);
        cr_assert_not_null(n);
        memset(text, '#', strlen(text));
        free(text);
        cr_assert_eq(n->b->lit.s.len, 3);
        cr_assert_eq(memcmp(n->b->lit.s.p, "abc", 3), 0);
        cr_assert_str_eq(n->a->name, "x");
}

Test(parser, keyword_literals)
{
        Node *n = assert_tree("true", "true");
        cr_assert_eq(n->lit.tag, VT_BOOL);
        cr_assert(n->lit.b);
        n = assert_tree("false", "false");
        cr_assert_eq(n->lit.tag, VT_BOOL);
        cr_assert_not(n->lit.b);
        n = assert_tree("null", "null");
        cr_assert_eq(n->lit.tag, VT_NULL);
        assert_tree("affected_goods_tested == false", "(== affected_goods_tested false)");
}

Test(parser, lists)
{
        Node *n = assert_tree("award_level in [\"national\", \"provincial\", \"prefecture\"]",
                              "(in award_level [\"national\", \"provincial\", \"prefecture\"])");
        cr_assert_eq(n->b->kind, N_LIST);
        cr_assert_eq(n->b->nargs, 3);
        assert_text(n->b, "[\"national\", \"provincial\", \"prefecture\"]");
        n = assert_tree("x in []", "(in x [])");
        cr_assert_eq(n->b->nargs, 0);
        assert_tree("x in [1, 2,]", "(in x [1, 2])");
        assert_tree("x in [-1, 2.5, \"a\", true, null, 30m]", "(in x [(- 1), 2.5, \"a\", true, null, 30m])");
        assert_tree("[[1], [a or b]]", "[[1], [(or a b)]]");
}

Test(parser, dotted_names)
{
        static const char *const names[] = {"result", "product.name", "enterprise.category",
                                             "state.flags.problem_lead", "credit_record.penalty.decision_no"};
        for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                Node *n = assert_tree(names[i], names[i]);
                cr_assert_eq(n->kind, N_NAME);
                cr_assert_str_eq(n->name, names[i]);
                cr_assert_eq(n->off, 0);
                cr_assert_eq(n->len, strlen(names[i]));
        }
        /* after a dot, a keyword is just a name */
        Node *n = assert_tree("list.for.in", "list.for.in");
        cr_assert_str_eq(n->name, "list.for.in");
}

Test(parser, current_event_fields)
{
        Node *n = assert_tree("$device_id", "$device_id");
        cr_assert_eq(n->kind, N_CUR);
        cr_assert_str_eq(n->name, "device_id");
        assert_text(n, "$device_id");
        n = assert_tree("$product.name", "$product.name");
        cr_assert_eq(n->kind, N_CUR);
        cr_assert_str_eq(n->name, "product.name");
        assert_tree("ticket_no == $ticket_no", "(== ticket_no $ticket_no)");
}

/* ---- calls and aggregates ---- */

Test(parser, calls)
{
        Node *n = assert_tree("exists(confirmed)", "(exists confirmed)");
        cr_assert_eq(n->kind, N_CALL);
        cr_assert_str_eq(n->name, "exists");
        cr_assert_eq(n->nargs, 1);
        cr_assert_eq(n->args[0]->kind, N_NAME);
        assert_tree("lower(product.name) == \"milk\"", "(== (lower product.name) \"milk\")");
        assert_tree("abs(measured - limit) > 0.5", "(> (abs (- measured limit)) 0.5)");
        n = assert_tree("f()", "(f)");
        cr_assert_eq(n->nargs, 0);
        n = assert_tree("nosuch(a, b or c, 3)", "(nosuch a (or b c) 3)");
        cr_assert_eq(n->nargs, 3);
        assert_tree("not exists(list.removed_at)", "(not (exists list.removed_at))");
        assert_tree("lower(lower(x))", "(lower (lower x))");
}

Test(parser, aggregate_names_without_parentheses_are_names)
{
        assert_tree("count > 3", "(> count 3)");
        assert_tree("max - min", "(- max min)");
        Node *n = assert_tree("x.count(a)", "(x.count a)");
        cr_assert_eq(n->kind, N_CALL);
}

static Node *assert_agg(const char *text, const char *want, AggKind kind, const char *type, const char *field,
                        const char *target, bool is_for)
{
        Node *n = assert_tree(text, want);
        cr_assert_eq(n->kind, N_AGG, "`%s`", text);
        cr_assert_eq(n->agg, kind, "`%s`", text);
        cr_assert_str_eq(n->agg_type, type);
        if (field)
                cr_assert_str_eq(n->agg_field, field);
        else
                cr_assert_null(n->agg_field);
        cr_assert_eq(n->agg_target_len, strlen(target));
        cr_assert_eq(memcmp(text + n->agg_target_off, target, strlen(target)), 0, "`%s`: target '%.*s'", text,
                     (int)n->agg_target_len, text + n->agg_target_off);
        cr_assert_eq(n->window_is_for, is_for);
        cr_assert_eq(n->off, 0);
        cr_assert_eq(n->len, strlen(text));
        assert_ranges(n);
        return n;
}

Test(parser, count)
{
        Node *n = assert_agg("count(sampling within 180d)", "(count sampling (within 180d))", AGG_COUNT,
                             "sampling", NULL, "sampling", false);
        cr_assert_str_eq(n->name, "count");
        cr_assert_null(n->where);
        cr_assert_eq(n->window->kind, N_LIT);
        cr_assert_eq(n->window->lit.ms, 180LL * 86400000);
        n = assert_agg("count(sampling where result == \"fail\" within 180d)",
                       "(count sampling (where (== result \"fail\")) (within 180d))", AGG_COUNT, "sampling", NULL,
                       "sampling", false);
        assert_text(n->where, "result == \"fail\"");
        assert_text(n->window, "180d");
}

Test(parser, sum_avg_min_max_distinct)
{
        assert_agg("sum(complaint.severity within 30d)", "(sum complaint.severity (within 30d))", AGG_SUM,
                   "complaint", "severity", "complaint.severity", false);
        assert_agg("sum(complaint.severity where verified within 30d)",
                   "(sum complaint.severity (where verified) (within 30d))", AGG_SUM, "complaint", "severity",
                   "complaint.severity", false);
        assert_agg("avg(coldchain.temp_c within 1h)", "(avg coldchain.temp_c (within 1h))", AGG_AVG, "coldchain",
                   "temp_c", "coldchain.temp_c", false);
        Node *n = assert_agg("avg(coldchain.temp_c where device_id == $device_id within 1h)",
                             "(avg coldchain.temp_c (where (== device_id $device_id)) (within 1h))", AGG_AVG,
                             "coldchain", "temp_c", "coldchain.temp_c", false);
        cr_assert_eq(n->where->b->kind, N_CUR);
        assert_agg("min(sampling.measured within 7d)", "(min sampling.measured (within 7d))", AGG_MIN, "sampling",
                   "measured", "sampling.measured", false);
        assert_agg("min(sampling.measured where confirmed within 7d)",
                   "(min sampling.measured (where confirmed) (within 7d))", AGG_MIN, "sampling", "measured",
                   "sampling.measured", false);
        assert_agg("max(coldchain.temp_c within 30m)", "(max coldchain.temp_c (within 30m))", AGG_MAX, "coldchain",
                   "temp_c", "coldchain.temp_c", false);
        assert_agg("max(coldchain.temp_c where door_open within 30m)",
                   "(max coldchain.temp_c (where door_open) (within 30m))", AGG_MAX, "coldchain", "temp_c",
                   "coldchain.temp_c", false);
        assert_agg("distinct(sampling.sample_code within 90d)", "(distinct sampling.sample_code (within 90d))",
                   AGG_DISTINCT, "sampling", "sample_code", "sampling.sample_code", false);
        assert_agg("distinct(credit_record.penalty.decision_no where is_penalty within 365d)",
                   "(distinct credit_record.penalty.decision_no (where is_penalty) (within 365d))", AGG_DISTINCT,
                   "credit_record", "penalty.decision_no", "credit_record.penalty.decision_no", false);
}

Test(parser, absent)
{
        Node *n = assert_agg("absent(coldchain for 2h)", "(absent coldchain (for 2h))", AGG_ABSENT, "coldchain", NULL,
                             "coldchain", true);
        cr_assert_str_eq(n->name, "absent");
        assert_agg("absent(coldchain where device_id == $device_id for 2h)",
                   "(absent coldchain (where (== device_id $device_id)) (for 2h))", AGG_ABSENT, "coldchain", NULL,
                   "coldchain", true);
}

Test(parser, window_keyword_is_checked_later)
{
        /* both keywords parse for every aggregate: the checker says which
         * one is allowed */
        assert_agg("count(sampling for 1d)", "(count sampling (for 1d))", AGG_COUNT, "sampling", NULL, "sampling",
                   true);
        assert_agg("absent(sampling within 1d)", "(absent sampling (within 1d))", AGG_ABSENT, "sampling", NULL,
                   "sampling", false);
}

Test(parser, missing_window_still_parses)
{
        Node *n = assert_agg("count(sampling)", "(count sampling)", AGG_COUNT, "sampling", NULL, "sampling", false);
        cr_assert_null(n->window);
        cr_assert_null(n->where);
        n = assert_agg("sum(coldchain.temp_c where a)", "(sum coldchain.temp_c (where a))", AGG_SUM, "coldchain",
                       "temp_c", "coldchain.temp_c", false);
        cr_assert_null(n->window);
        cr_assert_not_null(n->where);
}

Test(parser, aggregate_where_and_window_expressions)
{
        assert_tree("count(s where a or b and c within 1d)", "(count s (where (or a (and b c))) (within 1d))");
        assert_tree("count(s where kind == \"data_gap\" and duration_min > 120 within 30d) >= 3",
                    "(>= (count s (where (and (== kind \"data_gap\") (> duration_min 120))) (within 30d)) 3)");
        /* the window binds tighter than comparison */
        assert_tree("count(s within 1d + 2h)", "(count s (within (+ 1d 2h)))");
        assert_tree("count(s within d)", "(count s (within d))");
        assert_tree("count(s where x in [1, 2] within 7d)", "(count s (where (in x [1, 2])) (within 7d))");
        assert_tree("confirmed_fail and distinct(sampling.sample_code where confirmed_fail within 90d) >= 3",
                    "(and confirmed_fail (>= (distinct sampling.sample_code (where confirmed_fail) (within 90d)) 3))");
}

/* durations print in the largest unit that divides them (value.c) */
Test(parser, shipped_pack_expressions)
{
        assert_tree("kind == \"over_temp\" and exists(end) and affected_goods_tested == false",
                    "(and (and (== kind \"over_temp\") (exists end)) (== affected_goods_tested false))");
        assert_tree("status == \"refused\" or (initiated_by == \"ordered\" and status == \"planned\" and now - risk_known_at > 72h)",
                    "(or (== status \"refused\") (and (and (== initiated_by \"ordered\") (== status \"planned\")) (> (- now risk_known_at) 3d)))");
        assert_tree("confirmed_fail and not (hazard in toxic_hazards or hazard == \"quality_indicator\")",
                    "(and confirmed_fail (not (or (in hazard toxic_hazards) (== hazard \"quality_indicator\"))))");
        assert_tree("(product_class == \"chilled\" and temp_c > 8)\nor (product_class == \"frozen\" and temp_c > -18)",
                    "(or (and (== product_class \"chilled\") (> temp_c 8)) (and (== product_class \"frozen\") (> temp_c (- 18))))");
        assert_tree("kind == \"complaint\" and acceptance == \"pending\"\n"
                    "and absent(complaint where ticket_no == $ticket_no and acceptance != \"pending\" for 10d)",
                    "(and (and (== kind \"complaint\") (== acceptance \"pending\")) (absent complaint (where (and (== ticket_no $ticket_no) (!= acceptance \"pending\"))) (for 10d)))");
}

/* ---- ranges ---- */

Test(parser, node_ranges)
{
        Node *n = assert_tree("a and (b or c)", "(and a (or b c))");
        cr_assert_eq(n->off, 0);
        cr_assert_eq(n->len, 14);
        assert_text(n->a, "a");
        assert_text(n->b, "b or c"); /* its parentheses belong to the parent */
        assert_ranges(n);

        n = assert_tree("  x  ==  (\"y\")  ", "(== x \"y\")");
        assert_text(n, "x  ==  (\"y\")");
        assert_text(n->b, "\"y\"");

        n = assert_tree("not  -x", "(not (- x))");
        assert_text(n, "not  -x");
        assert_text(n->a, "-x");

        n = assert_tree("lower( a ) == f(b, c)", "(== (lower a) (f b c))");
        assert_text(n->a, "lower( a )");
        assert_text(n->b, "f(b, c)");
        assert_text(n->b->args[1], "c");

        n = assert_tree("x in [1, 2] and $y.z", "(and (in x [1, 2]) $y.z)");
        assert_text(n->a->b, "[1, 2]");
        assert_text(n->b, "$y.z");
}

Test(parser, node_ranges_with_chinese)
{
        Node *n = assert_tree("name == \"食品\" or count(sampling where item == \"铅\" within 30d) > 1",
                              "(or (== name \"食品\") (> (count sampling (where (== item \"铅\")) (within 30d)) 1))");
        assert_ranges(n);
        assert_text(n->a, "name == \"食品\"");
        assert_text(n->b->a, "count(sampling where item == \"铅\" within 30d)");
        assert_text(n->b->a->where, "item == \"铅\"");
        assert_text(n->b->a->window, "30d");
}

/* ---- node_clone and node_print ---- */

Test(parser, clone_is_deep)
{
        const char *text = "a in [1, 2] and count(s.f where $x == lower(y) within 1d) > -3 or not z";
        Node *n = parse(text);
        cr_assert_not_null(n);
        char *before = strdup(show(n));
        Node *c = node_clone(&ar, n);
        cr_assert_str_eq(show(c), before);
        cr_assert_neq(c, n);
        cr_assert_neq(c->a, n->a);
        cr_assert_neq(c->a->a->b, n->a->a->b);
        cr_assert_neq(c->a->a->b->args, n->a->a->b->args);
        cr_assert_neq(c->a->a->b->args[0], n->a->a->b->args[0]);
        Node *agg = c->a->b->a;
        cr_assert_eq(agg->kind, N_AGG);
        cr_assert_neq(agg->where, n->a->b->a->where);
        cr_assert_neq(agg->window, n->a->b->a->window);
        cr_assert_neq(agg->where->b->args[0], n->a->b->a->where->b->args[0]);
        /* the checker rewrites clones in place: the original must not move */
        c->a->a->b->args[0]->lit = value_num(99);
        agg->where->op = T_NE;
        c->b->a = NULL;
        cr_assert_str_eq(show(n), before);
        cr_assert_eq(c->off, n->off);
        cr_assert_eq(c->len, n->len);
        cr_assert_eq(c->src_id, 42);
        cr_assert_null(node_clone(&ar, NULL));
        free(before);
}

Test(parser, print_checked_literals)
{
        static char *vals[] = {"pass", "fail"};
        EnumDef en = {.name = "sampling.result", .values = vals, .nvalues = 2};
        Node n = {.kind = N_LIT, .lit = value_enum(1), .en = &en};
        cr_assert_str_eq(show(&n), "#fail");
        n.en = NULL;
        cr_assert_str_eq(show(&n), "#1");
        n.lit = value_time(0);
        cr_assert_str_eq(show(&n), "@1970-01-01T00:00:00Z");
        n.lit = value_num(-2.5);
        cr_assert_str_eq(show(&n), "-2.5");
        n.lit = value_str("a\"b", 3);
        cr_assert_str_eq(show(&n), "\"a\\\"b\"");
        cr_assert_str_eq(show(NULL), "<null>");
}

/* ---- syntax errors ---- */

Test(parser, empty_expression)
{
        assert_error("", 1, 0, "expected an expression, found end of expression");
        assert_error("   ", 4, 0, "expected an expression, found end of expression");
}

Test(parser, missing_operand)
{
        assert_error("a and", 6, 0, "expected an operand after 'and', found end of expression");
        assert_error("a or or b", 6, 2, "expected an operand after 'or', found 'or'");
        assert_error("a ==", 5, 0, "expected an operand after '==', found end of expression");
        assert_error("a == )", 6, 1, "expected an operand after '==', found ')'");
        assert_error("a + * b", 5, 1, "expected an operand after '+', found '*'");
        assert_error("not", 4, 0, "expected an operand after 'not', found end of expression");
        assert_error("-", 2, 0, "expected an operand after '-', found end of expression");
        assert_error("()", 2, 1, "expected an operand after '(', found ')'");
        assert_error("and b", 1, 3, "expected an expression, found 'and'");
        const Diag *d = assert_error("a == not b", 6, 3, "expected an operand after '==', found 'not'");
        cr_assert_not_null(d->hint);
        d = assert_error("not in x", 1, 6, "expected an expression, found 'not in'");
        cr_assert_not_null(d->hint);
        d = assert_error(".5", 1, 1, "expected an expression, found '.'");
        cr_assert_str_eq(d->hint, "numbers start with a digit: 0.5");
        d = assert_error("where a", 1, 5, "expected an expression, found 'where'");
        cr_assert_not_null(strstr(d->hint, "aggregate"));
}

Test(parser, trailing_tokens)
{
        const Diag *d = assert_error("a b", 3, 1, "expected an operator or end of expression, found name 'b'");
        cr_assert_not_null(d->hint);
        d = assert_error("a or b)", 7, 1, "expected an operator or end of expression, found ')'");
        cr_assert_str_eq(d->hint, "this ')' has no matching '('");
        d = assert_error("a AND b", 3, 3, "expected an operator or end of expression, found name 'AND'");
        cr_assert_str_eq(d->hint, "keywords are lowercase: and");
        assert_error("result \"fail\"", 8, 6, "expected an operator or end of expression, found string \"fail\"");
        assert_error("x == 1 2", 8, 1, "expected an operator or end of expression, found number 2");
        assert_error("x > 30m 1d", 9, 2, "expected an operator or end of expression, found duration 1d");
        assert_error("a not b", 3, 3, "expected an operator or end of expression, found 'not'");
        assert_error("a]", 2, 1, "expected an operator or end of expression, found ']'");
}

Test(parser, unclosed_parenthesis)
{
        assert_error("(a or b", 8, 0, "expected ')' to close the '(' at column 1, found end of expression");
        assert_error("a and (b or (c)", 16, 0, "expected ')' to close the '(' at column 7, found end of expression");
        assert_error("(a b)", 4, 1, "expected ')' to close the '(' at column 1, found name 'b'");
        assert_error("(a, b)", 3, 1, "expected ')' to close the '(' at column 1, found ','");
}

Test(parser, bad_lists)
{
        assert_error("x in [1 2]", 9, 1, "expected ',' or ']' in the list opened at column 6, found number 2");
        assert_error("x in [1, 2", 11, 0, "expected ',' or ']' in the list opened at column 6, found end of expression");
        assert_error("x in [1,, 2]", 9, 1, "expected an operand after ',', found ','");
        assert_error("x in [,]", 7, 1, "expected an operand after '[', found ','");
}

Test(parser, bad_calls)
{
        assert_error("f(a b)", 5, 1, "expected ',' or ')' after an argument of f() (opened at column 2), found name 'b'");
        assert_error("exists(a", 9, 0, "expected ',' or ')' after an argument of exists() (opened at column 7), found end of expression");
        assert_error("f(a,)", 5, 1, "expected an operand after ',', found ')'");
}

Test(parser, bad_names)
{
        const Diag *d = assert_error("a.", 3, 0, "expected a name after '.', found end of expression");
        cr_assert_not_null(d->hint);
        assert_error("a.1 == 2", 3, 1, "expected a name after '.', found number 1");
        assert_error("a..b", 3, 1, "expected a name after '.', found '.'");
        assert_error("$", 2, 0, "expected a field name after '$', found end of expression");
        assert_error("$1", 2, 1, "expected a field name after '$', found number 1");
        assert_error("x == $\"a\"", 7, 3, "expected a field name after '$', found string \"a\"");
}

Test(parser, bad_aggregates)
{
        const Diag *d = assert_error("count()", 7, 1, "expected an event type after 'count(', found ')'");
        cr_assert_not_null(strstr(d->hint, "count(TYPE [where COND] within D)"));
        assert_error("count(", 7, 0, "expected an event type after 'count(', found end of expression");
        assert_error("count(1 within 1d)", 7, 1, "expected an event type after 'count(', found number 1");
        d = assert_error("sum($x within 1d)", 5, 1, "expected an event type after 'sum(', found '$'");
        cr_assert_not_null(strstr(d->hint, "TYPE.FIELD"));
        d = assert_error("absent(\"x\" for 1d)", 8, 3, "expected an event type after 'absent(', found string \"x\"");
        cr_assert_not_null(strstr(d->hint, "for D"));
        assert_error("count(sampling x)", 16, 1, "expected 'where', 'within' or ')' after 'count(sampling', found name 'x'");
        assert_error("absent(sampling, 1d)", 16, 1, "expected 'where', 'for' or ')' after 'absent(sampling', found ','");
        assert_error("count(sampling where)", 21, 1, "expected an operand after 'where', found ')'");
        assert_error("count(sampling where within 1d)", 22, 6, "expected an operand after 'where', found 'within'");
        assert_error("count(sampling within)", 22, 1, "expected an operand after 'within', found ')'");
        assert_error("count(s where a b)", 17, 1, "expected 'within' or ')' after the where condition of count(), found name 'b'");
        assert_error("count(s where a within 3d for 2h)", 27, 3, "expected ')' to close the 'count(' at column 6, found 'for'");
        assert_error("count(s within 3d", 18, 0, "expected ')' to close the 'count(' at column 6, found end of expression");
        assert_error("count(s within 3d == 1)", 19, 2, "expected ')' to close the 'count(' at column 6, found '=='");
        assert_error("count(s.)", 9, 1, "expected a name after '.', found ')'");
}

Test(parser, only_the_first_syntax_error)
{
        assert_error_n("a and or b) (", 1, DIAG_E020, 7, 2, "expected an operand after 'and', found 'or'");
        assert_error_n("(a b) c d ]", 1, DIAG_E020, 4, 1, NULL);
}

Test(parser, lexer_errors_are_not_repeated)
{
        /* the lexer's error only: the '=' is not also "expected an operator" */
        const Diag *d = assert_error_n("a = b", 1, DIAG_E020, 3, 1, "expected an operator, found '='");
        cr_assert_str_eq(d->hint, "compare with ==");
        assert_error_n("a == @ b", 1, DIAG_E020, 6, 1, NULL);
        assert_error_n("\"abc", 1, DIAG_E021, 1, 1, NULL);
        assert_error_n("x == 'abc and y", 1, DIAG_E021, 6, 1, NULL);
        /* the unclosed string swallowed the ')': not a second error */
        assert_error_n("(a or b == \"x)", 1, DIAG_E021, 12, 1, NULL);
        assert_error_n("a && b", 1, DIAG_E020, 3, 2, NULL);
        assert_error_n("x 12y", 1, DIAG_E023, 3, 3, NULL);
}

Test(parser, every_lexer_error_then_the_first_syntax_error)
{
        /* a bad literal stands in for an operand: a real syntax error after
         * it is still found */
        assert_error_n("12x > 3 and", 2, DIAG_E023, 1, 3, "expected a number or a duration, found '12x'");
        cr_assert_eq(dl.v[1].code, DIAG_E020);
        cr_assert_eq(dl.v[1].col, 12);
        cr_assert_str_eq(dl.v[1].message, "expected an operand after 'and', found end of expression");

        assert_error_n("x == 12x or y == 3y", 2, DIAG_E023, 6, 3, NULL);
        cr_assert_eq(dl.v[1].code, DIAG_E023);
        cr_assert_eq(dl.v[1].col, 18);

        assert_error_n("x == \"\\q\" and count(s within 1.5h) > 1", 2, DIAG_E023, 7, 2, NULL);
        cr_assert_eq(dl.v[1].code, DIAG_E023);
        cr_assert_eq(dl.v[1].col, 30);
        cr_assert_str_eq(dl.v[1].hint, "durations are a number followed by ms, s, m, h, d or w");

        /* a lexer error is not a reason for an expression that parses to
         * come back */
        assert_error_n("x == 3.4.5", 1, DIAG_E023, 6, 5, NULL);
}

Test(parser, error_columns_count_code_points)
{
        assert_error("x == \"食品\" and", 14, 0, "expected an operand after 'and', found end of expression");
        assert_error("item == \"铅(以Pb计)\" name", 19, 4, "expected an operator or end of expression, found name 'name'");
        assert_error("(\"婴幼儿\" or b", 12, 0, "expected ')' to close the '(' at column 1, found end of expression");
}

Test(parser, long_found_text_is_cut)
{
        assert_error("a \"0123456789012345678901234567890123456789012345\"", 3, 48,
                     "expected an operator or end of expression, found string \"012345678901234567890123456789012345678...");
        assert_error("a \"食品食品食品食品食品食品食品食品\"", 3, 18,
                     "expected an operator or end of expression, found string \"食品食品食品食品食品食品食...");
}

static SrcPos test_map(const ExprSrc *s, uint32_t off, uint32_t len)
{
        /* as if the expression were a folded scalar: one line per 10 bytes */
        (void)s;
        return (SrcPos){.file = "mapped.yaml", .line = 20 + off / 10, .col = 7 + off % 10, .len = len};
}

Test(parser, positions_go_through_the_map)
{
        const char *text = "(a or     b and      c";
        src = (ExprSrc){.id = 42, .file = "rules.yaml", .text = text, .len = strlen(text), .map = test_map};
        Node *n = expr_parse(&ar, &src, &dl);
        cr_assert_null(n);
        cr_assert_eq(dl.n, 1);
        cr_assert_str_eq(dl.v[0].file, "mapped.yaml");
        cr_assert_eq(dl.v[0].line, 22);
        cr_assert_eq(dl.v[0].col, 9);
        cr_assert_str_eq(dl.v[0].message, "expected ')' to close the '(' at line 20, column 7, found end of expression");
}

Test(parser, nesting_is_bounded)
{
        Buf b = {0};
        for (int i = 0; i < 5000; i++)
                buf_putc(&b, '(');
        buf_putc(&b, 'a');
        for (int i = 0; i < 5000; i++)
                buf_putc(&b, ')');
        const Diag *d = assert_error(b.p, 201, 1, NULL);
        cr_assert_not_null(strstr(d->message, "nested"));
        buf_free(&b);

        for (int i = 0; i < 5000; i++)
                buf_puts(&b, "not ");
        buf_putc(&b, 'a');
        d = assert_error(b.p, 801, 3, NULL);
        buf_free(&b);

        for (int i = 0; i < 5000; i++)
                buf_puts(&b, "f(");
        for (int i = 0; i < 5000; i++)
                buf_putc(&b, ')');
        assert_error(b.p, 201, 1, NULL);
        buf_free(&b);

        /* 200 levels are fine */
        for (int i = 0; i < 199; i++)
                buf_putc(&b, '(');
        buf_putc(&b, 'a');
        for (int i = 0; i < 199; i++)
                buf_putc(&b, ')');
        cr_assert_not_null(parse(b.p));
        buf_free(&b);
}

Test(parser, operator_chains_are_bounded)
{
        Buf b = {0};
        buf_putc(&b, 'a');
        for (int i = 0; i < 999; i++)
                buf_puts(&b, " or a");
        Node *n = parse(b.p);
        cr_assert_not_null(n, "1000 operands are fine");
        cr_assert_eq(dl.n, 0);
        buf_puts(&b, " or a");
        const Diag *d = assert_error(b.p, 4998, 2, NULL);
        cr_assert_not_null(strstr(d->message, "chain"));
        buf_free(&b);
}
