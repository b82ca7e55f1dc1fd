#!/usr/bin/python3
"""The postgres sink against the real collector and a real PostgreSQL (Debian's, started here
in a temporary folder as the unprivileged user `nobody`, on a loopback port): 500,000 records
across 6 partitions while the sink is SIGKILLed (and restarted) 5 times. Then count(*) and the
distinct (partition, offset) pairs prove every record is in the table exactly once, the offsets
table holds every partition's end, and typed columns hold the values. Records whose value does
not fit a typed column (not JSON, a bad timestamp) go to the dead-letter file (once each, even
across SIGKILLs), and so do rows PostgreSQL itself rejects (the table is made beforehand with
`id integer`, a CHECK on `message` and a deferred constraint trigger: an id over 2^31 is
SQLSTATE 22003, the CHECK 23514 naming the COPY line, the trigger 23514 naming none) while the
rest of their batch loads: every good row once, every bad one in the dead-letter file."""
import glob
import json
import os
import pwd
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafkasrv import Server  # noqa: E402
from sink_helpers import (Producer, Sink, check, create_topic, end_offsets, finish,  # noqa: E402
                          record_value, wait_caught_up)

ASAN = os.environ.get("SL_SANITIZE") == "1"
N = 500_000
PARTS = 6
TOPIC = "applogs"
BAD_EVERY = 10_000  # every BAD_EVERY-th record is not JSON, every other one has a bad time
REJECT_EVERY = 50_000  # ... and two of every REJECT_EVERY pass our checks but PostgreSQL rejects
                       # them (each costs a batch's second COPY: fewer keep the test fast)


def is_rejected(i):
    return i % REJECT_EVERY in (3, 4, 6)


def is_bad(i):
    return i % BAD_EVERY in (5, 7) or is_rejected(i)


