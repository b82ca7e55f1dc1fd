"""Compares our record batch v2 codec with kafka-python's (2.0.2): identical bytes for
uncompressed batches, and for gzip batches each side reads the other's records and the bytes
outside the compressed payload match. Drives $SL_BUILD_DIR/tests/sl-test-batch."""

import gzip
import json
import os
import subprocess
import sys
import unittest

from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

BUILD_DIR = os.environ.get("SL_BUILD_DIR")
if not BUILD_DIR:
    sys.exit("SL_BUILD_DIR is not set: run this through ctest")
TOOL = os.path.join(BUILD_DIR, "tests", "sl-test-batch")

CODEC_NONE, CODEC_GZIP = 0, 1
TRANSACTIONAL = 0x10


def rec(ts, key, value, headers=()):
    return {"timestamp": ts, "key": key, "value": value, "headers": list(headers)}


LOREM = b"GET /index.html HTTP/1.1 200 1043 host=web-1 ua=curl/7.88 " * 4

# Each scenario: name, producer fields, records.
SCENARIOS = [
    ("one record, defaults", dict(pid=-1, epoch=-1, seq=-1, txn=False),
     [rec(1700000000000, b"key", LOREM)]),
    ("several records, nulls, headers, varied timestamps",
     dict(pid=4242, epoch=7, seq=100, txn=False),
     [
         rec(1700000000000, b"host-a", LOREM + b"0"),
         rec(1700000000500, None, LOREM + b"1"),  # null key
         rec(1699999999000, b"host-b", None),  # null value, earlier than the first
         rec(1700000001234, b"", b""),  # empty, not null
         rec(1700000000001, b"host-c", LOREM + b"4",
             [("source", b"file:/var/log/nginx/access.log"), ("empty", b""), ("null", None),
              ("", b"empty key")]),
         rec(1700000000002, b"\x00\xff\x80", LOREM + b"5", [("caf\u00e9", b"utf-8 key")]),
     ]),
    ("transactional producer", dict(pid=9, epoch=1, seq=2147483000, txn=True),
     [rec(1, b"k%d" % i, LOREM + b"%d" % i) for i in range(5)]),
    ("many records and a big value", dict(pid=123456789012, epoch=32767, seq=0, txn=False),
     [rec(1700000000000 + (i * 37) % 1000, None if i % 9 == 0 else b"key-%d" % i,
          (LOREM * 300) if i == 17 else LOREM[: (i * 13) % len(LOREM)],
          [("h%d" % j, b"v" * j) for j in range(i % 3)])
      for i in range(600)]),
]


def kafka_python_batch(codec, producer, records):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=codec,
                                  is_transactional=producer["txn"],
                                  producer_id=producer["pid"], producer_epoch=producer["epoch"],
                                  base_sequence=producer["seq"], batch_size=1 << 30)
    for i, r in enumerate(records):
        assert b.append(i, timestamp=r["timestamp"], key=r["key"], value=r["value"],
                        headers=r["headers"]) is not None
    return bytes(b.build())


def tok(b):
    return "-" if b is None else "x:" + b.hex()


def our_batch(codec, producer, records):
    lines = []
    for r in records:
        fields = [str(r["timestamp"]), tok(r["key"]), tok(r["value"])]
        fields += ["%s=%s" % (k.encode("utf-8").hex(), tok(v)) for k, v in r["headers"]]
        lines.append(" ".join(fields))
    args = [TOOL, "encode", "--codec", "gzip" if codec == CODEC_GZIP else "none",
            "--leader-epoch", "0",  # what kafka-python writes
            "--producer-id", str(producer["pid"]), "--producer-epoch", str(producer["epoch"]),
            "--base-sequence", str(producer["seq"]),
            "--attributes", str(TRANSACTIONAL if producer["txn"] else 0)]
    p = subprocess.run(args, input="\n".join(lines).encode(), capture_output=True, check=False)
    if p.returncode != 0:
        raise AssertionError("encode failed: %s" % p.stderr.decode())
    return p.stdout


def our_decode(data, *extra):
    p = subprocess.run([TOOL, "decode", *extra], input=data, capture_output=True, check=False)
    return p.returncode, [json.loads(line) for line in p.stdout.decode().splitlines()], \
        p.stderr.decode()


def expected_json(records):
    out = []
    for i, r in enumerate(records):
        out.append({
            "offset": i, "timestamp": r["timestamp"], "attributes": 0,
            "key": None if r["key"] is None else r["key"].hex(),
            "value": None if r["value"] is None else r["value"].hex(),
            "headers": [[k.encode("utf-8").hex(), None if v is None else v.hex()]
                        for k, v in r["headers"]],
        })
    return out


def kafka_python_read(data):
    batch = DefaultRecordBatch(data)
    assert batch.validate_crc(), "kafka-python says the CRC is wrong"
    got = []
    for r in batch:
        got.append({"offset": r.offset, "timestamp": r.timestamp, "key": r.key,
                    "value": r.value, "headers": list(r.headers)})
    return batch, got


