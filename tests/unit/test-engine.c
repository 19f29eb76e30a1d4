/*
 * The engine: determinism, order independence within the grace, every
 * dead-letter reason, and bounded memory on adversarial input.  Rules are
 * small in-memory directories; outputs are collected from the sink.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/engine.h"
#include "include/riskd/util.h"
#include "src/engine/engine.h"

static const char schema[] =
        "envelope: { id: event_id, type: event_type, enterprise: enterprise.uscc, time: occurred_at }\n"
        "profile: enterprise\n"
        "types:\n"
        "  enterprise: { fields: { category: [dairy, meat], scale: [small, large] } }\n"
        "  sampling: { fields: { result: [pass, fail], confirmed: bool, item: string } }\n"
        "  coldchain: { fields: { device_id: string, temp_c: number } }\n";
static const char grading[] =
        "dwell: 30d\n"
        "grades:\n"
        "  - { grade: A, max: 30, mode: double_random, inspections_per_year: 1 }\n"
        "  - { grade: B, max: 45, mode: double_random, inspections_per_year: 2 }\n"
        "  - { grade: C, max: 60, mode: key_inspection, inspections_per_year: 3 }\n"
        "  - { grade: D, mode: key_inspection, inspections_per_year: 4 }\n"
        "overrides:\n"
        "  - { when: state.flags.problem_lead, mode: flying_inspection }\n";
static const char rules[] =
        "rules:\n"
        "  - id: profile.dairy\n    on: enterprise\n    when: category == \"dairy\"\n    score: 20\n"
        "  - id: sampling.fail\n    on: sampling\n    when: result == \"fail\" and confirmed\n"
        "    score: 20\n    expires: 90d\n    flags: { problem_lead: 30d }\n"
        "    message: \"样品 {item} 不合格\"\n"
        "  - id: coldchain.warm\n    on: coldchain\n    when: temp_c > 8\n    for: 30m\n    per: device_id\n"
        "    score: 5\n    expires: 30d\n    cooldown: 1d\n"
        "  - id: coldchain.silent\n    on: coldchain\n"
        "    when: absent(coldchain where device_id == $device_id for 2h)\n    per: device_id\n"
        "  - id: coldchain.hot_hour\n    on: coldchain\n"
        "    when: avg(coldchain.temp_c where device_id == $device_id within 1h) > 12\n    per: device_id\n    cooldown: 1h\n";

typedef struct Out {
        Buf all;             /* every alert/adjustment line */
        Buf dlq;             /* "reason\n" per dead letter */
        uint32_t alerts, adjustments, dead;
} Out;

static void sink(void *ud, OutKind kind, const char *data, size_t len, const OutMeta *m)
{
        Out *o = ud;
        if (kind == OUT_DEADLETTER) {
                o->dead++;
                buf_puts(&o->dlq, m->reason);
                buf_putc(&o->dlq, '\n');
                return;
        }
        if (kind == OUT_ADJUSTMENT)
                o->adjustments++;
        else
                o->alerts++;
        buf_put(&o->all, data, len);
        buf_putc(&o->all, '\n');
}

static RuleSet *load_with(const char *schema_text, const char *rule_text)
{
        const char *names[] = {"schema.yaml", "grading.yaml", "rules.yaml"};
        const char *texts[] = {schema_text, grading, rule_text};
        size_t lens[] = {strlen(schema_text), strlen(grading), strlen(rule_text)};
        DiagList dl = {0};
        RuleSet *rs = NULL;
        int r = rules_load_mem("t", names, texts, lens, 3, &dl, &rs);
        if (r)
                diag_print_text(stderr, &dl, false);
        cr_assert_eq(r, 0);
        diag_list_deinit(&dl);
        return rs;
}

static RuleSet *load(void)
{
        return load_with(schema, rules);
}

/* 2025-01-01T00:00:00Z plus minutes */
static void ev(Buf *b, const char *id, const char *ent, int64_t minute, const char *type, const char *fields)
{
        char t[40];
        time_format(1735689600000LL + minute * 60000, t, sizeof(t));
        buf_printf(b, "{\"event_id\":\"%s\",\"event_type\":\"%s\",\"enterprise\":{\"uscc\":\"%s\"},\"occurred_at\":\"%s\"%s%s}\n",
                   id, type, ent, t, *fields ? "," : "", fields);
}

/* A stream: profiles, telemetry with an excursion and a silence, failures. */
static void story(Buf *b)
{
        ev(b, "p1", "E1", 0, "enterprise", "\"category\":\"dairy\"");
        ev(b, "p2", "E2", 0, "enterprise", "\"category\":\"meat\"");
        char id[32], f[96];
        for (int m = 1; m <= 300; m++) {
                for (int d = 0; d < 2; d++) {
                        if (d == 1 && m > 120 && m < 300)
                                continue; /* device 1 of E1 goes silent */
                        double temp = (m >= 60 && m < 110 && d == 0) ? 14.5 : 3.0;
                        snprintf(id, sizeof(id), "c%d-%d", m, d);
                        snprintf(f, sizeof(f), "\"device_id\":\"E1-dev%d\",\"temp_c\":%.1f", d, temp);
                        ev(b, id, "E1", m, "coldchain", f);
                }
                if (m % 10 == 0) {
                        snprintf(id, sizeof(id), "c2-%d", m);
                        ev(b, id, "E2", m, "coldchain", "\"device_id\":\"E2-dev0\",\"temp_c\":2.5");
                }
                if (m == 200)
                        ev(b, "s1", "E1", 200, "sampling", "\"result\":\"fail\",\"confirmed\":true,\"item\":\"三聚氰胺\"");
                if (m == 210)
                        ev(b, "s2", "E2", 210, "sampling", "\"result\":\"pass\",\"confirmed\":true");
                if (m == 220)
                        ev(b, "s3", "E2", 220, "sampling", "\"result\":\"fail\",\"confirmed\":true,\"item\":\"铅\"");
        }
}

static Out run(RuleSet *rs, const char *text, int64_t grace, int64_t until_min)
{
        Out o = {0};
        EngineConfig cfg;
        engine_config_default(&cfg);
        cfg.grace_ms = grace;
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
        for (const char *p = text; *p;) {
                const char *nl = strchr(p, '\n');
                size_t l = nl ? (size_t)(nl - p) : strlen(p);
                engine_push(e, p, l, NULL);
                p += l + (nl ? 1 : 0);
        }
        engine_flush(e);
        if (until_min)
                engine_advance(e, 1735689600000LL + until_min * 60000);
        buf_puts(&o.all, "--grades--\n");
        engine_grades_write(e, &o.all);
        engine_free(e);
        return o;
}

static void out_free(Out *o)
{
        buf_free(&o->all);
        buf_free(&o->dlq);
}

Test(engine, replay_is_byte_identical)
{
        RuleSet *rs = load();
        Buf in = {0};
        story(&in);
        Out a = run(rs, in.p, 0, 0), b = run(rs, in.p, 0, 0);
        cr_assert_gt(a.alerts, 3);
        cr_assert_eq(a.all.len, b.all.len);
        cr_assert_eq(memcmp(a.all.p, b.all.p, a.all.len), 0);
        /* what the story must produce */
        cr_assert_not_null(strstr(a.all.p, "\"rule_id\":\"coldchain.warm\""));
        cr_assert_not_null(strstr(a.all.p, "\"rule_id\":\"coldchain.silent\""));
        cr_assert_not_null(strstr(a.all.p, "\"rule_id\":\"coldchain.hot_hour\""));
        cr_assert_not_null(strstr(a.all.p, "\"message\":\"样品 三聚氰胺 不合格\""));
        cr_assert_not_null(strstr(a.all.p, "\"mode\":\"flying_inspection\""));
        out_free(&a);
        out_free(&b);
        buf_free(&in);
        rules_unref(rs);
}

/* The lines of text (*copy holds them; the caller frees it and the array). */
static char **split_lines(const char *text, uint32_t *n, char **copy)
{
        char **lines = NULL;
        uint32_t cap = 0;
        *n = 0;
        *copy = xstrdup(text);
        for (char *save = NULL, *l = strtok_r(*copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
                VEC_PUSH(lines, *n, cap) = l;
        return lines;
}

/* Lines of a stream, shuffled so that no event moves more than `within`
 * positions: with one event a minute per stream that keeps every event
 * within a few minutes of its place, inside a 1h grace. */
static char *shuffle(const char *text, unsigned within, uint64_t seed)
{
        uint32_t n;
        char *copy;
        char **lines = split_lines(text, &n, &copy);
        /* sort by position + a random jitter below `within`: no line moves
         * by more than `within` places */
        uint64_t *key = xcalloc(n + 1, sizeof(uint64_t));
        for (uint32_t i = 0; i < n; i++) {
                seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                key[i] = ((uint64_t)(i + (seed >> 33) % within) << 32) | i;
        }
        for (uint32_t i = 1; i < n; i++) /* insertion sort: keys are nearly sorted */
                for (uint32_t j = i; j > 0 && key[j - 1] > key[j]; j--) {
                        uint64_t t = key[j];
                        key[j] = key[j - 1];
                        key[j - 1] = t;
                }
        char **orig = xmalloc((n + 1) * sizeof(char *));
        memcpy(orig, lines, n * sizeof(char *));
        for (uint32_t i = 0; i < n; i++)
                lines[i] = orig[key[i] & 0xffffffff];
        free(orig);
        free(key);
        Buf b = {0};
        for (uint32_t i = 0; i < n; i++) {
                buf_puts(&b, lines[i]);
                buf_putc(&b, '\n');
        }
        free(lines);
        free(copy);
        return b.p;
}

static int line_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The alert ids and the grades section of an output, sorted. */
static char *alert_set(const Out *o)
{
        char **v = NULL;
        uint32_t n = 0, cap = 0;
        for (const char *p = o->all.p; (p = strstr(p, "\"alert_id\":\"")); p += 12)
                VEC_PUSH(v, n, cap) = xstrndup(p + 12, 16);
        qsort(v, n, sizeof(char *), line_cmp);
        Buf b = {0};
        for (uint32_t i = 0; i < n; i++) {
                buf_puts(&b, v[i]);
                buf_putc(&b, '\n');
                free(v[i]);
        }
        free(v);
        buf_puts(&b, strstr(o->all.p, "--grades--"));
        return b.p;
}

Test(engine, disorder_within_grace_gives_the_same_results)
{
        RuleSet *rs = load();
        Buf in = {0};
        story(&in);
        int64_t grace = 3600000;
        Out sorted = run(rs, in.p, grace, 0);
        char *want = alert_set(&sorted);
        for (uint64_t seed = 1; seed <= 5; seed++) {
                char *sh = shuffle(in.p, 20, seed);
                cr_assert_neq(strcmp(sh, in.p), 0);
                Out o = run(rs, sh, grace, 0);
                cr_assert_eq(o.dead, 0, "seed %llu: %s", (unsigned long long)seed, o.dlq.p);
                char *got = alert_set(&o);
                cr_assert_str_eq(got, want, "seed %llu", (unsigned long long)seed);
                free(got);
                free(sh);
                out_free(&o);
        }
        /* and the same as processing on arrival of the sorted stream */
        Out direct = run(rs, in.p, 0, 0);
        char *d = alert_set(&direct);
        cr_assert_str_eq(d, want);
        free(d);
        out_free(&direct);
        free(want);
        out_free(&sorted);
        buf_free(&in);
        rules_unref(rs);
}

/* ---- events of the same time ---- */

/* Rules for which the order of tied events matters: the first failure of
 * a run fires (cooldown), the second sample within 5 minutes fires. */
static const char tie_rules[] =
        "rules:\n"
        "  - id: t.first\n    on: sampling\n    when: result == \"fail\"\n    cooldown: 10m\n"
        "    score: 10\n    expires: 2h\n    flags: { problem_lead: 1h }\n    message: \"{item}\"\n"
        "  - id: t.second\n    on: sampling\n    when: count(sampling within 5m) == 2\n    message: \"{item}\"\n";

/* A stream sorted by time where most times hold several events of one
 * enterprise, their ids in the opposite order to their arrival. */
static void tie_stream(Buf *b)
{
        uint64_t seed = 7;
        char id[32], f[96];
        for (int m = 0; m < 400; m++) {
                for (int x = 0; x < 3; x++) {
                        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                        int k = (int)((seed >> 33) % 4); /* 0 to 3 events at this minute */
                        char ent[8];
                        snprintf(ent, sizeof(ent), "E%d", x);
                        for (int j = 0; j < k; j++) {
                                snprintf(id, sizeof(id), "s%05d", 90000 - m * 10 - j);
                                snprintf(f, sizeof(f), "\"result\":\"%s\",\"item\":\"%s\"",
                                         (seed >> (40 + j)) & 1 ? "fail" : "pass", id);
                                ev(b, id, ent, m, "sampling", f);
                        }
                }
        }
}

/* The time of a line (its occurred_at value), for grouping ties. */
static Str line_time(const char *l)
{
        const char *p = strstr(l, "\"occurred_at\":\"") + 15;
        return (Str){p, (size_t)(strchr(p, '"') - p)};
}

/* shuffle(), then the events of each time put back in their order in
 * text: disorder between times only. */
static char *shuffle_keeping_ties(const char *text, unsigned within, uint64_t seed)
{
        char *sh = shuffle(text, within, seed);
        uint32_t n, ns;
        char *copy, *scopy;
        char **orig = split_lines(text, &n, &copy), **lines = split_lines(sh, &ns, &scopy);
        cr_assert_eq(n, ns);
        bool *used = xcalloc(n + 1, 1);
        Buf b = {0};
        for (uint32_t i = 0; i < n; i++) {
                /* the first unused line of text with this line's time */
                Str t = line_time(lines[i]);
                uint32_t k = 0;
                for (;; k++) {
                        Str o = line_time(orig[k]);
                        if (!used[k] && o.len == t.len && memcmp(o.p, t.p, t.len) == 0)
                                break;
                }
                used[k] = true;
                buf_puts(&b, orig[k]);
                buf_putc(&b, '\n');
        }
        free(used);
        free(orig);
        free(lines);
        free(copy);
        free(scopy);
        free(sh);
        return b.p;
}

/* One order for every grace: events of the same time are applied in the
 * order they arrive, so a sorted stream gives byte-identical outputs under
 * any grace, and a stream disordered within the grace (ties kept in their
 * order) the same outputs as the sorted one. */
Test(engine, ties_are_applied_in_arrival_order_under_any_grace)
{
        RuleSet *rs = load_with(schema, tie_rules);
        Buf in = {0};
        tie_stream(&in);
        Out ref = run(rs, in.p, 0, 0);
        cr_assert_gt(ref.alerts, 50, "%u alerts, %u dead: %s", ref.alerts, ref.dead, ref.dlq.p);
        const int64_t graces[] = {1, 60000, 3600000, 86400000};
        for (size_t g = 0; g < sizeof(graces) / sizeof(graces[0]); g++) {
                Out o = run(rs, in.p, graces[g], 0);
                cr_assert_eq(o.dead, 0, "%s", o.dlq.p);
                cr_assert_str_eq(o.all.p, ref.all.p, "grace %lld ms", (long long)graces[g]);
                out_free(&o);
        }
        for (uint64_t seed = 1; seed <= 4; seed++) {
                char *sh = shuffle_keeping_ties(in.p, 25, seed);
                cr_assert_neq(strcmp(sh, in.p), 0);
                Out o = run(rs, sh, 3600000, 0);
                cr_assert_eq(o.dead, 0, "seed %llu: %s", (unsigned long long)seed, o.dlq.p);
                cr_assert_str_eq(o.all.p, ref.all.p, "seed %llu", (unsigned long long)seed);
                free(sh);
                out_free(&o);
        }
        out_free(&ref);
        buf_free(&in);
        rules_unref(rs);
}

/* An event exactly one grace behind the newest is in time and is applied
 * after the events of its time already released (they arrived before it);
 * one ms further behind is too_late. */
Test(engine, an_event_one_grace_behind_takes_its_place)
{
        RuleSet *rs = load_with(schema, tie_rules);
        Buf a = {0}, b = {0};
        ev(&a, "z", "E1", 0, "sampling", "\"result\":\"fail\",\"item\":\"z\"");
        ev(&a, "a", "E1", 0, "sampling", "\"result\":\"fail\",\"item\":\"a\"");
        ev(&a, "b", "E2", 60, "sampling", "\"result\":\"pass\",\"item\":\"b\"");
        ev(&b, "z", "E1", 0, "sampling", "\"result\":\"fail\",\"item\":\"z\"");
        ev(&b, "b", "E2", 60, "sampling", "\"result\":\"pass\",\"item\":\"b\"");
        ev(&b, "a", "E1", 0, "sampling", "\"result\":\"fail\",\"item\":\"a\"");
        Out sorted = run(rs, a.p, 3600000, 0), late = run(rs, b.p, 3600000, 0);
        cr_assert_eq(late.dead, 0, "%s", late.dlq.p);
        cr_assert_not_null(strstr(sorted.all.p, "\"rule_id\":\"t.first\",\"status\":\"active\",\"severity\":\"medium\","
                                                "\"enterprise_id\":\"E1\",\"ts\":\"2025-01-01T00:00:00Z\",\"trigger\":"
                                                "\"event\",\"key\":null,\"message\":\"z\""));
        /* the same alerts; the adjustments differ only in when E2's comes */
        char *sa = alert_set(&sorted), *la = alert_set(&late);
        cr_assert_str_eq(la, sa);
        free(sa);
        free(la);
        Out tl = run(rs, "{\"event_id\":\"z\",\"event_type\":\"sampling\",\"enterprise\":{\"uscc\":\"E1\"},"
                         "\"occurred_at\":\"2025-01-01T01:00:00Z\"}\n"
                         "{\"event_id\":\"y\",\"event_type\":\"sampling\",\"enterprise\":{\"uscc\":\"E1\"},"
                         "\"occurred_at\":\"2024-12-31T23:59:59.999Z\"}\n"
                         "{\"event_id\":\"x\",\"event_type\":\"sampling\",\"enterprise\":{\"uscc\":\"E1\"},"
                         "\"occurred_at\":\"2025-01-01T00:00:00Z\"}\n"
                         "{\"event_id\":\"w\",\"event_type\":\"sampling\",\"enterprise\":{\"uscc\":\"E1\"},"
                         "\"occurred_at\":\"2025-01-01T00:00:00.001Z\"}\n",
                     3600000, 0);
        cr_assert_str_eq(tl.dlq.p, "too_late\n", "only y, one ms more than a grace behind");
        out_free(&tl);
        out_free(&sorted);
        out_free(&late);
        buf_free(&a);
        buf_free(&b);
        rules_unref(rs);
}

Test(engine, points_expire_and_the_grade_falls_after_the_dwell)
{
        RuleSet *rs = load();
        Buf in = {0};
        ev(&in, "p1", "E1", 0, "enterprise", "\"category\":\"dairy\"");
        ev(&in, "s1", "E1", 10, "sampling", "\"result\":\"fail\",\"confirmed\":true");
        /* dairy 20 + fail 20 = 40: B; flying while problem_lead (30d) lives */
        Out o = run(rs, in.p, 0, 0);
        cr_assert_not_null(strstr(o.all.p, "\"current\":{\"grade\":\"B\",\"mode\":\"flying_inspection\""));
        out_free(&o);
        /* after 30d the flag expires; after 90d the points; A after a further 30d dwell */
        o = run(rs, in.p, 0, 121LL * 24 * 60);
        const char *p = strstr(o.all.p, "\"cause\":\"expiry\"");
        cr_assert_not_null(p);
        cr_assert_not_null(strstr(p, "\"current\":{\"grade\":\"B\",\"mode\":\"double_random\""));
        const char *dw = strstr(o.all.p, "\"cause\":\"dwell\"");
        cr_assert_not_null(dw, "%s", o.all.p);
        cr_assert_not_null(strstr(dw, "\"current\":{\"grade\":\"A\""));
        /* the fall comes 90d + 30d after the failure, not before */
        cr_assert_not_null(strstr(o.all.p, "\"ts\":\"2025-05-01T00:10:00Z\",\"cause\":\"dwell\""), "%s", dw);
        out_free(&o);
        buf_free(&in);
        rules_unref(rs);
}

Test(engine, every_dead_letter_reason)
{
        RuleSet *rs = load();
        Buf in = {0};
        ev(&in, "p1", "E1", 100, "enterprise", "\"category\":\"dairy\"");
        buf_puts(&in, "{\"event_id\": \"x\", \n");                                        /* malformed_json */
        buf_puts(&in, "[1,2]\n");                                                           /* not_an_object */
        buf_puts(&in, "{\"event_type\":\"sampling\",\"enterprise\":{\"uscc\":\"E1\"},\"occurred_at\":\"2025-01-01T02:00:00Z\"}\n"); /* missing_field */
        ev(&in, "w1", "E1", 101, "coldchain", "\"device_id\":\"d\",\"temp_c\":\"hot\"");   /* wrong_type */
        ev(&in, "u1", "E1", 101, "weather", "");                                             /* unknown_type */
        buf_puts(&in, "{\"event_id\":\"b1\",\"event_type\":\"sampling\",\"enterprise\":{\"uscc\":\"E1\"},\"occurred_at\":\"yesterday\"}\n"); /* bad_timestamp */
        ev(&in, "l1", "E1", 50, "sampling", "\"result\":\"pass\"");                          /* too_late */
        ev(&in, "p1", "E1", 102, "enterprise", "\"category\":\"dairy\"");                  /* duplicate */
        Out o = run(rs, in.p, 0, 0);
        cr_assert_str_eq(o.dlq.p, "malformed_json\nnot_an_object\nmissing_field\nwrong_type\nunknown_type\n"
                                  "bad_timestamp\ntoo_late\nduplicate\n");
        out_free(&o);
        /* too_large and over_limit need limits */
        EngineConfig cfg;
        engine_config_default(&cfg);
        cfg.max_event_bytes = 200;
        cfg.max_enterprises = 1;
        Out o2 = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o2), 0);
        Buf big = {0};
        ev(&big, "a1", "E1", 1, "sampling", "\"item\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"");
        engine_push(e, big.p, big.len - 1, NULL);
        Buf two = {0};
        ev(&two, "a2", "E1", 2, "sampling", "\"result\":\"pass\"");
        ev(&two, "a3", "E2", 3, "sampling", "\"result\":\"pass\"");
        char *nl = strchr(two.p, '\n');
        engine_push(e, two.p, (size_t)(nl - two.p), NULL);
        engine_push(e, nl + 1, strlen(nl + 1) - 1, NULL);
        engine_free(e);
        cr_assert_str_eq(o2.dlq.p, "too_large\nover_limit\n");
        out_free(&o2);
        buf_free(&big);
        buf_free(&two);
        buf_free(&in);
        rules_unref(rs);
}

/* engine_push says what it did with each message: applied (no grace),
 * held (a grace), replayed, a duplicate, dead-lettered for another
 * reason; each result matches what the counters and the emit callback
 * show for that message. */
Test(engine, push_returns_what_it_did)
{
        RuleSet *rs = load();
        EngineConfig cfg;
        engine_config_default(&cfg);
        Out o = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
        Buf a = {0}, b = {0}, late = {0};
        ev(&a, "s1", "E1", 10, "sampling", "\"result\":\"fail\"");
        ev(&b, "s2", "E1", 11, "sampling", "\"result\":\"fail\"");
        ev(&late, "s3", "E1", 5, "sampling", "\"result\":\"fail\"");
        SourcePos src = {.topic = "risk.events", .partition = 0, .offset = 1};
        cr_assert_eq(engine_push(e, a.p, a.len - 1, &src), ENGINE_PUSH_APPLIED);
        cr_assert_eq(engine_stats(e)->events_applied, 1);
        cr_assert_eq(engine_push(e, a.p, a.len - 1, &src), ENGINE_PUSH_DUPLICATE);
        cr_assert_str_eq(o.dlq.p, "duplicate\n");
        src.replay = true;
        cr_assert_eq(engine_push(e, a.p, a.len - 1, &src), ENGINE_PUSH_REPLAYED);
        cr_assert_eq(engine_stats(e)->replayed, 1);
        src.replay = false;
        cr_assert_eq(engine_push(e, "[1,2]", 5, &src), ENGINE_PUSH_DEAD_LETTERED);
        cr_assert_eq(engine_push(e, late.p, late.len - 1, &src), ENGINE_PUSH_DEAD_LETTERED);
        cr_assert_str_eq(o.dlq.p, "duplicate\nnot_an_object\ntoo_late\n");
        cr_assert_eq(engine_push(e, b.p, b.len - 1, &src), ENGINE_PUSH_APPLIED);
        cr_assert_eq(engine_stats(e)->events_applied, 2);
        engine_free(e);
        out_free(&o);

        /* with a grace: held, applied when the watermark passes it */
        cfg.grace_ms = 60 * 60000;
        Out o2 = {0};
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o2), 0);
        cr_assert_eq(engine_push(e, a.p, a.len - 1, &src), ENGINE_PUSH_HELD);
        cr_assert_eq(engine_stats(e)->events_applied, 0);
        cr_assert_eq(engine_push(e, b.p, b.len - 1, &src), ENGINE_PUSH_HELD);
        cr_assert_eq(engine_push(e, "{", 1, &src), ENGINE_PUSH_DEAD_LETTERED);
        engine_flush(e);
        cr_assert_eq(engine_stats(e)->events_applied, 2);
        cr_assert_str_eq(o2.dlq.p, "malformed_json\n");
        engine_free(e);
        out_free(&o2);
        buf_free(&a);
        buf_free(&b);
        buf_free(&late);
        rules_unref(rs);
}

/* An event read again after a restore (SourcePos.replay, riskd with
 * transactions off) whose id the state holds is counted and skipped; the
 * same id not marked so is a duplicate dead letter; a replayed event the
 * state does not hold is applied as any other. */
