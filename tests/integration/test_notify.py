#!/usr/bin/python3
"""riskd and its service manager (sd_notify, issue 5 point 1): the test owns
the NOTIFY_SOCKET datagram socket, as systemd would, and reads what riskd
sends.

- READY=1 comes only after the partitions are assigned and restored: a
  first run leaves state in the changelog, the second run must log every
  partition's restore before READY=1 arrives, and a STATUS= line says so;
- WATCHDOG=1 pings come at half WATCHDOG_USEC (4 s here) while riskd works,
  never a whole interval apart; /metrics says so too: the interval in
  riskd_watchdog_interval_seconds, each gap over it in
  riskd_watchdog_gap_ratio (from 0.5, none at 1);
- SIGHUP: RELOADING=1, then READY=1 again;
- SIGTERM: STOPPING=1, then exit 0.
"""
import os
import re
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


class NotifySocket:
    """The service manager's end: a thread receives every datagram as it
    comes and stamps it with its arrival time."""

    def __init__(self, path):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path)
        self.s.settimeout(0.1)
        self.got = []  # (monotonic time, {field: value})
        self.cursor = 0  # got[:cursor] were seen by wait()
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                data = self.s.recv(65536)
            except socket.timeout:
                continue
            fields = dict(ln.split("=", 1) for ln in data.decode().split("\n") if "=" in ln)
            with self.lock:
                self.got.append((time.monotonic(), fields))

    def read(self, timeout):
        """Waits timeout seconds; returns what arrived meanwhile."""
        with self.lock:
            n = len(self.got)
        time.sleep(timeout)
        with self.lock:
            return self.got[n:]

    def wait(self, field, value, timeout, proc=None):
        """The first datagram not yet waited for with field=value."""
        end = H.deadline(timeout)
        while True:
            while True:
                with self.lock:
                    if self.cursor >= len(self.got):
                        break
                    t, f = self.got[self.cursor]
                self.cursor += 1
                if f.get(field) == value:
                    return t, f
            if time.monotonic() > end:
                break
            self.read(0.2)
            if proc is not None:
                assert proc.alive(), f"{proc.name} died:\n{proc.log_tail()}"
        raise AssertionError(f"no {field}={value} within {timeout}s; got {[f for _, f in self.got][-10:]}")


def test(wd):
    H.require_riskd()
    stream = H.gen_events(48, 3000, 5)
    lines, later = stream[:1500], stream[1500:]
    b = H.Broker(wd, partitions=12)
    rd = H.Reader(b.bootstrap)

    # a first run leaves state to restore
    first = H.Riskd(wd, b, name="first", transactional_id="riskd-notify")
    first.start()
    exp = H.replay(wd, H.produce(b.bootstrap, lines).by_partition())
    rd.wait_for(exp, 120, "the first run's outputs")
    assert first.term() == 0, first.log_tail()

    ns = NotifySocket(wd.file("notify.sock"))
    r = H.Riskd(wd, b, name="riskd", transactional_id="riskd-notify", http_listen="127.0.0.1:0")
    r.start(env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "4000000"})
    t_ready, f = ns.wait("READY", "1", 60, r)
    text = r.log_text()
    restored = text.count(" restored: ")
    assert "assigned risk.events[0,1,2,3,4,5,6,7,8,9,10,11]" in text, f"READY=1 before the assignment:\n{text}"
    assert restored == 12, f"READY=1 after {restored} of 12 restores:\n{r.log_tail()}"
    records = sum(int(n) for n in re.findall(r" restored: (\d+) changelog records", text))
    assert records > 0, "the second run had nothing to restore"
    assert "12 partitions" in f.get("STATUS", ""), f"STATUS with READY=1: {f}"
    before = [g for _, g in ns.got if g.get("READY") != "1" and "STATUS" in g]
    H.log(f"READY=1 after 12 restores ({records} changelog records); STATUS before it: {[g['STATUS'] for g in before]}; with it: {f['STATUS']}")

    # the watchdog: pings every 2 s (half of WATCHDOG_USEC), while events
    # flow; systemd would kill riskd after a gap of 4 s
    ns.read(0.1)
    t0 = time.monotonic()
    H.produce(b.bootstrap, later)
    ns.read(max(0.0, 10 - (time.monotonic() - t0)))
    pings = [t for t, g in ns.got if g.get("WATCHDOG") == "1" and t >= t0]
    gaps = [b2 - a for a, b2 in zip([t0] + pings, pings + [time.monotonic()])]
    H.log(f"{len(pings)} WATCHDOG=1 pings in {time.monotonic() - t0:.1f}s, largest gap {max(gaps):.2f}s")
    assert len(pings) >= 4, f"only {len(pings)} watchdog pings in 10 s (expected one every 2 s)"
    assert max(gaps) < 4.0, f"a gap of {max(gaps):.2f}s between pings (WATCHDOG_USEC is 4 s)"
    s = H.samples(H.scrape(r.http_port()))
    n = s.get("riskd_watchdog_gap_ratio_count", 0)
    H.log(f"/metrics: watchdog interval {s.get('riskd_watchdog_interval_seconds')}s, {n:.0f} gaps, "
          f"mean {s.get('riskd_watchdog_gap_ratio_sum', 0) / max(n, 1):.3f} of it")
    assert s.get("riskd_watchdog_interval_seconds") == 4, s
    assert n >= len(pings) - 1, f"{n} gaps in /metrics, {len(pings)} pings seen"
    assert s['riskd_watchdog_gap_ratio_bucket{le="1"}'] == n, "a gap of the whole interval in /metrics"
    assert s["riskd_watchdog_gap_ratio_sum"] >= 0.5 * n, "a ping before half the interval"

    # reload
    n = len(ns.got)
    r.proc.send_signal(signal.SIGHUP)
    t_rel, _ = ns.wait("RELOADING", "1", 30, r)
    t_rdy, _ = ns.wait("READY", "1", 30, r)
    assert t_rel <= t_rdy, "READY=1 before RELOADING=1"
    H.log(f"SIGHUP: RELOADING=1, READY=1 {t_rdy - t_rel:.3f}s later ({len(ns.got) - n} datagrams)")

    # stop
    r.proc.send_signal(signal.SIGTERM)
    ns.wait("STOPPING", "1", 30)
    assert r.wait_exit(30) == 0, r.log_tail()
    ns.stop = True
    rd.close()
    assert b.stop() == 0


if __name__ == "__main__":
    H.main(test, "notify")
