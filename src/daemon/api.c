/*
 * The query API for dashboards and the event stream (loop.c has the map;
 * docs/outputs.md §9 the documents): GET /v1/enterprises, /v1/summary,
 * /v1/alerts and /v1/events, answered on the main loop between batches
 * like the other routes (status.c hands them here, api_http).
 *
 * The view: every enterprise of every active partition as a row
 * (engine_rows), sorted by id, with an index by score.  It is built when a
 * request needs it and the state moved since the last build (a batch ended,
 * a partition came or went, a reload): at most once per batch however many
 * requests come, and a request then costs a binary search and at most
 * API_SCAN rows.  A cursor names the last row a page gave (its sort key
 * and id), not a position: the next page starts after that key in the view
 * of its own time.  So paging by id gives every enterprise that exists
 * throughout exactly once, and one that appears or goes between pages is
 * listed or not by where its id falls; paging by score, an enterprise
 * whose score moved between pages past the cursor may be listed twice or
 * not at all (docs/outputs.md §9).
 *
 * The stream (GET /v1/events) is api_stream.c; the types both share,
 * api_int.h.
 */
#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <strings.h>

#include "src/daemon/api_int.h"

/* A family of one series, without labels. */
static PromSeries *series(Prom *p, PromType type, const char *name, const char *help)
{
        return prom_series(prom_family(p, type, name, help, NULL, NULL, 0), NULL);
}

void api_init(Loop *l)
{
        Api *a = xcalloc(1, sizeof(*a));
        Prom *p = l->m.p;
        a->requests = prom_family(p, PROM_COUNTER, "riskd_api_requests_total",
                                  "Requests of the query API and the event stream, by route", "route", NULL, 0);
        a->view_builds = series(p, PROM_COUNTER, "riskd_api_view_builds_total",
                                "Times the query API's view of every enterprise was built (at most once per "
                                "batch, when a request needs it)");
        a->clients_g = series(p, PROM_GAUGE, "riskd_events_clients", "Clients connected to GET /v1/events");
        a->sent = series(p, PROM_COUNTER, "riskd_events_sent_total",
                         "Events queued to GET /v1/events clients (one per client)");
        a->dropped = series(p, PROM_COUNTER, "riskd_events_clients_dropped_total",
                            "GET /v1/events clients dropped for falling http_events_buffer behind");
        a->reset = series(p, PROM_COUNTER, "riskd_events_resume_failed_total",
                          "GET /v1/events clients whose Last-Event-ID could not be resumed (sent a reset event)");
        prom_set(a->clients_g, 0);
        a->hist = xcalloc(API_HISTORY, sizeof(ApiEvent));
        a->boot = (uint64_t)log_now_ms();
        a->ll_drop = (LogLimit)LOG_LIMIT_INIT(10000, 5);
        l->api = a;
}

/* Every stream ends (before httpd_free). */
void api_close_streams(Loop *l)
{
        Api *a = l->api;
        if (!a)
                return;
        for (uint32_t i = 0; i < a->nclients; i++)
                httpd_stream_close(a->clients[i].s, false);
        a->nclients = 0;
        prom_set(a->clients_g, 0);
}

void api_free(Loop *l)
{
        Api *a = l->api;
        if (!a)
                return;
        api_close_streams(l);
        free(a->clients);
        for (uint32_t i = 0; i < API_HISTORY; i++)
                free(a->hist[i].data);
        free(a->hist);
        free(a->rows);
        free(a->by_score);
        buf_free(&a->arena);
        for (uint32_t i = 0; i <= API_REGION_DIGITS_MAX; i++)
                buf_free(&a->summary[i]);
        free(a);
        l->api = NULL;
}

/* ---- the view ---- */

static uint32_t arena_str(Api *a, const char *s, size_t n)
{
        uint32_t off = (uint32_t)a->arena.len;
        buf_put(&a->arena, s, n);
        buf_putc(&a->arena, 0);
        return off;
}

static const char *astr(const Api *a, uint32_t off)
{
        return off == UINT32_MAX ? NULL : a->arena.p + off;
}

/* A string most rows share (a grade, a mode, a set of flags, a category):
 * one copy in the arena for the first API_NAMES of them in nc. */
