/*
 * The compact form of idle enterprises and the state budget (compact.c),
 * one part of struct Engine, and the record a compact Ent holds.
 */
#ifndef RISKD_ENGINE_COMPACT_H
#define RISKD_ENGINE_COMPACT_H

#include <stdbool.h>
#include <stdint.h>

#include "include/riskd/util.h"

typedef struct Engine Engine;
typedef struct Ent Ent;

/* After the key of a compact Ent (Ent.compact): what its timers need
 * without the state (the entry timer_rebuild would make for it in
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

typedef struct Compact {
        /* replaced Ents (Ent.gone) a timer entry may still name, freed at
         * the next heap pass */
        Ent **gone;
        uint32_t ngone, cgone;
        uint64_t budget;                /* the state budget, 0 none */
        uint64_t compact_after;         /* applying: the next budget-driven compaction pass */
        uint64_t compact_count;         /* applying at the last compact_every pass */
        uint32_t ncompact;              /* enterprises in compact form */
        uint32_t compact_pos;           /* the table slot engine_compact goes on from */
        uint8_t *lz_dict;               /* the coder's dictionary, made at the first compaction */
        uint32_t lz_dlen;
        int32_t *lz_dhash;              /* per hash of 4 bytes: the last dictionary position, -1 */
        uint64_t *lz_h;                 /* per hash: lz_epoch << 32 | the last position in the input */
        uint64_t lz_epoch;
        Buf lz_buf;                     /* a record decoded (transient) */
} Compact;

/* The full form of compact x, in table slot i (tab[i] names x), x freed
 * (or kept for the heap pass, Ent.gone); push: give it its timer entry
 * (not when the caller acts on it at once, the entry having come up). */
Ent *compact_expand(Engine *e, uint32_t i, Ent *x, bool push);
/* The full form of compact x in a new Ent outside the table (x stays):
 * a reader's copy, freed with compact_ent_free. */
Ent *compact_decode(Engine *e, const Ent *x);
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
/* Release what compaction holds (the timer heap emptied first: the gone
 * Ents go with it). */
void compact_deinit(Engine *e);

#endif
