"""An accept worker of `chainlens serve`: the collector app on the shared port.

Workers share the port (SO_REUSEPORT), each with its own spool directory, and
reach the store process only through its admin API.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal

from aiohttp import web

from chainlens.core.loading import reread
from chainlens.core.logs import setup_logging
from chainlens.core.owner import admin_file, die_with_parent
from chainlens.core.settings import Settings
from collector.app import SERVER_OPTIONS, apply, create_app
from collector.state import CONFIG
from collector.storeview import AdminClient

log = logging.getLogger(__name__)
GC_GEN0 = 50_000  # allocations between young-generation collections (CPython's default: 700)


def run_worker(settings: Settings, index: int, parent: int) -> None:
    # Ended with the supervisor however it dies: SIGTERM finishes in-flight requests
    # (their events are fsynced before any answer) within aiohttp's shutdown timeout.
    die_with_parent(parent, signal.SIGTERM)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the reload handler is in place
    os.setpgrp()  # a terminal's Ctrl-C reaches the supervisor only, which stops workers in order
    setup_logging(role=f"worker-{index}")
    app = create_app(settings, writer=f"w{index}", store=AdminClient(admin_file(settings)))
    app.on_startup.append(_reload_on_hangup)
    app.on_startup.append(_quiet_collector)
    cfg = settings.collector
    web.run_app(
        app, host=cfg.host, port=cfg.port, reuse_port=True, access_log=None, print=None,
        # No handler cancellation: a request whose client went away still finishes its
        # spool append; the events are kept either way, and a retry dedups by event id.
        shutdown_timeout=5,
        # Slow clients and oversized headers: aiohttp's limits, stated here.
        # aiohttp's keep-alive timer also runs from the moment a connection opens, so a
        # client that trickles its headers (slow-loris) is cut off after idle_timeout_s.
        keepalive_timeout=cfg.idle_timeout_s, max_line_size=8190, max_field_size=8190, max_headers=64, **SERVER_OPTIONS,
    )


async def _quiet_collector(app: web.Application) -> None:
    """What start-up allocated (modules, settings, the app) is moved out of the collector's sight,
    and the young generation is collected less often: a request allocates little that lives, so
    frequent young collections only add pauses (docs/architecture.md, "Keeping the accept path fast")."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0, 50, 50)


async def _reload_on_hangup(app: web.Application) -> None:
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, _reload, app)


def _reload(app: web.Application) -> None:
    """SIGHUP (sent on by the supervisor): run with the settings file as it is now."""
    settings, _, error = reread(app[CONFIG].settings, log)
    if not error:
        apply(app, settings)
