/*
 * YAML → YNode tree with positions (see yaml.h).  The only file that talks
 * to libyaml.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "src/util/yaml.h"

#define YAML_MAX_DEPTH 64
#define YAML_MAX_ANCHORS 256

typedef struct Anchor {
        char *name;
        YNode *node;
} Anchor;

typedef struct YParse {
        SrcFile *f;
        yaml_parser_t p;
        DiagList *dl;
        Anchor anchors[YAML_MAX_ANCHORS];
        uint32_t nanchors;
        bool failed;
        /* the last mark converted to a byte offset: libyaml's marks mostly
         * come in increasing order, so the next one on the same line
         * continues from here instead of from the line's start (a one-line
         * list of n items was O(n^2)) */
        size_t mark_line, mark_col, mark_off;
        bool mark_known;
} YParse;

SrcPos srcfile_pos(const SrcFile *f, size_t off, size_t len)
{
        if (off > f->len)
                off = f->len;
        uint32_t lo = 0, hi = f->nlines;
        while (hi - lo > 1) {
                uint32_t mid = (lo + hi) / 2;
                if (f->lines[mid] <= off)
                        lo = mid;
                else
                        hi = mid;
        }
        const char *ls = f->text + f->lines[lo];
        SrcPos p = {.file = f->path, .line = lo + 1};
        p.col = (uint32_t)utf8_len(ls, off - f->lines[lo]) + 1;
        size_t end = off + len;
        if (end > f->len)
                end = f->len;
        const char *nl = memchr(f->text + off, '\n', end - off);
        if (nl)
                end = (size_t)(nl - f->text);
        p.len = (uint32_t)utf8_len(f->text + off, end - off);
        return p;
}

const char *srcfile_line(const SrcFile *f, uint32_t line, uint32_t *len)
{
        if (line == 0 || line > f->nlines)
                return NULL;
        size_t s = f->lines[line - 1];
        size_t e = line < f->nlines ? f->lines[line] : f->len;
        while (e > s && (f->text[e - 1] == '\n' || f->text[e - 1] == '\r'))
                e--;
        *len = (uint32_t)(e - s);
        return f->text + s;
}

/* libyaml marks count columns in characters (code points): convert to a
 * byte offset, continuing from the previous mark when this one is on the
 * same line and not left of it, else scanning from the line's start.
 * Either way the offset is the one utf8_offset gives from the line's start. */
static size_t mark_byte(YParse *y, yaml_mark_t m)
{
        const SrcFile *f = y->f;
        if (m.line >= f->nlines)
                return f->len;
        size_t ls = f->lines[m.line];
        size_t le = m.line + 1 < f->nlines ? f->lines[m.line + 1] : f->len;
        size_t col = 0, off = 0;
        if (y->mark_known && y->mark_line == m.line && y->mark_col <= m.column) {
                col = y->mark_col;
                off = y->mark_off;
        }
        off += utf8_offset(f->text + ls + off, le - ls - off, (uint32_t)(m.column - col) + 1);
        /* past the line's end the offset stays at its end; remember the
         * column asked for so a later mark further right continues from it */
        assert(ls + off <= le); /* on its line, at its end at the furthest */
        y->mark_known = true;
        y->mark_line = m.line;
        y->mark_col = m.column;
        y->mark_off = off;
        return ls + off;
}

static YNode *node_new(YParse *y, YKind kind, yaml_mark_t start, yaml_mark_t end)
{
        YNode *n = arena_alloc(&y->f->arena, sizeof(*n));
        n->kind = kind;
        n->src = y->f;
        n->line = (uint32_t)start.line + 1;
        n->col = (uint32_t)start.column + 1;
        n->start = mark_byte(y, start);
        n->end = mark_byte(y, end);
        return n;
}

/* libyaml's context ("while parsing a flow sequence") as a note for where
 * that construct began: "the flow sequence opened here". */
