"""`chainlens demo`: the main job on the embedded default, from nothing.

Starts a real `chainlens serve` on a fresh embedded store under ./data/demo,
sends seeded shopper traffic through its HTTP API as browsers would, waits for
the load path to drain, and prints what a shop manager wants to see.

The last hours are an evening sale, and for its last half hour the payment
page is broken on Mobile Safari. `serve` is restarted with its clock set back
and running fast (CHAINLENS_CLOCK), so the live early warning lives through
that half hour minute by minute in a few seconds and says when it noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from chainlens.core.loading import from_mapping
from chainlens.core.owner import held_by
from chainlens.core.settings import DEMO_CHAIN, Settings, Site
from chainlens.core.toml_writer import dump_toml
from chainlens.demo.returns import link_returns
from chainlens.demo.shop import ShopServer
from chainlens.demo.shoppers import BROKEN_PAYMENT, USER_AGENTS, Session, ShopperModel, aftercare
from chainlens.store_access import run_query
from ingestion.figures import QUERIES, parameters

DEMO_DIR = Path("data/demo")
SHOP_PORT = 8000
DAYS = 7  # of history, as far back as the collector's 7-day age limit lets browsers' events in
PER_DAY = 700
CHANGE_DAYS = 1.5  # shipping costs jump for the last day and a half: the early warning should say so
SALE_MINUTES, SALE = 150, 20  # the evening sale before now, at twenty times the usual traffic
BROKEN_MINUTES = 30  # its last half hour: the payment page broken on Mobile Safari
REPLAY_MINUTES, REPLAY_SPEED = 40, 40  # the restarted serve's clock: 40 min back, 40 times as fast
# Months of orders before the week, imported as a shop's export, so that repeat purchases have 90
# days to be seen (docs/metrics.md, "Customers and repeat purchases").
HISTORY_DAYS, HISTORY_PER_DAY = 120, 400


def demo_config(port: int, shop_port: int) -> dict[str, Any]:
    origin = f"http://127.0.0.1:{shop_port}"
    return {
        "store": {"dsn": f"chdb://./{DEMO_DIR}/store"},
        "collector": {"host": "127.0.0.1", "port": port, "spool_dir": f"./{DEMO_DIR}/spool",
                      "rate_limit_rps": 0.0, "flush_interval_s": 0.5},
        # Short enough that a person browsing the storefront sees their session within minutes.
        "rollup": {"session_timeout_s": 120, "every_s": 20},
        "sites": [{
            "id": "demo", "origins": [origin, f"http://localhost:{shop_port}"], "secret": "demo-secret",
            "timezone": "UTC", "chain": list(DEMO_CHAIN), "checkout_from": "cart",
            # Every second: at the replay's speed, a live evaluation every 40 simulated seconds.
            "alerts": {"live_every_s": 1},
            "step_urls": {"discover": ["/"], "search": ["/search"], "select": ["/product/*"], "cart": ["/cart"],
                          "checkout.info": ["/checkout/info"], "checkout.shipping": ["/checkout/shipping"],
                          "checkout.payment": ["/checkout/payment"], "checkout.review": ["/checkout/review"]},
            # A shop's own behavior segment, checked before the built-in ones (docs/metrics.md).
            "segments": [{"name": "big_basket", "where": "cart_value >= 150"}],
            # A free-shipping offer at the moment of risk, with a holdout (docs/interventions.md).
            "intervene": {"steps": ["checkout.shipping", "checkout.payment"], "holdout": 0.2},
            # Which field of the details form shoppers leave at (docs/snippet.md, "The forms add-on").
            "forms": {"steps": ["checkout.info"]},
        }],
    }


def run_demo(settings: Settings, *, keep_running: bool = False, sessions: int | None = None) -> int:
    owner = held_by(from_mapping(demo_config(0, 0)))
    if owner is not None:
        # Another demo (--keep-running) still serves from this directory: never wipe its store.
        print(f"chainlens demo: another chainlens (pid {owner}) is serving from {DEMO_DIR}/; "
              "stop it first (Ctrl-C in its terminal, or kill -TERM it)", file=sys.stderr)
        return 2
    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    DEMO_DIR.mkdir(parents=True)
    port = _free_port(settings.collector.port)
    shop_port = _free_port(SHOP_PORT)
    config = demo_config(port, shop_port)
    path = DEMO_DIR / "chainlens.toml"
    # No scheduled pass while the history and the week load: one would judge the last hours
    # before their traffic has come, and warn that nobody reaches the checkout any more.
    path.write_text(dump_toml({**config, "rollup": {**config["rollup"], "enabled": False}}))
    url = f"http://127.0.0.1:{port}"
    print(f"chainlens demo: starting the collector on {url} with a fresh embedded store in {DEMO_DIR}/")
    proc = _serve(path)
    demo_settings = from_mapping(config, source=str(path))
    shop = ShopServer(demo_settings.sites[0], public_url=url, port=shop_port).start()
    try:
        _wait_healthy(url, proc)
        per_day = max(1, (sessions or DAYS * PER_DAY) // DAYS)
        started = time.monotonic()
        now_ms = int(time.time() * 1000)
        lines, linked = history_lines(shop.url, now_ms=now_ms, per_day=max(1, per_day * HISTORY_PER_DAY // PER_DAY))
        (DEMO_DIR / "history.jsonl").write_bytes(b"\n".join(lines))
        print(_cli(path, "import", str(DEMO_DIR / "history.jsonl"), "--site", "demo")
              + f" ({HISTORY_DAYS - DAYS} days of history before the week, {linked} buyers coming back for "
              f"another order, in {time.monotonic() - started:.1f} s)")
        started = time.monotonic()
        sent, accepted = asyncio.run(_send_traffic(url, config, per_day=per_day, now_ms=now_ms))
        print(f"sent {sent} shopper sessions ({accepted} events accepted) in {time.monotonic() - started:.1f} s")
        _wait_loaded(url)
        started = time.monotonic()
        rolled = _cli(path, "rollup")
        print(f"rolled up the history and the week, then checked the early warnings "
              f"({time.monotonic() - started:.1f} s):\n  " + rolled.replace("\n", "\n  "))
        path.write_text(dump_toml(config))  # the scheduled passes from now on
        # The sale, its last half hour broken, lived through again by a serve whose clock is set back.
        now_ms = int(time.time() * 1000)
        broken_ms = now_ms - BROKEN_MINUTES * 60_000
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        back = dt.datetime.fromtimestamp(now_ms / 1000 - REPLAY_MINUTES * 60, dt.UTC)
        proc = _serve(path, clock=f"{back.isoformat()}*{REPLAY_SPEED}")
        caught_up = time.monotonic() + REPLAY_MINUTES * 60 / REPLAY_SPEED
        _wait_healthy(url, proc)
        feed = Feed(url, config, payment_broken=lambda: shop.payment_broken)
        sale = ShopperModel(seed=8, origin=feed.origin, act=True, change_at_ms=0,  # shipping still dear
                            payment_broken=lambda ts: broken_ms <= ts <= now_ms)
        shoppers = list(sale.sessions(start_ms=now_ms - SALE_MINUTES * 60_000, end_ms=now_ms,
                                      count=per_day * SALE * SALE_MINUTES // 1440))
        asyncio.run(feed.run(shoppers, until_ms=now_ms))
        print(f"sent {len(shoppers)} sessions of an evening sale, its last {BROKEN_MINUTES} min with the payment "
              f"page broken on Mobile Safari ({feed.accepted} events accepted)")
        _wait_loaded(url)
        time.sleep(max(0.0, caught_up - time.monotonic()) + 2)  # the replay's clock reaches now
        _print_report(path, demo_settings, broken_at=dt.datetime.fromtimestamp(broken_ms / 1000, dt.UTC))
        print(f"\nstorefront: {shop.url}/   (its pages carry the snippet: browse it and your session lands)")
        print(f"dashboard:  {url}/dashboard")
        if keep_running:
            print(f"\nRunning until Ctrl-C, shoppers still arriving at the sale's pace. Break the payment page "
                  f"by hand at {shop.url}/switches and watch the dashboard's live panel.\n"
                  f"Refresh the rollups with: chainlens rollup -c {path}")
            asyncio.run(_keep_shopping(feed, sale, rate_per_ms=per_day * SALE / 86_400_000))
    finally:
        shop.stop()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(120)
    print(f"collector stopped (exit {code})")
    return 0 if code == 0 else 1


def history_lines(origin: str, *, now_ms: int, per_day: int = HISTORY_PER_DAY) -> tuple[list[bytes], int]:
    """The months before the week as a shop's export: sessions, the back office's reports, and
    buyers who come back (chainlens/demo/returns.py); the lines and how many came back."""
    day = 86_400_000
    model = ShopperModel(seed=9, origin=origin, act=True)
    sessions = list(model.sessions(start_ms=now_ms - HISTORY_DAYS * day, end_ms=now_ms - DAYS * day,
                                   count=per_day * (HISTORY_DAYS - DAYS)))
    rng = random.Random(13)
    reports = [e for s in sessions for e in aftercare(s, rng, now_ms=now_ms)]
    linked = link_returns(sessions, reports, seed=9)
    lines = [orjson.dumps({**e, "ua": s.user_agent}) for s in sessions for e in s.events]
    return lines + [orjson.dumps(e) for e in reports], linked


def demo_sessions(origin: str, *, now_ms: int, per_day: int = PER_DAY) -> Iterator[Session]:
    """The demo's shoppers: `DAYS` of history up to `now_ms`, the shipping cost jumping
    `CHANGE_DAYS` before it; sessions end well before now, so they are closed and enter the rollups."""
    day = 86_400_000
    model = ShopperModel(seed=7, origin=origin, change_at_ms=now_ms - int(CHANGE_DAYS * day), act=True)
    return model.sessions(start_ms=now_ms - DAYS * day + 3_600_000, end_ms=now_ms - 3 * 3_600_000,
                          count=per_day * DAYS)


def _serve(path: Path, *, clock: str = "") -> subprocess.Popen[bytes]:
    env = {**os.environ, "CHAINLENS_CLOCK": clock} if clock else None
    with open(DEMO_DIR / "serve.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "chainlens.cli", "serve", "-c", str(path)],
                                stdout=log, stderr=log, env=env)


class Feed:
    """Shoppers' events sent as their time comes, each session's due events in one beacon, as
    their browsers would send them; what is not yet due waits for its time."""

    def __init__(self, url: str, config: dict[str, Any], *, payment_broken: Callable[[], bool] = lambda: False) -> None:
        self.url, self.origin = url, config["sites"][0]["origins"][0]
        self.pending: list[tuple[int, int, str, dict[str, Any]]] = []  # (ts, order, user agent, event)
        self.order = itertools.count()
        self.accepted = 0
        # While the storefront's payment page is broken (its /switches), a Mobile Safari shopper
        # who reaches it meets the error and goes no further, whenever their session began.
        self.payment_broken = payment_broken
        self.stuck: set[str] = set()

    def add(self, shoppers: list[Session]) -> None:
        for shopper in shoppers:
            for ev in shopper.events:
                heapq.heappush(self.pending, (ev["ts"], next(self.order), shopper.user_agent, ev))

    async def send_due(self, http: aiohttp.ClientSession, until_ms: int) -> None:
        beacons: dict[tuple[str, str], list[dict[str, Any]]] = {}
        while self.pending and self.pending[0][0] <= until_ms:
            _, _, agent, ev = heapq.heappop(self.pending)
            if ev["sid"] in self.stuck:
                continue
            beacons.setdefault((agent, ev["sid"]), []).append(ev)
            if (ev["type"] == "page" and ev["step"] == "checkout.payment" and agent == USER_AGENTS["mobile"]
                    and self.payment_broken()):
                self.stuck.add(ev["sid"])
                beacons[(agent, ev["sid"])].append({**ev, "id": str(uuid.uuid4()), "type": "obstacle",
                                                    "name": "js_error", "props": {"message": BROKEN_PAYMENT}})
        for (agent, _), events in beacons.items():
            body = orjson.dumps({"site": "demo", "sent_at": int(time.time() * 1000), "events": events})
            async with http.post(self.url + "/e", data=body, headers={
                    "Content-Type": "text/plain", "Origin": self.origin, "User-Agent": agent}) as resp:
                self.accepted += (await resp.json())["accepted"]

    async def run(self, shoppers: list[Session], *, until_ms: int) -> None:
        self.add(shoppers)
        async with aiohttp.ClientSession() as http:
            await self.send_due(http, until_ms)


async def _keep_shopping(feed: Feed, model: ShopperModel, *, rate_per_ms: float) -> None:
    """New shoppers at `rate_per_ms`, and everyone's events sent when they are due, until a signal."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    last, owed = int(time.time() * 1000), 0.0
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            now_ms = int(time.time() * 1000)
            owed += (now_ms - last) * rate_per_ms
            if owed >= 1:
                feed.add(list(model.sessions(start_ms=last, end_ms=now_ms, count=int(owed))))
                owed -= int(owed)
            last = now_ms
            await feed.send_due(http, now_ms)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


