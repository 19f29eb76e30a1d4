/*
 * riskctl replay, explain and diff run the engine over a file of events
 * as riskd would over a partition (riskctl_run.c): their options, the
 * lines read ahead and hinted (engine_prefetch), --until, a --reload
 * between two lines, and what the outputs become (JSON lines, dead-letter
 * documents, a back-test's kept outputs).  What each command makes of the
 * run is in riskctl_replay.c.
 */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "include/riskd/decode.h"
#include "include/riskd/value.h"
#include "src/cli/riskctl.h"
#include "src/util/json.h"

void replay_deinit(Replay *rp)
{
        free(rp->by_rule);
        buf_free(&rp->changed);
        buf_free(&rp->added);
        buf_free(&rp->removed);
}

static void base64(Buf *b, const unsigned char *s, size_t n)
{
        static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
                             (i + 2 < n ? s[i + 2] : 0);
                char q[4] = {t[v >> 18], t[(v >> 12) & 63], i + 1 < n ? t[(v >> 6) & 63] : '=',
                             i + 2 < n ? t[v & 63] : '='};
                buf_put(b, q, 4);
        }
}

/* One dead letter as a line of JSON (docs/outputs.md §3.2). */
static void deadletter_json(Buf *b, const char *data, size_t len, const OutMeta *m)
{
        buf_puts(b, "{\"schema\":\"riskd.deadletter/1\",\"reason\":");
        json_put_text(b, m->reason, strlen(m->reason));
        buf_puts(b, ",\"detail\":");
        json_put_text(b, m->detail ? m->detail : "", m->detail ? strlen(m->detail) : 0);
        buf_puts(b, ",\"source\":{\"file\":");
        const char *f = m->source && m->source->topic ? m->source->topic : "-";
        json_put_text(b, f, strlen(f));
        buf_printf(b, ",\"line\":%lld},\"original\":", m->source ? (long long)m->source->offset : 0LL);
        if (utf8_valid(data, len)) {
                buf_json_str(b, data, len);
                buf_puts(b, ",\"original_base64\":null}");
        } else {
                buf_puts(b, "null,\"original_base64\":\"");
                base64(b, (const unsigned char *)data, len);
                buf_puts(b, "\"}");
        }
}

static void replay_emit(void *ud, OutKind kind, const char *data, size_t len, const OutMeta *m)
{
        Replay *r = ud;
        if (kind == OUT_DEADLETTER) {
                if (!r->dlq && !r->bt)
                        return;
                Buf b = {0};
                deadletter_json(&b, data, len, m);
                if (r->bt)
                        bt_run_add(r->bt, kind, b.p, b.len);
                if (r->dlq) {
                        buf_putc(&b, '\n');
                        fwrite(b.p, 1, b.len, r->dlq);
                }
                buf_free(&b);
                return;
        }
        if ((kind == OUT_ALERT || kind == OUT_SHADOW) && m->rule_id) {
                const Rule *ru = rules_find(r->rs, m->rule_id);
                if (ru && r->by_rule)
                        r->by_rule[ru->index]++;
        }
        if (r->bt)
                bt_run_add(r->bt, kind, data, len);
        if (r->out) {
                fwrite(data, 1, len, r->out);
                fputc('\n', r->out);
        }
}

static int parse_u32(const char *s, uint32_t *v)
{
        char *end;
        unsigned long x = strtoul(s, &end, 10);
        if (!*s || *end || x > UINT32_MAX)
                return -1;
        *v = (uint32_t)x;
        return 0;
}

/* Every option of replay, explain and diff; each command takes those whose
 * code is in its list (Command.opts), the others are unknown to it. */
static const struct option run_options[] = {
        {"dead-letters", required_argument, NULL, 'd'},
        {"grace", required_argument, NULL, 'g'},
        {"until", required_argument, NULL, 'u'},
        {"at", required_argument, NULL, 'a'},
        {"grades", required_argument, NULL, 'G'},
        {"enterprises", required_argument, NULL, 'N'},
        {"quiet", no_argument, NULL, 'q'},
        {"format", required_argument, NULL, 'f'},
        {"json", no_argument, NULL, 'j'},
        {"max-enterprises", required_argument, NULL, 'E'},
        {"recent-ids", required_argument, NULL, 'R'},
        {"max-window-rows", required_argument, NULL, 'W'},
        {"max-keys", required_argument, NULL, 'K'},
        {"max-held", required_argument, NULL, 'H'},
        {"max-state-bytes", required_argument, NULL, 'M'},
        {"compact-every", required_argument, NULL, 'C'},
        {"reload", required_argument, NULL, 'L'},
        {"reload-after", required_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},
};
#define NRUN_OPTIONS (sizeof(run_options) / sizeof(run_options[0]))

