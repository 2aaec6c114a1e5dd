#!/usr/bin/env bash
# Existing Segment and RudderStack server SDKs, unchanged, against the real collector.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p collector
(cd tests/sdk && npm ci --no-audit --no-fund --loglevel=error)
node --test tests/sdk/
