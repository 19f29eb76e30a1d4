/*
 * Unit tests of src/rules/check.c, the semantic checker: each check is
 * fed a small rule that breaks it and must answer with its own code, at
 * the position of the offending token, with its message and hint; every
 * error of a file is reported (checking goes on after the first); literals
 * are coerced to the type of what they are compared with; conditions
 * that are constant are reported.
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
        "  enterprise:\n"
        "    fields: { category: [dairy, meat], haccp: bool, name: string }\n"
        "  sampling:\n"
        "    fields:\n"
        "      result: [pass, fail]\n"
        "      confirmed: bool\n"
        "      measured: number\n"
        "      limit: number\n"
        "      item: string\n"
        "      notified_at: time\n"
        "  complaint:\n"
        "    fields: { verified: bool, item: string }\n";

static const char grading[] =
        "grades:\n"
        "  - { grade: A, max: 30, mode: double_random, inspections_per_year: 1 }\n"
        "  - { grade: D, mode: key_inspection, inspections_per_year: 4 }\n"
        "overrides:\n"
        "  - { when: state.flags.lead, mode: flying }\n";

/* Every rules file sets the flag grading reads. */
static const char lead[] = "  - { id: x.lead, on: complaint, when: verified, flags: { lead: 30d } }\n";

static int load(const char *rules_body, DiagList *dl, RuleSet **rs)
{
        char *r = xasprintf("lists:\n  toxic: [a, b]\nrules:\n%s%s", lead, rules_body);
        const char *names[] = {"schema.yaml", "grading.yaml", "rules.yaml"};
        const char *texts[] = {schema, grading, r};
        size_t lens[] = {strlen(schema), strlen(grading), strlen(r)};
        int rc = rules_load_mem("t", names, texts, lens, 3, dl, rs);
        free(r);
        return rc;
}

/* The first diagnostic with code: its "line:col", message and hint (the
 * rule under test is on line 5 of rules.yaml). */
static const Diag *expect(const DiagList *dl, DiagCode code, uint32_t line, uint32_t col, const char *message)
{
        for (uint32_t i = 0; i < dl->n; i++) {
                const Diag *d = &dl->v[i];
                if (d->code != code)
                        continue;
                cr_assert_str_eq(d->file, "t/rules.yaml");
                cr_assert_eq(d->line, line, "%s at %u:%u, want line %u: %s", diag_code_str(code), d->line, d->col, line,
                             d->message);
                cr_assert_eq(d->col, col, "%s at %u:%u, want col %u: %s", diag_code_str(code), d->line, d->col, col,
                             d->message);
                if (message)
                        cr_assert_str_eq(d->message, message);
                return d;
        }
        cr_assert_fail("no %s among %u diagnostics", diag_code_str(code), dl->n);
        return NULL;
}

/* Load one broken rule; it must be refused with code at line 5, col. */
static const Diag *one(DiagList *dl, const char *rule, DiagCode code, uint32_t col, const char *message)
{
        RuleSet *rs = NULL;
        int r = load(rule, dl, &rs);
        cr_assert_eq(r, 1, "refused: %s", rule);
        return expect(dl, code, 5, col, message);
}

Test(check, unknown_field_with_a_suggestion)
{
        DiagList dl = {0};
        const Diag *d = one(&dl, "  - { id: r, on: sampling, when: mesured > 3 }\n", DIAG_E031, 34,
                            "unknown field 'mesured' of sampling");
        cr_assert_not_null(d->hint);
        cr_assert_not_null(strstr(d->hint, "did you mean 'measured'?"), "%s", d->hint);
        cr_assert_eq(d->len, 7, "the caret spans the name");
        diag_list_deinit(&dl);
        /* a field of another type than the rule's */
        one(&dl, "  - { id: r, on: complaint, when: verified and measured > 3 }\n", DIAG_E031, 48,
            "unknown field 'measured' of complaint");
        diag_list_deinit(&dl);
        /* the profile */
        d = one(&dl, "  - { id: r, on: sampling, when: enterprise.categry == \"dairy\" }\n", DIAG_E031, 34, NULL);
        cr_assert_not_null(strstr(d->message, "categry"), "%s", d->message);
        diag_list_deinit(&dl);
}

