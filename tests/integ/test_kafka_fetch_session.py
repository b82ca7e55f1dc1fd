#!/usr/bin/python3
"""Fetch sessions (KIP-227) on the collector's Kafka port, with a raw-protocol client: a full
fetch with epoch 0 gets a session; incremental fetches add and update partitions, forget them,
and are answered with only the partitions that changed (records, high watermark, log start,
error), those that returned records moving to the end (round-robin); a long poll waits on every partition of the session; a wrong epoch and an unknown id get
their errors; epoch -1 closes; a session outlives its connection; the cache is bounded (a full
cache gives id 0 unless the new session is bigger than the smallest one); (0, -1), what
librdkafka and kafka-python send, never makes a session. Also the per-topic records-out counter
of /metrics."""
import os
import shutil
import socket
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafkasrv import Server  # noqa: E402
from test_kafka_hostile import (metadata_v1, produce_error, produce_v7,  # noqa: E402
                                read_response, record_batch, request, s16)

FAILS = []
E_NONE, E_SESSION_NOT_FOUND, E_BAD_EPOCH = 0, 70, 71


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def fetch_v11(sess_id, epoch, parts, forget=(), max_wait_ms=0, min_bytes=1):
    """parts: [(topic, partition, offset)]; forget: [(topic, [partitions])]."""
    by_topic = {}
    for t, p, off in parts:
        by_topic.setdefault(t, []).append((p, off))
    body = struct.pack(">iiiibii", -1, max_wait_ms, min_bytes, 1 << 20, 0, sess_id, epoch)
    body += struct.pack(">i", len(by_topic))
    for t, ps in by_topic.items():
        body += s16(t) + struct.pack(">i", len(ps))
        for p, off in ps:
            body += struct.pack(">iiqqi", p, -1, off, -1, 1 << 20)
    body += struct.pack(">i", len(forget))
    for t, ps in forget:
        body += s16(t) + struct.pack(">i", len(ps)) + b"".join(struct.pack(">i", p) for p in ps)
    return body + s16("")


def parse_fetch_v11(body):
    """(error, session_id, {(topic, partition): (error, hw, log_start, records_len)}, order)."""
    _, err, sess, ntopics = struct.unpack(">ihii", body[:14])
    off = 14
    parts, order = {}, []
    for _ in range(ntopics):
        ln = struct.unpack(">h", body[off:off + 2])[0]
        topic = body[off + 2:off + 2 + ln].decode()
        off += 2 + ln
        n = struct.unpack(">i", body[off:off + 4])[0]
        off += 4
        for _ in range(n):
            p, e, hw, _lso, start, _aborted, _replica, rl = struct.unpack(
                ">ihqqqiii", body[off:off + 42])
            off += 42 + max(rl, 0)
            parts[(topic, p)] = (e, hw, start, rl)
            order.append((topic, p))
    return err, sess, parts, order


class Client:
    def __init__(self, port):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.corr = 0

    def call(self, api, ver, body):
        self.corr += 1
        self.sock.sendall(request(api, ver, self.corr, body))
        r = read_response(self.sock)
        assert r and r[0] == self.corr, f"no answer to api {api}"
        return r[1]

    def fetch(self, *args, **kw):
        return parse_fetch_v11(self.call(1, 11, fetch_v11(*args, **kw)))

    def produce(self, topic, partition, value):
        r = self.call(0, 7, produce_v7(topic, partition, record_batch([value])))
        return produce_error(r)[1]


