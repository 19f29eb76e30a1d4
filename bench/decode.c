/*
 * Micro-benchmark of the event decoder (src/codec/decode.c) on the
 * high-volume stream: cold-chain readings (coldchain_reading of the shipped
 * schema) of about 290 bytes, a nested field (required_range_c.max) included.
 *
 * Prints events/s (and MB/s) as the median of 5 runs on one thread, timed
 * by the thread's CPU clock (robust against other load on the machine;
 * the variants take turns within each run), for:
 *   - the full decode, envelope first (how upstream systems write it);
 *   - the full decode, envelope last (the type known only at the end);
 *   - a baseline: the same decoder with a schema none of whose field
 *     paths occur in the events, i.e. RFC 8259 validation plus the four
 *     envelope values (the floor of any correct decoder of these events);
 *     the difference to the full decode is the cost of matching and
 *     converting the fields;
 * and, for the number conversion alone, decode_number_parse against
 * strtod_l in the C locale on the events' numbers.
 *
 * The schema is built by hand (7 event types, like the shipped one) so the
 * benchmark does not depend on the rule compiler.  Figures only; nothing is
 * asserted (run it from scripts, compare ratios within one run).
 *
 * Usage: bench-decode [events-per-run]
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "include/riskd/decode.h"
#include "include/riskd/util.h"

#define RUNS 5
#define VARIANTS 1024

typedef struct BField {
        const char *path;
        FieldType type;
        const char *values; /* FT_ENUM: comma-separated */
} BField;

static Arena ar;

static EnumDef *bench_enum(const char *name, const char *csv)
{
        EnumDef *e = arena_alloc(&ar, sizeof(*e));
        e->name = arena_strdup(&ar, name);
        e->values = arena_alloc(&ar, RULES_MAX_ENUM * sizeof(char *));
        for (const char *p = csv;;) {
                const char *c = strchr(p, ',');
                size_t n = c ? (size_t)(c - p) : strlen(p);
                e->values[e->nvalues++] = arena_strndup(&ar, p, n);
                if (!c)
                        break;
                p = c + 1;
        }
        return e;
}

static uint32_t bench_slot(Schema *s, const char *path, FieldType t, const EnumDef *en)
{
        for (uint32_t i = 0; i < s->nslots; i++)
                if (s->slot_type[i] == t && s->slot_enum[i] == en && strcmp(s->slot_path[i], path) == 0)
                        return i;
        uint32_t i = s->nslots++;
        s->slot_type[i] = t;
        s->slot_enum[i] = en;
        s->slot_path[i] = arena_strdup(&ar, path);
        return i;
}

static void bench_type(Schema *s, const char *name, const BField *fs, uint32_t n)
{
        EventType *et = &s->types[s->ntypes];
        et->name = arena_strdup(&ar, name);
        et->id = s->ntypes++;
        et->fields = arena_alloc(&ar, (n + 1) * sizeof(Field));
        for (uint32_t i = 0; i < n; i++) {
                Field *f = &et->fields[et->nfields++];
                f->path = arena_strdup(&ar, fs[i].path);
                f->type = fs[i].type;
                if (f->type == FT_ENUM) {
                        char *ename = arena_printf(&ar, "%s.%s", name, f->path);
                        f->en = bench_enum(ename, fs[i].values);
                }
                f->slot = bench_slot(s, f->path, f->type, f->en);
        }
}

#define N(a) (uint32_t)(sizeof(a) / sizeof((a)[0]))

