/*
 * The enterprises ahead of the partition record (reach.h has what they
 * are): an open-addressing set of keys, filled while a restore reads the
 * changelog in log order and emptied at each partition record.  Apart
 * from state.c because it is not state: it lives only until the inputs
 * are past their replay marks, and no record is written of it.
 *
 * Invariants: slots of generation gen hold n keys, n <= cap / 2; a
 * slot's key is keys[off, off + len).
 */
#include <stdlib.h>
#include <string.h>

#include "src/engine/reach.h"

static uint64_t reach_hash(const char *key, size_t klen)
{
        return hash64(key, klen, HASH64_INIT);
}

/* The slot of key, or the empty slot where it would go. */
static ReachSlot *reach_find(const Reach *r, const char *key, size_t klen, uint64_t h)
{
        for (uint32_t i = (uint32_t)h & (r->cap - 1);; i = (i + 1) & (r->cap - 1)) {
                ReachSlot *s = &r->slot[i];
                if (s->gen != r->gen)
                        return s;
                if (s->hash == h && s->len == klen && memcmp(r->keys.p + s->off, key, klen) == 0)
                        return s;
        }
}

void reach_clear(Reach *r)
{
        r->mark = 0;
        r->n = 0;
        r->keys.len = 0;
        if (++r->gen == 0) { /* wrapped: every slot's gen could match again */
                if (r->cap)
                        memset(r->slot, 0, r->cap * sizeof(ReachSlot));
                r->gen = 1;
        }
}

void reach_mark(Reach *r)
{
        if (r->mark <= REACH_MARKS)
                r->mark++;
}

static void reach_grow(Reach *r)
{
        ReachSlot *old = r->slot;
        uint32_t ocap = r->cap;
        r->cap = ocap ? ocap * 2 : 64;
        r->slot = xcalloc(r->cap, sizeof(ReachSlot));
        uint32_t gen = r->gen;
        r->gen = 1;
        for (uint32_t i = 0; i < ocap; i++)
                if (old[i].gen == gen) {
                        ReachSlot s = old[i];
                        s.gen = 1;
                        *reach_find(r, r->keys.p + s.off, s.len, s.hash) = s;
                }
        free(old);
}

void reach_put(Reach *r, const char *key, size_t klen)
{
        if (!r->mark || r->mark > REACH_MARKS || klen > UINT32_MAX)
                return; /* no mark since the partition record (transactions on), or too many */
        if (!r->gen)
                r->gen = 1;
        if ((r->n + 1) * 2 > r->cap)
                reach_grow(r);
        uint64_t h = reach_hash(key, klen);
        ReachSlot *s = reach_find(r, key, klen, h);
        if (s->gen != r->gen) {
                *s = (ReachSlot){.hash = h, .gen = r->gen, .off = (uint32_t)r->keys.len, .len = (uint32_t)klen};
                buf_put(&r->keys, key, klen);
                r->n++;
        }
        s->mark = r->mark;
}

bool reach_holds(const Reach *r, const char *key, size_t klen, uint64_t marks)
{
        if (!r->n || !marks)
                return false;
        const ReachSlot *s = reach_find(r, key, klen, reach_hash(key, klen));
        return s->gen == r->gen && (marks >> (s->mark - 1) & 1);
}

void reach_copy(Reach *dst, const Reach *src)
{
        dst->mark = src->mark;
        for (uint32_t i = 0; i < src->cap; i++)
                if (src->slot[i].gen == src->gen) {
                        const ReachSlot *s = &src->slot[i];
                        uint32_t m = dst->mark;
                        dst->mark = s->mark;
                        reach_put(dst, src->keys.p + s->off, s->len);
                        dst->mark = m;
                }
}

void reach_free(Reach *r)
{
        free(r->slot);
        buf_free(&r->keys);
        *r = (Reach){0};
}
