/*
 * riskctl broker: librdkafka's mock cluster as a local development broker
 * (see broker.h for the commands).
 *
 * The mock cluster runs in librdkafka's own thread and listens on
 * 127.0.0.1 with kernel-assigned ports; any process can connect to it as to
 * a real cluster.  This thread only waits for a signal or a line on stdin.
 * SIGINT and SIGTERM are blocked before librdkafka starts its threads (they
 * inherit the mask) and read through a signalfd, so no handler races the
 * mock's threads.
 *
 * The mock API is not covered by librdkafka's ABI guarantees; the installed
 * 2.0.2 header matches its tag, and the API keys below are the protocol's
 * (rdkafka_protocol.h is not installed).
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <syslog.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "include/riskd/diag.h"
#include "include/riskd/util.h"
#include "src/kafka/broker.h"
#include "src/util/yaml.h"

#define BROKER_MAX_BROKERS 32
#define BROKER_MAX_PARTITIONS 1000
#define BROKER_MAX_TOPICS 64
#define BROKER_MAX_ERRORS 10000
#define BROKER_LINE_MAX 4096

/* Kafka protocol API keys the mock implements (kafka.md §2.5). */
static const struct {
        const char *name;
        int16_t key;
} broker_apis[] = {
        {"Produce", 0},          {"Fetch", 1},           {"ListOffsets", 2},
        {"Metadata", 3},         {"OffsetCommit", 8},    {"OffsetFetch", 9},
        {"FindCoordinator", 10}, {"JoinGroup", 11},      {"Heartbeat", 12},
        {"LeaveGroup", 13},      {"SyncGroup", 14},      {"ApiVersion", 18},
        {"InitProducerId", 22},  {"AddPartitionsToTxn", 24}, {"AddOffsetsToTxn", 25},
        {"EndTxn", 26},          {"TxnOffsetCommit", 28},
};

typedef struct BrokerTopics {
        /* every topic riskd uses; [0] .. [ninput-1] are the input topics */
        char *names[BROKER_MAX_TOPICS];
        uint32_t n, ninput;
} BrokerTopics;

typedef struct Broker {
        rd_kafka_t *rk;              /* the handle the mock cluster lives in */
        rd_kafka_mock_cluster_t *mc; /* owned by us, destroyed before rk */
        const BrokerTopics *topics;  /* the topics created, borrowed */
        int nbrokers, partitions;
        bool verbose;
} Broker;

static void topics_add(BrokerTopics *t, const char *name, size_t len)
{
        for (uint32_t i = 0; i < t->n; i++)
                if (strlen(t->names[i]) == len && memcmp(t->names[i], name, len) == 0)
                        return;
        if (t->n < BROKER_MAX_TOPICS)
                t->names[t->n++] = xstrndup(name, len);
}

static void topics_deinit(BrokerTopics *t)
{
        for (uint32_t i = 0; i < t->n; i++)
                free(t->names[i]);
        t->n = t->ninput = 0;
}

/* The topic names of a riskd configuration: `input_topics` (a list or one
 * name) and the `topics` map; keys it does not set keep their defaults.
 * Only these keys are read: the daemon validates the rest. */
static int topics_from_config(BrokerTopics *t, const char *path)
{
        static const char *const keys[] = {"alerts", "shadow", "adjustments", "dead_letters", "changelog",
                                           "alert_states", "enterprises"};
        static const char *const defaults[] = {"risk.alerts", "risk.alerts.shadow", "risk.adjustments",
                                               "riskd.dlq", "riskd.changelog", "risk.alert_states",
                                               "risk.enterprises"};
        const YNode *out[ARRAY_SIZE(keys)] = {NULL};
        SrcFile *f = NULL;
        DiagList dl = {0};
        int r = 0;

        if (path) {
                char *text;
                size_t len;
                r = file_read_all(path, &text, &len);
                if (r < 0) {
                        fprintf(stderr, "riskctl broker: cannot read %s: %s\n", path, strerror(-r));
                        return 2;
                }
                f = srcfile_new((char *)path, text, len); /* text now owned by f */
                srcfile_parse(f, &dl);
                if (dl.nerrors) {
                        diag_print_text(stderr, &dl, false);
                        r = 2;
                        goto out;
                }
        }
        const YNode *root = f ? f->root : NULL;
        if (root && root->kind != Y_MAP) {
                fprintf(stderr, "riskctl broker: %s: expected a mapping of settings\n", path);
                r = 2;
                goto out;
        }
        const YNode *in = root ? ynode_get(root, "input_topics") : NULL;
        if (in && in->kind == Y_SCALAR && !ynode_is_null(in))
                topics_add(t, in->str, in->len);
        else if (in && in->kind == Y_SEQ)
                for (uint32_t i = 0; i < in->n; i++) {
                        if (in->items[i]->kind != Y_SCALAR || !in->items[i]->len) {
                                fprintf(stderr, "riskctl broker: %s:%u: input_topics: expected topic names\n",
                                        path, in->items[i]->line);
                                r = 2;
                                goto out;
                        }
                        topics_add(t, in->items[i]->str, in->items[i]->len);
                }
        if (t->n == 0)
                topics_add(t, "risk.events", strlen("risk.events"));
        t->ninput = t->n;
        const YNode *tm = root ? ynode_get(root, "topics") : NULL;
        if (tm && tm->kind == Y_MAP)
                for (size_t k = 0; k < ARRAY_SIZE(keys); k++)
                        out[k] = ynode_get(tm, keys[k]);
        for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
                if (out[k] && out[k]->kind == Y_SCALAR && out[k]->len)
                        topics_add(t, out[k]->str, out[k]->len);
                else if (out[k] && out[k]->kind == Y_SCALAR && strcmp(keys[k], "enterprises") == 0)
                        continue; /* "": riskd writes no enterprise documents */
                else
                        topics_add(t, defaults[k], strlen(defaults[k]));
        }
