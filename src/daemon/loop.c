/*
 * The daemon's main loop (loop.h), the recipe of kafka.md §5 for
 * librdkafka 2.0.2:
 *
 *   assign     the eager rebalance callback assigns and at once pauses the
 *              partitions; each input partition number p gets a Part with
 *              a fresh Engine, restored from changelog partition p (all
 *              records, in log order, up to the end at the start) while the
 *              main loop keeps polling the group consumer; then each input
 *              is sought to the offset the state reflects (the changelog's
 *              partition record; none: the committed offset, or the
 *              beginning) and resumed;
 *   batch      the first event after a commit begins a batch (and a
 *              transaction); every event goes to engine_push of its
 *              partition's Engine, whose outputs are produced at once
 *              (alerts, shadow alerts, adjustments keyed by enterprise,
 *              dead letters with the original bytes and key and riskd.*
 *              headers);
 *   commit     after batch_max events or commit_interval: the outputs
 *              flushed (delivered before the state that reflects them),
 *              each touched Engine's changelog records (explicit
 *              partition = the input partition), the positions of every assigned input, then
 *              commit_transaction; the Engines drop their undo;
 *   abort      an abortable error: abort_transaction, every Engine of the
 *              batch rolls back, every input is sought back to where the
 *              batch began (the loop's own record: the mock cluster
 *              discards transactional offset commits, so rd_kafka_committed
 *              cannot be trusted); retriable errors are retried; fatal ones
 *              (fenced) end the loop with exit status 1;
 *   revoke     the open batch is committed (aborted when the assignment was
 *              lost), the Parts freed.
 *
 * With transactions off the producer is idempotent and a batch ends with:
 * outputs and the replay marks (REPLAY_KEY) delivered, then the
 * enterprises' changelog records, then the partition records (the resume
 * offsets), then a plain offset commit; a crash anywhere repeats work whose
 * outputs carry the same ids (effectively-once), and the events a restored
 * state already holds (below the replay mark) are counted, not dead letters.
 *
 * Invariants: a message is processed only for a Part in PART_ACTIVE whose
 * input is assigned, and only when its offset is at or past the input's
 * position (a message left over from before a seek is dropped); every
 * message polled is destroyed in the same iteration; every Engine touched
 * in a batch is committed or rolled back when the batch ends.
 *
 * With several input topics, partition p of each is one Part (one Engine:
 * the topics are co-partitioned by enterprise id); the Engine's partition
 * record carries the first topic's offset and an extra record
 * (OFFSETS_KEY) carries every topic's.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "include/riskd/engine.h"
#include "include/riskd/util.h"
#include "src/daemon/log.h"
#include "src/daemon/loop.h"
#include "src/daemon/httpd.h"
#include "src/daemon/notify.h"
#include "src/daemon/prom.h"
#include "src/kafka/kafka.h"

volatile sig_atomic_t daemon_stop;
volatile sig_atomic_t daemon_hup;

/* The daemon's own changelog record with every input topic's offset
 * (only with several input topics): "topic offset\n" per topic. */
#define OFFSETS_KEY "\x01riskd.offsets"
/* Transactions off: where the state a batch writes may reach, written and
 * delivered before the batch's enterprise records ("topic offset\n" per
 * topic).  A crash before the partition record leaves records that reflect
 * input past the partition record's offset; after a restore, a duplicate
 * below this mark is that input read again (SourcePos.replay). */
#define REPLAY_KEY "\x01riskd.replay"
/* messages taken from the consumer per call */
#define LOOP_MSGS 1024
/* transactional calls retried this many times on retriable errors */
#define TXN_RETRIES 10

typedef struct Input {
        bool assigned;
        int64_t pos;             /* next offset to apply (last applied + 1); -1 unknown */
        int64_t batch_pos;       /* pos when the batch began: an abort rewinds there; -1 unknown */
        bool rewound;            /* sought back while messages of the array in hand were past pos */
        int64_t refetch;         /* lowest offset handed out while the Part restored; -1 none */
        int64_t replay_below;    /* offsets below it may repeat events the restored state
                                  * holds (REPLAY_KEY); -1 none */
        uint64_t seen;           /* messages taken for it */
        uint64_t seen_check;     /* seen at the last stall check */
        int64_t idle_since;      /* when seen last moved (or the input was resumed, or sought) */
} Input;

typedef enum PartState {
        PART_RESTORE_WAIT,       /* paused; the restore has not started (or waits to retry) */
        PART_RESTORING,          /* paused; reading the changelog */
        PART_ACTIVE,
} PartState;

typedef struct Part {
        int32_t id;              /* the partition number: input and changelog */
        PartState state;
        Engine *e;
        Input *in;               /* [cfg->ninput_topics] */
        bool in_batch;           /* engine_batch_begin called in the open batch */
        /* restore */
        int64_t rs_end;
        int64_t rs_t0, rs_retry_at;
        uint64_t rs_records, rs_bad;
        int64_t *rs_offsets;     /* [ninput_topics] from OFFSETS_KEY; -1 none */
        int64_t *rs_replay;      /* [ninput_topics] from REPLAY_KEY; -1 none */
        bool replay_open;        /* expected repeats may still come (replay_below ahead) */
        uint64_t replayed;       /* expected repeats since the restore */
        EngineStats seen;        /* the Engine's counters already in the metrics */
} Part;

/* What a record of a batch is, in the order the committer produces them. */
typedef enum RecKind {
        REC_OUTPUT,              /* an alert, shadow alert or adjustment */
        REC_DEADLETTER,          /* the original bytes and key; riskd.* headers */
        REC_REPLAY,              /* transactions off: a replay mark, delivered with the outputs */
        REC_STATE,               /* an enterprise's changelog record (no value: a tombstone) */
        REC_META,                /* a partition record (ENGINE_META_KEY, OFFSETS_KEY): transactions
                                  * off, written once the enterprises' are delivered */
} RecKind;

typedef struct Rec {
        RecKind kind;
        const char *topic;       /* the configuration's */
        int32_t partition;       /* RD_KAFKA_PARTITION_UA: by key */
        bool has_key, has_val;
        size_t key, klen, val, vlen; /* the bytes: offsets in Batch.arena */
        rd_kafka_headers_t *hdrs;
} Rec;

enum { BATCH_COMMITTED = 1, BATCH_ABORTED, BATCH_FATAL };

/* A batch: open (the main loop adds the outputs of its events), then in
 * flight (the committer produces its records in one transaction). */
typedef struct Batch {
        Rec *recs;
        uint32_t nrecs, crecs;
        Buf arena;
        uint64_t bytes;          /* of keys and values */
        uint64_t events;
        rd_kafka_topic_partition_list_t *offsets; /* every active input's position at the seal */
        rd_kafka_consumer_group_metadata_t *cgmd; /* taken at the seal (transactions on) */
        /* the first event; ready to commit; handed to the committer; its
         * commit began; ended */
        int64_t t0, t_ready, t_seal, t_start, t_done;
        int result;              /* BATCH_COMMITTED, BATCH_ABORTED, BATCH_FATAL */
} Batch;

/* The committer thread (committer_run) and what it alone touches. */
typedef struct Committer {
        pthread_t thread;
        bool running;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        Batch *job;              /* handed over (under mu) */
        bool done;               /* job's result is in (under mu) */
        bool stop;               /* under mu */
        /* the committer's own */
        bool failed;             /* a record of the job could not be produced */
        uint64_t delivery_errors; /* of the job */
        LogLimit ll_delivery, ll_produce, ll_kafka;
        int64_t fault_crash_state; /* RISKD_FAULT_CRASH_STATE=N (tests): transactions off, riskd
                                    * dies (SIGKILL) in its Nth batch once the enterprises'
                                    * records are delivered, before the partition records; 0 */
        const char *fault_hold;  /* RISKD_FAULT_COMMIT_HOLD=PATH (tests): a commit waits, its records
                                  * sent, until PATH exists (the engine goes on with the next batch) */
        bool fault_kill;         /* RISKD_FAULT_COMMIT_KILL=1: and riskd dies there (SIGKILL) */
} Committer;

/* The metrics (/metrics): families, and the series every batch touches. */
typedef struct Metrics {
        Prom *p;
        PromFamily *events, *rejects, *alerts, *shadow, *adjustments, *batch_s, *alert_latency, *lag, *txn,
                *restore_s, *restored, *replayed, *enterprises, *state_bytes, *window_bytes, *reloads, *rules_info, *rules,
                *partitions, *http, *stalls, *reload_ents, *regex_errors;
        PromSeries *committed, *aborted, *reload_ok, *reload_failed, *reload_coalesced;
        PromFamily *restore_refused; /* changelog records a restore refused, by reason */
} Metrics;

typedef struct LoopStats {
        uint64_t events, skipped, discarded;
        uint64_t alerts, shadow, adjustments, deadletters;
        uint64_t batches, aborts, restores;
} LoopStats;

struct Loop {
        const Config *cfg;
        RuleSet *rs;
        EngineConfig ecfg;
        KafkaProp *props;
        KafkaSettings ks;
        rd_kafka_t *consumer, *producer;
        ChangelogReader *reader;
        int32_t changelog_partitions;   /* -1: not known yet */

        Part **parts;            /* by partition number; NULL: not assigned */
        uint32_t nparts;
        uint32_t nrestoring;     /* Parts not yet PART_ACTIVE */

        Batch *open;             /* the batch being processed; NULL none */
        Batch *flight;           /* the batch being committed; NULL none */
        Committer c;
        Part *cl_part;           /* whose changelog records are being taken */

        rd_kafka_queue_t *queue;        /* the consumer's */
        bool rewound;                   /* some Input.rewound is set */
        rd_kafka_message_t *msgs[LOOP_MSGS];

        atomic_bool fatal;       /* set by either thread */
        bool assigned_once;      /* a first assignment came (READY=1 waits for it) */
        int64_t join_t0;         /* when the group was joined (subscribe), for the log */
        int64_t join_logged;     /* the last "still joining" line */
        uint64_t reloads_ok, reloads_failed;
        bool reload_due;         /* an active Part's Engine runs other rules than rs (reload_apply) */
        int64_t reload_retry_at;
        Metrics m;
        Httpd *http;
        const char **http_hosts; /* cfg's, NULL-terminated (HttpdOptions.hosts) */
        char *reload_error;      /* the first problem of the last failed reload; NULL after a good one */
        /* POST /v1/reload requests queued up to this number (httpd_seq)
         * were made before the last reload ended: they get its result
         * (reload_last_failed) instead of one reload each */
        uint64_t reload_seq;
        bool reload_last_failed;
        uint64_t reloads_coalesced;
        struct ReloadJob *reload_job; /* the rules compiling on a worker thread; NULL: none */
        bool reload_again;       /* a SIGHUP while they compiled: one more reload once it ends */
        /* POST /v1/reload requests held until the running reload ends
         * (httpd_hold), answered with its result */
        struct ReloadWaiter {
                HttpReq *req;
                bool coalesced;  /* joined a reload another request or SIGHUP started */
        } *reload_waiters;
        uint32_t nreload_waiters, reload_waiters_cap;
        LoopStats st, st_last;
        LogLimit ll_dlq, ll_consume, ll_kafka, ll_restore, ll_stall;
        int64_t next_tick, next_stats;
        int32_t fault_stall;     /* RISKD_FAULT_STALL (tests): this partition is paused behind the
                                  * loop's back once restored, as a lost fetch would leave it; -1 */
        const char *fault_reload_gate; /* RISKD_FAULT_RELOAD_GATE=PATH (tests): a compiled reload
                                        * is handed to the loop only once PATH exists, so a
                                        * test sees what riskd does while the rules compile */
};

