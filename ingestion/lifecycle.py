"""A shopper's data: found, exported and forgotten; and kept only as long as the site says
(docs/privacy.md).

A person is a user id (every visitor id seen with it, and all their sessions), a visitor id
(its sessions), or an order (its events and the session that placed it); with their sessions
come their orders, and with their orders every report and answer about them. `forget` removes
their rows from every row-level table (`ROW_TABLES`), rebuilds the days whose daily tables
counted them, empties the staging copies and writes an audit row to `forget_log` that names
the person only by a salted hash. `expire` applies the site's retention.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client

from chainlens.core.settings import Site
from ingestion.rollup import rebuild_days

KINDS = ("user", "visitor", "order")
DONE = "SETTINGS mutations_sync = 2"  # a DELETE returns once its rows are gone, on either engine


@dataclass(frozen=True)
class Person:
    site: Site
    kind: str  # one of KINDS
    key: str
    anon_ids: tuple[str, ...]
    sessions: tuple[str, ...]
    orders: tuple[str, ...]

    @property
    def parameters(self) -> dict[str, Any]:
        users = [self.key] if self.kind == "user" else []
        return {"site": self.site.id, "users": users, "anon_ids": list(self.anon_ids),
                "sessions": list(self.sessions), "orders": list(self.orders)}


def _column(client: Client, sql: str, **params: Any) -> list[Any]:
    return [r[0] for r in client.query(sql, parameters=params).result_rows]


def find(client: Client, site: Site, kind: str, key: str) -> Person:
    """Whom `kind`/`key` names on `site`, as far as the store knows them."""
    if kind not in KINDS:
        raise ValueError(f"forget or export by one of {', '.join(KINDS)}, not {kind!r}")
    if not key:
        raise ValueError(f"--{kind}: an id is required")
    p = {"site": site.id, "key": key}
    if kind == "user":
        anon = _column(client, "SELECT DISTINCT anon_id FROM events WHERE site_id = {site:String} "
                               "AND user_id = {key:String} AND anon_id != ''", **p)
    elif kind == "visitor":
        anon = [key]
    else:
        anon = []
    if kind == "order":
        sessions = _column(client, """
            SELECT DISTINCT session_id FROM events WHERE site_id = {site:String} AND order_id = {key:String}
                AND NOT startsWith(session_id, 'order:')
            UNION DISTINCT
            SELECT session_id FROM chain_orders WHERE site_id = {site:String} AND order_id = {key:String}""", **p)
    else:
        sessions = _column(client, """
            SELECT DISTINCT session_id FROM events WHERE site_id = {site:String}
                AND (user_id = {user:String} OR anon_id IN {anon:Array(String)})
            UNION DISTINCT
            SELECT session_id FROM chain_sessions WHERE site_id = {site:String} AND anon_id IN {anon:Array(String)}""",
            site=site.id, user=key if kind == "user" else "\x00", anon=anon)
    orders = _column(client, """
        SELECT DISTINCT order_id FROM events WHERE site_id = {site:String} AND session_id IN {sessions:Array(String)}
            AND order_id != ''
        UNION DISTINCT
        SELECT order_id FROM chain_orders WHERE site_id = {site:String} AND session_id IN {sessions:Array(String)}""",
        site=site.id, sessions=sessions)
    if kind == "order":
        orders = sorted({*orders, key})
    return Person(site, kind, key, tuple(sorted(anon)), tuple(sorted(sessions)), tuple(sorted(orders)))


def _mentions(x: str) -> str:
    """SQL: the JSON object `x` (an event as sent, or a dropped field's note) names the person."""
    def raw(*path: str) -> str:  # a string or a number, as text
        keys = ", ".join(f"'{k}'" for k in path)
        return f"trim(BOTH '\"' FROM JSONExtractRaw({x}, {keys}))"
    return (f"({raw('sid')} IN {{sessions:Array(String)}} OR {raw('aid')} IN {{anon_ids:Array(String)}}"
            f" OR {raw('uid')} IN {{users:Array(String)}} OR {raw('order_id')} IN {{orders:Array(String)}}"
            f" OR {raw('props', 'order_id')} IN {{orders:Array(String)}}"
            f" OR {raw('props', 'transaction_id')} IN {{orders:Array(String)}}"
            f" OR {raw('event_id')} IN {{event_ids:Array(String)}})")


# Where a person's rows are, table by table: the row-level tables (the daily tables count
# people and name nobody; they are rebuilt instead). `order_events` is a copy of the events that
# name an order (ingestion/store.py, COPIES): removed with them, not exported twice. A rejected
# payload is an event as sent, a whole refused body (its `events`), a dropped field's note, or
# text that is not JSON, searched for the ids as quoted strings.
_THEIR_EVENTS = ("site_id = {site:String} AND (session_id IN {sessions:Array(String)} "
                 "OR order_id IN {orders:Array(String)})")
ROW_TABLES: dict[str, str] = {
    "events": _THEIR_EVENTS,
    "order_events": _THEIR_EVENTS,
    "events_rejected": "site_id = {site:String} AND if(isValidJSON(payload), "
                       f"{_mentions('payload')} OR arrayExists(e -> {_mentions('e')}, "
                       "JSONExtractArrayRaw(payload, 'events')), "
                       "arrayExists(n -> position(payload, concat('\"', n, '\"')) > 0, "
                       "arrayFilter(n -> n != '', arrayConcat({users:Array(String)}, {anon_ids:Array(String)}, "
                       "{sessions:Array(String)}, {orders:Array(String)}))))",
    "chain_sessions": "site_id = {site:String} AND (session_id IN {sessions:Array(String)} "
                      "OR anon_id IN {anon_ids:Array(String)})",
    "chain_orders": "site_id = {site:String} AND (order_id IN {orders:Array(String)} "
                    "OR session_id IN {sessions:Array(String)})",
    "customers": "site_id = {site:String} AND (customer IN {users:Array(String)} "
                 "OR customer IN {anon_ids:Array(String)} OR hasAny(order_ids, {orders:Array(String)}))",
}


def _parameters(client: Client, person: Person) -> dict[str, Any]:
    """The person's ids, and the ids of their events (a dropped field's note names its event)."""
    params = person.parameters
    params["event_ids"] = _column(client, "SELECT toString(event_id) FROM events WHERE " + ROW_TABLES["events"],
                                  **params)
    return params


def key_hash(site: Site, kind: str, key: str) -> str:
    """The audit's name for a person: HMAC-SHA256 of kind and id, keyed by the site's secret."""
    salt = f"{site.id}:{site.secret}".encode()
    return hmac.new(salt, f"{kind}:{key}".encode(), hashlib.sha256).hexdigest()


def _days(client: Client, person: Person, params: dict[str, Any]) -> list[dt.date]:
    """The days whose daily tables counted the person: the site-time days of their events, of their
    sessions and orders as stored, and the day after each session's (its answers may fall there)."""
    tz = {"tz": person.site.timezone}
    days = set(_column(client, "SELECT DISTINCT toDate(ts, {tz:String}) FROM events WHERE " + ROW_TABLES["events"],
                       **params, **tz))
    for table in ("chain_sessions", "chain_orders"):
        days |= set(_column(client, f"SELECT DISTINCT day FROM {table} WHERE {ROW_TABLES[table]}", **params))
    days |= {d + dt.timedelta(days=1) for d in days}
    return sorted(days)


def forget(client: Client, site: Site, kind: str, key: str, *, timeout_s: int, now: dt.datetime,
           dry_run: bool = False) -> dict[str, Any]:
    """Remove everything stored about one person (or order), rebuild the days that counted them,
    and audit it; with `dry_run`, only say what would go. Running it again removes nothing more."""
    started = time.monotonic()
    person = find(client, site, kind, key)
    params = _parameters(client, person)
    rows = {t: int(_column(client, f"SELECT count() FROM {t} WHERE {where}", **params)[0])
            for t, where in ROW_TABLES.items()}
    days = _days(client, person, params)
    summary: dict[str, Any] = {"site": site.id, "what": kind, "key_hash": key_hash(site, kind, key),
                               "sessions": len(person.sessions), "orders": len(person.orders), "rows": rows,
                               "days": [d.isoformat() for d in days], "dry_run": dry_run}
    if dry_run:
        return summary
    for table, where in ROW_TABLES.items():
        if rows[table]:
            client.command(f"ALTER TABLE {table} DELETE WHERE {where} {DONE}", parameters=params)
    removed_at = time.monotonic()
    rebuilt = rebuild_days(client, site, days, timeout_s=timeout_s, now=now)
    summary["seconds_removing"] = round(removed_at - started, 3)
    summary["seconds_rebuilding"] = round(time.monotonic() - removed_at, 3)
    left = {t: int(_column(client, f"SELECT count() FROM {t} WHERE {where}", **params)[0])
            for t, where in ROW_TABLES.items()}
    if any(left.values()):  # an event of theirs loaded meanwhile: it goes too, and its days again
        for table, where in ROW_TABLES.items():
            client.command(f"ALTER TABLE {table} DELETE WHERE {where} {DONE}", parameters=params)
        rebuilt = rebuild_days(client, site, days, timeout_s=timeout_s, now=now)
        rows = {t: rows[t] + left[t] for t in rows}
    client.insert("forget_log", [[site.id, now, kind, summary["key_hash"], rows, len(rebuilt)]],
                  column_names=["site_id", "at", "what", "key_hash", "rows_removed", "days_rebuilt"])
    summary.update(rows=rows, days_rebuilt=len(rebuilt), seconds=round(time.monotonic() - started, 3))
    return summary


def export(client: Client, site: Site, kind: str, key: str) -> Iterator[dict[str, Any]]:
    """Everything stored about one person, table by table: {"table": NAME, "row": {...}}. Their
    events (reports about their orders and their answers among them, by time), their sessions and
    orders as the rollups hold them, and what was refused from them."""
    person = find(client, site, kind, key)
    params = _parameters(client, person)
    order = {"events": "ts, event_id", "events_rejected": "received_at", "chain_sessions": "started_at",
             "chain_orders": "day, order_id", "customers": "customer"}  # every row-level table but the copy
    for table, by in order.items():
        result = client.query(f"SELECT * FROM {table} WHERE {ROW_TABLES[table]} ORDER BY {by}", parameters=params)
        for values in result.result_rows:
            yield {"table": table, "row": dict(zip(result.column_names, values, strict=True))}


def expire(client: Client, site: Site, *, now: dt.datetime) -> dict[str, int]:
    """The site's retention (`keep_raw_days`, `keep_sessions_days`): the rows older than the first
    day kept, per table (run after the pass's rollup, so the days going are rolled up)."""
    today = now.astimezone(zoneinfo.ZoneInfo(site.timezone)).date()
    raw, sessions = site.kept_from(today, site.keep_raw_days), site.kept_from(today, site.keep_sessions_days)
    tz = site.timezone
    rules = []
    if raw:
        rules += [("events", "toDate(ts, {tz:String}) < {raw:Date}"),
                  ("order_events", "toDate(ts, {tz:String}) < {raw:Date}"),
                  ("events_rejected", "toDate(received_at, {tz:String}) < {raw:Date}")]
    if sessions:  # (customers are rebuilt from chain_orders at every pass: their old orders go with it)
        rules += [("chain_sessions", "day < {sessions:Date}"), ("chain_orders", "day < {sessions:Date}")]
    removed = {}
    for table, older in rules:
        params = {"site": site.id, "tz": tz, "raw": raw, "sessions": sessions}
        where = f"site_id = {{site:String}} AND {older}"
        n = int(_column(client, f"SELECT count() FROM {table} WHERE {where}", **params)[0])
        if n:
            client.command(f"ALTER TABLE {table} DELETE WHERE {where} {DONE}", parameters=params)
            removed[table] = n
    return removed
