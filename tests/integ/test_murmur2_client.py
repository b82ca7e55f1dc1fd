#!/usr/bin/python3
"""Holds common/murmur2 (through sl-test-murmur2) against live Kafka clients' partitioners.

Checks, all without a Kafka broker:
  1. tests/data/murmur2_vectors.txt is exactly what kafka-python produces today;
  2. sl-test-murmur2 agrees with kafka-python's DefaultPartitioner on those keys plus fresh
     random ones (lengths 0..1024), for partition counts from 1 to 2^31-1;
  3. it agrees with librdkafka's murmur2 partitioner function, called through ctypes in the
     very library confluent-kafka loaded;
  4. it agrees with the partition librdkafka picks when confluent-kafka produces with
     partitioner=murmur2 to an in-process librdkafka mock cluster (topics of 1, 3, 6, 32 and
     100 partitions): the whole client path, key to delivery report.
Set SL_TEST_SEED to replay a run's random keys (each run prints its seed).
"""

import ctypes
import importlib.util
import os
import random
import subprocess
import sys
import time

import confluent_kafka
from kafka.partitioner.default import DefaultPartitioner, murmur2

MOCK_PARTITION_COUNTS = (1, 3, 6, 32, 100)
PARTITION_COUNTS = (1, 2, 3, 4, 6, 7, 32, 100, 1000, 65536, 2**31 - 2, 2**31 - 1)
RANDOM_KEYS = 300

failures = []


def fail(msg):
    failures.append(msg)
    if len(failures) <= 20:
        print("FAIL: " + msg, file=sys.stderr)


def report(what, count, failures_before):
    bad = len(failures) - failures_before
    print("%s: %d cases, %s" % (what, count, "%d mismatches" % bad if bad else "all agree"))


def env(name):
    v = os.environ.get(name)
    if not v:
        sys.exit("%s is not set (run through ctest)" % name)
    return v


def load_generator(data_dir):
    path = os.path.join(data_dir, "gen_murmur2_vectors.py")
    spec = importlib.util.spec_from_file_location("gen_murmur2_vectors", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def signed32(h):
    return h - (1 << 32) if h & 0x80000000 else h


def kafka_python(key, n):
    """(hash, partition) as kafka-python computes them."""
    return signed32(murmur2(key)), DefaultPartitioner()(key, range(n), range(n))


def run_tool(tool, cases):
    """Runs sl-test-murmur2 --stdin over (key, n) cases; returns [(hash, partition)]."""
    stdin = "".join("%s %d\n" % (k.hex() or "-", n) for k, n in cases)
    out = subprocess.run([tool, "--stdin"], input=stdin, capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        sys.exit("sl-test-murmur2 --stdin failed (%d): %s" % (out.returncode, out.stderr))
    rows = [tuple(int(x) for x in line.split()) for line in out.stdout.splitlines()]
    if len(rows) != len(cases):
        sys.exit("sl-test-murmur2 answered %d of %d lines" % (len(rows), len(cases)))
    return rows


def check_data_file(gen, data_dir):
    with open(os.path.join(data_dir, "murmur2_vectors.txt")) as f:
        committed = f.read()
    if committed != gen.render():
        fail("murmur2_vectors.txt differs from what kafka-python gives now; "
             "regenerate it with gen_murmur2_vectors.py")


def check_tool_argv(tool):
    """The one-key form of the tool, empty key included."""
    for hexkey, key in (("", b""), ("-", b""), ("3231", b"21"), ("FFfe", b"\xff\xfe")):
        out = subprocess.run([tool, hexkey, "100"], capture_output=True, text=True, timeout=30)
        want = "%d %d" % kafka_python(key, 100)
        if out.returncode != 0 or out.stdout.strip() != want:
            fail("sl-test-murmur2 %r 100: got %r (rc %d), want %r"
                 % (hexkey, out.stdout.strip(), out.returncode, want))
    for bad in (["zz", "3"], ["abc", "3"], ["31", "0"], ["31", "-1"], ["31", "2147483648"],
                ["31", "3x"], ["31"]):
        out = subprocess.run([tool] + bad, capture_output=True, text=True, timeout=30)
        if out.returncode != 2:
            fail("sl-test-murmur2 %s: exit %d, want 2" % (bad, out.returncode))


def librdkafka():
    """The librdkafka confluent-kafka uses, loaded through ctypes, checked to be the same."""
    lib = ctypes.CDLL("librdkafka.so.1")
    lib.rd_kafka_version.restype = ctypes.c_int
    if lib.rd_kafka_version() != confluent_kafka.libversion()[1]:
        sys.exit("ctypes loaded librdkafka %#x but confluent-kafka uses %#x"
                 % (lib.rd_kafka_version(), confluent_kafka.libversion()[1]))
    f = lib.rd_kafka_msg_partitioner_murmur2
    f.restype = ctypes.c_int32
    f.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int32,
                  ctypes.c_void_p, ctypes.c_void_p]
    return lib


def check_librdkafka_function(lib, cases, got):
    # The murmur2 partitioner ignores the topic handle and opaques (it never checks
    # availability), so NULL is safe for them.
    for (key, n), (_, part) in zip(cases, got):
        want = lib.rd_kafka_msg_partitioner_murmur2(None, key, len(key), n, None, None)
        if part != want:
            fail("key %s, %d partitions: sl %d, librdkafka function %d"
                 % (key.hex() or "-", n, part, want))


class MockCluster:
    """An in-process librdkafka mock cluster (no broker) with topics of chosen sizes."""

    def __init__(self, lib):
        self.lib = lib
        lib.rd_kafka_conf_new.restype = ctypes.c_void_p
        lib.rd_kafka_new.restype = ctypes.c_void_p
        lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                                     ctypes.c_size_t]
        lib.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                          ctypes.c_char_p, ctypes.c_size_t]
        lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
        lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
        lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
        lib.rd_kafka_mock_topic_create.restype = ctypes.c_int
        lib.rd_kafka_mock_topic_create.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                                   ctypes.c_int, ctypes.c_int]
        lib.rd_kafka_mock_cluster_destroy.argtypes = [ctypes.c_void_p]
        lib.rd_kafka_destroy.argtypes = [ctypes.c_void_p]

        errstr = ctypes.create_string_buffer(512)
        conf = lib.rd_kafka_conf_new()
        lib.rd_kafka_conf_set(conf, b"log_level", b"3", errstr, len(errstr))
        # The mock cluster needs a handle to live in; it never connects anywhere itself.
        self.rk = lib.rd_kafka_new(0, conf, errstr, len(errstr))  # RD_KAFKA_PRODUCER
        if not self.rk:
            sys.exit("rd_kafka_new: " + errstr.value.decode())
        self.mcluster = lib.rd_kafka_mock_cluster_new(self.rk, 1)
        if not self.mcluster:
            sys.exit("rd_kafka_mock_cluster_new failed")
        self.bootstraps = lib.rd_kafka_mock_cluster_bootstraps(self.mcluster).decode()

    def create_topic(self, name, partitions):
        err = self.lib.rd_kafka_mock_topic_create(self.mcluster, name.encode(), partitions, 1)
        if err != 0:
            sys.exit("rd_kafka_mock_topic_create(%s, %d): error %d" % (name, partitions, err))

    def close(self):
        self.lib.rd_kafka_mock_cluster_destroy(self.mcluster)
        self.lib.rd_kafka_destroy(self.rk)


