"""Helpers for riskd's integration tests: real processes on 127.0.0.1.

A test starts `riskctl broker` (librdkafka's mock cluster, kafka.md §2.5),
one or more `riskd --config FILE` daemons with a configuration written to a
temporary directory, produces events keyed by enterprise id with a
confluent_kafka Producer, reads the output topics from the beginning with an
assign()ed Consumer, and compares what it read with `riskctl replay` of the
same events.

Synchronisation is on what is observed (a number of outputs read, a set of
ids complete, a process exit, a reply of the broker), each wait bounded by a
deadline that fails the test; sleeping is only used to pace producers.

What the expected result is.  riskd runs one engine per input partition, so
its watermark (and with it too_late, timers, expiries) is per partition.
The reference is therefore `riskctl replay` run once per input partition over
that partition's events in offset order, with the same grace; the daemon's
outputs must equal the union.  Tests use grace 0: `riskctl replay` flushes the
events held for reordering at the end of its input, a daemon waits for more
input, so with a grace the tail of a stream would legitimately differ.

What the mock cannot show (kafka.md §6), and therefore what every test
compares: records of aborted transactions stay visible to read_committed
consumers, so outputs are compared as SETS of ids (every repeat of an id must
be identical), never as counts; transactional offset commits are discarded,
so a restarted riskd resumes from the partition record of its changelog, not
from a committed offset; there is no compaction and each partition keeps at
most 5 MiB, so the streams here stay small (a few thousand events).

Arguments and environment: a test's first argument may name the riskctl to
use (meson passes the build's own); otherwise RISKD_BUILD (the meson build
directory), and RISKD_SRC (the source tree); both default to the layout of a
checkout with build/.  RISKD names another daemon binary to test.  The
exit status 77 tells meson the test was skipped (riskd not built yet).
"""
import atexit
import http.client
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition, OFFSET_BEGINNING

SKIP = 77

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("RISKD_SRC") or os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("RISKD_BUILD") or os.path.join(SRC, "build")
# meson passes the riskctl of the build being tested (build/, build-asan/):
# riskd and riskd-gen are taken from the same directory
for _a in sys.argv[1:]:
    if os.path.basename(_a) == "riskctl" and os.access(_a, os.X_OK):
        BUILD = os.path.dirname(os.path.abspath(_a))
RISKCTL = os.path.join(BUILD, "riskctl")
RISKD_GEN = os.path.join(BUILD, "riskd-gen")
RULES = os.path.join(SRC, "rules")

# riskd's default topic names (SPEC §4, docs/outputs.md)
INPUT = "risk.events"
ALERTS = "risk.alerts"
SHADOW = "risk.alerts.shadow"
ADJUSTMENTS = "risk.adjustments"
DLQ = "riskd.dlq"
CHANGELOG = "riskd.changelog"
ALERT_STATES = "risk.alert_states"
OUTPUTS = (ALERTS, SHADOW, ADJUSTMENTS, DLQ, ALERT_STATES)
ENTERPRISES = "risk.enterprises"  # the enterprise documents (docs/outputs.md §11)

# Scale of the tests: the mock keeps 5 MiB per partition (kafka.md §2.6 T4b).
TIMEOUT_SCALE = float(os.environ.get("RISKD_TEST_TIMEOUT_SCALE", "1"))


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def riskd_path():
    if os.environ.get("RISKD"):  # another daemon binary, e.g. an installed one
        return os.environ["RISKD"]
    for p in (os.path.join(BUILD, "riskd"), os.path.join(BUILD, "src", "daemon", "riskd")):
        if os.access(p, os.X_OK):
            return p
    return None


def require_riskd():
    p = riskd_path()
    if not p:
        print("SKIP: riskd is not built in", BUILD)
        sys.exit(SKIP)
    return p


def deadline(secs):
    return time.monotonic() + secs * TIMEOUT_SCALE


# ---- processes we started (and only those) are cleaned up at exit ----

_procs = []


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(10)
            except Exception:
                pass


atexit.register(_cleanup)


def spawn(argv, **kw):
    p = subprocess.Popen(argv, **kw)
    _procs.append(p)
    return p


