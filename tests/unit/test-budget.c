/*
 * Unit tests of src/daemon/budget.c, the state budget of the process: its
 * default from the cgroup's memory.max (a tree standing for /sys/fs/cgroup,
 * as RISKD_CGROUP_ROOT gives riskd) or physical memory; between batches,
 * the warning at 80 % (once per crossing, again after use fell below
 * 70 %), compaction from 80 %, each Engine's share (at the budget a new
 * enterprise is a dead letter over_limit), and the metrics.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "include/riskd/engine.h"
#include "include/riskd/util.h"
#include "src/daemon/budget.h"

/* This process's cgroup v2 group, "" when it has none. */
static void own_group(char *out, size_t n)
{
        out[0] = 0;
        FILE *f = fopen("/proc/self/cgroup", "r");
        char line[4096];
        while (f && fgets(line, sizeof(line), f))
                if (strncmp(line, "0::", 3) == 0) {
                        line[strcspn(line, "\n")] = 0;
                        snprintf(out, n, "%s", line + 3);
                }
        if (f)
                fclose(f);
}

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f, "%s", path);
        fputs(text, f);
        fclose(f);
}

static void mkdirs(const char *path)
{
        char p[8400];
        snprintf(p, sizeof(p), "%s", path);
        for (char *s = p + 1; *s; s++)
                if (*s == '/') {
                        *s = 0;
                        mkdir(p, 0755);
                        *s = '/';
                }
        mkdir(p, 0755);
}

Test(budget, default_from_the_cgroup_or_physical_memory)
{
        char group[4096];
        own_group(group, sizeof(group));
        if (!group[0])
                cr_skip_test("no cgroup v2 group in /proc/self/cgroup");
        char root[] = "/tmp/riskd-cgroup.XXXXXX";
        cr_assert_not_null(mkdtemp(root));
        char dir[8300], path[8400], from[512];
        snprintf(dir, sizeof(dir), "%s%s", root, strcmp(group, "/") ? group : "");
        mkdirs(dir);
        /* the group's own limit, or an ancestor's when smaller */
        snprintf(path, sizeof(path), "%s/memory.max", dir);
        write_file(path, "17179869184\n");
        uint64_t b = budget_default(root, from, sizeof(from));
        cr_assert_eq(b, 8589934592ull, "%llu", (unsigned long long)b);
        cr_assert_not_null(strstr(from, "50% of memory.max 17179869184 of cgroup "), "%s", from);
        if (strcmp(group, "/") != 0) {
                snprintf(path, sizeof(path), "%s/memory.max", root);
                write_file(path, "1000000\n");
                cr_assert_eq(budget_default(root, from, sizeof(from)), 500000);
                cr_assert_not_null(strstr(from, "of cgroup /"), "%s", from);
                write_file(path, "max\n");
        }
        /* "max" all the way up: physical memory */
        snprintf(path, sizeof(path), "%s/memory.max", dir);
        write_file(path, "max\n");
        b = budget_default(root, from, sizeof(from));
        uint64_t mem = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
        cr_assert_eq(b, mem / 100 * 50 + mem % 100 * 50 / 100);
        cr_assert_not_null(strstr(from, "of physical memory"), "%s", from);
        /* no tree at all: the same */
        cr_assert_eq(budget_default("/nonexistent-riskd-cgroup", from, sizeof(from)), b);
        char cmd[8400];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
        cr_assert_eq(system(cmd), 0);
}

static const char schema[] =
        "envelope: { id: event_id, type: event_type, enterprise: enterprise.uscc, time: occurred_at }\n"
        "profile: enterprise\n"
        "types:\n"
        "  enterprise: { fields: { category: [dairy, meat] } }\n";
/* the official model: every graded enterprise keeps its official state
 * and a cycle timer, which its compact form keeps too */
static const char grading[] = "official: { cycle: 1mo, cycle_start: \"01-01\", offset: \"+08:00\" }\n"
                              "grades:\n  - { grade: A, max: 10, mode: m, inspections_per_year: 1 }\n"
                              "  - { grade: B, mode: m, inspections_per_year: 2 }\n";
static const char rules[] = "rules:\n  - id: p.dairy\n    on: enterprise\n    when: category == \"dairy\"\n    score: 5\n";

static uint64_t overs;

static void sink(void *ud, OutKind kind, const char *data, size_t len, const OutMeta *m)
{
        (void)ud;
        (void)data;
        (void)len;
        if (kind == OUT_DEADLETTER && strcmp(m->reason, "over_limit") == 0)
                overs++;
}

static void push_ents(Engine *e, const char *prefix, int from, int to)
{
        for (int i = from; i < to; i++) {
                char line[256];
                int n = snprintf(line, sizeof(line),
                                 "{\"event_id\":\"%s-%d\",\"event_type\":\"enterprise\",\"enterprise\":{\"uscc\":\"%s%d\"},"
                                 "\"occurred_at\":\"2025-01-01T00:00:00Z\",\"category\":\"dairy\"}",
                                 prefix, i, prefix, i);
                engine_push(e, line, (size_t)n, NULL);
        }
}

