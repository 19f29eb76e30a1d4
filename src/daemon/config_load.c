/*
 * The daemon's configuration file read: the YAML walk over the table of
 * settings (config.c), each problem a diagnostic with file:line:col, and
 * the checks that need the whole file (the rules, the HTTP address,
 * librdkafka's clients, the reload token, the file's mode).  The source
 * lines the diagnostics quote never show a part of a line that may hold a
 * secret.  Separate from the table: this is the one part that knows YAML.
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
#include "src/daemon/config_int.h"
#include "src/daemon/log.h"
#include "src/util/yaml.h"

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
                } else if (config_secret_word(line)) {
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
        for (size_t i = 0; i < config_nsettings && n < max; i++) {
                const char *name = config_settings[i].name;
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

/* Whether the i-th key of map (a scalar) is a key before it too. */
static bool key_seen(const YNode *map, uint32_t i)
{
        for (uint32_t j = 0; j < i; j++)
                if (map->keys[j]->kind == Y_SCALAR && strcmp(map->keys[j]->str, map->keys[i]->str) == 0)
                        return true;
        return false;
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
                if (key_seen(map, i)) {
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
                if (key_seen(map, i)) {
                        diag_add(L->dl, DIAG_C005, ynode_pos(k), "remove one of them", "'%s%s%s' is set twice",
                                 group, *group ? "." : "", k->str);
                        continue;
                }
                char *name = *group ? xasprintf("%s.%s", group, k->str) : xstrdup(k->str);
                const ConfigSetting *s = config_setting_find(name);
                free(name);
                if (!s) {
                        unknown_key(L, group, k);
                        continue;
                }
                load_setting(L, s, v);
        }
}

/* An item of a list setting, its problem reported if it has one: a topic
 * name not among the n items before it (CT_LIST), or a host name
 * (CT_HOSTS). */
static bool item_ok(Loader *L, const ConfigSetting *s, const YNode *it, char *const *items, uint32_t n)
{
        if (s->type == CT_HOSTS) {
                if (it->kind == Y_SCALAR && !ynode_is_null(it) && host_name_ok(it->str))
                        return true;
                diag_add(L->dl, DIAG_C007, ynode_pos(it),
                         "a name or address as a Host header carries it, without the port: "
                         "riskd.example.net, 10.0.0.5, ::1",
                         "%s: expected a host name", s->name);
                return false;
        }
        if (it->kind != Y_SCALAR || ynode_is_null(it)) {
                diag_add(L->dl, DIAG_C008, ynode_pos(it), NULL, "%s: expected a topic name", s->name);
                return false;
        }
        if (!topic_name_ok(it->str)) {
                diag_add(L->dl, DIAG_C008, ynode_pos(it), "letters, digits, '.', '_' and '-'",
                         "'%s' is not a valid topic name", it->str);
                return false;
        }
        for (uint32_t j = 0; j < n; j++)
                if (strcmp(items[j], it->str) == 0) {
                        diag_add(L->dl, DIAG_C005, ynode_pos(it), "remove one of them", "%s: '%s' is listed twice",
                                 s->name, it->str);
                        return false;
                }
        return true;
}

static void load_setting(Loader *L, const ConfigSetting *s, const YNode *v)
{
        Config *c = L->c;
        if (ynode_is_null(v) && s->type == CT_STRING) {
                *(char **)config_field(c, s) = arena_strdup(&c->arena, "");
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
        case CT_LIST:
        case CT_HOSTS: {
                if (!want_kind(L, s, v, Y_SEQ))
                        return;
                char **items = arena_alloc(&c->arena, (v->n + 1) * sizeof(char *));
                uint32_t n = 0;
                for (uint32_t i = 0; i < v->n; i++) {
                        const YNode *it = v->items[i];
                        if (item_ok(L, s, it, items, n))
                                items[n++] = arena_strndup(&c->arena, it->str, it->len);
                }
                if (v->n == 0 && s->type == CT_LIST)
                        diag_add(L->dl, DIAG_C008, ynode_pos(v), "name at least one topic", "%s: empty list",
                                 s->name);
                config_list_set(c, s, items, n);
                return;
        }
        default:
                break;
        }
        if (!want_kind(L, s, v, Y_SCALAR))
                return;
        const char *hint;
        const char *why = config_scalar_set(c, s, v->str, v->len, &hint);
        if (why) {
                diag_add(L->dl, DIAG_C007, ynode_pos(v), hint, "%s: %s", s->name, why);
                return;
        }
        /* a topic that may be off (topics.enterprises: "") is checked when named */
        if ((s->type == CT_NAME || *v->str) && strncmp(s->name, "topics.", 7) == 0 && !topic_name_ok(v->str))
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
                              c->topics.changelog, c->topics.alert_states, c->topics.enterprises};
        const char *onames[] = {"alerts", "shadow", "adjustments", "dead_letters", "changelog", "alert_states",
                                "enterprises"};
        const YNode *tn = root ? ynode_get(root, "topics") : NULL;
        for (size_t i = 0; i < ARRAY_SIZE(outs); i++) {
                const YNode *n = tn ? ynode_get(tn, onames[i]) : NULL;
                SrcPos pos = n ? ynode_pos(n) : at;
                for (uint32_t k = 0; k < c->ninput_topics; k++)
                        if (outs[i] && strcmp(outs[i], c->input_topics[k]) == 0)
                                diag_add(L->dl, DIAG_C008, pos, "give each output its own topic",
                                         "topics.%s: '%s' is also an input topic", onames[i], outs[i]);
                if (i == 4)
                        for (size_t j = 0; j < ARRAY_SIZE(outs); j++)
                                if (j != i && outs[i] && outs[j] && strcmp(outs[i], outs[j]) == 0)
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

