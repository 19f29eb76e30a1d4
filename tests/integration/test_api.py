#!/usr/bin/python3
"""The query API and the event stream (issue 16 point 3), a real riskd on
the mock broker, over real sockets on 127.0.0.1:

- GET /v1/events connected before any input gets every alert and
  adjustment riskd committed, each once, equal by id and document to
  `riskctl replay` of each partition (and valid against their schemas);
  each event has an id, and a client that comes back with Last-Event-ID
  gets exactly the events after it; an id of no process of ours gets a
  `reset` event;
- a client of /v1/events that reads nothing is dropped (counted in
  riskd_events_clients_dropped_total, its connection closed after a prefix
  of the events) while riskd commits every batch: all the outputs reach
  Kafka with the slow client still connected and unread;
- paging through GET /v1/enterprises with a cursor (small pages, by id and
  by -score) lists every enterprise exactly once, with the grade, mode,
  frequency and score of `riskctl replay --grades`, in order; open_alerts
  is the number of contributions /v1/enterprises/{id} lists; each filter
  (grade, mode, region prefix, flag, has_open_alerts) gives exactly the
  rows that match; a bad cursor, sort, limit or argument is 400;
- GET /v1/summary counts by grade and by mode equal the replay's, by
  region the profiles' region_code prefixes and by food category their
  category (with schema.yaml's label), each of those two by grade as the
  replay grades them; each row's category is its profile's;
  GET /v1/alerts?state=open,
  paged, lists as many alerts as the enterprises' open_alerts add up to,
  and an unknown state is 400 naming the known ones;
- every document is valid against its schema in docs/schemas/;
- 500 concurrent clients of /v1/enterprises (ten client addresses) are all
  answered 200; the 404 message names every route.
"""
import collections
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import test_http  # noqa: E402
from test_http import Api, samples, schema_valid  # noqa: E402

# test_http's 500 connections, each with a page of the table
LOAD = test_http.LOAD.replace("GET /healthz ", "GET /v1/enterprises?limit=5&sort=-score ")
assert LOAD != test_http.LOAD


class Sse(threading.Thread):
    """A client of /v1/events reading as fast as it can: (id, event, data)."""

    def __init__(self, port, last=None, query=""):
        super().__init__(daemon=True)
        self.events, self.comments = [], 0
        self.closed = False
        self.s = socket.create_connection(("127.0.0.1", port), timeout=120)
        head = f"GET /v1/events{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        if last:
            head += f"Last-Event-ID: {last}\r\n"
        self.s.sendall((head + "\r\n").encode())
        self.start()

    def run(self):
        buf = b""
        while True:
            try:
                x = self.s.recv(65536)
            except OSError:
                x = b""
            if not x:
                self.closed = True
                return
            buf += x
            if b"\r\n\r\n" in buf and buf.startswith(b"HTTP/"):
                head, buf = buf.split(b"\r\n\r\n", 1)
                assert head.startswith(b"HTTP/1.1 200 "), head
                assert b"text/event-stream" in head, head
                self.chunked = b"chunked" in head.lower()
                self.raw = b""
            if not hasattr(self, "raw"):
                continue
            # de-chunk what is complete
            while True:
                if self.chunked:
                    m = re.match(rb"([0-9a-fA-F]+)\r\n", buf)
                    if not m or len(buf) < m.end() + int(m.group(1), 16) + 2:
                        break
                    n = int(m.group(1), 16)
                    self.raw += buf[m.end():m.end() + n]
                    buf = buf[m.end() + n + 2:]
                else:
                    self.raw += buf
                    buf = b""
                    break
            while b"\n\n" in self.raw:
                frame, self.raw = self.raw.split(b"\n\n", 1)
                ev = {}
                for line in frame.decode().split("\n"):
                    if line.startswith(":"):
                        self.comments += 1
                    elif ":" in line:
                        k, v = line.split(":", 1)
                        ev[k] = v[1:] if v.startswith(" ") else v
                if "event" in ev:
                    self.events.append((ev.get("id"), ev["event"], ev.get("data")))

    def docs(self, kind):
        return [json.loads(d) for _, e, d in self.events if e == kind]

    def close(self):
        try:
            self.s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.s.close()


