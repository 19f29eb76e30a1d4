/*
 * The daemon's main loop (loop.h), the recipe of kafka.md §5 for
 * librdkafka 2.0.2, in five parts:
 *
 *   loop.c     the poll loop: the Kafka clients, taking arrays of messages
 *              from the consumer and pushing each to its partition's
 *              Engine, the ticks (status, stall watch), start and stop;
 *   restore.c  restore and the assignment: the eager rebalance callback
 *              assigns and at once pauses the partitions; each input
 *              partition number p gets a Part with a fresh Engine, restored
 *              from changelog partition p (all records, in log order, up to
 *              the end at the start) while the main loop keeps polling the
 *              group consumer; then each input is sought to the offset the
 *              state reflects (the changelog's partition record; none: the
 *              committed offset, or the beginning) and resumed; a revoke
 *              ends the batches (the open one aborted when the assignment
 *              was lost) and frees the Parts;
 *   batch.c    the batch and its transaction: the first event after a seal
 *              begins a batch; after batch_max events or commit_interval it
 *              is sealed (each touched Engine's changelog records taken,
 *              the positions of every assigned input) and handed to the
 *              committer thread, which produces its outputs (flushed:
 *              delivered before the state that reflects them), its
 *              changelog records (explicit partition = the input partition)
 *              and its offsets in one transaction and commits it, while the
 *              main loop goes on with the next batch (its records kept in
 *              memory: one transaction at a time; group commit, with
 *              transactions on: it grows past batch_max while that commit
 *              is in flight, up to BATCH_GROW x batch_max, and is sealed as
 *              soon as the commit ends, batch_due); committed, the Engines
 *              drop the sealed batch's undo; an abortable error aborts the
 *              transaction, every Engine rolls back to the last commit (the
 *              next batch's work included) and every input is sought back
 *              there (the loop's own record: the mock cluster discards
 *              transactional offset commits, so rd_kafka_committed cannot
 *              be trusted); retriable errors are retried; fatal ones
 *              (fenced) end the loop with exit status 1;
 *   sink.c     the output sink: the Engines' outputs and records kept in
 *              the open batch (alerts, shadow alerts, adjustments, alert
 *              states keyed by enterprise, dead letters with the original bytes and key and
 *              riskd.* headers), produced by the committer;
 *   status.c   status: the metrics and the HTTP routes;
 *   reload.c   the rules reloaded (compiled on a worker thread, applied
 *              between two batches, none in flight).
 *
 * With transactions off the producer is idempotent and a batch ends with:
 * outputs and the replay marks (REPLAY_KEY) delivered, then the
 * enterprises' changelog records, then the partition records (the resume
 * offsets), then a plain offset commit; a crash anywhere repeats work whose
 * outputs carry the same ids (effectively-once), and the events a restored
 * state already holds (below the replay mark) are counted, not dead letters.
 * The committer runs these steps as well, the next batch processed meanwhile.
 *
 * Invariants: a message is processed only for a Part in PART_ACTIVE whose
 * input is assigned, and only when its offset is at or past the input's
 * position (a message left over from before a seek is dropped); every
 * message polled is destroyed in the same iteration; every Engine touched
 * in a batch is committed or rolled back when the batch ends, and at most
 * two batches are uncommitted (one in flight, one open); a rebalance, a
 * reload and a stop wait for the one in flight.  The committer thread
 * touches only its Batch, the producer (which it alone polls while it
 * runs), its Committer fields and Loop.fatal.
 *
 * With several input topics, partition p of each is one Part (one Engine:
 * the topics are co-partitioned by enterprise id); the Engine's partition
 * record carries the first topic's offset and an extra record
 * (OFFSETS_KEY) carries every topic's.
 */
#include "src/daemon/loop_int.h"

volatile sig_atomic_t daemon_stop;
volatile sig_atomic_t daemon_hup;

void loop_fatal(Loop *l, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_err("%s; exiting (a restart restores the committed state)", msg);
        l->fatal = true;
}

uint32_t loop_ninputs(const Loop *l)
{
        return l->cfg->ninput_topics;
}

uint32_t loop_topic_index(const Loop *l, const char *name)
{
        for (uint32_t i = 0; i < loop_ninputs(l); i++)
                if (strcmp(l->cfg->input_topics[i], name) == 0)
                        return i;
        return UINT32_MAX;
}

Part *loop_part(const Loop *l, int32_t p)
{
        return p >= 0 && (uint32_t)p < l->nparts ? l->parts[p] : NULL;
}

