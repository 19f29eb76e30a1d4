/*
 * Unit tests of src/util/value.c: comparison and arithmetic over every
 * pair of value types (null included) checked against explicit tables,
 * sameness (value_identical, value_equal), string predicates, durations
 * and RFC 3339 timestamps (valid, invalid, offsets, leap years, round
 * trips against an independent day count).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "include/riskd/util.h"
#include "include/riskd/value.h"

#define NTAGS 7
#define H (3600000LL)
#define M (60000LL)
#define T0 1740881700000LL /* 2025-03-02T02:15:00Z */

static const char *const tag_names[NTAGS] = {"null", "bool", "num", "str", "enum", "time", "dur"};

/* Two samples per type, first < second where the type is ordered. */
static Value sample(int tag, int which)
{
        switch (tag) {
        case VT_BOOL: return value_bool(which);
        case VT_NUM: return value_num(which ? 4 : 6); /* arithmetic: A = 6, B = 4 */
        case VT_STR: return which ? value_str("ab", 2) : value_str("a", 1);
        case VT_ENUM: return value_enum(which ? 2 : 1);
        case VT_TIME: return value_time(which ? T0 - H : T0);
        case VT_DUR: return value_dur(which ? 30 * M : 90 * M);
        default: return value_null();
        }
}

/* For comparisons: a strictly smaller and a strictly larger value. */
static Value lo_hi(int tag, int hi)
{
        if (tag == VT_NUM)
                return value_num(hi ? 2.5 : -1);
        if (tag == VT_TIME || tag == VT_DUR) {
                Value v = sample(tag, 0);
                v.ms += hi ? 1 : 0;
                return v;
        }
        return sample(tag, hi);
}

/* Which pairs are comparable: only identical non-null types. */
static const bool comparable[NTAGS][NTAGS] = {
        /*            null   bool   num    str    enum   time   dur */
        /* null */ {0, 0, 0, 0, 0, 0, 0},
        /* bool */ {0, 1, 0, 0, 0, 0, 0},
        /* num  */ {0, 0, 1, 0, 0, 0, 0},
        /* str  */ {0, 0, 0, 1, 0, 0, 0},
        /* enum */ {0, 0, 0, 0, 1, 0, 0},
        /* time */ {0, 0, 0, 0, 0, 1, 0},
        /* dur  */ {0, 0, 0, 0, 0, 0, 1},
};

Test(value, cmp_every_pair)
{
        for (int ta = 0; ta < NTAGS; ta++)
                for (int tb = 0; tb < NTAGS; tb++) {
                        Value lo = lo_hi(ta, 0), hi = lo_hi(tb, 1), lo2 = lo_hi(tb, 0);
                        int c = 42;
                        bool ok = value_cmp(&lo, &hi, &c);
                        cr_assert_eq(ok, comparable[ta][tb], "%s vs %s", tag_names[ta], tag_names[tb]);
                        if (!ok) {
                                cr_assert_eq(c, 42, "*ret untouched when not comparable");
                                continue;
                        }
                        cr_assert_eq(c, -1, "%s lo < hi", tag_names[ta]);
                        cr_assert(value_cmp(&hi, &lo, &c));
                        cr_assert_eq(c, 1, "%s hi > lo", tag_names[ta]);
                        cr_assert(value_cmp(&lo, &lo2, &c));
                        cr_assert_eq(c, 0, "%s lo == lo", tag_names[ta]);
                }
}

