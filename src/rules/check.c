/*
 * The checker: resolves every name of a condition (event fields, profile
 * fields, state, flags, macros, lists), expands macros, assigns a type to
 * every node, converts string literals to enum values and times where the
 * other operand needs it, and folds constants.  It reports every problem it
 * can find with a position and a suggestion, and keeps going.
 *
 * After a successful check every N_NAME has a RefKind in ref and a slot, and
 * the tree holds no macro references: compile.c only has to emit code.
 * This file is the walk and the names; what each operator accepts, and the
 * folding of constants, is operators.c.
 */
#include <stdlib.h>
#include <string.h>

#include "src/rules/load.h"

typedef struct Scope {
        uint64_t on;       /* types of the current event */
        bool in_agg;
        uint32_t row_type; /* in an aggregate: the row's event type */
        bool grading;
} Scope;

static Node *check(Loader *L, Node *n, Scope *sc, CheckCtx *cx);

const char *check_type_str(uint8_t t)
{
        switch (t) {
        case VT_NULL: return "null";
        case VT_BOOL: return "bool";
        case VT_NUM: return "number";
        case VT_STR: return "string";
        case VT_ENUM: return "enum";
        case VT_TIME: return "time";
        case VT_DUR: return "duration";
        }
        return "?";
}

void check_type_desc(const Node *n, char *buf, size_t size)
{
        if (n->type == VT_ENUM && n->en)
                snprintf(buf, size, "enum %s", n->en->name);
        else
                snprintf(buf, size, "%s", check_type_str(n->type));
}

static uint8_t ft_to_vt(FieldType t)
{
        switch (t) {
        case FT_BOOL: return VT_BOOL;
        case FT_NUM: return VT_NUM;
        case FT_STR: return VT_STR;
        case FT_ENUM: return VT_ENUM;
        case FT_TIME: return VT_TIME;
        case FT_DUR: return VT_DUR;
        }
        return VT_NULL;
}

/* n names field f of the event (in slot) as ref: REF_FIELD, REF_CUR or
 * REF_PROFILE. */
static Node *field_ref(Node *n, RefKind ref, int32_t slot, const Field *f)
{
        n->ref = ref;
        n->slot = slot;
        n->type = ft_to_vt(f->type);
        n->en = f->en;
        return n;
}

void check_err(Loader *L, const Node *n, DiagCode c, const char *hint, const char *fmt, ...)
{
        Buf b = {0};
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        diag_add(L->dl, c, loader_node_pos(L, n), hint, "%s", b.p);
        buf_free(&b);
}

Node *check_lit(Loader *L, const Node *at, Value v)
{
        Node *n = arena_alloc(L->ar, sizeof(*n));
        n->kind = N_LIT;
        n->off = at->off;
        n->len = at->len;
        n->src_id = at->src_id;
        n->lit = v;
        n->type = v.tag;
        return n;
}

static bool is_bool(const Node *n)
{
        return n->type == VT_BOOL || (n->kind == N_LIT && n->type == VT_NULL);
}

/* A flag name read by a condition, set by a rule or not (W107 suggests
 * the closest one to a flag that is set but never read). */
static void flag_read(Loader *L, const char *name)
{
        for (uint32_t i = 0; i < L->nflags_read; i++)
                if (strcmp(L->flags_read[i], name) == 0)
                        return;
        VEC_PUSH(L->flags_read, L->nflags_read, L->flags_readcap) = xstrdup(name);
}

