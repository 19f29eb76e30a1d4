/*
 * Interned, reference-counted strings for engine state: window rows,
 * per-key state and contributions keep device ids, sample codes and event
 * ids that repeat across many rows; each distinct string is stored once.
 * A Value of tag VT_STR held in state always points into an IStr.
 */
#ifndef RISKD_ENGINE_INTERN_H
#define RISKD_ENGINE_INTERN_H

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

typedef struct Intern {
        Pool *pool;             /* where the strings live (not owned) */
        /* a slot: the IStr's address, its top 16 bits the top 16 bits of the
         * string's hash (INTERN_TAGGED), so a lookup reads a string only
         * when those match; 0 empty */
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
