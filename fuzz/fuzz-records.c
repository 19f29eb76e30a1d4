/*
 * libFuzzer target for the state records (issue 13, point 6): the input is
 * a sequence of operations on an engine running the shipped rule pack, as
 * the daemon drives one partition: restore changelog records (fuzzed
 * bytes under the keys of real enterprises and the partition record),
 * push events of examples/events.jsonl, abort, commit, explain (text and
 * JSON), advance the time, reload to a second rule set (a grade and a mode
 * renamed, a rule's score changed) and back, and restart from what was
 * committed.  A record may be refused (-EINVAL), never crash, leak or
 * reach undefined behaviour; the records the engine itself wrote must
 * always restore.
 *
 * Each operation is a byte (its value modulo FR_NOPS) and its operands:
 *   FR_RESTORE  key (byte: an enterprise, the partition record or the
 *               dictionary, fr_key), length (2 bytes, little-endian), the value
 *   FR_PUSH     event (byte: a line of examples/events.jsonl)
 *   FR_EXPLAIN_TEXT, FR_EXPLAIN_JSON  key (byte)
 *   FR_ADVANCE  days (byte)
 *   FR_ABORT, FR_COMMIT, FR_RELOAD, FR_RESTART  none
 * A restore after the engine has run starts a new engine (a restart) that
 * restores the records that follow.  fuzz/README.md; fuzz-records-seed
 * writes seeds from the records of the example stream.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/engine.h"
#include "include/riskd/util.h"

#ifndef RULES_DIR
#define RULES_DIR "rules"
#endif
#ifndef EVENTS_FILE
#define EVENTS_FILE "examples/events.jsonl"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
        FR_RESTORE,
        FR_PUSH,
        FR_ABORT,
        FR_COMMIT,
        FR_EXPLAIN_TEXT,
        FR_EXPLAIN_JSON,
        FR_RELOAD,
        FR_ADVANCE,
        FR_RESTART,
        FR_NOPS
};

#define FR_MAXKEYS 64

/* What every input shares: both rule sets, the event lines, the keys. */
static struct {
        RuleSet *rs[2];
        char *events;
        const char **line;
        size_t *len;
        uint32_t nlines;
        char *key[FR_MAXKEYS];
        size_t klen[FR_MAXKEYS];
        uint32_t nkeys;
        char *dkey;          /* the dictionary of the first rule set */
        size_t dklen;
} fr;

/* The latest committed record of each key, in the order they were
 * written (a compacted changelog). */
typedef struct FrLog {
        char *key[FR_MAXKEYS + 8];
        size_t klen[FR_MAXKEYS + 8];
        char *val[FR_MAXKEYS + 8];
        size_t vlen[FR_MAXKEYS + 8];
        uint32_t n;
} FrLog;

static void fr_sink(void *ud, OutKind kind, const char *d, size_t l, const OutMeta *m)
{
        (void)ud;
        (void)kind;
        (void)d;
        (void)l;
        (void)m;
}

static void fr_log_record(void *ud, const char *key, size_t klen, const void *val, size_t vlen)
{
        FrLog *g = ud;
        uint32_t i = 0;
        while (i < g->n && !(g->klen[i] == klen && memcmp(g->key[i], key, klen) == 0))
                i++;
        if (i == g->n) {
                if (g->n == FR_MAXKEYS + 8)
                        return;
                g->key[i] = xmalloc(klen + 1);
                memcpy(g->key[i], key, klen);
                g->klen[i] = klen;
                g->val[i] = NULL;
                g->n++;
        }
        free(g->val[i]);
        g->val[i] = xmalloc(vlen + 1);
        memcpy(g->val[i], val, vlen);
        g->vlen[i] = vlen;
        /* compaction keeps a key's latest record where it was written: after
         * the dictionary it uses (written before the first record that uses it) */
        char *k = g->key[i], *v = g->val[i];
        size_t kl = g->klen[i], vl = g->vlen[i];
        for (; i + 1 < g->n; i++) {
                g->key[i] = g->key[i + 1];
                g->klen[i] = g->klen[i + 1];
                g->val[i] = g->val[i + 1];
                g->vlen[i] = g->vlen[i + 1];
        }
        g->key[i] = k;
        g->klen[i] = kl;
        g->val[i] = v;
        g->vlen[i] = vl;
}

