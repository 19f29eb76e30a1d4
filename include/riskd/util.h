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

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

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

/* Growable byte buffer; b->p is always NUL terminated after any append. */
typedef struct Buf {
        char *p;
        size_t len, cap;
} Buf;

void buf_reserve(Buf *b, size_t extra);
void buf_put(Buf *b, const void *p, size_t n);
void buf_puts(Buf *b, const char *s);
void buf_putc(Buf *b, char c);
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
size_t utf8_len(const char *s, size_t n);
size_t utf8_width(const char *s, size_t n);
/* Byte offset of the col-th (1-based) code point of s, bounded by n. */
size_t utf8_offset(const char *s, size_t n, uint32_t col);

/* Levenshtein distance, capped: used for "did you mean". */
unsigned edit_distance(const char *a, const char *b);

#endif