static void fatal(Loop *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fatal(Loop *l, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_err("%s; exiting (a restart restores the committed state)", msg);
        l->fatal = true;
}

static uint32_t ninputs(const Loop *l)
{
        return l->cfg->ninput_topics;
}

static uint32_t topic_index(const Loop *l, const char *name)
{
        for (uint32_t i = 0; i < ninputs(l); i++)
                if (strcmp(l->cfg->input_topics[i], name) == 0)
                        return i;
        return UINT32_MAX;
}

static Part *part_find(const Loop *l, int32_t p)
{
        return p >= 0 && (uint32_t)p < l->nparts ? l->parts[p] : NULL;
}

/* The text of a key or an enterprise id for a log line: printable, short. */
static const char *printable(const void *s, size_t n, char *buf, size_t size)
{
        size_t k = 0;
        for (size_t i = 0; i < n && k + 4 < size; i++) {
                unsigned char c = ((const unsigned char *)s)[i];
                buf[k++] = c >= 0x20 && c != 0x7f ? (char)c : '?';
        }
        if (n && k + 4 >= size)
                memcpy(buf + k - 3, "...", 3);
        buf[k] = 0;
        return buf;
}

/* ---- the batch's records (produced by the committer) ---- */

/*
 * A batch's outputs and changelog records are not produced as they come:
 * the producer's transaction belongs to the batch being committed, so the
 * open batch keeps its records in memory (Batch) and the committer thread
 * produces them once the transaction before is over (commit_run).  The
 * bytes live in the batch's arena; a record names them by offset.
 */
static Batch *batch_new(void)
{
        Batch *b = xcalloc(1, sizeof(*b));
        b->t0 = log_now_ms();
        return b;
}

static Batch *batch_free(Batch *b)
{
        if (!b)
                return NULL;
        for (uint32_t i = 0; i < b->nrecs; i++)
                if (b->recs[i].hdrs)
                        rd_kafka_headers_destroy(b->recs[i].hdrs);
        free(b->recs);
        buf_free(&b->arena);
        if (b->offsets)
                rd_kafka_topic_partition_list_destroy(b->offsets);
        if (b->cgmd)
                rd_kafka_consumer_group_metadata_destroy(b->cgmd);
        free(b);
        return NULL;
}

/* Keeps a record for the committer (bytes copied, hdrs taken). */
static void rec_add(Batch *b, RecKind kind, const char *topic, int32_t partition, const void *key, size_t klen,
                    const void *val, size_t vlen, rd_kafka_headers_t *hdrs)
{
        Rec *r = &VEC_PUSH(b->recs, b->nrecs, b->crecs);
        *r = (Rec){.kind = kind, .topic = topic, .partition = partition, .has_key = key != NULL,
                   .has_val = val != NULL, .klen = klen, .vlen = vlen, .hdrs = hdrs};
        r->key = b->arena.len;
        buf_put(&b->arena, key ? key : "", key ? klen : 0);
        r->val = b->arena.len;
        buf_put(&b->arena, val ? val : "", val ? vlen : 0);
        b->bytes += klen + vlen;
}

static rd_kafka_headers_t *deadletter_headers(const OutMeta *m, const char *detail)
{
        rd_kafka_headers_t *h = rd_kafka_headers_new(5);
        char num[32];
        rd_kafka_header_add(h, "riskd.reason", -1, m->reason ? m->reason : "unknown", -1);
        rd_kafka_header_add(h, "riskd.detail", -1, detail ? detail : "", -1);
        if (m->source) {
                rd_kafka_header_add(h, "riskd.source.topic", -1, m->source->topic ? m->source->topic : "", -1);
                snprintf(num, sizeof(num), "%" PRId32, m->source->partition);
                rd_kafka_header_add(h, "riskd.source.partition", -1, num, -1);
                snprintf(num, sizeof(num), "%" PRId64, m->source->offset);
                rd_kafka_header_add(h, "riskd.source.offset", -1, num, -1);
        }
        return h;
}

/* The original bytes, the original key, the reason in headers. */
static void emit_deadletter(Loop *l, const char *data, size_t len, const OutMeta *m)
{
        const SourcePos *src = m->source;
        const void *key = m->enterprise;
        size_t klen = m->enterprise ? m->enterprise_len : 0;
        if (src && src->key) {
                key = src->key; /* the message's own key, byte for byte */
                klen = src->key_len;
        }
        rec_add(l->open, REC_DEADLETTER, l->cfg->topics.dead_letters, RD_KAFKA_PARTITION_UA, key, klen, data, len,
                deadletter_headers(m, m->detail));
        l->st.deadletters++;
        if (log_limit_pass(&l->ll_dlq, LOG_PRIO_WARNING, "dead letters")) {
                char kb[80];
                log_warning("dead letter: %s: %s (%s[%d] offset %lld, key %s)", m->reason ? m->reason : "?",
                            m->detail ? m->detail : "", src && src->topic ? src->topic : "?",
                            src ? src->partition : -1, src ? (long long)src->offset : -1LL,
                            key ? printable(key, klen, kb, sizeof(kb)) : "(none)");
        }
}

/* ---- metrics ---- */

static void metrics_init(Loop *l)
{
        static const double batch_b[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
        static const double latency_b[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60};
        static const double restore_b[] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900};
        Metrics *m = &l->m;
        Prom *p = m->p = prom_new();
        m->events = prom_family(p, PROM_COUNTER, "riskd_events_total",
                                "Input events decoded, by type (rejected ones: riskd_rejects_total)", "type", NULL,
                                0);
        m->rejects = prom_family(p, PROM_COUNTER, "riskd_rejects_total",
                                 "Events sent to the dead-letter topic, by reason", "reason", NULL, 0);
        m->alerts = prom_family(p, PROM_COUNTER, "riskd_alerts_total", "Alerts by rule and severity",
                                "rule,severity", NULL, 0);
        m->shadow = prom_family(p, PROM_COUNTER, "riskd_shadow_alerts_total", "Alerts of shadow rules, by rule",
                                "rule", NULL, 0);
        m->adjustments = prom_family(p, PROM_COUNTER, "riskd_adjustments_total",
                                     "Supervision adjustments by grade change (from \"none\": first grade)",
                                     "from,to", NULL, 0);
        m->batch_s = prom_family(p, PROM_HISTOGRAM, "riskd_batch_duration_seconds",
                                 "Processing time of a committed batch, first event polled to commit", NULL,
                                 batch_b, sizeof(batch_b) / sizeof(batch_b[0]));
        m->alert_latency = prom_family(p, PROM_HISTOGRAM, "riskd_event_to_alert_seconds",
                                       "From the input message's timestamp to its alert being emitted (produced "
                                       "with its batch's transaction)", NULL,
                                       latency_b, sizeof(latency_b) / sizeof(latency_b[0]));
        m->lag = prom_family(p, PROM_GAUGE, "riskd_consumer_lag",
                             "Messages of an assigned input partition not yet processed", "topic,partition", NULL,
                             0);
        m->txn = prom_family(p, PROM_COUNTER, "riskd_transactions_total",
                             "Batches ended, by result (committed, aborted)", "result", NULL, 0);
        m->committed = prom_series1(m->txn, "committed");
        m->aborted = prom_series1(m->txn, "aborted");
        m->restore_s = prom_family(p, PROM_HISTOGRAM, "riskd_restore_duration_seconds",
                                   "Time to restore a partition's state from the changelog", NULL, restore_b,
                                   sizeof(restore_b) / sizeof(restore_b[0]));
        m->restored = prom_family(p, PROM_COUNTER, "riskd_restored_records_total",
                                  "Changelog records read by restores", NULL, NULL, 0);
        m->restore_refused = prom_family(p, PROM_COUNTER, "riskd_restore_records_refused_total",
                                         "Changelog records a restore refused (reason: decode, a record that does "
                                         "not decode or holds a value out of bounds; over_limit, "
                                         "limits.max_enterprises reached)",
                                         "reason", NULL, 0);
        prom_series1(m->restore_refused, "decode"); /* shown at 0 from the start */
        prom_series1(m->restore_refused, "over_limit");
        m->replayed = prom_family(p, PROM_COUNTER, "riskd_replayed_total",
                                  "Events read again after a restore that its state already held (transactions "
                                  "off, a crash between the state and the partition record): skipped, not dead "
                                  "letters",
                                  NULL, NULL, 0);
        m->enterprises = prom_family(p, PROM_GAUGE, "riskd_enterprises", "Enterprises in state", NULL, NULL, 0);
        m->state_bytes = prom_family(p, PROM_GAUGE, "riskd_state_bytes",
                                     "Bytes of enterprise state, by kind (enterprise, window)", "kind", NULL, 0);
        m->partitions = prom_family(p, PROM_GAUGE, "riskd_partitions", "Assigned partitions by state", "state",
                                    NULL, 0);
        m->reloads = prom_family(p, PROM_COUNTER, "riskd_reloads_total", "Rule reloads by result (ok, failed)",
                                 "result", NULL, 0);
        m->reload_ok = prom_series1(m->reloads, "ok");
        m->reload_failed = prom_series1(m->reloads, "failed");
        m->reload_coalesced = prom_series(prom_family(p, PROM_COUNTER, "riskd_reload_requests_coalesced_total",
                                                      "POST /v1/reload requests answered with the result of "
                                                      "the reload that ran while they waited",
                                                      NULL, NULL, 0),
                                          NULL);
        m->reload_ents = prom_family(p, PROM_COUNTER, "riskd_reload_enterprises_total",
                                     "Enterprises a rule reload changed, by change: state (lost the state of a "
                                     "changed or removed rule), score, grade (grade, mode or frequency)",
                                     "change", NULL, 0);
        m->rules_info = prom_family(p, PROM_GAUGE, "riskd_rules_info", "The rules in use: 1 for their version",
                                    "version", NULL, 0);
        m->rules = prom_family(p, PROM_GAUGE, "riskd_rules", "Rules loaded, by status", "status", NULL, 0);
        m->regex_errors = prom_family(p, PROM_COUNTER, "riskd_regex_errors_total",
                                      "Regex engine errors of matches, by rule (each made its condition false)", "rule",
                                      NULL, 0);
        m->http = prom_family(p, PROM_COUNTER, "riskd_http_requests_total", "HTTP requests by status code",
                              "code", NULL, 0);
        m->stalls = prom_family(p, PROM_COUNTER, "riskd_fetch_stalls_total",
                                "Input partitions sought again after stall_timeout without a fetched record "
                                "while the broker held records past riskd's position",
                                "topic,partition", NULL, 0);
}

/* The Engine's counters since the last fold, into the metrics. */
static void stats_fold(Loop *l, Part *pt)
{
        const EngineStats *st = engine_stats(pt->e);
        const RuleSet *rs = engine_rules(pt->e);
        for (uint32_t t = 0; t < rs->schema.ntypes && t < RULES_MAX_TYPES; t++)
                if (st->by_type[t] != pt->seen.by_type[t])
                        prom_add(prom_series1(l->m.events, rs->schema.types[t].name),
                                 (double)(st->by_type[t] - pt->seen.by_type[t]));
        for (int i = 1; i < ENGINE_NREJECT; i++)
                if (st->rejects[i] != pt->seen.rejects[i])
                        prom_add(prom_series1(l->m.rejects, engine_reject_names[i]),
                                 (double)(st->rejects[i] - pt->seen.rejects[i]));
        if (st->replayed > pt->seen.replayed) {
                prom_add(prom_series(l->m.replayed, NULL), (double)(st->replayed - pt->seen.replayed));
                pt->replayed += st->replayed - pt->seen.replayed;
        }
        pt->seen = *st;
}

static int64_t wall_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The Engine's sink: every output kept in the open batch. */
static void loop_emit(void *ud, OutKind kind, const char *data, size_t len, const OutMeta *m)
{
        Loop *l = ud;
        const char *topic;
        switch (kind) {
        case OUT_ALERT:
                topic = l->cfg->topics.alerts;
                l->st.alerts++;
                prom_add(prom_series2(l->m.alerts, m->rule_id ? m->rule_id : "", m->severity ? m->severity : ""), 1);
                if (m->timestamp > 0)
                        prom_observe(prom_series(l->m.alert_latency, NULL), (double)(wall_ms() - m->timestamp) / 1e3);
                break;
        case OUT_SHADOW:
                topic = l->cfg->topics.shadow;
                l->st.shadow++;
                prom_add(prom_series1(l->m.shadow, m->rule_id ? m->rule_id : ""), 1);
                break;
        case OUT_ADJUSTMENT:
                topic = l->cfg->topics.adjustments;
                l->st.adjustments++;
                prom_add(prom_series2(l->m.adjustments, m->grade_from ? m->grade_from : "none",
                                      m->grade_to ? m->grade_to : ""),
                         1);
                break;
        case OUT_DEADLETTER:
                emit_deadletter(l, data, len, m);
                return;
        default:
                return;
        }
        rec_add(l->open, REC_OUTPUT, topic, RD_KAFKA_PARTITION_UA, m->enterprise,
                m->enterprise ? m->enterprise_len : 0, data, len, NULL);
}

/* engine_batch_changes' sink: to the changelog partition of l->cl_part;
 * the partition records (and OFFSETS_KEY) go last with transactions off. */
static void changelog_record(void *ud, const char *key, size_t klen, const void *val, size_t vlen)
{
        Loop *l = ud;
        /* an empty value is a tombstone: a null value, for compaction */
        rec_add(l->open, klen && key[0] == '\x01' ? REC_META : REC_STATE, l->cfg->topics.changelog, l->cl_part->id,
                key, klen, vlen ? val : NULL, vlen, NULL);
}

/* Every touched Engine's records; with several input topics, the offsets
 * record after each Engine's. */
static void batch_changes(Loop *l)
{
        for (uint32_t p = 0; p < l->nparts; p++) {
                Part *pt = l->parts[p];
                if (!pt || !pt->in_batch)
                        continue;
                l->cl_part = pt;
                engine_batch_changes(pt->e, pt->in[0].pos, changelog_record, l);
                if (ninputs(l) > 1) {
                        Buf b = {0};
                        for (uint32_t i = 0; i < ninputs(l); i++)
                                buf_printf(&b, "%s %lld\n", l->cfg->input_topics[i], (long long)pt->in[i].pos);
                        changelog_record(l, OFFSETS_KEY, strlen(OFFSETS_KEY), b.p, b.len);
                        buf_free(&b);
                }
        }
        l->cl_part = NULL;
}

/* The position of every assigned input of an active Part. */
static rd_kafka_topic_partition_list_t *positions(Loop *l)
{
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
        for (uint32_t p = 0; p < l->nparts; p++) {
                Part *pt = l->parts[p];
                if (!pt || pt->state != PART_ACTIVE)
                        continue;
                for (uint32_t i = 0; i < ninputs(l); i++)
                        if (pt->in[i].assigned && pt->in[i].pos >= 0)
                                rd_kafka_topic_partition_list_add(list, l->cfg->input_topics[i], pt->id)->offset =
                                        pt->in[i].pos;
        }
        return list;
}

/* Transactions off: each touched Part's REPLAY_KEY record, delivered with
 * the outputs, before any enterprise record of the batch.  Never below a
 * restored mark: records of the crashed run may still reach that far. */
static void replay_marks(Loop *l)
{
        for (uint32_t p = 0; p < l->nparts; p++) {
                Part *pt = l->parts[p];
                if (!pt || !pt->in_batch)
                        continue;
                Buf b = {0};
                for (uint32_t i = 0; i < ninputs(l); i++) {
                        const Input *in = &pt->in[i];
                        int64_t mark = in->pos > in->replay_below ? in->pos : in->replay_below;
                        buf_printf(&b, "%s %lld\n", l->cfg->input_topics[i], (long long)mark);
                }
                rec_add(l->open, REC_REPLAY, l->cfg->topics.changelog, pt->id, REPLAY_KEY, strlen(REPLAY_KEY), b.p,
                        b.len, NULL);
                buf_free(&b);
        }
}

/* ---- the committer: one batch's transaction at a time, off the main loop ---- */

/* Produces one record (the bytes are copied; hdrs are taken on success and
 * destroyed on failure).  Queue full: serves delivery reports until there
 * is room.  Other errors fail the batch (or the daemon), except a record
 * too large, which the caller handles.  On the committer thread. */
static rd_kafka_resp_err_t produce(Loop *l, const char *topic, int32_t partition, const void *key, size_t klen,
                                   const void *val, size_t vlen, rd_kafka_headers_t *hdrs)
{
        Committer *c = &l->c;
        rd_kafka_resp_err_t err;
        for (;;) {
                err = rd_kafka_producev(l->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                        RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)val, vlen),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
                                        RD_KAFKA_V_END);
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || l->fatal)
                        break;
                rd_kafka_poll(l->producer, 50);
        }
        if (!err)
                return 0; /* hdrs now owned by the message */
        if (hdrs)
                rd_kafka_headers_destroy(hdrs);
        if (err == RD_KAFKA_RESP_ERR__FATAL) {
                char *why = kafka_fatal_error(l->producer);
                fatal(l, "producer: %s", why ? why : rd_kafka_err2str(err));
                free(why);
        } else if (err != RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
                c->failed = true;
                if (log_limit_pass(&c->ll_produce, LOG_PRIO_WARNING, "produce errors"))
                        log_warning("cannot produce to %s: %s; the batch will be rolled back and retried", topic,
                                    rd_kafka_err2str(err));
        }
        return err;
}

/* One record of the batch.  Too large: a dead letter goes without its
 * bytes (the reason still travels; the bytes stay in the input topic), an
 * output is logged and left out, a changelog record stops riskd (the state
 * of that enterprise cannot be saved: better stop than lose it). */