static uint32_t arena_name(Api *a, NameCache *nc, const char *s, size_t n)
{
        for (uint32_t i = 0; i < nc->n; i++)
                if (strlen(astr(a, nc->off[i])) == n && memcmp(astr(a, nc->off[i]), s, n) == 0)
                        return nc->off[i];
        uint32_t off = arena_str(a, s, n);
        if (nc->n < API_NAMES)
                nc->off[nc->n++] = off;
        return off;
}

/* NaN (a score expression gone wrong) sorts lowest: the order stays total. */
static double score_key(double d)
{
        return isnan(d) ? -INFINITY : d;
}

typedef struct RowCtx {
        Loop *l;
        Api *a;
        const RuleSet *rs;
        int32_t part;
        Buf flags;               /* a row's ",flag,flag," (scratch) */
} RowCtx;

static void row_add(void *ud, const EngineRow *er)
{
        RowCtx *c = ud;
        Api *a = c->a;
        if (a->n == a->cap) {
                a->cap = a->cap ? 2 * a->cap : 1024;
                a->rows = xrealloc(a->rows, a->cap * sizeof(ApiRow));
        }
        ApiRow *r = &a->rows[a->n++];
        r->id = arena_str(a, er->id, er->id_len);
        r->id_len = (uint32_t)er->id_len;
        r->grade = er->grade ? arena_name(a, &a->names, er->grade, strlen(er->grade)) : UINT32_MAX;
        r->mode = er->mode ? arena_name(a, &a->names, er->mode, strlen(er->mode)) : UINT32_MAX;
        r->region = er->region ? arena_str(a, er->region, er->region_len) : UINT32_MAX;
        r->region_len = (uint32_t)er->region_len;
        r->category = er->category ? arena_name(a, &a->categories, er->category, er->category_len) : UINT32_MAX;
        r->category_label = er->category_label
                                    ? arena_name(a, &a->labels, er->category_label, strlen(er->category_label))
                                    : UINT32_MAX;
        c->flags.len = 0;
        buf_putc(&c->flags, ',');
        for (uint32_t f = 0; f < c->rs->nflags && f < 64; f++)
                if (er->flags & (1ull << f))
                        buf_printf(&c->flags, "%s,", c->rs->flags[f]);
        r->flags = arena_name(a, &a->names, c->flags.p, c->flags.len);
        r->open_alerts = er->open_alerts;
        r->escalated_alerts = er->escalated_alerts;
        r->part = c->part;
        r->score = er->score;
        r->per_year = er->per_year;
}

static const Api *sort_api; /* the qsort comparators' view (the main loop's only) */

static int id_cmp(const Api *a, const ApiRow *x, const char *id, size_t len)
{
        size_t n = x->id_len < len ? x->id_len : len;
        int c = memcmp(a->arena.p + x->id, id, n);
        return c ? c : (x->id_len > len) - (x->id_len < len);
}

static int row_id_cmp(const void *p, const void *q)
{
        const ApiRow *x = p, *y = q;
        return id_cmp(sort_api, x, sort_api->arena.p + y->id, y->id_len);
}

static int row_score_cmp(const void *p, const void *q)
{
        const ApiRow *x = &sort_api->rows[*(const uint32_t *)p], *y = &sort_api->rows[*(const uint32_t *)q];
        if (score_key(x->score) != score_key(y->score))
                return score_key(x->score) < score_key(y->score) ? -1 : 1;
        return id_cmp(sort_api, x, sort_api->arena.p + y->id, y->id_len);
}

/* What the view was built from: when any of it moved, the state may have. */
static void view_key(Loop *l, uint64_t key[6])
{
        key[0] = l->st.batches;
        key[1] = l->st.aborts;
        key[2] = l->st.restores;
        key[3] = l->reloads_ok;
        key[4] = loop_parts_active(l);
        key[5] = l->nparts;
}

