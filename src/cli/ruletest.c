/*
 * riskctl test DIR: rule unit tests, like `promtool test rules`.
 *
 * Each YAML file of DIR/tests (*.yaml, *.yml) is a list of tests.  Each
 * test runs on a fresh engine over the rules of DIR (compiled once, shared),
 * feeds its events in order, optionally advances event time, and checks
 * what came out: alerts (active and shadow), adjustments, dead letters and
 * the final state of each enterprise.
 *
 *   tests:
 *     - name: confirmed toxic failure raises the grade to D   # required
 *       grace: 0s                # optional engine grace (reorder window)
 *       xfail: "why"             # optional: a known bug; the test
 *                                # is reported, not counted as failed, and
 *                                # fails once it passes (remove the mark)
 *       events:                  # in order
 *         - { at: "2025-03-02T10:00:00+08:00", type: enterprise, enterprise: E1,
 *             id: p1, category: dairy, scale: large }
 *         - { at: "2025-03-02T11:00:00+08:00", type: sampling, enterprise: E1,
 *             sample_code: S1, conclusion: fail, product.name: 奶粉 }
 *         - { raw: '{"event_id": ...}' }   # a JSON line sent as is
 *       until: "2026-04-01T00:00:00+08:00" # optional: advance event time
 *       expect:                  # each item must match at least one output
 *         alerts:       [ { rule: sampling.toxic_fail, enterprise: E1 } ]
 *         adjustments:  [ { enterprise: E1, grade: D, mode: flying_inspection } ]
 *         grades:       { E1: { grade: D, mode: flying_inspection, inspections_per_year: 5 } }
 *         dead_letters: [ { reason: duplicate } ]
 *       absent:                  # none of these may match any output
 *         alerts:       [ { rule: coldchain.over_temp } ]
 *         adjustments:  [ { enterprise: E1, grade: A } ]
 *         dead_letters: [ { reason: too_late } ]
 *       exact_alerts: 2          # optional: number of (non-shadow) alerts
 *
 * Events.  The compact form builds the JSON envelope from schema.yaml's
 * envelope paths: `at` is the time path, `type` the type path, `enterprise`
 * the enterprise path (nested paths such as enterprise.uscc become nested
 * objects), `id` the id path (default "<test>-<event>", both 1-based within
 * the file).  Every other key is a field of the event type, dotted
 * (product.name) or nested ({product: {name: x}}); it is checked against
 * the schema (name, enum value, kind) so that a typo fails loudly instead
 * of being ignored by the engine.  Values: plain JSON-syntax numbers are
 * numbers, plain true/false booleans, plain null/~ null, anything else a
 * string (quote a string field that looks like a number).  `raw:` sends a
 * line untouched (dead-letter tests, undeclared fields).
 *
 * Matching is a subset match on the keys given:
 *   alerts:       rule, enterprise, at, trigger, key, severity, status,
 *                 score_delta, message, message_contains, evidence, flags,
 *                 action, rectify_deadline
 *   adjustments:  enterprise, at, cause, cause_event, grade, mode,
 *                 inspections_per_year, previous_grade, previous_mode,
 *                 previous_inspections_per_year, score, static_score, band,
 *                 flags, rectify_deadline
 *   dead_letters: reason, enterprise, event (1-based index in events:),
 *                 detail, detail_contains
 *   grades:       grade, mode, inspections_per_year, score, static_score,
 *                 band, static_rules, contributions, flags (read from the
 *                 enterprise's explain document at the end)
 * Times compare as instants (write them with any offset); numbers as
 * numbers; null matches a JSON null; a list key holds the names given, and
 * [] means none at all.  Alerts match shadow alerts too (status: shadow);
 * exact_alerts counts active ones.  Rule ids, grades, modes, reasons and
 * the fixed vocabularies are checked when the file is read, so that an
 * absent: item with a typo cannot pass by matching nothing.
 *
 * --coverage also fails when a rule is named by no expect.alerts item of a
 * test not marked xfail (a static rule that never alerts: by an
 * expect.grades static_rules list).
 *
 * A malformed file or test is reported with file:line:col and counts as a
 * failure.  Exit status: 0 all passed, 1 any failure, 2 unusable arguments.
 *
 * Test files named after DIR (or a test file given instead of DIR) run
 * alone; --run PATTERN runs only the tests whose name matches (POSIX ERE);
 * --junit FILE also writes the results as JUnit XML for CI systems.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "include/riskd/decode.h"
#include "include/riskd/diag.h"
#include "include/riskd/engine.h"
#include "include/riskd/rules.h"
#include "include/riskd/util.h"
#include "include/riskd/value.h"
#include "src/cli/ruletest.h"
#include "src/util/json.h"
#include "src/util/yaml.h"

/* ---- what a test may say about outputs ---- */

typedef enum MType {
        MT_STR,      /* equal strings (null: JSON null) */
        MT_NUM,      /* equal numbers */
        MT_TIME,     /* the same instant */
        MT_CONTAINS, /* substring */
        MT_HAS,      /* an array of strings holds the value(s) */
        MT_FLAGS,    /* an array of {name, until} holds the name(s) */
        MT_RULES,    /* an array of {rule_id, ...} holds the rule(s) */
} MType;

typedef enum VCheck { VC_NONE, VC_RULE, VC_GRADE, VC_MODE, VC_LIST } VCheck;

typedef struct MKey {
        const char *name, *path;
        MType type;
        VCheck check;
        const char *const *vals; /* VC_LIST, NULL terminated */
} MKey;

static const char *const triggers[] = {"event", "timer", NULL};
static const char *const statuses[] = {"active", "shadow", NULL};
#define X(e, name) name,
static const char *const severities[] = {SEVERITY_LIST(X) NULL};
static const char *const causes[] = {GRADE_CAUSE_LIST(X) NULL};
/* every dead-letter reason; a test names any but "ok" (&reasons[1]) */
static const char *const reasons[] = {DECODE_REASON_LIST(X) ENGINE_REJECT_LIST(X) NULL};
#undef X

static const MKey alert_keys[] = {
        {"rule", "rule_id", MT_STR, VC_RULE, NULL},
        {"enterprise", "enterprise_id", MT_STR, VC_NONE, NULL},
        {"at", "ts", MT_TIME, VC_NONE, NULL},
        {"trigger", "trigger", MT_STR, VC_LIST, triggers},
        {"key", "key", MT_STR, VC_NONE, NULL},
        {"severity", "severity", MT_STR, VC_LIST, severities},
        {"status", "status", MT_STR, VC_LIST, statuses},
        {"score_delta", "score_delta", MT_NUM, VC_NONE, NULL},
        {"message", "message", MT_STR, VC_NONE, NULL},
        {"message_contains", "message", MT_CONTAINS, VC_NONE, NULL},
        {"evidence", "evidence", MT_HAS, VC_NONE, NULL},
        {"flags", "flags", MT_FLAGS, VC_NONE, NULL},
        {"action", "actions", MT_HAS, VC_NONE, NULL},
        {"rectify_deadline", "rectify_deadline", MT_TIME, VC_NONE, NULL},
        {NULL, NULL, 0, 0, NULL},
};

static const MKey adj_keys[] = {
        {"enterprise", "enterprise_id", MT_STR, VC_NONE, NULL},
        {"at", "ts", MT_TIME, VC_NONE, NULL},
        {"cause", "cause", MT_STR, VC_LIST, causes},
        {"cause_event", "cause_event_id", MT_STR, VC_NONE, NULL},
        {"grade", "current.grade", MT_STR, VC_GRADE, NULL},
        {"mode", "current.mode", MT_STR, VC_MODE, NULL},
        {"inspections_per_year", "current.inspections_per_year", MT_NUM, VC_NONE, NULL},
        {"previous_grade", "previous.grade", MT_STR, VC_GRADE, NULL},
        {"previous_mode", "previous.mode", MT_STR, VC_MODE, NULL},
        {"previous_inspections_per_year", "previous.inspections_per_year", MT_NUM, VC_NONE, NULL},
        {"score", "score", MT_NUM, VC_NONE, NULL},
        {"static_score", "static_score", MT_NUM, VC_NONE, NULL},
        {"band", "band", MT_STR, VC_GRADE, NULL},
        {"flags", "flags", MT_FLAGS, VC_NONE, NULL},
        {"rectify_deadline", "rectify_deadline", MT_TIME, VC_NONE, NULL},
        /* the official model (grading.yaml official:, riskd.adjustment/2) */
        {"official_score", "official.score", MT_NUM, VC_NONE, NULL},
        {"dynamic", "official.dynamic", MT_NUM, VC_NONE, NULL},
        {"assessed", "official.assessed", MT_STR, VC_GRADE, NULL},
        {"raise", "official.raise", MT_NUM, VC_NONE, NULL},
        {"lower", "official.lower", MT_NUM, VC_NONE, NULL},
        {"carried", "official.carried", MT_NUM, VC_NONE, NULL},
        {"index_band", "index.band", MT_STR, VC_GRADE, NULL},
        {NULL, NULL, 0, 0, NULL},
};

static const MKey dl_keys[] = {
        {"reason", "reason", MT_STR, VC_LIST, &reasons[1]},
        {"enterprise", "enterprise_id", MT_STR, VC_NONE, NULL},
        {"event", "event", MT_NUM, VC_NONE, NULL},
        {"detail", "detail", MT_STR, VC_NONE, NULL},
        {"detail_contains", "detail", MT_CONTAINS, VC_NONE, NULL},
        {NULL, NULL, 0, 0, NULL},
};