static Node *resolve_name(Loader *L, Node *n, Scope *sc, CheckCtx *cx)
{
        const Schema *s = &L->rs->schema;
        const char *name = n->name;
        if (strcmp(name, "now") == 0) {
                n->ref = REF_NOW;
                n->type = VT_TIME;
                return n;
        }
        if (strncmp(name, "state.", 6) == 0) {
                const char *k = name + 6;
                if (strcmp(k, "score") == 0) {
                        n->ref = REF_SCORE;
                        n->type = VT_NUM;
                } else if (strcmp(k, "grade") == 0) {
                        n->ref = REF_GRADE;
                        n->type = VT_ENUM;
                        n->en = &L->grade_enum;
                } else if (strcmp(k, "mode") == 0) {
                        n->ref = REF_MODE;
                        n->type = VT_ENUM;
                        n->en = &L->mode_enum;
                } else if (strcmp(k, "inspections_per_year") == 0) {
                        n->ref = REF_PER_YEAR;
                        n->type = VT_NUM;
                } else if (strncmp(k, "flags.", 6) == 0) {
                        flag_read(L, k + 6);
                        int32_t id = loader_flag(L, k + 6, false);
                        if (id < 0) {
                                Buf h = {0};
                                diag_hint_names(&h, k + 6, (const char *const *)L->rs->flags, L->rs->nflags,
                                                "flags set by rules:", " none");
                                check_err(L, n, DIAG_E041, h.p, "no rule sets flag '%s'", k + 6);
                                buf_free(&h);
                                return NULL;
                        }
                        L->flag_reads[id]++;
                        n->ref = REF_FLAG;
                        n->slot = id;
                        n->type = VT_BOOL;
                } else {
                        static const char *const st[] = {"score", "grade", "mode", "inspections_per_year", "flags"};
                        const char *sug = diag_suggest(k, st, ARRAY_SIZE(st));
                        char *hint = xasprintf("%s%s%sstate has: score, grade, mode, inspections_per_year, flags.NAME",
                                               sug ? "did you mean 'state." : "", sug ? sug : "", sug ? "'? " : "");
                        check_err(L, n, DIAG_E042, hint, "unknown state value '%s'", name);
                        free(hint);
                        return NULL;
                }
                return n;
        }
        if (strncmp(name, "enterprise.", 11) == 0) {
                if (s->profile_type < 0) {
                        check_err(L, n, DIAG_E031, "declare profile: TYPE in schema.yaml",
                            "'%s': the schema declares no profile type", name);
                        return NULL;
                }
                const Field *f = schema_field(s, (uint32_t)s->profile_type, name + 11);
                if (!f) {
                        Buf h = {0};
                        schema_suggest_field(L, 1ull << s->profile_type, name + 11, &h);
                        check_err(L, n, DIAG_E031, h.p, "unknown profile field '%s' (of %s)", name + 11,
                            s->types[s->profile_type].name);
                        buf_free(&h);
                        return NULL;
                }
                return field_ref(n, REF_PROFILE, (int32_t)f->slot, f);
        }
        uint64_t on = sc->in_agg ? 1ull << sc->row_type : sc->on;
        if (!sc->grading && on) {
                int32_t slot;
                const Field *f = schema_field_on(L, on, name, &slot);
                if (f) {
                        if (!sc->in_agg && !cx->event_field)
                                cx->event_field = f->path;
                        return field_ref(n, REF_FIELD, slot, f);
                }
        }
        for (uint32_t i = 0; i < L->nmacros; i++) {
                MacroDef *md = &L->macros[i];
                if (strcmp(md->name, name) != 0)
                        continue;
                md->used = true;
                if (!md->body)
                        return NULL; /* its syntax error is already reported */
                if (md->visiting) {
                        check_err(L, n, DIAG_E036, "a macro cannot use itself, directly or through other macros",
                            "macro '%s' refers to itself", name);
                        return NULL;
                }
                md->visiting = 1;
                Node *body = node_clone(L->ar, md->body);
                Node *r = check(L, body, sc, cx);
                md->visiting = 0;
                return r;
        }
        for (uint32_t i = 0; i < L->nlists; i++)
                if (strcmp(L->lists[i].name, name) == 0) {
                        L->lists[i].used = true;
                        check_err(L, n, DIAG_E033, "write `FIELD in LIST`",
                            "list '%s' can only be used after in / not in", name);
                        return NULL;
                }
        Buf h = {0};
        if (sc->grading) {
                buf_puts(&h, "grading conditions read state.* and enterprise.* only");
                check_err(L, n, DIAG_E031, h.p, "unknown name '%s' in a grading condition", name);
        } else {
                schema_suggest_field(L, on, name, &h);
                const char *tn = sc->in_agg ? s->types[sc->row_type].name : NULL;
                if (tn)
                        check_err(L, n, DIAG_E031, h.len ? h.p : NULL, "unknown field '%s' of %s", name, tn);
                else {
                        Buf tl = {0};
                        for (uint32_t t = 0; t < s->ntypes; t++)
                                if (on & (1ull << t))
                                        buf_printf(&tl, "%s%s", tl.len ? ", " : "", s->types[t].name);
                        check_err(L, n, DIAG_E031, h.len ? h.p : NULL, "unknown field '%s' of %s", name,
                            tl.p ? tl.p : "the event");
                        buf_free(&tl);
                }
        }
        buf_free(&h);
        return NULL;
}

