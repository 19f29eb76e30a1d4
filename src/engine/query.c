/*
 * The query API's view of an Engine (engine.h: engine_rows,
 * engine_open_alerts_json): read only, every enterprise as one row.  An
 * open alert is one of the alert lifecycle (alerts.c, docs/outputs.md §10)
 * not yet closed: open, or escalated once its rectify deadline passed.
 */
#include <string.h>

#include "src/engine/engine.h"
#include "src/util/json.h"

/* How many of x's open alerts are escalated (overdue rectifications). */
static uint32_t escalated_alerts(const Ent *x)
{
        uint32_t n = 0;
        for (uint32_t i = 0; i < x->r->na; i++)
                n += x->r->a[i].state == ALERT_ESCALATED;
        return n;
}

/* A field kept for the query API (Plan.region_pi, category_pi) as text: a
 * string, or an enum's value with its label; NULL when absent. */
static void kept_field(const Engine *e, const Ent *x, int32_t pi, const char **s, size_t *len, const char **label)
{
        *s = *label = NULL;
        *len = 0;
        if (pi < 0)
                return;
        Value v = ent_prof_get(e, x, (uint32_t)pi);
        if (v.tag == VT_STR) {
                *s = v.s.p;
                *len = v.s.len;
                return;
        }
        const EnumDef *en = e->rs->schema.slot_enum ? e->rs->schema.slot_enum[e->plan.prof_slots[pi]] : NULL;
        if (v.tag != VT_ENUM || !en || v.e < 0 || (uint32_t)v.e >= en->nvalues)
                return; /* an unknown value: none */
        *s = en->values[v.e];
        *len = strlen(*s);
        *label = en->labels ? en->labels[v.e] : NULL;
}

void engine_rows(Engine *e, EngineRowFn fn, void *ud)
{
        const Grading *g = &e->rs->grading;
        int64_t now = e->wm == TIME_UNSET ? 0 : e->wm;
        for (uint32_t i = 0; i < e->ents.tabcap; i++) {
                Ent *c = tab_ent(e, i);
                if (!c)
                        continue;
                /* a compact one read from its record, the table untouched */
                Ent *x = c->compact ? compact_decode(e, c) : c;
                EngineRow row = {
                        .id = ent_key(x)->s,
                        .id_len = ent_key(x)->len,
                        .grade = x->grade >= 0 ? g->bands[x->grade].grade : NULL,
                        .mode = x->mode >= 0 ? g->modes[x->mode] : NULL,
                        .per_year = x->per_year,
                        .score = score_of(e, x, now),
                        .flags = score_flags(x, now),
                        .open_alerts = x->r->na,
                        .escalated_alerts = escalated_alerts(x),
                };
                const char *label;
                kept_field(e, x, e->plan.region_pi, &row.region, &row.region_len, &label);
                kept_field(e, x, e->plan.category_pi, &row.category, &row.category_len, &row.category_label);
                fn(ud, &row);
                if (x != c)
                        compact_ent_free(e, x);
        }
}

uint32_t engine_open_alerts_json(Engine *e, const char *enterprise, size_t len, bool escalated_only, Buf *out)
{
        Ent *x = ent_find(e, enterprise, (uint32_t)len);
        buf_putc(out, '[');
        uint32_t n = 0;
        for (uint32_t i = 0; x && i < x->r->na; i++) {
                const OpenAlert *oa = &x->r->a[i];
                if (escalated_only && oa->state != ALERT_ESCALATED)
                        continue;
                buf_puts(out, n++ ? ",{\"enterprise_id\":" : "{\"enterprise_id\":");
                buf_json_str(out, ent_key(x)->s, ent_key(x)->len);
                buf_puts(out, ",\"severity\":");
                json_put_str_or_null(out, severity_str(e->rs->rules[oa->rule].severity));
                buf_putc(out, ',');
                out_open_alert(e, out, oa);
                buf_putc(out, '}');
        }
        buf_putc(out, ']');
        return n;
}
