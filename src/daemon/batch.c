/*
 * The batch and its transaction (loop.c has the map): the committer thread
 * commits the sealed batch while the main loop processes the next.
 */
#include "src/daemon/loop_int.h"

Batch *batch_new(void)
{
        Batch *b = xcalloc(1, sizeof(*b));
        b->t0 = log_now_ms();
        return b;
}

/* Empties a batch (its records' headers, offsets and group metadata
 * freed), keeping the room of its records and arena. */
static void batch_clear(Batch *b)
{
        for (uint32_t i = 0; i < b->nrecs; i++)
                if (b->recs[i].hdrs)
                        rd_kafka_headers_destroy(b->recs[i].hdrs);
        if (b->offsets)
                rd_kafka_topic_partition_list_destroy(b->offsets);
        if (b->cgmd)
                rd_kafka_consumer_group_metadata_destroy(b->cgmd);
        Rec *recs = b->recs;
        uint32_t crecs = b->crecs;
        Buf arena = b->arena;
        arena.len = 0;
        if (arena.p)
                arena.p[0] = 0;
        *b = (Batch){.recs = recs, .crecs = crecs, .arena = arena};
}

Batch *batch_free(Batch *b)
{
        if (!b)
                return NULL;
        batch_clear(b);
        free(b->recs);
        buf_free(&b->arena);
        free(b);
        return NULL;
}

/* A batch that ended is emptied and kept for the next (Loop.spare): the
 * arrays of its records and its arena (megabytes at the defaults) are
 * not grown again from nothing every batch, page fault by page fault.
 * The producer copied the bytes (RD_KAFKA_MSG_F_COPY). */
static void batch_keep(Loop *l, Batch *b)
{
        if (l->spare) {
                batch_free(b);
                return;
        }
        batch_clear(b);
        l->spare = b;
}

/* The position of every assigned input of an active Part. */
static rd_kafka_topic_partition_list_t *positions(Loop *l)
{
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
        for (uint32_t p = 0; p < l->nparts; p++) {
                Part *pt = l->parts[p];
                if (!pt || pt->state != PART_ACTIVE)
                        continue;
                for (uint32_t i = 0; i < loop_ninputs(l); i++)
                        if (pt->in[i].assigned && pt->in[i].pos >= 0)
                                rd_kafka_topic_partition_list_add(list, l->cfg->input_topics[i], pt->id)->offset =
                                        pt->in[i].pos;
        }
        return list;
}

/* ---- the committer: one batch's transaction at a time, off the main loop ---- */

/* RISKD_FAULT_COMMIT_HOLD (tests): a commit waits here, its records
 * delivered, until the file exists; with RISKD_FAULT_COMMIT_KILL riskd
 * then dies. */
