"""The store connection: one clickhouse-connect `Client` from one DSN (docs/architecture.md, "The store").

`chdb://PATH` opens the embedded engine on a directory (relative paths allowed,
unlike clickhouse-connect's own DSN parser, which reads `chdb://./x` as a host);
`http(s)://user:pass@host:port/db` reaches a real server.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from importlib import resources
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from chainlens.core.contract import EVENT_COLUMNS, REJECTED_COLUMNS
from chainlens.core.settings import embedded_path, is_embedded

log = logging.getLogger(__name__)


def connect(dsn: str) -> Client:
    if is_embedded(dsn):
        path = embedded_path(dsn)
        path.mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(interface="chdb", path=str(path))
    parsed = urlparse(dsn)
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"store.dsn: unsupported scheme {parsed.scheme!r} (use chdb:// or http(s)://)")
    database = parsed.path.strip("/") or "default"
    if database != "default":
        # The database must exist before a client can select it.
        bootstrap = clickhouse_connect.get_client(dsn=dsn, database="default", connect_timeout=5)
        bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {_ident(database)}")
        bootstrap.close()
    return clickhouse_connect.get_client(dsn=dsn, connect_timeout=5, send_receive_timeout=60)


def _ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for each file in ingestion/schema, in order."""
    out = []
    for entry in (resources.files("ingestion") / "schema").iterdir():
        match = re.match(r"(\d+)_.*\.sql$", entry.name)
        if match:
            out.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(out)


def statements(sql: str) -> list[str]:
    """Split a .sql file on `;` at line ends; comments stay with their statement."""
    return [s.strip() for s in re.split(r";\s*$", sql, flags=re.M) if _has_code(s)]


def _has_code(chunk: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in chunk.splitlines())


def ensure_schema(client: Client) -> int:
    """Create or migrate the schema; idempotent. Returns the schema version."""
    client.command(
        "CREATE TABLE IF NOT EXISTS schema_version (version UInt32, name String, "
        "applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version"
    )
    current = int(client.query("SELECT max(version) FROM schema_version").result_rows[0][0] or 0)
    for version, name, sql in migrations():
        if version <= current:
            continue
        for statement in statements(sql):
            client.command(statement)
        client.insert("schema_version", [[version, name]], column_names=["version", "name"])
        log.info("schema migrated", extra={"version": version, "file": name})
        current = version
    return current


def insert_json(client: Client, table: str, columns: Sequence[str], body: bytes, *, token: str | None = None) -> None:
    """Insert `JSONCompactEachRow` lines as they are: no Python work per row."""
    if not body:
        return
    client.raw_insert(table, list(columns), insert_block=body, fmt="JSONCompactEachRow",
                      settings={"insert_deduplication_token": token} if token else None)


def insert_events(client: Client, body: bytes, *, token: str | None = None) -> None:
    insert_json(client, "events", EVENT_COLUMNS, body, token=token)


def insert_rejected(client: Client, body: bytes, *, token: str | None = None) -> None:
    insert_json(client, "events_rejected", REJECTED_COLUMNS, body, token=token)

