/*
 * Code generation: a checked expression tree becomes bytecode appended to
 * RuleSet.code, constants go to the shared pools (de-duplicated), and
 * aggregates become Aggregate descriptors shared by every rule that uses an
 * identical one.  Also message templates and rule fingerprints.
 *
 * The compiler tracks the stack depth of every instruction it emits, so
 * that Program.max_stack is exact and the VM never checks bounds per push.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "src/rules/load.h"
#include "src/rules/opcodes.h"

typedef struct Emit {
        Loader *L;
        uint32_t depth, max;
        bool in_agg;
} Emit;

static uint32_t emit(Emit *e, Opcode op, uint32_t arg)
{
        RuleSet *rs = e->L->rs;
        if (rs->ncode >= RULES_MAX_CODE)
                abort(); /* bounded by RULES_MAX_RULES and the expression size */
        if (rs->ncode >= e->L->codecap) {
                e->L->codecap = e->L->codecap ? e->L->codecap * 2 : 1024;
                rs->code = xrealloc(rs->code, e->L->codecap * sizeof(uint32_t));
        }
        assert(arg <= INSN_ARG_MAX); /* pools and jumps fit the 24-bit argument */
        rs->code[rs->ncode] = INSN(op, arg);
        int eff = opcode_stack_effect(op);
        assert((int)e->depth + eff >= 0); /* the tracked depth is exact: never below empty */
        e->depth = (uint32_t)((int)e->depth + eff);
        if (e->depth > e->max)
                e->max = e->depth;
        return rs->ncode++;
}

static void patch(Emit *e, uint32_t at)
{
        RuleSet *rs = e->L->rs;
        assert(INSN_OP(rs->code[at]) == OP_JF_KEEP || INSN_OP(rs->code[at]) == OP_JT_KEEP);
        assert(at < rs->ncode); /* jumps go forward (vm_verify) */
        rs->code[at] = INSN(INSN_OP(rs->code[at]), rs->ncode);
}

uint32_t compile_const(Loader *L, Value v)
{
        RuleSet *rs = L->rs;
        for (uint32_t i = 0; i < rs->nconsts; i++)
                if (value_identical(&rs->consts[i], &v))
                        return i;
        if (v.tag == VT_STR) /* the pool owns its strings */
                v.s.p = arena_strndup(L->ar, v.s.p, v.s.len);
        VEC_PUSH(rs->consts, rs->nconsts, L->constcap) = v;
        return rs->nconsts - 1;
}

static int set_cmp(const void *x, const void *y)
{
        int c = 0;
        value_cmp(x, y, &c);
        return c;
}

uint32_t compile_set(Loader *L, uint8_t tag, const Value *v, uint32_t n)
{
        RuleSet *rs = L->rs;
        ConstSet cs = {.tag = tag};
        if (tag == VT_ENUM) {
                cs.bits = xcalloc(RULES_MAX_ENUM / 64, sizeof(uint64_t));
                for (uint32_t i = 0; i < n; i++)
                        if (v[i].e >= 0 && v[i].e < RULES_MAX_ENUM && !(cs.bits[v[i].e / 64] & (1ull << (v[i].e % 64)))) {
                                cs.bits[v[i].e / 64] |= 1ull << (v[i].e % 64);
                                cs.n++;
                        }
        } else {
                cs.v = xcalloc(n + 1, sizeof(Value));
                for (uint32_t i = 0; i < n; i++) {
                        Value x = v[i];
                        if (x.tag == VT_STR)
                                x.s.p = arena_strndup(L->ar, x.s.p, x.s.len);
                        cs.v[i] = x;
                }
                xsort(cs.v, n, sizeof(Value), set_cmp);
                uint32_t k = 0;
                for (uint32_t i = 0; i < n; i++)
                        if (k == 0 || !value_identical(&cs.v[k - 1], &cs.v[i]))
                                cs.v[k++] = cs.v[i];
                cs.n = k;
        }
        VEC_PUSH(rs->sets, rs->nsets, L->setcap) = cs;
        return rs->nsets - 1;
}

