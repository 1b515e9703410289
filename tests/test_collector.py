"""The accept path over real HTTP, in process, on an embedded store per test."""

from __future__ import annotations

import asyncio
import gzip
import re
import time
import uuid
from typing import Any

import orjson
import pytest

from chainlens.one_process import single_process_app
from collector.app import SERVER_OPTIONS
from ingestion.imports import import_lines
from ingestion.live import live_state, live_text
from ingestion.runner import StoreRunner
from tests.conftest import BROWSER_UA, MOBILE_UA, ORIGIN, beacon, event, wait_for

JSON = {"Content-Type": "application/json"}
HEADERS = {"Content-Type": "text/plain", "Origin": ORIGIN, "User-Agent": BROWSER_UA}


@pytest.fixture
async def client(aiohttp_client: Any, settings: Any) -> Any:
    runner = StoreRunner(settings.store.dsn)
    cli = await aiohttp_client(single_process_app(settings, runner=runner), server_kwargs=SERVER_OPTIONS)

    async def rows(query: str, **params: Any) -> list[tuple]:
        return await runner.call(lambda c: c.query(query, parameters=params).result_rows)

    cli.rows, cli.runner = rows, runner
    return cli


async def landed(client: Any, query: str, expected: Any) -> Any:
    async def check() -> bool:
        return (await client.rows(query)) == expected
    await wait_for(check)
    return await client.rows(query)


async def test_beacon_lands_as_rows_with_enrichment(client: Any) -> None:
    ev = event("step", step="checkout.shipping", url="https://shop.example/checkout/shipping?email=a@b.c",
               props={"method": "express", "ship_days": 2, "gift": False}, uid="user-9", sn=3)
    resp = await client.post("/e", data=beacon(ev), headers={**HEADERS, "User-Agent": MOBILE_UA})
    assert resp.status == 202
    assert await resp.json() == {"accepted": 1, "rejected": 0, "errors": []}
    rows = await landed(client, "SELECT count() FROM events", [(1,)])
    assert rows == [(1,)]
    (row,) = await client.rows(
        "SELECT toString(event_id), step, url, props, user_id, session_number, device, is_bot, os FROM events")
    assert row == (ev["id"], "checkout.shipping", "https://shop.example/checkout/shipping",
                   {"method": "express", "ship_days": "2", "gift": "false"}, "user-9", 3, "mobile", False, "iOS")


async def test_every_answer_carries_a_request_id_and_is_counted_by_route(client: Any) -> None:
    labels = ['route="/e",status="202"', 'route="/e",status="400"', 'route="/sdk/{site}.js",status="200"']

    async def counts() -> list[float]:  # the registry is the test process's: compare before and after
        text = await (await client.get("/metrics")).text()
        found = {m[1]: float(m[2]) for m in re.finditer(r"^chainlens_http_requests_total\{(.*)\} (\S+)$", text, re.M)}
        return [found.get(label, 0.0) for label in labels]

    before = await counts()
    mine = await client.post("/e", data=beacon(event("page")), headers={**HEADERS, "X-Request-Id": "shop-42.a"})
    assert mine.status == 202 and mine.headers["X-Request-Id"] == "shop-42.a"
    unsafe = await client.post("/e", data=b"{", headers={**HEADERS, "X-Request-Id": "<script>"})
    made = await client.get("/sdk/demo.js")
    ids = [unsafe.headers["X-Request-Id"], made.headers["X-Request-Id"]]
    assert unsafe.status == 400 and made.status == 200
    assert all(re.fullmatch(r"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+", i) for i in ids) and ids[0] != ids[1]
    assert [after - was for after, was in zip(await counts(), before, strict=True)] == [1.0, 1.0, 1.0]