Test(value, cmp_details)
{
        int c = 42;
        Value nan = value_num(NAN), one = value_num(1), n = value_null();
        cr_assert(!value_cmp(&nan, &nan, &c));
        cr_assert(!value_cmp(&nan, &one, &c));
        cr_assert(!value_cmp(&one, &nan, &c));
        cr_assert(!value_cmp(&n, &n, &c), "null is not even equal to null");
        cr_assert_eq(c, 42);

        Value inf = value_num(INFINITY), ninf = value_num(-INFINITY);
        cr_assert(value_cmp(&ninf, &inf, &c) && c < 0);
        Value z = value_num(0.0), nz = value_num(-0.0);
        cr_assert(value_cmp(&z, &nz, &c) && c == 0);

        struct {
                const char *a, *b;
                int want;
        } s[] = {
                {"ab", "abc", -1}, {"abc", "ab", 1}, {"Z", "a", -1}, {"", "", 0}, {"", "a", -1},
                {"\xc3\xa9", "z", 1},       /* bytewise, unsigned: é (C3 A9) after z */
                {"食品", "食品安全", -1},   /* a prefix first */
                {"食品", "食品", 0},
                {"a\0b", "a\0c", -1},
        };
        for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
                uint32_t la = (uint32_t)strlen(s[i].a), lb = (uint32_t)strlen(s[i].b);
                if (i == 8)
                        la = lb = 3;
                Value a = value_str(s[i].a, la), b = value_str(s[i].b, lb);
                cr_assert(value_cmp(&a, &b, &c));
                cr_assert_eq(c, s[i].want, "'%s' vs '%s'", s[i].a, s[i].b);
        }
        Value e0 = value_str(NULL, 0), e1 = value_str("", 0);
        cr_assert(value_cmp(&e0, &e1, &c) && c == 0);

        Value f = value_bool(false), t = value_bool(true);
        cr_assert(value_cmp(&f, &t, &c) && c == -1);
        Value unk = value_enum(-1), e = value_enum(0);
        cr_assert(value_cmp(&unk, &e, &c) && c == -1);
        Value big = value_time(INT64_MAX), small = value_time(INT64_MIN);
        cr_assert(value_cmp(&small, &big, &c) && c == -1);
}

/* Arithmetic: A (sample 0) of the left type op B (sample 1) of the right. */
typedef struct Expect {
        int op, ta, tb;
        uint8_t tag;
        double n;
        int64_t ms;
} Expect;

static const Expect arith_ok[] = {
        {'+', VT_NUM, VT_NUM, VT_NUM, 10, 0},
        {'+', VT_DUR, VT_DUR, VT_DUR, 0, 120 * M},
        {'+', VT_TIME, VT_DUR, VT_TIME, 0, T0 + 30 * M},
        {'+', VT_DUR, VT_TIME, VT_TIME, 0, T0 - H + 90 * M},
        {'-', VT_NUM, VT_NUM, VT_NUM, 2, 0},
        {'-', VT_DUR, VT_DUR, VT_DUR, 0, 60 * M},
        {'-', VT_TIME, VT_DUR, VT_TIME, 0, T0 - 30 * M},
        {'-', VT_TIME, VT_TIME, VT_DUR, 0, H},
        {'*', VT_NUM, VT_NUM, VT_NUM, 24, 0},
        {'*', VT_DUR, VT_NUM, VT_DUR, 0, 360 * M},
        {'*', VT_NUM, VT_DUR, VT_DUR, 0, 180 * M},
        {'/', VT_NUM, VT_NUM, VT_NUM, 1.5, 0},
        {'/', VT_DUR, VT_NUM, VT_DUR, 0, 1350000},
        {'/', VT_DUR, VT_DUR, VT_NUM, 3, 0},
        {'%', VT_NUM, VT_NUM, VT_NUM, 2, 0},
};

/* value_identical (the constant pool) and value_equal (a window's dedupe
 * of rows) agree on everything but numbers: -0.0 and 0.0, and NaN. */
Test(value, identical_and_equal)
{
        for (int ta = 0; ta < NTAGS; ta++)
                for (int tb = 0; tb < NTAGS; tb++)
                        for (int wa = 0; wa < 2; wa++)
                                for (int wb = 0; wb < 2; wb++) {
                                        Value a = sample(ta, wa), b = sample(tb, wb);
                                        bool same = ta == tb && (ta == VT_NULL || wa == wb);
                                        cr_expect_eq(value_identical(&a, &b), same, "identical %s/%d %s/%d",
                                                     tag_names[ta], wa, tag_names[tb], wb);
                                        cr_expect_eq(value_equal(&a, &b), same, "equal %s/%d %s/%d", tag_names[ta],
                                                     wa, tag_names[tb], wb);
                                }
        Value pz = value_num(0.0), nz = value_num(-0.0), nan = value_num(NAN);
        cr_expect(value_equal(&pz, &nz), "-0.0 == 0.0 in the language");
        cr_expect(!value_identical(&pz, &nz), "-0.0 and 0.0 are two constants");
        cr_expect(!value_equal(&nan, &nan), "NaN equals nothing");
        cr_expect(value_identical(&nan, &nan), "a NaN constant is itself");
        Value s1 = value_str("ab", 2), s2 = value_str("abc", 2); /* other memory, same bytes */
        cr_expect(value_identical(&s1, &s2) && value_equal(&s1, &s2));
}