Test(check, enum_values_are_checked)
{
        DiagList dl = {0};
        const Diag *d = one(&dl, "  - { id: r, on: sampling, when: result == \"failed\" }\n", DIAG_E032, 44,
                            "'failed' is not a value of sampling.result");
        cr_assert_not_null(strstr(d->hint, "fail"), "%s", d->hint);
        diag_list_deinit(&dl);
        /* in a list too */
        one(&dl, "  - { id: r, on: sampling, when: 'result in [\"pass\", \"flop\"]' }\n", DIAG_E032, 54, NULL);
        diag_list_deinit(&dl);
}

Test(check, type_mismatches)
{
        DiagList dl = {0};
        one(&dl, "  - { id: r, on: sampling, when: measured > \"high\" }\n", DIAG_E033, 34,
            "cannot compare number with string");
        diag_list_deinit(&dl);
        one(&dl, "  - { id: r, on: sampling, when: item + 1 > 2 }\n", DIAG_E033, 34, NULL);
        diag_list_deinit(&dl);
        /* a condition must be a bool */
        one(&dl, "  - { id: r, on: sampling, when: measured }\n", DIAG_E033, 34, NULL);
        diag_list_deinit(&dl);
        one(&dl, "  - { id: r, on: sampling, when: measured contains \"x\" }\n", DIAG_E033, 34, NULL);
        diag_list_deinit(&dl);
}

Test(check, lists_functions_and_references)
{
        DiagList dl = {0};
        const Diag *d = one(&dl, "  - { id: r, on: sampling, when: item in toxc }\n", DIAG_E034, 42, "unknown list 'toxc'");
        cr_assert_not_null(strstr(d->hint, "toxic"), "%s", d->hint);
        diag_list_deinit(&dl);
        one(&dl, "  - { id: r, on: sampling, when: 'item in [item, \"a\"]' }\n", DIAG_E046, 44,
            "a list item must be a literal");
        diag_list_deinit(&dl);
        d = one(&dl, "  - { id: r, on: sampling, when: lowr(item) == \"a\" }\n", DIAG_E037, 34, "unknown function 'lowr'");
        cr_assert_not_null(strstr(d->hint, "did you mean 'lower'?"), "%s", d->hint);
        diag_list_deinit(&dl);
        one(&dl, "  - { id: r, on: sampling, when: 'abs(measured, limit) > 1' }\n", DIAG_E038, 35,
            "abs takes exactly one argument, not 2");
        diag_list_deinit(&dl);
        one(&dl, "  - { id: r, on: sampling, when: $measured > 1 }\n", DIAG_E040, 34, NULL);
        diag_list_deinit(&dl);
        /* at the group the engine finds unclosed */
        one(&dl, "  - { id: r, on: sampling, when: item matches \"(\" }\n", DIAG_E022, 48, NULL);
        diag_list_deinit(&dl);
}

Test(check, state_flags_and_aggregates)
{
        DiagList dl = {0};
        const Diag *d = one(&dl, "  - { id: r, on: sampling, when: state.flags.laed }\n", DIAG_E041, 34,
                            "no rule sets flag 'laed'");
        cr_assert_not_null(strstr(d->hint, "lead"), "%s", d->hint);
        diag_list_deinit(&dl);
        one(&dl, "  - { id: r, on: sampling, when: state.scor > 1 }\n", DIAG_E042, 34, "unknown state value 'state.scor'");
        diag_list_deinit(&dl);
        one(&dl, "  - { id: r, on: sampling, when: count(sampling where count(complaint within 1d) > 0 within 30d) > 1 }\n",
            DIAG_E039, 55, "aggregates cannot be nested");
        diag_list_deinit(&dl);
        one(&dl, "  - { id: r, on: sampling, when: count(sampling within 0d) > 1 }\n", DIAG_E007, 56, NULL);
        diag_list_deinit(&dl);
        one(&dl, "  - { id: r, on: sampling, when: count(sampling where measured within 30d) > 1 }\n", DIAG_E033, 55,
            "where needs a condition, found number");
        diag_list_deinit(&dl);
        /* profile rules are recomputed from the profile alone */
        one(&dl, "  - { id: r, on: enterprise, when: count(sampling within 30d) > 1 }\n", DIAG_E039, 36, NULL);
        diag_list_deinit(&dl);
}

