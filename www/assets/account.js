// The account area (/app/...): a single-page app with history routing. Links call
// history.pushState, back and forward fire popstate, and the view is rendered client-side.
// The tracker notices each URL change by itself and sends one page view per change.
(function () {
  'use strict';
  var KC = window.KC, $ = function (s) { return document.querySelector(s); };

  var ORDERS = [
    { id: '1042', date: '2026-03-02', status: 'In transit', lines: [['burr-grinder', 1], ['espresso-cups', 1]] },
    { id: '1041', date: '2026-02-11', status: 'Delivered', lines: [['pour-over', 2]] },
    { id: '1038', date: '2026-01-20', status: 'Delivered', lines: [['teapot', 1], ['gooseneck-kettle', 1]] },
  ];
  var total = function (o) { return o.lines.reduce(function (n, l) { return n + KC.byId(l[0]).price * l[1]; }, 0); };
  var pill = function (s) { return '<span class="status-pill' + (s === 'In transit' ? ' transit' : '') + '">' + s + '</span>'; };
  var badge = function (path) { return ' <span class="route-badge">' + path + '</span>'; };

  var views = {
    overview: function () {
      var u = KC.user.get();
      return {
        title: 'Your account',
        html: (u ? '' : '<p class="notice warn">You are browsing as a guest. <a href="/signin.html">Sign in</a> to attach your events to a user id.</p>') +
          '<h1>' + (u ? 'Welcome back, ' + KC.esc(u.name.split(' ')[0]) : 'Your account') + badge('/app/') + '</h1>' +
          '<div class="stats"><div class="stat"><span class="muted small">Orders</span><b>' + ORDERS.length + '</b></div>' +
          '<div class="stat"><span class="muted small">Spent</span><b>' + KC.money(ORDERS.reduce(function (n, o) { return n + total(o); }, 0)) + '</b></div>' +
          '<div class="stat"><span class="muted small">Wishlist</span><b>3</b></div></div>' +
          '<div class="card"><h2>Latest order</h2><p>Order <a href="/app/orders/1042">#1042</a> is ' + pill('In transit') + '</p>' +
          '<button class="btn secondary" type="button" data-track="Order Reordered" data-track-order_id="1042" data-track-source="overview" data-action="reorder" data-order="1042">Order the same again</button></div>',
      };
    },
    orders: function () {
      return {
        title: 'Orders',
        html: '<h1>Orders' + badge('/app/orders') + '</h1><div class="card"><table class="orders"><thead><tr><th>Order</th><th>Date</th><th>Status</th><th>Total</th></tr></thead><tbody>' +
          ORDERS.map(function (o) {
            return '<tr><td><a href="/app/orders/' + o.id + '">#' + o.id + '</a></td><td>' + o.date + '</td><td>' + pill(o.status) + '</td><td>' + KC.money(total(o)) + '</td></tr>';
          }).join('') + '</tbody></table></div>',
      };
    },
    order: function (id) {
      var o = ORDERS.filter(function (x) { return x.id === id; })[0];
      if (!o) return views.missing();
      return {
        title: 'Order #' + o.id,
        html: '<p class="small"><a href="/app/orders">← All orders</a></p><h1>Order #' + o.id + badge('/app/orders/' + o.id) + '</h1>' +
          '<div class="card"><p>Placed on ' + o.date + ' · ' + pill(o.status) + '</p>' +
          o.lines.map(function (l) {
            var p = KC.byId(l[0]);
            return '<div class="cart-line"><div class="thumb" style="background:' + p.bg + '">' + KC.ART[p.art] + '</div><div><a href="/product.html?id=' + p.id + '"><b>' +
              KC.esc(p.name) + '</b></a><div class="muted small">' + l[1] + ' × ' + KC.money(p.price) + '</div></div><div class="price">' + KC.money(p.price * l[1]) + '</div></div>';
          }).join('') +
          '<div class="totals"><span class="grand">Total</span><span class="grand">' + KC.money(total(o)) + '</span></div>' +
          '<div style="display:flex;gap:10px;flex-wrap:wrap"><button class="btn" type="button" data-track="Order Reordered" data-track-order_id="' + o.id +
          '" data-track-source="order page" data-action="reorder" data-order="' + o.id + '">Order the same again</button>' +
          '<a class="btn secondary" href="https://www.example.com/track?parcel=' + o.id + '" target="_blank" rel="noopener">Track the parcel ↗</a></div></div>',
      };
    },
    wishlist: function () {
      var items = ['french-press', 'teapot', 'gooseneck-kettle'].map(KC.byId);
      return {
        title: 'Wishlist',
        html: '<h1>Wishlist' + badge('/app/wishlist') + '</h1><div class="grid">' + items.map(function (p) {
          return '<div class="product-card">' + KC.art(p) + '<div class="body"><div class="name">' + KC.esc(p.name) + '</div><div class="price">' + KC.money(p.price) +
            '</div><button class="btn small" style="margin-top:10px" type="button" data-action="to-cart" data-product="' + p.id +
            '">Move to cart</button></div></div>';
        }).join('') + '</div>',
      };
    },
    settings: function () {
      var u = KC.user.get() || {};
      return {
        title: 'Settings',
        html: '<h1>Settings' + badge('/app/settings') + '</h1><div class="card"><form id="settings-form">' +
          '<div class="row"><div class="field"><label for="st-name">Name</label><input id="st-name" name="name" value="' + KC.esc(u.name || '') + '"></div>' +
          '<div class="field"><label for="st-company">Company (for team accounts)</label><input id="st-company" name="company" placeholder="Acme Roasters"></div></div>' +
          '<div class="field"><label class="check"><input type="checkbox" name="newsletter" checked> Monthly brew guide</label></div>' +
          '<button class="btn" type="submit">Save</button> <span class="muted small">Saving calls <code>group()</code> when a company is set, and <code>track(\'Settings Saved\')</code>.</span>' +
          '</form></div><div class="card" style="margin-top:20px"><h2>Sign out</h2><p class="muted">Calls <code>reset()</code>: a new anonymousId, no userId, a new session.</p>' +
          '<button class="btn secondary" type="button" id="sign-out">Sign out</button></div>',
      };
    },
    missing: function () {
      return { title: 'Not found', html: '<h1>Nothing here</h1><p><a href="/app/">Back to your account</a></p>' };
    },
  };

  function route(path) {
    var m;
    if (path === '/app/' || path === '/app' || path === '/app/index.html') return views.overview();
    if (path === '/app/orders') return views.orders();
    if ((m = /^\/app\/orders\/([\w-]+)$/.exec(path))) return views.order(m[1]);
    if (path === '/app/wishlist') return views.wishlist();
    if (path === '/app/settings') return views.settings();
    return views.missing();
  }

  function render(path) {
    var v = route(path.replace(/\/+$/, '') || '/');
    document.title = v.title + ' · Kettle & Crate';
    $('#view').innerHTML = v.html;
    document.querySelectorAll('.app-nav a').forEach(function (a) {
      var href = a.getAttribute('href'), on = href === '/app/' ? path === '/app/' : path.indexOf(href) === 0;
      if (on) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    });
  }

  // Render first (so the title is right), then change the URL: the tracker reads both.
  function go(path) {
    if (path === location.pathname) return;
    render(path);
    history.pushState({ path: path }, '', path);
    window.scrollTo(0, 0);
  }

  document.addEventListener('click', function (e) {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    var a = e.target.closest && e.target.closest('a[href]');
    if (a && !a.target && a.origin === location.origin && /^\/app(\/|$)/.test(a.pathname)) {
      e.preventDefault();
      go(a.pathname);
      return;
    }
    var b = e.target.closest && e.target.closest('button[data-action]');
    if (!b) return;
    if (b.getAttribute('data-action') === 'to-cart') {
      var p = KC.byId(b.getAttribute('data-product')), added = KC.productEvent(p, 1);
      added.source = 'wishlist';
      KC.cart.add(p.id, 1);
      KC.cs().track('Product Added', added);
      KC.toast(p.name + ' moved to your cart');
    } else if (b.getAttribute('data-action') === 'reorder') {
      var o = ORDERS.filter(function (x) { return x.id === b.getAttribute('data-order'); })[0];
      o.lines.forEach(function (l) { KC.cart.add(l[0], l[1]); });
      KC.toast('Order #' + o.id + ' is back in your cart');
    }
  });

  document.addEventListener('submit', function (e) {
    if (e.target.id !== 'settings-form') return;
    e.preventDefault();
    var f = e.target, u = KC.user.get(), company = f.company.value.trim();
    if (u) KC.user.set({ userId: u.userId, email: u.email, name: f.name.value.trim() || u.name });
    if (company) KC.cs().group('org-' + company.toLowerCase().replace(/[^a-z0-9]+/g, '-'), { name: company });
    KC.cs().track('Settings Saved', { newsletter: f.newsletter.checked, hasCompany: !!company });
    KC.toast('Settings saved');
  });

  document.addEventListener('click', function (e) {
    if (!e.target.closest || !e.target.closest('#sign-out')) return;
    KC.cs().track('Signed Out');
    KC.cs().reset();
    KC.user.clear();
    KC.flushThen(function () { location.href = '/'; });
  });

  window.addEventListener('popstate', function () { render(location.pathname); });
  render(location.pathname);
})();
