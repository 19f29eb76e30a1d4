/*
 * The engine's output documents: alerts, alert states and adjustments
 * (docs/outputs.md, docs/schemas/), and the pieces the enterprise document
 * (explain.c) writes too: times and numbers, values, the live flags and
 * contributions, the official grade's object.  Every document is built in
 * the engine's reused buffer and handed to the sink; field order is fixed
 * and nothing depends on hash order, so equal input gives equal bytes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/engine/engine.h"
#include "src/util/json.h"

const char *const engine_cause_names[CAUSE_COUNT] = {
#define X(e, name) name,
        GRADE_CAUSE_LIST(X)
#undef X
};

void out_time(Buf *b, int64_t ms)
{
        char t[48];
        time_format(ms, t, sizeof(t));
        buf_putc(b, '"');
        buf_puts(b, t);
        buf_putc(b, '"');
}

void out_num(Buf *b, double d)
{
        if (!isfinite(d)) {
                buf_puts(b, "null");
                return;
        }
        /* the range first: converting a double past int64 is undefined */
        if (fabs(d) < 1e15 && d == (double)(int64_t)d) {
                buf_put_i64(b, (int64_t)d);
                return;
        }
        /* most fractions are of a decimal or two (8.3, 62.5): k / 10 or
         * k / 100 that gives d back, with at most 14 digits, is what
         * %.15g prints (15 significant digits give a decimal of that
         * many back from its nearest double), written without printf */
        for (int64_t scale = 10; scale <= 100; scale *= 10) {
                double x = d * (double)scale;
                if (fabs(x) >= 1e14)
                        break;
                int64_t k = llround(x);
                if ((double)k / (double)scale != d)
                        continue;
                int64_t a = k < 0 ? -k : k;
                if (k < 0)
                        buf_putc(b, '-');
                buf_put_i64(b, a / scale);
                buf_putc(b, '.');
                int64_t f = a % scale; /* not 0: d is not whole; for scale 100 not a multiple of 10 */
                if (scale == 100 && f < 10)
                        buf_putc(b, '0');
                buf_put_i64(b, f);
                return;
        }
        char s[40];
        snprintf(s, sizeof(s), "%.15g", d);
        if (strtod(s, NULL) != d)
                snprintf(s, sizeof(s), "%.17g", d);
        buf_puts(b, s);
}

void out_score_json(Engine *e, Buf *b, const Ent *ent, double score, int32_t band)
{
        const Grading *g = &e->rs->grading;
        buf_puts(b, ",\"score\":");
        out_num(b, score);
        buf_puts(b, ",\"static_score\":");
        out_num(b, ent_static_score(e, ent));
        buf_puts(b, ",\"band\":");
        json_put_str_or_null(b, band >= 0 ? g->bands[band].grade : NULL);
}

void out_official_index(Engine *e, Buf *b, const Ent *ent, double score)
{
        const Grading *g = &e->rs->grading;
        buf_puts(b, "\"official\":");
        out_official(e, b, ent);
        buf_puts(b, ",\"index\":{\"score\":");
        out_num(b, score);
        buf_puts(b, ",\"band\":");
        json_put_str_or_null(b, ent->held >= 0 ? g->bands[ent->held].grade : NULL);
}

/* A value as message text (json=false) or as a JSON value. */
void out_value(Engine *e, Buf *b, const Value *v, uint32_t slot, bool json)
{
        char t[48];
        switch (v->tag) {
        case VT_NULL:
                buf_puts(b, "null");
                return;
        case VT_BOOL:
                buf_puts(b, v->b ? "true" : "false");
                return;
        case VT_NUM:
                out_num(b, v->n);
                return;
        case VT_STR:
                if (json)
                        buf_json_str(b, v->s.p, v->s.len);
                else
                        buf_put(b, v->s.p, v->s.len);
                return;
        case VT_ENUM: {
                const EnumDef *en = slot < e->rs->schema.nslots ? e->rs->schema.slot_enum[slot] : NULL;
                const char *name = en && v->e >= 0 && (uint32_t)v->e < en->nvalues ? en->values[v->e] : "?";
                if (json)
                        buf_json_str(b, name, strlen(name));
                else
                        buf_puts(b, name);
                return;
        }
        case VT_TIME:
                time_format(v->ms, t, sizeof(t));
                break;
        case VT_DUR:
                duration_format(v->ms, t, sizeof(t));
                break;
        }
        if (json)
                buf_json_str(b, t, strlen(t));
        else
                buf_puts(b, t);
}