static void produce_rec(Loop *l, Batch *b, Rec *r)
{
        const char *key = r->has_key ? b->arena.p + r->key : NULL;
        const char *val = r->has_val ? b->arena.p + r->val : NULL;
        rd_kafka_headers_t *hdrs = r->hdrs, *copy = NULL;
        r->hdrs = NULL; /* taken by produce */
        if (r->kind == REC_DEADLETTER && hdrs)
                copy = rd_kafka_headers_copy(hdrs);
        rd_kafka_resp_err_t err = produce(l, r->topic, r->partition, key, r->klen, val, r->vlen, hdrs);
        if (err != RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
                if (copy)
                        rd_kafka_headers_destroy(copy);
                return;
        }
        switch (r->kind) {
        case REC_DEADLETTER: {
                const void *old = NULL;
                size_t n = 0;
                rd_kafka_header_get_last(copy, "riskd.detail", &old, &n);
                char *detail = xasprintf("%.*s; the original (%zu bytes) is too large for %s: read it at the source "
                                         "offset",
                                         (int)n, old ? (const char *)old : "", r->vlen, r->topic);
                rd_kafka_header_remove(copy, "riskd.detail");
                rd_kafka_header_add(copy, "riskd.detail", -1, detail, -1);
                free(detail);
                if (produce(l, r->topic, r->partition, key, r->klen, NULL, 0, copy))
                        log_warning("a dead letter of %zu bytes was NOT written to %s", r->vlen, r->topic);
                break;
        }
        case REC_OUTPUT:
                if (log_limit_pass(&l->c.ll_produce, LOG_PRIO_ERR, "produce errors"))
                        log_err("an output of %zu bytes is too large for %s and was not written: %.200s", r->vlen,
                                r->topic, val ? val : "");
                break;
        default:
                fatal(l, "a changelog record of %zu bytes is too large for %s (raise its max.message.bytes and "
                      "the producer's message.max.bytes)", r->vlen, r->topic);
                break;
        }
}

/* The batch's records of the kinds in [from, to], in order. */
static void produce_kinds(Loop *l, Batch *b, RecKind from, RecKind to)
{
        for (uint32_t i = 0; i < b->nrecs && !l->c.failed && !l->fatal; i++)
                if (b->recs[i].kind >= from && b->recs[i].kind <= to)
                        produce_rec(l, b, &b->recs[i]);
}

/* Waits until every record produced so far is delivered or failed. */
static void flush_all(Loop *l)
{
        while (rd_kafka_outq_len(l->producer) > 0 && !l->fatal)
                rd_kafka_flush(l->producer, 500);
}

/* RISKD_FAULT_COMMIT_HOLD (tests): a commit waits here, its records
 * delivered, until the file exists; with RISKD_FAULT_COMMIT_KILL riskd
 * then dies. */
static void fault_hold(Loop *l, Batch *b)
{
        Committer *c = &l->c;
        if (!c->fault_hold || access(c->fault_hold, F_OK) == 0)
                return;
        flush_all(l);
        log_warning("RISKD_FAULT_COMMIT_HOLD: the commit of a batch of %llu events waits for %s",
                    (unsigned long long)b->events, c->fault_hold);
        while (access(c->fault_hold, F_OK) != 0 && !daemon_stop && !l->fatal) {
                rd_kafka_poll(l->producer, 20);
                usleep(20000);
        }
        if (c->fault_kill) {
                log_warning("RISKD_FAULT_COMMIT_KILL: dying with the commit in flight");
                raise(SIGKILL);
        }
}

typedef struct TxnArgs {
        Loop *l;
        Batch *b;
} TxnArgs;

static rd_kafka_error_t *call_begin(const TxnArgs *a)
{
        return rd_kafka_begin_transaction(a->l->producer);
}

static rd_kafka_error_t *call_send_offsets(const TxnArgs *a)
{
        /* retriable, not resumable: the same offsets and metadata again */
        return rd_kafka_send_offsets_to_transaction(a->l->producer, a->b->offsets, a->b->cgmd, -1);
}

static rd_kafka_error_t *call_commit(const TxnArgs *a)
{
        return rd_kafka_commit_transaction(a->l->producer, -1);
}

static rd_kafka_error_t *call_abort(const TxnArgs *a)
{
        return rd_kafka_abort_transaction(a->l->producer, -1);
}

/* The one retry helper of the transactional calls: a retriable error is
 * retried (TXN_RETRIES times, not after a stop), and with `any` every
 * error but a fatal one (an abort must end the transaction). */
static KafkaTxnStatus txn_call(const TxnArgs *a, const char *what, rd_kafka_error_t *(*call)(const TxnArgs *), bool any,
                               char **msg)
{
        for (int attempt = 1;; attempt++) {
                *msg = NULL;
                KafkaTxnStatus st = kafka_txn_status(call(a), msg);
                bool again = any ? st != KAFKA_TXN_FATAL : st == KAFKA_TXN_RETRY;
                if (st == KAFKA_TXN_OK || !again || attempt >= TXN_RETRIES || daemon_stop)
                        return st;
                log_warning("%s: %s (%s); retrying", what, *msg, kafka_txn_status_name(st));
                free(*msg);
        }
}

/* Transactions on: the outputs (flushed: delivered before the state that
 * reflects them), the changelog records, the offsets, the commit; on an
 * abortable error the transaction is aborted.  BATCH_COMMITTED,
 * BATCH_ABORTED or BATCH_FATAL. */
static int txn_run(Loop *l, Batch *b)
{
        Committer *c = &l->c;
        TxnArgs a = {l, b};
        char *msg = NULL;
        const char *what = "begin_transaction";
        KafkaTxnStatus st = txn_call(&a, what, call_begin, false, &msg);
        if (st != KAFKA_TXN_OK) {
                fatal(l, "begin_transaction: %s (%s)", msg, kafka_txn_status_name(st));
                free(msg);
                return BATCH_FATAL;
        }
        what = "";
        produce_kinds(l, b, REC_OUTPUT, REC_DEADLETTER);
        if (!c->failed && !l->fatal)
                /* The outputs reach their partitions before the state that
                 * reflects them: a reader that sees uncommitted records (the
                 * mock cluster, which writes no markers; a read_uncommitted
                 * tool) never finds a changelog record whose outputs are
                 * missing.  On a real cluster the transaction alone makes
                 * both visible together; this costs one round trip a batch. */
                flush_all(l);
        if (l->fatal)
                return BATCH_FATAL;
        if (c->failed || c->delivery_errors) {
                st = KAFKA_TXN_ABORT;
                msg = xstrdup(c->failed ? "a record could not be produced" : "an output was not delivered");
        }
        if (st == KAFKA_TXN_OK) {
                produce_kinds(l, b, REC_STATE, REC_META);
                if (l->fatal)
                        return BATCH_FATAL;
                if (c->failed) {
                        st = KAFKA_TXN_ABORT;
                        msg = xstrdup("a changelog record could not be produced");
                }
        }
        if (st == KAFKA_TXN_OK)
                fault_hold(l, b);
        if (st == KAFKA_TXN_OK && b->offsets->cnt) {
                what = "send_offsets_to_transaction";
                st = txn_call(&a, what, call_send_offsets, false, &msg);
        }
        if (st == KAFKA_TXN_OK) {
                what = "commit_transaction";
                st = txn_call(&a, what, call_commit, false, &msg);
        }
        if (st == KAFKA_TXN_RETRY) /* still failing: give the batch up and redo it */
                st = KAFKA_TXN_ABORT;
        switch (st) {
        case KAFKA_TXN_OK:
                return BATCH_COMMITTED;
        case KAFKA_TXN_ABORT:
                log_warning("transaction aborted%s%s: %s; rolling back and re-reading the batch", *what ? " at " : "",
                            what, msg);
                free(msg);
                st = txn_call(&a, "abort_transaction", call_abort, true, &msg);
                if (st != KAFKA_TXN_OK) {
                        fatal(l, "abort_transaction: %s (%s)", msg, kafka_txn_status_name(st));
                        free(msg);
                        return BATCH_FATAL;
                }
                free(msg);
                rd_kafka_poll(l->producer, 0); /* the purged messages' reports */
                return BATCH_ABORTED;
        default:
                fatal(l, "%s: %s (%s)", *what ? what : "transaction", msg, kafka_txn_status_name(st));
                free(msg);
                return BATCH_FATAL;
        }
}

/* Transactions off: outputs and replay marks, then state, then the
 * partition records, each delivered before the next is written, then the
 * offset commit.  BATCH_COMMITTED or BATCH_ABORTED (or BATCH_FATAL). */
static int idem_run(Loop *l, Batch *b)
{
        Committer *c = &l->c;
        const char *stage = "outputs";
        produce_kinds(l, b, REC_OUTPUT, REC_REPLAY);
        flush_all(l);
        /* no enterprise record without its replay mark delivered */
        if (l->fatal || c->delivery_errors || c->failed)
                goto failed;
        stage = "changelog";
        produce_kinds(l, b, REC_STATE, REC_STATE);
        if (l->fatal || c->failed)
                goto failed;
        flush_all(l);
        if (l->fatal || c->delivery_errors)
                goto failed;
        if (c->fault_crash_state > 0 && --c->fault_crash_state == 0) {
                log_warning("RISKD_FAULT_CRASH_STATE: dying between the enterprises' records and the partition records");
                raise(SIGKILL);
        }
        stage = "partition records";
        produce_kinds(l, b, REC_META, REC_META);
        flush_all(l);
        if (l->fatal || c->delivery_errors || c->failed)
                goto failed;
        fault_hold(l, b);
        /* the group's offsets: for monitoring and lag; a restore resumes from
         * the partition records */
        if (b->offsets->cnt) {
                rd_kafka_resp_err_t err = rd_kafka_commit(l->consumer, b->offsets, 0);
                if (err && log_limit_pass(&c->ll_produce, LOG_PRIO_WARNING, "produce errors"))
                        log_warning("offset commit: %s (the changelog has the resume offsets)", rd_kafka_err2str(err));
        }
        return BATCH_COMMITTED;
failed:
        if (l->fatal)
                return BATCH_FATAL;
        log_warning("batch not committed: %s %s; rolling back and re-reading the batch", stage,
                    c->delivery_errors ? "not delivered" : "not produced");
        return BATCH_ABORTED;
}

/* The committer thread: takes a sealed batch, commits it, hands the result
 * back (and wakes the main loop out of its wait on the consumer); idle, it
 * serves the producer's reports and errors.  It owns the producer: the
 * main loop never polls it while the thread runs. */
static void *committer_run(void *arg)
{
        Loop *l = arg;
        Committer *c = &l->c;
        int64_t next_flush = log_now_ms() + 1000;
        pthread_mutex_lock(&c->mu);
        for (;;) {
                while (!c->stop && (!c->job || c->done)) {
                        struct timespec ts;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_nsec += 100 * 1000000L;
                        if (ts.tv_nsec >= 1000000000L) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000L;
                        }
                        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
                        pthread_mutex_unlock(&c->mu);
                        rd_kafka_poll(l->producer, 0);
                        int64_t now = log_now_ms();
                        if (now >= next_flush) {
                                log_limit_flush(&c->ll_delivery, LOG_PRIO_WARNING, "delivery errors");
                                log_limit_flush(&c->ll_produce, LOG_PRIO_WARNING, "produce errors");
                                log_limit_flush(&c->ll_kafka, LOG_PRIO_WARNING, "kafka errors");
                                next_flush = now + 1000;
                        }
                        pthread_mutex_lock(&c->mu);
                }
                if (c->job && !c->done) {
                        Batch *b = c->job;
                        pthread_mutex_unlock(&c->mu);
                        b->t_start = log_now_ms();
                        c->failed = false;
                        c->delivery_errors = 0;
                        rd_kafka_poll(l->producer, 0); /* reports of before, counted there */
                        c->delivery_errors = 0;
                        int r = l->fatal ? BATCH_FATAL : l->cfg->transactions ? txn_run(l, b) : idem_run(l, b);
                        b->t_done = log_now_ms();
                        pthread_mutex_lock(&c->mu);
                        b->result = r;
                        c->done = true;
                        pthread_cond_broadcast(&c->cv);
                        rd_kafka_queue_yield(l->queue); /* out of the main loop's wait */
                        continue;
                }
                if (c->stop)
                        break;
        }
        pthread_mutex_unlock(&c->mu);
        return NULL;
}

static int committer_start(Loop *l)
{
        Committer *c = &l->c;
        int r = pthread_create(&c->thread, NULL, committer_run, l);
        if (r != 0)
                return -r;
        c->running = true;
        return 0;
}

/* Ends the thread (after the batch it commits, if any); the producer is
 * the main loop's again. */
static void committer_stop(Loop *l)
{
        Committer *c = &l->c;
        if (!c->running)
                return;
        pthread_mutex_lock(&c->mu);
        c->stop = true;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
        c->running = false;
}

/* ---- batches (the main loop) ---- */

static void batch_begin(Loop *l)
{
        l->open = batch_new();
}

/* Seeks every input back to where the last committed batch ended. */
static void rewind_inputs(Loop *l)
{
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
        for (uint32_t p = 0; p < l->nparts; p++) {
                Part *pt = l->parts[p];
                if (!pt || pt->state != PART_ACTIVE)
                        continue;
                for (uint32_t i = 0; i < ninputs(l); i++) {
                        Input *in = &pt->in[i];
                        if (!in->assigned || in->batch_pos < 0 || in->pos == in->batch_pos)
                                continue;
                        rd_kafka_topic_partition_list_add(list, l->cfg->input_topics[i], pt->id)->offset =
                                in->batch_pos;
                        in->pos = in->batch_pos;
                        in->rewound = true;
                        l->rewound = true;
                }
        }
        if (list->cnt) {
                rd_kafka_error_t *error = rd_kafka_seek_partitions(l->consumer, list, 10000);
                if (error) {
                        fatal(l, "cannot rewind the input: %s", rd_kafka_error_string(error));
                        rd_kafka_error_destroy(error);
                } else
                        for (int i = 0; i < list->cnt; i++)
                                if (list->elems[i].err) {
                                        fatal(l, "cannot rewind %s[%d] to offset %lld: %s", list->elems[i].topic,
                                              list->elems[i].partition, (long long)list->elems[i].offset,
                                              rd_kafka_err2str(list->elems[i].err));
                                        break;
                                }
                if (!l->fatal)
                        log_info("rewound %d input partition(s) to the end of the last committed batch", list->cnt);
        }
        rd_kafka_topic_partition_list_destroy(list);
}

/* Clears every Input's rewound mark. */
static void inputs_fresh(Loop *l)
{
        for (uint32_t p = 0; p < l->nparts; p++)
                if (l->parts[p])
                        for (uint32_t i = 0; i < ninputs(l); i++)
                                l->parts[p]->in[i].rewound = false;
        l->rewound = false;
}

/* Once a restored Part's inputs are past its replay marks (or it goes):
 * one notice with the expected repeats it skipped. */
