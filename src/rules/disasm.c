/*
 * The disassembler (riskctl disasm, riskctl check --dump), over the
 * opcode tables of opcodes.c.
 *
 * One line per instruction, its absolute index in RuleSet.code first so
 * that jump targets can be followed:
 *
 *       0012  CONST      3        ; enum#3 (fail)
 *       0013  EQ
 *
 * Invariants:
 * - The output depends only on the RuleSet: no addresses, no hash order,
 *   numbers in their shortest round-trip form, durations and times through
 *   value.c.  Golden tests may compare it byte for byte.
 * - It never trusts the code: an unknown opcode or an argument outside its
 *   pool is printed as such, never dereferenced (the fuzzer disassembles
 *   whatever the loader accepted).
 * - Enum constants carry only an index; the names are recovered from the
 *   other operand of the comparison (a field's EnumDef, state.grade's bands,
 *   state.mode's modes) by a first pass that replays the stack.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/rules.h"
#include "include/riskd/util.h"
#include "src/rules/opcodes.h"

/* ---- values ---- */

#define DIS_STR_MAX 48 /* bytes of a string constant shown */
#define DIS_SET_MAX 8  /* members of a set shown */

/* Where the names of an enum value come from. */
typedef enum DisEnumKind { DIS_ENUM_NONE, DIS_ENUM_DEF, DIS_ENUM_GRADE, DIS_ENUM_MODE } DisEnumKind;
typedef struct DisEnum {
        DisEnumKind kind;
        const EnumDef *en;
} DisEnum;

static const char *disasm_enum_name(const RuleSet *rs, DisEnum en, int32_t e)
{
        if (e < 0)
                return NULL;
        switch (en.kind) {
        case DIS_ENUM_DEF: return en.en && (uint32_t)e < en.en->nvalues ? en.en->values[e] : NULL;
        case DIS_ENUM_GRADE: return (uint32_t)e < rs->grading.nbands ? rs->grading.bands[e].grade : NULL;
        case DIS_ENUM_MODE: return (uint32_t)e < rs->grading.nmodes ? rs->grading.modes[e] : NULL;
        default: return NULL;
        }
}

/* Whole numbers in plain digits (20, not 2e+01), otherwise the shortest %g
 * that reads back as the same double. */
static void disasm_num(Buf *out, double d)
{
        char s[40];
        if (d > -1e15 && d < 1e15 && d == (double)(int64_t)d) {
                buf_printf(out, "%lld", (long long)d);
                return;
        }
        for (int prec = 1; prec <= 17; prec++) {
                snprintf(s, sizeof(s), "%.*g", prec, d);
                if (strtod(s, NULL) == d)
                        break;
        }
        buf_puts(out, s);
}

/* A quoted string, cut (on a UTF-8 boundary) after max bytes. */
static void disasm_str(Buf *out, const char *p, size_t n, size_t max)
{
        if (n <= max) {
                buf_json_str(out, p ? p : "", n);
                return;
        }
        size_t k = max;
        while (k > 0 && ((unsigned char)p[k] & 0xc0) == 0x80)
                k--;
        buf_json_str(out, p, k);
        buf_puts(out, "...");
}

static void disasm_value(Buf *out, const RuleSet *rs, const Value *v, DisEnum en)
{
        char t[64];
        switch (v->tag) {
        case VT_NULL: buf_puts(out, "null"); break;
        case VT_BOOL: buf_puts(out, v->b ? "true" : "false"); break;
        case VT_NUM: disasm_num(out, v->n); break;
        case VT_STR: disasm_str(out, v->s.p, v->s.len, DIS_STR_MAX); break;
        case VT_ENUM: {
                const char *name = disasm_enum_name(rs, en, v->e);
                buf_printf(out, "enum#%d", (int)v->e);
                if (name)
                        buf_printf(out, " (%s)", name);
                break;
        }
        case VT_TIME:
                time_format(v->ms, t, sizeof(t));
                buf_puts(out, t);
                break;
        case VT_DUR:
                duration_format(v->ms, t, sizeof(t));
                buf_puts(out, t);
                break;
        default: buf_printf(out, "<tag %u>", (unsigned)v->tag); break;
        }
}

