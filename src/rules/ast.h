/*
 * The expression syntax tree, private to src/rules/.
 *
 * The parser (parser.c) builds it from the text of a `when:` (or an
 * override's `when:`, a macro body, an exception); the checker (check.c)
 * resolves names, expands macros, assigns types and folds constants in
 * place; the compiler (compile.c) turns it into bytecode.
 *
 * Every node records where its text starts (byte offset into the expression
 * text) and how long it is, so any later stage can point at it.
 */
#ifndef RISKD_RULES_AST_H
#define RISKD_RULES_AST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "include/riskd/diag.h"
#include "include/riskd/rules.h"
#include "include/riskd/util.h"
#include "include/riskd/value.h"

typedef enum NodeKind {
        N_LIT,      /* lit: null, bool, number, string, duration */
        N_LIST,     /* [a, b, ...]: args */
        N_NAME,     /* a bare or dotted name: name = "result", "product.name",
                     * "enterprise.category", "state.flags.problem_lead",
                     * or a macro / list name; resolved by the checker */
        N_CUR,      /* $name: a field of the triggering event (in aggregates) */
        N_UNARY,    /* op: T_NOT, T_MINUS; a */
        N_BINARY,   /* op: a token kind below; a, b */
        N_CALL,     /* name(args): exists, lower, abs */
        N_AGG,      /* agg(...): see fields agg_* */
} NodeKind;

/* Token kinds; also used as the operator of N_UNARY / N_BINARY. */
typedef enum TokKind {
        T_EOF,
        T_NUMBER,   /* 12, 3.5, 1e3 */
        T_DURATION, /* 45s 30m 12h 180d 2w 500ms */
        T_STRING,   /* "..." or '...' with \" \\ \n \t \uXXXX escapes */
        T_IDENT,    /* letters, digits, _ ; dots joined by the parser */
        T_DOLLAR,   /* $ */
        T_DOT,
        T_COMMA,
        T_LPAREN, T_RPAREN, T_LBRACK, T_RBRACK,
        T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE,
        T_PLUS, T_MINUS, T_STAR, T_SLASH, T_PERCENT,
        /* keywords */
        T_AND, T_OR, T_NOT, T_IN, T_NOT_IN /* binary op only */,
        T_CONTAINS, T_STARTSWITH, T_ENDSWITH, T_MATCHES,
        T_WHERE, T_WITHIN, T_FOR,
        T_TRUE, T_FALSE, T_NULL,
        T_ERROR,    /* lexer error already reported */
} TokKind;

typedef struct Token {
        TokKind kind;
        uint32_t off, len;   /* byte range in the expression text */
        /* T_NUMBER: num; T_DURATION: ms; T_STRING: str (unescaped, arena) */
        double num;
        int64_t ms;
        char *str;
        uint32_t slen;
} Token;

typedef struct Node Node;
struct Node {
        NodeKind kind;
        TokKind op;
        uint32_t off, len;     /* byte range of the whole node's text */

        Value lit;             /* N_LIT (strings point into the arena) */
        char *name;            /* N_NAME, N_CUR, N_CALL (function), N_AGG (kind name) */
        Node *a, *b;           /* N_UNARY (a), N_BINARY (a, b) */
        Node **args;           /* N_LIST items, N_CALL arguments */
        uint32_t nargs;

        /* N_AGG: count(TYPE where COND within D)
         *        sum(TYPE.FIELD where COND within D)
         *        absent(TYPE where COND for D) */
        AggKind agg;
        char *agg_type;        /* "sampling" */
        char *agg_field;       /* "temp_c" for sum(coldchain.temp_c ...), else NULL */
        uint32_t agg_target_off, agg_target_len; /* the TYPE[.FIELD] text */
        Node *where;           /* may be NULL */
        Node *window;          /* N_LIT duration (or any node; checked later) */
        bool window_is_for;    /* `for` (absent) instead of `within` */

        /* filled by the checker */
        uint8_t type;          /* ValueTag of the result; VT_NULL for null literal */
        const EnumDef *en;     /* VT_ENUM: which enum */
        bool is_list_type;     /* N_LIST or a named list */
        uint8_t elem_type;     /* list element type */
        int32_t slot;          /* resolved field/profile slot, flag id, set id... */
        int32_t ref;           /* what N_NAME resolved to (check.c's RefKind) */
        uint32_t src_id;       /* which ExprSrc it came from (macro bodies differ) */
};

/* lexer.c: tokenise the whole text into *ret (arena-allocated, ending with
 * T_EOF).  Errors (E021 unterminated_string, E023 bad_literal, E020 for an
 * unexpected character) are added to dl; the bad token becomes T_ERROR.
 * Returns the number of tokens including T_EOF. */
uint32_t lex_all(Arena *ar, const ExprSrc *src, DiagList *dl, Token **ret);
const char *tok_kind_str(TokKind k); /* "'and'", "string", "end of expression" */

/* parser.c: parse one expression.  Returns NULL after reporting E020 (and
 * lexer errors).  Precedence, lowest first:
 *   or;  and;  not;  == != < <= > >= in, not in, contains, startswith,
 *   endswith, matches (non-associative);  + -;  * / %;  unary -;  primary.
 * Aggregates: count sum avg min max distinct absent, recognised by a name
 * followed by '(' whose argument starts with an event type name. */
Node *expr_parse(Arena *ar, const ExprSrc *src, DiagList *dl);

/* Deep copy (macro expansion keeps the original for other users). */
Node *node_clone(Arena *ar, const Node *n);
/* Debug/test form, e.g. (and (== result "fail") (in hazard toxic)). */
void node_print(const Node *n, Buf *out);

#endif
