/*
 * riskd's Kafka clients (librdkafka 2.0.2, kafka.md §2 and §5):
 *
 *   - the group consumer: group.id, enable.auto.commit=false,
 *     isolation.level=read_committed, the eager range assignor (kafka.md
 *     §2.4: the cooperative assignor of 2.0.2 has known bugs), a
 *     rebalance callback of the caller's;
 *   - the producer: transactional (transactional.id) or, with
 *     transactions off, idempotent;
 *   - the changelog reader (changelog.c): no group, reads changelog
 *     partitions from the beginning to their end for a restore.
 *
 * This module builds the handles (configuration errors stay in here, in
 * its errstr buffers) and classifies transactional errors; the daemon's
 * loop drives the handles.  The kafka: map of the configuration is applied
 * to every handle as-is, after riskd's defaults and before the settings
 * riskd requires.  Values of secret properties never appear in a message.
 */
#ifndef RISKD_KAFKA_KAFKA_H
#define RISKD_KAFKA_KAFKA_H

#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

typedef struct KafkaProp {
        const char *name, *value;
        bool secret;             /* never shown */
} KafkaProp;

typedef struct KafkaSettings {
        const char *brokers;
        const KafkaProp *props;  /* the kafka: map */
        uint32_t nprops;
        void *opaque;            /* rd_kafka_opaque() of every handle */
        void (*log_cb)(const rd_kafka_t *rk, int level, const char *fac, const char *buf);
        void (*error_cb)(rd_kafka_t *rk, int err, const char *reason, void *opaque);
} KafkaSettings;

/* Whether librdkafka takes name=value: 0, or < 0 with *ret_msg (malloc'd;
 * without the value when secret): -ENOENT no such property, -EINVAL a bad
 * value. */
int kafka_prop_check(const char *name, const char *value, bool secret, char **ret_msg);

/* Whether librdkafka creates riskd's clients (the consumer, the producer,
 * the changelog reader) from these settings: every property set as riskd
 * sets it, and each handle created and destroyed at once, without bootstrap
 * servers, so that nothing connects.  What librdkafka refuses only as a
 * whole (acks with idempotence, an unreadable ssl.ca.location, an
 * unsupported sasl.mechanism) is found without a cluster.  0, or -EINVAL
 * with *ret_msg naming the client. */
int kafka_clients_check(const KafkaSettings *s, const char *group_id, const char *transactional_id, char **ret_msg);

/* The group consumer, subscribed to nothing yet; its main queue is
 * forwarded to the consumer queue (rd_kafka_poll_set_consumer).
 * Returns 0, or -EINVAL with *ret_msg. */
int kafka_consumer_new(rd_kafka_t **ret, const KafkaSettings *s, const char *group_id,
                       void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t, rd_kafka_topic_partition_list_t *,
                                            void *),
                       char **ret_msg);

/* The producer: transactional when transactional_id is set (call
 * rd_kafka_init_transactions before use), idempotent otherwise.
 * dr_msg_cb sees every delivery report. */
int kafka_producer_new(rd_kafka_t **ret, const KafkaSettings *s, const char *transactional_id,
                       void (*dr_msg_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *), char **ret_msg);

/* Asks the brokers, in the background, for the partitions of the topics
 * (NULL-terminated) the producer will write to.  Without it a topic first
 * named by rd_kafka_producev waits for librdkafka's 1-second topic scan
 * before its messages can go (v2.0.2: producev creates the topic without
 * the leader query rd_kafka_topic_new makes): the first transaction paid
 * that wait once for the outputs and once more for the changelog, which is
 * written after them (bench/kafka.md). */
void kafka_producer_topics(rd_kafka_t *rk, const char *const *topics);

/* What to do after a transactional call returned an error
 * (INTRODUCTION.md: "treat any error that has neither retriable,
 * abortable, or fatal set, as a fatal error"). */
typedef enum KafkaTxnStatus {
        KAFKA_TXN_OK = 0,
        KAFKA_TXN_RETRY,    /* retriable: call again with the same arguments */
        KAFKA_TXN_ABORT,    /* abort_transaction, roll back, rewind the input */
        KAFKA_TXN_FATAL,    /* fenced or fatal: the producer is unusable; exit */
} KafkaTxnStatus;

/* Classifies error (NULL: OK) and destroys it; *ret_msg (may be NULL) gets
 * "NAME: reason" (malloc'd) when there was an error. */
KafkaTxnStatus kafka_txn_status(rd_kafka_error_t *error, char **ret_msg);
const char *kafka_txn_status_name(KafkaTxnStatus st);

/* rd_kafka_seek_partitions waiting up to timeout_ms for the seeks'
 * results.  librdkafka before 2.1.0 waits timeout_ms microseconds instead
 * (librdkafka#4230): 10 ms for 10 s, so that a busy machine saw "Timed out
 * waiting for N remaining partition seek(s)"; the wait is scaled for it. */
rd_kafka_error_t *kafka_seek(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts, int timeout_ms);

/* The handle's fatal error as "NAME: reason" (malloc'd), or NULL. */
char *kafka_fatal_error(rd_kafka_t *rk);

/* Within the module (changelog.c): the configuration of a group-less
 * reader, and rd_kafka_new (conf is consumed either way). */
rd_kafka_conf_t *kafka_conf_reader(const KafkaSettings *s, const char *isolation, char **ret_msg);
int kafka_handle_new(rd_kafka_t **ret, rd_kafka_type_t type, rd_kafka_conf_t *conf, char **ret_msg);

/* ---- the changelog reader (changelog.c) ---- */

typedef struct ChangelogReader ChangelogReader;

typedef struct ChangelogSink {
        void *ud;
        /* every record of a started partition, in log order */
        void (*record)(void *ud, int32_t partition, int64_t offset, const void *key, size_t klen, const void *val,
                       size_t vlen);
        /* the partition's position reached the end taken at start */
        void (*done)(void *ud, int32_t partition, int64_t position);
        /* a consume error (the reading goes on) */
        void (*error)(void *ud, int32_t partition, const char *msg);
} ChangelogSink;

int changelog_reader_new(ChangelogReader **ret, const KafkaSettings *s, const char *topic, char **ret_msg);
ChangelogReader *changelog_reader_free(ChangelogReader *r);
/* The changelog topic's partition count from the cluster's metadata:
 * 0, or < 0 with *ret_msg (the topic does not exist, or no answer). */
int changelog_reader_partitions(ChangelogReader *r, int timeout_ms, int32_t *ret, char **ret_msg);
/* Start reading partition p from its beginning to its current end: the log
 * end offset seen read_uncommitted (KAFKA-10167: a read_committed handle
 * would see the LSO), while the records are read read_committed; the end is
 * reached when the position is there, whatever the offset of the last
 * record (transaction markers take offsets).  Returns 0 (started), 1
 * (nothing to read: done at once, *ret_end set), or < 0 with *ret_msg (no
 * answer: try again later). */
int changelog_reader_start(ChangelogReader *r, int32_t p, int timeout_ms, int64_t *ret_end, char **ret_msg);
void changelog_reader_stop(ChangelogReader *r, int32_t p);
/* Serve for up to timeout_ms; returns the number of records passed on. */
int changelog_reader_poll(ChangelogReader *r, int timeout_ms, const ChangelogSink *sink);

#endif
