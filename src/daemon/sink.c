/*
 * The output sink (loop.c has the map): the Engines' outputs and changelog
 * records kept in the open batch, and produced from it by the committer.
 */
#include "src/daemon/loop_int.h"

/*
 * A batch's outputs and changelog records are not produced as they come:
 * the producer's transaction belongs to the batch being committed, so the
 * open batch keeps its records in memory (Batch) and the committer thread
 * (batch.c) produces them once the transaction before is over.  The bytes
 * live in the batch's arena; a record names them by offset.
 */

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
                            key ? loop_printable(key, klen, kb, sizeof(kb)) : "(none)");
        }
}

static int64_t wall_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The Engine's sink: every output kept in the open batch. */
void sink_emit(void *ud, OutKind kind, const char *data, size_t len, const OutMeta *m)
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
        case OUT_ALERT_STATE:
                topic = l->cfg->topics.alert_states;
                l->st.alert_states++;
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

/* engine_batch_enterprises' sink: the enterprise's document to the
 * enterprises topic, in the partition of its input (l->cl_part), with the
 * outputs: in the batch's transaction, before the changelog records. */
static void enterprise_doc(void *ud, const char *key, size_t klen, const void *val, size_t vlen)
{
        Loop *l = ud;
        rec_add(l->open, REC_OUTPUT, l->cfg->topics.enterprises, l->cl_part->id, key, klen, val, vlen, NULL);
}

/* Every touched Engine's records; with several input topics, the offsets
 * record after each Engine's. */
void sink_changes(Loop *l)
{
        for (uint32_t p = 0; p < l->nparts; p++) {
                Part *pt = l->parts[p];
                if (!pt || !pt->in_batch)
                        continue;
                l->cl_part = pt;
                if (l->cfg->topics.enterprises[0])
                        engine_batch_enterprises(pt->e, enterprise_doc, l);
                engine_batch_changes(pt->e, pt->in[0].pos, changelog_record, l);
                if (loop_ninputs(l) > 1) {
                        Buf b = {0};
                        for (uint32_t i = 0; i < loop_ninputs(l); i++)
                                buf_printf(&b, "%s %lld\n", l->cfg->input_topics[i], (long long)pt->in[i].pos);
                        changelog_record(l, OFFSETS_KEY, strlen(OFFSETS_KEY), b.p, b.len);
                        buf_free(&b);
                }
        }
        l->cl_part = NULL;
}

/* Transactions off: each touched Part's REPLAY_KEY record, delivered with
 * the outputs, before any enterprise record of the batch.  Never below a
 * restored mark: records of the crashed run may still reach that far.
 * Where the batch itself ends below it (a batch after a restore that ended
 * before the mark), a "+topic offset" line says so: the records of the
 * enterprises this batch applied events to hold only that far
 * (SourcePos.replay_marks; a topic name holds no '+', so a reader that
 * does not know these lines skips them). */
void sink_replay_marks(Loop *l)
{
        for (uint32_t p = 0; p < l->nparts; p++) {
                Part *pt = l->parts[p];
                if (!pt || !pt->in_batch)
                        continue;
                Buf b = {0};
                for (uint32_t i = 0; i < loop_ninputs(l); i++) {
                        const Input *in = &pt->in[i];
                        int64_t mark = in->pos > in->replay_below ? in->pos : in->replay_below;
                        buf_printf(&b, "%s %lld\n", l->cfg->input_topics[i], (long long)mark);
                        if (mark != in->pos)
                                buf_printf(&b, "+%s %lld\n", l->cfg->input_topics[i], (long long)in->pos);
                }
                rec_add(l->open, REC_REPLAY, l->cfg->topics.changelog, pt->id, REPLAY_KEY, strlen(REPLAY_KEY), b.p,
                        b.len, NULL);
                buf_free(&b);
        }
}

/* ---- producing (on the committer thread) ---- */

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
                loop_fatal(l, "producer: %s", why ? why : rd_kafka_err2str(err));
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
        /* the bytes are in the batch's arena */
        assert(!r->has_key || r->key + r->klen <= b->arena.len);
        assert(!r->has_val || r->val + r->vlen <= b->arena.len);
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
                loop_fatal(l, "a changelog record of %zu bytes is too large for %s (raise its max.message.bytes and "
                      "the producer's message.max.bytes)", r->vlen, r->topic);
                break;
        }
}

/* The batch's records of the kinds in [from, to], in order. */
void sink_produce(Loop *l, Batch *b, RecKind from, RecKind to)
{
        for (uint32_t i = 0; i < b->nrecs && !l->c.failed && !l->fatal; i++)
                if (b->recs[i].kind >= from && b->recs[i].kind <= to)
                        produce_rec(l, b, &b->recs[i]);
}

/* Waits until every record produced so far is delivered or failed. */
void sink_flush(Loop *l)
{
        while (rd_kafka_outq_len(l->producer) > 0 && !l->fatal)
                rd_kafka_flush(l->producer, 500);
}
