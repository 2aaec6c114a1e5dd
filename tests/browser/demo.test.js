// The demo shop (www/) in Debian's Chromium against the real collector in demo mode
// (`collector --demo`: the site at /, the tracker first-party at /lib/, the live inspector).
// A visitor walks the shop while the inspector is open in a second tab; then the events are
// checked three ways: the inspector page showed them live, GET /debug/events returns them,
// and the capture files (read with `collector capture cat`, and independently with avsc)
// hold exactly the same events. The collector holds them to the shop's tracking plan
// (examples/plans/shop) in tag mode, unplanned events tagged too: only the event the product
// page sends off plan on purpose may carry violations. Screenshots land in tests/browser/artifacts/.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { isDeepStrictEqual } = require('node:util');
const h = require('./helpers');

const ROOT = path.resolve(__dirname, '../..');
const WWW = path.join(ROOT, 'www');
const ARTIFACTS = process.env.ARTIFACTS_DIR || path.join(__dirname, 'artifacts');
const COLLECTOR =
  process.env.COLLECTOR_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target'), 'debug/collector');
const PLAN = path.join(ROOT, 'examples/plans/shop');
const SNIPPET = () => fs.readFileSync(path.join(h.PKG, 'snippet.min.js'), 'utf8').trim();

/**
 * `collector --demo` from the repository root (demo mode finds www/ and tracker/pkg/ there),
 * with the shop's tracking plan in tag mode, as `./dev run` starts it.
 */
async function startDemo() {
  if (!fs.existsSync(path.join(h.PKG, 'index.js'))) throw new Error('tracker/pkg is not built: run ./dev build-tracker');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-demo-'));
  const plan = ['--tracking-plan', PLAN, '--tracking-plan-mode', 'tag', '--tracking-plan-unplanned', 'tag'];
  const child = spawn(COLLECTOR, ['--demo', '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...plan], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`collector did not start:\n${log}`)), 15000);
    child.stderr.on('data', (d) => {
      log += d;
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`collector exited ${code}:\n${log}`)));
  });
  return { url, dataDir, child, log: () => log };
}

function run(bin, args) {
  return new Promise((resolve, reject) =>
    execFile(bin, args, { cwd: ROOT, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${bin} ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
}
/**
 * The tracker promises at-least-once: an event whose batch was still in flight when its page
 * was left can be delivered and also resent by the next page (tracker/README.md, Delivery).
 * A resent copy must be the same event; only the delivery fields differ. Reports the count.
 */
function resends(t, entries) {
  const seen = new Map();
  let extra = 0;
  const strip = (e) => {
    const { sentAt, receivedAt, timestamp, ...rest } = e;
    return rest;
  };
  for (const e of entries) {
    const first = seen.get(e.messageId);
    if (!first) {
      seen.set(e.messageId, e);
      continue;
    }
    extra += 1;
    assert.notStrictEqual(first.event.receivedAt, e.event.receivedAt, `${e.messageId} is a second delivery`);
    assert.deepStrictEqual(strip(e.event), strip(first.event), `${e.messageId}: a resent copy is the same event`);
  }
  if (extra && t) t.diagnostic(`${extra} event(s) delivered twice (a batch in flight when its page was left)`);
  return extra;
}
const unique = (entries) => [...new Map(entries.map((e) => [e.messageId, e])).values()];

const ndjson = (text) => text.split('\n').filter(Boolean).map((l) => JSON.parse(l));

/** The HTML pages of www/ (symlinked SPA deep links are the same file, so skipped). */
function htmlPages(dir = WWW) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...htmlPages(p));
    else if (e.isFile() && e.name.endsWith('.html')) out.push(p);
  }
  return out;
}

