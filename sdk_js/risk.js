/*
 * chainlens risk script: acts at the moment a shopper is about to leave a configured step,
 * measured against a holdout (docs/interventions.md). Loaded by a second <script> tag after
 * the main snippet, on the pages where a store wants to act; sdk_js/render.py applies it to
 * {site, url}. The steps, holdout share, triggers and idle thresholds are fetched
 * from the collector (`/sdk/SITE/hints`), so this script and its SRI hash never change with them.
 *
 * It does nothing under Do-Not-Track/GPC, without consent when the site asks for it, or until
 * the store registers a handler with chainlens('on', 'risk', fn). Then, once per session, on a
 * configured step: exit intent (the pointer leaves through the top of the window), idle longer
 * than the step's threshold, or a return after the page was hidden more than 5 s. The arm comes
 * from the session id (the same session, the same arm); both arms record the moment, only the
 * treatment arm calls the handler. Nothing here may throw into the shop's page.
 */
(function (cfg) {
  var w = window, d = document, nav = navigator;
  var main = w.chainlens;
  if (!main || !main.x || nav.doNotTrack == '1' || nav.globalPrivacyControl) return;
  var handler, hints, done, idle, hiddenAt = 0, queued = main.p || [];

  function guard(fn) {
    return function () { try { return fn.apply(this, arguments); } catch (e) { /* never into the page */ } };
  }
  // The step: as the page names it, else by the site's URL rules for the intervention steps.
  function ruled() {
    for (var step in hints.paths) {
      for (var i = 0; i < hints.paths[step].length; i++) {
        if (new RegExp(hints.paths[step][i]).test(location.pathname)) return step;
      }
    }
  }
  function state() { var s = main.x(); return {step: s[0] || (hints && ruled()), sid: s[1], consent: s[2]}; }
  // FNV-1a over the session id: a share in [0, 1) that is the same on every page of the session.
  function share(text) {
    var h = 2166136261;
    for (var i = 0; i < text.length; i++) { h ^= text.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
    return h / 4294967296;
  }
  // At most once per session, across its pages and tabs where storage allows.
  function once(sid) {
    try {
      if (localStorage.getItem('chainlens_risk') == sid) return false;
      localStorage.setItem('chainlens_risk', sid);
    } catch (e) { /* no storage: once per page */ }
    return true;
  }
  function risk(trigger) {
    var s = state();
    if (done || !handler || !hints || !s.consent || !s.sid || hints.steps.indexOf(s.step) < 0 ||
        hints.triggers.indexOf(trigger) < 0) return;
    done = 1;
    if (!once(s.sid)) return;
    var arm = share(s.sid) < hints.holdout ? 'holdout' : 'treatment';
    main('track', 'intervention', {trigger: trigger, arm: arm});
    if (arm == 'treatment') handler({step: s.step, trigger: trigger});
  }
  function rearm() {
    clearTimeout(idle);
    var s = state(), ms = hints && hints.idle_ms && hints.idle_ms[s.step];
    if (ms) idle = setTimeout(guard(function () { risk('idle'); }), ms);
  }

  var api = {
    on: function (kind, fn) {
      if (kind != 'risk' || typeof fn != 'function' || handler) return;
      handler = fn;
      fetch(cfg.url + '/sdk/' + cfg.site + '/hints').then(function (r) { return r.json(); })
        .then(guard(function (h) { hints = h; rearm(); }))['catch'](function () { /* no hints: nothing runs */ });
    },
    intervention: function (outcome, props) {
      var p = {outcome: outcome};
      for (var k in props) p[k] = props[k];
      main('track', 'intervention_outcome', p);
    }
  };
  function call(a) { if (api[a[0]]) api[a[0]](a[1], a[2]); else main.apply(null, a); }
  var mine = guard(function () { call(arguments); });
  mine.x = main.x;
  w.chainlens = mine;
  queued.forEach(guard(call));

  function on(target, type, fn) { target.addEventListener(type, guard(fn)); }
  on(d, 'mouseout', function (e) { if (!e.relatedTarget && e.clientY <= 0) risk('exit_intent'); });
  ['mousemove', 'keydown', 'scroll', 'touchstart', 'click'].forEach(function (t) { on(w, t, rearm); });
  on(d, 'visibilitychange', function () {
    if (d.visibilityState == 'hidden') hiddenAt = Date.now();
    else if (hiddenAt && Date.now() - hiddenAt > 5000) risk('return_after_hide');
  });
})
