/*
 * Unit tests of src/rules/compile.c (with the folding of src/rules/operators.c
 * it compiles): the code small rules compile to, as the disassembler shows
 * it; constant folding; the exact stack depth of a program; the constant
 * pool and constant sets (sorted, one entry per value: equal means the same
 * tag and the same bits, so 0 and -0 are two entries that compare equal);
 * fingerprints by meaning; message templates.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/rules.h"
#include "include/riskd/util.h"

static const char schema[] =
        "envelope: { id: event_id, type: event_type, enterprise: enterprise_id, time: occurred_at }\n"
        "profile: enterprise\n"
        "types:\n"
        "  enterprise: { fields: { name: string } }\n"
        "  sampling:\n"
        "    fields:\n"
        "      result: [pass, fail]\n"
        "      confirmed: bool\n"
        "      measured: number\n"
        "      limit: number\n"
        "      item: string\n";

static const char grading[] =
        "grades:\n"
        "  - { grade: A, max: 30, mode: double_random, inspections_per_year: 1 }\n"
        "  - { grade: D, mode: key_inspection, inspections_per_year: 4 }\n";

static RuleSet *load(const char *rules)
{
        const char *names[] = {"schema.yaml", "grading.yaml", "rules.yaml"};
        const char *texts[] = {schema, grading, rules};
        size_t lens[] = {strlen(schema), strlen(grading), strlen(rules)};
        DiagList dl = {0};
        RuleSet *rs = NULL;
        int r = rules_load_mem("t", names, texts, lens, 3, &dl, &rs);
        if (r)
                diag_print_text(stderr, &dl, false);
        cr_assert_eq(r, 0);
        diag_list_deinit(&dl);
        return rs;
}

/* The rules file of one rule per condition, ids r1, r2, ... */
static RuleSet *load_conds(const char *const *conds, uint32_t n)
{
        Buf b = {0};
        buf_puts(&b, "rules:\n");
        for (uint32_t i = 0; i < n; i++)
                buf_printf(&b, "  - id: r%u\n    on: sampling\n    when: '%s'\n", i + 1, conds[i]);
        RuleSet *rs = load(b.p);
        buf_free(&b);
        return rs;
}

static const Rule *rule(const RuleSet *rs, uint32_t i)
{
        char id[16];
        snprintf(id, sizeof id, "r%u", i);
        const Rule *r = rules_find(rs, id);
        cr_assert_not_null(r, "%s", id);
        return r;
}

/* The disassembly of a rule's condition with the addresses taken out, so
 * that a listing does not depend on the rules before it. */
static char *listing(const RuleSet *rs, const Rule *r)
{
        Buf b = {0}, out = {0};
        rules_disasm_prog(rs, r->when, &b);
        for (const char *p = b.p; p && *p;) {
                const char *nl = strchr(p, '\n');
                size_t n = nl ? (size_t)(nl - p + 1) : strlen(p);
                /* "  0012  OP ..." -> "OP ..."; jump targets "-> 0015" stay */
                const char *q = p;
                while (q < p + n && *q == ' ')
                        q++;
                while (q < p + n && *q >= '0' && *q <= '9')
                        q++;
                while (q < p + n && *q == ' ')
                        q++;
                buf_put(&out, q, (size_t)(p + n - q));
                p += n;
        }
        buf_free(&b);
        return out.p ? out.p : xstrdup("");
}

static int32_t slot(const RuleSet *rs, const char *path)
{
        const EventType *et = &rs->schema.types[rules_type_id(rs, "sampling")];
        for (uint32_t i = 0; i < et->nfields; i++)
                if (strcmp(et->fields[i].path, path) == 0)
                        return (int32_t)et->fields[i].slot;
        cr_assert_fail("no field %s", path);
        return -1;
}

