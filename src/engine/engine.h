/*
 * Private structures of the engine (src/engine/), shared by engine.c
 * (event flow, rules, timers), window.c (aggregates), grade.c (grading and
 * hysteresis) and output.c (JSON documents).
 */
#ifndef RISKD_ENGINE_PRIV_H
#define RISKD_ENGINE_PRIV_H

#include "include/riskd/engine.h"
#include "include/riskd/util.h"
#include "src/engine/intern.h"

#define TIME_UNSET INT64_MIN
#define TIME_FOREVER INT64_MAX

/* A key state's key and what a timer firing needs from the key's last
 * event, in one pool object of pool_size(size) bytes with no pointers out,
 * so re-arming rewrites it in place: the key's klen bytes (a per: rule's
 * key, NUL-less; none for a rule without per:), then the values of the
 * rule's snapshot slots (RuleInfo.snap_slots) and the event id.  Per value
 * a tag byte and its payload (bool 1 byte, enum 4, number and times 8, a
 * string its length as a varint then its bytes; SNAP_KEY: the key itself,
 * not repeated); then the id: 16 bytes for a canonical lowercase UUID
 * (idlen SNAP_UUID), else its text.  idlen SNAP_NONE: no event yet (the
 * key alone). */
typedef struct Snap {
        uint32_t size;
        uint32_t klen;
        uint32_t idlen;
        uint8_t data[];
} Snap;
#define SNAP_UUID UINT32_MAX
#define SNAP_NONE (UINT32_MAX - 1)
#define SNAP_KEY 0x80

/* Per rule and per `per:` key: for/cooldown/absent state. */
typedef struct KeyState {
        uint16_t rule;
        uint8_t fired;          /* for: fired in this episode */
        uint8_t keyed : 1;      /* a per: key, first in snap (never NULL then) */
        uint8_t armed : 1;      /* its timer is set: due at `at` + RuleInfo.due_after (ks_due) */
        uint32_t khash;         /* low bits of the key's hash_fast: a lookup skips other keys unread */
        /* absent(): when the timer acts; for: the condition true since
         * (TIME_UNSET: not), the timer due for_ms later */
        int64_t at;
        int64_t last_fire;      /* cooldown */
        Snap *snap;             /* the key and the triggering event, NULL: neither */
} KeyState;

/* The key's bytes ({NULL, 0} for the enterprise as a whole). */
static inline Str ks_key(const KeyState *ks)
{
        return ks->keyed ? (Str){(const char *)ks->snap->data, ks->snap->klen} : (Str){NULL, 0};
}

/* It holds an event's snapshot. */
static inline bool ks_has_snap(const KeyState *ks)
{
        return ks->snap && ks->snap->idlen != SNAP_NONE;
}

typedef struct Contrib {
        uint16_t rule;
        double points;
        int64_t since, expires; /* expires TIME_FOREVER: never */
        int64_t rectify;        /* deadline, or TIME_UNSET */
        IStr *event_id;
} Contrib;

typedef struct FlagState {
        uint16_t flag;
        uint8_t from_profile;   /* set "forever" by a profile rule: a profile update re-decides it */
        int64_t until;          /* TIME_FOREVER: no expiry */
} FlagState;

typedef struct Win {
        uint16_t agg;
        uint8_t run;            /* the running aggregate after the rows is built (window.c) */
        uint32_t head, n, cap;  /* ring of rows */
        /* cap times, then cap * nrow_slots values (win_v), then the running
         * aggregate (window_alloc): one pool object */
        int64_t *t;
} Win;

static inline Value *win_v(const Win *w)
{
        return (Value *)(void *)(w->t + w->cap);
}

/* The bytes of a ring of cap rows of nrow values. */
static inline size_t win_size(uint32_t cap, uint32_t nrow)
{
        return (size_t)cap * (sizeof(int64_t) + (size_t)nrow * sizeof(Value));
}

