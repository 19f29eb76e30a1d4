/*
 * The rule loader end to end: in-memory rules directories are loaded,
 * checked and compiled; the compiled conditions are run on hand-filled
 * events; the diagnostics of broken input are checked by code, position
 * and hint.
 */
#include <criterion/criterion.h>
#include <sys/stat.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/rules.h"
#include "include/riskd/util.h"

static const char schema[] =
        "envelope: { id: event_id, type: event_type, enterprise: enterprise_id, time: occurred_at }\n"
        "profile: enterprise\n"
        "enums:\n"
        "  hazard: [pesticide_residue, vet_drug_residue, microbial, heavy_metal, illegal_addition, banned_drug]\n"
        "types:\n"
        "  enterprise:\n"
        "    fields: { category: [dairy, meat, catering], haccp: bool, name: string }\n"
        "  sampling:\n"
        "    fields:\n"
        "      result: { type: enum, values: [pass, fail] }\n"
        "      hazard: { type: enum, enum: hazard }\n"
        "      confirmed: bool\n"
        "      measured: number\n"
        "      limit: number\n"
        "      item: string\n"
        "      product.name: string\n"
        "      notified_at: time\n"
        "  coldchain:\n"
        "    fields: { device_id: string, temp_c: number, door_open: bool }\n"
        "  complaint:\n"
        "    fields: { verified: bool, severity: number, item: string }\n";

static const char grading[] =
        "dwell: 30d\n"
        "grades:\n"
        "  - { grade: A, max: 30, mode: double_random, inspections_per_year: 1 }\n"
        "  - { grade: B, max: 45, mode: double_random, inspections_per_year: 2 }\n"
        "  - { grade: C, max: 60, mode: key_inspection, inspections_per_year: 3 }\n"
        "  - { grade: D, mode: key_inspection, inspections_per_year: 4 }\n"
        "overrides:\n"
        "  - { when: state.flags.problem_lead, mode: flying_inspection }\n"
        "  - { when: state.flags.dishonest, grade: D }\n"
        "  - { when: state.flags.bad_credit, inspections_per_year: \"+1\" }\n";

static const char base_rules[] =
        "lists:\n"
        "  toxic: [illegal_addition, banned_drug]\n"
        "macros:\n"
        "  confirmed_fail: result == \"fail\" and confirmed\n"
        "rules:\n"
        "  - id: sampling.toxic\n"
        "    on: sampling\n"
        "    when: confirmed_fail and hazard in toxic\n"
        "    severity: critical\n"
        "    score: 20\n"
        "    expires: 365d\n"
        "    max_score: 40\n"
        "    flags: { problem_lead: 180d, dishonest: forever }\n"
        "    actions: [trace_to_source, flying_inspection]\n"
        "    message: \"样品 {product.name} 不合格: {item} {measured} > {limit}\"\n"
        "  - id: coldchain.warm\n"
        "    on: coldchain\n"
        "    when: temp_c > 8 and not door_open\n"
        "    for: 30m\n"
        "    per: device_id\n"
        "    cooldown: 1h\n"
        "    flags: { bad_credit: 30d }\n"
        "    exceptions:\n"
        "      - name: calibration\n"
        "        fields: [device_id]\n"
        "        values: [[dev-cal]]\n"
        "  - id: coldchain.offline\n"
        "    on: coldchain\n"
        "    when: absent(coldchain where device_id == $device_id for 2h)\n"
        "    per: device_id\n" /* each device waits on its own (else W109) */
        "  - id: complaint.many\n"
        "    on: complaint\n"
        "    when: count(complaint where verified within 365d) >= 2\n"
        "    status: shadow\n"
        "  - id: profile.dairy\n"
        "    on: enterprise\n"
        "    when: category == \"dairy\" and not haccp\n"
        "    score: 13.5\n";

typedef struct Dir {
        const char *names[4];
        const char *texts[4];
        size_t lens[4];
        uint32_t n;
} Dir;

static Dir dir3(const char *s, const char *g, const char *r)
{
        Dir d = {.names = {"schema.yaml", "grading.yaml", "rules.yaml"}, .texts = {s, g, r}, .n = 3};
        for (int i = 0; i < 3; i++)
                d.lens[i] = strlen(d.texts[i]);
        return d;
}

static int load(const Dir *d, DiagList *dl, RuleSet **rs)
{
        return rules_load_mem("t", d->names, d->texts, d->lens, d->n, dl, rs);
}

