"""The figures people read, as queries over the rollup tables: one file each.

Every metric is computed once, in the rollup SQL (ingestion/rollups/, defined in
docs/metrics.md). A figure is `ingestion/queries/NAME.sql`: over a range of days,
counts are sums of the daily rows and a rate is the ratio of those sums; quantiles,
which cannot be summed, come from the per-session values `chain_sessions` holds.
The dashboard (`report`), the demo's report and the cookbook (docs/queries.md,
"The dashboard's own figures") read these files; nothing else re-derives a figure.

Parameters: `parameters` below, one vocabulary for the figures and the cookbook.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

from clickhouse_connect.driver.client import Client

from chainlens.core.settings import Site
from ingestion.tables import ALL


def _load() -> dict[str, str]:
    """Each figure's query, from ingestion/queries/NAME.sql, without its header comment."""
    out = {}
    for entry in sorted((resources.files("ingestion") / "queries").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            lines = entry.read_text().splitlines()
            out[entry.name[:-4]] = "\n".join(line for line in lines if not line.startswith("--"))
    return out


QUERIES: dict[str, str] = _load()  # figure name -> its SQL


DEVICES = (ALL, "desktop", "mobile", "tablet")


def parameters(site: Site, *, start: dt.date, end: dt.date, stopped: str = "", device: str = ALL,
               segment: str = ALL, values: tuple[str, ...] = (),
               pairs: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """Every parameter a figure or a cookbook query may name (docs/queries.md, "Parameters")."""
    return {"site": site.id, "tz": site.timezone, "start": start, "end": end, "all": ALL, "device": device,
            "segment": segment, "chain": list(site.chain), "cart": site.checkout_from,
            "checkout": list(site.checkout_steps), "last_checkout": site.checkout_steps[-1],
            "purchase": site.chain[-1], "stopped": stopped, "min_sample": site.obstacle_min_sample,
            "act_min_sample": site.intervene.min_sample, "values": list(values), "pairs": list(pairs)}


def rows(client: Client, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    result = client.query(QUERIES[name], parameters=params)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


Rows = list[dict[str, Any]]
Job = tuple[str, dict[str, Any]]  # a figure's name and its parameters


def fetch(clients: Sequence[Client], jobs: Mapping[str, Job],
          then: Mapping[str, tuple[str, Callable[[Rows], Job]]] | None = None) -> dict[str, Rows]:
    """Each job's rows, by its key. `then[key] = (other, make)`: once `key`'s rows are in,
    `make(rows)` is the job of `other`, run before the jobs still waiting. With several clients
    (connections to one store), each runs one query at a time and takes the next job when it is
    done: the engine runs them at once, and half of a small query's time is its analysis, which
    one query cannot spread over the cores. List the slowest jobs first."""
    follow = then or {}
    waiting, results = deque(jobs.items()), {}
    lock, failed = threading.Lock(), threading.Event()

    def work(client: Client) -> None:
        while True:
            with lock:
                if failed.is_set() or not waiting:
                    return
                key, (name, params) = waiting.popleft()
            try:
                got = rows(client, name, params)
            except BaseException:
                failed.set()  # the other clients stop after their query
                raise
            with lock:
                results[key] = got
                if key in follow:
                    other, make = follow[key]
                    waiting.appendleft((other, make(got)))

    if len(clients) == 1:
        work(clients[0])
        return results
    with ThreadPoolExecutor(len(clients), thread_name_prefix="figures") as pool:
        for done in [pool.submit(work, client) for client in clients]:
            done.result()  # the first error, if any
    return results


GENERATED = "<!-- Below: generated from ingestion/queries/ by `make docs`; tests/test_docs.py checks it. -->"


def markdown() -> str:
    """docs/queries.md's last part: every figure the dashboard and the demo show, as its file has it."""
    parts = [GENERATED, "", "## The dashboard's own figures", "",
             "The dashboard and the demo's report read these queries, one file each in",
             "`ingestion/queries/`. They take the parameters above plus `{start:Date}` and `{end:Date}` (the",
             "range; `chainlens sql --site` fills the last 7 days), `{device:String}` and `{segment:String}`",
             "(`'all'` or one value) and `{all:String}` (`'all'`).", ""]
    for entry in sorted((resources.files("ingestion") / "queries").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        lines = entry.read_text().splitlines()
        about = " ".join(line[3:] for line in lines if line.startswith("-- ")).split(": ", 1)[1]
        parts += [f"### `{entry.name[:-4]}`", "", about, "", "```sql",
                  *(line for line in lines if not line.startswith("--")), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":  # `make docs`
    print(markdown(), end="")