Test(value, arith_every_pair)
{
        static const int ops[] = {'+', '-', '*', '/', '%'};
        unsigned nonnull = 0;
        for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++)
                for (int ta = 0; ta < NTAGS; ta++)
                        for (int tb = 0; tb < NTAGS; tb++) {
                                Value a = sample(ta, 0), b = sample(tb, 1);
                                Value r = value_arith(ops[k], &a, &b);
                                const Expect *e = NULL;
                                for (size_t i = 0; i < sizeof(arith_ok) / sizeof(arith_ok[0]); i++)
                                        if (arith_ok[i].op == ops[k] && arith_ok[i].ta == ta && arith_ok[i].tb == tb)
                                                e = &arith_ok[i];
                                if (!e) {
                                        cr_assert_eq(r.tag, VT_NULL, "%s %c %s should be null, is %s", tag_names[ta],
                                                     ops[k], tag_names[tb], tag_names[r.tag]);
                                        continue;
                                }
                                nonnull++;
                                cr_assert_eq(r.tag, e->tag, "%s %c %s", tag_names[ta], ops[k], tag_names[tb]);
                                if (e->tag == VT_NUM)
                                        cr_assert_eq(r.n, e->n, "%s %c %s = %g", tag_names[ta], ops[k], tag_names[tb], r.n);
                                else
                                        cr_assert_eq(r.ms, e->ms, "%s %c %s = %lld", tag_names[ta], ops[k], tag_names[tb],
                                                     (long long)r.ms);
                        }
        cr_assert_eq(nonnull, sizeof(arith_ok) / sizeof(arith_ok[0]));
        /* an unknown operator is null even on numbers */
        Value a = value_num(1);
        cr_assert_eq(value_arith('^', &a, &a).tag, VT_NULL);
}

Test(value, arith_edges)
{
        Value z = value_num(0), six = value_num(6), m7 = value_num(-7), three = value_num(3);
        cr_assert_eq(value_arith('/', &six, &z).tag, VT_NULL);
        cr_assert_eq(value_arith('%', &six, &z).tag, VT_NULL);
        Value r = value_arith('%', &m7, &three);
        cr_assert(r.tag == VT_NUM && r.n == -1, "fmod keeps the dividend's sign");
        Value h = value_num(0.5), fr = value_arith('%', &(Value){.tag = VT_NUM, .n = 5.25}, &h);
        cr_assert(fr.tag == VT_NUM && fr.n == 0.25);

        Value d0 = value_dur(0), d = value_dur(90 * M);
        cr_assert_eq(value_arith('/', &d, &z).tag, VT_NULL);
        cr_assert_eq(value_arith('/', &d, &d0).tag, VT_NULL);

        /* overflow of int64 milliseconds is null, never wraps */
        Value dmax = value_dur(INT64_MAX), d1 = value_dur(1), tmin = value_time(INT64_MIN), tmax = value_time(INT64_MAX);
        cr_assert_eq(value_arith('+', &dmax, &d1).tag, VT_NULL);
        cr_assert_eq(value_arith('-', &tmin, &d1).tag, VT_NULL);
        cr_assert_eq(value_arith('-', &tmax, &tmin).tag, VT_NULL);
        cr_assert_eq(value_arith('+', &d1, &tmax).tag, VT_NULL);
        Value huge = value_num(1e300), nan = value_num(NAN);
        cr_assert_eq(value_arith('*', &d, &huge).tag, VT_NULL);
        cr_assert_eq(value_arith('*', &d, &nan).tag, VT_NULL);
        cr_assert_eq(value_arith('/', &d1, &(Value){.tag = VT_NUM, .n = 1e-300}).tag, VT_NULL);

        /* rounding to the millisecond: half away from zero */
        Value d3 = value_dur(3), dm3 = value_dur(-3);
        cr_assert_eq(value_arith('*', &d3, &h).ms, 2);
        cr_assert_eq(value_arith('*', &dm3, &h).ms, -2);
        cr_assert_eq(value_arith('/', &d3, &(Value){.tag = VT_NUM, .n = 4}).ms, 1);

        /* num arithmetic is IEEE: inf stays a number */
        Value big = value_num(1e308);
        r = value_arith('*', &big, &big);
        cr_assert(r.tag == VT_NUM && isinf(r.n));
}

