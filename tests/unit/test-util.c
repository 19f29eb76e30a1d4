/*
 * Unit tests of the pool allocator (src/util/util.c), which holds every
 * enterprise's state: the class sizes it charges (state bytes are counted
 * in them), alignment, that objects of neighbouring classes never overlap,
 * that a realloc keeps the contents, and that a freed object is handed out
 * again for the next of its class.  And of the JSON helpers the tools
 * share (src/util/json.c): text whatever its bytes, the unescape that
 * reverses buf_json_str, strings read back.  And the varints of
 * src/util/varint.h (the changelog's records): the bytes each value takes,
 * that every value reads back, and that a varint cut short or past ten
 * bytes is refused.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "include/riskd/util.h"
#include "src/util/json.h"
#include "src/util/varint.h"

/* Under AddressSanitizer the pool hands every object to malloc at its
 * exact size (so the sanitizer sees each one): no classes, no reuse. */
#if defined(__SANITIZE_ADDRESS__)
#define POOL_EXACT 1
#endif

Test(pool, class_sizes_bound_the_waste)
{
#ifdef POOL_EXACT
        for (size_t n = 1; n <= POOL_MAX + 1; n++)
                cr_assert_eq(pool_size(n), n, "an object is its exact size under ASan (n=%zu)", n);
        return;
#endif
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

Test(pool, realloc_keeps_the_contents)
{
        Pool p;
        pool_init(&p);
        char *a = pool_alloc(&p, 20);
        memcpy(a, "0123456789abcdefghi", 20);
        a = pool_realloc(&p, a, 20, 23);
        cr_assert_str_eq(a, "0123456789abcdefghi", "grown within or past the class");
        a = pool_realloc(&p, a, 23, 300);
        cr_assert_str_eq(a, "0123456789abcdefghi");
        a = pool_realloc(&p, a, 300, 20);
        cr_assert_str_eq(a, "0123456789abcdefghi", "shrunk to the bytes it holds");
        cr_assert_eq(p.bytes, pool_size(20));
        pool_free(&p, a, 20);
        cr_assert_eq(p.bytes, 0);
        pool_deinit(&p);
}

Test(pool, freed_objects_are_reused_by_class)
{
#ifdef POOL_EXACT
        cr_skip_test("under AddressSanitizer the pool has no classes to reuse (every object is malloc'd at its "
                     "exact size; class_sizes_bound_the_waste checks that)");
#else
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
#endif
}

/* ---- the engine's tagged tables (src/engine/intern.c, tagtab_*) ---- */

#include "src/engine/intern.h"

typedef struct Obj {
        uint64_t h;
} Obj;

static uint64_t obj_hash(const void *o)
{
        return ((const Obj *)o)->h;
}

/* Found by probing from its home slot, as the engine's lookups do. */
static bool tab_has(const uintptr_t *tab, uint32_t cap, bool untagged, const Obj *o)
{
        for (uint32_t k = (uint32_t)o->h & (cap - 1); tab[k]; k = (k + 1) & (cap - 1))
                if ((untagged || tag_match(tab[k], o->h)) && tag_ptr(tab[k], untagged) == o)
                        return true;
        return false;
}

static void tab_put(uintptr_t *tab, uint32_t cap, bool untagged, const Obj *o)
{
        uint32_t k = (uint32_t)o->h & (cap - 1);
        while (tab[k])
                k = (k + 1) & (cap - 1);
        tab[k] = tag_make(o, o->h, untagged);
}

Test(tagtab, remove_grow_and_untag_keep_every_entry_findable)
{
        enum { N = 600 };
        static Obj o[N];
        static bool gone[N];
        uint32_t cap = 1024;
        uintptr_t *tab = calloc(cap, sizeof(uintptr_t));
        for (uint32_t i = 0; i < N; i++) {
                /* few homes, so clusters are long and wrap past the end */
                o[i].h = (uint64_t)(i * 2654435761u) << 32 | (1000 + (i % 37) * 3);
                tab_put(tab, cap, false, &o[i]);
        }
        for (uint32_t i = 0; i < N; i += 3) {
                tagtab_remove(tab, cap, &o[i], o[i].h, false, obj_hash);
                gone[i] = true;
        }
        for (uint32_t i = 0; i < N; i++)
                cr_assert_eq(tab_has(tab, cap, false, &o[i]), !gone[i], "entry %u after removals", i);
        tab = tagtab_grow(tab, cap, cap * 2, false, obj_hash);
        cap *= 2;
        for (uint32_t i = 0; i < N; i++)
                cr_assert_eq(tab_has(tab, cap, false, &o[i]), !gone[i], "entry %u after growing", i);
        tagtab_untag(tab, cap);
        for (uint32_t i = 0; i < cap; i++)
                cr_assert_eq(tab[i] & ~TAG_ADDR_MASK, 0, "slot %u still tagged", i);
        for (uint32_t i = 1; i < N; i += 3) {
                tagtab_remove(tab, cap, &o[i], o[i].h, true, obj_hash);
                gone[i] = true;
        }
        for (uint32_t i = 0; i < N; i++)
                cr_assert_eq(tab_has(tab, cap, true, &o[i]), !gone[i], "entry %u untagged", i);
        free(tab);
}

static bool buf_is(const Buf *b, const char *want, size_t n)
{
        return b->len == n && (n == 0 || memcmp(b->p, want, n) == 0);
}

/* Well-formed text is written exactly as buf_json_str writes it (the
 * outputs' escape): json_put_text changes only what is not UTF-8. */
Test(json, text_is_the_outputs_escape_on_utf8)
{
        static const char *const cases[] = {"", "plain", "a\"b\\c", "\n\r\t\x01\x1f\x7f", "冷柜-1 \"二号库\"",
                                            "\xf0\x9f\x98\x80 \xc3\xa9"};
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                Buf a = {0}, b = {0};
                json_put_text(&a, cases[i], strlen(cases[i]));
                buf_json_str(&b, cases[i], strlen(cases[i]));
                cr_assert(a.len == b.len && memcmp(a.p, b.p, a.len) == 0, "case %zu: %.*s", i, (int)a.len, a.p);
                buf_free(&a);
                buf_free(&b);
        }
}

