/*
 * The regexes of `matches` (the interface is src/rules/vm.h).  A bench
 * (bench/regex-pcre2.c) implements the same functions with PCRE2, the
 * engine riskd used before, to compare the two on the same rules.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hs.h>

#include "include/riskd/util.h"
#include "src/rules/vm.h"

/*
 * Rule regexes run on Hyperscan's API (Debian's libvectorscan): automata
 * without backtracking, so a match costs time linear in the subject
 * whatever the pattern (`(a+)+$` included), and a construct that would
 * need backtracking (back-references, lookaround, atomic groups, ...) is
 * refused when the rules are loaded instead of stalling the consumer.
 */
typedef struct VmRegex {
        hs_database_t *db;
        hs_scratch_t *scratch;     /* written by every match: one thread at a time */
        uint64_t errors;           /* matches that ended in an engine error */
        uint64_t taken;            /* errors already returned by vm_regex_errors_take */
} VmRegex;

/* The flags of every pattern: UTF-8 with Unicode properties (\d, \w and
 * [[:alpha:]] take Chinese text as PCRE2's UCP mode did), one match is
 * enough, and a pattern that matches the empty string is allowed (it
 * matches every subject, as in PCRE2). */
#define VM_REGEX_FLAGS (HS_FLAG_UTF8 | HS_FLAG_UCP | HS_FLAG_SINGLEMATCH | HS_FLAG_ALLOWEMPTY)

/* Where the construct a message refuses first appears in p[0..len),
 * outside escapes ("Back-references are unsupported" names no place), or
 * len when it does not. */
static uint32_t vm_regex_find_construct(const char *msg, const char *p, size_t len)
{
        bool backref = strstr(msg, "Back-reference"), look = strstr(msg, "Zero-width"),
             atomic = strstr(msg, "Atomic"), possessive = strstr(msg, "Possessive");
        for (size_t i = 0; i < len; i++) {
                char c = p[i], d = i + 1 < len ? p[i + 1] : 0;
                if (c == '\\') {
                        if (backref && ((d >= '1' && d <= '9') || d == 'g' || d == 'k'))
                                return (uint32_t)i;
                        i++; /* an escaped character is itself */
                        continue;
                }
                if (c == '(' && d == '?' && i + 2 < len) {
                        char e = p[i + 2], f = i + 3 < len ? p[i + 3] : 0;
                        if (look && (e == '=' || e == '!' || (e == '<' && (f == '=' || f == '!'))))
                                return (uint32_t)i;
                        if (atomic && e == '>')
                                return (uint32_t)i;
                        if (backref && e == 'P' && f == '=')
                                return (uint32_t)i;
                }
                if (possessive && d == '+' && (c == '+' || c == '*' || c == '?' || c == '}'))
                        return (uint32_t)i + 1;
        }
        return (uint32_t)len;
}

/* The byte offset of the problem: "... at index N." in a Hyperscan
 * message, else the refused construct found in the pattern, else 0 (the
 * start). */
static uint32_t vm_regex_err_index(const char *msg, const char *p, size_t len)
{
        const char *at = strstr(msg, "at index ");
        if (at) {
                unsigned long i = strtoul(at + 9, NULL, 10);
                return i > len ? (uint32_t)len : (uint32_t)i;
        }
        uint32_t i = vm_regex_find_construct(msg, p, len);
        return i < len ? i : 0;
}

void *vm_regex_new(const char *pattern, size_t len, char *err, size_t errsize, uint32_t *erroff)
{
        /* hs_compile takes a C string: a NUL in the pattern would cut it */
        const char *nul = pattern ? memchr(pattern, 0, len) : NULL;
        if (nul) {
                if (err && errsize)
                        snprintf(err, errsize, "a NUL character in the pattern (write \\x00)");
                if (erroff)
                        *erroff = (uint32_t)(nul - pattern);
                return NULL;
        }
        char *z = xmalloc(len + 1);
        if (len)
                memcpy(z, pattern, len);
        z[len] = 0;
        hs_database_t *db = NULL;
        hs_compile_error_t *ce = NULL;
        hs_error_t rc = hs_compile(z, VM_REGEX_FLAGS, HS_MODE_BLOCK, NULL, &db, &ce);
        free(z);
        if (rc != HS_SUCCESS) {
                const char *msg = ce && ce->message ? ce->message : "the regex engine refused it";
                size_t ml = strlen(msg);
                if (ml && msg[ml - 1] == '.')
                        ml--; /* the diagnostic adds no full stop */
                if (err && errsize)
                        snprintf(err, errsize, "%.*s", (int)ml, msg);
                if (erroff)
                        *erroff = vm_regex_err_index(msg, pattern ? pattern : "", len);
                hs_free_compile_error(ce);
                return NULL;
        }
        VmRegex *re = xcalloc(1, sizeof(*re));
        re->db = db;
        if (hs_alloc_scratch(db, &re->scratch) != HS_SUCCESS)
                abort(); /* out of memory: the same policy as xmalloc */
        return re;
}

void vm_regex_free(void *p)
{
        VmRegex *re = p;
        if (!re)
                return;
        hs_free_scratch(re->scratch);
        hs_free_database(re->db);
        free(re);
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

/* Whether s[0..n) is well-formed UTF-8; ASCII bytes take the fast path. */
static bool vm_utf8_valid(const char *s, size_t n)
{
        const unsigned char *u = (const unsigned char *)s;
        size_t i = 0;
        while (i < n) {
                if (u[i] < 0x80) {
                        i++;
                        continue;
                }
                size_t k = utf8_seq(u + i, n - i);
                if (!k)
                        return false;
                i += k;
        }
        return true;
}

/* Stops the scan at the first match: hs_scan then returns
 * HS_SCAN_TERMINATED, which is how a match is told. */
static int vm_regex_on_match(unsigned int id, unsigned long long from, unsigned long long to,
                             unsigned int flags, void *ctx)
{
        (void)id, (void)from, (void)to, (void)flags, (void)ctx;
        return 1;
}

int vm_regex_match(void *p, const char *s, size_t n)
{
        VmRegex *re = p;
        if (!re)
                return VM_REGEX_ERROR;
        /* The engine's UTF-8 mode is undefined on malformed input.  The
         * decoder refuses it, so this is a subject from elsewhere (a
         * restored record, a caller's bug): an error, counted. */
        if (n > UINT_MAX || !vm_utf8_valid(s, n)) {
                re->errors++;
                return VM_REGEX_ERROR;
        }
        hs_error_t rc = hs_scan(re->db, n ? s : "", (unsigned int)n, 0, re->scratch, vm_regex_on_match, NULL);
        if (rc == HS_SCAN_TERMINATED)
                return 1;
        if (rc == HS_SUCCESS)
                return 0;
        re->errors++;
        return VM_REGEX_ERROR;
}