Test(value, neg_abs_every_type)
{
        for (int t = 0; t < NTAGS; t++) {
                Value v = sample(t, 0);
                Value n = value_neg(&v), a = value_abs(&v);
                if (t == VT_NUM) {
                        cr_assert(n.tag == VT_NUM && n.n == -6);
                        cr_assert(a.tag == VT_NUM && a.n == 6);
                } else if (t == VT_DUR) {
                        cr_assert(n.tag == VT_DUR && n.ms == -90 * M);
                        cr_assert(a.tag == VT_DUR && a.ms == 90 * M);
                } else {
                        cr_assert_eq(n.tag, VT_NULL, "neg %s", tag_names[t]);
                        cr_assert_eq(a.tag, VT_NULL, "abs %s", tag_names[t]);
                }
        }
        Value nd = value_dur(-5), nn = value_num(-2.5), dmin = value_dur(INT64_MIN);
        cr_assert_eq(value_abs(&nd).ms, 5);
        cr_assert_eq(value_abs(&nn).n, 2.5);
        cr_assert_eq(value_neg(&dmin).tag, VT_NULL);
        cr_assert_eq(value_abs(&dmin).tag, VT_NULL);
}

Test(value, string_predicates_every_type)
{
        /* "aba" contains, starts and ends with "a": only the types decide */
        Value hay = value_str("aba", 3);
        for (int ta = 0; ta < NTAGS; ta++)
                for (int tb = 0; tb < NTAGS; tb++) {
                        Value a = ta == VT_STR ? hay : sample(ta, 0), b = tb == VT_STR ? value_str("a", 1) : sample(tb, 0);
                        bool want = ta == VT_STR && tb == VT_STR;
                        cr_assert_eq(value_contains(&a, &b), want, "%s contains %s", tag_names[ta], tag_names[tb]);
                        cr_assert_eq(value_startswith(&a, &b), want, "%s startswith %s", tag_names[ta], tag_names[tb]);
                        cr_assert_eq(value_endswith(&a, &b), want, "%s endswith %s", tag_names[ta], tag_names[tb]);
                }
        Value s = value_str("冷链食品abc", (uint32_t)strlen("冷链食品abc"));
        Value mid = value_str("食品", (uint32_t)strlen("食品")), pre = value_str("冷链", (uint32_t)strlen("冷链"));
        Value suf = value_str("abc", 3), empty = value_str(NULL, 0), longer = value_str("冷链食品abcd", (uint32_t)strlen("冷链食品abcd"));
        cr_assert(value_contains(&s, &mid));
        cr_assert(!value_startswith(&s, &mid));
        cr_assert(!value_endswith(&s, &mid));
        cr_assert(value_startswith(&s, &pre));
        cr_assert(value_endswith(&s, &suf));
        cr_assert(value_contains(&s, &empty) && value_startswith(&s, &empty) && value_endswith(&s, &empty));
        cr_assert(value_contains(&empty, &empty));
        cr_assert(!value_contains(&empty, &suf));
        cr_assert(!value_contains(&s, &longer) && !value_startswith(&s, &longer) && !value_endswith(&s, &longer));
        Value ab = value_str("ab", 2), b = value_str("b", 1);
        cr_assert(value_endswith(&ab, &b));
        cr_assert(!value_contains(&ab, &(Value){.tag = VT_STR, .s = {"B", 1}}), "case-sensitive");
}

/* ---- durations ---- */

Test(value, duration_parse_valid)
{
        struct {
                const char *s;
                int64_t ms;
        } v[] = {
                {"500ms", 500}, {"45s", 45000}, {"30m", 30 * M}, {"12h", 12 * H}, {"180d", 180 * 24 * H},
                {"2w", 14 * 24 * H}, {"0s", 0}, {"0ms", 0}, {"007s", 7000}, {"1ms", 1},
                {"9223372036854775807ms", INT64_MAX}, {"106751991167d", 106751991167LL * 24 * H},
        };
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                int64_t ms = -1;
                cr_assert_eq(duration_parse(v[i].s, strlen(v[i].s), &ms), 0, "%s", v[i].s);
                cr_assert_eq(ms, v[i].ms, "%s = %lld", v[i].s, (long long)ms);
        }
        int64_t ms = 0;
        cr_assert_eq(duration_parse("45sX", 3, &ms), 0, "only n bytes are read");
        cr_assert_eq(ms, 45000);
}