static void replay_check(Loop *l, Part *pt, bool leaving)
{
        if (!pt->replay_open)
                return;
        for (uint32_t i = 0; i < ninputs(l) && !leaving; i++) {
                const Input *in = &pt->in[i];
                if (in->assigned && in->pos < in->replay_below)
                        return;
        }
        pt->replay_open = false;
        uint64_t n = pt->replayed + (engine_stats(pt->e)->replayed - pt->seen.replayed);
        if (n)
                log_notice("partition %d: %llu event%s read again after the restore %s already in the restored "
                           "state (a crash between its changelog records and its partition record, transactions "
                           "off): skipped and counted in riskd_replayed_total, not dead letters",
                           pt->id, (unsigned long long)n, n == 1 ? "" : "s", n == 1 ? "was" : "were");
}

/* Adds the regex engine errors counted since the last fold to
 * riskd_regex_errors_total{rule}, from the rules every partition runs (two
 * sets during a reload); a rule with a regex has its series from the start,
 * at 0.  On the loop thread, which evaluates the rules. */
static void regex_errors_fold(Loop *l)
{
        for (uint32_t p = 0; p <= l->nparts; p++) {
                Part *pt = p < l->nparts ? l->parts[p] : NULL;
                const RuleSet *rs = p == l->nparts ? l->rs : pt && pt->e ? engine_rules(pt->e) : NULL;
                if (!rs || (p < l->nparts && rs == l->rs))
                        continue; /* l->rs once, last */
                for (uint32_t i = 0; i < rs->nregexes; i++)
                        prom_add(prom_series1(l->m.regex_errors, rs->regex_rule[i]),
                                 (double)rules_regex_errors_take(rs, i));
        }
}

/* Every Engine back to the last commit: the batch in flight and the open
 * one rolled back, the open one's records dropped. */
static void rollback_all(Loop *l)
{
        for (uint32_t p = 0; p < l->nparts; p++) {
                Part *pt = l->parts[p];
                if (pt && (pt->in_batch || engine_batch_sealed(pt->e)))
                        engine_batch_abort(pt->e);
                if (pt)
                        pt->in_batch = false;
        }
        l->open = batch_free(l->open);
}

/* The batch in flight ended (its result is in): committed, its Engines
 * drop its undo and the inputs' rewind point moves to its end; aborted,
 * every Engine goes back to the last commit, the open batch with it, and
 * (rewind) every input is sought back there. */
static void flight_done(Loop *l, bool rewind)
{
        Batch *b = l->flight;
        l->flight = NULL;
        if (b->result == BATCH_COMMITTED) {
                for (uint32_t p = 0; p < l->nparts; p++) {
                        Part *pt = l->parts[p];
                        if (pt && engine_batch_sealed(pt->e))
                                engine_batch_commit(pt->e);
                }
                for (int i = 0; i < b->offsets->cnt; i++) {
                        const rd_kafka_topic_partition_t *o = &b->offsets->elems[i];
                        uint32_t ti = topic_index(l, o->topic);
                        Part *pt = part_find(l, o->partition);
                        if (ti != UINT32_MAX && pt)
                                pt->in[ti].batch_pos = o->offset;
                }
                for (uint32_t p = 0; p < l->nparts; p++)
                        if (l->parts[p])
                                replay_check(l, l->parts[p], false);
                l->st.batches++;
                prom_add(l->m.committed, 1);
                prom_observe(prom_series(l->m.batch_s, NULL), (double)(b->t_done - b->t0) / 1e3);
                log_debug("batch committed: %llu events in %lld ms (%lld ms of them committing; processed in %lld "
                          "ms, then %lld ms waiting for the commit before it)",
                          (unsigned long long)b->events, (long long)(b->t_done - b->t0),
                          (long long)(b->t_done - b->t_start), (long long)(b->t_ready - b->t0),
                          (long long)(b->t_seal - b->t_ready));
        } else {
                rollback_all(l);
                if (!l->fatal) {
                        l->st.aborts++;
                        prom_add(l->m.aborted, 1);
                        if (rewind)
                                rewind_inputs(l);
                }
        }
        batch_free(b);
        regex_errors_fold(l);
}

/* The batch in flight, if its result is in. */
static void flight_poll(Loop *l)
{
        Committer *c = &l->c;
        if (!l->flight)
                return;
        pthread_mutex_lock(&c->mu);
        bool done = c->done;
        if (done) {
                c->job = NULL;
                c->done = false;
        }
        pthread_mutex_unlock(&c->mu);
        if (done)
                flight_done(l, true);
}

/* Waits for the batch in flight to end: the main loop goes on answering
 * HTTP and feeding the watchdog, but takes no more input (the open batch
 * is full, or must end). */
static void flight_wait(Loop *l, bool rewind)
{
        Committer *c = &l->c;
        if (!l->flight)
                return;
        if (!c->running) { /* no thread: committed here */
                l->flight->t_start = log_now_ms();
                l->flight->result = l->fatal ? BATCH_FATAL
                                    : l->cfg->transactions ? txn_run(l, l->flight)
                                                           : idem_run(l, l->flight);
                l->flight->t_done = log_now_ms();
                flight_done(l, rewind);
                return;
        }
        pthread_mutex_lock(&c->mu);
        while (!c->done) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 100 * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&c->cv, &c->mu, &ts);
                if (c->done)
                        break;
                pthread_mutex_unlock(&c->mu);
                notify_watchdog(log_now_ms());
                if (l->http)
                        httpd_dispatch(l->http);
                pthread_mutex_lock(&c->mu);
        }
        c->job = NULL;
        c->done = false;
        pthread_mutex_unlock(&c->mu);
        flight_done(l, rewind);
}

/*
 * Seals the open batch and hands it to the committer: its records are
 * taken from the Engines now (they hold the batch's end state), then the
 * batch before it, if still in flight, is waited for (one transaction at a
 * time; this is where a full batch stops the input), and if that one
 * aborted, this one is rolled back with it and dropped.  Otherwise the
 * Engines seal their batch (its undo kept until the commit ends) and the
 * next batch can begin at once.  false: nothing was handed over.
 */
static bool batch_submit(Loop *l, bool rewind)
{
        Batch *b = l->open;
        if (!b)
                return false;
        if (!l->cfg->transactions)
                replay_marks(l);
        batch_changes(l);
        b->offsets = positions(l);
        /* fresh: it carries the group generation (KIP-447 fencing) */
        if (l->cfg->transactions && b->offsets->cnt)
                b->cgmd = rd_kafka_consumer_group_metadata(l->consumer);
        b->t_ready = log_now_ms();
        if (l->flight && !l->fatal) {
                if (!l->c.done)
                        log_debug("a batch of %llu events is ready; it waits for the commit of the one before",
                                  (unsigned long long)b->events);
                flight_wait(l, rewind);
        }
        if (!l->open || l->fatal) /* the batch before aborted (this one rolled back with it), or fatal */
                return false;
        for (uint32_t p = 0; p < l->nparts; p++) {
                Part *pt = l->parts[p];
                if (pt && pt->in_batch) {
                        engine_batch_seal(pt->e);
                        pt->in_batch = false;
                }
        }
        l->open = NULL;
        l->flight = b;
        b->t_seal = log_now_ms();
        if (l->c.running) {
                pthread_mutex_lock(&l->c.mu);
                l->c.job = b;
                l->c.done = false;
                pthread_cond_broadcast(&l->c.cv);
                pthread_mutex_unlock(&l->c.mu);
        }
        regex_errors_fold(l);
        /* an array of messages may hold many batches: ping between them */
        notify_watchdog(log_now_ms());
        return true;
}

typedef enum BatchEnd {
        BATCH_COMMIT,            /* commit; on an abortable error roll back and rewind */
        BATCH_COMMIT_NO_REWIND,  /* the same, the partitions are going away */
        BATCH_ABORT,             /* the assignment was lost: roll back */
} BatchEnd;

/* Ends the open batch and waits for every commit: after it nothing is in
 * flight.  true: everything committed (or there was nothing). */
static bool batch_end(Loop *l, BatchEnd how)
{
        bool rewind = how == BATCH_COMMIT;
        uint64_t aborts = l->st.aborts;
        if (how == BATCH_ABORT || l->fatal) {
                flight_wait(l, false);
                if (l->open) {
                        rollback_all(l);
                        if (!l->fatal) {
                                l->st.aborts++;
                                prom_add(l->m.aborted, 1);
                        }
                }
                return false;
        }
        batch_submit(l, rewind);
        flight_wait(l, rewind);
        return !l->fatal && l->st.aborts == aborts;
}

/* ---- restore ---- */

static void part_free(Loop *l, Part *pt)
{
        stats_fold(l, pt);
        replay_check(l, pt, true);
        if (pt->state != PART_ACTIVE)
                l->nrestoring--;
        if (pt->state == PART_RESTORING)
                changelog_reader_stop(l->reader, pt->id);
        engine_free(pt->e);
        free(pt->in);
        free(pt->rs_offsets);
        free(pt->rs_replay);
        l->parts[pt->id] = NULL;
        free(pt);
}

static Part *part_new(Loop *l, int32_t p)
{
        Engine *e = NULL;
        int r = engine_new(&e, l->rs, &l->ecfg, loop_emit, l);
        if (r < 0) {
                fatal(l, "cannot create the engine of partition %d: %s", p, strerror(-r));
                return NULL;
        }
        if ((uint32_t)p >= l->nparts) {
                uint32_t n = (uint32_t)p + 1;
                l->parts = xrealloc(l->parts, n * sizeof(Part *));
                memset(l->parts + l->nparts, 0, (n - l->nparts) * sizeof(Part *));
                l->nparts = n;
        }
        Part *pt = xcalloc(1, sizeof(*pt));
        pt->id = p;
        pt->state = PART_RESTORE_WAIT;
        pt->e = e;
        pt->in = xcalloc(ninputs(l), sizeof(Input));
        pt->rs_offsets = xmalloc(ninputs(l) * sizeof(int64_t));
        pt->rs_replay = xmalloc(ninputs(l) * sizeof(int64_t));
        for (uint32_t i = 0; i < ninputs(l); i++) {
                pt->in[i].pos = pt->in[i].batch_pos = -1;
                pt->in[i].refetch = -1;
                pt->in[i].replay_below = -1;
                pt->rs_offsets[i] = -1;
                pt->rs_replay[i] = -1;
        }
        pt->rs_t0 = log_now_ms();
        l->parts[p] = pt;
        l->nrestoring++;
        return pt;
}

static void restore_done(Loop *l, Part *pt, int64_t position)
{
        int64_t resume = engine_restore_finish(pt->e);
        rd_kafka_topic_partition_list_t *seek = rd_kafka_topic_partition_list_new(4);
        rd_kafka_topic_partition_list_t *all = rd_kafka_topic_partition_list_new(4);
        Buf at = {0};
        for (uint32_t i = 0; i < ninputs(l); i++) {
                Input *in = &pt->in[i];
                if (!in->assigned)
                        continue;
                int64_t r = ninputs(l) > 1 && pt->rs_offsets[i] >= 0 ? pt->rs_offsets[i] : i == 0 ? resume : -1;
                if (r < 0 && in->refetch >= 0) {
                        /* handed out while paused for the restore and dropped: librdkafka
                         * 2.0.2 counts them consumed and would resume after them */
                        log_notice("%s[%d]: records from offset %lld were fetched during the restore; "
                                   "reading them again",
                                   l->cfg->input_topics[i], pt->id, (long long)in->refetch);
                        r = in->refetch;
                }
                in->refetch = -1;
                in->idle_since = log_now_ms();
                in->seen_check = in->seen;
                rd_kafka_topic_partition_list_add(all, l->cfg->input_topics[i], pt->id);
                in->pos = in->batch_pos = r;
                /* the restored state may reach past r: repeats below the mark are expected */
                in->replay_below = pt->rs_replay[i] >= 0 && (r < 0 || pt->rs_replay[i] > r) ? pt->rs_replay[i] : -1;
                if (r >= 0) {
                        rd_kafka_topic_partition_list_add(seek, l->cfg->input_topics[i], pt->id)->offset = r;
                        buf_printf(&at, "%s%s offset %lld", at.len ? ", " : "", l->cfg->input_topics[i], (long long)r);
                } else
                        buf_printf(&at, "%s%s at the committed offset (no partition record)", at.len ? ", " : "",
                                   l->cfg->input_topics[i]);
                if (in->replay_below >= 0) {
                        pt->replay_open = true;
                        buf_printf(&at, " (events below offset %lld may repeat ones the state holds)",
                                   (long long)in->replay_below);
                }
        }
        if (seek->cnt) {
                rd_kafka_error_t *error = rd_kafka_seek_partitions(l->consumer, seek, 10000);
                if (error) {
                        fatal(l, "partition %d: cannot seek to the restored offset: %s", pt->id,
                              rd_kafka_error_string(error));
                        rd_kafka_error_destroy(error);
                } else
                        for (int i = 0; i < seek->cnt; i++)
                                if (seek->elems[i].err)
                                        fatal(l, "partition %d: cannot seek %s to offset %lld: %s", pt->id,
                                              seek->elems[i].topic, (long long)seek->elems[i].offset,
                                              rd_kafka_err2str(seek->elems[i].err));
        }
        if (!l->fatal) {
                rd_kafka_resp_err_t err = rd_kafka_resume_partitions(l->consumer, all);
                if (err)
                        fatal(l, "partition %d: cannot resume: %s", pt->id, rd_kafka_err2str(err));
                else if (pt->id == l->fault_stall) {
                        log_warning("RISKD_FAULT_STALL: partition %d paused behind the loop's back", pt->id);
                        rd_kafka_pause_partitions(l->consumer, all);
                }
        }
        pt->state = PART_ACTIVE;
        l->nrestoring--;
        /* restored under the rules before a reload, or from records of other
         * rules (a restart with changed rules): graded again (reload_apply) */
        if (engine_rules(pt->e) != l->rs || engine_regrade_due(pt->e))
                l->reload_due = true;
        l->st.restores++;
        prom_observe(prom_series(l->m.restore_s, NULL), (double)(log_now_ms() - pt->rs_t0) / 1e3);
        prom_add(prom_series(l->m.restored, NULL), (double)pt->rs_records);
        log_notice("partition %d restored: %llu changelog records (%llu skipped, up to offset %lld), %u enterprises, "
                   "in %lld ms; resuming %s",
                   pt->id, (unsigned long long)pt->rs_records, (unsigned long long)pt->rs_bad, (long long)position,
                   engine_enterprises(pt->e), (long long)(log_now_ms() - pt->rs_t0), at.p ? at.p : "(nothing assigned)");
        buf_free(&at);
        rd_kafka_topic_partition_list_destroy(seek);
        rd_kafka_topic_partition_list_destroy(all);
}