void out_hex_id(Buf *b, uint64_t h)
{
        buf_putc(b, '"');
        buf_put_hex64(b, h);
        buf_putc(b, '"');
}

/* The enterprise's live flags (adjustments, explain). */
void out_flags_json(Engine *e, Buf *b, const Ent *ent, int64_t now)
{
        buf_putc(b, '[');
        bool any = false;
        for (uint32_t i = 0; i < ent->r->nf; i++) {
                const FlagState *f = &ent->r->f[i];
                if (f->until <= now)
                        continue;
                if (any)
                        buf_putc(b, ',');
                any = true;
                buf_puts(b, "{\"name\":");
                json_put_str_or_null(b, e->rs->flags[f->flag]);
                buf_puts(b, ",\"until\":");
                if (f->until == TIME_FOREVER)
                        buf_puts(b, "null");
                else
                        out_time(b, f->until);
                buf_putc(b, '}');
        }
        buf_putc(b, ']');
}

/* A field's value in a message: {f}, {f:label}, {f:date}, {f:datetime},
 * and |TEXT for null.  Written straight into the message buffer. */
static void render_field(Engine *e, Buf *m, const TplPart *p, const Value *v)
{
        if (v->tag == VT_NULL && p->text) {
                buf_put(m, p->text, p->len);
                return;
        }
        if (p->fmt == TPL_FMT_LABEL && v->tag == VT_ENUM) {
                const EnumDef *en = e->rs->schema.slot_enum[p->slot];
                if (en && en->labels && v->e >= 0 && (uint32_t)v->e < en->nvalues) {
                        buf_puts(m, en->labels[v->e]);
                        return;
                }
        }
        if ((p->fmt == TPL_FMT_DATE || p->fmt == TPL_FMT_DATETIME) && v->tag == VT_TIME) {
                char t[48];
                time_format_local(v->ms, e->rs->schema.display_offset_ms, p->fmt == TPL_FMT_DATETIME, t, sizeof(t));
                buf_puts(m, t);
                return;
        }
        out_value(e, m, v, p->slot, false);
}

static void render_message(Engine *e, Buf *m, const Ent *ent, const Rule *r, const Value *ev, int64_t t)
{
        m->len = 0;
        if (m->p)
                m->p[0] = 0;
        for (uint32_t i = 0; i < r->message.nparts; i++) {
                const TplPart *p = &r->message.parts[i];
                switch (p->kind) {
                case TPL_TEXT:
                        buf_put(m, p->text, p->len);
                        break;
                case TPL_FIELD:
                        render_field(e, m, p, &ev[p->slot]);
                        break;
                case TPL_PROFILE:
                        render_field(e, m, p, &e->profbuf[p->slot]);
                        break;
                case TPL_STATE_SCORE:
                        out_num(m, score_of(e, (Ent *)ent, t));
                        break;
                case TPL_STATE_GRADE:
                        if (ent->grade >= 0)
                                buf_puts(m, e->rs->grading.bands[ent->grade].grade);
                        else if (p->text)
                                buf_put(m, p->text, p->len);
                        else
                                buf_puts(m, "null");
                        break;
                case TPL_RULE_ID:
                        buf_puts(m, r->id);
                        break;
                }
        }
}

/* A per: key as a JSON string, null: none. */
static void key_or_null(Buf *b, const char *p, size_t len)
{
        if (p)
                buf_json_str(b, p, len);
        else
                buf_puts(b, "null");
}

void out_alert_span(Buf *b, const OpenAlert *a)
{
        buf_puts(b, ",\"opened_at\":");
        out_time(b, a->opened);
        buf_puts(b, ",\"deadline\":");
        out_time_or_null(b, a->deadline);
        buf_puts(b, ",\"expires\":");
        out_time_or_null(b, a->expires == TIME_FOREVER ? TIME_UNSET : a->expires);
}

void out_open_alert(Engine *e, Buf *b, const OpenAlert *a)
{
        buf_puts(b, "\"alert_id\":");
        out_hex_id(b, a->id);
        buf_puts(b, ",\"rule_id\":");
        json_put_str_or_null(b, e->rs->rules[a->rule].id);
        buf_puts(b, ",\"key\":");
        key_or_null(b, a->key ? a->key->s : NULL, a->key ? a->key->len : 0);
        buf_puts(b, ",\"state\":\"");
        buf_puts(b, alert_state_names[a->state]);
        buf_putc(b, '"');
        out_alert_span(b, a);
}

