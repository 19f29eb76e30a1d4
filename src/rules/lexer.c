/*
 * The lexer of the expression language: turns the text of one expression
 * (a `when:`, a macro body...) into an array of tokens ending with T_EOF,
 * and maps byte offsets in that text to file positions.
 *
 * Invariants:
 * - Every token records the byte range of its text; tokens never overlap
 *   and appear in text order.  T_EOF sits at the end of the text, length 0.
 * - Every problem is reported here (E020 unexpected character, E021
 *   unterminated string, E023 malformed number, duration or escape) and the
 *   bad text becomes one T_ERROR token, so the parser never reports the
 *   same problem again.  A T_ERROR that stands where a complete literal was
 *   written (a bad number, a string with a bad escape) has num = 1
 *   (LEX_ERROR_LITERAL): the parser may treat it as an operand and go on
 *   looking for real syntax errors after it.
 * - `not` followed by `in` becomes the single token T_NOT_IN: no valid
 *   expression has a prefix `not` directly before `in`.
 * - Tokens and decoded strings live in the caller's arena; nothing here
 *   calls malloc.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/rules/ast.h"

#define LEX_ERROR_LITERAL 1.0

const char *tok_kind_str(TokKind k)
{
        switch (k) {
        case T_EOF: return "end of expression";
        case T_NUMBER: return "number";
        case T_DURATION: return "duration";
        case T_STRING: return "string";
        case T_IDENT: return "name";
        case T_DOLLAR: return "'$'";
        case T_DOT: return "'.'";
        case T_COMMA: return "','";
        case T_LPAREN: return "'('";
        case T_RPAREN: return "')'";
        case T_LBRACK: return "'['";
        case T_RBRACK: return "']'";
        case T_EQ: return "'=='";
        case T_NE: return "'!='";
        case T_LT: return "'<'";
        case T_LE: return "'<='";
        case T_GT: return "'>'";
        case T_GE: return "'>='";
        case T_PLUS: return "'+'";
        case T_MINUS: return "'-'";
        case T_STAR: return "'*'";
        case T_SLASH: return "'/'";
        case T_PERCENT: return "'%'";
        case T_AND: return "'and'";
        case T_OR: return "'or'";
        case T_NOT: return "'not'";
        case T_IN: return "'in'";
        case T_NOT_IN: return "'not in'";
        case T_CONTAINS: return "'contains'";
        case T_STARTSWITH: return "'startswith'";
        case T_ENDSWITH: return "'endswith'";
        case T_MATCHES: return "'matches'";
        case T_WHERE: return "'where'";
        case T_WITHIN: return "'within'";
        case T_FOR: return "'for'";
        case T_TRUE: return "'true'";
        case T_FALSE: return "'false'";
        case T_NULL: return "'null'";
        case T_ERROR: return "invalid token";
        }
        return "token";
}

static const struct {
        const char *word;
        TokKind kind;
} lex_keywords[] = {
        {"and", T_AND},
        {"or", T_OR},
        {"not", T_NOT},
        {"in", T_IN},
        {"contains", T_CONTAINS},
        {"startswith", T_STARTSWITH},
        {"endswith", T_ENDSWITH},
        {"matches", T_MATCHES},
        {"where", T_WHERE},
        {"within", T_WITHIN},
        {"for", T_FOR},
        {"true", T_TRUE},
        {"false", T_FALSE},
        {"null", T_NULL},
};

typedef struct Lexer {
        Arena *ar;
        const ExprSrc *src;
        DiagList *dl;
        const char *s;
        size_t n;
        Token *v;
        uint32_t ntok, cap;
} Lexer;

static bool lex_is_alpha(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool lex_is_digit(char c)
{
        return c >= '0' && c <= '9';
}

static bool lex_is_ident(char c)
{
        return lex_is_alpha(c) || lex_is_digit(c);
}

static bool lex_is_space(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Length in bytes of the UTF-8 sequence starting at s[i] (at least 1). */
static size_t lex_utf8_seq(const char *s, size_t n, size_t i)
{
        unsigned char c = (unsigned char)s[i];
        size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        size_t j = 1;
        while (j < k && i + j < n && ((unsigned char)s[i + j] & 0xc0) == 0x80)
                j++;
        return j;
}

/* The token array grows by doubling inside the arena: the abandoned copies
 * are at most as large as the final one. */
