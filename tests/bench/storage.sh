#!/bin/bash
# Collector storage benchmark: runs sl-test-bench_storage 3 times and prints the median of each
# figure with its ratio to the same-run baseline measured beside it (plain write() loop;
# write + fdatasync per batch). never/interval use the shipped validate_records: false;
# never_records decodes every record (against a loop validating the same way); crc_floor is a
# plain loop checking header and CRC-32C, the most a checking append can reach. For group
# commit, disk_limit is a plain loop doing 4 writes per fdatasync: the most 4 writers sharing
# each fdatasync can get from this disk. Needs root for the cold-cache recovery figure.
#   SL_BUILD_DIR   build directory (default: build)
#   SL_BENCH_DIR   scratch directory on the file system to measure (default: a temp dir in /var/tmp)
#   SL_BENCH_GB    size of the log for lookups and recovery (default 10)
#   SL_BENCH_MB    MB appended per fsync never/interval measurement (default 1024)
set -euo pipefail
BUILD=${SL_BUILD_DIR:-build}
BIN=$BUILD/tests/sl-test-bench_storage
[ -x "$BIN" ] || { echo "missing $BIN: build target sl-test-bench_storage" >&2; exit 1; }
DIR=${SL_BENCH_DIR:-$(mktemp -d /var/tmp/sl-bench-storage.XXXXXX)}
GB=${SL_BENCH_GB:-10}
MB=${SL_BENCH_MB:-1024}
OUT=$(mktemp)
trap 'rm -rf "$DIR" "$OUT"' EXIT
mkdir -p "$DIR"
echo "file system: $(df -T "$DIR" | awk 'NR==2 {print $1, $2}'), log for lookups/recovery: ${GB} GB"

for run in 1 2 3; do
    "$BIN" append "$DIR" "$MB" 400 >> "$OUT"
done
"$BIN" build "$DIR/log" "$GB"
for run in 1 2 3; do
    "$BIN" lookups "$DIR/log" 5 >> "$OUT"
    "$BIN" recover "$DIR/log" warm >> "$OUT"
    if [ "$(id -u)" = 0 ]; then
        "$BIN" recover "$DIR/log" cold >> "$OUT"
    fi
done

/usr/bin/python3 - "$OUT" <<'PY'
import collections, statistics, sys
vals = collections.defaultdict(list)
units = {}
for line in open(sys.argv[1]):
    p = line.split()
    if p and p[0] == "RESULT":
        vals[p[1]].append(float(p[2]))
        units[p[1]] = p[3]
med = {k: statistics.median(v) for k, v in vals.items()}
def show(name, base=None, target=None):
    if name not in med:
        return
    s = f"{name:34s} {med[name]:9.1f} {units[name]:10s}"
    if base and base in med:
        # The ratio of each run to its own baseline, then the median of those ratios.
        r = statistics.median(a / b for a, b in zip(vals[name], vals[base]))
        s += f" ratio {r:5.2f} vs {base}"
        if target:
            s += f" (target >= {target}: {'met' if r >= target else 'NOT met'})"
    s += "  runs: " + ", ".join(f"{v:g}" for v in vals[name])
    print(s)
print("medians of 3 runs; each ratio is the median of the per-run ratios to the baseline "
      "measured beside it (never, interval, crc_floor: before and after, ABBA)")
for sz in ("64k", "1m"):
    show(f"{sz}.never.baseline")
    show(f"{sz}.never", f"{sz}.never.baseline", 0.9)
    show(f"{sz}.interval.baseline")
    show(f"{sz}.interval", f"{sz}.interval.baseline", 0.9)
    show(f"{sz}.crc_floor.baseline")
    show(f"{sz}.crc_floor", f"{sz}.crc_floor.baseline")
    show(f"{sz}.never_records.baseline")
    show(f"{sz}.never_records", f"{sz}.never_records.baseline")
    show(f"{sz}.always_1writer.baseline")
    show(f"{sz}.always_1writer", f"{sz}.always_1writer.baseline")
    show(f"{sz}.always_4writers.baseline")
    show(f"{sz}.always_4writers.disk_limit", f"{sz}.always_4writers.baseline")
    show(f"{sz}.always_4writers", f"{sz}.always_4writers.baseline", 2.0)
show("lookup.log_size")
show("lookup.read_by_offset")
show("recovery.warm")
show("recovery.cold")
PY
