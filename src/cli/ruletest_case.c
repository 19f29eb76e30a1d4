/*
 * riskctl test: reading a test file (the format is at the top of
 * ruletest.c).  Every key, rule id, grade, mode and vocabulary value is
 * checked here, with file:line:col, so that the runner (ruletest_run.c)
 * only meets well-formed tests and an absent: item with a typo cannot
 * pass by matching nothing; the compact events become their JSON lines
 * here, checked against schema.yaml.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/decode.h"
#include "include/riskd/engine.h"
#include "include/riskd/value.h"
#include "src/cli/ruletest_int.h"

static const char *const triggers[] = {"event", "timer", NULL};
static const char *const statuses[] = {"active", "shadow", NULL};
#define X(e, name) name,
static const char *const severities[] = {SEVERITY_LIST(X) NULL};
static const char *const causes[] = {GRADE_CAUSE_LIST(X) NULL};
/* every dead-letter reason; a test names any but "ok" (&reasons[1]) */
static const char *const reasons[] = {DECODE_REASON_LIST(X) ENGINE_REJECT_LIST(X) NULL};
#undef X

/* The members an adjustment and the explain document (grades:) both
 * have, at the same paths: the grading, the scores and the official model
 * (grading.yaml official:, riskd.adjustment/2). */
#define CURRENT_KEYS \
        {"grade", "current.grade", MT_STR, VC_GRADE, NULL}, \
        {"mode", "current.mode", MT_STR, VC_MODE, NULL}, \
        {"inspections_per_year", "current.inspections_per_year", MT_NUM, VC_NONE, NULL},
#define SCORE_KEYS \
        {"score", "score", MT_NUM, VC_NONE, NULL}, \
        {"static_score", "static_score", MT_NUM, VC_NONE, NULL}, \
        {"band", "band", MT_STR, VC_GRADE, NULL},
#define OFFICIAL_KEYS \
        {"official_score", "official.score", MT_NUM, VC_NONE, NULL}, \
        {"dynamic", "official.dynamic", MT_NUM, VC_NONE, NULL}, \
        {"assessed", "official.assessed", MT_STR, VC_GRADE, NULL}, \
        {"raise", "official.raise", MT_NUM, VC_NONE, NULL}, \
        {"lower", "official.lower", MT_NUM, VC_NONE, NULL}, \
        {"carried", "official.carried", MT_NUM, VC_NONE, NULL}, \
        {"index_band", "index.band", MT_STR, VC_GRADE, NULL},

/* an alert's and an alert state's: the rule and the enterprise */
#define ALERT_OF_KEYS \
        {"rule", "rule_id", MT_STR, VC_RULE, NULL}, \
        {"enterprise", "enterprise_id", MT_STR, VC_NONE, NULL},

