#!/usr/bin/python3
"""`sluice` against librdkafka's mock Kafka cluster (3 brokers, sl-test-kafka_mock): a second,
independent implementation of the protocol, with partitions spread over brokers and a real
group coordinator. Checks the multi-broker fetch loop, a leader moving mid-follow, and
`consume -g`: JoinGroup (with librdkafka's assignment of member ids), SyncGroup with our range
and roundrobin assignments, heartbeats that notice a rebalance, commits after printing,
LeaveGroup, and resuming from the committed offsets; no record printed twice or lost.
(test_cli_mock_interop.py: the roundrobin assignor, and kcat in a group with sluice.)"""
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agent_helpers import Mock  # noqa: E402
from cli_helpers import Background, check, finish, need_binaries, sluice  # noqa: E402

from kafka.partitioner.default import murmur2  # noqa: E402

GROUP_OPTS = ["--session-timeout", "3s"]
LOG = ["--log-level", "info"]  # the group assignment lines on stderr


def keyed_lines(prefix, n):
    return "".join(f"{prefix}-{i % 60}\t{prefix} {i:05d}\n" for i in range(n))


def wait_for(cond, timeout=40):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_brokers(bootstrap, mock, tmp):
    r = sluice(bootstrap, "--json", "topics", "describe", "m")
    parts = json.loads(r.stdout)[0]["partitions"] if r.returncode == 0 else []
    leaders = {p["leader"] for p in parts}
    check(len(parts) == 6 and len(leaders) >= 2,
          f"topics describe: 6 partitions led by {len(leaders)} brokers", r.stdout)
    # The mock, like an old Kafka, serves neither DescribeLogDirs nor DescribeConfigs: said once
    # each on stderr, the rest shown.
    check(r.returncode == 0 and all(p["size"] is None for p in parts)
          and json.loads(r.stdout)[0]["configs"] is None
          and r.stderr.count("does not support DescribeLogDirs") == 1
          and r.stderr.count("does not support DescribeConfigs") == 1,
          "topics describe against a broker without the admin APIs says so", r.stderr)
    r = sluice(bootstrap, "produce", "-t", "m", "-K", "\t", input=keyed_lines("a", 600))
    check(r.returncode == 0, "produce 600 keyed records across 3 brokers", r.stderr)
    r = sluice(bootstrap, "consume", "-t", "m", "--format", "json")
    docs = [json.loads(l) for l in r.stdout.splitlines()]
    check(r.returncode == 0 and sorted(d["value"] for d in docs) ==
          sorted(f"a {i:05d}" for i in range(600)),
          f"consume reads all 600 from the 3 brokers ({len(docs)})", r.stderr)
    wrong = [d for d in docs if d["partition"] != (murmur2(d["key"].encode()) & 0x7fffffff) % 6]
    check(not wrong, "each key in its murmur2 partition", wrong[:3])

    # A partition's leader moves while following: the fetcher finds the new one.
    bg = Background(bootstrap, tmp, "follow", "consume", "-t", "m", "-f", "--offset", "end")
    time.sleep(1)
    old = next(p["leader"] for p in parts if p["partition"] == 0)
    mock.cmd(f"leader m 0 {1 + old % 3}")
    r = sluice(bootstrap, "produce", "-t", "m", "-p", "0", input="".join(
        f"moved {i}\n" for i in range(20)))
    got = bg.wait_lines(20, timeout=30)
    rc = bg.stop()
    check(r.returncode == 0 and got == [f"moved {i}" for i in range(20)] and rc == 0,
          "consume -f follows partition 0 to its new leader", (r.stderr, got[-3:],
                                                                bg.stderr()[-500:]))


def total_records(bootstrap):
    r = sluice(bootstrap, "--json", "topics", "describe", "m")
    return sum(p["records"] for p in json.loads(r.stdout)[0]["partitions"])


def assigned_count(bg):
    return bg.stderr().count("assigned [")


