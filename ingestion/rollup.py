"""Rollups: materialize the per-step tables from raw events, incrementally and idempotently.

A run, per site:
1. finds the days to recompute: the start days of sessions that received events
   since the last run's watermark (kept in `rollup_state`), plus the days from
   `pending_from` on (sessions still open last time), or `--since/--until`;
2. for each run of consecutive days (at most a week at a time) builds
   `chain_sessions` once from raw events into a staging table and derives every
   other table from it (one SQL file per table in ingestion/rollups/);
3. swaps each recomputed (site, day) partition in with REPLACE PARTITION, so a
   day is replaced whole and running twice gives identical tables;
4. records the new watermark and the first day that still has open sessions.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client

from chainlens.core import clock
from chainlens.core.settings import ConfigError, Settings, Site
from ingestion.tables import PHASES, TABLES, Pass, Phase, Table, in_phase, parameters

log = logging.getLogger(__name__)

CHUNK_DAYS = 7


@dataclass
class SiteRollup:
    site_id: str
    days: list[dt.date] = field(default_factory=list)
    sessions: int = 0
    seconds: float = 0.0
    table_seconds: dict[str, float] = field(default_factory=dict)  # time spent building each table


def check_segments(client: Client, site: Site) -> None:
    """Ask the store to type each of the site's segment conditions: ConfigError naming the
    segment when it cannot (a wrong type, an unknown function)."""
    for i, segment in enumerate(site.segments):
        try:
            client.query(f"SELECT toBool({segment.where}) FROM chain_sessions LIMIT 0")
        except Exception as exc:  # the store's message says what is wrong
            reason = str(exc).split("\n")[0][:300]
            raise ConfigError(site.id, f"segments[{i}].where", f"segment {segment.name!r}: {reason}") from None


def rollup(
    client: Client, settings: Settings, *, now: dt.datetime | None = None, since: dt.date | None = None,
    until: dt.date | None = None, sites: Iterable[Site] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[SiteRollup]:
    now = now or clock.now()
    return [
        rollup_site(client, site, timeout_s=settings.rollup.session_timeout_s, now=now, since=since, until=until,
                    progress=progress)
        for site in (sites or settings.sites)
    ]


def rollup_site(
    client: Client, site: Site, *, timeout_s: int, now: dt.datetime, since: dt.date | None = None,
    until: dt.date | None = None, progress: Callable[[int, int], None] | None = None,
) -> SiteRollup:
    started = time.monotonic()
    tz = zoneinfo.ZoneInfo(site.timezone)
    closed_before = now - dt.timedelta(seconds=timeout_s)
    result = SiteRollup(site.id)
    check_segments(client, site)
    watermark = _scalar(client, "SELECT max(received_at) FROM events WHERE site_id = {site:String}", site=site.id)
    if watermark is None or watermark.year < 1971:
        return result
    previous = _state(client, site)
    days = _days_to_recompute(client, site, tz=tz, now=now, since=since, until=until, state=previous)
    order_days, answer_days = _after_purchase_days(client, site, now=now, since=since, until=until, state=previous,
                                                   session_days=days)
    # Days whose raw events the site no longer keeps are never rebuilt: their daily rows stay.
    kept = site.kept_from(now.astimezone(tz).date(), site.keep_raw_days) or dt.date.min
    days, order_days, answer_days = ([d for d in x if d >= kept] for x in (days, order_days, answer_days))
    phase_days: dict[Phase, list[dt.date]] = {"sessions": days, "orders": order_days, "answers": answer_days}
    work = [(phase, chunk) for phase in PHASES for chunk in _chunks(phase_days[phase])]
    for i, (phase, chunk) in enumerate(work):
        result.sessions += _rebuild(client, site, chunk, in_phase(phase), tz=tz, closed_before=closed_before,
                                    timings=result.table_seconds)
        if progress:
            progress(i + 1, len(work))
    _rebuild_site(client, site, tz=tz, now=now, closed_before=closed_before, timings=result.table_seconds)
    pending = _scalar(client, """
        SELECT minOrNull(toDate(start, {tz:String})) FROM (
            SELECT min(ts) AS start, max(ts) AS last FROM events
            WHERE site_id = {site:String} AND NOT is_bot AND ts >= {lo:DateTime64(3)}
            GROUP BY session_id HAVING last >= {closed_before:DateTime64(3)})""",
        site=site.id, tz=site.timezone, lo=closed_before - dt.timedelta(days=1), closed_before=closed_before)
    client.insert("rollup_state", [[site.id, watermark, pending, now]],
                  column_names=["site_id", "watermark", "pending_from", "run_at"])
    result.days, result.seconds = days, time.monotonic() - started
    log.info("rollup done", extra={"site": site.id, "days": len(days), "sessions": result.sessions,
                                   "seconds": round(result.seconds, 3)})
    return result


def rebuild_days(client: Client, site: Site, days: Iterable[dt.date], *, timeout_s: int,
                 now: dt.datetime) -> list[dt.date]:
    """Rebuild every table, phase by phase, for `days` as a pass would (the ones the site still
    keeps raw events for), then empty the staging copies; the days rebuilt."""
    tz = zoneinfo.ZoneInfo(site.timezone)
    today = now.astimezone(tz).date()
    kept = site.kept_from(today, site.keep_raw_days) or dt.date.min
    chosen = sorted(d for d in set(days) if kept <= d <= today)
    timings: dict[str, float] = {}
    closed_before = now - dt.timedelta(seconds=timeout_s)
    for phase in PHASES:
        for chunk in _chunks(chosen):
            _rebuild(client, site, chunk, in_phase(phase), tz=tz, closed_before=closed_before, timings=timings)
    _rebuild_site(client, site, tz=tz, now=now, closed_before=closed_before, timings=timings)
    for table in TABLES:
        client.command(f"TRUNCATE TABLE {table.name}_staging")
    return chosen


def _state(client: Client, site: Site) -> tuple[dt.datetime, dt.date | None] | None:
    """The last run's watermark and first day with open sessions; None before the first run."""
    rows = client.query("SELECT watermark, pending_from FROM rollup_state FINAL WHERE site_id = {site:String}",
                        parameters={"site": site.id}).result_rows
    return (rows[0][0], rows[0][1]) if rows else None