static const Opcode binops[] = {
        [T_EQ] = OP_EQ, [T_NE] = OP_NE, [T_LT] = OP_LT, [T_LE] = OP_LE, [T_GT] = OP_GT, [T_GE] = OP_GE,
        [T_PLUS] = OP_ADD, [T_MINUS] = OP_SUB, [T_STAR] = OP_MUL, [T_SLASH] = OP_DIV,
        [T_PERCENT] = OP_MOD, [T_CONTAINS] = OP_CONTAINS, [T_STARTSWITH] = OP_STARTSWITH,
        [T_ENDSWITH] = OP_ENDSWITH,
};

static void gen(Emit *e, const Node *n)
{
        Loader *L = e->L;
        switch (n->kind) {
        case N_LIT:
                if (n->lit.tag == VT_NULL)
                        emit(e, OP_NULL, 0);
                else if (n->lit.tag == VT_BOOL)
                        emit(e, n->lit.b ? OP_TRUE : OP_FALSE, 0);
                else
                        emit(e, OP_CONST, compile_const(L, n->lit));
                return;
        case N_NAME:
        case N_CUR:
                switch ((RefKind)n->ref) {
                case REF_FIELD: emit(e, OP_FIELD, (uint32_t)n->slot); return;
                case REF_CUR: emit(e, OP_CUR, (uint32_t)n->slot); return;
                case REF_PROFILE: emit(e, OP_PROFILE, (uint32_t)n->slot); return;
                case REF_SCORE: emit(e, OP_SCORE, 0); return;
                case REF_GRADE: emit(e, OP_GRADE, 0); return;
                case REF_MODE: emit(e, OP_MODE, 0); return;
                case REF_PER_YEAR: emit(e, OP_PER_YEAR, 0); return;
                case REF_FLAG: emit(e, OP_FLAG, (uint32_t)n->slot); return;
                case REF_NOW: emit(e, OP_NOW, 0); return;
                default: emit(e, OP_NULL, 0); return;
                }
        case N_UNARY:
                gen(e, n->a);
                emit(e, n->op == T_NOT ? OP_NOT : OP_NEG, 0);
                return;
        case N_BINARY:
                if (n->op == T_AND || n->op == T_OR) {
                        gen(e, n->a);
                        /* the depth at the jump is the depth where it lands
                         * (read by the assert only: unused in release) */
                        uint32_t depth __attribute__((unused)) = e->depth;
                        uint32_t j = emit(e, n->op == T_AND ? OP_JF_KEEP : OP_JT_KEEP, 0);
                        gen(e, n->b);
                        emit(e, OP_TOBOOL, 0);
                        assert(e->depth == depth);
                        patch(e, j);
                        return;
                }
                gen(e, n->a);
                if (n->op == T_IN || n->op == T_NOT_IN) {
                        emit(e, n->op == T_IN ? OP_IN : OP_NOT_IN, (uint32_t)n->slot);
                        return;
                }
                if (n->op == T_MATCHES) {
                        emit(e, OP_MATCH, (uint32_t)n->slot);
                        return;
                }
                if (n->op >= T_EQ && n->op <= T_GE && n->b->kind == N_LIT && n->b->lit.tag != VT_NULL &&
                    n->b->lit.tag != VT_BOOL) { /* what gen(n->b) would push with OP_CONST */
                        emit(e, (Opcode)(OP_EQ_C + (binops[n->op] - OP_EQ)), compile_const(L, n->b->lit));
                        return;
                }
                gen(e, n->b);
                emit(e, binops[n->op], 0);
                return;
        case N_CALL:
                gen(e, n->args[0]);
                emit(e, strcmp(n->name, "exists") == 0 ? OP_EXISTS : strcmp(n->name, "lower") == 0 ? OP_LOWER : OP_ABS, 0);
                return;
        case N_AGG:
                emit(e, OP_AGG, (uint32_t)n->slot);
                return;
        case N_LIST:
                emit(e, OP_NULL, 0);
                return;
        }
}

