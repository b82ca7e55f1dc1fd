#!/bin/bash
# Agent benchmark: 2M lines of ~200 B tailed -> JSON records -> gzip batches -> a local collector
# (sl-test-kafka_server, fsync never), until every record is acknowledged. Prints lines/s, CPU
# seconds per million lines and peak RSS, beside a same-run baseline (a plain read + line split
# of the same file with wc -l) and the ratio to it. Targets (issue 6): >= 400k lines/s,
# <= 3.5 CPU s per million lines, peak RSS <= 16 MiB.
#
#   tests/bench/bench_agent.sh [BUILD_DIR] [LINES]
set -euo pipefail
B=${1:-${SL_BUILD_DIR:-build}}
N=${2:-2000000}
T=$B/tests
W=$(mktemp -d /tmp/sl-bench-agent-XXXXXX)
trap 'kill $SRV 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -p "$W/logs" "$W/state" "$W/data"

python3 - "$W/logs/app.log" "$N" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod".split()
with open(path, "w") as f:
    for i in range(n):
        f.write(f"{i:09d} 10.0.{i % 250}.{i % 7} GET /api/v1/items/{i * 7919 % 100003} 200 "
                + " ".join(words[(i + k) % len(words)] for k in range(18)) + "\n")
PY
bytes=$(stat -c %s "$W/logs/app.log")

/usr/bin/time -f "%e %U %S %M" -o "$W/base.time" wc -l "$W/logs/app.log" > /dev/null
read b_el b_us b_sy b_rss < "$W/base.time"

$T/sl-test-kafka_server --data-dir "$W/data" --fsync never > "$W/srv.out" 2> "$W/srv.err" &
SRV=$!
for _ in $(seq 50); do grep -q PORT "$W/srv.out" && break; sleep 0.1; done
PORT=$(awk '/PORT/{print $2}' "$W/srv.out")
cat > "$W/agent.yaml" <<YAML
hostname: bench-host
state_dir: $W/state
log_level: notice
sources:
  app:
    type: tail
    paths: ["$W/logs/*.log"]
    topic: bench
output:
  collectors: [127.0.0.1:$PORT]
${BENCH_OUTPUT_EXTRA:-}
YAML

/usr/bin/time -f "%e %U %S %M" -o "$W/agent.time" $T/sl-test-agent_ship "$W/agent.yaml" \
    > "$W/ship.out" 2> "$W/ship.err" &
TP=$!
sleep 0.1
AP=$(pgrep -P $TP)
start=$(date +%s.%N)
while :; do
    kill -USR1 $AP
    sleep 0.05
    acked=$(tail -1 "$W/ship.out" | sed -n 's/.*acked=\([0-9]*\).*/\1/p')
    [ "${acked:-0}" -ge "$N" ] && break
done
end=$(date +%s.%N)
kill -TERM $AP
wait $TP
read a_el a_us a_sy a_rss < "$W/agent.time"

python3 - <<PY
n, size = $N, $bytes
wall = $end - $start
cpu = $a_us + $a_sy
base = max($b_us + $b_sy, 0.001)
print(f"file: {n} lines, {size / n:.0f} B/line, {size / 2**20:.0f} MiB")
print(f"baseline (read+split, wc -l): {base:.2f} CPU s")
print(f"agent: {n / wall / 1000:.0f}k lines/s to acked, {cpu / n * 1e6:.2f} CPU s per million "
      f"lines, peak RSS {$a_rss / 1024:.1f} MiB, {cpu / base:.1f}x the baseline's CPU")
ok = n / wall >= 400e3 and cpu / n * 1e6 <= 3.5 and $a_rss <= 16 * 1024
print("targets:", "met" if ok else "NOT met")
PY