/* An alert's id: of its rule, enterprise and evidence (a timer's firing:
 * its key and time too). */
static uint64_t alert_id(const Ent *ent, const Rule *r, int64_t t, bool timer, const Str *key, const char *evidence,
                         size_t evlen)
{
        uint64_t h = hash64(r->id, strlen(r->id) + 1, HASH64_INIT);
        h = hash64(ent_key(ent)->s, ent_key(ent)->len + 1, h);
        h = hash64(evidence, evlen, h);
        if (timer) {
                h = hash64("\0timer", 6, h);
                if (key)
                        h = hash64(key->p, key->len, h);
                h = hash64(&t, sizeof(t), h);
        } else if (key) {
                h = hash64(key->p, key->len, h);
                h = hash64("", 1, h); /* and its terminator, as ids were first made */
        }
        return h;
}

uint64_t out_alert(Engine *e, Ent *ent, const Rule *r, int64_t t, bool timer, const Str *key,
                   const Value *ev, const char *evidence, size_t evlen, double delta)
{
        bool shadow = r->status == RULE_SHADOW;
        if (shadow)
                e->st.shadow_alerts++;
        else
                e->st.alerts++;
        uint64_t h = alert_id(ent, r, t, timer, key, evidence, evlen);
        if (!e->emit)
                return h;
        Buf *b = &e->out;
        b->len = 0;
        buf_puts(b, "{\"schema\":\"riskd.alert/1\",\"alert_id\":");
        out_hex_id(b, h);
        buf_puts(b, ",\"rule_id\":");
        json_put_str_or_null(b, r->id);
        buf_puts(b, shadow ? ",\"status\":\"shadow\",\"severity\":\"" : ",\"status\":\"active\",\"severity\":\"");
        buf_puts(b, severity_str(r->severity));
        buf_puts(b, "\",\"enterprise_id\":");
        buf_json_str(b, ent_key(ent)->s, ent_key(ent)->len);
        buf_puts(b, ",\"ts\":");
        out_time(b, t);
        buf_puts(b, timer ? ",\"trigger\":\"timer\",\"key\":" : ",\"trigger\":\"event\",\"key\":");
        key_or_null(b, key ? key->p : NULL, key ? key->len : 0);
        buf_puts(b, ",\"message\":");
        if (r->message.src) {
                render_message(e, &e->msg, ent, r, ev, t);
                buf_json_str(b, e->msg.p ? e->msg.p : "", e->msg.len);
        } else {
                json_put_str_or_null(b, r->desc ? r->desc : r->id);
        }
        buf_puts(b, ",\"actions\":[");
        for (uint32_t i = 0; i < r->nactions; i++) {
                if (i)
                        buf_putc(b, ',');
                json_put_str_or_null(b, r->actions[i]);
        }
        buf_puts(b, "],\"score_delta\":");
        out_num(b, delta);
        /* the flags this firing set, with the expiry it gave them */
        buf_puts(b, ",\"flags\":[");
        for (uint32_t i = 0; !shadow && i < r->nflags; i++) {
                if (i)
                        buf_putc(b, ',');
                buf_puts(b, "{\"name\":");
                json_put_str_or_null(b, e->rs->flags[r->flags[i].flag]);
                buf_puts(b, ",\"until\":");
                /* a lifetime past the int64 range saturates: never, as the state has it */
                if (r->flags[i].lifetime_ms && time_add_sat(t, r->flags[i].lifetime_ms) != TIME_FOREVER)
                        out_time(b, time_add_sat(t, r->flags[i].lifetime_ms));
                else
                        buf_puts(b, "null");
                buf_putc(b, '}');
        }
        buf_putc(b, ']');
        buf_puts(b, ",\"evidence\":[");
        buf_json_str(b, evidence, evlen);
        buf_puts(b, "],\"basis\":");
        json_put_str_or_null(b, r->basis);
        buf_puts(b, ",\"rectify_deadline\":");
        if (r->rectify_ms && !shadow && time_add_sat(t, r->rectify_ms) != TIME_FOREVER)
                out_time(b, time_add_sat(t, r->rectify_ms));
        else
                buf_puts(b, "null");
        buf_puts(b, ",\"rules_version\":\"");
        buf_puts(b, e->rs->version);
        buf_puts(b, "\"}");
        OutMeta m = {.enterprise = ent_key(ent)->s, .enterprise_len = ent_key(ent)->len, .rule_id = r->id,
                     .severity = severity_str(r->severity), .timestamp = e->push_ts};
        e->emit(e->ud, shadow ? OUT_SHADOW : OUT_ALERT, b->p, b->len, &m);
        return h;
}

