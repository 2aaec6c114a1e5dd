#!/usr/bin/env bash
# about: fuzz smoke pass: each cargo-fuzz target for FUZZ_SECONDS (default 20); a crash fails
# Installs what it needs (cargo-fuzz; see scripts/fuzz.sh for the toolchain it picks) and prints
# node test-runner style `# pass N` / `# fail M` lines, one test per target, for scripts/test.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}" 2>&1 | tee "$out"
pass=$(grep -cE '^fuzz: .* crashes=0 ' "$out")
fail=$(grep -cE '^fuzz: .* crashes=[1-9]' "$out")
# No result line at all (the build failed): count each target as failed.
[ $((pass + fail)) -eq 0 ] && fail=2
rm -f "$out"
echo "# pass $pass"
echo "# fail $fail"
[ "$fail" -eq 0 ]
