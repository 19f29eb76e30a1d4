/*
 * The engine's event flow: decode → hold for the grace → apply in
 * event-time order (windows, rules, for/cooldown/absent, score
 * contributions, flags) → regrade; timers fire as the watermark passes
 * them.  See include/riskd/engine.h for the contract.  What it drives
 * is elsewhere: the enterprises' state (ent.c), the timer heap (timer.c),
 * the grace buffer and the hints (hold.c), what the rules imply (plan.c),
 * aggregates (window.c), grading (grade.c), documents (output.c).
 *
 * Invariants:
 *  - event time only moves forward through the engine: held events are
 *    released in order (time, then arrival: the order grace 0 applies
 *    them in), too_late rejects anything behind the watermark, and a timer
 *    at T fires before any event at T (an absent() check after them);
 *  - every timer is derivable from enterprise state and is revalidated when
 *    it fires (a stale timer does nothing), so state alone is the truth;
 *  - each KeyState has at most one pending timer (re-arming moves its due
 *    time; the pending timer reschedules itself), so the heap stays bounded
 *    by state, not by the event rate.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "src/engine/engine.h"

const char *const engine_reject_names[ENGINE_NREJECT] = {
#define X(e, name) name,
        DECODE_REASON_LIST(X) ENGINE_REJECT_LIST(X)
#undef X
};

void engine_config_default(EngineConfig *c)
{
        *c = (EngineConfig){
                .grace_ms = 0,
                .max_enterprises = 4000000,
                .recent_ids = 8,
                .max_window_rows = 100000,
                .max_keys = 4096,
                .max_held = 1000000,
                .max_event_bytes = 1 << 20,
        };
}

static void snapshot(Engine *e, KeyState *ks, const RuleInfo *ri, const Value *ev, const Str *id)
{
        ent_snap_set(e, ks, ri, ev, true, id->p, id->len);
}

/* The snapshot laid out by slot in e->snapbuf, for a timer's evaluation. */
static const Value *snapshot_lay(Engine *e, const KeyState *ks, const RuleInfo *ri)
{
        ent_snap_values(ks, ri, e->snapvals);
        for (uint32_t i = 0; i < ri->nsnap; i++)
                e->snapbuf[ri->snap_slots[i]] = e->snapvals[i];
        return e->snapbuf;
}

static void flag_set(Engine *e, Ent *ent, uint32_t flag, int64_t until, bool from_profile)
{
        ent->grade_clean = 0;
        for (uint32_t i = 0; i < ent->r->nf; i++)
                if (ent->r->f[i].flag == flag) {
                        if (until > ent->r->f[i].until) {
                                ent->r->f[i].until = until;
                                ent->r->f[i].from_profile = from_profile && until == TIME_FOREVER;
                        }
                        goto timer;
                }
        EntRare *rr = ent_rare(e, ent);
        if (rr->nf == rr->cf) {
                rr->f = ent_grow(e, rr->f, &rr->cf, sizeof(FlagState));
        }
        rr->f[rr->nf++] = (FlagState){.flag = (uint16_t)flag, .until = until,
                                      .from_profile = from_profile && until == TIME_FOREVER};
timer:
        if (until != TIME_FOREVER)
                timer_want(e, ent, until, false);
}

/* The points of a rule whose score: is an expression, on the event (or
 * snapshot) ev; false: null, no contribution. */
static bool score_value(Engine *e, Ent *ent, const Rule *r, const Value *ev, int64_t t, double *out)
{
        AggCtx ac = {e, ent};
        VmState st;
        ent_profile_need(e, ent);
        score_vmstate(e, ent, t, &st);
        VmFrame f = {.event = ev, .cur = ev, .profile = e->profbuf, .state = &st, .now = t, .agg = window_agg,
                     .agg_ud = &ac, .scratch = e->vmscratch, .scratch_size = sizeof(e->vmscratch)};
        Value v;
        if (vm_run(e->rs, r->score_prog, &f, &v) != VM_OK || v.tag != VT_NUM || v.n != v.n)
                return false;
        *out = v.n;
        return true;
}

/* The official model's part of a firing: the dynamic evaluation (the
 * latest replaces the last, capped) and the grade steps within the cycle
 * (capped); fire() does the rest (points, clears:, flags). */
static void fire_official(Engine *e, Ent *ent, const Rule *r, const Value *ev, int64_t t)
{
        const Official *of = &e->rs->grading.official;
        if (r->part == PART_DYNAMIC) {
                double v = r->score;
                if (r->score_expr && !score_value(e, ent, r, ev, t, &v))
                        return;
                if (r->max_score > 0 && v > r->max_score)
                        v = r->max_score;
                if (v > of->dynamic_max)
                        v = of->dynamic_max;
                OffState *o = ent_off(e, ent);
                o->dyn = v < 0 ? 0 : v;
                o->dyn_time = t;
                o->dyn_rule = (int16_t)r->index;
        }
        if (r->raise || r->lower) {
                grade_cycle_roll(e, ent, t);
                OffState *o = ent_off(e, ent);
                int8_t before = (int8_t)(o->raise - o->lower);
                if (r->raise)
                        o->raise = (int8_t)(o->raise + r->raise > of->max_raise ? of->max_raise : o->raise + r->raise);
                else
                        o->lower = (int8_t)(o->lower + r->lower > of->max_lower ? of->max_lower : o->lower + r->lower);
                /* the basis is of the latest step taken: one the cap
                 * swallowed moves nothing */
                if (o->raise - o->lower != before) {
                        o->basis = (int16_t)r->index;
                        o->basis_time = t;
                }
        }
}

