/*
 * The byte-level codec of the engine's state records (state_write.c writes
 * with the put_* functions, state_read.c and state_dict.c read with the
 * get_* ones; docs/state.md describes the formats).  Private to the state
 * files; inline, because a restore decodes millions of records a field at
 * a time.
 *
 * Integers are LEB128 varints (signed ones zigzag: src/util/varint.h);
 * times are varints relative to the record's base (0: none); numbers a
 * varint of their decimal digits when that gives them back exactly, else
 * 8 little-endian bytes; strings a length and the bytes, an event id that
 * is a UUID 16 bytes.  Format 1 (Rd.d NULL) wrote times, numbers and ids
 * plainly: the readers of those read either.
 *
 * A reader never reads past Rd.end: a field cut short or out of range sets
 * Rd.bad and reads as 0 or "", and the caller refuses the record.
 */
#ifndef RISKD_ENGINE_STATE_CODEC_H
#define RISKD_ENGINE_STATE_CODEC_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "src/engine/engine.h"
#include "src/util/varint.h"

/* ---- writing ---- */

static inline void put_u(Buf *b, uint64_t v)
{
        uint8_t t[VARINT_MAX];
        buf_put(b, t, (size_t)(varint_put(t, v) - t));
}

static inline void put_i(Buf *b, int64_t v)
{
        put_u(b, varint_zigzag(v));
}

static inline void put_8(Buf *b, uint64_t u)
{
        char t[8];
        for (int i = 0; i < 8; i++)
                t[i] = (char)(u >> (8 * i));
        buf_put(b, t, 8);
}

static inline void put_s(Buf *b, const char *s, size_t n)
{
        put_u(b, n);
        buf_put(b, s, n);
}

static inline void put_cs(Buf *b, const char *s)
{
        put_s(b, s ? s : "", s ? strlen(s) : 0);
}

/* A time against the record's base: 0 none (TIME_UNSET), 1 the time
 * itself follows (its distance from the base does not fit), else 2 plus
 * the distance zigzagged, shifted left by one, its low bit set when the
 * distance is in whole seconds (then counted in seconds). */
static inline void put_t(Buf *b, int64_t t, int64_t base)
{
        int64_t d;
        if (t == TIME_UNSET) {
                put_u(b, 0);
        } else if (!__builtin_sub_overflow(t, base, &d) && d % 1000 == 0) {
                put_u(b, (varint_zigzag(d / 1000) << 1 | 1) + 2); /* |d / 1000| < 2^54: fits */
        } else if (!__builtin_sub_overflow(t, base, &d) && varint_zigzag(d) < (UINT64_MAX >> 1) - 2) {
                put_u(b, (varint_zigzag(d) << 1) + 2);
        } else {
                put_u(b, 1);
                put_i(b, t);
        }
}

static const double pow10_tab[3] = {1, 10, 100};

/* A number: the scores, points and readings the engine keeps are mostly
 * integers or have a digit or two after the point.  m * 4 + k for the
 * number m / 10^k (k < 3) when that division gives it back bit for bit
 * (so -0, NaN and the rest take the other way), else 3 and the 8 bytes. */
static inline void put_d(Buf *b, double d)
{
        for (int k = 0; k < 3 && isfinite(d); k++) {
                double m = d * pow10_tab[k];
                if (!(fabs(m) < 9007199254740992.0)) /* 2^53 */
                        break;
                double mr = nearbyint(m);
                double back = mr / pow10_tab[k];
                if (memcmp(&back, &d, sizeof(d)) == 0) {
                        put_u(b, varint_zigzag((int64_t)mr) << 2 | (uint64_t)k);
                        return;
                }
        }
        uint64_t u;
        memcpy(&u, &d, 8);
        put_u(b, 3);
        put_8(b, u);
}

/* An event id: 0 and 16 bytes for a canonical lowercase UUID, else its
 * length plus one and the bytes. */