/* matched against the enterprise's explain document (engine_explain_json) */
static const MKey grade_keys[] = {
        {"grade", "current.grade", MT_STR, VC_GRADE, NULL},
        {"mode", "current.mode", MT_STR, VC_MODE, NULL},
        {"inspections_per_year", "current.inspections_per_year", MT_NUM, VC_NONE, NULL},
        {"score", "score", MT_NUM, VC_NONE, NULL},
        {"static_score", "static_score", MT_NUM, VC_NONE, NULL},
        {"band", "band", MT_STR, VC_GRADE, NULL},
        {"static_rules", "static_rules", MT_RULES, VC_RULE, NULL},
        {"contributions", "contributions", MT_RULES, VC_RULE, NULL},
        {"flags", "flags", MT_FLAGS, VC_NONE, NULL},
        {"official_score", "official.score", MT_NUM, VC_NONE, NULL},
        {"dynamic", "official.dynamic", MT_NUM, VC_NONE, NULL},
        {"assessed", "official.assessed", MT_STR, VC_GRADE, NULL},
        {"raise", "official.raise", MT_NUM, VC_NONE, NULL},
        {"lower", "official.lower", MT_NUM, VC_NONE, NULL},
        {"carried", "official.carried", MT_NUM, VC_NONE, NULL},
        {"index_band", "index.band", MT_STR, VC_GRADE, NULL},
        {NULL, NULL, 0, 0, NULL},
};

typedef enum Sect { S_ALERTS, S_ADJ, S_DL, NSECT } Sect;
static const char *const sect_names[NSECT] = {"alerts", "adjustments", "dead_letters"};
static const char *const sect_item[NSECT] = {"alert", "adjustment", "dead letter"};
static const MKey *const sect_keys[NSECT] = {alert_keys, adj_keys, dl_keys};

static const MKey *mkey_find(const MKey *t, const char *name)
{
        for (; t->name; t++)
                if (strcmp(t->name, name) == 0)
                        return t;
        return NULL;
}

/* ---- a test, as read from its file ---- */

typedef struct Event {
        char *json;
        size_t len;
} Event;

typedef struct Test {
        const YNode *node;
        const char *name;
        uint32_t line;
        int64_t grace;
        int64_t until;
        bool has_until;
        const char *xfail;
        Event *ev;
        uint32_t nev, cev;
        const YNode **want[NSECT], **forbid[NSECT];
        uint32_t nwant[NSECT], cwant[NSECT], nforbid[NSECT], cforbid[NSECT];
        const YNode *grades;      /* expect.grades: enterprise → mapping */
        int64_t exact_alerts;     /* -1: not checked */
        DiagList dl;              /* problems of the test itself */
} Test;

/* ---- the JUnit XML report (--junit) ---- */

typedef enum JOutcome { JO_PASS, JO_FAIL, JO_ERROR, JO_SKIP } JOutcome;

typedef struct JCase {
        char *classname, *name, *file;
        uint32_t line;      /* 0: none */
        double secs;
        JOutcome outcome;
        char *message;      /* one line: the failure's first line */
        char *text;         /* the whole report of a failure, error or xfail */
} JCase;

/* One <testsuite> per test file (and one for problems outside any file:
 * rules that do not compile, coverage). */
typedef struct JSuite {
        char *name;
        JCase *v;
        uint32_t n, cap;
} JSuite;

typedef struct Junit {
        JSuite *v;
        uint32_t n, cap;
} Junit;

typedef struct Ctx {
        RuleSet *rs;
        FILE *out;
        bool verbose;
        const SrcFile *file;      /* the test file being read (diagnostic lines) */
        char **covered;           /* rule ids named by expect.alerts */
        uint32_t ncovered, ccovered;
        uint32_t tests, passed, failed, xfailed;
        const regex_t *run_re;    /* --run: only the tests whose name matches */
        uint32_t deselected;      /* tests --run left out */
        Junit *junit;             /* --junit: the report being collected, or NULL */
} Ctx;

static const char *line_of(void *ud, const char *file, uint32_t line, uint32_t *len)
{
        const Ctx *c = ud;
        if (!c->file || strcmp(file, c->file->path) != 0)
                return NULL;
        return srcfile_line(c->file, line, len);
}

static bool is_plain(const YNode *n)
{
        return n->kind == Y_SCALAR && n->style == YS_PLAIN;
}

static bool plain_bool(const YNode *n, bool *ret)
{
        if (!is_plain(n))
                return false;
        static const char *const t[] = {"true", "True", "TRUE"}, *const f[] = {"false", "False", "FALSE"};
        for (int i = 0; i < 3; i++) {
                if (strcmp(n->str, t[i]) == 0) {
                        *ret = true;
                        return true;
                }
                if (strcmp(n->str, f[i]) == 0) {
                        *ret = false;
                        return true;
                }
        }
        return false;
}

static bool plain_number(const YNode *n, double *ret)
{
        double d;
        if (!is_plain(n) || decode_number_parse(n->str, n->len, &d) < 0)
                return false;
        if (ret)
                *ret = d;
        return true;
}

static const YNode *alias_find(const YNode *aliases, const char *s, size_t len)
{
        for (uint32_t i = 0; i < aliases->n; i++)
                if (aliases->keys[i]->len == len && memcmp(aliases->keys[i]->str, s, len) == 0)
                        return aliases->items[i];
        return NULL;
}

/* aliases: a mapping of names to non-empty scalars, none of them a name. */
static bool aliases_ok(DiagList *dl, const YNode *aliases)
{
        if (aliases->kind != Y_MAP) {
                diag_add(dl, DIAG_E003, ynode_pos(aliases), "aliases: { E1: 91410184MAX3GNEK20, DC001: DC25410000410105001 }",
                         "aliases is a mapping of names to values");
                return false;
        }
        uint32_t errs = dl->nerrors;
        for (uint32_t i = 0; i < aliases->n; i++) {
                const YNode *v = aliases->items[i];
                if (v->kind != Y_SCALAR || !v->len)
                        diag_add(dl, DIAG_E003, ynode_pos(v), NULL, "alias %s needs a value (text)",
                                 aliases->keys[i]->str);
                else if (alias_find(aliases, v->str, v->len))
                        diag_add(dl, DIAG_E003, ynode_pos(v), "give the value itself",
                                 "the value of alias %s is itself an alias name", aliases->keys[i]->str);
        }
        return dl->nerrors == errs;
}

/*
 * aliases: { E1: 91410184MAX3GNEK20 }: every scalar of the tests equal to
 * a name is read as its value, in events, expectations and the enterprise
 * keys of grades:, so that tests keep short names where the schema wants
 * real codes (a uscc enterprise id, a sample_code).  raw: lines are sent as
 * written.  Positions stay those of the names, for diagnostics.
 */
static void alias_apply(YNode *n, const YNode *aliases, bool keys)
{
        if (n->kind == Y_SCALAR) {
                const YNode *v = alias_find(aliases, n->str, n->len);
                if (v) {
                        n->str = v->str;
                        n->len = v->len;
                        n->style = v->style;
                }
                return;
        }
        for (uint32_t i = 0; i < n->n; i++) {
                if (n->kind == Y_SEQ) {
                        alias_apply(n->items[i], aliases, false);
                        continue;
                }
                if (keys)
                        alias_apply(n->keys[i], aliases, false);
                if (strcmp(n->keys[i]->str, "raw") == 0)
                        continue;
                alias_apply(n->items[i], aliases, strcmp(n->keys[i]->str, "grades") == 0);
        }
}

static void check_mapping_keys(DiagList *dl, const YNode *map, const char *const *allowed, uint32_t n,
                               const char *what)
{
        for (uint32_t i = 0; i < map->n; i++) {
                const YNode *k = map->keys[i];
                for (uint32_t j = 0; j < i; j++)
                        if (strcmp(map->keys[j]->str, k->str) == 0)
                                diag_add(dl, DIAG_E005, ynode_pos(k), "remove one of them",
                                         "'%s' appears twice in this %s", k->str, what);
                bool ok = false;
                for (uint32_t j = 0; j < n; j++)
                        ok |= strcmp(allowed[j], k->str) == 0;
                if (ok)
                        continue;
                const char *s = diag_suggest(k->str, allowed, n);
                Buf h = {0};
                if (s)
                        buf_printf(&h, "did you mean '%s'? ", s);
                buf_puts(&h, "valid keys:");
                for (uint32_t j = 0; j < n; j++)
                        buf_printf(&h, " %s", allowed[j]);
                diag_add(dl, DIAG_E006, ynode_pos(k), h.p, "unknown key '%s' in %s", k->str, what);
                buf_free(&h);
        }
}

static const YNode *need(DiagList *dl, const YNode *n, YKind kind, const char *what)
{
        static const char *const kinds[] = {"a scalar", "a mapping", "a list"};
        if (n && n->kind == kind)
                return n;
        if (n)
                diag_add(dl, DIAG_E003, ynode_pos(n), NULL, "%s must be %s", what, kinds[kind]);
        return NULL;
}

static void check_vocab(Ctx *c, DiagList *dl, const MKey *k, const YNode *v)
{
        if (k->check == VC_NONE || ynode_is_null(v))
                return;
        const RuleSet *rs = c->rs;
        const char **cands = NULL;
        uint32_t n = 0, cap = 0;
        const char *what = "value";
        DiagCode code = DIAG_E006;
        switch (k->check) {
        case VC_RULE:
                for (uint32_t i = 0; i < rs->nrules; i++)
                        VEC_PUSH(cands, n, cap) = rs->rules[i].id;
                what = "rule";
                code = DIAG_E044;
                break;
        case VC_GRADE:
                for (uint32_t i = 0; i < rs->grading.nbands; i++)
                        VEC_PUSH(cands, n, cap) = rs->grading.bands[i].grade;
                what = "grade";
                code = DIAG_E051;
                break;
        case VC_MODE:
                for (uint32_t i = 0; i < rs->grading.nmodes; i++)
                        VEC_PUSH(cands, n, cap) = rs->grading.modes[i];
                what = "mode";
                code = DIAG_E052;
                break;
        default:
                for (const char *const *p = k->vals; *p; p++)
                        VEC_PUSH(cands, n, cap) = *p;
                break;
        }
        bool ok = v->kind == Y_SCALAR;
        if (ok) {
                ok = false;
                for (uint32_t i = 0; i < n; i++)
                        ok |= strcmp(cands[i], v->str) == 0;
        }
        if (!ok) {
                const char *s = v->kind == Y_SCALAR ? diag_suggest(v->str, cands, n) : NULL;
                Buf h = {0};
                if (s)
                        buf_printf(&h, "did you mean '%s'?%s", s, n <= 12 ? " " : "");
                if (n <= 12) {
                        buf_puts(&h, "one of:");
                        for (uint32_t i = 0; i < n; i++)
                                buf_printf(&h, " %s", cands[i]);
                }
                diag_add(dl, code, ynode_pos(v), h.p, "no %s '%s' (%s:)", what,
                         v->kind == Y_SCALAR ? v->str : "?", k->name);
                buf_free(&h);
        }
        free(cands);
}

