"""The forms add-on in real Chromium on a realistic checkout form, against a real `chainlens
serve`: scripted shoppers who complete, correct an error, leave after an error, leave at a field
without one, or let the browser fill the form; the tables equal what was driven, no typed value
is stored anywhere, and nothing the page does makes the add-on throw (docs/metrics.md, "Form
fields")."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import CHROMIUM, Serve, launch_chromium, make_config, site_config
from tests.test_snippet_browser import Pages, html, new_page

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def wait_for_sync(check: Any, *, timeout: float = 20, what: str = "") -> Any:
    """Poll `check` until it returns something true, and return that; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last: {result!r}")
        time.sleep(0.2)
    return result

FORM = """
<form id="details" action="/checkout/shipping" method="get">
  <label>E-mail <input name="email" type="email" required autocomplete="email"></label>
  <label>Street and number <input name="address" required autocomplete="street-address"></label>
  <label>ZIP <input name="zip" required pattern="[0-9]{5}" autocomplete="postal-code"></label>
  <label>Phone <input name="phone" autocomplete="tel"></label>
  <label>Note <input placeholder="for the courier"></label>
  <button>Continue</button>
</form>"""
# What the shoppers type: none of it may be stored, in any column of any table.
TYPED = {"email": "maren.k@example.net", "address": "12 Privet Drive", "zip": "04321",
         "phone": "+49 170 5550123"}
BAD_ZIPS = ("0432", "abcde")  # leading zeros: never a JSON number


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is required: `make test` installs it with apt-get")
    from playwright.sync_api import sync_playwright
    tmp = tmp_path_factory.mktemp("forms")
    pages = Pages()
    site = site_config(origins=[pages.origin], forms={"steps": ["checkout.info"]},
                       step_urls={"checkout.info": ["/checkout/info"], "checkout.shipping": ["/checkout/shipping"]})
    config = make_config(tmp, collector={"workers": 1, "flush_interval_s": 0.2}, sites=[site],
                         rollup={"session_timeout_s": 1})
    srv = Serve(tmp, config).start()
    tag = srv.cli("snippet", "demo").stdout.strip()
    assert "/sdk/demo/forms.js" in tag
    pages.routes["/checkout/info"] = (html(tag, FORM), {})
    pages.routes["/checkout/shipping"] = (html(tag, "<p>Shipping</p>"), {})
    with sync_playwright() as p:
        browser = launch_chromium(p)
        yield {"srv": srv, "pages": pages, "browser": browser, "tag": tag}
        browser.close()
    srv.stop()
    pages.server.shutdown()
    pages.server.server_close()


def checkout(env: dict[str, Any]) -> Any:
    page = new_page(env)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(env["pages"].origin + "/checkout/info")
    page.wait_for_function("window.chainlens && window.chainlens.x")
    page.wait_for_timeout(300)  # the add-on's hints
    return page


def fill(page: Any, **values: str) -> None:
    for name, value in values.items():
        page.click(f"input[name={name}]")
        page.keyboard.type(value, delay=5)


def submit_and_wait(page: Any) -> None:
    with page.expect_navigation():
        page.click("button")


def leave(page: Any) -> None:
    page.goto("about:blank")  # the shopper leaves: pagehide, the main script's beacon
    page.context.close()


def test_five_shoppers_at_a_checkout_form(env: dict[str, Any]) -> None:
    srv = env["srv"]
    # 1. completes the form.
    page = checkout(env)
    fill(page, **TYPED)
    submit_and_wait(page)
    errors = list(page.errors)
    leave(page)
    # 2. a zip the pattern refuses, then corrected: one error, one correction, submitted.
    page = checkout(env)
    fill(page, email=TYPED["email"], address=TYPED["address"], zip=BAD_ZIPS[0], phone=TYPED["phone"])
    page.click("button")  # blocked by the browser's validation: `invalid` on zip
    page.click("input[name=zip]")
    page.keyboard.press("End")
    page.keyboard.type("1")
    submit_and_wait(page)
    errors += page.errors
    leave(page)
    # 3. a zip refused, and the shopper gives up there.
    page = checkout(env)
    fill(page, email=TYPED["email"], address=TYPED["address"], zip=BAD_ZIPS[1], phone=TYPED["phone"])
    page.click("button")
    page.click("input[name=zip]")
    errors += page.errors
    leave(page)
    # 4. leaves at the phone field, no error anywhere.
    page = checkout(env)
    fill(page, email=TYPED["email"], address=TYPED["address"], zip=TYPED["zip"], phone=TYPED["phone"][:6])
    errors += page.errors
    leave(page)
    # 5. the browser fills the form (a change without a key in the field), then submits.
    page = checkout(env)
    page.evaluate("""values => { for (const [name, value] of Object.entries(values)) {
        const el = document.querySelector(`input[name=${name}]`);
        el.value = value; el.dispatchEvent(new Event('input', {bubbles: true})); } }""", TYPED)
    submit_and_wait(page)
    errors += page.errors
    leave(page)
    assert errors == []

    def arrived() -> bool:
        n = srv.sql("SELECT uniqExact(session_id) AS n FROM events WHERE name = 'form_report'")[0]["n"]
        return n >= 5
    wait_for_sync(arrived, what="five shoppers' form reports")
    time.sleep(1.5)  # the sessions close (session_timeout_s = 1)
    srv.cli("rollup")

    (form,) = srv.sql("SELECT started, submitted, abandoned FROM form_daily WHERE device = 'all' "
                      "AND step = 'checkout.info' AND form = 'details'")
    assert (form["started"], form["submitted"], form["abandoned"]) == (5, 3, 2), form
    fields = {r["field"]: r for r in srv.sql(
        "SELECT field, sessions_touched, sessions_left_here, errors, sessions_with_error, corrections, autofilled, "
        "abandoned_with_error, abandoned_without_error FROM form_fields_daily WHERE device = 'all' "
        "AND step = 'checkout.info' AND form = 'details'")}
    zip_ = fields["zip"]
    assert (zip_["sessions_touched"], zip_["errors"], zip_["sessions_with_error"], zip_["corrections"]) == (5, 2, 2, 1)
    assert (zip_["sessions_left_here"], zip_["abandoned_with_error"], zip_["abandoned_without_error"]) == (1, 1, 1)
    phone = fields["phone"]
    assert (phone["sessions_touched"], phone["sessions_left_here"], phone["errors"]) == (5, 1, 0)
    assert fields["email"]["autofilled"] == 1 and fields["email"]["sessions_touched"] == 5
    assert "text4" not in fields  # the note field was never touched

    # No typed value anywhere: every column of every table, and the collector's log.
    tables = [r["name"] for r in srv.sql("SELECT name FROM system.tables WHERE database = currentDatabase()")]
    typed = standing_alone([*TYPED.values(), *BAD_ZIPS])
    for table in tables:
        (hit,) = srv.sql(f"SELECT count() AS n FROM {table} "
                         f"WHERE match(formatRowNoNewline('JSONEachRow', *), '{typed}')")
        assert hit["n"] == 0, table
    assert not re.search(typed, srv.log.read_text())


