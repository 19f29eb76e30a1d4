/*
 * The checker: resolves every name of a condition (event fields, profile
 * fields, state, flags, macros, lists), expands macros, assigns a type to
 * every node, converts string literals to enum values and times where the
 * other operand needs it, and folds constants.  It reports every problem it
 * can find with a position and a suggestion, and keeps going.
 *
 * After a successful check every N_NAME has a RefKind in ref and a slot, and
 * the tree holds no macro references: compile.c only has to emit code.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/rules/load.h"
#include "src/rules/vm.h"

typedef struct Scope {
        uint64_t on;       /* types of the current event */
        bool in_agg;
        uint32_t row_type; /* in an aggregate: the row's event type */
        bool grading;
} Scope;

static Node *check(Loader *L, Node *n, Scope *sc, CheckCtx *cx);

static const char *type_str(uint8_t t)
{
        switch (t) {
        case VT_NULL: return "null";
        case VT_BOOL: return "bool";
        case VT_NUM: return "number";
        case VT_STR: return "string";
        case VT_ENUM: return "enum";
        case VT_TIME: return "time";
        case VT_DUR: return "duration";
        }
        return "?";
}

static void type_desc(const Node *n, char *buf, size_t size)
{
        if (n->type == VT_ENUM && n->en)
                snprintf(buf, size, "enum %s", n->en->name);
        else
                snprintf(buf, size, "%s", type_str(n->type));
}

static uint8_t ft_to_vt(FieldType t)
{
        switch (t) {
        case FT_BOOL: return VT_BOOL;
        case FT_NUM: return VT_NUM;
        case FT_STR: return VT_STR;
        case FT_ENUM: return VT_ENUM;
        case FT_TIME: return VT_TIME;
        case FT_DUR: return VT_DUR;
        }
        return VT_NULL;
}

