#!/usr/bin/python3
"""Collector storage on a full disk: on a 3 MiB tmpfs (mounted here; needs root, and fails
loudly without it), appends are refused with ENOSPC / KAFKA_STORAGE_ERROR while nothing partial
becomes readable; once a filler file is deleted appends resume; the log then verifies intact
(every record at its offset) after a reopen."""
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
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (512 * 1024))
        data = os.path.join(mnt, "data")
        w = subprocess.run([TOOL, "enospc", data, filler], capture_output=True, text=True,
                           timeout=120)
        if w.returncode != 0:
            sys.exit(f"enospc run failed: {w.stdout} {w.stderr}")
        v = subprocess.run([TOOL, "verify", data, "0"], capture_output=True, text=True,
                           timeout=120)
        if v.returncode != 0 or not v.stdout.startswith("OK "):
            sys.exit(f"verify failed: {v.stdout} {v.stderr}")
        print("ok:", w.stderr.strip().splitlines()[-1], "|", v.stdout.strip())
    finally:
        subprocess.run(["umount", mnt])
        os.rmdir(mnt)
        os.rmdir(tmp)


if __name__ == "__main__":
    main()
