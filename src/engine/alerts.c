/*
 * The alert lifecycle (docs/outputs.md §10, docs/rules.md §5.10): an alert
 * of a rule with a lifecycle (Rule.lifecycle: expires:, rectify: or named
 * by a closes:) opens when it is emitted and is kept in the enterprise's
 * state (EntRare.a) until it closes:
 *
 *   open -> escalated   its rectify: deadline passed (cause deadline)
 *   open|escalated -> closed
 *                       expires: passed (expired), a rule naming its rule
 *                       in closes: fired (resolved), a newer alert of its
 *                       rule and per: key, or the limit (superseded)
 *
 * Each transition is a riskd.alert_state/1 document (output.c).  Times are
 * event times: the deadline and the expiry are items of the enterprise's
 * timer entry (timer_next), so a transition due at T comes before any
 * event at T, in replay and daemon alike.  The open alerts are part of the
 * enterprise's record (state_write.c), so a batch's abort, a restore, a
 * reload and the compact form (an enterprise with open alerts is never
 * idle) keep them as they keep the rest.
 *
 * Invariants: the array is in the order the alerts opened (transitions due
 * at one time go in that order); a rule has at most cfg.max_keys open
 * alerts per enterprise, and an enterprise at most ALERTS_MAX; an
 * ALERT_OPEN alert's deadline, if any, is still ahead of the last timer
 * entry that acted.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "src/engine/engine.h"

const char *const alert_state_names[] = {
#define X(e, name) name,
        ALERT_STATE_LIST(X)
#undef X
};

const char *const alert_cause_names[] = {
#define X(e, name) name,
        ALERT_CAUSE_LIST(X)
#undef X
};

static bool key_is(const OpenAlert *a, const Str *key)
{
        if (!key)
                return true; /* the closing side has no key: every key */
        if (!a->key)
                return true;
        return a->key->len == key->len && memcmp(a->key->s, key->p, key->len) == 0;
}

/* Alert i of x goes (to closed, cause): its document, then out of the
 * array, which keeps its order. */
static void alert_close(Engine *e, Ent *x, uint32_t i, int64_t t, AlertCause cause, const char *evid, size_t evlen)
{
        EntRare *rr = ent_rare(e, x);
        assert(i < rr->na);
        OpenAlert *a = &rr->a[i];
        out_alert_state(e, x, a, e->rs->rules[a->rule].id, ALERT_CLOSED, cause, evid, evlen, t);
        if (a->key)
                intern_put(&e->in, a->key);
        memmove(&rr->a[i], &rr->a[i + 1], (rr->na - i - 1) * sizeof(OpenAlert));
        rr->na--;
}

void alerts_fire(Engine *e, Ent *x, const Rule *r, int64_t t, uint64_t id, const Str *key, const char *evid,
                 size_t evlen)
{
        assert(r->status == RULE_ENABLED);
        /* closes: first (the rule's own alert opens after) */
        for (uint32_t c = 0; c < r->ncloses && x->r->na; c++) {
                const Rule *cr = &e->rs->rules[r->closes[c]];
                /* both keyed by per: the same key only; else all of them */
                const Str *k = key && cr->per_slot >= 0 ? key : NULL;
                for (uint32_t i = 0; i < x->r->na;) {
                        if (x->r->a[i].rule == cr->index && key_is(&x->r->a[i], k))
                                alert_close(e, x, i, t, ACAUSE_RESOLVED, evid, evlen);
                        else
                                i++;
                }
        }
        if (!r->lifecycle)
                return;
        uint32_t n = 0, oldest = UINT32_MAX;
        for (uint32_t i = 0; i < x->r->na;) {
                const OpenAlert *a = &x->r->a[i];
                if (a->rule != r->index) {
                        i++;
                        continue;
                }
                if (key && a->key && key_is(a, key)) { /* the newer alert of its key */
                        alert_close(e, x, i, t, ACAUSE_SUPERSEDED, evid, evlen);
                        continue;
                }
                if (oldest == UINT32_MAX)
                        oldest = i;
                n++;
                i++;
        }
        if (n >= e->cfg.max_keys && oldest != UINT32_MAX) /* the limit: the oldest goes */
                alert_close(e, x, oldest, t, ACAUSE_SUPERSEDED, evid, evlen);
        if (x->r->na >= ALERTS_MAX) /* the array's own bound, over all rules: the oldest goes */
                alert_close(e, x, 0, t, ACAUSE_SUPERSEDED, evid, evlen);
        EntRare *rr = ent_rare(e, x);
        if (rr->na == rr->ca)
                rr->a = ent_grow(e, rr->a, &rr->ca, sizeof(OpenAlert));
        OpenAlert *a = &rr->a[rr->na++];
        *a = (OpenAlert){.id = id, .opened = t, .rule = (uint16_t)r->index, .state = ALERT_OPEN,
                         .expires = r->expires_ms ? time_add_sat(t, r->expires_ms) : TIME_FOREVER,
                         .deadline = r->rectify_ms ? time_add_sat(t, r->rectify_ms) : TIME_UNSET,
                         .key = key ? intern_get(&e->in, key->p, key->len) : NULL};
        if (a->deadline == TIME_FOREVER)
                a->deadline = TIME_UNSET;
        if (a->expires != TIME_FOREVER)
                timer_want(e, x, a->expires, false);
        if (a->deadline != TIME_UNSET)
                timer_want(e, x, a->deadline, false);
}

