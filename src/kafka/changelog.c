/*
 * The changelog reader: reads changelog partitions from the beginning to
 * their end, for the restore of an input partition's state (kafka.md §5
 * step 5, Kafka Streams' StoreChangelogReader).
 *
 * It is not a group member: librdkafka's assign() needs a group, so it uses
 * the simple consumer API (consume_start on one queue), read_committed.  The
 * end is the log end offset seen by a second, read_uncommitted handle:
 * a read_committed ListOffsets answers the last stable offset, which an
 * open transaction holds back (KAFKA-10167).  A partition is done when its
 * position reaches that end; the offset of its last record may be lower,
 * since transaction markers take offsets, so the position is the greater
 * of the last record's offset + 1, rd_kafka_position() and the offset of
 * the end-of-partition event.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "include/riskd/util.h"
#include "src/kafka/kafka.h"

typedef struct ReaderPart {
        bool started;            /* consume_start called, not stopped */
        int64_t end;             /* log end offset at start */
        int64_t pos;             /* position: next offset to read */
} ReaderPart;

struct ChangelogReader {
        rd_kafka_t *rk;          /* read_committed, reads the records */
        rd_kafka_t *wm;          /* read_uncommitted, answers the log end offset */
        rd_kafka_topic_t *rkt;
        rd_kafka_queue_t *q;
        char *topic;
        ReaderPart *parts;
        uint32_t nparts;
};

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int changelog_reader_new(ChangelogReader **ret, const KafkaSettings *s, const char *topic, char **ret_msg)
{
        ChangelogReader *r = xcalloc(1, sizeof(*r));
        r->topic = xstrdup(topic);
        rd_kafka_conf_t *conf = kafka_conf_reader(s, "read_committed", ret_msg);
        if (!conf || kafka_handle_new(&r->rk, RD_KAFKA_CONSUMER, conf, ret_msg) < 0)
                goto fail;
        /* conf is now owned by r->rk */
        conf = kafka_conf_reader(s, "read_uncommitted", ret_msg);
        if (!conf || kafka_handle_new(&r->wm, RD_KAFKA_CONSUMER, conf, ret_msg) < 0)
                goto fail;
        r->rkt = rd_kafka_topic_new(r->rk, topic, NULL);
        if (!r->rkt) {
                *ret_msg = xasprintf("changelog topic %s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
                goto fail;
        }
        r->q = rd_kafka_queue_new(r->rk);
        *ret = r;
        return 0;
fail:
        changelog_reader_free(r);
        return -EINVAL;
}

ChangelogReader *changelog_reader_free(ChangelogReader *r)
{
        if (!r)
                return NULL;
        for (uint32_t p = 0; p < r->nparts; p++)
                changelog_reader_stop(r, (int32_t)p);
        if (r->q)
                rd_kafka_queue_destroy(r->q);
        if (r->rkt)
                rd_kafka_topic_destroy(r->rkt);
        if (r->rk)
                rd_kafka_destroy(r->rk);
        if (r->wm)
                rd_kafka_destroy(r->wm);
        free(r->parts);
        free(r->topic);
        free(r);
        return NULL;
}

int changelog_reader_partitions(ChangelogReader *r, int timeout_ms, int32_t *ret, char **ret_msg)
{
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(r->rk, 0, r->rkt, &md, timeout_ms);
        if (err) {
                *ret_msg = xasprintf("metadata of %s: %s", r->topic, rd_kafka_err2str(err));
                return -EIO;
        }
        int rc = 0;
        if (md->topic_cnt != 1 || md->topics[0].err) {
                *ret_msg = xasprintf("changelog topic %s: %s", r->topic,
                                     rd_kafka_err2str(md->topic_cnt ? md->topics[0].err
                                                                     : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART));
                rc = -ENOENT;
        } else
                *ret = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
        return rc;
}

static ReaderPart *part_get(ChangelogReader *r, int32_t p, bool create)
{
        if (p < 0)
                return NULL;
        if ((uint32_t)p >= r->nparts) {
                if (!create)
                        return NULL;
                uint32_t n = (uint32_t)p + 1;
                r->parts = xrealloc(r->parts, n * sizeof(ReaderPart));
                memset(r->parts + r->nparts, 0, (n - r->nparts) * sizeof(ReaderPart));
                r->nparts = n;
        }
        return &r->parts[p];
}

int changelog_reader_start(ChangelogReader *r, int32_t p, int timeout_ms, int64_t *ret_end, char **ret_msg)
{
        ReaderPart *rp = part_get(r, p, true);
        changelog_reader_stop(r, p);
        int64_t lo = -1, hi = -1;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(r->wm, r->topic, p, &lo, &hi, timeout_ms);
        if (err) {
                *ret_msg = xasprintf("end offset of %s[%d]: %s", r->topic, p, rd_kafka_err2str(err));
                return -EIO;
        }
        *ret_end = hi;
        if (hi <= lo)
                return 1;
        if (rd_kafka_consume_start_queue(r->rkt, p, RD_KAFKA_OFFSET_BEGINNING, r->q) < 0) {
                *ret_msg = xasprintf("reading %s[%d]: %s", r->topic, p, rd_kafka_err2str(rd_kafka_last_error()));
                return -EIO;
        }
        rp->started = true;
        rp->end = hi;
        rp->pos = lo;
        return 0;
}

void changelog_reader_stop(ChangelogReader *r, int32_t p)
{
        ReaderPart *rp = part_get(r, p, false);
        if (!rp || !rp->started)
                return;
        rd_kafka_consume_stop(r->rkt, p);
        rp->started = false;
}

/* One message of the queue: a record passed on, or a partition's end. */
static int reader_message(ChangelogReader *r, rd_kafka_message_t *m, const ChangelogSink *sink)
{
        int32_t p = m->partition;
        ReaderPart *rp = part_get(r, p, false);
        if (!rp || !rp->started) /* left over from a stopped partition */
                return 0;
        int n = 0;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (m->offset > rp->pos)
                        rp->pos = m->offset;
        } else if (m->err) {
                if (sink->error)
                        sink->error(sink->ud, p, rd_kafka_message_errstr(m));
        } else {
                sink->record(sink->ud, p, m->offset, m->key, m->key_len, m->payload, m->len);
                if (m->offset + 1 > rp->pos)
                        rp->pos = m->offset + 1;
                n = 1;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && rp->pos < rp->end) {
                /* markers past the last record: the fetcher's position */
                rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
                rd_kafka_topic_partition_list_add(l, r->topic, p);
                if (!rd_kafka_position(r->rk, l) && l->elems[0].offset > rp->pos)
                        rp->pos = l->elems[0].offset;
                rd_kafka_topic_partition_list_destroy(l);
        }
        if (rp->pos >= rp->end) {
                changelog_reader_stop(r, p);
                sink->done(sink->ud, p, rp->pos);
        }
        return n;
}

int changelog_reader_poll(ChangelogReader *r, int timeout_ms, const ChangelogSink *sink)
{
        /* error and statistics callbacks of both handles */
        rd_kafka_poll(r->rk, 0);
        rd_kafka_poll(r->wm, 0);
        int64_t deadline = now_ms() + timeout_ms;
        int n = 0;
        /* taken from the queue in batches, as riskd's consumer takes events
         * (one lock of the queue per batch, not per record); a batch is
         * served whole, so the slice may pass 20,000 records by one batch */
        rd_kafka_message_t *ms[1024];
        for (;;) {
                int64_t left = deadline - now_ms();
                ssize_t got = rd_kafka_consume_batch_queue(r->q, n ? 0 : (int)(left > 0 ? left : 0), ms,
                                                           sizeof(ms) / sizeof(ms[0]));
                if (got <= 0)
                        break;
                for (ssize_t i = 0; i < got; i++) {
                        n += reader_message(r, ms[i], sink);
                        rd_kafka_message_destroy(ms[i]);
                }
                /* a bounded slice, so that the caller keeps polling its group consumer */
                if (n >= 20000 || now_ms() >= deadline)
                        break;
        }
        return n;
}
