/*
 * Small utilities shared by every module: abort-on-OOM allocation, a bump
 * arena for objects that live exactly as long as their owner, a growable
 * byte buffer, and a stable 64-bit hash.
 *
 * Allocation failure aborts through one place (the service restarts under
 * systemd); input-driven growth is bounded by callers with explicit limits.
 */
#ifndef RISKD_UTIL_H
#define RISKD_UTIL_H

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Every allocation through these wrappers is counted (benchmarks report
 * allocations per event from it). */
extern uint64_t util_allocs;

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* qsort that takes an empty array as a NULL pointer: qsort(NULL, 0, ...)
 * is undefined (UBSan stops the sanitizer build on it), and an array that
 * was never grown is NULL.  Every sort in src/ goes through it. */
void xsort(void *v, size_t n, size_t sz, int (*cmp)(const void *, const void *));

/* Grow *v (of *cap elements of size sz) so that it holds at least need. */
void *xgrow(void *v, uint32_t *cap, uint32_t need, size_t sz);
#define VEC_PUSH(v, n, cap) \
        (*((v) = xgrow((v), &(cap), (n) + 1, sizeof(*(v))), &(v)[(n)++]))

/* Bump arena: everything allocated is freed together by arena_deinit. */
typedef struct ArenaBlock ArenaBlock;
typedef struct Arena {
        ArenaBlock *head;
} Arena;

