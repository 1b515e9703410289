"""Early warnings: a jump at one step raises exactly that alert; steady traffic raises none."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from chainlens.core.loading import from_mapping
from chainlens.demo.run import demo_config, demo_sessions
from chainlens.demo.shoppers import ShopperModel
from ingestion import store
from ingestion.alerts import deliver, evaluate, z_score
from ingestion.imports import import_lines
from ingestion.rollup import rollup
from tests.conftest import make_config, site_config

DAY = 86_400_000
H = 3_600_000


def alert_store(tmp: Path) -> tuple[Any, Any]:
    """A new store for one site whose alerts compare with a week's baseline, and its settings."""
    settings = from_mapping(make_config(tmp, sites=[site_config(alerts={"baseline_days": 7})]))
    client = store.connect(settings.store.dsn)
    store.ensure_schema(client)
    return settings, client


def filled_store(tmp: Path, *, now: dt.datetime, jump_hours: float | None, seed: int) -> tuple[Any, Any]:
    """Eight days of the shopper model up to `now`; the shipping cost jumps `jump_hours` before it."""
    settings, client = alert_store(tmp)
    end = int(now.timestamp() * 1000)
    model = ShopperModel(seed=seed, change_at_ms=None if jump_hours is None else end - int(jump_hours * H))
    sessions = model.sessions(start_ms=end - 8 * DAY, end_ms=end, count=8 * 1500)
    lines = [orjson.dumps({**e, "ua": s.user_agent}) for s in sessions for e in s.events]
    import_lines(client, lines, site=settings.sites[0])
    rollup(client, settings, now=now)
    return settings, client


def at(hour: int) -> dt.datetime:
    """Yesterday at `hour` (UTC, the test site's time zone): every hour of the day has its turn."""
    day = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
    return day + dt.timedelta(hours=hour, minutes=20)


def opened(found: list[Any]) -> set[tuple[str, str, str]]:
    return {(a.step, a.device, a.kind) for a in found if a.state == "open"}


def test_z_score_matches_the_two_proportion_formula() -> None:
    # 30/100 vs 20/200: pooled 50/300.
    pooled = 50 / 300
    expected = (0.3 - 0.1) / (pooled * (1 - pooled) * (1 / 100 + 1 / 200)) ** 0.5
    assert z_score(30, 100, 20, 200) == pytest.approx(expected)


@pytest.mark.slow  # days of simulated hourly traffic: `make test`, not the fast loop
@pytest.mark.parametrize("hour", [1, 7, 13, 19])
def test_a_jump_is_caught_within_hours_at_any_hour_of_the_day(tmp_path: Path, hour: int) -> None:
    now = at(hour)
    settings, client = filled_store(tmp_path, now=now, jump_hours=12, seed=11 + hour)
    site = settings.sites[0]
    found = evaluate(client, site, now=now, timeout_s=settings.rollup.session_timeout_s)
    assert ("checkout.shipping", "all", "abandonment") in opened(found), [a.message for a in found]
    assert {step for step, _, kind in opened(found) if kind == "abandonment"} == {"checkout.shipping"}
    alert = next(a for a in found if a.step == "checkout.shipping" and a.device == "all")
    assert alert.current_rate > alert.baseline_rate + 0.05 and alert.z >= 3.5
    assert alert.window_hours in site.alerts.window_hours
    # Once per episode: the next pass does not raise it again.
    later = now + dt.timedelta(minutes=5)
    assert not opened(evaluate(client, site, now=later, timeout_s=settings.rollup.session_timeout_s))
    client.close()


@pytest.mark.slow
def test_steady_traffic_raises_no_alert(tmp_path: Path) -> None:
    now = at(10)
    settings, client = filled_store(tmp_path, now=now, jump_hours=None, seed=12)
    for minutes in (0, 180, 360):  # three passes over the day (the data ends at `now`)
        assert evaluate(client, settings.sites[0], now=now - dt.timedelta(minutes=minutes),
                        timeout_s=settings.rollup.session_timeout_s) == []
    client.close()


def hourly(client: Any, hours: list[dt.datetime], *, reached: int, abandoned: int) -> None:
    client.insert("checkout_hourly", [["demo", h.date(), h.replace(tzinfo=None), "checkout.shipping", "all",
                                       reached, abandoned] for h in hours],
                  column_names=["site_id", "day", "hour", "step", "device", "reached", "abandoned"])


