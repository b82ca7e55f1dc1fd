#!/usr/bin/python3
"""Collector storage on a full disk: on a 3 MiB tmpfs (mounted here; needs root, and fails
loudly without it), appends are refused with ENOSPC / KAFKA_STORAGE_ERROR while nothing partial
becomes readable; once a filler file is deleted appends resume; the log then verifies intact
(every record at its offset) after a reopen. A second run dies (_exit, no close) right after the
disk filled up; recovery on the still-full disk, and again once space is back, must find
every acknowledged record intact and nothing of the refused appends."""
import os
import subprocess
import sys
import tempfile

BUILD = os.environ.get("SL_BUILD_DIR", "build")
TOOL = os.path.join(BUILD, "tests", "sl-test-storage_writer")


def main():
    if not os.access(TOOL, os.X_OK):
        sys.exit(f"{TOOL} is missing: build the sl-test-storage_writer target")
    if os.geteuid() != 0:
        sys.exit("this test mounts a tmpfs and must run as root")
    tmp = tempfile.mkdtemp(prefix="sl-enospc-")
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"mount tmpfs failed: {r.stderr.strip()}")
    try:
        results = []
        for crash in (False, True):
            filler = os.path.join(mnt, "filler")
            with open(filler, "wb") as f:
                f.write(b"\0" * (512 * 1024))
            data = os.path.join(mnt, "data-crash" if crash else "data")
            w = subprocess.run([TOOL, "enospc", data, filler] + (["crash"] if crash else []),
                               capture_output=True, text=True, timeout=120)
            acked = [int(l.split()[1]) for l in w.stdout.splitlines() if l.startswith("ACKED ")]
            if w.returncode != 0 or not acked or acked[-1] < 0:
                sys.exit(f"enospc run (crash={crash}) failed: {w.stdout} {w.stderr}")
            if crash:
                # Recovery with the disk still full: opening must not cut good data (it may
                # fail to write what it rebuilds, and says so), and every acknowledged record
                # reads back.
                full = subprocess.run([TOOL, "verify", data, str(acked[-1])],
                                      capture_output=True, text=True, timeout=120)
                if full.returncode != 0 or not full.stdout.startswith("OK ") or \
                        int(full.stdout.split()[1]) != acked[-1] + 1:
                    sys.exit(f"recovery on the full disk failed: {full.stdout} {full.stderr}")
                os.unlink(filler)  # space back before the next restart
            v = subprocess.run([TOOL, "verify", data, str(acked[-1])], capture_output=True,
                               text=True, timeout=120)
            if v.returncode != 0 or not v.stdout.startswith("OK "):
                sys.exit(f"verify (crash={crash}) failed: {v.stdout} {v.stderr}")
            if crash and int(v.stdout.split()[1]) != acked[-1] + 1:
                # Each append waited for its acknowledgement: the refused ones must be gone.
                sys.exit(f"after the crash the log ends at {v.stdout.split()[1]}, not right "
                         f"after the last acknowledged offset {acked[-1]}")
            results.append(f"{'crash' if crash else 'clean'}: acked {acked[-1]}, "
                           f"{v.stdout.strip()}")
            subprocess.run(["rm", "-rf", data])
        print("ok:", " | ".join(results))
    finally:
        subprocess.run(["umount", mnt])
        os.rmdir(mnt)
        os.rmdir(tmp)


if __name__ == "__main__":
    main()
