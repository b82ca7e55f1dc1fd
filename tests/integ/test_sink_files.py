#!/usr/bin/python3
"""The files sink against the real collector: 500,000 records across 6 partitions, loaded by
3 `sluice sink` processes of one group while one of them is SIGKILLed (and restarted) 5
times. At the end every record is in exactly one final .jsonl.gz file (each file read back),
no temporary file is left, the layout is topic=T/dt=YYYY-MM-DD/hour=HH/part-P-S.jsonl.gz with
the partition columns matching each record's timestamp and S its first offset. First, a small
run in `content: value` mode sends values that are not JSON objects to the dead-letter file,
and a bad configuration is refused compiler-style."""
import glob
import gzip
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafkasrv import Server  # noqa: E402
from sink_helpers import (SLUICE, Producer, Sink, check, committed, create_topic,  # noqa: E402
                          end_offsets, finish, wait_caught_up)

import subprocess  # noqa: E402

ASAN = os.environ.get("SL_SANITIZE") == "1"
N = 500_000
PARTS = 6
TOPIC = "weblogs"
NAME_RE = re.compile(r"^topic=([^/]+)/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/part-(\d+)-(\d+)\.jsonl\.gz$")


def write_conf(path, **kw):
    lines = [f"{k}: {v}" for k, v in kw.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def bad_config(tmp):
    path = os.path.join(tmp, "bad.yaml")
    with open(path, "w") as f:
        f.write("type: files\ngroup: g\ntopics: [t]\nroot: /x\nlayout: \"topic={topic}/d={dt}\"\n")
    r = subprocess.run([SLUICE, "sink", path], capture_output=True, text=True, timeout=30)
    check(r.returncode == 1 and re.search(r"bad\.yaml:5:9: layout: unknown placeholder '\{dt\}'",
                                          r.stderr),
          f"a bad layout is refused with file:line:col ({r.returncode}: {r.stderr.strip()})")
    with open(path, "w") as f:
        f.write("type: files\ngroup: g\ntopics: [t]\nroot: /x\nroll_sise: 1MiB\n")
    r = subprocess.run([SLUICE, "sink", path], capture_output=True, text=True, timeout=30)
    check(r.returncode == 1 and "bad.yaml:5:1: unknown option 'roll_sise'; did you mean "
          "'roll_size'?" in r.stderr, f"a misspelt option is named ({r.stderr.strip()})")


def dead_letters(tmp, srv, base_ms):
    """content: value; every 50th value is not a JSON object, and the 5 records of a later hour
    are all refused: that hour gets no file. Values are checked on the compressor thread, and a
    file is named after the first record it keeps. max_open_files 1: the later hour's first
    record ends the epoch and is fetched again, past a Fetch already sent ahead."""
    topic = "mixed"
    create_topic(srv.bootstrap, topic, 1)

    def value(i, ts):
        return b"plain text line %d" % i if i % 50 == 0 else b'{"id":%d,\n "x":"a"}' % i
    prod = Producer(srv.bootstrap, topic, 1000, 1, base_ms, hours=1, value=value)
    prod.run()
    Producer(srv.bootstrap, topic, 5, 1, base_ms + 5 * 3600 * 1000, hours=1,
             value=lambda i, ts: b"[%d]" % i).run()
    root = os.path.join(tmp, "mixed-root")
    conf = os.path.join(tmp, "mixed.yaml")
    write_conf(conf, type="files", group="mixed", topics=f"[{topic}]", bootstrap=f"[{srv.bootstrap}]",
               root=root, roll_age="300ms", session_timeout="3s", max_open_files=1,
               dead_letter=os.path.join(tmp, "mixed-dead.jsonl"), fetch_max_wait="100ms")
    s = Sink(conf, "mixed").start()
    pos = wait_caught_up(lambda: committed(srv.bootstrap, "mixed", topic), {0: 1005}, 60)
    rc = s.stop()
    check(pos == {0: 1005} and rc == 0, f"value-mode sink committed everything ({pos}), exit {rc}")
    ids = []
    misnamed = []
    files = glob.glob(os.path.join(root, "topic=mixed", "*", "*", "*.jsonl.gz"))
    for f in files:
        with gzip.open(f, "rt") as g:
            got = [json.loads(line)["id"] for line in g]
        ids += got
        # offsets are the ids here: one partition, produced in order
        if not got or not f.endswith(f"-{got[0]}.jsonl.gz"):
            misnamed.append((os.path.basename(f), got[:1]))
    check(sorted(ids) == [i for i in range(1000) if i % 50], f"{len(ids)} JSON objects in files, "
          "one per line (newlines inside the value made spaces)")
    check(files and not misnamed, f"each of {len(files)} files is named after the first record it "
          f"keeps ({misnamed[:3]})")
    check(not glob.glob(os.path.join(root, "topic=mixed", "*", "hour=15")),
          "an hour whose records were all refused has no folder")
    with open(os.path.join(tmp, "mixed-dead.jsonl")) as f:
        dead = [json.loads(line) for line in f]
    check(sorted(d["offset"] for d in dead) == list(range(0, 1000, 50)) + list(range(1000, 1005))
          and all(d["topic"] == topic and d["error"] for d in dead) and
          all(d["value"].startswith("plain text") and "not JSON" in d["error"]
              for d in dead if d["offset"] < 1000) and
          all(d["value"].startswith("[") and "not an object" in d["error"]
              for d in dead if d["offset"] >= 1000),
          f"{len(dead)} dead letters with offset, value and reason")

    # logrotate moves the dead-letter file away; the group is rewound and a new process reads
    # everything again: its dead letters are in the rotated file, so none is written twice.
    os.rename(os.path.join(tmp, "mixed-dead.jsonl"), os.path.join(tmp, "mixed-dead.jsonl.1"))
    r = subprocess.run([SLUICE, "-b", srv.bootstrap, "groups", "reset-offsets", "mixed", "-t",
                        topic, "--to-earliest"], capture_output=True, text=True)
    s = Sink(conf, "mixed2").start()
    wait_caught_up(lambda: committed(srv.bootstrap, "mixed", topic), {0: 1005}, 60)
    log = s.text()
    rc = s.stop()
    path = os.path.join(tmp, "mixed-dead.jsonl")
    again = open(path).read() if os.path.exists(path) else ""
    check(r.returncode == 0 and rc == 0 and again == "",
          f"after a rotation and a rewind, no dead letter is written again "
          f"({again.count(chr(10))} lines; reset: {r.stderr.strip()}{log[-300:] if again else ''})")


def verify_tree(root, n, parts):
    seen = {}
    ids = set()
    dup = 0
    bad_layout = []
    bad_content = []
    files = 0
    biggest = (0, None, 0)  # uncompressed bytes, path, lines
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".sluice"]
        for fn in filenames:
            rel = os.path.relpath(os.path.join(dirpath, fn), root)
            m = NAME_RE.match(rel)
            if not m or m.group(1) != TOPIC:
                bad_layout.append(rel)
                continue
            files += 1
            dt, hour, part, start = m.group(2), m.group(3), int(m.group(4)), int(m.group(5))
            with gzip.open(os.path.join(dirpath, fn), "rt") as g:
                text = g.read()
            lines = [json.loads(line) for line in text.splitlines()]
            if len(text) > biggest[0]:
                biggest = (len(text), os.path.join(dirpath, fn), len(lines))
            offs = [r["offset"] for r in lines]
            if not lines or offs[0] != start or offs != sorted(offs) or \
                    any(r["partition"] != part for r in lines):
                bad_content.append(f"{rel}: offsets {offs[:3]}.. partition {lines[0]['partition']}")
            for r in lines:
                t = time.gmtime(r["timestamp"] / 1000)
                if time.strftime("%Y-%m-%d", t) != dt or time.strftime("%H", t) != hour:
                    bad_content.append(f"{rel}: offset {r['offset']} time {r['timestamp']}")
                    break
                key = (r["partition"], r["offset"])
                if key in seen:
                    dup += 1
                seen[key] = rel
                ids.add(r["value"]["id"])
    check(not bad_layout, f"every file follows the layout ({bad_layout[:5]})")
    check(not bad_content, f"file names, partition columns and contents agree ({bad_content[:5]})")
    check(dup == 0, f"no record in two final files ({dup} duplicates)")
    check(len(seen) == n and ids == set(range(n)),
          f"every record is in a final file: {len(seen)} records, {len(ids)} ids, {files} files")
    leftovers = [p for p in glob.glob(os.path.join(root, "**", "*"), recursive=True)
                 if p.endswith(".tmp")] + \
        [p for p in glob.glob(os.path.join(root, ".sluice", "stage", "*", "*"))]
    check(not leftovers, f"no temporary files left ({leftovers[:5]})")
    # Files are series of gzip members (one per 256 KiB of lines): the gzip tool must read
    # them whole too, not only Python.
    size, path, count = biggest
    t = subprocess.run(["gzip", "-t", path], capture_output=True, text=True)
    seen_by_gzip = subprocess.run(["gzip", "-dc", path], capture_output=True).stdout.count(b"\n")
    check(size > 256 * 1024 and t.returncode == 0 and seen_by_gzip == count,
          f"gzip -t and gzip -dc read the biggest file whole ({size} bytes, {count} lines, "
          f"gzip saw {seen_by_gzip}: {t.stderr.strip()})")
    return files


