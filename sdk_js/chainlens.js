/*
 * chainlens browser snippet: reports what happens on a shop's pages as beacons.
 *
 * This file is a function expression; sdk_js/render.py applies it to one JSON
 * config object per site (no template logic here):
 *   {site, url, cookieless, consent, session_min}
 * It reports raw facts (page views with their URL, steps named by the page, GA4
 * ecommerce events by name); the collector applies the site's step rules, so this
 * script, and its SRI hash, do not change when they do (docs/snippet.md).
 * Nothing here may throw into the shop's page: every entry point is guarded.
 * The minifier renames local names, so they say what they hold; only wire, storage and
 * property names are short (the served script must stay under 2 KB gzipped).
 */
(function (config) {
  var win = window, doc = document, agent = navigator, PREFIX = 'chainlens_';
  var early = (win.chainlens && win.chainlens.q) || [];
  // Do-Not-Track and Global Privacy Control: nothing is stored or sent.
  if (agent.doNotTrack == '1' || agent.globalPrivacyControl) {
    win.chainlens = function () {};
    return;
  }
  var storage, memory = {},
    queue = [],          // events waiting for the next flush
    held = [],       // events waiting for consent
    visit = {},        // {a: anonymous id, s: session id, n: session number, t: last activity}
    userId, currentStep, lastPath, flushTimer, retryDelay = 1e3,
    visibleSince = 0,       // when the current step last became visible (0: hidden)
    pageUrl,            // the page the events are on
    beaconUrl = config.url + '/e',
    errorCount = 0, rageClicks = [];
  // Storage can be missing or throw (blocked cookies, strict privacy modes): then memory only.
  try { storage = win.localStorage; storage.setItem(PREFIX, 1); storage.removeItem(PREFIX); } catch (e) { storage = 0; }
  var consent = !config.consent || read('c', 1) == 1;

  function now() { return Date.now(); }
  function guard(fn) {
    return function () { try { return fn.apply(this, arguments); } catch (e) { /* never into the page */ } };
  }
  function on(target, type, fn, capture) { target.addEventListener(type, guard(fn), capture); }

  // Secure contexts only (https, localhost): where every shop's checkout runs.
  function uuid() { return crypto.randomUUID(); }
  function mayStore(any) { return storage && (any || (consent && !config.cookieless)); }
  function read(k, any) {
    try { return mayStore(any) ? JSON.parse(storage.getItem(PREFIX + k)) : memory[k]; } catch (e) { return memory[k]; }
  }
  function write(k, v) {
    memory[k] = v;
    try { if (mayStore()) storage.setItem(PREFIX + k, JSON.stringify(v)); } catch (e) { /* full */ }
  }
  function forget(k) { delete memory[k]; try { storage.removeItem(PREFIX + k); } catch (e) { /* none */ } }

  // A session ends after `session_min` minutes without events (GA4 and Plausible use 30).
  function touchSession() {
    var t = now();
    visit = read('id') || visit;
    if (!visit.s || t - visit.t > config.session_min * 6e4) { visit.s = uuid(); visit.n = (visit.n || 0) + 1; visit.e = visit.k = 0; }
    visit.a = visit.a || uuid();
    visit.t = t;
    write('id', visit);
  }

  function record(type, step, name, props) {
    touchSession();
    // `nc`: the session's clicks so far (docs/metrics.md, "Landing engagement"). A purchase's
    // value, currency and order_id stay in props: the collector lifts them to the event.
    var e = {id: uuid(), type: type, ts: now(), sid: visit.s, aid: visit.a, sn: visit.n, nc: visit.k,
      url: pageUrl, ref: doc.referrer, step: step, name: name, uid: userId, props: props};
    // Before consent, the page's events wait in memory, bounded.
    if (!consent) return held.push(e) > 50 && held.shift();
    queue.push(e);
    if (queue.length > 19) flush();
    else flushTimer = flushTimer || setTimeout(guard(flush), 3e3);
  }

  // Visible time of a step: each visible interval is reported when it ends, when the step
  // is left or the page is hidden (hiding is how people leave on mobile).
  function isVisible() { return doc.visibilityState != 'hidden'; }
  function reportVisibleTime() {
    var ms = visibleSince && now() - visibleSince;
    if (ms > 0) record('track', currentStep, 'step_time', {active_ms: ms});
    visibleSince = isVisible() && now();
  }
  function enterStep(step, props, type) {
    if (step != currentStep) { reportVisibleTime(); currentStep = step; }
    record(type || 'step', step, null, props);
  }

  function pageView(again) {
    var path = location.pathname;
    if (path == lastPath && !again) return; // replaceState and hash changes on the same path are not new pages
    if (lastPath) reportVisibleTime(); // the page left, on its own URL
    lastPath = path;
    pageUrl = location.origin + path + location.search; // the collector keeps only campaign parameters
    currentStep = doc.body && doc.body.getAttribute('data-chain-step');
    record('page', currentStep);
  }

  // Delivery: batches under the 64 KiB keepalive budget, in UTF-8 bytes; sendBeacon when leaving.
  function flush(hiding) {
    clearTimeout(flushTimer);
    flushTimer = 0;
    var batch = queue.splice(0);
    while (batch.length) send(batch.splice(0, 100), hiding);
  }
  function send(batchEvents, hiding) {
    var n = batchEvents.length, body = JSON.stringify({site: config.site, sent_at: now(), events: batchEvents, nostore: !mayStore() || void 0});
    if (n > 1 && new Blob([body]).size > 6e4) {
      send(batchEvents.slice(0, n >> 1), hiding);
      return send(batchEvents.slice(n >> 1), hiding);
    }
    if (hiding && agent.sendBeacon && agent.sendBeacon(beaconUrl, body)) return;
    fetch(beaconUrl, {method: 'POST', body: body, keepalive: true}).then(function (r) {
      // Too large for the collector: halves, same event ids, so a retry never counts twice.
      if (r.status == 413 && n > 1) { send(batchEvents.slice(0, n >> 1)); send(batchEvents.slice(n >> 1)); } else
      if (r.status > 499 || r.status == 429) throw r;
      retryDelay = 1e3;
    }).catch(function () { keepForRetry(batchEvents); });
  }
  // Unsent events wait in storage (or memory), bounded, oldest dropped, and are retried with backoff.
  function keepForRetry(batchEvents) {
    write('q', (read('q') || []).concat(batchEvents).slice(-300));
    setTimeout(guard(retry), retryDelay);
    retryDelay = Math.min(retryDelay * 2, 6e4);
  }
  function retry() {
    // Taking the stored events out before sending means two tabs never send the same ones.
    var batchEvents = read('q') || [];
    forget('q');
    if (batchEvents.length) send(batchEvents);
  }

  // GA4 events a store already pushes, in both forms, reported by name with their ecommerce
  // object as props (flat, but for `items`); the collector maps names to steps and reads
  // `transaction_id` as the order id. A reset (`{ecommerce: null}`) has no name.
  function fromDataLayer(x) {
    var name = x && (x.event || (x[0] == 'event' && x[1]));
    // GA4-style names; tag managers' own (gtm.js…) are not
    if (/^[a-z_]+$/.test(name || 0)) record('track', null, name, x.ecommerce || x[2]);
  }

  var api = {
    step: enterStep,
    obstacle: function (k, p) { record('obstacle', currentStep, k, p); },
    track: function (k, p) { record('track', currentStep, k, p); },
    // A satisfaction answer, 0-10 (docs/metrics.md, "Satisfaction"), with {asked_at, order_id…}.
    feedback: function (n, p) { record('track', currentStep, 'feedback', Object.assign({score: n}, p)); },
    identify: function (u) { userId = u; record('identify'); },
    consent: function (yes) {
      consent = !!yes;
      if (yes) {
        write('c', 1);
        write('id', visit);
        queue = queue.concat(held);
        flush();
      } else {
        queue = [];
        ['q', 'id', 'c'].forEach(forget);
      }
      held = [];
    }
  };
  // Calls this script does not know wait in `p` for an add-on (the risk script, sdk_js/risk.js),
  // which reads the step, session and consent through `x`. (`q` is the stub's: gone once loaded.)
  var forAddOns = [];
  function dispatch(a) { if (api[a[0]]) api[a[0]](a[1], a[2]); else forAddOns.push(a); }
  win.chainlens = guard(function () { dispatch(arguments); });
  win.chainlens.p = forAddOns;
  win.chainlens.x = function () { return [currentStep, visit.s, consent]; };

  // The page view first, so calls queued before load happen on its step; a queued
  // consent refusal then drops it and clears storage.
  visibleSince = isVisible() && now();
  pageView();
  early.forEach(guard(dispatch));
  var layer = win.dataLayer = win.dataLayer || [], originalPush = layer.push;
  layer.forEach(guard(fromDataLayer));
  layer.push = function () { [].forEach.call(arguments, guard(fromDataLayer)); return originalPush.apply(layer, arguments); };

  // Single-page apps: pushState and back/forward navigations are page views.
  ['pushState', 'replaceState'].forEach(function (m) {
    var original = history[m];
    history[m] = function () { var r = original.apply(this, arguments); guard(pageView)(); return r; };
  });
  on(win, 'popstate', function () { pageView(); });
  // A page restored from the back/forward cache is a new page view.
  on(win, 'pageshow', function (e) { if (e.persisted) pageView(1); });

  // Obstacles the snippet sees by itself, on the current step.
  function jsError(msg) { if (errorCount++ < 5) record('obstacle', currentStep, 'js_error', {message: String(msg).slice(0, 120)}); }
  on(win, 'error', function (e) { jsError(e.message); });
  on(win, 'unhandledrejection', function (e) { jsError((e.reason && e.reason.message) || e.reason); });
  on(doc, 'invalid', function (e) {
    record('obstacle', currentStep, 'form_invalid', {field: e.target.name || e.target.id}); // the field, never its value
  }, 1);
  // The first interaction of a session (a click, a key, a scroll past a quarter screen) is
  // reported once; clicks are counted on the session (docs/metrics.md, "Landing engagement").
  function interacted(click) {
    touchSession();
    if (!visit.e) { record('track', currentStep, 'engage'); visit.e = 1; }
    if (click == 1) visit.k = -~visit.k;
    write('id', visit);
  }
  on(doc, 'keydown', interacted);
  on(win, 'scroll', function () { if (!visit.e && win.scrollY * 4 > win.innerHeight) interacted(); });
  on(doc, 'click', function (e) {
    var t = e.target, el = t.closest && t.closest('[data-chain-step]');
    interacted(1);
    if (el) enterStep(el.getAttribute('data-chain-step'));
    // Rage click: a third click on one element within a second of the first.
    rageClicks = rageClicks[0] == t && now() - rageClicks[1] < 1e3 ? [t, rageClicks[1], rageClicks[2] + 1] : [t, now(), 1];
    if (rageClicks[2] == 3) record('obstacle', currentStep, 'rage_click');
  }, 1);

  function hide() { reportVisibleTime(); flush(1); }
  on(doc, 'visibilitychange', function () { if (isVisible()) visibleSince = visibleSince || now(); else hide(); });
  on(win, 'pagehide', hide);
  on(win, 'online', retry);
  retry();
})
