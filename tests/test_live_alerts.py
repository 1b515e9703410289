"""The live early warning: a broken step found within minutes on open sessions, with its cause,
sent and resolved; steady traffic judged every minute for a week raises nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession, web

from chainlens.core.loading import from_mapping
from chainlens.core.spoolfile import rows_body
from chainlens.demo import traffic
from ingestion import live_alerts, live_causes, store
from ingestion.alerts import deliver, list_alerts_query
from ingestion.rollup import rollup
from tests.conftest import ORIGIN, make_config, site_config, wait_for

T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # a Monday: fifteen days of history from here
HISTORY_DAYS = 15
BREAK = T0 + dt.timedelta(days=HISTORY_DAYS + 1, hours=18)
PAYMENT = "checkout.payment"
MESSAGE = "Stripe is not defined"


def insert(client: Any, rows: list[Any]) -> None:
    store.insert_events(client, rows_body(rows), token=str(uuid.uuid4()))


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """An embedded store with fifteen days of 1,000 carts a day, rolled up."""
    tmp = tmp_path_factory.mktemp("live")
    settings = from_mapping(make_config(tmp, sites=[site_config()]))
    client = store.connect(settings.store.dsn)
    store.ensure_schema(client)
    insert(client, list(traffic.events(settings.sites[0], carts_per_day=1000, start=T0,
                                       end=T0 + dt.timedelta(days=HISTORY_DAYS), seed=1)))
    rollup(client, settings, now=T0 + dt.timedelta(days=HISTORY_DAYS, hours=1))
    yield settings, client
    client.close()


def live_traffic(client: Any, site: Any, breakage: traffic.Breakage, *, seed: int, hours: float = 4) -> None:
    """Replace the live part of the store: three hours before the breakage, `hours` after."""
    client.command("TRUNCATE TABLE alerts")
    client.command("DELETE FROM events WHERE ts >= {t:DateTime64(3)}",
                   parameters={"t": (T0 + dt.timedelta(days=HISTORY_DAYS)).replace(tzinfo=None)})
    insert(client, list(traffic.events(site, carts_per_day=1000, start=breakage.at - dt.timedelta(hours=3),
                                       end=breakage.at + dt.timedelta(hours=hours), seed=seed, breakage=breakage)))


def first(client: Any, site: Any, detector: live_alerts.Detector, start: dt.datetime, minutes: int, *,
          kind: str, step: str, state: str = "open") -> tuple[int, Any]:
    """Evaluate every minute from `start` until that alert comes; fail after `minutes`."""
    for minute in range(1, minutes + 1):
        for alert in detector.evaluate(client, site, now=start + dt.timedelta(minutes=minute)):
            if (alert.kind, alert.step, alert.device, alert.state) == (kind, step, "all", state):
                return minute, alert
    raise AssertionError(f"no {state} {kind} alert on {step} within {minutes} min")


@pytest.mark.slow  # minutes of evaluations on a store
def test_a_broken_payment_step_is_found_within_minutes_with_its_cause_and_resolves(history: Any) -> None:
    settings, client = history
    site = settings.sites[0]
    repaired = BREAK + dt.timedelta(minutes=45)
    live_traffic(client, site, traffic.Breakage(PAYMENT, BREAK, message=MESSAGE, until=repaired), seed=3)
    detector = live_alerts.Detector()
    delay, alert = first(client, site, detector, BREAK, 30, kind="stall", step=PAYMENT)
    assert 0 < alert.window_minutes <= delay + 5 and alert.since <= BREAK + dt.timedelta(minutes=delay)
    assert alert.observed == 0 and alert.expected >= 3, alert.message
    assert alert.causes[0][:2] == ("obstacle", f"js_error '{MESSAGE}'"), alert.causes
    assert alert.causes[0][2] >= 0.75 and alert.causes[0][3] < 0.01
    assert f"met js_error '{MESSAGE}'" in alert.cause and alert.cause in alert.message
    assert alert.message.startswith(f"demo: {PAYMENT}: 0 of {alert.reached} moved on in the last")
    # Nothing else opened meanwhile (a stall on the payment step is not an arrival problem).
    others = detector.evaluate(client, site, now=BREAK + dt.timedelta(minutes=delay, seconds=30))
    assert not [a for a in others if a.state == "open" and a.step != PAYMENT and a.device == "all"]
    # Once per episode: later passes do not raise it again; it resolves once shoppers move on again.
    minute, resolved = first(client, site, detector, BREAK + dt.timedelta(minutes=delay), 90,
                             kind="stall", step=PAYMENT, state="resolved")
    assert BREAK + dt.timedelta(minutes=delay + minute) > repaired
    assert resolved.since == alert.since and "move on again" in resolved.message
    query, params = list_alerts_query(site=site.id, limit=10)
    listed = client.query(query, parameters=params).result_rows
    assert any("stall" in map(str, row) and MESSAGE in row[-1] for row in listed), listed


@pytest.mark.slow  # minutes of evaluations on a store
def test_a_step_repaired_and_broken_again_is_warned_again(history: Any) -> None:
    settings, client = history
    site = settings.sites[0]
    repaired = BREAK + dt.timedelta(minutes=40)
    again = repaired + dt.timedelta(minutes=45)
    live_traffic(client, site, traffic.Breakage(PAYMENT, BREAK, message=MESSAGE, until=repaired), seed=8,
                 hours=(again - BREAK).total_seconds() / 3600)
    insert(client, list(traffic.events(site, carts_per_day=1000, start=again, end=again + dt.timedelta(hours=1),
                                       seed=9, breakage=traffic.Breakage(PAYMENT, again, message=MESSAGE))))
    detector = live_alerts.Detector()
    delay, _ = first(client, site, detector, BREAK, 30, kind="stall", step=PAYMENT)
    minute, _ = first(client, site, detector, BREAK + dt.timedelta(minutes=delay), 80,
                      kind="stall", step=PAYMENT, state="resolved")
    resolved_at = BREAK + dt.timedelta(minutes=delay + minute)
    assert repaired < resolved_at < again
    # The statistic starts again at the resolution: the new breakage alone opens a new episode.
    minute, alert = first(client, site, detector, resolved_at, int((again - resolved_at).total_seconds() // 60) + 30,
                          kind="stall", step=PAYMENT)
    assert resolved_at + dt.timedelta(minutes=minute) > again and alert.since >= resolved_at
    assert alert.causes[0][:2] == ("obstacle", f"js_error '{MESSAGE}'")


@pytest.mark.slow
def test_a_step_nobody_reaches_raises_reach_live(history: Any) -> None:
    settings, client = history
    site = settings.sites[0]
    live_traffic(client, site, traffic.Breakage("checkout.shipping", BREAK), seed=4, hours=1.5)
    detector = live_alerts.Detector()
    _, alert = first(client, site, detector, BREAK, 60, kind="reach_live", step=PAYMENT)
    assert alert.observed < alert.expected / 4 and "arrived in the last" in alert.message


def test_the_cause_ranking_names_the_planted_factor_first() -> None:
    usual = 1000
    rows = [(False, "device", "mobile", 550), (False, "device", "desktop", 450),
            (False, "browser", "Safari", 200), (False, "browser", "Chrome", 800),
            (False, "obstacle", f"js_error '{MESSAGE}'", 3), (False, "page", "/checkout/payment", usual),
            (True, "device", "mobile", 9), (True, "device", "desktop", 3), (True, "browser", "Safari", 11),
            (True, "browser", "Chrome", 1), (True, "obstacle", f"js_error '{MESSAGE}'", 10),
            (True, "page", "/checkout/payment", 12)]
    causes = live_causes.ranked(rows, 12)
    assert [(c.factor, c.value) for c in causes[:2]] == [("obstacle", f"js_error '{MESSAGE}'"), ("browser", "Safari")]
    assert ("page", "/checkout/payment") not in [(c.factor, c.value) for c in causes]  # as usual: no cause
    assert live_causes.describe(causes, 12) == (f"10 of 12 met js_error '{MESSAGE}' (usually 0.3%); "
                                                "11 of 12 on Safari (usually 20.0%)")


@pytest.mark.slow  # a simulated week, minute by minute: 60-120 s here, hence its own guard
@pytest.mark.timeout(360)
def test_steady_traffic_judged_every_minute_for_a_week_raises_nothing(history: Any) -> None:
    settings, client = history
    site = settings.sites[0]
    start = T0 + dt.timedelta(days=HISTORY_DAYS)
    index = traffic.Entries(traffic.events(site, carts_per_day=1000, start=start - dt.timedelta(hours=3),
                                           end=start + dt.timedelta(days=7), seed=5), site.chain)
    curves = live_alerts.Detector().curves(client, site, start)
    assert {step for step, _ in curves} == set(site.checkout_steps)
    episodes: set[tuple[str, str, str]] = set()
    opened, peak = [], 0.0
    for minute in range(7 * 1440):
        now = start + dt.timedelta(minutes=minute)
        charts = live_alerts.charts(site, now, curves, index.at(now, lookback_min=live_alerts.LOOKBACK,
                                                                  timeout_s=settings.rollup.session_timeout_s))
        peak = max(peak, *(max(c.stall, c.reach) for c in charts.values()))
        for step, device, kind, state in live_alerts.decide(charts, episodes):
            (episodes.add if state == "open" else episodes.discard)((step, device, kind))
            if state == "open":
                opened.append((now, step, device, kind))
    assert not opened, opened
    assert peak > 1  # the statistics moved: chance rises that stayed below the threshold


async def webhook(got: list[dict[str, Any]]) -> tuple[web.AppRunner, int]:
    """A webhook receiver on loopback that keeps every payload in `got`: its runner and port."""

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def test_the_webhook_gets_the_live_alert_with_its_cause() -> None:
    got: list[dict[str, Any]] = []
    runner, port = await webhook(got)
    chart = live_alerts.Chart(stall=14.2, stall_since=14, entered=12, moved=0, expected_moved=9.1,
                              stalled_ids=[f"s{i}" for i in range(12)])
    alert = live_alerts.make_alert(site_id="demo", now=BREAK, step=PAYMENT, device="all", kind="stall",
                                   chart=chart, state="open", causes=live_causes.ranked(
                                       [(False, "device", "mobile", 100), (True, "device", "mobile", 10),
                                        (False, "obstacle", "js_error 'x'", 1), (True, "obstacle", "js_error 'x'", 10)],
                                       12))
    try:
        assert await deliver([alert], f"http://127.0.0.1:{port}/hook")
    finally:
        await runner.cleanup()
    sent = got[0]["alerts"][0]
    assert sent["kind"] == "stall" and sent["window_minutes"] == 14 and sent["observed"] == 0
    assert sent["expected"] == 9.1 and sent["since"] == (BREAK - dt.timedelta(minutes=14)).isoformat()
    assert sent["causes"][0] == {"factor": "obstacle", "value": "js_error 'x'", "share": 10 / 12,
                                 "usual_share": 1 / 100}
    assert sent["cause"] == "10 of 12 met js_error 'x' (usually 1.0%)" and sent["cause"] in sent["message"]


@pytest.mark.slow  # a real serve, an import and a rollup
async def test_a_real_serve_warns_its_webhook_within_a_minute(tmp_path: Path, serve_factory: Any) -> None:
    got: list[dict[str, Any]] = []
    runner, port = await webhook(got)
    # The serve process's clock starts at the last 19:00 UTC at least an hour ago: events dated
    # around then are recent enough for the collector, and the hour is the evening peak.
    real = dt.datetime.now(dt.UTC)
    clock = (real - dt.timedelta(hours=1)).replace(hour=19, minute=0, second=0, microsecond=0)
    if clock > real - dt.timedelta(hours=1):
        clock -= dt.timedelta(days=1)
    config = make_config(tmp_path, collector={"workers": 1}, sites=[site_config(alerts={
        "webhook": f"http://127.0.0.1:{port}/hook", "live_every_s": 1})])
    srv = serve_factory(config, start=False)
    srv.extra_env["CHAINLENS_CLOCK"] = clock.isoformat()
    srv.start()
    site = from_mapping(config).sites[0]
    history = traffic.events(site, carts_per_day=300, start=clock - dt.timedelta(days=15),
                             end=clock - dt.timedelta(minutes=70), seed=6)
    lines = tmp_path / "history.jsonl"
    lines.write_bytes(b"\n".join(orjson.dumps(traffic.wire(r)) for r in history))
    # The webhook's server runs on this loop: the commands run beside it.
    await asyncio.to_thread(srv.cli, "import", str(lines), "--site", site.id)
    await asyncio.to_thread(srv.cli, "rollup")
    # The last 70 minutes, live through /e, the payment step broken for the last 25.
    broken = traffic.Breakage(PAYMENT, clock - dt.timedelta(minutes=25), message=MESSAGE)
    live = [r for r in traffic.events(site, carts_per_day=3000, start=clock - dt.timedelta(minutes=70), end=clock,
                                      seed=7, breakage=broken) if r.ts * 1000 <= clock.timestamp() * 1000]
    sessions: dict[str, list[Any]] = {}
    for r in live:
        sessions.setdefault(r.session_id, []).append(r)
    async with ClientSession() as http:
        for rows in sessions.values():
            events = [{k: v for k, v in traffic.wire(r).items() if k != "ua"} for r in rows]
            body = orjson.dumps({"site": site.id, "sent_at": int(real.timestamp() * 1000), "events": events})
            async with http.post(f"{srv.url}/e", data=body, headers={
                    "Origin": ORIGIN, "Content-Type": "text/plain",
                    "User-Agent": traffic.USER_AGENTS[f"{rows[0].browser} {rows[0].os} {rows[0].device}"]}) as resp:
                assert resp.status == 202, await resp.text()

        async def warned() -> Any:
            return [a for payload in got for a in payload["alerts"]
                    if a["kind"] == "stall" and a["step"] == PAYMENT and a["device"] == "all"]

        try:
            alert = (await wait_for(warned, timeout=60, what="the live alert at the webhook"))[0]
        finally:
            await runner.cleanup()
    assert MESSAGE in alert["cause"] and alert["observed"] < alert["expected"]
    listed = await asyncio.to_thread(srv.cli, "alerts", "--limit", "500")
    assert "stall" in listed.stdout and MESSAGE in listed.stdout, listed.stdout
    status = (await asyncio.to_thread(srv.cli, "status")).stdout
    assert "LIVE ALERT" in status and f"{PAYMENT}:" in status
    # The dashboard's live panel: the step's moved-on count against the expected, and the alert.
    async with ClientSession() as http, http.get(f"{srv.url}/dashboard") as resp:
        page = await resp.text()
    panel = page[page.index('<section id="live"'):page.index("</section>", page.index('<section id="live"'))]
    assert f'data-kind="stall" data-step="{PAYMENT}"' in panel and MESSAGE in panel
    row = panel[panel.index(f'<tr data-step="{PAYMENT}">'):]
    cells = [c.split("<")[0] for c in row.split("<td>")[1:4]]
    entered, moved, expected = int(cells[0]), int(cells[1]), float(cells[2])
    assert entered > 0 and moved < 0.75 * expected  # broken for the last 25 of its 60 minutes
