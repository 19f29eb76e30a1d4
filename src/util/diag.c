/*
 * Diagnostics: collection, ordering and rendering (text with a caret under
 * the bad token, or one JSON document).  See include/riskd/diag.h.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "include/riskd/diag.h"
#include "include/riskd/util.h"
#include "src/util/json.h"

static const struct {
        const char *code, *name;
        char level;
} codes[] = {
#define X(c, n, l) {#c, #n, #l[0]},
        DIAG_CODE_LIST(X)
        DIAG_CONFIG_CODE_LIST(X)
#undef X
};

const char *diag_code_str(DiagCode c)
{
        return c < _DIAG_CODE_MAX ? codes[c].code : "E000";
}

const char *diag_code_name(DiagCode c)
{
        return c < _DIAG_CODE_MAX ? codes[c].name : "unknown";
}

DiagLevel diag_code_level(DiagCode c)
{
        return c < _DIAG_CODE_MAX && codes[c].level == 'W' ? DIAG_LEVEL_WARNING : DIAG_LEVEL_ERROR;
}

/* per thread: riskd compiles a reload on a worker thread */
static _Thread_local DiagLineFn line_fn;
static _Thread_local void *line_ud;

void diag_set_line_source(DiagLineFn fn, void *ud)
{
        line_fn = fn;
        line_ud = ud;
}

static char *source_line(SrcPos pos)
{
        if (!line_fn || !pos.file || !pos.line)
                return NULL;
        uint32_t n = 0;
        const char *l = line_fn(line_ud, pos.file, pos.line, &n);
        if (!l)
                return NULL;
        /* a byte that is not part of well-formed UTF-8 (the line of a
         * "not UTF-8" error) shows as U+FFFD: the text and JSON output stay
         * UTF-8, and the caret's column still counts it as one character */
        Buf b = {0};
        buf_put_utf8(&b, l, n);
        return b.p ? b.p : xstrdup("");
}

/* A diagnostic's or a note's message: fmt formatted, never NULL. */
__attribute__((format(printf, 1, 0))) static char *message_v(const char *fmt, va_list ap)
{
        Buf b = {0};
        buf_vprintf(&b, fmt, ap);
        return b.p ? b.p : xstrdup("");
}

void diag_add(DiagList *dl, DiagCode code, SrcPos pos, const char *hint, const char *fmt, ...)
{
        DiagLevel lvl = diag_code_level(code);
        if (lvl == DIAG_LEVEL_ERROR)
                dl->nerrors++;
        else
                dl->nwarnings++;
        dl->last_dropped = dl->n >= (dl->max ? dl->max : 1000);
        if (dl->last_dropped)
                return;
        Diag *d = &VEC_PUSH(dl->v, dl->n, dl->cap);
        d->code = code;
        d->level = lvl;
        d->file = xstrdup(pos.file ? pos.file : "");
        d->line = pos.line;
        d->col = pos.col;
        d->len = pos.len;
        va_list ap;
        va_start(ap, fmt);
        d->message = message_v(fmt, ap);
        va_end(ap);
        d->hint = hint ? xstrdup(hint) : NULL;
        d->srcline = source_line(pos);
        d->notes = NULL;
        d->nnotes = 0;
}

void diag_note(DiagList *dl, SrcPos pos, const char *fmt, ...)
{
        if (!dl->n || dl->last_dropped)
                return;
        Diag *d = &dl->v[dl->n - 1];
        /* rare (one or two a diagnostic): grow one at a time */
        d->notes = xrealloc(d->notes, (d->nnotes + 1) * sizeof(DiagNote));
        DiagNote *nt = &d->notes[d->nnotes++];
        nt->file = xstrdup(pos.file ? pos.file : "");
        nt->line = pos.line;
        nt->col = pos.col;
        nt->len = pos.len;
        va_list ap;
        va_start(ap, fmt);
        nt->message = message_v(fmt, ap);
        va_end(ap);
        nt->srcline = source_line(pos);
}

static void diag_free(Diag *d)
{
        free(d->file);
        free(d->message);
        free(d->hint);
        free(d->srcline);
        for (uint32_t i = 0; i < d->nnotes; i++) {
                free(d->notes[i].file);
                free(d->notes[i].message);
                free(d->notes[i].srcline);
        }
        free(d->notes);
}

