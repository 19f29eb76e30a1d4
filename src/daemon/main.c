/*
 * riskd: the risk engine daemon.  Reads events from Kafka, runs the rules
 * of one rules directory over them with one engine per input partition,
 * and writes alerts, adjustments, dead letters and its state changelog in
 * Kafka transactions (loop.c).
 *
 *   riskd --config FILE          run
 *   riskd --config FILE --check-config
 *                                check what a start checks (startup_check),
 *                                print the effective settings, exit
 *   riskd --version
 *
 * Signals: SIGTERM and SIGINT stop it cleanly (the open batch committed,
 * the group left) within shutdown_timeout, else it exits 1; SIGHUP is
 * reloads the rules (reload.c: a broken rule set leaves the old one running).
 *
 * Exit status: 0 stopped by a signal; 1 a fatal runtime error (fenced,
 * a broken cluster setup) or a shutdown over its timeout: systemd restarts
 * it; 2 unusable arguments, configuration or rules (RestartPreventExitStatus),
 * the same for a start and for --check-config.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "include/riskd/diag.h"
#include "include/riskd/rules.h"
#include "src/daemon/config.h"
#include "src/daemon/httpd.h"
#include "src/daemon/log.h"
#include "src/daemon/loop.h"
#include "src/daemon/memstats.h"
#include "src/daemon/notify.h"
#include "src/kafka/kafka.h"

#ifndef RISKD_VERSION
#define RISKD_VERSION "unknown"
#endif

#ifndef RISKD_CONFDIR
#define RISKD_CONFDIR "/etc/riskd"
#endif
#define DEFAULT_CONFIG RISKD_CONFDIR "/riskd.yaml"

static unsigned watchdog_secs;

static void on_stop(int sig)
{
        (void)sig;
        if (!daemon_stop) {
                daemon_stop = 1;
                if (watchdog_secs)
                        alarm(watchdog_secs);
        }
}

static void on_hup(int sig)
{
        (void)sig;
        daemon_hup = 1;
}

static void on_alarm(int sig)
{
        (void)sig;
        static const char msg[] = "<3>shutdown took longer than shutdown_timeout; exiting with status 1\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)w;
        _exit(1);
}

static void signals_setup(void)
{
        struct sigaction sa = {0};
        sigemptyset(&sa.sa_mask);
        sa.sa_handler = on_stop;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sa.sa_handler = on_hup;
        sigaction(SIGHUP, &sa, NULL);
        sa.sa_handler = on_alarm;
        sigaction(SIGALRM, &sa, NULL);
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
}

static void usage(FILE *f)
{
        fputs("usage: riskd [--config FILE] [--check-config]\n"
              "       riskd --version\n"
              "\n"
              "  -c, --config FILE    the configuration (default " DEFAULT_CONFIG ")\n"
              "      --check-config   check the configuration and the rules, print the settings, exit\n"
              "  -V, --version        print the version\n"
              "\n"
              "exit status: 0 stopped by a signal, 1 fatal error, 2 bad arguments, configuration or rules\n",
              f);
}

static int check_kafka_prop(const char *name, const char *value, char **ret_msg)
{
        return kafka_prop_check(name, value, config_kafka_secret(name), ret_msg);
}

static int check_clients(const Config *c, char **ret_msg)
{
        KafkaProp *props = xcalloc(c->nkafka + 1, sizeof(KafkaProp));
        for (uint32_t i = 0; i < c->nkafka; i++)
                props[i] = (KafkaProp){c->kafka[i].name, c->kafka[i].value, config_kafka_secret(c->kafka[i].name)};
        KafkaSettings ks = {.brokers = c->brokers, .props = props, .nprops = c->nkafka};
        int r = kafka_clients_check(&ks, c->group_id, c->transactions ? c->transactional_id : NULL, ret_msg);
        free(props);
        return r;
}

static int check_rules(void *ud, const char *dir, DiagList *dl)
{
        return rules_load(dir, dl, (RuleSet **)ud);
}

/*
 * Everything riskd checks before it talks to a broker, for --check-config
 * and for a start alike: the file and every setting, the HTTP address, the
 * Kafka clients librdkafka would build, the rules.  Returns 0 with *ret_cfg
 * and *ret_rs, or 1 with the problems in dl (warnings may come with 0).
 */
