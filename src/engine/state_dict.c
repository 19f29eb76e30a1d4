/*
 * The dictionary of the changelog's records (ENGINE_DICT_KEY): a record of
 * its own that names the rules, flags, grades, modes, fields, enum values
 * and aggregates that an enterprise's record (format 2) codes as numbers,
 * by id, path or fingerprint, never by an index of one compiled rule set.
 * Here it is built from the engine's rule set (and given to the changelog
 * before the first record that uses it, once), and a dictionary read back
 * is mapped to the rules once: each rule by id, flag, grade and mode by
 * name, slot by path and type, aggregate by fingerprint and rows, so that
 * a record restores into any rule set that has the same rules and what no
 * longer exists is dropped.  The name lookups serve format 1's records
 * too, which name everything in the record itself (state_read.c).
 *
 * Separate from the records' encoder and decoder: it owns the engine's
 * StateDicts (e->dicts) and what is known to be in the changelog.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/engine/state_int.h"

StateDicts *state_dicts(Engine *e)
{
        if (!e->dicts)
                e->dicts = xcalloc(1, sizeof(StateDicts));
        return e->dicts;
}

static void dict_free(StateDict *d)
{
        if (!d)
                return;
        for (uint32_t i = 0; i < d->nrules; i++) {
                free(d->rules[i].snap);
                free(d->rules[i].snap_at);
        }
        for (uint32_t i = 0; i < d->nslots; i++) {
                free(d->slots[i].enums);
                free(d->slots[i].en_map);
        }
        for (uint32_t i = 0; i < d->naggs; i++)
                free(d->aggs[i].rows);
        free(d->rules);
        free(d->flag_to);
        free(d->band_to);
        free(d->mode_to);
        free(d->slots);
        free(d->aggs);
        free(d->raw);
        free(d);
}

void state_dicts_free(Engine *e)
{
        StateDicts *ds = e->dicts;
        if (!ds)
                return;
        for (uint32_t i = 0; i < ds->nd; i++)
                dict_free(ds->d[i]);
        free(ds->d);
        free(ds->known);
        free(ds->cfp);
        free(ds->kfp);
        free(ds->cat);
        free(ds->kat);
        free(ds->nkeys);
        buf_free(&ds->own);
        free(ds);
        e->dicts = NULL;
}

/* A slot named in a record (path and type): its index among the slots the
 * caller keeps, cand[0 .. ncand), -1 none.  Not a lookup in the whole
 * schema: fields of one path and type but other enums have slots of their
 * own (schema.c), and the first of them need not be the one kept. */
int32_t state_slot_in(Engine *e, const char *p, uint32_t n, uint8_t t, const uint32_t *cand, uint32_t ncand)
{
        const Schema *s = &e->rs->schema;
        for (uint32_t i = 0; i < ncand; i++)
                if (s->slot_type[cand[i]] == t && s_eq(p, n, s->slot_path[cand[i]]))
                        return (int32_t)i;
        return -1;
}

int32_t state_rule_by_id(Engine *e, const char *s, uint32_t n)
{
        for (uint32_t i = 0; i < e->rs->nrules; i++)
                if (s_eq(s, n, e->rs->rules[i].id))
                        return (int32_t)i;
        return -1;
}

int32_t state_grade_by_name(Engine *e, const char *s, uint32_t n)
{
        const Grading *g = &e->rs->grading;
        for (uint32_t i = 0; i < g->nbands; i++)
                if (s_eq(s, n, g->bands[i].grade))
                        return (int32_t)i;
        return -1;
}

int32_t state_mode_by_name(Engine *e, const char *s, uint32_t n)
{
        const Grading *g = &e->rs->grading;
        for (uint32_t i = 0; i < g->nmodes; i++)
                if (s_eq(s, n, g->modes[i]))
                        return (int32_t)i;
        return -1;
}

int32_t state_flag_by_name(Engine *e, const char *s, uint32_t n)
{
        const RuleSet *rs = e->rs;
        int32_t flag = -1;
        for (uint32_t k = 0; k < rs->nflags && k < 64; k++) /* a flag is a bit of a uint64_t */
                if (s_eq(s, n, rs->flags[k]))
                        flag = (int32_t)k;
        return flag;
}