/* One expected or forbidden item: a mapping of keys of the section. */
static bool item_read(Ctx *c, DiagList *dl, const YNode *n, const MKey *keys, const char *what)
{
        if (!need(dl, n, Y_MAP, what))
                return false;
        uint32_t before = dl->nerrors;
        const char *names[24];
        uint32_t nn = 0;
        for (const MKey *k = keys; k->name; k++)
                names[nn++] = k->name;
        check_mapping_keys(dl, n, names, nn, what);
        for (uint32_t i = 0; i < n->n; i++) {
                const MKey *k = mkey_find(keys, n->keys[i]->str);
                const YNode *v = n->items[i];
                if (!k)
                        continue;
                if ((k->type == MT_HAS || k->type == MT_FLAGS || k->type == MT_RULES) && v->kind == Y_SEQ) {
                        for (uint32_t j = 0; j < v->n; j++)
                                if (need(dl, v->items[j], Y_SCALAR, k->name))
                                        check_vocab(c, dl, k, v->items[j]);
                        continue;
                }
                if (!need(dl, v, Y_SCALAR, k->name))
                        continue;
                int64_t ms;
                if (k->type == MT_NUM && !ynode_is_null(v) && !plain_number(v, NULL))
                        diag_add(dl, DIAG_E008, ynode_pos(v), NULL, "%s: '%s' is not a number", k->name, v->str);
                if (k->type == MT_TIME && !ynode_is_null(v) && time_parse(v->str, v->len, &ms) < 0)
                        diag_add(dl, DIAG_E023, ynode_pos(v), "write RFC 3339 with an offset: \"2025-03-02T10:00:00+08:00\"",
                                 "%s: '%s' is not a time", k->name, v->str);
                check_vocab(c, dl, k, v);
        }
        if (n->n == 0)
                diag_add(dl, DIAG_E004, ynode_pos(n), "name at least one key, e.g. rule: or enterprise:",
                         "%s is empty: it would match anything", what);
        return dl->nerrors == before;
}

/* ---- building an event's JSON from the compact form ---- */

typedef struct FieldVal {
        char *path;              /* dotted */
        char *json;              /* the value as JSON text */
        const YNode *node;
} FieldVal;

typedef struct Fields {
        FieldVal *v;
        uint32_t n, cap;
} Fields;

static void fields_free(Fields *fs)
{
        for (uint32_t i = 0; i < fs->n; i++) {
                free(fs->v[i].path);
                free(fs->v[i].json);
        }
        free(fs->v);
}

static void fields_add(Fields *fs, DiagList *dl, const char *path, char *json, const YNode *node)
{
        size_t pl = strlen(path);
        for (uint32_t i = 0; i < fs->n; i++) {
                const char *q = fs->v[i].path;
                size_t ql = strlen(q);
                bool clash = strcmp(q, path) == 0 ||
                             (ql < pl && strncmp(q, path, ql) == 0 && path[ql] == '.') ||
                             (pl < ql && strncmp(q, path, pl) == 0 && q[pl] == '.');
                if (clash) {
                        diag_add(dl, DIAG_E005, ynode_pos(node), NULL,
                                 "'%s' clashes with '%s' given before in this event", path, q);
                        free(json);
                        return;
                }
        }
        FieldVal *f = &VEC_PUSH(fs->v, fs->n, fs->cap);
        f->path = xstrdup(path);
        f->json = json;
        f->node = node;
}

/* Emit the fields under prefix (length plen, "" or "a.b.") as one object. */
static void fields_emit(Buf *b, const Fields *fs, bool *done, const char *prefix, size_t plen)
{
        buf_putc(b, '{');
        bool first = true;
        for (uint32_t i = 0; i < fs->n; i++) {
                const char *p = fs->v[i].path;
                if (done[i] || strncmp(p, prefix, plen) != 0)
                        continue;
                const char *seg = p + plen, *dot = strchr(seg, '.');
                size_t sl = dot ? (size_t)(dot - seg) : strlen(seg);
                if (!first)
                        buf_putc(b, ',');
                first = false;
                buf_json_str(b, seg, sl);
                buf_putc(b, ':');
                if (!dot) {
                        buf_puts(b, fs->v[i].json);
                        done[i] = true;
                        continue;
                }
                char *sub = xstrndup(p, plen + sl + 1);
                fields_emit(b, fs, done, sub, plen + sl + 1);
                free(sub);
        }
        buf_putc(b, '}');
}

static char *scalar_json(const YNode *n)
{
        Buf b = {0};
        bool bv;
        if (ynode_is_null(n))
                buf_puts(&b, "null");
        else if (plain_bool(n, &bv))
                buf_puts(&b, bv ? "true" : "false");
        else if (plain_number(n, NULL))
                buf_put(&b, n->str, n->len);
        else
                buf_json_str(&b, n->str, n->len);
        return b.p;
}

static const Field *type_field(const EventType *t, const char *path)
{
        for (uint32_t i = 0; i < t->nfields; i++)
                if (strcmp(t->fields[i].path, path) == 0)
                        return &t->fields[i];
        return NULL;
}

/* A field value: checked against the field's declared kind. */
static void field_value(Ctx *c, DiagList *dl, Fields *fs, const EventType *t, const char *path, const YNode *v)
{
        if (v->kind == Y_MAP) {
                for (uint32_t i = 0; i < v->n; i++) {
                        char *p = xasprintf("%s.%s", path, v->keys[i]->str);
                        field_value(c, dl, fs, t, p, v->items[i]);
                        free(p);
                }
                return;
        }
        const Field *f = type_field(t, path);
        if (!f) {
                const char **cands = xmalloc((t->nfields + 1) * sizeof(char *));
                for (uint32_t i = 0; i < t->nfields; i++)
                        cands[i] = t->fields[i].path;
                const char *s = diag_suggest(path, cands, t->nfields);
                free(cands);
                char *h = s ? xasprintf("did you mean '%s'? (use raw: to send undeclared fields)", s)
                            : xstrdup("use raw: to send fields that schema.yaml does not declare");
                diag_add(dl, DIAG_E031, ynode_pos(v), h, "unknown field '%s' of %s", path, t->name);
                free(h);
                return;
        }
        if (v->kind == Y_SEQ && f->format == FF_CATEGORY) {
                /* a category's levels: [肉制品, 预制肉制品], sent as a JSON list of strings */
                Buf b = {0};
                buf_putc(&b, '[');
                for (uint32_t i = 0; i < v->n; i++) {
                        if (!need(dl, v->items[i], Y_SCALAR, "a category level")) {
                                buf_free(&b);
                                return;
                        }
                        if (i)
                                buf_putc(&b, ',');
                        buf_json_str(&b, v->items[i]->str, v->items[i]->len);
                }
                buf_putc(&b, ']');
                fields_add(fs, dl, path, b.p, v);
                return;
        }
        if (v->kind != Y_SCALAR) {
                diag_add(dl, DIAG_E003, ynode_pos(v), NULL, "field %s takes a single value%s", path,
                         v->kind == Y_SEQ ? " (a list only for a category)" : "");
                return;
        }
        if (!ynode_is_null(v)) {
                bool bv;
                int64_t ms;
                bool num = plain_number(v, NULL), isbool = plain_bool(v, &bv);
                const char *bad = NULL;
                switch (f->type) {
                case FT_NUM:
                        if (!num)
                                bad = "a number";
                        break;
                case FT_BOOL:
                        if (!isbool)
                                bad = "true or false";
                        break;
                case FT_STR:
                        if (num || isbool)
                                bad = "a string (quote the value)";
                        break;
                case FT_TIME:
                        if (num || isbool || time_parse(v->str, v->len, &ms) < 0)
                                bad = "an RFC 3339 time with an offset";
                        break;
                case FT_DUR:
                        if (num || isbool || duration_parse(v->str, v->len, &ms) < 0)
                                bad = "a duration like \"30m\"";
                        break;
                case FT_ENUM: {
                        bool ok = !num && !isbool;
                        if (ok && f->en) {
                                ok = false;
                                for (uint32_t i = 0; i < f->en->nvalues; i++)
                                        ok |= strcmp(f->en->values[i], v->str) == 0;
                        }
                        if (!ok) {
                                Buf h = {0};
                                const char *s = f->en ? diag_suggest(v->str, (const char *const *)f->en->values,
                                                                     f->en->nvalues) : NULL;
                                if (s)
                                        buf_printf(&h, "did you mean '%s'? ", s);
                                buf_puts(&h, "valid:");
                                for (uint32_t i = 0; f->en && i < f->en->nvalues; i++)
                                        buf_printf(&h, " %s", f->en->values[i]);
                                diag_add(dl, DIAG_E032, ynode_pos(v), h.p, "'%s' is not a value of %s.%s",
                                         v->str, t->name, path);
                                buf_free(&h);
                                return;
                        }
                        break;
                }
                }
                if (bad) {
                        diag_add(dl, DIAG_E033, ynode_pos(v), "use raw: to send a wrongly typed value on purpose",
                                 "field %s of %s takes %s, not '%s'", path, t->name, bad, v->str);
                        return;
                }
        }
        fields_add(fs, dl, path, scalar_json(v), v);
}

