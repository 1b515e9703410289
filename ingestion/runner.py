"""The one owner of the store connection inside a process.

chDB has no async client and an embedded directory has a single owner, so every
store call of a process goes through one thread that holds the one `Client`
(never the event loop). The connection is made lazily and re-made after a
failure, so a server that is down at start or goes away later only delays
loading: `ok` tells `/readyz`. A call that runs many queries (the dashboard's
figures) may ask for `readers`: that client and a few more connections to the
same store, which run its queries at once while the call holds the thread.
Calls that must not wait behind a rollup or a load (the live early warning, the
dashboard's reads) run on a runner `beside` it: its own thread and connections.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client

from chainlens.core.settings import is_embedded
from ingestion import store

log = logging.getLogger(__name__)
T = TypeVar("T")

# Connections that run a call's queries at once (ingestion/figures.py, `fetch`). Past the
# cores, more still help a little: a query's analysis is single-threaded, its reading is not
# (BENCHMARKS.md, "Round 3, the dashboard's queries at once").
READERS = 4


class StoreNotReady(Exception):
    """A runner beside another was called before that one made the store's schema."""


class StoreRunner:
    def __init__(self, dsn: str, *, client: Client | None = None, after: StoreRunner | None = None,
                 name: str = "store") -> None:
        self.dsn = dsn
        self._client = client
        self._lent = client  # a client given by the caller, who closes it (`close` leaves it open)
        self._readers: list[Client] = []
        self._schema_ready = False
        self._after = after  # the runner that makes the schema, when this one runs beside it
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.ok = False
        self.last_error = ""
        self.errors = 0
        self.down_since: float | None = None

    def _ensure(self) -> Client:
        if self._after is not None and not self._after._schema_ready:
            raise StoreNotReady("the store's schema is not made yet")
        if self._client is None:
            self._client = store.connect(self.dsn)
        if not self._schema_ready:
            if self._after is None:
                store.ensure_schema(self._client)
            self._schema_ready = True
        return self._client

    def beside(self, name: str) -> StoreRunner:
        """A runner with its own thread and connection to the same store, whose calls do not wait
        behind this one's; they start once this runner has made the schema (StoreNotReady before)."""
        return StoreRunner(self.dsn, after=self, name=name)

    def readers(self) -> list[Client]:
        """The store's client and READERS - 1 more connections to it (inside a call only)."""
        client = self._ensure()
        while len(self._readers) < READERS - 1:
            self._readers.append(store.connect(self.dsn))
        return [client, *self._readers]

    def close_readers(self) -> None:
        """The extra connections `readers` made are closed; the store's client stays open."""
        readers, self._readers = self._readers, []
        for reader in readers:
            reader.close()

    def call_blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(client, …)` on the calling thread (used inside the store thread)."""
        try:
            result = fn(self._ensure(), *args, **kwargs)
        except Exception as exc:
            self._failed(exc)
            raise
        if not self.ok:
            log.info("store reachable", extra={"dsn": _redact(self.dsn)})
        self.ok, self.down_since = True, None
        return result

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]
        if not is_embedded(self.dsn) and _is_connection_error(exc):
            self.ok = False
            self.down_since = self.down_since or time.monotonic()
            self._client, self._schema_ready = None, False
            self.close_readers()

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: self.call_blocking(fn, *args, **kwargs))

    async def start(self) -> None:
        try:
            await self.call(lambda client: None)
        except Exception as exc:
            log.warning("store unreachable at start; accepting into the spool", extra={"error": str(exc)})

    async def close(self) -> None:
        """The thread stops; the connections this runner made are closed, a lent client is not."""
        def _close() -> None:
            self.close_readers()
            if self._client is not None and self._client is not self._lent:
                self._client.close()
            self._client = None
        await asyncio.get_running_loop().run_in_executor(self._pool, _close)
        self._pool.shutdown(wait=True)


def _is_connection_error(exc: Exception) -> bool:
    from clickhouse_connect.driver.exceptions import OperationalError
    return isinstance(exc, OperationalError | OSError | ConnectionError)


def _redact(dsn: str) -> str:
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return dsn