static void disasm_set(Buf *out, const RuleSet *rs, const ConstSet *cs, DisEnum en)
{
        uint32_t shown = 0, total = 0;
        buf_putc(out, '{');
        if (cs->tag == VT_ENUM) {
                for (int32_t e = 0; cs->bits && e < RULES_MAX_ENUM; e++) {
                        if (!((cs->bits[e / 64] >> (e % 64)) & 1))
                                continue;
                        total++;
                        if (shown == DIS_SET_MAX)
                                continue;
                        const char *name = disasm_enum_name(rs, en, e);
                        buf_puts(out, shown ? ", " : "");
                        if (name)
                                buf_puts(out, name);
                        else
                                buf_printf(out, "enum#%d", (int)e);
                        shown++;
                }
        } else {
                total = cs->v ? cs->n : 0;
                for (uint32_t i = 0; i < total && shown < DIS_SET_MAX; i++, shown++) {
                        buf_puts(out, shown ? ", " : "");
                        if (cs->v[i].tag == VT_STR)
                                disasm_str(out, cs->v[i].s.p, cs->v[i].s.len, 24);
                        else
                                disasm_value(out, rs, &cs->v[i], (DisEnum){0});
                }
        }
        if (total > shown)
                buf_printf(out, "%s... %u more", shown ? ", " : "", total - shown);
        buf_putc(out, '}');
}

static const char *const disasm_agg_kinds[] = {
        [AGG_COUNT] = "count", [AGG_SUM] = "sum", [AGG_AVG] = "avg", [AGG_MIN] = "min",
        [AGG_MAX] = "max", [AGG_DISTINCT] = "distinct", [AGG_ABSENT] = "absent",
};

/* In the rule language's own spelling: sum(sampling.amount where <prog 7> within 30d). */
static void disasm_agg(Buf *out, const RuleSet *rs, uint32_t agg)
{
        if (agg >= rs->naggs) {
                buf_printf(out, "<bad aggregate %u>", agg);
                return;
        }
        const Aggregate *a = &rs->aggs[agg];
        char d[32];
        const char *kind = (unsigned)a->kind < ARRAY_SIZE(disasm_agg_kinds) ? disasm_agg_kinds[a->kind] : "?";
        const char *type = a->type < rs->schema.ntypes && rs->schema.types ? rs->schema.types[a->type].name : "?";
        buf_printf(out, "%s(%s", kind, type);
        if (a->value_slot >= 0) {
                if ((uint32_t)a->value_slot < rs->schema.nslots && rs->schema.slot_path)
                        buf_printf(out, ".%s", rs->schema.slot_path[a->value_slot]);
                else
                        buf_printf(out, ".<slot %d>", (int)a->value_slot);
        }
        if (a->where != PROG_NONE)
                buf_printf(out, " where <prog %u>", a->where);
        duration_format(a->window_ms, d, sizeof(d));
        buf_printf(out, " %s %s)", a->kind == AGG_ABSENT ? "for" : "within", d);
}

static const char *disasm_slot(const RuleSet *rs, uint32_t slot)
{
        return slot < rs->schema.nslots && rs->schema.slot_path ? rs->schema.slot_path[slot] : NULL;
}

/* ---- programs ---- */

typedef struct DisSlot {
        int32_t producer; /* the CONST instruction (program-relative) that pushed it, or -1 */
        DisEnum en;       /* the enum it belongs to, if known */
} DisSlot;

/* Replay the stack once to learn which enum each enum constant and each
 * IN/NOT_IN operand belongs to.  labels[i] is that for instruction i. */
static void disasm_enum_pass(const RuleSet *rs, const Program *p, DisEnum *labels)
{
        DisSlot *st = xcalloc(p->len + 1, sizeof(DisSlot));
        uint32_t n = 0;
        const Schema *sc = &rs->schema;
#define DIS_POP() (n ? st[--n] : (DisSlot){.producer = -1})
#define DIS_PUSH(s) (st[n++] = (s))
        for (uint32_t i = 0; i < p->len; i++) {
                uint32_t insn = rs->code[p->start + i];
                Opcode op = INSN_OP(insn);
                uint32_t arg = INSN_ARG(insn);
                DisSlot none = {.producer = -1};
                switch (op) {
                case OP_CONST:
                        DIS_PUSH(((DisSlot){.producer = (int32_t)i}));
                        break;
                case OP_FIELD:
                case OP_CUR:
                case OP_PROFILE: {
                        DisSlot s = none;
                        if (arg < sc->nslots && sc->slot_type && sc->slot_enum && sc->slot_type[arg] == FT_ENUM &&
                            sc->slot_enum[arg])
                                s.en = (DisEnum){DIS_ENUM_DEF, sc->slot_enum[arg]};
                        DIS_PUSH(s);
                        break;
                }
                case OP_GRADE:
                        DIS_PUSH(((DisSlot){.producer = -1, .en = {DIS_ENUM_GRADE, NULL}}));
                        break;
                case OP_MODE:
                        DIS_PUSH(((DisSlot){.producer = -1, .en = {DIS_ENUM_MODE, NULL}}));
                        break;
                case OP_EQ: case OP_NE: case OP_LT: case OP_LE: case OP_GT: case OP_GE: {
                        DisSlot b = DIS_POP(), a = DIS_POP();
                        if (a.en.kind && b.producer >= 0)
                                labels[b.producer] = a.en;
                        if (b.en.kind && a.producer >= 0)
                                labels[a.producer] = b.en;
                        DIS_PUSH(none);
                        break;
                }
                case OP_IN:
                case OP_NOT_IN:
                case OP_EQ_C: case OP_NE_C: case OP_LT_C: case OP_LE_C: case OP_GT_C: case OP_GE_C: {
                        DisSlot a = DIS_POP();
                        labels[i] = a.en;
                        DIS_PUSH(none);
                        break;
                }
                case OP_JF_KEEP:
                case OP_JT_KEEP:
                        (void)DIS_POP(); /* the fall-through path; the jump keeps the depth */
                        break;
                case OP_RET:
                        n = 0;
                        break;
                default: {
                        int eff = opcode_stack_effect(op);
                        int pops = eff < 0 ? 2 : eff == 0 ? 1 : 0;
                        if (op >= _OP_MAX)
                                pops = 0;
                        for (int k = 0; k < pops; k++)
                                (void)DIS_POP();
                        DIS_PUSH(none);
                        break;
                }
                }
        }
#undef DIS_POP
#undef DIS_PUSH
        free(st);
}