def wait(pred, what, secs=120):
    end = H.deadline(secs)
    while not pred():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def pages(api, query, limit):
    """Every row of /v1/enterprises?QUERY by its cursor; the pages' count."""
    rows, cursor, n = [], None, 0
    while True:
        q = f"/v1/enterprises?limit={limit}" + (f"&{query}" if query else "")
        if cursor:
            q += "&cursor=" + cursor
        doc = api.json(q)
        schema_valid("enterprises", doc)
        assert len(doc["enterprises"]) <= limit, doc
        rows += doc["enterprises"]
        n += 1
        cursor = doc["next_cursor"]
        if not cursor:
            return rows, n


def test(wd):
    H.require_riskd()
    b = H.Broker(wd, partitions=16)
    r = H.Riskd(wd, b, http_listen="127.0.0.1:0", http_events_buffer=262144, batch_max=50)
    r.start()
    r.wait_log(r"http: listening on 127\.0\.0\.1:0 \(port \d+\)", 30)
    api = Api(int(re.search(r"\(port (\d+)\)", r.log_text()).group(1)))
    wait(lambda: api.req("GET", "/readyz")[0] == 200, "/readyz", 60)

    # the clients of the stream: one that reads, one that reads nothing
    # (a small receive buffer: it holds little of what riskd sends)
    good = Sse(api.port)
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", api.port))
    slow.sendall(b"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    wait(lambda: samples(api.metrics()).get("riskd_events_clients") == 2, "two stream clients")

    rd = H.Reader(b.bootstrap)
    lines = H.gen_events(48, 40000, 5)
    produced = H.produce(b.bootstrap, lines)
    grades = {}
    exp = H.replay(wd, produced.by_partition(), extra=lambda p: ["--grades", wd.file(f"grades-p{p}.jsonl")])
    for p in produced.by_partition():
        for ln in H.read_lines(wd.file(f"grades-p{p}.jsonl")):
            d = json.loads(ln)
            grades[d["enterprise_id"]] = d
    # riskd commits everything while the slow client is connected, unread
    rd.wait_for(exp, 300, "the outputs")
    rd.quiesce(1)
    s = samples(api.metrics())
    assert s["riskd_events_clients_dropped_total"] == 1, s["riskd_events_clients_dropped_total"]
    assert s["riskd_events_clients"] == 1, s["riskd_events_clients"]
    H.log(f"every output committed with a client reading nothing connected: it was dropped "
          f"({len(exp.alerts)} alerts, {len(exp.adjustments)} adjustments)")
    # it got a prefix of the stream, then the connection was closed
    slow.settimeout(60)
    got = b""
    while True:
        try:
            x = slow.recv(1 << 20)
        except (ConnectionResetError, socket.timeout):
            break
        if not x:
            break
        got += x
    slow.close()
    nall = len(exp.alerts) + len(exp.adjustments) + len(exp.alert_states)
    nslow = got.count(b"\nevent: ")
    assert got.startswith(b"HTTP/1.1 200 ") and nslow < nall, (nslow, got[:200])
    H.log(f"the slow client got {nslow} events of {nall}, then its connection closed")

    # the reading client: every committed output, once, as replay has it
    nexp = (len({d["alert_id"] for d in exp.alerts}) + len({d["adjustment_id"] for d in exp.adjustments})
            + len({H.state_id(d) for d in exp.alert_states}))
    assert exp.alert_states, "the stream has alert states to carry"
    wait(lambda: len(good.events) >= nexp, f"{nexp} events on the stream")
    sse = H.Outputs(good.docs("alert"), (), good.docs("adjustment"), alert_states=good.docs("alert_state"))
    assert len(good.events) == nexp, (len(good.events), nexp)
    H.compare(sse, H.Outputs(exp.alerts, (), exp.adjustments, alert_states=exp.alert_states), "GET /v1/events")
    for d in sse.alerts[:50]:
        schema_valid("alert", d)
    for d in sse.adjustments[:50]:
        schema_valid("adjustment-2" if d["schema"].endswith("/2") else "adjustment", d)
    ids = [i for i, _, _ in good.events]
    assert all(ids) and len(set(ids)) == len(ids), "every event has its own id"
    H.log(f"GET /v1/events: {nexp} events, the alerts, adjustments and alert states of riskctl replay, each once")

    # resuming: the events after an id, exactly; an id not ours: reset
    k = len(ids) // 2
    again = Sse(api.port, last=ids[k])
    wait(lambda: len(again.events) >= len(ids) - k - 1, "the events after Last-Event-ID")
    assert again.events == good.events[k + 1:], (again.events[:2], good.events[k + 1:k + 3])
    again.close()
    other = Sse(api.port, last="1-5")
    wait(lambda: other.events, "the reset event")
    assert other.events[0][1] == "reset" and other.events[0][0] is None, other.events[0]
    other.close()
    only = Sse(api.port, query="?types=adjustment", last=ids[0])
    wait(lambda: len(only.events) >= len(sse.adjustments) - (good.events[0][1] == "adjustment"),
         "the adjustments after the first event")
    assert {e for _, e, _ in only.events} == {"adjustment"}, only.events[:3]
    only.close()
    H.log("Last-Event-ID: the events after it, exactly; an unknown id: a reset event; types= filters")

    # the table: every enterprise once, by id and by -score, as replay grades it
    builds0 = samples(api.metrics())["riskd_api_view_builds_total"]
    rows, npages = pages(api, "", 7)
    assert [x["enterprise_id"] for x in rows] == sorted(grades), "by id: each enterprise once, in order"
    for x in rows:
        g = grades[x["enterprise_id"]]
        assert (x["grade"], x["mode"], x["inspections_per_year"], x["score"]) == \
            (g["grade"], g["mode"], g["inspections_per_year"], g["score"]), (x, g)
    by_score, _ = pages(api, "sort=-score", 5)
    assert sorted(x["enterprise_id"] for x in by_score) == sorted(grades)
    sc = [x["score"] for x in by_score]
    assert sc == sorted(sc, reverse=True), sc
    asc, _ = pages(api, "sort=score", 11)
    assert [x["enterprise_id"] for x in asc] == [x["enterprise_id"] for x in reversed(by_score)] or \
        [x["score"] for x in asc] == sorted(sc), "ascending order"
    H.log(f"/v1/enterprises: {len(rows)} enterprises in {npages} pages of 7, each once, the grades of "
          "riskctl replay; by -score and score too")

    # open_alerts: the open and escalated alerts explain lists
    explained = {}
    for x in rows:
        doc = explained[x["enterprise_id"]] = api.json("/v1/enterprises/" + x["enterprise_id"])
        assert x["open_alerts"] == len(doc["open_alerts"]), (x, doc["open_alerts"])
        assert sorted(x["flags"]) == sorted(f["name"] for f in doc["flags"]), (x, doc["flags"])
    profiles = {}
    for ln in lines:
        d = json.loads(ln)
        if d.get("event_type") == "enterprise":
            profiles[d["enterprise"]["uscc"]] = d
    assert {x["enterprise_id"]: x["region"] for x in rows} == \
        {e: profiles[e]["region_code"] if e in profiles else None for e in grades}, "region: the profile's region_code"
    assert {x["enterprise_id"]: x["category"] for x in rows} == \
        {e: profiles[e]["category"] if e in profiles else None for e in grades}, "category: the profile's"
    assert len({x["category"] for x in rows}) > 2, "the stream has several categories"

    # filters: exactly the rows that match
    def check(query, pred, base=rows):
        got, _ = pages(api, query, 9)
        want = [x for x in base if pred(x)]
        assert got == want, (query, len(got), len(want))
        return len(want)
    some = rows[len(rows) // 2]
    flagged = next((x for x in rows if x["flags"]), None)
    counts = [check("grade=" + some["grade"], lambda x: x["grade"] == some["grade"]),
              check("grade=A,D", lambda x: x["grade"] in ("A", "D")),
              check("mode=" + some["mode"], lambda x: x["mode"] == some["mode"]),
              check("region=" + some["region"][:4], lambda x: (x["region"] or "").startswith(some["region"][:4])),
              check("has_open_alerts=true", lambda x: x["open_alerts"] > 0),
              check("has_open_alerts=false&sort=-score", lambda x: x["open_alerts"] == 0, by_score)]
    if flagged:
        f0 = flagged["flags"][0]
        counts.append(check("flag=" + f0, lambda x: f0 in x["flags"]))
    assert any(counts) and not all(c == len(rows) for c in counts), counts
    H.log(f"filters grade, mode, region, has_open_alerts{', flag' if flagged else ''}: the matching rows "
          f"({counts})")
    for q in ["limit=0", "limit=1001", "sort=name", "cursor=zz", "cursor=00", "has_open_alerts=yes", "colour=red"]:
        assert api.json("/v1/enterprises?" + q, expect=400)["status"] == 400, q
    # a cursor of another sort is refused
    c1 = api.json("/v1/enterprises?limit=1")["next_cursor"]
    assert api.json("/v1/enterprises?sort=-score&cursor=" + c1, expect=400)["status"] == 400

    # dozens of pages, one view: no batch ended meanwhile (nothing came in)
    builds = samples(api.metrics())["riskd_api_view_builds_total"] - builds0
    assert builds <= 1, f"the view was built {builds} times for the pages of one state"
    H.log(f"every page above read one view (built {int(builds)} time(s) for them)")

    # the summary
    summ = api.json("/v1/summary")
    schema_valid("summary", summ)
    assert summ["enterprises"] == len(grades)
    def counts_of(key):
        c = collections.Counter(g[key] for g in grades.values())
        return sorted(({"key": k, "count": v} for k, v in c.items()), key=lambda x: (x["key"] is None, x["key"] or ""))
    assert summ["by_grade"] == counts_of("grade"), (summ["by_grade"], counts_of("grade"))
    assert summ["by_mode"] == counts_of("mode")
    reg = collections.Counter((x["region"] or "")[:2] if x["region"] else None for x in rows)
    assert {x["key"]: x["count"] for x in summ["by_region"]} == dict(reg), summ["by_region"]

    # the grade distribution by region and by category: each key's
    # enterprises by the grade replay gives them, in key order
    def by_grade(key_of):
        want = {}
        for x in rows:
            want.setdefault(key_of(x), collections.Counter())[grades[x["enterprise_id"]]["grade"]] += 1
        return [{"key": k, "count": sum(c.values()), "by_grade": {g: n for g, n in sorted(c.items()) if g}}
                for k, c in sorted(want.items(), key=lambda kv: (kv[0] is None, (kv[0] or "").encode()))]
    with open(os.path.join(H.RULES, "schema.yaml"), encoding="utf-8") as f:
        labels = yaml.safe_load(f)["types"]["enterprise"]["fields"]["category"]["values"]
    assert summ["by_region"] == by_grade(lambda x: x["region"][:2] if x["region"] else None), summ["by_region"]
    want = by_grade(lambda x: x["category"])
    for w in want:
        w["label"] = labels.get(w["key"])
    assert [dict(x) for x in summ["by_category"]] == want, (summ["by_category"], want)
    assert all(x["label"] for x in summ["by_category"] if x["key"]), "an enum's label: schema.yaml's text"
    assert sum(sum(x["by_grade"].values()) for x in summ["by_category"]) == \
        sum(g["grade"] is not None for g in grades.values())
    assert summ["open_alerts"] == sum(x["open_alerts"] for x in rows)
    nesc = sum(a["state"] == "escalated" for d in explained.values() for a in d["open_alerts"])
    assert summ["escalated_alerts"] == nesc, (summ["escalated_alerts"], nesc)
    s4 = api.json("/v1/summary?region_digits=4")
    assert s4["region_digits"] == 4 and sum(x["count"] for x in s4["by_region"]) == len(rows)
    assert api.json("/v1/summary?region_digits=0", expect=400)["status"] == 400
    H.log(f"/v1/summary: by grade and mode as riskctl replay, by region ({len(summ['by_region'])}) and "
          f"category ({len(summ['by_category'])}) each by replay's grades, {summ['open_alerts']} open alerts")

    # open alerts, paged
    alerts, cursor = [], None
    while True:
        doc = api.json("/v1/alerts?state=open&limit=3" + (f"&cursor={cursor}" if cursor else ""))
        schema_valid("alerts", doc)
        alerts += doc["alerts"]
        cursor = doc["next_cursor"]
        if not cursor:
            break
    assert len(alerts) == summ["open_alerts"] > 0, (len(alerts), summ["open_alerts"])
    per = collections.Counter(a["enterprise_id"] for a in alerts)
    assert per == {x["enterprise_id"]: x["open_alerts"] for x in rows if x["open_alerts"]}
    # as explain has them, alert by alert
    assert sorted((a["enterprise_id"], a["alert_id"], a["state"]) for a in alerts) == sorted(
        (e, a["alert_id"], a["state"]) for e, d in explained.items() for a in d["open_alerts"])
    # escalated: the overdue rectifications alone
    esc, cursor = [], None
    while True:
        doc = api.json("/v1/alerts?state=escalated&limit=2" + (f"&cursor={cursor}" if cursor else ""))
        schema_valid("alerts", doc)
        assert doc["state"] == "escalated"
        esc += doc["alerts"]
        cursor = doc["next_cursor"]
        if not cursor:
            break
    assert sorted(a["alert_id"] for a in esc) == sorted(a["alert_id"] for a in alerts if a["state"] == "escalated")
    assert len(esc) == summ["escalated_alerts"]
    res = api.json("/v1/alerts?state=closed", expect=400)
    assert "open" in res["error"] and "escalated" in res["error"], res
    H.log(f"/v1/alerts?state=open: {len(alerts)} alerts in pages of 3, {len(esc)} escalated; state=closed: 400 "
          "naming the known ones")

    # 500 concurrent clients, all answered
    out = subprocess.run([sys.executable, "-c", LOAD, str(api.port), "500"], capture_output=True, text=True,
                         timeout=300 * H.TIMEOUT_SCALE)
    assert out.returncode == 0, out.stderr
    codes = collections.Counter(out.stdout.split())
    assert codes == {"200": 500}, codes
    H.log("500 concurrent GET /v1/enterprises: all 200")

    res = api.json("/v1/nothing", expect=404)
    for route in ("/v1/enterprises", "/v1/summary", "/v1/alerts", "/v1/events"):
        assert route in res["error"], res
    assert api.json("/v1/summary", method="DELETE", expect=405)["status"] == 405
    m = samples(api.metrics())
    assert m['riskd_api_requests_total{route="/v1/enterprises"}'] > 0, m
    nsent = len(good.events) + len(again.events) + len(other.events) + len(only.events)
    assert m["riskd_events_sent_total"] >= nsent and m["riskd_events_resume_failed_total"] == 1, (nsent, m)
    good.close()
    assert r.term() == 0, r.log_tail()
    rd.close()
    b.stop()


if __name__ == "__main__":
    H.main(test, "api")