def main():
    tmp = tempfile.mkdtemp(prefix="sl-sink-files-")
    srv = Server(os.path.join(tmp, "data"), "--conf", "groups.initial_rebalance_delay=0s",
                 "--conf", "groups.min_session_timeout=1s").start()
    sinks = []
    base_ms = 1795860000000  # 2026-11-28T10:00:00Z
    try:
        bad_config(tmp)
        dead_letters(tmp, srv, base_ms)

        create_topic(srv.bootstrap, TOPIC, PARTS)
        t0 = time.monotonic()
        prod = Producer(srv.bootstrap, TOPIC, N, PARTS, base_ms, hours=3,
                        rate=40000 if ASAN else 60000).start()
        root = os.path.join(tmp, "lake")
        conf = os.path.join(tmp, "files.yaml")
        write_conf(conf, type="files", group="lake", topics=f"[{TOPIC}]",
                   bootstrap=f"[{srv.bootstrap}]", root=root, content="record",
                   roll_size="512KiB", roll_age="1s", session_timeout="2s",
                   rebalance_timeout="10s", fetch_max_wait="200ms", retry_backoff="100ms",
                   metrics_listen="127.0.0.1:0")
        sinks = [Sink(conf, f"sink{i}").start() for i in range(3)]
        check(all(s.metrics_port() for s in sinks), "3 sinks started, /metrics bound")
        rnd = random.Random(8)
        for k in range(5):
            time.sleep(rnd.uniform(1.5, 3.0))
            victim = sinks[rnd.randrange(3)]
            victim.kill()
            if k == 2:
                # This run kills itself between renaming its files and committing them: the
                # next owner must replace those files, not add overlapping ones.
                victim.start(SLUICE_SINK_TEST_KILL_BEFORE_COMMIT="2")
                died = victim.wait_log(r"SIGKILL before committing", 30)
                victim.proc.wait(timeout=30)
                check(died is not None, f"{victim.name} died between rename and commit")
                victim.err.close()
            victim.start()
            print(f"     SIGKILLed and restarted {victim.name} at {time.monotonic() - t0:.1f}s",
                  flush=True)
        check(prod.join() and not prod.errors, f"{N} records produced ({prod.errors[:3]})")
        ends = end_offsets(srv.bootstrap, TOPIC, PARTS)
        check(sum(ends.values()) == N, f"end offsets {ends}")
        pos = wait_caught_up(lambda: committed(srv.bootstrap, "lake", TOPIC), ends, 120)
        check(pos == ends, f"the group committed every partition's end ({pos})")
        page = sinks[0].scrape()
        m = re.search(r'sluice_sink_records_durable_total\{type="files"\} (\d+)', page)
        check(m is not None and "sluice_sink_lag_records" in page,
              f"/metrics has the sink's counters ({m.group(0) if m else page[:200]})")
        rcs = [s.stop() for s in sinks]
        check(rcs == [0, 0, 0], f"SIGTERM: every sink drained and exited 0 ({rcs})")
        kills = sum(s.starts for s in sinks) - 3
        check(kills == 6, f"{kills} SIGKILLs (5 from the test, 1 self-inflicted)")
        files = verify_tree(root, N, PARTS)
        print(f"     {files} files, {time.monotonic() - t0:.1f}s", flush=True)
    finally:
        for s in sinks:
            if s.alive():
                s.proc.kill()
        srv.stop()
    if not os.environ.get("SL_KEEP"):
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
