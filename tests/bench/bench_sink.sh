#!/bin/bash
# Sink benchmark (issue 8): records/s of the files sink and the postgres sink, each one process,
# loading a topic of N JSON records (6 partitions, ~200 B values) from a local collector, beside
# a same-run baseline: `sluice consume -t TOPIC > /dev/null` of the same topic. Each figure is
# the median of 3 runs; a sink run ends when its durable positions (group commits for files,
# the offsets table for postgres) reach every partition's end, polled every 10 ms (files) or
# 50 ms (postgres: a psql process each time). The files sink runs with roll_age 100ms: its last
# files close that long after their first record, so the run is not padded by a wait for the
# age (every 100 ms epoch still pays its fsyncs, renames and commit). Targets: files >= 70% of
# the raw consume rate; postgres >= 100,000 rows/s. PostgreSQL runs in a temporary folder as
# `nobody`. Beside the rates it prints the CPU seconds each run took per million records, in the
# measured process (from its start until its positions reached the end, for a sink) and in the
# collector, and how busy the machine's cores were: a run near 100% busy is bound by cores, not
# by waiting.
#
#   tests/bench/bench_sink.sh [BUILD_DIR] [RECORDS]   (default 2,000,000)
set -euo pipefail
B=$(realpath "${1:-${SL_BUILD_DIR:-build}}")
N=${2:-2000000}
HERE=$(cd "$(dirname "$0")" && pwd)
SL_BUILD_DIR=$B PYTHONPATH=$HERE/../integ exec /usr/bin/python3 - "$N" <<'PY'
import os, resource, shutil, statistics, subprocess, sys, tempfile, time
from kafkasrv import Server
from kafka import KafkaAdminClient
from sink_helpers import SLUICE, Producer, Sink, create_topic, end_offsets
from test_sink_postgres import Postgres

N, PARTS, TOPIC = int(sys.argv[1]), 6, "bench"
tmp = tempfile.mkdtemp(prefix="sl-bench-sink-")
pg = Postgres(tmp).start()
srv = Server(os.path.join(tmp, "data"), "--fsync", "never",
             "--conf", "groups.initial_rebalance_delay=0s").start()
try:
    create_topic(srv.bootstrap, TOPIC, PARTS)
    admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap, client_id="bench")

    def committed(group):
        offs = admin.list_consumer_group_offsets(group)
        return {tp.partition: om.offset for tp, om in offs.items() if tp.topic == TOPIC}

    Producer(srv.bootstrap, TOPIC, N, PARTS, 1795860000000, hours=2).run()
    ends = end_offsets(srv.bootstrap, TOPIC, PARTS)
    assert sum(ends.values()) == N, ends

    TICK = os.sysconf("SC_CLK_TCK")

    def proc_cpu(pid):
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / TICK  # utime + stime

    def children_cpu():  # of the children waited for so far
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    def machine():
        v = [int(x) for x in open("/proc/stat").readline().split()[1:8]]
        return sum(v), v[3] + v[4]  # all ticks, idle + iowait

    class Usage:
        """One run: its rate, the CPU seconds of the measured process and of the collector, and
        how busy the whole machine was."""

        def __init__(self):
            self.s0, self.m0 = proc_cpu(srv.proc.pid), machine()

        def end(self, rate, own):
            m1 = machine()
            self.busy = 1 - (m1[1] - self.m0[1]) / max(1, m1[0] - self.m0[0])
            self.coll = proc_cpu(srv.proc.pid) - self.s0
            self.rate, self.own = rate, own
            return self

    def raw():
        u, c0 = Usage(), children_cpu()
        t = time.monotonic()
        subprocess.run([SLUICE, "-b", srv.bootstrap, "consume", "-t", TOPIC, "-q"],
                       stdout=subprocess.DEVNULL, check=True)
        return u.end(N / (time.monotonic() - t), children_cpu() - c0)

    def sink(kind, run):
        conf = os.path.join(tmp, f"{kind}{run}.yaml")
        common = (f"group: {kind}{run}\ntopics: [{TOPIC}]\nbootstrap: [{srv.bootstrap}]\n"
                  "fetch_max_wait: 100ms\nlog_level: warning\n")
        with open(conf, "w") as f:
            if kind == "files":
                f.write(f"type: files\n{common}root: {tmp}/lake{run}\nroll_size: 32MiB\n"
                        "roll_age: 100ms\n")
                done = lambda: committed(f"files{run}") == ends
            else:
                f.write(f"type: postgres\n{common}conninfo: \"{pg.conninfo}\"\n"
                        f"table: logs{run}\nbatch_rows: 50000\n")

                def done():
                    try:
                        rows = pg.query(f"SELECT part, next_offset FROM sluice_offsets WHERE "
                                        f"grp = 'postgres{run}'")
                    except RuntimeError:
                        return False
                    return {int(p): int(o) for p, o in rows} == ends
        s = Sink(conf, f"{kind}{run}")
        u = Usage()
        t = time.monotonic()
        s.start()
        while not done():
            if not s.alive():
                sys.exit(f"{kind} sink died:\n{s.text()[-2000:]}")
            time.sleep(0.01 if kind == "files" else 0.05)  # postgres: a psql each time
        u.end(N / (time.monotonic() - t), proc_cpu(s.proc.pid))  # from its start to now
        s.stop()
        return u

    res = {"raw consume": [], "files": [], "postgres": []}
    for run in range(3):
        res["raw consume"].append(raw())
        res["files"].append(sink("files", run))
        res["postgres"].append(sink("postgres", run))
    med = {k: statistics.median(u.rate for u in v) for k, v in res.items()}
    print(f"{N} records, 6 partitions, one sink process; medians of 3 runs (records/s):")
    for k, v in res.items():
        print(f"  {k:12s} {med[k]:>10,.0f}   runs: " + ", ".join(f"{u.rate:,.0f}" for u in v))
    print(f"CPU seconds per million records, own + collector's, and the machine's busy share "
          f"({os.cpu_count()} cores), medians:")
    for k, v in res.items():
        own = statistics.median(u.own for u in v) * 1e6 / N
        coll = statistics.median(u.coll for u in v) * 1e6 / N
        busy = statistics.median(u.busy for u in v)
        print(f"  {k:12s} {own:.3f} + {coll:.3f} s, busy {busy:.0%}")
    print(f"  files / raw consume = {med['files'] / med['raw consume']:.0%} (target >= 70%)")
    print(f"  postgres = {med['postgres']:,.0f} rows/s (target >= 100,000)")
finally:
    srv.stop()
    pg.stop()
    shutil.rmtree(tmp, ignore_errors=True)
PY
