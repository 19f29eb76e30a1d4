/*
 * Status (loop.c has the map): the metrics (/metrics) and the HTTP routes.
 */
#include "src/daemon/console.h"
#include "src/daemon/loop_int.h"
#include "src/daemon/memstats.h"

/* What a 404 names (riskd(8), HTTP) */
#define HTTP_ROUTES                                                                                         \
        "/metrics, /healthz, /readyz, /v1/rules, /v1/enterprises, /v1/enterprises/{id}, /v1/summary, " \
        "/v1/alerts, /v1/events, POST /v1/reload"

/* ---- metrics ---- */

void status_init(Loop *l)
{
        static const double batch_b[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
        static const double batch_n[] = {1, 10, 100, 1000, 5000, 10000, 20000, 40000, 80000, 160000};
        static const double latency_b[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60};
        static const double restore_b[] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900};
        Metrics *m = &l->m;
        Prom *p = m->p = prom_new();
        m->events = prom_family(p, PROM_COUNTER, "riskd_events_total",
                                "Input events decoded, by type (rejected ones: riskd_rejects_total)", "type", NULL,
                                0);
        m->rejects = prom_family(p, PROM_COUNTER, "riskd_rejects_total",
                                 "Events sent to the dead-letter topic, by reason", "reason", NULL, 0);
        m->alerts = prom_family(p, PROM_COUNTER, "riskd_alerts_total", "Alerts by rule and severity",
                                "rule,severity", NULL, 0);
        m->shadow = prom_family(p, PROM_COUNTER, "riskd_shadow_alerts_total", "Alerts of shadow rules, by rule",
                                "rule", NULL, 0);
        m->adjustments = prom_family(p, PROM_COUNTER, "riskd_adjustments_total",
                                     "Supervision adjustments by grade change (from \"none\": first grade)",
                                     "from,to", NULL, 0);
        m->batch_s = prom_family(p, PROM_HISTOGRAM, "riskd_batch_duration_seconds",
                                 "Processing time of a committed batch, first event polled to commit", NULL,
                                 batch_b, sizeof(batch_b) / sizeof(batch_b[0]));
        /* group commit grows a batch up to 4 x batch_max (20,000 by default) */
        m->batch_events = prom_family(p, PROM_HISTOGRAM, "riskd_batch_events",
                                      "Input messages of a committed batch (dead letters included)", NULL, batch_n,
                                      sizeof(batch_n) / sizeof(batch_n[0]));
        m->alert_latency = prom_family(p, PROM_HISTOGRAM, "riskd_event_to_alert_seconds",
                                       "From the input message's timestamp to its alert being emitted (produced "
                                       "with its batch's transaction)", NULL,
                                       latency_b, sizeof(latency_b) / sizeof(latency_b[0]));
        m->lag = prom_family(p, PROM_GAUGE, "riskd_consumer_lag",
                             "Messages of an assigned input partition not yet processed", "topic,partition", NULL,
                             0);
        m->txn = prom_family(p, PROM_COUNTER, "riskd_transactions_total",
                             "Batches ended, by result (committed, aborted)", "result", NULL, 0);
        m->committed = prom_series1(m->txn, "committed");
        m->aborted = prom_series1(m->txn, "aborted");
        m->restore_s = prom_family(p, PROM_HISTOGRAM, "riskd_restore_duration_seconds",
                                   "Time to restore a partition's state from the changelog", NULL, restore_b,
                                   sizeof(restore_b) / sizeof(restore_b[0]));
        m->restored = prom_family(p, PROM_COUNTER, "riskd_restored_records_total",
                                  "Changelog records read by restores", NULL, NULL, 0);
        m->restore_refused = prom_family(p, PROM_COUNTER, "riskd_restore_records_refused_total",
                                         "Changelog records a restore refused (reason: decode, a record that does "
                                         "not decode or holds a value out of bounds; over_limit, "
                                         "limits.max_enterprises or limits.max_state_bytes reached)",
                                         "reason", NULL, 0);
        prom_series1(m->restore_refused, "decode"); /* shown at 0 from the start */
        prom_series1(m->restore_refused, "over_limit");
        m->replayed = prom_family(p, PROM_COUNTER, "riskd_replayed_total",
                                  "Events read again after a restore that its state already held (transactions "
                                  "off, a crash between the state and the partition record): skipped, not dead "
                                  "letters",
                                  NULL, NULL, 0);
        m->enterprises = prom_family(p, PROM_GAUGE, "riskd_enterprises", "Enterprises in state", NULL, NULL, 0);
        m->state_bytes = prom_family(p, PROM_GAUGE, "riskd_state_bytes",
                                     "Bytes of enterprise state, by kind (enterprise, window)", "kind", NULL, 0);
        m->partitions = prom_family(p, PROM_GAUGE, "riskd_partitions", "Assigned partitions by state", "state",
                                    NULL, 0);
        m->reloads = prom_family(p, PROM_COUNTER, "riskd_reloads_total", "Rule reloads by result (ok, failed)",
                                 "result", NULL, 0);
        m->reload_ok = prom_series1(m->reloads, "ok");
        m->reload_failed = prom_series1(m->reloads, "failed");
        m->reload_coalesced = prom_series(prom_family(p, PROM_COUNTER, "riskd_reload_requests_coalesced_total",
                                                      "POST /v1/reload requests answered with the result of "
                                                      "the reload that ran while they waited",
                                                      NULL, NULL, 0),
                                          NULL);
        m->reload_ents = prom_family(p, PROM_COUNTER, "riskd_reload_enterprises_total",
                                     "Enterprises a rule reload changed, by change: state (lost the state of a "
                                     "changed or removed rule), score, grade (grade, mode or frequency)",
                                     "change", NULL, 0);
        m->rules_info = prom_family(p, PROM_GAUGE, "riskd_rules_info", "The rules in use: 1 for their version",
                                    "version", NULL, 0);
        m->rules = prom_family(p, PROM_GAUGE, "riskd_rules", "Rules loaded, by status", "status", NULL, 0);
        m->regex_errors = prom_family(p, PROM_COUNTER, "riskd_regex_errors_total",
                                      "Regex engine errors of matches, by rule (each made its condition false)", "rule",
                                      NULL, 0);
        m->http = prom_family(p, PROM_COUNTER, "riskd_http_requests_total", "HTTP requests by status code",
                              "code", NULL, 0);
        m->stalls = prom_family(p, PROM_COUNTER, "riskd_fetch_stalls_total",
                                "Input partitions sought again after stall_timeout without a fetched record "
                                "while the broker held records past riskd's position",
                                "topic,partition", NULL, 0);
        memstats_register(p);
}