out:
        diag_list_deinit(&dl);
        srcfile_free(f);
        return r;
}

/* ---- parsing command arguments ---- */

static int parse_int(const char *s, long lo, long hi, long *ret)
{
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (!*s || *end || errno || v < lo || v > hi)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_api(const char *s, int16_t *ret)
{
        long v;
        if (parse_int(s, 0, 100, &v) == 0) {
                *ret = (int16_t)v;
                return 0;
        }
        for (size_t i = 0; i < ARRAY_SIZE(broker_apis); i++)
                if (strcasecmp(s, broker_apis[i].name) == 0) {
                        *ret = broker_apis[i].key;
                        return 0;
                }
        return -EINVAL;
}

/* An error by its rd_kafka_err2name() name (NOT_COORDINATOR, _TRANSPORT),
 * optionally prefixed ERR_ or RD_KAFKA_RESP_ERR_, any case, or by number. */
static int parse_err(const char *s, rd_kafka_resp_err_t *ret)
{
        long v;
        if (parse_int(s, -1000, 1000, &v) == 0) {
                *ret = (rd_kafka_resp_err_t)v;
                return 0;
        }
        if (strncasecmp(s, "RD_KAFKA_RESP_", 14) == 0)
                s += 14;
        if (strncasecmp(s, "ERR_", 4) == 0)
                s += 4;
        const struct rd_kafka_err_desc *d;
        size_t n;
        rd_kafka_get_err_descs(&d, &n);
        for (size_t i = 0; i < n; i++)
                if (d[i].name && strcasecmp(d[i].name, s) == 0) {
                        *ret = d[i].code;
                        return 0;
                }
        return -EINVAL;
}

/* ---- commands ---- */

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

static void reply_err(rd_kafka_resp_err_t err)
{
        if (err)
                reply("error: %s", rd_kafka_err2str(err));
        else
                reply("ok");
}

static bool parse_broker_id(const Broker *b, const char *s, int32_t *ret)
{
        long v;
        if (parse_int(s, 1, b->nbrokers, &v) < 0) {
                reply("error: no broker '%s' (ids are 1 to %d)", s, b->nbrokers);
                return false;
        }
        *ret = (int32_t)v;
        return true;
}

/* The API_KEY COUNT of errors and broker-errors at tok[0], tok[1]; false
 * after replying what is wrong. */
static bool parse_api_count(char **tok, int16_t *api, long *cnt)
{
        if (parse_api(tok[0], api) < 0) {
                reply("error: unknown API key '%s'", tok[0]);
                return false;
        }
        if (parse_int(tok[1], 1, BROKER_MAX_ERRORS, cnt) < 0) {
                reply("error: COUNT must be 1 to %d, not '%s'", BROKER_MAX_ERRORS, tok[1]);
                return false;
        }
        return true;
}

static void cmd_errors(Broker *b, char **tok, int ntok)
{
        int16_t api;
        long cnt;
        if (ntok < 4) {
                reply("error: usage: errors API_KEY COUNT ERRNAME...");
                return;
        }
        if (!parse_api_count(tok + 1, &api, &cnt))
                return;
        int nnames = ntok - 3;
        rd_kafka_resp_err_t names[BROKER_LINE_MAX / 2];
        for (int i = 0; i < nnames; i++)
                if (parse_err(tok[3 + i], &names[i]) < 0) {
                        reply("error: unknown error name '%s'", tok[3 + i]);
                        return;
                }
        rd_kafka_resp_err_t *errs = xmalloc((size_t)cnt * sizeof(*errs));
        for (long i = 0; i < cnt; i++)
                errs[i] = names[i % nnames];
        rd_kafka_mock_push_request_errors_array(b->mc, api, (size_t)cnt, errs);
        free(errs);
        reply("ok");
}

/* broker-errors BROKER_ID API_KEY COUNT ERRNAME[:RTT_MS]...: errors of one
 * broker, which take precedence over the cluster's; `pending` counts what
 * is left of them, so a test can see that a request consumed its error. */
static void cmd_broker_errors(Broker *b, char **tok, int ntok)
{
        int32_t id;
        int16_t api;
        long cnt;
        if (ntok < 5) {
                reply("error: usage: broker-errors BROKER_ID API_KEY COUNT ERRNAME[:RTT_MS]...");
                return;
        }
        if (!parse_broker_id(b, tok[1], &id))
                return;
        if (!parse_api_count(tok + 2, &api, &cnt))
                return;
        int nnames = ntok - 4;
        rd_kafka_resp_err_t errs[BROKER_LINE_MAX / 2];
        long rtts[BROKER_LINE_MAX / 2];
        for (int i = 0; i < nnames; i++) {
                char *name = tok[4 + i], *colon = strchr(name, ':');
                rtts[i] = 0;
                if (colon) {
                        *colon = '\0';
                        if (parse_int(colon + 1, 0, 600000, &rtts[i]) < 0) {
                                reply("error: bad RTT '%s'", colon + 1);
                                return;
                        }
                }
                if (parse_err(name, &errs[i]) < 0) {
                        reply("error: unknown error name '%s'", name);
                        return;
                }
        }
        /* one at a time: the call takes (error, rtt) pairs as varargs */
        for (long i = 0; i < cnt; i++) {
                rd_kafka_resp_err_t err = rd_kafka_mock_broker_push_request_error_rtts(
                        b->mc, id, api, 1, errs[i % nnames], (int)rtts[i % nnames]);
                if (err) {
                        reply_err(err);
                        return;
                }
        }
        reply("ok");
}

static void broker_command(Broker *b, char *line)
{
        char *tok[BROKER_LINE_MAX / 2];
        int ntok = 0;
        for (char *save = NULL, *t = strtok_r(line, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save))
                tok[ntok++] = t;
        if (ntok == 0 || tok[0][0] == '#')
                return; /* blank lines and comments get no reply */

        const char *cmd = tok[0];
        int32_t id;
        long v;
        if (strcmp(cmd, "down") == 0 || strcmp(cmd, "up") == 0) {
                if (ntok != 2) {
                        reply("error: usage: %s BROKER_ID", cmd);
                        return;
                }
                if (!parse_broker_id(b, tok[1], &id))
                        return;
                reply_err(cmd[0] == 'd' ? rd_kafka_mock_broker_set_down(b->mc, id)
                                        : rd_kafka_mock_broker_set_up(b->mc, id));
        } else if (strcmp(cmd, "errors") == 0) {
                cmd_errors(b, tok, ntok);
        } else if (strcmp(cmd, "broker-errors") == 0) {
                cmd_broker_errors(b, tok, ntok);
        } else if (strcmp(cmd, "pending") == 0) {
                int16_t api;
                size_t cnt = 0;
                if (ntok != 3 || parse_api(tok[2], &api) < 0) {
                        reply("error: usage: pending BROKER_ID API_KEY");
                        return;
                }
                if (!parse_broker_id(b, tok[1], &id))
                        return;
                rd_kafka_resp_err_t err = rd_kafka_mock_broker_error_stack_cnt(b->mc, id, api, &cnt);
                if (err)
                        reply_err(err);
                else
                        reply("ok %zu", cnt);
        } else if (strcmp(cmd, "clear") == 0) {
                int16_t api;
                if (ntok != 2 || parse_api(tok[1], &api) < 0) {
                        reply("error: usage: clear API_KEY");
                        return;
                }
                rd_kafka_mock_clear_request_errors(b->mc, api);
                reply("ok");
        } else if (strcmp(cmd, "coordinator") == 0) {
                if (ntok != 4 || (strcmp(tok[1], "transaction") != 0 && strcmp(tok[1], "group") != 0)) {
                        reply("error: usage: coordinator transaction|group KEY BROKER_ID");
                        return;
                }
                if (!parse_broker_id(b, tok[3], &id))
                        return;
                reply_err(rd_kafka_mock_coordinator_set(b->mc, tok[1], tok[2], id));
        } else if (strcmp(cmd, "leader") == 0) {
                if (ntok != 4 || parse_int(tok[2], 0, BROKER_MAX_PARTITIONS - 1, &v) < 0) {
                        reply("error: usage: leader TOPIC PARTITION BROKER_ID");
                        return;
                }
                /* the mock would create an unknown topic on the fly */
                bool known = false;
                for (uint32_t i = 0; i < b->topics->n; i++)
                        known |= strcmp(b->topics->names[i], tok[1]) == 0;
                if (!known || v >= b->partitions) {
                        reply("error: no partition %s [%ld]", tok[1], v);
                        return;
                }
                if (!parse_broker_id(b, tok[3], &id))
                        return;
                reply_err(rd_kafka_mock_partition_set_leader(b->mc, tok[1], (int32_t)v, id));
        } else if (strcmp(cmd, "rtt") == 0) {
                if (ntok != 3 || parse_int(tok[2], 0, 600000, &v) < 0) {
                        reply("error: usage: rtt BROKER_ID MS");
                        return;
                }
                if (!parse_broker_id(b, tok[1], &id))
                        return;
                reply_err(rd_kafka_mock_broker_set_rtt(b->mc, id, (int)v));
        } else if (strcmp(cmd, "help") == 0) {
                reply("ok: down ID | up ID | errors API COUNT ERR... | clear API | "
                      "broker-errors ID API COUNT ERR[:RTT]... | pending ID API | "
                      "coordinator transaction|group KEY ID | leader TOPIC PART ID | rtt ID MS");
        } else {
                reply("error: unknown command '%s' (try help)", cmd);
        }
}

/* ---- the cluster ---- */

static void broker_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
        const Broker *b = rd_kafka_opaque(rk);
        if (level <= LOG_WARNING || (b && b->verbose))
                fprintf(stderr, "riskctl broker: %s: %s\n", fac, buf);
}

