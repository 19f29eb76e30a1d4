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
 *     dead_letters     string    riskd.dlq
 *     changelog        string    riskd.changelog      compacted; at least as many
 *                                                     partitions as the input topics
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
 *   log_level          enum      info        err | warning | notice | info | debug
 *   kafka              map       {}          librdkafka properties for both clients,
 *                                           strings passed as-is (TLS, SASL, timeouts)
 *
 * Durations are written like the rules' ("500ms", "10s", "5m", "1h", "1d");
 * "0" is 0.  Unknown keys and bad values are errors.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "include/riskd/value.h"
#include "src/daemon/budget.h"
#include "src/daemon/config.h"
#include "src/daemon/log.h"
#include "src/util/yaml.h"

#ifndef RISKD_CONFDIR
#define RISKD_CONFDIR "/etc/riskd"
#endif

typedef enum ConfType {
        CT_STRING,   /* any scalar, may be empty */
        CT_NAME,     /* a non-empty scalar */
        CT_BOOL,
        CT_DURATION, /* int64_t ms */
        CT_UINT,     /* uint64_t */
        CT_LIST,     /* sequence of names: char **, count at off + sizeof(char **) ... see below */
        CT_HOSTS,    /* sequence of host names, as CT_LIST; may be empty */
        CT_LOGLEVEL, /* int syslog priority */
        CT_GROUP,    /* a map of the settings named "<name>.*" */
        CT_KAFKA,    /* a map of strings */
} ConfType;

typedef struct ConfigSetting {
        const char *name;   /* "grace", "topics.alerts" */
        ConfType type;
        size_t off;         /* of the field in Config */
        size_t count_off;   /* CT_LIST: of the uint32_t count */
        const char *def;    /* the default as written in YAML; NULL: computed */
        int64_t min, max;   /* CT_UINT, CT_DURATION (ms) */
        const char *doc;
} ConfigSetting;

#define OFF(f) offsetof(Config, f)
#define MS_S 1000LL
#define MS_M (60 * MS_S)
#define MS_D (24 * 60 * MS_M)

static const ConfigSetting settings[] = {
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
        {"topics.dead_letters", CT_NAME, OFF(topics.dead_letters), 0, "riskd.dlq", 0, 0,
         "rejected input, original bytes with riskd.* headers"},
        {"topics.changelog", CT_NAME, OFF(topics.changelog), 0, "riskd.changelog", 0, 0,
         "state changelog, compacted, partitioned like the input"},
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
        {"log_level", CT_LOGLEVEL, OFF(log_level), 0, "info", 0, 0, "err, warning, notice, info or debug"},
        {"kafka", CT_KAFKA, 0, 0, NULL, 0, 0, "librdkafka properties for both clients"},
};

/* librdkafka properties riskd sets itself, and the setting to use instead. */
static const struct {
        const char *name, *instead;
} reserved[] = {
        {"bootstrap.servers", "use 'brokers:'"},
        {"metadata.broker.list", "use 'brokers:'"},
        {"group.id", "use 'group_id:'"},
        {"transactional.id", "use 'transactional_id:'"},
        {"enable.idempotence", "riskd sets it from 'transactions:'"},
        {"enable.auto.commit", "riskd commits offsets itself, with its output"},
        {"enable.auto.offset.store", "riskd commits offsets itself, with its output"},
        {"isolation.level", "riskd reads read_committed"},
        {"partition.assignment.strategy", "riskd uses the eager range assignor (co-partitioned input)"},
};

static const char *const log_levels[] = {"err", "warning", "notice", "info", "debug"};

/* Words that make a name a secret's, and a line that holds one possibly
 * part of a secret (a flow mapping: kafka: {sasl.password: ...}). */
static bool secret_word(const char *s)
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
        return secret_word(name) || (strchr(name, '.') && strcasestr(name, "key"));
}

static const ConfigSetting *setting_find(const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE(settings); i++)
                if (strcmp(settings[i].name, name) == 0)
                        return &settings[i];
        return NULL;
}

