/*
 * The risk engine: turns a stream of events into alerts and supervision
 * adjustments with the compiled rules, keeping per-enterprise state
 * (profile, live score contributions, flags, exact windows, for/cooldown
 * state, grade with hysteresis) in event time.
 *
 * One Engine holds the state of one input partition (the daemon runs one
 * per assigned partition; riskctl replay runs one).  It is deterministic:
 * no wall clock, no hash-order iteration in its outputs; the same input
 * gives byte-identical output.
 *
 * Time: the watermark is the highest event time seen minus the configured
 * grace.  An event at or after the watermark is accepted (at most the grace
 * behind the newest, that instant included); one before it is rejected as
 * too_late.  Events are applied in event-time order, and events of the same
 * time in the order they arrived, for every grace: with grace 0 each event
 * is applied on arrival; with a grace it is held until the watermark
 * reaches its time, then released in that order.  So a stream whose
 * disorder stays within the grace gives the same results as the same
 * stream sorted stably by time (events of one time keep their order), and
 * a sorted stream the same results under any grace.  An event exactly one
 * grace behind the newest arrives after the events of its time that were
 * already released, and is applied after them: its place in that order.
 * Timers (expiry of points and flags, absent(), for:, the hysteresis
 * dwell) fire as the watermark passes them; an absent() check at the
 * watermark waits for the events of its time.
 *
 * Outputs go to a sink callback as JSON documents (docs/outputs.md).  The
 * engine never includes a Kafka header.
 */
#ifndef RISKD_ENGINE_H
#define RISKD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "include/riskd/decode.h"
#include "include/riskd/rules.h"

typedef enum OutKind {
        OUT_ALERT,
        OUT_SHADOW,      /* alerts of status: shadow rules */
        OUT_ADJUSTMENT,
        OUT_DEADLETTER,  /* data = the original bytes; meta has the reason */
        OUT_ALERT_STATE, /* an alert's transition: riskd.alert_state/1 (docs/outputs.md §10) */
} OutKind;

/* Why an enterprise was graded again ("cause" in an adjustment): the one
 * list the enum, the names and riskctl test's vocabulary are made from. */
#define GRADE_CAUSE_LIST(X) \
        X(CAUSE_EVENT, "event") \
        X(CAUSE_PROFILE, "profile") \
        X(CAUSE_EXPIRY, "expiry") \
        X(CAUSE_DWELL, "dwell") \
        X(CAUSE_TIMER, "timer") \
        X(CAUSE_RELOAD, "reload") \
        X(CAUSE_CYCLE, "cycle")

typedef enum GradeCause {
#define X(e, name) e,
        GRADE_CAUSE_LIST(X)
#undef X
        CAUSE_COUNT
} GradeCause;

extern const char *const engine_cause_names[CAUSE_COUNT];

/* Every dead-letter reason by index (EngineStats.rejects,
 * engine_reject_names): the decoder's (DECODE_REASON_LIST; index 0, "ok",
 * counts nothing), then the engine's own. */
#define ENGINE_REJECT_LIST(X) \
        X(RJ_TOO_LATE, "too_late")       /* older than the newest event minus the grace */ \
        X(RJ_DUPLICATE, "duplicate")     /* an event id among the enterprise's recent ones */ \
        X(RJ_OVER_LIMIT, "over_limit")   /* would grow the state past a configured limit */

typedef enum EngineReject {
        RJ_BEFORE_FIRST = DECODE_NREASON - 1,
#define X(e, name) e,
        ENGINE_REJECT_LIST(X)
#undef X
        ENGINE_NREJECT
} EngineReject;

/* Where an input came from: carried to dead letters. */
typedef struct SourcePos {
        const char *topic;   /* or a file name */
        int32_t partition;   /* -1 for files */
        int64_t offset;      /* Kafka offset, or the line number of a file */
        bool replay;         /* read again after a restore, below where the restored
                              * state may reach (riskd, transactions off: a crash
                              * between an enterprise's changelog record and the
                              * partition record): a duplicate id is an expected
                              * repeat, counted in EngineStats.replayed, not a
                              * dead letter */
        uint64_t replay_marks;  /* of a replay: bit k-1 set when it lies below the k-th replay
                                 * mark read since the partition record (engine_restore_mark):
                                 * an enterprise whose record came after that mark holds it,
                                 * and skips it (ENGINE_PUSH_REPLAYED) whatever its id */
        const char *key;     /* the message's key (Kafka), NULL none: a dead letter
                              * carries it byte for byte; valid during engine_push
                              * (an event held for the grace does not keep it) */
        size_t key_len;
        int64_t timestamp;   /* the message's timestamp (ms since the epoch), 0 unknown */
} SourcePos;