def _after_purchase_days(
    client: Client, site: Site, *, now: dt.datetime, since: dt.date | None, until: dt.date | None,
    state: tuple[dt.datetime, dt.date | None] | None, session_days: list[dt.date],
) -> tuple[list[dt.date], list[dt.date]]:
    """The purchase days and answer days to rebuild: those with anything new about their orders or
    answers since the last run (a delivery months later rebuilds its purchase day only), the
    session days rebuilt (segments may have changed), or every day in --since/--until."""
    today = now.astimezone(zoneinfo.ZoneInfo(site.timezone)).date()
    params: dict[str, Any] = {"site": site.id, "tz": site.timezone, "last": site.chain[-1],
                              "first": since or dt.date(1970, 1, 1), "until": min(until or today, today)}
    if since or until or state is None:
        orders_touched = answers_touched = "1"
    else:
        params["watermark"] = state[0]
        orders_touched = ("order_id IN (SELECT order_id FROM order_events WHERE site_id = {site:String} "
                          "AND received_at > {watermark:DateTime64(3)})")
        answers_touched = f"(received_at > {{watermark:DateTime64(3)}} OR {orders_touched})"
    orders = client.query(f"""
        SELECT DISTINCT day FROM (
            SELECT toDate(min(ts), {{tz:String}}) AS day FROM order_events
            WHERE site_id = {{site:String}} AND step = {{last:String}} AND {orders_touched}
            GROUP BY order_id)
        WHERE day BETWEEN {{first:Date}} AND {{until:Date}}""", parameters=params).result_rows
    answers = client.query(f"""
        SELECT DISTINCT day FROM (
            SELECT toDate(ts, {{tz:String}}) AS day FROM events
            WHERE site_id = {{site:String}} AND type = 'track' AND name = 'feedback' AND {answers_touched})
        WHERE day BETWEEN {{first:Date}} AND {{until:Date}}""", parameters=params).result_rows
    # A session rebuilt now may have been open at the last pass: its orders and answers were built
    # then without it (no device, segment or obstacles to link). Its answers fall on its start day
    # or the next (sessions last less than a day).
    rebuilt = set() if since or until else set(session_days)
    order_days = {r[0] for r in orders} | rebuilt
    answer_days = {r[0] for r in answers} | rebuilt | {d + dt.timedelta(days=1) for d in rebuilt}
    return sorted(order_days), sorted(d for d in answer_days if d <= params["until"])


def _days_to_recompute(
    client: Client, site: Site, *, tz: zoneinfo.ZoneInfo, now: dt.datetime, since: dt.date | None,
    until: dt.date | None, state: tuple[dt.datetime, dt.date | None] | None,
) -> list[dt.date]:
    today = now.astimezone(tz).date()
    if since or until:
        first, last = since or _first_day(client, site), min(until or today, today)
        if first is None or first > last:
            return []
        return _held(client, site, _range(first, last), tz=tz)
    if state is None:  # the first run: everything there is
        return _held(client, site, _range(_first_day(client, site), today), tz=tz)
    watermark, pending_from = state
    # Start days of the sessions that received anything since the last run (late events included).
    touched = client.query("""
        SELECT DISTINCT toDate(min(ts), {tz:String}) AS day FROM events
        WHERE site_id = {site:String} AND session_id IN (
            SELECT DISTINCT session_id FROM events
            WHERE site_id = {site:String} AND received_at > {watermark:DateTime64(3)})
        GROUP BY session_id ORDER BY day""",
        parameters={"site": site.id, "tz": site.timezone, "watermark": watermark}).result_rows
    days = {row[0] for row in touched}
    if pending_from is not None:  # sessions open last time may have closed since
        days.update(_range(pending_from, today))
    return _held(client, site, sorted(d for d in days if d <= today), tz=tz)


