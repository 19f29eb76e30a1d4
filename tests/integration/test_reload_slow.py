#!/usr/bin/python3
"""A reload whose rules take seconds to compile (issue 13 point 1): riskd
compiles them on a worker thread and goes on meanwhile.  A rules directory
of the pack plus 4,000 generated rules (several seconds of `riskctl check`;
the test measures it first and needs at least 1.5 s), then SIGHUP; between
riskd's "reloading the rules" and "reload done" log lines:

- events produced after the SIGHUP are processed: their outputs (the same
  under both rule sets: the generated rules never fire) are all read back
  before the reload is done;
- /healthz answers 200, each within a second;
- no READY=1 (RELOADING=1 holds until the reload ends); WATCHDOG=1 pings keep coming while the rules compile (WATCHDOG_USEC
  2 s: one a second), no gap of 2 s up to the log line "reload: rules
  compiled" (what follows, the move of each partition's state to the new
  rules between two batches, is on the main loop as before);
- a POST /v1/reload made during the compile is held and answered when the
  reload ends, with its result (200, the new version, coalesced);
- a second SIGHUP during the compile gives one more reload after it.

Then the new rules are in use (/v1/rules), and a SIGTERM during a second
slow compile stops riskd without waiting for it (exit 0 within
shutdown_timeout, the compile dropped; under ASan no leak).
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

SLOW_RULES = 4000


def slow_rules(path, n, salt=""):
    with open(path, "w", encoding="utf-8") as f:
        f.write("rules:\n")
        for i in range(n):
            f.write(f'  - id: slow{salt}.r{i}\n'
                    f'    on: coldchain_reading\n'
                    f'    when: device_id == "zz-none-{salt}{i}" and temp_c > {i}\n'
                    f'    severity: info\n'
                    f'    basis: "test"\n'
                    f'    message: "never {i}"\n')


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
    slow = os.path.join(wd.path, "rules-slow")
    shutil.copytree(rules, slow)
    slow_rules(os.path.join(slow, "zz-slow.yaml"), SLOW_RULES)
    t = time.monotonic()
    out = subprocess.run([H.RISKCTL, "check", slow], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         check=True).stdout.decode()
    compile_s = time.monotonic() - t
    vnew = re.search(r"version ([0-9a-f]{16})", out).group(1)
    H.log(f"the slow rules: riskctl check takes {compile_s:.2f}s")
    assert compile_s >= 1.5, f"the generated rules compile in {compile_s:.2f}s: too fast for this test"

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
    r.start(env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "2000000"})
    r.wait_log(r"http: listening on 127\.0\.0\.1:0 \(port \d+\)", 30)
    port = int(re.search(r"\(port (\d+)\)", r.log_text()).group(1))
    ns.wait("READY", "1", 60, r)

    produced = H.produce(b.bootstrap, first)
    exp1 = H.replay(wd, produced.by_partition())
    rd.wait_for(exp1, 120, "the outputs before the reload")

    # the slow rules in place, SIGHUP
    shutil.rmtree(rules)
    shutil.copytree(slow, rules)
    mark = len(r.log_text())
    t_hup = time.monotonic()
    r.proc.send_signal(signal.SIGHUP)
    r.wait_log(r"reloading the rules from", 30, start=mark)

    # a POST during the compile: held, answered with the reload's result
    post = {}

    def do_post():
        post["res"] = get(port, "/v1/reload", "POST", {"Authorization": "Bearer " + token}, timeout=120)
        post["t"] = time.monotonic()
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
        t = time.monotonic()
        st, _ = get(port, "/healthz")
        health.append((st, time.monotonic() - t))
        rd.poll()
    t_out = time.monotonic()
    during = r.log_text()[mark:]
    assert "reload done" not in during, \
        f"the reload was done before the outputs of the events after the SIGHUP came:\n{r.log_tail()}"
    assert health and all(st == 200 and dt < 1.0 for st, dt in health), health
    H.log(f"{len(new_ids)} outputs of events produced after SIGHUP read {t_out - t_hup:.2f}s after it, "
          f"before the reload was done; /healthz {len(health)} times 200, slowest {max(d for _, d in health):.3f}s")

    # when the compile ended, as seen from here (the log has no times)
    end = H.deadline(120)
    t_compiled = None
    while "reload done" not in r.log_text()[mark:]:
        assert r.alive() and time.monotonic() < end, f"no reload done:\n{r.log_tail()}"
        if t_compiled is None and "reload: rules compiled in" in r.log_text()[mark:]:
            t_compiled = time.monotonic()
        time.sleep(0.05)
    t_done = time.monotonic()
    if t_compiled is None:
        t_compiled = t_done
    compiled_ms = int(re.search(r"reload: rules compiled in (\d+) ms", r.log_text()[mark:]).group(1))
    poster.join(120)
    st, data = post["res"]
    doc = json.loads(data)
    assert st == 200 and doc["status"] == "ok" and doc["version"] == vnew and doc["coalesced"], (st, doc)
    assert post["t"] >= t_out, "the POST was answered before the reload ended"
    pings = [t for t, g in ns.got if g.get("WATCHDOG") == "1" and t_hup <= t <= t_compiled]
    gaps = [y - x for x, y in zip([t_hup] + pings, pings + [t_compiled])]
    H.log(f"rules compiled in {compiled_ms} ms, reload done {t_done - t_hup:.2f}s after SIGHUP; "
          f"{len(pings)} WATCHDOG=1 during the compile, largest gap {max(gaps):.2f}s; the POST during it: {doc}")
    assert compiled_ms >= 1000, f"the compile took {compiled_ms} ms: too fast for this test"
    assert max(gaps) < 2.0, f"a gap of {max(gaps):.2f}s between watchdog pings while the rules compiled"
    early = [g for t, g in ns.got if g.get("READY") == "1" and t_hup <= t < t_compiled - 0.1]
    assert not early, f"READY=1 while the rules compiled (RELOADING=1 holds until the reload ends): {early}"
    r.wait_log(r"reload done(.|\n)*reloading the rules from(.|\n)*reload done", 120, start=mark)
    assert r.log_text()[mark:].count("reloading the rules from") == 2, r.log_tail()
    st, data = get(port, "/v1/rules")
    doc = json.loads(data)
    assert st == 200 and doc["version"] == vnew and doc["reloads"]["ok"] == 2, data[:300]
    H.log("the SIGHUP during the compile: one more reload after it")

    # a stop during a slow compile: clean
    slow_rules(os.path.join(rules, "zz-slow.yaml"), SLOW_RULES, salt="b")
    mark = len(r.log_text())
    r.proc.send_signal(signal.SIGHUP)
    r.wait_log(r"reloading the rules from", 30, start=mark)
    t = time.monotonic()
    assert r.term(60) == 0, r.log_tail()
    t = time.monotonic() - t
    after = r.log_text()[mark:]
    assert "reload done" not in after and "the reload compiling in the background is dropped" in after, r.log_tail()
    H.log(f"SIGTERM during a compile: exit 0 in {t:.2f}s (the compile took {compiled_ms} ms before)")
    ns.stop = True
    rd.close()
    assert b.stop() == 0


if __name__ == "__main__":
    H.main(test, "reload-slow")
