#!/usr/bin/python3
"""riskd's web console (issue 16 point 4): riskd on the mock broker with
http_console at the source tree's console/ and http_javascript at Debian's
/usr/share/javascript, fed the demo story.

- static files: / is console/index.html (text/html), the chart library
  /javascript/chart.js/chart.min.js (libjs-chart.js) text/javascript; dot
  segments, encoded (%2e%2e) or not, and hidden files are refused (403),
  a missing file is a JSON 404;
- the overview (/), open in headless Chromium (Debian's chromium, driven
  over the DevTools protocol on a pipe) before the story comes in and left
  open while it does: the story is fed without the follow-up inspection
  that closes its overdue rectification, so one stays escalated.  Then
  the page shows the grade counts /v1/summary gives, which are the final
  grades of `riskctl replay`; the grade distribution by region and by
  food category as /v1/summary's by_region and by_category, both drawn by
  chart.js; every alert riskctl replay raises in its live feed (by
  alert_id), each transition of each alert, and the state of each as the
  transitions left it (the ones still open or escalated are exactly those
  /v1/alerts?state=open lists; an alert of a rule without a lifecycle, by
  /v1/rules, shows no state); the overdue rectifications
  /v1/alerts?state=escalated lists, in its order, each linking to its
  enterprise page; and the 20 highest-risk enterprises of
  /v1/enterprises?sort=-score.  A county level chosen, the region
  distribution is /v1/summary?region_digits=6's; opened again, the feed
  starts with the alerts open then, in their state;
- the enterprise page of the story's dairy producer shows what
  /v1/enterprises/{id} says: its grade, score, each live contribution
  (rule and event), each flag and each change of its grade (grade_history,
  oldest first), in Chinese, with the charts drawn by chart.js; an unknown
  enterprise's page says it is not found.

A screenshot of each page is taken (copied to $RISKD_SCREENSHOTS when set:
docs/console-*.png come from there).  Skipped (exit 77, the reason
printed) only when Chromium cannot start.
"""
import base64
import collections
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

ENTERPRISE = "91410184MAX3GNEK20"  # the story's dairy producer: grade D, contributions and flags
JS = "/usr/share/javascript"


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)  # the path is sent as it is: no normalisation
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, r.getheader("Content-Type"), body


