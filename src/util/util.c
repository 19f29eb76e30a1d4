/*
 * Implementation of include/riskd/util.h.  Nothing here knows about rules,
 * events or Kafka.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "include/riskd/util.h"

static void oom(size_t n)
{
        fprintf(stderr, "<2>riskd: out of memory allocating %zu bytes\n", n);
        abort();
}

uint64_t util_allocs;

void *xmalloc(size_t n)
{
        util_allocs++;
        void *p = malloc(n ? n : 1);
        if (!p)
                oom(n);
        return p;
}

void *xcalloc(size_t n, size_t size)
{
        util_allocs++;
        void *p = calloc(n ? n : 1, size ? size : 1);
        if (!p)
                oom(n * size);
        return p;
}

void *xrealloc(void *p, size_t n)
{
        util_allocs++;
        p = realloc(p, n ? n : 1);
        if (!p)
                oom(n);
        return p;
}

char *xstrdup(const char *s)
{
        return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
        char *p = xmalloc(n + 1);
        memcpy(p, s, n);
        p[n] = 0;
        return p;
}

char *xasprintf(const char *fmt, ...)
{
        Buf b = {0};
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        return b.p;
}

void xsort(void *v, size_t n, size_t sz, int (*cmp)(const void *, const void *))
{
        if (n > 1)
                qsort(v, n, sz, cmp);
}

void *xgrow(void *v, uint32_t *cap, uint32_t need, size_t sz)
{
        if (need <= *cap)
                return v;
        uint32_t c = *cap ? *cap : 4;
        while (c < need)
                c *= 2;
        v = xrealloc(v, (size_t)c * sz);
        memset((char *)v + (size_t)*cap * sz, 0, (size_t)(c - *cap) * sz);
        *cap = c;
        return v;
}

struct ArenaBlock {
        ArenaBlock *next;
        size_t used, size;
        _Alignas(16) unsigned char data[];
};

void util_advise_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
        const uintptr_t huge = (uintptr_t)2 << 20;
        uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), end = ((uintptr_t)p + n) & ~(huge - 1);
        if (end > a)
                (void)madvise((void *)a, end - a, MADV_HUGEPAGE);
#else
        (void)p;
        (void)n;
#endif
}

/* ---- pool ---- */

#if defined(__SANITIZE_ADDRESS__)
#define POOL_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_MALLOC 1
#endif
#endif

#define POOL_CHUNK_MIN ((size_t)64 << 10)
#define POOL_CHUNK_MAX ((size_t)2 << 20)

/* Class of an object of n bytes (0 < n <= POOL_MAX), and its size (unused
 * under POOL_EXACT, where every object is malloc'd at its size). */
__attribute__((unused)) static inline uint32_t pool_class(size_t n, size_t *size)
{
        assert(n > 0 && n <= POOL_MAX);
        if (n <= 256) {
                uint32_t c = (uint32_t)((n + 7) >> 3) - 1;
                *size = (size_t)(c + 1) << 3;
                return c;
        }
        uint32_t b = 63 - (uint32_t)__builtin_clzll((unsigned long long)(n - 1)); /* 2^b < n <= 2^(b+1), b >= 8 */
        size_t step = (size_t)1 << (b - 2);
        uint32_t k = (uint32_t)((n - 1 - ((size_t)1 << b)) / step);
        *size = ((size_t)1 << b) + (k + 1) * step;
        return 32 + (b - 8) * 4 + k;
}

size_t pool_size(size_t n)
{
        size_t sz = n;
#ifndef POOL_MALLOC
        if (n && n <= POOL_MAX)
                pool_class(n, &sz);
#endif
        return sz;
}

void pool_init(Pool *p)
{
        memset(p, 0, sizeof(*p));
        p->next_chunk = POOL_CHUNK_MIN;
}

void pool_deinit(Pool *p)
{
        for (uint32_t i = 0; i < p->nchunks; i++)
                free(p->chunks[i]);
        free(p->chunks);
        pool_init(p);
}

