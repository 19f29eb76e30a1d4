/*
 * The checker's rules for each operator (check.c walks the tree and calls
 * these once both operands are checked): which operand types an operator
 * takes and what it gives, string literals made enum values or times where
 * the other operand needs it, the literal sets of in / not in, the
 * patterns of matches (compiled here, once), and constant folding.  Apart
 * from the walk because none of it resolves names or recurses.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "src/rules/load.h"
#include "src/rules/vm.h"

static void enum_values_hint(const EnumDef *en, const char *bad, Buf *h)
{
        /* conditions compare codes; a label is what a message prints */
        for (uint32_t i = 0; bad && en->labels && i < en->nvalues; i++)
                if (strcmp(en->labels[i], bad) == 0) {
                        buf_printf(h, "'%s' is the label of '%s': compare with the value \"%s\"", bad,
                                   en->values[i], en->values[i]);
                        return;
                }
        const char *sug = bad ? diag_suggest(bad, (const char *const *)en->values, en->nvalues) : NULL;
        if (sug)
                buf_printf(h, "did you mean '%s'? ", sug);
        buf_printf(h, "values of %s:", en->name);
        for (uint32_t i = 0; i < en->nvalues && i < 40; i++)
                buf_printf(h, " %s", en->values[i]);
        if (en->nvalues > 40)
                buf_puts(h, " ...");
}

static int32_t enum_index(const EnumDef *en, const char *p, uint32_t len)
{
        for (uint32_t i = 0; i < en->nvalues; i++)
                if (strlen(en->values[i]) == len && memcmp(en->values[i], p, len) == 0)
                        return (int32_t)i;
        return -1;
}

/* Turn a string literal into a value of the other operand's type (an enum
 * value, a time).  Returns false after reporting. */
static bool coerce_lit(Loader *L, Node *lit, const Node *other)
{
        if (lit->kind != N_LIT || lit->type != VT_STR)
                return true;
        if (other->type == VT_ENUM && other->en) {
                int32_t e = enum_index(other->en, lit->lit.s.p, lit->lit.s.len);
                if (e < 0) {
                        char *s = xstrndup(lit->lit.s.p, lit->lit.s.len);
                        Buf h = {0};
                        enum_values_hint(other->en, s, &h);
                        check_err(L, lit, DIAG_E032, h.p, "'%s' is not a value of %s", s, other->en->name);
                        buf_free(&h);
                        free(s);
                        return false;
                }
                lit->lit = value_enum(e);
                lit->type = VT_ENUM;
                lit->en = other->en;
        } else if (other->type == VT_TIME) {
                int64_t ms;
                int r = time_parse(lit->lit.s.p, lit->lit.s.len, &ms);
                if (r < 0) {
                        check_err(L, lit, DIAG_E023,
                            r == -ERANGE ? "times are whole milliseconds: at most three decimals that are not 0"
                                         : "an RFC 3339 time such as \"2025-03-02T10:15:00+08:00\"",
                            "not a time: \"%.*s\"", (int)lit->lit.s.len, lit->lit.s.p);
                        return false;
                }
                lit->lit = value_time(ms);
                lit->type = VT_TIME;
        }
        return true;
}

static uint32_t set_from_nodes(Loader *L, Node *lhs, Node **items, uint32_t n, bool *ok)
{
        Value *v = xcalloc(n + 1, sizeof(Value));
        uint8_t tag = lhs->type;
        for (uint32_t i = 0; i < n; i++) {
                Node *it = items[i];
                if (it->kind != N_LIT) {
                        check_err(L, it, DIAG_E046, "list items are literals: \"text\", 12, true", "a list item must be a literal");
                        *ok = false;
                        continue;
                }
                if (!coerce_lit(L, it, lhs)) {
                        *ok = false;
                        continue;
                }
                if (it->type != tag) {
                        char a[96];
                        check_type_desc(lhs, a, sizeof(a));
                        check_err(L, it, DIAG_E033, NULL, "list item is a %s but the value tested is %s",
                            check_type_str(it->type), a);
                        *ok = false;
                        continue;
                }
                v[i] = it->lit;
        }
        uint32_t idx = *ok ? compile_set(L, tag, v, n) : 0;
        free(v);
        return idx;
}

