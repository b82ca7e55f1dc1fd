"""Starts and stops a Kafka-protocol collector for the integration tests (imported, not a test).

Until main.c wires the server in, this runs $SL_BUILD_DIR/tests/sl-test-kafka_server (storage and
server on one loop); it prints "PORT <n>" once listening on 127.0.0.1 (ephemeral port)."""
import os
import signal
import subprocess
import sys
import time

BUILD = os.environ.get("SL_BUILD_DIR", "build")
TOOL = os.path.join(BUILD, "tests", "sl-test-kafka_server")


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
        cmd = [TOOL, "--data-dir", self.data_dir,
               "--set", f'listeners=["127.0.0.1:{self.want_port}"]'] + self.args
        self.err = open(self.errlog, "ab")
        # Under ASan, freed memory waits in a quarantine (256 MiB by default) and counts in RSS;
        # a small one keeps the hostile-input memory checks meaningful in that build too.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"),
                                                     "quarantine_size_mb=4"]))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.err, text=True,
                                     env=env)
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline()
        if not line.startswith("PORT ") or time.monotonic() > deadline:
            self.kill()
            sys.exit(f"server did not start: {line!r}; see {self.errlog}")
        self.port = int(line.split()[1])
        self.want_port = self.port  # a restart keeps the address clients know
        return self

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
