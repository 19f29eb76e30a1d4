/*
 * Building one rule from what rulefile.c collected: its keys (on:,
 * severity:, score:, flags:, the keys of the two scores, ...), its
 * condition put together (when: AND appended conditions AND NOT
 * exceptions), checked (check.c) and compiled (compile.c), the warnings of
 * a rule that compiles but does not do what it seems to, and its
 * fingerprint.  Apart from the driver (load.c), which runs this for every
 * rule once all files are read.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "src/rules/load.h"
#include "src/rules/opcodes.h"

static Node *node_new(Loader *L, NodeKind k, uint32_t src_id)
{
        Node *n = arena_alloc(L->ar, sizeof(*n));
        n->kind = k;
        n->src_id = src_id;
        return n;
}

static Node *node_and(Loader *L, Node *a, Node *b, TokKind op)
{
        if (!a)
                return b;
        if (!b)
                return a;
        Node *n = node_new(L, N_BINARY, a->src_id);
        n->op = op;
        n->a = a;
        n->b = b;
        n->off = a->off;
        n->len = a->len;
        return n;
}

/* A checked expression that reads only the event's fields and constants:
 * not the clock, the state, the profile or an aggregate. */
static bool event_pure(const Node *n)
{
        switch (n->kind) {
        case N_LIT: return true;
        case N_NAME: return n->ref == REF_FIELD || n->ref == REF_LIST;
        case N_UNARY: return event_pure(n->a);
        case N_BINARY: return event_pure(n->a) && event_pure(n->b);
        case N_LIST:
        case N_CALL:
                for (uint32_t i = 0; i < n->nargs; i++)
                        if (!event_pure(n->args[i]))
                                return false;
                return true;
        default: return false;
        }
}

/* The top-level `and` operands of a checked condition that are event_pure,
 * AND-ed again; NULL if none.  A timer-driven rule evaluates its condition
 * on the key's last event when the timer fires, so an event failing these
 * would arm a timer that can only find the condition false. */
static Node *arm_conjuncts(Loader *L, Node *n)
{
        if (n->kind == N_BINARY && n->op == T_AND) {
                Node *a = arm_conjuncts(L, n->a), *b = arm_conjuncts(L, n->b);
                Node *both = node_and(L, a, b, T_AND);
                if (both && a && b)
                        both->type = VT_BOOL;
                return both;
        }
        return event_pure(n) ? n : NULL;
}

/* A literal from a YAML scalar: plain numbers and booleans keep their type,
 * everything else is a string (the checker turns strings into enum values
 * or times where the field needs it). */
static Node *lit_from_yaml(Loader *L, const YNode *y)
{
        ExprSrc *es = loader_fixedsrc(L, y);
        Node *n = node_new(L, N_LIT, es->id);
        n->len = 1;
        if (y->kind != Y_SCALAR) {
                diag_add(L->dl, DIAG_E045, ynode_pos(y), NULL, "expected a single value here");
                return NULL;
        }
        if (y->style == YS_PLAIN) {
                char *end = NULL;
                double d = y->len ? strtod(y->str, &end) : 0;
                if (y->len && end && !*end) {
                        n->lit = value_num(d);
                        return n;
                }
                if (strcmp(y->str, "true") == 0 || strcmp(y->str, "false") == 0) {
                        n->lit = value_bool(y->str[0] == 't');
                        return n;
                }
        }
        n->lit = value_str(y->str, (uint32_t)y->len);
        return n;
}

static const struct {
        const char *s;
        TokKind op;
} comp_ops[] = {
        {"==", T_EQ}, {"=", T_EQ}, {"!=", T_NE}, {"<", T_LT}, {"<=", T_LE}, {">", T_GT}, {">=", T_GE},
        {"in", T_IN}, {"not in", T_NOT_IN}, {"contains", T_CONTAINS}, {"startswith", T_STARTSWITH},
        {"endswith", T_ENDSWITH},
};

