/*
 * The enterprises a restore found ahead of the partition record (reach.c),
 * one part of struct Engine.  With transactions off a batch writes its
 * replay mark, then its enterprises' records, then the partition record:
 * an enterprise record that comes after the last partition record of the
 * changelog was written by a batch that crashed before its partition
 * record, and holds every event of that batch.  The set keeps those
 * enterprises by key (a compacted or not yet loaded enterprise is still
 * known), each with the replay mark before its record (1 = the first mark
 * after the partition record), so that engine_push skips the events it
 * holds when they are read again (SourcePos.replay_marks).
 */
#ifndef RISKD_ENGINE_REACH_H
#define RISKD_ENGINE_REACH_H

#include <stdbool.h>
#include <stdint.h>

#include "include/riskd/util.h"

/* Replay marks told apart after a partition record: one bit each in
 * SourcePos.replay_marks.  A record after more marks than that is not
 * kept (its enterprise tells repeats by its recent ids, as before). */
#define REACH_MARKS 64

typedef struct ReachSlot {
        uint64_t hash;
        uint32_t gen;           /* in the set when Reach.gen */
        uint32_t off, len;      /* the key in Reach.keys */
        uint32_t mark;          /* 1..REACH_MARKS */
} ReachSlot;

typedef struct Reach {
        uint32_t mark;          /* replay marks read since the last partition record */
        uint32_t gen;           /* emptied by moving on a generation: O(1) per partition record */
        uint32_t n, cap;        /* keys in the set, slots (0 or a power of two) */
        ReachSlot *slot;
        Buf keys;
} Reach;

/* A partition record: the records before it are not ahead. */
void reach_clear(Reach *r);
/* A replay mark: the records after it hold the events below it. */
void reach_mark(Reach *r);
/* An enterprise record after the last partition record (a later one of
 * the same key replaces the earlier's mark). */
void reach_put(Reach *r, const char *key, size_t klen);
/* Whether the key's restored record holds an event below the marks of
 * the bits of marks (SourcePos.replay_marks). */
bool reach_holds(const Reach *r, const char *key, size_t klen, uint64_t marks);
/* dst (empty) gets src's set (engine_reload). */
void reach_copy(Reach *dst, const Reach *src);
void reach_free(Reach *r);

#endif
