#!/usr/bin/env bash
# about: the main job: build the tracker and the collector, then start the collector in demo mode
# The collector runs with the local capture sink (data in ./data), serves the demo shop at /,
# the tracker first-party at /lib/ and the live inspector at /inspector. Extra arguments go to
# the collector, e.g. `./dev run --listen 0.0.0.0:8080` or `./dev run --sink capture,stdout`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_tracker_deps.sh
ensure_tracker_build_deps
bash scripts/build-tracker.sh
cargo build --release -p collector
# For the banner: the address and data directory from the arguments or env, else the defaults.
listen=${COLLECTOR_LISTEN:-127.0.0.1:8080}
data=${COLLECTOR_DATA_DIR:-./data}
prev=
for a in "$@"; do
  [ "$prev" = --listen ] && listen=$a
  [ "$prev" = --data-dir ] && data=$a
  case "$a" in --listen=*) listen=${a#--listen=};; --data-dir=*) data=${a#--data-dir=};; esac
  prev=$a
done
cat <<MSG

  Demo shop:       http://$listen/
  Live inspector:  http://$listen/inspector
  Send events:     python3 examples/send_events.py --url http://$listen
  Capture files:   $data/capture   (read: target/release/collector capture cat $data/capture)

MSG
exec target/release/collector --demo "$@"