static int broker_start(Broker *b, const BrokerTopics *t, int partitions)
{
        b->topics = t;
        b->partitions = partitions;
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set_log_cb(conf, broker_log);
        rd_kafka_conf_set_opaque(conf, b);
        /* the handle itself never connects anywhere; the mock cluster is
         * all we want from it */
        if (b->verbose && rd_kafka_conf_set(conf, "debug", "mock,broker", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
                fprintf(stderr, "riskctl broker: %s\n", errstr);
        b->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!b->rk) {
                rd_kafka_conf_destroy(conf);
                fprintf(stderr, "riskctl broker: %s\n", errstr);
                return -EINVAL;
        }
        conf = NULL; /* now owned by rk */
        b->mc = rd_kafka_mock_cluster_new(b->rk, b->nbrokers);
        if (!b->mc) {
                fprintf(stderr, "riskctl broker: cannot start the mock cluster\n");
                return -EIO;
        }
        int rf = b->nbrokers < 3 ? b->nbrokers : 3;
        for (uint32_t i = 0; i < t->n; i++) {
                rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(b->mc, t->names[i], partitions, rf);
                if (err) {
                        fprintf(stderr, "riskctl broker: cannot create topic %s: %s\n", t->names[i],
                                rd_kafka_err2str(err));
                        return -EIO;
                }
        }
        return 0;
}

static void broker_stop(Broker *b)
{
        if (b->mc)
                rd_kafka_mock_cluster_destroy(b->mc);
        b->mc = NULL;
        if (b->rk)
                rd_kafka_destroy(b->rk);
        b->rk = NULL;
}

/* Serve until SIGINT/SIGTERM; stdin commands until its EOF. */
static int broker_serve(Broker *b, int sfd)
{
        char line[BROKER_LINE_MAX];
        size_t len = 0;
        bool skipping = false; /* inside an over-long line */
        bool have_stdin = true;

        for (;;) {
                struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN}, {.fd = STDIN_FILENO, .events = POLLIN}};
                int r = poll(pfd, have_stdin ? 2 : 1, -1);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, "riskctl broker: poll: %s\n", strerror(errno));
                        return 1;
                }
                if (pfd[0].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                                fprintf(stderr, "riskctl broker: %s, stopping\n", strsignal((int)si.ssi_signo));
                        return 0;
                }
                if (!have_stdin || !(pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
                        continue;
                ssize_t n = read(STDIN_FILENO, line + len, sizeof(line) - 1 - len);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n <= 0) {
                        /* EOF: keep serving, as a background process would */
                        if (len && !skipping) {
                                line[len] = '\0';
                                broker_command(b, line);
                        }
                        have_stdin = false;
                        continue;
                }
                len += (size_t)n;
                char *start = line, *nl;
                while ((nl = memchr(start, '\n', len - (size_t)(start - line)))) {
                        *nl = '\0';
                        if (!skipping)
                                broker_command(b, start);
                        skipping = false;
                        start = nl + 1;
                }
                len -= (size_t)(start - line);
                memmove(line, start, len);
                if (len == sizeof(line) - 1) {
                        if (!skipping)
                                reply("error: line longer than %d bytes", BROKER_LINE_MAX - 1);
                        skipping = true;
                        len = 0;
                }
        }
}

