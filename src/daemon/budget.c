/*
 * The state budget (budget.h): one figure for the process, shared by the
 * partitions' Engines between batches.  An Engine refuses a new enterprise
 * once it holds its share (engine_budget_set); the shares are set again at
 * every tick from what all of them hold, so one busy partition may use
 * what the others leave.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/daemon/budget.h"
#include "src/daemon/log.h"

/* The first line of path as a number; "max" (no limit) and anything
 * unreadable give UINT64_MAX. */
static uint64_t read_limit(const char *path)
{
        FILE *f = fopen(path, "r");
        if (!f)
                return UINT64_MAX;
        char line[64];
        uint64_t v = UINT64_MAX;
        if (fgets(line, sizeof(line), f)) {
                char *end;
                errno = 0;
                unsigned long long x = strtoull(line, &end, 10);
                if (end != line && (*end == '\n' || !*end) && !errno)
                        v = x;
        }
        fclose(f);
        return v;
}

/* The cgroup v2 group of this process ("0::/system.slice/riskd.service"),
 * into out; false when there is none (cgroup v1 or no /proc). */
static bool own_group(char *out, size_t n)
{
        FILE *f = fopen("/proc/self/cgroup", "r");
        if (!f)
                return false;
        char line[4096];
        bool found = false;
        while (!found && fgets(line, sizeof(line), f)) {
                if (strncmp(line, "0::", 3) != 0)
                        continue;
                line[strcspn(line, "\n")] = 0;
                snprintf(out, n, "%s", line + 3);
                found = true;
        }
        fclose(f);
        return found;
}

uint64_t budget_default(const char *root, char *from, size_t n)
{
        char group[4096];
        if (!root || !*root)
                root = "/sys/fs/cgroup";
        if (own_group(group, sizeof(group))) {
                /* the smallest memory.max from the group up to the root */
                uint64_t lim = UINT64_MAX;
                char at[4096] = "";
                for (size_t len = strlen(group);;) {
                        char path[8300];
                        snprintf(path, sizeof(path), "%s%.*s/memory.max", root, (int)len, group);
                        uint64_t v = read_limit(path);
                        if (v < lim) {
                                lim = v;
                                snprintf(at, sizeof(at), "%.*s", len ? (int)len : 1, len ? group : "/");
                        }
                        while (len > 0 && group[len - 1] != '/')
                                len--;
                        if (len == 0)
                                break;
                        len--; /* the '/' */
                }
                if (lim != UINT64_MAX) {
                        snprintf(from, n, "%d%% of memory.max %" PRIu64 " of cgroup %s", BUDGET_DEFAULT_PERCENT, lim,
                                 at);
                        return lim / 100 * BUDGET_DEFAULT_PERCENT + lim % 100 * BUDGET_DEFAULT_PERCENT / 100;
                }
        }
        long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
        if (pages > 0 && size > 0) {
                uint64_t mem = (uint64_t)pages * (uint64_t)size;
                snprintf(from, n, "%d%% of physical memory %" PRIu64 " (no cgroup memory.max)", BUDGET_DEFAULT_PERCENT,
                         mem);
                return mem / 100 * BUDGET_DEFAULT_PERCENT + mem % 100 * BUDGET_DEFAULT_PERCENT / 100;
        }
        snprintf(from, n, "none: no cgroup memory.max and physical memory unknown");
        return 0;
}

void budget_init(Budget *b, uint64_t bytes, const char *from, Prom *p)
{
        memset(b, 0, sizeof(*b));
        b->bytes = bytes;
        if (bytes)
                log_notice("state budget (limits.max_state_bytes): %" PRIu64 " bytes, %s", bytes, from);
        else
                log_notice("state budget (limits.max_state_bytes): none (%s)", from);
        b->f_bytes = prom_family(p, PROM_GAUGE, "riskd_state_budget_bytes",
                                 "The state budget (limits.max_state_bytes, 0 none) and what the partitions' "
                                 "engines hold together (everything it counts)",
                                 "kind", NULL, 0);
        b->f_forms = prom_family(p, PROM_GAUGE, "riskd_enterprises_by_form",
                                 "Enterprises in state by form: full, or compact (idle, kept as their record)",
                                 "form", NULL, 0);
        b->f_compactions = prom_family(p, PROM_COUNTER, "riskd_compactions_total",
                                       "Enterprises put in compact form", NULL, NULL, 0);
        b->f_expansions = prom_family(p, PROM_COUNTER, "riskd_expansions_total",
                                      "Enterprises brought back from compact form (an event, a timer, a lookup)",
                                      NULL, NULL, 0);
        prom_set(prom_series1(b->f_bytes, "budget"), (double)bytes);
        prom_set(prom_series1(b->f_bytes, "used"), 0);
        prom_set(prom_series1(b->f_forms, "full"), 0);
        prom_set(prom_series1(b->f_forms, "compact"), 0);
        prom_add(prom_series(b->f_compactions, NULL), 0);
        prom_add(prom_series(b->f_expansions, NULL), 0);
}

void budget_deinit(Budget *b)
{
        free(b->engines);
        free(b->seen);
        memset(b, 0, sizeof(*b));
}

