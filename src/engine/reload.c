/*
 * engine_reload and engine_regrade (include/riskd/engine.h): the state of
 * one Engine moved to a new rule set through the changelog records
 * (state.c), so that a reload keeps exactly what a restart with the new
 * rules keeps: the records name rules by id and carry each rule's
 * fingerprint, so the state of a rule whose compiled form changed is
 * dropped either way.  Then every enterprise is graded again under the new
 * rules, inside a batch, so that the adjustments and the records of what
 * changed are committed together.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/engine/engine.h"

static void into(void *ud, const char *key, size_t klen, const void *val, size_t vlen)
{
        /* same limits as the source: an enterprise always finds room */
        engine_restore_record(ud, key, klen, val, vlen);
}

/* The official state as its record has it (cycle_end is derived). */
static bool off_same(const OffState *a, const OffState *b)
{
        return a->cycle == b->cycle && a->dyn_time == b->dyn_time && a->dyn == b->dyn &&
               a->basis_time == b->basis_time && a->assessed == b->assessed && a->basis == b->basis &&
               a->dyn_rule == b->dyn_rule && a->raise == b->raise && a->lower == b->lower && a->carry == b->carry &&
               a->provisional == b->provisional && a->assess_due == b->assess_due;
}

/* Grade every graded enterprise of n again, in key order (the outputs do
 * not depend on the table's layout), in n's open batch: touched are those
 * whose record changed (state dropped by the restore, Ent.reload_dirty, or
 * grading state changed).  o: the same enterprises under the old rules, for
 * their score before; NULL none. */
static void regrade(Engine *n, Engine *o, EngineReload *rep)
{
        uint32_t nv;
        Ent **v = ent_sorted(n, &nv); /* graded again in full form */
        rep->enterprises = nv;
        for (uint32_t i = 0; i < nv; i++) {
                Ent *x = v[i];
                bool dirty = x->reload_dirty; /* cleared once its record is committed */
                rep->state_dropped += dirty;
                /* the time the partition has reached: timers fired up to the
                 * watermark, and no applied event of x is later (unless held
                 * events were forced out early) */
                int64_t now = n->wm;
                if (now == TIME_UNSET || x->last_time > now)
                        now = x->last_time;
                if (o && dirty && now != TIME_UNSET) {
                        /* open alerts of rules the reload removed (or took
                         * the lifecycle from) close, superseded */
                        const Ent *dx = ent_find(o, ent_key(x)->s, ent_key(x)->len);
                        if (dx && dx->r->na)
                                alerts_superseded_by_reload(n, x, o, dx, now);
                }
                if ((x->grade < 0 && !x->grade_lost) || now == TIME_UNSET) {
                        if (dirty) {
                                state_touch(n, x);
                                rep->records++;
                        }
                        continue;
                }
                Ent *ox = o ? ent_get(o, ent_key(x)->s, ent_key(x)->len) : NULL;
                double before = ox ? score_of(o, ox, now) : 0;
                state_touch(n, x);
                int16_t held = x->held, g = x->grade, m = x->mode;
                double f = x->per_year;
                int64_t below = x->r->below_since;
                uint16_t nc = x->r->nc, nf = x->r->nf;
                OffState off = x->r->o ? *x->r->o : (OffState){0};
                bool had_off = x->r->o != NULL;
                uint64_t adjustments = n->st.adjustments;
                grade_update(n, x, now, CAUSE_RELOAD, NULL, 0);
                bool adjusted = n->st.adjustments != adjustments;
                /* the official state a new cycle or first assessment moved */
                bool off_moved = (x->r->o != NULL) != had_off || (had_off && !off_same(&off, x->r->o));
                rep->rescored += ox && score_of(n, x, now) != before;
                bool regraded = x->grade != g || x->mode != m || x->per_year != f;
                if (!adjusted && x->reload_rescored && x->grade >= 0) {
                        /* the grade holds, but the score the last adjustment
                         * gave is no longer true: say so at once, as a
                         * dashboard cannot learn it otherwise */
                        double s = score_of(n, x, now);
                        out_adjustment(n, x, now, CAUSE_RELOAD, NULL, 0, x->grade, x->mode, x->per_year, false,
                                       score_band(&n->rs->grading, s), s, x->held);
                        adjusted = true;
                }
                rep->regraded += regraded;
                rep->adjusted += adjusted;
                if (dirty || regraded || adjusted || x->held != held || x->r->below_since != below || x->r->nc != nc ||
                    x->r->nf != nf || off_moved) {
                        rep->records++;
                        /* its document's as_of: the reload changed it then */
                        ent_changed_set(n, x, now);
                } else {
                        state_untouch(n, x);
                }
        }
        free(v);
}