static void view_need(Loop *l)
{
        Api *a = l->api;
        uint64_t key[6];
        view_key(l, key);
        if (a->valid && memcmp(key, a->key, sizeof(key)) == 0)
                return;
        /* not sooner after the last build than ten times what it took: a
         * tenth of the loop's time at most, however often dashboards ask
         * (the view is that much older meanwhile) */
        int64_t t0 = log_now_ms();
        if (a->valid && t0 < a->built_at + 10 * a->build_ms)
                return;
        memcpy(a->key, key, sizeof(key));
        a->n = 0;
        a->arena.len = 0;
        a->names.n = a->categories.n = a->labels.n = 0;
        RowCtx c = {l, a, NULL, 0, {0}};
        for (uint32_t p = 0; p < l->nparts; p++) {
                Part *pt = l->parts[p];
                if (!pt || pt->state != PART_ACTIVE)
                        continue;
                c.rs = engine_rules(pt->e);
                c.part = pt->id;
                engine_rows(pt->e, row_add, &c);
        }
        buf_free(&c.flags);
        sort_api = a;
        xsort(a->rows, a->n, sizeof(ApiRow), row_id_cmp);
        a->by_score = xrealloc(a->by_score, (a->n + 1) * sizeof(uint32_t));
        for (uint32_t i = 0; i < a->n; i++)
                a->by_score[i] = i;
        xsort(a->by_score, a->n, sizeof(uint32_t), row_score_cmp);
        sort_api = NULL;
        for (uint32_t i = 0; i <= API_REGION_DIGITS_MAX; i++)
                a->summary[i].len = 0;
        a->valid = true;
        a->built_at = log_now_ms();
        a->build_ms = a->built_at - t0;
        prom_add(a->view_builds, 1);
}

/* ---- requests ---- */

typedef enum { SORT_ID, SORT_SCORE, SORT_SCORE_DESC } SortBy;
static const char *const sort_names[] = {"id", "score", "-score"};

/* v is one of known (NULL-terminated); else 400 answered: "WHAT 'v' is
 * not known (known: ...)". */
int api_known_or_400(HttpReq *req, const char *what, const char *v, const char *const *known)
{
        for (const char *const *p = known; *p; p++)
                if (strcmp(*p, v) == 0)
                        return 0;
        Buf m = {0};
        buf_printf(&m, "%s '%s' is not known (known:", what, v);
        for (const char *const *p = known; *p; p++)
                buf_printf(&m, " %s", *p);
        buf_puts(&m, ")");
        httpd_error(req, 400, m.p);
        buf_free(&m);
        return 400;
}

/* A query's arguments are all known: 0, or 400 answered naming them. */
int api_args_check(HttpReq *req, const char *const *known, const char *route)
{
        const char *k, *v;
        char what[64];
        snprintf(what, sizeof(what), "the argument of %s", route);
        for (unsigned i = 0; httpd_arg(req, i, &k, &v); i++)
                if (api_known_or_400(req, what, k, known))
                        return 400;
        return 0;
}

const char *api_arg(HttpReq *req, const char *name)
{
        const char *k, *v;
        for (unsigned i = 0; httpd_arg(req, i, &k, &v); i++)
                if (strcmp(k, name) == 0)
                        return v;
        return NULL;
}

/* limit=N: 1 .. API_LIMIT_MAX; -1 bad. */
static int limit_arg(HttpReq *req)
{
        const char *s = api_arg(req, "limit");
        if (!s)
                return API_LIMIT_DEFAULT;
        char *end;
        long n = strtol(s, &end, 10);
        if (!*s || *end || n < 1 || n > API_LIMIT_MAX)
                return -1;
        return (int)n;
}

/* The cursor: hex of "SORT\nSCORE\nID" (opaque to clients). */
static void cursor_put(Buf *b, SortBy sort, const Api *a, const ApiRow *r)
{
        Buf raw = {0};
        buf_printf(&raw, "%s\n%.17g\n", sort_names[sort], score_key(r->score));
        buf_put(&raw, a->arena.p + r->id, r->id_len);
        buf_putc(b, '"');
        for (size_t i = 0; i < raw.len; i++)
                buf_printf(b, "%02x", (unsigned char)raw.p[i]);
        buf_putc(b, '"');
        buf_free(&raw);
}

/* 0, or -1: not a cursor of this sort. */
static int cursor_get(const char *hex, SortBy sort, double *score, Buf *id)
{
        size_t n = strlen(hex);
        if (n % 2 || n > 4096)
                return -1;
        Buf raw = {0};
        for (size_t i = 0; i < n; i += 2) {
                unsigned v;
                if (sscanf(hex + i, "%2x", &v) != 1 || !isxdigit((unsigned char)hex[i]) ||
                    !isxdigit((unsigned char)hex[i + 1])) {
                        buf_free(&raw);
                        return -1;
                }
                buf_putc(&raw, (char)v);
        }
        buf_putc(&raw, 0);
        char *p = raw.p, *nl1 = strchr(p, '\n'), *nl2 = nl1 ? strchr(nl1 + 1, '\n') : NULL;
        int ret = -1;
        if (nl2 && (size_t)(nl1 - p) == strlen(sort_names[sort]) && strncmp(p, sort_names[sort], (size_t)(nl1 - p)) == 0) {
                char *end;
                *nl2 = 0;
                *score = strtod(nl1 + 1, &end);
                if (end == nl2 && !isnan(*score)) {
                        buf_put(id, nl2 + 1, raw.len - 1 - (size_t)(nl2 + 1 - p));
                        ret = 0;
                }
        }
        buf_free(&raw);
        return ret;
}