int replay_opts(int argc, char **argv, ReplayOpts *o, const Command *cmd, int min, int max, const char *expected)
{
        struct option opts[NRUN_OPTIONS + 1];
        uint32_t n = 0;
        for (uint32_t i = 0; i < NRUN_OPTIONS; i++)
                if (strchr(cmd->opts, run_options[i].val))
                        opts[n++] = run_options[i];
        opts[n] = (struct option){0};
        engine_config_default(&o->cfg);
        o->format = BT_TEXT;
        optind = 1;
        opterr = 0;
        int c;
        while ((c = getopt_long(argc, argv, strchr(cmd->opts, 'q') ? ":qh" : ":h", opts, NULL)) != -1) {
                int bad = 0;
                const char *what = NULL;
                switch (c) {
                case 'd': o->dlq = optarg; break;
                case 'G': o->grades = optarg; break;
                case 'N': o->enterprises = optarg; break;
                case 'q': o->quiet = true; break;
                case 'j': o->format = BT_JSON; break;
                case 'f':
                        bad = bt_format_parse(optarg, cmd->formats, &o->format) < 0;
                        what = "format";
                        break;
                case 'g':
                        if (strcmp(optarg, "0") == 0)
                                o->cfg.grace_ms = 0;
                        else
                                bad = duration_parse(optarg, strlen(optarg), &o->cfg.grace_ms) < 0 ||
                                      o->cfg.grace_ms > ENGINE_GRACE_MAX_MS;
                        what = "grace (0 to 30d, as riskd.yaml(5))";
                        break;
                case 'u':
                case 'a':
                        bad = time_parse(optarg, strlen(optarg), &o->until) < 0;
                        o->has_until = true;
                        what = c == 'a' ? "at" : "until";
                        break;
                case 'E':
                        bad = parse_u32(optarg, &o->cfg.max_enterprises) < 0 || !o->cfg.max_enterprises;
                        what = "max-enterprises (at least 1)";
                        break;
                case 'R':
                        bad = parse_u32(optarg, &o->cfg.recent_ids) < 0 || o->cfg.recent_ids > ENGINE_RECENT_IDS_MAX;
                        what = "recent-ids (0 to 65535)";
                        break;
                case 'W':
                        bad = parse_u32(optarg, &o->cfg.max_window_rows) < 0 || !o->cfg.max_window_rows;
                        what = "max-window-rows (at least 1)";
                        break;
                case 'K': bad = parse_u32(optarg, &o->cfg.max_keys) < 0; what = "max-keys"; break;
                case 'H':
                        bad = parse_u32(optarg, &o->cfg.max_held) < 0 || !o->cfg.max_held;
                        what = "max-held (at least 1)";
                        break;
                case 'M': {
                        char *end;
                        o->cfg.max_state_bytes = strtoull(optarg, &end, 10);
                        bad = !*optarg || *end || *optarg == '-';
                        what = "max-state-bytes";
                        break;
                }
                case 'C': bad = parse_u32(optarg, &o->cfg.compact_every) < 0; what = "compact-every"; break;
                case 'L': o->reload = optarg; break;
                case 'A': {
                        char *end;
                        o->reload_after = strtoull(optarg, &end, 10);
                        bad = !*optarg || *end;
                        what = "reload-after";
                        break;
                }
                case 'h':
                        fputs(cmd->usage, stdout);
                        return 0;
                default:
                        option_error(cmd, c, argv);
                        return -1;
                }
                if (bad) {
                        usage_error(cmd, "bad value '%s' for --%s", optarg, what);
                        return -1;
                }
        }
        if (o->reload_after && !o->reload) {
                usage_error(cmd, "--reload-after needs --reload DIR");
                return -1;
        }
        if (argc - optind < min || argc - optind > max) {
                usage_error(cmd, "%s", expected);
                return -1;
        }
        return optind;
}

