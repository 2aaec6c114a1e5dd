#!/usr/bin/env bash
# about: compare collector builds: interleaved rounds, each against the bare server around it
# Usage: ./dev bench-ab VARIANT [VARIANT ...], where a VARIANT is `.` (the working tree), a git
# revision (built in a temporary worktree) or the path of a collector binary.
# An improvement of a few percent is smaller than the machine's drift between two `./dev bench`
# runs. Here the variants take turns within one run (bare, A, B, bare, A, B, ..., bare), each
# collector round starts a fresh collector on an empty data directory, and each is compared with
# the mean of the bare rounds just before and after it. Prints, per variant, the median, mean
# and range of its ratios and the CPU time its processes spent per request.
# Options via env: ROUNDS (default 8), DURATION (default 6), CONNECTIONS (64), THREADS (2),
# INVALID_EVENTS (0; see _bench_load.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ $# -ge 1 ] || { echo "usage: ./dev bench-ab VARIANT [VARIANT ...]   (VARIANT: . | git revision | collector binary)"; exit 2; }
ROUNDS=${ROUNDS:-8}
DURATION=${DURATION:-6}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}

source scripts/_bench_load.sh
need_wrk
bench_scratch
bench_load "$work"

cargo build --release -q -p collector --example bare_server
# Variants, each as "name binary". Revisions share one target directory: only the collector
# itself is rebuilt for each.
names=(); bins=()
for v in "$@"; do
  if [ "$v" = . ]; then
    cargo build --release -q -p collector --bin collector
    cp target/release/collector "$work/bin-here"; names+=(here); bins+=("$work/bin-here")
  elif [ -f "$v" ]; then
    names+=("$(basename "$v")"); bins+=("$(realpath "$v")")
  else
    rev=$(git rev-parse --short "$v^{commit}")
    git worktree add -q --detach "$work/src-$rev" "$rev"
    (cd "$work/src-$rev" && CARGO_TARGET_DIR="$root/target/bench-ab" cargo build --release -q -p collector --bin collector) \
      || { git worktree remove --force "$work/src-$rev"; exit 1; }
    cp target/bench-ab/release/collector "$work/bin-$rev"
    git worktree remove --force "$work/src-$rev"
    names+=("$v"); bins+=("$work/bin-$rev")
  fi
done

# Names label the rounds: they must differ.
if [ "$(printf '%s\n' "${names[@]}" | sort | uniq -d)" ]; then
  echo "two variants share a name: ${names[*]}"; exit 2
fi

# round NAME URL PID: one wrk round; appends "name rps requests cpu_ticks" to $work/rounds.
round() {
  local c0 c1 out
  c0=$(proc_ticks "$3")
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s "$work/post.lua" "$2/v1/batch")
  c1=$(proc_ticks "$3")
  echo "$out" | awk -v name="$1" -v cpu=$((c1 - c0)) '
    /^Requests\/sec:/ { rps = $2 } / requests in / { n = $1 }
    END { print name, rps, n, cpu }' >> "$work/rounds"
}

echo "load: wrk -t$THREADS -c$CONNECTIONS, $ROUNDS rounds of ${DURATION}s per variant, same machine ($(nproc) cores)"
target/release/examples/bare_server 127.0.0.1:18190 2>/dev/null & bare=$!
wait_port 18190
round bare http://127.0.0.1:18190 $bare
for r in $(seq "$ROUNDS"); do
  for i in "${!names[@]}"; do
    rm -rf "$work/data"
    COLLECTOR_LOG=warn "${bins[$i]}" --listen 127.0.0.1:18191 --data-dir "$work/data" --rate-limit-ip 0 2>>"$work/collector.log" & coll=$!
    wait_port 18191
    # A short warm-up, not counted: connections, allocator and page cache settle.
    wrk -t"$THREADS" -c"$CONNECTIONS" -d1s -s "$work/post.lua" http://127.0.0.1:18191/v1/batch >/dev/null
    round "${names[$i]}" http://127.0.0.1:18191 $coll
    kill -TERM $coll; wait $coll || { tail -20 "$work/collector.log"; exit 1; }
  done
  round bare http://127.0.0.1:18190 $bare
  echo "round $r of $ROUNDS done"
done
kill $bare; wait $bare 2>/dev/null || true

python3 - "$work/rounds" "$(getconf CLK_TCK)" "${names[@]}" <<'PY'
import statistics, sys
path, hz, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = [line.split() for line in open(path)]
ratios = {n: [] for n in names}
cpu = {n: [0, 0] for n in names}  # ticks, requests
# Rows: bare, then (one per variant, bare) per round.
step = len(names) + 1
for start in range(1, len(rows), step):
    before, after = float(rows[start - 1][1]), float(rows[start + len(names)][1])
    for name, rps, n, ticks in rows[start:start + len(names)]:
        ratios[name].append(float(rps) / ((before + after) / 2))
        cpu[name][0] += int(ticks)
        cpu[name][1] += int(n)
bare = [float(r[1]) for r in rows if r[0] == "bare"]
print(f"bare server: median {statistics.median(bare):.0f} req/s over {len(bare)} rounds")
for n in names:
    r = ratios[n]
    us = cpu[n][0] * 1e6 / hz / cpu[n][1]
    print(f"{n:<12} ratio median {statistics.median(r):.3f} mean {statistics.mean(r):.3f} range {min(r):.3f}-{max(r):.3f}"
          f"   CPU {us:.1f} us per request   rounds: {' '.join(f'{x:.2f}' for x in r)}")
PY