/* The names of the engine's rule set: every rule (id, fingerprint, its
 * snapshot's slots), flag, grade, mode, slot of the schema (path, type,
 * enum values) and aggregate (fingerprint, row slots), each numbered by
 * its index in the rule set, so that writing a record codes nothing. */
static void dict_build(Engine *e, Buf *b)
{
        const RuleSet *rs = e->rs;
        const Schema *s = &rs->schema;
        const Grading *g = &rs->grading;
        buf_putc(b, ENGINE_STATE_VERSION);
        buf_putc(b, 'D');
        put_u(b, rs->nrules);
        for (uint32_t i = 0; i < rs->nrules; i++) {
                put_cs(b, rs->rules[i].id);
                put_u(b, rs->rules[i].fingerprint);
                put_u(b, e->plan.ri[i].nsnap);
                for (uint32_t k = 0; k < e->plan.ri[i].nsnap; k++)
                        put_u(b, e->plan.ri[i].snap_slots[k]);
        }
        put_u(b, rs->nflags);
        for (uint32_t i = 0; i < rs->nflags; i++)
                put_cs(b, rs->flags[i]);
        put_u(b, g->nbands);
        for (uint32_t i = 0; i < g->nbands; i++)
                put_cs(b, g->bands[i].grade);
        put_u(b, g->nmodes);
        for (uint32_t i = 0; i < g->nmodes; i++)
                put_cs(b, g->modes[i]);
        put_u(b, s->nslots);
        for (uint32_t i = 0; i < s->nslots; i++) {
                put_cs(b, s->slot_path[i]);
                buf_putc(b, (char)s->slot_type[i]);
                const EnumDef *en = s->slot_enum[i];
                put_u(b, en ? en->nvalues : 0);
                for (uint32_t k = 0; en && k < en->nvalues; k++)
                        put_cs(b, en->values[k]);
        }
        put_u(b, rs->naggs);
        for (uint32_t i = 0; i < rs->naggs; i++) {
                const Aggregate *a = &rs->aggs[i];
                put_u(b, e->plan.agg_fp[i]);
                put_u(b, a->nrow_slots);
                for (uint32_t k = 0; k < a->nrow_slots; k++)
                        put_u(b, a->row_slots[k]);
        }
}

StateDicts *state_dict_own(Engine *e)
{
        StateDicts *ds = state_dicts(e);
        if (!ds->own.len) {
                dict_build(e, &ds->own);
                ds->own_id = hash_fast(ds->own.p, ds->own.len);
        }
        return ds;
}

/* A count of entries that take at least a byte each: past the bytes left,
 * the record is refused before anything is allocated for them. */
static uint32_t get_count(Rd *r)
{
        uint64_t n = get_u(r);
        if (n > (uint64_t)(r->end - r->p)) {
                r->bad = true;
                return 0;
        }
        return (uint32_t)n;
}

static DName get_name(Rd *r)
{
        DName d;
        d.p = get_s(r, &d.n);
        return d;
}

/* A list of names (flags, grades or modes), each mapped to the engine's
 * by by_name (-1 none); its count into *n. */
static int32_t *get_names(Engine *e, Rd *r, uint32_t *n, int32_t (*by_name)(Engine *, const char *, uint32_t))
{
        *n = get_count(r);
        int32_t *to = xcalloc(*n + 1, sizeof(int32_t));
        for (uint32_t i = 0; i < *n && !r->bad; i++) {
                DName nm = get_name(r);
                to[i] = by_name(e, nm.p, nm.n);
        }
        return to;
}

/* A dictionary record read and mapped to the engine's rules: each rule by
 * id, flag, grade and mode by name, slot by path and type, aggregate by
 * fingerprint and rows; NULL if it does not decode. */