static Node *exception_build(Loader *L, const Rule *r, ExceptionDef *e)
{
        const YNode *fields = e->fields;
        TokKind ops[16];
        if (fields->n == 0 || fields->n > 16) {
                diag_add(L->dl, DIAG_E045, ynode_pos(fields), NULL,
                         "an exception names 1 to 16 fields, not %u", fields->n);
                return NULL;
        }
        /* the shape is checked even before an operator adds values */
        bool shape_ok = true;
        for (uint32_t i = 0; i < fields->n; i++) {
                const YNode *fy = fields->items[i];
                if (!loader_expect(L, fy, Y_SCALAR, "a field name")) {
                        shape_ok = false;
                        continue;
                }
                bool profile = strncmp(fy->str, "enterprise.", 11) == 0 &&
                               L->rs->schema.profile_type >= 0 &&
                               schema_field(&L->rs->schema, (uint32_t)L->rs->schema.profile_type, fy->str + 11);
                if (!profile && !schema_field_on(L, r->on, fy->str, NULL)) {
                        Buf h = {0};
                        schema_suggest_field(L, r->on, fy->str, &h);
                        diag_add(L->dl, DIAG_E031, ynode_pos(fy), h.len ? h.p : NULL,
                                 "exception %s: unknown field '%s' of the rule's event types", e->name, fy->str);
                        buf_free(&h);
                        shape_ok = false;
                }
        }
        if (!shape_ok)
                return NULL;
        for (uint32_t i = 0; i < fields->n; i++)
                ops[i] = T_EQ;
        if (e->comps) {
                if (!loader_expect(L, e->comps, Y_SEQ, "a list of comparison operators"))
                        return NULL;
                if (e->comps->n != fields->n) {
                        diag_add(L->dl, DIAG_E045, ynode_pos(e->comps), NULL,
                                 "comps has %u entries for %u fields", e->comps->n, fields->n);
                        return NULL;
                }
                for (uint32_t i = 0; i < fields->n; i++) {
                        const YNode *c = e->comps->items[i];
                        bool found = false;
                        for (uint32_t k = 0; c->kind == Y_SCALAR && k < ARRAY_SIZE(comp_ops); k++)
                                if (strcmp(c->str, comp_ops[k].s) == 0) {
                                        ops[i] = comp_ops[k].op;
                                        found = true;
                                }
                        if (!found) {
                                diag_add(L->dl, DIAG_E045, ynode_pos(c),
                                         "one of ==, !=, <, <=, >, >=, in, not in, contains, startswith, endswith",
                                         "unknown comparison in exception %s", e->name);
                                return NULL;
                        }
                }
        }
        Node *any = NULL;
        bool ok = true;
        for (uint32_t v = 0; v < e->nvalues; v++) {
                const YNode *tuple = e->values[v];
                if (tuple->kind != Y_SEQ || tuple->n != fields->n) {
                        diag_add(L->dl, DIAG_E045, ynode_pos(tuple),
                                 "each entry of values: is a list with one value per field",
                                 "exception %s has %u field%s; this entry does not match", e->name,
                                 fields->n, fields->n == 1 ? "" : "s");
                        ok = false;
                        continue;
                }
                Node *all = NULL;
                for (uint32_t i = 0; i < fields->n; i++) {
                        const YNode *fy = fields->items[i];
                        if (!loader_expect(L, fy, Y_SCALAR, "a field name"))
                                return NULL;
                        ExprSrc *fs = loader_fixedsrc(L, fy);
                        Node *f = node_new(L, N_NAME, fs->id);
                        f->name = arena_strdup(L->ar, fy->str);
                        f->len = 1;
                        Node *val;
                        const YNode *vy = tuple->items[i];
                        if (ops[i] == T_IN || ops[i] == T_NOT_IN) {
                                if (vy->kind != Y_SEQ) {
                                        diag_add(L->dl, DIAG_E045, ynode_pos(vy), "write a list: [a, b]",
                                                 "the value for an 'in' comparison must be a list");
                                        ok = false;
                                        continue;
                                }
                                ExprSrc *vs = loader_fixedsrc(L, vy);
                                val = node_new(L, N_LIST, vs->id);
                                val->args = arena_alloc(L->ar, (vy->n + 1) * sizeof(Node *));
                                for (uint32_t k = 0; k < vy->n; k++) {
                                        Node *it = lit_from_yaml(L, vy->items[k]);
                                        if (!it)
                                                ok = false;
                                        else
                                                val->args[val->nargs++] = it;
                                }
                        } else {
                                val = lit_from_yaml(L, vy);
                                if (!val) {
                                        ok = false;
                                        continue;
                                }
                        }
                        Node *cmp = node_new(L, N_BINARY, val->src_id); /* a type error points at the value */
                        cmp->op = ops[i];
                        cmp->a = f;
                        cmp->b = val;
                        cmp->len = 1;
                        all = node_and(L, all, cmp, T_AND);
                }
                any = node_and(L, any, all, T_OR);
        }
        return ok ? any : NULL;
}

