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

node "$tools/shorten-imports.js" "$pkg/tracker_core_bg.wasm" "$pkg/tracker_core.js"

# One ES module: the wasm-bindgen glue and the hand-written wrapper/host (tracker/js)
# are joined and minified together (one request, one gzip stream, shared mangling).
terser=$tools/node_modules/.bin/terser
glue=$pkg/tracker_core.js
grep -q '^export function call(' "$glue" && grep -q '^export { initSync, __wbg_init as default };$' "$glue" \
  || { echo "unexpected wasm-bindgen glue layout; update scripts/build-tracker.sh" >&2; exit 1; }
{
  sed -e 's/^export function call(/function call(/' -e '/^export { initSync, __wbg_init as default };$/d' "$glue"
  sed -e "s#^import load, { call } from './tracker_core.js';#const load = __wbg_init;#" tracker/js/index.js
} > "$pkg/bundle.js"
"$terser" "$pkg/bundle.js" --module --compress passes=2 --mangle -o "$pkg/index.js"
rm "$pkg/bundle.js" "$glue"
"$terser" www/snippet.js --compress --mangle -o "$pkg/snippet.min.js"
cp tracker/js/index.d.ts tracker/README.md "$pkg/"

version=$(awk -F'"' '/^\[workspace.package\]/{w=1} w && /^version = /{print $2; exit}' Cargo.toml)
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
  "files": ["index.js", "index.d.ts", "tracker_core_bg.wasm", "snippet.min.js", "README.md"],
  "sideEffects": false
}
JSON
echo "built $pkg:"
ls -l "$pkg" | tail -n +2
