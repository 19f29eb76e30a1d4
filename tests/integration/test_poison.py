#!/usr/bin/python3
"""(d) Poison: malformed and rejected records of every reason riskd reports
for Kafka input, interleaved with a valid stream.  Each one is in riskd.dlq
with the header riskd.reason (and riskd.detail, riskd.source.topic/partition/
offset naming where it was read) and its original bytes untouched; the valid
outputs are those of the clean stream; riskd keeps running.

Reasons covered: malformed_json (truncated, bad escape, invalid UTF-8,
trailing comma, a schema key twice, an empty record, a null value),
not_an_object, missing_field, wrong_type, unknown_type, bad_timestamp,
bad_identifier (the enterprise's USCC with another check character), too_large (1.1 MB against the default 1 MiB limit; the daemon's producer needs
message.max.bytes above it, set in the test's kafka: map), too_late (an event
years behind its partition's watermark) and duplicate (a record repeated right
after its original).  over_limit needs a configured enterprise limit and is
covered by `riskctl replay --max-enterprises` in the golden tests.

What the mock cannot show (kafka.md §6): dead letters of an aborted batch stay
visible, so dead letters are matched by their source (partition, offset), a
repeat allowed; each partition keeps at most 5 MiB, so there is one too_large
record.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def enc(d):
    return json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode()


def poisons(template, key):
    """(value, reason) pairs; template: a valid coldchain reading (dict),
    re-keyed to enterprise `key` and given fresh event ids."""
    out = []

    def ev(**over):
        d = dict(template)
        d["event_id"] = f"poison-{key.decode()}-{len(out)}"
        d["enterprise"] = {"uscc": key.decode()}
        d.update(over)
        return d

    def add(v, reason):
        out.append((v, reason))

    add(enc(ev())[:-12], "malformed_json")                          # truncated
    add(b'{"note":"\\q",' + enc(ev())[1:], "malformed_json")        # bad escape
    add(b'{"note":"\xc3\x28",' + enc(ev())[1:], "malformed_json")  # invalid UTF-8
    add(enc(ev())[:-1] + b",}", "malformed_json")                   # trailing comma
    add(b'{"temp_c":1.5,' + enc(ev())[1:], "malformed_json")        # temp_c twice
    add(b"", "malformed_json")                                      # empty record
    add(None, "malformed_json")                                     # null value (a tombstone)
    add(b"[" + enc(ev()) + b"]", "not_an_object")
    add(b"42", "not_an_object")
    d = ev()
    del d["event_id"]
    add(enc(d), "missing_field")
    add(enc(ev(enterprise={"uscc": ""})), "missing_field")
    add(enc(ev(temp_c="4.5")), "wrong_type")
    add(enc(ev(event_id=12345)), "wrong_type")
    add(enc(ev(event_type="weather")), "unknown_type")
    add(enc(ev(occurred_at="yesterday")), "bad_timestamp")
    add(enc(ev(occurred_at="2025-01-01 00:00:40")), "bad_timestamp")
    k = key.decode()  # another check character: GB 32100 catches every single change
    add(enc(ev(enterprise={"uscc": k[:17] + ("0" if k[17] != "0" else "1")})), "bad_identifier")
    add(enc(ev(raw_frame="x" * 1_100_000)), "too_large")
    add(enc(ev(occurred_at="2020-01-01T00:00:00+08:00", reading_at="2020-01-01T00:00:00+08:00")), "too_late")
    return out


def test(wd):
    H.require_riskd()
    valid = H.gen_events(24, 2000, 41)
    template = next(json.loads(v) for v in valid if b'"coldchain_reading"' in v)

    # interleave: a poison record after every k-th valid one, keyed like it;
    # the duplicate repeats the valid record just before it
    lines, keys, expect = [], [], {}  # expect: index in lines -> reason
    bad = None
    step = 0
    for i, v in enumerate(valid):
        lines.append(v)
        keys.append(H.enterprise_key(v))
        if i < 50 or i % 60 != 0:
            continue
        k = H.enterprise_key(v)
        if bad is None:
            bad = poisons(template, k)
        if step < len(bad):
            val, reason = bad[step]
        elif step == len(bad):
            val, reason = v, "duplicate"
        else:
            continue
        step += 1
        expect[len(lines)] = reason
        lines.append(val)
        keys.append(k)
    assert step == len(bad) + 1, f"the stream is too short for {len(bad) + 1} poison records"

    b = H.Broker(wd)
    r = H.Riskd(wd, b, name="poison").start()
    rd = H.Reader(b.bootstrap)
    produced = H.produce(b.bootstrap, lines, keys=keys)

    # the reference: the valid records alone, per partition
    clean = {}
    for i, v in enumerate(lines):
        if i not in expect:
            clean.setdefault(produced.at[i][0], []).append((produced.at[i][1], v))
    exp = H.replay(wd, {p: [v for _, v in sorted(vs)] for p, vs in clean.items()})
    assert not exp.deadletters, f"the valid stream has dead letters: {exp.deadletters[:2]}"
    # and replay of the poisoned partitions rejects the same records for the same reasons
    poisoned = H.replay(wd, {p: [v or b"" for v in vs] for p, vs in produced.by_partition().items()})
    H.compare(poisoned, exp, "replay of the poisoned stream")
    got_reasons = sorted(d["reason"] for d in poisoned.deadletters)
    want_reasons = sorted(r_ for i, r_ in expect.items() if lines[i])  # replay skips empty lines
    assert got_reasons == want_reasons, f"replay's reasons {got_reasons} != {want_reasons}"

    where = {produced.at[i]: i for i in expect}

    def sources(x):
        return {(int(m.headers.get("riskd.source.partition", -1)), int(m.headers.get("riskd.source.offset", -1)))
                for m in x.msgs[H.DLQ]}
    try:
        rd.wait(lambda x: x.ids() >= exp.ids() and sources(x) >= set(where), 120,
                "every valid output and every dead letter")
    except AssertionError as e:
        raise AssertionError(f"{e}; {len(exp.ids() - rd.ids())} outputs missing; dead letters missing from "
                             f"(partition, offset) {sorted(set(where) - sources(rd))}") from None
    rd.quiesce(2)
    H.compare(rd.outputs(), exp, "riskd")

    seen = set()
    for m in rd.msgs[H.DLQ]:
        h = m.headers
        src = (int(h["riskd.source.partition"]), int(h["riskd.source.offset"]))
        assert src in where, f"a dead letter from {src} that was not a poison record: {h} {m.value[:200]!r}"
        i = where[src]
        assert h.get("riskd.source.topic") == H.INPUT, h
        assert h.get("riskd.reason") == expect[i], (
            f"record {i} ({(lines[i] or b'')[:80]!r}): reason {h.get('riskd.reason')}, expected {expect[i]}"
            f" ({h.get('riskd.detail')})")
        assert h.get("riskd.detail"), f"no riskd.detail: {h}"
        assert (m.value or b"") == (lines[i] or b""), (
            f"record {i}: dead letter bytes differ from the original ({len(m.value or b'')} vs "
            f"{len(lines[i] or b'')} bytes)")
        seen.add(src)
    assert seen == set(where), f"missing dead letters: {sorted(set(where) - seen)}"
    H.log(f"dead letters: {len(rd.msgs[H.DLQ])} records for {len(where)} poison records: "
          f"{H.dead_letter_reasons(rd)}")

    assert r.alive(), f"riskd died:\n{r.log_tail()}"
    assert r.term() == 0, f"exit status after SIGTERM:\n{r.log_tail()}"
    rd.close()
    assert b.stop() == 0


if __name__ == "__main__":
    H.main(test, "poison")