static void *field(Config *c, const ConfigSetting *s)
{
        return (char *)c + s->off;
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
static const char *scalar_set(Config *c, const ConfigSetting *s, const char *v, size_t n, const char **hint)
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
                *(char **)field(c, s) = arena_strndup(a, v, n);
                return NULL;
        case CT_BOOL:
                if ((n == 4 && strncasecmp(v, "true", 4) == 0) || (n == 3 && strncasecmp(v, "yes", 3) == 0) ||
                    (n == 2 && strncasecmp(v, "on", 2) == 0)) {
                        *(bool *)field(c, s) = true;
                        return NULL;
                }
                if ((n == 5 && strncasecmp(v, "false", 5) == 0) || (n == 2 && strncasecmp(v, "no", 2) == 0) ||
                    (n == 3 && strncasecmp(v, "off", 3) == 0)) {
                        *(bool *)field(c, s) = false;
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
                *(int64_t *)field(c, s) = ms;
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
                *(uint64_t *)field(c, s) = x;
                return NULL;
        }
        case CT_LOGLEVEL:
                for (size_t i = 0; i < ARRAY_SIZE(log_levels); i++)
                        if (strlen(log_levels[i]) == n && strncmp(log_levels[i], v, n) == 0) {
                                *(int *)field(c, s) = LOG_PRIO_ERR + (int)i;
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

static void list_set(Config *c, const ConfigSetting *s, char **items, uint32_t n)
{
        *(char ***)field(c, s) = items;
        *(uint32_t *)((char *)c + s->count_off) = n;
}

Config *config_new_default(void)
{
        Config *c = xcalloc(1, sizeof(*c));
        arena_init(&c->arena);
        for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
                const ConfigSetting *s = &settings[i];
                if (!s->def)
                        continue;
                if (s->type == CT_LIST || s->type == CT_HOSTS) {
                        char **items = arena_alloc(&c->arena, sizeof(char *));
                        items[0] = arena_strdup(&c->arena, s->def);
                        list_set(c, s, items, 1);
                        continue;
                }
                const char *hint;
                const char *why = scalar_set(c, s, s->def, strlen(s->def), &hint);
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

/* ---- the YAML walk ---- */

typedef struct Loader {
        Config *c;
        DiagList *dl;
        ConfigKafkaCheckFn check;
        SrcFile *f;
        uint32_t *hide;        /* per line: the byte from which it is not shown; UINT32_MAX: shown */
        char *shown;           /* line_lookup's last redacted line */
} Loader;

static const ConfigChecks no_checks;

/* Steps over s[i..n) in the quoting state *q (0, '\'' or '"'): *q is the
 * quote still open at the end.  A quote opens after a space, an indicator
 * or the start (not inside a word: it's), '#' after a space ends the line. */
static void quote_scan(const char *s, size_t i, size_t n, char *q)
{
        for (; i < n; i++) {
                char c = s[i];
                if (*q == '"') {
                        if (c == '\\')
                                i++;
                        else if (c == '"')
                                *q = 0;
                } else if (*q == '\'') {
                        if (c == '\'' && i + 1 < n && s[i + 1] == '\'')
                                i++;
                        else if (c == '\'')
                                *q = 0;
                } else if (c == '#' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t')) {
                        return;
                } else if ((c == '"' || c == '\'') && (i == 0 || strchr(" \t:,[{-", s[i - 1]))) {
                        *q = c;
                }
        }
}

/*
 * Which lines may show a secret, from the text alone (a syntax error
 * leaves no tree to ask): a key that names a secret hides the rest of its
 * line and every line after it up to the next one at the key's indentation
 * or less, and on through a quote it opened wherever the quote closes; a
 * line that names a secret elsewhere (a flow mapping) is hidden whole, with
 * the lines that continue it.  Blank and comment lines inside a value
 * belong to it (a block scalar's lines can look like either).
 */
static void secret_lines(Loader *L)
{
        const SrcFile *f = L->f;
        L->hide = xmalloc((f->nlines ? f->nlines : 1) * sizeof(uint32_t));
        bool in = false;
        size_t rindent = 0;
        char q = 0;
        for (uint32_t i = 0; i < f->nlines; i++) {
                uint32_t n = 0;
                const char *l = srcfile_line(f, i + 1, &n);
                size_t ind = 0;
                while (ind < n && (l[ind] == ' ' || l[ind] == '\t'))
                        ind++;
                bool blank = ind == n || l[ind] == '#';
                L->hide[i] = UINT32_MAX;
                if (in && (q || blank || ind > rindent)) {
                        L->hide[i] = (uint32_t)ind;
                        quote_scan(l, ind, n, &q);
                        continue;
                }
                in = false;
                q = 0;
                if (blank)
                        continue;
                /* the key: after "- ", quoted or up to ": " */
                size_t k = ind, colon = n;
                while (k + 1 < n && l[k] == '-' && l[k + 1] == ' ')
                        for (k += 2; k < n && l[k] == ' '; k++)
                                ;
                size_t ks = k;
                if (k < n && (l[k] == '"' || l[k] == '\'')) {
                        char kq = 0;
                        size_t e = k;
                        quote_scan(l, k, k + 1, &kq);
                        for (e = k + 1; e < n && kq; e++)
                                quote_scan(l, e, e + 1, &kq);
                        k = e;
                }
                for (; k < n; k++)
                        if (l[k] == ':' && (k + 1 == n || l[k + 1] == ' ' || l[k + 1] == '\t')) {
                                colon = k;
                                break;
                        }
                char *line = xstrndup(l, n);
                char *key = colon < n ? xstrndup(l + ks, colon - ks) : NULL;
                if (key && config_kafka_secret(key)) {
                        L->hide[i] = (uint32_t)colon + 1;
                        in = true;
                        rindent = ind;
                        quote_scan(l, colon + 1, n, &q);
                } else if (secret_word(line)) {
                        L->hide[i] = (uint32_t)ind;
                        in = true;
                        rindent = ind;
                        quote_scan(l, ind, n, &q);
                }
                free(key);
                free(line);
        }
}

/* Source lines for the diagnostics: never a part of a line that may hold
 * a secret (secret_lines): "  sasl.password: ***", a continuation "    ***". */
static const char *line_lookup(void *ud, const char *file, uint32_t line, uint32_t *len)
{
        Loader *L = ud;
        if (!L->f || strcmp(file, L->f->path) != 0)
                return NULL;
        const char *l = srcfile_line(L->f, line, len);
        if (!l || !L->hide || L->hide[line - 1] == UINT32_MAX)
                return l;
        uint32_t keep = L->hide[line - 1] < *len ? L->hide[line - 1] : *len;
        free(L->shown);
        L->shown = xasprintf("%.*s%s***", (int)keep, l, keep && l[keep - 1] == ':' ? " " : "");
        *len = (uint32_t)strlen(L->shown);
        return L->shown;
}

static const char *kind_name(YKind k)
{
        return k == Y_MAP ? "a mapping" : k == Y_SEQ ? "a list" : "a scalar";
}

/* Names of the settings directly under group ("" = top level), for
 * suggestions. */
static uint32_t group_names(const char *group, const char **out, uint32_t max)
{
        uint32_t n = 0;
        size_t gl = strlen(group);
        for (size_t i = 0; i < ARRAY_SIZE(settings) && n < max; i++) {
                const char *name = settings[i].name;
                if (gl) {
                        if (strncmp(name, group, gl) != 0 || name[gl] != '.')
                                continue;
                        name += gl + 1;
                } else if (strchr(name, '.'))
                        continue;
                out[n++] = name;
        }
        return n;
}

static void unknown_key(Loader *L, const char *group, const YNode *k)
{
        const char *names[64];
        uint32_t n = group_names(group, names, ARRAY_SIZE(names));
        const char *sug = diag_suggest(k->str, names, n);
        Buf hint = {0};
        if (sug)
                buf_printf(&hint, "did you mean '%s'?", sug);
        else {
                buf_puts(&hint, *group ? "the settings of " : "the settings are ");
                if (*group)
                        buf_printf(&hint, "%s: are ", group);
                for (uint32_t i = 0; i < n; i++)
                        buf_printf(&hint, "%s%s", i ? ", " : "", names[i]);
        }
        diag_add(L->dl, DIAG_C004, ynode_pos(k), hint.p, "unknown setting '%s%s%s'", group, *group ? "." : "",
                 k->str);
        buf_free(&hint);
}

static bool want_kind(Loader *L, const ConfigSetting *s, const YNode *v, YKind kind)
{
        if (v->kind == kind)
                return true;
        const char *hint = NULL;
        if (s->type == CT_LIST && v->kind == Y_SCALAR)
                hint = "write a list: [risk.events] or one '- name' per line";
        diag_add(L->dl, DIAG_C003, ynode_pos(v), hint, "%s: expected %s, not %s", s->name, kind_name(kind),
                 kind_name(v->kind));
        return false;
}

static bool topic_name_ok(const char *s)
{
        if (!*s || strlen(s) > 249 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
                        return false;
        return true;
}

/* A DNS name or an address literal, as the host part of a Host header. */
static bool host_name_ok(const char *s)
{
        size_t n = strlen(s);
        if (!n || n > 253)
                return false;
        if (strchr(s, ':')) {
                unsigned char a[16];
                return inet_pton(AF_INET6, s, a) == 1;
        }
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
                        return false;
        return s[0] != '.' && s[0] != '-';
}

static void load_kafka(Loader *L, const YNode *map)
{
        Config *c = L->c;
        c->kafka = arena_alloc(&c->arena, (map->n + 1) * sizeof(ConfigKafkaProp));
        for (uint32_t i = 0; i < map->n; i++) {
                const YNode *k = map->keys[i], *v = map->items[i];
                if (k->kind != Y_SCALAR || !k->len) {
                        diag_add(L->dl, DIAG_C010, ynode_pos(k), NULL, "kafka: a property name must be a scalar");
                        continue;
                }
                bool dup = false;
                for (uint32_t j = 0; j < i; j++)
                        if (map->keys[j]->kind == Y_SCALAR && strcmp(map->keys[j]->str, k->str) == 0)
                                dup = true;
                if (dup) {
                        diag_add(L->dl, DIAG_C010, ynode_pos(k), "remove one of them", "kafka.%s is set twice",
                                 k->str);
                        continue;
                }
                const char *instead = NULL;
                for (size_t r = 0; r < ARRAY_SIZE(reserved); r++)
                        if (strcmp(reserved[r].name, k->str) == 0)
                                instead = reserved[r].instead;
                if (instead) {
                        diag_add(L->dl, DIAG_C010, ynode_pos(k), instead, "kafka.%s is set by riskd", k->str);
                        continue;
                }
                bool secret = config_kafka_secret(k->str);
                if (v->kind != Y_SCALAR || ynode_is_null(v)) {
                        diag_add(L->dl, DIAG_C010, ynode_pos(secret ? k : v), "write the value as a string",
                                 "kafka.%s: expected a string value", k->str);
                        continue;
                }
                if (L->check) {
                        char *msg = NULL;
                        int r = L->check(k->str, v->str, &msg);
                        if (r < 0) {
                                /* the message of a secret's check never has its value;
                                 * point at the key, not the value, all the same */
                                diag_add(L->dl, DIAG_C010, ynode_pos(secret || r == -ENOENT ? k : v),
                                         r == -ENOENT ? "see librdkafka's CONFIGURATION.md" : NULL, "kafka.%s: %s",
                                         k->str, msg ? msg : "rejected by librdkafka");
                                free(msg);
                                continue;
                        }
                        free(msg);
                }
                ConfigKafkaProp *p = &c->kafka[c->nkafka++];
                p->name = arena_strdup(&c->arena, k->str);
                p->value = arena_strndup(&c->arena, v->str, v->len);
        }
}

static void load_setting(Loader *L, const ConfigSetting *s, const YNode *v);

static void load_map(Loader *L, const char *group, const YNode *map)
{
        for (uint32_t i = 0; i < map->n; i++) {
                const YNode *k = map->keys[i], *v = map->items[i];
                if (k->kind != Y_SCALAR) {
                        diag_add(L->dl, DIAG_C003, ynode_pos(k), NULL, "a setting name must be a scalar");
                        continue;
                }
                bool dup = false;
                for (uint32_t j = 0; j < i; j++)
                        if (map->keys[j]->kind == Y_SCALAR && strcmp(map->keys[j]->str, k->str) == 0)
                                dup = true;
                if (dup) {
                        diag_add(L->dl, DIAG_C005, ynode_pos(k), "remove one of them", "'%s%s%s' is set twice",
                                 group, *group ? "." : "", k->str);
                        continue;
                }
                char *name = *group ? xasprintf("%s.%s", group, k->str) : xstrdup(k->str);
                const ConfigSetting *s = setting_find(name);
                free(name);
                if (!s) {
                        unknown_key(L, group, k);
                        continue;
                }
                load_setting(L, s, v);
        }
}

static void load_setting(Loader *L, const ConfigSetting *s, const YNode *v)
{
        Config *c = L->c;
        if (ynode_is_null(v) && s->type == CT_STRING) {
                *(char **)field(c, s) = arena_strdup(&c->arena, "");
                return;
        }
        if (ynode_is_null(v)) {
                Buf hint = {0};
                if (s->def)
                        buf_printf(&hint, "remove the line to get the default (%s)", s->def);
                diag_add(L->dl, DIAG_C007, ynode_pos(v), hint.p, "%s: no value", s->name);
                buf_free(&hint);
                return;
        }
        switch (s->type) {
        case CT_GROUP:
                if (want_kind(L, s, v, Y_MAP))
                        load_map(L, s->name, v);
                return;
        case CT_KAFKA:
                if (want_kind(L, s, v, Y_MAP))
                        load_kafka(L, v);
                return;
        case CT_LIST: {
                if (!want_kind(L, s, v, Y_SEQ))
                        return;
                char **items = arena_alloc(&c->arena, (v->n + 1) * sizeof(char *));
                uint32_t n = 0;
                for (uint32_t i = 0; i < v->n; i++) {
                        const YNode *it = v->items[i];
                        if (it->kind != Y_SCALAR || ynode_is_null(it)) {
                                diag_add(L->dl, DIAG_C008, ynode_pos(it), NULL, "%s: expected a topic name",
                                         s->name);
                                continue;
                        }
                        if (!topic_name_ok(it->str)) {
                                diag_add(L->dl, DIAG_C008, ynode_pos(it), "letters, digits, '.', '_' and '-'",
                                         "'%s' is not a valid topic name", it->str);
                                continue;
                        }
                        bool dup = false;
                        for (uint32_t j = 0; j < n; j++)
                                dup |= strcmp(items[j], it->str) == 0;
                        if (dup) {
                                diag_add(L->dl, DIAG_C005, ynode_pos(it), "remove one of them",
                                         "%s: '%s' is listed twice", s->name, it->str);
                                continue;
                        }
                        items[n++] = arena_strndup(&c->arena, it->str, it->len);
                }
                if (v->n == 0)
                        diag_add(L->dl, DIAG_C008, ynode_pos(v), "name at least one topic", "%s: empty list",
                                 s->name);
                list_set(c, s, items, n);
                return;
        }
        case CT_HOSTS: {
                if (!want_kind(L, s, v, Y_SEQ))
                        return;
                char **items = arena_alloc(&c->arena, (v->n + 1) * sizeof(char *));
                uint32_t n = 0;
                for (uint32_t i = 0; i < v->n; i++) {
                        const YNode *it = v->items[i];
                        if (it->kind != Y_SCALAR || ynode_is_null(it) || !host_name_ok(it->str)) {
                                diag_add(L->dl, DIAG_C007, ynode_pos(it),
                                         "a name or address as a Host header carries it, without the port: "
                                         "riskd.example.net, 10.0.0.5, ::1",
                                         "%s: expected a host name", s->name);
                                continue;
                        }
                        items[n++] = arena_strndup(&c->arena, it->str, it->len);
                }
                list_set(c, s, items, n);
                return;
        }
        default:
                break;
        }
        if (!want_kind(L, s, v, Y_SCALAR))
                return;
        const char *hint;
        const char *why = scalar_set(c, s, v->str, v->len, &hint);
        if (why) {
                diag_add(L->dl, DIAG_C007, ynode_pos(v), hint, "%s: %s", s->name, why);
                return;
        }
        if (s->type == CT_NAME && strncmp(s->name, "topics.", 7) == 0 && !topic_name_ok(v->str))
                diag_add(L->dl, DIAG_C008, ynode_pos(v), "letters, digits, '.', '_' and '-'",
                         "'%s' is not a valid topic name", v->str);
}

/* Whole-file checks, after every setting was read. */
static void check_all(Loader *L, const YNode *root)
{
        Config *c = L->c;
        SrcPos at = root ? ynode_pos(root) : (SrcPos){.file = L->f->path, .line = 1, .col = 1};
        const YNode *bn = root ? ynode_get(root, "brokers") : NULL;
        if (!c->brokers || !*c->brokers) {
                if (bn)
                        diag_add(L->dl, DIAG_C006, ynode_pos(bn), "brokers: host1:9092,host2:9092",
                                 "brokers: no bootstrap servers");
                else
                        diag_add(L->dl, DIAG_C006, at, "brokers: host1:9092,host2:9092",
                                 "the setting 'brokers' is required");
        }
        /* an output written to an input topic would feed riskd its own output */
        const char *outs[] = {c->topics.alerts, c->topics.shadow, c->topics.adjustments, c->topics.dead_letters,
                              c->topics.changelog};
        const char *onames[] = {"alerts", "shadow", "adjustments", "dead_letters", "changelog"};
        const YNode *tn = root ? ynode_get(root, "topics") : NULL;
        for (size_t i = 0; i < ARRAY_SIZE(outs); i++) {
                const YNode *n = tn ? ynode_get(tn, onames[i]) : NULL;
                SrcPos pos = n ? ynode_pos(n) : at;
                for (uint32_t k = 0; k < c->ninput_topics; k++)
                        if (outs[i] && strcmp(outs[i], c->input_topics[k]) == 0)
                                diag_add(L->dl, DIAG_C008, pos, "give each output its own topic",
                                         "topics.%s: '%s' is also an input topic", onames[i], outs[i]);
                if (i == 4)
                        for (size_t j = 0; j < 4; j++)
                                if (outs[i] && outs[j] && strcmp(outs[i], outs[j]) == 0)
                                        diag_add(L->dl, DIAG_C008, pos, "the changelog needs a topic of its own",
                                                 "topics.changelog: '%s' is also topics.%s", outs[i], onames[j]);
        }
}

/* The key of a setting ("http_listen", "kafka"), or NULL. */
static const YNode *setting_key(const YNode *root, const char *name)
{
        if (!root || root->kind != Y_MAP)
                return NULL;
        for (uint32_t i = 0; i < root->n; i++)
                if (root->keys[i]->kind == Y_SCALAR && strcmp(root->keys[i]->str, name) == 0)
                        return root->keys[i];
        return NULL;
}

/* Where a setting was written: its value, or the top of the file for a
 * default. */
static SrcPos setting_pos(Loader *L, const YNode *root, const char *name)
{
        const YNode *v = root ? ynode_get(root, name) : NULL;
        if (v)
                return ynode_pos(v);
        return (SrcPos){.file = L->f->path};
}

/* A refused client: at the kafka: property the message names (the
 * longest, so that ssl.key.location is not taken for ssl.key), else at the
 * setting riskd turns into a property, else at kafka:. */
static SrcPos clients_pos(Loader *L, const YNode *root, const char *msg)
{
        const YNode *kafka = root ? ynode_get(root, "kafka") : NULL, *best = NULL;
        for (uint32_t i = 0; kafka && kafka->kind == Y_MAP && i < kafka->n; i++) {
                const YNode *k = kafka->keys[i];
                if (k->kind == Y_SCALAR && k->len && strstr(msg, k->str) && (!best || k->len > best->len))
                        best = k;
        }
        if (best)
                return ynode_pos(best);
        static const struct {
                const char *prop, *setting;
        } own[] = {{"transactional.id", "transactional_id"}, {"group.id", "group_id"}, {"bootstrap.servers", "brokers"}};
        for (size_t i = 0; i < ARRAY_SIZE(own); i++)
                if (strstr(msg, own[i].prop) && ynode_get(root, own[i].setting))
                        return setting_pos(L, root, own[i].setting);
        const YNode *k = setting_key(root, "kafka");
        return k ? ynode_pos(k) : (SrcPos){.file = L->f->path};
}

/* The reload token (issue: a reload endpoint no one else can call), with
 * http_reload: true: the file given, a regular file, readable by its owner
 * only (0600, 0400: C014), one line of at least 16 printable characters
 * (C013); kept in c->http_reload_token.  The token itself never appears in
 * a diagnostic. */
static void check_reload_token(Loader *L, const YNode *root)
{
        Config *c = L->c;
        if (!c->http_reload)
                return;
        SrcPos at = setting_pos(L, root, "http_reload");
        static const char *const make = "umask 077; head -c 32 /dev/urandom | base64 > /etc/riskd/reload-token";
        if (!c->http_listen[0])
                diag_add(L->dl, DIAG_C013, at, "set http_listen: (e.g. 127.0.0.1:9464), or http_reload: false",
                         "http_reload: true, but there is no HTTP endpoint (http_listen is empty)");
        const char *path = c->http_reload_token_file;
        if (!path[0]) {
                diag_add(L->dl, DIAG_C013, at, make,
                         "http_reload: true needs http_reload_token_file (the bearer token of POST /v1/reload)");
                return;
        }
        at = setting_pos(L, root, "http_reload_token_file");
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                diag_add(L->dl, DIAG_C013, at, errno == ENOENT ? make : NULL,
                         "http_reload_token_file: cannot open %s: %s", path, strerror(errno));
                return;
        }
        struct stat st;
        char buf[4097];
        ssize_t n = -1;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                diag_add(L->dl, DIAG_C013, at, NULL, "http_reload_token_file: %s is not a regular file", path);
        } else if (st.st_mode & 077) {
                diag_add(L->dl, DIAG_C014, at, arena_printf(&c->arena, "chmod 600 %s (or LoadCredential=)", path),
                         "http_reload_token_file: %s is open to %s (mode %04o): the token would not be secret",
                         path, st.st_mode & 070 ? "its group" : "others", (unsigned)(st.st_mode & 07777));
        } else if ((n = read(fd, buf, sizeof(buf) - 1)) < 0) {
                diag_add(L->dl, DIAG_C013, at, NULL, "http_reload_token_file: cannot read %s: %s", path,
                         strerror(errno));
        } else {
                size_t len = (size_t)n;
                if (len && buf[len - 1] == '\n')
                        len--;
                if (len && buf[len - 1] == '\r')
                        len--;
                bool ok = len >= 16 && len < sizeof(buf) - 2;
                for (size_t i = 0; ok && i < len; i++)
                        ok = buf[i] > 0x20 && buf[i] < 0x7f;
                if (!ok)
                        diag_add(L->dl, DIAG_C013, at, make,
                                 "http_reload_token_file: %s must hold one line of 16 to 4094 printable "
                                 "characters without spaces (the token)",
                                 path);
                else
                        c->http_reload_token = arena_strndup(&c->arena, buf, len);
        }
        explicit_bzero(buf, sizeof(buf));
        close(fd);
}

/* The checks that need every setting: the rules, the HTTP address, the
 * clients. */
static void check_whole(Loader *L, const ConfigChecks *ck, const YNode *root)
{
        Config *c = L->c;
        char *msg = NULL;
        /* the rules first: the rule loader refuses a set when the list
         * already holds an error, whosever it is */
        if (ck->rules) {
                uint32_t before = L->dl->nerrors;
                int r = ck->rules(ck->ud, c->rules, L->dl);
                /* the rule loader pointed the source lines at its own files */
                diag_set_line_source(line_lookup, L);
                SrcPos at = setting_pos(L, root, "rules");
                if (r < 0)
                        diag_add(L->dl, DIAG_C012, at,
                                 "rules: names the directory of schema.yaml, grading.yaml and the rule files",
                                 "rules: cannot open %s: %s", c->rules, strerror(-r));
                else if (r > 0)
                        diag_add(L->dl, DIAG_C012, at, "riskctl check DIR shows them too",
                                 "rules: the rules in %s have %u error%s (listed with their own codes)", c->rules,
                                 L->dl->nerrors - before, L->dl->nerrors - before == 1 ? "" : "s");
        }
        if (ck->listen && c->http_listen[0] && ck->listen(c->http_listen, &msg) < 0) {
                diag_add(L->dl, DIAG_C009, setting_pos(L, root, "http_listen"),
                         "a numeric address and a port: 127.0.0.1:9464, [::1]:9464, :9464 (every address)", "%s",
                         msg ? msg : "http_listen: not an address");
                free(msg);
                msg = NULL;
        }
        if (ck->clients && ck->clients(c, &msg) < 0) {
                diag_add(L->dl, DIAG_C011, clients_pos(L, root, msg ? msg : ""),
                         "librdkafka's CONFIGURATION.md says which properties go together",
                         "librdkafka refuses %s", msg ? msg : "a client");
                free(msg);
                msg = NULL;
        }
}

/* The file may hold secrets (kafka: sasl.password): others must not read
 * it.  A warning, not an error: the secrets may live elsewhere. */
static void check_mode(Loader *L, const char *path)
{
        struct stat st;
        if (stat(path, &st) < 0 || !(st.st_mode & (S_IROTH | S_IWOTH)))
                return;
        diag_add(L->dl, DIAG_C020, (SrcPos){.file = L->f->path},
                 "chmod 0640 (root:riskd, as the install sets it): it may hold kafka: secrets",
                 "the configuration is %s by others (mode %04o)",
                 st.st_mode & S_IWOTH ? (st.st_mode & S_IROTH ? "readable and writable" : "writable")
                                      : "readable",
                 (unsigned)(st.st_mode & 07777));
}

int config_load(const char *path, const ConfigChecks *checks, DiagList *dl, Config **ret)
{
        const ConfigChecks *ck = checks ? checks : &no_checks;
        uint32_t errors = dl->nerrors;
        char *text = NULL;
        size_t len = 0;
        int r = file_read_all(path, &text, &len);
        if (r < 0) {
                diag_add(dl, DIAG_C002, (SrcPos){.file = path}, NULL, "cannot read the configuration: %s",
                         strerror(-r));
                return 1;
        }
        Config *c = config_new_default();
        c->path = arena_strdup(&c->arena, path);
        Loader L = {.c = c, .dl = dl, .check = ck->kafka_prop};
        L.f = srcfile_new(c->path, text, len); /* text now owned by the SrcFile */
        secret_lines(&L);
        diag_set_line_source(line_lookup, &L);
        check_mode(&L, path);
        uint32_t first = dl->n;
        srcfile_parse(L.f, dl);
        for (uint32_t i = first; i < dl->n; i++) /* the YAML parser's, in the configuration's codes */
                if (dl->v[i].code == DIAG_E001)
                        dl->v[i].code = DIAG_C001;
        const YNode *root = L.f->root;
        if (dl->nerrors == errors) {
                if (root && !ynode_is_null(root) && root->kind != Y_MAP)
                        diag_add(dl, DIAG_C003, ynode_pos(root), "settings are written 'name: value', one per line",
                                 "the configuration must be a mapping, not %s", kind_name(root->kind));
                else {
                        if (root && root->kind == Y_MAP)
                                load_map(&L, "", root);
                        check_all(&L, root && root->kind == Y_MAP ? root : NULL);
                        check_reload_token(&L, root && root->kind == Y_MAP ? root : NULL);
                        if (dl->nerrors == errors)
                                check_whole(&L, ck, root && root->kind == Y_MAP ? root : NULL);
                }
        }
        diag_set_line_source(NULL, NULL);
        srcfile_free(L.f);
        free(L.hide);
        free(L.shown);
        diag_list_sort(dl);
        if (dl->nerrors > errors) {
                config_free(c);
                return 1;
        }
        if (c->limits.max_state_bytes == CONFIG_AUTO) {
                /* RISKD_CGROUP_ROOT: tests only, a tree standing for /sys/fs/cgroup */
                char from[512];
                c->limits.max_state_bytes = budget_default(getenv("RISKD_CGROUP_ROOT"), from, sizeof(from));
                c->limits.max_state_bytes_from = arena_strdup(&c->arena, from);
        } else if (c->limits.max_state_bytes == 0) {
                c->limits.max_state_bytes_from = "riskd.yaml: none";
        }
        *ret = c;
        return 0;
}

void config_describe(const Config *c, Buf *out)
{
        Config *cc = (Config *)c;
        for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
                const ConfigSetting *s = &settings[i];
                char tmp[64];
                switch (s->type) {
                case CT_GROUP:
                        continue;
                case CT_STRING:
                case CT_NAME:
                        buf_printf(out, "%s = %s\n", s->name, *(char **)field(cc, s));
                        break;
                case CT_BOOL:
                        buf_printf(out, "%s = %s\n", s->name, *(bool *)field(cc, s) ? "true" : "false");
                        break;
                case CT_DURATION:
                        duration_format(*(int64_t *)field(cc, s), tmp, sizeof(tmp));
                        buf_printf(out, "%s = %s\n", s->name, tmp);
                        break;
                case CT_UINT:
                        buf_printf(out, "%s = %llu", s->name, (unsigned long long)*(uint64_t *)field(cc, s));
                        if (s->off == OFF(limits.max_state_bytes))
                                buf_printf(out, " (%s)", c->limits.max_state_bytes_from);
                        buf_putc(out, '\n');
                        break;
                case CT_LOGLEVEL:
                        buf_printf(out, "%s = %s\n", s->name, log_prio_name(*(int *)field(cc, s)));
                        break;
                case CT_LIST:
                case CT_HOSTS: {
                        char **v = *(char ***)field(cc, s);
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
