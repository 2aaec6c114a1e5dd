#!/usr/bin/env bash
# about: relay throughput and 2xx-to-hub latency against the Event Hubs double
# One run of the release collector with `--sink eventhubs,capture`, relaying to the Event Hubs
# double over AMQP on localhost, loaded by wrk with the same load as scripts/bench.sh
# (scripts/_bench_load.sh) in two phases: saturation (as many connections as bench.sh: the
# relay's throughput) and a steady load of a few connections (latency when the relay keeps up). For each
# phase it prints, side by side for the two sinks: events delivered, rate, peak lag, time to catch
# up after the load, per-batch delivery time; and the relay's end-to-end latency measured at the
# double for every event (receivedAt -> arrival at the hub).
# Options via env: DURATION (s per phase, default 10), CONNECTIONS (default 64), THREADS (default 2),
# LIGHT_CONNECTIONS (steady phase, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
LIGHT_CONNECTIONS=${LIGHT_CONNECTIONS:-2}
HUB_PORT=${HUB_PORT:-18095}
HTTP_PORT=${HTTP_PORT:-18096}
cargo build --release -q -p collector --bin collector -p eventhubs-double --bin eventhubs-double
bin=${CARGO_TARGET_DIR:-target}/release

source scripts/_bench_load.sh
need_wrk
bench_scratch
bench_load "$work"

metrics() { curl -s "http://127.0.0.1:$HTTP_PORT/metrics"; }
lag() { metrics | awk -v s="$1" '$1 ~ "^collector_sink_lag_events\\{sink=\"" s "\"" {print $2}'; }

"$bin/eventhubs-double" --listen "127.0.0.1:$HUB_PORT" --latency-field receivedAt > "$work/double.json" 2> "$work/double.log" & double=$!
wait_port "$HUB_PORT"
# No per-IP rate limit: all of wrk's connections come from 127.0.0.1.
COLLECTOR_RATE_LIMIT_IP=0 COLLECTOR_LOG=warn "$bin/collector" --listen "127.0.0.1:$HTTP_PORT" --data-dir "$work/data" --sink eventhubs,capture \
  --eventhubs-endpoint "amqp://127.0.0.1:$HUB_PORT" \
  --eventhubs-connection-string "Endpoint=sb://double.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=ZG91YmxlLWtleQ==;EntityPath=clicks" \
  2> "$work/collector.log" & coll=$!
wait_port "$HTTP_PORT"

# run_phase NAME CONNECTIONS THREADS: load for DURATION, sample lag, wait until both sinks caught up,
# then snapshot /metrics and make the double print its latency summary for the phase.
run_phase() {
  local name=$1 conns=$2 threads=$3
  wrk -t"$threads" -c"$conns" -d"${DURATION}s" --latency -s "$work/post.lua" "http://127.0.0.1:$HTTP_PORT/v1/batch" > "$work/$name.wrk" &
  local wrkpid=$!
  : > "$work/$name.lag"
  while kill -0 $wrkpid 2>/dev/null; do
    echo "$(lag capture) $(lag eventhubs)" >> "$work/$name.lag"
    sleep 1
  done
  wait $wrkpid
  local load_end; load_end=$(date +%s.%N)
  : > "$work/$name.caught"
  for sink in capture eventhubs; do
    for _ in $(seq 1200); do
      [ "$(lag $sink)" = "0" ] && break
      sleep 0.1
    done
    echo "$(date +%s.%N) - $load_end" | bc >> "$work/$name.caught"
  done
  metrics > "$work/$name.metrics"
  local lines; lines=$(wc -l < "$work/double.json")
  kill -USR1 $double
  for _ in $(seq 100); do [ "$(wc -l < "$work/double.json")" -gt "$lines" ] && break; sleep 0.1; done
}

echo "same machine ($(nproc) cores) for wrk, the collector (--sink eventhubs,capture) and the double (AMQP on localhost)"
echo "phase 1, saturation: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s"
run_phase saturation "$CONNECTIONS" "$THREADS"
echo "phase 2, steady load below the relay's capacity: wrk -t1 -c$LIGHT_CONNECTIONS -d${DURATION}s"
run_phase steady "$LIGHT_CONNECTIONS" 1
kill -TERM $double; wait $double || true
kill -TERM $coll; wait $coll || true