void out_alert_state(Engine *e, const Ent *x, const OpenAlert *a, const char *rule_id, AlertState to,
                     AlertCause cause, const char *evid, size_t evlen, int64_t t)
{
        e->st.alert_states++;
        if (!e->emit)
                return;
        Buf *b = &e->out;
        b->len = 0;
        buf_puts(b, "{\"schema\":\"riskd.alert_state/1\",\"alert_id\":");
        out_hex_id(b, a->id);
        buf_puts(b, ",\"enterprise_id\":");
        buf_json_str(b, ent_key(x)->s, ent_key(x)->len);
        buf_puts(b, ",\"rule_id\":");
        json_put_str_or_null(b, rule_id);
        buf_puts(b, ",\"key\":");
        key_or_null(b, a->key ? a->key->s : NULL, a->key ? a->key->len : 0);
        buf_puts(b, ",\"from\":\"");
        buf_puts(b, alert_state_names[a->state]);
        buf_puts(b, "\",\"to\":\"");
        buf_puts(b, alert_state_names[to]);
        buf_puts(b, "\",\"cause\":\"");
        buf_puts(b, alert_cause_names[cause]);
        buf_puts(b, "\",\"evidence\":[");
        if (evid)
                buf_json_str(b, evid, evlen);
        buf_puts(b, "],\"time\":");
        out_time(b, t);
        out_alert_span(b, a);
        buf_puts(b, ",\"rules_version\":\"");
        buf_puts(b, e->rs->version);
        buf_puts(b, "\"}");
        OutMeta m = {.enterprise = ent_key(x)->s, .enterprise_len = ent_key(x)->len, .rule_id = rule_id,
                     .timestamp = e->push_ts};
        e->emit(e->ud, OUT_ALERT_STATE, b->p, b->len, &m);
}

void out_grading_json(Engine *e, Buf *b, int32_t grade, int32_t mode, double per_year)
{
        const Grading *g = &e->rs->grading;
        buf_puts(b, "{\"grade\":");
        json_put_str_or_null(b, grade >= 0 ? g->bands[grade].grade : NULL);
        buf_puts(b, ",\"mode\":");
        json_put_str_or_null(b, mode >= 0 ? g->modes[mode] : NULL);
        buf_puts(b, ",\"inspections_per_year\":");
        out_num(b, per_year);
        buf_putc(b, '}');
}

void out_rule_points(Engine *e, Buf *b, bool *any, uint32_t rule, double points)
{
        if (*any)
                buf_putc(b, ',');
        *any = true;
        buf_puts(b, "{\"rule_id\":");
        json_put_str_or_null(b, e->rs->rules[rule].id);
        buf_puts(b, ",\"points\":");
        out_num(b, points);
}

/* Rule r's ,"desc":...,"basis":... (the enterprise document writes them
 * for every static rule and contribution it lists): escaped once per
 * engine, then copied. */
void out_rule_texts(Engine *e, Buf *b, uint32_t r)
{
        if (!e->rtext_off) {
                e->rtext_off = xmalloc(((size_t)e->rs->nrules + 1) * sizeof(uint32_t));
                for (uint32_t i = 0; i < e->rs->nrules; i++) {
                        e->rtext_off[i] = (uint32_t)e->rtext.len;
                        buf_puts(&e->rtext, ",\"desc\":");
                        json_put_str_or_null(&e->rtext, e->rs->rules[i].desc);
                        buf_puts(&e->rtext, ",\"basis\":");
                        json_put_str_or_null(&e->rtext, e->rs->rules[i].basis);
                }
                e->rtext_off[e->rs->nrules] = (uint32_t)e->rtext.len;
        }
        buf_put(b, e->rtext.p + e->rtext_off[r], e->rtext_off[r + 1] - e->rtext_off[r]);
}

