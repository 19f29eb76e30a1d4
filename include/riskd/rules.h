/*
 * The compiled rule set: what src/rules/ produces from a rules directory
 * and what the engine, the codec and the tools consume.
 *
 * A RuleSet is immutable after rules_load() and reference-counted: a reload
 * builds a new one and swaps the pointer; evaluations in flight keep the old
 * one alive through their reference.
 *
 * Nothing here does string lookups at evaluation time: event fields are
 * addressed by slot, event types by id, flags by id, and each condition is a
 * Program of bytecode run by vm_run().
 */
#ifndef RISKD_RULES_H
#define RISKD_RULES_H

#include <stdbool.h>
#include <stdint.h>

#include "include/riskd/diag.h"
#include "include/riskd/value.h"

#define RULES_MAX_TYPES 64      /* event types per schema (a bitset) */
#define RULES_MAX_FLAGS 64      /* distinct flag names (a bitset) */
#define RULES_MAX_RULES 4096
#define RULES_MAX_SLOTS 1024    /* distinct typed field paths */
#define RULES_MAX_ENUM 256      /* values of one enum */
#define RULES_MAX_CODE (1u << 22)

typedef enum FieldType {
        FT_BOOL,
        FT_NUM,
        FT_STR,
        FT_ENUM,
        FT_TIME,
        FT_DUR,
} FieldType;

/*
 * What a string field holds, beyond being a string: the decoder checks it
 * and refuses a value that is not one as bad_identifier (decode.h).  The
 * value stays a string (VT_STR) for the rules.
 */
typedef enum FieldFormat {
        FF_NONE,
        FF_USCC,        /* 统一社会信用代码, GB 32100-2015: 18 characters, check character */
        FF_LICENSE,     /* 食品生产/经营许可证编号: SC or JY + 14 digits */
        FF_SAMPLE_CODE, /* 抽样单编号: DC or NCP + year (2) + area code (6) + serial (9) */
        FF_CATEGORY,    /* a classification of 1 to 4 levels, broad to narrow (食品分类):
                         * a JSON list of strings, or a string, read as "L1/L2/L3/L4" */
} FieldFormat;

#define CATEGORY_MAX_LEVELS 4

typedef struct EnumDef {
        char *name;            /* "sampling.result" or the named enum */
        char **values;
        char **labels;         /* [nvalues] text for people ("spoiled" → 变质), or NULL:
                                * schema.yaml gave the values as a list */
        uint32_t nvalues;
} EnumDef;

/* One declared field of one event type.  The same path with the same type
 * in several event types shares one slot, so a rule `on:` several types
 * addresses it the same way. */
typedef struct Field {
        char *path;            /* dotted: "product.name" */
        char **segs;           /* path split on '.' */
        uint32_t nsegs;
        FieldType type;
        const EnumDef *en;     /* FT_ENUM only */
        FieldFormat format;    /* FT_STR only: schema types uscc, license_no, sample_code, category */
        uint32_t slot;
        bool required;
        SrcPos pos;
} Field;

typedef struct EventType {
        char *name;
        uint32_t id;           /* bit in Rule.on */
        Field *fields;
        uint32_t nfields;
        SrcPos pos;
} EventType;

/* Where the envelope values live in every event (dotted paths). */
typedef struct Envelope {
        char *id, *type, *enterprise, *time;
        FieldFormat enterprise_format; /* envelope: enterprise: { path: ..., type: uscc } */
} Envelope;

typedef struct Schema {
        Envelope env;
        EventType *types;
        uint32_t ntypes;
        int32_t profile_type;  /* the type whose fields form enterprise.*; -1 none */
        uint32_t nslots;       /* size of a decoded event's slot array */
        FieldType *slot_type;  /* [nslots] */
        const EnumDef **slot_enum; /* [nslots] */
        char **slot_path;      /* [nslots] */
        EnumDef **enums;
        uint32_t nenums;
        int64_t display_offset_ms; /* display_offset: where {f:date} and {f:datetime}
                                    * print times ("+08:00" = 8h); 0: UTC */
} Schema;

typedef enum AggKind {
        AGG_COUNT,
        AGG_SUM,
        AGG_AVG,
        AGG_MIN,
        AGG_MAX,
        AGG_DISTINCT,
        AGG_ABSENT,
} AggKind;

#define PROG_NONE UINT32_MAX

/*
 * An aggregate over the enterprise's own history of one event type, in
 * event time over (now - window, now].  Rows are past events of `type`;
 * `where` runs with the row as the event and the current event as `$`.
 * row_slots lists every slot a row must keep for where/value (the engine
 * stores only those).
 */
