/*
 * chainlens forms add-on: where in a checkout form shoppers struggle and give up (docs/snippet.md,
 * "The forms add-on"). Loaded by its own <script> tag after the main snippet on the pages of the
 * steps in [sites.forms] steps; sdk_js/render.py applies it to {site, url}. The steps and the URL
 * rules that name them come from the collector (`/sdk/SITE/hints`), so this script and its SRI
 * hash never change with them.
 *
 * Per form (its id, name, or place on the page) and field (its name, id, or type and place): the
 * visible time in the field, corrections (changed again after it was left once), errors (the
 * browser's `invalid`, or aria-invalid="true" set by the store), autofill (a change without a key
 * or a paste in the field), submit attempts; when the page is hidden or left without a submit,
 * the last field touched. Never a value: nothing here reads one. The totals go through the main
 * script (its consent, Do-Not-Track and delivery rules) when the page is hidden and on submit.
 * Nothing here may throw into the shop's page.
 */
(function (cfg) {
  var w = window, d = document, nav = navigator, main = w.chainlens;
  if (!main || !main.x || nav.doNotTrack == '1' || nav.globalPrivacyControl) return;
  var hints, fields = {}, forms = {}, now = Date.now, current, since = 0, keyed, lastInvalid = 0;

  function guard(fn) {
    return function () { try { return fn.apply(this, arguments); } catch (e) { /* never into the page */ } };
  }
  function on(target, type, fn) { target.addEventListener(type, guard(fn), true); }
  // The step: as the page names it, else by the site's URL rules for the form steps.
  function watched() {
    if (!hints) return;
    var step = main.x()[0];
    for (var s in hints.paths) {
      for (var i = 0; !step && i < hints.paths[s].length; i++) if (new RegExp(hints.paths[s][i]).test(location.pathname)) step = s;
    }
    return hints.steps.indexOf(step) >= 0;
  }
  // A field the shopper fills in (not a button, not hidden), in a form, outside any shadow root.
  function control(el) {
    return el && el.form && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName) &&
      !/^(hidden|submit|button|image|reset)$/.test(el.type) && watched() ? el : 0;
  }
  function place(list, el) { return [].indexOf.call(list, el); }
  function formOf(f) {
    var name = f.id || f.getAttribute('name') || 'form' + place(d.forms, f);
    return forms[name] || (forms[name] = {name: name, attempts: 0, last: '', done: 0, touched: 0});
  }
  function stat(el) {
    var form = formOf(el.form), name = el.name || el.id || el.type + place(el.form.elements, el), key = form.name + '\n' + name;
    form.touched = 1;
    return fields[key] || (fields[key] = {form: form, field: name, ms: 0, corrections: 0, errors: 0, autofilled: 0});
  }
  function pause() {
    if (current && since) current.ms += now() - since;
    since = 0;
  }
  function report(form, outcome) {
    for (var k in fields) {
      var f = fields[k];
      if (f.form == form && (f.ms || f.corrections || f.errors || f.autofilled || !f.sent)) {
        main('track', 'form_field', {form: form.name, field: f.field, ms: Math.round(f.ms), corrections: f.corrections,
          errors: f.errors, autofilled: f.autofilled});
        f.ms = f.corrections = f.errors = f.autofilled = 0;
        f.sent = 1;
      }
    }
    main('track', 'form_report', {form: form.name, outcome: outcome, attempts: form.attempts, last_field: form.last});
    form.attempts = 0;
  }
  function errors(form) {
    var n = 0;
    for (var k in fields) if (fields[k].form == form) n += fields[k].errors;
    return n;
  }
  // A submit counts once the page has had its say: not when the store's own validation stopped it
  // (the event prevented and an error marked meanwhile).
  function settle(form) {
    var e = form.pending;
    form.pending = 0;
    if (e.defaultPrevented && errors(form) > form.errorsBefore) return;
    form.done = 1;
    report(form, 'submitted');
  }
  function flush() {
    pause();
    for (var name in forms) {
      var form = forms[name];
      if (form.pending) settle(form);
      if (form.touched && !form.done) report(form, 'left');
    }
  }

  on(d, 'focusin', function (e) {
    var el = control(e.target);
    if (!el) return;
    pause();
    current = stat(el);
    current.form.last = current.field;
    current.counted = keyed = 0;
    since = d.visibilityState == 'hidden' ? 0 : now();
  });
  on(d, 'focusout', function () {
    pause();
    if (current) current.left = 1;
    current = 0;
  });
  on(d, 'keydown', function () { keyed = 1; });
  on(d, 'paste', function () { keyed = 1; });
  on(d, 'input', function (e) {
    var el = control(e.target);
    if (!el) return;
    var f = stat(el);
    if (!keyed || d.activeElement != el) f.autofilled = 1;
    else if (f.left && !f.counted) { f.corrections++; f.counted = 1; }
  });
  on(d, 'invalid', function (e) {
    var el = control(e.target);
    if (!el) return;
    stat(el).errors++;
    if (now() - lastInvalid > 100) formOf(el.form).attempts++; // a submit the browser's validation blocked
    lastInvalid = now();
  });
  on(d, 'submit', function (e) {
    var form = e.target.tagName == 'FORM' && watched() && formOf(e.target);
    if (!form || !form.touched || form.done) return;
    pause();
    form.attempts++;
    form.pending = e;
    form.errorsBefore = errors(form);
    setTimeout(guard(function () { if (form.pending == e) settle(form); }), 0);
  });
  // The store's own validation: aria-invalid="true" on a field counts as an error on it.
  if (w.MutationObserver) {
    new MutationObserver(guard(function (changes) {
      changes.forEach(function (c) {
        var el = control(c.target);
        if (el && el.getAttribute('aria-invalid') == 'true' && c.oldValue != 'true') stat(el).errors++;
      });
    })).observe(d.documentElement, {attributes: true, attributeFilter: ['aria-invalid'], attributeOldValue: true, subtree: true});
  }
  on(d, 'visibilitychange', function () {
    if (d.visibilityState == 'hidden') flush();
    else if (current) since = now();
  });
  on(w, 'pagehide', flush);
  fetch(cfg.url + '/sdk/' + cfg.site + '/hints').then(function (r) { return r.json(); })
    .then(guard(function (h) { hints = h.forms; }))['catch'](function () { /* no hints: nothing is watched */ });
})
