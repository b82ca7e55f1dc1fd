#!/usr/bin/python3
"""Collector storage survives SIGKILL: a writer appends batches (fsync: always) and prints each
acknowledged one; it is killed at random points, at least 20 times; after each kill a verifier
reopens the log (recovery) and checks that every acknowledged batch is there, intact, at its
offset, and that nothing is readable past the recovered end. SL_SOAK=1 writes 1M records."""
import os
import random
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
    return int(out.stdout.split()[1])


def main():
    if not os.access(TOOL, os.X_OK):
        sys.exit(f"{TOOL} is missing: build the sl-test-storage_writer target")
    rng = random.Random(int(os.environ.get("SL_SEED", str(int(time.time())))))
    tmp = tempfile.mkdtemp(prefix="sl-sigkill-")
    data_dir = os.path.join(tmp, "data")
    acked = -1
    kills = 0
    start = time.monotonic()
    try:
        run = 0
        while True:
            run += 1
            p = subprocess.Popen([TOOL, "write", data_dir, str(TOTAL), str(run)],
                                 stdout=subprocess.PIPE, text=True)
            # Kill at a random point: some right at startup (during recovery), most mid-stream.
            delay = rng.choice([0.0, 0.01, 0.05]) if rng.random() < 0.2 else rng.uniform(0.05, 1.0)
            done = False
            try:
                p.wait(timeout=delay)
                done = True
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.wait()
                kills += 1
            for line in p.stdout.read().splitlines():
                parts = line.split()
                if parts and parts[0] == "ACK":
                    last = int(parts[2])
                    if last <= acked:
                        sys.exit(f"acks out of order: {line} after {acked}")
                    acked = last
                elif parts and parts[0] == "DONE":
                    done = True
            if done and p.returncode != 0:
                sys.exit(f"writer failed with {p.returncode}")
            end = verify(data_dir, acked)
            if end <= acked:
                sys.exit(f"log ends at {end} but {acked} was acknowledged")
            if done and kills >= MIN_KILLS:
                break
            if done:
                # Target reached before enough kills: start over with a fresh log.
                shutil.rmtree(data_dir)
                acked = -1
            if time.monotonic() - start > BUDGET_S and kills >= MIN_KILLS:
                break
        print(f"ok: {kills} kills, {run} runs, last acked offset {acked}, "
              f"{time.monotonic() - start:.1f}s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
