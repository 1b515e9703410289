"""What the accept side may ask of the store side, and how it asks over HTTP.

The collector never imports `ingestion/`: the process wiring hands `create_app`
something with this shape. In `chainlens serve` it is `AdminClient`, which
asks the store process's admin API; in a single process (tests) it is the
store service itself (`ingestion.service.StoreService`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import orjson


class StoreView(Protocol):
    async def status(self) -> dict[str, Any]:
        """`store_ok`, `backlog_bytes`, … as `/readyz` shows them."""
        ...

    async def report(self, query: Mapping[str, str]) -> dict[str, Any]:
        """The dashboard's figures for `?site=&from=&to=`; ValueError for a bad query."""
        ...

    async def live(self, site_id: str) -> dict[str, Any]:
        """Is data arriving for a site: recent events, open sessions, refusals with their fix."""
        ...

    async def idle_ms(self, site_id: str) -> dict[str, float]:
        """Per intervention step, the median ms abandoners stayed there (docs/interventions.md)."""
        ...

    async def forget(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Erase a person (docs/privacy.md), answered when done; ValueError for a bad request,
        TimeoutError when the store cannot do it now."""
        ...


class NoStore:
    """An accept side without a store (serving the snippet only)."""

    async def status(self) -> dict[str, Any]:
        return {"store_ok": False, "last_error": "no store process"}

    async def report(self, query: Mapping[str, str]) -> dict[str, Any]:
        raise ValueError("no store process")

    async def live(self, site_id: str) -> dict[str, Any]:
        raise ValueError("no store process")

    async def idle_ms(self, site_id: str) -> dict[str, float]:
        raise ValueError("no store process")

    async def forget(self, request: Mapping[str, Any]) -> dict[str, Any]:
        raise TimeoutError("no store process")


class AdminClient:
    """The store process's admin API (loopback, bearer token), as an accept worker reaches it.

    The address and token are read from the admin file each time they are needed
    (at most once per status ttl), so a store process restarted by the supervisor,
    on a new port with a new token, is found again without restarting the worker.
    """

    def __init__(self, admin_path: Path, *, status_ttl_s: float = 1.0) -> None:
        self.admin_path, self.status_ttl_s = admin_path, status_ttl_s
        self._status: tuple[float, dict[str, Any]] | None = None

    def _link(self) -> tuple[str, str]:
        try:
            info = orjson.loads(self.admin_path.read_bytes())
            return str(info["url"]), str(info["token"])
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise aiohttp.ClientError(f"no store process address ({exc})") from None

    async def _get(self, path: str, *, params: Mapping[str, str] | None = None, timeout_s: float) -> Any:
        url, token = self._link()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            async with session.get(url + path, params=params,
                                   headers={"Authorization": f"Bearer {token}"}) as resp:
                raw = await resp.read()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = {"error": raw.decode("utf-8", "replace")[:300] or f"HTTP {resp.status}"}
        if resp.status != 200:
            raise ValueError(data.get("error", f"HTTP {resp.status}") if isinstance(data, dict) else resp.status)
        return data

    async def status(self) -> dict[str, Any]:
        # /readyz and /metrics may be polled often: the store is asked at most once per ttl.
        if self._status and time.monotonic() - self._status[0] < self.status_ttl_s:
            return dict(self._status[1])
        try:
            state = dict(await self._get("/admin/status", timeout_s=2))
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            state = {"store_ok": False, "last_error": f"store process unreachable: {exc}"}
        self._status = (time.monotonic(), state)
        return state

    async def report(self, query: Mapping[str, str]) -> dict[str, Any]:
        return dict(await self._get("/admin/report", params=query, timeout_s=30))

    async def live(self, site_id: str) -> dict[str, Any]:
        return dict(await self._get("/admin/live", params={"site": site_id}, timeout_s=10))

    async def idle_ms(self, site_id: str) -> dict[str, float]:
        return dict(await self._get("/admin/idle", params={"site": site_id}, timeout_s=10))

    async def forget(self, request: Mapping[str, Any]) -> dict[str, Any]:
        url, token = self._link()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as session:
            async with session.post(url + "/admin/forget", data=orjson.dumps(dict(request)),
                                    headers={"Authorization": f"Bearer {token}"}) as resp:
                data = orjson.loads(await resp.read())
        if resp.status == 400:
            raise ValueError(data.get("error", "bad request"))
        if resp.status != 200:
            raise TimeoutError(data.get("error", f"HTTP {resp.status}"))
        return dict(data)
