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

/* The flags of every pattern: UTF-8 (`.` and classes take characters,
 * \p{Han} works), one match is enough, and a pattern that matches the
 * empty string is allowed (it matches every subject, as in PCRE2).  Not
 * HS_FLAG_UCP: with it \d \w \s take all of Unicode and the automaton of
 * `^\w{18}$` took 4 s and 74 MB to build (`\w{64}` 7 s, then "too
 * large"); without it they are ASCII, as codes and numbers are, and \b
 * works. */
#define VM_REGEX_FLAGS (HS_FLAG_UTF8 | HS_FLAG_SINGLEMATCH | HS_FLAG_ALLOWEMPTY)

/*
 * The engine's build time grows with the automaton: a bounded repeat is
 * unrolled (`x{100}` is 100 positions), and a class of many UTF-8
 * sequences costs far more than an ASCII one (\p{L}{8} took 1.2 s,
 * (\p{L}|\p{N}){30} 34 s).  A pattern's cost is estimated before it is
 * compiled: 1 per ASCII position, VM_REGEX_WIDE for one that may match
 * many non-ASCII characters (`.`, a negated class or escape, a class
 * with non-ASCII characters or \x{...} above ASCII), VM_REGEX_PROP for a Unicode property, each times the
 * counts of the bounded repeats around it; above VM_REGEX_BUDGET it is
 * refused.  The budget lets \w{1000} and .{128} through (0.05 s),
 * \p{L}{8} too (1.4 s, about the worst it admits).
 */
#define VM_REGEX_WIDE 8u
#define VM_REGEX_PROP 128u
#define VM_REGEX_BUDGET 1024u
#define VM_REGEX_NEST 64

/* A class [...] from p[i] (the '['): its cost, and *end past its ']'. */
static uint64_t vm_regex_class_cost(const char *p, size_t len, size_t i, size_t *end)
{
        uint64_t w = 1;
        size_t j = i + 1;
        if (j < len && p[j] == '^') {
                w = VM_REGEX_WIDE;
                j++;
        }
        if (j < len && p[j] == ']')
                j++; /* a ']' first is a literal */
        for (; j < len && p[j] != ']'; j++) {
                unsigned char c = (unsigned char)p[j];
                if (c == '[' && j + 1 < len && p[j + 1] == ':') {
                        const char *close = memchr(p + j, ']', len - j);
                        j = close ? (size_t)(close - p) : len;
                } else if (c == '\\' && j + 1 < len) {
                        char e = p[++j];
                        if (e == 'p' || e == 'P')
                                w = w > VM_REGEX_PROP ? w : VM_REGEX_PROP;
                        else if ((e == 'W' || e == 'D' || e == 'S' ||
                                  (e == 'x' && j + 1 < len && p[j + 1] == '{' && strtoul(p + j + 2, NULL, 16) >= 0x80)) &&
                                 w < VM_REGEX_WIDE)
                                w = VM_REGEX_WIDE; /* \x{...} above ASCII: many UTF-8 sequences in a range */
                } else if (c >= 0x80 && w < VM_REGEX_WIDE) {
                        w = VM_REGEX_WIDE;
                }
        }
        *end = j < len ? j + 1 : len;
        return w;
}

/* Whether p[i..len) starts a counted repeat {n}, {n,} or {n,m} (else a
 * '{' is a literal): its largest count (n + 1 for {n,}: n copies and a
 * loop) in *n and *end past its '}'. */
static bool vm_regex_counted(const char *p, size_t len, size_t i, uint64_t *n, size_t *end)
{
        uint64_t lo = 0, hi = 0;
        size_t j = i + 1, d = 0;
        for (; j < len && p[j] >= '0' && p[j] <= '9'; j++, d++)
                lo = lo > UINT32_MAX ? lo : lo * 10 + (uint64_t)(p[j] - '0');
        if (!d)
                return false;
        hi = lo;
        if (j < len && p[j] == ',') {
                size_t d2 = 0;
                hi = 0;
                for (j++; j < len && p[j] >= '0' && p[j] <= '9'; j++, d2++)
                        hi = hi > UINT32_MAX ? hi : hi * 10 + (uint64_t)(p[j] - '0');
                if (!d2)
                        hi = lo + 1;
        }
        if (j >= len || p[j] != '}')
                return false;
        *n = hi > lo ? hi : lo;
        *end = j + 1;
        return true;
}