def standing_alone(values: list[str]) -> str:
    """A pattern for any of `values` as a value of its own: not inside a longer word or number,
    where a four-digit zip turns up by chance (in a timestamp, a UUID, a duration)."""
    escaped = ("".join(f"[{c}]" if c in ".+*?()|^$" else c for c in v) for v in values)
    return f"(^|[^0-9A-Za-z.-])({'|'.join(escaped)})([^0-9A-Za-z.-]|$)"


def test_the_add_on_never_throws_into_the_page(env: dict[str, Any]) -> None:
    """Storage that throws, a form added after load, fields without a name or id, a form inside a
    shadow root: no error reaches the page, and the form added later is reported."""
    pages, srv = env["pages"], env["srv"]
    late = """<script>
      Object.defineProperty(window, 'localStorage', {get() { throw new Error('storage blocked'); }});
      setTimeout(() => {
        const f = document.createElement('form'); f.id = 'late';
        f.innerHTML = '<input><select><option>a</option></select><textarea></textarea><button>go</button>';
        document.body.appendChild(f);
        const host = document.createElement('div'); document.body.appendChild(host);
        host.attachShadow({mode: 'open'}).innerHTML = '<form><input name="inside"></form>';
        window.added = 1;
      }, 300);
    </script>"""
    pages.routes["/checkout/info/late"] = (html(env["tag"], "", head=late), {})
    srv_rules = "/checkout/info/late"
    page = new_page(env)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(pages.origin + srv_rules + "?step=1")
    page.evaluate("chainlens('step', 'checkout.info')")
    page.wait_for_function("window.added === 1")
    page.click("#late input")
    page.keyboard.type("hello", delay=5)
    page.click("#late textarea")
    page.keyboard.type("x")
    page.locator("div >> input[name=inside]").click()
    page.keyboard.type("y")
    page.goto("about:blank")
    page.context.close()
    assert errors == []

    def arrived() -> list[dict[str, Any]]:
        return srv.sql("SELECT props['field'] AS field FROM events WHERE name = 'form_field' "
                       "AND props['form'] = 'late'")
    fields = {r["field"] for r in wait_for_sync(arrived, what="the late form's fields")}
    assert fields == {"text0", "textarea2"}  # by type and place; the shadow root's field is not seen


STORE_VALIDATED = """
<form id="contact" action="/checkout/shipping" method="get" novalidate>
  <label>Phone <input name="phone"></label>
  <button>Continue</button>
</form>
<script>
  // The store's own validation: no browser checks; an error is marked with aria-invalid.
  document.getElementById('contact').addEventListener('submit', e => {
    const phone = e.target.elements.phone;
    if (!/^[0-9 +]{6,}$/.test(phone.value)) {
      e.preventDefault(); phone.setAttribute('aria-invalid', 'true');
    } else phone.removeAttribute('aria-invalid');
  });
</script>"""


def test_an_error_the_stores_own_validation_marks_counts_and_stops_the_submit(env: dict[str, Any]) -> None:
    pages, srv = env["pages"], env["srv"]
    pages.routes["/checkout/info"] = (html(env["tag"], STORE_VALIDATED), {})
    try:
        page = checkout(env)
        page.click("input[name=phone]")
        page.keyboard.type("12")
        page.click("button")  # prevented, aria-invalid set: an attempt, not a submit
        page.click("input[name=phone]")
        page.keyboard.type("34567")
        submit_and_wait(page)
        assert page.errors == []
        sid = page.evaluate("JSON.parse(localStorage.chainlens_id).s")
        leave(page)
    finally:
        pages.routes["/checkout/info"] = (html(env["tag"], FORM), {})

    def reported() -> list[dict[str, Any]]:
        return srv.sql(f"SELECT name, props FROM events WHERE session_id = '{sid}' AND name IN "
                       "('form_field', 'form_report') AND props['form'] = 'contact' ORDER BY ts")
    got = wait_for_sync(reported, what="the contact form's reports")
    fields = [r["props"] for r in got if r["name"] == "form_field"]
    assert sum(int(p["errors"]) for p in fields) == 1 and sum(int(p["corrections"]) for p in fields) == 1
    outcomes = [r["props"] for r in got if r["name"] == "form_report"]
    assert [(p["outcome"], p["attempts"]) for p in outcomes] == [("submitted", "2")]
