#!/usr/bin/python3
"""(a) Equivalence: a stream through riskd gives the same alerts, shadow
alerts and adjustments (by id and content) and the same final grades as
`riskctl replay` of the same events, and the same dead letters; the last
document of each enterprise on the enterprises topic is the one `riskctl
replay --enterprises` writes for it, in its input's partition, and for the
story also what `riskctl explain --json` says of it (issue 16); with
`topics.enterprises: ""` the story writes no document there.

Two streams, each on its own broker: the example story (examples/events.jsonl,
timers, expiries, hysteresis) and a generated one (riskd-gen, if built).
Half of each stream is produced before riskd starts (it must read from the
beginning), half while it runs.  riskd is then stopped with SIGTERM and must
exit 0.

The reference is replay per input partition (harness.py: riskd keeps one
engine, one watermark, per partition), grace 0.

What the mock cannot show (kafka.md §6): aborted records stay visible, so
ids are compared as sets and every repeat of an id must be identical; exact
counts are not compared.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


META_KEY = b"\x01riskd.partition"  # ENGINE_META_KEY (include/riskd/engine.h)


def check_changelog(b, produced):
    """The changelog is co-partitioned with the input (SPEC §6): each input
    partition's state goes to the same changelog partition, keyed by
    enterprise id, with a partition record (ENGINE_META_KEY)."""
    parts = produced.by_partition()
    keys_in = {}
    for p, vals in parts.items():
        for v in vals:
            keys_in.setdefault(p, set()).add(H.enterprise_key(v))
    cl = H.Reader(b.bootstrap, [H.CHANGELOG])
    cl.wait(lambda x: {m.partition for m in x.msgs[H.CHANGELOG] if m.key == META_KEY} >= set(parts), 60,
            "a partition record in the changelog partition of every input partition")
    for m in cl.msgs[H.CHANGELOG]:
        if not m.key.startswith(b"\x01"):  # the daemon's own records (partition, offsets, replay)
            assert m.key in keys_in.get(m.partition, ()), (
                f"changelog record for {m.key!r} in partition {m.partition}, "
                f"but its events are in input partition(s) {[p for p, k in keys_in.items() if m.key in k]}")
    H.log(f"changelog: {len(cl.msgs[H.CHANGELOG])} records, co-partitioned with the input")
    cl.close()


def last_per_key(msgs):
    """The last value of each key, as the compacted topic keeps it."""
    last = {}
    for m in msgs:
        last[m.key.decode()] = m.value
    return last


def check_enterprises(wd, b, produced, name, explain):
    """The enterprises topic read from the start: the last document per
    key (what a dashboard bootstrapping from the compacted topic ends with)
    is replay --enterprises' of the key's partition, byte for byte, and in
    that partition; with explain, also riskctl explain --json of it."""
    parts = produced.by_partition()
    want, where = {}, {}
    for p in parts:
        with open(wd.file(f"replay-p{p}.enterprises.jsonl"), "rb") as f:
            for line in f.read().splitlines():
                k = json.loads(line)["enterprise_id"]
                want[k], where[k] = line, p
    assert want, "replay --enterprises wrote no document"
    rd = H.Reader(b.bootstrap, [H.ENTERPRISES])
    rd.wait(lambda x: last_per_key(x.msgs[H.ENTERPRISES]) == want, 60,
            f"{name}: the last document of each of {len(want)} enterprises equal to replay --enterprises'")
    for m in rd.msgs[H.ENTERPRISES]:
        k = m.key.decode()
        assert m.partition == where[k], f"{k}: document in partition {m.partition}, its events in {where[k]}"
        assert m.json()["schema"] == "riskd.enterprise/1" and m.json()["enterprise_id"] == k, m.value
    if explain:
        for k, doc in sorted(want.items()):
            r = subprocess.run([H.RISKCTL, "explain", H.RULES, wd.file(f"replay-p{where[k]}.jsonl"), k, "--json",
                                "--grace", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert r.returncode == 0, f"explain {k}: {r.stderr.decode()}"
            assert r.stdout.rstrip(b"\n") == doc, f"explain {k}:\n{r.stdout.decode()}\ntopic:\n{doc.decode()}"
    H.log(f"{name}: {len(rd.msgs[H.ENTERPRISES])} enterprise documents, the last of each of {len(want)} "
          f"enterprises as replay --enterprises{' and explain --json' if explain else ''} give it")
    rd.close()


def case(wd, name, lines, explain=False, off=False):
    """off: topics.enterprises "" (no enterprise documents)."""
    H.log(f"== {name}: {len(lines)} events")
    b = H.Broker(wd)
    half = len(lines) // 2
    produced = H.produce(b.bootstrap, lines[:half])
    r = H.Riskd(wd, b, name=name, **({"topics": {"enterprises": ""}} if off else {})).start()
    rd = H.Reader(b.bootstrap)
    # riskd starts from the beginning: the first half's outputs appear
    first = H.replay(wd, produced.by_partition())
    rd.wait_for(first, 120, f"{name}: the outputs of the first half")
    H.produce(b.bootstrap, lines[half:], produced=produced)
    exp = H.replay(wd, produced.by_partition(),
                   extra=lambda p: ["--enterprises", wd.file(f"replay-p{p}.enterprises.jsonl")])
    assert exp.count_ids() > 0, "the reference has no outputs"
    rd.wait_for(exp, 120, f"{name}: every expected output")
    rd.quiesce(2)
    H.compare(rd.outputs(), exp, name)

    got_dl = sorted(H.dead_letter_reasons(rd).items())
    exp_dl = {}
    for d in exp.deadletters:
        exp_dl[d["reason"]] = exp_dl.get(d["reason"], 0) + 1
    # dead letters of aborted batches stay visible on the mock: compare reasons
    assert {k for k, _ in got_dl} == set(exp_dl), f"dead letters: got {got_dl}, expected {exp_dl}"

    check_changelog(b, produced)
    if off:
        # every output is read, and the documents would have been in
        # their transactions: none is there
        rd_ent = H.Reader(b.bootstrap, [H.ENTERPRISES])
        rd_ent.quiesce(1)
        assert not rd_ent.msgs[H.ENTERPRISES], f"{len(rd_ent.msgs[H.ENTERPRISES])} documents with the topic off"
        rd_ent.close()
        H.log(f"{name}: topics.enterprises \"\": no enterprise document")
    else:
        check_enterprises(wd, b, produced, name, explain)

    assert r.alive(), f"riskd died:\n{r.log_tail()}"
    rc = r.term()
    assert rc == 0, f"riskd exit status {rc} after SIGTERM:\n{r.log_tail()}"
    rd.close()
    assert b.stop() == 0


def test(wd):
    H.require_riskd()
    case(wd, "story", H.story_events(), explain=True)
    case(wd, "story-no-enterprises", H.story_events(), off=True)
    if os.access(H.RISKD_GEN, os.X_OK):
        case(wd, "generated", H.gen_events(48, 5000, 11))
    else:
        H.log("riskd-gen not built: the generated stream is skipped")


if __name__ == "__main__":
    H.main(test, "equivalence")