static Token *lex_push(Lexer *lx, TokKind k, size_t off, size_t len)
{
        if (lx->ntok == lx->cap) {
                uint32_t cap = lx->cap ? lx->cap * 2 : 32;
                Token *v = arena_alloc(lx->ar, (size_t)cap * sizeof(Token));
                if (lx->ntok)
                        memcpy(v, lx->v, (size_t)lx->ntok * sizeof(Token));
                lx->v = v;
                lx->cap = cap;
        }
        /* tokens stay inside the text, in text order, never overlapping */
        assert(off <= lx->n && len <= lx->n - off);
        assert(lx->ntok == 0 || off >= (size_t)lx->v[lx->ntok - 1].off + lx->v[lx->ntok - 1].len);
        Token *t = &lx->v[lx->ntok++];
        memset(t, 0, sizeof(*t));
        t->kind = k;
        t->off = (uint32_t)off;
        t->len = (uint32_t)len;
        return t;
}

static SrcPos lex_pos(Lexer *lx, size_t off, size_t len)
{
        return exprsrc_pos(lx->src, (uint32_t)off, (uint32_t)len);
}

/* Numbers and durations.  The whole run of letters, digits, dots and
 * underscores that starts with a digit is one literal, so `12x` or `3.4.5`
 * is one bad literal and not a number followed by something else. */
static size_t lex_number(Lexer *lx, size_t i)
{
        const char *s = lx->s;
        size_t n = lx->n, start = i;
        while (i < n && lex_is_digit(s[i]))
                i++;
        if (i + 1 < n && s[i] == '.' && lex_is_digit(s[i + 1])) {
                i++;
                while (i < n && lex_is_digit(s[i]))
                        i++;
        }
        if (i < n && (s[i] == 'e' || s[i] == 'E')) {
                size_t j = i + 1;
                if (j < n && (s[j] == '+' || s[j] == '-'))
                        j++;
                if (j < n && lex_is_digit(s[j])) {
                        i = j;
                        while (i < n && lex_is_digit(s[i]))
                                i++;
                }
        }
        size_t num_end = i;
        while (i < n && (lex_is_ident(s[i]) || s[i] == '.'))
                i++;
        size_t unit_len = i - num_end;

        bool ok = false;
        Token t = {0};
        if (unit_len == 0) {
                /* the syntax was checked above, so strtod reads exactly
                 * this text; it needs a NUL terminated copy */
                char buf[64];
                size_t len = num_end - start;
                char *copy = len < sizeof(buf) ? buf : arena_alloc(lx->ar, len + 1);
                memcpy(copy, s + start, len);
                copy[len] = 0;
                t.kind = T_NUMBER;
                t.num = strtod(copy, NULL);
                ok = isfinite(t.num);
        } else {
                bool letters = true;
                for (size_t k = num_end; k < i; k++)
                        if (!lex_is_alpha(s[k]) || s[k] == '_')
                                letters = false;
                int64_t ms;
                if (letters && duration_parse(s + start, i - start, &ms) == 0) {
                        if (ms > DURATION_MAX_MS) {
                                /* time + a longer one leaves the range of times:
                                 * null, and every comparison with it false */
                                diag_add(lx->dl, DIAG_E061, lex_pos(lx, start, i - start),
                                         "a duration is at most 36500d (100 years)",
                                         "'%.*s' is longer than 36500d, the longest duration supported",
                                         (int)(i - start), s + start);
                                lex_push(lx, T_ERROR, start, i - start)->num = LEX_ERROR_LITERAL;
                                return i;
                        }
                        t.kind = T_DURATION;
                        t.ms = ms;
                        ok = true;
                }
        }
        if (ok) {
                Token *p = lex_push(lx, t.kind, start, i - start);
                p->num = t.num;
                p->ms = t.ms;
                return i;
        }
        if (t.kind == T_NUMBER)
                diag_add(lx->dl, DIAG_E023, lex_pos(lx, start, i - start), NULL,
                         "expected a finite number, found '%.*s' (out of range)", (int)(i - start), s + start);
        else
                diag_add(lx->dl, DIAG_E023, lex_pos(lx, start, i - start),
                         "durations are a number followed by ms, s, m, h, d or w",
                         "expected a number or a duration, found '%.*s'", (int)(i - start), s + start);
        lex_push(lx, T_ERROR, start, i - start)->num = LEX_ERROR_LITERAL;
        return i;
}

/* Four hex digits at s[i]; -1 when they are not there. */
static int32_t lex_hex4(const char *s, size_t n, size_t i)
{
        return i + 4 <= n ? hex4_value((const unsigned char *)s + i) : -1;
}

/* A string literal starting with the quote at s[i].  Every bad escape is
 * reported; an unclosed string runs to the end of the text. */
