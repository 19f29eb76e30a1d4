#!/usr/bin/python3
"""riskd's HTTP endpoint (issue 5 points 3-5), on 127.0.0.1 with a port the
kernel picks (http_listen "127.0.0.1:0"; riskd logs it):

- /readyz is 503 until the partitions are restored, then 200; /healthz 200;
- /metrics passes `promtool check metrics`, has every metric the operator
  guide names, and the counters move with the input: events by type,
  rejects by reason (malformed lines fed on purpose), transactions, lag back
  to 0, restores, alerts and adjustments equal to the outputs read back;
- /v1/enterprises/{id} is `riskctl explain --json` of the same events (that
  enterprise's partition) and valid against docs/schemas/enterprise.schema.json,
  /v1/rules against docs/schemas/rules.schema.json; an unknown id is 404, a bad id 400, a wrong
  method 405, an overlong path 414, an oversized body 413, an unknown path
  404, each with a JSON error;
- POST /v1/reload of a broken rule directory: 422, the old rules stay, the
  failure in /v1/rules (last_error), /metrics (reloads failed) and the log;
- 500 concurrent connections from a second process are all answered and
  riskd goes on processing.
"""
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

try:
    import jsonschema
except ImportError:
    jsonschema = None


def schema_valid(name, doc):
    """doc against docs/schemas/NAME.schema.json (the document riskd's HTTP
    API promises); an AssertionError naming the first violation."""
    assert jsonschema, "python3-jsonschema is missing (scripts/setup installs it)"
    with open(os.path.join(H.SRC, "docs", "schemas", name + ".schema.json"), encoding="utf-8") as f:
        v = jsonschema.Draft202012Validator(json.load(f))
    errs = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
    assert not errs, f"not valid against {name}.schema.json: {errs[0].message} at {list(errs[0].path)}"

METRICS = ["riskd_events_total", "riskd_rejects_total", "riskd_alerts_total", "riskd_adjustments_total",
           "riskd_batch_duration_seconds", "riskd_event_to_alert_seconds", "riskd_consumer_lag",
           "riskd_transactions_total", "riskd_restore_duration_seconds", "riskd_restored_records_total",
           "riskd_enterprises", "riskd_state_bytes", "riskd_reloads_total", "riskd_rules_info", "riskd_partitions"]

LOAD = r"""
import asyncio, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
async def one(i):
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
    return r, w
async def main():
    conns = await asyncio.gather(*(one(i) for i in range(n)))
    # every connection is open before any request is sent
    for r, w in conns:
        w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    async def answer(r, w):
        data = await asyncio.wait_for(r.read(), 60)
        w.close()
        return data.split(b" ", 2)[1] if data.startswith(b"HTTP/1.1 ") else b"?"
    codes = await asyncio.gather(*(answer(r, w) for r, w in conns))
    print(" ".join(c.decode() for c in codes))
asyncio.run(main())
"""