static void broker_usage(FILE *f)
{
        fputs("usage: riskctl broker [--partitions N] [--brokers N] [--config FILE] [--verbose]\n"
              "\n"
              "A local Kafka cluster for development and tests (librdkafka's mock cluster on\n"
              "127.0.0.1): creates riskd's topics (names from FILE, a riskd configuration, else\n"
              "the defaults), prints 'bootstrap: HOST:PORT,...' and serves until SIGINT/SIGTERM.\n"
              "Each partition keeps at most 5 MiB (or 100000 message sets): older records are\n"
              "dropped. No transaction markers, no compaction, transactional offsets discarded.\n"
              "\n"
              "stdin commands (reply 'ok' or 'error: ...'):\n"
              "  down ID | up ID | rtt ID MS | errors API COUNT ERRNAME... | clear API\n"
              "  broker-errors ID API COUNT ERRNAME[:RTT_MS]... | pending ID API (replies 'ok N')\n"
              "  coordinator transaction|group KEY ID | leader TOPIC PARTITION ID | help\n"
              "API by number or name: Produce=0 Fetch=1 OffsetCommit=8 FindCoordinator=10\n"
              "JoinGroup=11 SyncGroup=14 InitProducerId=22 AddPartitionsToTxn=24\n"
              "AddOffsetsToTxn=25 EndTxn=26 TxnOffsetCommit=28 (and others the mock serves)\n",
              f);
}