def test_group(bootstrap, tmp, group, assignor):
    opts = GROUP_OPTS + ["--assignor", assignor]
    old = total_records(bootstrap)
    a = Background(bootstrap, tmp, f"{group}-a", *LOG, "consume", "-t", "m", "-g", group, "-f",
                   *opts)
    got = a.wait_lines(old, timeout=40)
    check(len(got) == old, f"[{assignor}] a lone member gets every partition and prints all "
          f"{old} records ({len(got)})", a.stderr()[-800:])
    b = Background(bootstrap, tmp, f"{group}-b", *LOG, "consume", "-t", "m", "-g", group, "-f",
                   *opts)
    ok = wait_for(lambda: assigned_count(b) >= 1 and assigned_count(a) >= 2)
    check(ok, f"[{assignor}] a second member joins; the first one notices the rebalance and "
          "rejoins", (a.stderr()[-600:], b.stderr()[-600:]))
    b_parts = b.stderr().strip().splitlines()[-1]
    check("3 partitions" in b_parts, f"[{assignor}] 6 partitions split 3 and 3", b_parts)
    # Records from the first run were committed by a: b prints none of them.
    r = sluice(bootstrap, "produce", "-t", "m", "-K", "\t", input=keyed_lines(group, 600))
    ok = wait_for(lambda: len(a.lines()) + len(b.lines()) >= old + 600)
    new_a = a.lines()[old:]
    new_b = b.lines()
    check(ok and sorted(new_a + new_b) == sorted(f"{group} {i:05d}" for i in range(600))
          and new_a and new_b,
          f"[{assignor}] the 600 new records are split between the members, none twice "
          f"({len(new_a)} + {len(new_b)})")
    rca, rcb = a.stop(), b.stop()
    check(rca == 0 and rcb == 0, f"[{assignor}] members leave on Ctrl-C with exit 0",
          (a.stderr()[-400:], b.stderr()[-400:]))

    # Everything printed was committed: a new member starts where they left off.
    r = sluice(bootstrap, "consume", "-t", "m", "-g", group, *opts, timeout=60)
    check(r.returncode == 0 and r.stdout == "",
          f"[{assignor}] a later member finds nothing left (all committed)", r.stderr[-500:])
    sluice(bootstrap, "produce", "-t", "m", "-K", "\t", input=keyed_lines(group + "x", 10))
    r = sluice(bootstrap, "consume", "-t", "m", "-g", group, *opts, timeout=60)
    check(sorted(r.stdout.splitlines()) == sorted(f"{group}x {i:05d}" for i in range(10)),
          f"[{assignor}] and then exactly the 10 records produced since", r.stdout[-300:])
    r = sluice(bootstrap, "consume", "-t", "m", "-g", group, "-n", "1", *opts, timeout=60)
    check(r.returncode == 0 and r.stdout == "", f"[{assignor}] -n with nothing new exits 0")


def test_rebalance_error(bootstrap, mock, tmp):
    """The coordinator answers a heartbeat with REBALANCE_IN_PROGRESS: commit, rejoin, go on."""
    bg = Background(bootstrap, tmp, "reb", *LOG, "consume", "-t", "m", "-g", "reb", "-f",
                    *GROUP_OPTS)
    total = total_records(bootstrap)
    bg.wait_lines(total, timeout=40)
    mock.cmd("errors 12 27")  # Heartbeat: REBALANCE_IN_PROGRESS
    ok = wait_for(lambda: assigned_count(bg) >= 2, timeout=30)
    check(ok, "a heartbeat answered REBALANCE_IN_PROGRESS makes the member join again",
          bg.stderr()[-600:])
    sluice(bootstrap, "produce", "-t", "m", "-K", "\t", input=keyed_lines("after", 30))
    got = bg.wait_lines(total + 30, timeout=30)
    rc = bg.stop()
    check(len(got) == total + 30 and len(set(got)) == len(got) and rc == 0,
          f"no record lost or repeated across the rejoin ({len(got)} of {total + 30})")


def main():
    need_binaries()
    mock = Mock(brokers=3)
    try:
        mock.cmd("topic m 6")
        with tempfile.TemporaryDirectory(prefix="sl-cli-mock-") as tmp:
            test_brokers(mock.bootstrap, mock, tmp)
            test_group(mock.bootstrap, tmp, "grange", "range")
            test_rebalance_error(mock.bootstrap, mock, tmp)
    finally:
        mock.close()
    finish("integ.cli_mock")


if __name__ == "__main__":
    main()
