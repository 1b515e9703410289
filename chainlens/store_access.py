"""Reaching the store from a command: through the running collector, or directly.

An embedded directory has a single owner: while `chainlens serve` holds it,
commands go through its admin API (address and token in `admin.json` in the
spool directory); otherwise they open the store themselves. A server store
(http/https) has no single owner: commands always connect to it directly.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import zoneinfo
from typing import Any

import orjson

from chainlens.core.owner import admin_file, held_by
from chainlens.core.settings import Settings, Site, embedded_path, is_embedded
from ingestion import figures, store
from ingestion.admin import read_only_problem
from ingestion.live import live_state


class CommandError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def run_query(settings: Settings, query: str, *, fmt: str, parameters: dict[str, Any] | None = None,
              write: bool = False) -> bytes:
    """A query's output in a ClickHouse format, through the running service or directly; read-only
    unless `write`, either way."""
    problem = "" if write else read_only_problem(query)
    if problem:
        raise CommandError(problem)
    link = running_service(settings)
    if link:
        body = {"query": query, "format": fmt, "parameters": parameters, "write": write}
        return admin_call(link, "/admin/sql", orjson.dumps(body))
    with direct_store(settings, create=False) as client:
        try:
            return bytes(client.raw_query(query, parameters=parameters, fmt=fmt))
        except Exception as exc:
            raise CommandError(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)) from None


PLACEHOLDER = re.compile(r"\{(\w+):")


def site_parameters(site: Site, query: str) -> dict[str, Any] | None:
    """The site's settings a query names as parameters (docs/queries.md), or None when it names
    none: a query without placeholders is sent as written (its `%` and braces untouched)."""
    today = dt.datetime.now(zoneinfo.ZoneInfo(site.timezone)).date()
    values = figures.parameters(site, start=today - dt.timedelta(days=6), end=today)
    used = {name: values[name] for name in PLACEHOLDER.findall(query) if name in values}
    return used or None


def running_service(settings: Settings) -> dict[str, Any] | None:
    """The admin address of the `chainlens serve` that owns this embedded store, if one runs.

    A server store (http/https) has no single owner: commands connect to it directly.
    """
    if not is_embedded(settings.store.dsn):
        return None
    pid = held_by(settings)
    if pid is None:
        return None
    try:
        info = dict(orjson.loads(admin_file(settings).read_bytes()))
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise CommandError(
            f"chainlens serve (pid {pid}) owns {settings.collector.spool_dir} but its store process is not up "
            "(starting or restarting): try again in a few seconds") from None
    info["owner"] = pid
    return info


def admin_call(link: dict[str, Any], path: str, body: bytes | None) -> bytes:
    """POST `body` to the running service's admin API (GET when `body` is None)."""
    request = urllib.request.Request(
        link["url"] + path, data=body, method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {link['token']}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()
        try:
            message = orjson.loads(detail)["error"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            message = detail.decode(errors="replace")
        raise CommandError(message) from None
    except urllib.error.URLError as exc:
        raise CommandError(f"the running chainlens serve (pid {link.get('owner', '?')}) did not answer: "
                           f"{exc.reason}") from None


def require_store(settings: Settings) -> None:
    """A command that only reads stops (exit 2) where it would create an empty embedded store."""
    dsn = settings.store.dsn
    if is_embedded(dsn) and not embedded_path(dsn).exists():
        where = (settings.source if settings.source != "<defaults>" else
                 "the built-in defaults, as there is no -c, no $CHAINLENS_CONFIG and no ./chainlens.toml")
        raise CommandError(f"there is no store at {embedded_path(dsn)} (settings from {where}): nothing to read. "
                           "Point -c at your chainlens.toml, or start `chainlens serve` first.", 2)


def live_states(settings: Settings, sites: list[Site], *, link: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Is data arriving for each site (ingestion/live.py): from the running service at `link`, or
    from the store itself when none runs."""
    if link:
        return [dict(orjson.loads(admin_call(link, "/admin/live?" + urllib.parse.urlencode({"site": s.id}), None)))
                for s in sites]
    with direct_store(settings, create=False) as client:
        return [live_state(client, settings, s) for s in sites]


class direct_store:
    """Open the store in this process (no collector holds it).

    With `create=False` (commands that only read) an embedded store that does not
    exist yet is an error, not a new empty store that answers every query with 0.
    """

    def __init__(self, settings: Settings, *, create: bool = True) -> None:
        self.settings, self.create = settings, create

    def __enter__(self) -> Any:
        if not self.create:
            require_store(self.settings)
        try:
            self.client = store.connect(self.settings.store.dsn)
            store.ensure_schema(self.client)
        except Exception as exc:
            raise CommandError(f"cannot open the store {self.settings.store.dsn!r}: {exc}") from None
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()