def chromium(wd, *args, timeout=120):
    exe = shutil.which("chromium")
    if not exe:
        return None, "no chromium on PATH (scripts/setup installs Debian's chromium)"
    argv = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={wd.file('chromium-profile')}", "--virtual-time-budget=15000", *args]
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"chromium did not finish within {timeout}s"
    if p.returncode != 0:
        return None, f"chromium exited {p.returncode}: {p.stderr.decode(errors='replace')[-400:]}"
    return p.stdout.decode(), None


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe
    (--remote-debugging-pipe: commands on its fd 3, answers on its fd 4,
    each a JSON message ended by NUL), one page."""

    def __init__(self, wd):
        self.r_cmd, self.w_cmd = os.pipe()
        self.r_ans, self.w_ans = os.pipe()
        argv = ["sh", "-c", f'exec "$0" "$@" 3<&{self.r_cmd} 4>&{self.w_ans}', shutil.which("chromium"),
                "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--remote-debugging-pipe",
                f"--user-data-dir={wd.file('chromium-cdp')}"]
        self.log = open(wd.file("chromium.log"), "wb")
        self.proc = H.spawn(argv, pass_fds=(self.r_cmd, self.w_ans), stdin=subprocess.DEVNULL,
                            stdout=self.log, stderr=subprocess.STDOUT)
        os.close(self.r_cmd)
        os.close(self.w_ans)
        self.seq = 0
        self.answers = {}
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        target = self.cmd("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.cmd("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def _read(self):
        buf = b""
        while True:
            x = os.read(self.r_ans, 1 << 20)
            if not x:
                break
            buf += x
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                d = json.loads(msg)
                if "id" in d:
                    with self.cv:
                        self.answers[d["id"]] = d
                        self.cv.notify_all()
        with self.cv:
            self.answers[None] = "closed"
            self.cv.notify_all()

    def cmd(self, method, session=None, timeout=60, **params):
        self.seq += 1
        m = {"id": self.seq, "method": method, "params": params}
        if session:
            m["sessionId"] = session
        os.write(self.w_cmd, json.dumps(m).encode() + b"\0")
        end = H.deadline(timeout)
        with self.cv:
            while self.seq not in self.answers:
                assert None not in self.answers, f"chromium went away during {method}"
                assert self.cv.wait(max(0.0, end - time.monotonic())) or self.seq in self.answers, \
                    f"chromium did not answer {method} within {timeout}s"
            d = self.answers.pop(self.seq)
        assert "error" not in d, (method, d["error"])
        return d["result"]

    def page(self, method, **params):
        return self.cmd(method, session=self.session, **params)

    def js(self, expr):
        r = self.page("Runtime.evaluate", expression=expr, returnByValue=True)
        assert "exceptionDetails" not in r, (expr, r["exceptionDetails"])
        return r["result"].get("value")

    def wait(self, expr, what, secs=60):
        """Until the expression is true in the page (polled, bounded)."""
        end = H.deadline(secs)
        while not self.js(expr):
            assert time.monotonic() < end, f"timed out waiting for {what}"
            time.sleep(0.1)

    def screenshot(self, path, width=1280):
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
        height = self.js("document.documentElement.scrollHeight")
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        shot = self.page("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot))

    def close(self):
        self.cmd("Browser.close")
        self.proc.wait(30)
        os.close(self.w_cmd)
        os.close(self.r_ans)
        self.log.close()


# What the overview shows, read from its DOM (console/overview.js).
OVERVIEW_JS = """(() => {
  const q = (s) => [...document.querySelectorAll(s)];
  const dist = (id) => Object.fromEntries(q('#' + id + ' tbody tr').map((tr) => [tr.dataset.key,
      Object.fromEntries([...tr.querySelectorAll('td[data-grade]')].map((td) => [td.dataset.grade, +td.textContent]))]));
  return {
    state: document.getElementById('overview').dataset.state,
    feed_open: document.getElementById('overview').dataset.feed === 'open',
    grades: Object.fromEntries(q('#grade-cards .tile[data-grade]').map((t) => [t.dataset.grade, +t.querySelector('.count').textContent])),
    totals: Object.fromEntries(q('#grade-cards .tile[data-total]').map((t) => [t.dataset.total, +t.querySelector('.count').textContent])),
    by_region: dist('region-table'),
    by_category: dist('category-table'),
    charts: q('canvas[data-drawn="1"]').map((c) => c.id),
    feed: q('#feed > li').map((li) => ({alert_id: li.dataset.alert, state: li.dataset.state,
        transitions: [...li.querySelectorAll('.transitions > li')].map((t) => t.dataset.to),
        text: li.textContent})),
    overdue: q('#overdue-rows tr').map((tr) => [tr.dataset.alert, tr.querySelector('a').getAttribute('href')]),
    top: q('#top-rows tr').map((tr) => tr.dataset.enterprise),
    text: document.body.innerText,
  };
})()"""


def api_json(port, path):
    st, _, body = get(port, path)
    assert st == 200, (path, st, body[:300])
    return json.loads(body)


def dist_of(entries):
    """by_region or by_category as the page's tables hold it."""
    return {("" if x["key"] is None else x["key"]):
            dict(x["by_grade"], none=x["count"] - sum(x["by_grade"].values())) for x in entries}


