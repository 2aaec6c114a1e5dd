#!/usr/bin/env bash
# The article's flow with our examples: send_events.py posts a batch to a real collector, and
# read_capture.py (fastavro) reads the capture files back. Prints node-style pass/fail counts.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import fastavro" 2>/dev/null || pip install -q --root-user-action=ignore fastavro
cargo build -q -p collector
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
target/debug/collector --listen 127.0.0.1:0 --data-dir "$dir/data" 2> "$dir/log" & pid=$!
for _ in $(seq 100); do grep -q "listening on" "$dir/log" && break; sleep 0.1; done
url=$(grep -o 'listening on http://[0-9.:]*' "$dir/log" | head -1 | sed 's/listening on //')
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass+1)); echo "ok - $1"; else fail=$((fail+1)); echo "not ok - $1"; fi; }
check "send_events.py posts 25 events" "python3 examples/send_events.py --url $url --count 25 > $dir/sent.json"
check "the collector accepted all 25" "grep -Eq '\"accepted\": *25' $dir/sent.json"
kill -TERM $pid; wait $pid
python3 examples/read_capture.py "$dir/data/capture" > "$dir/events.ndjson" 2> "$dir/read.log"
check "read_capture.py reads 25 events with fastavro" "[ \$(wc -l < $dir/events.ndjson) -eq 25 ]"
check "events are enriched (receivedAt, context.ip)" "python3 -c \"
import json,sys
evs=[json.loads(l) for l in open('$dir/events.ndjson')]
assert all('receivedAt' in e and e['context']['ip']=='127.0.0.0' for e in evs), evs[0]
assert sum(e['type']=='page' for e in evs)==9
\""
python3 examples/read_capture.py --meta "$dir/data/capture" > "$dir/meta.ndjson" 2>/dev/null
check "--meta shows SequenceNumber/Offset/EnqueuedTimeUtc" "python3 -c \"
import json
r=json.loads(open('$dir/meta.ndjson').readline())
assert r['SequenceNumber']==0 and r['Offset']=='0' and r['EnqueuedTimeUtc'].endswith('M'), r
\""
echo "# pass $pass"
echo "# fail $fail"
[ "$fail" -eq 0 ]
