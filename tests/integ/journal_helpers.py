"""Helpers for the journald tests and benchmark (imported, not a test): journal files written by
systemd-journal-remote from Journal Export Format, and the real sluice-agent run from a YAML file
with its acknowledged count read from /metrics."""
import os
import re
import resource
import signal
import struct
import subprocess
import sys
import time
import urllib.request

BUILD = os.environ.get("SL_BUILD_DIR", "build")
AGENT = os.path.join(BUILD, "agent", "sluice-agent")
JREMOTE = "/lib/systemd/systemd-journal-remote"
BOOT = "6f1bd8e4c1a34a0c9a7e5cf3d2b10a77"
UNITS = ["nginx.service", "sshd.service", "cron.service", "app-worker.service"]


def die(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def need_jremote():
    if not os.access(JREMOTE, os.X_OK):
        die(f"{JREMOTE} is required (packaging/deps.sh --test installs systemd-journal-remote)")


def export_entry(fields, realtime_us, monotonic_us, boot=BOOT):
    """One entry in Journal Export Format: text fields as NAME=value lines; a value with a
    newline or bytes that are not UTF-8 in the binary form (NAME, newline, little-endian u64
    length, the bytes, newline)."""
    out = [b"__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=%s\n"
           % (realtime_us, monotonic_us, boot.encode())]
    for name, value in fields:
        v = value.encode() if isinstance(value, str) else value
        if b"\n" in v or not _is_utf8(v):
            out.append(name.encode() + b"\n" + struct.pack("<Q", len(v)) + v + b"\n")
        else:
            out.append(name.encode() + b"=" + v + b"\n")
    out.append(b"\n")
    return b"".join(out)


def _is_utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def std_fields(i, units=UNITS):
    """The fields of test entry number i: its unit, priority, pid and identifier follow from i,
    and SEQ_NO and the message carry i so every entry can be told apart."""
    unit = units[i % len(units)]
    ident = unit.split(".")[0]
    return [("_TRANSPORT", "journal"), ("_UID", "0"), ("_GID", "0"),
            ("_COMM", ident), ("_EXE", "/usr/sbin/" + ident),
            ("_CMDLINE", f"/usr/sbin/{ident} --config /etc/{ident}.conf"),
            ("_SYSTEMD_CGROUP", f"/system.slice/{unit}"), ("_SYSTEMD_UNIT", unit),
            ("_SYSTEMD_SLICE", "system.slice"), ("_HOSTNAME", "web-1"),
            ("PRIORITY", str(i % 8)), ("SYSLOG_FACILITY", "3"), ("SYSLOG_IDENTIFIER", ident),
            ("_PID", str(1000 + i % 50)), ("SEQ_NO", str(i)),
            ("MESSAGE", f"entry {i:09d} GET /api/v1/items/{i * 7919 % 100003} 200 "
                        "lorem ipsum dolor sit amet consectetur")]


def std_export(start, n, t0=1700000000000000, units=UNITS):
    """Export Format for entries start..start+n-1, one millisecond apart."""
    return b"".join(export_entry(std_fields(i, units), t0 + i * 1000, 5000000 + i * 1000)
                    for i in range(start, start + n))


def write_journal(path, data, file_limit=None):
    """Appends the Export Format bytes `data` to the journal file `path` (name ending in
    .journal) with systemd-journal-remote. With file_limit (bytes), RLIMIT_FSIZE makes it
    rotate: each time a file cannot grow it is archived as path-stem@...journal and a new one
    continues the same sequence numbers, as journald's rotation does."""
    def limit():
        if file_limit:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))
    p = subprocess.run([JREMOTE, "-o", path, "-"], input=data, capture_output=True,
                       preexec_fn=limit, timeout=600)
    if p.returncode != 0:
        die(f"systemd-journal-remote failed ({p.returncode}): {p.stderr.decode()[-2000:]}")


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
        self.logpath = os.path.join(workdir, "agent.log")
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


def consume_ts(bootstrap, topic, expect, timeout=120):
    """Every record of topic as (timestamp ms, value str), via kcat; waits (bounded) until at
    least `expect` are there."""
    end = time.time() + timeout
    while True:
        out = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning",
                              "-e", "-q", "-f", "%T %s\\n", "-X", "api.version.request=true"],
                             capture_output=True, timeout=300)
        lines = out.stdout.decode("utf-8", "strict").split("\n")[:-1]
        if len(lines) >= expect or time.time() > end:
            return [(int(l.split(" ", 1)[0]), l.split(" ", 1)[1]) for l in lines]
        time.sleep(0.5)


def wait_log(agent, text, timeout=30):
    """Waits (bounded) for a line containing text in the agent's log."""
    end = time.time() + timeout
    while time.time() < end:
        if text in agent.log():
            return
        time.sleep(0.05)
    die(f"no log line with {text!r} after {timeout}s; log:\n{agent.log()[-3000:]}")


def journal_entries(path):
    """(__CURSOR, SEQ_NO or None) of every entry of the journal files matched by path (a glob),
    in the order sd-journal reads them. A rotation forced by RLIMIT_FSIZE can leave the entry
    being written in both files (journal-remote writes it again after rotating): such an
    entry is in the journal twice, and shipped twice."""
    out = subprocess.run(["journalctl", f"--file={path}", "-o", "export"], capture_output=True,
                         timeout=300, check=True).stdout
    entries = []
    for line in out.split(b"\n"):
        if line.startswith(b"__CURSOR="):
            entries.append([line[len(b"__CURSOR="):].decode(), None])
        elif line.startswith(b"SEQ_NO=") and entries:
            entries[-1][1] = int(line[len(b"SEQ_NO="):])
    return [tuple(e) for e in entries]


def journal_cursors(path):
    """The __CURSOR of every entry of the journal files matched by path, in order."""
    return [c for c, _ in journal_entries(path)]


def wait_idle(agent, timeout=120):
    """Waits (bounded) until the agent has read the whole journal and every record it read is
    acknowledged: nothing new for half a second."""
    end = time.time() + timeout
    last = None
    since = time.time()
    while time.time() < end:
        now = (int(agent.metric("sluice_agent_journal_entries_read_total")), agent.acked())
        if now != last:
            last, since = now, time.time()
        elif now[0] == now[1] and time.time() - since >= 0.5:
            return now[0]
        time.sleep(0.05)
    die(f"the agent did not settle in {timeout}s (read, acked: {last})")