class Workdir:
    """A temporary directory, kept when the test fails (its path is printed)."""

    def __init__(self, name):
        self.path = tempfile.mkdtemp(prefix=f"riskd-it-{name}-")
        self.keep = False

    def file(self, name):
        return os.path.join(self.path, name)

    def write(self, name, data):
        p = self.file(name)
        with open(p, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return p

    def close(self):
        if self.keep:
            log("kept", self.path)
        else:
            shutil.rmtree(self.path, ignore_errors=True)


class LineReader:
    """Lines from a pipe, with a timeout (select + os.read)."""

    def __init__(self, f):
        self.fd = f.fileno()
        self.buf = b""

    def readline(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line within {timeout:.0f}s (have {self.buf!r})")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                chunk = os.read(self.fd, 4096)
                if not chunk:
                    raise AssertionError(f"pipe closed (have {self.buf!r})")
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()


# ---- the broker ----

class Broker:
    """`riskctl broker`: bootstrap servers and fault commands."""

    def __init__(self, wd, partitions=12, brokers=3, config=None):
        self.wd = wd
        self.nbrokers = brokers
        self.partitions = partitions
        argv = [RISKCTL, "broker", "--partitions", str(partitions), "--brokers", str(brokers)]
        if config:
            argv += ["--config", config]
        self.logf = open(wd.file("broker.log"), "w")
        self.proc = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.logf)
        self.out = LineReader(self.proc.stdout)
        line = self.out.readline(20)
        assert line.startswith("bootstrap: "), f"riskctl broker printed {line!r}"
        self.bootstrap = line[len("bootstrap: "):].strip()
        log("broker", self.bootstrap)

    def cmd(self, line, timeout=20):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        return self.out.readline(timeout)

    def ok(self, line):
        r = self.cmd(line)
        assert r == "ok", f"broker: {line!r} answered {r!r}"
        log("broker <-", line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(20)
        self.logf.close()
        return rc


# ---- riskd ----

def riskd_config(broker, name="riskd", **over):
    """A riskd configuration (docs: the daemon's config keys) for tests.

    Small batches and a short commit interval so that kills land between and
    inside transactions; short session timeouts so that the mock notices a
    killed member quickly (it enforces the last joiner's session.timeout.ms).
    """
    cfg = {
        "brokers": broker.bootstrap,
        "group_id": "riskd-test",
        "input_topics": [INPUT],
        "topics": {
            "alerts": ALERTS,
            "shadow": SHADOW,
            "adjustments": ADJUSTMENTS,
            "dead_letters": DLQ,
            "changelog": CHANGELOG,
            "alert_states": ALERT_STATES,
            "enterprises": ENTERPRISES,
        },
        "rules": RULES,
        "transactions": True,
        "transactional_id": f"riskd-test-{name}",
        "commit_interval": "100ms",
        "batch_max": 50,
        "grace": "0s",
        "shutdown_timeout": "10s",
        "log_level": "info",
        "kafka": {
            "auto.offset.reset": "earliest",
            "session.timeout.ms": "6000",
            "heartbeat.interval.ms": "500",
            "message.max.bytes": "4000000",
        },
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        elif v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    return cfg


class Riskd:
    """One riskd process; its configuration is JSON, which is YAML."""

    def __init__(self, wd, broker, name="riskd", **over):
        self.wd = wd
        self.name = name
        self.path = require_riskd()
        self.cfg = riskd_config(broker, name, **over)
        self.config = wd.write(f"{name}.yaml", json.dumps(self.cfg, indent=2) + "\n")
        self.logname = wd.file(f"{name}.log")
        self.proc = None
        self.starts = 0

    def start(self, env=None):
        """env: extra environment variables (NOTIFY_SOCKET, WATCHDOG_USEC)."""
        assert not self.alive(), f"{self.name} is already running"
        self.starts += 1
        with open(self.logname, "a") as f:
            f.write(f"==== start {self.starts} ====\n")
        logf = open(self.logname, "a")
        self.proc = spawn([self.path, "--config", self.config], stdin=subprocess.DEVNULL,
                          stdout=logf, stderr=subprocess.STDOUT,
                          env=dict(os.environ, RISKCTL=RISKCTL, **(env or {})))  # RISKCTL: stand-in-riskd
        logf.close()
        log(f"{self.name}: started (pid {self.proc.pid})")
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        assert self.alive(), f"{self.name} died before it was killed:\n{self.log_tail()}"
        self.proc.kill()
        self.proc.wait(20)
        log(f"{self.name}: SIGKILL")

    def term(self, timeout=30):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout):
        try:
            rc = self.proc.wait(timeout * TIMEOUT_SCALE)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {timeout}s:\n{self.log_tail()}")
        log(f"{self.name}: exited {rc}")
        return rc

    def log_text(self):
        try:
            with open(self.logname, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def wait_log(self, pattern, timeout=30, start=0):
        """Wait until the log (from byte `start`) matches a regex."""
        rx = re.compile(pattern)
        end = deadline(timeout)
        while time.monotonic() < end:
            if rx.search(self.log_text()[start:]):
                return True
            if not self.alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no log line matching {pattern!r}:\n{self.log_tail()}")

    def http_port(self, timeout=30):
        """The port riskd's HTTP endpoint took (http_listen "127.0.0.1:0"),
        from its log."""
        self.wait_log(r"http: listening on 127\.0\.0\.1:0 \(port \d+\)", timeout)
        return int(re.search(r"http: listening on 127\.0\.0\.1:0 \(port (\d+)\)", self.log_text()).group(1))


def scrape(port):
    """GET /metrics: the exposition text."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metrics")
    r = c.getresponse()
    data = r.read().decode()
    c.close()
    assert r.status == 200, (r.status, data[:200])
    return data


def samples(text):
    """An exposition's samples: {'name{labels}': value}."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def total(s, name):
    """The sum of a family's samples (of H.samples)."""
    return sum(v for k, v in s.items() if k == name or k.startswith(name + "{"))


# ---- events ----

_USCC = re.compile(rb'"uscc"\s*:\s*"([^"]*)"')


def enterprise_key(line):
    """The Kafka key of an input line: its enterprise.uscc (the schema's
    envelope), found by a regex so that malformed lines get one too."""
    m = _USCC.search(line)
    return m.group(1) if m else None


def read_lines(path):
    with open(path, "rb") as f:
        return [ln.rstrip(b"\r\n") for ln in f if ln.strip()]


def gen_events(enterprises=48, events=5000, seed=7, *extra):
    """riskd-gen's stream if it is built, else examples/story.jsonl."""
    if os.access(RISKD_GEN, os.X_OK):
        out = subprocess.run([RISKD_GEN, "--enterprises", str(enterprises), "--events", str(events),
                              "--seed", str(seed), *extra], check=True, stdout=subprocess.PIPE).stdout
        return [ln for ln in out.split(b"\n") if ln]
    log("riskd-gen not built: using examples/story.jsonl")
    return read_lines(os.path.join(SRC, "examples", "story.jsonl"))


def story_events():
    p = os.path.join(SRC, "examples", "events.jsonl")
    if not os.path.exists(p):
        p = os.path.join(SRC, "examples", "story.jsonl")
    return read_lines(p)


class Produced:
    """What was delivered: (partition, offset, value) per message."""

    def __init__(self):
        self.lock = threading.Lock()
        self.records = []
        self.errors = []
        self.at = {}  # index in the lines produced -> (partition, offset)

    def by_partition(self):
        with self.lock:
            parts = {}
            for p, o, v in sorted(self.records):
                parts.setdefault(p, []).append(v)
            return parts

    def __len__(self):
        with self.lock:
            return len(self.records)


def producer(bootstrap, **conf):
    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                     "message.max.bytes": 4000000, **conf})


def produce(bootstrap, lines, topic=INPUT, keys=None, pace=None, produced=None, stop=None):
    """Produce lines (bytes) keyed by enterprise id (or keys[i]); pace:
    lines per second (None: as fast as possible).  Waits for every delivery
    report; a failed delivery fails the test."""
    produced = produced if produced is not None else Produced()
    p = producer(bootstrap)

    def dr(i, err, msg):
        with produced.lock:
            if err:
                produced.errors.append(err)
            else:
                produced.records.append((msg.partition(), msg.offset(), msg.value() or b""))
                produced.at[i] = (msg.partition(), msg.offset())

    t0 = time.monotonic()
    for i, v in enumerate(lines):
        if stop is not None and stop.is_set():
            break
        k = keys[i] if keys is not None else enterprise_key(v)
        while True:
            try:
                p.produce(topic, v, key=k, on_delivery=lambda err, msg, i=i: dr(i, err, msg))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
        if pace:
            ahead = (i + 1) / pace - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    left = p.flush(60)
    assert left == 0, f"{left} messages not delivered"
    assert not produced.errors, f"delivery failed: {produced.errors[:3]}"
    return produced


class Feeder(threading.Thread):
    """produce() in the background, paced; join() re-raises its failure."""

    def __init__(self, bootstrap, lines, pace, produced=None, **kw):
        super().__init__(daemon=True)
        self.args = (bootstrap, lines)
        self.kw = dict(kw, pace=pace)
        self.produced = produced if produced is not None else Produced()
        self.exc = None
        self.stop_evt = threading.Event()

    def run(self):
        try:
            produce(*self.args, produced=self.produced, stop=self.stop_evt, **self.kw)
        except BaseException as e:  # noqa: B902 - reported by join()
            self.exc = e

    def join(self, timeout=120):
        super().join(timeout * TIMEOUT_SCALE)
        assert not self.is_alive(), "the producer did not finish"
        if self.exc:
            raise self.exc


# ---- reading the outputs ----

class Msg:
    __slots__ = ("topic", "partition", "offset", "key", "value", "headers", "_doc")

    def __init__(self, m):
        self.topic, self.partition, self.offset = m.topic(), m.partition(), m.offset()
        self.key, self.value = m.key(), m.value()
        self.headers = dict((k, v.decode() if v is not None else None) for k, v in (m.headers() or []))
        self._doc = None

    def json(self):
        if self._doc is None:
            self._doc = json.loads(self.value)
        return self._doc


class Reader:
    """Every partition of some topics from the beginning, read_committed (the
    librdkafka default; on the mock it sees aborted records too)."""

    def __init__(self, bootstrap, topics=OUTPUTS):
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "riskd-it-reader",
                           "enable.auto.commit": False, "isolation.level": "read_committed",
                           "fetch.wait.max.ms": 50})
        md = self.c.list_topics(timeout=20)
        tps = []
        for t in topics:
            assert t in md.topics and not md.topics[t].error, f"topic {t} missing: {md.topics.get(t)}"
            tps += [TopicPartition(t, p, OFFSET_BEGINNING) for p in sorted(md.topics[t].partitions)]
        self.c.assign(tps)
        self.msgs = {t: [] for t in topics}
        self.last_new = time.monotonic()

    def poll(self, timeout=0.2):
        n = 0
        for m in self.c.consume(10000, timeout):
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    log("reader:", m.error())
                continue
            self.msgs[m.topic()].append(Msg(m))
            n += 1
        if n:
            self.last_new = time.monotonic()
        return n

    def wait(self, pred, timeout, what):
        end = deadline(timeout)
        while not pred(self):
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {timeout}s waiting for {what} ({self.summary()})")
            self.poll()
        return self

    def wait_for(self, exp, timeout, what):
        """Wait until every output id of exp (Outputs) was read; on a timeout
        the failure names the missing outputs (compare's report)."""
        try:
            return self.wait(lambda x: x.ids() >= exp.ids(), timeout, what)
        except AssertionError as timed_out:
            try:
                compare(self.outputs(), exp, what)
            except AssertionError as diff:
                raise AssertionError(f"{timed_out}\n{diff}") from None
            raise

    def quiesce(self, quiet=2.0, timeout=60):
        """Read until nothing new arrived for `quiet` seconds."""
        end = deadline(timeout)
        self.last_new = time.monotonic()
        while time.monotonic() - self.last_new < quiet:
            if time.monotonic() > end:
                raise AssertionError(f"outputs still arriving after {timeout}s ({self.summary()})")
            self.poll()
        return self

    def docs(self, topic):
        return [m.json() for m in self.msgs[topic]]

    def ids(self, topic=None):
        """Distinct output ids of one topic, or of alerts, shadow,
        adjustments and alert states."""
        if topic is None:
            return self.ids(ALERTS) | self.ids(SHADOW) | self.ids(ADJUSTMENTS) | self.ids(ALERT_STATES)
        if topic == ALERT_STATES:
            return {state_id(m.json()) for m in self.msgs.get(topic, ())}
        key = "adjustment_id" if topic == ADJUSTMENTS else "alert_id"
        return {m.json()[key] for m in self.msgs.get(topic, ())}

    def count(self):
        return len(self.ids())

    def outputs(self):
        return Outputs(self.docs(ALERTS), self.docs(SHADOW), self.docs(ADJUSTMENTS),
                       alert_states=self.docs(ALERT_STATES) if ALERT_STATES in self.msgs else ())

    def summary(self):
        return ", ".join(f"{t}: {len(v)}" for t, v in self.msgs.items())

    def close(self):
        self.c.close()


