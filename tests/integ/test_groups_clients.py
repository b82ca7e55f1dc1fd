#!/usr/bin/python3
"""Consumer groups with kafka-python's KafkaConsumer and confluent-kafka's Consumer against the
real collector: join, consume, commit, close; a new consumer of the same group resumes at the
committed offset; committed offsets survive a collector SIGKILL and restart; ListGroups,
DescribeGroups and OffsetFetch (kafka-python's admin client) and /metrics show the groups and
their lag; deleting the topic removes its committed offsets."""
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafkasrv import Server  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition as CTP  # noqa: E402
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402
from kafka.structs import OffsetAndMetadata  # noqa: E402

FAILS = []
TOPIC = "events"
N = 3000


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def kp_consumer(srv, group, **kw):
    return KafkaConsumer(TOPIC, bootstrap_servers=srv.bootstrap, group_id=group,
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         session_timeout_ms=6000, heartbeat_interval_ms=1000,
                         consumer_timeout_ms=20000, api_version=(2, 0, 0), **kw)


def ck_consumer(srv, group):
    c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
    c.subscribe([TOPIC])
    return c


def kp_take(consumer, n):
    """Up to n records from a kafka-python consumer."""
    out = []
    for msg in consumer:
        out.append(msg)
        if len(out) >= n:
            break
    return out


def ck_take(consumer, n, timeout=60):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        out.append(msg)
    return out


def committed_all(srv, group, metadata=False):
    """OffsetFetch of every partition the group committed: {partition: offset (, metadata)}."""
    admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap, client_id="check")
    try:
        offs = admin.list_consumer_group_offsets(group)
        return {tp.partition: (om.offset, om.metadata) if metadata else om.offset
                for tp, om in offs.items() if tp.topic == TOPIC}
    finally:
        admin.close()


