#!/usr/bin/python3
"""riskd's web console (issue 16 point 4, its base): riskd on the mock
broker with http_console at the source tree's console/ and http_javascript
at Debian's /usr/share/javascript, fed the demo story.

- static files: / is console/index.html (text/html), the chart library
  /javascript/chart.js/chart.min.js (libjs-chart.js) text/javascript; dot
  segments, encoded (%2e%2e) or not, and hidden files are refused (403),
  a missing file is a JSON 404;
- headless Chromium (Debian's chromium) opens the enterprise page of the
  story's dairy producer and sees what /v1/enterprises/{id} says: its
  grade, score, each live contribution (rule and event), each flag and
  each change of its grade (grade_history, oldest first), in Chinese, with
  the charts drawn by chart.js; an unknown enterprise's page
  says it is not found.  A screenshot of each page is taken (copied to
  $RISKD_SCREENSHOTS when set: docs/console-*.png come from there).

Skipped (exit 77, the reason printed) only when Chromium cannot start.
"""
import http.client
import json
import os
import re
import shutil
import subprocess
import sys

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

    # the story, then the enterprise page as Chromium shows it
    rd = H.Reader(b.bootstrap)
    produced = H.produce(b.bootstrap, H.story_events())
    rd.wait_for(H.replay(wd, produced.by_partition()), 120, "the story's outputs")
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
    shots = {"console-enterprise.png": url, "console-home.png": f"http://127.0.0.1:{port}/"}
    for name, u in shots.items():
        path = wd.file(name)
        _, why = chromium(wd, f"--screenshot={path}", "--window-size=1280,1700", u)
        assert why is None and os.path.getsize(path) > 10000, (name, why)
        if os.environ.get("RISKD_SCREENSHOTS"):
            shutil.copy(path, os.path.join(os.environ["RISKD_SCREENSHOTS"], name))
    H.log(f"screenshots: {', '.join(shots)}")
    assert r.term() == 0, r.log_tail()
    rd.close()
    assert b.stop() == 0


if __name__ == "__main__":
    H.main(test, "console")
