#!/usr/bin/python3
"""Consumer groups with kcat -G (librdkafka's balanced consumer) against the real collector:
three members share a 6-partition topic (each partition owned by exactly one member, 60,000
records each consumed exactly once), a second group on the same topic gets every record too,
and a member killed with SIGKILL loses its partitions to the others after its session timeout
with nothing lost."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafkasrv import Server  # noqa: E402

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from kafka import KafkaAdminClient  # noqa: E402

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
FAILS = []
TOPIC = "shared"
PARTS = 6


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def produce(srv, start, n):
    p = Producer({"bootstrap.servers": srv.bootstrap, "acks": "all", "linger.ms": 20})
    for i in range(start, start + n):
        p.produce(TOPIC, value=f"rec-{i:07d}".encode(), partition=i % PARTS)
        if i % 10000 == 0:
            p.poll(0)
    left = p.flush(60)
    check(left == 0, f"produced records {start}..{start + n - 1} acknowledged")


class Member:
    """One kcat -G process writing 'partition offset value' lines to a file."""

    def __init__(self, srv, group, name, tmp):
        self.out_path = os.path.join(tmp, f"{group}-{name}.out")
        self.err_path = os.path.join(tmp, f"{group}-{name}.err")
        self.out = open(self.out_path, "w")
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(
            [KCAT, "-b", srv.bootstrap, "-G", group, "-f", "%p %o %s\\n", "-u",
             "-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000",
             "-X", "heartbeat.interval.ms=500", "-X", "auto.commit.interval.ms=500",
             "-X", f"client.id={group}-{name}", TOPIC],
            stdout=self.out, stderr=self.err)

    def records(self):
        recs = []
        with open(self.out_path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and line.endswith("\n"):
                    recs.append((int(parts[0]), int(parts[1]), parts[2]))
        return recs

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        self.err.close()


def wait_values(members, want, timeout):
    """Waits until the members together consumed every value in want; returns their records."""
    deadline = time.monotonic() + timeout
    while True:
        recs = [r for m in members for r in m.records()]
        if want <= {v for _, _, v in recs} or time.monotonic() > deadline:
            return recs
        time.sleep(0.3)


def describe(srv, group):
    admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap, client_id="describe")
    try:
        return admin.describe_consumer_groups([group])[0]
    finally:
        admin.close()


def assignment_of(desc):
    """{member_id: [partitions of TOPIC]} from DescribeGroups (kafka-python decodes it)."""
    out = {}
    for m in desc.members:
        parts = []
        for topic, ps in m.member_assignment.assignment:
            if topic == TOPIC:
                parts += ps
        out[m.member_id] = sorted(parts)
    return out


def wait_stable(srv, group, nmembers, timeout=40):
    deadline = time.monotonic() + timeout
    desc = None
    while time.monotonic() < deadline:
        desc = describe(srv, group)
        if desc.state == "Stable" and len(desc.members) == nmembers:
            return desc
        time.sleep(0.5)
    return desc


def main():
    check(KCAT is not None, "kcat is installed")
    tmp = tempfile.mkdtemp(prefix="sl-groups-kcat-")
    srv = Server(os.path.join(tmp, "data"), "--conf", "groups.initial_rebalance_delay=2s").start()
    members = []
    try:
        admin = AdminClient({"bootstrap.servers": srv.bootstrap})
        fs = admin.create_topics([NewTopic(TOPIC, num_partitions=PARTS, replication_factor=1)])
        fs[TOPIC].result(30)
        produce(srv, 0, 60_000)
        want = {f"rec-{i:07d}" for i in range(60_000)}

        members = [Member(srv, "g1", f"m{i}", tmp) for i in range(3)]
        other = Member(srv, "g2", "solo", tmp)
        recs = wait_values(members, want, 120)
        values = [v for _, _, v in recs]
        check(len(values) == 60_000 and set(values) == want,
              f"3 members consumed each of the 60,000 records exactly once (got {len(values)}, "
              f"{len(set(values))} distinct)")
        owners = {}
        for i, m in enumerate(members):
            for p, _, _ in m.records():
                owners.setdefault(p, set()).add(i)
        check(sorted(owners) == list(range(PARTS)) and all(len(o) == 1 for o in owners.values()),
              f"every partition was read by exactly one member: {owners}")
        desc = wait_stable(srv, "g1", 3)
        asg = assignment_of(desc)
        flat = sorted(p for ps in asg.values() for p in ps)
        check(desc.state == "Stable" and len(asg) == 3 and flat == list(range(PARTS)) and
              all(len(ps) == 2 for ps in asg.values()),
              f"DescribeGroups: Stable, 3 members with 2 partitions each: {asg}")
        check(desc.protocol_type == "consumer" and desc.protocol in ("range", "roundrobin"),
              f"protocol type consumer, protocol {desc.protocol}")

        orecs = wait_values([other], want, 120)
        ovals = [v for _, _, v in orecs]
        check(set(ovals) == want and len(ovals) == 60_000,
              f"a second group on the same topic received every record ({len(ovals)})")

        # SIGKILL one member: after its session timeout its partitions move to the others.
        victim = members[0]
        victim_parts = {p for p, _, _ in victim.records()}
        victim.stop(signal.SIGKILL)
        t0 = time.monotonic()
        produce(srv, 60_000, 6_000)
        want2 = want | {f"rec-{i:07d}" for i in range(60_000, 66_000)}
        recs = wait_values(members, want2, 90)
        got = {v for _, _, v in recs}
        check(want2 <= got, f"after the SIGKILL nothing was lost: {len(want2 - got)} missing")
        desc = wait_stable(srv, "g1", 2)
        asg = assignment_of(desc)
        flat = sorted(p for ps in asg.values() for p in ps)
        check(desc.state == "Stable" and len(asg) == 2 and flat == list(range(PARTS)),
              f"the 2 survivors own all 6 partitions ({asg}) "
              f"{time.monotonic() - t0:.1f} s after the kill")
        moved = set()
        for m in members[1:]:
            moved |= {p for p, _, v in m.records() if v >= "rec-0060000"}
        check(victim_parts <= moved,
              f"the killed member's partitions {sorted(victim_parts)} were read by the others")
        log = srv.log()
        check("session timed out" in log or "sent nothing for" in log,
              "the collector logged the session expiry")
    finally:
        for m in members[1:]:
            m.stop()
        if members:
            members[0].stop(signal.SIGKILL)
        if "other" in locals():
            other.stop()
        rc = srv.stop()
        check(rc == 0, f"collector stopped cleanly (exit {rc})")
    if FAILS:
        print(f"{len(FAILS)} check(s) failed; logs in {tmp}")
        sys.exit(1)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