static int load_rules(const char *rules, DiagList *dl, RuleSet **rs)
{
        Dir d = dir3(schema, grading, rules);
        return load(&d, dl, rs);
}

/* Bands only: broken rule files in the tests set no flags. */
static const char plain_grading[] =
        "grades:\n  - { grade: A, max: 30, mode: double_random, inspections_per_year: 1 }\n"
        "  - { grade: D, mode: key_inspection, inspections_per_year: 4 }\n";

static const Diag *find(const DiagList *dl, const char *code)
{
        for (uint32_t i = 0; i < dl->n; i++)
                if (strcmp(diag_code_str(dl->v[i].code), code) == 0)
                        return &dl->v[i];
        return NULL;
}

static int32_t slot_of(const RuleSet *rs, const char *type, const char *path)
{
        int32_t t = rules_type_id(rs, type);
        const EventType *et = &rs->schema.types[t];
        for (uint32_t i = 0; i < et->nfields; i++)
                if (strcmp(et->fields[i].path, path) == 0)
                        return (int32_t)et->fields[i].slot;
        return -1;
}

static int32_t enum_of(const RuleSet *rs, const char *type, const char *path, const char *v)
{
        int32_t s = slot_of(rs, type, path);
        const EnumDef *en = rs->schema.slot_enum[s];
        for (uint32_t i = 0; i < en->nvalues; i++)
                if (strcmp(en->values[i], v) == 0)
                        return (int32_t)i;
        return -1;
}

Test(load, base_pack_compiles)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        int r = load_rules(base_rules, &dl, &rs);
        if (r)
                diag_print_text(stderr, &dl, false);
        cr_assert_eq(r, 0);
        cr_assert_eq(dl.nerrors, 0);
        cr_assert_eq(dl.nwarnings, 0);
        cr_assert_eq(rs->nrules, 5);
        cr_assert_eq(rs->nlists, 1);
        cr_assert_eq(rs->nmacros, 1);
        cr_assert_eq(rs->schema.ntypes, 4);
        cr_assert_eq(rs->grading.nbands, 4);
        cr_assert_eq(rs->grading.noverrides, 3);
        cr_assert_eq(rs->grading.dwell_ms, 30LL * 86400000);

        const Rule *t = rules_find(rs, "sampling.toxic");
        cr_assert_not_null(t);
        cr_assert_eq(t->severity, SEV_CRITICAL);
        cr_assert_float_eq(t->score, 20, 1e-9);
        cr_assert_eq(t->expires_ms, 365LL * 86400000);
        cr_assert_float_eq(t->max_score, 40, 1e-9);
        cr_assert_eq(t->nflags, 2);
        cr_assert_str_eq(rs->flags[t->flags[0].flag], "problem_lead");
        cr_assert_eq(t->flags[0].lifetime_ms, 180LL * 86400000);
        cr_assert_eq(t->flags[1].lifetime_ms, 0);
        cr_assert_eq(t->nactions, 2);
        cr_assert_str_eq(t->actions[1], "flying_inspection");
        cr_assert_eq(t->message.nparts, 8);
        cr_assert_str_eq(t->message.parts[0].text, "样品 ");

        const Rule *w = rules_find(rs, "coldchain.warm");
        cr_assert_eq(w->for_ms, 30LL * 60000);
        cr_assert_eq(w->per_slot, slot_of(rs, "coldchain", "device_id"));
        cr_assert_eq(w->cooldown_ms, 3600000);
        cr_assert(!w->timer_driven);
        cr_assert(rules_find(rs, "coldchain.offline")->timer_driven);
        cr_assert_eq(rules_find(rs, "complaint.many")->status, RULE_SHADOW);
        cr_assert(rules_find(rs, "profile.dairy")->is_static);
        cr_assert_eq(rs->naggs, 2);
        cr_assert_eq(rs->aggs[0].kind, AGG_ABSENT);
        cr_assert(rs->aggs[0].uses_cur);
        cr_assert_eq(rs->aggs[0].window_ms, 2 * 3600000);
        cr_assert_eq(rs->aggs[1].kind, AGG_COUNT);
        cr_assert(!rs->aggs[1].uses_cur);
        rules_unref(rs);
        diag_list_deinit(&dl);
}

