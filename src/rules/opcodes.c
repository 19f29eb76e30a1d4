/*
 * The rule language's tables: the opcodes', generated from OPCODE_LIST in
 * src/rules/opcodes.h (each instruction's name, whether it takes an
 * argument and its effect on the stack depth), and the severities' names
 * (SEVERITY_LIST).  The compiler (stack depth), the disassembler, the VM's
 * checks, the loader and the engine's outputs read them here, so no stage
 * depends on another for them.
 */
#include "include/riskd/rules.h"
#include "src/rules/opcodes.h"

static const struct {
        const char *name;
        int8_t has_arg, effect;
} opcode_info[] = {
#define X(name, arg, eff) {#name, arg, eff},
        OPCODE_LIST(X)
#undef X
};

const char *opcode_name(Opcode op)
{
        return (unsigned)op < _OP_MAX ? opcode_info[op].name : "???";
}

int opcode_has_arg(Opcode op)
{
        return (unsigned)op < _OP_MAX ? opcode_info[op].has_arg : 0;
}

int opcode_stack_effect(Opcode op)
{
        return (unsigned)op < _OP_MAX ? opcode_info[op].effect : 0;
}

const char *const severity_names[SEV_COUNT] = {
#define X(e, name) name,
        SEVERITY_LIST(X)
#undef X
};
