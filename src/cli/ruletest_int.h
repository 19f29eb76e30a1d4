/*
 * What the files of `riskctl test` share: ruletest.c drives a run (test
 * files, --run, coverage, the summary), ruletest_case.c reads a test file
 * (the keys a test may name, events built from the compact form),
 * ruletest_run.c runs one test on an engine and reports what it missed,
 * ruletest_junit.c writes the JUnit report.  Private to src/cli.
 */
#ifndef RISKD_CLI_RULETEST_INT_H
#define RISKD_CLI_RULETEST_INT_H

#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "include/riskd/diag.h"
#include "include/riskd/rules.h"
#include "include/riskd/util.h"
#include "src/util/yaml.h"

/* ---- what a test may say about outputs ---- */

typedef enum MType {
        MT_STR,      /* equal strings (null: JSON null) */
        MT_NUM,      /* equal numbers */
        MT_TIME,     /* the same instant */
        MT_CONTAINS, /* substring */
        MT_HAS,      /* an array of strings holds the value(s) */
        MT_FLAGS,    /* an array of {name, until} holds the name(s) */
        MT_RULES,    /* an array of {rule_id, ...} holds the rule(s) */
} MType;

typedef enum VCheck { VC_NONE, VC_RULE, VC_GRADE, VC_MODE, VC_LIST } VCheck;

typedef struct MKey {
        const char *name, *path;
        MType type;
        VCheck check;
        const char *const *vals; /* VC_LIST, NULL terminated */
} MKey;


typedef enum Sect { S_ALERTS, S_ADJ, S_DL, S_STATES, NSECT } Sect;
extern const char *const sect_names[NSECT];
extern const char *const sect_item[NSECT];
extern const MKey *const sect_keys[NSECT];
/* matched against the enterprise's explain document (engine_explain_json) */
extern const MKey grade_keys[];

const MKey *mkey_find(const MKey *t, const char *name);

/* ---- a test, as read from its file ---- */

typedef struct Event {
        char *json;
        size_t len;
} Event;

typedef struct Test {
        const YNode *node;
        const char *name;
        uint32_t line;
        int64_t grace;
        int64_t until;
        bool has_until;
        const char *xfail;
        Event *ev;
        uint32_t nev, cev;
        const YNode **want[NSECT], **forbid[NSECT];
        uint32_t nwant[NSECT], cwant[NSECT], nforbid[NSECT], cforbid[NSECT];
        const YNode *grades;      /* expect.grades: enterprise → mapping */
        int64_t exact_alerts;     /* -1: not checked */
        DiagList dl;              /* problems of the test itself */
} Test;

/* ---- the JUnit XML report (--junit) ---- */

typedef enum JOutcome { JO_PASS, JO_FAIL, JO_ERROR, JO_SKIP } JOutcome;

typedef struct JCase {
        char *classname, *name, *file;
        uint32_t line;      /* 0: none */
        double secs;
        JOutcome outcome;
        char *message;      /* one line: the failure's first line */
        char *text;         /* the whole report of a failure, error or xfail */
} JCase;

/* One <testsuite> per test file (and one for problems outside any file:
 * rules that do not compile, coverage). */
typedef struct JSuite {
        char *name;
        JCase *v;
        uint32_t n, cap;
} JSuite;

typedef struct Junit {
        JSuite *v;
        uint32_t n, cap;
} Junit;

/* One run of riskctl test: the rules, where the report goes, the counts. */
typedef struct Ctx {
        RuleSet *rs;
        FILE *out;
        bool verbose;
        const SrcFile *file;      /* the test file being read (diagnostic lines) */
        char **covered;           /* rule ids named by expect.alerts */
        uint32_t ncovered, ccovered;
        uint32_t tests, passed, failed, xfailed;
        const regex_t *run_re;    /* --run: only the tests whose name matches */
        uint32_t deselected;      /* tests --run left out */
        Junit *junit;             /* --junit: the report being collected, or NULL */
} Ctx;

/* ---- ruletest_case.c ---- */

/* A plain YAML scalar that reads as a boolean or a number (JSON syntax). */
bool case_plain_bool(const YNode *n, bool *ret);
bool case_plain_number(const YNode *n, double *ret);
/* The tests: list of a parsed test file, its aliases applied; the
 * problems of the file itself (not a mapping, no tests:) go to dl. */
const YNode *case_file_tests(DiagList *dl, const SrcFile *f);
/* Read the ti-th test of its file into t (zeroed); its problems in t->dl. */
void case_read(Ctx *c, Test *t, const YNode *n, uint32_t ti);
void case_free(Test *t);

/* ---- ruletest_run.c ---- */

/* Run one well-formed test; its report goes to b.  Returns true when it
 * passed. */
bool run_test(Ctx *c, Test *t, const char *path, Buf *b, Buf *verbose);

/* ---- ruletest_junit.c ---- */

JSuite *junit_suite(Junit *ju, const char *name);
void junit_case(JSuite *s, const char *path, const char *name, uint32_t line, double secs, JOutcome o,
                const char *message, const char *text);
/* Write the report to path (written whole to a temporary file, then
 * renamed: a CI job never reads half a report).  Returns 0 or -errno. */
int junit_write(const Junit *ju, const char *path);
void junit_free(Junit *ju);

#endif