python3 - "$work" "$DURATION" <<'PY'
import json, re, sys
work, duration = sys.argv[1], float(sys.argv[2])
summaries = [json.loads(l) for l in open(f"{work}/double.json") if l.strip()]

def parse_metrics(name):
    return open(f"{work}/{name}.metrics").read().splitlines()

def value(metrics, name, labels=""):
    for line in metrics:
        if line.startswith(name + labels + " "):
            return float(line.split()[-1])
    return 0.0

def buckets(metrics, name, labels):
    out = {}
    for line in metrics:
        m = re.match(re.escape(name) + r"_bucket\{(.*)\} (\S+)", line)
        if m and labels in m.group(1):
            le = re.search(r'le="([^"]+)"', m.group(1)).group(1)
            out[float("inf") if le == "+Inf" else float(le)] = float(m.group(2))
    return out

def quantile(now, before, name, labels, q):
    b, a = buckets(now, name, labels), buckets(before, name, labels) if before else {}
    cum = sorted((le, c - a.get(le, 0.0)) for le, c in b.items())
    if not cum or cum[-1][1] <= 0:
        return "n/a"
    total = cum[-1][1]
    for le, count in cum:
        if count >= q * total:
            return "> 10 s" if le == float("inf") else f"<= {le * 1000:g} ms"

def report(phase, before, summary):
    now = parse_metrics(phase)
    wrk = open(f"{work}/{phase}.wrk").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1))
    p50 = re.search(r"\s50%\s+(\S+)", wrk).group(1)
    p99 = re.search(r"\s99%\s+(\S+)", wrk).group(1)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)
    caught = [float(x) for x in open(f"{work}/{phase}.caught").read().split()]
    peak = [0.0, 0.0]
    for line in open(f"{work}/{phase}.lag"):
        for i, v in enumerate(line.split()[:2]):
            peak[i] = max(peak[i], float(v or 0))
    print(f"\n== {phase}")
    print(f"ingest     {rps:9.0f} req/s {rps * 10:9.0f} events/s   HTTP p50 {p50}  p99 {p99}   non-2xx {non2xx.group(1) if non2xx else 0}")
    print(f"{'sink':10} {'delivered':>10} {'events/s':>10} {'peak lag':>10} {'caught up':>10}   per-batch delivery p50 / p99")
    for i, sink in enumerate(("capture", "eventhubs")):
        lbl = f'sink="{sink}"'
        n = value(now, "collector_sink_events_total", "{" + lbl + "}") - (value(before, "collector_sink_events_total", "{" + lbl + "}") if before else 0)
        print(f"{sink:10} {n:10.0f} {n / (duration + caught[i]):10.0f} {peak[i]:10.0f} {caught[i]:9.1f}s   "
              f"{quantile(now, before, 'collector_sink_delivery_seconds', lbl, 0.5)} / {quantile(now, before, 'collector_sink_delivery_seconds', lbl, 0.99)}")
    lat = summary["latency_ms"]
    print(f"relay: {summary['events']} events reached the double in {summary['window_ms'] / 1000:.1f} s = {summary['events_per_sec']:.0f} events/s "
          f"({value(now, 'collector_eventhubs_batches_total') - (value(before, 'collector_eventhubs_batches_total') if before else 0):.0f} batches, "
          f"{value(now, 'collector_eventhubs_retries_total'):.0f} retries so far)")
    print(f"end to end, receivedAt (set at acceptance, just before the fsync and the 2xx) -> event at the double: "
          f"p50 {lat['p50']} ms, p90 {lat['p90']} ms, p99 {lat['p99']} ms, max {lat['max']} ms")
    print(f"relay's own metric, receivedAt -> batch accepted: p50 {quantile(now, before, 'collector_eventhubs_relay_latency_seconds', '', 0.5)}, "
          f"p99 {quantile(now, before, 'collector_eventhubs_relay_latency_seconds', '', 0.99)}")
    return now

before = report("saturation", None, summaries[0])
report("steady", before, summaries[1])
PY