uint32_t compile_program(Loader *L, Node *n, bool in_agg)
{
        RuleSet *rs = L->rs;
        Emit e = {.L = L, .in_agg = in_agg};
        uint32_t start = rs->ncode;
        gen(&e, n);
        assert(e.depth == 1); /* an expression leaves its one value */
        emit(&e, OP_RET, 0);
        Program p = {.start = start, .len = rs->ncode - start, .max_stack = e.max, .result = n->type};
        VEC_PUSH(rs->progs, rs->nprogs, L->progcap) = p;
        return rs->nprogs - 1;
}

static void collect_slots(const Node *n, uint32_t **v, uint32_t *nv, uint32_t *cap, bool *uses_cur)
{
        if (!n)
                return;
        if ((n->kind == N_NAME && n->ref == REF_FIELD)) {
                for (uint32_t i = 0; i < *nv; i++)
                        if ((*v)[i] == (uint32_t)n->slot)
                                return;
                VEC_PUSH(*v, *nv, *cap) = (uint32_t)n->slot;
        }
        if (n->kind == N_CUR)
                *uses_cur = true;
        collect_slots(n->a, v, nv, cap, uses_cur);
        collect_slots(n->b, v, nv, cap, uses_cur);
        for (uint32_t i = 0; i < n->nargs; i++)
                collect_slots(n->args[i], v, nv, cap, uses_cur);
}

static int u32_cmp(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
        return x < y ? -1 : x > y;
}

uint32_t compile_aggregate(Loader *L, Node *n)
{
        RuleSet *rs = L->rs;
        uint32_t type = (uint32_t)n->slot;
        int32_t vslot = -1;
        if (n->agg_field) {
                const Field *f = schema_field(&rs->schema, type, n->agg_field);
                vslot = f ? (int32_t)f->slot : -1;
        }
        /* the canonical text of an aggregate identifies it across rules */
        Buf key = {0};
        buf_printf(&key, "%d|%u|%d|%lld|", (int)n->agg, type, vslot, (long long)n->window->lit.ms);
        if (n->where)
                node_print(n->where, &key);
        for (uint32_t i = 0; i < rs->naggs; i++)
                if (strcmp(L->agg_keys[i], key.p) == 0) {
                        buf_free(&key);
                        return i;
                }
        Aggregate a = {.kind = n->agg, .type = type, .value_slot = vslot, .where = PROG_NONE,
                       .window_ms = n->window->lit.ms, .key_slot = -1, .pos = loader_node_pos(L, n)};
        const Node *w = n->where;
        if (w && w->kind == N_BINARY && w->op == T_EQ) {
                const Node *f = w->a->kind == N_CUR ? w->b : w->a, *c = w->a->kind == N_CUR ? w->a : w->b;
                if (f->kind == N_NAME && f->ref == REF_FIELD && c->kind == N_CUR && f->slot == c->slot)
                        a.key_slot = f->slot;
        }
        uint32_t cap = 0;
        if (vslot >= 0)
                VEC_PUSH(a.row_slots, a.nrow_slots, cap) = (uint32_t)vslot;
        if (n->where) {
                collect_slots(n->where, &a.row_slots, &a.nrow_slots, &cap, &a.uses_cur);
                a.where = compile_program(L, n->where, true);
        }
        if (a.nrow_slots > 1)
                xsort(a.row_slots, a.nrow_slots, sizeof(uint32_t), u32_cmp);
        uint32_t kc = L->aggcap;
        VEC_PUSH(rs->aggs, rs->naggs, L->aggcap) = a;
        L->agg_keys = xgrow(L->agg_keys, &kc, rs->naggs, sizeof(char *));
        L->agg_keys[rs->naggs - 1] = key.p;
        return rs->naggs - 1;
}

