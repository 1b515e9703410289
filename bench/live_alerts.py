"""How fast the live early warning catches a broken checkout step, whether it names the cause,
how often it cries wolf, and what one pass costs.

    .venv/bin/python bench/live_alerts.py [--runs 3] [--fa-days 60] [--levels 100,1000,10000] [--e2e]

Traffic is `chainlens.demo.traffic`: shoppers enter the cart step at `carts/day` with a daily
rhythm (nights at a fifth of the evening peak, weekends at 80%), 85% go on at each checkout
step after a lognormal wait (median 1.5 min), 1% meet a harmless js_error. Fifteen days of
history go into an embedded store and through the real rollup (`step_moves_hourly`).

- Detection: from a weekday at 19:00 (peak) or 03:00 (night), `checkout.payment` is fully
  broken (nobody moves on), or its abandonment rises by 30 or 20 points; the shoppers it stops
  meet js_error 'Stripe is not defined' there. The live
  traffic goes into the store and the real `Detector.evaluate` runs every simulated minute
  until a `stall` on that step opens (any device); delay in minutes, and whether the planted
  cause is the top-ranked factor. Median over `--runs` runs.
- False alarms: `--fa-days` of steady traffic after the history, judged by the real charts
  and decision (`live_alerts.charts` and `decide`: the pass without its queries) in memory,
  every 5 simulated minutes (an evaluation every minute would cost an hour a level). Alerts
  opened per site-month (30 days).
- Pass cost: the median wall time of one `Detector.evaluate` at each traffic level.
- Beside a rollup (the highest level): a pass asked for 0.2 s into a full rollup, run on the
  store's own thread (where it waits for the rollup) and on a runner beside it
  (`StoreRunner.beside`, what `chainlens serve` does); the time until it answered, twice each.
- End to end (`--e2e`, on its own): a real `chainlens serve` gets the history through
  `chainlens import` and `rollup`, is restarted with its clock 10 minutes before a breakage
  70 minutes ago, running 30 times as fast (CHAINLENS_CLOCK), and gets the live traffic
  through `/e` (1,000 carts/day, payment fully broken from that minute). The delay is the
  serve's clock when the alert reached a webhook, minus the breakage.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
from aiohttp import ClientSession, web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rollup import asked_during  # noqa: E402  (bench/rollup.py)

from chainlens.core.loading import from_mapping  # noqa: E402
from chainlens.core.spoolfile import rows_body  # noqa: E402
from chainlens.core.toml_writer import dump_toml  # noqa: E402
from chainlens.demo import traffic  # noqa: E402
from ingestion import live_alerts, store  # noqa: E402
from ingestion.rollup import rollup  # noqa: E402
from ingestion.runner import StoreRunner  # noqa: E402

STEP = "checkout.payment"
MESSAGE = "Stripe is not defined"
START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # a Monday
HISTORY_DAYS = 15
HORIZON_MIN = 240
STRIDE = 5  # minutes between the false-alarm run's evaluations


def insert(client, rows) -> None:
    for i in range(0, len(rows), 200_000):
        store.insert_events(client, rows_body(rows[i:i + 200_000]), token=str(uuid.uuid4()))


def first_alert(client, site, detector, break_at: dt.datetime, costs: list[float]):
    for minute in range(1, HORIZON_MIN + 1):
        now = break_at + dt.timedelta(minutes=minute)
        started = time.perf_counter()
        found = detector.evaluate(client, site, now=now)
        costs.append(time.perf_counter() - started)
        for a in found:
            if a.state == "open" and a.kind == "stall" and a.step == STEP:
                return minute, a
    return None, None


def detection(client, site, carts: int, runs: int, costs: list[float]) -> list[str]:
    lines = []
    for label, rise in (("broken", 1.0), ("+30pp", 0.30), ("+20pp", 0.20)):
        for when, hour in (("peak", 19), ("night", 3)):
            delays, named = [], 0
            for run in range(runs):
                break_at = START + dt.timedelta(days=HISTORY_DAYS + 1 + run, hours=hour)
                client.command("TRUNCATE TABLE alerts")
                client.command("DELETE FROM events WHERE ts >= {t:DateTime64(3)}",
                               parameters={"t": (START + dt.timedelta(days=HISTORY_DAYS)).replace(tzinfo=None)})
                live = list(traffic.events(site, carts_per_day=carts, start=break_at - dt.timedelta(hours=3),
                                           end=break_at + dt.timedelta(minutes=HORIZON_MIN), seed=run * 7 + hour,
                                           breakage=traffic.Breakage(STEP, break_at, rise, message=MESSAGE)))
                insert(client, live)
                minute, alert = first_alert(client, site, live_alerts.Detector(), break_at, costs)
                if minute is not None:
                    delays.append(minute)
                    top = alert.causes[0] if alert.causes else ("", "", 0, 0)
                    named += top[0] == "obstacle" and MESSAGE in top[1]
            found = f"{statistics.median(delays):>6.0f}" if len(delays) * 2 > runs else f"{'>' + str(HORIZON_MIN):>6}"
            lines.append(f"{carts:>10,} {label:>7} {when:>6} {found} {len(delays)}/{runs:<3} "
                         f"{named}/{len(delays) if delays else 0}")
    return lines


async def beside_rollup(client, settings, site, now: dt.datetime, beside: bool) -> tuple[float, float]:
    """(seconds until a live pass asked for 0.2 s into a full rollup answered, the rollup's seconds)."""
    runner = StoreRunner(settings.store.dsn, client=client)
    await runner.call(lambda c: None)
    lane = runner.beside("live") if beside else runner
    waited = await asked_during(runner, lambda c: rollup(c, settings, now=now, since=START.date()),
                                lambda: lane.call(live_alerts.Detector().evaluate, site, now=now,
                                                  timeout_s=settings.rollup.session_timeout_s))
    if beside:
        await lane.close()
    await runner.close()  # the client is the caller's, and stays open
    return waited


def false_alarms(client, settings, site, carts: int, days: int) -> tuple[int, int]:
    """Alerts opened over `days` of steady traffic after the history, per the docstring."""
    start = START + dt.timedelta(days=HISTORY_DAYS)
    rows = list(traffic.events(site, carts_per_day=carts, start=start, end=start + dt.timedelta(days=days), seed=99))
    insert(client, rows)
    rollup(client, settings, now=start + dt.timedelta(days=days))
    index = traffic.Entries(rows, site.chain)
    timeout_s = settings.rollup.session_timeout_s
    detector = live_alerts.Detector()
    episodes: set[tuple[str, str, str]] = set()
    resolved_at: dict[tuple[str, str, str], dt.datetime] = {}
    opened = evaluations = 0
    now = start + dt.timedelta(hours=3)
    while now < start + dt.timedelta(days=days):
        window = index.at(now, lookback_min=live_alerts.LOOKBACK, timeout_s=timeout_s)
        resolved = {k: (now - t).total_seconds() / 60 for k, t in resolved_at.items()}
        charts = live_alerts.charts(site, now, detector.curves(client, site, now), window, resolved)
        evaluations += 1
        for step, device, kind, state in live_alerts.decide(charts, episodes):
            if state == "open":
                episodes.add((step, device, kind))
                opened += 1
                print("  false alarm:", now, step, device, kind, file=sys.stderr)
            else:
                episodes.discard((step, device, kind))
                resolved_at[(step, device, kind)] = now
        now += dt.timedelta(minutes=STRIDE)
    return opened, evaluations


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(config: Path, log: Path, url: str, clock: str = "") -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINLENS_")}
    if clock:
        env["CHAINLENS_CLOCK"] = clock
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "chainlens.cli", "serve", "-c", str(config)],
                                stdout=out, stderr=out, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"serve did not become ready; see {log}")


