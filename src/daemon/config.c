/*
 * The daemon's configuration: one table of every setting (as redis'
 * config.c), a YAML walker that checks a file against it, and the
 * defaults.  See config.h; the commented example is systemd/riskd.yaml.
 *
 * Every setting and its default:
 *
 *   brokers            string    (required)  bootstrap servers, "host:port,host:port"
 *   group_id           string    riskd       consumer group of all riskd instances
 *   input_topics       list      [risk.events]  topics of events, keyed by enterprise id,
 *                                           co-partitioned (same partition count)
 *   topics:
 *     alerts           string    risk.alerts
 *     shadow           string    risk.alerts.shadow   alerts of status: shadow rules
 *     adjustments      string    risk.adjustments
 *     alert_states     string    risk.alert_states    alert lifecycle transitions
 *     dead_letters     string    riskd.dlq
 *     changelog        string    riskd.changelog      compacted; at least as many
 *                                                     partitions as the input topics
 *     enterprises      string    risk.enterprises     compacted, partitioned like the
 *                                                     changelog: each enterprise's
 *                                                     current document; "" writes none
 *   rules              string    /etc/riskd/rules     the rules directory (RISKD_CONFDIR/rules:
 *                                                     sysconfdir/riskd/rules of the install)
 *   transactions       bool      true        false: idempotent producer, effectively-once
 *   transactional_id   string    riskd-<hostname>     stable and unique per instance
 *   commit_interval    duration  200ms       1ms .. 60s: a batch (one transaction) lasts
 *                                           at most this long
 *   batch_max          integer   20000       1 .. 10000000 events per batch
 *   grace              duration  0s          0 .. 30d: reordering window behind the
 *                                           watermark (older events: too_late)
 *   limits:                                  (the engine's, EngineConfig)
 *     max_enterprises  integer   4000000     per partition; new ones beyond: over_limit
 *     recent_ids       integer   8           0 .. 65535 event ids remembered per enterprise
 *     max_window_rows  integer   100000      rows per enterprise per aggregate
 *     max_keys         integer   4096        per: keys per enterprise per rule
 *     max_held         integer   1000000     events held for reordering
 *     max_event_bytes  integer   1048576     1 .. 67108864; longer events: too_large
 *     max_state_bytes  integer   (computed)  all partitions' state together, bytes; past it
 *                                           new enterprises: over_limit; 0 = none; default
 *                                           50% of the cgroup's memory.max, else of
 *                                           physical memory (src/daemon/budget.h)
 *   shutdown_timeout   duration  10s         1s .. 10m: SIGTERM to exit, else exit 1
 *   stall_timeout      duration  30s         0 (off) .. 1h: an input partition with
 *                                           nothing fetched this long while the broker
 *                                           holds records past it is sought again
 *   http_listen        string    ""          HOST:PORT of the HTTP endpoint (metrics, health,
 *                                           enterprises, rules, reload); empty = off
 *   http_hosts         list      [localhost] names a Host header may carry besides the
 *                                           listen address (others: 421, DNS rebinding)
 *   http_reload        bool      false       serve POST /v1/reload (with the token)
 *   http_reload_token_file string ""        the bearer token of POST /v1/reload: one line,
 *                                           mode 0600 or stricter (C013, C014)
 *   http_connections_per_address integer 64  1 .. 1024 open connections from one address
 *   http_head_timeout  duration  10s         100ms .. 5m: a request head (request line and
 *                                           headers) must be in within this, however slow
 *   http_console       string    RISKD_DATADIR/riskd/console  the web console's files, served
 *                                           at / (share/riskd/console of the install); "" = off
 *   http_javascript    string    /usr/share/javascript  Debian's JavaScript libraries
 *                                           (libjs-chart.js), at /javascript/; "" = off
 *   http_events_buffer integer   1048576     4096 .. 1073741824 bytes queued for one
 *                                           GET /v1/events client; past it the client is
 *                                           dropped (a slow client never slows riskd)
 *   http_region_field  string    region_code the profile field /v1/enterprises and
 *                                           /v1/summary group by region; "" = none
 *   http_category_field string   category    the profile field /v1/summary groups by
 *                                           food category; "" = none
 *   log_level          enum      info        err | warning | notice | info | debug
 *   kafka              map       {}          librdkafka properties for both clients,
 *                                           strings passed as-is (TLS, SASL, timeouts)
 *
 * Durations are written like the rules' ("500ms", "10s", "5m", "1h", "1d");
 * "0" is 0.  Unknown keys and bad values are errors.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "include/riskd/value.h"
#include "src/daemon/config.h"
#include "src/daemon/config_int.h"
#include "src/daemon/log.h"

#ifndef RISKD_CONFDIR
#define RISKD_CONFDIR "/etc/riskd"
#endif
#ifndef RISKD_DATADIR
#define RISKD_DATADIR "/usr/share"
#endif

#define OFF(f) offsetof(Config, f)
#define MS_S 1000LL
#define MS_M (60 * MS_S)
#define MS_D (24 * 60 * MS_M)

const ConfigSetting config_settings[] = {
        {"brokers", CT_STRING, OFF(brokers), 0, "", 0, 0,
         "bootstrap servers, host:port,host:port (required)"},
        {"group_id", CT_NAME, OFF(group_id), 0, "riskd", 0, 0, "consumer group of all riskd instances"},
        {"input_topics", CT_LIST, OFF(input_topics), OFF(ninput_topics), "risk.events", 0, 0,
         "topics of events keyed by enterprise id, co-partitioned"},
        {"topics", CT_GROUP, 0, 0, NULL, 0, 0, "output topic names"},
        {"topics.alerts", CT_NAME, OFF(topics.alerts), 0, "risk.alerts", 0, 0, "alerts"},
        {"topics.shadow", CT_NAME, OFF(topics.shadow), 0, "risk.alerts.shadow", 0, 0, "alerts of shadow rules"},
        {"topics.adjustments", CT_NAME, OFF(topics.adjustments), 0, "risk.adjustments", 0, 0,
         "supervision adjustments"},
        {"topics.alert_states", CT_NAME, OFF(topics.alert_states), 0, "risk.alert_states", 0, 0,
         "alert lifecycle transitions (riskd.alert_state/1)"},
        {"topics.dead_letters", CT_NAME, OFF(topics.dead_letters), 0, "riskd.dlq", 0, 0,
         "rejected input, original bytes with riskd.* headers"},
        {"topics.changelog", CT_NAME, OFF(topics.changelog), 0, "riskd.changelog", 0, 0,
         "state changelog, compacted, partitioned like the input"},
        {"topics.enterprises", CT_STRING, OFF(topics.enterprises), 0, "risk.enterprises", 0, 0,
         "current document of each enterprise, compacted, partitioned like the input; \"\": off"},
        {"rules", CT_NAME, OFF(rules), 0, RISKD_CONFDIR "/rules", 0, 0, "the rules directory"},
        {"transactions", CT_BOOL, OFF(transactions), 0, "true", 0, 0,
         "exactly-once transactions; false: idempotent producer, effectively-once"},
        {"transactional_id", CT_NAME, OFF(transactional_id), 0, NULL, 0, 0,
         "stable and unique per instance (default riskd-<hostname>)"},
        {"commit_interval", CT_DURATION, OFF(commit_interval_ms), 0, "200ms", 1, 60 * MS_S,
         "longest batch (one transaction)"},
        {"batch_max", CT_UINT, OFF(batch_max), 0, "20000", 1, 10000000, "most events per batch"},
        {"grace", CT_DURATION, OFF(grace_ms), 0, "0s", 0, ENGINE_GRACE_MAX_MS,
         "reordering window behind the watermark"},
        {"limits", CT_GROUP, 0, 0, NULL, 0, 0, "engine limits per partition"},
        /* these defaults are engine_config_default()'s (checked in config_new_default) */
        {"limits.max_enterprises", CT_UINT, OFF(limits.max_enterprises), 0, "4000000", 1, UINT32_MAX,
         "enterprises per partition; new ones beyond: over_limit"},
        {"limits.recent_ids", CT_UINT, OFF(limits.recent_ids), 0, "8", 0, ENGINE_RECENT_IDS_MAX,
         "event ids remembered per enterprise (duplicates)"},
        {"limits.max_window_rows", CT_UINT, OFF(limits.max_window_rows), 0, "100000", 1, UINT32_MAX,
         "rows per enterprise per aggregate"},
        {"limits.max_keys", CT_UINT, OFF(limits.max_keys), 0, "4096", 0, UINT32_MAX,
         "per: keys per enterprise per rule"},
        {"limits.max_held", CT_UINT, OFF(limits.max_held), 0, "1000000", 1, UINT32_MAX,
         "events held for reordering"},
        {"limits.max_event_bytes", CT_UINT, OFF(limits.max_event_bytes), 0, "1048576", 1, 64 << 20,
         "longest event; longer: too_large"},
        {"limits.max_state_bytes", CT_UINT, OFF(limits.max_state_bytes), 0, NULL, 0, INT64_MAX,
         "state of all partitions together, bytes; new enterprises beyond: over_limit; 0 = none "
         "(default: half the cgroup's memory.max, else of physical memory)"},
        {"shutdown_timeout", CT_DURATION, OFF(shutdown_timeout_ms), 0, "10s", MS_S, 10 * MS_M,
         "from SIGTERM to exit; exceeded: exit 1"},
        {"stall_timeout", CT_DURATION, OFF(stall_timeout_ms), 0, "30s", 0, 60 * MS_M,
         "nothing fetched this long from a partition that has records: seek again; 0 = off"},
        {"http_listen", CT_STRING, OFF(http_listen), 0, "", 0, 0,
         "HOST:PORT of the HTTP endpoint, e.g. 127.0.0.1:9464; empty = off"},
        {"http_hosts", CT_HOSTS, OFF(http_hosts), OFF(nhttp_hosts), "localhost", 0, 0,
         "names a Host header may carry besides the listen address"},
        {"http_reload", CT_BOOL, OFF(http_reload), 0, "false", 0, 0, "serve POST /v1/reload (with the token)"},
        {"http_reload_token_file", CT_STRING, OFF(http_reload_token_file), 0, "", 0, 0,
         "the bearer token of POST /v1/reload, one line, mode 0600"},
        {"http_connections_per_address", CT_UINT, OFF(http_per_address), 0, "64", 1, 1024,
         "open HTTP connections from one client address"},
        {"http_head_timeout", CT_DURATION, OFF(http_head_timeout_ms), 0, "10s", 100, 5 * MS_M,
         "a request head must be in within this, however slowly its bytes come"},
        {"http_console", CT_STRING, OFF(http_console), 0, RISKD_DATADIR "/riskd/console", 0, 0,
         "the web console's files, served at /; empty = off"},
        {"http_javascript", CT_STRING, OFF(http_javascript), 0, "/usr/share/javascript", 0, 0,
         "Debian's JavaScript libraries for the console, served at /javascript/; empty = off"},
        {"http_events_buffer", CT_UINT, OFF(http_events_buffer), 0, "1048576", 4096, 1 << 30,
         "bytes queued for one GET /v1/events client; past it the client is dropped"},
        {"http_region_field", CT_STRING, OFF(http_region_field), 0, "region_code", 0, 0,
         "the profile field the query API groups and filters regions by; empty = none"},
        {"http_category_field", CT_STRING, OFF(http_category_field), 0, "category", 0, 0,
         "the profile field the query API groups food categories by; empty = none"},
        {"log_level", CT_LOGLEVEL, OFF(log_level), 0, "info", 0, 0, "err, warning, notice, info or debug"},
        {"kafka", CT_KAFKA, 0, 0, NULL, 0, 0, "librdkafka properties for both clients"},
};
const size_t config_nsettings = ARRAY_SIZE(config_settings);