async def test_mixed_batch_keeps_valid_and_rejects_invalid_with_reasons(client: Any) -> None:
    good = event("obstacle", name="payment_declined", step="checkout.payment")
    bad = [
        event("step"),  # no step
        event("obstacle", step="cart"),  # no name
        {**event(), "id": "not-a-uuid", "step": "cart"},
        event("step", step="teleport"),
        event("nonsense", step="cart"),
        event("step", step="cart", ts=int(time.time() * 1000) - 8 * 86400 * 1000),
        event("step", step="cart", ts=int(time.time() * 1000) + 3600 * 1000),
    ]
    resp = await client.post("/e", data=beacon(good, *bad), headers=HEADERS)
    body = await resp.json()
    assert resp.status == 202
    assert body["accepted"] == 1 and body["rejected"] == len(bad)
    assert [e["error"] for e in body["errors"]] == [
        "step: missing",
        "name: missing",
        "id: not a UUID",
        "step: 'teleport' is not a step of site 'demo''s chain or after_purchase",
        "type: must be one of identify, obstacle, page, step, track",
        "ts: older than 7 days",
        "ts: in the future",
    ]
    assert [e["index"] for e in body["errors"]] == list(range(1, 8))
    assert [e["code"] for e in body["errors"]][-3:] == ["invalid", "too_old", "in_future"]
    await landed(client, "SELECT count() FROM events_rejected", [(7,)])
    assert ("unknown_step", "step") in await client.rows("SELECT code, field FROM events_rejected")
    reasons = await client.rows("SELECT reason, source FROM events_rejected ORDER BY reason")
    assert ("id: not a UUID", "e") in reasons
    assert await client.rows("SELECT name FROM events") == [("payment_declined",)]


async def test_tags_as_platforms_push_them_keep_the_purchase(client: Any) -> None:
    """Numbers sent as strings and ids sent as numbers are converted; a bad optional field costs only itself."""
    purchase = event("step", step="purchase", value="59.90", order_id=10432, uid=4711, currency="EUR",
                     props={"price": "49.90", "transaction_id": 10432.0, "coupon": None})
    junk = event("step", step="cart", value="abc", currency="E" * 300,
                 props={"nested": {"a": 1}, "ok": "yes"})
    resp = await client.post("/e", data=beacon(purchase, junk), headers=HEADERS)
    body = await resp.json()
    assert resp.status == 202 and body["accepted"] == 2 and body["rejected"] == 0 and body["errors"] == []
    assert sorted(d["error"].split(";")[0] for d in body["dropped"]) == [
        "currency: longer than 8 characters", "props.nested: not a string, number or boolean",
        "value: 'abc' is not an amount"]
    assert {(d["code"], d["field"]) for d in body["dropped"]} == {
        ("dropped", "currency"), ("dropped", "props.nested"), ("dropped", "value")}
    await landed(client, "SELECT count() FROM events", [(2,)])
    rows = await client.rows("SELECT step, value, order_id, user_id, currency, props FROM events ORDER BY step")
    assert rows == [("cart", None, "", "", "", {"ok": "yes"}),
                    ("purchase", 59.9, "10432", "4711", "EUR", {"price": "49.9", "transaction_id": "10432"})]
    kept = await landed(client, "SELECT count() FROM events_rejected", [(3,)])
    assert kept == [(3,)]
    (payload,) = (await client.rows("SELECT payload FROM events_rejected WHERE reason LIKE 'value:%'"))[0]
    assert orjson.loads(payload) == {"event_id": junk["id"], "field": "value", "value": "abc"}


# The stable code each refusal carries (chainlens/core/refusals.py), by a part of its message.
CODES = [("body must be", "bad_envelope"), ("events: missing", "bad_envelope"), ("unknown site", "unknown_site"),
         ("origin", "origin_refused"), ("Content-Type", "unsupported_type"),
         ("Content-Encoding", "unsupported_encoding")]


UNREADABLE = [
    (b"{not json", {}, 400, "body is not valid JSON"),
    (b"[1, 2]", {}, 400, "body must be a JSON object"),
    (b'{"site": "demo"}', {}, 400, "events: missing or not an array"),
    (beacon(event(step="cart"), site="elsewhere"), {}, 404, "unknown site 'elsewhere'"),
    (beacon(event(step="cart")), {"Origin": "https://evil.example"}, 403,
     "origin 'https://evil.example' is not allowed"),
    (beacon(event(step="cart")), {"Content-Type": "application/xml"}, 415, "unsupported Content-Type"),
    (beacon(event(step="cart")), {"Content-Encoding": "compress"}, 415, "unsupported Content-Encoding"),
    (b"x" * 70_000, {}, 413, "over the 65536-byte limit"),
    (gzip.compress(b" " * (3 << 20)), {"Content-Encoding": "gzip"}, 413, "decompresses past"),
    (b"\x1f\x8bnot gzip", {"Content-Encoding": "gzip"}, 400, "not valid gzip"),
    (gzip.compress(beacon(event(step="cart")))[:30], {"Content-Encoding": "gzip"}, 400, "not valid gzip"),
    (beacon(*[event(step="cart") for _ in range(501)]), {}, 413, "at most 500"),
    (beacon(event(step="cart", url="https://shop.example/é")).decode().encode("latin-1"), {}, 400,
     "str is not valid UTF-8"),
    (beacon(event(step="cart")).replace(b'"ts":', b'"ts":NaN,"x":'), {}, 400, "body is not valid JSON"),
    (beacon(event(step="cart")).replace(b'"ts":', b'"ts":1e99999,"x":'), {}, 400, "body is not valid JSON"),
    (beacon(event(step="cart")).replace(b'"cart"', b'"ca\x01rt"'), {}, 400, "body is not valid JSON"),
    (b"\xff\xfe\x00\xd8{\x00", {}, 400, "not valid UTF-16 text"),
]