async def _send_traffic(url: str, config: dict[str, Any], *, per_day: int, now_ms: int) -> tuple[int, int]:
    origin = config["sites"][0]["origins"][0]
    accepted = sent = 0
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        while (item := await queue.get()) is not None:
            body = orjson.dumps({"site": "demo", "sent_at": int(time.time() * 1000), "events": item.events})
            async with session.post(url + "/e", data=body, headers={
                "Content-Type": "text/plain", "Origin": origin, "User-Agent": item.user_agent}) as resp:
                accepted += (await resp.json())["accepted"]

    rng = random.Random(11)
    reports: list[dict[str, Any]] = []  # what the back office says after the purchase
    async with aiohttp.ClientSession() as session:
        workers = [asyncio.create_task(worker(session)) for _ in range(8)]
        for shopper in demo_sessions(origin, now_ms=now_ms, per_day=per_day):
            await queue.put(shopper)
            reports += aftercare(shopper, rng, now_ms=now_ms)
            sent += 1
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
        secret = config["sites"][0]["secret"]
        for i in range(0, len(reports), 200):  # as a shop's back office would: /s2s with the site secret
            body = orjson.dumps({"site": "demo", "events": reports[i:i + 200]})
            async with session.post(url + "/s2s", data=body, headers={
                    "Content-Type": "application/json", "Authorization": f"Bearer {secret}"}) as resp:
                accepted += (await resp.json())["accepted"]
    return sent, accepted