Test(compile, constants_fold_and_comparisons_fuse)
{
        const char *conds[] = {
                "measured > 2 * 3 + 4",                      /* r1: one constant, 10 */
                "confirmed or 1 > 2",                        /* r2: the false branch folds away */
                "item == \"x\" and \"abc\" contains \"b\"",  /* r3: a true conjunct folds away */
                "-3 < measured",                             /* r4: a constant on the left is not fused */
                "not (measured > 10 - 10)",                  /* r5 */
        };
        RuleSet *rs = load_conds(conds, ARRAY_SIZE(conds));
        char *s = listing(rs, rule(rs, 1));
        cr_assert_str_eq(s, "FIELD      3        ; measured\n"
                            "GT_C       0        ; 10\n"
                            "RET\n");
        free(s);
        s = listing(rs, rule(rs, 2));
        cr_assert_str_eq(s, "FIELD      2        ; confirmed\n"
                            "RET\n");
        free(s);
        s = listing(rs, rule(rs, 3));
        cr_assert_str_eq(s, "FIELD      5        ; item\n"
                            "EQ_C       1        ; \"x\"\n"
                            "RET\n");
        free(s);
        s = listing(rs, rule(rs, 4));
        cr_assert_str_eq(s, "CONST      2        ; -3\n"
                            "FIELD      3        ; measured\n"
                            "LT\n"
                            "RET\n");
        free(s);
        s = listing(rs, rule(rs, 5));
        cr_assert_str_eq(s, "FIELD      3        ; measured\n"
                            "GT_C       3        ; 0\n"
                            "NOT\n"
                            "RET\n");
        free(s);
        rules_unref(rs);
}

Test(compile, and_or_jump_past_the_rest)
{
        const char *conds[] = {"result == \"fail\" and confirmed and measured > limit"};
        RuleSet *rs = load_conds(conds, 1);
        Buf b = {0};
        rules_disasm_prog(rs, rule(rs, 1)->when, &b);
        uint32_t a = rs->progs[rule(rs, 1)->when].start;
        char *want = xasprintf("  %04u  FIELD      1        ; result\n"
                               "  %04u  EQ_C       0        ; enum#1 (fail)\n"
                               "  %04u  JF_KEEP    %-8u ; -> %04u\n"
                               "  %04u  FIELD      2        ; confirmed\n"
                               "  %04u  TOBOOL\n"
                               "  %04u  JF_KEEP    %-8u ; -> %04u\n"
                               "  %04u  FIELD      3        ; measured\n"
                               "  %04u  FIELD      4        ; limit\n"
                               "  %04u  GT\n"
                               "  %04u  TOBOOL\n"
                               "  %04u  RET\n",
                               a, a + 1, a + 2, a + 5, a + 5, a + 3, a + 4, a + 5, a + 10, a + 10, a + 6, a + 7,
                               a + 8, a + 9, a + 10);
        cr_assert_str_eq(b.p, want);
        cr_assert_eq(rs->progs[rule(rs, 1)->when].len, 11);
        free(want);
        buf_free(&b);
        rules_unref(rs);
}

/* max_stack is the deepest the program goes, exactly; the VM trusts it. */
Test(compile, stack_depth_is_exact)
{
        const char *conds[] = {
                "measured > limit",                                       /* 2 */
                "measured > 1 and limit > 2 or item == \"x\"",            /* 1 */
                "measured + limit * (measured - limit) > 0",              /* 4 */
                "measured - (limit - (measured - (limit - 1))) > 0",      /* 5 */
                "confirmed",                                              /* 1 */
                "abs(measured - limit) > limit / 2",                      /* 3 */
        };
        const uint32_t depth[] = {2, 1, 4, 5, 1, 3};
        RuleSet *rs = load_conds(conds, ARRAY_SIZE(conds));
        for (uint32_t i = 0; i < ARRAY_SIZE(conds); i++)
                cr_assert_eq(rs->progs[rule(rs, i + 1)->when].max_stack, depth[i], "%s: %u", conds[i],
                             rs->progs[rule(rs, i + 1)->when].max_stack);
        /* and the programs compute what they say */
        Value ev[16] = {0};
        cr_assert(rs->schema.nslots <= 16);
        VmFrame f = {.event = ev, .cur = ev};
        const double ms[] = {-3, 0, 1, 2.5, 7}, ls[] = {-2, 0, 1, 4};
        for (uint32_t i = 0; i < ARRAY_SIZE(ms); i++)
                for (uint32_t k = 0; k < ARRAY_SIZE(ls); k++) {
                        double m = ms[i], l = ls[k];
                        ev[slot(rs, "measured")] = (Value){.tag = VT_NUM, .n = m};
                        ev[slot(rs, "limit")] = (Value){.tag = VT_NUM, .n = l};
                        cr_assert_eq(vm_test(rs, rule(rs, 1)->when, &f), m > l);
                        cr_assert_eq(vm_test(rs, rule(rs, 3)->when, &f), m + l * (m - l) > 0, "%g %g", m, l);
                        cr_assert_eq(vm_test(rs, rule(rs, 4)->when, &f), m - (l - (m - (l - 1))) > 0, "%g %g", m, l);
                        cr_assert_eq(vm_test(rs, rule(rs, 6)->when, &f), (m - l < 0 ? l - m : m - l) > l / 2, "%g %g", m, l);
                }
        rules_unref(rs);
}

