// The npm entry point: `init(config)` returns a tracker at once. Calls made before the
// WebAssembly module has loaded are queued and replayed in order; if it fails to load,
// the tracker stays a silent no-op. No method ever throws into the page.
//
// `host` is everything the Rust core needs from the browser (see tracker/src/host.rs):
// reads of page state, Web Storage, fetch/sendBeacon, timers and the listeners. It only
// moves data; every decision is made in the wasm module.
import load, { call } from './tracker_core.js';

// Method numbers of the wasm export `call` (see tracker/src/lib.rs): the API methods are
// 1 + their index here; then the tracker's own and the host's reports.
const METHODS = ['track', 'page', 'identify', 'group', 'alias', 'reset', 'consent'];
const START = 0;
const FLUSH = 8;
const STATS = 9;
const DONE = 10;
const TICK = 11;
const NAV = 12;
const VIS = 13;
const HIDE = 14;
const SHOW = 15;
const INPUT = 16;
const LINK = 17;

// Arguments cross into wasm as text: objects as JSON, the rest with String().
const text = (v) => (v == null ? undefined : typeof v == 'object' ? JSON.stringify(v) : String(v));

const run = (m, a, b, h) => {
  try {
    return call(m, h, text(a), text(b));
  } catch (e) {
    // A trap inside the module, or properties JSON.stringify rejects (cycles, BigInt):
    // the call is dropped, the host page never sees an exception.
  }
};

let config = {};
let out;
let waiters = [];

const area = (a) => (a == 1 ? localStorage : sessionStorage);
const attempt = (f, fallback) => {
  try {
    return f();
  } catch (e) {
    return fallback;
  }
};
// The queue's mirror is rewritten after every change: a burst of calls in one task writes
// it once, when the task ends, not once per call (150 calls were 11 MB of writes).
const later = new Map();
const commit = () => {
  later.forEach(([a, v], k) => attempt(() => area(a).setItem(k, v)));
  later.clear();
};

const visible = () => document.visibilityState != 'hidden';
const depth = () => {
  const h = document.documentElement.scrollHeight;
  const seen = scrollY + innerHeight;
  return h > 0 && seen < h ? Math.floor((seen / h) * 100) : 100;
};
const TEXT = [
  () => location.href,
  () => document.title,
  () => document.referrer,
  () => location.hostname,
  () => new Date().toISOString(),
  () =>
    attempt(
      () => crypto.randomUUID(),
      '10000000-1000-4000-8000-100000000000'.replace(/[018]/g, (c) =>
        (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16),
      ),
    ),
  () =>
    JSON.stringify({
      locale: navigator.language,
      timezone: attempt(() => Intl.DateTimeFormat().resolvedOptions().timeZone),
      screen: { width: screen.width, height: screen.height, density: devicePixelRatio },
      userAgent: navigator.userAgent,
    }).slice(1, -1),
];
const NUM = [Date.now, Math.random, depth, () => +visible()];

const host = {
  opt: (k) => (config[k] == null ? undefined : String(config[k])),
  put: (s) => (out = s),
  settle: (ok) => waiters.splice(0).forEach((w) => w(ok)),
  // Readings, numbered as in tracker/src/host.rs (T_* and N_*).
  text: (w) => TEXT[w](),
  num: (w) => NUM[w](),
  privacy: (dnt, gpc) => (dnt && navigator.doNotTrack == '1') || (gpc && navigator.globalPrivacyControl === true),
  get: (a, k) => (later.has(k) ? later.get(k)[1] : attempt(() => area(a).getItem(k))),
  set: (a, k, v) =>
    k.startsWith('_cs.q.')
      ? (later.size || queueMicrotask(commit), later.set(k, [a, v]), true)
      : attempt(() => (area(a).setItem(k, v), true), false),
  del: (a, k) => (later.delete(k), attempt(() => area(a).removeItem(k))),
  keys: (a, p) =>
    attempt(() => {
      const s = area(a);
      const out = [];
      for (let i = 0; i < s.length; i++) if (s.key(i).startsWith(p)) out.push(s.key(i));
      return out.join('\n');
    }, ''),
  wipe: (p) => [1, 2].forEach((a) => host.keys(a, p).split('\n').forEach((k) => host.del(a, k))),
  post: (url, body, keepalive) =>
    fetch(url, { method: 'POST', body, keepalive, credentials: 'omit' }).then(
      (r) => run(DONE, r.status, r.headers.get('retry-after')),
      () => run(DONE, 0),
    ),
  beacon: (url, body) => attempt(() => navigator.sendBeacon(url, body), false),
  timer: (ms) => setTimeout(() => run(TICK), ms),
  clear: (id) => clearTimeout(id),
  warn: (m) => console.warn(m),
  parseDate: (s) => Date.parse(s),
  decode: (s) => attempt(() => decodeURIComponent(s.replace(/\+/g, ' ')), s),
  listen: (page, spa, clicks, declarative, engagement) => {
    const nav = () => setTimeout(() => run(NAV));
    if (page) nav();
    const on = (t, type, f) => t.addEventListener(type, f, { capture: true, passive: true });
    on(document, 'visibilitychange', () => run(VIS, visible() || undefined));
    on(window, 'pagehide', () => run(HIDE));
    on(window, 'pageshow', (e) => e.persisted && run(SHOW));
    if (spa) {
      ['pushState', 'replaceState'].forEach((k) => {
        const orig = history[k];
        history[k] = function () {
          const r = orig.apply(this, arguments);
          nav();
          return r;
        };
      });
      on(window, 'popstate', nav);
      on(window, 'hashchange', nav);
    }
    const click = (e) => {
      const t = e.target;
      if (!t || !t.closest) return;
      const el = declarative && t.closest('[data-track]');
      if (el) {
        const props = {};
        for (const a of el.attributes) if (a.name.startsWith('data-track-')) props[a.name.slice(11)] = a.value;
        run(1, el.getAttribute('data-track'), props);
      } else if (clicks) {
        const a = t.closest('a[href]');
        if (a) run(LINK, a.href, a.hasAttribute('download') || undefined);
      }
    };
    if (clicks || declarative) {
      on(document, 'click', click);
      on(document, 'auxclick', click);
    }
    if (engagement) {
      const input = () => run(INPUT);
      on(window, 'pointerdown', input);
      on(window, 'keydown', input);
      on(window, 'scroll', () => run(INPUT, depth()));
    }
  },
};

export function init(cfg, wasm) {
  let queue = [];
  let live = false;
  const t = {};
  METHODS.forEach((name, i) => {
    t[name] = (a, b) => {
      // page(properties) and identify(traits): the name/id may be left out.
      if ((i == 1 || i == 2) && a && typeof a == 'object') (b = a), (a = undefined);
      live ? run(i + 1, a, b) : queue && queue.push([i + 1, a, b]);
      return t;
    };
  });
  t.ready = load(wasm ? { module_or_path: wasm } : undefined).then(
    () => {
      config = cfg || {};
      run(START, 0, 0, host);
      live = true;
      queue.forEach((c) => run(...c));
      queue = null;
      return t;
    },
    () => {
      queue = null;
      return t;
    },
  );
  t.flush = () =>
    t.ready.then(() => (live ? new Promise((resolve) => (waiters.push(resolve), run(FLUSH))) : false));
  t.stats = () => (live ? attempt(() => (run(STATS), JSON.parse(out)), null) : null);
  return t;
}

export default init;