Test(engine, replayed_duplicate_is_counted_not_dead_lettered)
{
        RuleSet *rs = load();
        EngineConfig cfg;
        engine_config_default(&cfg);
        Out o = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
        Buf a = {0}, b = {0}, c = {0};
        ev(&a, "s1", "E1", 1, "sampling", "\"result\":\"fail\"");
        ev(&b, "s2", "E1", 2, "sampling", "\"result\":\"fail\"");
        ev(&c, "s1", "E1", 3, "sampling", "\"result\":\"pass\""); /* s1's id again, later */
        SourcePos src = {.topic = "risk.events", .partition = 0, .offset = 7};
        engine_push(e, a.p, a.len - 1, &src);
        uint32_t outputs = o.alerts + o.adjustments;
        cr_assert_gt(outputs, 0);
        src.replay = true; /* the same event read again: the state has it */
        engine_push(e, a.p, a.len - 1, &src);
        cr_assert_eq(o.dead, 0, "%s", o.dlq.p);
        cr_assert_eq(engine_stats(e)->replayed, 1);
        cr_assert_eq(o.alerts + o.adjustments, outputs);
        src.offset = 8; /* a replayed event the state does not hold: applied */
        engine_push(e, b.p, b.len - 1, &src);
        cr_assert_eq(engine_stats(e)->replayed, 1);
        cr_assert_eq(engine_stats(e)->events_applied, 2);
        src.replay = false; /* past the mark: a true duplicate */
        src.offset = 9;
        engine_push(e, c.p, c.len - 1, &src);
        cr_assert_str_eq(o.dlq.p, "duplicate\n");
        cr_assert_eq(engine_stats(e)->replayed, 1);
        engine_free(e);
        out_free(&o);
        buf_free(&a);
        buf_free(&b);
        buf_free(&c);
        buf_free(&c);
        rules_unref(rs);
}

/* Strict UTF-8 (Unicode Table 3-7), written here from the definition so
 * the test does not share the code it checks. */
static bool utf8_strict(const unsigned char *s, size_t n)
{
        for (size_t i = 0; i < n;) {
                unsigned c = s[i];
                size_t k = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
                if (!k || i + k > n)
                        return false;
                unsigned lo = 0x80, hi = 0xbf;
                if (c == 0xe0)
                        lo = 0xa0;
                else if (c == 0xed)
                        hi = 0x9f;
                else if (c == 0xf0)
                        lo = 0x90;
                else if (c == 0xf4)
                        hi = 0x8f;
                for (size_t j = 1; j < k; j++, lo = 0x80, hi = 0xbf)
                        if (s[i + j] < lo || s[i + j] > hi)
                                return false;
                i += k;
        }
        return true;
}

typedef struct RawDead {
        Buf orig;            /* each dead letter's bytes, then "\n" */
        Buf reasons;         /* "reason\n" */
        uint32_t n, bad_detail;
} RawDead;

static void sink_raw(void *ud, OutKind kind, const char *data, size_t len, const OutMeta *m)
{
        RawDead *d = ud;
        if (kind != OUT_DEADLETTER)
                return;
        d->n++;
        buf_put(&d->orig, data, len);
        buf_putc(&d->orig, '\n');
        buf_printf(&d->reasons, "%s\n", m->reason);
        if (!m->detail || !utf8_strict((const unsigned char *)m->detail, strlen(m->detail)))
                d->bad_detail++;
}

/* The malformed corpus, bytes that are not UTF-8 (issue 12 point 8): every
 * such line is a dead letter malformed_json, its bytes handed on untouched
 * (riskd writes them to the dead-letter topic as they came; the file writer
 * of riskctl replay puts them in original_base64), and whatever the input,
 * the detail is strict UTF-8, so that it can go into a Kafka header and a
 * JSON document as it is.  Escapes that decode to what UTF-8 cannot hold
 * (lone surrogates) and NUL inside a value are refused the same way. */
Test(engine, bytes_that_are_not_utf8_are_dead_letters_with_a_clean_detail)
{
        static const char *const bad[] = {
                "\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", /* overlong */
                "\xed\xa0\x80", "\xed\xbf\xbf",                 /* surrogates */
                "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", /* beyond U+10FFFF, bad leads */
                "\x80", "\xe4\xb8", "\xc3(",                    /* lone continuation, cut sequences */
        };
        /* the place of the bytes (where "@" is): the enterprise id, the type,
         * a value, a key, the time; "#" is the line's number */
        static const char *const at[] = {
                "{\"event_id\":\"x#\",\"event_type\":\"sampling\",\"enterprise\":{\"uscc\":\"E1@\"},"
                "\"occurred_at\":\"2025-01-01T00:00:00Z\"}",
                "{\"event_id\":\"x#\",\"event_type\":\"samp@ling\",\"enterprise\":{\"uscc\":\"E1\"},"
                "\"occurred_at\":\"2025-01-01T00:00:00Z\"}",
                "{\"event_id\":\"x#\",\"event_type\":\"sampling\",\"enterprise\":{\"uscc\":\"E1\"},"
                "\"occurred_at\":\"2025-01-01T00:00:00Z\",\"item\":\"@\"}",
                "{\"event_id\":\"x#\",\"event_type\":\"sampling\",\"enterprise\":{\"uscc\":\"E1\"},"
                "\"occurred_at\":\"2025-01-01T00:00:00Z\",\"it@em\":1}",
                "{\"event_id\":\"x#\",\"event_type\":\"sampling\",\"enterprise\":{\"uscc\":\"E1\"},"
                "\"occurred_at\":\"2025-01-01T00:00:00Z@\"}",
        };
        RuleSet *rs = load();
        Buf in = {0}, want = {0};
        unsigned k = 0;
        for (size_t i = 0; i < ARRAY_SIZE(at); i++)
                for (size_t j = 0; j < ARRAY_SIZE(bad); j++) {
                        for (const char *c = at[i]; *c; c++) {
                                if (*c == '#')
                                        buf_printf(&in, "%u", k);
                                else if (*c == '@')
                                        buf_puts(&in, bad[j]);
                                else
                                        buf_putc(&in, *c);
                        }
                        buf_putc(&in, '\n');
                        k++;
                }
        buf_puts(&in, "{\"event_id\":\"y1\",\"event_type\":\"sampling\",\"enterprise\":{\"uscc\":\"E1\"},"
                      "\"occurred_at\":\"2025-01-01T00:00:00Z\",\"item\":\"\\ud800\"}\n");
        buf_puts(&in, "{\"event_id\":\"y2\",\"event_type\":\"sampl\\u0000ing\",\"enterprise\":{\"uscc\":\"E1\"},"
                      "\"occurred_at\":\"2025-01-01T00:00:00Z\"}\n");
        buf_puts(&in, "{\"event_id\":\"y3\",\"event_type\":\"sampling\",\"enterprise\":{\"uscc\":\"E1\"},"
                      "\"occurred_at\":\"2025-01-01\\u0000T00:00:00Z\"}\n");
        /* valid UTF-8 beyond ASCII is applied: not a dead letter */
        buf_puts(&in, "{\"event_id\":\"ok\",\"event_type\":\"sampling\",\"enterprise\":{\"uscc\":\"E1\"},"
                      "\"occurred_at\":\"2025-01-02T00:00:00Z\",\"item\":\"\xe9\x93\x85 \xf0\x9f\x8d\x9c \xf4\x8f\xbf\xbf\"}\n");
        RawDead d = {0};
        EngineConfig cfg;
        engine_config_default(&cfg);
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink_raw, &d), 0);
        uint32_t lines = 0;
        for (const char *p = in.p; *p;) {
                const char *nl = strchr(p, '\n');
                engine_push(e, p, (size_t)(nl - p), NULL);
                if (lines < k) /* the bytes of every line with bytes that are not UTF-8 */
                        buf_put(&want, p, (size_t)(nl - p) + 1);
                lines++;
                p = nl + 1;
        }
        engine_flush(e);
        cr_assert_eq(d.n, k + 3, "%u dead letters for %u bad lines:\n%s", d.n, k + 3, d.reasons.p);
        cr_assert_eq(d.bad_detail, 0, "%u details are not strict UTF-8", d.bad_detail);
        /* handed on byte for byte, in order */
        cr_assert(d.orig.len >= want.len && memcmp(d.orig.p, want.p, want.len) == 0);
        for (const char *p = d.reasons.p; *p; p = strchr(p, '\n') + 1)
                cr_assert(strncmp(p, "malformed_json\n", 15) == 0 || strncmp(p, "bad_timestamp\n", 14) == 0 ||
                                  strncmp(p, "unknown_type\n", 13) == 0,
                          "%s", d.reasons.p);
        /* the first k are malformed JSON: the bytes themselves */
        const char *p = d.reasons.p;
        for (unsigned i = 0; i < k; i++, p = strchr(p, '\n') + 1)
                cr_assert(strncmp(p, "malformed_json\n", 15) == 0, "line %u: %s", i, d.reasons.p);
        engine_free(e);
        buf_free(&d.orig);
        buf_free(&d.reasons);
        buf_free(&in);
        buf_free(&want);
        rules_unref(rs);
}

static int reject_index(const char *name)
{
        for (int i = 0; i < ENGINE_NREJECT; i++)
                if (strcmp(engine_reject_names[i], name) == 0)
                        return i;
        cr_assert_fail("no reject reason %s", name);
        return 0;
}

/* The sink of the malformed corpus: "reason: detail" per dead letter. */
static void sink_detail(void *ud, OutKind kind, const char *data, size_t len, const OutMeta *m)
{
        (void)data;
        (void)len;
        Buf *b = ud;
        if (kind == OUT_DEADLETTER)
                buf_printf(b, "%s: %s\n", m->reason, m->detail);
}

/* Codes as schema types: the malformed corpus of identifiers.  Each line is
 * a dead letter bad_identifier naming the field, the value and what is
 * wrong, and counts under its reason; valid codes are applied. */
Test(engine, bad_identifier_dead_letters)
{
        static const char codes_schema[] =
                "envelope: { id: event_id, type: event_type, enterprise: { path: enterprise.uscc, type: uscc },"
                " time: occurred_at }\n"
                "profile: enterprise\n"
                "types:\n"
                "  enterprise: { fields: { category: [dairy, meat], license_no: license_no } }\n"
                "  sampling: { fields: { result: [pass, fail], sample_code: { type: sample_code, required: true } } }\n";
        static const char codes_rules[] =
                "rules:\n"
                "  - id: sampling.fail\n    on: sampling\n    when: result == \"fail\"\n    score: 20\n"
                "    flags: { problem_lead: 30d }\n";
        RuleSet *rs = load_with(codes_schema, codes_rules);
        Buf in = {0}, dl = {0};
        ev(&in, "p1", "91410184MAX3GNEK20", 1, "enterprise", "\"license_no\":\"SC10541018400375\"");
        ev(&in, "p2", "91410105MA9F8K2L3X", 1, "enterprise", "");                 /* check character */
        ev(&in, "p3", "91410122MA9G7H6J5Q", 1, "enterprise", "");                 /* check character */
        ev(&in, "p4", "91410105MA9F8K2L32", 1, "enterprise", "");                 /* corrected: applied */
        ev(&in, "p5", "91410184MAX3GNEKO0", 1, "enterprise", "");                 /* forbidden letter */
        ev(&in, "p6", "91410184MAX3GNEK2", 1, "enterprise", "");                  /* 17 characters */
        ev(&in, "p7", "91410184max3gnek20", 1, "enterprise", "");                 /* lower case */
        ev(&in, "p8", "E1", 1, "enterprise", "");                                 /* a test name */
        ev(&in, "p9", "91410184MAX3GNEK20", 2, "enterprise", "\"license_no\":\"JY141\"");
        ev(&in, "s1", "91410184MAX3GNEK20", 3, "sampling", "\"result\":\"fail\",\"sample_code\":\"DC001\"");
        ev(&in, "s2", "91410184MAX3GNEK20", 3, "sampling", "\"result\":\"fail\",\"sample_code\":\"NCP25410100410105003\"");
        ev(&in, "s3", "91410184MAX3GNEK20", 4, "sampling", "\"result\":\"fail\",\"sample_code\":\"DC25410000410105007\"");
        EngineConfig cfg;
        engine_config_default(&cfg);
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink_detail, &dl), 0);
        for (const char *p = in.p; *p;) {
                const char *nl = strchr(p, '\n');
                engine_push(e, p, (size_t)(nl - p), NULL);
                p = nl + 1;
        }
        engine_flush(e);
        cr_assert_str_eq(dl.p,
                "bad_identifier: enterprise (enterprise.uscc) \"91410105MA9F8K2L3X\": check character should be 2\n"
                "bad_identifier: enterprise (enterprise.uscc) \"91410122MA9G7H6J5Q\": check character should be W\n"
                "bad_identifier: enterprise (enterprise.uscc) \"91410184MAX3GNEKO0\": character 17, 'O', is not in "
                "the USCC alphabet (0-9, A-Z without I O S V Z)\n"
                "bad_identifier: enterprise (enterprise.uscc) \"91410184MAX3GNEK2\": a USCC has 18 characters, not 17\n"
                "bad_identifier: enterprise (enterprise.uscc) \"91410184max3gnek20\": character 9, 'm', is not in "
                "the USCC alphabet (letters are upper case)\n"
                "bad_identifier: enterprise (enterprise.uscc) \"E1\": a USCC has 18 characters, not 2\n"
                "bad_identifier: field license_no \"JY141\": JY is followed by 14 digits\n"
                "bad_identifier: field sample_code \"DC001\": DC is followed by 17 digits (year 2, area code 6, "
                "serial 9), not 3\n");
        const EngineStats *st = engine_stats(e);
        cr_assert_eq(st->rejects[reject_index("bad_identifier")], 8);
        cr_assert_eq(st->events_applied, 4, "p1, p4, s2, s3");
        cr_assert_eq(st->enterprises, 2);
        engine_free(e);
        buf_free(&in);
        buf_free(&dl);
        rules_unref(rs);
}

/* Adversarial input never grows memory without bound: each growth has a
 * limit and a count. */
Test(engine, memory_is_bounded)
{
        RuleSet *rs = load();
        EngineConfig cfg;
        engine_config_default(&cfg);
        cfg.max_enterprises = 10000;
        cfg.max_window_rows = 1000;
        cfg.recent_ids = 16;
        Engine *e = NULL;
        Out o = {0};
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
        Buf b = {0};
        /* a million distinct event ids for one enterprise */
        uint64_t state_after_first = 0;
        for (int i = 0; i < 1000000; i++) {
                b.len = 0;
                char id[32];
                snprintf(id, sizeof(id), "id-%d", i);
                ev(&b, id, "E1", i / 1000, "sampling", "\"result\":\"pass\"");
                engine_push(e, b.p, b.len - 1, NULL);
                if (i == 1000)
                        state_after_first = engine_stats(e)->state_bytes;
        }
        const EngineStats *st = engine_stats(e);
        cr_assert_eq(st->events_applied, 1000000);
        cr_assert_leq(st->state_bytes, state_after_first + 4096, "%llu vs %llu",
                      (unsigned long long)st->state_bytes, (unsigned long long)state_after_first);
        /* a million enterprises: the limit turns the rest away, counted */
        for (int i = 0; i < 1000000; i++) {
                b.len = 0;
                char ent[32], id[32];
                snprintf(ent, sizeof(ent), "N%d", i);
                snprintf(id, sizeof(id), "n-%d", i);
                ev(&b, id, ent, 1000, "sampling", "\"result\":\"pass\"");
                engine_push(e, b.p, b.len - 1, NULL);
        }
        st = engine_stats(e);
        cr_assert_eq(st->enterprises, 10000);
        cr_assert_eq(st->rejects[reject_index("over_limit")], 1000000 - 9999);
        /* a year of telemetry every minute into a 1h aggregate and a 2h absent */
        for (int m = 0; m < 525600; m++) {
                b.len = 0;
                char id[32];
                snprintf(id, sizeof(id), "t-%d", m);
                ev(&b, id, "E1", 1000 + m, "coldchain", "\"device_id\":\"d1\",\"temp_c\":3");
                engine_push(e, b.p, b.len - 1, NULL);
        }
        st = engine_stats(e);
        cr_assert_leq(st->window_rows, 2 * 130, "%llu rows", (unsigned long long)st->window_rows);
        engine_free(e);
        /* one window longer than the row limit: rows are dropped and counted */
        const char *names[] = {"schema.yaml", "grading.yaml", "rules.yaml"};
        const char *year = "rules:\n  - id: y\n    on: coldchain\n    when: count(coldchain within 365d) > 1000000\n";
        const char *bands = "grades:\n  - { grade: A, mode: m, inspections_per_year: 1 }\n";
        const char *texts[] = {schema, bands, year};
        size_t lens[] = {strlen(schema), strlen(bands), strlen(year)};
        DiagList dl = {0};
        RuleSet *rs2 = NULL;
        cr_assert_eq(rules_load_mem("t", names, texts, lens, 3, &dl, &rs2), 0);
        cr_assert_eq(engine_new(&e, rs2, &cfg, sink, &o), 0);
        for (int m = 0; m < 20000; m++) {
                b.len = 0;
                char id[32];
                snprintf(id, sizeof(id), "y-%d", m);
                ev(&b, id, "E1", m, "coldchain", "\"device_id\":\"d1\",\"temp_c\":3");
                engine_push(e, b.p, b.len - 1, NULL);
        }
        st = engine_stats(e);
        cr_assert_eq(st->window_rows, 1000);
        cr_assert_eq(st->window_rows_dropped, 19000);
        engine_free(e);
        rules_unref(rs2);
        diag_list_deinit(&dl);
        buf_free(&b);
        out_free(&o);
        rules_unref(rs);
}

/* ---- batches, changelog, restore ---- */

typedef struct Log {
        char **key, **val;
        size_t *klen, *vlen;
        uint32_t n, cap;
} Log;

static void log_record(void *ud, const char *key, size_t klen, const void *val, size_t vlen)
{
        Log *l = ud;
        if (l->n == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 256;
                l->key = xrealloc(l->key, l->cap * sizeof(char *));
                l->val = xrealloc(l->val, l->cap * sizeof(char *));
                l->klen = xrealloc(l->klen, l->cap * sizeof(size_t));
                l->vlen = xrealloc(l->vlen, l->cap * sizeof(size_t));
        }
        l->key[l->n] = xstrndup(key, klen);
        l->val[l->n] = xmalloc(vlen + 1);
        memcpy(l->val[l->n], val, vlen);
        l->klen[l->n] = klen;
        l->vlen[l->n] = vlen;
        l->n++;
}

/* Records of format 1 (ENGINE_STATE_VERSION 1, one record naming every rule,
 * field and aggregate), as the writer of 2715ace wrote them for story() and
 * official_story(): a daemon upgraded in place restores its changelog. */
typedef struct FixRecord {
        const char *key;
        size_t klen;
        const char *val;
        size_t vlen;
} FixRecord;
#include "tests/unit/records-v1.h"

/* The fixture's records as a log (values writable). */
static void log_fixture(Log *l, const FixRecord *fx, size_t n)
{
        for (size_t k = 0; k < n; k++)
                log_record(l, fx[k].key, fx[k].klen, fx[k].val, fx[k].vlen);
}

static void log_free(Log *l)
{
        for (uint32_t i = 0; i < l->n; i++) {
                free(l->key[i]);
                free(l->val[i]);
        }
        free(l->key);
        free(l->val);
        free(l->klen);
        free(l->vlen);
}

/* Process a stream in transactions of `size` events; every `abort_every`th
 * batch is aborted and replayed; at event `crash_at` the engine is dropped
 * and a new one restored from the changelog resumes.  The committed outputs
 * must equal one uninterrupted run, byte for byte. */
static void batches_ex(RuleSet *rs, const char *text, uint32_t size, uint32_t abort_every, uint32_t crash_at,
                       int64_t grace, bool compact, Log *log_out, EngineStats *st_out);

static void batches(RuleSet *rs, const char *text, uint32_t size, uint32_t abort_every, uint32_t crash_at,
                    int64_t grace)
{
        batches_ex(rs, text, size, abort_every, crash_at, grace, false, NULL, NULL);
}

/* The same; compact: every idle enterprise compacted after every commit,
 * abort and restore (engine_compact); the changelog records into
 * *log_out and the engine's counters at the end into *st_out if not NULL. */
static void batches_ex(RuleSet *rs, const char *text, uint32_t size, uint32_t abort_every, uint32_t crash_at,
                       int64_t grace, bool compact, Log *log_out, EngineStats *st_out)
{
        uint32_t n;
        char *copy;
        char **lines = split_lines(text, &n, &copy);
        EngineConfig cfg;
        engine_config_default(&cfg);
        cfg.grace_ms = grace;
        Out ref = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &ref), 0);
        for (uint32_t i = 0; i < n; i++)
                engine_push(e, lines[i], strlen(lines[i]), NULL);
        Buf ref_grades = {0};
        engine_grades_write(e, &ref_grades);
        engine_free(e);

        Buf committed = {0};
        Log log = {0};
        Out cur = {0};
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &cur), 0);
        uint32_t batchno = 0;
        bool crashed = false;
        for (uint32_t i = 0; i < n;) {
                uint32_t end = i + size < n ? i + size : n;
                if (!crashed && crash_at > i && crash_at < end) {
                        /* the process dies mid-batch: nothing of it is committed */
                        engine_batch_begin(e);
                        for (uint32_t k = i; k < crash_at; k++)
                                engine_push(e, lines[k], strlen(lines[k]), NULL);
                        engine_free(e);
                        crashed = true;
                        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &cur), 0);
                        for (uint32_t k = 0; k < log.n; k++)
                                cr_assert_eq(engine_restore_record(e, log.key[k], log.klen[k], log.val[k], log.vlen[k]), 0);
                        int64_t next = engine_restore_finish(e);
                        cr_assert_eq(next, (int64_t)i, "resume offset %lld, expected %u", (long long)next, i);
                        if (compact)
                                engine_compact(e, 0, 0);
                        cur.all.len = 0;
                        continue;
                }
                engine_batch_begin(e);
                cur.all.len = 0;
                for (uint32_t k = i; k < end; k++)
                        engine_push(e, lines[k], strlen(lines[k]), NULL);
                if (abort_every && ++batchno % abort_every == 0) {
                        engine_batch_abort(e); /* and the same events again */
                        if (compact)
                                engine_compact(e, 0, 0);
                        continue;
                }
                engine_batch_changes(e, end, log_record, &log);
                engine_batch_commit(e);
                if (compact)
                        engine_compact(e, 0, 0);
                buf_put(&committed, cur.all.p ? cur.all.p : "", cur.all.len);
                i = end;
        }
        /* and the state it ends in: the final grades (with the official
         * grade's state, when the rules declare it) */
        Buf grades = {0};
        if (st_out)
                *st_out = *engine_stats(e);
        engine_grades_write(e, &grades);
        engine_free(e);
        cr_assert_eq(committed.len, ref.all.len, "committed %zu bytes, reference %zu", committed.len, ref.all.len);
        cr_assert_eq(memcmp(committed.p, ref.all.p, ref.all.len), 0);
        cr_assert_str_eq(grades.p ? grades.p : "", ref_grades.p ? ref_grades.p : "");
        buf_free(&grades);
        buf_free(&ref_grades);
        buf_free(&committed);
        out_free(&cur);
        out_free(&ref);
        if (log_out)
                *log_out = log;
        else
                log_free(&log);
        free(lines);
        free(copy);
}

Test(engine, aborted_batches_leave_no_trace)
{
        RuleSet *rs = load();
        Buf in = {0};
        story(&in);
        batches(rs, in.p, 37, 3, 0, 0);
        batches(rs, in.p, 5, 2, 0, 0);
        batches(rs, in.p, 50, 2, 0, 3600000); /* with held events */
        buf_free(&in);
        rules_unref(rs);
}

Test(engine, restore_from_the_changelog_continues_exactly)
{
        RuleSet *rs = load();
        Buf in = {0};
        story(&in);
        for (uint32_t at = 50; at < 900; at += 211)
                batches(rs, in.p, 40, 0, at, 0);
        batches(rs, in.p, 40, 4, 333, 3600000);
        buf_free(&in);
        rules_unref(rs);
}

/* Held events of one time keep their arrival order through an abort and
 * a restore (the partition record lists them in the order they apply). */
Test(engine, held_ties_keep_their_order_through_abort_and_restore)
{
        RuleSet *rs = load_with(schema, tie_rules);
        Buf in = {0};
        tie_stream(&in);
        batches(rs, in.p, 7, 2, 0, 3600000);
        batches(rs, in.p, 13, 3, 0, 600000);
        for (uint32_t at = 31; at < 900; at += 197)
                batches(rs, in.p, 11, 0, at, 3600000);
        buf_free(&in);
        rules_unref(rs);
}

/* ---- two batches in flight (engine_batch_seal) ---- */

/* What the engine holds, for comparison: the grades, every graded
 * enterprise explained, the watermark. */
static void snapshot(Engine *e, Buf *b)
{
        Buf g = {0};
        engine_grades_write(e, &g);
        buf_put(b, g.p ? g.p : "", g.len);
        for (const char *p = g.p; p && (p = strstr(p, "\"enterprise_id\":\""));) {
                p += strlen("\"enterprise_id\":\"");
                const char *q = strchr(p, '"');
                char *doc = engine_explain_json(e, p, (size_t)(q - p));
                buf_puts(b, doc ? doc : "(none)");
                buf_putc(b, '\n');
                free(doc);
                p = q;
        }
        buf_printf(b, "watermark %lld\n", (long long)engine_stats(e)->watermark);
        buf_free(&g);
}

/* The snapshot of a fresh engine fed lines[0..k). */
static void replay_snapshot(RuleSet *rs, const EngineConfig *cfg, char **lines, uint32_t k, Buf *b)
{
        Out o = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, cfg, sink, &o), 0);
        for (uint32_t i = 0; i < k; i++)
                engine_push(e, lines[i], strlen(lines[i]), NULL);
        snapshot(e, b);
        engine_free(e);
        out_free(&o);
}

static void snapshot_is_replay(Engine *e, RuleSet *rs, const EngineConfig *cfg, char **lines, uint32_t k)
{
        Buf got = {0}, want = {0};
        snapshot(e, &got);
        replay_snapshot(rs, cfg, lines, k, &want);
        cr_assert_str_eq(got.p, want.p, "the state after %u events is not a replay's", k);
        buf_free(&got);
        buf_free(&want);
}

