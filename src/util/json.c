/*
 * The small JSON reader and the writer's helpers (json.h).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/decode.h"
#include "src/util/json.h"

typedef struct JParse {
        const char *p, *end;
        Arena *ar;
} JParse;

static void jws(JParse *j)
{
        while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
                j->p++;
}

static void utf8_put(Buf *b, uint32_t c)
{
        unsigned char u[4];
        buf_put(b, (const char *)u, (size_t)(utf8_encode(u, c) - u));
}

static int hex4(const char *p, const char *end, uint32_t *ret)
{
        int v = end - p >= 4 ? hex4_value((const unsigned char *)p) : -1;
        if (v < 0)
                return -1;
        *ret = (uint32_t)v;
        return 0;
}

int json_unescape(Buf *b, const char *s, size_t n)
{
        const char *p = s, *end = s + n;
        while (p < end) {
                char c = *p++;
                if (c != '\\') {
                        buf_putc(b, c);
                        continue;
                }
                if (p >= end)
                        return -1;
                c = *p++;
                switch (c) {
                case 'n': buf_putc(b, '\n'); break;
                case 't': buf_putc(b, '\t'); break;
                case 'r': buf_putc(b, '\r'); break;
                case 'b': buf_putc(b, '\b'); break;
                case 'f': buf_putc(b, '\f'); break;
                case 'u': {
                        uint32_t u, lo;
                        if (hex4(p, end, &u) < 0)
                                return -1;
                        p += 4;
                        if (u >= 0xd800 && u < 0xdc00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
                            hex4(p + 2, end, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
                                u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                                p += 6;
                        }
                        utf8_put(b, u);
                        break;
                }
                default: buf_putc(b, c); break;
                }
        }
        return 0;
}

static char *jstring(JParse *j, size_t *ret_len)
{
        if (j->p >= j->end || *j->p != '"')
                return NULL;
        const char *body = ++j->p;
        /* the closing quote: the first one no backslash escapes */
        while (j->p < j->end && *j->p != '"') {
                if (*j->p == '\\' && ++j->p == j->end)
                        break;
                j->p++;
        }
        if (j->p >= j->end)
                return NULL;
        Buf b = {0};
        char *s = NULL;
        if (json_unescape(&b, body, (size_t)(j->p - body)) == 0) {
                s = arena_strndup(j->ar, b.p ? b.p : "", b.len);
                *ret_len = b.len;
        }
        j->p++;
        buf_free(&b);
        return s;
}

static JVal *jvalue(JParse *j, int depth)
{
        jws(j);
        if (j->p >= j->end || depth > 64)
                return NULL;
        JVal *v = arena_alloc(j->ar, sizeof(JVal));
        char c = *j->p;
        if (c == '{' || c == '[') {
                bool obj = c == '{';
                v->kind = obj ? J_OBJ : J_ARR;
                j->p++;
                JVal **items = NULL;
                char **keys = NULL;
                uint32_t n = 0, cap = 0, nk = 0, kcap = 0;
                jws(j);
                if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
                        j->p++;
                        return v;
                }
                for (;;) {
                        jws(j);
                        if (obj) {
                                size_t kl;
                                char *k = jstring(j, &kl);
                                jws(j);
                                if (!k || j->p >= j->end || *j->p != ':')
                                        goto bad;
                                j->p++;
                                VEC_PUSH(keys, nk, kcap) = k;
                        }
                        JVal *x = jvalue(j, depth + 1);
                        if (!x)
                                goto bad;
                        VEC_PUSH(items, n, cap) = x;
                        jws(j);
                        if (j->p < j->end && *j->p == ',') {
                                j->p++;
                                continue;
                        }
                        if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
                                j->p++;
                                break;
                        }
                        goto bad;
                }
                /* move the vectors into the arena: one lifetime for the tree */
                assert(!obj || nk == n); /* an object has a key for each value */
                v->n = n;
                v->items = arena_alloc(j->ar, (n ? n : 1) * sizeof(JVal *));
                memcpy(v->items, items, n * sizeof(JVal *));
                if (obj) {
                        v->keys = arena_alloc(j->ar, (n ? n : 1) * sizeof(char *));
                        memcpy(v->keys, keys, n * sizeof(char *));
                }
                free(items);
                free(keys);
                return v;
        bad:
                free(items);
                free(keys);
                return NULL;
        }
        if (c == '"') {
                v->kind = J_STR;
                v->s = jstring(j, &v->len);
                return v->s ? v : NULL;
        }
        if (j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
                j->p += 4;
                v->kind = J_NULL;
                return v;
        }
        if (j->end - j->p >= 4 && memcmp(j->p, "true", 4) == 0) {
                j->p += 4;
                v->kind = J_BOOL;
                v->b = true;
                return v;
        }
        if (j->end - j->p >= 5 && memcmp(j->p, "false", 5) == 0) {
                j->p += 5;
                v->kind = J_BOOL;
                return v;
        }
        const char *s = j->p;
        while (j->p < j->end && strchr("+-0123456789.eE", *j->p))
                j->p++;
        if (decode_number_parse(s, (size_t)(j->p - s), &v->num) < 0)
                return NULL;
        v->kind = J_NUM;
        return v;
}