Test(value, duration_parse_invalid)
{
        static const char *const bad[] = {
                "", "s", "ms", "10", "1.5h", "-5m", "+5m", " 5m", "5m ", "5 m", "5M", "5mm", "5sec", "5ss",
                "5msx", "5 ", "1e3s", "0x10s", "５m", "9223372036854775808ms", "106751991168d",
                "99999999999999999999999s", "15250284453w",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                int64_t ms = 12345;
                cr_assert_eq(duration_parse(bad[i], strlen(bad[i]), &ms), -EINVAL, "'%s' must be rejected", bad[i]);
                cr_assert_eq(ms, 12345, "*ms untouched on error");
        }
        int64_t ms;
        cr_assert_eq(duration_parse("5\0m", 3, &ms), -EINVAL);
}

Test(value, duration_format_and_round_trip)
{
        struct {
                int64_t ms;
                const char *s;
        } v[] = {
                {0, "0s"}, {500, "500ms"}, {1500, "1500ms"}, {45000, "45s"}, {90 * M, "90m"}, {24 * H, "1d"},
                {14 * 24 * H, "14d"}, {36 * H, "36h"}, {-90 * M, "-90m"}, {61000, "61s"},
                {INT64_MAX, "9223372036854775807ms"}, {INT64_MIN, "-9223372036854775808ms"},
        };
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                char b[32];
                duration_format(v[i].ms, b, sizeof(b));
                cr_assert_str_eq(b, v[i].s);
                if (v[i].ms >= 0) {
                        int64_t back = -1;
                        cr_assert_eq(duration_parse(b, strlen(b), &back), 0, "%s", b);
                        cr_assert_eq(back, v[i].ms);
                }
        }
        char small[4];
        duration_format(90 * M, small, sizeof(small));
        cr_assert_str_eq(small, "90m");
        duration_format(500, small, sizeof(small));
        cr_assert_str_eq(small, "500", "truncated, still terminated");
}

/* ---- timestamps ---- */

Test(value, time_parse_valid)
{
        struct {
                const char *s;
                int64_t ms;
        } v[] = {
                {"1970-01-01T00:00:00Z", 0},
                {"2025-03-02T10:15:00+08:00", T0},
                {"2025-03-02T02:15:00Z", T0},
                {"2025-03-02t02:15:00z", T0},
                {"2025-03-02T02:15:00-00:00", T0},
                {"2025-03-02T02:15:00+00:00", T0},
                {"2024-02-29T12:00:00-05:30", 1709227800000LL},
                {"2025-01-01T00:30:00+14:00", 1735641000000LL},
                {"2000-03-01T00:00:00Z", 951868800000LL},
                {"1969-12-31T23:59:59.999Z", -1},
                {"1970-01-01T00:00:00.5Z", 500},
                {"1970-01-01T00:00:00.1Z", 100},
                {"1970-01-01T00:00:00.12Z", 120},
                {"1970-01-01T00:00:00.123000000Z", 123},
                {"1970-01-01T00:00:00.1230Z", 123},
                {"1970-01-01T00:00:00.000Z", 0},
                {"0001-01-01T00:00:00Z", -62135596800000LL},
                {"0000-01-01T00:00:00Z", -62167219200000LL},
                {"9999-12-31T23:59:59.999Z", 253402300799999LL},
                {"2000-02-29T00:00:00Z", 951782400000LL},
                {"2025-03-02T10:15:00+23:59", T0 + 8 * H - 23 * H - 59 * M},
        };
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                int64_t ms = 7;
                cr_assert_eq(time_parse(v[i].s, strlen(v[i].s), &ms), 0, "%s", v[i].s);
                cr_assert_eq(ms, v[i].ms, "%s = %lld, want %lld", v[i].s, (long long)ms, (long long)v[i].ms);
        }
}

