/*
 * The event stream of the query API (api.c has the view and the routes):
 * GET /v1/events, Server-Sent Events of the documents of each batch.
 *
 * The stream: the outputs of each batch once its transaction committed
 * (api_committed, from flight_done: never an uncommitted one), one event
 * each, of the type API_KINDS gives its topic; numbered, the last
 * API_HISTORY kept for a client resuming with Last-Event-ID.  Each client
 * has a bounded buffer (http_events_buffer, httpd_stream): one that falls
 * that far behind is dropped and counted, the loop never waits for it.  A
 * client resuming is sent the history after its id as its buffer has room
 * (api_pump), then live; if the history rolls past it first, it gets a
 * reset event.
 */
#include <stdio.h>
#include <string.h>

#include "src/daemon/api_int.h"

/* What the stream carries: the topic's documents as events of this type.
 * A new kind of document (alert states) is one more line. */
static const struct {
        size_t topic; /* offsetof(Config, topics.X) */
        const char *event;
} api_kinds[] = {
        {offsetof(Config, topics.alerts), "alert"},
        {offsetof(Config, topics.adjustments), "adjustment"},
        {offsetof(Config, topics.alert_states), "alert_state"},
};
#define API_NKINDS (sizeof(api_kinds) / sizeof(api_kinds[0]))

/* ---- the event stream ---- */

/* The history's event seq, NULL: not kept (any more). */
static const ApiEvent *hist_at(const Api *a, uint64_t seq)
{
        if (!a->hn || seq > a->seq || seq + a->hn <= a->seq)
                return NULL;
        uint64_t back = a->seq - seq; /* 0: the newest */
        return &a->hist[(a->hhead + a->hn - 1 - back) % API_HISTORY];
}

static void hist_push(Api *a, uint32_t kind, const char *frame, size_t len)
{
        while (a->hn && (a->hn == API_HISTORY || a->hbytes + len > API_HISTORY_BYTES)) {
                ApiEvent *old = &a->hist[a->hhead];
                a->hbytes -= old->len;
                free(old->data);
                old->data = NULL;
                a->hhead = (a->hhead + 1) % API_HISTORY;
                a->hn--;
        }
        ApiEvent *e = &a->hist[(a->hhead + a->hn) % API_HISTORY];
        e->seq = a->seq;
        e->kind = kind;
        e->data = xmalloc(len);
        memcpy(e->data, frame, len);
        e->len = len;
        a->hbytes += len;
        a->hn++;
}

/* Client i goes: its stream closed (dropped: cut at once), the last one
 * takes its place. */
static void client_drop(Api *a, uint32_t i, bool dropped)
{
        httpd_stream_close(a->clients[i].s, dropped);
        a->clients[i] = a->clients[--a->nclients];
        prom_set(a->clients_g, a->nclients);
}

/* Queues frame to client i: false when it went (gone, or dropped: its
 * buffer is full). */
static bool client_send(Loop *l, uint32_t i, const char *frame, size_t len)
{
        Api *a = l->api;
        int r = httpd_stream_send(a->clients[i].s, frame, len);
        if (r == 0) {
                prom_add(a->sent, 1);
                return true;
        }
        if (r == -ENOBUFS) {
                prom_add(a->dropped, 1);
                if (log_limit_pass(&a->ll_drop, LOG_PRIO_INFO, "slow event clients dropped"))
                        log_info("http: a GET /v1/events client fell %llu bytes behind "
                                 "(http_events_buffer): dropped",
                                 (unsigned long long)l->cfg->http_events_buffer);
        }
        client_drop(a, i, r == -ENOBUFS);
        return false;
}

static void reset_frame(Buf *f, const char *last, const char *why)
{
        buf_printf(f, "event: reset\ndata: {\"last_event_id\":");
        buf_json_str(f, last, strlen(last));
        buf_puts(f, ",\"reason\":\"");
        buf_puts(f, why);
        buf_puts(f, "\"}\n\n");
}