JVal *json_parse(Arena *ar, const char *s, size_t len)
{
        JParse j = {.p = s, .end = s + len, .ar = ar};
        JVal *v = jvalue(&j, 0);
        jws(&j);
        return v && j.p == j.end ? v : NULL;
}

const JVal *json_member(const JVal *o, const char *k, size_t kl)
{
        if (!o || o->kind != J_OBJ)
                return NULL;
        for (uint32_t i = 0; i < o->n; i++)
                if (strlen(o->keys[i]) == kl && memcmp(o->keys[i], k, kl) == 0)
                        return o->items[i];
        return NULL;
}

/* A dotted path ("current.grade"); NULL when a step is missing. */
const JVal *json_get(const JVal *o, const char *path)
{
        while (o) {
                const char *dot = strchr(path, '.');
                size_t kl = dot ? (size_t)(dot - path) : strlen(path);
                o = json_member(o, path, kl);
                if (!dot || (o && o->kind == J_NULL))
                        return o;
                path = dot + 1;
        }
        return NULL;
}

const char *json_str(const JVal *o, const char *path)
{
        const JVal *v = json_get(o, path);
        return v && v->kind == J_STR ? v->s : NULL;
}

void json_show(Buf *b, const JVal *v)
{
        if (!v) {
                buf_puts(b, "(missing)");
                return;
        }
        switch (v->kind) {
        case J_NULL: buf_puts(b, "null"); break;
        case J_BOOL: buf_puts(b, v->b ? "true" : "false"); break;
        case J_NUM: {
                char t[40];
                snprintf(t, sizeof(t), "%.15g", v->num);
                buf_puts(b, t);
                break;
        }
        case J_STR: buf_put(b, v->s, v->len); break;
        case J_ARR:
        case J_OBJ:
                buf_putc(b, v->kind == J_ARR ? '[' : '{');
                for (uint32_t i = 0; i < v->n; i++) {
                        if (i)
                                buf_puts(b, ", ");
                        if (v->kind == J_OBJ) {
                                buf_puts(b, v->keys[i]);
                                buf_puts(b, ": ");
                        }
                        json_show(b, v->items[i]);
                }
                buf_putc(b, v->kind == J_ARR ? ']' : '}');
                break;
        }
}

/* ---- the writer ---- */

void json_put_text(Buf *b, const char *s, size_t n)
{
        if (utf8_valid(s, n)) {
                buf_json_str(b, s, n);
                return;
        }
        Buf t = {0};
        buf_put_utf8(&t, s, n);
        buf_json_str(b, t.p, t.len);
        buf_free(&t);
}

void json_put_str_or_null(Buf *b, const char *s)
{
        if (s)
                buf_json_str(b, s, strlen(s));
        else
                buf_puts(b, "null");
}
