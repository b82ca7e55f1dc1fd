#!/bin/bash
# Holds common/http (through sl-test-metrics_server) against a real HTTP client: curl's view of
# /metrics and /health, status codes, HEAD, HTTP/1.0, connection reuse, and a raw garbage
# request over bash's /dev/tcp.
set -euo pipefail

: "${SL_BUILD_DIR:?SL_BUILD_DIR is not set (run through ctest)}"
server="$SL_BUILD_DIR/tests/sl-test-metrics_server"
[ -x "$server" ] || { echo "FAIL: $server is missing (build target sl-test-metrics_server)"; exit 1; }
command -v curl >/dev/null || { echo "FAIL: curl is missing (apt-get install curl)"; exit 1; }

tmp=$(mktemp -d)
srv_pid=
cleanup() {
    if [ -n "$srv_pid" ]; then kill "$srv_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
check_eq() { # what, want, got
    if [ "$2" != "$3" ]; then fail "$1: want '$2', got '$3'"; else echo "ok: $1"; fi
}

# The server prints its port once it listens: reading that line is the readiness signal.
coproc SRV { exec "$server" --unhealthy-if "$tmp/unhealthy"; }
srv_pid=$SRV_PID
port=
read -r -t 10 port <&"${SRV[0]}" || true
[[ "$port" =~ ^[0-9]+$ ]] || { echo "FAIL: no port from the server (got '$port')"; exit 1; }
base="http://127.0.0.1:$port"
echo "server pid $srv_pid on port $port"

expected_metrics='# HELP sl_test_requests_total Requests by API.
# TYPE sl_test_requests_total counter
sl_test_requests_total{api="Produce"} 7
sl_test_requests_total{api="Fetch"} 2
# HELP sl_test_connections Open connections.
# TYPE sl_test_connections gauge
sl_test_connections 3
# HELP sl_test_log_bytes Bytes in the log.
# TYPE sl_test_log_bytes gauge
sl_test_log_bytes{topic="a\"b\\c"} 42.5
# HELP sl_test_latency_seconds Latency.
# TYPE sl_test_latency_seconds histogram
sl_test_latency_seconds_bucket{le="0.01"} 1
sl_test_latency_seconds_bucket{le="0.1"} 1
sl_test_latency_seconds_bucket{le="1"} 2
sl_test_latency_seconds_bucket{le="+Inf"} 3
sl_test_latency_seconds_sum 3.51
sl_test_latency_seconds_count 3'
printf '%s\n' "$expected_metrics" >"$tmp/expected"

# curl_status FILE URL [curl options...]: body to FILE, headers to FILE.h, prints the status.
curl_status() {
    local out=$1 url=$2
    shift 2
    curl -sS --max-time 10 -o "$out" -D "$out.h" -w '%{http_code}' "$@" "$url"
}
header() { # FILE NAME: the header's value, CR stripped
    grep -i "^$2:" "$1" | head -n1 | sed -e 's/^[^:]*: *//' -e 's/\r$//'
}

# GET /metrics: status, content type, the exact body.
check_eq "GET /metrics status" 200 "$(curl_status "$tmp/m" "$base/metrics")"
check_eq "GET /metrics content type" "text/plain; version=0.0.4; charset=utf-8" \
    "$(header "$tmp/m.h" Content-Type)"
if cmp -s "$tmp/expected" "$tmp/m"; then echo "ok: GET /metrics body"; else
    fail "GET /metrics body differs:"
    diff "$tmp/expected" "$tmp/m" || true
fi

# HEAD: same length, no body.
check_eq "HEAD /metrics status" 200 "$(curl_status "$tmp/h" "$base/metrics" --head)"
check_eq "HEAD /metrics length" "$(stat -c %s "$tmp/expected")" "$(header "$tmp/h.h" Content-Length)"
# With --head curl writes the headers to the output too: nothing may follow them.
if cmp -s "$tmp/h" "$tmp/h.h"; then echo "ok: HEAD /metrics no body"; else
    fail "HEAD /metrics: bytes after the headers"
fi

# /health, both ways round.
check_eq "GET /health status" 200 "$(curl_status "$tmp/hl" "$base/health")"
check_eq "GET /health body" "ok" "$(cat "$tmp/hl")"
touch "$tmp/unhealthy"
check_eq "unhealthy status" 503 "$(curl_status "$tmp/hl" "$base/health")"
check_eq "unhealthy body" "$tmp/unhealthy exists" "$(cat "$tmp/hl")"
rm "$tmp/unhealthy"
check_eq "healthy again" 200 "$(curl_status "$tmp/hl" "$base/health")"

# Errors.
check_eq "404" 404 "$(curl_status "$tmp/e" "$base/nope")"
check_eq "404 keeps the connection" "" "$(header "$tmp/e.h" Connection)"
check_eq "405" 405 "$(curl_status "$tmp/e" "$base/metrics" -X DELETE)"
check_eq "405 Allow" "GET, HEAD" "$(header "$tmp/e.h" Allow)"
check_eq "POST with a body" 405 "$(curl_status "$tmp/e" "$base/metrics" --data 'x=1')"
check_eq "POST with a body closes" close "$(header "$tmp/e.h" Connection)"
check_eq "GET with a body" 413 "$(curl_status "$tmp/e" "$base/metrics" -X GET --data 'x=1')"
big=$(head -c 9000 /dev/zero | tr '\0' a)
check_eq "oversized header" 431 "$(curl_status "$tmp/e" "$base/metrics" -H "X-Big: $big")"

# HTTP/1.0: served, then closed.
check_eq "HTTP/1.0 status" 200 "$(curl_status "$tmp/m10" "$base/metrics" --http1.0)"
check_eq "HTTP/1.0 closes" close "$(header "$tmp/m10.h" Connection)"
if cmp -s "$tmp/expected" "$tmp/m10"; then echo "ok: HTTP/1.0 body"; else fail "HTTP/1.0 body differs"; fi

# Keep-alive: curl reuses one connection for several URLs.
curl -sS --max-time 10 -v -o /dev/null -o /dev/null -o /dev/null \
    "$base/metrics" "$base/health" "$base/metrics" 2>"$tmp/verbose"
reused=$(grep -c 'Re-using existing connection' "$tmp/verbose" || true)
check_eq "connection reused" 2 "$reused"

# Raw garbage over /dev/tcp: a 400, then the server closes.
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GARBAGE\r\n\r\n' >&3
status_line=
read -r -t 5 status_line <&3 || true
check_eq "garbage status line" "HTTP/1.1 400 Bad Request" "${status_line%$'\r'}"
if timeout 5 cat <&3 >"$tmp/rest"; then
    echo "ok: garbage: connection closed"
    grep -qi '^Connection: close' "$tmp/rest" || fail "garbage: no Connection: close"
else
    fail "garbage: connection not closed within 5s"
fi
exec 3<&-

# The server is still fine after all that, and exits cleanly on SIGTERM.
check_eq "still serving" 200 "$(curl_status "$tmp/m" "$base/metrics")"
kill -TERM "$srv_pid"
rc=0
wait "$srv_pid" || rc=$?
srv_pid=
check_eq "exit status after SIGTERM" 0 "$rc"

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
