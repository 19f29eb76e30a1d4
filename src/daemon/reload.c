/*
 * Rule reloads (loop.c has the map).
 */
#include "src/daemon/loop_int.h"

/* ---- reload ---- */

/* "a, b, c" of at most 20 rule ids, then "and N more". */
static void ids_add(Buf *b, uint32_t *n, const char *id)
{
        if (*n < 20)
                buf_printf(b, "%s%s", *n ? ", " : "", id);
        else if (*n == 20)
                buf_puts(b, ", ...");
        (*n)++;
}

/* What changed from l->rs to rs, in the log: the rules that start fresh. */
static void reload_report(Loop *l, const RuleSet *rs)
{
        const RuleSet *old = l->rs;
        Buf fresh = {0}, gone = {0};
        uint32_t nnew = 0, nchanged = 0, nsame = 0, ngone = 0, nfresh = 0;
        for (uint32_t i = 0; i < rs->nrules; i++) {
                const Rule *r = &rs->rules[i];
                const Rule *o = NULL;
                for (uint32_t k = 0; k < old->nrules && !o; k++)
                        if (strcmp(old->rules[k].id, r->id) == 0)
                                o = &old->rules[k];
                if (o && o->fingerprint == r->fingerprint) {
                        nsame++;
                        continue;
                }
                if (o)
                        nchanged++;
                else
                        nnew++;
                ids_add(&fresh, &nfresh, r->id);
        }
        for (uint32_t k = 0; k < old->nrules; k++) {
                bool found = false;
                for (uint32_t i = 0; i < rs->nrules && !found; i++)
                        found = strcmp(old->rules[k].id, rs->rules[i].id) == 0;
                if (!found)
                        ids_add(&gone, &ngone, old->rules[k].id);
        }
        log_notice("rules %s -> %s: %u unchanged (their state kept), %u changed and %u new (starting fresh%s%s), "
                   "%u removed%s%s%s",
                   old->version, rs->version, nsame, nchanged, nnew, nfresh ? ": " : "", nfresh ? fresh.p : "",
                   ngone, ngone ? " (" : "", ngone ? gone.p : "", ngone ? ")" : "");
        buf_free(&fresh);
        buf_free(&gone);
}

/* It runs other rules than l->rs, or was restored from records of others. */
static bool part_reload_due(const Loop *l, const Part *pt)
{
        return pt && pt->state == PART_ACTIVE && (engine_rules(pt->e) != l->rs || engine_regrade_due(pt->e));
}

/*
 * Moves every active Part whose Engine runs other rules than l->rs to them
 * (engine_reload: the state of unchanged rules kept, every enterprise
 * graded again), or grades again one restored from records of other rules
 * (engine_regrade), in a transaction of its own between two batches: the
 * re-grade's adjustments and the records of the enterprises the reload
 * changed are committed together.  Not committed, the Parts keep their
 * Engines and old rules (or their re-grade stays due), and it is tried
 * again a second later.
 */
