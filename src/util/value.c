/*
 * Runtime values: comparison, arithmetic and string predicates used by the
 * VM (and by the checker to fold constants), and the text forms of
 * durations and RFC 3339 timestamps.  See include/riskd/value.h.
 *
 * Invariants:
 * - Nothing here allocates or keeps state; every function is pure, so the
 *   checker folding a constant and the VM evaluating it agree bit for bit.
 * - Null is absorbing: a comparison with null is "not comparable" (every
 *   comparison false), arithmetic with null is null.
 * - Integer arithmetic on times and durations never overflows: a result
 *   outside int64 milliseconds is null, like division by zero.
 * - Times are converted with the proleptic Gregorian days-from-civil
 *   algorithm (H. Hinnant), never timegm()/mktime(): no locale, no TZ, no
 *   libc range limits.
 *
 * The arithmetic typing table (must match check_arith() in src/rules/operators.c):
 *
 *     num  + - * / %  num   -> num    (/ or % by zero -> null; % is fmod)
 *     time    -       time  -> dur
 *     time   + -      dur   -> time
 *     dur     +       time  -> time
 *     dur    + -      dur   -> dur
 *     dur     *       num   -> dur    (and num * dur; rounded to the ms)
 *     dur     /       num   -> dur    (rounded to the ms; / 0 -> null)
 *     dur     /       dur   -> num    (/ 0 -> null)
 *     anything else         -> null
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "include/riskd/value.h"

#define MS_PER_S 1000LL
#define MS_PER_M (60 * MS_PER_S)
#define MS_PER_H (60 * MS_PER_M)
#define MS_PER_D (24 * MS_PER_H)
#define MS_PER_W (7 * MS_PER_D)

static int value_sign64(int64_t a, int64_t b)
{
        return (a > b) - (a < b);
}

bool value_cmp(const Value *a, const Value *b, int *ret)
{
        if (a->tag != b->tag)
                return false;
        int c;
        switch (a->tag) {
        case VT_NUM:
                if (isnan(a->n) || isnan(b->n))
                        return false;
                c = (a->n > b->n) - (a->n < b->n);
                break;
        case VT_STR:
                c = str_order(a->s, b->s);
                break;
        case VT_ENUM:
                c = (a->e > b->e) - (a->e < b->e);
                break;
        case VT_TIME:
        case VT_DUR:
                c = value_sign64(a->ms, b->ms);
                break;
        case VT_BOOL:
                c = (int)a->b - (int)b->b;
                break;
        default: /* VT_NULL and anything unknown */
                return false;
        }
        *ret = c;
        return true;
}

/* The non-number cases of value_identical and value_equal, which differ in
 * numbers only. */
static bool value_same_but_num(const Value *a, const Value *b)
{
        switch (a->tag) {
        case VT_NULL: return true;
        case VT_BOOL: return a->b == b->b;
        case VT_STR: return a->s.len == b->s.len && memcmp(a->s.p, b->s.p, a->s.len) == 0;
        case VT_ENUM: return a->e == b->e;
        default: return a->ms == b->ms;
        }
}

bool value_identical(const Value *a, const Value *b)
{
        if (a->tag != b->tag)
                return false;
        if (a->tag == VT_NUM)
                return memcmp(&a->n, &b->n, sizeof(double)) == 0;
        return value_same_but_num(a, b);
}

bool value_equal(const Value *a, const Value *b)
{
        if (a->tag != b->tag)
                return false;
        if (a->tag == VT_NUM)
                return a->n == b->n;
        return value_same_but_num(a, b);
}

/* A double number of milliseconds as a duration: rounded half away from
 * zero; null when not finite or outside int64. */
static Value value_dur_from_double(double x)
{
        if (!isfinite(x))
                return value_null();
        x = round(x);
        if (x < -9223372036854775808.0 || x >= 9223372036854775808.0)
                return value_null();
        return value_dur((int64_t)x);
}

static Value value_arith_num(int op, double x, double y)
{
        switch (op) {
        case '+': return value_num(x + y);
        case '-': return value_num(x - y);
        case '*': return value_num(x * y);
        case '/': return y == 0 ? value_null() : value_num(x / y);
        case '%': return y == 0 ? value_null() : value_num(fmod(x, y));
        }
        return value_null();
}