void api_pump(Loop *l)
{
        Api *a = l->api;
        if (!a)
                return;
        for (uint32_t c = 0; c < a->nclients; c++) {
                ApiClient *cl = &a->clients[c];
                while (cl->next && cl->next <= a->seq) {
                        const ApiEvent *e = hist_at(a, cl->next);
                        if (!e) { /* the history rolled past it: it starts again from a reset */
                                char last[48];
                                snprintf(last, sizeof(last), "%llx-%llu", (unsigned long long)a->boot,
                                         (unsigned long long)(cl->next - 1));
                                Buf f = {0};
                                reset_frame(&f, last, "the events after it are no longer kept");
                                int r = httpd_stream_send(cl->s, f.p, f.len);
                                buf_free(&f);
                                if (r == -ENOBUFS)
                                        break;
                                prom_add(a->reset, 1);
                                cl->next = 0;
                                break;
                        }
                        if (cl->kinds & (1u << e->kind)) {
                                int r = httpd_stream_send(cl->s, e->data, e->len);
                                if (r == -ENOBUFS)
                                        break; /* woken when it has room */
                                if (r == 0)
                                        prom_add(a->sent, 1);
                        }
                        cl->next++;
                }
                if (cl->next > a->seq)
                        cl->next = 0;
        }
        for (uint32_t c = 0; c < a->nclients;)
                if (httpd_stream_gone(a->clients[c].s))
                        client_drop(a, c, false);
                else
                        c++;
}

void api_committed(Loop *l, const Batch *b)
{
        Api *a = l->api;
        if (!a)
                return;
        Buf f = {0};
        for (uint32_t i = 0; i < b->nrecs; i++) {
                const Rec *r = &b->recs[i];
                if (r->kind != REC_OUTPUT || !r->has_val)
                        continue;
                uint32_t k = 0;
                while (k < API_NKINDS && *(char *const *)((const char *)l->cfg + api_kinds[k].topic) != r->topic)
                        k++;
                if (k == API_NKINDS)
                        continue;
                const char *doc = b->arena.p + r->val;
                size_t len = r->vlen;
                while (len && (doc[len - 1] == '\n' || doc[len - 1] == '\r'))
                        len--;
                a->seq++;
                f.len = 0;
                buf_printf(&f, "id: %llx-%llu\nevent: %s\ndata: ", (unsigned long long)a->boot,
                           (unsigned long long)a->seq, api_kinds[k].event);
                buf_put(&f, doc, len);
                buf_puts(&f, "\n\n");
                hist_push(a, k, f.p, f.len);
                for (uint32_t c = 0; c < a->nclients;)
                        if (a->clients[c].next || !(a->clients[c].kinds & (1u << k)) ||
                            client_send(l, c, f.p, f.len))
                                c++;
        }
        api_pump(l);
        buf_free(&f);
}

unsigned api_events_get(Loop *l, HttpReq *req)
{
        static const char *const known[] = {"types", "last_event_id", NULL};
        if (api_args_check(req, known, "/v1/events"))
                return 400;
        Api *a = l->api;
        uint32_t kinds = 0;
        const char *types = api_arg(req, "types");
        if (types) {
                for (uint32_t k = 0; k < API_NKINDS; k++)
                        if (api_in_list(types, api_kinds[k].event))
                                kinds |= 1u << k;
                if (!kinds) {
                        const char *names[API_NKINDS + 1] = {NULL};
                        for (uint32_t k = 0; k < API_NKINDS; k++)
                                names[k] = api_kinds[k].event;
                        return api_known_or_400(req, "types", types, names);
                }
        } else
                kinds = (1u << API_NKINDS) - 1;
        const char *last = httpd_header(req, "Last-Event-ID");
        if (!last)
                last = api_arg(req, "last_event_id");
        HttpStream *s = httpd_stream(req, "text/event-stream; charset=utf-8", (size_t)l->cfg->http_events_buffer);
        if (a->nclients == a->cclients) {
                a->cclients = a->cclients ? 2 * a->cclients : 8;
                a->clients = xrealloc(a->clients, a->cclients * sizeof(ApiClient));
        }
        a->clients[a->nclients++] = (ApiClient){s, kinds, 0};
        prom_set(a->clients_g, a->nclients);
        uint32_t me = a->nclients - 1;
        Buf f = {0};
        buf_puts(&f, ": riskd events (docs/outputs.md section 9)\nretry: 2000\n\n");
        if (last && *last) {
                /* resumed from what the history holds after it, or told it cannot be */
                unsigned long long boot = 0, seq = 0;
                char tail;
                bool ours = sscanf(last, "%llx-%llu%c", &boot, &seq, &tail) == 2 && boot == a->boot && seq <= a->seq;
                if (ours && (seq == a->seq || hist_at(a, seq + 1))) {
                        if (client_send(l, me, f.p, f.len) && seq < a->seq) {
                                a->clients[me].next = seq + 1;
                                api_pump(l);
                        }
                        buf_free(&f);
                        return 200;
                }
                prom_add(a->reset, 1);
                reset_frame(&f, last, ours ? "the events after it are no longer kept"
                                           : "not an id of this riskd process (restarted, or another instance)");
        }
        client_send(l, me, f.p, f.len);
        buf_free(&f);
        return 200;
}

