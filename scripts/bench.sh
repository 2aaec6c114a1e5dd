#!/usr/bin/env bash
# about: throughput benchmark: the collector (capture sink, fsync'd acks) vs a bare hyper server
# Both servers get the same load: wrk POSTing a 10-event, ~6 KB Segment batch over the same
# number of keep-alive connections. The machine's speed drifts from minute to minute, so the two
# are loaded in alternating rounds (bare, collector, bare, ...) and each round's collector figure
# is compared with the bare figures just before and after it. Prints each round, then the
# medians: requests/s, events/s, p50/p99 latency and the collector/bare ratio.
# Also prints what each server's process spent in CPU time per request (read from /proc around its
# rounds) and how much of the machine sat idle meanwhile: steadier than requests/s on a drifting
# machine, and they show where a ratio comes from.
# A third server is the collector with a 20-event tracking plan the events match (enforce mode),
# in the same alternating rounds: it prints the plan/no-plan ratio and what validation costs per
# event in CPU time.
# Options via env: ROUNDS (default 5), DURATION (s per round and server, default 6),
# CONNECTIONS (default 64), THREADS (wrk threads, default 2), INVALID_EVENTS (default 0: how many
# of the 10 events lack ids, so each request also writes dead letters), PLAN (default 1; 0 skips
# the tracking-plan server).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-6}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PLAN=${PLAN:-1}
cargo build --release -q -p collector --bin collector --example bare_server

source scripts/_bench_load.sh
need_wrk
bench_scratch
bench_load "$work"