Value value_arith(int op, const Value *a, const Value *b)
{
        int64_t r;
        uint8_t ta = a->tag, tb = b->tag;

        if (ta == VT_NUM && tb == VT_NUM)
                return value_arith_num(op, a->n, b->n);

        switch (op) {
        case '+':
                if (ta == VT_DUR && tb == VT_DUR)
                        return __builtin_add_overflow(a->ms, b->ms, &r) ? value_null() : value_dur(r);
                if ((ta == VT_TIME && tb == VT_DUR) || (ta == VT_DUR && tb == VT_TIME))
                        return __builtin_add_overflow(a->ms, b->ms, &r) ? value_null() : value_time(r);
                break;
        case '-':
                if (ta == VT_DUR && tb == VT_DUR)
                        return __builtin_sub_overflow(a->ms, b->ms, &r) ? value_null() : value_dur(r);
                if (ta == VT_TIME && tb == VT_DUR)
                        return __builtin_sub_overflow(a->ms, b->ms, &r) ? value_null() : value_time(r);
                if (ta == VT_TIME && tb == VT_TIME)
                        return __builtin_sub_overflow(a->ms, b->ms, &r) ? value_null() : value_dur(r);
                break;
        case '*':
                if (ta == VT_DUR && tb == VT_NUM)
                        return value_dur_from_double((double)a->ms * b->n);
                if (ta == VT_NUM && tb == VT_DUR)
                        return value_dur_from_double(a->n * (double)b->ms);
                break;
        case '/':
                if (ta == VT_DUR && tb == VT_NUM)
                        return b->n == 0 ? value_null() : value_dur_from_double((double)a->ms / b->n);
                if (ta == VT_DUR && tb == VT_DUR)
                        return b->ms == 0 ? value_null() : value_num((double)a->ms / (double)b->ms);
                break;
        }
        return value_null();
}

Value value_neg(const Value *a)
{
        if (a->tag == VT_NUM)
                return value_num(-a->n);
        if (a->tag == VT_DUR && a->ms != INT64_MIN)
                return value_dur(-a->ms);
        return value_null();
}

Value value_abs(const Value *a)
{
        if (a->tag == VT_NUM)
                return value_num(fabs(a->n));
        if (a->tag == VT_DUR && a->ms != INT64_MIN)
                return value_dur(a->ms < 0 ? -a->ms : a->ms);
        return value_null();
}

bool value_contains(const Value *a, const Value *b)
{
        if (a->tag != VT_STR || b->tag != VT_STR)
                return false;
        if (b->s.len == 0)
                return true;
        if (a->s.len < b->s.len)
                return false;
        return memmem(a->s.p, a->s.len, b->s.p, b->s.len) != NULL;
}

bool value_startswith(const Value *a, const Value *b)
{
        if (a->tag != VT_STR || b->tag != VT_STR || a->s.len < b->s.len)
                return false;
        return b->s.len == 0 || memcmp(a->s.p, b->s.p, b->s.len) == 0;
}

bool value_endswith(const Value *a, const Value *b)
{
        if (a->tag != VT_STR || b->tag != VT_STR || a->s.len < b->s.len)
                return false;
        return b->s.len == 0 || memcmp(a->s.p + (a->s.len - b->s.len), b->s.p, b->s.len) == 0;
}

/* ---- durations ---- */

/* Whole non-negative integers with one unit, nothing else: no sign, no
 * fraction, no spaces, no unit-less numbers, lower-case units only. */
int duration_parse(const char *s, size_t n, int64_t *ms)
{
        size_t i = 0;
        uint64_t v = 0;

        while (i < n && s[i] >= '0' && s[i] <= '9') {
                v = v * 10 + (uint64_t)(s[i] - '0');
                if (v > (uint64_t)INT64_MAX)
                        return -EINVAL;
                i++;
        }
        if (i == 0)
                return -EINVAL;

        static const struct {
                const char *name;
                int64_t ms;
        } units[] = {
                {"ms", 1}, {"s", MS_PER_S}, {"m", MS_PER_M}, {"h", MS_PER_H}, {"d", MS_PER_D}, {"w", MS_PER_W},
        };
        for (size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
                size_t ul = strlen(units[k].name);
                if (n - i != ul || memcmp(s + i, units[k].name, ul) != 0)
                        continue;
                int64_t r;
                if (__builtin_mul_overflow((int64_t)v, units[k].ms, &r))
                        return -EINVAL;
                *ms = r;
                return 0;
        }
        return -EINVAL;
}

/* The largest of d, h, m, s, ms that divides exactly; weeks are written as
 * days (14d, not 2w) so that a listing reads in one unit.  Zero is "0s",
 * negative durations (from arithmetic) get a '-'. */