static void bench_schema(Schema *s, const char *prefix)
{
        memset(s, 0, sizeof(*s));
        s->env.id = arena_printf(&ar, "%sevent_id", prefix);
        s->env.type = arena_printf(&ar, "%sevent_type", prefix);
        s->env.enterprise = arena_printf(&ar, "%senterprise.uscc", prefix);
        s->env.time = arena_printf(&ar, "%soccurred_at", prefix);
        s->profile_type = 0;
        s->types = arena_alloc(&ar, RULES_MAX_TYPES * sizeof(EventType));
        s->slot_type = arena_alloc(&ar, RULES_MAX_SLOTS * sizeof(FieldType));
        s->slot_enum = arena_alloc(&ar, RULES_MAX_SLOTS * sizeof(EnumDef *));
        s->slot_path = arena_alloc(&ar, RULES_MAX_SLOTS * sizeof(char *));

        const BField enterprise[] = {
                {"name", FT_STR, 0},
                {"region", FT_STR, 0},
                {"category", FT_ENUM, "dairy,infant_formula,meat,baijiu,edible_oil,beverage,health_food,catering,"
                                      "school_canteen,other"},
                {"scale", FT_ENUM, "micro,small,medium,large"},
                {"haccp", FT_BOOL, 0},
                {"license_status", FT_ENUM, "valid,suspended,revoked,expired"},
        };
        const BField inspection[] = {
                {"kind", FT_ENUM, "double_random,key,flying,special,routine"},
                {"outcome", FT_ENUM, "pass,rectify,fail"},
                {"violations", FT_NUM, 0},
                {"critical_violations", FT_NUM, 0},
                {"rectify_deadline", FT_TIME, 0},
        };
        const BField sampling[] = {
                {"sample_id", FT_STR, 0},
                {"product.name", FT_STR, 0},
                {"category", FT_STR, 0},
                {"result", FT_ENUM, "pass,fail"},
                {"hazard", FT_ENUM, "pesticide_residue,vet_drug_residue,heavy_metal,microbial,biotoxin,"
                                    "additive_overuse,illegal_additive,quality"},
                {"item", FT_STR, 0},
                {"measured", FT_NUM, 0},
                {"limit", FT_NUM, 0},
                {"unit", FT_STR, 0},
                {"confirmed", FT_BOOL, 0},
        };
        const BField complaint[] = {
                {"channel", FT_ENUM, "12315,12316,12360,app"},
                {"category", FT_STR, 0},
                {"verified", FT_BOOL, 0},
                {"severity", FT_ENUM, "low,medium,high"},
        };
        const BField credit[] = {
                {"rating", FT_ENUM, "A,B,C,D"},
                {"blacklisted", FT_BOOL, 0},
                {"penalty_amount", FT_NUM, 0},
        };
        const BField coldchain[] = { /* as coldchain_reading in rules/schema.yaml */
                {"device_id", FT_STR, 0},
                {"asset_type", FT_ENUM, "cold_room,reefer_truck,display_cabinet,container"},
                {"asset_ref", FT_STR, 0},
                {"reading_at", FT_TIME, 0},
                {"temp_c", FT_NUM, 0},
                {"humidity_pct", FT_NUM, 0},
                {"door_open", FT_BOOL, 0},
                {"power_ok", FT_BOOL, 0},
                {"device_alarm", FT_BOOL, 0},
                {"product_class", FT_ENUM, "chilled,frozen,custom"},
                {"required_range_c.min", FT_NUM, 0},
                {"required_range_c.max", FT_NUM, 0},
        };
        const BField self_inspection[] = {
                {"period", FT_STR, 0},
                {"submitted", FT_BOOL, 0},
                {"issues_found", FT_NUM, 0},
        };
        bench_type(s, "enterprise", enterprise, N(enterprise));
        bench_type(s, "inspection", inspection, N(inspection));
        bench_type(s, "sampling", sampling, N(sampling));
        bench_type(s, "complaint", complaint, N(complaint));
        bench_type(s, "credit", credit, N(credit));
        bench_type(s, "coldchain_reading", coldchain, N(coldchain));
        bench_type(s, "self_inspection", self_inspection, N(self_inspection));
}

typedef struct Corpus {
        char *buf;
        size_t *off, *len;
        size_t total;
} Corpus;

/* VARIANTS distinct readings: ids, devices, temperatures, times differ. */
static void corpus_make(Corpus *c, bool envelope_last)
{
        static const char *const assets[] = {"cold_room", "reefer_truck", "display_cabinet", "container"};
        c->buf = malloc(VARIANTS * 512);
        c->off = malloc(VARIANTS * sizeof(size_t));
        c->len = malloc(VARIANTS * sizeof(size_t));
        c->total = 0;
        size_t at = 0;
        uint64_t x = 88172645463325252ULL;
        for (int i = 0; i < VARIANTS; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char env[256], body[256];
                snprintf(env, sizeof(env),
                         "\"event_id\":\"%08x-9f1a-4d2e-8c47-%012llx\",\"event_type\":\"coldchain_reading\","
                         "\"occurred_at\":\"2025-03-%02dT%02d:%02d:%02d+08:00\",\"enterprise\":{\"uscc\":\"9141010%011llu\"}",
                         (unsigned)(x >> 32), (unsigned long long)(x & 0xffffffffffffULL), 1 + i % 28, (i / 7) % 24,
                         i % 60, (i * 7) % 60, (unsigned long long)(x % 100000000000ULL));
                int t = (int)(x % 400) - 250; /* -25.0 .. 14.9 */
                snprintf(body, sizeof(body),
                         "\"device_id\":\"CR-%04d-A\",\"asset_type\":\"%s\",\"temp_c\":%s%d.%d,\"door_open\":%s,"
                         "\"power_ok\":true,\"required_range_c\":{\"max\":%d}",
                         i % 5000, assets[i % 4], t < 0 ? "-" : "", abs(t) / 10, abs(t) % 10, x % 17 ? "false" : "true",
                         i % 3 ? -18 : 8);
                int n = envelope_last ? snprintf(c->buf + at, 512, "{%s,%s}", body, env)
                                      : snprintf(c->buf + at, 512, "{%s,%s}", env, body);
                c->off[i] = at;
                c->len[i] = (size_t)n;
                c->total += (size_t)n;
                at += (size_t)n;
        }
}

static void corpus_free(Corpus *c)
{
        free(c->buf);
        free(c->off);
        free(c->len);
}

/* Thread CPU time: time spent descheduled on a busy machine is not counted. */
static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

static double median(double *v)
{
        qsort(v, RUNS, sizeof(double), cmp_double);
        return v[RUNS / 2];
}

static volatile uint64_t sink;

