#!/usr/bin/python3
"""The stall watch (stall_timeout): an input partition from which riskd
takes nothing while the broker holds records past riskd's position is
sought again, and its records are processed.

librdkafka 2.0.2 can leave a partition unfetched after a pause and a resume
during a batch consume (its v2.1.0 changelog: app_offset moved for messages
that a barrier then dropped).  The test makes the same state on purpose:
RISKD_FAULT_STALL=P has riskd pause partition P behind its loop's back right
after P's restore resumed it.  With stall_timeout 2s riskd must log the stall
for P, count it in riskd_fetch_stalls_total, and then produce every output
of the stream, equal to `riskctl replay` of each partition.  A second riskd
with the watch off (stall_timeout 0) and the same fault shows that the test
can fail: P's outputs never come.

librdkafka 2.0.2 can also lose the start of a partition's fetch when a
pause follows its assign closely (its issue 2190), as riskd pauses what it
is assigned until the partition's state is restored: the partition stays
assigned and is never fetched, and a seek of it fails (Local: Erroneous
state).  RISKD_FAULT_UNFETCHED=P makes that state: right after the assign,
librdkafka is assigned every partition but P again.  The stall watch's seek
fails, riskd assigns its whole assignment again at its positions, and every
output comes, equal to the replay.
"""
import http.client
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}{{[^}}]*}} (\S+)$", text, re.M))


def test(wd):
    H.require_riskd()
    lines = H.gen_events(24, 1500, 83)
    b = H.Broker(wd)
    produced = H.produce(b.bootstrap, lines)
    by_part = produced.by_partition()
    exp = H.replay(wd, by_part)
    # the partition with the most outputs of its own is the one stalled
    per_part = {p: H.replay(wd, {p: vs}).count_ids() for p, vs in by_part.items()}
    stalled = max(per_part, key=per_part.get)
    assert per_part[stalled] > 0, per_part
    H.log(f"stalling partition {stalled} ({per_part[stalled]} of {exp.count_ids()} outputs)")

    # the watch off: P's outputs never come, the rest do
    off = H.Riskd(wd, b, name="stall-off", stall_timeout="0", group_id="riskd-stall-off")
    off.start(env={"RISKD_FAULT_STALL": str(stalled)})
    rd = H.Reader(b.bootstrap)
    others = H.replay(wd, {p: vs for p, vs in by_part.items() if p != stalled})
    rd.wait_for(others, 120, "the outputs of the partitions not stalled")
    rd.quiesce(6)
    missing = exp.ids() - rd.ids()
    assert len(missing) == per_part[stalled], (
        f"with the watch off {len(missing)} outputs are missing, expected partition {stalled}'s "
        f"{per_part[stalled]}")
    assert off.term() == 0, off.log_tail()
    rd.close()

    # the watch on (a fresh group and transactional id: from the beginning)
    r = H.Riskd(wd, b, name="stall-on", stall_timeout="2s", group_id="riskd-stall-on",
                http_listen="127.0.0.1:0")
    t0 = time.monotonic()
    r.start(env={"RISKD_FAULT_STALL": str(stalled)})
    r.wait_log(rf"RISKD_FAULT_STALL: partition {stalled} paused", 60)
    rd = H.Reader(b.bootstrap)
    rd.wait_for(exp, 120, "every output, the stalled partition's too")
    H.log(f"all outputs after {time.monotonic() - t0:.1f}s")
    r.wait_log(rf"{H.INPUT}\[{stalled}\]: nothing fetched for 2s while the broker holds offsets 0\.\.\d+; "
               rf"seeking to 0 again", 10)
    port = int(re.search(r"http: listening on \S+ \(port (\d+)\)", r.log_text()).group(1))
    assert metric(port, "riskd_fetch_stalls_total") >= 1, "riskd_fetch_stalls_total did not move"
    rd.quiesce(2)
    H.compare(rd.outputs(), exp, "riskd with a stalled partition")
    assert r.alive(), r.log_tail()
    assert r.term() == 0, r.log_tail()
    rd.close()

    # a partition assigned but not fetched: assigned again (a fresh group)
    u = H.Riskd(wd, b, name="unfetched", stall_timeout="2s", group_id="riskd-unfetched")
    u.start(env={"RISKD_FAULT_UNFETCHED": str(stalled)})
    u.wait_log(rf"RISKD_FAULT_UNFETCHED: partition {stalled} assigned but not fetched", 60)
    rd = H.Reader(b.bootstrap)
    rd.wait_for(exp, 120, "every output, the unfetched partition's too")
    u.wait_log(r"an assigned partition is not being fetched .*: assigning the \d+ partitions again", 10)
    rd.quiesce(2)
    H.compare(rd.outputs(), exp, "riskd with a partition assigned but not fetched")
    assert u.alive(), u.log_tail()
    assert u.term() == 0, u.log_tail()
    rd.close()
    assert b.stop() == 0


if __name__ == "__main__":
    H.main(test, "stall")
