#!/usr/bin/python3
"""Collector storage survives SIGKILL: a writer appends batches (fsync: always) and prints each
acknowledged one; it is killed at random points, at least 20 times. After each kill the active
.log is usually damaged further, the way a crash of the machine could leave it: cut at a random
byte after the end of the last acknowledged batch, sometimes with zeros or garbage appended.
A verifier then reopens the log (recovery) and checks that it was cut exactly at the last whole
batch before the damage, that every acknowledged batch is there, intact, at its offset, and that
nothing is readable past the recovered end. SL_SOAK=1 writes 1M records."""
import os
import random
import struct
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("SL_BUILD_DIR", "build")
TOOL = os.path.join(BUILD, "tests", "sl-test-storage_writer")
SOAK = os.environ.get("SL_SOAK") == "1"
TOTAL = 1_000_000 if SOAK else 300_000
MIN_KILLS = 20
BUDGET_S = 600 if SOAK else 50


def verify(data_dir, acked):
    out = subprocess.run([TOOL, "verify", data_dir, str(acked)], capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0 or not out.stdout.startswith("OK "):
        sys.exit(f"verify failed (acked {acked}): rc={out.returncode} {out.stdout} {out.stderr}")
    parts = out.stdout.split()
    cut = int(parts[3].split("=")[1]) if len(parts) > 3 else 0  # "OK 0 0": no partition yet
    return int(parts[1]), cut


def active_log(data_dir):
    part = os.path.join(data_dir, "t-0")
    logs = sorted(n for n in os.listdir(part) if n.endswith(".log"))
    return os.path.join(part, logs[-1]), int(logs[-1][:-4])


def whole_batches(data, seg_base):
    """(byte end, next offset) of the whole batches at the start of data (written by us, so a
    batch that is all there is valid; a torn one or garbage ends the walk)."""
    pos, nxt = 0, seg_base
    while pos + 61 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        size = 12 + length
        if length < 49 or pos + size > len(data) or base != nxt:
            break
        (lod,) = struct.unpack_from(">i", data, pos + 23)
        pos, nxt = pos + size, base + lod + 1
    return pos, nxt


def damage(rng, data_dir, last_ack):
    """Cuts the active .log at a random byte at or after the end of the last acknowledged batch
    (when that batch is in it), sometimes appending zeros or garbage. Returns the expected
    (next offset, bytes recovery cuts)."""
    path, seg_base = active_log(data_dir)
    with open(path, "rb") as f:
        data = f.read()
    low = last_ack[1] if last_ack and last_ack[0] == seg_base else 0
    size = rng.randint(low, len(data))
    data = data[:size]
    kind = rng.choice(["cut", "cut", "zeros", "garbage"])
    if kind == "zeros":
        data += bytes(rng.randint(1, 9000))
    elif kind == "garbage":
        data += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 9000)))
    with open(path, "wb") as f:
        f.write(data)
    end, nxt = whole_batches(data[:size], seg_base)
    return nxt, len(data) - end, path, end


def main():
    if not os.access(TOOL, os.X_OK):
        sys.exit(f"{TOOL} is missing: build the sl-test-storage_writer target")
    rng = random.Random(int(os.environ.get("SL_SEED", str(int(time.time())))))
    tmp = tempfile.mkdtemp(prefix="sl-sigkill-")
    data_dir = os.path.join(tmp, "data")
    acked = -1
    last_ack = None  # (segment base, byte end) of the last acknowledged batch
    kills = 0
    damaged = 0
    start = time.monotonic()
    try:
        run = 0
        while True:
            run += 1
            p = subprocess.Popen([TOOL, "write", data_dir, str(TOTAL), str(run)],
                                 stdout=subprocess.PIPE, text=True)
            # Kill at a random point: some right at startup (during recovery), most mid-stream.
            delay = rng.choice([0.0, 0.01, 0.05]) if rng.random() < 0.2 else rng.uniform(0.05, 1.0)
            done = killed = False
            try:
                p.wait(timeout=delay)
                done = True
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.wait()
                kills += 1
                killed = True
            for line in p.stdout.read().splitlines():
                parts = line.split()
                if parts and parts[0] == "ACK":
                    last = int(parts[2])
                    if last <= acked:
                        sys.exit(f"acks out of order: {line} after {acked}")
                    acked = last
                    last_ack = (int(parts[3]), int(parts[4]))
                elif parts and parts[0] == "DONE":
                    done = True
            if done and not killed and p.returncode != 0:
                sys.exit(f"writer failed with {p.returncode}")
            expect = None
            if killed and os.path.isdir(os.path.join(data_dir, "t-0")) and rng.random() < 0.7:
                expect = damage(rng, data_dir, last_ack)
                damaged += 1
            end, cut = verify(data_dir, acked)
            if end <= acked:
                sys.exit(f"log ends at {end} but {acked} was acknowledged")
            if expect:
                want_next, want_cut, path, want_size = expect
                size = os.path.getsize(path)
                if (end, cut, size) != (want_next, want_cut, want_size):
                    sys.exit(f"recovery of {path}: next offset {end}, cut {cut} bytes, size {size};"
                             f" expected {want_next}, {want_cut}, {want_size}")
            if done and kills >= MIN_KILLS:
                break
            if done:
                # Target reached before enough kills: start over with a fresh log.
                shutil.rmtree(data_dir)
                acked = -1
                last_ack = None
            if time.monotonic() - start > BUDGET_S and kills >= MIN_KILLS:
                break
        print(f"ok: {kills} kills ({damaged} with a damaged tail), {run} runs, "
              f"last acked offset {acked}, "
              f"{time.monotonic() - start:.1f}s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
