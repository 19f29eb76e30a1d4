/*
 * LEB128 varints (seven bits a byte, the low group first, the high bit set
 * on every byte but the last) and zigzag for signed integers: the one
 * implementation of the byte-level integer coding that the changelog's
 * records (src/engine/state_codec.h) and, through them, the engine's
 * snapshots share.  A header of inline functions: the record codec calls
 * them once a field, millions of times in a restore.
 *
 * varint_get reads within [*p, end) and stops, like the records' readers
 * always have, after ten bytes (a uint64_t's 64 bits): a varint cut short
 * or longer than that is refused, *p left where the reading stopped.
 */
#ifndef RISKD_UTIL_VARINT_H
#define RISKD_UTIL_VARINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most bytes varint_put writes. */
#define VARINT_MAX 10

static inline uint64_t varint_zigzag(int64_t v)
{
        return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t varint_unzigzag(uint64_t u)
{
        return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

/* The bytes varint_put writes for v. */
static inline size_t varint_len(uint64_t v)
{
        size_t n = 1;
        while (v >= 0x80) {
                v >>= 7;
                n++;
        }
        return n;
}

/* v at p (VARINT_MAX bytes at the most); returns the byte after it. */
static inline uint8_t *varint_put(uint8_t *p, uint64_t v)
{
        while (v >= 0x80) {
                *p++ = (uint8_t)(v | 0x80);
                v >>= 7;
        }
        *p++ = (uint8_t)v;
        return p;
}

/* A varint at *p, before end, into *ret; *p past what was read.  false
 * (*ret 0): it runs past end or past ten bytes. */
static inline bool varint_get(const uint8_t **p, const uint8_t *end, uint64_t *ret)
{
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
                if (*p >= end) {
                        *ret = 0;
                        return false;
                }
                uint8_t c = *(*p)++;
                v |= (uint64_t)(c & 0x7f) << shift;
                if (!(c & 0x80)) {
                        *ret = v;
                        return true;
                }
        }
        *ret = 0;
        return false;
}

#endif
