#!/usr/bin/python3
"""Produce timeout_ms with acks=-1 on a `fsync: always` topic whose fdatasync is slow (the test
server's --sync-delay-ms hook): an fsync slower than timeout_ms is answered REQUEST_TIMED_OUT at
timeout_ms, the batch stays appended (as in Kafka) and is fetched; a timeout longer than the
fsync gets NONE once it is durable; acks=1 does not wait at all."""
import os
import shutil
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agent_helpers import TOOLS, workdir  # noqa: E402
from test_kafka_hostile import (metadata_v1, produce_error, read_response,  # noqa: E402
                                record_batch, request, s16)
from test_kafka_fetch_session import fetch_v11, parse_fetch_v11  # noqa: E402

FAILS = []
SYNC_DELAY_MS = 800
E_REQUEST_TIMED_OUT = 7


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def produce(topic, partition, batch, acks, timeout_ms):
    return (struct.pack(">h", -1) + struct.pack(">hi", acks, timeout_ms) +
            struct.pack(">i", 1) + s16(topic) + struct.pack(">ii", 1, partition) +
            struct.pack(">i", len(batch)) + batch)


def main():
    tmp = workdir("prodtimeout")
    srv = subprocess.Popen([os.path.join(TOOLS, "sl-test-kafka_server"), "--data-dir",
                            os.path.join(tmp, "data"), "--fsync", "always",
                            "--sync-delay-ms", str(SYNC_DELAY_MS)],
                           stdout=subprocess.PIPE, text=True)
    try:
        line = srv.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            sys.exit(f"test server did not start: {line}")
        sock = socket.create_connection(("127.0.0.1", int(line[1])), timeout=15)
        corr = 0

        def call(api, ver, body):
            nonlocal corr
            corr += 1
            sock.sendall(request(api, ver, corr, body))
            r = read_response(sock, 15)
            assert r and r[0] == corr, f"no answer to api {api}"
            return r[1]

        call(3, 4, metadata_v1(["slow"]) + b"\x01")
        # The fsync takes SYNC_DELAY_MS; the request allows 200 ms.
        t0 = time.monotonic()
        _, err, base = produce_error(call(0, 7, produce("slow", 0, record_batch([b"one"]), -1,
                                                        200)))
        dt = time.monotonic() - t0
        check(err == E_REQUEST_TIMED_OUT and base == 0 and 0.15 < dt < SYNC_DELAY_MS / 1000,
              f"fsync slower than timeout_ms: REQUEST_TIMED_OUT after {dt:.2f} s (base {base})")
        # Enough time: answered NONE once durable (after this batch's own slow fsync).
        t0 = time.monotonic()
        _, err, base = produce_error(call(0, 7, produce("slow", 0, record_batch([b"two"]), -1,
                                                        10000)))
        dt = time.monotonic() - t0
        check(err == 0 and base == 1 and dt >= SYNC_DELAY_MS / 1000 * 0.9,
              f"timeout_ms longer than the fsync: NONE after {dt:.2f} s (base {base})")
        # acks=1 answers once appended, whatever the disk.
        t0 = time.monotonic()
        _, err, base = produce_error(call(0, 7, produce("slow", 0, record_batch([b"three"]), 1,
                                                        100)))
        dt = time.monotonic() - t0
        check(err == 0 and base == 2 and dt < SYNC_DELAY_MS / 1000 / 2,
              f"acks=1 does not wait for the fsync ({dt:.2f} s)")
        # The timed-out batch stayed appended.
        err, _, parts, _ = parse_fetch_v11(call(1, 11, fetch_v11(0, -1, [("slow", 0, 0)])))
        e, hw, _, rlen = parts[("slow", 0)]
        check(err == 0 and e == 0 and hw == 3 and rlen > 0,
              f"the timed-out batch is in the log (high watermark {hw})")
        sock.close()
    finally:
        srv.terminate()
        try:
            rc = srv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            srv.kill()
            rc = "timeout"
        check(rc == 0, f"test server stops cleanly (rc {rc})")
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        sys.exit(f"{len(FAILS)} check(s) failed")


if __name__ == "__main__":
    main()
