/*
 * The rule VM: runs one Program of a RuleSet over an event frame and
 * returns a Value.  A stack machine in the style of Lua's lvm.c: a
 * `for (;;) switch` over 32-bit instructions (see src/rules/opcodes.h for
 * the meaning of each opcode), operands on a fixed local array.
 *
 * Invariants:
 * - vm_run never allocates and never writes to the RuleSet or the frame.
 *   The only mutable state it touches is the caller's scratch buffer
 *   (lower()) and each regex's scratch and error count (MATCH), which is why a RuleSet
 *   is evaluated by one thread at a time (see src/rules/vm.h).
 * - The code is trusted: the compiler computes Program.max_stack exactly
 *   and the loader runs vm_verify() on every program once, so the loop
 *   does no per-push bounds checks.  vm_run only refuses a program whose max_stack
 *   exceeds its local stack (VM_STACK) and an unknown opcode (VM_BADCODE).
 * - Null semantics live in value.c; here null is just another Value, plus:
 *   IN/NOT_IN/MATCH/string predicates of null are false, NOT null is true.
 * - A string result may point into f->scratch: it lives until the caller
 *   reuses the scratch buffer.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/util.h"
#include "src/rules/opcodes.h"
#include "src/rules/vm.h"

/* ---- sets ---- */

/* Whether v (non-null, of the set's tag) is a member.  An enum outside
 * 0..RULES_MAX_ENUM-1 (-1 = a value the schema does not know) is in no set. */
static bool vm_set_has(const ConstSet *cs, const Value *v)
{
        if (cs->tag == VT_ENUM) {
                if (v->e < 0 || v->e >= RULES_MAX_ENUM || !cs->bits)
                        return false;
                return (cs->bits[v->e / 64] >> (v->e % 64)) & 1;
        }
        uint32_t lo = 0, hi = cs->n;
        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                const Value *m = &cs->v[mid];
                int c;
                if (cs->tag == VT_STR)
                        c = str_order(v->s, m->s);
                else if (v->n < m->n)
                        c = -1;
                else if (v->n > m->n)
                        c = 1;
                else if (v->n == m->n)
                        c = 0;
                else
                        return false; /* NaN is equal to nothing */
                if (c == 0)
                        return true;
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return false;
}

/* ---- the loop ---- */

