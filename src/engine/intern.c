/*
 * String interning for engine state (see intern.h), and the tagged tables'
 * shared mechanics (tagtab_*): linear probing with backward-shift
 * deletion, so a table never holds tombstones.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/util.h"
#include "src/engine/intern.h"

/* The string of slot value v (tagged or bare, as the table holds them). */
static inline IStr *slot_ptr(const Intern *in, uintptr_t v)
{
        return tag_ptr(v, in->untagged);
}

void intern_init(Intern *in, Pool *pool)
{
        in->pool = pool;
        in->cap = 1024;
        in->n = 0;
        in->bytes = 0;
        in->untagged = sizeof(uintptr_t) < 8;
        in->tab = xcalloc(in->cap, sizeof(uintptr_t));
        util_advise_huge(in->tab, in->cap * sizeof(uintptr_t));
}

void intern_deinit(Intern *in)
{
        for (uint32_t i = 0; i < in->cap; i++)
                if (in->tab[i]) {
                        IStr *e = slot_ptr(in, in->tab[i]);
                        pool_free(in->pool, e, sizeof(IStr) + e->len + 1);
                }
        free(in->tab);
        in->tab = NULL;
        in->n = in->cap = 0;
}

void tagtab_untag(uintptr_t *tab, uint32_t cap)
{
        for (uint32_t i = 0; i < cap; i++)
                tab[i] &= TAG_ADDR_MASK;
}

uintptr_t *tagtab_grow(uintptr_t *old, uint32_t oc, uint32_t cap, bool untagged, TagHashFn hash)
{
        uintptr_t *tab = xcalloc(cap, sizeof(uintptr_t));
        util_advise_huge(tab, cap * sizeof(uintptr_t));
        for (uint32_t i = 0; i < oc; i++) {
                if (!old[i])
                        continue;
                uint32_t k = (uint32_t)hash(tag_ptr(old[i], untagged)) & (cap - 1);
                while (tab[k])
                        k = (k + 1) & (cap - 1);
                tab[k] = old[i];
        }
        free(old);
        return tab;
}

void tagtab_remove(uintptr_t *tab, uint32_t cap, const void *obj, uint64_t h, bool untagged, TagHashFn hash)
{
        uint32_t mask = cap - 1, k = (uint32_t)h & mask;
        while (tag_ptr(tab[k], untagged) != obj)
                k = (k + 1) & mask;
        uint32_t hole = k;
        for (uint32_t j = (k + 1) & mask; tab[j]; j = (j + 1) & mask) {
                uint32_t home = (uint32_t)hash(tag_ptr(tab[j], untagged)) & mask;
                bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
                if (movable) {
                        tab[hole] = tab[j];
                        hole = j;
                }
        }
        tab[hole] = 0;
}

static uint64_t istr_hash_of(const void *is)
{
        return istr_hash(is);
}

IStr *intern_get(Intern *in, const char *s, uint32_t len)
{
        uint64_t h = hash_fast(s, len);
        uint32_t k = (uint32_t)h & (in->cap - 1);
        if (!in->untagged) {
                for (uintptr_t v; (v = in->tab[k]); k = (k + 1) & (in->cap - 1)) {
                        if (!tag_match(v, h))
                                continue;
                        IStr *e = tag_ptr(v, false);
                        if (e->len == len && memcmp(e->s, s, len) == 0) {
                                e->refs++;
                                return e;
                        }
                }
        } else {
                for (IStr *e; (e = (IStr *)in->tab[k]); k = (k + 1) & (in->cap - 1))
                        if (e->len == len && memcmp(e->s, s, len) == 0) {
                                e->refs++;
                                return e;
                        }
        }
        IStr *e = pool_alloc(in->pool, sizeof(IStr) + len + 1);
        e->refs = 1;
        e->len = len;
        memcpy(e->s, s, len);
        e->s[len] = 0;
        if (!in->untagged && !tag_fits(e)) {
                tagtab_untag(in->tab, in->cap);
                in->untagged = true;
        }
        in->tab[k] = tag_make(e, h, in->untagged);
        in->n++;
        in->bytes += sizeof(IStr) + len + 1;
        /* up to three quarters full: the table is a good part of the state
         * (a pointer per slot), and lookups are off the per-event path */
        if ((uint64_t)in->n * 4 > (uint64_t)in->cap * 3) {
                in->tab = tagtab_grow(in->tab, in->cap, in->cap * 2, in->untagged, istr_hash_of);
                in->cap *= 2;
        }
        return e;
}

IStr *intern_ref(IStr *is)
{
        if (is)
                is->refs++;
        return is;
}

void intern_put(Intern *in, IStr *is)
{
        if (!is || --is->refs > 0)
                return;
        tagtab_remove(in->tab, in->cap, is, istr_hash(is), in->untagged, istr_hash_of);
        in->n--;
        in->bytes -= sizeof(IStr) + is->len + 1;
        pool_free(in->pool, is, sizeof(IStr) + is->len + 1);
}

Value intern_value(Intern *in, Value v)
{
        if (v.tag == VT_STR) {
                IStr *is = intern_get(in, v.s.p, v.s.len);
                v.s.p = is->s;
        }
        return v;
}

void intern_value_put(Intern *in, Value v)
{
        if (v.tag == VT_STR && v.s.p)
                intern_put(in, istr_of(v.s.p));
}
