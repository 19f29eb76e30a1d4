/*
 * schema.yaml: the envelope paths, the event types and their typed fields.
 * Assigns every distinct (path, type, enum) a global slot, so that a field
 * shared by several event types is read the same way by a rule on all of
 * them.
 */
#include <stdlib.h>
#include <string.h>

#include "src/rules/load.h"

static const char *const type_names[] = {"bool", "number", "string", "enum", "time", "duration",
                                         "uscc", "license_no", "sample_code", "category"};
static const FieldType type_vals[] = {FT_BOOL, FT_NUM, FT_STR, FT_ENUM, FT_TIME, FT_DUR, FT_STR, FT_STR, FT_STR, FT_STR};
/* The codes are strings the decoder checks (ident_check, bad_identifier);
 * a category is a string the decoder also reads from a list of levels. */
static const FieldFormat type_formats[] = {FF_NONE, FF_NONE, FF_NONE, FF_NONE, FF_NONE, FF_NONE,
                                           FF_USCC, FF_LICENSE, FF_SAMPLE_CODE, FF_CATEGORY};
#define TYPE_LIST "string, number, bool, time, duration, enum, uscc, license_no, sample_code, category"

/* A code type named by s (uscc, license_no, sample_code); FF_NONE if none. */
static FieldFormat code_format(const char *s)
{
        for (uint32_t i = 0; i < ARRAY_SIZE(type_names); i++)
                if (type_formats[i] != FF_NONE && type_formats[i] != FF_CATEGORY && strcmp(s, type_names[i]) == 0)
                        return type_formats[i];
        return FF_NONE;
}

static bool ident_ok(const char *s, bool dots)
{
        if (!*s)
                return false;
        for (const char *p = s; *p; p++) {
                char c = *p;
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                          (p != s && c >= '0' && c <= '9') || (dots && c == '.' && p != s && p[1] &&
                                                                  p[-1] != '.');
                if (!ok)
                        return false;
        }
        return true;
}

/* An enum's values: a list [a, b], or a mapping { a: 甲, b: 乙 } that gives
 * each value, in order, the label messages print for it ({f:label}). */
static EnumDef *enum_from_node(Loader *L, const char *name, const YNode *vals)
{
        if (vals->kind != Y_SEQ && vals->kind != Y_MAP) {
                loader_expect(L, vals, Y_SEQ, "a list of enum values (or a mapping of values to labels)");
                return NULL;
        }
        bool labelled = vals->kind == Y_MAP;
        Schema *s = &L->rs->schema;
        if (vals->n == 0) {
                diag_add(L->dl, DIAG_E060, ynode_pos(vals), "list the values, e.g. [pass, fail]",
                         "enum '%s' has no values", name);
                return NULL;
        }
        if (vals->n > RULES_MAX_ENUM) {
                diag_add(L->dl, DIAG_E061, ynode_pos(vals), NULL, "enum '%s' has %u values; the limit is %d",
                         name, vals->n, RULES_MAX_ENUM);
                return NULL;
        }
        EnumDef *e = arena_alloc(L->ar, sizeof(*e));
        e->name = arena_strdup(L->ar, name);
        e->values = arena_alloc(L->ar, vals->n * sizeof(char *));
        if (labelled)
                e->labels = arena_alloc(L->ar, vals->n * sizeof(char *));
        for (uint32_t i = 0; i < vals->n; i++) {
                const YNode *v = labelled ? vals->keys[i] : vals->items[i];
                if (!loader_expect(L, v, Y_SCALAR, "an enum value"))
                        continue;
                bool dup = false;
                for (uint32_t j = 0; j < e->nvalues; j++)
                        if (strcmp(e->values[j], v->str) == 0)
                                dup = true;
                if (dup) {
                        diag_add(L->dl, DIAG_E011, ynode_pos(v), NULL,
                                 "'%s' appears twice in enum '%s'", v->str, name);
                        continue;
                }
                if (labelled) {
                        const YNode *lab = vals->items[i];
                        if (ynode_is_null(lab) || (lab->kind == Y_SCALAR && !lab->len)) {
                                diag_add(L->dl, DIAG_E060, ynode_pos(ynode_is_null(lab) ? v : lab),
                                         "give every value a label (spoiled: 变质), or list the values without labels: [a, b]",
                                         "value '%s' of enum '%s' has no label", v->str, name);
                                continue;
                        }
                        if (!loader_expect(L, lab, Y_SCALAR, "the value's label (text)"))
                                continue;
                        e->labels[e->nvalues] = arena_strdup(L->ar, lab->str);
                }
                e->values[e->nvalues++] = arena_strdup(L->ar, v->str);
        }
        uint32_t cap = s->nenums;
        VEC_PUSH(s->enums, s->nenums, cap) = e;
        return e;
}

