/*
 * chainlens custom pixel for Shopify's Customer Events (docs/snippet.md, "Shopify").
 *
 * Shopify runs custom pixels in a sandbox with no DOM: the page is seen only
 * through `analytics.subscribe` and storage only through the async
 * `browser.localStorage`. This file is a function expression applied to the
 * same per-site config as the storefront snippet ({site, url, cookieless,
 * consent, session_min}); it sends Shopify's standard events by name, in the
 * same wire format, and the collector maps the names to the site's chain.
 * Visitor and session follow the snippet's rules and share its storage key, so
 * a theme that also runs the snippet keeps one session from product page to
 * order status page. Nothing here may throw into Shopify's pixel runtime.
 */
(function (cfg) {
  var K = 'chainlens_';
  var nav = self.navigator || {};
  // Do-Not-Track and Global Privacy Control: nothing is stored or sent.
  if (nav.doNotTrack == '1' || nav.globalPrivacyControl) return;

  var endpoint = cfg.url + '/e';
  var keeps = !cfg.cookieless; // cookieless sites: the collector keys the visitor, nothing is stored
  var storage = (typeof browser == 'object' && browser.localStorage) || null;
  var ids = {};
  var queue = [];
  var timer = 0;
  // Storage is asynchronous here: every event waits for the stored ids to be read once.
  var ready = load('id').then(function (stored) { ids = stored || {}; });

  function load(key) {
    if (!keeps || !storage) return Promise.resolve(null);
    return Promise.resolve().then(function () { return storage.getItem(K + key); })
      .then(function (text) { return text ? JSON.parse(text) : null; })
      .catch(function () { return null; });
  }
  function save(key, value) {
    if (!keeps || !storage) return;
    Promise.resolve().then(function () {
      return value == null ? storage.removeItem(K + key) : storage.setItem(K + key, JSON.stringify(value));
    }).catch(function () { /* storage refused: memory only */ });
  }
  function uuid() {
    if (self.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16)), h = [];
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    for (var i = 0; i < 16; i++) h.push((b[i] + 256).toString(16).slice(1));
    h = h.join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  // A session ends after `session_min` minutes without events, as in the storefront snippet.
  function touch(t) {
    if (!ids.s || t - ids.t > cfg.session_min * 6e4) { ids.s = uuid(); ids.n = (ids.n || 0) + 1; }
    ids.a = ids.a || uuid();
    ids.t = Math.max(ids.t || 0, t);
    save('id', ids);
  }

  function money(m) { return m && m.amount != null ? m : null; }
  // Items as GA4 names them; the collector keeps their count and the first ten ids, names,
  // prices and quantities.
  function item(variant, title, quantity) {
    var product = (variant && variant.product) || {}, price = money(variant && variant.price);
    return {item_id: product.id || (variant && variant.id), item_name: title || product.title,
      price: price ? price.amount : undefined, quantity: quantity};
  }
  // The few fields the chain uses, from each standard event's payload (Shopify's published types).
  function facts(name, data) {
    var c = data.checkout, line = data.cartLine, cart = data.cart, variant = data.productVariant, total = null;
    var p = {};
    if (c) {
      total = money(c.totalPrice) || money(c.subtotalPrice);
      p.items = (c.lineItems || []).map(function (li) { return item(li.variant, li.title, li.quantity); });
      var option = ((c.delivery && c.delivery.selectedDeliveryOptions) || [])[0];
      if (option) p.shipping_tier = option.title || option.type;
      var paid = (c.transactions || [])[0];
      if (paid) p.payment_type = (paid.paymentMethod && paid.paymentMethod.type) || paid.gateway;
      if (name == 'checkout_completed' && c.order && c.order.id != null) p.order_id = String(c.order.id);
      if (!total && c.currencyCode) p.currency = c.currencyCode;
    } else if (line) {
      total = money(line.cost && line.cost.totalAmount);
      p.items = [item(line.merchandise, null, line.quantity)];
    } else if (cart) {
      total = money(cart.cost && cart.cost.totalAmount);
      p.items = (cart.lines || []).map(function (l) { return item(l.merchandise, null, l.quantity); });
    } else if (variant) {
      total = money(variant.price);
      p.items = [item(variant)];
    } else if (data.searchResult) {
      p.items = (data.searchResult.productVariants || []).length;
      if (data.searchResult.query) p.search_term = String(data.searchResult.query);
    } else if (data.collection) {
      p.items = (data.collection.productVariants || []).length;
    }
    if (total) { p.value = total.amount; p.currency = total.currencyCode; }
    return p;
  }

  function record(event) {
    var doc = (event.context && event.context.document) || {};
    var loc = doc.location || {};
    var t = Date.parse(event.timestamp) || Date.now();
    touch(t);
    var props = facts(event.name, event.data || {});
    var e = {id: uuid(), type: event.name == 'page_viewed' ? 'page' : 'track', ts: t, sid: ids.s, aid: ids.a,
      sn: ids.n, url: (loc.origin || '') + (loc.pathname || ''), ref: doc.referrer || undefined,
      name: event.name == 'page_viewed' ? undefined : event.name, props: props};
    ['value', 'currency', 'order_id'].forEach(function (k) { if (props[k] != null) e[k] = props[k]; });
    queue.push(e);
    // The pixel's frame goes with the page: the purchase leaves at once, the rest within half a second.
    clearTimeout(timer);
    timer = setTimeout(flush, event.name == 'checkout_completed' ? 0 : 500);
  }

  function flush() {
    var batch = queue.splice(0);
    if (batch.length) send(batch);
  }
  function send(events) {
    var body = JSON.stringify({site: cfg.site, sent_at: Date.now(), events: events, nostore: !keeps || undefined});
    fetch(endpoint, {method: 'POST', body: body, keepalive: new Blob([body]).size < 6e4, headers: {'Content-Type': 'text/plain'}})
      .then(function (r) {
        if (r.status == 413 && events.length > 1) {
          var half = events.length >> 1;
          send(events.slice(0, half));
          send(events.slice(half));
        } else if (r.status > 499 || r.status == 429) throw r;
      })
      .catch(function () { keep(events); });
  }
  // Unsent events wait in storage, bounded, and go with the next page's first batch (same ids).
  function keep(events) {
    load('q').then(function (old) { save('q', (old || []).concat(events).slice(-300)); });
  }
  function retry() {
    load('q').then(function (old) {
      if (old && old.length) { save('q', null); send(old); }
    });
  }

  var NAMES = ['page_viewed', 'search_submitted', 'collection_viewed', 'product_viewed', 'product_added_to_cart',
    'product_removed_from_cart', 'cart_viewed', 'checkout_started', 'checkout_contact_info_submitted',
    'checkout_address_info_submitted', 'checkout_shipping_info_submitted', 'payment_info_submitted',
    'checkout_completed'];
  NAMES.forEach(function (name) {
    analytics.subscribe(name, function (event) {
      ready.then(function () { record(event); }).catch(function () { /* never into the runtime */ });
    });
  });
  ready.then(retry).catch(function () { /* none */ });
})
