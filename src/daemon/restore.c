/*
 * Restore and the assignment (loop.c has the map).
 */
#include "src/daemon/loop_int.h"

/* ---- restore ---- */

void restore_part_free(Loop *l, Part *pt)
{
        status_fold(l, pt);
        batch_replay_check(l, pt, true);
        assert(pt->state == PART_ACTIVE || l->nrestoring > 0);
        if (pt->state != PART_ACTIVE)
                l->nrestoring--;
        if (pt->state == PART_RESTORING)
                changelog_reader_stop(l->reader, pt->id);
        engine_free(pt->e);
        free(pt->in);
        free(pt->rs_offsets);
        free(pt->rs_replay);
        free(pt->rs_marks);
        l->parts[pt->id] = NULL;
        free(pt);
}

static Part *part_new(Loop *l, int32_t p)
{
        Engine *e = NULL;
        int r = engine_new(&e, l->rs, &l->ecfg, sink_emit, l);
        if (r < 0) {
                loop_fatal(l, "cannot create the engine of partition %d: %s", p, strerror(-r));
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
        pt->in = xcalloc(loop_ninputs(l), sizeof(Input));
        pt->rs_offsets = xmalloc(loop_ninputs(l) * sizeof(int64_t));
        pt->rs_replay = xmalloc(loop_ninputs(l) * sizeof(int64_t));
        for (uint32_t i = 0; i < loop_ninputs(l); i++) {
                pt->in[i].pos = pt->in[i].batch_pos = -1;
                pt->in[i].refetch = -1;
                pt->in[i].replay_below = -1;
                pt->rs_offsets[i] = -1;
                pt->rs_replay[i] = -1;
        }
        pt->rs_t0 = log_now_ms();
        l->parts[p] = pt;
        l->nrestoring++;
        loop_budget(l); /* its share before its restore */
        return pt;
}

static void restore_done(Loop *l, Part *pt, int64_t position)
{
        assert(pt->state != PART_ACTIVE && l->nrestoring > 0); /* counted in nrestoring until now */
        int64_t resume = engine_restore_finish(pt->e);
        rd_kafka_topic_partition_list_t *seek = rd_kafka_topic_partition_list_new(4);
        rd_kafka_topic_partition_list_t *all = rd_kafka_topic_partition_list_new(4);
        Buf at = {0};
        for (uint32_t i = 0; i < loop_ninputs(l); i++) {
                Input *in = &pt->in[i];
                if (!in->assigned)
                        continue;
                int64_t r = loop_ninputs(l) > 1 && pt->rs_offsets[i] >= 0 ? pt->rs_offsets[i] : i == 0 ? resume : -1;
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
                rd_kafka_error_t *error = kafka_seek(l->consumer, seek, 10000);
                for (int i = 0; i < (error ? 1 : seek->cnt); i++) {
                        rd_kafka_resp_err_t err = error ? rd_kafka_error_code(error) : seek->elems[i].err;
                        if (!err)
                                continue;
                        if (err == RD_KAFKA_RESP_ERR__STATE || err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION) {
                                /* not being fetched at all (loop_reassign): assigned again at r */
                                log_warning("partition %d: cannot seek to the restored offset (%s): not being "
                                            "fetched",
                                            pt->id, error ? rd_kafka_error_string(error) : rd_kafka_err2str(err));
                                l->reassign_due = true;
                        } else if (error)
                                loop_fatal(l, "partition %d: cannot seek to the restored offset: %s", pt->id,
                                           rd_kafka_error_string(error));
                        else
                                loop_fatal(l, "partition %d: cannot seek %s to offset %lld: %s", pt->id,
                                           seek->elems[i].topic, (long long)seek->elems[i].offset,
                                           rd_kafka_err2str(err));
                }
                if (error)
                        rd_kafka_error_destroy(error);
        }
        if (!l->fatal) {
                rd_kafka_resp_err_t err = rd_kafka_resume_partitions(l->consumer, all);
                if (err)
                        loop_fatal(l, "partition %d: cannot resume: %s", pt->id, rd_kafka_err2str(err));
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

/* "topic offset" lines into out by input; with pos, "+topic offset"
 * lines (a replay mark's own position, sink_replay_marks) into pos. */
static void restore_offsets(Loop *l, int64_t *out, int64_t *pos, const char *v, size_t n)
{
        char *text = xstrndup(v, n);
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *sp = strrchr(line, ' ');
                if (!sp)
                        continue;
                *sp = 0;
                int64_t *to = pos && line[0] == '+' ? pos : out;
                uint32_t i = loop_topic_index(l, to == pos ? line + 1 : line);
                if (i != UINT32_MAX)
                        to[i] = strtoll(sp + 1, NULL, 10);
        }
        free(text);
}

/* A replay mark (transactions off): where the expected repeats end, and
 * the offsets the records after it, up to the next partition record,
 * hold (its "+" lines where they differ: sink_replay_marks).  Kept in log
 * order for SourcePos.replay_marks, as many as the engine tells apart. */
static void restore_mark(Loop *l, Part *pt, const char *v, size_t n)
{
        uint32_t ni = loop_ninputs(l);
        int64_t *m = xmalloc(2 * ni * sizeof(int64_t)), *pos = m + ni;
        for (uint32_t i = 0; i < 2 * ni; i++)
                m[i] = INT64_MIN;
        restore_offsets(l, m, pos, v, n);
        for (uint32_t i = 0; i < ni; i++) {
                if (m[i] != INT64_MIN)
                        pt->rs_replay[i] = m[i];
                else
                        m[i] = -1;
                if (pos[i] == INT64_MIN)
                        pos[i] = m[i];
        }
        engine_restore_mark(pt->e);
        if (pt->rs_nmarks < 64) {
                pt->rs_marks = xgrow(pt->rs_marks, &pt->rs_cmarks, (pt->rs_nmarks + 1) * ni, sizeof(int64_t));
                memcpy(pt->rs_marks + (size_t)pt->rs_nmarks * ni, pos, ni * sizeof(int64_t));
        }
        pt->rs_nmarks++; /* past 64: that mark's bit is never set, the engine keeps no record after it */
        free(m);
}

uint64_t restore_replay_marks(Loop *l, const Part *pt, uint32_t ti, int64_t offset)
{
        uint32_t ni = loop_ninputs(l), n = pt->rs_nmarks < 64 ? pt->rs_nmarks : 64;
        uint64_t bits = 0;
        for (uint32_t k = 0; k < n; k++)
                if (offset < pt->rs_marks[(size_t)k * ni + ti])
                        bits |= 1ull << k;
        return bits;
}

/* A changelog record's key is the reserved name (not an enterprise's). */
static bool key_is(const void *key, size_t klen, const char *name)
{
        return key && klen == strlen(name) && memcmp(key, name, klen) == 0;
}

static void restore_record(void *ud, int32_t p, int64_t offset, const void *key, size_t klen, const void *val,
                           size_t vlen)
{
        Loop *l = ud;
        Part *pt = loop_part(l, p);
        if (!pt || pt->state != PART_RESTORING)
                return;
        pt->rs_records++;
        int r = -EINVAL;
        if (key_is(key, klen, OFFSETS_KEY)) {
                restore_offsets(l, pt->rs_offsets, NULL, val, vlen);
                return;
        }
        if (key_is(key, klen, REPLAY_KEY)) {
                restore_mark(l, pt, val, vlen);
                return;
        }
        if (key_is(key, klen, ENGINE_META_KEY))
                pt->rs_nmarks = 0; /* the engine forgets the enterprises ahead too */
        if (key)
                r = engine_restore_record(pt->e, key, klen, val ? val : "", val ? vlen : 0);
        if (r < 0) {
                pt->rs_bad++;
                prom_add(prom_series1(l->m.restore_refused, r == -ENOSPC ? "over_limit" : "decode"), 1);
                if (log_limit_pass(&l->ll_restore, LOG_PRIO_WARNING, "changelog records skipped")) {
                        char kb[80];
                        log_warning("changelog %s[%d] offset %lld, key %s: skipped (%s)", l->cfg->topics.changelog, p,
                                    (long long)offset, key ? loop_printable(key, klen, kb, sizeof(kb)) : "(none)",
                                    r == -ENOSPC ? "limits.max_enterprises or limits.max_state_bytes reached"
                                                 : "refused: does not decode or holds a value out of bounds; the "
                                                   "enterprise keeps what came before the fault");
                }
        }
}

static void restore_done_cb(void *ud, int32_t p, int64_t position)
{
        Loop *l = ud;
        Part *pt = loop_part(l, p);
        if (pt && pt->state == PART_RESTORING)
                restore_done(l, pt, position);
}

static void restore_error(void *ud, int32_t p, const char *msg)
{
        Loop *l = ud;
        if (log_limit_pass(&l->ll_restore, LOG_PRIO_WARNING, "changelog read errors"))
                log_warning("reading %s[%d]: %s", l->cfg->topics.changelog, p, msg);
}

/* The changelog cannot be read yet (msg, freed): try again in a second. */
static void restore_retry(Loop *l, Part *pt, int64_t now, char *msg)
{
        if (log_limit_pass(&l->ll_restore, LOG_PRIO_WARNING, "restore retries"))
                log_warning("partition %d: restore waits: %s", pt->id, msg);
        free(msg);
        pt->rs_retry_at = now + 1000;
}

static void restore_start(Loop *l, Part *pt)
{
        int64_t now = log_now_ms();
        char *msg = NULL;
        if (l->changelog_partitions <= pt->id) { /* not known yet, or grown */
                int32_t n = 0;
                int r = changelog_reader_partitions(l->reader, 5000, &n, &msg);
                if (r == -ENOENT) {
                        loop_fatal(l, "%s (create it, compacted, with as many partitions as the input topics)", msg);
                        free(msg);
                        return;
                }
                if (r < 0) {
                        restore_retry(l, pt, now, msg);
                        return;
                }
                l->changelog_partitions = n;
                if (n <= pt->id) {
                        loop_fatal(l, "changelog topic %s has %d partitions: input partition %d has none (give it as many "
                              "partitions as the input topics)",
                              l->cfg->topics.changelog, n, pt->id);
                        return;
                }
        }
        int64_t end = -1;
        int r = changelog_reader_start(l->reader, pt->id, 5000, &end, &msg);
        if (r < 0) {
                restore_retry(l, pt, now, msg);
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
bool restore_poll(Loop *l)
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

/* RISKD_FAULT_UNFETCHED=P (tests): the state a lost fetch start leaves
 * (loop_reassign): P stays assigned for riskd, but librdkafka, assigned
 * everything else again, no longer fetches it. */
static void fault_unfetched(Loop *l, rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *parts)
{
        rd_kafka_topic_partition_list_t *rest = rd_kafka_topic_partition_list_new(parts->cnt);
        for (int i = 0; i < parts->cnt; i++)
                if (parts->elems[i].partition != l->fault_unfetched)
                        rd_kafka_topic_partition_list_add(rest, parts->elems[i].topic, parts->elems[i].partition);
        if (rest->cnt < parts->cnt) {
                log_warning("RISKD_FAULT_UNFETCHED: partition %d assigned but not fetched", l->fault_unfetched);
                rd_kafka_assign(rk, rest);
                rd_kafka_pause_partitions(rk, rest);
        }
        rd_kafka_topic_partition_list_destroy(rest);
}

/* librdkafka 2.0.2 can lose the start of a partition's fetch when a pause
 * follows its assign closely (librdkafka issue 2190: the pause's version
 * barrier outdates the fetch start), as on_assign pauses what it assigns:
 * the partition stays assigned and is never fetched, and a seek of it
 * fails (Local: Erroneous state), which the stall watch sees.  With the
 * eager protocol the one way back is to assign the whole assignment again:
 * each active input at riskd's position (at its committed offset while
 * riskd has applied none of it), inputs still restoring at their committed
 * offset and paused again, as on_assign leaves them.  Records fetched but
 * not yet taken are dropped by the assign and fetched again from there. */
void loop_reassign(Loop *l)
{
        l->reassign_due = false;
        /* what riskd holds assigned (the group's assignment, as on_assign
         * and on_revoke left it) */
        rd_kafka_topic_partition_list_t *cur = rd_kafka_topic_partition_list_new((int)l->nparts);
        for (uint32_t p = 0; p < l->nparts; p++)
                for (uint32_t i = 0; l->parts[p] && i < loop_ninputs(l); i++)
                        if (l->parts[p]->in[i].assigned)
                                rd_kafka_topic_partition_list_add(cur, l->cfg->input_topics[i], l->parts[p]->id);
        rd_kafka_topic_partition_list_t *paused = rd_kafka_topic_partition_list_new(cur->cnt);
        for (int i = 0; i < cur->cnt; i++) {
                rd_kafka_topic_partition_t *tp = &cur->elems[i];
                uint32_t ti = loop_topic_index(l, tp->topic);
                Part *pt = ti == UINT32_MAX ? NULL : loop_part(l, tp->partition);
                tp->offset = RD_KAFKA_OFFSET_INVALID; /* the committed offset */
                if (pt && pt->state != PART_ACTIVE)
                        rd_kafka_topic_partition_list_add(paused, tp->topic, tp->partition);
                else if (pt && pt->in[ti].pos >= 0)
                        tp->offset = pt->in[ti].pos;
                if (pt)
                        pt->in[ti].idle_since = log_now_ms();
        }
        log_warning("an assigned partition is not being fetched (librdkafka lost its fetch start): assigning "
                    "the %d partitions again, each at riskd's position",
                    cur->cnt);
        rd_kafka_resp_err_t err = rd_kafka_assign(l->consumer, cur);
        if (err)
                loop_fatal(l, "assign: %s", rd_kafka_err2str(err));
        else if (paused->cnt)
                rd_kafka_pause_partitions(l->consumer, paused);
        rd_kafka_topic_partition_list_destroy(paused);
        rd_kafka_topic_partition_list_destroy(cur);
}

static void on_assign(Loop *l, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts)
{
        l->assigned_once = true;
        rd_kafka_resp_err_t err = rd_kafka_assign(rk, parts);
        if (err) {
                loop_fatal(l, "assign: %s", rd_kafka_err2str(err));
                return;
        }
        /* nothing is processed before the partition's state is restored */
        rd_kafka_pause_partitions(rk, parts);
        if (l->fault_unfetched >= 0)
                fault_unfetched(l, rk, parts);
        for (int i = 0; i < parts->cnt && !l->fatal; i++) {
                uint32_t ti = loop_topic_index(l, parts->elems[i].topic);
                if (ti == UINT32_MAX) {
                        log_warning("assigned %s[%d], which is not an input topic; ignored", parts->elems[i].topic,
                                    parts->elems[i].partition);
                        continue;
                }
                int32_t p = parts->elems[i].partition;
                Part *pt = loop_part(l, p);
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
                uint32_t ti = loop_topic_index(l, parts->elems[i].topic);
                Part *pt = loop_part(l, parts->elems[i].partition);
                if (ti == UINT32_MAX || !pt)
                        continue;
                pt->in[ti].assigned = false;
                bool any = false;
                for (uint32_t k = 0; k < loop_ninputs(l); k++)
                        any |= pt->in[k].assigned;
                if (!any)
                        restore_part_free(l, pt);
        }
        if (!parts) /* everything */
                for (uint32_t p = 0; p < l->nparts; p++)
                        if (l->parts[p])
                                restore_part_free(l, l->parts[p]);
        rd_kafka_assign(rk, NULL);
}

/* Eager (range): every rebalance revokes everything, then assigns. */
void restore_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
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
