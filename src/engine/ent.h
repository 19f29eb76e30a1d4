/*
 * An enterprise's state and the table that finds it (ent.c): the Ent and
 * what hangs off it (key states and their snapshots, contributions, flags,
 * windows' rings, the official grade), its packed profile, and EntTable,
 * the part of struct Engine that holds the table and the profile's
 * layout.  Declared apart from the event flow so that grading, windows,
 * outputs, records and compaction depend on the state they read and
 * write, not on how events reach it.
 */
#ifndef RISKD_ENGINE_ENT_H
#define RISKD_ENGINE_ENT_H

#include <assert.h>

#include "include/riskd/engine.h"
#include "include/riskd/util.h"
#include "src/engine/intern.h"
#include "src/engine/plan.h"

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

/* The ring position of row i (i <= cap, head < cap: one subtraction
 * brings it back in range; i == cap comes back to head): no division. */
static inline uint32_t ring_at(const Win *w, uint32_t i)
{
        assert(i <= w->cap && w->head < w->cap);
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

/* The state of an open alert (alerts.c). */
#define ALERT_STATE_LIST(X) \
        X(ALERT_OPEN, "open") \
        X(ALERT_ESCALATED, "escalated") \
        X(ALERT_CLOSED, "closed")

typedef enum AlertState {
#define X(e, name) e,
        ALERT_STATE_LIST(X)
#undef X
} AlertState;

/* Why an alert changed state ("cause" of riskd.alert_state/1). */
#define ALERT_CAUSE_LIST(X) \
        X(ACAUSE_DEADLINE, "deadline")          /* its rectify deadline passed: escalated */ \
        X(ACAUSE_EXPIRED, "expired")            /* its expires: passed */ \
        X(ACAUSE_RESOLVED, "resolved")          /* a rule naming it in closes: fired */ \
        X(ACAUSE_SUPERSEDED, "superseded")      /* a newer alert of its rule and key, the
                                                 * limit, or a reload without its rule */

typedef enum AlertCause {
#define X(e, name) e,
        ALERT_CAUSE_LIST(X)
#undef X
} AlertCause;

/* Open alerts per enterprise at most (EntRare.na, an array ent_grow
 * grows): beyond, the oldest is superseded. */
#define ALERTS_MAX 32767

/* An alert of a rule with a lifecycle (Rule.lifecycle), open or
 * escalated; a closed one is gone from the array.  Kept in the order the
 * alerts opened, which is the order transitions due at one time come in. */
typedef struct OpenAlert {
        uint64_t id;            /* the alert_id (its hex) */
        int64_t opened;         /* the alert's ts */
        int64_t expires;        /* when it closes by itself (expires:), TIME_FOREVER never */
        int64_t deadline;       /* rectify: deadline, TIME_UNSET none */
        IStr *key;              /* its per: key, NULL none (rule without per:) */
        uint16_t rule;
        uint8_t state;          /* ALERT_OPEN or ALERT_ESCALATED */
} OpenAlert;

/* The grade changes an enterprise keeps (EntRare.h, the array; the enterprise
 * document's grade_history): the latest GRADE_HISTORY_MAX, the oldest
 * dropped beyond.  Small and bounded because it is state: it is in every
 * changelog record, undo record and compact form of a graded enterprise
 * (about 17 bytes an entry coded), and in every enterprise document; a
 * dashboard that wants the whole history follows the adjustments topic.
 * 16 covers years of a normal enterprise (a grade changes a few times a
 * year) and the last months of a troubled one. */
#define GRADE_HISTORY_MAX 16

/* One grade change: what an adjustment made the enterprise (grade.c). */
typedef struct GradeChange {
        int64_t ts;             /* the adjustment's ts */
        uint64_t id;            /* its adjustment_id */
        double per_year;
        int16_t grade, mode;
        uint8_t cause;          /* GradeCause */
} GradeChange;

/* What most enterprises never hold (contributions, flags, the hysteresis
 * clock, the official grade, open alerts) and the grade history a graded
 * one holds, in a pool object of its own; Ent.r points
 * to rare_none (read only, all empty) until something is stored
 * (ent_rare). */
typedef struct EntRare {
        Contrib *c;
        FlagState *f;
        uint16_t nc, cc, nf, cf;
        int64_t below_since;    /* score below the held band since */
        OffState *o;            /* NULL: no official state */
        OpenAlert *a;           /* open and escalated alerts (alerts.c) */
        uint16_t na, ca;
        GradeChange *h;         /* the latest grade changes, oldest first */
        uint16_t nh, ch;
        /* when a timer last acted on it, if after its last event
         * (ent_changed); TIME_UNSET: its last event is its latest change */
        int64_t changed;
} EntRare;

extern const EntRare rare_none;

/* One pool object holds the struct, then the key (so a lookup's compare
 * reads the lines the event needs next), then the ring of recent event
 * id hashes (cfg.recent_ids), the static bits (of the static rules
 * matching at the last profile update) and the profile (EntTable.prof_bytes,
 * packed by field type, see ent_prof_get):
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

static inline EntKey *ent_key(const Ent *x)
{
        return (EntKey *)(void *)(uintptr_t)(x + 1);
}

static inline int ent_key_cmp(const EntKey *a, const EntKey *b)
{
        return str_order((Str){a->s, a->len}, (Str){b->s, b->len});
}

/* Keys in order, the enterprise as a whole (no key) first. */
static inline int ks_key_cmp(const KeyState *p, const KeyState *q)
{
        if (!p->keyed || !q->keyed)
                return p->keyed - q->keyed;
        return str_order(ks_key(p), ks_key(q));
}

/* A profile string, the enterprise's own: names and the like are
 * distinct per enterprise, so interning them would share nothing and cost
 * a table slot and a bigger header. */
typedef struct PStr {
        uint32_t len;
        char s[];
} PStr;


/* The enterprise table and the layout of every enterprise's pool object
 * (see Ent), one part of struct Engine. */
typedef struct EntTable {
        /* open addressing by key hash, at most half full: a slot is the Ent's
         * address tagged with its key hash (tag_make), so a lookup reads
         * one slot and touches only an Ent whose tag matches, which it
         * needs next anyway; 0 empty */
        uintptr_t *tab;
        uint32_t tabcap, nents;
        bool tab_untagged;
        uint8_t refused;        /* why ent_get_h made none: 1 max_enterprises, 2 the budget */
        /* an enterprise's profile, packed: per prof index at prof_off, by its
         * field type a string (a PStr pointer), a number or a time (8), an
         * enum (2), a bool (1); then a bit per index, set when it holds a
         * value (a fresh enterprise is all null) */
        uint16_t *prof_off;
        uint8_t *prof_tags;     /* the Value tag of each index's field type */
        uint16_t prof_present;  /* offset of the bits */
        uint16_t prof_bytes;
} EntTable;

/* ent.c */
/* The profile's layout (Plan.prof_slots) into e->ents, at engine_new. */
void ent_layout(Engine *e);
void ent_table_free(Engine *e);
/* An enterprise in state (in full form), NULL none. */
Ent *ent_find(Engine *e, const char *k, uint32_t len);
/* An enterprise in state or a new one (h: hash_fast(k, len)); a compact
 * enterprise comes back in full form; NULL: none made, e->ents.refused says why. */
Ent *ent_get_h(Engine *e, const char *k, uint32_t len, uint64_t h);
Ent *ent_get(Engine *e, const char *k, uint32_t len);
/* The enterprise of a key hash, without comparing keys (a prefetch). */
Ent *ent_peek(const Engine *e, uint64_t h);
/* Every enterprise, in full form, in key order (outputs that walk them
 * all do not depend on the table's layout): an array the caller frees. */
Ent **ent_sorted(Engine *e, uint32_t *n);
/* The pool object of a full Ent with a key of len bytes. */
size_t ent_size(const Engine *e, uint32_t len);
/* The table slot of x (in the table). */
uint32_t ent_slot_of(Engine *e, const Ent *x);
/* Profile value i of x (a string points into its PStr). */
Value ent_prof_get(const Engine *e, const Ent *x, uint32_t i);
/* Store v as profile value i of x, releasing the old one: a string is
 * copied; a value not of the slot's type is stored as null. */
void ent_prof_set(Engine *e, Ent *x, uint32_t i, Value v);
/* The profile laid out by slot in e->profbuf (ent_profile_need in
 * engine.h), and cleared again after the evaluation. */
void ent_profile_fill(Engine *e, Ent *ent);
void ent_profile_clear(Engine *e);
/* Only the values of the prof indexes in mask (an override that reads a
 * few of them, decided again at every event). */
void ent_profile_need_some(Engine *e, Ent *ent, uint64_t mask);
double ent_static_expr(const Engine *e, const Ent *x, uint32_t k);
void ent_remove(Engine *e, Ent *x);
void ent_clear(Engine *e, Ent *x);
/* Store a snapshot and the event id in ks->snap after its key, reusing
 * its memory when the size class allows.  by_slot: the values are
 * ev[ri->snap_slots[i]] (an event laid out by slot), else ev[i]. */
void ent_snap_set(Engine *e, KeyState *ks, const RuleInfo *ri, const Value *ev, bool by_slot, const char *id,
                  uint32_t idlen);
/* Drop the snapshot; the key stays. */
void ent_snap_drop(Engine *e, KeyState *ks);
/* Give ks (fresh) the per: key k[0..len). */
void ent_ks_key(Engine *e, KeyState *ks, const char *k, uint32_t len);
/* Release everything ks holds. */
void ent_ks_free(Engine *e, KeyState *ks);
/* The snapshot's values into out[0 .. ri->nsnap) (strings point into the
 * Snap); all null without a snapshot. */
void ent_snap_values(const KeyState *ks, const RuleInfo *ri, Value *out);
/* The snapshot's event id as text, "" without one; buf holds a UUID's
 * text while the caller needs it. */
const char *ent_snap_id(const KeyState *ks, char buf[40], size_t *len);
/* A canonical lowercase UUID (8-4-4-4-12) into 16 bytes, and back. */
bool uuid_pack(const char *s, uint32_t n, uint8_t out[16]);
void uuid_text(const uint8_t in[16], char out[37]);

#endif