bool check_in(Loader *L, Node *n)
{
        Node *a = n->a, *b = n->b;
        if (a->type != VT_STR && a->type != VT_NUM && a->type != VT_ENUM) {
                char d[96];
                check_type_desc(a, d, sizeof(d));
                check_err(L, a, DIAG_E033, "in tests a string, number or enum against a list", "cannot test a %s with in", d);
                return false;
        }
        bool ok = true;
        if (b->kind == N_LIST) {
                n->slot = (int32_t)set_from_nodes(L, a, b->args, b->nargs, &ok);
                return ok;
        }
        if (b->kind != N_NAME) {
                check_err(L, b, DIAG_E033, "write a list [a, b] or the name of a list", "in needs a list on its right");
                return false;
        }
        ListDef *ld = NULL;
        for (uint32_t i = 0; i < L->nlists; i++)
                if (strcmp(L->lists[i].name, b->name) == 0)
                        ld = &L->lists[i];
        if (!ld) {
                const char *c[256];
                uint32_t nc = 0;
                for (uint32_t i = 0; i < L->nlists && nc < 256; i++)
                        c[nc++] = L->lists[i].name;
                Buf h = {0};
                diag_hint_names(&h, b->name, c, nc, "lists:", " none defined");
                check_err(L, b, DIAG_E034, h.p, "unknown list '%s'", b->name);
                buf_free(&h);
                return false;
        }
        ld->used = true;
        Node **items = arena_alloc(L->ar, (ld->nitems + 1) * sizeof(Node *));
        for (uint32_t i = 0; i < ld->nitems; i++) {
                const YNode *y = ld->items[i];
                ExprSrc *es = loader_fixedsrc(L, y);
                Node *it = arena_alloc(L->ar, sizeof(*it));
                it->kind = N_LIT;
                it->src_id = es->id;
                it->len = 1;
                if (a->type == VT_NUM && y->style == YS_PLAIN) {
                        char *end = NULL;
                        double d = strtod(y->str, &end);
                        it->lit = (y->len && end && !*end) ? value_num(d) : value_str(y->str, (uint32_t)y->len);
                } else {
                        it->lit = value_str(y->str, (uint32_t)y->len);
                }
                it->type = it->lit.tag;
                items[i] = it;
        }
        n->slot = (int32_t)set_from_nodes(L, a, items, ld->nitems, &ok);
        return ok;
}

bool check_compare(Loader *L, Node *n)
{
        Node *a = n->a, *b = n->b;
        if ((a->kind == N_LIT && a->type == VT_NULL) || (b->kind == N_LIT && b->type == VT_NULL)) {
                const Node *f = a->kind == N_LIT && a->type == VT_NULL ? b : a;
                (void)f;
                check_err(L, n, DIAG_W104, "use exists(x) or not exists(x) to test for a missing value",
                    "a comparison with null is always false");
                return true;
        }
        if (!coerce_lit(L, a, b) || !coerce_lit(L, b, a))
                return false;
        bool ok = a->type == b->type;
        if (ok && a->type == VT_ENUM && a->en != b->en)
                ok = false;
        bool ordered = n->op == T_LT || n->op == T_LE || n->op == T_GT || n->op == T_GE;
        if (ok && ordered && a->type == VT_BOOL)
                ok = false;
        if (!ok) {
                char da[96], db[96];
                check_type_desc(a, da, sizeof(da));
                check_type_desc(b, db, sizeof(db));
                const char *hint = NULL;
                if ((a->type == VT_NUM && b->type == VT_STR) || (a->type == VT_STR && b->type == VT_NUM))
                        hint = "numbers are written without quotes; strings with them";
                else if (a->type == VT_BOOL || b->type == VT_BOOL)
                        hint = "a bool is tested directly: `confirmed` or `not confirmed`";
                check_err(L, n, DIAG_E033, hint, "cannot compare %s with %s", da, db);
                return false;
        }
        return true;
}

bool check_strop(Loader *L, Node *n)
{
        if (n->a->type != VT_STR || n->b->type != VT_STR) {
                const Node *bad = n->a->type != VT_STR ? n->a : n->b;
                char d[96];
                check_type_desc(bad, d, sizeof(d));
                check_err(L, bad, DIAG_E033, "contains, startswith, endswith and matches work on strings",
                    "expected a string, found %s", d);
                return false;
        }
        return true;
}

