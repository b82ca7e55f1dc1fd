#!/usr/bin/python3
"""Regenerates tests/fuzz/corpus/request/: runs kcat, confluent-kafka and kafka-python against
sl-test-kafka_server through a recording proxy and saves every distinct (api, version) request
frame they send (without the size prefix), plus a few hand-made edge cases.

    SL_BUILD_DIR=build tests/fuzz/capture_requests.py"""
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integ"))
from kafkasrv import Server  # noqa: E402

OUT = os.path.join(HERE, "corpus", "request")
frames = {}


def pump(src, dst, record):
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            if record:
                buf += data
                while len(buf) >= 4:
                    n = struct.unpack(">i", buf[:4])[0]
                    if len(buf) < 4 + n:
                        break
                    frame, buf = buf[4:4 + n], buf[4 + n:]
                    api, ver = struct.unpack(">hh", frame[:4])
                    key = (api, ver)
                    # Keep the first of each kind and the largest produce/fetch seen.
                    if key not in frames or (api in (0, 1) and len(frame) > len(frames[key])
                                             and len(frame) < 200_000):
                        frames[key] = frame
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def proxy(listener, port):
    while True:
        try:
            c, _ = listener.accept()
        except OSError:
            return
        s = socket.create_connection(("127.0.0.1", port))
        threading.Thread(target=pump, args=(c, s, True), daemon=True).start()
        threading.Thread(target=pump, args=(s, c, False), daemon=True).start()


def main():
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(64)
    pport = lst.getsockname()[1]
    tmp = tempfile.mkdtemp(prefix="sl-capture-")
    srv = Server(os.path.join(tmp, "data"), "--set", f"advertised=127.0.0.1:{pport}",
                 "--set", "default_partitions=2",
                 "--conf", "groups.initial_rebalance_delay=0s").start()
    threading.Thread(target=proxy, args=(lst, srv.port), daemon=True).start()
    bs = f"127.0.0.1:{pport}"
    try:
        run = lambda *a, **k: subprocess.run(a, timeout=60, capture_output=True, **k)  # noqa
        run("kcat", "-b", bs, "-L")
        run("kcat", "-b", bs, "-P", "-t", "cap", input=b"a\nb\nc\n")
        run("kcat", "-b", bs, "-P", "-t", "cap", "-z", "gzip", input=b"d\ne\n")
        run("kcat", "-b", bs, "-C", "-t", "cap", "-e")
        run("kcat", "-b", bs, "-C", "-t", "cap", "-o", "s@0", "-e")
        import confluent_kafka as ck
        import confluent_kafka.admin as cka
        p = ck.Producer({"bootstrap.servers": bs, "enable.idempotence": True})
        for i in range(10):
            p.produce("cap2", key=b"k%d" % i, value=b"v")
        p.flush(20)
        a = cka.AdminClient({"bootstrap.servers": bs})
        a.create_topics([cka.NewTopic("cap3", 3, 1)])["cap3"].result(10)
        a.delete_topics(["cap3"])["cap3"].result(10)
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition
        kp = KafkaProducer(bootstrap_servers=bs)
        kp.send("cap4", b"x").get(10)
        kp.close()
        kc = KafkaConsumer(bootstrap_servers=bs, group_id=None, consumer_timeout_ms=2000,
                           auto_offset_reset="earliest")
        kc.assign([TopicPartition("cap4", 0)])
        list(kc)
        kc.end_offsets([TopicPartition("cap4", 0)])
        kc.close()
        # Consumer groups: librdkafka's newest versions and kafka-python's older ones.
        subprocess.run(["kcat", "-b", bs, "-G", "capg", "-e", "-X", "auto.offset.reset=earliest",
                        "-X", "session.timeout.ms=6000", "cap"], timeout=30, capture_output=True)
        kg = KafkaConsumer("cap4", bootstrap_servers=bs, group_id="capk",
                           consumer_timeout_ms=3000, auto_offset_reset="earliest",
                           session_timeout_ms=6000, api_version=(2, 0, 0))
        list(kg)
        kg.commit()
        kg.close()
        from kafka import KafkaAdminClient
        ka = KafkaAdminClient(bootstrap_servers=bs)
        ka.list_consumer_groups()
        ka.describe_consumer_groups(["capk", "capg"])
        ka.list_consumer_group_offsets("capk")
        ka.close()
        time.sleep(0.5)
    finally:
        srv.stop()
        lst.close()
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(OUT, exist_ok=True)
    for (api, ver), frame in sorted(frames.items()):
        with open(os.path.join(OUT, f"api{api}_v{ver}.bin"), "wb") as f:
            f.write(frame)
    print(f"{len(frames)} frames: {sorted(frames)}")
    write_edges()


