/*
 * What the two files of riskctl diff share: backtest.c reads the engine's
 * documents back, matches the two runs and works out what differs (a
 * Diff); backtest_report.c writes a Diff as text, JSON or CSV.  Private
 * to src/cli.
 */
#ifndef RISKD_CLI_BACKTEST_INT_H
#define RISKD_CLI_BACKTEST_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "include/riskd/util.h"
#include "include/riskd/value.h"
#include "src/cli/backtest.h"

static inline Str str_of(const char *p, size_t n)
{
        return (Str){p, (uint32_t)n};
}

static inline bool str_eq(Str a, Str b)
{
        return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

static const Str NONE = {"", 0};

typedef enum Section { SEC_ALERT, SEC_ADJUSTMENT, SEC_DEADLETTER, NSEC } Section;

typedef enum Change { CH_GAINED, CH_LOST, CH_CHANGED } Change;

typedef struct Item {
        Section sec;
        Change ch;
        const BtOutput *o, *n;   /* old and new document; NULL when gained / lost */
        int64_t ts;              /* for the order of the report */
        uint32_t at;             /* index in the run it comes from (new, or old when lost) */
} Item;

typedef struct FieldDiff {
        Str name, old, new;
        bool has_old, has_new;
} FieldDiff;

typedef struct Step {
        Str ent, current, score, cause, ts_text;
        int64_t ts;
        uint32_t i;
} Step;

/* The final grades: one line per enterprise. */
typedef struct Final {
        Str ent, line, score;
} Final;

/* One enterprise of either run. */
typedef struct EntDiff {
        Str id;
        const Step *o, *n;       /* its adjustments in each run */
        uint32_t no, nn;
        const Final *fo, *fn;    /* its final grade in each run, NULL: none */
        bool history, final, score;
        int64_t at;              /* the first time its grading differs */
        Str at_o, at_n;          /* what each run had then ("null": not graded yet) */
} EntDiff;

/* Time spent at each grade, up to end, in grades[] (names) / ms[]. */
typedef struct GradeTime {
        Str grade;
        int64_t ms;
} GradeTime;

typedef struct RuleRow {
        const char *id;
        const Rule *o, *n;
        uint64_t fo, fn;
} RuleRow;

typedef struct Diff {
        const BtRun *run[2];
        const char *events;
        Item *items;
        uint32_t nitems, citems;
        uint32_t count[NSEC][3];        /* by section and change */
        uint32_t nouts[2][NSEC];
        EntDiff *ents;
        uint32_t nents, cents;
        uint32_t nhistory, nfinal, nscore;
        RuleRow *rules;
        uint32_t nrules, nrules_differ;
        const char **grades;            /* grade names of both runs; NULL: not graded */
        uint64_t *gcount[2];
        uint32_t ngrades;
        bool order;                     /* the same outputs, in another order */
} Diff;

extern const char *const sec_names[NSEC];
extern const char *const sec_plural[NSEC];
extern const char *const sec_key[NSEC];
extern const char *const change_names[3];

/* ---- backtest.c: the engine's documents read back ---- */

/* The element after *p (at the array's '[' or at the ',' after an element). */
bool jnext_elem(const char **p, const char *end, Str *val);
/* Member name of obj, or the JSON null. */
Str jget_or_null(Str obj, const char *name);
/* A string value's text (json_unescape), or the value's JSON text when
 * it is not a string. */
void jtext(Buf *b, Str v);
/* "B/double_random/2" from {"grade":"B","mode":...,"inspections_per_year":2}
 * (an adjustment's current, or a line of the final grades). */
void grading_text(Buf *b, Str g);

/* ---- backtest.c: the comparison ---- */

uint32_t field_diffs(const BtOutput *a, const BtOutput *b, FieldDiff *out, uint32_t max);
/* Time spent at each grade, up to end. */
uint32_t grade_times(const Step *s, uint32_t n, int64_t end, GradeTime *gt, uint32_t max);
/* "added", "removed", "changed" or "same". */
const char *rule_change(const RuleRow *r);
bool diff_identical(const Diff *d);
/* A member of the item's document (the new one, or the old one when lost). */
Str item_get(const Item *it, const char *name);

/* ---- backtest_report.c ---- */

void report_text(Buf *b, const Diff *d);
void report_json(Buf *b, const Diff *d);
void report_csv(Buf *b, const Diff *d);

#endif