/* The Engine's counters since the last fold, into the metrics. */
void status_fold(Loop *l, Part *pt)
{
        const EngineStats *st = engine_stats(pt->e);
        const RuleSet *rs = engine_rules(pt->e);
        for (uint32_t t = 0; t < rs->schema.ntypes && t < RULES_MAX_TYPES; t++)
                if (st->by_type[t] != pt->seen.by_type[t])
                        prom_add(prom_series1(l->m.events, rs->schema.types[t].name),
                                 (double)(st->by_type[t] - pt->seen.by_type[t]));
        for (int i = 1; i < ENGINE_NREJECT; i++)
                if (st->rejects[i] != pt->seen.rejects[i])
                        prom_add(prom_series1(l->m.rejects, engine_reject_names[i]),
                                 (double)(st->rejects[i] - pt->seen.rejects[i]));
        if (st->replayed > pt->seen.replayed) {
                prom_add(prom_series(l->m.replayed, NULL), (double)(st->replayed - pt->seen.replayed));
                pt->replayed += st->replayed - pt->seen.replayed;
        }
        pt->seen = *st;
}

/* Adds the regex engine errors counted since the last fold to
 * riskd_regex_errors_total{rule}, from the rules every partition runs (two
 * sets during a reload); a rule with a regex has its series from the start,
 * at 0.  On the loop thread, which evaluates the rules. */
void status_regex_errors(Loop *l)
{
        for (uint32_t p = 0; p <= l->nparts; p++) {
                Part *pt = p < l->nparts ? l->parts[p] : NULL;
                const RuleSet *rs = p == l->nparts ? l->rs : pt && pt->e ? engine_rules(pt->e) : NULL;
                if (!rs || (p < l->nparts && rs == l->rs))
                        continue; /* l->rs once, last */
                for (uint32_t i = 0; i < rs->nregexes; i++)
                        prom_add(prom_series1(l->m.regex_errors, rs->regex_rule[i]),
                                 (double)rules_regex_errors_take(rs, i));
        }
}