def abandonment_jumped(client: Any, now: dt.datetime) -> dt.datetime:
    """A week of hours at 20% abandonment at checkout.shipping, the last six of them at 65%, all
    before the hour half an hour before `now`, which it returns."""
    end = (now - dt.timedelta(minutes=30)).replace(minute=0)
    past = [end - dt.timedelta(hours=i) for i in range(1, 8 * 24)]
    hourly(client, [h for h in past if h < end - dt.timedelta(hours=6)], reached=20, abandoned=4)
    hourly(client, [h for h in past if h >= end - dt.timedelta(hours=6)], reached=20, abandoned=13)
    return end


def test_an_episode_opens_once_and_resolves_when_the_step_is_back_to_normal(tmp_path: Path) -> None:
    settings, client = alert_store(tmp_path)
    site, now = settings.sites[0], at(12)
    end = abandonment_jumped(client, now)
    found = evaluate(client, site, now=now, timeout_s=1800)
    assert ("checkout.shipping", "all", "abandonment") in opened(found)
    # Seven hours on, the step is back to 20%: the short windows' episodes resolve, once each.
    later = now + dt.timedelta(hours=7)
    hourly(client, [end + dt.timedelta(hours=i) for i in range(0, 7)], reached=20, abandoned=4)
    resolved = [a for a in evaluate(client, site, now=later, timeout_s=1800) if a.state == "resolved"]
    # The 3- and 6-hour windows now hold only normal hours; the 24-hour one still holds the bad ones.
    assert sorted((a.step, a.kind, a.window_hours) for a in resolved) == [
        ("checkout.shipping", "abandonment", 3), ("checkout.shipping", "abandonment", 6)]
    assert "back to normal" in resolved[0].message
    assert not [a for a in evaluate(client, site, now=later, timeout_s=1800) if a.state == "resolved"]
    client.close()


def test_a_step_that_nobody_reaches_any_more_is_an_alert(tmp_path: Path) -> None:
    settings, client = alert_store(tmp_path)
    now = at(9)
    end = (now - dt.timedelta(minutes=30)).replace(minute=0)
    past = [end - dt.timedelta(hours=i) for i in range(1, 8 * 24)]
    hourly(client, [h for h in past if h < end - dt.timedelta(hours=6)], reached=20, abandoned=4)
    hourly(client, [h for h in past if h >= end - dt.timedelta(hours=6)], reached=1, abandoned=0)  # a broken page
    found = evaluate(client, settings.sites[0], now=now, timeout_s=1800)
    assert ("checkout.shipping", "all", "reach") in opened(found)
    assert any("fell to 6 in the last 6 h" in a.message for a in found)
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
    settings, client = alert_store(tmp_path)
    now = at(15)
    abandonment_jumped(client, now)
    found = evaluate(client, settings.sites[0], now=now, timeout_s=1800)
    assert await deliver(found, str(server.make_url("/hook")))
    assert calls[0] == 2
    (payload,) = received
    assert any(a["step"] == "checkout.shipping" for a in payload["alerts"])
    assert set(payload["alerts"][0]) >= {"site_id", "window_start", "window_end", "baseline_rate", "current_rate",
                                         "reached", "z", "message", "device", "kind", "window_hours", "state"}
    client.close()


@pytest.mark.slow
@pytest.mark.parametrize("hour", [2, 8, 14, 20])
def test_the_demo_prints_its_shipping_alert_whatever_the_hour(tmp_path: Path, hour: int) -> None:
    """`make demo` at 02:20, 08:20, 14:20 and 20:20: its own traffic, rollup and check, clock injected."""
    now = at(hour)
    config = demo_config(8787, 8000)
    config["store"]["dsn"] = f"chdb://{tmp_path}/store"
    settings = from_mapping(config)
    site = settings.sites[0]
    client = store.connect(settings.store.dsn)
    store.ensure_schema(client)
    sessions = demo_sessions(site.origins[0], now_ms=int(now.timestamp() * 1000))
    import_lines(client, [orjson.dumps({**e, "ua": s.user_agent}) for s in sessions for e in s.events],
                 site=site)
    rollup(client, settings, now=now)
    found = evaluate(client, site, now=now, timeout_s=settings.rollup.session_timeout_s)
    assert ("checkout.shipping", "all", "abandonment") in opened(found), [a.message for a in found]
    client.close()
