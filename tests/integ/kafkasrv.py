"""Starts and stops the real sluice-collector for the integration tests (imported, not a test).

It runs $SL_BUILD_DIR/collector/sluice-collector on the embedded configuration with --set
overrides: the Kafka listener and the metrics endpoint on 127.0.0.1 ephemeral ports, which it
learns from the collector's log lines. Test options: "--fsync X", "--segment-bytes N" and
"--validate-records B" set topic_defaults; "--set k=v" sets server.k; "--conf k=v" sets any
key k of collector.yaml (groups.initial_rebalance_delay=1s)."""
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

BUILD = os.environ.get("SL_BUILD_DIR", "build")
TOOL = os.path.join(BUILD, "collector", "sluice-collector")
TOPIC_FLAGS = {"--fsync": "fsync", "--segment-bytes": "segment_bytes",
               "--validate-records": "validate_records"}


def collector_args(args):
    """Turns the tests' short options into the collector's --set overrides."""
    out = []
    it = iter(args)
    for a in it:
        v = next(it)
        if a in TOPIC_FLAGS:
            out += ["--set", f"topic_defaults.{TOPIC_FLAGS[a]}={v}"]
        elif a == "--set":
            out += ["--set", "server." + v]
        elif a == "--conf":
            out += ["--set", v]
        else:
            raise ValueError(f"kafkasrv: unknown option {a}")
    return out


class Server:
    def __init__(self, data_dir, *args, port=0):
        if not os.access(TOOL, os.X_OK):
            sys.exit(f"{TOOL} is missing: build the sl-test-kafka_server target")
        self.data_dir = data_dir
        self.args = list(args)
        self.want_port = port
        self.proc = None
        self.port = None
        self.errlog = os.path.join(os.path.dirname(data_dir.rstrip("/")) or ".",
                                   "server.stderr")

    def start(self, timeout=20):
        cmd = [TOOL, "--set", f"data_dir={self.data_dir}",
               "--set", f'server.listeners=["127.0.0.1:{self.want_port}"]',
               "--set", "metrics.listen=127.0.0.1:0"] + collector_args(self.args)
        self.err = open(self.errlog, "ab")
        log_from = self.err.tell()
        # Under ASan, freed memory waits in a quarantine (256 MiB by default) and counts in RSS;
        # a small one keeps the hostile-input memory checks meaningful in that build too.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"),
                                                     "quarantine_size_mb=4"]))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.err, text=True,
                                     env=env)
        deadline = time.monotonic() + timeout
        self.port = self.metrics_port = None
        while time.monotonic() < deadline and self.proc.poll() is None:
            with open(self.errlog, errors="replace") as f:
                f.seek(log_from)
                text = f.read()
            m = re.search(r"\[kafka\] listening on port (\d+)", text)
            h = re.search(r"metrics and health on port (\d+)", text)
            if m and h and "started; data in" in text:
                self.port, self.metrics_port = int(m.group(1)), int(h.group(1))
                break
            time.sleep(0.05)
        if self.port is None:
            self.kill()
            sys.exit(f"collector did not start; see {self.errlog}:\n{self.log()[-3000:]}")
        self.want_port = self.port  # a restart keeps the address clients know
        return self

    def scrape(self):
        """The collector's /metrics page."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=30):
        """SIGTERM (graceful) and wait; returns the exit code."""
        if not self.proc:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "timeout"
        self.proc = None
        self.err.close()
        return rc

    def kill(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self.err.close()

    def log(self):
        try:
            with open(self.errlog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""
