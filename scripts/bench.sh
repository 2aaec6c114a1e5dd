#!/usr/bin/env bash
# about: throughput benchmark: the collector (capture sink, fsync'd acks) vs a bare hyper server
# Both servers get the same load in the same run: wrk POSTing a 10-event, ~6 KB Segment batch
# over the same number of keep-alive connections. Prints requests/s, events/s, p50/p99 latency
# and the collector/bare ratio. Options via env: DURATION (s, default 10), CONNECTIONS (default 64).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p collector --bin collector --example bare_server

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
source scripts/_bench_load.sh
bench_load "$work"

wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

run_wrk() { # name url
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/post.lua" "$2" > "$work/$1.txt"
  local rps p50 p99 non2xx
  rps=$(awk '/^Requests\/sec:/{print $2}' "$work/$1.txt")
  p50=$(awk '$1=="50%"{print $2}' "$work/$1.txt")
  p99=$(awk '$1=="99%"{print $2}' "$work/$1.txt")
  non2xx=$(awk '/Non-2xx/{print $5}' "$work/$1.txt")
  printf '%-10s %12.0f req/s %12.0f events/s   p50 %8s   p99 %8s   non-2xx %s\n' "$1" "$rps" "$(echo "$rps*10" | bc)" "$p50" "$p99" "${non2xx:-0}"
  echo "$rps" > "$work/$1.rps"
}

echo "load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, same machine ($(nproc) cores)"
target/release/examples/bare_server 127.0.0.1:18090 2>/dev/null & bare=$!
wait_port 18090
run_wrk bare http://127.0.0.1:18090/v1/batch
kill $bare; wait $bare 2>/dev/null || true

# One load generator is one client IP: lift the per-IP limit, as for a proxy in front.
COLLECTOR_LOG=warn target/release/collector --listen 127.0.0.1:18091 --data-dir "$work/data" --rate-limit-ip 0 & coll=$!
wait_port 18091
run_wrk collector http://127.0.0.1:18091/v1/batch
kill -TERM $coll; wait $coll || true
stored=$(target/release/collector capture stats --json "$work/data/capture" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
echo "collector stored $stored events in capture files; every 2xx waited for the spool's fsync"
ratio=$(echo "scale=2; $(cat "$work/collector.rps") / $(cat "$work/bare.rps")" | bc)
echo "ratio collector/bare: $ratio (target >= 0.5)"
