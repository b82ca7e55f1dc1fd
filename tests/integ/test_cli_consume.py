#!/usr/bin/python3
"""`sluice consume` against the real sluice-collector, without a group: records written by
kafka-python (keys, headers, chosen timestamps, binary and null values) read back in every
format (value, raw, json) and from every start (beginning, --offset N / -N / end, --since,
--at), -p, -n, -f with a bounded wait and Ctrl-C, the progress line on a terminal, and a
100,000-record topic counted against kcat and kafka-python."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_helpers import (KCAT, Background, check, finish, need_binaries,  # noqa: E402
                         run_with_tty_stderr, sluice)
from kafkasrv import Server  # noqa: E402

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

BASE_TS = 1_790_000_000_000  # 2026-09-21T...Z: a fixed past time, so --at is exact
PER_PART = 100


def iso(ms):
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{ms % 1000:03d}Z"


def produce_fixture(bootstrap):
    """Topic "c": 3 partitions x 100 records, key k<p>-<i>, header h=v<i>, timestamp
    BASE_TS + i s, value {"p":p,"i":i}. Topic "bin": odd values."""
    prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for p in range(3):
        for i in range(PER_PART):
            prod.send("c", partition=p, key=f"k{p}-{i}".encode(),
                      value=json.dumps({"p": p, "i": i}).encode(),
                      headers=[("h", f"v{i}".encode())], timestamp_ms=BASE_TS + i * 1000)
    prod.send("bin", partition=0, value=b"\x00\xffA\n\xc3\xa9\"", key=None)
    prod.send("bin", partition=0, value=None, key=b"tomb")
    prod.send("bin", partition=0, value=b"", key=b"")
    prod.flush()
    prod.close()


def value(p, i):
    return json.dumps({"p": p, "i": i})


def test_formats(bootstrap):
    r = sluice(bootstrap, "consume", "-t", "c")
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and r.stderr == "", "consume exits 0, stderr quiet on a pipe",
          r.stderr)
    check(sorted(lines) == sorted(value(p, i) for p in range(3) for i in range(PER_PART)),
          f"consume prints every value once ({len(lines)})")
    for p in range(3):
        mine = [l for l in lines if json.loads(l)["p"] == p]
        check(mine == [value(p, i) for i in range(PER_PART)],
              f"partition {p} comes in offset order")
    kc = subprocess.run([KCAT, "-b", bootstrap, "-C", "-t", "c", "-e", "-q", "-f", "%s\\n"],
                        capture_output=True, text=True, timeout=60)
    check(sorted(kc.stdout.splitlines()) == sorted(lines), "the same values as kcat reads")

    r = sluice(bootstrap, "consume", "-t", "c", "--format", "json")
    docs = [json.loads(l) for l in r.stdout.splitlines()]
    check(len(docs) == 3 * PER_PART, "--format json: one object per line")
    d = next(x for x in docs if x["partition"] == 2 and x["offset"] == 7)
    check(d == {"topic": "c", "partition": 2, "offset": 7, "timestamp": BASE_TS + 7000,
                "time": iso(BASE_TS + 7000), "key": "k2-7", "headers": [["h", "v7"]],
                "value": value(2, 7)},
          "json record: topic, partition, offset, timestamp, time, key, headers, value", d)
    r2 = sluice(bootstrap, "--json", "consume", "-t", "c")
    check(r2.stdout == r.stdout, "--json before the command means --format json")

    r = sluice(bootstrap, "consume", "-t", "bin", "--format", "raw", binary=True)
    check(r.returncode == 0 and r.stdout == b"\x00\xffA\n\xc3\xa9\"",
          "--format raw writes the value bytes and nothing else", r.stdout)
    r = sluice(bootstrap, "consume", "-t", "bin", "--format", "json")
    docs = [json.loads(l) for l in r.stdout.splitlines()]
    check(len(docs) == 3 and docs[0]["value"] == "\x00\xffA\n\xe9\"" and docs[0]["key"] is None
          and docs[1]["value"] is None and docs[1]["key"] == "tomb" and docs[2]["value"] == ""
          and docs[2]["key"] == "", "json: invalid UTF-8 as \\u00XX, null and empty kept apart",
          docs)
    check("\\u00ff" in r.stdout and "é" in r.stdout, "valid UTF-8 stays as it is in json")
    r = sluice(bootstrap, "consume", "-t", "bin", binary=True)
    check(r.stdout == b"\x00\xffA\n\xc3\xa9\"\n\n\n", "value format: a null value is an empty "
          "line", r.stdout)


def test_starts(bootstrap):
    def vals(*args):
        r = sluice(bootstrap, "consume", "-t", "c", *args)
        check(r.returncode == 0, f"consume {' '.join(args)} exits 0", r.stderr)
        return r.stdout.splitlines()

    check(vals("-p", "1") == [value(1, i) for i in range(PER_PART)], "-p 1: that partition")
    check(sorted(vals("-p", "2", "-p", "0")) == sorted(
        [value(p, i) for p in (0, 2) for i in range(PER_PART)]), "-p twice: both partitions")
    check(len(vals("-n", "7")) == 7, "-n 7 prints 7 records")
    check(vals("-p", "0", "--offset", "95") == [value(0, i) for i in range(95, 100)],
          "--offset 95")
    check(sorted(vals("--offset", "-3")) == sorted(
        value(p, i) for p in range(3) for i in range(97, 100)), "--offset -3: 3 before the end")
    check(vals("--offset", "end") == [], "--offset end: nothing new, exits")
    check(vals("-p", "0", "--offset", "1000") == [], "--offset past the end: nothing")
    check(len(vals("--from-beginning")) == 3 * PER_PART, "--from-beginning")
    want = sorted(value(p, i) for p in range(3) for i in range(50, PER_PART))
    check(sorted(vals("--at", f"@{BASE_TS + 50000}")) == want, "--at @ms: from that timestamp")
    check(sorted(vals("--at", iso(BASE_TS + 49500))) == want, "--at ISO time with ms")
    check(vals("--at", "2100-01-01") == [], "--at in the future: nothing")

    prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    now = int(time.time() * 1000)
    for i in range(10):
        prod.send("recent", partition=0, value=f"old {i}".encode(), timestamp_ms=now - 7200_000)
    for i in range(10):
        prod.send("recent", partition=0, value=f"new {i}".encode(), timestamp_ms=now - 60_000)
    prod.flush()
    prod.close()
    r = sluice(bootstrap, "consume", "-t", "recent", "--since", "1h")
    check(r.stdout.splitlines() == [f"new {i}" for i in range(10)],
          "--since 1h skips the records of two hours ago", r.stdout)
    r = sluice(bootstrap, "consume", "-t", "recent", "--since", "3h")
    check(len(r.stdout.splitlines()) == 20, "--since 3h includes them")

    r = sluice(bootstrap, "consume", "-t", "nope")
    check(r.returncode == 4 and "topic 'nope' does not exist" in r.stderr,
          "consume of an unknown topic exits 4", r.stderr)
    r = sluice(bootstrap, "consume", "-t", "c", "-p", "9")
    check(r.returncode == 4 and "no partition 9" in r.stderr, "-p 9 of 3 partitions exits 4",
          r.stderr)


def test_follow(bootstrap, tmp):
    bg = Background(bootstrap, tmp, "follow", "consume", "-t", "f", "-f", "--offset", "end")
    time.sleep(1.0)  # it has read the (empty) end and is long-polling
    sluice(bootstrap, "produce", "-t", "f", input="one\ntwo\nthree\n")
    got = bg.wait_lines(3, timeout=30)
    check(got == ["one", "two", "three"], "consume -f prints records produced after it started",
          got)
    rc = bg.stop(signal.SIGINT)
    check(rc == 0, f"Ctrl-C ends consume -f with exit 0 (got {rc})", bg.stderr())

    bg = Background(bootstrap, tmp, "follow-n", "consume", "-t", "f", "-f", "-n", "5")
    sluice(bootstrap, "produce", "-t", "f", input="four\nfive\n")
    try:
        rc = bg.p.wait(30)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 0 and bg.lines() == ["one", "two", "three", "four", "five"],
          "consume -f -n 5 exits by itself once 5 records were printed", bg.lines())
    bg.stop()

    bg = Background(bootstrap, tmp, "follow-term", "consume", "-t", "f", "-f")
    bg.wait_lines(5, timeout=30)
    rc = bg.stop(signal.SIGTERM)
    check(rc == 0, "SIGTERM ends consume -f with exit 0", bg.stderr())

    rc, out, shown = run_with_tty_stderr(bootstrap, ["consume", "-t", "f", "-f"],
                                         interrupt_after=1.5)
    check(rc == 0 and out.decode().splitlines() == ["one", "two", "three", "four", "five"]
          and "records/s" in shown and "lag" in shown and "f: 5 records" in shown,
          "progress (records/s, lag) and a summary on the terminal, records on the pipe",
          shown[-300:])


def test_volume(bootstrap):
    n = 100_000
    text = "".join(f"record {i:06d} {'z' * (i % 40)}\n" for i in range(n))
    r = sluice(bootstrap, "topics", "create", "vol", "-p", "4")
    r = sluice(bootstrap, "produce", "-t", "vol", "--batch-size", "64KiB", input=text)
    check(r.returncode == 0, "produce 100,000 records", r.stderr)
    start = time.monotonic()
    r = sluice(bootstrap, "consume", "-t", "vol")
    secs = time.monotonic() - start
    got = r.stdout.splitlines()
    check(r.returncode == 0 and sorted(got) == text.splitlines(),
          f"consume reads all 100,000 exactly once ({len(got)} in {secs:.1f} s)")
    cons = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                         enable_auto_commit=False, consumer_timeout_ms=5000)
    cons.assign([TopicPartition("vol", p) for p in range(4)])
    seen = sum(1 for _ in cons)
    cons.close()
    check(seen == n, f"kafka-python reads the same 100,000 ({seen})")


def main():
    need_binaries()
    with tempfile.TemporaryDirectory(prefix="sl-cli-consume-") as tmp:
        srv = Server(os.path.join(tmp, "data")).start()
        try:
            for t, n in (("c", 3), ("bin", 1), ("recent", 1), ("f", 1)):
                sluice(srv.bootstrap, "topics", "create", t, "-p", str(n))
            produce_fixture(srv.bootstrap)
            test_formats(srv.bootstrap)
            test_starts(srv.bootstrap)
            test_follow(srv.bootstrap, tmp)
            test_volume(srv.bootstrap)
        finally:
            srv.stop()
    finish("integ.cli_consume")


if __name__ == "__main__":
    main()