def overview_checks(seen, port, exp, escalated_alert):
    """What the overview shows against the API and riskctl replay."""
    summ = api_json(port, "/v1/summary")
    assert seen["grades"] == {("none" if g["key"] is None else g["key"]): g["count"] for g in summ["by_grade"]}, \
        (seen["grades"], summ["by_grade"])
    final = collections.Counter(c["grade"] for c in exp.final_grades().values())
    assert seen["grades"] == dict(final), ("the replay's final grades", seen["grades"], final)
    assert seen["totals"] == {"enterprises": summ["enterprises"], "open_alerts": summ["open_alerts"],
                              "escalated_alerts": summ["escalated_alerts"]}, (seen["totals"], summ)
    grades = [g["key"] for g in summ["by_grade"] if g["key"] is not None]
    for name in ("by_region", "by_category"):
        want = {k: {g: v.get(g, 0) for g in grades + ["none"]} for k, v in dist_of(summ[name]).items()}
        assert seen[name] == want, (name, seen[name], want)
    assert sorted(seen["charts"]) == ["category-chart", "region-chart"], seen["charts"]
    assert all(s in seen["text"] for s in ("风险等级总览", "各地区风险等级分布", "各食品类别风险等级分布", "实时预警",
                                           "逾期未整改", "风险最高的企业", "企业查询")), seen["text"][:500]

    # the feed: every alert, every transition, each alert's state
    feed = {x["alert_id"]: x for x in seen["feed"]}
    assert len(feed) == len(seen["feed"]), "an alert listed twice"
    assert set(feed) == {d["alert_id"] for d in exp.alerts}, (sorted(feed), len(exp.alerts))
    steps = collections.defaultdict(list)
    for d in exp.alert_states:
        steps[d["alert_id"]].append(d["to"])
    lifecycle = {r["id"]: r["lifecycle"] for r in api_json(port, "/v1/rules")["rules"]}
    for d in exp.alerts:
        x = feed[d["alert_id"]]
        assert x["transitions"] == steps[d["alert_id"]], (d["alert_id"], x["transitions"], steps[d["alert_id"]])
        want = steps[d["alert_id"]][-1] if steps[d["alert_id"]] else "open" if lifecycle[d["rule_id"]] else "none"
        assert x["state"] == want, (d["alert_id"], d["rule_id"], x["state"], want)
    assert all(lifecycle[d["rule_id"]] for d in exp.alert_states), "a transition of a rule without a lifecycle"
    assert not all(lifecycle.values()), "/v1/rules: every rule has a lifecycle?"
    still = []
    cursor = None
    while True:
        doc = api_json(port, "/v1/alerts?state=open&limit=100" + (f"&cursor={cursor}" if cursor else ""))
        still += doc["alerts"]
        cursor = doc["next_cursor"]
        if not cursor:
            break
    still = {a["alert_id"]: a["state"] for a in still}
    assert {a: x["state"] for a, x in feed.items() if x["state"] in ("open", "escalated")} == still, \
        "the feed's open alerts are /v1/alerts?state=open's"
    # newest first: an enterprise's alerts come in the order it raised them
    order = [x["alert_id"] for x in seen["feed"]]
    assert all(order.index(a) > order.index(b) for p in alerts_by_enterprise(exp)
               for a, b in zip(p, p[1:])), "newest first"
    assert "已关闭" in seen["text"] and "逾期未整改" in seen["text"]

    # the overdue rectifications: /v1/alerts?state=escalated, each linked
    esc = api_json(port, "/v1/alerts?state=escalated&limit=1000")["alerts"]
    want = [(a["alert_id"], f"enterprise.html?id={a['enterprise_id']}") for a in esc]
    assert [tuple(x) for x in seen["overdue"]] == want, (seen["overdue"], esc)
    assert escalated_alert in [a for a, _ in seen["overdue"]], (escalated_alert, seen["overdue"])
    assert feed[escalated_alert]["state"] == "escalated"

    # the highest-risk enterprises
    top = api_json(port, "/v1/enterprises?sort=-score&limit=20")["enterprises"]
    assert seen["top"] == [x["enterprise_id"] for x in top], (seen["top"], top)
    return len(exp.alerts), still


def alerts_by_enterprise(exp):
    """The alerts of each enterprise in the order they were raised (the
    stream's order within a partition)."""
    per = collections.defaultdict(list)
    for d in exp.alerts:
        per[d["enterprise_id"]].append(d["alert_id"])
    return list(per.values())


def story_without_a_rectification(wd):
    """The story without the follow-up inspections that close its first
    escalated alert (an overdue rectification done late): the alert stays
    escalated.  The lines, and the alert's id."""
    lines = H.story_events()
    states = [d for d in H.replay_lines(wd, lines, name="story") if d["schema"] == "riskd.alert_state/1"]
    esc = next(d for d in states if d["to"] == "escalated")["alert_id"]
    left = set()
    for _ in range(5):  # each closing event withheld, until none closes it
        done = [d for d in states if d["alert_id"] == esc and d["cause"] == "resolved"]
        if not done:
            return [ln for ln in lines if json.loads(ln)["event_id"] not in left], esc
        left.update(done[0]["evidence"])
        kept = [ln for ln in lines if json.loads(ln)["event_id"] not in left]
        states = [d for d in H.replay_lines(wd, kept, name="story") if d["schema"] == "riskd.alert_state/1"]
    raise AssertionError(f"alert {esc} is still closed by an event after withholding {sorted(left)}")