void reload_apply(Loop *l)
{
        l->reload_due = false;
        uint32_t due = 0;
        for (uint32_t p = 0; p < l->nparts; p++)
                due += part_reload_due(l, l->parts[p]);
        if (!due)
                return;
        batch_end(l, BATCH_COMMIT); /* and the one in flight: a reload waits for it */
        if (l->fatal)
                return;
        batch_begin(l);
        int64_t t0 = log_now_ms();
        Engine **old = xcalloc(l->nparts, sizeof(Engine *));
        EngineReload sum = {0};
        Buf parts = {0}, from = {0};
        for (uint32_t p = 0; p < l->nparts && !l->fatal; p++) {
                Part *pt = l->parts[p];
                if (!part_reload_due(l, pt))
                        continue;
                status_fold(l, pt);
                EngineReload rep;
                Engine *n = NULL;
                bool swap = engine_rules(pt->e) != l->rs;
                int r = swap ? engine_reload(pt->e, l->rs, &n, &rep) : engine_regrade(pt->e, &rep);
                if (r < 0) {
                        loop_fatal(l, "reload: partition %d: %s", pt->id, strerror(-r));
                        break;
                }
                if (!strstr(from.p ? from.p : "", rep.rules_before))
                        buf_printf(&from, "%s%s", from.len ? ", " : "", rep.rules_before);
                buf_printf(&parts, "%s%d", parts.len ? ", " : "", pt->id);
                if (swap) {
                        old[p] = pt->e;
                        pt->e = n;
                }
                pt->in_batch = true;
                sum.enterprises += rep.enterprises;
                sum.state_dropped += rep.state_dropped;
                sum.rescored += rep.rescored;
                sum.regraded += rep.regraded;
                sum.adjusted += rep.adjusted;
                sum.records += rep.records;
        }
        bool committed = batch_end(l, BATCH_COMMIT) && !l->fatal;
        for (uint32_t p = 0; p < l->nparts; p++) {
                Part *pt = l->parts[p];
                if (!pt || !old[p])
                        continue;
                if (committed) {
                        engine_free(old[p]);
                        pt->seen = *engine_stats(pt->e); /* carried over: counted already */
                } else {
                        engine_free(pt->e); /* its outputs went with the aborted transaction */
                        pt->e = old[p];
                }
        }
        free(old);
        if (committed) {
                prom_add(prom_series1(l->m.reload_ents, "state"), (double)sum.state_dropped);
                prom_add(prom_series1(l->m.reload_ents, "score"), (double)sum.rescored);
                prom_add(prom_series1(l->m.reload_ents, "grade"), (double)sum.regraded);
                log_notice("rules %s -> %s applied to partition%s %s in %lld ms: %llu enterprises, %llu lost the "
                           "state of changed or removed rules, %llu re-scored, %llu re-graded, %llu adjustments with "
                           "cause reload, %llu records rewritten",
                           from.p, l->rs->version, due == 1 ? "" : "s", parts.p, (long long)(log_now_ms() - t0),
                           (unsigned long long)sum.enterprises, (unsigned long long)sum.state_dropped,
                           (unsigned long long)sum.rescored, (unsigned long long)sum.regraded,
                           (unsigned long long)sum.adjusted, (unsigned long long)sum.records);
        } else if (!l->fatal) {
                log_warning("the reload of partition%s %s was not committed: they keep the state of rules %s; "
                            "retrying in 1 s",
                            due == 1 ? "" : "s", parts.p ? parts.p : "", from.p ? from.p : "");
                l->reload_due = true;
                l->reload_retry_at = log_now_ms() + 1000;
        }
        buf_free(&parts);
        buf_free(&from);
}

/*
 * SIGHUP (or POST /v1/reload): the rules directory is compiled on a worker
 * thread (reload_start) while the main loop goes on consuming, answering
 * HTTP and feeding the watchdog, whatever the rules cost to compile; the
 * loop looks for the result each turn (reload_poll).  Broken, the old rules
 * go on (the diagnostics in the log, the failure counted); good, between
 * two batches: the open batch is committed and every active Engine moves
 * its state to the new rules (reload_apply), so that no event is lost or
 * applied twice; Parts still restoring finish their restore under the
 * rules of their records, and move to the new rules once restored.
 * One reload at a time: a SIGHUP during a compile asks for one more after
 * it (the files may have changed since they were read), a POST during a
 * compile gets that compile's result.
 */
enum { RELOAD_RUNNING, RELOAD_DONE, RELOAD_ABANDONED };

typedef struct ReloadJob {
        Loop *l;
        pthread_t thread;
        bool threaded;           /* thread runs (else the compile ran in reload_start) */
        char *dir;
        const char *gate;        /* Loop.fault_reload_gate */
        int64_t t0;
        DiagList dl;             /* the worker's until done */
        RuleSet *rs;
        int r;
        /* RUNNING -> DONE (the worker: the result is in) or -> ABANDONED
         * (the main loop, stopping: the worker frees the job when done,
         * without touching the Loop) */
        atomic_int state;
} ReloadJob;

