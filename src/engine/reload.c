/*
 * engine_reload (include/riskd/engine.h): the state of one Engine moved to
 * a new rule set through the changelog records (state.c), so that a reload
 * keeps exactly what a restart with the new rules would keep, minus the
 * state of rules whose compiled form changed (Engine.reload_fresh hides
 * them from the records' rule lookup).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "src/engine/engine.h"

static void into(void *ud, const char *key, size_t klen, const void *val, size_t vlen)
{
        Engine *n = ud;
        /* same limits as the source: an enterprise always finds room */
        engine_restore_record(n, key, klen, val, vlen);
}

int engine_reload(Engine *e, RuleSet *rs, Engine **ret)
{
        if (e->in_batch)
                return -EBUSY;
        Engine *n = NULL;
        int r = engine_new(&n, rs, &e->cfg, e->emit, e->ud);
        if (r < 0)
                return r;

        uint8_t *fresh = xcalloc(rs->nrules + 1, 1);
        for (uint32_t i = 0; i < rs->nrules; i++) {
                const Rule *nr = &rs->rules[i];
                fresh[i] = 1;
                for (uint32_t k = 0; k < e->rs->nrules; k++)
                        if (strcmp(e->rs->rules[k].id, nr->id) == 0) {
                                fresh[i] = e->rs->rules[k].fingerprint != nr->fingerprint;
                                break;
                        }
        }

        /* every enterprise's record and the partition record, as a batch
         * that touched them all would write them */
        engine_batch_begin(e);
        for (uint32_t i = 0; i < e->tabcap; i++)
                if (e->tab[i])
                        state_touch(e, tab_ent(e, i));
        n->reload_fresh = fresh;
        engine_batch_changes(e, e->restore_next, into, n);
        n->reload_fresh = NULL;
        engine_batch_commit(e);
        free(fresh);
        n->restore_next = e->restore_next;
        engine_restore_finish(n);

        /* the static part follows the static rules still matching (ent_static_score) */
        for (uint32_t i = 0; i < n->tabcap; i++)
                if (n->tab[i])
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
        *ret = n;
        return 0;
}