static void event_read(Ctx *c, Test *t, const YNode *n, uint32_t ti, uint32_t ei)
{
        DiagList *dl = &t->dl;
        if (!need(dl, n, Y_MAP, "an event"))
                return;
        const YNode *raw = ynode_get(n, "raw");
        if (raw) {
                if (n->n != 1)
                        diag_add(dl, DIAG_E006, ynode_pos(n), NULL, "an event with raw: has no other key");
                if (!need(dl, raw, Y_SCALAR, "raw"))
                        return;
                Event *e = &VEC_PUSH(t->ev, t->nev, t->cev);
                e->json = xstrndup(raw->str, raw->len);
                e->len = raw->len;
                return;
        }
        const Schema *s = &c->rs->schema;
        const YNode *ty = ynode_get(n, "type"), *at = ynode_get(n, "at"), *ent = ynode_get(n, "enterprise"),
                    *id = ynode_get(n, "id");
        uint32_t before = dl->nerrors;
        if (!ty || !at || !ent)
                diag_add(dl, DIAG_E004, ynode_pos(n), "or send the line as is with raw:",
                         "an event needs type:, at: and enterprise:");
        const EventType *et = NULL;
        if (need(dl, ty, Y_SCALAR, "type")) {
                for (uint32_t i = 0; i < s->ntypes; i++)
                        if (strcmp(s->types[i].name, ty->str) == 0)
                                et = &s->types[i];
                if (!et) {
                        const char **cands = xmalloc((s->ntypes + 1) * sizeof(char *));
                        for (uint32_t i = 0; i < s->ntypes; i++)
                                cands[i] = s->types[i].name;
                        const char *sg = diag_suggest(ty->str, cands, s->ntypes);
                        free(cands);
                        char *h = sg ? xasprintf("did you mean '%s'?", sg) : NULL;
                        diag_add(dl, DIAG_E030, ynode_pos(ty), h, "no event type '%s' in schema.yaml", ty->str);
                        free(h);
                }
        }
        int64_t ms;
        if (need(dl, at, Y_SCALAR, "at") && time_parse(at->str, at->len, &ms) < 0)
                diag_add(dl, DIAG_E023, ynode_pos(at), "write RFC 3339 with an offset: \"2025-03-02T10:00:00+08:00\"",
                         "'%s' is not a time", at->str);
        need(dl, ent, Y_SCALAR, "enterprise");
        need(dl, id, Y_SCALAR, "id");
        if (dl->nerrors != before || !et)
                return;
        Fields fs = {0};
        Buf b = {0};
        char *idtext = id ? xstrndup(id->str, id->len) : xasprintf("%u-%u", ti, ei);
        buf_json_str(&b, idtext, strlen(idtext));
        fields_add(&fs, dl, s->env.id, xstrdup(b.p), id ? id : n);
        b.len = 0;
        buf_json_str(&b, ty->str, ty->len);
        fields_add(&fs, dl, s->env.type, xstrdup(b.p), ty);
        b.len = 0;
        buf_json_str(&b, ent->str, ent->len);
        fields_add(&fs, dl, s->env.enterprise, xstrdup(b.p), ent);
        b.len = 0;
        buf_json_str(&b, at->str, at->len);
        fields_add(&fs, dl, s->env.time, xstrdup(b.p), at);
        buf_free(&b);
        free(idtext);
        for (uint32_t i = 0; i < n->n; i++) {
                const char *k = n->keys[i]->str;
                if (strcmp(k, "type") == 0 || strcmp(k, "at") == 0 || strcmp(k, "enterprise") == 0 ||
                    strcmp(k, "id") == 0)
                        continue;
                for (uint32_t j = 0; j < i; j++)
                        if (strcmp(n->keys[j]->str, k) == 0)
                                diag_add(dl, DIAG_E005, ynode_pos(n->keys[i]), NULL, "'%s' appears twice in this event", k);
                field_value(c, dl, &fs, et, k, n->items[i]);
        }
        if (dl->nerrors == before) {
                bool *done = xcalloc(fs.n + 1, sizeof(bool));
                Buf j = {0};
                fields_emit(&j, &fs, done, "", 0);
                free(done);
                Event *e = &VEC_PUSH(t->ev, t->nev, t->cev);
                e->json = j.p;
                e->len = j.len;
        }
        fields_free(&fs);
}

static void items_read(Ctx *c, Test *t, const YNode *sect, bool forbid)
{
        const char *where = forbid ? "absent" : "expect";
        static const char *const expect_keys[] = {"alerts", "adjustments", "dead_letters", "grades"};
        static const char *const absent_keys[] = {"alerts", "adjustments", "dead_letters"};
        if (!need(&t->dl, sect, Y_MAP, where))
                return;
        check_mapping_keys(&t->dl, sect, forbid ? absent_keys : expect_keys, forbid ? 3 : 4, where);
        for (int s = 0; s < NSECT; s++) {
                const YNode *l = ynode_get(sect, sect_names[s]);
                if (!l || !need(&t->dl, l, Y_SEQ, sect_names[s]))
                        continue;
                for (uint32_t i = 0; i < l->n; i++) {
                        char what[64];
                        snprintf(what, sizeof(what), "an %s item of %s", where, sect_names[s]);
                        if (!item_read(c, &t->dl, l->items[i], sect_keys[s], what))
                                continue;
                        if (forbid)
                                VEC_PUSH(t->forbid[s], t->nforbid[s], t->cforbid[s]) = l->items[i];
                        else
                                VEC_PUSH(t->want[s], t->nwant[s], t->cwant[s]) = l->items[i];
                }
        }
        if (forbid)
                return;
        const YNode *g = ynode_get(sect, "grades");
        if (g && need(&t->dl, g, Y_MAP, "grades")) {
                for (uint32_t i = 0; i < g->n; i++)
                        item_read(c, &t->dl, g->items[i], grade_keys, "a grades entry");
                t->grades = g;
        }
}

static void test_read(Ctx *c, Test *t, const YNode *n, uint32_t ti)
{
        static const char *const keys[] = {"name", "grace", "events", "until", "expect", "absent",
                                           "exact_alerts", "xfail", "desc"};
        t->node = n;
        t->exact_alerts = -1;
        t->line = n->line;
        DiagList *dl = &t->dl;
        if (!need(dl, n, Y_MAP, "a test"))
                return;
        check_mapping_keys(dl, n, keys, ARRAY_SIZE(keys), "a test");
        const YNode *v = ynode_get(n, "name");
        if (!v)
                diag_add(dl, DIAG_E004, ynode_pos(n), NULL, "a test needs a name:");
        else if (need(dl, v, Y_SCALAR, "name"))
                t->name = v->str;
        if ((v = ynode_get(n, "grace")) && need(dl, v, Y_SCALAR, "grace") && strcmp(v->str, "0") != 0 &&
            duration_parse(v->str, v->len, &t->grace) < 0)
                diag_add(dl, DIAG_E007, ynode_pos(v), "e.g. 0s, 5m, 1h", "grace: '%s' is not a duration", v->str);
        if ((v = ynode_get(n, "until")) && need(dl, v, Y_SCALAR, "until")) {
                if (time_parse(v->str, v->len, &t->until) < 0)
                        diag_add(dl, DIAG_E023, ynode_pos(v), "write RFC 3339 with an offset",
                                 "until: '%s' is not a time", v->str);
                t->has_until = true;
        }
        if ((v = ynode_get(n, "xfail")) && need(dl, v, Y_SCALAR, "xfail"))
                t->xfail = v->str;
        if ((v = ynode_get(n, "exact_alerts")) && need(dl, v, Y_SCALAR, "exact_alerts")) {
                double d;
                if (!plain_number(v, &d) || d < 0 || d != floor(d))
                        diag_add(dl, DIAG_E008, ynode_pos(v), NULL, "exact_alerts: '%s' is not a count", v->str);
                else
                        t->exact_alerts = (int64_t)d;
        }
        v = ynode_get(n, "events");
        if (!v)
                diag_add(dl, DIAG_E004, ynode_pos(n), NULL, "a test needs events:");
        else if (need(dl, v, Y_SEQ, "events"))
                for (uint32_t i = 0; i < v->n; i++)
                        event_read(c, t, v->items[i], ti, i + 1);
        if ((v = ynode_get(n, "expect")))
                items_read(c, t, v, false);
        if ((v = ynode_get(n, "absent")))
                items_read(c, t, v, true);
}

static void test_free(Test *t)
{
        for (uint32_t i = 0; i < t->nev; i++)
                free(t->ev[i].json);
        free(t->ev);
        for (int s = 0; s < NSECT; s++) {
                free(t->want[s]);
                free(t->forbid[s]);
        }
        diag_list_deinit(&t->dl);
}

/* ---- running a test ---- */

typedef struct Output {
        OutKind kind;
        JVal *j;
} Output;

typedef struct Run {
        Arena ar;
        Output *v;
        uint32_t n, cap;
        bool bad_json;
} Run;

static void run_emit(void *ud, OutKind kind, const char *data, size_t len, const OutMeta *m)
{
        Run *r = ud;
        JVal *j;
        if (kind == OUT_DEADLETTER) {
                /* a synthetic document: the reason, the detail and where from */
                Buf b = {0};
                buf_puts(&b, "{\"reason\":");
                buf_json_str(&b, m->reason ? m->reason : "", m->reason ? strlen(m->reason) : 0);
                buf_puts(&b, ",\"detail\":");
                buf_json_str(&b, m->detail ? m->detail : "", m->detail ? strlen(m->detail) : 0);
                buf_puts(&b, ",\"enterprise_id\":");
                if (m->enterprise)
                        buf_json_str(&b, m->enterprise, m->enterprise_len);
                else
                        buf_puts(&b, "null");
                buf_printf(&b, ",\"event\":%lld}", m->source ? (long long)m->source->offset : 0LL);
                j = json_parse(&r->ar, b.p, b.len);
                buf_free(&b);
        } else {
                j = json_parse(&r->ar, data, len);
        }
        if (!j) {
                r->bad_json = true;
                return;
        }
        Output *o = &VEC_PUSH(r->v, r->n, r->cap);
        o->kind = kind == OUT_SHADOW ? OUT_ALERT : kind;
        o->j = j;
}

static Sect sect_of(OutKind k)
{
        return k == OUT_ALERT ? S_ALERTS : k == OUT_ADJUSTMENT ? S_ADJ : S_DL;
}

static bool is_shadow(const JVal *j)
{
        const char *s = json_str(j, "status");
        return s && strcmp(s, "shadow") == 0;
}

