/*
 * `riskctl broker`: a local development Kafka cluster for the demo and the
 * integration tests, made of librdkafka's built-in mock cluster
 * (rdkafka_mock.h, experimental, pinned to librdkafka 2.0.2).
 *
 * It creates riskd's topics, prints one line `bootstrap: HOST:PORT,...` on
 * stdout, then serves until SIGINT or SIGTERM (exit 0), reading fault
 * injection commands on stdin, one per line, each answered with one line
 * `ok` or `error: ...` on stdout:
 *
 *   down BROKER_ID                       the broker closes its connections
 *                                        and refuses new ones (no leader change)
 *   up BROKER_ID
 *   errors API_KEY COUNT ERRNAME...      the next COUNT requests of that API
 *                                        (to any broker) fail with these errors,
 *                                        in order, the names repeated cyclically
 *   clear API_KEY                        drop the errors still queued for it
 *   broker-errors BROKER_ID API_KEY COUNT ERRNAME[:RTT_MS]...
 *                                        the same for one broker's requests
 *                                        (before the cluster's), with an
 *                                        optional delay for each response
 *   pending BROKER_ID API_KEY            `ok N`: how many of that broker's
 *                                        errors are left, so that a test can
 *                                        see a request consume one (push
 *                                        NO_ERROR as a marker)
 *   coordinator transaction|group KEY BROKER_ID
 *   leader TOPIC PARTITION BROKER_ID
 *   rtt BROKER_ID MS
 *   help
 *
 * What the mock cannot show is listed in kafka.md §6 (no transaction
 * markers, transactional offsets discarded, no compaction, at most 5 MiB or
 * 100 000 message sets per partition: older records are dropped silently).
 */
#ifndef RISKD_KAFKA_BROKER_H
#define RISKD_KAFKA_BROKER_H

/* The command: argv[0] is "broker".  Returns the exit status
 * (0 ok, 1 the cluster failed, 2 bad arguments or configuration). */
int broker_main(int argc, char **argv);

#endif
