"""Every query of docs/queries.md runs against a store filled by the demo's shopper model."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from chainlens.core.settings import from_mapping
from chainlens.shoppers import ShopperModel
from ingestion import store
from ingestion.alerts import evaluate
from ingestion.imports import import_lines
from ingestion.rollup import rollup
from tests.conftest import make_config, site_config

DOC = Path(__file__).resolve().parent.parent / "docs" / "queries.md"
QUERIES = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("cookbook")
    settings = from_mapping(make_config(tmp, sites=[site_config(origins=["http://127.0.0.1:8000"])]))
    client = store.connect(settings.store.dsn)
    store.ensure_schema(client)
    now = int(time.time() * 1000)
    day = 86_400_000
    model = ShopperModel(seed=3, change_at_ms=now - day)
    lines = [orjson.dumps(e) for s in model.sessions(start_ms=now - 6 * day, end_ms=now - 3 * 3_600_000, count=1500)
             for e in s.events]
    import_lines(client, lines, site=settings.sites[0])
    rollup(client, settings)
    evaluate(client, settings.sites[0])
    yield client
    client.close()


def test_the_cookbook_has_at_least_ten_queries() -> None:
    assert len(QUERIES) >= 10


@pytest.mark.parametrize("query", QUERIES, ids=[f"q{i + 1}" for i in range(len(QUERIES))])
def test_cookbook_query_runs(filled: Any, query: str) -> None:
    result = filled.query(query)  # raises on any SQL error
    # Questions the generated week may leave unanswered: rejects, alerts, yesterday, back-moves.
    if not any(mark in query for mark in ("events_rejected", "FROM alerts", "today() - 1", "\n    < indexOf")):
        assert result.result_rows, "the demo data should answer this question"