static Str key_bytes(Engine *e, const Rule *r, const Value *ev);

/* A rule fires: cooldown, points (capped), flags, the alert, its lifecycle. */
static void fire(Engine *e, Ent *ent, const Rule *r, KeyState *ks, int64_t t, bool timer,
                 const Value *ev, const char *evid, size_t evlen)
{
        ent->grade_clean = 0;
        if (r->cooldown_ms && ks) {
                if (ks->last_fire != TIME_UNSET && t < time_add_sat(ks->last_fire, r->cooldown_ms))
                        return;
                ks->last_fire = t;
        }
        double delta = 0;
        bool shadow = r->status == RULE_SHADOW;
        double points = r->score;
        bool scores = r->score != 0;
        if (__builtin_expect(r->part == PART_DYNAMIC || r->raise || r->lower || r->score_expr, 0)) {
                if (!shadow)
                        fire_official(e, ent, r, ev, t);
                if (r->part == PART_DYNAMIC)
                        scores = false; /* the evaluation is not index points */
                else if (r->score_expr)
                        scores = !shadow && score_value(e, ent, r, ev, t, &points) && points != 0;
        }
        if (!shadow && scores && r->replaces && ent->r->nc) {
                /* the latest of its kind: the rule's earlier contributions go */
                EntRare *rr = ent_rare(e, ent);
                uint32_t k = 0;
                for (uint32_t i = 0; i < rr->nc; i++) {
                        if (rr->c[i].rule == r->index) {
                                intern_put(&e->in, rr->c[i].event_id);
                                continue;
                        }
                        rr->c[k++] = rr->c[i];
                }
                rr->nc = (uint16_t)k;
        }
        if (!shadow && scores) {
                delta = points;
                if (r->max_score > 0) {
                        double live = 0;
                        for (uint32_t i = 0; i < ent->r->nc; i++)
                                if (ent->r->c[i].rule == r->index && ent->r->c[i].expires > t)
                                        live += ent->r->c[i].points;
                        if (live + delta > r->max_score)
                                delta = r->max_score - live > 0 ? r->max_score - live : 0;
                }
                if (delta != 0) {
                        EntRare *rr = ent_rare(e, ent);
                        if (rr->nc == rr->cc) {
                                rr->c = ent_grow(e, rr->c, &rr->cc, sizeof(Contrib));
                        }
                        Contrib *c = &rr->c[rr->nc++];
                        c->rule = (uint16_t)r->index;
                        c->points = delta;
                        c->since = t;
                        c->expires = r->expires_ms ? time_add_sat(t, r->expires_ms) : TIME_FOREVER;
                        c->rectify = r->rectify_ms ? time_add_sat(t, r->rectify_ms) : TIME_UNSET;
                        c->event_id = intern_get(&e->in, evid, (uint32_t)evlen);
                        if (c->expires != TIME_FOREVER)
                                timer_want(e, ent, c->expires, false);
                }
        }
        if (!shadow && r->nclears && ent->r->nf) {
                /* an answered lead: its flags go before this rule sets any */
                EntRare *rr = ent_rare(e, ent);
                uint32_t k = 0;
                for (uint32_t i = 0; i < rr->nf; i++) {
                        bool drop = false;
                        for (uint32_t c = 0; c < r->nclears; c++)
                                drop |= rr->f[i].flag == r->clears[c];
                        if (!drop)
                                rr->f[k++] = rr->f[i];
                }
                rr->nf = (uint16_t)k;
        }
        if (!shadow)
                for (uint32_t i = 0; i < r->nflags; i++)
                        flag_set(e, ent, r->flags[i].flag,
                                 r->flags[i].lifetime_ms ? time_add_sat(t, r->flags[i].lifetime_ms) : TIME_FOREVER, false);
        Str key = ks ? ks_key(ks) : (Str){NULL, 0};
        uint64_t id = out_alert(e, ent, r, t, timer, ks && ks->keyed ? &key : NULL, ev, evid, evlen, delta);
        if (!shadow && (r->lifecycle || r->ncloses)) {
                /* the per: key of the firing, whether a key state holds it or not */
                Str lk = ks && ks->keyed ? key : r->per_slot >= 0 ? key_bytes(e, r, ev) : (Str){NULL, 0};
                alerts_fire(e, ent, r, t, id, r->per_slot >= 0 ? &lk : NULL, evid, evlen);
        }
}