static void reload_job_drop(ReloadJob *j)
{
        diag_list_deinit(&j->dl);
        rules_unref(j->rs);
        free(j->dir);
        free(j);
}

static void *reload_run(void *arg)
{
        ReloadJob *j = arg;
        j->r = rules_load(j->dir, &j->dl, &j->rs);
        while (j->gate && access(j->gate, F_OK) != 0 && atomic_load(&j->state) == RELOAD_RUNNING)
                usleep(20000);
        if (atomic_exchange(&j->state, RELOAD_DONE) == RELOAD_ABANDONED)
                reload_job_drop(j); /* detached: riskd is stopping */
        else
                loop_wake(j->l); /* out of the consumer's wait */
        return NULL;
}

/* Stopping: a compile still running is abandoned (its thread detached; it
 * frees its result when done, or dies with the process), one done is
 * joined and dropped: a stop does not wait for the rules to compile. */
ReloadJob *reload_job_free(ReloadJob *j)
{
        if (!j)
                return NULL;
        if (j->threaded && atomic_exchange(&j->state, RELOAD_ABANDONED) == RELOAD_RUNNING) {
                pthread_detach(j->thread);
                return NULL;
        }
        if (j->threaded)
                pthread_join(j->thread, NULL);
        reload_job_drop(j);
        return NULL;
}

/* The answer of a POST /v1/reload: the last reload's result. */
void reload_respond(Loop *l, HttpReq *req, bool coalesced)
{
        Buf b = {0};
        unsigned status = 200;
        if (l->reload_last_failed) {
                status = 422;
                buf_puts(&b, "{\"status\":\"failed\",\"error\":");
                buf_json_str(&b, l->reload_error ? l->reload_error : "", l->reload_error ? strlen(l->reload_error) : 0);
                buf_puts(&b, ",\"version\":");
        } else
                buf_puts(&b, "{\"status\":\"ok\",\"version\":");
        buf_json_str(&b, l->rs->version, strlen(l->rs->version));
        buf_printf(&b, ",\"coalesced\":%s}\n", coalesced ? "true" : "false");
        httpd_respond(req, status, "application/json", b.p, b.len);
        buf_free(&b);
}

/* A reload ended: the POSTs held while it ran, and those queued until
 * now, are answered with its result (serialised, coalesced). */
static void reload_ended(Loop *l, bool failed)
{
        l->reload_seq = l->http ? httpd_seq(l->http) : 0;
        l->reload_last_failed = failed;
        for (uint32_t i = 0; i < l->nreload_waiters; i++) {
                reload_respond(l, l->reload_waiters[i].req, l->reload_waiters[i].coalesced);
                httpd_release(l->reload_waiters[i].req);
        }
        l->nreload_waiters = 0;
}

/* Stopping: the held POSTs get 503 (before httpd_free). */
void reload_waiters_drop(Loop *l)
{
        for (uint32_t i = 0; i < l->nreload_waiters; i++) {
                httpd_error(l->reload_waiters[i].req, 503, "shutting down");
                httpd_release(l->reload_waiters[i].req);
        }
        l->nreload_waiters = 0;
}

/* A diagnostic's file, relative to the rules directory (no absolute path
 * over HTTP). */
static const char *rules_relative(const Loop *l, const char *file)
{
        if (!file)
                return "";
        size_t n = strlen(l->cfg->rules);
        while (n > 1 && l->cfg->rules[n - 1] == '/')
                n--;
        if (strncmp(file, l->cfg->rules, n) == 0 && file[n] == '/')
                return file + n + 1;
        const char *slash = strrchr(file, '/');
        return slash ? slash + 1 : file;
}

/* Starts compiling the rules directory on a worker thread; a compile
 * already running: one more reload once it ends. */
