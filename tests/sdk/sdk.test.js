// Existing server-side SDKs, unchanged, pointed at the collector: @segment/analytics-node and
// @rudderstack/rudder-sdk-node send real batches over HTTP; the stdout sink shows what was stored.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = process.env.COLLECTOR_BIN ?? join(root, 'target', 'debug', 'collector');

let collector, url, dataDir;
const stored = [];

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'sdk-'));
  collector = spawn(bin, ['--listen', '127.0.0.1:0', '--data-dir', dataDir, '--sink', 'stdout']);
  let buf = '';
  collector.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      stored.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
  });
  url = await new Promise((resolve, reject) => {
    let err = '';
    collector.stderr.on('data', (d) => {
      err += d;
      const m = err.match(/listening on (http:\/\/[0-9.:]+)/);
      if (m) resolve(m[1]);
    });
    collector.on('exit', (code) => reject(new Error(`collector exited ${code}: ${err}`)));
  });
});

after(() => {
  collector.kill('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
});

async function waitFor(pred, what) {
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    const found = stored.filter(pred);
    if (found.length) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}; stored: ${JSON.stringify(stored).slice(0, 500)}`);
}

test('@segment/analytics-node: every call type arrives, enriched, with the write key', async () => {
  const { Analytics } = require('@segment/analytics-node');
  const errors = [];
  const analytics = new Analytics({ writeKey: 'seg_key', host: url, maxEventsInBatch: 3, flushInterval: 100 });
  analytics.on('error', (e) => errors.push(e));
  analytics.track({ userId: 'seg-u1', event: 'Order Completed', properties: { total: 12.5, items: ['a', 'b'] }, messageId: 'seg-m1' });
  analytics.identify({ userId: 'seg-u1', traits: { email: 'ada@example.com' } });
  analytics.page({ userId: 'seg-u1', name: 'Pricing', properties: { path: '/pricing' } });
  analytics.group({ userId: 'seg-u1', groupId: 'seg-g1', traits: { plan: 'pro' } });
  analytics.alias({ userId: 'seg-u1', previousId: 'seg-anon' });
  analytics.screen({ anonymousId: 'seg-anon', name: 'Home' });
  await analytics.closeAndFlush({ timeout: 5000 });
  assert.deepEqual(errors, []);
  const mine = await waitFor((e) => e.writeKey === 'seg_key' && e.type === 'screen', 'segment events');
  const all = stored.filter((e) => e.writeKey === 'seg_key');
  assert.deepEqual(all.map((e) => e.type).sort(), ['alias', 'group', 'identify', 'page', 'screen', 'track']);
  const order = all.find((e) => e.type === 'track');
  assert.equal(order.messageId, 'seg-m1');
  assert.deepEqual(order.properties, { total: 12.5, items: ['a', 'b'] });
  assert.equal(order.context.library.name, '@segment/analytics-node');
  assert.ok(order.receivedAt && order.originalTimestamp && order.sentAt, JSON.stringify(order));
  assert.equal(order.context.ip, '127.0.0.0');
  assert.equal(all.find((e) => e.type === 'group').groupId, 'seg-g1');
  assert.equal(mine[0].name, 'Home');
});

test('@rudderstack/rudder-sdk-node: batches arrive with the write key', async () => {
  const Analytics = require('@rudderstack/rudder-sdk-node');
  const client = new Analytics('rs_key', { dataPlaneUrl: url, flushAt: 2, flushInterval: 100, logLevel: 'error' });
  client.track({ userId: 'rs-u1', event: 'Signed Up', properties: { plan: 'free' } });
  client.identify({ userId: 'rs-u1', traits: { name: 'Grace' } });
  client.page({ userId: 'rs-u1', name: 'Docs', category: 'help' });
  await new Promise((resolve, reject) => client.flush((err) => (err ? reject(err) : resolve())));
  await waitFor((e) => e.writeKey === 'rs_key' && e.type === 'page', 'rudderstack events');
  const all = stored.filter((e) => e.writeKey === 'rs_key');
  assert.deepEqual(all.map((e) => e.type).sort(), ['identify', 'page', 'track']);
  const t = all.find((e) => e.type === 'track');
  assert.equal(t.event, 'Signed Up');
  assert.equal(t.properties.plan, 'free');
  assert.ok(t.context.library.name, 'the SDK names itself in context.library');
  assert.ok(t.receivedAt && t.messageId);
});
