#!/bin/bash
# Agent benchmark (issue 6): 2,000,000 lines of about 200 B, half nginx access lines and half JSON
# lines, are appended to a file while the real sluice-agent tails it and ships JSON records in
# gzip batches to the real sluice-collector (fsync never) on loopback. Measured per run: lines/s
# from the first appended byte until the agent's last record is acknowledged (stored), the
# agent's CPU seconds per million lines and its peak RSS. Same-run baseline: a plain read + line
# split of the same file (`wc -l`), in lines/s; the ratio to it is printed. Medians of 3 runs.
# Targets on a 2-core machine: >= 400k lines/s end to end, <= 3.5 CPU s per million lines with
# gzip, peak RSS <= 16 MiB.
#
#   tests/bench/bench_agent.sh [BUILD_DIR] [LINES]
# BENCH_OUTPUT_EXTRA: extra YAML lines for the agent's `output:` section, e.g.
#   BENCH_OUTPUT_EXTRA='  compression: none'
set -euo pipefail
B=$(realpath "${1:-${SL_BUILD_DIR:-build}}")
N=${2:-2000000}
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d /tmp/sl-bench-agent-XXXXXX)
trap 'rm -rf "$W"' EXIT

SL_BUILD_DIR=$B python3 - "$W" "$N" "$HERE/../integ" "${BENCH_OUTPUT_EXTRA:-}" <<'PY'
import os, random, statistics, subprocess, sys, time
W, N, extra = sys.argv[1], int(sys.argv[2]), sys.argv[4]
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[3])
import journal_helpers as jh
from kafkasrv import Server

# The staged file is written once; each run appends it to the tailed file in 1 MiB writes.
stage = os.path.join(W, "stage.log")
rng = random.Random(7)
paths = ["/api/v1/items/", "/api/v1/users/", "/static/js/app.", "/healthz", "/search?q=",
         "/api/v2/orders/", "/login", "/img/banner-"]
agents = ["Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
          "curl/7.88.1", "Go-http-client/1.1",
          "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Safari/605.1.15"]
levels = ["info", "info", "info", "warn", "error", "debug"]
words = ("request completed cache miss upstream timeout retrying connection reset user session "
         "expired order created payment accepted queue depth").split()
with open(stage, "w") as f:
    for i in range(N):
        sec = 1700000000 + i // 5000
        if i % 2 == 0:
            f.write(f'10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)} - - '
                    f'[{time.strftime("%d/%b/%Y:%H:%M:%S", time.gmtime(sec))} +0000] '
                    f'"GET {rng.choice(paths)}{rng.randrange(10**6)} HTTP/1.1" '
                    f'{rng.choice((200, 200, 200, 304, 404, 500))} {rng.randrange(100000)} '
                    f'"https://shop.example.com{rng.choice(paths)}{rng.randrange(1000)}" '
                    f'"{rng.choice(agents)}"\n')
        else:
            msg = " ".join(rng.choice(words) for _ in range(rng.randrange(4, 9)))
            f.write(f'{{"ts":"{time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))}.'
                    f'{rng.randrange(1000):03d}Z","level":"{rng.choice(levels)}",'
                    f'"svc":"orders","host":"app-{rng.randrange(40):02d}.prod",'
                    f'"route":"{rng.choice(paths)}","trace":"{rng.getrandbits(64):016x}",'
                    f'"user":{rng.randrange(10**6)},"took_ms":{rng.randrange(5000)},'
                    f'"msg":"{msg}"}}\n')
size = os.path.getsize(stage)
print(f"file: {N} lines, {size / N:.0f} B/line, {size / 2**20:.0f} MiB "
      f"(half nginx access lines, half JSON lines)", flush=True)

srv = Server(os.path.join(W, "data"), "--fsync", "never").start()
base, rate, cpu, rss = [], [], [], []
try:
    for run in range(3):
        # Baseline: read and split the same bytes (page cache warm for both).
        t = time.time()
        out = subprocess.run(["wc", "-l", stage], capture_output=True, check=True)
        base.append(N / (time.time() - t))
        if int(out.stdout.split()[0]) != N:
            sys.exit(f"wc counted {out.stdout!r}, wanted {N}")

        wd = os.path.join(W, f"agent{run}")
        logs = os.path.join(wd, "logs")
        os.makedirs(logs)
        tailed = os.path.join(logs, "app.log")
        open(tailed, "w").close()
        agent = jh.RealAgent(wd, srv.bootstrap,
                             f"  app:\n    type: tail\n    paths: [\"{logs}/*.log\"]\n"
                             f"    topic: bench{run}\n",
                             extra=extra + ("\n" if extra else ""))
        agent.start()
        t = time.time()
        with open(stage, "rb") as src, open(tailed, "ab") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
                dst.flush()
        agent.wait_acked(N, timeout=900)
        took = time.time() - t
        cpu.append(agent.cpu_seconds())
        with open(f"/proc/{agent.p.pid}/status") as f:
            rss.append(next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024)
        agent.stop()
        rate.append(N / took)
        print(f"run {run + 1}: read+split {base[-1] / 1000:.0f}k lines/s; agent "
              f"{rate[-1] / 1000:.0f}k lines/s to acked, {cpu[-1] / N * 1e6:.2f} CPU s per "
              f"million lines, peak RSS {rss[-1]:.1f} MiB", flush=True)
finally:
    srv.stop()
b, r = statistics.median(base), statistics.median(rate)
c, m = statistics.median(cpu) / N * 1e6, statistics.median(rss)
print(f"baseline (read+split, wc -l): {b / 1000:.0f}k lines/s (median of 3)")
print(f"agent: {r / 1000:.0f}k lines/s to acked ({r / b:.3f}x the baseline), {c:.2f} CPU s per "
      f"million lines, peak RSS {m:.1f} MiB (medians of 3)")
ok = r >= 400e3 and c <= 3.5 and m <= 16
print("targets (>= 400k lines/s, <= 3.5 CPU s per million, <= 16 MiB):", "met" if ok else "NOT met")
PY
