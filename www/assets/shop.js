// Kettle & Crate, the clickstream demo shop: the catalog, the cart (localStorage), and what
// each page renders. The analytics calls are plain `clickstream.*` calls on the global the
// loader snippet defines in <head>; clicks on [data-track] elements need no code at all.
(function () {
  'use strict';

  // Line-art illustrations: L is the outline style, S an unfilled outline.
  var L = 'stroke="#1f2328" stroke-width="3" stroke-linecap="round" stroke-linejoin="round"';
  var S = 'fill="none" ' + L;
  var ART = {
    dripper:
      '<svg viewBox="0 0 100 100" aria-hidden="true"><path d="M26 30h48l-12 26H38z" fill="#c2562b" ' + L +
      '/><path d="M34 56h32v6H34z" fill="#f7f1e8" ' + L + '/><path d="M30 62h40v22a6 6 0 0 1-6 6H36a6 6 0 0 1-6-6z" fill="#fff" ' +
      L + '/><path d="M70 68h6a6 6 0 0 1 0 12h-6" ' + S + '/><path d="M44 20c0-4 4-4 4-8M54 22c0-4 4-4 4-8" ' + S + '/></svg>',
    kettle:
      '<svg viewBox="0 0 100 100" aria-hidden="true"><path d="M28 44h44l4 36a6 6 0 0 1-6 6H30a6 6 0 0 1-6-6z" fill="#2f6b4f" ' + L +
      '/><path d="M24 58C14 52 12 40 6 32" ' + S + '/><path d="M36 44c0-10 28-10 28 0" ' + S +
      '/><path d="M72 50c10 0 12 20 2 24" ' + S + '/><circle cx="50" cy="32" r="4" fill="#1f2328"/></svg>',
    grinder:
      '<svg viewBox="0 0 100 100" aria-hidden="true"><path d="M32 40h36v44a4 4 0 0 1-4 4H36a4 4 0 0 1-4-4z" fill="#6a5acd" ' + L +
      '/><path d="M28 32h44v8H28z" fill="#fff" ' + L + '/><path d="M50 32V18h22" ' + S +
      '/><circle cx="76" cy="18" r="5" fill="#c2562b" ' + L + '/><path d="M40 58h20M40 68h20" ' + S + '/></svg>',
    press:
      '<svg viewBox="0 0 100 100" aria-hidden="true"><rect x="30" y="30" width="36" height="56" rx="4" fill="#f2d389" ' + L +
      '/><path d="M28 30h40" ' + S + '/><path d="M48 30V12M40 12h16" ' + S + '/><path d="M66 40h8a4 4 0 0 1 4 4v26a4 4 0 0 1-4 4h-8" ' + S +
      '/><path d="M34 54h28" stroke="#8a5a14" stroke-width="3"/></svg>',
    teapot:
      '<svg viewBox="0 0 100 100" aria-hidden="true"><path d="M22 56a28 24 0 0 0 56 0z" fill="#3d8fa6" ' + L +
      '/><path d="M24 56c0-16 52-16 52 0" fill="#3d8fa6" ' + L + '/><path d="M44 36c0-6 12-6 12 0" ' + S +
      '/><path d="M78 52l12-10M22 52c-8 0-10 10-2 14" ' + S + '/><path d="M28 86h44" ' + S + '/></svg>',
    cups:
      '<svg viewBox="0 0 100 100" aria-hidden="true"><path d="M14 46h30v18a10 10 0 0 1-10 10h-10a10 10 0 0 1-10-10z" fill="#d9646c" ' + L +
      '/><path d="M44 52h4a5 5 0 0 1 0 10h-4" ' + S + '/><path d="M54 46h30v18a10 10 0 0 1-10 10h-10a10 10 0 0 1-10-10z" fill="#fff" ' + L +
      '/><path d="M84 52h4a5 5 0 0 1 0 10h-4" ' + S + '/><path d="M10 80h82" ' + S + '/><path d="M26 36c0-4 4-4 4-8M66 36c0-4 4-4 4-8" ' + S + '/></svg>',
  };

  var CATALOG = [
    { id: 'pour-over', name: 'Ceramic Pour-Over', price: 34, category: 'brew', art: 'dripper', bg: '#f3e6da',
      blurb: 'A slow, even drip from a thick-walled porcelain cone. Fits every mug on the shelf.',
      specs: [['Material', 'Porcelain'], ['Filter', 'Size 02 cone'], ['Serves', '1-2 cups']] },
    { id: 'gooseneck-kettle', name: 'Gooseneck Kettle', price: 79, category: 'brew', art: 'kettle', bg: '#e4ece6',
      blurb: 'A pencil-thin spout for a steady pour, and a thermometer in the lid.',
      specs: [['Capacity', '0.9 l'], ['Hob', 'Gas, electric, induction'], ['Finish', 'Matte green']] },
    { id: 'burr-grinder', name: 'Hand Burr Grinder', price: 149, category: 'grind', art: 'grinder', bg: '#e9e4f0',
      blurb: 'Stainless conical burrs with 40 clicked settings, from espresso to cold brew.',
      specs: [['Burrs', '38 mm conical steel'], ['Settings', '40 clicks'], ['Hopper', '25 g']] },
    { id: 'french-press', name: 'Glass French Press', price: 42, category: 'brew', art: 'press', bg: '#f5ecd0',
      blurb: 'Four minutes, one plunge, a full-bodied cup. Borosilicate glass, steel mesh.',
      specs: [['Capacity', '1 l'], ['Glass', 'Borosilicate'], ['Filter', 'Double steel mesh']] },
    { id: 'teapot', name: 'Stoneware Teapot', price: 58, category: 'tea', art: 'teapot', bg: '#e1ecef',
      blurb: 'A hand-glazed teapot with a removable infuser for loose leaves.',
      specs: [['Capacity', '0.8 l'], ['Infuser', 'Stainless, removable'], ['Glaze', 'Ocean blue']] },
    { id: 'espresso-cups', name: 'Espresso Cups, pair', price: 29, category: 'cups', art: 'cups', bg: '#f4dfe0',
      blurb: 'Two thick-walled cups that keep a ristretto warm to the last sip.',
      specs: [['Volume', '80 ml each'], ['Material', 'Stoneware'], ['Dishwasher', 'Yes']] },
  ];
  var CATEGORIES = { brew: 'Brewing', grind: 'Grinding', tea: 'Tea', cups: 'Cups' };

  var byId = function (id) {
    for (var i = 0; i < CATALOG.length; i++) if (CATALOG[i].id === id) return CATALOG[i];
    return null;
  };
  var money = function (n) { return '$' + n.toFixed(2); };
  var esc = function (s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  };
  var $ = function (sel, root) { return (root || document).querySelector(sel); };

  // The analytics global from the loader snippet. It queues calls until the tracker has
  // loaded; if the snippet is missing, calls go nowhere instead of breaking the shop.
  var cs = function () {
    return window.clickstream || { track: function () {}, page: function () {}, identify: function () {}, group: function () {}, reset: function () {}, flush: function () {} };
  };
  // Sends what is queued before the page is left (a sign-in that navigates away, for
  // example), but never holds the visitor up for more than a moment.
  var flushThen = function (go) {
    var done = false, t = cs(), p;
    var once = function () { if (!done) { done = true; go(); } };
    try { p = t.flush(); } catch (e) { p = null; }
    if (p && typeof p.then === 'function') p.then(once, once);
    else once();
    setTimeout(once, 1500);
  };

  // Cart and user, kept in localStorage.
  var store = {
    get: function (k, d) { try { var v = localStorage.getItem(k); return v ? JSON.parse(v) : d; } catch (e) { return d; } },
    set: function (k, v) { try { localStorage.setItem(k, JSON.stringify(v)); } catch (e) { /* private mode */ } },
    del: function (k) { try { localStorage.removeItem(k); } catch (e) { /* private mode */ } },
  };
  var cart = {
    lines: function () { return store.get('kc-cart', []).filter(function (l) { return byId(l.id); }); },
    save: function (lines) { store.set('kc-cart', lines); updateHeader(); },
    add: function (id, qty) {
      var lines = cart.lines(), found = false;
      lines.forEach(function (l) { if (l.id === id) { l.qty += qty; found = true; } });
      if (!found) lines.push({ id: id, qty: qty });
      cart.save(lines);
    },
    setQty: function (id, qty) {
      cart.save(cart.lines().map(function (l) { return l.id === id ? { id: id, qty: qty } : l; }).filter(function (l) { return l.qty > 0; }));
    },
    count: function () { return cart.lines().reduce(function (n, l) { return n + l.qty; }, 0); },
    subtotal: function () { return cart.lines().reduce(function (n, l) { return n + l.qty * byId(l.id).price; }, 0); },
  };
  var user = {
    get: function () { return store.get('kc-user', null); },
    set: function (u) { store.set('kc-user', u); updateHeader(); },
    clear: function () { store.del('kc-user'); updateHeader(); },
  };

  function updateHeader() {
    var n = cart.count();
    var badge = $('.cart-count');
    if (badge) { badge.textContent = n; badge.setAttribute('data-count', n); }
    var u = user.get(), link = $('.user-link');
    if (link) {
      link.textContent = u ? 'Hi, ' + (u.name || u.email).split(' ')[0] : 'Sign in';
      link.setAttribute('href', u ? '/app/' : '/signin.html');
    }
  }

  var toastTimer;
  function toast(msg) {
    var el = $('.toast');
    if (!el) { el = document.createElement('div'); el.className = 'toast'; el.setAttribute('role', 'status'); document.body.appendChild(el); }
    el.textContent = msg;
    el.classList.add('show');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { el.classList.remove('show'); }, 2200);
  }

  // A product event's properties, in the Segment e-commerce spec's shape.
  function productEvent(p, qty) {
    return { product_id: p.id, name: p.name, category: p.category, price: p.price, quantity: qty, currency: 'USD' };
  }
  // The cart's lines as the spec's products array.
  function products(lines) {
    return lines.map(function (l) { var p = byId(l.id); return { product_id: p.id, name: p.name, price: p.price, quantity: l.qty }; });
  }

  function art(p) { return '<div class="product-art" style="background:' + p.bg + '">' + ART[p.art] + '</div>'; }

  function productCard(p) {
    return '<a class="product-card" href="/product.html?id=' + p.id + '" data-product="' + p.id + '">' + art(p) +
      '<div class="body"><span class="tag">' + CATEGORIES[p.category] + '</span>' +
      '<div class="name">' + esc(p.name) + '</div><div class="price">' + money(p.price) + '</div></div></a>';
  }

  // ---- pages ---------------------------------------------------------------------------

  var pages = {};

  pages.home = function () {
    $('#featured').innerHTML = ['burr-grinder', 'gooseneck-kettle', 'pour-over', 'teapot'].map(function (id) { return productCard(byId(id)); }).join('');
    var form = $('#newsletter');
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var email = form.email.value.trim();
      cs().track('Newsletter Subscribed', { source: 'home', topics: ['brew guides', 'new gear'], hasEmail: !!email });
      form.innerHTML = '<p class="notice">Thanks! The next brew guide is on its way.</p>';
    });
  };

  pages.products = function () {
    var grid = $('#products'), chips = document.querySelectorAll('.filters .chip');
    var show = function (cat) {
      grid.innerHTML = CATALOG.filter(function (p) { return !cat || p.category === cat; }).map(productCard).join('');
      chips.forEach(function (c) { c.setAttribute('aria-pressed', String((c.getAttribute('data-track-category') || '') === (cat || ''))); });
      $('#count').textContent = grid.children.length + ' products';
    };
    chips.forEach(function (c) {
      // The click is tracked by the chip's data-track attributes; this only filters.
      c.addEventListener('click', function () { show(c.getAttribute('data-track-category')); });
    });
    show(new URLSearchParams(location.search).get('category'));
  };

  pages.product = function () {
    var p = byId(new URLSearchParams(location.search).get('id')) || CATALOG[0];
    document.title = p.name + ' · Kettle & Crate';
    $('#crumb').textContent = p.name;
    $('#crumb-cat').textContent = CATEGORIES[p.category];
    $('#crumb-cat').setAttribute('href', '/products.html?category=' + p.category);
    $('#art').innerHTML = art(p);
    $('#name').textContent = p.name;
    $('#blurb').textContent = p.blurb;
    $('#price').textContent = money(p.price);
    $('#specs').innerHTML = p.specs.map(function (s) { return '<li><span class="muted">' + esc(s[0]) + '</span><span>' + esc(s[1]) + '</span></li>'; }).join('');
    var qty = 1, add = $('#add-to-cart'), wish = $('#add-to-wishlist');
    var setQty = function (n) { qty = Math.max(1, Math.min(9, n)); $('#qty').textContent = qty; };
    // Declarative tracking: the button's data-track-* attributes are the event's properties
    // (all strings: the tracking plan's schema for this event says so).
    wish.setAttribute('data-track-product_id', p.id);
    wish.setAttribute('data-track-name', p.name);
    wish.setAttribute('data-track-price', String(p.price));
    wish.setAttribute('data-track-category', p.category);
    setQty(1);
    $('#minus').addEventListener('click', function () { setQty(qty - 1); });
    $('#plus').addEventListener('click', function () { setQty(qty + 1); });
    add.addEventListener('click', function () {
      cart.add(p.id, qty);
      cs().track('Product Added', productEvent(p, qty));
      toast(qty + ' × ' + p.name + ' added to your cart');
    });
    wish.addEventListener('click', function () { toast(p.name + ' saved to your wishlist'); });
    // Off plan, on purpose: a price as text ("12,99") where the shop's tracking plan
    // (examples/plans/shop) wants a number. In tag mode, as `./dev run` starts the collector,
    // it is stored with context.violations naming /properties/price; enforce would reject it.
    $('#off-plan').addEventListener('click', function () {
      var e = productEvent(p, 1);
      e.price = '12,99';
      cs().track('Product Added', e);
      toast('Sent Product Added with price "12,99": see its violation in the inspector');
    });
    $('#related').innerHTML = CATALOG.filter(function (o) { return o.id !== p.id; }).slice(0, 3).map(productCard).join('');
    // A custom call made during page load: the snippet queues it until the tracker is ready.
    cs().track('Product Viewed', { product_id: p.id, name: p.name, price: p.price, category: p.category, currency: 'USD' });
  };

  pages.cart = function () {
    var totals = function () {
      var sub = cart.subtotal(), ship = sub >= 100 || sub === 0 ? 0 : 6;
      return { subtotal: sub, shipping: ship, total: sub + ship };
    };
    var render = function () {
      var lines = cart.lines(), list = $('#lines');
      if (!lines.length) {
        list.innerHTML = '<div class="empty-state"><p>Your cart is empty.</p><a class="btn" href="/products.html">Browse the shop</a></div>';
      } else {
        list.innerHTML = lines.map(function (l) {
          var p = byId(l.id);
          return '<div class="cart-line" data-line="' + p.id + '"><div class="thumb" style="background:' + p.bg + '">' + ART[p.art] + '</div>' +
            '<div><a href="/product.html?id=' + p.id + '"><b>' + esc(p.name) + '</b></a><div class="muted small">' + money(p.price) + ' each</div>' +
            '<div class="qty" style="margin-top:6px"><button type="button" data-dec="' + p.id + '" aria-label="One less">−</button><span>' + l.qty +
            '</span><button type="button" data-inc="' + p.id + '" aria-label="One more">+</button></div></div>' +
            '<div style="text-align:right"><div class="price">' + money(p.price * l.qty) + '</div>' +
            '<button type="button" class="btn ghost small" data-remove="' + p.id + '" data-track="Product Removed" data-track-product_id="' + p.id +
            '" data-track-quantity="' + l.qty + '">Remove</button></div></div>';
        }).join('');
      }
      var sums = totals();
      $('#subtotal').textContent = money(sums.subtotal);
      $('#shipping').textContent = sums.shipping ? money(sums.shipping) : 'Free';
      $('#total').textContent = money(sums.total);
      $('#checkout').disabled = !lines.length;
      return sums;
    };
    $('#lines').addEventListener('click', function (e) {
      var b = e.target.closest('button');
      if (!b) return;
      var id = b.getAttribute('data-inc') || b.getAttribute('data-dec') || b.getAttribute('data-remove');
      var line = cart.lines().filter(function (l) { return l.id === id; })[0];
      if (!line) return;
      if (b.hasAttribute('data-inc')) cart.setQty(id, line.qty + 1);
      else if (b.hasAttribute('data-dec')) cart.setQty(id, line.qty - 1);
      else cart.setQty(id, 0);
      render();
    });
    $('#checkout').addEventListener('click', function () {
      var sums = totals();
      cs().track('Checkout Started', { value: sums.total, revenue: sums.subtotal, shipping: sums.shipping, currency: 'USD', products: products(cart.lines()) });
      $('#checkout-form').hidden = false;
      $('#checkout').hidden = true;
      var u = user.get();
      if (u) { $('#co-email').value = u.email || ''; $('#co-name').value = u.name || ''; }
      $('#co-name').focus();
    });
    var form = $('#checkout-form');
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var sums = render(), lines = cart.lines();
      if (!lines.length) return;
      var orderId = 'KC-' + String(Date.now()).slice(-6);
      // A custom track call with structured properties (the Segment e-commerce spec's shape).
      cs().track('Order Completed', {
        order_id: orderId,
        currency: 'USD',
        subtotal: sums.subtotal,
        revenue: sums.subtotal,
        shipping: sums.shipping,
        total: sums.total,
        shipping_method: form.shipping.value,
        products: products(lines),
      });
      cart.save([]);
      $('#cart-area').hidden = true;
      var done = $('#order-done');
      done.hidden = false;
      $('#order-id').textContent = orderId;
    });
    render();
  };

  pages.signin = function () {
    var form = $('#signin-form');
    var u = user.get();
    if (u) { $('#signed-in').hidden = false; $('#signed-in-name').textContent = u.name || u.email; }
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var email = form.email.value.trim().toLowerCase();
      var name = form.name.value.trim() || email.split('@')[0];
      // A stable id derived from the e-mail stands in for the database id a real shop has.
      var h = 0;
      for (var i = 0; i < email.length; i++) h = (h * 31 + email.charCodeAt(i)) >>> 0;
      var userId = 'user-' + h.toString(36);
      user.set({ userId: userId, email: email, name: name });
      cs().identify(userId, { email: email, name: name, plan: 'member' });
      cs().track('Signed In', { method: 'password', remember: form.remember.checked });
      $('#signin-submit').disabled = true;
      $('#signin-submit').textContent = 'Signing in…';
      flushThen(function () { location.href = '/app/'; });
    });
  };

  pages.install = function () {
    // What this site's own snippet is configured with is what a visitor should paste.
    var own = document.querySelector('script[data-write-key]');
    var meta = document.querySelector('meta[name="clickstream-write-key"]');
    var key = new URLSearchParams(location.search).get('writeKey') || (meta && meta.content) || (own && own.getAttribute('data-write-key')) || 'demo';
    var endpoint = location.origin;
    var fill = function (code) {
      var tag = '<script data-write-key="' + key + '" data-endpoint="' + endpoint + '">\n' + code.trim() + '\n</' + 'script>';
      $('#snippet').textContent = tag;
      $('#snippet-bytes').textContent = new Blob([code.trim()]).size + ' bytes';
    };
    document.querySelectorAll('[data-fill="key"]').forEach(function (el) { el.textContent = key; });
    document.querySelectorAll('[data-fill="endpoint"]').forEach(function (el) { el.textContent = endpoint; });
    document.querySelectorAll('[data-fill="batch"]').forEach(function (el) { el.textContent = endpoint + '/v1/batch'; });
    $('#curl').textContent =
      "curl -s " + endpoint + "/v1/batch -u " + key + ": -H 'content-type: application/json' \\\n  -d '{\"batch\":[{\"type\":\"track\",\"event\":\"Hello\",\"anonymousId\":\"a-1\"}]}'";
    $('#esm').textContent =
      "import { init } from 'clickstream-tracker';\n\nconst clickstream = init({ writeKey: '" + key + "', endpoint: '" + endpoint + "' });\nclickstream.track('Signed Up', { plan: 'pro' });";
    // The minified loader as the collector serves it; this page's own inline copy if that fails.
    fetch('/lib/snippet.min.js').then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(fill, function () { fill(own ? own.textContent : '/* snippet.min.js: run ./dev build-tracker */'); });
    document.querySelectorAll('button.copy').forEach(function (b) {
      b.addEventListener('click', function () {
        var text = $('#' + b.getAttribute('data-copy')).textContent;
        var ok = function () { b.textContent = 'Copied'; setTimeout(function () { b.textContent = 'Copy'; }, 1500); };
        if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(text).then(ok, ok);
        else ok();
      });
    });
    $('#test-event').addEventListener('click', function () {
      cs().track('Test Event Sent', { from: 'install page', at: new Date().toISOString() });
      toast('Sent "Test Event Sent"; watch it arrive in the inspector');
    });
  };

  window.KC = { CATALOG: CATALOG, CATEGORIES: CATEGORIES, ART: ART, byId: byId, money: money, esc: esc, cart: cart, user: user, toast: toast, cs: cs, flushThen: flushThen, art: art, productCard: productCard, productEvent: productEvent };

  function start() {
    updateHeader();
    var here = location.pathname;
    document.querySelectorAll('.nav a').forEach(function (a) {
      var p = a.getAttribute('href');
      if (p === here || (p !== '/' && here.indexOf(p.replace(/\.html$/, '')) === 0)) a.setAttribute('aria-current', 'page');
    });
    var page = document.body.getAttribute('data-page');
    if (pages[page]) pages[page]();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
