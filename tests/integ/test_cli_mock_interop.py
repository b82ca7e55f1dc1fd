#!/usr/bin/python3
"""`sluice consume -g` with other members, on librdkafka's mock cluster (3 brokers,
sl-test-kafka_mock): two sluice members with the roundrobin assignor, and kcat (librdkafka's
balanced consumer) sharing a group with sluice, once with sluice as the leader (librdkafka
decodes our assignment) and once as a follower (we decode librdkafka's)."""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agent_helpers import Mock  # noqa: E402
from cli_helpers import KCAT, Background, check, finish, need_binaries, sluice  # noqa: E402
from test_cli_mock import assigned_count, keyed_lines, wait_for  # noqa: E402


def test_roundrobin(bootstrap, mock, tmp):
    mock.cmd("topic rr 6")
    opts = ["--log-level", "info", "consume", "-t", "rr", "-g", "grr", "-f", "--assignor",
            "roundrobin", "--session-timeout", "3s"]
    a = Background(bootstrap, tmp, "rr-a", *opts)
    b = Background(bootstrap, tmp, "rr-b", *opts)
    ok = wait_for(lambda: "3 partitions" in a.stderr() and "3 partitions" in b.stderr())
    last = [s.strip().splitlines()[-1] for s in (a.stderr(), b.stderr()) if s.strip()]
    parts = sorted(line.split("[")[-1].split("]")[0] for line in last)
    check(ok and parts == ["0,2,4", "1,3,5"],
          "roundrobin deals the 6 partitions alternately to the two members", last)
    sluice(bootstrap, "produce", "-t", "rr", "-K", "\t", input=keyed_lines("rr", 300))
    done = wait_for(lambda: len(a.lines()) + len(b.lines()) >= 300)
    rca, rcb = a.stop(), b.stop()
    check(done and rca == 0 and rcb == 0 and a.lines() and b.lines() and
          sorted(a.lines() + b.lines()) == sorted(f"rr {i:05d}" for i in range(300)),
          f"the two roundrobin members print the 300 records once ({len(a.lines())} + "
          f"{len(b.lines())})")


def test_librdkafka_member(bootstrap, mock, tmp, sluice_first):
    """kcat (librdkafka's balanced consumer) and sluice in one group, either one the leader:
    each decodes the other's assignment, and together they print every record once."""
    topic = "mixa" if sluice_first else "mixb"
    group = "mixed-" + topic
    mock.cmd(f"topic {topic} 6")
    procs = []
    sl = ["--log-level", "info", "consume", "-t", topic, "-g", group, "-f", "--session-timeout",
          "6s"]
    # -u: unbuffered, so the test sees kcat's lines as they come; earliest: records produced
    # before kcat looked up its start are still its.
    kc = ["-b", bootstrap, "-G", group, "-X", "session.timeout.ms=6000", "-X",
          "heartbeat.interval.ms=500", "-X", "auto.offset.reset=earliest", "-u", "-f", "%s\\n",
          "-q", topic]
    if sluice_first:
        # The mock completes a generation as soon as the leader's SyncGroup arrives and then
        # refuses a follower's later one (INVALID_REQUEST; a real broker answers it). Slow
        # answers give the follower (kcat) time to sync before our leader, which first asks
        # for metadata.
        mock.cmd("rtt -1 300")
    for first in ((True, False) if sluice_first else (False, True)):
        if first:
            procs.append(("sluice", Background(bootstrap, tmp, group + "-s", *sl)))
        else:
            out = open(os.path.join(tmp, group + "-k.out"), "wb")
            procs.append(("kcat", subprocess.Popen([KCAT, *kc], stdout=out,
                                                   stderr=subprocess.DEVNULL)))
        time.sleep(1)
    bg = dict(procs)["sluice"]
    ok = wait_for(lambda: assigned_count(bg) >= 1, timeout=40)
    line = bg.stderr().strip().splitlines()[-1] if ok else bg.stderr()
    check(ok and "3 partitions" in line and ("(leader)" in line) == sluice_first,
          f"sluice {'leads' if sluice_first else 'follows'} a group with kcat: 3 partitions "
          "each", line)
    mock.cmd("rtt -1 0")
    sluice(bootstrap, "produce", "-t", topic, "-K", "\t", input=keyed_lines(topic, 300))

    def kcat_lines():
        with open(os.path.join(tmp, group + "-k.out"), "rb") as f:
            return f.read().decode().splitlines()

    done = wait_for(lambda: len(bg.lines()) + len(kcat_lines()) >= 300, timeout=40)
    kp = dict(procs)["kcat"]
    kp.terminate()
    kp.wait(30)
    rc = bg.stop()
    both = bg.lines() + kcat_lines()
    check(done and rc == 0 and sorted(both) == sorted(f"{topic} {i:05d}" for i in range(300))
          and bg.lines() and kcat_lines(),
          f"kcat and sluice print the 300 records once between them ({len(bg.lines())} + "
          f"{len(kcat_lines())})")


def main():
    need_binaries()
    mock = Mock(brokers=3)
    try:
        with tempfile.TemporaryDirectory(prefix="sl-cli-interop-") as tmp:
            test_roundrobin(mock.bootstrap, mock, tmp)
            test_librdkafka_member(mock.bootstrap, mock, tmp, True)
            test_librdkafka_member(mock.bootstrap, mock, tmp, False)
    finally:
        mock.close()
    finish("integ.cli_mock_interop")


if __name__ == "__main__":
    main()