/*
 * The daemon's pipeline: batch A sealed (its records taken), batch B
 * processed while A's transaction is out; then, by `fates` in turn, A
 * commits ('c': B becomes the batch in flight), A aborts ('a': A and B
 * rolled back, A's events again), or A commits and B is aborted on its own
 * ('o': a lost assignment; B's events again).  After every rollback the
 * state is a replay's up to where it went back; the committed outputs are
 * those of one uninterrupted run, and a restore from the committed records
 * ends where that run ends.
 */
static void overlapped(RuleSet *rs, const char *text, uint32_t size, const char *fates, int64_t grace)
{
        uint32_t n;
        char *copy;
        char **lines = split_lines(text, &n, &copy);
        EngineConfig cfg;
        engine_config_default(&cfg);
        cfg.grace_ms = grace;
        Out ref = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &ref), 0);
        for (uint32_t i = 0; i < n; i++)
                engine_push(e, lines[i], strlen(lines[i]), NULL);
        Buf ref_snap = {0};
        snapshot(e, &ref_snap);
        engine_free(e);

        Buf committed = {0};
        Log log = {0};
        Out cur = {0};
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &cur), 0);
        uint32_t a = 0, a_end = 0, turn = 0, rollbacks[3] = {0};
        /* batch A: [a, a_end), its outputs the first a_len bytes of cur.all */
        engine_batch_begin(e);
        cur.all.len = 0;
        a_end = a + size < n ? a + size : n;
        for (uint32_t k = a; k < a_end; k++)
                engine_push(e, lines[k], strlen(lines[k]), NULL);
        while (a < n) {
                Log pend = {0};
                engine_batch_changes(e, a_end, log_record, &pend);
                engine_batch_seal(e);
                cr_assert(engine_batch_sealed(e));
                /* a reload or a regrade waits for the commit in flight */
                cr_assert_eq(engine_regrade(e, NULL), -EBUSY);
                size_t a_len = cur.all.len;
                uint32_t b_end = a_end + size < n ? a_end + size : n;
                bool b_open = a_end < n;
                if (b_open) {
                        engine_batch_begin(e);
                        for (uint32_t k = a_end; k < b_end; k++)
                                engine_push(e, lines[k], strlen(lines[k]), NULL);
                }
                char fate = fates[turn++ % strlen(fates)];
                if (fate == 'a' || (fate == 'o' && !b_open)) {
                        engine_batch_abort(e); /* A and B */
                        rollbacks[0]++;
                        snapshot_is_replay(e, rs, &cfg, lines, a);
                } else {
                        engine_batch_commit(e); /* A */
                        cr_assert(!engine_batch_sealed(e));
                        buf_put(&committed, cur.all.p ? cur.all.p : "", a_len);
                        for (uint32_t k = 0; k < pend.n; k++)
                                log_record(&log, pend.key[k], pend.klen[k], pend.val[k], pend.vlen[k]);
                        if (cur.all.len > a_len)
                                memmove(cur.all.p, cur.all.p + a_len, cur.all.len - a_len);
                        cur.all.len -= a_len;
                        a = a_end;
                        if (fate == 'o') {
                                engine_batch_abort(e); /* B alone */
                                rollbacks[1]++;
                                snapshot_is_replay(e, rs, &cfg, lines, a);
                        } else {
                                rollbacks[2]++;
                                a_end = b_end; /* B in flight next */
                                log_free(&pend);
                                continue;
                        }
                }
                log_free(&pend);
                /* again from a */
                engine_batch_begin(e);
                cur.all.len = 0;
                a_end = a + size < n ? a + size : n;
                for (uint32_t k = a; k < a_end; k++)
                        engine_push(e, lines[k], strlen(lines[k]), NULL);
        }
        cr_assert(rollbacks[0] > 0 || !strchr(fates, 'a'));
        cr_assert(rollbacks[1] > 0 || !strchr(fates, 'o'));
        Buf snap = {0};
        snapshot(e, &snap);
        cr_assert_str_eq(snap.p, ref_snap.p);
        engine_free(e);
        cr_assert_eq(committed.len, ref.all.len, "committed %zu bytes, reference %zu", committed.len, ref.all.len);
        cr_assert_eq(memcmp(committed.p, ref.all.p, ref.all.len), 0);
        /* the committed records restore the end of the stream */
        Out rest = {0};
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &rest), 0);
        for (uint32_t k = 0; k < log.n; k++)
                cr_assert_eq(engine_restore_record(e, log.key[k], log.klen[k], log.val[k], log.vlen[k]), 0);
        cr_assert_eq(engine_restore_finish(e), (int64_t)n);
        Buf rsnap = {0};
        snapshot(e, &rsnap);
        cr_assert_str_eq(rsnap.p, ref_snap.p);
        engine_free(e);
        buf_free(&snap);
        buf_free(&rsnap);
        buf_free(&ref_snap);
        buf_free(&committed);
        out_free(&cur);
        out_free(&rest);
        out_free(&ref);
        log_free(&log);
        free(lines);
        free(copy);
}

/* A abort after the seal rolls back both batches, to the state a replay
 * of the events before the sealed batch has. */
Test(engine, abort_after_seal_rolls_back_both_batches)
{
        RuleSet *rs = load();
        Buf in = {0};
        story(&in);
        overlapped(rs, in.p, 37, "cca", 0);
        overlapped(rs, in.p, 5, "ac", 0);
        overlapped(rs, in.p, 50, "cac", 3600000); /* with held events */
        buf_free(&in);
        rules_unref(rs);
}

/* The sealed batch committed, then the open one aborted: only the open
 * one is rolled back, to the sealed batch's end. */
Test(engine, commit_of_the_sealed_then_abort_of_the_open)
{
        RuleSet *rs = load();
        Buf in = {0};
        story(&in);
        overlapped(rs, in.p, 37, "co", 0);
        overlapped(rs, in.p, 11, "ocac", 0);
        overlapped(rs, in.p, 50, "oc", 3600000);
        buf_free(&in);
        rules_unref(rs);
        rs = load_with(schema, tie_rules);
        tie_stream(&in);
        overlapped(rs, in.p, 7, "caoc", 3600000);
        buf_free(&in);
        rules_unref(rs);
}

/* Fields of one name and type with other enums have slots of their own:
 * a record names a window's, the profile's and a snapshot's slots by name
 * and type, and the restore must take the one the aggregate (the profile,
 * the rule) reads, not the first of that name (the window was lost). */
static const char twin_schema[] =
        "envelope: { id: event_id, type: event_type, enterprise: enterprise.uscc, time: occurred_at }\n"
        "profile: enterprise\n"
        "types:\n"
        "  enterprise: { fields: { kind: [x, y] } }\n"
        "  inspection: { fields: { result: [ok, bad], kind: [a, b] } }\n"
        "  sampling: { fields: { result: [pass, fail], item: string } }\n";
static const char twin_rules[] =
        "rules:\n"
        "  - id: sampling.twice\n    on: sampling\n"
        "    when: count(sampling where result == \"fail\" within 30d) >= 2\n"
        "    message: \"{enterprise.kind}\"\n"
        "  - id: sampling.lead\n    on: sampling\n    when: result == \"fail\"\n    flags: { problem_lead: 30d }\n";

Test(engine, restore_takes_the_slot_of_the_field_it_keeps)
{
        RuleSet *rs = load_with(twin_schema, twin_rules);
        Buf in = {0};
        ev(&in, "p1", "E1", 0, "enterprise", "\"kind\":\"y\"");
        ev(&in, "s1", "E1", 1, "sampling", "\"result\":\"fail\",\"item\":\"a\"");
        ev(&in, "i1", "E1", 2, "inspection", "\"result\":\"bad\",\"kind\":\"b\"");
        ev(&in, "s2", "E1", 3, "sampling", "\"result\":\"fail\",\"item\":\"b\"");
        Out o = run(rs, in.p, 0, 0);
        cr_assert_not_null(strstr(o.all.p, "\"message\":\"y\""), "%s", o.all.p);
        out_free(&o);
        /* committed after p1 and s1, the process dies after i1 */
        batches(rs, in.p, 2, 0, 3, 0);
        buf_free(&in);
        rules_unref(rs);
}

/* ---- transactions off: a crash between the enterprises' records and the
 * partition record ---- */

static const char busy_rules[] =
        "rules:\n"
        "  - id: sampling.fail\n    on: sampling\n    when: result == \"fail\" and confirmed\n"
        "    score: 20\n    expires: 90d\n    flags: { problem_lead: 30d }\n    message: \"{item}\"\n"
        "  - id: sampling.busy\n    on: sampling\n    when: count(sampling within 1d) >= 40\n"
        "    score: 5\n    expires: 30d\n    message: \"{item}\"\n";

/* Three batches: BIG gets 5, 30 and 10 events (more in the second than
 * limits.recent_ids), S1..S3 a few each; events a minute apart. */
static void busy_stream(Buf *b, uint32_t bounds[3])
{
        static const uint32_t big[3] = {5, 30, 10};
        char id[32], f[96];
        uint32_t n = 0, minute = 0;
        for (int k = 0; k < 3; k++) {
                for (uint32_t i = 0; i < big[k]; i++) {
                        snprintf(id, sizeof(id), "big-%d-%u", k, i);
                        snprintf(f, sizeof(f), "\"result\":\"%s\",\"confirmed\":true,\"item\":\"i%u\"",
                                 i % 7 == 3 ? "fail" : "pass", i);
                        ev(b, id, "BIG", minute++, "sampling", f);
                        n++;
                        if (i % 4 == 0) {
                                char ent[8];
                                snprintf(ent, sizeof(ent), "S%u", 1 + i / 4 % 3);
                                snprintf(id, sizeof(id), "%s-%d-%u", ent, k, i);
                                ev(b, id, ent, minute++, "sampling", "\"result\":\"fail\",\"confirmed\":true");
                                n++;
                        }
                }
                bounds[k] = n;
        }
}

static bool line_is(const char *line, size_t len, const char *l2, size_t len2)
{
        return len == len2 && memcmp(line, l2, len) == 0;
}

/* How many lines of text are line. */
static uint32_t count_line(const char *text, const char *line, size_t len)
{
        uint32_t n = 0;
        for (const char *p = text; p && *p;) {
                const char *nl = strchr(p, '\n');
                size_t l = nl ? (size_t)(nl - p) : strlen(p);
                n += line_is(p, l, line, len);
                p = nl ? nl + 1 : NULL;
        }
        return n;
}

enum { WRITTEN_NONE, WRITTEN_SOME, WRITTEN_ALL };
enum { THEN_NOTHING, THEN_RELOAD, THEN_COMPACT };

/*
 * Batch 1 committed; batch 2 delivers its outputs, its replay mark and the
 * records of `written` of its enterprises (none; BIG's; all), then
 * dies before its partition record.  A fresh engine restores that
 * changelog in log order (engine_restore_mark where the mark is), is
 * reloaded or compacted (`then`), reads batch 2 again below the mark,
 * then batch 3.  Its state ends as one uninterrupted run's; every output
 * of that run was delivered, and one of an enterprise whose record was
 * written exactly once.
 */
static void crash_before_partition_record(int written, int then, int64_t grace)
{
        RuleSet *rs = load_with(schema, busy_rules);
        Buf in = {0};
        uint32_t bounds[3], n;
        busy_stream(&in, bounds);
        char *copy;
        char **lines = split_lines(in.p, &n, &copy);
        cr_assert_eq(n, bounds[2]);
        EngineConfig cfg;
        engine_config_default(&cfg);
        cfg.grace_ms = grace;
        cr_assert_lt(cfg.recent_ids, 30);

        Out ref = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &ref), 0);
        for (uint32_t i = 0; i < n; i++)
                engine_push(e, lines[i], strlen(lines[i]), NULL);
        engine_flush(e);
        Buf want = {0};
        snapshot(e, &want);
        engine_free(e);

        /* the run that dies */
        Out cur = {0};
        Log log = {0}, l2 = {0};
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &cur), 0);
        SourcePos src = {.topic = "risk.events", .partition = 0};
        engine_batch_begin(e);
        for (uint32_t i = 0; i < bounds[0]; i++) {
                src.offset = i;
                engine_push(e, lines[i], strlen(lines[i]), &src);
        }
        engine_batch_changes(e, bounds[0], log_record, &log);
        engine_batch_commit(e);
        engine_batch_begin(e);
        for (uint32_t i = bounds[0]; i < bounds[1]; i++) {
                src.offset = i;
                engine_push(e, lines[i], strlen(lines[i]), &src);
        }
        engine_batch_changes(e, bounds[1], log_record, &l2);
        engine_free(e);
        Buf delivered = {0};
        buf_put(&delivered, cur.all.p, cur.all.len);

        /* the restore: batch 1's records, the mark, batch 2's written ones */
        Out out2 = {0};
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &out2), 0);
        for (uint32_t k = 0; k < log.n; k++)
                cr_assert_eq(engine_restore_record(e, log.key[k], log.klen[k], log.val[k], log.vlen[k]), 0);
        engine_restore_mark(e);
        uint32_t nwritten = 0, nrecords = 0;
        for (uint32_t k = 0; k < l2.n; k++) {
                if (l2.key[k][0] == '\x01')
                        continue; /* the partition record (and no dictionary: batch 1 wrote it) */
                nrecords++;
                if (written == WRITTEN_NONE ||
                    (written == WRITTEN_SOME && strcmp(l2.key[k], "BIG")))
                        continue;
                cr_assert_eq(engine_restore_record(e, l2.key[k], l2.klen[k], l2.val[k], l2.vlen[k]), 0);
                nwritten++;
        }
        /* BIG's and some of S1..S3's (under the grace, not those whose
         * events of the batch are all still held) */
        cr_assert_geq(nrecords, 2);
        cr_assert_eq(nwritten, written == WRITTEN_NONE ? 0 : written == WRITTEN_SOME ? 1 : nrecords);
        cr_assert_eq(engine_restore_finish(e), (int64_t)bounds[0]);
        if (then == THEN_RELOAD) {
                Engine *nx = NULL;
                RuleSet *rs2 = load_with(schema, busy_rules);
                cr_assert_eq(engine_reload(e, rs2, &nx, NULL), 0);
                engine_batch_commit(nx);
                engine_free(e);
                rules_unref(rs2);
                e = nx;
        } else if (then == THEN_COMPACT) {
                engine_compact(e, 0, 0);
        }
        out2.all.len = 0; /* the reload's adjustments (none: the same rules) aside */
        engine_batch_begin(e);
        for (uint32_t i = bounds[0]; i < n; i++) {
                src.offset = i;
                src.replay = i < bounds[1];
                src.replay_marks = i < bounds[1] ? 1 : 0;
                engine_push(e, lines[i], strlen(lines[i]), &src);
        }
        engine_flush(e);
        engine_batch_commit(e);
        Buf got = {0};
        snapshot(e, &got);
        cr_assert_str_eq(got.p, want.p, "written %d, then %d, grace %lld", written, then, (long long)grace);
        if (written != WRITTEN_NONE)
                cr_assert_gt(engine_stats(e)->replayed, cfg.recent_ids);
        engine_free(e);

        /* the outputs: each of the uninterrupted run's delivered, the
         * enterprises whose record was written none twice */
        buf_put(&delivered, out2.all.p ? out2.all.p : "", out2.all.len);
        buf_putc(&delivered, 0);
        buf_putc(&ref.all, 0);
        for (const char *p = ref.all.p; *p;) {
                const char *nl = strchr(p, '\n');
                size_t l = (size_t)(nl - p);
                if (strncmp(p, "--grades--", 10) != 0) {
                        bool once = written == WRITTEN_ALL || (written == WRITTEN_SOME && (strstr(p, "\"BIG\"") < nl &&
                                                                                            strstr(p, "\"BIG\"")));
                        uint32_t c = count_line(delivered.p, p, l);
                        cr_assert(once ? c == 1 : c >= 1, "%.*s delivered %u times", (int)l, p, c);
                }
                p = nl + 1;
        }
        buf_free(&delivered);
        buf_free(&got);
        buf_free(&want);
        out_free(&ref);
        out_free(&cur);
        out_free(&out2);
        log_free(&log);
        log_free(&l2);
        free(lines);
        free(copy);
        buf_free(&in);
        rules_unref(rs);
}

Test(engine, crash_before_the_partition_record_applies_each_event_once)
{
        for (int w = WRITTEN_NONE; w <= WRITTEN_ALL; w++)
                for (int t = THEN_NOTHING; t <= THEN_COMPACT; t++) {
                        crash_before_partition_record(w, t, 0);
                        crash_before_partition_record(w, t, 1800000);
                }
}

/* ---- the official grade (grading.yaml official:) ---- */

static const char off_schema[] =
        "envelope: { id: event_id, type: event_type, enterprise: enterprise.uscc, time: occurred_at }\n"
        "profile: enterprise\n"
        "types:\n"
        "  enterprise: { fields: { category: [dairy, catering], format: [producer, operator] } }\n"
        "  inspection: { fields: { kind: [routine, lead], dynamic_risk_score: number } }\n"
        "  sampling: { fields: { result: [pass, fail], measured: number, limit: number } }\n"
        "  credit: { fields: { kind: [penalty, serious, gmp] } }\n";
static const char off_grading[] =
        "dwell: 3d\n"
        "official: { cycle: 1mo, cycle_start: \"01-01\", offset: \"+08:00\" }\n"
        "grades:\n"
        "  - { grade: A, max: 30, mode: double_random, inspections_per_year: 1 }\n"
        "  - { grade: B, max: 45, mode: double_random, inspections_per_year: 2 }\n"
        "  - { grade: C, max: 60, mode: double_random, inspections_per_year: 3 }\n"
        "  - { grade: D, mode: key_inspection, inspections_per_year: 4 }\n"
        "overrides:\n"
        "  - { when: state.grade == \"C\" and enterprise.format == \"producer\", mode: key_inspection }\n"
        "  - { when: state.flags.problem_lead, mode: flying_inspection }\n";
static const char off_rules[] =
        "rules:\n"
        "  - id: profile.dairy\n    on: enterprise\n    when: category == \"dairy\"\n    score: 30\n"
        "  - id: profile.catering\n    on: enterprise\n    when: category == \"catering\"\n    score: 15\n"
        "  - id: inspection.evaluation\n    on: inspection\n    when: exists(dynamic_risk_score)\n"
        "    part: dynamic\n    score: dynamic_risk_score\n"
        "  - id: inspection.lead_answered\n    on: inspection\n    when: kind == \"lead\"\n    clears: [problem_lead]\n"
        "  - id: sampling.fail\n    on: sampling\n    when: result == \"fail\"\n    raise: 1\n"
        "    score: (measured - limit) * 2\n    max_score: 15\n    replaces: true\n    expires: 20d\n"
        "    flags: { problem_lead: 40d }\n"
        "  - id: credit.serious\n    on: credit\n    when: kind == \"serious\"\n    raise: 2\n"
        "  - id: credit.gmp\n    on: credit\n    when: kind == \"gmp\"\n    lower: 1\n";

static RuleSet *load_official(void)
{
        const char *names[] = {"schema.yaml", "grading.yaml", "rules.yaml"};
        const char *texts[] = {off_schema, off_grading, off_rules};
        size_t lens[] = {strlen(off_schema), strlen(off_grading), strlen(off_rules)};
        DiagList dl = {0};
        RuleSet *rs = NULL;
        int r = rules_load_mem("t", names, texts, lens, 3, &dl, &rs);
        if (r)
                diag_print_text(stderr, &dl, false);
        cr_assert_eq(r, 0);
        diag_list_deinit(&dl);
        return rs;
}

/* Three enterprises over fourteen months of a monthly cycle: profiles,
 * evaluations that replace each other, triggers, downgrades, leads opened
 * and answered, index points from event values, and months without
 * events, whose boundaries re-assess by timer. */
static void official_story(Buf *b)
{
        const int64_t day = 1440;
        ev(b, "p1", "E1", 0, "enterprise", "\"category\":\"catering\",\"format\":\"producer\"");
        ev(b, "p2", "E2", 1, "enterprise", "\"category\":\"dairy\",\"format\":\"operator\"");
        ev(b, "p3", "E3", 2, "enterprise", "\"category\":\"catering\",\"format\":\"operator\"");
        char id[32], f[128];
        static const char *const ents[] = {"E1", "E2", "E3"};
        for (int d = 3; d < 420; d += 3) {
                const char *en = ents[d % 3];
                snprintf(id, sizeof(id), "x%d", d);
                switch ((d / 3) % 7) {
                case 0:
                        snprintf(f, sizeof(f), "\"kind\":\"routine\",\"dynamic_risk_score\":%d", (d * 7) % 70);
                        ev(b, id, en, d * day, "inspection", f);
                        break;
                case 1:
                        if (d % 2)
                                break; /* a quiet spell */
                        snprintf(f, sizeof(f), "\"result\":\"fail\",\"measured\":%d,\"limit\":2", d % 11);
                        ev(b, id, en, d * day + 7, "sampling", f);
                        break;
                case 2: ev(b, id, en, d * day, "inspection", "\"kind\":\"lead\""); break;
                case 3: ev(b, id, en, d * day, "credit", d % 4 ? "\"kind\":\"gmp\"" : "\"kind\":\"serious\""); break;
                case 4: ev(b, id, en, d * day, "sampling", "\"result\":\"pass\""); break;
                default: break;
                }
        }
}

Test(engine, official_grade_follows_the_cycle)
{
        RuleSet *rs = load_official();
        Buf in = {0};
        official_story(&in);
        Out o = run(rs, in.p, 0, 0);
        /* boundaries re-assess without events, and raises are capped */
        cr_assert_not_null(strstr(o.all.p, "\"cause\":\"cycle\""), "%s", o.all.p);
        cr_assert_not_null(strstr(o.all.p, "\"raise\":2"));
        cr_assert_null(strstr(o.all.p, "\"raise\":3"));
        cr_assert_null(strstr(o.all.p, "\"lower\":2"));
        cr_assert_not_null(strstr(o.all.p, "\"official\":{\"grade\":"));
        /* evaluations run up to 63: the dynamic part is capped at 60 */
        for (int v = 61; v < 70; v++) {
                char t[32];
                snprintf(t, sizeof(t), "\"dynamic\":%d,", v);
                cr_assert_null(strstr(o.all.p, t), "%s", t);
        }
        cr_assert_not_null(strstr(o.all.p, "\"dynamic\":60,"));
        out_free(&o);
        buf_free(&in);
        rules_unref(rs);
}

static int64_t utc(const char *s)
{
        int64_t ms = 0;
        cr_assert_eq(time_parse(s, strlen(s), &ms), 0, "%s", s);
        return ms;
}

/* Cycle starts: at 00:00 of the start date in the offset, the cycle
 * holding an instant (a boundary belongs to the cycle it starts), the next
 * one; half-years from 1 April in China time, months from the 15th at
 * -05:00, and years before 1970. */
Test(engine, official_cycles_start_on_their_dates)
{
        Official y = {.declared = true, .cycle_months = 12, .start_month = 1, .start_day = 1, .offset_ms = 8 * 3600000LL};
        cr_assert_eq(score_cycle_start(&y, utc("2025-06-01T00:00:00Z")), utc("2024-12-31T16:00:00Z"));
        cr_assert_eq(score_cycle_start(&y, utc("2024-12-31T16:00:00Z")), utc("2024-12-31T16:00:00Z"));
        cr_assert_eq(score_cycle_start(&y, utc("2024-12-31T15:59:59.999Z")), utc("2023-12-31T16:00:00Z"));
        cr_assert_eq(score_cycle_next(&y, utc("2024-12-31T16:00:00Z")), utc("2025-12-31T16:00:00Z"));
        Official h = {.declared = true, .cycle_months = 6, .start_month = 4, .start_day = 1, .offset_ms = 8 * 3600000LL};
        cr_assert_eq(score_cycle_start(&h, utc("2025-03-31T16:00:00Z")), utc("2025-03-31T16:00:00Z"));
        cr_assert_eq(score_cycle_start(&h, utc("2025-03-31T15:00:00Z")), utc("2024-09-30T16:00:00Z"));
        cr_assert_eq(score_cycle_start(&h, utc("2025-02-01T00:00:00Z")), utc("2024-09-30T16:00:00Z"));
        cr_assert_eq(score_cycle_next(&h, utc("2024-09-30T16:00:00Z")), utc("2025-03-31T16:00:00Z"));
        Official m = {.declared = true, .cycle_months = 1, .start_month = 1, .start_day = 15, .offset_ms = -5 * 3600000LL};
        cr_assert_eq(score_cycle_start(&m, utc("2025-03-15T04:59:59Z")), utc("2025-02-15T05:00:00Z"));
        cr_assert_eq(score_cycle_start(&m, utc("2025-03-15T05:00:00Z")), utc("2025-03-15T05:00:00Z"));
        cr_assert_eq(score_cycle_next(&m, utc("2024-12-15T05:00:00Z")), utc("2025-01-15T05:00:00Z"));
        cr_assert_eq(score_cycle_start(&m, utc("1969-07-20T20:17:00Z")), utc("1969-07-15T05:00:00Z"));
        cr_assert_eq(score_cycle_start(&y, utc("1969-07-20T20:17:00Z")), utc("1968-12-31T16:00:00Z"));
}

/* The official state (cycle, assessment, steps, the latest evaluation)
 * rolls back with an aborted batch and is restored from the changelog:
 * the outputs and the final grades equal one uninterrupted run. */
Test(engine, official_state_survives_abort_and_restore)
{
        RuleSet *rs = load_official();
        Buf in = {0};
        official_story(&in);
        batches(rs, in.p, 7, 3, 0, 0);
        batches(rs, in.p, 3, 2, 0, 0);
        for (uint32_t at = 14; at < 150; at += 23)
                batches(rs, in.p, 9, 0, at, 0);
        batches(rs, in.p, 11, 4, 77, 0);
        buf_free(&in);
        rules_unref(rs);
}

/* A record with the official state restores into rules without the
 * official model (the state is ignored) and back. */