static void context_note(YParse *y, yaml_mark_t m)
{
        const char *ctx = y->p.context;
        static const char *const leads[] = {"while parsing ", "while scanning "};
        for (size_t i = 0; i < ARRAY_SIZE(leads); i++)
                if (strncmp(ctx, leads[i], strlen(leads[i])) == 0)
                        ctx += strlen(leads[i]);
        if (strncmp(ctx, "a ", 2) == 0)
                ctx += 2;
        else if (strncmp(ctx, "an ", 3) == 0)
                ctx += 3;
        /* brackets and quotes open and close; other constructs start */
        bool opens = strncmp(ctx, "flow ", 5) == 0 || strstr(ctx, "quoted");
        SrcPos pos = {.file = y->f->path, .line = (uint32_t)m.line + 1, .col = (uint32_t)m.column + 1, .len = 1};
        diag_note(y->dl, pos, "the %s %s here", ctx, opens ? "opened" : "started");
}

static void syntax_error(YParse *y)
{
        if (y->failed)
                return;
        y->failed = true;
        if (y->p.error == YAML_READER_ERROR) {
                /* bytes that are not UTF-8 (or a control character): the
                 * reader says where by a byte offset, its marks stay at 1:1;
                 * a bad trailing byte's offset is the byte after the lead
                 * that began the character: point at that lead */
                size_t off = y->p.problem_offset;
                if (y->p.problem && strstr(y->p.problem, "trailing") && off <= y->f->len) {
                        size_t b = off;
                        while (b > 0 && off - b < 3 && ((unsigned char)y->f->text[b - 1] & 0xc0) == 0x80)
                                b--;
                        if (b > 0 && (unsigned char)y->f->text[b - 1] >= 0xc0)
                                off = b - 1;
                }
                diag_add(y->dl, DIAG_E001, srcfile_pos(y->f, off, 1),
                         "save the file as UTF-8 text without control characters",
                         "YAML syntax error: %s", y->p.problem ? y->p.problem : "unreadable input");
                return;
        }
        yaml_mark_t m = y->p.problem_mark;
        /* At the end of the input the problem mark is past the last line:
         * the useful place is where the unclosed construct began ("while
         * parsing a flow sequence started at"), reported as the error.
         * Elsewhere the error is where libyaml noticed it and a note points
         * at where the construct it was reading began. */
        bool at_end = m.index >= y->f->len || (y->p.problem && strstr(y->p.problem, "end of stream"));
        bool ctx_ok = y->p.context && y->p.context_mark.line < y->f->nlines;
        bool moved = ctx_ok && at_end;
        if (moved)
                m = y->p.context_mark;
        SrcPos pos = {.file = y->f->path, .line = (uint32_t)m.line + 1,
                      .col = (uint32_t)m.column + 1, .len = 1};
        const char *problem = y->p.problem ? y->p.problem : "invalid YAML";
        if (y->p.context)
                diag_add(y->dl, DIAG_E001, pos,
                         "check indentation, quoting (a value starting with { [ * & ! | > ' \" % @ ` "
                         "or containing ': ' needs quotes) and unbalanced brackets",
                         "YAML syntax error: %s %s", problem, y->p.context);
        else
                diag_add(y->dl, DIAG_E001, pos,
                         "check indentation, quoting and unbalanced brackets",
                         "YAML syntax error: %s", problem);
        /* not a plain scalar's: its mark is the start of the value before
         * (a tab on the next line is "while scanning a plain scalar"), which
         * points away from the mistake */
        if (ctx_ok && !moved && y->p.context_mark.index != m.index && !strstr(y->p.context, "plain scalar"))
                context_note(y, y->p.context_mark);
}

static bool next_event(YParse *y, yaml_event_t *ev)
{
        /* after an error libyaml keeps returning success with no event */
        if (y->failed)
                return false;
        if (!yaml_parser_parse(&y->p, ev)) {
                syntax_error(y);
                return false;
        }
        if (ev->type == YAML_NO_EVENT) {
                y->failed = true;
                return false;
        }
        return true;
}

static void anchor_add(YParse *y, const unsigned char *name, YNode *n)
{
        if (!name || y->nanchors >= YAML_MAX_ANCHORS)
                return;
        y->anchors[y->nanchors].name = arena_strdup(&y->f->arena, (const char *)name);
        y->anchors[y->nanchors].node = n;
        y->nanchors++;
}

static YNode *parse_node(YParse *y, yaml_event_t *ev, unsigned depth);
static SrcPos scalar_map(const ExprSrc *es, uint32_t off, uint32_t len);

