/*
 * Engine state as records: the changelog value of an enterprise, the
 * dictionary its names are coded by, the partition record (watermark, held
 * events, resume offset), and the undo log that lets a batch be aborted
 * (include/riskd/engine.h).  docs/state.md describes the formats.
 *
 * An enterprise's record (ENGINE_STATE_VERSION 2): a version byte, the
 * dictionary's id (8 bytes), a base time, then fields in a fixed order.
 * Integers are LEB128 varints (signed ones zigzag); times are varints
 * relative to the base (0: none); numbers a varint of their decimal digits
 * when that gives them back exactly, else 8 little-endian bytes; strings a
 * length and the bytes, an event id that is a UUID 16 bytes.  Rules,
 * flags, grades, modes, fields, enum values and aggregates are numbers in
 * the dictionary, a record of its own (ENGINE_DICT_KEY) that names them by
 * id, path or fingerprint, never by an index of one compiled rule set: a
 * restore maps a dictionary to the rules once, so a record restores into
 * any rule set that has the same rules; what no longer exists is dropped.
 *
 * Records of version 1 name everything in the record itself (the same
 * fields, in the same order); they are read as they always were.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/engine/engine.h"

/* ---- writing ---- */

static void put_u(Buf *b, uint64_t v)
{
        char t[10];
        int n = 0;
        do {
                t[n++] = (char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
                v >>= 7;
        } while (v);
        buf_put(b, t, (size_t)n);
}

static uint64_t zigzag(int64_t v)
{
        return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static void put_i(Buf *b, int64_t v)
{
        put_u(b, zigzag(v));
}

static void put_8(Buf *b, uint64_t u)
{
        char t[8];
        for (int i = 0; i < 8; i++)
                t[i] = (char)(u >> (8 * i));
        buf_put(b, t, 8);
}

static void put_s(Buf *b, const char *s, size_t n)
{
        put_u(b, n);
        buf_put(b, s, n);
}

static void put_cs(Buf *b, const char *s)
{
        put_s(b, s ? s : "", s ? strlen(s) : 0);
}

/* A time against the record's base: 0 none (TIME_UNSET), 1 the time
 * itself follows (its distance from the base does not fit), else 2 plus
 * the distance zigzagged, shifted left by one, its low bit set when the
 * distance is in whole seconds (then counted in seconds). */
static void put_t(Buf *b, int64_t t, int64_t base)
{
        int64_t d;
        if (t == TIME_UNSET) {
                put_u(b, 0);
        } else if (!__builtin_sub_overflow(t, base, &d) && d % 1000 == 0) {
                put_u(b, (zigzag(d / 1000) << 1 | 1) + 2); /* |d / 1000| < 2^54: fits */
        } else if (!__builtin_sub_overflow(t, base, &d) && zigzag(d) < (UINT64_MAX >> 1) - 2) {
                put_u(b, (zigzag(d) << 1) + 2);
        } else {
                put_u(b, 1);
                put_i(b, t);
        }
}

static const double pow10_tab[3] = {1, 10, 100};

/* A number: the scores, points and readings the engine keeps are mostly
 * integers or have a digit or two after the point.  m * 4 + k for the
 * number m / 10^k (k < 3) when that division gives it back bit for bit
 * (so -0, NaN and the rest take the other way), else 3 and the 8 bytes. */
static void put_d(Buf *b, double d)
{
        for (int k = 0; k < 3 && isfinite(d); k++) {
                double m = d * pow10_tab[k];
                if (!(fabs(m) < 9007199254740992.0)) /* 2^53 */
                        break;
                double mr = nearbyint(m);
                double back = mr / pow10_tab[k];
                if (memcmp(&back, &d, sizeof(d)) == 0) {
                        put_u(b, zigzag((int64_t)mr) << 2 | (uint64_t)k);
                        return;
                }
        }
        uint64_t u;
        memcpy(&u, &d, 8);
        put_u(b, 3);
        put_8(b, u);
}

/* An event id: 0 and 16 bytes for a canonical lowercase UUID, else its
 * length plus one and the bytes. */
static void put_id(Buf *b, const char *s, size_t n)
{
        uint8_t u[16];
        if (uuid_pack(s, (uint32_t)n, u)) {
                put_u(b, 0);
                buf_put(b, (const char *)u, 16);
                return;
        }
        put_u(b, n + 1);
        buf_put(b, s, n);
}

/* A value of slot: enums by their index in the dictionary's list of the
 * slot's values (by name in the dictionary: reordered enums restore right). */
static void put_v(Buf *b, const Value *v, int64_t base)
{
        buf_putc(b, (char)v->tag);
        switch (v->tag) {
        case VT_BOOL: buf_putc(b, v->b ? 1 : 0); break;
        case VT_NUM: put_d(b, v->n); break;
        case VT_STR: put_s(b, v->s.p, v->s.len); break;
        case VT_ENUM: put_u(b, (uint64_t)(int64_t)v->e + 1); break; /* -1 (unknown): 0 */
        case VT_TIME: put_t(b, v->ms, base); break;
        case VT_DUR: put_i(b, v->ms); break;
        default: break;
        }
}

/* A snapshot's string value that is its key (the per: field), not
 * written twice: a tag no value has. */
#define SNAP_IS_KEY 0x80

/* ---- reading ---- */

/* A name in a dictionary record (StateDict.raw). */
typedef struct DName {
        const char *p;
        uint32_t n;
} DName;

typedef struct DRule {
        DName id;
        uint64_t fp;
        int32_t to;             /* the engine's rule of that id, -1 none */
        uint32_t nsnap;
        uint32_t *snap;         /* its snapshot's slots (the dictionary's) */
        int32_t *snap_at;       /* each one's index among e->plan.ri[to].snap_slots, -1 none */
} DRule;

typedef struct DSlot {
        DName path;
        uint8_t type;
        uint32_t nenum;
        DName *enums;
        int32_t prof;           /* its index among e->plan.prof_slots, -1 none */
        /* its enum values in the enum of the slot they were read into last
         * (en_for), by name: a slot's values mapped once, not per value */
        const EnumDef *en_for;
        int32_t *en_map;
} DSlot;

typedef struct DAgg {
        int32_t to;             /* the engine's aggregate (same fingerprint and rows), -1 none */
        uint32_t nrow;
        uint32_t *rows;         /* the dictionary's slots */
} DAgg;

/* A dictionary record, mapped to the engine's rules. */
typedef struct StateDict {
        uint64_t id;
        char *raw;
        DRule *rules;
        uint32_t nrules;
        int32_t *flag_to, *band_to, *mode_to;
        uint32_t nflags, nbands, nmodes;
        DSlot *slots;
        uint32_t nslots;
        DAgg *aggs;
        uint32_t naggs;
} StateDict;

typedef struct StateDicts {
        Buf own;                /* this engine's dictionary record, built on first use */
        uint64_t own_id;
        StateDict **d;          /* those read (restored, or its own for the undo log) */
        uint32_t nd;
        uint64_t *known;        /* ids of the dictionaries in the changelog */
        uint32_t nknown;
        bool pending;           /* its own given by the open batch */
        /* ent_read's arrays, kept from record to record (a restore reads
         * millions): per contribution and key state read, its fingerprint
         * and the record index of each kept; key states kept per rule */
        uint64_t *cfp, *kfp;
        uint32_t *cat, *kat;
        size_t ccap, kcap;
        uint32_t *nkeys;
        uint32_t nkcap;
} StateDicts;

typedef struct Rd {
        const unsigned char *p, *end;
        bool bad;
        StateDict *d;           /* format 2: the record's dictionary; NULL format 1 */
        int64_t base;
        Str key;                /* the key of the key state read, for SNAP_IS_KEY; {NULL, 0} none */
} Rd;

static uint64_t get_u(Rd *r)
{
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
                if (r->p >= r->end) {
                        r->bad = true;
                        return 0;
                }
                unsigned char c = *r->p++;
                v |= (uint64_t)(c & 0x7f) << shift;
                if (!(c & 0x80))
                        return v;
        }
        r->bad = true;
        return 0;
}

static int64_t unzigzag(uint64_t u)
{
        return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

static int64_t get_i(Rd *r)
{
        return unzigzag(get_u(r));
}

static uint64_t get_8(Rd *r)
{
        if (r->end - r->p < 8) {
                r->bad = true;
                return 0;
        }
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
                u |= (uint64_t)r->p[i] << (8 * i);
        r->p += 8;
        return u;
}

static double get_f(Rd *r)
{
        uint64_t u = get_8(r);
        double d;
        memcpy(&d, &u, 8);
        return d;
}

/* A number (put_d; format 1: the 8 bytes). */
static double get_d(Rd *r)
{
        if (!r->d)
                return get_f(r);
        uint64_t c = get_u(r);
        if ((c & 3) == 3)
                return c == 3 ? get_f(r) : (r->bad = true, 0);
        int64_t m = unzigzag(c >> 2);
        if (m > 9007199254740992LL || m < -9007199254740992LL) {
                r->bad = true;
                return 0;
        }
        return (double)m / pow10_tab[c & 3];
}

/* A double that must be a number: NaN or an infinity refuses the record
 * (no state the engine writes holds one: scores, points and event numbers
 * are finite). */
static double get_fin(Rd *r)
{
        double d = get_d(r);
        if (!isfinite(d)) {
                r->bad = true;
                return 0;
        }
        return d;
}

/* A time (put_t; format 1: the time itself). */
static int64_t get_t(Rd *r)
{
        if (!r->d)
                return get_i(r);
        uint64_t c = get_u(r);
        if (c == 0)
                return TIME_UNSET;
        if (c == 1)
                return get_i(r);
        c -= 2;
        uint64_t d = (uint64_t)unzigzag(c >> 1) * (c & 1 ? 1000 : 1);
        return (int64_t)((uint64_t)r->base + d);
}

static const char *get_s(Rd *r, uint32_t *len)
{
        uint64_t n = get_u(r);
        if (r->bad || n > (uint64_t)(r->end - r->p)) {
                r->bad = true;
                *len = 0;
                return "";
        }
        const char *s = (const char *)r->p;
        r->p += n;
        *len = (uint32_t)n;
        return s;
}

/* An event id (put_id; format 1: a string); a UUID's text into buf. */
static const char *get_id(Rd *r, uint32_t *len, char buf[40])
{
        if (!r->d)
                return get_s(r, len);
        uint64_t n = get_u(r);
        if (n == 0) {
                if (r->end - r->p < 16) {
                        r->bad = true;
                        *len = 0;
                        return "";
                }
                uuid_text(r->p, buf);
                r->p += 16;
                *len = 36;
                return buf;
        }
        if (r->bad || n - 1 > (uint64_t)(r->end - r->p)) {
                r->bad = true;
                *len = 0;
                return "";
        }
        const char *s = (const char *)r->p;
        r->p += n - 1;
        *len = (uint32_t)(n - 1);
        return s;
}

static uint8_t get_b(Rd *r)
{
        if (r->p >= r->end) {
                r->bad = true;
                return 0;
        }
        return *r->p++;
}

static bool s_eq(const char *s, uint32_t n, const char *z)
{
        return z && strlen(z) == n && memcmp(s, z, n) == 0;
}

/* A slot named in a record (path and type): its index among the slots the
 * caller keeps, cand[0 .. ncand), -1 none.  Not a lookup in the whole
 * schema: fields of one path and type but other enums have slots of their
 * own (schema.c), and the first of them need not be the one kept. */
static int32_t slot_in(Engine *e, const char *p, uint32_t n, uint8_t t, const uint32_t *cand, uint32_t ncand)
{
        const Schema *s = &e->rs->schema;
        for (uint32_t i = 0; i < ncand; i++)
                if (s->slot_type[cand[i]] == t && s_eq(p, n, s->slot_path[cand[i]]))
                        return (int32_t)i;
        return -1;
}

static int32_t get_slot_in(Engine *e, Rd *r, const uint32_t *cand, uint32_t ncand)
{
        uint32_t n;
        const char *p = get_s(r, &n);
        uint8_t t = get_b(r);
        return slot_in(e, p, n, t, cand, ncand);
}

/* A dictionary slot (format 2), its index checked; -1 out of range. */
static int32_t get_dslot(Rd *r)
{
        uint64_t i = get_u(r);
        if (i >= r->d->nslots) {
                r->bad = true;
                return -1;
        }
        return (int32_t)i;
}

/* The value tag of a field type (FieldType and ValueTag list the types in
 * one order, VT_NULL first). */
static uint8_t ft_tag(FieldType t)
{
        return (uint8_t)(t + 1);
}

/* A value into state (strings interned, or pointing into the record if
 * !intern); slot < 0: read and dropped.  A
 * value of another type than its slot's, or a number that is not finite,
 * refuses the record: the rules read a slot's value as of its type.
 * dslot: the dictionary's slot the value is of (format 2). */
static Value get_v_as(Engine *e, Rd *r, int32_t dslot, int32_t slot, bool intern)
{
        Value v = {.tag = get_b(r)};
        uint32_t n = 0;
        const char *s = "";
        if (v.tag == SNAP_IS_KEY && r->d && r->key.p) {
                s = r->key.p;
                n = r->key.len;
                v.tag = VT_STR;
        } else if (v.tag == VT_STR) {
                s = get_s(r, &n);
        }
        if (slot >= 0 && v.tag != VT_NULL && v.tag != ft_tag(e->rs->schema.slot_type[slot])) {
                r->bad = true;
                return value_null();
        }
        switch (v.tag) {
        case VT_NULL: break;
        case VT_BOOL: v.b = get_b(r) != 0; break;
        case VT_NUM: v.n = get_fin(r); break;
        case VT_STR:
                if (slot < 0 || r->bad)
                        return value_null();
                return intern ? intern_value(&e->in, value_str(s, n)) : value_str(s, n);
        case VT_ENUM: {
                const EnumDef *en = slot >= 0 ? e->rs->schema.slot_enum[slot] : NULL;
                if (r->d) {
                        uint64_t k = get_u(r);
                        DSlot *ds = dslot >= 0 ? &r->d->slots[dslot] : NULL;
                        if (!ds || k > ds->nenum) {
                                r->bad = true;
                                break;
                        }
                        v.e = -1;
                        if (!k || !en)
                                break;
                        if (ds->en_for != en) {
                                ds->en_map = xrealloc(ds->en_map, (ds->nenum + 1) * sizeof(int32_t));
                                for (uint32_t q = 0; q < ds->nenum; q++) {
                                        ds->en_map[q] = -1;
                                        for (uint32_t i = 0; i < en->nvalues; i++)
                                                if (s_eq(ds->enums[q].p, ds->enums[q].n, en->values[i]))
                                                        ds->en_map[q] = (int32_t)i;
                                }
                                ds->en_for = en;
                        }
                        v.e = ds->en_map[k - 1];
                        break;
                }
                s = get_s(r, &n);
                v.e = -1;
                for (uint32_t i = 0; en && n && i < en->nvalues; i++)
                        if (s_eq(s, n, en->values[i]))
                                v.e = (int32_t)i;
                break;
        }
        case VT_TIME: v.ms = get_t(r); break;
        case VT_DUR: v.ms = get_i(r); break;
        default: r->bad = true; v.tag = VT_NULL; break;
        }
        return slot >= 0 ? v : value_null();
}

static Value get_v(Engine *e, Rd *r, int32_t dslot, int32_t slot)
{
        return get_v_as(e, r, dslot, slot, true);
}

static int32_t rule_by_id(Engine *e, const char *s, uint32_t n)
{
        for (uint32_t i = 0; i < e->rs->nrules; i++)
                if (s_eq(s, n, e->rs->rules[i].id))
                        return (int32_t)i;
        return -1;
}

static int32_t grade_by_name(const Grading *g, const char *s, uint32_t n)
{
        for (uint32_t i = 0; i < g->nbands; i++)
                if (s_eq(s, n, g->bands[i].grade))
                        return (int32_t)i;
        return -1;
}

static int32_t mode_by_name(const Grading *g, const char *s, uint32_t n)
{
        for (uint32_t i = 0; i < g->nmodes; i++)
                if (s_eq(s, n, g->modes[i]))
                        return (int32_t)i;
        return -1;
}

static int32_t flag_by_name(const RuleSet *rs, const char *s, uint32_t n)
{
        int32_t flag = -1;
        for (uint32_t k = 0; k < rs->nflags && k < 64; k++) /* a flag is a bit of a uint64_t */
                if (s_eq(s, n, rs->flags[k]))
                        flag = (int32_t)k;
        return flag;
}

/* A rule: its index in the engine's rules, -1 none (removed); fp, if not
 * NULL, its fingerprint as the dictionary has it (format 2). */
static int32_t get_rule(Engine *e, Rd *r, uint64_t *fp)
{
        if (!r->d) {
                uint32_t n;
                const char *s = get_s(r, &n);
                return rule_by_id(e, s, n);
        }
        uint64_t i = get_u(r);
        if (i >= r->d->nrules) {
                r->bad = true;
                return -1;
        }
        if (fp)
                *fp = r->d->rules[i].fp;
        return r->d->rules[i].to;
}

/* A rule, a grade, a mode or a flag that may be none: *present whether the
 * record names one (format 1: a name not empty; 2: an index plus one). */
static int32_t get_opt(Engine *e, Rd *r, const int32_t *to, uint32_t nto, int32_t (*by_name)(Engine *, const char *, uint32_t),
                       bool *present)
{
        if (!r->d) {
                uint32_t n;
                const char *s = get_s(r, &n);
                *present = n != 0;
                return n ? by_name(e, s, n) : -1;
        }
        uint64_t i = get_u(r);
        *present = i != 0;
        if (i > nto) {
                r->bad = true;
                return -1;
        }
        return i ? to[i - 1] : -1;
}

static int32_t grade_of(Engine *e, const char *s, uint32_t n)
{
        return grade_by_name(&e->rs->grading, s, n);
}

static int32_t mode_of(Engine *e, const char *s, uint32_t n)
{
        return mode_by_name(&e->rs->grading, s, n);
}

static int32_t flag_of(Engine *e, const char *s, uint32_t n)
{
        return flag_by_name(e->rs, s, n);
}

static int32_t get_grade(Engine *e, Rd *r, bool *present)
{
        return get_opt(e, r, r->d ? r->d->band_to : NULL, r->d ? r->d->nbands : 0, grade_of, present);
}

static int32_t get_mode(Engine *e, Rd *r, bool *present)
{
        return get_opt(e, r, r->d ? r->d->mode_to : NULL, r->d ? r->d->nmodes : 0, mode_of, present);
}

static int32_t get_flag(Engine *e, Rd *r)
{
        bool present;
        if (!r->d)
                return get_opt(e, r, NULL, 0, flag_of, &present);
        uint64_t i = get_u(r); /* format 2: an index, never none */
        if (i >= r->d->nflags) {
                r->bad = true;
                return -1;
        }
        return r->d->flag_to[i];
}

/* A rule that may be none (the official state's references). */
static int32_t get_rule_opt(Engine *e, Rd *r)
{
        if (!r->d) {
                uint32_t n;
                const char *s = get_s(r, &n);
                return n ? rule_by_id(e, s, n) : -1;
        }
        uint64_t i = get_u(r);
        if (i > r->d->nrules) {
                r->bad = true;
                return -1;
        }
        return i ? r->d->rules[i - 1].to : -1;
}

/* ---- the dictionary ---- */

static StateDicts *dicts(Engine *e)
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

static StateDicts *dict_own(Engine *e)
{
        StateDicts *ds = dicts(e);
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
                x->to = r.bad ? -1 : rule_by_id(e, x->id.p, x->id.n);
        }
        d->nflags = get_count(&r);
        d->flag_to = xcalloc(d->nflags + 1, sizeof(int32_t));
        for (uint32_t i = 0; i < d->nflags && !r.bad; i++) {
                DName n = get_name(&r);
                d->flag_to[i] = flag_by_name(rs, n.p, n.n);
        }
        d->nbands = get_count(&r);
        d->band_to = xcalloc(d->nbands + 1, sizeof(int32_t));
        for (uint32_t i = 0; i < d->nbands && !r.bad; i++) {
                DName n = get_name(&r);
                d->band_to[i] = grade_by_name(&rs->grading, n.p, n.n);
        }
        d->nmodes = get_count(&r);
        d->mode_to = xcalloc(d->nmodes + 1, sizeof(int32_t));
        for (uint32_t i = 0; i < d->nmodes && !r.bad; i++) {
                DName n = get_name(&r);
                d->mode_to[i] = mode_by_name(&rs->grading, n.p, n.n);
        }
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
                x->prof = r.bad ? -1 : slot_in(e, x->path.p, x->path.n, x->type, e->plan.prof_slots, e->plan.nprof);
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
                        if (a && slot_in(e, ds->path.p, ds->path.n, ds->type, &a->row_slots[k], 1) < 0)
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
                                                  : slot_in(e, ds->path.p, ds->path.n, ds->type, e->plan.ri[x->to].snap_slots,
                                                            e->plan.ri[x->to].nsnap);
                }
        }
        return d;