def main():
    tmp = tempfile.mkdtemp(prefix="sl-fsess-")
    srv = Server(os.path.join(tmp, "data"), "--set", "default_partitions=2",
                 "--set", "fetch_session_slots=3")
    srv.start()
    try:
        c = Client(srv.port)
        c.call(3, 4, metadata_v1(["fa", "fb", "fc"]) + b"\x01")
        for t, p in (("fa", 0), ("fa", 1), ("fb", 0)):
            check(c.produce(t, p, f"{t}-{p}".encode()) == 0, f"produce to {t}-{p}")

        # (0, -1): a full fetch without a session, what librdkafka/kafka-python send.
        err, sid, parts, _ = c.fetch(0, -1, [("fa", 0, 0)])
        check(err == 0 and sid == 0 and parts[("fa", 0)][3] > 0,
              "session id 0 / epoch -1: full fetch, no session")

        # (0, 0): full fetch, creates a session.
        err, sid, parts, _ = c.fetch(0, 0, [("fa", 0, 0), ("fa", 1, 0)])
        check(err == 0 and sid != 0, f"full fetch with epoch 0 creates a session ({sid})")
        check(set(parts) == {("fa", 0), ("fa", 1)} and all(v[3] > 0 and v[1] == 1
                                                            for v in parts.values()),
              "the creating fetch answers every partition")

        # Epoch 1: the client moves its offsets on; nothing changed -> nothing in the answer.
        err, sid1, parts, _ = c.fetch(sid, 1, [("fa", 0, 1), ("fa", 1, 1)])
        check(err == 0 and sid1 == sid and parts == {},
              "incremental fetch with nothing new answers no partitions")

        # New data on fa-1 only.
        c.produce("fa", 1, b"more")
        err, _, parts, _ = c.fetch(sid, 2, [])
        check(err == 0 and set(parts) == {("fa", 1)} and parts[("fa", 1)][1] == 2 and
              parts[("fa", 1)][3] > 0, "incremental fetch answers only the partition with data")

        # Add fb-0 (new: always answered) and move fa-1 on.
        err, _, parts, order = c.fetch(sid, 3, [("fa", 1, 2), ("fb", 0, 0)])
        check(err == 0 and set(parts) == {("fb", 0)} and parts[("fb", 0)][3] > 0,
              "a partition added to the session is answered")

        # Forget fa; new data there is no longer reported.
        err, _, parts, _ = c.fetch(sid, 4, [("fb", 0, 1)], forget=[("fa", [0, 1])])
        check(err == 0 and parts == {}, "forgetting partitions")
        c.produce("fa", 0, b"unseen")
        err, _, parts, _ = c.fetch(sid, 5, [])
        check(err == 0 and parts == {}, "a forgotten partition's new data is not sent")

        # Wrong epoch and unknown id; the session survives a wrong epoch.
        err, esid, parts, _ = c.fetch(sid, 7, [])
        check(err == E_BAD_EPOCH and esid == 0 and parts == {},
              "wrong epoch -> INVALID_FETCH_SESSION_EPOCH")
        err, _, parts, _ = c.fetch(sid ^ 0x5a5a, 1, [])
        check(err == E_SESSION_NOT_FOUND, "unknown session id -> FETCH_SESSION_ID_NOT_FOUND")
        err, _, _, _ = c.fetch(0, 3, [("fa", 0, 0)])
        check(err == E_SESSION_NOT_FOUND, "incremental epoch with id 0 -> not found")

        # A session outlives its connection; a long poll waits on the session's partitions.
        c.sock.close()
        c = Client(srv.port)
        p = Client(srv.port)
        t0 = time.monotonic()
        err, _, parts, _ = c.fetch(sid, 6, [], max_wait_ms=300)
        waited = time.monotonic() - t0
        check(err == 0 and parts == {} and 0.25 < waited < 3,
              f"incremental fetch with nothing new waits max_wait_ms ({waited:.2f} s)")
        t0 = time.monotonic()
        c.corr += 1
        c.sock.sendall(request(1, 11, c.corr, fetch_v11(sid, 7, [], max_wait_ms=5000)))
        p.produce("fb", 0, b"wake")
        r = read_response(c.sock)
        err, _, parts, _ = parse_fetch_v11(r[1])
        waited = time.monotonic() - t0
        check(err == 0 and set(parts) == {("fb", 0)} and parts[("fb", 0)][1] == 2 and
              waited < 4, f"incremental long poll woken by an append ({waited:.2f} s), on a "
              "new connection")

        # Epoch -1 closes: a sessionless full answer, then the id is unknown.
        err, esid, parts, _ = c.fetch(sid, -1, [("fb", 0, 0)])
        check(err == 0 and esid == 0 and set(parts) == {("fb", 0)}, "epoch -1: full fetch")
        err, _, _, _ = c.fetch(sid, 8, [])
        check(err == E_SESSION_NOT_FOUND, "epoch -1 closed the session")

        # A full fetch naming a session closes it and makes a new one.
        _, s1, _, _ = c.fetch(0, 0, [("fa", 0, 0)])
        _, s2, _, _ = c.fetch(s1, 0, [("fa", 0, 0)])
        check(s1 != 0 and s2 != 0 and s2 != s1 and c.fetch(s1, 1, [])[0] == E_SESSION_NOT_FOUND
              and c.fetch(s2, 1, [])[0] == 0, "a full fetch with epoch 0 replaces its session")

        # An incremental fetch that forgets everything closes the session.
        err, esid, parts, _ = c.fetch(s2, 2, [], forget=[("fa", [0])])
        check(err == 0 and esid == 0 and c.fetch(s2, 3, [])[0] == E_SESSION_NOT_FOUND,
              "a session left empty is closed")

        # Bounded cache (3 slots): three one-partition sessions fill it; a fourth of the same
        # size gets none; a bigger one evicts the smallest (the least recently used of them).
        ids = [c.fetch(0, 0, [("fa", 0, 0)])[1] for _ in range(3)]
        check(all(ids) and len(set(ids)) == 3, "three sessions")
        _, none, _, _ = c.fetch(0, 0, [("fb", 0, 0)])
        check(none == 0, "full cache: answered without a session")
        _, big, _, _ = c.fetch(0, 0, [("fa", 0, 0), ("fa", 1, 0)])
        gone = [i for i in ids if c.fetch(i, 1, [])[0] == E_SESSION_NOT_FOUND]
        check(big != 0 and gone == [ids[0]], "a bigger session evicts the smallest, oldest one")

        # A partition that does not exist stays in every answer (errors are always sent).
        err, _, parts, _ = c.fetch(big, 1, [("nosuch", 0, 0)])
        check(err == 0 and parts.get(("nosuch", 0), (0,))[0] == 3, "an erroring partition "
              "is answered")
        err, _, parts, _ = c.fetch(big, 2, [("fa", 0, 2), ("fa", 1, 2)])
        check(err == 0 and set(parts) == {("nosuch", 0)}, "... and again in the next one")
        # Round-robin: partitions that returned records move to the end of the session. The
        # session was [fa-0, fa-1] + nosuch-0; fa-0 and fa-1 returned records at epoch 1.
        err, _, parts, order = c.fetch(big, 3, [("fa", 0, 0)])
        check(err == 0 and order == [("nosuch", 0), ("fa", 0)],
              f"partitions that returned records come last next time: {order}")
        err, _, parts, order = c.fetch(big, 4, [("fa", 1, 0)])
        check(err == 0 and order == [("nosuch", 0), ("fa", 1), ("fa", 0)],
              f"... each time: {order}")
        # Records out per topic: whole batches of 2, 3 and 1 records; a fetch from offset 3
        # (inside the second batch) serves 3 + 1 of them.
        for vals in ([b"a", b"b"], [b"c", b"d", b"e"], [b"f"]):
            r = c.call(0, 7, produce_v7("fc", 0, record_batch(vals)))
            check(produce_error(r)[1] == 0, f"produce a batch of {len(vals)} to fc")
        _, _, parts, _ = c.fetch(0, -1, [("fc", 0, 0)])
        _, _, parts2, _ = c.fetch(0, -1, [("fc", 0, 3)])
        page = srv.scrape()
        check(parts[("fc", 0)][3] > parts2[("fc", 0)][3] > 0 and
              'sluice_topic_records_out_total{topic="fc"} 10' in page,
              "metrics: records out per topic counts the served batches' records (6 + 4)")
        check(srv.alive(), "collector still running")
    finally:
        rc = srv.stop()
        check(rc == 0, f"graceful stop (rc {rc})")
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        print(f"{len(FAILS)} check(s) failed; collector log:\n{srv.log()[-3000:]}")
        sys.exit(1)


if __name__ == "__main__":
    main()
