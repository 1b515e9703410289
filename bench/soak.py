"""Soak: mixed valid and hostile traffic while processes die and the store stalls.

    .venv/bin/python bench/soak.py [--seconds 600] [--workers 2]

Starts `chainlens serve` (embedded store) and, as a service manager would,
starts it again whenever it exits. A load generator first measures the most
requests per second it gets acknowledged (10 s, unpaced), then runs for
`--seconds` at half that: 90% valid beacons of 1–20 events with ids from a
counter, 10% hostile requests (random bytes, Latin-1 and truncated-gzip bodies,
NaN, a foreign origin, an unknown site). Every 30–60 s it kills -9 a random
process of the tree (a worker, the store process or the supervisor); once, for
60 s, it stops the store process (SIGSTOP), so the store is unreachable while
the workers keep accepting. At the end it waits for the spool to drain and
checks, in ClickHouse, that every acknowledged event is stored exactly once.

Prints requests, acknowledgements, 4xx by reason, 5xx (must be 0),
acknowledged events lost or doubled (must be 0), peak RSS per process role and
the spool's peak size.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chainlens.core.toml_writer import dump_toml  # noqa: E402

ORIGIN = "http://127.0.0.1:8000"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
QUOTED = re.compile(r"(?<![\w-])[0-9]+|'[^']*'")  # refusal reasons grouped without their values
RUN = uuid.uuid4().hex[:8]  # event ids of this run: RUN-0000-4000-8000-<counter>


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def event_id(n: int) -> str:
    return f"{RUN}-0000-4000-8000-{n:012x}"


class Service:
    """`chainlens serve` under a minimal service manager: started again when it exits."""

    def __init__(self, work: Path, workers: int) -> None:
        self.work, self.port = work, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "store": {"dsn": f"chdb://{work}/db"},
            "collector": {"port": self.port, "workers": workers, "spool_dir": str(work / "spool"),
                          "rate_limit_rps": 0.0, "flush_interval_s": 1.0},
            "rollup": {"every_s": 0},
        }
        self.config = work / "chainlens.toml"
        self.config.write_text(dump_toml(config))
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log = open(work / "serve.log", "ab")  # noqa: SIM115 (open for the whole run)

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "chainlens.cli", "serve", "-c", str(self.config)],
                                     cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True)
        self.starts += 1

    def ensure(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.start()

    def tree(self) -> dict[int, str]:
        """pid → role, for the live tree."""
        if self.proc is None or self.proc.poll() is not None:
            return {}
        roles = {self.proc.pid: "supervisor"}
        try:
            store = int(orjson.loads((self.work / "spool" / "admin.json").read_bytes())["pid"])
        except (OSError, ValueError, KeyError):
            store = -1
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        for pid in map(int, out.split()):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if pid == store:
                roles[pid] = "store"
            elif b"--multiprocessing-fork" in cmd:
                roles[pid] = "worker"
        return roles

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(180)


def rss_mb(pid: int) -> float:
    try:
        match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return 0.0
    return int(match.group(1)) / 1024 if match else 0.0


def dir_bytes(path: Path) -> int:
    total = 0
    for p in path.rglob("*.seg"):
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


class Load:
    def __init__(self, url: str) -> None:
        self.url = url + "/e"
        self.next_id = 0
        self.acked: list[tuple[int, int]] = []  # (first counter, count) of acknowledged beacons
        self.tally: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()
        self.rng = random.Random(7)

    def valid(self) -> tuple[bytes, dict[str, str], tuple[int, int]]:
        count = self.rng.randint(1, 20)
        first, self.next_id = self.next_id, self.next_id + count
        now = int(time.time() * 1000)
        events = [{"id": event_id(first + i), "type": "step", "ts": now, "sid": f"s{(first + i) // 8}", "aid": "a",
                   "step": self.rng.choice(["select", "cart", "checkout.info", "purchase"]),
                   "url": "https://shop.example/cart", "props": {"items": 2}} for i in range(count)]
        body = orjson.dumps({"site": "demo", "sent_at": now, "events": events})
        return body, {"Content-Type": "text/plain", "Origin": ORIGIN}, (first, count)

    def hostile(self) -> tuple[bytes, dict[str, str]]:
        good = orjson.dumps({"site": "demo", "events": [{"id": str(uuid.uuid4()), "type": "step", "ts": 1,
                                                         "sid": "s", "aid": "a", "step": "cart"}]})
        kind = self.rng.randrange(6)
        headers = {"Content-Type": "text/plain", "Origin": ORIGIN}
        if kind == 0:
            return self.rng.randbytes(self.rng.randint(0, 300)), headers
        if kind == 1:
            return good.replace(b'"cart"', '"é"'.encode("latin-1")), headers
        if kind == 2:
            packed = gzip.compress(good)
            return packed[: self.rng.randint(0, len(packed) - 1)], {**headers, "Content-Encoding": "gzip"}
        if kind == 3:
            return good.replace(b'"ts":1', b'"ts":NaN'), headers
        if kind == 4:
            return good, {**headers, "Origin": "https://elsewhere.example"}
        return good.replace(b'"demo"', b'"nosuchsite"'), headers

    async def one(self, session: aiohttp.ClientSession) -> None:
        ids = None
        if self.rng.random() < 0.9:
            body, headers, ids = self.valid()
        else:
            body, headers = self.hostile()
        self.tally["requests"] += 1
        try:
            async with session.post(self.url, data=body, headers={**headers, "User-Agent": UA}) as resp:
                text = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError):
            self.tally["connection errors"] += 1  # no answer: never acknowledged
            return
        if status == 202:
            self.tally["2xx"] += 1
            if ids is not None:
                reply = orjson.loads(text)
                if reply["accepted"] == ids[1]:
                    self.acked.append(ids)
                    self.tally["events acknowledged"] += ids[1]
                else:
                    self.tally["valid beacons partly refused"] += 1
        elif status >= 500:
            self.tally[f"{status}"] += 1
            self.tally["5xx"] += 1
        else:
            self.tally["4xx"] += 1
            try:
                reason = orjson.loads(text)["error"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                reason = text[:40].decode("utf-8", "replace")
            self.refusals[f"{status} {QUOTED.sub('…', reason)[:72]}"] += 1

    async def run(self, seconds: float, rate: float | None, concurrency: int = 64) -> float:
        """Requests at `rate` per second (unpaced when None) for `seconds`; the rate achieved."""
        gate = asyncio.Semaphore(concurrency)
        timeout = aiohttp.ClientTimeout(total=30)
        started, sent = time.monotonic(), 0
        tasks: set[asyncio.Task[None]] = set()

        async def fire(session: aiohttp.ClientSession) -> None:
            try:
                await self.one(session)
            finally:
                gate.release()

        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)) as s:
            while (elapsed := time.monotonic() - started) < seconds:
                if rate is not None and sent >= elapsed * rate:
                    await asyncio.sleep(0.002)
                    continue
                await gate.acquire()
                task = asyncio.create_task(fire(s))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            await asyncio.gather(*tasks)
        return sent / (time.monotonic() - started)


async def chaos(service: Service, seconds: float, rng: random.Random, kills: Counter[str],
                peaks: dict[str, float], spool_peak: list[int]) -> None:
    """Kill a random process every 30–60 s, stall the store for 60 s once, restart serve when it exits."""
    started = time.monotonic()
    next_kill = started + rng.uniform(30, 60)
    stall_at, stalled = started + seconds * 0.4, None
    while time.monotonic() - started < seconds:
        await asyncio.sleep(0.5)
        tree = service.tree()
        for pid, role in tree.items():
            peaks[role] = max(peaks.get(role, 0.0), rss_mb(pid))
        spool_peak[0] = max(spool_peak[0], dir_bytes(service.work / "spool"))
        now = time.monotonic()
        if stalled is None and now >= stall_at:
            store = [p for p, r in tree.items() if r == "store"]
            if store:
                os.kill(store[0], signal.SIGSTOP)
                stalled = (store[0], now + 60)
                kills["store stopped for 60 s"] += 1
        elif stalled and stalled[1] and now >= stalled[1]:
            try:
                os.kill(stalled[0], signal.SIGCONT)
            except ProcessLookupError:
                pass
            stalled = (stalled[0], 0.0)
        if now >= next_kill and not (stalled and stalled[1]):
            if tree:
                pid, role = rng.choice(sorted(tree.items()))
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills[role] += 1
                except ProcessLookupError:
                    pass
            next_kill = now + rng.uniform(30, 60)
        if service.proc is not None and service.proc.poll() is not None:
            await asyncio.sleep(1)
            service.ensure()
    if stalled and stalled[1]:
        os.kill(stalled[0], signal.SIGCONT)


def wait_ready(url: str, timeout: float = 120) -> None:
    import urllib.error
    import urllib.request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as resp:
                if orjson.loads(resp.read()).get("backlog_bytes", 1) == 0:
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.5)
    raise SystemExit("the spool did not drain")


def cli(service: Service, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "chainlens.cli", *args, "-c", str(service.config)],
                          cwd=ROOT, capture_output=True, text=True, check=True, timeout=600).stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="chainlens-soak-"))
    service = Service(work, args.workers)
    service.start()
    wait_ready(service.url)

    load = Load(service.url)
    top = asyncio.run(load.run(10, None))
    rate = top / 2
    print(f"machine: {os.cpu_count()} cores; {args.workers} accept workers; embedded store")
    print(f"most acknowledged by this client: {top:,.0f} req/s; soak at {rate:,.0f} req/s for {args.seconds:g} s")

    kills: Counter[str] = Counter()
    peaks: dict[str, float] = {}
    spool_peak = [0]

    async def soak() -> None:
        await asyncio.gather(load.run(args.seconds, rate),
                             chaos(service, args.seconds, random.Random(11), kills, peaks, spool_peak))

    asyncio.run(soak())
    service.ensure()
    wait_ready(service.url, timeout=600)

    # Every acknowledged id, generated from the ranges, against what the store holds.
    ranges = work / "acked.tsv"
    ranges.write_text("".join(f"{first}\t{count}\n" for first, count in load.acked))
    query = (
        f"WITH acked AS (SELECT concat('{RUN}-0000-4000-8000-', leftPad(lower(hex(n)), 12, '0')) AS id "
        f"FROM file('{ranges}', 'TSV', 'first UInt64, count UInt64') ARRAY JOIN range(first, first + count) AS n) "
        "SELECT (SELECT count() FROM acked) AS acked, "
        "(SELECT uniqExact(event_id) FROM events FINAL WHERE toString(event_id) IN (SELECT id FROM acked)) AS stored, "
        "(SELECT count() FROM events FINAL WHERE toString(event_id) IN (SELECT id FROM acked)) AS rows")
    result = orjson.loads(cli(service, "sql", query, "--format", "JSONEachRow").splitlines()[0])
    acked, stored, rows = int(result["acked"]), int(result["stored"]), int(result["rows"])
    service.stop()

    t = load.tally
    print(f"\nrequests {t['requests']:,}: 2xx {t['2xx']:,}, 4xx {t['4xx']:,}, 5xx {t['5xx']:,} "
          f"(503 {t['503']:,}), no answer while a process restarted {t['connection errors']:,}")
    print(f"events acknowledged {acked:,}; stored {stored:,}; lost {acked - stored:,}; "
          f"stored more than once {rows - stored:,}")
    print("4xx by reason:")
    for reason, n in load.refusals.most_common():
        print(f"  {n:>8,}  {reason}")
    print("kills: " + ", ".join(f"{role} {n}" for role, n in sorted(kills.items()))
          + f"; serve started {service.starts} times")
    print("peak RSS: " + ", ".join(f"{role} {mb:.0f} MB" for role, mb in sorted(peaks.items())))
    print(f"spool peak size: {spool_peak[0] / 2**20:.1f} MiB")
    shutil.rmtree(work, ignore_errors=True)
    if acked != stored or rows != stored or t["5xx"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