static uint64_t hash_value(const Value *v, uint64_t h)
{
        h = hash64(&v->tag, 1, h);
        switch (v->tag) {
        case VT_BOOL: return hash64(&v->b, 1, h);
        case VT_NUM: return hash64(&v->n, sizeof(double), h);
        case VT_STR: return hash64(v->s.p, v->s.len, h);
        case VT_ENUM: return hash64(&v->e, sizeof(v->e), h);
        case VT_TIME:
        case VT_DUR: return hash64(&v->ms, sizeof(v->ms), h);
        default: return h;
        }
}

/* Hash a program by meaning, not by pool indexes, so that the same
 * condition compiled into two rule sets gets the same fingerprint. */
uint64_t compile_fingerprint(const RuleSet *rs, uint32_t prog, uint64_t h)
{
        const Program *p = &rs->progs[prog];
        /* a fused comparison hashes as its CONST and comparison, and jump
         * targets count it as two: the fingerprints (kept in changelogs for
         * aggregates) are those of the unfused code */
        uint32_t *pos = xmalloc((p->len + 1) * sizeof(uint32_t));
        for (uint32_t i = 0, at = 0; i <= p->len; i++) {
                pos[i] = at;
                at += i < p->len && opcode_unfused(INSN_OP(rs->code[p->start + i])) != _OP_MAX ? 2 : 1;
        }
        for (uint32_t i = 0; i < p->len; i++) {
                uint32_t insn = rs->code[p->start + i];
                Opcode op = INSN_OP(insn);
                uint32_t arg = INSN_ARG(insn);
                Opcode base = opcode_unfused(op);
                if (base != _OP_MAX) {
                        Opcode c = OP_CONST;
                        h = hash64(&c, sizeof(c), h);
                        h = hash_value(&rs->consts[arg], h);
                        h = hash64(&base, sizeof(base), h);
                        continue;
                }
                h = hash64(&op, sizeof(op), h);
                switch (op) {
                case OP_CONST:
                        h = hash_value(&rs->consts[arg], h);
                        break;
                case OP_FIELD:
                case OP_CUR:
                case OP_PROFILE:
                        h = hash64(rs->schema.slot_path[arg], strlen(rs->schema.slot_path[arg]), h);
                        h = hash64(&rs->schema.slot_type[arg], sizeof(FieldType), h);
                        break;
                case OP_FLAG:
                        h = hash64(rs->flags[arg], strlen(rs->flags[arg]) + 1, h);
                        break;
                case OP_IN:
                case OP_NOT_IN: {
                        const ConstSet *cs = &rs->sets[arg];
                        h = hash64(&cs->tag, 1, h);
                        if (cs->bits)
                                h = hash64(cs->bits, RULES_MAX_ENUM / 8, h);
                        for (uint32_t k = 0; cs->v && k < cs->n; k++)
                                h = hash_value(&cs->v[k], h);
                        break;
                }
                case OP_MATCH:
                        h = hash64(rs->regex_src[arg], strlen(rs->regex_src[arg]), h);
                        break;
                case OP_AGG: {
                        const Aggregate *a = &rs->aggs[arg];
                        int64_t k[] = {a->kind, a->window_ms, a->value_slot >= 0};
                        h = hash64(k, sizeof(k), h);
                        h = hash64(rs->schema.types[a->type].name, strlen(rs->schema.types[a->type].name), h);
                        if (a->value_slot >= 0)
                                h = hash64(rs->schema.slot_path[a->value_slot], strlen(rs->schema.slot_path[a->value_slot]), h);
                        if (a->where != PROG_NONE)
                                h = compile_fingerprint(rs, a->where, h);
                        break;
                }
                case OP_JF_KEEP:
                case OP_JT_KEEP: {
                        uint32_t rel = arg - p->start <= p->len ? pos[arg - p->start] : arg - p->start;
                        h = hash64(&rel, sizeof(rel), h);
                        break;
                }
                default:
                        break;
                }
        }
        free(pos);
        return h;
}