/* The text of a key or an enterprise id for a log line: loop_printable, short. */
const char *loop_printable(const void *s, size_t n, char *buf, size_t size)
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
                loop_fatal(l, "kafka %s: fatal error: %s", rd_kafka_name(rk), why ? why : reason);
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
                        loop_fatal(l, "consumer: %s", why ? why : rd_kafka_message_errstr(m));
                        free(why);
                        return;
                }
                if (log_limit_pass(&l->ll_consume, LOG_PRIO_WARNING, "consumer errors"))
                        log_warning("consumer: %s%s%s", m->rkt ? rd_kafka_topic_name(m->rkt) : "", m->rkt ? ": " : "",
                                    rd_kafka_message_errstr(m));
                return;
        }
        uint32_t ti = loop_topic_index(l, rd_kafka_topic_name(m->rkt));
        Part *pt = loop_part(l, m->partition);
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
        if (src.replay)
                src.replay_marks = restore_replay_marks(l, pt, ti, m->offset);
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
        Part *pt = loop_part(l, m->partition);
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

uint32_t loop_parts_active(const Loop *l)
{
        uint32_t n = 0;
        for (uint32_t p = 0; p < l->nparts; p++)
                n += l->parts[p] && l->parts[p]->state == PART_ACTIVE;
        return n;
}

/* READY=1 once the first assignment is restored; STATUS= every tick. */
void loop_notify(Loop *l)
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
                              l->nrestoring == 1 ? "" : "s", l->cfg->topics.changelog, loop_parts_active(l));
                return;
        }
        uint32_t active = loop_parts_active(l);
        if (l->reload_job) { /* RELOADING=1 until it ends */
                notify_status("reloading the rules (compiling in the background); %u partition%s; %llu events",
                              active, active == 1 ? "" : "s", (unsigned long long)s->events);
                return;
        }
        if (!notify_is_ready())
                log_notice("ready: %u partition%s restored", active, active == 1 ? "" : "s");
        char bs[96];
        budget_status(&l->budget, bs, sizeof(bs));
        notify_ready("%u partition%s; %llu events, %llu alerts, %llu adjustments, %llu dead letters; %llu "
                     "transactions committed, %llu aborted%s",
                     active, active == 1 ? "" : "s", (unsigned long long)s->events, (unsigned long long)s->alerts,
                     (unsigned long long)s->adjustments, (unsigned long long)s->deadletters,
                     (unsigned long long)s->batches, (unsigned long long)s->aborts, bs);
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
                for (uint32_t i = 0; i < loop_ninputs(l) && !l->fatal; i++) {
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
                        rd_kafka_error_t *error = kafka_seek(l->consumer, one, 10000);
                        rd_kafka_resp_err_t err = error ? rd_kafka_error_code(error) : one->elems[0].err;
                        if (err)
                                log_warning("%s[%d]: cannot seek to %lld: %s", topic, pt->id, (long long)at,
                                            error ? rd_kafka_error_string(error) : rd_kafka_err2str(err));
                        if (error)
                                rd_kafka_error_destroy(error);
                        rd_kafka_topic_partition_list_destroy(one);
                        /* not being fetched at all: only an assign starts it again */
                        if (err == RD_KAFKA_RESP_ERR__STATE || err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
                                l->reassign_due = true;
                }
        }
}

void loop_budget(Loop *l)
{
        Engine **v = budget_engines(&l->budget, l->nparts);
        uint32_t n = 0;
        for (uint32_t p = 0; p < l->nparts; p++)
                if (l->parts[p])
                        v[n++] = l->parts[p]->e;
        budget_tick(&l->budget, v, n);
}