static uint32_t insn_arg(const RuleSet *rs, const Rule *r, uint32_t at)
{
        return rs->code[rs->progs[r->when].start + at] >> 8;
}

Test(compile, one_pool_entry_per_value)
{
        const char *conds[] = {
                "item == \"a\"",      /* r1 */
                "item != \"a\"",      /* r2: the same "a" */
                "measured == 1",      /* r3 */
                "measured < 1.0",     /* r4: the same 1 */
                "item == \"1\"",      /* r5: a string, not the number */
                "measured == 0",      /* r6 */
                "measured == -0",     /* r7: -0 is a value of its own... */
        };
        RuleSet *rs = load_conds(conds, ARRAY_SIZE(conds));
        /* the fused comparison's argument is the pool index */
        cr_assert_eq(insn_arg(rs, rule(rs, 1), 1), insn_arg(rs, rule(rs, 2), 1));
        cr_assert_eq(insn_arg(rs, rule(rs, 3), 1), insn_arg(rs, rule(rs, 4), 1));
        cr_assert_neq(insn_arg(rs, rule(rs, 3), 1), insn_arg(rs, rule(rs, 5), 1));
        cr_assert_neq(insn_arg(rs, rule(rs, 6), 1), insn_arg(rs, rule(rs, 7), 1));
        cr_assert_eq(rs->nconsts, 5, "\"a\", 1, \"1\", 0, -0: %u", rs->nconsts);
        /* ...that compares equal to 0 */
        Value ev[16] = {0};
        VmFrame f = {.event = ev, .cur = ev};
        ev[slot(rs, "measured")] = (Value){.tag = VT_NUM, .n = 0.0};
        cr_assert(vm_test(rs, rule(rs, 6)->when, &f));
        cr_assert(vm_test(rs, rule(rs, 7)->when, &f));
        ev[slot(rs, "measured")] = (Value){.tag = VT_NUM, .n = -0.0};
        cr_assert(vm_test(rs, rule(rs, 6)->when, &f));
        cr_assert(vm_test(rs, rule(rs, 7)->when, &f));
        rules_unref(rs);
}

Test(compile, sets_are_sorted_without_repeats)
{
        const char *conds[] = {
                "item in [\"b\", \"a\", \"b\", \"c\"]",
                "measured in [2, 1, 2.0, 1]",
                "result in [\"fail\", \"fail\"]",
                "measured in [0, -0]",
                "item not in [\"x\"]",
        };
        RuleSet *rs = load_conds(conds, ARRAY_SIZE(conds));
        const ConstSet *s = &rs->sets[insn_arg(rs, rule(rs, 1), 1)];
        cr_assert_eq(s->tag, VT_STR);
        cr_assert_eq(s->n, 3);
        cr_assert_eq(s->v[0].s.len, 1);
        cr_assert(s->v[0].s.p[0] == 'a' && s->v[1].s.p[0] == 'b' && s->v[2].s.p[0] == 'c');
        s = &rs->sets[insn_arg(rs, rule(rs, 2), 1)];
        cr_assert_eq(s->tag, VT_NUM);
        cr_assert_eq(s->n, 2);
        cr_assert(s->v[0].n == 1 && s->v[1].n == 2);
        s = &rs->sets[insn_arg(rs, rule(rs, 3), 1)];
        cr_assert_eq(s->tag, VT_ENUM);
        cr_assert_eq(s->n, 1);
        cr_assert_eq(s->bits[0], 2, "bit 1: fail");
        s = &rs->sets[insn_arg(rs, rule(rs, 4), 1)];
        cr_assert_eq(s->n, 2, "0 and -0 are two entries");
        char *l = listing(rs, rule(rs, 5));
        cr_assert_str_eq(l, "FIELD      5        ; item\n"
                            "NOT_IN     4        ; {\"x\"}\n"
                            "RET\n");
        free(l);

        Value ev[16] = {0};
        VmFrame f = {.event = ev, .cur = ev};
        const char *items[] = {"a", "b", "c", "d", ""};
        for (uint32_t i = 0; i < ARRAY_SIZE(items); i++) {
                ev[slot(rs, "item")] = (Value){.tag = VT_STR, .s = {.p = items[i], .len = (uint32_t)strlen(items[i])}};
                cr_assert_eq(vm_test(rs, rule(rs, 1)->when, &f), i < 3, "%s", items[i]);
        }
        const double ms[] = {1, 2, 1.5, 0, -0.0};
        for (uint32_t i = 0; i < ARRAY_SIZE(ms); i++) {
                ev[slot(rs, "measured")] = (Value){.tag = VT_NUM, .n = ms[i]};
                cr_assert_eq(vm_test(rs, rule(rs, 2)->when, &f), i < 2, "%g", ms[i]);
                cr_assert_eq(vm_test(rs, rule(rs, 4)->when, &f), i >= 3, "%g", ms[i]);
        }
        /* null is in no set and not "not in" one either */
        ev[slot(rs, "item")] = (Value){.tag = VT_NULL};
        cr_assert(!vm_test(rs, rule(rs, 1)->when, &f));
        cr_assert(!vm_test(rs, rule(rs, 5)->when, &f));
        rules_unref(rs);
}

