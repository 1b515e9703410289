"""Shared fixtures: every test gets its own store directory and spool."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from chainlens.core.loading import from_mapping
from chainlens.core.settings import Settings
from chainlens.core.toml_writer import dump_toml
from ingestion import store

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "http://127.0.0.1:8000"
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
)
MOBILE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


CHROMIUM = Path("/usr/bin/chromium")


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless, with the flags this closed network needs."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        # Browser-wide: requests the browser process sends itself (keep-alive fetches,
        # beacons after unload) would otherwise carry "HeadlessChrome", a bot's name.
        f"--user-agent={BROWSER_UA}"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def site_config(**overrides: Any) -> dict[str, Any]:
    site = {
        "id": "demo", "origins": [ORIGIN], "secret": "s3cret", "timezone": "UTC",
        "chain": ["discover", "search", "select", "cart", "checkout.info", "checkout.shipping",
                  "checkout.payment", "checkout.review", "purchase"],
        "checkout_from": "cart",
        "step_urls": {"select": ["/product/*"], "cart": ["/cart"]},
    }
    site.update(overrides)
    return site


def make_config(tmp: Path, *, collector: dict[str, Any] | None = None, sites: list[dict[str, Any]] | None = None,
                rollup: dict[str, Any] | None = None, dsn: str | None = None) -> dict[str, Any]:
    return {
        "store": {"dsn": dsn or f"chdb://{tmp}/db"},
        "collector": {"spool_dir": str(tmp / "spool"), "flush_interval_s": 0.2, "rate_limit_rps": 0.0,
                      **(collector or {})},
        "rollup": {"every_s": 0, **(rollup or {})},
        "sites": sites or [site_config()],
    }


def write_toml(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(dump_toml(config))
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return from_mapping(make_config(tmp_path), source="test")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Any]:
    """An embedded store with the schema, one per test module (the engine opens one path at a time)."""
    client = store.connect(f"chdb://{tmp_path_factory.mktemp(request.module.__name__.rsplit('.', 1)[-1])}/db")
    store.ensure_schema(client)
    yield client
    client.close()


def event(kind: str = "step", **fields: Any) -> dict[str, Any]:
    out = {"id": str(uuid.uuid4()), "type": kind, "ts": int(time.time() * 1000), "sid": "s-1", "aid": "a-1", "sn": 1}
    out.update(fields)
    return out


def beacon(*events: dict[str, Any], site: str = "demo") -> bytes:
    return orjson.dumps({"site": site, "sent_at": int(time.time() * 1000), "events": list(events)})


async def wait_for(check: Any, *, timeout: float = 15.0, what: str = "") -> Any:
    """Poll `check` until it returns something true, and return that; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or check}; last: {result!r}")
        await asyncio.sleep(0.1)


class Serve:
    """A real `chainlens serve` process on its own port, store and spool."""

    def __init__(self, tmp: Path, config: dict[str, Any]) -> None:
        self.tmp, self.config = tmp, config
        self.port = config["collector"].setdefault("port", free_port())
        self.url = f"http://127.0.0.1:{self.port}"
        self.path = write_toml(tmp / "chainlens.toml", config)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "serve.log"
        self.extra_env: dict[str, str] = {}  # e.g. CHAINLENS_CLOCK, for serve and the commands

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINLENS_")}
        return env

    def start(self, timeout: float = 90) -> Serve:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chainlens.cli", "serve", "-c", str(self.path)],
                cwd=self.tmp, env={**self.env(), **self.extra_env}, stdout=subprocess.DEVNULL, stderr=log,
                start_new_session=True,  # its own process group, as under a service manager
            )
        import urllib.request
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("serve did not come up: " + self.log.read_text()[-3000:])

    def stop(self, timeout: float = 120) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        # The whole tree: supervisor, workers and store process, as a power cut would.
        subprocess.run(["pkill", "-9", "-P", str(self.proc.pid)], check=False)
        self.proc.kill()
        self.proc.wait(10)

    def cli(self, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "chainlens.cli", *args, "-c", str(self.path)],
            cwd=self.tmp, env={**self.env(), **self.extra_env}, capture_output=True, text=True, timeout=300,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"chainlens {' '.join(args)} exited {result.returncode}: {result.stderr}")
        return result

    def sql(self, query: str) -> list[dict[str, Any]]:
        out = self.cli("sql", query, "--format", "JSONEachRow").stdout
        return [orjson.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Serve] = []

    def factory(config: dict[str, Any] | None = None, *, start: bool = True) -> Serve:
        srv = Serve(tmp_path, config or make_config(tmp_path, collector={"workers": 2}))
        started.append(srv)
        return srv.start() if start else srv

    yield factory
    for srv in started:
        if srv.proc and srv.proc.poll() is None:
            srv.kill()