int vm_run(const RuleSet *rs, uint32_t prog, const VmFrame *f, Value *ret)
{
        if (prog >= rs->nprogs)
                return VM_BADCODE;
        const Program *p = &rs->progs[prog];
        if (p->max_stack > VM_STACK_MAX)
                return VM_STACK;

        Value stack[VM_STACK_MAX];
        Value *sp = stack; /* next free slot; the top is sp[-1] */
        const uint32_t *code = rs->code;
        const uint32_t *pc = code + p->start;
        uint32_t scratch_used = f->scratch_used; /* a local cursor: f is const */
        int c;

/* A boolean into a stack slot by its two fields: building a whole Value
 * and copying it makes the compiler store bytes and reload them as one
 * 16-byte word, a store-forwarding stall on every comparison.  The rest of
 * the slot keeps stale bytes, which nothing reads for a VT_BOOL. */
#define VM_SETBOOL(dst, x)                                                           \
        do {                                                                         \
                bool v_ = (x);                                                       \
                (dst)->tag = VT_BOOL;                                                \
                (dst)->b = v_;                                                       \
        } while (0)

/* pop b, replace a by the comparison's result; enums and numbers (what
 * rules compare most) inline, as value_cmp does them */
#define VM_COMPARE(test)                                                             \
        do {                                                                         \
                sp--;                                                                \
                VM_COMPARE_WITH(&sp[0], test);                                       \
        } while (0)
/* top against b */
#define VM_COMPARE_WITH(b, test)                                                     \
        do {                                                                         \
                const Value *a_ = &sp[-1], *b_ = (b);                                \
                bool ok_;                                                            \
                if (a_->tag == VT_ENUM && b_->tag == VT_ENUM) {                      \
                        c = (a_->e > b_->e) - (a_->e < b_->e);                       \
                        ok_ = true;                                                  \
                } else if (a_->tag == VT_NUM && b_->tag == VT_NUM) {                 \
                        ok_ = !isnan(a_->n) && !isnan(b_->n);                        \
                        c = (a_->n > b_->n) - (a_->n < b_->n);                       \
                } else {                                                             \
                        ok_ = value_cmp(a_, b_, &c);                                 \
                }                                                                    \
                VM_SETBOOL(&sp[-1], ok_ && (test));                                  \
        } while (0)
#define VM_ARITH(ch)                                                                 \
        do {                                                                         \
                sp--;                                                                \
                sp[-1] = value_arith((ch), &sp[-1], &sp[0]);                         \
        } while (0)
#define VM_STRPRED(fn)                                                               \
        do {                                                                         \
                sp--;                                                                \
                VM_SETBOOL(&sp[-1], fn(&sp[-1], &sp[0]));                            \
        } while (0)

        for (;;) {
                uint32_t insn = *pc++;
                uint32_t arg = INSN_ARG(insn);
                switch (INSN_OP(insn)) {
                case OP_CONST:
                        *sp++ = rs->consts[arg];
                        break;
                case OP_NULL:
                        *sp++ = value_null();
                        break;
                case OP_TRUE:
                        VM_SETBOOL(sp, true);
                        sp++;
                        break;
                case OP_FALSE:
                        VM_SETBOOL(sp, false);
                        sp++;
                        break;
                case OP_FIELD:
                        *sp++ = f->event ? f->event[arg] : value_null();
                        break;
                case OP_CUR:
                        *sp++ = f->cur ? f->cur[arg] : value_null();
                        break;
                case OP_PROFILE:
                        *sp++ = f->profile ? f->profile[arg] : value_null();
                        break;
                case OP_SCORE:
                        *sp++ = value_num(f->state ? f->state->score : 0);
                        break;
                case OP_GRADE:
                        *sp++ = f->state && f->state->grade >= 0 ? value_enum(f->state->grade) : value_null();
                        break;
                case OP_MODE:
                        *sp++ = f->state && f->state->mode >= 0 ? value_enum(f->state->mode) : value_null();
                        break;
                case OP_PER_YEAR:
                        *sp++ = value_num(f->state ? f->state->per_year : 0);
                        break;
                case OP_FLAG:
                        VM_SETBOOL(sp, f->state && arg < 64 && ((f->state->flags >> arg) & 1));
                        sp++;
                        break;
                case OP_NOW:
                        *sp++ = value_time(f->now);
                        break;
                case OP_AGG: {
                        Value v = value_null();
                        if (f->agg && f->agg(f->agg_ud, rs, arg, f, &v) != 0)
                                return VM_AGG;
                        *sp++ = v;
                        break;
                }
                case OP_EQ: VM_COMPARE(c == 0); break;
                case OP_NE: VM_COMPARE(c != 0); break;
                case OP_LT: VM_COMPARE(c < 0); break;
                case OP_LE: VM_COMPARE(c <= 0); break;
                case OP_GT: VM_COMPARE(c > 0); break;
                case OP_GE: VM_COMPARE(c >= 0); break;
                case OP_EQ_C: VM_COMPARE_WITH(&rs->consts[arg], c == 0); break;
                case OP_NE_C: VM_COMPARE_WITH(&rs->consts[arg], c != 0); break;
                case OP_LT_C: VM_COMPARE_WITH(&rs->consts[arg], c < 0); break;
                case OP_LE_C: VM_COMPARE_WITH(&rs->consts[arg], c <= 0); break;
                case OP_GT_C: VM_COMPARE_WITH(&rs->consts[arg], c > 0); break;
                case OP_GE_C: VM_COMPARE_WITH(&rs->consts[arg], c >= 0); break;
                case OP_IN:
                case OP_NOT_IN: {
                        const ConstSet *cs = &rs->sets[arg];
                        Value *a = &sp[-1];
                        bool r = false;
                        if (a->tag != VT_NULL && a->tag == cs->tag) {
                                r = vm_set_has(cs, a);
                                if (INSN_OP(insn) == OP_NOT_IN)
                                        r = !r;
                        }
                        VM_SETBOOL(a, r);
                        break;
                }
                case OP_CONTAINS: VM_STRPRED(value_contains); break;
                case OP_STARTSWITH: VM_STRPRED(value_startswith); break;
                case OP_ENDSWITH: VM_STRPRED(value_endswith); break;
                case OP_MATCH: {
                        Value *a = &sp[-1];
                        /* an engine error is false here and counted in the
                         * regex (vm_regex_errors): never a silent miss */
                        VM_SETBOOL(a, a->tag == VT_STR && vm_regex_match(rs->regexes[arg], a->s.p, a->s.len) == 1);
                        break;
                }
                case OP_ADD: VM_ARITH('+'); break;
                case OP_SUB: VM_ARITH('-'); break;
                case OP_MUL: VM_ARITH('*'); break;
                case OP_DIV: VM_ARITH('/'); break;
                case OP_MOD: VM_ARITH('%'); break;
                case OP_NEG:
                        sp[-1] = value_neg(&sp[-1]);
                        break;
                case OP_ABS:
                        sp[-1] = value_abs(&sp[-1]);
                        break;
                case OP_NOT:
                        VM_SETBOOL(&sp[-1], !value_truthy(&sp[-1]));
                        break;
                case OP_TOBOOL:
                        VM_SETBOOL(&sp[-1], value_truthy(&sp[-1]));
                        break;
                case OP_EXISTS:
                        VM_SETBOOL(&sp[-1], sp[-1].tag != VT_NULL);
                        break;
                case OP_LOWER: {
                        Value *a = &sp[-1];
                        if (a->tag != VT_STR) {
                                *a = value_null();
                                break;
                        }
                        if (a->s.len == 0)
                                break; /* needs no scratch */
                        if (!f->scratch || scratch_used > f->scratch_size || f->scratch_size - scratch_used < a->s.len) {
                                *a = value_null(); /* documented: a too small scratch gives null */
                                break;
                        }
                        char *out = f->scratch + scratch_used;
                        for (uint32_t i = 0; i < a->s.len; i++) {
                                char ch = a->s.p[i];
                                out[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
                        }
                        scratch_used += a->s.len;
                        *a = value_str(out, a->s.len);
                        break;
                }
                case OP_JF_KEEP:
                        if (!value_truthy(&sp[-1])) {
                                VM_SETBOOL(&sp[-1], false);
                                pc = code + arg;
                        } else {
                                sp--;
                        }
                        break;
                case OP_JT_KEEP:
                        if (value_truthy(&sp[-1])) {
                                VM_SETBOOL(&sp[-1], true);
                                pc = code + arg;
                        } else {
                                sp--;
                        }
                        break;
                case OP_RET: {
                        /* once a run: verified code returns its one value
                         * (an empty stack is refused below, as documented) */
                        assert(sp <= stack + 1);
                        if (sp == stack)
                                return VM_BADCODE;
                        /* field by field, as the value was just written: a
                         * whole-struct copy reloads narrow stores as wide
                         * words (a store-forwarding stall on every run) */
                        const Value *top = &sp[-1];
                        ret->tag = top->tag;
                        switch (top->tag) {
                        case VT_BOOL: ret->b = top->b; break;
                        case VT_NUM: ret->n = top->n; break;
                        case VT_TIME:
                        case VT_DUR: ret->ms = top->ms; break;
                        case VT_ENUM: ret->e = top->e; break;
                        case VT_STR:
                                ret->s.p = top->s.p;
                                ret->s.len = top->s.len;
                                break;
                        default: break; /* null: the tag is all */
                        }
                        return VM_OK;
                }
                default:
                        return VM_BADCODE;
                }
        }
#undef VM_COMPARE
#undef VM_COMPARE_WITH
#undef VM_ARITH
#undef VM_STRPRED
}

bool vm_test(const RuleSet *rs, uint32_t prog, const VmFrame *f)
{
        Value v = value_null();
        return vm_run(rs, prog, f, &v) == VM_OK && v.tag == VT_BOOL && v.b;
}

/* ---- verification ---- */

/* How many operands an opcode consumes (it pushes one back, except the
 * pop path of a conditional jump). */
static int vm_op_inputs(Opcode op)
{
        switch (op) {
        case OP_EQ: case OP_NE: case OP_LT: case OP_LE: case OP_GT: case OP_GE:
        case OP_CONTAINS: case OP_STARTSWITH: case OP_ENDSWITH:
        case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_MOD:
                return 2;
        case OP_IN: case OP_NOT_IN: case OP_MATCH: case OP_NEG: case OP_NOT: case OP_TOBOOL:
        case OP_EXISTS: case OP_LOWER: case OP_ABS: case OP_JF_KEEP: case OP_JT_KEEP: case OP_RET:
        case OP_EQ_C: case OP_NE_C: case OP_LT_C: case OP_LE_C: case OP_GT_C: case OP_GE_C:
                return 1;
        default:
                return 0;
        }
}

static bool vm_arg_ok(const RuleSet *rs, Opcode op, uint32_t arg)
{
        switch (op) {
        case OP_CONST:
        case OP_EQ_C: case OP_NE_C: case OP_LT_C: case OP_LE_C: case OP_GT_C: case OP_GE_C:
                return arg < rs->nconsts;
        case OP_FIELD:
        case OP_CUR:
        case OP_PROFILE: return arg < rs->schema.nslots;
        case OP_FLAG: return arg < rs->nflags && arg < RULES_MAX_FLAGS;
        case OP_AGG: return arg < rs->naggs;
        case OP_IN:
        case OP_NOT_IN:
                if (arg >= rs->nsets)
                        return false;
                switch (rs->sets[arg].tag) {
                case VT_ENUM: return true;
                case VT_STR:
                case VT_NUM: return rs->sets[arg].n == 0 || rs->sets[arg].v;
                default: return false;
                }
        case OP_MATCH: return arg < rs->nregexes && rs->regexes[arg];
        default: return true;
        }
}

int vm_verify(const RuleSet *rs, uint32_t prog)
{
        if (prog >= rs->nprogs)
                return VM_BADCODE;
        const Program *p = &rs->progs[prog];
        if (p->max_stack > VM_STACK_MAX)
                return VM_STACK;
        if (p->len == 0 || p->start > rs->ncode || rs->ncode - p->start < p->len)
                return VM_BADCODE;

        /* depth expected at each instruction by a jump to it, -1 none */
        int32_t *at = xmalloc(p->len * sizeof(int32_t));
        for (uint32_t i = 0; i < p->len; i++)
                at[i] = -1;
        int rc = VM_OK;
        int32_t depth = 0;
        bool live = true; /* reachable by falling through */
        for (uint32_t i = 0; i < p->len && rc == VM_OK; i++) {
                uint32_t insn = rs->code[p->start + i];
                Opcode op = INSN_OP(insn);
                uint32_t arg = INSN_ARG(insn);
                if (at[i] >= 0) {
                        if (live && depth != at[i]) {
                                rc = VM_BADCODE;
                                break;
                        }
                        depth = at[i];
                        live = true;
                }
                if (!live)
                        continue; /* dead code is harmless */
                if (op >= _OP_MAX || (!opcode_has_arg(op) && arg != 0) || !vm_arg_ok(rs, op, arg) ||
                    depth < vm_op_inputs(op)) {
                        rc = VM_BADCODE;
                        break;
                }
                if (op == OP_JF_KEEP || op == OP_JT_KEEP) {
                        /* forward, to an instruction of this program */
                        if (arg <= p->start + i || arg >= p->start + p->len) {
                                rc = VM_BADCODE;
                                break;
                        }
                        uint32_t t = arg - p->start;
                        if (at[t] >= 0 && at[t] != depth) {
                                rc = VM_BADCODE;
                                break;
                        }
                        at[t] = depth; /* the top is replaced, not popped */
                } else if (op == OP_RET) {
                        if (depth != 1)
                                rc = VM_BADCODE;
                        live = false;
                        continue;
                }
                depth += opcode_stack_effect(op);
                if (depth > (int32_t)p->max_stack)
                        rc = VM_STACK;
        }
        if (rc == VM_OK && live)
                rc = VM_BADCODE; /* the last instruction falls off the end */
        free(at);
        return rc;
}