typedef struct OutMeta {
        const char *enterprise;   /* the key (NULL for undecodable dead letters) */
        size_t enterprise_len;
        const char *reason;       /* dead letters: "malformed_json", "too_late", ... */
        const char *detail;       /* dead letters: one line */
        const SourcePos *source;  /* dead letters */
        const char *rule_id;      /* alerts, alert states */
        const char *severity;     /* alerts */
        const char *grade_from, *grade_to; /* adjustments (grade_from NULL first) */
        int64_t timestamp;        /* alerts: SourcePos.timestamp of the event pushed when it
                                   * was emitted (0 unknown) */
} OutMeta;

typedef void (*EngineEmitFn)(void *ud, OutKind kind, const char *data, size_t len, const OutMeta *meta);

typedef struct EngineConfig {
        int64_t grace_ms;            /* reorder window; 0 = process on arrival */
        uint32_t max_enterprises;    /* new enterprises beyond it: over_limit */
        uint32_t recent_ids;         /* remembered event ids per enterprise (duplicates) */
        uint32_t max_window_rows;    /* rows per enterprise per aggregate; oldest dropped beyond */
        uint32_t max_keys;           /* per: keys per enterprise per rule; over_limit beyond */
        uint32_t max_held;           /* events held for reordering; the oldest is released early beyond */
        uint32_t max_event_bytes;    /* longer events: too_large */
        /* the state budget in bytes (engine_state_bytes), 0 none: an event
         * or record that would make a new enterprise beyond it is refused
         * (over_limit) once compacting every idle enterprise left no room
         * (engine_budget_set; riskd divides limits.max_state_bytes among
         * its partitions) */
        uint64_t max_state_bytes;
        /* tests and bench/: every aggregate reads its rows at every
         * evaluation, the reference the running aggregates answer as */
        bool agg_rescan;
        /* tests and bench/: engine_compact(e, 0, 0) after every compact_every
         * pushes outside a batch (0 never): the outputs are the same */
        uint32_t compact_every;
        /* string or enum fields of the profile type kept in every
         * enterprise's profile although no rule may read them, for
         * engine_rows (riskd's query API groups and filters by them); NULL
         * none.  They change no output. */
        const char *region_field;
        const char *category_field;
} EngineConfig;

/* The bounds riskd.yaml(5) states, which riskd's configuration and
 * riskctl's options both apply (a riskctl run is then one riskd can make):
 * grace at most 30d; at most 65535 remembered ids; at least one
 * enterprise, window row and held event. */
#define ENGINE_GRACE_MAX_MS (30LL * 86400000LL)
#define ENGINE_RECENT_IDS_MAX 65535

void engine_config_default(EngineConfig *c);

typedef struct EngineStats {
        uint64_t events_in, events_applied;
        uint64_t by_type[RULES_MAX_TYPES];
        uint64_t rejects[ENGINE_NREJECT]; /* by reason index, see engine_reject_names */
        uint64_t replayed;           /* duplicates of SourcePos.replay events: expected
                                      * repeats, skipped without a dead letter */
        uint64_t alerts, shadow_alerts, adjustments;
        uint64_t alert_states;       /* riskd.alert_state/1 documents (transitions) */
        uint64_t timers_fired;
        uint64_t window_rows_dropped; /* exactness lost to max_window_rows */
        uint64_t held_forced;         /* released early because max_held was reached */
        uint64_t enterprises;
        uint64_t state_bytes;         /* enterprise state, excluding window rows: the
                                       * pool, the enterprise table, the timer heap,
                                       * the intern table */
        uint64_t window_bytes;        /* window rows */
        uint64_t window_rows;
        int64_t watermark;
        uint64_t enterprises_compact; /* of enterprises, those in compact form */
        uint64_t compactions;         /* enterprises put in compact form */
        uint64_t expansions;          /* ... and back in full form (an event, a timer, explain) */
        uint64_t refused_budget;      /* of rejects[over_limit], those for the state budget */
        uint64_t state_budget;        /* engine_budget_set, 0 none */
} EngineStats;

/* Every reason's name by index: "ok", "malformed_json", ..., "over_limit". */
extern const char *const engine_reject_names[ENGINE_NREJECT];