static YNode *parse_children(YParse *y, YNode *n, bool is_map, unsigned depth)
{
        uint32_t cap = 0, kcap = 0, nk = 0;
        for (;;) {
                yaml_event_t ev;
                if (!next_event(y, &ev))
                        return NULL;
                if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
                        n->end = mark_byte(y, ev.end_mark);
                        yaml_event_delete(&ev);
                        break;
                }
                YNode *c = parse_node(y, &ev, depth + 1);
                yaml_event_delete(&ev);
                if (!c)
                        return NULL;
                if (is_map && nk == n->n) {
                        /* a key: keys that are not scalars are reported by the loader */
                        if (nk >= kcap) {
                                uint32_t nc = kcap ? kcap * 2 : 8;
                                YNode **nkeys = arena_alloc(&y->f->arena, nc * sizeof(*nkeys));
                                if (n->keys)
                                        memcpy(nkeys, n->keys, nk * sizeof(*nkeys));
                                n->keys = nkeys;
                                kcap = nc;
                        }
                        n->keys[nk++] = c;
                        continue;
                }
                if (n->n >= cap) {
                        uint32_t nc = cap ? cap * 2 : 8;
                        YNode **items = arena_alloc(&y->f->arena, nc * sizeof(*items));
                        if (n->items)
                                memcpy(items, n->items, n->n * sizeof(*items));
                        n->items = items;
                        cap = nc;
                }
                n->items[n->n++] = c;
        }
        return n;
}

static YNode *parse_node(YParse *y, yaml_event_t *ev, unsigned depth)
{
        if (depth > YAML_MAX_DEPTH) {
                SrcPos pos = {.file = y->f->path, .line = (uint32_t)ev->start_mark.line + 1,
                              .col = (uint32_t)ev->start_mark.column + 1, .len = 1};
                diag_add(y->dl, DIAG_E001, pos, NULL, "YAML nested deeper than %d levels",
                         YAML_MAX_DEPTH);
                y->failed = true;
                return NULL;
        }
        YNode *n;
        switch (ev->type) {
        case YAML_SCALAR_EVENT:
                n = node_new(y, Y_SCALAR, ev->start_mark, ev->end_mark);
                n->str = arena_strndup(&y->f->arena, (const char *)ev->data.scalar.value,
                                       ev->data.scalar.length);
                n->len = ev->data.scalar.length;
                switch (ev->data.scalar.style) {
                case YAML_SINGLE_QUOTED_SCALAR_STYLE: n->style = YS_SINGLE; break;
                case YAML_DOUBLE_QUOTED_SCALAR_STYLE: n->style = YS_DOUBLE; break;
                case YAML_LITERAL_SCALAR_STYLE: n->style = YS_LITERAL; break;
                case YAML_FOLDED_SCALAR_STYLE: n->style = YS_FOLDED; break;
                default: n->style = YS_PLAIN; break;
                }
                if (memchr(n->str, 0, n->len)) {
                        /* an escape (\0, \x00, \u0000) made a NUL: every
                         * reader of the value would see it cut there */
                        ExprSrc es = {.ud = n};
                        uint32_t at = (uint32_t)((const char *)memchr(n->str, 0, n->len) - n->str);
                        diag_add(y->dl, DIAG_E001, scalar_map(&es, at, 1), "remove the escape: a string cannot hold NUL",
                                 "a NUL character (\\0, \\x00 or \\u0000) in a string");
                        y->failed = true;
                        return NULL;
                }
                anchor_add(y, ev->data.scalar.anchor, n);
                return n;
        case YAML_SEQUENCE_START_EVENT:
                n = node_new(y, Y_SEQ, ev->start_mark, ev->end_mark);
                n->style = ev->data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE ? YS_FLOW : YS_PLAIN;
                anchor_add(y, ev->data.sequence_start.anchor, n);
                return parse_children(y, n, false, depth);
        case YAML_MAPPING_START_EVENT:
                n = node_new(y, Y_MAP, ev->start_mark, ev->end_mark);
                n->style = ev->data.mapping_start.style == YAML_FLOW_MAPPING_STYLE ? YS_FLOW : YS_PLAIN;
                anchor_add(y, ev->data.mapping_start.anchor, n);
                return parse_children(y, n, true, depth);
        case YAML_ALIAS_EVENT:
                for (uint32_t i = y->nanchors; i-- > 0;)
                        if (strcmp(y->anchors[i].name, (const char *)ev->data.alias.anchor) == 0)
                                return y->anchors[i].node;
                {
                        SrcPos pos = {.file = y->f->path, .line = (uint32_t)ev->start_mark.line + 1,
                                      .col = (uint32_t)ev->start_mark.column + 1, .len = 1};
                        diag_add(y->dl, DIAG_E001, pos, NULL, "unknown YAML alias '*%s'",
                                 (const char *)ev->data.alias.anchor);
                }
                y->failed = true;
                return NULL;
        default:
                y->failed = true;
                return NULL;
        }
}