static bool fr_log_has(const FrLog *g, const char *key, size_t klen)
{
        for (uint32_t i = 0; i < g->n; i++)
                if (g->klen[i] == klen && memcmp(g->key[i], key, klen) == 0)
                        return true;
        return false;
}

static void fr_log_free(FrLog *g)
{
        for (uint32_t i = 0; i < g->n; i++) {
                free(g->key[i]);
                free(g->val[i]);
        }
        g->n = 0;
}

static void fr_keys(void *ud, const char *key, size_t klen, const void *val, size_t vlen)
{
        (void)ud;
        (void)val;
        (void)vlen;
        if (klen >= strlen(ENGINE_DICT_KEY) && memcmp(key, ENGINE_DICT_KEY, strlen(ENGINE_DICT_KEY)) == 0) {
                fr.dkey = xstrndup(key, klen);
                fr.dklen = klen;
                return;
        }
        if (fr.nkeys == FR_MAXKEYS)
                return;
        fr.key[fr.nkeys] = xmalloc(klen + 1);
        memcpy(fr.key[fr.nkeys], key, klen);
        fr.klen[fr.nkeys++] = klen;
}

/* text with every `from` replaced by `to` (a new string) */
static char *fr_replace(const char *text, const char *from, const char *to, int times)
{
        Buf b = {0};
        size_t fl = strlen(from);
        const char *p = text;
        for (const char *q; times && (q = strstr(p, from)); times--) {
                buf_put(&b, p, (size_t)(q - p));
                buf_puts(&b, to);
                p = q + fl;
        }
        buf_puts(&b, p);
        buf_putc(&b, 0);
        return b.p;
}

static EngineConfig fr_config(void)
{
        EngineConfig cfg;
        engine_config_default(&cfg);
        cfg.grace_ms = 60000;
        cfg.max_enterprises = 64;
        cfg.max_window_rows = 64;
        cfg.max_keys = 16;
        cfg.recent_ids = 8;
        return cfg;
}