void duration_format(int64_t ms, char *out, size_t size)
{
        static const struct {
                const char *name;
                uint64_t ms;
        } units[] = {
                {"d", MS_PER_D}, {"h", MS_PER_H}, {"m", MS_PER_M}, {"s", MS_PER_S}, {"ms", 1},
        };
        if (ms == 0) {
                snprintf(out, size, "0s");
                return;
        }
        uint64_t u = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
        size_t k = 0;
        while (u % units[k].ms != 0)
                k++;
        snprintf(out, size, "%s%llu%s", ms < 0 ? "-" : "", (unsigned long long)(u / units[k].ms), units[k].name);
}

/* ---- timestamps ---- */

int64_t time_days_from_civil(int64_t y, unsigned m, unsigned d)
{
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        unsigned yoe = (unsigned)(y - era * 400);
        unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
        unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t)doe - 719468;
}

static void time_civil_from_days(int64_t z, int64_t *ry, unsigned *rm, unsigned *rd)
{
        z += 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        unsigned doe = (unsigned)(z - era * 146097);
        unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t y = (int64_t)yoe + era * 400;
        unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        unsigned mp = (5 * doy + 2) / 153;
        unsigned d = doy - (153 * mp + 2) / 5 + 1;
        unsigned m = mp < 10 ? mp + 3 : mp - 9;
        *ry = y + (m <= 2);
        *rm = m;
        *rd = d;
}

