// The npm entry point: `init(config)` returns a tracker at once. Calls made before the
// WebAssembly module has loaded are queued and replayed in order; if it fails to load,
// the tracker stays a silent no-op. No method ever throws into the page.
import load, * as core from './tracker_core.js';

const METHODS = ['track', 'page', 'identify', 'group', 'alias', 'reset', 'consent'];

export function init(config, wasm) {
  const queue = [];
  let live = null;
  const t = {};
  const call = (m, a) => {
    try {
      return core[m](a[0], a[1]);
    } catch (e) {
      // A trap inside the module must not reach the host page.
    }
  };
  METHODS.forEach((m) => {
    t[m] = (...a) => {
      live ? call(m, a) : queue && queue.push([m, a]);
      return t;
    };
  });
  t.ready = load(wasm ? { module_or_path: wasm } : undefined).then(
    () => {
      call('start', [config || {}]);
      live = true;
      queue.splice(0).forEach(([m, a]) => call(m, a));
      return t;
    },
    () => {
      queue.length = 0;
      live = false;
      return t;
    },
  );
  t.flush = () => t.ready.then(() => (live ? call('flush', []) : false));
  t.stats = () => (live ? call('stats', []) : null);
  return t;
}

export default init;