static void fr_init(void)
{
        /* the shipped pack, and the same with grade D called E, the
         * flying inspection called a check and a sampling rule's score
         * changed: a reload under which records name what is gone */
        DIR *d = opendir(RULES_DIR);
        if (!d)
                abort();
        const char *names[32];
        char *texts[2][32];
        size_t lens[2][32];
        uint32_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)) && n < 32) {
                size_t l = strlen(de->d_name);
                if (l < 6 || strcmp(de->d_name + l - 5, ".yaml") != 0)
                        continue;
                char *path = xasprintf("%s/%s", RULES_DIR, de->d_name);
                if (file_read_all(path, &texts[0][n], &lens[0][n]) != 0)
                        abort();
                free(path);
                names[n] = xstrdup(de->d_name);
                if (strcmp(de->d_name, "grading.yaml") == 0) {
                        /* the grade's name everywhere grading.yaml writes it */
                        char *t = fr_replace(texts[0][n], "grade: D", "grade: E", -1);
                        char *u = fr_replace(t, "state.grade == \"D\"", "state.grade == \"E\"", -1);
                        texts[1][n] = fr_replace(u, "flying_inspection", "flying_check", -1);
                        free(u);
                        free(t);
                } else if (strcmp(de->d_name, "sampling.yaml") == 0) {
                        texts[1][n] = fr_replace(texts[0][n], "score: 20", "score: 25", 1);
                } else {
                        texts[1][n] = xstrdup(texts[0][n]);
                }
                lens[1][n] = strlen(texts[1][n]);
                n++;
        }
        closedir(d);
        for (int k = 0; k < 2; k++) {
                DiagList dl = {0};
                if (rules_load_mem(RULES_DIR, names, (const char *const *)texts[k], lens[k], n, &dl, &fr.rs[k]) != 0) {
                        diag_print_text(stderr, &dl, false);
                        abort();
                }
                diag_list_deinit(&dl);
        }
        for (uint32_t i = 0; i < n; i++) {
                free((char *)names[i]);
                free(texts[0][i]);
                free(texts[1][i]);
        }
        size_t len;
        if (file_read_all(EVENTS_FILE, &fr.events, &len) != 0)
                abort();
        for (char *p = fr.events; *p;) {
                char *nl = strchr(p, '\n');
                fr.line = xrealloc(fr.line, (fr.nlines + 1) * sizeof(*fr.line));
                fr.len = xrealloc(fr.len, (fr.nlines + 1) * sizeof(*fr.len));
                fr.line[fr.nlines] = p;
                fr.len[fr.nlines++] = nl ? (size_t)(nl - p) : strlen(p);
                if (!nl)
                        break;
                p = nl + 1;
        }
        /* the keys: every enterprise of the stream and the partition record */
        EngineConfig cfg = fr_config();
        Engine *e = NULL;
        if (engine_new(&e, fr.rs[0], &cfg, fr_sink, NULL) < 0)
                abort();
        engine_batch_begin(e);
        for (uint32_t i = 0; i < fr.nlines; i++)
                engine_push(e, fr.line[i], fr.len[i], NULL);
        engine_batch_changes(e, 1, fr_keys, NULL);
        engine_batch_commit(e);
        engine_free(e);
        if (!fr.nkeys || !fr.dkey)
                abort();
}

/* The engine of one input and where it is. */
typedef struct Fr {
        Engine *e;
        int rs;              /* fr.rs[rs] */
        bool restoring;      /* records go in; not yet finished */
        bool ran;            /* anything but restores happened */
        bool batch;
        FrLog log;
        int64_t next;
} Fr;

static void fr_new(Fr *f)
{
        EngineConfig cfg = fr_config();
        if (engine_new(&f->e, fr.rs[f->rs], &cfg, fr_sink, NULL) < 0)
                abort();
        f->restoring = true;
        f->ran = false;
        f->batch = false;
}

static void fr_commit(Fr *f)
{
        if (!f->batch)
                return;
        engine_batch_changes(f->e, ++f->next, fr_log_record, &f->log);
        engine_batch_commit(f->e);
        f->batch = false;
}

/* The restore is over: timers rebuilt, and a restart under other rules
 * graded again as the daemon does. */
static void fr_run(Fr *f)
{
        f->ran = true;
        if (!f->restoring)
                return;
        f->restoring = false;
        engine_restore_finish(f->e);
        if (engine_regrade_due(f->e)) {
                EngineReload rep;
                if (engine_regrade(f->e, &rep) != 0)
                        abort();
                f->batch = true;
                fr_commit(f);
        }
}

static void fr_begin(Fr *f)
{
        fr_run(f);
        if (!f->batch) {
                engine_batch_begin(f->e);
                f->batch = true;
        }
}

/* A new engine from the committed records: each must restore. */
static void fr_restart(Fr *f)
{
        engine_free(f->e);
        fr_new(f);
        for (uint32_t i = 0; i < f->log.n; i++)
                if (engine_restore_record(f->e, f->log.key[i], f->log.klen[i], f->log.val[i], f->log.vlen[i]) != 0) {
                        fprintf(stderr, "a record the engine wrote does not restore: %.*s\n", (int)f->log.klen[i],
                                f->log.key[i]);
                        abort();
                }
        fr_run(f);
}

/* The enterprises, then the partition record, then the dictionary (the
 * seeds of format 1 had no dictionary: their keys are what they were). */