Test(load, conditions_evaluate)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        cr_assert_eq(load_rules(base_rules, &dl, &rs), 0);
        Value *ev = calloc(rs->schema.nslots, sizeof(Value));
        VmFrame f = {.event = ev, .cur = ev};
        const Rule *t = rules_find(rs, "sampling.toxic");
        int32_t res = slot_of(rs, "sampling", "result"), hz = slot_of(rs, "sampling", "hazard"),
                cf = slot_of(rs, "sampling", "confirmed");
        ev[res] = value_enum(enum_of(rs, "sampling", "result", "fail"));
        ev[hz] = value_enum(enum_of(rs, "sampling", "hazard", "banned_drug"));
        ev[cf] = value_bool(true);
        cr_assert(vm_test(rs, t->when, &f));
        ev[hz] = value_enum(enum_of(rs, "sampling", "hazard", "microbial"));
        cr_assert(!vm_test(rs, t->when, &f));
        ev[hz] = value_enum(enum_of(rs, "sampling", "hazard", "illegal_addition"));
        ev[cf] = value_null(); /* missing: null is false */
        cr_assert(!vm_test(rs, t->when, &f));
        ev[cf] = value_bool(true);
        ev[res] = value_enum(enum_of(rs, "sampling", "result", "pass"));
        cr_assert(!vm_test(rs, t->when, &f));

        /* exceptions: the calibration device never fires */
        memset(ev, 0, rs->schema.nslots * sizeof(Value));
        const Rule *w = rules_find(rs, "coldchain.warm");
        int32_t temp = slot_of(rs, "coldchain", "temp_c"), dev = slot_of(rs, "coldchain", "device_id"),
                door = slot_of(rs, "coldchain", "door_open");
        ev[temp] = value_num(9.5);
        ev[dev] = value_str("dev-1", 5);
        ev[door] = value_bool(false);
        cr_assert(vm_test(rs, w->when, &f));
        ev[door] = value_null(); /* not null is true */
        cr_assert(vm_test(rs, w->when, &f));
        ev[dev] = value_str("dev-cal", 7);
        cr_assert(!vm_test(rs, w->when, &f));
        ev[dev] = value_str("dev-1", 5);
        ev[temp] = value_num(8);
        cr_assert(!vm_test(rs, w->when, &f));

        /* grading override conditions read flags */
        VmState st = {.grade = 0, .mode = 0};
        int32_t pl = rules_flag_id(rs, "problem_lead");
        f.state = &st;
        cr_assert(!vm_test(rs, rs->grading.overrides[0].when, &f));
        st.flags = 1ull << pl;
        cr_assert(vm_test(rs, rs->grading.overrides[0].when, &f));
        cr_assert_eq(rs->grading.overrides[1].grade, 3);
        cr_assert_float_eq(rs->grading.overrides[2].per_year_step, 1, 1e-9);
        cr_assert_str_eq(rs->grading.modes[rs->grading.overrides[0].mode], "flying_inspection");
        free(ev);
        rules_unref(rs);
        diag_list_deinit(&dl);
}

Test(load, fingerprints_are_stable_and_sensitive)
{
        DiagList dl = {0};
        RuleSet *a = NULL, *b = NULL, *c = NULL;
        cr_assert_eq(load_rules(base_rules, &dl, &a), 0);
        cr_assert_eq(load_rules(base_rules, &dl, &b), 0);
        char *changed = strdup(base_rules);
        char *p = strstr(changed, "temp_c > 8");
        p[9] = '9';
        cr_assert_eq(load_rules(changed, &dl, &c), 0);
        for (uint32_t i = 0; i < a->nrules; i++)
                cr_assert_eq(a->rules[i].fingerprint, b->rules[i].fingerprint);
        cr_assert_str_eq(a->version, b->version);
        cr_assert_str_neq(a->version, c->version);
        cr_assert_neq(rules_find(a, "coldchain.warm")->fingerprint, rules_find(c, "coldchain.warm")->fingerprint);
        cr_assert_eq(rules_find(a, "sampling.toxic")->fingerprint, rules_find(c, "sampling.toxic")->fingerprint);
        free(changed);
        rules_unref(a);
        rules_unref(b);
        rules_unref(c);
        diag_list_deinit(&dl);
}

static DiagList broken(const char *rules)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        Dir d = dir3(schema, plain_grading, rules);
        int r = load(&d, &dl, &rs);
        if (r == 0)
                rules_unref(rs);
        return dl;
}

