/*
 * Events on their way in before they apply: the events held for the
 * grace (a min-heap of Held over heap.h, released in event-time order by
 * the event flow) and the events hinted by engine_prefetch, decoded ahead
 * with their enterprises' lines loading (Ahead).  Apart from engine.c
 * because neither touches the enterprises' state: the grace buffer owns
 * copies of the events, the hints only read the table to load lines.
 *
 * Invariants: held[0..nheld) is a heap in held_cmp order; the hints are a
 * ring of nahead <= ENGINE_AHEAD entries from ahead_first, in the order
 * they were hinted.
 */
#include <stdlib.h>
#include <string.h>

#include "src/engine/engine.h"
#include "src/engine/heap.h"

static inline bool held_less(const Held *a, const Held *b)
{
        return held_cmp(a, b) < 0;
}

HEAP_DEFINE(held_heap, Held, held_less)

void hold_push(Hold *ho, int64_t time, const char *bytes, size_t len, const SourcePos *src)
{
        if (ho->nheld == ho->cheld) {
                ho->cheld = ho->cheld ? ho->cheld * 2 : 256;
                ho->held = xrealloc(ho->held, ho->cheld * sizeof(Held));
        }
        Held h = {.time = time, .seq = ho->seq++, .len = (uint32_t)len};
        h.bytes = xmalloc(len + 1);
        memcpy(h.bytes, bytes, len);
        if (src) {
                h.src = *src;
                h.topic = src->topic ? xstrdup(src->topic) : NULL;
                h.src.topic = h.topic;
                h.src.key = NULL; /* the message goes: a dead letter of it keys by enterprise */
                h.src.key_len = 0;
        }
        uint32_t i = ho->nheld++;
        held_heap_up(ho->held, i, h);
        assert(i == 0 || held_cmp(&ho->held[(i - 1) / 2], &ho->held[i]) <= 0);
}

Held hold_pop(Hold *ho)
{
        Held h = held_heap_pop(ho->held, &ho->nheld);
        assert(ho->nheld == 0 || held_cmp(&h, &ho->held[0]) < 0); /* seq makes the order strict */
        return h;
}

void hold_free(Hold *ho)
{
        for (uint32_t i = 0; i < ho->nheld; i++) {
                free(ho->held[i].bytes);
                free(ho->held[i].topic);
        }
        free(ho->held);
        ho->held = NULL;
        ho->nheld = ho->cheld = 0;
        for (uint32_t i = 0; i < ENGINE_AHEAD; i++) {
                decoder_free(ho->ahead[i].dec);
                free(ho->ahead[i].slots);
                free(ho->ahead[i].scratch);
        }
}

static void prefetch_lines(const void *p, size_t n)
{
        const char *c = (const char *)((uintptr_t)p & ~(uintptr_t)63), *end = (const char *)p + n;
        for (; c < end; c += 64)
                __builtin_prefetch(c);
}

void engine_prefetch(Engine *e, const char *bytes, size_t len)
{
        if (e->cfg.grace_ms)
                return;
        if (e->hold.nahead == ENGINE_AHEAD) { /* the oldest hint was never pushed */
                e->hold.ahead_first = (e->hold.ahead_first + 1) % ENGINE_AHEAD;
                e->hold.nahead--;
        }
        Ahead *a = &e->hold.ahead[(e->hold.ahead_first + e->hold.nahead) % ENGINE_AHEAD];
        if (!a->dec) {
                DecoderLimits lim = {.max_bytes = e->cfg.max_event_bytes};
                if (decoder_new(&a->dec, &e->rs->schema, &lim) < 0)
                        return;
                a->slots = xcalloc(e->rs->schema.nslots ? e->rs->schema.nslots : 1, sizeof(Value));
                a->scratch = xmalloc(e->cfg.max_event_bytes);
        }
        a->bytes = bytes;
        a->len = len;
        a->ev.slots = a->slots;
        a->ev.scratch = a->scratch;
        a->ev.scratch_size = e->cfg.max_event_bytes;
        a->rc = decoder_decode(a->dec, bytes, len, &a->ev);
        if (a->rc == DECODE_OK) {
                a->h = hash_fast(a->ev.enterprise.p, a->ev.enterprise.len);
                __builtin_prefetch(&e->ents.tab[(uint32_t)a->h & (e->ents.tabcap - 1)]);
        }
        e->hold.nahead++;
}

void engine_prefetch_reset(Engine *e)
{
        e->hold.nahead = 0;
        e->hold.ahead_first = 0;
}

/* The hinted entry for bytes, dropping the hints before it; NULL if none. */
Ahead *hold_ahead_take(Hold *ho, const char *bytes, size_t len)
{
        assert(ho->nahead <= ENGINE_AHEAD && ho->ahead_first < ENGINE_AHEAD);
        for (uint32_t k = 0; k < ho->nahead; k++) {
                uint32_t at = (ho->ahead_first + k) % ENGINE_AHEAD;
                if (ho->ahead[at].bytes == bytes && ho->ahead[at].len == len) {
                        ho->ahead_first = (at + 1) % ENGINE_AHEAD;
                        ho->nahead -= k + 1;
                        return &ho->ahead[at];
                }
        }
        return NULL;
}

/* One step for each hinted event still to come, deeper the closer it is.
 * Pushed 4 or more pushes from now: its table slot is loading (since
 * engine_prefetch).  3: the enterprise (struct, key, recent ids, static
 * bits, profile: a span that does not depend on the key's length, which
 * is not loaded yet).  2:
 * its arrays.  1: their key states' keys and snapshots, its windows'
 * ends.  Each level reads only what the level before loaded, one push
 * earlier, and only live state (the table as it is now). */
void hold_ahead_stage(Engine *e)
{
        size_t span = ent_size(e, 40); /* keys of up to 40 bytes (a USCC is 18) */
        for (uint32_t k = 0; k < e->hold.nahead && k < 3; k++) {
                const Ahead *a = &e->hold.ahead[(e->hold.ahead_first + k) % ENGINE_AHEAD];
                if (a->rc != DECODE_OK)
                        continue;
                Ent *x = ent_peek(e, a->h);
                if (!x) /* a new enterprise: nothing to load */
                        continue;
                if (k == 2) {
                        prefetch_lines(x, span);
                } else if (k == 1) {
                        prefetch_lines(x->ks, x->nks * sizeof(KeyState));
                        prefetch_lines(x->w, x->nw * sizeof(Win));
                        prefetch_lines(x->r->c, x->r->nc * sizeof(Contrib));
                } else {
                        for (uint32_t i = 0; i < x->nks; i++) {
                                if (x->ks[i].snap)
                                        __builtin_prefetch(x->ks[i].snap);
                        }
                        for (uint32_t i = 0; i < x->nw; i++) {
                                const Win *w = &x->w[i];
                                if (!w->n)
                                        continue;
                                uint32_t nrow = e->rs->aggs[w->agg].nrow_slots;
                                __builtin_prefetch(&w->t[w->head]);
                                __builtin_prefetch(&w->t[ring_at(w, w->n - 1)]);
                                __builtin_prefetch(&win_v(w)[(size_t)ring_at(w, w->n - 1) * nrow]);
                        }
                }
        }
}
