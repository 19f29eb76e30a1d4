#!/usr/bin/python3
"""Live rule reload (issue 5 point 3, issue 12 point 7): riskd runs on a
copy of the national pack; mid-stream the copy changes (credit.class_b
scores 7 instead of 5 and says so; a new rule appears; band A of
grading.yaml ends at 25 instead of 30) and riskd gets SIGHUP.  The outputs
must equal `riskctl replay --reload NEW --reload-after N` per input
partition, N being the number of that partition's events before the
reload: no event lost or applied twice, unchanged rules keep their state,
the changed and the new rule start fresh.  The reload grades every
enterprise again at once: those the new band A no longer holds rise to B
(the risk index's band: the pack declares the official model, whose
official grade keeps its assessment) with an adjustment whose cause is
`reload`, carrying both rules versions,
the score without the dropped credit.class_b points, at the partition's
watermark (its last event before the reload), and the log counts them.
The reload's transaction is aborted once (an injected EndTxn error): riskd
keeps the old rules and state, tries again, and the outputs are the same.
Then a broken rule file: riskd keeps the rules it has (the failure in its
log), and the stream goes on under them.  Last, riskd stops, band B ends at
40 instead of 45, and riskd starts again: once restored, every partition
moves from the rules of its changelog to the new ones as a reload does,
enterprises whose index is between 40 and 45 rising from B to C with cause
reload.

The reload happens between batches once every event before it was
committed: the test knows it from riskd's debug log ("batch committed: N
events"), because the position of a reload in the stream is what the
reference needs.  Not shown here: /metrics and /v1/rules (HTTP tests).
"""
import datetime
import json
import os
import re
import shutil
import subprocess
import time
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def committed(r):
    return sum(int(n) for n in re.findall(r"batch committed: (\d+) events", r.log_text()))


def wait_committed(r, n, timeout=120):
    end = H.deadline(timeout)
    while committed(r) < n:
        assert r.alive(), f"riskd died:\n{r.log_tail()}"
        if time.monotonic() > end:
            raise AssertionError(f"riskd committed {committed(r)} of {n} events in {timeout}s:\n{r.log_tail()}")
        time.sleep(0.05)


def version(rules):
    out = subprocess.run([H.RISKCTL, "check", rules], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         check=True).stdout.decode()
    return re.search(r"version ([0-9a-f]{16})", out).group(1)


def utc(text):
    """An event time as riskd writes it: UTC, milliseconds only when not 0."""
    t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(datetime.timezone.utc)
    ms = t.microsecond // 1000
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{ms:03d}" if ms else "") + "Z"


def band(score, bands):
    """The grade the score alone gives (docs/outputs.md §2): bands are (grade, max or None)."""
    for g, mx in bands:
        if mx is None or score <= mx:
            return g
    return bands[-1][0]


def check_reload_adjustments(got, by_partition, before, vold, vnew, new_bands, rise, dropped=None):
    """The adjustments of the move from rules vold to vnew: at once, cause
    reload, both versions, graded under the new bands, without the points
    of the changed rule `dropped`, at the partition's watermark (grace 0:
    its last event before the move; before: events per partition, None:
    all); rise: (grade before, grade after, lowest score excluded, highest
    score): some enterprise must have risen so by the new bands (its grade,
    or under the official model its risk index's band)."""
    wm, part = {}, {}
    for p, lines in by_partition.items():
        for line in lines[:before.get(p, 0)] if before is not None else lines:
            d = json.loads(line)
            part[d["enterprise"]["uscc"]] = p
            t = utc(d["occurred_at"])
            wm[p] = max(wm.get(p, t), t, key=lambda x: datetime.datetime.fromisoformat(x.replace("Z", "+00:00")))
    # a record of an aborted transaction stays visible on the mock: by id
    rel = list({d["adjustment_id"]: d for d in got.adjustments
                if d["cause"] == "reload" and d["rules_version"] == vnew}.values())
    assert rel, f"the move to rules {vnew} raised no grade (cause reload)"
    rises = 0
    for d in rel:
        assert d["rules_version_before"] == vold, d
        assert d["cause_event_id"] is None, d
        assert d["ts"] == wm[part[d["enterprise_id"]]], (d, wm[part[d["enterprise_id"]]])
        assert d["band"] == band(d["score"], new_bands), d
        assert d["score"] == d["static_score"] + sum(c["points"] for c in d["contributions"]), d
        # every firing of the changed rule so far was before the reload: dropped
        assert not any(c["rule_id"] == dropped for c in d["contributions"]), d
        # under the official model (the shipped pack) new bands move the risk
        # index's band at once, and the official grade where it is assessed
        # again (a changed grading file): either score, in the band's range
        moves = [((d["previous"]["grade"], d["current"]["grade"]), d["score"])]
        if "official" in d:
            moves = [((d["index"]["previous_band"], d["index"]["band"]), d["score"]),
                     ((d["previous"]["grade"], d["current"]["grade"]), d["official"]["score"])]
        rises += any(m == rise[:2] and rise[2] < s <= rise[3] for m, s in moves)
    assert rises, f"no enterprise rose from {rise[0]} to {rise[1]} by the new bands"
    assert not [d for d in got.adjustments if d["cause"] != "reload" and "rules_version_before" in d]
    H.log(f"{len(rel)} adjustments with cause reload to {vnew}, {rises} of them {rise[0]} -> {rise[1]} by the new bands")
    return len(rel)