#ifndef POOL_MALLOC
static void pool_chunk(Pool *p, size_t need)
{
        size_t sz = p->next_chunk;
        while (sz < need)
                sz *= 2;
        void *c = NULL;
        util_allocs++;
        if (posix_memalign(&c, sz >= POOL_CHUNK_MAX ? POOL_CHUNK_MAX : 64, sz) != 0)
                oom(sz);
#ifdef MADV_HUGEPAGE
        if (sz >= POOL_CHUNK_MAX)
                (void)madvise(c, sz, MADV_HUGEPAGE); /* fewer TLB misses over large state; advice only */
#endif
        if (p->nchunks == p->cchunks) {
                p->cchunks = p->cchunks ? p->cchunks * 2 : 16;
                p->chunks = xrealloc(p->chunks, p->cchunks * sizeof(void *));
        }
        p->chunks[p->nchunks++] = c;
        p->chunk_bytes += sz;
        /* the tail of the previous chunk (smaller than the object asked for) is left unused */
        p->cur = c;
        p->end = (char *)c + sz;
        if (p->next_chunk < POOL_CHUNK_MAX)
                p->next_chunk *= 2;
}
#endif

void *pool_alloc(Pool *p, size_t n)
{
        if (!n)
                return NULL;
#ifdef POOL_MALLOC
        p->bytes += n;
        return xmalloc(n);
#else
        if (n > POOL_MAX) {
                p->bytes += n;
                return xmalloc(n);
        }
        size_t sz;
        uint32_t c = pool_class(n, &sz);
        p->bytes += sz;
        void *o = p->free[c];
        if (o) {
                p->free[c] = *(void **)o;
                return o;
        }
        if ((size_t)(p->end - p->cur) < sz)
                pool_chunk(p, sz);
        o = p->cur;
        p->cur += sz;
        return o;
#endif
}

void *pool_calloc(Pool *p, size_t n)
{
        void *o = pool_alloc(p, n);
        if (o)
                memset(o, 0, n);
        return o;
}

void pool_free(Pool *p, void *ptr, size_t n)
{
        if (!ptr)
                return;
#ifdef POOL_MALLOC
        p->bytes -= n;
        free(ptr);
#else
        if (n > POOL_MAX) {
                p->bytes -= n;
                free(ptr);
                return;
        }
        size_t sz;
        uint32_t c = pool_class(n, &sz);
        /* the caller passes the size back: one larger than it took would
         * count more bytes freed than were handed out */
        assert(p->bytes >= sz);
        p->bytes -= sz;
        *(void **)ptr = p->free[c];
        p->free[c] = ptr;
#endif
}

void *pool_realloc(Pool *p, void *ptr, size_t old, size_t n)
{
        if (!ptr)
                return pool_alloc(p, n);
#ifndef POOL_MALLOC
        if (old && n && old <= POOL_MAX && n <= POOL_MAX && pool_size(old) == pool_size(n))
                return ptr;
#endif
        void *o = pool_alloc(p, n);
        if (o)
                memcpy(o, ptr, old < n ? old : n);
        pool_free(p, ptr, old);
        return o;
}

void arena_init(Arena *a)
{
        a->head = NULL;
}

void arena_deinit(Arena *a)
{
        ArenaBlock *b = a->head;
        while (b) {
                ArenaBlock *n = b->next;
                free(b);
                b = n;
        }
        a->head = NULL;
}

void *arena_alloc(Arena *a, size_t n)
{
        n = (n + 15) & ~(size_t)15;
        ArenaBlock *b = a->head;
        if (!b || b->size - b->used < n) {
                size_t size = n > 16384 ? n : 16384;
                b = xmalloc(sizeof(*b) + size);
                b->size = size;
                b->used = 0;
                b->next = a->head;
                a->head = b;
        }
        void *p = b->data + b->used;
        b->used += n;
        memset(p, 0, n);
        return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n)
{
        char *p = arena_alloc(a, n + 1);
        memcpy(p, s, n);
        p[n] = 0;
        return p;
}

char *arena_strdup(Arena *a, const char *s)
{
        return arena_strndup(a, s, strlen(s));
}

char *arena_printf(Arena *a, const char *fmt, ...)
{
        Buf b = {0};
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        char *p = arena_strndup(a, b.p, b.len);
        buf_free(&b);
        return p;
}

void buf_reserve_slow(Buf *b, size_t extra)
{
        if (b->len + extra + 1 <= b->cap)
                return;
        size_t c = b->cap ? b->cap : 64;
        while (c < b->len + extra + 1)
                c *= 2;
        b->p = xrealloc(b->p, c);
        b->cap = c;
}

