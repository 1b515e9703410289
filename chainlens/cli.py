"""The `chainlens` command line (DESIGN, "Command line").

`sql`, `import` and `rollup` work on the store directly when no collector
runs, and through the running collector's admin API when one holds the store
(an embedded directory has a single owner).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from chainlens import settings as settings_mod
from chainlens.settings import ConfigError, Settings


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_mod.load(args.config)
    except ConfigError as exc:
        print(f"chainlens: config error: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.func(settings, args) or 0)
    except CommandError as exc:
        print(f"chainlens {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


class CommandError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config",
                        help="TOML settings file (else $CHAINLENS_CONFIG, ./chainlens.toml, defaults)")
    parser = argparse.ArgumentParser(prog="chainlens", description="Consumption-chain analytics for online stores.")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func: Callable[[Settings, argparse.Namespace], int | None], text: str) -> Any:
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.set_defaults(func=func)
        return p

    command("serve", cmd_serve, "run the collector (and its scheduled rollups)")
    p = command("snippet", cmd_snippet, "print the <script> tag (with SRI hash) for a site")
    p.add_argument("site")
    p = command("rollup", cmd_rollup, "materialize the rollup tables; idempotent")
    p.add_argument("--since", help="first day (YYYY-MM-DD) to recompute")
    p.add_argument("--until", help="last day (YYYY-MM-DD) to recompute")
    p = command("sql", cmd_sql, "run SQL against the store")
    p.add_argument("query")
    p.add_argument("--format", default="PrettyCompact", help="a ClickHouse output format (JSONEachRow, TSVWithNames…)")
    p = command("import", cmd_import, "load a JSON-lines file of events (collector validation, no age limit)")
    p.add_argument("file")
    p.add_argument("--site", required=True)
    p = command("alerts", cmd_alerts, "list recent early-warning alerts")
    p.add_argument("--site")
    p.add_argument("--limit", type=int, default=20)
    p = command("demo", cmd_demo, "the main job on the embedded default: store, traffic, rollups, tables")
    p.add_argument("--keep-running", action="store_true", help="leave the collector and storefront up")
    p.add_argument("--sessions", type=int, default=0, help="shopper sessions to simulate (default: the demo's)")
    return parser


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from collector.serve import serve
    return serve(settings)


def cmd_snippet(settings: Settings, args: argparse.Namespace) -> int:
    from sdk_js.render import snippet_tag
    site = settings.site(args.site)
    if site is None:
        raise CommandError(f"unknown site {args.site!r}", 2)
    print(snippet_tag(site, public_url=settings.collector.url()))
    return 0


def cmd_sql(settings: Settings, args: argparse.Namespace) -> int:
    link = running_service(settings)
    if link:
        out = admin_call(link, "/admin/sql", orjson.dumps({"query": args.query, "format": args.format}))
    else:
        with direct_store(settings) as client:
            try:
                out = client.raw_query(args.query, fmt=args.format)
            except Exception as exc:
                raise CommandError(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)) from None
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    return 0


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from ingestion.imports import CHUNK_LINES, import_lines
    site = settings.site(args.site)
    if site is None:
        raise CommandError(f"unknown site {args.site!r}", 2)
    path = Path(args.file)
    if not path.is_file():
        raise CommandError(f"no such file: {path}", 2)
    link = running_service(settings)
    totals: dict[str, Any] = {"accepted": 0, "rejected": 0, "errors": []}

    def add(report: dict[str, Any]) -> None:
        totals["accepted"] += report["accepted"]
        totals["rejected"] += report["rejected"]
        totals["errors"].extend(report["errors"])

    if link:
        for first, chunk in _chunks(path, CHUNK_LINES):
            add(orjson.loads(admin_call(link, f"/admin/import?site={site.id}&first_line={first}", b"\n".join(chunk))))
    else:
        with direct_store(settings) as client:
            for first, chunk in _chunks(path, CHUNK_LINES):
                add(import_lines(client, chunk, site=site, first_line=first))
    for err in totals["errors"]:
        print(f"{path}:{err['line']}: rejected: {err['error']}", file=sys.stderr)
    print(f"imported {totals['accepted']} events into site {site.id!r}; "
          f"rejected {totals['rejected']} (kept in events_rejected)")
    return 3 if totals["rejected"] else 0


def _chunks(path: Path, size: int) -> Iterator[tuple[int, list[bytes]]]:
    chunk: list[bytes] = []
    first = 1
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            chunk.append(line.rstrip(b"\r\n"))
            if len(chunk) >= size:
                yield first, chunk
                chunk, first = [], number + 1
    if chunk:
        yield first, chunk


def cmd_rollup(settings: Settings, args: argparse.Namespace) -> int:
    from ingestion.rollup import run_rollup_cli
    return run_rollup_cli(settings, since=args.since, until=args.until, link=running_service(settings))


def cmd_alerts(settings: Settings, args: argparse.Namespace) -> int:
    from ingestion.alerts import list_alerts_query
    query, params = list_alerts_query(site=args.site, limit=args.limit)
    link = running_service(settings)
    if link:
        body = orjson.dumps({"query": query, "parameters": params, "format": "PrettyCompactMonoBlock"})
        sys.stdout.buffer.write(admin_call(link, "/admin/sql", body))
        return 0
    with direct_store(settings) as client:
        sys.stdout.buffer.write(client.raw_query(query, parameters=params, fmt="PrettyCompactMonoBlock"))
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from chainlens.demo import run_demo
    return run_demo(settings, keep_running=args.keep_running, sessions=args.sessions or None)


# -- reaching the store -------------------------------------------------------------------------


def running_service(settings: Settings) -> dict[str, Any] | None:
    """The admin address of a `chainlens serve` that holds this embedded store, if one runs.

    A server store (http/https) has no single owner: commands connect to it directly.
    """
    from ingestion.service import admin_file
    from ingestion.store import is_embedded
    if not is_embedded(settings.store.dsn):
        return None
    try:
        info = orjson.loads(admin_file(settings).read_bytes())
        os.kill(int(info["pid"]), 0)
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError, KeyError, orjson.JSONDecodeError):
        return None
    return dict(info)


def admin_call(link: dict[str, Any], path: str, body: bytes) -> bytes:
    import urllib.error
    import urllib.request
    request = urllib.request.Request(
        link["url"] + path, data=body, method="POST",
        headers={"Authorization": f"Bearer {link['token']}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()
        try:
            message = orjson.loads(detail)["error"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            message = detail.decode(errors="replace")
        raise CommandError(message) from None
    except urllib.error.URLError as exc:
        raise CommandError(f"the running collector did not answer: {exc.reason}") from None


class direct_store:
    """Open the store in this process (no collector holds it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __enter__(self) -> Any:
        from ingestion import store
        try:
            self.client = store.connect(self.settings.store.dsn)
            store.ensure_schema(self.client)
        except Exception as exc:
            raise CommandError(f"cannot open the store {self.settings.store.dsn!r}: {exc}") from None
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()


if __name__ == "__main__":
    sys.exit(main())
