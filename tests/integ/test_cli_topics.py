#!/usr/bin/python3
"""`sluice` against the real sluice-collector: --help and exit codes (usage 2, unreachable 3,
unknown topic 4), topics list/describe/create/delete as tables and --json (describe with
DescribeLogDirs sizes against the .log files and DescribeConfigs retention settings), and produce (lines,
keys with Kafka's partitioner, -K, headers, gzip or not, acks=all, a collector killed
mid-stream) cross-checked with kcat, kafka-python's murmur2 and the segment files."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_helpers import (KCAT, SLUICE, check, finish, need_binaries,  # noqa: E402
                         run_with_tty_stderr, sluice)
from kafkasrv import Server  # noqa: E402

from kafka.partitioner.default import murmur2  # noqa: E402


def kcat(bootstrap, *args, input_text=None):
    return subprocess.run([KCAT, "-b", bootstrap, *args], input=input_text, capture_output=True,
                          text=True, timeout=120)


def kcat_all(bootstrap, topic, fmt="%p %o %k %s\\n"):
    out = kcat(bootstrap, "-C", "-t", topic, "-e", "-q", "-f", fmt)
    return out.stdout.splitlines()


def test_help_and_usage(bootstrap):
    r = sluice(bootstrap, "--help")
    for word in ("topics", "produce", "consume", "groups", "Exit status", "3  the collector "
                 "cannot be reached", "4  the topic, partition or group does not exist",
                 "2  usage error"):
        check(r.returncode == 0 and word in r.stdout, f"sluice --help mentions '{word}'")
    for cmd in ("topics", "produce", "consume", "groups"):
        r = sluice(bootstrap, cmd, "--help")
        check(r.returncode == 0 and "Usage: sluice" in r.stdout, f"sluice {cmd} --help")
    for args, what in ((["frobnicate"], "unknown command"),
                       (["topics"], "which action"),
                       (["topics", "describe"], "needs at least one topic"),
                       (["topics", "list", "x"], "list takes no topic"),
                       (["topics", "create", "x", "-p", "0"], "partitions must be"),
                       (["produce"], "which topic"),
                       (["produce", "-t", "x", "--acks", "2"], "--acks must be"),
                       (["consume", "-t", "x", "--format", "xml"], "--format must be"),
                       (["consume", "-t", "x", "--offset", "3", "--since", "1h"], "exclude"),
                       (["consume", "-t", "x", "--since", "3 weeks"], "--since"),
                       (["consume", "-t", "x", "--at", "yesterday"], "must be a time"),
                       (["groups", "reset-offsets", "g", "-t", "x"], "--to-earliest"),
                       (["--no-such"], "unknown option")):
        r = sluice(bootstrap, *args)
        check(r.returncode == 2 and what in r.stderr,
              f"usage error exits 2: sluice {' '.join(args)}", r.stderr)
    r = sluice(bootstrap, "--check-config")
    check(r.returncode == 0, "sluice --check-config")


def test_man_page(bootstrap):
    """packaging/man/sluice.1 renders cleanly and documents every option --help lists."""
    path = os.path.join(os.environ.get("SL_SOURCE_DIR", "."), "packaging", "man", "sluice.1")
    with open(path) as f:
        man = f.read().replace("\\-", "-")
    r = subprocess.run(["groff", "-man", "-ww", "-z", path], capture_output=True, text=True,
                       env=dict(os.environ, LC_ALL="C.UTF-8"))
    check(r.returncode == 0 and r.stderr == "", "sluice.1 renders without groff warnings",
          r.stderr)
    missing = []
    for cmd in ([], ["topics"], ["produce"], ["consume"], ["groups"], ["sink"]):
        out = sluice(bootstrap, *cmd, "--help").stdout
        for opt in sorted(set(re.findall(r"(--[a-z][a-z-]+)", out))):
            if opt not in man:
                missing.append(" ".join(cmd + [opt]))
    check(not missing, "the man page documents every option of every --help", missing)
    for code in range(5):
        check(f".B {code}\n" in man, f"the man page documents exit status {code}")


def test_unreachable():
    # A port nobody listens on: bind one, close it.
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    for args in (["topics", "list"], ["consume", "-t", "x"], ["groups", "list"]):
        r = sluice(f"127.0.0.1:{port}", *args)
        check(r.returncode == 3 and "cannot reach the collector" in r.stderr
              and f"127.0.0.1:{port}" in r.stderr,
              f"unreachable collector exits 3 with the address: sluice {' '.join(args)}",
              r.stderr)
    r = sluice(f"127.0.0.1:{port}", "produce", "-t", "x", input="a\n")
    check(r.returncode == 3, "produce to an unreachable collector exits 3", r.stderr)
    r = subprocess.run([SLUICE, "-b",
                        f"127.0.0.1:{port}", "topics", "list"], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 3, "-b on the command line is used (exit 3 on a dead port)")
    r = sluice("no-such-host.invalid:9092", "topics", "list")
    check(r.returncode == 3 and "no-such-host.invalid" in r.stderr,
          "an unresolvable name exits 3", r.stderr)


def test_topics(bootstrap, data_dir):
    r = sluice(bootstrap, "topics", "create", "logs", "-p", "3")
    check(r.returncode == 0 and "created topic logs" in r.stdout, "topics create -p 3", r.stderr)
    r = sluice(bootstrap, "topics", "create", "other")
    check(r.returncode == 0, "topics create with the collector's default partitions", r.stderr)
    r = sluice(bootstrap, "topics", "create", "logs", "-p", "3")
    check(r.returncode == 1 and "already exists" in r.stderr, "creating it again exits 1",
          r.stderr)
    r = sluice(bootstrap, "topics", "create", "bad/name")
    check(r.returncode == 1 and "INVALID_TOPIC" in r.stderr, "an invalid name exits 1", r.stderr)

    lines = [f"line {i}" for i in range(1000)]
    r = sluice(bootstrap, "produce", "-t", "logs", "-p", "1", input="\n".join(lines) + "\n")
    check(r.returncode == 0 and r.stdout == "" and r.stderr == "",
          "produce -p 1: quiet when not on a terminal", r.stderr)

    r = sluice(bootstrap, "topics", "list")
    rows = [l.split() for l in r.stdout.splitlines()]
    check(r.returncode == 0 and rows[0] == ["TOPIC", "PARTITIONS", "RECORDS"]
          and ["logs", "3", "1000"] in rows and rows[1][0] == "logs" and rows[2][0] == "other",
          "topics list: a table sorted by name with partitions and records", r.stdout)
    r = sluice(bootstrap, "--json", "topics", "list")
    doc = json.loads(r.stdout)
    check(r.returncode == 0 and {"topic": "logs", "partitions": 3, "records": 1000} in doc,
          "topics list --json", r.stdout)

    size1 = os.path.getsize(os.path.join(data_dir, "logs-1", "0" * 20 + ".log"))
    r = sluice(bootstrap, "topics", "describe", "logs")
    tables = r.stdout.split("\n\n")
    rows = [l.split() for l in tables[0].splitlines()]
    check(r.returncode == 0 and r.stderr == "" and size1 > 1000
          and rows[0] == ["TOPIC", "PARTITION", "LEADER", "START", "END", "RECORDS", "SIZE"]
          and rows[1:] == [["logs", "0", "0", "0", "0", "0", "0"],
                           ["logs", "1", "0", "0", "1000", "1000", str(size1)],
                           ["logs", "2", "0", "0", "0", "0", "0"]],
          "topics describe: per partition leader, start, end, records, bytes on disk",
          (r.stdout, r.stderr, size1))
    crow = [l.split() for l in tables[1].splitlines()] if len(tables) == 2 else []
    # topics.logs.retention=2h in collector.yaml; the rest are the built-in defaults.
    check(crow == [["TOPIC", "RETENTION.MS", "RETENTION.BYTES", "SEGMENT.BYTES",
                    "CLEANUP.POLICY"], ["logs", "7200000", "-1", "1073741824", "delete"]],
          "topics describe: the topic's retention settings", r.stdout)
    r = sluice(bootstrap, "topics", "describe", "logs", "--json")
    doc = json.loads(r.stdout)
    p1 = doc[0]["partitions"][1]
    check(doc[0]["topic"] == "logs" and len(doc[0]["partitions"]) == 3
          and p1 == {"partition": 1, "leader": 0, "start": 0, "end": 1000, "records": 1000,
                     "size": size1, "error": None}, "topics describe --json", r.stdout)
    check(doc[0]["configs"] == {"retention.ms": {"value": "7200000", "default": False},
                                "retention.bytes": {"value": "-1", "default": True},
                                "segment.bytes": {"value": "1073741824", "default": True},
                                "cleanup.policy": {"value": "delete", "default": True}},
          "topics describe --json: configs with their default flag", doc[0].get("configs"))
    r = sluice(bootstrap, "topics", "describe", "nope")
    check(r.returncode == 4 and "topic 'nope' does not exist" in r.stderr,
          "describe of an unknown topic exits 4", r.stderr)
    r = sluice(bootstrap, "topics", "list")
    check("nope" not in r.stdout, "describing an unknown topic does not create it")

    r = sluice(bootstrap, "topics", "delete", "other")
    check(r.returncode == 0 and "deleted topic other" in r.stdout, "topics delete", r.stderr)
    r = sluice(bootstrap, "topics", "list")
    check("other" not in r.stdout, "a deleted topic is gone from the list")
    r = sluice(bootstrap, "topics", "delete", "other")
    check(r.returncode == 4 and "does not exist" in r.stderr, "deleting it again exits 4",
          r.stderr)


def segment_codecs(data_dir, topic, partition):
    """Codec of every batch in the partition's first segment file."""
    path = os.path.join(data_dir, f"{topic}-{partition}", "0" * 20 + ".log")
    codecs = []
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos + 61 <= len(data):
        length = int.from_bytes(data[pos + 8:pos + 12], "big")
        codecs.append(int.from_bytes(data[pos + 21:pos + 23], "big") & 7)
        pos += 12 + length
    return codecs


