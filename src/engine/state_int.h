/*
 * What the state files (state.c, state_dict.c, state_write.c,
 * state_read.c) share and no other file needs: the dictionaries read from
 * the changelog, mapped to the engine's rules, and the functions each file
 * gives the others.  The byte-level codec is state_codec.h.
 */
#ifndef RISKD_ENGINE_STATE_INT_H
#define RISKD_ENGINE_STATE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "src/engine/engine.h"
#include "src/engine/state_codec.h"

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

static inline bool s_eq(const char *s, uint32_t n, const char *z)
{
        return z && strlen(z) == n && memcmp(s, z, n) == 0;
}

/* state_dict.c: the dictionaries, and names looked up in the engine's rules */
StateDicts *state_dicts(Engine *e);
StateDicts *state_dict_own(Engine *e);
StateDict *state_dict_find(Engine *e, uint64_t id);
int state_dict_restore(Engine *e, const char *key, size_t klen, const void *val, size_t vlen);
void state_dict_changes(Engine *e, EngineRecordFn fn, void *ud);
void state_dict_committed(Engine *e);
void state_dict_aborted(Engine *e);
int32_t state_slot_in(Engine *e, const char *p, uint32_t n, uint8_t t, const uint32_t *cand, uint32_t ncand);
int32_t state_rule_by_id(Engine *e, const char *s, uint32_t n);
int32_t state_grade_by_name(Engine *e, const char *s, uint32_t n);
int32_t state_mode_by_name(Engine *e, const char *s, uint32_t n);
int32_t state_flag_by_name(Engine *e, const char *s, uint32_t n);

/* state_write.c: the partition record */
void state_meta_write(Engine *e, int64_t next, Buf *b);

/* state_read.c: the partition record read back; its resume offset, -1 if
 * it does not decode (r->bad) */
int64_t state_meta_read(Engine *e, Rd *r);

#endif
