#!/usr/bin/env bash
# Format, lint and test every crate in the workspace (unit tests and socket-level tests).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_rust.sh
ensure_rust_components
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace 2>&1
