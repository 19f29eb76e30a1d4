#!/usr/bin/python3
"""limits.max_state_bytes on a running riskd (src/daemon/budget.c): the
start-up log states the budget and where it came from; a budget no
enterprise fits in (1 byte) makes riskd warn once that the state is at 80 %
of it or more, and turns every event into a dead letter over_limit whose
detail names limits.max_state_bytes: nothing is lost (every event produced
is a dead letter, and the counters say so), riskd keeps running, and
/metrics shows the budget and its use.  That enterprises already in state
keep working at the budget, and compaction, are the engine's and budget.c's
unit tests (tests/unit/test-engine.c, test-budget.c).

What the mock cannot show (kafka.md §6): dead letters of an aborted batch
stay visible, so they are matched by their source (partition, offset).
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def test(wd):
    H.require_riskd()
    lines = H.gen_events(30, 600, 23)
    keys = [H.enterprise_key(v) for v in lines]
    b = H.Broker(wd)
    r = H.Riskd(wd, b, name="budget", http_listen="127.0.0.1:0", limits={"max_state_bytes": 1})
    r.start()
    r.wait_log(r"state budget \(limits\.max_state_bytes\): 1 bytes, riskd\.yaml", 30)
    port = r.http_port()
    rd = H.Reader(b.bootstrap)
    produced = H.produce(b.bootstrap, lines, keys=keys)
    want = set(produced.at.values())

    def sources(x):
        return {(int(m.headers.get("riskd.source.partition", -1)), int(m.headers.get("riskd.source.offset", -1)))
                for m in x.msgs[H.DLQ]}
    rd.wait(lambda x: sources(x) >= want, 120, "a dead letter for every event")
    rd.quiesce(2)
    for m in rd.msgs[H.DLQ]:
        h = m.headers
        assert h.get("riskd.reason") == "over_limit", h
        assert "the state budget (limits.max_state_bytes, " in h.get("riskd.detail", ""), h
    assert not rd.docs(H.ALERTS) and not rd.docs(H.ADJUSTMENTS), "an output with no enterprise in state"
    H.log(f"{len(lines)} events: each a dead letter over_limit naming limits.max_state_bytes")

    # the warning, once; the counters and gauges
    r.wait_log(r"state at \d+% of its budget \(limits\.max_state_bytes, \d+ of 1 bytes\)", 30)
    assert len(re.findall(r"of its budget \(limits\.max_state_bytes", r.log_text())) == 1, r.log_tail()
    over = 'riskd_rejects_total{reason="over_limit"}'
    used = 'riskd_state_budget_bytes{kind="used"}'
    end = H.deadline(30)
    while True:
        s = H.samples(H.scrape(port))
        if s.get(over, 0) >= len(lines):
            break
        assert time.monotonic() < end, f"over_limit counted {s.get(over)} of {len(lines)}"
        time.sleep(0.1)
    assert s[over] == len(lines), s
    assert sum(v for k, v in s.items() if k.startswith("riskd_events_total")) == 0, s
    assert s['riskd_state_budget_bytes{kind="budget"}'] == 1, s
    assert s[used] > 1, s
    assert s['riskd_enterprises_by_form{form="full"}'] == 0, s
    H.log(f"/metrics: over_limit {s[over]:.0f}, state {s[used]:.0f} bytes of a 1-byte budget")
    assert r.alive(), r.log_tail()
    assert r.term() == 0, r.log_tail()
    rd.close()
    assert b.stop() == 0


if __name__ == "__main__":
    H.main(test, "budget")
