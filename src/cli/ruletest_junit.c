/*
 * riskctl test --junit FILE: the results as JUnit XML for CI systems, one
 * <testsuite> per test file.  Apart from the runner because it only
 * formats what the driver collected: XML escaping and the file written
 * whole.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/cli/ruletest_int.h"

JSuite *junit_suite(Junit *ju, const char *name)
{
        JSuite *s = &VEC_PUSH(ju->v, ju->n, ju->cap);
        *s = (JSuite){.name = xstrdup(name)};
        return s;
}

/* The class of a test file's cases: its name without directory and
 * extension ("sampling" for rules/tests/sampling.yaml), so that a CI
 * system that splits class names at dots does not cut off "yaml". */
static char *junit_class(const char *path)
{
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        const char *dot = strrchr(b, '.');
        return xstrndup(b, dot && dot != b ? (size_t)(dot - b) : strlen(b));
}

/* The first non-blank line of a report, without its indent: a failure's
 * one-line message. */
static char *first_line(const char *s)
{
        if (!s)
                return xstrdup("");
        while (*s == ' ' || *s == '\n')
                s++;
        return xstrndup(s, strcspn(s, "\n"));
}

void junit_case(JSuite *s, const char *path, const char *name, uint32_t line, double secs,
                       JOutcome o, const char *message, const char *text)
{
        JCase *k = &VEC_PUSH(s->v, s->n, s->cap);
        *k = (JCase){.classname = junit_class(path), .name = xstrdup(name), .file = xstrdup(path),
                     .line = line, .secs = secs, .outcome = o};
        if (o != JO_PASS) {
                k->message = message ? xstrdup(message) : first_line(text);
                k->text = xstrdup(text ? text : "");
        }
}

/* XML 1.0 text or attribute value.  Markup characters become entities; a
 * character XML cannot carry at all (control characters other than tab
 * and newline, U+FFFE, U+FFFF, a surrogate) is written as \uXXXX and a
 * byte that is not UTF-8 as \xNN, so that the file always parses and the
 * report still shows where the odd byte was.  In attributes tab, newline
 * and carriage return are character references (a parser would turn them
 * into spaces). */
static void xml_put(Buf *b, const char *s, bool attr)
{
        const unsigned char *p = (const unsigned char *)s;
        while (*p) {
                unsigned char c = *p;
                if (c < 0x80) {
                        switch (c) {
                        case '&': buf_puts(b, "&amp;"); break;
                        case '<': buf_puts(b, "&lt;"); break;
                        case '>': buf_puts(b, "&gt;"); break;
                        case '"': buf_puts(b, attr ? "&quot;" : "\""); break;
                        case '\'': buf_puts(b, attr ? "&apos;" : "'"); break;
                        case '\t': case '\n':
                                if (attr)
                                        buf_printf(b, "&#%d;", c);
                                else
                                        buf_putc(b, (char)c);
                                break;
                        case '\r': buf_puts(b, "&#13;"); break;
                        default:
                                if (c < 0x20 || c == 0x7f)
                                        buf_printf(b, "\\u%04X", c);
                                else
                                        buf_putc(b, (char)c);
                        }
                        p++;
                        continue;
                }
                uint32_t n = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
                uint32_t cp = n == 4 ? c & 7u : n == 3 ? c & 15u : c & 31u;
                uint32_t i = 1;
                for (; n && i < n && (p[i] & 0xc0) == 0x80; i++)
                        cp = cp << 6 | (p[i] & 63u);
                bool ok = n && i == n && !(n == 3 && cp < 0x800) && !(n == 4 && (cp < 0x10000 || cp > 0x10ffff));
                if (!ok) {
                        buf_printf(b, "\\x%02X", c);
                        p++;
                } else if ((cp >= 0xd800 && cp < 0xe000) || cp == 0xfffe || cp == 0xffff ||
                           (cp >= 0x80 && cp < 0xa0)) {
                        /* C1 controls are legal XML 1.0 but "discouraged";
                         * several parsers refuse them */
                        buf_printf(b, "\\u%04X", cp);
                        p += n;
                } else {
                        buf_put(b, p, n);
                        p += n;
                }
        }
}