Engine **budget_engines(Budget *b, uint32_t n)
{
        if (n > b->cengines) {
                b->cengines = n;
                b->engines = xrealloc(b->engines, n * sizeof(Engine *));
        }
        return b->engines;
}

/* The counters of e since the last tick, into the metrics; seen entries of
 * Engines gone (freed, replaced by a reload) are dropped at the end. */
static void fold(Budget *b, const Engine *e, const EngineStats *st, BudgetSeen *now, uint32_t k)
{
        BudgetSeen prev = {0};
        for (uint32_t i = 0; i < b->nseen; i++)
                if (b->seen[i].e == e)
                        prev = b->seen[i];
        /* another Engine at a freed one's address starts from 0 */
        if (st->compactions < prev.compactions || st->expansions < prev.expansions)
                prev = (BudgetSeen){0};
        prom_add(prom_series(b->f_compactions, NULL), (double)(st->compactions - prev.compactions));
        prom_add(prom_series(b->f_expansions, NULL), (double)(st->expansions - prev.expansions));
        now[k] = (BudgetSeen){e, st->compactions, st->expansions};
}

static uint64_t used_of(Engine *const *e, uint32_t n)
{
        uint64_t u = 0;
        for (uint32_t i = 0; i < n; i++)
                u += engine_state_bytes(e[i]);
        return u;
}

static unsigned percent(uint64_t used, uint64_t bytes)
{
        return (unsigned)(used / (bytes / 100 ? bytes / 100 : 1));
}

void budget_tick(Budget *b, Engine *const *e, uint32_t n)
{
        uint64_t used = used_of(e, n), before = used;
        bool compacted = false;
        int64_t t = log_now_ms();
        if (b->bytes && n && used >= b->bytes / 100 * BUDGET_WARN_PERCENT &&
            (b->pass_open || used >= b->compacted_at + b->bytes / 100) && t >= b->step_at) {
                /* every idle enterprise, BUDGET_COMPACT_STEP a second (an
                 * Engine in a batch is skipped: -EBUSY, done at the next step) */
                uint32_t per = BUDGET_COMPACT_STEP / n > 100 ? BUDGET_COMPACT_STEP / n : 100;
                bool cut = false;
                for (uint32_t i = 0; i < n; i++) {
                        int c = engine_compact(e[i], 0, per);
                        cut |= c < 0 || (uint32_t)c == per;
                }
                b->pass_open = cut;
                b->step_at = t + 1000;
                used = used_of(e, n);
                b->compacted_at = used;
                compacted = true;
        } else if (used < b->compacted_at) {
                b->compacted_at = used; /* it fell: the next pass 1 % above this */
        }
        if (b->bytes) {
                /* what the state reached, compaction or not */
                unsigned pct = percent(before, b->bytes);
                if (!b->warned && pct >= BUDGET_WARN_PERCENT) {
                        b->warned = true;
                        log_warning("state at %u%% of its budget (limits.max_state_bytes, %" PRIu64 " of %" PRIu64
                                    " bytes)%s%u%%; at the budget, events of new enterprises are dead letters "
                                    "(over_limit)",
                                    pct, before, b->bytes,
                                    compacted ? ": idle enterprises compacted, now " : ": idle enterprises already compact, ",
                                    percent(used, b->bytes));
                } else if (b->warned && pct < BUDGET_CLEAR_PERCENT) {
                        b->warned = false;
                        log_notice("state at %u%% of its budget (limits.max_state_bytes, %" PRIu64 " of %" PRIu64
                                   " bytes)",
                                   pct, before, b->bytes);
                }
                /* each Engine: what it holds and a share of what is left */
                uint64_t left = used < b->bytes ? b->bytes - used : 0;
                for (uint32_t i = 0; i < n; i++) {
                        uint64_t own = engine_state_bytes(e[i]), share = own + (n ? left / n : 0);
                        engine_budget_set(e[i], share ? share : 1);
                }
        }
        b->used = used;
        /* the metrics */
        BudgetSeen *now = xmalloc((n + 1) * sizeof(BudgetSeen));
        uint64_t ents = 0, compact = 0;
        for (uint32_t i = 0; i < n; i++) {
                const EngineStats *st = engine_counters(e[i]);
                ents += st->enterprises;
                compact += st->enterprises_compact;
                fold(b, e[i], st, now, i);
        }
        free(b->seen);
        b->seen = now;
        b->nseen = b->cseen = n;
        prom_set(prom_series1(b->f_bytes, "budget"), (double)b->bytes);
        prom_set(prom_series1(b->f_bytes, "used"), (double)used);
        prom_set(prom_series1(b->f_forms, "full"), (double)(ents - compact));
        prom_set(prom_series1(b->f_forms, "compact"), (double)compact);
}

void budget_status(const Budget *b, char *out, size_t n)
{
        if (!b->bytes) {
                snprintf(out, n, "%s", "");
                return;
        }
        snprintf(out, n, "; state %" PRIu64 " of %" PRIu64 " bytes (%u%%)", b->used, b->bytes,
                 (unsigned)(b->used / (b->bytes / 100 ? b->bytes / 100 : 1)));
}