static inline void put_id(Buf *b, const char *s, size_t n)
{
        uint8_t u[16];
        if (uuid_pack(s, (uint32_t)n, u)) {
                put_u(b, 0);
                buf_put(b, (const char *)u, 16);
                return;
        }
        put_u(b, n + 1);
        buf_put(b, s, n);
}

/* A snapshot's string value that is its key (the per: field), not
 * written twice: a tag no value has. */
#define SNAP_IS_KEY 0x80

/* ---- reading ---- */

typedef struct Rd {
        const unsigned char *p, *end;
        bool bad;
        struct StateDict *d;           /* format 2: the record's dictionary; NULL format 1 */
        int64_t base;
        Str key;                /* the key of the key state read, for SNAP_IS_KEY; {NULL, 0} none */
} Rd;

static inline uint64_t get_u(Rd *r)
{
        uint64_t v;
        if (!varint_get(&r->p, r->end, &v))
                r->bad = true;
        return v;
}

static inline int64_t get_i(Rd *r)
{
        return varint_unzigzag(get_u(r));
}

static inline uint64_t get_8(Rd *r)
{
        if (r->end - r->p < 8) {
                r->bad = true;
                return 0;
        }
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
                u |= (uint64_t)r->p[i] << (8 * i);
        r->p += 8;
        return u;
}

static inline double get_f(Rd *r)
{
        uint64_t u = get_8(r);
        double d;
        memcpy(&d, &u, 8);
        return d;
}

/* A number (put_d; format 1: the 8 bytes). */
static inline double get_d(Rd *r)
{
        if (!r->d)
                return get_f(r);
        uint64_t c = get_u(r);
        if ((c & 3) == 3)
                return c == 3 ? get_f(r) : (r->bad = true, 0);
        int64_t m = varint_unzigzag(c >> 2);
        if (m > 9007199254740992LL || m < -9007199254740992LL) {
                r->bad = true;
                return 0;
        }
        return (double)m / pow10_tab[c & 3];
}

/* A double that must be a number: NaN or an infinity refuses the record
 * (no state the engine writes holds one: scores, points and event numbers
 * are finite). */
static inline double get_fin(Rd *r)
{
        double d = get_d(r);
        if (!isfinite(d)) {
                r->bad = true;
                return 0;
        }
        return d;
}

/* A time (put_t; format 1: the time itself). */
static inline int64_t get_t(Rd *r)
{
        if (!r->d)
                return get_i(r);
        uint64_t c = get_u(r);
        if (c == 0)
                return TIME_UNSET;
        if (c == 1)
                return get_i(r);
        c -= 2;
        uint64_t d = (uint64_t)varint_unzigzag(c >> 1) * (c & 1 ? 1000 : 1);
        return (int64_t)((uint64_t)r->base + d);
}

static inline const char *get_s(Rd *r, uint32_t *len)
{
        uint64_t n = get_u(r);
        if (r->bad || n > (uint64_t)(r->end - r->p)) {
                r->bad = true;
                *len = 0;
                return "";
        }
        const char *s = (const char *)r->p;
        r->p += n;
        *len = (uint32_t)n;
        return s;
}

/* An event id (put_id; format 1: a string); a UUID's text into buf. */
static inline const char *get_id(Rd *r, uint32_t *len, char buf[40])
{
        if (!r->d)
                return get_s(r, len);
        uint64_t n = get_u(r);
        if (n == 0) {
                if (r->end - r->p < 16) {
                        r->bad = true;
                        *len = 0;
                        return "";
                }
                uuid_text(r->p, buf);
                r->p += 16;
                *len = 36;
                return buf;
        }
        if (r->bad || n - 1 > (uint64_t)(r->end - r->p)) {
                r->bad = true;
                *len = 0;
                return "";
        }
        const char *s = (const char *)r->p;
        r->p += n - 1;
        *len = (uint32_t)(n - 1);
        return s;
}

static inline uint8_t get_b(Rd *r)
{
        if (r->p >= r->end) {
                r->bad = true;
                return 0;
        }
        return *r->p++;
}

#endif