# "idle total" ticks of the machine.
machine_ticks() { awk '/^cpu /{print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }

# run_wrk NAME URL PID: one round; appends "rps p50 p99 requests non2xx cpu_ticks idle_ticks
# all_ticks" to $work/NAME.rounds.
run_wrk() {
  local out="$work/$1.txt" cpu0 cpu1 m0 m1
  cpu0=$(proc_ticks "$3"); m0=$(machine_ticks)
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/post.lua" "$2" > "$out"
  cpu1=$(proc_ticks "$3"); m1=$(machine_ticks)
  awk -v cpu=$((cpu1 - cpu0)) -v m0="$m0" -v m1="$m1" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    / requests in / { n = $1 }
    /Non-2xx/ { bad = $5 }
    END { split(m0, a, " "); split(m1, b, " ")
          printf "%s %s %s %s %s %d %d %d\n", rps, p50, p99, n, bad + 0, cpu, b[1] - a[1], b[2] - a[2] }' "$out" >> "$work/$1.rounds"
}

echo "load: wrk -t$THREADS -c$CONNECTIONS, $ROUNDS rounds of ${DURATION}s per server, same machine ($(nproc) cores)"
target/release/examples/bare_server 127.0.0.1:18090 2>/dev/null & bare=$!
# One load generator is one client IP: lift the per-IP limit, as for a proxy in front.
COLLECTOR_LOG=warn target/release/collector --listen 127.0.0.1:18091 --data-dir "$work/data" --rate-limit-ip 0 2>"$work/collector.log" & coll=$!
wait_port 18090
wait_port 18091
if [ "$PLAN" = 1 ]; then
  target/release/collector plan check "$work/plan" | tail -1
  COLLECTOR_LOG=warn target/release/collector --listen 127.0.0.1:18092 --data-dir "$work/data-plan" --rate-limit-ip 0 \
    --tracking-plan "$work/plan" 2>"$work/collector-plan.log" & planned=$!
  wait_port 18092
fi

# Each round: bare, then collector and the collector with a plan; one more bare round closes the
# last one.
for r in $(seq "$ROUNDS"); do
  run_wrk bare http://127.0.0.1:18090/v1/batch $bare
  # The plan server goes second in odd rounds and first in even ones, so neither inherits the
  # other's writeback more often.
  if [ "$PLAN" = 1 ] && [ $((r % 2)) = 0 ]; then run_wrk planned http://127.0.0.1:18092/v1/batch $planned; fi
  run_wrk collector http://127.0.0.1:18091/v1/batch $coll
  if [ "$PLAN" = 1 ] && [ $((r % 2)) = 1 ]; then run_wrk planned http://127.0.0.1:18092/v1/batch $planned; fi
done
run_wrk bare http://127.0.0.1:18090/v1/batch $bare
kill $bare; wait $bare 2>/dev/null || true
kill -TERM $coll; wait $coll || { cat "$work/collector.log"; exit 1; }
if [ "$PLAN" = 1 ]; then
  kill -TERM $planned; wait $planned || { cat "$work/collector-plan.log"; exit 1; }
fi

python3 - "$work" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys
work, hz = sys.argv[1], int(sys.argv[2])
batch = json.load(open(f"{work}/batch.json"))["batch"]
events = len(batch)  # per request
stored_per_request = sum(1 for e in batch if e.get("userId") or e.get("anonymousId"))
def rounds(name):
    return [[float(x) for x in line.split()] for line in open(f"{work}/{name}.rounds")]
bare, coll = rounds("bare"), rounds("collector")
print(f"{'round':>5} {'bare req/s':>11} {'collector req/s':>16} {'ratio':>6}")
ratios = []
for i, c in enumerate(coll):
    # The bare figure around this collector round: the mean of the rounds before and after.
    b = (bare[i][0] + bare[i + 1][0]) / 2
    ratios.append(c[0] / b)
    print(f"{i + 1:>5} {b:>11.0f} {c[0]:>16.0f} {c[0] / b:>6.2f}")
def line(name, rs):
    rps = statistics.median(r[0] for r in rs)
    p50 = statistics.median(r[1] for r in rs)
    p99 = statistics.median(r[2] for r in rs)
    bad = int(sum(r[4] for r in rs))
    print(f"{name:<10} {rps:>10.0f} req/s {rps * events:>12.0f} events/s   p50 {p50:6.2f}ms   p99 {p99:6.2f}ms   non-2xx {bad}   (medians of {len(rs)} rounds)")
line("bare", bare)
line("collector", coll)
acked = int(sum(r[3] - r[4] for r in coll)) * stored_per_request
open(f"{work}/acked", "w").write(str(acked))
print(f"ratio collector/bare: {statistics.median(ratios):.2f} (median of {len(ratios)} rounds, range {min(ratios):.2f}-{max(ratios):.2f}; target >= 0.5)")
def cost(rs):
    """CPU microseconds per request over all rounds, and the machine's idle share."""
    return (sum(r[5] for r in rs) * 1e6 / hz / sum(r[3] for r in rs),
            100 * sum(r[6] for r in rs) / sum(r[7] for r in rs))
(bare_us, bare_idle), (coll_us, coll_idle) = cost(bare), cost(coll)
print(f"CPU per request: bare {bare_us:.1f} us, collector {coll_us:.1f} us ({coll_us / bare_us:.1f}x, {coll_us / events:.1f} us per event); "
      f"machine idle: {bare_idle:.1f} % during bare rounds, {coll_idle:.1f} % during collector rounds")
import os
if os.path.exists(f"{work}/planned.rounds"):
    planned = rounds("planned")
    line("planned", planned)
    # Each plan round against the collector round beside it, both against the bare rounds around them.
    pr = [(p[0] / ((bare[i][0] + bare[i + 1][0]) / 2)) / ratios[i] for i, p in enumerate(planned)]
    plan_us, _ = cost(planned)
    print(f"ratio with a 20-event plan / without: {statistics.median(pr):.2f} (median of {len(pr)} rounds, range {min(pr):.2f}-{max(pr):.2f}; target >= 0.85)")
    print(f"CPU per request with the plan: {plan_us:.1f} us; validation costs {(plan_us - coll_us) / events:.2f} us per event")
PY
stored=$(target/release/collector capture stats --json "$work/data/capture" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
acked=$(cat "$work/acked")
echo "collector acknowledged $acked events and stored $stored in capture files; every 2xx waited for the spool's fsync"
if [ "$stored" -lt "$acked" ]; then echo "LOST EVENTS: $((acked - stored))"; exit 1; fi
if [ "$PLAN" = 1 ]; then
  refused=$(cat "$work"/data-plan/deadletter/*.ndjson 2>/dev/null | grep -c '"stage":"plan"' || true)
  echo "events refused by the plan: $refused (the load matches it: 0 expected)"
fi
