#!/usr/bin/python3
"""(e) Broker faults, injected through `riskctl broker`'s stdin while a
stream is fed in chunks: transient produce errors, transient commit errors
(EndTxn / TxnOffsetCommit with transactions, OffsetCommit without), a broker
down and up again, extra round-trip time, and moves of the transaction and
group coordinators.  After each chunk the test waits until every output the
reference has for the input so far was read; at the end the outputs equal
the reference (ids and content, final grades), no record became a dead letter
(a re-applied event would be a `duplicate`), and riskd is still running and
stops cleanly.  Run with transactions on, then off, each on its own broker.

What the mock cannot show (kafka.md §6): a broker marked down does not move
partition leadership ("does NOT trigger leader change"), so the partitions it
leads just stall until it is up; there are no replicas or ISR, so
NOT_ENOUGH_REPLICAS is only an injected error code; aborted records stay
visible (ids compared as sets); transactional offsets are discarded.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def case(wd, name, lines, transactions):
    H.log(f"== {name}: transactions {transactions}")
    b = H.Broker(wd)
    r = H.Riskd(wd, b, name=name, transactions=transactions).start()
    txid = r.cfg["transactional_id"]
    group = r.cfg["group_id"]
    rd = H.Reader(b.bootstrap)
    produced = H.Produced()
    parts = H.chunks(lines, 7)

    def step(what, chunk, background=None):
        H.log(f"{name}: {what}")
        if background:
            feed = H.Feeder(b.bootstrap, chunk, pace=None, produced=produced)
            feed.start()
            background()
            feed.join()
        else:
            H.produce(b.bootstrap, chunk, produced=produced)
        exp = H.replay(wd, produced.by_partition())
        rd.wait_for(exp, 120, f"{name}: the outputs after '{what}'")
        assert r.alive(), f"riskd died after '{what}':\n{r.log_tail()}"
        return exp

    step("no fault", parts[0])

    b.ok("errors Produce 6 NOT_ENOUGH_REPLICAS REQUEST_TIMED_OUT NOT_LEADER_FOR_PARTITION")
    step("transient produce errors", parts[1])
    b.ok("clear Produce")

    if transactions:
        b.ok("errors EndTxn 3 COORDINATOR_LOAD_IN_PROGRESS NOT_COORDINATOR CONCURRENT_TRANSACTIONS")
        b.ok("errors TxnOffsetCommit 2 COORDINATOR_LOAD_IN_PROGRESS NOT_COORDINATOR")
        b.ok("errors AddPartitionsToTxn 2 CONCURRENT_TRANSACTIONS COORDINATOR_LOAD_IN_PROGRESS")
    else:
        b.ok("errors OffsetCommit 3 REQUEST_TIMED_OUT COORDINATOR_LOAD_IN_PROGRESS NOT_COORDINATOR")
    step("transient commit errors", parts[2])
    for api in ("EndTxn", "TxnOffsetCommit", "AddPartitionsToTxn", "OffsetCommit"):
        b.ok(f"clear {api}")

    def down_and_up():
        b.ok("down 2")
        # the fault's duration, below the 6 s session timeout: the test
        # synchronises on the outputs afterwards, not on this pause
        time.sleep(3)
        b.ok("up 2")
    step("broker 2 down for 3 s, then up", parts[3], background=down_and_up)

    b.ok("rtt 1 250")
    b.ok("rtt 3 100")
    step("round-trip time 250 ms on broker 1, 100 ms on 3", parts[4])
    b.ok("rtt 1 0")
    b.ok("rtt 3 0")

    b.ok(f"coordinator transaction {txid} 3")
    b.ok(f"coordinator group {group} 1")
    step("coordinators moved to 3 (transaction) and 1 (group)", parts[5])
    b.ok(f"coordinator transaction {txid} 1")
    b.ok(f"coordinator group {group} 2")
    exp = step("coordinators moved to 1 (transaction) and 2 (group)", parts[6])

    rd.quiesce(2)
    H.compare(rd.outputs(), exp, name)
    dl = H.dead_letter_reasons(rd)
    assert not dl, f"{name}: dead letters from a clean stream (events applied twice?): {dl}"
    assert r.alive(), f"riskd died:\n{r.log_tail()}"
    assert r.term() == 0, f"exit status after SIGTERM:\n{r.log_tail()}"
    rd.close()
    assert b.stop() == 0


def test(wd):
    H.require_riskd()
    lines = H.gen_events(48, 5000, 51)
    case(wd, "faults-txn", lines, True)
    case(wd, "faults-notxn", lines, False)


if __name__ == "__main__":
    H.main(test, "faults")
