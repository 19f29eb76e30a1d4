/*
 * The rule compiler's working state while one rules directory is loaded:
 * parsed files, the definitions found in them (lists, macros, rules), and
 * the RuleSet being filled.  Private to src/rules/.
 *
 * Stages: schema.c (schema.yaml) → grading.c (grading.yaml, bands first)
 * → rulefile.c (rule files, append) → rule.c (each rule's keys) → check.c
 * (names, types, folding) → compile.c (bytecode) → grading.c (override
 * conditions) → load.c (warnings).
 */
#ifndef RISKD_RULES_LOAD_H
#define RISKD_RULES_LOAD_H

#include "include/riskd/rules.h"
#include "src/rules/ast.h"
#include "src/util/yaml.h"

typedef struct ListDef {
        char *name;
        const YNode *decl;
        YNode **items;          /* scalar nodes, declaration then appends */
        uint32_t nitems, cap;
        bool used;
} ListDef;

typedef struct MacroDef {
        char *name;
        const YNode *decl;
        Node *body;             /* parsed; appends OR-ed in */
        bool used;
        int visiting;           /* recursion detection during expansion */
} MacroDef;

typedef struct ExceptionDef {
        char *name;
        const YNode *decl;
        const YNode *fields;    /* seq of field names */
        const YNode *comps;     /* seq or NULL */
        const YNode **values;   /* seq nodes: declaration's and appended */
        uint32_t nvalues, cap;
} ExceptionDef;

typedef struct RuleDef {
        const YNode *node;
        char *id;
        Node *when;             /* NULL: true */
        Node **extra;           /* appended conditions, AND-ed */
        uint32_t nextra, cap;
        ExceptionDef *exc;
        uint32_t nexc, exccap;
        uint64_t on;
        bool bad;               /* an error already reported: don't compile */
        bool dup;               /* a duplicate id (E010): checked, never found by id */
} RuleDef;

/* What an N_NAME resolved to (Node.ref). */
typedef enum RefKind {
        REF_NONE,
        REF_FIELD,      /* event field (the row inside an aggregate) */
        REF_CUR,        /* $field */
        REF_PROFILE,
        REF_SCORE,
        REF_GRADE,
        REF_MODE,
        REF_PER_YEAR,
        REF_FLAG,
        REF_NOW,
        REF_LIST,       /* slot = set index */
} RefKind;

typedef struct Loader {
        RuleSet *rs;
        Arena *ar;
        DiagList *dl;
        SrcFile **files;
        uint32_t nfiles, filecap;
        ExprSrc **srcs;         /* by id */
        uint32_t nsrcs, srccap;

        ListDef *lists;
        uint32_t nlists, listcap;
        MacroDef *macros;
        uint32_t nmacros, macrocap;
        RuleDef *rules;
        uint32_t nrules, rulecap;

        const YNode *grading_root;
        EnumDef grade_enum, mode_enum;
        bool schema_ok, grading_ok;

        uint32_t *flag_reads;   /* per flag id: read count */
        SrcPos *flag_pos;
        uint32_t flagcap;
        char **flags_read;      /* every flag name read (set by a rule or not), for W107's suggestion */
        uint32_t nflags_read, flags_readcap;

        char **agg_keys;        /* canonical text per aggregate (dedupe) */
        uint32_t aggcap, constcap, setcap, codecap, progcap, regexcap, rulecap2;
} Loader;

/* node.c: helpers shared by the stages */
ExprSrc *loader_src_new(Loader *L);                       /* a new source id (0: synthesized nodes) */
ExprSrc *loader_exprsrc(Loader *L, const YNode *n);        /* for a scalar's text */
ExprSrc *loader_fixedsrc(Loader *L, const YNode *n);       /* every offset → n */
SrcPos loader_node_pos(Loader *L, const Node *n);
Node *loader_parse(Loader *L, const YNode *n);             /* expression in scalar n */
bool loader_expect(Loader *L, const YNode *n, YKind kind, const char *what);
void loader_unknown_keys(Loader *L, const YNode *map, const char *const *known, uint32_t nknown,
                         const char *where);
