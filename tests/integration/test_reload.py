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
with an adjustment whose cause is `reload`, carrying both rules versions,
the score without the dropped credit.class_b points, at the partition's
watermark (its last event before the reload), and the log counts them.
The reload's transaction is aborted once (an injected EndTxn error): riskd
keeps the old rules and state, tries again, and the outputs are the same.
Then a broken rule file: riskd keeps the rules it has (the failure in its
log), and the stream goes on under them.

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


def check_reload_adjustments(got, by_partition, before, vold, vnew):
    """The reload's own adjustments: at once, cause reload, both versions,
    graded under the new bands, without the changed rule's points, at the
    partition's watermark (grace 0: its last event before the reload)."""
    wm, part = {}, {}
    for p, lines in by_partition.items():
        for i, line in enumerate(lines[:before.get(p, 0)]):
            d = json.loads(line)
            part[d["enterprise"]["uscc"]] = p
            t = utc(d["occurred_at"])
            wm[p] = max(wm.get(p, t), t, key=lambda x: datetime.datetime.fromisoformat(x.replace("Z", "+00:00")))
    new_bands = [("A", 25), ("B", 45), ("C", 60), ("D", None)]
    # a record of an aborted transaction stays visible on the mock: by id
    rel = list({d["adjustment_id"]: d for d in got.adjustments if d["cause"] == "reload"}.values())
    assert rel, "the reload raised no grade (cause reload)"
    rises = 0
    for d in rel:
        assert d["rules_version_before"] == vold and d["rules_version"] == vnew, d
        assert d["cause_event_id"] is None, d
        assert d["ts"] == wm[part[d["enterprise_id"]]], (d, wm[part[d["enterprise_id"]]])
        assert d["band"] == band(d["score"], new_bands), d
        assert d["score"] == d["static_score"] + sum(c["points"] for c in d["contributions"]), d
        # every credit.class_b firing so far was before the reload: dropped
        assert not any(c["rule_id"] == "credit.class_b" for c in d["contributions"]), d
        rises += d["previous"]["grade"] == "A" and d["current"]["grade"] == "B" and 25 < d["score"] <= 30
    assert rises, "no enterprise rose from A to B by the new band A"
    assert not [d for d in got.adjustments if d["cause"] != "reload" and "rules_version_before" in d]
    H.log(f"{len(rel)} adjustments with cause reload, {rises} of them A -> B by the new band A")
    return len(rel)


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
    changed = changed.replace('message: "信用风险分类 {credit_class}"', 'message: "信用风险分类 {credit_class} (7分)"', 1)
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
    applied = re.search(r"rules \S+ -> \S+ applied to partitions? .*", r.log_text()[mark:]).group(0)
    H.log("riskd:", applied)
    regraded = int(re.search(r"(\d+) re-graded", applied).group(1))

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
    nrel = check_reload_adjustments(got, produced.by_partition(), before, version(old), version(new))
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
    rd.close()
    assert b.stop() == 0


if __name__ == "__main__":
    H.main(test, "reload")