static VmFrame frame_for(Engine *e, Ent *ent, const Value *ev, int64_t now, VmState *st, void *aggud)
{
        score_vmstate(e, ent, now, st);
        VmFrame f = {.event = ev, .cur = ev, .profile = e->profbuf, .state = st, .now = now,
                     .agg = window_agg, .agg_ud = aggud, .scratch = e->vmscratch,
                     .scratch_size = sizeof(e->vmscratch)};
        return f;
}

/* The per: value of ev as bytes (in e->keybuf for non-strings). */
static Str key_bytes(Engine *e, const Rule *r, const Value *ev)
{
        const Value *v = &ev[r->per_slot];
        if (v->tag == VT_STR)
                return v->s;
        if (v->tag == VT_NULL)
                return (Str){"", 0};
        e->keybuf.len = 0;
        out_value(e, &e->keybuf, v, (uint32_t)r->per_slot, false);
        return (Str){e->keybuf.p ? e->keybuf.p : "", (uint32_t)e->keybuf.len};
}

/* The low bits of the hash of key k, the per: value of ev (the applied
 * event's is worked out once for all its rules). */
static uint32_t key_hash(Engine *e, const Rule *r, const Value *ev, Str k)
{
        if (ev == e->slots && e->kh_event == e->applying && e->kh_slot == r->per_slot)
                return e->kh_hash;
        uint32_t h = (uint32_t)hash_fast(k.p, k.len);
        if (ev == e->slots) {
                e->kh_event = e->applying;
                e->kh_slot = r->per_slot;
                e->kh_hash = h;
        }
        return h;
}

/* The rule's state for the event's key, without allocating. */
static KeyState *keystate_lookup(Engine *e, Ent *ent, const Rule *r, const Value *ev)
{
        if (r->per_slot < 0) {
                for (uint32_t i = 0; i < ent->nks; i++)
                        if (ent->ks[i].rule == r->index && !ent->ks[i].keyed)
                                return &ent->ks[i];
                return NULL;
        }
        Str k = key_bytes(e, r, ev);
        uint32_t h = key_hash(e, r, ev, k);
        for (uint32_t i = 0; i < ent->nks; i++) {
                KeyState *ks = &ent->ks[i];
                if (ks->rule == r->index && ks->khash == h && ks->keyed && ks->snap->klen == k.len &&
                    memcmp(ks->snap->data, k.p, k.len) == 0)
                        return ks;
        }
        return NULL;
}

/* A new state for the event's key (which keystate_lookup did not find),
 * NULL past cfg.max_keys for the rule. */
static KeyState *keystate_make(Engine *e, Ent *ent, const Rule *r, const Value *ev)
{
        uint32_t nrule = 0;
        for (uint32_t i = 0; i < ent->nks; i++)
                nrule += ent->ks[i].rule == r->index;
        if (nrule >= e->cfg.max_keys)
                return NULL;
        if (ent->nks == ent->cks) {
                /* pending timers hold hints into the old array: they revalidate by (rule, key) */
                ent->ks = ent_grow(e, ent->ks, &ent->cks, sizeof(KeyState));
        }
        KeyState *ks = &ent->ks[ent->nks++];
        *ks = (KeyState){.rule = (uint16_t)r->index, .at = TIME_UNSET, .last_fire = TIME_UNSET};
        if (r->per_slot >= 0) {
                Str k = key_bytes(e, r, ev);
                ent_ks_key(e, ks, k.p, k.len);
        }
        return ks;
}

/* A key with nothing left to remember goes: state stays proportional to
 * what is in progress, not to every key ever seen. */
static void keystate_drop(Engine *e, Ent *ent, KeyState *ks)
{
        assert(ks >= ent->ks && ks < ent->ks + ent->nks);
        ent_ks_free(e, ks);
        *ks = ent->ks[--ent->nks];
}

/* A condition that reads only the event (no state, profile or aggregate) on ev at t. */
static bool event_test(Engine *e, uint32_t prog, const Value *ev, int64_t t)
{
        VmFrame f = {.event = ev, .cur = ev, .now = t, .scratch = e->vmscratch, .scratch_size = sizeof(e->vmscratch)};
        return vm_test(e->rs, prog, &f);
}

/* The key's cooldown still runs at t: its state must stay. */
static bool cooldown_running(const Rule *r, const KeyState *ks, int64_t t)
{
        return r->cooldown_ms && ks->last_fire != TIME_UNSET && t < time_add_sat(ks->last_fire, r->cooldown_ms);
}