/* The ring position of row i (i < cap, head < cap): no division. */
static inline uint32_t ring_at(const Win *w, uint32_t i)
{
        uint32_t at = w->head + i;
        return at >= w->cap ? at - w->cap : at;
}

/* The official grade of the 2016 model (grading.yaml official:, see
 * docs/rules.md "The two scores"): the cycle assessed, the latest dynamic
 * evaluation and the steps within the cycle.  A pool object of its own,
 * made at the first grading or evaluation under the official model: rules
 * without it never make one. */
typedef struct OffState {
        int64_t cycle;          /* start of the cycle the steps belong to, TIME_UNSET none yet */
        int64_t dyn_time;       /* the latest dynamic evaluation's time, TIME_UNSET none */
        double dyn;             /* its points, capped at dynamic_max */
        int64_t basis_time;     /* when the latest raise or lower fired */
        int64_t cycle_end;      /* the next cycle's start, once cycle is known to be a start
                                 * under the rules in force (grade_cycle_roll); TIME_UNSET:
                                 * not yet (not in the record) */
        int16_t assessed;       /* band index assessed for the cycle (carry included), -1 none */
        int16_t basis;          /* rule index of the latest raise or lower, -1 none */
        int16_t dyn_rule;       /* rule index of the latest evaluation, -1 none */
        int8_t raise, lower;    /* steps this cycle, capped at max_raise / max_lower */
        int8_t carry;           /* the last cycle's raise - lower, carried into this assessment */
        uint8_t provisional : 1;        /* assessed before any dynamic evaluation */
        uint8_t assess_due : 1;         /* a new cycle began: assess at the next regrade */
} OffState;

/* What most enterprises never hold (contributions, flags, the hysteresis
 * clock, the official grade), in a pool object of its own; Ent.r points
 * to rare_none (read only, all empty) until something is stored
 * (ent_rare). */
typedef struct EntRare {
        Contrib *c;
        FlagState *f;
        uint16_t nc, cc, nf, cf;
        int64_t below_since;    /* score below the held band since */
        OffState *o;            /* NULL: no official state */
} EntRare;

extern const EntRare rare_none;

/* One pool object holds the struct, then the key (so a lookup's compare
 * reads the lines the event needs next), then the ring of recent event
 * id hashes (cfg.recent_ids), the static bits (of the static rules
 * matching at the last profile update) and the profile (Engine.prof_bytes,
 * packed by field type, see engine_prof_get):
 * an enterprise's fixed state is one allocation and a few cache lines,
 * found by address arithmetic (ent_key, ent_prof, ent_recent,
 * ent_static).  The rare part, the arrays ks and w and everything they
 * point to come from Engine.pool too. */
typedef struct Ent {
        const EntRare *r;       /* written through ent_rare */
        union {
                KeyState *ks;
                struct Ent *to; /* Ent.gone: the Ent that replaced it, NULL none (compact.c) */
        };
        Win *w;
        uint16_t nks, cks, nw, cw;
        uint16_t nrecent, recent_pos;
        int16_t held;           /* band index in force (hysteresis), -1 none */
        int16_t grade, mode;    /* last graded, -1 none */
        /* grade_clean: nothing an override reads (score, flags, profile)
         * changed since the last regrade, whose override results are
         * ov_bits; cleared by every change to them (grade.c) */
        uint8_t grade_clean;
        uint8_t touched : 1;    /* in the open batch's undo log (state.c) */
        uint8_t sealed : 1;     /* in the sealed batch's undo log (state.c): logged again,
                                 * never as new, when the open batch touches it */
        uint8_t reload_dirty : 1;       /* a restore under other rules dropped some of its state:
                                         * its record is written again (reload.c) */
        uint8_t reload_rescored : 1;    /* ... and changed its score: a live contribution of a changed
                                         * or removed rule dropped, or the static part differs from
                                         * the record's; the re-grade reports it (reload.c) */
        uint8_t grade_lost : 1;         /* its record named a grade or mode the grading does not
                                         * have: restored ungraded, graded again by the re-grade
                                         * (reload.c) */
        uint8_t compact : 1;    /* compact form (compact.c): the struct's grading fields, tm_at
                                 * and tm_absent, the key, then a StubRec and the enterprise's
                                 * record; nothing else (r is rare_none, no arrays) */
        uint8_t gone : 1;       /* replaced (compact.c): freed once no timer entry names it */
        uint16_t ov_bits;
        uint8_t tm_absent;      /* the class of its live timer entry (Timer) */
        double per_year;
        int64_t last_time;
        int64_t tm_at;          /* the time of its live timer entry, TIME_UNSET none */
} Ent;

