/*
 * A YAML document as a small tree with source positions, built with
 * libyaml's event parser.  The rule loader, the daemon's configuration,
 * riskctl's rule tests and the broker's topic list walk it; every node knows its
 * file, line and column so that any later error can point at it.
 *
 * Aliases resolve to the anchored node (shared, not copied); merge keys are
 * not supported.  Everything is owned by the SrcFile's arena.
 */
#ifndef RISKD_UTIL_YAML_H
#define RISKD_UTIL_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "include/riskd/diag.h"
#include "include/riskd/util.h"

typedef enum YKind { Y_SCALAR, Y_MAP, Y_SEQ } YKind;

typedef enum YStyle { YS_PLAIN, YS_SINGLE, YS_DOUBLE, YS_LITERAL, YS_FOLDED, YS_FLOW } YStyle;

typedef struct SrcFile SrcFile;
typedef struct YNode YNode;

struct YNode {
        YKind kind;
        YStyle style;
        const SrcFile *src;
        uint32_t line, col;    /* 1-based; col in code points */
        size_t start, end;     /* byte offsets in the file text */
        char *str;             /* Y_SCALAR value */
        size_t len;
        YNode **keys;          /* Y_MAP keys (scalars) */
        YNode **items;         /* Y_SEQ items, Y_MAP values */
        uint32_t n;
};

struct SrcFile {
        char *path;            /* as shown in diagnostics; borrowed, outlives the file
                                * (positions in the compiled rules point to it) */
        char *text;
        size_t len;
        uint32_t *lines;       /* byte offset of each line start */
        uint32_t nlines;
        YNode *root;           /* NULL: empty document or a syntax error */
        Arena arena;
};

/* A SrcFile for text (takes ownership of text), not yet parsed: register
 * it where diagnostics look source lines up, then srcfile_parse. */
SrcFile *srcfile_new(const char *path, char *text, size_t len);
/* Parse the YAML; syntax errors become E001 diagnostics; root may stay NULL. */
void srcfile_parse(SrcFile *f, DiagList *dl);
SrcFile *srcfile_free(SrcFile *f);

/* The line (without its newline) of a 1-based line number. */
const char *srcfile_line(const SrcFile *f, uint32_t line, uint32_t *len);
/* Position of a byte offset in the file. */
SrcPos srcfile_pos(const SrcFile *f, size_t off, size_t len);

SrcPos ynode_pos(const YNode *n);
/* A SrcPos covering the whole scalar text. */
SrcPos ynode_span(const YNode *n);
YNode *ynode_get(const YNode *map, const char *key);
bool ynode_is_null(const YNode *n);

/* An ExprSrc for an expression written in scalar n: offsets within the
 * scalar value map back to the file, across quotes, escapes and folding. */
void ynode_exprsrc(const YNode *n, uint32_t id, ExprSrc *ret);

#endif
