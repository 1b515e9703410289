"""Several runners of the rollup pass on one store: the lease, and nodes with rollups off."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from chainlens.core.loading import from_mapping
from chainlens.core.settings import Settings
from ingestion import lease, schedule, store
from ingestion.runner import StoreRunner
from tests.conftest import make_config


async def test_two_runners_on_one_store_one_runs_the_other_names_the_holder(settings: Settings) -> None:
    """Two collector nodes' scheduled passes at the same moment, on one store."""
    runner = StoreRunner(settings.store.dsn)
    await runner.call(store.ensure_schema)
    a, b = await asyncio.gather(
        schedule.run_pass(settings, runner, lock=asyncio.Lock(), holder="node-a"),
        schedule.run_pass(settings, runner, lock=asyncio.Lock(), holder="node-b"))
    ran, skipped = (a, b) if "skipped" in b else (b, a)
    assert "skipped" not in ran and [s["site"] for s in ran["sites"]] == ["demo"]
    assert skipped["sites"] == [] and skipped["skipped"]["holder"] in ("node-a", "node-b")
    winner = "node-a" if ran is a else "node-b"
    assert skipped["skipped"]["holder"] == winner
    # Released when the pass ends: the other node's next pass runs.
    again = await schedule.run_pass(settings, runner, lock=asyncio.Lock(),
                                    holder="node-b" if winner == "node-a" else "node-a")
    assert "skipped" not in again
    await runner.close()


async def test_a_lease_left_by_a_crashed_runner_expires(settings: Settings) -> None:
    runner = StoreRunner(settings.store.dsn)
    await runner.call(store.ensure_schema)
    await runner.call(lease.write, "crashed-node", 0.5)  # it took the lease, then died
    held = await lease.take(runner, "node-a", settle_s=0)
    assert held is not None and held.holder == "crashed-node"
    deadline = time.monotonic() + 10  # the lease runs out 0.5 s after it was taken
    while (taken := await lease.take(runner, "node-a", settle_s=0)) is not None:
        assert time.monotonic() < deadline, f"the crashed runner's lease never expired: {taken}"
        await asyncio.sleep(0.1)
    await runner.close()


async def test_a_node_with_rollups_disabled_schedules_none(tmp_path: Path) -> None:
    settings = from_mapping(make_config(tmp_path, rollup={"every_s": 1, "enabled": False}))
    runner = StoreRunner(settings.store.dsn)
    stopping = asyncio.Event()
    # Returns at once, without waiting to be stopped: nothing is scheduled on this node.
    await asyncio.wait_for(schedule.scheduled(lambda: settings, runner, asyncio.Lock(), stopping), timeout=5)
    assert not stopping.is_set()
    assert not (tmp_path / "db").exists()  # the store was never opened for a pass
