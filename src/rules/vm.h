/*
 * Private interface of the rule VM (src/rules/vm.c, its regexes in
 * src/rules/regex.c) towards the loader:
 * compiled regular expressions and a one-time check of compiled code.
 * The evaluation entry points (vm_run, vm_test) are public, in
 * include/riskd/rules.h.
 *
 * RuleSet.regexes[i] is an opaque VmRegex made by vm_regex_new(): the
 * compiled pattern together with the scratch space MATCH uses, created
 * once so that evaluation never allocates.  Because the scratch is
 * written by every match, a RuleSet may be evaluated by one thread at a
 * time (riskd evaluates on its single consumer thread); a multi-threaded
 * caller would need a RuleSet, or at least a regex table, per thread.
 */
#ifndef RISKD_RULES_VM_H
#define RISKD_RULES_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "include/riskd/rules.h"

/* The largest Program.max_stack vm_run accepts (a fixed local array); a
 * deeper program makes vm_run return VM_STACK without running. */
#define VM_STACK_MAX 64

/*
 * Compile pattern[0..len) with the linear-time engine (Hyperscan's API,
 * libvectorscan: UTF-8, Unicode properties) and allocate its scratch.
 * Returns the regex, owned by the caller (free with vm_regex_free), or
 * NULL with the engine's message (it names the construct it refuses:
 * back-references, lookaround, ...) in err[errsize] and the byte offset of
 * the problem in the pattern in *erroff (0 when the engine names none).
 */
void *vm_regex_new(const char *pattern, size_t len, char *err, size_t errsize, uint32_t *erroff);
/* Accepts NULL. */
void vm_regex_free(void *re);
/* What vm_regex_match returns when the engine fails (a subject that is not
 * UTF-8, a scan error): the error is counted in the regex. */
#define VM_REGEX_ERROR (-1)
/* 1 if s[0..n) matches, 0 if not, VM_REGEX_ERROR (counted) on an engine
 * error.  Time linear in n.  Uses the regex's scratch: one thread at a
 * time per regex. */
int vm_regex_match(void *re, const char *s, size_t n);
/* The engine errors counted by this regex since it was compiled. */
uint64_t vm_regex_errors(const void *re);
/* The errors since the last call (all of them at the first). */
uint64_t vm_regex_errors_take(void *re);

/*
 * Check program prog once, after compilation: every opcode known, every
 * argument inside its pool (consts, sets, regexes, aggs, flags, slots),
 * every jump forward inside the program, the stack never below empty nor
 * above max_stack, and every path ending in RET with one value.  Returns
 * 0, VM_STACK (max_stack above VM_STACK_MAX, or the depth exceeds
 * max_stack) or VM_BADCODE.  vm_run trusts verified code and does not
 * bounds-check per instruction.
 */
int vm_verify(const RuleSet *rs, uint32_t prog);

#endif