typedef struct Engine Engine;

/* rs is referenced (rules_ref) for the engine's lifetime. */
int engine_new(Engine **ret, RuleSet *rs, const EngineConfig *cfg, EngineEmitFn emit, void *ud);
Engine *engine_free(Engine *e);

/* What engine_push did with the message.  Held events, and the events a
 * push releases, are applied (or dead-lettered: a duplicate, over a
 * limit) when the watermark passes them, which this result does not
 * report: the counters and the emit callback do. */
typedef enum EnginePushResult {
        ENGINE_PUSH_APPLIED,            /* applied now (no grace) */
        ENGINE_PUSH_HELD,               /* held for the grace (released by this push if at the watermark) */
        ENGINE_PUSH_REPLAYED,           /* replayed (SourcePos.replay) and already in the restored state: skipped */
        ENGINE_PUSH_DUPLICATE,          /* its id among the enterprise's recent ones: dead-lettered, "duplicate" */
        ENGINE_PUSH_DEAD_LETTERED,      /* dead-lettered for another reason (undecodable, too late, over a limit) */
} EnginePushResult;

/* One input message: decoded, checked, held or applied.  Never fails on
 * bad input (it becomes a dead letter). */
EnginePushResult engine_push(Engine *e, const char *bytes, size_t len, const SourcePos *src);
/*
 * A hint that bytes will be pushed to this engine soon, within the next
 * ENGINE_AHEAD pushes, in the order of the hints.  The engine decodes them
 * now and starts loading the enterprise state they will touch, so the
 * memory latency of an event overlaps with the work on the events before
 * it: with 100,000 enterprises almost every line of state an event reads
 * is a cache miss.  Only a hint: the outputs are byte for byte the same
 * with or without it (with a grace it does nothing: held events are
 * applied out of push order).  The bytes must stay valid and unchanged
 * until pushed or until engine_prefetch_reset().
 */
#define ENGINE_AHEAD 5
void engine_prefetch(Engine *e, const char *bytes, size_t len);
/* Forget every hint not yet pushed (their bytes may go away). */
void engine_prefetch_reset(Engine *e);
/* Start loading an event's bytes into the cache, for an event that will be
 * hinted ENGINE_AHEAD pushes later: its decoding by engine_prefetch then
 * does not wait for memory.  It reads nothing and needs no engine. */
static inline void engine_prefetch_bytes(const char *bytes, size_t len)
{
        for (uintptr_t c = (uintptr_t)bytes & ~(uintptr_t)63; c < (uintptr_t)bytes + len; c += 64)
                __builtin_prefetch((const void *)c);
}
/* Advance event time to t (ms): release held events and fire timers up to
 * t, as if an event at t + grace had been seen.  Used by tests and at the
 * end of a replay (--until). */
void engine_advance(Engine *e, int64_t t);
/* Release everything held (end of input); timers fire up to the highest
 * event time seen. */
void engine_flush(Engine *e);

/* Counters and sizes; walks the state (O(enterprises)). */
const EngineStats *engine_stats(Engine *e);
/* The same in O(1): the counters, enterprises and those in compact form,
 * the budget; the sizes as of the last engine_stats(). */
const EngineStats *engine_counters(Engine *e);
/* Enterprises in state, in O(1). */
uint32_t engine_enterprises(const Engine *e);

/*
 * Memory.  engine_state_bytes() is, in O(1), what the Engine's state
 * occupies: every enterprise's objects at their pool class sizes (window
 * rows included), the enterprise table, the timer heap and the intern
 * table (not held events, nor the fixed buffers of engine_new).
 *
 * An idle enterprise (no live contributions, flags, window rows, armed
 * for:/absent() keys or hysteresis clock: its profile, grade, official
 * state and remembered event ids, at most a cycle timer) may take a
 * compact form: its changelog record (the bytes engine_batch_changes
 * writes) behind a small header holding its key and timer.  It comes back
 * in full form, from the record as a restore would make it, at its next
 * event, timer, explain or grades listing; the outputs are byte for byte
 * those of the full form.  engine_compact() compacts, between batches (it
 * returns -EBUSY inside one), idle enterprises until engine_state_bytes()
 * is at most target (0: every idle one), skipping those whose record
 * would not be smaller than their full form, and at most max of them (0:
 * no limit; a walk over the enterprises cut short by max goes on where it
 * stopped at the next call, so that a caller can spread a pass over many
 * calls); it returns how many it compacted.
 *
 * The budget (engine_budget_set, EngineConfig.max_state_bytes; 0: none):
 * an event that would make a new enterprise while the state is at or past
 * it first compacts every idle enterprise (outside a batch, at most once
 * per quarter of the enterprises' count in events), then, still at the
 * budget, is a dead letter over_limit (detail: "the state budget
 * (limits.max_state_bytes, N bytes) is reached"), as is a restore record
 * of a new enterprise (-ENOSPC).  Enterprises in state keep working.
 */