/* An enterprise's key, after the struct: its length and bytes (NUL
 * terminated); its table slot keeps 16 bits of its hash. */
typedef struct EntKey {
        uint32_t len;
        char s[];
} EntKey;

/* The key's bytes after the struct, rounded up so what follows is aligned. */
static inline size_t ent_key_size(uint32_t len)
{
        return (sizeof(EntKey) + len + 1 + 7) & ~(size_t)7;
}

/* After the key of a compact Ent (Ent.compact): what its timers need
 * without the state (the entry engine_timers_rebuild would make for it in
 * full form), then its changelog record (state.c), the same bytes
 * engine_batch_changes would write for it, coded by compact.c: after the
 * StubRec in the same pool object, or in one of its own (ext) when two
 * objects round up to less than one (the pool's classes are 64 and 128
 * bytes apart from 256 and 512 bytes). */
typedef struct StubRec {
        int64_t rebuild_at;     /* TIME_UNSET: none */
        uint8_t *ext;           /* the coded record, NULL: in data */
        uint32_t len;           /* of the coded record */
        uint32_t raw : 31;      /* of the record */
        uint32_t rebuild_absent : 1;
        uint8_t data[];
} StubRec;

static inline EntKey *ent_key(const Ent *x)
{
        return (EntKey *)(void *)(uintptr_t)(x + 1);
}

static inline int ent_key_cmp(const EntKey *a, const EntKey *b)
{
        return str_order((Str){a->s, a->len}, (Str){b->s, b->len});
}

/* The timer heap holds one entry per enterprise with something due: its
 * earliest item (a contribution's or a flag's expiry, the hysteresis
 * dwell, a for: or absent() key's due time), at (Ent.tm_at,
 * Ent.tm_absent).  Timers are derived from the state alone: when the entry
 * comes up, every item due by then acts, and the next earliest is pushed.
 * Bit 0 of ent: the absent() class, which at one time comes after every
 * other (an absent() check waits for the events of its time).  An item
 * earlier than the live entry pushes another; the one it replaces is
 * skipped when it comes up (its time is not the Ent's any more). */
typedef struct Timer {
        int64_t time;
        uintptr_t ent;          /* Ent *, | 1: the absent() class */
} Timer;

/* An event held for the grace.  Held events are applied in event-time
 * order, events of the same time in the order they arrived (seq): one
 * order for every grace, the order in which grace 0 applies them on
 * arrival. */
typedef struct Held {
        int64_t time;
        uint64_t seq;           /* arrival order (Engine.seq) */
        uint32_t len;
        SourcePos src;
        char *topic;            /* copy of src.topic */
        char *bytes;            /* [len] bytes */
} Held;