/* One line describing an output. */
static void out_line(Buf *b, const Output *o)
{
        const JVal *j = o->j;
        switch (sect_of(o->kind)) {
        case S_ALERTS:
                buf_puts(b, "alert  ");
                json_show(b, json_get(j, "ts"));
                buf_printf(b, " %s %s", json_str(j, "enterprise_id"), json_str(j, "rule_id"));
                buf_printf(b, " trigger=%s key=", json_str(j, "trigger"));
                json_show(b, json_get(j, "key"));
                buf_puts(b, " score_delta=");
                json_show(b, json_get(j, "score_delta"));
                buf_printf(b, " severity=%s", json_str(j, "severity"));
                if (is_shadow(j))
                        buf_puts(b, " status=shadow");
                break;
        case S_ADJ:
                buf_puts(b, "adjust ");
                json_show(b, json_get(j, "ts"));
                buf_printf(b, " %s ", json_str(j, "enterprise_id"));
                if (json_get(j, "previous") && json_get(j, "previous")->kind == J_OBJ) {
                        json_show(b, json_get(j, "previous.grade"));
                        buf_putc(b, '/');
                        json_show(b, json_get(j, "previous.mode"));
                        buf_putc(b, '/');
                        json_show(b, json_get(j, "previous.inspections_per_year"));
                } else {
                        buf_puts(b, "(first)");
                }
                buf_puts(b, " -> ");
                json_show(b, json_get(j, "current.grade"));
                buf_putc(b, '/');
                json_show(b, json_get(j, "current.mode"));
                buf_putc(b, '/');
                json_show(b, json_get(j, "current.inspections_per_year"));
                buf_puts(b, " score=");
                json_show(b, json_get(j, "score"));
                buf_printf(b, " band=%s cause=%s", json_str(j, "band"), json_str(j, "cause"));
                break;
        default:
                buf_puts(b, "dead   event #");
                json_show(b, json_get(j, "event"));
                buf_printf(b, " %s: %s", json_str(j, "reason"), json_str(j, "detail"));
                break;
        }
}

static bool scalar_eq_str(const YNode *w, const JVal *g)
{
        if (ynode_is_null(w))
                return g && g->kind == J_NULL;
        if (!g)
                return false;
        switch (g->kind) {
        case J_STR:
                return g->len == w->len && memcmp(g->s, w->str, w->len) == 0;
        case J_NUM: {
                double d;
                return plain_number(w, &d) && d == g->num;
        }
        case J_BOOL: {
                bool b;
                return plain_bool(w, &b) && b == g->b;
        }
        default:
                return false;
        }
}

/* arr holds w: as a string (member NULL) or as the member of an object */
static bool has_name(const JVal *arr, const YNode *w, const char *member)
{
        if (!arr || arr->kind != J_ARR)
                return false;
        for (uint32_t i = 0; i < arr->n; i++) {
                const JVal *x = member ? json_get(arr->items[i], member) : arr->items[i];
                if (x && x->kind == J_STR && x->len == w->len && memcmp(x->s, w->str, w->len) == 0)
                        return true;
        }
        return false;
}

static bool key_match(const MKey *k, const YNode *w, const JVal *g)
{
        int64_t a, b;
        double d;
        switch (k->type) {
        case MT_STR:
                return scalar_eq_str(w, g);
        case MT_NUM:
                if (ynode_is_null(w))
                        return g && g->kind == J_NULL;
                return g && g->kind == J_NUM && plain_number(w, &d) && fabs(d - g->num) <= 1e-9 * (1 + fabs(d));
        case MT_TIME:
                if (ynode_is_null(w))
                        return g && g->kind == J_NULL;
                return g && g->kind == J_STR && time_parse(w->str, w->len, &a) == 0 &&
                       time_parse(g->s, g->len, &b) == 0 && a == b;
        case MT_CONTAINS:
                return g && g->kind == J_STR && strstr(g->s, w->str) != NULL;
        case MT_HAS:
        case MT_FLAGS:
        case MT_RULES: {
                const char *m = k->type == MT_FLAGS ? "name" : k->type == MT_RULES ? "rule_id" : NULL;
                if (w->kind == Y_SEQ) {
                        if (w->n == 0) /* [] : none at all */
                                return g && g->kind == J_ARR && g->n == 0;
                        for (uint32_t i = 0; i < w->n; i++)
                                if (!has_name(g, w->items[i], m))
                                        return false;
                        return true;
                }
                return has_name(g, w, m);
        }
        }
        return false;
}

static void ynode_show(Buf *b, const YNode *n)
{
        if (n->kind == Y_SCALAR) {
                if (n->style == YS_PLAIN)
                        buf_put(b, n->str, n->len);
                else
                        buf_json_str(b, n->str, n->len);
                return;
        }
        buf_putc(b, n->kind == Y_SEQ ? '[' : '{');
        for (uint32_t i = 0; i < n->n; i++) {
                if (i)
                        buf_puts(b, ", ");
                if (n->kind == Y_MAP) {
                        buf_puts(b, n->keys[i]->str);
                        buf_puts(b, ": ");
                }
                ynode_show(b, n->items[i]);
        }
        buf_putc(b, n->kind == Y_SEQ ? ']' : '}');
}

/* The number of keys of want that o does not match; their diffs to diff. */
static uint32_t mismatches(const MKey *keys, const YNode *want, const JVal *o, Buf *diff)
{
        uint32_t n = 0;
        for (uint32_t i = 0; i < want->n; i++) {
                const MKey *k = mkey_find(keys, want->keys[i]->str);
                const JVal *g = json_get(o, k->path);
                if (key_match(k, want->items[i], g))
                        continue;
                n++;
                if (diff) {
                        buf_printf(diff, "%s%s: want ", n > 1 ? ", " : "", k->name);
                        ynode_show(diff, want->items[i]);
                        buf_puts(diff, ", got ");
                        if ((k->type == MT_FLAGS || k->type == MT_RULES) && g && g->kind == J_ARR) {
                                buf_putc(diff, '[');
                                for (uint32_t x = 0; x < g->n; x++) {
                                        if (x)
                                                buf_puts(diff, ", ");
                                        json_show(diff, json_get(g->items[x], k->type == MT_FLAGS ? "name" : "rule_id"));
                                }
                                buf_putc(diff, ']');
                        } else {
                                json_show(diff, g);
                        }
                }
        }
        return n;
}

static void pos_prefix(Buf *b, const YNode *n)
{
        buf_printf(b, "  %s:%u:%u: ", n->src->path, n->line, n->col);
}

/* Report a missing expected item with the closest outputs of its rule or
 * enterprise. */
static void report_missing(Buf *b, Sect s, const YNode *want, const Run *r)
{
        const MKey *keys = sect_keys[s];
        pos_prefix(b, want);
        buf_printf(b, "expected %s not found: ", sect_item[s]);
        ynode_show(b, want);
        buf_putc(b, '\n');
        /* candidates: same rule (alerts) and same enterprise, if given */
        const YNode *rule = ynode_get(want, "rule"), *ent = ynode_get(want, "enterprise");
        uint32_t *idx = xmalloc((r->n + 1) * sizeof(uint32_t)), *miss = xmalloc((r->n + 1) * sizeof(uint32_t));
        uint32_t nc = 0;
        for (int pass = 0; pass < 2 && nc == 0; pass++)
                for (uint32_t i = 0; i < r->n; i++) {
                        const Output *o = &r->v[i];
                        if (sect_of(o->kind) != s)
                                continue;
                        if (rule && pass == 0 && !scalar_eq_str(rule, json_get(o->j, "rule_id")))
                                continue;
                        if (ent && !scalar_eq_str(ent, json_get(o->j, "enterprise_id")))
                                continue;
                        idx[nc] = i;
                        miss[nc++] = mismatches(keys, want, o->j, NULL);
                }
        if (nc == 0) {
                buf_printf(b, "      no %s at all%s%s\n", s == S_ALERTS ? "alert" : sect_names[s],
                           ent ? " for enterprise " : "", ent ? ent->str : "");
        } else {
                if (rule && nc && !scalar_eq_str(rule, json_get(r->v[idx[0]].j, "rule_id")))
                        buf_printf(b, "      no alert of %s%s%s; other %s:\n", rule->str,
                                   ent ? " for " : "", ent ? ent->str : "", sect_names[s]);
                else
                        buf_puts(b, "      closest:\n");
                /* the fewest mismatches first, then output order; at most 5 */
                for (uint32_t shown = 0; shown < 5 && shown < nc; shown++) {
                        uint32_t best = shown;
                        for (uint32_t k = shown + 1; k < nc; k++)
                                if (miss[k] < miss[best])
                                        best = k;
                        uint32_t ti = idx[shown], tm = miss[shown];
                        idx[shown] = idx[best];
                        miss[shown] = miss[best];
                        idx[best] = ti;
                        miss[best] = tm;
                        const Output *o = &r->v[idx[shown]];
                        buf_puts(b, "        ");
                        out_line(b, o);
                        buf_puts(b, "\n          (");
                        mismatches(keys, want, o->j, b);
                        buf_puts(b, ")\n");
                }
                if (nc > 5)
                        buf_printf(b, "        ... and %u more\n", nc - 5);
        }
        free(idx);
        free(miss);
}

typedef struct GradeRow {
        const char *ent;
        JVal *j;
} GradeRow;

static void grades_table(Buf *b, const GradeRow *g, uint32_t n)
{
        buf_puts(b, "      final grades:\n");
        if (!n)
                buf_puts(b, "        (no enterprise)\n");
        for (uint32_t i = 0; i < n; i++) {
                buf_printf(b, "        %-20s ", g[i].ent);
                json_show(b, json_get(g[i].j, "grade"));
                buf_putc(b, ' ');
                json_show(b, json_get(g[i].j, "mode"));
                buf_puts(b, " inspections_per_year=");
                json_show(b, json_get(g[i].j, "inspections_per_year"));
                buf_puts(b, " score=");
                json_show(b, json_get(g[i].j, "score"));
                buf_putc(b, '\n');
        }
}

/* Run one well-formed test; its report goes to b.  Returns true when it
 * passed. */