uint64_t engine_state_bytes(const Engine *e);
void engine_budget_set(Engine *e, uint64_t bytes);
int engine_compact(Engine *e, uint64_t target, uint32_t max);
const RuleSet *engine_rules(const Engine *e);

/* explain: the state of one enterprise as a JSON document (score, band,
 * grade, mode, frequency, contributions with evidence and expiry, flags),
 * or NULL when the engine has never seen it.  Caller frees. */
char *engine_explain_json(Engine *e, const char *enterprise, size_t len);
/* The same for people: grade, score, each contribution with the event that
 * caused it and its expiry, flags, the overrides that apply.  Caller frees. */
char *engine_explain_text(Engine *e, const char *enterprise, size_t len);
/*
 * The open alerts (docs/outputs.md §10): an enterprise's alerts of rules
 * with a lifecycle that are open or escalated, as they stand between
 * batches.  For the query API and the enterprise-state documents.
 */
#define ENGINE_TIME_NONE INT64_MIN     /* EngineAlert: no deadline, never expires */
typedef struct EngineAlert {
        const char *alert_id;           /* the alert's alert_id: 16 hex digits, NUL terminated */
        const char *enterprise;         /* its enterprise id (not NUL terminated) */
        size_t enterprise_len;
        const char *rule_id;
        const char *key;                /* its per: key (not NUL terminated), NULL: a rule without per: */
        size_t key_len;
        const char *state;              /* "open" or "escalated" */
        int64_t opened;                 /* the alert's ts (ms since the epoch) */
        int64_t deadline;               /* its rectify deadline, ENGINE_TIME_NONE none */
        int64_t expires;                /* when it closes by itself, ENGINE_TIME_NONE never */
} EngineAlert;
/* Valid only during the call. */
typedef void (*EngineAlertFn)(void *ud, const EngineAlert *a);
/* fn for each open alert of the enterprise (len bytes), in the order they
 * opened; enterprise NULL: of every enterprise, by enterprise id, O(n log n)
 * in the enterprises that hold one.  Returns how many, -ENOENT: the engine
 * has never seen the enterprise.  Between batches, like explain (an
 * enterprise in compact form comes back in full form: it holds none). */
int engine_alerts_each(Engine *e, const char *enterprise, size_t len, EngineAlertFn fn, void *ud);

/* The enterprise document (riskd.enterprise/1, docs/outputs.md §9.1, §11) of
 * every enterprise in state, sorted by id, one line each: the last
 * document riskd's enterprises topic holds for each. */
void engine_enterprises_write(Engine *e, struct Buf *out);
/*
 * The query API's view (riskd's /v1/enterprises, /v1/summary, /v1/alerts):
 * every enterprise in state as one row, in table order (the caller sorts),
 * scored as of the watermark (the same score as explain's, which is as of
 * the enterprise's latest change: nothing moves between two changes).  An
 * enterprise in compact form is read
 * from its record without being expanded (the walk leaves the state as it
 * found it).  The strings are valid during the call.
 */
typedef struct EngineRow {
        const char *id;
        size_t id_len;
        const char *grade, *mode;       /* NULL: not graded */
        double per_year;
        double score;
        const char *region;             /* EngineConfig.region_field's value, NULL none */
        size_t region_len;
        const char *category;           /* EngineConfig.category_field's value, NULL none */
        size_t category_len;
        const char *category_label;     /* an enum value's text for people (schema.yaml), NULL none */
        uint64_t flags;                 /* the flags live now: bit i for RuleSet.flags[i] */
        uint32_t open_alerts;           /* open or escalated (engine_alerts_each) */
        uint32_t escalated_alerts;      /* of those, escalated: overdue rectifications */
} EngineRow;
typedef void (*EngineRowFn)(void *ud, const EngineRow *row);
void engine_rows(Engine *e, EngineRowFn fn, void *ud);
/* The open alerts of an enterprise (open or escalated; escalated_only:
 * those alone) as a JSON array into out, in the order they opened, each
 * with its enterprise_id (docs/outputs.md §9.4); how many.  0 for an
 * unknown enterprise. */