void buf_put_i64(Buf *b, int64_t v)
{
        char t[24], *q = t + sizeof(t);
        uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
        do {
                *--q = (char)('0' + u % 10);
                u /= 10;
        } while (u);
        if (v < 0)
                *--q = '-';
        buf_put(b, q, (size_t)(t + sizeof(t) - q));
}

void buf_put_hex64(Buf *b, uint64_t h)
{
        static const char hex[] = "0123456789abcdef";
        char t[16];
        for (int i = 15; i >= 0; i--, h >>= 4)
                t[i] = hex[h & 15];
        buf_put(b, t, sizeof(t));
}

void buf_vprintf(Buf *b, const char *fmt, va_list ap)
{
        va_list cp;
        va_copy(cp, ap);
        int n = vsnprintf(NULL, 0, fmt, cp);
        va_end(cp);
        if (n < 0)
                return;
        buf_reserve(b, (size_t)n);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
        b->len += (size_t)n;
}

void buf_printf(Buf *b, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(b, fmt, ap);
        va_end(ap);
}

void buf_json_str(Buf *b, const char *s, size_t n)
{
        static const char hex[] = "0123456789abcdef";
        buf_reserve(b, n + 2);
        buf_putc(b, '"');
        size_t run = 0; /* s[run .. i) needs no escape: copied at once */
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c >= 0x20 && c != '"' && c != '\\')
                        continue;
                if (i > run)
                        buf_put(b, s + run, i - run);
                run = i + 1;
                switch (c) {
                case '"': buf_put(b, "\\\"", 2); break;
                case '\\': buf_put(b, "\\\\", 2); break;
                case '\n': buf_put(b, "\\n", 2); break;
                case '\r': buf_put(b, "\\r", 2); break;
                case '\t': buf_put(b, "\\t", 2); break;
                default: {
                        char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                        buf_put(b, e, 6);
                }
                }
        }
        if (n > run)
                buf_put(b, s + run, n - run);
        buf_putc(b, '"');
}

void buf_free(Buf *b)
{
        free(b->p);
        b->p = NULL;
        b->len = b->cap = 0;
}

uint64_t hash64(const void *p, size_t n, uint64_t h)
{
        const unsigned char *s = p;
        for (size_t i = 0; i < n; i++) {
                h ^= s[i];
                h *= 0x100000001b3ULL;
        }
        return h;
}

static inline uint64_t mix64(uint64_t x)
{
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        x *= 0xc4ceb9fe1a85ec53ULL;
        x ^= x >> 33;
        return x;
}

uint64_t hash_fast(const void *p, size_t n)
{
        const unsigned char *s = p;
        size_t total = n;
        uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
        while (n >= 8) {
                uint64_t w;
                memcpy(&w, s, 8);
                h = (h ^ mix64(w)) * 0x9e3779b97f4a7c15ULL;
                s += 8;
                n -= 8;
        }
        /* the last n < 8 bytes as a little-endian word, zero above, without a
         * memcpy of variable length: the 8 bytes ending there shifted down
         * (the key had 8 before them), or two overlapping 4-byte loads, or
         * the first, middle and last bytes */
        uint64_t w = 0;
        if (n == 0) {
        } else if (total >= 8) {
                memcpy(&w, s + n - 8, 8);
                w >>= (8 - n) * 8;
        } else if (n >= 4) {
                uint32_t lo, hi;
                memcpy(&lo, s, 4);
                memcpy(&hi, s + n - 4, 4);
                w = (uint64_t)lo | (uint64_t)hi << ((n - 4) * 8);
        } else {
                w = (uint64_t)s[0] | (uint64_t)s[n / 2] << (n / 2 * 8) | (uint64_t)s[n - 1] << ((n - 1) * 8);
        }
        h = (h ^ mix64(w ^ ((uint64_t)n << 56))) * 0x9e3779b97f4a7c15ULL;
        return mix64(h);
}

int file_read_all(const char *path, char **ret, size_t *ret_len)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        Buf b = {0};
        for (;;) {
                buf_reserve(&b, 65536);
                ssize_t r = read(fd, b.p + b.len, b.cap - b.len - 1);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        int e = -errno;
                        close(fd);
                        buf_free(&b);
                        return e;
                }
                if (r == 0)
                        break;
                b.len += (size_t)r;
        }
        close(fd);
        buf_reserve(&b, 0);
        b.p[b.len] = 0;
        *ret = b.p;
        *ret_len = b.len;
        return 0;
}