static bool test_run(Ctx *c, Test *t, const char *path, Buf *b, Buf *verbose)
{
        Run r = {0};
        arena_init(&r.ar);
        EngineConfig cfg;
        engine_config_default(&cfg);
        cfg.grace_ms = t->grace;
        Engine *e = NULL;
        int rc = engine_new(&e, c->rs, &cfg, run_emit, &r);
        if (rc < 0) {
                buf_printf(b, "  cannot start the engine: %s\n", strerror(-rc));
                arena_deinit(&r.ar);
                return false;
        }
        for (uint32_t i = 0; i < t->nev; i++) {
                SourcePos src = {.topic = path, .partition = -1, .offset = (int64_t)i + 1};
                engine_push(e, t->ev[i].json, t->ev[i].len, &src);
        }
        engine_flush(e);
        if (t->has_until)
                engine_advance(e, t->until);
        Buf gb = {0};
        engine_grades_write(e, &gb);
        /* the explain document of each enterprise expect.grades names */
        JVal **xj = xcalloc(t->grades ? t->grades->n + 1 : 1, sizeof(JVal *));
        for (uint32_t i = 0; t->grades && i < t->grades->n; i++) {
                const YNode *en = t->grades->keys[i];
                char *x = engine_explain_json(e, en->str, en->len);
                if (x)
                        xj[i] = json_parse(&r.ar, x, strlen(x));
                free(x);
        }
        engine_free(e);

        GradeRow *g = NULL;
        uint32_t ng = 0, cg = 0;
        for (const char *p = gb.p; p && *p;) {
                const char *nl = strchr(p, '\n');
                size_t n = nl ? (size_t)(nl - p) : strlen(p);
                JVal *j = json_parse(&r.ar, p, n);
                if (j && json_str(j, "enterprise_id"))
                        VEC_PUSH(g, ng, cg) = (GradeRow){.ent = json_str(j, "enterprise_id"), .j = j};
                p += n + (nl != NULL);
        }
        buf_free(&gb);

        bool ok = true;
        if (r.bad_json) {
                buf_puts(b, "  the engine wrote a document this runner cannot read (not JSON)\n");
                ok = false;
        }
        for (int s = 0; s < NSECT; s++)
                for (uint32_t i = 0; i < t->nwant[s]; i++) {
                        bool found = false;
                        for (uint32_t k = 0; k < r.n && !found; k++)
                                found = sect_of(r.v[k].kind) == (Sect)s &&
                                        mismatches(sect_keys[s], t->want[s][i], r.v[k].j, NULL) == 0;
                        if (!found) {
                                ok = false;
                                report_missing(b, (Sect)s, t->want[s][i], &r);
                        }
                }
        for (int s = 0; s < NSECT; s++)
                for (uint32_t i = 0; i < t->nforbid[s]; i++) {
                        bool head = false;
                        for (uint32_t k = 0; k < r.n; k++) {
                                if (sect_of(r.v[k].kind) != (Sect)s ||
                                    mismatches(sect_keys[s], t->forbid[s][i], r.v[k].j, NULL) != 0)
                                        continue;
                                if (!head) {
                                        pos_prefix(b, t->forbid[s][i]);
                                        buf_printf(b, "forbidden %s appeared: ", sect_item[s]);
                                        ynode_show(b, t->forbid[s][i]);
                                        buf_putc(b, '\n');
                                        head = true;
                                }
                                buf_puts(b, "        ");
                                out_line(b, &r.v[k]);
                                buf_putc(b, '\n');
                        }
                        if (head)
                                ok = false;
                }
        if (t->grades) {
                bool bad = false;
                for (uint32_t i = 0; i < t->grades->n; i++) {
                        const YNode *en = t->grades->keys[i], *want = t->grades->items[i];
                        pos_prefix(b, en);
                        if (!xj[i]) {
                                buf_printf(b, "grades: the engine never saw enterprise %s\n", en->str);
                                bad = true;
                                continue;
                        }
                        Buf d = {0};
                        if (mismatches(grade_keys, want, xj[i], &d)) {
                                buf_printf(b, "grades: %s: %s\n", en->str, d.p);
                                bad = true;
                        } else {
                                /* take the prefix back: nothing to say */
                                char *last = b->p + b->len;
                                while (last > b->p && last[-1] != '\n')
                                        last--;
                                b->len = (size_t)(last - b->p);
                                b->p[b->len] = 0;
                        }
                        buf_free(&d);
                }
                if (bad) {
                        grades_table(b, g, ng);
                        ok = false;
                }
        }
        if (t->exact_alerts >= 0) {
                int64_t n = 0;
                for (uint32_t k = 0; k < r.n; k++)
                        n += r.v[k].kind == OUT_ALERT && !is_shadow(r.v[k].j);
                if (n != t->exact_alerts) {
                        const YNode *v = ynode_get(t->node, "exact_alerts");
                        pos_prefix(b, v);
                        buf_printf(b, "exact_alerts: want %lld, got %lld\n", (long long)t->exact_alerts, (long long)n);
                        for (uint32_t k = 0; k < r.n; k++)
                                if (r.v[k].kind == OUT_ALERT && !is_shadow(r.v[k].j)) {
                                        buf_puts(b, "        ");
                                        out_line(b, &r.v[k]);
                                        buf_putc(b, '\n');
                                }
                        ok = false;
                }
        }
        if (verbose) {
                buf_printf(verbose, "       outputs (%u):\n", r.n);
                for (uint32_t k = 0; k < r.n; k++) {
                        buf_puts(verbose, "         ");
                        out_line(verbose, &r.v[k]);
                        buf_putc(verbose, '\n');
                }
                grades_table(verbose, g, ng);
        }
        free(g);
        free(xj);
        free(r.v);
        arena_deinit(&r.ar);
        return ok;
}

/* ---- the JUnit report ---- */

static double now_secs(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static JSuite *junit_suite(Junit *ju, const char *name)
{
        JSuite *s = &VEC_PUSH(ju->v, ju->n, ju->cap);
        *s = (JSuite){.name = xstrdup(name)};
        return s;
}

/* The class of a test file's cases: its name without directory and
 * extension ("sampling" for rules/tests/sampling.yaml), so that a CI
 * system that splits class names at dots does not cut off "yaml". */
static char *junit_class(const char *path)
{
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        const char *dot = strrchr(b, '.');
        return xstrndup(b, dot && dot != b ? (size_t)(dot - b) : strlen(b));
}

/* The first non-blank line of a report, without its indent: a failure's
 * one-line message. */
static char *first_line(const char *s)
{
        if (!s)
                return xstrdup("");
        while (*s == ' ' || *s == '\n')
                s++;
        return xstrndup(s, strcspn(s, "\n"));
}

static void junit_case(JSuite *s, const char *path, const char *name, uint32_t line, double secs,
                       JOutcome o, const char *message, const char *text)
{
        JCase *k = &VEC_PUSH(s->v, s->n, s->cap);
        *k = (JCase){.classname = junit_class(path), .name = xstrdup(name), .file = xstrdup(path),
                     .line = line, .secs = secs, .outcome = o};
        if (o != JO_PASS) {
                k->message = message ? xstrdup(message) : first_line(text);
                k->text = xstrdup(text ? text : "");
        }
}

/* XML 1.0 text or attribute value.  Markup characters become entities; a
 * character XML cannot carry at all (control characters other than tab
 * and newline, U+FFFE, U+FFFF, a surrogate) is written as \uXXXX and a
 * byte that is not UTF-8 as \xNN, so that the file always parses and the
 * report still shows where the odd byte was.  In attributes tab, newline
 * and carriage return are character references (a parser would turn them
 * into spaces). */
static void xml_put(Buf *b, const char *s, bool attr)
{
        const unsigned char *p = (const unsigned char *)s;
        while (*p) {
                unsigned char c = *p;
                if (c < 0x80) {
                        switch (c) {
                        case '&': buf_puts(b, "&amp;"); break;
                        case '<': buf_puts(b, "&lt;"); break;
                        case '>': buf_puts(b, "&gt;"); break;
                        case '"': buf_puts(b, attr ? "&quot;" : "\""); break;
                        case '\'': buf_puts(b, attr ? "&apos;" : "'"); break;
                        case '\t': case '\n':
                                if (attr)
                                        buf_printf(b, "&#%d;", c);
                                else
                                        buf_putc(b, (char)c);
                                break;
                        case '\r': buf_puts(b, "&#13;"); break;
                        default:
                                if (c < 0x20 || c == 0x7f)
                                        buf_printf(b, "\\u%04X", c);
                                else
                                        buf_putc(b, (char)c);
                        }
                        p++;
                        continue;
                }
                uint32_t n = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
                uint32_t cp = n == 4 ? c & 7u : n == 3 ? c & 15u : c & 31u;
                uint32_t i = 1;
                for (; n && i < n && (p[i] & 0xc0) == 0x80; i++)
                        cp = cp << 6 | (p[i] & 63u);
                bool ok = n && i == n && !(n == 3 && cp < 0x800) && !(n == 4 && (cp < 0x10000 || cp > 0x10ffff));
                if (!ok) {
                        buf_printf(b, "\\x%02X", c);
                        p++;
                } else if ((cp >= 0xd800 && cp < 0xe000) || cp == 0xfffe || cp == 0xffff ||
                           (cp >= 0x80 && cp < 0xa0)) {
                        /* C1 controls are legal XML 1.0 but "discouraged";
                         * several parsers refuse them */
                        buf_printf(b, "\\u%04X", cp);
                        p += n;
                } else {
                        buf_put(b, p, n);
                        p += n;
                }
        }
}

static void junit_write_case(Buf *b, const JCase *k)
{
        static const char *const tags[] = {[JO_FAIL] = "failure", [JO_ERROR] = "error", [JO_SKIP] = "skipped"};
        buf_puts(b, "    <testcase classname=\"");
        xml_put(b, k->classname, true);
        buf_puts(b, "\" name=\"");
        xml_put(b, k->name, true);
        buf_printf(b, "\" time=\"%.3f\" file=\"", k->secs);
        xml_put(b, k->file, true);
        buf_putc(b, '"');
        if (k->line)
                buf_printf(b, " line=\"%u\"", k->line);
        if (k->outcome == JO_PASS) {
                buf_puts(b, "/>\n");
                return;
        }
        buf_printf(b, ">\n      <%s message=\"", tags[k->outcome]);
        xml_put(b, k->message, true);
        buf_puts(b, "\">");
        xml_put(b, k->text, false);
        buf_printf(b, "</%s>\n    </testcase>\n", tags[k->outcome]);
}

/* Write the report to path (written whole to a temporary file, then
 * renamed: a CI job never reads half a report).  Returns 0 or -errno. */
static int junit_write(const Junit *ju, const char *path)
{
        uint32_t tests = 0, failures = 0, errors = 0, skipped = 0;
        double secs = 0;
        Buf body = {0};
        for (uint32_t i = 0; i < ju->n; i++) {
                const JSuite *s = &ju->v[i];
                uint32_t f = 0, e = 0, sk = 0;
                double t = 0;
                for (uint32_t k = 0; k < s->n; k++) {
                        f += s->v[k].outcome == JO_FAIL;
                        e += s->v[k].outcome == JO_ERROR;
                        sk += s->v[k].outcome == JO_SKIP;
                        t += s->v[k].secs;
                }
                buf_puts(&body, "  <testsuite name=\"");
                xml_put(&body, s->name, true);
                buf_printf(&body, "\" tests=\"%u\" failures=\"%u\" errors=\"%u\" skipped=\"%u\" time=\"%.3f\">\n",
                           s->n, f, e, sk, t);
                for (uint32_t k = 0; k < s->n; k++)
                        junit_write_case(&body, &s->v[k]);
                buf_puts(&body, "  </testsuite>\n");
                tests += s->n;
                failures += f;
                errors += e;
                skipped += sk;
                secs += t;
        }
        Buf b = {0};
        buf_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                       "<testsuites name=\"riskctl test\" tests=\"%u\" failures=\"%u\" errors=\"%u\" skipped=\"%u\" time=\"%.3f\">\n",
                   tests, failures, errors, skipped, secs);
        buf_put(&b, body.p ? body.p : "", body.len);
        buf_puts(&b, "</testsuites>\n");
        buf_free(&body);

        int rc = 0;
        char *tmp = xasprintf("%s.tmp", path);
        FILE *f = fopen(tmp, "w");
        if (!f || fwrite(b.p, 1, b.len, f) != b.len)
                rc = -errno;
        if (f && fclose(f) != 0 && rc == 0)
                rc = -errno;
        if (rc == 0 && rename(tmp, path) < 0)
                rc = -errno;
        if (rc < 0)
                unlink(tmp);
        free(tmp);
        buf_free(&b);
        return rc;
}