Test(engine, official_state_records_cross_rules)
{
        RuleSet *ro = load_official();
        Buf in = {0};
        official_story(&in);
        EngineConfig cfg;
        engine_config_default(&cfg);
        Out o = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, ro, &cfg, sink, &o), 0);
        engine_batch_begin(e);
        for (const char *p = in.p; *p;) {
                const char *nl = strchr(p, '\n');
                engine_push(e, p, (size_t)(nl - p), NULL);
                p = nl + 1;
        }
        Log log = {0};
        engine_batch_changes(e, 1, log_record, &log);
        engine_batch_commit(e);
        Buf want = {0};
        engine_grades_write(e, &want);
        engine_free(e);
        cr_assert_not_null(strstr(want.p, "\"official\""));
        /* the same schema without official: in grading.yaml */
        const char *names[] = {"schema.yaml", "grading.yaml", "rules.yaml"};
        char *g2 = xstrdup(off_grading);
        char *at = strstr(g2, "official:");
        memset(at, ' ', strchr(at, '\n') - at);
        static const char plain_rules[] =
                "rules:\n  - id: profile.dairy\n    on: enterprise\n    when: category == \"dairy\"\n    score: 30\n"
                "  - id: sampling.fail\n    on: sampling\n    when: result == \"fail\"\n    flags: { problem_lead: 40d }\n";
        const char *texts[] = {off_schema, g2, plain_rules};
        size_t lens[] = {strlen(off_schema), strlen(g2), strlen(plain_rules)};
        DiagList dl = {0};
        RuleSet *rp = NULL;
        cr_assert_eq(rules_load_mem("t", names, texts, lens, 3, &dl, &rp), 0);
        cr_assert_eq(engine_new(&e, rp, &cfg, sink, &o), 0);
        for (uint32_t k = 0; k < log.n; k++)
                cr_assert_eq(engine_restore_record(e, log.key[k], log.klen[k], log.val[k], log.vlen[k]), 0);
        engine_restore_finish(e);
        Buf plain = {0};
        engine_grades_write(e, &plain);
        cr_assert_null(strstr(plain.p, "\"official\""));
        engine_free(e);
        /* and back: the official state is what it was */
        cr_assert_eq(engine_new(&e, ro, &cfg, sink, &o), 0);
        for (uint32_t k = 0; k < log.n; k++)
                cr_assert_eq(engine_restore_record(e, log.key[k], log.klen[k], log.val[k], log.vlen[k]), 0);
        engine_restore_finish(e);
        Buf back = {0};
        engine_grades_write(e, &back);
        cr_assert_str_eq(back.p, want.p);
        engine_free(e);
        buf_free(&back);
        buf_free(&plain);
        buf_free(&want);
        free(g2);
        diag_list_deinit(&dl);
        rules_unref(rp);
        log_free(&log);
        out_free(&o);
        buf_free(&in);
        rules_unref(ro);
}

/* ---- live reload (engine_reload) ---- */

static RuleSet *load_rules(const char *rule_text)
{
        return load_with(schema, rule_text);
}

/* A copy of text where the first place that reads find starts with over
 * instead (an edit of the same length, e.g. one rule's score). */
static char *text_edited(const char *text, const char *find, const char *over)
{
        char *t = xstrdup(text);
        char *at = strstr(t, find);
        cr_assert_not_null(at, "'%s' not in the rules", find);
        memcpy(at, over, strlen(over));
        return t;
}

/* The index of the first line holding needle (n when none). */
static uint32_t line_with(char **lines, uint32_t n, const char *needle)
{
        uint32_t i = 0;
        while (i < n && !strstr(lines[i], needle))
                i++;
        return i;
}

/* The story's lines [0, at) with rs1, then a reload to rs2, then the rest;
 * the outputs, the final grades and E1's explanation at the reload. */
static Out run_reloading(RuleSet *rs1, RuleSet *rs2, const char *text, uint32_t at, char **explain_before,
                         char **explain_after)
{
        Out o = {0};
        EngineConfig cfg;
        engine_config_default(&cfg);
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs1, &cfg, sink, &o), 0);
        uint32_t line = 0;
        for (const char *p = text; *p; line++) {
                if (line == at) {
                        Engine *n = NULL;
                        if (explain_before)
                                *explain_before = engine_explain_json(e, "E1", 2);
                        cr_assert_eq(engine_reload(e, rs2, &n, NULL), 0);
                        engine_batch_commit(n);
                        engine_free(e);
                        e = n;
                        if (explain_after)
                                *explain_after = engine_explain_json(e, "E1", 2);
                }
                const char *nl = strchr(p, '\n');
                size_t l = nl ? (size_t)(nl - p) : strlen(p);
                engine_push(e, p, l, NULL);
                p += l + (nl ? 1 : 0);
        }
        engine_flush(e);
        buf_puts(&o.all, "--grades--\n");
        engine_grades_write(e, &o.all);
        const EngineStats *st = engine_stats(e);
        buf_printf(&o.all, "--events in %llu--\n", (unsigned long long)st->events_in);
        engine_free(e);
        return o;
}

Test(engine, reload_with_unchanged_rules_is_invisible)
{
        RuleSet *rs = load();
        Buf in = {0};
        story(&in);
        Out ref = run_reloading(rs, rs, in.p, UINT32_MAX, NULL, NULL);
        for (uint32_t at = 3; at < 900; at += 149) {
                /* a separately compiled copy: equal fingerprints, other pointers */
                RuleSet *rs2 = load();
                Out o = run_reloading(rs, rs2, in.p, at, NULL, NULL);
                cr_assert_str_eq(o.all.p, ref.all.p, "reload at line %u changed the outputs", at);
                out_free(&o);
                rules_unref(rs2);
        }
        out_free(&ref);
        buf_free(&in);
        rules_unref(rs);
}

Test(engine, reload_drops_only_the_state_of_changed_rules)
{
        RuleSet *rs = load();
        /* sampling.fail scores 25 instead of 20: changed; every other rule
         * compiles as before; sampling.pass is new */
        char *changed = text_edited(rules, "score: 20\n    expires: 90d", "score: 25");
        Buf r2 = {0};
        buf_puts(&r2, changed);
        buf_puts(&r2, "  - id: sampling.pass\n    on: sampling\n    when: result == \"pass\"\n");
        RuleSet *rs2 = load_rules(r2.p);
        cr_assert_neq(rs->rules[1].fingerprint, rs2->rules[1].fingerprint);
        cr_assert_eq(rs->rules[2].fingerprint, rs2->rules[2].fingerprint);

        Buf in = {0};
        story(&in);
        /* the line after E1's failed sample s1 (minute 200) */
        const char *s1 = strstr(in.p, "\"event_id\":\"s1\"");
        uint32_t line = 0;
        for (const char *p = in.p; p < s1; p++)
                line += *p == '\n';
        char *before = NULL, *after = NULL;
        Out o = run_reloading(rs, rs2, in.p, line + 2, &before, &after);
        cr_assert_not_null(before);
        cr_assert_not_null(after);
        /* before: the failure's points and the excursion's; after: only the
         * excursion's (coldchain.warm did not change); the flag stays */
        cr_assert_not_null(strstr(before, "\"sampling.fail\""), "%s", before);
        cr_assert_not_null(strstr(before, "\"coldchain.warm\""), "%s", before);
        /* its open alert stays (docs/state.md: a changed rule keeps its alerts) */
        cr_assert_null(strstr(after, "\"sampling.fail\",\"points\""), "%s", after);
        cr_assert_not_null(strstr(after, "\"coldchain.warm\""), "%s", after);
        cr_assert_not_null(strstr(after, "problem_lead"), "%s", after);
        /* the profile rule (unchanged) still counts: static 20 */
        cr_assert_not_null(strstr(after, "\"static_score\":20"), "%s", after);
        /* the new rule answers E2's passing sample (minute 210, after the reload) */
        cr_assert_not_null(strstr(o.all.p, "\"rule_id\":\"sampling.pass\""));
        free(before);
        free(after);
        free(changed);
        buf_free(&r2);
        out_free(&o);
        buf_free(&in);
        rules_unref(rs2);
        rules_unref(rs);
}

/* Two reloads at one watermark, each dropping points of a rule it changed:
 * two adjustments with cause reload for E1, at the same time and with the
 * same grades, that a consumer de-duplicating by adjustment_id must keep
 * apart (the second carries the score in force). */
Test(engine, two_reloads_at_one_watermark_give_two_adjustment_ids)
{
        RuleSet *rs = load();
        char *t2 = text_edited(rules, "score: 20\n    expires: 90d", "score: 25");
        RuleSet *rs2 = load_rules(t2);
        char *t3 = text_edited(t2, "score: 5\n    expires: 30d", "score: 6");
        RuleSet *rs3 = load_rules(t3);

        Buf in = {0};
        story(&in);
        uint32_t n;
        char *copy;
        char **lines = split_lines(in.p, &n, &copy);
        uint32_t cut = line_with(lines, n, "\"s3\""); /* after E2's failed sample s3: E1 holds both rules' points */
        cr_assert_lt(cut, n);
        EngineConfig cfg;
        engine_config_default(&cfg);
        Out o = {0};
        Engine *e = NULL, *e2 = NULL, *e3 = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
        engine_batch_begin(e);
        for (uint32_t k = 0; k <= cut; k++)
                engine_push(e, lines[k], strlen(lines[k]), NULL);
        engine_batch_commit(e);
        o.all.len = 0;
        cr_assert_eq(engine_reload(e, rs2, &e2, NULL), 0);
        engine_batch_commit(e2);
        cr_assert_eq(engine_reload(e2, rs3, &e3, NULL), 0);
        engine_batch_commit(e3);
        /* E1's reload adjustments, in order */
        char ids[2][17], ts[2][32];
        double score[2];
        int k = 0;
        for (const char *p = o.all.p; p && *p && k < 3; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
                if (strncmp(p, "{\"schema\":\"riskd.adjustment/", 28) || !strstr(p, "\"cause\":\"reload\"") ||
                    strncmp(strstr(p, "\"enterprise_id\":") + 16, "\"E1\"", 4))
                        continue;
                cr_assert_lt(k, 2, "more than two reload adjustments for E1:\n%s", o.all.p);
                const char *q = strstr(p, "\"adjustment_id\":\"") + 17;
                memcpy(ids[k], q, 16);
                ids[k][16] = 0;
                q = strstr(p, "\"ts\":\"") + 6;
                snprintf(ts[k], sizeof(ts[k]), "%.*s", (int)(strchr(q, '"') - q), q);
                score[k] = strtod(strstr(p, "\"score\":") + 8, NULL);
                k++;
        }
        cr_assert_eq(k, 2, "E1's reload adjustments:\n%s", o.all.p);
        cr_assert_str_eq(ts[0], ts[1]);
        cr_assert_str_neq(ids[0], ids[1], "one id for two reloads: %s", ids[0]);
        cr_assert_lt(score[1], score[0], "the second reload dropped coldchain.warm's points too");
        engine_free(e);
        engine_free(e2);
        engine_free(e3);
        free(lines);
        free(copy);
        free(t2);
        free(t3);
        out_free(&o);
        buf_free(&in);
        rules_unref(rs3);
        rules_unref(rs2);
        rules_unref(rs);
}

/* The changelog after a reload: the records the reload's batch wrote, over
 * those written before it, restore under the new rules exactly what the
 * reload left (a restart after it changes nothing), and both go on alike. */
Test(engine, reload_records_restore_what_the_reload_left)
{
        RuleSet *rs = load();
        char *changed = text_edited(rules, "score: 20\n    expires: 90d", "score: 25");
        RuleSet *rs2 = load_rules(changed);

        Buf in = {0};
        story(&in);
        uint32_t n;
        char *copy;
        char **lines = split_lines(in.p, &n, &copy);
        uint32_t cut = line_with(lines, n, "\"s3\"") + 3; /* after E2's failed sample s3 (minute 220) */
        cr_assert_lt(cut, n);

        EngineConfig cfg;
        engine_config_default(&cfg);
        Out o = {0}, o2 = {0};
        Log log = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
        for (uint32_t i = 0; i < cut; i += 40) {
                engine_batch_begin(e);
                for (uint32_t k = i; k < cut && k < i + 40; k++)
                        engine_push(e, lines[k], strlen(lines[k]), NULL);
                engine_batch_changes(e, i + 40 < cut ? i + 40 : cut, log_record, &log);
                engine_batch_commit(e);
        }
        char *before = engine_explain_json(e, "E1", 2);
        cr_assert_not_null(strstr(before, "\"sampling.fail\""), "%s", before);

        Engine *nx = NULL;
        EngineReload rep;
        cr_assert_eq(engine_reload(e, rs2, &nx, &rep), 0);
        cr_assert_eq(rep.rules_changed, 1);
        cr_assert_eq(rep.rules_kept, 4);
        cr_assert_eq(rep.rules_added + rep.rules_removed, 0);
        cr_assert_eq(rep.enterprises, 2);
        cr_assert_eq(rep.state_dropped, 2, "E1's and E2's sampling.fail points: %llu",
                     (unsigned long long)rep.state_dropped);
        cr_assert_eq(rep.rescored, 2);
        uint32_t nlog = log.n;
        engine_batch_changes(nx, cut, log_record, &log);
        engine_batch_commit(nx);
        /* and the dictionary of the new rules, before them */
        cr_assert_eq(log.n - nlog, rep.records + 2, "%u records for %llu enterprises, the partition and the dictionary",
                     log.n - nlog, (unsigned long long)rep.records);
        cr_assert_eq(memcmp(log.key[nlog], ENGINE_DICT_KEY, strlen(ENGINE_DICT_KEY)), 0);
        engine_free(e);

        Engine *r = NULL;
        cr_assert_eq(engine_new(&r, rs2, &cfg, sink, &o2), 0);
        for (uint32_t k = 0; k < log.n; k++)
                cr_assert_eq(engine_restore_record(r, log.key[k], log.klen[k], log.val[k], log.vlen[k]), 0);
        cr_assert_eq(engine_restore_finish(r), (int64_t)cut);
        const char *ents[] = {"E1", "E2"};
        for (int i = 0; i < 2; i++) {
                char *a = engine_explain_json(nx, ents[i], 2), *b = engine_explain_json(r, ents[i], 2);
                cr_assert_str_eq(b, a, "%s restored from the changelog differs from the reloaded state", ents[i]);
                cr_assert_null(strstr(a, "\"sampling.fail\",\"points\""), "%s", a);
                free(a);
                free(b);
        }
        o.all.len = 0;
        for (uint32_t k = cut; k < n; k++) {
                engine_push(nx, lines[k], strlen(lines[k]), NULL);
                engine_push(r, lines[k], strlen(lines[k]), NULL);
        }
        engine_flush(nx);
        engine_flush(r);
        engine_grades_write(nx, &o.all);
        engine_grades_write(r, &o2.all);
        cr_assert_str_eq(o2.all.p, o.all.p);
        engine_free(nx);
        engine_free(r);
        free(before);
        free(lines);
        free(copy);
        free(changed);
        log_free(&log);
        out_free(&o);
        out_free(&o2);
        buf_free(&in);
        rules_unref(rs2);
        rules_unref(rs);
}

/* A restart with changed rules is a reload: the records (each with its
 * rules' fingerprints, the partition record with the rules version)
 * restored under the new rules drop what the reload drops, the Engine is due
 * to grade everyone again, and doing so gives the reload's adjustments,
 * byte for byte, and the same state; an aborted re-grade is due again. */
Test(engine, restart_with_changed_rules_is_a_reload)
{
        RuleSet *rs = load();
        char *changed = text_edited(rules, "score: 20\n    expires: 90d", "score: 25");
        char *at = strstr(changed, "category == \"dairy\"\n    score: 20");
        cr_assert_not_null(at);
        memcpy(strstr(at, "20"), "50", 2); /* the static rule: kept at its new score, E1 rises to C */
        RuleSet *rs2 = load_rules(changed);

        Buf in = {0};
        story(&in);
        uint32_t n;
        char *copy;
        char **lines = split_lines(in.p, &n, &copy);
        uint32_t cut = line_with(lines, n, "\"s3\"") + 3;

        EngineConfig cfg;
        engine_config_default(&cfg);
        Out oa = {0}, ob = {0};
        Log log = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &oa), 0);
        engine_batch_begin(e);
        for (uint32_t k = 0; k < cut; k++)
                engine_push(e, lines[k], strlen(lines[k]), NULL);
        engine_batch_changes(e, cut, log_record, &log);
        engine_batch_commit(e);

        /* A: a live reload */
        oa.all.len = 0;
        Engine *a = NULL;
        EngineReload ra;
        cr_assert_eq(engine_reload(e, rs2, &a, &ra), 0);
        engine_batch_commit(a);
        cr_assert_not_null(strstr(oa.all.p, "\"cause\":\"reload\""), "%s", oa.all.p);
        cr_assert_not_null(strstr(oa.all.p, rs->version), "%s", oa.all.p);
        engine_free(e);

        /* B: a restart under the new rules from the changelog */
        Engine *b = NULL;
        cr_assert_eq(engine_new(&b, rs2, &cfg, sink, &ob), 0);
        for (uint32_t k = 0; k < log.n; k++)
                cr_assert_eq(engine_restore_record(b, log.key[k], log.klen[k], log.val[k], log.vlen[k]), 0);
        engine_restore_finish(b);
        cr_assert(engine_regrade_due(b));
        EngineReload rb;
        cr_assert_eq(engine_regrade(b, &rb), 0);
        engine_batch_abort(b); /* the transaction failed: nothing happened, still due */
        cr_assert(engine_regrade_due(b));
        ob.all.len = 0;
        cr_assert_eq(engine_regrade(b, &rb), 0);
        cr_assert(!engine_regrade_due(b));
        engine_batch_commit(b);
        cr_assert_str_eq(ob.all.p, oa.all.p);
        cr_assert_str_eq(rb.rules_before, rs->version);
        cr_assert_eq(rb.state_dropped, ra.state_dropped);
        cr_assert_eq(rb.regraded, ra.regraded);
        cr_assert_eq(rb.records, ra.records);
        const char *ents[] = {"E1", "E2"};
        for (int i = 0; i < 2; i++) {
                char *x = engine_explain_json(a, ents[i], 2), *y = engine_explain_json(b, ents[i], 2);
                cr_assert_str_eq(y, x);
                cr_assert_null(strstr(x, "\"sampling.fail\",\"points\""), "%s", x);
                free(x);
                free(y);
        }
        /* the same rules again: nothing is due */
        Engine *c = NULL;
        Out oc = {0};
        cr_assert_eq(engine_new(&c, rs, &cfg, sink, &oc), 0);
        for (uint32_t k = 0; k < log.n; k++)
                engine_restore_record(c, log.key[k], log.klen[k], log.val[k], log.vlen[k]);
        engine_restore_finish(c);
        cr_assert(!engine_regrade_due(c));
        engine_free(c);
        out_free(&oc);

        oa.all.len = ob.all.len = 0;
        for (uint32_t k = cut; k < n; k++) {
                engine_push(a, lines[k], strlen(lines[k]), NULL);
                engine_push(b, lines[k], strlen(lines[k]), NULL);
        }
        engine_flush(a);
        engine_flush(b);
        engine_grades_write(a, &oa.all);
        engine_grades_write(b, &ob.all);
        cr_assert_str_eq(ob.all.p, oa.all.p);
        engine_free(a);
        engine_free(b);
        free(lines);
        free(copy);
        free(changed);
        log_free(&log);
        out_free(&oa);
        out_free(&ob);
        buf_free(&in);
        rules_unref(rs2);
        rules_unref(rs);
}

/* ---- snapshots: what a timer firing says about the last event ---- */

static const char snap_schema[] =
        "envelope: { id: event_id, type: event_type, enterprise: enterprise.uscc, time: occurred_at }\n"
        "profile: enterprise\n"
        "types:\n"
        "  enterprise: { fields: { category: [dairy, meat] } }\n"
        "  coldchain: { fields: { device_id: string, site: string, temp_c: number, ok: bool, kind: [chilled, frozen] } }\n";
static const char snap_rules[] =
        "rules:\n"
        "  - id: coldchain.silent\n    on: coldchain\n"
        "    when: absent(coldchain where device_id == $device_id for 2h)\n    per: device_id\n"
        "    message: \"{device_id}@{site}: {temp_c} {ok} {kind}\"\n"
        "  - id: profile.meat\n    on: enterprise\n    when: category == \"meat\"\n    flags: { problem_lead: 30d }\n";

/* Event ids in every form (a canonical UUID is stored as 16 bytes, any
 * other id as its text), per-key strings (stored once, as the key), long
 * and non-ASCII values, nulls: the alert a timer raises quotes each
 * exactly, also after the state went through the changelog. */
Test(engine, timer_alerts_quote_the_last_event_exactly)
{
        RuleSet *rs = load_with(snap_schema, snap_rules);

        static const char *ids[] = {
                "0f8e4b2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b", /* canonical */
                "0F8E4B2A-1C3D-4E5F-8A9B-0C1D2E3F4A5B", /* uppercase: kept as text */
                "0f8e4b2a-1c3d-4e5f-8a9b-0c1d2e3f4a5g", /* not hex */
                "0f8e4b2a_1c3d-4e5f-8a9b-0c1d2e3f4a5b", /* no dash */
                "0f8e4b2a-1c3d-4e5f-8a9b-0c1d2e3f4a5",  /* 35 characters */
                "ev-7",
        };
        char site[400];
        memset(site, 'x', sizeof(site) - 1); /* longer than a one-byte length */
        site[sizeof(site) - 1] = 0;
        Buf in = {0};
        ev(&in, "p1", "E1", 0, "enterprise", "\"category\":\"dairy\"");
        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
                char f[700];
                /* an earlier reading of the same device, then the last one */
                snprintf(f, sizeof(f), "\"device_id\":\"冷柜-%zu\",\"site\":\"old\",\"temp_c\":1,\"ok\":false,\"kind\":\"frozen\"", i);
                ev(&in, "first", "E1", 1, "coldchain", f);
                snprintf(f, sizeof(f), "\"device_id\":\"冷柜-%zu\",\"site\":\"%s\",\"temp_c\":%zu.5,\"ok\":true,\"kind\":%s", i,
                         i == 1 ? site : "二号库", i, i == 2 ? "null" : "\"chilled\"");
                ev(&in, ids[i], "E1", 2 + (int64_t)i, "coldchain", f);
        }
        Out o = run(rs, in.p, 0, 600);
        cr_assert_eq(o.alerts, sizeof(ids) / sizeof(ids[0]), "%s", o.all.p);
        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
                char want[600];
                snprintf(want, sizeof(want), "\"key\":\"冷柜-%zu\",\"message\":\"冷柜-%zu@%s: %zu.5 true %s\"", i, i,
                         i == 1 ? site : "二号库", i, i == 2 ? "null" : "chilled");
                cr_assert_not_null(strstr(o.all.p, want), "no %s in\n%s", want, o.all.p);
                snprintf(want, sizeof(want), "\"evidence\":[\"%s\"]", ids[i]);
                cr_assert_not_null(strstr(o.all.p, want), "no %s in\n%s", want, o.all.p);
        }
        out_free(&o);
        /* through the changelog: committed in batches of 2, a crash mid-way */
        for (uint32_t at = 3; at < 13; at += 4)
                batches(rs, in.p, 2, 0, at, 0);
        buf_free(&in);
        rules_unref(rs);
}

/* engine_prefetch is only a hint: the same outputs with hints ahead, with
 * hints never followed by their push, and with none. */
Test(engine, prefetch_hints_change_nothing)
{
        RuleSet *rs = load();
        Buf in = {0};
        story(&in);
        Out ref = run(rs, in.p, 0, 0);
        uint32_t n;
        char *copy;
        char **lines = split_lines(in.p, &n, &copy);
        for (int mode = 0; mode < 3; mode++) {
                Out o = {0};
                EngineConfig cfg;
                engine_config_default(&cfg);
                Engine *e = NULL;
                cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
                const char stray[] = "{\"event_id\":\"zz\",\"event_type\":\"coldchain\"}";
                for (uint32_t i = 0; i < n; i++) {
                        if (mode == 0) /* ENGINE_AHEAD - 1 beyond, as riskd */
                                for (uint32_t k = i ? i + ENGINE_AHEAD - 1 : 0; k < i + ENGINE_AHEAD && k < n; k++)
                                        engine_prefetch(e, lines[k], strlen(lines[k]));
                        if (mode == 1 && i % 3 == 0) { /* some, and a stray one never pushed */
                                engine_prefetch(e, stray, sizeof(stray) - 1);
                                if (i + 1 < n)
                                        engine_prefetch(e, lines[i + 1], strlen(lines[i + 1]));
                        }
                        if (mode == 2 && i % 50 == 0) /* far ahead: dropped unused */
                                for (uint32_t k = i + 10; k < i + 20 && k < n; k++)
                                        engine_prefetch(e, lines[k], strlen(lines[k]));
                        engine_push(e, lines[i], strlen(lines[i]), NULL);
                }
                engine_prefetch_reset(e);
                engine_flush(e);
                buf_puts(&o.all, "--grades--\n");
                engine_grades_write(e, &o.all);
                engine_free(e);
                cr_assert_eq(o.all.len, ref.all.len, "mode %d: %zu bytes, %zu without hints", mode, o.all.len, ref.all.len);
                cr_assert_eq(memcmp(o.all.p, ref.all.p, ref.all.len), 0, "mode %d", mode);
                out_free(&o);
        }
        free(lines);
        free(copy);
        out_free(&ref);
        buf_free(&in);
        rules_unref(rs);
}

/* ---- absent() rules arm timers only for events that can fire ---- */

/* The parts of an absent() rule's condition that read only the event
 * (kind, the device prefix) decide at the event whether the timer could
 * ever find the condition true; an event that fails them keeps no key
 * state (unless its cooldown still runs).  The reference rule says the
 * same with `or state.score < -1000000` added to each part, which reads the state and so
 * is evaluated only when the timer fires: the alerts must be the same
 * (rules_version aside), and the state smaller. */
static const char arm_rules_pure[] =
        "rules:\n"
        "  - id: coldchain.silent\n    on: coldchain\n"
        "    when: >-\n      kind == \"chilled\" and not (device_id startswith \"T-\")\n"
        "      and absent(coldchain where device_id == $device_id for 2h)\n"
        "    per: device_id\n    cooldown: 6h\n    score: 4\n    expires: 1d\n"
        "    message: \"{device_id}: {temp_c}\"\n"
        "  - id: profile.meat\n    on: enterprise\n    when: category == \"meat\"\n    flags: { problem_lead: 30d }\n";
