"""`chainlens forget` and `chainlens export` as an operator runs them: through a running
`chainlens serve`, and on the store directly once it has stopped (docs/privacy.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import BROWSER_UA
from tests.test_lifecycle import LAPTOP, ORDER, PHONE, USER, crowd, walk

pytestmark = pytest.mark.slow
H = 3_600_000


def history(tmp: Path) -> tuple[Path, int]:
    """The person (laptop with an order, phone) among 80 other shoppers, as an import file."""
    start = int(time.time() * 1000) - 40 * H
    sessions = [walk("sess-fgt-laptop", LAPTOP, start + 2 * H, buy=ORDER, uid=USER),
                walk("sess-fgt-phone", PHONE, start + 5 * H, uid=USER)]
    mine = sum(map(len, sessions))
    sessions += crowd(80, start, seed=7)
    path = tmp / "history.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps({**e, "ua": BROWSER_UA}) for s in sessions for e in s))
    return path, mine


def test_forget_and_export_from_the_command_line(serve_factory: Any, tmp_path: Path) -> None:
    srv = serve_factory()
    path, mine = history(tmp_path)
    srv.cli("import", str(path), "--site", "demo")
    srv.cli("rollup")
    total = srv.sql("SELECT count() AS n FROM events")[0]["n"]

    dry = srv.cli("forget", "demo", "--user", USER, "--dry-run").stdout
    assert f"would remove {mine:>8,} rows from events" in dry and "would rebuild the daily tables of" in dry
    assert USER not in dry and srv.sql("SELECT count() AS n FROM events")[0]["n"] == total

    lines = [orjson.loads(line) for line in srv.cli("export", "demo", "--user", USER).stdout.splitlines()]
    tables = [line["table"] for line in lines]
    assert tables.count("events") == mine and tables.count("chain_sessions") == 2
    assert tables.count("chain_orders") == 1

    out = srv.cli("forget", "demo", "--user", USER).stdout
    assert f"removed {mine:>8,} rows from events" in out and "audited in forget_log" in out
    assert srv.sql(f"SELECT count() AS n FROM events WHERE user_id = '{USER}' OR anon_id IN "
                   f"('{LAPTOP}', '{PHONE}')")[0]["n"] == 0
    assert srv.sql("SELECT count() AS n FROM events")[0]["n"] == total - mine
    srv.stop()

    # No collector running: the command opens the store itself; a visitor this time.
    visitor = srv.sql("SELECT anon_id, count() AS n FROM events GROUP BY anon_id ORDER BY anon_id LIMIT 1")[0]
    out = srv.cli("forget", "demo", "--visitor", visitor["anon_id"]).stdout
    assert f"removed {visitor['n']:>8,} rows from events" in out
    again = srv.cli("forget", "demo", "--visitor", visitor["anon_id"]).stdout
    assert "removed        0 rows from events" in again
    assert srv.sql("SELECT count() AS n FROM forget_log")[0]["n"] == 3
    refused = srv.cli("forget", "demo", "--order", "", check=False)
    assert refused.returncode == 2 and "--order: an id is required" in refused.stderr
