"""The schema in one file, and the registry of rollup tables (ingestion/tables.py)."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import time
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

from chainlens.core.fields import Client
from chainlens.core.loading import from_mapping
from chainlens.core.rows import validate_event
from chainlens.core.spoolfile import rows_body
from ingestion import store, tables
from ingestion.rollup import rollup

ROOT = Path(__file__).resolve().parent.parent


def test_current_sql_is_what_a_fresh_store_has(db: Any) -> None:
    """`db` is a new store, made from current.sql: it has what the file says, functions included."""
    written = (ROOT / "ingestion" / "schema" / "current.sql").read_text()
    assert store.snapshot(db) == written, "the schema changed: run `make schema` and commit current.sql"
    versions = [r[0] for r in db.query("SELECT version FROM schema_version ORDER BY version").result_rows]
    assert versions == [v for v, _, _ in store.migrations()]
    assert db.query("SELECT round(chainlens_diff_low(30, 100, 20, 200), 3)").result_rows == [(0.105,)]


def test_a_dropped_table_comes_back_and_rollups_run(db: Any, settings: Any) -> None:
    db.command("DROP TABLE chain_daily")
    db.command("DROP TABLE checkout_hourly_staging")
    assert store.restore_missing(db) == ["chain_daily"]  # the one worth a warning
    assert store.restore_missing(db) == []
    store.ensure_schema(db)  # and its staging copy, as every start makes them
    rollup(db, settings, now=dt.datetime.now(dt.UTC))  # fails on a missing table


def in_own_process(code: str, path: Path) -> subprocess.CompletedProcess[str]:
    """Run `code` with sys.argv[1] a store of its own: the engine opens one path per process."""
    return subprocess.run([sys.executable, "-c", code, f"chdb://{path}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)


def test_the_migrations_from_nothing_leave_what_current_sql_says(tmp_path: Path) -> None:
    done = in_own_process("import sys; from ingestion import store; c = store.connect(sys.argv[1]); "
                          "store.ensure_schema(c, step_by_step=True); sys.stdout.write(store.snapshot(c))",
                          tmp_path / "db")
    assert done.stdout == (ROOT / "ingestion" / "schema" / "current.sql").read_text(), "run `make schema`"


def test_a_new_store_warns_of_nothing(tmp_path: Path) -> None:
    done = in_own_process("import logging, sys; from ingestion import store; logging.basicConfig(level=logging.INFO); "
                          "store.ensure_schema(store.connect(sys.argv[1]))", tmp_path / "db")
    assert "schema created" in done.stderr
    assert "WARNING" not in done.stderr, done.stderr


def test_every_rollup_file_is_registered_once() -> None:
    files = sorted(p.name[:-4] for p in (resources.files("ingestion") / "rollups").iterdir()
                   if p.name.endswith(".sql"))
    assert sorted(tables.NAMES) == files
    assert len(set(tables.NAMES)) == len(tables.NAMES)


def test_each_table_receives_the_parameters_its_sql_names() -> None:
    for table in tables.TABLES:
        named = set(re.findall(r"\{(\w+):", table.source))
        assert named and named <= set(tables.PARAMETERS), table.name
        assert set(table.parameters) == named
        # each file writes its own staging copy, so a pass never touches the live table
        assert f"INSERT INTO {table.name}_staging" in table.source, table.name
    used = {name for t in tables.TABLES for name in t.parameters}
    assert used == set(tables.PARAMETERS), "a parameter no table names"


def test_a_staging_copy_that_lags_its_table_is_made_anew(db: Any) -> None:
    db.command("ALTER TABLE chain_sessions_staging DROP COLUMN orders_value_unknown")  # as before migration 012
    store.ensure_schema(db)
    assert store.snapshot(db) == (ROOT / "ingestion" / "schema" / "current.sql").read_text()


def _order_event(db: Any, site: str, order_id: str, step: str = "purchase") -> str:
    event_id = str(uuid.uuid4())
    db.command("INSERT INTO events (site_id, event_id, session_id, type, step, ts, order_id) VALUES "
               "({site:String}, {id:UUID}, 's-1', 'step', {step:String}, now64(3), {order:String})",
               parameters={"site": site, "id": event_id, "step": step, "order": order_id})
    return event_id


def _copied(db: Any, site: str) -> set[str]:
    return {r[0] for r in db.query("SELECT toString(event_id) FROM order_events WHERE site_id = {site:String}",
                                   parameters={"site": site}).result_rows}


def test_the_events_that_name_an_order_are_copied_and_a_lost_copy_is_made_whole(db: Any) -> None:
    site = "copies"
    named = {_order_event(db, site, "o-1"), _order_event(db, site, "o-1", "shipped")}
    _order_event(db, site, "")  # an event that names no order is not copied
    assert _copied(db, site) == named
    # The view dropped by hand: what loads meanwhile is not copied until the store is opened again.
    db.command("DROP TABLE order_events_mv")
    named.add(_order_event(db, site, "o-2"))
    assert store.restore_missing(db) == ["order_events_mv"]
    named.add(_order_event(db, site, "o-3"))
    assert _copied(db, site) == named
    # The copy dropped, and its view with it: both made anew, and the copy filled from the events.
    db.command("DROP TABLE order_events_mv")
    db.command("DROP TABLE order_events")
    assert store.restore_missing(db) == ["order_events", "order_events_mv"]
    named.add(_order_event(db, site, "o-4"))
    assert _copied(db, site) == named
    assert store.snapshot(db) == (ROOT / "ingestion" / "schema" / "current.sql").read_text()


def test_the_order_events_migration_copies_the_events_already_stored(tmp_path: Path) -> None:
    """A store at version 25 holds 30 events, 20 of them naming an order; after the migration the
    copy holds each of those once."""
    done = in_own_process(
        "import sys; from ingestion import store; c = store.connect(sys.argv[1]); every = store.migrations; "
        "store.migrations = lambda: [m for m in every() if m[0] < 26]; restore = store.restore_missing; "
        "store.restore_missing = lambda c: []; store.ensure_schema(c, step_by_step=True); "
        "c.command(\"INSERT INTO events (site_id, event_id, session_id, type, step, ts, order_id) SELECT 'demo', "
        "generateUUIDv4(number), 's', 'step', 'purchase', now64(3), if(number % 3 = 0, '', toString(number)) "
        "FROM numbers(30)\"); store.migrations, store.restore_missing = every, restore; store.ensure_schema(c); "
        "sys.stdout.write(str(c.query('SELECT count(), uniqExact(order_id) FROM order_events').result_rows))",
        tmp_path / "db")
    assert done.stdout == "[(20, 20)]"


def test_a_batch_loaded_again_is_skipped_in_the_copy_too(db: Any) -> None:
    """A load retried after a crash sends its batch again with the same token (ingestion/loader.py):
    `events` skips it, and so does `order_events`, which its view fills."""
    site = from_mapping({}).site("demo")
    assert site is not None
    now = int(time.time() * 1000)
    raws = [{"id": str(uuid.uuid4()), "type": "step", "step": "purchase", "ts": now, "sid": "s-again", "aid": "a",
             "order_id": "o-again", "value": 5}, {"id": str(uuid.uuid4()), "type": "page", "ts": now, "sid": "s-again"}]
    body = rows_body([validate_event(r, site=site, client=Client(device="desktop"), received_ms=now, sent_at=None)
                      for r in raws])
    for _ in range(3):
        store.insert_events(db, body, token="batch-again")
    counts = db.query("SELECT (SELECT count() FROM events WHERE session_id = 's-again'), "
                      "(SELECT count() FROM order_events WHERE session_id = 's-again')").result_rows
    assert counts == [(2, 1)]
