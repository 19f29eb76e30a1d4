/*
 * Diagnostics of the rule compiler: every problem found while loading a
 * rules directory becomes one Diag with a stable code, a position and a
 * message; loading goes on after an error so that an author sees them all.
 *
 * The codes are part of riskd's interface (golden tests, editors and CI
 * scripts match on them): never renumber, only add.
 */
#ifndef RISKD_DIAG_H
#define RISKD_DIAG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* X(code, name, level) — level E error, W warning. */
#define DIAG_CODE_LIST(X)                                                   \
        X(E001, yaml_syntax, E)          /* the file is not valid YAML */    \
        X(E002, io_error, E)             /* a file or directory unreadable */\
        X(E003, wrong_node, E)           /* mapping/sequence/scalar expected */ \
        X(E004, missing_key, E)          /* a required key is absent */      \
        X(E005, duplicate_key, E)        /* the same key twice in a mapping */ \
        X(E006, bad_value, E)            /* a key's value is not allowed */  \
        X(E007, bad_duration, E)         /* not a duration like 30m, 180d */ \
        X(E008, bad_number, E)           /* not a number, or out of range */ \
        X(E010, duplicate_rule, E)       /* two rules with one id */         \
        X(E011, duplicate_name, E)       /* list/macro/type/field defined twice */ \
        X(E012, bad_identifier, E)       /* an id or name with bad characters */ \
        X(E020, syntax_error, E)         /* expression does not parse */    \
        X(E021, unterminated_string, E)  /* a string literal is not closed */ \
        X(E022, bad_regex, E)            /* the regex engine refused the pattern */    \
        X(E023, bad_literal, E)          /* malformed number/duration/time literal */ \
        X(E030, unknown_event_type, E)   /* on:, aggregate or append names no type */ \
        X(E031, unknown_field, E)        /* no such field of the event type */ \
        X(E032, bad_enum_value, E)       /* not a value of the enum */      \
        X(E033, type_mismatch, E)        /* operand types do not fit */     \
        X(E034, unknown_list, E)         /* in/not in names no list */      \
        X(E035, unknown_macro, E)        /* an append names no macro */     \
        X(E036, recursive_macro, E)      /* a macro refers to itself */     \
        X(E037, unknown_function, E)     /* f(...) is not a function */     \
        X(E038, bad_arguments, E)        /* wrong number or kind of args */ \
        X(E039, bad_aggregate, E)        /* aggregate missing within/for etc. */ \
        X(E040, misplaced_reference, E)  /* $field outside an aggregate... */ \
        X(E041, unknown_flag, E)         /* state.flags.X never set by a rule */ \
        X(E042, unknown_state, E)        /* state.X is not a state value */ \
        X(E043, bad_template, E)         /* message placeholder problem */  \
        X(E044, unknown_rule, E)         /* append names no rule */         \
        X(E045, bad_exception, E)        /* exception shape or values wrong */ \
        X(E046, not_constant, E)         /* a list item or regex must be a literal */ \
        X(E047, conflicting_keys, E)     /* rule keys that cannot go together */ \
        X(E050, band_order, E)           /* grading bands not ascending */  \
        X(E051, bad_grade, E)            /* unknown grade or relative step */ \
        X(E052, bad_grading, E)          /* other grading.yaml problem */   \
        X(E053, bad_official, E)         /* grading.yaml official: problem */ \
        X(E054, no_official, E)          /* part: dynamic, raise:, lower: without official: */ \
        X(E060, bad_schema, E)           /* schema.yaml problem */          \
        X(E061, limit_exceeded, E)       /* too many rules/fields/constants */ \
        X(W101, unknown_key, W)          /* a key riskd does not know */    \
        X(W102, unused_list, W)          /* a list nothing uses */          \
        X(W103, unused_macro, W)         /* a macro nothing uses */         \
        X(W104, always_false, W)         /* a comparison that can never hold */ \
        X(W105, shadowed_rule, W)        /* same trigger and condition as an earlier rule */ \
        X(W106, always_true, W)          /* a condition that always holds */ \
        X(W107, unused_flag, W)          /* a flag set but read nowhere */ \
        X(W108, score_never_expires, W)  /* score: without expires: */       \
        X(W109, absent_without_per, W)   /* absent() and event-specific tests, no per: */

/* The daemon's configuration (riskd.yaml, src/daemon/config.c): codes of
 * their own, listed in riskd.yaml(5); errors but for C020 (a warning).
 * C015..C019 are reserved. */
