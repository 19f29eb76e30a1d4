/*
 * riskd's metrics in the Prometheus text exposition format 0.0.4: counter,
 * gauge and histogram families with fixed label names, one series per
 * label-value combination.  Used from the main loop only (no locking).
 *
 * A family holds at most PROM_MAX_SERIES series; a new combination beyond
 * that is counted in riskd_metrics_series_dropped_total and its
 * observations are lost (label values come from rules and input: bounded,
 * but not by riskd).
 */
#ifndef RISKD_DAEMON_PROM_H
#define RISKD_DAEMON_PROM_H

#include <stdint.h>

#include "include/riskd/util.h"

#define PROM_MAX_SERIES 10000
#define PROM_MAX_LABELS 4

typedef enum PromType { PROM_COUNTER, PROM_GAUGE, PROM_HISTOGRAM } PromType;

typedef struct Prom Prom;
typedef struct PromFamily PromFamily;
typedef struct PromSeries PromSeries;

Prom *prom_new(void);
Prom *prom_free(Prom *p);

/* A family: name (counters end in _total), help text, label names separated
 * by commas (NULL: none), and for histograms the upper bounds of the buckets
 * in increasing order (+Inf is implied). */
PromFamily *prom_family(Prom *p, PromType type, const char *name, const char *help, const char *labels,
                        const double *buckets, uint32_t nbuckets);

/* The series of these label values (as many as the family's labels; NULL
 * for a family without labels), created at 0 the first time; NULL when the
 * family is full.  Callers may keep the pointer until prom_family_clear of
 * its family (or prom_free). */
PromSeries *prom_series(PromFamily *f, const char *const *values);
/* prom_series with the values as arguments. */
PromSeries *prom_series1(PromFamily *f, const char *v1);
PromSeries *prom_series2(PromFamily *f, const char *v1, const char *v2);
/* Drops every series of a family (a gauge recomputed from scratch): the
 * pointers to them are freed. */
void prom_family_clear(PromFamily *f);

/* NULL series are ignored, so that a full family costs nothing. */
void prom_add(PromSeries *s, double v);
void prom_set(PromSeries *s, double v);
void prom_observe(PromSeries *s, double v);
double prom_value(const PromSeries *s);

/* Every family in creation order, its series in creation order. */
void prom_render(const Prom *p, Buf *out);

#endif