static const char *const log_levels[] = {"err", "warning", "notice", "info", "debug"};

/* Words that make a name a secret's, and a line that holds one possibly
 * part of a secret (a flow mapping: kafka: {sasl.password: ...}). */
bool config_secret_word(const char *s)
{
        static const char *const words[] = {"password", "secret", "sasl", "token", "credential", "ssl.key"};
        for (size_t i = 0; i < ARRAY_SIZE(words); i++)
                if (strcasestr(s, words[i]))
                        return true;
        return false;
}

bool config_kafka_secret(const char *name)
{
        /* librdkafka's names are dotted: "key" in one is a key's (ssl.key.pem,
         * ssl.keystore.location, ssl_engine...); riskd's own (max_keys) are not */
        return config_secret_word(name) || (strchr(name, '.') && strcasestr(name, "key"));
}

const ConfigSetting *config_setting_find(const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE(config_settings); i++)
                if (strcmp(config_settings[i].name, name) == 0)
                        return &config_settings[i];
        return NULL;
}

static void fmt_bound(const ConfigSetting *s, int64_t v, char *out, size_t n)
{
        if (s->type == CT_DURATION)
                duration_format(v, out, n);
        else
                snprintf(out, n, "%lld", (long long)v);
}

/*
 * One scalar into its field.  Returns NULL, or why the value is bad (with
 * *hint for the help line), in the arena.
 */
