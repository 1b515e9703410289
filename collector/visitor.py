"""Visitor keys for cookieless sites: a daily-salted hash, never the address itself.

A cookieless site's snippet stores nothing, so its identifiers only last one
page. The collector replaces them with a key hashed from a salt of the day, the
site, the client address and its user agent (the approach Plausible
documents): page loads of one visitor on one day share a session, and once the
day's salt is deleted (two days later) nobody can recompute who it was. Salts
are random, one file per day under `spool_dir/salts`, shared by all workers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
from pathlib import Path


class VisitorKeys:
    def __init__(self, spool_dir: Path) -> None:
        self.dir = spool_dir / "salts"
        self._salts: dict[str, bytes] = {}

    def _salt(self, day: str) -> bytes:
        salt = self._salts.get(day)
        if salt is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            path = self.dir / day
            if not path.exists():
                # Written aside, then linked into place: the first worker's salt wins whole,
                # and the others read that one.
                tmp = self.dir / f".{day}.{os.getpid()}"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(secrets.token_bytes(32))
                    fh.flush()
                    os.fsync(fh.fileno())
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    pass
                finally:
                    tmp.unlink(missing_ok=True)
            salt = path.read_bytes()
            self._salts = {day: salt}
            self._forget_old(day)
        return salt

    def _forget_old(self, today: str) -> None:
        keep = {today, (dt.date.fromisoformat(today) - dt.timedelta(days=1)).isoformat()}
        for path in self.dir.iterdir():
            if path.name not in keep and not path.name.startswith("."):
                path.unlink(missing_ok=True)

    def key(self, *, site: str, address: str, user_agent: str, now: dt.datetime | None = None) -> str:
        day = (now or dt.datetime.now(dt.UTC)).date().isoformat()
        digest = hashlib.sha256(self._salt(day) + b"\0" + "\0".join((site, address, user_agent)).encode())
        return digest.hexdigest()[:32]
