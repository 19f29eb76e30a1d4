/*
 * The parser of the expression language: one expression's tokens (from
 * lexer.c) become a tree of Nodes (ast.h) by recursive descent, one
 * function per precedence level, lowest first:
 *
 *   or → and → not (prefix) → comparison (non-associative) → + - → * / %
 *      → unary - → primary (literal, name, $name, call, aggregate, list,
 *        parentheses)
 *
 * Invariants:
 * - Every node records the byte range of its own text (off, len) and the
 *   ExprSrc id it came from; parentheses around an operand belong to the
 *   enclosing node's range, not to the operand's.
 * - Nodes and their strings live in the caller's arena; tokens live in a
 *   scratch arena freed before expr_parse returns.
 * - At most one syntax error (E020) is reported per expression: the first.
 *   Errors the lexer reported are never reported again; a malformed literal
 *   stands in for an operand so that a real syntax error after it is still
 *   found.  Any error makes expr_parse return NULL.
 * - Nesting depth and tree height are bounded (PARSE_MAX_DEPTH,
 *   PARSE_MAX_HEIGHT) so that no later recursive stage can run out of stack
 *   on hostile input.
 *
 * One file of ~900 lines, kept whole (issue 15): the levels are one
 * mutual recursion (a primary's parentheses, arguments, lists and where
 * start again at parse_or) sharing the Parser's depth count and its
 * one-error rule; split, each part would need the others' statics.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "src/rules/ast.h"

#define PARSE_MAX_DEPTH 200   /* parentheses, lists, calls, not, unary - */
#define PARSE_MAX_HEIGHT 1000 /* operators on one path from the root */

/* The lexer marks a T_ERROR that replaced a literal (see lexer.c). */
#define LEX_ERROR_LITERAL 1.0

typedef struct Parser {
        Arena *ar;             /* the caller's: nodes and their strings */
        const ExprSrc *src;
        DiagList *dl;
        const Token *t;        /* ends with T_EOF, which is never passed */
        uint32_t i;
        uint32_t depth;
        bool failed;           /* an error was reported: unwind */
        bool lex_failed;       /* the lexer reported something */
} Parser;

/* A parsed operand: the node, and the text it was written as (with any
 * parentheses around it), and the height of its tree. */
typedef struct Sub {
        Node *n;
        uint32_t off, end;
        uint32_t height;
} Sub;

static const struct {
        const char *name;
        AggKind kind;
} parse_aggs[] = {
        [AGG_COUNT] = {"count", AGG_COUNT},
        [AGG_SUM] = {"sum", AGG_SUM},
        [AGG_AVG] = {"avg", AGG_AVG},
        [AGG_MIN] = {"min", AGG_MIN},
        [AGG_MAX] = {"max", AGG_MAX},
        [AGG_DISTINCT] = {"distinct", AGG_DISTINCT},
        [AGG_ABSENT] = {"absent", AGG_ABSENT},
};

static bool parse_or(Parser *p, Sub *ret);
static bool parse_add(Parser *p, Sub *ret);

/* ---- tokens and errors ---- */

static const Token *parse_tok(const Parser *p)
{
        return &p->t[p->i];
}

static TokKind parse_peek(const Parser *p)
{
        return p->t[p->i].kind;
}

static const Token *parse_next(Parser *p)
{
        const Token *t = &p->t[p->i];
        if (t->kind != T_EOF)
                p->i++;
        return t;
}

/* A description of a token for messages: "name 'x'", "'and'", "end of
 * expression".  Long text is cut on a character boundary. */
static void parse_tok_desc(const Parser *p, const Token *t, char *buf, size_t size)
{
        const char *s = p->src->text + t->off;
        size_t n = t->len;
        const char *dots = "";
        if (n > 40) {
                n = 40;
                while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
                        n--;
                dots = "...";
        }
        switch (t->kind) {
        case T_IDENT:
                snprintf(buf, size, "name '%.*s%s'", (int)n, s, dots);
                break;
        case T_NUMBER:
        case T_DURATION:
        case T_STRING:
                snprintf(buf, size, "%s %.*s%s", tok_kind_str(t->kind), (int)n, s, dots);
                break;
        case T_ERROR:
                snprintf(buf, size, "'%.*s%s'", (int)n, s, dots);
                break;
        default:
                snprintf(buf, size, "%s", tok_kind_str(t->kind));
                break;
        }
}

