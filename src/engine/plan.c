/*
 * What the engine derives once from the compiled rules (Plan): the
 * profile slots anything reads, the rules and aggregates each event type
 * runs, the static rules and their points, what a timer firing needs from
 * the event (RuleInfo), which event-only conditions rules share, the
 * aggregates that keep no rows, what each override reads.  Apart from the
 * event flow because it runs once per rule set (engine_new, a reload's new
 * engine) and reads the rules only through include/riskd/rules.h; the
 * Plan is read only afterwards.
 */
#include <stdlib.h>
#include <string.h>

#include "src/engine/plan.h"

static void add_slot(uint32_t **v, uint32_t *n, uint32_t *cap, uint32_t s)
{
        for (uint32_t k = 0; k < *n; k++)
                if ((*v)[k] == s)
                        return;
        VEC_PUSH(*v, *n, *cap) = s;
}

/* The profile field named (a string or an enum) kept in every profile
 * although no rule may read it: its prof index, -1 none (no name, no such
 * field of the profile type). */
static int32_t keep_field(Plan *p, const RuleSet *rs, const char *name, uint32_t *pcap)
{
        if (!name || rs->schema.profile_type < 0)
                return -1;
        const EventType *pt = &rs->schema.types[rs->schema.profile_type];
        for (uint32_t f = 0; f < pt->nfields; f++) {
                const Field *fd = &pt->fields[f];
                if (strcmp(fd->path, name) != 0 || (fd->type != FT_STR && fd->type != FT_ENUM))
                        continue;
                add_slot(&p->prof_slots, &p->nprof, pcap, fd->slot);
                for (uint32_t pi = 0; pi < p->nprof; pi++)
                        if (p->prof_slots[pi] == fd->slot)
                                return (int32_t)pi;
        }
        return -1;
}

/* A condition that reads only the event answers the same for every rule
 * with the same code on the same event (rules_prog_event_only,
 * rules_prog_same): RuleInfo.event_only and same_when, found here. */
static void when_sharing(Plan *p, const RuleSet *rs)
{
        for (uint32_t i = 0; i < rs->nrules; i++) {
                const Rule *r = &rs->rules[i];
                RuleInfo *ri = &p->ri[i];
                ri->same_when = i;
                ri->event_only = r->status != RULE_DISABLED && !r->is_static && !r->timer_driven &&
                                 rules_prog_event_only(rs, r->when);
                if (!ri->event_only)
                        continue;
                for (uint32_t j = 0; j < i; j++) {
                        if (!p->ri[j].event_only || p->ri[j].same_when != j)
                                continue;
                        bool same = rules_prog_same(rs, r->when, rs->rules[j].when);
                        if (same) {
                                ri->same_when = j;
                                break;
                        }
                }
        }
}

/* absent(T where F == $F for D) of rules on T alone, keyed per: F, is true
 * whenever their timer acts: the timer of a key stands at D (or a longer
 * absent()) after the key's last event, and any later event of the key
 * would have moved it (or, failing arm_when, stopped it); an event at the
 * very time waits for the absent() class.  Such an aggregate keeps no
 * rows.  Any other user (a rule of another shape, an override) keeps them. */
static void agg_keyed_find(Plan *p, const RuleSet *rs)
{
        p->agg_keyed = xcalloc(rs->naggs + 1, 1);
        for (uint32_t a = 0; a < rs->naggs; a++)
                p->agg_keyed[a] = rs->aggs[a].kind == AGG_ABSENT && rs->aggs[a].key_slot >= 0;
        for (uint32_t i = 0; i < rs->nrules; i++) {
                const Rule *r = &rs->rules[i];
                for (uint32_t k = 0; k < r->naggs; k++) {
                        const Aggregate *ag = &rs->aggs[r->aggs[k]];
                        if (!r->timer_driven || r->per_slot != ag->key_slot || r->on != 1ull << ag->type)
                                p->agg_keyed[r->aggs[k]] = 0;
                }
        }
        const Grading *g = &rs->grading;
        uint32_t *used = NULL, nused = 0, cap = 0;
        for (uint32_t i = 0; i < g->noverrides; i++)
                rules_prog_reads(rs, g->overrides[i].when, READ_AGG, &used, &nused, &cap);
        for (uint32_t k = 0; k < nused; k++)
                if (used[k] < rs->naggs)
                        p->agg_keyed[used[k]] = 0;
        free(used);
}

