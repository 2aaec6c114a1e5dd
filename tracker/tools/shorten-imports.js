// Renames the wasm module's imports to short names, in the module and in its JS glue.
//
// wasm-bindgen names every import `__wbg_<method>_<16 hex digits>` under the module
// "./tracker_core_bg.js". Those names appear twice (import section and glue), and their
// hashes do not compress: shortening them saves about 0.5 KB gzip on a ~18 KB budget.
// The module name "./tracker_core_bg.js" becomes "m" as well.
// Usage: node shorten-imports.js module.wasm glue.js   (both rewritten in place)
'use strict';
const fs = require('fs');

const [wasmPath, jsPath] = process.argv.slice(2);
const wasm = fs.readFileSync(wasmPath);
let js = fs.readFileSync(jsPath, 'utf8');

let pos = 8;
const leb = () => {
  let n = 0, shift = 0, b;
  do {
    b = wasm[pos++];
    n |= (b & 0x7f) << shift;
    shift += 7;
  } while (b & 0x80);
  return n >>> 0;
};
const encLeb = (n) => {
  const out = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return Buffer.from(out);
};
const encName = (s) => Buffer.concat([encLeb(Buffer.byteLength(s)), Buffer.from(s)]);

// 0 → "a", 25 → "z", 26 → "ba", ...: short, unique, valid identifiers.
const letters = (n) => (n >= 26 ? letters(Math.floor(n / 26)) : '') + String.fromCharCode(97 + (n % 26));

const parts = [wasm.subarray(0, 8)];
const renames = new Map();
let done = false;
while (pos < wasm.length) {
  const start = pos;
  const id = wasm[pos++];
  const size = leb();
  const body = pos;
  const end = body + size;
  if (id !== 2) {
    parts.push(wasm.subarray(start, end));
    pos = end;
    continue;
  }
  const count = leb();
  const items = [encLeb(count)];
  for (let i = 0; i < count; i++) {
    const mlen = leb();
    const mod = wasm.toString('utf8', pos, (pos += mlen));
    const flen = leb();
    const field = wasm.toString('utf8', pos, (pos += flen));
    const descStart = pos;
    const kind = wasm[pos++];
    if (kind === 0) leb();
    else if (kind === 1) {
      pos++;
      const flags = wasm[pos++];
      leb();
      if (flags & 1) leb();
    } else if (kind === 2) {
      const flags = wasm[pos++];
      leb();
      if (flags & 1) leb();
    } else if (kind === 3) pos += 2;
    else if (kind === 4) {
      pos++;
      leb();
    } else throw new Error(`unknown import kind ${kind}`);
    let name = field;
    if (mod === './tracker_core_bg.js' && /^__w/.test(field)) {
      name = renames.get(field) || letters(renames.size);
      renames.set(field, name);
    }
    items.push(encName(mod === './tracker_core_bg.js' ? 'm' : mod), encName(name), wasm.subarray(descStart, pos));
  }
  if (pos !== end) throw new Error('import section parse mismatch');
  const payload = Buffer.concat(items);
  parts.push(Buffer.from([2]), encLeb(payload.length), payload);
  done = true;
}
if (!done) throw new Error('no import section');
if (new Set(renames.values()).size !== renames.size) throw new Error('import renames collide');

for (const [from, to] of renames) {
  const re = new RegExp(`\\b${from}\\b`, 'g');
  const n = (js.match(re) || []).length;
  if (n === 0) throw new Error(`import ${from} not found in ${jsPath}`);
  js = js.replace(re, to);
}
if (!js.includes('"./tracker_core_bg.js"')) throw new Error('import module name not found in glue');
js = js.split('"./tracker_core_bg.js"').join('m');
fs.writeFileSync(wasmPath, Buffer.concat(parts));
fs.writeFileSync(jsPath, js);
console.log(`shortened ${renames.size} import names`);