def _cli(config: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "chainlens.cli", *args, "-c", str(config)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"chainlens {args[0]} failed: {done.stderr.strip()}")
    return done.stdout.rstrip()


# What the demo prints: the figures' own queries (ingestion/figures.py), shaped for a terminal.
REPORT = [
    ("Checkout abandonment per step (all days, all devices)", "checkout",
     "step, reached, continued, abandoned, round(abandonment_rate, 3) AS abandonment_rate, "
     "round(median_ms_before_abandon / 1000) AS median_s_before_leaving", ""),
    ("Step timing: time to the next step over the week (seconds, exact quantiles of the transitions)", "timing",
     "step, next_step, transitions, round(p50_ms / 1000) AS p50_s, round(p90_ms / 1000) AS p90_s",
     "WHERE transitions >= 20 LIMIT 10"),
    ("Obstacles ranked by the orders they cost (95% intervals; 'insufficient' below the minimum sample)",
     "obstacles",
     "step, kind, sessions_with, round(rate_with, 3) AS left_if_met, round(rate_without, 3) AS left_if_not, "
     "round(orders_lost, 1) AS orders_lost, "
     "concat('[', toString(round(orders_lost_low, 1)), ', ', toString(round(orders_lost_high, 1)), ']') AS ci95, "
     "round(revenue_at_stake) AS revenue_at_stake, "
     "multiIf(insufficient, 'insufficient', includes_zero, 'may be 0', '') AS note", ""),
    ("Where in the form they leave: fields ranked by the orders an error on them costs (95% intervals)",
     "form_fields",
     "step, field, touched, left_here, round(last_field_share, 3) AS share_of_leavers, "
     "round(error_share, 3) AS error_share, round(rate_with, 3) AS left_if_error, "
     "round(rate_without, 3) AS left_if_not, round(orders_lost, 1) AS orders_lost, "
     "concat('[', toString(round(with_error * diff_low, 1)), ', ', toString(round(with_error * diff_high, 1)), ']') "
     "AS ci95, multiIf(with_error = 0, 'no errors', insufficient, 'insufficient', '') AS note", ""),
    ("Behavior segments (docs/metrics.md): sessions, orders and cart abandonment", "segments",
     "segment, sessions, orders, round(conversion_rate, 3) AS conversion, carts, "
     "round(cart_abandonment, 3) AS cart_abandonment", ""),
    ("Landing pages: engaged within 7 s, bounced, at a product within 3 clicks", "landing",
     "landing_path, sessions, round(engaged_rate, 3) AS engaged_7s, round(bounce_rate, 3) AS bounce_rate, "
     "round(reached_select_in_3_clicks / sessions, 3) AS product_in_3_clicks, "
     "round(median_s_to_first_interaction, 1) AS median_s_to_first_interaction", ""),
    ("Campaigns and sources by orders (revenue by currency)", "campaigns",
     "source, medium, campaign, sessions, orders, round(conversion_rate, 4) AS conversion, "
     "mapApply((c, v) -> (c, round(v, 2)), revenue) AS revenue, round(cart_abandonment, 3) AS cart_abandonment",
     "LIMIT 8"),
    ("After the purchase, by purchase day: delivery (hours), on time, tracked, returned", "fulfillment_by_day",
     "day, orders, shipped, delivered, round(p50_hours_to_deliver) AS p50_h_to_delivery, "
     "round(p90_hours_to_deliver) AS p90_h_to_delivery, round(on_time_share, 3) AS on_time, "
     "round(tracking_viewed_share, 3) AS tracked, round(returned_share, 3) AS returned", ""),
    ("Satisfaction: NPS with its 95% interval, and the weak links", "satisfaction",
     "link, answers, round(nps) AS nps, concat('[', toString(round(nps_low)), ', ', toString(round(nps_high)), ']') "
     "AS ci95", ""),
    ("Acting at the moment of risk: conversion with the offer vs the holdout (95% interval of the lift)",
     "interventions",
     "step, trigger, treated, held, round(treated_conversion, 3) AS with_offer, round(held_conversion, 3) AS holdout, "
     "round(lift * 100, 1) AS lift_pp, concat('[', toString(round(lift_low * 100, 1)), ', ', "
     "toString(round(lift_high * 100, 1)), ']') AS ci95_pp, round(incremental_orders, 1) AS extra_orders, "
     "round(incremental_revenue) AS extra_revenue_net, if(insufficient, 'insufficient', '') AS note", ""),
    ("Cart abandonment rate per day (Baymard's long-run figure: ~70%)", "cart_by_day",
     "day, carts, bought, round(cart_abandonment, 3) AS cart_abandonment", ""),
    ("Fast-Track-In-Stock rate per day", "fast_track_by_day",
     "day, detail_views, fast_track_views, round(rate, 3) AS rate", ""),
]


