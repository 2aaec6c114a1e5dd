#!/usr/bin/env bash
# about: tracker: build, size budget, wasm unit tests in Chromium, e2e against the real collector
# Installs what it needs (idempotent): the wasm target, wasm-bindgen-cli matching
# Cargo.lock, Debian's chromium + chromedriver, and the npm packages (binaryen/terser for
# the build, playwright-core/avsc for the tests).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/_tracker_deps.sh
ensure_tracker_build_deps
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

echo "== build the tracker package"
bash scripts/build-tracker.sh
echo "== size budget"
bash scripts/tracker-size.sh
echo "== unit tests (wasm-bindgen-test in headless Chromium)"
cargo test --target wasm32-unknown-unknown -p tracker
echo "== npm pack"
(cd tracker/pkg && npm pack --dry-run --loglevel=error >/dev/null) && echo "npm pack ok"
echo "== end-to-end (playwright-core + Chromium + real collector)"
cargo build -p collector
(cd tests/browser && node --test --test-concurrency=1)
