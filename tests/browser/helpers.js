// Shared pieces of the end-to-end tests: the real collector as a child process, Debian's
// Chromium through playwright-core, a second static server for cross-origin pages, and a
// reader for the Avro capture files the collector writes.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const avro = require('avsc');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '../..');
const PKG = path.join(ROOT, 'tracker/pkg');
const SITE = path.join(__dirname, 'site');
const COLLECTOR =
  process.env.COLLECTOR_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target'), 'debug/collector');

/** Starts the collector; resolves once it logged its address. */
async function startCollector({ port = 0, dataDir, args = [], siteDir = SITE } = {}) {
  dataDir = dataDir || fs.mkdtempSync(path.join(os.tmpdir(), 'cs-e2e-'));
  const child = spawn(
    COLLECTOR,
    [
      '--listen', `127.0.0.1:${port}`,
      '--data-dir', dataDir,
      '--sink', 'capture',
      '--capture-roll-secs', '1',
      '--tracker-dir', PKG,
      '--site-dir', siteDir,
      ...args,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`collector did not start:\n${log}`)), 15000);
    child.stderr.on('data', (d) => {
      log += d;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`collector exited ${code}:\n${log}`)));
  });
  return { url, port: Number(new URL(url).port), dataDir, child, log: () => log };
}

/** SIGTERM (which finalizes the open capture file) and wait for the exit. */
function stopCollector(c) {
  if (c.child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    c.child.on('exit', () => resolve());
    c.child.kill('SIGTERM');
  });
}

/** Every event (the enriched JSON bodies) in the finalized capture files under dataDir. */
async function readCapture(dataDir) {
  const files = [];
  const walk = (d) => {
    if (!fs.existsSync(d)) return;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.avro')) files.push(p);
    }
  };
  walk(path.join(dataDir, 'capture'));
  const events = [];
  for (const f of files.sort()) {
    await new Promise((resolve, reject) => {
      avro
        .createFileDecoder(f)
        .on('data', (r) => events.push(JSON.parse(Buffer.from(r.Body).toString('utf8'))))
        .on('end', resolve)
        .on('error', reject);
    });
  }
  return events;
}

/** A plain static server on another port (another origin) for cross-origin pages. */
async function startStatic(routes) {
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const route = routes[u.pathname];
    if (!route) {
      res.writeHead(404).end();
      return;
    }
    const { type, body } = route(u);
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
    ],
  });
}

/** The minified loader snippet, configured by data attributes. */
function snippetTag(attrs) {
  const code = fs.readFileSync(path.join(PKG, 'snippet.min.js'), 'utf8');
  const a = Object.entries(attrs)
    .map(([k, v]) => ` data-${k}="${v}"`)
    .join('');
  return `<script${a}>${code}</script>`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `f` until it returns a truthy value. */
async function until(f, ms = 10000, step = 100) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(step);
  }
}

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

module.exports = { startCollector, stopCollector, readCapture, startStatic, launch, snippetTag, sleep, until, UUID_V4, PKG, SITE };
