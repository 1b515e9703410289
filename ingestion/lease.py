"""The rollup lease: one runner of the rollup pass per store, however many collector nodes.

ClickHouse has no compare-and-set, so a lease is taken by writing a row and
reading back which row won: the latest `taken` (ties go to the greater holder
name), after a pause long enough for a rival's write, issued at about the same
moment, to be visible. A runner that finds another holder's unexpired row skips
its pass. Rows are tiny and few (ReplacingMergeTree keeps one per name).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from ingestion.runner import StoreRunner

NAME = "rollup"
SETTLE_S = 1.0
TTL_S = 900  # renewed every third of it while a pass runs


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Lease:
    holder: str
    expires: dt.datetime


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def current(client: Client) -> Lease | None:
    """The winning row, if it has not expired."""
    rows = client.query(
        "SELECT argMax(holder, (taken, holder)), argMax(expires, (taken, holder)) FROM rollup_lease "
        "WHERE name = {name:String} HAVING count() > 0", parameters={"name": NAME}).result_rows
    if not rows:
        return None
    holder, expires = rows[0]
    expires = expires.replace(tzinfo=dt.UTC) if expires.tzinfo is None else expires
    return Lease(holder, expires) if expires > _now() else None


def write(client: Client, holder: str, ttl_s: float) -> None:
    now = _now()
    client.insert("rollup_lease", [[NAME, holder, now, now + dt.timedelta(seconds=ttl_s)]],
                  column_names=["name", "holder", "taken", "expires"])


async def take(runner: StoreRunner, holder: str, *, ttl_s: float = TTL_S, settle_s: float = SETTLE_S) -> Lease | None:
    """None when `holder` now holds the lease; else the lease of the runner that does."""
    other = await runner.call(current)
    if other is not None and other.holder != holder:
        return other
    await runner.call(write, holder, ttl_s)
    await asyncio.sleep(settle_s)  # a rival that wrote at about the same time is visible by now
    winner = await runner.call(current)
    if winner is not None and winner.holder != holder:
        return winner
    return None


async def release(runner: StoreRunner, holder: str) -> None:
    await runner.call(write, holder, 0)


async def keep(runner: StoreRunner, holder: str, *, ttl_s: float = TTL_S) -> None:
    """Renew the lease while a long pass runs (cancelled when it ends)."""
    while True:
        await asyncio.sleep(ttl_s / 3)
        await runner.call(write, holder, ttl_s)