static const char arm_rules_ref[] =
        "rules:\n"
        "  - id: coldchain.silent\n    on: coldchain\n"
        "    when: >-\n      (kind == \"chilled\" or state.score < -1000000) and (not (device_id startswith \"T-\") or state.score < -1000000)\n"
        "      and absent(coldchain where device_id == $device_id for 2h)\n"
        "    per: device_id\n    cooldown: 6h\n    score: 4\n    expires: 1d\n"
        "    message: \"{device_id}: {temp_c}\"\n"
        "  - id: profile.meat\n    on: enterprise\n    when: category == \"meat\"\n    flags: { problem_lead: 30d }\n";

static char *without_rules_version(const char *s)
{
        Buf b = {0};
        const char *tag = "\"rules_version\":\"";
        for (const char *p = s, *q; *p; p = q) {
                if (!(q = strstr(p, tag))) {
                        buf_puts(&b, p);
                        break;
                }
                buf_put(&b, p, (size_t)(q - p));
                q = strchr(q + strlen(tag), '"') + 1;
        }
        return b.p;
}

/* The engine's counters after pushing text (no flush, no advance). */
static EngineStats stats_after(RuleSet *rs, const char *text)
{
        EngineConfig cfg;
        engine_config_default(&cfg);
        Out o = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
        for (const char *p = text; *p;) {
                const char *nl = strchr(p, '\n');
                engine_push(e, p, (size_t)(nl - p), NULL);
                p = nl + 1;
        }
        EngineStats st = *engine_stats(e);
        engine_free(e);
        out_free(&o);
        return st;
}

static void silent_stream(Buf *in)
{
        uint64_t seed = 11;
        char id[32], f[160];
        /* 300 devices of 3 enterprises over 3 days, every 10 minutes: each
         * device misses an hour in seven and a reading in thirteen; now and
         * then a reading is of another kind than its device's; every tenth
         * is a test device; every fifth is silent from 10:00 to 13:00 (the
         * rule fires at 11:50), reads once of another kind at 13:00 (its
         * key state must keep the cooldown), once of its own at 13:10, and
         * is silent again until 16:00 (the alert at 15:10 is within the
         * cooldown) */
        for (int m = 0; m < 3 * 1440; m += 10)
                for (int d = 0; d < 300; d++) {
                        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                        unsigned r = (unsigned)(seed >> 33);
                        int day = m % 1440;
                        bool gap = d % 5 == 0 && ((day >= 600 && day < 780) || (day >= 800 && day < 960));
                        if (gap || (((m / 60 + d) % 7 == 0 || r % 13 == 0) && !(d % 5 == 0 && day >= 780 && day < 800)))
                                continue;
                        static const char *kinds[] = {"\"chilled\"", "\"frozen\"", "null"};
                        snprintf(id, sizeof(id), "r%d-%d", m, d);
                        snprintf(f, sizeof(f), "\"device_id\":\"%s%d\",\"temp_c\":%u,\"kind\":%s",
                                 d % 10 == 0 ? "T-" : "D-", d, r % 9,
                                 kinds[(d + (r % 17 == 0) + (d % 5 == 0 && day == 780)) % 3]);
                        char ent[8];
                        snprintf(ent, sizeof(ent), "E%d", d % 3);
                        ev(in, id, ent, m, "coldchain", f);
                }
}

Test(engine, absent_rules_arm_only_what_can_fire)
{
        RuleSet *pure = load_with(snap_schema, arm_rules_pure), *ref = load_with(snap_schema, arm_rules_ref);
        Buf in = {0};
        silent_stream(&in);
        Out a = run(pure, in.p, 0, 4 * 1440), b = run(ref, in.p, 0, 4 * 1440);
        cr_assert_gt(a.alerts, 50, "the stream should raise alerts: %u", a.alerts);
        char *x = without_rules_version(a.all.p), *y = without_rules_version(b.all.p);
        cr_assert_eq(a.alerts, b.alerts);
        cr_assert_eq(a.adjustments, b.adjustments);
        cr_assert_str_eq(x, y);
        /* the reference keeps a key state and a snapshot per device; the
         * pure rule only for the chilled production devices */
        uint64_t sa = stats_after(pure, in.p).state_bytes, sb = stats_after(ref, in.p).state_bytes;
        cr_assert_lt(sa * 10, sb * 8, "state %llu vs %llu bytes", (unsigned long long)sa, (unsigned long long)sb);
        free(x);
        free(y);
        out_free(&a);
        out_free(&b);
        buf_free(&in);
        rules_unref(pure);
        rules_unref(ref);
}

/* absent(T where F == $F for D) in rules on T with per: F needs no window
 * rows: whenever their timer acts it holds.  The reference adds a shadow
 * rule with the same absent() but no per:, which keeps the rows for both;
 * the alerts of the keyed rule must be the same, in order and with a
 * grace over a shuffled stream too. */
static const char keyed_extra[] =
        "  - id: coldchain.silent_any\n    on: coldchain\n    status: shadow\n"
        "    when: absent(coldchain where device_id == $device_id for 2h)\n";

static char *without_line(const char *s, const char *needle)
{
        Buf b = {0};
        for (const char *p = s; *p;) {
                const char *nl = strchr(p, '\n');
                size_t l = nl ? (size_t)(nl - p + 1) : strlen(p);
                if (!memmem(p, l, needle, strlen(needle)))
                        buf_put(&b, p, l);
                p += l;
        }
        return b.p ? b.p : strdup("");
}

Test(engine, keyed_absent_needs_no_rows)
{
        size_t n = strlen(arm_rules_pure) + strlen(keyed_extra) + 1;
        char *both = malloc(n);
        snprintf(both, n, "%s%s", arm_rules_pure, keyed_extra);
        RuleSet *keyed = load_with(snap_schema, arm_rules_pure), *rows = load_with(snap_schema, both);
        Buf in = {0};
        silent_stream(&in);
        char *mixed = shuffle(in.p, 600, 5); /* up to 20 minutes out of order */
        const char *streams[] = {in.p, mixed};
        const int64_t graces[] = {0, 30 * 60000};
        for (int k = 0; k < 2; k++) {
                Out a = run(keyed, streams[k], graces[k], 4 * 1440), b = run(rows, streams[k], graces[k], 4 * 1440);
                cr_assert_gt(a.alerts, 50, "the stream should raise alerts: %u", a.alerts);
                char *x = without_rules_version(a.all.p), *y0 = without_line(b.all.p, "silent_any"),
                     *y = without_rules_version(y0);
                cr_assert_str_eq(x, y, "stream %d", k);
                free(x);
                free(y0);
                free(y);
                out_free(&a);
                out_free(&b);
        }
        cr_assert_eq(stats_after(keyed, in.p).window_rows, 0);
        cr_assert_gt(stats_after(rows, in.p).window_rows, 100);
        free(mixed);
        free(both);
        buf_free(&in);
        rules_unref(keyed);
        rules_unref(rows);
}

/* Rules whose conditions are the same code and read only the event share
 * one evaluation per event; the outputs are those of conditions written
 * differently (so not shared), with a rule between them that changes the
 * state they would see if they read it. */
static const char share_rules[] =
        "rules:\n"
        "  - id: cold.warm\n    on: coldchain\n    when: temp_c > 8 and device_id != \"X\"\n    score: 7\n    expires: 1d\n"
        "  - id: cold.lead\n    on: coldchain\n    when: temp_c > 12\n    flags: { problem_lead: 2h }\n"
        "  - id: cold.warm_long\n    on: coldchain\n    when: temp_c > 8 and device_id != \"X\"\n    for: 30m\n"
        "    per: device_id\n    score: 3\n    expires: 1d\n"
        "  - id: cold.warm_again\n    on: coldchain\n    when: temp_c > 8 and device_id != \"X\"\n    per: device_id\n"
        "    cooldown: 1h\n    message: \"{device_id} {temp_c}\"\n";
static const char share_rules_ref[] =
        "rules:\n"
        "  - id: cold.warm\n    on: coldchain\n    when: temp_c > 8 and device_id != \"X\"\n    score: 7\n    expires: 1d\n"
        "  - id: cold.lead\n    on: coldchain\n    when: temp_c > 12\n    flags: { problem_lead: 2h }\n"
        "  - id: cold.warm_long\n    on: coldchain\n    when: 8 < temp_c and device_id != \"X\"\n    for: 30m\n"
        "    per: device_id\n    score: 3\n    expires: 1d\n"
        "  - id: cold.warm_again\n    on: coldchain\n    when: not (temp_c <= 8 or device_id == \"X\")\n    per: device_id\n"
        "    cooldown: 1h\n    message: \"{device_id} {temp_c}\"\n";

Test(engine, shared_conditions_answer_as_their_own)
{
        RuleSet *shared = load_with(schema, share_rules), *ref = load_with(schema, share_rules_ref);
        Buf in = {0};
        char id[32], f[96];
        uint64_t seed = 3;
        for (int m = 0; m < 600; m++)
                for (int d = 0; d < 4; d++) {
                        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                        snprintf(id, sizeof(id), "c%d-%d", m, d);
                        snprintf(f, sizeof(f), "\"device_id\":\"%s\",\"temp_c\":%u", d == 3 ? "X" : (d ? "B" : "A"),
                                 (unsigned)((seed >> 33) % 16));
                        ev(&in, id, d % 2 ? "E1" : "E2", m, "coldchain", f);
                }
        Out a = run(shared, in.p, 0, 2000), b = run(ref, in.p, 0, 2000);
        cr_assert_gt(a.alerts, 100, "%u alerts", a.alerts);
        char *x = without_rules_version(a.all.p), *y = without_rules_version(b.all.p);
        cr_assert_str_eq(x, y);
        free(x);
        free(y);
        out_free(&a);
        out_free(&b);
        buf_free(&in);
        rules_unref(shared);
        rules_unref(ref);
}

/* A rule set loaded before riskctl check refused durations past 36500d
 * (or built by other means) may still hold one: the engine saturates
 * event time + duration at "never" instead of wrapping into the past,
 * where points never counted, for: fired at once and the cooldown was
 * ignored (UBSan: signed overflow).  The durations are set after loading,
 * past what the loader accepts. */
Test(engine, durations_past_the_int64_range_saturate)
{
        static const char r[] =
                "rules:\n"
                "  - id: sampling.fail\n    on: sampling\n    when: result == \"fail\"\n"
                "    score: 20\n    expires: 90d\n    flags: { problem_lead: 30d }\n"
                "  - id: sampling.again\n    on: sampling\n    when: result == \"fail\"\n    cooldown: 1d\n"
                "  - id: coldchain.warm\n    on: coldchain\n    when: temp_c > 8\n    for: 30m\n    per: device_id\n";
        RuleSet *rs = load_with(schema, r);
        const int64_t huge = 106751991167LL * 86400000LL; /* 106751991167d: parses, t + it overflows */
        for (uint32_t i = 0; i < rs->nrules; i++) {
                Rule *ru = &rs->rules[i];
                if (strcmp(ru->id, "sampling.fail") == 0) {
                        ru->expires_ms = huge;
                        ru->flags[0].lifetime_ms = huge;
                } else if (strcmp(ru->id, "sampling.again") == 0) {
                        ru->cooldown_ms = huge;
                } else if (strcmp(ru->id, "coldchain.warm") == 0) {
                        ru->for_ms = huge;
                }
        }
        Buf in = {0};
        ev(&in, "s1", "E1", 10, "sampling", "\"result\":\"fail\"");
        ev(&in, "s2", "E1", 20, "sampling", "\"result\":\"fail\"");
        for (int m = 30; m < 200; m++) {
                char id[16];
                snprintf(id, sizeof(id), "c%d", m);
                ev(&in, id, "E1", m, "coldchain", "\"device_id\":\"d1\",\"temp_c\":12");
        }
        /* ten years on */
        Out o = run(rs, in.p, 0, 3650LL * 24 * 60);
        /* the points never expire: 2 x 20 = 40, C, and the flag holds */
        cr_assert_not_null(strstr(o.all.p, "\"E1\""), "%s", o.all.p);
        cr_assert_null(strstr(o.all.p, "\"cause\":\"expiry\""), "%s", o.all.p);
        const char *g = strstr(o.all.p, "--grades--");
        cr_assert_not_null(g);
        cr_assert_not_null(strstr(g, "\"grade\":\"B\",\"mode\":\"flying_inspection\""), "%s", g);
        /* the cooldown holds: sampling.again once; for: never comes */
        uint32_t again = 0;
        for (const char *p = o.all.p; (p = strstr(p, "\"rule_id\":\"sampling.again\"")); p++)
                again++;
        cr_assert_eq(again, 1, "%s", o.all.p);
        cr_assert_null(strstr(o.all.p, "\"rule_id\":\"coldchain.warm\""), "%s", o.all.p);
        /* the alert says never, as the state does */
        cr_assert_not_null(strstr(o.all.p, "\"flags\":[{\"name\":\"problem_lead\",\"until\":null}]"), "%s", o.all.p);
        out_free(&o);
        buf_free(&in);
        rules_unref(rs);
}

/* ---- running aggregates against a model and a rescan ---- */

static const char agg_schema[] =
        "envelope: { id: event_id, type: event_type, enterprise: enterprise.uscc, time: occurred_at }\n"
        "profile: enterprise\n"
        "types:\n"
        "  enterprise: { fields: { category: [dairy, meat] } }\n"
        "  r: { fields: { v: number, k: string, ok: bool, d: duration } }\n"
        "  probe: { fields: { k: string, c: number, s: number, a: number, mn: number, mx: number, dk: number,\n"
        "                     sd: duration, sk: number } }\n";
/* Each probe rule fires when the engine's aggregate equals what the
 * model computed (a null expectation is left out: no firing); the *_some
 * rules fire when the engine's answer is not null. */
static const char agg_rules[] =
        "rules:\n"
        "  - id: p.c\n    on: probe\n    when: count(r where ok within 10m) == c\n"
        "  - id: p.s\n    on: probe\n    when: sum(r.v where ok within 10m) == s\n"
        "  - id: p.a\n    on: probe\n    when: avg(r.v where ok within 10m) == a\n"
        "  - id: p.a_some\n    on: probe\n    when: avg(r.v where ok within 10m) > -1e300\n"
        "  - id: p.mn\n    on: probe\n    when: min(r.v where ok within 10m) == mn\n"
        "  - id: p.mn_some\n    on: probe\n    when: min(r.v where ok within 10m) > -1e300\n"
        "  - id: p.mx\n    on: probe\n    when: max(r.v where ok within 10m) == mx\n"
        "  - id: p.mx_some\n    on: probe\n    when: max(r.v where ok within 10m) > -1e300\n"
        "  - id: p.dk\n    on: probe\n    when: distinct(r.k where ok within 10m) == dk\n"
        "  - id: p.sd\n    on: probe\n    when: sum(r.d where ok within 10m) == sd\n"
        "  - id: p.sk\n    on: probe\n    when: sum(r.v where ok and k == $k within 10m) == sk\n"
        "  - id: p.flag\n    on: probe\n    when: c < 0\n    flags: { problem_lead: 1d }\n";

enum { M_C, M_S, M_A, M_MN, M_MX, M_DK, M_SD, M_SK, M_N };

/* A model row: the time and the fields a window keeps. */
typedef struct MRow {
        int64_t t;
        bool hasv, hask, ok;
        double v;
        int k;
        int64_t d;
} MRow;

typedef struct MWin {
        MRow r[4096];
        uint32_t n;
} MWin;

static void mwin_evict(MWin *w, int64_t now)
{
        uint32_t drop = 0;
        while (drop < w->n && w->r[drop].t <= now - 600000)
                drop++;
        memmove(w->r, w->r + drop, (w->n - drop) * sizeof(MRow));
        w->n -= drop;
}

/* dedupe (min, max, distinct keep one row per tuple among the last 8:
 * src/engine/window.c): same tells whether two rows hold the same tuple */
static void mwin_insert(MWin *w, const MRow *x, uint32_t cap, int dedupe)
{
        mwin_evict(w, x->t);
        for (uint32_t back = 1; dedupe && back <= 8 && back <= w->n; back++) {
                MRow *o = &w->r[w->n - back];
                bool same = dedupe == 1 ? (o->hasv == x->hasv && (!o->hasv || o->v == x->v))
                                        : (o->hask == x->hask && (!o->hask || o->k == x->k));
                if (!same)
                        continue;
                MRow keep = *o;
                keep.t = x->t;
                memmove(o, o + 1, (back - 1) * sizeof(MRow));
                w->r[w->n - 1] = keep;
                return;
        }
        if (w->n == cap) {
                memmove(w->r, w->r + 1, (w->n - 1) * sizeof(MRow));
                w->n--;
        }
        w->r[w->n++] = *x;
}

/* The exact sum of doubles that are multiples of 2^-60, rounded once. */
static double exact_sum(const MWin *w, int k)
{
        __int128 s = 0;
        for (uint32_t i = 0; i < w->n; i++)
                if (w->r[i].hasv && (k < 0 || (w->r[i].ok && w->r[i].hask && w->r[i].k == k)))
                        s += (__int128)ldexp(w->r[i].v, 60);
        return ldexp((double)s, -60);
}

/* A random stream of r events (values like 0.1 added and retracted for
 * hours, ties, nulls, rows the where refuses) and probes carrying the
 * model's answers; expect[rule] counts the probes each rule must fire on. */
static void agg_stream(Buf *b, uint32_t seed, uint32_t nev, uint32_t cap, uint32_t expect[M_N + 3])
{
        static MWin win[3][M_N]; /* per enterprise: one per aggregate (count, sum, ... as the rules) */
        memset(win, 0, sizeof(win));
        memset(expect, 0, (M_N + 3) * sizeof(uint32_t));
        uint64_t x = seed * 2654435761u + 1;
#define RND() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
        int64_t t = 1735689600000LL;
        for (uint32_t i = 0; i < nev; i++) {
                uint32_t gap = (uint32_t)(RND() % 4);
                t += gap == 0 ? 0 : (int64_t)(RND() % 90000); /* a quarter are ties */
                int ent = (int)(RND() % 3);
                char ts[40], id[32];
                time_format(t, ts, sizeof(ts));
                snprintf(id, sizeof(id), "e%u", i);
                Buf fb = {0};
                if (RND() % 5) {
                        MRow r = {.t = t};
                        bool ok = RND() % 6 != 0, okset = RND() % 10 != 0;
                        r.hasv = RND() % 8 != 0;
                        uint64_t pick = RND() % 10;
                        /* tenths mostly, a few large values among them */
                        r.v = pick == 0 ? 1e6 + 0.1 * (double)(RND() % 7) : 0.1 * (double)((int)(RND() % 61) - 30);
                        r.hask = RND() % 7 != 0;
                        r.k = (int)(RND() % 12);
                        r.d = (int64_t)(RND() % 100000);
                        buf_printf(&fb, "\"d\":\"%lldms\"", (long long)r.d);
                        if (okset)
                                buf_printf(&fb, ",\"ok\":%s", ok ? "true" : "false");
                        if (r.hasv)
                                buf_printf(&fb, ",\"v\":%.17g", r.v);
                        if (r.hask)
                                buf_printf(&fb, ",\"k\":\"k%d\"", r.k);
                        /* a where with $ is decided at evaluation: its window keeps every row */
                        r.ok = ok && okset;
                        for (int m = 0; m < M_N; m++)
                                if (r.ok || m == M_SK)
                                        mwin_insert(&win[ent][m], &r, cap,
                                                    m == M_MN || m == M_MX ? 1 : m == M_DK ? 2 : 0);
                                else
                                        mwin_evict(&win[ent][m], t);
                        buf_printf(b, "{\"event_id\":\"%s\",\"event_type\":\"r\",\"enterprise\":{\"uscc\":\"E%d\"},"
                                      "\"occurred_at\":\"%s\",%s}\n", id, ent, ts, fb.p);
                } else {
                        int pk = (int)(RND() % 12);
                        for (int m = 0; m < M_N; m++)
                                mwin_evict(&win[ent][m], t);
                        MWin *w = win[ent];
                        buf_printf(&fb, "\"k\":\"k%d\",\"c\":%u", pk, w[M_C].n);
                        expect[M_C]++;
                        buf_printf(&fb, ",\"s\":%.17g", exact_sum(&w[M_S], -1));
                        expect[M_S]++;
                        uint32_t nn = 0;
                        double mn = 0, mx = 0;
                        for (uint32_t q = 0; q < w[M_A].n; q++)
                                nn += w[M_A].r[q].hasv;
                        if (nn) {
                                buf_printf(&fb, ",\"a\":%.17g", exact_sum(&w[M_A], -1) / nn);
                                expect[M_A]++;
                                expect[M_N]++;
                        }
                        bool any = false;
                        for (uint32_t q = 0; q < w[M_MN].n; q++)
                                if (w[M_MN].r[q].hasv && (!any || w[M_MN].r[q].v < mn))
                                        mn = w[M_MN].r[q].v, any = true;
                        if (any) {
                                buf_printf(&fb, ",\"mn\":%.17g", mn);
                                expect[M_MN]++;
                                expect[M_N + 1]++;
                        }
                        any = false;
                        for (uint32_t q = 0; q < w[M_MX].n; q++)
                                if (w[M_MX].r[q].hasv && (!any || w[M_MX].r[q].v > mx))
                                        mx = w[M_MX].r[q].v, any = true;
                        if (any) {
                                buf_printf(&fb, ",\"mx\":%.17g", mx);
                                expect[M_MX]++;
                                expect[M_N + 2]++;
                        }
                        bool seen[12] = {0};
                        uint32_t dk = 0;
                        for (uint32_t q = 0; q < w[M_DK].n; q++)
                                if (w[M_DK].r[q].hask && !seen[w[M_DK].r[q].k])
                                        seen[w[M_DK].r[q].k] = true, dk++;
                        buf_printf(&fb, ",\"dk\":%u", dk);
                        expect[M_DK]++;
                        int64_t sd = 0;
                        for (uint32_t q = 0; q < w[M_SD].n; q++)
                                sd += w[M_SD].r[q].d;
                        buf_printf(&fb, ",\"sd\":\"%lldms\"", (long long)sd);
                        expect[M_SD]++;
                        buf_printf(&fb, ",\"sk\":%.17g", exact_sum(&w[M_SK], pk));
                        expect[M_SK]++;
                        buf_printf(b, "{\"event_id\":\"%s\",\"event_type\":\"probe\",\"enterprise\":{\"uscc\":\"E%d\"},"
                                      "\"occurred_at\":\"%s\",%s}\n", id, ent, ts, fb.p);
                }
                buf_free(&fb);
        }
#undef RND
}

static Out run_cfg(RuleSet *rs, const char *text, const EngineConfig *cfg)
{
        Out o = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, cfg, sink, &o), 0);
        for (const char *p = text; *p;) {
                const char *nl = strchr(p, '\n');
                size_t l = nl ? (size_t)(nl - p) : strlen(p);
                engine_push(e, p, l, NULL);
                p += l + (nl ? 1 : 0);
        }
        engine_flush(e);
        engine_free(e);
        return o;
}

static uint32_t count_rule(const Out *o, const char *id)
{
        char pat[64];
        snprintf(pat, sizeof(pat), "\"rule_id\":\"%s\"", id);
        uint32_t n = 0;
        for (const char *p = o->all.p; p && (p = strstr(p, pat)); p++)
                n++;
        return n;
}

Test(engine, running_aggregates_answer_as_a_rescan)
{
        RuleSet *rs = load_with(agg_schema, agg_rules);
        static const char *const ids[M_N + 3] = {"p.c", "p.s", "p.a", "p.mn", "p.mx", "p.dk", "p.sd", "p.sk",
                                                 "p.a_some", "p.mn_some", "p.mx_some"};
        /* default rows, then a ring of 7 that drops its oldest (max_window_rows) */
        const uint32_t caps[] = {100000, 7};
        for (uint32_t seed = 1; seed <= 4; seed++)
                for (uint32_t ci = 0; ci < 2; ci++) {
                        uint32_t expect[M_N + 3];
                        Buf in = {0};
                        agg_stream(&in, seed, 6000, caps[ci], expect);
                        EngineConfig cfg;
                        engine_config_default(&cfg);
                        cfg.max_window_rows = caps[ci];
                        Out run = run_cfg(rs, in.p, &cfg);
                        cfg.agg_rescan = true;
                        Out scan = run_cfg(rs, in.p, &cfg);
                        /* the model's answers */
                        for (uint32_t m = 0; m < M_N + 3; m++) {
                                cr_assert_gt(expect[m], 50);
                                cr_assert_eq(count_rule(&run, ids[m]), expect[m], "seed %u cap %u %s: %u of %u",
                                             seed, caps[ci], ids[m], count_rule(&run, ids[m]), expect[m]);
                        }
                        /* and the rescan's, byte for byte */
                        cr_assert_eq(run.all.len, scan.all.len, "seed %u cap %u", seed, caps[ci]);
                        cr_assert_eq(memcmp(run.all.p, scan.all.p, run.all.len), 0);
                        out_free(&run);
                        out_free(&scan);
                        if (ci == 0) /* aborts and a restore rebuild the running state from the rows */
                                batches(rs, in.p, 97, 3, 2500, 0);
                        buf_free(&in);
                }
        rules_unref(rs);
}

/* 0.1 added and retracted 20,000 times over a window of ten: the sum is
 * ten 0.1s rounded once, 1, every time (a running double drifts; adding
 * the ten in order gives 0.9999999999999999), running and rescanning. */
