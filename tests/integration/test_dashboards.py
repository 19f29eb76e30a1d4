#!/usr/bin/python3
"""The operator's dashboards against a running riskd (issue 16 point 5):
every metric that contrib/grafana/riskd.json and
contrib/prometheus/riskd-alerts.yml name is in riskd's /metrics, with the
type their queries assume: a histogram's _bucket, _sum and _count only of a
histogram family, rate(), irate() and increase() only over a counter or a
histogram's parts, deriv() only over a gauge.  Prometheus' own `up` is the
one name that is not riskd's.  Built without jemalloc, riskd has no
riskd_jemalloc_* (riskd(8)): those names are then left out, said so.

riskd runs on the mock broker with http_listen, fed a generated stream and
two malformed lines; once the counters hold every message, /metrics is
read.  The new batch-size histogram is checked against the input too: its
sum is the messages produced, its count the committed transactions.

(That the rules and the queries parse, and that the alerts fire on their
series, is tests/run-dashboards', without riskd.)
"""
import json
import os
import re
import subprocess
import sys
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PROMETHEUS_OWN = {"up"}
HIST_PARTS = ("_bucket", "_sum", "_count")


def strings(x):
    """Every string in a JSON document."""
    if isinstance(x, str):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from strings(v)


def exprs():
    """(where, PromQL) of the dashboard's queries and variables, and of the rules."""
    with open(os.path.join(H.SRC, "contrib", "grafana", "riskd.json"), encoding="utf-8") as f:
        dash = json.load(f)
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((f"riskd.json panel {p['id']} {t['refId']}", t["expr"]))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            # label_values(SELECTOR, LABEL): Grafana's, its selector is PromQL
            m = re.fullmatch(r"label_values\((.+),\s*\w+\)", v["query"]["query"])
            assert m, f"riskd.json variable {v['name']}: {v['query']['query']}"
            out.append((f"riskd.json variable {v['name']}", m.group(1)))
    with open(os.path.join(H.SRC, "contrib", "prometheus", "riskd-alerts.yml"), encoding="utf-8") as f:
        for g in yaml.safe_load(f)["groups"]:
            for r in g["rules"]:
                out.append((f"riskd-alerts.yml {r.get('alert') or r.get('record')}", r["expr"]))
    return out


def names(expr):
    """The metric names of a query: identifiers that are not functions,
    keywords, label names (inside braces or by/without/on/ignoring/group
    lists) or durations."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)            # strings
    bare = re.sub(r"\{[^}]*\}", "{}", bare)                     # label matchers
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)                      # ranges
    out = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare):
        w = m.group(0)
        after = bare[m.end():].lstrip()
        if after.startswith("(") or re.match(r"(by|without)\b", after):
            continue                                            # a function or aggregation
        if w in ("by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                 "bool", "offset", "inf", "nan", "Inf", "NaN"):
            continue
        if re.fullmatch(r"\d+[smhdwy]", w):
            continue
        out.add(w)
    return out


def test(wd):
    H.require_riskd()
    version = subprocess.run([H.require_riskd(), "--version"], capture_output=True, text=True).stdout
    lines = H.gen_events(24, 1200, 31)
    bad = [b'{"event_id": "x1", broken', b"[1,2,3]"]
    b = H.Broker(wd, partitions=4)
    r = H.Riskd(wd, b, name="dashboards", http_listen="127.0.0.1:0")
    r.start()
    port = r.http_port()
    H.produce(b.bootstrap, lines + bad, keys=[H.enterprise_key(x) or b"k" for x in lines + bad])

    end = H.deadline(120)
    while True:
        text = H.scrape(port)
        s = H.samples(text)
        if H.total(s, "riskd_events_total") + H.total(s, "riskd_rejects_total") >= len(lines) + len(bad) and \
                s.get("riskd_batch_events_sum", 0) >= len(lines) + len(bad):
            break
        assert time.monotonic() < end, f"the counters did not reach the input: {s}"
        time.sleep(0.2)
    assert s["riskd_batch_events_sum"] == len(lines) + len(bad), s
    assert s["riskd_batch_events_count"] == s['riskd_transactions_total{result="committed"}'], s
    H.log(f"{len(lines) + len(bad)} messages in {s['riskd_batch_events_count']:.0f} committed batches "
          f"(riskd_batch_events)")

    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    no_jemalloc = "jemalloc" not in version
    if no_jemalloc:
        assert not any(n.startswith("riskd_jemalloc_") for n in types), "jemalloc figures without jemalloc"
        H.log(f"riskd built without jemalloc ({version.strip()}): its riskd_jemalloc_* names are left out")

    def family(name):
        """(family, type) of a sample name, or (None, None)."""
        if name in types and types[name] != "histogram":
            return name, types[name]
        for suf in HIST_PARTS:
            if name.endswith(suf) and types.get(name[:-len(suf)]) == "histogram":
                return name[:-len(suf)], "histogram"
        return None, None

    bad_names, bad_funcs, seen = [], [], set()
    for where, expr in exprs():
        found = names(expr)
        assert found, f"{where}: no metric in {expr!r}"
        for n in found:
            if n in PROMETHEUS_OWN or (no_jemalloc and n.startswith("riskd_jemalloc_")):
                continue
            seen.add(n)
            if family(n)[0] is None:
                bad_names.append(f"{where}: {n} is not in riskd's /metrics"
                                 + (f" (it is a {types[n]})" if n in types else ""))
        for fn, n in re.findall(r"\b(rate|irate|increase|deriv)\s*\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", expr):
            fam, ty = family(n)
            if fam is None:
                continue
            if fn == "deriv" and ty != "gauge":
                bad_funcs.append(f"{where}: deriv() of {n}, a {ty}")
            if fn != "deriv" and ty == "gauge":
                bad_funcs.append(f"{where}: {fn}() of {n}, a gauge")
            if ty == "histogram" and n == fam:
                bad_funcs.append(f"{where}: {fn}() of the histogram {n} itself")
    assert not bad_names, "\n".join(bad_names)
    assert not bad_funcs, "\n".join(bad_funcs)
    fams = {family(n)[0] for n in seen}
    H.log(f"{len(seen)} metric names of the dashboard and the rules, of {len(fams)} families, all in /metrics "
          f"with the type their queries assume")
    assert r.term() == 0, r.log_tail()
    assert b.stop() == 0


if __name__ == "__main__":
    H.main(test, "dashboards")