static void fault_hold(Loop *l, Batch *b)
{
        Committer *c = &l->c;
        if (!c->fault_hold || access(c->fault_hold, F_OK) == 0)
                return;
        sink_flush(l);
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
                loop_fatal(l, "begin_transaction: %s (%s)", msg, kafka_txn_status_name(st));
                free(msg);
                return BATCH_FATAL;
        }
        what = "";
        sink_produce(l, b, REC_OUTPUT, REC_DEADLETTER);
        if (!c->failed && !l->fatal)
                /* The outputs reach their partitions before the state that
                 * reflects them: a reader that sees uncommitted records (the
                 * mock cluster, which writes no markers; a read_uncommitted
                 * tool) never finds a changelog record whose outputs are
                 * missing.  On a real cluster the transaction alone makes
                 * both visible together; this costs one round trip a batch. */
                sink_flush(l);
        b->t_outputs = log_now_ms();
        if (l->fatal)
                return BATCH_FATAL;
        if (c->failed || c->delivery_errors) {
                st = KAFKA_TXN_ABORT;
                msg = xstrdup(c->failed ? "a record could not be produced" : "an output was not delivered");
        }
        if (st == KAFKA_TXN_OK) {
                sink_produce(l, b, REC_STATE, REC_META);
                if (l->fatal)
                        return BATCH_FATAL;
                if (c->failed) {
                        st = KAFKA_TXN_ABORT;
                        msg = xstrdup("a changelog record could not be produced");
                }
        }
        b->t_records = log_now_ms();
        if (st == KAFKA_TXN_OK)
                fault_hold(l, b);
        if (st == KAFKA_TXN_OK && b->offsets->cnt) {
                what = "send_offsets_to_transaction";
                st = txn_call(&a, what, call_send_offsets, false, &msg);
        }
        b->t_offsets = log_now_ms();
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
                        loop_fatal(l, "abort_transaction: %s (%s)", msg, kafka_txn_status_name(st));
                        free(msg);
                        return BATCH_FATAL;
                }
                free(msg);
                rd_kafka_poll(l->producer, 0); /* the purged messages' reports */
                return BATCH_ABORTED;
        default:
                loop_fatal(l, "%s: %s (%s)", *what ? what : "transaction", msg, kafka_txn_status_name(st));
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
        sink_produce(l, b, REC_OUTPUT, REC_REPLAY);
        sink_flush(l);
        b->t_outputs = log_now_ms();
        /* no enterprise record without its replay mark delivered */
        if (l->fatal || c->delivery_errors || c->failed)
                goto failed;
        stage = "changelog";
        sink_produce(l, b, REC_STATE, REC_STATE);
        b->t_records = log_now_ms();
        if (l->fatal || c->failed)
                goto failed;
        sink_flush(l);
        if (l->fatal || c->delivery_errors)
                goto failed;
        if (c->fault_crash_state > 0 && --c->fault_crash_state == 0) {
                log_warning("RISKD_FAULT_CRASH_STATE: dying between the enterprises' records and the partition records");
                raise(SIGKILL);
        }
        stage = "partition records";
        sink_produce(l, b, REC_META, REC_META);
        sink_flush(l);
        b->t_offsets = log_now_ms();
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
/* Wait on the committer's condition (its mutex held) for at most 100 ms:
 * both sides poll something between waits (the producer's callbacks, the
 * watchdog). */
static void committer_wait(Committer *c)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
}