Test(engine, sums_of_tenths_do_not_drift)
{
        static const char r[] =
                "rules:\n"
                "  - id: p.one\n    on: probe\n    when: sum(r.v where ok within 10s) == 1 and avg(r.v where ok within 10s) == 0.1\n"
                "  - id: p.flag\n    on: probe\n    when: c < 0\n    flags: { problem_lead: 1d }\n";
        RuleSet *rs = load_with(agg_schema, r);
        Buf in = {0};
        uint32_t probes = 0;
        for (uint32_t i = 0; i < 20000; i++) {
                char ts[40];
                time_format(1735689600000LL + (int64_t)i * 1000, ts, sizeof(ts));
                buf_printf(&in, "{\"event_id\":\"r%u\",\"event_type\":\"r\",\"enterprise\":{\"uscc\":\"E1\"},"
                                "\"occurred_at\":\"%s\",\"v\":0.1,\"ok\":true}\n", i, ts);
                if (i >= 9 && i % 97 == 0) {
                        buf_printf(&in, "{\"event_id\":\"p%u\",\"event_type\":\"probe\",\"enterprise\":{\"uscc\":\"E1\"},"
                                        "\"occurred_at\":\"%s\"}\n", i, ts);
                        probes++;
                }
        }
        EngineConfig cfg;
        engine_config_default(&cfg);
        for (int rescan = 0; rescan < 2; rescan++) {
                cfg.agg_rescan = rescan;
                Out o = run_cfg(rs, in.p, &cfg);
                cr_assert_eq(count_rule(&o, "p.one"), probes, "rescan %d: %u of %u", rescan, count_rule(&o, "p.one"),
                             probes);
                out_free(&o);
        }
        buf_free(&in);
        rules_unref(rs);
}

/* A static rule whose score: is an expression over the profile event
 * (the licensing system's annex score, exact, capped at 40): its value
 * travels with the kept profile, so an aborted batch rolls it back and a
 * restore from the changelog continues exactly; a null annex contributes
 * nothing. */
static const char annex_schema[] =
        "envelope: { id: event_id, type: event_type, enterprise: enterprise.uscc, time: occurred_at }\n"
        "profile: enterprise\n"
        "types:\n"
        "  enterprise: { fields: { category: [dairy, catering], annex: number } }\n"
        "  inspection: { fields: { kind: [routine, lead], dynamic_risk_score: number } }\n";
static const char annex_grading[] =
        "dwell: 3d\n"
        "official: { cycle: 1mo, cycle_start: \"01-01\", offset: \"+08:00\" }\n"
        "grades:\n"
        "  - { grade: A, max: 30, mode: double_random, inspections_per_year: 1 }\n"
        "  - { grade: B, max: 45, mode: double_random, inspections_per_year: 2 }\n"
        "  - { grade: C, max: 60, mode: double_random, inspections_per_year: 3 }\n"
        "  - { grade: D, mode: key_inspection, inspections_per_year: 4 }\n";
static const char annex_rules[] =
        "rules:\n"
        "  - id: profile.annex\n    on: enterprise\n    when: category == \"catering\"\n"
        "    score: annex\n    max_score: 40\n"
        "  - id: profile.dairy\n    on: enterprise\n    when: category == \"dairy\"\n    score: 30\n"
        "  - id: inspection.evaluation\n    on: inspection\n    when: exists(dynamic_risk_score)\n"
        "    part: dynamic\n    score: dynamic_risk_score\n";

Test(engine, static_expression_survives_abort_and_restore)
{
        const char *names[] = {"schema.yaml", "grading.yaml", "rules.yaml"};
        const char *texts[] = {annex_schema, annex_grading, annex_rules};
        size_t lens[] = {strlen(annex_schema), strlen(annex_grading), strlen(annex_rules)};
        DiagList dl = {0};
        RuleSet *rs = NULL;
        int r = rules_load_mem("t", names, texts, lens, 3, &dl, &rs);
        if (r)
                diag_print_text(stderr, &dl, false);
        cr_assert_eq(r, 0);
        diag_list_deinit(&dl);
        const int64_t day = 1440;
        static const char *const annex[] = {"\"annex\":13.5", "", "\"annex\":47", "\"annex\":22.25", "\"annex\":7"};
        Buf in = {0};
        char id[32], f[96];
        for (int d = 0; d < 200; d += 2) {
                const char *en = d % 4 ? "E1" : "E2";
                snprintf(id, sizeof(id), "x%d", d);
                if ((d / 2) % 3 == 0) {
                        snprintf(f, sizeof(f), "\"category\":\"%s\"%s%s", d % 14 == 12 ? "dairy" : "catering",
                                 *annex[(d / 6) % 5] ? "," : "", annex[(d / 6) % 5]);
                        ev(&in, id, en, d * day, "enterprise", f);
                } else {
                        snprintf(f, sizeof(f), "\"kind\":\"routine\",\"dynamic_risk_score\":%d", (d * 7) % 61);
                        ev(&in, id, en, d * day, "inspection", f);
                }
        }
        Out o = run(rs, in.p, 0, 0);
        /* exact, capped, and null as nothing */
        cr_assert_not_null(strstr(o.all.p, "\"static\":13.5,"), "%s", o.all.p);
        cr_assert_not_null(strstr(o.all.p, "\"static\":22.25,"));
        cr_assert_not_null(strstr(o.all.p, "\"static\":40,"));
        cr_assert_null(strstr(o.all.p, "\"static\":47,"));
        cr_assert_not_null(strstr(o.all.p, "\"static\":0,"));
        out_free(&o);
        batches(rs, in.p, 7, 3, 0, 0);
        batches(rs, in.p, 3, 2, 0, 0);
        for (uint32_t at = 8; at < 100; at += 13)
                batches(rs, in.p, 6, 0, at, 0);
        batches(rs, in.p, 5, 4, 41, 0);
        buf_free(&in);
        rules_unref(rs);
}
/* ---- records are not trusted (issue 13, point 6) ---- */

/* The records of the story, committed in one batch: E1, E2 and the
 * partition record. */
static void story_records(RuleSet *rs, Log *log)
{
        Buf in = {0};
        story(&in);
        EngineConfig cfg;
        engine_config_default(&cfg);
        Out o = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
        engine_batch_begin(e);
        for (const char *p = in.p; *p;) {
                const char *nl = strchr(p, '\n');
                engine_push(e, p, (size_t)(nl - p), NULL);
                p = nl + 1;
        }
        engine_batch_changes(e, 1, log_record, log);
        engine_batch_commit(e);
        engine_free(e);
        out_free(&o);
        buf_free(&in);
}

/* Everything a restored enterprise can be asked: explain (text and JSON),
 * the grades, an event, an abort, a commit; returns the grades. */
static char *exercise(Engine *e, const char *key)
{
        free(engine_explain_text(e, key, strlen(key)));
        free(engine_explain_json(e, key, strlen(key)));
        Buf g = {0};
        engine_grades_write(e, &g);
        Buf ev1 = {0};
        ev(&ev1, "x-1", key, 400, "sampling", "\"result\":\"fail\",\"confirmed\":true,\"item\":\"x\"");
        engine_batch_begin(e);
        engine_push(e, ev1.p, ev1.len - 1, NULL);
        free(engine_explain_text(e, key, strlen(key)));
        engine_batch_abort(e);
        engine_batch_begin(e);
        engine_push(e, ev1.p, ev1.len - 1, NULL);
        Log l = {0};
        engine_batch_changes(e, 2, log_record, &l);
        engine_batch_commit(e);
        free(engine_explain_text(e, key, strlen(key)));
        log_free(&l);
        buf_free(&ev1);
        buf_putc(&g, 0);
        return g.p;
}

static const char *find_str(const char *hay, size_t n, const char *needle)
{
        size_t k = strlen(needle);
        for (size_t i = 0; i + k <= n; i++)
                if (memcmp(hay + i, needle, k) == 0)
                        return hay + i;
        return NULL;
}

static uint32_t log_find(const Log *log, const char *key)
{
        for (uint32_t i = 0; i < log->n; i++)
                if (strcmp(log->key[i], key) == 0)
                        return i;
        cr_assert_fail("no record of %s", key);
        return 0;
}

static RuleSet *load_grading(const char *grading_text)
{
        const char *names[] = {"schema.yaml", "grading.yaml", "rules.yaml"};
        const char *texts[] = {schema, grading_text, rules};
        size_t lens[] = {strlen(schema), strlen(grading_text), strlen(rules)};
        DiagList dl = {0};
        RuleSet *rs = NULL;
        cr_assert_eq(rules_load_mem("t", names, texts, lens, 3, &dl, &rs), 0);
        diag_list_deinit(&dl);
        return rs;
}

/* A mode name the grading does not have: the fuzzer's record restored
 * grade >= 0 with mode -1 and explain read modes[-1].  It restores
 * ungraded; under changed rules (a mode renamed) the re-grade grades it. */
Test(engine, a_record_with_an_unknown_mode_restores_ungraded)
{
        RuleSet *rs = load();
        Log log = {0};
        /* format 1 names the mode in the record (format 2 in the
         * dictionary: the renamed mode below) */
        log_fixture(&log, v1_story, sizeof(v1_story) / sizeof(v1_story[0]));
        uint32_t i = log_find(&log, "E1");
        char *m = (char *)find_str(log.val[i], log.vlen[i], "flying_inspection");
        cr_assert_not_null(m);
        memcpy(m, "zzz", 3); /* same length: the record still decodes */
        EngineConfig cfg;
        engine_config_default(&cfg);
        Out o = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
        for (uint32_t k = 0; k < log.n; k++)
                cr_assert_eq(engine_restore_record(e, log.key[k], log.klen[k], log.val[k], log.vlen[k]), 0);
        engine_restore_finish(e);
        char *g = exercise(e, "E1");
        cr_assert_not_null(strstr(g, "{\"enterprise_id\":\"E1\",\"grade\":null,\"mode\":null"), "%s", g);
        free(g);
        engine_free(e);
        memcpy(m, "fly", 3);

        /* the grading renamed the mode: a restart under it grades E1 again */
        char *g2 = xstrdup(grading);
        char *fly = strstr(g2, "flying_inspection");
        memcpy(fly, "flying_inspectiox", 17);
        RuleSet *rs2 = load_grading(g2);
        cr_assert_eq(engine_new(&e, rs2, &cfg, sink, &o), 0);
        for (uint32_t k = 0; k < log.n; k++)
                cr_assert_eq(engine_restore_record(e, log.key[k], log.klen[k], log.val[k], log.vlen[k]), 0);
        engine_restore_finish(e);
        cr_assert(engine_regrade_due(e));
        EngineReload rep = {0};
        o.all.len = 0;
        cr_assert_eq(engine_regrade(e, &rep), 0);
        engine_batch_commit(e);
        Buf gr = {0};
        engine_grades_write(e, &gr);
        buf_putc(&gr, 0);
        cr_assert_not_null(strstr(gr.p, "\"enterprise_id\":\"E1\",\"grade\":\""), "%s", gr.p);
        cr_assert_not_null(strstr(gr.p, "\"mode\":\"flying_inspectiox\""), "%s", gr.p);
        cr_assert_not_null(strstr(o.all.p, "\"E1\""), "no adjustment for E1: %s", o.all.p ? o.all.p : "");
        buf_free(&gr);
        engine_free(e);
        rules_unref(rs2);
        free(g2);
        log_free(&log);
        out_free(&o);
        rules_unref(rs);
}

/* Every prefix of every real record: refused, or restored equal to the
 * whole record (only the optional trailers may be cut), and never a crash
 * whatever is asked of the engine after it. */
Test(engine, truncated_records_are_refused_or_equal)
{
        RuleSet *rs = load();
        Log log = {0};
        story_records(rs, &log);
        EngineConfig cfg;
        engine_config_default(&cfg);
        Out o = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
        for (uint32_t k = 0; k < log.n; k++)
                cr_assert_eq(engine_restore_record(e, log.key[k], log.klen[k], log.val[k], log.vlen[k]), 0);
        engine_restore_finish(e);
        Buf whole = {0};
        engine_grades_write(e, &whole);
        buf_putc(&whole, 0);
        engine_free(e);
        uint32_t refused = 0;
        for (uint32_t i = 0; i < log.n; i++) {
                for (size_t len = 1; len < log.vlen[i]; len++) {
                        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
                        int r = 0;
                        for (uint32_t k = 0; k < log.n; k++) {
                                int rk = engine_restore_record(e, log.key[k], log.klen[k], log.val[k],
                                                               k == i ? len : log.vlen[k]);
                                if (k == i)
                                        r = rk;
                                else
                                        cr_assert_eq(rk, 0);
                        }
                        engine_restore_finish(e);
                        cr_assert(r == 0 || r == -EINVAL);
                        Buf g = {0};
                        engine_grades_write(e, &g);
                        buf_putc(&g, 0);
                        if (r == 0)
                                cr_assert_str_eq(g.p, whole.p, "%s cut at %zu of %zu", log.key[i], len, log.vlen[i]);
                        refused += r != 0;
                        buf_free(&g);
                        free(exercise(e, i + 1 < log.n ? log.key[i] : "E1"));
                        engine_free(e);
                        o.all.len = o.dlq.len = 0;
                }
        }
        cr_assert_gt(refused, 100);
        buf_free(&whole);
        log_free(&log);
        out_free(&o);
        rules_unref(rs);
}

static void rec_u(Buf *b, uint64_t v)
{
        do {
                buf_putc(b, (char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
                v >>= 7;
        } while (v);
}

static void rec_f(Buf *b, double d)
{
        uint64_t u;
        memcpy(&u, &d, 8);
        for (int i = 0; i < 8; i++)
                buf_putc(b, (char)(u >> (8 * i)));
}

static void rec_s(Buf *b, const char *s)
{
        rec_u(b, strlen(s));
        buf_puts(b, s);
}

/* An enterprise record up to its contributions' count: static score,
 * no static rules, grade D, mode key_inspection, per_year, no profile. */
static void rec_head(Buf *b, double static_score, double per_year)
{
        buf_putc(b, ENGINE_STATE_VERSION_1);
        rec_f(b, static_score);
        rec_u(b, 0);
        rec_s(b, "D");
        rec_s(b, "D");
        rec_s(b, "key_inspection");
        rec_f(b, per_year);
        rec_u(b, 0); /* below_since 0 (zigzag) */
        rec_u(b, 0); /* last_time */
        rec_u(b, 0); /* profile fields */
}

static int restore_one(RuleSet *rs, const Buf *b, char **grades)
{
        EngineConfig cfg;
        engine_config_default(&cfg);
        Out o = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
        int r = engine_restore_record(e, "E9", 2, b->p, b->len);
        engine_restore_finish(e);
        char *g = exercise(e, "E9");
        if (grades)
                *grades = g;
        else
                free(g);
        engine_free(e);
        out_free(&o);
        return r;
}

Test(engine, records_with_huge_counts_or_non_finite_numbers_are_refused)
{
        RuleSet *rs = load();
        Buf b = {0};
        char *g;

        /* the baseline decodes: D with no contributions */
        rec_head(&b, 0, 4);
        rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0);
        cr_assert_eq(restore_one(rs, &b, &g), 0);
        cr_assert_not_null(strstr(g, "\"grade\":\"D\",\"mode\":\"key_inspection\""), "%s", g);
        free(g);

        /* counts past 16 bits, and one of 2^64 - 1 (a "negative" count) */
        uint64_t huge[] = {65536, UINT64_MAX, (uint64_t)1 << 62};
        for (int k = 0; k < 3; k++) {
                for (int field = 0; field < 3; field++) { /* contributions, flags, key states */
                        b.len = 0;
                        rec_head(&b, 0, 4);
                        for (int f = 0; f < field; f++)
                                rec_u(&b, 0);
                        rec_u(&b, huge[k]);
                        rec_s(&b, "sampling.fail");
                        cr_assert_eq(restore_one(rs, &b, NULL), -EINVAL, "count %llu at %d",
                                     (unsigned long long)huge[k], field);
                }
        }
        /* a huge count of static rules or window rows: the bytes run out */
        b.len = 0;
        buf_putc(&b, ENGINE_STATE_VERSION_1);
        rec_f(&b, 0);
        rec_u(&b, UINT64_MAX);
        cr_assert_eq(restore_one(rs, &b, NULL), -EINVAL);

        /* NaN and infinities: the static score, the frequency, points */
        double bad[] = {NAN, INFINITY, -INFINITY};
        for (int k = 0; k < 3; k++) {
                b.len = 0;
                rec_head(&b, bad[k], 4);
                rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0);
                cr_assert_eq(restore_one(rs, &b, NULL), -EINVAL);
                b.len = 0;
                rec_head(&b, 0, bad[k]);
                rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0);
                cr_assert_eq(restore_one(rs, &b, NULL), -EINVAL);
                b.len = 0;
                rec_head(&b, 0, 4);
                rec_u(&b, 1);
                rec_s(&b, "sampling.fail");
                rec_f(&b, bad[k]);
                rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0);
                rec_s(&b, "s1");
                rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0);
                cr_assert_eq(restore_one(rs, &b, &g), -EINVAL);
                cr_assert_null(strstr(g, "nan"), "%s", g);
                cr_assert_null(strstr(g, "inf"), "%s", g);
                free(g);
        }
        /* a negative frequency is no grading: ungraded, not refused */
        b.len = 0;
        rec_head(&b, 0, -1);
        rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0);
        cr_assert_eq(restore_one(rs, &b, &g), 0);
        cr_assert_not_null(strstr(g, "\"grade\":null,\"mode\":null"), "%s", g);
        free(g);
        buf_free(&b);
        rules_unref(rs);
}

/* A value of another type than its slot's (the profile keeps a slot's
 * value in the width of its type): the profile's kind, an enum, as a
 * string. */
Test(engine, a_value_of_another_type_than_its_slot_is_refused)
{
        RuleSet *rs = load_with(twin_schema, twin_rules);
        Buf b = {0};
        char *g;
        for (int good = 1; good >= 0; good--) {
                b.len = 0;
                rec_head(&b, 0, 0);
                b.len--; /* the profile count */
                rec_u(&b, 1);
                rec_s(&b, "kind");
                buf_putc(&b, (char)FT_ENUM);
                buf_putc(&b, (char)(good ? VT_ENUM : VT_STR));
                rec_s(&b, "y");
                rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0); rec_u(&b, 0);
                cr_assert_eq(restore_one(rs, &b, &g), good ? 0 : -EINVAL);
                free(g);
        }
        buf_free(&b);
        rules_unref(rs);
}

/* Every input fuzz/fuzz-records found (tests/fuzz-regressions/records/),
 * and its seeds from real records (fuzz/records-seeds/), through the
 * fuzzer's own entry point: restores, pushes, aborts, commits, explains,
 * reloads and restarts, each record the engine wrote restoring again. */
#define RULES_DIR SRCDIR "/rules"
#define EVENTS_FILE SRCDIR "/examples/events.jsonl"
#include "fuzz/fuzz-records.c"
#include <dirent.h>

static uint32_t replay_dir(const char *dir)
{
        DIR *d = opendir(dir);
        cr_assert_not_null(d, "%s", dir);
        uint32_t n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.' || strcmp(de->d_name, "README") == 0)
                        continue;
                char *p = xasprintf("%s/%s", dir, de->d_name);
                char *text;
                size_t len;
                cr_assert_eq(file_read_all(p, &text, &len), 0, "%s", p);
                cr_assert_eq(LLVMFuzzerTestOneInput((const uint8_t *)text, len), 0, "%s", p);
                free(text);
                free(p);
                n++;
        }
        closedir(d);
        return n;
}

Test(engine, fuzz_record_regressions, .timeout = 300)
{
        cr_assert_gt(replay_dir(SRCDIR "/tests/fuzz-regressions/records"), 0);
        cr_assert_gt(replay_dir(SRCDIR "/fuzz/records-seeds"), 0);
}

/* ---- the compact form and the state budget (compact.c) ---- */

/* n enterprises under the official rules (monthly cycles: each graded one
 * keeps a cycle timer) registered at minute i; a third fail a sampling
 * (points for 20 days, a lead for 40), a third get an evaluation; then
 * nothing for months (they go idle) until day 120, when every other one
 * is evaluated again and its profile event comes again (a duplicate: the
 * remembered ids outlive the compact form); one enterprise is new then. */
static void idle_story(Buf *b, int n)
{
        const int64_t day = 1440;
        char id[32], en[16], f[128];
        for (int i = 0; i < n; i++) {
                snprintf(en, sizeof(en), "I%03d", i);
                snprintf(id, sizeof(id), "ip%d", i);
                ev(b, id, en, i, "enterprise",
                   i % 2 ? "\"category\":\"catering\",\"format\":\"producer\"" : "\"category\":\"dairy\",\"format\":\"operator\"");
        }
        for (int i = 0; i < n; i++) {
                snprintf(en, sizeof(en), "I%03d", i);
                snprintf(id, sizeof(id), "is%d", i);
                if (i % 3 == 0) {
                        snprintf(f, sizeof(f), "\"result\":\"fail\",\"measured\":%d,\"limit\":2", 3 + i % 5);
                        ev(b, id, en, 2 * day + i, "sampling", f);
                } else if (i % 3 == 1) {
                        snprintf(f, sizeof(f), "\"kind\":\"routine\",\"dynamic_risk_score\":%d", (i * 7) % 60);
                        ev(b, id, en, 2 * day + i, "inspection", f);
                }
        }
        for (int i = 0; i < n; i += 2) {
                snprintf(en, sizeof(en), "I%03d", i);
                snprintf(id, sizeof(id), "ir%d", i);
                snprintf(f, sizeof(f), "\"kind\":\"routine\",\"dynamic_risk_score\":%d", (i * 11) % 70);
                ev(b, id, en, 120 * day + i, "inspection", f);
                snprintf(id, sizeof(id), "ip%d", i);
                ev(b, id, en, 120 * day + i, "enterprise", "\"category\":\"dairy\",\"format\":\"operator\"");
        }
        ev(b, "late-new", "I999", 121 * day, "enterprise", "\"category\":\"dairy\",\"format\":\"operator\"");
}

static Out run_graded(RuleSet *rs, const char *text, const EngineConfig *cfg, EngineStats *st)
{
        Out o = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, cfg, sink, &o), 0);
        for (const char *p = text; *p;) {
                const char *nl = strchr(p, '\n');
                size_t l = nl ? (size_t)(nl - p) : strlen(p);
                engine_push(e, p, l, NULL);
                p += l + (nl ? 1 : 0);
        }
        engine_flush(e);
        if (st)
                *st = *engine_stats(e);
        buf_puts(&o.all, "--grades--\n");
        engine_grades_write(e, &o.all);
        engine_free(e);
        return o;
}

/* Every idle enterprise compacted after every event, or after every
 * batch with aborts and a restore between: the alerts, adjustments, dead
 * letters, final grades and the changelog records are byte for byte those
 * of the full form; enterprises were compacted and came back (events,
 * cycle timers, a duplicate). */
Test(engine, compact_form_changes_no_output)
{
        RuleSet *rs = load_official();
        Buf in = {0};
        idle_story(&in, 60);
        EngineConfig cfg;
        engine_config_default(&cfg);
        EngineStats sa, sb;
        Out a = run_graded(rs, in.p, &cfg, &sa);
        cfg.compact_every = 1;
        Out b = run_graded(rs, in.p, &cfg, &sb);
        cr_assert_eq(sa.compactions, 0);
        cr_assert_gt(sb.compactions, 60, "%llu", (unsigned long long)sb.compactions);
        cr_assert_gt(sb.expansions, 30, "%llu", (unsigned long long)sb.expansions);
        cr_assert_gt(sb.timers_fired, 0);
        cr_assert_eq(sa.timers_fired, sb.timers_fired);
        cr_assert_str_eq(a.all.p, b.all.p);
        cr_assert_str_eq(a.dlq.p, b.dlq.p);
        cr_assert_not_null(strstr(a.dlq.p, "duplicate"));
        cr_assert_not_null(strstr(a.all.p, "\"cause\":\"cycle\""));
        out_free(&a);
        out_free(&b);

        /* in batches, aborts and a crash: the records too */
        Log la = {0}, lb = {0};
        batches_ex(rs, in.p, 7, 3, 0, 0, false, &la, &sa);
        batches_ex(rs, in.p, 7, 3, 0, 0, true, &lb, &sb);
        cr_assert_gt(sb.compactions, 0);
        cr_assert_eq(la.n, lb.n);
        for (uint32_t i = 0; i < la.n; i++) {
                cr_assert_str_eq(la.key[i], lb.key[i]);
                cr_assert_eq(la.vlen[i], lb.vlen[i], "record %u of %s", i, la.key[i]);
                cr_assert_eq(memcmp(la.val[i], lb.val[i], la.vlen[i]), 0, "record %u of %s", i, la.key[i]);
        }
        log_free(&la);
        log_free(&lb);
        batches_ex(rs, in.p, 5, 0, 97, 0, true, NULL, NULL);
        batches_ex(rs, in.p, 9, 4, 140, 0, true, NULL, NULL);
        buf_free(&in);
        rules_unref(rs);

        /* the other rules: windows, for:, absent() and cooldowns */
        rs = load();
        story(&in);
        engine_config_default(&cfg);
        a = run_graded(rs, in.p, &cfg, NULL);
        cfg.compact_every = 1;
        b = run_graded(rs, in.p, &cfg, &sb);
        cr_assert_str_eq(a.all.p, b.all.p);
        cr_assert_str_eq(a.dlq.p ? a.dlq.p : "", b.dlq.p ? b.dlq.p : "");
        batches_ex(rs, in.p, 37, 3, 0, 0, true, NULL, NULL);
        batches_ex(rs, in.p, 40, 4, 333, 3600000, true, NULL, NULL);
        out_free(&a);
        out_free(&b);
        buf_free(&in);
        rules_unref(rs);
}

/* idle_story(60) up to day 60, when every point and lead has expired: 60
 * idle enterprises; the stream in *in, the outputs to *o. */
static Engine *idle_engine(RuleSet *rs, Out *o, Buf *in)
{
        idle_story(in, 60);
        const char *cut = strstr(in->p, "\"event_id\":\"ir0\"");
        cr_assert_not_null(cut);
        while (cut > in->p && cut[-1] != '\n')
                cut--;
        EngineConfig cfg;
        engine_config_default(&cfg);
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, o), 0);
        for (const char *p = in->p; p < cut;) {
                const char *nl = strchr(p, '\n');
                engine_push(e, p, (size_t)(nl - p), NULL);
                p = nl + 1;
        }
        engine_advance(e, 1735689600000LL + 60LL * 1440 * 60000);
        return e;
}