def test_produce(bootstrap, data_dir):
    sluice(bootstrap, "topics", "create", "keyed", "-p", "4")
    keys = [f"host-{i}" for i in range(40)]
    text = "".join(f"{k}\tvalue of {k} #{j}\n" for j in range(5) for k in keys)
    r = sluice(bootstrap, "produce", "-t", "keyed", "-K", "\t", "-H", "source=cli",
               "-H", "env=test", input=text)
    check(r.returncode == 0, "produce -K TAB with headers", r.stderr)
    got = kcat_all(bootstrap, "keyed", "%p|%k|%s|%h\\n")
    check(len(got) == 200, f"kcat reads the 200 records back ({len(got)})")
    wrong = []
    per_key = {}
    for line in got:
        p, k, s, h = line.split("|")
        want = (murmur2(k.encode()) & 0x7fffffff) % 4
        if int(p) != want:
            wrong.append(f"{k} in {p}, want {want}")
        if s != f"value of {k} #{len(per_key.setdefault(k, []))}":
            wrong.append(f"{k}: '{s}' out of order")
        per_key[k].append(s)
        if h != "source=cli,env=test":
            wrong.append(f"headers '{h}'")
    check(not wrong, "keys land where Kafka's murmur2 partitioner puts them, in order, with "
          "both headers", wrong[:5])

    # gzip by default, none on request: the codec bits of the stored batches say so.
    sluice(bootstrap, "topics", "create", "gz", "-p", "1")
    sluice(bootstrap, "topics", "create", "plain", "-p", "1")
    big = "".join(f"{{\"n\":{i},\"msg\":\"{'x' * 100}\"}}\n" for i in range(20000))
    r = sluice(bootstrap, "produce", "-t", "gz", input=big)
    check(r.returncode == 0, "produce 20,000 lines (gzip)", r.stderr)
    r = sluice(bootstrap, "produce", "-t", "plain", "-z", "none", "--acks", "1", input=big)
    check(r.returncode == 0, "produce -z none --acks 1", r.stderr)
    gz, plain = segment_codecs(data_dir, "gz", 0), segment_codecs(data_dir, "plain", 0)
    check(len(gz) > 1 and set(gz) == {1}, f"every stored batch is gzip ({len(gz)} batches)")
    check(plain and set(plain) == {0}, "-z none stores uncompressed batches")
    gz_size = os.path.getsize(os.path.join(data_dir, "gz-0", "0" * 20 + ".log"))
    plain_size = os.path.getsize(os.path.join(data_dir, "plain-0", "0" * 20 + ".log"))
    check(gz_size * 5 < plain_size, f"gzip shrinks the log ({gz_size} vs {plain_size} bytes)")
    got = kcat_all(bootstrap, "gz", "%s\\n")
    check(got == big.splitlines(), "kcat reads the gzip lines back exactly, in order")

    r = sluice(bootstrap, "produce", "-t", "nope", input="a\n")
    check(r.returncode == 4 and "topic 'nope' does not exist" in r.stderr,
          "produce to an unknown topic exits 4 (and does not create it)", r.stderr)
    r = sluice(bootstrap, "produce", "-t", "gz", "-p", "5", input="a\n")
    check(r.returncode == 1 and "no partition 5" in r.stderr, "produce -p to a missing partition "
          "exits 1", r.stderr)
    r = sluice(bootstrap, "produce", "-t", "keyed", "-k", "fixed", "--json", input="a\nb\nc\n")
    doc = json.loads(r.stdout)
    check(r.returncode == 0 and doc["records"] == 3 and doc["topic"] == "keyed",
          "produce --json prints a summary", r.stdout)
    # An empty line is an empty record; a last line without a newline still counts.
    sluice(bootstrap, "topics", "create", "edge", "-p", "1")
    r = sluice(bootstrap, "produce", "-t", "edge", input="a\n\nlast")
    got = kcat_all(bootstrap, "edge", "[%s]\\n")
    check(got == ["[a]", "[]", "[last]"], "empty lines and an unterminated last line", got)

    # Progress on a terminal (stderr a pty), a summary at the end.
    chunks = [big.encode()[:len(big) // 4], big.encode()[len(big) // 4:]]
    rc, _, shown = run_with_tty_stderr(bootstrap, ["produce", "-t", "gz", "--batch-size", "1KiB"],
                                       input_bytes=chunks, pause=0.5)
    check(rc == 0 and "records sent" in shown and "records/s" in shown
          and "20000 records in" in shown,
          "produce shows progress and a summary on a terminal", shown[-300:])
    rc, _, shown = run_with_tty_stderr(bootstrap, ["produce", "-q", "-t", "gz"],
                                       input_bytes=b"x\n")
    check(rc == 0 and shown == "", "-q keeps the terminal quiet", shown)


def test_produce_collector_dies(srv, tmp):
    """The collector is killed while lines are still coming: exit 3, with what was acked."""
    bootstrap = srv.bootstrap
    sluice(bootstrap, "topics", "create", "dying", "-p", "1")
    p = subprocess.Popen([SLUICE, "produce", "-t", "dying",
                          "--batch-size", "1KiB"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=dict(os.environ, SLUICE_BOOTSTRAP=bootstrap))
    for i in range(2000):
        p.stdin.write(f"before {i:05d} {'y' * 50}\n".encode())
    p.stdin.flush()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = sluice(bootstrap, "--json", "topics", "describe", "dying")
        if r.returncode == 0 and json.loads(r.stdout)[0]["partitions"][0]["end"] > 0:
            break
        time.sleep(0.1)
    srv.kill()
    try:
        for i in range(2000):
            p.stdin.write(f"after {i:05d} {'y' * 50}\n".encode())
        p.stdin.close()
    except BrokenPipeError:
        pass
    out, err = p.communicate(timeout=120)
    err = err.decode()
    check(p.returncode == 3 and "records acknowledged" in err,
          "produce exits 3 when the collector dies, saying how many were acknowledged", err)
    srv.start()


def main():
    need_binaries()
    with tempfile.TemporaryDirectory(prefix="sl-cli-topics-") as tmp:
        data = os.path.join(tmp, "data")
        srv = Server(data, "--fsync", "always", "--set", "default_partitions=2",
                     "--conf", "topics.logs.retention=2h").start()
        try:
            test_help_and_usage(srv.bootstrap)
            test_man_page(srv.bootstrap)
            test_unreachable()
            test_topics(srv.bootstrap, data)
            test_produce(srv.bootstrap, data)
            test_produce_collector_dies(srv, tmp)
        finally:
            srv.stop()
    finish("integ.cli_topics")


if __name__ == "__main__":
    main()
