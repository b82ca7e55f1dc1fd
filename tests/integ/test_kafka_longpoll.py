#!/usr/bin/python3
"""Fetch long polling, idle timeout and graceful stop on the collector's Kafka port: a fetch at
the log end waits and is woken by an append on another connection; one that nothing wakes
answers empty at max_wait_ms; a silent connection is closed at idle_timeout; on SIGTERM a
waiting fetch is answered before its connection closes."""
import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafkasrv import Server  # noqa: E402
from test_kafka_hostile import (closed_by_server, metadata_v1, produce_error,  # noqa: E402
                                produce_v7, read_response, record_batch, request, s16)

FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def fetch_v11(topic, partition, offset, max_wait_ms, min_bytes=1):
    return (struct.pack(">iiiibii", -1, max_wait_ms, min_bytes, 1 << 20, 0, 0, -1) +
            struct.pack(">i", 1) + s16(topic) +
            struct.pack(">iiiqq", 1, partition, -1, offset, 0) +
            struct.pack(">i", 1 << 20) + struct.pack(">i", 0) + s16(""))


def fetch_records_len(body):
    # throttle, error, session, [topic, [index, err, hw, lso, lstart, aborted, replica, records]]
    off = 4 + 2 + 4 + 4
    off += 2 + struct.unpack(">h", body[off:off + 2])[0] + 4
    index, err, hw = struct.unpack(">ihq", body[off:off + 14])
    off += 14 + 8 + 8 + 4 + 4
    return err, hw, struct.unpack(">i", body[off:off + 4])[0]


def main():
    tmp = tempfile.mkdtemp(prefix="sl-longpoll-")
    srv = Server(os.path.join(tmp, "data"), "--set", "idle_timeout=1s")
    srv.start()
    conn = lambda: socket.create_connection(("127.0.0.1", srv.port), timeout=10)  # noqa: E731
    try:
        a = conn()
        a.sendall(request(3, 4, 1, metadata_v1(["lp"]) + b"\x01"))
        read_response(a)
        # Woken by an append.
        f = conn()
        t0 = time.monotonic()
        f.sendall(request(1, 11, 2, fetch_v11("lp", 0, 0, 5000)))

        def later():
            time.sleep(0.3)
            a.sendall(request(0, 7, 3, produce_v7("lp", 0, record_batch([b"wake up"]))))
        threading.Thread(target=later).start()
        cid, body = read_response(f)
        dt = time.monotonic() - t0
        err, hw, rlen = fetch_records_len(body)
        check(cid == 2 and err == 0 and hw == 1 and rlen > 0 and 0.25 < dt < 2.0,
              f"long poll woken by an append after {dt:.2f}s with {rlen} record bytes")
        cid, body = read_response(a)
        check(produce_error(body)[1] == 0, "the waking produce succeeded")
        # Nothing arrives: answered empty at max_wait_ms.
        t0 = time.monotonic()
        f.sendall(request(1, 11, 4, fetch_v11("lp", 0, 1, 700)))
        cid, body = read_response(f)
        dt = time.monotonic() - t0
        err, hw, rlen = fetch_records_len(body)
        check(cid == 4 and err == 0 and rlen == 0 and 0.6 < dt < 2.0,
              f"unwoken long poll answered empty after {dt:.2f}s (max_wait_ms 700)")
        # Pipelined behind a waiting fetch, a metadata answer waits its turn.
        f.sendall(request(1, 11, 5, fetch_v11("lp", 0, 1, 600)) +
                  request(3, 1, 6, metadata_v1(["lp"])))
        ids = [read_response(f)[0], read_response(f)[0]]
        check(ids == [5, 6], f"responses stay in request order behind a long poll: {ids}")
        f.close()
        a.close()
        # Idle timeout.
        i = conn()
        t0 = time.monotonic()
        closed = closed_by_server(i, 5)
        dt = time.monotonic() - t0
        check(closed and 0.9 < dt < 3.5, f"silent connection closed after {dt:.2f}s (idle 1s)")
        i.close()
        # Graceful stop answers a waiting fetch first.
        w = conn()
        w.sendall(request(1, 11, 7, fetch_v11("lp", 0, 1, 20000)))
        time.sleep(0.3)
        # Metrics while that fetch waits: three fetches answered so far, one client connected.
        text = srv.scrape()
        srv.proc.send_signal(signal.SIGTERM)
        r = read_response(w, 10)
        check(r is not None and r[0] == 7, "SIGTERM: the waiting fetch is answered")
        check(closed_by_server(w, 10), "then its connection is closed")
        w.close()
        rc = srv.proc.wait(timeout=20)
        check(rc == 0, f"server exits 0 ({rc})")
        srv.proc = None
        for want in ('sluice_topic_bytes_in_total{topic="lp"} 75',
                     'sluice_topic_records_in_total{topic="lp"} 1',
                     'sluice_topic_bytes_out_total{topic="lp"} 75',
                     'sluice_topic_records_out_total{topic="lp"} 1',
                     'sluice_partition_log_end_offset{topic="lp",partition="0"} 1',
                     'sluice_kafka_request_duration_seconds_count{api="Fetch"} 3',
                     'sluice_kafka_request_duration_seconds_count{api="Produce"} 1',
                     'sluice_kafka_connections 1'):
            check(want in text, f"metrics: {want}")
    finally:
        srv.kill()
        if FAILS:
            print(srv.log()[-4000:])
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        sys.exit(f"{len(FAILS)} check(s) failed")


if __name__ == "__main__":
    main()