def write_edges():
    """Hand-made frames for the paths real clients do not take."""
    import test_kafka_hostile as h
    hdr = lambda api, ver: struct.pack(">hhi", api, ver, 7) + h.s16(b"edge")  # noqa: E731
    bad = bytearray(h.record_batch([b"x" * 40, b"y"]))
    bad[-2] ^= 1
    two = h.record_batch([b"one"]) + h.record_batch([b"two"])
    idem = bytearray(h.record_batch([b"i0", b"i1"]))
    idem[43:57] = struct.pack(">qhi", 77, 0, 0)  # producer id 77, epoch 0, sequence 0
    idem[17:21] = struct.pack(">I", h.crc32c(bytes(idem[21:])))
    edges = {
        "empty": b"",
        "header_only": hdr(3, 1)[:6],
        "null_client_id": struct.pack(">hhih", 18, 1, 3, -1),
        "produce_acks0": hdr(0, 3) + h.produce_v7("cap", 0, h.record_batch([b"z"]), acks=0),
        "produce_acks1_v5": hdr(0, 5) + h.produce_v7("cap", 1, h.record_batch([b"z"]), acks=1),
        "produce_bad_crc": hdr(0, 7) + h.produce_v7("cap", 0, bytes(bad)),
        "produce_two_batches": hdr(0, 7) + h.produce_v7("cap", 0, two),
        "produce_idempotent": hdr(0, 7) + h.produce_v7("cap", 0, bytes(idem)),
        "produce_bad_acks": hdr(0, 7) + h.produce_v7("cap", 0, h.record_batch([b"z"]), acks=5),
        "produce_dotdot": hdr(0, 7) + h.produce_v7("../x", 0, h.record_batch([b"z"])),
        "metadata_dotdot": hdr(3, 4) + h.metadata_v1(["../x", "ok-topic"]) + b"\x01",
        "metadata_all": hdr(3, 1) + h.metadata_v1(None),
        "metadata_count_max": hdr(3, 1) + struct.pack(">i", 0x7FFFFFFF),
        "fetch_long_poll": hdr(1, 11) + struct.pack(">iiiibii", -1, 500, 1 << 20, 1 << 20, 0,
                                                    0, -1) +
        struct.pack(">i", 1) + h.s16("cap") + struct.pack(">iiiqq", 1, 0, -1, 0, -1) +
        struct.pack(">i", 1 << 20) + struct.pack(">i", 0) + h.s16(""),
        "fetch_out_of_range": hdr(1, 4) + struct.pack(">iiiib", -1, 0, 1, 1000, 0) +
        struct.pack(">i", 1) + h.s16("cap") + struct.pack(">iiqi", 1, 0, 1 << 40, 1000),
        "list_offsets_kinds": hdr(2, 2) + struct.pack(">ib", -1, 0) + struct.pack(">i", 1) +
        h.s16("cap") + struct.pack(">i", 4) + struct.pack(">iq", 0, -2) +
        struct.pack(">iq", 0, -1) + struct.pack(">iq", 0, 0) + struct.pack(">iq", 9, -3),
        "create_bad": hdr(19, 4) + struct.pack(">i", 2) + h.s16("..") +
        struct.pack(">ihii", -1, 1, 0, 0) + h.s16("rf3") + struct.pack(">ihii", 1, 3, 0, 0) +
        struct.pack(">ib", 100, 1),
        "delete_unknown": hdr(20, 3) + struct.pack(">i", 1) + h.s16("nope") +
        struct.pack(">i", 100),
        "init_pid_txn": hdr(22, 0) + h.s16("txn") + struct.pack(">i", 60000),
        "unknown_api": hdr(57, 0),
        "versions_v3": hdr(18, 3) + b"\x00\x00\x00",
    }
    for name, frame in edges.items():
        with open(os.path.join(OUT, f"edge_{name}.bin"), "wb") as f:
            f.write(frame)
    print(f"{len(edges)} hand-made frames")


if __name__ == "__main__":
    main()