Test(load, unknown_field_suggests)
{
        DiagList dl = broken("rules:\n  - id: x\n    on: sampling\n    when: reslt == \"fail\"\n");
        const Diag *d = find(&dl, "E031");
        cr_assert_not_null(d);
        cr_assert_eq(d->line, 4);
        cr_assert_eq(d->col, 11);
        cr_assert_eq(d->len, 5);
        cr_assert_not_null(strstr(d->hint, "did you mean 'result'"));
        cr_assert_str_eq(d->srcline, "    when: reslt == \"fail\"");
        diag_list_deinit(&dl);
}

Test(load, bad_enum_lists_values)
{
        DiagList dl = broken("rules:\n  - id: x\n    on: sampling\n    when: 'result == \"fial\"'\n");
        const Diag *d = find(&dl, "E032");
        cr_assert_not_null(d);
        cr_assert_eq(d->line, 4);
        cr_assert_eq(d->col, 22); /* inside single quotes */
        cr_assert_not_null(strstr(d->message, "'fial' is not a value of sampling.result"));
        cr_assert_not_null(strstr(d->hint, "did you mean 'fail'"));
        cr_assert_not_null(strstr(d->hint, "pass fail"));
        diag_list_deinit(&dl);
}

Test(load, type_mismatch_and_null_warning)
{
        DiagList dl = broken("rules:\n  - id: x\n    on: sampling\n    when: measured > \"5\" or item == null\n");
        const Diag *d = find(&dl, "E033");
        cr_assert_not_null(d);
        cr_assert_eq(d->col, 11);
        cr_assert_not_null(strstr(d->message, "number with string"));
        cr_assert_not_null(find(&dl, "W104"));
        diag_list_deinit(&dl);
}

Test(load, every_error_not_just_the_first)
{
        DiagList dl = broken("rules:\n"
                             "  - id: a\n    on: sampling\n    when: reslt == 1\n"
                             "  - id: b\n    on: samplin\n"
                             "  - id: c\n    on: coldchain\n    when: temp_c > 8\n    cooldown: 5x\n"
                             "  - id: a\n    on: coldchain\n");
        cr_assert_not_null(find(&dl, "E031"));
        cr_assert_not_null(find(&dl, "E030"));
        cr_assert_not_null(find(&dl, "E007"));
        cr_assert_not_null(find(&dl, "E010"));
        cr_assert_geq(dl.nerrors, 4);
        /* sorted by position */
        for (uint32_t i = 1; i < dl.n; i++)
                cr_assert(dl.v[i - 1].line <= dl.v[i].line);
        diag_list_deinit(&dl);
}

Test(load, macros_lists_append)
{
        DiagList dl = broken("macros:\n  a: b\n  b: a\n"
                             "rules:\n  - id: x\n    on: sampling\n    when: a or hazard in toxics\n");
        cr_assert_not_null(find(&dl, "E036"));
        diag_list_deinit(&dl);
        dl = broken("rules:\n  - id: x\n    on: sampling\n    when: hazard in toxics\n");
        const Diag *d = find(&dl, "E034");
        cr_assert_not_null(d);
        cr_assert_eq(d->col, 21);
        diag_list_deinit(&dl);

        /* a later file appends to a list, a macro and a rule */
        Dir dd = dir3(schema, plain_grading,
                      "lists:\n  toxic: [banned_drug]\n"
                      "macros:\n  bad: result == \"fail\"\n"
                      "rules:\n  - id: x\n    on: sampling\n    when: bad and hazard in toxic\n"
                      "    exceptions:\n      - { name: items, fields: [item], values: [] }\n");
        dd.names[3] = "zz-region.yaml";
        dd.texts[3] = "append:\n  - { list: toxic, items: [illegal_addition] }\n"
                      "  - { macro: bad, when: \"measured > limit\" }\n"
                      "  - { rule: x, exceptions: [{ name: items, values: [[苏丹红]] }] }\n";
        dd.lens[3] = strlen(dd.texts[3]);
        dd.n = 4;
        RuleSet *rs = NULL;
        DiagList dl2 = {0};
        int r = load(&dd, &dl2, &rs);
        if (r)
                diag_print_text(stderr, &dl2, false);
        cr_assert_eq(r, 0);
        Value *ev = calloc(rs->schema.nslots, sizeof(Value));
        VmFrame f = {.event = ev, .cur = ev};
        const Rule *x = rules_find(rs, "x");
        ev[slot_of(rs, "sampling", "result")] = value_enum(enum_of(rs, "sampling", "result", "pass"));
        ev[slot_of(rs, "sampling", "measured")] = value_num(2);
        ev[slot_of(rs, "sampling", "limit")] = value_num(1);
        ev[slot_of(rs, "sampling", "hazard")] = value_enum(enum_of(rs, "sampling", "hazard", "illegal_addition"));
        ev[slot_of(rs, "sampling", "item")] = value_str("铅", strlen("铅"));
        cr_assert(vm_test(rs, x->when, &f)); /* via the appended macro and list */
        ev[slot_of(rs, "sampling", "item")] = value_str("苏丹红", strlen("苏丹红"));
        cr_assert(!vm_test(rs, x->when, &f)); /* the appended exception */
        free(ev);
        rules_unref(rs);
        diag_list_deinit(&dl2);
}