static void disasm_insn(Buf *out, const RuleSet *rs, uint32_t at, uint32_t insn, DisEnum label)
{
        Opcode op = INSN_OP(insn);
        uint32_t arg = INSN_ARG(insn);
        if ((unsigned)op >= _OP_MAX) {
                buf_printf(out, "  %04u  <op %u>    %u\n", at, (unsigned)op, arg);
                return;
        }
        if (!opcode_has_arg(op)) {
                if (arg)
                        buf_printf(out, "  %04u  %-10s %-8u ; unused argument\n", at, opcode_name(op), arg);
                else
                        buf_printf(out, "  %04u  %s\n", at, opcode_name(op));
                return;
        }
        buf_printf(out, "  %04u  %-10s %-8u ; ", at, opcode_name(op), arg);
        const char *s;
        switch (op) {
        case OP_CONST:
        case OP_EQ_C: case OP_NE_C: case OP_LT_C: case OP_LE_C: case OP_GT_C: case OP_GE_C:
                if (arg < rs->nconsts)
                        disasm_value(out, rs, &rs->consts[arg], label);
                else
                        buf_puts(out, "<bad constant>");
                break;
        case OP_FIELD:
        case OP_CUR:
        case OP_PROFILE:
                if (!(s = disasm_slot(rs, arg)))
                        buf_puts(out, "<bad slot>");
                else
                        buf_printf(out, "%s%s", op == OP_CUR ? "$" : op == OP_PROFILE ? "enterprise." : "", s);
                break;
        case OP_FLAG:
                if (arg < rs->nflags && rs->flags)
                        buf_puts(out, rs->flags[arg]);
                else
                        buf_puts(out, "<bad flag>");
                break;
        case OP_AGG:
                disasm_agg(out, rs, arg);
                break;
        case OP_IN:
        case OP_NOT_IN:
                if (arg < rs->nsets)
                        disasm_set(out, rs, &rs->sets[arg], label);
                else
                        buf_puts(out, "<bad set>");
                break;
        case OP_MATCH:
                if (arg < rs->nregexes && rs->regex_src && rs->regex_src[arg])
                        disasm_str(out, rs->regex_src[arg], strlen(rs->regex_src[arg]), DIS_STR_MAX);
                else
                        buf_puts(out, "<bad regex>");
                break;
        case OP_JF_KEEP:
        case OP_JT_KEEP:
                buf_printf(out, "-> %04u", arg);
                break;
        default:
                buf_puts(out, "?");
                break;
        }
        buf_putc(out, '\n');
}

void rules_disasm_prog(const RuleSet *rs, uint32_t prog, Buf *out)
{
        if (prog >= rs->nprogs) {
                buf_printf(out, "  (no program %u)\n", prog);
                return;
        }
        const Program *p = &rs->progs[prog];
        if (p->start > rs->ncode || rs->ncode - p->start < p->len) {
                buf_printf(out, "  (program %u outside the code)\n", prog);
                return;
        }
        DisEnum *labels = xcalloc(p->len + 1, sizeof(DisEnum));
        disasm_enum_pass(rs, p, labels);
        for (uint32_t i = 0; i < p->len; i++)
                disasm_insn(out, rs, p->start + i, rs->code[p->start + i], labels[i]);
        free(labels);
}