/* [from, to) of s without the spaces at either end. */
static void tpl_trim(const char *s, size_t *from, size_t *to)
{
        while (*from < *to && s[*from] == ' ')
                (*from)++;
        while (*to > *from && s[*to - 1] == ' ')
                (*to)--;
}

/* The formats a placeholder can ask for after ':'. */
static const struct {
        const char *name;
        TplFormat fmt;
        const char *what;
} tpl_formats[] = {
        {"label", TPL_FMT_LABEL, "the enum value's label from schema.yaml"},
        {"date", TPL_FMT_DATE, "a time's date at schema.yaml's display_offset"},
        {"datetime", TPL_FMT_DATETIME, "a time's date and minute at schema.yaml's display_offset"},
};

/* {f:label} needs an enum field whose values have labels, {f:date} and
 * {f:datetime} a time field: E043 otherwise (a template that asks for
 * labels the schema does not give, or for the date of a text, would print
 * the codes or the raw value it was written to avoid). */
static bool tpl_format_ok(Loader *L, SrcPos pos, const char *name, TplFormat fmt, FieldType t, const EnumDef *en)
{
        if (fmt == TPL_FMT_DATE || fmt == TPL_FMT_DATETIME) {
                if (t == FT_TIME)
                        return true;
                const char *f = fmt == TPL_FMT_DATE ? "date" : "datetime";
                char *hint = xasprintf("only time fields have a date; {%s} prints the value", name);
                diag_add(L->dl, DIAG_E043, pos, hint, "message placeholder {%s:%s}: '%s' is not a time field", name,
                         f, name);
                free(hint);
                return false;
        }
        if (fmt != TPL_FMT_LABEL)
                return true;
        if (t != FT_ENUM || !en) {
                char *hint = xasprintf("only enum fields have labels; {%s} prints the value", name);
                diag_add(L->dl, DIAG_E043, pos, hint, "message placeholder {%s:label}: '%s' is not an enum field",
                         name, name);
                free(hint);
                return false;
        }
        if (en->labels)
                return true;
        Buf h = {0};
        buf_puts(&h, "give the values labels in schema.yaml: values: { ");
        for (uint32_t i = 0; i < en->nvalues && i < 2; i++)
                buf_printf(&h, "%s: ..., ", en->values[i]);
        buf_puts(&h, "... }");
        diag_add(L->dl, DIAG_E043, pos, h.p, "message placeholder {%s:label}: enum '%s' has no labels", name,
                 en->name);
        buf_free(&h);
        return false;
}

/* The format after ':' in a placeholder; E043 for one riskd does not know. */
static bool tpl_format(Loader *L, ExprSrc *es, const char *s, size_t ms, size_t me, const char *name,
                       TplFormat *fmt)
{
        for (size_t k = 0; k < ARRAY_SIZE(tpl_formats); k++)
                if (strlen(tpl_formats[k].name) == me - ms && memcmp(s + ms, tpl_formats[k].name, me - ms) == 0) {
                        *fmt = tpl_formats[k].fmt;
                        return true;
                }
        char *bad = xstrndup(s + ms, me - ms);
        const char *known[ARRAY_SIZE(tpl_formats)];
        for (size_t k = 0; k < ARRAY_SIZE(tpl_formats); k++)
                known[k] = tpl_formats[k].name;
        const char *sug = diag_suggest(bad, known, ARRAY_SIZE(known));
        Buf h = {0};
        if (sug) {
                for (size_t k = 0; k < ARRAY_SIZE(tpl_formats); k++)
                        if (strcmp(sug, tpl_formats[k].name) == 0)
                                buf_printf(&h, "did you mean ':%s'? (%s)", sug, tpl_formats[k].what);
        } else {
                buf_puts(&h, "the formats are");
                for (size_t k = 0; k < ARRAY_SIZE(tpl_formats); k++)
                        buf_printf(&h, "%s :%s (%s)", k ? (k + 1 == ARRAY_SIZE(tpl_formats) ? " and" : ",") : "",
                                   tpl_formats[k].name, tpl_formats[k].what);
        }
        diag_add(L->dl, DIAG_E043, exprsrc_pos(es, (uint32_t)ms, (uint32_t)(me - ms ? me - ms : 1)), h.p,
                 "unknown format ':%s' in message placeholder {%s}", bad, name);
        buf_free(&h);
        free(bad);
        return false;
}

