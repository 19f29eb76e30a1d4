/*
 * bench-kafka: the references of bench/run-kafka (bench/kafka.md).
 *
 *   bench-kafka consume BOOTSTRAP TOPIC[:PARTITION] [-X PROP=VALUE]...
 *   bench-kafka produce BOOTSTRAP TOPIC FILE RATE [WARMUP] [-X PROP=VALUE]...
 *
 * consume: a bare librdkafka consumer, nothing but the fetching riskd's
 * consumer does.  The properties riskd's consumer sets (src/kafka/kafka.c:
 * read_committed, no auto commit, auto.offset.reset earliest; everything
 * else librdkafka's defaults, as riskd leaves them) and the -X ones
 * (bench/run-kafka passes riskd's kafka: map); every partition of TOPIC,
 * or the one named, assigned from the beginning (no group join; a
 * changelog partition is what a restore reads), messages taken as riskd
 * takes them (rd_kafka_consume_batch_queue, 1024 a call) and destroyed,
 * until every partition is at its end.  Prints one line:
 *
 *     messages N bytes B seconds S first_seconds F
 *
 * B counts keys and values; S runs from the assign to the last message; F
 * from the assign to the first message.
 *
 * produce: FILE holds one message a line, KEY TAB VALUE; they go to TOPIC
 * (librdkafka's default partitioner on the key, as kcat -P -K), RATE
 * messages a second (0: as fast as librdkafka takes them), each stamped
 * with the time it is produced (CreateTime: the start of riskd's
 * event-to-alert latency).  With WARMUP, the first WARMUP messages go
 * first, at once, then "warm" is printed and the rest waits for a line on
 * stdin (bench/run-kafka sends it once riskd has committed them: its
 * first transaction, which registers every partition, is then behind it).
 * Prints:
 *
 *     start_unix T          (when the first paced message is due, CLOCK_REALTIME)
 *     sent I T              (every 1,000 paced messages: the I-th went at T; a
 *                            busy machine can hold the producer behind its pace)
 *     produced N seconds S  (once every message is delivered; S: the paced ones)
 *
 * Nothing here is asserted: the figures are read by bench/run-kafka.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#define BATCH 1024

static double mono(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *msg)
{
        fprintf(stderr, "bench-kafka: %s: %s\n", what, msg);
        exit(1);
}

static void set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
        char err[512];
        if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK)
                die(name, err);
}

/* -X PROP=VALUE arguments from argv[i] on */
static void set_args(rd_kafka_conf_t *conf, int argc, char **argv, int i)
{
        for (; i < argc; i++) {
                if (strcmp(argv[i], "-X") || i + 1 >= argc)
                        die("usage", "expected -X PROP=VALUE");
                char *kv = argv[++i], *eq = strchr(kv, '=');
                if (!eq)
                        die("usage", "expected -X PROP=VALUE");
                *eq = '\0';
                set(conf, kv, eq + 1);
        }
}

static int consume(int argc, char **argv)
{
        const char *bootstrap = argv[2];
        char topic[256];
        snprintf(topic, sizeof(topic), "%s", argv[3]);
        /* topic names have no ':' (Kafka allows [a-zA-Z0-9._-]) */
        char *colon = strchr(topic, ':');
        int only = -1;
        if (colon) {
                *colon = '\0';
                only = atoi(colon + 1);
        }
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char err[512];
        /* riskd's consumer: kafka.c's defaults, then the operator's map, then
         * what riskd requires; group.id only because the consumer wants
         * one (nothing joins or commits) */
        set(conf, "client.id", "riskd-bench");
        set(conf, "auto.offset.reset", "earliest");
        set_args(conf, argc, argv, 4);
        set(conf, "bootstrap.servers", bootstrap);
        set(conf, "group.id", "riskd-bench-bare");
        set(conf, "enable.auto.commit", "false");
        set(conf, "enable.auto.offset.store", "false");
        set(conf, "isolation.level", "read_committed");
        /* the one addition: the end of each partition, to know when to stop */
        set(conf, "enable.partition.eof", "true");
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        if (!rk)
                die("rd_kafka_new", err);
        rd_kafka_poll_set_consumer(rk);

        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
        if (e)
                die("metadata", rd_kafka_err2str(e));
        if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt <= 0)
                die(topic, "no such topic");
        int nparts = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);

        if (only >= nparts)
                die(argv[3], "no such partition");
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(nparts);
        for (int p = 0; p < nparts; p++)
                if (only < 0 || p == only)
                        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
        if (only >= 0)
                nparts = 1; /* the ends to wait for */
        double t0 = mono(), t_first = 0, t_last = t0;
        e = rd_kafka_assign(rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        if (e)
                die("assign", rd_kafka_err2str(e));

        rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
        rd_kafka_message_t *msgs[BATCH];
        uint64_t n = 0, bytes = 0;
        int eof = 0;
        while (eof < nparts) {
                /* the call waits for a full array or the timeout: a short
                 * one, so that the last array of the stream is not held
                 * (riskd waits up to 100 ms, but then has a batch open) */
                ssize_t got = rd_kafka_consume_batch_queue(q, 10, msgs, BATCH);
                if (got < 0)
                        die("consume", rd_kafka_err2str(rd_kafka_last_error()));
                for (ssize_t i = 0; i < got; i++) {
                        rd_kafka_message_t *m = msgs[i];
                        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                                eof++; /* once per partition: no more is produced */
                        else if (m->err)
                                fprintf(stderr, "bench-kafka: %s\n", rd_kafka_message_errstr(m));
                        else {
                                if (!n)
                                        t_first = mono();
                                n++;
                                bytes += m->len + m->key_len;
                                t_last = mono();
                        }
                        rd_kafka_message_destroy(m);
                }
        }
        printf("messages %" PRIu64 " bytes %" PRIu64 " seconds %.6f first_seconds %.6f\n", n, bytes, t_last - t0,
               n ? t_first - t0 : 0.0);
        rd_kafka_queue_destroy(q);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return 0;
}