SrcFile *srcfile_new(const char *path, char *text, size_t len)
{
        SrcFile *f = xcalloc(1, sizeof(*f));
        arena_init(&f->arena);
        f->path = (char *)path; /* borrowed: the caller keeps it alive (load.c: the rule set's arena) */
        f->text = text;
        f->len = len;
        uint32_t cap = 0;
        VEC_PUSH(f->lines, f->nlines, cap) = 0;
        for (size_t i = 0; i < len; i++)
                if (text[i] == '\n' && i + 1 <= len)
                        VEC_PUSH(f->lines, f->nlines, cap) = (uint32_t)(i + 1);
        return f;
}

void srcfile_parse(SrcFile *f, DiagList *dl)
{
        char *text = f->text;
        size_t len = f->len;
        if (memchr(text, 0, len)) {
                size_t off = (size_t)((char *)memchr(text, 0, len) - text);
                diag_add(dl, DIAG_E001, srcfile_pos(f, off, 1), NULL,
                         "YAML syntax error: the file contains a NUL byte");
                return;
        }

        YParse y = {.f = f, .dl = dl};
        yaml_parser_initialize(&y.p);
        yaml_parser_set_input_string(&y.p, (const unsigned char *)text, len);
        yaml_event_t ev;
        bool done = false;
        unsigned docs = 0;
        while (!done && next_event(&y, &ev)) {
                switch (ev.type) {
                case YAML_STREAM_END_EVENT:
                        done = true;
                        break;
                case YAML_DOCUMENT_START_EVENT:
                        docs++;
                        if (docs > 1) {
                                SrcPos pos = {.file = f->path, .line = (uint32_t)ev.start_mark.line + 1,
                                              .col = (uint32_t)ev.start_mark.column + 1, .len = 3};
                                diag_add(dl, DIAG_E001, pos, "put each rule file's content in one document",
                                         "more than one YAML document in the file");
                                done = true;
                        }
                        break;
                case YAML_SEQUENCE_START_EVENT:
                case YAML_MAPPING_START_EVENT:
                case YAML_SCALAR_EVENT:
                case YAML_ALIAS_EVENT:
                        f->root = parse_node(&y, &ev, 0);
                        break;
                default:
                        break;
                }
                yaml_event_delete(&ev);
        }
        if (y.failed)
                f->root = NULL;
        yaml_parser_delete(&y.p);
}

SrcFile *srcfile_free(SrcFile *f)
{
        if (!f)
                return NULL;
        arena_deinit(&f->arena);
        free(f->text);
        free(f->lines);
        free(f);
        return NULL;
}

SrcPos ynode_pos(const YNode *n)
{
        return srcfile_pos(n->src, n->start, n->kind == Y_SCALAR ? n->end - n->start : 1);
}

SrcPos ynode_span(const YNode *n)
{
        return srcfile_pos(n->src, n->start, n->end - n->start);
}

YNode *ynode_get(const YNode *map, const char *key)
{
        if (!map || map->kind != Y_MAP)
                return NULL;
        for (uint32_t i = 0; i < map->n; i++)
                if (map->keys[i]->kind == Y_SCALAR && strcmp(map->keys[i]->str, key) == 0)
                        return map->items[i];
        return NULL;
}