void alerts_due(Engine *e, Ent *x, int64_t now)
{
        for (uint32_t i = 0; i < x->r->na;) {
                OpenAlert *a = &ent_rare(e, x)->a[i];
                if (a->state == ALERT_OPEN && a->deadline != TIME_UNSET && a->deadline <= now) {
                        out_alert_state(e, x, a, e->rs->rules[a->rule].id, ALERT_ESCALATED, ACAUSE_DEADLINE, NULL, 0,
                                        a->deadline);
                        a->state = ALERT_ESCALATED;
                }
                if (a->expires <= now) {
                        alert_close(e, x, i, a->expires, ACAUSE_EXPIRED, NULL, 0);
                        continue;
                }
                i++;
        }
}

int64_t alerts_next(const Ent *x, int64_t after)
{
        int64_t at = TIME_FOREVER;
        for (uint32_t i = 0; i < x->r->na; i++) {
                const OpenAlert *a = &x->r->a[i];
                if (a->expires < at && a->expires > after)
                        at = a->expires;
                if (a->state == ALERT_OPEN && a->deadline != TIME_UNSET && a->deadline < at && a->deadline > after)
                        at = a->deadline;
        }
        return at;
}

void alerts_clear(Engine *e, EntRare *rr)
{
        for (uint32_t i = 0; i < rr->na; i++)
                if (rr->a[i].key)
                        intern_put(&e->in, rr->a[i].key);
        pool_free(&e->pool, rr->a, ENT_ARR(OpenAlert, rr->ca));
        rr->a = NULL;
        rr->na = rr->ca = 0;
}

void alerts_superseded_by_reload(Engine *n, Ent *x, const Engine *o, const Ent *ox, int64_t now)
{
        for (uint32_t i = 0; ox && i < ox->r->na; i++) {
                const OpenAlert *a = &ox->r->a[i];
                bool kept = false;
                for (uint32_t k = 0; k < x->r->na && !kept; k++)
                        kept = x->r->a[k].id == a->id;
                if (!kept)
                        out_alert_state(n, x, a, o->rs->rules[a->rule].id, ALERT_CLOSED, ACAUSE_SUPERSEDED, NULL, 0,
                                        now);
        }
}

/* The public view of one open alert (engine_alerts_each). */
static void alert_view(const Engine *e, const Ent *x, const OpenAlert *a, EngineAlert *v, char hex[17])
{
        static const char digits[] = "0123456789abcdef";
        for (int k = 0; k < 16; k++)
                hex[k] = digits[(a->id >> (60 - 4 * k)) & 15];
        hex[16] = '\0';
        *v = (EngineAlert){.alert_id = hex, .enterprise = ent_key(x)->s, .enterprise_len = ent_key(x)->len,
                           .rule_id = e->rs->rules[a->rule].id, .key = a->key ? a->key->s : NULL,
                           .key_len = a->key ? a->key->len : 0, .state = alert_state_names[a->state],
                           .opened = a->opened, .deadline = a->deadline == TIME_UNSET ? ENGINE_TIME_NONE : a->deadline,
                           .expires = a->expires == TIME_FOREVER ? ENGINE_TIME_NONE : a->expires};
}

static int ent_ptr_cmp(const void *p, const void *q)
{
        return ent_key_cmp(ent_key(*(Ent *const *)p), ent_key(*(Ent *const *)q));
}

int engine_alerts_each(Engine *e, const char *enterprise, size_t len, EngineAlertFn fn, void *ud)
{
        EngineAlert v;
        char hex[17];
        int n = 0;
        if (enterprise) {
                Ent *x = ent_find(e, enterprise, (uint32_t)len);
                if (!x)
                        return -ENOENT;
                for (uint32_t i = 0; i < x->r->na; i++, n++) {
                        alert_view(e, x, &x->r->a[i], &v, hex);
                        fn(ud, &v);
                }
                return n;
        }
        Ent **xs = NULL;
        uint32_t nx = 0, cx = 0;
        for (uint32_t i = 0; i < e->ents.tabcap; i++) {
                Ent *y = tab_ent(e, i);
                if (!y || y->gone || y->compact || !y->r->na)
                        continue;
                if (nx == cx) {
                        cx = cx ? 2 * cx : 64;
                        xs = xrealloc(xs, cx * sizeof(Ent *));
                }
                xs[nx++] = y;
        }
        if (nx > 1)
                qsort(xs, nx, sizeof(Ent *), ent_ptr_cmp);
        for (uint32_t k = 0; k < nx; k++)
                for (uint32_t i = 0; i < xs[k]->r->na; i++, n++) {
                        alert_view(e, xs[k], &xs[k]->r->a[i], &v, hex);
                        fn(ud, &v);
                }
        free(xs);
        return n;
}
