/*
 * libFuzzer target for the rule loader: the input is split on lines "----"
 * into up to three files, schema.yaml, grading.yaml and rules.yaml (a
 * missing part is taken from a small valid default), and loaded with
 * rules_load_mem.  Any crash, leak, or sanitizer report is a bug; the
 * diagnostics themselves are also rendered, as riskctl would.
 *
 * Build and run: see fuzz/README.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/rules.h"
#include "include/riskd/util.h"

static const char default_schema[] =
        "envelope: { id: event_id, type: event_type, enterprise: enterprise_id, time: occurred_at }\n"
        "profile: enterprise\n"
        "types:\n"
        "  enterprise: { fields: { category: [dairy, meat], haccp: bool } }\n"
        "  sampling: { fields: { result: [pass, fail], measured: number, item: string, product.name: string } }\n"
        "  coldchain: { fields: { device_id: string, temp_c: number, door_open: bool } }\n";
static const char default_grading[] =
        "grades:\n"
        "  - { grade: A, max: 30, mode: double_random, inspections_per_year: 1 }\n"
        "  - { grade: D, mode: key_inspection, inspections_per_year: 4 }\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *names[3] = {"schema.yaml", "grading.yaml", "rules.yaml"};
        const char *texts[3] = {default_schema, default_grading, ""};
        size_t lens[3] = {sizeof(default_schema) - 1, sizeof(default_grading) - 1, 0};
        /* parts in the order rules, schema, grading: most inputs only
         * exercise rules */
        static const int order[3] = {2, 0, 1};
        const char *p = (const char *)data, *end = p + size;
        for (int k = 0; k < 3 && p <= end; k++) {
                const char *sep = memmem(p, (size_t)(end - p), "\n----\n", 6);
                const char *e = sep ? sep : end;
                texts[order[k]] = p;
                lens[order[k]] = (size_t)(e - p);
                if (!sep)
                        break;
                p = sep + 6;
        }
        DiagList dl = {0};
        RuleSet *rs = NULL;
        if (rules_load_mem("fuzz", names, texts, lens, 3, &dl, &rs) == 0) {
                Buf b = {0};
                for (uint32_t i = 0; i < rs->nrules; i++)
                        rules_disasm_rule(rs, &rs->rules[i], &b);
                buf_free(&b);
                rules_unref(rs);
        }
        FILE *null = fopen("/dev/null", "w");
        if (null) {
                diag_print_text(null, &dl, false);
                diag_print_json(null, &dl, NULL);
                fclose(null);
        }
        diag_list_deinit(&dl);
        return 0;
}