/* One run: events/s over n decodes; counts the rejections. */
static double run_decode(Decoder *d, const Corpus *c, Value *slots, uint64_t n, uint64_t *rejects)
{
        static char scratch[4096];
        DecodedEvent ev = {.slots = slots, .scratch = scratch, .scratch_size = sizeof(scratch)};
        uint64_t acc = 0, bad = 0;
        double t0 = now_s();
        for (uint64_t i = 0; i < n; i++) {
                uint32_t k = (uint32_t)(i % VARIANTS);
                DecodeReason r = decoder_decode(d, c->buf + c->off[k], c->len[k], &ev);
                bad += r != DECODE_OK;
                acc += (uint64_t)ev.time_ms;
        }
        double rate = (double)n / (now_s() - t0);
        sink += acc;
        *rejects += bad;
        return rate;
}

static double run_numbers(bool ours, locale_t c, uint64_t n)
{
        static const char *const nums[] = {"-15.2", "-18", "81", "3.5", "-0.7", "12.25", "-21.9", "65"};
        double acc = 0, t0 = now_s();
        for (uint64_t i = 0; i < n; i++) {
                const char *s = nums[i & 7];
                size_t len = strlen(s);
                double v;
                if (ours) {
                        decode_number_parse(s, len, &v);
                } else {
                        /* strtod needs a NUL-terminated copy of the token, as in a real decoder */
                        char buf[32];
                        memcpy(buf, s, len);
                        buf[len] = 0;
                        v = strtod_l(buf, NULL, c);
                }
                acc += v;
        }
        double rate = (double)n / (now_s() - t0);
        sink += (uint64_t)acc;
        return rate;
}

int main(int argc, char **argv)
{
        uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
        if (n == 0)
                n = 2000000;
        arena_init(&ar);
        Schema s, none;
        bench_schema(&s, "");
        bench_schema(&none, ""); /* same shape, but no field path occurs in the events */
        for (uint32_t t = 0; t < none.ntypes; t++)
                for (uint32_t i = 0; i < none.types[t].nfields; i++) {
                        Field *f = &none.types[t].fields[i];
                        f->path = arena_printf(&ar, "zz_%s", f->path);
                        none.slot_path[f->slot] = f->path;
                }

        Decoder *d, *dn;
        if (decoder_new(&d, &s, NULL) < 0 || decoder_new(&dn, &none, NULL) < 0) {
                fprintf(stderr, "bench-decode: decoder_new failed\n");
                return 1;
        }
        Value *slots = calloc(s.nslots, sizeof(Value));
        Corpus first, last;
        corpus_make(&first, false);
        corpus_make(&last, true);
        double avg = (double)first.total / VARIANTS;

        printf("decode: cold-chain events of %.0f bytes on average (%d variants), %u types, %u slots, "
               "%llu events per run, median of %d runs, thread CPU time\n",
               avg, VARIANTS, s.ntypes, s.nslots, (unsigned long long)n, RUNS);
        printf("example: %.*s\n", (int)first.len[0], first.buf);

        /* the variants take turns, so that a disturbance hits all of them */
        double full[RUNS], lastr[RUNS], base[RUNS], ours[RUNS], libc[RUNS];
        uint64_t rej_full = 0, rej_last = 0, rej_base = 0;
        locale_t cloc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        run_decode(d, &first, slots, n / 10, &rej_full); /* warm up */
        rej_full = 0;
        for (int r = 0; r < RUNS; r++) {
                full[r] = run_decode(d, &first, slots, n, &rej_full);
                lastr[r] = run_decode(d, &last, slots, n, &rej_last);
                base[r] = run_decode(dn, &first, slots, n, &rej_base);
                ours[r] = run_numbers(true, cloc, n * 4);
                libc[r] = run_numbers(false, cloc, n * 4);
        }
        freelocale(cloc);
        double f = median(full), l = median(lastr), b = median(base);
        printf("%-34s %8.2f M events/s %8.0f MB/s  (rejects: %llu)\n", "decode, envelope first", f / 1e6,
               f * avg / 1e6, (unsigned long long)rej_full);
        printf("%-34s %8.2f M events/s %8.0f MB/s  (rejects: %llu)\n", "decode, envelope last", l / 1e6,
               l * avg / 1e6, (unsigned long long)rej_last);
        printf("%-34s %8.2f M events/s %8.0f MB/s  (rejects: %llu)\n", "baseline: validation + envelope", b / 1e6,
               b * avg / 1e6, (unsigned long long)rej_base);
        printf("%-34s %8.2f (full decode time / baseline time)\n", "ratio", b / f);
        double o = median(ours), c = median(libc);
        printf("%-34s %8.2f M numbers/s\n", "numbers: decode_number_parse", o / 1e6);
        printf("%-34s %8.2f M numbers/s  (ours x%.1f)\n", "numbers: strtod_l (C locale)", c / 1e6, o / c);

        corpus_free(&first);
        corpus_free(&last);
        free(slots);
        decoder_free(d);
        decoder_free(dn);
        arena_deinit(&ar);
        return 0;
}