def check_librdkafka_produce(lib, tool, keys):
    """Produces every key to every mock topic; returns how many placements were compared."""
    mock = MockCluster(lib)
    try:
        topics = {}
        for n in MOCK_PARTITION_COUNTS:
            topics[n] = "murmur2-%d" % n
            mock.create_topic(topics[n], n)
        producer = confluent_kafka.Producer({
            "bootstrap.servers": mock.bootstraps,
            "partitioner": "murmur2",
            "linger.ms": 5,
            "log_level": 3,
        })
        delivered = {}

        def on_delivery(err, msg):
            if err is not None:
                fail("delivery to %s failed: %s" % (msg.topic(), err))
            else:
                delivered[(msg.topic(), msg.key())] = msg.partition()

        for n, topic in topics.items():
            for key in keys:
                producer.produce(topic, key=key, value=b"x", on_delivery=on_delivery)
                producer.poll(0)
        deadline = time.monotonic() + 60
        while producer.flush(1) > 0:
            if time.monotonic() > deadline:
                sys.exit("mock cluster: messages still undelivered after 60 s")
        del producer

        cases = [(k, n) for n in topics for k in keys]
        got = run_tool(tool, cases)
        checked = 0
        for (key, n), (_, part) in zip(cases, got):
            want = delivered.get((topics[n], key))
            if want is None:
                fail("no delivery report for key %s in %s" % (key.hex() or "-", topics[n]))
            elif part != want:
                fail("key %s, %d partitions: sl %d, librdkafka produced to %d"
                     % (key.hex() or "-", n, part, want))
            checked += 1
        return checked
    finally:
        mock.close()


def main():
    data_dir = env("SL_TEST_DATA")
    tool = os.path.join(env("SL_BUILD_DIR"), "tests", "sl-test-murmur2")
    if not os.access(tool, os.X_OK):
        sys.exit("%s is missing: build target sl-test-murmur2" % tool)

    gen = load_generator(data_dir)
    check_data_file(gen, data_dir)
    check_tool_argv(tool)

    seed = int(os.environ.get("SL_TEST_SEED") or random.SystemRandom().randrange(1 << 32))
    print("SL_TEST_SEED=%d" % seed)
    rng = random.Random(seed)
    fresh = [bytes(rng.getrandbits(8) for _ in range(rng.choice((rng.randrange(0, 65),
                                                                  rng.randrange(0, 1025)))))
             for _ in range(RANDOM_KEYS)]
    keys = gen.keys() + fresh

    cases = [(k, n) for k in keys for n in PARTITION_COUNTS]
    got = run_tool(tool, cases)
    before = len(failures)
    for (key, n), row in zip(cases, got):
        want = kafka_python(key, n)
        if row != want:
            fail("key %s, %d partitions: sl %s, kafka-python %s" % (key.hex() or "-", n, row, want))
    report("kafka-python DefaultPartitioner", len(cases), before)

    lib = librdkafka()
    before = len(failures)
    check_librdkafka_function(lib, cases, got)
    report("librdkafka rd_kafka_msg_partitioner_murmur2", len(cases), before)

    before = len(failures)
    n = check_librdkafka_produce(lib, tool, gen.keys())
    report("librdkafka produce (partitioner=murmur2) to a mock cluster", n, before)

    if failures:
        sys.exit("%d mismatches (SL_TEST_SEED=%d)" % (len(failures), seed))
    print("ok")


if __name__ == "__main__":
    main()