static size_t lex_string(Lexer *lx, size_t i)
{
        const char *s = lx->s;
        size_t n = lx->n, start = i;
        char q = s[i++];
        /* decoding only shrinks: \uXXXX (6 bytes) gives at most 3, a
         * surrogate pair (12) gives 4 */
        char *out = arena_alloc(lx->ar, n - start + 1);
        size_t o = 0;
        bool bad = false;
        while (i < n && s[i] != q) {
                if (s[i] != '\\') {
                        out[o++] = s[i++];
                        continue;
                }
                size_t esc = i;
                char c = i + 1 < n ? s[i + 1] : 0;
                i += 2;
                switch (c) {
                case '"': out[o++] = '"'; continue;
                case '\'': out[o++] = '\''; continue;
                case '\\': out[o++] = '\\'; continue;
                case 'n': out[o++] = '\n'; continue;
                case 't': out[o++] = '\t'; continue;
                case 'u': {
                        int32_t u = lex_hex4(s, n, i);
                        if (u < 0) {
                                size_t e = i;
                                while (e < n && e < i + 4 && hex_digit((unsigned char)s[e]) >= 0)
                                        e++;
                                diag_add(lx->dl, DIAG_E023, lex_pos(lx, esc, e - esc),
                                         "write a code point as \\u and four hex digits, e.g. \\u4e2d",
                                         "expected four hex digits after '\\u', found '%.*s'",
                                         (int)(e - esc), s + esc);
                                bad = true;
                                i = e;
                                continue;
                        }
                        i += 4;
                        uint32_t cp = (uint32_t)u;
                        if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < n && s[i] == '\\' && s[i + 1] == 'u') {
                                int32_t lo = lex_hex4(s, n, i + 2);
                                if (lo >= 0xdc00 && lo <= 0xdfff) {
                                        cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
                                        i += 6;
                                }
                        }
                        if (cp >= 0xd800 && cp <= 0xdfff) {
                                diag_add(lx->dl, DIAG_E023, lex_pos(lx, esc, i - esc),
                                         "a surrogate must be followed by its pair, e.g. \\ud83d\\ude00",
                                         "expected a code point, found a lone surrogate '%.*s'",
                                         (int)(i - esc), s + esc);
                                bad = true;
                                continue;
                        }
                        o = (size_t)((char *)utf8_encode((unsigned char *)out + o, cp) - out);
                        continue;
                }
                default:
                        if (esc + 1 >= n) {
                                i = n; /* a backslash at the very end */
                                break;
                        }
                        i = esc + 1 + lex_utf8_seq(s, n, esc + 1);
                        diag_add(lx->dl, DIAG_E023, lex_pos(lx, esc, i - esc),
                                 "escapes are \\\" \\' \\\\ \\n \\t \\uXXXX; write \\\\ for a backslash (a regex \\d is \"\\\\d\")",
                                 "expected an escape, found '%.*s'", (int)(i - esc), s + esc);
                        bad = true;
                        continue;
                }
        }
        if (i >= n) {
                diag_add(lx->dl, DIAG_E021, lex_pos(lx, start, 1),
                         q == '"' ? "close it with \"; write \\\" for a quote inside it"
                                  : "close it with '; write \\' for a quote inside it",
                         "unterminated string: expected a closing %c, found end of expression", q);
                /* not a stand-in: it swallowed the rest of the text, so
                 * whatever the parser would find missing is its fault */
                lex_push(lx, T_ERROR, start, n - start);
                return n;
        }
        i++; /* the closing quote */
        if (bad) {
                lex_push(lx, T_ERROR, start, i - start)->num = LEX_ERROR_LITERAL;
                return i;
        }
        out[o] = 0;
        Token *t = lex_push(lx, T_STRING, start, i - start);
        t->str = out;
        t->slen = (uint32_t)o;
        return i;
}

static size_t lex_word(Lexer *lx, size_t i)
{
        const char *s = lx->s;
        size_t n = lx->n, start = i;
        while (i < n && lex_is_ident(s[i]))
                i++;
        size_t len = i - start;
        TokKind k = T_IDENT;
        for (size_t w = 0; w < ARRAY_SIZE(lex_keywords); w++)
                if (strlen(lex_keywords[w].word) == len && memcmp(lex_keywords[w].word, s + start, len) == 0) {
                        k = lex_keywords[w].kind;
                        break;
                }
        if (k == T_NOT) {
                size_t j = i;
                while (j < n && lex_is_space(s[j]))
                        j++;
                if (j > i && j + 2 <= n && s[j] == 'i' && s[j + 1] == 'n' &&
                    (j + 2 == n || !lex_is_ident(s[j + 2]))) {
                        k = T_NOT_IN;
                        i = j + 2;
                }
        }
        lex_push(lx, k, start, i - start);
        return i;
}

