#!/usr/bin/python3
"""riskd before the brokers answer (issue 12 point 13): pointed at an address
of 127.0.0.1 where nothing listens (a port the test holds bound, without
listen(), so that connecting is refused and no one else can take it),

- riskd says what it waits for: "connecting to brokers B: initialising
  transactions ..., then joining group G" with transactions, "joining group
  G on brokers B" without;
- the HTTP endpoint answers at once: /healthz 200, /readyz 503 (not ready),
  /metrics 200, each within a few seconds of riskd's start;
- riskd keeps waiting (it does not exit: the brokers may come back), and
  SIGTERM stops it with status 0;
- with the brokers up, the producer knows the partitions of every topic it
  writes (outputs, dead letters, changelog) before the first event comes
  (issue 14: a topic first named when a record is produced waited for
  librdkafka's 1-second topic scan, twice in the first transaction), seen
  in librdkafka's topic debug lines; transactions on and off.
"""
import http.client
import os
import re
import socket
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def get(port, path, timeout):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def waiting(wd, closed, transactions):
    name = "tx" if transactions else "idem"
    bootstrap = f"127.0.0.1:{closed}"
    r = H.Riskd(wd, types.SimpleNamespace(bootstrap=bootstrap), name=name, http_listen="127.0.0.1:0",
                transactions=transactions)
    t0 = time.monotonic()
    r.start()
    r.wait_log(r"http: listening on 127\.0\.0\.1:0 \(port \d+\)", 10)
    port = int(re.search(r"http: listening on 127\.0\.0\.1:0 \(port (\d+)\)", r.log_text()).group(1))
    b = re.escape(bootstrap)
    if transactions:
        r.wait_log(rf"connecting to brokers {b}: initialising transactions \(transactional_id riskd-test-tx\), "
                   rf"then joining group riskd-test", 10)
    else:
        r.wait_log(rf"joining group riskd-test on brokers {b} \(input risk\.events\)", 10)

    # each answered (the client gives up after 5 s) while riskd waits for the brokers
    for path, want in (("/healthz", 200), ("/readyz", 503), ("/metrics", 200)):
        status, body = get(port, path, timeout=5)
        assert status == want, f"{name}: {path}: {status} {body[:200]!r}"
    assert b'"status":"ok"' in get(port, "/healthz", 5)[1]
    assert b'"not ready"' in get(port, "/readyz", 5)[1]
    H.log(f"{name}: /healthz 200, /readyz 503, /metrics 200, {time.monotonic() - t0:.1f}s after the start")

    # it goes on waiting (systemd would otherwise restart it in a loop)
    end = time.monotonic() + 3
    while time.monotonic() < end:
        assert r.alive(), f"{name} exited while waiting for the brokers:\n{r.log_tail()}"
        time.sleep(0.1)
    assert get(port, "/healthz", 5)[0] == 200
    assert "assigned" not in r.log_text()
    rc = r.term(20)
    assert rc == 0, f"{name}: SIGTERM while waiting: exit {rc}\n{r.log_tail()}"


def topics_known(wd, transactions):
    b = H.Broker(wd, partitions=4)
    name = "topics-tx" if transactions else "topics-idem"
    r = H.Riskd(wd, b, name=name, transactions=transactions, log_level="debug", kafka={"debug": "topic"})
    r.start()
    r.wait_log(r"ready: 4 partitions restored", 60)
    # no event was produced: whatever the producer knows, it asked for
    topics = [r.cfg["topics"][k] for k in ("alerts", "shadow", "adjustments", "dead_letters", "changelog")]
    for t in topics:
        r.wait_log(r"riskd#producer-\d+: PARTCNT: .*Topic " + re.escape(t) + r" partition count changed from 0 to 4",
                   30)
    assert r.term() == 0, r.log_tail()
    b.stop()
    H.log(f"{name}: the producer knew {', '.join(topics)} before the first event")


def test(wd):
    H.require_riskd()
    topics_known(wd, transactions=True)
    topics_known(wd, transactions=False)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    try:
        closed = s.getsockname()[1]
        waiting(wd, closed, transactions=True)
        waiting(wd, closed, transactions=False)
    finally:
        s.close()


if __name__ == "__main__":
    H.main(test, "startup")
