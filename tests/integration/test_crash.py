#!/usr/bin/python3
"""(b) Crash: riskd is killed with SIGKILL while a stream is being produced,
after about 1/3 and again after about 2/3 of the outputs appeared, and
restarted each time.  The union of the output ids equals the uninterrupted
run, every repeat of an id is identical, and the final grades (the last
adjustment per enterprise) are equal.  Run with transactions on, then off
(effectively-once, SPEC §6), each on its own broker.

The uninterrupted run is `riskctl replay` per input partition, which
test_equivalence shows equal to an uninterrupted riskd.

What the mock cannot show (kafka.md §6): a killed riskd's open transaction is
never aborted by the mock and its records stay visible (no markers), so
repeats are expected and ids are compared as sets, not counts; transactional
offset commits are discarded, so the restarted riskd can only resume from the
input offset in its changelog's partition record; uncommitted changelog
records are visible to the restore too, which a real broker would hide (a
`duplicate` dead letter after a restart can come from that and is reported,
not failed, with transactions on).  With transactions off a crash between an
enterprise's changelog record and its partition's record makes the restarted
riskd read again events its restored state already holds: those are expected
repeats, counted (riskd_replayed_total, a notice per partition), never a
`duplicate` dead letter; the case with transactions off first dies exactly
there (RISKD_FAULT_CRASH_STATE), so that it has repeats every run; a
second such case has 4 enterprises, each with tens of events in a batch.  Zombie fencing by a second instance with the same
transactional.id cannot happen on the mock.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def case(wd, name, lines, transactions):
    H.log(f"== {name}: {len(lines)} events, transactions {transactions}")
    total = len({d.get("alert_id") or d.get("adjustment_id") for d in H.replay_lines(wd, lines, name=name)})
    b = H.Broker(wd)
    r = H.Riskd(wd, b, name=name, transactions=transactions)
    rd = H.Reader(b.bootstrap)
    feed = H.Feeder(b.bootstrap, lines, pace=len(lines) / 8.0)  # about 8 s of input
    feed.start()
    if transactions:
        r.start()
    else:
        # first a crash at the worst moment, on purpose: the 10th batch's
        # enterprise records delivered, its partition records not
        r.start(env={"RISKD_FAULT_CRASH_STATE": "10"})
        r.wait_exit(120)
        assert "RISKD_FAULT_CRASH_STATE: dying" in r.log_text(), r.log_tail()
        H.log(f"{name}: died between the state and the partition records")
        r.start()
    for frac in (1 / 3, 2 / 3):
        want = max(1, int(total * frac))
        rd.wait(lambda x: x.count() >= want, 120, f"{name}: {want} of about {total} outputs")
        r.kill()
        H.log(f"{name}: killed after {rd.count()} distinct outputs, {len(feed.produced)} events produced")
        r.start()
    feed.join()
    exp = H.replay(wd, feed.produced.by_partition())
    rd.wait_for(exp, 180, f"{name}: every expected output after the restarts")
    rd.quiesce(2)
    H.compare(rd.outputs(), exp, name)
    dl = H.dead_letter_reasons(rd)
    if dl:
        H.log(f"{name}: dead letters after the restarts (mock: uncommitted changelog visible): {dl}")
    assert set(dl) <= {"duplicate"}, f"{name}: unexpected dead letters {dl}"
    # the feed has no repeated ids: with transactions off every repeat is a
    # replay after a crash, which is counted, not dead-lettered (with them
    # on, the mock's visible uncommitted changelog can still make some)
    replayed = sum(int(n) for n in re.findall(r"partition \d+: (\d+) events? read again", r.log_text()))
    H.log(f"{name}: {replayed} expected repeats counted after the restarts")
    if not transactions:
        assert not dl, f"{name}: repeats after a crash became dead letters {dl}"
        assert replayed > 0, f"{name}: no repeat counted after the crash between state and partition records"
    assert r.alive(), f"riskd died:\n{r.log_tail()}"
    assert r.term() == 0, f"exit status after SIGTERM:\n{r.log_tail()}"
    rd.close()
    assert b.stop() == 0


def test(wd):
    H.require_riskd()
    lines = H.gen_events(48, 6000, 21)
    case(wd, "crash-txn", lines, True)
    case(wd, "crash-notxn", lines, False)
    # few enterprises: each gets far more events in the batch that dies
    # than limits.recent_ids (8), so those whose records were written must
    # skip all of them, not only the last 8
    case(wd, "crash-notxn-few", H.gen_events(4, 3000, 22), False)


if __name__ == "__main__":
    H.main(test, "crash")
