#!/usr/bin/python3
"""Hostile input to the collector's Kafka port: random bytes, a 1 GiB size prefix, a negative
size, a truncated frame, an array count of 2^31-1, unknown APIs and versions, a batch with a bad
CRC, a topic named ../x, too many connections. Each gets its error or a closed connection, the
server's memory stays flat, and a well-behaved connection keeps working throughout. Also checks
pipelined requests are answered in order and that acks=0 is never answered."""
import os
import random
import shutil
import socket
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafkasrv import Server  # noqa: E402

# How much the collector's RSS may grow under all the hostile input. An ASan build also pays
# shadow memory, redzones and a (4 MiB) quarantine for every allocation, so it gets more room.
RSS_LIMIT_KIB = (24 if os.environ.get("SL_SANITIZE") == "1" else 8) * 1024

FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def s16(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">h", len(b)) + b


def request(api, ver, corr, body, client=b"hostile"):
    hdr = struct.pack(">hhi", api, ver, corr) + s16(client)
    return struct.pack(">i", len(hdr) + len(body)) + hdr + body


def recv_exact(sock, n, timeout=10):
    sock.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_response(sock, timeout=10):
    head = recv_exact(sock, 4, timeout)
    if head is None:
        return None
    size = struct.unpack(">i", head)[0]
    body = recv_exact(sock, size, timeout)
    return None if body is None else (struct.unpack(">i", body[:4])[0], body[4:])


def closed_by_server(sock, timeout=10):
    """True when the server closes the connection (EOF or reset) within timeout."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def metadata_v1(topics):
    if topics is None:
        return struct.pack(">i", -1)
    return struct.pack(">i", len(topics)) + b"".join(s16(t) for t in topics)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def record_batch(values, ts=None):
    ts = ts or int(time.time() * 1000)
    recs = b""
    for i, v in enumerate(values):
        body = bytes([0]) + zz(0) + zz(i) + zz(-1) + zz(len(v)) + v + zz(0)
        recs += zz(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, ts, ts, -1, -1, -1,
                            len(values)) + recs
    crc = crc32c(after_crc)
    tail = struct.pack(">ibI", -1, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(tail)) + tail


def zz(n):
    n = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def produce_v7(topic, partition, batch, acks=-1):
    return (struct.pack(">h", -1) + struct.pack(">hi", acks, 5000) +
            struct.pack(">i", 1) + s16(topic) + struct.pack(">ii", 1, partition) +
            struct.pack(">i", len(batch)) + batch)


def produce_error(resp_body):
    # responses[1]: name, partitions[1]: index, error_code, base_offset ...
    n = struct.unpack(">i", resp_body[:4])[0]
    ln = struct.unpack(">h", resp_body[4:6])[0]
    off = 6 + ln + 4
    index, err, base = struct.unpack(">ihq", resp_body[off:off + 14])
    return n, err, base


class Good:
    """A well-behaved client on its own connection: Metadata and Produce must keep working."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.corr = 1000

    def works(self):
        self.corr += 1
        self.sock.sendall(request(3, 1, self.corr, metadata_v1(["good"])))
        r = read_response(self.sock)
        if not r or r[0] != self.corr:
            return False
        self.corr += 1
        self.sock.sendall(request(0, 7, self.corr, produce_v7("good", 0,
                                                              record_batch([b"still here"]))))
        r = read_response(self.sock)
        return bool(r) and r[0] == self.corr and produce_error(r[1])[1] == 0


