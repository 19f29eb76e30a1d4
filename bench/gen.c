/*
 * riskd-gen: a deterministic generator of realistic riskd input streams.
 *
 * Writes JSON lines to stdout, one event per line, shaped like the shipped
 * schema (rules/schema.yaml): the envelope event_id / event_type /
 * schema_version / occurred_at / recorded_at / source_system /
 * enterprise{uscc, ...} and the flattened fields of each event type, enum
 * values spelled exactly as the schema declares them, times RFC 3339 in
 * China time (+08:00).  Two modes:
 *
 *  - random (default): N enterprises of mixed categories, each registered
 *    first by an `enterprise` profile event, then a stream dominated by
 *    cold-chain telemetry (about 90% coldchain_reading: a few devices per
 *    enterprise, one reading per device about every minute of event time,
 *    AR(1) noise around the setpoint, excursions above the limit lasting
 *    tens of minutes, door openings, power failures, device gaps) with the
 *    rare business events in between (self-inspection reports, inspections
 *    with follow-ups, sampling results with their pending → confirmed →
 *    closed lifecycle, 12315 tickets, credit records, recalls, incidents,
 *    the gateway's merged excursion records).  Optional faults: bounded
 *    disorder, too-late events, malformed events of every reject reason,
 *    too-large documents, duplicates.
 *  - --story: the fixed 14-month story of examples/events.jsonl, told in
 *    examples/README.md.
 *
 * Invariants:
 *  - The output is a function of the arguments alone: own PRNG
 *    (xoshiro256** seeded by splitmix64), an integer event clock, no wall
 *    clock, no locale, no libm transcendental functions, no hash order.
 *    Three PRNG streams (events, injected faults, disorder) so that
 *    turning a fault rate on does not change the events drawn.
 *  - Exactly M lines are written (profiles, malformed, duplicate and late
 *    lines included).  The k-th generated event has the event time
 *    start + k/R; with --disorder-ms D an event is emitted at most D
 *    (exclusive) behind the largest event time emitted before it, a
 *    --late-rate event more than D behind it; a duplicate repeats the
 *    bytes of an event emitted within D of that maximum.
 *  - Lifecycle follow-ups (a sample's confirmation, a ticket's
 *    verification, ...) keep their real delays when the stream spans at
 *    least LIFECYCLE_REAL of event time and are compressed in proportion
 *    otherwise, so that short benchmark streams still contain them.
 *  - A lifecycle object's details are re-derived from its own seed at each
 *    stage, so every stage repeats the same sample_code, product, item...
 *
 * Usage: see usage() below and bench/README-gen.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_S 1000LL
#define MS_M (60 * MS_S)
#define MS_H (60 * MS_M)
#define MS_D (24 * MS_H)
#define TZ_MS (8 * MS_H) /* China time: every time is written with +08:00 */
#define LIFECYCLE_REAL (150 * MS_D)
#define TOO_LARGE_BYTES 1100000u /* the decoder's default limit is 1 MiB */
#define OUT_FLUSH (1u << 20)
#define RECENT 32u

#define N_(a) (sizeof(a) / sizeof((a)[0]))
#define PUT(b, lit) buf_put((b), (lit), sizeof(lit) - 1)

/* ------------------------------------------------------------------ PRNG */

typedef struct Rng {
        uint64_t s[4];
} Rng;

static uint64_t splitmix64(uint64_t *x)
{
        uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
}

static void rng_seed(Rng *r, uint64_t seed)
{
        for (int i = 0; i < 4; i++)
                r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
        return (x << k) | (x >> (64 - k));
}

static inline uint64_t rng_next(Rng *r)
{
        uint64_t *s = r->s;
        uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return res;
}