bool check_regex(Loader *L, Node *n, const CheckCtx *cx)
{
        Node *b = n->b;
        if (n->a->type != VT_STR) {
                char d[96];
                check_type_desc(n->a, d, sizeof(d));
                check_err(L, n->a, DIAG_E033, "matches works on strings", "expected a string, found %s", d);
                return false;
        }
        if (b->kind != N_LIT || b->type != VT_STR) {
                check_err(L, b, DIAG_E046, "write the pattern as a string literal: matches \"^SC[0-9]{14}$\"",
                    "the pattern of matches must be a string literal");
                return false;
        }
        char emsg[256];
        uint32_t eoff = 0;
        void *re = vm_regex_new(b->lit.s.p, b->lit.s.len, emsg, sizeof(emsg), &eoff);
        if (!re) {
                /* eoff counts bytes of the unescaped pattern: walk the
                 * literal's source text to find the same place */
                const ExprSrc *es = L->srcs[b->src_id];
                uint32_t raw = b->off + 1, pat = 0;
                while (pat < eoff && raw + 1 < b->off + b->len && raw < es->len) {
                        if (es->text[raw] == '\\') {
                                char c = raw + 1 < es->len ? es->text[raw + 1] : 0;
                                if (c == 'u') {
                                        char hex[5] = {0};
                                        memcpy(hex, es->text + raw + 2, raw + 6 <= es->len ? 4 : 0);
                                        unsigned cp = (unsigned)strtoul(hex, NULL, 16);
                                        pat += cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3;
                                        raw += 6;
                                } else {
                                        pat++;
                                        raw += 2;
                                }
                        } else {
                                pat++;
                                raw++;
                        }
                }
                Node at = *b;
                at.off = raw;
                if (at.off >= b->off + b->len && b->len)
                        at.off = b->off + b->len - 1;
                at.len = 1;
                /* the engine matches in linear time: what would need
                 * backtracking is refused, and the help says what to do */
                bool unsupported = strstr(emsg, "support") || strstr(emsg, "Zero-width");
                bool costly = strstr(emsg, "too costly") || strstr(emsg, "too large");
                check_err(L, &at, DIAG_E022,
                    costly ? "write a shorter bounded repeat, + or * instead, or a range such as "
                             "[\\x{4e00}-\\x{9fff}] instead of a Unicode property (docs/rules.md 6.4)"
                    : unsupported ? "matches runs in time linear in the text: no back-references, lookaround, "
                                    "atomic groups, possessive quantifiers, conditionals, \\G, \\K, \\C, \\X "
                                    "or $ before the end (docs/rules.md 6.4)"
                                  : "PCRE syntax: escape literal ( ) [ ] . * + ? with a backslash",
                    "bad regular expression: %s", emsg);
                return false;
        }
        RuleSet *rs = L->rs;
        if (rs->nregexes % 16 == 0) {
                rs->regexes = xrealloc(rs->regexes, (rs->nregexes + 16) * sizeof(void *));
                rs->regex_src = xrealloc(rs->regex_src, (rs->nregexes + 16) * sizeof(char *));
                rs->regex_rule = xrealloc(rs->regex_rule, (rs->nregexes + 16) * sizeof(char *));
        }
        /* its engine errors are counted under this rule (a grading override's under "grading") */
        rs->regex_rule[rs->nregexes] = arena_strdup(L->ar, cx && cx->rule ? cx->rule->id : "grading");
        rs->regexes[rs->nregexes] = re;
        rs->regex_src[rs->nregexes] = arena_strndup(L->ar, b->lit.s.p, b->lit.s.len);
        n->slot = (int32_t)rs->nregexes++;
        return true;
}