Test(value, time_parse_invalid)
{
        static const char *const bad[] = {
                "",
                "2025-03-02T10:15:00",         /* no offset */
                "2025-03-02 10:15:00Z",        /* space */
                "2025-03-02",                  /* date only */
                "2025-3-02T10:15:00Z",
                "2025-03-2T10:15:00Z",
                "25-03-02T10:15:00Z",
                "2025-13-02T10:15:00Z",
                "2025-00-02T10:15:00Z",
                "2025-03-00T10:15:00Z",
                "2025-03-32T10:15:00Z",
                "2025-04-31T10:15:00Z",
                "2023-02-29T10:15:00Z",        /* not a leap year */
                "1900-02-29T10:15:00Z",        /* century, not leap */
                "2025-03-02T24:00:00Z",
                "2025-03-02T10:60:00Z",
                "2025-03-02T23:59:60Z",        /* leap second: rejected */
                "2025-03-02T10:15Z",
                "2025-03-02T10:15:00.Z",       /* empty fraction */
                "2025-03-02T10:15:00,5Z",
                "2025-03-02T10:15:00+08",
                "2025-03-02T10:15:00+0800",
                "2025-03-02T10:15:00+8:00",
                "2025-03-02T10:15:00+24:00",
                "2025-03-02T10:15:00+08:60",
                "2025-03-02T10:15:00ZZ",
                "2025-03-02T10:15:00Z ",
                " 2025-03-02T10:15:00Z",
                "2025-03-02T10:15:00+08:00x",
                "2025/03/02T10:15:00Z",
                "+2025-03-02T10:15:00Z",
                "2025-03-02T1a:15:00Z",
                "2025-03-02T10:15:00UTC",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                int64_t ms = 12345;
                cr_assert_eq(time_parse(bad[i], strlen(bad[i]), &ms), -EINVAL, "'%s' must be rejected", bad[i]);
                cr_assert_eq(ms, 12345);
        }
        int64_t ms;
        cr_assert_eq(time_parse("2025-03-02T10:15:00Z", 19, &ms), -EINVAL, "n bounds the input: no 'Z'");
        /* valid, but finer than the millisecond: cut, these would be one instant */
        const char *fine[] = {"1970-01-01T00:00:00.0004Z", "1970-01-01T00:00:00.0001Z",
                              "1970-01-01T00:00:00.123456789Z", "1969-12-31T23:59:59.9999Z",
                              "2025-03-02T10:15:00.0000001+08:00"};
        for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
                ms = 7;
                cr_assert_eq(time_parse(fine[i], strlen(fine[i]), &ms), -ERANGE, "'%s' must be refused", fine[i]);
                cr_assert_eq(ms, 7, "nothing stored for '%s'", fine[i]);
        }
        /* an invalid time stays -EINVAL whatever its fraction */
        cr_assert_eq(time_parse("2025-02-30T10:15:00.0004Z", 25, &ms), -EINVAL);
}

Test(value, time_format_cases)
{
        struct {
                int64_t ms;
                const char *s;
        } v[] = {
                {0, "1970-01-01T00:00:00Z"}, {T0, "2025-03-02T02:15:00Z"}, {-1, "1969-12-31T23:59:59.999Z"},
                {T0 + 7, "2025-03-02T02:15:00.007Z"}, {951782400000LL, "2000-02-29T00:00:00Z"},
                {253402300799999LL, "9999-12-31T23:59:59.999Z"}, {-62167219200000LL, "0000-01-01T00:00:00Z"},
        };
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                char b[40];
                time_format(v[i].ms, b, sizeof(b));
                cr_assert_str_eq(b, v[i].s);
        }
        char b[64];
        time_format(INT64_MIN, b, sizeof(b)); /* far outside RFC 3339: must not crash or overflow */
        cr_assert(strlen(b) > 20 && b[strlen(b) - 1] == 'Z');
        time_format(INT64_MAX, b, sizeof(b));
        cr_assert(strlen(b) > 20 && b[strlen(b) - 1] == 'Z');
}

/* Every date of four centuries against a day counter that knows nothing
 * but the Gregorian leap rule, both directions. */
Test(value, time_every_day_1800_2200)
{
        int64_t day = -62091; /* 1800-01-01 */
        for (int y = 1800; y < 2200; y++) {
                bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
                int dim[12] = {31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
                for (int m = 1; m <= 12; m++) {
                        for (int d = 1; d <= dim[m - 1]; d++, day++) {
                                char s[40], back[40];
                                snprintf(s, sizeof(s), "%04d-%02d-%02dT00:00:00Z", y, m, d);
                                int64_t ms = 0;
                                cr_assert_eq(time_parse(s, strlen(s), &ms), 0, "%s", s);
                                cr_assert_eq(ms, day * 86400000LL, "%s", s);
                                time_format(ms, back, sizeof(back));
                                cr_assert_str_eq(back, s);
                        }
                        char past[40];
                        snprintf(past, sizeof(past), "%04d-%02d-%02dT00:00:00Z", y, m, dim[m - 1] + 1);
                        int64_t ms;
                        cr_assert_eq(time_parse(past, strlen(past), &ms), -EINVAL, "%s", past);
                }
        }
}

Test(value, time_round_trip_offsets)
{
        static const char *const offs[] = {"Z", "+08:00", "-05:30", "+14:00", "-12:00", "+00:45"};
        for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
                char s[48], utc[40];
                snprintf(s, sizeof(s), "2024-12-31T23:59:58.250%s", offs[i]);
                int64_t ms, ms2;
                cr_assert_eq(time_parse(s, strlen(s), &ms), 0, "%s", s);
                time_format(ms, utc, sizeof(utc));
                cr_assert_eq(time_parse(utc, strlen(utc), &ms2), 0, "%s", utc);
                cr_assert_eq(ms, ms2, "%s -> %s", s, utc);
                cr_assert_eq(utc[strlen(utc) - 1], 'Z');
        }
        int64_t a, b;
        cr_assert_eq(time_parse("2025-03-02T10:15:00+08:00", 25, &a), 0);
        cr_assert_eq(time_parse("2025-03-01T21:15:00-05:00", 25, &b), 0);
        cr_assert_eq(a, b, "the same instant in two offsets");
}