typedef struct Aggregate {
        AggKind kind;
        uint32_t type;         /* event type id of the rows */
        int32_t value_slot;    /* sum/avg/min/max/distinct: the field; else -1 */
        uint32_t where;        /* program index or PROG_NONE */
        int64_t window_ms;     /* within D, or for D (absent) */
        bool uses_cur;         /* where refers to $fields */
        int32_t key_slot;      /* where is exactly FIELD == $FIELD (either way round): its
                                * slot, else -1 */
        uint32_t *row_slots;
        uint32_t nrow_slots;
        SrcPos pos;
} Aggregate;

/* A compiled piece of bytecode: code[start .. start+len) of the rule set. */
typedef struct Program {
        uint32_t start, len;
        uint32_t max_stack;
        uint8_t result;        /* ValueTag the checker proved (VT_BOOL for conditions) */
} Program;

/* A rule's severity (severity: in a rule file, "severity" in an alert):
 * the one list the enum, the names, the loader's check and riskctl test's
 * vocabulary are made from. */
#define SEVERITY_LIST(X) \
        X(SEV_INFO, "info") \
        X(SEV_LOW, "low") \
        X(SEV_MEDIUM, "medium") \
        X(SEV_HIGH, "high") \
        X(SEV_CRITICAL, "critical")

typedef enum Severity {
#define X(e, name) e,
        SEVERITY_LIST(X)
#undef X
        SEV_COUNT
} Severity;

extern const char *const severity_names[SEV_COUNT];

static inline const char *severity_str(Severity s)
{
        return (unsigned)s < SEV_COUNT ? severity_names[s] : "unknown";
}

/* A message template: literal text and value references, in order. */
typedef enum TplKind { TPL_TEXT, TPL_FIELD, TPL_PROFILE, TPL_STATE_SCORE, TPL_STATE_GRADE, TPL_RULE_ID } TplKind;
/* How a field prints: {f} as in JSON, {f:label}, {f:date}, {f:datetime}
 * (the compiler made sure the field has labels / is a time). */
typedef enum TplFormat { TPL_FMT_VALUE, TPL_FMT_LABEL, TPL_FMT_DATE, TPL_FMT_DATETIME } TplFormat;
typedef struct TplPart {
        TplKind kind;
        char *text;            /* TPL_TEXT; else the text for a null value ({f|text}),
                                * NULL: "null" */
        uint32_t len;
        uint32_t slot;         /* TPL_FIELD / TPL_PROFILE */
        TplFormat fmt;         /* TPL_FIELD / TPL_PROFILE */
} TplPart;
typedef struct Template {
        TplPart *parts;
        uint32_t nparts;
        char *src;
} Template;

typedef struct RuleFlag {
        uint32_t flag;         /* flag id */
        int64_t lifetime_ms;   /* 0 = forever: for a profile rule, while it matches
                                * (each profile update decides again); otherwise
                                * no expiry */
} RuleFlag;

typedef enum RuleStatus { RULE_ENABLED, RULE_SHADOW, RULE_DISABLED } RuleStatus;

/* Which score a rule's points feed (part:).  The index is the continuous
 * advisory score; the dynamic part is the official grade's latest on-site
 * evaluation (docs/rules.md, "The two scores"). */
typedef enum RulePart { PART_INDEX, PART_STATIC, PART_DYNAMIC } RulePart;

typedef struct Rule {
        char *id, *desc, *basis;
        uint32_t index;
        uint64_t on;           /* bitset of event type ids */
        uint32_t when;         /* program index (never PROG_NONE) */
        Severity severity;
        RuleStatus status;
        double score;          /* points; 0 = none */
        double max_score;      /* cap of live points; 0 = no cap */
        bool score_expr;       /* score: is an expression (a number from the event), the
                                * program score_prog; else the constant score */
        uint32_t score_prog;
        uint8_t part;          /* RulePart */
        bool replaces;         /* its contribution replaces the rule's previous one */
        int8_t raise, lower;   /* official grade steps within the cycle, 0 none */
        uint32_t *clears;      /* flag ids cleared when it fires */
        uint32_t nclears;
        /* closes: the rules whose open alerts it closes when it fires
         * (cause resolved, docs/rules.md §5.10): rule indexes */
        uint32_t *closes;
        uint32_t ncloses;
        bool closable;         /* named by some rule's closes: */
        /* its alerts have a lifecycle (open, escalated, closed): an
         * enabled event rule with expires:, rectify: or named by a
         * closes: (rules_lifecycle_finish) */
        bool lifecycle;
        int64_t expires_ms;    /* 0 = points never expire */
        int64_t cooldown_ms, for_ms, rectify_ms;
        int32_t per_slot;      /* per: field slot, -1 = per enterprise */
        RuleFlag *flags;
        uint32_t nflags;
        char **actions;
        uint32_t nactions;
        Template message;
        bool is_static;        /* on: the profile type: part of the static score */
        bool timer_driven;     /* contains absent(): evaluated when its timer fires */
        uint32_t arm_when;     /* timer_driven: the conjuncts of when that read only the event
                                * (fields and constants), PROG_NONE none; an event failing
                                * them arms no timer, as the timer would find when false */
        uint32_t *aggs;        /* aggregates its condition reads */
        uint32_t naggs;
        uint64_t fingerprint;  /* of the compiled form: equal => state survives reload */
        SrcPos pos;
} Rule;