static uint32_t slot_for(Loader *L, const char *path, FieldType t, const EnumDef *en)
{
        Schema *s = &L->rs->schema;
        for (uint32_t i = 0; i < s->nslots; i++)
                if (s->slot_type[i] == t && s->slot_enum[i] == en && strcmp(s->slot_path[i], path) == 0)
                        return i;
        uint32_t i = s->nslots++;
        s->slot_type = xrealloc(s->slot_type, s->nslots * sizeof(*s->slot_type));
        s->slot_enum = xrealloc(s->slot_enum, s->nslots * sizeof(*s->slot_enum));
        s->slot_path = xrealloc(s->slot_path, s->nslots * sizeof(*s->slot_path));
        s->slot_type[i] = t;
        s->slot_enum[i] = en;
        s->slot_path[i] = arena_strdup(L->ar, path);
        return i;
}

static void field_load(Loader *L, EventType *et, const YNode *key, const YNode *spec,
                       const YNode *named_enums)
{
        Schema *s = &L->rs->schema;
        Field *f = &et->fields[et->nfields];
        const char *path = key->str;
        if (!ident_ok(path, true)) {
                diag_add(L->dl, DIAG_E012, ynode_pos(key),
                         "field names are letters, digits and '_', with '.' between nested names",
                         "bad field name '%s'", path);
                return;
        }
        for (uint32_t i = 0; i < et->nfields; i++)
                if (strcmp(et->fields[i].path, path) == 0) {
                        diag_add(L->dl, DIAG_E011, ynode_pos(key), NULL,
                                 "field '%s' of %s is declared twice", path, et->name);
                        return;
                }
        const YNode *tnode = spec;
        const EnumDef *en = NULL;
        bool required = false;
        if (spec->kind == Y_MAP) {
                static const char *const known[] = {"type", "values", "enum", "required", "desc"};
                loader_unknown_keys(L, spec, known, ARRAY_SIZE(known), "a field");
                tnode = ynode_get(spec, "type");
                const YNode *req = ynode_get(spec, "required");
                if (req && loader_expect(L, req, Y_SCALAR, "true or false")) {
                        if (strcmp(req->str, "true") == 0)
                                required = true;
                        else if (strcmp(req->str, "false") != 0)
                                diag_add(L->dl, DIAG_E006, ynode_pos(req), "write true or false",
                                         "required must be true or false, not '%s'", req->str);
                }
                if (!tnode) {
                        diag_add(L->dl, DIAG_E004, ynode_pos(key),
                                 "type: string, number, bool, time, duration, enum or a code (uscc, license_no, sample_code); an enum with labels is { type: enum, values: { code: label, ... } }",
                                 "field '%s' has no type", path);
                        return;
                }
        } else if (spec->kind == Y_SEQ) {
                char *name = arena_printf(L->ar, "%s.%s", et->name, path);
                en = enum_from_node(L, name, spec);
                if (!en)
                        return;
                tnode = NULL;
        }
        FieldType t = FT_ENUM;
        FieldFormat format = FF_NONE;
        if (tnode) {
                if (!loader_expect(L, tnode, Y_SCALAR, "a field type"))
                        return;
                int k = -1;
                for (uint32_t i = 0; i < ARRAY_SIZE(type_names); i++)
                        if (strcmp(tnode->str, type_names[i]) == 0)
                                k = (int)i;
                if (k < 0) {
                        const char *sug = diag_suggest(tnode->str, type_names, ARRAY_SIZE(type_names));
                        char *hint = sug ? xasprintf("did you mean '%s'? (types: " TYPE_LIST ")", sug)
                                         : xstrdup("types: " TYPE_LIST);
                        diag_add(L->dl, DIAG_E060, ynode_pos(tnode), hint, "unknown field type '%s'",
                                 tnode->str);
                        free(hint);
                        return;
                }
                t = type_vals[k];
                format = type_formats[k];
                if (t == FT_ENUM) {
                        const YNode *vals = ynode_get(spec, "values");
                        const YNode *ename = ynode_get(spec, "enum");
                        if (vals && ename) {
                                diag_add(L->dl, DIAG_E060, ynode_pos(ename), "keep one of them",
                                         "field '%s' has both values: and enum:", path);
                                return;
                        }
                        if (vals) {
                                char *name = arena_printf(L->ar, "%s.%s", et->name, path);
                                en = enum_from_node(L, name, vals);
                        } else if (ename && loader_expect(L, ename, Y_SCALAR, "an enum name")) {
                                for (uint32_t i = 0; i < s->nenums; i++)
                                        if (strcmp(s->enums[i]->name, ename->str) == 0)
                                                en = s->enums[i];
                                if (!en) {
                                        Buf h = {0};
                                        buf_puts(&h, "named enums:");
                                        for (uint32_t i = 0; named_enums && named_enums->kind == Y_MAP && i < named_enums->n; i++)
                                                if (named_enums->keys[i]->kind == Y_SCALAR)
                                                        buf_printf(&h, " %s", named_enums->keys[i]->str);
                                        if (!named_enums || named_enums->kind != Y_MAP || !named_enums->n)
                                                buf_puts(&h, " none (declare them under enums:)");
                                        diag_add(L->dl, DIAG_E060, ynode_pos(ename), h.p,
                                                 "unknown enum '%s'", ename->str);
                                        buf_free(&h);
                                }
                        } else {
                                diag_add(L->dl, DIAG_E004, ynode_pos(tnode),
                                         "give values: [a, b] or enum: NAME", "enum field '%s' has no values", path);
                        }
                        if (!en)
                                return;
                }
        }
        if (s->nslots >= RULES_MAX_SLOTS) {
                diag_add(L->dl, DIAG_E061, ynode_pos(key), NULL, "more than %d distinct fields",
                         RULES_MAX_SLOTS);
                return;
        }
        f->path = arena_strdup(L->ar, path);
        f->type = t;
        f->en = en;
        f->format = format;
        f->required = required;
        f->pos = ynode_pos(key);
        /* split the path */
        uint32_t nseg = 1;
        for (const char *p = path; *p; p++)
                nseg += *p == '.';
        f->segs = arena_alloc(L->ar, nseg * sizeof(char *));
        const char *st = path;
        for (const char *p = path;; p++) {
                if (*p == '.' || !*p) {
                        f->segs[f->nsegs++] = arena_strndup(L->ar, st, (size_t)(p - st));
                        st = p + 1;
                        if (!*p)
                                break;
                }
        }
        f->slot = slot_for(L, path, t, en);
        /* the decoder reads a path the same way for every type: as a list of
         * category levels for all of them or for none */
        for (uint32_t i = 0; i <= et->id && i < s->ntypes; i++) {
                const EventType *o = &s->types[i];
                for (uint32_t j = 0; j < o->nfields; j++)
                        if (o->fields[j].slot == f->slot && (o->fields[j].format == FF_CATEGORY) != (format == FF_CATEGORY)) {
                                diag_add(L->dl, DIAG_E060, ynode_pos(tnode ? tnode : key),
                                         "declare the path with the same type in every event type",
                                         "field '%s' is a %s in %s but a %s here", path,
                                         format == FF_CATEGORY ? "string" : "category", o->name,
                                         format == FF_CATEGORY ? "category" : "string");
                                return;
                        }
        }
        et->nfields++;
}

