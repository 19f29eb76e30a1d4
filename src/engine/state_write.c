/*
 * The engine's state written as records (ENGINE_STATE_VERSION 2): an
 * enterprise's (ent_write, one encoder for the changelog, the undo log,
 * restore and reload) and the partition record (watermark, held events,
 * resume offset, the rules version).  An enterprise's record is a version
 * byte, the dictionary's id (8 bytes: state_dict.c), a base time, then
 * fields in a fixed order (docs/state.md); state_read.c reads them in the
 * same order.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/engine/state_int.h"

/* A value of slot: enums by their index in the dictionary's list of the
 * slot's values (by name in the dictionary: reordered enums restore right). */
static void put_v(Buf *b, const Value *v, int64_t base)
{
        buf_putc(b, (char)v->tag);
        switch (v->tag) {
        case VT_BOOL: buf_putc(b, v->b ? 1 : 0); break;
        case VT_NUM: put_d(b, v->n); break;
        case VT_STR: put_s(b, v->s.p, v->s.len); break;
        case VT_ENUM: put_u(b, (uint64_t)(int64_t)v->e + 1); break; /* -1 (unknown): 0 */
        case VT_TIME: put_t(b, v->ms, base); break;
        case VT_DUR: put_i(b, v->ms); break;
        default: break;
        }
}

/* The grade history (the array EntRare.h), oldest first: after 'C', the last
 * section, so that a record without it (written before it was kept)
 * reads as no history, and a riskd before it stops at 'H'. */
static void history_write(const Ent *x, Buf *b, int64_t base)
{
        if (!x->r->nh)
                return;
        buf_putc(b, 'H');
        put_u(b, x->r->nh);
        for (uint32_t i = 0; i < x->r->nh; i++) {
                const GradeChange *c = &x->r->h[i];
                put_t(b, c->ts, base);
                put_8(b, c->id);
                put_u(b, (uint64_t)(c->grade + 1));
                put_u(b, (uint64_t)(c->mode + 1));
                put_d(b, c->per_year);
                put_u(b, c->cause);
        }
}