def main():
    tmp = tempfile.mkdtemp(prefix="sl-groups-clients-")
    srv = Server(os.path.join(tmp, "data"), "--conf", "groups.initial_rebalance_delay=0s").start()
    try:
        admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap, client_id="setup")
        admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1)])
        admin.close()
        p = Producer({"bootstrap.servers": srv.bootstrap, "acks": "all"})
        for i in range(N):
            p.produce(TOPIC, value=f"v{i}".encode(), partition=i % 2)
        check(p.flush(30) == 0, f"{N} records produced")

        # kafka-python: consume 1000, commit, close; the next consumer resumes there.
        c = kp_consumer(srv, "kp")
        first = kp_take(c, 1000)
        check(len(first) == 1000, f"kafka-python group consumer read 1000 ({len(first)})")
        c.commit()
        pos = {tp.partition: c.committed(tp) for tp in c.assignment()}
        check(sum(pos.values()) == 1000, f"kafka-python committed positions {pos} (sum 1000)")
        c.close()
        c = kp_consumer(srv, "kp")
        rest = kp_take(c, N)
        seen = {m.value for m in first} | {m.value for m in rest}
        check(len(rest) == N - 1000 and len(seen) == N,
              f"a new kafka-python consumer resumed at the commit: {len(rest)} more, "
              f"{len(seen)} distinct")
        starts = {}
        for m in rest:
            starts.setdefault(m.partition, m.offset)
        check(starts == pos, f"it started exactly at the committed offsets {starts}")
        c.commit({TopicPartition(TOPIC, 0): OffsetAndMetadata(N // 2 - 100, "kp-meta"),
                  TopicPartition(TOPIC, 1): OffsetAndMetadata(N // 2, "")})
        c.close()

        # confluent-kafka: the same, a second group on the same topic.
        c = ck_consumer(srv, "ck")
        first = ck_take(c, 1200)
        check(len(first) == 1200, f"confluent-kafka subscribe() consumer read 1200 ({len(first)})")
        c.commit(asynchronous=False)
        # A partition it read nothing from has no commit (librdkafka's -1001, "invalid").
        cpos = {tp.partition: tp.offset for tp in c.committed([CTP(TOPIC, 0), CTP(TOPIC, 1)])
                if tp.offset >= 0}
        check(sum(cpos.values()) == 1200, f"confluent-kafka committed {cpos}")
        c.close()
        c = ck_consumer(srv, "ck")
        rest = ck_take(c, N - 1200)
        seen = {m.value() for m in first} | {m.value() for m in rest}
        check(len(rest) == N - 1200 and len(seen) == N,
              f"a new confluent-kafka consumer resumed: {len(rest)} more, {len(seen)} distinct")
        time.sleep(0.5)
        extra = ck_take(c, 1, timeout=2)
        check(not extra, "and read nothing twice")
        c.commit(asynchronous=False)

        # While ck has a member: ListGroups, DescribeGroups, OffsetFetch, metrics.
        admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap, client_id="inspect")
        groups = dict(admin.list_consumer_groups())
        check("kp" in groups and "ck" in groups and groups["ck"] == "consumer",
              f"ListGroups shows both groups: {groups}")
        d = admin.describe_consumer_groups(["ck", "kp", "nosuch"])
        by = {g.group: g for g in d}
        ck_members = by["ck"].members
        check(by["ck"].state == "Stable" and len(ck_members) == 1 and
              sorted(ck_members[0].member_assignment.assignment[0][1]) == [0, 1],
              f"DescribeGroups ck: {by['ck'].state}, {len(ck_members)} member owning [0, 1]")
        check(by["kp"].state == "Empty" and not by["kp"].members,
              f"DescribeGroups kp: {by['kp'].state} without members")
        check(by["nosuch"].state == "Dead", "DescribeGroups of an unknown group: Dead")
        admin.close()
        kp_before = committed_all(srv, "kp")
        check(kp_before.get(0) == N // 2 - 100 and kp_before.get(1) == N // 2,
              f"OffsetFetch kp: {kp_before}")
        check(committed_all(srv, "never-seen") == {},
              "OffsetFetch of an unknown group has no offsets")
        nobody = KafkaConsumer(bootstrap_servers=srv.bootstrap, group_id="nobody",
                               api_version=(2, 0, 0))
        check(nobody.committed(TopicPartition(TOPIC, 0)) is None,
              "OffsetFetch of an unknown group's partition answers -1 (kafka-python: None)")
        nobody.close()
        text = srv.scrape()
        lag0 = re.search(r'sluice_group_lag\{group="kp",topic="events",partition="0"\} (\S+)', text)
        check(lag0 is not None and float(lag0.group(1)) == 100,
              f"/metrics shows kp's lag on partition 0: {lag0.group(1) if lag0 else None}")
        members = re.search(r'sluice_group_members\{group="ck"\} (\S+)', text)
        check(members is not None and float(members.group(1)) == 1,
              "/metrics shows ck's member count")
        c.close()

        # SIGKILL the collector: every acknowledged commit is still there after the restart.
        srv.kill()
        srv.start()
        check(committed_all(srv, "kp") == kp_before,
              f"after SIGKILL and restart kp's offsets are intact: {committed_all(srv, 'kp')}")
        with_meta = committed_all(srv, "kp", metadata=True)
        check(with_meta.get(0) == (N // 2 - 100, "kp-meta"),
              f"the commit's metadata survived: {with_meta.get(0)}")
        c = kp_consumer(srv, "kp")
        again = kp_take(c, 1)
        check(len(again) == 1 and again[0].partition == 0 and again[0].offset == N // 2 - 100
              or len(again) == 1 and again[0].partition == 1 and again[0].offset == N // 2,
              "a consumer after the restart resumes at the committed offsets")
        c.close()
        ck_after = committed_all(srv, "ck")
        check(sum(ck_after.values()) == N, f"ck's offsets survived too: {ck_after}")

        # Deleting the topic removes its committed offsets from every group.
        admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap, client_id="cleanup")
        admin.delete_topics([TOPIC])
        admin.close()
        check(committed_all(srv, "kp") == {} and committed_all(srv, "ck") == {},
              "deleting the topic removed its committed offsets")
    finally:
        rc = srv.stop()
        check(rc == 0, f"collector stopped cleanly (exit {rc})")
    if FAILS:
        print(f"{len(FAILS)} check(s) failed; logs in {tmp}")
        sys.exit(1)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