const char *config_scalar_set(Config *c, const ConfigSetting *s, const char *v, size_t n, const char **hint)
{
        Arena *a = &c->arena;
        *hint = NULL;
        switch (s->type) {
        case CT_STRING:
        case CT_NAME:
                if (s->type == CT_NAME && n == 0) {
                        *hint = arena_printf(a, "remove the line to get the default%s%s%s", s->def ? " (" : "",
                                             s->def ? s->def : "", s->def ? ")" : "");
                        return "must not be empty";
                }
                *(char **)config_field(c, s) = arena_strndup(a, v, n);
                return NULL;
        case CT_BOOL:
                if ((n == 4 && strncasecmp(v, "true", 4) == 0) || (n == 3 && strncasecmp(v, "yes", 3) == 0) ||
                    (n == 2 && strncasecmp(v, "on", 2) == 0)) {
                        *(bool *)config_field(c, s) = true;
                        return NULL;
                }
                if ((n == 5 && strncasecmp(v, "false", 5) == 0) || (n == 2 && strncasecmp(v, "no", 2) == 0) ||
                    (n == 3 && strncasecmp(v, "off", 3) == 0)) {
                        *(bool *)config_field(c, s) = false;
                        return NULL;
                }
                *hint = "write true or false";
                return arena_printf(a, "'%.*s' is not a boolean", (int)n, v);
        case CT_DURATION: {
                int64_t ms = 0;
                if (!(n == 1 && v[0] == '0') && duration_parse(v, n, &ms) < 0) {
                        *hint = "a number and a unit: 500ms, 10s, 5m, 1h, 1d";
                        return arena_printf(a, "'%.*s' is not a duration", (int)n, v);
                }
                if (ms < s->min || ms > s->max) {
                        char lo[32], hi[32];
                        fmt_bound(s, s->min, lo, sizeof(lo));
                        fmt_bound(s, s->max, hi, sizeof(hi));
                        *hint = arena_printf(a, "between %s and %s", lo, hi);
                        return arena_printf(a, "%.*s is out of range", (int)n, v);
                }
                *(int64_t *)config_field(c, s) = ms;
                return NULL;
        }
        case CT_UINT: {
                uint64_t x = 0;
                size_t i = 0;
                bool over = false;
                for (; i < n && v[i] >= '0' && v[i] <= '9'; i++) {
                        if (x > (UINT64_MAX - 9) / 10)
                                over = true;
                        else
                                x = x * 10 + (uint64_t)(v[i] - '0');
                }
                if (i == 0 || i != n) {
                        *hint = "a whole number, digits only";
                        return arena_printf(a, "'%.*s' is not a whole number", (int)n, v);
                }
                if (over || x < (uint64_t)s->min || x > (uint64_t)s->max) {
                        *hint = arena_printf(a, "between %lld and %lld", (long long)s->min, (long long)s->max);
                        return arena_printf(a, "%.*s is out of range", (int)n, v);
                }
                *(uint64_t *)config_field(c, s) = x;
                return NULL;
        }
        case CT_LOGLEVEL:
                for (size_t i = 0; i < ARRAY_SIZE(log_levels); i++)
                        if (strlen(log_levels[i]) == n && strncmp(log_levels[i], v, n) == 0) {
                                *(int *)config_field(c, s) = LOG_PRIO_ERR + (int)i;
                                return NULL;
                        }
                {
                        char *w = arena_strndup(a, v, n);
                        const char *sug = diag_suggest(w, log_levels, ARRAY_SIZE(log_levels));
                        for (size_t i = 0; !sug && n && i < ARRAY_SIZE(log_levels); i++)
                                if (strncasecmp(log_levels[i], w, n) == 0) /* "warn", "dbg" no; "warn" yes */
                                        sug = log_levels[i];
                        *hint = sug ? arena_printf(a, "did you mean '%s'? (err, warning, notice, info, debug)", sug)
                                    : "one of err, warning, notice, info, debug";
                        return arena_printf(a, "'%s' is not a log level", w);
                }
        default:
                return "not a scalar setting";
        }
}