static void on_load(Loader *L, RuleDef *rd, Rule *r, const YNode *on)
{
        const Schema *s = &L->rs->schema;
        const YNode *one = on;
        uint32_t n = 1;
        if (on->kind == Y_SEQ) {
                n = on->n;
                if (n == 0)
                        diag_add(L->dl, DIAG_E004, ynode_pos(on), NULL, "on: lists no event type");
        } else if (!loader_expect(L, on, Y_SCALAR, "an event type or a list of them")) {
                rd->bad = true;
                return;
        }
        for (uint32_t i = 0; i < n; i++) {
                if (on->kind == Y_SEQ)
                        one = on->items[i];
                if (!loader_expect(L, one, Y_SCALAR, "an event type")) {
                        rd->bad = true;
                        continue;
                }
                int32_t t = rules_type_id(L->rs, one->str);
                if (t < 0) {
                        Buf h = {0};
                        schema_suggest_type(s, one->str, &h);
                        diag_add(L->dl, DIAG_E030, ynode_pos(one), h.p, "unknown event type '%s'", one->str);
                        buf_free(&h);
                        rd->bad = true;
                        continue;
                }
                r->on |= 1ull << t;
        }
        if (s->profile_type >= 0 && (r->on & (1ull << s->profile_type))) {
                r->is_static = true;
                if (r->on != (1ull << s->profile_type)) {
                        diag_add(L->dl, DIAG_E006, ynode_pos(on),
                                 "write one rule on the profile type and another on the other types",
                                 "a rule on the profile type '%s' cannot also be on other types",
                                 s->types[s->profile_type].name);
                        rd->bad = true;
                }
        }
}

/* A rule sets flag id at key: its read count's slot, and the first place
 * it is set, which W107 (set but never read) points at. */
static void flag_set_at(Loader *L, uint32_t id, const YNode *key)
{
        if (id >= L->flagcap) {
                uint32_t oc = L->flagcap;
                L->flag_reads = xgrow(L->flag_reads, &oc, id + 1, sizeof(uint32_t));
                L->flag_pos = xgrow(L->flag_pos, &L->flagcap, id + 1, sizeof(SrcPos));
        }
        if (!L->flag_pos[id].file)
                L->flag_pos[id] = ynode_pos(key);
}

/* Every flag any rule sets, before any condition is checked, so that a
 * rule may read a flag that a later rule sets. */
void rule_flags_collect(Loader *L)
{
        for (uint32_t i = 0; i < L->nrules; i++) {
                const YNode *v = ynode_get(L->rules[i].node, "flags");
                if (!v || v->kind != Y_MAP)
                        continue;
                for (uint32_t k = 0; k < v->n; k++) {
                        const YNode *key = v->keys[k];
                        const YNode *life = v->items[k];
                        int64_t ms;
                        if (key->kind != Y_SCALAR || !loader_id_ok(key->str) || strchr(key->str, '.') || strchr(key->str, '-') ||
                            life->kind != Y_SCALAR ||
                            (strcmp(life->str, "forever") != 0 && (duration_parse(life->str, life->len, &ms) < 0 || ms <= 0)))
                                continue; /* rule_build reports it */
                        int32_t id = loader_flag(L, key->str, true);
                        if (id >= 0)
                                flag_set_at(L, (uint32_t)id, key);
                }
        }
}

/* score: a bare word that names no field of the rule's event types is a
 * number mistyped (score: ten), not an expression: E008 as before
 * expressions were allowed, with the fields it might have meant. */