static int startup_check(const char *path, DiagList *dl, Config **ret_cfg, RuleSet **ret_rs)
{
        RuleSet *rs = NULL;
        const ConfigChecks ck = {.kafka_prop = check_kafka_prop,
                                 .listen = httpd_listen_check,
                                 .clients = check_clients,
                                 .rules = check_rules,
                                 .ud = &rs};
        if (config_load(path, &ck, dl, ret_cfg) != 0) {
                rules_unref(rs);
                return 1;
        }
        *ret_rs = rs;
        return 0;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                {"config", required_argument, NULL, 'c'},
                {"check-config", no_argument, NULL, 'k'},
                {"version", no_argument, NULL, 'V'},
                {"help", no_argument, NULL, 'h'},
                {0},
        };
        const char *path = DEFAULT_CONFIG;
        bool check = false;
        int c;
        while ((c = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
                switch (c) {
                case 'c': path = optarg; break;
                case 'k': check = true; break;
                case 'V':
                        printf("riskd %s (librdkafka %s%s%s)\n", RISKD_VERSION, rd_kafka_version_str(),
                               memstats_allocator() ? ", " : "", memstats_allocator() ? memstats_allocator() : "");
                        return 0;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind != argc) {
                fprintf(stderr, "riskd: unexpected argument '%s'\n", argv[optind]);
                usage(stderr);
                return 2;
        }

        DiagList dl = {0};
        Config *cfg = NULL;
        RuleSet *rs = NULL;
        if (startup_check(path, &dl, &cfg, &rs) != 0) {
                /* with source lines and carets, in the journal too */
                diag_print_text(stderr, &dl, check && isatty(STDERR_FILENO));
                fprintf(stderr, "%sriskd: %s: %u error%s%s\n", check ? "" : "<3>", path, dl.nerrors,
                        dl.nerrors == 1 ? "" : "s", check ? "" : "; not starting");
                diag_list_deinit(&dl);
                return 2;
        }
        if (check) {
                diag_print_text(stderr, &dl, isatty(STDERR_FILENO));
                Buf b = {0};
                config_describe(cfg, &b);
                fputs(b.p, stdout);
                buf_free(&b);
                printf("# %s: ok; rules %s: %u rules, version %s\n", path, cfg->rules, rs->nrules, rs->version);
                diag_list_deinit(&dl);
                rules_unref(rs);
                config_free(cfg);
                return 0;
        }
        log_set_max_prio(cfg->log_level);
        log_diags(&dl);
        diag_list_deinit(&dl);

        notify_init();
        watchdog_secs = (unsigned)((cfg->shutdown_timeout_ms + 999) / 1000);
        signals_setup();

        uint32_t shadow = 0;
        for (uint32_t i = 0; i < rs->nrules; i++)
                shadow += rs->rules[i].status == RULE_SHADOW;
        Buf in = {0};
        for (uint32_t i = 0; i < cfg->ninput_topics; i++)
                buf_printf(&in, "%s%s", i ? "," : "", cfg->input_topics[i]);
        log_notice("riskd %s starting: rules %s version %s (%u rules, %u shadow, %u event types); group %s, input %s; "
                   "transactions %s%s%s; librdkafka %s",
                   RISKD_VERSION, cfg->rules, rs->version, rs->nrules, shadow, rs->schema.ntypes, cfg->group_id, in.p,
                   cfg->transactions ? "on (transactional_id " : "off (idempotent producer, effectively-once",
                   cfg->transactions ? cfg->transactional_id : "", ")", rd_kafka_version_str());
        buf_free(&in);
        if (log_enabled(LOG_PRIO_DEBUG)) {
                Buf b = {0};
                config_describe(cfg, &b);
                for (char *line = b.p, *nl; line && *line; line = nl + 1) {
                        nl = strchr(line, '\n');
                        *nl = 0;
                        log_debug("config: %s", line);
                }
                buf_free(&b);
        }

        int status = 1;
        Loop *l = NULL;
        int r = loop_new(&l, cfg, rs);
        if (r == 0)
                status = loop_run(l);
        else if (r == -ECANCELED) /* stopped while it waited for the brokers */
                status = 0;
        loop_free(l);
        rules_unref(rs);
        config_free(cfg);
        log_notice("exit status %d", status);
        return status;
}