static bool time_is_leap(int64_t y)
{
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned time_days_in_month(int64_t y, unsigned m)
{
        static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        return m == 2 && time_is_leap(y) ? 29 : dim[m - 1];
}

/* Exactly k decimal digits at s[*i]; advances *i. */
static bool time_digits(const char *s, size_t n, size_t *i, unsigned k, unsigned *ret)
{
        unsigned v = 0;
        if (n - *i < k)
                return false;
        for (unsigned j = 0; j < k; j++) {
                char c = s[*i + j];
                if (c < '0' || c > '9')
                        return false;
                v = v * 10 + (unsigned)(c - '0');
        }
        *i += k;
        *ret = v;
        return true;
}

static bool time_char(const char *s, size_t n, size_t *i, char c)
{
        if (*i >= n || s[*i] != c)
                return false;
        (*i)++;
        return true;
}

/*
 * RFC 3339 date-time, strictly: YYYY-MM-DD, 'T' (or 't'), HH:MM:SS, an
 * optional fraction of one or more digits, then 'Z' ('z') or +HH:MM /
 * -HH:MM.  A missing offset is rejected (a local time is ambiguous), as is
 * a space instead of 'T'.  Leap seconds (:60) are rejected: the engine
 * counts in Unix milliseconds, which have no place for them, and clamping
 * would reorder events.  A fraction finer than the millisecond is -ERANGE
 * unless its further digits are zeros: cut, 00:00:00.0004 and
 * 00:00:00.0001 would be the same instant, and a window edge would count
 * them wrong.
 */
int time_parse(const char *s, size_t n, int64_t *ms)
{
        size_t i = 0;
        unsigned y, mo, d, h, mi, sec, frac = 0;
        bool finer = false;     /* digits that are not 0 beyond the millisecond */

        if (!time_digits(s, n, &i, 4, &y) || !time_char(s, n, &i, '-') ||
            !time_digits(s, n, &i, 2, &mo) || !time_char(s, n, &i, '-') ||
            !time_digits(s, n, &i, 2, &d))
                return -EINVAL;
        if (i >= n || (s[i] != 'T' && s[i] != 't'))
                return -EINVAL;
        i++;
        if (!time_digits(s, n, &i, 2, &h) || !time_char(s, n, &i, ':') ||
            !time_digits(s, n, &i, 2, &mi) || !time_char(s, n, &i, ':') ||
            !time_digits(s, n, &i, 2, &sec))
                return -EINVAL;
        if (i < n && s[i] == '.') {
                size_t start = ++i;
                while (i < n && s[i] >= '0' && s[i] <= '9') {
                        if (i - start < 3)
                                frac = frac * 10 + (unsigned)(s[i] - '0');
                        else
                                finer |= s[i] != '0';
                        i++;
                }
                if (i == start)
                        return -EINVAL;
                for (size_t k = i - start; k < 3; k++)
                        frac *= 10;
        }
        int64_t off = 0;
        if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
                i++;
        } else if (i < n && (s[i] == '+' || s[i] == '-')) {
                int sign = s[i] == '-' ? -1 : 1;
                unsigned oh, om;
                i++;
                if (!time_digits(s, n, &i, 2, &oh) || !time_char(s, n, &i, ':') || !time_digits(s, n, &i, 2, &om))
                        return -EINVAL;
                if (oh > 23 || om > 59)
                        return -EINVAL;
                off = sign * ((int64_t)oh * MS_PER_H + (int64_t)om * MS_PER_M);
        } else {
                return -EINVAL;
        }
        if (i != n)
                return -EINVAL;
        if (mo < 1 || mo > 12 || d < 1 || d > time_days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
                return -EINVAL;

        if (finer) /* valid, but the engine cannot represent it */
                return -ERANGE;
        int64_t t = time_days_from_civil(y, mo, d) * MS_PER_D + (int64_t)h * MS_PER_H + (int64_t)mi * MS_PER_M +
                    (int64_t)sec * MS_PER_S + frac;
        *ms = t - off; /* local = UTC + offset */
        return 0;
}

/* The civil date of ms and the milliseconds into its day: floor division,
 * so times before 1970 still have a 0..86399999 time of day. */
static void time_civil_split(int64_t ms, int64_t *y, unsigned *m, unsigned *d, int64_t *rem)
{
        int64_t days = ms / MS_PER_D;
        *rem = ms % MS_PER_D;
        if (*rem < 0) {
                *rem += MS_PER_D;
                days--;
        }
        time_civil_from_days(days, y, m, d);
}

void time_format(int64_t ms, char *out, size_t size)
{
        int64_t y, rem;
        unsigned m, d;
        time_civil_split(ms, &y, &m, &d, &rem);
        unsigned h = (unsigned)(rem / MS_PER_H), mi = (unsigned)(rem / MS_PER_M % 60),
                 s = (unsigned)(rem / MS_PER_S % 60), f = (unsigned)(rem % MS_PER_S);
        if (y >= 0 && y <= 9999 && size >= 25) {
                /* the common case by hand: output documents carry several times each */
                char *o = out;
                unsigned yy = (unsigned)y;
                *o++ = (char)('0' + yy / 1000);
                *o++ = (char)('0' + yy / 100 % 10);
                *o++ = (char)('0' + yy / 10 % 10);
                *o++ = (char)('0' + yy % 10);
                const unsigned part[5] = {m, d, h, mi, s};
                const char sep[5] = {'-', '-', 'T', ':', ':'};
                for (int i = 0; i < 5; i++) {
                        *o++ = sep[i];
                        *o++ = (char)('0' + part[i] / 10);
                        *o++ = (char)('0' + part[i] % 10);
                }
                if (f) {
                        *o++ = '.';
                        *o++ = (char)('0' + f / 100);
                        *o++ = (char)('0' + f / 10 % 10);
                        *o++ = (char)('0' + f % 10);
                }
                *o++ = 'Z';
                *o = 0;
                return;
        }
        if (f)
                snprintf(out, size, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", (long long)y, m, d, h, mi, s, f);
        else
                snprintf(out, size, "%04lld-%02u-%02uT%02u:%02u:%02uZ", (long long)y, m, d, h, mi, s);
}

int time_offset_parse(const char *s, size_t n, int64_t *ms)
{
        if (n == 1 && (s[0] == 'Z' || s[0] == 'z')) {
                *ms = 0;
                return 0;
        }
        size_t i = 1;
        unsigned oh, om;
        if (n != 6 || (s[0] != '+' && s[0] != '-') || !time_digits(s, n, &i, 2, &oh) ||
            !time_char(s, n, &i, ':') || !time_digits(s, n, &i, 2, &om) || oh > 23 || om > 59)
                return -EINVAL;
        int64_t off = (int64_t)oh * MS_PER_H + (int64_t)om * MS_PER_M;
        *ms = s[0] == '-' ? -off : off;
        return 0;
}

void time_format_local(int64_t ms, int64_t offset_ms, bool clock, char *out, size_t size)
{
        int64_t t;
        if (__builtin_add_overflow(ms, offset_ms, &t)) /* no RFC 3339 time is near; do not wrap */
                t = ms < 0 ? INT64_MIN : INT64_MAX;
        int64_t y, rem;
        unsigned m, d;
        time_civil_split(t, &y, &m, &d, &rem);
        if (clock)
                snprintf(out, size, "%04lld-%02u-%02u %02u:%02u", (long long)y, m, d, (unsigned)(rem / MS_PER_H),
                         (unsigned)(rem / MS_PER_M % 60));
        else
                snprintf(out, size, "%04lld-%02u-%02u", (long long)y, m, d);
}
