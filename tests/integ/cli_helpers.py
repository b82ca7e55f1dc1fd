"""Helpers for the `sluice` command line's integration tests (imported, not a test): running the
real binary, checks that collect failures, a background consumer, and a pseudo-terminal runner
for the progress line."""
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time

BUILD = os.environ.get("SL_BUILD_DIR", "build")
SLUICE = os.path.join(BUILD, "collector", "cli", "sluice")
KCAT = shutil.which("kcat") or shutil.which("kafkacat")
FAILS = []


def check(cond, what, detail=None):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)
        if detail:
            print("     " + str(detail)[-3000:], flush=True)
    return cond


def need_binaries():
    if not os.access(SLUICE, os.X_OK):
        sys.exit(f"{SLUICE} is missing: build the sluice target")
    if not KCAT:
        sys.exit("kcat is required (packaging/deps.sh --test installs it)")


def env_for(bootstrap):
    env = dict(os.environ)
    env.pop("SLUICE_BOOTSTRAP", None)
    if bootstrap:
        env["SLUICE_BOOTSTRAP"] = bootstrap
    return env


def sluice(bootstrap, *args, input=None, timeout=120, binary=False):
    """Runs sluice with SLUICE_BOOTSTRAP=bootstrap; returns the CompletedProcess."""
    return subprocess.run([SLUICE, *args], input=input, capture_output=True, timeout=timeout,
                          env=env_for(bootstrap), text=not binary)


class Background:
    """A sluice process whose stdout is collected into a file (e.g. `consume -f`)."""

    def __init__(self, bootstrap, workdir, name, *args):
        self.out_path = os.path.join(workdir, name + ".out")
        self.err_path = os.path.join(workdir, name + ".err")
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.p = subprocess.Popen([SLUICE, *args], stdout=self.out, stderr=self.err,
                                  env=env_for(bootstrap))

    def lines(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode(errors="replace").splitlines()

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_lines(self, n, timeout=30):
        """Waits (bounded) until n lines were written; returns the lines."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.lines()
            if len(got) >= n or self.p.poll() is not None:
                return got
            time.sleep(0.05)
        return self.lines()

    def stop(self, sig=signal.SIGINT, timeout=30):
        """Sends sig and returns the exit code (None when it had to be killed)."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            rc = None
        self.out.close()
        self.err.close()
        return rc


def run_with_tty_stderr(bootstrap, args, input_bytes=None, timeout=60, pause=0.0,
                        interrupt_after=None):
    """Runs sluice with stderr on a pseudo-terminal (stdout and stdin on pipes); returns
    (exit code, stdout bytes, what the terminal showed). input_bytes may be a list of chunks,
    written `pause` seconds apart (a slow producer upstream). interrupt_after: seconds after
    which SIGINT is sent (for `consume -f`)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([SLUICE, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=slave, env=env_for(bootstrap))
    os.close(slave)
    chunks = input_bytes if isinstance(input_bytes, list) else [input_bytes]
    for chunk in chunks:
        if chunk is not None:
            p.stdin.write(chunk)
            p.stdin.flush()
            time.sleep(pause)
    p.stdin.close()
    shown = b""
    start = time.monotonic()
    deadline = start + timeout
    out = b""
    while time.monotonic() < deadline:
        if interrupt_after is not None and time.monotonic() - start > interrupt_after:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
            interrupt_after = None
        r, _, _ = select.select([master, p.stdout], [], [], 0.2)
        if master in r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                chunk = b""
            shown += chunk
        if p.stdout in r:
            chunk = os.read(p.stdout.fileno(), 65536)
            out += chunk
            if not chunk and p.poll() is not None:
                break
        if not r and p.poll() is not None:
            break
    rc = p.wait(10)
    out += p.stdout.read()
    os.close(master)
    return rc, out, shown.decode(errors="replace")


def finish(name):
    if FAILS:
        print(f"{name}: {len(FAILS)} failure(s): " + "; ".join(FAILS))
        sys.exit(1)
    print(f"{name}: all checks passed")