Test(value, time_offset_parse_forms)
{
        struct {
                const char *s;
                int64_t ms;
        } ok[] = {
                {"Z", 0}, {"z", 0}, {"+00:00", 0}, {"-00:00", 0}, {"+08:00", 8 * 3600000LL},
                {"-03:30", -(3 * 3600000LL + 30 * 60000LL)}, {"+23:59", 23 * 3600000LL + 59 * 60000LL},
        };
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                int64_t ms = 42;
                cr_assert_eq(time_offset_parse(ok[i].s, strlen(ok[i].s), &ms), 0, "%s", ok[i].s);
                cr_assert_eq(ms, ok[i].ms, "%s", ok[i].s);
        }
        static const char *const bad[] = {"", "8", "+8:00", "+08", "+0800", "08:00", "+24:00", "+08:60",
                                          "UTC", "+08:00 ", "ZZ", "+08:0a", "Asia/Shanghai"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                int64_t ms = 42;
                cr_assert_eq(time_offset_parse(bad[i], strlen(bad[i]), &ms), -EINVAL, "'%s'", bad[i]);
                cr_assert_eq(ms, 42, "'%s' leaves *ms alone", bad[i]);
        }
        int64_t ms;
        cr_assert_eq(time_offset_parse("+08:00", 3, &ms), -EINVAL, "n bounds the input");
}

Test(value, time_format_local_cases)
{
        const int64_t h8 = 8 * 3600000LL, m330 = -(3 * 3600000LL + 30 * 60000LL);
        struct {
                const char *utc;
                int64_t off;
                const char *date, *datetime;
        } v[] = {
                {"2025-03-25T16:00:00Z", h8, "2025-03-26", "2025-03-26 00:00"},         /* the day turns */
                {"2025-03-25T15:59:59.999Z", h8, "2025-03-25", "2025-03-25 23:59"},     /* seconds dropped */
                {"2025-03-25T16:00:00Z", 0, "2025-03-25", "2025-03-25 16:00"},          /* UTC */
                {"2025-01-01T03:29:59Z", m330, "2024-12-31", "2024-12-31 23:59"},       /* back a year */
                {"2024-03-01T02:00:00Z", m330, "2024-02-29", "2024-02-29 22:30"},       /* a leap day */
                {"1969-12-31T16:00:00Z", h8, "1970-01-01", "1970-01-01 00:00"},         /* around 0 */
                {"1970-01-01T00:00:00Z", m330, "1969-12-31", "1969-12-31 20:30"},       /* before 0 */
        };
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                int64_t ms;
                char b[40];
                cr_assert_eq(time_parse(v[i].utc, strlen(v[i].utc), &ms), 0, "%s", v[i].utc);
                time_format_local(ms, v[i].off, false, b, sizeof(b));
                cr_assert_str_eq(b, v[i].date, "%s", v[i].utc);
                time_format_local(ms, v[i].off, true, b, sizeof(b));
                cr_assert_str_eq(b, v[i].datetime, "%s", v[i].utc);
        }
        char b[64];
        time_format_local(INT64_MAX, h8, true, b, sizeof(b)); /* must not overflow (UBSan) */
        time_format_local(INT64_MIN, m330, true, b, sizeof(b));
        char small[5];
        time_format_local(0, 0, true, small, sizeof(small));
        cr_assert_str_eq(small, "1970", "a short buffer is cut, not overrun");
}

/* A local wall clock written with its offset reads back as the same wall
 * clock at that offset: every hour of days around the turn of a year and a
 * leap day, at offsets east and west. */
