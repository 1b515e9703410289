"""Traps a new user falls into in the first hour: each one stops with a clear message instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chainlens.core.loading import from_mapping
from chainlens.core.owner import Ownership, lock_paths
from chainlens.core.settings import embedded_path
from chainlens.demo.run import DEMO_DIR, demo_config
from chainlens.one_process import single_process_app
from collector.app import SERVER_OPTIONS
from tests.conftest import make_config, write_toml


def chainlens(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd),  # no CHAINLENS_* from the caller
           **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    return subprocess.run([sys.executable, "-m", "chainlens.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [["sql", "SELECT count() FROM events"], ["alerts"], ["rollup"], ["status"]])
def test_reading_commands_never_create_an_empty_store(tmp_path: Path, command: list[str]) -> None:
    result = chainlens(tmp_path, *command)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "there is no store at" in result.stderr and "built-in defaults" in result.stderr
    assert not (tmp_path / "data").exists()
    # With a config, the message names the file it read.
    path = write_toml(tmp_path / "shop.toml", make_config(tmp_path))
    result = chainlens(tmp_path, *command, "-c", str(path))
    assert result.returncode == 2 and str(path) in result.stderr


def test_a_public_bind_address_needs_public_url(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "chainlens.toml", make_config(tmp_path, collector={"host": "0.0.0.0"}))
    result = chainlens(tmp_path, "snippet", "demo", "-c", str(path))
    assert result.returncode == 2
    assert "collector.public_url: required when collector.host is '0.0.0.0'" in result.stderr
    assert "0.0.0.0" not in result.stdout


def test_demo_never_wipes_the_store_of_a_running_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    kept = tmp_path / DEMO_DIR / "store" / "kept"
    kept.parent.mkdir(parents=True)
    kept.write_text("a running demo's data")
    running = Ownership(lock_paths(from_mapping(demo_config(0, 0)))).acquire()  # as its serve holds it
    try:
        result = chainlens(tmp_path, "demo")
    finally:
        running.release()
    assert result.returncode == 2 and "is serving from" in result.stderr
    assert kept.read_text() == "a running demo's data"


async def test_a_dashboard_whose_store_is_gone_says_so(aiohttp_client: Any, settings: Any) -> None:
    client = await aiohttp_client(single_process_app(settings), server_kwargs=SERVER_OPTIONS)
    assert (await client.get("/dashboard")).status == 200
    db = embedded_path(settings.store.dsn)
    db.rename(db.with_name("moved-away"))  # as when another process wiped the directory
    try:
        page = await client.get("/dashboard")
        text = await page.text()
        assert page.status == 503 and "The store is unavailable" in text and f"{db} is gone" in text
        ready = await client.get("/readyz")
        body = await ready.json()
        assert ready.status == 503 and body["store_ok"] is False and "is gone" in body["last_error"]
    finally:
        db.with_name("moved-away").rename(db)
    assert (await client.get("/readyz")).status == 200


@pytest.mark.slow  # eleven runs of the command line, each opening the store: `make test`
def test_sql_cannot_hurt_without_write_and_a_dropped_table_comes_back(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "shop.toml", make_config(tmp_path))
    assert chainlens(tmp_path, "rollup", "-c", str(path)).returncode == 2  # no store yet: nothing made
    (tmp_path / "none.jsonl").write_text("")
    assert chainlens(tmp_path, "import", "none.jsonl", "--site", "demo", "-c", str(path)).returncode == 0
    for statement in ("DROP TABLE chain_daily", "INSERT INTO alerts SELECT * FROM alerts",
                      "CREATE TABLE x (a UInt8) ENGINE = Memory", "SELECT 1; DROP TABLE events"):
        refused = chainlens(tmp_path, "sql", statement, "-c", str(path))
        assert refused.returncode == 1 and "read-only" in refused.stderr + refused.stdout, statement
    assert chainlens(tmp_path, "sql", "EXISTS TABLE chain_daily", "--format", "TSV", "-c", str(path)).stdout == "1\n"
    dropped = chainlens(tmp_path, "sql", "DROP TABLE chain_daily", "--write", "-c", str(path))
    assert dropped.returncode == 0, dropped.stderr
    rolled = chainlens(tmp_path, "rollup", "-c", str(path))
    assert rolled.returncode == 0, rolled.stderr
    assert chainlens(tmp_path, "sql", "EXISTS TABLE chain_daily", "--format", "TSV", "-c", str(path)).stdout == "1\n"


@pytest.mark.slow  # the command line through a shell pipe: `make test`
def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path) -> None:
    """`chainlens sql … | head -1`: the pipe closes under the command, which ends quietly."""
    path = write_toml(tmp_path / "shop.toml", make_config(tmp_path))
    (tmp_path / "none.jsonl").write_text("")
    assert chainlens(tmp_path, "import", "none.jsonl", "--site", "demo", "-c", str(path)).returncode == 0
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    piped = subprocess.run(f"{sys.executable} -m chainlens.cli sql 'SELECT number FROM numbers(200000)' "
                           f"--format TSV -c {path} | head -1", shell=True, cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert piped.stdout == "0\n" and "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr
