/*
 * Events before they apply (hold.c), one part of struct Engine: the grace
 * buffer and the hints decoded ahead.
 */
#ifndef RISKD_ENGINE_HOLD_H
#define RISKD_ENGINE_HOLD_H

#include "include/riskd/engine.h"

/* An event held for the grace.  Held events are applied in event-time
 * order, events of the same time in the order they arrived (seq): one
 * order for every grace, the order in which grace 0 applies them on
 * arrival. */
typedef struct Held {
        int64_t time;
        uint64_t seq;           /* arrival order (Hold.seq) */
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

typedef struct Hold {
        Held *held;             /* min-heap (heap.h) in held_cmp order */
        uint32_t nheld, cheld;
        uint64_t seq;
        Ahead ahead[ENGINE_AHEAD];      /* hinted events, oldest at ahead_first */
        uint32_t ahead_first, nahead;
} Hold;

/* The earliest held event, NULL none. */
static inline const Held *hold_peek(const Hold *ho)
{
        return ho->nheld ? &ho->held[0] : (const Held *)0;
}

/* A copy of the event (bytes, its source) held, of event time `time`. */
void hold_push(Hold *ho, int64_t time, const char *bytes, size_t len, const SourcePos *src);
/* The earliest held event, taken out (there is one): the caller frees its
 * bytes and topic. */
Held hold_pop(Hold *ho);
void hold_free(Hold *ho);
/* The hinted entry for bytes, dropping the hints before it; NULL if none. */
Ahead *hold_ahead_take(Hold *ho, const char *bytes, size_t len);
/* One step of loading for each hinted event still to come. */
void hold_ahead_stage(Engine *e);

#endif