void config_list_set(Config *c, const ConfigSetting *s, char **items, uint32_t n)
{
        *(char ***)config_field(c, s) = items;
        *(uint32_t *)((char *)c + s->count_off) = n;
}

Config *config_new_default(void)
{
        Config *c = xcalloc(1, sizeof(*c));
        arena_init(&c->arena);
        for (size_t i = 0; i < ARRAY_SIZE(config_settings); i++) {
                const ConfigSetting *s = &config_settings[i];
                if (!s->def)
                        continue;
                if (s->type == CT_LIST || s->type == CT_HOSTS) {
                        char **items = arena_alloc(&c->arena, sizeof(char *));
                        items[0] = arena_strdup(&c->arena, s->def);
                        config_list_set(c, s, items, 1);
                        continue;
                }
                const char *hint;
                const char *why = config_scalar_set(c, s, s->def, strlen(s->def), &hint);
                if (why) { /* a bad row in the table */
                        fprintf(stderr, "riskd: bad default of %s: %s\n", s->name, why);
                        abort();
                }
        }
        char host[256];
        if (gethostname(host, sizeof(host)) < 0 || !host[0])
                snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = 0;
        c->transactional_id = arena_printf(&c->arena, "riskd-%s", host);
        c->limits.max_state_bytes = CONFIG_AUTO;
        c->limits.max_state_bytes_from = "riskd.yaml";

        /* the limits' defaults are the engine's */
        EngineConfig ec, dc;
        engine_config_default(&dc);
        config_engine(c, &ec);
        if (memcmp(&ec, &dc, sizeof(ec)) != 0) {
                fprintf(stderr, "riskd: the limits' defaults in config.c differ from engine_config_default()\n");
                abort();
        }
        return c;
}