typedef struct GradeBand {
        char *grade;
        double max;            /* inclusive upper bound of the score */
        bool has_max;          /* the last band has none */
        uint32_t mode;         /* index in Grading.modes */
        double per_year;
} GradeBand;

typedef struct Override {
        uint32_t when;         /* program (state.*, enterprise.* only) */
        int32_t grade;         /* absolute band index, or -1 */
        int32_t grade_step;    /* "+1"/"-1" relative, 0 none */
        int32_t mode;          /* index, or -1 */
        double per_year;       /* absolute when has_per_year */
        bool has_per_year;
        double per_year_step;  /* "+1" relative */
        SrcPos pos;
} Override;

/* grading.yaml official: the 2016 model (docs/rules.md, "The two
 * scores").  Absent (declared false): one grade from the index, as before. */
typedef struct Official {
        bool declared;
        uint32_t cycle_months; /* 12: yearly; divides 12 */
        uint32_t start_month, start_day; /* 1-12, 1-28: where a cycle begins */
        int64_t offset_ms;     /* of the local time the start date is in */
        double static_max, dynamic_max;
        int32_t max_raise, max_lower;  /* steps within one cycle */
        bool scale_static;     /* no evaluation yet: static scaled to the whole scale
                                * (unassessed: scaled), else static alone */
} Official;

typedef struct Grading {
        GradeBand *bands;
        uint32_t nbands;
        char **modes;
        uint32_t nmodes;
        Override *overrides;
        uint32_t noverrides;
        int64_t dwell_ms;      /* hysteresis: how long below before falling */
        Official official;
} Grading;

typedef struct ConstSet {
        /* a sorted, de-duplicated set of string or number constants, or an
         * enum bitmap (words) */
        uint8_t tag;           /* VT_STR, VT_NUM, VT_ENUM */
        uint32_t n;
        Value *v;              /* sorted (VT_STR, VT_NUM) */
        uint64_t *bits;        /* VT_ENUM: RULES_MAX_ENUM bits */
} ConstSet;

typedef struct RuleSet {
        int refs;
        char *dir;
        char version[17];      /* hex hash of every loaded file's bytes */
        Schema schema;
        Rule *rules;
        uint32_t nrules;
        Aggregate *aggs;
        uint32_t naggs;
        char **flags;          /* flag names by id */
        uint32_t nflags;
        Grading grading;
        uint32_t nlists, nmacros; /* for the summary line */

        /* the bytecode of every program, and the shared pools */
        uint32_t *code;
        uint32_t ncode;
        Program *progs;
        uint32_t nprogs;
        Value *consts;
        uint32_t nconsts;
        ConstSet *sets;
        uint32_t nsets;
        void **regexes;        /* VmRegex * (src/rules/vm.h) */
        char **regex_src;
        char **regex_rule;     /* the id of the rule whose condition holds it, or "grading" */
        uint32_t nregexes;

        struct Arena *arena;   /* owns every string above */
} RuleSet;

/*
 * Load and compile a rules directory.  Returns 0 with *ret set (refs = 1)
 * when there is no error (warnings allowed); 1 when there were errors (every
 * one is in dl, *ret untouched); < 0 on a fatal errno.
 */
int rules_load(const char *dir, DiagList *dl, RuleSet **ret);
/* Same, from in-memory files (fuzzer, tests): names[i] / texts[i]. */
int rules_load_mem(const char *dir, const char *const *names, const char *const *texts,
                   const size_t *lens, uint32_t n, DiagList *dl, RuleSet **ret);
RuleSet *rules_ref(RuleSet *rs);
RuleSet *rules_unref(RuleSet *rs);