/* Idle enterprises take less room compact; one comes back, as it was, when
 * it is looked at (explain), the others stay compact. */
Test(engine, compact_form_is_smaller_and_comes_back_when_touched)
{
        RuleSet *rs = load_official();
        Buf in = {0};
        Out o = {0};
        Engine *e = idle_engine(rs, &o, &in);
        char *before = engine_explain_json(e, "I003", 4);
        cr_assert_not_null(before);
        uint64_t full = engine_state_bytes(e);
        /* a pass spread over calls of at most 25 */
        int n = engine_compact(e, 0, 25);
        cr_assert_eq(n, 25, "%d compacted", n);
        cr_assert_eq(engine_compact(e, 0, 25), 25);
        cr_assert_eq(engine_compact(e, 0, 25), 10);
        n = 60;
        uint64_t compact = engine_state_bytes(e);
        cr_assert_lt(compact, full, "%llu bytes compact, %llu full", (unsigned long long)compact,
                     (unsigned long long)full);
        cr_assert_eq(engine_counters(e)->enterprises_compact, 60);
        cr_assert_eq(engine_compact(e, 0, 0), 0); /* nothing left to compact */
        char *after = engine_explain_json(e, "I003", 4);
        cr_assert_str_eq(after, before);
        cr_assert_eq(engine_counters(e)->enterprises_compact, 59);
        cr_assert_eq(engine_counters(e)->expansions, 1);
        /* not between batches: refused */
        engine_batch_begin(e);
        cr_assert_eq(engine_compact(e, 0, 0), -EBUSY);
        engine_batch_commit(e);
        free(before);
        free(after);
        engine_free(e);
        out_free(&o);
        buf_free(&in);
        rules_unref(rs);
}

/* At the budget, an event that would make a new enterprise is a dead
 * letter over_limit naming limits.max_state_bytes, once compacting every
 * idle one left no room; nothing is lost: every event pushed is applied
 * or a dead letter; enterprises in state keep working; a restore refuses
 * records of new enterprises beyond the budget (-ENOSPC). */
Test(engine, the_budget_refuses_new_enterprises_and_loses_nothing)
{
        RuleSet *rs = load_official();
        EngineConfig cfg;
        engine_config_default(&cfg);
        Buf in = {0};
        char id[32], en[16];
        for (int i = 0; i < 400; i++) {
                snprintf(en, sizeof(en), "B%03d", i);
                snprintf(id, sizeof(id), "b%d", i);
                ev(&in, id, en, i, "enterprise", "\"category\":\"dairy\",\"format\":\"operator\"");
        }
        /* the budget: what 100 of them hold in full form */
        Engine *e = NULL;
        Buf dl = {0};
        cr_assert_eq(engine_new(&e, rs, &cfg, NULL, NULL), 0);
        const char *p = in.p;
        for (int i = 0; i < 100; i++) {
                const char *nl = strchr(p, '\n');
                engine_push(e, p, (size_t)(nl - p), NULL);
                p = nl + 1;
        }
        uint64_t budget = engine_state_bytes(e);
        engine_free(e);

        cfg.max_state_bytes = budget;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink_detail, &dl), 0);
        uint64_t pushed = 0;
        for (p = in.p; *p;) {
                const char *nl = strchr(p, '\n');
                engine_push(e, p, (size_t)(nl - p), NULL);
                pushed++;
                p = nl + 1;
        }
        /* an enterprise in state still takes its events */
        Buf more = {0};
        ev(&more, "b0-again", "B000", 500, "inspection", "\"kind\":\"routine\",\"dynamic_risk_score\":40");
        engine_push(e, more.p, more.len - 1, NULL);
        pushed++;
        const EngineStats *st = engine_stats(e);
        uint64_t over = st->rejects[reject_index("over_limit")];
        cr_assert_gt(over, 0);
        cr_assert_gt(st->enterprises, 100, "compacting made room: %llu", (unsigned long long)st->enterprises);
        cr_assert_lt(st->enterprises, 400);
        cr_assert_gt(st->compactions, 0);
        cr_assert_eq(st->refused_budget, over);
        cr_assert_eq(st->events_applied + over, pushed, "%llu applied, %llu refused, %llu pushed",
                     (unsigned long long)st->events_applied, (unsigned long long)over, (unsigned long long)pushed);
        cr_assert_not_null(strstr(dl.p, "over_limit: the state budget (limits.max_state_bytes, "));
        char *x = engine_explain_json(e, "B000", 4);
        cr_assert_not_null(strstr(x, "\"dynamic\":40"), "%s", x);
        free(x);

        /* a restore into the same budget: records of new enterprises past it are refused */
        Log log = {0};
        Engine *big = NULL;
        engine_config_default(&cfg);
        cr_assert_eq(engine_new(&big, rs, &cfg, NULL, NULL), 0);
        engine_batch_begin(big);
        for (p = in.p; *p;) {
                const char *nl = strchr(p, '\n');
                engine_push(big, p, (size_t)(nl - p), NULL);
                p = nl + 1;
        }
        engine_batch_changes(big, 400, log_record, &log);
        engine_batch_commit(big);
        engine_free(big);
        Engine *r = NULL;
        cfg.max_state_bytes = budget;
        cr_assert_eq(engine_new(&r, rs, &cfg, NULL, NULL), 0);
        uint32_t refused = 0;
        for (uint32_t i = 0; i < log.n; i++) {
                int rc = engine_restore_record(r, log.key[i], log.klen[i], log.val[i], log.vlen[i]);
                cr_assert(rc == 0 || rc == -ENOSPC, "%d", rc);
                refused += rc == -ENOSPC;
        }
        engine_restore_finish(r);
        cr_assert_gt(refused, 0);
        cr_assert_eq(engine_enterprises(r) + refused, 400);
        engine_free(r);
        log_free(&log);
        engine_free(e);
        buf_free(&more);
        buf_free(&dl);
        buf_free(&in);
        rules_unref(rs);
}


/* An explain document as the fixtures of records-v1.h have it, taken
 * before the document had a schema, open alerts and a rules version
 * (riskd.enterprise/1): those three cut out of j, in place.  The open
 * alerts repeat the contributions, which the fixture does compare. */
static void explain_before_enterprise_doc(char *j)
{
        static const char *const cut[][2] = {
                {"\"schema\":\"riskd.enterprise/1\",", NULL},
                {",\"open_alerts\":[", "],\"last_event\""},
                {",\"rules_version\":\"", "\"}"},
        };
        for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
                char *p = strstr(j, cut[i][0]);
                cr_assert_not_null(p, "%s in %s", cut[i][0], j);
                /* up to the end marker's first character, which goes too */
                char *q = cut[i][1] ? strstr(p, cut[i][1]) : p + strlen(cut[i][0]) - 1;
                cr_assert_not_null(q, "%s in %s", cut[i][1], j);
                q++;
                memmove(p, q, strlen(q) + 1);
        }
}

/* key's explain document is the fixture's want, but for what the document
 * gained since (explain_before_enterprise_doc) and its as_of: the latest
 * change, which a record of format 1 does not hold, so its last event's
 * time; the fixture has the watermark it was explained at. */
static void explain_as_fixture(Engine *e, const char *key, const char *want)
{
        char *j = engine_explain_json(e, key, strlen(key));
        explain_before_enterprise_doc(j);
        char *a = strstr(j, "\"as_of\":\""), *l = strstr(j, "\"last_event\":\"");
        const char *x = strstr(want, "\"as_of\":\"");
        cr_assert(a && l && x, "%s", j);
        a += strlen("\"as_of\":\"");
        l += strlen("\"last_event\":\"");
        x += strlen("\"as_of\":\"");
        cr_assert(strncmp(a, l, 20) == 0, "as_of is the last event's time: %s", j);
        memcpy(a, x, 20);
        cr_assert_str_eq(j, want);
        free(j);
}

static void restore_fixture(RuleSet *rs, const FixRecord *fx, size_t n, const char *grades, const char *const *keys,
                            const char *const *explain)
{
        EngineConfig cfg;
        engine_config_default(&cfg);
        Out o = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
        for (size_t k = 0; k < n; k++)
                cr_assert_eq(engine_restore_record(e, fx[k].key, fx[k].klen, fx[k].val, fx[k].vlen), 0, "record %zu", k);
        engine_restore_finish(e);
        cr_assert_not(engine_regrade_due(e));
        Buf g = {0};
        engine_grades_write(e, &g);
        buf_putc(&g, 0);
        cr_assert_str_eq(g.p, grades);
        for (size_t k = 0; keys[k]; k++) {
                explain_as_fixture(e, keys[k], explain[k]);
        }
        /* and it goes on: its next record restores the same */
        Log log = {0};
        engine_batch_begin(e);
        for (uint32_t i = 0; i < e->ents.tabcap; i++)
                if (e->ents.tab[i])
                        state_touch(e, tab_ent(e, i));
        engine_batch_changes(e, 1, log_record, &log);
        engine_batch_commit(e);
        engine_free(e);
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
        for (uint32_t k = 0; k < log.n; k++)
                cr_assert_eq(engine_restore_record(e, log.key[k], log.klen[k], log.val[k], log.vlen[k]), 0);
        engine_restore_finish(e);
        g.len = 0;
        engine_grades_write(e, &g);
        buf_putc(&g, 0);
        cr_assert_str_eq(g.p, grades);
        for (size_t k = 0; keys[k]; k++) {
                explain_as_fixture(e, keys[k], explain[k]);
        }
        engine_free(e);
        log_free(&log);
        buf_free(&g);
        out_free(&o);
}

Test(engine, records_of_format_1_restore)
{
        RuleSet *rs = load();
        const char *keys[] = {"E1", "E2", NULL};
        const char *story_explain[] = {v1_story_E1, v1_story_E2};
        restore_fixture(rs, v1_story, sizeof(v1_story) / sizeof(v1_story[0]), v1_story_grades, keys, story_explain);
        rules_unref(rs);
        RuleSet *ro = load_official();
        const char *okeys[] = {"E1", "E2", "E3", NULL};
        const char *off_explain[] = {v1_official_E1, v1_official_E2, v1_official_E3};
        restore_fixture(ro, v1_official, sizeof(v1_official) / sizeof(v1_official[0]), v1_official_grades, okeys,
                        off_explain);
        rules_unref(ro);
}

static char *text_replaced(const char *text, const char *from, const char *to)
{
        const char *at = strstr(text, from);
        cr_assert_not_null(at, "%s", from);
        return xasprintf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

/* The records as restored into rs and graded again: explain of E1 and E2
 * and the grades, one text. */
static char *restored_under(RuleSet *rs, const Log *log)
{
        EngineConfig cfg;
        engine_config_default(&cfg);
        Out o = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
        for (uint32_t k = 0; k < log->n; k++)
                cr_assert_eq(engine_restore_record(e, log->key[k], log->klen[k], log->val[k], log->vlen[k]), 0,
                             "record %u", k);
        engine_restore_finish(e);
        cr_assert(engine_regrade_due(e));
        EngineReload rep = {0};
        cr_assert_eq(engine_regrade(e, &rep), 0);
        engine_batch_commit(e);
        Buf b = {0};
        for (int i = 0; i < 2; i++) {
                char *j = engine_explain_json(e, i ? "E2" : "E1", 2);
                buf_puts(&b, j);
                free(j);
        }
        engine_grades_write(e, &b);
        buf_printf(&b, "dropped %llu rescored %llu regraded %llu\n", (unsigned long long)rep.state_dropped,
                   (unsigned long long)rep.rescored, (unsigned long long)rep.regraded);
        buf_putc(&b, 0);
        engine_free(e);
        out_free(&o);
        return b.p;
}

/* The same under the rules they were written with (nothing graded again). */
static char *restored_under_same(RuleSet *rs, const Log *log)
{
        EngineConfig cfg;
        engine_config_default(&cfg);
        Out o = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
        for (uint32_t k = 0; k < log->n; k++)
                cr_assert_eq(engine_restore_record(e, log->key[k], log->klen[k], log->val[k], log->vlen[k]), 0);
        engine_restore_finish(e);
        cr_assert_not(engine_regrade_due(e));
        Buf b = {0};
        for (int i = 0; i < 2; i++) {
                char *j = engine_explain_json(e, i ? "E2" : "E1", 2);
                buf_puts(&b, j);
                free(j);
        }
        engine_grades_write(e, &b);
        buf_putc(&b, 0);
        engine_free(e);
        out_free(&o);
        return b.p;
}

/* doc with every "open_alerts" and "grade_history" array emptied: format
 * 1 records predate the alert lifecycle and the grade history, and restore
 * as enterprises with no open alert and no history (docs/state.md), so
 * only the rest of a document compares with theirs. */
static char *as_format_1(char *doc)
{
        const char *tags[] = {"\"open_alerts\":[", "\"grade_history\":["};
        for (int t = 0; t < 2; t++)
                for (char *p = strstr(doc, tags[t]); p; p = strstr(p, tags[t])) {
                        p += strlen(tags[t]);
                        char *q = p;
                        for (int depth = 1; *q && depth; q++)
                                depth += *q == '[' ? 1 : *q == ']' ? -1 : 0;
                        memmove(p, q - 1, strlen(q - 1) + 1);
                }
        return doc;
}

/* Records of format 2 restore into changed rules as those of format 1 do
 * (names mapped by name, through the dictionary): a rule's score changed
 * (its state dropped), a rule removed (its window and key states gone), a
 * mode renamed (graded again), an enum's values reordered. */
Test(engine, records_of_format_2_restore_into_changed_rules_as_format_1)
{
        RuleSet *rs = load();
        Log now = {0}, old = {0};
        story_records(rs, &now);
        cr_assert_eq(memcmp(now.key[0], ENGINE_DICT_KEY, strlen(ENGINE_DICT_KEY)), 0, "the dictionary first");
        log_fixture(&old, v1_story, sizeof(v1_story) / sizeof(v1_story[0]));
        /* the same state either way, under the same rules */
        char *a = restored_under_same(rs, &now), *b = restored_under_same(rs, &old);
        cr_assert_null(strstr(b, "\"open_alerts\":[{"), "%s", b);
        cr_assert_str_eq(as_format_1(a), as_format_1(b));
        free(a);
        free(b);

        char *s1 = text_replaced(schema, "category: [dairy, meat]", "category: [meat, dairy]");
        char *r1 = text_replaced(rules, "score: 5\n", "score: 6\n");
        char *r2 = text_replaced(r1, "  - id: coldchain.hot_hour", "  - id: coldchain.hot_hour_gone\n    on: coldchain\n    when: false\n  - id: x.hot_hour");
        char *g1 = text_replaced(grading, "flying_inspection", "flying_check");
        const char *names[] = {"schema.yaml", "grading.yaml", "rules.yaml"};
        const char *texts[] = {s1, g1, r2};
        size_t lens[] = {strlen(s1), strlen(g1), strlen(r2)};
        DiagList dl = {0};
        RuleSet *rs2 = NULL;
        int rc = rules_load_mem("t2", names, texts, lens, 3, &dl, &rs2);
        if (rc)
                diag_print_text(stderr, &dl, false);
        cr_assert_eq(rc, 0);
        a = restored_under(rs2, &now);
        b = restored_under(rs2, &old);
        cr_assert_str_eq(as_format_1(a), as_format_1(b));
        cr_assert_not_null(strstr(a, "flying_check"), "%s", a);
        cr_assert_null(strstr(a, "coldchain.warm"), "%s", a); /* changed: its points dropped */
        cr_assert_null(strstr(a, "dropped 0 "), "%s", a);
        free(a);
        free(b);
        rules_unref(rs2);
        diag_list_deinit(&dl);
        free(s1);
        free(r1);
        free(r2);
        free(g1);
        log_free(&now);
        log_free(&old);
        rules_unref(rs);
}

/* ---- the alert lifecycle (alerts.c, docs/rules.md §5.10) ---- */

/* s.fail: per item, rectify 1h, expires 3h; s.pass closes the failure of
 * the same item; w.warm: no per:, rectify 30m, closed by w.ok (no per:);
 * it sets the flag the grading reads. */
static const char life_rules[] =
        "rules:\n"
        "  - id: s.fail\n    on: sampling\n    when: result == \"fail\"\n    per: item\n"
        "    score: 10\n    rectify: 1h\n    expires: 3h\n"
        "  - id: s.pass\n    on: sampling\n    when: result == \"pass\"\n    per: item\n"
        "    severity: info\n    closes: [s.fail]\n"
        "  - id: w.warm\n    on: coldchain\n    when: temp_c > 8\n    rectify: 30m\n"
        "    flags: { problem_lead: 20m }\n"
        "  - id: w.ok\n    on: coldchain\n    when: temp_c < 4\n    severity: info\n    closes: [w.warm]\n";

/* Enterprises E0..E5 over ten hours: failures of a few items, passes that
 * close some before and some after their deadline, warm readings closed or
 * left to escalate: every transition, at many batch boundaries. */
static void life_stream(Buf *b)
{
        char id[32], f[96];
        for (int m = 0; m < 600; m += 7) {
                for (int x = 0; x < 6; x++) {
                        int k = (m / 7 + x) % 11;
                        snprintf(id, sizeof(id), "l%d-%d", m, x);
                        char ent[8];
                        snprintf(ent, sizeof(ent), "E%d", x);
                        if (k == 0 || k == 4)
                                snprintf(f, sizeof(f), "\"result\":\"fail\",\"item\":\"I%d\"", (m / 7 + x) % 3);
                        else if (k == 7)
                                snprintf(f, sizeof(f), "\"result\":\"pass\",\"item\":\"I%d\"", (m / 5 + x) % 3);
                        else if (k == 2)
                                snprintf(f, sizeof(f), "\"device_id\":\"D\",\"temp_c\":%d", 9 + x);
                        else if (k == 9 && x % 2)
                                snprintf(f, sizeof(f), "\"device_id\":\"D\",\"temp_c\":2");
                        else
                                continue;
                        ev(b, id, ent, m, k == 2 || k == 9 ? "coldchain" : "sampling", f);
                }
        }
        /* failures nothing closes or supersedes, then time past their expiry */
        ev(b, "z1", "E1", 601, "sampling", "\"result\":\"fail\",\"item\":\"Z\"");
        ev(b, "z2", "E4", 602, "sampling", "\"result\":\"fail\",\"item\":\"Z\"");
        ev(b, "z3", "E0", 900, "sampling", "\"result\":\"pass\",\"item\":\"Q\"");
}

static uint32_t count_of(const char *text, const char *needle)
{
        uint32_t n = 0;
        for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

Test(engine, alert_lifecycle_makes_every_transition)
{
        RuleSet *rs = load_rules(life_rules);
        Buf in = {0};
        life_stream(&in);
        Out o = run(rs, in.p, 0, 0);
        const char *t = o.all.p;
        cr_assert_gt(count_of(t, "\"to\":\"escalated\",\"cause\":\"deadline\""), 0);
        cr_assert_gt(count_of(t, "\"to\":\"closed\",\"cause\":\"expired\""), 0);
        cr_assert_gt(count_of(t, "\"from\":\"open\",\"to\":\"closed\",\"cause\":\"resolved\""), 0);
        cr_assert_gt(count_of(t, "\"from\":\"escalated\",\"to\":\"closed\",\"cause\":\"resolved\""), 0);
        cr_assert_gt(count_of(t, "\"cause\":\"superseded\""), 0);
        /* an alert escalates at most once and closes at most once */
        uint32_t nalerts = count_of(t, "\"schema\":\"riskd.alert/1\"");
        cr_assert_leq(count_of(t, "\"to\":\"closed\""), nalerts);
        cr_assert_leq(count_of(t, "\"to\":\"escalated\""), nalerts);
        out_free(&o);
        buf_free(&in);
        rules_unref(rs);
}

/* The open alerts are enterprise state: an aborted batch takes its
 * transitions back, a restore from the changelog goes on with them, and
 * the compact form (every idle enterprise compacted after every commit,
 * abort and restore) changes nothing: the committed outputs equal one
 * uninterrupted run, transitions included. */
Test(engine, alert_lifecycle_survives_abort_restore_and_compaction)
{
        RuleSet *rs = load_rules(life_rules);
        Buf in = {0};
        life_stream(&in);
        batches(rs, in.p, 7, 3, 0, 0);
        batches(rs, in.p, 2, 2, 0, 0);
        batches(rs, in.p, 11, 4, 0, 3600000);
        for (uint32_t at = 9; at < 200; at += 37)
                batches(rs, in.p, 5, 0, at, 0);
        batches_ex(rs, in.p, 6, 3, 0, 0, true, NULL, NULL);
        batches_ex(rs, in.p, 6, 0, 101, 0, true, NULL, NULL);
        buf_free(&in);
        rules_unref(rs);
}

typedef struct Seen {
        uint32_t n;
        Buf b;
} Seen;

static void seen_alert(void *ud, const EngineAlert *a)
{
        Seen *s = ud;
        s->n++;
        buf_printf(&s->b, "%.*s %s %s %.*s %s\n", (int)a->enterprise_len, a->enterprise, a->rule_id, a->alert_id,
                   a->key ? (int)a->key_len : 4, a->key ? a->key : "null", a->state);
}

/* engine_alerts_each: what is open between batches, by enterprise; an
 * abort takes back what the batch opened. */
Test(engine, open_alerts_are_read_between_batches)
{
        RuleSet *rs = load_rules(life_rules);
        EngineConfig cfg;
        engine_config_default(&cfg);
        Out o = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
        Buf in = {0};
        ev(&in, "a1", "E2", 0, "sampling", "\"result\":\"fail\",\"item\":\"I1\"");
        ev(&in, "a2", "E1", 1, "sampling", "\"result\":\"fail\",\"item\":\"I1\"");
        ev(&in, "a3", "E1", 2, "coldchain", "\"device_id\":\"D\",\"temp_c\":9");
        engine_batch_begin(e);
        for (const char *p = in.p; *p;) {
                const char *nl = strchr(p, '\n');
                engine_push(e, p, (size_t)(nl - p), NULL);
                p = nl + 1;
        }
        engine_batch_commit(e);
        Seen s = {0};
        cr_assert_eq(engine_alerts_each(e, "E1", 2, seen_alert, &s), 2);
        cr_assert_eq(s.n, 2);
        cr_assert(strstr(s.b.p, "E1 s.fail ") && strstr(s.b.p, " I1 open\n"), "%s", s.b.p);
        cr_assert(strstr(s.b.p, "E1 w.warm ") && strstr(s.b.p, " null open\n"), "%s", s.b.p);
        cr_assert_lt(strstr(s.b.p, "s.fail") - s.b.p, strstr(s.b.p, "w.warm") - s.b.p, "in the order they opened");
        cr_assert_eq(engine_alerts_each(e, "E9", 2, seen_alert, &s), -ENOENT);
        s.n = 0;
        s.b.len = 0;
        cr_assert_eq(engine_alerts_each(e, NULL, 0, seen_alert, &s), 3);
        cr_assert_eq(strncmp(s.b.p, "E1 ", 3), 0, "by enterprise id: %s", s.b.p);
        /* a batch that passes I1's deadline and closes the warm reading,
         * aborted: both open again, as before it */
        buf_free(&in);
        ev(&in, "a4", "E1", 70, "coldchain", "\"device_id\":\"D\",\"temp_c\":2");
        engine_batch_begin(e);
        engine_push(e, in.p, in.len - 1, NULL);
        s.n = 0;
        s.b.len = 0;
        cr_assert_eq(engine_alerts_each(e, "E1", 2, seen_alert, &s), 1);
        cr_assert(strstr(s.b.p, "E1 s.fail ") && strstr(s.b.p, " I1 escalated\n"), "%s", s.b.p);
        engine_batch_abort(e);
        s.n = 0;
        s.b.len = 0;
        cr_assert_eq(engine_alerts_each(e, "E1", 2, seen_alert, &s), 2);
        cr_assert(strstr(s.b.p, " I1 open\n") && strstr(s.b.p, "w.warm"), "%s", s.b.p);
        buf_free(&s.b);
        buf_free(&in);
        engine_free(e);
        out_free(&o);
        rules_unref(rs);
}

/* A record without open alerts (every record written before they were:
 * here one of rules without a lifecycle) reads as none under rules with
 * one; a reload that removes a rule closes its open alerts, superseded,
 * and one that keeps the rule keeps them. */
Test(engine, open_alerts_across_records_and_reloads)
{
        RuleSet *rl = load_rules(life_rules);
        char *plain_text = text_edited(life_rules, "    score: 10\n    rectify: 1h\n    expires: 3h\n",
                                       "    score: 10\n    cooldown: 0s\n    tags: [xy]\n");
        /* s.pass names s.fail in closes:: drop it (same length) */
        char *t2 = text_edited(plain_text, "closes: [s.fail]", "tags: [a, b, c] ");
        char *t3 = text_edited(t2, "closes: [w.warm]", "tags: [a, b, c] ");
        char *t4 = text_edited(t3, "rectify: 30m", "cooldown: 0s");
        RuleSet *rp = load_rules(t4);
        for (uint32_t i = 0; i < rp->nrules; i++)
                cr_assert_not(rp->rules[i].lifecycle, "%s", rp->rules[i].id);
        Buf in = {0};
        life_stream(&in);
        /* records of the rules without a lifecycle, restored under rl */
        Log log = {0};
        batches_ex(rp, in.p, 40, 0, 0, 0, false, &log, NULL);
        char *back = restored_under(rl, &log); /* every record restores (0), graded again */
        cr_assert_not_null(back);
        free(back);
        log_free(&log);

        /* a reload from rl to rules without s.fail's lifecycle after the
         * first hundred lines: the alerts open then close, superseded */
        uint32_t n;
        char *copy;
        char **lines = split_lines(in.p, &n, &copy);
        cr_assert_gt(n, 100);
        Out r = run_reloading(rl, rp, in.p, 100, NULL, NULL);
        Out ref = run_reloading(rl, rl, in.p, 100, NULL, NULL);
        cr_assert_gt(count_of(r.all.p, "\"cause\":\"superseded\",\"evidence\":[]"), 0);
        cr_assert_eq(count_of(ref.all.p, "\"cause\":\"superseded\",\"evidence\":[]"), 0,
                     "the same rules: nothing closes at the reload");
        out_free(&r);
        out_free(&ref);
        free(lines);
        free(copy);
        buf_free(&in);
        free(plain_text);
        free(t2);
        free(t3);
        free(t4);
        rules_unref(rl);
        rules_unref(rp);
}


/* ---- the enterprise document (riskd.enterprise/1, issue 16) ---- */

/* The index of the last record log holds for key, UINT32_MAX none. */
static uint32_t log_last(const Log *log, const char *key)
{
        uint32_t at = UINT32_MAX;
        for (uint32_t i = 0; i < log->n; i++)
                if (strcmp(log->key[i], key) == 0)
                        at = i;
        return at;
}

/* The story, then 40 days later an event of E2 (E1's expiries act by
 * timer after its last event), then one more of E2: in batches of k
 * lines, every idle enterprise compacted between batches; the enterprise
 * documents of every batch into docs, the changelog into cl.  Returns the
 * engine (caller frees); *last_batch: the keys of the last batch's
 * documents, one a line. */
static Engine *doc_batches(RuleSet *rs, uint32_t k, Log *docs, Log *cl, Buf *last_batch)
{
        Buf in = {0};
        story(&in);
        ev(&in, "late-1", "E2", 40 * 24 * 60, "sampling", "\"result\":\"pass\",\"confirmed\":true");
        ev(&in, "late-2", "E2", 40 * 24 * 60 + 1, "sampling", "\"result\":\"pass\",\"confirmed\":true");
        EngineConfig cfg;
        engine_config_default(&cfg);
        Out o = {0};
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o), 0);
        const char *p = in.p;
        while (*p) {
                engine_batch_begin(e);
                for (uint32_t n = 0; n < k && *p; n++) {
                        const char *nl = strchr(p, '\n');
                        engine_push(e, p, (size_t)(nl - p), NULL);
                        p = nl + 1;
                }
                uint32_t from = docs->n;
                engine_batch_enterprises(e, log_record, docs);
                engine_batch_changes(e, 1, log_record, cl);
                engine_batch_commit(e);
                engine_compact(e, 0, 0);
                last_batch->len = 0;
                for (uint32_t i = from; i < docs->n; i++)
                        buf_printf(last_batch, "%s\n", docs->key[i]);
        }
        buf_putc(last_batch, 0);
        out_free(&o);
        buf_free(&in);
        return e;
}

