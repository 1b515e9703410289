"""How fast the early warning catches a broken step, and how often it cries wolf.

    .venv/bin/python bench/alerts.py [--days 90]

Simulates a site's checkout step (`checkout.shipping`) hour by hour for `--days`
days: carts per day at 100, 1,000 and 10,000; 60% of carts reach the step; a
daily rhythm (nights at a fifth of the evening peak); devices mobile 55%,
desktop 40%, tablet 5%; a steady abandonment of 20% at the step. The hourly
counts go straight into `checkout_hourly` of an embedded store, and the real
`ingestion.alerts.evaluate` runs every hour, as the rollup pass would.

- Detection: from day 60, at a given hour, abandonment rises by +10, +20 or +30
  percentage points, on all devices or on mobile only. It prints the delay until
  the first alert for that step (on `all` or on the broken device), in hours and
  in sessions that reached the step meanwhile.
- False alarms: on steady traffic, the alerts opened over the last 60 days per
  site-month (30 days).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chainlens.core.loading import from_mapping  # noqa: E402
from ingestion import store  # noqa: E402
from ingestion.alerts import evaluate  # noqa: E402

STEP = "checkout.shipping"
DEVICES = {"mobile": 0.55, "desktop": 0.40, "tablet": 0.05}
BASE_RATE = 0.20
REACH = 0.6
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def rhythm(hour: int) -> float:
    """Relative traffic by hour of day: low at 04:00, peak at 20:00 (their mean is 1)."""
    return (0.6 + 0.4 * -math.cos((hour - 8) / 24 * 2 * math.pi)) / 0.6


def binomial(rng: random.Random, n: int, p: float) -> int:
    if n > 200:  # normal approximation, clipped
        return max(0, min(n, round(rng.gauss(n * p, math.sqrt(n * p * (1 - p))))))
    return sum(rng.random() < p for _ in range(n))


def simulate(rng: random.Random, *, carts: int, days: int, rise: float = 0.0, break_at: dt.datetime | None = None,
             devices: tuple[str, ...] = tuple(DEVICES)) -> list[list]:
    """Hourly rows of checkout_hourly: per device and for 'all'."""
    rows = []
    for i in range(days * 24):
        hour = START + dt.timedelta(hours=i)
        mean = carts * REACH / 24 * rhythm(hour.hour)
        total_n = total_a = 0
        for device, share in DEVICES.items():
            n = max(0, round(rng.gauss(mean * share, math.sqrt(mean * share))))
            broken = break_at is not None and hour >= break_at and device in devices
            a = binomial(rng, n, BASE_RATE + (rise if broken else 0.0))
            rows.append(["bench", hour.date(), hour.replace(tzinfo=None), STEP, device, n, a])
            total_n, total_a = total_n + n, total_a + a
        rows.append(["bench", hour.date(), hour.replace(tzinfo=None), STEP, "all", total_n, total_a])
    return rows


def load(client, rows: list[list]) -> None:
    client.command("TRUNCATE TABLE checkout_hourly")
    client.command("TRUNCATE TABLE alerts")
    client.insert("checkout_hourly", rows,
                  column_names=["site_id", "day", "hour", "step", "device", "reached", "abandoned"])


def opened(found: list, devices: tuple[str, ...]) -> bool:
    return any(a.state == "open" and a.kind == "abandonment" and a.step == STEP
               and a.device in ("all", *devices) for a in found)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="chainlens-alerts-bench-"))
    settings = from_mapping({"store": {"dsn": f"chdb://{work}/db"}, "sites": [{"id": "bench"}]})
    site = settings.sites[0]
    client = store.connect(settings.store.dsn)
    store.ensure_schema(client)
    timeout = settings.rollup.session_timeout_s
    cfg = site.alerts
    print(f"settings: windows {list(cfg.window_hours)} h, baseline {cfg.baseline_days} days, "
          f"z >= {cfg.z_threshold}, rise >= {cfg.min_rise:.0%}, min sample {cfg.min_sample}; "
          f"{args.days} simulated days, step reached by {REACH:.0%} of carts, {BASE_RATE:.0%} abandonment\n")
    print(f"{'carts/day':>10} {'rise':>5} {'devices':>8} {'delay h':>8} {'sessions':>9}")
    started = time.monotonic()
    break_day = min(60, args.days - 3)
    results = []
    for carts in (100, 1_000, 10_000):
        for devices in (tuple(DEVICES), ("mobile",)):
            for rise in (0.10, 0.20, 0.30):
                rng = random.Random(f"{carts}-{rise}-{devices}")
                break_at = START + dt.timedelta(days=break_day, hours=rng.randrange(24))
                rows = simulate(rng, carts=carts, days=args.days, rise=rise, break_at=break_at, devices=devices)
                load(client, rows)
                delay, sessions = None, 0
                for h in range(0, 72):
                    now = break_at.replace(minute=0) + dt.timedelta(hours=h, minutes=35)
                    if opened(evaluate(client, site, now=now, timeout_s=timeout), devices):
                        delay = (now - break_at).total_seconds() / 3600
                        end = now - dt.timedelta(seconds=timeout)
                        sessions = sum(r[5] for r in rows if r[4] == "all" and break_at.replace(tzinfo=None)
                                       <= r[2] < end.replace(tzinfo=None, minute=0, second=0, microsecond=0))
                        break
                label = "all" if len(devices) > 1 else "mobile"
                shown = f"{delay:8.1f} {sessions:9,}" if delay is not None else f"{'> 72':>8} {'–':>9}"
                print(f"{carts:>10,} {rise * 100:>+4.0f}pp {label:>8} {shown}")
                results.append((carts, rise, label, delay))
    print("\nfalse alarms on steady traffic (alerts opened per site-month, over the last 60 days)")
    for carts in (100, 1_000, 10_000):
        rng = random.Random(f"steady-{carts}")
        load(client, simulate(rng, carts=carts, days=args.days))
        alarms = 0
        first = START + dt.timedelta(days=args.days - 60)
        for h in range(60 * 24):
            found = evaluate(client, site, now=first + dt.timedelta(hours=h, minutes=35), timeout_s=timeout)
            alarms += sum(a.state == "open" for a in found)
        print(f"{carts:>10,} carts/day: {alarms} alerts in 60 days = {alarms / 2:.1f} per site-month")
    print(f"\n({time.monotonic() - started:.0f} s)")
    client.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