static void rule_on_event(Engine *e, Ent *ent, const Rule *r, const Value *ev, int64_t t,
                          const Str *id, AggCtx *ac)
{
        RuleInfo *ri = &e->plan.ri[r->index];
        KeyState *ks = NULL;
        if (r->timer_driven) {
                if (r->arm_when != PROG_NONE) {
                        /* the parts of when that read only the event: false,
                         * the timer would find when false on this event */
                        if (!event_test(e, r->arm_when, ev, t)) {
                                if (!(ks = keystate_lookup(e, ent, r, ev)))
                                        return;
                                if (!cooldown_running(r, ks, t)) {
                                        keystate_drop(e, ent, ks);
                                } else {
                                        ks->armed = 0;
                                        ks->at = TIME_UNSET;
                                        ent_snap_drop(e, ks);
                                }
                                return;
                        }
                }
                /* absent(): act D after the last event of the key */
                if (!(ks = keystate_lookup(e, ent, r, ev)) && !(ks = keystate_make(e, ent, r, ev))) {
                        e->st.rejects[RJ_OVER_LIMIT]++;
                        return;
                }
                snapshot(e, ks, ri, ev, id);
                ks->at = time_add_sat(t, ri->absent_ms);
                ks->armed = 1;
                timer_want(e, ent, ks->at, true);
                return;
        }
        bool cond;
        if (ri->reads_profile) /* the condition, or the message when it fires */
                ent_profile_need(e, ent);
        if (ri->event_only && ev == e->slots) {
                /* read only the event: the same code as an earlier rule of this
                 * event answers the same (over_limit of two cold-chain rules) */
                uint32_t k = ri->same_when;
                assert(k <= r->index && e->plan.ri[k].event_only);
                if (e->when_epoch[k] == e->applying) {
                        cond = e->when_val[k];
                } else {
                        cond = event_test(e, r->when, ev, t);
                        e->when_epoch[k] = e->applying;
                        e->when_val[k] = cond;
                }
        } else {
                VmState st;
                VmFrame f = frame_for(e, ent, ev, t, &st, ac);
                cond = vm_test(e->rs, r->when, &f);
        }
        if (r->for_ms) {
                ks = keystate_lookup(e, ent, r, ev);
                if (!cond) {
                        if (ks && !cooldown_running(r, ks, t))
                                keystate_drop(e, ent, ks);
                        else if (ks) {
                                ks->at = TIME_UNSET;
                                ks->armed = 0;
                                ks->fired = 0;
                        }
                        return;
                }
                if (!ks && !(ks = keystate_make(e, ent, r, ev))) {
                        e->st.rejects[RJ_OVER_LIMIT]++;
                        return;
                }
                snapshot(e, ks, ri, ev, id);
                if (ks->at == TIME_UNSET) {
                        ks->at = t;
                        ks->fired = 0;
                        ks->armed = 1;
                        timer_want(e, ent, time_add_sat(t, r->for_ms), false);
                }
                if (!ks->fired && time_sub_sat(t, ks->at) >= r->for_ms) {
                        ks->fired = 1;
                        fire(e, ent, r, ks, t, false, ev, id->p, id->len);
                }
                return;
        }
        if (!cond)
                return;
        if (r->cooldown_ms && !(ks = keystate_lookup(e, ent, r, ev)) && !(ks = keystate_make(e, ent, r, ev))) {
                e->st.rejects[RJ_OVER_LIMIT]++;
                return;
        }
        fire(e, ent, r, ks, t, false, ev, id->p, id->len);
}


static void profile_update(Engine *e, Ent *ent, const Value *ev, int64_t t, const Str *id, AggCtx *ac)
{
        ent->grade_clean = 0;
        const Schema *s = &e->rs->schema;
        const EventType *pt = &s->types[s->profile_type];
        (void)pt;
        for (uint32_t i = 0; i < e->plan.nprof; i++)
                ent_prof_set(e, ent, i, ev[e->plan.prof_slots[i]]);
        ent_profile_fill(e, ent);
        /* flags a profile rule set without a lifetime hold while it matches:
         * drop them, the rules below set them again if they still match */
        if (ent->r->nf) {
                EntRare *rr = ent_rare(e, ent);
                uint32_t kept = 0;
                for (uint32_t i = 0; i < rr->nf; i++)
                        if (!rr->f[i].from_profile)
                                rr->f[kept++] = rr->f[i];
                rr->nf = (uint16_t)kept;
        }
        for (uint32_t k = 0; k < e->plan.nstatic; k++) {
                const Rule *r = &e->rs->rules[e->plan.static_rules[k]];
                VmState st;
                VmFrame f = frame_for(e, ent, ev, t, &st, ac);
                bool cond = vm_test(e->rs, r->when, &f);
                bool was = ent_static(e, ent)[k / 64] & (1ull << (k % 64));
                if (cond) {
                        ent_static(e, ent)[k / 64] |= 1ull << (k % 64);
                        if (r->status != RULE_SHADOW) {
                                for (uint32_t i = 0; i < r->nflags; i++)
                                        flag_set(e, ent, r->flags[i].flag,
                                                 r->flags[i].lifetime_ms ? time_add_sat(t, r->flags[i].lifetime_ms) : TIME_FOREVER,
                                                 true);
                        }
                        /* a profile rule's points show in the adjustment; it
                         * alerts (once, when it starts to match) only when it
                         * asks for something: actions or flags */
                        if (!was && (r->nactions || r->nflags))
                                out_alert(e, ent, r, t, false, NULL, ev, id->p, id->len,
                                          ent_static_points(e, ent, k));
                } else {
                        ent_static(e, ent)[k / 64] &= ~(1ull << (k % 64));
                }
        }
}