Test(load, regex_and_template_errors)
{
        DiagList dl = broken("rules:\n  - id: x\n    on: sampling\n    when: item matches \"a(b\"\n"
                             "    message: \"{item} {prodct.name}\"\n");
        cr_assert_not_null(find(&dl, "E022"));
        const Diag *t = find(&dl, "E043");
        cr_assert_not_null(t);
        cr_assert_eq(t->line, 5);
        cr_assert_eq(t->col, 23);
        cr_assert_not_null(strstr(t->hint, "product.name"));
        diag_list_deinit(&dl);
}

/* A matches whose engine fails is false and counted under its rule: the
 * count the daemon's riskd_regex_errors_total{rule} and riskctl's summary
 * read (the decoder refuses malformed UTF-8, so the subject here is made
 * by hand). */
Test(load, regex_errors_counted_by_rule)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        Dir d = dir3(schema, plain_grading,
                     "rules:\n"
                     "  - id: sampling.lead\n    on: sampling\n    when: item matches \"^铅(a+)+$\"\n"
                     "  - id: complaint.lead\n    on: complaint\n    when: not (item matches \"铅\")\n");
        cr_assert_eq(load(&d, &dl, &rs), 0);
        cr_assert_eq(rs->nregexes, 2);
        cr_assert_str_eq(rs->regex_rule[0], "sampling.lead");
        cr_assert_str_eq(rs->regex_rule[1], "complaint.lead");
        Value *ev = calloc(rs->schema.nslots, sizeof(Value));
        VmFrame f = {.event = ev, .cur = ev};
        const Rule *r = rules_find(rs, "sampling.lead");
        int32_t item = slot_of(rs, "sampling", "item");
        static char s[4004];
        memcpy(s, "铅", 3);
        memset(s + 3, 'a', 4000);
        ev[item] = value_str(s, 4003);
        cr_assert(vm_test(rs, r->when, &f));
        s[4003] = 'b';
        ev[item] = value_str(s, 4004);
        cr_assert(!vm_test(rs, r->when, &f));
        cr_assert_eq(rules_regex_errors(rs, 0), 0);
        ev[item] = value_str("铅a\xff", 5);
        cr_assert(!vm_test(rs, r->when, &f), "an engine error is false");
        cr_assert(!vm_test(rs, r->when, &f));
        cr_assert_eq(rules_regex_errors(rs, 0), 2, "and counted");
        cr_assert_eq(rules_regex_errors(rs, 1), 0, "under its rule only");
        cr_assert_eq(rules_regex_errors_take(rs, 0), 2);
        cr_assert_eq(rules_regex_errors_take(rs, 0), 0, "take returns what is new");
        cr_assert_eq(rules_regex_errors(rs, 0), 2, "the total stays");
        cr_assert_eq(rules_regex_errors(rs, 2), 0, "out of range");
        free(ev);
        rules_unref(rs);
        diag_list_deinit(&dl);
}

Test(load, warnings)
{
        DiagList dl = broken("lists:\n  unused: [a]\nmacros:\n  m: confirmed\n"
                             "rules:\n  - id: x\n    on: sampling\n    when: confirmed\n    wehn: 1\n"
                             "  - id: y\n    on: sampling\n    when: confirmed\n");
        cr_assert_eq(dl.nerrors, 0);
        cr_assert_not_null(find(&dl, "W101"));
        cr_assert_not_null(strstr(find(&dl, "W101")->hint, "did you mean 'when'"));
        cr_assert_not_null(find(&dl, "W102"));
        cr_assert_not_null(find(&dl, "W103"));
        const Diag *s = find(&dl, "W105");
        cr_assert_not_null(s);
        cr_assert_eq(s->line, 10);
        diag_list_deinit(&dl);
}