static void restore_offsets(Loop *l, int64_t *out, const char *v, size_t n)
{
        char *text = xstrndup(v, n);
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *sp = strrchr(line, ' ');
                if (!sp)
                        continue;
                *sp = 0;
                uint32_t i = topic_index(l, line);
                if (i != UINT32_MAX)
                        out[i] = strtoll(sp + 1, NULL, 10);
        }
        free(text);
}

static void restore_record(void *ud, int32_t p, int64_t offset, const void *key, size_t klen, const void *val,
                           size_t vlen)
{
        Loop *l = ud;
        Part *pt = part_find(l, p);
        if (!pt || pt->state != PART_RESTORING)
                return;
        pt->rs_records++;
        int r = -EINVAL;
        if (key && klen == strlen(OFFSETS_KEY) && memcmp(key, OFFSETS_KEY, klen) == 0) {
                restore_offsets(l, pt->rs_offsets, val, vlen);
                return;
        }
        if (key && klen == strlen(REPLAY_KEY) && memcmp(key, REPLAY_KEY, klen) == 0) {
                restore_offsets(l, pt->rs_replay, val, vlen);
                return;
        }
        if (key)
                r = engine_restore_record(pt->e, key, klen, val ? val : "", val ? vlen : 0);
        if (r < 0) {
                pt->rs_bad++;
                prom_add(prom_series1(l->m.restore_refused, r == -ENOSPC ? "over_limit" : "decode"), 1);
                if (log_limit_pass(&l->ll_restore, LOG_PRIO_WARNING, "changelog records skipped")) {
                        char kb[80];
                        log_warning("changelog %s[%d] offset %lld, key %s: skipped (%s)", l->cfg->topics.changelog, p,
                                    (long long)offset, key ? printable(key, klen, kb, sizeof(kb)) : "(none)",
                                    r == -ENOSPC ? "limits.max_enterprises reached"
                                                 : "refused: does not decode or holds a value out of bounds; the "
                                                   "enterprise keeps what came before the fault");
                }
        }
}

static void restore_done_cb(void *ud, int32_t p, int64_t position)
{
        Loop *l = ud;
        Part *pt = part_find(l, p);
        if (pt && pt->state == PART_RESTORING)
                restore_done(l, pt, position);
}

static void restore_error(void *ud, int32_t p, const char *msg)
{
        Loop *l = ud;
        if (log_limit_pass(&l->ll_restore, LOG_PRIO_WARNING, "changelog read errors"))
                log_warning("reading %s[%d]: %s", l->cfg->topics.changelog, p, msg);
}

static void restore_start(Loop *l, Part *pt)
{
        int64_t now = log_now_ms();
        char *msg = NULL;
        if (l->changelog_partitions <= pt->id) { /* not known yet, or grown */
                int32_t n = 0;
                int r = changelog_reader_partitions(l->reader, 5000, &n, &msg);
                if (r == -ENOENT) {
                        fatal(l, "%s (create it, compacted, with as many partitions as the input topics)", msg);
                        free(msg);
                        return;
                }
                if (r < 0) {
                        if (log_limit_pass(&l->ll_restore, LOG_PRIO_WARNING, "restore retries"))
                                log_warning("partition %d: restore waits: %s", pt->id, msg);
                        free(msg);
                        pt->rs_retry_at = now + 1000;
                        return;
                }
                l->changelog_partitions = n;
                if (n <= pt->id) {
                        fatal(l, "changelog topic %s has %d partitions: input partition %d has none (give it as many "
                              "partitions as the input topics)",
                              l->cfg->topics.changelog, n, pt->id);
                        return;
                }
        }
        int64_t end = -1;
        int r = changelog_reader_start(l->reader, pt->id, 5000, &end, &msg);
        if (r < 0) {
                if (log_limit_pass(&l->ll_restore, LOG_PRIO_WARNING, "restore retries"))
                        log_warning("partition %d: restore waits: %s", pt->id, msg);
                free(msg);
                pt->rs_retry_at = now + 1000;
                return;
        }
        pt->rs_end = end;
        if (r == 1) {
                restore_done(l, pt, end);
                return;
        }
        log_info("partition %d: restoring from %s[%d] up to offset %lld", pt->id, l->cfg->topics.changelog, pt->id,
                 (long long)end);
        pt->state = PART_RESTORING;
}

/* One slice of the restores; returns whether it waited for records. */
static bool restore_poll(Loop *l)
{
        int64_t now = log_now_ms();
        bool reading = false;
        for (uint32_t p = 0; p < l->nparts && !l->fatal; p++) {
                Part *pt = l->parts[p];
                if (pt && pt->state == PART_RESTORE_WAIT && pt->rs_retry_at <= now)
                        restore_start(l, pt);
                if (pt && l->parts[p] == pt && pt->state == PART_RESTORING)
                        reading = true;
        }
        if (!reading || l->fatal)
                return false;
        ChangelogSink sink = {.ud = l, .record = restore_record, .done = restore_done_cb, .error = restore_error};
        changelog_reader_poll(l->reader, 100, &sink);
        return true;
}

/* ---- the group ---- */

static void describe_parts(const rd_kafka_topic_partition_list_t *parts, Buf *b)
{
        for (int i = 0; i < parts->cnt; i++) {
                const char *t = parts->elems[i].topic;
                if (i == 0 || strcmp(t, parts->elems[i - 1].topic) != 0)
                        buf_printf(b, "%s%s[", i ? "] " : "", t);
                else
                        buf_putc(b, ',');
                buf_printf(b, "%d", parts->elems[i].partition);
        }
        if (parts->cnt)
                buf_putc(b, ']');
        else
                buf_puts(b, "(none)");
}

static void on_assign(Loop *l, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts)
{
        l->assigned_once = true;
        rd_kafka_resp_err_t err = rd_kafka_assign(rk, parts);
        if (err) {
                fatal(l, "assign: %s", rd_kafka_err2str(err));
                return;
        }
        /* nothing is processed before the partition's state is restored */
        rd_kafka_pause_partitions(rk, parts);
        for (int i = 0; i < parts->cnt && !l->fatal; i++) {
                uint32_t ti = topic_index(l, parts->elems[i].topic);
                if (ti == UINT32_MAX) {
                        log_warning("assigned %s[%d], which is not an input topic; ignored", parts->elems[i].topic,
                                    parts->elems[i].partition);
                        continue;
                }
                int32_t p = parts->elems[i].partition;
                Part *pt = part_find(l, p);
                if (!pt && !(pt = part_new(l, p)))
                        return;
                Input *in = &pt->in[ti];
                in->assigned = true;
                in->pos = in->batch_pos = -1;
                in->refetch = -1;
                in->idle_since = log_now_ms();
                in->seen_check = in->seen;
                if (pt->state == PART_ACTIVE) { /* an input added to a restored Part: from its committed offset */
                        rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
                        rd_kafka_topic_partition_list_add(one, parts->elems[i].topic, p);
                        rd_kafka_resume_partitions(rk, one);
                        rd_kafka_topic_partition_list_destroy(one);
                }
        }
}

static void on_revoke(Loop *l, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts, bool lost)
{
        /* the batch in flight ends first (committed or rolled back), then the open one */
        batch_end(l, lost ? BATCH_ABORT : BATCH_COMMIT_NO_REWIND);
        for (int i = 0; parts && i < parts->cnt; i++) {
                uint32_t ti = topic_index(l, parts->elems[i].topic);
                Part *pt = part_find(l, parts->elems[i].partition);
                if (ti == UINT32_MAX || !pt)
                        continue;
                pt->in[ti].assigned = false;
                bool any = false;
                for (uint32_t k = 0; k < ninputs(l); k++)
                        any |= pt->in[k].assigned;
                if (!any)
                        part_free(l, pt);
        }
        if (!parts) /* everything */
                for (uint32_t p = 0; p < l->nparts; p++)
                        if (l->parts[p])
                                part_free(l, l->parts[p]);
        rd_kafka_assign(rk, NULL);
}

/* Eager (range): every rebalance revokes everything, then assigns. */
static void loop_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                           void *opaque)
{
        Loop *l = opaque;
        Buf b = {0};
        describe_parts(parts, &b);
        switch (err) {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
                if (!l->assigned_once)
                        log_notice("assigned %s (joined group %s in %.1fs)", b.p, l->cfg->group_id,
                                   (double)(log_now_ms() - l->join_t0) / 1000.0);
                else
                        log_notice("assigned %s", b.p);
                on_assign(l, rk, parts);
                break;
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS: {
                bool lost = rd_kafka_assignment_lost(rk);
                log_notice("revoked %s%s", b.p, lost ? " (lost: the open batch is aborted)" : "");
                on_revoke(l, rk, parts, lost);
                break;
        }
        default:
                log_err("rebalance failed: %s; dropping the assignment", rd_kafka_err2str(err));
                on_revoke(l, rk, NULL, true);
                break;
        }
        buf_free(&b);
}

/* ---- librdkafka's callbacks ---- */

/* librdkafka's own log lines (from its threads): their level is syslog's. */
static void kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
        int prio = level <= LOG_PRIO_ERR ? LOG_PRIO_ERR : level > LOG_PRIO_DEBUG ? LOG_PRIO_DEBUG : level;
        log_msg(prio, "kafka %s: %s: %s", rd_kafka_name(rk), fac, buf);
}

/* From the poll calls: on the main thread, or the committer's for the
 * producer (its own log limit). */
static void kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
        Loop *l = opaque;
        if (err == RD_KAFKA_RESP_ERR__FATAL) {
                char *why = kafka_fatal_error(rk);
                fatal(l, "kafka %s: fatal error: %s", rd_kafka_name(rk), why ? why : reason);
                free(why);
                return;
        }
        /* transient (a broker down, a timeout): librdkafka recovers by itself */
        LogLimit *ll = rk == l->producer && l->c.running ? &l->c.ll_kafka : &l->ll_kafka;
        if (log_limit_pass(ll, LOG_PRIO_WARNING, "kafka errors"))
                log_warning("kafka %s: %s: %s", rd_kafka_name(rk), rd_kafka_err2name(err), reason);
}

/* From the committer's poll and flush calls (the main loop's at the end). */
static void kafka_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
        Loop *l = opaque;
        if (!m->err)
                return;
        if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
                log_debug("purged by an abort: a record for %s[%d]", rd_kafka_topic_name(m->rkt), m->partition);
                return;
        }
        l->c.delivery_errors++;
        if (log_limit_pass(&l->c.ll_delivery, LOG_PRIO_WARNING, "delivery errors"))
                log_warning("delivery to %s[%d] failed: %s", rd_kafka_topic_name(m->rkt), m->partition,
                            rd_kafka_err2str(m->err));
}

/* ---- the loop ---- */

static void loop_message(Loop *l, const rd_kafka_message_t *m)
{
        if (m->err) {
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                        return;
                if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                        char *why = kafka_fatal_error(l->consumer);
                        fatal(l, "consumer: %s", why ? why : rd_kafka_message_errstr(m));
                        free(why);
                        return;
                }
                if (log_limit_pass(&l->ll_consume, LOG_PRIO_WARNING, "consumer errors"))
                        log_warning("consumer: %s%s%s", m->rkt ? rd_kafka_topic_name(m->rkt) : "", m->rkt ? ": " : "",
                                    rd_kafka_message_errstr(m));
                return;
        }
        uint32_t ti = topic_index(l, rd_kafka_topic_name(m->rkt));
        Part *pt = part_find(l, m->partition);
        if (ti == UINT32_MAX || !pt || pt->state != PART_ACTIVE || !pt->in[ti].assigned) {
                /* fetched before a revoke (the next owner reads it from the
                 * committed offset) or before the restore's pause took hold
                 * (restore_done reads it again) */
                l->st.discarded++;
                if (ti != UINT32_MAX && pt && pt->state != PART_ACTIVE && pt->in[ti].assigned &&
                    (pt->in[ti].refetch < 0 || m->offset < pt->in[ti].refetch))
                        pt->in[ti].refetch = m->offset;
                return;
        }
        Input *in = &pt->in[ti];
        in->seen++;
        if (in->rewound) {
                l->st.skipped++; /* in the array taken before the rewind: fetched again from the seek */
                return;
        }
        if (in->pos >= 0 && m->offset < in->pos) {
                l->st.skipped++; /* fetched before a seek: already applied */
                return;
        }
        if (!l->open)
                batch_begin(l);
        if (!pt->in_batch) {
                engine_batch_begin(pt->e);
                pt->in_batch = true;
        }
        if (in->batch_pos < 0)
                in->batch_pos = m->offset;
        rd_kafka_timestamp_type_t tt;
        SourcePos src = {.topic = l->cfg->input_topics[ti], .partition = m->partition, .offset = m->offset,
                         .replay = m->offset < in->replay_below, .key = m->key, .key_len = m->key_len,
                         .timestamp = rd_kafka_message_timestamp(m, &tt)};
        engine_push(pt->e, m->payload ? m->payload : "", m->len, &src);
        in->pos = m->offset + 1;
        l->open->events++;
        l->st.events++;
}

/* A message of the array in hand that comes up soon: its partition's
 * engine decodes it now and starts loading its state (engine_prefetch). */
static void loop_hint(Loop *l, const rd_kafka_message_t *m)
{
        if (m->err || !m->payload)
                return;
        Part *pt = part_find(l, m->partition);
        if (pt && pt->state == PART_ACTIVE && pt->e)
                engine_prefetch(pt->e, m->payload, m->len);
}

/* The array's messages are destroyed: no hint may outlive them. */
static void loop_hints_reset(Loop *l)
{
        for (uint32_t p = 0; p < l->nparts; p++)
                if (l->parts[p] && l->parts[p]->e)
                        engine_prefetch_reset(l->parts[p]->e);
}

static uint32_t parts_active(const Loop *l)
{
        uint32_t n = 0;
        for (uint32_t p = 0; p < l->nparts; p++)
                n += l->parts[p] && l->parts[p]->state == PART_ACTIVE;
        return n;
}

/* READY=1 once the first assignment is restored; STATUS= every tick. */
static void loop_notify(Loop *l)
{
        const LoopStats *s = &l->st;
        if (!l->assigned_once) {
                notify_status("joining group %s", l->cfg->group_id);
                int64_t now = log_now_ms();
                if (now - l->join_logged >= 30000) {
                        log_notice("still joining group %s on brokers %s (%llds)", l->cfg->group_id, l->cfg->brokers,
                                   (long long)(now - l->join_t0) / 1000);
                        l->join_logged = now;
                }
                return;
        }
        if (l->nrestoring) {
                notify_status("restoring %u partition%s from %s (%u active)", l->nrestoring,
                              l->nrestoring == 1 ? "" : "s", l->cfg->topics.changelog, parts_active(l));
                return;
        }
        uint32_t active = parts_active(l);
        if (l->reload_job) { /* RELOADING=1 until it ends */
                notify_status("reloading the rules (compiling in the background); %u partition%s; %llu events",
                              active, active == 1 ? "" : "s", (unsigned long long)s->events);
                return;
        }
        if (!notify_is_ready())
                log_notice("ready: %u partition%s restored", active, active == 1 ? "" : "s");
        notify_ready("%u partition%s; %llu events, %llu alerts, %llu adjustments, %llu dead letters; %llu "
                     "transactions committed, %llu aborted",
                     active, active == 1 ? "" : "s", (unsigned long long)s->events, (unsigned long long)s->alerts,
                     (unsigned long long)s->adjustments, (unsigned long long)s->deadletters,
                     (unsigned long long)s->batches, (unsigned long long)s->aborts);
}

