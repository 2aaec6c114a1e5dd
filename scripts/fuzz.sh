#!/usr/bin/env bash
# about: run each fuzz target for SECONDS (default 60) and report executions and crashes
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (./dev fuzz 600 decode_request)
# cargo-fuzz (libFuzzer) over collector/fuzz: installs cargo-fuzz if missing, builds with the
# nightly toolchain when one is installed, else with stable and RUSTC_BOOTSTRAP=1 (without a
# sanitizer, which is what needs nightly proper). The corpus grows in collector/fuzz/corpus/
# (not committed), seeded from collector/fuzz/seeds/. A crash is saved under
# collector/fuzz/artifacts/<target>/; copy it into seeds/<target>/ once fixed, and
# `cargo test -p collector --test fuzz_corpus` replays it from then on.
# Prints one line per target: `fuzz: <target> executions=N crashes=M seconds=S`; exits 1 on a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode_request validate_enrich)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  toolchain=()
  export RUSTC_BOOTSTRAP=1
fi
cd collector
flags=(--fuzz-dir fuzz --sanitizer none --release --debug-assertions)
echo "== cargo ${toolchain[*]} fuzz build ${flags[*]}${RUSTC_BOOTSTRAP:+ (RUSTC_BOOTSTRAP=1)}"
cargo "${toolchain[@]}" fuzz build "${flags[@]}"

status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  before=$(find "fuzz/artifacts/$t" -type f | wc -l)
  log=$(mktemp)
  set +e
  cargo "${toolchain[@]}" fuzz run "${flags[@]}" "$t" \
    "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -dict=fuzz/json.dict -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  after=$(find "fuzz/artifacts/$t" -type f | wc -l)
  crashes=$((after - before))
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    crashes=1  # libFuzzer failed without saving an input: show why below
  fi
  if [ "$crashes" -gt 0 ]; then
    status=1
    grep -E 'panicked|ERROR|SUMMARY|Test unit written|deadly signal' "$log" | head -20 || tail -30 "$log"
  fi
  echo "fuzz: $t executions=${runs:-0} crashes=$crashes seconds=$secs"
  rm -f "$log"
done
exit $status
