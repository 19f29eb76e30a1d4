#!/usr/bin/python3
"""The commit of a batch overlaps the processing of the next (issue 14,
point 2): riskd's committer thread commits batch N while the main loop
decodes and evaluates batch N+1, whose outputs wait in memory.  The state
where both are in the air is made on purpose with a test-only fault,
RISKD_FAULT_COMMIT_HOLD=PATH: a commit, its records delivered, waits until
PATH exists.  Group commit: meanwhile the next batch goes on taking events
past batch_max, up to its cap (4 x batch_max), and only then waits for the
held commit; the test waits until riskd's debug log says so ("is ready (at
its cap, 4 x batch_max); it waits for the commit of the one before"),
checks that the batch holds exactly the cap (it grew past batch_max and
stopped there), then:

- kill: with RISKD_FAULT_COMMIT_KILL=1 riskd dies (SIGKILL) as PATH appears,
  the commit in flight and the next batch processed but not produced;
  restarted without the fault, the outputs are `riskctl replay`'s by id,
  none lost, no dead letter (nothing applied twice);
- abort: an EndTxn error is injected before PATH appears, so the held
  transaction aborts with the next batch buffered: riskd rolls both back,
  rewinds to the last commit and goes on; the outputs are still exactly the
  replay's by id, with no dead letter, and riskd ends cleanly on SIGTERM.

What the mock cannot show (kafka.md §6): a killed riskd's transaction stays
visible (no markers), its changelog records too, so the restarted riskd
restores the killed batch as if committed and its outputs are there already
(a real broker would hide both and riskd would redo the batch); aborted
outputs stay visible as well, so ids are compared as sets (a redone batch
repeats them, identical), never counts.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

TXN_BROKER, GROUP_BROKER = 1, 2
READY = r"a batch of (\d+) events is ready( \(at its cap, 4 x batch_max\))?; it waits for the commit"
GROW = 4  # the cap, in batch_max (riskd.yaml(5))
HELD = r"RISKD_FAULT_COMMIT_HOLD: the commit of a batch of \d+ events waits"


def held_with_next_batch(r, gate):
    """Wait until a commit is held and the next batch, grown past
    batch_max, is at its cap behind it."""
    r.wait_log(HELD, 60)
    r.wait_log(READY, 60)  # either line may come first (two threads)
    m = re.search(READY, r.log_text())
    batch_max = r.cfg["batch_max"]
    assert m.group(2) and int(m.group(1)) == GROW * batch_max, \
        (f"the batch behind the held commit waits with {m.group(1)} events, not at its cap "
         f"({GROW} x batch_max {batch_max}):\n{r.log_tail()}")
    assert not os.path.exists(gate)


def kill_case(wd, lines):
    name = "overlap-kill"
    parts = H.chunks(lines, 3)
    b = H.Broker(wd)
    r = H.Riskd(wd, b, name=name, log_level="debug")
    gate = wd.file(f"{name}.gate")
    r.start(env={"RISKD_FAULT_COMMIT_HOLD": gate, "RISKD_FAULT_COMMIT_KILL": "1"})
    rd = H.Reader(b.bootstrap)
    produced = H.Produced()
    H.produce(b.bootstrap, parts[0], produced=produced)
    held_with_next_batch(r, gate)
    open(gate, "w").close()
    rc = r.wait_exit(60)
    assert rc != 0 and "RISKD_FAULT_COMMIT_KILL: dying with the commit in flight" in r.log_text(), \
        f"riskd did not die at the held commit (status {rc}):\n{r.log_tail()}"
    H.log(f"{name}: killed with a commit in flight and the next batch processed")
    r.start()
    for chunk in parts[1:]:
        H.produce(b.bootstrap, chunk, produced=produced)
    exp = H.replay(wd, produced.by_partition())
    rd.wait_for(exp, 180, f"{name}: every expected output after the restart")
    rd.quiesce(2)
    H.compare(rd.outputs(), exp, name)
    dl = H.dead_letter_reasons(rd)
    assert not dl, f"{name}: dead letters from a clean stream: {dl} (an event applied twice, or lost state)"
    assert r.alive(), f"riskd died:\n{r.log_tail()}"
    assert r.term() == 0, f"exit status after SIGTERM:\n{r.log_tail()}"
    rd.close()
    assert b.stop() == 0


def abort_case(wd, lines):
    name = "overlap-abort"
    parts = H.chunks(lines, 3)
    b = H.Broker(wd)
    r = H.Riskd(wd, b, name=name, log_level="debug")
    b.ok(f"coordinator transaction {r.cfg['transactional_id']} {TXN_BROKER}")
    b.ok(f"coordinator group {r.cfg['group_id']} {GROUP_BROKER}")
    gate = wd.file(f"{name}.gate")
    r.start(env={"RISKD_FAULT_COMMIT_HOLD": gate})
    rd = H.Reader(b.bootstrap)
    produced = H.Produced()
    H.produce(b.bootstrap, parts[0], produced=produced)
    held_with_next_batch(r, gate)
    # the held commit's EndTxn fails (abortable); the abort's goes through
    b.ok(f"broker-errors {TXN_BROKER} EndTxn 2 NOT_ENOUGH_REPLICAS NO_ERROR")
    open(gate, "w").close()
    H.wait_pending(b, TXN_BROKER, "EndTxn", procs=[r], timeout=60)
    r.wait_log(r"transaction aborted at commit_transaction", 60)
    r.wait_log(r"rewound \d+ input partition\(s\) to the end of the last committed batch", 60)
    H.log(f"{name}: the held transaction aborted with the next batch buffered")
    for chunk in parts[1:]:
        H.produce(b.bootstrap, chunk, produced=produced)
    exp = H.replay(wd, produced.by_partition())
    rd.wait_for(exp, 180, f"{name}: every expected output after the abort")
    rd.quiesce(2)
    H.compare(rd.outputs(), exp, name)
    dl = H.dead_letter_reasons(rd)
    assert not dl, (f"{name}: dead letters from a clean stream: {dl} (a `duplicate` means an event was applied "
                    "again: the batch after the aborted one not rolled back, or the input rewound too far)")
    assert r.alive(), f"riskd died:\n{r.log_tail()}"
    assert r.term() == 0, f"exit status after SIGTERM:\n{r.log_tail()}"
    rd.close()
    assert b.stop() == 0


def test(wd):
    H.require_riskd()
    lines = H.gen_events(48, 3000, 71)
    kill_case(wd, lines)
    abort_case(wd, lines)


if __name__ == "__main__":
    H.main(test, "overlap")