static Node *check_call(Loader *L, Node *n, Scope *sc, CheckCtx *cx)
{
        static const char *const funcs[] = {"exists", "lower", "abs", "count", "sum", "avg",
                                            "min", "max", "distinct", "absent"};
        if (strcmp(n->name, "exists") && strcmp(n->name, "lower") && strcmp(n->name, "abs")) {
                const char *sug = diag_suggest(n->name, funcs, ARRAY_SIZE(funcs));
                char *hint = xasprintf("%s%s%sfunctions: exists, lower, abs; aggregates: count, sum, avg, min, max, distinct, absent",
                                       sug ? "did you mean '" : "", sug ? sug : "", sug ? "'? " : "");
                check_err(L, n, DIAG_E037, hint, "unknown function '%s'", n->name);
                free(hint);
                return NULL;
        }
        if (n->nargs != 1) {
                check_err(L, n, DIAG_E038, NULL, "%s takes exactly one argument, not %u", n->name, n->nargs);
                return NULL;
        }
        Node *a = check(L, n->args[0], sc, cx);
        if (!a)
                return NULL;
        n->args[0] = a;
        if (strcmp(n->name, "exists") == 0) {
                if (a->kind != N_NAME && a->kind != N_CUR) {
                        check_err(L, a, DIAG_E038, "exists(field), e.g. exists(confirmed)", "exists takes a field");
                        return NULL;
                }
                n->type = VT_BOOL;
                return n;
        }
        if (strcmp(n->name, "lower") == 0) {
                if (a->type != VT_STR) {
                        char d[96];
                        check_type_desc(a, d, sizeof(d));
                        check_err(L, a, DIAG_E033, NULL, "lower takes a string, not %s", d);
                        return NULL;
                }
                n->type = VT_STR;
                if (a->kind == N_LIT) {
                        /* fold: the literal lives in the arena, lower it there */
                        char *s = arena_strndup(L->ar, a->lit.s.p, a->lit.s.len);
                        for (char *p = s; *p; p++)
                                if (*p >= 'A' && *p <= 'Z')
                                        *p = (char)(*p - 'A' + 'a');
                        return check_lit(L, n, value_str(s, a->lit.s.len));
                }
                return n;
        }
        if (a->type != VT_NUM && a->type != VT_DUR) {
                char d[96];
                check_type_desc(a, d, sizeof(d));
                check_err(L, a, DIAG_E033, NULL, "abs takes a number or a duration, not %s", d);
                return NULL;
        }
        n->type = a->type;
        if (a->kind == N_LIT)
                return check_lit(L, n, value_abs(&a->lit));
        return n;
}