/* Where an input with nothing applied yet starts: its committed offset, or
 * else the one auto.offset.reset names (earliest: lo; latest: hi); -1 unknown. */
static int64_t start_offset(Loop *l, const char *topic, int32_t p, int64_t lo, int64_t hi)
{
        rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(one, topic, p);
        int64_t at = -1;
        if (!rd_kafka_committed(l->consumer, one, 2000) && !one->elems[0].err && one->elems[0].offset >= 0)
                at = one->elems[0].offset;
        rd_kafka_topic_partition_list_destroy(one);
        if (at >= 0)
                return at;
        char v[32];
        size_t n = sizeof(v);
        if (rd_kafka_conf_get(rd_kafka_conf(l->consumer), "auto.offset.reset", v, &n) != RD_KAFKA_CONF_OK)
                return -1;
        if (!strcmp(v, "smallest") || !strcmp(v, "earliest") || !strcmp(v, "beginning"))
                return lo;
        if (!strcmp(v, "largest") || !strcmp(v, "latest") || !strcmp(v, "end"))
                return hi;
        return -1;
}

/* The stall watch (stall_timeout): an active input from which nothing was
 * taken for that long, while the broker holds records past riskd's
 * position, is resumed (a no-op unless something paused it) and sought to
 * that position; librdkafka then fetches it afresh.  Seeking an input that
 * was only waiting (an open transaction upstream, whose records
 * read_committed holds back) costs a fetch. */
static void stall_watch(Loop *l, int64_t now)
{
        int64_t limit = l->cfg->stall_timeout_ms;
        if (limit <= 0)
                return;
        for (uint32_t p = 0; p < l->nparts; p++) {
                Part *pt = l->parts[p];
                if (!pt || pt->state != PART_ACTIVE)
                        continue;
                for (uint32_t i = 0; i < ninputs(l) && !l->fatal; i++) {
                        Input *in = &pt->in[i];
                        const char *topic = l->cfg->input_topics[i];
                        if (!in->assigned)
                                continue;
                        if (in->seen != in->seen_check) {
                                in->seen_check = in->seen;
                                in->idle_since = now;
                                continue;
                        }
                        if (now - in->idle_since < limit)
                                continue;
                        in->idle_since = now; /* checked again after another stall_timeout */
                        int64_t lo = -1, hi = -1;
                        if (rd_kafka_get_watermark_offsets(l->consumer, topic, pt->id, &lo, &hi) || lo < 0 ||
                            hi < 0) {
                                /* no fetch response for it yet: ask the leader */
                                if (rd_kafka_query_watermark_offsets(l->consumer, topic, pt->id, &lo, &hi, 2000))
                                        continue;
                        }
                        if (in->pos < 0 && hi <= lo)
                                continue; /* nothing applied and nothing there */
                        int64_t at = in->pos >= 0 ? in->pos : start_offset(l, topic, pt->id, lo, hi);
                        if (at < 0 || hi <= at)
                                continue;
                        char num[16];
                        snprintf(num, sizeof(num), "%d", pt->id);
                        prom_add(prom_series2(l->m.stalls, topic, num), 1);
                        if (log_limit_pass(&l->ll_stall, LOG_PRIO_WARNING, "fetch stalls"))
                                log_warning("%s[%d]: nothing fetched for %llds while the broker holds offsets "
                                            "%lld..%lld; seeking to %lld again",
                                            topic, pt->id, (long long)(limit / 1000), (long long)at,
                                            (long long)hi - 1, (long long)at);
                        rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
                        rd_kafka_topic_partition_list_add(one, topic, pt->id)->offset = at;
                        rd_kafka_resume_partitions(l->consumer, one);
                        rd_kafka_error_t *error = rd_kafka_seek_partitions(l->consumer, one, 10000);
                        if (error) {
                                log_warning("%s[%d]: cannot seek to %lld: %s", topic, pt->id, (long long)at,
                                            rd_kafka_error_string(error));
                                rd_kafka_error_destroy(error);
                        } else if (one->elems[0].err)
                                log_warning("%s[%d]: cannot seek to %lld: %s", topic, pt->id, (long long)at,
                                            rd_kafka_err2str(one->elems[0].err));
                        rd_kafka_topic_partition_list_destroy(one);
                }
        }
}

static void loop_tick(Loop *l, int64_t now)
{
        stall_watch(l, now);
        loop_notify(l);
        log_limit_flush(&l->ll_dlq, LOG_PRIO_WARNING, "dead letters");
        log_limit_flush(&l->ll_consume, LOG_PRIO_WARNING, "consumer errors");
        log_limit_flush(&l->ll_kafka, LOG_PRIO_WARNING, "kafka errors");
        log_limit_flush(&l->ll_restore, LOG_PRIO_WARNING, "changelog problems");
        log_limit_flush(&l->ll_stall, LOG_PRIO_WARNING, "fetch stalls");
        if (now >= l->next_stats) {
                const LoopStats *s = &l->st, *o = &l->st_last;
                if (s->events != o->events || s->aborts != o->aborts || s->restores != o->restores) {
                        uint32_t active = parts_active(l);
                        log_info("last minute: %llu events, %llu alerts (+%llu shadow), %llu adjustments, %llu dead "
                                 "letters, %llu batches committed, %llu aborted; %u partitions active, %u restoring",
                                 (unsigned long long)(s->events - o->events), (unsigned long long)(s->alerts - o->alerts),
                                 (unsigned long long)(s->shadow - o->shadow),
                                 (unsigned long long)(s->adjustments - o->adjustments),
                                 (unsigned long long)(s->deadletters - o->deadletters),
                                 (unsigned long long)(s->batches - o->batches),
                                 (unsigned long long)(s->aborts - o->aborts), active, l->nrestoring);
                }
                l->st_last = l->st;
                l->next_stats = now + 60000;
        }
        l->next_tick = now + 1000;
}

/* ---- reload ---- */

/* "a, b, c" of at most 20 rule ids, then "and N more". */
static void ids_add(Buf *b, uint32_t *n, const char *id)
{
        if (*n < 20)
                buf_printf(b, "%s%s", *n ? ", " : "", id);
        else if (*n == 20)
                buf_puts(b, ", ...");
        (*n)++;
}

/* What changed from l->rs to rs, in the log: the rules that start fresh. */
static void reload_report(Loop *l, const RuleSet *rs)
{
        const RuleSet *old = l->rs;
        Buf fresh = {0}, gone = {0};
        uint32_t nnew = 0, nchanged = 0, nsame = 0, ngone = 0, nfresh = 0;
        for (uint32_t i = 0; i < rs->nrules; i++) {
                const Rule *r = &rs->rules[i];
                const Rule *o = NULL;
                for (uint32_t k = 0; k < old->nrules && !o; k++)
                        if (strcmp(old->rules[k].id, r->id) == 0)
                                o = &old->rules[k];
                if (o && o->fingerprint == r->fingerprint) {
                        nsame++;
                        continue;
                }
                if (o)
                        nchanged++;
                else
                        nnew++;
                ids_add(&fresh, &nfresh, r->id);
        }
        for (uint32_t k = 0; k < old->nrules; k++) {
                bool found = false;
                for (uint32_t i = 0; i < rs->nrules && !found; i++)
                        found = strcmp(old->rules[k].id, rs->rules[i].id) == 0;
                if (!found)
                        ids_add(&gone, &ngone, old->rules[k].id);
        }
        log_notice("rules %s -> %s: %u unchanged (their state kept), %u changed and %u new (starting fresh%s%s), "
                   "%u removed%s%s%s",
                   old->version, rs->version, nsame, nchanged, nnew, nfresh ? ": " : "", nfresh ? fresh.p : "",
                   ngone, ngone ? " (" : "", ngone ? gone.p : "", ngone ? ")" : "");
        buf_free(&fresh);
        buf_free(&gone);
}

/* It runs other rules than l->rs, or was restored from records of others. */
static bool part_reload_due(const Loop *l, const Part *pt)
{
        return pt && pt->state == PART_ACTIVE && (engine_rules(pt->e) != l->rs || engine_regrade_due(pt->e));
}

/*
 * Moves every active Part whose Engine runs other rules than l->rs to them
 * (engine_reload: the state of unchanged rules kept, every enterprise
 * graded again), or grades again one restored from records of other rules
 * (engine_regrade), in a transaction of its own between two batches: the
 * re-grade's adjustments and the records of the enterprises the reload
 * changed are committed together.  Not committed, the Parts keep their
 * Engines and old rules (or their re-grade stays due), and it is tried
 * again a second later.
 */
static void reload_apply(Loop *l)
{
        l->reload_due = false;
        uint32_t due = 0;
        for (uint32_t p = 0; p < l->nparts; p++)
                due += part_reload_due(l, l->parts[p]);
        if (!due)
                return;
        batch_end(l, BATCH_COMMIT); /* and the one in flight: a reload waits for it */
        if (l->fatal)
                return;
        batch_begin(l);
        int64_t t0 = log_now_ms();
        Engine **old = xcalloc(l->nparts, sizeof(Engine *));
        EngineReload sum = {0};
        Buf parts = {0}, from = {0};
        for (uint32_t p = 0; p < l->nparts && !l->fatal; p++) {
                Part *pt = l->parts[p];
                if (!part_reload_due(l, pt))
                        continue;
                stats_fold(l, pt);
                EngineReload rep;
                Engine *n = NULL;
                bool swap = engine_rules(pt->e) != l->rs;
                int r = swap ? engine_reload(pt->e, l->rs, &n, &rep) : engine_regrade(pt->e, &rep);
                if (r < 0) {
                        fatal(l, "reload: partition %d: %s", pt->id, strerror(-r));
                        break;
                }
                if (!strstr(from.p ? from.p : "", rep.rules_before))
                        buf_printf(&from, "%s%s", from.len ? ", " : "", rep.rules_before);
                buf_printf(&parts, "%s%d", parts.len ? ", " : "", pt->id);
                if (swap) {
                        old[p] = pt->e;
                        pt->e = n;
                }
                pt->in_batch = true;
                sum.enterprises += rep.enterprises;
                sum.state_dropped += rep.state_dropped;
                sum.rescored += rep.rescored;
                sum.regraded += rep.regraded;
                sum.adjusted += rep.adjusted;
                sum.records += rep.records;
        }
        bool committed = batch_end(l, BATCH_COMMIT) && !l->fatal;
        for (uint32_t p = 0; p < l->nparts; p++) {
                Part *pt = l->parts[p];
                if (!pt || !old[p])
                        continue;
                if (committed) {
                        engine_free(old[p]);
                        pt->seen = *engine_stats(pt->e); /* carried over: counted already */
                } else {
                        engine_free(pt->e); /* its outputs went with the aborted transaction */
                        pt->e = old[p];
                }
        }
        free(old);
        if (committed) {
                prom_add(prom_series1(l->m.reload_ents, "state"), (double)sum.state_dropped);
                prom_add(prom_series1(l->m.reload_ents, "score"), (double)sum.rescored);
                prom_add(prom_series1(l->m.reload_ents, "grade"), (double)sum.regraded);
                log_notice("rules %s -> %s applied to partition%s %s in %lld ms: %llu enterprises, %llu lost the "
                           "state of changed or removed rules, %llu re-scored, %llu re-graded, %llu adjustments with "
                           "cause reload, %llu records rewritten",
                           from.p, l->rs->version, due == 1 ? "" : "s", parts.p, (long long)(log_now_ms() - t0),
                           (unsigned long long)sum.enterprises, (unsigned long long)sum.state_dropped,
                           (unsigned long long)sum.rescored, (unsigned long long)sum.regraded,
                           (unsigned long long)sum.adjusted, (unsigned long long)sum.records);
        } else if (!l->fatal) {
                log_warning("the reload of partition%s %s was not committed: they keep the state of rules %s; "
                            "retrying in 1 s",
                            due == 1 ? "" : "s", parts.p ? parts.p : "", from.p ? from.p : "");
                l->reload_due = true;
                l->reload_retry_at = log_now_ms() + 1000;
        }
        buf_free(&parts);
        buf_free(&from);
}

/*
 * SIGHUP (or POST /v1/reload): the rules directory is compiled on a worker
 * thread (reload_start) while the main loop goes on consuming, answering
 * HTTP and feeding the watchdog, whatever the rules cost to compile; the
 * loop looks for the result each turn (reload_poll).  Broken, the old rules
 * go on (the diagnostics in the log, the failure counted); good, between
 * two batches: the open batch is committed and every active Engine moves
 * its state to the new rules (reload_apply), so that no event is lost or
 * applied twice; Parts still restoring finish their restore under the
 * rules of their records, and move to the new rules once restored.
 * One reload at a time: a SIGHUP during a compile asks for one more after
 * it (the files may have changed since they were read), a POST during a
 * compile gets that compile's result.
 */
enum { RELOAD_RUNNING, RELOAD_DONE, RELOAD_ABANDONED };

typedef struct ReloadJob {
        Loop *l;
        pthread_t thread;
        bool threaded;           /* thread runs (else the compile ran in reload_start) */
        char *dir;
        const char *gate;        /* Loop.fault_reload_gate */
        int64_t t0;
        DiagList dl;             /* the worker's until done */
        RuleSet *rs;
        int r;
        /* RUNNING -> DONE (the worker: the result is in) or -> ABANDONED
         * (the main loop, stopping: the worker frees the job when done,
         * without touching the Loop) */
        atomic_int state;
} ReloadJob;

static void loop_wake(void *ud);

static void reload_job_drop(ReloadJob *j)
{
        diag_list_deinit(&j->dl);
        rules_unref(j->rs);
        free(j->dir);
        free(j);
}

static void *reload_run(void *arg)
{
        ReloadJob *j = arg;
        j->r = rules_load(j->dir, &j->dl, &j->rs);
        while (j->gate && access(j->gate, F_OK) != 0 && atomic_load(&j->state) == RELOAD_RUNNING)
                usleep(20000);
        if (atomic_exchange(&j->state, RELOAD_DONE) == RELOAD_ABANDONED)
                reload_job_drop(j); /* detached: riskd is stopping */
        else
                loop_wake(j->l); /* out of the consumer's wait */
        return NULL;
}

