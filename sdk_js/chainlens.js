/*
 * chainlens browser snippet: tags a store's consumption chain and sends beacons.
 *
 * This file is a function expression; sdk_js/render.py applies it to one JSON
 * config object per site (no template logic here):
 *   {site, url, chain, rules: [[step, regexp source]], cookieless, consent, session_min}
 * The page API, auto-tagging and GA4 mapping are in docs/snippet.md.
 * Names are short on purpose: the served script must stay under 2 KB gzipped.
 */
(function (cfg) {
  var w = window, d = document, nav = navigator, ls = w.localStorage;
  var pre = (w.chainlens && w.chainlens.q) || [];
  // Do-Not-Track and Global Privacy Control: nothing is stored or sent.
  if (nav.doNotTrack == '1' || nav.globalPrivacyControl) {
    w.chainlens = function () {};
    return;
  }
  var KEY = 'chainlens_',
    consent = !cfg.consent, // sites that require consent wait for chainlens('consent', true)
    q = [],          // events waiting for the next flush
    mem = [],        // unsent events when nothing may be stored
    ids = {},        // {a: anonymous id, s: session id, n: session number, t: last activity}
    uid, cur, last, timer, backoff = 1e3,
    since = now(),   // when the current step last became visible
    url = cfg.url + '/e',
    errors = 0, rage = [];

  function now() { return Date.now(); }
  function on(target, type, fn, capture) { target.addEventListener(type, fn, capture); }

  // Secure contexts only (https, localhost): where every store's checkout runs.
  function uuid() { return crypto.randomUUID(); }
  function stores() { return consent && !cfg.cookieless; }
  function get(k) { try { return JSON.parse(ls.getItem(KEY + k)); } catch (e) { return null; } }
  function put(k, v) { if (stores()) try { ls.setItem(KEY + k, JSON.stringify(v)); } catch (e) { /* full */ } }

  // A session ends after `session_min` minutes without events (GA4 and Plausible use 30).
  function touch() {
    var t = now();
    ids = (stores() && get('id')) || ids;
    if (!ids.s || t - ids.t > cfg.session_min * 6e4) { ids.s = uuid(); ids.n = (ids.n || 0) + 1; }
    ids.a = ids.a || uuid();
    ids.t = t;
    put('id', ids);
  }

  function ev(type, step, name, props) {
    if (!consent) return;
    touch();
    var e = {id: uuid(), type: type, ts: now(), sid: ids.s, aid: ids.a, sn: ids.n,
      url: location.origin + location.pathname, ref: d.referrer, step: step, name: name, uid: uid, props: props};
    // On purchase these belong to the event itself (docs/architecture.md, "The event contract").
    if (props) ['value', 'currency', 'order_id'].forEach(function (k) { if (props[k] != null) e[k] = props[k]; });
    q.push(e);
    if (q.length > 19) flush();
    else timer = timer || setTimeout(flush, 3e3);
  }

  // Leaving a step reports the time it was visible, so dwell excludes background tabs.
  function leave() {
    var ms = d.visibilityState == 'hidden' ? 0 : now() - since;
    if (cur && ms > 0) ev('track', cur, 'step_time', {active_ms: ms});
    since = now();
  }
  function enter(step, props, type) {
    if (cfg.chain.indexOf(step) < 0) return;
    if (step != cur) { leave(); cur = step; }
    ev(type || 'step', step, null, props);
  }

  function page() {
    var path = location.pathname, step = d.body && d.body.getAttribute('data-chain-step');
    if (path == last) return; // replaceState and hash changes on the same path are not new pages
    last = path;
    cfg.rules.forEach(function (r) { if (!step && RegExp(r[1]).test(path)) step = r[0]; });
    if (step) enter(step, null, 'page');
    else ev('page', null);
  }

  // Delivery: batches under the 64 KiB keepalive limit; sendBeacon when the page goes away.
  function flush(hiding) {
    clearTimeout(timer);
    timer = 0;
    var batch = q.splice(0);
    while (batch.length) send(batch.splice(0, 100), hiding);
  }
  function send(evs, hiding) {
    var body = JSON.stringify({site: cfg.site, sent_at: now(), events: evs});
    if (body.length > 6e4 && evs.length > 1) {
      send(evs.splice(0, evs.length >> 1), hiding);
      return send(evs, hiding);
    }
    if (hiding && nav.sendBeacon && nav.sendBeacon(url, body)) return;
    fetch(url, {method: 'POST', body: body, keepalive: true}).then(function (r) {
      if (r.status > 499 || r.status == 429) throw r;
      backoff = 1e3;
    }).catch(function () { keep(evs); });
  }
  // Unsent events wait in localStorage (bounded, oldest dropped) and are retried with backoff.
  function keep(evs) {
    if (stores()) put('q', (get('q') || []).concat(evs).slice(-300));
    else mem = mem.concat(evs).slice(-300);
    setTimeout(retry, backoff);
    backoff = Math.min(backoff * 2, 6e4);
  }
  function retry() {
    // Taking the stored events out before sending means two tabs never send the same ones.
    var evs = (stores() && get('q')) || mem.splice(0);
    if (stores()) ls.removeItem(KEY + 'q');
    if (evs.length) send(evs);
  }

  // GA4 ecommerce events a store already pushes to dataLayer, in both forms.
  var GA = {view_item_list: 'search', view_search_results: 'search', view_item: 'select', add_to_cart: 'cart',
    view_cart: 'cart', begin_checkout: 'checkout.info', add_shipping_info: 'checkout.shipping',
    add_payment_info: 'checkout.payment', purchase: 'purchase'};
  function ga(x) {
    var name = x && (x.event || (x[0] == 'event' && x[1])), p = (x && (x.ecommerce || x[2])) || {};
    if (GA[name]) {
      enter(GA[name], name == 'purchase' ? {value: p.value, currency: p.currency, order_id: p.transaction_id} : null);
    }
  }

  var api = {
    step: function (s, p) { enter(s, p); },
    obstacle: function (k, p) { ev('obstacle', cur, k, p); },
    track: function (k, p) { ev('track', cur, k, p); },
    identify: function (u) { uid = u; ev('identify'); },
    consent: function (yes) {
      consent = !!yes;
      if (!yes) { q = []; mem = []; ls.removeItem(KEY + 'q'); ls.removeItem(KEY + 'id'); }
    }
  };
  function call(a) { if (api[a[0]]) api[a[0]](a[1], a[2]); }
  w.chainlens = function () { call(arguments); };

  // The page view first, so calls queued before load happen on its step; a queued
  // consent refusal then drops it from the unsent queue and clears storage.
  page();
  pre.forEach(call);
  var dl = w.dataLayer = w.dataLayer || [], push = dl.push;
  dl.forEach(ga);
  dl.push = function () { [].forEach.call(arguments, ga); return push.apply(dl, arguments); };

  // Single-page apps: pushState and back/forward navigations are page views.
  ['pushState', 'replaceState'].forEach(function (m) {
    var orig = history[m];
    history[m] = function () { var r = orig.apply(this, arguments); page(); return r; };
  });
  on(w, 'popstate', page);

  // Obstacles the snippet sees by itself, on the current step.
  function jsError(msg) { if (errors++ < 5) ev('obstacle', cur, 'js_error', {message: String(msg).slice(0, 120)}); }
  on(w, 'error', function (e) { jsError(e.message); });
  on(w, 'unhandledrejection', function (e) { jsError((e.reason && e.reason.message) || e.reason); });
  on(d, 'invalid', function (e) {
    ev('obstacle', cur, 'form_invalid', {field: e.target.name || e.target.id}); // the field, never its value
  }, 1);
  on(d, 'click', function (e) {
    var t = e.target, el = t.closest && t.closest('[data-chain-step]');
    if (el) enter(el.getAttribute('data-chain-step'));
    // Rage click: a third click on one element within a second of the first.
    rage = rage[0] == t && now() - rage[1] < 1e3 ? [t, rage[1], rage[2] + 1] : [t, now(), 1];
    if (rage[2] == 3) ev('obstacle', cur, 'rage_click', {el: t.tagName});
  }, 1);

  on(d, 'visibilitychange', function () {
    if (d.visibilityState == 'hidden') { leave(); flush(1); } else since = now();
  });
  on(w, 'pagehide', function () { leave(); flush(1); });
  on(w, 'online', retry);
  retry();
})