static bool score_name_ok(Loader *L, const Rule *r, const YNode *v)
{
        for (const char *p = v->str; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.')
                        return true;
        int32_t slot;
        if (!strchr(v->str, '.') && !schema_field_on(L, r->on, v->str, &slot)) {
                Buf h = {0};
                buf_puts(&h, "write a plain number such as 20 or 2.5, or a numeric field of the event");
                Buf sug = {0};
                schema_suggest_field(L, r->on, v->str, &sug);
                if (sug.len)
                        buf_printf(&h, " (%s)", sug.p);
                diag_add(L->dl, DIAG_E008, ynode_pos(v), h.p, "'%s' is not a number nor a field of the rule's event types",
                         v->str);
                buf_free(&sug);
                buf_free(&h);
                return false;
        }
        return true;
}

/* A static rule's score expression is evaluated again from the kept
 * profile whenever the static part is read (docs/rules.md §5.2), so it may
 * read only the profile event's fields: not the state, the clock or an
 * aggregate, which would change its value between profile updates. */
static bool static_score_ok(Loader *L, const Rule *r, const YNode *v)
{
        const Program *p = &L->rs->progs[r->score_prog];
        for (uint32_t i = 0; i < p->len; i++) {
                Opcode op = INSN_OP(L->rs->code[p->start + i]);
                if (op == OP_SCORE || op == OP_GRADE || op == OP_MODE || op == OP_PER_YEAR || op == OP_FLAG ||
                    op == OP_NOW || op == OP_AGG) {
                        diag_add(L->dl, DIAG_E047, ynode_pos(v),
                                 "a static rule's score reads the profile event's fields only, e.g. score: static_score",
                                 "rule '%s' is on the profile type: its score: cannot read the state, now or an aggregate",
                                 r->id);
                        return false;
                }
        }
        return true;
}

static bool key_bool(Loader *L, const YNode *v, bool *b)
{
        if (!loader_expect(L, v, Y_SCALAR, "true or false"))
                return false;
        if (strcmp(v->str, "true") == 0 || strcmp(v->str, "false") == 0) {
                *b = v->str[0] == 't';
                return true;
        }
        diag_add(L->dl, DIAG_E006, ynode_pos(v), "true or false", "'%s' is not true or false", v->str);
        return false;
}

/* raise: / lower: — whole grade steps, 1 to the grading file's maximum. */
static void key_steps(Loader *L, const YNode *v, const char *key, int32_t max, int8_t *out)
{
        double d;
        if (!loader_number(L, v, &d))
                return;
        if (d < 1 || d > 9 || d != (double)(int32_t)d) {
                diag_add(L->dl, DIAG_E006, ynode_pos(v), "a whole number of grade steps: 1 or 2",
                         "%s: %s is not a number of grade steps", key, v->str);
                return;
        }
        if (L->rs->grading.official.declared && d > max) {
                char *h = xasprintf("official: in grading.yaml allows at most %d (max_%s)", max, key);
                diag_add(L->dl, DIAG_E006, ynode_pos(v), h, "%s: %s is more steps than a cycle allows", key, v->str);
                free(h);
                return;
        }
        *out = (int8_t)d;
}

/* A name k that names nothing of cands: "what 'k'", the closest of cands
 * as a suggestion, then hint. */
static void name_unknown(Loader *L, DiagCode code, const YNode *k, const char *const *cands, uint32_t n,
                         const char *what, const char *hint)
{
        Buf h = {0};
        const char *sug = diag_suggest(k->str, cands, n);
        if (sug)
                buf_printf(&h, "did you mean '%s'? ", sug);
        buf_puts(&h, hint);
        diag_add(L->dl, code, ynode_pos(k), h.p, "%s '%s'", what, k->str);
        buf_free(&h);
}

/* The keys of the two scores (docs/rules.md, "The two scores"): part:,
 * replaces:, raise:, lower:, clears:, and which of them go together. */
static void official_keys(Loader *L, RuleDef *rd, Rule *r)
{
        const YNode *n = rd->node, *v;
        const Official *of = &L->rs->grading.official;
        const YNode *part = ynode_get(n, "part"), *repl = ynode_get(n, "replaces"), *raise = ynode_get(n, "raise"),
                    *lower = ynode_get(n, "lower");
        r->part = r->is_static ? PART_STATIC : PART_INDEX;
        if (part && loader_expect(L, part, Y_SCALAR, "index, static or dynamic")) {
                if (strcmp(part->str, "index") == 0) {
                        if (r->is_static)
                                diag_add(L->dl, DIAG_E047, ynode_pos(part),
                                         "a rule on the profile type is the static part of both scores: leave part: out",
                                         "rule '%s' is on the profile type: its points are static, not part: index",
                                         r->id);
                } else if (strcmp(part->str, "static") == 0) {
                        if (!r->is_static && r->on)
                                diag_add(L->dl, DIAG_E047, ynode_pos(part),
                                         "static points come from rules on the profile type (on: the profile event)",
                                         "rule '%s' is not on the profile type, so it cannot be part: static", r->id);
                } else if (strcmp(part->str, "dynamic") == 0) {
                        r->part = PART_DYNAMIC;
                        if (!of->declared)
                                diag_add(L->dl, DIAG_E054, ynode_pos(part),
                                         "declare the official model in grading.yaml: official: { cycle: 1y }",
                                         "part: dynamic feeds the official grade, which grading.yaml does not declare");
                        else if (r->is_static)
                                diag_add(L->dl, DIAG_E047, ynode_pos(part),
                                         "the dynamic evaluation comes from an event (e.g. on: inspection)",
                                         "rule '%s' is on the profile type: it cannot be part: dynamic", r->id);
                        else if (!ynode_get(n, "score"))
                                diag_add(L->dl, DIAG_E004, ynode_pos(part), "e.g. score: dynamic_risk_score",
                                         "rule '%s' is part: dynamic without score:", r->id);
                } else {
                        diag_add(L->dl, DIAG_E006, ynode_pos(part), "one of: index, static, dynamic",
                                 "unknown part '%s'", part->str);
                }
        }
        if (repl && key_bool(L, repl, &r->replaces)) {
                if (r->is_static)
                        diag_add(L->dl, DIAG_E047, ynode_pos(repl),
                                 "a static rule's points are decided again at each profile update: leave replaces: out",
                                 "rule '%s' is on the profile type: replaces: does not apply", r->id);
                else if (r->part == PART_DYNAMIC && !r->replaces)
                        diag_add(L->dl, DIAG_E047, ynode_pos(repl),
                                 "each dynamic evaluation replaces the last: leave replaces: out",
                                 "rule '%s' is part: dynamic, which always replaces", r->id);
        }
        if (r->part == PART_DYNAMIC)
                r->replaces = true;
        const YNode *steps[] = {raise, lower};
        const char *names[] = {"raise", "lower"};
        int8_t *outs[] = {&r->raise, &r->lower};
        int32_t maxs[] = {of->max_raise, of->max_lower};
        for (int i = 0; i < 2; i++) {
                if (!steps[i])
                        continue;
                if (!of->declared) {
                        diag_add(L->dl, DIAG_E054, ynode_pos(steps[i]),
                                 "declare the official model in grading.yaml: official: { cycle: 1y }",
                                 "%s: moves the official grade, which grading.yaml does not declare", names[i]);
                        continue;
                }
                if (r->is_static) {
                        diag_add(L->dl, DIAG_E047, ynode_pos(steps[i]),
                                 "grade steps come from events (triggers, downgrades), not from the profile",
                                 "rule '%s' is on the profile type: it cannot %s the grade", r->id, names[i]);
                        continue;
                }
                key_steps(L, steps[i], names[i], maxs[i], outs[i]);
        }
        if (raise && lower)
                diag_add(L->dl, DIAG_E047, ynode_pos(lower), "make two rules: one raises, the other lowers",
                         "rule '%s' has both raise: and lower:", r->id);
        if (r->part == PART_DYNAMIC && (raise || lower))
                diag_add(L->dl, DIAG_E047, ynode_pos(raise ? raise : lower),
                         "the evaluation sets the dynamic score; a trigger is a rule of its own",
                         "rule '%s' is part: dynamic and moves the grade by steps too", r->id);
        if ((v = ynode_get(n, "clears")) && !ynode_is_null(v) &&
            loader_expect(L, v, Y_SEQ, "a list of flag names ([problem_lead])")) {
                r->clears = arena_alloc(L->ar, (v->n + 1) * sizeof(uint32_t));
                for (uint32_t i = 0; i < v->n; i++) {
                        const YNode *k = v->items[i];
                        if (!loader_expect(L, k, Y_SCALAR, "a flag name"))
                                continue;
                        int32_t id = loader_flag(L, k->str, false);
                        if (id < 0) {
                                name_unknown(L, DIAG_E041, k, (const char *const *)L->rs->flags, L->rs->nflags,
                                             "no rule sets flag", "clears: names flags that a rule sets with flags:");
                                continue;
                        }
                        r->clears[r->nclears++] = (uint32_t)id;
                }
        }
}

/* Warnings for what docs/rules.md names as pitfalls of a rule that
 * compiles: points that never expire (W108), an absent() whose one wait per
 * enterprise mixes keys its condition tells apart (W109). */
static void rule_pitfalls(Loader *L, const RuleDef *rd, const Rule *r, const CheckCtx *cx)
{
        const YNode *n = rd->node, *score = ynode_get(n, "score");
        /* a static rule's points replace the previous static score; an
         * evaluation (part: dynamic) replaces the last; an expression
         * score is warned of once it compiles (rule_build) */
        if (score && r->score != 0 && !ynode_get(n, "expires") && !r->is_static && r->part != PART_DYNAMIC)
                diag_add(L->dl, DIAG_W108, ynode_pos(score),
                         "add expires: for how long the points count, e.g. expires: 365d",
                         "rule '%s' scores without expires: its points never expire", r->id);
        /* One wait for the whole enterprise is meant when the condition
         * reads nothing of the event (absent(sampling for 365d)); a
         * condition that tests the event's fields, or a where that compares
         * with $field, tells keys apart that then restart each other's wait. */
        if (r->timer_driven && !ynode_get(n, "per") && cx->absent_at && (cx->cur_field || cx->event_field)) {
                char *hint;
                if (cx->cur_field)
                        hint = xasprintf("add per: %s: the where compares %s with $%s, so each %s needs a wait of "
                                         "its own",
                                         cx->cur_field, cx->cur_field, cx->cur_field, cx->cur_field);
                else
                        hint = xasprintf("add the per: that separates the waits, e.g. per: %s: the condition tests "
                                         "the event's %s",
                                         cx->event_field, cx->event_field);
                diag_add(L->dl, DIAG_W109, loader_node_pos(L, cx->absent_at), hint,
                         "rule '%s' uses absent() without a per: key: one wait for the whole enterprise, which every event "
                         "of its types restarts",
                         r->id);
                free(hint);
        }
}

void rule_build(Loader *L, RuleDef *rd)
{
        const YNode *n = rd->node;
        RuleSet *rs = L->rs;
        Rule *r = &rs->rules[rs->nrules];
        memset(r, 0, sizeof(*r));
        r->id = rd->id;
        r->per_slot = -1;
        r->severity = SEV_MEDIUM;
        r->pos = ynode_pos(n);
        r->when = PROG_NONE;
        r->arm_when = PROG_NONE;
        const YNode *v;
        if ((v = ynode_get(n, "desc")) && loader_expect(L, v, Y_SCALAR, "a description"))
                r->desc = arena_strdup(L->ar, v->str);
        if ((v = ynode_get(n, "basis")) && loader_expect(L, v, Y_SCALAR, "the regulation and article"))
                r->basis = arena_strdup(L->ar, v->str);
        if (!(v = ynode_get(n, "on"))) {
                diag_add(L->dl, DIAG_E004, ynode_pos(n), "on: sampling (or a list of event types)",
                         "rule '%s' has no on:", rd->id ? rd->id : "?");
                rd->bad = true;
        } else {
                on_load(L, rd, r, v);
        }
        if ((v = ynode_get(n, "severity")) && loader_expect(L, v, Y_SCALAR, "a severity")) {
                int k = -1;
                for (uint32_t i = 0; i < SEV_COUNT; i++)
                        if (strcmp(v->str, severity_names[i]) == 0)
                                k = (int)i;
                if (k < 0) {
                        const char *sug = diag_suggest(v->str, severity_names, SEV_COUNT);
                        char *hint = xasprintf("%s%s%sone of: info, low, medium, high, critical",
                                               sug ? "did you mean '" : "", sug ? sug : "", sug ? "'? " : "");
                        diag_add(L->dl, DIAG_E006, ynode_pos(v), hint, "unknown severity '%s'", v->str);
                        free(hint);
                } else {
                        r->severity = (Severity)k;
                }
        }
        if ((v = ynode_get(n, "status")) && loader_expect(L, v, Y_SCALAR, "a status")) {
                if (strcmp(v->str, "enabled") == 0)
                        r->status = RULE_ENABLED;
                else if (strcmp(v->str, "shadow") == 0)
                        r->status = RULE_SHADOW;
                else if (strcmp(v->str, "disabled") == 0)
                        r->status = RULE_DISABLED;
                else
                        diag_add(L->dl, DIAG_E006, ynode_pos(v), "one of: enabled, shadow, disabled",
                                 "unknown status '%s'", v->str);
        }
        const YNode *score_expr = NULL;
        if ((v = ynode_get(n, "score")) && loader_expect(L, v, Y_SCALAR, "points, or a numeric expression")) {
                /* a number is the points; anything else is an expression
                 * whose value, at each firing, is the points */
                char *end = NULL;
                if (v->len && (strtod(v->str, &end), end && !*end) && (isdigit((unsigned char)v->str[0]) || v->str[0] == '-' ||
                                               v->str[0] == '+' || v->str[0] == '.'))
                        loader_number(L, v, &r->score);
                else
                        score_expr = v;
        }
        if ((v = ynode_get(n, "max_score")) && loader_number(L, v, &r->max_score) && r->max_score <= 0)
                diag_add(L->dl, DIAG_E008, ynode_pos(v), NULL, "max_score must be positive");
        if ((v = ynode_get(n, "expires")))
                loader_duration(L, v, &r->expires_ms, "leave expires: out for points that never expire");
        if ((v = ynode_get(n, "cooldown")))
                loader_duration(L, v, &r->cooldown_ms, NULL); /* 0: no cooldown */
        if ((v = ynode_get(n, "for")))
                loader_duration(L, v, &r->for_ms, "leave for: out to fire on the event itself");
        if ((v = ynode_get(n, "rectify")))
                loader_duration(L, v, &r->rectify_ms, "a deadline after the alert, e.g. 30d");
        if ((v = ynode_get(n, "flags")) && !ynode_is_null(v) &&
            loader_expect(L, v, Y_MAP, "a mapping of flag names to lifetimes ({ problem_lead: 180d })")) {
                r->flags = arena_alloc(L->ar, v->n * sizeof(RuleFlag));
                for (uint32_t i = 0; i < v->n; i++) {
                        const YNode *k = v->keys[i], *life = v->items[i];
                        if (!loader_expect(L, k, Y_SCALAR, "a flag name"))
                                continue;
                        if (!loader_id_ok(k->str) || strchr(k->str, '.') || strchr(k->str, '-')) {
                                diag_add(L->dl, DIAG_E012, ynode_pos(k), "letters, digits and '_' (it is read as state.flags.NAME)",
                                         "bad flag name '%s'", k->str);
                                continue;
                        }
                        int64_t ms = 0;
                        if (life->kind == Y_SCALAR && strcmp(life->str, "forever") == 0)
                                ms = 0;
                        else if (!loader_duration(L, life, &ms, "a lifetime such as 180d, or forever"))
                                continue;
                        int32_t id = loader_flag(L, k->str, true);
                        if (id < 0) {
                                diag_add(L->dl, DIAG_E061, ynode_pos(k), NULL, "more than %d distinct flags",
                                         RULES_MAX_FLAGS);
                                continue;
                        }
                        flag_set_at(L, (uint32_t)id, k);
                        r->flags[r->nflags++] = (RuleFlag){.flag = (uint32_t)id, .lifetime_ms = ms};
                }
        }
        if ((v = ynode_get(n, "actions")) && !ynode_is_null(v) &&
            loader_expect(L, v, Y_SEQ, "a list of actions")) {
                r->actions = arena_alloc(L->ar, v->n * sizeof(char *));
                for (uint32_t i = 0; i < v->n; i++) {
                        const YNode *a = v->items[i];
                        if (!loader_expect(L, a, Y_SCALAR, "an action name"))
                                continue;
                        if (!loader_id_ok(a->str)) {
                                diag_add(L->dl, DIAG_E012, ynode_pos(a), "letters, digits, '_', '.', '-'",
                                         "bad action name '%s'", a->str);
                                continue;
                        }
                        r->actions[r->nactions++] = arena_strdup(L->ar, a->str);
                }
        }
        if ((v = ynode_get(n, "tags")) && !ynode_is_null(v))
                loader_expect(L, v, Y_SEQ, "a list of tags");
        official_keys(L, rd, r);
        if (rd->bad || !r->on)
                return;

        if ((v = ynode_get(n, "per")) && loader_expect(L, v, Y_SCALAR, "a field name")) {
                int32_t slot = -1;
                if (!schema_field_on(L, r->on, v->str, &slot)) {
                        Buf h = {0};
                        schema_suggest_field(L, r->on, v->str, &h);
                        diag_add(L->dl, DIAG_E031, ynode_pos(v), h.len ? h.p : NULL,
                                 "per: unknown field '%s' of the rule's event types", v->str);
                        buf_free(&h);
                } else {
                        r->per_slot = slot;
                }
        }
        if ((v = ynode_get(n, "message")) && loader_expect(L, v, Y_SCALAR, "a message template"))
                compile_template(L, r, v);

        /* when AND appended conditions AND NOT exceptions */
        Node *cond = rd->when;
        for (uint32_t i = 0; i < rd->nextra; i++)
                cond = node_and(L, cond, rd->extra[i], T_AND);
        Node *exc = NULL;
        bool exc_ok = true;
        for (uint32_t i = 0; i < rd->nexc; i++) {
                uint32_t nerr = L->dl->nerrors;
                Node *e = exception_build(L, r, &rd->exc[i]);
                if (L->dl->nerrors != nerr)
                        exc_ok = false;
                exc = node_and(L, exc, e, T_OR);
        }
        if (!exc_ok)
                return;
        if (exc) {
                Node *neg = node_new(L, N_UNARY, exc->src_id);
                neg->op = T_NOT;
                neg->a = exc;
                cond = node_and(L, cond, neg, T_AND);
        }
        if (!cond) {
                cond = node_new(L, N_LIT, 0);
                cond->lit = value_bool(true);
                cond->type = VT_BOOL;
        }
        char what[160];
        snprintf(what, sizeof(what), "rule %s", r->id);
        CheckCtx cx = {.on = r->on, .what = what, .rule = r};
        uint32_t nerr = L->dl->nerrors;
        Node *checked = check_condition(L, cond, &cx);
        if (!checked || L->dl->nerrors != nerr)
                return;
        rule_pitfalls(L, rd, r, &cx);
        r->when = compile_program(L, checked, false);
        if (r->timer_driven) {
                Node *arm = arm_conjuncts(L, checked);
                if (arm)
                        r->arm_when = compile_program(L, arm, false);
        }
        if (score_expr && score_name_ok(L, r, score_expr)) {
                Node *se = loader_parse(L, score_expr);
                if (!se)
                        return;
                nerr = L->dl->nerrors;
                Node *sc = check_value(L, se, &cx);
                if (!sc || L->dl->nerrors != nerr)
                        return;
                r->score_prog = compile_program(L, sc, false);
                r->score_expr = true;
                if (r->is_static && !static_score_ok(L, r, score_expr))
                        return;
                if (!ynode_get(n, "expires") && r->part != PART_DYNAMIC && !r->is_static)
                        diag_add(L->dl, DIAG_W108, ynode_pos(score_expr),
                                 "add expires: for how long the points count, e.g. expires: 365d",
                                 "rule '%s' scores without expires: its points never expire", r->id);
        }
        r->fingerprint = compile_fingerprint(rs, r->when, HASH64_INIT);
        if (r->score_expr)
                r->fingerprint = compile_fingerprint(rs, r->score_prog, r->fingerprint);
        r->index = rs->nrules;
        rs->nrules++;
}

/* A rule's fingerprint covers everything that shapes its state and points
 * (compiled condition, types, key, timings, score, flags, severity,
 * status; not desc, message, actions or basis), so an unchanged rule
 * keeps its state on reload and a changed one starts fresh (docs/rules.md
 * §5.9). */
uint64_t rule_fingerprint(const RuleSet *rs, const Rule *r)
{
        uint64_t h = r->fingerprint;
        h = hash64(r->id, strlen(r->id), h);
        h = hash64(&r->on, sizeof(r->on), h);
        int64_t nums[] = {r->expires_ms, r->cooldown_ms, r->for_ms, r->rectify_ms, r->per_slot,
                          r->severity, r->status};
        h = hash64(nums, sizeof(nums), h);
        double d[] = {r->score, r->max_score};
        h = hash64(d, sizeof(d), h);
        /* what feeds which score; nothing for a rule without these keys, so
         * the fingerprints of rules written before them are unchanged */
        if (r->part == PART_DYNAMIC || r->replaces || r->raise || r->lower || r->nclears) {
                int32_t o[] = {r->part, r->replaces, r->raise, r->lower};
                h = hash64(o, sizeof(o), h);
                for (uint32_t i = 0; i < r->nclears; i++)
                        h = hash64(rs->flags[r->clears[i]], strlen(rs->flags[r->clears[i]]) + 1, h);
        }
        if (r->per_slot >= 0)
                h = hash64(rs->schema.slot_path[r->per_slot], strlen(rs->schema.slot_path[r->per_slot]), h);
        for (uint32_t i = 0; i < r->nflags; i++) {
                const char *f = rs->flags[r->flags[i].flag];
                h = hash64(f, strlen(f) + 1, h);
                h = hash64(&r->flags[i].lifetime_ms, sizeof(int64_t), h);
        }
        return h;
}

/* closes: names rules by id, which may be defined in a later file: resolved
 * once every rule is built.  A rule that failed to build is not reported
 * again here (its own errors say what is wrong). */
void rule_closes_resolve(Loader *L)
{
        RuleSet *rs = L->rs;
        const char **ids = xcalloc(rs->nrules + 1, sizeof(char *));
        for (uint32_t i = 0; i < rs->nrules; i++)
                ids[i] = rs->rules[i].id;
        for (uint32_t i = 0; i < L->nrules; i++) {
                const RuleDef *rd = &L->rules[i];
                const YNode *v = rd->node ? ynode_get(rd->node, "closes") : NULL;
                Rule *r = rd->id ? (Rule *)(uintptr_t)rules_find(rs, rd->id) : NULL;
                if (!v || !r || ynode_is_null(v) || !loader_expect(L, v, Y_SEQ, "a list of rule ids ([inspection.general_items_minor])"))
                        continue;
                if (r->is_static) {
                        diag_add(L->dl, DIAG_E047, ynode_pos(v),
                                 "an alert is closed by an event: put closes: on a rule of an event type",
                                 "rule '%s' is on the profile type: it cannot close alerts", r->id);
                        continue;
                }
                r->closes = arena_alloc(L->ar, (v->n + 1) * sizeof(uint32_t));
                for (uint32_t k = 0; k < v->n; k++) {
                        const YNode *c = v->items[k];
                        if (!loader_expect(L, c, Y_SCALAR, "a rule id"))
                                continue;
                        Rule *t = (Rule *)(uintptr_t)rules_find(rs, c->str);
                        if (!t) {
                                bool failed = false; /* defined, but did not build */
                                for (uint32_t q = 0; q < L->nrules; q++)
                                        failed |= L->rules[q].id && strcmp(L->rules[q].id, c->str) == 0;
                                if (!failed)
                                        name_unknown(L, DIAG_E044, c, ids, rs->nrules, "no rule",
                                                     "closes: names the rules whose alerts this rule's firing closes");
                                continue;
                        }
                        /* itself, or a rule whose alerts have no lifecycle to close */
                        const char *hint = t == r ? "a rule's new alert supersedes its open one of the same key: leave it out"
                                           : t->is_static ? "a static rule's alert is decided again at each profile update"
                                                          : NULL;
                        if (hint) {
                                diag_add(L->dl, DIAG_E047, ynode_pos(c), hint, "rule '%s' %s", t->id,
                                         t == r ? "closes its own alerts"
                                                : "is on the profile type: its alerts have no lifecycle");
                                continue;
                        }
                        t->closable = true;
                        r->closes[r->ncloses++] = t->index;
                }
        }
        for (uint32_t i = 0; i < rs->nrules; i++) {
                Rule *r = &rs->rules[i];
                r->lifecycle = !r->is_static && r->status == RULE_ENABLED &&
                               (r->expires_ms || r->rectify_ms || r->closable);
        }
        free(ids);
}
