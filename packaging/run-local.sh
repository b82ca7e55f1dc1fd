#!/usr/bin/env bash
# The README's first command ends here: a collector keeping its data under ./run/ and an agent
# on the shipped default configuration, both in the foreground, with one live status line.
# Ctrl-C stops both cleanly (SIGINT to each, then waits for them).
#   packaging/run-local.sh [BUILD_DIR]
# Environment: SLUICE_RUN_DIR (default ./run), SLUICE_KAFKA (the collector's Kafka listener,
# 127.0.0.1:9092), SLUICE_COLLECTOR_METRICS (127.0.0.1:9644), SLUICE_AGENT_METRICS
# (127.0.0.1:2020).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
run=${SLUICE_RUN_DIR:-$top/run}
kafka=${SLUICE_KAFKA:-127.0.0.1:9092}
coll_metrics=${SLUICE_COLLECTOR_METRICS:-127.0.0.1:9644}
agent_metrics=${SLUICE_AGENT_METRICS:-127.0.0.1:2020}
mkdir -p "$run/data" "$run/state"

# The children ignore nothing: a terminal's Ctrl-C reaches them and us; we forward it anyway
# so that a SIGINT sent to this script alone also stops both.
# Only loopback: this is a local run, not a collector for the network.
"$build/collector/sluice-collector" --set "data_dir=$run/data" \
    --set "server.listeners=[\"$kafka\"]" --set "metrics.listen=$coll_metrics" &
cpid=$!
"$build/agent/sluice-agent" -c "$top/conf.d/agent.yaml" --set "state_dir=$run/state" \
    --set "output.collectors=[\"$kafka\"]" --set "metrics.listen=$agent_metrics" &
apid=$!

# Sums the samples of one metric family from a /metrics page (0 when absent).
metric() {
    awk -v name="$1" '$1 == name || index($1, name "{") == 1 { s += $NF }
                      END { printf "%.0f", s }'
}

# One program's part of the live line, or "starting" until its endpoint answers.
describe() {
    local page
    page=$(curl -fsS --max-time 1 "http://$1/metrics" 2>/dev/null) || { printf 'starting'; return; }
    if [ "$2" = agent ]; then
        printf '%s lines read, %s records acked, %s KiB queued' \
            "$(metric sluice_agent_lines_read_total <<<"$page")" \
            "$(metric sluice_agent_records_acked_total <<<"$page")" \
            "$(( $(metric sluice_agent_queue_bytes <<<"$page") / 1024 ))"
    else
        printf '%s records in, %s KiB stored, %s clients' \
            "$(metric sluice_topic_records_in_total <<<"$page")" \
            "$(( $(metric sluice_partition_size_bytes <<<"$page") / 1024 ))" \
            "$(metric sluice_kafka_connections <<<"$page")"
    fi
}

# The live line runs in its own process that ignores SIGINT: a terminal's Ctrl-C reaches the
# whole process group, and only this shell should act on it.
(
    trap '' INT
    while :; do
        printf '\r[sluice] agent: %s | collector: %s   ' "$(describe "$agent_metrics" agent)" \
            "$(describe "$coll_metrics" collector)" >&2
        sleep 1
    done
) &
spid=$!

exec 3<> <(:)

stop() {
    local rc=$1
    trap - INT TERM
    kill -TERM "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    printf '\n' >&2
    # A terminal's Ctrl-C reached the programs as well and they are draining; a second SIGINT
    # would cut that short. Forward it only to those still running after a while (this shell
    # alone was signalled).
    local i
    for i in $(seq 100); do
        kill -0 "$apid" 2>/dev/null || kill -0 "$cpid" 2>/dev/null || break
        read -r -t 0.1 -u 3 _ 2>/dev/null || true
    done
    kill -INT "$apid" "$cpid" 2>/dev/null || true
    wait "$apid" || rc=1
    wait "$cpid" || rc=1
    exit "$rc"
}
trap 'stop 0' INT TERM

# Polls with the `read` builtin's timeout on a pipe that never delivers: no child process of
# this shell is in the way of the trap, and `wait -n` would reap a child that stop() needs.
while kill -0 "$cpid" 2>/dev/null && kill -0 "$apid" 2>/dev/null; do
    read -r -t 0.2 -u 3 _ || true
done
# A program stopped before this script's trap ran: a Ctrl-C reaches the programs and the script
# together, and the programs may win. Give a pending trap the chance to run first; either way
# the exit status is the programs' own (stop turns any failure into 1), so a clean stop after
# a Ctrl-C exits 0 and a crash does not.
read -r -t 0.5 -u 3 _ || true
echo >&2
echo "[sluice] a program stopped; stopping the other" >&2
stop 0