#define DIAG_CONFIG_CODE_LIST(X)                                            \
        X(C001, config_yaml, E)          /* the file is not valid YAML */    \
        X(C002, config_io, E)            /* the file cannot be read */       \
        X(C003, config_wrong_node, E)    /* mapping/list/scalar expected */  \
        X(C004, unknown_setting, E)      /* no such setting */               \
        X(C005, duplicate_setting, E)    /* a setting or list item twice */  \
        X(C006, missing_setting, E)      /* brokers: absent or empty */      \
        X(C007, bad_setting, E)          /* a value of the wrong form or out of range */ \
        X(C008, bad_topic, E)            /* a topic name riskd cannot use */ \
        X(C009, bad_listen, E)           /* http_listen is not a numeric HOST:PORT */ \
        X(C010, kafka_property, E)       /* a kafka: property librdkafka or riskd refuses */ \
        X(C011, kafka_client, E)         /* librdkafka refuses a client built from the settings */ \
        X(C012, bad_rules, E)            /* the rules directory cannot be read or has errors */ \
        X(C013, reload_token, E)         /* http_reload: no token file, or one that cannot be used */ \
        X(C014, token_file_mode, E)      /* the token file is open to the group or others */ \
        X(C020, config_mode, W)          /* the file is readable or writable by others */

typedef enum DiagCode {
#define X(code, name, lvl) DIAG_##code,
        DIAG_CODE_LIST(X)
        DIAG_CONFIG_CODE_LIST(X)
#undef X
        _DIAG_CODE_MAX
} DiagCode;

typedef enum DiagLevel {
        DIAG_LEVEL_ERROR,
        DIAG_LEVEL_WARNING,
} DiagLevel;

/* A position in a source file.  line and col are 1-based; col counts code
 * points (as editors do); len is the width of the bad token in code points
 * (0 = unknown, a single caret). */
typedef struct SrcPos {
        const char *file; /* owned by the rule set / loader, outlives the diag */
        uint32_t line, col, len;
} SrcPos;

/* A text taken from a file (an expression, a template) and how its byte
 * offsets become file positions: the YAML tree fills it for a scalar
 * (which may be quoted or folded: map maps an offset in the scalar's value
 * to a line and column); without map the text is line 1 of file. */
typedef struct ExprSrc {
        uint32_t id;           /* stamped into Node.src_id by the parser */
        const char *file;
        const char *text;      /* the scalar value (NUL terminated) */
        size_t len;
        void *ud;
        /* Position of byte offset off in text; len is in bytes and becomes
         * a width in code points. */
        SrcPos (*map)(const struct ExprSrc *src, uint32_t off, uint32_t len);
} ExprSrc;

SrcPos exprsrc_pos(const ExprSrc *src, uint32_t off, uint32_t len);

/* A second place that explains a diagnostic ("note: the flow sequence
 * opened here"), with a position and source line of its own. */
typedef struct DiagNote {
        char *file;     /* owned */
        uint32_t line, col, len;
        char *message;  /* owned */
        char *srcline;  /* owned copy of the source line; may be NULL */
} DiagNote;

typedef struct Diag {
        DiagCode code;
        DiagLevel level;
        char *file;     /* owned */
        uint32_t line, col, len;
        char *message;  /* owned */
        char *hint;     /* owned; "did you mean", valid values...; may be NULL */
        char *srcline;  /* owned copy of the source line; may be NULL */
        DiagNote *notes; /* owned; nnotes of them, in the order added */
        uint32_t nnotes;
} Diag;

typedef struct DiagList {
        Diag *v;
        uint32_t n, cap;
        uint32_t nerrors, nwarnings;
        uint32_t max;   /* stop recording after this many (0 = 1000) */
        bool last_dropped; /* the latest diag_add was over max: its notes go too */
} DiagList;

const char *diag_code_str(DiagCode c);  /* "E031" */
const char *diag_code_name(DiagCode c); /* "unknown_field" */
DiagLevel diag_code_level(DiagCode c);

/* The source line is looked up through a hook so that diag.c needs no
 * knowledge of how files are kept. */
typedef const char *(*DiagLineFn)(void *ud, const char *file, uint32_t line, uint32_t *len);
void diag_set_line_source(DiagLineFn fn, void *ud);

void diag_add(DiagList *dl, DiagCode code, SrcPos pos, const char *hint, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
/* A note to the diagnostic added last (dropped with it when over max). */
void diag_note(DiagList *dl, SrcPos pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_list_deinit(DiagList *dl);
/* Sort by file, line, column, code (stable, deterministic output). */
void diag_list_sort(DiagList *dl);

/* "file:line:col: error[E031]: message" + source line + caret + hint, then
 * each note as "file:line:col: note: message" + source line + caret. */
void diag_print_text(FILE *f, const DiagList *dl, bool color);
/* One JSON document: {"diagnostics":[...],"errors":N,"warnings":N,...};
 * each diagnostic has "notes": [{file, line, column, length, message,
 * source}] (empty when it has none). */
void diag_print_json(FILE *f, const DiagList *dl, const char *summary_json);

/* Suggestion helper: the candidate closest to word (edit distance <= 2 or a
 * case-insensitive match), or NULL. */
const char *diag_suggest(const char *word, const char *const *cands, uint32_t n);

/* The hint for a name that is none of names[0..n): "did you mean 'x'? "
 * when one is close, then label and every name ("lists: a b"), then none
 * (e.g. " none") when there are no names at all; appended to h. */
struct Buf;
void diag_hint_names(struct Buf *h, const char *word, const char *const *names, uint32_t n, const char *label,
                     const char *none);

#endif
