/*
 * Runtime values of the rule language.  A Value is 24 bytes, never owns
 * memory: strings point into the decoded event, the rule set's constant
 * pool, or the evaluation scratch buffer.
 *
 * Null semantics (documented in docs/rules.md): every comparison with null
 * is false (== and != alike), arithmetic with null gives null, a null in a
 * boolean context is false.
 */
#ifndef RISKD_VALUE_H
#define RISKD_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum ValueTag {
        VT_NULL = 0,
        VT_BOOL,
        VT_NUM,  /* double */
        VT_STR,  /* UTF-8 bytes, not NUL terminated */
        VT_ENUM, /* index into the field's EnumDef values; -1 = unknown */
        VT_TIME, /* milliseconds since the Unix epoch, UTC */
        VT_DUR,  /* milliseconds */
} ValueTag;

typedef struct Str {
        const char *p;
        uint32_t len;
} Str;

/* Byte order, then length: -1, 0 or 1 (inline: timer heap order and
 * string comparisons in rules use it). */
static inline int str_order(Str a, Str b)
{
        uint32_t n = a.len < b.len ? a.len : b.len;
        int c = n ? memcmp(a.p, b.p, n) : 0;
        if (c)
                return (c > 0) - (c < 0);
        return (a.len > b.len) - (a.len < b.len);
}

typedef struct Value {
        uint8_t tag;
        union {
                bool b;
                double n;
                int64_t ms; /* VT_TIME, VT_DUR */
                int32_t e;
                Str s;
        };
} Value;

static inline Value value_null(void) { return (Value){.tag = VT_NULL}; }
static inline Value value_bool(bool b) { return (Value){.tag = VT_BOOL, .b = b}; }
static inline Value value_num(double n) { return (Value){.tag = VT_NUM, .n = n}; }
static inline Value value_str(const char *p, uint32_t len) { return (Value){.tag = VT_STR, .s = {p, len}}; }
static inline Value value_enum(int32_t e) { return (Value){.tag = VT_ENUM, .e = e}; }
static inline Value value_time(int64_t ms) { return (Value){.tag = VT_TIME, .ms = ms}; }
static inline Value value_dur(int64_t ms) { return (Value){.tag = VT_DUR, .ms = ms}; }

/* Truthiness: true only for a true bool (null and everything else false). */
static inline bool value_truthy(const Value *v) { return v->tag == VT_BOOL && v->b; }

/*
 * Comparison.  value_cmp returns false (and leaves *ret untouched) when the
 * two values are not comparable (either is null, or tags differ other than
 * the identical-type cases the checker allows); otherwise *ret is <0, 0, >0.
 * Strings compare bytewise, enums by index, numbers numerically (NaN is not
 * comparable).
 */
bool value_cmp(const Value *a, const Value *b, int *ret);

/*
 * Sameness, where a Value stands for another (not the language's
 * comparison: two nulls are the same here).  Both require the same tag and
 * compare strings bytewise; they differ in numbers:
 *
 * value_identical: the same bits.  -0.0 and 0.0 differ (1 / x tells them
 * apart) and a NaN is identical to itself.  Right where one value replaces
 * another for good: the constant pool and the literal sets of in / not in
 * (compile.c), where a constant must keep its own bits.
 *
 * value_equal: the numbers ==, as the rule language compares them.
 * -0.0 equals 0.0 and a NaN equals nothing.  Right where rows are told
 * apart the way a condition would (a window's dedupe of rows, window.c).
 */
bool value_identical(const Value *a, const Value *b);
bool value_equal(const Value *a, const Value *b);

/* Arithmetic op is one of '+', '-', '*', '/', '%'; see value.c for the
 * typing table (time - time = dur, time + dur = time, dur * num = dur...).
 * Division by zero gives null. */
Value value_arith(int op, const Value *a, const Value *b);
Value value_neg(const Value *a);
Value value_abs(const Value *a);

/* String predicates; false when either side is not a string. */
bool value_contains(const Value *a, const Value *b);
bool value_startswith(const Value *a, const Value *b);
bool value_endswith(const Value *a, const Value *b);

/* Durations: "45s", "30m", "12h", "180d", "2w", "500ms".  Returns 0 and
 * sets *ms, or -EINVAL. */
int duration_parse(const char *s, size_t n, int64_t *ms);
/* Shortest exact spelling of a duration ("90m" -> "90m", 86400000 -> "1d"). */
void duration_format(int64_t ms, char *out, size_t size);

/* The longest duration a rule may state (expires, for, cooldown, rectify,
 * a flag's lifetime, the grading dwell): 100 years, 36500d.  riskctl check
 * refuses a longer one (E061), so no event time plus a rule's duration
 * comes near the int64 range; the engine still saturates (time_add_sat). */
#define DURATION_MAX_MS (36500LL * 86400000LL)

/* Time arithmetic that saturates instead of wrapping: a time plus a
 * duration past the int64 range is INT64_MAX (TIME_FOREVER: never),
 * below it INT64_MIN.  Every event time + duration in the engine goes
 * through these, so a huge duration means "later than anything", never
 * "long ago". */
static inline int64_t time_add_sat(int64_t t, int64_t d)
{
        int64_t r;
        if (__builtin_add_overflow(t, d, &r))
                return d > 0 ? INT64_MAX : INT64_MIN;
        return r;
}

static inline int64_t time_sub_sat(int64_t t, int64_t d)
{
        int64_t r;
        if (__builtin_sub_overflow(t, d, &r))
                return d < 0 ? INT64_MAX : INT64_MIN;
        return r;
}

/* RFC 3339 timestamps with offset ("2025-03-02T10:15:00+08:00", fraction
 * optional, 'Z' allowed).  Returns 0, -EINVAL, or -ERANGE for a valid time
 * finer than the millisecond ("...00.0004Z": digits after the third
 * decimal that are not 0), which the engine cannot represent. */
int time_parse(const char *s, size_t n, int64_t *ms);
/* Days since 1970-01-01 of a proleptic Gregorian date (m 1..12, d 1..31). */
int64_t time_days_from_civil(int64_t y, unsigned m, unsigned d);
/* Formats as UTC "2025-03-02T02:15:00Z" (milliseconds only when non-zero). */
void time_format(int64_t ms, char *out, size_t size);
/* An RFC 3339 offset, "+08:00", "-05:30" or "Z": 0 and *ms (east of UTC
 * positive), or -EINVAL. */
int time_offset_parse(const char *s, size_t n, int64_t *ms);
/* The local date "2025-03-26" (clock false) or date and minute
 * "2025-03-26 00:00" (clock true) at offset_ms from UTC, for people:
 * seconds are dropped, not rounded, so a time never reads later than it is. */
void time_format_local(int64_t ms, int64_t offset_ms, bool clock, char *out, size_t size);

#endif