static Node *check_agg(Loader *L, Node *n, Scope *sc, CheckCtx *cx)
{
        const Schema *s = &L->rs->schema;
        static const char *const kinds[] = {"count", "sum", "avg", "min", "max", "distinct", "absent"};
        const char *kname = kinds[n->agg];
        if (sc->grading || !cx->rule) {
                check_err(L, n, DIAG_E039, "aggregates read an enterprise's event history; grading sees state.* and enterprise.*",
                    "%s() cannot be used in a grading condition", kname);
                return NULL;
        }
        if (sc->in_agg) {
                check_err(L, n, DIAG_E039, NULL, "aggregates cannot be nested");
                return NULL;
        }
        if (cx->rule->is_static) {
                check_err(L, n, DIAG_E039, "profile rules are recomputed from the profile alone",
                    "%s() cannot be used in a rule on the profile type", kname);
                return NULL;
        }
        Node at = *n;
        at.off = n->agg_target_off;
        at.len = n->agg_target_len;
        int32_t t = rules_type_id(L->rs, n->agg_type);
        if (t < 0) {
                Buf h = {0};
                schema_suggest_type(s, n->agg_type, &h);
                at.len = (uint32_t)strlen(n->agg_type);
                check_err(L, &at, DIAG_E030, h.p, "%s() over unknown event type '%s'", kname, n->agg_type);
                buf_free(&h);
                return NULL;
        }
        bool wants_field = n->agg != AGG_COUNT && n->agg != AGG_ABSENT;
        const Field *f = NULL;
        if (wants_field && !n->agg_field) {
                check_err(L, &at, DIAG_E039, NULL, "%s() needs a field: %s(%s.FIELD within 30d)", kname, kname,
                    n->agg_type);
                return NULL;
        }
        if (!wants_field && n->agg_field) {
                check_err(L, &at, DIAG_E039, "filter with where: count(sampling where result == \"fail\" within 90d)",
                    "%s() counts events and takes no field", kname);
                return NULL;
        }
        if (n->agg_field) {
                f = schema_field(s, (uint32_t)t, n->agg_field);
                if (!f) {
                        Buf h = {0};
                        schema_suggest_field(L, 1ull << t, n->agg_field, &h);
                        check_err(L, &at, DIAG_E031, h.len ? h.p : NULL, "unknown field '%s' of %s", n->agg_field,
                            n->agg_type);
                        buf_free(&h);
                        return NULL;
                }
                bool ok = true;
                if (n->agg == AGG_SUM || n->agg == AGG_AVG)
                        ok = f->type == FT_NUM || f->type == FT_DUR;
                else if (n->agg == AGG_MIN || n->agg == AGG_MAX)
                        ok = f->type == FT_NUM || f->type == FT_DUR || f->type == FT_TIME;
                if (!ok) {
                        check_err(L, &at, DIAG_E033, NULL, "%s() needs a number field; %s.%s is a %s", kname,
                            n->agg_type, n->agg_field, check_type_str(ft_to_vt(f->type)));
                        return NULL;
                }
        }
        if (!n->window) {
                check_err(L, n, DIAG_E039, n->agg == AGG_ABSENT ? "absent(TYPE where ... for 2h)" : "e.g. within 30d",
                    "%s() needs a window: %s D", kname, n->agg == AGG_ABSENT ? "for" : "within");
                return NULL;
        }
        if (n->agg == AGG_ABSENT && !n->window_is_for) {
                check_err(L, n->window, DIAG_E039, "absent(TYPE ... for 2h): nothing arrived for that long",
                    "absent() takes `for D`, not `within D`");
                return NULL;
        }
        if (n->agg != AGG_ABSENT && n->window_is_for) {
                check_err(L, n->window, DIAG_E039, "aggregates look back over `within D`", "%s() takes `within D`, not `for D`",
                    kname);
                return NULL;
        }
        Node *w = check(L, n->window, sc, cx);
        if (!w)
                return NULL;
        if (w->kind != N_LIT || w->type != VT_DUR || w->lit.ms <= 0) {
                check_err(L, w, DIAG_E007, "a duration literal such as 30m, 24h, 365d", "the window must be a positive duration");
                return NULL;
        }
        if (w->lit.ms > 3650LL * 86400000LL) {
                check_err(L, w, DIAG_E061, NULL, "windows longer than 3650d are not supported");
                return NULL;
        }
        n->window = w;
        if (n->where) {
                Scope in = {.on = sc->on, .in_agg = true, .row_type = (uint32_t)t};
                Node *wh = check(L, n->where, &in, cx);
                if (!wh)
                        return NULL;
                if (!is_bool(wh)) {
                        char d[96];
                        check_type_desc(wh, d, sizeof(d));
                        check_err(L, wh, DIAG_E033, NULL, "where needs a condition, found %s", d);
                        return NULL;
                }
                n->where = wh;
        }
        n->slot = t; /* the row type until compiled */
        n->en = f ? f->en : NULL;
        switch (n->agg) {
        case AGG_COUNT:
        case AGG_DISTINCT: n->type = VT_NUM; break;
        case AGG_ABSENT: n->type = VT_BOOL; break;
        case AGG_SUM:
        case AGG_AVG: n->type = ft_to_vt(f->type); break;
        default: n->type = ft_to_vt(f->type); break;
        }
        uint32_t idx = compile_aggregate(L, n);
        n->slot = (int32_t)idx;
        Rule *r = cx->rule;
        bool have = false;
        for (uint32_t i = 0; i < r->naggs; i++)
                if (r->aggs[i] == idx)
                        have = true;
        if (!have) {
                uint32_t *na = arena_alloc(L->ar, (r->naggs + 1) * sizeof(uint32_t));
                if (r->naggs)
                        memcpy(na, r->aggs, r->naggs * sizeof(uint32_t));
                na[r->naggs++] = idx;
                r->aggs = na;
        }
        if (n->agg == AGG_ABSENT) {
                r->timer_driven = true;
                if (!cx->absent_at)
                        cx->absent_at = n;
        }
        return n;
}