static void *committer_run(void *arg)
{
        Loop *l = arg;
        Committer *c = &l->c;
        int64_t next_flush = log_now_ms() + 1000;
        pthread_mutex_lock(&c->mu);
        for (;;) {
                while (!c->stop && (!c->job || c->done)) {
                        committer_wait(c);
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
                        assert(r == BATCH_COMMITTED || r == BATCH_ABORTED || r == BATCH_FATAL);
                        b->t_done = log_now_ms();
                        pthread_mutex_lock(&c->mu);
                        assert(c->job == b); /* the main loop takes it back only once done */
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

int batch_committer_start(Loop *l)
{
        Committer *c = &l->c;
        c->running = true; /* before its first poll: kafka_error takes its log limit */
        int r = pthread_create(&c->thread, NULL, committer_run, l);
        if (r != 0) {
                c->running = false;
                return -r;
        }
        return 0;
}

/* Ends the thread (after the batch it commits, if any); the producer is
 * the main loop's again. */
void batch_committer_stop(Loop *l)
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

void batch_begin(Loop *l)
{
        assert(!l->open); /* one open batch: the last one was submitted or rolled back */
        if (l->spare) {
                l->open = l->spare;
                l->spare = NULL;
                l->open->t0 = log_now_ms();
        } else
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
                for (uint32_t i = 0; i < loop_ninputs(l); i++) {
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
                rd_kafka_error_t *error = kafka_seek(l->consumer, list, 10000);
                if (error) {
                        loop_fatal(l, "cannot rewind the input: %s", rd_kafka_error_string(error));
                        rd_kafka_error_destroy(error);
                } else
                        for (int i = 0; i < list->cnt; i++)
                                if (list->elems[i].err) {
                                        loop_fatal(l, "cannot rewind %s[%d] to offset %lld: %s", list->elems[i].topic,
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
void batch_inputs_fresh(Loop *l)
{
        for (uint32_t p = 0; p < l->nparts; p++)
                if (l->parts[p])
                        for (uint32_t i = 0; i < loop_ninputs(l); i++)
                                l->parts[p]->in[i].rewound = false;
        l->rewound = false;
}

/* Once a restored Part's inputs are past its replay marks, committed (an
 * abort rewinds to the last commit, and what is read again then is still
 * below them), or it goes: one notice with the expected repeats it
 * skipped. */
void batch_replay_check(Loop *l, Part *pt, bool leaving)
{
        if (!pt->replay_open)
                return;
        for (uint32_t i = 0; i < loop_ninputs(l) && !leaving; i++) {
                const Input *in = &pt->in[i];
                if (in->assigned && in->batch_pos < in->replay_below)
                        return;
        }
        pt->replay_open = false;
        /* nothing below a mark comes any more: the marks and the
         * enterprises ahead of them go */
        engine_replay_over(pt->e);
        free(pt->rs_marks);
        pt->rs_marks = NULL;
        pt->rs_nmarks = pt->rs_cmarks = 0;
        uint64_t n = pt->replayed + (engine_stats(pt->e)->replayed - pt->seen.replayed);
        if (n)
                log_notice("partition %d: %llu event%s read again after the restore %s already in the restored "
                           "state (a crash between its changelog records and its partition record, transactions "
                           "off): skipped and counted in riskd_replayed_total, not dead letters",
                           pt->id, (unsigned long long)n, n == 1 ? "" : "s", n == 1 ? "was" : "were");
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
        assert(b && (b->result == BATCH_COMMITTED || b->result == BATCH_ABORTED || b->result == BATCH_FATAL));
        l->flight = NULL;
        if (b->result == BATCH_COMMITTED) {
                for (uint32_t p = 0; p < l->nparts; p++) {
                        Part *pt = l->parts[p];
                        if (pt && engine_batch_sealed(pt->e))
                                engine_batch_commit(pt->e);
                }
                for (int i = 0; i < b->offsets->cnt; i++) {
                        const rd_kafka_topic_partition_t *o = &b->offsets->elems[i];
                        uint32_t ti = loop_topic_index(l, o->topic);
                        Part *pt = loop_part(l, o->partition);
                        if (ti != UINT32_MAX && pt)
                                pt->in[ti].batch_pos = o->offset;
                }
                for (uint32_t p = 0; p < l->nparts; p++)
                        if (l->parts[p])
                                batch_replay_check(l, l->parts[p], false);
                l->st.batches++;
                prom_add(l->m.committed, 1);
                api_committed(l, b); /* committed: now, never before, on the event stream */
                prom_observe(prom_series(l->m.batch_s, NULL), (double)(b->t_done - b->t0) / 1e3);
                prom_observe(prom_series(l->m.batch_events, NULL), (double)b->events);
                /* the commit's parts: transactions on, the outputs
                 * produced and delivered, the changelog records produced,
                 * the offsets sent, EndTxn (which waits for the records'
                 * delivery); off, the outputs and marks delivered, the
                 * enterprises' records produced, they and the partition
                 * records delivered, the offset commit */
                log_debug("batch committed: %llu events in %lld ms (%lld ms of them committing; processed in %lld "
                          "ms, then %lld ms waiting for the commit before it; the commit: outputs %lld ms, records "
                          "%lld ms, offsets %lld ms, end %lld ms; %u records, %llu bytes)",
                          (unsigned long long)b->events, (long long)(b->t_done - b->t0),
                          (long long)(b->t_done - b->t_start), (long long)(b->t_ready - b->t0),
                          (long long)(b->t_seal - b->t_ready), (long long)(b->t_outputs - b->t_start),
                          (long long)(b->t_records - b->t_outputs), (long long)(b->t_offsets - b->t_records),
                          (long long)(b->t_done - b->t_offsets), b->nrecs, (unsigned long long)b->bytes);
        } else {
                rollback_all(l);
                if (!l->fatal) {
                        l->st.aborts++;
                        prom_add(l->m.aborted, 1);
                        if (rewind)
                                rewind_inputs(l);
                }
        }
        batch_keep(l, b);
        status_regex_errors(l);
}

/* The batch in flight, if its result is in. */
void batch_poll(Loop *l)
{
        Committer *c = &l->c;
        if (!l->flight)
                return;
        pthread_mutex_lock(&c->mu);
        bool done = c->done;
        if (done) {
                assert(c->job == l->flight);
                c->job = NULL;
                c->done = false;
        }
        pthread_mutex_unlock(&c->mu);
        if (done)
                flight_done(l, true);
}

/*
 * Whether the open batch is to be sealed now: at batch_max events or after
 * commit_interval, unless the batch before it is still being committed
 * (group commit).  The open batch then goes on taking events, past
 * batch_max and commit_interval, and is due the moment that commit ends,
 * so that each commit covers whatever arrived during the one before and the
 * engine never waits for the broker; at BATCH_GROW x batch_max events it
 * is due anyway and waits for that commit (the input stops: the memory
 * bound).  Without the committer thread the batch before is committed only
 * when this one is sealed: due at batch_max, as ever.  The same with
 * transactions off: after a crash between a batch's enterprise records
 * and its partition records, an enterprise whose record was written skips
 * every event of that batch read again, however many it got
 * (SourcePos.replay_marks).
 */
bool batch_due(Loop *l, int64_t now)
{
        const Config *cfg = l->cfg;
        if (!l->open)
                return false;
        bool full = l->open->events >= cfg->batch_max;
        if (!full && now - l->open->t0 < cfg->commit_interval_ms)
                return false;
        if (!l->flight)
                return true;
        if (!l->c.running)
                return full;
        batch_poll(l); /* its result may be in */
        if (!l->flight)
                return l->open != NULL; /* NULL: it aborted, the open batch rolled back with it */
        return l->open->events >= (uint64_t)cfg->batch_max * BATCH_GROW;
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
        assert(c->job == l->flight); /* handed over at the seal (the thread runs) */
        while (!c->done) {
                committer_wait(c);
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
 * time; this is where a batch at its cap, batch_due, or one ended by a
 * rebalance, a reload or a stop stops the input), and if that one
 * aborted, this one is rolled back with it and dropped.  Otherwise the
 * Engines seal their batch (its undo kept until the commit ends) and the
 * next batch can begin at once.  false: nothing was handed over.
 */
bool batch_submit(Loop *l, bool rewind)
{
        Batch *b = l->open;
        if (!b)
                return false;
        if (!l->cfg->transactions)
                sink_replay_marks(l);
        sink_changes(l);
        b->offsets = positions(l);
        /* fresh: it carries the group generation (KIP-447 fencing) */
        if (l->cfg->transactions && b->offsets->cnt)
                b->cgmd = rd_kafka_consumer_group_metadata(l->consumer);
        b->t_ready = log_now_ms();
        if (l->flight && !l->fatal) {
                if (!l->c.done && b->events >= (uint64_t)l->cfg->batch_max * BATCH_GROW)
                        log_debug("a batch of %llu events is ready (at its cap, %d x batch_max); it waits for the "
                                  "commit of the one before",
                                  (unsigned long long)b->events, BATCH_GROW);
                else if (!l->c.done)
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
        assert(!l->flight); /* one transaction at a time: the one before ended */
        l->open = NULL;
        l->flight = b;
        b->t_seal = log_now_ms();
        if (l->c.running) {
                pthread_mutex_lock(&l->c.mu);
                assert(!l->c.job && !l->c.done); /* the one before was taken back */
                l->c.job = b;
                l->c.done = false;
                pthread_cond_broadcast(&l->c.cv);
                pthread_mutex_unlock(&l->c.mu);
        }
        status_regex_errors(l);
        loop_budget(l);
        /* an array of messages may hold many batches: ping between them */
        notify_watchdog(log_now_ms());
        return true;
}

/* Ends the open batch and waits for every commit: after it nothing is in
 * flight.  true: everything committed (or there was nothing). */
bool batch_end(Loop *l, BatchEnd how)
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
