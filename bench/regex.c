/*
 * bench-regex: the cost of one `matches` on the engine it is linked with
 * (bench-regex: riskd's, src/rules/regex.c; bench-regex-pcre2: PCRE2 as
 * riskd ran it before, bench/regex-pcre2.c), on the patterns of issue 13
 * that backtrack catastrophically and on patterns of the kind a pack
 * writes, each on the subjects that matter.
 *
 *   bench-regex [SECONDS_PER_CASE]
 *
 * One line per case: matches/s on one core (CPU time of the thread), the
 * answer and whether it is right, the engine errors.  Nothing is asserted
 * (tests/unit/test-vm.c asserts the answers); bench/run-regex prints both
 * engines side by side.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "include/riskd/util.h"
#include "src/rules/vm.h"
#include "bench/bench.h"

/* n times c, then the tail */
static char *run_of(char c, size_t n, const char *tail, size_t *len)
{
        size_t t = strlen(tail);
        char *s = xmalloc(n + t + 1);
        memset(s, c, n);
        memcpy(s + n, tail, t + 1);
        *len = n + t;
        return s;
}

typedef struct Case {
        const char *pattern, *subject; /* subject NULL: run_of(a, n, tail) */
        size_t n;
        const char *tail;
        int want;
} Case;

int main(int argc, char **argv)
{
        double secs = argc > 1 ? atof(argv[1]) : 0.3;
        static const Case cases[] = {
                /* issue 13: 273 events/s under PCRE2 on 31 characters */
                {"(a+)+$", NULL, 30, "b", 0},
                {"(a+)+$", NULL, 1000, "b", 0},
                /* issue 13: PCRE2 said no match for a^n c from n = 20 */
                {"^(a+)+b$|^a*c$", NULL, 19, "c", 1},
                {"^(a+)+b$|^a*c$", NULL, 31, "c", 1},
                {"^(a+)+b$|^a*c$", NULL, 10000, "c", 1},
                /* the kind a pack writes (bench/regex-rules.yaml) */
                {"^(DC|RT|CR|CT)-[0-9A-Z]{9}-[0-9]{2}$", "DC-718819023-02", 0, NULL, 1},
                {"^冷(藏|冻)(柜|库|集装箱)[0-9]+号$|^\\p{Han}[A-Z]·[0-9A-Z]{5}$", "晋A·H9H0J", 0, NULL, 1},
                {"(有限公司|有限责任公司|股份有限公司|厂|店|餐厅|超市)$", "西安达利酒店管理有限公司", 0, NULL, 1},
                {"^DC[0-9]{2}[0-9]{6}", "DC25000123-铅", 0, NULL, 1},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const Case *c = &cases[i];
                char err[256];
                uint32_t off;
                void *re = vm_regex_new(c->pattern, strlen(c->pattern), err, sizeof(err), &off);
                size_t len;
                char *s = c->subject ? xstrdup(c->subject) : run_of('a', c->n, c->tail, &len);
                len = strlen(s);
                char subj[48];
                if (c->subject)
                        snprintf(subj, sizeof(subj), "%s", c->subject);
                else
                        snprintf(subj, sizeof(subj), "a^%zu %s", c->n, c->tail);
                if (!re) {
                        printf("%-48s %-26s refused: %s\n", c->pattern, subj, err);
                        free(s);
                        continue;
                }
                int got = vm_regex_match(re, s, len);
                uint64_t n = 0;
                double t0 = cpu_now(), t;
                do {
                        for (int k = 0; k < 16; k++)
                                got = vm_regex_match(re, s, len);
                        n += 16;
                        t = cpu_now() - t0;
                } while (t < secs);
                /* an error was taken as no match (riskd on PCRE2 said so silently) */
                int taken = got == VM_REGEX_ERROR ? 0 : got;
                printf("%-48s %-26s %12.0f matches/s  %s %s  errors %llu\n", c->pattern, subj, (double)n / t,
                       got == VM_REGEX_ERROR ? "error, taken as no match" : got ? "match" : "no match",
                       taken == c->want ? "(right)" : "(WRONG)", (unsigned long long)vm_regex_errors(re));
                free(s);
                vm_regex_free(re);
        }
        return 0;
}