uint32_t engine_open_alerts_json(Engine *e, const char *enterprise, size_t len, bool escalated_only,
                                 struct Buf *out);

/* Current grading of every enterprise, sorted by id: one JSON line each
 * ({"enterprise_id","grade","mode","inspections_per_year","score"}). */
void engine_grades_write(Engine *e, struct Buf *out);

/*
 * ---- State for the daemon: changelog records, restore, rollback ----
 *
 * The daemon runs one Engine per input partition and one batch per Kafka
 * transaction:
 *
 *   engine_batch_begin(e)            before the batch's first engine_push
 *   ... engine_push ...              outputs go to the emit callback
 *   engine_batch_changes(e, next, fn, ud)
 *                                    the changelog records of the batch:
 *                                    one per enterprise touched (key = the
 *                                    enterprise id, value = its serialised
 *                                    state; an enterprise whose state became
 *                                    empty gives a value of length 0, a
 *                                    tombstone) and one partition record
 *                                    (key ENGINE_META_KEY, value = watermark,
 *                                    held events and `next`, the input offset
 *                                    the state reflects: resume from there)
 *   engine_batch_commit(e)           the transaction committed
 *   engine_batch_abort(e)            the transaction aborted: the engine is
 *                                    back exactly where batch_begin found it
 *                                    (enterprises, watermark, held events,
 *                                    timers); the daemon rewinds its input
 *
 * So that the engine need not wait for the broker, a batch can be sealed
 * once its records are taken, and the next one begun while its transaction
 * commits:
 *
 *   engine_batch_changes(e, ...); engine_batch_seal(e)
 *                                    batch N is closed; its undo is kept
 *   engine_batch_begin(e) ... engine_push ... (batch N+1, its own undo)
 *   engine_batch_commit(e)           N committed: N's undo dropped, N+1
 *                                    stays open (or sealed)
 *   engine_batch_abort(e)            N (or N+1) aborted: back to where N
 *                                    began, N+1's work included
 *
 * engine_batch_commit commits the sealed batch if there is one, else the
 * open one; engine_batch_abort always rolls back to the last commit.  One
 * sealed batch at a time: sealing again before its commit merges the two.
 *
 * Restore (on assignment): a fresh Engine, engine_restore_record() for every
 * changelog record of the partition in log order (a later record of a key
 * replaces the earlier one), then engine_restore_finish(), which rebuilds
 * the timers and returns the input offset to resume from (-1: no partition
 * record, start from the committed offset).
 *
 * With transactions off a batch writes its replay mark (the daemon's
 * record: the input offsets the batch reaches) before its enterprises'
 * records and its partition record after them.  So an enterprise record
 * after the last partition record was written by a batch that crashed
 * before its partition record, and holds every event of that batch: the
 * restore keeps those enterprises (by key) with the replay mark before
 * their record, engine_restore_mark() telling it of each mark (a partition
 * record forgets them), and engine_push skips an event of theirs whose
 * SourcePos.replay_marks has that mark's bit (ENGINE_PUSH_REPLAYED,
 * counted in EngineStats.replayed), as well as every event the push
 * releases from the grace: the crashed run released the same ones.
 * engine_replay_over() forgets them once no input is below a mark.
 *
 * Records are versioned (first byte ENGINE_STATE_VERSION).  An enterprise's
 * record names rules, flags, grades, fields and aggregates by their index
 * in a dictionary: a record of its own (key ENGINE_DICT_KEY followed by the
 * dictionary's hash in 16 hex digits) that lists the names (ids, paths,
 * fingerprints) of one rule set.  engine_batch_changes gives it before the
 * first record that uses it, once per engine and rules version: a changelog
 * restored in log order has it before its records, and compaction keeps it
 * (no other record has its key).  A restore maps each dictionary's names to
 * the engine's rules once, so a rule set with the same rules restores
 * exactly; state of a rule that no longer exists, or whose fingerprint
 * differs from the dictionary's, is dropped (see engine_regrade).  Records
 * of version 1 (before the dictionary: each names everything itself) are
 * still read.  docs/state.md has the format.
 */
