#!/usr/bin/env bash
# about: install what the tests need, then run every test (this is what CI runs)
# Runs scripts/test-*.sh in order, each installing what it needs, and prints one summary line.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
status=0
for t in scripts/test-*.sh; do
  echo "==> $t"
  if ! bash "$t" 2>&1 | tee -a "$log"; then
    echo "FAILED: $t"
    status=1
  fi
done
# Sum the runners' own counts: cargo's "test result" lines and node's "# pass/# fail".
passed=$(grep -hoE '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -hoE '; [0-9]+ failed;' "$log" | awk '{s+=$2} END {print s+0}')
npass=$(grep -hoE '^# pass [0-9]+' "$log" | awk '{s+=$3} END {print s+0}')
nfail=$(grep -hoE '^# fail [0-9]+' "$log" | awk '{s+=$3} END {print s+0}')
rm -f "$log"
[ $((failed + nfail)) -gt 0 ] && status=1
echo
echo "summary: $((passed + npass)) passed, $((failed + nfail)) failed"
exit $status