/* A file with several problems reports each, not only the first. */
Test(check, every_error_is_reported)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        int r = load("  - { id: r1, on: sampling, when: mesured > 3 }\n"
                     "  - { id: r2, on: sampling, when: result == \"failed\" }\n"
                     "  - { id: r3, on: sampling, when: item in toxc }\n",
                     &dl, &rs);
        cr_assert_eq(r, 1);
        cr_assert_eq(dl.nerrors, 3, "%u errors", dl.nerrors);
        expect(&dl, DIAG_E031, 5, 35, NULL);
        expect(&dl, DIAG_E032, 6, 45, NULL);
        expect(&dl, DIAG_E034, 7, 43, NULL);
        diag_list_deinit(&dl);
}

Test(check, constant_conditions_are_reported)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        /* comparing with null can never hold: null compares with nothing */
        int r = load("  - { id: r1, on: sampling, when: item == null or measured > 1 }\n"
                     "  - { id: r2, on: sampling, when: 2 > 1 }\n"
                     "  - { id: r3, on: sampling, when: 1 > 2 }\n",
                     &dl, &rs);
        cr_assert_eq(r, 0, "warnings do not refuse the rules");
        cr_assert_eq(dl.nerrors, 0);
        expect(&dl, DIAG_W104, 5, 35, NULL);
        const Diag *d = expect(&dl, DIAG_W106, 6, 35, NULL);
        cr_assert_not_null(strstr(d->message, "always true"), "%s", d->message);
        d = NULL;
        for (uint32_t i = 0; i < dl.n; i++)
                if (dl.v[i].code == DIAG_W104 && dl.v[i].line == 7)
                        d = &dl.v[i];
        cr_assert_not_null(d, "1 > 2 is always false");
        cr_assert_not_null(strstr(d->message, "always false"), "%s", d->message);
        rules_unref(rs);
        diag_list_deinit(&dl);
}

/* Literals take the type of what they are compared with: a time string
 * against a time field is a time, an enum name an enum. */
Test(check, literals_are_coerced)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        int r = load("  - { id: r1, on: sampling, when: notified_at < \"2025-03-02T10:15:00+08:00\" and result == \"fail\" }\n",
                     &dl, &rs);
        if (r)
                diag_print_text(stderr, &dl, false);
        cr_assert_eq(r, 0);
        const Rule *ru = rules_find(rs, "r1");
        Value ev[16] = {0};
        int32_t t = rules_type_id(rs, "sampling");
        const EventType *et = &rs->schema.types[t];
        int32_t s_time = -1, s_res = -1;
        for (uint32_t i = 0; i < et->nfields; i++) {
                if (strcmp(et->fields[i].path, "notified_at") == 0)
                        s_time = (int32_t)et->fields[i].slot;
                if (strcmp(et->fields[i].path, "result") == 0)
                        s_res = (int32_t)et->fields[i].slot;
        }
        cr_assert(s_time >= 0 && s_res >= 0 && rs->schema.nslots <= 16);
        int64_t when;
        cr_assert_eq(time_parse("2025-03-02T02:15:00Z", 20, &when), 0);
        ev[s_time] = (Value){.tag = VT_TIME, .ms = when - 1};
        ev[s_res] = (Value){.tag = VT_ENUM, .e = 1}; /* fail */
        VmFrame f = {.event = ev, .cur = ev};
        cr_assert(vm_test(rs, ru->when, &f), "one ms before the instant, written with another offset");
        ev[s_time].ms = when;
        cr_assert(!vm_test(rs, ru->when, &f));
        ev[s_time].ms = when - 1;
        ev[s_res].e = 0;
        cr_assert(!vm_test(rs, ru->when, &f));
        rules_unref(rs);
        diag_list_deinit(&dl);
        /* a time string that is not a time */
        one(&dl, "  - { id: r, on: sampling, when: notified_at < \"yesterday\" }\n", DIAG_E023, 48, NULL);
        diag_list_deinit(&dl);
}
