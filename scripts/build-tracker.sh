#!/usr/bin/env bash
# about: build the wasm tracker into tracker/pkg (npm package)
# Pipeline: cargo (wasm32, size profile) -> wasm-bindgen --target web -> wasm-opt -Oz
# (npm binaryen; Debian's v108 produces modules Chromium rejects) -> terser for the JS,
# plus the hand-written ES wrapper, types, README and package.json. Output: tracker/pkg,
# which `npm pack` turns into the npm package and the collector serves under /lib.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target_dir=${CARGO_TARGET_DIR:-$root/target}
pkg=$root/tracker/pkg
tools=$root/tracker/tools

want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$want" != "$have" ]; then
  echo "wasm-bindgen CLI $have != $want (Cargo.lock); run scripts/test-20-tracker.sh or:" >&2
  echo "  cargo install wasm-bindgen-cli --version $want --no-default-features" >&2
  exit 1
fi
[ -x "$tools/node_modules/.bin/wasm-opt" ] || (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error)

cargo build -p tracker --features slim --target wasm32-unknown-unknown --profile wasm-release
rm -rf "$pkg" && mkdir -p "$pkg"
wasm-bindgen --target web --no-typescript --out-dir "$pkg" --out-name tracker_core \
  "$target_dir/wasm32-unknown-unknown/wasm-release/tracker.wasm"
"$tools/node_modules/.bin/wasm-opt" -Oz --strip-debug --strip-producers \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$pkg/tracker_core_bg.wasm" -o "$pkg/tracker_core_bg.wasm"

terser=$tools/node_modules/.bin/terser
"$terser" "$pkg/tracker_core.js" --module --compress --mangle -o "$pkg/tracker_core.js"
"$terser" tracker/js/index.js --module --compress --mangle -o "$pkg/index.js"
"$terser" www/snippet.js --compress --mangle -o "$pkg/snippet.min.js"
cp tracker/js/index.d.ts tracker/README.md "$pkg/"

version=$(awk -F'"' '/^version = /{print $2; exit}' tracker/Cargo.toml)
cat > "$pkg/package.json" <<JSON
{
  "name": "clickstream-tracker",
  "version": "$version",
  "description": "Clickstream browser tracker in WebAssembly: Segment-compatible events, batching, durable delivery",
  "license": "Apache-2.0",
  "type": "module",
  "main": "./index.js",
  "module": "./index.js",
  "types": "./index.d.ts",
  "exports": {
    ".": { "types": "./index.d.ts", "import": "./index.js", "default": "./index.js" },
    "./tracker_core_bg.wasm": "./tracker_core_bg.wasm",
    "./snippet.min.js": "./snippet.min.js",
    "./package.json": "./package.json"
  },
  "files": ["index.js", "index.d.ts", "tracker_core.js", "tracker_core_bg.wasm", "snippet.min.js", "README.md"],
  "sideEffects": false
}
JSON
echo "built $pkg:"
ls -l "$pkg" | tail -n +2
