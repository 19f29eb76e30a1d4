/*
 * Private interface of the rule VM (src/rules/vm.c) towards the loader:
 * compiled regular expressions and a one-time check of compiled code.
 * The evaluation entry points (vm_run, vm_test) are public, in
 * include/riskd/rules.h.
 *
 * RuleSet.regexes[i] is an opaque VmRegex made by vm_regex_new(): the
 * compiled PCRE2 pattern together with the match data MATCH uses, created
 * once so that evaluation never allocates.  Because the match data is
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
 * Compile pattern[0..len) (UTF-8, PCRE2_UTF | PCRE2_UCP; JIT-compiled when
 * the platform allows, silently interpreted otherwise) and create its match
 * data.  Returns the regex, owned by the caller (free with vm_regex_free),
 * or NULL with the PCRE2 message in err[errsize] and the byte offset of the
 * problem in the pattern in *erroff.
 */
void *vm_regex_new(const char *pattern, size_t len, char *err, size_t errsize, uint32_t *erroff);
/* Accepts NULL. */
void vm_regex_free(void *re);
/* Whether s[0..n) matches; false on no match and on every PCRE2 error
 * (invalid UTF-8 subject, match limit reached).  Uses the regex's match
 * data: one thread at a time per regex. */
bool vm_regex_match(void *re, const char *s, size_t n);

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
