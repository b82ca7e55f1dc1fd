"""Helpers for the agent's integration tests: a librdkafka mock cluster (sl-test-kafka_mock),
the shipping core (sl-test-agent_ship), log writers and a kcat reader."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("SL_BUILD_DIR", "build")
TOOLS = os.path.join(BUILD, "tests")


def die(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def need(tool):
    if not shutil.which(tool):
        die(f"{tool} is required (packaging/deps.sh --test installs it)")


class Mock:
    """librdkafka's mock cluster on loopback, driven through the helper's stdin."""

    def __init__(self, brokers=1):
        # librdkafka's own allocations at exit are not ours to police in sanitizer builds.
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
        self.p = subprocess.Popen([os.path.join(TOOLS, "sl-test-kafka_mock"), str(brokers)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=env)
        line = self.p.stdout.readline().split()
        if len(line) != 2 or line[0] != "bootstrap":
            die(f"kafka_mock did not start: {line}")
        self.bootstrap = line[1]

    def cmd(self, text):
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()
        answer = self.p.stdout.readline().strip()
        if answer != "ok":
            die(f"kafka_mock: {text}: {answer}")

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write("quit\n")
                self.p.stdin.flush()
                self.p.wait(10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.p.kill()


class Agent:
    """The shipping core with a generated configuration; stdout says 'ready'."""

    def __init__(self, workdir, bootstrap, paths, topic="logs", extra_source="",
                 extra_output="", extra="", fmt="json", log_level="notice"):
        self.workdir = workdir
        self.state = os.path.join(workdir, "state")
        os.makedirs(self.state, exist_ok=True)
        self.conf = os.path.join(workdir, "agent.yaml")
        plist = ", ".join(json.dumps(p) for p in paths)
        with open(self.conf, "w") as f:
            f.write(f"hostname: test-host\nstate_dir: {self.state}\nlog_level: {log_level}\n"
                    f"sources:\n  app:\n    type: tail\n    paths: [{plist}]\n"
                    f"    topic: {topic}\n    format: {fmt}\n    rescan: 200ms\n{extra_source}"
                    f"output:\n  collectors: [{bootstrap}]\n  linger: 20ms\n"
                    f"  retry_backoff: 50ms\n  retry_backoff_max: 1s\n{extra_output}{extra}")
        self.p = None
        self.log = open(os.path.join(workdir, "agent.log"), "a")

    def start(self):
        self.p = subprocess.Popen([os.path.join(TOOLS, "sl-test-agent_ship"), self.conf],
                                  stdout=subprocess.PIPE, stderr=self.log, text=True)
        if self.p.stdout.readline().strip() != "ready":
            die("agent did not start; see " + self.log.name)

    def stats(self):
        self.p.send_signal(signal.SIGUSR1)
        line = self.p.stdout.readline().split()
        return dict(kv.split("=") for kv in line[1:])

    def wait_acked(self, n, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            s = self.stats()
            if int(s["acked"]) >= n:
                return s
            time.sleep(0.2)
        die(f"only {self.stats()} after {timeout}s, wanted {n} acked")

    def stop(self, timeout=30):
        self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(timeout)
        if rc != 0:
            die(f"agent exited {rc}")

    def kill(self):
        self.p.kill()
        self.p.wait()


def consume(bootstrap, topic, expect=None, timeout=60, partitions=False):
    """Every record value of topic (all partitions) as a list of str, via kcat; with
    partitions, a list of (partition, value)."""
    end = time.time() + timeout
    while True:
        out = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning",
                              "-e", "-q", "-f", "%p %o %s\\n", "-X", "api.version.request=true"],
                             capture_output=True, timeout=120)
        lines = out.stdout.decode("utf-8", "strict").split("\n")[:-1]
        values = [ln.split(" ", 2) for ln in lines]
        if expect is None or len(values) >= expect or time.time() > end:
            if partitions:
                return [(int(v[0]), v[2]) for v in values]
            return [v[2] for v in values]
        time.sleep(0.5)


def messages(values):
    """The parsed JSON records; fails the test on one that is not valid JSON or lacks a field."""
    out = []
    for v in values:
        rec = json.loads(v)
        for k in ("time", "host", "source", "message"):
            if k not in rec:
                die(f"record without {k}: {v[:200]}")
        out.append(rec)
    return out


class Writer:
    """Appends numbered lines to a file at a given rate."""

    def __init__(self, path):
        self.path = path
        self.n = 0
        self.f = open(path, "a", buffering=1 << 16)

    def write(self, count, pad=150):
        body = "x" * pad
        for _ in range(count):
            self.f.write(f"{self.n:09d} {body}\n")
            self.n += 1
        self.f.flush()

    def reopen(self):
        self.f.close()
        self.f = open(self.path, "a", buffering=1 << 16)

    def close(self):
        self.f.close()


def check_numbers(msgs, n, exactly_once=True):
    seen = {}
    for m in msgs:
        k = int(m["message"].split(" ", 1)[0])
        seen[k] = seen.get(k, 0) + 1
    missing = [i for i in range(n) if i not in seen]
    if missing:
        die(f"{len(missing)} of {n} lines lost, first {missing[:5]}")
    if exactly_once:
        dups = [k for k, c in seen.items() if c > 1]
        if dups:
            die(f"{len(dups)} lines duplicated, first {dups[:5]}")
    return seen


def workdir(name):
    return tempfile.mkdtemp(prefix=f"sl-{name}-")