static const MKey alert_keys[] = {
        ALERT_OF_KEYS
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
        CURRENT_KEYS
        {"previous_grade", "previous.grade", MT_STR, VC_GRADE, NULL},
        {"previous_mode", "previous.mode", MT_STR, VC_MODE, NULL},
        {"previous_inspections_per_year", "previous.inspections_per_year", MT_NUM, VC_NONE, NULL},
        SCORE_KEYS
        {"flags", "flags", MT_FLAGS, VC_NONE, NULL},
        {"rectify_deadline", "rectify_deadline", MT_TIME, VC_NONE, NULL},
        OFFICIAL_KEYS
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

static const char *const alert_states[] = {"open", "escalated", "closed", NULL};
static const char *const alert_causes[] = {"deadline", "expired", "resolved", "superseded", NULL};

/* riskd.alert_state/1 (docs/outputs.md §10): but for at (its time), each
 * key is named as the document's field */
#define SAME_NAME(name, how, vc, values) {name, name, how, vc, values}
static const MKey state_keys[] = {
        ALERT_OF_KEYS
        {"at", "time", MT_TIME, VC_NONE, NULL},
        SAME_NAME("key", MT_STR, VC_NONE, NULL),
        SAME_NAME("from", MT_STR, VC_LIST, alert_states),
        SAME_NAME("to", MT_STR, VC_LIST, alert_states),
        SAME_NAME("cause", MT_STR, VC_LIST, alert_causes),
        SAME_NAME("evidence", MT_HAS, VC_NONE, NULL),
        SAME_NAME("opened_at", MT_TIME, VC_NONE, NULL),
        {NULL, NULL, 0, 0, NULL},
};

const MKey grade_keys[] = {
        CURRENT_KEYS
        SCORE_KEYS
        {"static_rules", "static_rules", MT_RULES, VC_RULE, NULL},
        {"contributions", "contributions", MT_RULES, VC_RULE, NULL},
        {"flags", "flags", MT_FLAGS, VC_NONE, NULL},
        OFFICIAL_KEYS
        {NULL, NULL, 0, 0, NULL},
};

const char *const sect_names[NSECT] = {"alerts", "adjustments", "dead_letters", "alert_states"};
const char *const sect_item[NSECT] = {"alert", "adjustment", "dead letter", "alert state"};
const MKey *const sect_keys[NSECT] = {alert_keys, adj_keys, dl_keys, state_keys};

const MKey *mkey_find(const MKey *t, const char *name)
{
        for (; t->name; t++)
                if (strcmp(t->name, name) == 0)
                        return t;
        return NULL;
}

static bool is_plain(const YNode *n)
{
        return n->kind == Y_SCALAR && n->style == YS_PLAIN;
}

bool case_plain_bool(const YNode *n, bool *ret)
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

bool case_plain_number(const YNode *n, double *ret)
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
                Buf h = {0};
                diag_hint_names(&h, k->str, allowed, n, "valid keys:", NULL);
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
        for (const MKey *k = keys; k->name; k++) {
                assert(nn < ARRAY_SIZE(names));
                names[nn++] = k->name;
        }
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
                if (k->type == MT_NUM && !ynode_is_null(v) && !case_plain_number(v, NULL))
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
        else if (case_plain_bool(n, &bv))
                buf_puts(&b, bv ? "true" : "false");
        else if (case_plain_number(n, NULL))
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
                bool num = case_plain_number(v, NULL), isbool = case_plain_bool(v, &bv);
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
                                diag_hint_names(&h, v->str, f->en ? (const char *const *)f->en->values : NULL,
                                                f->en ? f->en->nvalues : 0, "valid:", NULL);
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
        static const char *const expect_keys[] = {"alerts", "adjustments", "dead_letters", "alert_states", "grades"};
        static const char *const absent_keys[] = {"alerts", "adjustments", "dead_letters", "alert_states"};
        if (!need(&t->dl, sect, Y_MAP, where))
                return;
        check_mapping_keys(&t->dl, sect, forbid ? absent_keys : expect_keys, forbid ? 4 : 5, where);
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

void case_read(Ctx *c, Test *t, const YNode *n, uint32_t ti)
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
                if (!case_plain_number(v, &d) || d < 0 || d != floor(d))
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

void case_free(Test *t)
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

const YNode *case_file_tests(DiagList *dl, const SrcFile *f)
{
        const YNode *root = f->root, *tests = NULL;
        static const char *const top[] = {"tests", "desc", "aliases"};
        if (!root || root->kind != Y_MAP) {
                SrcPos pos = root ? ynode_pos(root) : (SrcPos){.file = f->path, .line = 1, .col = 1};
                diag_add(dl, DIAG_E003, pos, "start the file with tests: and a list of tests (docs/testing-rules.md)",
                         "a test file is a mapping with tests:");
        } else {
                check_mapping_keys(dl, root, top, ARRAY_SIZE(top), "a test file");
                tests = ynode_get(root, "tests");
                if (!tests)
                        diag_add(dl, DIAG_E004, ynode_pos(root), NULL, "a test file needs tests:");
                else
                        need(dl, tests, Y_SEQ, "tests");
                const YNode *aliases = ynode_get(root, "aliases");
                if (aliases && aliases_ok(dl, aliases) && tests && tests->kind == Y_SEQ)
                        alias_apply((YNode *)tests, aliases, false);
        }
        return tests;
}