void out_contributions_json(Engine *e, Buf *b, const Ent *ent, int64_t now, bool verbose)
{
        buf_putc(b, '[');
        bool any = false;
        for (uint32_t i = 0; i < ent->r->nc; i++) {
                const Contrib *c = &ent->r->c[i];
                if (c->expires <= now)
                        continue;
                out_rule_points(e, b, &any, c->rule, c->points);
                buf_puts(b, ",\"since\":");
                out_time(b, c->since);
                buf_puts(b, ",\"expires\":");
                if (c->expires == TIME_FOREVER)
                        buf_puts(b, "null");
                else
                        out_time(b, c->expires);
                buf_puts(b, ",\"event_id\":");
                buf_json_str(b, c->event_id->s, c->event_id->len);
                if (verbose) {
                        out_rule_texts(e, b, c->rule);
                        buf_puts(b, ",\"rectify_deadline\":");
                        if (c->rectify != TIME_UNSET)
                                out_time(b, c->rectify);
                        else
                                buf_puts(b, "null");
                }
                buf_putc(b, '}');
        }
        buf_putc(b, ']');
}

static int64_t rectify_deadline(const Ent *ent, int64_t now)
{
        int64_t best = TIME_UNSET;
        for (uint32_t i = 0; i < ent->r->nc; i++)
                if (ent->r->c[i].expires > now && ent->r->c[i].rectify != TIME_UNSET && ent->r->c[i].rectify > best)
                        best = ent->r->c[i].rectify;
        return best;
}

void out_time_or_null(Buf *b, int64_t t)
{
        if (t != TIME_UNSET)
                out_time(b, t);
        else
                buf_puts(b, "null");
}

/* The official grade's object (grading.yaml official:): the score and its
 * parts, the cycle, the assessment and the steps within the cycle, and
 * what made the latest step. */
void out_official(Engine *e, Buf *b, const Ent *ent)
{
        const Grading *g = &e->rs->grading;
        const OffState *o = ent->r->o;
        buf_puts(b, "{\"grade\":");
        json_put_str_or_null(b, ent->grade >= 0 ? g->bands[ent->grade].grade : NULL);
        buf_puts(b, ",\"score\":");
        out_num(b, score_official(e, ent));
        buf_puts(b, ",\"static\":");
        out_num(b, score_static_capped(e, ent));
        buf_puts(b, ",\"dynamic\":");
        if (o && o->dyn_time != TIME_UNSET)
                out_num(b, o->dyn);
        else
                buf_puts(b, "null");
        buf_puts(b, ",\"dynamic_ts\":");
        out_time_or_null(b, o ? o->dyn_time : TIME_UNSET);
        buf_puts(b, ",\"dynamic_rule_id\":");
        json_put_str_or_null(b, o && o->dyn_rule >= 0 ? e->rs->rules[o->dyn_rule].id : NULL);
        buf_puts(b, ",\"provisional\":");
        buf_puts(b, o && o->provisional ? "true" : "false");
        buf_puts(b, ",\"cycle_start\":");
        out_time_or_null(b, o ? o->cycle : TIME_UNSET);
        buf_puts(b, ",\"cycle_end\":");
        out_time_or_null(b, o && o->cycle != TIME_UNSET ? score_cycle_next(&g->official, o->cycle) : TIME_UNSET);
        buf_puts(b, ",\"assessed\":");
        json_put_str_or_null(b, o && o->assessed >= 0 ? g->bands[o->assessed].grade : NULL);
        buf_puts(b, ",\"carried\":");
        buf_put_i64(b, o ? o->carry : 0);
        buf_puts(b, ",\"raise\":");
        buf_put_i64(b, o ? o->raise : 0);
        buf_puts(b, ",\"lower\":");
        buf_put_i64(b, o ? o->lower : 0);
        buf_puts(b, ",\"basis\":");
        if (o && o->basis >= 0) {
                const Rule *r = &e->rs->rules[o->basis];
                buf_puts(b, "{\"rule_id\":");
                json_put_str_or_null(b, r->id);
                buf_puts(b, ",\"ts\":");
                out_time_or_null(b, o->basis_time);
                buf_puts(b, ",\"basis\":");
                json_put_str_or_null(b, r->basis);
                buf_putc(b, '}');
        } else {
                buf_puts(b, "null");
        }
        buf_putc(b, '}');
}