static void junit_free(Junit *ju)
{
        for (uint32_t i = 0; i < ju->n; i++) {
                for (uint32_t k = 0; k < ju->v[i].n; k++) {
                        JCase *c = &ju->v[i].v[k];
                        free(c->classname);
                        free(c->name);
                        free(c->file);
                        free(c->message);
                        free(c->text);
                }
                free(ju->v[i].v);
                free(ju->v[i].name);
        }
        free(ju->v);
}

/* The text diag_print_text writes, as a string (for the report and for
 * the JUnit file). */
static char *diag_text(const DiagList *dl)
{
        char *s = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&s, &n);
        if (!f)
                return xstrdup("");
        diag_print_text(f, dl, false);
        fclose(f);
        return s;
}

/* ---- files ---- */

static void cover_one(Ctx *c, const YNode *r, bool static_only)
{
        if (!r || r->kind != Y_SCALAR)
                return;
        const Rule *ru = rules_find(c->rs, r->str);
        if (!ru || (static_only && !ru->is_static))
                return;
        for (uint32_t k = 0; k < c->ncovered; k++)
                if (strcmp(c->covered[k], r->str) == 0)
                        return;
        VEC_PUSH(c->covered, c->ncovered, c->ccovered) = xstrdup(r->str);
}

/* A rule is covered when an expect.alerts item names it; a static rule
 * (on: the profile type) that asks for no action or flag never alerts, so
 * naming it in an expect.grades static_rules list covers it too. */
static void cover(Ctx *c, const Test *t)
{
        for (uint32_t i = 0; i < t->nwant[S_ALERTS]; i++)
                cover_one(c, ynode_get(t->want[S_ALERTS][i], "rule"), false);
        for (uint32_t i = 0; t->grades && i < t->grades->n; i++) {
                const YNode *l = ynode_get(t->grades->items[i], "static_rules");
                if (l && l->kind == Y_SEQ)
                        for (uint32_t k = 0; k < l->n; k++)
                                cover_one(c, l->items[k], true);
                else
                        cover_one(c, l, true);
        }
}

static void file_failed(Ctx *c, const char *path, const DiagList *dl, JSuite *js)
{
        char *text = diag_text(dl);
        fprintf(c->out, "FAIL %s (broken test file)\n%s", path, text);
        if (js)
                junit_case(js, path, "(broken test file)", 0, 0, JO_ERROR, "broken test file", text);
        free(text);
        c->tests++;
        c->failed++;
}

/* --run: a test without a name (itself an error) is always run, so that
 * the error is seen. */
static bool selected(const Ctx *c, const char *name)
{
        return !c->run_re || !name || regexec(c->run_re, name, 0, NULL, 0) == 0;
}

