"""Minute-level checkout traffic with a daily rhythm, for the live early warning's tests, bench
and demo: shoppers enter the cart step at a rate that follows the hour of day (weekends at 80%),
and move on step by step after a lognormal wait, or leave.

A `Breakage` makes one step lose more shoppers from a given time on, optionally only on one
browser and with the `js_error` they meet there: the planted cause the detector should name.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
import uuid
import zoneinfo
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from chainlens.core.rows import EventRow
from chainlens.core.settings import Site

# (device, browser, os, share), and a user agent that reads as that client
CLIENTS = (("mobile", "Mobile Safari", "iOS", 0.33), ("mobile", "Chrome Mobile", "Android", 0.22),
           ("desktop", "Chrome", "Windows", 0.24), ("desktop", "Firefox", "Windows", 0.06),
           ("desktop", "Safari", "Mac OS X", 0.10), ("tablet", "Mobile Safari", "iOS", 0.05))
USER_AGENTS = {
    "Mobile Safari iOS mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
                                "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Chrome Mobile Android mobile": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                                    "Chrome/126.0.0.0 Mobile Safari/537.36",
    "Chrome Windows desktop": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                              "Chrome/126.0.0.0 Safari/537.36",
    "Firefox Windows desktop": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Safari Mac OS X desktop": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                               "Version/17.5 Safari/605.1.15",
    "Mobile Safari iOS tablet": "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
                                "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
}
SOURCES = (("(direct)", 0.4), ("google", 0.35), ("newsletter", 0.15), ("instagram", 0.1))
MOVE_ON = 0.85  # each checkout step's usual share of shoppers who go on to the next
MEDIAN_WAIT_MIN = 1.5  # the usual wait before the next step, lognormal
WAIT_SIGMA = 0.8
NOISE_ERROR = 0.01  # shoppers who meet a harmless js_error at a step


@dataclass(frozen=True)
class Breakage:
    step: str
    at: dt.datetime
    rise: float = 1.0  # the step's abandonment rises by this share; 1.0: nobody gets past it
    browser: str = ""  # only shoppers on this browser ('': everyone)
    message: str = ""  # the js_error its shoppers meet there ('': none)
    until: dt.datetime | None = None  # repaired then (None: still broken)


def rhythm(local: dt.datetime) -> float:
    """Relative traffic by local time: low at 04:00, peak at 20:00, weekends at 80%."""
    daily = (0.6 + 0.4 * -math.cos((local.hour + local.minute / 60 - 8) / 24 * 2 * math.pi)) / 0.6
    return daily * (0.8 if local.weekday() >= 5 else 1.0)


def _pick(rng: random.Random, options: tuple[tuple, ...]) -> tuple:
    x, total = rng.random(), 0.0
    for option in options:
        total += option[-1]
        if x < total:
            return option
    return options[-1]


def events(site: Site, *, carts_per_day: float, start: dt.datetime, end: dt.datetime, seed: int = 1,
           breakage: Breakage | None = None) -> Iterator[EventRow]:
    """The events of every shopper who enters the cart step from `start` to `end` (each shopper's
    whole path, which may run past `end`)."""
    rng = random.Random(seed)
    tz = zoneinfo.ZoneInfo(site.timezone)
    steps = site.chain[site.chain.index(site.checkout_from):]
    t = start
    while t < end:
        rate = carts_per_day / 1440 * rhythm(t.astimezone(tz))
        for _ in range(_poisson(rng, rate)):
            yield from _shopper(site, rng, t + dt.timedelta(seconds=rng.random() * 60), steps, breakage)
        t += dt.timedelta(minutes=1)


def _shopper(site: Site, rng: random.Random, at: dt.datetime, steps: tuple[str, ...],
             breakage: Breakage | None) -> Iterator[EventRow]:
    device, browser, os, _ = _pick(rng, CLIENTS)
    source = _pick(rng, SOURCES)[0]
    session = uuid.UUID(int=rng.getrandbits(128)).hex
    ms = at.timestamp() * 1000

    def row(kind: str, step: str, name: str = "", **props: str) -> EventRow:
        url = f"https://shop.example/{step.replace('.', '/')}"
        return EventRow(site.id, str(uuid.UUID(int=rng.getrandbits(128))), session, "a" + session, "", 1, kind, step,
                        name, ms / 1000, ms / 1000, ms / 1000, url, "", props, None, "", "", device, browser, os,
                        False, "e")

    first = {"utm_source": source} if source != "(direct)" else {}
    for i, step in enumerate(steps):
        yield row("page", step, **(first if i == 0 else {}))
        if i == len(steps) - 1:
            return
        broken = (breakage is not None and step == breakage.step and ms >= breakage.at.timestamp() * 1000
                  and (breakage.until is None or ms < breakage.until.timestamp() * 1000)
                  and breakage.browser in ("", browser))
        # A broken step stops a share of its shoppers (all of them at rise 1.0), and they meet its error.
        if broken and rng.random() < breakage.rise / MOVE_ON:  # type: ignore[union-attr]
            if breakage.message:  # type: ignore[union-attr]
                ms += 2000
                yield row("obstacle", step, "js_error", message=breakage.message)  # type: ignore[union-attr]
            return
        if rng.random() < NOISE_ERROR:
            yield row("obstacle", step, "js_error", message=rng.choice(("Script error.", "ResizeObserver loop")))
        if rng.random() >= MOVE_ON:
            return
        ms += 60_000 * MEDIAN_WAIT_MIN * math.exp(rng.gauss(0, WAIT_SIGMA))


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def wire(row: EventRow) -> dict[str, Any]:
    """The event as the snippet sends it (docs/snippet.md), with its client's user agent as `ua`
    (what `chainlens import` reads)."""
    out: dict[str, Any] = {"id": row.event_id, "type": row.type, "ts": round(row.ts * 1000), "sid": row.session_id,
                           "aid": row.anon_id, "sn": row.session_number, "step": row.step, "url": row.url,
                           "ua": USER_AGENTS[f"{row.browser} {row.os} {row.device}"]}
    if row.name:
        out["name"] = row.name
    if row.props:
        out["props"] = row.props
    return out


class Entries:
    """The sessions' first entries at each step, answering what the live detector's query would at
    any `now` without a store (the bench's and tests' minute-by-minute runs)."""

    def __init__(self, rows: Iterable[EventRow], chain: tuple[str, ...]) -> None:
        sessions: dict[str, tuple[str, dict[str, int]]] = {}
        for r in rows:
            if r.step in chain:
                device, entered = sessions.setdefault(r.session_id, (r.device, {}))
                ms = round(r.ts * 1000)
                entered[r.step] = min(entered.get(r.step, ms), ms)
        self._sessions = sorted((min(e.values()), sid, d, e) for sid, (d, e) in sessions.items())
        self._firsts = [s[0] for s in self._sessions]

    def at(self, now: dt.datetime, *, lookback_min: int, timeout_s: int) -> list[tuple[str, str, tuple]]:
        now_ms = now.timestamp() * 1000
        lo = now_ms - lookback_min * 60_000 - timeout_s * 1000
        out = []
        for _, sid, device, entered in self._sessions[bisect.bisect_left(self._firsts, lo):
                                                      bisect.bisect_right(self._firsts, now_ms)]:
            kept = [(s, t) for s, t in entered.items() if t <= now_ms]
            out.append((sid, device, ([s for s, _ in kept], [t for _, t in kept])))
        return out