Test(load, grading_band_order)
{
        Dir d = dir3(schema,
                     "grades:\n  - { grade: A, max: 45, mode: m, inspections_per_year: 1 }\n"
                     "  - { grade: B, max: 30, mode: m, inspections_per_year: 2 }\n"
                     "  - { grade: C, mode: m, inspections_per_year: 3 }\n"
                     "overrides:\n  - { when: state.flags.nope, grade: Z }\n",
                     "rules: []\n");
        DiagList dl = {0};
        RuleSet *rs = NULL;
        cr_assert_eq(load(&d, &dl, &rs), 1);
        const Diag *b = find(&dl, "E050");
        cr_assert_not_null(b);
        cr_assert_eq(b->line, 3);
        cr_assert_not_null(find(&dl, "E051"));
        cr_assert_not_null(find(&dl, "E041"));
        diag_list_deinit(&dl);
}

Test(load, yaml_syntax_error_position)
{
        DiagList dl = broken("rules:\n  - id: x\n    on: [sampling\n    when: true\n");
        const Diag *d = find(&dl, "E001");
        cr_assert_not_null(d);
        cr_assert_geq(d->line, 3);
        diag_list_deinit(&dl);
}

Test(load, missing_files)
{
        const char *names[] = {"rules.yaml"};
        const char *texts[] = {"rules: []\n"};
        size_t lens[] = {10};
        DiagList dl = {0};
        RuleSet *rs = NULL;
        cr_assert_eq(rules_load_mem("t", names, texts, lens, 1, &dl, &rs), 1);
        cr_assert_eq(dl.nerrors, 2);
        cr_assert_eq(dl.v[0].code, DIAG_E002);
        diag_list_deinit(&dl);
}

/* Every input the fuzzer ever crashed on goes through the fuzzer's own
 * entry point again (it includes the in-memory split and the rendering). */
#include "fuzz/fuzz-rules.c"

Test(load, fuzz_regressions)
{
        const char *dir = SRCDIR "/tests/fuzz-regressions";
        DIR *d = opendir(dir);
        cr_assert_not_null(d);
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.' || strcmp(de->d_name, "README") == 0)
                        continue;
                char *p = xasprintf("%s/%s", dir, de->d_name);
                struct stat st;
                if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) { /* another target's (http/) */
                        free(p);
                        continue;
                }
                char *text;
                size_t len;
                cr_assert_eq(file_read_all(p, &text, &len), 0);
                cr_assert_eq(LLVMFuzzerTestOneInput((const uint8_t *)text, len), 0, "%s", p);
                free(text);
                free(p);
        }
        closedir(d);
}

/* Enum labels (schema.yaml values: { code: label }) and the placeholders
 * that print them: the compiler resolves {f:label} and {f|text} at load. */
static const char labelled_schema[] =
        "envelope: { id: event_id, type: event_type, enterprise: enterprise_id, time: occurred_at }\n"
        "profile: enterprise\n"
        "enums:\n"
        "  level: { national: 国家级, provincial: 省级 }\n"
        "types:\n"
        "  enterprise:\n"
        "    fields: { name: string, scale: [small, large] }\n"
        "  complaint:\n"
        "    fields:\n"
        "      kind: { type: enum, values: { complaint: 投诉, report: 举报 } }\n"
        "      level: { type: enum, enum: level }\n"
        "      channel: [hotline, web]\n"
        "      persons: number\n";

static int load_labelled(const char *rules, DiagList *dl, RuleSet **rs)
{
        Dir d = dir3(labelled_schema, plain_grading, rules);
        return load(&d, dl, rs);
}

Test(load, enum_labels_and_templates)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        int r = load_labelled("rules:\n  - id: c.x\n    on: complaint\n"
                              "    message: \"{kind:label}/{ level : label | 未填写 }/{channel}/{persons|}\"\n",
                              &dl, &rs);
        cr_assert_eq(r, 0, "%u diagnostics", dl.n);
        int32_t kind = slot_of(rs, "complaint", "kind"), level = slot_of(rs, "complaint", "level");
        int32_t channel = slot_of(rs, "complaint", "channel");
        const EnumDef *en = rs->schema.slot_enum[kind];
        cr_assert_eq(en->nvalues, 2);
        cr_assert_str_eq(en->values[1], "report"); /* the keys, in order, are the values */
        cr_assert_str_eq(en->labels[1], "举报");
        cr_assert_str_eq(rs->schema.slot_enum[level]->labels[0], "国家级");
        cr_assert_null(rs->schema.slot_enum[channel]->labels); /* a list has none */

        const Template *t = &rules_find(rs, "c.x")->message;
        cr_assert_eq(t->nparts, 7);
        cr_assert(t->parts[0].kind == TPL_FIELD && t->parts[0].fmt == TPL_FMT_LABEL && !t->parts[0].text);
        cr_assert(t->parts[2].kind == TPL_FIELD && t->parts[2].fmt == TPL_FMT_LABEL && (int32_t)t->parts[2].slot == level);
        cr_assert_str_eq(t->parts[2].text, "未填写"); /* spaces around the text are trimmed */
        cr_assert(t->parts[4].fmt == TPL_FMT_VALUE && !t->parts[4].text);
        cr_assert_str_eq(t->parts[6].text, ""); /* {persons|}: a null prints nothing */
        cr_assert_eq(t->parts[6].len, 0);
        rules_unref(rs);
        diag_list_deinit(&dl);
}

