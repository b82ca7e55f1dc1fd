"""CreateTopics configs with a real client (confluent-kafka's AdminClient, librdkafka):

- segment.bytes / retention.ms / cleanup.policy=delete are applied: the log rolls at the
  segment size asked for, and data_dir/.topic-configs/<topic>.yaml holds the translation;
- they survive a restart of the collector (segments keep rolling at that size);
- an unsupported config, a bad value, a segment below the collector's minimum and
  cleanup.policy=compact get INVALID_CONFIG naming it, and create nothing; validate_only checks without creating or keeping anything;
- DeleteTopics removes the kept configs."""
import glob
import os
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafkasrv import Server  # noqa: E402

FAILS = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        FAILS.append(what)


def admin(srv):
    import confluent_kafka.admin as ka
    return ka.AdminClient({"bootstrap.servers": srv.bootstrap})


def create(srv, name, config, validate_only=False):
    """None on success, else (error code name, message)."""
    import confluent_kafka.admin as ka
    client = admin(srv)  # kept alive until the answer: a dropped handle fails its futures
    futs = client.create_topics([ka.NewTopic(name, 1, 1, config=config)],
                                validate_only=validate_only, request_timeout=15)
    try:
        futs[name].result(timeout=30)
        return None
    except Exception as e:  # KafkaException carrying a KafkaError
        err = e.args[0]
        return (err.name(), err.str())


def produce(srv, topic, n, size=1000):
    import confluent_kafka as ck
    p = ck.Producer({"bootstrap.servers": srv.bootstrap, "linger.ms": 0, "batch.size": size})
    for i in range(n):
        p.produce(topic, value=(b"%06d " % i) + b"x" * (size - 7))
        p.poll(0)
    check(p.flush(30) == 0, f"{n} records produced to {topic}")


def segments(data, topic):
    return len(glob.glob(os.path.join(data, f"{topic}-0", "*.log")))


def main():
    w = tempfile.mkdtemp(prefix="sl-topic-configs-")
    data = os.path.join(w, "data")
    srv = Server(data).start()
    try:
        kept = os.path.join(data, ".topic-configs", "cfg.yaml")
        got = create(srv, "cfg", {"segment.bytes": "65536", "retention.ms": "3600000",
                                  "cleanup.policy": "delete"})
        check(got is None, f"create cfg with configs ({got})")
        text = open(kept).read() if os.path.exists(kept) else ""
        check("segment_bytes: 65536\n" in text and "retention: 3600000ms\n" in text,
              f"configs kept in .topic-configs/cfg.yaml: {text!r}")
        import confluent_kafka.admin as ka
        client = admin(srv)
        res = ka.ConfigResource("topic", "cfg")
        entries = client.describe_configs([res], request_timeout=15)[res].result(timeout=30)
        seg, ret = entries.get("segment.bytes"), entries.get("retention.bytes")
        check(seg is not None and seg.value == "65536" and
              seg.source == ka.ConfigSource.DYNAMIC_TOPIC_CONFIG.value and
              ret is not None and ret.source != ka.ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
              f"DescribeConfigs: segment.bytes {seg and (seg.value, seg.source)} is the topic's "
              f"own, retention.bytes {ret and (ret.value, ret.source)} is not")
        produce(srv, "cfg", 300)
        before = segments(data, "cfg")
        check(before >= 4, f"300 KB rolled into {before} segments of 64 KiB")

        srv.stop()
        srv.start()
        produce(srv, "cfg", 300)
        after = segments(data, "cfg")
        check(after >= before + 4, f"after a restart still rolling at 64 KiB: {after} segments")

        for name, cfg, want in (
                ("bad1", {"compression.type": "lz4"}, "compression.type"),
                ("bad2", {"segment.bytes": "lots"}, "segment.bytes"),
                ("bad3", {"cleanup.policy": "compact"}, "cleanup.policy"),
                ("bad4", {"retention.ms": "0"}, "retention.ms"),
                ("bad5", {"segment.bytes": "100"}, "segment_bytes")):
            got = create(srv, name, cfg)
            check(got is not None and got[0] == "INVALID_CONFIG" and want in got[1],
                  f"{cfg} refused with INVALID_CONFIG naming {want}: {got}")
            check(not os.path.exists(os.path.join(data, f"{name}-0")) and
                  not os.path.exists(os.path.join(data, ".topic-configs", f"{name}.yaml")),
                  f"{name}: nothing created or kept")

        got = create(srv, "dry", {"segment.bytes": "65536"}, validate_only=True)
        check(got is None, f"validate_only with a good config passes ({got})")
        check(not os.path.exists(os.path.join(data, "dry-0")) and
              not os.path.exists(os.path.join(data, ".topic-configs", "dry.yaml")),
              "validate_only created and kept nothing")
        got = create(srv, "dry", {"segment.bytes": "-5"}, validate_only=True)
        check(got is not None and got[0] == "INVALID_CONFIG", f"validate_only refuses -5: {got}")

        client = admin(srv)
        futs = client.delete_topics(["cfg"], request_timeout=15)
        futs["cfg"].result(timeout=30)
        check(not os.path.exists(kept), "DeleteTopics removed cfg's kept configs")
    finally:
        srv.stop()
        shutil.rmtree(w, ignore_errors=True)
    if FAILS:
        sys.exit(f"{len(FAILS)} checks failed")


if __name__ == "__main__":
    main()