static void fr_key(uint8_t k, const char **key, size_t *klen)
{
        uint32_t i = k % (fr.nkeys + 2);
        if (i == fr.nkeys + 1) {
                *key = fr.dkey;
                *klen = fr.dklen;
                return;
        }
        if (i == fr.nkeys) {
                *key = ENGINE_META_KEY;
                *klen = sizeof(ENGINE_META_KEY) - 1;
                return;
        }
        *key = fr.key[i];
        *klen = fr.klen[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (!fr.rs[0])
                fr_init();
        Fr f = {.rs = 0};
        fr_new(&f);
        const uint8_t *p = data, *end = data + size;
        while (p < end) {
                int op = *p++ % FR_NOPS;
                uint8_t a = p < end ? *p : 0;
                const char *key;
                size_t klen;
                switch (op) {
                case FR_RESTORE: {
                        if (end - p < 3) {
                                p = end;
                                break;
                        }
                        fr_key(p[0], &key, &klen);
                        size_t l = (size_t)p[1] | (size_t)p[2] << 8;
                        p += 3;
                        if (l > (size_t)(end - p))
                                l = (size_t)(end - p);
                        if (f.ran) { /* a restart whose records follow */
                                fr_commit(&f);
                                engine_free(f.e);
                                fr_new(&f);
                                /* from another changelog: the one committed
                                 * so far is not read (the engine would not
                                 * know the dictionary it holds) */
                                fr_log_free(&f.log);
                        }
                        /* the dictionary under the key its bytes give, so that
                         * fuzzed dictionaries are read (a key that does not
                         * match is refused before anything is) */
                        char dk[48];
                        if (key == fr.dkey) {
                                snprintf(dk, sizeof(dk), "%s%016llx", ENGINE_DICT_KEY,
                                         (unsigned long long)hash_fast(p, l));
                                key = dk;
                                klen = strlen(dk);
                        }
                        int r = engine_restore_record(f.e, key, klen, p, l);
                        if (r != 0 && r != -EINVAL && r != -ENOSPC)
                                abort();
                        /* a dictionary restored is in the changelog: the
                         * engine does not write it again, a restart reads it
                         * (where it was first: read again, it was not
                         * written again) */
                        if (r == 0 && key == dk && !fr_log_has(&f.log, key, klen))
                                fr_log_record(&f.log, key, klen, p, l);
                        p += l;
                        break;
                }
                case FR_PUSH:
                        p++;
                        fr_begin(&f);
                        engine_push(f.e, fr.line[a % fr.nlines], fr.len[a % fr.nlines], NULL);
                        break;
                case FR_ABORT:
                        fr_run(&f);
                        if (f.batch)
                                engine_batch_abort(f.e);
                        f.batch = false;
                        break;
                case FR_COMMIT:
                        fr_run(&f);
                        fr_commit(&f);
                        break;
                case FR_EXPLAIN_TEXT:
                case FR_EXPLAIN_JSON:
                        p++;
                        fr_run(&f);
                        fr_key(a, &key, &klen);
                        free(op == FR_EXPLAIN_TEXT ? engine_explain_text(f.e, key, klen)
                                                   : engine_explain_json(f.e, key, klen));
                        break;
                case FR_RELOAD: {
                        fr_run(&f);
                        fr_commit(&f);
                        Engine *n = NULL;
                        EngineReload rep;
                        if (engine_reload(f.e, fr.rs[!f.rs], &n, &rep) != 0)
                                abort();
                        engine_batch_changes(n, ++f.next, fr_log_record, &f.log);
                        engine_batch_commit(n);
                        engine_free(f.e);
                        f.e = n;
                        f.rs = !f.rs;
                        break;
                }
                case FR_ADVANCE:
                        p++;
                        fr_begin(&f);
                        if (engine_stats(f.e)->watermark != INT64_MIN)
                                engine_advance(f.e, engine_stats(f.e)->watermark + (int64_t)a * 86400000);
                        break;
                case FR_RESTART:
                        fr_commit(&f);
                        fr_restart(&f);
                        break;
                }
        }
        fr_run(&f);
        fr_commit(&f);
        Buf g = {0};
        engine_grades_write(f.e, &g);
        buf_free(&g);
        engine_free(f.e);
        fr_log_free(&f.log);
        return 0;
}

#ifdef FR_SEED_MAIN
/*
 * fuzz-records-seed DIR: seeds from real records.  The example stream is
 * committed in batches of a few events; each seed restores the records of
 * the first k batches (every enterprise's latest record and the partition
 * record), then pushes the next events, aborts, pushes again, commits,
 * explains, reloads, restarts and explains again.
 */
static void fr_put_op(Buf *b, int op, int arg)
{
        buf_putc(b, (char)op);
        if (arg >= 0)
                buf_putc(b, (char)arg);
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                fprintf(stderr, "usage: fuzz-records-seed DIR\n");
                return 2;
        }
        fr_init();
        uint32_t seeds = 0;
        for (uint32_t upto = 10; upto <= fr.nlines; upto += 20) {
                EngineConfig cfg = fr_config();
                Engine *e = NULL;
                if (engine_new(&e, fr.rs[0], &cfg, fr_sink, NULL) < 0)
                        return 1;
                FrLog log = {0};
                for (uint32_t i = 0; i < upto; i += 5) {
                        engine_batch_begin(e);
                        for (uint32_t k = i; k < upto && k < i + 5; k++)
                                engine_push(e, fr.line[k], fr.len[k], NULL);
                        engine_batch_changes(e, i + 5, fr_log_record, &log);
                        engine_batch_commit(e);
                }
                engine_free(e);
                Buf b = {0};
                for (uint32_t i = 0; i < log.n; i++) {
                        uint32_t k = 0;
                        while (k < fr.nkeys && !(fr.klen[k] == log.klen[i] && memcmp(fr.key[k], log.key[i], log.klen[i]) == 0))
                                k++;
                        if (log.klen[i] == fr.dklen && memcmp(log.key[i], fr.dkey, fr.dklen) == 0)
                                k = fr.nkeys + 1;
                        if (log.vlen[i] > 0xffff)
                                continue;
                        buf_putc(&b, FR_RESTORE);
                        buf_putc(&b, (char)k); /* k == nkeys: the partition record; nkeys + 1 the dictionary */
                        buf_putc(&b, (char)(log.vlen[i] & 0xff));
                        buf_putc(&b, (char)(log.vlen[i] >> 8));
                        buf_put(&b, log.val[i], log.vlen[i]);
                }
                for (uint32_t k = upto; k < upto + 4 && k < fr.nlines; k++)
                        fr_put_op(&b, FR_PUSH, (int)k);
                fr_put_op(&b, FR_ABORT, -1);
                for (uint32_t k = upto; k < upto + 4 && k < fr.nlines; k++)
                        fr_put_op(&b, FR_PUSH, (int)k);
                fr_put_op(&b, FR_COMMIT, -1);
                for (uint32_t k = 0; k < 3; k++)
                        fr_put_op(&b, FR_EXPLAIN_TEXT, (int)(k + upto));
                fr_put_op(&b, FR_EXPLAIN_JSON, (int)upto);
                fr_put_op(&b, FR_RELOAD, -1);
                fr_put_op(&b, FR_EXPLAIN_TEXT, (int)upto);
                fr_put_op(&b, FR_ADVANCE, 40);
                fr_put_op(&b, FR_COMMIT, -1);
                fr_put_op(&b, FR_RESTART, -1);
                fr_put_op(&b, FR_EXPLAIN_JSON, (int)upto);
                fr_put_op(&b, FR_RELOAD, -1);
                char *path = xasprintf("%s/records-%03u", argv[1], upto);
                FILE *out = fopen(path, "wb");
                if (!out || fwrite(b.p, 1, b.len, out) != b.len || fclose(out) != 0) {
                        perror(path);
                        return 1;
                }
                free(path);
                buf_free(&b);
                fr_log_free(&log);
                seeds++;
        }
        printf("%u seeds\n", seeds);
        return 0;
}
#endif
