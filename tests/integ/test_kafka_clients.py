#!/usr/bin/python3
"""Real Kafka clients against the collector's Kafka protocol server on 127.0.0.1: kcat (produce
100,000 lines plain and gzip, consume them back per partition in order, -o by offset and by
timestamp, -L), confluent-kafka (acks=all, idempotence, murmur2 keyed partitioning, assign from
the beginning), kafka-python (round trip, record format v2), and a SIGKILL restart."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafkasrv import Server  # noqa: E402

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def kcat(srv, *args, input_text=None, timeout=120):
    out = subprocess.run([KCAT, "-b", srv.bootstrap, *args], input=input_text,
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        print(out.stderr[-2000:])
    return out


def kcat_roundtrip(srv, topic, extra):
    lines = [f"line-{i:06d}-{'x' * (i % 50)}" for i in range(100_000)]
    # Idempotence keeps each partition in produce order even if a request is retried (a
    # plain producer with several requests in flight may reorder on retry, in Kafka too).
    out = kcat(srv, "-P", "-t", topic, "-X", "enable.idempotence=true", *extra,
               input_text="\n".join(lines) + "\n")
    produce_log = out.stderr
    check(out.returncode == 0, f"kcat -P {' '.join(extra)} 100,000 lines to {topic}")
    out = kcat(srv, "-C", "-t", topic, "-e", "-q", "-f", "%p %o %s\\n")
    got = [l.split(" ", 2) for l in out.stdout.splitlines()]
    check(len(got) == len(lines), f"kcat -C -e read {len(got)} of {len(lines)} lines of {topic}")
    check(sorted(g[2] for g in got) == lines, f"{topic}: exactly the lines produced")
    by_part = {}
    for p, o, s in got:
        by_part.setdefault(int(p), []).append((int(o), s))
    detail = []
    for p, v in sorted(by_part.items()):
        offs = [o for o, _ in v]
        if offs != list(range(len(v))):
            bad = next(i for i, o in enumerate(offs) if o != i)
            detail.append(f"partition {p}: offset {offs[bad]} at position {bad}")
        strs = [s for _, s in v]
        if strs != sorted(strs):
            bad = next(i for i in range(1, len(strs)) if strs[i] < strs[i - 1])
            detail.append(f"partition {p}: {strs[bad - 1]} before {strs[bad]} (offset {bad})")
    # Which of the 3 partitions get data is librdkafka's (sticky random) choice for null keys.
    check(not detail and 1 <= len(by_part) <= 3,
          f"{topic}: offsets 0..n-1 and lines in produce order in each partition used "
          f"({len(by_part)} of 3) {'; '.join(detail)}")
    if detail:
        print(produce_log[-3000:])
    return by_part


def test_kcat(srv):
    by_part = kcat_roundtrip(srv, "plain", [])
    kcat_roundtrip(srv, "gz", ["-z", "gzip"])
    out = kcat(srv, "-L")
    check('topic "plain" with 3 partitions' in out.stdout and 'topic "gz"' in out.stdout,
          "kcat -L lists the topics")
    # By offset, in the partition that got the most lines.
    big = max(by_part, key=lambda p: len(by_part[p]))
    out = kcat(srv, "-C", "-t", "plain", "-p", str(big), "-o", "1000", "-c", "5", "-e", "-q",
               "-f", "%o %s\\n")
    want = [f"{o} {s}" for o, s in by_part[big][1000:1005]]
    check(out.stdout.splitlines() == want, "kcat -o 1000 -c 5 reads offsets 1000..1004")
    # By timestamp: a first batch, a pause, a second batch; s@t starts at the second one.
    kcat(srv, "-P", "-t", "ts", "-p", "0", input_text="\n".join(f"a{i}" for i in range(50)) + "\n")
    time.sleep(1.2)
    t_mid = int(time.time() * 1000)
    time.sleep(0.2)
    kcat(srv, "-P", "-t", "ts", "-p", "0", input_text="\n".join(f"b{i}" for i in range(50)) + "\n")
    out = kcat(srv, "-C", "-t", "ts", "-p", "0", "-o", f"s@{t_mid}", "-e", "-q", "-f", "%o %s\\n")
    got = out.stdout.splitlines()
    check(got[:1] == ["50 b0"] and len(got) == 50, f"kcat -o s@{t_mid} starts at offset 50")
    out = kcat(srv, "-C", "-t", "ts", "-p", "0", "-o", f"s@{t_mid + 3600_000}", "-e", "-q")
    check(out.stdout == "", "kcat -o s@<future> reads nothing")


def murmur2_partition(key, n):
    from kafka.partitioner.default import murmur2
    return (murmur2(key) & 0x7fffffff) % n


def test_confluent(srv):
    import confluent_kafka as ck
    import confluent_kafka.admin  # noqa: F401
    admin = ck.admin.AdminClient({"bootstrap.servers": srv.bootstrap})
    fs = admin.create_topics([ck.admin.NewTopic("ck", 4, 1), ck.admin.NewTopic("ckidem", 4, 1)])
    for t, f in fs.items():
        f.result(timeout=10)
    for topic, idem in (("ck", False), ("ckidem", True)):
        conf = {"bootstrap.servers": srv.bootstrap, "acks": "all", "linger.ms": 5,
                "partitioner": "murmur2_random"}
        if idem:
            conf["enable.idempotence"] = True
        p = ck.Producer(conf)
        res = []
        for i in range(5000):
            key = f"host-{i % 37}".encode()
            p.produce(topic, key=key, value=f"{topic}-{i}".encode(),
                      on_delivery=lambda e, m: res.append((e, m.partition(), m.key(), m.offset())))
            if i % 1000 == 0:
                p.poll(0)
        p.flush(60)
        errors = [r for r in res if r[0] is not None]
        check(len(res) == 5000 and not errors,
              f"confluent-kafka {'idempotent' if idem else 'acks=all'}: 5000 delivered, "
              f"{len(errors)} errors")
        check(all(part == murmur2_partition(key, 4) for _, part, key, _ in res),
              f"{topic}: every keyed record in the partition murmur2 says")
        c = ck.Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "unused",
                         "enable.auto.commit": False})
        c.assign([ck.TopicPartition(topic, x, ck.OFFSET_BEGINNING) for x in range(4)])
        got = []
        deadline = time.monotonic() + 60
        while len(got) < 5000 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value().decode())
        c.close()
        check(sorted(got) == sorted(f"{topic}-{i}" for i in range(5000)),
              f"{topic}: assign() from the beginning reads all 5000 records once")
    fs = admin.delete_topics(["ckidem"])
    fs["ckidem"].result(timeout=10)
    md = admin.list_topics(timeout=10)
    check("ckidem" not in md.topics and "ck" in md.topics, "DeleteTopics removed ckidem only")


def test_kafka_python(srv):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    p = KafkaProducer(bootstrap_servers=srv.bootstrap, acks="all")
    check(p.config["api_version"] >= (0, 11), f"kafka-python detected {p.config['api_version']}")
    check(p._max_usable_produce_magic() == 2, "kafka-python picked record format v2")
    futs = [p.send("kp", key=b"k%d" % (i % 7), value=b"kp-%d" % i) for i in range(3000)]
    p.flush(60)
    mds = [f.get(10) for f in futs]
    p.close()
    check(len(mds) == 3000, "kafka-python producer: 3000 acknowledged")
    c = KafkaConsumer(bootstrap_servers=srv.bootstrap, group_id=None,
                      auto_offset_reset="earliest", consumer_timeout_ms=5000)
    parts = c.partitions_for_topic("kp")
    tps = [TopicPartition("kp", x) for x in parts]
    c.assign(tps)
    got = [m.value for m in c]
    ends = c.end_offsets(tps)
    c.close()
    check(sorted(got) == sorted(b"kp-%d" % i for i in range(3000)),
          "kafka-python consumer (no group) reads back every record")
    check(sum(ends.values()) == 3000, "ListOffsets latest adds up to 3000")

    # By timestamp: the answer names the first record at or after the time, with that
    # record's own timestamp (Kafka's OffsetAndTimestamp).
    p = KafkaProducer(bootstrap_servers=srv.bootstrap, acks="all")
    base = int(time.time() * 1000) - 100000
    for i in range(10):
        p.send("kpts", value=b"t%d" % i, partition=0, timestamp_ms=base + i * 1000)
        p.flush(10)  # one batch per record, then one batch of ten: both kinds are looked in
    for i in range(10, 20):
        p.send("kpts", value=b"t%d" % i, partition=0, timestamp_ms=base + i * 1000)
    p.flush(10)
    p.close()
    c = KafkaConsumer(bootstrap_servers=srv.bootstrap, group_id=None)
    tp = TopicPartition("kpts", 0)
    for asked, want_off in ((base + 3500, 4), (base + 5000, 5), (base + 14200, 15), (base, 0)):
        got = c.offsets_for_times({tp: asked})[tp]
        check(got is not None and got.offset == want_off and
              got.timestamp == base + want_off * 1000,
              f"offsets_for_times({asked - base:+d} ms): {got}")
    check(c.offsets_for_times({tp: base + 60000})[tp] is None,
          "offsets_for_times past the newest record: none")
    c.close()


def produce_ck(srv, topic, values):
    import confluent_kafka as ck
    p = ck.Producer({"bootstrap.servers": srv.bootstrap, "acks": "all"})
    acked = []
    for v in values:
        p.produce(topic, value=v.encode(), partition=0,
                  on_delivery=lambda e, m: e is None and acked.append((m.offset(), m.value())))
    p.flush(60)
    return acked


def test_restart(srv):
    acked = produce_ck(srv, "rs", [f"r{i}" for i in range(20000)])
    check(len(acked) == 20000, "20000 acknowledged before SIGKILL")
    srv.kill()
    srv.start()
    out = kcat(srv, "-C", "-t", "rs", "-p", "0", "-e", "-q", "-f", "%o %s\\n")
    got = dict(l.split(" ", 1) for l in out.stdout.splitlines())
    check(all(got.get(str(o)) == v.decode() for o, v in acked),
          "after SIGKILL and restart every acknowledged record is there")
    more = produce_ck(srv, "rs", ["after"])
    check(more and more[0][0] == max(o for o, _ in acked) + 1,
          f"produce continues at the right offset ({more[0][0] if more else None})")


def test_fsync_always(tmp):
    """acks=-1 on a `fsync: always` topic is answered after the group commit's fdatasync."""
    srv = Server(os.path.join(tmp, "always"), "--fsync", "always").start()
    try:
        t0 = time.monotonic()
        acked = produce_ck(srv, "dur", [f"d{i}" for i in range(5000)])
        dt = time.monotonic() - t0
        check(len(acked) == 5000 and [o for o, _ in sorted(acked)] == list(range(5000)),
              f"fsync always: 5000 acks=all records acknowledged in {dt:.1f}s")
        srv.kill()
        srv.start()
        out = kcat(srv, "-C", "-t", "dur", "-p", "0", "-e", "-q")
        check(out.stdout.splitlines() == [f"d{i}" for i in range(5000)],
              "fsync always: all there after SIGKILL")
        check(srv.stop() == 0, "fsync always server stops cleanly")
    finally:
        srv.kill()


def main():
    if not KCAT:
        sys.exit("kcat is missing: apt-get install kcat")
    tmp = tempfile.mkdtemp(prefix="sl-kafka-")
    srv = Server(os.path.join(tmp, "data"), "--set", "default_partitions=3")
    srv.start()
    try:
        test_kcat(srv)
        test_confluent(srv)
        test_kafka_python(srv)
        test_restart(srv)
        test_fsync_always(tmp)
        rc = srv.stop()
        check(rc == 0, f"SIGTERM stops the server cleanly (exit {rc})")
        check(os.path.exists(os.path.join(tmp, "data", ".clean-shutdown")),
              "clean-shutdown marker written")
    finally:
        srv.kill()
        if FAILS:
            print(srv.log()[-4000:])
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        sys.exit(f"{len(FAILS)} check(s) failed")


if __name__ == "__main__":
    main()
