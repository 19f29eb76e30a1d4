/*
 * What the files of riskctl share: riskctl.c (the command table, main,
 * check and disasm), riskctl_run.c (the engine run over a file of events
 * that replay, explain and diff make, with their options) and
 * riskctl_replay.c (those three commands and the replay summary).
 * Private to src/cli.
 */
#ifndef RISKD_CLI_RISKCTL_H
#define RISKD_CLI_RISKCTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "include/riskd/engine.h"
#include "include/riskd/rules.h"
#include "include/riskd/util.h"
#include "src/cli/backtest.h"

typedef struct Command {
        const char *name;
        const char *usage;       /* riskctl NAME --help; NULL: the command prints its own */
        const char *opts;        /* replay, explain, diff: the codes of run_options it takes */
        unsigned formats;        /* --format values it takes: bits of BtFormat */
        int (*run)(int argc, char **argv); /* argv[0] is NAME */
} Command;

const Command *command_find(const char *name);
/* A usage error: what is wrong (when said), then the command's usage; 2. */
int usage_error(const Command *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* getopt_long (with opterr 0 and a ':' first in its optstring) returned
 * '?' or ':' for the option at argv[optind - 1]: say which, then the usage. */
int option_error(const Command *cmd, int c, char **argv);

/* ---- riskctl_run.c ---- */

typedef struct Replay {
        const RuleSet *rs;
        FILE *out;               /* alerts and adjustments; NULL: not written */
        FILE *dlq;               /* dead letters as JSON lines; NULL: not written */
        const char *file;
        uint64_t *by_rule;       /* alerts per rule index */
        BtRun *bt;               /* diff: every output kept; NULL: not kept */
        bool later;              /* --until: an event later than TIME was read (and is held) */
        bool reloaded;           /* --reload happened (after line reload_after): what it did */
        uint64_t reload_after;
        EngineReload rep;
        Buf changed, added, removed; /* rule ids, each as a JSON string and a comma */
} Replay;

typedef struct ReplayOpts {
        EngineConfig cfg;
        const char *dlq;
        const char *grades;
        const char *enterprises;        /* --enterprises FILE */
        int64_t until;
        bool has_until, quiet;
        BtFormat format;
        const char *reload;      /* --reload DIR: switch to these rules ... */
        uint64_t reload_after;   /* ... after this many lines (--reload-after N) */
} ReplayOpts;

/* The options of replay, explain, diff and between min and max positional
 * arguments (else the usage error expected); returns the index of the
 * first positional argument left in argv (compacted), -1 after a usage
 * error, 0 after --help (printed). */
int replay_opts(int argc, char **argv, ReplayOpts *o, const Command *cmd, int min, int max, const char *expected);
/* The rules of dir, or NULL after their problems are reported (*status
 * 2: not readable, 1: errors). */
RuleSet *load_or_report(const char *dir, const char *cmd, int *status);
/* A new engine over rs fed every line of file (with --until, --reload),
 * rp counting its alerts per rule; 0 and *ret, or the exit status after
 * the problem is reported. */
int run_engine(RuleSet *rs, const ReplayOpts *o, const char *file, Replay *rp, Engine **ret);
/* What a run left in rp (its counts, the ids of a reload). */
void replay_deinit(Replay *rp);
double now_sec(void);

/* ---- riskctl_replay.c ---- */

int cmd_replay(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_diff(int argc, char **argv);

#endif