/* 0 ≤ x < n (n ≥ 1) */
static inline uint32_t rng_below(Rng *r, uint32_t n)
{
        return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* lo ≤ x ≤ hi */
static inline int64_t rng_range(Rng *r, int64_t lo, int64_t hi)
{
        return lo + (int64_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static inline double rng_unit(Rng *r)
{
        return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static inline bool rng_chance(Rng *r, double p)
{
        return rng_unit(r) < p;
}

static inline double rng_uniform(Rng *r, double lo, double hi)
{
        return lo + (hi - lo) * rng_unit(r);
}

/* approximately standard normal (Irwin–Hall of 4, unit variance) */
static inline double rng_normal(Rng *r)
{
        double s = rng_unit(r) + rng_unit(r) + rng_unit(r) + rng_unit(r);
        return (s - 2.0) * 1.7320508075688772;
}

static uint32_t rng_weighted(Rng *r, const uint16_t *w, uint32_t n)
{
        uint32_t total = 0;
        for (uint32_t i = 0; i < n; i++)
                total += w[i];
        uint32_t x = rng_below(r, total);
        for (uint32_t i = 0; i < n; i++) {
                if (x < w[i])
                        return i;
                x -= w[i];
        }
        return n - 1;
}

#define PICK(r, arr) ((arr)[rng_below((r), (uint32_t)N_(arr))])
#define WPICK(r, w) rng_weighted((r), (w), (uint32_t)N_(w))

/* -------------------------------------------------------------- buffers */

typedef struct Buf {
        char *p;
        size_t len, cap;
} Buf;

static void *xrealloc(void *p, size_t n)
{
        p = realloc(p, n ? n : 1);
        if (!p) {
                fputs("riskd-gen: out of memory\n", stderr);
                exit(1);
        }
        return p;
}

static void buf_grow(Buf *b, size_t need)
{
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + need)
                cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
}

static inline void buf_put(Buf *b, const char *s, size_t n)
{
        if (b->len + n > b->cap)
                buf_grow(b, n);
        memcpy(b->p + b->len, s, n);
        b->len += n;
}

static inline void buf_puts(Buf *b, const char *s)
{
        buf_put(b, s, strlen(s));
}

static inline void buf_putc(Buf *b, char c)
{
        if (b->len + 1 > b->cap)
                buf_grow(b, 1);
        b->p[b->len++] = c;
}

static void buf_put_u64(Buf *b, uint64_t v)
{
        char t[24];
        int i = 24;
        do {
                t[--i] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        buf_put(b, t + i, (size_t)(24 - i));
}

static void buf_put_i64(Buf *b, int64_t v)
{
        if (v < 0) {
                buf_putc(b, '-');
                buf_put_u64(b, (uint64_t)0 - (uint64_t)v);
        } else {
                buf_put_u64(b, (uint64_t)v);
        }
}

/* v zero-padded to at least width digits */
static void buf_put_pad(Buf *b, uint64_t v, int width)
{
        char t[24];
        int i = 24;
        do {
                t[--i] = (char)('0' + v % 10);
                v /= 10;
        } while (v || 24 - i < width);
        buf_put(b, t + i, (size_t)(24 - i));
}

static const int64_t pow10_[] = {1, 10, 100, 1000, 10000, 100000, 1000000};

/* v / 10^dec written with exactly dec decimals */
static void buf_put_fx(Buf *b, int64_t v, int dec)
{
        if (v < 0) {
                buf_putc(b, '-');
                v = -v;
        }
        buf_put_u64(b, (uint64_t)(v / pow10_[dec]));
        if (dec) {
                buf_putc(b, '.');
                buf_put_pad(b, (uint64_t)(v % pow10_[dec]), dec);
        }
}

/* round half away from zero, x·10^dec */
static int64_t fx_round(double x, int dec)
{
        double y = x * (double)pow10_[dec];
        return (int64_t)(y + (y >= 0 ? 0.5 : -0.5));
}

/* ----------------------------------------------------------------- time */

static int64_t floordiv(int64_t a, int64_t b)
{
        int64_t q = a / b;
        if ((a % b) && ((a < 0) != (b < 0)))
                q--;
        return q;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        unsigned yoe = (unsigned)(y - era * 400);
        unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
        unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
        z += 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        unsigned doe = (unsigned)(z - era * 146097);
        unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        unsigned mp = (5 * doy + 2) / 153;
        *d = doy - (153 * mp + 2) / 5 + 1;
        *m = mp < 10 ? mp + 3 : mp - 9;
        *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* UTC ms of a China-time wall clock */
static int64_t cst(int64_t y, unsigned mo, unsigned d, unsigned h, unsigned mi)
{
        return days_from_civil(y, mo, d) * MS_D + (int64_t)h * MS_H + (int64_t)mi * MS_M - TZ_MS;
}

/* China-time day number of a UTC ms */
static int64_t local_day(int64_t ms)
{
        return floordiv(ms + TZ_MS, MS_D);
}

static void put_date_parts(Buf *b, int64_t day, const char *sep)
{
        int64_t y;
        unsigned m, d;
        civil_from_days(day, &y, &m, &d);
        buf_put_pad(b, (uint64_t)y, 4);
        buf_puts(b, sep);
        buf_put_pad(b, m, 2);
        buf_puts(b, sep);
        buf_put_pad(b, d, 2);
}

/* "YYYY-MM-DDThh:mm:ss[.mmm]+08:00", unquoted */
static void put_time_raw(Buf *b, int64_t ms)
{
        static int64_t cday = INT64_MIN;
        static char cdate[11];
        int64_t l = ms + TZ_MS, day = floordiv(l, MS_D), rem = l - day * MS_D;
        if (day != cday) {
                Buf t = {cdate, 0, sizeof(cdate)};
                put_date_parts(&t, day, "-");
                t.p[10] = 'T';
                cday = day;
        }
        char s[32];
        memcpy(s, cdate, 11);
        unsigned h = (unsigned)(rem / MS_H), mi = (unsigned)(rem / MS_M % 60), sec = (unsigned)(rem / MS_S % 60),
                 f = (unsigned)(rem % MS_S);
        size_t n = 11;
        s[n++] = (char)('0' + h / 10);
        s[n++] = (char)('0' + h % 10);
        s[n++] = ':';
        s[n++] = (char)('0' + mi / 10);
        s[n++] = (char)('0' + mi % 10);
        s[n++] = ':';
        s[n++] = (char)('0' + sec / 10);
        s[n++] = (char)('0' + sec % 10);
        if (f) {
                s[n++] = '.';
                s[n++] = (char)('0' + f / 100);
                s[n++] = (char)('0' + f / 10 % 10);
                s[n++] = (char)('0' + f % 10);
        }
        memcpy(s + n, "+08:00", 6);
        buf_put(b, s, n + 6);
}

/* "YYYYMMDD" of the China-time day */
static void put_ymd(Buf *b, int64_t ms)
{
        put_date_parts(b, local_day(ms), "");
}

static unsigned year_of(int64_t ms)
{
        int64_t y;
        unsigned m, d;
        civil_from_days(local_day(ms), &y, &m, &d);
        return (unsigned)y;
}

static int time_digits(const char *s, size_t *i, int n, unsigned *v)
{
        *v = 0;
        for (int k = 0; k < n; k++, (*i)++) {
                if (s[*i] < '0' || s[*i] > '9')
                        return 0;
                *v = *v * 10 + (unsigned)(s[*i] - '0');
        }
        return 1;
}

/* RFC 3339 (offset required) → UTC ms; -EINVAL */
static int time_parse(const char *s, int64_t *ret)
{
        size_t i = 0;
        unsigned y, mo, d, h, mi, sec, frac = 0, oh = 0, om = 0;
        if (!time_digits(s, &i, 4, &y) || s[i++] != '-' || !time_digits(s, &i, 2, &mo) || s[i++] != '-' ||
            !time_digits(s, &i, 2, &d) || (s[i] != 'T' && s[i] != 't'))
                return -EINVAL;
        i++;
        if (!time_digits(s, &i, 2, &h) || s[i++] != ':' || !time_digits(s, &i, 2, &mi) || s[i++] != ':' ||
            !time_digits(s, &i, 2, &sec))
                return -EINVAL;
        if (s[i] == '.') {
                size_t st = ++i;
                while (s[i] >= '0' && s[i] <= '9') {
                        if (i - st < 3)
                                frac = frac * 10 + (unsigned)(s[i] - '0');
                        i++;
                }
                if (i == st)
                        return -EINVAL;
                for (size_t k = i - st; k < 3; k++)
                        frac *= 10;
        }
        int sign = 0;
        if (s[i] == 'Z' || s[i] == 'z') {
                i++;
        } else if (s[i] == '+' || s[i] == '-') {
                sign = s[i++] == '-' ? -1 : 1;
                if (!time_digits(s, &i, 2, &oh) || s[i++] != ':' || !time_digits(s, &i, 2, &om))
                        return -EINVAL;
        } else {
                return -EINVAL;
        }
        if (s[i] || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59 || oh > 23 || om > 59)
                return -EINVAL;
        *ret = days_from_civil(y, mo, d) * MS_D + (int64_t)h * MS_H + (int64_t)mi * MS_M + (int64_t)sec * MS_S +
               frac - sign * ((int64_t)oh * MS_H + (int64_t)om * MS_M);
        return 0;
}

/* ------------------------------------------------------------ JSON out */

/* Every value we write is plain text chosen from our own tables: no quote,
 * backslash or control character ever needs escaping. */
static inline void jkey(Buf *b, const char *k)
{
        buf_putc(b, ',');
        buf_putc(b, '"');
        buf_puts(b, k);
        PUT(b, "\":");
}

static inline void jstr(Buf *b, const char *k, const char *v)
{
        jkey(b, k);
        buf_putc(b, '"');
        buf_puts(b, v);
        buf_putc(b, '"');
}

static inline void jint(Buf *b, const char *k, int64_t v)
{
        jkey(b, k);
        buf_put_i64(b, v);
}

static inline void jfx(Buf *b, const char *k, int64_t v, int dec)
{
        jkey(b, k);
        buf_put_fx(b, v, dec);
}

static inline void jbool(Buf *b, const char *k, bool v)
{
        jkey(b, k);
        if (v)
                PUT(b, "true");
        else
                PUT(b, "false");
}

static inline void jtime(Buf *b, const char *k, int64_t ms)
{
        jkey(b, k);
        buf_putc(b, '"');
        put_time_raw(b, ms);
        buf_putc(b, '"');
}

static void put_uuid(Buf *b, Rng *r)
{
        static const char hex[] = "0123456789abcdef";
        uint64_t a = (rng_next(r) & ~0xF000ULL) | 0x4000ULL; /* version 4 */
        uint64_t c = (rng_next(r) & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL; /* variant 10 */
        char s[36];
        int n = 0;
        for (int i = 15; i >= 0; i--) {
                s[n++] = hex[(a >> (i * 4)) & 15];
                if (i == 8 || i == 4)
                        s[n++] = '-';
        }
        s[n++] = '-';
        for (int i = 15; i >= 0; i--) {
                s[n++] = hex[(c >> (i * 4)) & 15];
                if (i == 12)
                        s[n++] = '-';
        }
        buf_put(b, s, 36);
}

/* --------------------------------------------------------- vocabulary */

enum { T_ENTERPRISE, T_INSPECTION, T_SAMPLING, T_COMPLAINT, T_CREDIT, T_READING, T_EXCURSION, T_SELF, T_RECALL,
       T_INCIDENT, T_COUNT };
static const char *const type_names[T_COUNT] = {
        "enterprise",        "inspection",          "sampling",        "complaint", "credit_record",
        "coldchain_reading", "coldchain_excursion", "self_inspection", "recall",    "incident",
};

enum { BF_PRODUCTION, BF_SALES, BF_CATERING, BF_SPECIAL, BF_CENTRAL, BF_COLLECTIVE, BF_WORKSHOP, BF_ONLINE };
static const char *const bf_names[] = {"food_production", "food_sales", "catering", "special_food", "central_kitchen",
                                       "collective_meal_delivery", "small_workshop", "online"};

enum { SC_LARGE, SC_MEDIUM, SC_SMALL, SC_MICRO };
static const char *const scale_names[] = {"large", "medium", "small", "micro"};

static const char *const license_status_names[] = {"valid", "pending", "expired", "suspended", "revoked",
                                                   "cancelled"};

enum { HZ_PEST, HZ_VET, HZ_MICRO, HZ_ADD, HZ_METAL, HZ_ORG, HZ_BIOTOX, HZ_OTHER, HZ_QUAL, HZ_ILLEGAL, HZ_BANNED };
static const char *const hazard_names[] = {
        "pesticide_residue", "vet_drug_residue", "microbial",         "additive_misuse",  "heavy_metal", "organic_contaminant",
        "biotoxin",          "other_contaminant", "quality_indicator", "illegal_addition", "banned_drug",
};

typedef struct Region {
        const char *code, *city, *district, *plate, *abbr, *province;
} Region;

/* county-level divisions (GB/T 2260 codes), with the plate prefix and the
 * one-character abbreviation used in penalty decision numbers */
static const Region regions[] = {
        {"410105", "郑州", "金水区", "豫A", "郑", "河南省"},
        {"410122", "郑州", "中牟县", "豫A", "郑", "河南省"},
        {"310115", "上海", "浦东新区", "沪B", "沪", "上海市"},
        {"440106", "广州", "天河区", "粤A", "穗", "广东省"},
        {"440305", "深圳", "南山区", "粤B", "深", "广东省"},
        {"330106", "杭州", "西湖区", "浙A", "杭", "浙江省"},
        {"510107", "成都", "武侯区", "川A", "成", "四川省"},
        {"320102", "南京", "玄武区", "苏A", "宁", "江苏省"},
        {"320506", "苏州", "吴中区", "苏E", "苏", "江苏省"},
        {"420106", "武汉", "武昌区", "鄂A", "汉", "湖北省"},
        {"110105", "北京", "朝阳区", "京A", "京", "北京市"},
        {"370102", "济南", "历下区", "鲁A", "济", "山东省"},
        {"370203", "青岛", "市北区", "鲁B", "青", "山东省"},
        {"350203", "厦门", "思明区", "闽D", "厦", "福建省"},
        {"610113", "西安", "雁塔区", "陕A", "西", "陕西省"},
        {"430104", "长沙", "岳麓区", "湘A", "长", "湖南省"},
        {"340104", "合肥", "蜀山区", "皖A", "合", "安徽省"},
        {"130102", "石家庄", "长安区", "冀A", "石", "河北省"},
        {"500112", "重庆", "渝北区", "渝A", "渝", "重庆市"},
        {"120101", "天津", "和平区", "津A", "津", "天津市"},
        {"210102", "沈阳", "和平区", "辽A", "沈", "辽宁省"},
        {"230102", "哈尔滨", "道里区", "黑A", "哈", "黑龙江省"},
        {"150102", "呼和浩特", "新城区", "蒙A", "呼", "内蒙古自治区"},
        {"450103", "南宁", "青秀区", "桂A", "邕", "广西壮族自治区"},
        {"530102", "昆明", "五华区", "云A", "昆", "云南省"},
        {"360102", "南昌", "东湖区", "赣A", "洪", "江西省"},
        {"140105", "太原", "小店区", "晋A", "并", "山西省"},
        {"620102", "兰州", "城关区", "甘A", "兰", "甘肃省"},
        /* the story's enterprises (never drawn in random mode) */
        {"410184", "郑州", "新郑市", "豫A", "郑", "河南省"},
        {"410106", "郑州", "上街区", "豫A", "郑", "河南省"},
};
#define NREGION_RANDOM 28u
enum { RG_ZHONGMOU = 1, RG_XINZHENG = 28, RG_SHANGJIE = 29 };

typedef struct Item {
        const char *name, *unit, *limit; /* limit as printed on the report */
        int32_t limit_milli;             /* numeric limit ×1000; -1: 不得检出 (limit_value null) */
        int8_t dir;                      /* +1: a value above the limit fails; -1: below it */
        uint8_t hazard, dec;             /* hazard class; decimals of the measured value */
} Item;

enum { IT_CHLORPYRIFOS, IT_PROCYMIDONE, IT_CARBOFURAN, IT_ENROFLOXACIN, IT_SULFA, IT_TPC, IT_COLIFORM, IT_MOLD,
       IT_BCEREUS, IT_BENZOIC, IT_DHA, IT_CYCLAMATE, IT_SO2, IT_ALUMINIUM, IT_NITRITE_MEAT, IT_CADMIUM, IT_LEAD,
       IT_MEHG, IT_BAP, IT_3MCPD, IT_AFB1, IT_DON, IT_NITRITE_VEG, IT_ACID_VALUE, IT_PEROXIDE, IT_PROTEIN,
       IT_AMINO_N, IT_TVBN, IT_SILDENAFIL, IT_SIBUTRAMINE, IT_PAPAVERINE, IT_MELAMINE, IT_MALACHITE,
       IT_CHLORAMPHENICOL, IT_FURAZOLIDONE };

static const Item items[] = {
        [IT_CHLORPYRIFOS] = {"毒死蜱", "mg/kg", "≤0.02", 20, 1, HZ_PEST, 3},
        [IT_PROCYMIDONE] = {"腐霉利", "mg/kg", "≤0.2", 200, 1, HZ_PEST, 2},
        [IT_CARBOFURAN] = {"克百威", "mg/kg", "≤0.02", 20, 1, HZ_PEST, 3},
        [IT_ENROFLOXACIN] = {"恩诺沙星", "μg/kg", "≤100", 100000, 1, HZ_VET, 1},
        [IT_SULFA] = {"磺胺类(总量)", "μg/kg", "≤100", 100000, 1, HZ_VET, 1},
        [IT_TPC] = {"菌落总数", "CFU/g", "≤100000", 100000000, 1, HZ_MICRO, 0},
        [IT_COLIFORM] = {"大肠菌群", "CFU/g", "≤10", 10000, 1, HZ_MICRO, 0},
        [IT_MOLD] = {"霉菌", "CFU/g", "≤150", 150000, 1, HZ_MICRO, 0},
        [IT_BCEREUS] = {"蜡样芽胞杆菌", "CFU/g", "≤1000", 1000000, 1, HZ_MICRO, 0},
        [IT_BENZOIC] = {"苯甲酸及其钠盐(以苯甲酸计)", "g/kg", "≤1.0", 1000, 1, HZ_ADD, 2},
        [IT_DHA] = {"脱氢乙酸及其钠盐(以脱氢乙酸计)", "g/kg", "≤0.5", 500, 1, HZ_ADD, 3},
        [IT_CYCLAMATE] = {"甜蜜素(以环己基氨基磺酸计)", "g/kg", "≤0.65", 650, 1, HZ_ADD, 3},
        [IT_SO2] = {"二氧化硫残留量", "g/kg", "≤0.1", 100, 1, HZ_ADD, 3},
        [IT_ALUMINIUM] = {"铝的残留量(干样品,以Al计)", "mg/kg", "≤100", 100000, 1, HZ_ADD, 0},
        [IT_NITRITE_MEAT] = {"亚硝酸盐(以亚硝酸钠计)", "mg/kg", "≤30", 30000, 1, HZ_ADD, 1},
        [IT_CADMIUM] = {"镉(以Cd计)", "mg/kg", "≤0.2", 200, 1, HZ_METAL, 3},
        [IT_LEAD] = {"铅(以Pb计)", "mg/kg", "≤0.2", 200, 1, HZ_METAL, 3},
        [IT_MEHG] = {"甲基汞(以Hg计)", "mg/kg", "≤0.5", 500, 1, HZ_METAL, 3},
        [IT_BAP] = {"苯并[a]芘", "μg/kg", "≤10", 10000, 1, HZ_ORG, 1},
        [IT_3MCPD] = {"3-氯-1,2-丙二醇", "mg/kg", "≤0.4", 400, 1, HZ_ORG, 2},
        [IT_AFB1] = {"黄曲霉毒素B1", "μg/kg", "≤20", 20000, 1, HZ_BIOTOX, 1},
        [IT_DON] = {"脱氧雪腐镰刀菌烯醇", "μg/kg", "≤1000", 1000000, 1, HZ_BIOTOX, 0},
        [IT_NITRITE_VEG] = {"亚硝酸盐(以NaNO2计)", "mg/kg", "≤20", 20000, 1, HZ_OTHER, 1},
        [IT_ACID_VALUE] = {"酸价(以KOH计)", "mg/g", "≤3", 3000, 1, HZ_QUAL, 2},
        [IT_PEROXIDE] = {"过氧化值(以脂肪计)", "g/100g", "≤0.25", 250, 1, HZ_QUAL, 3},
        [IT_PROTEIN] = {"蛋白质", "g/100g", "≥2.9", 2900, -1, HZ_QUAL, 2},
        [IT_AMINO_N] = {"氨基酸态氮(以氮计)", "g/100mL", "≥0.8", 800, -1, HZ_QUAL, 2},
        [IT_TVBN] = {"挥发性盐基氮", "mg/100g", "≤15", 15000, 1, HZ_QUAL, 1},
        [IT_SILDENAFIL] = {"西地那非", "mg/kg", "不得检出", -1, 1, HZ_ILLEGAL, 1},
        [IT_SIBUTRAMINE] = {"西布曲明", "mg/kg", "不得检出", -1, 1, HZ_ILLEGAL, 1},
        [IT_PAPAVERINE] = {"罂粟碱", "μg/kg", "不得检出", -1, 1, HZ_ILLEGAL, 1},
        [IT_MELAMINE] = {"三聚氰胺", "mg/kg", "≤2.5", 2500, 1, HZ_ILLEGAL, 1},
        [IT_MALACHITE] = {"孔雀石绿", "μg/kg", "不得检出", -1, 1, HZ_BANNED, 2},
        [IT_CHLORAMPHENICOL] = {"氯霉素", "μg/kg", "不得检出", -1, 1, HZ_BANNED, 2},
        [IT_FURAZOLIDONE] = {"呋喃唑酮代谢物", "μg/kg", "不得检出", -1, 1, HZ_BANNED, 2},
};

/* cold-chain profile of a category */
enum { CC_NONE, CC_CHILLED, CC_FROZEN, CC_MIXED, CC_MEAT, CC_CHOC };

typedef struct Category {
        const char *id, *food_cat; /* schema enum value; 食品大类 */
        const char *trade[3];      /* trade words for names */
        const char *products[4];
        uint8_t sc;        /* SC 类别编号; 0: an operator with a JY licence */
        uint8_t jy;        /* JY 主体业态: 1 销售, 2 餐饮, 3 单位食堂 */
        uint8_t fmt;       /* usual business format */
        uint8_t dev_max;   /* cold-chain devices (0..dev_max) */
        uint8_t cold;
        uint16_t weight;   /* share among enterprises, per mille */
        uint8_t items[8];  /* failing items, weighted by repetition */
        uint8_t nitems;
} Category;

enum { CAT_INFANT_FORMULA, CAT_SPECIAL_MEDICAL, CAT_HEALTH_FOOD, CAT_INFANT_FOOD, CAT_DAIRY, CAT_MEAT, CAT_AQUATIC,
       CAT_BAIJIU, CAT_OTHER_ALCOHOL, CAT_EDIBLE_OIL, CAT_BEVERAGE, CAT_FROZEN_FOOD, CAT_FOOD_ADDITIVE,
       CAT_CONDIMENT, CAT_BAKERY, CAT_CONFECTIONERY, CAT_TEA, CAT_GRAIN, CAT_VEGETABLES, CAT_FRUIT, CAT_CATERING,
       CAT_SCHOOL_CANTEEN, CAT_CENTRAL_KITCHEN, CAT_COLLECTIVE, CAT_PREPACKAGED, CAT_OTHER, CAT_COUNT };

static const Category categories[CAT_COUNT] = {
        {"infant_formula", "婴幼儿配方食品", {"乳业", "营养食品", "营养品"},
         {"婴儿配方乳粉", "较大婴儿配方乳粉", "幼儿配方乳粉", "婴儿配方乳粉"}, 29, 0, BF_SPECIAL, 1, CC_CHILLED, 8,
         {IT_TPC, IT_PROTEIN, IT_PROTEIN, IT_COLIFORM, IT_MELAMINE}, 5},
        {"special_medical", "特殊医学用途配方食品", {"医学营养", "营养科技", "营养科技"},
         {"全营养配方食品", "特定全营养配方食品", "非全营养配方食品", "全营养配方食品"}, 28, 0, BF_SPECIAL, 0, CC_NONE, 4,
         {IT_PROTEIN, IT_TPC, IT_COLIFORM}, 3},
        {"health_food", "保健食品", {"生物科技", "保健品", "健康产业"},
         {"维生素C咀嚼片", "蛋白粉", "鱼油软胶囊", "灵芝孢子粉胶囊"}, 27, 0, BF_SPECIAL, 0, CC_NONE, 15,
         {IT_TPC, IT_MOLD, IT_LEAD, IT_SILDENAFIL, IT_SIBUTRAMINE}, 5},
        {"infant_food", "特殊膳食食品", {"婴童食品", "营养食品", "婴童食品"},
         {"婴幼儿谷类辅助食品", "婴幼儿罐装辅助食品", "辅食营养补充品", "婴幼儿谷类辅助食品"}, 30, 0, BF_PRODUCTION, 0,
         CC_NONE, 8, {IT_TPC, IT_LEAD, IT_CADMIUM, IT_AFB1}, 4},
        {"dairy", "乳制品", {"乳业", "乳品", "牧业"}, {"巴氏杀菌乳", "灭菌乳", "发酵乳", "调制乳"}, 5, 0, BF_PRODUCTION, 5,
         CC_CHILLED, 40, {IT_TPC, IT_TPC, IT_COLIFORM, IT_PROTEIN, IT_PROTEIN, IT_MELAMINE}, 6},
        {"meat", "肉制品", {"肉类食品", "肉业", "食品"}, {"酱卤肉制品", "熏煮香肠", "腌腊肉制品", "熟肉干制品"}, 4, 0,
         BF_PRODUCTION, 5, CC_MEAT, 60,
         {IT_TPC, IT_COLIFORM, IT_NITRITE_MEAT, IT_NITRITE_MEAT, IT_TVBN, IT_ENROFLOXACIN, IT_CHLORAMPHENICOL,
          IT_BENZOIC},
         8},
        {"aquatic", "水产制品", {"水产", "海洋食品", "水产品"}, {"冻虾仁", "即食海参", "鱼糜制品", "干制水产品"}, 22, 0,
         BF_PRODUCTION, 4, CC_FROZEN, 25,
         {IT_ENROFLOXACIN, IT_SULFA, IT_MEHG, IT_CADMIUM, IT_TVBN, IT_MALACHITE, IT_FURAZOLIDONE}, 7},
        {"baijiu", "酒类", {"酒业", "酿酒", "酒业"}, {"浓香型白酒", "酱香型白酒", "清香型白酒", "浓香型白酒"}, 15, 0,
         BF_PRODUCTION, 0, CC_NONE, 20, {IT_CYCLAMATE, IT_CYCLAMATE, IT_LEAD}, 3},
        {"other_alcohol", "酒类", {"啤酒", "酒业", "葡萄酒"}, {"啤酒", "黄酒", "葡萄酒", "啤酒"}, 15, 0, BF_PRODUCTION, 1,
         CC_CHILLED, 15, {IT_SO2, IT_CYCLAMATE, IT_BENZOIC}, 3},
        {"edible_oil", "食用油、油脂及其制品", {"粮油", "油脂", "油业"}, {"大豆油", "花生油", "菜籽油", "芝麻油"}, 2, 0,
         BF_PRODUCTION, 0, CC_NONE, 20, {IT_ACID_VALUE, IT_PEROXIDE, IT_BAP, IT_AFB1, IT_AFB1}, 5},
        {"beverage", "饮料", {"饮品", "饮料", "食品饮料"}, {"饮用纯净水", "果汁饮料", "茶饮料", "植物蛋白饮料"}, 6, 0,
         BF_PRODUCTION, 1, CC_CHILLED, 30, {IT_TPC, IT_COLIFORM, IT_MOLD, IT_BENZOIC, IT_CYCLAMATE}, 5},
        {"frozen_food", "速冻食品", {"速冻食品", "冷冻食品", "食品"}, {"速冻水饺", "速冻汤圆", "速冻包子", "速冻调理肉制品"},
         11, 0, BF_PRODUCTION, 5, CC_FROZEN, 40, {IT_TPC, IT_COLIFORM, IT_PEROXIDE, IT_TVBN}, 4},
        {"food_additive", "食品添加剂", {"食品添加剂", "生物化工", "食品配料"}, {"复配甜味剂", "复配防腐剂", "食品用香精", "复配甜味剂"},
         1, 0, BF_PRODUCTION, 0, CC_NONE, 10, {IT_LEAD, IT_LEAD, IT_CADMIUM}, 3},
        {"condiment", "调味品", {"调味品", "酿造食品", "调味食品"}, {"酱油", "食醋", "鸡精调味料", "火锅底料"}, 3, 0,
         BF_PRODUCTION, 0, CC_NONE, 40, {IT_AMINO_N, IT_BENZOIC, IT_3MCPD, IT_TPC, IT_PAPAVERINE}, 5},
        {"bakery", "糕点", {"食品", "烘焙食品", "糕点"}, {"月饼", "面包", "蛋糕", "桃酥"}, 24, 0, BF_PRODUCTION, 2,
         CC_CHILLED, 50, {IT_MOLD, IT_TPC, IT_DHA, IT_DHA, IT_ALUMINIUM, IT_ACID_VALUE, IT_PEROXIDE}, 7},
        {"confectionery", "糖果制品", {"糖果", "食品", "巧克力"}, {"硬质糖果", "巧克力", "果冻", "奶糖"}, 13, 0,
         BF_PRODUCTION, 1, CC_CHOC, 20, {IT_TPC, IT_MOLD, IT_CYCLAMATE, IT_SO2}, 4},
        {"tea", "茶叶及相关制品", {"茶业", "茶叶", "茶业"}, {"绿茶", "红茶", "乌龙茶", "花茶"}, 14, 0, BF_PRODUCTION, 0,
         CC_NONE, 20, {IT_CHLORPYRIFOS, IT_CARBOFURAN, IT_LEAD}, 3},
        {"grain", "粮食加工品", {"面业", "米业", "粮油"}, {"小麦粉", "大米", "挂面", "玉米粉"}, 1, 0, BF_PRODUCTION, 0,
         CC_NONE, 50, {IT_CADMIUM, IT_CADMIUM, IT_AFB1, IT_DON, IT_LEAD, IT_BAP}, 6},
        {"vegetables", "食用农产品", {"农产品", "蔬菜", "农业发展"}, {"韭菜", "芹菜", "豇豆", "普通白菜"}, 0, 1, BF_SALES, 2,
         CC_CHILLED, 50, {IT_CHLORPYRIFOS, IT_PROCYMIDONE, IT_PROCYMIDONE, IT_CARBOFURAN, IT_CADMIUM, IT_NITRITE_VEG},
         6},
        {"fruit", "水果制品", {"果业", "果品", "食品"}, {"果脯", "水果干制品", "果酱", "蜜饯"}, 17, 0, BF_PRODUCTION, 1,
         CC_CHILLED, 20, {IT_SO2, IT_BENZOIC, IT_CYCLAMATE, IT_CHLORPYRIFOS}, 4},
        {"catering", "餐饮食品", {"餐饮管理", "餐饮服务", "酒店管理"}, {"油条", "凉拌菜", "自制饮品", "火锅底料(自制)"}, 0, 2,
         BF_CATERING, 2, CC_MIXED, 200, {IT_ALUMINIUM, IT_BCEREUS, IT_TPC, IT_COLIFORM, IT_PAPAVERINE, IT_CHLORPYRIFOS},
         6},
        {"school_canteen", "餐饮食品", {"食堂", "食堂", "食堂"}, {"米饭", "凉拌菜", "馒头", "熟肉制品"}, 0, 3, BF_CATERING,
         2, CC_MIXED, 60, {IT_TPC, IT_COLIFORM, IT_BCEREUS, IT_CHLORPYRIFOS, IT_PROCYMIDONE}, 5},
        {"central_kitchen", "餐饮食品", {"中央厨房", "餐饮管理", "供应链管理"}, {"半成品菜肴", "预制菜", "净菜", "熟食"}, 0, 2,
         BF_CENTRAL, 4, CC_MIXED, 15, {IT_TPC, IT_COLIFORM, IT_NITRITE_MEAT}, 3},
        {"collective_meal_delivery", "餐饮食品", {"团餐服务", "配餐服务", "餐饮管理"}, {"学生营养餐", "盒饭", "熟食", "学生营养餐"},
         0, 2, BF_COLLECTIVE, 3, CC_CHILLED, 15, {IT_TPC, IT_COLIFORM, IT_BCEREUS}, 3},
        {"prepackaged_sales", NULL, {"商贸", "超市", "食品贸易"}, {NULL, NULL, NULL, NULL}, 0, 1, BF_SALES, 3, CC_MIXED,
         150, {0}, 0},
        {"other", "其他食品", {"食品", "食品科技", "农业科技"}, {"蜂蜜", "豆腐", "鸡蛋", "蜂蜜"}, 31, 0, BF_PRODUCTION, 1,
         CC_CHILLED, 15, {IT_TPC, IT_LEAD, IT_SO2}, 3},
};

static const char *const brand1[] = {"华", "金", "鑫", "盛", "福", "康", "恒", "瑞", "益", "丰", "美", "佳", "新", "天", "宏",
                                     "嘉", "顺", "绿", "润", "和", "信", "安", "德", "泰", "隆", "祥", "旺", "达", "优", "百"};
static const char *const brand2[] = {"源", "达", "盛", "丰", "康", "润", "旺", "泰", "鑫", "诚", "联", "宝",
                                     "兴", "发", "禾", "福", "乐", "味", "香", "园", "辉", "邦", "利", "悦"};
static const char *const shop_words[] = {"饭店", "餐厅", "小吃店", "酒家", "面馆", "快餐店"};
static const char *const store_words[] = {"便利店", "食品店", "超市", "副食店"};
static const char *const school_names[] = {"第一", "第二", "第三", "第五", "第八", "第十二", "实验", "育才", "外国语", "希望"};
static const char *const school_kinds[] = {"小学", "中学", "初级中学", "幼儿园", "高级中学"};

/* ------------------------------------------------------- enterprises */

enum { NAME_COMPANY, NAME_JOINT_STOCK, NAME_LLC, NAME_WORKSHOP, NAME_SHOP, NAME_STORE, NAME_VEG_STALL, NAME_SCHOOL };

typedef struct Ent {
        char uscc[19];
        char lic[17];
        const char *fixed_name; /* the story's enterprises */
        uint8_t region, cat, fmt, scale, status;
        uint8_t b1, b2, trade, name_kind;
        bool haccp, gmp, special;
        int32_t licensed_day;
        int32_t clean_day;     /* -1: none */
        int16_t static_score;  /* tenths; -1: none */
        uint32_t dev_first;
        uint8_t ndev;
} Ent;

static const char U31[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";

static int u31_val(char c)
{
        const char *p = strchr(U31, c);
        return p && c ? (int)(p - U31) : 0;
}

/*
 * 统一社会信用代码 (GB 32100-2015): registration authority and kind (2),
 * region (6), organisation code (9, its last character the GB 11714 check),
 * check character.  The organisation body is a bijection of the enterprise
 * index, so ids are unique within a run.
 */
static void uscc_make(char out[19], const char *prefix, const char *region, uint32_t i, uint64_t salt, bool new_style)
{
        memcpy(out, prefix, 2);
        memcpy(out + 2, region, 6);
        char *org = out + 8;
        if (new_style) {
                uint64_t v = ((uint64_t)i * 2654435761u + salt) % 887503681u; /* 31^6 */
                org[0] = 'M';
                org[1] = 'A';
                for (int k = 7; k >= 2; k--) {
                        org[k] = U31[v % 31];
                        v /= 31;
                }
        } else {
                uint64_t v = ((uint64_t)i * 2654435761u + salt) % 100000000u;
                for (int k = 7; k >= 0; k--) {
                        org[k] = (char)('0' + v % 10);
                        v /= 10;
                }
        }
        static const int w9[8] = {3, 7, 9, 10, 5, 8, 4, 2};
        int s = 0;
        for (int k = 0; k < 8; k++)
                s += (org[k] >= 'A' ? org[k] - 'A' + 10 : org[k] - '0') * w9[k];
        int c = 11 - s % 11;
        org[8] = c == 10 ? 'X' : c == 11 ? '0' : (char)('0' + c);
        static const int w18[17] = {1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28};
        s = 0;
        for (int k = 0; k < 17; k++)
                s += u31_val(out[k]) * w18[k];
        c = 31 - s % 31;
        out[17] = U31[c == 31 ? 0 : c];
        out[18] = 0;
}

/* Luhn digit over the digits of s (the licence's own check rule is not public) */
static char luhn(const char *s, size_t n)
{
        int sum = 0;
        for (size_t k = 0; k < n; k++) {
                int d = s[n - 1 - k] - '0';
                if (k % 2 == 0) {
                        d *= 2;
                        if (d > 9)
                                d -= 9;
                }
                sum += d;
        }
        return (char)('0' + (10 - sum % 10) % 10);
}

/* SC + 14 digits (生产许可) or JY + 14 digits (经营许可) */
static void license_make(char out[17], const Category *c, const char *region, uint32_t serial)
{
        char d[15];
        if (c->sc) {
                d[0] = c->sc == 1 && c == &categories[CAT_FOOD_ADDITIVE] ? '2' : '1';
                d[1] = (char)('0' + c->sc / 10);
                d[2] = (char)('0' + c->sc % 10);
                memcpy(d + 3, region, 6);
                for (int k = 12; k >= 9; k--) {
                        d[k] = (char)('0' + serial % 10);
                        serial /= 10;
                }
                d[13] = luhn(d, 13);
                out[0] = 'S';
                out[1] = 'C';
        } else {
                d[0] = (char)('0' + c->jy);
                memcpy(d + 1, region, 6);
                for (int k = 12; k >= 7; k--) {
                        d[k] = (char)('0' + serial % 10);
                        serial /= 10;
                }
                d[13] = luhn(d, 13);
                out[0] = 'J';
                out[1] = 'Y';
        }
        memcpy(out + 2, d, 14);
        out[16] = 0;
}

static void ent_name(Buf *b, const Ent *e)
{
        if (e->fixed_name) {
                buf_puts(b, e->fixed_name);
                return;
        }
        const Region *rg = &regions[e->region];
        const Category *c = &categories[e->cat];
        switch (e->name_kind) {
        case NAME_SCHOOL:
                buf_puts(b, rg->city);
                buf_puts(b, "市");
                buf_puts(b, rg->district);
                buf_puts(b, school_names[e->b1 % N_(school_names)]);
                buf_puts(b, school_kinds[e->b2 % N_(school_kinds)]);
                buf_puts(b, "食堂");
                return;
        case NAME_WORKSHOP:
        case NAME_SHOP:
        case NAME_STORE:
        case NAME_VEG_STALL:
                buf_puts(b, rg->district);
                break;
        default:
                buf_puts(b, rg->city);
                break;
        }
        buf_puts(b, brand1[e->b1]);
        buf_puts(b, brand2[e->b2]);
        switch (e->name_kind) {
        case NAME_WORKSHOP:
                buf_puts(b, c->trade[e->trade]);
                buf_puts(b, "加工坊");
                break;
        case NAME_SHOP:
                buf_puts(b, shop_words[e->trade % N_(shop_words)]);
                break;
        case NAME_STORE:
                buf_puts(b, store_words[e->trade % N_(store_words)]);
                break;
        case NAME_VEG_STALL:
                buf_puts(b, "蔬菜经营部");
                break;
        case NAME_JOINT_STOCK:
                buf_puts(b, c->trade[e->trade]);
                buf_puts(b, "股份有限公司");
                break;
        case NAME_LLC:
                buf_puts(b, c->trade[e->trade]);
                buf_puts(b, "有限责任公司");
                break;
        default:
                buf_puts(b, c->trade[e->trade]);
                buf_puts(b, "有限公司");
                break;
        }
}

/* ------------------------------------------------------------ devices */

enum { AS_ROOM, AS_TRUCK, AS_CABINET, AS_CONTAINER };
static const char *const asset_names[] = {"cold_room", "reefer_truck", "display_cabinet", "container"};
static const char *const asset_prefix[] = {"CR", "RT", "DC", "CT"};
enum { PC_CHILLED, PC_FROZEN, PC_CUSTOM };
static const char *const pclass_names[] = {"chilled", "frozen", "custom"};
enum { EP_NONE, EP_EXC, EP_DOOR };

typedef struct Device {
        uint32_t ent;
        uint8_t asset, pclass, no, ep;
        bool power_fail, over;
        char plate[6];          /* trucks: the plate after the province prefix */
        int16_t min10, lim10;   /* required range (tenths °C); min10 INT16_MIN: none */
        int16_t over_max, ep_max;
        uint8_t hum;
        double sp, x, amp;      /* setpoint, AR(1) state, excursion amplitude (°C) */
        int64_t ep_start, ep_end, over_start, gap_until, gap_from;
} Device;

/* ------------------------------------------------------- follow-ups */

enum { FU_INSPECTION, FU_SAMPLING, FU_SAMPLING_TWIN, FU_COMPLAINT, FU_RECALL, FU_EXCURSION };
enum { EX_OVER, EX_GAP, EX_DOOR };
static const char *const exc_kind_names[] = {"over_temp", "data_gap", "door_open_long"};

/* A lifecycle object (or a gateway excursion record) waiting for its next event. */
typedef struct Fu {
        int64_t due, t0, t1;  /* t0: the object's first event; excursions: start, end */
        uint64_t seq, seed;
        uint32_t ent, serial; /* excursions: serial is the device */
        int16_t v;            /* excursions: the highest temperature (tenths) */
        uint8_t kind, stage;  /* excursions: stage is EX_*; v2 below */
        bool flag;            /* excursions: power failure */
} Fu;

typedef struct FuHeap {
        Fu *v;
        size_t n, cap;
        uint64_t seq;
} FuHeap;

static bool fu_less(const Fu *a, const Fu *b)
{
        return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void fu_push(FuHeap *h, Fu f)
{
        if (h->n == h->cap) {
                h->cap = h->cap ? h->cap * 2 : 1024;
                h->v = xrealloc(h->v, h->cap * sizeof(Fu));
        }
        f.seq = h->seq++;
        size_t i = h->n++;
        while (i > 0) {
                size_t p = (i - 1) / 2;
                if (!fu_less(&f, &h->v[p]))
                        break;
                h->v[i] = h->v[p];
                i = p;
        }
        h->v[i] = f;
}

static Fu fu_pop(FuHeap *h)
{
        Fu top = h->v[0], last = h->v[--h->n];
        size_t i = 0;
        for (;;) {
                size_t c = 2 * i + 1;
                if (c >= h->n)
                        break;
                if (c + 1 < h->n && fu_less(&h->v[c + 1], &h->v[c]))
                        c++;
                if (!fu_less(&h->v[c], &last))
                        break;
                h->v[i] = h->v[c];
                i = c;
        }
        if (h->n)
                h->v[i] = last;
        return top;
}

/* ------------------------------------------------------------ the generator */

typedef struct Gen {
        Rng rng;             /* the event stream */
        Ent *ents;
        uint32_t nent;
        Device *devs;
        uint32_t ndev, cursor;
        uint32_t *order;     /* the devices in a shuffled round-robin order */
        uint32_t *producers; /* enterprises that can be a labeled producer */
        uint32_t nprod;
        FuHeap fu;
        double lc_scale;     /* lifecycle delay compression, ≤ 1 */
        double p_exc, p_door_long, p_door, p_gap; /* per reading */
        uint32_t serial[8];  /* business-key counters */
        bool side;           /* building a fault template: change no state */
        Buf key;             /* scratch for business keys */
        uint64_t count[T_COUNT];
} Gen;

enum { SER_INSPECTION, SER_SAMPLE, SER_TICKET, SER_DECISION, SER_RECALL, SER_INCIDENT, SER_CASE, SER_REPORT };

static int64_t lc_delay(Gen *g, Rng *r, double lo_days, double hi_days)
{
        int64_t d = (int64_t)(rng_uniform(r, lo_days, hi_days) * (double)MS_D * g->lc_scale);
        return d < MS_S ? MS_S : d;
}

static void env_begin(Buf *b, Rng *r, int type, int64_t t, int64_t rec, const char *source)
{
        PUT(b, "{\"event_id\":\"");
        put_uuid(b, r);
        PUT(b, "\",\"event_type\":\"");
        buf_puts(b, type_names[type]);
        PUT(b, "\",\"schema_version\":\"1.0\"");
        jtime(b, "occurred_at", t);
        jtime(b, "recorded_at", rec);
        jstr(b, "source_system", source);
}

static void env_record(Buf *b, const Buf *key)
{
        jkey(b, "source_record_id");
        buf_putc(b, '"');
        buf_put(b, key->p, key->len);
        buf_putc(b, '"');
}

static void env_enterprise(Buf *b, const Ent *e, bool full)
{
        PUT(b, ",\"enterprise\":{\"uscc\":\"");
        buf_put(b, e->uscc, 18);
        buf_putc(b, '"');
        if (full) {
                PUT(b, ",\"name\":\"");
                ent_name(b, e);
                buf_putc(b, '"');
                jstr(b, "license_no", e->lic);
                jstr(b, "business_format", bf_names[e->fmt]);
                jstr(b, "region_code", regions[e->region].code);
        }
        buf_putc(b, '}');
}

static void put_org(Buf *b, const Ent *e, const char *level)
{
        const Region *rg = &regions[e->region];
        if (!strcmp(level, "national")) {
                buf_puts(b, "国家市场监督管理总局");
        } else if (!strcmp(level, "provincial")) {
                buf_puts(b, rg->province);
                buf_puts(b, "市场监督管理局");
        } else if (!strcmp(level, "municipal")) {
                buf_puts(b, rg->city);
                buf_puts(b, "市市场监督管理局");
        } else {
                buf_puts(b, rg->city);
                buf_puts(b, "市");
                buf_puts(b, rg->district);
                buf_puts(b, "市场监督管理局");
        }
}

static void env_jurisdiction(Buf *b, const Ent *e, const char *level)
{
        jkey(b, "jurisdiction_org");
        buf_putc(b, '"');
        put_org(b, e, "county");
        buf_putc(b, '"');
        jstr(b, "reporting_level", level);
}

/* A business event's envelope: id, type, times, source, record id, enterprise, jurisdiction. */
static void env_business(Gen *g, Buf *b, Rng *r, int type, const Ent *e, int64_t t, int64_t rec, const char *source,
                         const char *level)
{
        env_begin(b, r, type, t, rec, source);
        env_record(b, &g->key);
        env_enterprise(b, e, true);
        env_jurisdiction(b, e, level);
}

/* ---- enterprise profile ---- */

static void ev_profile(Gen *g, Buf *b, Rng *r, const Ent *e, int64_t t)
{
        g->key.len = 0;
        buf_puts(&g->key, e->lic);
        env_business(g, b, r, T_ENTERPRISE, e, t, t + rng_range(r, 1, 30) * MS_M, "SMART_SUPERVISION", "county");
        PUT(b, ",\"name\":\"");
        ent_name(b, e);
        buf_putc(b, '"');
        jstr(b, "license_no", e->lic);
        jstr(b, "region_code", regions[e->region].code);
        jstr(b, "category", categories[e->cat].id);
        jstr(b, "business_format", bf_names[e->fmt]);
        jstr(b, "scale", scale_names[e->scale]);
        jbool(b, "haccp", e->haccp);
        jbool(b, "gmp", e->gmp);
        jbool(b, "special_food", e->special);
        jstr(b, "license_status", license_status_names[e->status]);
        jtime(b, "licensed_at", (int64_t)e->licensed_day * MS_D - TZ_MS);
        if (e->static_score >= 0)
                jfx(b, "static_score", e->static_score, 1);
        if (e->clean_day >= 0)
                jtime(b, "clean_record_since", (int64_t)e->clean_day * MS_D - TZ_MS);
        buf_putc(b, '}');
}

/* ---- cold chain ---- */

static void put_device_id(Buf *b, const Ent *e, const Device *d)
{
        buf_puts(b, asset_prefix[d->asset]);
        buf_putc(b, '-');
        buf_put(b, e->uscc + 8, 9);
        buf_putc(b, '-');
        buf_put_pad(b, d->no, 2);
}

static void put_asset_ref(Buf *b, const Ent *e, const Device *d)
{
        switch (d->asset) {
        case AS_TRUCK:
                buf_puts(b, regions[e->region].plate);
                PUT(b, "·");
                buf_put(b, d->plate, 5);
                return;
        case AS_ROOM:
                buf_puts(b, d->pclass == PC_FROZEN ? "冷冻库" : "冷藏库");
                break;
        case AS_CABINET:
                buf_puts(b, d->pclass == PC_FROZEN ? "冷冻柜" : "冷藏柜");
                break;
        default:
                buf_puts(b, "冷藏集装箱");
                break;
        }
        buf_put_u64(b, d->no);
        buf_puts(b, "号");
}

typedef struct Reading {
        int temp10, hum;
        bool door, power, alarm;
} Reading;

static void ev_reading(Buf *b, Rng *r, const Ent *e, const Device *d, int64_t t, const Reading *rd)
{
        env_begin(b, r, T_READING, t, t + rng_range(r, 200, 3000), "COLDCHAIN_IOT");
        env_enterprise(b, e, false);
        PUT(b, ",\"device_id\":\"");
        put_device_id(b, e, d);
        buf_putc(b, '"');
        jstr(b, "asset_type", asset_names[d->asset]);
        PUT(b, ",\"asset_ref\":\"");
        put_asset_ref(b, e, d);
        buf_putc(b, '"');
        jtime(b, "reading_at", t);
        jfx(b, "temp_c", rd->temp10, 1);
        jint(b, "humidity_pct", rd->hum);
        jbool(b, "door_open", rd->door);
        jbool(b, "power_ok", rd->power);
        jbool(b, "device_alarm", rd->alarm);
        jstr(b, "product_class", pclass_names[d->pclass]);
        PUT(b, ",\"required_range_c\":{");
        if (d->min10 != INT16_MIN) {
                PUT(b, "\"min\":");
                buf_put_fx(b, d->min10 / 10, 0);
                buf_putc(b, ',');
        }
        PUT(b, "\"max\":");
        buf_put_fx(b, d->lim10 / 10, 0);
        PUT(b, "}}");
}

static void ev_excursion(Gen *g, Buf *b, Rng *r, const Fu *o, int64_t t)
{
        const Device *d = &g->devs[o->serial];
        const Ent *e = &g->ents[d->ent];
        Rng dr;
        rng_seed(&dr, o->seed);
        env_begin(b, r, T_EXCURSION, t, t + rng_range(r, 1, 20) * MS_S, "COLDCHAIN_IOT");
        env_enterprise(b, e, false);
        PUT(b, ",\"device_id\":\"");
        put_device_id(b, e, d);
        buf_putc(b, '"');
        jstr(b, "kind", exc_kind_names[o->stage]);
        jtime(b, "start", o->t0);
        jtime(b, "end", o->t1);
        if (o->stage != EX_GAP)
                jfx(b, "max_temp_c", o->v, 1);
        jint(b, "duration_min", (o->t1 - o->t0 + MS_M / 2) / MS_M);
        bool ack = rng_chance(&dr, 0.8);
        jbool(b, "acknowledged_by_enterprise", ack);
        if (ack) {
                static const char *const over[] = {"检修制冷机组并调整设定温度", "转移货物至备用冷库",
                                                   "更换门封条并加强装卸管理", "除霜后恢复正常运行"};
                static const char *const gap[] = {"重启网关并补传数据", "更换监测终端电池", "恢复网络连接"};
                static const char *const door[] = {"加强装卸作业管理", "更换自动闭门器", "培训出入库人员"};
                jstr(b, "corrective_action",
                     o->stage == EX_GAP ? PICK(&dr, gap)
                     : o->stage == EX_DOOR ? PICK(&dr, door)
                     : o->flag ? "恢复供电并检查货物"
                               : PICK(&dr, over));
        }
        if (o->stage == EX_OVER)
                jbool(b, "affected_goods_tested", rng_chance(&dr, 0.75));
        buf_putc(b, '}');
}

static void fu_excursion(Gen *g, uint32_t di, int kind, int64_t start, int64_t end, int max10, bool power_fail)
{
        Fu f = {0};
        f.kind = FU_EXCURSION;
        f.due = end + rng_range(&g->rng, 1, 5) * MS_M; /* the gateway merges, then reports */
        f.t0 = start;
        f.t1 = end;
        f.serial = di;
        f.v = (int16_t)max10;
        f.stage = (uint8_t)kind;
        f.flag = power_fail;
        f.seed = rng_next(&g->rng);
        fu_push(&g->fu, f);
}

/* The device's next reading at time t: temperature model and episodes. */
static void dev_step(Gen *g, uint32_t di, int64_t t, Reading *rd)
{
        Device *d = &g->devs[di];
        Rng *r = &g->rng;
        if (d->gap_from) {
                if (t - d->gap_from >= 30 * MS_M)
                        fu_excursion(g, di, EX_GAP, d->gap_from, t, 0, false);
                d->gap_from = 0;
        }
        double sigma = d->pclass == PC_FROZEN ? 0.35 : 0.2;
        d->x = 0.8 * d->x + sigma * rng_normal(r);
        double temp = d->sp + d->x;
        bool door = false, power = true;
        if (d->ep == EP_EXC) {
                double f = (double)(t - d->ep_start) / (double)(d->ep_end - d->ep_start);
                if (f >= 1) {
                        d->ep = EP_NONE;
                } else {
                        temp += d->amp * (f < 0.2 ? f / 0.2 : f > 0.8 ? (1 - f) / 0.2 : 1.0);
                        power = !d->power_fail;
                }
        } else if (d->ep == EP_DOOR) {
                if (t >= d->ep_end) {
                        fu_excursion(g, di, EX_DOOR, d->ep_start, t, d->ep_max, false);
                        d->ep = EP_NONE;
                } else {
                        double mins = (double)(t - d->ep_start) / (double)MS_M;
                        temp += 0.5 + (mins * 0.15 < 7 ? mins * 0.15 : 7);
                        door = true;
                }
        }
        if (d->ep == EP_NONE) {
                double u = rng_unit(r);
                if (u < g->p_exc) {
                        d->ep = EP_EXC;
                        d->ep_start = t;
                        d->ep_end = t + (rng_chance(r, 0.04) ? rng_range(r, 240, 360) : rng_range(r, 15, 90)) * MS_M;
                        d->amp = (d->lim10 / 10.0 - d->sp) + rng_uniform(r, 0.5, 5.0);
                        d->power_fail = rng_chance(r, 0.1);
                } else if (u < g->p_exc + g->p_door_long) {
                        d->ep = EP_DOOR;
                        d->ep_start = t;
                        d->ep_end = t + rng_range(r, 10, 40) * MS_M;
                        d->ep_max = INT16_MIN;
                        door = true;
                        temp += 0.5;
                } else if (u < g->p_exc + g->p_door_long + g->p_door) {
                        door = true;
                        temp += rng_uniform(r, 0.8, 2.5);
                } else if (u < g->p_exc + g->p_door_long + g->p_door + g->p_gap) {
                        d->gap_from = t;
                        d->gap_until = t + rng_range(r, 20, 300) * MS_M;
                }
        }
        int temp10 = (int)fx_round(temp, 1);
        if (d->ep == EP_DOOR && temp10 > d->ep_max)
                d->ep_max = (int16_t)temp10;
        /* what the gateway sees: spans above the limit */
        if (temp10 > d->lim10) {
                if (!d->over) {
                        d->over = true;
                        d->over_start = t;
                        d->over_max = (int16_t)temp10;
                } else if (temp10 > d->over_max) {
                        d->over_max = (int16_t)temp10;
                }
        } else if (d->over) {
                d->over = false;
                if (t - d->over_start >= 10 * MS_M)
                        fu_excursion(g, di, EX_OVER, d->over_start, t, d->over_max,
                                     d->ep == EP_EXC && d->power_fail);
        }
        int h = d->hum + (int)rng_below(r, 3) - 1;
        d->hum = (uint8_t)(h < 40 ? 40 : h > 98 ? 98 : h);
        rd->temp10 = temp10;
        rd->hum = d->hum;
        rd->door = door;
        rd->power = power;
        rd->alarm = temp10 > d->lim10 || !power;
}

/* ---- inspection ---- */

static const char *const insp_kinds[] = {"routine", "double_random", "key", "special_campaign", "system", "flying"};
static const uint16_t insp_kind_w[] = {45, 30, 10, 6, 4, 5};
static const char *const levels[] = {"national", "provincial", "municipal", "county"};

static int64_t ev_inspection(Gen *g, Buf *b, Rng *r, const Fu *o, int64_t t)
{
        const Ent *e = &g->ents[o->ent];
        Rng d;
        rng_seed(&d, o->seed);
        uint32_t kind = WPICK(&d, insp_kind_w);
        bool flying = kind == 5;
        static const char *const flying_triggers[] = {"problem_lead", "sampling_failure", "complaint",
                                                      "media_exposure", "risk_monitoring"};
        const char *trigger = kind == 0 || kind == 4 ? "annual_plan"
                              : kind == 1            ? "double_random_draw"
                              : kind == 2            ? (rng_chance(&d, 0.7) ? "annual_plan" : "superior_assignment")
                              : kind == 3            ? "superior_assignment"
                                                     : PICK(&d, flying_triggers);
        static const uint16_t level_w[] = {3, 12, 25, 60};
        const char *level = flying ? (rng_chance(&d, 0.6) ? "provincial" : "municipal") : levels[WPICK(&d, level_w)];
        int inspectors = flying ? (int)rng_range(&d, 3, 6) : (int)rng_range(&d, 2, 4);
        bool producer = e->fmt == BF_PRODUCTION || e->fmt == BF_SPECIAL || e->fmt == BF_WORKSHOP;
        int nitems = flying ? (int)rng_range(&d, 10, 25) : producer ? (int)rng_range(&d, 40, 60) : (int)rng_range(&d, 25, 45);
        double u = rng_unit(&d);
        int outcome = flying ? (u < 0.4 ? 0 : u < 0.7 ? 1 : 2) : (u < 0.74 ? 0 : u < 0.95 ? 1 : 2);
        int key = 0, gen = 0, safety = 0;
        const char *disp = "none";
        bool imminent = false;
        int dyn = -1;
        if (outcome == 1) {
                gen = (int)rng_range(&d, 1, 4);
                safety = rng_chance(&d, 0.2) ? 1 : 0;
                disp = rng_chance(&d, 0.4) ? "rectify_on_site" : "rectify_deadline";
        } else if (outcome == 2) {
                key = (int)rng_range(&d, 1, 2);
                gen = (int)rng_range(&d, 2, 6);
                safety = (int)rng_range(&d, 0, 2);
                static const char *const disps[] = {"case_filed", "case_filed", "case_filed", "seal_seize", "suspend",
                                                    "interview", "rectify_deadline", "transfer_police"};
                disp = PICK(&d, disps);
                imminent = rng_chance(&d, 0.15);
        }
        if (rng_chance(&d, 0.65))
                dyn = outcome == 0 ? (int)rng_range(&d, 0, 150) : outcome == 1 ? (int)rng_range(&d, 80, 300)
                                                                               : (int)rng_range(&d, 250, 520);
        bool obstructed = rng_chance(&d, 0.004);
        bool deadline = strcmp(disp, "rectify_on_site") && strcmp(disp, "none");
        bool completed = rng_chance(&d, 0.88);
        int64_t fu_delay = lc_delay(g, &d, 7, 25);

        g->key.len = 0;
        buf_puts(&g->key, flying ? "FX" : "JC");
        put_ymd(&g->key, o->t0);
        buf_putc(&g->key, '-');
        buf_put_pad(&g->key, o->serial, 6);
        if (o->stage == 1)
                PUT(&g->key, "-FC");
        env_business(g, b, r, T_INSPECTION, e, t, t + rng_range(r, 10, 600) * MS_M, "SMART_SUPERVISION", level);
        jkey(b, "inspection_no");
        buf_putc(b, '"');
        buf_put(b, g->key.p, g->key.len);
        buf_putc(b, '"');
        const char *checklist = producer ? "食品生产监督检查要点表(2022版)"
                                : e->fmt == BF_SALES || e->fmt == BF_ONLINE ? "食品销售监督检查要点表(2022版)"
                                                                             : "餐饮服务监督检查要点表(2022版)";
        if (o->stage == 0) {
                jstr(b, "inspection_kind", insp_kinds[kind]);
                jstr(b, "trigger", trigger);
                jbool(b, "announced", !flying);
                jint(b, "inspector_count", inspectors);
                jstr(b, "checklist_version", checklist);
                jbool(b, "full_coverage", !flying);
                jint(b, "items_checked", nitems);
                jint(b, "key_items_nonconforming", key);
                jint(b, "general_items_nonconforming", gen);
                jint(b, "general_items_affecting_safety", safety);
                jstr(b, "result", outcome == 0 ? "compliant" : outcome == 1 ? "basically_compliant" : "noncompliant");
                jbool(b, "imminent_risk", imminent);
                if (dyn >= 0)
                        jfx(b, "dynamic_risk_score", dyn, 1);
                jstr(b, "disposition", disp);
                if (deadline)
                        jtime(b, "rectify_deadline", (local_day(t) + 16) * MS_D - TZ_MS);
                jbool(b, "obstructed", obstructed);
                buf_putc(b, '}');
                return deadline ? fu_delay : -1;
        }
        /* stage 1: 整改复查 */
        jstr(b, "inspection_kind", "follow_up");
        jstr(b, "trigger", trigger);
        jbool(b, "announced", true);
        jint(b, "inspector_count", 2);
        jstr(b, "checklist_version", checklist);
        jbool(b, "full_coverage", false);
        jint(b, "items_checked", key + gen);
        jint(b, "key_items_nonconforming", completed ? 0 : key);
        jint(b, "general_items_nonconforming", completed ? 0 : gen);
        jint(b, "general_items_affecting_safety", completed ? 0 : safety);
        jstr(b, "result", completed ? "compliant" : "noncompliant");
        jbool(b, "imminent_risk", false);
        jstr(b, "disposition", completed ? "none" : "interview");
        jbool(b, "rectification_completed", completed);
        jbool(b, "obstructed", false);
        buf_putc(b, '}');
        return -1;
}

/* ---- sampling ---- */

static const char *const task_names[] = {"supervision", "risk_monitoring", "evaluation", "special"};
static const uint16_t task_w[] = {70, 15, 8, 7};

static bool cat_cold(const Category *c)
{
        return c->cold != CC_NONE && c->cold != CC_CHOC;
}

static int64_t ev_sampling(Gen *g, Buf *b, Rng *r, const Fu *o, int64_t t)
{
        const Ent *seller = &g->ents[o->ent];
        Rng d;
        rng_seed(&d, o->seed);
        uint32_t task = WPICK(&d, task_w);
        static const uint16_t level_w[] = {15, 35, 30, 20};
        const char *olevel = levels[WPICK(&d, level_w)];
        const char *stage, *site;
        static const char *const sales_sites[] = {"supermarket", "supermarket", "wholesale_market", "farmers_market"};
        switch (seller->fmt) {
        case BF_PRODUCTION:
        case BF_SPECIAL:
        case BF_WORKSHOP:
                stage = "production";
                site = "factory_warehouse";
                break;
        case BF_SALES:
                stage = "circulation";
                site = PICK(&d, sales_sites);
                break;
        case BF_ONLINE:
                stage = "online";
                site = "online_shop";
                break;
        default:
                stage = "catering";
                site = seller->cat == CAT_SCHOOL_CANTEEN || seller->fmt == BF_COLLECTIVE ? "canteen" : "restaurant";
                break;
        }
        /* what was sampled: the seller's own category, or a producer's */
        const Ent *producer = NULL;
        const Category *pc = &categories[seller->cat];
        if (!pc->food_cat || ((seller->fmt == BF_SALES || seller->fmt == BF_ONLINE) && seller->cat != CAT_VEGETABLES)) {
                if (g->nprod) {
                        producer = &g->ents[g->producers[rng_below(&d, g->nprod)]];
                        pc = &categories[producer->cat];
                } else {
                        pc = &categories[CAT_GRAIN];
                }
        }
        const char *product = pc->products[rng_below(&d, 4)];
        const Ent *brand_of = producer ? producer : seller;
        double u = rng_unit(&d);
        int conclusion = task == 1 ? (u < 0.05 ? 2 : 0) : (u < 0.03 ? 1 : 0); /* 0 pass, 1 fail, 2 problem */
        const Item *it = &items[pc->items[rng_below(&d, pc->nitems)]];
        double factor = it->dir > 0 ? rng_uniform(&d, 1.2, 6.0) : rng_uniform(&d, 0.55, 0.95);
        double measured = it->limit_milli < 0 ? rng_uniform(&d, 0.5, 60.0) : it->limit_milli / 1000.0 * factor;
        bool retest = it->hazard != HZ_MICRO && rng_chance(&d, 0.12);
        bool retest_fail = rng_chance(&d, 0.7);
        bool confirmed = !retest || retest_fail;
        bool closes = rng_chance(&d, 0.85);
        int64_t sampled = o->t0 - rng_range(&d, 18 * 24, 35 * 24) * MS_H - rng_range(&d, 0, 59) * MS_M;
        int64_t issued = o->t0 - rng_range(&d, 1, 3) * MS_D;
        int64_t produced = sampled - rng_range(&d, 3, 90) * MS_D;
        int64_t d1 = retest ? lc_delay(g, &d, 20, 35) : lc_delay(g, &d, 8, 12);
        int64_t d2 = lc_delay(g, &d, 30, 85);
        bool imported = (pc == &categories[CAT_AQUATIC] || pc == &categories[CAT_DAIRY]) && rng_chance(&d, 0.08);
        const char *lab_kind = rng_chance(&d, 0.6) ? "食品检验研究院" : "产品质量监督检验院";
        uint32_t nfailed = rng_chance(&d, 0.2) ? 2 : 1;
        char batch_tail = (char)('A' + rng_below(&d, 6));

        bool twin = o->kind == FU_SAMPLING_TWIN;
        const Ent *e = twin ? producer : seller;
        g->key.len = 0;
        PUT(&g->key, "DC");
        buf_put_pad(&g->key, year_of(o->t0) % 100, 2);
        if (!strcmp(olevel, "national")) {
                PUT(&g->key, "000000");
        } else if (!strcmp(olevel, "provincial")) {
                buf_put(&g->key, regions[seller->region].code, 2);
                PUT(&g->key, "0000");
        } else if (!strcmp(olevel, "municipal")) {
                buf_put(&g->key, regions[seller->region].code, 4);
                PUT(&g->key, "00");
        } else {
                buf_puts(&g->key, regions[seller->region].code);
        }
        buf_put_pad(&g->key, o->serial, 9);
        size_t code_len = g->key.len;

        env_business(g, b, r, T_SAMPLING, e, t, t + rng_range(r, 30, 480) * MS_M, "NIFDC_SAMPLING", olevel);
        jkey(b, "sample_code");
        buf_putc(b, '"');
        buf_put(b, g->key.p, code_len);
        buf_putc(b, '"');
        jstr(b, "task_category", task_names[task]);
        jkey(b, "organizing_org");
        buf_putc(b, '"');
        put_org(b, seller, olevel);
        buf_putc(b, '"');
        jstr(b, "organizing_level", olevel);
        jstr(b, "sampling_stage", stage);
        jstr(b, "site_type", site);
        jstr(b, "party_role", twin ? "labeled_producer" : "sampled_entity");
        jstr(b, "food_category", pc->food_cat);
        PUT(b, ",\"product\":{\"name\":\"");
        buf_puts(b, product);
        PUT(b, "\",\"brand\":\"");
        if (brand_of->fixed_name) {
                buf_puts(b, "某某");
        } else {
                buf_puts(b, brand1[brand_of->b1]);
                buf_puts(b, brand2[brand_of->b2]);
        }
        PUT(b, "\",\"batch_no\":\"");
        put_ymd(b, produced);
        buf_putc(b, batch_tail);
        PUT(b, "\",\"production_date\":\"");
        put_date_parts(b, local_day(produced), "-");
        buf_putc(b, '"');
        jbool(b, "imported", imported);
        jstr(b, "storage_at_sampling", cat_cold(pc) ? (pc->cold == CC_FROZEN ? "frozen" : "chilled") : "ambient");
        buf_putc(b, '}');
        jkey(b, "lab");
        buf_putc(b, '"');
        buf_puts(b, regions[seller->region].province);
        buf_puts(b, lab_kind);
        buf_putc(b, '"');
        jtime(b, "sampled_at", sampled);
        jtime(b, "report_issued_at", issued);
        jtime(b, "notified_at", o->t0);
        jstr(b, "conclusion", conclusion == 0 ? "pass" : conclusion == 1 ? "fail" : "problem");
        int64_t next = -1;
        if (conclusion) {
                jint(b, "failed_items_count", nfailed);
                jstr(b, "hazard", hazard_names[it->hazard]);
                jstr(b, "item", it->name);
                jfx(b, "measured", fx_round(measured, it->dec), it->dec);
                jstr(b, "limit", it->limit);
                if (it->limit_milli >= 0)
                        jfx(b, "limit_value", it->limit_milli, 3);
                jstr(b, "unit", it->unit);
        }
        if (conclusion == 1) {
                int64_t case_opened = o->t0 + d1;
                if (o->stage == 0) {
                        PUT(b, ",\"retest\":{\"requested\":false}");
                        jstr(b, "confirmation_status", "pending");
                        next = d1;
                } else {
                        PUT(b, ",\"retest\":{\"requested\":");
                        if (retest) {
                                PUT(b, "true");
                                jtime(b, "requested_at", o->t0 + (int64_t)(4.0 * (double)MS_D * g->lc_scale));
                                jstr(b, "conclusion", retest_fail ? "fail" : "pass");
                        } else {
                                PUT(b, "false");
                        }
                        buf_putc(b, '}');
                        jstr(b, "confirmation_status", confirmed ? "confirmed" : "overturned");
                        if (confirmed) {
                                PUT(b, ",\"disposal_case\":{\"case_no\":\"HC");
                                buf_put(b, g->key.p + 2, code_len - 2);
                                PUT(b, "\"");
                                jtime(b, "opened_at", case_opened);
                                jbool(b, "traced_upstream", o->stage == 2);
                                jbool(b, "traced_downstream", o->stage == 2);
                                if (o->stage == 2)
                                        jtime(b, "closed_at", t);
                                buf_putc(b, '}');
                                if (o->stage == 1 && closes)
                                        next = d2;
                        }
                }
                /* a failure is attributed to both parties (domain.md (a)) */
                if (!twin && producer && !g->side) {
                        Fu f = *o;
                        f.kind = FU_SAMPLING_TWIN;
                        f.due = t;
                        fu_push(&g->fu, f);
                }
        }
        buf_putc(b, '}');
        return next;
}

/* ---- complaint ---- */

static int64_t ev_complaint(Gen *g, Buf *b, Rng *r, const Fu *o, int64_t t)
{
        const Ent *e = &g->ents[o->ent];
        Rng d;
        rng_seed(&d, o->seed);
        static const uint16_t kind_w[] = {60, 30, 10};
        static const char *const kinds[] = {"complaint", "report", "inquiry"};
        uint32_t kind = WPICK(&d, kind_w);
        static const uint16_t ch_w[] = {30, 20, 25, 15, 3, 2, 5};
        static const char *const channels[] = {"12315_hotline", "12315_web", "12315_app", "12315_miniprogram",
                                               "window", "letter", "transfer_12345"};
        const char *channel = channels[WPICK(&d, ch_w)];
        static const uint16_t issue_w[] = {15, 18, 15, 12, 10, 4, 4, 8, 14};
        static const char *const issues[] = {"expired_food", "foreign_matter", "spoiled", "label", "illness",
                                             "unlicensed", "illegal_addition", "false_claim", "hygiene"};
        uint32_t issue = WPICK(&d, issue_w);
        bool fs_related = (issue == 3 || issue == 7) ? rng_chance(&d, 0.4) : true;
        int persons = issue == 4 ? (rng_chance(&d, 0.02) ? (int)rng_range(&d, 30, 60) : (int)rng_range(&d, 1, 6)) : 0;
        bool real_name = rng_chance(&d, 0.7);
        bool accepted = rng_chance(&d, 0.9);
        static const uint16_t vc_w[] = {22, 10, 30, 30, 8};
        static const uint16_t vr_w[] = {35, 10, 55, 0, 0};
        static const char *const verdicts[] = {"substantiated", "partially", "unsubstantiated", "mediated",
                                               "mediation_failed"};
        uint32_t verdict = kind == 1 ? WPICK(&d, vr_w) : WPICK(&d, vc_w);
        bool case_filed = verdict <= 1 && rng_chance(&d, kind == 1 ? 0.5 : 0.15);
        static const char *const platforms[] = {"美团", "饿了么", "淘宝", "京东", "拼多多", "抖音"};
        const char *platform = PICK(&d, platforms);
        int64_t d1 = lc_delay(g, &d, 0.5, 7), d2 = lc_delay(g, &d, 5, 40);

        g->key.len = 0;
        PUT(&g->key, "12315");
        put_ymd(&g->key, o->t0);
        buf_put_pad(&g->key, o->serial, 7);
        env_business(g, b, r, T_COMPLAINT, e, t, t + rng_range(r, 1, 120) * MS_M, "NATIONAL_12315", "county");
        jkey(b, "ticket_no");
        buf_putc(b, '"');
        buf_put(b, g->key.p, g->key.len);
        buf_putc(b, '"');
        jstr(b, "kind", kinds[kind]);
        jstr(b, "channel", channel);
        jtime(b, "received_at", o->t0);
        if (e->fmt == BF_ONLINE) {
                PUT(b, ",\"respondent\":{\"platform\":\"");
                buf_puts(b, platform);
                PUT(b, "\"}");
        }
        jstr(b, "issue_category", issues[issue]);
        jbool(b, "food_safety_related", fs_related);
        jint(b, "persons_affected", persons);
        jbool(b, "real_name", real_name);
        int64_t next = -1;
        if (kind == 2) { /* 咨询: answered at once */
                jstr(b, "acceptance", "accepted");
                jtime(b, "acceptance_decided_at", o->t0);
                jtime(b, "closed_at", t);
        } else if (o->stage == 0) {
                jstr(b, "acceptance", "pending");
                jstr(b, "verification", "pending");
                next = d1;
        } else {
                jstr(b, "acceptance", accepted ? "accepted" : "rejected");
                jtime(b, "acceptance_decided_at", o->t0 + d1);
                if (!accepted) {
                        jtime(b, "closed_at", t);
                } else if (o->stage == 1) {
                        jstr(b, "verification", "pending");
                        next = d2;
                } else {
                        jstr(b, "verification", verdicts[verdict]);
                        jbool(b, "case_filed", case_filed);
                        jtime(b, "closed_at", t);
                }
        }
        buf_putc(b, '}');
        return next;
}

/* ---- credit record ---- */

static void ev_credit(Gen *g, Buf *b, Rng *r, const Ent *e, int64_t t)
{
        static const uint16_t type_w[] = {200, 80, 10, 550, 60, 30, 50, 20, 5};
        static const char *const types[] = {"administrative_penalty", "abnormal_list", "serious_dishonest_list",
                                            "credit_risk_class", "responsibility_interview", "credit_repair",
                                            "certification", "award", "license_revoked"};
        uint32_t type = WPICK(r, type_w);
        const Region *rg = &regions[e->region];
        const char *level = type == 3 ? "national" : type == 2 ? "municipal" : "county";
        g->key.len = 0;
        if (type == 0) {
                buf_puts(&g->key, rg->abbr);
                buf_puts(&g->key, "市监罚〔");
                buf_put_u64(&g->key, year_of(t));
                buf_puts(&g->key, "〕");
                buf_put_u64(&g->key, ++g->serial[SER_DECISION]);
                buf_puts(&g->key, "号");
        } else {
                PUT(&g->key, "XY");
                put_ymd(&g->key, t);
                buf_put_pad(&g->key, ++g->serial[SER_REPORT], 7);
        }
        env_business(g, b, r, T_CREDIT, e, t, t + rng_range(r, 1, 48) * MS_H, "GSXT", level);
        jstr(b, "record_type", types[type]);
        switch (type) {
        case 0: {
                static const uint16_t sev_w[] = {30, 50, 15, 4, 1};
                static const char *const sev[] = {"warning", "fine", "confiscation", "suspend", "revoke"};
                static const char *const basis[] = {
                        "食品安全法第一百二十六条第一款",         "食品安全法第一百二十四条第一款",
                        "食品安全法第一百二十三条第一款",         "食品安全法第一百三十四条",
                        "食品安全法第一百三十五条",               "食品安全法第一百二十五条第一款",
                };
                uint32_t s = WPICK(r, sev_w);
                /* most cases are small: P(goods ≥ 20000, 情节严重) ≈ 10% */
                double gu = rng_unit(r);
                int64_t goods = 300 + (int64_t)(gu * gu * gu * gu * gu * 59700.0) / 100 * 100;
                int64_t fine = s == 0 ? 0 : s == 1 ? rng_range(r, 5, 150) * 1000 : rng_range(r, 50, 600) * 1000;
                bool intentional = rng_chance(r, s >= 2 ? 0.5 : 0.15);
                PUT(b, ",\"penalty\":{\"decision_no\":\"");
                buf_put(b, g->key.p, g->key.len);
                PUT(b, "\",\"legal_basis\":\"");
                buf_puts(b, s == 1 && rng_chance(r, 0.4) ? basis[5] : basis[s]);
                buf_putc(b, '"');
                jstr(b, "most_severe", sev[s]);
                if (fine)
                        jint(b, "fine_cny", fine);
                jint(b, "goods_value_cny", goods);
                jbool(b, "intentional", intentional);
                jbool(b, "serious_circumstances", goods >= 20000 || rng_chance(r, 0.03));
                buf_putc(b, '}');
                break;
        }
        case 1:
        case 2:
        case 5: {
                static const char *const abnormal[] = {"通过登记的住所或者经营场所无法联系", "未按规定公示年度报告"};
                static const char *const dishonest[] = {"生产经营添加非食用物质的食品, 受到较重行政处罚",
                                                        "未经许可从事食品生产经营, 情节严重"};
                PUT(b, ",\"list\":{");
                PUT(b, "\"listed_at\":\"");
                put_time_raw(b, type == 5 ? t - rng_range(r, 200, 500) * MS_D : t);
                buf_putc(b, '"');
                if (type == 5)
                        jtime(b, "removed_at", t);
                jstr(b, "reason", type == 2 ? PICK(r, dishonest) : PICK(r, abnormal));
                jkey(b, "organ");
                buf_putc(b, '"');
                put_org(b, e, type == 2 ? "municipal" : "county");
                PUT(b, "\"}");
                break;
        }
        case 3: {
                static const uint16_t cls_w[] = {60, 28, 9, 3};
                static const char *const cls[] = {"A", "B", "C", "D"};
                jstr(b, "credit_class", cls[WPICK(r, cls_w)]);
                jtime(b, "valid_to", t + 30 * MS_D);
                break;
        }
        case 6:
                jtime(b, "valid_to", t + 3 * 365 * MS_D);
                break;
        case 7: {
                static const uint16_t aw_w[] = {5, 30, 50, 15};
                static const char *const aw[] = {"national", "provincial", "prefecture", "county"};
                jstr(b, "award_level", aw[WPICK(r, aw_w)]);
                break;
        }
        default:
                break;
        }
        jtime(b, "valid_from", t);
        buf_putc(b, '}');
}

/* ---- self-inspection ---- */

static void ev_self_inspection(Gen *g, Buf *b, Rng *r, const Ent *e, int64_t t)
{
        static const uint16_t kind_w[] = {55, 25, 12, 3, 3, 2};
        static const char *const kinds[] = {"daily", "weekly", "monthly", "special_food_system",
                                            "risk_notice_response", "third_party_evaluation"};
        static const char *const roles[] = {"food_safety_officer", "food_safety_director", "principal",
                                            "food_safety_director", "principal", "principal"};
        uint32_t k = WPICK(r, kind_w);
        if (k == 3 && !e->special)
                k = 1;
        int64_t day = local_day(t), from, to;
        switch (k) {
        case 0:
                from = day;
                to = day + 1;
                break;
        case 1: { /* the previous week, Monday to Sunday (day 0 was a Thursday) */
                int64_t monday = day - (day + 3 - floordiv(day + 3, 7) * 7);
                from = monday - 7;
                to = monday;
                break;
        }
        default: {
                int64_t y;
                unsigned m, dd;
                civil_from_days(day, &y, &m, &dd);
                to = days_from_civil(y, m, 1);
                from = m == 1 ? days_from_civil(y - 1, 12, 1) : days_from_civil(y, m - 1, 1);
                if (k == 3 || k == 5)
                        from = days_from_civil(y - 1, m, 1);
                break;
        }
        }
        g->key.len = 0;
        PUT(&g->key, "ZC");
        put_ymd(&g->key, t);
        buf_put_pad(&g->key, ++g->serial[SER_REPORT], 7);
        env_business(g, b, r, T_SELF, e, t, t + rng_range(r, 1, 300) * MS_S, "ENTERPRISE_PORTAL", "county");
        jstr(b, "report_kind", kinds[k]);
        jtime(b, "period_start", from * MS_D - TZ_MS);
        jtime(b, "period_end", to * MS_D - TZ_MS - MS_S);
        jtime(b, "submitted_at", t);
        jstr(b, "submitter_role", roles[k]);
        bool zero = rng_chance(r, 0.75);
        int issues = zero ? 0 : (int)rng_range(r, 1, 4);
        int major = issues && rng_chance(r, 0.08) ? 1 : 0;
        int open = issues && rng_chance(r, 0.3) ? (int)rng_range(r, 1, issues) : 0;
        jbool(b, "zero_risk", zero);
        jint(b, "issues_found", issues);
        jint(b, "major_issues", major);
        jint(b, "unrectified_issues", open);
        jbool(b, "stopped_and_reported", major && rng_chance(r, 0.05));
        buf_putc(b, '}');
}

/* ---- recall ---- */

static int64_t ev_recall(Gen *g, Buf *b, Rng *r, const Fu *o, int64_t t)
{
        const Ent *e = &g->ents[o->ent];
        Rng d;
        rng_seed(&d, o->seed);
        static const uint16_t lvl_w[] = {10, 40, 50};
        uint32_t lvl = WPICK(&d, lvl_w);
        static const char *const reasons[3][3] = {
                {"检出致病菌(沙门氏菌)", "检出非食用物质", "可能导致严重健康损害"},
                {"微生物指标超标", "农药残留超标", "食品添加剂超范围使用"},
                {"标签标识错误", "未标注致敏物质", "营养成分表标示不符"},
        };
        bool ordered = rng_chance(&d, 0.3);
        bool refused = ordered && rng_chance(&d, 0.05);
        bool planned = ordered && !refused && rng_chance(&d, 0.2); /* 责令召回: reported as planned first */
        static const int64_t limit_h[] = {24, 48, 72};
        int64_t known = o->t0 - (rng_chance(&d, 0.9) ? rng_range(&d, 2, limit_h[lvl] - 1)
                                                      : rng_range(&d, limit_h[lvl] + 2, limit_h[lvl] * 3)) *
                                        MS_H;
        int64_t qty = rng_range(&d, 5, 2000) * 100;
        int64_t recovered = qty * rng_range(&d, 82, 100) / 100;
        int64_t d0 = lc_delay(g, &d, 0.5, 2.5), d1 = lc_delay(g, &d, 3, 45);
        const char *reason = reasons[lvl][rng_below(&d, 3)];

        g->key.len = 0;
        PUT(&g->key, "ZH");
        buf_put_u64(&g->key, year_of(o->t0));
        buf_puts(&g->key, regions[e->region].code);
        buf_put_pad(&g->key, o->serial, 5);
        env_business(g, b, r, T_RECALL, e, t, t + rng_range(r, 1, 600) * MS_M, "ENTERPRISE_PORTAL", "county");
        jkey(b, "recall_no");
        buf_putc(b, '"');
        buf_put(b, g->key.p, g->key.len);
        buf_putc(b, '"');
        static const char *const lvls[] = {"level_1", "level_2", "level_3"};
        jstr(b, "recall_level", lvls[lvl]);
        jstr(b, "reason", reason);
        jstr(b, "initiated_by", ordered ? "ordered" : "voluntary");
        jtime(b, "risk_known_at", known);
        int64_t next = -1;
        int step = o->stage - planned; /* -1 planned, 0 started, 1 completed */
        int64_t started = o->t0 + (planned ? d0 : 0);
        if (refused) {
                jstr(b, "status", "refused");
        } else if (step < 0) {
                jstr(b, "status", "planned");
                next = d0;
        } else {
                jstr(b, "status", step == 0 ? "started" : "completed");
                jtime(b, "started_at", started);
                if (step == 1) {
                        jtime(b, "completed_at", t);
                        jint(b, "recovered_quantity", recovered);
                } else {
                        next = d1;
                }
        }
        jint(b, "quantity", qty);
        buf_putc(b, '}');
        return next;
}

/* ---- incident ---- */

static void ev_incident(Gen *g, Buf *b, Rng *r, const Ent *e, int64_t t)
{
        static const uint16_t kind_w[] = {40, 15, 30, 15};
        static const char *const kinds[] = {"foodborne_illness", "contamination", "media_exposure", "public_opinion"};
        static const uint16_t lvl_w[] = {1, 5, 24, 170};
        static const char *const lvls[] = {"especially_major", "major", "large", "general"};
        uint32_t kind = WPICK(r, kind_w), lvl = WPICK(r, lvl_w);
        int cases = kind == 0 ? (lvl == 3 ? (int)rng_range(r, 3, 29) : (int)rng_range(r, 30, 120)) : 0;
        int deaths = lvl <= 1 && rng_chance(r, 0.5) ? (int)rng_range(r, 1, 3) : 0;
        g->key.len = 0;
        PUT(&g->key, "SG");
        buf_put_u64(&g->key, year_of(t));
        buf_puts(&g->key, regions[e->region].code);
        buf_put_pad(&g->key, ++g->serial[SER_INCIDENT], 5);
        env_business(g, b, r, T_INCIDENT, e, t, t + rng_range(r, 1, 24) * MS_H, "SMART_SUPERVISION",
                     lvl <= 1 ? "provincial" : lvl == 2 ? "municipal" : "county");
        jkey(b, "incident_no");
        buf_putc(b, '"');
        buf_put(b, g->key.p, g->key.len);
        buf_putc(b, '"');
        jstr(b, "incident_kind", kinds[kind]);
        jstr(b, "level", lvls[lvl]);
        jint(b, "cases", cases);
        jint(b, "deaths", deaths);
        jbool(b, "attributed", rng_chance(r, 0.6));
        jbool(b, "reported_by_enterprise", rng_chance(r, 0.8));
        buf_putc(b, '}');
}

/* ------------------------------------------------------ population */

static void ent_init(Gen *g, Ent *e, uint32_t i, uint64_t salt, int64_t start_day)
{
        Rng *r = &g->rng;
        static uint16_t cat_w[CAT_COUNT];
        if (!cat_w[0])
                for (int c = 0; c < CAT_COUNT; c++)
                        cat_w[c] = categories[c].weight;
        memset(e, 0, sizeof(*e));
        e->region = (uint8_t)rng_below(r, NREGION_RANDOM);
        e->cat = (uint8_t)rng_weighted(r, cat_w, CAT_COUNT);
        const Category *c = &categories[e->cat];
        bool producer = c->sc != 0;
        static const uint16_t prod_scale[] = {10, 25, 45, 20}, cater_scale[] = {5, 20, 40, 35},
                              school_scale[] = {10, 50, 40, 0}, sales_scale[] = {5, 15, 40, 40};
        e->scale = (uint8_t)(producer                     ? WPICK(r, prod_scale)
                             : e->cat == CAT_SCHOOL_CANTEEN ? WPICK(r, school_scale)
                             : c->jy == 2                   ? WPICK(r, cater_scale)
                                                            : WPICK(r, sales_scale));
        e->fmt = c->fmt;
        if (e->cat == CAT_PREPACKAGED && rng_chance(r, 0.15))
                e->fmt = BF_ONLINE;
        bool workshop_cat = e->cat == CAT_BAKERY || e->cat == CAT_CONDIMENT || e->cat == CAT_TEA ||
                            e->cat == CAT_GRAIN || e->cat == CAT_OTHER;
        if (workshop_cat && e->scale == SC_MICRO && rng_chance(r, 0.6))
                e->fmt = BF_WORKSHOP;
        e->special = e->cat <= CAT_HEALTH_FOOD;
        e->haccp = producer && rng_chance(r, e->scale == SC_LARGE ? 0.45 : e->scale == SC_MEDIUM ? 0.2 : 0.04);
        e->gmp = e->special ? rng_chance(r, 0.9) : rng_chance(r, 0.02);
        static const uint16_t status_w[] = {9840, 50, 60, 30, 10, 10};
        e->status = (uint8_t)WPICK(r, status_w);
        e->licensed_day = (int32_t)rng_range(r, start_day - 15 * 365, start_day - 30);
        e->clean_day = rng_chance(r, 0.4) ? (int32_t)rng_range(r, e->licensed_day, start_day - 1) : -1;
        e->static_score = rng_chance(r, 0.25) ? (int16_t)rng_range(r, 50, 400) : -1;
        e->b1 = (uint8_t)rng_below(r, N_(brand1));
        e->b2 = (uint8_t)rng_below(r, N_(brand2));
        if (!strcmp(brand1[e->b1], brand2[e->b2]))
                e->b2 = (uint8_t)((e->b2 + 1) % N_(brand2));
        e->trade = (uint8_t)rng_below(r, 3);
        const char *prefix = "91";
        if (e->cat == CAT_SCHOOL_CANTEEN) {
                e->name_kind = NAME_SCHOOL;
                e->b1 = (uint8_t)rng_below(r, N_(school_names));
                e->b2 = (uint8_t)rng_below(r, N_(school_kinds));
                prefix = "12";
        } else if (e->fmt == BF_WORKSHOP) {
                e->name_kind = NAME_WORKSHOP;
                prefix = "92";
        } else if (e->scale == SC_MICRO && (c->jy == 2 || c->jy == 1) && rng_chance(r, 0.6)) {
                e->name_kind = e->cat == CAT_VEGETABLES ? NAME_VEG_STALL : c->jy == 2 ? NAME_SHOP : NAME_STORE;
                e->trade = (uint8_t)rng_below(r, 6);
                prefix = "92"; /* 个体工商户 */
        } else {
                e->name_kind = e->scale == SC_LARGE && rng_chance(r, 0.5) ? NAME_JOINT_STOCK
                               : rng_chance(r, 0.25)                     ? NAME_LLC
                                                                         : NAME_COMPANY;
        }
        uscc_make(e->uscc, prefix, regions[e->region].code, i, salt, rng_chance(r, 0.7));
        license_make(e->lic, c, regions[e->region].code, (uint32_t)rng_range(r, 1, 999999));
        int ndev = c->dev_max ? (int)rng_range(r, c->dev_max >= 2 ? 1 : 0, c->dev_max) : 0;
        if (e->scale == SC_MICRO && ndev > 1)
                ndev = 1;
        e->ndev = (uint8_t)ndev;
}

static void dev_init(Gen *g, Device *d, const Ent *e, uint32_t ei, uint8_t no)
{
        Rng *r = &g->rng;
        const Category *c = &categories[e->cat];
        memset(d, 0, sizeof(*d));
        d->ent = ei;
        d->no = no;
        bool operator = c->jy != 0 && e->cat != CAT_CENTRAL_KITCHEN && e->cat != CAT_COLLECTIVE;
        if (operator)
                d->asset = rng_chance(r, 0.75) ? AS_CABINET : AS_ROOM;
        else
                d->asset = e->cat == CAT_AQUATIC && rng_chance(r, 0.15) ? AS_CONTAINER
                           : rng_chance(r, 0.4)                         ? AS_TRUCK
                                                                        : AS_ROOM;
        switch (c->cold) {
        case CC_FROZEN:
                d->pclass = PC_FROZEN;
                break;
        case CC_MIXED:
                d->pclass = rng_chance(r, 0.5) ? PC_CHILLED : PC_FROZEN;
                break;
        case CC_MEAT: {
                uint32_t k = rng_below(r, 10);
                d->pclass = k < 4 ? PC_CHILLED : k < 7 ? PC_FROZEN : PC_CUSTOM;
                break;
        }
        case CC_CHOC:
                d->pclass = PC_CUSTOM;
                break;
        default:
                d->pclass = PC_CHILLED;
                break;
        }
        if (d->pclass == PC_CHILLED) {
                d->min10 = 0;
                d->lim10 = 80;
                d->sp = rng_uniform(r, 2.0, 5.0);
        } else if (d->pclass == PC_FROZEN) {
                d->min10 = INT16_MIN;
                d->lim10 = -180;
                d->sp = rng_uniform(r, -22.0, -19.5);
        } else if (c->cold == CC_CHOC) {
                d->min10 = 120;
                d->lim10 = 180;
                d->sp = rng_uniform(r, 14.0, 16.0);
        } else { /* 冷鲜肉 0–4 °C */
                d->min10 = 0;
                d->lim10 = 40;
                d->sp = rng_uniform(r, 1.2, 2.2);
        }
        static const char plate_chars[] = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
        for (int k = 0; k < 5; k++)
                d->plate[k] = plate_chars[rng_below(r, (uint32_t)strlen(plate_chars))];
        d->hum = (uint8_t)(d->asset == AS_CABINET ? rng_range(r, 45, 70) : rng_range(r, 72, 92));
}

/* ------------------------------------------------------------ options */

typedef struct Opts {
        uint32_t enterprises;
        uint64_t events;
        uint64_t seed;
        int64_t start_ms;
        double rate;          /* events per second of event time; 0: derived */
        int64_t disorder_ms;
        double late, malformed, duplicate, too_large;
        bool story, stats;
        const char *labels;
} Opts;

/* ------------------------------------------------------------ output */

enum { CL_OK, CL_DUPLICATE, CL_TOO_LATE, CL_MALFORMED_JSON, CL_NOT_AN_OBJECT, CL_MISSING_FIELD, CL_WRONG_TYPE,
       CL_UNKNOWN_TYPE, CL_BAD_TIMESTAMP, CL_TOO_LARGE, CL_BAD_IDENTIFIER, CL_COUNT };
static const char *const class_names[CL_COUNT] = {"ok",           "duplicate",   "too_late",     "malformed_json",
                                                  "not_an_object", "missing_field", "wrong_type", "unknown_type",
                                                  "bad_timestamp", "too_large", "bad_identifier"};

typedef struct Out {
        FILE *f, *lf;
        Buf buf, lbuf;
        uint64_t lines;
        uint64_t classes[CL_COUNT];
        int64_t max_t;     /* largest event time of the valid events emitted */
        bool any;
} Out;

static void out_flush(Out *o)
{
        if (o->buf.len && fwrite(o->buf.p, 1, o->buf.len, o->f) != o->buf.len) {
                perror("riskd-gen: write");
                exit(1);
        }
        o->buf.len = 0;
        if (o->lf && o->lbuf.len && fwrite(o->lbuf.p, 1, o->lbuf.len, o->lf) != o->lbuf.len) {
                perror("riskd-gen: labels");
                exit(1);
        }
        o->lbuf.len = 0;
}

static void out_line(Out *o, const char *s, size_t n, int cls, const char *detail)
{
        buf_put(&o->buf, s, n);
        buf_putc(&o->buf, '\n');
        o->lines++;
        o->classes[cls]++;
        if (o->lf) {
                buf_put_u64(&o->lbuf, o->lines);
                buf_putc(&o->lbuf, '\t');
                buf_puts(&o->lbuf, class_names[cls]);
                buf_putc(&o->lbuf, '\t');
                buf_puts(&o->lbuf, detail);
                buf_putc(&o->lbuf, '\n');
        }
        if (o->buf.len >= OUT_FLUSH)
                out_flush(o);
}

/* ------------------------------------------------------ random mode */

typedef struct Pending {
        int64_t key, t;
        uint64_t seq;
        char *line;
        uint32_t len;
        uint8_t type;
} Pending;

typedef struct Stage {
        Out *out;
        Opts *opt;
        /* reorder buffer (--disorder-ms) */
        Pending *heap;
        size_t nheap, capheap;
        uint64_t seq;
        Rng ord;
        /* recently emitted valid events (--duplicate-rate) */
        Buf recent[RECENT];
        int64_t recent_t[RECENT];
        uint8_t recent_type[RECENT];
        uint32_t nrecent, recent_at;
} Stage;

static bool pend_less(const Pending *a, const Pending *b)
{
        return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static void stage_emit(Stage *s, const char *line, size_t n, int64_t t, uint8_t type)
{
        out_line(s->out, line, n, CL_OK, type_names[type]);
        if (!s->out->any || t > s->out->max_t)
                s->out->max_t = t;
        s->out->any = true;
        if (s->opt->duplicate > 0) {
                Buf *rb = &s->recent[s->recent_at];
                rb->len = 0;
                buf_put(rb, line, n);
                s->recent_t[s->recent_at] = t;
                s->recent_type[s->recent_at] = type;
                s->recent_at = (s->recent_at + 1) % RECENT;
                if (s->nrecent < RECENT)
                        s->nrecent++;
        }
}

static Pending stage_pop(Stage *s)
{
        Pending top = s->heap[0], last = s->heap[--s->nheap];
        size_t i = 0;
        for (;;) {
                size_t c = 2 * i + 1;
                if (c >= s->nheap)
                        break;
                if (c + 1 < s->nheap && pend_less(&s->heap[c + 1], &s->heap[c]))
                        c++;
                if (!pend_less(&s->heap[c], &last))
                        break;
                s->heap[i] = s->heap[c];
                i = c;
        }
        if (s->nheap)
                s->heap[i] = last;
        return top;
}

/* Emit every buffered event whose arrival time has come. */
static void stage_drain(Stage *s, int64_t now)
{
        while (s->nheap && s->heap[0].key <= now) {
                Pending p = stage_pop(s);
                stage_emit(s, p.line, p.len, p.t, p.type);
                free(p.line);
        }
}

/* A valid event of true time t: emitted now, or after a random delay < D. */
static void stage_submit(Stage *s, const Buf *b, int64_t t, uint8_t type, bool no_jitter)
{
        if (s->opt->disorder_ms <= 0) {
                stage_emit(s, b->p, b->len, t, type);
                return;
        }
        if (s->nheap == s->capheap) {
                s->capheap = s->capheap ? s->capheap * 2 : 4096;
                s->heap = xrealloc(s->heap, s->capheap * sizeof(Pending));
        }
        Pending p = {.t = t, .seq = s->seq++, .len = (uint32_t)b->len, .type = type};
        p.key = t + (no_jitter ? 0 : (int64_t)(rng_next(&s->ord) % (uint64_t)s->opt->disorder_ms));
        p.line = xrealloc(NULL, b->len);
        memcpy(p.line, b->p, b->len);
        size_t i = s->nheap++;
        while (i > 0) {
                size_t q = (i - 1) / 2;
                if (!pend_less(&p, &s->heap[q]))
                        break;
                s->heap[i] = s->heap[q];
                i = q;
        }
        s->heap[i] = p;
        stage_drain(s, t);
}

/* ---- faults ---- */

/* Finds "key": and the extent of its scalar value in s. */
static bool js_find(const Buf *s, const char *key, size_t *k0, size_t *v0, size_t *v1)
{
        char pat[64];
        int n = snprintf(pat, sizeof(pat), "\"%s\":", key);
        if (n <= 0 || (size_t)n >= sizeof(pat) || s->len < (size_t)n)
                return false;
        for (size_t i = 0; i + (size_t)n <= s->len; i++) {
                if (memcmp(s->p + i, pat, (size_t)n))
                        continue;
                size_t j = i + (size_t)n;
                *k0 = i;
                *v0 = j;
                if (s->p[j] == '"') {
                        j++;
                        while (j < s->len && s->p[j] != '"')
                                j++;
                        j++;
                } else {
                        while (j < s->len && s->p[j] != ',' && s->p[j] != '}')
                                j++;
                }
                *v1 = j;
                return true;
        }
        return false;
}

/* s with [a, b) replaced by rep */
static void js_splice(Buf *s, size_t a, size_t b, const char *rep, size_t n)
{
        size_t tail = s->len - b;
        if (n > b - a && s->len + (n - (b - a)) > s->cap)
                buf_grow(s, n - (b - a));
        memmove(s->p + a + n, s->p + b, tail);
        memcpy(s->p + a, rep, n);
        s->len = a + n + tail;
}

static void js_set(Buf *s, const char *key, const char *rep)
{
        size_t k0, v0, v1;
        if (js_find(s, key, &k0, &v0, &v1))
                js_splice(s, v0, v1, rep, strlen(rep));
}

static void js_remove(Buf *s, const char *key)
{
        size_t k0, v0, v1;
        if (!js_find(s, key, &k0, &v0, &v1))
                return;
        if (s->p[v1] == ',')
                js_splice(s, k0, v1 + 1, "", 0); /* first member: drop the comma after it */
        else
                js_splice(s, k0 - 1, v1, "", 0); /* otherwise the one before it */
}

typedef struct Malformed {
        const char *name;
        uint8_t cls;
} Malformed;

static const Malformed malformed_kinds[] = {
        {"truncated", CL_MALFORMED_JSON},        {"bad_escape", CL_MALFORMED_JSON},
        {"bad_utf8", CL_MALFORMED_JSON},         {"trailing_comma", CL_MALFORMED_JSON},
        {"duplicate_key", CL_MALFORMED_JSON},    {"array", CL_NOT_AN_OBJECT},
        {"number", CL_NOT_AN_OBJECT},            {"no_event_id", CL_MISSING_FIELD},
        {"no_occurred_at", CL_MISSING_FIELD},    {"empty_uscc", CL_MISSING_FIELD},
        {"no_sample_code", CL_MISSING_FIELD},    {"temp_c_string", CL_WRONG_TYPE},
        {"unknown_enum", CL_WRONG_TYPE},         {"event_id_number", CL_WRONG_TYPE},
        {"unknown_type", CL_UNKNOWN_TYPE},       {"timestamp_word", CL_BAD_TIMESTAMP},
        {"timestamp_bad_date", CL_BAD_TIMESTAMP}, {"timestamp_no_offset", CL_BAD_TIMESTAMP},
        {"uscc_check", CL_BAD_IDENTIFIER},       {"sample_code_short", CL_BAD_IDENTIFIER},
};

/* A side reading for fault templates: a real device (or a made-up one when
 * there is none), a temperature at the setpoint; no device state changes. */
static void side_reading(Gen *g, Buf *b, Rng *r, int64_t t)
{
        Device tmp;
        const Device *d;
        const Ent *e;
        if (g->ndev) {
                d = &g->devs[rng_below(r, g->ndev)];
                e = &g->ents[d->ent];
        } else {
                e = &g->ents[rng_below(r, g->nent)];
                memset(&tmp, 0, sizeof(tmp));
                tmp.asset = AS_CABINET;
                tmp.no = 1;
                tmp.min10 = 0;
                tmp.lim10 = 80;
                tmp.sp = 4;
                tmp.hum = 60;
                d = &tmp;
        }
        Reading rd = {(int)fx_round(d->sp + rng_uniform(r, -0.4, 0.4), 1), d->hum, false, true, false};
        ev_reading(b, r, e, d, t, &rd);
}

static void make_malformed(Gen *g, Rng *r, Buf *b, int64_t t, const Malformed *m)
{
        b->len = 0;
        if (!strcmp(m->name, "no_sample_code")) {
                Fu o = {.kind = FU_SAMPLING, .ent = rng_below(r, g->nent),
                        .serial = 900000000u + rng_below(r, 99999999u), .seed = rng_next(r), .t0 = t};
                g->side = true;
                ev_sampling(g, b, r, &o, t);
                g->side = false;
                js_remove(b, "sample_code");
                return;
        }
        if (!strcmp(m->name, "sample_code_short")) {
                Fu o = {.kind = FU_SAMPLING, .ent = rng_below(r, g->nent),
                        .serial = 900000000u + rng_below(r, 99999999u), .seed = rng_next(r), .t0 = t};
                g->side = true;
                ev_sampling(g, b, r, &o, t);
                g->side = false;
                size_t k0, v0, v1; /* five digits short: DC + 12 digits */
                if (js_find(b, "sample_code", &k0, &v0, &v1))
                        js_splice(b, v1 - 6, v1 - 1, "", 0);
                return;
        }
        side_reading(g, b, r, t);
        if (!strcmp(m->name, "truncated")) {
                b->len = b->len / 4 + rng_below(r, (uint32_t)(b->len / 2));
                /* never end inside a multi-byte character: that would test UTF-8, not truncation */
                while (b->len && ((unsigned char)b->p[b->len - 1] & 0xC0) == 0x80)
                        b->len--;
                if (b->len && (unsigned char)b->p[b->len - 1] >= 0xC0)
                        b->len--;
        } else if (!strcmp(m->name, "bad_escape")) {
                size_t k0, v0, v1;
                if (js_find(b, "asset_ref", &k0, &v0, &v1))
                        js_splice(b, v0 + 1, v0 + 1, "\\q", 2);
        } else if (!strcmp(m->name, "bad_utf8")) {
                size_t k0, v0, v1;
                if (js_find(b, "asset_ref", &k0, &v0, &v1))
                        js_splice(b, v0 + 1, v0 + 1, "\xC3\x28", 2);
        } else if (!strcmp(m->name, "trailing_comma")) {
                js_splice(b, b->len - 1, b->len, ",}", 2);
        } else if (!strcmp(m->name, "duplicate_key")) {
                js_splice(b, b->len - 1, b->len, ",\"temp_c\":4.0}", 14);
        } else if (!strcmp(m->name, "array")) {
                js_splice(b, 0, 0, "[", 1);
                buf_putc(b, ']');
        } else if (!strcmp(m->name, "number")) {
                b->len = 0;
                buf_put_i64(b, t);
        } else if (!strcmp(m->name, "no_event_id")) {
                js_remove(b, "event_id");
        } else if (!strcmp(m->name, "no_occurred_at")) {
                js_remove(b, "occurred_at");
        } else if (!strcmp(m->name, "empty_uscc")) {
                js_set(b, "uscc", "\"\"");
        } else if (!strcmp(m->name, "uscc_check")) {
                /* another check character: every single change is caught (GB 32100-2015) */
                size_t k0, v0, v1;
                if (js_find(b, "uscc", &k0, &v0, &v1)) {
                        char *c = &b->p[v1 - 2];
                        int v = u31_val(*c);
                        *c = U31[(v + 1 + (int)rng_below(r, 30)) % 31];
                }
        } else if (!strcmp(m->name, "temp_c_string")) {
                size_t k0, v0, v1;
                if (js_find(b, "temp_c", &k0, &v0, &v1)) {
                        js_splice(b, v1, v1, "\"", 1);
                        js_splice(b, v0, v0, "\"", 1);
                }
        } else if (!strcmp(m->name, "unknown_enum")) {
                js_set(b, "product_class", "\"lukewarm\"");
        } else if (!strcmp(m->name, "event_id_number")) {
                char num[24];
                snprintf(num, sizeof(num), "%u", 100000000u + rng_below(r, 800000000u));
                js_set(b, "event_id", num);
        } else if (!strcmp(m->name, "unknown_type")) {
                js_set(b, "event_type", "\"weather\"");
        } else if (!strcmp(m->name, "timestamp_word")) {
                js_set(b, "occurred_at", "\"yesterday\"");
        } else if (!strcmp(m->name, "timestamp_bad_date")) {
                js_set(b, "occurred_at", "\"2025-02-30T10:00:00+08:00\"");
        } else if (!strcmp(m->name, "timestamp_no_offset")) {
                size_t k0, v0, v1;
                if (js_find(b, "occurred_at", &k0, &v0, &v1)) {
                        js_splice(b, v1 - 7, v1 - 1, "", 0); /* drop "+08:00" */
                        b->p[v0 + 11] = ' ';
                }
        }
}

static void make_too_large(Gen *g, Rng *r, Buf *b, int64_t t)
{
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        b->len = 0;
        side_reading(g, b, r, t);
        b->len--; /* the closing brace */
        PUT(b, ",\"raw_frame\":\"");
        if (b->len + TOO_LARGE_BYTES + 4 > b->cap)
                buf_grow(b, TOO_LARGE_BYTES + 4);
        uint64_t x = rng_next(r);
        for (uint32_t k = 0; k < TOO_LARGE_BYTES; k++) {
                if ((k & 7) == 0)
                        x = rng_next(r);
                b->p[b->len++] = b64[(x >> ((k & 7) * 6)) & 63];
        }
        PUT(b, "\"}");
}

/* ---- the main loop ---- */

static void gen_population(Gen *g, const Opts *opt)
{
        g->nent = opt->enterprises;
        g->ents = xrealloc(NULL, (size_t)g->nent * sizeof(Ent));
        uint64_t salt = rng_next(&g->rng) % 887503681u;
        uint32_t ndev = 0;
        for (uint32_t i = 0; i < g->nent; i++) {
                ent_init(g, &g->ents[i], i, salt, local_day(opt->start_ms));
                g->ents[i].dev_first = ndev;
                ndev += g->ents[i].ndev;
        }
        g->ndev = ndev;
        g->devs = xrealloc(NULL, (size_t)(ndev ? ndev : 1) * sizeof(Device));
        g->order = xrealloc(NULL, (size_t)(ndev ? ndev : 1) * sizeof(uint32_t));
        g->producers = xrealloc(NULL, (size_t)g->nent * sizeof(uint32_t));
        for (uint32_t i = 0; i < g->nent; i++) {
                const Ent *e = &g->ents[i];
                for (uint8_t k = 0; k < e->ndev; k++)
                        dev_init(g, &g->devs[e->dev_first + k], e, i, (uint8_t)(k + 1));
                if (categories[e->cat].sc && categories[e->cat].food_cat)
                        g->producers[g->nprod++] = i;
        }
        for (uint32_t i = 0; i < ndev; i++)
                g->order[i] = i;
        for (uint32_t i = ndev; i > 1; i--) { /* Fisher–Yates: enterprises interleave */
                uint32_t j = rng_below(&g->rng, i);
                uint32_t t = g->order[i - 1];
                g->order[i - 1] = g->order[j];
                g->order[j] = t;
        }
}

/* The next reading of the round robin; false when every device is in a gap. */
static bool gen_reading(Gen *g, Buf *b, int64_t t)
{
        for (uint32_t tries = 0; tries < g->ndev; tries++) {
                uint32_t di = g->order[g->cursor];
                g->cursor = (g->cursor + 1) % g->ndev;
                Device *d = &g->devs[di];
                if (d->gap_until > t)
                        continue;
                Reading rd;
                dev_step(g, di, t, &rd);
                ev_reading(b, &g->rng, &g->ents[d->ent], d, t, &rd);
                return true;
        }
        return false;
}

static int gen_followup(Gen *g, Buf *b, int64_t t)
{
        Fu o = fu_pop(&g->fu);
        int64_t next = -1;
        int type;
        switch (o.kind) {
        case FU_EXCURSION:
                ev_excursion(g, b, &g->rng, &o, t);
                return T_EXCURSION;
        case FU_INSPECTION:
                next = ev_inspection(g, b, &g->rng, &o, t);
                type = T_INSPECTION;
                break;
        case FU_SAMPLING:
        case FU_SAMPLING_TWIN:
                next = ev_sampling(g, b, &g->rng, &o, t);
                type = T_SAMPLING;
                if (o.kind == FU_SAMPLING_TWIN)
                        next = -1;
                break;
        case FU_COMPLAINT:
                next = ev_complaint(g, b, &g->rng, &o, t);
                type = T_COMPLAINT;
                break;
        default:
                next = ev_recall(g, b, &g->rng, &o, t);
                type = T_RECALL;
                break;
        }
        if (next >= 0) {
                o.stage++;
                o.due = t + next;
                fu_push(&g->fu, o);
        }
        return type;
}

static int gen_business(Gen *g, Buf *b, int64_t t)
{
        Rng *r = &g->rng;
        if (g->fu.n && g->fu.v[0].due <= t)
                return gen_followup(g, b, t);
        static const uint16_t w[] = {380, 120, 160, 90, 120, 12, 6, 10};
        uint32_t k = WPICK(r, w);
        uint32_t ei = rng_below(r, g->nent);
        Ent *e = &g->ents[ei];
        Fu o = {.ent = ei, .t0 = t, .seed = rng_next(r)};
        int64_t next = -1;
        int type;
        switch (k) {
        case 0:
                ev_self_inspection(g, b, r, e, t);
                return T_SELF;
        case 1:
                o.kind = FU_INSPECTION;
                o.serial = ++g->serial[SER_INSPECTION];
                next = ev_inspection(g, b, r, &o, t);
                type = T_INSPECTION;
                break;
        case 2:
                o.kind = FU_SAMPLING;
                o.serial = ++g->serial[SER_SAMPLE];
                next = ev_sampling(g, b, r, &o, t);
                type = T_SAMPLING;
                break;
        case 3:
                o.kind = FU_COMPLAINT;
                o.serial = ++g->serial[SER_TICKET];
                next = ev_complaint(g, b, r, &o, t);
                type = T_COMPLAINT;
                break;
        case 4:
                ev_credit(g, b, r, e, t);
                return T_CREDIT;
        case 5:
                o.kind = FU_RECALL;
                o.serial = ++g->serial[SER_RECALL];
                next = ev_recall(g, b, r, &o, t);
                type = T_RECALL;
                break;
        case 6:
                ev_incident(g, b, r, e, t);
                return T_INCIDENT;
        default: /* a profile change: certification obtained, licence status, scale */
                if (rng_chance(r, 0.5))
                        e->haccp = true;
                else if (rng_chance(r, 0.6))
                        e->status = e->status == 0 ? (uint8_t)(rng_chance(r, 0.5) ? 2 : 3) : 0;
                else
                        e->scale = (uint8_t)(e->scale ? e->scale - 1 : 1);
                ev_profile(g, b, r, e, t);
                return T_ENTERPRISE;
        }
        if (next >= 0) {
                o.stage = 1;
                o.due = t + next;
                fu_push(&g->fu, o);
        }
        return type;
}

static int run_random(Opts *opt, Out *out)
{
        Gen g;
        memset(&g, 0, sizeof(g));
        rng_seed(&g.rng, opt->seed);
        Rng inj;
        rng_seed(&inj, opt->seed ^ 0x5DEECE66DULL);
        Stage st;
        memset(&st, 0, sizeof(st));
        st.out = out;
        st.opt = opt;
        rng_seed(&st.ord, opt->seed ^ 0xA5A5A5A5A5A5A5A5ULL);

        gen_population(&g, opt);
        /* one reading per device per minute, readings ~90% of the events */
        double rate = opt->rate > 0 ? opt->rate : (g.ndev ? (double)g.ndev / 54.0 : 1.0);
        if (rate < 1e-6)
                rate = 1e-6;
        int64_t step_us = (int64_t)(1e6 / rate + 0.5);
        if (step_us < 1)
                step_us = 1;
        double span_ms = (double)opt->events * (double)step_us / 1000.0;
        g.lc_scale = span_ms >= (double)LIFECYCLE_REAL ? 1.0 : span_ms / (double)LIFECYCLE_REAL;
        double iv_min = g.ndev ? (double)g.ndev * (double)step_us / 0.9 / 6e7 : 1.0; /* reading interval, minutes */
        g.p_exc = iv_min / (12 * 60.0);
        g.p_door_long = iv_min / (40 * 60.0);
        g.p_door = iv_min / 60.0 > 0.5 ? 0.5 : iv_min / 60.0;
        g.p_gap = iv_min / (40 * 60.0);

        Buf b = {0}, fb = {0};
        uint64_t k = 0; /* events generated: the event clock */
        double p_mal = opt->malformed, p_big = opt->too_large, p_dup = opt->duplicate, p_late = opt->late;
        for (uint64_t produced = 0; produced < opt->events; produced++) {
                int64_t now = opt->start_ms + (int64_t)(k * (uint64_t)step_us / 1000);
                if (k >= g.nent) {
                        double u = rng_unit(&inj);
                        if (u < p_mal) {
                                const Malformed *m = &malformed_kinds[rng_below(&inj, N_(malformed_kinds))];
                                make_malformed(&g, &inj, &fb, now, m);
                                out_line(out, fb.p, fb.len, m->cls, m->name);
                                continue;
                        }
                        u -= p_mal;
                        if (u < p_big) {
                                make_too_large(&g, &inj, &fb, now);
                                out_line(out, fb.p, fb.len, CL_TOO_LARGE, "coldchain_reading");
                                continue;
                        }
                        u -= p_big;
                        if (u < p_dup && st.nrecent) {
                                uint32_t at = (st.recent_at + RECENT - 1) % RECENT; /* the latest */
                                uint32_t pick = (st.recent_at + RECENT - 1 - rng_below(&inj, st.nrecent)) % RECENT;
                                if (st.recent_t[pick] >= out->max_t - opt->disorder_ms)
                                        at = pick;
                                out_line(out, st.recent[at].p, st.recent[at].len, CL_DUPLICATE,
                                         type_names[st.recent_type[at]]);
                                continue;
                        }
                        u -= p_dup;
                        if (u < p_late && out->any) {
                                int64_t lt = out->max_t - opt->disorder_ms - rng_range(&inj, 1000, 600000);
                                fb.len = 0;
                                side_reading(&g, &fb, &inj, lt);
                                out_line(out, fb.p, fb.len, CL_TOO_LATE, "coldchain_reading");
                                continue;
                        }
                }
                b.len = 0;
                int type;
                if (k < g.nent) {
                        ev_profile(&g, &b, &g.rng, &g.ents[k], now);
                        type = T_ENTERPRISE;
                } else if (g.ndev && rng_chance(&g.rng, 0.9) && gen_reading(&g, &b, now)) {
                        type = T_READING;
                } else {
                        type = gen_business(&g, &b, now);
                }
                g.count[type]++;
                stage_submit(&st, &b, now, (uint8_t)type, k < g.nent);
                k++;
        }
        stage_drain(&st, INT64_MAX);
        if (opt->stats) {
                int64_t last = opt->start_ms + (int64_t)(k ? (k - 1) * (uint64_t)step_us / 1000 : 0);
                fprintf(stderr, "riskd-gen: %u enterprises, %u devices, %.3f events/s of event time, %" PRId64
                                " ms of event time, reading interval %.1f s\n",
                        g.nent, g.ndev, 1e6 / (double)step_us, last - opt->start_ms, iv_min * 60);
                for (int i = 0; i < T_COUNT; i++)
                        fprintf(stderr, "  %-20s %10" PRIu64 " %6.2f%%\n", type_names[i], g.count[i],
                                k ? 100.0 * (double)g.count[i] / (double)k : 0.0);
                for (int i = 0; i < CL_COUNT; i++)
                        fprintf(stderr, "  line %-15s %10" PRIu64 "\n", class_names[i], out->classes[i]);
                fprintf(stderr, "  open lifecycles at the end: %zu\n", g.fu.n);
        }
        free(b.p);
        free(fb.p);
        for (uint32_t i = 0; i < RECENT; i++)
                free(st.recent[i].p);
        free(st.heap);
        free(g.ents);
        free(g.devs);
        free(g.order);
        free(g.producers);
        free(g.fu.v);
        free(g.key.p);
        return 0;
}

/* ------------------------------------------------------------ story */

/*
 * The story of examples/events.jsonl (told in examples/README.md, the grades
 * a regulator expects in examples/story.md): three enterprises over 15
 * months of event time, from their profiles and 2024 on-site evaluations in
 * December 2024.  A (dairy) is found adding melamine: two grade steps, a
 * recall, transfer to the police, licence revocation; B (condiment) has
 * moderate problems early in 2025 and a risk-monitoring problem sample that
 * does not change its official grade; C (frozen food, HACCP) stays clean.  Cold-chain
 * telemetry comes in bursts.  Field values are chosen against the `when:`
 * conditions of the rule files in rules/.  The background noise comes from a fixed
 * seed: --seed and the other options do not change the story.
 */

typedef struct StoryEv {
        int64_t t;
        uint32_t seq;
        uint8_t type;
        char *line;
        size_t len;
} StoryEv;

typedef struct Story {
        Ent ent[3];
        Device dev[4];
        Buf b;
        StoryEv *ev;
        size_t n, cap;
        Rng r;
} Story;

enum { SA, SB, SC };

static void st_push(Story *s, int64_t t)
{
        int type = 0;
        while (type < T_COUNT - 1 && !(s->b.len > 40 && !memcmp(s->b.p + 39, type_names[type], strlen(type_names[type])) &&
                                       s->b.p[39 + strlen(type_names[type])] == '"'))
                type++;
        if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 256;
                s->ev = xrealloc(s->ev, s->cap * sizeof(StoryEv));
        }
        StoryEv *e = &s->ev[s->n];
        e->t = t;
        e->seq = (uint32_t)s->n++;
        e->type = (uint8_t)type;
        e->len = s->b.len;
        e->line = xrealloc(NULL, s->b.len);
        memcpy(e->line, s->b.p, s->b.len);
}

/* the id is patched to story-NNNN in time order at the end */
static void st_begin(Story *s, int type, const Ent *e, int64_t t, const char *source, const char *record,
                     const char *level)
{
        Buf *b = &s->b;
        b->len = 0;
        PUT(b, "{\"event_id\":\"story-0000\",\"event_type\":\"");
        buf_puts(b, type_names[type]);
        PUT(b, "\",\"schema_version\":\"1.0\"");
        jtime(b, "occurred_at", t);
        jtime(b, "recorded_at", type == T_READING ? t + 2 * MS_S : t);
        jstr(b, "source_system", source);
        if (record)
                jstr(b, "source_record_id", record);
        env_enterprise(b, e, level != NULL);
        if (level)
                env_jurisdiction(b, e, level);
}

static void st_end(Story *s, int64_t t)
{
        buf_putc(&s->b, '}');
        st_push(s, t);
}

static void jraw(Buf *b, const char *k, const char *raw)
{
        jkey(b, k);
        buf_puts(b, raw);
}

static void st_profile(Story *s, int who, int64_t t, int64_t clean_since, const char *license_status)
{
        const Ent *e = &s->ent[who];
        Buf *b = &s->b;
        st_begin(s, T_ENTERPRISE, e, t, "SMART_SUPERVISION", e->lic, "county");
        jstr(b, "name", e->fixed_name);
        jstr(b, "license_no", e->lic);
        jstr(b, "region_code", regions[e->region].code);
        jstr(b, "category", categories[e->cat].id);
        jstr(b, "business_format", bf_names[e->fmt]);
        jstr(b, "scale", scale_names[e->scale]);
        jbool(b, "haccp", e->haccp);
        jbool(b, "gmp", e->gmp);
        jbool(b, "special_food", e->special);
        jstr(b, "license_status", license_status);
        jtime(b, "licensed_at", (int64_t)e->licensed_day * MS_D - TZ_MS);
        if (clean_since)
                jtime(b, "clean_record_since", clean_since);
        st_end(s, t);
}

/* a level-1 recall ordered by the regulator: started, or completed */
static void st_recall(Story *s, int who, int64_t t, const char *no, int64_t known, int64_t started, int64_t completed,
                      int quantity, int recovered)
{
        Buf *b = &s->b;
        st_begin(s, T_RECALL, &s->ent[who], t, "ENTERPRISE_PORTAL", no, "county");
        jstr(b, "recall_no", no);
        jstr(b, "recall_level", "level_1");
        jstr(b, "reason", "检出三聚氰胺 (非食品原料)");
        jstr(b, "initiated_by", "ordered");
        jstr(b, "status", completed ? "completed" : "started");
        jtime(b, "risk_known_at", known);
        jtime(b, "started_at", started);
        if (completed)
                jtime(b, "completed_at", completed);
        jint(b, "quantity", quantity);
        jint(b, "recovered_quantity", recovered);
        st_end(s, t);
}

/* 月调度会议纪要 for the previous month, nothing found */
static void st_monthly(Story *s, int who, int64_t t)
{
        const Ent *e = &s->ent[who];
        Buf *b = &s->b;
        int64_t y;
        unsigned m, d;
        civil_from_days(local_day(t), &y, &m, &d);
        int64_t to = days_from_civil(y, m, 1);
        int64_t from = m == 1 ? days_from_civil(y - 1, 12, 1) : days_from_civil(y, m - 1, 1);
        char rec[40];
        snprintf(rec, sizeof(rec), "ZC-%c-%04lld%02u", "ABC"[who], (long long)y, m);
        st_begin(s, T_SELF, e, t, "ENTERPRISE_PORTAL", rec, "county");
        jstr(b, "report_kind", "monthly");
        jtime(b, "period_start", from * MS_D - TZ_MS);
        jtime(b, "period_end", to * MS_D - TZ_MS - MS_S);
        jtime(b, "submitted_at", t);
        jstr(b, "submitter_role", "principal");
        jbool(b, "zero_risk", true);
        jint(b, "issues_found", 0);
        jint(b, "major_issues", 0);
        jint(b, "unrectified_issues", 0);
        jbool(b, "stopped_and_reported", false);
        st_end(s, t);
}

typedef struct InspSpec {
        const char *no, *kind, *trigger, *level, *result, *disposition;
        bool announced, full;
        int inspectors, items, key, gen, safety, dyn10; /* dyn10 < 0: not scored */
        int64_t deadline;                               /* 0: none */
        int completed;                                  /* follow_up only: 0/1; -1 otherwise */
} InspSpec;

static void st_inspection(Story *s, int who, int64_t t, const InspSpec *p)
{
        Buf *b = &s->b;
        st_begin(s, T_INSPECTION, &s->ent[who], t, "SMART_SUPERVISION", p->no, p->level);
        jstr(b, "inspection_no", p->no);
        jstr(b, "inspection_kind", p->kind);
        jstr(b, "trigger", p->trigger);
        jbool(b, "announced", p->announced);
        jint(b, "inspector_count", p->inspectors);
        jstr(b, "checklist_version", "食品生产监督检查要点表(2022版)");
        jbool(b, "full_coverage", p->full);
        jint(b, "items_checked", p->items);
        jint(b, "key_items_nonconforming", p->key);
        jint(b, "general_items_nonconforming", p->gen);
        jint(b, "general_items_affecting_safety", p->safety);
        jstr(b, "result", p->result);
        jbool(b, "imminent_risk", false);
        if (p->dyn10 >= 0)
                jfx(b, "dynamic_risk_score", p->dyn10, 1);
        jstr(b, "disposition", p->disposition);
        if (p->deadline)
                jtime(b, "rectify_deadline", p->deadline);
        if (p->completed >= 0)
                jbool(b, "rectification_completed", p->completed);
        jbool(b, "obstructed", false);
        st_end(s, t);
}

typedef struct SampleSpec {
        const char *code, *task, *olevel, *org, *stage, *site, *food_cat, *product, *batch, *production_date,
                *storage, *lab, *conclusion;
        int64_t sampled, issued, notified;
        /* failures */
        const char *hazard, *item, *measured, *limit, *limit_value, *unit, *confirmation, *case_no;
        int64_t case_opened, closed;
        bool traced;
} SampleSpec;

static void st_sampling(Story *s, int who, int64_t t, const SampleSpec *p)
{
        Buf *b = &s->b;
        st_begin(s, T_SAMPLING, &s->ent[who], t, "NIFDC_SAMPLING", p->code, p->olevel);
        jstr(b, "sample_code", p->code);
        jstr(b, "task_category", p->task);
        jstr(b, "organizing_org", p->org);
        jstr(b, "organizing_level", p->olevel);
        jstr(b, "sampling_stage", p->stage);
        jstr(b, "site_type", p->site);
        jstr(b, "party_role", "sampled_entity");
        jstr(b, "food_category", p->food_cat);
        PUT(b, ",\"product\":{\"name\":\"");
        buf_puts(b, p->product);
        PUT(b, "\",\"brand\":\"某某\",\"batch_no\":\"");
        buf_puts(b, p->batch);
        PUT(b, "\",\"production_date\":\"");
        buf_puts(b, p->production_date);
        PUT(b, "\",\"imported\":false");
        jstr(b, "storage_at_sampling", p->storage);
        buf_putc(b, '}');
        jstr(b, "lab", p->lab);
        jtime(b, "sampled_at", p->sampled);
        jtime(b, "report_issued_at", p->issued);
        jtime(b, "notified_at", p->notified);
        jstr(b, "conclusion", p->conclusion);
        if (p->hazard) {
                jint(b, "failed_items_count", 1);
                jstr(b, "hazard", p->hazard);
                jstr(b, "item", p->item);
                jraw(b, "measured", p->measured);
                jstr(b, "limit", p->limit);
                if (p->limit_value)
                        jraw(b, "limit_value", p->limit_value);
                jstr(b, "unit", p->unit);
        }
        if (p->confirmation) {
                PUT(b, ",\"retest\":{\"requested\":false}");
                jstr(b, "confirmation_status", p->confirmation);
        }
        if (p->case_no) {
                PUT(b, ",\"disposal_case\":{\"case_no\":\"");
                buf_puts(b, p->case_no);
                buf_putc(b, '"');
                jtime(b, "opened_at", p->case_opened);
                jbool(b, "traced_upstream", p->traced);
                jbool(b, "traced_downstream", p->traced);
                if (p->closed)
                        jtime(b, "closed_at", p->closed);
                buf_putc(b, '}');
        }
        st_end(s, t);
}

typedef struct TicketSpec {
        const char *no, *kind, *channel, *acceptance, *issue, *verification;
        int64_t received, decided, closed;
        int persons, case_filed; /* case_filed < 0: not yet decided */
        bool fs_related;
} TicketSpec;

static void st_complaint(Story *s, int who, int64_t t, const TicketSpec *p)
{
        Buf *b = &s->b;
        st_begin(s, T_COMPLAINT, &s->ent[who], t, "NATIONAL_12315", p->no, "county");
        jstr(b, "ticket_no", p->no);
        jstr(b, "kind", p->kind);
        jstr(b, "channel", p->channel);
        jtime(b, "received_at", p->received);
        jstr(b, "acceptance", p->acceptance);
        if (p->decided)
                jtime(b, "acceptance_decided_at", p->decided);
        jstr(b, "issue_category", p->issue);
        jbool(b, "food_safety_related", p->fs_related);
        jint(b, "persons_affected", p->persons);
        jbool(b, "real_name", true);
        jstr(b, "verification", p->verification);
        if (p->case_filed >= 0)
                jbool(b, "case_filed", p->case_filed);
        if (p->closed)
                jtime(b, "closed_at", p->closed);
        st_end(s, t);
}

static void st_credit_class(Story *s, int who, int64_t t, const char *cls)
{
        Buf *b = &s->b;
        char rec[40];
        snprintf(rec, sizeof(rec), "XYFL-%c-%u", "ABC"[who], year_of(t));
        st_begin(s, T_CREDIT, &s->ent[who], t, "GSXT", rec, "national");
        jstr(b, "record_type", "credit_risk_class");
        jstr(b, "credit_class", cls);
        jtime(b, "valid_from", t);
        jtime(b, "valid_to", t + 30 * MS_D);
        st_end(s, t);
}

/*
 * Readings of device di every step minutes in [from, to]: noise around the
 * setpoint, or the temperatures given (tenths, INT16_MIN: noise) for the
 * readings from `at` on; doors opened at the listed times.
 */
static void st_burst(Story *s, int di, int64_t from, int64_t to, int step, int64_t at, const int16_t *temps,
                     size_t ntemps, const int64_t *doors, size_t ndoors)
{
        Device *d = &s->dev[di];
        const Ent *e = &s->ent[d->ent];
        for (int64_t t = from; t <= to; t += step * MS_M) {
                d->x = 0.6 * d->x + 0.25 * rng_normal(&s->r);
                int temp10 = (int)fx_round(d->sp + d->x, 1);
                bool door = false;
                for (size_t k = 0; k < ndoors; k++)
                        if (doors[k] == t)
                                door = true;
                if (door)
                        temp10 += d->pclass == PC_FROZEN ? 12 : 25;
                if (temps && t >= at && (size_t)((t - at) / (step * MS_M)) < ntemps &&
                    temps[(t - at) / (step * MS_M)] != INT16_MIN)
                        temp10 = temps[(t - at) / (step * MS_M)];
                if (temp10 > d->lim10 && (!temps || t < at))
                        temp10 = d->lim10 - 3; /* background noise never crosses the limit */
                int h = d->hum + (int)rng_below(&s->r, 3) - 1;
                d->hum = (uint8_t)(h < 60 ? 60 : h > 95 ? 95 : h);
                Reading rd = {temp10, d->hum, door, true, temp10 > d->lim10};
                Buf *b = &s->b;
                b->len = 0;
                st_begin(s, T_READING, e, t, "COLDCHAIN_IOT", NULL, NULL);
                /* the body of ev_reading, without its envelope */
                Buf body = {0};
                Rng unused;
                rng_seed(&unused, 0);
                ev_reading(&body, &unused, e, d, t, &rd);
                size_t k0, v0, v1;
                js_find(&body, "device_id", &k0, &v0, &v1);
                buf_put(b, body.p + k0 - 1, body.len - (k0 - 1));
                free(body.p);
                st_push(s, t);
        }
}

static int story_cmp(const void *a, const void *b)
{
        const StoryEv *x = a, *y = b;
        if (x->t != y->t)
                return x->t < y->t ? -1 : 1;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void story_setup(Story *s)
{
        static const struct {
                const char *name;
                uint8_t region, cat, scale;
                bool haccp;
                int64_t y, m, d;
                uint32_t serial;
        } who[3] = {
                {"新郑某乳业有限公司", RG_XINZHENG, CAT_DAIRY, SC_MEDIUM, false, 2016, 8, 15, 37},
                {"中牟某酿造食品有限公司", RG_ZHONGMOU, CAT_CONDIMENT, SC_SMALL, false, 2018, 4, 9, 112},
                {"郑州某速冻食品股份有限公司", RG_SHANGJIE, CAT_FROZEN_FOOD, SC_LARGE, true, 2012, 11, 20, 5},
        };
        for (int i = 0; i < 3; i++) {
                Ent *e = &s->ent[i];
                memset(e, 0, sizeof(*e));
                e->fixed_name = who[i].name;
                e->region = who[i].region;
                e->cat = who[i].cat;
                e->scale = who[i].scale;
                e->fmt = BF_PRODUCTION;
                e->haccp = who[i].haccp;
                e->licensed_day = (int32_t)days_from_civil(who[i].y, (unsigned)who[i].m, (unsigned)who[i].d);
                e->clean_day = -1;
                e->static_score = -1;
                uscc_make(e->uscc, "91", regions[e->region].code, 7700u + (uint32_t)i * 131u, 424242u, true);
                license_make(e->lic, &categories[e->cat], regions[e->region].code, who[i].serial);
        }
        static const struct {
                uint8_t ent, asset, pclass, no;
                double sp;
                const char *plate;
        } dv[4] = {
                {SA, AS_ROOM, PC_CHILLED, 1, 3.8, ""},
                {SA, AS_TRUCK, PC_CHILLED, 2, 3.5, "L7K26"},
                {SC, AS_ROOM, PC_FROZEN, 1, -20.2, ""},
                {SC, AS_TRUCK, PC_FROZEN, 2, -19.6, "D3F58"},
        };
        for (int i = 0; i < 4; i++) {
                Device *d = &s->dev[i];
                memset(d, 0, sizeof(*d));
                d->ent = dv[i].ent;
                d->asset = dv[i].asset;
                d->pclass = dv[i].pclass;
                d->no = dv[i].no;
                d->sp = dv[i].sp;
                d->min10 = d->pclass == PC_FROZEN ? INT16_MIN : 0;
                d->lim10 = d->pclass == PC_FROZEN ? -180 : 80;
                d->hum = d->asset == AS_ROOM ? 86 : 80;
                memcpy(d->plate, dv[i].plate, strlen(dv[i].plate));
        }
        rng_seed(&s->r, 20250101);
}

static int run_story(Out *out)
{
        Story s;
        memset(&s, 0, sizeof(s));
        story_setup(&s);
        const char *zz_county_lab = "河南省食品检验研究院";

        /* ---- profiles, and each one's 2024 on-site evaluation (the 2025 grade) ---- */
        st_profile(&s, SA, cst(2024, 12, 2, 9, 0), 0, "valid");
        st_profile(&s, SB, cst(2024, 12, 2, 9, 10), 0, "valid");
        st_profile(&s, SC, cst(2024, 12, 2, 9, 20), cst(2019, 1, 1, 0, 0), "valid");
        st_inspection(&s, SA, cst(2024, 12, 10, 10, 0),
                      &(InspSpec){.no = "JC20241210-A00", .kind = "routine", .trigger = "annual_plan",
                                  .level = "county", .result = "compliant", .disposition = "none",
                                  .announced = true, .full = true, .inspectors = 2, .items = 48, .dyn10 = 100,
                                  .completed = -1});
        st_inspection(&s, SB, cst(2024, 12, 11, 10, 0),
                      &(InspSpec){.no = "JC20241211-B00", .kind = "routine", .trigger = "annual_plan",
                                  .level = "county", .result = "compliant", .disposition = "none",
                                  .announced = true, .full = true, .inspectors = 2, .items = 44, .dyn10 = 140,
                                  .completed = -1});
        st_inspection(&s, SC, cst(2024, 12, 12, 10, 0),
                      &(InspSpec){.no = "JC20241212-C00", .kind = "routine", .trigger = "annual_plan",
                                  .level = "municipal", .result = "compliant", .disposition = "none",
                                  .announced = true, .full = true, .inspectors = 2, .items = 56, .dyn10 = 50,
                                  .completed = -1});

        /* ---- monthly 月调度 minutes, Feb 2025 – Feb 2026 (A's until its licence is revoked) ---- */
        for (int k = 0; k < 13; k++) {
                int64_t y = 2025 + (1 + k) / 12;
                unsigned m = (unsigned)((1 + k) % 12 + 1);
                if (k < 5)
                        st_monthly(&s, SA, cst(y, m, 3, 16, 0));
                st_monthly(&s, SB, cst(y, m, 4, 17, 0));
                st_monthly(&s, SC, cst(y, m, 3, 9, 30));
        }

        /* ---- B: moderate problems early in 2025, then a clean year ---- */
        st_inspection(&s, SB, cst(2025, 1, 8, 10, 0),
                      &(InspSpec){.no = "JC20250108-B01", .kind = "routine", .trigger = "annual_plan",
                                  .level = "county", .result = "basically_compliant",
                                  .disposition = "rectify_deadline", .announced = true, .full = true,
                                  .inspectors = 2, .items = 42, .gen = 3, .safety = 1, .dyn10 = 220,
                                  .deadline = cst(2025, 1, 23, 0, 0), .completed = -1});
        TicketSpec tb = {.no = "12315202501100004518", .kind = "complaint", .channel = "12315_web",
                         .acceptance = "pending", .issue = "foreign_matter", .verification = "pending",
                         .received = cst(2025, 1, 10, 9, 15), .case_filed = -1, .fs_related = true};
        st_complaint(&s, SB, tb.received, &tb);
        tb.acceptance = "accepted";
        tb.decided = cst(2025, 1, 13, 10, 0);
        st_complaint(&s, SB, tb.decided, &tb);
        st_inspection(&s, SB, cst(2025, 1, 21, 14, 0),
                      &(InspSpec){.no = "JC20250121-B02", .kind = "follow_up", .trigger = "annual_plan",
                                  .level = "county", .result = "compliant", .disposition = "none",
                                  .announced = true, .full = false, .inspectors = 2, .items = 3, .dyn10 = -1,
                                  .completed = 1});
        tb.verification = "substantiated";
        tb.case_filed = 0;
        tb.closed = cst(2025, 1, 24, 16, 0);
        st_complaint(&s, SB, tb.closed, &tb);
        st_sampling(&s, SB, cst(2025, 2, 5, 10, 0),
                    &(SampleSpec){.code = "DC25410100000000031", .task = "risk_monitoring", .olevel = "municipal",
                                  .org = "郑州市市场监督管理局", .stage = "production", .site = "factory_warehouse",
                                  .food_cat = "调味品", .product = "酿造酱油", .batch = "20241206A",
                                  .production_date = "2024-12-06", .storage = "ambient", .lab = zz_county_lab,
                                  .conclusion = "problem", .sampled = cst(2025, 1, 9, 9, 40),
                                  .issued = cst(2025, 2, 3, 0, 0), .notified = cst(2025, 2, 5, 10, 0),
                                  .hazard = "organic_contaminant", .item = "3-氯-1,2-丙二醇", .measured = "0.86",
                                  .limit = "≤0.4", .limit_value = "0.4", .unit = "mg/kg"});
        st_inspection(&s, SB, cst(2025, 6, 18, 10, 0),
                      &(InspSpec){.no = "JC20250618-B03", .kind = "key", .trigger = "annual_plan",
                                  .level = "county", .result = "compliant", .disposition = "none",
                                  .announced = true, .full = true, .inspectors = 2, .items = 44, .dyn10 = 90,
                                  .completed = -1});
        st_sampling(&s, SB, cst(2025, 9, 24, 10, 30),
                    &(SampleSpec){.code = "DC25410000000000152", .task = "supervision", .olevel = "provincial",
                                  .org = "河南省市场监督管理局", .stage = "production", .site = "factory_warehouse",
                                  .food_cat = "调味品", .product = "酿造酱油", .batch = "20250806B",
                                  .production_date = "2025-08-06", .storage = "ambient", .lab = zz_county_lab,
                                  .conclusion = "pass", .sampled = cst(2025, 8, 28, 10, 0),
                                  .issued = cst(2025, 9, 22, 0, 0), .notified = cst(2025, 9, 24, 10, 30)});
        st_inspection(&s, SB, cst(2025, 11, 12, 14, 0),
                      &(InspSpec){.no = "JC20251112-B04", .kind = "double_random", .trigger = "double_random_draw",
                                  .level = "county", .result = "compliant", .disposition = "none",
                                  .announced = true, .full = true, .inspectors = 2, .items = 44, .dyn10 = 65,
                                  .completed = -1});
        st_credit_class(&s, SB, cst(2026, 2, 26, 9, 0), "A");

        /* ---- A: the dairy that degrades to D ---- */
        st_inspection(&s, SA, cst(2025, 3, 11, 10, 0),
                      &(InspSpec){.no = "JC20250311-A01", .kind = "routine", .trigger = "annual_plan",
                                  .level = "county", .result = "basically_compliant",
                                  .disposition = "rectify_deadline", .announced = true, .full = true,
                                  .inspectors = 2, .items = 48, .gen = 2, .dyn10 = 125,
                                  .deadline = cst(2025, 3, 26, 0, 0), .completed = -1});
        st_inspection(&s, SA, cst(2025, 3, 28, 15, 0),
                      &(InspSpec){.no = "JC20250328-A02", .kind = "follow_up", .trigger = "annual_plan",
                                  .level = "county", .result = "compliant", .disposition = "none",
                                  .announced = true, .full = false, .inspectors = 2, .items = 2, .dyn10 = -1,
                                  .completed = 1});
        /* 04-15: the chilled cold room's compressor fails: above 8 °C from 09:40 to 10:25 */
        {
                static const int16_t exc[] = {58, 71, 79, 84, 90, 96, 101, 104, 102, 99, 93, 88, 83, 76, 65, 54, 48};
                st_burst(&s, 0, cst(2025, 4, 15, 8, 0), cst(2025, 4, 15, 12, 30), 5, cst(2025, 4, 15, 9, 25), exc,
                         N_(exc), NULL, 0);
                int64_t t = cst(2025, 4, 15, 10, 50);
                Buf *b = &s.b;
                st_begin(&s, T_EXCURSION, &s.ent[SA], t, "COLDCHAIN_IOT", NULL, NULL);
                PUT(b, ",\"device_id\":\"");
                put_device_id(b, &s.ent[SA], &s.dev[0]);
                buf_putc(b, '"');
                jstr(b, "kind", "over_temp");
                jtime(b, "start", cst(2025, 4, 15, 9, 40));
                jtime(b, "end", cst(2025, 4, 15, 10, 30));
                jfx(b, "max_temp_c", 104, 1);
                jint(b, "duration_min", 50);
                jbool(b, "acknowledged_by_enterprise", false);
                jbool(b, "affected_goods_tested", false);
                st_end(&s, t);
        }
        SampleSpec sa = {.code = "DC25410000000000087", .task = "supervision", .olevel = "provincial",
                         .org = "河南省市场监督管理局", .stage = "production", .site = "factory_warehouse",
                         .food_cat = "乳制品", .product = "灭菌乳", .batch = "20250402B",
                         .production_date = "2025-04-02", .storage = "ambient", .lab = zz_county_lab,
                         .conclusion = "fail", .sampled = cst(2025, 4, 10, 9, 30), .issued = cst(2025, 5, 4, 0, 0),
                         .notified = cst(2025, 5, 6, 10, 0), .hazard = "illegal_addition", .item = "三聚氰胺",
                         .measured = "8.6", .limit = "≤2.5", .limit_value = "2.5", .unit = "mg/kg",
                         .confirmation = "pending"};
        st_sampling(&s, SA, sa.notified, &sa);
        TicketSpec ta = {.no = "12315202505080017342", .kind = "complaint", .channel = "12315_app",
                         .acceptance = "pending", .issue = "spoiled", .verification = "pending",
                         .received = cst(2025, 5, 8, 19, 30), .case_filed = -1, .fs_related = true};
        st_complaint(&s, SA, ta.received, &ta);
        ta.acceptance = "accepted";
        ta.decided = cst(2025, 5, 9, 10, 0);
        st_complaint(&s, SA, ta.decided, &ta);
        sa.confirmation = "confirmed";
        sa.case_no = "HC25410000000000087";
        sa.case_opened = cst(2025, 5, 16, 9, 0);
        st_sampling(&s, SA, sa.case_opened, &sa);
        /* the ordered level-1 recall: started within 24 hours, completed in 10 days */
        st_recall(&s, SA, cst(2025, 5, 16, 15, 0), "ZH2025410184000087", cst(2025, 5, 16, 9, 0),
                  cst(2025, 5, 16, 15, 0), 0, 18600, 0);
        st_recall(&s, SA, cst(2025, 5, 26, 17, 0), "ZH2025410184000087", cst(2025, 5, 16, 9, 0),
                  cst(2025, 5, 16, 15, 0), cst(2025, 5, 26, 17, 0), 18600, 17940);
        ta.verification = "substantiated";
        ta.case_filed = 0;
        ta.closed = cst(2025, 5, 20, 16, 0);
        st_complaint(&s, SA, ta.closed, &ta);
        TicketSpec tr = {.no = "12315202505220021906", .kind = "report", .channel = "12315_hotline",
                         .acceptance = "pending", .issue = "illness", .verification = "pending",
                         .received = cst(2025, 5, 22, 21, 10), .persons = 4, .case_filed = -1, .fs_related = true};
        st_complaint(&s, SA, tr.received, &tr);
        st_inspection(&s, SA, cst(2025, 5, 27, 8, 30),
                      &(InspSpec){.no = "FX20250527-A03", .kind = "flying", .trigger = "sampling_failure",
                                  .level = "provincial", .result = "noncompliant", .disposition = "transfer_police",
                                  .announced = false, .full = false, .inspectors = 4, .items = 22, .key = 1,
                                  .gen = 3, .dyn10 = 360, .deadline = cst(2025, 6, 11, 0, 0), .completed = -1});
        tr.acceptance = "accepted";
        tr.decided = cst(2025, 5, 23, 9, 0);
        tr.verification = "substantiated";
        tr.case_filed = 1;
        tr.closed = cst(2025, 6, 3, 11, 0);
        st_complaint(&s, SA, tr.closed, &tr);
        st_inspection(&s, SA, cst(2025, 6, 9, 15, 0),
                      &(InspSpec){.no = "FX20250527-A03-FC", .kind = "follow_up", .trigger = "sampling_failure",
                                  .level = "provincial", .result = "compliant", .disposition = "none",
                                  .announced = true, .full = false, .inspectors = 2, .items = 4, .dyn10 = -1,
                                  .completed = 1});
        {
                int64_t t = cst(2025, 6, 20, 9, 0);
                Buf *b = &s.b;
                st_begin(&s, T_CREDIT, &s.ent[SA], t, "GSXT", "郑市监罚〔2025〕236号", "municipal");
                jstr(b, "record_type", "administrative_penalty");
                PUT(b, ",\"penalty\":{\"decision_no\":\"郑市监罚〔2025〕236号\"");
                jstr(b, "legal_basis", "食品安全法第一百二十三条第一款第(一)项");
                jstr(b, "most_severe", "revoke");
                jint(b, "fine_cny", 580000);
                jint(b, "goods_value_cny", 29000);
                jbool(b, "intentional", true);
                jbool(b, "serious_circumstances", true);
                buf_putc(b, '}');
                jtime(b, "valid_from", t);
                st_end(&s, t);
        }
        /* the licensing system records the revocation (FSL Art.123) */
        st_profile(&s, SA, cst(2025, 6, 23, 10, 0), 0, "revoked");
        sa.traced = true;
        sa.closed = cst(2025, 7, 25, 17, 0);
        st_sampling(&s, SA, sa.closed, &sa);

        /* ---- C: clean throughout ---- */
        int64_t c_doors1[] = {cst(2025, 3, 6, 14, 0)};
        st_burst(&s, 2, cst(2025, 3, 6, 13, 0), cst(2025, 3, 6, 15, 0), 10, 0, NULL, 0, c_doors1, N_(c_doors1));
        st_sampling(&s, SC, cst(2025, 3, 19, 10, 0),
                    &(SampleSpec){.code = "DC25000000000000044", .task = "supervision", .olevel = "national",
                                  .org = "国家市场监督管理总局", .stage = "production", .site = "factory_warehouse",
                                  .food_cat = "速冻食品", .product = "速冻水饺", .batch = "20250210C",
                                  .production_date = "2025-02-10", .storage = "frozen", .lab = zz_county_lab,
                                  .conclusion = "pass", .sampled = cst(2025, 2, 24, 14, 0),
                                  .issued = cst(2025, 3, 17, 0, 0), .notified = cst(2025, 3, 19, 10, 0)});
        st_inspection(&s, SC, cst(2025, 6, 11, 9, 30),
                      &(InspSpec){.no = "JC20250611-C01", .kind = "double_random", .trigger = "double_random_draw",
                                  .level = "municipal", .result = "compliant", .disposition = "none",
                                  .announced = true, .full = true, .inspectors = 3, .items = 56, .dyn10 = 50,
                                  .completed = -1});
        int64_t c_doors2[] = {cst(2025, 8, 20, 7, 0), cst(2025, 8, 20, 7, 10)};
        st_burst(&s, 3, cst(2025, 8, 20, 5, 30), cst(2025, 8, 20, 8, 30), 10, 0, NULL, 0, c_doors2, N_(c_doors2));
        st_sampling(&s, SC, cst(2025, 10, 15, 10, 0),
                    &(SampleSpec){.code = "DC25410000000000219", .task = "supervision", .olevel = "provincial",
                                  .org = "河南省市场监督管理局", .stage = "production", .site = "factory_warehouse",
                                  .food_cat = "速冻食品", .product = "速冻汤圆", .batch = "20250830A",
                                  .production_date = "2025-08-30", .storage = "frozen", .lab = zz_county_lab,
                                  .conclusion = "pass", .sampled = cst(2025, 9, 18, 9, 0),
                                  .issued = cst(2025, 10, 13, 0, 0), .notified = cst(2025, 10, 15, 10, 0)});
        {
                int64_t t = cst(2025, 11, 20, 9, 0);
                Buf *b = &s.b;
                st_begin(&s, T_CREDIT, &s.ent[SC], t, "GSXT", "HACCP-2025-1120", "county");
                jstr(b, "record_type", "certification");
                jtime(b, "valid_from", t);
                jtime(b, "valid_to", cst(2028, 11, 19, 0, 0));
                st_end(&s, t);
        }
        st_burst(&s, 2, cst(2025, 12, 18, 9, 0), cst(2025, 12, 18, 11, 0), 10, 0, NULL, 0, NULL, 0);
        st_credit_class(&s, SC, cst(2026, 2, 25, 9, 0), "A");
        st_burst(&s, 2, cst(2026, 2, 27, 14, 0), cst(2026, 2, 27, 15, 0), 10, 0, NULL, 0, NULL, 0);

        qsort(s.ev, s.n, sizeof(StoryEv), story_cmp);
        for (size_t i = 0; i < s.n; i++) {
                StoryEv *e = &s.ev[i];
                for (size_t k = 0, v = i + 1; k < 4; k++, v /= 10)
                        e->line[22 - k] = (char)('0' + v % 10); /* {"event_id":"story-NNNN" */
                out_line(out, e->line, e->len, CL_OK, type_names[e->type]);
                free(e->line);
        }
        free(s.ev);
        free(s.b.p);
        return 0;
}

/* ------------------------------------------------------------ main */

static void usage(FILE *f)
{
        fputs("usage: riskd-gen [OPTIONS] > events.jsonl\n"
              "\n"
              "  --enterprises N        enterprises, each first registered by a profile event (1000)\n"
              "  --events M             lines to write, all included (1000000)\n"
              "  --seed S               PRNG seed (1); the same arguments give the same bytes\n"
              "  --start TIME           event time of the first event, RFC 3339\n"
              "                         (2025-01-01T00:00:00+08:00)\n"
              "  --rate-per-sec R       events per second of event time (default: one reading\n"
              "                         per device per minute, readings being ~90% of events)\n"
              "  --disorder-ms D        emit each event up to D ms (exclusive) behind the\n"
              "                         largest event time emitted before it (0)\n"
              "  --late-rate P          share of lines that are events more than D behind it (0)\n"
              "  --malformed-rate P     share of malformed lines, every reject reason (0)\n"
              "  --too-large-rate P     share of >1 MiB documents (0)\n"
              "  --duplicate-rate P     share of lines repeating an earlier event's bytes (0)\n"
              "  --labels FILE          write 'LINE<TAB>CLASS<TAB>DETAIL' per output line\n"
              "  --stats                print the event mix to stderr\n"
              "  --story                print the fixed story of examples/events.jsonl instead\n",
              f);
}

static int parse_u64(const char *s, uint64_t *ret)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s || *end || *s == '-')
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_double(const char *s, double lo, double hi, double *ret)
{
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || end == s || *end || !(v >= lo && v <= hi))
                return -EINVAL;
        *ret = v;
        return 0;
}

int main(int argc, char **argv)
{
        Opts opt = {.enterprises = 1000, .events = 1000000, .seed = 1};
        time_parse("2025-01-01T00:00:00+08:00", &opt.start_ms);
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i], *v = NULL;
                char name[32];
                const char *eq = strchr(a, '=');
                size_t n = eq ? (size_t)(eq - a) : strlen(a);
                if (n >= sizeof(name)) {
                        fprintf(stderr, "riskd-gen: unknown option '%s'\n", a);
                        return 2;
                }
                memcpy(name, a, n);
                name[n] = 0;
                bool flag = !strcmp(name, "--story") || !strcmp(name, "--stats") || !strcmp(name, "--help") ||
                            !strcmp(name, "-h");
                if (!flag) {
                        v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
                        if (!v) {
                                fprintf(stderr, "riskd-gen: %s needs a value\n", name);
                                return 2;
                        }
                }
                uint64_t u = 0;
                int r = 0;
                if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
                        usage(stdout);
                        return 0;
                } else if (!strcmp(name, "--story")) {
                        opt.story = true;
                } else if (!strcmp(name, "--stats")) {
                        opt.stats = true;
                } else if (!strcmp(name, "--enterprises")) {
                        r = parse_u64(v, &u);
                        if (!r && (u < 1 || u > 100000000))
                                r = -EINVAL;
                        opt.enterprises = (uint32_t)u;
                } else if (!strcmp(name, "--events")) {
                        r = parse_u64(v, &opt.events);
                } else if (!strcmp(name, "--seed")) {
                        r = parse_u64(v, &opt.seed);
                } else if (!strcmp(name, "--start")) {
                        r = time_parse(v, &opt.start_ms);
                } else if (!strcmp(name, "--rate-per-sec")) {
                        r = parse_double(v, 1e-6, 1e9, &opt.rate);
                } else if (!strcmp(name, "--disorder-ms")) {
                        r = parse_u64(v, &u);
                        if (!r && u > 365ull * 24 * 3600 * 1000)
                                r = -EINVAL;
                        opt.disorder_ms = (int64_t)u;
                } else if (!strcmp(name, "--late-rate")) {
                        r = parse_double(v, 0, 1, &opt.late);
                } else if (!strcmp(name, "--malformed-rate")) {
                        r = parse_double(v, 0, 1, &opt.malformed);
                } else if (!strcmp(name, "--too-large-rate")) {
                        r = parse_double(v, 0, 1, &opt.too_large);
                } else if (!strcmp(name, "--duplicate-rate")) {
                        r = parse_double(v, 0, 1, &opt.duplicate);
                } else if (!strcmp(name, "--labels")) {
                        opt.labels = v;
                } else {
                        fprintf(stderr, "riskd-gen: unknown option '%s'\n", name);
                        usage(stderr);
                        return 2;
                }
                if (r) {
                        fprintf(stderr, "riskd-gen: bad value '%s' for %s\n", v, name);
                        return 2;
                }
        }
        if (opt.late + opt.malformed + opt.too_large + opt.duplicate > 1) {
                fputs("riskd-gen: the fault rates add up to more than 1\n", stderr);
                return 2;
        }
        Out out;
        memset(&out, 0, sizeof(out));
        out.f = stdout;
        if (opt.labels) {
                out.lf = fopen(opt.labels, "w");
                if (!out.lf) {
                        fprintf(stderr, "riskd-gen: %s: %s\n", opt.labels, strerror(errno));
                        return 1;
                }
        }
        int r = opt.story ? run_story(&out) : run_random(&opt, &out);
        out_flush(&out);
        free(out.buf.p);
        free(out.lbuf.p);
        if (out.lf && fclose(out.lf)) {
                perror("riskd-gen: labels");
                return 1;
        }
        if (fflush(stdout) || ferror(stdout)) {
                perror("riskd-gen: write");
                return 1;
        }
        return r;
}