#define ENGINE_STATE_VERSION 2
#define ENGINE_STATE_VERSION_1 1        /* still read */
#define ENGINE_META_VERSION 1           /* the partition record's format */
#define ENGINE_META_KEY "\x01riskd.partition"
#define ENGINE_DICT_KEY "\x01riskd.dict."

typedef void (*EngineRecordFn)(void *ud, const char *key, size_t klen, const void *val, size_t vlen);

void engine_batch_begin(Engine *e);
void engine_batch_changes(Engine *e, int64_t next_offset, EngineRecordFn fn, void *ud);
/* The enterprise document (engine_explain_json's, without its newline) of
 * every enterprise the open batch touched (an event or a timer acted on
 * it), in the order they were touched, key = the enterprise id: what
 * riskd writes to its enterprises topic.  Call before engine_batch_seal. */
void engine_batch_enterprises(Engine *e, EngineRecordFn fn, void *ud);
void engine_batch_seal(Engine *e);
/* A sealed batch awaits its commit or abort. */
bool engine_batch_sealed(const Engine *e);
void engine_batch_commit(Engine *e);
void engine_batch_abort(Engine *e);
/* 0, or -EINVAL for a record that does not decode (it is skipped): among
 * them one whose dictionary was not restored before it. */
int engine_restore_record(Engine *e, const char *key, size_t klen, const void *val, size_t vlen);
int64_t engine_restore_finish(Engine *e);
void engine_restore_mark(Engine *e);
void engine_replay_over(Engine *e);

/*
 * Live rule reload: a new Engine for rule set rs (referenced) carrying e's
 * state over, as a restore from e's own records would: every enterprise
 * with its profile, flags, static decisions, grade and hysteresis clock,
 * the windows of aggregates whose fingerprint is unchanged, the points and
 * the for/per/cooldown/absent state of rules whose compiled form is
 * unchanged (same id, same Rule.fingerprint), the watermark and the held
 * events.  A rule that is new or changed starts with no state: the live
 * points of a changed rule are dropped, as are those of a removed rule.
 * A static (profile) rule's decision is kept under its id and takes the
 * rule's new score (its condition is decided again at the enterprise's next
 * profile update).  The event counters carry over.
 *
 * Then every enterprise already graded is graded again under the new rules
 * and grading, as of the watermark (or its last event time, if later): one
 * whose grade, mode or inspections per year changes gets an adjustment with
 * cause "reload" (a fall waits for the dwell like any other); the score
 * alone changing gives none (docs/outputs.md).
 *
 * n comes back inside a batch (as after engine_batch_begin) that holds the
 * reload: its adjustments were emitted, and the enterprises whose state it
 * changed are touched, so engine_batch_changes(n, ...) gives their records.
 * End the batch with engine_batch_commit(n); to give the reload up (the
 * transaction aborted), free n: e is left as it was.  Call between batches
 * of e; free e once n is committed.  rep, if not NULL, receives the counts.
 * Returns 0, or a negative errno.
 */
typedef struct EngineReload {
        char rules_before[24];     /* the version of the rules the state was of */
        uint32_t rules_kept;       /* same id, same compiled form: their state kept */
        uint32_t rules_changed;    /* same id, another compiled form: their state dropped */
        uint32_t rules_added, rules_removed;
        uint64_t enterprises;      /* in state */
        uint64_t state_dropped;    /* enterprises that lost state of a changed or removed rule */
        uint64_t rescored;         /* enterprises whose score changed */
        uint64_t regraded;         /* grade, mode or frequency changed */
        uint64_t adjusted;         /* an adjustment with cause reload each: the regraded, and those
                                    * whose score alone the reload changed (a changed or removed
                                    * rule's live points dropped, a static rule's new score) */
        uint64_t records;          /* enterprises touched in n's batch (their records rewritten) */
} EngineReload;

int engine_reload(Engine *e, RuleSet *rs, Engine **ret, EngineReload *rep);

/*
 * A restart with other rules than the state's: engine_restore_finish()
 * finds the rules version of the partition record different from the
 * Engine's, the state of changed and removed rules having been dropped
 * record by record (each record carries its rules' fingerprints; records
 * written before they did keep everything by id), and the enterprises are
 * due to be graded again as at a reload.  engine_regrade() does it in a
 * batch it begins (adjustments with cause "reload", the enterprises whose
 * state changed touched): commit it, or abort it and it is due again.
 * Returns 0, or -EBUSY inside a batch.
 */
bool engine_regrade_due(const Engine *e);
int engine_regrade(Engine *e, EngineReload *rep);

#endif