def state_id(d):
    """An alert state's id: an alert escalates once and closes once."""
    return f"{d['alert_id']}/{d['to']}"


class Outputs:
    """Alerts, shadow alerts, adjustments and alert states, in the order read."""

    def __init__(self, alerts=(), shadow=(), adjustments=(), deadletters=(), alert_states=()):
        self.alerts, self.shadow, self.adjustments = list(alerts), list(shadow), list(adjustments)
        self.deadletters = list(deadletters)  # replay only: riskd.deadletter/1 documents
        self.alert_states = list(alert_states)  # riskd.alert_state/1

    def ids(self):
        return ({d["alert_id"] for d in self.alerts} | {d["alert_id"] for d in self.shadow}
                | {d["adjustment_id"] for d in self.adjustments} | {state_id(d) for d in self.alert_states})

    def count_ids(self):
        return len(self.ids())

    def final_grades(self):
        return final_grades(self.adjustments)


def index(docs, key, what):
    """{id: doc}; every repeat of an id must be identical.  key: the id's
    property, or a function of the document."""
    out = {}
    for d in docs:
        i = key(d) if callable(key) else d[key]
        if i in out and out[i] != d:
            raise AssertionError(f"{what}: two different documents with {key} {i}:\n  {out[i]}\n  {d}")
        out.setdefault(i, d)
    return out