/* The last document written for each enterprise is its explain document
 * and every enterprise's line of engine_enterprises_write, whatever the
 * batches; a batch writes the documents of the enterprises it touched
 * only (E1, compacted, writes nothing when only E2 has an event); the
 * document is as of the latest change, here a timer's after E1's last
 * event, and a restore from the changelog gives the same documents. */
Test(engine, enterprise_documents_do_not_depend_on_the_batches)
{
        RuleSet *rs = load();
        char *want = NULL;
        const uint32_t sizes[] = {1, 7, 100000};
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
                Log docs = {0}, cl = {0};
                Buf last = {0}, all = {0};
                Engine *e = doc_batches(rs, sizes[s], &docs, &cl, &last);
                if (sizes[s] == 1)
                        cr_assert_str_eq(last.p, "E2\n", "the last batch touched E2 alone");
                engine_enterprises_write(e, &all);
                buf_putc(&all, 0);
                cr_assert_not_null(strstr(all.p, "\"enterprise_id\":\"E1\",\"as_of\":\"2025-01-31T03:20:00Z\""),
                                   "E1 as of its flag's expiry, after its last event: %s", all.p);
                uint32_t lines = 0;
                for (const char *k = all.p; *k; lines++) {
                        const char *nl = strchr(k, '\n');
                        const char *id = strstr(k, "\"enterprise_id\":\"") + strlen("\"enterprise_id\":\"");
                        char *key = xstrndup(id, (size_t)(strchr(id, '"') - id));
                        uint32_t d = log_last(&docs, key);
                        cr_assert_neq(d, UINT32_MAX, "a document of %s", key);
                        cr_assert(docs.vlen[d] == (size_t)(nl - k) && memcmp(docs.val[d], k, docs.vlen[d]) == 0,
                                  "%s: last document %.*s, at the end %.*s", key, (int)docs.vlen[d], docs.val[d],
                                  (int)(nl - k), k);
                        char *x = engine_explain_json(e, key, strlen(key));
                        cr_assert(strncmp(x, k, (size_t)(nl - k + 1)) == 0, "explain %s: %s", key, x);
                        free(x);
                        free(key);
                        k = nl + 1;
                }
                cr_assert_eq(lines, 2);
                if (!want)
                        want = xstrdup(all.p);
                cr_assert_str_eq(all.p, want, "batches of %u", sizes[s]);
                /* restored from its changelog: the same documents (E1's
                 * and E2's, as explain gives them), and the same grades */
                Buf expect = {0};
                buf_puts(&expect, want);
                engine_grades_write(e, &expect);
                buf_putc(&expect, 0);
                char *back = restored_under_same(rs, &cl);
                cr_assert_str_eq(back, expect.p, "restored");
                free(back);
                buf_free(&expect);
                engine_free(e);
                buf_free(&all);
                buf_free(&last);
                log_free(&docs);
                log_free(&cl);
        }
        free(want);
        rules_unref(rs);
}

/* The number as out_num wrote it before its fast path: %.15g, or %.17g
 * when that does not give it back. */
static void num_reference(Buf *b, double d)
{
        char s[40];
        if (fabs(d) < 1e15 && d == (double)(int64_t)d) {
                buf_printf(b, "%lld", (long long)(int64_t)d);
                return;
        }
        snprintf(s, sizeof(s), "%.15g", d);
        if (strtod(s, NULL) != d)
                snprintf(s, sizeof(s), "%.17g", d);
        buf_puts(b, s);
}

/* out_num writes decimals of one or two digits without printf: the same
 * bytes as %.15g for every such number, and for the others too. */
Test(engine, numbers_print_as_printf_does)
{
        Buf a = {0}, r = {0};
        uint64_t seed = 88172645463325252ull;
        for (int64_t i = -300000; i <= 300000; i++) {
                double v[6] = {(double)i / 10, (double)i / 100, (double)i / 1000, (double)i * 0.1, (double)i * 0.01,
                               (double)i * 1e9 + 0.25};
                seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
                double big[3] = {(double)(int64_t)(seed >> 11) / 100, (double)(seed >> 20) / 10 + 0.05,
                                 (double)seed / 3e5};
                for (int k = 0; k < 9; k++) {
                        double d = k < 6 ? v[k] : big[k - 6];
                        a.len = r.len = 0;
                        out_num(&a, d);
                        num_reference(&r, d);
                        cr_assert(a.len == r.len && memcmp(a.p, r.p, a.len) == 0, "%.17g: %.*s, printf %.*s", d,
                                  (int)a.len, a.p, (int)r.len, r.p);
                }
        }
        buf_free(&a);
        buf_free(&r);
}

/* A reload that changes an enterprise's state changes it then: its
 * document (explain's, which the reload's batch writes) is as of the
 * reload's time, under the new rules version. */
Test(engine, a_reload_dates_the_documents_it_changes)
{
        RuleSet *rs = load();
        char *changed = xstrdup(rules);
        char *at = strstr(changed, "score: 20\n    expires: 90d");
        cr_assert_not_null(at);
        at[8] = '5'; /* sampling.fail: 25 points */
        RuleSet *rs2 = load_with(schema, changed);
        Buf in = {0};
        story(&in);
        ev(&in, "late-1", "E2", 1000, "sampling", "\"result\":\"pass\",\"confirmed\":true");
        uint32_t lines = 0;
        for (size_t k = 0; k < in.len; k++)
                lines += in.p[k] == '\n';
        ev(&in, "late-2", "E2", 1000, "sampling", "\"result\":\"pass\",\"confirmed\":true");
        /* the reload after late-1: the watermark at 16:40, E1's last
         * event at 05:00, its last timer at 07:00 */
        char *before = NULL, *after = NULL;
        Out o = run_reloading(rs, rs2, in.p, lines, &before, &after);
        cr_assert_not_null(strstr(before, "\"as_of\":\"2025-01-01T07:00:00Z\""), "%s", before);
        cr_assert_not_null(strstr(after, "\"as_of\":\"2025-01-01T16:40:00Z\""), "%s", after);
        cr_assert_not_null(strstr(before, rs->version), "%s", before);
        cr_assert_not_null(strstr(after, rs2->version), "%s", after);
        free(before);
        free(after);
        out_free(&o);
        buf_free(&in);
        free(changed);
        rules_unref(rs2);
        rules_unref(rs);
}


/* engine_rows, collected as text: one line per enterprise, sorted. */
static void row_line(void *ud, const EngineRow *r)
{
        Buf *b = ud;
        buf_printf(b, "%.*s %s %s %g %g %s%.*s %s%.*s/%s %llx %u\n", (int)r->id_len, r->id,
                   r->grade ? r->grade : "-", r->mode ? r->mode : "-", r->per_year, r->score, r->region ? "" : "-",
                   (int)r->region_len, r->region ? r->region : "", r->category ? "" : "-", (int)r->category_len,
                   r->category ? r->category : "", r->category_label ? r->category_label : "-",
                   (unsigned long long)r->flags, r->open_alerts);
}

static char *rows_text(Engine *e)
{
        Buf b = {0};
        engine_rows(e, row_line, &b);
        buf_putc(&b, 0);
        char *lines[64];
        uint32_t n = 0;
        for (char *p = b.p, *nl; *p && n < 64; p = nl + 1) {
                nl = strchr(p, '\n');
                *nl = 0;
                lines[n++] = p;
        }
        qsort(lines, n, sizeof(char *), line_cmp);
        Buf out = {0};
        for (uint32_t i = 0; i < n; i++)
                buf_printf(&out, "%s\n", lines[i]);
        buf_free(&b);
        return out.p;
}

/* The query API's rows (riskd's /v1/enterprises, /v1/summary): grade,
 * score, the region (a string) and the category (an enum, with its label)
 * kept though no rule reads them (and restored from the changelog records),
 * live flags and open alerts; keeping them changes no output. */
Test(engine, rows_for_the_query_api)
{
        static const char schema_r[] =
                "envelope: { id: event_id, type: event_type, enterprise: enterprise.uscc, time: occurred_at }\n"
                "profile: enterprise\n"
                "types:\n"
                "  enterprise:\n"
                "    fields:\n"
                "      category: [dairy, meat]\n"
                "      region: string\n"
                "      line: { type: enum, values: { milk: 乳制品, meat: 肉制品 } }\n"
                "  sampling: { fields: { result: [pass, fail], confirmed: bool, item: string } }\n"
                "  coldchain: { fields: { device_id: string, temp_c: number } }\n";
        RuleSet *rs = load_with(schema_r, rules);
        Out o[2];
        memset(o, 0, sizeof(o));
        char *rows[2] = {NULL, NULL};
        Buf in = {0};
        ev(&in, "p1", "E1", 0, "enterprise", "\"category\":\"dairy\",\"region\":\"410105\",\"line\":\"milk\"");
        ev(&in, "p2", "E2", 0, "enterprise", "\"category\":\"meat\"");
        ev(&in, "s1", "E1", 10, "sampling", "\"result\":\"fail\",\"confirmed\":true,\"item\":\"x\"");
        ev(&in, "s2", "E2", 20, "sampling", "\"result\":\"pass\",\"confirmed\":true");
        for (int keep = 0; keep < 2; keep++) {
                EngineConfig cfg;
                engine_config_default(&cfg);
                cfg.region_field = keep ? "region" : NULL;
                cfg.category_field = keep ? "line" : NULL;
                Engine *e = NULL;
                cr_assert_eq(engine_new(&e, rs, &cfg, sink, &o[keep]), 0);
                Log log = {0};
                engine_batch_begin(e);
                for (const char *p = in.p; *p; p = strchr(p, '\n') + 1)
                        engine_push(e, p, (size_t)(strchr(p, '\n') - p), NULL);
                engine_batch_changes(e, 1, log_record, &log);
                engine_batch_commit(e);
                rows[keep] = rows_text(e);
                /* the region is state like the rest of the profile: a
                 * restore from the records gives the same rows */
                Out ro = {0};
                Engine *r = NULL;
                cr_assert_eq(engine_new(&r, rs, &cfg, sink, &ro), 0);
                for (uint32_t i = 0; i < log.n; i++)
                        cr_assert_eq(engine_restore_record(r, log.key[i], strlen(log.key[i]), log.val[i],
                                                           log.vlen[i]), 0);
                engine_restore_finish(r);
                char *restored = rows_text(r);
                cr_assert_str_eq(restored, rows[keep]);
                free(restored);
                engine_free(r);
                out_free(&ro);
                log_free(&log);
                Buf al = {0};
                cr_assert_eq(engine_open_alerts_json(e, "E1", 2, false, &al), 1);
                buf_putc(&al, 0);
                cr_assert_not_null(strstr(al.p, "{\"enterprise_id\":\"E1\",\"severity\":"), "%s", al.p);
                cr_assert_not_null(strstr(al.p, ",\"alert_id\":\""), "%s", al.p);
                cr_assert_not_null(strstr(al.p, "\"rule_id\":\"sampling.fail\""), "%s", al.p);
                cr_assert_not_null(strstr(al.p, "\"state\":\"open\",\"opened_at\":\"2025-01-01T00:10:00Z\""),
                                   "%s", al.p);
                al.len = 0;
                /* no rectify: deadline, nothing escalated */
                cr_assert_eq(engine_open_alerts_json(e, "E1", 2, true, &al), 0);
                cr_assert_eq(engine_open_alerts_json(e, "E2", 2, false, &al), 0);
                cr_assert_eq(engine_open_alerts_json(e, "E9", 2, false, &al), 0);
                buf_free(&al);
                engine_free(e);
        }
        /* problem_lead is flag 0: E1 B (dairy 20 + fail 20), flying, 1 open */
        cr_assert_str_eq(rows[1], "E1 B flying_inspection 2 40 410105 milk/乳制品 1 1\n"
                                  "E2 A double_random 1 0 - -/- 0 0\n");
        cr_assert_str_eq(rows[0], "E1 B flying_inspection 2 40 - -/- 1 1\n"
                                  "E2 A double_random 1 0 - -/- 0 0\n");
        cr_assert_str_eq(o[0].all.p, o[1].all.p, "keeping the region and the category changed an output");
        for (int i = 0; i < 2; i++) {
                free(rows[i]);
                out_free(&o[i]);
        }
        buf_free(&in);
        rules_unref(rs);
}

/* An enterprise in compact form gives the row of its full form, and the
 * walk leaves it compact. */
Test(engine, rows_of_compact_enterprises)
{
        RuleSet *rs = load_official();
        Buf in = {0};
        Out o = {0};
        Engine *e = idle_engine(rs, &o, &in);
        char *full = rows_text(e);
        cr_assert_eq(engine_compact(e, 0, 0), 60);
        char *compact = rows_text(e);
        cr_assert_str_eq(compact, full);
        cr_assert_eq(engine_counters(e)->enterprises_compact, 60, "the walk expanded none");
        free(full);
        free(compact);
        engine_free(e);
        out_free(&o);
        buf_free(&in);
        rules_unref(rs);
}


/* ---- the grade history (the array EntRare.h, the enterprise document's grade_history) ---- */

/* No hysteresis, and a profile alone moves E1 between A (meat, static 0)
 * and B (dairy, static 20): every profile update is an adjustment. */
static const char hist_grading[] =
        "dwell: 0s\n"
        "grades:\n"
        "  - { grade: A, max: 10, mode: double_random, inspections_per_year: 1 }\n"
        "  - { grade: B, mode: key_inspection, inspections_per_year: 2 }\n";

/* n profile updates of E1, ten minutes apart, alternating dairy and meat. */
static void toggle_stream(Buf *b, int from, int n)
{
        char id[32];
        for (int i = from; i < from + n; i++) {
                snprintf(id, sizeof(id), "p%d", i);
                ev(b, id, "E1", 10 * i, "enterprise", i % 2 ? "\"category\":\"meat\"" : "\"category\":\"dairy\"");
        }
}

/* The value after `name` in one JSON line (a string with its quotes, a
 * number, or an object's inside without its braces), into b. */
static void json_value(Buf *b, const char *line, const char *name)
{
        const char *p = strstr(line, name);
        cr_assert_not_null(p, "%s in %s", name, line);
        p += strlen(name);
        if (*p == '{') {
                const char *q = strchr(p, '}');
                buf_put(b, p + 1, (size_t)(q - p - 1));
                return;
        }
        size_t n = *p == '"' ? (size_t)(strchr(p + 1, '"') - p + 1) : strcspn(p, ",}");
        buf_put(b, p, n);
}

/* The grade_history the adjustments in out (E1's alone) give, keeping the
 * latest `keep`: each one's ts, id, cause and current, oldest first. */
static char *history_of(const Out *o, uint32_t keep)
{
        uint32_t nl;
        char *copy;
        char **lines = split_lines(o->all.p, &nl, &copy);
        uint32_t nadj = 0;
        for (uint32_t i = 0; i < nl; i++)
                nadj += strstr(lines[i], "\"riskd.adjustment/") != NULL;
        Buf b = {0};
        buf_puts(&b, "\"grade_history\":[");
        uint32_t k = 0;
        for (uint32_t i = 0; i < nl; i++) {
                if (!strstr(lines[i], "\"riskd.adjustment/") || k++ < (nadj > keep ? nadj - keep : 0))
                        continue;
                buf_puts(&b, b.p[b.len - 1] == '[' ? "{\"ts\":" : ",{\"ts\":");
                json_value(&b, lines[i], "\"ts\":");
                buf_puts(&b, ",\"adjustment_id\":");
                json_value(&b, lines[i], "\"adjustment_id\":");
                buf_puts(&b, ",\"cause\":");
                json_value(&b, lines[i], "\"cause\":");
                buf_putc(&b, ',');
                json_value(&b, lines[i], "\"current\":");
                buf_putc(&b, '}');
        }
        buf_puts(&b, "]");
        free(lines);
        free(copy);
        return b.p;
}

/* Every line of text pushed into e. */
static void push_lines(Engine *e, const char *text)
{
        for (const char *p = text; *p;) {
                const char *nl = strchr(p, '\n');
                engine_push(e, p, (size_t)(nl - p), NULL);
                p = nl + 1;
        }
}

/* A new engine of rs under the default configuration, its outputs into o. */
static Engine *engine_default(RuleSet *rs, Out *o)
{
        EngineConfig cfg;
        engine_config_default(&cfg);
        Engine *e = NULL;
        cr_assert_eq(engine_new(&e, rs, &cfg, sink, o), 0);
        return e;
}

/* E1's document after n profile updates, its explain text in *text and
 * the adjustments in *o. */
static char *toggled(RuleSet *rs, int n, Out *o, char **text)
{
        Buf in = {0};
        toggle_stream(&in, 0, n);
        Engine *e = engine_default(rs, o);
        push_lines(e, in.p);
        engine_flush(e);
        char *doc = engine_explain_json(e, "E1", 2);
        *text = engine_explain_text(e, "E1", 2);
        engine_free(e);
        buf_free(&in);
        return doc;
}

/* Every adjustment joins the history, oldest first; past 16 the oldest go. */
Test(engine, grade_history_is_the_latest_16_adjustments_oldest_first)
{
        RuleSet *rs = load_grading(hist_grading);
        int counts[] = {1, 5, 16, 17, 23};
        for (uint32_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
                Out o = {0};
                char *text = NULL;
                char *doc = toggled(rs, counts[i], &o, &text);
                cr_assert_eq(o.adjustments, (uint32_t)counts[i], "%u adjustments", o.adjustments);
                char *want = history_of(&o, 16);
                cr_assert_not_null(strstr(doc, want), "%s\nnot in\n%s", want, doc);
                uint32_t entries = 0;
                for (const char *p = strstr(doc, "\"grade_history\":"); (p = strstr(p + 1, "\"adjustment_id\":"));)
                        entries++;
                cr_assert_eq(entries, counts[i] < 16 ? (uint32_t)counts[i] : 16u);
                /* the explain text lists them too, a line each */
                uint32_t lines = 0;
                for (const char *p = strstr(text, "grade changes"); p && (p = strstr(p + 1, ", adjustment "));)
                        lines++;
                cr_assert_eq(lines, entries, "%s", text);
                cr_assert_not_null(strstr(text, counts[i] % 2 ? "grade B, mode key_inspection, 2 inspections a year  (profile"
                                                               : "grade A, mode double_random, 1 inspections a year  (profile"),
                                   "%s", text);
                free(text);
                free(want);
                free(doc);
                out_free(&o);
        }
        rules_unref(rs);
}

/* doc with its grade_history emptied. */
static char *without_history(const char *doc)
{
        char *s = xstrdup(doc);
        const char tag[] = "\"grade_history\":[";
        char *p = strstr(s, tag) + strlen(tag);
        char *q = strchr(p, ']');
        memmove(p, q, strlen(q) + 1);
        return s;
}

/* The history is state: an aborted batch takes back what its adjustments
 * added; a restore from the records, and the compact form, keep it; a
 * record without its section (written before it was kept) restores with
 * none and the rest equal. */
Test(engine, grade_history_rolls_back_restores_and_compacts)
{
        RuleSet *rs = load_grading(hist_grading);
        Buf in = {0}, more = {0};
        toggle_stream(&in, 0, 10);
        toggle_stream(&more, 10, 9);
        Out o = {0};
        Engine *e = engine_default(rs, &o);
        /* ten changes committed, nine more aborted */
        engine_batch_begin(e);
        push_lines(e, in.p);
        Log log = {0};
        engine_batch_changes(e, 1, log_record, &log);
        engine_batch_commit(e);
        char *doc = engine_explain_json(e, "E1", 2);
        char *want = history_of(&o, 16);
        cr_assert_not_null(strstr(doc, want), "%s", doc);
        engine_batch_begin(e);
        push_lines(e, more.p);
        char *longer = engine_explain_json(e, "E1", 2);
        cr_assert_str_neq(longer, doc);
        engine_batch_abort(e);
        char *back = engine_explain_json(e, "E1", 2);
        cr_assert_str_eq(back, doc);
        engine_free(e);

        /* restored, then compacted and expanded by the explain */
        Out o2 = {0};
        e = engine_default(rs, &o2);
        for (uint32_t k = 0; k < log.n; k++)
                cr_assert_eq(engine_restore_record(e, log.key[k], log.klen[k], log.val[k], log.vlen[k]), 0);
        engine_restore_finish(e);
        char *restored = engine_explain_json(e, "E1", 2);
        cr_assert_str_eq(restored, doc);
        cr_assert_eq(engine_compact(e, 0, 0), 1, "E1 compacted");
        char *expanded = engine_explain_json(e, "E1", 2);
        cr_assert_str_eq(expanded, doc);
        engine_free(e);

        /* E1's record cut before its history: the section is last, so one
         * of the record's prefixes ending at an 'H' is the record as a
         * riskd before it wrote it */
        uint32_t at = log_find(&log, "E1");
        char *none = without_history(doc);
        bool found = false;
        for (size_t len = log.vlen[at] - 1; len > 0 && !found; len--) {
                if (log.val[at][len] != 'H')
                        continue;
                e = engine_default(rs, &o2);
                bool ok = true;
                for (uint32_t k = 0; k < log.n && ok; k++)
                        ok = engine_restore_record(e, log.key[k], log.klen[k], log.val[k],
                                                   k == at ? len : log.vlen[k]) == 0;
                if (ok) {
                        engine_restore_finish(e);
                        char *d = engine_explain_json(e, "E1", 2);
                        found = d && strcmp(d, none) == 0;
                        free(d);
                }
                engine_free(e);
        }
        cr_assert(found, "no prefix of E1's record restores as\n%s", none);

        free(none);
        free(doc);
        free(want);
        free(longer);
        free(back);
        free(restored);
        free(expanded);
        log_free(&log);
        out_free(&o);
        out_free(&o2);
        buf_free(&in);
        buf_free(&more);
        rules_unref(rs);
}

/* A reload that adjusts an enterprise keeps its history and adds its
 * reload adjustment. */
Test(engine, a_reload_adds_its_adjustment_to_the_grade_history)
{
        RuleSet *rs = load();
        char *changed = text_edited(rules, "score: 20\n    expires: 90d", "score: 25"); /* sampling.fail */
        RuleSet *rs2 = load_rules(changed);
        Buf in = {0};
        story(&in);
        uint32_t lines = 0;
        for (size_t k = 0; k < in.len; k++)
                lines += in.p[k] == '\n';
        char *before = NULL, *after = NULL;
        Out o = run_reloading(rs, rs2, in.p, lines - 1, &before, &after);
        /* before: E1's history as its adjustments before the reload give it */
        const char *h = strstr(before, "\"grade_history\":[");
        cr_assert_not_null(h);
        size_t hl = (size_t)(strchr(h, ']') - h);
        cr_assert_gt(hl, strlen("\"grade_history\":["), "%s", before);
        cr_assert_not_null(find_str(after, strlen(after), "\"grade_history\":["));
        cr_assert_eq(strncmp(strstr(after, "\"grade_history\":["), h, hl), 0, "%s\n%s", before, after);
        /* then the reload's: the changed rule's points dropped, E1's
         * score fell, its grade B held by the dwell */
        const char *r = strstr(after, "\"grade_history\":[") + hl;
        cr_assert_eq(strncmp(r, ",{\"ts\":\"2025-01-01T05:00:00Z\"", 28), 0, "%s", after);
        cr_assert_not_null(strstr(r, "\"cause\":\"reload\",\"grade\":\"B\""), "%s", after);
        /* whose id is the reload adjustment's */
        const char *adj = strstr(o.all.p, "\"cause\":\"reload\"");
        cr_assert_not_null(adj);
        while (adj > o.all.p && adj[-1] != '\n')
                adj--;
        Buf id = {0};
        json_value(&id, adj, "\"adjustment_id\":");
        buf_putc(&id, 0);
        cr_assert_not_null(strstr(r, id.p), "%s in %s", id.p, after);
        buf_free(&id);
        free(changed);
        free(before);
        free(after);
        out_free(&o);
        buf_free(&in);
        rules_unref(rs2);
        rules_unref(rs);
}