/* Stopping: a compile still running is abandoned (its thread detached; it
 * frees its result when done, or dies with the process), one done is
 * joined and dropped: a stop does not wait for the rules to compile. */
static ReloadJob *reload_job_free(ReloadJob *j)
{
        if (!j)
                return NULL;
        if (j->threaded && atomic_exchange(&j->state, RELOAD_ABANDONED) == RELOAD_RUNNING) {
                pthread_detach(j->thread);
                return NULL;
        }
        if (j->threaded)
                pthread_join(j->thread, NULL);
        reload_job_drop(j);
        return NULL;
}

/* The answer of a POST /v1/reload: the last reload's result. */
static void reload_respond(Loop *l, HttpReq *req, bool coalesced)
{
        Buf b = {0};
        unsigned status = 200;
        if (l->reload_last_failed) {
                status = 422;
                buf_puts(&b, "{\"status\":\"failed\",\"error\":");
                buf_json_str(&b, l->reload_error ? l->reload_error : "", l->reload_error ? strlen(l->reload_error) : 0);
                buf_puts(&b, ",\"version\":");
        } else
                buf_puts(&b, "{\"status\":\"ok\",\"version\":");
        buf_json_str(&b, l->rs->version, strlen(l->rs->version));
        buf_printf(&b, ",\"coalesced\":%s}\n", coalesced ? "true" : "false");
        httpd_respond(req, status, "application/json", b.p, b.len);
        buf_free(&b);
}

/* A reload ended: the POSTs held while it ran, and those queued until
 * now, are answered with its result (serialised, coalesced). */
static void reload_ended(Loop *l, bool failed)
{
        l->reload_seq = l->http ? httpd_seq(l->http) : 0;
        l->reload_last_failed = failed;
        for (uint32_t i = 0; i < l->nreload_waiters; i++) {
                reload_respond(l, l->reload_waiters[i].req, l->reload_waiters[i].coalesced);
                httpd_release(l->reload_waiters[i].req);
        }
        l->nreload_waiters = 0;
}

/* Stopping: the held POSTs get 503 (before httpd_free). */
static void reload_waiters_drop(Loop *l)
{
        for (uint32_t i = 0; i < l->nreload_waiters; i++) {
                httpd_error(l->reload_waiters[i].req, 503, "shutting down");
                httpd_release(l->reload_waiters[i].req);
        }
        l->nreload_waiters = 0;
}

/* A diagnostic's file, relative to the rules directory (no absolute path
 * over HTTP). */
static const char *rules_relative(const Loop *l, const char *file)
{
        if (!file)
                return "";
        size_t n = strlen(l->cfg->rules);
        while (n > 1 && l->cfg->rules[n - 1] == '/')
                n--;
        if (strncmp(file, l->cfg->rules, n) == 0 && file[n] == '/')
                return file + n + 1;
        const char *slash = strrchr(file, '/');
        return slash ? slash + 1 : file;
}

/* Starts compiling the rules directory on a worker thread; a compile
 * already running: one more reload once it ends. */
static void reload_start(Loop *l)
{
        if (l->reload_job) {
                l->reload_again = true;
                return;
        }
        notify_reloading();
        ReloadJob *j = xcalloc(1, sizeof(*j));
        j->l = l;
        j->dir = xstrdup(l->cfg->rules);
        j->gate = l->fault_reload_gate;
        j->t0 = log_now_ms();
        atomic_init(&j->state, RELOAD_RUNNING);
        l->reload_job = j;
        log_notice("reloading the rules from %s (compiling in the background)", l->cfg->rules);
        int r = pthread_create(&j->thread, NULL, reload_run, j);
        if (r != 0) {
                log_warning("reload: cannot start a thread (%s): compiling the rules on the main loop",
                            strerror(r));
                j->gate = NULL; /* nothing may hold the main loop */
                reload_run(j);
        } else
                j->threaded = true;
}

/* The compile ended: its result taken in between two batches. */
static void reload_finish(Loop *l)
{
        ReloadJob *j = l->reload_job;
        l->reload_job = NULL;
        if (j->threaded)
                pthread_join(j->thread, NULL);
        int64_t t0 = j->t0;
        int r = j->r;
        RuleSet *rs = j->rs;
        DiagList dl = j->dl;
        j->rs = NULL;
        j->dl = (DiagList){0};
        reload_job_drop(j);
        log_diags(&dl);
        if (r != 0 || !rs) {
                l->reloads_failed++;
                prom_add(l->m.reload_failed, 1);
                if (r < 0)
                        log_err("reload failed: cannot read %s: %s; the rules in use (version %s) stay",
                                l->cfg->rules, strerror(-r), l->rs->version);
                else
                        log_err("reload failed: %u error%s in %s; the rules in use (version %s) stay", dl.nerrors,
                                dl.nerrors == 1 ? "" : "s", l->cfg->rules, l->rs->version);
                free(l->reload_error);
                l->reload_error = dl.n ? xasprintf("%s:%u:%u: %s", rules_relative(l, dl.v[0].file), dl.v[0].line,
                                                   dl.v[0].col, dl.v[0].message)
                                       : xasprintf("cannot read the rules directory: %s", strerror(-r));
                diag_list_deinit(&dl);
                rules_unref(rs);
                reload_ended(l, true);
                loop_notify(l);
                return;
        }
        log_info("reload: rules compiled in %lld ms", (long long)(log_now_ms() - t0));
        diag_list_deinit(&dl);
        batch_end(l, BATCH_COMMIT); /* and the one in flight */
        if (l->fatal) {
                rules_unref(rs);
                return;
        }
        reload_report(l, rs);
        for (uint32_t p = 0; p < l->nparts; p++) {
                Part *pt = l->parts[p];
                /* not started: it restores into the new rules */
                if (!pt || pt->state != PART_RESTORE_WAIT)
                        continue;
                Engine *n = NULL;
                stats_fold(l, pt);
                pt->rs_records = pt->rs_bad = 0;
                pt->rs_retry_at = 0;
                r = engine_new(&n, rs, &l->ecfg, loop_emit, l);
                if (r < 0) {
                        fatal(l, "reload: partition %d: %s", pt->id, strerror(-r));
                        rules_unref(rs);
                        return;
                }
                engine_free(pt->e);
                pt->e = n;
                pt->seen = *engine_stats(n);
        }
        rules_unref(l->rs);
        l->rs = rs;
        l->reloads_ok++;
        prom_add(l->m.reload_ok, 1);
        free(l->reload_error);
        l->reload_error = NULL;
        reload_apply(l);
        reload_ended(l, false);
        log_notice("reload done in %lld ms: rules version %s, %u rules, on %u partitions%s",
                   (long long)(log_now_ms() - t0), rs->version, rs->nrules, parts_active(l),
                   l->reload_due || l->nrestoring ? " (partitions restoring or whose reload was not committed "
                                                    "move to them later)"
                                                  : "");
        loop_notify(l);
}

/* Main loop, each turn: the compile's result once it is in; then the
 * reload a SIGHUP asked for while it ran. */
static bool reload_poll(Loop *l)
{
        if (!l->reload_job || atomic_load(&l->reload_job->state) != RELOAD_DONE)
                return false;
        reload_finish(l);
        if (l->reload_again && !l->fatal) {
                l->reload_again = false;
                reload_start(l);
        }
        return true;
}

/* ---- HTTP (httpd.h): answered here, on the main loop, between batches ---- */

/* The gauges are taken now (engine_stats walks each Engine's enterprises:
 * a scrape costs a pass over the state). */
static void metrics_render(Loop *l, Buf *out)
{
        Metrics *m = &l->m;
        uint64_t ents = 0, sb = 0, wb = 0;
        uint32_t active = 0, restoring = 0;
        prom_family_clear(m->lag);
        for (uint32_t p = 0; p < l->nparts; p++) {
                Part *pt = l->parts[p];
                if (!pt)
                        continue;
                if (pt->state != PART_ACTIVE) {
                        restoring++;
                        continue;
                }
                active++;
                stats_fold(l, pt);
                ents += pt->seen.enterprises;
                sb += pt->seen.state_bytes;
                wb += pt->seen.window_bytes;
                for (uint32_t i = 0; i < ninputs(l); i++) {
                        int64_t lo = -1, hi = -1;
                        if (!pt->in[i].assigned ||
                            rd_kafka_get_watermark_offsets(l->consumer, l->cfg->input_topics[i], pt->id, &lo, &hi) ||
                            hi < 0)
                                continue;
                        /* nothing read yet: the whole partition is behind */
                        int64_t pos = pt->in[i].pos >= 0 ? pt->in[i].pos : lo;
                        char num[16];
                        snprintf(num, sizeof(num), "%d", pt->id);
                        prom_set(prom_series2(m->lag, l->cfg->input_topics[i], num),
                                 (double)(hi > pos ? hi - pos : 0));
                }
        }
        prom_set(prom_series(m->enterprises, NULL), (double)ents);
        prom_set(prom_series1(m->state_bytes, "enterprise"), (double)sb);
        prom_set(prom_series1(m->state_bytes, "window"), (double)wb);
        prom_set(prom_series1(m->partitions, "active"), active);
        prom_set(prom_series1(m->partitions, "restoring"), restoring);
        prom_family_clear(m->rules_info);
        prom_set(prom_series1(m->rules_info, l->rs->version), 1);
        uint32_t by_status[3] = {0};
        for (uint32_t i = 0; i < l->rs->nrules; i++)
                by_status[l->rs->rules[i].status < 3 ? l->rs->rules[i].status : 0]++;
        prom_set(prom_series1(m->rules, "enabled"), by_status[RULE_ENABLED]);
        prom_set(prom_series1(m->rules, "shadow"), by_status[RULE_SHADOW]);
        prom_set(prom_series1(m->rules, "disabled"), by_status[RULE_DISABLED]);
        regex_errors_fold(l);
        prom_render(m->p, out);
}

static const char *const rule_status_names[] = {"enabled", "shadow", "disabled"};

static void rules_json(Loop *l, Buf *b)
{
        const RuleSet *rs = l->rs;
        buf_puts(b, "{\"version\":");
        buf_json_str(b, rs->version, strlen(rs->version));
        buf_printf(b, ",\"reloads\":{\"ok\":%llu,\"failed\":%llu,\"coalesced\":%llu,\"last_error\":",
                   (unsigned long long)l->reloads_ok, (unsigned long long)l->reloads_failed,
                   (unsigned long long)l->reloads_coalesced);
        if (l->reload_error)
                buf_json_str(b, l->reload_error, strlen(l->reload_error));
        else
                buf_puts(b, "null");
        buf_printf(b, "},\"count\":%u,\"rules\":[", rs->nrules);
        for (uint32_t i = 0; i < rs->nrules; i++) {
                const Rule *r = &rs->rules[i];
                buf_puts(b, i ? ",{\"id\":" : "{\"id\":");
                buf_json_str(b, r->id, strlen(r->id));
                buf_printf(b, ",\"status\":\"%s\",\"fingerprint\":\"%016llx\"}",
                           rule_status_names[r->status < 3 ? r->status : 0], (unsigned long long)r->fingerprint);
        }
        buf_puts(b, "]}\n");
}

static void loop_http(void *ud, HttpReq *req)
{
        Loop *l = ud;
        const char *path = httpd_path(req), *method = httpd_method(req);
        bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
        Buf b = {0};
        char id[256];
        unsigned status = 200;
        if (strcmp(path, "/metrics") == 0 && get) {
                metrics_render(l, &b);
                httpd_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
        } else if (strcmp(path, "/healthz") == 0 && get) {
                /* answered by the main loop: it turns */
                buf_puts(&b, "{\"status\":\"ok\"}\n");
                httpd_respond(req, 200, "application/json", b.p, b.len);
        } else if (strcmp(path, "/readyz") == 0 && get) {
                /* a reload compiling in the background leaves riskd ready:
                 * it goes on consuming under the rules it has */
                bool ready = (notify_is_ready() || l->reload_job) && l->assigned_once && !l->nrestoring;
                buf_printf(&b, "{\"status\":\"%s\",\"partitions\":%u,\"restoring\":%u}\n",
                           ready ? "ready" : "not ready", parts_active(l), l->nrestoring);
                status = ready ? 200 : 503;
                httpd_respond(req, status, "application/json", b.p, b.len);
        } else if (strcmp(path, "/v1/rules") == 0 && get) {
                rules_json(l, &b);
                httpd_respond(req, 200, "application/json", b.p, b.len);
        } else if (strcmp(path, "/v1/reload") == 0 && strcmp(method, "POST") == 0) {
                /* httpd.c let it through: http_reload is on, the token and
                 * the Origin are right.  Made before the last reload ended:
                 * that one's result. */
                bool coalesced = httpd_req_seq(req) <= l->reload_seq, held = !coalesced;
                if (held) {
                        /* held until the reload ends: the one it starts,
                         * or the one compiling now (then coalesced) */
                        coalesced = l->reload_job != NULL;
                        if (!coalesced)
                                reload_start(l);
                        if (l->nreload_waiters == l->reload_waiters_cap) {
                                l->reload_waiters_cap = l->reload_waiters_cap ? 2 * l->reload_waiters_cap : 8;
                                l->reload_waiters = xrealloc(l->reload_waiters, l->reload_waiters_cap *
                                                                                       sizeof(*l->reload_waiters));
                        }
                        l->reload_waiters[l->nreload_waiters++] = (struct ReloadWaiter){req, coalesced};
                        httpd_hold(req);
                }
                if (coalesced) {
                        l->reloads_coalesced++;
                        prom_add(l->m.reload_coalesced, 1);
                }
                if (!held)
                        reload_respond(l, req, coalesced);
        } else if (strncmp(path, "/v1/enterprises/", 16) == 0 && get) {
                if (httpd_path_id(path, "/v1/enterprises", id, sizeof(id)) < 0) {
                        status = 400;
                        httpd_error(req, status, "bad enterprise id");
                } else {
                        char *doc = NULL;
                        for (uint32_t p = 0; p < l->nparts && !doc; p++)
                                if (l->parts[p] && l->parts[p]->state == PART_ACTIVE)
                                        doc = engine_explain_json(l->parts[p]->e, id, strlen(id));
                        if (doc) {
                                httpd_respond(req, 200, "application/json", doc, strlen(doc));
                                free(doc);
                        } else {
                                status = 404;
                                httpd_error(req, status, "unknown enterprise (or its partition is not assigned to "
                                                         "this instance)");
                        }
                }
        } else if (strcmp(path, "/metrics") == 0 || strcmp(path, "/healthz") == 0 ||
                   strcmp(path, "/readyz") == 0 || strcmp(path, "/v1/rules") == 0 ||
                   strcmp(path, "/v1/reload") == 0 || strncmp(path, "/v1/enterprises/", 16) == 0) {
                status = 405;
                httpd_error(req, status, "method not allowed");
        } else {
                status = 404;
                httpd_error(req, status, "no such endpoint (/metrics, /healthz, /readyz, /v1/rules, "
                                         "/v1/enterprises/{id}, POST /v1/reload)");
        }
        char code[8];
        snprintf(code, sizeof(code), "%u", status);
        prom_add(prom_series1(l->m.http, code), 1);
        buf_free(&b);
}

