/*
 * riskctl test: rule unit tests (the *.yaml files of DIR/tests) run against the rules of
 * DIR, like `promtool test rules`.  The file format is described at the top
 * of ruletest.c and in docs/testing-rules.md.
 */
#ifndef RISKD_CLI_RULETEST_H
#define RISKD_CLI_RULETEST_H

#include <stdbool.h>
#include <stdio.h>

/*
 * Run every test of the *.yaml files of DIR/tests, each on a fresh engine over the rules
 * of DIR compiled once; report to out ("ok   FILE NAME" per passing test, a
 * readable diff per failing one, a final "N tests, N passed, N failed").
 * Returns the exit status: 0 every test passed; 1 a test failed, a test
 * file is broken, or the rules do not compile; 2 DIR or DIR/tests cannot be
 * used.
 */
int ruletest_run(const char *dir, bool verbose, FILE *out);

/*
 * The same, then also fail (1) when a rule of DIR (not disabled) is named
 * by no expect.alerts entry of a test that is not marked xfail: every
 * shipped rule must have a test that makes it fire.
 */
int ruletest_run_coverage(const char *dir, bool verbose, FILE *out);

/* `riskctl test [--verbose] [--coverage] [--run PATTERN] [--junit FILE] DIR
 * [FILE...]` (or test files only): argv[0] is "test". */
int ruletest_main(int argc, char **argv);

#endif