bool engine_regrade_due(const Engine *e)
{
        return e->regrade_due;
}

static void regrade_batch(Engine *e, Engine *o, EngineReload *rep)
{
        snprintf(rep->rules_before, sizeof(rep->rules_before), "%s", e->reload_from);
        engine_batch_begin(e);
        e->regrade_due = false;
        e->regrade_open = true;
        regrade(e, o, rep);
}

/* The report to fill (the caller's, else scratch) zeroed; -EBUSY while a
 * batch is open or sealed. */
static int report_start(const Engine *e, EngineReload **rep, EngineReload *scratch)
{
        if (!*rep)
                *rep = scratch;
        memset(*rep, 0, sizeof(**rep));
        return e->in_batch || e->sealed ? -EBUSY : 0;
}

int engine_regrade(Engine *e, EngineReload *rep)
{
        EngineReload scratch;
        int r = report_start(e, &rep, &scratch);
        if (r < 0)
                return r;
        regrade_batch(e, NULL, rep);
        return 0;
}

int engine_reload(Engine *e, RuleSet *rs, Engine **ret, EngineReload *rep)
{
        EngineReload scratch;
        int r = report_start(e, &rep, &scratch);
        if (r < 0)
                return r;
        Engine *n = NULL;
        r = engine_new(&n, rs, &e->cfg, e->emit, e->ud);
        if (r < 0)
                return r;
        n->cp.budget = 0; /* every enterprise of e finds room (in full form); e's budget after */

        uint32_t kept = 0, changed = 0, added = 0, removed = 0;
        for (uint32_t i = 0; i < rs->nrules; i++) {
                const Rule *old = rules_find(e->rs, rs->rules[i].id);
                kept += old && old->fingerprint == rs->rules[i].fingerprint;
                changed += old && old->fingerprint != rs->rules[i].fingerprint;
                added += !old;
        }
        for (uint32_t k = 0; k < e->rs->nrules; k++)
                removed += !rules_find(rs, e->rs->rules[k].id);

        /* every enterprise's record and the partition record, as a batch
         * that touched them all would write them */
        engine_batch_begin(e);
        for (uint32_t i = 0; i < e->ents.tabcap; i++)
                if (e->ents.tab[i])
                        state_touch(e, tab_ent(e, i));
        state_dict_handover(e, n);
        state_changes(e, e->restore_next, into, n);
        engine_batch_commit(e);
        n->restore_next = e->restore_next;
        engine_restore_finish(n);
        /* events read again after a restore still skip where they did */
        reach_copy(&n->reach, &e->reach);
        /* graded again even when the version is the same (nothing changes then) */
        snprintf(n->reload_from, sizeof(n->reload_from), "%s", e->rs->version);

        /* the static part follows the static rules still matching (ent_static_score) */
        for (uint32_t i = 0; i < n->ents.tabcap; i++)
                if (n->ents.tab[i])
                        tab_ent(n, i)->grade_clean = 0;

        /* the counters go on; events by type follow the type's name */
        const EngineStats *o = &e->st;
        EngineStats *s = &n->st;
        s->events_in = o->events_in;
        s->events_applied = o->events_applied;
        memcpy(s->rejects, o->rejects, sizeof(s->rejects));
        s->alerts = o->alerts;
        s->shadow_alerts = o->shadow_alerts;
        s->adjustments = o->adjustments;
        s->timers_fired = o->timers_fired;
        s->window_rows_dropped = o->window_rows_dropped;
        s->held_forced = o->held_forced;
        for (uint32_t t = 0; t < e->rs->schema.ntypes; t++) {
                int32_t nt = rules_type_id(rs, e->rs->schema.types[t].name);
                if (nt >= 0)
                        s->by_type[nt] += o->by_type[t];
        }
        regrade_batch(n, e, rep);
        n->cp.budget = e->cp.budget;
        rep->rules_kept = kept;
        rep->rules_changed = changed;
        rep->rules_added = added;
        rep->rules_removed = removed;
        *ret = n;
        return 0;
}