test('every demo page inlines the built loader snippet, links to the inspector, and uses no external assets', () => {
  const pages = htmlPages();
  assert.ok(pages.length >= 7, `pages: ${pages}`);
  const snippet = SNIPPET();
  for (const p of pages) {
    const html = fs.readFileSync(p, 'utf8');
    const rel = path.relative(ROOT, p);
    const tags = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)].filter((m) => /data-write-key=/.test(m[1]));
    assert.strictEqual(tags.length, 1, `${rel}: one snippet tag in <head>`);
    assert.ok(html.indexOf(tags[0][0]) < html.indexOf('</head>'), `${rel}: the snippet is in <head>`);
    assert.strictEqual(
      tags[0][2].trim(),
      snippet,
      `${rel}: the inline snippet differs from tracker/pkg/snippet.min.js (paste the new build into www/*.html)`,
    );
    assert.match(html, /<header class="site-header">[\s\S]*href="\/inspector"[\s\S]*<\/header>/, `${rel}: header links to /inspector`);
    // Offline machine, first-party only: no script, stylesheet or image from another origin.
    for (const m of html.matchAll(/<(script|link|img|iframe|source)\b[^>]*\b(?:src|href)="([^"]+)"/g)) {
      assert.ok(!/^(https?:)?\/\//.test(m[2]), `${rel}: external asset ${m[2]}`);
    }
  }
  for (const f of ['assets/site.css', 'assets/shop.js', 'assets/account.js']) {
    assert.doesNotMatch(fs.readFileSync(path.join(WWW, f), 'utf8'), /url\(\s*['"]?https?:|@import/, f);
  }
});

test('demo site: walk the shop, the inspector shows it live, /debug/events and the capture files agree', { timeout: 180000 }, async (t) => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const c = await startDemo();
  const origin = c.url;
  const browser = await h.launch();
  const getJSON = async (p) => {
    const r = await fetch(origin + p);
    assert.strictEqual(r.status, 200, `GET ${p}`);
    return r.json();
  };
  const debugEvents = async (q = '') => (await getJSON(`/debug/events?limit=1000${q && '&' + q}`)).events;
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    // The machine is offline: outbound links open a stand-in page instead of the real site.
    const external = [];
    await context.route(
      (u) => u.origin !== origin,
      (route) => {
        external.push(route.request().url());
        route.fulfill({ status: 200, contentType: 'text/html', body: '<title>elsewhere</title>elsewhere' });
      },
    );
    const failures = [];
    const requested = [];
    context.on('request', (r) => requested.push(r.url()));
    context.on('response', (r) => r.status() >= 400 && failures.push(`${r.status()} ${r.url()}`));
    // A keepalive fetch or beacon still in flight when its page navigates is reported as
    // aborted to the page, though the browser delivers it: what arrived is checked below.
    const inFlightAtUnload = (r) => r.url() === `${origin}/v1/batch` && r.failure()?.errorText === 'net::ERR_ABORTED';
    context.on('requestfailed', (r) => {
      if (!r.url().includes('/debug/stream') && !inFlightAtUnload(r)) failures.push(`failed ${r.url()} ${r.failure()?.errorText}`);
    });
    const pageErrors = [];

    // 1. The inspector, open before anything happens: the collector has seen no event yet,
    //    so every row it shows later arrived over the live stream.
    const inspector = await context.newPage();
    inspector.on('pageerror', (e) => pageErrors.push(`inspector: ${e}`));
    const streamOpen = inspector.waitForResponse((r) => r.url().startsWith(`${origin}/debug/stream`));
    await inspector.goto(`${origin}/inspector`);
    assert.strictEqual((await streamOpen).headers()['content-type'], 'text/event-stream');
    assert.deepStrictEqual(await debugEvents(), [], 'no event before the walk');
    const inspectorText = () => inspector.evaluate(() => document.body.textContent);

    // 2. The shop.
    const shop = await context.newPage();
    shop.on('pageerror', (e) => pageErrors.push(`${shop.url()}: ${e}`));
    const links = new Set();
    const ready = async () => {
      await shop.waitForFunction(() => window.clickstream && window.clickstream.ready);
      await shop.evaluate(() => window.clickstream.ready);
      for (const href of await shop.$$eval('a[href]', (as) => as.map((a) => a.href))) links.add(href);
    };
    const shot = (name) => shop.screenshot({ path: path.join(ARTIFACTS, `demo-${name}.png`), fullPage: true });

    await shop.goto(`${origin}/`);
    await ready();
    // The home page view reaches the open inspector while the visitor is still on the page.
    const [home] = await h.until(async () => {
      const e = await debugEvents('type=page');
      return e.length ? e : null;
    });
    assert.strictEqual(home.event.context.page.path, '/');
    await h.until(async () => (await inspectorText()).includes(home.messageId));
    await inspector.screenshot({ path: path.join(ARTIFACTS, 'inspector-first-event.png') });

    await shop.fill('#nl-email', 'ada@example.com');
    await shop.click('#newsletter button[type=submit]');
    await shop.waitForSelector('#newsletter .notice');
    await shop.click('#promo');
    const [popup] = await Promise.all([context.waitForEvent('page'), shop.click('#outbound-pourover')]);
    await popup.close();
    await shot('home');

    await shop.click('.nav a[href="/products.html"]');
    await shop.waitForURL(`${origin}/products.html`);
    await ready();
    await shop.click('.chip[data-track-category="grind"]');
    assert.strictEqual(await shop.locator('#products .product-card').count(), 1);
    const [download] = await Promise.all([shop.waitForEvent('download'), shop.click('#price-list-pdf')]);
    const pdf = fs.readFileSync(await download.path());
    assert.strictEqual(pdf.subarray(0, 5).toString(), '%PDF-');
    await shot('products');

    await shop.click('#products .product-card[data-product="burr-grinder"]');
    await shop.waitForURL(`${origin}/product.html?id=burr-grinder`);
    await ready();
    await shop.click('#plus');
    await shop.click('#add-to-cart');
    assert.strictEqual(await shop.textContent('.cart-count'), '2');
    await shop.click('#off-plan');
    await shot('product');

    await shop.click('.cart-link');
    await shop.waitForURL(`${origin}/cart.html`);
    await ready();
    await shop.click('#checkout');
    await shop.fill('#co-name', 'Ada Lovelace');
    await shop.fill('#co-email', 'ada@example.com');
    await shop.fill('#co-address', '12 St James Square, London');
    await shop.selectOption('#co-shipping', 'express');
    await shop.click('#place-order');
    await shop.waitForSelector('#order-done:not([hidden])');
    const orderId = await shop.textContent('#order-id');
    await shot('order-completed');

    await shop.click('.user-link');
    await shop.waitForURL(`${origin}/signin.html`);
    await ready();
    await shop.fill('#si-email', 'ada@example.com');
    await shop.fill('#si-name', 'Ada Lovelace');
    await shop.click('#signin-submit');
    await shop.waitForURL(`${origin}/app/`);
    await ready();
    const userId = await shop.evaluate(() => JSON.parse(localStorage.getItem('kc-user')).userId);
    assert.match(userId, /^user-/);

    // The account area is a single-page app: no document load between these steps.
    await shop.evaluate(() => (window.spaMarker = 1));
    const spa = async (selector, want) => {
      await shop.click(selector);
      await shop.waitForURL(origin + want);
      await shop.waitForTimeout(50); // distinct timestamps for the order check below
    };
    await spa('.app-nav a[href="/app/orders"]', '/app/orders');
    await spa('#view a[href="/app/orders/1042"]', '/app/orders/1042');
    await shop.click('#view button[data-track="Order Reordered"]');
    await shop.goBack();
    await shop.waitForURL(`${origin}/app/orders`);
    await shop.waitForTimeout(50);
    await shop.goForward();
    await shop.waitForURL(`${origin}/app/orders/1042`);
    assert.match(await shop.textContent('#view h1'), /#1042/);
    await shop.waitForTimeout(50);
    await spa('.app-nav a[href="/app/wishlist"]', '/app/wishlist');
    await shop.click('#view button[data-product="french-press"]');
    await spa('.app-nav a[href="/app/settings"]', '/app/settings');
    await shop.fill('#st-company', 'Acme Roasters');
    await shop.click('#settings-form button[type=submit]');
    assert.strictEqual(await shop.evaluate(() => window.spaMarker), 1, 'SPA navigation did not reload the page');
    await shot('account-app');

    // A deep link into the app loads (and renders) on its own.
    await shop.goto(`${origin}/app/orders/1041`);
    await ready();
    assert.match(await shop.textContent('#view h1'), /#1041/);

    await shop.goto(`${origin}/install.html`);
    await ready();
    await shop.waitForFunction(() => !document.getElementById('snippet').textContent.startsWith('Loading'));
    const shown = await shop.textContent('#snippet');
    assert.ok(shown.startsWith(`<script data-write-key="demo" data-endpoint="${origin}">`), shown.slice(0, 120));
    assert.ok(shown.includes(SNIPPET()), 'the install page shows the collector-served snippet.min.js');
    assert.match(await shop.textContent('#curl'), new RegExp(`${origin}/v1/batch -u demo:`));
    await shop.click('button.copy[data-copy="snippet"]');
    await shop.click('#test-event');
    await shot('install');

    // Sign out: reset() starts a new anonymous identity.
    const firstAnon = await shop.evaluate(() => window.clickstream.stats().anonymousId);
    assert.strictEqual(firstAnon, home.anonymousId, 'one visitor across page loads');
    await shop.goto(`${origin}/app/settings`);
    await ready();
    await shop.click('#sign-out');
    await shop.waitForURL(`${origin}/`);
    await ready();
    assert.strictEqual(await shop.evaluate(() => window.clickstream.flush()), true);
    const secondAnon = await shop.evaluate(() => window.clickstream.stats().anonymousId);
    assert.notStrictEqual(secondAnon, firstAnon);

    // Every same-origin link seen on the way resolves.
    for (const href of links) {
      const u = new URL(href);
      if (u.origin !== origin) continue;
      const r = await fetch(u);
      await r.arrayBuffer();
      assert.strictEqual(r.status, 200, `link ${href}`);
    }

    // 3. GET /debug/events holds the walk.
    const expected = {
      'page /': (e) => e.type === 'page' && e.event.context.page.path === '/',
      'Newsletter Subscribed': (e) => e.name === 'Newsletter Subscribed' && e.event.properties.source === 'home',
      'Promotion Clicked': (e) =>
        e.name === 'Promotion Clicked' &&
        e.event.properties.promotion_id === 'spring-10' &&
        e.event.properties.creative === 'home-banner',
      'Outbound Link Clicked': (e) =>
        e.name === 'Outbound Link Clicked' && e.event.properties.url === 'https://en.wikipedia.org/wiki/Pour-over_coffee',
      'page /products.html': (e) => e.type === 'page' && e.event.context.page.path === '/products.html',
      'Product List Filtered': (e) => e.name === 'Product List Filtered' && e.event.properties.category === 'grind',
      'File Downloaded': (e) =>
        e.name === 'File Downloaded' &&
        e.event.properties.extension === 'pdf' &&
        e.event.properties.url === `${origin}/files/price-list.pdf`,
      'Product Viewed': (e) =>
        e.name === 'Product Viewed' && e.event.properties.product_id === 'burr-grinder' && e.event.properties.price === 149,
      'Product Added (detail)': (e) =>
        e.name === 'Product Added' &&
        e.event.properties.product_id === 'burr-grinder' &&
        e.event.properties.quantity === 2 &&
        e.event.properties.price === 149,
      'Product Added (off plan)': (e) => e.name === 'Product Added' && e.event.properties.price === '12,99',
      'Checkout Started': (e) =>
        e.name === 'Checkout Started' &&
        e.event.properties.value === 298 &&
        e.event.properties.products.length === 1,
      'Order Completed': (e) =>
        e.name === 'Order Completed' &&
        e.event.properties.order_id === orderId &&
        e.event.properties.total === 298 &&
        e.event.properties.shipping_method === 'express' &&
        isDeepStrictEqual(e.event.properties.products, [
          { product_id: 'burr-grinder', name: 'Hand Burr Grinder', price: 149, quantity: 2 },
        ]),
      identify: (e) =>
        e.type === 'identify' &&
        e.event.userId === userId &&
        e.event.traits.email === 'ada@example.com' &&
        e.event.traits.name === 'Ada Lovelace',
      'Signed In': (e) => e.name === 'Signed In' && e.event.userId === userId,
      'Order Reordered': (e) => e.name === 'Order Reordered' && e.event.properties.order_id === '1042',
      'Product Added (wishlist)': (e) =>
        e.name === 'Product Added' && e.event.properties.source === 'wishlist' && e.event.properties.product_id === 'french-press',
      group: (e) => e.type === 'group' && e.event.groupId === 'org-acme-roasters' && e.event.userId === userId,
      'Settings Saved': (e) => e.name === 'Settings Saved',
      'page /app/orders/1041': (e) => e.type === 'page' && e.event.context.page.path === '/app/orders/1041',
      'Snippet Copied': (e) => e.name === 'Snippet Copied' && e.event.properties.kind === 'snippet',
      'Test Event Sent': (e) => e.name === 'Test Event Sent',
      'Signed Out': (e) => e.name === 'Signed Out' && e.event.userId === userId,
      'page / after sign-out': (e) =>
        e.type === 'page' && e.event.context.page.path === '/' && e.anonymousId === secondAnon && !e.event.userId,
    };
    let events = [];
    let missing = [];
    try {
      await h.until(async () => {
        events = await debugEvents();
        missing = Object.keys(expected).filter((k) => !events.some(expected[k]));
        return missing.length === 0;
      }, 15000);
    } catch (e) {
      fs.writeFileSync(path.join(ARTIFACTS, 'debug-events.json'), JSON.stringify(events, null, 2));
      assert.fail(`not in /debug/events (all of them: artifacts/debug-events.json): ${missing.join(', ')}\n${events.map((x) => `${x.type} ${x.name}`).join('\n')}`);
    }
    fs.writeFileSync(path.join(ARTIFACTS, 'debug-events.json'), JSON.stringify(events, null, 2));
    assert.deepStrictEqual(
      events.filter((e) => e.status !== 'accepted').map((e) => [e.type, e.name, e.reason]),
      [],
      'no event rejected',
    );
    for (const e of events) {
      assert.match(e.messageId, h.UUID_V4);
      assert.strictEqual(e.event.messageId, e.messageId);
      assert.strictEqual(e.event.type, e.type);
      assert.strictEqual(e.anonymousId, e.event.anonymousId);
      assert.strictEqual(e.name ?? null, e.event.event ?? e.event.name ?? null);
      assert.ok(e.event.receivedAt && e.time, 'enriched with receivedAt');
    }
    resends(null, events);
    const before = events.find(expected['Order Completed']);
    assert.ok(!before.event.userId, 'no userId before sign-in');

    // The SPA's page views, in the order they happened: one per URL change, back and forward included.
    // (originalTimestamp is the browser's clock; timestamp is corrected per batch for skew.)
    const when = (e) => Date.parse(e.event.originalTimestamp || e.event.timestamp);
    const appViews = unique(events)
      .filter((e) => e.type === 'page' && e.event.context.page.path.startsWith('/app/'))
      .sort((a, b) => when(a) - when(b));
    assert.deepStrictEqual(
      appViews.map((e) => e.event.context.page.path),
      ['/app/', '/app/orders', '/app/orders/1042', '/app/orders', '/app/orders/1042', '/app/wishlist', '/app/settings', '/app/orders/1041', '/app/settings'],
    );
    for (const v of appViews) assert.strictEqual(v.event.userId, userId, `userId on ${v.event.context.page.path}`);
    assert.strictEqual(appViews[2].event.context.page.title, 'Order #1042 · Kettle & Crate');
    assert.strictEqual(appViews[1].event.context.page.referrer, `${origin}/app/`);

    // The filters.
    const only = async (q, want) => {
      const got = await debugEvents(q);
      assert.deepStrictEqual(got.map((e) => e.messageId), events.filter(want).map((e) => e.messageId), q);
      assert.ok(got.length > 0, q);
    };
    await only('type=identify', (e) => e.type === 'identify');
    await only('event=Product%20Added', (e) => e.name === 'Product Added');
    await only(`anonymousId=${secondAnon}`, (e) => e.anonymousId === secondAnon);
    await only(`type=track&anonymousId=${firstAnon}`, (e) => e.type === 'track' && e.anonymousId === firstAnon);

    // Leave the last shop page (its goodbye beacon carries a Page Engagement), then wait until
    // nothing more arrives: after this no open tab runs the tracker.
    await shop.goto('about:blank');
    let last = -1;
    let quiet = 0;
    await h.until(async () => {
      const n = (await debugEvents()).length;
      quiet = n === last ? quiet + 1 : 0;
      last = n;
      return quiet >= 3;
    }, 20000, 700);
    const final = await debugEvents();
    assert.deepStrictEqual(final.slice(0, events.length), events, 'the ring only grew');
    assert.deepStrictEqual(final.filter((e) => e.status !== 'accepted'), []);
    const finalIds = final.map((e) => e.messageId); // with any resent copies, which the capture holds too
    resends(t, final);

    // The tracking plan: every event of the walk is planned and matches its schema, except the
    // one sent off plan, which is stored tagged (in the event and in the inspector's entry).
    const tagged = unique(final).filter((e) => e.event.context.violations);
    assert.deepStrictEqual(
      tagged.map((e) => [e.name, e.event.context.violations.map((v) => `${v.path} ${v.keyword}`)]),
      [['Product Added', ['/properties/price type']]],
      'only the off-plan event breaks the plan',
    );
    assert.deepStrictEqual(tagged[0].violations, tagged[0].event.context.violations);
    assert.match(tagged[0].violations[0].message, /"12,99" is not of type "number"/);

    // 4. The inspector showed every one of them, and it only ever had the live stream to go on.
    await h.until(async () => {
      const text = await inspectorText();
      return finalIds.every((id) => text.includes(id));
    }, 10000).catch(async () => {
      const text = await inspectorText();
      const lacking = [...new Set(finalIds)].filter((id) => !text.includes(id));
      assert.fail(`inspector lacks ${lacking.length} of ${new Set(finalIds).size} events`);
    });
    // The off-plan event's row names its violation, and only that row has any.
    const flagged = await inspector.evaluate(() =>
      [...document.querySelectorAll('tr.row[data-violations]')].map((r) => r.lastChild.textContent),
    );
    assert.deepStrictEqual([...new Set(flagged)], ['off plan: /properties/price type']);
    await inspector.getByText('Order Completed', { exact: true }).first().click().catch(() => {});
    await inspector.screenshot({ path: path.join(ARTIFACTS, 'inspector.png') });

    // First-party only: the tracker came from the collector, nothing else left the machine
    // except the outbound link the visitor clicked (served by the stand-in route).
    assert.ok(requested.includes(`${origin}/lib/index.js`), 'tracker module served under /lib/');
    assert.ok(requested.some((u) => u.startsWith(`${origin}/lib/`) && u.endsWith('.wasm')), 'wasm served under /lib/');
    assert.deepStrictEqual(external, ['https://en.wikipedia.org/wiki/Pour-over_coffee']);
    assert.deepStrictEqual(failures, []);
    assert.deepStrictEqual(pageErrors, []);
    await context.close();

    // 5. The capture files agree with /debug/events: the same events, byte for byte as JSON.
    await h.stopCollector(c);
    assert.strictEqual(c.child.exitCode, 0, `collector exit:\n${c.log()}`);
    const captureDir = path.join(c.dataDir, 'capture');
    const cat = ndjson(await run(COLLECTOR, ['capture', 'cat', captureDir]));
    const copy = (e) => `${e.messageId} ${e.receivedAt}`;
    const byCopy = new Map(final.map((e) => [copy(e.event), e.event]));
    assert.deepStrictEqual(cat.map((e) => e.messageId).sort(), [...finalIds].sort(), 'capture cat == /debug/events');
    for (const e of cat) assert.deepStrictEqual(e, byCopy.get(copy(e)), `event ${copy(e)}`);
    const avsc = await h.readCapture(c.dataDir);
    assert.deepStrictEqual(avsc.map((e) => e.messageId).sort(), [...finalIds].sort(), 'avsc reader == /debug/events');
    const orders = ndjson(await run(COLLECTOR, ['capture', 'cat', '--type', 'track', '--event', 'Order Completed', captureDir]));
    assert.deepStrictEqual(orders.map((e) => e.messageId), [before.messageId]);
    const visitor2 = ndjson(await run(COLLECTOR, ['capture', 'cat', '--anonymous-id', secondAnon, captureDir]));
    assert.deepStrictEqual(
      visitor2.map((e) => e.messageId).sort(),
      final.filter((e) => e.anonymousId === secondAnon).map((e) => e.messageId).sort(),
    );
    const stats = await run(COLLECTOR, ['capture', 'stats', captureDir]);
    assert.match(stats, /Order Completed/);
    assert.match(stats, /\/app\/orders/);
    fs.rmSync(c.dataDir, { recursive: true, force: true });
  } finally {
    await browser.close();
    await h.stopCollector(c);
  }
});