int broker_main(int argc, char **argv)
{
        static const struct option opts[] = {
                {"partitions", required_argument, NULL, 'p'},
                {"brokers", required_argument, NULL, 'b'},
                {"config", required_argument, NULL, 'c'},
                {"verbose", no_argument, NULL, 'v'},
                {"help", no_argument, NULL, 'h'},
                {0},
        };
        long partitions = 12, nbrokers = 3;
        const char *config = NULL;
        Broker b = {0};
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "p:b:c:vh", opts, NULL)) != -1) {
                switch (c) {
                case 'p':
                        if (parse_int(optarg, 1, BROKER_MAX_PARTITIONS, &partitions) < 0) {
                                fprintf(stderr, "riskctl broker: --partitions must be 1 to %d\n", BROKER_MAX_PARTITIONS);
                                return 2;
                        }
                        break;
                case 'b':
                        if (parse_int(optarg, 1, BROKER_MAX_BROKERS, &nbrokers) < 0) {
                                fprintf(stderr, "riskctl broker: --brokers must be 1 to %d\n", BROKER_MAX_BROKERS);
                                return 2;
                        }
                        break;
                case 'c':
                        config = optarg;
                        break;
                case 'v':
                        b.verbose = true;
                        break;
                case 'h':
                        broker_usage(stdout);
                        return 0;
                default:
                        broker_usage(stderr);
                        return 2;
                }
        }
        if (optind != argc) {
                broker_usage(stderr);
                return 2;
        }
        b.nbrokers = (int)nbrokers;

        BrokerTopics t = {0};
        int r = topics_from_config(&t, config);
        if (r) {
                topics_deinit(&t);
                return r;
        }

        /* before librdkafka creates threads, so that they inherit the mask */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN); /* a reader of our replies may go away */
        int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (sfd < 0) {
                fprintf(stderr, "riskctl broker: signalfd: %s\n", strerror(errno));
                topics_deinit(&t);
                return 1;
        }

        int status = 0;
        if (broker_start(&b, &t, (int)partitions) < 0) {
                status = 1;
        } else {
                fprintf(stderr, "riskctl broker: %d brokers, %ld partitions per topic (each keeps at most 5 MiB):",
                        b.nbrokers, partitions);
                for (uint32_t i = 0; i < t.n; i++)
                        fprintf(stderr, " %s", t.names[i]);
                fputc('\n', stderr);
                printf("bootstrap: %s\n", rd_kafka_mock_cluster_bootstraps(b.mc));
                fflush(stdout);
                status = broker_serve(&b, sfd);
        }
        broker_stop(&b);
        close(sfd);
        topics_deinit(&t);
        return status;
}