static void loop_wake(void *ud)
{
        Loop *l = ud;
        rd_kafka_queue_yield(l->queue);
}

int loop_new(Loop **ret, const Config *cfg, RuleSet *rs)
{
        Loop *l = xcalloc(1, sizeof(*l));
        const char *fs = getenv("RISKD_FAULT_STALL");
        l->fault_stall = fs && *fs ? (int32_t)atoi(fs) : -1;
        const char *fc = getenv("RISKD_FAULT_CRASH_STATE");
        l->c.fault_crash_state = fc && *fc ? atoll(fc) : 0;
        const char *fh = getenv("RISKD_FAULT_COMMIT_HOLD");
        l->c.fault_hold = fh && *fh ? fh : NULL;
        const char *fk = getenv("RISKD_FAULT_COMMIT_KILL");
        l->c.fault_kill = fk && *fk && strcmp(fk, "0") != 0;
        if (l->c.fault_hold)
                log_warning("RISKD_FAULT_COMMIT_HOLD: commits wait for %s to exist%s", fh,
                            l->c.fault_kill ? ", then riskd dies (RISKD_FAULT_COMMIT_KILL)" : "");
        pthread_mutex_init(&l->c.mu, NULL);
        pthread_cond_init(&l->c.cv, NULL);
        const char *fg = getenv("RISKD_FAULT_RELOAD_GATE");
        l->fault_reload_gate = fg && *fg ? fg : NULL;
        if (l->fault_reload_gate)
                log_warning("RISKD_FAULT_RELOAD_GATE: compiled reloads wait for %s to exist", fg);
        l->cfg = cfg;
        l->rs = rules_ref(rs);
        config_engine(cfg, &l->ecfg);
        l->changelog_partitions = -1;
        metrics_init(l);
        l->ll_dlq = (LogLimit)LOG_LIMIT_INIT(10000, 10);
        l->ll_consume = (LogLimit)LOG_LIMIT_INIT(10000, 10);
        l->ll_kafka = (LogLimit)LOG_LIMIT_INIT(10000, 10);
        l->c.ll_delivery = (LogLimit)LOG_LIMIT_INIT(10000, 10);
        l->c.ll_kafka = (LogLimit)LOG_LIMIT_INIT(10000, 10);
        l->c.ll_produce = (LogLimit)LOG_LIMIT_INIT(10000, 10);
        l->ll_restore = (LogLimit)LOG_LIMIT_INIT(10000, 10);
        l->ll_stall = (LogLimit)LOG_LIMIT_INIT(60000, 10);

        l->props = xcalloc(cfg->nkafka + 1, sizeof(KafkaProp));
        for (uint32_t i = 0; i < cfg->nkafka; i++)
                l->props[i] = (KafkaProp){cfg->kafka[i].name, cfg->kafka[i].value,
                                          config_kafka_secret(cfg->kafka[i].name)};
        l->ks = (KafkaSettings){.brokers = cfg->brokers,
                                .props = l->props,
                                .nprops = cfg->nkafka,
                                .opaque = l,
                                .log_cb = kafka_log,
                                .error_cb = kafka_error};
        char *msg = NULL;
        if (kafka_consumer_new(&l->consumer, &l->ks, cfg->group_id, loop_rebalance, &msg) < 0) {
                log_err("cannot create the consumer: %s", msg);
                goto fail;
        }
        if (kafka_producer_new(&l->producer, &l->ks, cfg->transactions ? cfg->transactional_id : NULL,
                               kafka_delivery, &msg) < 0) {
                log_err("cannot create the producer: %s", msg);
                goto fail;
        }
        l->queue = rd_kafka_queue_get_consumer(l->consumer);
        if (changelog_reader_new(&l->reader, &l->ks, cfg->topics.changelog, &msg) < 0) {
                log_err("cannot create the changelog reader: %s", msg);
                goto fail;
        }
        /* before the first wait for a broker: /healthz answers while riskd
         * waits (/readyz says 503 until the partitions are restored) */
        if (cfg->http_listen[0]) {
                /* the names, NULL-terminated, for httpd.c */
                l->http_hosts = xcalloc(cfg->nhttp_hosts + 1, sizeof(char *));
                for (uint32_t i = 0; i < cfg->nhttp_hosts; i++)
                        l->http_hosts[i] = cfg->http_hosts[i];
                HttpdOptions ho = {.hosts = l->http_hosts,
                                   .token = cfg->http_reload ? cfg->http_reload_token : NULL,
                                   .per_ip = (unsigned)cfg->http_per_address,
                                   .head_timeout_ms = (unsigned)cfg->http_head_timeout_ms};
                if (httpd_new(&l->http, cfg->http_listen, &ho, loop_http, loop_wake, l, &msg) < 0) {
                        log_err("cannot start the HTTP endpoint: %s", msg);
                        goto fail;
                }
                log_notice("http: listening on %s (port %u): /metrics /healthz /readyz /v1/rules "
                           "/v1/enterprises/{id}%s",
                           cfg->http_listen, httpd_port(l->http),
                           cfg->http_reload ? " POST /v1/reload (with the token)" : " (POST /v1/reload off)");
        }
        if (cfg->transactions) {
                log_notice("connecting to brokers %s: initialising transactions (transactional_id %s), then joining "
                           "group %s",
                           cfg->brokers, cfg->transactional_id, cfg->group_id);
                /* fences a previous instance with our transactional.id and
                 * aborts its open transaction.  In steps of 250 ms (a
                 * timed-out call is resumed by the next one), so that HTTP
                 * requests are answered, the watchdog fed and a stop heard
                 * while the brokers are away. */
                int64_t t0 = log_now_ms(), warned = 0;
                for (;;) {
                        KafkaTxnStatus st = kafka_txn_status(rd_kafka_init_transactions(l->producer, 250), &msg);
                        rd_kafka_poll(l->producer, 0);
                        int64_t now = log_now_ms();
                        notify_watchdog(now);
                        if (l->http)
                                httpd_dispatch(l->http);
                        if (st == KAFKA_TXN_OK)
                                break;
                        if (daemon_stop) {
                                free(msg);
                                loop_free(l);
                                return -ECANCELED;
                        }
                        if (st == KAFKA_TXN_FATAL || l->fatal) {
                                log_err("init_transactions (transactional_id %s): %s", cfg->transactional_id,
                                        msg ? msg : "fatal error");
                                goto fail;
                        }
                        if (now - t0 >= 5000 && now - warned >= 30000) {
                                log_warning("init_transactions: %s; still waiting for brokers %s (%llds)", msg,
                                            cfg->brokers, (long long)(now - t0) / 1000);
                                warned = now;
                        }
                        free(msg);
                        msg = NULL;
                }
                log_info("transactions initialised (transactional_id %s)", cfg->transactional_id);
        }
        *ret = l;
        return 0;
fail:
        free(msg);
        loop_free(l);
        return -EIO;
}

Loop *loop_free(Loop *l)
{
        if (!l)
                return NULL;
        l->reload_job = reload_job_free(l->reload_job);
        committer_stop(l);
        l->flight = batch_free(l->flight);
        l->open = batch_free(l->open);
        reload_waiters_drop(l);
        free(l->reload_waiters);
        httpd_free(l->http);
        for (uint32_t p = 0; p < l->nparts; p++)
                if (l->parts[p])
                        part_free(l, l->parts[p]);
        free(l->parts);
        prom_free(l->m.p);
        changelog_reader_free(l->reader);
        if (l->queue)
                rd_kafka_queue_destroy(l->queue);
        if (l->consumer)
                rd_kafka_destroy(l->consumer);
        if (l->producer)
                rd_kafka_destroy(l->producer);
        free(l->props);
        free(l->reload_error);
        free(l->http_hosts);
        rules_unref(l->rs);
        pthread_mutex_destroy(&l->c.mu);
        pthread_cond_destroy(&l->c.cv);
        free(l);
        return NULL;
}

static int loop_shutdown(Loop *l)
{
        notify_stopping();
        if (l->reload_job) {
                log_notice("stopping: the reload compiling in the background is dropped");
                l->reload_job = reload_job_free(l->reload_job);
        }
        reload_waiters_drop(l);
        l->http = httpd_free(l->http); /* queued requests: 503 */
        if (l->fatal && !daemon_stop) /* bound the teardown as a stop's (main.c arms it on a signal) */
                alarm((unsigned)((l->cfg->shutdown_timeout_ms + 999) / 1000));
        if (!l->fatal)
                log_notice("stopping: committing the open batch, leaving the group");
        /* after a fatal error: the batch in flight ends, nothing more is committed */
        batch_end(l, BATCH_COMMIT_NO_REWIND);
        /* leaves the group: the revoke callback frees the Parts (and, after a
         * fatal error, commits nothing) */
        rd_kafka_resp_err_t err = rd_kafka_consumer_close(l->consumer);
        if (err)
                log_warning("leaving the group: %s", rd_kafka_err2str(err));
        committer_stop(l); /* the producer is the main loop's again */
        if (!l->fatal) {
                flush_all(l);
                if (rd_kafka_outq_len(l->producer) > 0)
                        log_warning("%d records not delivered at exit", rd_kafka_outq_len(l->producer));
        }
        const LoopStats *s = &l->st;
        log_notice("stopped%s: %llu events, %llu alerts (+%llu shadow), %llu adjustments, %llu dead letters; %llu "
                   "batches committed, %llu aborted; %llu restores",
                   l->fatal ? " after a fatal error" : "", (unsigned long long)s->events, (unsigned long long)s->alerts,
                   (unsigned long long)s->shadow, (unsigned long long)s->adjustments,
                   (unsigned long long)s->deadletters, (unsigned long long)s->batches, (unsigned long long)s->aborts,
                   (unsigned long long)s->restores);
        return l->fatal ? 1 : 0;
}

int loop_run(Loop *l)
{
        const Config *cfg = l->cfg;
        rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new((int)ninputs(l));
        for (uint32_t i = 0; i < ninputs(l); i++)
                rd_kafka_topic_partition_list_add(topics, cfg->input_topics[i], RD_KAFKA_PARTITION_UA);
        Buf in = {0};
        for (uint32_t i = 0; i < ninputs(l); i++)
                buf_printf(&in, "%s%s", i ? "," : "", cfg->input_topics[i]);
        log_notice("joining group %s on brokers %s (input %s)", cfg->group_id, cfg->brokers, in.p);
        buf_free(&in);
        l->join_t0 = l->join_logged = log_now_ms();
        rd_kafka_resp_err_t err = rd_kafka_subscribe(l->consumer, topics);
        rd_kafka_topic_partition_list_destroy(topics);
        if (err) {
                log_err("subscribe: %s", rd_kafka_err2str(err));
                return 1;
        }
        int r = committer_start(l);
        if (r < 0)
                log_warning("cannot start the committer thread (%s): batches are committed on the main loop, "
                            "which waits for each", strerror(-r));
        int64_t now = log_now_ms();
        l->next_tick = now + 1000;
        l->next_stats = now + 60000;
        while (!l->fatal && !daemon_stop) {
                if (daemon_hup) {
                        daemon_hup = 0;
                        reload_start(l);
                }
                if (reload_poll(l))
                        continue;
                if (!l->c.running)
                        rd_kafka_poll(l->producer, 0); /* delivery reports, errors */
                flight_poll(l);
                now = log_now_ms();
                if (l->reload_due && now >= l->reload_retry_at) {
                        reload_apply(l);
                        continue;
                }
                notify_watchdog(now);
                if (!notify_is_ready() && l->assigned_once && !l->nrestoring && !l->reload_job)
                        loop_notify(l);
                if (now >= l->next_tick)
                        loop_tick(l, now);
                /* a batch due by time while the one before is still in flight
                 * goes on taking events (up to batch_max): the commit is
                 * not waited for before it must be */
                if (l->open && (l->open->events >= cfg->batch_max ||
                                (!l->flight && now - l->open->t0 >= cfg->commit_interval_ms))) {
                        batch_submit(l, true);
                        continue;
                }
                int timeout = 100;
                if (l->nrestoring && restore_poll(l))
                        timeout = 0; /* the restore waited; keep the group membership alive */
                else if (l->open && !l->flight) {
                        int64_t left = l->open->t0 + cfg->commit_interval_ms - now;
                        timeout = left < 0 ? 0 : left > 100 ? 100 : (int)left;
                }
                if (l->fatal)
                        break;
                /* many messages a call: one lock and one clock reading per
                 * array instead of per message (rebalances and errors are
                 * served inside the call, as by rd_kafka_consumer_poll) */
                /* A rewind while an array is in hand marks the inputs it
                 * sought (Input.rewound): the rest of the array is dropped
                 * for them.  What librdkafka fetched before a seek never
                 * comes out of a later call, so the marks last one array. */
                if (l->rewound)
                        inputs_fresh(l);
                ssize_t n = rd_kafka_consume_batch_queue(l->queue, timeout, l->msgs, LOOP_MSGS);
                for (ssize_t i = 0; i < n; i++) {
                        /* ENGINE_AHEAD - 1 messages hinted beyond the one applied */
                        for (ssize_t k = i ? i + ENGINE_AHEAD - 1 : 0; k < i + ENGINE_AHEAD && k < n; k++)
                                if (!l->fatal)
                                        loop_hint(l, l->msgs[k]);
                        /* and the bytes of the one hinted ENGINE_AHEAD messages later */
                        const rd_kafka_message_t *later = i + 2 * ENGINE_AHEAD - 1 < n ? l->msgs[i + 2 * ENGINE_AHEAD - 1] : NULL;
                        if (later && later->payload)
                                engine_prefetch_bytes(later->payload, later->len);
                        if (!l->fatal) {
                                loop_message(l, l->msgs[i]);
                                if (l->open && l->open->events >= cfg->batch_max)
                                        batch_submit(l, true);
                        }
                        rd_kafka_message_destroy(l->msgs[i]);
                }
                if (n > 0)
                        loop_hints_reset(l);
                if (l->http)
                        httpd_dispatch(l->http);
                if (n < 0 && log_limit_pass(&l->ll_consume, LOG_PRIO_WARNING, "consumer errors"))
                        log_warning("consume: %s", rd_kafka_err2str(rd_kafka_last_error()));
        }
        return loop_shutdown(l);
}
