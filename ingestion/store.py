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
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from chainlens.core.refusals import REJECTED_COLUMNS
from chainlens.core.rows import EVENT_COLUMNS
from chainlens.core.settings import embedded_path, is_embedded
from ingestion import tables

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


def ensure_schema(client: Client, *, step_by_step: bool = False) -> int:
    """Create or migrate the schema; idempotent. Returns the schema version. A new store is made
    from ingestion/schema/current.sql in one go (what the migrations up to its version leave),
    unless `step_by_step`; the migrations after that version then run as on any store."""
    client.command(
        "CREATE TABLE IF NOT EXISTS schema_version (version UInt32, name String, "
        "applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version"
    )
    current = int(client.query("SELECT max(version) FROM schema_version").result_rows[0][0] or 0)
    if current == 0 and not step_by_step and _holds_only_schema_version(client):
        current = _create_from_snapshot(client)
    for version, name, sql in migrations():
        if version <= current:
            continue
        for statement in statements(sql):
            client.command(statement)
        client.insert("schema_version", [[version, name]], column_names=["version", "name"])
        log.info("schema migrated", extra={"version": version, "file": name})
        current = version
    restore_missing(client)
    match_staging(client)
    return current


def _holds_only_schema_version(client: Client) -> bool:
    names = client.query("SELECT name FROM system.tables WHERE database = currentDatabase()").result_rows
    return [r[0] for r in names] == ["schema_version"]


def _create_from_snapshot(client: Client) -> int:
    """Make every function and table of ingestion/schema/current.sql, and record the migrations it
    holds as applied; its version."""
    text = _snapshot_text()
    found = re.search(r"^-- schema version (\d+)$", text, flags=re.M)
    if not found:
        return 0
    version = int(found.group(1))
    for statement in statements(text):
        if not statement.startswith("CREATE TABLE schema_version"):  # made above
            client.command(statement)
    held = [[v, name] for v, name, _ in migrations() if v <= version]
    client.insert("schema_version", held, column_names=["version", "name"])
    log.info("schema created", extra={"version": version, "file": SNAPSHOT})
    return version


def match_staging(client: Client) -> None:
    """Give each rollup table a staging copy of the same shape (ingestion/rollup.py builds days in
    it, then swaps them in). A copy holds nothing between passes: one that differs from its table
    (a migration added a column) is made anew, so migrations change only the tables themselves."""
    shapes: dict[str, Any] = {table: shape for table, shape in client.query(
        "SELECT table, arraySort(groupArray((position, name, type))) FROM system.columns "
        "WHERE database = currentDatabase() GROUP BY table").result_rows}
    for table in tables.NAMES:
        if shapes.get(f"{table}_staging") != shapes[table]:
            client.command(f"DROP TABLE IF EXISTS {table}_staging")
            client.command(f"CREATE TABLE {table}_staging AS {table}")


SNAPSHOT = "current.sql"  # ingestion/schema/current.sql: every function and table, at its version


def _snapshot_text() -> str:
    return (resources.files("ingestion") / "schema" / SNAPSHOT).read_text()


def snapshot(client: Client) -> str:
    """Every function and table's CREATE statement as a freshly migrated store has them, under the
    version they are at: the schema in one file, for readers and for new stores
    (tests/test_schema.py keeps ingestion/schema/current.sql equal to it)."""
    database = client.query("SELECT currentDatabase()").result_rows[0][0]
    version = int(client.query("SELECT max(version) FROM schema_version").result_rows[0][0] or 0)
    functions = [r[0] for r in client.query(
        "SELECT create_query FROM system.functions WHERE origin = 'SQLUserDefined' "
        "AND startsWith(name, 'chainlens_') ORDER BY name").result_rows]
    names = [r[0] for r in client.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                                        "ORDER BY name").result_rows]
    parts = ["-- The current schema: every function and table as `ensure_schema` leaves a store migrated\n"
             "-- from nothing (generated by `make schema` from the migrations beside this file;\n"
             "-- tests/test_schema.py checks it). A new store is made from it in one go.\n"
             f"-- schema version {version}"]
    # A server's functions are shared by its databases: another store may have made them already.
    parts += [re.sub(r"^CREATE FUNCTION ", "CREATE OR REPLACE FUNCTION ", f) + ";" for f in functions]
    for name in names:
        text = client.query(f"SHOW CREATE TABLE {_ident(name)}").result_rows[0][0]
        if text.startswith("CREATE MATERIALIZED VIEW "):  # it names its target and source in the database
            text = re.sub(rf"\b{re.escape(database)}\.(\w+)", r"\1", text)
        parts.append(text.replace(f"CREATE TABLE {database}.", "CREATE TABLE ", 1) + ";")
    return "\n\n".join(parts) + "\n"


# A table that a materialized view keeps as a copy of some events (its migration says why), and
# that view: when either is made anew, the copy is filled again from `events`.
COPIES = {"order_events": "order_events_mv"}


def restore_missing(client: Client) -> list[str]:
    """Recreate, from ingestion/schema/current.sql, any table the migrations made that is gone
    (dropped by hand, say): a missing table would otherwise stop every rollup, and a missing view
    would leave its copy short of every event loaded since (`COPIES`). Returns the names. Staging
    copies are left to `match_staging`, which makes them on every store, a new one too."""
    present = {r[0] for r in client.query("SELECT name FROM system.tables WHERE database = currentDatabase()")
               .result_rows}
    present |= {f"{table}_staging" for table in tables.NAMES}
    restored = []
    for statement in statements(_snapshot_text()):
        name = re.search(r"CREATE (?:TABLE|MATERIALIZED VIEW) (\w+)", statement)
        if name and name.group(1) not in present:
            client.command(statement)
            restored.append(name.group(1))
            log.warning("recreated a missing table", extra={"table": name.group(1)})
    for copy, view in COPIES.items():
        if copy in restored or view in restored:  # what it missed while gone; a row copied twice is one row
            select = client.query("SELECT as_select FROM system.tables WHERE database = currentDatabase() "
                                  "AND name = {view:String}", parameters={"view": view}).result_rows[0][0]
            client.command(f"INSERT INTO {copy} {select}")
    return restored


def insert_json(client: Client, table: str, columns: Sequence[str], body: bytes, *, token: str | None = None) -> None:
    """Insert `JSONCompactEachRow` lines as they are: no Python work per row. A batch inserted
    again with its token is skipped, in the table and in the copies its views fill (`COPIES`)."""
    if not body:
        return
    settings = {"insert_deduplication_token": token, "deduplicate_blocks_in_dependent_materialized_views": 1}
    client.raw_insert(table, list(columns), insert_block=body, fmt="JSONCompactEachRow",
                      settings=settings if token else None)


def insert_events(client: Client, body: bytes, *, token: str | None = None) -> None:
    insert_json(client, "events", EVENT_COLUMNS, body, token=token)


def insert_rejected(client: Client, body: bytes, *, token: str | None = None) -> None:
    insert_json(client, "events_rejected", REJECTED_COLUMNS, body, token=token)



if __name__ == "__main__":  # `make schema`: print the current schema of a store migrated from nothing
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        fresh = connect(f"chdb://{scratch}")
        ensure_schema(fresh, step_by_step=True)
        sys.stdout.write(snapshot(fresh))
        fresh.close()
