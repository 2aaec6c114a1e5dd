#!/usr/bin/env bash
# about: release artifacts: the static binary and tarball (./dev dist), the image (./dev image) run
# with podman, the systemd unit
# Builds them as a user would, then checks each: the tarball's contents, `--version`, `config
# example|check`, `healthcheck`; the image run with a named volume, sent events, stopped with
# SIGTERM, its capture files read back; `systemd-analyze verify` on the unit. Prints node-style
# "# pass N" / "# fail N" lines for ./dev test's summary.
set -uo pipefail
cd "$(dirname "$0")/.."
pass=0 fail=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $1"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
finish() { echo "# pass $pass"; echo "# fail $fail"; [ "$fail" -eq 0 ]; exit $?; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
post_batch() { # URL RUN: 10 events, prints the HTTP status
  python3 - "$1" "$2" <<'PY'
import json, sys, urllib.request
url, run = sys.argv[1], sys.argv[2]
batch = [{"type": "track", "event": "Shipped", "anonymousId": "a1", "messageId": f"{run}-{i}",
          "properties": {"i": i}} for i in range(10)]
req = urllib.request.Request(url, json.dumps({"batch": batch}).encode(), {"content-type": "application/json"})
try:
    print(urllib.request.urlopen(req, timeout=10).status)
except Exception as e:
    print(getattr(e, "code", "error"))
PY
}
wait_ready() { # BINARY [ARGS]: up to 20 s
  for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1
}
count_events() { # DIR RUN: events of that run in the capture files under DIR
  dist/collector capture cat "$1" 2>/dev/null | grep -c "\"messageId\":\"$2-" || true
}

version=$(awk -F'"' '/^\[workspace.package\]/{w=1} w && /^version = /{print $2; exit}' Cargo.toml)
name="clickstream-collector-$version"

echo "== ./dev dist"
if ! bash scripts/dist.sh; then not_ok "./dev dist builds"; finish; fi
ok "./dev dist builds"
check "the binary is statically linked" bash -c "file dist/collector | grep -Eq 'static(-pie)? linked|statically linked'"
check "the binary is stripped" bash -c "file dist/collector | grep -q ', stripped'"
echo "binary size: $(stat -c %s dist/collector) bytes"
tarball="dist/$name-x86_64-linux-musl.tar.gz"
want="collector README.md CHANGELOG.md LICENSE SECURITY.md collector.example.toml clickstream-collector.service docs/operating.md
tracker/index.js tracker/index.d.ts tracker/tracker_core_bg.wasm tracker/snippet.min.js tracker/package.json"
x=$(mktemp -d)
trap 'rm -rf "$x"' EXIT
tar -C "$x" -xzf "$tarball"
for f in $want; do check "the tarball holds $f" test -s "$x/$name/$f"; done
bin="$x/$name/collector"
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
check "--version names the version and commit" \
  test "$("$bin" --version)" = "collector $version (commit $commit)"
check "the npm package has the same version" \
  grep -q "\"version\": \"$version\"" "$x/$name/tracker/package.json"
check "config example is the shipped example" bash -c "cmp -s <('$bin' config example) '$x/$name/collector.example.toml'"
check "config check passes the example" "$bin" config check "$x/$name/collector.example.toml"
printf 'listen = "nowhere"\n' >"$x/bad.toml"
out=$("$bin" config check "$x/bad.toml" 2>&1); rc=$?
check "config check fails a bad file with exit 1 naming it ($out)" \
  bash -c "[ $rc -eq 1 ] && grep -q 'bad.toml' <<<'$out'"
printf 'tls_cert = "%s/missing.pem"\ntls_key = "%s/missing.pem"\n' "$x" "$x" >"$x/tls.toml"
out=$("$bin" config check "$x/tls.toml" 2>&1); rc=$?
check "config check reads the files a config names ($out)" \
  bash -c "[ $rc -eq 1 ] && grep -q 'missing.pem' <<<'$out'"

echo "== the binary from the tarball"
port=$(free_port)
check "healthcheck fails with no collector" bash -c "! '$bin' healthcheck --url http://127.0.0.1:$port/readyz 2>/dev/null"
(cd "$x/$name" && exec ./collector --listen "127.0.0.1:$port" --data-dir "$x/data" --tracker-dir tracker \
  --capture-roll-secs 1) >"$x/bin.log" 2>&1 &
pid=$!
check "healthcheck passes once it is ready" wait_ready "$bin" healthcheck --url "http://127.0.0.1:$port/readyz"
check "it accepts events" test "$(post_batch "http://127.0.0.1:$port/v1/batch" tarball)" = 200
check "it serves the tracker first-party" \
  bash -c "curl -sf http://127.0.0.1:$port/lib/tracker_core_bg.wasm -o /dev/null"
kill -TERM "$pid"; wait "$pid"; rc=$?
check "SIGTERM stops it cleanly (exit $rc)" test "$rc" -eq 0
check "the events are in its capture files" test "$(count_events "$x/data/capture" tarball)" -eq 10

echo "== ./dev image (podman)"
conf="$x/containers.conf"
printf '[containers]\ndefault_ulimits = []\npids_limit = 0\n[engine]\ncgroup_manager = "cgroupfs"\n' >"$conf"
export CONTAINERS_CONF="$conf" CONTAINER_ENGINE=podman CONTAINER_FLAGS="--storage-driver vfs"
pm() { podman --storage-driver vfs --runtime runc "$@"; }
if ! bash scripts/image.sh; then not_ok "./dev image builds"; finish; fi
ok "./dev image builds"
image="clickstream-collector:$version"
check "the image runs as a non-root user" test "$(pm image inspect --format '{{.Config.User}}' "$image")" = 65532:65532
check "the image has a HEALTHCHECK" bash -c "pm() { podman --storage-driver vfs --runtime runc \"\$@\"; }; pm image inspect --format '{{.Config.Healthcheck}}' '$image' | grep -q healthcheck"
vol="cs-test-$$"
ctr="cs-test-$$"
pm volume create "$vol" >/dev/null
port=$(free_port)
# No port publishing here (see docs): host network, the collector on a free loopback port.
pm run -d --name "$ctr" --network host -e COLLECTOR_LISTEN="127.0.0.1:$port" \
  -e COLLECTOR_CAPTURE_ROLL_SECS=1 -v "$vol:/data" "$image" >/dev/null
check "the container's healthcheck passes" wait_ready pm healthcheck run "$ctr"
check "the container accepts events" test "$(post_batch "http://127.0.0.1:$port/v1/batch" image)" = 200
check "the container serves the tracker" bash -c "curl -sf http://127.0.0.1:$port/lib/index.js -o /dev/null"
pm stop -t 30 "$ctr" >/dev/null
code=$(pm inspect --format '{{.State.ExitCode}}' "$ctr")
check "SIGTERM (podman stop) stops it cleanly (exit $code)" test "$code" = 0
check "it logged a clean stop" bash -c "podman --storage-driver vfs --runtime runc logs '$ctr' 2>&1 | grep -q 'collector stopped'"
mnt=$(pm volume inspect --format '{{.Mountpoint}}' "$vol")
check "the events are in the volume's capture files" test "$(count_events "$mnt/capture" image)" -eq 10
pm rm -f "$ctr" >/dev/null; pm volume rm -f "$vol" >/dev/null

echo "== the systemd unit"
unit="$x/clickstream-collector.service"
# verify checks that the binaries exist: point it at the one just built.
sed "s|/usr/local/bin/collector|$PWD/dist/collector|g" examples/systemd/clickstream-collector.service >"$unit"
# verify exits 0 on unknown keys and bad values (it logs and ignores them): any output fails.
if out=$(systemd-analyze verify "$unit" 2>&1) && [ -z "$out" ]; then ok "systemd-analyze verify, no warnings"; else
  echo "$out"; not_ok "systemd-analyze verify, no warnings"; fi
finish