void diag_list_deinit(DiagList *dl)
{
        for (uint32_t i = 0; i < dl->n; i++)
                diag_free(&dl->v[i]);
        free(dl->v);
        memset(dl, 0, sizeof(*dl));
}

static int diag_cmp(const void *x, const void *y)
{
        const Diag *a = x, *b = y;
        int c = strcmp(a->file, b->file);
        if (c)
                return c;
        if (a->line != b->line)
                return a->line < b->line ? -1 : 1;
        if (a->col != b->col)
                return a->col < b->col ? -1 : 1;
        if (a->code != b->code)
                return a->code < b->code ? -1 : 1;
        return strcmp(a->message, b->message);
}

void diag_list_sort(DiagList *dl)
{
        if (dl->n > 1)
                xsort(dl->v, dl->n, sizeof(Diag), diag_cmp);
        /* the same problem found twice (a macro used by two rules) is one */
        uint32_t k = 0;
        for (uint32_t i = 0; i < dl->n; i++) {
                if (k && diag_cmp(&dl->v[k - 1], &dl->v[i]) == 0) {
                        Diag *d = &dl->v[i];
                        if (d->level == DIAG_LEVEL_ERROR)
                                dl->nerrors--;
                        else
                                dl->nwarnings--;
                        diag_free(d);
                        continue;
                }
                dl->v[k++] = dl->v[i];
        }
        dl->n = k;
}

/* The source line and a caret (or ^~~~ under len code points) at col;
 * mark is the caret's colour escape, NULL for none. */
static void print_caret(FILE *f, const char *l, uint32_t line, uint32_t col, uint32_t len, const char *mark)
{
        size_t n = strlen(l);
        size_t upto = utf8_offset(l, n, col);
        fprintf(f, "  %5u | %s\n        | ", line, l);
        /* keep tabs as tabs so the caret lines up in a terminal */
        for (size_t i = 0; i < upto;) {
                if (l[i] == '\t') {
                        fputc('\t', f);
                        i++;
                        continue;
                }
                size_t j = i + 1;
                while (j < upto && ((unsigned char)l[j] & 0xc0) == 0x80)
                        j++;
                size_t w = utf8_width(l + i, j - i);
                while (w--)
                        fputc(' ', f);
                i = j;
        }
        size_t width = 1;
        if (len > 1) {
                size_t end = utf8_offset(l, n, col + len);
                width = utf8_width(l + upto, end - upto);
                if (width == 0)
                        width = 1;
        }
        if (mark)
                fputs(mark, f);
        fputc('^', f);
        for (size_t i = 1; i < width; i++)
                fputc('~', f);
        if (mark)
                fputs("\033[0m", f);
        fputc('\n', f);
}

void diag_print_text(FILE *f, const DiagList *dl, bool color)
{
        for (uint32_t i = 0; i < dl->n; i++) {
                const Diag *d = &dl->v[i];
                const char *lvl = d->level == DIAG_LEVEL_ERROR ? "error" : "warning";
                if (color)
                        fprintf(f, "\033[1m%s:%u:%u: \033[%sm%s[%s]\033[0m\033[1m: %s\033[0m\n",
                                d->file, d->line, d->col,
                                d->level == DIAG_LEVEL_ERROR ? "1;31" : "1;35", lvl,
                                diag_code_str(d->code), d->message);
                else if (d->line == 0) /* the whole file or directory */
                        fprintf(f, "%s: %s[%s]: %s\n", d->file, lvl, diag_code_str(d->code), d->message);
                else
                        fprintf(f, "%s:%u:%u: %s[%s]: %s\n", d->file, d->line, d->col, lvl,
                                diag_code_str(d->code), d->message);
                if (d->srcline)
                        print_caret(f, d->srcline, d->line, d->col, d->len,
                                    !color ? NULL : d->level == DIAG_LEVEL_ERROR ? "\033[1;31m" : "\033[1;35m");
                if (d->hint)
                        fprintf(f, "        = help: %s\n", d->hint);
                for (uint32_t k = 0; k < d->nnotes; k++) {
                        const DiagNote *nt = &d->notes[k];
                        if (color)
                                fprintf(f, "\033[1m%s:%u:%u: \033[1;36mnote\033[0m\033[1m: %s\033[0m\n", nt->file,
                                        nt->line, nt->col, nt->message);
                        else
                                fprintf(f, "%s:%u:%u: note: %s\n", nt->file, nt->line, nt->col, nt->message);
                        if (nt->srcline)
                                print_caret(f, nt->srcline, nt->line, nt->col, nt->len, color ? "\033[1;36m" : NULL);
                }
        }
}

