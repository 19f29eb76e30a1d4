/*
 * The rule VM's instruction set, defined once.  X(NAME, has_arg, stack_effect)
 * generates the OP_ enum, the names used by the disassembler and the stack
 * depth accounting of the compiler.
 *
 * An instruction is one uint32_t: the opcode in the low 8 bits and an
 * unsigned 24-bit argument above it.  Jump targets are absolute indexes into
 * RuleSet.code.  The VM is a stack machine over Values; the compiler proves
 * the maximum depth of every program (Program.max_stack).
 */
#ifndef RISKD_RULES_OPCODES_H
#define RISKD_RULES_OPCODES_H

#include <stdint.h>

#define OPCODE_LIST(X)                                                        \
        X(CONST, 1, +1)      /* push consts[arg] */                           \
        X(NULL, 0, +1)       /* push null */                                  \
        X(TRUE, 0, +1)       /* push true */                                  \
        X(FALSE, 0, +1)      /* push false */                                 \
        X(FIELD, 1, +1)      /* push event slot arg (the row inside an aggregate) */ \
        X(CUR, 1, +1)        /* push slot arg of the triggering event ($field) */ \
        X(PROFILE, 1, +1)    /* push enterprise profile slot arg */           \
        X(SCORE, 0, +1)      /* push state.score (num) */                     \
        X(GRADE, 0, +1)      /* push state.grade (enum over the grading bands) */ \
        X(MODE, 0, +1)       /* push state.mode (enum over the modes) */      \
        X(PER_YEAR, 0, +1)   /* push state.inspections_per_year (num) */      \
        X(FLAG, 1, +1)       /* push bool: flag arg is set and live */        \
        X(NOW, 0, +1)        /* push the evaluation's event time */           \
        X(AGG, 1, +1)        /* push the value of aggregate arg */            \
        X(EQ, 0, -1)         /* a == b; false if either is null */            \
        X(NE, 0, -1)         /* a != b; false if either is null */            \
        X(LT, 0, -1)                                                          \
        X(LE, 0, -1)                                                          \
        X(GT, 0, -1)                                                          \
        X(GE, 0, -1)                                                          \
        X(IN, 1, 0)          /* a in sets[arg]; false if a is null */         \
        X(NOT_IN, 1, 0)      /* a not in sets[arg]; false if a is null */     \
        X(CONTAINS, 0, -1)   /* string a contains b */                        \
        X(STARTSWITH, 0, -1)                                                  \
        X(ENDSWITH, 0, -1)                                                    \
        X(MATCH, 1, 0)       /* string a matches regexes[arg] */              \
        X(ADD, 0, -1)                                                         \
        X(SUB, 0, -1)                                                         \
        X(MUL, 0, -1)                                                         \
        X(DIV, 0, -1)        /* division by zero gives null */                \
        X(MOD, 0, -1)                                                         \
        X(NEG, 0, 0)                                                          \
        X(NOT, 0, 0)         /* !truthy(a) */                                 \
        X(TOBOOL, 0, 0)      /* truthy(a) as a bool */                        \
        X(EXISTS, 0, 0)      /* a is not null */                              \
        X(LOWER, 0, 0)       /* ASCII lower-case copy of a string (scratch) */ \
        X(ABS, 0, 0)                                                          \
        X(JF_KEEP, 1, -1)    /* if !truthy(top): top = false, jump arg; else pop */ \
        X(JT_KEEP, 1, -1)    /* if truthy(top): top = true, jump arg; else pop */ \
        X(RET, 0, 0)         /* return top of stack */                        \
        /* CONST arg then a comparison, fused (one dispatch, no copy of the  \
         * constant); fingerprints hash them as the pair they replace */     \
        X(EQ_C, 1, 0)        /* top == consts[arg] */                         \
        X(NE_C, 1, 0)                                                         \
        X(LT_C, 1, 0)                                                         \
        X(LE_C, 1, 0)                                                         \
        X(GT_C, 1, 0)                                                         \
        X(GE_C, 1, 0)

typedef enum Opcode {
#define X(name, arg, eff) OP_##name,
        OPCODE_LIST(X)
#undef X
        _OP_MAX
} Opcode;

#define INSN(op, arg) ((uint32_t)(op) | ((uint32_t)(arg) << 8))
#define INSN_OP(i) ((Opcode)((i) & 0xff))
#define INSN_ARG(i) ((uint32_t)(i) >> 8)
#define INSN_ARG_MAX 0xffffffu

/* The comparison a fused OP_*_C stands for (after its CONST), else _OP_MAX. */
static inline Opcode opcode_unfused(Opcode op)
{
        return op >= OP_EQ_C && op <= OP_GE_C ? (Opcode)(OP_EQ + (op - OP_EQ_C)) : _OP_MAX;
}

const char *opcode_name(Opcode op);
int opcode_has_arg(Opcode op);
int opcode_stack_effect(Opcode op);

#endif
