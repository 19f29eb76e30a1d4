/*
 * Building riskd's librdkafka handles (kafka.h): riskd's defaults, then the
 * operator's kafka: map, then what riskd requires; and the classification
 * of transactional errors.  Configuration errors stay in this module's
 * errstr buffers and come out as messages that never quote a secret.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/util.h"
#include "src/kafka/kafka.h"

typedef struct KV {
        const char *name, *value;
} KV;

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, bool secret, char **ret_msg)
{
        char errstr[512];
        rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr));
        if (res == RD_KAFKA_CONF_OK)
                return 0;
        if (ret_msg) {
                if (res == RD_KAFKA_CONF_UNKNOWN)
                        *ret_msg = xasprintf("no such librdkafka property '%s'", name);
                else if (secret) /* librdkafka's message quotes the value */
                        *ret_msg = xasprintf("invalid value for %s (not shown: it is a secret)", name);
                else
                        *ret_msg = xstrdup(errstr);
        }
        return res == RD_KAFKA_CONF_UNKNOWN ? -ENOENT : -EINVAL;
}

int kafka_prop_check(const char *name, const char *value, bool secret, char **ret_msg)
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        int r = conf_set(conf, name, value, secret, ret_msg);
        rd_kafka_conf_destroy(conf);
        return r;
}

/* defaults, then s->props, then required; NULL with *ret_msg on error */
static rd_kafka_conf_t *conf_build(const KafkaSettings *s, const KV *defaults, size_t ndef, const KV *required,
                                   size_t nreq, char **ret_msg)
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        for (size_t i = 0; i < ndef; i++)
                if (conf_set(conf, defaults[i].name, defaults[i].value, false, ret_msg) < 0)
                        goto fail;
        for (uint32_t i = 0; i < s->nprops; i++)
                if (conf_set(conf, s->props[i].name, s->props[i].value, s->props[i].secret, ret_msg) < 0)
                        goto fail;
        if (conf_set(conf, "bootstrap.servers", s->brokers, false, ret_msg) < 0)
                goto fail;
        for (size_t i = 0; i < nreq; i++)
                if (required[i].value && conf_set(conf, required[i].name, required[i].value, false, ret_msg) < 0)
                        goto fail;
        if (s->log_cb)
                rd_kafka_conf_set_log_cb(conf, s->log_cb);
        if (s->error_cb)
                rd_kafka_conf_set_error_cb(conf, s->error_cb);
        rd_kafka_conf_set_opaque(conf, s->opaque);
        return conf;
fail:
        rd_kafka_conf_destroy(conf);
        return NULL;
}

static int handle_new(rd_kafka_t **ret, rd_kafka_type_t type, rd_kafka_conf_t *conf, char **ret_msg)
{
        char errstr[512];
        rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
        if (!rk) {
                /* conf is still ours on failure */
                rd_kafka_conf_destroy(conf);
                if (ret_msg)
                        *ret_msg = xstrdup(errstr);
                return -EINVAL;
        }
        /* conf is now owned by rk */
        *ret = rk;
        return 0;
}

int kafka_consumer_new(rd_kafka_t **ret, const KafkaSettings *s, const char *group_id,
                       void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t, rd_kafka_topic_partition_list_t *,
                                            void *),
                       char **ret_msg)
{
        static const KV defaults[] = {
                {"client.id", "riskd"},
                /* a new group reads the whole input (Kafka Streams does the same) */
                {"auto.offset.reset", "earliest"},
        };
        const KV required[] = {
                {"group.id", group_id},
                {"enable.auto.commit", "false"},
                {"enable.auto.offset.store", "false"},
                {"isolation.level", "read_committed"},
                {"partition.assignment.strategy", "range"},
        };
        rd_kafka_conf_t *conf = conf_build(s, defaults, ARRAY_SIZE(defaults), required, ARRAY_SIZE(required), ret_msg);
        if (!conf)
                return -EINVAL;
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
        rd_kafka_t *rk;
        int r = handle_new(&rk, RD_KAFKA_CONSUMER, conf, ret_msg);
        if (r < 0)
                return r;
        /* one queue: rebalances, errors and messages come from consumer_poll */
        rd_kafka_poll_set_consumer(rk);
        *ret = rk;
        return 0;
}

int kafka_producer_new(rd_kafka_t **ret, const KafkaSettings *s, const char *transactional_id,
                       void (*dr_msg_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *), char **ret_msg)
{
        static const KV defaults[] = {
                {"client.id", "riskd"},
                /* changelog records (an enterprise's state) and JSON outputs
                 * compress several times over: fewer bytes to the brokers
                 * per commit (bench/kafka.md) */
                {"compression.type", "lz4"},
        };
        const KV txn[] = {
                {"transactional.id", transactional_id},
        };
        static const KV idem[] = {
                {"enable.idempotence", "true"},
        };
        rd_kafka_conf_t *conf = conf_build(s, defaults, ARRAY_SIZE(defaults), transactional_id ? txn : idem, 1,
                                           ret_msg);
        if (!conf)
                return -EINVAL;
        if (dr_msg_cb)
                rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
        return handle_new(ret, RD_KAFKA_PRODUCER, conf, ret_msg);
}