static Node *check(Loader *L, Node *n, Scope *sc, CheckCtx *cx)
{
        switch (n->kind) {
        case N_LIT:
                n->type = n->lit.tag;
                return n;
        case N_LIST:
                check_err(L, n, DIAG_E033, "a list literal is only allowed after in / not in",
                    "unexpected list");
                return NULL;
        case N_NAME:
                return resolve_name(L, n, sc, cx);
        case N_CUR: {
                if (!sc->in_agg) {
                        check_err(L, n, DIAG_E040, "outside an aggregate, write the field name without $",
                            "$%s refers to the current event and is only allowed in an aggregate's where", n->name);
                        return NULL;
                }
                int32_t slot;
                const Field *f = schema_field_on(L, sc->on, n->name, &slot);
                if (!f) {
                        Buf h = {0};
                        schema_suggest_field(L, sc->on, n->name, &h);
                        check_err(L, n, DIAG_E031, h.len ? h.p : NULL, "unknown field '$%s' of the current event", n->name);
                        buf_free(&h);
                        return NULL;
                }
                if (!cx->cur_field)
                        cx->cur_field = f->path;
                return field_ref(n, REF_CUR, slot, f);
        }
        case N_UNARY: {
                Node *a = check(L, n->a, sc, cx);
                if (!a)
                        return NULL;
                n->a = a;
                if (n->op == T_NOT) {
                        if (!is_bool(a)) {
                                char d[96];
                                check_type_desc(a, d, sizeof(d));
                                check_err(L, a, DIAG_E033, "not negates a condition", "not needs a bool, found %s", d);
                                return NULL;
                        }
                        n->type = VT_BOOL;
                } else {
                        if (a->type != VT_NUM && a->type != VT_DUR && a->type != VT_NULL) {
                                char d[96];
                                check_type_desc(a, d, sizeof(d));
                                check_err(L, a, DIAG_E033, NULL, "cannot negate %s", d);
                                return NULL;
                        }
                        n->type = a->type;
                }
                return check_fold(L, n);
        }
        case N_BINARY: {
                Node *a = check(L, n->a, sc, cx);
                Node *b = NULL;
                if ((n->op == T_IN || n->op == T_NOT_IN)) {
                        b = n->b; /* the list is resolved by check_in */
                        if (b->kind == N_LIST)
                                for (uint32_t i = 0; i < b->nargs; i++) {
                                        Node *it = check(L, b->args[i], sc, cx);
                                        if (!it)
                                                return NULL;
                                        b->args[i] = it;
                                }
                } else {
                        b = check(L, n->b, sc, cx);
                }
                if (!a || !b)
                        return NULL;
                n->a = a;
                n->b = b;
                switch (n->op) {
                case T_AND:
                case T_OR:
                        if (!is_bool(a) || !is_bool(b)) {
                                const Node *bad = !is_bool(a) ? a : b;
                                char d[96];
                                check_type_desc(bad, d, sizeof(d));
                                check_err(L, bad, DIAG_E033, "compare it to something: x > 0, x == \"v\"",
                                    "%s needs conditions on both sides, found %s", tok_kind_str(n->op), d);
                                return NULL;
                        }
                        n->type = VT_BOOL;
                        break;
                case T_EQ: case T_NE: case T_LT: case T_LE: case T_GT: case T_GE:
                        if (!check_compare(L, n))
                                return NULL;
                        n->type = VT_BOOL;
                        if ((a->kind == N_LIT && a->type == VT_NULL) || (b->kind == N_LIT && b->type == VT_NULL))
                                return check_lit(L, n, value_bool(false));
                        break;
                case T_IN: case T_NOT_IN:
                        if (!check_in(L, n))
                                return NULL;
                        n->type = VT_BOOL;
                        return n;
                case T_CONTAINS: case T_STARTSWITH: case T_ENDSWITH:
                        if (!check_strop(L, n))
                                return NULL;
                        n->type = VT_BOOL;
                        break;
                case T_MATCHES:
                        if (!check_regex(L, n, cx))
                                return NULL;
                        n->type = VT_BOOL;
                        return n;
                default:
                        if (!check_arith(L, n))
                                return NULL;
                        break;
                }
                return check_fold(L, n);
        }
        case N_CALL:
                return check_call(L, n, sc, cx);
        case N_AGG:
                return check_agg(L, n, sc, cx);
        }
        return NULL;
}