Test(load, label_needs_labelled_enum)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        int r = load_labelled("rules:\n  - id: c.x\n    on: complaint\n"
                              "    message: \"{channel:label} {persons:label} {kind:lable} {enterprise.scale:label}\"\n",
                              &dl, &rs);
        cr_assert_neq(r, 0);
        cr_assert_eq(dl.n, 4);
        for (uint32_t i = 0; i < dl.n; i++)
                cr_assert_str_eq(diag_code_str(dl.v[i].code), "E043");
        cr_assert_not_null(strstr(dl.v[0].message, "enum 'complaint.channel' has no labels"));
        cr_assert_not_null(strstr(dl.v[0].hint, "values: { hotline: ..., web: ..., ... }"));
        cr_assert_eq(dl.v[0].col, 16);
        cr_assert_not_null(strstr(dl.v[1].message, "'persons' is not an enum field"));
        cr_assert_not_null(strstr(dl.v[2].message, "unknown format ':lable'"));
        cr_assert_not_null(strstr(dl.v[2].hint, "did you mean ':label'?"));
        cr_assert_eq(dl.v[2].col, 53);
        cr_assert_not_null(strstr(dl.v[3].message, "enum 'enterprise.scale' has no labels"));
        diag_list_deinit(&dl);
}

Test(load, enum_label_problems)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        Dir d = dir3("envelope: { id: event_id, type: event_type, enterprise: enterprise_id, time: occurred_at }\n"
                     "types:\n"
                     "  complaint:\n"
                     "    fields:\n"
                     "      kind: { type: enum, values: { complaint: 投诉, report: ~ } }\n"
                     "      level: { type: enum, values: { a: [x] } }\n",
                     plain_grading, "rules: []\n");
        cr_assert_neq(load(&d, &dl, &rs), 0);
        const Diag *e = find(&dl, "E060");
        cr_assert_not_null(e);
        cr_assert_not_null(strstr(e->message, "value 'report' of enum 'complaint.kind' has no label"));
        cr_assert_eq(e->line, 5);
        cr_assert_not_null(find(&dl, "E003"));
        diag_list_deinit(&dl);
}

Test(load, label_in_condition_names_the_value)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        int r = load_labelled("rules:\n  - id: c.x\n    on: complaint\n    when: kind == \"举报\"\n", &dl, &rs);
        cr_assert_neq(r, 0);
        const Diag *e = find(&dl, "E032");
        cr_assert_not_null(e);
        cr_assert_not_null(strstr(e->hint, "'举报' is the label of 'report': compare with the value \"report\""));
        diag_list_deinit(&dl);
}

/* display_offset in schema.yaml and the placeholders that print times at
 * it: {f:date}, {f:datetime}, checked at load. */
static const char timed_schema[] =
        "envelope: { id: event_id, type: event_type, enterprise: enterprise_id, time: occurred_at }\n"
        "display_offset: \"+08:00\"\n"
        "profile: enterprise\n"
        "types:\n"
        "  enterprise:\n"
        "    fields: { name: string, licensed_at: time }\n"
        "  inspection:\n"
        "    fields: { no: string, rectify_deadline: time, wait: duration, level: [county, city] }\n";

