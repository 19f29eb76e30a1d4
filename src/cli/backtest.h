/*
 * Back-testing: everything one replay produced (each alert, shadow alert,
 * adjustment and dead letter as its JSON line, the final grades, the event
 * time it ended at), and the reports riskctl makes of it: the summary of
 * one run (riskctl replay) and the comparison of two runs of the same
 * events under two rule sets (riskctl diff).
 */
#ifndef RISKD_CLI_BACKTEST_H
#define RISKD_CLI_BACKTEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "include/riskd/engine.h"
#include "include/riskd/rules.h"
#include "include/riskd/util.h"

typedef enum BtFormat { BT_TEXT, BT_JSON, BT_CSV } BtFormat;

/* "text", "json", "csv" for the formats in allowed (a bit per BtFormat):
 * 0 and *ret set, or -EINVAL. */
int bt_format_parse(const char *s, unsigned allowed, BtFormat *ret);

typedef struct BtOutput {
        OutKind kind;
        char *doc;               /* the JSON line, without its newline */
        size_t len;
} BtOutput;

typedef struct BtRun {
        const char *dir;         /* the rules directory, as named */
        RuleSet *rs;             /* referenced: the rules the run ended with */
        BtOutput *outs;          /* in the order the engine emitted them */
        uint32_t nouts, couts;
        Buf grades;              /* engine_grades_write() at the end */
        int64_t end;             /* the watermark at the end */
} BtRun;

/* Keep one output (copied). */
void bt_run_add(BtRun *run, OutKind kind, const char *doc, size_t len);
/* Record the end of the run: e's final grades and watermark, and its rules. */
void bt_run_finish(BtRun *run, Engine *e);
void bt_run_deinit(BtRun *run);

/* Enterprises by grade in a list of engine_grades_write() lines: counts[i]
 * for rs's band i, counts[nbands] for enterprises without a grade. */
void bt_grade_counts(const RuleSet *rs, const char *grades, size_t len, uint64_t *counts);

/*
 * Compare two runs of the same events (docs/man/riskctl.1, riskctl diff):
 * every output, rules_version aside, and the final grades and scores.
 * Writes the report to f and returns true when nothing differs.
 */
bool bt_diff(const BtRun *old, const BtRun *new, const char *events, BtFormat fmt, FILE *f);

#endif