def _cli(config: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "chainlens.cli", *args, "-c", str(config)], check=True,
                   capture_output=True, env={k: v for k, v in os.environ.items() if not k.startswith("CHAINLENS_")})


async def end_to_end(speed: float = 30.0) -> None:
    work = Path(tempfile.mkdtemp(prefix="chainlens-live-e2e-"))
    got: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        got.append({"at": time.monotonic(), **(await request.json())})
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    hook_port = _port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    port, origin = _port(), "https://shop.example"
    config = {"store": {"dsn": f"chdb://{work}/db"},
              "collector": {"port": port, "spool_dir": str(work / "spool"), "rate_limit_rps": 0.0, "workers": 1},
              "rollup": {"every_s": 60},
              "sites": [{"id": "bench", "origins": [origin], "timezone": "UTC",
                         "alerts": {"webhook": f"http://127.0.0.1:{hook_port}/hook", "live_every_s": 1}}]}
    path = work / "chainlens.toml"
    path.write_text(dump_toml(config))
    site = from_mapping(config).sites[0]
    real = dt.datetime.now(dt.UTC).replace(microsecond=0)
    broken_at = real - dt.timedelta(minutes=70)
    history = traffic.events(site, carts_per_day=1000, start=broken_at - dt.timedelta(days=HISTORY_DAYS),
                             end=broken_at - dt.timedelta(hours=3), seed=11)
    lines = work / "history.jsonl"
    lines.write_bytes(b"\n".join(orjson.dumps(traffic.wire(r)) for r in history))
    log = work / "serve.log"
    url = f"http://127.0.0.1:{port}"
    proc = _serve(path, log, url)
    try:
        _cli(path, "import", str(lines), "--site", site.id)
        _cli(path, "rollup")
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        start = broken_at - dt.timedelta(minutes=10)
        began = time.monotonic()
        proc = _serve(path, log, url, clock=f"{start.isoformat()}*{speed:g}")
        live = [r for r in traffic.events(site, carts_per_day=1000, start=broken_at - dt.timedelta(hours=3),
                                          end=real, seed=12, breakage=traffic.Breakage(STEP, broken_at,
                                                                                       message=MESSAGE))
                if r.ts <= real.timestamp()]
        sessions: dict[str, list] = {}
        for r in live:
            sessions.setdefault(r.session_id, []).append(r)
        async with ClientSession() as http:
            for rows in sessions.values():
                events = [{k: v for k, v in traffic.wire(r).items() if k != "ua"} for r in rows]
                body = orjson.dumps({"site": site.id, "sent_at": int(time.time() * 1000), "events": events})
                ua = traffic.USER_AGENTS[f"{rows[0].browser} {rows[0].os} {rows[0].device}"]
                async with http.post(f"{url}/e", data=body, headers={
                        "Origin": origin, "Content-Type": "text/plain", "User-Agent": ua}) as resp:
                    assert resp.status == 202, await resp.text()
        sent = time.monotonic()
        deadline = began + 70 * 60 / speed + 30
        while time.monotonic() < deadline:
            stalls = [(p["at"], a) for p in got for a in p["alerts"]
                      if a["kind"] == "stall" and a["step"] == STEP and a["state"] == "open"]
            if stalls:
                at, alert = stalls[0]
                detected = dt.datetime.fromisoformat(alert["detected_at"])
                detected = detected if detected.tzinfo else detected.replace(tzinfo=dt.UTC)
                delay = (detected - broken_at).total_seconds() / 60
                print(f"end to end (a real serve, its clock x{speed:g}; 1,000 carts/day; {STEP} fully broken "
                      f"at {broken_at:%H:%M} UTC): detected {delay:.0f} min after the "
                      f"breakage by the serve's clock, at the webhook {at - began:.0f} s after the restart "
                      f"(live traffic all in by {sent - began:.0f} s); device {alert['device']}; "
                      f"{alert['message']}")
                break
            await asyncio.sleep(0.2)
        else:
            print("end to end: no alert reached the webhook")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        await runner.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fa-days", type=int, default=60)
    parser.add_argument("--levels", default="100,1000,10000")
    parser.add_argument("--e2e", action="store_true", help="only the end-to-end run through a real serve")
    args = parser.parse_args()
    if args.e2e:
        asyncio.run(end_to_end())
        return
    levels = [int(x) for x in args.levels.split(",")]
    print(f"live detector: lookback {live_alerts.LOOKBACK} min, threshold {live_alerts.THRESHOLD} "
          f"(+{live_alerts.DEVICE_EXTRA} per device, +{live_alerts.REACH_EXTRA} for reach), "
          f"hazard ratios {live_alerts.STALL_RATIOS}, reach ratio {live_alerts.REACH_RATIO}; step {STEP}; "
          f"{args.runs} runs each\n")
    table, alarms, cost, waits = [], [], {}, []
    started = time.monotonic()
    for carts in levels:
        work = Path(tempfile.mkdtemp(prefix="chainlens-live-bench-"))
        settings = from_mapping({"store": {"dsn": f"chdb://{work}/db"}, "sites": [{"id": "bench"}]})
        site = settings.sites[0]
        client = store.connect(settings.store.dsn)
        store.ensure_schema(client)
        history = list(traffic.events(site, carts_per_day=carts, start=START,
                                      end=START + dt.timedelta(days=HISTORY_DAYS), seed=1))
        insert(client, history)
        rollup(client, settings, now=START + dt.timedelta(days=HISTORY_DAYS, hours=1))
        costs: list[float] = []
        table += detection(client, site, carts, args.runs, costs)
        cost[carts] = statistics.median(costs)
        if carts == max(levels):  # the last detection run's shoppers are still in the store
            now = START + dt.timedelta(days=HISTORY_DAYS + args.runs, hours=3, minutes=10)
            for beside in (False, True, False, True):
                waits.append((beside, *asyncio.run(beside_rollup(client, settings, site, now, beside))))
        client.command("TRUNCATE TABLE alerts")
        client.command("DELETE FROM events WHERE ts >= {t:DateTime64(3)}",
                       parameters={"t": (START + dt.timedelta(days=HISTORY_DAYS)).replace(tzinfo=None)})
        opened, evaluations = false_alarms(client, settings, site, carts, args.fa_days)
        alarms.append(f"{carts:>10,} carts/day: {opened} alerts in {args.fa_days} days = "
                      f"{opened / args.fa_days * 30:.2f} per site-month ({evaluations:,} evaluations)")
        client.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'carts/day':>10} {'break':>7} {'hour':>6} {'delay':>6} {'found':<5} {'cause named first'}")
    print("\n".join(table))
    print("\nfalse alarms on steady traffic (weekends included)")
    print("\n".join(alarms))
    print("\none live pass (Detector.evaluate, median)")
    for carts, seconds in cost.items():
        print(f"{carts:>10,} carts/day: {seconds * 1000:.0f} ms")
    print(f"\na live pass asked for 0.2 s into a full rollup, {max(levels):,} carts/day")
    for beside, answered, rolled in waits:
        where = "beside the store's thread" if beside else "on the store's thread"
        print(f"  {where:<26} answered after {answered * 1000:6.0f} ms (the rollup took {rolled * 1000:,.0f} ms)")
    print(f"\n({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
