#!/usr/bin/python3
"""DescribeConfigs and DescribeLogDirs against the real sluice-collector: kafka-python's
KafkaAdminClient (2.0.2) and librdkafka's AdminClient describe topics configured in collector.yaml (a topics.<name>
override, a topic_defaults setting, the built-in defaults) at DescribeConfigs v0 and its newest
version; DescribeLogDirs (which kafka-python lacks) is sent by hand at v0 and v1 and each
partition's size is checked against the .log files on disk after producing."""
import os
import socket
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_helpers import check, finish  # noqa: E402
from kafkasrv import Server  # noqa: E402

from kafka import KafkaProducer  # noqa: E402
from kafka.admin import (ConfigResource, ConfigResourceType, KafkaAdminClient,  # noqa: E402
                         NewTopic)

DEFAULT, STATIC = 5, 4
LONG_MAX = str(2**63 - 1)


def configs_of(resp, name):
    """{config name: (value, read_only, source or is_default)} of resource `name`."""
    for res in resp.resources:
        if res[3] == name:
            return res[0], res[1], {e[0]: (e[1], e[2], e[3]) for e in res[4]}
    return None, None, {}


def test_describe_configs(srv):
    admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap, client_id="admin-test")
    admin.create_topics([NewTopic("ret", 2, 1), NewTopic("plain", 1, 1)])
    resps = admin.describe_configs([
        ConfigResource(ConfigResourceType.TOPIC, "ret"),
        ConfigResource(ConfigResourceType.TOPIC, "plain", {"retention.ms": None,
                                                           "no.such.key": None}),
        ConfigResource(ConfigResourceType.TOPIC, "nosuch"),
        ConfigResource(ConfigResourceType.BROKER, "0")])
    topic_resp = [r for r in resps if any(res[2] == 2 for res in r.resources)][0]
    check(type(topic_resp).__name__ != "DescribeConfigsResponse_v0",
          f"kafka-python negotiated DescribeConfigs v1+ ({type(topic_resp).__name__})")
    err, _, ret = configs_of(topic_resp, "ret")
    check(err == 0, "DescribeConfigs ret: no error")
    want = {
        "retention.ms": ("7200000", False, STATIC),          # topics.ret.retention=2h
        "retention.bytes": ("-1", False, DEFAULT),
        "segment.bytes": ("2097152", False, STATIC),            # topic_defaults.segment_bytes
        "segment.ms": ("604800000", False, DEFAULT),
        "index.interval.bytes": ("4096", False, DEFAULT),
        "max.message.bytes": ("1048588", False, DEFAULT),
        "flush.messages": ("1", False, STATIC),               # topic_defaults.fsync=always
        "flush.ms": ("0", False, STATIC),
        "cleanup.policy": ("delete", True, DEFAULT),
    }
    check(ret == want, "DescribeConfigs ret: every config, value and source", ret)
    err, _, plain = configs_of(topic_resp, "plain")
    check(err == 0 and plain == {"retention.ms": ("604800000", False, DEFAULT)},
          "DescribeConfigs plain: only the asked key, unknown keys left out", plain)
    err, msg, none = configs_of(topic_resp, "nosuch")
    check(err == 3 and "nosuch" in (msg or "") and not none,
          "DescribeConfigs unknown topic: UNKNOWN_TOPIC_OR_PARTITION naming it", (err, msg))
    broker = [r for r in resps if any(res[2] == 4 for res in r.resources)]
    check(broker and broker[0].resources[0][0] == 0 and broker[0].resources[0][4] == [],
          "DescribeConfigs broker resource: no error, empty list", broker)
    admin.close()

    # An old client speaks v0 (is_default instead of config_source): cap the version
    # kafka-python picks from our ApiVersions answer to 0.
    admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap)
    versions = dict(admin._client.get_api_versions())
    versions[32] = (0, 0)
    admin._client.get_api_versions = lambda: versions
    resps = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "ret",
                                                   {"retention.ms": None,
                                                    "retention.bytes": None})])
    check(type(resps[0]).__name__ == "DescribeConfigsResponse_v0", "capped client sends v0",
          type(resps[0]).__name__)
    err, _, ret = configs_of(resps[0], "ret")
    check(err == 0 and ret == {"retention.ms": ("7200000", False, False),
                               "retention.bytes": ("-1", False, True)},
          "DescribeConfigs v0: is_default false for the override, true for a default", ret)
    admin.close()