static uint64_t vm_sat_add(uint64_t a, uint64_t b)
{
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t vm_sat_mul(uint64_t a, uint64_t b)
{
        return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* The estimated build cost of p[0..len), saturated; a malformed pattern
 * gets some value and is the engine's to refuse.  Alternatives add up (an
 * upper bound). */
static uint64_t vm_regex_cost(const char *p, size_t len)
{
        uint64_t stack[VM_REGEX_NEST], cur = 0, last = 0;
        int depth = 0;
        size_t i = 0;
        while (i < len) {
                unsigned char c = (unsigned char)p[i];
                uint64_t w = 1, n;
                if (c == '\\' && i + 1 < len) {
                        char e = p[i + 1];
                        i += 2;
                        if (e == 'Q') { /* \Q...\E: literal text, one position a byte */
                                const char *q = memmem(p + i, len - i, "\\E", 2);
                                size_t stop = q ? (size_t)(q - p) : len;
                                w = stop - i;
                                i = q ? stop + 2 : len;
                        } else if (e == 'p' || e == 'P') {
                                w = VM_REGEX_PROP;
                                const char *close = i < len && p[i] == '{' ? memchr(p + i, '}', len - i) : NULL;
                                i = close ? (size_t)(close - p) + 1 : i < len ? i + 1 : len;
                        } else if (e == 'W' || e == 'D' || e == 'S') {
                                w = VM_REGEX_WIDE;
                        }
                } else if (c == '[') {
                        w = vm_regex_class_cost(p, len, i, &i);
                } else if (c == '(') {
                        if (depth == VM_REGEX_NEST)
                                return UINT64_MAX; /* deeper than any rule needs */
                        stack[depth++] = cur;
                        cur = last = 0;
                        i++;
                        continue;
                } else if (c == ')' && depth) {
                        w = cur;
                        cur = stack[--depth];
                        i++;
                } else if ((c == '{' && vm_regex_counted(p, len, i, &n, &i)) || c == '*' || c == '+' || c == '?') {
                        if (c != '{') {
                                n = 1;
                                i++;
                        }
                        /* the last atom, n times in all */
                        if (n > 1) {
                                uint64_t more = vm_sat_mul(last, n - 1);
                                cur = vm_sat_add(cur, more);
                                last = vm_sat_add(last, more);
                        }
                        continue;
                } else if (c == '|' || c == '^' || c == '$') {
                        w = 0;
                        i++;
                } else if (c >= 0x80) {
                        size_t k = utf8_seq((const unsigned char *)p + i, len - i);
                        i += k ? k : 1; /* one literal character */
                } else {
                        w = c == '.' ? VM_REGEX_WIDE : 1;
                        i++;
                }
                cur = vm_sat_add(cur, w);
                last = w;
        }
        while (depth) /* unclosed groups: the engine refuses them */
                cur = vm_sat_add(cur, stack[--depth]);
        return cur;
}

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
        uint64_t cost = vm_regex_cost(pattern, len);
        if (cost > VM_REGEX_BUDGET) {
                if (err && errsize)
                        snprintf(err, errsize,
                                 "the pattern is too costly to build (%s%llu, at most %u): its bounded repeats "
                                 "unroll, Unicode classes count %u a position",
                                 cost == UINT64_MAX ? "over " : "",
                                 (unsigned long long)(cost == UINT64_MAX ? VM_REGEX_BUDGET : cost), VM_REGEX_BUDGET,
                                 VM_REGEX_PROP);
                if (erroff)
                        *erroff = 0;
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
        if (n > UINT_MAX || !utf8_valid(s, n)) {
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