static bool duplicate(Engine *e, Ent *ent, const Str *id)
{
        if (!e->cfg.recent_ids)
                return false;
        uint64_t h = hash64(id->p, id->len, HASH64_INIT);
        for (uint32_t i = 0; i < ent->nrecent; i++)
                if (ent_recent(e, ent)[i] == h)
                        return true;
        ent_recent(e, ent)[ent->recent_pos] = h;
        ent->recent_pos = (uint16_t)((ent->recent_pos + 1) % e->cfg.recent_ids);
        if (ent->nrecent < e->cfg.recent_ids)
                ent->nrecent++;
        return false;
}

static void dead_letter(Engine *e, const char *bytes, size_t len, const SourcePos *src, int reason,
                        const char *detail, const Str *ent)
{
        e->st.rejects[reason]++;
        OutMeta m = {.reason = engine_reject_names[reason], .detail = detail, .source = src};
        if (ent) {
                m.enterprise = ent->p;
                m.enterprise_len = ent->len;
        }
        if (e->emit)
                e->emit(e->ud, OUT_DEADLETTER, bytes, len, &m);
}

static void fire_timers(Engine *e, int64_t upto, bool final);

/* Apply one decoded event (its time is not behind anything applied). */
/* ent_hash: the enterprise key's hash when already taken (a hinted
 * event), else NULL */
static EnginePushResult apply(Engine *e, const DecodedEvent *ev, const uint64_t *ent_hash, const char *bytes, size_t len,
                                const SourcePos *src)
{
        int64_t t = ev->time_ms;
        fire_timers(e, t, false);
        if (e->push_marks && reach_holds(&e->reach, ev->enterprise.p, ev->enterprise.len, e->push_marks)) {
                /* its enterprise's restored record was written after the
                 * crashed run applied it: nothing to do, whatever its id */
                e->st.replayed++;
                return ENGINE_PUSH_REPLAYED;
        }
        /* a hinted event's hash was taken when it was decoded ahead */
        Ent *ent = ent_hash ? ent_get_h(e, ev->enterprise.p, ev->enterprise.len, *ent_hash)
                            : ent_get(e, ev->enterprise.p, ev->enterprise.len);
        if (!ent) {
                char d[160];
                if (e->ents.refused == 2) {
                        e->st.refused_budget++;
                        snprintf(d, sizeof(d), "the state budget (limits.max_state_bytes, %llu bytes) is reached",
                                 (unsigned long long)e->cp.budget);
                } else {
                        snprintf(d, sizeof(d), "the enterprise limit (max_enterprises) is reached");
                }
                dead_letter(e, bytes, len, src, RJ_OVER_LIMIT, d, &ev->enterprise);
                return ENGINE_PUSH_DEAD_LETTERED;
        }
        state_touch(e, ent);
        if (duplicate(e, ent, &ev->id)) {
                if (src && src->replay) {
                        /* the restored state holds it already: nothing to do */
                        e->st.replayed++;
                        return ENGINE_PUSH_REPLAYED;
                }
                char d[160];
                snprintf(d, sizeof(d), "event id %.*s was already applied", ev->id.len > 100 ? 100 : (int)ev->id.len, ev->id.p);
                dead_letter(e, bytes, len, src, RJ_DUPLICATE, d, &ev->enterprise);
                return ENGINE_PUSH_DUPLICATE;
        }
        e->st.events_applied++;
        e->applying++;
        e->st.by_type[ev->type]++;
        ent->last_time = t;
        ent_changed_set(e, ent, t);
        AggCtx ac = {e, ent};
        const Schema *s = &e->rs->schema;
        if ((int32_t)ev->type == s->profile_type) {
                profile_update(e, ent, e->slots, t, &ev->id, &ac);
                grade_update(e, ent, t, CAUSE_PROFILE, ev->id.p, ev->id.len);
                ent_profile_clear(e);
                return ENGINE_PUSH_APPLIED;
        }
        if (e->plan.naggs_by_type[ev->type]) {
                VmState st;
                VmFrame f = frame_for(e, ent, e->slots, t, &st, &ac);
                window_insert(e, ent, ev->type, e->slots, t, &f);
        }
        for (uint32_t i = 0; i < e->plan.nby_type[ev->type]; i++)
                rule_on_event(e, ent, &e->rs->rules[e->plan.by_type[ev->type][i]], e->slots, t, &ev->id, &ac);
        grade_update(e, ent, t, CAUSE_EVENT, ev->id.p, ev->id.len);
        ent_profile_clear(e);
        return ENGINE_PUSH_APPLIED;
}

