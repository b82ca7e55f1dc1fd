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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agent_helpers import AGENT, RealAgent  # noqa: E402,F401  (the tests use jh.RealAgent)

BUILD = os.environ.get("SL_BUILD_DIR", "build")
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
