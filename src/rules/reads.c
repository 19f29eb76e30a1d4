/*
 * What a program reads (rules.h, "what a program reads"): the engine's
 * questions about the compiled rules, answered from the bytecode here so
 * that the engine never includes opcodes.h or walks code.
 */
#include <stdbool.h>
#include <stdint.h>

#include "include/riskd/rules.h"
#include "include/riskd/util.h"
#include "src/rules/opcodes.h"

static const Opcode read_ops[] = {
        [READ_FIELD] = OP_FIELD,
        [READ_CUR] = OP_CUR,
        [READ_PROFILE] = OP_PROFILE,
        [READ_AGG] = OP_AGG,
};

void rules_prog_reads(const RuleSet *rs, uint32_t prog, ProgRead what, uint32_t **v, uint32_t *n, uint32_t *cap)
{
        if (prog == PROG_NONE)
                return;
        Opcode want = read_ops[what];
        const Program *p = &rs->progs[prog];
        for (uint32_t i = 0; i < p->len; i++) {
                uint32_t insn = rs->code[p->start + i];
                if (INSN_OP(insn) == OP_AGG && want != OP_AGG)
                        rules_prog_reads(rs, rs->aggs[INSN_ARG(insn)].where, what, v, n, cap);
                if (INSN_OP(insn) != want)
                        continue;
                uint32_t a = INSN_ARG(insn);
                bool have = false;
                for (uint32_t k = 0; k < *n; k++)
                        have |= (*v)[k] == a;
                if (!have)
                        VEC_PUSH(*v, *n, *cap) = a;
        }
}

bool rules_prog_event_only(const RuleSet *rs, uint32_t prog)
{
        const Program *p = &rs->progs[prog];
        for (uint32_t k = 0; k < p->len; k++)
                switch (INSN_OP(rs->code[p->start + k])) {
                case OP_CUR: case OP_PROFILE: case OP_SCORE: case OP_GRADE: case OP_MODE: case OP_PER_YEAR:
                case OP_FLAG: case OP_AGG:
                        return false;
                default:
                        break;
                }
        return true;
}

bool rules_prog_same(const RuleSet *rs, uint32_t a, uint32_t b)
{
        const Program *p = &rs->progs[a], *q = &rs->progs[b];
        if (p->len != q->len)
                return false;
        for (uint32_t k = 0; k < p->len; k++) {
                uint32_t x = rs->code[p->start + k], y = rs->code[q->start + k];
                Opcode op = INSN_OP(x);
                if (op == OP_JF_KEEP || op == OP_JT_KEEP) {
                        if (INSN_OP(y) != op || INSN_ARG(x) - p->start != INSN_ARG(y) - q->start)
                                return false;
                } else if (x != y) {
                        return false;
                }
        }
        return true;
}

bool rules_prog_volatile(const RuleSet *rs, uint32_t prog)
{
        const Program *p = &rs->progs[prog];
        for (uint32_t k = 0; k < p->len; k++) {
                Opcode op = INSN_OP(rs->code[p->start + k]);
                if (op == OP_NOW || op == OP_AGG)
                        return true;
        }
        return false;
}