static StateDict *dict_parse(Engine *e, const void *val, size_t len, uint64_t id)
{
        const RuleSet *rs = e->rs;
        StateDict *d = xcalloc(1, sizeof(*d));
        d->id = id;
        d->raw = xmalloc(len + 1);
        memcpy(d->raw, val, len);
        Rd r = {(const unsigned char *)d->raw, (const unsigned char *)d->raw + len, false, NULL, 0};
        if (get_b(&r) != ENGINE_STATE_VERSION || get_b(&r) != 'D')
                goto bad;
        d->nrules = get_count(&r);
        d->rules = xcalloc(d->nrules + 1, sizeof(DRule));
        for (uint32_t i = 0; i < d->nrules && !r.bad; i++) {
                DRule *x = &d->rules[i];
                x->id = get_name(&r);
                x->fp = get_u(&r);
                x->nsnap = get_count(&r);
                x->snap = xcalloc(x->nsnap + 1, sizeof(uint32_t));
                x->snap_at = xcalloc(x->nsnap + 1, sizeof(int32_t));
                for (uint32_t k = 0; k < x->nsnap; k++) {
                        uint64_t v = get_u(&r);
                        x->snap[k] = v < UINT32_MAX ? (uint32_t)v : UINT32_MAX;
                }
                x->to = r.bad ? -1 : state_rule_by_id(e, x->id.p, x->id.n);
        }
        d->flag_to = get_names(e, &r, &d->nflags, state_flag_by_name);
        d->band_to = get_names(e, &r, &d->nbands, state_grade_by_name);
        d->mode_to = get_names(e, &r, &d->nmodes, state_mode_by_name);
        d->nslots = get_count(&r);
        d->slots = xcalloc(d->nslots + 1, sizeof(DSlot));
        for (uint32_t i = 0; i < d->nslots && !r.bad; i++) {
                DSlot *x = &d->slots[i];
                x->path = get_name(&r);
                x->type = get_b(&r);
                x->nenum = get_count(&r);
                x->enums = xcalloc(x->nenum + 1, sizeof(DName));
                for (uint32_t k = 0; k < x->nenum; k++)
                        x->enums[k] = get_name(&r);
                x->prof = r.bad ? -1 : state_slot_in(e, x->path.p, x->path.n, x->type, e->plan.prof_slots, e->plan.nprof);
        }
        d->naggs = get_count(&r);
        d->aggs = xcalloc(d->naggs + 1, sizeof(DAgg));
        for (uint32_t i = 0; i < d->naggs && !r.bad; i++) {
                DAgg *x = &d->aggs[i];
                uint64_t fp = get_u(&r);
                x->nrow = get_count(&r);
                x->rows = xcalloc(x->nrow + 1, sizeof(uint32_t));
                x->to = -1;
                for (uint32_t k = 0; k < rs->naggs; k++)
                        if (e->plan.agg_fp[k] == fp)
                                x->to = (int32_t)k;
                const Aggregate *a = x->to >= 0 ? &rs->aggs[x->to] : NULL;
                if (a && (x->nrow != a->nrow_slots || x->nrow > 64))
                        a = NULL;
                for (uint32_t k = 0; k < x->nrow; k++) {
                        uint64_t v = get_u(&r);
                        if (v >= d->nslots) {
                                r.bad = true;
                                break;
                        }
                        x->rows[k] = (uint32_t)v;
                        const DSlot *ds = &d->slots[v];
                        if (a && state_slot_in(e, ds->path.p, ds->path.n, ds->type, &a->row_slots[k], 1) < 0)
                                a = NULL;
                }
                if (!a)
                        x->to = -1;
        }
        if (r.bad || r.p != r.end)
                goto bad;
        /* each rule's snapshot slots among those of the engine's rule */
        for (uint32_t i = 0; i < d->nrules; i++) {
                DRule *x = &d->rules[i];
                for (uint32_t k = 0; k < x->nsnap; k++) {
                        if (x->snap[k] >= d->nslots)
                                goto bad;
                        const DSlot *ds = &d->slots[x->snap[k]];
                        x->snap_at[k] = x->to < 0 ? -1
                                                  : state_slot_in(e, ds->path.p, ds->path.n, ds->type, e->plan.ri[x->to].snap_slots,
                                                            e->plan.ri[x->to].nsnap);
                }
        }
        return d;
bad:
        dict_free(d);
        return NULL;
}

