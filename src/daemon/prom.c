/* Prometheus text exposition (prom.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/daemon/prom.h"

struct PromSeries {
        const PromFamily *fam;
        char **values;           /* [family nlabels] */
        uint64_t hash;
        double value;            /* counter, gauge; histogram: the sum */
        uint64_t count;          /* histogram */
        uint64_t *buckets;       /* histogram: per bucket, not cumulative */
};

struct PromFamily {
        Prom *owner;
        PromType type;
        char *name, *help;
        char *labels[PROM_MAX_LABELS];
        uint32_t nlabels;
        double *bounds;
        uint32_t nbounds;
        PromSeries **series;
        uint32_t nseries, cseries;
        /* open addressing over series by hash of the values */
        uint32_t *index;         /* series number + 1; 0 empty */
        uint32_t icap;
};

struct Prom {
        PromFamily **fams;
        uint32_t nfams, cfams;
        PromFamily *dropped;     /* riskd_metrics_series_dropped_total{family} */
};

static uint64_t values_hash(const char *const *values, uint32_t n)
{
        uint64_t h = HASH64_INIT;
        for (uint32_t i = 0; i < n; i++)
                h = hash64(values[i], strlen(values[i]) + 1, h);
        return h;
}

Prom *prom_new(void)
{
        Prom *p = xcalloc(1, sizeof(*p));
        p->dropped = prom_family(p, PROM_COUNTER, "riskd_metrics_series_dropped_total",
                                 "Label combinations not recorded because their family was full", "family", NULL, 0);
        return p;
}

static void series_free(PromSeries *s, uint32_t nlabels)
{
        for (uint32_t i = 0; i < nlabels; i++)
                free(s->values[i]);
        free(s->values);
        free(s->buckets);
        free(s);
}

void prom_family_clear(PromFamily *f)
{
        for (uint32_t i = 0; i < f->nseries; i++)
                series_free(f->series[i], f->nlabels);
        f->nseries = 0;
        if (f->index)
                memset(f->index, 0, f->icap * sizeof(uint32_t));
}

Prom *prom_free(Prom *p)
{
        if (!p)
                return NULL;
        for (uint32_t i = 0; i < p->nfams; i++) {
                PromFamily *f = p->fams[i];
                prom_family_clear(f);
                free(f->series);
                free(f->index);
                for (uint32_t k = 0; k < f->nlabels; k++)
                        free(f->labels[k]);
                free(f->bounds);
                free(f->name);
                free(f->help);
                free(f);
        }
        free(p->fams);
        free(p);
        return NULL;
}

PromFamily *prom_family(Prom *p, PromType type, const char *name, const char *help, const char *labels,
                        const double *buckets, uint32_t nbuckets)
{
        PromFamily *f = xcalloc(1, sizeof(*f));
        f->owner = p;
        f->type = type;
        f->name = xstrdup(name);
        f->help = xstrdup(help);
        for (const char *l = labels; l && *l && f->nlabels < PROM_MAX_LABELS;) {
                const char *comma = strchr(l, ',');
                size_t n = comma ? (size_t)(comma - l) : strlen(l);
                f->labels[f->nlabels++] = xstrndup(l, n);
                l += n + (comma ? 1 : 0);
        }
        if (type == PROM_HISTOGRAM && nbuckets) {
                f->bounds = xmalloc(nbuckets * sizeof(double));
                memcpy(f->bounds, buckets, nbuckets * sizeof(double));
                f->nbounds = nbuckets;
        }
        VEC_PUSH(p->fams, p->nfams, p->cfams) = f;
        return f;
}

static void index_put(PromFamily *f, uint32_t k)
{
        uint32_t mask = f->icap - 1;
        for (uint32_t i = (uint32_t)f->series[k]->hash & mask;; i = (i + 1) & mask)
                if (!f->index[i]) {
                        f->index[i] = k + 1;
                        return;
                }
}

PromSeries *prom_series(PromFamily *f, const char *const *values)
{
        static const char *const none[1] = {""};
        if (!f->nlabels)
                values = none;
        uint64_t h = values_hash(values, f->nlabels);
        if (f->icap) {
                uint32_t mask = f->icap - 1;
                for (uint32_t i = (uint32_t)h & mask; f->index[i]; i = (i + 1) & mask) {
                        PromSeries *s = f->series[f->index[i] - 1];
                        if (s->hash != h)
                                continue;
                        uint32_t k = 0;
                        while (k < f->nlabels && strcmp(s->values[k], values[k]) == 0)
                                k++;
                        if (k == f->nlabels)
                                return s;
                }
        }
        if (f->nseries >= PROM_MAX_SERIES) {
                if (f != f->owner->dropped)
                        prom_add(prom_series1(f->owner->dropped, f->name), 1);
                return NULL;
        }
        PromSeries *s = xcalloc(1, sizeof(*s));
        s->fam = f;
        s->values = xcalloc(f->nlabels + 1, sizeof(char *));
        for (uint32_t k = 0; k < f->nlabels; k++)
                s->values[k] = xstrdup(values[k] ? values[k] : "");
        s->hash = h;
        if (f->type == PROM_HISTOGRAM)
                s->buckets = xcalloc(f->nbounds + 1, sizeof(uint64_t));
        VEC_PUSH(f->series, f->nseries, f->cseries) = s;
        if (f->nseries * 2 > f->icap) {
                free(f->index);
                f->icap = f->icap ? f->icap * 2 : 16;
                while (f->nseries * 2 > f->icap)
                        f->icap *= 2;
                f->index = xcalloc(f->icap, sizeof(uint32_t));
                for (uint32_t k = 0; k < f->nseries; k++)
                        index_put(f, k);
        } else
                index_put(f, f->nseries - 1);
        return s;
}