static void loop_tick(Loop *l, int64_t now)
{
        stall_watch(l, now);
        if (l->reassign_due && !l->fatal)
                loop_reassign(l);
        loop_budget(l);
        loop_notify(l);
        log_limit_flush(&l->ll_dlq, LOG_PRIO_WARNING, "dead letters");
        log_limit_flush(&l->ll_consume, LOG_PRIO_WARNING, "consumer errors");
        log_limit_flush(&l->ll_kafka, LOG_PRIO_WARNING, "kafka errors");
        log_limit_flush(&l->ll_restore, LOG_PRIO_WARNING, "changelog problems");
        log_limit_flush(&l->ll_stall, LOG_PRIO_WARNING, "fetch stalls");
        if (now >= l->next_stats) {
                const LoopStats *s = &l->st, *o = &l->st_last;
                if (s->events != o->events || s->aborts != o->aborts || s->restores != o->restores) {
                        uint32_t active = loop_parts_active(l);
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
        api_pump(l);
        l->next_tick = now + 1000;
}

void loop_wake(void *ud)
{
        Loop *l = ud;
        rd_kafka_queue_yield(l->queue);
}

int loop_new(Loop **ret, const Config *cfg, RuleSet *rs)
{
        Loop *l = xcalloc(1, sizeof(*l));
        const char *fs = getenv("RISKD_FAULT_STALL");
        l->fault_stall = fs && *fs ? (int32_t)atoi(fs) : -1;
        const char *fu = getenv("RISKD_FAULT_UNFETCHED");
        l->fault_unfetched = fu && *fu ? (int32_t)atoi(fu) : -1;
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
        /* kept in every profile for the query API (they change no output) */
        l->ecfg.region_field = cfg->http_region_field[0] ? cfg->http_region_field : NULL;
        l->ecfg.category_field = cfg->http_category_field[0] ? cfg->http_category_field : NULL;
        l->changelog_partitions = -1;
        status_init(l);
        notify_register(l->m.p);
        api_init(l);
        budget_init(&l->budget, cfg->limits.max_state_bytes, cfg->limits.max_state_bytes_from, l->m.p);
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
        if (kafka_consumer_new(&l->consumer, &l->ks, cfg->group_id, restore_rebalance, &msg) < 0) {
                log_err("cannot create the consumer: %s", msg);
                goto fail;
        }
        if (kafka_producer_new(&l->producer, &l->ks, cfg->transactions ? cfg->transactional_id : NULL,
                               kafka_delivery, &msg) < 0) {
                log_err("cannot create the producer: %s", msg);
                goto fail;
        }
        const char *outs[] = {cfg->topics.alerts, cfg->topics.shadow, cfg->topics.adjustments,
                              cfg->topics.dead_letters, cfg->topics.changelog, cfg->topics.alert_states,
                              cfg->topics.enterprises[0] ? cfg->topics.enterprises : NULL, NULL};
        kafka_producer_topics(l->producer, outs);
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
                if (httpd_new(&l->http, cfg->http_listen, &ho, status_http, loop_wake, l, &msg) < 0) {
                        log_err("cannot start the HTTP endpoint: %s", msg);
                        goto fail;
                }
                log_notice("http: listening on %s (port %u): /metrics /healthz /readyz /v1/rules "
                           "/v1/enterprises /v1/enterprises/{id} /v1/summary /v1/alerts /v1/events%s",
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
        batch_committer_stop(l);
        l->flight = batch_free(l->flight);
        l->open = batch_free(l->open);
        l->spare = batch_free(l->spare);
        reload_waiters_drop(l);
        free(l->reload_waiters);
        api_free(l); /* its streams end before the server */
        httpd_free(l->http);
        for (uint32_t p = 0; p < l->nparts; p++)
                if (l->parts[p])
                        restore_part_free(l, l->parts[p]);
        free(l->parts);
        budget_deinit(&l->budget);
        notify_register(NULL);
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
        api_close_streams(l);
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
        batch_committer_stop(l); /* the producer is the main loop's again */
        if (!l->fatal) {
                sink_flush(l);
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
        rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new((int)loop_ninputs(l));
        for (uint32_t i = 0; i < loop_ninputs(l); i++)
                rd_kafka_topic_partition_list_add(topics, cfg->input_topics[i], RD_KAFKA_PARTITION_UA);
        Buf in = {0};
        for (uint32_t i = 0; i < loop_ninputs(l); i++)
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
        int r = batch_committer_start(l);
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
                batch_poll(l);
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
                /* a batch due while the one before is still in flight goes
                 * on taking events (batch_due): the commit is not waited
                 * for before it must be */
                if (batch_due(l, now)) {
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
                        batch_inputs_fresh(l);
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
                                if (l->open && l->open->events >= cfg->batch_max && batch_due(l, now))
                                        batch_submit(l, true);
                        }
                        rd_kafka_message_destroy(l->msgs[i]);
                }
                if (n > 0)
                        loop_hints_reset(l);
                if (l->http) {
                        httpd_dispatch(l->http);
                        api_pump(l);
                }
                if (n < 0 && log_limit_pass(&l->ll_consume, LOG_PRIO_WARNING, "consumer errors"))
                        log_warning("consume: %s", rd_kafka_err2str(rd_kafka_last_error()));
        }
        return loop_shutdown(l);
}