/* A duration; if_zero: the help for a 0 that the key refuses, NULL where
 * 0 means "none" (dwell: no hysteresis, cooldown: no cooldown). */
bool loader_duration(Loader *L, const YNode *n, int64_t *ms, const char *if_zero);
bool loader_number(Loader *L, const YNode *n, double *v);
int32_t loader_flag(Loader *L, const char *name, bool create);
bool loader_id_ok(const char *s);                          /* letters, digits, '_', '.', '-' */

/* rulefile.c: one rule file's lists:, macros:, rules: and append: */
void rulefile_load(Loader *L, const SrcFile *f);

/* rule.c: every flag any rule sets (before any condition is checked), then
 * each collected rule built into rs->rules, then its fingerprint */
void rule_flags_collect(Loader *L);
void rule_build(Loader *L, RuleDef *rd);
/* Once every rule is built: each closes: resolved to the rules it names
 * (they may come later in file order), and which rules' alerts have a
 * lifecycle (Rule.lifecycle). */
void rule_closes_resolve(Loader *L);
uint64_t rule_fingerprint(const RuleSet *rs, const Rule *r);

/* schema.c */
void schema_load(Loader *L, const YNode *root);
const Field *schema_field(const Schema *s, uint32_t type, const char *path);
void schema_deinit(Schema *s);
/* The field common to every type in on (one slot), and the hint naming
 * the fields when there is none: rules, templates, aggregates. */
const Field *schema_field_on(Loader *L, uint64_t on, const char *path, int32_t *slot);
void schema_suggest_field(Loader *L, uint64_t on, const char *path, Buf *hint);
/* The hint for an event type name the schema does not declare (on:, an
 * aggregate's type): the closest name, then every type. */
void schema_suggest_type(const Schema *s, const char *name, Buf *hint);

/* grading.c */
void grading_load_bands(Loader *L, const YNode *root);
void grading_compile_overrides(Loader *L);

/* check.c: resolve and type a condition in the context of a rule's event
 * types (on = 0 for grading: no event fields).  Returns the checked tree or
 * NULL after reporting errors. */
typedef struct CheckCtx {
        uint64_t on;            /* event types of the current event */
        bool grading;           /* only state.* and enterprise.* */
        const char *what;       /* "rule sampling.x", for messages */
        Rule *rule;             /* collects aggregates; NULL in grading */
        /* set by the check, for W109 (absent() without per:) */
        const Node *absent_at;  /* the first absent() */
        const char *cur_field;  /* a $field an aggregate's where compares with */
        const char *event_field; /* a field of the current event read outside aggregates */
} CheckCtx;
Node *check_condition(Loader *L, Node *n, CheckCtx *cx);
/* Same for a number (score: an expression). */
Node *check_value(Loader *L, Node *n, CheckCtx *cx);
/* check.c's helpers that operators.c shares */
const char *check_type_str(uint8_t t);
void check_type_desc(const Node *n, char *buf, size_t size);     /* "enum grade", "number" */
void check_err(Loader *L, const Node *n, DiagCode c, const char *hint, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
Node *check_lit(Loader *L, const Node *at, Value v);              /* a literal in place of at */

/* operators.c: an operator whose operands are checked; false (or n
 * unchanged for check_fold) after reporting */
bool check_in(Loader *L, Node *n);
bool check_compare(Loader *L, Node *n);
bool check_strop(Loader *L, Node *n);
bool check_regex(Loader *L, Node *n, const CheckCtx *cx);
bool check_arith(Loader *L, Node *n);
Node *check_fold(Loader *L, Node *n);

/* compile.c */
uint32_t compile_program(Loader *L, Node *n, bool in_agg);
uint32_t compile_aggregate(Loader *L, Node *n); /* returns aggregate index */
uint32_t compile_set(Loader *L, uint8_t tag, const Value *v, uint32_t n);
uint32_t compile_const(Loader *L, Value v);
uint64_t compile_fingerprint(const RuleSet *rs, uint32_t prog, uint64_t h);
void compile_template(Loader *L, Rule *r, const YNode *n);

#endif
