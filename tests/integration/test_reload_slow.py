#!/usr/bin/python3
"""A reload whose rules take a long time to compile (issue 13 point 1):
riskd compiles them on a worker thread and goes on meanwhile.  The test
holds the compile open with a test-only fault, RISKD_FAULT_RELOAD_GATE=PATH
(the compiled rules are handed to the loop only once PATH exists), so that
"while the rules compile" is a state the test controls, not a race with the
machine's speed.  SIGHUP, then, with the compile held:

- events produced after the SIGHUP are processed: their outputs (the same
  under both rule sets: the added rule never fires) are all read back;
- /healthz answers 200 each time it is asked;
- WATCHDOG=1 pings keep coming (three at least), and no READY=1
  (RELOADING=1 holds until the reload ends);
- a POST /v1/reload made meanwhile is held: not answered until the gate
  opens, then answered with the reload's result (200, the new version,
  coalesced);
- a second SIGHUP meanwhile gives one more reload after it.

Then the new rules are in use (/v1/rules), and a SIGTERM during a held
compile stops riskd without waiting for it (exit 0, the compile dropped;
under ASan no leak).
"""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from test_notify import NotifySocket  # noqa: E402

def added_rule(path, salt):
    """A rule that never fires: a new rules version, the same outputs."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("rules:\n"
                f"  - id: gate.never{salt}\n"
                "    on: coldchain_reading\n"
                f'    when: device_id == "zz-none-{salt}"\n'
                "    severity: info\n"
                '    basis: "test"\n'
                '    message: "never"\n')


def get(port, path, method="GET", headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def test(wd):
    H.require_riskd()
    rules = os.path.join(wd.path, "rules")
    shutil.copytree(H.RULES, rules, ignore=shutil.ignore_patterns("tests"))
    new = os.path.join(wd.path, "rules-new")
    shutil.copytree(rules, new)
    added_rule(os.path.join(new, "zz-gate.yaml"), "a")
    out = subprocess.run([H.RISKCTL, "check", new], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         check=True).stdout.decode()
    vnew = re.search(r"version ([0-9a-f]{16})", out).group(1)
    gate = wd.file("reload-gate")

    token = "t-" + os.urandom(24).hex()
    tokfile = wd.write("reload-token", (token + "\n").encode())
    os.chmod(tokfile, 0o600)
    stream = H.gen_events(24, 2400, 13)
    first, second = stream[:1200], stream[1200:]
    b = H.Broker(wd, partitions=4)
    rd = H.Reader(b.bootstrap)
    ns = NotifySocket(wd.file("notify.sock"))
    r = H.Riskd(wd, b, name="riskd", rules=rules, http_listen="127.0.0.1:0", http_reload=True,
                http_reload_token_file=tokfile)
    r.start(env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "2000000", "RISKD_FAULT_RELOAD_GATE": gate})
    r.wait_log(r"http: listening on 127\.0\.0\.1:0 \(port \d+\)", 30)
    port = int(re.search(r"\(port (\d+)\)", r.log_text()).group(1))
    ns.wait("READY", "1", 60, r)

    produced = H.produce(b.bootstrap, first)
    exp1 = H.replay(wd, produced.by_partition())
    rd.wait_for(exp1, 120, "the outputs before the reload")

    # the new rules in place, SIGHUP: the compile is held until the gate opens
    shutil.rmtree(rules)
    shutil.copytree(new, rules)
    mark = len(r.log_text())
    with ns.lock:
        nmark = len(ns.got)
    r.proc.send_signal(signal.SIGHUP)
    r.wait_log(r"reloading the rules from", 30, start=mark)

    # a POST during the compile: held, answered with the reload's result
    post = {}

    def do_post():
        post["res"] = get(port, "/v1/reload", "POST", {"Authorization": "Bearer " + token}, timeout=120)
    poster = threading.Thread(target=do_post)
    poster.start()
    # a second SIGHUP during the compile: one more reload after it
    r.proc.send_signal(signal.SIGHUP)

    H.produce(b.bootstrap, second, produced=produced)
    exp2 = H.replay(wd, produced.by_partition())
    new_ids = exp2.ids() - exp1.ids()
    assert new_ids, "the events after the SIGHUP give no outputs"
    health = []
    end = H.deadline(120)
    while not rd.ids() >= exp2.ids():
        assert time.monotonic() < end, f"the outputs after the SIGHUP never came ({rd.summary()})"
        health.append(get(port, "/healthz")[0])
        rd.poll()
    assert health and set(health) == {200}, health
    # the main loop feeds the watchdog while the compile is held
    end = H.deadline(30)
    while True:
        with ns.lock:
            since = [g for _, g in ns.got[nmark:]]
        if sum(g.get("WATCHDOG") == "1" for g in since) >= 3:
            break
        assert time.monotonic() < end, f"fewer than 3 WATCHDOG=1 while the rules compile: {since}"
        time.sleep(0.1)  # pacing the poll of what the notify thread collected
    assert not [g for g in since if g.get("READY") == "1"], f"READY=1 while the rules compile: {since}"
    assert "reload done" not in r.log_text()[mark:], r.log_tail()
    assert "res" not in post, f"the POST was answered while its reload compiled: {post}"
    H.log(f"while the compile was held: {len(new_ids)} outputs of events produced after SIGHUP, "
          f"/healthz {len(health)} times 200, the watchdog fed, the POST held")

    # the gate opens: the reload, then the one the second SIGHUP asked for
    open(gate, "w").close()
    r.wait_log(r"reload done(.|\n)*reloading the rules from(.|\n)*reload done", 120, start=mark)
    assert r.log_text()[mark:].count("reloading the rules from") == 2, r.log_tail()
    poster.join(120)
    assert "res" in post, "the POST was never answered"
    st, data = post["res"]
    doc = json.loads(data)
    assert st == 200 and doc["status"] == "ok" and doc["version"] == vnew and doc["coalesced"], (st, doc)
    st, data = get(port, "/v1/rules")
    doc = json.loads(data)
    assert st == 200 and doc["version"] == vnew and doc["reloads"]["ok"] == 2, data[:300]
    H.log("the gate opened: the reload done, the held POST answered with it, the second SIGHUP's reload after it")

    # a stop during a held compile: clean, without waiting for it
    os.unlink(gate)
    added_rule(os.path.join(rules, "zz-gate-b.yaml"), "b")
    mark = len(r.log_text())
    r.proc.send_signal(signal.SIGHUP)
    r.wait_log(r"reloading the rules from", 30, start=mark)
    assert r.term(60) == 0, r.log_tail()
    after = r.log_text()[mark:]
    assert "reload done" not in after and "the reload compiling in the background is dropped" in after, r.log_tail()
    H.log("SIGTERM during a held compile: exit 0, the compile dropped")
    ns.stop = True
    rd.close()
    assert b.stop() == 0


if __name__ == "__main__":
    H.main(test, "reload-slow")
