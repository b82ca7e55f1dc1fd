#!/bin/bash
# journald input benchmark: a journal of 1,000,000 entries (about 19 fields each, as journald
# writes them; systemd-journal-remote rotates it into several files) read by the real
# sluice-agent -> JSON records -> gzip batches -> the real sluice-collector (fsync never), until
# every record is acknowledged. Prints entries/s and agent CPU seconds per million entries,
# beside a same-run baseline, `journalctl --file='<dir>/*.journal' -o export > /dev/null` on the
# same files, and the ratio to it; each the median of 3 runs, interleaved. Target (issue 7):
# >= 1.5x journalctl's export rate in entries/s.
#
#   tests/bench/bench_journald.sh [BUILD_DIR] [ENTRIES]
# Writing the journal takes a few minutes (journal-remote); the runs themselves under a minute.
# SL_BENCH_JOURNAL=<folder> reuses a journal written by an earlier run instead.
set -euo pipefail
SL_BENCH_JOURNAL=${SL_BENCH_JOURNAL:-}
B=$(realpath "${1:-${SL_BUILD_DIR:-build}}")
N=${2:-1000000}
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d /tmp/sl-bench-journald-XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/journal"

SL_BUILD_DIR=$B python3 - "$W" "$N" "$HERE/../integ" <<'PY'
import os, statistics, subprocess, sys, time
W, N = sys.argv[1], int(sys.argv[2])
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[3])
import journal_helpers as jh
from kafkasrv import Server

jh.need_jremote()
jdir = os.environ.get("SL_BENCH_JOURNAL") or os.path.join(W, "journal")
t = time.time()
how = "reused"
if not os.environ.get("SL_BENCH_JOURNAL"):
    how = "written"
    for s in range(0, N, 100000):
        jh.write_journal(os.path.join(jdir, "system.journal"),
                         jh.std_export(s, min(100000, N - s)))
how = f"{how} in {time.time() - t:.0f}s"
files = [f for f in os.listdir(jdir) if f.endswith(".journal")]
size = sum(os.path.getsize(os.path.join(jdir, f)) for f in files)
entries = len(jh.journal_cursors(os.path.join(jdir, "*.journal")))
print(f"journal: {entries} entries in {len(files)} files, {size / 2**20:.0f} MiB "
      f"({how})", flush=True)

srv = Server(os.path.join(W, "data"), "--fsync", "never").start()
base, rate, cpu, bcpu = [], [], [], []
try:
    for run in range(3):
        t = time.time()
        with open(os.devnull, "wb") as null:
            p = subprocess.Popen(["journalctl", f"--file={jdir}/*.journal", "-o", "export"],
                                 stdout=null)
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            if p.returncode != 0:
                sys.exit(f"journalctl exited {p.returncode}")
        base.append(entries / (time.time() - t))
        bcpu.append(ru.ru_utime + ru.ru_stime)
        wd = os.path.join(W, f"agent{run}")
        agent = jh.RealAgent(wd, srv.bootstrap,
                             f"  j:\n    type: journald\n    directory: {jdir}\n"
                             f"    topic: bench{run}\n")
        t = time.time()
        agent.start()
        agent.wait_acked(entries, timeout=900)
        took = time.time() - t
        cpu.append(agent.cpu_seconds())
        agent.stop()
        rate.append(entries / took)
        print(f"run {run + 1}: journalctl {base[-1] / 1000:.0f}k entries/s ({bcpu[-1]:.2f} CPU s), "
              f"agent {rate[-1] / 1000:.0f}k entries/s to acked ({cpu[-1]:.2f} CPU s)", flush=True)
finally:
    srv.stop()
b, r, c = statistics.median(base), statistics.median(rate), statistics.median(cpu)
bc = statistics.median(bcpu)
print(f"baseline (journalctl -o export > /dev/null): {b / 1000:.0f}k entries/s, "
      f"{bc / entries * 1e6:.2f} CPU s per million entries (medians of 3)")
print(f"agent: {r / 1000:.0f}k entries/s to acked, {c / entries * 1e6:.2f} CPU s per million "
      f"entries (medians of 3); {r / b:.2f}x journalctl's rate, {bc / c:.2f}x less CPU")
print("(wall-clock rates on a shared machine move with its load: the CPU ratio is steadier)")
print("target (>= 1.5x):", "met" if r >= 1.5 * b else "NOT met")
PY