def final_grades(adjustments):
    """Per enterprise, the `current` of its last adjustment after
    de-duplication by id (docs/outputs.md §2, §6)."""
    seen, last = set(), {}
    for d in adjustments:
        if d["adjustment_id"] in seen:
            continue
        seen.add(d["adjustment_id"])
        last[d["enterprise_id"]] = d["current"]
    return last


def compare(got, exp, what="riskd"):
    """The sets of ids and their documents, and the final grades."""
    problems = []
    for name, key in (("alerts", "alert_id"), ("shadow", "alert_id"), ("adjustments", "adjustment_id"),
                      ("alert_states", state_id)):
        g = index(getattr(got, name), key, f"{what} {name}")
        e = index(getattr(exp, name), key, f"expected {name}")
        missing = sorted(e.keys() - g.keys())
        extra = sorted(g.keys() - e.keys())
        differ = sorted(i for i in e.keys() & g.keys() if e[i] != g[i])
        repeats = len(getattr(got, name)) - len(g)
        log(f"{what} {name}: {len(g)} ids ({repeats} repeats), expected {len(e)}")
        for label, ids in (("missing", missing), ("unexpected", extra), ("different", differ)):
            if ids:
                problems.append(f"{name}: {len(ids)} {label}, e.g. " +
                                "; ".join(json.dumps(e.get(i) or g.get(i), ensure_ascii=False)[:300]
                                          for i in ids[:3]))
    fg, fe = got.final_grades(), exp.final_grades()
    bad = sorted(k for k in fe.keys() | fg.keys() if fe.get(k) != fg.get(k))
    if bad:
        problems.append(f"final grades differ for {len(bad)} enterprises, e.g. " +
                        "; ".join(f"{k}: got {fg.get(k)} expected {fe.get(k)}" for k in bad[:3]))
    log(f"{what}: final grades of {len(fg)} enterprises, expected {len(fe)}")
    assert not problems, f"{what} differs from the reference:\n  " + "\n  ".join(problems)


