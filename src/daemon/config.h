/*
 * The daemon's configuration (/etc/riskd/riskd.yaml): every setting is one
 * row of the table in config.c (name, type, default, bounds, doc), the one
 * place that knows them; systemd/riskd.yaml is the commented example.
 *
 * Loading collects every problem as a diagnostic with file:line:col, the
 * source line and a suggestion, like the rule compiler, and goes on after
 * an error.  Values of secret kafka: properties (names containing
 * "password", "secret", "sasl" or "ssl.key") never appear in a diagnostic,
 * a log line or config_describe().
 */
#ifndef RISKD_DAEMON_CONFIG_H
#define RISKD_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "include/riskd/diag.h"
#include "include/riskd/engine.h"
#include "include/riskd/util.h"

/* One kafka: entry, passed as-is to librdkafka for both clients. */
typedef struct ConfigKafkaProp {
        char *name;
        char *value;
} ConfigKafkaProp;

typedef struct Config {
        char *path;

        char *brokers;
        char *group_id;
        char **input_topics;
        uint32_t ninput_topics;
        struct {
                char *alerts, *shadow, *adjustments, *dead_letters, *changelog;
                char *alert_states;     /* riskd.alert_state/1 */
                char *enterprises;      /* "": not written */
        } topics;
        char *rules;
        bool transactions;
        char *transactional_id;
        int64_t commit_interval_ms;
        uint64_t batch_max;
        int64_t grace_ms;
        struct {
                uint64_t max_enterprises, recent_ids, max_window_rows, max_keys, max_held, max_event_bytes;
                /* the process's, not a partition's (src/daemon/budget.h); CONFIG_AUTO
                 * until config_load works out the default */
                uint64_t max_state_bytes;
                const char *max_state_bytes_from;     /* where its value came from */
        } limits;
        int64_t shutdown_timeout_ms;
        int64_t stall_timeout_ms;        /* 0: no fetch stall watch */
        char *http_listen;
        bool http_reload;                /* POST /v1/reload served (with the token) */
        char *http_reload_token_file;
        char **http_hosts;               /* names a Host header may carry */
        uint32_t nhttp_hosts;
        char *http_reload_token;         /* read from the file at load (secret) */
        uint64_t http_per_address;       /* connections from one client address */
        int64_t http_head_timeout_ms;    /* a request head must be in within this */
        char *http_console;              /* the console's files, served at /; "" none */
        char *http_javascript;           /* Debian's JavaScript libraries, at /javascript/; "" none */
        uint64_t http_events_buffer;     /* bytes queued for one /v1/events client */
        char *http_region_field;         /* the profile's region field, "" none */
        char *http_category_field;       /* the profile's food category field, "" none */
        int log_level;           /* syslog priority: 3 err .. 7 debug */
        ConfigKafkaProp *kafka;
        uint32_t nkafka;

        Arena arena;             /* owns every string above */
} Config;

/* Checks one kafka: property the way librdkafka will take it: 0, or < 0
 * with *ret_msg set (malloc'd; it must not quote the value of a secret):
 * -ENOENT for an unknown property, -EINVAL for a bad value. */
typedef int (*ConfigKafkaCheckFn)(const char *name, const char *value, char **ret_msg);

/*
 * What the daemon checks beyond the file's own rules, each may be NULL:
 * the modules that use a setting know what they accept (httpd.c, kafka.c,
 * the rule loader), config.c knows where it was written.  The whole-file
 * checks run when every setting was read without error; their problems are
 * reported at the setting they concern.
 */
typedef struct ConfigChecks {
        ConfigKafkaCheckFn kafka_prop;                        /* each kafka: property (C010) */
        int (*listen)(const char *spec, char **ret_msg);      /* http_listen, when set (C009) */
        int (*clients)(const Config *c, char **ret_msg);      /* librdkafka's clients as a whole (C011) */
        /* the rules directory: 0, > 0 when it has errors (in dl), or a
         * negative errno when it cannot be read (C012) */
        int (*rules)(void *ud, const char *dir, DiagList *dl);
        void *ud;
} ConfigChecks;

/*
 * Load path and run checks (may be NULL) on it.  Returns 0 with *ret set;
 * 1 when there were errors (all in dl, *ret untouched).  A file that cannot
 * be read is an error (C002) too.  Every diagnostic of the configuration
 * has a C code (riskd.yaml(5)); the rules' keep theirs.
 */
int config_load(const char *path, const ConfigChecks *checks, DiagList *dl, Config **ret);
/* The defaults alone (what an empty file gives, without the brokers check). */
Config *config_new_default(void);
Config *config_free(Config *c);

/* limits.max_state_bytes not written: its default is computed */
#define CONFIG_AUTO UINT64_MAX

/* The engine limits and grace of c. */
void config_engine(const Config *c, EngineConfig *ret);

/* Whether a kafka: property holds a secret (never logged). */
bool config_kafka_secret(const char *name);

/* One line per setting, "name = value" (secrets shown as "(secret)"): the
 * effective configuration, for --check-config and the debug log. */
void config_describe(const Config *c, Buf *out);

#endif