/* A rule's fingerprint says what it computes: the same rule in two rule
 * sets (other rules before it, other pool indexes) has the same one; a
 * folded constant is the constant; another constant is another rule. */
Test(compile, fingerprints_by_meaning)
{
        RuleSet *a = load("rules:\n  - { id: r, on: sampling, when: measured > 10 }\n");
        RuleSet *b = load("rules:\n"
                          "  - { id: q, on: sampling, when: item == \"x\" and measured < 3 }\n"
                          "  - { id: r, on: sampling, when: measured > 2 * 5 }\n");
        RuleSet *c = load("rules:\n  - { id: r, on: sampling, when: measured > 11 }\n");
        RuleSet *d = load("rules:\n  - { id: r, on: sampling, when: measured >= 10 }\n");
        uint64_t fa = rules_find(a, "r")->fingerprint;
        cr_assert_neq(rules_find(a, "r")->when, rules_find(b, "r")->when, "the program indexes differ");
        cr_assert_eq(fa, rules_find(b, "r")->fingerprint);
        cr_assert_neq(fa, rules_find(c, "r")->fingerprint);
        cr_assert_neq(fa, rules_find(d, "r")->fingerprint);
        rules_unref(a);
        rules_unref(b);
        rules_unref(c);
        rules_unref(d);
}

Test(compile, message_templates)
{
        RuleSet *rs = load("rules:\n"
                           "  - id: r\n    on: sampling\n    when: confirmed\n"
                           "    message: \"样品 {item} 超标 {{注意}} {state.grade}/{ enterprise.name }{rule.id}\"\n");
        const Template *t = &rules_find(rs, "r")->message;
        cr_assert_eq(t->nparts, 7);
        const TplKind kinds[] = {TPL_TEXT, TPL_FIELD, TPL_TEXT, TPL_STATE_GRADE, TPL_TEXT, TPL_PROFILE, TPL_RULE_ID};
        for (uint32_t i = 0; i < 7; i++)
                cr_assert_eq(t->parts[i].kind, kinds[i], "part %u", i);
        cr_assert_str_eq(t->parts[0].text, "样品 ");
        cr_assert_eq(t->parts[1].slot, (uint32_t)slot(rs, "item"));
        cr_assert_str_eq(t->parts[2].text, " 超标 {注意} ", "{{ and }} are literal braces");
        cr_assert_eq(t->parts[2].len, strlen(" 超标 {注意} "));
        cr_assert_str_eq(t->parts[4].text, "/");
        rules_unref(rs);

        /* a placeholder that names nothing, and one never closed */
        const char *bad[] = {"message: \"x {itme} y\"", "message: \"x {item\""};
        const uint32_t col[] = {58, 57}; /* the name; the unclosed brace */
        for (uint32_t i = 0; i < 2; i++) {
                char *r = xasprintf("rules:\n  - { id: r, on: sampling, when: confirmed, %s }\n", bad[i]);
                const char *names[] = {"schema.yaml", "grading.yaml", "rules.yaml"};
                const char *texts[] = {schema, grading, r};
                size_t lens[] = {strlen(schema), strlen(grading), strlen(r)};
                DiagList dl = {0};
                RuleSet *x = NULL;
                cr_assert_eq(rules_load_mem("t", names, texts, lens, 3, &dl, &x), 1);
                cr_assert_eq(dl.nerrors, 1);
                const Diag *dg = NULL;
                for (uint32_t k = 0; k < dl.n; k++)
                        if (dl.v[k].code == DIAG_E043)
                                dg = &dl.v[k];
                cr_assert_not_null(dg);
                cr_assert_eq(dg->line, 2);
                cr_assert_eq(dg->col, col[i], "%s: col %u", bad[i], dg->col);
                if (i == 0)
                        cr_assert_not_null(strstr(dg->hint, "item"), "%s", dg->hint);
                diag_list_deinit(&dl);
                free(r);
        }
}