Config *config_free(Config *c)
{
        if (!c)
                return NULL;
        arena_deinit(&c->arena);
        free(c);
        return NULL;
}

void config_engine(const Config *c, EngineConfig *ret)
{
        engine_config_default(ret);
        ret->grace_ms = c->grace_ms;
        ret->max_enterprises = (uint32_t)c->limits.max_enterprises;
        ret->recent_ids = (uint32_t)c->limits.recent_ids;
        ret->max_window_rows = (uint32_t)c->limits.max_window_rows;
        ret->max_keys = (uint32_t)c->limits.max_keys;
        ret->max_held = (uint32_t)c->limits.max_held;
        ret->max_event_bytes = (uint32_t)c->limits.max_event_bytes;
}

void config_describe(const Config *c, Buf *out)
{
        Config *cc = (Config *)c;
        for (size_t i = 0; i < ARRAY_SIZE(config_settings); i++) {
                const ConfigSetting *s = &config_settings[i];
                char tmp[64];
                switch (s->type) {
                case CT_GROUP:
                        continue;
                case CT_STRING:
                case CT_NAME:
                        buf_printf(out, "%s = %s\n", s->name, *(char **)config_field(cc, s));
                        break;
                case CT_BOOL:
                        buf_printf(out, "%s = %s\n", s->name, *(bool *)config_field(cc, s) ? "true" : "false");
                        break;
                case CT_DURATION:
                        duration_format(*(int64_t *)config_field(cc, s), tmp, sizeof(tmp));
                        buf_printf(out, "%s = %s\n", s->name, tmp);
                        break;
                case CT_UINT:
                        buf_printf(out, "%s = %llu", s->name, (unsigned long long)*(uint64_t *)config_field(cc, s));
                        if (s->off == OFF(limits.max_state_bytes))
                                buf_printf(out, " (%s)", c->limits.max_state_bytes_from);
                        buf_putc(out, '\n');
                        break;
                case CT_LOGLEVEL:
                        buf_printf(out, "%s = %s\n", s->name, log_prio_name(*(int *)config_field(cc, s)));
                        break;
                case CT_LIST:
                case CT_HOSTS: {
                        char **v = *(char ***)config_field(cc, s);
                        uint32_t n = *(uint32_t *)((char *)cc + s->count_off);
                        buf_printf(out, "%s = [", s->name);
                        for (uint32_t k = 0; k < n; k++)
                                buf_printf(out, "%s%s", k ? ", " : "", v[k]);
                        buf_puts(out, "]\n");
                        break;
                }
                case CT_KAFKA:
                        for (uint32_t k = 0; k < c->nkafka; k++)
                                buf_printf(out, "kafka.%s = %s\n", c->kafka[k].name,
                                           config_kafka_secret(c->kafka[k].name) ? "(secret)" : c->kafka[k].value);
                        break;
                }
        }
}