/* The lines of stderr written while fn ran. */
static char *stderr_of(void (*fn)(void *), void *ud)
{
        fflush(stderr);
        FILE *tmp = tmpfile();
        int saved = dup(2);
        dup2(fileno(tmp), 2);
        fn(ud);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        long n = ftell(tmp);
        char *s = xcalloc((size_t)(n > 0 ? n : 0) + 1, 1);
        rewind(tmp);
        if (n > 0)
                cr_assert_eq(fread(s, 1, (size_t)n, tmp), (size_t)n);
        fclose(tmp);
        return s;
}

typedef struct Tick {
        Budget *b;
        Engine **v;
        uint32_t n;
} Tick;

static void tick(void *ud)
{
        Tick *t = ud;
        budget_tick(t->b, t->v, t->n);
}

static uint32_t count(const char *s, const char *needle)
{
        uint32_t n = 0;
        for (const char *p = s; (p = strstr(p, needle)); p++)
                n++;
        return n;
}

Test(budget, warns_at_80_percent_once_per_crossing_and_refuses_at_the_budget)
{
        const char *names[] = {"schema.yaml", "grading.yaml", "rules.yaml"};
        const char *texts[] = {schema, grading, rules};
        size_t lens[] = {strlen(schema), strlen(grading), strlen(rules)};
        DiagList dl = {0};
        RuleSet *rs = NULL;
        cr_assert_eq(rules_load_mem("t", names, texts, lens, 3, &dl, &rs), 0);
        EngineConfig cfg;
        engine_config_default(&cfg);
        Engine *e[2] = {NULL, NULL};
        for (int i = 0; i < 2; i++)
                cr_assert_eq(engine_new(&e[i], rs, &cfg, sink, NULL), 0);
        push_ents(e[0], "A", 0, 300);
        push_ents(e[1], "B", 0, 100);
        uint64_t used = engine_state_bytes(e[0]) + engine_state_bytes(e[1]);

        Prom *p = prom_new();
        Budget b;
        budget_init(&b, used * 100 / 85, "test", p); /* use at 85 % */
        Tick t = {&b, budget_engines(&b, 2), 2};
        t.v[0] = e[0];
        t.v[1] = e[1];
        char *log1 = stderr_of(tick, &t);
        cr_assert_eq(count(log1, "of its budget (limits.max_state_bytes"), 1, "%s", log1);
        cr_assert_not_null(strstr(log1, "<4>state at 8"), "%s", log1); /* a warning */
        /* from 80 %, every idle enterprise was compacted */
        cr_assert_eq(engine_counters(e[0])->enterprises_compact + engine_counters(e[1])->enterprises_compact, 400);
        cr_assert_lt(b.used, used);
        /* between 70 % and 80 % (how far compaction got depends on the
         * record format: put the use there): no new line, still warned */
        b.bytes = b.used * 100 / 75;
        char *log2 = stderr_of(tick, &t);
        cr_assert_str_eq(log2, "");
        cr_assert(b.warned);

        /* the metrics */
        Buf m = {0};
        prom_render(p, &m);
        char want[128];
        snprintf(want, sizeof(want), "riskd_state_budget_bytes{kind=\"budget\"} %llu\n", (unsigned long long)b.bytes);
        cr_assert_not_null(strstr(m.p, want), "%s", m.p);
        cr_assert_not_null(strstr(m.p, "riskd_enterprises_by_form{form=\"compact\"} 400\n"), "%s", m.p);
        cr_assert_not_null(strstr(m.p, "riskd_enterprises_by_form{form=\"full\"} 0\n"), "%s", m.p);
        cr_assert_not_null(strstr(m.p, "riskd_compactions_total 400\n"), "%s", m.p);
        cr_assert_not_null(strstr(m.p, "riskd_expansions_total 0\n"), "%s", m.p);

        /* far below: the warning is re-armed (a notice says so) */
        b.bytes = b.used * 4;
        char *log3 = stderr_of(tick, &t);
        cr_assert_eq(count(log3, "of its budget"), 1, "%s", log3);
        cr_assert(!b.warned);
        /* at the budget: each Engine's share is what it holds, so a new
         * enterprise is a dead letter over_limit; one in state works */
        b.bytes = b.used;
        char *log4 = stderr_of(tick, &t);
        cr_assert_eq(count(log4, "of its budget (limits.max_state_bytes"), 1, "%s", log4);
        overs = 0;
        push_ents(e[0], "N", 0, 5);
        cr_assert_eq(overs, 5);
        push_ents(e[0], "A", 7, 8);
        cr_assert_eq(overs, 5);
        cr_assert_eq(engine_counters(e[0])->expansions, 1);

        free(log1);
        free(log2);
        free(log3);
        free(log4);
        buf_free(&m);
        budget_deinit(&b);
        prom_free(p);
        for (int i = 0; i < 2; i++)
                engine_free(e[i]);
        rules_unref(rs);
        diag_list_deinit(&dl);
}
