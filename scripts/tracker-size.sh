#!/usr/bin/env bash
# about: print the tracker's raw/gzip/brotli sizes and enforce the 18 KB budget
# What a visitor downloads: tracker/pkg/tracker_core_bg.wasm + tracker/pkg/index.js (the
# wasm-bindgen glue, wrapper and host, one module). Budget: gzip -9 of the two, summed,
# at most 18 KB (18432 bytes); target 14 KB. The loader snippet must stay under 1 KB.
# Run ./dev build-tracker first.
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=tracker/pkg
for f in tracker_core_bg.wasm index.js snippet.min.js; do
  [ -f "$pkg/$f" ] || { echo "missing $pkg/$f; run ./dev build-tracker" >&2; exit 1; }
done
node - "$pkg" <<'JS'
const fs = require('fs'), zlib = require('zlib'), path = require('path');
const pkg = process.argv[2];
const row = (f) => {
  const b = fs.readFileSync(path.join(pkg, f));
  return {
    f, raw: b.length,
    gzip: zlib.gzipSync(b, { level: 9 }).length,
    brotli: zlib.brotliCompressSync(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
  };
};
const rows = ['tracker_core_bg.wasm', 'index.js'].map(row);
const total = rows.reduce((t, r) => ({ f: 'total (wasm + JS)', raw: t.raw + r.raw, gzip: t.gzip + r.gzip, brotli: t.brotli + r.brotli }), { raw: 0, gzip: 0, brotli: 0 });
const snippet = row('snippet.min.js');
const kb = (n) => (n / 1024).toFixed(1) + ' KB';
for (const r of [...rows, total, snippet]) console.log(`${r.f.padEnd(22)} raw ${kb(r.raw).padStart(9)}  gzip -9 ${kb(r.gzip).padStart(8)}  brotli ${kb(r.brotli).padStart(8)}`);
const BUDGET = 18 * 1024, TARGET = 14 * 1024;
let ok = true;
if (total.gzip > BUDGET) { console.log(`FAIL: ${total.gzip} bytes gzip > budget ${BUDGET}`); ok = false; }
else console.log(`budget ok: ${total.gzip} <= ${BUDGET} bytes gzip -9 (target ${TARGET}${total.gzip <= TARGET ? ', met' : ', not yet met'})`);
if (snippet.raw > 1024) { console.log(`FAIL: snippet ${snippet.raw} bytes > 1024`); ok = false; }
process.exit(ok ? 0 : 1);
JS