def pg_bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        sys.exit(f"{name} is missing: install postgresql (packaging/deps.sh --test)")
    return found[-1]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Postgres:
    """A throwaway cluster owned by `nobody` (PostgreSQL refuses to run as root)."""

    def __init__(self, base):
        self.dir = os.path.join(base, "pg")
        self.port = free_port()
        self.user = "nobody"
        os.makedirs(self.dir)
        pw = pwd.getpwnam(self.user)
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(base, 0o755)

    def as_user(self, *cmd, **kw):
        prefix = ["runuser", "-u", self.user, "--"] if os.geteuid() == 0 else []
        return subprocess.run(prefix + list(cmd), capture_output=True, text=True, **kw)

    def start(self):
        data = os.path.join(self.dir, "data")
        r = self.as_user(pg_bin("initdb"), "-D", data, "-U", "postgres", "--auth=trust",
                         "-E", "UTF8", "--locale=C", timeout=120)
        if r.returncode != 0:
            sys.exit(f"initdb failed: {r.stderr}")
        r = self.as_user(pg_bin("pg_ctl"), "-D", data, "-w", "-t", "60", "-l",
                         os.path.join(self.dir, "log"), "-o",
                         f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                         "-c max_wal_size=1GB", "start", timeout=90)
        if r.returncode != 0:
            sys.exit(f"pg_ctl start failed: {r.stderr}\n{open(os.path.join(self.dir, 'log')).read()}")
        return self

    def stop(self):
        self.as_user(pg_bin("pg_ctl"), "-D", os.path.join(self.dir, "data"), "-m", "fast",
                     "stop", timeout=60)

    @property
    def conninfo(self):
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def query(self, sql):
        r = subprocess.run(["psql", "-X", "-At", "-F", "|", "-d", self.conninfo, "-c", sql],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        return [line.split("|") for line in r.stdout.splitlines()]


def value(i, ts):
    if i % BAD_EVERY == 5:
        return b"not json at all %d" % i
    if i % BAD_EVERY == 7:
        return b'{"id":%d,"time":"yesterday-ish","host":"h","message":"m"}' % i
    if i % REJECT_EVERY == 3:  # violates the table's CHECK
        return record_value(i, ts).replace(b'"message": "GET', b'"message": "REJECT')
    if i % REJECT_EVERY == 6:  # refused by a deferred constraint trigger: no line in the error
        return record_value(i, ts).replace(b'"message": "GET', b'"message": "DEFER')
    if i % REJECT_EVERY == 4:  # out of range for the table's integer id
        return record_value(i, ts).replace(b'{"id": %d,' % i, b'{"id": %d,' % (3_000_000_000 + i))
    return record_value(i, ts)


def main():
    tmp = tempfile.mkdtemp(prefix="sl-sink-pg-")
    pg = Postgres(tmp).start()
    srv = Server(os.path.join(tmp, "data"), "--conf", "groups.initial_rebalance_delay=0s",
                 "--conf", "groups.min_session_timeout=1s").start()
    sink = None
    base_ms = 1795860000000
    try:
        create_topic(srv.bootstrap, TOPIC, PARTS)
        # The sink's CREATE TABLE IF NOT EXISTS keeps this one: narrower id, and a CHECK.
        pg.query("CREATE TABLE logs (time timestamptz, host text, source text, message text "
                 "CHECK (message NOT LIKE 'REJECT%'), id integer, value jsonb, topic text, "
                 "partition integer, \"offset\" bigint, ts timestamptz)")
        # A constraint trigger deferred to COMMIT: its error names no COPY line, so the sink
        # must find the row itself.
        pg.query("CREATE FUNCTION no_defer() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                 "IF NEW.message LIKE 'DEFER%' THEN RAISE EXCEPTION 'deferred check refuses %', "
                 "NEW.id USING ERRCODE = 'check_violation'; END IF; RETURN NULL; END $$")
        pg.query("CREATE CONSTRAINT TRIGGER no_defer AFTER INSERT ON logs DEFERRABLE "
                 "INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION no_defer()")
        t0 = time.monotonic()
        prod = Producer(srv.bootstrap, TOPIC, N, PARTS, base_ms, hours=2,
                        rate=40000 if ASAN else 60000, value=value).start()
        conf = os.path.join(tmp, "pg.yaml")
        dead = os.path.join(tmp, "dead.jsonl")
        with open(conf, "w") as f:
            f.write(f"""type: postgres
group: warehouse
topics: [{TOPIC}]
bootstrap: [{srv.bootstrap}]
conninfo: "{pg.conninfo}"
table: logs
batch_rows: 20000
batch_age: 500ms
session_timeout: 2s
fetch_max_wait: 200ms
retry_backoff: 100ms
dead_letter: {dead}
metrics_listen: 127.0.0.1:0
columns:
  time: {{from: value.time, type: timestamptz}}
  host: {{from: value.host}}
  source: {{from: value.source}}
  message: {{from: value.message}}
  id: {{from: value.id, type: bigint}}
  value: {{from: value, type: jsonb}}
  topic: {{from: topic}}
  partition: {{from: partition, type: integer}}
  offset: {{from: offset, type: bigint}}
  ts: {{from: timestamp, type: timestamptz}}
""")
        # As if a sink had appended record 5's dead letter (partition 5, offset 0) and been
        # killed before committing: the sink must not append it again.
        with open(dead, "w") as f:
            f.write(json.dumps({"time": "2026-11-22T00:00:00Z", "topic": TOPIC, "partition": 5,
                                "offset": 0, "timestamp": 0, "error": "seeded", "key": None,
                                "value": "not json at all 5"}) + "\n")
        sink = Sink(conf, "pgsink").start()
        check(sink.metrics_port() is not None, "the sink started, /metrics bound")
        rnd = random.Random(8)
        for k in range(5):
            time.sleep(rnd.uniform(1.5, 2.5))
            sink.kill()
            sink.start()
            print(f"     SIGKILLed and restarted the sink at {time.monotonic() - t0:.1f}s",
                  flush=True)
        check(prod.join() and not prod.errors, f"{N} records produced ({prod.errors[:3]})")
        ends = end_offsets(srv.bootstrap, TOPIC, PARTS)
        check(sum(ends.values()) == N, f"end offsets {ends}")

        def table_positions():
            rows = pg.query("SELECT part, next_offset FROM sluice_offsets "
                            f"WHERE grp = 'warehouse' AND topic = '{TOPIC}'")
            return {int(p): int(o) for p, o in rows}
        pos = wait_caught_up(table_positions, ends, 120)
        check(pos == ends, f"the offsets table holds every partition's end ({pos})")
        page = sink.scrape()
        check('sluice_sink_records_durable_total{type="postgres"}' in page,
              "/metrics has the sink's counters")
        rc = sink.stop()
        check(rc == 0, f"SIGTERM: the sink drained and exited 0 ({rc})")
        bad = sum(1 for i in range(N) if is_bad(i))
        (count, distinct, ids), = pg.query(
            "SELECT count(*), count(DISTINCT (partition, \"offset\")), count(DISTINCT id) "
            "FROM logs")
        check(int(count) == N - bad and int(distinct) == N - bad and int(ids) == N - bad,
              f"exactly once: {count} rows, {distinct} distinct offsets, {ids} ids "
              f"(expected {N - bad})")
        (mismatch,), = pg.query(
            "SELECT count(*) FROM logs WHERE time <> ts OR (value->>'id')::bigint <> id OR "
            "host <> value->>'host' OR partition <> id % 6")
        check(int(mismatch) == 0, f"typed columns agree with the JSON value ({mismatch} differ)")
        with open(dead) as f:
            dl = [json.loads(line) for line in f]
        dead_ids = {(d["partition"], d["offset"]) for d in dl}
        check(len(dead_ids) == bad and all(d["error"] for d in dl),
              f"{len(dead_ids)} distinct dead letters of {bad} bad records "
              f"({len(dl)} lines: a replay may repeat one)")

        def dead_id(d):  # the producer's i, from the value
            v = d["value"]
            i = int(v[16:]) if v.startswith("not json at all ") else json.loads(v)["id"]
            i = i - 3_000_000_000 if i >= 3_000_000_000 else i
            return i if i % PARTS == d["partition"] else -1
        got = {dead_id(d) for d in dl}
        check(len(dl) == len(dead_ids) == len(got),
              f"no dead letter repeated across 5 SIGKILLs: {len(dl)} lines, {len(dead_ids)} "
              f"distinct offsets, {len(got)} distinct records")
        want = {i for i in range(N) if is_bad(i)}
        check(got == want, f"the dead letters are exactly the bad records "
              f"({len(got - want)} extra, {len(want - got)} missing)")
        by_pg = {dead_id(d): d["error"] for d in dl if "SQLSTATE" in d["error"]}
        want_pg = {i for i in range(N) if is_rejected(i)}
        check(set(by_pg) == want_pg and
              all(("23514" in e and "check constraint" in e) or ("22003" in e and "range" in e)
                  or ("23514" in e and "deferred check refuses" in e) for e in by_pg.values()),
              f"{len(by_pg)} rows PostgreSQL rejected are dead letters with its message "
              f"(expected {len(want_pg)}; e.g. {next(iter(by_pg.values()), None)})")
        print(f"     {time.monotonic() - t0:.1f}s", flush=True)
    finally:
        if sink and sink.alive():
            sink.proc.kill()
        srv.stop()
        pg.stop()
    if not os.environ.get("SL_KEEP"):
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