class Api:
    def __init__(self, port):
        self.port = port

    def req(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request(method, path, body=body)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, r.getheader("Content-Type"), data

    def json(self, path, method="GET", expect=200):
        st, ct, data = self.req(method, path)
        assert st == expect, f"{method} {path}: {st} {data[:300]!r}"
        assert ct == "application/json", f"{path}: Content-Type {ct}"
        return json.loads(data)

    def metrics(self):
        st, ct, data = self.req("GET", "/metrics")
        assert st == 200 and ct.startswith("text/plain; version=0.0.4"), (st, ct)
        return data.decode()


def samples(text):
    """{'name{labels}': value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def total(s, prefix):
    return sum(v for k, v in s.items() if k == prefix or k.startswith(prefix + "{"))


def test(wd):
    H.require_riskd()
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing (scripts/setup installs Debian's prometheus package)"
    b = H.Broker(wd, partitions=4)
    rules = os.path.join(wd.path, "rules")
    shutil.copytree(H.RULES, rules, ignore=shutil.ignore_patterns("tests"))
    r = H.Riskd(wd, b, name="riskd", rules=rules, http_listen="127.0.0.1:0")
    r.start()
    r.wait_log(r"http: listening on 127\.0\.0\.1:0 \(port \d+\)", 30)
    api = Api(int(re.search(r"\(port (\d+)\)", r.log_text()).group(1)))

    # ready only once restored
    end = H.deadline(60)
    seen = set()
    while True:
        st, _, data = api.req("GET", "/readyz")
        seen.add(st)
        if st == 200:
            break
        assert st == 503 and json.loads(data)["status"] == "not ready", (st, data)
        assert time.monotonic() < end, "never ready"
        time.sleep(0.02)
    assert api.json("/healthz") == {"status": "ok"}
    H.log(f"/readyz answered {sorted(seen)} until ready")

    rd = H.Reader(b.bootstrap)
    stream = H.gen_events(24, 2600, 41)
    lines, more, tail = stream[:2000], stream[2000:2400], stream[2400:]
    produced = H.produce(b.bootstrap, lines)
    exp = H.replay(wd, produced.by_partition())
    rd.wait_for(exp, 120, "the outputs")
    rd.quiesce(1)
    m0 = api.metrics()
    chk = subprocess.run([promtool, "check", "metrics"], input=m0.encode(), capture_output=True)
    assert chk.returncode == 0, f"promtool: {chk.stdout.decode()} {chk.stderr.decode()}"
    missing = [n for n in METRICS if f"# TYPE {n} " not in m0]
    assert not missing, f"missing metrics {missing}:\n{m0}"
    s0 = samples(m0)
    got = rd.outputs()
    assert total(s0, "riskd_events_total") == len(lines), total(s0, "riskd_events_total")
    assert total(s0, "riskd_alerts_total") == len({d["alert_id"] for d in got.alerts})
    assert total(s0, "riskd_adjustments_total") == len({d["adjustment_id"] for d in got.adjustments})
    assert s0['riskd_transactions_total{result="committed"}'] > 0
    assert s0["riskd_restore_duration_seconds_count"] == 4
    assert s0["riskd_enterprises"] == 24, s0["riskd_enterprises"]
    assert s0['riskd_state_bytes{kind="enterprise"}'] > 0
    assert s0['riskd_partitions{state="active"}'] == 4
    lag = {k: v for k, v in s0.items() if k.startswith("riskd_consumer_lag{")}
    assert len(lag) == 4 and not any(lag.values()), lag
    H.log(f"/metrics: {len(s0)} samples, promtool ok; {int(total(s0, 'riskd_events_total'))} events, "
          f"{int(total(s0, 'riskd_alerts_total'))} alerts")

    # the counters move: more events, malformed ones among them
    bad = [b'{"event_id": "x1", broken', b"[1,2,3]"]
    H.produce(b.bootstrap, more + bad, produced=produced, keys=[H.enterprise_key(x) or b"k" for x in more + bad])
    exp = H.replay(wd, produced.by_partition())
    rd.wait_for(exp, 120, "the outputs of the second chunk")
    end = H.deadline(30)
    while True:
        s1 = samples(api.metrics())
        if total(s1, "riskd_events_total") + total(s1, "riskd_rejects_total") >= len(lines) + len(more) + len(bad):
            break
        assert time.monotonic() < end, "the counters did not catch up"
        time.sleep(0.1)
    assert s1['riskd_rejects_total{reason="malformed_json"}'] == 1, s1
    assert s1['riskd_rejects_total{reason="not_an_object"}'] == 1, s1
    assert total(s1, "riskd_rejects_total") == 2, s1
    assert total(s1, "riskd_events_total") == len(lines) + len(more)
    assert s1['riskd_transactions_total{result="committed"}'] > s0['riskd_transactions_total{result="committed"}']
    assert s1["riskd_batch_duration_seconds_count"] > s0["riskd_batch_duration_seconds_count"]

    # one enterprise against riskctl explain of its partition's events
    ent = H.enterprise_key(lines[0]).decode()
    part = next(p for p, v in produced.by_partition().items() if any(ent.encode() in x for x in v))
    path = wd.write("explain-events.jsonl", b"".join(x + b"\n" for x in produced.by_partition()[part]))
    ref = subprocess.run([H.RISKCTL, "explain", H.RULES, path, ent, "--json", "--grace", "0"], check=True,
                         capture_output=True).stdout
    doc = api.json(f"/v1/enterprises/{ent}")
    assert doc == json.loads(ref), f"/v1/enterprises/{ent} differs from riskctl explain:\n{doc}\n{ref[:500]}"
    # every enterprise's document against the schema; between them they
    # have the schema's nested parts (contributions, static rules)
    docs = []
    for e in sorted({H.enterprise_key(x) for x in lines + more} - {None}):
        docs.append(api.json("/v1/enterprises/" + e.decode()))
        schema_valid("enterprise", docs[-1])
    assert any(d["contributions"] for d in docs) and any(d["static_rules"] for d in docs), docs
    H.log(f"/v1/enterprises/{{id}} of {len(docs)} enterprises valid against enterprise.schema.json")
    H.log(f"/v1/enterprises/{ent} = riskctl explain --json (grade {doc['current']['grade']})")

    # bad requests
    assert api.json("/v1/enterprises/NO-SUCH-ENTERPRISE", expect=404)["status"] == 404
    assert api.json("/v1/enterprises/%01x", expect=400)["status"] == 400
    assert api.json("/v1/enterprises/a%2Fb", expect=400)["status"] == 400
    assert api.json("/metrics", method="DELETE", expect=405)["status"] == 405
    assert api.json("/v1/rules", method="POST", expect=405)["status"] == 405
    assert api.json("/nope", expect=404)["status"] == 404
    assert api.json("/" + "x" * 2000, expect=414)["status"] == 414
    st, ct, data = api.req("POST", "/v1/reload", body=b"x" * 100000)
    assert st == 413 and json.loads(data)["status"] == 413, (st, data[:200])

    # a broken reload over HTTP
    rules0 = api.json("/v1/rules")
    assert rules0["count"] == len(rules0["rules"]) > 50 and rules0["reloads"]["failed"] == 0
    schema_valid("rules", rules0)
    with open(os.path.join(rules, "zz-broken.yaml"), "w") as f:
        f.write("rules:\n  - id: broken.rule\n    on: credit_record\n    when: no_such_field > 1\n")
    res = api.json("/v1/reload", method="POST", expect=422)
    assert res["status"] == "failed" and "zz-broken.yaml:4:" in res["error"], res
    assert res["version"] == rules0["version"]
    rules1 = api.json("/v1/rules")
    assert rules1["version"] == rules0["version"] and rules1["reloads"]["failed"] == 1
    assert "zz-broken.yaml" in rules1["reloads"]["last_error"]
    schema_valid("rules", rules1)
    assert samples(api.metrics())['riskd_reloads_total{result="failed"}'] == 1
    assert re.search(r"zz-broken\.yaml:4:\d+: error\[E\d+\]", r.log_text()), "no diagnostic in the log"
    os.remove(os.path.join(rules, "zz-broken.yaml"))
    res = api.json("/v1/reload", method="POST")
    assert res["status"] == "ok" and res["version"] == rules0["version"], res
    rules2 = api.json("/v1/rules")
    assert rules2["reloads"] == {"ok": 1, "failed": 1, "last_error": None}, rules2["reloads"]
    schema_valid("rules", rules2)
    H.log("POST /v1/reload: broken -> 422, old rules kept, visible in /v1/rules and /metrics; fixed -> 200")

    # 500 concurrent connections from another process
    t0 = time.monotonic()
    load = subprocess.run([sys.executable, "-c", LOAD, str(api.port), "500"], capture_output=True, timeout=120)
    assert load.returncode == 0, load.stderr.decode()[-2000:]
    codes = load.stdout.decode().split()
    assert len(codes) == 500 and set(codes) == {"200"}, f"{len(codes)} answers: {sorted(set(codes))}"
    H.log(f"500 concurrent connections: all 200 in {time.monotonic() - t0:.2f}s")
    assert r.alive(), r.log_tail()
    H.produce(b.bootstrap, tail, produced=produced)
    exp = H.replay(wd, produced.by_partition())
    rd.wait_for(exp, 120, "the outputs after the load")
    assert api.json("/healthz") == {"status": "ok"}

    assert r.term() == 0, r.log_tail()
    rd.close()
    assert b.stop() == 0


if __name__ == "__main__":
    H.main(test, "http")