static void err(Loader *L, const Node *n, DiagCode c, const char *hint, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
static void err(Loader *L, const Node *n, DiagCode c, const char *hint, const char *fmt, ...)
{
        Buf b = {0};
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        diag_add(L->dl, c, loader_node_pos(L, n), hint, "%s", b.p);
        buf_free(&b);
}

static Node *lit_node(Loader *L, const Node *at, Value v)
{
        Node *n = arena_alloc(L->ar, sizeof(*n));
        n->kind = N_LIT;
        n->off = at->off;
        n->len = at->len;
        n->src_id = at->src_id;
        n->lit = v;
        n->type = v.tag;
        return n;
}

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
                        err(L, lit, DIAG_E032, h.p, "'%s' is not a value of %s", s, other->en->name);
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
                        err(L, lit, DIAG_E023,
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

static bool is_bool(const Node *n)
{
        return n->type == VT_BOOL || (n->kind == N_LIT && n->type == VT_NULL);
}

/* A flag name read by a condition, set by a rule or not (W107 suggests
 * the closest one to a flag that is set but never read). */
static void flag_read(Loader *L, const char *name)
{
        for (uint32_t i = 0; i < L->nflags_read; i++)
                if (strcmp(L->flags_read[i], name) == 0)
                        return;
        VEC_PUSH(L->flags_read, L->nflags_read, L->flags_readcap) = xstrdup(name);
}

static Node *resolve_name(Loader *L, Node *n, Scope *sc, CheckCtx *cx)
{
        const Schema *s = &L->rs->schema;
        const char *name = n->name;
        if (strcmp(name, "now") == 0) {
                n->ref = REF_NOW;
                n->type = VT_TIME;
                return n;
        }
        if (strncmp(name, "state.", 6) == 0) {
                const char *k = name + 6;
                if (strcmp(k, "score") == 0) {
                        n->ref = REF_SCORE;
                        n->type = VT_NUM;
                } else if (strcmp(k, "grade") == 0) {
                        n->ref = REF_GRADE;
                        n->type = VT_ENUM;
                        n->en = &L->grade_enum;
                } else if (strcmp(k, "mode") == 0) {
                        n->ref = REF_MODE;
                        n->type = VT_ENUM;
                        n->en = &L->mode_enum;
                } else if (strcmp(k, "inspections_per_year") == 0) {
                        n->ref = REF_PER_YEAR;
                        n->type = VT_NUM;
                } else if (strncmp(k, "flags.", 6) == 0) {
                        flag_read(L, k + 6);
                        int32_t id = loader_flag(L, k + 6, false);
                        if (id < 0) {
                                const char *sug = diag_suggest(k + 6, (const char *const *)L->rs->flags, L->rs->nflags);
                                Buf h = {0};
                                if (sug)
                                        buf_printf(&h, "did you mean '%s'? ", sug);
                                buf_puts(&h, "flags set by rules:");
                                for (uint32_t i = 0; i < L->rs->nflags; i++)
                                        buf_printf(&h, " %s", L->rs->flags[i]);
                                if (!L->rs->nflags)
                                        buf_puts(&h, " none");
                                err(L, n, DIAG_E041, h.p, "no rule sets flag '%s'", k + 6);
                                buf_free(&h);
                                return NULL;
                        }
                        L->flag_reads[id]++;
                        n->ref = REF_FLAG;
                        n->slot = id;
                        n->type = VT_BOOL;
                } else {
                        static const char *const st[] = {"score", "grade", "mode", "inspections_per_year", "flags"};
                        const char *sug = diag_suggest(k, st, ARRAY_SIZE(st));
                        char *hint = xasprintf("%s%s%sstate has: score, grade, mode, inspections_per_year, flags.NAME",
                                               sug ? "did you mean 'state." : "", sug ? sug : "", sug ? "'? " : "");
                        err(L, n, DIAG_E042, hint, "unknown state value '%s'", name);
                        free(hint);
                        return NULL;
                }
                return n;
        }
        if (strncmp(name, "enterprise.", 11) == 0) {
                if (s->profile_type < 0) {
                        err(L, n, DIAG_E031, "declare profile: TYPE in schema.yaml",
                            "'%s': the schema declares no profile type", name);
                        return NULL;
                }
                const Field *f = schema_field(s, (uint32_t)s->profile_type, name + 11);
                if (!f) {
                        Buf h = {0};
                        schema_suggest_field(L, 1ull << s->profile_type, name + 11, &h);
                        err(L, n, DIAG_E031, h.p, "unknown profile field '%s' (of %s)", name + 11,
                            s->types[s->profile_type].name);
                        buf_free(&h);
                        return NULL;
                }
                n->ref = REF_PROFILE;
                n->slot = (int32_t)f->slot;
                n->type = ft_to_vt(f->type);
                n->en = f->en;
                return n;
        }
        uint64_t on = sc->in_agg ? 1ull << sc->row_type : sc->on;
        if (!sc->grading && on) {
                int32_t slot;
                const Field *f = schema_field_on(L, on, name, &slot);
                if (f) {
                        if (!sc->in_agg && !cx->event_field)
                                cx->event_field = f->path;
                        n->ref = REF_FIELD;
                        n->slot = slot;
                        n->type = ft_to_vt(f->type);
                        n->en = f->en;
                        return n;
                }
        }
        for (uint32_t i = 0; i < L->nmacros; i++) {
                MacroDef *md = &L->macros[i];
                if (strcmp(md->name, name) != 0)
                        continue;
                md->used = true;
                if (!md->body)
                        return NULL; /* its syntax error is already reported */
                if (md->visiting) {
                        err(L, n, DIAG_E036, "a macro cannot use itself, directly or through other macros",
                            "macro '%s' refers to itself", name);
                        return NULL;
                }
                md->visiting = 1;
                Node *body = node_clone(L->ar, md->body);
                Node *r = check(L, body, sc, cx);
                md->visiting = 0;
                return r;
        }
        for (uint32_t i = 0; i < L->nlists; i++)
                if (strcmp(L->lists[i].name, name) == 0) {
                        L->lists[i].used = true;
                        err(L, n, DIAG_E033, "write `FIELD in LIST`",
                            "list '%s' can only be used after in / not in", name);
                        return NULL;
                }
        Buf h = {0};
        if (sc->grading) {
                buf_puts(&h, "grading conditions read state.* and enterprise.* only");
                err(L, n, DIAG_E031, h.p, "unknown name '%s' in a grading condition", name);
        } else {
                schema_suggest_field(L, on, name, &h);
                const char *tn = sc->in_agg ? s->types[sc->row_type].name : NULL;
                if (tn)
                        err(L, n, DIAG_E031, h.len ? h.p : NULL, "unknown field '%s' of %s", name, tn);
                else {
                        Buf tl = {0};
                        for (uint32_t t = 0; t < s->ntypes; t++)
                                if (on & (1ull << t))
                                        buf_printf(&tl, "%s%s", tl.len ? ", " : "", s->types[t].name);
                        err(L, n, DIAG_E031, h.len ? h.p : NULL, "unknown field '%s' of %s", name,
                            tl.p ? tl.p : "the event");
                        buf_free(&tl);
                }
        }
        buf_free(&h);
        return NULL;
}

static uint32_t set_from_nodes(Loader *L, Node *lhs, Node **items, uint32_t n, bool *ok)
{
        Value *v = xcalloc(n + 1, sizeof(Value));
        uint8_t tag = lhs->type;
        for (uint32_t i = 0; i < n; i++) {
                Node *it = items[i];
                if (it->kind != N_LIT) {
                        err(L, it, DIAG_E046, "list items are literals: \"text\", 12, true", "a list item must be a literal");
                        *ok = false;
                        continue;
                }
                if (!coerce_lit(L, it, lhs)) {
                        *ok = false;
                        continue;
                }
                if (it->type != tag) {
                        char a[96];
                        type_desc(lhs, a, sizeof(a));
                        err(L, it, DIAG_E033, NULL, "list item is a %s but the value tested is %s",
                            type_str(it->type), a);
                        *ok = false;
                        continue;
                }
                v[i] = it->lit;
        }
        uint32_t idx = *ok ? compile_set(L, tag, v, n) : 0;
        free(v);
        return idx;
}

static bool check_in(Loader *L, Node *n)
{
        Node *a = n->a, *b = n->b;
        if (a->type != VT_STR && a->type != VT_NUM && a->type != VT_ENUM) {
                char d[96];
                type_desc(a, d, sizeof(d));
                err(L, a, DIAG_E033, "in tests a string, number or enum against a list", "cannot test a %s with in", d);
                return false;
        }
        bool ok = true;
        if (b->kind == N_LIST) {
                n->slot = (int32_t)set_from_nodes(L, a, b->args, b->nargs, &ok);
                return ok;
        }
        if (b->kind != N_NAME) {
                err(L, b, DIAG_E033, "write a list [a, b] or the name of a list", "in needs a list on its right");
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
                const char *sug = diag_suggest(b->name, c, nc);
                Buf h = {0};
                if (sug)
                        buf_printf(&h, "did you mean '%s'? ", sug);
                buf_puts(&h, "lists:");
                for (uint32_t i = 0; i < nc; i++)
                        buf_printf(&h, " %s", c[i]);
                if (!nc)
                        buf_puts(&h, " none defined");
                err(L, b, DIAG_E034, h.p, "unknown list '%s'", b->name);
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

static bool check_compare(Loader *L, Node *n)
{
        Node *a = n->a, *b = n->b;
        if ((a->kind == N_LIT && a->type == VT_NULL) || (b->kind == N_LIT && b->type == VT_NULL)) {
                const Node *f = a->kind == N_LIT && a->type == VT_NULL ? b : a;
                (void)f;
                err(L, n, DIAG_W104, "use exists(x) or not exists(x) to test for a missing value",
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
                type_desc(a, da, sizeof(da));
                type_desc(b, db, sizeof(db));
                const char *hint = NULL;
                if ((a->type == VT_NUM && b->type == VT_STR) || (a->type == VT_STR && b->type == VT_NUM))
                        hint = "numbers are written without quotes; strings with them";
                else if (a->type == VT_BOOL || b->type == VT_BOOL)
                        hint = "a bool is tested directly: `confirmed` or `not confirmed`";
                err(L, n, DIAG_E033, hint, "cannot compare %s with %s", da, db);
                return false;
        }
        return true;
}

static bool check_strop(Loader *L, Node *n)
{
        if (n->a->type != VT_STR || n->b->type != VT_STR) {
                const Node *bad = n->a->type != VT_STR ? n->a : n->b;
                char d[96];
                type_desc(bad, d, sizeof(d));
                err(L, bad, DIAG_E033, "contains, startswith, endswith and matches work on strings",
                    "expected a string, found %s", d);
                return false;
        }
        return true;
}

static bool check_regex(Loader *L, Node *n, const CheckCtx *cx)
{
        Node *b = n->b;
        if (n->a->type != VT_STR) {
                char d[96];
                type_desc(n->a, d, sizeof(d));
                err(L, n->a, DIAG_E033, "matches works on strings", "expected a string, found %s", d);
                return false;
        }
        if (b->kind != N_LIT || b->type != VT_STR) {
                err(L, b, DIAG_E046, "write the pattern as a string literal: matches \"^SC[0-9]{14}$\"",
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
                err(L, &at, DIAG_E022,
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

static bool check_arith(Loader *L, Node *n)
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
                type_desc(n->a, da, sizeof(da));
                type_desc(n->b, db, sizeof(db));
                err(L, n, DIAG_E033, "arithmetic works on numbers, durations and times (time - time is a duration)",
                    "cannot apply %s to %s and %s", tok_kind_str(n->op), da, db);
                return false;
        }
        n->type = r;
        return true;
}

static Node *fold(Loader *L, Node *n)
{
        if (n->kind == N_UNARY && n->a->kind == N_LIT) {
                Value v = n->op == T_NOT ? value_bool(!value_truthy(&n->a->lit)) : value_neg(&n->a->lit);
                Node *r = lit_node(L, n, v);
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
                        return value_truthy(&a->lit) == is_and ? b : lit_node(L, n, value_bool(!is_and));
                if (b->kind == N_LIT)
                        return value_truthy(&b->lit) == is_and ? a : lit_node(L, n, value_bool(!is_and));
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
        return lit_node(L, n, v);
}

static Node *check_call(Loader *L, Node *n, Scope *sc, CheckCtx *cx)
{
        static const char *const funcs[] = {"exists", "lower", "abs", "count", "sum", "avg",
                                            "min", "max", "distinct", "absent"};
        if (strcmp(n->name, "exists") && strcmp(n->name, "lower") && strcmp(n->name, "abs")) {
                const char *sug = diag_suggest(n->name, funcs, ARRAY_SIZE(funcs));
                char *hint = xasprintf("%s%s%sfunctions: exists, lower, abs; aggregates: count, sum, avg, min, max, distinct, absent",
                                       sug ? "did you mean '" : "", sug ? sug : "", sug ? "'? " : "");
                err(L, n, DIAG_E037, hint, "unknown function '%s'", n->name);
                free(hint);
                return NULL;
        }
        if (n->nargs != 1) {
                err(L, n, DIAG_E038, NULL, "%s takes exactly one argument, not %u", n->name, n->nargs);
                return NULL;
        }
        Node *a = check(L, n->args[0], sc, cx);
        if (!a)
                return NULL;
        n->args[0] = a;
        if (strcmp(n->name, "exists") == 0) {
                if (a->kind != N_NAME && a->kind != N_CUR) {
                        err(L, a, DIAG_E038, "exists(field), e.g. exists(confirmed)", "exists takes a field");
                        return NULL;
                }
                n->type = VT_BOOL;
                return n;
        }
        if (strcmp(n->name, "lower") == 0) {
                if (a->type != VT_STR) {
                        char d[96];
                        type_desc(a, d, sizeof(d));
                        err(L, a, DIAG_E033, NULL, "lower takes a string, not %s", d);
                        return NULL;
                }
                n->type = VT_STR;
                if (a->kind == N_LIT) {
                        /* fold: the literal lives in the arena, lower it there */
                        char *s = arena_strndup(L->ar, a->lit.s.p, a->lit.s.len);
                        for (char *p = s; *p; p++)
                                if (*p >= 'A' && *p <= 'Z')
                                        *p = (char)(*p - 'A' + 'a');
                        return lit_node(L, n, value_str(s, a->lit.s.len));
                }
                return n;
        }
        if (a->type != VT_NUM && a->type != VT_DUR) {
                char d[96];
                type_desc(a, d, sizeof(d));
                err(L, a, DIAG_E033, NULL, "abs takes a number or a duration, not %s", d);
                return NULL;
        }
        n->type = a->type;
        if (a->kind == N_LIT)
                return lit_node(L, n, value_abs(&a->lit));
        return n;
}

static Node *check_agg(Loader *L, Node *n, Scope *sc, CheckCtx *cx)
{
        const Schema *s = &L->rs->schema;
        static const char *const kinds[] = {"count", "sum", "avg", "min", "max", "distinct", "absent"};
        const char *kname = kinds[n->agg];
        if (sc->grading || !cx->rule) {
                err(L, n, DIAG_E039, "aggregates read an enterprise's event history; grading sees state.* and enterprise.*",
                    "%s() cannot be used in a grading condition", kname);
                return NULL;
        }
        if (sc->in_agg) {
                err(L, n, DIAG_E039, NULL, "aggregates cannot be nested");
                return NULL;
        }
        if (cx->rule->is_static) {
                err(L, n, DIAG_E039, "profile rules are recomputed from the profile alone",
                    "%s() cannot be used in a rule on the profile type", kname);
                return NULL;
        }
        Node at = *n;
        at.off = n->agg_target_off;
        at.len = n->agg_target_len;
        int32_t t = -1;
        for (uint32_t i = 0; i < s->ntypes; i++)
                if (strcmp(s->types[i].name, n->agg_type) == 0)
                        t = (int32_t)i;
        if (t < 0) {
                const char *c[RULES_MAX_TYPES];
                Buf h = {0};
                for (uint32_t i = 0; i < s->ntypes; i++)
                        c[i] = s->types[i].name;
                const char *sug = diag_suggest(n->agg_type, c, s->ntypes);
                if (sug)
                        buf_printf(&h, "did you mean '%s'? ", sug);
                buf_puts(&h, "event types:");
                for (uint32_t i = 0; i < s->ntypes; i++)
                        buf_printf(&h, " %s", c[i]);
                at.len = (uint32_t)strlen(n->agg_type);
                err(L, &at, DIAG_E030, h.p, "%s() over unknown event type '%s'", kname, n->agg_type);
                buf_free(&h);
                return NULL;
        }
        bool wants_field = n->agg != AGG_COUNT && n->agg != AGG_ABSENT;
        const Field *f = NULL;
        if (wants_field && !n->agg_field) {
                err(L, &at, DIAG_E039, NULL, "%s() needs a field: %s(%s.FIELD within 30d)", kname, kname,
                    n->agg_type);
                return NULL;
        }
        if (!wants_field && n->agg_field) {
                err(L, &at, DIAG_E039, "filter with where: count(sampling where result == \"fail\" within 90d)",
                    "%s() counts events and takes no field", kname);
                return NULL;
        }
        if (n->agg_field) {
                f = schema_field(s, (uint32_t)t, n->agg_field);
                if (!f) {
                        Buf h = {0};
                        schema_suggest_field(L, 1ull << t, n->agg_field, &h);
                        err(L, &at, DIAG_E031, h.len ? h.p : NULL, "unknown field '%s' of %s", n->agg_field,
                            n->agg_type);
                        buf_free(&h);
                        return NULL;
                }
                bool ok = true;
                if (n->agg == AGG_SUM || n->agg == AGG_AVG)
                        ok = f->type == FT_NUM || f->type == FT_DUR;
                else if (n->agg == AGG_MIN || n->agg == AGG_MAX)
                        ok = f->type == FT_NUM || f->type == FT_DUR || f->type == FT_TIME;
                if (!ok) {
                        err(L, &at, DIAG_E033, NULL, "%s() needs a number field; %s.%s is a %s", kname,
                            n->agg_type, n->agg_field, type_str(ft_to_vt(f->type)));
                        return NULL;
                }
        }
        if (!n->window) {
                err(L, n, DIAG_E039, n->agg == AGG_ABSENT ? "absent(TYPE where ... for 2h)" : "e.g. within 30d",
                    "%s() needs a window: %s D", kname, n->agg == AGG_ABSENT ? "for" : "within");
                return NULL;
        }
        if (n->agg == AGG_ABSENT && !n->window_is_for) {
                err(L, n->window, DIAG_E039, "absent(TYPE ... for 2h): nothing arrived for that long",
                    "absent() takes `for D`, not `within D`");
                return NULL;
        }
        if (n->agg != AGG_ABSENT && n->window_is_for) {
                err(L, n->window, DIAG_E039, "aggregates look back over `within D`", "%s() takes `within D`, not `for D`",
                    kname);
                return NULL;
        }
        Node *w = check(L, n->window, sc, cx);
        if (!w)
                return NULL;
        if (w->kind != N_LIT || w->type != VT_DUR || w->lit.ms <= 0) {
                err(L, w, DIAG_E007, "a duration literal such as 30m, 24h, 365d", "the window must be a positive duration");
                return NULL;
        }
        if (w->lit.ms > 3650LL * 86400000LL) {
                err(L, w, DIAG_E061, NULL, "windows longer than 3650d are not supported");
                return NULL;
        }
        n->window = w;
        if (n->where) {
                Scope in = {.on = sc->on, .in_agg = true, .row_type = (uint32_t)t};
                Node *wh = check(L, n->where, &in, cx);
                if (!wh)
                        return NULL;
                if (!is_bool(wh)) {
                        char d[96];
                        type_desc(wh, d, sizeof(d));
                        err(L, wh, DIAG_E033, NULL, "where needs a condition, found %s", d);
                        return NULL;
                }
                n->where = wh;
        }
        n->slot = t; /* the row type until compiled */
        n->en = f ? f->en : NULL;
        switch (n->agg) {
        case AGG_COUNT:
        case AGG_DISTINCT: n->type = VT_NUM; break;
        case AGG_ABSENT: n->type = VT_BOOL; break;
        case AGG_SUM:
        case AGG_AVG: n->type = ft_to_vt(f->type); break;
        default: n->type = ft_to_vt(f->type); break;
        }
        uint32_t idx = compile_aggregate(L, n);
        n->slot = (int32_t)idx;
        Rule *r = cx->rule;
        bool have = false;
        for (uint32_t i = 0; i < r->naggs; i++)
                if (r->aggs[i] == idx)
                        have = true;
        if (!have) {
                uint32_t *na = arena_alloc(L->ar, (r->naggs + 1) * sizeof(uint32_t));
                if (r->naggs)
                        memcpy(na, r->aggs, r->naggs * sizeof(uint32_t));
                na[r->naggs++] = idx;
                r->aggs = na;
        }
        if (n->agg == AGG_ABSENT) {
                r->timer_driven = true;
                if (!cx->absent_at)
                        cx->absent_at = n;
        }
        return n;
}

static Node *check(Loader *L, Node *n, Scope *sc, CheckCtx *cx)
{
        switch (n->kind) {
        case N_LIT:
                n->type = n->lit.tag;
                return n;
        case N_LIST:
                err(L, n, DIAG_E033, "a list literal is only allowed after in / not in",
                    "unexpected list");
                return NULL;
        case N_NAME:
                return resolve_name(L, n, sc, cx);
        case N_CUR: {
                if (!sc->in_agg) {
                        err(L, n, DIAG_E040, "outside an aggregate, write the field name without $",
                            "$%s refers to the current event and is only allowed in an aggregate's where", n->name);
                        return NULL;
                }
                int32_t slot;
                const Field *f = schema_field_on(L, sc->on, n->name, &slot);
                if (!f) {
                        Buf h = {0};
                        schema_suggest_field(L, sc->on, n->name, &h);
                        err(L, n, DIAG_E031, h.len ? h.p : NULL, "unknown field '$%s' of the current event", n->name);
                        buf_free(&h);
                        return NULL;
                }
                if (!cx->cur_field)
                        cx->cur_field = f->path;
                n->ref = REF_CUR;
                n->slot = slot;
                n->type = ft_to_vt(f->type);
                n->en = f->en;
                return n;
        }
        case N_UNARY: {
                Node *a = check(L, n->a, sc, cx);
                if (!a)
                        return NULL;
                n->a = a;
                if (n->op == T_NOT) {
                        if (!is_bool(a)) {
                                char d[96];
                                type_desc(a, d, sizeof(d));
                                err(L, a, DIAG_E033, "not negates a condition", "not needs a bool, found %s", d);
                                return NULL;
                        }
                        n->type = VT_BOOL;
                } else {
                        if (a->type != VT_NUM && a->type != VT_DUR && a->type != VT_NULL) {
                                char d[96];
                                type_desc(a, d, sizeof(d));
                                err(L, a, DIAG_E033, NULL, "cannot negate %s", d);
                                return NULL;
                        }
                        n->type = a->type;
                }
                return fold(L, n);
        }
        case N_BINARY: {
                Node *a = check(L, n->a, sc, cx);
                Node *b = NULL;
                if ((n->op == T_IN || n->op == T_NOT_IN)) {
                        b = n->b; /* the list is resolved by check_in */
                        if (b->kind == N_LIST)
                                for (uint32_t i = 0; i < b->nargs; i++) {
                                        Node *it = check(L, b->args[i], sc, cx);
                                        if (!it)
                                                return NULL;
                                        b->args[i] = it;
                                }
                } else {
                        b = check(L, n->b, sc, cx);
                }
                if (!a || !b)
                        return NULL;
                n->a = a;
                n->b = b;
                switch (n->op) {
                case T_AND:
                case T_OR:
                        if (!is_bool(a) || !is_bool(b)) {
                                const Node *bad = !is_bool(a) ? a : b;
                                char d[96];
                                type_desc(bad, d, sizeof(d));
                                err(L, bad, DIAG_E033, "compare it to something: x > 0, x == \"v\"",
                                    "%s needs conditions on both sides, found %s", tok_kind_str(n->op), d);
                                return NULL;
                        }
                        n->type = VT_BOOL;
                        break;
                case T_EQ: case T_NE: case T_LT: case T_LE: case T_GT: case T_GE:
                        if (!check_compare(L, n))
                                return NULL;
                        n->type = VT_BOOL;
                        if ((a->kind == N_LIT && a->type == VT_NULL) || (b->kind == N_LIT && b->type == VT_NULL))
                                return lit_node(L, n, value_bool(false));
                        break;
                case T_IN: case T_NOT_IN:
                        if (!check_in(L, n))
                                return NULL;
                        n->type = VT_BOOL;
                        return n;
                case T_CONTAINS: case T_STARTSWITH: case T_ENDSWITH:
                        if (!check_strop(L, n))
                                return NULL;
                        n->type = VT_BOOL;
                        break;
                case T_MATCHES:
                        if (!check_regex(L, n, cx))
                                return NULL;
                        n->type = VT_BOOL;
                        return n;
                default:
                        if (!check_arith(L, n))
                                return NULL;
                        break;
                }
                return fold(L, n);
        }
        case N_CALL:
                return check_call(L, n, sc, cx);
        case N_AGG:
                return check_agg(L, n, sc, cx);
        }
        return NULL;
}

Node *check_condition(Loader *L, Node *n, CheckCtx *cx)
{
        Scope sc = {.on = cx->on, .grading = cx->grading};
        bool was_lit = n->kind == N_LIT;
        uint32_t nwarn = L->dl->nwarnings;
        Node *r = check(L, n, &sc, cx);
        if (!r)
                return NULL;
        if (!is_bool(r)) {
                char d[96];
                type_desc(r, d, sizeof(d));
                err(L, r, DIAG_E033, "a condition is true or false: compare the value, e.g. x > 0",
                    "the condition of %s is %s, not a condition", cx->what, d);
                return NULL;
        }
        if (r->kind == N_LIT && !was_lit && L->dl->nwarnings == nwarn) {
                if (!value_truthy(&r->lit))
                        err(L, r, DIAG_W104, "check the literals and operators", "the condition of %s is always false",
                            cx->what);
                else
                        err(L, r, DIAG_W106, NULL, "the condition of %s is always true", cx->what);
        }
        return r;
}

Node *check_value(Loader *L, Node *n, CheckCtx *cx)
{
        Scope sc = {.on = cx->on, .grading = cx->grading};
        Node *r = check(L, n, &sc, cx);
        if (!r)
                return NULL;
        if (r->type != VT_NUM) {
                char d[96];
                type_desc(r, d, sizeof(d));
                err(L, r, DIAG_E033, "score: is a number: a numeric field such as dynamic_risk_score, or arithmetic on one",
                    "the score of %s is %s, not a number", cx->what, d);
                return NULL;
        }
        return r;
}
