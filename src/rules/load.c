/*
 * Loading a rules directory: read the files, parse the YAML, collect the
 * definitions of every rule file (lists, macros, rules, append: rulefile.c),
 * then build each rule (rule.c: checked and compiled), and finish with the
 * warnings that need the whole set (unused names, shadowed rules).  This
 * file is the driver that orders those stages, and the RuleSet's life.
 *
 * Errors never stop the load early: every file and every rule is looked at
 * so that `riskctl check` reports all problems at once.  A RuleSet is
 * returned only when there was no error.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "src/rules/load.h"
#include "src/rules/vm.h"

static void warnings_finish(Loader *L)
{
        RuleSet *rs = L->rs;
        for (uint32_t i = 0; i < L->nlists; i++)
                if (!L->lists[i].used)
                        diag_add(L->dl, DIAG_W102, ynode_pos(L->lists[i].decl), "remove it, or use it with `in`",
                                 "list '%s' is never used", L->lists[i].name);
        for (uint32_t i = 0; i < L->nmacros; i++)
                if (!L->macros[i].used)
                        diag_add(L->dl, DIAG_W103, ynode_pos(L->macros[i].decl), "remove it, or use it in a condition",
                                 "macro '%s' is never used", L->macros[i].name);
        for (uint32_t i = 0; i < rs->nflags && i < L->flagcap; i++) {
                if (L->flag_reads[i])
                        continue;
                /* a misspelling on either side: the closest name read */
                const char *sug = diag_suggest(rs->flags[i], (const char *const *)L->flags_read, L->nflags_read);
                char *hint = sug ? xasprintf("did you mean '%s'? a condition reads state.flags.%s; otherwise read "
                                             "this flag in grading.yaml overrides or a condition, or remove it",
                                             sug, sug)
                                 : xstrdup("read it in grading.yaml overrides or a condition (state.flags.NAME), or "
                                           "remove it");
                diag_add(L->dl, DIAG_W107, L->flag_pos[i], hint, "flag '%s' is set but never read", rs->flags[i]);
                free(hint);
        }
        /* a rule with the same trigger and the same compiled condition as an
         * earlier one fires exactly when it does */
        for (uint32_t i = 0; i < rs->nrules; i++)
                for (uint32_t j = 0; j < i; j++) {
                        const Rule *a = &rs->rules[j], *b = &rs->rules[i];
                        if (a->on == b->on &&
                            compile_fingerprint(rs, a->when, HASH64_INIT) ==
                                    compile_fingerprint(rs, b->when, HASH64_INIT) &&
                            a->per_slot == b->per_slot && a->for_ms == b->for_ms &&
                            a->status != RULE_DISABLED &&
                            b->status != RULE_DISABLED) {
                                char *hint = xasprintf("merge the two rules, or make their conditions differ (%s is at %s:%u)",
                                                       a->id, a->pos.file, a->pos.line);
                                diag_add(L->dl, DIAG_W105, b->pos, hint,
                                         "rule '%s' has the same trigger and condition as '%s': it fires exactly when that one does",
                                         b->id, a->id);
                                free(hint);
                                break;
                        }
                }
}

/* ---- the RuleSet ---- */

static const char *line_lookup(void *ud, const char *file, uint32_t line, uint32_t *len)
{
        Loader *L = ud;
        for (uint32_t i = 0; i < L->nfiles; i++)
                if (L->files[i]->path == file || strcmp(L->files[i]->path, file) == 0)
                        return srcfile_line(L->files[i], line, len);
        return NULL;
}

RuleSet *rules_ref(RuleSet *rs)
{
        if (rs)
                rs->refs++;
        return rs;
}

static void ruleset_free(RuleSet *rs)
{
        for (uint32_t i = 0; i < rs->nregexes; i++)
                vm_regex_free(rs->regexes[i]);
        free(rs->regexes);
        free(rs->regex_src);
        free(rs->regex_rule);
        for (uint32_t i = 0; i < rs->nsets; i++) {
                free(rs->sets[i].v);
                free(rs->sets[i].bits);
        }
        free(rs->sets);
        free(rs->consts);
        free(rs->code);
        free(rs->progs);
        for (uint32_t i = 0; i < rs->naggs; i++)
                free(rs->aggs[i].row_slots);
        free(rs->aggs);
        free(rs->rules);
        free(rs->flags);
        free(rs->grading.bands);
        free(rs->grading.modes);
        free(rs->grading.overrides);
        schema_deinit(&rs->schema);
        free(rs->dir);
        if (rs->arena) {
                arena_deinit(rs->arena);
                free(rs->arena);
        }
        free(rs);
}