Test(load, display_offset_and_time_formats)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        Dir d = dir3(timed_schema, plain_grading,
                     "rules:\n  - id: i.x\n    on: inspection\n"
                     "    message: \"{rectify_deadline:date|未设定}/{ rectify_deadline : datetime }/{rectify_deadline}/"
                     "{enterprise.licensed_at:date}\"\n");
        cr_assert_eq(load(&d, &dl, &rs), 0, "%u diagnostics", dl.n);
        cr_assert_eq(rs->schema.display_offset_ms, 8 * 3600000LL);
        int32_t dl_slot = slot_of(rs, "inspection", "rectify_deadline");
        const Template *t = &rules_find(rs, "i.x")->message;
        cr_assert_eq(t->nparts, 7);
        cr_assert(t->parts[0].kind == TPL_FIELD && t->parts[0].fmt == TPL_FMT_DATE && (int32_t)t->parts[0].slot == dl_slot);
        cr_assert_str_eq(t->parts[0].text, "未设定");
        cr_assert(t->parts[2].fmt == TPL_FMT_DATETIME && !t->parts[2].text);
        cr_assert(t->parts[4].fmt == TPL_FMT_VALUE, "{f} keeps printing the value as before");
        cr_assert(t->parts[6].kind == TPL_PROFILE && t->parts[6].fmt == TPL_FMT_DATE);
        rules_unref(rs);
        diag_list_deinit(&dl);

        /* without display_offset: UTC */
        rs = NULL;
        Dir utc = dir3(schema, plain_grading, "rules: []\n");
        cr_assert_eq(load(&utc, &dl, &rs), 0);
        cr_assert_eq(rs->schema.display_offset_ms, 0);
        rules_unref(rs);
        diag_list_deinit(&dl);
}

Test(load, date_needs_a_time_field)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        Dir d = dir3(timed_schema, plain_grading,
                     "rules:\n  - id: i.x\n    on: inspection\n"
                     "    message: \"{no:date} {wait:datetime} {level:date|—} {state.grade:date} {rectify_deadline:dat}\"\n");
        cr_assert_neq(load(&d, &dl, &rs), 0);
        cr_assert_eq(dl.n, 5);
        for (uint32_t i = 0; i < dl.n; i++)
                cr_assert_str_eq(diag_code_str(dl.v[i].code), "E043");
        cr_assert_not_null(strstr(dl.v[0].message, "{no:date}: 'no' is not a time field"));
        cr_assert_not_null(strstr(dl.v[0].hint, "only time fields have a date; {no} prints the value"));
        cr_assert_eq(dl.v[0].col, 16);
        cr_assert_not_null(strstr(dl.v[1].message, "{wait:datetime}: 'wait' is not a time field"));
        cr_assert_not_null(strstr(dl.v[2].message, "'level' is not a time field"));
        cr_assert_not_null(strstr(dl.v[3].message, "{state.grade:date}"));
        cr_assert_not_null(strstr(dl.v[4].message, "unknown format ':dat'"));
        cr_assert_not_null(strstr(dl.v[4].hint, "did you mean ':date'?"));
        diag_list_deinit(&dl);
}

Test(load, bad_display_offset)
{
        static const char *const bad[] = {"\"+8:00\"", "UTC", "\"+24:00\"", "8", "Asia/Shanghai"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char s[512];
                snprintf(s, sizeof(s),
                         "envelope: { id: event_id, type: event_type, enterprise: enterprise_id, time: occurred_at }\n"
                         "display_offset: %s\n"
                         "types: { inspection: { fields: { no: string } } }\n",
                         bad[i]);
                DiagList dl = {0};
                RuleSet *rs = NULL;
                Dir d = dir3(s, plain_grading, "rules: []\n");
                cr_assert_neq(load(&d, &dl, &rs), 0, "%s", bad[i]);
                const Diag *e = find(&dl, "E060");
                cr_assert_not_null(e, "%s", bad[i]);
                cr_assert_not_null(strstr(e->message, "is not an RFC 3339 offset"), "%s", bad[i]);
                cr_assert_not_null(strstr(e->hint, "\"+08:00\""));
                cr_assert_eq(e->line, 2);
                cr_assert_eq(e->col, 17);
                cr_assert_str_eq(e->file, "t/schema.yaml");
                diag_list_deinit(&dl);
        }
        DiagList dl = {0};
        RuleSet *rs = NULL;
        Dir d = dir3("envelope: { id: event_id, type: event_type, enterprise: enterprise_id, time: occurred_at }\n"
                     "display_offset: [\"+08:00\"]\n"
                     "types: { inspection: { fields: { no: string } } }\n",
                     plain_grading, "rules: []\n");
        cr_assert_neq(load(&d, &dl, &rs), 0);
        cr_assert_not_null(find(&dl, "E003"));
        diag_list_deinit(&dl);
}