Node *check_condition(Loader *L, Node *n, CheckCtx *cx)
{
        Scope sc = {.on = cx->on, .grading = cx->grading};
        bool was_lit = n->kind == N_LIT;
        uint32_t nwarn = L->dl->nwarnings;
        Node *r = check(L, n, &sc, cx);
        if (!r)
                return NULL;
        if (!is_bool(r)) {
                char d[96];
                check_type_desc(r, d, sizeof(d));
                check_err(L, r, DIAG_E033, "a condition is true or false: compare the value, e.g. x > 0",
                    "the condition of %s is %s, not a condition", cx->what, d);
                return NULL;
        }
        if (r->kind == N_LIT && !was_lit && L->dl->nwarnings == nwarn) {
                if (!value_truthy(&r->lit))
                        check_err(L, r, DIAG_W104, "check the literals and operators", "the condition of %s is always false",
                            cx->what);
                else
                        check_err(L, r, DIAG_W106, NULL, "the condition of %s is always true", cx->what);
        }
        return r;
}

Node *check_value(Loader *L, Node *n, CheckCtx *cx)
{
        Scope sc = {.on = cx->on, .grading = cx->grading};
        Node *r = check(L, n, &sc, cx);
        if (!r)
                return NULL;
        if (r->type != VT_NUM) {
                char d[96];
                check_type_desc(r, d, sizeof(d));
                check_err(L, r, DIAG_E033, "score: is a number: a numeric field such as dynamic_risk_score, or arithmetic on one",
                    "the score of %s is %s, not a number", cx->what, d);
                return NULL;
        }
        return r;
}