def test_describe_configs_librdkafka(srv):
    """librdkafka's AdminClient (confluent-kafka) describes the same topic (DescribeConfigs v1)."""
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.admin import ConfigResource as RdResource
    admin = AdminClient({"bootstrap.servers": srv.bootstrap, "log_level": 3})
    futs = admin.describe_configs([RdResource("topic", "ret"), RdResource("topic", "nosuch")])
    for res, fut in futs.items():
        if res.name == "ret":
            got = {k: (v.value, v.source, v.is_default, v.is_read_only)
                   for k, v in fut.result(30).items()}
            check(got.get("retention.ms") == ("7200000", STATIC, False, False)
                  and got.get("cleanup.policy") == ("delete", DEFAULT, True, True)
                  and got.get("flush.messages") == ("1", STATIC, False, False)
                  and len(got) == 9, "librdkafka describe_configs ret", got)
        else:
            try:
                fut.result(30)
                check(False, "librdkafka describe_configs of an unknown topic fails")
            except Exception as e:  # KafkaException carrying the broker's error
                check("UNKNOWN_TOPIC" in str(e) and "nosuch" in str(e),
                      "librdkafka describe_configs of an unknown topic: the broker's error", e)


def kafka_request(port, api_key, version, body):
    """Sends one request (header v1, client id 'raw') and returns the response body."""
    client = b"raw"
    frame = struct.pack(">hhih", api_key, version, 7, len(client)) + client + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed before the whole response")
            data += chunk
    size, corr = struct.unpack(">ii", data[:8])
    assert corr == 7, corr
    return data[8:4 + size]


def parse_log_dirs(body):
    """{log_dir: (error, {(topic, partition): (size, lag, future)})}"""
    pos = 4  # throttle
    out = {}

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, body, pos)
        pos += struct.calcsize(fmt)
        return v if len(v) > 1 else v[0]

    def string():
        nonlocal pos
        n = take(">h")
        s = body[pos:pos + n].decode()
        pos += n
        return s

    for _ in range(take(">i")):
        err = take(">h")
        d = string()
        parts = {}
        for _ in range(take(">i")):
            t = string()
            for _ in range(take(">i")):
                p, size, lag, fut = take(">iqqb")
                parts[(t, p)] = (size, lag, fut)
        out[d] = (err, parts)
    check(pos == len(body), "DescribeLogDirs response parsed to its end", (pos, len(body)))
    return out


def disk_size(data_dir, topic, p):
    d = os.path.join(data_dir, f"{topic}-{p}")
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".log"))


def test_describe_log_dirs(srv, data_dir):
    prod = KafkaProducer(bootstrap_servers=srv.bootstrap, acks="all", linger_ms=5)
    for i in range(300):
        prod.send("ret", key=b"k%d" % (i % 7), value=b"line %05d " % i + b"x" * 100,
                  partition=i % 2)
    for i in range(40):
        prod.send("plain", value=b"p%d" % i)
    prod.flush(timeout=60)
    prod.close()
    real = os.path.realpath(data_dir)
    for version in (0, 1):
        dirs = parse_log_dirs(kafka_request(srv.port, 35, version, struct.pack(">i", -1)))
        check(list(dirs) in ([data_dir], [real]), f"DescribeLogDirs v{version}: one log dir, "
              "the data_dir", list(dirs))
        err, parts = list(dirs.values())[0]
        want = {(t, p): (disk_size(data_dir, t, p), 0, 0)
                for t, p in (("ret", 0), ("ret", 1), ("plain", 0))}
        check(err == 0 and parts == want and all(v[0] > 0 for v in want.values()),
              f"DescribeLogDirs v{version}: every partition with its .log bytes, lag 0",
              (parts, want))
    # Only ret-1 and a partition that does not exist.
    body = (struct.pack(">i", 2) + struct.pack(">h", 3) + b"ret" + struct.pack(">iii", 2, 1, 9)
            + struct.pack(">h", 6) + b"nosuch" + struct.pack(">ii", 1, 0))
    dirs = parse_log_dirs(kafka_request(srv.port, 35, 1, body))
    parts = list(dirs.values())[0][1]
    check(list(parts) == [("ret", 1)], "DescribeLogDirs with topics: only the asked partitions "
          "this broker has", parts)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = os.path.join(tmp, "data")
        srv = Server(data_dir, "--conf", "topics.ret.retention=2h", "--fsync", "always",
                     "--segment-bytes", "2MiB").start()
        try:
            test_describe_configs(srv)
            test_describe_configs_librdkafka(srv)
            test_describe_log_dirs(srv, data_dir)
        finally:
            rc = srv.stop()
            check(rc == 0, "collector stops cleanly", srv.log()[-2000:])
    finish("admin_kafka_python")


if __name__ == "__main__":
    main()
