/*
 * chainlens browser snippet: reports what happens on a store's pages as beacons.
 *
 * This file is a function expression; sdk_js/render.py applies it to one JSON
 * config object per site (no template logic here):
 *   {site, url, cookieless, consent, session_min}
 * It reports raw facts (page views with their URL, steps named by the page, GA4
 * ecommerce events by name); the collector applies the site's step rules, so this
 * script, and its SRI hash, do not change when they do (docs/snippet.md).
 * Nothing here may throw into the store's page: every entry point is guarded.
 * Names are short on purpose: the served script must stay under 2 KB gzipped.
 */
(function (cfg) {
  var w = window, d = document, nav = navigator, K = 'chainlens_';
  var pre = (w.chainlens && w.chainlens.q) || [];
  // Do-Not-Track and Global Privacy Control: nothing is stored or sent.
  if (nav.doNotTrack == '1' || nav.globalPrivacyControl) {
    w.chainlens = function () {};
    return;
  }
  var ls, mem = {},
    q = [],          // events waiting for the next flush
    hold = [],       // events waiting for consent
    ids = {},        // {a: anonymous id, s: session id, n: session number, t: last activity}
    uid, cur, last, timer, backoff = 1e3,
    since = 0,       // when the current step last became visible (0: hidden)
    here,            // the page the events are on
    url = cfg.url + '/e',
    errors = 0, rage = [];
  // Storage can be missing or throw (blocked cookies, strict privacy modes): then memory only.
  try { ls = w.localStorage; ls.setItem(K, 1); ls.removeItem(K); } catch (e) { ls = 0; }
  var consent = !cfg.consent || get('c', 1) == 1;

  function now() { return Date.now(); }
  function guard(fn) {
    return function () { try { return fn.apply(this, arguments); } catch (e) { /* never into the page */ } };
  }
  function on(target, type, fn, capture) { target.addEventListener(type, guard(fn), capture); }

  // Secure contexts only (https, localhost): where every store's checkout runs.
  function uuid() { return crypto.randomUUID(); }
  function stores(any) { return ls && (any || (consent && !cfg.cookieless)); }
  function get(k, any) {
    try { return stores(any) ? JSON.parse(ls.getItem(K + k)) : mem[k]; } catch (e) { return mem[k]; }
  }
  function put(k, v) {
    mem[k] = v;
    try { if (stores()) ls.setItem(K + k, JSON.stringify(v)); } catch (e) { /* full */ }
  }
  function drop(k) { delete mem[k]; try { ls.removeItem(K + k); } catch (e) { /* none */ } }

  // A session ends after `session_min` minutes without events (GA4 and Plausible use 30).
  function touch() {
    var t = now();
    ids = get('id') || ids;
    if (!ids.s || t - ids.t > cfg.session_min * 6e4) { ids.s = uuid(); ids.n = (ids.n || 0) + 1; ids.e = ids.k = 0; }
    ids.a = ids.a || uuid();
    ids.t = t;
    put('id', ids);
  }

  function ev(type, step, name, props) {
    touch();
    // `nc`: the session's clicks so far (docs/metrics.md, "Landing engagement"). A purchase's
    // value, currency and order_id stay in props: the collector lifts them to the event.
    var e = {id: uuid(), type: type, ts: now(), sid: ids.s, aid: ids.a, sn: ids.n, nc: ids.k,
      url: here, ref: d.referrer, step: step, name: name, uid: uid, props: props};
    // Before consent, the page's events wait in memory, bounded.
    if (!consent) return hold.push(e) > 50 && hold.shift();
    q.push(e);
    if (q.length > 19) flush();
    else timer = timer || setTimeout(guard(flush), 3e3);
  }

  // Visible time of a step: each visible interval is reported when it ends, when the step
  // is left or the page is hidden (hiding is how people leave on mobile).
  function shown() { return d.visibilityState != 'hidden'; }
  function report() {
    var ms = since && now() - since;
    if (ms > 0) ev('track', cur, 'step_time', {active_ms: ms});
    since = shown() && now();
  }
  function enter(step, props, type) {
    if (step != cur) { report(); cur = step; }
    ev(type || 'step', step, null, props);
  }

  function page(again) {
    var path = location.pathname;
    if (path == last && !again) return; // replaceState and hash changes on the same path are not new pages
    if (last) report(); // the page left, on its own URL
    last = path;
    here = location.origin + path + location.search; // the collector keeps only campaign parameters
    cur = d.body && d.body.getAttribute('data-chain-step');
    ev('page', cur);
  }

  // Delivery: batches under the 64 KiB keepalive budget, in UTF-8 bytes; sendBeacon when leaving.
  function flush(hiding) {
    clearTimeout(timer);
    timer = 0;
    var batch = q.splice(0);
    while (batch.length) send(batch.splice(0, 100), hiding);
  }
  function send(evs, hiding) {
    var n = evs.length, body = JSON.stringify({site: cfg.site, sent_at: now(), events: evs, nostore: !stores() || void 0});
    if (n > 1 && new Blob([body]).size > 6e4) {
      send(evs.slice(0, n >> 1), hiding);
      return send(evs.slice(n >> 1), hiding);
    }
    if (hiding && nav.sendBeacon && nav.sendBeacon(url, body)) return;
    fetch(url, {method: 'POST', body: body, keepalive: true}).then(function (r) {
      // Too large for the collector: halves, same event ids, so a retry never counts twice.
      if (r.status == 413 && n > 1) { send(evs.slice(0, n >> 1)); send(evs.slice(n >> 1)); } else
      if (r.status > 499 || r.status == 429) throw r;
      backoff = 1e3;
    }).catch(function () { keep(evs); });
  }
  // Unsent events wait in storage (or memory), bounded, oldest dropped, and are retried with backoff.
  function keep(evs) {
    put('q', (get('q') || []).concat(evs).slice(-300));
    setTimeout(guard(retry), backoff);
    backoff = Math.min(backoff * 2, 6e4);
  }
  function retry() {
    // Taking the stored events out before sending means two tabs never send the same ones.
    var evs = get('q') || [];
    drop('q');
    if (evs.length) send(evs);
  }

  // GA4 events a store already pushes, in both forms, reported by name with their ecommerce
  // object as props (flat, but for `items`); the collector maps names to steps and reads
  // `transaction_id` as the order id. A reset (`{ecommerce: null}`) has no name.
  function ga(x) {
    var name = x && (x.event || (x[0] == 'event' && x[1]));
    // GA4-style names; tag managers' own (gtm.js…) are not
    if (/^[a-z_]+$/.test(name || 0)) ev('track', null, name, x.ecommerce || x[2]);
  }

  var api = {
    step: enter,
    obstacle: function (k, p) { ev('obstacle', cur, k, p); },
    track: function (k, p) { ev('track', cur, k, p); },
    // A satisfaction answer, 0-10 (docs/metrics.md, "Satisfaction"), with {asked_at, order_id…}.
    feedback: function (n, p) { ev('track', cur, 'feedback', Object.assign({score: n}, p)); },
    identify: function (u) { uid = u; ev('identify'); },
    consent: function (yes) {
      consent = !!yes;
      if (yes) {
        put('c', 1);
        put('id', ids);
        q = q.concat(hold);
        flush();
      } else {
        q = [];
        ['q', 'id', 'c'].forEach(drop);
      }
      hold = [];
    }
  };
  // Calls this script does not know wait in `p` for an add-on (the risk script, sdk_js/risk.js),
  // which reads the step, session and consent through `x`. (`q` is the stub's: gone once loaded.)
  var rest = [];
  function call(a) { if (api[a[0]]) api[a[0]](a[1], a[2]); else rest.push(a); }
  w.chainlens = guard(function () { call(arguments); });
  w.chainlens.p = rest;
  w.chainlens.x = function () { return [cur, ids.s, consent]; };

  // The page view first, so calls queued before load happen on its step; a queued
  // consent refusal then drops it and clears storage.
  since = shown() && now();
  page();
  pre.forEach(guard(call));
  var dl = w.dataLayer = w.dataLayer || [], push = dl.push;
  dl.forEach(guard(ga));
  dl.push = function () { [].forEach.call(arguments, guard(ga)); return push.apply(dl, arguments); };

  // Single-page apps: pushState and back/forward navigations are page views.
  ['pushState', 'replaceState'].forEach(function (m) {
    var orig = history[m];
    history[m] = function () { var r = orig.apply(this, arguments); guard(page)(); return r; };
  });
  on(w, 'popstate', function () { page(); });
  // A page restored from the back/forward cache is a new page view.
  on(w, 'pageshow', function (e) { if (e.persisted) page(1); });

  // Obstacles the snippet sees by itself, on the current step.
  function jsError(msg) { if (errors++ < 5) ev('obstacle', cur, 'js_error', {message: String(msg).slice(0, 120)}); }
  on(w, 'error', function (e) { jsError(e.message); });
  on(w, 'unhandledrejection', function (e) { jsError((e.reason && e.reason.message) || e.reason); });
  on(d, 'invalid', function (e) {
    ev('obstacle', cur, 'form_invalid', {field: e.target.name || e.target.id}); // the field, never its value
  }, 1);
  // The first interaction of a session (a click, a key, a scroll past a quarter screen) is
  // reported once; clicks are counted on the session (docs/metrics.md, "Landing engagement").
  function act(click) {
    touch();
    if (!ids.e) { ev('track', cur, 'engage'); ids.e = 1; }
    if (click == 1) ids.k = -~ids.k;
    put('id', ids);
  }
  on(d, 'keydown', act);
  on(w, 'scroll', function () { if (!ids.e && w.scrollY * 4 > w.innerHeight) act(); });
  on(d, 'click', function (e) {
    var t = e.target, el = t.closest && t.closest('[data-chain-step]');
    act(1);
    if (el) enter(el.getAttribute('data-chain-step'));
    // Rage click: a third click on one element within a second of the first.
    rage = rage[0] == t && now() - rage[1] < 1e3 ? [t, rage[1], rage[2] + 1] : [t, now(), 1];
    if (rage[2] == 3) ev('obstacle', cur, 'rage_click');
  }, 1);

  function hide() { report(); flush(1); }
  on(d, 'visibilitychange', function () { if (shown()) since = since || now(); else hide(); });
  on(w, 'pagehide', hide);
  on(w, 'online', retry);
  retry();
})