def main():
    tmp = tempfile.mkdtemp(prefix="sl-hostile-")
    data = os.path.join(tmp, "data")
    srv = Server(data, "--set", "max_connections=40", "--set", "max_request_size=1MiB")
    srv.start()
    port = srv.port
    rng = random.Random(1234)
    conn = lambda: socket.create_connection(("127.0.0.1", port), timeout=10)  # noqa: E731
    try:
        good = Good(port)
        check(good.works(), "well-behaved client works at the start")
        rss0 = srv.rss_kib()

        # Pipelined ApiVersions + Metadata in one write: answered in order; acks=0 unanswered.
        s = conn()
        s.sendall(request(18, 0, 1, b"") + request(3, 0, 2, struct.pack(">i", 0)) +
                  request(0, 7, 3, produce_v7("good", 0, record_batch([b"a0"]), acks=0)) +
                  request(18, 2, 4, b""))
        ids = [read_response(s)[0] for _ in range(3)]
        check(ids == [1, 2, 4], f"pipelined requests answered in order, acks=0 skipped: {ids}")
        # ApiVersions v3 (flexible): UNSUPPORTED_VERSION with the v0 body listing our APIs.
        s.sendall(request(18, 3, 5, b"\x00\x00\x00"))
        cid, body = read_response(s)
        err, n = struct.unpack(">hi", body[:6])
        keys = {struct.unpack(">hhh", body[6 + 6 * i:12 + 6 * i])[0]: 0 for i in range(n)}
        check(cid == 5 and err == 35 and 18 in keys and 0 in keys,
              "ApiVersions v3 gets UNSUPPORTED_VERSION and the v0 body")
        s.close()

        # Random bytes, unframed and framed.
        for i in range(20):
            s = conn()
            s.sendall(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 5000))))
            s.shutdown(socket.SHUT_WR)
            ok = closed_by_server(s)
            s.close()
            if not ok:
                break
        check(ok, "random bytes: connection closed")
        answered = closed = 0
        for i in range(200):
            s = conn()
            api = rng.choice([0, 1, 2, 3, 18, 19, 20, 22])
            ver = rng.randint(0, 11)
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
            s.sendall(request(api, ver, 7, body))
            s.settimeout(10)
            try:
                r = read_response(s)
            except (ConnectionResetError, socket.timeout):
                r = None
            if r is None:
                closed += 1
            else:
                answered += 1
            s.close()
        check(srv.alive() and answered + closed == 200,
              f"200 random bodies: {answered} answered, {closed} closed, server alive")
        check(good.works(), "well-behaved client works after random input")

        # Sizes: 1 GiB, negative, over max_request_size; truncated frame held open.
        for name, prefix in (("1 GiB size", struct.pack(">i", 1 << 30)),
                             ("negative size", struct.pack(">i", -5)),
                             ("size over max_request_size", struct.pack(">i", 2 << 20))):
            s = conn()
            s.sendall(prefix + b"\x00" * 16)
            check(closed_by_server(s, 5), f"{name}: connection closed before the frame is read")
            s.close()
        t = conn()
        t.sendall(struct.pack(">i", 1000) + b"\x00\x03\x00\x01" + b"x" * 20)
        check(good.works(), "well-behaved client works while a truncated frame is pending")
        t.close()

        # Array count 2^31-1 (Metadata topics, Produce topic_data, Fetch topics).
        for api, ver, body in ((3, 1, struct.pack(">i", 0x7FFFFFFF)),
                               (0, 7, struct.pack(">hhii", -1, 1, 100, 0x7FFFFFFF)),
                               (1, 11, struct.pack(">iiiibiii", -1, 0, 1, 100, 0, 0, -1,
                                                   0x7FFFFFFF))):
            s = conn()
            s.sendall(request(api, ver, 9, body))
            check(closed_by_server(s), f"api {api} v{ver} array count 2^31-1: closed")
            s.close()

        # Unknown API key and unsupported version: closed; others unaffected.
        for api, ver in ((999, 0), (0, 2), (1, 12), (3, 9), (44, 0)):
            s = conn()
            s.sendall(request(api, ver, 11, b""))
            check(closed_by_server(s), f"api {api} v{ver} (unsupported): connection closed")
            s.close()

        # A batch with a bad CRC: CORRUPT_MESSAGE, connection stays usable.
        s = conn()
        s.sendall(request(3, 1, 20, metadata_v1(["crc"])))
        read_response(s)
        batch = bytearray(record_batch([b"payload-%d" % i for i in range(10)]))
        batch[-3] ^= 0x40
        s.sendall(request(0, 7, 21, produce_v7("crc", 0, bytes(batch))))
        cid, body = read_response(s)
        check(cid == 21 and produce_error(body)[1] == 2, "bad CRC: CORRUPT_MESSAGE")
        s.sendall(request(0, 7, 22, produce_v7("crc", 0, record_batch([b"fine"]))))
        cid, body = read_response(s)
        check(cid == 22 and produce_error(body)[1:] == (0, 0),
              "the same connection then appends a good batch at offset 0")
        s.close()

        # Topic ../x: Metadata INVALID_TOPIC, Produce unknown, CreateTopics INVALID_TOPIC.
        s = conn()
        s.sendall(request(3, 4, 30, metadata_v1(["../x"]) + b"\x01"))
        cid, body = read_response(s)
        # topics[1] = {error_code int16, name "../x", ...}: the error sits just before the name.
        err_at = body.find(s16("../x")) - 2
        check(struct.unpack(">h", body[err_at:err_at + 2])[0] == 17,
              "Metadata for ../x: INVALID_TOPIC")
        s.sendall(request(0, 7, 31, produce_v7("../x", 0, record_batch([b"evil"]))))
        cid, body = read_response(s)
        check(produce_error(body)[1] == 3, "Produce to ../x: UNKNOWN_TOPIC_OR_PARTITION")
        ct = (struct.pack(">i", 1) + s16("../x") + struct.pack(">ihii", 1, 1, 0, 0) +
              struct.pack(">ib", 1000, 0))
        s.sendall(request(19, 1, 32, ct))
        cid, body = read_response(s)
        check(struct.unpack(">h", body[4 + 2 + 4:4 + 2 + 4 + 2])[0] == 17,
              "CreateTopics ../x: INVALID_TOPIC")
        s.close()
        check(not os.path.exists(os.path.join(tmp, "x")) and
              not any(n.startswith("x-") for n in os.listdir(tmp)),
              "nothing created outside data_dir")

        # A client that never reads its responses: the server stops reading it (backpressure)
        # instead of queueing without bound.
        s = conn()
        one = request(18, 2, 50, b"")
        blob = one * 20000
        sent = 0
        s.settimeout(3)
        try:
            for _ in range(100):
                s.sendall(blob)
                sent += len(blob)
        except socket.timeout:
            pass
        check(sent < 100 * len(blob), f"non-reading client: server stopped reading after "
              f"~{sent // len(one)} requests")
        check(good.works(), "well-behaved client works beside a non-reading one")
        check(srv.rss_kib() - rss0 < RSS_LIMIT_KIB, "memory bounded with a non-reading client")
        s.close()

        # max_connections: 40 allowed, the rest closed at once.
        socks = [conn() for _ in range(45)]
        time.sleep(0.3)
        refused = sum(1 for x in socks if closed_by_server(x, 0.5))
        for x in socks:
            x.close()
        check(refused >= 5, f"max_connections=40: {refused} of 45 extra connections closed")
        time.sleep(0.3)
        check(good.works(), "well-behaved client works at the end")
        rss1 = srv.rss_kib()
        check(rss1 - rss0 < RSS_LIMIT_KIB,
              f"memory grew {rss1 - rss0} KiB (< {RSS_LIMIT_KIB // 1024} MiB)")
        check(srv.alive(), "server still running")
        check(srv.stop() == 0, "server stops cleanly")
    finally:
        srv.kill()
        if FAILS:
            print(srv.log()[-5000:])
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        sys.exit(f"{len(FAILS)} check(s) failed")


if __name__ == "__main__":
    main()
