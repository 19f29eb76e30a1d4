#!/usr/bin/python3
"""`riskctl broker` itself: the bootstrap line, riskd's topics (seen by
kcat -L), topic names from a riskd configuration, the fault commands and
their answers, an injected error reaching a client, serving on after EOF on
stdin, and a clean exit on SIGTERM and SIGINT.

The mock cannot show (kafka.md §6) broker-side semantics such as
transaction markers or compaction; this test only checks the tool.
"""
import json
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

from confluent_kafka import KafkaException  # noqa: E402


def kcat_metadata(bootstrap):
    r = subprocess.run(["kcat", "-L", "-J", "-b", bootstrap, "-m", "10"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, f"kcat -L failed: {r.stderr.decode()}"
    return json.loads(r.stdout)


def topics_of(md):
    return {t["topic"]: len(t["partitions"]) for t in md["topics"]}


def test(wd):
    # defaults: 3 brokers, 12 partitions, riskd's default topics
    b = H.Broker(wd)
    addrs = b.bootstrap.split(",")
    assert len(addrs) == 3 and all(re.fullmatch(r"127\.0\.0\.1:\d+", a) for a in addrs), b.bootstrap
    md = kcat_metadata(b.bootstrap)
    assert len(md["brokers"]) == 3, md["brokers"]
    want = {H.INPUT: 12, H.CHANGELOG: 12, H.ALERTS: 12, H.SHADOW: 12, H.ADJUSTMENTS: 12, H.DLQ: 12,
            H.ALERT_STATES: 12, H.ENTERPRISES: 12}
    assert topics_of(md) == want, topics_of(md)

    # every fault command answers ok
    for c in ["down 2", "up 2", "errors Produce 2 NOT_ENOUGH_REPLICAS REQUEST_TIMED_OUT",
              "errors 8 1 REQUEST_TIMED_OUT", "errors FindCoordinator 1 COORDINATOR_NOT_AVAILABLE",
              "errors InitProducerId 1 CONCURRENT_TRANSACTIONS", "errors JoinGroup 1 NOT_COORDINATOR",
              "errors SyncGroup 1 NOT_COORDINATOR", "errors AddPartitionsToTxn 1 CONCURRENT_TRANSACTIONS",
              "errors AddOffsetsToTxn 1 CONCURRENT_TRANSACTIONS", "errors txnoffsetcommit 1 err_not_enough_replicas",
              "errors Fetch 1 RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION",
              "clear Produce", "clear 8", "clear FindCoordinator", "clear InitProducerId", "clear JoinGroup",
              "clear SyncGroup", "clear AddPartitionsToTxn", "clear AddOffsetsToTxn", "clear TxnOffsetCommit",
              "clear Fetch",
              "coordinator transaction riskd-1 3", "coordinator group riskd 1", "rtt 1 20", "rtt 1 0",
              "leader risk.events 0 2"]:
        b.ok(c)
    assert b.cmd("help").startswith("ok"), "help"
    # and bad ones say why, without stopping the broker
    for c in ["down 0", "down 4", "up x", "errors Nope 1 NOT_COORDINATOR", "errors Produce 0 NOT_COORDINATOR",
              "errors Produce 1 NO_SUCH_ERROR", "errors Produce 1", "coordinator txn k 1",
              "coordinator group k 9", "rtt 1", "leader no.such.topic 0 1", "frobnicate"]:
        r = b.cmd(c)
        assert r.startswith("error: "), f"{c!r} answered {r!r}"
    # blank lines and comments get no reply: the next reply is for `up 1`
    b.proc.stdin.write(b"\n# a comment\n")
    b.ok("up 1")

    # a broker's own errors, and `pending` seeing a request consume them:
    # pin the transaction coordinator, push a NO_ERROR marker on its EndTxn
    b.ok("coordinator transaction broker-marker 1")
    b.ok("broker-errors 1 EndTxn 1 NO_ERROR:10")
    assert b.cmd("pending 1 EndTxn") == "ok 1"
    assert b.cmd("pending 2 EndTxn") == "ok 0"
    for c in ["broker-errors 4 EndTxn 1 NO_ERROR", "broker-errors 1 EndTxn 1 NO_ERROR:x", "pending 1 Nope"]:
        assert b.cmd(c).startswith("error: "), c
    p = H.producer(b.bootstrap, **{"transactional.id": "broker-marker"})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(H.INPUT, b"y", key=b"k")
    p.commit_transaction(30)
    assert b.cmd("pending 1 EndTxn") == "ok 0", "the commit did not consume the marker"

    # an injected error reaches a client: EndTxn PRODUCER_FENCED is fatal
    p = H.producer(b.bootstrap, **{"transactional.id": "broker-test", "enable.idempotence": True})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(H.INPUT, b"x", key=b"k")
    b.ok("errors EndTxn 1 PRODUCER_FENCED")
    try:
        p.commit_transaction(30)
        raise AssertionError("commit succeeded despite the injected PRODUCER_FENCED")
    except KafkaException as e:
        assert e.args[0].fatal(), e

    # kcat produces (key TAB value) and consumes through it
    lines = "".join(f"ent-{i}\tvalue-{i}\n" for i in range(20)).encode()
    r = subprocess.run(["kcat", "-P", "-b", b.bootstrap, "-t", H.ALERTS, "-K", "\t"], input=lines, timeout=60)
    assert r.returncode == 0
    r = subprocess.run(["kcat", "-C", "-b", b.bootstrap, "-t", H.ALERTS, "-q", "-e", "-f", "%k %s\n"],
                       stdout=subprocess.PIPE, timeout=60)
    got = sorted(r.stdout.decode().splitlines())
    assert got == sorted(f"ent-{i} value-{i}" for i in range(20)), got

    # EOF on stdin: it keeps serving
    b.proc.stdin.close()
    md = kcat_metadata(b.bootstrap)
    assert len(md["brokers"]) == 3
    assert b.stop() == 0, "SIGTERM: exit status"

    # names from a riskd configuration (the enterprises topic off: none); SIGINT
    cfg = wd.write("riskd.yaml", "brokers: 127.0.0.1:9092\ngroup_id: x\n"
                   "input_topics: [in.coldchain, in.inspection]\n"
                   "topics:\n  alerts: my.alerts\n  changelog: my.changelog\n  enterprises: ''\n"
                   "kafka:\n  socket.keepalive.enable: 'true'\n")
    b2 = H.Broker(wd, partitions=4, brokers=1, config=cfg)
    assert len(b2.bootstrap.split(",")) == 1
    got = topics_of(kcat_metadata(b2.bootstrap))
    want = {"in.coldchain": 4, "in.inspection": 4, "my.alerts": 4, H.SHADOW: 4, H.ADJUSTMENTS: 4,
            H.DLQ: 4, "my.changelog": 4, H.ALERT_STATES: 4}
    assert got == want, got
    b2.proc.send_signal(signal.SIGINT)
    assert b2.proc.wait(20) == 0, "SIGINT: exit status"

    # bad arguments: exit 2
    for args in (["--partitions", "0"], ["--brokers", "x"], ["--config", wd.file("nonexistent.yaml")],
                 ["extra"]):
        r = subprocess.run([H.RISKCTL, "broker", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        assert r.returncode == 2, f"{args}: exit {r.returncode}"
        assert b"bootstrap" not in r.stdout


if __name__ == "__main__":
    H.main(test, "broker")
