/*
 * The timer heap (timer.c), one part of struct Engine.  Declared apart so
 * that what schedules a timer (grade.c, window.c, compact.c, state.c via
 * timer_rebuild) needs only this and ent.h, not the event flow.
 */
#ifndef RISKD_ENGINE_TIMER_H
#define RISKD_ENGINE_TIMER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct Engine Engine;
typedef struct Ent Ent;

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

typedef struct Timers {
        Timer *tm;              /* min-heap (heap.h) in (time, class, key) order */
        uint32_t ntm, ctm;
        bool bulk;              /* timer_rebuild: appended, heapified at its end */
} Timers;

static inline Ent *timer_ent(const Timer *t)
{
        return (Ent *)(t->ent & ~(uintptr_t)1);
}

/* The earliest entry, NULL none. */
static inline const Timer *timer_peek(const Timers *ts)
{
        return ts->ntm ? &ts->tm[0] : (const Timer *)0;
}

/* x has an item due at time (absent: of an absent() rule): its timer
 * entry comes up by then. */
void timer_want(Engine *e, Ent *x, int64_t time, bool absent);
/* The earliest entry, taken out (there is one). */
Timer timer_pop(Timers *ts);
/* Every entry through keep(), which may rename its Ent (to one with the
 * same key: the order stays) or drop it (false); the heap made again if
 * any went. */
void timer_filter(Timers *ts, bool (*keep)(Timer *t));
void timer_free(Timers *ts);
/* The enterprise's next timer entry after (done, done_absent), TIME_UNSET
 * none, as timer_rebuild and the timers make it. */
int64_t timer_next(Engine *e, const Ent *x, int64_t done, bool done_absent, bool *absent);
/* x's next entry after (done, done_absent) pushed, if it has one. */
void timer_schedule(Engine *e, Ent *x, int64_t done, bool done_absent);
/* Timers are derived state: after a restore or an abort, made again from
 * the enterprises. */
void timer_rebuild(Engine *e);

#endif
