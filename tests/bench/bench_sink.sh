#!/bin/bash
# Sink benchmark (issue 8): records/s of the files sink and the postgres sink, each one process,
# loading a topic of N JSON records (6 partitions, ~200 B values) from a local collector, beside
# a same-run baseline: `sluice consume -t TOPIC > /dev/null` of the same topic. Each figure is
# the median of 3 runs; a sink run ends when its durable positions (group commits for files,
# the offsets table for postgres) reach every partition's end, polled every 10 ms (files) or
# 50 ms (postgres: a psql process each time). The files sink runs with roll_age 100ms: its last
# files close that long after their first record, so the run is not padded by a wait for the
# age (every 100 ms epoch still pays its fsyncs, renames and commit). Targets: files >= 70% of the raw consume rate; postgres >= 100,000
# rows/s. PostgreSQL runs in a temporary folder as `nobody`.
#
#   tests/bench/bench_sink.sh [BUILD_DIR] [RECORDS]   (default 2,000,000)
set -euo pipefail
B=$(realpath "${1:-${SL_BUILD_DIR:-build}}")
N=${2:-2000000}
HERE=$(cd "$(dirname "$0")" && pwd)
SL_BUILD_DIR=$B PYTHONPATH=$HERE/../integ exec /usr/bin/python3 - "$N" <<'PY'
import os, shutil, statistics, subprocess, sys, tempfile, time
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

    def raw():
        t = time.monotonic()
        subprocess.run([SLUICE, "-b", srv.bootstrap, "consume", "-t", TOPIC, "-q"],
                       stdout=subprocess.DEVNULL, check=True)
        return N / (time.monotonic() - t)

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
        t = time.monotonic()
        s.start()
        while not done():
            if not s.alive():
                sys.exit(f"{kind} sink died:\n{s.text()[-2000:]}")
            time.sleep(0.01 if kind == "files" else 0.05)  # postgres: a psql each time
        rate = N / (time.monotonic() - t)
        s.stop()
        return rate

    res = {"raw consume": [], "files": [], "postgres": []}
    for run in range(3):
        res["raw consume"].append(raw())
        res["files"].append(sink("files", run))
        res["postgres"].append(sink("postgres", run))
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"{N} records, 6 partitions, one sink process; medians of 3 runs (records/s):")
    for k, v in res.items():
        print(f"  {k:12s} {med[k]:>10,.0f}   runs: " + ", ".join(f"{x:,.0f}" for x in v))
    print(f"  files / raw consume = {med['files'] / med['raw consume']:.0%} (target >= 70%)")
    print(f"  postgres = {med['postgres']:,.0f} rows/s (target >= 100,000)")
finally:
    srv.stop()
    pg.stop()
    shutil.rmtree(tmp, ignore_errors=True)
PY