static int due_cmp(const void *a, const void *b, void *ud)
{
        const Ent *x = ud;
        const KeyState *p = &x->ks[*(const uint32_t *)a], *q = &x->ks[*(const uint32_t *)b];
        if (p->rule != q->rule)
                return p->rule < q->rule ? -1 : 1;
        return ks_key_cmp(p, q);
}

/* A for: or absent() key due by now acts: the for: rule fires unless it
 * did in this episode; the absent() rule fires if its condition holds on
 * the key's last event. */
static void key_act(Engine *e, Ent *ent, KeyState *ks, int64_t now)
{
        AggCtx ac = {e, ent};
        const Rule *r = &e->rs->rules[ks->rule];
        const RuleInfo *ri = &e->plan.ri[ks->rule];
        const Value *snap = snapshot_lay(e, ks, ri);
        size_t idlen;
        char idbuf[40];
        const char *id = ent_snap_id(ks, idbuf, &idlen);
        assert(ks->armed); /* it was due: ks_due is set only while armed */
        ent_profile_fill(e, ent);
        ks->armed = 0;
        if (!r->timer_driven) {
                if (ks->at != TIME_UNSET && !ks->fired) {
                        ks->fired = 1;
                        fire(e, ent, r, ks, now, true, snap, id, idlen);
                        grade_update(e, ent, now, CAUSE_TIMER, id, idlen);
                }
        } else {
                VmState st;
                VmFrame f = frame_for(e, ent, snap, now, &st, &ac);
                if (vm_test(e->rs, r->when, &f)) {
                        fire(e, ent, r, ks, now, true, snap, id, idlen);
                        grade_update(e, ent, now, CAUSE_TIMER, id, idlen);
                }
        }
        ent_profile_clear(e);
}

/* x's timer entry at (now, absent) came up: what is due by now acts, in
 * the order expiries, dwell, then the for: (or absent()) keys by rule and
 * key; then the entry moves to the next earliest item. */
static void timer_act(Engine *e, Ent *x, int64_t now, bool absent)
{
        x->tm_at = TIME_UNSET;
        state_touch(e, x);
        ent_changed_set(e, x, now);
        e->st.timers_fired++;
        if (!absent) {
                const OffState *o = x->r->o;
                if (o && o->cycle != TIME_UNSET && e->rs->grading.official.declared &&
                    score_cycle_next(&e->rs->grading.official, o->cycle) <= now && x->grade >= 0) {
                        ent_profile_fill(e, x);
                        grade_update(e, x, now, CAUSE_CYCLE, NULL, 0);
                        ent_profile_clear(e);
                }
                if (x->r->na)
                        alerts_due(e, x, now);
                bool expired = false;
                for (uint32_t k = 0; k < x->r->nc && !expired; k++)
                        expired = x->r->c[k].expires <= now;
                for (uint32_t k = 0; k < x->r->nf && !expired; k++)
                        expired = x->r->f[k].until <= now;
                if (expired) {
                        ent_profile_fill(e, x);
                        grade_update(e, x, now, CAUSE_EXPIRY, NULL, 0);
                        ent_profile_clear(e);
                }
                if (x->r->below_since != TIME_UNSET && time_add_sat(x->r->below_since, e->rs->grading.dwell_ms) <= now) {
                        ent_profile_fill(e, x);
                        grade_update(e, x, now, CAUSE_DWELL, NULL, 0);
                        ent_profile_clear(e);
                }
        }
        uint32_t n = 0;
        for (uint32_t k = 0; k < x->nks; k++) {
                const KeyState *ks = &x->ks[k];
                int64_t due = ks_due(e, ks);
                if (due == TIME_UNSET || due > now || e->rs->rules[ks->rule].timer_driven != absent)
                        continue;
                if (n == e->cdue) {
                        e->cdue = e->cdue ? 2 * e->cdue : 16;
                        e->due = xrealloc(e->due, e->cdue * sizeof(uint32_t));
                }
                e->due[n++] = k;
        }
        if (n > 1)
                qsort_r(e->due, n, sizeof(uint32_t), due_cmp, x);
        /* acting fires rules and regrades: the key states stay where they are */
        for (uint32_t i = 0; i < n; i++)
                key_act(e, x, &x->ks[e->due[i]], now);
        timer_schedule(e, x, now, absent);
}

/* Fire the timers due by upto.  An absent() check at exactly upto waits
 * unless final: an event at upto may still come and be in its window. */
static void fire_timers(Engine *e, int64_t upto, bool final)
{
        for (const Timer *top; (top = timer_peek(&e->timers)) &&
                               (top->time < upto || (top->time == upto && (final || !(top->ent & 1))));) {
                Timer tm = timer_pop(&e->timers);
                Ent *x = timer_ent(&tm);
                bool absent = tm.ent & 1;
                if (x->tm_at != tm.time || x->tm_absent != absent)
                        continue;
                if (x->compact) /* its entry came up: acted on at once, no entry pushed */
                        x = compact_expand(e, ent_slot_of(e, x), x, false);
                timer_act(e, x, tm.time, absent);
        }
}

