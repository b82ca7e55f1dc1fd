#!/usr/bin/python3
"""Consumer groups through `sluice` against the real sluice-collector: consume -g (commits what
it printed, resumes there, two members split the partitions), groups list / describe (state,
members, assignment, committed offsets, lag; tables and --json), reset-offsets (--to-earliest,
--to-latest, --to-time, --dry-run, refused while members are active), an unknown group (exit
4), and a kafka-python consumer sharing a group with sluice.

Needs the collector's group coordinator (FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups): it fails at once, naming
them, when the collector does not advertise one of them."""
import json
import os
import socket
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_helpers import Background, check, finish, need_binaries, sluice  # noqa: E402
from kafkasrv import Server  # noqa: E402

from kafka import KafkaConsumer, KafkaProducer  # noqa: E402

GROUP_APIS = {8: "OffsetCommit", 9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup",
              12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups",
              16: "ListGroups"}
BASE_TS = 1_790_000_000_000
OPTS = ["--session-timeout", "6s"]


def api_keys(port):
    """The API keys the broker lists in its ApiVersions v0 answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        body = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
        s.sendall(struct.pack(">i", len(body)) + body)
        head = b""
        while len(head) < 4:
            head += s.recv(4 - len(head))
        n = struct.unpack(">i", head)[0]
        data = b""
        while len(data) < n:
            data += s.recv(n - len(data))
    count = struct.unpack(">i", data[6:10])[0]
    return {struct.unpack(">h", data[10 + 6 * i:12 + 6 * i])[0] for i in range(count)}


def describe(bootstrap, group):
    r = sluice(bootstrap, "--json", "groups", "describe", group)
    return r.returncode, (json.loads(r.stdout) if r.returncode == 0 else None), r.stderr


def wait_for(cond, timeout=40):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_commit_and_describe(bootstrap, tmp):
    r = sluice(bootstrap, "consume", "-t", "g", "-g", "g1", "-n", "100", *OPTS)
    check(r.returncode == 0 and len(r.stdout.splitlines()) == 100,
          "consume -g g1 -n 100 prints 100 records", r.stderr)
    first = r.stdout.splitlines()

    r = sluice(bootstrap, "groups", "list")
    rows = [l.split() for l in r.stdout.splitlines()]
    check(r.returncode == 0 and rows[0] == ["GROUP", "STATE", "PROTOCOL", "MEMBERS"]
          and any(row[0] == "g1" and row[-1] == "0" for row in rows[1:]),
          "groups list: g1 with no member left", r.stdout)
    r = sluice(bootstrap, "--json", "groups", "list")
    doc = json.loads(r.stdout) if r.returncode == 0 else []
    g1 = [g for g in doc if g["group"] == "g1"]
    check(len(g1) == 1 and g1[0]["protocol_type"] == "consumer" and g1[0]["members"] == 0,
          "groups list --json", r.stdout)

    rc, d, err = describe(bootstrap, "g1")
    committed = sum(o["committed"] or 0 for o in d["offsets"]) if d else -1
    check(rc == 0 and d["state"] == "Empty" and d["members"] == [] and committed == 100
          and d["lag"] == 300 and all(o["end"] == 100 for o in d["offsets"]),
          "groups describe --json: committed offsets add up to the 100 printed, lag 300",
          d or err)
    r = sluice(bootstrap, "groups", "describe", "g1")
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and lines[0].startswith("group g1: Empty, 0 members")
          and "total lag 300" in lines[0]
          and lines[2].split() == ["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER",
                                   "CLIENT", "HOST"] and len(lines) == 3 + 4,
          "groups describe: a summary line and a row per partition", r.stdout)

    # Resuming: two members print the other 300, none twice, none of the first 100.
    a = Background(bootstrap, tmp, "g1-a", "--log-level", "info", "consume", "-t", "g", "-g",
                   "g1", "-f", *OPTS)
    b = Background(bootstrap, tmp, "g1-b", "--log-level", "info", "consume", "-t", "g", "-g",
                   "g1", "-f", *OPTS)
    ok = wait_for(lambda: len(a.lines()) + len(b.lines()) >= 300)
    rest = a.lines() + b.lines()
    check(ok and len(rest) == 300 and not set(rest) & set(first)
          and sorted(rest + first) == sorted(f"v {i:04d}" for i in range(400)),
          f"two members resume after the commits and split the rest ({len(a.lines())} + "
          f"{len(b.lines())})", (a.stderr()[-500:], b.stderr()[-500:]))
    wait_for(lambda: "2 partitions" in a.stderr() and "2 partitions" in b.stderr())
    rc, d, err = describe(bootstrap, "g1")
    owners = {o["member_id"] for o in d["offsets"]} if d else set()
    check(rc == 0 and d["state"] == "Stable" and len(d["members"]) == 2 and len(owners) == 2
          and None not in owners and all(len(m["assignment"]) == 2 for m in d["members"])
          and d["lag"] == 0, "describe while running: Stable, 2 members with 2 partitions each, "
          "lag 0", d or err)
    r = sluice(bootstrap, "groups", "reset-offsets", "g1", "-t", "g", "--to-earliest")
    check(r.returncode == 1 and "active member" in r.stderr,
          "reset-offsets is refused while the group has members", r.stderr)
    check(a.stop() == 0 and b.stop() == 0, "both members leave with exit 0")
    rc, d, err = describe(bootstrap, "g1")
    check(rc == 0 and d["state"] == "Empty" and d["lag"] == 0, "after they left: Empty, lag 0",
          d or err)


def test_reset(bootstrap):
    r = sluice(bootstrap, "groups", "reset-offsets", "g1", "-t", "g", "--to-earliest",
               "--dry-run")
    rows = [l.split() for l in r.stdout.splitlines()]
    check(r.returncode == 0 and rows[0] == ["TOPIC", "PARTITION", "OLD", "NEW"]
          and all(row[2] == "100" and row[3] == "0" for row in rows[1:5])
          and "dry run" in r.stdout, "reset-offsets --dry-run shows old and new", r.stdout)
    rc, d, _ = describe(bootstrap, "g1")
    check(d and d["lag"] == 0, "--dry-run commits nothing")
    r = sluice(bootstrap, "--json", "groups", "reset-offsets", "g1", "-t", "g", "--to-earliest")
    doc = json.loads(r.stdout) if r.returncode == 0 else {}
    check(r.returncode == 0 and not doc["dry_run"] and
          all(o["new"] == 0 and o["old"] == 100 for o in doc["offsets"]),
          "reset-offsets --to-earliest --json", r.stdout)
    r = sluice(bootstrap, "consume", "-t", "g", "-g", "g1", *OPTS)
    check(len(r.stdout.splitlines()) == 400, "after --to-earliest the group reads all 400 again")
    sluice(bootstrap, "groups", "reset-offsets", "g1", "-t", "g", "--to-earliest")
    r = sluice(bootstrap, "groups", "reset-offsets", "g1", "-t", "g", "-p", "2", "--to-latest")
    rc, d, _ = describe(bootstrap, "g1")
    check(r.returncode == 0 and d and {o["partition"]: o["committed"] for o in d["offsets"]}
          == {0: 0, 1: 0, 2: 100, 3: 0}, "reset-offsets -p 2 --to-latest moves one partition",
          d)
    r = sluice(bootstrap, "groups", "reset-offsets", "g1", "-t", "g", "--to-time",
               f"@{BASE_TS + 90_000}")
    r = sluice(bootstrap, "consume", "-t", "g", "-g", "g1", *OPTS)
    check(sorted(r.stdout.splitlines()) == sorted(
        f"v {p * 100 + i:04d}" for p in range(4) for i in range(90, 100)),
        "reset-offsets --to-time: from the first record at or after it", r.stdout[-200:])

    r = sluice(bootstrap, "groups", "describe", "nope")
    check(r.returncode == 4 and "group 'nope' does not exist" in r.stderr,
          "describe of an unknown group exits 4", r.stderr)
    r = sluice(bootstrap, "groups", "reset-offsets", "g1", "-t", "nope", "--to-latest")
    check(r.returncode == 4, "reset-offsets of an unknown topic exits 4", r.stderr)


def test_kafka_python_member(bootstrap, tmp):
    """kafka-python and sluice in one group: once both joined, new records are split."""
    sluice(bootstrap, "topics", "create", "mix", "-p", "4")
    got_py = []
    stop = threading.Event()

    def run():
        c = KafkaConsumer("mix", bootstrap_servers=bootstrap, group_id="mixed",
                          auto_offset_reset="earliest", enable_auto_commit=True,
                          auto_commit_interval_ms=200, session_timeout_ms=6000,
                          heartbeat_interval_ms=1000)
        while not stop.is_set():
            for recs in c.poll(timeout_ms=200).values():
                got_py.extend(r.value.decode() for r in recs)
        c.close()

    t = threading.Thread(target=run)
    t.start()
    bg = Background(bootstrap, tmp, "mixed", "consume", "-t", "mix", "-g", "mixed", "-f", *OPTS)

    def stable():
        rc, d, _ = describe(bootstrap, "mixed")
        return rc == 0 and d["state"] == "Stable" and len(d["members"]) == 2

    joined = wait_for(stable, timeout=60)
    rc, d, err = describe(bootstrap, "mixed")
    clients = sorted(m["client_id"] for m in d["members"]) if d else []
    check(joined and len(clients) == 2 and "sluice" in clients,
          "describe shows the kafka-python member and the sluice member", d or err)
    prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(400):
        prod.send("mix", key=f"k{i}".encode(), value=f"m {i:04d}".encode())
    prod.flush()
    prod.close()
    ok = wait_for(lambda: len(got_py) + len(bg.lines()) >= 400, timeout=60)
    stop.set()
    t.join(30)
    bg.stop()
    both = got_py + bg.lines()
    check(ok and sorted(both) == sorted(f"m {i:04d}" for i in range(400)),
          f"kafka-python and sluice together read the 400 once ({len(got_py)} + "
          f"{len(bg.lines())})")
    check(got_py and bg.lines(), "each member got a share of the partitions")


def main():
    need_binaries()
    with tempfile.TemporaryDirectory(prefix="sl-cli-groups-") as tmp:
        srv = Server(os.path.join(tmp, "data")).start()
        try:
            missing = [name for key, name in GROUP_APIS.items() if key not in api_keys(srv.port)]
            if missing:
                print("FAIL the collector does not serve " + ", ".join(missing))
                sys.exit(1)
            sluice(srv.bootstrap, "topics", "create", "g", "-p", "4")
            prod = KafkaProducer(bootstrap_servers=srv.bootstrap, acks="all")
            for p in range(4):
                for i in range(100):
                    prod.send("g", partition=p, value=f"v {p * 100 + i:04d}".encode(),
                              timestamp_ms=BASE_TS + i * 1000)
            prod.flush()
            prod.close()
            test_commit_and_describe(srv.bootstrap, tmp)
            test_reset(srv.bootstrap)
            test_kafka_python_member(srv.bootstrap, tmp)
        finally:
            srv.stop()
    finish("integ.cli_groups")


if __name__ == "__main__":
    main()