RuleSet *load_or_report(const char *dir, const char *cmd, int *status)
{
        DiagList dl = {0};
        RuleSet *rs = NULL;
        int r = rules_load(dir, &dl, &rs);
        if (r < 0) {
                fprintf(stderr, "riskctl %s: cannot open %s: %s\n", cmd, dir, strerror(-r));
                *status = 2;
        } else if (r > 0) {
                diag_print_text(stderr, &dl, false);
                fprintf(stderr, "riskctl %s: %s has %u errors\n", cmd, dir, dl.nerrors);
                *status = 1;
        }
        diag_list_deinit(&dl);
        return r == 0 ? rs : NULL;
}

/* What a live reload does in the daemon (SIGHUP), at line o->reload_after:
 * the engine's state moves to the rules of o->reload (engine_reload). */
static int replay_reload(Engine **e, const ReplayOpts *o, Replay *rp)
{
        int status = 0;
        RuleSet *rs = load_or_report(o->reload, "replay --reload", &status);
        if (!rs)
                return -EINVAL;
        Engine *n = NULL;
        int r = engine_reload(*e, rs, &n, &rp->rep);
        if (r < 0) {
                fprintf(stderr, "riskctl replay: reload: %s\n", strerror(-r));
                rules_unref(rs);
                return r;
        }
        engine_batch_commit(n); /* no changelog here: the reload's batch ends at once */
        /* the rules it changed, added and removed, by id (SPEC: a changed
         * rule starts fresh "and this is reported"), as riskd logs them */
        rp->reloaded = true;
        rp->reload_after = o->reload_after;
        for (uint32_t i = 0; i < rs->nrules; i++) {
                const Rule *old = rules_find(rp->rs, rs->rules[i].id);
                Buf *b = !old ? &rp->added : old->fingerprint != rs->rules[i].fingerprint ? &rp->changed : NULL;
                if (b) {
                        buf_json_str(b, rs->rules[i].id, strlen(rs->rules[i].id));
                        buf_putc(b, ',');
                }
        }
        for (uint32_t i = 0; i < rp->rs->nrules; i++)
                if (!rules_find(rs, rp->rs->rules[i].id)) {
                        buf_json_str(&rp->removed, rp->rs->rules[i].id, strlen(rp->rs->rules[i].id));
                        buf_putc(&rp->removed, ',');
                }
        /* alerts by rule go on under the new rules' indexes */
        uint64_t *by_rule = xcalloc(rs->nrules + 1, sizeof(uint64_t));
        for (uint32_t i = 0; i < rs->nrules; i++) {
                const Rule *old = rules_find(rp->rs, rs->rules[i].id);
                if (old)
                        by_rule[i] = rp->by_rule[old->index];
        }
        free(rp->by_rule);
        rp->by_rule = by_rule;
        rp->rs = rs;
        engine_free(*e);
        *e = n;
        rules_unref(rs); /* the engine holds it */
        return 0;
}

/* Feed every line of path (or stdin for "-") to the engine.  From a
 * regular file it keeps ENGINE_AHEAD - 1 lines read and hinted
 * (engine_prefetch) beyond the one pushed, as riskd does with the messages
 * of a fetch; from a pipe or a terminal it reads no further than the line
 * it pushes, so a live stream's last events are not kept waiting. */
typedef struct Line {
        char *p;
        size_t cap;
        ssize_t n;
        int64_t offset;
} Line;

/* --until TIME: reading stops at the first event later than TIME + grace,
 * the line that would take the watermark past TIME.  Every event up to
 * TIME read before it is applied, as in the whole run; one read after it
 * would be too late there.  So the state at the end is the whole run's
 * state at the moment its event time reached TIME. */
typedef struct UntilClock {
        const RuleSet *rs;       /* the rules dec was made for */
        Decoder *dec;
        Value *slots;
        char *scratch;
} UntilClock;