/* Each byte that is not part of a well-formed sequence (a stray byte, an
 * overlong form, a surrogate, a cut sequence) becomes U+FFFD: the string
 * is UTF-8 and a strict reader takes it. */
Test(json, text_replaces_each_bad_byte)
{
#define FFFD "\xef\xbf\xbd"
        static const struct {
                const char *in, *out;
        } cases[] = {
                {"a\xff" "b", "\"a" FFFD "b\""},
                {"\xc0\x80\"", "\"" FFFD FFFD "\\\"\""},
                {"\xed\xa0\x80", "\"" FFFD FFFD FFFD "\""},
                {"x\xe4\xb8", "\"x" FFFD FFFD "\""},
                {"\xe4\xb8\xad\x80\n", "\"\xe4\xb8\xad" FFFD "\\n\""},
        };
#undef FFFD
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                Buf b = {0};
                json_put_text(&b, cases[i].in, strlen(cases[i].in));
                cr_assert(buf_is(&b, cases[i].out, strlen(cases[i].out)), "case %zu: %.*s", i, (int)b.len, b.p);
                cr_assert(utf8_valid(b.p, b.len));
                Arena ar;
                arena_init(&ar);
                cr_assert_not_null(json_parse(&ar, b.p, b.len), "case %zu", i);
                arena_deinit(&ar);
                buf_free(&b);
        }
}

Test(json, str_or_null)
{
        Buf b = {0};
        json_put_str_or_null(&b, "A\"");
        buf_putc(&b, ',');
        json_put_str_or_null(&b, NULL);
        cr_assert(buf_is(&b, "\"A\\\"\",null", 10), "%.*s", (int)b.len, b.p);
        buf_free(&b);
}

/* json_unescape gives back every byte string buf_json_str wrote: all 256
 * byte values, NUL and bytes that are not UTF-8 included. */
