/*
 * struct Engine, made of the parts each file of src/engine/ owns: the
 * enterprise table (EntTable, ent.h), the timer heap (Timers, timer.h),
 * the events before they apply (Hold, hold.h), what the rules imply
 * (Plan, plan.h), the compact form and the budget (Compact, compact.h),
 * the enterprises a restore found ahead of the partition record (Reach,
 * reach.h);
 * the rest is the event flow's (engine.c) and the batches' (state.c).
 * Every file of the engine includes this header for the struct; which
 * file's functions it calls is what says what it depends on: grading,
 * windows, outputs, records and compaction call ent.c, timer.c and
 * score.c, never the event flow.  The inline accessors below read more
 * than one part; the prototypes of the files without a header follow.
 */
#ifndef RISKD_ENGINE_PRIV_H
#define RISKD_ENGINE_PRIV_H

#include <assert.h>

#include "include/riskd/engine.h"
#include "include/riskd/util.h"
#include "src/engine/compact.h"
#include "src/engine/ent.h"
#include "src/engine/hold.h"
#include "src/engine/intern.h"
#include "src/engine/plan.h"
#include "src/engine/reach.h"
#include "src/engine/timer.h"

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
        Hold hold;              /* held for the grace, hinted (hold.c) */
        char *scratch;
        Value *rowbuf;          /* one window row laid out as an event */
        Value *snapbuf;         /* a snapshot laid out as an event */
        Value *snapvals;        /* a snapshot's values in order (transient) */
        Value *profbuf;         /* the enterprise profile laid out by slot */
        const Ent *prof_ent;    /* whose profile profbuf holds, NULL none */
        uint64_t prof_have;     /* which of its values (bit per prof index; all: Plan.prof_all) */
        char vmscratch[4096];
        Plan plan;              /* what the rules imply (plan.c) */
        Value *sexprbuf;                /* an expression's profile laid out by slot (all null between uses) */
        /* ent_static_score of a set of static bits (one word), direct-mapped:
         * most enterprises match one of a few sets */
        struct {
                uint64_t bits;
                double score;
        } sscache[64];

        EntTable ents;          /* the enterprises (ent.c) */
        Timers timers;          /* their timer entries (timer.c) */
        uint32_t *due;          /* key states due at one timer entry (scratch) */
        uint32_t cdue;

        int64_t push_ts;        /* SourcePos.timestamp of the engine_push running (OutMeta) */
        uint64_t push_marks;    /* SourcePos.replay_marks of the engine_push running: what
                                 * it applies, held or not, the crashed run applied too */
        Reach reach;            /* the enterprises ahead of the partition record (reach.c) */
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
        Compact cp;             /* idle enterprises in compact form, the state budget (compact.c) */
        int32_t kh_slot;
        uint32_t kh_hash;
        Buf out;                /* output document being built */
        Buf msg;
        /* each rule's ,"desc":...,"basis":... as the enterprise document
         * writes it, escaped once (output.c): rule i's at rtext.p +
         * rtext_off[i], up to rtext_off[i + 1]; NULL until first used */
        Buf rtext;
        uint32_t *rtext_off;
};

/* When ks's timer should act, TIME_UNSET: it has none. */
static inline int64_t ks_due(const Engine *e, const KeyState *ks)
{
        return ks->armed ? time_add_sat(ks->at, e->plan.ri[ks->rule].due_after) : TIME_UNSET;
}

/* The enterprise in table slot i, NULL none. */
static inline Ent *tab_ent(const Engine *e, uint32_t i)
{
        assert(i < e->ents.tabcap);
        return tag_ptr(e->ents.tab[i], e->ents.tab_untagged);
}

static inline uint64_t *ent_recent(const Engine *e, const Ent *x)
{
        (void)e;
        return (uint64_t *)(void *)((char *)ent_key(x) + ent_key_size(ent_key(x)->len));
}