bool ynode_is_null(const YNode *n)
{
        if (!n)
                return true;
        if (n->kind != Y_SCALAR || n->style != YS_PLAIN)
                return false;
        return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
               strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

/*
 * Map an offset in a scalar's value back to the file by walking the value
 * and the source text together: they agree byte for byte except where
 * quoting, escapes, indentation and line folding differ.
 */
static bool is_ws(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static SrcPos scalar_map(const ExprSrc *es, uint32_t off, uint32_t len)
{
        const YNode *n = es->ud;
        const SrcFile *f = n->src;
        const char *t = f->text;
        const char *v = n->str;
        size_t s = n->start, indent = 0;
        bool block = n->style == YS_LITERAL || n->style == YS_FOLDED;
        if (n->style == YS_SINGLE || n->style == YS_DOUBLE)
                s++;
        else if (block) {
                while (s < f->len && t[s] != '\n')
                        s++;
                while (s < f->len && (t[s] == '\n' || t[s] == '\r'))
                        s++;
                size_t ls = s;
                while (s < f->len && t[s] == ' ')
                        s++;
                indent = s - ls;
        }
        /* the clipped final newline of a block maps to the end of its text */
        size_t vend = n->len;
        while (vend > 0 && v[vend - 1] == '\n')
                vend--;
        if (off > vend)
                off = (uint32_t)vend;
        if (off + len > vend)
                len = (uint32_t)(vend - off);
        size_t vi = 0, starts = s;
        for (int pass = 0; pass < 2; pass++) {
                size_t target = pass == 0 ? off : off + len;
                while (vi < target && s < f->len) {
                        if (n->style == YS_SINGLE && t[s] == '\'' && s + 1 < f->len && t[s + 1] == '\'') {
                                s += 2;
                                vi++;
                        } else if (n->style == YS_DOUBLE && t[s] == '\\') {
                                if (s + 1 < f->len && (t[s + 1] == '\n' || t[s + 1] == '\r')) {
                                        /* a line continuation produces nothing */
                                        s++;
                                        while (s < f->len && is_ws(t[s]))
                                                s++;
                                        continue;
                                }
                                size_t el = 2;
                                if (s + 1 < f->len && t[s + 1] == 'u')
                                        el = 6;
                                else if (s + 1 < f->len && t[s + 1] == 'x')
                                        el = 4;
                                else if (s + 1 < f->len && t[s + 1] == 'U')
                                        el = 10;
                                s += el;
                                vi++;
                                while (vi < n->len && ((unsigned char)v[vi] & 0xc0) == 0x80)
                                        vi++;
                        } else if (t[s] == v[vi]) {
                                bool nl = t[s] == '\n';
                                s++;
                                vi++;
                                if (nl && block) { /* a kept line break: skip the block indentation */
                                        for (size_t k = 0; k < indent && s < f->len && t[s] == ' '; k++)
                                                s++;
                                } else if (nl) {
                                        while (s < f->len && (t[s] == ' ' || t[s] == '\t'))
                                                s++;
                                }
                        } else if (is_ws(t[s])) {
                                /* folding: a line break (and indentation) became one space */
                                bool broke = false;
                                while (s < f->len && is_ws(t[s])) {
                                        broke |= t[s] == '\n';
                                        s++;
                                        if (broke && block) {
                                                for (size_t k = 0; k < indent && s < f->len && t[s] == ' '; k++)
                                                        s++;
                                                break;
                                        }
                                }
                                if (v[vi] == ' ' || v[vi] == '\n')
                                        vi++;
                        } else {
                                s++;
                                vi++;
                        }
                }
                /* a line continuation produces nothing: the token starts after it */
                while (n->style == YS_DOUBLE && s + 1 < f->len && t[s] == '\\' &&
                       (t[s + 1] == '\n' || t[s + 1] == '\r')) {
                        s++;
                        while (s < f->len && is_ws(t[s]))
                                s++;
                }
                if (pass == 0)
                        starts = s;
        }
        return srcfile_pos(f, starts, s > starts ? s - starts : 1);
}

void ynode_exprsrc(const YNode *n, uint32_t id, ExprSrc *ret)
{
        ret->id = id;
        ret->file = n->src->path;
        ret->text = n->str;
        ret->len = n->len;
        ret->ud = (void *)n;
        ret->map = scalar_map;
}