static bool until_passed(UntilClock *uc, const Engine *e, const ReplayOpts *o, Replay *rp, const Line *l)
{
        const RuleSet *rs = engine_rules(e);
        if (uc->rs != rs) { /* the first line, or a reload */
                DecoderLimits lim = {.max_bytes = o->cfg.max_event_bytes};
                decoder_free(uc->dec);
                free(uc->slots);
                uc->dec = NULL;
                if (decoder_new(&uc->dec, &rs->schema, &lim) < 0)
                        uc->dec = NULL;
                uc->slots = xcalloc(rs->schema.nslots ? rs->schema.nslots : 1, sizeof(Value));
                if (!uc->scratch)
                        uc->scratch = xmalloc(o->cfg.max_event_bytes);
                uc->rs = rs;
        }
        DecodedEvent ev = {.slots = uc->slots, .scratch = uc->scratch, .scratch_size = o->cfg.max_event_bytes};
        if (!uc->dec || l->n <= 0 || decoder_decode(uc->dec, l->p, (size_t)l->n, &ev) != DECODE_OK)
                return false; /* a dead letter: it moves no time */
        if (ev.time_ms - o->cfg.grace_ms > o->until)
                return true;
        if (ev.time_ms > o->until)
                rp->later = true; /* held by the grace: it must stay unapplied */
        return false;
}

static void until_deinit(UntilClock *uc)
{
        decoder_free(uc->dec);
        free(uc->slots);
        free(uc->scratch);
}

static int feed(Engine **ep, const char *path, const ReplayOpts *o, Replay *rp)
{
        Engine *e = *ep;
        FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
        if (!f)
                return -errno;
        Line q[ENGINE_AHEAD] = {{0}};
        uint32_t first = 0, nq = 0;
        struct stat sb;
        uint32_t ahead = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) ? ENGINE_AHEAD : 1;
        int64_t lines = 0;
        bool eof = false;
        int r = 0;
        UntilClock uc = {0};
        SourcePos src = {.topic = strcmp(path, "-") == 0 ? "-" : path, .partition = -1};
        for (;;) {
                assert(ahead <= ENGINE_AHEAD && nq <= ahead); /* the ring of lines read ahead */
                while (!eof && nq < ahead) {
                        Line *l = &q[(first + nq) % ENGINE_AHEAD];
                        l->n = getline(&l->p, &l->cap, f);
                        if (l->n < 0) {
                                eof = true;
                                break;
                        }
                        l->offset = ++lines;
                        while (l->n > 0 && (l->p[l->n - 1] == '\n' || l->p[l->n - 1] == '\r'))
                                l->n--;
                        nq++;
                        if (l->n > 0 && ahead > 1)
                                engine_prefetch(e, l->p, (size_t)l->n);
                }
                if (!nq)
                        break;
                Line *l = &q[first];
                if (o->reload && (uint64_t)l->offset - 1 == o->reload_after) {
                        r = replay_reload(ep, o, rp);
                        if (r < 0)
                                break;
                        e = *ep;
                }
                if (o->has_until && until_passed(&uc, e, o, rp, l))
                        break;
                src.offset = l->offset;
                if (l->n > 0)
                        engine_push(e, l->p, (size_t)l->n, &src);
                first = (first + 1) % ENGINE_AHEAD;
                nq--;
        }
        engine_prefetch_reset(e);
        until_deinit(&uc);
        for (uint32_t k = 0; k < ENGINE_AHEAD; k++)
                free(q[k].p);
        if (f != stdin)
                fclose(f);
        return r;
}

double now_sec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int run_engine(RuleSet *rs, const ReplayOpts *o, const char *file, Replay *rp, Engine **ret)
{
        rp->rs = rs;
        rp->by_rule = xcalloc(rs->nrules + 1, sizeof(uint64_t));
        Engine *e = NULL;
        int r = engine_new(&e, rs, &o->cfg, replay_emit, rp);
        if (r < 0) {
                fprintf(stderr, "riskctl: cannot start the engine: %s\n", strerror(-r));
                return 1;
        }
        r = feed(&e, file, o, rp);
        if (r == -EINVAL) { /* the reload's rules, reported */
                engine_free(e);
                return 1;
        }
        if (r < 0) {
                fprintf(stderr, "riskctl: cannot read %s: %s\n", file, strerror(-r));
                engine_free(e);
                return 2;
        }
        if (!o->has_until) {
                engine_flush(e);
        } else if (!rp->later) {
                engine_flush(e);
                engine_advance(e, o->until);
        } else {
                /* events later than TIME are held: they stay unapplied */
                engine_advance(e, o->until);
        }
        *ret = e;
        return 0;
}