static inline uint32_t ent_static_words(const Engine *e)
{
        return (e->plan.nstatic + 63) / 64;
}

static inline uint64_t *ent_static(const Engine *e, const Ent *x)
{
        return ent_recent(e, x) + e->cfg.recent_ids;
}

/* The points of static rule k for x (its bit set): a number, or the
 * value of its score expression over the kept profile (capped by
 * max_score; null contributes nothing). */
static inline double ent_static_points(const Engine *e, const Ent *x, uint32_t k)
{
        return e->plan.static_expr[k] ? ent_static_expr(e, x, k) : e->plan.static_points[k];
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

/* Lay out ent's profile unless it already is: called before evaluating
 * anything that reads it, so an event whose rules never look at the
 * profile does not touch its lines. */
static inline void ent_profile_need(Engine *e, Ent *ent)
{
        if (e->prof_ent != ent || e->prof_have != e->plan.prof_all)
                ent_profile_fill(e, ent);
}
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
        assert(oc < 32768); /* the doubling stays in 16 bits */
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

/* The event time of x's latest change (the enterprise document's as_of):
 * the latest timer that acted on it, if after its last applied event,
 * else that event's time; TIME_UNSET: neither. */
static inline int64_t ent_changed(const Ent *x)
{
        return x->r->changed != TIME_UNSET ? x->r->changed : x->last_time;
}

/* x changed at t: by an event (t its last_time: the rare part keeps
 * nothing, or forgets a timer's time) or by a timer acting at t. */
static inline void ent_changed_set(Engine *e, Ent *x, int64_t t)
{
        if (t == x->last_time) {
                if (x->r->changed != TIME_UNSET)
                        ent_rare(e, x)->changed = TIME_UNSET;
                return;
        }
        ent_rare(e, x)->changed = t;
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

/* engine.c */
/* A held event's bytes (a partition record's, state.c) held again. */
void engine_held_push(Engine *e, const char *bytes, size_t len, const SourcePos *src);

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

/* score.c */
/* x's score at now: the static part and the contributions live at now. */
double score_of(Engine *e, Ent *ent, int64_t now);
/* The band (index) score falls in, -1: the grading has none. */
int32_t score_band(const Grading *g, double score);
/* The flags live at now, a bit per flag. */
uint64_t score_flags(Ent *ent, int64_t now);
/* The official model (grading.yaml official:): the start of the cycle
 * holding t, the start of the next one after cycle start c, and the
 * official score of x (static capped + the latest evaluation, or the
 * static part alone or scaled before any). */
int64_t score_cycle_start(const Official *of, int64_t t);
int64_t score_cycle_next(const Official *of, int64_t c);
double score_official(Engine *e, const Ent *x);
double score_static_capped(Engine *e, const Ent *x);
/* What the VM reads of ent's state at now, into *s. */
void score_vmstate(Engine *e, Ent *ent, int64_t now, VmState *s);

/* grade.c */
void grade_update(Engine *e, Ent *ent, int64_t now, GradeCause cause, const char *cause_id, size_t cause_len);
/* A new cycle since the last one x was graded in: its steps are carried
 * into the assessment the next regrade makes. */
void grade_cycle_roll(Engine *e, Ent *x, int64_t now);
/* An adjustment (adjustment_id id, at t, for cause) gave x its grade,
 * mode and frequency: the change joins x's grade history, the oldest
 * dropped past GRADE_HISTORY_MAX. */
void grade_history_add(Engine *e, Ent *x, int64_t t, GradeCause cause, uint64_t id);

/* alerts.c: the alert lifecycle */
extern const char *const alert_state_names[];
extern const char *const alert_cause_names[];
/* Rule r (enabled) fired at t as alert id (key: its per: key, NULL none):
 * the alerts its closes: names close (resolved), and its own opens if the
 * rule has a lifecycle (superseding the open one of its key, or the oldest
 * past cfg.max_keys). */
void alerts_fire(Engine *e, Ent *x, const Rule *r, int64_t t, uint64_t id, const Str *key, const char *evid,
                 size_t evlen);
/* x's timer entry at now (plain class): deadlines passed escalate, expiries
 * passed close, in the order the alerts opened. */
void alerts_due(Engine *e, Ent *x, int64_t now);
/* The earliest deadline or expiry of x's alerts after `after`, TIME_FOREVER none. */
int64_t alerts_next(const Ent *x, int64_t after);
void alerts_clear(Engine *e, EntRare *rr);
/* A reload: ox's (the old engine o's) open alerts that x (under n's rules)
 * no longer holds are closed, superseded, at now. */
void alerts_superseded_by_reload(Engine *n, Ent *x, const Engine *o, const Ent *ox, int64_t now);

/* output.c */
/* The alert's document; returns its alert_id (as a number). */
uint64_t out_alert(Engine *e, Ent *ent, const Rule *r, int64_t t, bool timer, const Str *key,
               const Value *ev, const char *evidence, size_t evlen, double delta);
/* An alert's transition from a->state to `to` (riskd.alert_state/1):
 * rule_id its rule's id, evidence the event that caused it (NULL none). */
void out_alert_state(Engine *e, const Ent *x, const OpenAlert *a, const char *rule_id, AlertState to,
                     AlertCause cause, const char *evid, size_t evlen, int64_t t);
void out_adjustment(Engine *e, Ent *ent, int64_t t, GradeCause cause, const char *cause_id,
                    size_t cause_len, int16_t pg, int16_t pm, double pf, bool first, int32_t band,
                    double score, int16_t pheld);
void out_time(Buf *b, int64_t ms);
void out_num(Buf *b, double d);
/* ,"score","static_score","band": an enterprise's score, its static part
 * and the band of the score (the adjustment, the enterprise document). */
void out_score_json(Engine *e, Buf *b, const Ent *ent, double score, int32_t band);
/* "official":{...},"index":{"score","band" of the two scores, the index
 * object left open (the adjustment adds its previous_band). */
void out_official_index(Engine *e, Buf *b, const Ent *ent, double score);
/* {"rule_id","points" of an item of a list, after a comma unless it is
 * the first (*any) */
void out_rule_points(Engine *e, Buf *b, bool *any, uint32_t rule, double points);
/* An open alert's times: ,"opened_at","deadline","expires" (null: none,
 * never). */
void out_alert_span(Buf *b, const OpenAlert *a);
/* An open alert's members, no braces: alert_id, rule_id, key, state and
 * its times (the enterprise document, the query API's alert list). */
void out_open_alert(Engine *e, Buf *b, const OpenAlert *a);
void out_value(Engine *e, Buf *b, const Value *v, uint32_t slot, bool json);
/* The official grade's JSON object (grading.yaml official:). */
void out_official(Engine *e, Buf *b, const Ent *ent);
/* What the adjustment and the enterprise document (explain.c) both write:
 * an id as a quoted hex string; a time or null; {grade, mode,
 * inspections_per_year}; the live flags and the live contributions at now
 * (verbose: with each rule's texts and its rectify deadline, the
 * enterprise document's); rule r's ,"desc":...,"basis":... */
void out_hex_id(Buf *b, uint64_t h);
void out_time_or_null(Buf *b, int64_t t);
void out_grading_json(Engine *e, Buf *b, int32_t grade, int32_t mode, double per_year);
void out_flags_json(Engine *e, Buf *b, const Ent *ent, int64_t now);
void out_contributions_json(Engine *e, Buf *b, const Ent *ent, int64_t now, bool verbose);
void out_rule_texts(Engine *e, Buf *b, uint32_t r);

/* explain.c: the enterprise document (riskd.enterprise/1) and the explain
 * view for people */
void out_explain(Engine *e, Ent *ent, Buf *b);
void out_explain_text(Engine *e, Ent *ent, Buf *b);

#endif

