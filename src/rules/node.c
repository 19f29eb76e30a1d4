/*
 * The YAML-node helpers every stage of the rule compiler shares (load.h):
 * the expression source of a scalar and parsing it, node positions,
 * expected kinds and unknown keys, durations, numbers, names and flag names.
 * They live apart from the driver (load.c) so that schema.c, grading.c,
 * check.c and compile.c depend on them, not on the driver.
 */
#include <stdlib.h>
#include <string.h>

#include "src/rules/load.h"

static SrcPos fixed_map(const ExprSrc *es, uint32_t off, uint32_t len)
{
        return ynode_span(es->ud);
}

/* A rule id, action or flag name: letters, digits, '_', '.', '-'. */
bool loader_id_ok(const char *s)
{
        if (!*s)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '_' || *p == '.' || *p == '-'))
                        return false;
        return true;
}

ExprSrc *loader_src_new(Loader *L)
{
        ExprSrc *es = arena_alloc(L->ar, sizeof(*es));
        es->id = L->nsrcs;
        VEC_PUSH(L->srcs, L->nsrcs, L->srccap) = es;
        return es;
}

ExprSrc *loader_exprsrc(Loader *L, const YNode *n)
{
        ExprSrc *es = loader_src_new(L);
        uint32_t id = es->id;
        ynode_exprsrc(n, id, es);
        return es;
}

ExprSrc *loader_fixedsrc(Loader *L, const YNode *n)
{
        ExprSrc *es = loader_src_new(L);
        es->file = n->src->path;
        es->text = n->kind == Y_SCALAR ? n->str : "";
        es->len = n->kind == Y_SCALAR ? n->len : 0;
        es->ud = (void *)n;
        es->map = fixed_map;
        return es;
}

SrcPos loader_node_pos(Loader *L, const Node *n)
{
        if (n->src_id >= L->nsrcs)
                return (SrcPos){0};
        return exprsrc_pos(L->srcs[n->src_id], n->off, n->len);
}

Node *loader_parse(Loader *L, const YNode *n)
{
        if (!loader_expect(L, n, Y_SCALAR, "an expression"))
                return NULL;
        ExprSrc *es = loader_exprsrc(L, n);
        return expr_parse(L->ar, es, L->dl);
}

static const char *kind_str(YKind k)
{
        return k == Y_MAP ? "a mapping" : k == Y_SEQ ? "a list" : "a scalar";
}

bool loader_expect(Loader *L, const YNode *n, YKind kind, const char *what)
{
        if (n->kind == kind)
                return true;
        diag_add(L->dl, DIAG_E003, ynode_pos(n), NULL, "expected %s here, found %s", what,
                 kind_str(n->kind));
        return false;
}

void loader_unknown_keys(Loader *L, const YNode *map, const char *const *known, uint32_t nknown,
                         const char *where)
{
        for (uint32_t i = 0; i < map->n; i++) {
                const YNode *k = map->keys[i];
                if (k->kind != Y_SCALAR) {
                        diag_add(L->dl, DIAG_E003, ynode_pos(k), NULL, "a key must be a plain name");
                        continue;
                }
                for (uint32_t j = 0; j < i; j++)
                        if (map->keys[j]->kind == Y_SCALAR && strcmp(map->keys[j]->str, k->str) == 0) {
                                diag_add(L->dl, DIAG_E005, ynode_pos(k), "remove one of them",
                                         "key '%s' appears twice (first at line %u)", k->str,
                                         map->keys[j]->line);
                                break;
                        }
                bool ok = false;
                for (uint32_t j = 0; j < nknown; j++)
                        if (strcmp(k->str, known[j]) == 0)
                                ok = true;
                if (ok)
                        continue;
                Buf h = {0};
                diag_hint_names(&h, k->str, known, nknown, "known keys:", NULL);
                diag_add(L->dl, DIAG_W101, ynode_pos(k), h.p, "unknown key '%s' in %s (ignored)",
                         k->str, where);
                buf_free(&h);
        }
}

bool loader_duration(Loader *L, const YNode *n, int64_t *ms, const char *if_zero)
{
        if (!loader_expect(L, n, Y_SCALAR, "a duration"))
                return false;
        if (duration_parse(n->str, n->len, ms) < 0) {
                diag_add(L->dl, DIAG_E007, ynode_pos(n),
                         "a whole number followed by ms, s, m, h, d or w, e.g. 30m, 24h, 180d",
                         "'%s' is not a duration", n->str);
                return false;
        }
        if (*ms == 0 && if_zero) {
                diag_add(L->dl, DIAG_E007, ynode_pos(n), if_zero, "'%s': this duration must be positive", n->str);
                return false;
        }
        if (*ms > DURATION_MAX_MS) {
                /* a longer one reads as "never": say so instead */
                diag_add(L->dl, DIAG_E061, ynode_pos(n), "a duration is at most 36500d (100 years)",
                         "'%s' is longer than 36500d, the longest duration supported", n->str);
                return false;
        }
        return true;
}

bool loader_number(Loader *L, const YNode *n, double *v)
{
        if (!loader_expect(L, n, Y_SCALAR, "a number"))
                return false;
        char *end = NULL;
        double d = n->len ? strtod(n->str, &end) : 0;
        if (!n->len || !end || *end || d != d || d > 1e15 || d < -1e15) {
                diag_add(L->dl, DIAG_E008, ynode_pos(n), "write a plain number such as 20 or 2.5",
                         "'%s' is not a number", n->str);
                return false;
        }
        *v = d;
        return true;
}

int32_t loader_flag(Loader *L, const char *name, bool create)
{
        RuleSet *rs = L->rs;
        for (uint32_t i = 0; i < rs->nflags; i++)
                if (strcmp(rs->flags[i], name) == 0)
                        return (int32_t)i;
        if (!create || rs->nflags >= RULES_MAX_FLAGS)
                return -1;
        uint32_t cap = rs->nflags;
        VEC_PUSH(rs->flags, rs->nflags, cap) = arena_strdup(L->ar, name);
        return (int32_t)rs->nflags - 1;
}
