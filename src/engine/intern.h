/*
 * Interned, reference-counted strings for engine state: window rows and
 * contributions keep device ids, sample codes and event ids that repeat
 * across many rows; each distinct string is stored once.  A Value of tag
 * VT_STR held in a window row or a contribution points into an IStr (a
 * key state's key and snapshot are in its Snap, a profile string is a
 * PStr).
 */
#ifndef RISKD_ENGINE_INTERN_H
#define RISKD_ENGINE_INTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "include/riskd/util.h"
#include "include/riskd/value.h"

/* No hash is kept: the table's slot has 16 bits of it, which is enough
 * to pass over other strings, and growing or deleting works it out again
 * from the bytes (hash_fast, as cheap as reading a stored one). */
typedef struct IStr {
        uint32_t refs, len;
        char s[];               /* NUL terminated */
} IStr;

static inline uint64_t istr_hash(const IStr *is)
{
        return hash_fast(is->s, is->len);
}

/* The engine's hash tables (the intern table, the enterprise table) keep
 * one word per slot: the object's address, its top 16 bits the top 16
 * bits of the object's hash, so a probe reads an object only when those
 * match.  Should an address ever use the top bits (not seen in x86-64 or
 * arm64 user space), a table falls back to bare addresses ("untagged") and
 * compares what they point to. */
#define TAG_SHIFT 48
#define TAG_ADDR_MASK (((uintptr_t)1 << TAG_SHIFT) - 1)

static inline uintptr_t tag_make(const void *p, uint64_t h, bool untagged)
{
        return untagged ? (uintptr_t)p : (uintptr_t)p | (uintptr_t)(h >> TAG_SHIFT) << TAG_SHIFT;
}

static inline void *tag_ptr(uintptr_t v, bool untagged)
{
        return (void *)(untagged ? v : v & TAG_ADDR_MASK);
}

/* Slot value v (tagged) may hold an object of hash h. */
static inline bool tag_match(uintptr_t v, uint64_t h)
{
        return (v & ~TAG_ADDR_MASK) == (uintptr_t)(h >> TAG_SHIFT) << TAG_SHIFT;
}

/* p can be tagged. */
static inline bool tag_fits(const void *p)
{
        return ((uintptr_t)p & ~TAG_ADDR_MASK) == 0;
}

/* The shared mechanics of such a table (linear probing, a power-of-two
 * capacity); hash gives the hash of an object the table holds. */
typedef uint64_t (*TagHashFn)(const void *obj);
/* Every slot becomes a bare address. */
void tagtab_untag(uintptr_t *tab, uint32_t cap);
/* A table of cap slots holding old's oc (which it frees). */
uintptr_t *tagtab_grow(uintptr_t *old, uint32_t oc, uint32_t cap, bool untagged, TagHashFn hash);
/* Remove obj, whose hash is h (backward-shift deletion: later entries of
 * its cluster move into the hole, so the table never holds tombstones). */
void tagtab_remove(uintptr_t *tab, uint32_t cap, const void *obj, uint64_t h, bool untagged, TagHashFn hash);

typedef struct Intern {
        Pool *pool;             /* where the strings live (not owned) */
        /* a slot: the IStr's address, tagged (tag_make); 0 empty */
        uintptr_t *tab;
        uint32_t cap, n;
        uint64_t bytes;
        bool untagged;          /* an address used the top bits: slots hold bare addresses */
} Intern;

void intern_init(Intern *in, Pool *pool);
void intern_deinit(Intern *in);
/* A reference to the interned copy of s[0..len) (refs + 1). */
IStr *intern_get(Intern *in, const char *s, uint32_t len);
IStr *intern_ref(IStr *is);
/* Drop a reference; frees at zero.  Accepts NULL. */
void intern_put(Intern *in, IStr *is);

static inline IStr *istr_of(const char *p)
{
        return (IStr *)(void *)(p - offsetof(IStr, s));
}

/* Copy a value into state (strings interned) / release it. */
Value intern_value(Intern *in, Value v);
void intern_value_put(Intern *in, Value v);

#endif