bool check_arith(Loader *L, Node *n)
{
        uint8_t a = n->a->type, b = n->b->type, r = VT_NULL;
        switch (n->op) {
        case T_PLUS:
                if (a == VT_NUM && b == VT_NUM) r = VT_NUM;
                else if (a == VT_DUR && b == VT_DUR) r = VT_DUR;
                else if ((a == VT_TIME && b == VT_DUR) || (a == VT_DUR && b == VT_TIME)) r = VT_TIME;
                break;
        case T_MINUS:
                if (a == VT_NUM && b == VT_NUM) r = VT_NUM;
                else if (a == VT_DUR && b == VT_DUR) r = VT_DUR;
                else if (a == VT_TIME && b == VT_DUR) r = VT_TIME;
                else if (a == VT_TIME && b == VT_TIME) r = VT_DUR;
                break;
        case T_STAR:
                if (a == VT_NUM && b == VT_NUM) r = VT_NUM;
                else if ((a == VT_DUR && b == VT_NUM) || (a == VT_NUM && b == VT_DUR)) r = VT_DUR;
                break;
        case T_SLASH:
                if (a == VT_NUM && b == VT_NUM) r = VT_NUM;
                else if (a == VT_DUR && b == VT_NUM) r = VT_DUR;
                else if (a == VT_DUR && b == VT_DUR) r = VT_NUM;
                break;
        case T_PERCENT:
                if (a == VT_NUM && b == VT_NUM) r = VT_NUM;
                break;
        default:
                break;
        }
        if (r == VT_NULL) {
                if ((n->a->kind == N_LIT && a == VT_NULL) || (n->b->kind == N_LIT && b == VT_NULL)) {
                        n->type = VT_NULL;
                        return true;
                }
                char da[96], db[96];
                check_type_desc(n->a, da, sizeof(da));
                check_type_desc(n->b, db, sizeof(db));
                check_err(L, n, DIAG_E033, "arithmetic works on numbers, durations and times (time - time is a duration)",
                    "cannot apply %s to %s and %s", tok_kind_str(n->op), da, db);
                return false;
        }
        n->type = r;
        return true;
}

Node *check_fold(Loader *L, Node *n)
{
        if (n->kind == N_UNARY && n->a->kind == N_LIT) {
                Value v = n->op == T_NOT ? value_bool(!value_truthy(&n->a->lit)) : value_neg(&n->a->lit);
                Node *r = check_lit(L, n, v);
                r->en = n->en;
                return r;
        }
        if (n->kind != N_BINARY)
                return n;
        Node *a = n->a, *b = n->b;
        if (n->op == T_AND || n->op == T_OR) {
                bool is_and = n->op == T_AND;
                /* conditions have no side effects: `x and false` is false,
                 * `x or true` is true, whatever x reads */
                if (a->kind == N_LIT)
                        return value_truthy(&a->lit) == is_and ? b : check_lit(L, n, value_bool(!is_and));
                if (b->kind == N_LIT)
                        return value_truthy(&b->lit) == is_and ? a : check_lit(L, n, value_bool(!is_and));
                return n;
        }
        if (a->kind != N_LIT || b->kind != N_LIT)
                return n;
        int c;
        Value v;
        switch (n->op) {
        case T_EQ: v = value_bool(value_cmp(&a->lit, &b->lit, &c) && c == 0); break;
        case T_NE: v = value_bool(value_cmp(&a->lit, &b->lit, &c) && c != 0); break;
        case T_LT: v = value_bool(value_cmp(&a->lit, &b->lit, &c) && c < 0); break;
        case T_LE: v = value_bool(value_cmp(&a->lit, &b->lit, &c) && c <= 0); break;
        case T_GT: v = value_bool(value_cmp(&a->lit, &b->lit, &c) && c > 0); break;
        case T_GE: v = value_bool(value_cmp(&a->lit, &b->lit, &c) && c >= 0); break;
        case T_PLUS: v = value_arith('+', &a->lit, &b->lit); break;
        case T_MINUS: v = value_arith('-', &a->lit, &b->lit); break;
        case T_STAR: v = value_arith('*', &a->lit, &b->lit); break;
        case T_SLASH: v = value_arith('/', &a->lit, &b->lit); break;
        case T_PERCENT: v = value_arith('%', &a->lit, &b->lit); break;
        case T_CONTAINS: v = value_bool(value_contains(&a->lit, &b->lit)); break;
        case T_STARTSWITH: v = value_bool(value_startswith(&a->lit, &b->lit)); break;
        case T_ENDSWITH: v = value_bool(value_endswith(&a->lit, &b->lit)); break;
        default: return n;
        }
        return check_lit(L, n, v);
}