RuleSet *rules_unref(RuleSet *rs)
{
        if (rs && --rs->refs <= 0)
                ruleset_free(rs);
        return NULL;
}

uint64_t rules_regex_errors(const RuleSet *rs, uint32_t i)
{
        return i < rs->nregexes ? vm_regex_errors(rs->regexes[i]) : 0;
}

uint64_t rules_regex_errors_take(const RuleSet *rs, uint32_t i)
{
        return i < rs->nregexes ? vm_regex_errors_take(rs->regexes[i]) : 0;
}

const Rule *rules_find(const RuleSet *rs, const char *id)
{
        for (uint32_t i = 0; i < rs->nrules; i++)
                if (strcmp(rs->rules[i].id, id) == 0)
                        return &rs->rules[i];
        return NULL;
}

int32_t rules_type_id(const RuleSet *rs, const char *name)
{
        for (uint32_t i = 0; i < rs->schema.ntypes; i++)
                if (strcmp(rs->schema.types[i].name, name) == 0)
                        return (int32_t)i;
        return -1;
}

int32_t rules_flag_id(const RuleSet *rs, const char *name)
{
        for (uint32_t i = 0; i < rs->nflags; i++)
                if (strcmp(rs->flags[i], name) == 0)
                        return (int32_t)i;
        return -1;
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_yaml_name(const char *n)
{
        size_t l = strlen(n);
        return n[0] != '.' && ((l > 5 && strcmp(n + l - 5, ".yaml") == 0) ||
                               (l > 4 && strcmp(n + l - 4, ".yml") == 0));
}

int rules_load_mem(const char *dir, const char *const *names, const char *const *texts,
                   const size_t *lens, uint32_t n, DiagList *dl, RuleSet **ret)
{
        Loader L = {.dl = dl};
        RuleSet *rs = xcalloc(1, sizeof(*rs));
        rs->refs = 1;
        rs->dir = xstrdup(dir ? dir : "");
        for (size_t k = strlen(rs->dir); k > 1 && rs->dir[k - 1] == '/'; k--)
                rs->dir[k - 1] = 0; /* "rules/" names files "rules/x.yaml" */
        dir = rs->dir;
        rs->arena = xmalloc(sizeof(Arena));
        arena_init(rs->arena);
        rs->schema.profile_type = -1;
        L.rs = rs;
        L.ar = rs->arena;
        loader_src_new(&L); /* id 0: synthesized nodes with no source */
        diag_set_line_source(line_lookup, &L);

        /* deterministic order: by file name */
        uint32_t *order = xmalloc((n + 1) * sizeof(uint32_t));
        for (uint32_t i = 0; i < n; i++)
                order[i] = i;
        for (uint32_t i = 1; i < n; i++)
                for (uint32_t j = i; j > 0 && strcmp(names[order[j - 1]], names[order[j]]) > 0; j--) {
                        uint32_t t = order[j];
                        order[j] = order[j - 1];
                        order[j - 1] = t;
                }
        uint64_t h = HASH64_INIT;
        SrcFile *schema = NULL, *grading = NULL;
        for (uint32_t k = 0; k < n; k++) {
                uint32_t i = order[k];
                /* in the rule set's arena: rule and override positions keep pointing at it */
                char *path = dir && *dir ? arena_printf(rs->arena, "%s/%s", dir, names[i])
                                         : arena_strdup(rs->arena, names[i]);
                h = hash64(names[i], strlen(names[i]) + 1, h);
                h = hash64(texts[i], lens[i], h);
                SrcFile *f = srcfile_new(path, xstrndup(texts[i], lens[i]), lens[i]);
                VEC_PUSH(L.files, L.nfiles, L.filecap) = f;
                srcfile_parse(f, dl);
                if (strcmp(names[i], "schema.yaml") == 0)
                        schema = f;
                else if (strcmp(names[i], "grading.yaml") == 0)
                        grading = f;
        }
        free(order);
        snprintf(rs->version, sizeof(rs->version), "%016llx", (unsigned long long)h);
        SrcPos dirpos = {.file = dir && *dir ? rs->dir : "."};
        if (!schema)
                diag_add(dl, DIAG_E002, dirpos, "a rules directory holds schema.yaml, grading.yaml and rule files",
                         "no schema.yaml in the rules directory");
        else
                schema_load(&L, schema->root);
        if (!grading)
                diag_add(dl, DIAG_E002, dirpos, "a rules directory holds schema.yaml, grading.yaml and rule files",
                         "no grading.yaml in the rules directory");
        else
                grading_load_bands(&L, grading->root);

        for (uint32_t i = 0; i < L.nfiles; i++)
                if (L.files[i] != schema && L.files[i] != grading)
                        rulefile_load(&L, L.files[i]);

        if (schema && L.nrules > RULES_MAX_RULES)
                diag_add(dl, DIAG_E061, dirpos, NULL, "%u rules; the limit is %d", L.nrules, RULES_MAX_RULES);
        else if (schema) {
                rs->rules = xcalloc(L.nrules + 1, sizeof(Rule));
                rule_flags_collect(&L);
                for (uint32_t i = 0; i < L.nrules; i++)
                        rule_build(&L, &L.rules[i]);
                rule_closes_resolve(&L);
                for (uint32_t i = 0; i < rs->nrules; i++)
                        rs->rules[i].fingerprint = rule_fingerprint(rs, &rs->rules[i]);
        }
        if (grading && schema)
                grading_compile_overrides(&L);
        rs->nlists = L.nlists;
        rs->nmacros = L.nmacros;
        if (schema)
                warnings_finish(&L);
        /* the VM trusts verified code: verify every program once */
        for (uint32_t i = 0; !dl->nerrors && i < rs->nprogs; i++) {
                int v = vm_verify(rs, i);
                if (v == VM_STACK)
                        diag_add(dl, DIAG_E061, dirpos, "split the condition into macros or simpler rules",
                                 "an expression needs more than %d stack slots", VM_STACK_MAX);
                else if (v)
                        diag_add(dl, DIAG_E061, dirpos, "this is a bug in riskd: please report it with the rules",
                                 "internal error: compiled program %u failed verification", i);
        }

        diag_list_sort(dl);
        diag_set_line_source(NULL, NULL);
        for (uint32_t i = 0; i < L.nfiles; i++)
                srcfile_free(L.files[i]);
        free(L.files);
        free(L.srcs);
        for (uint32_t i = 0; i < L.nlists; i++)
                free(L.lists[i].items);
        free(L.lists);
        free(L.macros);
        for (uint32_t i = 0; i < L.nrules; i++) {
                free(L.rules[i].extra);
                for (uint32_t k = 0; k < L.rules[i].nexc; k++)
                        free(L.rules[i].exc[k].values);
                free(L.rules[i].exc);
        }
        free(L.rules);
        free(L.flag_reads);
        free(L.flag_pos);
        for (uint32_t i = 0; i < L.nflags_read; i++)
                free(L.flags_read[i]);
        free(L.flags_read);
        for (uint32_t i = 0; i < rs->naggs; i++)
                free(L.agg_keys[i]);
        free(L.agg_keys);
        free(L.grade_enum.values);
        free(L.mode_enum.values);
        if (dl->nerrors) {
                ruleset_free(rs);
                return 1;
        }
        *ret = rs;
        return 0;
}

int rules_load(const char *dir, DiagList *dl, RuleSet **ret)
{
        DIR *d = opendir(dir);
        if (!d)
                return -errno;
        char **names = NULL;
        uint32_t n = 0, cap = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (is_yaml_name(de->d_name))
                        VEC_PUSH(names, n, cap) = xstrdup(de->d_name);
        closedir(d);
        if (n > 1)
                xsort(names, n, sizeof(char *), name_cmp);
        char **texts = xcalloc(n + 1, sizeof(char *));
        size_t *lens = xcalloc(n + 1, sizeof(size_t));
        int r = 0;
        for (uint32_t i = 0; i < n; i++) {
                char *p = xasprintf("%s/%s", dir, names[i]);
                int e = file_read_all(p, &texts[i], &lens[i]);
                if (e < 0) {
                        SrcPos pos = {.file = p};
                        diag_add(dl, DIAG_E002, pos, NULL, "cannot read: %s", strerror(-e));
                        texts[i] = xstrdup("");
                        lens[i] = 0;
                }
                free(p);
        }
        r = rules_load_mem(dir, (const char *const *)names, (const char *const *)texts, lens, n, dl, ret);
        for (uint32_t i = 0; i < n; i++) {
                free(names[i]);
                free(texts[i]);
        }
        free(names);
        free(texts);
        free(lens);
        return r;
}