StateDict *state_dict_find(Engine *e, uint64_t id)
{
        StateDicts *ds = state_dicts(e);
        for (uint32_t i = 0; i < ds->nd; i++)
                if (ds->d[i]->id == id)
                        return ds->d[i];
        /* its own, for the undo log */
        state_dict_own(e);
        if (id != ds->own_id)
                return NULL;
        StateDict *d = dict_parse(e, ds->own.p, ds->own.len, id);
        if (!d)
                abort(); /* what dict_build writes decodes */
        ds->d = xrealloc(ds->d, (ds->nd + 1) * sizeof(*ds->d));
        ds->d[ds->nd++] = d;
        return d;
}

static void dict_known(StateDicts *ds, uint64_t id)
{
        for (uint32_t i = 0; i < ds->nknown; i++)
                if (ds->known[i] == id)
                        return;
        ds->known = xrealloc(ds->known, (ds->nknown + 1) * sizeof(uint64_t));
        ds->known[ds->nknown++] = id;
}

static bool dict_is_known(const StateDicts *ds, uint64_t id)
{
        for (uint32_t i = 0; i < ds->nknown; i++)
                if (ds->known[i] == id)
                        return true;
        return false;
}

/* ENGINE_DICT_KEY and the id in 16 hex digits. */
static size_t dict_key(uint64_t id, char key[48])
{
        return (size_t)snprintf(key, 48, "%s%016llx", ENGINE_DICT_KEY, (unsigned long long)id);
}

/* A dictionary record restored: kept (a second copy of one already read
 * changes nothing), and known to be in the changelog, so that the engine
 * does not write it again (a later copy of its key would let compaction
 * drop the earlier one, which records before the later one need). */
int state_dict_restore(Engine *e, const char *key, size_t klen, const void *val, size_t vlen)
{
        uint64_t id = hash_fast(val, vlen);
        char want[48];
        if (klen != dict_key(id, want) || memcmp(key, want, klen) != 0)
                return -EINVAL; /* not the bytes its key names */
        StateDicts *ds = state_dicts(e);
        for (uint32_t i = 0; i < ds->nd; i++)
                if (ds->d[i]->id == id) {
                        dict_known(ds, id);
                        return 0;
                }
        StateDict *d = dict_parse(e, val, vlen, id);
        if (!d)
                return -EINVAL;
        ds->d = xrealloc(ds->d, (ds->nd + 1) * sizeof(*ds->d));
        ds->d[ds->nd++] = d;
        dict_known(ds, id);
        return 0;
}

/* The engine's dictionary to fn before the first record that uses it, if
 * the changelog does not have it yet. */
void state_dict_changes(Engine *e, EngineRecordFn fn, void *ud)
{
        StateDicts *ds = state_dict_own(e);
        if (ds->pending || dict_is_known(ds, ds->own_id))
                return;
        char key[48];
        size_t klen = dict_key(ds->own_id, key);
        fn(ud, key, klen, ds->own.p, ds->own.len);
        ds->pending = true;
}

void state_dict_handover(Engine *e, Engine *n)
{
        StateDicts *ds = state_dict_own(e), *nd = state_dicts(n);
        StateDict *d = dict_parse(n, ds->own.p, ds->own.len, ds->own_id);
        if (!d)
                abort(); /* what dict_build writes decodes */
        nd->d = xrealloc(nd->d, (nd->nd + 1) * sizeof(*nd->d));
        nd->d[nd->nd++] = d;
        for (uint32_t i = 0; i < ds->nknown; i++)
                dict_known(nd, ds->known[i]);
}

/* The open batch committed: the dictionary it gave is in the changelog. */
void state_dict_committed(Engine *e)
{
        StateDicts *ds = e->dicts;
        if (ds && ds->pending) {
                dict_known(ds, ds->own_id);
                ds->pending = false;
        }
}

/* The open batch aborted: the dictionary it gave is not in the changelog. */
void state_dict_aborted(Engine *e)
{
        if (e->dicts)
                e->dicts->pending = false;
}
