/*
 * The clickstream loader snippet (the source; `./dev build-tracker` minifies it to
 * tracker/pkg/snippet.min.js, which is what sites paste, under 1 KB).
 *
 * Paste it inline in <head>, configured by data attributes on its own <script> tag:
 *   <script data-write-key="KEY" data-endpoint="https://collect.example.com">…</script>
 * Any data-* attribute becomes a config field (data-flush-at → flushAt, ...).
 * data-src overrides where the tracker files live (default {endpoint}/lib/, served
 * first-party by the collector).
 *
 * It defines a stub global `clickstream` whose methods queue their calls, loads the
 * tracker module asynchronously, then points the stub's methods at the real tracker and
 * replays the queued calls in order. If loading fails, the stub swallows calls silently.
 */
(function (w, s) {
  if (w.clickstream) return;
  var q = [],
    cs = (w.clickstream = {}),
    cfg = {},
    d = (s && s.dataset) || {},
    k,
    methods = 'track page identify group alias reset flush consent'.split(' ');
  for (k in d) cfg[k] = d[k];
  methods.forEach(function (m) {
    cs[m] = function () {
      q.push([m, arguments]);
      return cs;
    };
  });
  var base = cfg.src || (cfg.endpoint || location.origin).replace(/\/$/, '') + '/lib/';
  import(base + 'index.js').then(
    function (mod) {
      var t = mod.init(cfg);
      for (k in t) cs[k] = t[k];
      q.forEach(function (c) {
        t[c[0]].apply(t, c[1]);
      });
      q = [];
    },
    function () {
      q = [];
      methods.forEach(function (m) {
        cs[m] = function () {
          return cs;
        };
      });
    }
  );
})(window, document.currentScript);