void kafka_producer_topics(rd_kafka_t *rk, const char *const *topics)
{
        for (; *topics; topics++) {
                /* the application's handle goes at once: librdkafka keeps
                 * the topic (and the metadata request it sent) */
                rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, *topics, NULL);
                if (rkt)
                        rd_kafka_topic_destroy(rkt);
        }
}

KafkaTxnStatus kafka_txn_status(rd_kafka_error_t *error, char **ret_msg)
{
        if (!error)
                return KAFKA_TXN_OK;
        KafkaTxnStatus st;
        if (rd_kafka_error_is_fatal(error))
                st = KAFKA_TXN_FATAL;
        else if (rd_kafka_error_txn_requires_abort(error))
                st = KAFKA_TXN_ABORT;
        else if (rd_kafka_error_is_retriable(error))
                st = KAFKA_TXN_RETRY;
        else
                st = KAFKA_TXN_FATAL; /* none of the three: fatal (INTRODUCTION.md) */
        if (ret_msg)
                *ret_msg = xasprintf("%s: %s", rd_kafka_error_name(error), rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        return st;
}

const char *kafka_txn_status_name(KafkaTxnStatus st)
{
        switch (st) {
        case KAFKA_TXN_OK: return "ok";
        case KAFKA_TXN_RETRY: return "retriable";
        case KAFKA_TXN_ABORT: return "abortable";
        case KAFKA_TXN_FATAL: return "fatal";
        }
        return "?";
}

char *kafka_fatal_error(rd_kafka_t *rk)
{
        char errstr[512];
        rd_kafka_resp_err_t err = rd_kafka_fatal_error(rk, errstr, sizeof(errstr));
        if (!err)
                return NULL;
        return xasprintf("%s: %s", rd_kafka_err2name(err), errstr);
}

rd_kafka_conf_t *kafka_conf_reader(const KafkaSettings *s, const char *isolation, char **ret_msg)
{
        /* fetch.wait.max.ms: a restore reads up to a known end offset, so
         * waiting at a partition's end for more never helps; and a
         * partition started while a fetch of partitions at their end is
         * in flight joins only the next fetch, after that whole wait
         * (500 ms by default: most of a restore of 48 partitions of
         * ~2,000 records each on the mock, bench/kafka.md).
         * queued.min.messages: the partitions' fetch queues are forwarded
         * to the reader's one queue, and librdkafka stops fetching a
         * partition while that queue holds more than this many messages
         * (100,000 by default), looking again about once a second: a
         * restore of 64 partitions of ~5,700 records came in waves a
         * second apart.  A million records (~300 MB at ~300 bytes) may now
         * wait in the queue, less than the state they restore. */
        static const KV defaults[] = {
                {"client.id", "riskd-restore"},
                {"fetch.wait.max.ms", "10"},
                {"queued.min.messages", "1000000"},
        };
        const KV required[] = {
                {"isolation.level", isolation},
                {"enable.auto.commit", "false"},
                {"enable.auto.offset.store", "false"},
                {"enable.partition.eof", "true"},
                {"auto.offset.reset", "earliest"},
        };
        return conf_build(s, defaults, ARRAY_SIZE(defaults), required, ARRAY_SIZE(required), ret_msg);
}

int kafka_handle_new(rd_kafka_t **ret, rd_kafka_type_t type, rd_kafka_conf_t *conf, char **ret_msg)
{
        return handle_new(ret, type, conf, ret_msg);
}

static void log_nothing(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
        (void)rk, (void)level, (void)fac, (void)buf;
}

int kafka_clients_check(const KafkaSettings *s, const char *group_id, const char *transactional_id, char **ret_msg)
{
        /* no bootstrap servers: librdkafka connects nowhere, and its
         * warning about that is not the operator's concern here */
        KafkaSettings q = *s;
        q.brokers = "";
        q.log_cb = log_nothing;
        q.error_cb = NULL;
        q.opaque = NULL;
        char *msg = NULL;
        const char *what = "the consumer";
        rd_kafka_t *rk = NULL;
        int r = kafka_consumer_new(&rk, &q, group_id, NULL, &msg);
        if (rk)
                rd_kafka_destroy(rk);
        rk = NULL;
        if (r == 0) {
                what = "the producer";
                r = kafka_producer_new(&rk, &q, transactional_id, NULL, &msg);
                if (rk)
                        rd_kafka_destroy(rk);
                rk = NULL;
        }
        if (r == 0) {
                what = "the changelog reader";
                rd_kafka_conf_t *conf = kafka_conf_reader(&q, "read_committed", &msg);
                r = conf ? handle_new(&rk, RD_KAFKA_CONSUMER, conf, &msg) : -EINVAL;
                if (rk)
                        rd_kafka_destroy(rk);
        }
        if (r < 0) {
                *ret_msg = xasprintf("%s: %s", what, msg ? msg : "rejected by librdkafka");
                free(msg);
                return -EINVAL;
        }
        return 0;
}

rd_kafka_error_t *kafka_seek(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts, int timeout_ms)
{
        /* before 2.1.0 the remaining time in ms is passed on as microseconds */
        if (rd_kafka_version() < 0x020100ff && timeout_ms > 0)
                timeout_ms = timeout_ms > INT_MAX / 1000 ? INT_MAX : timeout_ms * 1000;
        return rd_kafka_seek_partitions(rk, parts, timeout_ms);
}
