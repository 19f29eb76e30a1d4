/*
 * The engine's plan (plan.c): what it derives once from the compiled
 * rules and then only reads.  Its own header so that the files that read
 * the plan (the event flow, state.c's records, window.c) see it without
 * the rest of the engine's parts.
 */
#ifndef RISKD_ENGINE_PLAN_H
#define RISKD_ENGINE_PLAN_H

#include "include/riskd/rules.h"
#include "include/riskd/util.h"

/* Per-rule data the engine derives once from the compiled rules. */
typedef struct RuleInfo {
        uint32_t *snap_slots;   /* slots a timer firing needs from the event */
        uint32_t nsnap;
        int64_t absent_ms;      /* the longest absent() window, 0 none */
        int64_t due_after;      /* a key's timer acts this long after KeyState.at: for_ms, 0 for absent() */
        bool reads_profile;     /* its condition, aggregates or message */
        /* its condition reads only the event (fields, constants): its result
         * is kept per event under the first rule with the same code */
        bool event_only;
        uint32_t same_when;     /* that rule's index (its own if the first) */
} RuleInfo;

typedef struct Plan {
        uint32_t *prof_slots;   /* the profile slots rules read (prof index -> slot) */
        uint32_t nprof;
        uint64_t prof_all;      /* a bit per prof index (all if > 64) */
        uint64_t ov_prof[16];   /* per override: the prof indexes it reads (all if > 64) */
        uint8_t *agg_profile;   /* per aggregate: its where reads the profile */
        uint8_t *agg_keyed;     /* per aggregate: an absent() that needs no rows (agg_keyed_find) */
        uint64_t *agg_fp;       /* rules_agg_fingerprint per aggregate */
        uint32_t **by_type;     /* rule indexes per event type */
        uint32_t *nby_type;
        uint32_t **aggs_by_type;
        uint32_t *naggs_by_type;
        uint32_t *static_rules;
        uint32_t nstatic;
        double *static_points;  /* per static rule: its points, 0 for a shadow rule */
        /* per static rule whose score: is an expression (static_expr[k]):
         * the profile indexes it reads (static_pi[k], static_npi[k]); its
         * points are evaluated from the kept profile (ent_static_points),
         * so the record, the undo log and restore carry them as the profile */
        uint8_t *static_expr;
        uint32_t **static_pi;
        uint32_t *static_npi;
        uint64_t static_expr_mask;      /* the expression rules among the first 64 (the cache skips them) */
        /* overrides whose condition reads the clock: decided at every
         * regrade; with more than 16 overrides nothing is reused */
        uint16_t ov_volatile;
        bool ov_reuse;
        RuleInfo *ri;           /* per rule */
        int32_t region_pi;      /* the prof index of EngineConfig.region_field, -1 none */
        int32_t category_pi;    /* the prof index of EngineConfig.category_field, -1 none */
} Plan;

/* The plan of rs into *p (zeroed); plan_deinit releases it (rs the same).
 * region_field, category_field: fields of the profile type kept although
 * no rule reads them (EngineConfig.region_field, .category_field), NULL
 * none. */
void plan_init(Plan *p, const RuleSet *rs, const char *region_field, const char *category_field);
void plan_deinit(Plan *p, const RuleSet *rs);

#endif
