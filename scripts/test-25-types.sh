#!/usr/bin/env bash
# about: the tracker's TypeScript types: tsc on calls with and without a plan's generated types
# Builds the collector (for `collector plan types`), installs the pinned TypeScript (npm ci in
# tests/types), then runs tests/types/plan-types.test.js with node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
cargo build -q -p collector
(cd tests/types && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/types && node --test)