Test(json, unescape_reverses_the_escape)
{
        char s[512];
        for (int i = 0; i < 512; i++)
                s[i] = (char)(i * 7 + (i >> 8));
        Buf e = {0}, u = {0};
        buf_json_str(&e, s, sizeof(s));
        cr_assert_eq(json_unescape(&u, e.p + 1, e.len - 2), 0);
        cr_assert(buf_is(&u, s, sizeof(s)));
        buf_free(&e);
        buf_free(&u);
}

Test(json, unescape_decodes_json_escapes)
{
        static const struct {
                const char *in, *out;
                int rc;
        } cases[] = {
                {"\\u00e9\\/\\b\\f", "\xc3\xa9/\b\f", 0},
                {"\\ud83d\\ude00!", "\xf0\x9f\x98\x80!", 0},
                {"\\u4E2D", "\xe4\xb8\xad", 0},
                {"ok\\u12", "ok", -1},
                {"\\uzzzz", "", -1},
                {"end\\", "end", -1},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                Buf b = {0};
                cr_assert_eq(json_unescape(&b, cases[i].in, strlen(cases[i].in)), cases[i].rc, "case %zu", i);
                cr_assert(buf_is(&b, cases[i].out, strlen(cases[i].out)), "case %zu: %.*s", i, (int)b.len, b.p);
                buf_free(&b);
        }
}

/* The reader's strings: escaped quotes do not end them; an unterminated
 * string or a bad \u is not JSON. */
Test(json, reader_strings)
{
        Arena ar;
        arena_init(&ar);
        const char *doc = "{\"k\\\"ey\":\"a\\\"b\\\\\",\"u\":\"\\u00e9\"}";
        JVal *v = json_parse(&ar, doc, strlen(doc));
        cr_assert_not_null(v);
        cr_assert_eq(v->n, 2);
        cr_assert_str_eq(v->keys[0], "k\"ey");
        cr_assert_str_eq(v->items[0]->s, "a\"b\\");
        cr_assert_eq(v->items[0]->len, 4);
        cr_assert_str_eq(json_str(v, "u"), "\xc3\xa9");
        static const char *const bad[] = {"\"abc", "\"abc\\\"", "\"\\u12\"", "\"x\\", "[\"a\" \"b\"]"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                cr_assert_null(json_parse(&ar, bad[i], strlen(bad[i])), "%s", bad[i]);
        arena_deinit(&ar);
}

Test(varint, values_read_back_in_the_bytes_they_take)
{
        /* the edges of each byte count, and signed values through zigzag */
        uint64_t vals[] = {0, 1, 127, 128, 16383, 16384, UINT32_MAX, (uint64_t)1 << 56, UINT64_MAX};
        for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
                uint8_t b[VARINT_MAX + 1];
                uint8_t *end = varint_put(b, vals[i]);
                size_t n = (size_t)(end - b);
                cr_assert_eq(n, varint_len(vals[i]), "value %ju", (uintmax_t)vals[i]);
                cr_assert_eq(n, i == 0 ? 1 : (size_t)(64 - __builtin_clzll(vals[i]) + 6) / 7);
                const uint8_t *p = b;
                uint64_t v;
                cr_assert(varint_get(&p, end, &v));
                cr_assert_eq(v, vals[i]);
                cr_assert_eq(p, end, "it reads its own bytes only");
                /* one byte short: refused */
                p = b;
                cr_assert_not(varint_get(&p, end - 1, &v));
                cr_assert_eq(v, 0);
        }
        int64_t svals[] = {0, -1, 1, -64, 64, INT64_MIN, INT64_MAX};
        for (size_t i = 0; i < sizeof(svals) / sizeof(svals[0]); i++)
                cr_assert_eq(varint_unzigzag(varint_zigzag(svals[i])), svals[i]);
        cr_assert_eq(varint_zigzag(-1), 1, "small negatives take small varints");
}

Test(varint, past_ten_bytes_is_refused)
{
        uint8_t b[12];
        memset(b, 0x80, sizeof(b));
        const uint8_t *p = b;
        uint64_t v;
        cr_assert_not(varint_get(&p, b + sizeof(b), &v));
        cr_assert_eq(p, b + VARINT_MAX, "it stops after ten bytes");
}