REPEAT_COLUMNS = ("link, orders, observable_90d, repeat_90d, round(rate_90d, 3) AS repeat_rate, "
                  "round(rate_others, 3) AS others_rate, round(diff_90d * 100, 1) AS diff_pp, "
                  "concat('[', toString(round(diff_low * 100, 1)), ', ', toString(round(diff_high * 100, 1)), ']') "
                  "AS ci95_pp, round(orders_lost_90d, 1) AS orders_lost_90d, "
                  "if(insufficient, 'insufficient', '') AS note")


def _by_segment(site: Site) -> tuple[str, str, str, str]:
    """The checkout table with one abandonment-rate column per behavior segment."""
    columns = ", ".join(f"round(maxIf(abandonment_rate, segment = '{n}'), 3) AS {n}" for n in site.segment_names)
    return ("Abandonment of each checkout step by behavior segment", "checkout_by_segment",
            f"step, {columns}", "GROUP BY step, step_index ORDER BY step_index")


def _print_report(config: Path, settings: Settings, *, broken_at: dt.datetime) -> None:
    print("\n" + _cli(config, "rollup"))
    today = dt.datetime.now(dt.UTC).date()  # the demo site's time zone
    params = parameters(settings.sites[0], start=today - dt.timedelta(days=DAYS + 1), end=today)
    for title, name, columns, tail in [*REPORT[:1], _by_segment(settings.sites[0]), *REPORT[1:]]:
        query = f"SELECT {columns} FROM ({QUERIES[name]}) {tail}"
        out = run_query(settings, " ".join(query.split()), fmt="PrettyCompactMonoBlock", parameters=params)
        print(f"\n{title}\n" + out.decode().rstrip())
    months = parameters(settings.sites[0], start=today - dt.timedelta(days=HISTORY_DAYS), end=today)
    query = f"SELECT {REPEAT_COLUMNS} FROM ({QUERIES['repeat']})"
    print(f"\nDo bad experiences cost future orders? Orders of the last {HISTORY_DAYS} days whose customer "
          "ordered again within 90 days (of those observable for 90 days), against the link's complement\n"
          + run_query(settings, " ".join(query.split()), fmt="PrettyCompactMonoBlock",
                      parameters=months).decode().rstrip())
    query = ("SELECT source, medium, campaign, revived_orders, customers, usual_gap_p90_days "
             f"FROM ({QUERIES['revival']}) LIMIT 5")
    print("\nLapsed customers who came back (after more than the usual gap between orders), by what brought them\n"
          + run_query(settings, " ".join(query.split()), fmt="PrettyCompactMonoBlock",
                      parameters=months).decode().rstrip())
    print("\nEarly warnings, hourly and live\n" + _cli(config, "alerts"))
    first = _cli(config, "sql", "SELECT toUnixTimestamp64Milli(detected_at) AS ms, device, message FROM alerts "
                 "WHERE kind = 'stall' AND step = 'checkout.payment' AND state = 'open' "
                 f"AND detected_at >= fromUnixTimestamp64Milli({int(broken_at.timestamp() * 1000)}) "
                 "ORDER BY detected_at LIMIT 1",
                 "--format", "JSONEachRow")
    print(f"\nLive early warning: the payment page broke on Mobile Safari at {broken_at:%H:%M:%S} UTC "
          f"(js_error '{BROKEN_PAYMENT}')")
    if not first:
        print("  no live alert on checkout.payment yet")
    else:
        alert = orjson.loads(first)
        at = dt.datetime.fromtimestamp(int(alert["ms"]) / 1000, dt.UTC)
        print(f"  first live alert at {at:%H:%M:%S} UTC, {(at - broken_at).total_seconds() / 60:.0f} min later "
              f"(device {alert['device']}): {alert['message']}")
    print("\nRejected events: " + _cli(config, "sql", "SELECT count() FROM events_rejected", "--format", "TSV"))


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the collector exited ({proc.returncode}); see {DEMO_DIR}/serve.log")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the collector did not become ready")


def _wait_loaded(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "/readyz", timeout=5) as resp:
            state = orjson.loads(resp.read())
        if state["backlog_bytes"] == 0:
            return
        time.sleep(0.3)


def _free_port(preferred: int) -> int:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])