bad:
        dict_free(d);
        return NULL;
}

static StateDict *dict_find(Engine *e, uint64_t id)
{
        StateDicts *ds = dicts(e);
        for (uint32_t i = 0; i < ds->nd; i++)
                if (ds->d[i]->id == id)
                        return ds->d[i];
        /* its own, for the undo log */
        dict_own(e);
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
static int dict_restore(Engine *e, const char *key, size_t klen, const void *val, size_t vlen)
{
        uint64_t id = hash_fast(val, vlen);
        char want[48];
        if (klen != dict_key(id, want) || memcmp(key, want, klen) != 0)
                return -EINVAL; /* not the bytes its key names */
        StateDicts *ds = dicts(e);
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
static void dict_changes(Engine *e, EngineRecordFn fn, void *ud)
{
        StateDicts *ds = dict_own(e);
        if (ds->pending || dict_is_known(ds, ds->own_id))
                return;
        char key[48];
        size_t klen = dict_key(ds->own_id, key);
        fn(ud, key, klen, ds->own.p, ds->own.len);
        ds->pending = true;
}

void state_dict_handover(Engine *e, Engine *n)
{
        StateDicts *ds = dict_own(e), *nd = dicts(n);
        StateDict *d = dict_parse(n, ds->own.p, ds->own.len, ds->own_id);
        if (!d)
                abort(); /* what dict_build writes decodes */
        nd->d = xrealloc(nd->d, (nd->nd + 1) * sizeof(*nd->d));
        nd->d[nd->nd++] = d;
        for (uint32_t i = 0; i < ds->nknown; i++)
                dict_known(nd, ds->known[i]);
}

/* The open batch committed: the dictionary it gave is in the changelog. */
static void state_dict_committed(Engine *e)
{
        StateDicts *ds = e->dicts;
        if (ds && ds->pending) {
                dict_known(ds, ds->own_id);
                ds->pending = false;
        }
}

/* The open batch aborted: the dictionary it gave is not in the changelog. */
static void state_dict_aborted(Engine *e)
{
        if (e->dicts)
                e->dicts->pending = false;
}

/* ---- an enterprise ---- */

static void ent_write(Engine *e, const Ent *x, Buf *b)
{
        const RuleSet *rs = e->rs;
        const Grading *g = &rs->grading;
        if (x->compact) { /* it holds its record (compact.c) */
                compact_record(e, x, b);
                return;
        }
        StateDicts *ds = dict_own(e);
        buf_putc(b, ENGINE_STATE_VERSION);
        put_8(b, ds->own_id);
        int64_t base = x->last_time == TIME_UNSET ? 0 : x->last_time;
        put_i(b, base);
        put_d(b, ent_static_score(e, x)); /* derived from the bits; kept for the record format */
        uint32_t nst = 0;
        for (uint32_t k = 0; k < e->plan.nstatic; k++)
                nst += e->plan.nstatic && (ent_static(e, x)[k / 64] >> (k % 64) & 1);
        put_u(b, nst);
        for (uint32_t k = 0; k < e->plan.nstatic; k++)
                if (e->plan.nstatic && (ent_static(e, x)[k / 64] >> (k % 64) & 1))
                        put_u(b, e->plan.static_rules[k]);
        put_u(b, (uint64_t)(x->held + 1));
        put_u(b, (uint64_t)(x->grade + 1));
        put_u(b, (uint64_t)(x->mode + 1));
        put_d(b, x->per_year);
        put_t(b, x->r->below_since, base);
        put_t(b, x->last_time, base);
        /* the profile values that are not null, each with its slot */
        uint32_t np = 0;
        for (uint32_t i = 0; i < e->plan.nprof; i++)
                np += ent_prof_get(e, x, i).tag != VT_NULL;
        put_u(b, np);
        for (uint32_t i = 0; i < e->plan.nprof; i++) {
                Value v = ent_prof_get(e, x, i);
                if (v.tag == VT_NULL)
                        continue;
                put_u(b, e->plan.prof_slots[i]);
                put_v(b, &v, base);
        }
        put_u(b, x->r->nc);
        for (uint32_t i = 0; i < x->r->nc; i++) {
                const Contrib *c = &x->r->c[i];
                put_u(b, c->rule);
                put_d(b, c->points);
                put_t(b, c->since, base);
                put_t(b, c->expires, base);
                put_t(b, c->rectify, base);
                put_id(b, c->event_id->s, c->event_id->len);
        }
        put_u(b, x->r->nf);
        for (uint32_t i = 0; i < x->r->nf; i++) {
                put_u(b, x->r->f[i].flag);
                buf_putc(b, (char)x->r->f[i].from_profile);
                put_t(b, x->r->f[i].until, base);
        }
        put_u(b, x->nks);
        for (uint32_t i = 0; i < x->nks; i++) {
                const KeyState *ks = &x->ks[i];
                const RuleInfo *ri = &e->plan.ri[ks->rule];
                put_u(b, ks->rule);
                buf_putc(b, (char)ks->keyed);
                if (ks->keyed) {
                        Str key = ks_key(ks);
                        put_s(b, key.p, key.len);
                }
                buf_putc(b, (char)ks->fired);
                put_t(b, rs->rules[ks->rule].timer_driven ? TIME_UNSET : ks->at, base); /* since */
                put_t(b, ks->last_fire, base);
                put_t(b, ks_due(e, ks), base);
                /* the snapshot's values in the order of the rule's slots (the dictionary's) */
                put_u(b, ks_has_snap(ks) ? ri->nsnap : 0);
                ent_snap_values(ks, ri, e->snapvals);
                for (uint32_t k = 0; ks_has_snap(ks) && k < ri->nsnap; k++) {
                        const Value *v = &e->snapvals[k];
                        Str key = ks_key(ks);
                        if (ks->keyed && v->tag == VT_STR && str_order(v->s, key) == 0)
                                buf_putc(b, (char)SNAP_IS_KEY); /* the per: field: the key again */
                        else
                                put_v(b, v, base);
                }
                size_t idlen;
                char idbuf[40];
                const char *id = ent_snap_id(ks, idbuf, &idlen);
                put_id(b, id, idlen);
        }
        put_u(b, x->nw);
        for (uint32_t i = 0; i < x->nw; i++) {
                const Win *w = &x->w[i];
                const Aggregate *a = &rs->aggs[w->agg];
                put_u(b, w->agg);
                put_u(b, w->n);
                for (uint32_t r = 0; r < w->n; r++) {
                        uint32_t at = (w->head + r) % w->cap;
                        put_t(b, w->t[at], base);
                        for (uint32_t k = 0; k < a->nrow_slots; k++)
                                put_v(b, &win_v(w)[(size_t)at * a->nrow_slots + k], base);
                }
        }
        put_u(b, x->nrecent);
        for (uint32_t i = 0; i < x->nrecent; i++) {
                /* oldest first */
                uint32_t at = (x->recent_pos + e->cfg.recent_ids - x->nrecent + i) % e->cfg.recent_ids;
                put_8(b, ent_recent(e, x)[at]);
        }
        /* the official grade's state (grading.yaml official:) */
        const OffState *o = x->r->o;
        if (o && g->official.declared) {
                buf_putc(b, 'O');
                put_t(b, o->cycle, base);
                put_u(b, (uint64_t)(o->assessed + 1));
                put_i(b, o->carry);
                put_i(b, o->raise);
                put_i(b, o->lower);
                put_u(b, (uint64_t)o->provisional | (uint64_t)o->assess_due << 1);
                put_t(b, o->dyn_time, base);
                put_d(b, o->dyn);
                put_u(b, (uint64_t)(o->dyn_rule + 1));
                put_u(b, (uint64_t)(o->basis + 1));
                put_t(b, o->basis_time, base);
        }
}

/* The official state at the end of the record, if it has one and the
 * rules declare the official model; a rule named that no longer exists
 * leaves its reference empty (the evaluation and the steps stay: they are
 * facts of the cycle, not a rule's state). */
static void off_read(Engine *e, Ent *x, Rd *r)
{
        const Grading *g = &e->rs->grading;
        if (r->bad || r->p >= r->end || *r->p != 'O')
                return;
        r->p++;
        OffState o = {.assessed = -1, .basis = -1, .dyn_rule = -1, .cycle_end = TIME_UNSET};
        bool present;
        o.cycle = get_t(r);
        o.assessed = (int16_t)get_grade(e, r, &present);
        /* steps are counts within a cycle (8 bits): outside, the record
         * is refused; a band they reach is clamped to the grading's */
        int64_t carry = get_i(r), raise = get_i(r), lower = get_i(r);
        if (carry < INT8_MIN || carry > INT8_MAX || raise < 0 || raise > INT8_MAX || lower < 0 || lower > INT8_MAX)
                r->bad = true;
        o.carry = (int8_t)(r->bad ? 0 : carry);
        o.raise = (int8_t)(r->bad ? 0 : raise);
        o.lower = (int8_t)(r->bad ? 0 : lower);
        uint64_t bits = get_u(r);
        if (bits > 3)
                r->bad = true;
        o.provisional = bits & 1;
        o.assess_due = (bits >> 1) & 1;
        o.dyn_time = get_t(r);
        o.dyn = get_fin(r);
        o.dyn_rule = (int16_t)get_rule_opt(e, r);
        o.basis = (int16_t)get_rule_opt(e, r);
        o.basis_time = get_t(r);
        if (r->bad || !g->official.declared)
                return;
        /* a grade the bands no longer have: assess again */
        if (o.assessed < 0)
                o.assess_due = 1;
        *ent_off(e, x) = o;
}

/* The state of rules whose fingerprint as written (cfp of the
 * contributions, kfp of the key states, by index in the record; cat[i],
 * kat[i]: the record index of the i-th kept) differs from the rule's now: dropped, as a reload
 * drops a changed rule's.  Returns whether points were dropped. */
static bool drop_changed(Engine *e, Ent *x, const uint64_t *cfp, const uint32_t *cat, const uint64_t *kfp,
                         const uint32_t *kat)
{
        bool points = false;
        const RuleSet *rs = e->rs;
        if (x->r != &rare_none) {
                EntRare *rr = ent_rare(e, x);
                uint32_t k = 0;
                for (uint32_t i = 0; i < rr->nc; i++) {
                        if (cfp[cat[i]] != rs->rules[rr->c[i].rule].fingerprint) {
                                intern_put(&e->in, rr->c[i].event_id);
                                e->reload_dropped++;
                                /* a record holds no expired contribution
                                 * (each is pruned when the watermark
                                 * passes its expiry): these points counted */
                                points |= rr->c[i].points != 0;
                                continue;
                        }
                        rr->c[k++] = rr->c[i];
                }
                rr->nc = (uint16_t)k;
        }
        uint32_t k = 0;
        for (uint32_t i = 0; i < x->nks; i++) {
                if (kfp[kat[i]] != rs->rules[x->ks[i].rule].fingerprint) {
                        ent_ks_free(e, &x->ks[i]);
                        e->reload_dropped++;
                        continue;
                }
                x->ks[k++] = x->ks[i];
        }
        x->nks = (uint16_t)k;
        return points;
}

/* Format 1: the fingerprints after the recent ids ('F'), if the record has
 * them (one written before they were keeps its state by id). */
static bool fp_read(Rd *r, uint64_t *cfp, uint64_t nc, uint64_t *kfp, uint64_t nks)
{
        if (r->bad || r->p >= r->end || *r->p != 'F')
                return false;
        r->p++;
        for (uint64_t i = 0; i < nc; i++)
                cfp[i] = get_u(r);
        for (uint64_t i = 0; i < nks; i++)
                kfp[i] = get_u(r);
        return !r->bad;
}

/* The header: format 1 its version byte; format 2 the version, the
 * dictionary (known, else the record is refused) and the base time. */
static void ent_head(Engine *e, Rd *r)
{
        uint8_t v = get_b(r);
        if (v == ENGINE_STATE_VERSION_1)
                return;
        if (v != ENGINE_STATE_VERSION) {
                r->bad = true;
                return;
        }
        uint64_t id = get_8(r);
        r->d = r->bad ? NULL : dict_find(e, id);
        if (!r->d) {
                r->bad = true;
                return;
        }
        r->base = get_i(r);
}

static void ent_read(Engine *e, Ent *x, Rd *r)
{
        const RuleSet *rs = e->rs;
        uint32_t n;
        const char *s;
        char idbuf[40];
        ent_head(e, r);
        if (r->bad)
                return;
        const StateDict *d = r->d;
        uint32_t dropped = e->reload_dropped;
        /* the static score (ent_static_score, derived from the bits): under
         * other rules, a static rule's new score shows against it */
        double static_before = get_fin(r);
        x->grade_clean = 0;
        /* a static rule's decision is kept under its id even when the rule
         * changed (it is decided again at the next profile update: the
         * fields it read are not all kept) */
        uint64_t nst = get_u(r);
        for (uint64_t i = 0; i < nst && !r->bad; i++) {
                int32_t rule = get_rule(e, r, NULL);
                bool found = false;
                for (uint32_t k = 0; rule >= 0 && k < e->plan.nstatic; k++)
                        if (e->plan.static_rules[k] == (uint32_t)rule) {
                                ent_static(e, x)[k / 64] |= 1ull << (k % 64);
                                found = true;
                        }
                e->reload_dropped += !found && !r->bad;
        }
        /* the grading: a grade, held grade or mode the grading does not
         * have (a band or mode renamed or removed since the record was
         * written) restores the enterprise ungraded, to be graded again
         * (Ent.grade_lost): never a grade without its mode */
        bool hn, gn, mn;
        int32_t held = get_grade(e, r, &hn), grade = get_grade(e, r, &gn), mode = get_mode(e, r, &mn);
        double per_year = get_fin(r);
        if (r->bad)
                return;
        if (grade >= 0 && mode >= 0 && (held >= 0 || !hn) && per_year >= 0) {
                x->held = (int16_t)held;
                x->grade = (int16_t)grade;
                x->mode = (int16_t)mode;
                x->per_year = per_year;
        } else if (gn || mn || hn) {
                x->grade_lost = 1;
                x->reload_dirty = 1;
        }
        ent_below_set(e, x, get_t(r));
        x->last_time = get_t(r);
        uint64_t np = get_u(r);
        for (uint64_t i = 0; i < np && !r->bad; i++) {
                int32_t ds = -1, at;
                if (d) {
                        ds = get_dslot(r);
                        at = ds >= 0 ? d->slots[ds].prof : -1;
                } else {
                        at = get_slot_in(e, r, e->plan.prof_slots, e->plan.nprof);
                }
                /* a string as the record has it: the profile keeps a copy */
                Value v = get_v_as(e, r, ds, at >= 0 ? (int32_t)e->plan.prof_slots[at] : -1, false);
                if (at >= 0)
                        ent_prof_set(e, x, (uint32_t)at, v);
        }
        /* counts past what an enterprise can hold (16 bits) refuse the
         * record: no engine wrote it */
        uint64_t nc = get_u(r);
        if (nc > UINT16_MAX)
                r->bad = true;
        /* each one's fingerprint as written, contributions then key states
         * (format 2: the dictionary's; 1: read at the end) */
        StateDicts *sd = dicts(e);
        size_t want = (nc < 65536 ? nc : 65536) + 1;
        if (want > sd->ccap) {
                sd->ccap = want;
                sd->cfp = xrealloc(sd->cfp, want * sizeof(uint64_t));
                sd->cat = xrealloc(sd->cat, want * sizeof(uint32_t));
        }
        uint64_t *cfp = sd->cfp;
        /* the record index of each one kept (at most 65535 are) */
        uint32_t *cat = sd->cat;
        for (uint64_t i = 0; i < nc && !r->bad; i++) {
                uint64_t rfp = 0;
                int32_t rule = get_rule(e, r, &rfp);
                cfp[i] = rfp;
                Contrib c = {.points = get_fin(r)};
                c.since = get_t(r);
                c.expires = get_t(r);
                c.rectify = get_t(r);
                s = get_id(r, &n, idbuf);
                if (rule < 0 || r->bad) {
                        e->reload_dropped += !r->bad;
                        continue;
                }
                c.rule = (uint16_t)rule;
                c.event_id = intern_get(&e->in, s, n);
                EntRare *rr = ent_rare(e, x);
                if (rr->nc == rr->cc) {
                        rr->c = ent_grow(e, rr->c, &rr->cc, sizeof(Contrib));
                }
                cat[rr->nc] = (uint32_t)i;
                rr->c[rr->nc++] = c;
        }
        uint64_t nf = get_u(r);
        if (nf > UINT16_MAX)
                r->bad = true;
        for (uint64_t i = 0; i < nf && !r->bad; i++) {
                int32_t flag = get_flag(e, r);
                uint8_t fpr = get_b(r);
                int64_t until = get_t(r);
                if (fpr > 1)
                        r->bad = true;
                for (uint32_t k = 0; flag >= 0 && x->r != &rare_none && k < x->r->nf; k++)
                        if (x->r->f[k].flag == flag)
                                r->bad = true; /* a flag twice */
                if (r->bad)
                        break;
                if (flag < 0) {
                        e->reload_dropped++;
                        continue;
                }
                EntRare *rr = ent_rare(e, x);
                if (rr->nf == rr->cf) {
                        rr->f = ent_grow(e, rr->f, &rr->cf, sizeof(FlagState));
                }
                rr->f[rr->nf++] = (FlagState){.flag = (uint16_t)flag, .from_profile = fpr, .until = until};
        }
        uint64_t nks = get_u(r);
        if (nks > UINT16_MAX)
                r->bad = true;
        want = (nks < 65536 ? nks : 65536) + 1;
        if (want > sd->kcap) {
                sd->kcap = want;
                sd->kfp = xrealloc(sd->kfp, want * sizeof(uint64_t));
                sd->kat = xrealloc(sd->kat, want * sizeof(uint32_t));
        }
        uint32_t *kat = sd->kat;
        uint64_t *kfp = sd->kfp;
        /* key states kept per rule: no more than cfg.max_keys, as an event makes */
        if (rs->nrules + 1 > sd->nkcap) {
                sd->nkcap = rs->nrules + 1;
                sd->nkeys = xrealloc(sd->nkeys, sd->nkcap * sizeof(uint32_t));
        }
        uint32_t *nkeys = sd->nkeys;
        memset(nkeys, 0, (rs->nrules + 1) * sizeof(uint32_t));
        for (uint64_t i = 0; i < nks && !r->bad; i++) {
                /* format 2: the rule's snapshot slots are the dictionary's */
                const DRule *dr = NULL;
                int32_t rule;
                if (d) {
                        uint64_t di = get_u(r);
                        dr = di < d->nrules ? &d->rules[di] : NULL;
                        r->bad |= !dr;
                        rule = dr ? dr->to : -1;
                        kfp[i] = dr ? dr->fp : 0;
                } else {
                        rule = get_rule(e, r, NULL);
                }
                KeyState ks = {.rule = (uint16_t)(rule < 0 ? 0 : rule)};
                uint8_t keyed = get_b(r);
                if (keyed > 1)
                        r->bad = true;
                /* a keyed state of a rule without per: (or the reverse) is
                 * one no event can reach: dropped, as is a key the record
                 * has twice or one past max_keys */
                if (rule >= 0 && keyed != (e->rs->rules[rule].per_slot >= 0))
                        rule = -1;
                r->key = (Str){NULL, 0};
                if (keyed && !r->bad) {
                        s = get_s(r, &n);
                        r->key = (Str){s, n};
                        if (rule >= 0 && !r->bad) {
                                for (uint32_t k = 0; k < x->nks; k++)
                                        if (x->ks[k].rule == rule && x->ks[k].keyed &&
                                            str_order(ks_key(&x->ks[k]), (Str){s, n}) == 0)
                                                rule = -1;
                                if (rule >= 0)
                                        ent_ks_key(e, &ks, s, n);
                        }
                } else if (rule >= 0) {
                        for (uint32_t k = 0; k < x->nks; k++)
                                if (x->ks[k].rule == rule)
                                        rule = -1;
                }
                if (rule >= 0 && nkeys[rule] >= e->cfg.max_keys)
                        rule = -1;
                ks.fired = get_b(r);
                if (ks.fired > 1)
                        r->bad = true;
                int64_t since = get_t(r);
                ks.last_fire = get_t(r);
                int64_t due = get_t(r);
                /* a for: key's timer is due for_ms after since, by construction */
                ks.at = rule >= 0 && e->rs->rules[rule].timer_driven ? due : since;
                ks.armed = due != TIME_UNSET;
                uint64_t nsnap = get_u(r);
                if (d && (!dr || (nsnap && nsnap != dr->nsnap)))
                        r->bad = true; /* format 2: all of the rule's slots, or none */
                const RuleInfo *ri = rule >= 0 ? &e->plan.ri[rule] : NULL;
                /* by snapshot index; slots the record lacks stay null */
                Value *vals = e->snapvals;
                for (uint32_t q = 0; ri && q < ri->nsnap; q++)
                        vals[q] = value_null();
                for (uint64_t k = 0; k < nsnap && !r->bad; k++) {
                        int32_t ds = -1, at;
                        if (d) {
                                ds = (int32_t)dr->snap[k];
                                at = ri ? dr->snap_at[k] : -1;
                        } else {
                                at = ri ? get_slot_in(e, r, ri->snap_slots, ri->nsnap) : get_slot_in(e, r, NULL, 0);
                        }
                        Value v = get_v(e, r, ds, at >= 0 ? (int32_t)ri->snap_slots[at] : -1);
                        if (at >= 0) {
                                intern_value_put(&e->in, vals[at]);
                                vals[at] = v;
                        }
                }
                r->key = (Str){NULL, 0};
                s = get_id(r, &n, idbuf);
                if (ri && rule >= 0 && !r->bad && (nsnap || n))
                        ent_snap_set(e, &ks, ri, vals, false, s, n);
                for (uint32_t q = 0; ri && q < ri->nsnap; q++) {
                        intern_value_put(&e->in, vals[q]);
                        vals[q] = value_null();
                }
                if (rule < 0 || r->bad) {
                        e->reload_dropped += !r->bad;
                        ent_ks_free(e, &ks);
                        continue;
                }
                if (x->nks == x->cks) {
                        x->ks = ent_grow(e, x->ks, &x->cks, sizeof(KeyState));
                }
                kat[x->nks] = (uint32_t)i;
                x->ks[x->nks++] = ks;
                nkeys[rule]++;
        }
        uint64_t nw = get_u(r);
        for (uint64_t i = 0; i < nw && !r->bad; i++) {
                int32_t agg = -1;
                uint64_t nrow;
                const DAgg *da = NULL;
                const Aggregate *a = NULL;
                if (d) {
                        uint64_t di = get_u(r);
                        if (di >= d->naggs) {
                                r->bad = true;
                                break;
                        }
                        da = &d->aggs[di];
                        agg = da->to;
                        nrow = da->nrow;
                        a = agg >= 0 ? &rs->aggs[agg] : NULL;
                } else {
                        uint64_t afp = get_u(r);
                        for (uint32_t k = 0; k < rs->naggs; k++)
                                if (e->plan.agg_fp[k] == afp)
                                        agg = (int32_t)k;
                        nrow = get_u(r);
                        a = agg >= 0 ? &rs->aggs[agg] : NULL;
                        if (a && (nrow != a->nrow_slots || nrow > 64))
                                a = NULL;
                        for (uint64_t k = 0; k < nrow && !r->bad; k++)
                                if (get_slot_in(e, r, a ? &a->row_slots[k] : NULL, a ? 1 : 0) < 0)
                                        a = NULL;
                }
                for (uint32_t k = 0; a && k < x->nw; k++)
                        if (x->w[k].agg == agg)
                                a = NULL; /* a window twice: the first kept */
                uint64_t rows = get_u(r);
                e->reload_dropped += !a && rows;
                Win *w = NULL;
                if (a && rows && !e->plan.agg_keyed[agg]) {
                        if (x->nw == x->cw) {
                                x->w = ent_grow(e, x->w, &x->cw, sizeof(Win));
                        }
                        w = &x->w[x->nw++];
                        memset(w, 0, sizeof(*w));
                        w->agg = (uint16_t)agg;
                        w->cap = (uint32_t)(rows < e->cfg.max_window_rows ? rows : e->cfg.max_window_rows);
                        w->t = window_alloc(e, a, w->cap); /* running aggregates: rebuilt from the rows */
                }
                for (uint64_t q = 0; q < rows && !r->bad; q++) {
                        /* rows in arrival order, not necessarily in time
                         * order (held events released early): any time but
                         * none */
                        int64_t t = get_t(r);
                        if (t == TIME_UNSET)
                                r->bad = true;
                        Value tmp[64];
                        for (uint64_t k = 0; k < nrow; k++)
                                tmp[k < 64 ? k : 63] = get_v(e, r, da ? (int32_t)da->rows[k] : -1,
                                                             w ? (int32_t)a->row_slots[k] : -1);
                        if (w && r->bad) { /* a row cut short: not kept */
                                for (uint64_t k = 0; k < nrow; k++)
                                        intern_value_put(&e->in, tmp[k]);
                                break;
                        }
                        if (!w)
                                continue;
                        if (w->n == w->cap) { /* more rows than the limit: keep the newest */
                                for (uint64_t k = 0; k < nrow; k++)
                                        intern_value_put(&e->in, win_v(w)[(size_t)w->head * nrow + k]);
                                w->head = (w->head + 1) % w->cap;
                                w->n--;
                        }
                        uint32_t at = (w->head + w->n) % w->cap;
                        w->t[at] = t;
                        memcpy(&win_v(w)[(size_t)at * nrow], tmp, nrow * sizeof(Value));
                        w->n++;
                }
        }
        uint64_t nr = get_u(r);
        for (uint64_t i = 0; i < nr && !r->bad; i++) {
                uint64_t h = d ? get_8(r) : get_u(r);
                if (!e->cfg.recent_ids)
                        continue;
                ent_recent(e, x)[x->recent_pos] = h;
                x->recent_pos = (uint16_t)((x->recent_pos + 1) % e->cfg.recent_ids);
                if (x->nrecent < e->cfg.recent_ids)
                        x->nrecent++;
        }
        bool points = false;
        if (!r->bad && (d || fp_read(r, cfp, nc, kfp, nks)))
                points = drop_changed(e, x, cfp, cat, kfp, kat);
        off_read(e, x, r);
        if (e->reload_dropped != dropped)
                x->reload_dirty = 1;
        if (!r->bad && (points || ent_static_score(e, x) != static_before)) {
                x->reload_dirty = 1;
                x->reload_rescored = 1;
        }
}

void state_ent_write(Engine *e, const Ent *x, Buf *b)
{
        ent_write(e, x, b);
}

int state_ent_read(Engine *e, Ent *x, const void *val, size_t len)
{
        Rd r = {val, (const unsigned char *)val + len, false};
        ent_read(e, x, &r);
        return r.bad ? -EINVAL : 0;
}

/* ---- the partition record ---- */

static int held_qcmp(const void *a, const void *b)
{
        return held_cmp(a, b);
}

/* The held events go in the order they will be applied: a restore (or an
 * abort) pushes them again in record order, which gives events of the same
 * time their arrival order back.  Sorted in place: a sorted array is a
 * heap. */
static void meta_write(Engine *e, int64_t next, Buf *b)
{
        xsort(e->hold.held, e->hold.nheld, sizeof(Held), held_qcmp);
        buf_putc(b, ENGINE_META_VERSION);
        put_i(b, e->max_time);
        put_i(b, e->wm);
        put_i(b, next);
        put_u(b, e->hold.nheld);
        for (uint32_t i = 0; i < e->hold.nheld; i++) {
                const Held *h = &e->hold.held[i];
                put_cs(b, h->src.topic);
                put_i(b, h->src.partition);
                put_i(b, h->src.offset);
                put_s(b, h->bytes, h->len);
        }
        /* the rules the state is of: a restore under others grades again */
        buf_putc(b, 'V');
        put_cs(b, e->rs->version);
}

static int64_t meta_read(Engine *e, Rd *r)
{
        if (get_b(r) != ENGINE_META_VERSION) {
                r->bad = true;
                return -1;
        }
        e->max_time = get_i(r);
        e->wm = get_i(r);
        int64_t next = get_i(r); /* -1 or below: none (a reload's copy of a restore without one) */
        uint64_t n = get_u(r);
        for (uint32_t i = 0; i < e->hold.nheld; i++) {
                free(e->hold.held[i].bytes);
                free(e->hold.held[i].topic);
        }
        e->hold.nheld = 0;
        for (uint64_t i = 0; i < n && !r->bad; i++) {
                uint32_t tl, bl;
                const char *t = get_s(r, &tl);
                char *topic = xstrndup(t, tl);
                SourcePos src = {.topic = topic};
                int64_t part = get_i(r);
                if (part < INT32_MIN || part > INT32_MAX)
                        r->bad = true;
                src.partition = (int32_t)part;
                src.offset = get_i(r);
                const char *bytes = get_s(r, &bl);
                if (!r->bad)
                        engine_held_push(e, bytes, bl, &src);
                free(topic);
        }
        e->state_rules[0] = 0;
        if (!r->bad && r->p < r->end && *r->p == 'V') {
                r->p++;
                uint32_t vl;
                const char *v = get_s(r, &vl);
                if (!r->bad)
                        snprintf(e->state_rules, sizeof(e->state_rules), "%.*s", (int)vl, v);
        }
        return r->bad ? -1 : next;
}

/* ---- batches ---- */

/*
 * Two batches may be uncommitted at once (engine_batch_seal): the sealed
 * one, whose transaction the daemon commits while the next is processed,
 * and the open one.  The undo log holds a segment per batch: the sealed
 * batch's (each enterprise as that batch found it) then the open batch's
 * (each as the sealed batch left it: seal clears the touched marks, so
 * the open batch logs an enterprise again even if the sealed one did).
 * Committing the sealed batch drops its segment; an abort rolls back the
 * open segment, then the sealed one, newest first, and puts back the
 * partition state (watermark, held events) of the oldest batch's start.
 */

void state_untouch(Engine *e, Ent *ent)
{
        if (!ent->touched || e->ntouched <= e->nsealed || e->touched[e->ntouched - 1] != ent)
                return;
        e->ntouched--;
        if (e->undo_off[e->ntouched] != UINT64_MAX)
                e->undo.len = e->undo_off[e->ntouched];
        ent->touched = 0;
}

void state_touch(Engine *e, Ent *ent)
{
        if (!e->in_batch || ent->touched)
                return;
        ent->touched = 1;
        if (e->ntouched == e->ctouched) {
                e->ctouched = e->ctouched ? e->ctouched * 2 : 64;
                e->touched = xrealloc(e->touched, e->ctouched * sizeof(Ent *));
                e->undo_off = xrealloc(e->undo_off, e->ctouched * sizeof(uint64_t));
        }
        /* a new enterprise (never graded, nothing held) is removed on abort;
         * one the sealed batch logged is put back as that batch left it
         * (its own segment removes it, if it was new there) */
        bool fresh = !ent->sealed && ent->last_time == TIME_UNSET && ent->r->nc == 0 && ent->nw == 0 &&
                     ent->grade < 0;
        e->touched[e->ntouched] = ent;
        e->undo_off[e->ntouched] = fresh ? UINT64_MAX : e->undo.len;
        e->ntouched++;
        if (!fresh)
                ent_write(e, ent, &e->undo);
}

void engine_batch_begin(Engine *e)
{
        e->in_batch = true;
        e->ntouched = e->nsealed;
        e->undo.len = e->undo_sealed;
        e->meta_undo.len = 0;
        meta_write(e, 0, &e->meta_undo);
}

void engine_batch_changes(Engine *e, int64_t next_offset, EngineRecordFn fn, void *ud)
{
        dict_changes(e, fn, ud);
        state_changes(e, next_offset, fn, ud);
}

void state_changes(Engine *e, int64_t next_offset, EngineRecordFn fn, void *ud)
{
        Buf b = {0};
        for (uint32_t i = e->nsealed; i < e->ntouched; i++) {
                Ent *x = e->touched[i];
                b.len = 0;
                ent_write(e, x, &b);
                fn(ud, ent_key(x)->s, ent_key(x)->len, b.p, b.len);
        }
        b.len = 0;
        meta_write(e, next_offset, &b);
        fn(ud, ENGINE_META_KEY, sizeof(ENGINE_META_KEY) - 1, b.p, b.len);
        buf_free(&b);
}

void engine_batch_seal(Engine *e)
{
        if (!e->in_batch)
                return;
        for (uint32_t i = e->nsealed; i < e->ntouched; i++) {
                Ent *x = e->touched[i];
                x->touched = 0;
                x->sealed = 1;
                x->reload_dirty = 0; /* its record is written */
                x->reload_rescored = 0;
                x->grade_lost = 0;
        }
        if (!e->sealed) { /* else the two merge: the older start stays */
                Buf t = e->meta_sealed;
                e->meta_sealed = e->meta_undo;
                e->meta_undo = t;
                e->sealed_regrade = false;
        }
        e->sealed_regrade |= e->regrade_open;
        e->regrade_open = false;
        e->sealed = true;
        e->nsealed = e->ntouched;
        e->undo_sealed = e->undo.len;
        e->in_batch = false;
        e->meta_undo.len = 0;
}

bool engine_batch_sealed(const Engine *e)
{
        return e->sealed;
}

/* The sealed batch committed: its segment goes, the open batch's stays. */
static void sealed_commit(Engine *e)
{
        for (uint32_t i = 0; i < e->nsealed; i++)
                e->touched[i]->sealed = 0;
        uint32_t n = e->ntouched - e->nsealed;
        if (n) /* (touched is NULL until an enterprise is) */
                memmove(e->touched, e->touched + e->nsealed, n * sizeof(Ent *));
        for (uint32_t i = 0; i < n; i++) {
                uint64_t off = e->undo_off[e->nsealed + i];
                e->undo_off[i] = off == UINT64_MAX ? off : off - e->undo_sealed;
        }
        if (e->undo.len > e->undo_sealed)
                memmove(e->undo.p, e->undo.p + e->undo_sealed, e->undo.len - e->undo_sealed);
        e->undo.len -= e->undo_sealed;
        e->ntouched = n;
        e->nsealed = 0;
        e->undo_sealed = 0;
        e->sealed = false;
        e->sealed_regrade = false;
        e->meta_sealed.len = 0;
}

void engine_batch_commit(Engine *e)
{
        state_dict_committed(e);
        if (e->sealed) {
                sealed_commit(e);
                return;
        }
        for (uint32_t i = 0; i < e->ntouched; i++) {
                e->touched[i]->touched = 0;
                e->touched[i]->reload_dirty = 0; /* its record is written */
                e->touched[i]->reload_rescored = 0;
                e->touched[i]->grade_lost = 0;
        }
        e->regrade_open = false;
        e->in_batch = false;
        e->ntouched = 0;
        e->undo.len = 0;
        e->meta_undo.len = 0;
}

void engine_batch_abort(Engine *e)
{
        if (!e->in_batch && !e->sealed)
                return;
        if (e->regrade_open || e->sealed_regrade)
                e->regrade_due = true;
        state_dict_aborted(e);
        /* newest first: the open segment, then the sealed one */
        for (uint32_t i = e->ntouched; i-- > 0;) {
                Ent *x = e->touched[i];
                if (e->undo_off[i] == UINT64_MAX) {
                        ent_remove(e, x);
                        continue;
                }
                ent_clear(e, x);
                Rd r = {(const unsigned char *)e->undo.p + e->undo_off[i],
                        (const unsigned char *)e->undo.p + e->undo.len, false};
                ent_read(e, x, &r);
                x->touched = 0;
                x->sealed = 0;
        }
        e->ntouched = e->nsealed = 0; /* some were freed: nothing left for commit to clear */
        const Buf *m = e->sealed ? &e->meta_sealed : &e->meta_undo;
        Rd r = {(const unsigned char *)m->p, (const unsigned char *)m->p + m->len, false};
        meta_read(e, &r);
        timer_rebuild(e);
        e->sealed = false;
        e->sealed_regrade = false;
        e->undo_sealed = 0;
        e->meta_sealed.len = 0;
        engine_batch_commit(e);
}

/* ---- restore ---- */

int engine_restore_record(Engine *e, const char *key, size_t klen, const void *val, size_t vlen)
{
        Rd r = {val, (const unsigned char *)val + vlen, false};
        if (klen == sizeof(ENGINE_META_KEY) - 1 && memcmp(key, ENGINE_META_KEY, klen) == 0) {
                e->restore_next = meta_read(e, &r);
                return r.bad ? -EINVAL : 0;
        }
        if (klen >= sizeof(ENGINE_DICT_KEY) - 1 && memcmp(key, ENGINE_DICT_KEY, sizeof(ENGINE_DICT_KEY) - 1) == 0)
                return dict_restore(e, key, klen, val, vlen);
        Ent *x = ent_get(e, key, (uint32_t)klen);
        if (!x)
                return -ENOSPC;
        ent_clear(e, x);
        x->reload_dirty = 0; /* of an earlier record of the key, now replaced */
        x->reload_rescored = 0;
        x->grade_lost = 0;
        if (vlen == 0) { /* tombstone */
                ent_remove(e, x);
                return 0;
        }
        ent_read(e, x, &r);
        return r.bad ? -EINVAL : 0;
}

int64_t engine_restore_finish(Engine *e)
{
        timer_rebuild(e);
        if (e->state_rules[0] && strcmp(e->state_rules, e->rs->version) != 0) {
                /* the state is of other rules: grade everyone again (engine_regrade) */
                snprintf(e->reload_from, sizeof(e->reload_from), "%s", e->state_rules);
                e->regrade_due = true;
        }
        return e->restore_next;
}