static DecodeReason decode(Engine *e, const char *bytes, size_t len, DecodedEvent *ev)
{
        ev->slots = e->slots;
        ev->scratch = e->scratch;
        ev->scratch_size = e->cfg.max_event_bytes;
        return decoder_decode(e->dec, bytes, len, ev);
}

void engine_held_push(Engine *e, const char *bytes, size_t len, const SourcePos *src)
{
        DecodedEvent ev;
        if (decode(e, bytes, len, &ev) == DECODE_OK)
                hold_push(&e->hold, ev.time_ms, bytes, len, src);
}

static void release_upto(Engine *e, int64_t upto, bool final)
{
        for (const Held *top; (top = hold_peek(&e->hold)) && top->time <= upto;) {
                Held h = hold_pop(&e->hold);
                DecodedEvent ev;
                if (decode(e, h.bytes, h.len, &ev) == DECODE_OK)
                        apply(e, &ev, NULL, h.bytes, h.len, &h.src);
                free(h.bytes);
                free(h.topic);
        }
        fire_timers(e, upto, final);
}

static EnginePushResult push_decoded(Engine *e, const char *bytes, size_t len, const SourcePos *src,
                                     DecodeReason rc, const DecodedEvent *ev, const uint64_t *ent_hash);

/* EngineConfig.compact_every: tests and bench/ compact every idle
 * enterprise after every n pushes (outside batches), to show the compact
 * form changes no output. */
static void compact_every(Engine *e)
{
        if (e->cfg.compact_every && !e->in_batch && ++e->cp.compact_count >= e->cfg.compact_every) {
                e->cp.compact_count = 0;
                engine_compact(e, 0, 0);
        }
}

EnginePushResult engine_push(Engine *e, const char *bytes, size_t len, const SourcePos *src)
{
        EnginePushResult res;
        e->st.events_in++;
        e->push_ts = src ? src->timestamp : 0;
        e->push_marks = src ? src->replay_marks : 0;
        Ahead *a = e->hold.nahead ? hold_ahead_take(&e->hold, bytes, len) : NULL;
        if (!a) {
                DecodedEvent ev;
                DecodeReason rc = decode(e, bytes, len, &ev);
                res = push_decoded(e, bytes, len, src, rc, &ev, NULL);
                e->push_ts = 0;
                e->push_marks = 0;
                compact_every(e);
                return res;
        }
        /* the hinted event's slots stand in for e->slots while it applies */
        Value *own = e->slots;
        e->slots = a->slots;
        hold_ahead_stage(e);
        res = push_decoded(e, bytes, len, src, a->rc, &a->ev, &a->h);
        e->slots = own;
        e->push_ts = 0;
        e->push_marks = 0;
        compact_every(e);
        return res;
}

static EnginePushResult push_decoded(Engine *e, const char *bytes, size_t len, const SourcePos *src,
                                     DecodeReason rc, const DecodedEvent *ev, const uint64_t *ent_hash)
{
        if (rc != DECODE_OK) {
                dead_letter(e, bytes, len, src, (int)rc, ev->detail, NULL);
                return ENGINE_PUSH_DEAD_LETTERED;
        }
        int64_t t = ev->time_ms;
        /* at the watermark is in time: the events of t released so far
         * arrived before it, so applying it after them keeps the order */
        if (e->max_time != TIME_UNSET && t < e->wm) {
                char d[160];
                char a[40], b[40];
                time_format(t, a, sizeof(a));
                time_format(e->wm, b, sizeof(b));
                snprintf(d, sizeof(d), "event time %s is behind the watermark %s", a, b);
                dead_letter(e, bytes, len, src, RJ_TOO_LATE, d, &ev->enterprise);
                return ENGINE_PUSH_DEAD_LETTERED;
        }
        if (e->max_time == TIME_UNSET || t > e->max_time) {
                e->max_time = t;
                e->wm = time_sub_sat(t, e->cfg.grace_ms);
        }
        assert(e->wm <= e->max_time && t >= e->wm); /* the watermark trails the newest event */
        if (e->cfg.grace_ms == 0)
                return apply(e, ev, ent_hash, bytes, len, src);
        hold_push(&e->hold, ev->time_ms, bytes, len, src);
        if (e->hold.nheld > e->cfg.max_held) {
                /* bounded memory: release the oldest early, and never accept
                 * anything older than it afterwards */
                int64_t t0 = hold_peek(&e->hold)->time;
                e->st.held_forced++;
                if (t0 > e->wm)
                        e->wm = t0;
        }
        release_upto(e, e->wm, false);
        return ENGINE_PUSH_HELD;
}

void engine_advance(Engine *e, int64_t t)
{
        if (e->max_time == TIME_UNSET || t > e->max_time)
                e->max_time = t;
        if (t > e->wm)
                e->wm = t;
        release_upto(e, t, true);
}

void engine_flush(Engine *e)
{
        if (e->max_time == TIME_UNSET)
                return;
        e->wm = e->max_time;
        release_upto(e, e->max_time, true);
}

