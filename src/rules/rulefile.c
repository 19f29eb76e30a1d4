/*
 * The definitions in the rule files: each file's lists:, macros:, rules:
 * and append: entries read into the Loader (ListDef, MacroDef, RuleDef),
 * files in name order, every problem of their shape reported.  Nothing is
 * checked or compiled here: rule.c builds each collected rule once every
 * file is read, so that append: extends what an earlier file defined and a
 * rule may read a flag that a later rule sets.  Apart from the driver
 * (load.c), which orders the stages over the whole directory.
 */
#include <stdlib.h>
#include <string.h>

#include "src/rules/load.h"

static ListDef *list_find(Loader *L, const char *name)
{
        for (uint32_t i = 0; i < L->nlists; i++)
                if (strcmp(L->lists[i].name, name) == 0)
                        return &L->lists[i];
        return NULL;
}

static MacroDef *macro_find(Loader *L, const char *name)
{
        for (uint32_t i = 0; i < L->nmacros; i++)
                if (strcmp(L->macros[i].name, name) == 0)
                        return &L->macros[i];
        return NULL;
}

static RuleDef *ruledef_find(Loader *L, const char *id)
{
        for (uint32_t i = 0; i < L->nrules; i++)
                if (L->rules[i].id && !L->rules[i].dup && strcmp(L->rules[i].id, id) == 0)
                        return &L->rules[i];
        return NULL;
}

static void list_items_add(Loader *L, ListDef *ld, const YNode *seq)
{
        if (!loader_expect(L, seq, Y_SEQ, "a list of values"))
                return;
        for (uint32_t i = 0; i < seq->n; i++)
                if (loader_expect(L, seq->items[i], Y_SCALAR, "a value"))
                        VEC_PUSH(ld->items, ld->nitems, ld->cap) = seq->items[i];
}

/* Lists and macros share one namespace: k names a new kind ("list" or
 * "macro") unless same (the declaration of one of that kind) or
 * other_has (one of the other kind) says it is taken. */
static bool def_name_free(Loader *L, const YNode *k, const char *kind, const YNode *same, bool other_has,
                          const char *other)
{
        if (same) {
                char *hint = xasprintf("use append: to extend a %s", kind);
                diag_add(L->dl, DIAG_E011, ynode_pos(k), hint, "%s '%s' is already defined at %s:%u", kind, k->str,
                         same->src->path, same->line);
                free(hint);
                return false;
        }
        if (other_has) {
                diag_add(L->dl, DIAG_E011, ynode_pos(k), NULL, "'%s' is already the name of a %s", k->str, other);
                return false;
        }
        return true;
}

static void lists_load(Loader *L, const YNode *map)
{
        if (!loader_expect(L, map, Y_MAP, "a mapping of list names to values"))
                return;
        for (uint32_t i = 0; i < map->n; i++) {
                const YNode *k = map->keys[i];
                if (!loader_expect(L, k, Y_SCALAR, "a list name"))
                        continue;
                ListDef *old = list_find(L, k->str);
                if (!def_name_free(L, k, "list", old ? old->decl : NULL, macro_find(L, k->str) != NULL, "macro"))
                        continue;
                ListDef *ld = &VEC_PUSH(L->lists, L->nlists, L->listcap);
                ld->name = arena_strdup(L->ar, k->str);
                ld->decl = k;
                list_items_add(L, ld, map->items[i]);
        }
}

static void macros_load(Loader *L, const YNode *map)
{
        if (!loader_expect(L, map, Y_MAP, "a mapping of macro names to expressions"))
                return;
        for (uint32_t i = 0; i < map->n; i++) {
                const YNode *k = map->keys[i];
                if (!loader_expect(L, k, Y_SCALAR, "a macro name"))
                        continue;
                MacroDef *old = macro_find(L, k->str);
                if (!def_name_free(L, k, "macro", old ? old->decl : NULL, list_find(L, k->str) != NULL, "list"))
                        continue;
                Node *body = loader_parse(L, map->items[i]);
                MacroDef *md = &VEC_PUSH(L->macros, L->nmacros, L->macrocap);
                md->name = arena_strdup(L->ar, k->str);
                md->decl = k;
                md->body = body;
        }
}

static void exception_values_add(Loader *L, ExceptionDef *e, const YNode *values)
{
        if (!loader_expect(L, values, Y_SEQ, "a list of value tuples"))
                return;
        for (uint32_t i = 0; i < values->n; i++)
                VEC_PUSH(e->values, e->nvalues, e->cap) = values->items[i];
}