void reload_start(Loop *l)
{
        if (l->reload_job) {
                l->reload_again = true;
                return;
        }
        notify_reloading();
        ReloadJob *j = xcalloc(1, sizeof(*j));
        j->l = l;
        j->dir = xstrdup(l->cfg->rules);
        j->gate = l->fault_reload_gate;
        j->t0 = log_now_ms();
        atomic_init(&j->state, RELOAD_RUNNING);
        l->reload_job = j;
        log_notice("reloading the rules from %s (compiling in the background)", l->cfg->rules);
        int r = pthread_create(&j->thread, NULL, reload_run, j);
        if (r != 0) {
                log_warning("reload: cannot start a thread (%s): compiling the rules on the main loop",
                            strerror(r));
                j->gate = NULL; /* nothing may hold the main loop */
                reload_run(j);
        } else
                j->threaded = true;
}

/* The compile ended: its result taken in between two batches. */
static void reload_finish(Loop *l)
{
        ReloadJob *j = l->reload_job;
        l->reload_job = NULL;
        if (j->threaded)
                pthread_join(j->thread, NULL);
        int64_t t0 = j->t0;
        int r = j->r;
        RuleSet *rs = j->rs;
        DiagList dl = j->dl;
        j->rs = NULL;
        j->dl = (DiagList){0};
        reload_job_drop(j);
        log_diags(&dl);
        if (r != 0 || !rs) {
                l->reloads_failed++;
                prom_add(l->m.reload_failed, 1);
                if (r < 0)
                        log_err("reload failed: cannot read %s: %s; the rules in use (version %s) stay",
                                l->cfg->rules, strerror(-r), l->rs->version);
                else
                        log_err("reload failed: %u error%s in %s; the rules in use (version %s) stay", dl.nerrors,
                                dl.nerrors == 1 ? "" : "s", l->cfg->rules, l->rs->version);
                free(l->reload_error);
                l->reload_error = dl.n ? xasprintf("%s:%u:%u: %s", rules_relative(l, dl.v[0].file), dl.v[0].line,
                                                   dl.v[0].col, dl.v[0].message)
                                       : xasprintf("cannot read the rules directory: %s", strerror(-r));
                diag_list_deinit(&dl);
                rules_unref(rs);
                reload_ended(l, true);
                loop_notify(l);
                return;
        }
        log_info("reload: rules compiled in %lld ms", (long long)(log_now_ms() - t0));
        diag_list_deinit(&dl);
        batch_end(l, BATCH_COMMIT); /* and the one in flight */
        if (l->fatal) {
                rules_unref(rs);
                return;
        }
        reload_report(l, rs);
        for (uint32_t p = 0; p < l->nparts; p++) {
                Part *pt = l->parts[p];
                /* not started: it restores into the new rules */
                if (!pt || pt->state != PART_RESTORE_WAIT)
                        continue;
                Engine *n = NULL;
                status_fold(l, pt);
                pt->rs_records = pt->rs_bad = 0;
                pt->rs_retry_at = 0;
                r = engine_new(&n, rs, &l->ecfg, sink_emit, l);
                if (r < 0) {
                        loop_fatal(l, "reload: partition %d: %s", pt->id, strerror(-r));
                        rules_unref(rs);
                        return;
                }
                engine_free(pt->e);
                pt->e = n;
                pt->seen = *engine_stats(n);
        }
        rules_unref(l->rs);
        l->rs = rs;
        l->reloads_ok++;
        prom_add(l->m.reload_ok, 1);
        free(l->reload_error);
        l->reload_error = NULL;
        reload_apply(l);
        reload_ended(l, false);
        log_notice("reload done in %lld ms: rules version %s, %u rules, on %u partitions%s",
                   (long long)(log_now_ms() - t0), rs->version, rs->nrules, loop_parts_active(l),
                   l->reload_due || l->nrestoring ? " (partitions restoring or whose reload was not committed "
                                                    "move to them later)"
                                                  : "");
        loop_notify(l);
}

/* Main loop, each turn: the compile's result once it is in; then the
 * reload a SIGHUP asked for while it ran. */
bool reload_poll(Loop *l)
{
        if (!l->reload_job || atomic_load(&l->reload_job->state) != RELOAD_DONE)
                return false;
        reload_finish(l);
        if (l->reload_again && !l->fatal) {
                l->reload_again = false;
                reload_start(l);
        }
        return true;
}
