"""Early warnings: a jump at one step raises exactly that alert; steady traffic raises none."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from chainlens.core.settings import from_mapping
from chainlens.shoppers import ShopperModel
from ingestion import store
from ingestion.alerts import deliver, evaluate, z_score
from ingestion.imports import import_lines
from ingestion.rollup import rollup
from tests.conftest import make_config, site_config

DAY = 86_400_000


def filled_store(tmp: Path, *, jump: bool, seed: int) -> tuple[Any, Any]:
    settings = from_mapping(make_config(tmp, sites=[site_config()]))
    client = store.connect(settings.store.dsn)
    store.ensure_schema(client)
    now = int(time.time() * 1000)
    today = dt.datetime.fromtimestamp(now / 1000, dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = int(today.timestamp() * 1000) - 7 * DAY
    model = ShopperModel(seed=seed, change_at_ms=int(today.timestamp() * 1000) - DAY if jump else None)
    sessions = model.sessions(start_ms=start, end_ms=int(today.timestamp() * 1000), count=5000)
    import_lines(client, [orjson.dumps(e) for s in sessions for e in s.events], site=settings.sites[0])
    rollup(client, settings)
    return settings, client


def test_z_score_matches_the_two_proportion_formula() -> None:
    # 30/100 vs 20/200: pooled 50/300.
    pooled = 50 / 300
    expected = (0.3 - 0.1) / (pooled * (1 - pooled) * (1 / 100 + 1 / 200)) ** 0.5
    assert z_score(30, 100, 20, 200) == pytest.approx(expected)


def test_a_jump_at_one_step_raises_exactly_that_alert_once(tmp_path: Path) -> None:
    settings, client = filled_store(tmp_path, jump=True, seed=11)
    found = evaluate(client, settings.sites[0])
    assert [a.step for a in found] == ["checkout.shipping"]
    alert = found[0]
    assert alert.current_rate > alert.baseline_rate and alert.z >= 3
    assert "checkout.shipping" in alert.message
    assert evaluate(client, settings.sites[0]) == []  # the same window is not alerted twice
    assert client.query("SELECT count() FROM alerts FINAL").result_rows == [(1,)]
    client.close()


def test_steady_traffic_raises_no_alert(tmp_path: Path) -> None:
    settings, client = filled_store(tmp_path, jump=False, seed=12)
    assert evaluate(client, settings.sites[0]) == []
    client.close()


async def test_the_webhook_receives_the_payload_with_retries(aiohttp_server: Any, tmp_path: Path) -> None:
    received: list[dict[str, Any]] = []
    calls = [0]

    async def hook(request: web.Request) -> web.Response:
        calls[0] += 1
        if calls[0] == 1:
            return web.Response(status=503)  # the first attempt fails: retried
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    settings, client = await asyncio.to_thread(filled_store, tmp_path, jump=True, seed=11)
    found = await asyncio.to_thread(evaluate, client, settings.sites[0])
    assert await deliver(found, str(server.make_url("/hook")))
    assert calls[0] == 2
    (payload,) = received
    assert payload["alerts"][0]["step"] == "checkout.shipping"
    assert set(payload["alerts"][0]) >= {"site_id", "window_start", "window_end", "baseline_rate", "current_rate",
                                         "reached", "z", "message"}
    client.close()