static void exceptions_load(Loader *L, RuleDef *rd, const YNode *seq)
{
        if (!loader_expect(L, seq, Y_SEQ, "a list of exceptions"))
                return;
        for (uint32_t i = 0; i < seq->n; i++) {
                const YNode *x = seq->items[i];
                if (!loader_expect(L, x, Y_MAP, "an exception {name, fields, values}"))
                        continue;
                static const char *const known[] = {"name", "fields", "comps", "values", "desc"};
                loader_unknown_keys(L, x, known, ARRAY_SIZE(known), "an exception");
                const YNode *name = ynode_get(x, "name"), *fields = ynode_get(x, "fields");
                if (!name || !fields) {
                        diag_add(L->dl, DIAG_E004, ynode_pos(x), "an exception needs name: and fields:",
                                 "exception without %s", !name ? "name" : "fields");
                        continue;
                }
                if (!loader_expect(L, name, Y_SCALAR, "an exception name") ||
                    !loader_expect(L, fields, Y_SEQ, "a list of field names"))
                        continue;
                ExceptionDef *e = &VEC_PUSH(rd->exc, rd->nexc, rd->exccap);
                e->name = arena_strdup(L->ar, name->str);
                e->decl = x;
                e->fields = fields;
                e->comps = ynode_get(x, "comps");
                const YNode *values = ynode_get(x, "values");
                if (values && !ynode_is_null(values))
                        exception_values_add(L, e, values);
        }
}

static const char *const rule_keys[] = {
        "id", "desc", "on", "when", "severity", "score", "expires", "max_score", "flags",
        "actions", "cooldown", "for", "per", "message", "basis", "status", "exceptions",
        "rectify", "tags", "part", "replaces", "raise", "lower", "clears",
        "closes",
};

static void rule_collect(Loader *L, const YNode *n)
{
        if (!loader_expect(L, n, Y_MAP, "a rule (a mapping with id:, on:, when:)"))
                return;
        loader_unknown_keys(L, n, rule_keys, ARRAY_SIZE(rule_keys), "a rule");
        const YNode *id = ynode_get(n, "id");
        RuleDef rd = {.node = n};
        if (!id) {
                diag_add(L->dl, DIAG_E004, ynode_pos(n), "give every rule a unique, stable id such as sampling.toxic_fail",
                         "rule without id");
                rd.bad = true;
        } else if (loader_expect(L, id, Y_SCALAR, "a rule id")) {
                if (!loader_id_ok(id->str)) {
                        diag_add(L->dl, DIAG_E012, ynode_pos(id), "letters, digits, '_', '.', '-'",
                                 "bad rule id '%s'", id->str);
                        rd.bad = true;
                }
                RuleDef *old = ruledef_find(L, id->str);
                if (old) {
                        const YNode *oid = ynode_get(old->node, "id");
                        diag_add(L->dl, DIAG_E010, ynode_pos(id), "rule ids must be unique: rename one, or use append: to extend",
                                 "duplicate rule id '%s' (first defined at %s:%u)", id->str,
                                 oid->src->path, oid->line);
                        rd.dup = true; /* still checked, so that all its problems show */
                }
                rd.id = arena_strdup(L->ar, id->str);
        } else {
                rd.bad = true;
        }
        const YNode *when = ynode_get(n, "when");
        if (when) {
                rd.when = loader_parse(L, when);
                if (!rd.when)
                        rd.bad = true;
        }
        const YNode *exc = ynode_get(n, "exceptions");
        if (exc && !ynode_is_null(exc))
                exceptions_load(L, &rd, exc);
        VEC_PUSH(L->rules, L->nrules, L->rulecap) = rd;
}