const Rule *rules_find(const RuleSet *rs, const char *id);
/*
 * The engine errors of regex i (a `matches` whose engine failed: the
 * condition took it as false, docs/rules.md 6.4) since the rules were
 * loaded, and since the last rules_regex_errors_take (which the daemon's
 * metric uses).  Call them on the thread that evaluates the rules.
 */
uint64_t rules_regex_errors(const RuleSet *rs, uint32_t i);
uint64_t rules_regex_errors_take(const RuleSet *rs, uint32_t i);
int32_t rules_type_id(const RuleSet *rs, const char *name);
int32_t rules_flag_id(const RuleSet *rs, const char *name);

/* What an aggregate computes (kind, type, field, window, where), by
 * meaning: equal across rule sets that contain the same aggregate, so state
 * survives a restore or a reload. */
uint64_t rules_agg_fingerprint(const RuleSet *rs, uint32_t agg);

/* ---- what a program reads (src/rules/reads.c) ----
 *
 * What the engine derives from the rules once (engine_new: the profile
 * fields it keeps, a timer's snapshot of the event, the conditions it may
 * share between rules, the overrides it must decide again), answered here
 * from the bytecode so that nothing outside src/rules reads it. */

typedef enum ProgRead {
        READ_FIELD,     /* the event's fields: slots */
        READ_CUR,       /* $field, the triggering event's: slots */
        READ_PROFILE,   /* the enterprise profile's fields: slots */
        READ_AGG,       /* aggregates: indexes into RuleSet.aggs */
} ProgRead;

/* Adds to (*v)[0..*n) (a VEC: capacity *cap) each slot or aggregate of
 * kind what that program prog reads and *v does not hold yet; for every
 * kind but READ_AGG the where: programs of the aggregates it reads count
 * too.  PROG_NONE reads nothing. */
void rules_prog_reads(const RuleSet *rs, uint32_t prog, ProgRead what, uint32_t **v, uint32_t *n, uint32_t *cap);
/* It reads the event alone (its fields, constants, the event time): no
 * $field, profile, score, grade, mode, frequency, flag or aggregate, so it
 * answers the same for every rule with the same code on the same event. */
bool rules_prog_event_only(const RuleSet *rs, uint32_t prog);
/* The same code, jumps compared by where they point within each. */
bool rules_prog_same(const RuleSet *rs, uint32_t a, uint32_t b);
/* It reads the clock or an aggregate: its answer may change with time
 * alone, with no change of what else it reads. */
bool rules_prog_volatile(const RuleSet *rs, uint32_t prog);

/* Disassemble a program / a whole rule to text (riskctl disasm). */
struct Buf;
void rules_disasm_prog(const RuleSet *rs, uint32_t prog, struct Buf *out);
void rules_disasm_rule(const RuleSet *rs, const Rule *r, struct Buf *out);

/* ---- evaluation ---- */

/* What the engine exposes to a running program. */
typedef struct VmState {
        double score;
        int32_t grade;          /* band index, -1 none yet */
        int32_t mode;           /* mode index, -1 none yet */
        double per_year;
        uint64_t flags;         /* bit per flag id: set and not expired */
} VmState;

typedef struct VmFrame VmFrame;
typedef int (*VmAggFn)(void *ud, const RuleSet *rs, uint32_t agg, const VmFrame *f, Value *ret);

struct VmFrame {
        const Value *event;     /* slots of the event under test (a row in aggregates) */
        const Value *cur;       /* the triggering event ($field); == event at top level */
        const Value *profile;   /* enterprise profile slots, or NULL (all null) */
        const VmState *state;   /* NULL = initial state */
        int64_t now;            /* event time of the evaluation, ms */
        VmAggFn agg;            /* NULL: aggregates are null */
        void *agg_ud;
        char *scratch;          /* for lower(); owned by the caller, reused */
        uint32_t scratch_size, scratch_used;
};

/*
 * Run program prog.  Sets *ret (for conditions a VT_BOOL or VT_NULL).
 * Returns 0, or > 0 when evaluation had to stop (VM_STACK: stack overflow,
 * which the compiler prevents; VM_AGG: the aggregate hook failed).
 * Never allocates.
 */
enum { VM_OK = 0, VM_STACK = 1, VM_AGG = 2, VM_BADCODE = 3 };
int vm_run(const RuleSet *rs, uint32_t prog, const VmFrame *f, Value *ret);
/* Convenience: run a condition; null and errors are false. */
bool vm_test(const RuleSet *rs, uint32_t prog, const VmFrame *f);

#endif