/* ---- HTTP (httpd.h): answered here, on the main loop, between batches ---- */

/* The gauges are taken now (engine_stats walks each Engine's enterprises:
 * a scrape costs a pass over the state). */
static void metrics_render(Loop *l, Buf *out)
{
        Metrics *m = &l->m;
        uint64_t ents = 0, sb = 0, wb = 0;
        uint32_t active = 0, restoring = 0;
        prom_family_clear(m->lag);
        for (uint32_t p = 0; p < l->nparts; p++) {
                Part *pt = l->parts[p];
                if (!pt)
                        continue;
                if (pt->state != PART_ACTIVE) {
                        restoring++;
                        continue;
                }
                active++;
                status_fold(l, pt);
                ents += pt->seen.enterprises;
                sb += pt->seen.state_bytes;
                wb += pt->seen.window_bytes;
                for (uint32_t i = 0; i < loop_ninputs(l); i++) {
                        int64_t lo = -1, hi = -1;
                        if (!pt->in[i].assigned ||
                            rd_kafka_get_watermark_offsets(l->consumer, l->cfg->input_topics[i], pt->id, &lo, &hi) ||
                            hi < 0)
                                continue;
                        /* nothing read yet: the whole partition is behind */
                        int64_t pos = pt->in[i].pos >= 0 ? pt->in[i].pos : lo;
                        char num[16];
                        snprintf(num, sizeof(num), "%d", pt->id);
                        prom_set(prom_series2(m->lag, l->cfg->input_topics[i], num),
                                 (double)(hi > pos ? hi - pos : 0));
                }
        }
        prom_set(prom_series(m->enterprises, NULL), (double)ents);
        prom_set(prom_series1(m->state_bytes, "enterprise"), (double)sb);
        prom_set(prom_series1(m->state_bytes, "window"), (double)wb);
        prom_set(prom_series1(m->partitions, "active"), active);
        prom_set(prom_series1(m->partitions, "restoring"), restoring);
        prom_family_clear(m->rules_info);
        prom_set(prom_series1(m->rules_info, l->rs->version), 1);
        uint32_t by_status[3] = {0};
        for (uint32_t i = 0; i < l->rs->nrules; i++)
                by_status[l->rs->rules[i].status < 3 ? l->rs->rules[i].status : 0]++;
        prom_set(prom_series1(m->rules, "enabled"), by_status[RULE_ENABLED]);
        prom_set(prom_series1(m->rules, "shadow"), by_status[RULE_SHADOW]);
        prom_set(prom_series1(m->rules, "disabled"), by_status[RULE_DISABLED]);
        status_regex_errors(l);
        memstats_refresh();
        prom_render(m->p, out);
}

static const char *const rule_status_names[] = {"enabled", "shadow", "disabled"};

static void rules_json(Loop *l, Buf *b)
{
        const RuleSet *rs = l->rs;
        buf_puts(b, "{\"version\":");
        buf_json_str(b, rs->version, strlen(rs->version));
        buf_printf(b, ",\"reloads\":{\"ok\":%llu,\"failed\":%llu,\"coalesced\":%llu,\"last_error\":",
                   (unsigned long long)l->reloads_ok, (unsigned long long)l->reloads_failed,
                   (unsigned long long)l->reloads_coalesced);
        if (l->reload_error)
                buf_json_str(b, l->reload_error, strlen(l->reload_error));
        else
                buf_puts(b, "null");
        buf_printf(b, "},\"count\":%u,\"rules\":[", rs->nrules);
        for (uint32_t i = 0; i < rs->nrules; i++) {
                const Rule *r = &rs->rules[i];
                buf_puts(b, i ? ",{\"id\":" : "{\"id\":");
                buf_json_str(b, r->id, strlen(r->id));
                buf_printf(b, ",\"status\":\"%s\",\"fingerprint\":\"%016llx\",\"lifecycle\":%s}",
                           rule_status_names[r->status < 3 ? r->status : 0], (unsigned long long)r->fingerprint,
                           r->lifecycle ? "true" : "false");
        }
        buf_puts(b, "]}\n");
}