/* "Sample {sample_code} failed {item}: {measured}{unit}"; {{ and }} are
 * literal braces.  A placeholder is {NAME}, {NAME:FORMAT} (FORMAT label: an
 * enum value's label from schema.yaml; date, datetime: a time at the
 * schema's display_offset) and either one followed by |TEXT, the text a
 * null value prints instead of "null".  Everything is resolved here, so
 * rendering an alert only indexes arrays. */
void compile_template(Loader *L, Rule *r, const YNode *y)
{
        ExprSrc *es = loader_exprsrc(L, y);
        const char *s = y->str;
        size_t n = y->len;
        const Schema *sc = &L->rs->schema;
        TplPart *parts = NULL;
        uint32_t np = 0, cap = 0;
        Buf text = {0};
        bool ok = true;
        for (size_t i = 0; i < n;) {
                if (s[i] == '{' && i + 1 < n && s[i + 1] == '{') {
                        buf_putc(&text, '{');
                        i += 2;
                        continue;
                }
                if (s[i] == '}' && i + 1 < n && s[i + 1] == '}') {
                        buf_putc(&text, '}');
                        i += 2;
                        continue;
                }
                if (s[i] != '{') {
                        buf_putc(&text, s[i++]);
                        continue;
                }
                const char *close = memchr(s + i, '}', n - i);
                if (!close) {
                        diag_add(L->dl, DIAG_E043, exprsrc_pos(es, (uint32_t)i, 1), "close it with }, or write {{ for a literal brace",
                                 "unterminated placeholder in message");
                        ok = false;
                        break;
                }
                size_t end = (size_t)(close - s);
                const char *bar = memchr(s + i + 1, '|', end - i - 1);
                size_t ns = i + 1, ne = bar ? (size_t)(bar - s) : end;
                const char *colon = memchr(s + ns, ':', ne - ns);
                size_t ms = 0, me = 0; /* the format after ':' */
                if (colon) {
                        ms = (size_t)(colon - s) + 1;
                        me = ne;
                        ne = (size_t)(colon - s);
                        tpl_trim(s, &ms, &me);
                }
                tpl_trim(s, &ns, &ne);
                char *name = xstrndup(s + ns, ne - ns);
                SrcPos pos = exprsrc_pos(es, (uint32_t)ns, (uint32_t)(ne - ns ? ne - ns : 1));
                TplPart p = {0};
                if (bar) {
                        size_t ds = (size_t)(bar - s) + 1, de = end;
                        tpl_trim(s, &ds, &de);
                        p.text = arena_strndup(L->ar, s + ds, de - ds);
                        p.len = (uint32_t)(de - ds);
                }
                TplFormat fmt = TPL_FMT_VALUE;
                if (colon && !tpl_format(L, es, s, ms, me, name, &fmt))
                        ok = false;
                if (strcmp(name, "state.score") == 0)
                        p.kind = TPL_STATE_SCORE;
                else if (strcmp(name, "state.grade") == 0)
                        p.kind = TPL_STATE_GRADE;
                else if (strcmp(name, "rule.id") == 0)
                        p.kind = TPL_RULE_ID;
                else if (strncmp(name, "enterprise.", 11) == 0) {
                        const Field *f = sc->profile_type >= 0 ? schema_field(sc, (uint32_t)sc->profile_type, name + 11) : NULL;
                        if (!f) {
                                Buf h = {0};
                                if (sc->profile_type >= 0)
                                        schema_suggest_field(L, 1ull << sc->profile_type, name + 11, &h);
                                diag_add(L->dl, DIAG_E043, pos, h.len ? h.p : NULL,
                                         "message placeholder {%s} names no profile field", name);
                                buf_free(&h);
                                ok = false;
                        } else if (!tpl_format_ok(L, pos, name, fmt, f->type, f->en)) {
                                ok = false;
                        }
                        p.kind = TPL_PROFILE;
                        p.slot = f ? f->slot : 0;
                } else {
                        int32_t slot = 0;
                        if (!*name || !schema_field_on(L, r->on, name, &slot)) {
                                Buf h = {0};
                                schema_suggest_field(L, r->on, name, &h);
                                diag_add(L->dl, DIAG_E043, pos, h.len ? h.p : "placeholders name event fields, enterprise.FIELD, state.score, state.grade or rule.id",
                                         "message placeholder {%s} names no field of the rule's event types", name);
                                buf_free(&h);
                                ok = false;
                        } else if (!tpl_format_ok(L, pos, name, fmt, sc->slot_type[slot], sc->slot_enum[slot])) {
                                ok = false;
                        }
                        p.kind = TPL_FIELD;
                        p.slot = (uint32_t)slot;
                }
                if (fmt != TPL_FMT_VALUE && p.kind != TPL_FIELD && p.kind != TPL_PROFILE) {
                        if (fmt == TPL_FMT_LABEL)
                                diag_add(L->dl, DIAG_E043, pos, "only event and enterprise fields of enum type have labels",
                                         "message placeholder {%s:label}: '%s' has no labels", name, name);
                        else
                                diag_add(L->dl, DIAG_E043, pos, "only event and enterprise fields of type time have a date",
                                         "message placeholder {%s:%s}: '%s' is not a time field", name,
                                         fmt == TPL_FMT_DATE ? "date" : "datetime", name);
                        ok = false;
                }
                p.fmt = fmt;
                free(name);
                if (text.len) {
                        TplPart t = {.kind = TPL_TEXT, .text = arena_strndup(L->ar, text.p, text.len), .len = (uint32_t)text.len};
                        VEC_PUSH(parts, np, cap) = t;
                        text.len = 0;
                }
                VEC_PUSH(parts, np, cap) = p;
                i = end + 1;
        }
        if (text.len) {
                TplPart t = {.kind = TPL_TEXT, .text = arena_strndup(L->ar, text.p, text.len), .len = (uint32_t)text.len};
                VEC_PUSH(parts, np, cap) = t;
        }
        buf_free(&text);
        if (ok) {
                r->message.parts = arena_alloc(L->ar, (np + 1) * sizeof(TplPart));
                if (np)
                        memcpy(r->message.parts, parts, np * sizeof(TplPart));
                r->message.nparts = np;
                r->message.src = arena_strdup(L->ar, s);
        }
        free(parts);
}

uint64_t rules_agg_fingerprint(const RuleSet *rs, uint32_t agg)
{
        const Aggregate *a = &rs->aggs[agg];
        uint64_t h = HASH64_INIT;
        int64_t k[] = {a->kind, a->window_ms, a->value_slot >= 0};
        h = hash64(k, sizeof(k), h);
        h = hash64(rs->schema.types[a->type].name, strlen(rs->schema.types[a->type].name) + 1, h);
        if (a->value_slot >= 0)
                h = hash64(rs->schema.slot_path[a->value_slot], strlen(rs->schema.slot_path[a->value_slot]) + 1, h);
        if (a->where != PROG_NONE)
                h = compile_fingerprint(rs, a->where, h);
        return h;
}