static void append_load(Loader *L, const YNode *seq)
{
        if (!loader_expect(L, seq, Y_SEQ, "a list of append entries"))
                return;
        for (uint32_t i = 0; i < seq->n; i++) {
                const YNode *a = seq->items[i];
                if (!loader_expect(L, a, Y_MAP, "an append entry ({list:, items:}, {macro:, when:} or {rule:, ...})"))
                        continue;
                static const char *const known[] = {"list", "items", "macro", "when", "rule", "exceptions"};
                loader_unknown_keys(L, a, known, ARRAY_SIZE(known), "an append entry");
                const YNode *list = ynode_get(a, "list"), *macro = ynode_get(a, "macro"),
                            *rule = ynode_get(a, "rule");
                if (list && loader_expect(L, list, Y_SCALAR, "a list name")) {
                        ListDef *ld = list_find(L, list->str);
                        const YNode *items = ynode_get(a, "items");
                        if (!ld) {
                                diag_add(L->dl, DIAG_E034, ynode_pos(list),
                                         "append can only extend a list defined earlier (files load in name order)",
                                         "append to unknown list '%s'", list->str);
                        } else if (!items) {
                                diag_add(L->dl, DIAG_E004, ynode_pos(a), NULL, "append to list '%s' without items:",
                                         list->str);
                        } else {
                                list_items_add(L, ld, items);
                        }
                } else if (macro && loader_expect(L, macro, Y_SCALAR, "a macro name")) {
                        MacroDef *md = macro_find(L, macro->str);
                        const YNode *when = ynode_get(a, "when");
                        if (!md) {
                                diag_add(L->dl, DIAG_E035, ynode_pos(macro),
                                         "append can only extend a macro defined earlier (files load in name order)",
                                         "append to unknown macro '%s'", macro->str);
                        } else if (!when) {
                                diag_add(L->dl, DIAG_E004, ynode_pos(a), NULL, "append to macro '%s' without when:",
                                         macro->str);
                        } else {
                                Node *extra = loader_parse(L, when);
                                if (extra && md->body) {
                                        Node *o = arena_alloc(L->ar, sizeof(*o));
                                        o->kind = N_BINARY;
                                        o->op = T_OR;
                                        o->a = md->body;
                                        o->b = extra;
                                        o->off = md->body->off;
                                        o->len = md->body->len;
                                        o->src_id = md->body->src_id;
                                        md->body = o;
                                }
                        }
                } else if (rule && loader_expect(L, rule, Y_SCALAR, "a rule id")) {
                        RuleDef *rd = ruledef_find(L, rule->str);
                        if (!rd) {
                                const char *c[64];
                                uint32_t nc = 0;
                                for (uint32_t j = 0; j < L->nrules && nc < 64; j++)
                                        if (L->rules[j].id)
                                                c[nc++] = L->rules[j].id;
                                const char *sug = diag_suggest(rule->str, c, nc);
                                char *hint = sug ? xasprintf("did you mean '%s'?", sug)
                                                 : xstrdup("append can only extend a rule defined earlier (files load in name order)");
                                diag_add(L->dl, DIAG_E044, ynode_pos(rule), hint, "append to unknown rule '%s'",
                                         rule->str);
                                free(hint);
                                continue;
                        }
                        const YNode *when = ynode_get(a, "when"), *exc = ynode_get(a, "exceptions");
                        if (!when && !exc)
                                diag_add(L->dl, DIAG_E004, ynode_pos(a), "append when: (AND-ed) or exceptions: values",
                                         "append to rule '%s' changes nothing", rule->str);
                        if (when) {
                                Node *extra = loader_parse(L, when);
                                if (extra)
                                        VEC_PUSH(rd->extra, rd->nextra, rd->cap) = extra;
                                else
                                        rd->bad = true;
                        }
                        if (exc && loader_expect(L, exc, Y_SEQ, "a list of {name, values}")) {
                                for (uint32_t j = 0; j < exc->n; j++) {
                                        const YNode *x = exc->items[j];
                                        if (!loader_expect(L, x, Y_MAP, "{name:, values:}"))
                                                continue;
                                        static const char *const xk[] = {"name", "values"};
                                        loader_unknown_keys(L, x, xk, ARRAY_SIZE(xk), "an exception append");
                                        const YNode *nm = ynode_get(x, "name"), *vals = ynode_get(x, "values");
                                        if (!nm || !vals || !loader_expect(L, nm, Y_SCALAR, "an exception name")) {
                                                diag_add(L->dl, DIAG_E004, ynode_pos(x), NULL,
                                                         "an exception append needs name: and values:");
                                                continue;
                                        }
                                        ExceptionDef *e = NULL;
                                        for (uint32_t k = 0; k < rd->nexc; k++)
                                                if (strcmp(rd->exc[k].name, nm->str) == 0)
                                                        e = &rd->exc[k];
                                        if (!e) {
                                                Buf h = {0};
                                                buf_printf(&h, "rule %s has exceptions:", rd->id);
                                                for (uint32_t k = 0; k < rd->nexc; k++)
                                                        buf_printf(&h, " %s", rd->exc[k].name);
                                                if (!rd->nexc)
                                                        buf_puts(&h, " none");
                                                diag_add(L->dl, DIAG_E045, ynode_pos(nm), h.p,
                                                         "rule '%s' has no exception '%s'", rd->id, nm->str);
                                                buf_free(&h);
                                                continue;
                                        }
                                        exception_values_add(L, e, vals);
                                }
                        }
                } else if (!list && !macro && !rule) {
                        diag_add(L->dl, DIAG_E004, ynode_pos(a), "name what to extend: list:, macro: or rule:",
                                 "append entry without a target");
                }
        }
}

void rulefile_load(Loader *L, const SrcFile *f)
{
        const YNode *root = f->root;
        if (!root || ynode_is_null(root))
                return;
        if (!loader_expect(L, root, Y_MAP, "a mapping with lists:, macros:, rules:, append:"))
                return;
        static const char *const known[] = {"lists", "macros", "rules", "append"};
        loader_unknown_keys(L, root, known, ARRAY_SIZE(known), "a rule file");
        /* definitions first, then appends, whatever their order in the file */
        const YNode *v;
        if ((v = ynode_get(root, "lists")) && !ynode_is_null(v))
                lists_load(L, v);
        if ((v = ynode_get(root, "macros")) && !ynode_is_null(v))
                macros_load(L, v);
        if ((v = ynode_get(root, "rules")) && !ynode_is_null(v) &&
            loader_expect(L, v, Y_SEQ, "a list of rules"))
                for (uint32_t i = 0; i < v->n; i++)
                        rule_collect(L, v->items[i]);
        if ((v = ynode_get(root, "append")) && !ynode_is_null(v))
                append_load(L, v);
}