static inline int held_cmp(const Held *a, const Held *b)
{
        if (a->time != b->time)
                return a->time < b->time ? -1 : 1;
        return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* A profile string, the enterprise's own: names and the like are
 * distinct per enterprise, so interning them would share nothing and cost
 * a table slot and a bigger header. */
typedef struct PStr {
        uint32_t len;
        char s[];
} PStr;

/* Per-rule data the engine derives once from the compiled rules. */
typedef struct RuleInfo {
        uint32_t *snap_slots;   /* slots a timer firing needs from the event */
        uint32_t nsnap;
        int64_t absent_ms;      /* the longest absent() window, 0 none */
        int64_t due_after;      /* a key's timer acts this long after KeyState.at: for_ms, 0 for absent() */
        bool reads_profile;     /* its condition, aggregates or message */
        /* its condition reads only the event (fields, constants): its result
         * is kept per event under the first rule with the same code */
        bool event_only;
        uint32_t same_when;     /* that rule's index (its own if the first) */
} RuleInfo;

/* An event hinted by engine_prefetch, decoded ahead with its own decoder,
 * slots and scratch (the decoder clears only what it filled last time in
 * the same array). */
typedef struct Ahead {
        const char *bytes;
        size_t len;
        Decoder *dec;
        Value *slots;
        char *scratch;
        DecodedEvent ev;
        DecodeReason rc;
        uint64_t h;             /* hash of the enterprise key */
} Ahead;

struct Engine {
        RuleSet *rs;
        EngineConfig cfg;
        EngineEmitFn emit;
        void *ud;
        Decoder *dec;
        Pool pool;              /* every enterprise's state, and the interned strings */
        Intern in;
        EngineStats st;

        Value *slots;           /* decoded event */
        Ahead ahead[ENGINE_AHEAD];      /* hinted events, oldest at ahead_first */
        uint32_t ahead_first, nahead;
        char *scratch;
        Value *rowbuf;          /* one window row laid out as an event */
        Value *snapbuf;         /* a snapshot laid out as an event */
        Value *snapvals;        /* a snapshot's values in order (transient) */
        Value *profbuf;         /* the enterprise profile laid out by slot */
        const Ent *prof_ent;    /* whose profile profbuf holds, NULL none */
        uint64_t prof_have;     /* which of its values (bit per prof index; all: prof_all) */
        uint64_t prof_all;
        uint64_t ov_prof[16];   /* per override: the prof indexes it reads (all if > 64) */
        uint8_t *agg_profile;   /* per aggregate: its where reads the profile */
        uint8_t *agg_keyed;     /* per aggregate: an absent() that needs no rows (engine_new) */
        char vmscratch[4096];
        uint32_t *prof_slots;   /* the profile slots rules read */
        uint32_t nprof;
        /* an enterprise's profile, packed: per slot at prof_off, by its
         * field type a string (a PStr pointer), a number or a time (8), an
         * enum (2), a bool (1); then a bit per slot, set when it holds a
         * value (a fresh enterprise is all null) */
        uint16_t *prof_off;
        uint8_t *prof_tags;     /* the Value tag of each slot's field type */
        uint16_t prof_present;  /* offset of the bits */
        uint16_t prof_bytes;
        uint32_t **by_type;     /* rule indexes per event type */
        uint32_t *nby_type;
        uint32_t **aggs_by_type;
        uint32_t *naggs_by_type;
        uint32_t *static_rules;
        uint32_t nstatic;
        double *static_points;  /* per static rule: its points, 0 for a shadow rule */
        /* per static rule whose score: is an expression (static_expr[k]):
         * the profile indexes it reads (static_pi[k], static_npi[k]); its
         * points are evaluated from the kept profile (ent_static_points),
         * so the record, the undo log and restore carry them as the profile */
        uint8_t *static_expr;
        uint32_t **static_pi;
        uint32_t *static_npi;
        uint64_t static_expr_mask;      /* the expression rules among the first 64 (the cache skips them) */
        Value *sexprbuf;                /* an expression's profile laid out by slot (all null between uses) */
        /* ent_static_score of a set of static bits (one word), direct-mapped:
         * most enterprises match one of a few sets */
        struct {
                uint64_t bits;
                double score;
        } sscache[64];
        /* overrides whose condition reads the clock: decided at every
         * regrade; with more than 16 overrides nothing is reused */
        uint16_t ov_volatile;
        bool ov_reuse;
        RuleInfo *ri;

        /* open addressing by key hash, at most half full: a slot is the Ent's
         * address tagged with its key hash (tag_make), so a lookup reads
         * one slot and touches only an Ent whose tag matches, which it
         * needs next anyway; 0 empty */
        uintptr_t *tab;
        uint32_t tabcap, nents;
        bool tab_untagged;

        Timer *tm;              /* min-heap */
        uint32_t ntm, ctm;
        bool tm_bulk;           /* engine_timers_rebuild: appended, heapified at its end */
        uint32_t *due;          /* key states due at one timer entry (scratch) */
        uint32_t cdue;
        Held *held;             /* min-heap */
        uint32_t nheld, cheld;
        uint64_t seq;

        int64_t push_ts;        /* SourcePos.timestamp of the engine_push running (OutMeta) */
        int64_t max_time;       /* highest event time seen, TIME_UNSET before any */
        int64_t wm;             /* watermark */
        /* batches (state.c): what to undo on abort.  touched[0..nsealed)
         * and undo[0..undo_sealed) are the sealed batch's segment (its
         * state when it began), the rest the open batch's (its state when
         * it began: the sealed batch's end) */
        bool in_batch;
        bool sealed;            /* a sealed batch awaits its commit or abort */
        Ent **touched;
        uint32_t ntouched, ctouched, nsealed;
        uint64_t *undo_off;     /* per touched: offset in undo, or UINT64_MAX: new */
        uint64_t undo_sealed;
        Buf undo;
        Buf meta_undo;          /* the partition state when the open batch began */
        Buf meta_sealed;        /* ... when the sealed batch began */
        bool sealed_regrade;    /* the sealed batch holds the regrade */
        uint64_t *agg_fp;       /* rules_agg_fingerprint per aggregate */
        int64_t restore_next;   /* from the partition record, -1 none */
        uint32_t reload_dropped;        /* rule state ent_read left behind (a changed or removed
                                         * rule's, a removed flag's or aggregate's) */
        char state_rules[24];           /* the rules version of the partition record read last, "" none */
        struct StateDicts *dicts;       /* the changelog's dictionaries (state.c), NULL none yet */
        char reload_from[24];           /* the rules version before a reload, for its adjustments */
        bool regrade_due;               /* restored from records of other rules: engine_regrade */
        bool regrade_open;              /* the open batch holds the regrade: an abort makes it due again */

        Value *aggbuf;          /* distinct(): values of one evaluation */
        uint32_t aggcap;
        Buf keybuf;             /* a per: value as text */
        /* the hash of the applied event's per: value, kept while its rules
         * run (a reading's four device rules share one key) */
        uint64_t applying;      /* events applied, counting the current one */
        uint64_t *when_epoch;   /* per rule: applying when when_val was set */
        uint8_t *when_val;
        uint64_t kh_event;      /* 0: none */
        /* compact.c: replaced Ents (Ent.gone) a timer entry may still name,
         * freed at the next heap pass; the state budget (0 none) */
        Ent **gone;
        uint32_t ngone, cgone;
        uint64_t budget;
        uint64_t compact_after;         /* applying: the next budget-driven compaction pass */
        uint64_t compact_count;         /* applying at the last compact_every pass */
        uint32_t ncompact;              /* enterprises in compact form */
        uint32_t compact_pos;           /* the table slot engine_compact goes on from */
        uint8_t refused;                /* why ent_get_h made none: 1 max_enterprises, 2 the budget */
        uint8_t *lz_dict;               /* compact.c's dictionary, made at the first compaction */
        uint32_t lz_dlen;
        int32_t *lz_dhash;              /* per hash of 4 bytes: the last dictionary position, -1 */
        uint64_t *lz_h;                 /* per hash: lz_epoch << 32 | the last position in the input */
        uint64_t lz_epoch;
        Buf lz_buf;                     /* a record decoded (transient) */
        int32_t kh_slot;
        uint32_t kh_hash;
        Buf out;                /* output document being built */
        Buf msg;
};

/* When ks's timer should act, TIME_UNSET: it has none. */
static inline int64_t ks_due(const Engine *e, const KeyState *ks)
{
        return ks->armed ? time_add_sat(ks->at, e->ri[ks->rule].due_after) : TIME_UNSET;
}

/* The enterprise in table slot i, NULL none. */
static inline Ent *tab_ent(const Engine *e, uint32_t i)
{
        return tag_ptr(e->tab[i], e->tab_untagged);
}

static inline uint64_t *ent_recent(const Engine *e, const Ent *x)
{
        (void)e;
        return (uint64_t *)(void *)((char *)ent_key(x) + ent_key_size(ent_key(x)->len));
}

static inline uint32_t ent_static_words(const Engine *e)
{
        return (e->nstatic + 63) / 64;
}

static inline uint64_t *ent_static(const Engine *e, const Ent *x)
{
        return ent_recent(e, x) + e->cfg.recent_ids;
}

double engine_static_expr(const Engine *e, const Ent *x, uint32_t k);

/* The points of static rule k for x (its bit set): a number, or the
 * value of its score expression over the kept profile (capped by
 * max_score; null contributes nothing). */
static inline double ent_static_points(const Engine *e, const Ent *x, uint32_t k)
{
        return e->static_expr[k] ? engine_static_expr(e, x, k) : e->static_points[k];
}

/* The static part of the score: the points of the static rules matching at
 * the last profile update (the bits of ent_static), summed in rule order. */
static inline double ent_static_score(const Engine *e, const Ent *x)
{
        double s = 0;
        const uint64_t *bits = ent_static(e, x);
        for (uint32_t w = 0; w < ent_static_words(e); w++)
                for (uint64_t m = bits[w]; m; m &= m - 1)
                        s += ent_static_points(e, x, w * 64 + (uint32_t)__builtin_ctzll(m));
        return s;
}

/* last: an event whose rules do not read the profile leaves its lines alone */
static inline uint8_t *ent_prof(const Engine *e, const Ent *x)
{
        return (uint8_t *)(ent_static(e, x) + ent_static_words(e));
}

/* The aggregate hook's context: the engine and the enterprise evaluated. */
typedef struct AggCtx {
        Engine *e;
        Ent *ent;
} AggCtx;

/* engine.c */
void engine_vmstate(Engine *e, Ent *ent, int64_t now, VmState *s);
void engine_profile_fill(Engine *e, Ent *ent);
void engine_profile_clear(Engine *e);
/* Lay out ent's profile unless it already is: called before evaluating
 * anything that reads it, so an event whose rules never look at the
 * profile does not touch its lines. */
static inline void engine_profile_need(Engine *e, Ent *ent)
{
        if (e->prof_ent != ent || e->prof_have != e->prof_all)
                engine_profile_fill(e, ent);
}
/* Only the values of the prof indexes in mask (an override that reads a
 * few of them, decided again at every event). */
void engine_profile_need_some(Engine *e, Ent *ent, uint64_t mask);
/* The timer heap's order (time, class, key). */
bool engine_timer_less(const Timer *a, const Timer *b);
/* x has an item due at time (absent: of an absent() rule): its timer
 * entry comes up by then. */
void timer_want(Engine *e, Ent *x, int64_t time, bool absent);

Ent *engine_ent_get(Engine *e, const char *k, uint32_t len);
/* Profile value i of x (a string points into its PStr). */
Value engine_prof_get(const Engine *e, const Ent *x, uint32_t i);
/* Store v as profile value i of x, releasing the old one: a string is
 * copied; a value not of the slot's type is stored as null. */
void engine_prof_set(Engine *e, Ent *x, uint32_t i, Value v);
void engine_ent_remove(Engine *e, Ent *x);
void engine_ent_clear(Engine *e, Ent *x);
/* pool_* sizes of an array of n elements of type T */
#define ENT_ARR(T, n) ((size_t)(n) * sizeof(T))
/* Room for one more element in a pool array of *cap elements of elem
 * bytes: the array, moved if it had to grow.  Up to 512 bytes it grows by
 * one element (the pool's classes there are 8 to 64 bytes apart, so
 * little is wasted: most enterprises hold one to eight of each), then it
 * doubles. */
static inline void *ent_grow(Engine *e, void *arr, uint16_t *cap, size_t elem)
{
        uint16_t oc = *cap;
        *cap = oc == 0 || (size_t)(oc + 1) * elem <= 512 ? (uint16_t)(oc + 1) : (uint16_t)(oc * 2);
        return pool_realloc(&e->pool, arr, (size_t)oc * elem, (size_t)*cap * elem);
}
/* x's rare part, to write to: made on first use. */
static inline EntRare *ent_rare(Engine *e, Ent *x)
{
        if (x->r == &rare_none) {
                EntRare *r = pool_alloc(&e->pool, sizeof(EntRare));
                *r = rare_none;
                x->r = r;
        }
        return (EntRare *)(uintptr_t)x->r;
}

/* Set x's hysteresis clock (TIME_UNSET: stopped); stopping one that does
 * not run makes no rare part. */
static inline void ent_below_set(Engine *e, Ent *x, int64_t t)
{
        if (t != TIME_UNSET || x->r->below_since != TIME_UNSET)
                ent_rare(e, x)->below_since = t;
}

/* x's official state, to write to: made on first use. */
static inline OffState *ent_off(Engine *e, Ent *x)
{
        EntRare *r = ent_rare(e, x);
        if (!r->o) {
                r->o = pool_alloc(&e->pool, sizeof(OffState));
                *r->o = (OffState){.cycle = TIME_UNSET, .dyn_time = TIME_UNSET, .basis_time = TIME_UNSET,
                                   .cycle_end = TIME_UNSET, .assessed = -1, .basis = -1, .dyn_rule = -1};
        }
        return r->o;
}

/* Store a snapshot and the event id in ks->snap after its key, reusing
 * its memory when the size class allows.  by_slot: the values are
 * ev[ri->snap_slots[i]] (an event laid out by slot), else ev[i]. */
void engine_snap_set(Engine *e, KeyState *ks, const RuleInfo *ri, const Value *ev, bool by_slot, const char *id,
                     uint32_t idlen);
/* Drop the snapshot; the key stays. */
void engine_snap_drop(Engine *e, KeyState *ks);
/* Give ks (fresh) the per: key k[0..len). */
void engine_ks_key(Engine *e, KeyState *ks, const char *k, uint32_t len);
/* Release everything ks holds. */
void engine_ks_free(Engine *e, KeyState *ks);
/* The snapshot's values into out[0 .. ri->nsnap) (strings point into the
 * Snap); all null without a snapshot. */
void engine_snap_values(const KeyState *ks, const RuleInfo *ri, Value *out);
/* The snapshot's event id as text, "" without one; buf holds a UUID's
 * text while the caller needs it. */
const char *engine_snap_id(const KeyState *ks, char buf[40], size_t *len);
void engine_held_push(Engine *e, const char *bytes, size_t len, const SourcePos *src);
void engine_timers_rebuild(Engine *e);

/* The enterprise's next timer entry after (done, done_absent), TIME_UNSET
 * none, as engine_timers_rebuild and the timers make it. */
int64_t engine_timer_next(Engine *e, const Ent *x, int64_t done, bool done_absent, bool *absent);
/* The pool object of a full Ent with a key of len bytes. */
size_t engine_ent_size(const Engine *e, uint32_t len);
/* The table slot of x (in the table). */
uint32_t engine_ent_slot(Engine *e, const Ent *x);
/* A canonical lowercase UUID (8-4-4-4-12) into 16 bytes, and back. */
bool uuid_pack(const char *s, uint32_t n, uint8_t out[16]);
void uuid_text(const uint8_t in[16], char out[37]);

/* compact.c */
/* The full form of compact x, in table slot i (tab[i] names x), x freed
 * (or kept for the heap pass, Ent.gone); push: give it its timer entry
 * (not when the caller acts on it at once, the entry having come up). */
Ent *compact_expand(Engine *e, uint32_t i, Ent *x, bool push);
/* Every compact enterprise in full form (operations that walk them all). */
void compact_expand_all(Engine *e);
/* The changelog record of compact x, appended to b. */
void compact_record(Engine *e, const Ent *x, Buf *b);
/* Free x, full or compact. */
void compact_ent_free(Engine *e, Ent *x);
/* After the timer heap was rebuilt from the table: no entry names a gone
 * Ent any more. */
void compact_gone_free(Engine *e);
/* A new enterprise may be made: below the budget, after compacting if
 * that is allowed now. */
bool compact_room(Engine *e);

/* state.c */
void state_touch(Engine *e, Ent *ent);
void state_dicts_free(Engine *e);
/* reload.c: n reads the records of e (e's dictionary given to n), and
 * knows the dictionaries e knows to be in the changelog; then e's records
 * to fn as engine_batch_changes gives them, without e's dictionary (it is
 * not written to the changelog: n writes its own if it has to). */
void state_dict_handover(Engine *e, Engine *n);
void state_changes(Engine *e, int64_t next_offset, EngineRecordFn fn, void *ud);
/* x's changelog record into b; x's state from a record (0, -EINVAL: it did
 * not decode, x holds what did). */
void state_ent_write(Engine *e, const Ent *x, Buf *b);
int state_ent_read(Engine *e, Ent *x, const void *val, size_t len);
/* ent is the last one touched: take it out of the batch again (a change
 * that turned out to be none), its undo record with it. */
void state_untouch(Engine *e, Ent *ent);

/* window.c */
void window_insert(Engine *e, Ent *ent, uint32_t type, const Value *ev, int64_t t, const VmFrame *f);
int window_agg(void *ud, const RuleSet *rs, uint32_t agg, const VmFrame *f, Value *ret);
void window_free(Engine *e, Win *w);
size_t window_bytes(const Engine *e, const Win *w);
/* A zeroed ring of cap rows for aggregate a, with room for its running
 * aggregate (built from the rows on first use: Win.run 0). */
int64_t *window_alloc(Engine *e, const Aggregate *a, uint32_t cap);

/* grade.c */
void grade_update(Engine *e, Ent *ent, int64_t now, GradeCause cause, const char *cause_id, size_t cause_len);
/* The official model (grading.yaml official:): the start of the cycle
 * holding t, the start of the next one after cycle start c, and the
 * official score of x (static capped + the latest evaluation, or the
 * static part alone or scaled before any). */
int64_t grade_cycle_start(const Official *of, int64_t t);
int64_t grade_cycle_next(const Official *of, int64_t c);
double grade_official_score(Engine *e, const Ent *x);
double grade_static_capped(Engine *e, const Ent *x);
/* A new cycle since the last one x was graded in: its steps are carried
 * into the assessment the next regrade makes. */
void grade_cycle_roll(Engine *e, Ent *x, int64_t now);
double grade_score(Engine *e, Ent *ent, int64_t now);
int32_t grade_band(const Grading *g, double score);
uint64_t grade_live_flags(Ent *ent, int64_t now);

/* output.c */
void out_alert(Engine *e, Ent *ent, const Rule *r, int64_t t, bool timer, const Str *key,
               const Value *ev, const char *evidence, size_t evlen, double delta);
void out_adjustment(Engine *e, Ent *ent, int64_t t, GradeCause cause, const char *cause_id,
                    size_t cause_len, int16_t pg, int16_t pm, double pf, bool first, int32_t band,
                    double score, int16_t pheld);
void out_time(Buf *b, int64_t ms);
void out_num(Buf *b, double d);
void out_value(Engine *e, Buf *b, const Value *v, uint32_t slot, bool json);
void out_explain(Engine *e, Ent *ent, Buf *b);
/* The official grade's JSON object (grading.yaml official:). */
void out_official(Engine *e, Buf *b, const Ent *ent);
void out_explain_text(Engine *e, Ent *ent, Buf *b);

#endif
