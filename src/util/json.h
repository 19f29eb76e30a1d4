/*
 * A small JSON reader: a document to a tree in an arena, for the tools
 * that read documents back (riskctl test reads the engine's outputs and a
 * test's expectations).  Strict JSON (RFC 8259): escapes and surrogate
 * pairs decoded to UTF-8, numbers through the event decoder's parser,
 * nesting at most 64 deep; NULL for anything else.  The hot path, the
 * event decoder (src/codec/decode.c), has its own one-pass reader into
 * slots; the escapes and UTF-8 both use are in include/riskd/util.h.
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

#endif