def _held(client: Client, site: Site, days: list[dt.date], *, tz: zoneinfo.ZoneInfo) -> list[dt.date]:
    """The days among `days` with events or with rollup rows to replace: a day with neither would
    be rebuilt to nothing, and its pass would still scan the events around it."""
    if not days:
        return []
    first, last = days[0], days[-1]
    held = client.query("""
        SELECT DISTINCT toDate(ts, {tz:String}) AS day FROM events
        WHERE site_id = {site:String} AND ts >= {lo:DateTime64(3)} AND ts < {hi:DateTime64(3)}
        UNION DISTINCT
        SELECT DISTINCT day FROM chain_sessions
        WHERE site_id = {site:String} AND day BETWEEN {first:Date} AND {last:Date}""",
        parameters={"site": site.id, "tz": site.timezone, "first": first, "last": last,
                    "lo": _midnight(first, tz), "hi": _midnight(last + dt.timedelta(days=1), tz)}).result_rows
    kept = {r[0] for r in held}
    return [d for d in days if d in kept]


def _rebuild(client: Client, site: Site, days: list[dt.date], tables: tuple[Table, ...], *, tz: zoneinfo.ZoneInfo,
             closed_before: dt.datetime, timings: dict[str, float]) -> int:
    """Rebuild `tables` for `days` (consecutive) in their staging copies, then swap each day in.
    Returns the sessions the pass built (0 for a phase without chain_sessions)."""
    for table in tables:
        client.command(f"TRUNCATE TABLE {table.name}_staging")
    # Everything a day's sessions, orders or answers hold is at or after that day's midnight (a
    # session's day is its first event's); sessions last under a day, so a day after the last.
    work = Pass(site=site, days=days, lo=_midnight(days[0], tz),
                hi=_midnight(days[-1] + dt.timedelta(days=2), tz), closed_before=closed_before)
    for table in tables:
        started = time.monotonic()
        client.command(table.sql(site), parameters=parameters(table, work))
        timings[table.name] = timings.get(table.name, 0.0) + time.monotonic() - started
    built = any(t.name == "chain_sessions" for t in tables)
    sessions = int(_scalar(client, "SELECT count() FROM chain_sessions_staging") or 0) if built else 0
    for table in tables:
        filled = {r[0] for r in client.query(f"SELECT DISTINCT day FROM {table.name}_staging").result_rows}
        for day in days:
            # Partition literals cannot be bound parameters; site ids are checked to be
            # [A-Za-z0-9_-] by the settings and days are dates, so the text is safe.
            partition = f"('{site.id}', '{day.isoformat()}')"
            if day in filled:
                client.command(f"ALTER TABLE {table.name} REPLACE PARTITION {partition} FROM {table.name}_staging")
            else:
                client.command(f"ALTER TABLE {table.name} DROP PARTITION {partition}")
    return sessions


def _rebuild_site(client: Client, site: Site, *, tz: zoneinfo.ZoneInfo, now: dt.datetime,
                  closed_before: dt.datetime, timings: dict[str, float]) -> None:
    """Rebuild the tables that span every day of the site ("site" phase, in order) in their staging
    copies, then swap the site's partition in: a pass leaves them as a recompute would."""
    today = now.astimezone(tz).date()
    work = Pass(site=site, days=[today], lo=_midnight(today, tz), hi=_midnight(today + dt.timedelta(days=1), tz),
                closed_before=closed_before)
    tables = in_phase("site")
    for table in tables:
        client.command(f"TRUNCATE TABLE {table.name}_staging")
    for table in tables:
        started = time.monotonic()
        client.command(table.sql(site), parameters=parameters(table, work))
        timings[table.name] = timings.get(table.name, 0.0) + time.monotonic() - started
    for table in tables:
        filled = _scalar(client, f"SELECT count() FROM {table.name}_staging")
        verb = "REPLACE" if filled else "DROP"
        # The site id is checked to be [A-Za-z0-9_-] by the settings: safe as a partition literal.
        source = f" FROM {table.name}_staging" if filled else ""
        client.command(f"ALTER TABLE {table.name} {verb} PARTITION '{site.id}'{source}")


def _midnight(day: dt.date, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tz).astimezone(dt.UTC)


def _first_day(client: Client, site: Site) -> dt.date | None:
    return _scalar(client, "SELECT toDate(min(ts), {tz:String}) FROM events WHERE site_id = {site:String}",
                   site=site.id, tz=site.timezone)


def _scalar(client: Client, query: str, **params: Any) -> Any:
    rows = client.query(query, parameters=params).result_rows
    return rows[0][0] if rows else None


def _range(first: dt.date | None, last: dt.date) -> list[dt.date]:
    if first is None or first > last:
        return []
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _chunks(days: list[dt.date]) -> list[list[dt.date]]:
    """Runs of consecutive days, at most CHUNK_DAYS long."""
    chunks: list[list[dt.date]] = []
    for day in days:
        if chunks and day - chunks[-1][-1] == dt.timedelta(days=1) and len(chunks[-1]) < CHUNK_DAYS:
            chunks[-1].append(day)
        else:
            chunks.append([day])
    return chunks

