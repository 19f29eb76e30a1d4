/*
 * The regexes of `matches` on PCRE2, as riskd ran them before it moved to
 * a linear-time engine (src/rules/regex.c): the same interface
 * (src/rules/vm.h), linked into a second core library for the benchmarks
 * only, so that bench/run-regex compares the two engines on the same rules
 * and events.  Its settings are those riskd had: UTF-8 with Unicode
 * properties, JIT when the platform allows, and match, depth and heap
 * limits past which a match stops.  Stopping is counted here as an engine
 * error (riskd counted nothing and took it as no match).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "include/riskd/util.h"
#include "src/rules/vm.h"

#define PCRE2_MATCH_LIMIT 1000000u
#define PCRE2_DEPTH_LIMIT 100000u
#define PCRE2_HEAP_LIMIT_KIB 16384u

typedef struct VmRegex {
        pcre2_code *code;
        pcre2_match_data *md;
        pcre2_match_context *mc;
        uint64_t errors, taken;
} VmRegex;

void *vm_regex_new(const char *pattern, size_t len, char *err, size_t errsize, uint32_t *erroff)
{
        int ec = 0;
        PCRE2_SIZE eo = 0;
        pcre2_code *code = pcre2_compile((PCRE2_SPTR)(pattern ? pattern : ""), len, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
        if (!code) {
                if (err && errsize && pcre2_get_error_message(ec, (PCRE2_UCHAR *)err, errsize) < 0)
                        err[errsize - 1] = 0;
                if (erroff)
                        *erroff = eo > UINT32_MAX ? UINT32_MAX : (uint32_t)eo;
                return NULL;
        }
        (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
        VmRegex *re = xcalloc(1, sizeof(*re));
        re->code = code;
        re->md = pcre2_match_data_create_from_pattern(code, NULL);
        re->mc = pcre2_match_context_create(NULL);
        if (!re->md || !re->mc)
                abort();
        pcre2_set_match_limit(re->mc, PCRE2_MATCH_LIMIT);
        pcre2_set_depth_limit(re->mc, PCRE2_DEPTH_LIMIT);
        pcre2_set_heap_limit(re->mc, PCRE2_HEAP_LIMIT_KIB);
        return re;
}

void vm_regex_free(void *p)
{
        VmRegex *re = p;
        if (!re)
                return;
        pcre2_match_context_free(re->mc);
        pcre2_match_data_free(re->md);
        pcre2_code_free(re->code);
        free(re);
}

int vm_regex_match(void *p, const char *s, size_t n)
{
        VmRegex *re = p;
        if (!re)
                return VM_REGEX_ERROR;
        int rc = pcre2_match(re->code, (PCRE2_SPTR)(s ? s : ""), n, 0, 0, re->md, re->mc);
        if (rc >= 0)
                return 1;
        if (rc == PCRE2_ERROR_NOMATCH)
                return 0;
        re->errors++;
        return VM_REGEX_ERROR;
}

uint64_t vm_regex_errors(const void *p)
{
        const VmRegex *re = p;
        return re ? re->errors : 0;
}

uint64_t vm_regex_errors_take(void *p)
{
        VmRegex *re = p;
        if (!re)
                return 0;
        uint64_t n = re->errors - re->taken;
        re->taken = re->errors;
        return n;
}