/* "column 5", or "line 3, column 5" when it is not on the line of at. */
static void parse_where_str(const Parser *p, const Token *what, const Token *at, char *buf, size_t size)
{
        SrcPos w = exprsrc_pos(p->src, what->off, 1);
        SrcPos a = exprsrc_pos(p->src, at->off, at->len);
        if (w.line == a.line)
                snprintf(buf, size, "column %u", w.col);
        else
                snprintf(buf, size, "line %u, column %u", w.line, w.col);
}

static void parse_err(Parser *p, const Token *at, const char *hint, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void parse_err(Parser *p, const Token *at, const char *hint, const char *fmt, ...)
{
        if (p->failed)
                return;
        p->failed = true;
        if (at->kind == T_ERROR)
                return; /* the lexer said what is wrong with it */
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        diag_add(p->dl, DIAG_E020, exprsrc_pos(p->src, at->off, at->len), hint, "%s", msg);
}

/* A hint for a token found where an operator (or the end) was expected. */
static const char *parse_op_hint(const Parser *p, const Token *t)
{
        static const struct {
                const char *word, *hint;
        } upper[] = {
                {"and", "keywords are lowercase: and"},
                {"or", "keywords are lowercase: or"},
                {"not", "keywords are lowercase: not"},
                {"in", "keywords are lowercase: in"},
                {"contains", "keywords are lowercase: contains"},
                {"startswith", "keywords are lowercase: startswith"},
                {"endswith", "keywords are lowercase: endswith"},
                {"matches", "keywords are lowercase: matches"},
                {"within", "keywords are lowercase: within"},
                {"where", "keywords are lowercase: where"},
                {"for", "keywords are lowercase: for"},
        };
        switch (t->kind) {
        case T_IDENT:
                for (size_t k = 0; k < ARRAY_SIZE(upper); k++)
                        if (strlen(upper[k].word) == t->len &&
                            strncasecmp(upper[k].word, p->src->text + t->off, t->len) == 0)
                                return upper[k].hint;
                /* fall through */
        case T_NUMBER:
        case T_DURATION:
        case T_STRING:
        case T_TRUE:
        case T_FALSE:
        case T_NULL:
        case T_DOLLAR:
        case T_LPAREN:
        case T_LBRACK:
                return "join conditions with and / or; compare values with ==, <, in ...";
        case T_NOT:
                return "negate the whole condition: not (x in list), or use not in";
        case T_WHERE:
        case T_WITHIN:
        case T_FOR:
                return "where, within and for are only allowed inside an aggregate: count(TYPE where COND within D)";
        default:
                return NULL;
        }
}

/* Reports that an operand was expected at the current token. */
static void parse_err_operand(Parser *p)
{
        const Token *t = parse_tok(p);
        char found[96], after[96];
        parse_tok_desc(p, t, found, sizeof(found));
        const char *hint = NULL;
        if (t->kind == T_NOT_IN)
                hint = "not in is written between a value and a list: x not in [a, b]";
        else if (t->kind == T_NOT && p->i > 0)
                hint = "not applies to a whole condition: write not (a == b)";
        else if (t->kind == T_DOT)
                hint = "numbers start with a digit: 0.5";
        else if (t->kind == T_WHERE || t->kind == T_WITHIN || t->kind == T_FOR)
                hint = parse_op_hint(p, t);
        if (p->i == 0) {
                parse_err(p, t, hint, "expected an expression, found %s", found);
                return;
        }
        parse_tok_desc(p, &p->t[p->i - 1], after, sizeof(after));
        parse_err(p, t, hint, "expected an operand after %s, found %s", after, found);
}

static bool parse_enter(Parser *p)
{
        if (++p->depth <= PARSE_MAX_DEPTH)
                return true;
        parse_err(p, parse_tok(p), "split the expression into macros",
                  "expected at most %d nested levels of parentheses, calls and operators, found more",
                  PARSE_MAX_DEPTH);
        return false;
}

/* ---- nodes ---- */

static Node *parse_node(Parser *p, NodeKind k, uint32_t off, uint32_t end)
{
        Node *n = arena_alloc(p->ar, sizeof(*n));
        n->kind = k;
        n->off = off;
        n->len = end - off;
        n->src_id = p->src->id;
        return n;
}

static bool parse_height(Parser *p, Sub *s, uint32_t h, const Token *at)
{
        s->height = h;
        if (h <= PARSE_MAX_HEIGHT)
                return true;
        parse_err(p, at, "put alternatives in a list (x in [a, b, c]) or split the expression into macros",
                  "expected at most %d operators in a chain, found more", PARSE_MAX_HEIGHT);
        return false;
}

static bool parse_binary(Parser *p, TokKind op, const Token *at, const Sub *a, const Sub *b, Sub *ret)
{
        /* ret may be a */
        uint32_t h = (a->height > b->height ? a->height : b->height) + 1;
        Node *n = parse_node(p, N_BINARY, a->off, b->end);
        n->op = op;
        n->a = a->n;
        n->b = b->n;
        *ret = (Sub){.n = n, .off = a->off, .end = b->end};
        return parse_height(p, ret, h, at);
}

static bool parse_unary_node(Parser *p, TokKind op, const Token *at, const Sub *a, Sub *ret)
{
        uint32_t h = a->height + 1; /* ret may be a */
        Node *n = parse_node(p, N_UNARY, at->off, a->end);
        n->op = op;
        n->a = a->n;
        *ret = (Sub){.n = n, .off = at->off, .end = a->end};
        return parse_height(p, ret, h, at);
}

/* A growable array of nodes in the arena (call arguments, list items). */
typedef struct NodeVec {
        Node **v;
        uint32_t n, cap;
        uint32_t height;
} NodeVec;

static void parse_vec_push(Parser *p, NodeVec *nv, const Sub *s)
{
        if (nv->n == nv->cap) {
                uint32_t cap = nv->cap ? nv->cap * 2 : 4;
                Node **v = arena_alloc(p->ar, (size_t)cap * sizeof(Node *));
                if (nv->n)
                        memcpy(v, nv->v, (size_t)nv->n * sizeof(Node *));
                nv->v = v;
                nv->cap = cap;
        }
        nv->v[nv->n++] = s->n;
        if (s->height > nv->height)
                nv->height = s->height;
}

/* ---- primaries ---- */

static bool parse_is_keyword(TokKind k)
{
        return k >= T_AND && k <= T_NULL && k != T_NOT_IN;
}

/* IDENT ('.' NAME)*: one dotted name, copied into the arena.  After a dot
 * a keyword is a name too (`x.for` can only mean a field). */
static bool parse_dotted(Parser *p, char **name, uint32_t *off, uint32_t *end)
{
        uint32_t first = p->i, last = p->i;
        size_t size = p->t[first].len;
        p->i++;
        while (parse_peek(p) == T_DOT) {
                p->i++;
                const Token *t = parse_tok(p);
                if (t->kind != T_IDENT && !parse_is_keyword(t->kind)) {
                        char found[96];
                        parse_tok_desc(p, t, found, sizeof(found));
                        parse_err(p, t, "names are joined by dots: product.name", "expected a name after '.', found %s",
                                  found);
                        return false;
                }
                last = p->i++;
                size += 1 + t->len;
        }
        char *s = arena_alloc(p->ar, size + 1);
        size_t o = 0;
        for (uint32_t k = first; k <= last; k += 2) {
                if (k > first)
                        s[o++] = '.';
                memcpy(s + o, p->src->text + p->t[k].off, p->t[k].len);
                o += p->t[k].len;
        }
        s[o] = 0;
        *name = s;
        *off = p->t[first].off;
        *end = p->t[last].off + p->t[last].len;
        return true;
}

static const char *parse_agg_usage(AggKind k)
{
        switch (k) {
        case AGG_COUNT:
                return "count(TYPE [where COND] within D), e.g. count(sampling where result == \"fail\" within 90d)";
        case AGG_ABSENT:
                return "absent(TYPE [where COND] for D), e.g. absent(coldchain where device_id == $device_id for 2h)";
        default:
                return "sum, avg, min, max, distinct: f(TYPE.FIELD [where COND] within D), e.g. avg(coldchain.temp_c within 1h)";
        }
}

/* name '(' already seen: TYPE[.FIELD] [where EXPR] [within|for EXPR] ')' */
static bool parse_agg(Parser *p, AggKind kind, const Token *name, Sub *ret)
{
        const Token *lp = parse_next(p);
        const char *kname = parse_aggs[kind].name;
        char found[96];
        if (parse_peek(p) != T_IDENT) {
                parse_tok_desc(p, parse_tok(p), found, sizeof(found));
                parse_err(p, parse_tok(p), parse_agg_usage(kind), "expected an event type after '%s(', found %s", kname,
                          found);
                return false;
        }
        char *target;
        uint32_t toff, tend;
        if (!parse_dotted(p, &target, &toff, &tend))
                return false;
        Node *n = parse_node(p, N_AGG, name->off, name->off);
        n->name = arena_strdup(p->ar, kname);
        n->agg = kind;
        n->agg_target_off = toff;
        n->agg_target_len = tend - toff;
        char *dot = strchr(target, '.');
        if (dot) {
                n->agg_type = arena_strndup(p->ar, target, (size_t)(dot - target));
                n->agg_field = dot + 1;
        } else {
                n->agg_type = target;
        }
        uint32_t h = 0;
        bool seen_where = false;
        if (parse_peek(p) == T_WHERE) {
                parse_next(p);
                Sub w;
                if (!parse_or(p, &w))
                        return false;
                n->where = w.n;
                h = w.height;
                seen_where = true;
        }
        bool seen_window = false;
        if (parse_peek(p) == T_WITHIN || parse_peek(p) == T_FOR) {
                n->window_is_for = parse_next(p)->kind == T_FOR;
                Sub w;
                if (!parse_add(p, &w))
                        return false;
                n->window = w.n;
                if (w.height > h)
                        h = w.height;
                seen_window = true;
        }
        const Token *t = parse_tok(p);
        if (t->kind != T_RPAREN) {
                const char *win = kind == AGG_ABSENT ? "'for'" : "'within'";
                char at[64];
                parse_tok_desc(p, t, found, sizeof(found));
                parse_where_str(p, lp, t, at, sizeof(at));
                if (seen_window)
                        parse_err(p, t, parse_agg_usage(kind), "expected ')' to close the '%s(' at %s, found %s", kname,
                                  at, found);
                else if (seen_where)
                        parse_err(p, t, parse_agg_usage(kind), "expected %s or ')' after the where condition of %s(), found %s",
                                  win, kname, found);
                else
                        parse_err(p, t, parse_agg_usage(kind), "expected 'where', %s or ')' after '%s(%s', found %s", win,
                                  kname, target, found);
                return false;
        }
        parse_next(p);
        n->len = t->off + t->len - n->off;
        *ret = (Sub){.n = n, .off = n->off, .end = t->off + t->len};
        return parse_height(p, ret, h + 1, t);
}

/* The expressions of a call or a list, separated by ',', into v, up to
 * close (after a last ',' too when trailing): the token they stop at,
 * close or what the caller reports; NULL after an error in one. */
static const Token *parse_items(Parser *p, TokKind close, bool trailing, NodeVec *v)
{
        for (bool first = true;; first = false) {
                if (parse_peek(p) == close && (first || trailing))
                        break;
                Sub it;
                if (!parse_or(p, &it))
                        return NULL;
                parse_vec_push(p, v, &it);
                if (parse_peek(p) != T_COMMA)
                        break;
                parse_next(p);
        }
        return parse_tok(p);
}

/* name '(' already seen: [EXPR (',' EXPR)*] ')' */
static bool parse_call(Parser *p, char *fname, uint32_t off, Sub *ret)
{
        const Token *lp = parse_next(p);
        NodeVec args = {0};
        const Token *t = parse_items(p, T_RPAREN, false, &args);
        if (!t)
                return false;
        if (t->kind != T_RPAREN) {
                char found[96], at[64];
                parse_tok_desc(p, t, found, sizeof(found));
                parse_where_str(p, lp, t, at, sizeof(at));
                parse_err(p, t, parse_op_hint(p, t), "expected ',' or ')' after an argument of %s() (opened at %s), found %s",
                          fname, at, found);
                return false;
        }
        parse_next(p);
        Node *n = parse_node(p, N_CALL, off, t->off + t->len);
        n->name = fname;
        n->args = args.v;
        n->nargs = args.n;
        *ret = (Sub){.n = n, .off = off, .end = t->off + t->len};
        return parse_height(p, ret, args.height + 1, t);
}

/* '[' already current: [EXPR (',' EXPR)* [',']] ']' */
static bool parse_list(Parser *p, Sub *ret)
{
        const Token *lb = parse_next(p);
        NodeVec items = {0};
        const Token *t = parse_items(p, T_RBRACK, true, &items);
        if (!t)
                return false;
        if (t->kind != T_RBRACK) {
                char found[96], at[64];
                parse_tok_desc(p, t, found, sizeof(found));
                parse_where_str(p, lb, t, at, sizeof(at));
                parse_err(p, t, "list items are separated by commas: [\"a\", \"b\"]",
                          "expected ',' or ']' in the list opened at %s, found %s", at, found);
                return false;
        }
        parse_next(p);
        Node *n = parse_node(p, N_LIST, lb->off, t->off + t->len);
        n->args = items.v;
        n->nargs = items.n;
        *ret = (Sub){.n = n, .off = lb->off, .end = t->off + t->len};
        return parse_height(p, ret, items.height + 1, t);
}

static char *parse_str_copy(Parser *p, const char *s, uint32_t n)
{
        char *c = arena_alloc(p->ar, (size_t)n + 1);
        memcpy(c, s, n);
        return c;
}

static bool parse_primary(Parser *p, Sub *ret)
{
        const Token *t = parse_tok(p);
        uint32_t end = t->off + t->len;
        Node *n;
        switch (t->kind) {
        case T_NUMBER:
        case T_DURATION:
        case T_STRING:
        case T_TRUE:
        case T_FALSE:
        case T_NULL:
                parse_next(p);
                n = parse_node(p, N_LIT, t->off, end);
                if (t->kind == T_NUMBER)
                        n->lit = value_num(t->num);
                else if (t->kind == T_DURATION)
                        n->lit = value_dur(t->ms);
                else if (t->kind == T_STRING)
                        n->lit = value_str(parse_str_copy(p, t->str, t->slen), t->slen);
                else if (t->kind == T_NULL)
                        n->lit = value_null();
                else
                        n->lit = value_bool(t->kind == T_TRUE);
                *ret = (Sub){.n = n, .off = t->off, .end = end, .height = 1};
                return true;
        case T_ERROR:
                if (t->num != LEX_ERROR_LITERAL)
                        break;
                /* stands in for the literal the lexer rejected */
                parse_next(p);
                n = parse_node(p, N_LIT, t->off, end);
                *ret = (Sub){.n = n, .off = t->off, .end = end, .height = 1};
                return true;
        case T_LPAREN: {
                parse_next(p);
                Sub in;
                if (!parse_or(p, &in))
                        return false;
                const Token *rp = parse_tok(p);
                if (rp->kind != T_RPAREN) {
                        char found[96], at[64];
                        parse_tok_desc(p, rp, found, sizeof(found));
                        parse_where_str(p, t, rp, at, sizeof(at));
                        parse_err(p, rp, parse_op_hint(p, rp), "expected ')' to close the '(' at %s, found %s", at,
                                  found);
                        return false;
                }
                parse_next(p);
                *ret = (Sub){.n = in.n, .off = t->off, .end = rp->off + rp->len, .height = in.height};
                return true;
        }
        case T_LBRACK:
                if (!parse_enter(p))
                        return false;
                if (!parse_list(p, ret))
                        return false;
                p->depth--;
                return true;
        case T_DOLLAR: {
                parse_next(p);
                if (parse_peek(p) != T_IDENT) {
                        char found[96];
                        parse_tok_desc(p, parse_tok(p), found, sizeof(found));
                        parse_err(p, parse_tok(p), "$field reads the triggering event: device_id == $device_id",
                                  "expected a field name after '$', found %s", found);
                        return false;
                }
                char *name;
                uint32_t noff;
                if (!parse_dotted(p, &name, &noff, &end))
                        return false;
                n = parse_node(p, N_CUR, t->off, end);
                n->name = name;
                *ret = (Sub){.n = n, .off = t->off, .end = end, .height = 1};
                return true;
        }
        case T_IDENT: {
                char *name;
                uint32_t noff;
                if (!parse_dotted(p, &name, &noff, &end))
                        return false;
                if (parse_peek(p) == T_LPAREN) {
                        if (!parse_enter(p))
                                return false;
                        bool ok = false, agg = false;
                        for (size_t k = 0; k < ARRAY_SIZE(parse_aggs); k++)
                                if (strcmp(parse_aggs[k].name, name) == 0) {
                                        ok = parse_agg(p, parse_aggs[k].kind, t, ret);
                                        agg = true;
                                        break;
                                }
                        if (!agg)
                                ok = parse_call(p, name, t->off, ret);
                        if (!ok)
                                return false;
                        p->depth--;
                        return true;
                }
                n = parse_node(p, N_NAME, t->off, end);
                n->name = name;
                *ret = (Sub){.n = n, .off = t->off, .end = end, .height = 1};
                return true;
        }
        default:
                break;
        }
        parse_err_operand(p);
        return false;
}

/* ---- operators, by precedence ---- */

/* The prefix operator tk ('-' or 'not') before its operand: tk again, or
 * what next parses; each prefix is a level of nesting. */
static bool parse_prefixed(Parser *p, TokKind tk, bool (*next)(Parser *, Sub *), Sub *ret)
{
        if (parse_peek(p) != tk)
                return next(p, ret);
        const Token *op = parse_next(p);
        if (!parse_enter(p))
                return false;
        Sub a;
        if (!parse_prefixed(p, tk, next, &a))
                return false;
        p->depth--;
        return parse_unary_node(p, tk, op, &a, ret);
}

/* What next parses, joined left to right by any of the n operators ops. */
static bool parse_left(Parser *p, const TokKind *ops, uint32_t n, bool (*next)(Parser *, Sub *), Sub *ret)
{
        Sub a;
        if (!next(p, &a))
                return false;
        for (;;) {
                TokKind k = parse_peek(p);
                uint32_t i = 0;
                while (i < n && ops[i] != k)
                        i++;
                if (i == n)
                        break;
                const Token *op = parse_next(p);
                Sub b;
                if (!next(p, &b) || !parse_binary(p, op->kind, op, &a, &b, &a))
                        return false;
        }
        *ret = a;
        return true;
}

static bool parse_unary(Parser *p, Sub *ret)
{
        return parse_prefixed(p, T_MINUS, parse_primary, ret);
}

static bool parse_mul(Parser *p, Sub *ret)
{
        static const TokKind ops[] = {T_STAR, T_SLASH, T_PERCENT};
        return parse_left(p, ops, ARRAY_SIZE(ops), parse_unary, ret);
}

static bool parse_add(Parser *p, Sub *ret)
{
        static const TokKind ops[] = {T_PLUS, T_MINUS};
        return parse_left(p, ops, ARRAY_SIZE(ops), parse_mul, ret);
}

static bool parse_is_cmp(TokKind k)
{
        switch (k) {
        case T_EQ: case T_NE: case T_LT: case T_LE: case T_GT: case T_GE:
        case T_IN: case T_NOT_IN: case T_CONTAINS: case T_STARTSWITH: case T_ENDSWITH: case T_MATCHES:
                return true;
        default:
                return false;
        }
}

static bool parse_cmp(Parser *p, Sub *ret)
{
        Sub a;
        if (!parse_add(p, &a))
                return false;
        if (!parse_is_cmp(parse_peek(p))) {
                *ret = a;
                return true;
        }
        const Token *op = parse_next(p);
        Sub b;
        if (!parse_add(p, &b) || !parse_binary(p, op->kind, op, &a, &b, ret))
                return false;
        const Token *t = parse_tok(p);
        if (parse_is_cmp(t->kind)) {
                char found[96];
                parse_tok_desc(p, t, found, sizeof(found));
                parse_err(p, t, "comparisons do not chain: write a < b and b < c",
                          "expected 'and' or 'or' between two comparisons, found %s", found);
                return false;
        }
        return true;
}

static bool parse_not(Parser *p, Sub *ret)
{
        return parse_prefixed(p, T_NOT, parse_cmp, ret);
}

static bool parse_and(Parser *p, Sub *ret)
{
        static const TokKind ops[] = {T_AND};
        return parse_left(p, ops, 1, parse_not, ret);
}

/* Every sub-expression (parentheses, arguments, list items, where) starts
 * here, so this is where nesting is counted. */
static bool parse_or(Parser *p, Sub *ret)
{
        static const TokKind ops[] = {T_OR};
        if (!parse_enter(p))
                return false;
        Sub a;
        if (!parse_left(p, ops, 1, parse_and, &a))
                return false;
        p->depth--;
        *ret = a;
        return true;
}

Node *expr_parse(Arena *ar, const ExprSrc *src, DiagList *dl)
{
        /* tokens are garbage once the tree is built: keep them out of the
         * caller's arena, which lives as long as the rule set */
        Arena scratch;
        arena_init(&scratch);
        Token *toks;
        uint32_t nt = lex_all(&scratch, src, dl, &toks);
        Parser p = {.ar = ar, .src = src, .dl = dl, .t = toks};
        for (uint32_t i = 0; i < nt; i++)
                if (toks[i].kind == T_ERROR)
                        p.lex_failed = true;
        Sub r = {0};
        bool parsed = parse_or(&p, &r);
        assert(!parsed || p.depth == 0); /* every level entered was left */
        if (parsed && parse_peek(&p) != T_EOF) {
                const Token *t = parse_tok(&p);
                char found[96];
                parse_tok_desc(&p, t, found, sizeof(found));
                const char *hint = t->kind == T_RPAREN ? "this ')' has no matching '('"
                                   : t->kind == T_RBRACK ? "this ']' has no matching '['"
                                   : parse_op_hint(&p, t);
                parse_err(&p, t, hint, "expected an operator or end of expression, found %s", found);
        }
        arena_deinit(&scratch);
        if (p.failed || p.lex_failed)
                return NULL;
        return r.n;
}

/* ---- copying and printing ---- */

Node *node_clone(Arena *ar, const Node *n)
{
        if (!n)
                return NULL;
        Node *c = arena_alloc(ar, sizeof(*c));
        *c = *n; /* strings are shared: nothing changes them after parsing */
        c->a = node_clone(ar, n->a);
        c->b = node_clone(ar, n->b);
        c->where = node_clone(ar, n->where);
        c->window = node_clone(ar, n->window);
        if (n->nargs) {
                c->args = arena_alloc(ar, (size_t)n->nargs * sizeof(Node *));
                for (uint32_t i = 0; i < n->nargs; i++)
                        c->args[i] = node_clone(ar, n->args[i]);
        }
        return c;
}

static const char *node_op_str(TokKind k)
{
        switch (k) {
        case T_EQ: return "==";
        case T_NE: return "!=";
        case T_LT: return "<";
        case T_LE: return "<=";
        case T_GT: return ">";
        case T_GE: return ">=";
        case T_PLUS: return "+";
        case T_MINUS: return "-";
        case T_STAR: return "*";
        case T_SLASH: return "/";
        case T_PERCENT: return "%";
        case T_AND: return "and";
        case T_OR: return "or";
        case T_NOT: return "not";
        case T_IN: return "in";
        case T_NOT_IN: return "not in";
        case T_CONTAINS: return "contains";
        case T_STARTSWITH: return "startswith";
        case T_ENDSWITH: return "endswith";
        case T_MATCHES: return "matches";
        default: return "?";
        }
}

/* Numbers print as %g does when that reads back exactly, else with as many
 * digits as it takes: compile.c uses this text to tell aggregates apart. */
static void node_print_num(double d, Buf *out)
{
        char buf[40];
        for (int prec = 6; prec <= 17; prec++) {
                snprintf(buf, sizeof(buf), "%.*g", prec, d);
                if (strtod(buf, NULL) == d || isnan(d))
                        break;
        }
        buf_puts(out, buf);
}

static void node_print_lit(const Node *n, Buf *out)
{
        const Value *v = &n->lit;
        char buf[64];
        switch (v->tag) {
        case VT_NULL: buf_puts(out, "null"); break;
        case VT_BOOL: buf_puts(out, v->b ? "true" : "false"); break;
        case VT_NUM: node_print_num(v->n, out); break;
        case VT_STR: buf_json_str(out, v->s.p, v->s.len); break;
        case VT_DUR:
                duration_format(v->ms, buf, sizeof(buf));
                buf_puts(out, buf);
                break;
        case VT_TIME:
                time_format(v->ms, buf, sizeof(buf));
                buf_printf(out, "@%s", buf);
                break;
        case VT_ENUM:
                if (n->en && v->e >= 0 && (uint32_t)v->e < n->en->nvalues)
                        buf_printf(out, "#%s", n->en->values[v->e]);
                else
                        buf_printf(out, "#%d", (int)v->e);
                break;
        default: buf_puts(out, "?"); break;
        }
}

void node_print(const Node *n, Buf *out)
{
        if (!n) {
                buf_puts(out, "<null>");
                return;
        }
        switch (n->kind) {
        case N_LIT:
                node_print_lit(n, out);
                return;
        case N_LIST:
                buf_putc(out, '[');
                for (uint32_t i = 0; i < n->nargs; i++) {
                        if (i)
                                buf_puts(out, ", ");
                        node_print(n->args[i], out);
                }
                buf_putc(out, ']');
                return;
        case N_NAME:
                buf_puts(out, n->name);
                return;
        case N_CUR:
                buf_printf(out, "$%s", n->name);
                return;
        case N_UNARY:
                buf_printf(out, "(%s ", node_op_str(n->op));
                node_print(n->a, out);
                buf_putc(out, ')');
                return;
        case N_BINARY:
                buf_printf(out, "(%s ", node_op_str(n->op));
                node_print(n->a, out);
                buf_putc(out, ' ');
                node_print(n->b, out);
                buf_putc(out, ')');
                return;
        case N_CALL:
                buf_printf(out, "(%s", n->name);
                for (uint32_t i = 0; i < n->nargs; i++) {
                        buf_putc(out, ' ');
                        node_print(n->args[i], out);
                }
                buf_putc(out, ')');
                return;
        case N_AGG:
                buf_printf(out, "(%s %s", n->name, n->agg_type);
                if (n->agg_field)
                        buf_printf(out, ".%s", n->agg_field);
                if (n->where) {
                        buf_puts(out, " (where ");
                        node_print(n->where, out);
                        buf_putc(out, ')');
                }
                if (n->window) {
                        buf_printf(out, " (%s ", n->window_is_for ? "for" : "within");
                        node_print(n->window, out);
                        buf_putc(out, ')');
                }
                buf_putc(out, ')');
                return;
        }
        buf_puts(out, "?");
}
