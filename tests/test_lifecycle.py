"""Forget, export and retention (docs/privacy.md) over real HTTP, on an embedded store per test:
no trace of the person in any column of any table, the daily tables equal a recompute without
them, and every other shopper's event kept, including those accepted during the forget."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from chainlens.core.loading import from_mapping
from chainlens.one_process import single_process_app
from collector.app import SERVER_OPTIONS
from ingestion import lifecycle
from ingestion.imports import import_lines
from ingestion.rollup import rollup
from ingestion.runner import StoreRunner
from ingestion.tables import TABLES
from tests.conftest import BROWSER_UA, MOBILE_UA, ORIGIN, beacon, event, make_config, site_config, wait_for

pytestmark = pytest.mark.slow  # 60-odd shoppers over real HTTP, rolled up, per test

HEADERS = {"Content-Type": "text/plain", "Origin": ORIGIN, "User-Agent": BROWSER_UA}
SECRET = {"Authorization": "Bearer s3cret", "Content-Type": "application/json"}
H = 3_600_000
USER, PHONE, LAPTOP = "user-fgt-7f3a", "anon-fgt-phone", "anon-fgt-laptop"
ORDER = "ord-fgt-1"


def walk(sid: str, aid: str, start: int, *, buy: str = "", uid: str = "", ua: str = "") -> list[dict[str, Any]]:
    """One session as the snippet sends it: discover → select → cart → checkout, a purchase."""
    steps = ["discover", "select", "cart", "checkout.info", "checkout.shipping"] + (["purchase"] if buy else [])
    out = [event("page" if i % 2 == 0 else "step", step=step, ts=start + i * 60_000, sid=sid, aid=aid,
                 url=f"https://shop.example/{step}") for i, step in enumerate(steps)]
    if buy:
        out[-1].update(order_id=buy, value=42.5, currency="EUR")
    if uid:
        out.append(event("identify", ts=start + 30_000, sid=sid, aid=aid, uid=uid))
    return out


def crowd(n: int, start: int, seed: int) -> list[list[dict[str, Any]]]:
    """Other shoppers: sessions with and without orders, over a day and a half."""
    rng = random.Random(seed)
    return [walk(f"s-{seed}-{i}", f"a-{seed}-{i % (n // 2)}", start + rng.randint(0, 36 * H),
                 buy=f"o-{seed}-{i}" if rng.random() < 0.3 else "") for i in range(n)]


def settings_for(tmp: Path, **site: Any) -> Any:
    return from_mapping(make_config(tmp, sites=[site_config(**site)]), source="test")


@pytest.fixture
async def shop(aiohttp_client: Any, tmp_path: Path) -> Any:
    settings = settings_for(tmp_path)
    runner = StoreRunner(settings.store.dsn)
    cli = await aiohttp_client(single_process_app(settings, runner=runner), server_kwargs=SERVER_OPTIONS)

    async def rows(query: str, **params: Any) -> list[tuple]:
        return await runner.call(lambda c: c.query(query, parameters=params).result_rows)

    async def send(sessions: list[list[dict[str, Any]]], ua: str = BROWSER_UA) -> set[str]:
        for events in sessions:
            resp = await cli.post("/e", data=beacon(*events), headers={**HEADERS, "User-Agent": ua})
            assert resp.status == 202, await resp.text()
        return {e["id"] for events in sessions for e in events}

    cli.rows, cli.runner, cli.send, cli.settings = rows, runner, send, settings
    return cli


async def person_and_crowd(shop: Any) -> tuple[set[str], set[str]]:
    """The person (two devices, one identified order with its back-office reports and answer, a
    refused event, a dropped field) among 60 other shoppers; all rolled up."""
    start = int(time.time() * 1000) - 40 * H
    mine = await shop.send([walk("sess-fgt-laptop", LAPTOP, start + 2 * H, buy=ORDER, uid=USER),
                            walk("sess-fgt-again", LAPTOP, start + 20 * H)])
    mine |= await shop.send([walk("sess-fgt-phone", PHONE, start + 5 * H, uid=USER)], ua=MOBILE_UA)
    bad = event("step", step="checkout.info", ts=start + 2 * H, sid="sess-fgt-laptop", aid=LAPTOP, value="abc")
    # (stored without its value, the drop kept)
    dropped = event("step", step="cart", ts=start + 2 * H + 1000, sid="sess-fgt-laptop", aid=LAPTOP,
                    props={"value": "1,299"})  # unreadable: stored without it, the drop kept
    refused = event("step", step="nowhere", ts=start + 2 * H, sid="sess-fgt-phone", aid=PHONE)
    resp = await shop.post("/e", data=beacon(bad, dropped, refused), headers=HEADERS)
    assert resp.status == 202
    mine |= {bad["id"], dropped["id"]}
    reports = [{"id": str(uuid.uuid4()), "type": "step", "step": "shipped", "order_id": ORDER, "ts": start + 8 * H},
               {"id": str(uuid.uuid4()), "type": "step", "step": "delivered", "order_id": ORDER, "ts": start + 30 * H},
               {"id": str(uuid.uuid4()), "type": "track", "name": "feedback", "order_id": ORDER,
                "ts": start + 31 * H, "props": {"score": 3}}]
    resp = await shop.post("/s2s", data=beacon(*reports), headers={**SECRET, "Content-Type": "text/plain"})
    assert resp.status == 202, await resp.text()
    mine |= {r["id"] for r in reports}
    others = await shop.send(crowd(60, start, seed=1))
    total = len(mine) + len(others)
    await wait_for(lambda: _count(shop, "SELECT count() FROM events", total), what=f"every event loaded ({total})")
    await wait_for(lambda: _count(shop, "SELECT count() FROM events_rejected", 3), what="refusals kept")
    await shop.runner.call(rollup, shop.settings)
    return mine, others


async def _count(shop: Any, query: str, n: int) -> bool:
    return (await shop.rows(query))[0][0] == n


async def traces(shop: Any, ids: list[str]) -> dict[str, int]:
    """Rows of every table of the store that name any of `ids`, in any column."""
    tables = [r[0] for r in await shop.rows("SELECT name FROM system.tables WHERE database = currentDatabase()")]
    found = {}
    for table in tables:
        (n,) = (await shop.rows(f"SELECT count() FROM {table} WHERE "
                                "multiSearchAny(formatRowNoNewline('JSONEachRow', *), {ids:Array(String)})",
                                ids=ids))[0]
        if n:
            found[table] = n
    return found


DAILY = [t.name for t in TABLES if t.name not in ("chain_sessions", "chain_orders")]


async def daily_tables(shop: Any) -> dict[str, list[tuple]]:
    return {t: sorted(map(repr, await shop.rows(f"SELECT * FROM {t}"))) for t in DAILY}


async def test_forget_a_user_leaves_no_trace_and_the_tables_equal_a_recompute(shop: Any) -> None:
    mine, others = await person_and_crowd(shop)
    ids = [USER, PHONE, LAPTOP, "sess-fgt-laptop", "sess-fgt-again", "sess-fgt-phone", ORDER]
    assert set(await traces(shop, ids)) >= {"events", "order_events", "events_rejected", "chain_sessions",
                                            "chain_orders"}
    counted = await daily_tables(shop)

    # A dry run says what would go, and removes nothing.
    resp = await shop.post("/forget", data=orjson.dumps({"site": "demo", "user": USER, "dry_run": True}),
                           headers=SECRET)
    dry = await resp.json()
    assert resp.status == 200 and dry["dry_run"] and dry["sessions"] == 3 and dry["orders"] == 1
    # (order_events: the purchase and the back office's three reports about it)
    assert dry["rows"] == {"events": len(mine), "order_events": 4, "events_rejected": 3, "chain_sessions": 3,
                           "chain_orders": 1, "customers": 1}
    assert (await shop.rows("SELECT count() FROM events"))[0][0] == len(mine) + len(others)

    # Without the site's secret: refused.
    resp = await shop.post("/forget", data=orjson.dumps({"site": "demo", "user": USER}),
                           headers={"Content-Type": "application/json"})
    assert resp.status == 401 and (await resp.json())["code"] == "unauthorized"

    # The forget, while other shoppers' beacons keep arriving.
    later = crowd(20, int(time.time() * 1000) - 40 * H, seed=2)
    forgetting = asyncio.create_task(shop.post("/forget", data=orjson.dumps({"site": "demo", "user": USER}),
                                               headers=SECRET))
    during = await shop.send(later)
    resp = await forgetting
    done = await resp.json()
    assert resp.status == 200, done
    assert done["rows"] == dry["rows"] and done["days_rebuilt"] >= 2 and USER not in orjson.dumps(done).decode()
    kept = others | during
    await wait_for(lambda: _count(shop, "SELECT count() FROM events", len(kept)), what="the others' events")
    stored = {r[0] for r in await shop.rows("SELECT toString(event_id) FROM events")}
    assert stored == kept  # every other shopper's event, those accepted during the forget too

    assert await traces(shop, ids) == {}  # in no column of any table, staging copies included
    (log,) = await shop.rows("SELECT what, key_hash, rows_removed FROM forget_log")
    assert log[0] == "user" and log[1] == lifecycle.key_hash(shop.settings.sites[0], "user", USER) != USER
    assert log[2] == dry["rows"]

    # The daily tables equal a recompute from what is left (and no longer what counted them).
    # What arrived during the forget may have been loaded after it rebuilt its days: a pass
    # takes it in first, as the next scheduled one would.
    await shop.runner.call(rollup, shop.settings)
    after = await daily_tables(shop)
    assert after["chain_daily"] != counted["chain_daily"] and after["fulfillment_daily"] != counted["fulfillment_daily"]
    await shop.runner.call(rollup, shop.settings, since=dt.date.today() - dt.timedelta(days=3))
    assert await daily_tables(shop) == after

    # Asked again: nothing more goes, and nothing changes.
    resp = await shop.post("/forget", data=orjson.dumps({"site": "demo", "user": USER}), headers=SECRET)
    again = await resp.json()
    assert resp.status == 200 and set(again["rows"].values()) == {0}
    assert await daily_tables(shop) == after


@pytest.mark.parametrize("kind, key, gone, stays", [
    ("visitor", PHONE, ["sess-fgt-phone", PHONE], ["sess-fgt-laptop", ORDER]),
    ("order", ORDER, ["sess-fgt-laptop", ORDER], ["sess-fgt-again", "sess-fgt-phone"]),
])
async def test_forget_a_visitor_or_an_order(shop: Any, kind: str, key: str, gone: list[str],
                                            stays: list[str]) -> None:
    await person_and_crowd(shop)
    resp = await shop.post("/forget", data=orjson.dumps({"site": "demo", kind: key}), headers=SECRET)
    assert resp.status == 200, await resp.text()
    assert await traces(shop, gone) == {}
    assert set(await traces(shop, stays)) >= {"events", "chain_sessions"}
    after = await daily_tables(shop)
    await shop.runner.call(rollup, shop.settings, since=dt.date.today() - dt.timedelta(days=3))
    assert await daily_tables(shop) == after


async def test_export_holds_everything_stored_about_the_person(shop: Any) -> None:
    mine, _ = await person_and_crowd(shop)
    site = shop.settings.sites[0]
    lines = await shop.runner.call(lambda c: list(lifecycle.export(c, site, "user", USER)))
    by_table: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_table.setdefault(line["table"], []).append(line["row"])
    assert set(by_table) == {"events", "events_rejected", "chain_sessions", "chain_orders", "customers"}  # no copy
    assert {str(r["event_id"]) for r in by_table["events"]} == mine
    assert {r["session_id"] for r in by_table["chain_sessions"]} == {"sess-fgt-laptop", "sess-fgt-again",
                                                                      "sess-fgt-phone"}
    (order,) = by_table["chain_orders"]
    assert order["order_id"] == ORDER and order["delivered_at"] is not None and order["score"] == 3
    assert len(by_table["events_rejected"]) == 3
    # Another shopper's rows are not in it.
    assert not any(r["session_id"].startswith("s-1-") for r in by_table["events"])
    orjson.dumps(lines, default=str)  # each line is JSON as `chainlens export` writes it


async def test_retention_removes_old_rows_and_keeps_the_daily_tables(aiohttp_client: Any, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    runner = StoreRunner(settings.store.dsn)
    cli = await aiohttp_client(single_process_app(settings, runner=runner), server_kwargs=SERVER_OPTIONS)
    now = int(time.time() * 1000)
    old = crowd(30, now - 20 * 24 * H, seed=3)  # 20 days ago, sent by the back office's import path
    lines = [orjson.dumps({**e, "ua": BROWSER_UA}) for s in old for e in s]
    await runner.call(import_lines, lines, site=settings.sites[0])
    recent = crowd(30, now - 40 * H, seed=4)
    for events in recent:
        assert (await cli.post("/e", data=beacon(*events), headers=HEADERS)).status == 202
    total = sum(map(len, old + recent))

    async def loaded() -> bool:
        return (await runner.call(lambda c: c.query("SELECT count() FROM events").result_rows))[0][0] == total
    await wait_for(loaded)
    await runner.call(rollup, settings)

    def snap(c: Any) -> dict[str, list[str]]:
        return {t: sorted(map(repr, c.query(f"SELECT * FROM {t}").result_rows)) for t in DAILY}
    before = await runner.call(snap)
    # Raw events kept 10 days: the old ones go, their sessions stay (chain_sessions keeps them).
    kept = dataclasses.replace(settings.sites[0], keep_raw_days=10)
    removed = await runner.call(lifecycle.expire, kept, now=dt.datetime.now(dt.UTC))
    assert removed == {"events": sum(map(len, old)), "order_events": sum(1 for s in old if s[-1].get("order_id"))}
    (first,) = await runner.call(lambda c: c.query("SELECT min(ts) FROM events").result_rows[0])
    assert first.replace(tzinfo=dt.UTC) > dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    # A rollup over the old days, as `chainlens rollup --since` asks, leaves their daily rows as
    # they were (it would have rebuilt them from no events at all).
    await runner.call(rollup, dataclasses.replace(settings, sites=(kept,)),
                      since=dt.date.today() - dt.timedelta(days=25))
    assert await runner.call(snap) == before
    # Sessions kept 14 days: the old sessions go too; the daily tables still stay.
    kept = dataclasses.replace(kept, keep_sessions_days=14)
    removed = await runner.call(lifecycle.expire, kept, now=dt.datetime.now(dt.UTC))
    assert removed["chain_sessions"] == 30 and removed["chain_orders"] > 0
    assert (await runner.call(lambda c: c.query("SELECT count() FROM chain_sessions").result_rows))[0][0] == 30
    assert await runner.call(snap) == before