int engine_new(Engine **ret, RuleSet *rs, const EngineConfig *cfg, EngineEmitFn emit, void *ud)
{
        Engine *e = xcalloc(1, sizeof(*e));
        if (cfg)
                e->cfg = *cfg;
        else
                engine_config_default(&e->cfg);
        if (!e->cfg.max_event_bytes)
                e->cfg.max_event_bytes = 1 << 20;
        e->cp.budget = e->cfg.max_state_bytes;
        if (e->cfg.grace_ms < 0 || !e->cfg.max_held || !e->cfg.max_window_rows) {
                free(e);
                return -EINVAL;
        }
        DecoderLimits lim = {.max_bytes = e->cfg.max_event_bytes};
        int r = decoder_new(&e->dec, &rs->schema, &lim);
        if (r < 0) {
                free(e);
                return r;
        }
        e->rs = rules_ref(rs);
        e->emit = emit;
        e->ud = ud;
        pool_init(&e->pool);
        intern_init(&e->in, &e->pool);
        uint32_t ns = rs->schema.nslots ? rs->schema.nslots : 1;
        e->slots = xcalloc(ns, sizeof(Value));
        e->rowbuf = xcalloc(ns, sizeof(Value));
        e->snapbuf = xcalloc(ns, sizeof(Value));
        e->snapvals = xcalloc(ns, sizeof(Value));
        e->profbuf = xcalloc(ns, sizeof(Value));
        e->scratch = xmalloc(e->cfg.max_event_bytes);
        e->max_time = TIME_UNSET;
        e->wm = TIME_UNSET;
        e->restore_next = -1;
        e->ents.tabcap = 1024;
        e->ents.tab = xcalloc(e->ents.tabcap, sizeof(uintptr_t));
        e->ents.tab_untagged = sizeof(uintptr_t) < 8;

        plan_init(&e->plan, rs, e->cfg.region_field, e->cfg.category_field);
        ent_layout(e);
        e->sexprbuf = xcalloc(ns, sizeof(Value));
        e->when_epoch = xcalloc(rs->nrules + 1, sizeof(uint64_t));
        e->when_val = xcalloc(rs->nrules + 1, 1);
        *ret = e;
        return 0;
}

Engine *engine_free(Engine *e)
{
        if (!e)
                return NULL;
        state_dicts_free(e);
        free(e->due);
        hold_free(&e->hold);
        reach_free(&e->reach);
        timer_free(&e->timers); /* no entry left: compact_deinit frees the gone Ents */
        compact_deinit(e);
        ent_table_free(e);      /* an Ent's size reads the plan */
        plan_deinit(&e->plan, e->rs);
        void *arrays[] = {e->sexprbuf, e->when_epoch, e->when_val, e->slots,   e->rowbuf,  e->snapbuf,
                          e->snapvals, e->profbuf,    e->scratch,  e->aggbuf,  e->touched, e->undo_off,
                          e->rtext_off};
        for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++)
                free(arrays[i]);
        Buf *bufs[] = {&e->keybuf, &e->undo, &e->meta_undo, &e->meta_sealed, &e->out, &e->msg, &e->rtext};
        for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
                buf_free(bufs[i]);
        decoder_free(e->dec);
        intern_deinit(&e->in);
        pool_deinit(&e->pool);
        rules_unref(e->rs);
        free(e);
        return NULL;
}

uint32_t engine_enterprises(const Engine *e)
{
        return e->ents.nents;
}

const RuleSet *engine_rules(const Engine *e)
{
        return e->rs;
}

const EngineStats *engine_counters(Engine *e)
{
        e->st.enterprises = e->ents.nents;
        e->st.watermark = e->wm;
        e->st.enterprises_compact = e->cp.ncompact;
        e->st.state_budget = e->cp.budget;
        return &e->st;
}

const EngineStats *engine_stats(Engine *e)
{
        e->st.enterprises = e->ents.nents;
        e->st.watermark = e->wm;
        /* everything enterprises hold is in the pool (sizes as rounded up to
         * their class), plus what grows with them: the table, the timer
         * heap, the intern table */
        uint64_t sb = (uint64_t)e->ents.tabcap * sizeof(uintptr_t) + (uint64_t)e->timers.ctm * sizeof(Timer) +
                      (uint64_t)e->in.cap * sizeof(uintptr_t),
                 wb = 0, rows = 0;
        for (uint32_t i = 0; i < e->ents.tabcap; i++) {
                const Ent *x = tab_ent(e, i);
                if (!x)
                        continue;
                for (uint32_t k = 0; k < x->nw; k++) {
                        wb += window_bytes(e, &x->w[k]);
                        rows += x->w[k].n;
                }
        }
        e->st.state_bytes = sb + e->pool.bytes - wb;
        e->st.window_bytes = wb;
        e->st.window_rows = rows;
        e->st.enterprises_compact = e->cp.ncompact;
        e->st.state_budget = e->cp.budget;
        return &e->st;
}