void out_adjustment(Engine *e, Ent *ent, int64_t t, GradeCause cause, const char *cause_id,
                    size_t cause_len, int16_t pg, int16_t pm, double pf, bool first, int32_t band,
                    double score, int16_t pheld)
{
        e->st.adjustments++;
        const Grading *g = &e->rs->grading;
        uint64_t h = hash64(ent_key(ent)->s, ent_key(ent)->len + 1, HASH64_INIT);
        h = hash64(&t, sizeof(t), h);
        int64_t k[] = {cause, pg, pm, ent->grade, ent->mode};
        h = hash64(k, sizeof(k), h);
        h = hash64(&pf, sizeof(pf), h);
        h = hash64(&ent->per_year, sizeof(double), h);
        if (cause == CAUSE_RELOAD) {
                /* two reloads at one watermark give two adjustments of the
                 * same grades: the rules they moved between, and the score,
                 * tell them apart (a consumer that keeps the first of an id
                 * would otherwise keep the first reload's score) */
                h = hash64(e->reload_from, strlen(e->reload_from), h);
                h = hash64(e->rs->version, strlen(e->rs->version), h);
                h = hash64(&score, sizeof(score), h);
        }
        if (g->official.declared) { /* an index band's move is an adjustment too */
                int64_t ib[] = {pheld, ent->held};
                h = hash64(ib, sizeof(ib), h);
        }
        /* state, whether or not the document is written (the id is what
         * the history names the adjustment by) */
        grade_history_add(e, ent, t, cause, h);
        if (!e->emit)
                return;
        Buf *b = &e->out;
        b->len = 0;
        /* the official model changes what current follows and when an
         * adjustment is emitted: version 2 (docs/outputs.md §2.1) */
        buf_puts(b, g->official.declared ? "{\"schema\":\"riskd.adjustment/2\",\"adjustment_id\":"
                                         : "{\"schema\":\"riskd.adjustment/1\",\"adjustment_id\":");
        out_hex_id(b, h);
        buf_puts(b, ",\"enterprise_id\":");
        buf_json_str(b, ent_key(ent)->s, ent_key(ent)->len);
        buf_puts(b, ",\"ts\":");
        out_time(b, t);
        buf_puts(b, ",\"cause\":\"");
        buf_puts(b, engine_cause_names[cause]);
        buf_puts(b, "\",\"cause_event_id\":");
        if (cause_id && (cause == CAUSE_EVENT || cause == CAUSE_PROFILE || cause == CAUSE_TIMER))
                buf_json_str(b, cause_id, cause_len);
        else
                buf_puts(b, "null");
        buf_puts(b, ",\"previous\":");
        if (first)
                buf_puts(b, "null");
        else
                out_grading_json(e, b, pg, pm, pf);
        buf_puts(b, ",\"current\":");
        out_grading_json(e, b, ent->grade, ent->mode, ent->per_year);
        out_score_json(e, b, ent, score, band);
        buf_puts(b, ",\"contributions\":");
        out_contributions_json(e, b, ent, t, false);
        buf_puts(b, ",\"flags\":");
        out_flags_json(e, b, ent, t);
        buf_puts(b, ",\"rectify_deadline\":");
        int64_t rd = rectify_deadline(ent, t);
        if (rd != TIME_UNSET)
                out_time(b, rd);
        else
                buf_puts(b, "null");
        if (g->official.declared) {
                /* which of the two scores moved, and each as it is now */
                bool off = first || pg != ent->grade || pm != ent->mode || pf != ent->per_year;
                bool idx = first || pheld != ent->held;
                buf_puts(b, ",\"changed\":[");
                buf_puts(b, off ? "\"official\"" : "");
                buf_puts(b, off && idx ? ",\"index\"" : idx ? "\"index\"" : "");
                buf_puts(b, "],");
                out_official_index(e, b, ent, score);
                buf_puts(b, ",\"previous_band\":");
                json_put_str_or_null(b, !first && pheld >= 0 ? g->bands[pheld].grade : NULL);
                buf_putc(b, '}');
        }
        buf_puts(b, ",\"rules_version\":\"");
        buf_puts(b, e->rs->version);
        if (cause == CAUSE_RELOAD) { /* and the rules it replaced */
                buf_puts(b, "\",\"rules_version_before\":\"");
                buf_puts(b, e->reload_from);
        }
        buf_puts(b, "\"}");
        OutMeta m = {.enterprise = ent_key(ent)->s, .enterprise_len = ent_key(ent)->len,
                     .grade_from = first ? NULL : g->bands[pg].grade,
                     .grade_to = g->bands[ent->grade].grade};
        e->emit(e->ud, OUT_ADJUSTMENT, b->p, b->len, &m);
}