/* The first position of order sort after the cursor's key. */
static uint32_t page_start(const Api *a, SortBy sort, double score, const char *id, size_t idlen)
{
        uint32_t lo = 0, hi = a->n;
        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                const ApiRow *r = sort == SORT_ID ? &a->rows[mid]
                                  : &a->rows[a->by_score[sort == SORT_SCORE ? mid : a->n - 1 - mid]];
                int c;
                if (sort == SORT_ID || score_key(r->score) == score)
                        c = id_cmp(a, r, id, idlen);
                else
                        c = score_key(r->score) < score ? -1 : 1;
                if (sort == SORT_SCORE_DESC)
                        c = -c;
                if (c <= 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static const ApiRow *row_at(const Api *a, SortBy sort, uint32_t i)
{
        return sort == SORT_ID      ? &a->rows[i]
               : sort == SORT_SCORE ? &a->rows[a->by_score[i]]
                                    : &a->rows[a->by_score[a->n - 1 - i]];
}

/* v is one of the comma-separated names of list. */
bool api_in_list(const char *list, const char *v)
{
        if (!v)
                return false;
        size_t n = strlen(v);
        for (const char *p = list; *p;) {
                const char *e = strchr(p, ',');
                size_t k = e ? (size_t)(e - p) : strlen(p);
                if (k == n && memcmp(p, v, n) == 0)
                        return true;
                p += k + (e ? 1 : 0);
        }
        return false;
}

typedef struct Filter {
        const char *grade, *mode, *region, *flag;
        int open;                 /* -1 any, 0 none open, 1 some open */
} Filter;

static bool row_match(const Api *a, const ApiRow *r, const Filter *f)
{
        if (f->grade && !api_in_list(f->grade, astr(a, r->grade)))
                return false;
        if (f->mode && !api_in_list(f->mode, astr(a, r->mode)))
                return false;
        if (f->region) {
                size_t n = strlen(f->region);
                if (r->region == UINT32_MAX || r->region_len < n || memcmp(astr(a, r->region), f->region, n) != 0)
                        return false;
        }
        if (f->flag) {
                char pat[256];
                snprintf(pat, sizeof(pat), ",%s,", f->flag);
                if (!strstr(astr(a, r->flags), pat))
                        return false;
        }
        if (f->open >= 0 && (r->open_alerts > 0) != (f->open > 0))
                return false;
        return true;
}

static void str_or_null(Buf *b, const char *s, size_t n)
{
        if (s)
                buf_json_str(b, s, n);
        else
                buf_puts(b, "null");
}

static void num(Buf *b, double d)
{
        if (!isfinite(d))
                buf_puts(b, "null");
        else if (fabs(d) < 1e15 && d == (double)(int64_t)d)
                buf_printf(b, "%lld", (long long)d);
        else
                buf_printf(b, "%.17g", d);
}

static void row_json(const Api *a, const ApiRow *r, Buf *b)
{
        buf_puts(b, "{\"enterprise_id\":");
        buf_json_str(b, a->arena.p + r->id, r->id_len);
        buf_puts(b, ",\"grade\":");
        str_or_null(b, astr(a, r->grade), r->grade == UINT32_MAX ? 0 : strlen(astr(a, r->grade)));
        buf_puts(b, ",\"mode\":");
        str_or_null(b, astr(a, r->mode), r->mode == UINT32_MAX ? 0 : strlen(astr(a, r->mode)));
        buf_puts(b, ",\"inspections_per_year\":");
        num(b, r->per_year);
        buf_puts(b, ",\"score\":");
        num(b, r->score);
        buf_puts(b, ",\"region\":");
        str_or_null(b, astr(a, r->region), r->region_len);
        buf_puts(b, ",\"category\":");
        str_or_null(b, astr(a, r->category), r->category == UINT32_MAX ? 0 : strlen(astr(a, r->category)));
        buf_puts(b, ",\"flags\":[");
        const char *f = astr(a, r->flags) + 1;
        for (bool first = true; *f; first = false) {
                const char *e = strchr(f, ',');
                if (!first)
                        buf_putc(b, ',');
                buf_json_str(b, f, (size_t)(e - f));
                f = e + 1;
        }
        buf_printf(b, "],\"open_alerts\":%u,\"partition\":%d}", r->open_alerts, r->part);
}

/* The paging shared by /v1/enterprises and /v1/alerts: the view, the
 * limit, and where the cursor puts the page's start in order sort; 0, or
 * 400 answered. */
static int page_open(Loop *l, HttpReq *req, SortBy sort, int *limit, uint32_t *start, Buf *b, const char *head)
{
        *limit = limit_arg(req);
        if (*limit < 0) {
                httpd_error(req, 400, "limit: an integer from 1 to 1000");
                return 400;
        }
        view_need(l);
        const Api *a = l->api;
        const char *cur = api_arg(req, "cursor");
        *start = 0;
        if (cur && *cur) {
                double score = 0;
                Buf id = {0};
                if (cursor_get(cur, sort, &score, &id) < 0) {
                        buf_free(&id);
                        httpd_error(req, 400, "bad cursor (give next_cursor of the last page, with the same sort)");
                        return 400;
                }
                *start = page_start(a, sort, score, id.p ? id.p : "", id.len);
                buf_free(&id);
        }
        buf_puts(b, head);
        return 0;
}

/* The end of a page that stopped at position i, its last row looked at
 * last: the cursor after it, null at the end. */
static unsigned page_close(Buf *b, const Api *a, SortBy sort, uint32_t i, const ApiRow *last)
{
        buf_puts(b, "],\"next_cursor\":");
        if (i < a->n && last)
                cursor_put(b, sort, a, last);
        else
                buf_puts(b, "null");
        buf_puts(b, "}\n");
        return 200;
}

static unsigned enterprises_get(Loop *l, HttpReq *req, Buf *b)
{
        static const char *const known[] = {"limit", "cursor", "sort", "grade", "mode", "region", "flag",
                                            "has_open_alerts", NULL};
        if (api_args_check(req, known, "/v1/enterprises"))
                return 400;
        const char *s = api_arg(req, "sort");
        SortBy sort = SORT_ID;
        if (s && strcmp(s, "score") == 0)
                sort = SORT_SCORE;
        else if (s && strcmp(s, "-score") == 0)
                sort = SORT_SCORE_DESC;
        else if (s && strcmp(s, "id") != 0) {
                httpd_error(req, 400, "sort: id, score or -score");
                return 400;
        }
        Filter f = {api_arg(req, "grade"), api_arg(req, "mode"), api_arg(req, "region"), api_arg(req, "flag"), -1};
        const char *open = api_arg(req, "has_open_alerts");
        if (open) {
                if (strcmp(open, "true") == 0)
                        f.open = 1;
                else if (strcmp(open, "false") == 0)
                        f.open = 0;
                else {
                        httpd_error(req, 400, "has_open_alerts: true or false");
                        return 400;
                }
        }
        char head[96];
        snprintf(head, sizeof(head), "{\"schema\":\"riskd.enterprises/1\",\"sort\":\"%s\",\"enterprises\":[",
                 sort_names[sort]);
        int limit;
        uint32_t i;
        if (page_open(l, req, sort, &limit, &i, b, head))
                return 400;
        const Api *a = l->api;
        uint32_t got = 0, scanned = 0;
        const ApiRow *last = NULL;
        for (; i < a->n && got < (uint32_t)limit && scanned < API_SCAN; i++, scanned++) {
                const ApiRow *r = row_at(a, sort, i);
                last = r;
                if (!row_match(a, r, &f))
                        continue;
                if (got++)
                        buf_putc(b, ',');
                row_json(a, r, b);
        }
        return page_close(b, a, sort, i, last);
}

/* open: every alert not closed (open or escalated); escalated: those whose
 * rectify deadline passed unmet, the overdue rectifications */
static const char *const alert_states[] = {"open", "escalated", NULL};

static unsigned alerts_get(Loop *l, HttpReq *req, Buf *b)
{
        static const char *const known[] = {"state", "limit", "cursor", NULL};
        if (api_args_check(req, known, "/v1/alerts"))
                return 400;
        const char *st = api_arg(req, "state");
        if (!st)
                st = "open";
        if (api_known_or_400(req, "state", st, alert_states))
                return 400;
        /* whole enterprises: a page may pass limit by one enterprise's */
        int limit;
        uint32_t i;
        bool escalated = strcmp(st, "escalated") == 0;
        if (page_open(l, req, SORT_ID, &limit, &i, b,
                      escalated ? "{\"schema\":\"riskd.alerts/1\",\"state\":\"escalated\",\"alerts\":["
                                : "{\"schema\":\"riskd.alerts/1\",\"state\":\"open\",\"alerts\":["))
                return 400;
        const Api *a = l->api;
        uint32_t got = 0, scanned = 0;
        const ApiRow *last = NULL;
        Buf one = {0};
        for (; i < a->n && got < (uint32_t)limit && scanned < API_SCAN; i++, scanned++) {
                const ApiRow *r = &a->rows[i];
                last = r;
                if (!(escalated ? r->escalated_alerts : r->open_alerts))
                        continue;
                Part *pt = loop_part(l, r->part);
                if (!pt || pt->state != PART_ACTIVE)
                        continue;
                one.len = 0;
                uint32_t n = engine_open_alerts_json(pt->e, a->arena.p + r->id, r->id_len, escalated, &one);
                if (!n)
                        continue;
                if (got)
                        buf_putc(b, ',');
                buf_put(b, one.p + 1, one.len - 2); /* the array's items */
                got += n;
        }
        buf_free(&one);
        return page_close(b, a, SORT_ID, i, last);
}

/* A key of the summary, one per enterprise: sorted, then counted by runs
 * (O(n log n) however many keys: counties are thousands).  by_region and
 * by_category count each key's enterprises by grade too: sorted by key,
 * then grade, a key's run holds its grades' runs. */
typedef struct Count {
        const char *name;        /* NULL: none */
        size_t len;
        const char *grade;       /* NULL: not graded (or not counted by grade) */
        const char *label;       /* the key's text for people, NULL none */
} Count;

static int key_cmp(const char *x, size_t xl, const char *y, size_t yl)
{
        if (!x || !y)
                return (x == NULL) - (y == NULL); /* null last */
        size_t n = xl < yl ? xl : yl;
        int c = memcmp(x, y, n);
        return c ? c : (xl > yl) - (xl < yl);
}

static int count_cmp(const void *p, const void *q)
{
        const Count *x = p, *y = q;
        int c = key_cmp(x->name, x->len, y->name, y->len);
        return c ? c : key_cmp(x->grade, x->grade ? strlen(x->grade) : 0, y->grade, y->grade ? strlen(y->grade) : 0);
}

/* The counts of v by key, sorted: [{"key","count"}], with "by_grade":
 * {"A":n,...} (the graded ones) when by_grade, and "label" when labels. */
static void counts_json(Buf *b, Count *v, uint32_t n, bool by_grade, bool labels)
{
        xsort(v, n, sizeof(Count), count_cmp);
        buf_putc(b, '[');
        for (uint32_t i = 0, j; i < n; i = j) {
                for (j = i + 1; j < n && key_cmp(v[i].name, v[i].len, v[j].name, v[j].len) == 0;)
                        j++;
                buf_puts(b, i ? ",{\"key\":" : "{\"key\":");
                str_or_null(b, v[i].name, v[i].len);
                if (labels) {
                        buf_puts(b, ",\"label\":");
                        str_or_null(b, v[i].label, v[i].label ? strlen(v[i].label) : 0);
                }
                buf_printf(b, ",\"count\":%u", j - i);
                if (by_grade) {
                        buf_puts(b, ",\"by_grade\":{");
                        for (uint32_t k = i, m; k < j; k = m) {
                                for (m = k + 1; m < j && count_cmp(&v[k], &v[m]) == 0;)
                                        m++;
                                if (!v[k].grade)
                                        continue; /* null last: the key's ungraded */
                                if (k > i)
                                        buf_putc(b, ',');
                                buf_json_str(b, v[k].grade, strlen(v[k].grade));
                                buf_printf(b, ":%u", m - k);
                        }
                        buf_putc(b, '}');
                }
                buf_putc(b, '}');
        }
        buf_putc(b, ']');
}

static unsigned summary_get(Loop *l, HttpReq *req, Buf *b)
{
        static const char *const known[] = {"region_digits", NULL};
        if (api_args_check(req, known, "/v1/summary"))
                return 400;
        const char *rd = api_arg(req, "region_digits");
        long digits = 2;
        if (rd) {
                char *end;
                digits = strtol(rd, &end, 10);
                if (!*rd || *end || digits < 1 || digits > API_REGION_DIGITS_MAX) {
                        httpd_error(req, 400, "region_digits: an integer from 1 to 12");
                        return 400;
                }
        }
        view_need(l);
        Api *a = l->api;
        Buf *s = &a->summary[digits];
        if (!s->len) { /* once per view and region_digits */
                Count *g = xmalloc((a->n + 1) * sizeof(Count)), *m = xmalloc((a->n + 1) * sizeof(Count)),
                      *r = xmalloc((a->n + 1) * sizeof(Count)), *c = xmalloc((a->n + 1) * sizeof(Count));
                uint64_t open = 0, with_open = 0, escalated = 0, with_escalated = 0;
                for (uint32_t i = 0; i < a->n; i++) {
                        const ApiRow *x = &a->rows[i];
                        const char *gs = astr(a, x->grade), *ms = astr(a, x->mode), *rs = astr(a, x->region),
                                   *cs = astr(a, x->category);
                        g[i] = (Count){gs, gs ? strlen(gs) : 0, NULL, NULL};
                        m[i] = (Count){ms, ms ? strlen(ms) : 0, NULL, NULL};
                        r[i] = (Count){rs, x->region_len < (size_t)digits ? x->region_len : (size_t)digits, gs, NULL};
                        c[i] = (Count){cs, cs ? strlen(cs) : 0, gs, astr(a, x->category_label)};
                        open += x->open_alerts;
                        with_open += x->open_alerts > 0;
                        escalated += x->escalated_alerts;
                        with_escalated += x->escalated_alerts > 0;
                }
                buf_printf(s, "{\"schema\":\"riskd.summary/1\",\"enterprises\":%u,\"region_digits\":%ld,"
                              "\"by_grade\":", a->n, digits);
                counts_json(s, g, a->n, false, false);
                buf_puts(s, ",\"by_mode\":");
                counts_json(s, m, a->n, false, false);
                buf_puts(s, ",\"by_region\":");
                counts_json(s, r, a->n, true, false);
                buf_puts(s, ",\"by_category\":");
                counts_json(s, c, a->n, true, true);
                buf_printf(s,
                           ",\"open_alerts\":%llu,\"enterprises_with_open_alerts\":%llu,\"escalated_alerts\":%llu,"
                           "\"enterprises_with_escalated_alerts\":%llu}\n",
                           (unsigned long long)open, (unsigned long long)with_open, (unsigned long long)escalated,
                           (unsigned long long)with_escalated);
                free(g);
                free(m);
                free(r);
                free(c);
        }
        buf_put(b, s->p, s->len);
        return 200;
}

/* ---- routing ---- */

static const struct {
        const char *path;
        unsigned (*get)(Loop *l, HttpReq *req, Buf *b);
} api_routes[] = {
        {"/v1/enterprises", enterprises_get},
        {"/v1/summary", summary_get},
        {"/v1/alerts", alerts_get},
};

bool api_http(Loop *l, HttpReq *req, unsigned *status)
{
        const char *path = httpd_path(req), *method = httpd_method(req);
        bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
        bool events = strcmp(path, "/v1/events") == 0;
        uint32_t k = 0;
        while (k < ARRAY_SIZE(api_routes) && strcmp(path, api_routes[k].path) != 0)
                k++;
        if (!events && k == ARRAY_SIZE(api_routes))
                return false;
        prom_add(prom_series1(l->api->requests, path), 1);
        if (!get) {
                *status = 405;
                httpd_error(req, 405, "method not allowed");
                return true;
        }
        if (events) {
                *status = api_events_get(l, req);
                return true;
        }
        Buf b = {0};
        *status = api_routes[k].get(l, req, &b);
        if (*status == 200)
                httpd_respond(req, 200, "application/json", b.p, b.len);
        buf_free(&b);
        return true;
}
