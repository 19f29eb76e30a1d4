/*
 * The daemon's main loop: the group consumer, one Engine per assigned
 * input partition (restored from the changelog on assignment), batches of
 * events each committed in one Kafka transaction with its outputs, its
 * changelog records and its input offsets (kafka.md §5).
 */
#ifndef RISKD_DAEMON_LOOP_H
#define RISKD_DAEMON_LOOP_H

#include <signal.h>

#include "include/riskd/rules.h"
#include "src/daemon/config.h"

/* Set by the signal handlers (main.c), read by the loop. */
extern volatile sig_atomic_t daemon_stop;
extern volatile sig_atomic_t daemon_hup;

typedef struct Loop Loop;

/* Creates the Kafka clients and starts the HTTP endpoint, then, with
 * transactions, initialises them (this fences a previous instance with the
 * same transactional_id), answering HTTP requests while it waits for the
 * brokers.  rs is referenced.  Returns 0, -ECANCELED when daemon_stop came
 * during the wait, or another < 0 after logging why. */
int loop_new(Loop **ret, const Config *cfg, RuleSet *rs);
/* Runs until daemon_stop or a fatal error, then drains: the open batch is
 * committed, the group left, the producer flushed.  Returns the exit
 * status: 0 after a stop, 1 after a fatal error. */
int loop_run(Loop *l);
Loop *loop_free(Loop *l);

#endif
