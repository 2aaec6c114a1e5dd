#!/usr/bin/env bash
# about: capture to Azure Blob (Azurite) vs the local capture sink: events/s, lag and catch-up, same run
# Two collectors get the same wrk load (the 10-event, ~6 KB batch of bench.sh) in alternating
# rounds: one writes capture files to its data dir, the other uploads them to Azurite with
# --capture-url az://capture/bench (files roll every 5 s, so uploads run during the load). After
# each lake round it reads the sink's lag from /readyz and times how long the uploads take to
# catch up. At the end every event the lake collector acknowledged is counted back from the store.
# Options via env: ROUNDS (default 3), DURATION (s per round and server, default 10),
# CONNECTIONS (default 64), THREADS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
cargo build --release -q -p collector --bin collector
(cd tests/lake && npm ci --no-audit --no-fund --loglevel=error)
venv=target/lake-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/lake/requirements.txt

source scripts/_bench_load.sh
need_wrk
bench_scratch
bench_load "$work"

key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
tests/lake/node_modules/.bin/azurite-blob --blobHost 127.0.0.1 --blobPort 18290 --location "$work/azurite" \
  --skipApiVersionCheck --loose --silent >/dev/null 2>&1 &
wait_port 18290
"$venv/bin/python" -c "
from azure.storage.blob import BlobServiceClient
BlobServiceClient.from_connection_string('DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$key;BlobEndpoint=http://127.0.0.1:18290/devstoreaccount1;').create_container('capture')"
export AZURE_STORAGE_USE_EMULATOR=true AZURITE_BLOB_STORAGE_URL=http://127.0.0.1:18290
COLLECTOR_LOG=warn target/release/collector --listen 127.0.0.1:18291 --data-dir "$work/local" --rate-limit-ip 0 \
  --capture-roll-secs 5 2>"$work/local.log" & local_pid=$!
COLLECTOR_LOG=warn target/release/collector --listen 127.0.0.1:18292 --data-dir "$work/lake" --rate-limit-ip 0 \
  --capture-roll-secs 5 --capture-url az://capture/bench 2>"$work/lake.log" & lake_pid=$!
wait_port 18291
wait_port 18292

lag() { curl -s http://127.0.0.1:18292/readyz | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["lag"].get("capture", 0))'; }

# run NAME PORT: one round; appends "rps requests non2xx" to $work/NAME.rounds
run() {
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s "$work/post.lua" "http://127.0.0.1:$2/v1/batch" > "$work/$1.txt"
  awk '/^Requests\/sec:/ { rps = $2 } / requests in / { n = $1 } /Non-2xx/ { bad = $5 }
       END { printf "%s %s %s\n", rps, n, bad + 0 }' "$work/$1.txt" >> "$work/$1.rounds"
}

echo "load: wrk -t$THREADS -c$CONNECTIONS, $ROUNDS rounds of ${DURATION}s per server ($(nproc) cores); files roll every 5 s"
for r in $(seq "$ROUNDS"); do
  run local 18291
  run lake 18292
  at_end=$(lag); t0=$(date +%s.%N)
  while [ "$(lag)" != 0 ]; do sleep 0.2; done
  t1=$(date +%s.%N)
  echo "$at_end $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" >> "$work/catchup.rounds"
done
kill -TERM $local_pid $lake_pid; wait $local_pid; wait $lake_pid

sent=$(awk '{ s += ($2 - $3) * 10 } END { print s }' "$work/lake.rounds")
stored=$(target/release/collector capture stats --json az://capture/bench | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["total"])')
paste "$work/local.rounds" "$work/lake.rounds" "$work/catchup.rounds" | "$venv/bin/python" -c '
import sys, statistics as st
rows = [l.split() for l in sys.stdin]
print("| round | local capture events/s | az:// (Azurite) events/s | ratio | lag at end of round (events) | catch-up (s) |")
print("|---|---|---|---|---|---|")
for i, r in enumerate(rows, 1):
    loc, lake = float(r[0]) * 10, float(r[3]) * 10
    print(f"| {i} | {loc:,.0f} | {lake:,.0f} | {lake / loc:.2f} | {int(r[6]):,} | {float(r[7]):.1f} |")
loc = st.median(float(r[0]) * 10 for r in rows); lake = st.median(float(r[3]) * 10 for r in rows)
print(f"| median | {loc:,.0f} | {lake:,.0f} | {lake / loc:.2f} | {st.median(int(r[6]) for r in rows):,.0f} | {st.median(float(r[7]) for r in rows):.1f} |")
'
# wrk counts only answers it read: requests in flight when a round ends (at most one per
# connection) may be stored without being counted.
echo "lake collector: $sent events acknowledged as wrk counted them, $stored in the store"
[ "$stored" -ge "$sent" ] && [ "$stored" -le $((sent + ROUNDS * CONNECTIONS * 10)) ] || { echo "MISMATCH"; exit 1; }