/* An operator character, or an unexpected one (reported). */
/* A '=' or '!' that is not the first half of == or !=: an error token,
 * and what the writer meant.  Returns the offset past it. */
static size_t lex_lone(Lexer *lx, size_t i, const char *hint, const char *message)
{
        diag_add(lx->dl, DIAG_E020, lex_pos(lx, i, 1), hint, "%s", message);
        lex_push(lx, T_ERROR, i, 1);
        return i + 1;
}

static size_t lex_punct(Lexer *lx, size_t i)
{
        const char *s = lx->s;
        size_t n = lx->n;
        char c = s[i], d = i + 1 < n ? s[i + 1] : 0;
        TokKind k;
        size_t len = 1;
        switch (c) {
        case '$': k = T_DOLLAR; break;
        case '.': k = T_DOT; break;
        case ',': k = T_COMMA; break;
        case '(': k = T_LPAREN; break;
        case ')': k = T_RPAREN; break;
        case '[': k = T_LBRACK; break;
        case ']': k = T_RBRACK; break;
        case '+': k = T_PLUS; break;
        case '-': k = T_MINUS; break;
        case '*': k = T_STAR; break;
        case '/': k = T_SLASH; break;
        case '%': k = T_PERCENT; break;
        case '<':
                k = d == '=' ? T_LE : T_LT;
                len = d == '=' ? 2 : 1;
                break;
        case '>':
                k = d == '=' ? T_GE : T_GT;
                len = d == '=' ? 2 : 1;
                break;
        case '=':
                if (d != '=')
                        return lex_lone(lx, i, "compare with ==", "expected an operator, found '='");
                k = T_EQ;
                len = 2;
                break;
        case '!':
                if (d != '=')
                        return lex_lone(lx, i, "negate a condition with not",
                                        "expected an operator or an operand, found '!'");
                k = T_NE;
                len = 2;
                break;
        case '&':
        case '|':
                len = d == c ? 2 : 1;
                diag_add(lx->dl, DIAG_E020, lex_pos(lx, i, len),
                         c == '&' ? "join conditions with and" : "join conditions with or",
                         "expected an operator, found '%.*s'", (int)len, s + i);
                lex_push(lx, T_ERROR, i, len);
                return i + len;
        default: {
                len = lex_utf8_seq(s, n, i);
                /* a word in another script is one error, not one per
                 * character */
                if ((unsigned char)c >= 0x80)
                        while (i + len < n && ((unsigned char)s[i + len] >= 0x80 || lex_is_ident(s[i + len])))
                                len += lex_utf8_seq(s, n, i + len);
                const char *hint = (unsigned char)c >= 0x80
                        ? "names are ASCII letters, digits and _; write text in quotes: \"...\""
                        : NULL;
                if ((unsigned char)c < 0x20 || c == 0x7f)
                        diag_add(lx->dl, DIAG_E020, lex_pos(lx, i, len), hint,
                                 "unexpected character: expected an operator or an operand, found byte 0x%02x",
                                 (unsigned)(unsigned char)c);
                else
                        diag_add(lx->dl, DIAG_E020, lex_pos(lx, i, len), hint,
                                 "unexpected character: expected an operator or an operand, found '%.*s'",
                                 (int)len, s + i);
                lex_push(lx, T_ERROR, i, len);
                return i + len;
        }
        }
        lex_push(lx, k, i, len);
        return i + len;
}

uint32_t lex_all(Arena *ar, const ExprSrc *src, DiagList *dl, Token **ret)
{
        Lexer lx = {.ar = ar, .src = src, .dl = dl, .s = src->text ? src->text : "", .n = src->text ? src->len : 0};
        size_t i = 0;
        while (i < lx.n) {
                char c = lx.s[i];
                if (lex_is_space(c))
                        i++;
                else if (lex_is_digit(c))
                        i = lex_number(&lx, i);
                else if (lex_is_alpha(c))
                        i = lex_word(&lx, i);
                else if (c == '"' || c == '\'')
                        i = lex_string(&lx, i);
                else
                        i = lex_punct(&lx, i);
        }
        lex_push(&lx, T_EOF, lx.n, 0);
        *ret = lx.v;
        return lx.ntok;
}
