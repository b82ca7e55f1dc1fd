#!/bin/bash
# Kafka protocol benchmark of the collector, with same-run baselines, 3 runs, medians, ratios:
#   produce: Produce v7 acks=-1, gzip batches of 1 MiB of 200-byte log lines, 4 in flight,
#            fsync: interval; wire MB/s vs a raw loopback TCP copy (and vs a raw file write)
#   fetch:   Fetch v11 of everything produced, served with sendfile; vs a raw sendfile copy
#   latency: p99 of one 64 KiB (uncompressed) batch at a time at half the 64 KiB produce rate
# Usage: SL_BUILD_DIR=build tests/bench/kafka.sh [MiB per run (default 1024)] [runs (3)]
set -euo pipefail
BUILD=${SL_BUILD_DIR:-build}
SRV=$BUILD/tests/sl-test-kafka_server
B=$BUILD/tests/sl-test-bench_kafka
MIB=${1:-1024}
RUNS=${2:-3}
for t in "$SRV" "$B"; do
    [ -x "$t" ] || {
        echo "missing $t: build sl-test-kafka_server and sl-test-bench_kafka" >&2
        exit 1
    }
done
TMP=$(mktemp -d /tmp/sl-bench-kafka-XXXXXX)
SPID=
cleanup() {
    [ -n "$SPID" ] && kill -TERM "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

start_server() { # $1: validate_records
    rm -rf "$TMP/data"
    "$SRV" --data-dir "$TMP/data" --validate-records "$1" --log-level warning \
        > "$TMP/port" 2> "$TMP/server.log" &
    SPID=$!
    for _ in $(seq 1 100); do grep -q PORT "$TMP/port" 2>/dev/null && break; sleep 0.1; done
    PORT=$(awk '/PORT/{print $2}' "$TMP/port")
    [ -n "$PORT" ] || { cat "$TMP/server.log"; exit 1; }
}
stop_server() { kill -TERM "$SPID"; wait "$SPID" || true; SPID=; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: > "$TMP/results"
for run in $(seq 1 "$RUNS"); do
    tcp=$("$B" raw-tcp "$MIB" | field mbps)
    file=$("$B" raw-file "$TMP" "$MIB" | field mbps)
    sf=$("$B" raw-sendfile "$TMP" "$MIB" | field mbps)
    start_server true
    prod=$(timeout 600 "$B" produce "$PORT" bench "$MIB" 1024 4 | field mbps)
    fetch=$(timeout 600 "$B" fetch "$PORT" bench | field mbps)
    p64=$(timeout 600 "$B" produce "$PORT" b64 $((MIB / 4)) 64 4 | field mbps)
    half=$(awk -v x="$p64" 'BEGIN {printf "%.1f", x / 2}')
    lat=$(timeout 120 "$B" latency "$PORT" lat 64 "$half" 5)
    p99=$(echo "$lat" | field p99_ms)
    stop_server
    start_server false
    prodnv=$(timeout 600 "$B" produce "$PORT" bench "$MIB" 1024 4 | field mbps)
    stop_server
    echo "run $run: raw_tcp=$tcp raw_file=$file raw_sendfile=$sf produce=$prod" \
         "produce_novalidate=$prodnv fetch=$fetch produce64=$p64 p99_ms_at_${half}MBps=$p99"
    echo "$tcp $file $sf $prod $prodnv $fetch $p64 $p99" >> "$TMP/results"
done
col() { awk -v c="$1" '{print $c}' "$TMP/results" | median; }
tcp=$(col 1); file=$(col 2); sf=$(col 3); prod=$(col 4); prodnv=$(col 5); fetch=$(col 6)
p64=$(col 7); p99=$(col 8)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f%%", 100 * a / b}'; }
echo "medians of $RUNS runs ($MIB MiB each), MB/s on the wire:"
echo "  raw loopback TCP copy      $tcp"
echo "  raw file write (fsync 1s)  $file"
echo "  raw sendfile loopback      $sf"
echo "  produce (validate records) $prod = $(ratio "$prod" "$tcp") of raw TCP," \
     "$(ratio "$prod" "$file") of raw file (target >= 50% of raw TCP)"
echo "  produce (header+CRC only)  $prodnv = $(ratio "$prodnv" "$tcp") of raw TCP," \
     "$(ratio "$prodnv" "$file") of raw file"
echo "  fetch (sendfile)           $fetch = $(ratio "$fetch" "$sf") of raw sendfile (target >= 80%)"
echo "  produce, 64 KiB batches    $p64; p99 latency at half that rate: $p99 ms (target < 5 ms)"