def test(wd):
    H.require_riskd()
    out, why = chromium(wd, "--dump-dom", "about:blank")
    if out is None or "<body" not in out:
        print(f"SKIP: Chromium cannot start: {why or out!r}")
        sys.exit(77)
    b = H.Broker(wd, partitions=4)
    r = H.Riskd(wd, b, name="console", http_listen="127.0.0.1:0", http_console=os.path.join(H.SRC, "console"),
                http_javascript=JS)
    r.start()
    port = r.http_port()

    # the static files
    st, ty, body = get(port, "/")
    assert st == 200 and ty == "text/html; charset=utf-8" and "企业查询".encode() in body, (st, ty, body[:200])
    st, ty, body = get(port, "/javascript/chart.js/chart.min.js")
    assert st == 200 and ty == "text/javascript; charset=utf-8" and len(body) > 10000, (st, ty, len(body))
    for bad in ("/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/javascript/../../etc/passwd",
                "/.git/config", "//etc/passwd"):
        st, ty, body = get(port, bad)
        assert st == 403 and ty == "application/json" and b"root:" not in body, (bad, st, ty, body[:200])
    st, ty, body = get(port, "/no-such-page.html")
    assert st == 404 and json.loads(body)["status"] == 404, (st, body)
    H.log("static: / text/html, chart.js text/javascript, traversal 403, missing 404")

    # the overview, open before the story comes in and while it does
    br = Browser(wd)
    br.page("Page.navigate", url=f"http://127.0.0.1:{port}/")
    br.wait("document.getElementById('overview') && document.getElementById('overview').dataset.state === 'ready'"
            " && document.getElementById('overview').dataset.feed === 'open'", "the overview and its event stream")
    lines, escalated_alert = story_without_a_rectification(wd)
    rd = H.Reader(b.bootstrap)
    produced = H.produce(b.bootstrap, lines)
    exp = H.replay(wd, produced.by_partition())
    rd.wait_for(exp, 120, "the story's outputs")
    assert escalated_alert in {d["alert_id"] for d in exp.alert_states if d["to"] == "escalated"}
    # the page reads the counts a second after the stream's last event:
    # wait until it shows every alert and the final counts
    want_alerts = {d["alert_id"] for d in exp.alerts}
    end = H.deadline(60)
    while True:
        seen = br.js(OVERVIEW_JS)
        summ = api_json(port, "/v1/summary")
        if {x["alert_id"] for x in seen["feed"]} >= want_alerts and \
                sum(len(x["transitions"]) for x in seen["feed"]) >= len(exp.alert_states) and \
                seen["totals"].get("enterprises") == summ["enterprises"] and \
                seen["totals"].get("open_alerts") == summ["open_alerts"] and seen["overdue"]:
            break
        assert time.monotonic() < end, f"the overview did not catch up: {json.dumps(seen)[:3000]}"
        time.sleep(0.2)
    wd.write("overview.json", json.dumps(seen, ensure_ascii=False, indent=1).encode())
    nalerts, still = overview_checks(seen, port, exp, escalated_alert)
    H.log(f"overview: grades {seen['grades']} as /v1/summary and riskctl replay, by region and category as "
          f"/v1/summary (both charts drawn), {nalerts} alerts and {len(exp.alert_states)} transitions in the "
          f"feed with their states, {len(seen['overdue'])} overdue as /v1/alerts?state=escalated, "
          f"top {len(seen['top'])} by score")
    shot = wd.file("console-overview.png")
    br.screenshot(shot)
    assert os.path.getsize(shot) > 10000
    # the region level chosen: the counties, as /v1/summary?region_digits=6
    br.js("(() => { const s = document.getElementById('region-digits'); s.value = '6';"
          " s.dispatchEvent(new Event('change')); return true; })()")
    want = {k: {g: v.get(g, 0) for g in seen["grades"] if g != "none"} | {"none": v["none"]}
            for k, v in dist_of(api_json(port, "/v1/summary?region_digits=6")["by_region"]).items()}
    end = H.deadline(30)
    while br.js(OVERVIEW_JS)["by_region"] != want:
        assert time.monotonic() < end, (br.js(OVERVIEW_JS)["by_region"], want)
        time.sleep(0.1)
    H.log(f"region level 区县级: the counties {sorted(want)} as /v1/summary?region_digits=6")
    # opened again: the feed starts with the alerts open now, in their state
    br.page("Page.navigate", url=f"http://127.0.0.1:{port}/")
    br.wait("document.getElementById('overview') && document.getElementById('overview').dataset.state === 'ready'"
            " && document.getElementById('overview').dataset.feed === 'open'", "the overview opened again")
    again = br.js(OVERVIEW_JS)["feed"]
    assert {x["alert_id"]: x["state"] for x in again} == still, (again, still)
    H.log(f"opened again: the feed starts with the {len(still)} alerts open now, in their state")
    br.close()

    # the enterprise page as Chromium shows it
    st, _, body = get(port, f"/v1/enterprises/{ENTERPRISE}")
    assert st == 200, (st, body)
    doc = json.loads(body)
    assert doc["contributions"] and doc["flags"], doc
    url = f"http://127.0.0.1:{port}/enterprise.html?id={ENTERPRISE}"
    dom, why = chromium(wd, "--dump-dom", url)
    assert dom is not None, why
    wd.write("enterprise.dom.html", dom.encode())
    assert 'data-state="ready"' in dom, f"the page did not load the enterprise: {dom[:2000]}"

    def element(id_):
        m = re.search(rf'id="{id_}"[^>]*>([^<]*)<', dom)
        assert m, f"no #{id_} in the page"
        return m.group(1)

    assert element("grade") == doc["current"]["grade"], (element("grade"), doc["current"])
    assert element("score") == f"{doc['score']:g}", (element("score"), doc["score"])
    assert "风险等级" in dom and "动态风险贡献" in dom
    rows = re.findall(r'<tr data-rule="([^"]*)" data-event="([^"]*)"', dom)
    assert sorted(rows) == sorted((c["rule_id"], c["event_id"]) for c in doc["contributions"]), rows
    flags = re.findall(r'<tr data-flag="([^"]*)"', dom)
    assert sorted(flags) == sorted(f["name"] for f in doc["flags"]), flags
    assert re.search(r'<p id="chart-missing"[^>]*hidden', dom), "chart.js was not loaded"
    # the timeline of grades: a row per change, in the document's order
    # (oldest first), the last one the grade in force
    assert doc["grade_history"] and doc["grade_history"][-1]["grade"] == doc["current"]["grade"], doc
    assert "风险等级变化" in dom
    changes = re.findall(r'<tr data-adjustment="([^"]*)" data-grade="([^"]*)"', dom)
    assert changes == [(c["adjustment_id"], c["grade"]) for c in doc["grade_history"]], changes
    assert '<canvas id="history-chart"' in dom and not re.search(r'<div class="chart" hidden[^>]*>\s*<canvas id="history-chart"', dom)
    H.log(f"enterprise page: grade {doc['current']['grade']}, score {doc['score']:g}, "
          f"{len(rows)} contributions, {len(flags)} flags, {len(changes)} grade changes "
          f"({' → '.join(g for _, g in changes)}), as /v1/enterprises/{ENTERPRISE} says")

    dom, why = chromium(wd, "--dump-dom", f"http://127.0.0.1:{port}/enterprise.html?id=91000000NOSUCH0000")
    assert dom is not None, why
    assert 'data-state="error"' in dom and "未找到企业" in dom, dom[:2000]

    # screenshots
    path = wd.file("console-enterprise.png")
    _, why = chromium(wd, f"--screenshot={path}", "--window-size=1280,1700", url)
    assert why is None and os.path.getsize(path) > 10000, why
    shots = ["console-overview.png", "console-enterprise.png"]
    if os.environ.get("RISKD_SCREENSHOTS"):
        for name in shots:
            shutil.copy(wd.file(name), os.path.join(os.environ["RISKD_SCREENSHOTS"], name))
    H.log(f"screenshots: {', '.join(shots)}")
    assert r.term() == 0, r.log_tail()
    rd.close()
    assert b.stop() == 0


if __name__ == "__main__":
    H.main(test, "console")