static void file_run(Ctx *c, const char *path)
{
        char *text = NULL;
        size_t len = 0;
        DiagList dl = {0};
        JSuite *js = c->junit ? junit_suite(c->junit, path) : NULL;
        int r = file_read_all(path, &text, &len);
        if (r < 0) {
                SrcPos pos = {.file = path};
                diag_add(&dl, DIAG_E002, pos, NULL, "cannot read: %s", strerror(-r));
                file_failed(c, path, &dl, js);
                diag_list_deinit(&dl);
                return;
        }
        SrcFile *f = srcfile_new(path, text, len);
        c->file = f;
        srcfile_parse(f, &dl);
        const YNode *root = f->root, *tests = NULL;
        if (!dl.nerrors) {
                static const char *const top[] = {"tests", "desc", "aliases"};
                if (!root || root->kind != Y_MAP) {
                        SrcPos pos = root ? ynode_pos(root) : (SrcPos){.file = f->path, .line = 1, .col = 1};
                        diag_add(&dl, DIAG_E003, pos, "start the file with tests: and a list of tests (docs/testing-rules.md)",
                                 "a test file is a mapping with tests:");
                } else {
                        check_mapping_keys(&dl, root, top, ARRAY_SIZE(top), "a test file");
                        tests = ynode_get(root, "tests");
                        if (!tests)
                                diag_add(&dl, DIAG_E004, ynode_pos(root), NULL, "a test file needs tests:");
                        else
                                need(&dl, tests, Y_SEQ, "tests");
                        const YNode *aliases = ynode_get(root, "aliases");
                        if (aliases && aliases_ok(&dl, aliases) && tests && tests->kind == Y_SEQ)
                                alias_apply((YNode *)tests, aliases, false);
                }
        }
        if (dl.nerrors) {
                file_failed(c, path, &dl, js);
                goto out;
        }
        for (uint32_t i = 0; i < tests->n; i++) {
                Test t = {0};
                test_read(c, &t, tests->items[i], i + 1);
                const char *name = t.name ? t.name : "(unnamed)";
                if (!selected(c, t.name)) {
                        c->deselected++;
                        test_free(&t);
                        continue;
                }
                c->tests++;
                if (t.dl.nerrors) {
                        diag_list_sort(&t.dl);
                        char *dt = diag_text(&t.dl);
                        fprintf(c->out, "FAIL %s:%u %s (malformed test)\n%s", path, t.line, name, dt);
                        if (js)
                                junit_case(js, path, name, t.line, 0, JO_ERROR, "malformed test", dt);
                        free(dt);
                        c->failed++;
                        test_free(&t);
                        continue;
                }
                if (!t.xfail)
                        cover(c, &t);
                Buf rep = {0}, vb = {0};
                double t0 = now_secs();
                bool ok = test_run(c, &t, path, &rep, c->verbose ? &vb : NULL);
                double secs = now_secs() - t0;
                if (t.xfail && !ok) {
                        fprintf(c->out, "xfail %s:%u %s (known: %s)\n", path, t.line, name, t.xfail);
                        if (c->verbose)
                                fputs(rep.p ? rep.p : "", c->out);
                        if (js) {
                                char *m = xasprintf("xfail: %s", t.xfail);
                                junit_case(js, path, name, t.line, secs, JO_SKIP, m, rep.p);
                                free(m);
                        }
                        c->xfailed++;
                } else if (t.xfail) {
                        char *m = xasprintf("passes but is marked xfail (%s): remove the mark", t.xfail);
                        fprintf(c->out, "FAIL %s:%u %s\n  %s\n", path, t.line, name, m);
                        if (js)
                                junit_case(js, path, name, t.line, secs, JO_FAIL, m, m);
                        free(m);
                        c->failed++;
                } else if (ok) {
                        fprintf(c->out, "ok   %s %s\n", path, name);
                        if (js)
                                junit_case(js, path, name, t.line, secs, JO_PASS, NULL, NULL);
                        c->passed++;
                } else {
                        fprintf(c->out, "FAIL %s:%u %s\n", path, t.line, name);
                        fputs(rep.p ? rep.p : "", c->out);
                        if (js)
                                junit_case(js, path, name, t.line, secs, JO_FAIL, NULL, rep.p);
                        c->failed++;
                }
                if (c->verbose)
                        fputs(vb.p ? vb.p : "", c->out);
                buf_free(&rep);
                buf_free(&vb);
                test_free(&t);
        }
out:
        diag_list_deinit(&dl);
        c->file = NULL;
        srcfile_free(f);
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What a run is asked to do (ruletest_main's options). */
typedef struct Opts {
        const char *dir;
        char **files;             /* the test files to run; none: every YAML file of DIR/tests */
        uint32_t nfiles;
        bool verbose, coverage;
        const char *run;          /* --run PATTERN (POSIX extended regex) */
        const char *junit;        /* --junit FILE */
} Opts;

/* A problem outside any test file (the rules do not compile, no test
 * file, coverage) as one case of its own suite in the JUnit report. */
static void junit_problem(Junit *ju, const char *suite, const char *path, const char *name, JOutcome o,
                          const char *message, const char *text)
{
        if (ju)
                junit_case(junit_suite(ju, suite), path, name, 0, 0, o, message, text);
}

static int run_tests(const Opts *o, Ctx *c, FILE *out)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        int r = rules_load(o->dir, &dl, &rs);
        if (r < 0) {
                fprintf(out, "riskctl test: cannot open %s: %s\n", o->dir, strerror(-r));
                diag_list_deinit(&dl);
                return 2;
        }
        if (r > 0) {
                char *dt = diag_text(&dl);
                char *m = xasprintf("%s has %u errors; no test run", o->dir, dl.nerrors);
                fprintf(out, "%sriskctl test: %s\n", dt, m);
                junit_problem(c->junit, o->dir, o->dir, "(rules)", JO_ERROR, m, dt);
                free(m);
                free(dt);
                diag_list_deinit(&dl);
                return 1;
        }
        diag_list_deinit(&dl);

        char *tdir = xasprintf("%s/tests", o->dir);
        char **names = NULL;
        uint32_t n = 0, cap = 0;
        if (o->nfiles) {
                /* a test file named on the command line that is not there
                 * is a wrong argument, not a failing test */
                for (uint32_t i = 0; i < o->nfiles; i++)
                        if (access(o->files[i], R_OK) < 0) {
                                fprintf(out, "riskctl test: cannot open %s: %s\n", o->files[i], strerror(errno));
                                free(tdir);
                                rules_unref(rs);
                                return 2;
                        }
                for (uint32_t i = 0; i < o->nfiles; i++)
                        VEC_PUSH(names, n, cap) = xstrdup(o->files[i]);
        } else {
                DIR *d = opendir(tdir);
                if (!d) {
                        fprintf(out, "riskctl test: cannot open %s: %s\n", tdir, strerror(errno));
                        free(tdir);
                        rules_unref(rs);
                        return 2;
                }
                struct dirent *de;
                while ((de = readdir(d))) {
                        size_t l = strlen(de->d_name);
                        if (de->d_name[0] != '.' && ((l > 5 && strcmp(de->d_name + l - 5, ".yaml") == 0) ||
                                                     (l > 4 && strcmp(de->d_name + l - 4, ".yml") == 0)))
                                VEC_PUSH(names, n, cap) = xasprintf("%s/%s", tdir, de->d_name);
                }
                closedir(d);
                if (n > 1)
                        xsort(names, n, sizeof(char *), name_cmp);
        }

        c->rs = rs;
        c->out = out;
        c->verbose = o->verbose;
        diag_set_line_source(line_of, c);
        for (uint32_t i = 0; i < n; i++) {
                file_run(c, names[i]);
                free(names[i]);
        }
        diag_set_line_source(NULL, NULL);
        free(names);
        int status = c->failed ? 1 : 0;
        if (n == 0) {
                char *m = xasprintf("no *.yaml test file in %s", tdir);
                fprintf(out, "riskctl test: %s\n", m);
                junit_problem(c->junit, tdir, tdir, "(no test file)", JO_ERROR, m, m);
                free(m);
                status = 1;
        } else if (o->run && c->tests == 0) {
                /* a pattern that selects nothing is a typo more often
                 * than an intention: CI must not pass on zero tests */
                char *m = xasprintf("no test name matches --run '%s'", o->run);
                fprintf(out, "riskctl test: %s\n", m);
                junit_problem(c->junit, tdir, tdir, "(--run)", JO_ERROR, m, m);
                free(m);
                status = 1;
        }
        if (o->coverage) {
                uint32_t miss = 0, total = 0;
                Buf cb = {0};
                for (uint32_t i = 0; i < rs->nrules; i++) {
                        if (rs->rules[i].status == RULE_DISABLED)
                                continue;
                        total++;
                        bool have = false;
                        for (uint32_t k = 0; k < c->ncovered && !have; k++)
                                have = strcmp(c->covered[k], rs->rules[i].id) == 0;
                        if (!have) {
                                buf_printf(&cb, "uncovered %s: no expect.alerts item (or expect.grades static_rules for a static rule) names it (%s:%u)\n",
                                           rs->rules[i].id, rs->rules[i].pos.file ? rs->rules[i].pos.file : "?",
                                           rs->rules[i].pos.line);
                                miss++;
                        }
                }
                char *m = xasprintf("coverage: %u of %u rules fire in a test", total - miss, total);
                fprintf(out, "%s%s\n", cb.p ? cb.p : "", m);
                junit_problem(c->junit, "coverage", o->dir, "coverage", miss ? JO_FAIL : JO_PASS, m, cb.p);
                free(m);
                buf_free(&cb);
                if (miss)
                        status = 1;
        }
        fprintf(out, "%u tests, %u passed, %u failed", c->tests, c->passed, c->failed);
        if (c->xfailed)
                fprintf(out, ", %u expected failures (xfail)", c->xfailed);
        if (c->deselected)
                fprintf(out, ", %u not run (--run)", c->deselected);
        fputc('\n', out);
        free(tdir);
        rules_unref(rs);
        return status;
}

static int run(const Opts *o, FILE *out)
{
        regex_t re;
        Junit ju = {0};
        Ctx c = {.junit = o->junit ? &ju : NULL};
        if (o->run) {
                int rc = regcomp(&re, o->run, REG_EXTENDED | REG_NOSUB);
                if (rc != 0) {
                        char msg[256];
                        regerror(rc, &re, msg, sizeof msg);
                        fprintf(stderr, "riskctl test: --run '%s': %s\n", o->run, msg);
                        return 2;
                }
                c.run_re = &re;
        }
        int status = run_tests(o, &c, out);
        if (o->junit && status != 2) {
                int rc = junit_write(&ju, o->junit);
                if (rc < 0) {
                        fprintf(stderr, "riskctl test: cannot write %s: %s\n", o->junit, strerror(-rc));
                        status = 2;
                }
        }
        for (uint32_t k = 0; k < c.ncovered; k++)
                free(c.covered[k]);
        free(c.covered);
        junit_free(&ju);
        if (o->run)
                regfree(&re);
        return status;
}

int ruletest_run(const char *dir, bool verbose, FILE *out)
{
        Opts o = {.dir = dir, .verbose = verbose};
        return run(&o, out);
}

int ruletest_run_coverage(const char *dir, bool verbose, FILE *out)
{
        Opts o = {.dir = dir, .verbose = verbose, .coverage = true};
        return run(&o, out);
}

static const char usage_text[] =
        "usage: riskctl test [OPTIONS] DIR [TEST_FILE...]\n"
        "       riskctl test [OPTIONS] DIR/tests/FILE.yaml...\n"
        "  run the rule tests in DIR/tests/*.yaml (docs/testing-rules.md), or only the\n"
        "  files named (a name without '/' is looked up in DIR/tests)\n"
        "  --run PATTERN  only the tests whose name matches PATTERN (POSIX extended regex)\n"
        "  --junit FILE   also write a JUnit XML report to FILE for a CI system\n"
        "  --verbose      list every output of every test\n"
        "  --coverage     also fail when a rule fires in no test's expect.alerts\n";

/* DIR of a test file DIR/tests/FILE: the parent of the file's directory. */
static char *dir_of_test_file(const char *path)
{
        char *d = xstrdup(path);
        char *s = strrchr(d, '/');
        if (!s) {
                free(d);
                return xstrdup("..");
        }
        *s = 0;
        if (s == d) {
                free(d);
                return xstrdup("/..");
        }
        s = strrchr(d, '/');
        const char *last = s ? s + 1 : d;
        char *r;
        if (strcmp(last, ".") == 0 || strcmp(last, "..") == 0)
                r = xasprintf("%s/..", d);
        else if (!s)
                r = xstrdup(".");
        else if (s == d)
                r = xstrdup("/");
        else
                r = xstrndup(d, (size_t)(s - d));
        free(d);
        return r;
}

int ruletest_main(int argc, char **argv)
{
        Opts o = {0};
        char **pos = xcalloc((size_t)argc + 1, sizeof(char *));
        uint32_t npos = 0;
        int status = 2;
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0)
                        o.verbose = true;
                else if (strcmp(a, "--coverage") == 0)
                        o.coverage = true;
                else if (strcmp(a, "--run") == 0 || strcmp(a, "--junit") == 0) {
                        if (i + 1 == argc) {
                                fprintf(stderr, "riskctl test: %s needs a value\n%s", a, usage_text);
                                goto out;
                        }
                        if (strcmp(a, "--run") == 0)
                                o.run = argv[++i];
                        else
                                o.junit = argv[++i];
                } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
                        fputs(usage_text, stdout);
                        status = 0;
                        goto out;
                } else if (a[0] == '-' && a[1]) {
                        fprintf(stderr, "riskctl test: unknown option '%s'\n%s", a, usage_text);
                        goto out;
                } else
                        pos[npos++] = argv[i];
        }
        if (!npos) {
                fprintf(stderr, "riskctl test: expected a rules directory\n%s", usage_text);
                goto out;
        }
        /* DIR [FILE...], or test files only (DIR is where they live) */
        struct stat st;
        char *dir = NULL;
        uint32_t first = 1;
        if (stat(pos[0], &st) == 0 && !S_ISDIR(st.st_mode)) {
                dir = dir_of_test_file(pos[0]);
                first = 0;
        } else {
                dir = xstrdup(pos[0]);
        }
        o.dir = dir;
        o.files = xcalloc(npos + 1, sizeof(char *));
        for (uint32_t i = first; i < npos; i++)
                o.files[o.nfiles++] = strchr(pos[i], '/') ? xstrdup(pos[i])
                                                          : xasprintf("%s/tests/%s", dir, pos[i]);
        status = run(&o, stdout);
        fflush(stdout);
        for (uint32_t i = 0; i < o.nfiles; i++)
                free(o.files[i]);
        free(o.files);
        free(dir);
out:
        free(pos);
        return status;
}