static void junit_write_case(Buf *b, const JCase *k)
{
        static const char *const tags[] = {[JO_FAIL] = "failure", [JO_ERROR] = "error", [JO_SKIP] = "skipped"};
        buf_puts(b, "    <testcase classname=\"");
        xml_put(b, k->classname, true);
        buf_puts(b, "\" name=\"");
        xml_put(b, k->name, true);
        buf_printf(b, "\" time=\"%.3f\" file=\"", k->secs);
        xml_put(b, k->file, true);
        buf_putc(b, '"');
        if (k->line)
                buf_printf(b, " line=\"%u\"", k->line);
        if (k->outcome == JO_PASS) {
                buf_puts(b, "/>\n");
                return;
        }
        buf_printf(b, ">\n      <%s message=\"", tags[k->outcome]);
        xml_put(b, k->message, true);
        buf_puts(b, "\">");
        xml_put(b, k->text, false);
        buf_printf(b, "</%s>\n    </testcase>\n", tags[k->outcome]);
}

int junit_write(const Junit *ju, const char *path)
{
        uint32_t tests = 0, failures = 0, errors = 0, skipped = 0;
        double secs = 0;
        Buf body = {0};
        for (uint32_t i = 0; i < ju->n; i++) {
                const JSuite *s = &ju->v[i];
                uint32_t f = 0, e = 0, sk = 0;
                double t = 0;
                for (uint32_t k = 0; k < s->n; k++) {
                        f += s->v[k].outcome == JO_FAIL;
                        e += s->v[k].outcome == JO_ERROR;
                        sk += s->v[k].outcome == JO_SKIP;
                        t += s->v[k].secs;
                }
                buf_puts(&body, "  <testsuite name=\"");
                xml_put(&body, s->name, true);
                buf_printf(&body, "\" tests=\"%u\" failures=\"%u\" errors=\"%u\" skipped=\"%u\" time=\"%.3f\">\n",
                           s->n, f, e, sk, t);
                for (uint32_t k = 0; k < s->n; k++)
                        junit_write_case(&body, &s->v[k]);
                buf_puts(&body, "  </testsuite>\n");
                tests += s->n;
                failures += f;
                errors += e;
                skipped += sk;
                secs += t;
        }
        Buf b = {0};
        buf_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                       "<testsuites name=\"riskctl test\" tests=\"%u\" failures=\"%u\" errors=\"%u\" skipped=\"%u\" time=\"%.3f\">\n",
                   tests, failures, errors, skipped, secs);
        buf_put(&b, body.p ? body.p : "", body.len);
        buf_puts(&b, "</testsuites>\n");
        buf_free(&body);

        int rc = 0;
        char *tmp = xasprintf("%s.tmp", path);
        FILE *f = fopen(tmp, "w");
        if (!f || fwrite(b.p, 1, b.len, f) != b.len)
                rc = -errno;
        if (f && fclose(f) != 0 && rc == 0)
                rc = -errno;
        if (rc == 0 && rename(tmp, path) < 0)
                rc = -errno;
        if (rc < 0)
                unlink(tmp);
        free(tmp);
        buf_free(&b);
        return rc;
}

void junit_free(Junit *ju)
{
        for (uint32_t i = 0; i < ju->n; i++) {
                for (uint32_t k = 0; k < ju->v[i].n; k++) {
                        JCase *c = &ju->v[i].v[k];
                        free(c->classname);
                        free(c->name);
                        free(c->file);
                        free(c->message);
                        free(c->text);
                }
                free(ju->v[i].v);
                free(ju->v[i].name);
        }
        free(ju->v);
}