static int produce(int argc, char **argv)
{
        const char *bootstrap = argv[2], *topic = argv[3], *file = argv[4];
        double rate = atof(argv[5]);
        int opt = 6;
        long warmup = argc > opt && strcmp(argv[opt], "-X") ? atol(argv[opt++]) : 0;
        FILE *f = fopen(file, "r");
        if (!f)
                die(file, strerror(errno));
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char err[512];
        set(conf, "client.id", "riskd-bench-producer");
        set(conf, "linger.ms", "5");
        set_args(conf, argc, argv, opt);
        set(conf, "bootstrap.servers", bootstrap);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!rk)
                die("rd_kafka_new", err);

        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        uint64_t n = 0;
        double t0 = 0;
        while ((len = getline(&line, &cap, f)) > 0) {
                if (n == (uint64_t)warmup) {
                        if (warmup) {
                                while (rd_kafka_outq_len(rk) > 0)
                                        rd_kafka_flush(rk, 1000);
                                printf("warm\n");
                                fflush(stdout);
                                char go[16];
                                if (!fgets(go, sizeof(go), stdin))
                                        die("stdin", "closed before the go");
                        }
                        double wall = wall_now();
                        t0 = mono();
                        /* the schedule's origin, for bench/run-kafka's latency figures */
                        printf("start_unix %.6f\n", wall);
                        fflush(stdout);
                }
                if (line[len - 1] == '\n')
                        line[--len] = '\0';
                char *tab = memchr(line, '\t', (size_t)len);
                size_t klen = tab ? (size_t)(tab - line) : 0;
                const char *val = tab ? tab + 1 : line;
                size_t vlen = (size_t)len - (size_t)(val - line);
                /* paced: the i-th message after the warmup not before t0 + i / rate */
                if (rate > 0 && n >= (uint64_t)warmup)
                        for (;;) {
                                double ahead = t0 + (double)(n - (uint64_t)warmup) / rate - mono();
                                if (ahead <= 0)
                                        break;
                                /* asleep, not spinning: riskd and the mock
                                 * share the cores; what falls due meanwhile
                                 * goes out back to back */
                                rd_kafka_poll(rk, 0);
                                struct timespec ts = {0, (long)(ahead * 1e9)};
                                nanosleep(&ts, NULL);
                        }
                rd_kafka_resp_err_t e;
                while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(line, klen),
                                              RD_KAFKA_V_VALUE((void *)val, vlen),
                                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
                       RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        rd_kafka_poll(rk, 10);
                if (e)
                        die("produce", rd_kafka_err2str(e));
                if (n >= (uint64_t)warmup && (n - (uint64_t)warmup) % 1000 == 0)
                        printf("sent %" PRIu64 " %.6f\n", n - (uint64_t)warmup, wall_now());
                n++;
                rd_kafka_poll(rk, 0);
        }
        while (rd_kafka_outq_len(rk) > 0)
                rd_kafka_flush(rk, 1000);
        printf("produced %" PRIu64 " seconds %.6f\n", n, mono() - t0);
        free(line);
        fclose(f);
        rd_kafka_destroy(rk);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc >= 4 && !strcmp(argv[1], "consume"))
                return consume(argc, argv);
        if (argc >= 6 && !strcmp(argv[1], "produce"))
                return produce(argc, argv);
        fprintf(stderr, "usage: bench-kafka consume BOOTSTRAP TOPIC[:PARTITION] [-X PROP=VALUE]...\n"
                        "       bench-kafka produce BOOTSTRAP TOPIC FILE RATE [WARMUP] [-X PROP=VALUE]...\n");
        return 2;
}