void plan_init(Plan *p, const RuleSet *rs, const char *region_field, const char *category_field)
{
        /* which profile slots anything reads */
        uint32_t pcap = 0;
        for (uint32_t i = 0; i < rs->nprogs; i++)
                rules_prog_reads(rs, i, READ_PROFILE, &p->prof_slots, &p->nprof, &pcap);
        for (uint32_t i = 0; i < rs->nrules; i++)
                for (uint32_t k = 0; k < rs->rules[i].message.nparts; k++)
                        if (rs->rules[i].message.parts[k].kind == TPL_PROFILE)
                                add_slot(&p->prof_slots, &p->nprof, &pcap, rs->rules[i].message.parts[k].slot);
        /* a static rule's score expression is evaluated from the kept
         * profile (ent_static_expr): keep the fields it reads */
        for (uint32_t i = 0; i < rs->nrules; i++)
                if (rs->rules[i].is_static && rs->rules[i].score_expr) {
                        rules_prog_reads(rs, rs->rules[i].score_prog, READ_FIELD, &p->prof_slots, &p->nprof, &pcap);
                        rules_prog_reads(rs, rs->rules[i].score_prog, READ_CUR, &p->prof_slots, &p->nprof, &pcap);
                }
        /* the region and the category the query API groups and filters
         * by (engine_rows): kept like a field a rule reads */
        p->region_pi = keep_field(p, rs, region_field, &pcap);
        p->category_pi = keep_field(p, rs, category_field, &pcap);

        uint32_t nt = rs->schema.ntypes ? rs->schema.ntypes : 1;
        p->by_type = xcalloc(nt, sizeof(uint32_t *));
        p->nby_type = xcalloc(nt, sizeof(uint32_t));
        p->aggs_by_type = xcalloc(nt, sizeof(uint32_t *));
        p->naggs_by_type = xcalloc(nt, sizeof(uint32_t));
        uint32_t *caps = xcalloc(nt, sizeof(uint32_t)), scap = 0;
        p->ri = xcalloc(rs->nrules + 1, sizeof(RuleInfo));
        for (uint32_t i = 0; i < rs->nrules; i++) {
                const Rule *ru = &rs->rules[i];
                RuleInfo *ri = &p->ri[i];
                if (ru->status == RULE_DISABLED)
                        continue;
                if (ru->is_static) {
                        VEC_PUSH(p->static_rules, p->nstatic, scap) = i;
                        continue;
                }
                for (uint32_t t = 0; t < rs->schema.ntypes; t++)
                        if (ru->on & (1ull << t))
                                VEC_PUSH(p->by_type[t], p->nby_type[t], caps[t]) = i;
                /* what a timer firing needs from the event: $fields, the
                 * fields of the condition and of the message, the key */
                uint32_t cap = 0;
                if (ru->timer_driven || ru->for_ms) {
                        rules_prog_reads(rs, ru->when, READ_CUR, &ri->snap_slots, &ri->nsnap, &cap);
                        rules_prog_reads(rs, ru->when, READ_FIELD, &ri->snap_slots, &ri->nsnap, &cap);
                        for (uint32_t k = 0; k < ru->message.nparts; k++)
                                if (ru->message.parts[k].kind == TPL_FIELD)
                                        add_slot(&ri->snap_slots, &ri->nsnap, &cap, ru->message.parts[k].slot);
                        if (ru->per_slot >= 0)
                                add_slot(&ri->snap_slots, &ri->nsnap, &cap, (uint32_t)ru->per_slot);
                }
                if ((ru->timer_driven || ru->for_ms) && ru->score_expr) {
                        rules_prog_reads(rs, ru->score_prog, READ_CUR, &ri->snap_slots, &ri->nsnap, &cap);
                        rules_prog_reads(rs, ru->score_prog, READ_FIELD, &ri->snap_slots, &ri->nsnap, &cap);
                }
                uint32_t *pv = NULL, np = 0, pvcap = 0;
                rules_prog_reads(rs, ru->when, READ_PROFILE, &pv, &np, &pvcap);
                if (ru->score_expr)
                        rules_prog_reads(rs, ru->score_prog, READ_PROFILE, &pv, &np, &pvcap);
                free(pv);
                ri->reads_profile = np > 0;
                for (uint32_t k = 0; k < ru->message.nparts; k++)
                        ri->reads_profile |= ru->message.parts[k].kind == TPL_PROFILE;
                for (uint32_t k = 0; k < ru->naggs; k++) {
                        const Aggregate *a = &rs->aggs[ru->aggs[k]];
                        if (a->kind == AGG_ABSENT && a->window_ms > ri->absent_ms)
                                ri->absent_ms = a->window_ms;
                }
                ri->due_after = ru->timer_driven ? 0 : ru->for_ms;
        }
        when_sharing(p, rs);
        p->static_points = xcalloc(p->nstatic + 1, sizeof(double));
        for (uint32_t k = 0; k < p->nstatic; k++) {
                const Rule *sr = &rs->rules[p->static_rules[k]];
                p->static_points[k] = sr->status == RULE_SHADOW ? 0 : sr->score;
        }
        p->static_expr = xcalloc(p->nstatic + 1, 1);
        p->static_pi = xcalloc(p->nstatic + 1, sizeof(uint32_t *));
        p->static_npi = xcalloc(p->nstatic + 1, sizeof(uint32_t));
        for (uint32_t k = 0; k < p->nstatic; k++) {
                const Rule *sr = &rs->rules[p->static_rules[k]];
                if (!sr->score_expr || sr->status == RULE_SHADOW)
                        continue;
                p->static_expr[k] = 1;
                if (k < 64)
                        p->static_expr_mask |= 1ull << k;
                uint32_t *sv = NULL, nsv = 0, scap2 = 0;
                rules_prog_reads(rs, sr->score_prog, READ_FIELD, &sv, &nsv, &scap2);
                rules_prog_reads(rs, sr->score_prog, READ_CUR, &sv, &nsv, &scap2);
                rules_prog_reads(rs, sr->score_prog, READ_PROFILE, &sv, &nsv, &scap2);
                /* slots to profile indexes */
                for (uint32_t j = 0; j < nsv; j++)
                        for (uint32_t pi = 0; pi < p->nprof; pi++)
                                if (p->prof_slots[pi] == sv[j])
                                        sv[j] = pi, pi = p->nprof;
                p->static_pi[k] = sv;
                p->static_npi[k] = nsv;
        }
        p->agg_fp = xcalloc(rs->naggs + 1, sizeof(uint64_t));
        p->agg_profile = xcalloc(rs->naggs + 1, 1);
        for (uint32_t a = 0; a < rs->naggs; a++) {
                uint32_t *pv = NULL, np = 0, pvcap = 0;
                rules_prog_reads(rs, rs->aggs[a].where, READ_PROFILE, &pv, &np, &pvcap);
                free(pv);
                p->agg_profile[a] = np > 0;
        }
        for (uint32_t a = 0; a < rs->naggs; a++)
                p->agg_fp[a] = rules_agg_fingerprint(rs, a);
        agg_keyed_find(p, rs);
        memset(caps, 0, nt * sizeof(uint32_t));
        for (uint32_t a = 0; a < rs->naggs; a++) {
                uint32_t t = rs->aggs[a].type;
                if (!p->agg_keyed[a])
                        VEC_PUSH(p->aggs_by_type[t], p->naggs_by_type[t], caps[t]) = a;
        }
        free(caps);
        const Grading *g = &rs->grading;
        p->ov_reuse = g->noverrides <= 16;
        for (uint32_t i = 0; p->ov_reuse && i < g->noverrides; i++) {
                if (rules_prog_volatile(rs, g->overrides[i].when))
                        p->ov_volatile |= (uint16_t)(1u << i);
        }
        p->prof_all = p->nprof >= 64 ? ~0ull : (1ull << p->nprof) - 1;
        for (uint32_t i = 0; i < g->noverrides && i < 16; i++) {
                uint32_t *pv = NULL, np = 0, pvcap = 0;
                rules_prog_reads(rs, g->overrides[i].when, READ_PROFILE, &pv, &np, &pvcap);
                for (uint32_t k = 0; k < np; k++) {
                        uint32_t pi = 0;
                        while (pi < p->nprof && p->prof_slots[pi] != pv[k])
                                pi++;
                        p->ov_prof[i] |= pi < 64 && p->nprof <= 64 ? 1ull << pi : ~0ull;
                }
                free(pv);
                p->ov_prof[i] &= p->prof_all;
        }
}

void plan_deinit(Plan *p, const RuleSet *rs)
{
        for (uint32_t t = 0; t < rs->schema.ntypes; t++) {
                free(p->by_type[t]);
                free(p->aggs_by_type[t]);
        }
        for (uint32_t k = 0; k < p->nstatic; k++)
                free(p->static_pi[k]);
        for (uint32_t i = 0; i < rs->nrules; i++)
                free(p->ri[i].snap_slots);
        void *arrays[] = {p->by_type,     p->nby_type,   p->aggs_by_type, p->naggs_by_type, p->static_rules,
                          p->static_points, p->static_pi, p->static_npi,  p->static_expr,   p->ri,
                          p->prof_slots,  p->agg_profile, p->agg_keyed,   p->agg_fp};
        for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++)
                free(arrays[i]);
        *p = (Plan){0};
}
