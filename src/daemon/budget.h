/*
 * The state budget of the process (limits.max_state_bytes): what every
 * partition's Engine holds together, its default from the memory riskd
 * may use, its metrics, the warning at BUDGET_WARN_PERCENT and the policy
 * at the budget (include/riskd/engine.h "Memory", riskd.yaml(5)).
 */
#ifndef RISKD_DAEMON_BUDGET_H
#define RISKD_DAEMON_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

#include "include/riskd/engine.h"
#include "src/daemon/prom.h"

/* The default budget is this share of the memory riskd may use: the rest
 * is for librdkafka (the producer's queue, up to 1 GiB by default, and
 * 64 MiB of fetched messages per assigned partition), events held for the
 * grace (limits.max_held), the batch's outputs, and the pool's freed
 * objects, which it keeps for reuse (the process holds the peak of the
 * state, not its current size). */
#define BUDGET_DEFAULT_PERCENT 50
/* A warning when use reaches this share, again after it fell below
 * BUDGET_CLEAR_PERCENT; from BUDGET_WARN_PERCENT on, idle enterprises are
 * compacted between batches. */
#define BUDGET_WARN_PERCENT 80
#define BUDGET_CLEAR_PERCENT 70
/* At most this many enterprises compacted per second, over all Engines: a
 * compaction and the expansion that may follow cost ~12 us (bench/), so
 * a pass over millions of idle enterprises is spread over ticks instead of
 * holding the main loop (and the watchdog) for seconds. */
#define BUDGET_COMPACT_STEP 20000

/*
 * The default of limits.max_state_bytes: BUDGET_DEFAULT_PERCENT of the
 * memory limit of riskd's cgroup (cgroup v2: the smallest memory.max from
 * riskd's group, as /proc/self/cgroup names it, up to the root, read
 * under root, /sys/fs/cgroup when NULL; "max" is no limit), else of the
 * physical memory; 0 when neither is known.  from (n bytes) says which,
 * for the log and --check-config.  RISKD_CGROUP_ROOT, for tests only,
 * stands for /sys/fs/cgroup (config.c passes it).
 */
uint64_t budget_default(const char *root, char *from, size_t n);

typedef struct BudgetSeen {
        const Engine *e;
        uint64_t compactions, expansions;
} BudgetSeen;

typedef struct Budget {
        uint64_t bytes;         /* 0: none */
        uint64_t used;          /* at the last tick */
        bool warned;            /* BUDGET_WARN_PERCENT reached since use was last below BUDGET_CLEAR_PERCENT */
        uint64_t compacted_at;  /* use after the last compaction step: a new pass once use grew by 1 % */
        bool pass_open;         /* the last step was cut short: the pass goes on at the next */
        int64_t step_at;        /* log_now_ms() of the next step, at the earliest */
        Engine **engines;       /* budget_engines' array */
        uint32_t cengines;
        BudgetSeen *seen;       /* each Engine's counters at the last tick */
        uint32_t nseen, cseen;
        PromFamily *f_bytes, *f_forms, *f_compactions, *f_expansions;
} Budget;

/* bytes 0: no budget (the metrics still show the state's size); from:
 * where the figure came from, for the start-up log. */
void budget_init(Budget *b, uint64_t bytes, const char *from, Prom *p);
void budget_deinit(Budget *b);
/* Room for the Engines of n partitions, to pass to budget_tick. */
Engine **budget_engines(Budget *b, uint32_t n);
/*
 * Between batches, or during one (an Engine in a batch is not compacted):
 * the use of the n Engines together; from BUDGET_WARN_PERCENT on, their
 * idle enterprises compacted; each Engine's budget set to what it holds
 * and a share of what is left, so that new enterprises are refused
 * (over_limit) once the process is at the budget; the metrics; the
 * warning.
 */
void budget_tick(Budget *b, Engine *const *e, uint32_t n);
/* " state N of M bytes (P%)" for the notify status, "" without a budget. */
void budget_status(const Budget *b, char *out, size_t n);

#endif