static uint32_t utf8_next(const char *s, size_t n, size_t *i)
{
        unsigned char c = (unsigned char)s[*i];
        uint32_t cp;
        int extra;
        if (c < 0x80) {
                (*i)++;
                return c;
        } else if ((c & 0xe0) == 0xc0) {
                cp = c & 0x1f;
                extra = 1;
        } else if ((c & 0xf0) == 0xe0) {
                cp = c & 0x0f;
                extra = 2;
        } else if ((c & 0xf8) == 0xf0) {
                cp = c & 0x07;
                extra = 3;
        } else {
                (*i)++;
                return 0xfffd;
        }
        (*i)++;
        while (extra-- > 0 && *i < n && ((unsigned char)s[*i] & 0xc0) == 0x80)
                cp = (cp << 6) | ((unsigned char)s[(*i)++] & 0x3f);
        return cp;
}

void buf_put_utf8(Buf *b, const char *s, size_t n)
{
        for (size_t i = 0, k; i < n; i += k) {
                k = utf8_seq((const unsigned char *)s + i, n - i);
                if (k) {
                        buf_put(b, s + i, k);
                } else {
                        buf_puts(b, "\xef\xbf\xbd"); /* U+FFFD */
                        k = 1;
                }
        }
}

bool utf8_valid(const char *s, size_t n)
{
        const unsigned char *u = (const unsigned char *)s;
        for (size_t i = 0, k; i < n; i += k) {
                if (u[i] < 0x80) {
                        k = 1;
                        continue;
                }
                if (!(k = utf8_seq(u + i, n - i)))
                        return false;
        }
        return true;
}

/* The length of the well-formed UTF-8 sequence at s[0..n) (Unicode Table
 * 3-7: no overlong forms, no surrogates, nothing above U+10FFFF), or 0. */
size_t utf8_seq(const unsigned char *s, size_t n)
{
        unsigned char c = s[0], lo = 0x80, hi = 0xbf;
        size_t k;
        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf) {
                k = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
                k = 3;
                lo = c == 0xe0 ? 0xa0 : 0x80;
                hi = c == 0xed ? 0x9f : 0xbf;
        } else if (c >= 0xf0 && c <= 0xf4) {
                k = 4;
                lo = c == 0xf0 ? 0x90 : 0x80;
                hi = c == 0xf4 ? 0x8f : 0xbf;
        } else {
                return 0;
        }
        if (n < k || s[1] < lo || s[1] > hi)
                return 0;
        for (size_t j = 2; j < k; j++)
                if ((s[j] & 0xc0) != 0x80)
                        return 0;
        return k;
}

size_t utf8_len(const char *s, size_t n)
{
        size_t i = 0, k = 0;
        while (i < n) {
                utf8_next(s, n, &i);
                k++;
        }
        return k;
}

static int wide(uint32_t c)
{
        return (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf) ||
               (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
               (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
               (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x20000 && c <= 0x3fffd);
}

size_t utf8_width(const char *s, size_t n)
{
        size_t i = 0, w = 0;
        while (i < n)
                w += wide(utf8_next(s, n, &i)) ? 2 : 1;
        return w;
}

size_t utf8_offset(const char *s, size_t n, uint32_t col)
{
        size_t i = 0;
        for (uint32_t k = 1; k < col && i < n; k++)
                utf8_next(s, n, &i);
        return i;
}

unsigned edit_distance(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        if (la > 64 || lb > 64)
                return 99;
        unsigned row[65];
        for (size_t j = 0; j <= lb; j++)
                row[j] = (unsigned)j;
        for (size_t i = 1; i <= la; i++) {
                unsigned prev = row[0];
                row[0] = (unsigned)i;
                for (size_t j = 1; j <= lb; j++) {
                        unsigned cur = row[j];
                        unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
                        unsigned v = prev + cost;
                        if (row[j] + 1 < v)
                                v = row[j] + 1;
                        if (row[j - 1] + 1 < v)
                                v = row[j - 1] + 1;
                        row[j] = v;
                        prev = cur;
                }
        }
        return row[lb];
}
