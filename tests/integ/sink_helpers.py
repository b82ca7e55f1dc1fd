"""What the sink tests share (imported, not a test): a sink process of the real `sluice` binary,
a producer of numbered JSON records, and waiting for a group to catch up."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

BUILD = os.environ.get("SL_BUILD_DIR", "build")
SLUICE = os.path.join(BUILD, "collector", "cli", "sluice")

FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)
    return cond


def finish():
    if FAILS:
        print(f"{len(FAILS)} check(s) failed:", *FAILS, sep="\n  ")
        sys.exit(1)
    print("all checks passed")


class Sink:
    """One `sluice sink CONFIG` process; its log goes to a file next to the config."""

    def __init__(self, conf_path, name):
        if not os.access(SLUICE, os.X_OK):
            sys.exit(f"{SLUICE} is missing: build the sluice target")
        self.conf = conf_path
        self.name = name
        self.logpath = os.path.join(os.path.dirname(conf_path), f"{name}.log")
        self.proc = None
        self.log_from = 0
        self.starts = 0

    def start(self, **extra_env):
        self.err = open(self.logpath, "ab")
        self.log_from = self.err.tell()
        env = dict(os.environ, **extra_env)
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"),
                                                     "quarantine_size_mb=16"]))
        self.proc = subprocess.Popen([SLUICE, "sink", "--log-level", "info", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=self.err, env=env)
        self.starts += 1
        return self

    def text(self, since_start=True):
        with open(self.logpath, errors="replace") as f:
            if since_start:
                f.seek(self.log_from)
            return f.read()

    def wait_log(self, pattern, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        return None

    def metrics_port(self):
        m = self.wait_log(r"metrics and health on port (\d+)", 20)
        return int(m.group(1)) if m else None

    def scrape(self):
        port = self.metrics_port()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return r.read().decode()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.err.close()

    def stop(self, timeout=60):
        """SIGTERM: drain and commit. Returns the exit code (or 'timeout')."""
        if not self.proc:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "timeout"
        self.err.close()
        return rc


def create_topic(bootstrap, topic, partitions):
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="setup")
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def record_value(i, ts_ms):
    t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ms / 1000))
    return json.dumps({"id": i, "time": f"{t}.{ts_ms % 1000:03d}Z", "host": f"web-{i % 7}",
                       "source": "file:/var/log/app.log",
                       "message": f"GET /item/{i} 200 {i * 7 % 1000}"}).encode()


class Producer:
    """Produces records id 0..n-1 (JSON values) to partitions id % parts, timestamps spread over
    `hours` hours; in a thread at about `rate` records/s (0: as fast as possible)."""

    def __init__(self, bootstrap, topic, n, parts, base_ms, hours=3, rate=0, value=record_value):
        from confluent_kafka import Producer as CP
        self.p = CP({"bootstrap.servers": bootstrap, "acks": "all", "compression.type": "gzip",
                     "linger.ms": 20, "batch.num.messages": 5000,
                     "queue.buffering.max.messages": 1000000})
        self.topic, self.n, self.parts = topic, n, parts
        self.base_ms, self.span = base_ms, hours * 3600 * 1000
        self.rate = rate
        self.value = value
        self.errors = []
        self.thread = None

    def ts(self, i):
        return self.base_ms + (i * self.span) // self.n

    def _cb(self, err, msg):
        if err is not None:
            self.errors.append(str(err))

    def run(self):
        t0 = time.monotonic()
        for i in range(self.n):
            while True:
                try:
                    self.p.produce(self.topic, value=self.value(i, self.ts(i)),
                                   partition=i % self.parts, timestamp=self.ts(i),
                                   on_delivery=self._cb)
                    break
                except BufferError:
                    self.p.poll(0.05)
            if i % 5000 == 0:
                self.p.poll(0)
                if self.rate:
                    ahead = i / self.rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
        left = self.p.flush(60)
        if left:
            self.errors.append(f"{left} records not delivered")

    def start(self):
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def join(self, timeout=120):
        self.thread.join(timeout)
        return not self.thread.is_alive()


def end_offsets(bootstrap, topic, parts):
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, api_version=(2, 0, 0))
    try:
        tps = [TopicPartition(topic, p) for p in range(parts)]
        return {tp.partition: o for tp, o in c.end_offsets(tps).items()}
    finally:
        c.close()


def committed(bootstrap, group, topic):
    from kafka import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="check")
    try:
        offs = admin.list_consumer_group_offsets(group)
        return {tp.partition: om.offset for tp, om in offs.items() if tp.topic == topic}
    finally:
        admin.close()


def wait_caught_up(get_positions, ends, timeout):
    """Polls get_positions() until it equals ends; returns the last positions seen."""
    deadline = time.monotonic() + timeout
    pos = {}
    while time.monotonic() < deadline:
        try:
            pos = get_positions()
        except Exception as e:  # the coordinator may be busy rebalancing
            print(f"     (positions not read: {e})", flush=True)
        if pos == ends:
            break
        time.sleep(0.5)
    return pos
