/*
 * JSON for the tools and the documents they write.
 *
 * The reader: a document to a tree in an arena, for the tools that read
 * documents back (riskctl test reads the engine's outputs and a test's
 * expectations; riskctl diff the text of a string member).  Strict JSON
 * (RFC 8259): escapes and surrogate pairs decoded to UTF-8, numbers
 * through the event decoder's parser, nesting at most 64 deep; NULL for
 * anything else.  The hot path, the event decoder (src/codec/decode.c),
 * has its own one-pass reader into slots; the escapes and UTF-8 both use
 * are in include/riskd/util.h.
 *
 * The writer: strings are escaped by buf_json_str (include/riskd/util.h),
 * the one function the engine's outputs, the daemon and riskctl all use,
 * so that equal text is equal bytes everywhere: '"' and '\\' escaped, \n,
 * \r and \t by name, the other control characters as \u00xx, every other
 * byte as it is.  The helpers below are built on it.
 */
#ifndef RISKD_UTIL_JSON_H
#define RISKD_UTIL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "include/riskd/util.h"

typedef enum JKind { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } JKind;

typedef struct JVal JVal;
struct JVal {
        JKind kind;
        bool b;
        double num;
        char *s;            /* J_STR, NUL terminated */
        size_t len;
        JVal **items;       /* J_ARR items, J_OBJ values */
        char **keys;        /* J_OBJ */
        uint32_t n;
};

/* The document s[0..len) (one value, whitespace around it), allocated in
 * ar; NULL when it is not JSON. */
JVal *json_parse(Arena *ar, const char *s, size_t len);
/* An object's member k[0..kl), NULL when o is not an object or has none. */
const JVal *json_member(const JVal *o, const char *k, size_t kl);
/* A dotted path ("current.grade"); NULL when a step is missing, the null
 * when a step is null. */
const JVal *json_get(const JVal *o, const char *path);
/* The string at path, NULL when missing or not a string. */
const char *json_str(const JVal *o, const char *path);
/* v as a person reads it in a failed expectation ("(missing)" for NULL). */
void json_show(Buf *b, const JVal *v);
/* The text of a JSON string's body s[0..n) (between its quotes) appended
 * to b, escapes and surrogate pairs decoded to UTF-8: 0, or -1 at a
 * backslash that ends s or a \u without four hex digits (the text before
 * it appended). */
int json_unescape(Buf *b, const char *s, size_t n);

/* s[0..n) as a JSON string whatever its bytes: a byte that is not part of
 * well-formed UTF-8 becomes U+FFFD (buf_put_utf8), so that a strict reader
 * takes it; well-formed text comes out exactly as buf_json_str writes it. */
void json_put_text(Buf *b, const char *s, size_t n);
/* s as a JSON string, or null when s is NULL. */
void json_put_str_or_null(Buf *b, const char *s);

#endif
