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
# The demo shop's tracking plan, in tag mode: an event that breaks it is stored with
# context.violations and shown so in the inspector. Flags given to ./dev run override both;
# a --config file's tracking_plan keys do not (the environment comes first).
export COLLECTOR_TRACKING_PLAN=${COLLECTOR_TRACKING_PLAN:-examples/plans/shop}
export COLLECTOR_TRACKING_PLAN_MODE=${COLLECTOR_TRACKING_PLAN_MODE:-tag}
# For the banner: the address, data directory and plan from the arguments or env, else the defaults.
listen=${COLLECTOR_LISTEN:-127.0.0.1:8080}
data=${COLLECTOR_DATA_DIR:-./data}
plan=$COLLECTOR_TRACKING_PLAN
mode=$COLLECTOR_TRACKING_PLAN_MODE
prev=
for a in "$@"; do
  [ "$prev" = --listen ] && listen=$a
  [ "$prev" = --data-dir ] && data=$a
  [ "$prev" = --tracking-plan ] && plan=$a
  [ "$prev" = --tracking-plan-mode ] && mode=$a
  case "$a" in --listen=*) listen=${a#--listen=};; --data-dir=*) data=${a#--data-dir=};; esac
  case "$a" in --tracking-plan=*) plan=${a#--tracking-plan=};; --tracking-plan-mode=*) mode=${a#--tracking-plan-mode=};; esac
  prev=$a
done
cat <<MSG

  Demo shop:       http://$listen/
  Live inspector:  http://$listen/inspector
  Send events:     python3 examples/send_events.py --url http://$listen
  Capture files:   $data/capture   (read: target/release/collector capture cat $data/capture)
  Tracking plan:   $plan, $mode mode (docs/tracking-plans.md)

MSG
exec target/release/collector --demo "$@"
