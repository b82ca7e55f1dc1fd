"""Helpers for the agent's integration tests: a librdkafka mock cluster (sl-test-kafka_mock),
the real sluice-agent on a generated YAML file (its counters read from /metrics), log writers
and a kcat reader."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

BUILD = os.environ.get("SL_BUILD_DIR", "build")
TOOLS = os.path.join(BUILD, "tests")
AGENT = os.path.join(BUILD, "agent", "sluice-agent")


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


class RealAgent:
    """sluice-agent (the real program) on a generated YAML file; /metrics on an ephemeral port
    learned from its log."""

    def __init__(self, workdir, bootstrap, sources, extra="", log_level="info", prefix=()):
        """prefix: a command the agent's command line is appended to (unshare, a wrapper)."""
        self.workdir = workdir
        self.prefix = list(prefix)
        self.state = os.path.join(workdir, "state")
        os.makedirs(self.state, exist_ok=True)
        self.conf = os.path.join(workdir, "agent.yaml")
        # Not *.log: tests tail globs like <workdir>/*.log, and the agent must not read itself.
        self.logpath = os.path.join(workdir, "agent.stderr")
        with open(self.conf, "w") as f:
            f.write(f"hostname: test-host\nstate_dir: {self.state}\nlog_level: {log_level}\n"
                    f"metrics:\n  listen: 127.0.0.1:0\nsources:\n  system: ~\n{sources}"
                    f"output:\n  collectors: [{bootstrap}]\n  linger: 20ms\n"
                    f"  retry_backoff: 50ms\n  retry_backoff_max: 1s\n{extra}")
        self.p = None
        self.port = None

    def start(self, timeout=30):
        log = open(self.logpath, "ab")
        start_at = log.tell()
        self.p = subprocess.Popen(self.prefix + [AGENT, "-c", self.conf], stdout=subprocess.DEVNULL,
                                  stderr=log)
        log.close()
        end = time.time() + timeout
        while time.time() < end and self.p.poll() is None:
            m = re.search(r"metrics and health on port (\d+)", self.log(start_at))
            if m:
                self.port = int(m.group(1))
                return self
            time.sleep(0.02)
        die(f"sluice-agent did not start; see {self.logpath}:\n{self.log()[-3000:]}")

    def log(self, start_at=0):
        with open(self.logpath, "rb") as f:
            f.seek(start_at)
            return f.read().decode(errors="replace")

    def metric(self, name):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            page = r.read().decode()
        return sum(float(l.split()[-1]) for l in page.splitlines()
                   if l.startswith(name + "{") or l.startswith(name + " "))

    def acked(self):
        return int(self.metric("sluice_agent_records_acked_total"))

    def wait_acked(self, n, timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            if self.acked() >= n:
                return
            time.sleep(0.05)
        die(f"only {self.acked()} records acked after {timeout}s, wanted {n}; log:\n"
            + self.log()[-3000:])

    def cpu_seconds(self):
        with open(f"/proc/{self.p.pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout=30):
        self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(timeout)
        if rc != 0:
            die(f"sluice-agent exited {rc}; log:\n{self.log()[-3000:]}")

    def kill(self):
        self.p.kill()
        self.p.wait()



class Agent(RealAgent):
    """sluice-agent following `paths` with one tail source "app" (rescan 200 ms) and the test
    output settings; stats() reads its /metrics."""

    def __init__(self, workdir, bootstrap, paths, topic="logs", extra_source="",
                 extra_output="", extra="", fmt="json", log_level="info"):
        plist = ", ".join(json.dumps(p) for p in paths)
        super().__init__(workdir, bootstrap,
                         f"  app:\n    type: tail\n    paths: [{plist}]\n"
                         f"    topic: {topic}\n    format: {fmt}\n    rescan: 200ms\n"
                         f"{extra_source}", extra=extra_output + extra, log_level=log_level)

    def stats(self):
        return {"in": int(self.metric("sluice_agent_records_read_total")),
                "acked": self.acked(),
                "memory": int(self.metric("sluice_agent_queue_bytes"))}

    def reload(self, timeout=30):
        """SIGHUP, then waits for the agent to log that the new configuration runs."""
        start_at = os.path.getsize(self.logpath)
        self.p.send_signal(signal.SIGHUP)
        end = time.time() + timeout
        while time.time() < end:
            text = self.log(start_at)
            if "configuration reloaded" in text:
                return
            if "reload:" in text:
                die("reload refused: " + text[-2000:])
            time.sleep(0.05)
        die(f"no reload within {timeout}s; log:\n{self.log(start_at)[-2000:]}")


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
