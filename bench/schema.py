"""How long a new store takes to get its schema: made from current.sql, against every migration.

    .venv/bin/python bench/schema.py [--runs 5]

Each run opens a new embedded store in a process of its own (the engine opens one path per
process) and times `ensure_schema` on it, then a second call on the same store (what every
later start costs). The two ways alternate, `--runs` times each: from current.sql in one go
(the default), and the migrations one by one (`step_by_step`, the baseline: what `make schema`
runs). Prints the medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ONE_RUN = """
import json, sys, time
from ingestion import store
client = store.connect(sys.argv[1])
started = time.perf_counter()
version = store.ensure_schema(client, step_by_step=sys.argv[2] == "1")
first = time.perf_counter() - started
started = time.perf_counter()
store.ensure_schema(client)
print(json.dumps({"version": version, "first": first, "again": time.perf_counter() - started}))
"""


def one(step_by_step: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="chainlens-schema-bench-") as scratch:
        done = subprocess.run([sys.executable, "-c", ONE_RUN, f"chdb://{scratch}/db", "1" if step_by_step else "0"],
                              cwd=ROOT, capture_output=True, text=True, check=True, timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for _ in range(args.runs):
        for step_by_step in (True, False):
            runs[step_by_step].append(one(step_by_step))
    version = runs[False][0]["version"]
    medians = {k: statistics.median(r["first"] for r in v) for k, v in runs.items()}
    print(f"a new store's schema (version {version:.0f}), median of {args.runs}, alternating:")
    print(f"  every migration, one by one (baseline)  {medians[True] * 1000:7.0f} ms")
    print(f"  from current.sql in one go              {medians[False] * 1000:7.0f} ms"
          f"   ({medians[False] / medians[True]:.2f} of the baseline)")
    again = statistics.median(r["again"] for v in runs.values() for r in v)
    print(f"  a later start on the same store         {again * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