PromSeries *prom_series1(PromFamily *f, const char *v1)
{
        const char *v[1] = {v1};
        return prom_series(f, v);
}

PromSeries *prom_series2(PromFamily *f, const char *v1, const char *v2)
{
        const char *v[2] = {v1, v2};
        return prom_series(f, v);
}

void prom_add(PromSeries *s, double v)
{
        if (s)
                s->value += v;
}

void prom_set(PromSeries *s, double v)
{
        if (s)
                s->value = v;
}

double prom_value(const PromSeries *s)
{
        return s ? s->value : 0;
}

/* The first bucket whose upper bound holds v; nbounds: +Inf. */
static uint32_t bucket_of(const PromFamily *f, double v)
{
        uint32_t lo = 0, hi = f->nbounds;
        while (lo < hi) {
                uint32_t mid = (lo + hi) / 2;
                if (v <= f->bounds[mid])
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return lo;
}

void prom_observe(PromSeries *s, double v)
{
        if (!s || !s->buckets)
                return;
        s->buckets[bucket_of(s->fam, v)]++;
        s->value += v;
        s->count++;
}

static void put_num(Buf *b, double v)
{
        if (isnan(v))
                buf_puts(b, "NaN");
        else if (isinf(v))
                buf_puts(b, v > 0 ? "+Inf" : "-Inf");
        else if (fabs(v) < 1e15 && v == (double)(int64_t)v) /* the range first: a cast past int64 is undefined */
                buf_printf(b, "%lld", (long long)v);
        else
                buf_printf(b, "%.15g", v);
}

/* Backslashes and newlines escaped, and double quotes too in a label
 * value (quote): the exposition format leaves them as they are in HELP. */
static void put_escaped(Buf *b, const char *s, bool quote)
{
        for (; *s; s++) {
                if (*s == '\\')
                        buf_puts(b, "\\\\");
                else if (*s == '"' && quote)
                        buf_puts(b, "\\\"");
                else if (*s == '\n')
                        buf_puts(b, "\\n");
                else
                        buf_putc(b, *s);
        }
}

/* name{a="x",b="y"[,le="0.5"]} */
static void put_labels(Buf *b, const PromFamily *f, const PromSeries *s, const char *le)
{
        if (!f->nlabels && !le)
                return;
        buf_putc(b, '{');
        for (uint32_t k = 0; k < f->nlabels; k++) {
                buf_printf(b, "%s%s=\"", k ? "," : "", f->labels[k]);
                put_escaped(b, s->values[k], true);
                buf_putc(b, '"');
        }
        if (le)
                buf_printf(b, "%sle=\"%s\"", f->nlabels ? "," : "", le);
        buf_putc(b, '}');
}

void prom_render(const Prom *p, Buf *out)
{
        static const char *const type_names[] = {"counter", "gauge", "histogram"};
        for (uint32_t i = 0; i < p->nfams; i++) {
                const PromFamily *f = p->fams[i];
                buf_printf(out, "# HELP %s ", f->name);
                put_escaped(out, f->help, false);
                buf_printf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
                for (uint32_t k = 0; k < f->nseries; k++) {
                        const PromSeries *s = f->series[k];
                        if (f->type != PROM_HISTOGRAM) {
                                buf_puts(out, f->name);
                                put_labels(out, f, s, NULL);
                                buf_putc(out, ' ');
                                put_num(out, s->value);
                                buf_putc(out, '\n');
                                continue;
                        }
                        uint64_t cum = 0;
                        char le[40];
                        for (uint32_t j = 0; j <= f->nbounds; j++) {
                                cum += s->buckets[j];
                                if (j < f->nbounds) {
                                        Buf t = {0};
                                        put_num(&t, f->bounds[j]);
                                        snprintf(le, sizeof(le), "%s", t.p);
                                        buf_free(&t);
                                } else
                                        snprintf(le, sizeof(le), "+Inf");
                                buf_printf(out, "%s_bucket", f->name);
                                put_labels(out, f, s, le);
                                buf_printf(out, " %llu\n", (unsigned long long)cum);
                        }
                        buf_printf(out, "%s_sum", f->name);
                        put_labels(out, f, s, NULL);
                        buf_putc(out, ' ');
                        put_num(out, s->value);
                        buf_printf(out, "\n%s_count", f->name);
                        put_labels(out, f, s, NULL);
                        buf_printf(out, " %llu\n", (unsigned long long)s->count);
                }
        }
}
