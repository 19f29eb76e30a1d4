/*
 * The daemon loop's parts (loop.c has the map): the Loop, its Parts and
 * batches, and what one part calls of another.  Internal to src/daemon/ loop.c,
 * batch.c, restore.c, sink.c, status.c and reload.c.
 */
#ifndef RISKD_DAEMON_LOOP_INT_H
#define RISKD_DAEMON_LOOP_INT_H

#include <assert.h>
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
#include "src/daemon/budget.h"
#include "src/daemon/log.h"
#include "src/daemon/loop.h"
#include "src/daemon/httpd.h"
#include "src/daemon/notify.h"
#include "src/daemon/prom.h"
#include "src/kafka/kafka.h"

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
/* group commit: while the batch before it is being committed, the open
 * batch takes events up to this many times batch_max (its memory bound) */
#define BATCH_GROW 4

typedef struct ReloadJob ReloadJob;
typedef struct Api Api;

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
        int64_t *rs_replay;      /* [ninput_topics] the highest of the REPLAY_KEY records; -1 none */
        int64_t *rs_marks;       /* [rs_nmarks][ninput_topics] the REPLAY_KEY records since the
                                  * partition record, in log order (SourcePos.replay_marks) */
        uint32_t rs_nmarks, rs_cmarks;
        bool replay_open;        /* expected repeats may still come (replay_below ahead) */
        uint64_t replayed;       /* expected repeats since the restore */
        EngineStats seen;        /* the Engine's counters already in the metrics */
} Part;

/* What a record of a batch is, in the order the committer produces them. */
typedef enum RecKind {
        REC_OUTPUT,              /* an alert, shadow alert, adjustment or alert state */
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
        /* inside the commit (for the debug log): the outputs delivered,
         * the changelog records produced (handed to librdkafka), the
         * offsets sent (transactions on; else the last records delivered) */
        int64_t t_outputs, t_records, t_offsets;
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
        PromFamily *batch_events;    /* input messages per committed batch */
} Metrics;

typedef struct LoopStats {
        uint64_t events, skipped, discarded;
        uint64_t alerts, shadow, adjustments, deadletters;
        uint64_t alert_states;   /* riskd.alert_state/1 documents */
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
        Batch *spare;            /* the last one ended, emptied, for the next (batch_keep) */
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
        Budget budget;           /* limits.max_state_bytes (budget.c) */
        Httpd *http;
        Api *api;                /* the query API's view and the event stream (api.c) */
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
        int32_t fault_unfetched; /* RISKD_FAULT_UNFETCHED (tests): librdkafka stops fetching this
                                  * partition right after its assign, as a lost fetch start
                                  * leaves it (loop_reassign); -1 */
        bool reassign_due;       /* a partition is assigned but not fetched: loop_reassign */
        const char *fault_reload_gate; /* RISKD_FAULT_RELOAD_GATE=PATH (tests): a compiled reload
                                        * is handed to the loop only once PATH exists, so a
                                        * test sees what riskd does while the rules compile */
};

typedef enum BatchEnd {
        BATCH_COMMIT,            /* commit; on an abortable error roll back and rewind */
        BATCH_COMMIT_NO_REWIND,  /* the same, the partitions are going away */
        BATCH_ABORT,             /* the assignment was lost: roll back */
} BatchEnd;

/* loop.c: the poll loop */
void loop_fatal(Loop *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint32_t loop_ninputs(const Loop *l);
uint32_t loop_topic_index(const Loop *l, const char *name);
Part *loop_part(const Loop *l, int32_t p);
/* Assigns the whole assignment again (restore.c has why). */
void loop_reassign(Loop *l);
const char *loop_printable(const void *s, size_t n, char *buf, size_t size);
uint32_t loop_parts_active(const Loop *l);
/* The state budget over every partition's Engine (budget.c): at each
 * batch's end, each tick and each new partition. */
void loop_budget(Loop *l);
void loop_notify(Loop *l);
void loop_wake(void *ud);

/* restore.c: restore and the assignment */
void restore_part_free(Loop *l, Part *pt);
bool restore_poll(Loop *l);
void restore_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                       void *opaque);

/* batch.c: the batch and its transaction */
Batch *batch_new(void);
Batch *batch_free(Batch *b);
int batch_committer_start(Loop *l);
void batch_committer_stop(Loop *l);
void batch_begin(Loop *l);
void batch_inputs_fresh(Loop *l);
void batch_replay_check(Loop *l, Part *pt, bool leaving);
/* SourcePos.replay_marks of input ti's offset (restore.c) */
uint64_t restore_replay_marks(Loop *l, const Part *pt, uint32_t ti, int64_t offset);
void batch_poll(Loop *l);
bool batch_due(Loop *l, int64_t now);
bool batch_submit(Loop *l, bool rewind);
bool batch_end(Loop *l, BatchEnd how);

/* sink.c: the output sink */
void sink_emit(void *ud, OutKind kind, const char *data, size_t len, const OutMeta *m);
void sink_changes(Loop *l);
void sink_replay_marks(Loop *l);
void sink_produce(Loop *l, Batch *b, RecKind from, RecKind to);
void sink_flush(Loop *l);

/* status.c: status: metrics and HTTP */
void status_init(Loop *l);
void status_fold(Loop *l, Part *pt);
void status_regex_errors(Loop *l);
void status_http(void *ud, HttpReq *req);

/* api.c: the query API and the event stream */
void api_init(Loop *l);
void api_close_streams(Loop *l);
void api_free(Loop *l);
/* A route of the API: answered, *status set, true; else false. */
bool api_http(Loop *l, HttpReq *req, unsigned *status);
/* Batch b committed: its outputs to the event stream. */
void api_committed(Loop *l, const Batch *b);
/* Clients resuming get more of the history, as their buffers have room
 * (after httpd_dispatch: the server wakes the loop when one emptied). */
void api_pump(Loop *l);

/* reload.c: rule reloads */
void reload_apply(Loop *l);
ReloadJob *reload_job_free(ReloadJob *j);
void reload_respond(Loop *l, HttpReq *req, bool coalesced);
void reload_waiters_drop(Loop *l);
void reload_start(Loop *l);
bool reload_poll(Loop *l);

#endif