void schema_load(Loader *L, const YNode *root)
{
        Schema *s = &L->rs->schema;
        s->profile_type = -1;
        if (!root || !loader_expect(L, root, Y_MAP, "a mapping with envelope:, types:"))
                return;
        static const char *const known[] = {"envelope", "profile", "enums", "types", "version", "desc",
                                            "display_offset"};
        loader_unknown_keys(L, root, known, ARRAY_SIZE(known), "schema.yaml");

        /* Events carry their own offsets and riskd counts in UTC; people read
         * dates where they are, so {f:date} and {f:datetime} print at this
         * one offset of the rules directory (no zone rules: no DST surprises). */
        const YNode *off = ynode_get(root, "display_offset");
        if (off && loader_expect(L, off, Y_SCALAR, "an offset from UTC, e.g. \"+08:00\"") &&
            time_offset_parse(off->str, off->len, &s->display_offset_ms) != 0)
                diag_add(L->dl, DIAG_E060, ynode_pos(off),
                         "an RFC 3339 offset from UTC: \"+08:00\" (China), \"-05:00\", \"Z\" (UTC, the default)",
                         "display_offset '%s' is not an RFC 3339 offset", off->str);

        const YNode *env = ynode_get(root, "envelope");
        static const char *const envkeys[] = {"id", "type", "enterprise", "time"};
        char **envdst[] = {&s->env.id, &s->env.type, &s->env.enterprise, &s->env.time};
        if (!env) {
                diag_add(L->dl, DIAG_E004, ynode_pos(root),
                         "envelope: { id: event_id, type: event_type, enterprise: enterprise_id, time: occurred_at }",
                         "schema.yaml has no envelope:");
        } else if (loader_expect(L, env, Y_MAP, "a mapping of envelope paths")) {
                loader_unknown_keys(L, env, envkeys, ARRAY_SIZE(envkeys), "envelope");
                for (uint32_t i = 0; i < ARRAY_SIZE(envkeys); i++) {
                        const YNode *v = ynode_get(env, envkeys[i]);
                        if (!v) {
                                diag_add(L->dl, DIAG_E004, ynode_pos(env), "the envelope needs id, type, enterprise and time",
                                         "envelope has no '%s' path", envkeys[i]);
                                continue;
                        }
                        /* the enterprise id may be a code: { path: enterprise.uscc, type: uscc } */
                        if (i == 2 && v->kind == Y_MAP) {
                                static const char *const ekeys[] = {"path", "type"};
                                loader_unknown_keys(L, v, ekeys, ARRAY_SIZE(ekeys), "the envelope's enterprise");
                                const YNode *ty = ynode_get(v, "type");
                                if (ty && loader_expect(L, ty, Y_SCALAR, "a code type")) {
                                        s->env.enterprise_format = code_format(ty->str);
                                        if (!s->env.enterprise_format && strcmp(ty->str, "string") != 0)
                                                diag_add(L->dl, DIAG_E060, ynode_pos(ty),
                                                         "string, or a code the decoder checks: uscc, license_no, sample_code",
                                                         "the enterprise id cannot be of type '%s'", ty->str);
                                }
                                const YNode *m = v;
                                v = ynode_get(m, "path");
                                if (!v) {
                                        diag_add(L->dl, DIAG_E004, ynode_pos(m), "enterprise: { path: enterprise.uscc, type: uscc }",
                                                 "the envelope's enterprise has no path:");
                                        continue;
                                }
                        }
                        if (!loader_expect(L, v, Y_SCALAR, i == 2 ? "a dotted path, or { path: PATH, type: uscc }" : "a dotted path"))
                                continue;
                        if (!ident_ok(v->str, true)) {
                                diag_add(L->dl, DIAG_E012, ynode_pos(v), "a path like occurred_at or enterprise.uscc",
                                         "bad envelope path '%s'", v->str);
                                continue;
                        }
                        *envdst[i] = arena_strdup(L->ar, v->str);
                }
        }

        const YNode *enums = ynode_get(root, "enums");
        if (enums && loader_expect(L, enums, Y_MAP, "a mapping of enum names to values"))
                for (uint32_t i = 0; i < enums->n; i++) {
                        if (!loader_expect(L, enums->keys[i], Y_SCALAR, "an enum name"))
                                continue;
                        for (uint32_t j = 0; j < i; j++)
                                if (enums->keys[j]->kind == Y_SCALAR &&
                                    strcmp(enums->keys[j]->str, enums->keys[i]->str) == 0)
                                        diag_add(L->dl, DIAG_E011, ynode_pos(enums->keys[i]), NULL,
                                                 "enum '%s' is defined twice", enums->keys[i]->str);
                        enum_from_node(L, enums->keys[i]->str, enums->items[i]);
                }

        const YNode *types = ynode_get(root, "types");
        if (!types) {
                diag_add(L->dl, DIAG_E004, ynode_pos(root), "types: { sampling: { fields: {...} } }",
                         "schema.yaml has no types:");
                return;
        }
        if (!loader_expect(L, types, Y_MAP, "a mapping of event types"))
                return;
        if (types->n > RULES_MAX_TYPES) {
                diag_add(L->dl, DIAG_E061, ynode_pos(types), NULL, "%u event types; the limit is %d",
                         types->n, RULES_MAX_TYPES);
                return;
        }
        s->types = arena_alloc(L->ar, types->n * sizeof(EventType));
        for (uint32_t i = 0; i < types->n; i++) {
                const YNode *k = types->keys[i], *v = types->items[i];
                if (!loader_expect(L, k, Y_SCALAR, "an event type name"))
                        continue;
                if (!ident_ok(k->str, false)) {
                        diag_add(L->dl, DIAG_E012, ynode_pos(k), "letters, digits and '_'",
                                 "bad event type name '%s'", k->str);
                        continue;
                }
                bool dup = false;
                for (uint32_t j = 0; j < s->ntypes; j++)
                        if (strcmp(s->types[j].name, k->str) == 0)
                                dup = true;
                if (dup) {
                        diag_add(L->dl, DIAG_E011, ynode_pos(k), NULL, "event type '%s' is defined twice", k->str);
                        continue;
                }
                EventType *et = &s->types[s->ntypes];
                et->name = arena_strdup(L->ar, k->str);
                et->id = s->ntypes++;
                et->pos = ynode_pos(k);
                if (ynode_is_null(v))
                        continue;
                if (!loader_expect(L, v, Y_MAP, "a mapping with fields:"))
                        continue;
                static const char *const tkeys[] = {"fields", "desc"};
                loader_unknown_keys(L, v, tkeys, ARRAY_SIZE(tkeys), "an event type");
                const YNode *fields = ynode_get(v, "fields");
                if (!fields || ynode_is_null(fields))
                        continue;
                if (!loader_expect(L, fields, Y_MAP, "a mapping of field names to types"))
                        continue;
                et->fields = arena_alloc(L->ar, (fields->n + 1) * sizeof(Field));
                for (uint32_t j = 0; j < fields->n; j++)
                        if (loader_expect(L, fields->keys[j], Y_SCALAR, "a field name"))
                                field_load(L, et, fields->keys[j], fields->items[j], enums);
        }

        const YNode *prof = ynode_get(root, "profile");
        if (prof && loader_expect(L, prof, Y_SCALAR, "an event type name")) {
                for (uint32_t i = 0; i < s->ntypes; i++)
                        if (strcmp(s->types[i].name, prof->str) == 0)
                                s->profile_type = (int32_t)i;
                if (s->profile_type < 0) {
                        const char *c[RULES_MAX_TYPES];
                        for (uint32_t i = 0; i < s->ntypes; i++)
                                c[i] = s->types[i].name;
                        const char *sug = diag_suggest(prof->str, c, s->ntypes);
                        char *hint = sug ? xasprintf("did you mean '%s'?", sug) : NULL;
                        diag_add(L->dl, DIAG_E030, ynode_pos(prof), hint,
                                 "profile names unknown event type '%s'", prof->str);
                        free(hint);
                }
        }
}