void diag_print_json(FILE *f, const DiagList *dl, const char *summary_json)
{
        Buf b = {0};
        buf_puts(&b, "{\"diagnostics\":[");
        for (uint32_t i = 0; i < dl->n; i++) {
                const Diag *d = &dl->v[i];
                if (i)
                        buf_putc(&b, ',');
                buf_printf(&b, "{\"code\":\"%s\",\"name\":\"%s\",\"severity\":\"%s\",\"file\":",
                           diag_code_str(d->code), diag_code_name(d->code),
                           d->level == DIAG_LEVEL_ERROR ? "error" : "warning");
                buf_json_str(&b, d->file, strlen(d->file));
                buf_printf(&b, ",\"line\":%u,\"column\":%u,\"length\":%u,\"message\":", d->line,
                           d->col, d->len);
                buf_json_str(&b, d->message, strlen(d->message));
                buf_puts(&b, ",\"hint\":");
                if (d->hint)
                        buf_json_str(&b, d->hint, strlen(d->hint));
                else
                        buf_puts(&b, "null");
                buf_puts(&b, ",\"source\":");
                json_put_str_or_null(&b, d->srcline);
                buf_puts(&b, ",\"notes\":[");
                for (uint32_t k = 0; k < d->nnotes; k++) {
                        const DiagNote *nt = &d->notes[k];
                        buf_puts(&b, k ? ",{\"file\":" : "{\"file\":");
                        buf_json_str(&b, nt->file, strlen(nt->file));
                        buf_printf(&b, ",\"line\":%u,\"column\":%u,\"length\":%u,\"message\":", nt->line, nt->col,
                                   nt->len);
                        buf_json_str(&b, nt->message, strlen(nt->message));
                        buf_puts(&b, ",\"source\":");
                        json_put_str_or_null(&b, nt->srcline);
                        buf_putc(&b, '}');
                }
                buf_puts(&b, "]}");
        }
        buf_printf(&b, "],\"errors\":%u,\"warnings\":%u", dl->nerrors, dl->nwarnings);
        if (summary_json)
                buf_printf(&b, ",\"summary\":%s", summary_json);
        buf_puts(&b, "}\n");
        fputs(b.p, f);
        buf_free(&b);
}

const char *diag_suggest(const char *word, const char *const *cands, uint32_t n)
{
        const char *best = NULL;
        unsigned bestd = 3;
        size_t wl = strlen(word);
        for (uint32_t i = 0; i < n; i++) {
                if (!cands[i])
                        continue;
                if (strcasecmp(word, cands[i]) == 0)
                        return cands[i];
                unsigned d = edit_distance(word, cands[i]);
                /* short words: one edit at most, or everything looks alike */
                unsigned lim = wl <= 3 ? 1 : 2;
                if (d <= lim && d < bestd) {
                        bestd = d;
                        best = cands[i];
                }
        }
        return best;
}

void diag_hint_names(Buf *h, const char *word, const char *const *names, uint32_t n, const char *label,
                     const char *none)
{
        const char *sug = diag_suggest(word, names, n);
        if (sug)
                buf_printf(h, "did you mean '%s'? ", sug);
        buf_puts(h, label);
        for (uint32_t i = 0; i < n; i++)
                buf_printf(h, " %s", names[i]);
        if (!n && none)
                buf_puts(h, none);
}

SrcPos exprsrc_pos(const ExprSrc *src, uint32_t off, uint32_t len)
{
        if (src->map)
                return src->map(src, off, len);
        size_t n = src->len;
        if (off > n)
                off = (uint32_t)n;
        if (len > n - off)
                len = (uint32_t)(n - off);
        return (SrcPos){
                .file = src->file,
                .line = 1,
                .col = 1 + (uint32_t)utf8_len(src->text, off),
                .len = (uint32_t)utf8_len(src->text + off, len),
        };
}