void arena_init(Arena *a);
void arena_deinit(Arena *a);
void *arena_alloc(Arena *a, size_t n); /* zeroed, 16-byte aligned */
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_strdup(Arena *a, const char *s);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Pool: a size-class allocator for state that many small objects make and
 * free again (the engine's per-enterprise state).  Objects are carved from
 * chunks the pool owns (64 KiB, doubling to 2 MiB; the large ones asked to
 * be backed by huge pages) and a freed object goes on its class's free
 * list for the next one of that size, so making and dropping state costs
 * no allocation once the pool has grown to the peak: a chunk is an
 * allocation (counted in util_allocs), an object is not.  The caller
 * passes the size back on free, as it knows it (an array's capacity).
 * Objects are 8-byte aligned; sizes are rounded up to their class (8-byte
 * steps to 256, where most state objects are and a coarser step would waste
 * a few bytes on each, then four classes per power of two); above POOL_MAX
 * the pool falls back to xmalloc/free.  Chunks go back only at pool_deinit.
 * Under AddressSanitizer every object is its own malloc, so the sanitizer
 * still sees each one.
 */
#define POOL_MAX 65536
#define POOL_NCLASS 64

typedef struct Pool {
        void *free[POOL_NCLASS];
        char *cur, *end;        /* the unused tail of the newest chunk */
        void **chunks;
        uint32_t nchunks, cchunks;
        size_t next_chunk;
        uint64_t bytes;         /* handed out and not freed, class sizes */
        uint64_t chunk_bytes;   /* owned */
} Pool;

void pool_init(Pool *p);
void pool_deinit(Pool *p);
/* n == 0 gives NULL; pool_free(p, NULL, n) does nothing. */
void *pool_alloc(Pool *p, size_t n);
void *pool_calloc(Pool *p, size_t n);
void *pool_realloc(Pool *p, void *ptr, size_t old, size_t n);
void pool_free(Pool *p, void *ptr, size_t n);
/* The bytes an object of n bytes occupies (its class size). */
size_t pool_size(size_t n);

/*
 * Ask for huge pages over the 2 MiB-aligned interior of [p, p+n) (advice
 * only; nothing when n is small).  For large tables read at random (the
 * engine's enterprise table, timer heap, interned strings): on a VM a TLB
 * miss is a two-level page walk, and 4 KiB pages over tens of MiB make
 * most lookups one.
 */
void util_advise_huge(void *p, size_t n);

/* Growable byte buffer; b->p is always NUL terminated after any append. */
typedef struct Buf {
        char *p;
        size_t len, cap;
} Buf;

void buf_reserve_slow(Buf *b, size_t extra);

/* Room for extra more bytes and the NUL; the common case inline, since
 * output documents are built from many short appends. */
static inline void buf_reserve(Buf *b, size_t extra)
{
        if (b->len + extra + 1 > b->cap)
                buf_reserve_slow(b, extra);
}

static inline void buf_put(Buf *b, const void *p, size_t n)
{
        buf_reserve(b, n);
        memcpy(b->p + b->len, p, n);
        b->len += n;
        b->p[b->len] = 0;
}

static inline void buf_puts(Buf *b, const char *s)
{
        buf_put(b, s, strlen(s));
}

static inline void buf_putc(Buf *b, char c)
{
        buf_reserve(b, 1);
        b->p[b->len++] = c;
        b->p[b->len] = 0;
}

/* Decimal digits of v, and 16 lower-case hex digits of h, without printf. */
void buf_put_i64(Buf *b, int64_t v);
void buf_put_hex64(Buf *b, uint64_t h);
void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(Buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void buf_json_str(Buf *b, const char *s, size_t n); /* quoted, escaped */
void buf_free(Buf *b);

/* FNV-1a 64: stable across runs and machines (fingerprints, versions). */
uint64_t hash64(const void *p, size_t n, uint64_t h);
#define HASH64_INIT 0xcbf29ce484222325ULL

/* A fast 64-bit hash for in-memory tables only (not stable across
 * versions: never in outputs or records; use hash64 there). */
uint64_t hash_fast(const void *p, size_t n);

/* Read a whole file; returns 0 or -errno. *ret is NUL terminated. */
int file_read_all(const char *path, char **ret, size_t *ret_len);

/* Number of UTF-8 code points in s[0..n), and display width (CJK = 2). */
/* The UTF-8 bytes of code point cp (at most 0x10FFFF) at o; the end.  One
 * encoder for the event decoder, the rule lexer and the JSON reader. */
static inline unsigned char *utf8_encode(unsigned char *o, uint32_t cp)
{
        assert(cp <= 0x10ffff);
        if (cp < 0x80) {
                *o++ = (unsigned char)cp;
        } else if (cp < 0x800) {
                *o++ = (unsigned char)(0xc0 | cp >> 6);
                *o++ = (unsigned char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
                *o++ = (unsigned char)(0xe0 | cp >> 12);
                *o++ = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
                *o++ = (unsigned char)(0x80 | (cp & 0x3f));
        } else {
                *o++ = (unsigned char)(0xf0 | cp >> 18);
                *o++ = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
                *o++ = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
                *o++ = (unsigned char)(0x80 | (cp & 0x3f));
        }
        return o;
}

/* A hex digit's value, -1 for any other byte. */
static inline int hex_digit(unsigned char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        c |= 0x20;
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

/* The value of the four hex digits at p (the caller checked that four bytes
 * are there), -1 when one is not a hex digit: a \uXXXX escape. */
static inline int hex4_value(const unsigned char *p)
{
        int a = hex_digit(p[0]), b = hex_digit(p[1]), c = hex_digit(p[2]), d = hex_digit(p[3]);
        if ((a | b | c | d) < 0)
                return -1;
        return a << 12 | b << 8 | c << 4 | d;
}

/* The length of the well-formed UTF-8 sequence at s[0..n) (no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
size_t utf8_seq(const unsigned char *s, size_t n);
/* Whether all of s[0..n) is well-formed UTF-8 (utf8_seq; ASCII fast). */
bool utf8_valid(const char *s, size_t n);
/* s[0..n) appended with U+FFFD for each byte that is not part of a
 * well-formed UTF-8 sequence: text that a strict reader takes whatever
 * the input's bytes (a diagnostic's source line, a dead letter's detail). */
void buf_put_utf8(Buf *b, const char *s, size_t n);
size_t utf8_len(const char *s, size_t n);
size_t utf8_width(const char *s, size_t n);
/* Byte offset of the col-th (1-based) code point of s, bounded by n. */
size_t utf8_offset(const char *s, size_t n, uint32_t col);

/* Levenshtein distance, capped: used for "did you mean". */
unsigned edit_distance(const char *a, const char *b);

#endif