def regraded_in_log(text):
    """The adjustments with cause reload of every move to new rules the log
    reports (grade, mode or frequency changed, or the score alone)."""
    return sum(int(n) for n in re.findall(r"applied to partitions? .* (\d+) adjustments with cause reload", text))


def test(wd):
    H.require_riskd()
    old = os.path.join(wd.path, "rules-old")
    new = os.path.join(wd.path, "rules-new")
    live = os.path.join(wd.path, "rules")
    shutil.copytree(H.RULES, old, ignore=shutil.ignore_patterns("tests"))
    shutil.copytree(old, new)
    with open(os.path.join(new, "credit.yaml"), encoding="utf-8") as f:
        text = f.read()
    changed = re.sub(r'(id: credit\.class_b\n(?:    .*\n)*?    score: )5\n', r'\g<1>7\n', text, count=1)
    changed = changed.replace('message: "信用风险分类: {credit_class:label}"', 'message: "信用风险分类: {credit_class:label} (7分)"', 1)
    assert changed != text, "credit.class_b not found in rules/credit.yaml"
    with open(os.path.join(new, "credit.yaml"), "w", encoding="utf-8") as f:
        f.write(changed)
    with open(os.path.join(new, "grading.yaml"), encoding="utf-8") as f:
        text = f.read()
    changed = text.replace("{ grade: A, max: 30,", "{ grade: A, max: 25,", 1)
    assert changed != text, "band A not found in rules/grading.yaml"
    with open(os.path.join(new, "grading.yaml"), "w", encoding="utf-8") as f:
        f.write(changed)
    with open(os.path.join(new, "zz-reload.yaml"), "w", encoding="utf-8") as f:
        f.write('rules:\n'
                '  - id: reload.penalty_seen\n'
                '    desc: a rule added by a reload\n'
                '    on: credit_record\n'
                '    when: record_type == "administrative_penalty"\n'
                '    severity: info\n'
                '    basis: "test"\n'
                '    message: "处罚记录 (added by a reload)"\n')
    shutil.copytree(old, live)

    lines = H.gen_events(48, 6000, 71)
    first, second, third = lines[:2500], lines[2500:4500], lines[4500:]
    b = H.Broker(wd, partitions=12)
    r = H.Riskd(wd, b, name="riskd", rules=live, log_level="debug")
    b.ok(f"coordinator transaction {r.cfg['transactional_id']} 1")
    r.start()
    rd = H.Reader(b.bootstrap)

    produced = H.produce(b.bootstrap, first)
    before = {p: len(v) for p, v in produced.by_partition().items()}
    wait_committed(r, len(first))
    exp = H.replay(wd, produced.by_partition(), rules=old)
    rd.wait_for(exp, 120, "the outputs before the reload")

    # the good reload: swap the directory's contents, SIGHUP
    shutil.rmtree(live)
    shutil.copytree(new, live)
    # riskd is idle: the next EndTxn is the reload's, and it aborts
    b.ok("broker-errors 1 EndTxn 2 NOT_ENOUGH_REPLICAS NO_ERROR")
    mark = len(r.log_text())
    r.proc.send_signal(signal.SIGHUP)
    r.wait_log(r"reload done", 30, start=mark)
    r.wait_log(r"the reload of partitions .* was not committed: they keep the state of rules", 30, start=mark)
    r.wait_log(r"applied to partition", 30, start=mark)
    H.wait_pending(b, 1, "EndTxn", procs=[r], timeout=30)
    report = re.search(r"rules \S+ -> \S+: .*", r.log_text()[mark:]).group(0)
    H.log("riskd:", report)
    assert "1 changed and 1 new" in report and "credit.class_b" in report and "reload.penalty_seen" in report, report
    H.log("riskd:", re.search(r"rules \S+ -> \S+ applied to partitions? .*", r.log_text()[mark:]).group(0))
    regraded = regraded_in_log(r.log_text()[mark:])

    H.produce(b.bootstrap, second, produced=produced)
    wait_committed(r, len(first) + len(second))

    def switch(p):
        return ["--reload", new, "--reload-after", str(before.get(p, 0))]

    exp = H.replay(wd, produced.by_partition(), rules=old, extra=switch)
    rd.wait_for(exp, 120, "the outputs after the reload")
    rd.quiesce(2)
    H.compare(rd.outputs(), exp, "reload")
    got = rd.outputs()
    assert any(d["rule_id"] == "reload.penalty_seen" for d in got.alerts), "the new rule never fired"
    assert any(d["rule_id"] == "credit.class_b" and "(7分)" in d["message"] for d in got.alerts), \
        "the changed rule never fired after the reload"
    nrel = check_reload_adjustments(got, produced.by_partition(), before, version(old), version(new),
                                    [("A", 25), ("B", 45), ("C", 60), ("D", None)], ("A", "B", 25, 30),
                                    "credit.class_b")
    assert nrel == regraded, f"{nrel} adjustments with cause reload, the log says {regraded} re-graded"

    # a broken reload: the old rules stay
    with open(os.path.join(live, "zz-broken.yaml"), "w", encoding="utf-8") as f:
        f.write("rules:\n  - id: broken.rule\n    on: credit_record\n    when: no_such_field > 1\n")
    mark = len(r.log_text())
    r.proc.send_signal(signal.SIGHUP)
    r.wait_log(r"reload failed: 1 error", 30, start=mark)
    log = r.log_text()[mark:]
    assert re.search(r"zz-broken\.yaml:4:\d+: error\[E\d+\]", log), f"no file:line:col diagnostic:\n{log}"
    H.log("riskd:", re.search(r"reload failed.*", log).group(0))
    H.produce(b.bootstrap, third, produced=produced)
    wait_committed(r, len(lines))
    exp = H.replay(wd, produced.by_partition(), rules=old, extra=switch)
    rd.wait_for(exp, 120, "the outputs after the broken reload")
    rd.quiesce(2)
    H.compare(rd.outputs(), exp, "after a broken reload")
    assert not H.dead_letter_reasons(rd), "dead letters from a clean stream"
    assert r.term() == 0, r.log_tail()

    # a restart with changed rules (band B ends at 40): the same as a reload
    # once the partitions are restored, from the rules of the changelog
    new2 = os.path.join(wd.path, "rules-new2")
    shutil.copytree(new, new2)
    with open(os.path.join(new2, "grading.yaml"), encoding="utf-8") as f:
        text = f.read()
    changed = text.replace("{ grade: B, max: 45,", "{ grade: B, max: 40,", 1)
    assert changed != text, "band B not found in rules/grading.yaml"
    with open(os.path.join(new2, "grading.yaml"), "w", encoding="utf-8") as f:
        f.write(changed)
    shutil.rmtree(live)
    shutil.copytree(new2, live)
    mark = len(r.log_text())
    r.start()
    r.wait_log(r"applied to partition", 60, start=mark)
    rd.quiesce(2)
    text = r.log_text()[mark:]
    for line in re.findall(r"rules \S+ -> \S+ applied to .*", text):
        H.log("riskd:", line)
    nrel = check_reload_adjustments(rd.outputs(), produced.by_partition(), None, version(new), version(new2),
                                    [("A", 25), ("B", 40), ("C", 60), ("D", None)], ("B", "C", 40, 45))
    # only grading.yaml changed: no enterprise loses state (windows included)
    assert not [n for n in re.findall(r"applied to .*?(\d+) lost the state", text) if n != "0"], text
    assert nrel == regraded_in_log(text), f"{nrel} adjustments with cause reload, the log says otherwise:\n{text}"
    assert r.term() == 0, r.log_tail()
    rd.close()
    assert b.stop() == 0


if __name__ == "__main__":
    H.main(test, "reload")