Test(value, time_format_local_round_trip)
{
        static const char *const offs[] = {"+08:00", "-03:30", "+14:00", "-12:00", "+05:45", "Z"};
        static const char *const days[] = {"2024-12-31", "2025-01-01", "2024-02-28", "2024-02-29", "2024-03-01"};
        for (size_t o = 0; o < sizeof(offs) / sizeof(offs[0]); o++)
                for (size_t d = 0; d < sizeof(days) / sizeof(days[0]); d++)
                        for (int h = 0; h < 24; h++) {
                                char s[48], want[32], got[32];
                                snprintf(s, sizeof(s), "%sT%02d:%02d:59.999%s", days[d], h, (h * 7) % 60, offs[o]);
                                snprintf(want, sizeof(want), "%s %02d:%02d", days[d], h, (h * 7) % 60);
                                int64_t ms, off;
                                cr_assert_eq(time_parse(s, strlen(s), &ms), 0, "%s", s);
                                cr_assert_eq(time_offset_parse(offs[o], strlen(offs[o]), &off), 0);
                                time_format_local(ms, off, true, got, sizeof(got));
                                cr_assert_str_eq(got, want, "%s", s);
                                time_format_local(ms, off, false, got, sizeof(got));
                                cr_assert_str_eq(got, days[d], "%s", s);
                        }
}

/* JSON string escaping: quotes, backslashes, the short escapes, other
 * control bytes as \u00XX, everything else (UTF-8 included) as it is, at
 * the start, the end and in runs. */
Test(value, json_strings_escape_exactly)
{
        static const struct {
                const char *in;
                size_t n;
                const char *out;
        } cases[] = {
                {"", 0, "\"\""},
                {"plain", 5, "\"plain\""},
                {"\"", 1, "\"\\\"\""},
                {"a\"b\\c", 5, "\"a\\\"b\\\\c\""},
                {"\n\r\t", 3, "\"\\n\\r\\t\""},
                {"\x01x\x1f", 3, "\"\\u0001x\\u001f\""},
                {"x\0y", 3, "\"x\\u0000y\""},
                {"冷柜-1 \"二号库\"\n", 21, "\"冷柜-1 \\\"二号库\\\"\\n\""},
                {"\x7f\xc3\xa9", 3, "\"\x7f\xc3\xa9\""},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                Buf b = {0};
                buf_puts(&b, "<");
                buf_json_str(&b, cases[i].in, cases[i].n);
                char want[128];
                snprintf(want, sizeof(want), "<%s", cases[i].out);
                cr_assert_eq(b.len, strlen(want), "case %zu: %.*s", i, (int)b.len, b.p);
                cr_assert(memcmp(b.p, want, b.len) == 0, "case %zu: %.*s", i, (int)b.len, b.p);
                buf_free(&b);
        }
        Buf b = {0};
        buf_json_str(&b, NULL, 0);
        cr_assert_eq(b.len, 2);
        buf_free(&b);
}

/* hash_fast reads the tail of a key without a memcpy of variable length;
 * its value must be that of the plain definition (8-byte words, then the
 * rest as a zero-padded word), for every length and alignment. */
static uint64_t mix_ref(uint64_t x)
{
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        x *= 0xc4ceb9fe1a85ec53ULL;
        x ^= x >> 33;
        return x;
}

static uint64_t hash_fast_ref(const unsigned char *s, size_t n)
{
        uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
        for (; n >= 8; s += 8, n -= 8) {
                uint64_t w = 0;
                for (int i = 0; i < 8; i++)
                        w |= (uint64_t)s[i] << (8 * i);
                h = (h ^ mix_ref(w)) * 0x9e3779b97f4a7c15ULL;
        }
        uint64_t w = 0;
        for (size_t i = 0; i < n; i++)
                w |= (uint64_t)s[i] << (8 * i);
        h = (h ^ mix_ref(w ^ ((uint64_t)n << 56))) * 0x9e3779b97f4a7c15ULL;
        return mix_ref(h);
}

Test(value, hash_fast_is_its_definition)
{
        unsigned char buf[80];
        uint64_t seed = 5;
        for (int it = 0; it < 20000; it++) {
                for (size_t i = 0; i < sizeof(buf); i++) {
                        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                        buf[i] = (unsigned char)(seed >> 56);
                }
                size_t off = (size_t)it % 8, n = (size_t)(it / 8) % 41;
                cr_assert_eq(hash_fast(buf + off, n), hash_fast_ref(buf + off, n), "length %zu offset %zu", n, off);
        }
}
