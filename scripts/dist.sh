#!/usr/bin/env bash
# about: release artifacts: a static, stripped x86_64 Linux binary (musl) and a tarball in dist/
# Installs what it needs (idempotent): the musl target and Debian's musl-tools (musl-gcc, for
# mimalloc's and aws-lc's C code), and the tracker's build tools. Output:
#   dist/collector                                               the static binary
#   dist/clickstream-collector-VERSION-x86_64-linux-musl.tar.gz  binary, tracker package, docs,
#                                                                example config, systemd unit
# COLLECTOR_COMMIT overrides the commit stamped into `collector --version` (default: git HEAD).
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
version=$(awk -F'"' '/^\[workspace.package\]/{w=1} w && /^version = /{print $2; exit}' Cargo.toml)

if ! command -v musl-gcc >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq musl-tools >/dev/null
fi
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
source scripts/_tracker_deps.sh
ensure_tracker_build_deps
bash scripts/build-tracker.sh >/dev/null

# mimalloc stays the allocator (it is compiled in, so the musl build uses it too): musl's own
# malloc takes a global lock and is known to be slow for many small allocations across threads.
export CC_x86_64_unknown_linux_musl=musl-gcc
cargo build --profile dist --target "$target" -p collector
bin="target/$target/dist/collector"
if ! file "$bin" | grep -Eq 'static(-pie)? linked|statically linked'; then
  echo "dist: $bin is not statically linked: $(file "$bin")" >&2
  exit 1
fi

name="clickstream-collector-$version"
rm -rf "dist/$name" && mkdir -p "dist/$name/tracker"
cp "$bin" dist/collector
cp "$bin" "dist/$name/collector"
cp tracker/pkg/index.js tracker/pkg/index.d.ts tracker/pkg/tracker_core_bg.wasm \
  tracker/pkg/snippet.min.js tracker/pkg/package.json tracker/pkg/README.md "dist/$name/tracker/"
cp README.md CHANGELOG.md LICENSE SECURITY.md "dist/$name/"
cp -r docs "dist/$name/docs"
dist/collector config example > "dist/$name/collector.example.toml"
cp examples/systemd/clickstream-collector.service "dist/$name/"
tar -C dist -czf "dist/$name-x86_64-linux-musl.tar.gz" "$name"
echo "built dist/$name-x86_64-linux-musl.tar.gz ($(du -k "dist/$name-x86_64-linux-musl.tar.gz" | cut -f1) KiB)"
echo "binary: dist/collector, $(stat -c %s dist/collector) bytes; $(dist/collector --version)"