void status_http(void *ud, HttpReq *req)
{
        Loop *l = ud;
        const char *path = httpd_path(req), *method = httpd_method(req);
        bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
        Buf b = {0};
        char id[256];
        unsigned status = 200;
        if (strcmp(path, "/metrics") == 0 && get) {
                metrics_render(l, &b);
                httpd_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
        } else if (strcmp(path, "/healthz") == 0 && get) {
                /* answered by the main loop: it turns */
                buf_puts(&b, "{\"status\":\"ok\"}\n");
                httpd_respond(req, 200, "application/json", b.p, b.len);
        } else if (strcmp(path, "/readyz") == 0 && get) {
                /* a reload compiling in the background leaves riskd ready:
                 * it goes on consuming under the rules it has */
                bool ready = (notify_is_ready() || l->reload_job) && l->assigned_once && !l->nrestoring;
                buf_printf(&b, "{\"status\":\"%s\",\"partitions\":%u,\"restoring\":%u}\n",
                           ready ? "ready" : "not ready", loop_parts_active(l), l->nrestoring);
                status = ready ? 200 : 503;
                httpd_respond(req, status, "application/json", b.p, b.len);
        } else if (strcmp(path, "/v1/rules") == 0 && get) {
                rules_json(l, &b);
                httpd_respond(req, 200, "application/json", b.p, b.len);
        } else if (strcmp(path, "/v1/reload") == 0 && strcmp(method, "POST") == 0) {
                /* httpd.c let it through: http_reload is on, the token and
                 * the Origin are right.  Made before the last reload ended:
                 * that one's result. */
                bool coalesced = httpd_req_seq(req) <= l->reload_seq, held = !coalesced;
                if (held) {
                        /* held until the reload ends: the one it starts,
                         * or the one compiling now (then coalesced) */
                        coalesced = l->reload_job != NULL;
                        if (!coalesced)
                                reload_start(l);
                        if (l->nreload_waiters == l->reload_waiters_cap) {
                                l->reload_waiters_cap = l->reload_waiters_cap ? 2 * l->reload_waiters_cap : 8;
                                l->reload_waiters = xrealloc(l->reload_waiters, l->reload_waiters_cap *
                                                                                       sizeof(*l->reload_waiters));
                        }
                        l->reload_waiters[l->nreload_waiters++] = (struct ReloadWaiter){req, coalesced};
                        httpd_hold(req);
                }
                if (coalesced) {
                        l->reloads_coalesced++;
                        prom_add(l->m.reload_coalesced, 1);
                }
                if (!held)
                        reload_respond(l, req, coalesced);
        } else if (strncmp(path, "/v1/enterprises/", 16) == 0 && get) {
                if (httpd_path_id(path, "/v1/enterprises", id, sizeof(id)) < 0) {
                        status = 400;
                        httpd_error(req, status, "bad enterprise id");
                } else {
                        char *doc = NULL;
                        for (uint32_t p = 0; p < l->nparts && !doc; p++)
                                if (l->parts[p] && l->parts[p]->state == PART_ACTIVE)
                                        doc = engine_explain_json(l->parts[p]->e, id, strlen(id));
                        if (doc) {
                                httpd_respond(req, 200, "application/json", doc, strlen(doc));
                                free(doc);
                        } else {
                                status = 404;
                                httpd_error(req, status, "unknown enterprise (or its partition is not assigned to "
                                                         "this instance)");
                        }
                }
        } else if (api_http(l, req, &status)) {
                /* /v1/enterprises, /v1/summary, /v1/alerts, /v1/events (api.c) */
        } else if (strcmp(path, "/metrics") == 0 || strcmp(path, "/healthz") == 0 ||
                   strcmp(path, "/readyz") == 0 || strcmp(path, "/v1/rules") == 0 ||
                   strcmp(path, "/v1/reload") == 0 || strncmp(path, "/v1/enterprises/", 16) == 0) {
                status = 405;
                httpd_error(req, status, "method not allowed");
        } else if (!get || !*l->cfg->http_console ||
                   /* the web console: every other path is its file */
                   (status = console_http(l->cfg->http_console, l->cfg->http_javascript, req, path)) == 404) {
                status = 404;
                httpd_error(req, status,
                            *l->cfg->http_console ? "no such endpoint or console file (" HTTP_ROUTES ", the console at /)"
                                                  : "no such endpoint (" HTTP_ROUTES ")");
        }
        char code[8];
        snprintf(code, sizeof(code), "%u", status);
        prom_add(prom_series1(l->m.http, code), 1);
        buf_free(&b);
}