class BatchVersusKafkaPython(unittest.TestCase):

    def check_our_decoder(self, data, records, producer, codec):
        rc, lines, err = our_decode(data, "--strict")
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(lines), 1 + len(records))
        hdr = lines[0]["batch"]
        self.assertEqual(hdr["size"], len(data))
        self.assertEqual(hdr["record_count"], len(records))
        self.assertEqual(hdr["last_offset_delta"], len(records) - 1)
        self.assertEqual(hdr["first_timestamp"], records[0]["timestamp"])
        self.assertEqual(hdr["max_timestamp"], max(r["timestamp"] for r in records))
        self.assertEqual(hdr["producer_id"], producer["pid"])
        self.assertEqual(hdr["producer_epoch"], producer["epoch"])
        self.assertEqual(hdr["base_sequence"], producer["seq"])
        self.assertEqual(hdr["attributes"], codec | (TRANSACTIONAL if producer["txn"] else 0))
        self.assertEqual([line["record"] for line in lines[1:]], expected_json(records))

    def check_kafka_python_reader(self, data, records, codec):
        batch, got = kafka_python_read(data)
        self.assertEqual(batch.compression_type, codec)
        want = [{"offset": i, "timestamp": r["timestamp"], "key": r["key"], "value": r["value"],
                 "headers": [(k, v) for k, v in r["headers"]]} for i, r in enumerate(records)]
        self.assertEqual(got, want)

    def test_uncompressed_bytes_are_identical(self):
        for name, producer, records in SCENARIOS:
            with self.subTest(name):
                theirs = kafka_python_batch(CODEC_NONE, producer, records)
                ours = our_batch(CODEC_NONE, producer, records)
                self.assertEqual(ours.hex(), theirs.hex())
                self.check_our_decoder(theirs, records, producer, CODEC_NONE)
                self.check_kafka_python_reader(ours, records, CODEC_NONE)

    def test_gzip_batches_read_both_ways(self):
        for name, producer, records in SCENARIOS:
            with self.subTest(name):
                plain = kafka_python_batch(CODEC_NONE, producer, records)
                theirs = kafka_python_batch(CODEC_GZIP, producer, records)
                ours = our_batch(CODEC_GZIP, producer, records)
                # kafka-python sends uncompressed when gzip does not shrink the records; the
                # scenarios are made compressible so both sides really use gzip.
                self.assertEqual(theirs[22] & 7, CODEC_GZIP)
                self.assertEqual(ours[22] & 7, CODEC_GZIP)
                self.check_our_decoder(theirs, records, producer, CODEC_GZIP)
                self.check_kafka_python_reader(ours, records, CODEC_GZIP)
                # Outside the compressed payload only batchLength (8..12) and crc (17..21)
                # may differ, since the gzip streams differ (level, header bytes).
                self.assertEqual(ours[:8], theirs[:8])
                self.assertEqual(ours[12:17], theirs[12:17])
                self.assertEqual(ours[21:61], theirs[21:61])
                self.assertEqual(int.from_bytes(ours[8:12], "big"), len(ours) - 12)
                # Both payloads hold exactly the uncompressed records section.
                self.assertEqual(gzip.decompress(ours[61:]), plain[61:])
                self.assertEqual(gzip.decompress(theirs[61:]), plain[61:])

    def test_concatenated_batches_decode_in_order(self):
        _, producer, records = SCENARIOS[1]
        data = (kafka_python_batch(CODEC_NONE, producer, records) +
                our_batch(CODEC_GZIP, producer, records) +
                kafka_python_batch(CODEC_GZIP, producer, records))
        rc, lines, err = our_decode(data)
        self.assertEqual(rc, 0, err)
        self.assertEqual(sum(1 for line in lines if "batch" in line), 3)
        self.assertEqual([line["record"] for line in lines if "record" in line],
                         expected_json(records) * 3)

    def test_damage_is_reported(self):
        _, producer, records = SCENARIOS[1]
        theirs = bytearray(kafka_python_batch(CODEC_GZIP, producer, records))
        theirs[70] ^= 0x10
        rc, _, err = our_decode(bytes(theirs))
        self.assertEqual(rc, 1)
        self.assertIn("crc at byte 17", err)
        rc, _, err = our_decode(kafka_python_batch(CODEC_NONE, producer, records)[:-1])
        self.assertEqual(rc, 1)
        self.assertIn("batchLength", err)
        # A decompression limit below the records' size is refused, not obeyed partially.
        rc, lines, err = our_decode(kafka_python_batch(CODEC_GZIP, producer, records),
                                    "--max-bytes", "100")
        self.assertEqual(rc, 1)
        self.assertIn("limit of 100 bytes", err)
        self.assertEqual([line for line in lines if "record" in line], [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