const Field *schema_field(const Schema *s, uint32_t type, const char *path)
{
        if (type >= s->ntypes)
                return NULL;
        const EventType *et = &s->types[type];
        for (uint32_t i = 0; i < et->nfields; i++)
                if (strcmp(et->fields[i].path, path) == 0)
                        return &et->fields[i];
        return NULL;
}

void schema_deinit(Schema *s)
{
        free(s->slot_type);
        free(s->slot_enum);
        free(s->slot_path);
        free(s->enums);
}

/* The field at path in every event type of on (one slot in all of them),
 * or NULL; and the hint when there is none: rules, templates and
 * aggregates all name fields this way (load.h). */
const Field *schema_field_on(Loader *L, uint64_t on, const char *path, int32_t *slot)
{
        const Schema *s = &L->rs->schema;
        const Field *first = NULL;
        for (uint32_t t = 0; t < s->ntypes; t++) {
                if (!(on & (1ull << t)))
                        continue;
                const Field *f = schema_field(s, t, path);
                if (!f)
                        return NULL;
                if (first && first->slot != f->slot)
                        return NULL;
                if (!first)
                        first = f;
        }
        if (first && slot)
                *slot = (int32_t)first->slot;
        return first;
}

void schema_suggest_type(const Schema *s, const char *name, Buf *hint)
{
        const char *c[RULES_MAX_TYPES];
        for (uint32_t i = 0; i < s->ntypes; i++)
                c[i] = s->types[i].name;
        diag_hint_names(hint, name, c, s->ntypes, "event types:", NULL);
}