# ---- the reference: riskctl replay, per input partition ----

def replay(wd, by_partition, grace="0", rules=RULES, extra=()):
    """riskctl replay over each partition's events; the union of outputs.
    extra: more arguments, or a function of the partition giving them."""
    out = Outputs()
    for p in sorted(by_partition):
        ev = wd.write(f"replay-p{p}.jsonl", b"".join(v + b"\n" for v in by_partition[p]))
        dl = wd.file(f"replay-p{p}.dlq.jsonl")
        r = subprocess.run([RISKCTL, "replay", rules, ev, "--grace", grace, "--quiet",
                            "--dead-letters", dl, *(extra(p) if callable(extra) else extra)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert r.returncode == 0, f"riskctl replay failed: {r.stderr.decode()}"
        for line in r.stdout.splitlines():
            d = json.loads(line)
            if d["schema"].startswith("riskd.adjustment/"):
                out.adjustments.append(d)
            elif d["schema"] == "riskd.alert_state/1":
                out.alert_states.append(d)
            elif d.get("status") == "shadow":
                out.shadow.append(d)
            else:
                out.alerts.append(d)
        with open(dl) as f:
            out.deadletters += [json.loads(ln) for ln in f if ln.strip()]
    return out


def replay_lines(wd, lines, grace="0", name="all"):
    """riskctl replay over one file (no partitioning)."""
    ev = wd.write(f"{name}.jsonl", b"".join(v + b"\n" for v in lines))
    r = subprocess.run([RISKCTL, "replay", RULES, ev, "--grace", grace, "--quiet"],
                       stdout=subprocess.PIPE, check=True)
    return [json.loads(ln) for ln in r.stdout.splitlines()]


def chunks(lines, n):
    """lines cut into n consecutive parts."""
    k = (len(lines) + n - 1) // n
    return [lines[i:i + k] for i in range(0, len(lines), k)]


def wait_pending(broker, broker_id, api, procs=(), timeout=60, left=0):
    """Wait until at most `left` of a broker's injected errors for an API are
    still queued, i.e. requests consumed them (`pending`, broker.h); the
    processes in procs must stay alive meanwhile."""
    end = deadline(timeout)
    while True:
        r = broker.cmd(f"pending {broker_id} {api}")
        assert r.startswith("ok "), f"pending: {r}"
        n = int(r.split()[1])
        if n <= left:
            return
        for p in procs:
            assert p.alive(), f"{p.name} died while {n} {api} errors were pending:\n{p.log_tail()}"
        if time.monotonic() > end:
            raise AssertionError(f"{n} injected {api} errors on broker {broker_id} not consumed "
                                 f"within {timeout}s")
        time.sleep(0.05)


def dead_letter_reasons(reader):
    out = {}
    for m in reader.msgs[DLQ]:
        r = m.headers.get("riskd.reason")
        out[r] = out.get(r, 0) + 1
    return out


# ---- running a test ----

def main(fn, name):
    """Run fn(wd); exit 0 on success, 1 on failure (logs kept), 77 to skip."""
    wd = Workdir(name)
    status = 1
    try:
        fn(wd)
        status = 0
        log("PASS", name)
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
        wd.keep = True
        for f in sorted(os.listdir(wd.path)):
            if f.endswith(".log"):
                with open(wd.file(f), errors="replace") as fh:
                    tail = fh.read().splitlines()[-25:]
                print(f"---- {f} (last lines) ----")
                print("\n".join(tail))
        log("FAIL", name)
    finally:
        _cleanup()
        wd.close()
    sys.exit(status)
