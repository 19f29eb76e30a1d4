/*
 * The query API's view of an Engine (engine.h: engine_rows,
 * engine_open_alerts_json): read only, every enterprise as one row.  What
 * an "open alert" is lives in open_alert() alone: the alerts still
 * contributing points, what the explain document lists.
 */
#include <string.h>

#include "src/engine/engine.h"
#include "src/util/json.h"

/* Contribution c of x is an open alert at now. */
static bool open_alert(const Contrib *c, int64_t now)
{
        return c->expires > now;
}

static uint32_t open_alerts(const Ent *x, int64_t now)
{
        uint32_t n = 0;
        for (uint32_t i = 0; i < x->r->nc; i++)
                n += open_alert(&x->r->c[i], now);
        return n;
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
                        .open_alerts = open_alerts(x, now),
                };
                Value v = value_null();
                if (e->plan.region_pi >= 0)
                        v = ent_prof_get(e, x, (uint32_t)e->plan.region_pi);
                if (v.tag == VT_STR) {
                        row.region = v.s.p;
                        row.region_len = v.s.len;
                }
                fn(ud, &row);
                if (x != c)
                        compact_ent_free(e, x);
        }
}

uint32_t engine_open_alerts_json(Engine *e, const char *enterprise, size_t len, Buf *out)
{
        Ent *x = ent_find(e, enterprise, (uint32_t)len);
        buf_putc(out, '[');
        if (!x) {
                buf_putc(out, ']');
                return 0;
        }
        int64_t now = e->wm == TIME_UNSET ? 0 : e->wm;
        uint32_t n = 0;
        for (uint32_t i = 0; i < x->r->nc; i++) {
                const Contrib *c = &x->r->c[i];
                if (!open_alert(c, now))
                        continue;
                const Rule *r = &e->rs->rules[c->rule];
                buf_puts(out, n++ ? ",{\"enterprise_id\":" : "{\"enterprise_id\":");
                buf_json_str(out, ent_key(x)->s, ent_key(x)->len);
                buf_puts(out, ",\"rule_id\":");
                json_put_str_or_null(out, r->id);
                buf_puts(out, ",\"severity\":");
                json_put_str_or_null(out, severity_str(r->severity));
                buf_puts(out, ",\"event_id\":");
                buf_json_str(out, c->event_id->s, c->event_id->len);
                buf_puts(out, ",\"points\":");
                out_num(out, c->points);
                buf_puts(out, ",\"since\":");
                out_time(out, c->since);
                const int64_t until[2] = {c->expires, c->rectify};
                static const char *const names[2] = {",\"expires\":", ",\"rectify_deadline\":"};
                for (int k = 0; k < 2; k++) { /* never, none: null */
                        buf_puts(out, names[k]);
                        if (until[k] == TIME_FOREVER || until[k] == TIME_UNSET)
                                buf_puts(out, "null");
                        else
                                out_time(out, until[k]);
                }
                buf_putc(out, '}');
        }
        buf_putc(out, ']');
        return n;
}