void schema_suggest_field(Loader *L, uint64_t on, const char *path, Buf *hint)
{
        const Schema *s = &L->rs->schema;
        const char *cands[RULES_MAX_SLOTS + 64];
        uint32_t nc = 0;
        const char *in_some = NULL, *missing_in = NULL;
        for (uint32_t t = 0; t < s->ntypes; t++) {
                if (!(on & (1ull << t)))
                        continue;
                const EventType *et = &s->types[t];
                if (schema_field(s, t, path))
                        in_some = et->name;
                else
                        missing_in = et->name;
                for (uint32_t i = 0; i < et->nfields && nc < ARRAY_SIZE(cands) - 64; i++)
                        cands[nc++] = et->fields[i].path;
        }
        if (in_some && missing_in) {
                buf_printf(hint, "'%s' is a field of %s but not of %s; a rule on several types can only read fields they all have",
                           path, in_some, missing_in);
                return;
        }
        uint32_t nfields = nc;
        for (uint32_t i = 0; i < L->nmacros && nc < ARRAY_SIZE(cands); i++)
                cands[nc++] = L->macros[i].name;
        const char *sug = diag_suggest(path, cands, nc);
        nc = nfields;
        if (sug)
                buf_printf(hint, "did you mean '%s'?", sug);
        else {
                buf_puts(hint, "fields:");
                uint32_t shown = 0;
                for (uint32_t i = 0; i < nc && shown < 24; i++, shown++)
                        buf_printf(hint, " %s", cands[i]);
                if (nc > 24)
                        buf_puts(hint, " ...");
        }
}