/* ---- rules ---- */

static void disasm_dur_key(Buf *out, const char *key, int64_t ms)
{
        char d[32];
        if (!ms)
                return;
        duration_format(ms, d, sizeof(d));
        buf_printf(out, "  %s: %s", key, d);
}

void rules_disasm_rule(const RuleSet *rs, const Rule *r, Buf *out)
{
        buf_printf(out, "rule %s", r->id ? r->id : "?");

        buf_puts(out, "  on: ");
        bool first = true;
        for (uint32_t t = 0; t < RULES_MAX_TYPES; t++) {
                if (!((r->on >> t) & 1))
                        continue;
                buf_puts(out, first ? "" : ",");
                if (t < rs->schema.ntypes && rs->schema.types)
                        buf_puts(out, rs->schema.types[t].name);
                else
                        buf_printf(out, "<type %u>", t);
                first = false;
        }
        if (first)
                buf_puts(out, "-");
        buf_printf(out, "  severity: %s", severity_str(r->severity));
        if (r->status == RULE_SHADOW)
                buf_puts(out, "  status: shadow");
        else if (r->status == RULE_DISABLED)
                buf_puts(out, "  status: disabled");
        if (r->score) {
                buf_puts(out, "  score: ");
                disasm_num(out, r->score);
        }
        if (r->max_score) {
                buf_puts(out, "  max_score: ");
                disasm_num(out, r->max_score);
        }
        disasm_dur_key(out, "expires", r->expires_ms);
        disasm_dur_key(out, "cooldown", r->cooldown_ms);
        disasm_dur_key(out, "for", r->for_ms);
        disasm_dur_key(out, "rectify", r->rectify_ms);
        if (r->per_slot >= 0) {
                const char *s = disasm_slot(rs, (uint32_t)r->per_slot);
                if (s)
                        buf_printf(out, "  per: %s", s);
                else
                        buf_printf(out, "  per: <slot %d>", (int)r->per_slot);
        }
        for (uint32_t i = 0; i < r->nflags; i++) {
                const RuleFlag *fl = &r->flags[i];
                buf_puts(out, i ? "," : "  flags: ");
                if (fl->flag < rs->nflags && rs->flags)
                        buf_puts(out, rs->flags[fl->flag]);
                else
                        buf_printf(out, "<flag %u>", fl->flag);
                if (fl->lifetime_ms) {
                        char d[32];
                        duration_format(fl->lifetime_ms, d, sizeof(d));
                        buf_printf(out, "(%s)", d);
                }
        }
        for (uint32_t i = 0; i < r->nactions; i++)
                buf_printf(out, "%s%s", i ? "," : "  actions: ", r->actions[i]);
        if (r->part == PART_DYNAMIC)
                buf_puts(out, "  part: dynamic");
        else if (r->replaces)
                buf_puts(out, "  replaces");
        if (r->raise)
                buf_printf(out, "  raise: %d", r->raise);
        if (r->lower)
                buf_printf(out, "  lower: %d", r->lower);
        for (uint32_t i = 0; i < r->nclears; i++)
                buf_printf(out, "%s%s", i ? "," : "  clears: ",
                           r->clears[i] < rs->nflags && rs->flags ? rs->flags[r->clears[i]] : "?");
        for (uint32_t i = 0; i < r->ncloses; i++)
                buf_printf(out, "%s%s", i ? "," : "  closes: ",
                           r->closes[i] < rs->nrules ? rs->rules[r->closes[i]].id : "?");
        if (r->is_static)
                buf_puts(out, "  static");
        if (r->timer_driven)
                buf_puts(out, "  timer");
        buf_putc(out, '\n');
        if (r->message.src) {
                buf_puts(out, "message: ");
                buf_json_str(out, r->message.src, strlen(r->message.src));
                buf_putc(out, '\n');
        }

        buf_printf(out, "when (prog %u):\n", r->when);
        rules_disasm_prog(rs, r->when, out);
        if (r->score_expr) {
                buf_printf(out, "score (prog %u):\n", r->score_prog);
                rules_disasm_prog(rs, r->score_prog, out);
        }
        for (uint32_t i = 0; i < r->naggs; i++) {
                uint32_t a = r->aggs[i];
                buf_printf(out, "aggregate %u: ", a);
                disasm_agg(out, rs, a);
                buf_putc(out, '\n');
                if (a < rs->naggs && rs->aggs[a].where != PROG_NONE) {
                        buf_printf(out, "where (prog %u):\n", rs->aggs[a].where);
                        rules_disasm_prog(rs, rs->aggs[a].where, out);
                }
        }
}