static void ent_write(Engine *e, const Ent *x, Buf *b)
{
        const RuleSet *rs = e->rs;
        const Grading *g = &rs->grading;
        if (x->compact) { /* it holds its record (compact.c) */
                compact_record(e, x, b);
                return;
        }
        StateDicts *ds = state_dict_own(e);
        buf_putc(b, ENGINE_STATE_VERSION);
        put_8(b, ds->own_id);
        int64_t base = x->last_time == TIME_UNSET ? 0 : x->last_time;
        put_i(b, base);
        put_d(b, ent_static_score(e, x)); /* derived from the bits; kept for the record format */
        uint32_t nst = 0;
        for (uint32_t k = 0; k < e->plan.nstatic; k++)
                nst += e->plan.nstatic && (ent_static(e, x)[k / 64] >> (k % 64) & 1);
        put_u(b, nst);
        for (uint32_t k = 0; k < e->plan.nstatic; k++)
                if (e->plan.nstatic && (ent_static(e, x)[k / 64] >> (k % 64) & 1))
                        put_u(b, e->plan.static_rules[k]);
        put_u(b, (uint64_t)(x->held + 1));
        put_u(b, (uint64_t)(x->grade + 1));
        put_u(b, (uint64_t)(x->mode + 1));
        put_d(b, x->per_year);
        put_t(b, x->r->below_since, base);
        put_t(b, x->last_time, base);
        /* the profile values that are not null, each with its slot */
        uint32_t np = 0;
        for (uint32_t i = 0; i < e->plan.nprof; i++)
                np += ent_prof_get(e, x, i).tag != VT_NULL;
        put_u(b, np);
        for (uint32_t i = 0; i < e->plan.nprof; i++) {
                Value v = ent_prof_get(e, x, i);
                if (v.tag == VT_NULL)
                        continue;
                put_u(b, e->plan.prof_slots[i]);
                put_v(b, &v, base);
        }
        put_u(b, x->r->nc);
        for (uint32_t i = 0; i < x->r->nc; i++) {
                const Contrib *c = &x->r->c[i];
                put_u(b, c->rule);
                put_d(b, c->points);
                put_t(b, c->since, base);
                put_t(b, c->expires, base);
                put_t(b, c->rectify, base);
                put_id(b, c->event_id->s, c->event_id->len);
        }
        put_u(b, x->r->nf);
        for (uint32_t i = 0; i < x->r->nf; i++) {
                put_u(b, x->r->f[i].flag);
                buf_putc(b, (char)x->r->f[i].from_profile);
                put_t(b, x->r->f[i].until, base);
        }
        put_u(b, x->nks);
        for (uint32_t i = 0; i < x->nks; i++) {
                const KeyState *ks = &x->ks[i];
                const RuleInfo *ri = &e->plan.ri[ks->rule];
                put_u(b, ks->rule);
                buf_putc(b, (char)ks->keyed);
                if (ks->keyed) {
                        Str key = ks_key(ks);
                        put_s(b, key.p, key.len);
                }
                buf_putc(b, (char)ks->fired);
                put_t(b, rs->rules[ks->rule].timer_driven ? TIME_UNSET : ks->at, base); /* since */
                put_t(b, ks->last_fire, base);
                put_t(b, ks_due(e, ks), base);
                /* the snapshot's values in the order of the rule's slots (the dictionary's) */
                put_u(b, ks_has_snap(ks) ? ri->nsnap : 0);
                ent_snap_values(ks, ri, e->snapvals);
                for (uint32_t k = 0; ks_has_snap(ks) && k < ri->nsnap; k++) {
                        const Value *v = &e->snapvals[k];
                        Str key = ks_key(ks);
                        if (ks->keyed && v->tag == VT_STR && str_order(v->s, key) == 0)
                                buf_putc(b, (char)SNAP_IS_KEY); /* the per: field: the key again */
                        else
                                put_v(b, v, base);
                }
                size_t idlen;
                char idbuf[40];
                const char *id = ent_snap_id(ks, idbuf, &idlen);
                put_id(b, id, idlen);
        }
        put_u(b, x->nw);
        for (uint32_t i = 0; i < x->nw; i++) {
                const Win *w = &x->w[i];
                const Aggregate *a = &rs->aggs[w->agg];
                put_u(b, w->agg);
                put_u(b, w->n);
                for (uint32_t r = 0; r < w->n; r++) {
                        uint32_t at = (w->head + r) % w->cap;
                        put_t(b, w->t[at], base);
                        for (uint32_t k = 0; k < a->nrow_slots; k++)
                                put_v(b, &win_v(w)[(size_t)at * a->nrow_slots + k], base);
                }
        }
        put_u(b, x->nrecent);
        for (uint32_t i = 0; i < x->nrecent; i++) {
                /* oldest first */
                uint32_t at = (x->recent_pos + e->cfg.recent_ids - x->nrecent + i) % e->cfg.recent_ids;
                put_8(b, ent_recent(e, x)[at]);
        }
        /* the official grade's state (grading.yaml official:) */
        const OffState *o = x->r->o;
        if (o && g->official.declared) {
                buf_putc(b, 'O');
                put_t(b, o->cycle, base);
                put_u(b, (uint64_t)(o->assessed + 1));
                put_i(b, o->carry);
                put_i(b, o->raise);
                put_i(b, o->lower);
                put_u(b, (uint64_t)o->provisional | (uint64_t)o->assess_due << 1);
                put_t(b, o->dyn_time, base);
                put_d(b, o->dyn);
                put_u(b, (uint64_t)(o->dyn_rule + 1));
                put_u(b, (uint64_t)(o->basis + 1));
                put_t(b, o->basis_time, base);
        }
        /* the open alerts (alerts.c), in the order they opened: a section
         * of its own at the end, so that a record without one (written
         * before it) reads as none, and a riskd before it skips it */
        if (x->r->na) {
                buf_putc(b, 'A');
                put_u(b, x->r->na);
                for (uint32_t i = 0; i < x->r->na; i++) {
                        const OpenAlert *a = &x->r->a[i];
                        put_u(b, a->rule);
                        put_8(b, a->id);
                        buf_putc(b, (char)a->state);
                        put_t(b, a->opened, base);
                        put_t(b, a->expires == TIME_FOREVER ? TIME_UNSET : a->expires, base);
                        put_t(b, a->deadline, base);
                        buf_putc(b, (char)(a->key != NULL));
                        if (a->key)
                                put_s(b, a->key->s, a->key->len);
                }
        }
        /* the time of the latest change, when a timer's is after the last
         * event's (ent_changed): last, so that a reader that does not know
         * it stops before it */
        if (x->r->changed != TIME_UNSET) {
                buf_putc(b, 'C');
                put_t(b, x->r->changed, base);
        }
        history_write(x, b, base);
}

void state_ent_write(Engine *e, const Ent *x, Buf *b)
{
        ent_write(e, x, b);
}

static int held_qcmp(const void *a, const void *b)
{
        return held_cmp(a, b);
}

/* The held events go in the order they will be applied: a restore (or an
 * abort) pushes them again in record order, which gives events of the same
 * time their arrival order back.  Sorted in place: a sorted array is a
 * heap. */
void state_meta_write(Engine *e, int64_t next, Buf *b)
{
        xsort(e->hold.held, e->hold.nheld, sizeof(Held), held_qcmp);
        buf_putc(b, ENGINE_META_VERSION);
        put_i(b, e->max_time);
        put_i(b, e->wm);
        put_i(b, next);
        put_u(b, e->hold.nheld);
        for (uint32_t i = 0; i < e->hold.nheld; i++) {
                const Held *h = &e->hold.held[i];
                put_cs(b, h->src.topic);
                put_i(b, h->src.partition);
                put_i(b, h->src.offset);
                put_s(b, h->bytes, h->len);
        }
        /* the rules the state is of: a restore under others grades again */
        buf_putc(b, 'V');
        put_cs(b, e->rs->version);
}
