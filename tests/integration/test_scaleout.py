#!/usr/bin/python3
"""(c) Scale-out: three riskd in one consumer group over 12 input
partitions, each with its own transactional.id.  One is killed with SIGKILL
mid-stream; after the session timeout the other two take its partitions
over, restore their state from the changelog and go on.  The union of the
outputs equals the single-instance run (replay per partition), repeats are
identical, final grades equal.  The two survivors then stop cleanly.

What the mock cannot show (kafka.md §6): static membership
(group.instance.id) is not emulated and the killed member is only dropped
after the session timeout (6 s here, the last joiner's value is enforced);
the killed member's open transaction stays visible (no markers), so repeats
are expected and ids are compared as sets; transactional offsets are
discarded, so the new owners resume from the changelog's partition records;
KIP-447 generation fencing of the zombie's offset commits cannot be shown.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def test(wd):
    H.require_riskd()
    lines = H.gen_events(60, 6000, 31)
    total = len({d.get("alert_id") or d.get("adjustment_id") for d in H.replay_lines(wd, lines)})
    b = H.Broker(wd, partitions=12)
    members = [H.Riskd(wd, b, name=f"member{i}") for i in range(3)]
    rd = H.Reader(b.bootstrap)
    for m in members:
        m.start()
    feed = H.Feeder(b.bootstrap, lines, pace=len(lines) / 10.0)  # about 10 s of input
    feed.start()
    want = max(1, total // 3)
    rd.wait(lambda x: x.count() >= want, 120, f"{want} of about {total} outputs")
    for m in members:
        assert m.alive(), f"{m.name} died:\n{m.log_tail()}"
    members[1].kill()
    H.log(f"member1 killed after {rd.count()} outputs, {len(feed.produced)} events produced")
    feed.join()
    exp = H.replay(wd, feed.produced.by_partition())
    rd.wait_for(exp, 180, "every expected output from the two survivors")
    rd.quiesce(2)
    H.compare(rd.outputs(), exp, "scale-out")
    dl = H.dead_letter_reasons(rd)
    assert set(dl) <= {"duplicate"}, f"unexpected dead letters {dl}"
    for m in (members[0], members[2]):
        assert m.alive(), f"{m.name} died:\n{m.log_tail()}"
    for m in (members[0], members[2]):
        assert m.term() == 0, f"{m.name}: exit status after SIGTERM:\n{m.log_tail()}"
    rd.close()
    assert b.stop() == 0


if __name__ == "__main__":
    H.main(test, "scaleout")
