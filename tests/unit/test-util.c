/*
 * Unit tests of the pool allocator (src/util/util.c), which holds every
 * enterprise's state: the class sizes it charges (state bytes are counted
 * in them), alignment, that objects of neighbouring classes never overlap,
 * and that a freed object is handed out again for the next of its class.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "include/riskd/util.h"

#if defined(__SANITIZE_ADDRESS__)
#define SKIP_UNDER_ASAN() cr_skip_test("under AddressSanitizer every object is its own malloc of its exact size")
#else
#define SKIP_UNDER_ASAN() (void)0
#endif

Test(pool, class_sizes_bound_the_waste)
{
        SKIP_UNDER_ASAN();
        size_t prev = 0;
        for (size_t n = 1; n <= POOL_MAX; n++) {
                size_t sz = pool_size(n);
                cr_assert_geq(sz, n, "n=%zu class %zu", n, sz);
                cr_assert_geq(sz, prev, "classes grow with n (n=%zu)", n);
                cr_assert_eq(sz % 8, 0, "n=%zu class %zu", n, sz);
                if (n <= 256)
                        cr_assert_lt(sz - n, 8, "up to 256 bytes a class wastes under 8 (n=%zu, %zu)", n, sz);
                else
                        cr_assert_leq((double)sz, n * 1.25 + 1, "n=%zu class %zu", n, sz);
                cr_assert_eq(pool_size(sz), sz, "a class size is its own class (%zu)", sz);
                prev = sz;
        }
        cr_assert_eq(pool_size(POOL_MAX + 1), POOL_MAX + 1, "above POOL_MAX: exact");
        cr_assert_eq(pool_size(0), 0);
}

Test(pool, objects_are_aligned_and_disjoint)
{
        Pool p;
        pool_init(&p);
        enum { N = 3000 };
        static unsigned char *obj[N];
        static size_t len[N];
        uint64_t want = 0;
        for (int i = 0; i < N; i++) {
                len[i] = 1 + (size_t)(i * 37 % 700);
                obj[i] = pool_alloc(&p, len[i]);
                cr_assert_eq((uintptr_t)obj[i] % 8, 0, "object %d of %zu bytes at %p", i, len[i], (void *)obj[i]);
                memset(obj[i], i & 0xff, len[i]);
                want += pool_size(len[i]);
        }
        cr_assert_eq(p.bytes, want, "bytes counted in class sizes");
        for (int i = 0; i < N; i++)
                for (size_t k = 0; k < len[i]; k++)
                        cr_assert_eq(obj[i][k], i & 0xff, "object %d byte %zu overwritten", i, k);
        for (int i = 0; i < N; i++)
                pool_free(&p, obj[i], len[i]);
        cr_assert_eq(p.bytes, 0);
        pool_deinit(&p);
}

Test(pool, freed_objects_are_reused_by_class)
{
        SKIP_UNDER_ASAN();
        Pool p;
        pool_init(&p);
        void *a = pool_alloc(&p, 41);
        void *b = pool_alloc(&p, 41);
        pool_free(&p, a, 41);
        cr_assert_eq(pool_alloc(&p, 47), a, "47 bytes share 41's class of 48");
        pool_free(&p, b, 41);
        void *c = pool_alloc(&p, 49);
        cr_assert_neq(c, b, "49 bytes are the next class");
        cr_assert_eq(pool_realloc(&p, c, 49, 56), c, "a realloc within the class stays");
        void *d = pool_realloc(&p, c, 56, 57);
        cr_assert_neq(d, c, "a realloc past the class moves");
        pool_free(&p, d, 57);
        pool_deinit(&p);
}