@pytest.mark.parametrize(("body", "headers", "status", "message"), UNREADABLE,
                         ids=[f"{i}-{case[2]}" for i, case in enumerate(UNREADABLE)])
async def test_unreadable_requests_get_a_4xx_naming_the_problem_and_are_kept(
    client: Any, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    resp = await client.post("/e", data=body, headers={**HEADERS, **headers})
    assert resp.status == status
    answer = await resp.json()
    code = next((c for part, c in CODES if part in message), {413: "too_large"}.get(status, "bad_body"))
    assert message in answer["error"] and answer["code"] == code
    rows = await landed(client, "SELECT count() FROM events_rejected", [(1,)])
    assert rows == [(1,)]
    (reason, stored_code, detail) = (await client.rows("SELECT reason, code, detail FROM events_rejected"))[0]
    assert reason.startswith(f"{status}: ") and message in reason and stored_code == code
    assert detail == {"origin_refused": "https://evil.example", "unknown_site": "elsewhere"}.get(code, detail)
    assert await client.rows("SELECT count() FROM events") == [(0,)]


async def test_text_with_a_byte_order_mark_or_in_utf_16_is_read(client: Any) -> None:
    events = [event(step="cart", url="https://shop.example/caf\u00e9") for _ in range(3)]
    text = beacon(events[0]).decode()
    for body in (b"\xef\xbb\xbf" + text.encode(), beacon(events[1]).decode().encode("utf-16"),
                 beacon(events[2]).decode().encode("utf-16-le")):
        resp = await client.post("/e", data=body, headers=HEADERS)
        assert resp.status == 202 and (await resp.json())["accepted"] == 1
    ids = ", ".join(f"'{e['id']}'" for e in events)
    rows = await landed(client, f"SELECT count(), any(url) FROM events WHERE event_id IN ({ids})",
                        [(3, "https://shop.example/caf\u00e9")])
    assert rows == [(3, "https://shop.example/caf\u00e9")]


async def test_header_bytes_that_are_not_utf_8_get_a_4xx_not_a_500(client: Any) -> None:
    # A Latin-1 origin and user agent, byte for byte, as old proxies forward them.
    body = beacon(event(step="cart"))
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\n"
                 b"Origin: http://b\xfccher.example\r\nUser-Agent: Mozilla/5.0 \xe9\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    answer = await reader.read()
    writer.close()
    head, _, text = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 ")
    assert "http://b\ufffdcher.example" in orjson.loads(text)["error"]


async def test_body_over_the_limit_is_refused_without_reading_a_chunked_upload(client: Any) -> None:
    async def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 4096
    resp = await client.post("/e", data=chunks(), headers=HEADERS)
    assert resp.status == 413


async def test_gzip_and_application_json_are_accepted(client: Any) -> None:
    resp = await client.post("/e", data=gzip.compress(beacon(event(step="cart"), event(step="checkout.info"))),
                             headers={**HEADERS, "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert resp.status == 202 and (await resp.json())["accepted"] == 2
    await landed(client, "SELECT count() FROM events", [(2,)])


async def test_retried_event_ids_collapse(client: Any) -> None:
    ev = event(step="cart")
    for _ in range(3):
        assert (await client.post("/e", data=beacon(ev), headers=HEADERS)).status == 202
    await landed(client, "SELECT count(DISTINCT event_id) FROM events", [(1,)])
    await wait_for(lambda: _loaded_all(client, 3))
    assert await client.rows("SELECT count() FROM events FINAL") == [(1,)]


async def _loaded_all(client: Any, n: int) -> bool:
    status = await (await client.get("/readyz")).json()
    return status["backlog_bytes"] == 0


async def test_client_clock_skew_is_corrected_beyond_two_seconds(client: Any) -> None:
    now = int(time.time() * 1000)
    hour = 3600 * 1000
    slow_clock = {"site": "demo", "sent_at": now - hour, "events": [event(step="cart", ts=now - hour - 500, sid="a")]}
    small_skew = {"site": "demo", "sent_at": now - 1500, "events": [event(step="cart", ts=now - 1600, sid="b")]}
    for body in (slow_clock, small_skew):
        assert (await client.post("/e", data=orjson.dumps(body), headers=HEADERS)).status == 202
    await landed(client, "SELECT count() FROM events", [(2,)])
    rows = dict(await client.rows("SELECT session_id, toUnixTimestamp64Milli(ts) - toUnixTimestamp64Milli(client_ts) "
                                  "FROM events"))
    assert abs(rows["a"] - hour) < 5_000  # shifted by the client's skew
    assert rows["b"] == 0  # within 2 s: kept as sent


async def test_cors_preflight_allows_site_origins_only(client: Any) -> None:
    ok = await client.options("/e", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert ok.status == 204
    assert ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Content-Encoding" in ok.headers["Access-Control-Allow-Headers"]
    bad = await client.options("/e", headers={"Origin": "https://evil.example",
                                              "Access-Control-Request-Method": "POST"})
    assert bad.status == 403
    assert "Access-Control-Allow-Origin" not in bad.headers
    post = await client.post("/e", data=beacon(event(step="cart")), headers=HEADERS)
    assert post.headers["Access-Control-Allow-Origin"] == ORIGIN


async def test_server_to_server_needs_the_site_secret(client: Any) -> None:
    body = beacon(event("track", name="delivered", order_id="o-1"))
    missing = await client.post("/s2s", data=body, headers={"Content-Type": "application/json"})
    wrong = await client.post("/s2s", data=body, headers={"Authorization": "Bearer nope", **JSON})
    assert missing.status == wrong.status == 401
    assert "Bearer" in (await wrong.json())["error"]
    ok = await client.post("/s2s", data=body, headers={"Authorization": "Bearer s3cret", **JSON})
    assert ok.status == 202
    await landed(client, "SELECT name FROM events", [("delivered",)])
    assert await client.rows("SELECT source FROM events_rejected") == [("s2s",), ("s2s",)]


async def test_post_purchase_reports_are_linked_by_order_and_bad_ones_are_named(client: Any) -> None:
    auth = {"Authorization": "Bearer s3cret", **JSON}
    old = int(time.time() * 1000) - 90 * 86_400_000  # a return three months after the purchase
    good = [{"id": str(uuid.uuid4()), "type": "step", "step": "shipped", "order_id": 10432, "ts": old,
             "props": {"carrier": "DHL", "promised_by": "2026-03-02"}},
            {"id": str(uuid.uuid4()), "type": "step", "step": "returned", "order_id": "o-7",
             "ts": int(time.time() * 1000), "props": {"reason": "too small"}},
            {"id": str(uuid.uuid4()), "type": "track", "name": "feedback", "order_id": "o-7",
             "ts": int(time.time() * 1000), "props": {"score": "9", "asked_at": "delivery"}}]
    bad = [{"id": str(uuid.uuid4()), "type": "step", "step": "delivered", "ts": int(time.time() * 1000)},
           {"id": str(uuid.uuid4()), "type": "step", "step": "shipped", "order_id": "o-8",
            "ts": int(time.time() * 1000), "props": {"promised_by": "next tuesday"}},
           {"id": str(uuid.uuid4()), "type": "track", "name": "feedback", "order_id": "o-8",
            "ts": int(time.time() * 1000), "props": {"score": 11}}]
    resp = await client.post("/s2s", data=orjson.dumps({"site": "demo", "events": good + bad}), headers=auth)
    assert resp.status == 202
    answer = await resp.json()
    assert (answer["accepted"], answer["rejected"]) == (3, 3)
    assert [e["error"] for e in answer["errors"]] == [
        "order_id: missing: a back-office event names its order (or its session in sid)",
        "props.promised_by: not a date, a date and time (ISO 8601) or epoch milliseconds",
        "props.score: must be a whole number from 0 to 10"]
    # Sent by a script, yet no bot: the back office's reports count.
    await landed(client, "SELECT session_id, step, order_id, is_bot FROM events ORDER BY session_id, step DESC",
                 [("order:10432", "shipped", "10432", False), ("order:o-7", "returned", "o-7", False),
                  ("order:o-7", "", "o-7", False)])
    assert len(await client.rows("SELECT reason FROM events_rejected WHERE source = 's2s'")) == 3
    # From the browser, a report about an order is held to the 7-day limit; an unknown site is a 404.
    browser = await client.post("/e", data=beacon({**good[0], "sid": "s-1"}), headers=HEADERS)
    assert (await browser.json())["errors"][0]["error"] == "ts: older than 7 days"
    unknown = await client.post("/s2s", data=orjson.dumps({"site": "nope", "events": good}), headers=auth)
    assert unknown.status == 404 and "unknown site" in (await unknown.json())["error"]


async def test_risk_moments_and_outcomes_are_checked(client: Any) -> None:
    good = [event("track", name="intervention", step="checkout.shipping",
                  props={"trigger": "idle", "arm": "holdout"}),
            event("track", name="intervention_outcome", step="checkout.shipping",
                  props={"outcome": "accepted", "offer": "FREESHIP", "cost": "4.95"})]
    bad = [event("track", name="intervention", props={"trigger": "idle", "arm": "control"}),
           event("track", name="intervention", props={"trigger": "wiggle", "arm": "holdout"}),
           event("track", name="intervention_outcome", props={"outcome": "maybe"})]
    answer = await (await client.post("/e", data=beacon(*good, *bad), headers=HEADERS)).json()
    assert (answer["accepted"], answer["rejected"]) == (2, 3)
    assert [e["error"] for e in answer["errors"]] == [
        "props.arm: must be one of treatment, holdout",
        "props.trigger: must be one of exit_intent, idle, return_after_hide",
        "props.outcome: must be one of accepted, dismissed"]


async def test_health_and_readiness(client: Any) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["store_ok"] is True


async def test_rate_limit_answers_429_with_retry_after(aiohttp_client: Any, tmp_path: Any) -> None:
    from chainlens.core.loading import from_mapping
    from tests.conftest import make_config
    settings = from_mapping(make_config(tmp_path, collector={"rate_limit_rps": 2.0}))
    client = await aiohttp_client(single_process_app(settings),
                                  server_kwargs=SERVER_OPTIONS)
    statuses = [(await client.post("/e", data=beacon(event(step="cart")), headers=HEADERS)) for _ in range(8)]
    codes = [r.status for r in statuses]
    assert codes[:4] == [202] * 4  # the burst
    limited = [r for r in statuses if r.status == 429]
    assert limited and limited[0].headers["Retry-After"] == "1"
    assert (await limited[0].json())["error"] == "rate limit exceeded"


async def test_oversized_headers_get_a_4xx_not_a_crash(client: Any) -> None:
    resp = await client.post("/e", data=beacon(event(step="cart")), headers={**HEADERS, "X-Junk": "x" * 10_000})
    assert 400 <= resp.status < 500
    assert (await client.get("/healthz")).status == 200


async def test_cookieless_sites_get_a_daily_salted_visitor_key(aiohttp_client: Any, tmp_path: Any) -> None:
    from chainlens.core.loading import from_mapping
    from tests.conftest import make_config, site_config
    settings = from_mapping(make_config(tmp_path, sites=[site_config(cookieless=True)]))
    runner = StoreRunner(settings.store.dsn)
    client = await aiohttp_client(single_process_app(settings, runner=runner), server_kwargs=SERVER_OPTIONS)
    for sid in ("page-1", "page-2"):  # two page loads: the snippet's identifiers differ
        resp = await client.post("/e", data=beacon(event(step="cart", sid=sid, aid=sid)), headers=HEADERS)
        assert resp.status == 202
    other = {**HEADERS, "User-Agent": MOBILE_UA}
    assert (await client.post("/e", data=beacon(event(step="cart", sid="x")), headers=other)).status == 202

    async def keys() -> list[tuple]:
        return await runner.call(lambda c: c.query(
            "SELECT session_id, anon_id, count() FROM events GROUP BY session_id, anon_id ORDER BY 3 DESC").result_rows)
    await wait_for(lambda: _has(keys, 2))
    rows = await keys()
    assert [r[2] for r in rows] == [2, 1]  # one visitor's two pages share a key; another browser differs
    assert all(r[0] == r[1] and len(r[0]) == 32 and "127.0.0.1" not in r[0] for r in rows)
    assert len(list((tmp_path / "spool" / "salts").iterdir())) == 1


async def _has(query: Any, n: int) -> bool:
    return len(await query()) == n


async def test_ecommerce_items_keep_their_count_ids_names_and_fast_track_fields(client: Any) -> None:
    items = [{"item_id": 42, "item_name": "Trail shoe", "price": "49.90", "in_stock": True, "ship_days": 2},
             *({"item_id": f"sku-{i}", "item_name": f"Item {i}"} for i in range(11))]
    e = event("track", name="view_item", props={"items": items, "value": "49.90"})
    resp = await client.post("/e", data=beacon(e), headers=HEADERS)
    assert resp.status == 202 and (await resp.json())["accepted"] == 1
    rows = await landed(client, f"SELECT step, props FROM events WHERE event_id = '{e['id']}'",
                        [("select", {"value": "49.9", "items": "12",
                                     "item_list": orjson.dumps([["42", "Trail shoe"]] + [
                                         [f"sku-{i}", f"Item {i}"] for i in range(9)]).decode(),
                                     "item_amounts": orjson.dumps([[49.9, 1.0]] + [[None, 1.0]] * 9).decode(),
                                     "in_stock": "true", "ship_days": "2"})])
    assert rows[0][0] == "select"  # view_item is the product view: Fast Track counts it


async def test_status_gives_each_refusal_its_fix_by_code(client: Any, settings: Any) -> None:
    await client.post("/e", data=beacon(event(step="cart")), headers={**HEADERS, "Origin": "https://www.shop.example"})
    await client.post("/e", data=beacon(event(step="cart", value="abc")), headers=HEADERS)
    await landed(client, "SELECT count() FROM events_rejected", [(2,)])
    state = await client.runner.call(lambda c: live_state(c, settings, settings.site("demo")))
    by_code = {r["code"]: r for r in state["refused_30m"]}
    assert by_code["origin_refused"]["fix"].startswith(
        "origin https://www.shop.example is not in sites.origins of site demo: add it to ")
    assert by_code["dropped"]["field"] == "value"
    text = live_text(state)
    assert "LEFT OUT 1× " in text and "REFUSED 1× " in text and "value: 'abc' is not an amount" in text


async def test_money_as_shops_format_it_is_read_or_named(client: Any) -> None:
    """A purchase's value pushed for display ("1,299.00", "€ 59,90") is read; one that reads two ways
    ("1,299") is not guessed: the order is stored without it and the drop is answered and kept."""
    sent = {"1,299.00": (1299.0, "USD"), "1.299,00": (1299.0, "USD"), "€ 59,90": (59.9, "EUR"),
            "59.90 EUR": (59.9, "EUR"), "1,299": (None, "USD"), "abc": (None, "USD")}
    events = [event("step", step="purchase", sid=f"s-{i}", props={"value": text, "order_id": f"o-{i}",
                                                                    **({} if "EUR" in text or "€" in text
                                                                       else {"currency": "USD"})})
              for i, text in enumerate(sent)]
    resp = await client.post("/e", data=beacon(*events), headers=HEADERS)
    body = await resp.json()
    assert resp.status == 202 and body["accepted"] == len(sent)
    assert sorted((d["index"], d["field"], d["code"]) for d in body["dropped"]) == [
        (4, "props.value", "dropped"), (5, "props.value", "dropped")]
    assert "ambiguous" in body["dropped"][0]["error"]
    await landed(client, "SELECT count() FROM events", [(len(sent),)])
    stored = await client.rows("SELECT order_id, value, currency FROM events ORDER BY order_id")
    assert stored == [(f"o-{i}", value, currency) for i, (value, currency) in enumerate(sent.values())]
    kept = [("props.value", "dropped")] * 2
    assert await landed(client, "SELECT field, code FROM events_rejected ORDER BY field", kept) == kept


async def test_the_live_counts_leave_imported_history_out(client: Any, settings: Any) -> None:
    site = settings.site("demo")
    old = int(time.time() * 1000) - 3 * 86_400_000
    history = [orjson.dumps(event(step="cart", sid=f"h-{i}", ts=old)) for i in range(5)]
    await client.runner.call(lambda c: import_lines(c, history, site=site))
    assert (await client.post("/e", data=beacon(event(step="cart")), headers=HEADERS)).status == 202
    await landed(client, "SELECT source, count() FROM events GROUP BY source ORDER BY source",
                 [("e", 1), ("import", 5)])
    state = await client.runner.call(lambda c: live_state(c, settings, site))
    assert (state["events_5m"], state["events_30m"]) == (1, 1)
