#!/usr/bin/env bash
# about: build and start the collector (capture sink, data in ./data); extra args go to the collector
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p collector
args=()
[ -f tracker/pkg/index.js ] && args+=(--tracker-dir tracker/pkg)
echo "collector: http://127.0.0.1:8080  (send events to /v1/batch; capture files in ./data/capture)"
exec target/release/collector "${args[@]}" "$@"
